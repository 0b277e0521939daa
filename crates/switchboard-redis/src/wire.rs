//! The message format on the Redis channels, as a sans-IO codec: [`Message`]
//! encodes a publication and [`decode`] checks and parses one, returning a
//! [`DecodeError`] (never panicking) for anything malformed.
//!
//! # Format, version 1
//!
//! The topic is not in the message: it is the channel name
//! (`{prefix}:t:{topic}`). Integers are big-endian.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | version, `1` |
//! | 1 | 8 | origin node id (random per backplane; a node drops its own messages echoed back) |
//! | 9 | 8 | origin timestamp, milliseconds since the Unix epoch |
//! | 17 | 1 | payload kind: `0` text (UTF-8), `1` binary, `2` JSON (UTF-8) |
//! | 18 | 1 | flags: bit 0 = a sender name follows; other bits must be 0 |
//! | 19 | 2 | *if flag 0:* sender name length `n` (at most 65,535) |
//! | 21 | n | *if flag 0:* sender name, UTF-8 |
//! | … | rest | payload data |
//!
//! A message without sender costs 19 bytes over its data. A decoder rejects
//! any other version, kind or flag, a truncated header or sender name, and
//! text or JSON data (or a sender name) that is not UTF-8: the hub hands
//! `Text` payloads to transports as valid UTF-8. A later format bumps the
//! version byte.
//!
//! # Numbered publications (`shared_history`)
//!
//! When Redis numbers the publications (see the crate docs), the script
//! that numbers one publishes `S{epoch}:{seq}:` followed by the message
//! above: ASCII decimal epoch and sequence number, then the version-1
//! message unchanged ([`decode_numbered`]). The letter `S` cannot start a
//! version-1 message, so both kinds are told apart by their first byte. The
//! shared history (a Redis stream per topic) keeps the bare message.
//!
//! # Presence
//!
//! A node tells the others who subscribes to a topic on it with
//! `P{node id, 16 hex digits}:{expires, ms since the Unix epoch}:` followed
//! by, per distinct name, a 2-byte big-endian length, the name (UTF-8) and
//! a 4-byte big-endian connection count ([`encode_presence`],
//! [`decode_presence`]); an expiry of 0 (and no names) means it has none
//! left. The same bytes are kept in the hash `{prefix}:p:{topic}` under the
//! node id, for nodes that open the topic later.

use std::fmt;
use std::io::{self, Write};

use std::sync::Arc;

use switchboard_hub::{MemberCounts, PayloadKind, Publication};

/// The format version written (and the only one read).
pub const VERSION: u8 = 1;

/// Bytes before the optional sender name: version, node id, timestamp, kind, flags.
pub const HEADER_LEN: usize = 19;

/// Longest sender name carried; longer names are cut (at a character
/// boundary) to fit.
pub const MAX_SENDER_LEN: usize = u16::MAX as usize;

const FLAG_SENDER: u8 = 1;

/// One publication as it travels between nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    /// The publishing backplane's node id.
    pub node_id: u64,
    /// Publication time on the origin node, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// Kind of the payload data.
    pub kind: PayloadKind,
    /// Display name of the publisher, if any.
    pub from: Option<&'a str>,
    /// The payload data.
    pub data: &'a [u8],
}

impl<'a> Message<'a> {
    /// The message for `publication` published on node `node_id` (a sender
    /// name over [`MAX_SENDER_LEN`] bytes is cut).
    pub fn from_publication(node_id: u64, publication: &'a Publication) -> Self {
        Message {
            node_id,
            timestamp_ms: publication.timestamp_ms,
            kind: publication.payload.kind,
            from: publication.from.as_deref().map(cut_sender),
            data: &publication.payload.data,
        }
    }

