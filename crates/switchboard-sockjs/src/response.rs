//! [`Response`] and the pure functions that build every SockJS HTTP answer
//! except the iframe page ([`crate::IframePage`]): greeting, `/info`,
//! OPTIONS preflights, transport response heads with their preludes, the
//! send acknowledgements, and errors — statuses, headers and bodies as the
//! 0.3.3 protocol test suite checks them. Frames after the head come from
//! the [`Session`](crate::Session).

use std::time::SystemTime;

use bytes::Bytes;
use http::header::{
    ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_MAX_AGE, ALLOW, CONTENT_TYPE,
    X_CONTENT_TYPE_OPTIONS,
};
use http::{HeaderMap, HeaderValue, StatusCode};

use crate::config::SockJsConfig;
use crate::error::SockJsError;
use crate::headers::{cache_for_year, cors, no_cache, session_cookie, ONE_YEAR};
use crate::path::Route;
use crate::receiver::ReceiverKind;

/// `Content-Type` of the greeting, errors and send acknowledgements.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; charset=UTF-8";
/// `Content-Type` of `/info`.
pub const JSON_CONTENT_TYPE: &str = "application/json; charset=UTF-8";
/// The greeting body.
pub const GREETING: &str = "Welcome to SockJS!\n";

/// An HTTP answer: status, headers, body. For streaming transports the
/// body is only the prelude; the rest follows from the session.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The status.
    pub status: StatusCode,
    /// The headers (without `Content-Length` / `Transfer-Encoding`, which
    /// are the HTTP layer's).
    pub headers: HeaderMap,
    /// The body, or the first bytes of a streaming body.
    pub body: Bytes,
}

impl Response {
    fn new(status: StatusCode) -> Self {
        Response {
            status,
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }
    }

    fn content_type(mut self, value: &'static str) -> Self {
        self.headers
            .insert(CONTENT_TYPE, HeaderValue::from_static(value));
        self
    }
}

/// `GET /`: `200 Welcome to SockJS!\n`, `text/plain; charset=UTF-8`.
pub fn greeting() -> Response {
    let mut r = Response::new(StatusCode::OK).content_type(TEXT_CONTENT_TYPE);
    r.body = Bytes::from_static(GREETING.as_bytes());
    r
}

/// `GET /info`: `{"websocket":true,"cookie_needed":false,"origins":["*:*"],
/// "entropy":N}` with `entropy` the caller's fresh random `u32`, no-cache
/// and CORS headers.
///
/// ```
/// use http::HeaderMap;
/// use switchboard_sockjs::{response, SockJsConfig};
///
/// let r = response::info(&HeaderMap::new(), &SockJsConfig::default(), 42);
/// assert_eq!(
///     &r.body[..],
///     br#"{"websocket":true,"cookie_needed":false,"origins":["*:*"],"entropy":42}"#
/// );
/// ```
pub fn info(request: &HeaderMap, config: &SockJsConfig, entropy: u32) -> Response {
    let mut r = Response::new(StatusCode::OK).content_type(JSON_CONTENT_TYPE);
    no_cache(&mut r.headers);
    cors(&mut r.headers, request, config);
    r.body = Bytes::from(format!(
        "{{\"websocket\":{},\"cookie_needed\":{},\"origins\":[\"*:*\"],\"entropy\":{}}}",
        config.websocket_enabled, config.session_cookie_needed, entropy
    ));
    r
}

/// `OPTIONS` on `/info` or a transport URL that takes it: `204`, cacheable
/// for a year (`Cache-Control`, `Expires` from `now`,
/// `Access-Control-Max-Age: 31536000`), `Access-Control-Allow-Methods`
/// (`OPTIONS, GET` for info, `OPTIONS, POST` for the XHR URLs), CORS, and
/// the session cookie for transport URLs.
///
/// Check the route first with [`Route::check_method`].
pub fn options(
    route: &Route<'_>,
    request: &HeaderMap,
    config: &SockJsConfig,
    now: SystemTime,
) -> Response {
    let mut r = Response::new(StatusCode::NO_CONTENT);
    if matches!(route, Route::Session { .. }) {
        session_cookie(&mut r.headers, request, config);
    }
    cors(&mut r.headers, request, config);
    cache_for_year(&mut r.headers, now);
    r.headers.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(route.allowed_methods()),
    );
    r.headers.insert(
        ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from(ONE_YEAR.as_secs()),
    );
    r
}

