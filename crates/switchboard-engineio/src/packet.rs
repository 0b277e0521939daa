//! Engine.IO v4 packets: the seven packet types, the [`Packet`] enum and its
//! encoding on the wire — one WebSocket message per packet, or one record of
//! an HTTP long-polling payload (see [`crate::payload`]).
//!
//! Mirrors `engine.io-parser` 5 (`lib/encodePacket.ts`, `lib/decodePacket.ts`):
//! a text packet is its type digit followed by its data (`4hello`); a binary
//! message is a raw binary WebSocket frame, or `b` + standard base64 when the
//! channel is text only (polling, or WebSocket with `b64=1`).

use std::fmt;

use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};

use crate::Utf8Bytes;

/// The type of a packet: the digit that starts its text encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// `0`: sent by the server with the handshake data (JSON).
    Open,
    /// `1`: the transport is being closed.
    Close,
    /// `2`: heartbeat request (server → client), or `2probe` on an upgrade.
    Ping,
    /// `3`: heartbeat answer (client → server), or `3probe` on an upgrade.
    Pong,
    /// `4`: application data.
    Message,
    /// `5`: the client completes a transport upgrade.
    Upgrade,
    /// `6`: does nothing; used to end a pending long-polling request.
    Noop,
}

impl PacketType {
    /// The ASCII digit of this type (`b'0'` … `b'6'`).
    pub const fn as_digit(self) -> u8 {
        match self {
            PacketType::Open => b'0',
            PacketType::Close => b'1',
            PacketType::Ping => b'2',
            PacketType::Pong => b'3',
            PacketType::Message => b'4',
            PacketType::Upgrade => b'5',
            PacketType::Noop => b'6',
        }
    }

    /// The type for an ASCII digit, `None` for anything else.
    pub const fn from_digit(digit: u8) -> Option<Self> {
        Some(match digit {
            b'0' => PacketType::Open,
            b'1' => PacketType::Close,
            b'2' => PacketType::Ping,
            b'3' => PacketType::Pong,
            b'4' => PacketType::Message,
            b'5' => PacketType::Upgrade,
            b'6' => PacketType::Noop,
            _ => return None,
        })
    }
}

/// Application data carried by a `message` packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A string (an empty `4` packet decodes to an empty string).
    Text(Utf8Bytes),
    /// Bytes.
    Binary(Bytes),
}

impl From<&str> for Message {
    fn from(text: &str) -> Self {
        Message::Text(text.into())
    }
}

impl From<String> for Message {
    fn from(text: String) -> Self {
        Message::Text(text.into())
    }
}

impl From<Utf8Bytes> for Message {
    fn from(text: Utf8Bytes) -> Self {
        Message::Text(text)
    }
}

impl From<Bytes> for Message {
    fn from(data: Bytes) -> Self {
        Message::Binary(data)
    }
}

impl From<Vec<u8>> for Message {
    fn from(data: Vec<u8>) -> Self {
        Message::Binary(data.into())
    }
}

/// One WebSocket message, as handed to or received from the WebSocket layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsMessage {
    /// A text frame.
    Text(Utf8Bytes),
    /// A binary frame.
    Binary(Bytes),
}

/// One Engine.IO packet.
///
/// The data of `close`, `upgrade` and `noop` packets is ignored by Node and
/// dropped here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// Handshake data (a JSON object, see [`crate::OpenPacket`]).
    Open(Utf8Bytes),
    /// Close the transport.
    Close,
    /// Ping with optional data (`probe` during an upgrade).
    Ping(Utf8Bytes),
    /// Pong with optional data (`probe` during an upgrade).
    Pong(Utf8Bytes),
    /// Application data.
    Message(Message),
    /// A text message already encoded as a packet (`4` followed by the
    /// text; see [`PreparedText`]): encoded once, sent to many sessions
    /// without copying. Never produced by decoding.
    Prepared(PreparedText),
    /// Upgrade completed.
    Upgrade,
    /// No operation.
    Noop,
}

