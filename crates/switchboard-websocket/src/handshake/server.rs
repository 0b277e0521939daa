//! Server role of the opening handshake: validates an HTTP upgrade request
//! and produces the `101 Switching Protocols` response headers (accept key,
//! subprotocol, permessage-deflate).

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, StatusCode, Version};

use super::{accept_key, header_has_token, header_list, HandshakeError};
use crate::deflate::{DeflateConfig, DeflateParams};

/// Origin policy: receives the `Origin` header (if any), returns whether the
/// request is allowed.
pub type OriginCheck = Arc<dyn Fn(Option<&str>) -> bool + Send + Sync>;

/// Server handshake settings.
#[derive(Clone, Default)]
pub struct ServerOptions {
    /// Supported subprotocols. The chosen protocol is the first one in the
    /// *client's* `Sec-WebSocket-Protocol` list that appears here (exact,
    /// case-sensitive match). No match → no protocol header.
    pub protocols: Vec<String>,
    /// Enables permessage-deflate negotiation.
    pub deflate: Option<DeflateConfig>,
    /// Origin policy; `None` allows every origin. Rejection → 403.
    pub origin_allowed: Option<OriginCheck>,
}

impl fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerOptions")
            .field("protocols", &self.protocols)
            .field("deflate", &self.deflate)
            .field(
                "origin_allowed",
                &self.origin_allowed.as_ref().map(|_| ".."),
            )
            .finish()
    }
}

/// A successfully validated upgrade request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The `Sec-WebSocket-Accept` value.
    pub accept_key: String,
    /// The selected subprotocol.
    pub protocol: Option<String>,
    /// Negotiated permessage-deflate parameters (put them into
    /// [`Config::deflate`](crate::Config::deflate)).
    pub deflate: Option<DeflateParams>,
}

impl Accepted {
    /// Headers of the `101 Switching Protocols` response: `Upgrade`,
    /// `Connection`, `Sec-WebSocket-Accept`, and when negotiated
    /// `Sec-WebSocket-Protocol` and `Sec-WebSocket-Extensions`.
    pub fn response_headers(&self) -> HeaderMap {
        let mut h = HeaderMap::with_capacity(5);
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(
            header::SEC_WEBSOCKET_ACCEPT,
            HeaderValue::from_str(&self.accept_key).expect("base64 is a valid header value"),
        );
        if let Some(p) = &self.protocol {
            if let Ok(v) = HeaderValue::from_str(p) {
                h.insert(header::SEC_WEBSOCKET_PROTOCOL, v);
            }
        }
        if let Some(d) = &self.deflate {
            h.insert(
                header::SEC_WEBSOCKET_EXTENSIONS,
                HeaderValue::from_str(&d.response_header()).expect("ASCII extension header"),
            );
        }
        h
    }
}

const fn err(status: StatusCode, reason: &'static str) -> HandshakeError {
    HandshakeError::new(status, reason)
}