/// The head of a receiving transport's `200` response, with its prelude as
/// the body: the transport's `Content-Type`, no-cache, CORS (XHR and
/// EventSource), the session cookie, `X-Content-Type-Options: nosniff` for
/// JSONP. Write it, then [`Session::attach`](crate::Session::attach).
///
/// Not for [`ReceiverKind::WebSocket`], whose answer is the WebSocket
/// handshake (see [`check_websocket_upgrade`](crate::check_websocket_upgrade)).
pub fn transport(kind: &ReceiverKind, request: &HeaderMap, config: &SockJsConfig) -> Response {
    let mut r = Response::new(StatusCode::OK);
    if let Some(ct) = kind.content_type() {
        r = r.content_type(ct);
    }
    session_cookie(&mut r.headers, request, config);
    no_cache(&mut r.headers);
    match kind {
        ReceiverKind::XhrPolling | ReceiverKind::XhrStreaming | ReceiverKind::EventSource => {
            cors(&mut r.headers, request, config);
        }
        ReceiverKind::Jsonp(_) => {
            r.headers
                .insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        }
        ReceiverKind::HtmlFile(_) | ReceiverKind::WebSocket => {}
    }
    r.body = kind.prelude();
    r
}

/// A successful `xhr_send`: `204`, yet `Content-Type: text/plain;
/// charset=UTF-8` (Firefox otherwise parses the empty body as XML),
/// no-cache, CORS, the session cookie.
pub fn xhr_send_ok(request: &HeaderMap, config: &SockJsConfig) -> Response {
    let mut r = Response::new(StatusCode::NO_CONTENT).content_type(TEXT_CONTENT_TYPE);
    session_cookie(&mut r.headers, request, config);
    no_cache(&mut r.headers);
    cors(&mut r.headers, request, config);
    r
}

/// A successful `jsonp_send`: `200 ok` (Konqueror mishandles 204),
/// `text/plain; charset=UTF-8`, no-cache, the session cookie.
pub fn jsonp_send_ok(request: &HeaderMap, config: &SockJsConfig) -> Response {
    let mut r = Response::new(StatusCode::OK).content_type(TEXT_CONTENT_TYPE);
    session_cookie(&mut r.headers, request, config);
    no_cache(&mut r.headers);
    r.body = Bytes::from_static(b"ok");
    r
}

