//! The WebSocket endpoints' request checks that come before the handshake
//! (the handshake itself belongs to the WebSocket layer): answers a plain
//! GET or a mangled `Connection` header with the 400s the protocol test
//! expects.

use http::header::{CONNECTION, UPGRADE};
use http::HeaderMap;

use crate::error::SockJsError;

/// Checks that `request` asks for a WebSocket upgrade: `Upgrade:
/// websocket` (any case), and a `Connection` header with an `upgrade`
/// token (`keep-alive, Upgrade` counts, as Firefox 6 sends it).
///
/// ```
/// use http::HeaderMap;
/// use switchboard_sockjs::{check_websocket_upgrade, SockJsError};
///
/// let mut h = HeaderMap::new();
/// assert_eq!(check_websocket_upgrade(&h), Err(SockJsError::NotWebSocketUpgrade));
/// h.insert("upgrade", "WebSocket".parse().unwrap());
/// h.insert("connection", "keep-alive, Upgrade".parse().unwrap());
/// assert_eq!(check_websocket_upgrade(&h), Ok(()));
/// ```
pub fn check_websocket_upgrade(request: &HeaderMap) -> Result<(), SockJsError> {
    let upgrade = request
        .get(UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    if !upgrade {
        return Err(SockJsError::NotWebSocketUpgrade);
    }
    let connection = request
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if !connection {
        return Err(SockJsError::ConnectionNotUpgrade);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn checks() {
        // WebsocketHttpErrors.test_httpMethod / test_invalidConnectionHeader
        let mut h = HeaderMap::new();
        assert_eq!(
            check_websocket_upgrade(&h),
            Err(SockJsError::NotWebSocketUpgrade)
        );
        h.insert(UPGRADE, HeaderValue::from_static("WebSocket"));
        h.insert(CONNECTION, HeaderValue::from_static("close"));
        assert_eq!(
            check_websocket_upgrade(&h),
            Err(SockJsError::ConnectionNotUpgrade)
        );
        h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        assert_eq!(check_websocket_upgrade(&h), Ok(()));
        h.insert(UPGRADE, HeaderValue::from_static("h2c"));
        assert_eq!(
            check_websocket_upgrade(&h),
            Err(SockJsError::NotWebSocketUpgrade)
        );
    }
}
