//! Close status codes (RFC 6455 §7.4, IANA registry) and parsing/validation
//! of Close frame payloads.

use std::fmt;

use crate::error::ProtocolError;

/// A WebSocket close status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: normal closure.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: endpoint going away (server shutdown, page navigation).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: protocol error.
    pub const PROTOCOL: CloseCode = CloseCode(1002);
    /// 1003: unsupported data type.
    pub const UNSUPPORTED: CloseCode = CloseCode(1003);
    /// 1005: no status code present (never sent on the wire).
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: abnormal closure (never sent on the wire).
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: invalid payload data (e.g. invalid UTF-8 in a text message).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: policy violation.
    pub const POLICY: CloseCode = CloseCode(1008);
    /// 1009: message too big.
    pub const TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: client expected an extension the server did not negotiate.
    pub const EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: internal server error.
    pub const INTERNAL: CloseCode = CloseCode(1011);
    /// 1012: service restart.
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later.
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    /// 1014: bad gateway.
    pub const BAD_GATEWAY: CloseCode = CloseCode(1014);

    /// The numeric code.
    #[inline]
    pub fn as_u16(self) -> u16 {
        self.0
    }

    /// Whether this code may appear in a Close frame (RFC 6455 §7.4 and the
    /// IANA registry): 1000–1003, 1007–1014 and 3000–4999.
    pub fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl From<u16> for CloseCode {
    fn from(c: u16) -> Self {
        CloseCode(c)
    }
}

impl From<CloseCode> for u16 {
    fn from(c: CloseCode) -> Self {
        c.0
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Parses and validates a received Close frame payload.
///
/// Returns `None` for an empty payload, otherwise the code and the UTF-8
/// reason. Errors: length 1 or a code not valid on the wire → 1002 errors;
/// a reason that is not valid UTF-8 → [`ProtocolError::InvalidUtf8`] (1007).
pub fn parse_close_payload(payload: &[u8]) -> Result<Option<(CloseCode, &str)>, ProtocolError> {
    match payload.len() {
        0 => Ok(None),
        1 => Err(ProtocolError::InvalidClosePayload),
        _ => {
            let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
            if !code.is_valid_on_wire() {
                return Err(ProtocolError::InvalidCloseCode(code.0));
            }
            let reason = simdutf8::basic::from_utf8(&payload[2..])
                .map_err(|_| ProtocolError::InvalidUtf8)?;
            Ok(Some((code, reason)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_validity() {
        for c in 0..=5000u16 {
            let valid = CloseCode(c).is_valid_on_wire();
            let expected = matches!(c, 1000..=1003 | 1007..=1011 | 1012..=1014 | 3000..=4999);
            assert_eq!(valid, expected, "code {c}");
        }
        assert!(!CloseCode(1004).is_valid_on_wire());
        assert!(!CloseCode(1005).is_valid_on_wire());
        assert!(!CloseCode(1006).is_valid_on_wire());
        assert!(!CloseCode(1015).is_valid_on_wire());
        assert!(!CloseCode(999).is_valid_on_wire());
        assert!(!CloseCode(2999).is_valid_on_wire());
        assert!(!CloseCode(5000).is_valid_on_wire());
        assert!(!CloseCode(65535).is_valid_on_wire());
    }

    #[test]
    fn payloads() {
        assert_eq!(parse_close_payload(b""), Ok(None));
        assert_eq!(
            parse_close_payload(&[3]),
            Err(ProtocolError::InvalidClosePayload)
        );
        assert_eq!(
            parse_close_payload(&[0x03, 0xe8, b'b', b'y', b'e']),
            Ok(Some((CloseCode::NORMAL, "bye")))
        );
        assert_eq!(
            parse_close_payload(&[0x03, 0xed]),
            Err(ProtocolError::InvalidCloseCode(1005))
        );
        assert_eq!(
            parse_close_payload(&[0x03, 0xe8, 0xff]),
            Err(ProtocolError::InvalidUtf8)
        );
        assert_eq!(
            parse_close_payload(&[0x0f, 0xa0]),
            Ok(Some((CloseCode(4000), "")))
        );
    }
}