    /// Length of the encoded message.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.from.map_or(0, |f| 2 + cut_sender(f).len()) + self.data.len()
    }

    /// Writes the encoded message to `out` (errors only if `out` fails).
    pub fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        let from = self.from.map(cut_sender);
        let mut header = [0u8; HEADER_LEN + 2];
        header[0] = VERSION;
        header[1..9].copy_from_slice(&self.node_id.to_be_bytes());
        header[9..17].copy_from_slice(&self.timestamp_ms.to_be_bytes());
        header[17] = match self.kind {
            PayloadKind::Text => 0,
            PayloadKind::Binary => 1,
            PayloadKind::Json => 2,
        };
        match from {
            Some(from) => {
                header[18] = FLAG_SENDER;
                header[19..21].copy_from_slice(&(from.len() as u16).to_be_bytes());
                out.write_all(&header)?;
                out.write_all(from.as_bytes())?;
            }
            None => out.write_all(&header[..HEADER_LEN])?,
        }
        out.write_all(self.data)
    }

    /// The encoded message.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.write_to(&mut out).expect("writing to a Vec");
        out
    }
}

/// Why a message could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// Shorter than its header (or its announced sender name).
    Truncated,
    /// A version other than [`VERSION`].
    UnknownVersion(u8),
    /// A payload kind other than 0, 1 or 2.
    UnknownKind(u8),
    /// Flag bits other than bit 0.
    UnknownFlags(u8),
    /// The sender name is not UTF-8.
    InvalidSender,
    /// Text or JSON data that is not UTF-8.
    InvalidUtf8,
    /// A numbered publication's epoch or sequence number is not a decimal
    /// `u64` followed by `:`.
    BadNumber,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated => f.write_str("truncated message"),
            DecodeError::UnknownVersion(v) => write!(f, "unknown format version {v}"),
            DecodeError::UnknownKind(k) => write!(f, "unknown payload kind {k}"),
            DecodeError::UnknownFlags(b) => write!(f, "unknown flags {b:#04x}"),
            DecodeError::InvalidSender => f.write_str("sender name is not UTF-8"),
            DecodeError::InvalidUtf8 => f.write_str("text payload is not UTF-8"),
            DecodeError::BadNumber => f.write_str("bad epoch or sequence number"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Parses and checks one message (borrowing from `bytes`).
pub fn decode(bytes: &[u8]) -> Result<Message<'_>, DecodeError> {
    let Some(&version) = bytes.first() else {
        return Err(DecodeError::Truncated);
    };
    if version != VERSION {
        return Err(DecodeError::UnknownVersion(version));
    }
    let Some(header) = bytes.get(..HEADER_LEN) else {
        return Err(DecodeError::Truncated);
    };
    let u64_at = |i: usize| u64::from_be_bytes(header[i..i + 8].try_into().expect("8 bytes"));
    let kind = match header[17] {
        0 => PayloadKind::Text,
        1 => PayloadKind::Binary,
        2 => PayloadKind::Json,
        k => return Err(DecodeError::UnknownKind(k)),
    };
    let flags = header[18];
    if flags & !FLAG_SENDER != 0 {
        return Err(DecodeError::UnknownFlags(flags));
    }
    let mut rest = &bytes[HEADER_LEN..];
    let from = if flags & FLAG_SENDER != 0 {
        let len = match rest {
            [a, b, ..] => u16::from_be_bytes([*a, *b]) as usize,
            _ => return Err(DecodeError::Truncated),
        };
        let name = rest.get(2..2 + len).ok_or(DecodeError::Truncated)?;
        rest = &rest[2 + len..];
        Some(std::str::from_utf8(name).map_err(|_| DecodeError::InvalidSender)?)
    } else {
        None
    };
    if kind != PayloadKind::Binary && std::str::from_utf8(rest).is_err() {
        return Err(DecodeError::InvalidUtf8);
    }
    Ok(Message {
        node_id: u64_at(1),
        timestamp_ms: u64_at(9),
        kind,
        from,
        data: rest,
    })
}

/// A numbered publication's `(epoch, seq)` and message: see the module
/// docs. `Ok(None)` when `bytes` is not a numbered publication.
pub fn decode_numbered(bytes: &[u8]) -> Result<Option<(u64, u64, Message<'_>)>, DecodeError> {
    let Some(rest) = bytes.strip_prefix(b"S") else {
        return Ok(None);
    };
    let (epoch, rest) = decimal(rest)?;
    let (seq, rest) = decimal(rest)?;
    Ok(Some((epoch, seq, decode(rest)?)))
}

