//! HTTP long-polling payloads: several packets in one request or response
//! body, joined by the record separator `\x1e`, binary messages as `b` +
//! base64 (`engine.io-parser` `encodePayload` / `decodePayload`, protocol 4).
//!
//! The server never splits a response: Node sends every queued packet in
//! one body whatever `maxPayload` is (the limit only binds what the *client*
//! POSTs, and `engine.io-client` splits its own payloads to respect it).

use bytes::{Bytes, BytesMut};

use crate::packet::{DecodeError, Packet};
use crate::Utf8Bytes;

/// The record separator between the packets of a polling payload.
pub const RECORD_SEPARATOR: u8 = 0x1e;

/// Encodes `packets` into one polling response body
/// (`text/plain; charset=UTF-8`), e.g. `4hello\x1e4world`.
pub fn encode_payload(packets: &[Packet]) -> Bytes {
    let len: usize = packets.iter().map(|p| p.encoded_len_hint() + 1).sum();
    let mut out = BytesMut::with_capacity(len);
    for (i, packet) in packets.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(&[RECORD_SEPARATOR]);
        }
        packet.encode_text_into(&mut out);
    }
    out.freeze()
}

/// Splits a polling request body into packets, lazily and without copying.
///
/// Like Node, the iterator yields the packets before the first malformed
/// record, then that record's error, then stops. An empty body is one empty
/// record, hence an error.
pub fn decode_payload(body: Utf8Bytes) -> PayloadDecoder {
    PayloadDecoder { rest: Some(body) }
}

/// Iterator over the packets of a polling payload, see [`decode_payload`].
#[derive(Debug, Clone)]
pub struct PayloadDecoder {
    rest: Option<Utf8Bytes>,
}

impl Iterator for PayloadDecoder {
    type Item = Result<Packet, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.rest.take()?;
        let bytes = rest.clone().into_bytes();
        let record = match bytes.iter().position(|&b| b == RECORD_SEPARATOR) {
            Some(i) => {
                // The separator is ASCII: both halves stay valid UTF-8.
                self.rest = Some(Utf8Bytes::from_utf8_slice_unchecked(bytes.slice(i + 1..)));
                Utf8Bytes::from_utf8_slice_unchecked(bytes.slice(..i))
            }
            None => rest,
        };
        let packet = Packet::decode_text(record);
        if packet.is_err() {
            self.rest = None;
        }
        Some(packet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(s: &'static str) -> Vec<Result<Packet, DecodeError>> {
        decode_payload(Utf8Bytes::from_static(s)).collect()
    }

    #[test]
    fn encodes_protocol_examples() {
        let body = encode_payload(&[Packet::text("hello"), Packet::text("world")]);
        assert_eq!(&body[..], b"4hello\x1e4world");
        let body = encode_payload(&[Packet::text("hello"), Packet::binary(vec![1, 2, 3, 4])]);
        assert_eq!(&body[..], b"4hello\x1ebAQIDBA==");
        assert_eq!(&encode_payload(&[Packet::Noop])[..], b"6");
        assert_eq!(
            &encode_payload(&[Packet::Noop, Packet::Close])[..],
            b"6\x1e1"
        );
    }

    #[test]
    fn decodes_protocol_examples() {
        assert_eq!(
            decode("4hello\x1e4world"),
            vec![Ok(Packet::text("hello")), Ok(Packet::text("world"))]
        );
        assert_eq!(
            decode("4hello\x1ebAQIDBA=="),
            vec![
                Ok(Packet::text("hello")),
                Ok(Packet::binary(vec![1, 2, 3, 4]))
            ]
        );
        assert_eq!(decode("3"), vec![Ok(Packet::Pong("".into()))]);
    }

    #[test]
    fn stops_after_the_first_error() {
        assert_eq!(
            decode("4a\x1ex\x1e4b"),
            vec![Ok(Packet::text("a")), Err(DecodeError::UnknownType('x'))]
        );
        assert_eq!(decode(""), vec![Err(DecodeError::Empty)]);
        assert_eq!(
            decode("4a\x1e"),
            vec![Ok(Packet::text("a")), Err(DecodeError::Empty)]
        );
    }

    #[test]
    fn multibyte_text_survives_splitting() {
        assert_eq!(
            decode("4é\x1e4€"),
            vec![Ok(Packet::text("é")), Ok(Packet::text("€"))]
        );
    }
}
