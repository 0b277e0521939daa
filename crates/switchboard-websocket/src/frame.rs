//! Frame layer (RFC 6455 §5.2): opcodes, parsing and encoding of frame
//! headers, and one-shot encoding of complete server-role frames that can be
//! shared between many recipients.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::ProtocolError;

/// Largest possible frame header: 2 + 8 (extended length) + 4 (mask key).
pub const MAX_HEADER_LEN: usize = 14;

/// Largest payload of a control frame.
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// A frame opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 0x0: continuation of a fragmented message.
    Continuation,
    /// 0x1: UTF-8 text (first frame of a message).
    Text,
    /// 0x2: binary data (first frame of a message).
    Binary,
    /// 0x8: connection close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
}

impl OpCode {
    /// Whether this is a control opcode (Close, Ping, Pong).
    #[inline]
    pub fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }

    /// Whether this is a data opcode (Continuation, Text, Binary).
    #[inline]
    pub fn is_data(self) -> bool {
        !self.is_control()
    }

    /// The 4-bit wire value.
    #[inline]
    pub fn as_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Decodes a 4-bit wire value; `None` for reserved opcodes.
    #[inline]
    pub fn from_u8(v: u8) -> Option<OpCode> {
        Some(match v {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }
}

/// A parsed (or to-be-encoded) frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Final fragment of a message.
    pub fin: bool,
    /// RSV1 (used by permessage-deflate to mark compressed messages).
    pub rsv1: bool,
    /// RSV2 (no extension defines it).
    pub rsv2: bool,
    /// RSV3 (no extension defines it).
    pub rsv3: bool,
    /// The opcode.
    pub opcode: OpCode,
    /// Masking key, present on client-to-server frames.
    pub mask: Option<[u8; 4]>,
    /// Payload length in bytes.
    pub payload_len: u64,
}

impl FrameHeader {
    /// A FIN, unmasked header with no RSV bits.
    #[inline]
    pub fn new(opcode: OpCode, payload_len: u64) -> Self {
        FrameHeader {
            fin: true,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode,
            mask: None,
            payload_len,
        }
    }

    /// Number of header bytes needed to parse a header whose first bytes are
    /// `buf` (2 if fewer than two bytes are available yet).
    #[inline]
    pub fn required_len(buf: &[u8]) -> usize {
        if buf.len() < 2 {
            return 2;
        }
        let b1 = buf[1];
        let ext = match b1 & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        2 + ext + if b1 & 0x80 != 0 { 4 } else { 0 }
    }

