//! [`SockJsConfig`]: the service options, named as Spring's
//! `AbstractSockJsService` names them, with Spring's and sockjs-node's
//! defaults. Only options; the code that reads them lives elsewhere.

use std::time::Duration;

/// Where the iframe page loads the client library from by default.
pub const DEFAULT_CLIENT_LIBRARY_URL: &str =
    "https://cdn.jsdelivr.net/npm/sockjs-client@1/dist/sockjs.min.js";

/// Options of one SockJS service (one URL prefix).
///
/// ```
/// use std::time::Duration;
/// use switchboard_sockjs::SockJsConfig;
///
/// let config = SockJsConfig {
///     stream_bytes_limit: 4096, // what the protocol test server uses
///     ..SockJsConfig::default()
/// };
/// assert_eq!(config.heartbeat_time, Duration::from_secs(25));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SockJsConfig {
    /// How long a receiver may stay silent before the server writes a
    /// heartbeat frame `h` (`heartbeatTime` / `heartbeat_delay`, 25 s).
    pub heartbeat_time: Duration,
    /// How long a session may have no receiver before it is closed as gone,
    /// and how long a closed session keeps answering with its close frame
    /// (`disconnectDelay` / `disconnect_delay`, 5 s).
    pub disconnect_delay: Duration,
    /// Bytes (transport framing included, prelude excluded) a streaming
    /// response may carry before it is ended so the client reconnects and
    /// the browser frees the response (`streamBytesLimit` /
    /// `response_limit`, 128 KiB).
    pub stream_bytes_limit: usize,
    /// How many outbound messages a session may hold for a receiver to come
    /// and take them; one more is refused with
    /// [`SendError::QueueFull`](crate::SendError::QueueFull)
    /// (`httpMessageCacheSize`, 100).
    pub http_message_cache_size: usize,
    /// Whether `/info` says `cookie_needed: true` and transports set a
    /// `JSESSIONID` cookie for load balancers' sticky sessions
    /// (`sessionCookieNeeded` / `jsessionid`). Off, as in sockjs-node
    /// (Spring turns it on).
    pub session_cookie_needed: bool,
    /// The `sockjs-client` script the iframe page loads
    /// (`clientLibraryUrl` / `sockjs_url`).
    pub client_library_url: String,
    /// Leave the `Access-Control-*` headers out, for a server that adds its
    /// own CORS handling (`suppressCors` / `disable_cors`, false).
    pub suppress_cors: bool,
    /// Serve the `websocket` transport and the raw `/websocket` endpoint,
    /// and announce `websocket: true` in `/info` (`webSocketEnabled`, true).
    pub websocket_enabled: bool,
}

impl Default for SockJsConfig {
    fn default() -> Self {
        SockJsConfig {
            heartbeat_time: Duration::from_secs(25),
            disconnect_delay: Duration::from_secs(5),
            stream_bytes_limit: 128 * 1024,
            http_message_cache_size: 100,
            session_cookie_needed: false,
            client_library_url: DEFAULT_CLIENT_LIBRARY_URL.to_owned(),
            suppress_cors: false,
            websocket_enabled: true,
        }
    }
}