/// The answer to a refused request: `405` with `Allow` and nothing else;
/// `404`s and `500`s / `400`s as `text/plain; charset=UTF-8` with
/// sockjs-node's message; the send and receive URLs' errors also carry
/// CORS headers so a cross-origin XHR can read them.
///
/// ```
/// use http::HeaderMap;
/// use switchboard_sockjs::{response, SockJsConfig, SockJsError};
///
/// let r = response::error(SockJsError::BrokenJson, &HeaderMap::new(), &SockJsConfig::default());
/// assert_eq!((r.status.as_u16(), &r.body[..]), (500, &b"Broken JSON encoding."[..]));
/// ```
pub fn error(err: SockJsError, request: &HeaderMap, config: &SockJsConfig) -> Response {
    let mut r = Response::new(err.status());
    match err {
        SockJsError::MethodNotAllowed { allow } => {
            r.headers.insert(ALLOW, HeaderValue::from_static(allow));
            return r;
        }
        SockJsError::NotFound => {}
        _ => cors(&mut r.headers, request, config),
    }
    r = r.content_type(TEXT_CONTENT_TYPE);
    r.body = Bytes::from_static(err.body().as_bytes());
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receiver::Callback;

    fn req(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn ct(r: &Response) -> String {
        // verify_content_type compares with spaces removed.
        r.headers["content-type"].to_str().unwrap().replace(' ', "")
    }

    fn verify_not_cached(r: &Response) {
        assert_eq!(
            r.headers["cache-control"],
            "no-store, no-cache, must-revalidate, max-age=0"
        );
        assert!(r.headers.get("expires").is_none());
        assert!(r.headers.get("last-modified").is_none());
    }

    fn verify_cors(r: &Response, origin: Option<&str>) {
        let expected = match origin {
            Some(o) if o != "null" => o,
            _ => "*",
        };
        assert_eq!(r.headers["access-control-allow-origin"], expected);
        assert_eq!(r.headers["access-control-allow-credentials"], "true");
    }

    fn cookie_config() -> SockJsConfig {
        SockJsConfig {
            session_cookie_needed: true,
            ..SockJsConfig::default()
        }
    }

    #[test]
    fn greeting_response() {
        // BaseUrlGreeting.test_greeting
        let r = greeting();
        assert_eq!(r.status, 200);
        assert_eq!(ct(&r), "text/plain;charset=UTF-8");
        assert_eq!(&r.body[..], b"Welcome to SockJS!\n");
        assert!(r.headers.get("set-cookie").is_none());
    }

    #[test]
    fn info_response() {
        // InfoTest.test_basic
        let r = info(&HeaderMap::new(), &SockJsConfig::default(), 7);
        assert_eq!(r.status, 200);
        assert_eq!(ct(&r), "application/json;charset=UTF-8");
        assert!(r.headers.get("set-cookie").is_none());
        verify_not_cached(&r);
        verify_cors(&r, None);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["websocket"], true);
        assert_eq!(v["cookie_needed"], false);
        assert_eq!(v["origins"], serde_json::json!(["*:*"]));
        assert_eq!(v["entropy"], 7);
        // InfoTest.test_disabled_websocket, JsessionidCookie.test_basic
        let off = SockJsConfig {
            websocket_enabled: false,
            ..cookie_config()
        };
        let r = info(&HeaderMap::new(), &off, u32::MAX);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["websocket"], false);
        assert_eq!(v["cookie_needed"], true);
        assert_eq!(v["entropy"], u64::from(u32::MAX));
        assert!(r.headers.get("set-cookie").is_none());
    }

    #[test]
    fn options_responses() {
        // verify_options for /info and the XHR URLs, origins None, test, null.
        let config = SockJsConfig::default();
        for (path, methods) in [
            ("/info", "OPTIONS, GET"),
            ("/abc/abc/xhr", "OPTIONS, POST"),
            ("/abc/abc/xhr_send", "OPTIONS, POST"),
            ("/abc/abc/xhr_streaming", "OPTIONS, POST"),
        ] {
            let route = Route::parse(path);
            assert_eq!(route.check_method(&http::Method::OPTIONS, &config), Ok(()));
            for origin in [None, Some("test"), Some("null")] {
                let request = match origin {
                    Some(o) => req(&[("origin", o)]),
                    None => HeaderMap::new(),
                };
                let r = options(&route, &request, &config, SystemTime::UNIX_EPOCH);
                assert_eq!(r.status, 204);
                assert_eq!(r.headers["cache-control"], "public, max-age=31536000");
                assert_eq!(r.headers["expires"], "Fri, 01 Jan 1971 00:00:00 GMT");
                assert_eq!(r.headers["access-control-max-age"], "31536000");
                assert_eq!(r.headers["access-control-allow-methods"], methods);
                assert!(r.body.is_empty());
                verify_cors(&r, origin);
            }
        }
    }

    #[test]
    fn options_null_origin() {
        // InfoTest.test_options_null_origin
        let r = options(
            &Route::Info,
            &req(&[("origin", "null")]),
            &SockJsConfig::default(),
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(r.headers["access-control-allow-origin"], "*");
    }

    #[test]
    fn xhr_heads() {
        // XhrPolling.test_transport, XhrStreaming.test_transport
        let config = SockJsConfig::default();
        let r = transport(&ReceiverKind::XhrPolling, &HeaderMap::new(), &config);
        assert_eq!(r.status, 200);
        assert_eq!(ct(&r), "application/javascript;charset=UTF-8");
        verify_cors(&r, None);
        verify_not_cached(&r);
        assert!(r.body.is_empty());
        assert!(r.headers.get("set-cookie").is_none());

        let r = transport(
            &ReceiverKind::XhrStreaming,
            &req(&[("origin", "http://a")]),
            &config,
        );
        assert_eq!(ct(&r), "application/javascript;charset=UTF-8");
        verify_cors(&r, Some("http://a"));
        verify_not_cached(&r);
        assert_eq!(&r.body[..], format!("{}\n", "h".repeat(2048)).as_bytes());
    }

    #[test]
    fn request_headers_echo() {
        // XhrPolling.test_request_headers_cors
        let config = SockJsConfig::default();
        let r = transport(
            &ReceiverKind::XhrPolling,
            &req(&[("access-control-request-headers", "a, b, c")]),
            &config,
        );
        assert_eq!(r.headers["access-control-allow-headers"], "a, b, c");
        let r = transport(
            &ReceiverKind::XhrPolling,
            &req(&[("access-control-request-headers", "")]),
            &config,
        );
        assert!(r.headers.get("access-control-allow-headers").is_none());
    }

    #[test]
    fn other_heads() {
        let config = SockJsConfig::default();
        // EventSource.test_transport
        let r = transport(&ReceiverKind::EventSource, &HeaderMap::new(), &config);
        assert_eq!(ct(&r), "text/event-stream;charset=UTF-8");
        verify_not_cached(&r);
        assert_eq!(&r.body[..], b"\r\n");
        // HtmlFile.test_transport
        let cb = Callback::new("callback").unwrap();
        let r = transport(
            &ReceiverKind::HtmlFile(cb.clone()),
            &HeaderMap::new(),
            &config,
        );
        assert_eq!(ct(&r), "text/html;charset=UTF-8");
        verify_not_cached(&r);
        assert!(r.body.len() > 1024);
        // JsonPolling.test_transport
        let r = transport(&ReceiverKind::Jsonp(cb), &HeaderMap::new(), &config);
        assert_eq!(ct(&r), "application/javascript;charset=UTF-8");
        verify_not_cached(&r);
        assert_eq!(r.headers["x-content-type-options"], "nosniff");
        assert!(r.body.is_empty());
    }

    #[test]
    fn send_acks() {
        let config = SockJsConfig::default();
        // XhrPolling.test_transport
        let r = xhr_send_ok(&HeaderMap::new(), &config);
        assert_eq!(r.status, 204);
        assert!(r.body.is_empty());
        assert_eq!(r.headers["content-type"], "text/plain; charset=UTF-8");
        verify_cors(&r, None);
        verify_not_cached(&r);
        // JsonPolling.test_transport
        let r = jsonp_send_ok(&HeaderMap::new(), &config);
        assert_eq!(r.status, 200);
        assert_eq!(&r.body[..], b"ok");
        assert_eq!(ct(&r), "text/plain;charset=UTF-8");
        verify_not_cached(&r);
    }

    #[test]
    fn cookies_on_transports() {
        // JsessionidCookie.test_xhr / test_xhr_streaming / test_eventsource /
        // test_htmlfile / test_jsonp
        let config = cookie_config();
        let cb = Callback::new("callback").unwrap();
        for kind in [
            ReceiverKind::XhrPolling,
            ReceiverKind::XhrStreaming,
            ReceiverKind::EventSource,
            ReceiverKind::HtmlFile(cb.clone()),
            ReceiverKind::Jsonp(cb),
        ] {
            let r = transport(&kind, &HeaderMap::new(), &config);
            assert_eq!(
                r.headers["set-cookie"], "JSESSIONID=dummy; path=/",
                "{kind:?}"
            );
        }
        let r = transport(
            &ReceiverKind::XhrPolling,
            &req(&[("cookie", "JSESSIONID=abcdef")]),
            &config,
        );
        assert_eq!(r.headers["set-cookie"], "JSESSIONID=abcdef; path=/");
        let r = jsonp_send_ok(&HeaderMap::new(), &config);
        assert_eq!(r.headers["set-cookie"], "JSESSIONID=dummy; path=/");
        let r = xhr_send_ok(&HeaderMap::new(), &config);
        assert_eq!(r.headers["set-cookie"], "JSESSIONID=dummy; path=/");
        // Not on greeting.
        assert!(greeting().headers.get("set-cookie").is_none());
    }

    #[test]
    fn errors() {
        let config = SockJsConfig::default();
        // verify405
        let r = error(
            SockJsError::MethodNotAllowed { allow: "GET" },
            &HeaderMap::new(),
            &config,
        );
        assert_eq!(r.status, 405);
        assert!(r.headers.get("content-type").is_none());
        assert_eq!(r.headers["allow"], "GET");
        assert!(r.body.is_empty());
        let r = error(SockJsError::NotFound, &HeaderMap::new(), &config);
        assert_eq!(r.status, 404);
        let r = error(SockJsError::PayloadExpected, &HeaderMap::new(), &config);
        assert_eq!(
            (r.status.as_u16(), &r.body[..]),
            (500, &b"Payload expected."[..])
        );
        assert_eq!(ct(&r), "text/plain;charset=UTF-8");
        verify_cors(&r, None);
        let r = error(SockJsError::CallbackRequired, &HeaderMap::new(), &config);
        assert_eq!(
            (r.status.as_u16(), &r.body[..]),
            (500, &b"\"callback\" parameter required"[..])
        );
        let r = error(SockJsError::NotWebSocketUpgrade, &HeaderMap::new(), &config);
        assert_eq!(r.status, 400);
        assert!(std::str::from_utf8(&r.body)
            .unwrap()
            .contains("Can \"Upgrade\" only to \"WebSocket\"."));
    }
}
