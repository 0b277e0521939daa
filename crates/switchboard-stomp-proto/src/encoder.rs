//! Frame encoding: [`encode_frame`] for any frame, and [`MessageTemplate`]
//! to encode a broadcast MESSAGE once and hand each subscriber a small
//! per-recipient head plus the shared [`Bytes`] ([`PreparedMessage`]).
//!
//! Frames with a body always carry a computed `content-length` (a caller's
//! own `content-length` header is dropped), so binary bodies with NULs are
//! safe. Headers are escaped for the connection's version; CONNECT, STOMP
//! and CONNECTED are never escaped.

use bytes::{BufMut, Bytes, BytesMut};

use crate::escape::{escape_into, needs_escaping, Escaping};
use crate::frame::{Command, Frame};
use crate::version::Version;

/// The bytes of one heart-beat (an EOL between frames).
pub const HEART_BEAT: &[u8] = b"\n";

/// Header names a [`MessageTemplate`] sets per recipient or computes, and
/// therefore drops from the headers it is given.
const PER_RECIPIENT: [&str; 5] = [
    "subscription",
    "message-id",
    "ack",
    "content-length",
    "destination",
];

/// Appends one `name:value` header line, escaped for `mode`.
pub(crate) fn put_header(out: &mut BytesMut, mode: Escaping, name: &str, value: &str) {
    escape_into(out, name, mode, true);
    out.put_u8(b':');
    escape_into(out, value, mode, false);
    out.put_u8(b'\n');
}

