//! [`Route`]: which SockJS endpoint a request path (relative to the service
//! prefix) names, and which methods that endpoint accepts — sockjs-node's
//! dispatcher (`lib/listener.js`) as a pure function. No query strings, no
//! sessions.

use http::Method;

use crate::config::SockJsConfig;
use crate::error::SockJsError;

/// The transports addressed as `/{server}/{session}/{transport}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// `websocket`: SockJS framing over a WebSocket.
    WebSocket,
    /// `xhr`: XHR long polling (receiving).
    Xhr,
    /// `xhr_send`: messages from the client for XHR and the streaming
    /// transports.
    XhrSend,
    /// `xhr_streaming`: XHR streaming (receiving).
    XhrStreaming,
    /// `eventsource`: server-sent events (receiving).
    EventSource,
    /// `htmlfile`: a forever iframe (receiving).
    HtmlFile,
    /// `jsonp`: JSONP long polling (receiving).
    Jsonp,
    /// `jsonp_send`: messages from the client for JSONP.
    JsonpSend,
}

impl Transport {
    /// Parses the last path segment.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "websocket" => Transport::WebSocket,
            "xhr" => Transport::Xhr,
            "xhr_send" => Transport::XhrSend,
            "xhr_streaming" => Transport::XhrStreaming,
            "eventsource" => Transport::EventSource,
            "htmlfile" => Transport::HtmlFile,
            "jsonp" => Transport::Jsonp,
            "jsonp_send" => Transport::JsonpSend,
            _ => return None,
        })
    }

    /// The path segment.
    pub const fn name(self) -> &'static str {
        match self {
            Transport::WebSocket => "websocket",
            Transport::Xhr => "xhr",
            Transport::XhrSend => "xhr_send",
            Transport::XhrStreaming => "xhr_streaming",
            Transport::EventSource => "eventsource",
            Transport::HtmlFile => "htmlfile",
            Transport::Jsonp => "jsonp",
            Transport::JsonpSend => "jsonp_send",
        }
    }

    /// Whether this URL carries messages from the client into an existing
    /// session (`xhr_send`, `jsonp_send`) rather than opening a receiver.
    pub const fn is_send(self) -> bool {
        matches!(self, Transport::XhrSend | Transport::JsonpSend)
    }
}

/// A SockJS endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route<'a> {
    /// `` or `/`: `Welcome to SockJS!\n`.
    Greeting,
    /// `/info`: the capabilities JSON.
    Info,
    /// `/iframe.html`, `/iframe-0.1.2.html`, …: the iframe page.
    Iframe,
    /// `/websocket`: a WebSocket without SockJS framing.
    RawWebSocket,
    /// `/{server}/{session}/{transport}`.
    Session {
        /// The load-balancer hint; ignored by the server.
        server_id: &'a str,
        /// The session id, as sent (not percent-decoded).
        session_id: &'a str,
        /// The transport.
        transport: Transport,
    },
    /// Anything else under the prefix: 404.
    NotFound,
}

impl<'a> Route<'a> {
    /// Parses `path`, the request path with the service prefix removed (a
    /// query string, if left on, is ignored). A single trailing `/` is
    /// allowed after `info`, `websocket` and session URLs, as in
    /// sockjs-node.
    ///
    /// ```
    /// use switchboard_sockjs::{Route, Transport};
    ///
    /// assert_eq!(Route::parse("/"), Route::Greeting);
    /// assert_eq!(Route::parse("/iframe-1.6.1.html"), Route::Iframe);
    /// assert_eq!(
    ///     Route::parse("/000/abc/xhr_streaming"),
    ///     Route::Session { server_id: "000", session_id: "abc", transport: Transport::XhrStreaming },
    /// );
    /// assert_eq!(Route::parse("/a./a/xhr"), Route::NotFound);
    /// ```
    pub fn parse(path: &'a str) -> Route<'a> {
        let path = match path.find('?') {
            Some(i) => &path[..i],
            None => path,
        };
        if path.is_empty() || path == "/" {
            return Route::Greeting;
        }
        let Some(rest) = path.strip_prefix('/') else {
            return Route::NotFound;
        };
        if is_iframe(rest) {
            return Route::Iframe;
        }
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        match rest {
            "info" => return Route::Info,
            "websocket" => return Route::RawWebSocket,
            _ => {}
        }
        let mut parts = rest.split('/');
        let (Some(server_id), Some(session_id), Some(transport), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Route::NotFound;
        };
        if !is_id(server_id) || !is_id(session_id) {
            return Route::NotFound;
        }
        match Transport::from_name(transport) {
            Some(transport) => Route::Session {
                server_id,
                session_id,
                transport,
            },
            None => Route::NotFound,
        }
    }

    /// The methods this endpoint accepts, in sockjs-node's order (its
    /// `Allow` header). Empty for [`Route::NotFound`].
    pub const fn allowed_methods(&self) -> &'static str {
        match self {
            Route::Greeting | Route::Iframe | Route::RawWebSocket => "GET",
            Route::Info => "OPTIONS, GET",
            Route::Session { transport, .. } => match transport {
                Transport::WebSocket
                | Transport::EventSource
                | Transport::HtmlFile
                | Transport::Jsonp => "GET",
                Transport::JsonpSend => "POST",
                Transport::Xhr | Transport::XhrSend | Transport::XhrStreaming => "OPTIONS, POST",
            },
            Route::NotFound => "",
        }
    }

