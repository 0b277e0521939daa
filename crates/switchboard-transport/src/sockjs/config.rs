//! [`SockJsConfig`]: one endpoint's options — the protocol core's service
//! options plus what the transport needs (message and body size limits,
//! the WebSocket transport's compression).

use switchboard_websocket::DeflateConfig;

/// Options of one [`SockJs`](super::SockJs) endpoint.
///
/// ```
/// use std::time::Duration;
/// use switchboard_transport::sockjs::SockJsConfig;
///
/// let mut config = SockJsConfig::default();
/// config.service.heartbeat_time = Duration::from_secs(10);
/// assert!(config.service.websocket_enabled);
/// ```
#[derive(Debug, Clone)]
pub struct SockJsConfig {
    /// The SockJS service options (heartbeat, disconnect delay, stream
    /// limit, message cache, cookie, CORS, WebSocket on/off).
    pub service: switchboard_sockjs::SockJsConfig,
    /// Largest `xhr_send` / `jsonp_send` body and WebSocket message
    /// accepted, in bytes (a larger body: 413; a larger WebSocket
    /// message: close 1009).
    pub max_message_size: usize,
    /// permessage-deflate for the `websocket` transport (`None`: off).
    pub per_message_deflate: Option<DeflateConfig>,
}

impl Default for SockJsConfig {
    fn default() -> Self {
        SockJsConfig {
            service: switchboard_sockjs::SockJsConfig::default(),
            max_message_size: 1 << 20,
            per_message_deflate: None,
        }
    }
}