/// Appends `content-length:N` and the blank line ending the headers.
pub(crate) fn put_content_length(out: &mut BytesMut, len: usize) {
    out.extend_from_slice(b"content-length:");
    out.extend_from_slice(len.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}

/// Appends `frame` encoded for a `version` connection.
///
/// A `content-length` header is computed for every non-empty body.
///
/// ```
/// use bytes::BytesMut;
/// use switchboard_stomp_proto::{encode_frame, Command, Frame, Version};
///
/// let frame = Frame::new(Command::Receipt).header("receipt-id", "r:1");
/// let mut out = BytesMut::new();
/// encode_frame(&frame, Version::V1_2, &mut out);
/// assert_eq!(&out[..], b"RECEIPT\nreceipt-id:r\\c1\n\n\0");
/// ```
pub fn encode_frame(frame: &Frame, version: Version, out: &mut BytesMut) {
    debug_assert!(
        frame.body.is_empty() || frame.command.allows_body(),
        "{} frames cannot have a body",
        frame.command
    );
    let mode = Escaping::for_frame(frame.command, version);
    out.reserve(frame.command.as_str().len() + 64 + frame.body.len());
    out.extend_from_slice(frame.command.as_str().as_bytes());
    out.put_u8(b'\n');
    for (name, value) in frame.headers.iter() {
        if name != "content-length" {
            put_header(out, mode, name, value);
        }
    }
    if frame.body.is_empty() {
        out.put_u8(b'\n');
    } else {
        put_content_length(out, frame.body.len());
        out.extend_from_slice(&frame.body);
    }
    out.put_u8(0);
}

/// Appends the per-recipient head of a MESSAGE frame: the command line and
/// the `subscription`, `message-id` and (if any) `ack` headers.
pub(crate) fn put_message_head(
    out: &mut BytesMut,
    version: Version,
    subscription: Option<&str>,
    message_id: &str,
    ack: Option<&str>,
) {
    let mode = Escaping::for_frame(Command::Message, version);
    out.extend_from_slice(b"MESSAGE\n");
    if let Some(sub) = subscription {
        put_header(out, mode, "subscription", sub);
    }
    put_header(out, mode, "message-id", message_id);
    if let Some(ack) = ack {
        put_header(out, mode, "ack", ack);
    }
}

/// Appends the shared headers of a MESSAGE frame: `destination` then
/// `headers`, minus the ones set per recipient (see [`MessageTemplate`]).
pub(crate) fn put_message_headers(
    out: &mut BytesMut,
    version: Version,
    destination: &str,
    headers: &[(&str, &str)],
) {
    let mode = Escaping::for_frame(Command::Message, version);
    put_header(out, mode, "destination", destination);
    for &(name, value) in headers {
        if !PER_RECIPIENT.contains(&name) {
            put_header(out, mode, name, value);
        }
    }
}

/// A MESSAGE encoded once for many subscribers.
///
/// Everything but `subscription`, `message-id` and `ack` is shared: the
/// `destination`, the other headers, `content-length`, the body and the
/// NUL. [`prepare`](Self::prepare) costs one small allocation for the head;
/// the shared part is a reference-counted [`Bytes`] clone.
///
/// Escaping differs per version only when a header contains `\r`, `\n`,
/// `:` or `\`; only then are separate encodings kept per version.
///
/// ```
/// use switchboard_stomp_proto::{MessageTemplate, Version};
///
/// let template = MessageTemplate::new("/topic/chat", &[("content-type", "text/plain")], b"hi");
/// let msg = template.prepare(Version::V1_2, Some("sub-0"), "7", Some("7"));
/// assert_eq!(
///     msg.to_vec(),
///     b"MESSAGE\nsubscription:sub-0\nmessage-id:7\nack:7\n\
///       destination:/topic/chat\ncontent-type:text/plain\ncontent-length:2\n\nhi\0"
/// );
/// ```
#[derive(Debug, Clone)]
pub struct MessageTemplate {
    /// Encodings for 1.0, 1.1 and 1.2; all three the same `Bytes` when no
    /// header needs escaping.
    shared: [Bytes; 3],
    body_len: usize,
}

impl MessageTemplate {
    /// Encodes the shared part of a MESSAGE to `destination`.
    ///
    /// `subscription`, `message-id`, `ack`, `content-length` and
    /// `destination` entries in `headers` are ignored.
    pub fn new(destination: &str, headers: &[(&str, &str)], body: &[u8]) -> Self {
        let encode = |version| {
            let mut out = BytesMut::with_capacity(64 + destination.len() + body.len());
            put_message_headers(&mut out, version, destination, headers);
            put_content_length(&mut out, body.len());
            out.extend_from_slice(body);
            out.put_u8(0);
            out.freeze()
        };
        let varies = needs_escaping(destination)
            || headers
                .iter()
                .any(|(n, v)| needs_escaping(n) || needs_escaping(v));
        let shared = if varies {
            [
                encode(Version::V1_0),
                encode(Version::V1_1),
                encode(Version::V1_2),
            ]
        } else {
            let one = encode(Version::V1_2);
            [one.clone(), one.clone(), one]
        };
        MessageTemplate {
            shared,
            body_len: body.len(),
        }
    }

    /// The shared tail (headers, body, NUL) for a `version` connection.
    pub fn shared(&self, version: Version) -> &Bytes {
        &self.shared[version as usize]
    }

    /// The shared tail when it is the same for every version (no header
    /// needs escaping): what a cache can keep as one [`Bytes`] and pass to
    /// [`ServerSession::send_shared`](crate::ServerSession::send_shared).
    pub fn uniform(&self) -> Option<&Bytes> {
        let [a, b, c] = &self.shared;
        (a.as_ptr() == b.as_ptr() && b.as_ptr() == c.as_ptr()).then_some(a)
    }

    /// Body length in octets.
    pub fn body_len(&self) -> usize {
        self.body_len
    }

    /// The complete MESSAGE for one recipient.
    ///
    /// `subscription` is `None` only for 1.0 subscriptions made without an
    /// `id`; `ack` is set when the subscription's ack mode is not `auto`
    /// on a 1.2 connection.
    pub fn prepare(
        &self,
        version: Version,
        subscription: Option<&str>,
        message_id: &str,
        ack: Option<&str>,
    ) -> PreparedMessage {
        let mut head = BytesMut::with_capacity(64);
        put_message_head(&mut head, version, subscription, message_id, ack);
        PreparedMessage {
            head: head.freeze(),
            shared: self.shared(version).clone(),
        }
    }
}

/// One recipient's MESSAGE as two chunks, ready for a vectored write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedMessage {
    /// Command line and per-recipient headers.
    pub head: Bytes,
    /// Shared headers, body and NUL.
    pub shared: Bytes,
}

impl PreparedMessage {
    /// Total length in octets.
    pub fn len(&self) -> usize {
        self.head.len() + self.shared.len()
    }

    /// Always false: a MESSAGE is never empty.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The two chunks, in wire order.
    pub fn into_chunks(self) -> [Bytes; 2] {
        [self.head, self.shared]
    }

    /// The whole frame in one buffer (copies; for tests and logging).
    pub fn to_vec(&self) -> Vec<u8> {
        [&self.head[..], &self.shared[..]].concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decoder::{Decoder, Item, Limits};

    fn encode(frame: &Frame, version: Version) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode_frame(frame, version, &mut out);
        out.to_vec()
    }