    /// Refuses what sockjs-node refuses before any endpoint code runs: an
    /// unknown path or a disabled WebSocket endpoint (404), a method the
    /// endpoint does not take (405). `HEAD` counts as `GET`.
    ///
    /// ```
    /// use http::Method;
    /// use switchboard_sockjs::{Route, SockJsConfig, SockJsError};
    ///
    /// let config = SockJsConfig::default();
    /// let route = Route::parse("/abc/abc/xhr");
    /// assert_eq!(route.check_method(&Method::POST, &config), Ok(()));
    /// assert_eq!(
    ///     route.check_method(&Method::GET, &config),
    ///     Err(SockJsError::MethodNotAllowed { allow: "OPTIONS, POST" })
    /// );
    /// ```
    pub fn check_method(&self, method: &Method, config: &SockJsConfig) -> Result<(), SockJsError> {
        let websocket = matches!(
            self,
            Route::RawWebSocket
                | Route::Session {
                    transport: Transport::WebSocket,
                    ..
                }
        );
        if matches!(self, Route::NotFound) || (websocket && !config.websocket_enabled) {
            return Err(SockJsError::NotFound);
        }
        let allow = self.allowed_methods();
        let method = if method == Method::HEAD {
            "GET"
        } else {
            method.as_str()
        };
        if allow.split(", ").any(|m| m == method) {
            Ok(())
        } else {
            Err(SockJsError::MethodNotAllowed { allow })
        }
    }
}

/// `iframe[0-9a-z._-]*.html`, case-sensitive.
fn is_iframe(segment: &str) -> bool {
    segment
        .strip_prefix("iframe")
        .and_then(|s| s.strip_suffix(".html"))
        .is_some_and(|mid| {
            mid.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b"._-".contains(&b))
        })
}

