//! SockJS frames (`o`, `h`, `a[...]`, `c[code,"reason"]`) and the string
//! escaping they need: sockjs-node's `utils.quote` for outbound messages,
//! done once per message ([`EncodedMessage`]) so a broadcast reuses it for
//! every session. Transport wrappings (`\n`, `data: `, `p(...)`) live in
//! [`crate::receiver`].

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;

/// One outbound message, already escaped as sockjs-node's `utils.quote`
/// does: a JSON string literal (quotes included) in which, besides JSON's
/// own escapes, the characters sockjs-node's `escapable` matches are
/// written as `\uXXXX`: `U+200C`–`U+200F`, `U+2028`–`U+202F`,
/// `U+2060`–`U+206F`, `U+FFF0`–`U+FFFF`, and every character outside the
/// BMP as its UTF-16 surrogate pair (`\ud83d\ude00`), since JavaScript sees
/// those as surrogates (`\ud800-\udfff`).
///
/// Cheap to clone (a [`Bytes`]): encode a broadcast once and hand the same
/// value to every session.
///
/// ```
/// use switchboard_sockjs::EncodedMessage;
///
/// let m = EncodedMessage::new("say \"hi\"\n\u{2028}😀");
/// assert_eq!(m.as_bytes(), br#""say \"hi\"\n\u2028\ud83d\ude00""#);
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EncodedMessage(Bytes);

impl EncodedMessage {
    /// Escapes `text`.
    pub fn new(text: &str) -> Self {
        let mut out = Vec::with_capacity(text.len() + 2);
        quote(text, &mut out);
        EncodedMessage(Bytes::from(out))
    }

    /// Takes back bytes that [`EncodedMessage::to_bytes`] gave, e.g. from
    /// a publication's encoding cache shared by every session. Not checked:
    /// other bytes would break the framing of the sessions they are sent to.
    ///
    /// ```
    /// use switchboard_sockjs::EncodedMessage;
    ///
    /// let m = EncodedMessage::new("x\u{2028}");
    /// assert_eq!(EncodedMessage::from_escaped(m.to_bytes()), m);
    /// ```
    pub fn from_escaped(bytes: Bytes) -> Self {
        EncodedMessage(bytes)
    }

    /// The escaped JSON string, quotes included.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The escaped JSON string as [`Bytes`].
    pub fn to_bytes(&self) -> Bytes {
        self.0.clone()
    }

    /// Length of the escaped form in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true: the quotes are always there.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for EncodedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncodedMessage({})", String::from_utf8_lossy(&self.0))
    }
}

/// The payload of a close frame: `c[3000,"Go away!"]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CloseFrame {
    /// The close code (1000, 1002, 2010, 3000–4999 for applications).
    pub code: u16,
    /// The reason.
    pub reason: Cow<'static, str>,
}

impl CloseFrame {
    /// `c[3000,"Go away!"]`, what the protocol test's `close` service sends.
    pub const GO_AWAY: CloseFrame = CloseFrame::new_static(3000, "Go away!");
    /// `c[2010,"Another connection still open"]`: a second receiver on a
    /// session that has one.
    pub const ANOTHER_CONNECTION_STILL_OPEN: CloseFrame =
        CloseFrame::new_static(2010, "Another connection still open");
    /// `c[1002,"Connection interrupted"]`: a receiver on a session whose
    /// previous receiver went away mid-response.
    pub const CONNECTION_INTERRUPTED: CloseFrame =
        CloseFrame::new_static(1002, "Connection interrupted");
    /// `c[1000,"Normal closure"]`: sockjs-node's default for `close()`.
    pub const NORMAL_CLOSURE: CloseFrame = CloseFrame::new_static(1000, "Normal closure");

    /// A close frame.
    pub fn new(code: u16, reason: impl Into<Cow<'static, str>>) -> Self {
        CloseFrame {
            code,
            reason: reason.into(),
        }
    }

    const fn new_static(code: u16, reason: &'static str) -> Self {
        CloseFrame {
            code,
            reason: Cow::Borrowed(reason),
        }
    }
}