    fn round_trip(frame: &Frame, version: Version) -> Frame {
        let wire = encode(frame, version);
        let mut d = Decoder::new(version, Limits::default());
        let mut input = &wire[..];
        match d.decode(&mut input).unwrap() {
            Some(Item::Frame(f)) => {
                assert!(input.is_empty());
                f
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn encodes_without_body() {
        let f = Frame::new(Command::Receipt).header("receipt-id", "77");
        assert_eq!(encode(&f, Version::V1_2), b"RECEIPT\nreceipt-id:77\n\n\0");
    }

    #[test]
    fn encodes_body_with_content_length() {
        let f = Frame::new(Command::Error)
            .header("message", "bad")
            .header("content-length", "999")
            .body(&b"a\0b"[..]);
        assert_eq!(
            encode(&f, Version::V1_2),
            b"ERROR\nmessage:bad\ncontent-length:3\n\na\0b\0"
        );
    }

    #[test]
    fn escapes_per_version() {
        let f = Frame::new(Command::Message).header("k:x", "a\nb\\c\r");
        assert_eq!(
            encode(&f, Version::V1_2),
            b"MESSAGE\nk\\cx:a\\nb\\\\c\\r\n\n\0"
        );
        assert_eq!(
            encode(&f, Version::V1_1),
            b"MESSAGE\nk\\cx:a\\nb\\\\c\r\n\n\0"
        );
        assert_eq!(encode(&f, Version::V1_0), b"MESSAGE\nk x:a b\\c \n\n\0");
    }

    #[test]
    fn connected_is_never_escaped() {
        let f = Frame::new(Command::Connected).header("session", "a:b\\c");
        assert_eq!(
            encode(&f, Version::V1_2),
            b"CONNECTED\nsession:a:b\\c\n\n\0"
        );
    }

    #[test]
    fn round_trips_every_version() {
        let f = Frame::new(Command::Send)
            .header("destination", "/q/a:b")
            .header("weird", "line\nbreak\\")
            .header("weird", "second")
            .body(&b"\0binary\0"[..]);
        for v in [Version::V1_1, Version::V1_2] {
            let back = round_trip(&f, v);
            assert_eq!(back.get("destination"), Some("/q/a:b"));
            assert_eq!(back.get("weird"), Some("line\nbreak\\"));
            assert_eq!(back.get("content-length"), Some("8"));
            assert_eq!(back.body, f.body);
        }
        let back = round_trip(&f, Version::V1_0);
        assert_eq!(back.get("destination"), Some("/q/a:b"));
        assert_eq!(back.body, f.body);
    }

    #[test]
    fn template_matches_plain_encoding() {
        let headers = [("content-type", "text/plain"), ("x", "y")];
        let t = MessageTemplate::new("/topic/a", &headers, b"body");
        assert_eq!(t.body_len(), 4);
        let expected = Frame::new(Command::Message)
            .header("subscription", "s1")
            .header("message-id", "9")
            .header("destination", "/topic/a")
            .header("content-type", "text/plain")
            .header("x", "y")
            .body(&b"body"[..]);
        for v in Version::ALL {
            let p = t.prepare(v, Some("s1"), "9", None);
            assert_eq!(p.to_vec(), encode(&expected, v));
            assert_eq!(p.len(), p.to_vec().len());
        }
    }

    #[test]
    fn template_shares_bytes_between_recipients() {
        let t = MessageTemplate::new("/topic/a", &[], b"payload");
        let a = t.prepare(Version::V1_2, Some("a"), "1", None);
        let b = t.prepare(Version::V1_1, Some("b"), "2", None);
        assert_eq!(a.shared.as_ptr(), b.shared.as_ptr());
        let [head, _] = a.into_chunks();
        assert_eq!(&head[..], b"MESSAGE\nsubscription:a\nmessage-id:1\n");
    }

    #[test]
    fn template_escapes_per_version_when_needed() {
        let t = MessageTemplate::new("/a:b", &[("k", "v\nw")], b"");
        assert_eq!(
            &t.shared(Version::V1_2)[..],
            b"destination:/a\\cb\nk:v\\nw\ncontent-length:0\n\n\0"
        );
        assert_eq!(
            &t.shared(Version::V1_0)[..],
            b"destination:/a:b\nk:v w\ncontent-length:0\n\n\0"
        );
        let p = t.prepare(Version::V1_2, Some("s:1"), "1", Some("1"));
        assert!(p
            .to_vec()
            .starts_with(b"MESSAGE\nsubscription:s\\c1\nmessage-id:1\nack:1\n"));
    }

    #[test]
    fn template_drops_per_recipient_headers() {
        let t = MessageTemplate::new(
            "/d",
            &[
                ("subscription", "x"),
                ("ack", "x"),
                ("content-length", "5"),
                ("destination", "x"),
            ],
            b"",
        );
        assert_eq!(
            &t.shared(Version::V1_2)[..],
            b"destination:/d\ncontent-length:0\n\n\0"
        );
    }
}
