//! The opening handshake (RFC 6455 §4): shared pieces (accept-key
//! computation, header token matching, [`HandshakeError`]) plus the
//! [`server`] and [`client`] roles.

use std::fmt;

use base64::Engine as _;
use http::{HeaderMap, HeaderValue, StatusCode};
use sha1::{Digest, Sha1};

pub mod client;
pub mod server;

pub use client::{ClientAccepted, ClientHandshake, ClientRequest};
pub use server::{accept, Accepted, OriginCheck, ServerOptions};

/// The GUID appended to the key (RFC 6455 §1.3).
pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Computes `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` value:
/// base64(SHA-1(key ++ GUID)).
///
/// ```
/// use switchboard_websocket::handshake::accept_key;
/// assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn accept_key(key: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(key);
    h.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// A failed handshake.
///
/// In the server role, `status` is the HTTP status to answer with and
/// [`extra_headers`](Self::extra_headers) the headers to add. In the client
/// role, `status` is the status the server sent if the response was parsed,
/// otherwise `502 Bad Gateway`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeError {
    /// HTTP status.
    pub status: StatusCode,
    /// One-line reason, e.g. `"missing Sec-WebSocket-Key"`.
    pub reason: &'static str,
}

impl HandshakeError {
    pub(crate) const fn new(status: StatusCode, reason: &'static str) -> Self {
        HandshakeError { status, reason }
    }

    /// Headers the error response must carry: `Sec-WebSocket-Version: 13`
    /// (plus `Upgrade`/`Connection`) for 426 Upgrade Required (RFC 6455
    /// §4.4), `Allow: GET` for 405, otherwise none.
    pub fn extra_headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        if self.status == StatusCode::METHOD_NOT_ALLOWED {
            h.insert(http::header::ALLOW, HeaderValue::from_static("GET"));
        }
        if self.status == StatusCode::UPGRADE_REQUIRED {
            h.insert(
                http::header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
            h.insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
            h.insert(
                http::header::CONNECTION,
                HeaderValue::from_static("Upgrade"),
            );
        }
        h
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "WebSocket handshake failed ({}): {}",
            self.status, self.reason
        )
    }
}

impl std::error::Error for HandshakeError {}

/// Whether any value of header `name` is a comma-separated list containing
/// `token` (ASCII case-insensitive).
pub(crate) fn header_has_token(
    headers: &HeaderMap,
    name: http::header::HeaderName,
    token: &str,
) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

/// All comma-separated, trimmed, non-empty items of header `name`.
pub(crate) fn header_list(
    headers: &HeaderMap,
    name: http::header::HeaderName,
) -> impl Iterator<Item = &str> {
    headers
        .get_all(name)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let mut h = HeaderMap::new();
        h.append(
            "connection",
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(header_has_token(&h, http::header::CONNECTION, "upgrade"));
        assert!(!header_has_token(&h, http::header::CONNECTION, "close"));
        h.append("upgrade", HeaderValue::from_static("h2c"));
        h.append("upgrade", HeaderValue::from_static("WebSocket"));
        assert!(header_has_token(&h, http::header::UPGRADE, "websocket"));
        let items: Vec<_> = header_list(&h, http::header::CONNECTION).collect();
        assert_eq!(items, ["keep-alive", "Upgrade"]);
    }

    #[test]
    fn error_headers() {
        let e = HandshakeError::new(StatusCode::UPGRADE_REQUIRED, "unsupported version");
        assert_eq!(e.extra_headers()["sec-websocket-version"], "13");
        let e = HandshakeError::new(StatusCode::BAD_REQUEST, "x");
        assert!(e.extra_headers().is_empty());
        assert!(e.to_string().contains("400"));
    }
}