    /// Parses a frame header from the start of `buf`.
    ///
    /// Returns `Ok(None)` if more bytes are needed, otherwise the header and
    /// its encoded length. Fails as early as possible on reserved opcodes, a
    /// 64-bit length with the most significant bit set, and control frames
    /// that are fragmented or longer than 125 bytes. Non-minimal length
    /// encodings are accepted.
    ///
    /// Always inlined: called out of line, its result went back through
    /// memory and the caller's wide load of it missed store forwarding
    /// (the hottest instructions of a 32-byte echo's frame loop).
    #[inline(always)]
    pub fn parse(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
        let Some(&b0) = buf.first() else {
            return Ok(None);
        };
        let opcode = OpCode::from_u8(b0 & 0x0f).ok_or(ProtocolError::ReservedOpcode(b0 & 0x0f))?;
        let fin = b0 & 0x80 != 0;
        if opcode.is_control() && !fin {
            return Err(ProtocolError::FragmentedControlFrame);
        }
        let Some(&b1) = buf.get(1) else {
            return Ok(None);
        };
        let len7 = b1 & 0x7f;
        if opcode.is_control() && len7 as usize > MAX_CONTROL_PAYLOAD {
            return Err(ProtocolError::ControlFrameTooBig);
        }
        if len7 == 127 {
            if let Some(&b2) = buf.get(2) {
                if b2 & 0x80 != 0 {
                    return Err(ProtocolError::InvalidLength);
                }
            }
        }
        let hlen = Self::required_len(buf);
        if buf.len() < hlen {
            return Ok(None);
        }
        let (payload_len, mut pos) = match len7 {
            126 => (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
            127 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&buf[2..10]);
                (u64::from_be_bytes(b), 10)
            }
            n => (u64::from(n), 2),
        };
        let mask = if b1 & 0x80 != 0 {
            let k = [buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]];
            pos += 4;
            Some(k)
        } else {
            None
        };
        debug_assert_eq!(pos, hlen);
        Ok(Some((
            FrameHeader {
                fin,
                rsv1: b0 & 0x40 != 0,
                rsv2: b0 & 0x20 != 0,
                rsv3: b0 & 0x10 != 0,
                opcode,
                mask,
                payload_len,
            },
            hlen,
        )))
    }

    /// Length of this header once encoded (minimal length encoding).
    #[inline]
    pub fn encoded_len(&self) -> usize {
        header_len(self.payload_len, self.mask.is_some())
    }

    /// Appends the encoded header (not the payload) to `out`, using the
    /// minimal length encoding. The payload must be masked separately.
    #[inline]
    pub fn encode(&self, out: &mut BytesMut) {
        let mut tmp = [0u8; MAX_HEADER_LEN];
        let n = self.encode_to_array(&mut tmp);
        out.extend_from_slice(&tmp[..n]);
    }

    /// Encodes the header into a stack buffer, returning its length.
    #[inline]
    pub(crate) fn encode_to_array(&self, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
        out[0] = (u8::from(self.fin) << 7)
            | (u8::from(self.rsv1) << 6)
            | (u8::from(self.rsv2) << 5)
            | (u8::from(self.rsv3) << 4)
            | self.opcode.as_u8();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let len = self.payload_len;
        let mut pos = if len < 126 {
            out[1] = mask_bit | len as u8;
            2
        } else if len <= u64::from(u16::MAX) {
            out[1] = mask_bit | 126;
            out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            4
        } else {
            out[1] = mask_bit | 127;
            out[2..10].copy_from_slice(&len.to_be_bytes());
            10
        };
        if let Some(k) = self.mask {
            out[pos..pos + 4].copy_from_slice(&k);
            pos += 4;
        }
        pos
    }
}

/// Encoded header length for a payload of `payload_len` bytes.
#[inline]
pub fn header_len(payload_len: u64, masked: bool) -> usize {
    let base = if payload_len < 126 {
        2
    } else if payload_len <= u64::from(u16::MAX) {
        4
    } else {
        10
    };
    base + if masked { 4 } else { 0 }
}

/// Encodes a complete, unmasked, FIN frame (server role) into a new `Bytes`.
///
/// Use this to encode a broadcast message once and hand clones of the same
/// `Bytes` to every recipient's [`Writer::send_prepared`](crate::Writer::send_prepared).
///
/// ```
/// use switchboard_websocket::{encode_frame, OpCode};
/// let f = encode_frame(OpCode::Text, b"Hello");
/// assert_eq!(&f[..], b"\x81\x05Hello");
/// ```
pub fn encode_frame(opcode: OpCode, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(header_len(payload.len() as u64, false) + payload.len());
    encode_frame_into(opcode, payload, &mut out);
    out.freeze()
}