/// Validates a WebSocket upgrade request (RFC 6455 §4.2.1).
///
/// Checks, in order: method GET (405), HTTP/1.1 or later (400), `Upgrade`
/// contains `websocket` (400), `Connection` contains `upgrade` (400),
/// `Sec-WebSocket-Version: 13` (426, see
/// [`HandshakeError::extra_headers`]), `Sec-WebSocket-Key` is base64 of 16
/// bytes (400), origin policy (403). Then selects a subprotocol and
/// negotiates permessage-deflate.
///
/// ```
/// use http::{HeaderMap, Method, Version};
/// use switchboard_websocket::handshake::{accept, ServerOptions};
/// let mut h = HeaderMap::new();
/// h.insert("upgrade", "websocket".parse().unwrap());
/// h.insert("connection", "Upgrade".parse().unwrap());
/// h.insert("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==".parse().unwrap());
/// h.insert("sec-websocket-version", "13".parse().unwrap());
/// let ok = accept(&Method::GET, Version::HTTP_11, &h, &ServerOptions::default()).unwrap();
/// assert_eq!(ok.accept_key, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn accept(
    method: &Method,
    version: Version,
    headers: &HeaderMap,
    opts: &ServerOptions,
) -> Result<Accepted, HandshakeError> {
    if method != Method::GET {
        return Err(err(StatusCode::METHOD_NOT_ALLOWED, "method must be GET"));
    }
    if version < Version::HTTP_11 {
        return Err(err(StatusCode::BAD_REQUEST, "HTTP/1.1 or later required"));
    }
    if !header_has_token(headers, header::UPGRADE, "websocket") {
        return Err(err(StatusCode::BAD_REQUEST, "missing Upgrade: websocket"));
    }
    if !header_has_token(headers, header::CONNECTION, "upgrade") {
        return Err(err(StatusCode::BAD_REQUEST, "missing Connection: upgrade"));
    }
    let mut versions = headers.get_all(header::SEC_WEBSOCKET_VERSION).iter();
    match (versions.next(), versions.next()) {
        (Some(v), None) if v.as_bytes().trim_ascii() == b"13" => {}
        (None, _) => {
            return Err(err(
                StatusCode::UPGRADE_REQUIRED,
                "missing Sec-WebSocket-Version",
            ))
        }
        _ => {
            return Err(err(
                StatusCode::UPGRADE_REQUIRED,
                "unsupported Sec-WebSocket-Version",
            ))
        }
    }
    let mut keys = headers.get_all(header::SEC_WEBSOCKET_KEY).iter();
    let key = match (keys.next(), keys.next()) {
        (Some(k), None) => k.as_bytes().trim_ascii(),
        (None, _) => return Err(err(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key")),
        _ => return Err(err(StatusCode::BAD_REQUEST, "duplicate Sec-WebSocket-Key")),
    };
    match base64::engine::general_purpose::STANDARD.decode(key) {
        Ok(raw) if raw.len() == 16 => {}
        _ => return Err(err(StatusCode::BAD_REQUEST, "invalid Sec-WebSocket-Key")),
    }
    if let Some(check) = &opts.origin_allowed {
        let origin = match headers.get(header::ORIGIN) {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .map_err(|_| err(StatusCode::FORBIDDEN, "origin not allowed"))?,
            ),
        };
        if !check(origin) {
            return Err(err(StatusCode::FORBIDDEN, "origin not allowed"));
        }
    }
    let protocol = if opts.protocols.is_empty() {
        None
    } else {
        header_list(headers, header::SEC_WEBSOCKET_PROTOCOL)
            .find(|p| opts.protocols.iter().any(|s| s == p))
            .map(str::to_owned)
    };
    let deflate = opts.deflate.as_ref().and_then(|cfg| {
        cfg.negotiate(
            headers
                .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
                .iter()
                .filter_map(|v| v.to_str().ok()),
        )
    });
    Ok(Accepted {
        accept_key: accept_key(key),
        protocol,
        deflate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("host", "example.com".parse().unwrap());
        h.insert("upgrade", "websocket".parse().unwrap());
        h.insert("connection", "keep-alive, Upgrade".parse().unwrap());
        h.insert(
            "sec-websocket-key",
            "dGhlIHNhbXBsZSBub25jZQ==".parse().unwrap(),
        );
        h.insert("sec-websocket-version", "13".parse().unwrap());
        h
    }

    fn run(h: &HeaderMap, o: &ServerOptions) -> Result<Accepted, HandshakeError> {
        accept(&Method::GET, Version::HTTP_11, h, o)
    }

    fn status(r: Result<Accepted, HandshakeError>) -> u16 {
        r.unwrap_err().status.as_u16()
    }

    #[test]
    fn accepts_and_builds_response() {
        let a = run(&good(), &ServerOptions::default()).unwrap();
        assert_eq!(a.accept_key, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(a.protocol, None);
        assert_eq!(a.deflate, None);
        let h = a.response_headers();
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "Upgrade");
        assert_eq!(h["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert!(!h.contains_key("sec-websocket-protocol"));
        assert!(!h.contains_key("sec-websocket-extensions"));
        // HTTP/2+ versions and case-insensitive tokens are fine.
        let mut h = good();
        h.insert("upgrade", "WebSocket".parse().unwrap());
        h.insert("connection", "UPGRADE".parse().unwrap());
        assert!(accept(&Method::GET, Version::HTTP_2, &h, &ServerOptions::default()).is_ok());
    }

    #[test]
    fn rejections() {
        let o = ServerOptions::default();
        assert_eq!(
            status(accept(&Method::POST, Version::HTTP_11, &good(), &o)),
            405
        );
        assert_eq!(
            status(accept(&Method::GET, Version::HTTP_10, &good(), &o)),
            400
        );
        let mut h = good();
        h.remove("upgrade");
        assert_eq!(status(run(&h, &o)), 400);
        let mut h = good();
        h.insert("upgrade", "h2c".parse().unwrap());
        assert_eq!(status(run(&h, &o)), 400);
        let mut h = good();
        h.insert("connection", "keep-alive".parse().unwrap());
        assert_eq!(status(run(&h, &o)), 400);
        let mut h = good();
        h.remove("sec-websocket-key");
        let e = run(&h, &o).unwrap_err();
        assert_eq!(
            (e.status.as_u16(), e.reason),
            (400, "missing Sec-WebSocket-Key")
        );
        for bad in ["dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZQ==", "!!!!", ""] {
            let mut h = good();
            h.insert("sec-websocket-key", bad.parse().unwrap());
            assert_eq!(status(run(&h, &o)), 400, "{bad}");
        }
        let mut h = good();
        h.append(
            "sec-websocket-key",
            "dGhlIHNhbXBsZSBub25jZQ==".parse().unwrap(),
        );
        assert_eq!(status(run(&h, &o)), 400);
        for v in [None, Some("8"), Some("14"), Some("13, 8")] {
            let mut h = good();
            h.remove("sec-websocket-version");
            if let Some(v) = v {
                h.insert("sec-websocket-version", v.parse().unwrap());
            }
            let e = run(&h, &o).unwrap_err();
            assert_eq!(e.status.as_u16(), 426, "{v:?}");
            assert_eq!(e.extra_headers()["sec-websocket-version"], "13");
        }
    }

    #[test]
    fn origin_policy() {
        let o = ServerOptions {
            origin_allowed: Some(Arc::new(|o: Option<&str>| o == Some("https://ok.example"))),
            ..Default::default()
        };
        assert_eq!(status(run(&good(), &o)), 403);
        let mut h = good();
        h.insert("origin", "https://evil.example".parse().unwrap());
        assert_eq!(status(run(&h, &o)), 403);
        h.insert("origin", "https://ok.example".parse().unwrap());
        assert!(run(&h, &o).is_ok());
    }

    #[test]
    fn subprotocols() {
        let o = ServerOptions {
            protocols: vec!["v2.stomp".into(), "v1.stomp".into(), "chat".into()],
            ..Default::default()
        };
        let mut h = good();
        assert_eq!(run(&h, &o).unwrap().protocol, None);
        h.insert("sec-websocket-protocol", "foo, v1.stomp".parse().unwrap());
        h.append("sec-websocket-protocol", "v2.stomp".parse().unwrap());
        let a = run(&h, &o).unwrap();
        // First client-offered protocol that the server supports.
        assert_eq!(a.protocol.as_deref(), Some("v1.stomp"));
        assert_eq!(a.response_headers()["sec-websocket-protocol"], "v1.stomp");
        h.insert("sec-websocket-protocol", "CHAT".parse().unwrap());
        assert_eq!(run(&h, &o).unwrap().protocol, None);
    }

    #[test]
    fn deflate_negotiation() {
        let o = ServerOptions {
            deflate: Some(DeflateConfig::default()),
            ..Default::default()
        };
        let mut h = good();
        assert_eq!(run(&h, &o).unwrap().deflate, None);
        h.insert(
            "sec-websocket-extensions",
            "permessage-deflate; server_max_window_bits=8"
                .parse()
                .unwrap(),
        );
        h.append(
            "sec-websocket-extensions",
            "permessage-deflate; client_max_window_bits"
                .parse()
                .unwrap(),
        );
        let a = run(&h, &o).unwrap();
        assert!(a.deflate.is_some());
        assert_eq!(
            a.response_headers()["sec-websocket-extensions"],
            "permessage-deflate"
        );
        // Not enabled on the server → never negotiated.
        assert_eq!(run(&h, &ServerOptions::default()).unwrap().deflate, None);
    }
}