/// A presence report: node `node_id`'s subscribers of a topic, valid until
/// `expires_ms`; `None` (sent with expiry 0) when it has none left.
pub fn encode_presence(node_id: u64, expires_ms: u64, members: Option<&MemberCounts>) -> Vec<u8> {
    let mut out = format!(
        "P{node_id:016x}:{}:",
        if members.is_some() { expires_ms } else { 0 }
    )
    .into_bytes();
    for (name, n) in members.map_or(&[][..], |m| &m.names[..]) {
        let name = cut_sender(name);
        out.extend_from_slice(&(name.len() as u16).to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&n.to_be_bytes());
    }
    out
}

/// A presence report's node, expiry and members (`None`: none left);
/// `Ok(None)` when `bytes` is not a presence report.
#[allow(clippy::type_complexity)]
pub fn decode_presence(
    bytes: &[u8],
) -> Result<Option<(u64, u64, Option<MemberCounts>)>, DecodeError> {
    let Some(rest) = bytes.strip_prefix(b"P") else {
        return Ok(None);
    };
    let node = rest
        .get(..17)
        .filter(|h| h[16] == b':')
        .and_then(|h| std::str::from_utf8(&h[..16]).ok())
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .ok_or(DecodeError::BadNumber)?;
    let (expires, mut rest) = decimal(&rest[17..])?;
    if expires == 0 {
        return Ok(Some((node, 0, None)));
    }
    let mut names = Vec::new();
    while !rest.is_empty() {
        let [a, b, tail @ ..] = rest else {
            return Err(DecodeError::Truncated);
        };
        let len = u16::from_be_bytes([*a, *b]) as usize;
        let name = tail.get(..len).ok_or(DecodeError::Truncated)?;
        let count = tail.get(len..len + 4).ok_or(DecodeError::Truncated)?;
        let name = std::str::from_utf8(name).map_err(|_| DecodeError::InvalidSender)?;
        names.push((
            Arc::from(name),
            u32::from_be_bytes(count.try_into().expect("4 bytes")),
        ));
        rest = &tail[len + 4..];
    }
    Ok(Some((node, expires, Some(MemberCounts { names }))))
}

/// A decimal `u64` (1 to 20 digits) followed by `:`, and what follows.
fn decimal(bytes: &[u8]) -> Result<(u64, &[u8]), DecodeError> {
    let end = bytes
        .iter()
        .take(21)
        .position(|&b| b == b':')
        .ok_or(DecodeError::BadNumber)?;
    let n = std::str::from_utf8(&bytes[..end])
        .ok()
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse().ok())
        .ok_or(DecodeError::BadNumber)?;
    Ok((n, &bytes[end + 1..]))
}