/// Appends a complete, unmasked, FIN frame (server role) to `out`.
#[inline]
pub fn encode_frame_into(opcode: OpCode, payload: &[u8], out: &mut BytesMut) {
    let h = FrameHeader::new(opcode, payload.len() as u64);
    let mut tmp = [0u8; MAX_HEADER_LEN];
    let n = h.encode_to_array(&mut tmp);
    out.reserve(n + payload.len());
    out.put_slice(&tmp[..n]);
    out.put_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(h: FrameHeader) {
        let mut out = BytesMut::new();
        h.encode(&mut out);
        assert_eq!(out.len(), h.encoded_len());
        let (p, n) = FrameHeader::parse(&out).unwrap().unwrap();
        assert_eq!(p, h);
        assert_eq!(n, out.len());
        // Every strict prefix is incomplete.
        for i in 0..out.len() {
            assert_eq!(FrameHeader::parse(&out[..i]).unwrap(), None, "prefix {i}");
            assert!(FrameHeader::required_len(&out[..i]) > i);
        }
        assert_eq!(FrameHeader::required_len(&out), out.len());
    }

    #[test]
    fn roundtrip_lengths() {
        for &len in &[0u64, 1, 125, 126, 127, 65535, 65536, 1 << 32, (1 << 63) - 1] {
            for &mask in &[None, Some([1, 2, 3, 4])] {
                for op in [OpCode::Continuation, OpCode::Text, OpCode::Binary] {
                    for (fin, rsv1) in [(true, false), (false, true)] {
                        roundtrip(FrameHeader {
                            fin,
                            rsv1,
                            rsv2: false,
                            rsv3: len == 1,
                            opcode: op,
                            mask,
                            payload_len: len,
                        });
                    }
                }
            }
        }
        for op in [OpCode::Close, OpCode::Ping, OpCode::Pong] {
            roundtrip(FrameHeader::new(op, 125));
            roundtrip(FrameHeader::new(op, 0));
        }
    }

    #[test]
    fn length_encodings() {
        assert_eq!(header_len(125, false), 2);
        assert_eq!(header_len(126, false), 4);
        assert_eq!(header_len(65535, false), 4);
        assert_eq!(header_len(65536, false), 10);
        assert_eq!(header_len(65536, true), 14);
        let f = encode_frame(OpCode::Binary, &[0u8; 126]);
        assert_eq!(&f[..4], &[0x82, 126, 0, 126]);
        assert_eq!(f.len(), 130);
        let f = encode_frame(OpCode::Binary, &vec![0u8; 65536]);
        assert_eq!(&f[..10], &[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(f.len(), 65546);
    }

    #[test]
    fn full_frames() {
        for len in [0usize, 125, 126, 65535, 65536] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let f = encode_frame(OpCode::Binary, &payload);
            let (h, n) = FrameHeader::parse(&f).unwrap().unwrap();
            assert!(h.fin && h.mask.is_none());
            assert_eq!(h.payload_len as usize, len);
            assert_eq!(&f[n..], &payload[..]);
        }
    }

    #[test]
    fn non_minimal_lengths_accepted() {
        let (h, n) = FrameHeader::parse(&[0x82, 126, 0, 5]).unwrap().unwrap();
        assert_eq!((h.payload_len, n), (5, 4));
        let (h, n) = FrameHeader::parse(&[0x82, 127, 0, 0, 0, 0, 0, 0, 0, 5])
            .unwrap()
            .unwrap();
        assert_eq!((h.payload_len, n), (5, 10));
    }

    #[test]
    fn rejects() {
        for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            assert_eq!(
                FrameHeader::parse(&[0x80 | op]),
                Err(ProtocolError::ReservedOpcode(op))
            );
        }
        assert_eq!(
            FrameHeader::parse(&[0x82, 127, 0x80]),
            Err(ProtocolError::InvalidLength)
        );
        assert_eq!(
            FrameHeader::parse(&[0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0]),
            Err(ProtocolError::InvalidLength)
        );
        assert_eq!(
            FrameHeader::parse(&[0x89, 126]),
            Err(ProtocolError::ControlFrameTooBig)
        );
        assert_eq!(
            FrameHeader::parse(&[0x09]),
            Err(ProtocolError::FragmentedControlFrame)
        );
        assert!(FrameHeader::parse(&[0x89, 125]).unwrap().is_some());
    }

    #[test]
    fn opcodes() {
        for v in 0..16u8 {
            if let Some(op) = OpCode::from_u8(v) {
                assert_eq!(op.as_u8(), v);
                assert_eq!(op.is_control(), v >= 8);
            }
        }
    }
}
