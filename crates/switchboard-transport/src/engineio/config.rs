//! [`EngineIoConfig`]: the endpoint's options around the core's
//! [`EngineConfig`], and the CORS policy.

use std::fmt;
use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderValue};

use super::EngineConfig;

/// An `allowRequest` hook: `Err(message)` refuses the handshake with 403
/// `{"code":4,"message":...}` (400 with the bare message for a WebSocket
/// handshake, as Node's `abortUpgrade`).
pub type RequestFilter = Arc<dyn Fn(&http::request::Parts) -> Result<(), String> + Send + Sync>;

/// Which origins may use the endpoint from a browser page of another origin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Cors {
    /// No CORS headers at all (Node's default without a `cors` option);
    /// `OPTIONS` requests are routed like any other (and refused).
    #[default]
    None,
    /// `Access-Control-Allow-Origin: *` on every response, no credentials
    /// (Node's `cors: { origin: "*" }`).
    Any,
    /// Every origin, reflected, with `Access-Control-Allow-Credentials:
    /// true` (Node's `cors: { origin: true, credentials: true }`: what a
    /// client with `withCredentials` needs).
    Reflect,
    /// Only these origins (exact match, e.g. `https://example.com`),
    /// reflected with `Access-Control-Allow-Credentials: true`.
    List(Vec<String>),
}

impl Cors {
    /// The `Access-Control-Allow-Origin` value for a request from `origin`
    /// and whether credentials are allowed; `None` when no header is due.
    fn allow_origin(&self, origin: Option<&HeaderValue>) -> Option<(HeaderValue, bool)> {
        match self {
            Cors::None => None,
            Cors::Any => Some((HeaderValue::from_static("*"), false)),
            Cors::Reflect => origin.map(|o| (o.clone(), true)),
            Cors::List(list) => {
                let o = origin?;
                let s = o.to_str().ok()?;
                list.iter().any(|a| a == s).then(|| (o.clone(), true))
            }
        }
    }

    /// Adds the headers every response carries.
    pub(crate) fn apply(&self, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
        if let Some((value, credentials)) = self.allow_origin(origin) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
            if credentials {
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                );
            }
        }
        if matches!(self, Cors::Reflect | Cors::List(_)) {
            headers.append(header::VARY, HeaderValue::from_static("Origin"));
        }
    }

    /// Adds the preflight headers (methods, echoed request headers).
    pub(crate) fn apply_preflight(&self, request: &HeaderMap, headers: &mut HeaderMap) {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET,POST"),
        );
        if let Some(h) = request.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, h.clone());
            headers.append(
                header::VARY,
                HeaderValue::from_static("Access-Control-Request-Headers"),
            );
        }
    }
}

/// Options of one [`EngineIo`](super::EngineIo) endpoint.
#[derive(Clone)]
pub struct EngineIoConfig {
    /// The core's options (heartbeat, upgrade timeout, `maxPayload`,
    /// transports), with Node's defaults.
    pub engine: EngineConfig,
    /// The CORS policy (default: none).
    pub cors: Cors,
    /// An `allowRequest` hook run on handshakes.
    pub allow_request: Option<RequestFilter>,
    /// When set, the handshake response sets the cookie `NAME=<sid>;
    /// Path=/; HttpOnly; SameSite=Lax` (Node's `cookie` option; off by
    /// default).
    pub cookie: Option<String>,
    /// The largest polling POST body read, in bytes (`maxHttpBufferSize`);
    /// a larger one is answered 413 without reading it all. Keep it equal to
    /// `engine.max_payload` (what [`EngineIoConfig::new`] does): the core
    /// refuses bodies over `max_payload` anyway.
    pub max_http_buffer_size: usize,
    /// permessage-deflate (RFC 7692) on the WebSocket transport (Node's
    /// `perMessageDeflate`, off by default as in engine.io 4). With
    /// `Some`, a client offering it gets compressed messages of at least
    /// `min_size` bytes (Node's `threshold` is 1024).
    pub per_message_deflate: Option<switchboard_websocket::DeflateConfig>,
    /// The slow-consumer limit: when more than this many payload bytes
    /// wait for one client (not yet polled, or not yet taken by a
    /// WebSocket that stopped reading), the session is closed (`forced
    /// close`; a recovering Socket.IO client gets the missed events back
    /// on reconnection). Node has no such limit. Default 4 MiB, as the
    /// hub's per-connection mailbox. A WebSocket's share is counted up to
    /// 4 GiB: a limit above that does not apply to it.
    pub max_buffered_bytes: usize,
}

impl EngineIoConfig {
    /// Options around `engine`, with `max_http_buffer_size =
    /// engine.max_payload`, no CORS, no hook, no cookie.
    pub fn new(engine: EngineConfig) -> Self {
        EngineIoConfig {
            max_http_buffer_size: engine.max_payload,
            engine,
            cors: Cors::None,
            allow_request: None,
            cookie: None,
            per_message_deflate: None,
            max_buffered_bytes: 4 << 20,
        }
    }
}

impl Default for EngineIoConfig {
    fn default() -> Self {
        Self::new(EngineConfig::default())
    }
}

impl fmt::Debug for EngineIoConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineIoConfig")
            .field("engine", &self.engine)
            .field("cors", &self.cors)
            .field("allow_request", &self.allow_request.as_ref().map(|_| ".."))
            .field("cookie", &self.cookie)
            .field("max_http_buffer_size", &self.max_http_buffer_size)
            .field("per_message_deflate", &self.per_message_deflate)
            .field("max_buffered_bytes", &self.max_buffered_bytes)
            .finish()
    }
}