/// `name` cut to at most [`MAX_SENDER_LEN`] bytes at a character boundary.
fn cut_sender(name: &str) -> &str {
    if name.len() <= MAX_SENDER_LEN {
        return name;
    }
    let mut end = MAX_SENDER_LEN;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg<'a>(kind: PayloadKind, from: Option<&'a str>, data: &'a [u8]) -> Message<'a> {
        Message {
            node_id: 0x0102_0304_0506_0708,
            timestamp_ms: 1_700_000_000_123,
            kind,
            from,
            data,
        }
    }

    #[test]
    fn layout_is_as_documented() {
        let m = msg(PayloadKind::Text, Some("bob"), b"hi");
        let b = m.encode();
        assert_eq!(b.len(), m.encoded_len());
        assert_eq!(b[0], 1);
        assert_eq!(&b[1..9], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&b[9..17], &1_700_000_000_123u64.to_be_bytes());
        assert_eq!(&b[17..21], &[0, 1, 0, 3]);
        assert_eq!(&b[21..], b"bobhi");
        let m = msg(PayloadKind::Binary, None, b"");
        assert_eq!(m.encode().len(), HEADER_LEN);
    }

    #[test]
    fn round_trips() {
        for m in [
            msg(PayloadKind::Text, Some("alice"), "héllo".as_bytes()),
            msg(PayloadKind::Binary, None, &[0xff, 0, 1]),
            msg(PayloadKind::Json, Some(""), br#"{"a":1}"#),
            msg(PayloadKind::Text, None, b""),
        ] {
            assert_eq!(decode(&m.encode()), Ok(m));
        }
    }

    #[test]
    fn long_sender_is_cut_at_a_char_boundary() {
        let name = format!("a{}", "é".repeat(MAX_SENDER_LEN)); // odd length
        let m = msg(PayloadKind::Text, Some(&name), b"x");
        let b = m.encode();
        let d = decode(&b).unwrap();
        let from = d.from.unwrap();
        assert_eq!(from.len(), MAX_SENDER_LEN);
        assert!(name.starts_with(from));
        assert_eq!(d.data, b"x");
        assert_eq!(b.len(), m.encoded_len());
    }

    #[test]
    fn numbered_publications() {
        let m = msg(PayloadKind::Text, Some("bob"), b"hi");
        let mut b = b"S1700000000123456:42:".to_vec();
        b.extend(m.encode());
        assert_eq!(
            decode_numbered(&b),
            Ok(Some((1_700_000_000_123_456, 42, m)))
        );
        assert_eq!(decode_numbered(&m.encode()), Ok(None));
        for bad in [
            &b"S:1:"[..],
            b"S1::",
            b"S1:x:",
            b"S1",
            b"S99999999999999999999999:1:",
        ] {
            assert_eq!(decode_numbered(bad), Err(DecodeError::BadNumber), "{bad:?}");
        }
        assert_eq!(decode_numbered(b"S1:2:"), Err(DecodeError::Truncated));
        for n in 0..b.len() {
            let _ = decode_numbered(&b[..n]);
        }
    }

    #[test]
    fn presence_reports() {
        let m = MemberCounts {
            names: vec![(Arc::from("alice"), 2), (Arc::from("bob"), 1)],
        };
        let b = encode_presence(0xabc, 1_700_000_000_000, Some(&m));
        assert!(b.starts_with(b"P0000000000000abc:1700000000000:"));
        assert_eq!(
            decode_presence(&b),
            Ok(Some((0xabc, 1_700_000_000_000, Some(m))))
        );
        let gone = encode_presence(7, 123, None);
        assert_eq!(gone, b"P0000000000000007:0:");
        assert_eq!(decode_presence(&gone), Ok(Some((7, 0, None))));
        assert_eq!(decode_presence(b"S1:1:"), Ok(None));
        assert_eq!(decode_presence(b"Pxyz:1:"), Err(DecodeError::BadNumber));
        for n in 0..b.len() {
            let _ = decode_presence(&b[..n]);
        }
        assert_eq!(
            decode_presence(&b[..b.len() - 1]),
            Err(DecodeError::Truncated)
        );
    }

    #[test]
    fn malformed_messages_are_errors() {
        let good = msg(PayloadKind::Text, Some("bob"), b"hi").encode();
        let with = |i: usize, v: u8| {
            let mut b = good.clone();
            b[i] = v;
            b
        };
        assert_eq!(decode(b""), Err(DecodeError::Truncated));
        assert_eq!(decode(b"\x02abc"), Err(DecodeError::UnknownVersion(2)));
        assert_eq!(decode(&good[..18]), Err(DecodeError::Truncated));
        assert_eq!(decode(&good[..20]), Err(DecodeError::Truncated));
        assert_eq!(decode(&good[..23]), Err(DecodeError::Truncated));
        assert_eq!(decode(&with(17, 3)), Err(DecodeError::UnknownKind(3)));
        assert_eq!(decode(&with(18, 3)), Err(DecodeError::UnknownFlags(3)));
        assert_eq!(decode(&with(21, 0xff)), Err(DecodeError::InvalidSender));
        assert_eq!(decode(&with(24, 0xff)), Err(DecodeError::InvalidUtf8));
        // The same byte is fine in binary data.
        let mut b = with(24, 0xff);
        b[17] = 1;
        assert_eq!(decode(&b).unwrap().data, b"\xffi");
        // Every prefix and every single-byte corruption decodes or errs, no panic.
        for n in 0..good.len() {
            let _ = decode(&good[..n]);
            for v in [0u8, 1, 0x7f, 0x80, 0xff] {
                let _ = decode(&with(n, v));
            }
        }
    }
}