/// A packet that could not be decoded: Node's `{ type: "error", data:
/// "parser error" }`, which closes the session with reason `parse error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// An empty text record.
    Empty,
    /// The first character is neither a packet type digit nor `b`.
    UnknownType(char),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Empty => f.write_str("parser error: empty packet"),
            DecodeError::UnknownType(c) => write!(f, "parser error: unknown packet type {c:?}"),
        }
    }
}

impl std::error::Error for DecodeError {}

impl Packet {
    /// Shorthand for a text message packet.
    pub fn text(text: impl Into<Utf8Bytes>) -> Self {
        Packet::Message(Message::Text(text.into()))
    }

    /// Shorthand for a binary message packet.
    pub fn binary(data: impl Into<Bytes>) -> Self {
        Packet::Message(Message::Binary(data.into()))
    }

    /// The type of this packet.
    pub fn packet_type(&self) -> PacketType {
        match self {
            Packet::Open(_) => PacketType::Open,
            Packet::Close => PacketType::Close,
            Packet::Ping(_) => PacketType::Ping,
            Packet::Pong(_) => PacketType::Pong,
            Packet::Message(_) | Packet::Prepared(_) => PacketType::Message,
            Packet::Upgrade => PacketType::Upgrade,
            Packet::Noop => PacketType::Noop,
        }
    }

    /// Decodes one text-encoded packet: a WebSocket text frame or one record
    /// of a polling payload. `b…` is a base64 binary message, decoded as
    /// leniently as Node's `Buffer.from(s, "base64")` (both alphabets,
    /// unknown characters skipped, stops at `=`). The data is sliced out of
    /// `text` without copying.
    pub fn decode_text(text: Utf8Bytes) -> Result<Packet, DecodeError> {
        let Some(&first) = text.as_bytes().first() else {
            return Err(DecodeError::Empty);
        };
        if first == b'b' {
            return Ok(Packet::binary(decode_base64_lenient(&text.as_bytes()[1..])));
        }
        let Some(kind) = PacketType::from_digit(first) else {
            let c = text.chars().next().unwrap_or('\u{fffd}');
            return Err(DecodeError::UnknownType(c));
        };
        let data = || text.slice_from(1);
        Ok(match kind {
            PacketType::Open => Packet::Open(data()),
            PacketType::Close => Packet::Close,
            PacketType::Ping => Packet::Ping(data()),
            PacketType::Pong => Packet::Pong(data()),
            PacketType::Message => Packet::Message(Message::Text(data())),
            PacketType::Upgrade => Packet::Upgrade,
            PacketType::Noop => Packet::Noop,
        })
    }

    /// Decodes one WebSocket message: a binary frame is a binary message
    /// as is; a text frame goes through [`Packet::decode_text`].
    pub fn decode_ws(message: WsMessage) -> Result<Packet, DecodeError> {
        match message {
            WsMessage::Binary(data) => Ok(Packet::Message(Message::Binary(data))),
            WsMessage::Text(text) => Packet::decode_text(text),
        }
    }

    /// Appends the text encoding of this packet to `out` (binary messages
    /// as `b` + base64): the polling record form.
    pub fn encode_text_into(&self, out: &mut BytesMut) {
        if let Packet::Message(Message::Binary(data)) = self {
            let start = out.len();
            let b64_len = data.len().div_ceil(3) * 4;
            out.reserve(1 + b64_len);
            out.put_u8(b'b');
            out.resize(start + 1 + b64_len, 0);
            let written = base64::engine::general_purpose::STANDARD
                .encode_slice(data, &mut out[start + 1..])
                .expect("buffer sized for base64");
            debug_assert_eq!(written, b64_len);
            return;
        }
        if let Packet::Prepared(p) = self {
            out.extend_from_slice(p.packet.as_bytes());
            return;
        }
        out.put_u8(self.packet_type().as_digit());
        match self {
            Packet::Open(data) | Packet::Ping(data) | Packet::Pong(data) => {
                out.extend_from_slice(data.as_bytes())
            }
            Packet::Message(Message::Text(text)) => out.extend_from_slice(text.as_bytes()),
            _ => {}
        }
    }