/// A SockJS frame, as sent inside any transport's wrapping.
///
/// ```
/// use switchboard_sockjs::{CloseFrame, EncodedMessage, Frame};
///
/// let batch = [EncodedMessage::new("a"), EncodedMessage::new("b")];
/// assert_eq!(&Frame::Messages(&batch).encode()[..], br#"a["a","b"]"#);
/// assert_eq!(&Frame::Close(&CloseFrame::GO_AWAY).encode()[..], br#"c[3000,"Go away!"]"#);
/// assert_eq!(&Frame::Open.encode()[..], b"o");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// `o`: the session is open.
    Open,
    /// `h`: heartbeat.
    Heartbeat,
    /// `a[...]`: a batch of messages.
    Messages(&'a [EncodedMessage]),
    /// `c[code,"reason"]`: the session is closed.
    Close(&'a CloseFrame),
}

impl Frame<'_> {
    /// Appends the frame to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Frame::Open => out.push(b'o'),
            Frame::Heartbeat => out.push(b'h'),
            Frame::Messages(messages) => {
                out.extend_from_slice(b"a[");
                for (i, m) in messages.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(m.as_bytes());
                }
                out.push(b']');
            }
            Frame::Close(close) => {
                out.extend_from_slice(b"c[");
                out.extend_from_slice(close.code.to_string().as_bytes());
                out.push(b',');
                json_quote(&close.reason, out);
                out.push(b']');
            }
        }
    }

    /// The frame's length in bytes.
    pub fn encoded_len(&self) -> usize {
        match self {
            Frame::Open | Frame::Heartbeat => 1,
            Frame::Messages(messages) => {
                2 + messages.iter().map(|m| m.len()).sum::<usize>()
                    + messages.len().saturating_sub(1)
                    + 1
            }
            Frame::Close(_) => {
                let mut v = Vec::new();
                self.write(&mut v);
                v.len()
            }
        }
    }

    /// The frame as [`Bytes`].
    pub fn encode(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.write(&mut out);
        Bytes::from(out)
    }
}

/// How much to escape.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Escape {
    /// `JSON.stringify`.
    Json,
    /// `JSON.stringify` plus sockjs-node's `escapable`.
    SockJs,
    /// `JSON.stringify` plus `<` (for a literal inside `<script>`).
    Script,
}

/// Appends `text` as a JSON string literal escaped as sockjs-node's
/// `utils.quote` does (see [`EncodedMessage`]).
pub fn quote(text: &str, out: &mut Vec<u8>) {
    write_string(text, Escape::SockJs, out);
}

/// Appends `text` as a JSON string literal escaped as `JSON.stringify`
/// does: `"`, `\`, and the C0 controls (`\b \t \n \f \r`, others as
/// `\u00XX`).
pub fn json_quote(text: &str, out: &mut Vec<u8>) {
    write_string(text, Escape::Json, out);
}

/// Like [`json_quote`], and `<` as `\u003c` so the literal cannot end the
/// `<script>` element it is written in (the `htmlfile` transport).
pub(crate) fn script_quote(text: &str, out: &mut Vec<u8>) {
    write_string(text, Escape::Script, out);
}

/// Whether sockjs-node's `escapable` regex (beyond JSON's own escapes)
/// matches `c`.
fn sockjs_escapable(c: char) -> bool {
    matches!(c as u32,
        0x200c..=0x200f | 0x2028..=0x202f | 0x2060..=0x206f | 0xfff0..=0xffff | 0x10000..)
}