/// A server or session id: non-empty, no `.` (and no `/`, by splitting).
fn is_id(s: &str) -> bool {
    !s.is_empty() && !s.contains('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(server_id: &str, session_id: &str, transport: Transport) -> Route<'static> {
        Route::Session {
            server_id: Box::leak(server_id.to_owned().into_boxed_str()),
            session_id: Box::leak(session_id.to_owned().into_boxed_str()),
            transport,
        }
    }

    #[test]
    fn greeting() {
        assert_eq!(Route::parse(""), Route::Greeting);
        assert_eq!(Route::parse("/"), Route::Greeting);
        assert_eq!(Route::parse("/?t=1"), Route::Greeting);
    }

    #[test]
    fn not_found_simple() {
        // BaseUrlGreeting.test_notFound
        for p in ["/a", "/a.html", "//", "///", "/a/a", "/a/a/", "/a/"] {
            assert_eq!(Route::parse(p), Route::NotFound, "{p}");
        }
        assert_eq!(Route::parse("info"), Route::NotFound);
    }

    #[test]
    fn info_and_raw_websocket() {
        assert_eq!(Route::parse("/info"), Route::Info);
        assert_eq!(Route::parse("/info/"), Route::Info);
        assert_eq!(Route::parse("/info?t=123"), Route::Info);
        assert_eq!(Route::parse("/websocket"), Route::RawWebSocket);
        assert_eq!(Route::parse("/websocket/"), Route::RawWebSocket);
        assert_eq!(Route::parse("/infox"), Route::NotFound);
    }

    #[test]
    fn iframe() {
        // IframePage.test_simpleUrl / test_versionedUrl / test_queriedUrl
        for p in [
            "/iframe.html",
            "/iframe-a.html",
            "/iframe-.html",
            "/iframe-0.1.2.html",
            "/iframe-0.1.2abc-dirty.2144.html",
            "/iframe-a.html?t=1234",
            "/iframe-0.1.2abc-dirty.2144.html?t=qweqweq123",
        ] {
            assert_eq!(Route::parse(p), Route::Iframe, "{p}");
        }
        // IframePage.test_invalidUrl
        for p in [
            "/iframe.htm",
            "/iframe",
            "/IFRAME.HTML",
            "/IFRAME",
            "/iframe.HTML",
            "/iframe.xml",
            "/iframe-/.html",
        ] {
            assert_eq!(Route::parse(p), Route::NotFound, "{p}");
        }
    }

    #[test]
    fn session_urls() {
        // SessionURLs.test_anyValue
        assert_eq!(Route::parse("/a/a/xhr"), session("a", "a", Transport::Xhr));
        assert_eq!(Route::parse("/_/_/xhr"), session("_", "_", Transport::Xhr));
        assert_eq!(Route::parse("/1/1/xhr"), session("1", "1", Transport::Xhr));
        assert_eq!(
            Route::parse("/abcdefgh_i-j%20/abcdefg_i-j%20/xhr"),
            session("abcdefgh_i-j%20", "abcdefg_i-j%20", Transport::Xhr)
        );
        assert_eq!(
            Route::parse("/000/s/xhr/"),
            session("000", "s", Transport::Xhr)
        );
        // SessionURLs.test_invalidPaths
        for p in ["//", "/a./a", "/a/a.", "/./.", "/", "///"] {
            let path = format!("{p}/xhr");
            assert_eq!(Route::parse(&path), Route::NotFound, "{path}");
        }
        assert_eq!(Route::parse("/a/a/a/xhr"), Route::NotFound);
        assert_eq!(Route::parse("/a/a/xhr_polling"), Route::NotFound);
        assert_eq!(Route::parse("/a/a/XHR"), Route::NotFound);
    }

    #[test]
    fn every_transport() {
        for t in [
            Transport::WebSocket,
            Transport::Xhr,
            Transport::XhrSend,
            Transport::XhrStreaming,
            Transport::EventSource,
            Transport::HtmlFile,
            Transport::Jsonp,
            Transport::JsonpSend,
        ] {
            let path = format!("/000/sid/{}", t.name());
            assert_eq!(Route::parse(&path), session("000", "sid", t));
            assert_eq!(Transport::from_name(t.name()), Some(t));
            assert_eq!(
                t.is_send(),
                matches!(t, Transport::XhrSend | Transport::JsonpSend)
            );
        }
    }

    #[test]
    fn methods() {
        let config = SockJsConfig::default();
        let ok = |p: &str, m: Method| Route::parse(p).check_method(&m, &config);
        assert_eq!(ok("/", Method::GET), Ok(()));
        assert_eq!(ok("/", Method::HEAD), Ok(()));
        assert_eq!(ok("/info", Method::OPTIONS), Ok(()));
        assert_eq!(
            ok("/info", Method::POST),
            Err(SockJsError::MethodNotAllowed {
                allow: "OPTIONS, GET"
            })
        );
        assert_eq!(ok("/a/a/xhr_send", Method::OPTIONS), Ok(()));
        assert_eq!(ok("/a/a/xhr_streaming", Method::POST), Ok(()));
        assert_eq!(ok("/a/a/jsonp_send", Method::POST), Ok(()));
        assert_eq!(ok("/a/a/jsonp", Method::GET), Ok(()));
        assert_eq!(ok("/a/a/eventsource", Method::GET), Ok(()));
        assert_eq!(ok("/a/a/htmlfile", Method::GET), Ok(()));
        // WebsocketHttpErrors.test_invalidMethod
        assert_eq!(
            ok("/0/0/websocket", Method::POST),
            Err(SockJsError::MethodNotAllowed { allow: "GET" })
        );
        assert_eq!(ok("/a", Method::GET), Err(SockJsError::NotFound));

        let off = SockJsConfig {
            websocket_enabled: false,
            ..SockJsConfig::default()
        };
        for p in ["/websocket", "/0/0/websocket"] {
            assert_eq!(
                Route::parse(p).check_method(&Method::GET, &off),
                Err(SockJsError::NotFound)
            );
        }
    }
}