    /// The text encoding of this packet (see [`Packet::encode_text_into`]).
    pub fn encode_text(&self) -> Utf8Bytes {
        let mut out = BytesMut::with_capacity(self.encoded_len_hint());
        self.encode_text_into(&mut out);
        Utf8Bytes::from_utf8_slice_unchecked(out.freeze())
    }

    /// The WebSocket message for this packet. Binary messages become binary
    /// frames when `supports_binary` (the client did not ask for `b64`), else
    /// `b` + base64 text frames.
    pub fn encode_ws(&self, supports_binary: bool) -> WsMessage {
        match self {
            Packet::Message(Message::Binary(data)) if supports_binary => {
                WsMessage::Binary(data.clone())
            }
            Packet::Prepared(p) => WsMessage::Text(p.packet.clone()),
            _ => WsMessage::Text(self.encode_text()),
        }
    }

    pub(crate) fn encoded_len_hint(&self) -> usize {
        1 + match self {
            Packet::Open(d) | Packet::Ping(d) | Packet::Pong(d) => d.len(),
            Packet::Message(Message::Text(t)) => t.len(),
            Packet::Message(Message::Binary(b)) => b.len().div_ceil(3) * 4,
            Packet::Prepared(p) => p.packet.len() - 1,
            _ => 0,
        }
    }
}

/// A text message encoded once as an Engine.IO packet (`4` + text), to be
/// sent to many sessions ([`Session::send_prepared`](crate::Session::send_prepared)):
/// over WebSocket every session sends the same bytes, over polling they are
/// copied into the payload as any packet is. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedText {
    packet: Utf8Bytes,
}

impl PreparedText {
    /// Encodes `text` as a message packet.
    pub fn new(text: &str) -> Self {
        let mut out = BytesMut::with_capacity(1 + text.len());
        out.put_u8(b'4');
        out.extend_from_slice(text.as_bytes());
        PreparedText {
            packet: Utf8Bytes::from_utf8_slice_unchecked(out.freeze()),
        }
    }

    /// The encoded packet (`4` + text).
    pub fn packet(&self) -> &Utf8Bytes {
        &self.packet
    }

    /// The message text (shares the packet's bytes).
    pub fn text(&self) -> Utf8Bytes {
        self.packet.slice_from(1)
    }
}