fn write_string(text: &str, mode: Escape, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        let short = match c {
            '"' => Some(b'"'),
            '\\' => Some(b'\\'),
            '\u{8}' => Some(b'b'),
            '\t' => Some(b't'),
            '\n' => Some(b'n'),
            '\u{c}' => Some(b'f'),
            '\r' => Some(b'r'),
            c if (c as u32) < 0x20 => None,
            '<' if mode == Escape::Script => None,
            c if mode == Escape::SockJs && sockjs_escapable(c) => None,
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        start = i + c.len_utf8();
        match short {
            Some(s) => out.extend_from_slice(&[b'\\', s]),
            None => {
                let mut units = [0u16; 2];
                for &unit in c.encode_utf16(&mut units).iter() {
                    write_u_escape(unit, out);
                }
            }
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// `\uXXXX` with lowercase hex digits, as both `JSON.stringify` and
/// sockjs-node's lookup table write them.
fn write_u_escape(unit: u16, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(&[
        b'\\',
        b'u',
        HEX[(unit >> 12) as usize & 0xf],
        HEX[(unit >> 8) as usize & 0xf],
        HEX[(unit >> 4) as usize & 0xf],
        HEX[unit as usize & 0xf],
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> String {
        String::from_utf8(EncodedMessage::new(s).as_bytes().to_vec()).unwrap()
    }

    fn j(s: &str) -> String {
        let mut out = Vec::new();
        json_quote(s, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_escapes() {
        assert_eq!(q("plain"), r#""plain""#);
        assert_eq!(q(""), r#""""#);
        assert_eq!(q("a\"b\\c/d"), r#""a\"b\\c/d""#);
        assert_eq!(q("\u{8}\t\n\u{c}\r"), r#""\b\t\n\f\r""#);
        assert_eq!(q("\u{0}\u{1}\u{1f}"), r#""\u0000\u0001\u001f""#);
        // Not escaped by JSON.stringify nor by sockjs-node.
        assert_eq!(
            q("\u{7f}\u{85}\u{ad}é€\u{600}\u{feff}"),
            "\"\u{7f}\u{85}\u{ad}é€\u{600}\u{feff}\""
        );
    }

    #[test]
    fn every_sockjs_range_escaped() {
        let ranges: [(u32, u32); 4] = [
            (0x200c, 0x200f),
            (0x2028, 0x202f),
            (0x2060, 0x206f),
            (0xfff0, 0xffff),
        ];
        for (lo, hi) in ranges {
            for u in lo..=hi {
                let c = char::from_u32(u).unwrap();
                assert_eq!(q(&c.to_string()), format!("\"\\u{u:04x}\""), "U+{u:04X}");
            }
            // The neighbours stay verbatim.
            for u in [lo - 1, hi + 1] {
                if let Some(c) = char::from_u32(u).filter(|_| u <= 0xffff && u != 0x2027) {
                    assert_eq!(q(&c.to_string()), format!("\"{c}\""), "U+{u:04X}");
                }
            }
        }
    }

    #[test]
    fn astral_as_surrogate_pairs() {
        assert_eq!(q("😀"), r#""\ud83d\ude00""#);
        assert_eq!(q("\u{10000}"), r#""\ud800\udc00""#);
        assert_eq!(q("\u{10ffff}"), r#""\udbff\udfff""#);
        // Plain JSON keeps them verbatim.
        assert_eq!(j("😀"), "\"😀\"");
    }

    #[test]
    fn protocol_server_killer_string() {
        // JSONEncoding.test_xhr_server_encodes: every char >= U+00FF that the
        // server must escape comes back as `\uXXXX`.
        let mut input = String::new();
        let mut expected = String::from("\"");
        for u in 255u32..65536 {
            let Some(c) = char::from_u32(u) else { continue };
            if matches!(u, 0x200c..=0x200f | 0x2028..=0x202f | 0x2060..=0x206f | 0xfff0..=0xffff) {
                input.push(c);
                expected.push_str(&format!("\\u{u:04x}"));
            }
        }
        expected.push('"');
        assert_eq!(q(&input), expected);
    }

    #[test]
    fn round_trips_through_json() {
        let s = "x\u{0}\u{2028}😀\"\\\u{fff5}é";
        let parsed: String = serde_json::from_slice(EncodedMessage::new(s).as_bytes()).unwrap();
        assert_eq!(parsed, s);
    }

    #[test]
    fn script_quote_hides_tags() {
        let mut out = Vec::new();
        script_quote("a</script>", &mut out);
        assert_eq!(out, br#""a\u003c/script>""#);
    }

    #[test]
    fn frames() {
        assert_eq!(&Frame::Open.encode()[..], b"o");
        assert_eq!(&Frame::Heartbeat.encode()[..], b"h");
        assert_eq!(&Frame::Messages(&[]).encode()[..], b"a[]");
        let one = [EncodedMessage::new("a")];
        assert_eq!(&Frame::Messages(&one).encode()[..], br#"a["a"]"#);
        let three = [
            EncodedMessage::new("a"),
            EncodedMessage::new("b\n"),
            EncodedMessage::new(""),
        ];
        let f = Frame::Messages(&three);
        assert_eq!(&f.encode()[..], br#"a["a","b\n",""]"#);
        assert_eq!(f.encoded_len(), f.encode().len());
        assert_eq!(
            &Frame::Close(&CloseFrame::GO_AWAY).encode()[..],
            br#"c[3000,"Go away!"]"#
        );
        assert_eq!(
            &Frame::Close(&CloseFrame::ANOTHER_CONNECTION_STILL_OPEN).encode()[..],
            br#"c[2010,"Another connection still open"]"#
        );
        assert_eq!(
            &Frame::Close(&CloseFrame::CONNECTION_INTERRUPTED).encode()[..],
            br#"c[1002,"Connection interrupted"]"#
        );
        assert_eq!(
            &Frame::Close(&CloseFrame::new(4000, "say \"bye\"")).encode()[..],
            br#"c[4000,"say \"bye\""]"#
        );
        assert_eq!(Frame::Close(&CloseFrame::GO_AWAY).encoded_len(), 18);
    }
}
