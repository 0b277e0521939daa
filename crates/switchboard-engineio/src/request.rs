//! Engine.IO HTTP request validation: the query (`EIO`, `transport`, `sid`,
//! `t`, `b64`), the method and `Origin` rules of Node's `Server.verify` and
//! `Server.handshake`, in Node's order, each refusal mapped to its
//! [`EngineError`].
//!
//! [`route`] decides between a handshake and a request for an existing
//! session; for the latter, the caller looks the sid up (absent →
//! [`EngineError::unknown_sid`]) and then asks
//! [`Session::check_request`](crate::Session::check_request).

use http::{HeaderMap, Method};

use crate::config::Config;
use crate::error::EngineError;
use crate::transport::TransportKind;

/// The Engine.IO query parameters, percent-decoded. When a parameter
/// repeats, the last one wins (as `Object.fromEntries(url.searchParams)`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineQuery {
    /// `EIO`: the protocol revision; only `4` is accepted.
    pub eio: Option<String>,
    /// `transport`: `polling` or `websocket`.
    pub transport: Option<String>,
    /// `sid`: the session id, absent on the handshake.
    pub sid: Option<String>,
    /// `t`: a cache-busting timestamp, ignored.
    pub t: Option<String>,
    /// `b64`: when set (non-empty), binary is sent base64-encoded over
    /// WebSocket too.
    pub b64: Option<String>,
}

impl EngineQuery {
    /// Parses a query string (without the leading `?`), as
    /// `URLSearchParams` does: `&`-separated, `+` is a space, `%XX`
    /// decoded, malformed escapes kept literally.
    pub fn parse(query: &str) -> Self {
        let mut q = EngineQuery::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match decode_component(name).as_str() {
                "EIO" => &mut q.eio,
                "transport" => &mut q.transport,
                "sid" => &mut q.sid,
                "t" => &mut q.t,
                "b64" => &mut q.b64,
                _ => continue,
            };
            *slot = Some(decode_component(value));
        }
        q
    }

    /// The session id when present and non-empty (Node tests `if (sid)`:
    /// `sid=` is a handshake).
    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref().filter(|s| !s.is_empty())
    }

    /// Whether the client asked for base64 binary (`!!req._query.b64`).
    pub fn b64(&self) -> bool {
        self.b64.as_deref().is_some_and(|s| !s.is_empty())
    }

    /// The requested transport, if it is one this crate knows.
    pub fn transport_kind(&self) -> Option<TransportKind> {
        self.transport.as_deref().and_then(TransportKind::from_name)
    }
}

fn decode_component(s: &str) -> String {
    let bytes = s.as_bytes();
    if !bytes.iter().any(|&b| b == b'%' || b == b'+') {
        return s.to_owned();
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Where a valid request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A new session: create it with [`Session::new_polling`] (then answer
    /// this GET with [`Session::poll_request`]) or, for an upgrade request,
    /// [`Session::new_websocket`].
    ///
    /// [`Session::new_polling`]: crate::Session::new_polling
    /// [`Session::poll_request`]: crate::Session::poll_request
    /// [`Session::new_websocket`]: crate::Session::new_websocket
    Handshake {
        /// The transport of the new session.
        transport: TransportKind,
        /// Whether the client asked for base64 binary on WebSocket.
        b64: bool,
    },
    /// A request for an existing session: look `sid` up (absent →
    /// [`EngineError::unknown_sid`]), then call
    /// [`Session::check_request`](crate::Session::check_request).
    Session {
        /// The session id.
        sid: String,
        /// The transport named in the query.
        transport: TransportKind,
        /// Whether the client asked for base64 binary on WebSocket.
        b64: bool,
    },
}

/// Validates an Engine.IO request as Node's `verify` + `handshake` do, in
/// the same order:
///
/// 1. `transport` missing, unknown or disabled → code 0 `Transport unknown`;
/// 2. an `Origin` header with a character invalid in a header value →
///    code 3 `Bad request`;
/// 3. with a `sid` → [`Route::Session`] (the rest is checked against the
///    session);
/// 4. a handshake that is not a GET → code 2 `Bad handshake method`;
/// 5. a `websocket` handshake that is not an upgrade request → code 3;
/// 6. `EIO` other than `4` → code 5 `Unsupported protocol version`.
///
/// An `allowRequest` hook, if the server has one, runs between 5 and 6 and
/// refuses with [`EngineError::forbidden`].
///
/// `upgrade` is whether the request arrived as a WebSocket upgrade (see
/// [`is_websocket_upgrade`]).
pub fn route(
    method: &Method,
    query: &EngineQuery,
    origin: Option<&[u8]>,
    upgrade: bool,
    config: &Config,
) -> Result<Route, EngineError> {
    let transport = query
        .transport_kind()
        .filter(|&t| config.transports.contains(t))
        .ok_or_else(EngineError::unknown_transport)?;
    if origin.is_some_and(has_invalid_header_char) {
        return Err(EngineError::bad_request());
    }
    let b64 = query.b64();
    if let Some(sid) = query.sid() {
        return Ok(Route::Session {
            sid: sid.to_owned(),
            transport,
            b64,
        });
    }
    if method != Method::GET {
        return Err(EngineError::bad_handshake_method());
    }
    if transport == TransportKind::WebSocket && !upgrade {
        return Err(EngineError::bad_request());
    }
    if query.eio.as_deref() != Some("4") {
        return Err(EngineError::unsupported_protocol_version());
    }
    Ok(Route::Handshake { transport, b64 })
}

/// [`route`] for an `http` request head: reads the query from the URI, the
/// `Origin` header, and detects upgrades with [`is_websocket_upgrade`].
pub fn route_parts(parts: &http::request::Parts, config: &Config) -> Result<Route, EngineError> {
    let query = EngineQuery::parse(parts.uri.query().unwrap_or(""));
    let origin = parts
        .headers
        .get(http::header::ORIGIN)
        .map(|v| v.as_bytes());
    route(
        &parts.method,
        &query,
        origin,
        is_websocket_upgrade(&parts.headers),
        config,
    )
}

/// Whether the headers ask for a WebSocket upgrade (`Upgrade: websocket`,
/// case-insensitive) — the requests Node receives on its `upgrade` event.
pub fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::UPGRADE)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
}