/// Decodes base64 the way Node's `Buffer.from(s, "base64")` does: accepts
/// the standard and the URL-safe alphabets, skips any other character,
/// stops at the first `=`, and drops incomplete trailing bits.
pub(crate) fn decode_base64_lenient(input: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(input.len() / 4 * 3 + 2);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &c in input {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(s: &'static str) -> Result<Packet, DecodeError> {
        Packet::decode_text(Utf8Bytes::from_static(s))
    }

    #[test]
    fn decodes_every_type() {
        assert_eq!(decode("0{}").unwrap(), Packet::Open("{}".into()));
        assert_eq!(decode("1").unwrap(), Packet::Close);
        assert_eq!(decode("2").unwrap(), Packet::Ping("".into()));
        assert_eq!(decode("2probe").unwrap(), Packet::Ping("probe".into()));
        assert_eq!(decode("3probe").unwrap(), Packet::Pong("probe".into()));
        assert_eq!(decode("4hello").unwrap(), Packet::text("hello"));
        assert_eq!(decode("4").unwrap(), Packet::text(""));
        assert_eq!(decode("5").unwrap(), Packet::Upgrade);
        assert_eq!(decode("6").unwrap(), Packet::Noop);
        assert_eq!(
            decode("bAQIDBA==").unwrap(),
            Packet::binary(vec![1, 2, 3, 4])
        );
    }

    #[test]
    fn rejects_empty_and_unknown_types() {
        assert_eq!(decode(""), Err(DecodeError::Empty));
        assert_eq!(decode("7"), Err(DecodeError::UnknownType('7')));
        assert_eq!(decode("hello"), Err(DecodeError::UnknownType('h')));
    }

    #[test]
    fn text_data_is_not_copied() {
        let buf = Utf8Bytes::from_static("4hello");
        let Packet::Message(Message::Text(t)) = Packet::decode_text(buf.clone()).unwrap() else {
            panic!()
        };
        assert_eq!(t.as_bytes().as_ptr(), buf.as_bytes()[1..].as_ptr());
    }

    #[test]
    fn encodes_text_and_binary() {
        assert_eq!(Packet::text("hello").encode_text(), "4hello");
        assert_eq!(Packet::Ping("".into()).encode_text(), "2");
        assert_eq!(Packet::Pong("probe".into()).encode_text(), "3probe");
        assert_eq!(Packet::Noop.encode_text(), "6");
        assert_eq!(Packet::Close.encode_text(), "1");
        assert_eq!(Packet::binary(vec![1, 2, 3, 4]).encode_text(), "bAQIDBA==");
        assert_eq!(Packet::binary(Vec::new()).encode_text(), "b");
    }

    #[test]
    fn websocket_encoding() {
        let bin = Packet::binary(vec![1, 2, 3, 4]);
        assert_eq!(
            bin.encode_ws(true),
            WsMessage::Binary(Bytes::from_static(&[1, 2, 3, 4]))
        );
        assert_eq!(bin.encode_ws(false), WsMessage::Text("bAQIDBA==".into()));
        assert_eq!(
            Packet::text("hi").encode_ws(true),
            WsMessage::Text("4hi".into())
        );
        assert_eq!(
            Packet::decode_ws(WsMessage::Binary(Bytes::from_static(b"\x01"))).unwrap(),
            Packet::binary(vec![1])
        );
        assert_eq!(
            Packet::decode_ws(WsMessage::Text("4hi".into())).unwrap(),
            Packet::text("hi")
        );
    }

    #[test]
    fn base64_is_lenient_like_node() {
        assert_eq!(&decode_base64_lenient(b"AQIDBA==")[..], &[1, 2, 3, 4]);
        assert_eq!(&decode_base64_lenient(b"AQIDBA")[..], &[1, 2, 3, 4]);
        assert_eq!(&decode_base64_lenient(b"AQ ID\nBA")[..], &[1, 2, 3, 4]);
        assert_eq!(&decode_base64_lenient(b"-_8")[..], &[0xfb, 0xff]);
        assert_eq!(&decode_base64_lenient(b"+/8")[..], &[0xfb, 0xff]);
        assert_eq!(&decode_base64_lenient(b"AQ==AQ")[..], &[1]);
        assert_eq!(&decode_base64_lenient(b"A")[..], &[] as &[u8]);
    }
}

#[cfg(test)]
mod prepared_tests {
    use super::*;

    #[test]
    fn a_prepared_text_encodes_as_the_message_packet_without_copying() {
        let p = PreparedText::new("42[\"msg\",1]");
        let packet = Packet::Prepared(p.clone());
        let plain = Packet::text("42[\"msg\",1]");
        assert_eq!(packet.encode_text(), plain.encode_text());
        assert_eq!(packet.encode_ws(true), plain.encode_ws(true));
        assert_eq!(packet.packet_type(), PacketType::Message);
        assert_eq!(p.text().as_str(), "42[\"msg\",1]");
        let WsMessage::Text(ws) = packet.encode_ws(true) else {
            panic!("text");
        };
        // The same bytes as the prepared packet: no per-session copy.
        assert_eq!(ws.as_bytes().as_ptr(), p.packet().as_bytes().as_ptr());
    }
}
