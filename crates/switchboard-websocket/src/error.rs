//! Error types of the protocol core: [`ProtocolError`] (a peer violated the
//! protocol; each maps to the close code we send) and the top-level [`Error`].

use std::fmt;

use crate::close::CloseCode;

/// A violation of RFC 6455 / RFC 7692 by the peer (or a local limit hit).
///
/// Each variant knows the close code ([`close_code`](Self::close_code)) and a
/// short reason ([`reason`](Self::reason)) that the connection sends in its
/// close frame before failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// Opcode 0x3–0x7 or 0xB–0xF.
    ReservedOpcode(u8),
    /// 64-bit payload length with the most significant bit set.
    InvalidLength,
    /// Control frame with a payload longer than 125 bytes.
    ControlFrameTooBig,
    /// Control frame with FIN clear.
    FragmentedControlFrame,
    /// Server received an unmasked frame from a client.
    UnmaskedFrame,
    /// Client received a masked frame from a server.
    MaskedFrame,
    /// RSV bit set that no negotiated extension defines (incl. RSV1 on a
    /// control frame or a continuation frame).
    ReservedBits,
    /// Continuation frame with no fragmented message in progress.
    UnexpectedContinuation,
    /// New Text/Binary frame while a fragmented message is in progress.
    ExpectedContinuation,
    /// Close frame payload of length 1.
    InvalidClosePayload,
    /// Close frame with a status code not allowed on the wire.
    InvalidCloseCode(u16),
    /// Text message (or close reason) that is not valid UTF-8.
    InvalidUtf8,
    /// Frame or message exceeds the configured size limit.
    MessageTooBig,
    /// permessage-deflate data that fails to inflate.
    InvalidCompressedData,
}

impl ProtocolError {
    /// The close code sent to the peer for this error.
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolError::InvalidUtf8 | ProtocolError::InvalidCompressedData => {
                CloseCode::INVALID_PAYLOAD
            }
            ProtocolError::MessageTooBig => CloseCode::TOO_BIG,
            _ => CloseCode::PROTOCOL,
        }
    }

    /// Short human-readable reason, used as the close frame reason.
    pub fn reason(&self) -> &'static str {
        match self {
            ProtocolError::ReservedOpcode(_) => "reserved opcode",
            ProtocolError::InvalidLength => "invalid payload length",
            ProtocolError::ControlFrameTooBig => "control frame too big",
            ProtocolError::FragmentedControlFrame => "fragmented control frame",
            ProtocolError::UnmaskedFrame => "unmasked client frame",
            ProtocolError::MaskedFrame => "masked server frame",
            ProtocolError::ReservedBits => "reserved bits set",
            ProtocolError::UnexpectedContinuation => "unexpected continuation frame",
            ProtocolError::ExpectedContinuation => "expected continuation frame",
            ProtocolError::InvalidClosePayload => "invalid close payload",
            ProtocolError::InvalidCloseCode(_) => "invalid close code",
            ProtocolError::InvalidUtf8 => "invalid UTF-8",
            ProtocolError::MessageTooBig => "message too big",
            ProtocolError::InvalidCompressedData => "invalid compressed data",
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            ProtocolError::InvalidCloseCode(c) => write!(f, "invalid close code {c}"),
            other => f.write_str(other.reason()),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// Error returned by [`Connection::receive`](crate::Connection::receive).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The peer violated the protocol. A close frame carrying
    /// [`ProtocolError::close_code`] has already been queued in the writer
    /// and the connection is closed: flush the output, then drop the
    /// transport.
    Protocol(ProtocolError),
}

impl Error {
    /// The close code associated with this error.
    pub fn close_code(&self) -> CloseCode {
        match self {
            Error::Protocol(e) => e.close_code(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Protocol(e) => write!(f, "WebSocket protocol error: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Protocol(e) => Some(e),
        }
    }
}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        Error::Protocol(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(
            ProtocolError::InvalidUtf8.close_code(),
            CloseCode::INVALID_PAYLOAD
        );
        assert_eq!(
            ProtocolError::MessageTooBig.close_code(),
            CloseCode::TOO_BIG
        );
        assert_eq!(
            ProtocolError::ReservedBits.close_code(),
            CloseCode::PROTOCOL
        );
        assert_eq!(
            Error::Protocol(ProtocolError::InvalidCloseCode(5)).to_string(),
            "WebSocket protocol error: invalid close code 5"
        );
        for e in [
            ProtocolError::ReservedOpcode(3),
            ProtocolError::InvalidCompressedData,
            ProtocolError::UnexpectedContinuation,
        ] {
            assert!(e.reason().len() <= 123);
        }
    }
}