/// Node's `checkInvalidHeaderChar`: true when a byte is neither TAB, nor
/// 0x20–0x7E, nor 0x80–0xFF.
pub fn has_invalid_header_char(value: &[u8]) -> bool {
    value
        .iter()
        .any(|&b| !(b == b'\t' || (0x20..=0x7e).contains(&b) || b >= 0x80))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn go(method: Method, query: &str, upgrade: bool) -> Result<Route, EngineError> {
        route(
            &method,
            &EngineQuery::parse(query),
            None,
            upgrade,
            &Config::default(),
        )
    }

    fn code(r: Result<Route, EngineError>) -> Option<ErrorCode> {
        r.unwrap_err().code
    }

    #[test]
    fn parses_query() {
        let q = EngineQuery::parse("EIO=4&transport=polling&t=N8hyd6w&sid=a%2Bb-c_d&b64=1");
        assert_eq!(q.eio.as_deref(), Some("4"));
        assert_eq!(q.transport_kind(), Some(TransportKind::Polling));
        assert_eq!(q.sid(), Some("a+b-c_d"));
        assert_eq!(q.t.as_deref(), Some("N8hyd6w"));
        assert!(q.b64());
        let q = EngineQuery::parse("sid=&sid=x&b64=&a+b=%zz");
        assert_eq!(q.sid(), Some("x"));
        assert!(!q.b64());
        assert_eq!(decode_component("a+b%20c%zz%4"), "a b c%zz%4");
        assert_eq!(EngineQuery::parse("sid=").sid(), None);
    }

    #[test]
    fn handshakes() {
        assert_eq!(
            go(Method::GET, "EIO=4&transport=polling&t=x", false).unwrap(),
            Route::Handshake {
                transport: TransportKind::Polling,
                b64: false
            }
        );
        assert_eq!(
            go(Method::GET, "EIO=4&transport=websocket", true).unwrap(),
            Route::Handshake {
                transport: TransportKind::WebSocket,
                b64: false
            }
        );
    }

    #[test]
    fn errors_in_nodes_order() {
        assert_eq!(
            code(go(Method::GET, "EIO=4", false)),
            Some(ErrorCode::UnknownTransport)
        );
        assert_eq!(
            code(go(Method::POST, "EIO=3&transport=flash", false)),
            Some(ErrorCode::UnknownTransport)
        );
        assert_eq!(
            code(go(Method::POST, "EIO=3&transport=polling", false)),
            Some(ErrorCode::BadHandshakeMethod)
        );
        assert_eq!(
            code(go(Method::GET, "EIO=4&transport=websocket", false)),
            Some(ErrorCode::BadRequest)
        );
        assert_eq!(
            code(go(Method::GET, "EIO=3&transport=polling", false)),
            Some(ErrorCode::UnsupportedProtocolVersion)
        );
        assert_eq!(
            code(go(Method::GET, "transport=polling", false)),
            Some(ErrorCode::UnsupportedProtocolVersion)
        );
        let bad_origin = route(
            &Method::GET,
            &EngineQuery::parse("EIO=4&transport=polling"),
            Some(b"http://a\x01"),
            false,
            &Config::default(),
        );
        assert_eq!(code(bad_origin), Some(ErrorCode::BadRequest));
    }

    #[test]
    fn disabled_transport_is_unknown() {
        let mut config = Config::default();
        config.transports.websocket = false;
        let r = route(
            &Method::GET,
            &EngineQuery::parse("EIO=4&transport=websocket"),
            None,
            true,
            &config,
        );
        assert_eq!(code(r), Some(ErrorCode::UnknownTransport));
    }

    #[test]
    fn session_requests_skip_handshake_checks() {
        // Node does not look at EIO or the method once a sid is given.
        assert_eq!(
            go(Method::POST, "EIO=3&transport=polling&sid=abc", false).unwrap(),
            Route::Session {
                sid: "abc".into(),
                transport: TransportKind::Polling,
                b64: false
            }
        );
    }

    #[test]
    fn request_parts() {
        let req = http::Request::get("/engine.io/?EIO=4&transport=websocket")
            .header("upgrade", "WebSocket")
            .header("connection", "Upgrade")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        assert!(matches!(
            route_parts(&parts, &Config::default()),
            Ok(Route::Handshake {
                transport: TransportKind::WebSocket,
                ..
            })
        ));
    }

    #[test]
    fn header_chars() {
        assert!(!has_invalid_header_char(b"https://example.com\t\x80\xff"));
        assert!(has_invalid_header_char(b"a\nb"));
        assert!(has_invalid_header_char(b"\x7f"));
    }
}
