//! [`ReceiverKind`]: the receiving transports (XHR polling and streaming,
//! EventSource, htmlfile, JSONP, WebSocket) — how each wraps a frame, its
//! prelude and content type, whether it ends after one frame — and the
//! validated JSONP/htmlfile [`Callback`]. Response headers live in
//! [`crate::response`]; when to write lives in [`crate::session`].

use bytes::Bytes;

use crate::error::SockJsError;
use crate::form;
use crate::frame::{json_quote, script_quote, Frame};
use crate::path::Transport;

/// `Content-Type` of `xhr`, `xhr_streaming` and `jsonp` responses.
pub const JAVASCRIPT_CONTENT_TYPE: &str = "application/javascript; charset=UTF-8";
/// `Content-Type` of `eventsource` responses.
pub const EVENT_STREAM_CONTENT_TYPE: &str = "text/event-stream; charset=UTF-8";
/// `Content-Type` of `htmlfile` responses and the iframe page.
pub const HTML_CONTENT_TYPE: &str = "text/html; charset=UTF-8";

/// The name of the JavaScript function a `jsonp` / `htmlfile` response
/// calls: the `c` (or `callback`) query parameter, made only of
/// `[a-zA-Z0-9-_.]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Callback(String);

impl Callback {
    /// Validates a callback name (non-empty, `[a-zA-Z0-9-_.]` only).
    pub fn new(name: &str) -> Result<Self, SockJsError> {
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if valid {
            Ok(Callback(name.to_owned()))
        } else {
            Err(SockJsError::InvalidCallback)
        }
    }

    /// Takes the callback from a query string (without `?`): `c`, else
    /// `callback`, url-decoded. Missing → [`SockJsError::CallbackRequired`].
    ///
    /// ```
    /// use switchboard_sockjs::{Callback, SockJsError};
    ///
    /// assert_eq!(Callback::from_query(Some("c=%63allback")).unwrap().as_str(), "callback");
    /// assert_eq!(Callback::from_query(None), Err(SockJsError::CallbackRequired));
    /// assert_eq!(Callback::from_query(Some("c=alert(1)")), Err(SockJsError::InvalidCallback));
    /// ```
    pub fn from_query(query: Option<&str>) -> Result<Self, SockJsError> {
        let query = query.unwrap_or("");
        let name = form::field(query, "c")
            .or_else(|| form::field(query, "callback"))
            .ok_or(SockJsError::CallbackRequired)?;
        Callback::new(&name)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A receiving transport: what carries frames to the client.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReceiverKind {
    /// `xhr`: one frame per response, `frame\n`.
    XhrPolling,
    /// `xhr_streaming`: a 2 KiB `h` prelude, then `frame\n` each.
    XhrStreaming,
    /// `eventsource`: a `\r\n` prelude, then `data: frame\r\n\r\n` each.
    EventSource,
    /// `htmlfile`: an HTML page calling `parent.<callback>`, then
    /// `<script>\np("frame");\n</script>\r\n` each.
    HtmlFile(Callback),
    /// `jsonp`: one frame per response, `callback("frame");\r\n`.
    Jsonp(Callback),
    /// `websocket`: one frame per WebSocket text message.
    WebSocket,
}

impl ReceiverKind {
    /// The receiver a transport URL opens: `None` for the send URLs
    /// (`xhr_send`, `jsonp_send`); `jsonp` and `htmlfile` need a valid
    /// callback in `query`.
    pub fn for_transport(
        transport: Transport,
        query: Option<&str>,
    ) -> Result<Option<Self>, SockJsError> {
        Ok(Some(match transport {
            Transport::WebSocket => ReceiverKind::WebSocket,
            Transport::Xhr => ReceiverKind::XhrPolling,
            Transport::XhrStreaming => ReceiverKind::XhrStreaming,
            Transport::EventSource => ReceiverKind::EventSource,
            Transport::HtmlFile => ReceiverKind::HtmlFile(Callback::from_query(query)?),
            Transport::Jsonp => ReceiverKind::Jsonp(Callback::from_query(query)?),
            Transport::XhrSend | Transport::JsonpSend => return Ok(None),
        }))
    }

    /// Polling receivers carry one frame and end.
    pub const fn is_polling(&self) -> bool {
        matches!(self, ReceiverKind::XhrPolling | ReceiverKind::Jsonp(_))
    }

    /// Streaming HTTP receivers carry frames until
    /// [`SockJsConfig::stream_bytes_limit`](crate::SockJsConfig::stream_bytes_limit).
    pub const fn is_streaming(&self) -> bool {
        matches!(
            self,
            ReceiverKind::XhrStreaming | ReceiverKind::EventSource | ReceiverKind::HtmlFile(_)
        )
    }

    /// The response `Content-Type`; `None` for the WebSocket.
    pub const fn content_type(&self) -> Option<&'static str> {
        match self {
            ReceiverKind::XhrPolling | ReceiverKind::XhrStreaming | ReceiverKind::Jsonp(_) => {
                Some(JAVASCRIPT_CONTENT_TYPE)
            }
            ReceiverKind::EventSource => Some(EVENT_STREAM_CONTENT_TYPE),
            ReceiverKind::HtmlFile(_) => Some(HTML_CONTENT_TYPE),
            ReceiverKind::WebSocket => None,
        }
    }

    /// What a streaming response starts with, before any frame (and
    /// before the session is even asked): 2048 `h` and `\n` for XHR
    /// streaming (IE needs 2 KiB before it fires progress), `\r\n` for
    /// EventSource (Opera), the calling HTML page for htmlfile. Empty for
    /// the others. Not counted against the stream limit.
    pub fn prelude(&self) -> Bytes {
        match self {
            ReceiverKind::XhrStreaming => {
                let mut v = vec![b'h'; 2048];
                v.push(b'\n');
                Bytes::from(v)
            }
            ReceiverKind::EventSource => Bytes::from_static(b"\r\n"),
            ReceiverKind::HtmlFile(callback) => htmlfile_prelude(callback),
            _ => Bytes::new(),
        }
    }

    /// Appends `frame` wrapped for this transport.
    ///
    /// ```
    /// use switchboard_sockjs::{Callback, Frame, ReceiverKind};
    ///
    /// let mut out = Vec::new();
    /// ReceiverKind::EventSource.write_frame(&Frame::Open, &mut out);
    /// assert_eq!(out, b"data: o\r\n\r\n");
    /// let mut out = Vec::new();
    /// ReceiverKind::Jsonp(Callback::new("cb").unwrap()).write_frame(&Frame::Open, &mut out);
    /// assert_eq!(out, b"cb(\"o\");\r\n");
    /// ```
    pub fn write_frame(&self, frame: &Frame<'_>, out: &mut Vec<u8>) {
        match self {
            ReceiverKind::XhrPolling | ReceiverKind::XhrStreaming => {
                frame.write(out);
                out.push(b'\n');
            }
            ReceiverKind::WebSocket => frame.write(out),
            ReceiverKind::EventSource => {
                // sockjs-node's `escape_selected(payload, '\r\n\x00')`, which
                // also escapes `%`; sockjs-client `decodeURI`s the data.
                out.extend_from_slice(b"data: ");
                let mut raw = Vec::with_capacity(frame.encoded_len());
                frame.write(&mut raw);
                for b in raw {
                    match b {
                        b'%' => out.extend_from_slice(b"%25"),
                        b'\r' => out.extend_from_slice(b"%0D"),
                        b'\n' => out.extend_from_slice(b"%0A"),
                        0 => out.extend_from_slice(b"%00"),
                        b => out.push(b),
                    }
                }
                out.extend_from_slice(b"\r\n\r\n");
            }
            ReceiverKind::HtmlFile(_) => {
                out.extend_from_slice(b"<script>\np(");
                script_quote(&frame_text(frame), out);
                out.extend_from_slice(b");\n</script>\r\n");
            }
            ReceiverKind::Jsonp(callback) => {
                out.extend_from_slice(callback.as_str().as_bytes());
                out.push(b'(');
                json_quote(&frame_text(frame), out);
                out.extend_from_slice(b");\r\n");
            }
        }
    }
}

fn frame_text(frame: &Frame<'_>) -> String {
    let mut raw = Vec::with_capacity(frame.encoded_len());
    frame.write(&mut raw);
    String::from_utf8(raw).expect("frames are built from UTF-8 strings")
}

/// sockjs-node's `htmlfile` template (`lib/transport/htmlfile.js`), padded
/// with spaces exactly as Node pads it (Safari wants 1 KiB before it
/// renders), then `\r\n\r\n`.
fn htmlfile_prelude(callback: &Callback) -> Bytes {
    const HEAD: &str = "\n<!doctype html>\n<html><head>\n  \
<meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n  \
<meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n\
</head><body><h2>Don't panic!</h2>\n  <script>\n    \
document.domain = document.domain;\n    var c = parent.";
    const TAIL: &str = ";\n    c.start();\n    function p(d) {c.message(d);};\n    \
window.onload = function() {c.stop();};\n  </script>\n";
    const PLACEHOLDER_LEN: usize = "{{ callback }}".len();
    // `Array(1024 - template.length + 14).join(' ')`, on the template with
    // its placeholder.
    let padding = (1024 + 13usize).saturating_sub(HEAD.len() + PLACEHOLDER_LEN + TAIL.len());
    let mut out = Vec::with_capacity(1100 + callback.as_str().len());
    out.extend_from_slice(HEAD.as_bytes());
    out.extend_from_slice(callback.as_str().as_bytes());
    out.extend_from_slice(TAIL.as_bytes());
    out.resize(out.len() + padding, b' ');
    out.extend_from_slice(b"\r\n\r\n");
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{CloseFrame, EncodedMessage};

    fn wrap(kind: &ReceiverKind, frame: Frame<'_>) -> String {
        let mut out = Vec::new();
        kind.write_frame(&frame, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn cb(name: &str) -> Callback {
        Callback::new(name).unwrap()
    }

    #[test]
    fn callbacks() {
        assert_eq!(Callback::from_query(Some("c=x")).unwrap().as_str(), "x");
        assert_eq!(
            Callback::from_query(Some("callback=y")).unwrap().as_str(),
            "y"
        );
        assert_eq!(
            Callback::from_query(Some("c=a&callback=b"))
                .unwrap()
                .as_str(),
            "a"
        );
        assert_eq!(
            Callback::from_query(Some("c=_jp.a1_b-2")).unwrap().as_str(),
            "_jp.a1_b-2"
        );
        assert_eq!(
            Callback::from_query(Some("t=1")),
            Err(SockJsError::CallbackRequired)
        );
        assert_eq!(
            Callback::from_query(Some("")),
            Err(SockJsError::CallbackRequired)
        );
        for bad in ["c=", "c=a%20b", "c=a(", "c=%3Cscript%3E", "c=a;b"] {
            assert_eq!(
                Callback::from_query(Some(bad)),
                Err(SockJsError::InvalidCallback),
                "{bad}"
            );
        }
    }

    #[test]
    fn kinds_for_transports() {
        use Transport::*;
        assert_eq!(
            ReceiverKind::for_transport(Xhr, None),
            Ok(Some(ReceiverKind::XhrPolling))
        );
        assert_eq!(ReceiverKind::for_transport(XhrSend, None), Ok(None));
        assert_eq!(ReceiverKind::for_transport(JsonpSend, None), Ok(None));
        assert_eq!(
            ReceiverKind::for_transport(HtmlFile, Some("c=%63allback")),
            Ok(Some(ReceiverKind::HtmlFile(cb("callback"))))
        );
        // HtmlFile.test_no_callback / JsonPolling.test_no_callback
        assert_eq!(
            ReceiverKind::for_transport(HtmlFile, None),
            Err(SockJsError::CallbackRequired)
        );
        assert_eq!(
            ReceiverKind::for_transport(Jsonp, None),
            Err(SockJsError::CallbackRequired)
        );
        assert!(ReceiverKind::XhrPolling.is_polling());
        assert!(ReceiverKind::Jsonp(cb("x")).is_polling());
        assert!(ReceiverKind::XhrStreaming.is_streaming());
        assert!(!ReceiverKind::WebSocket.is_streaming() && !ReceiverKind::WebSocket.is_polling());
    }

    #[test]
    fn content_types() {
        assert_eq!(
            ReceiverKind::XhrPolling.content_type(),
            Some("application/javascript; charset=UTF-8")
        );
        assert_eq!(
            ReceiverKind::XhrStreaming.content_type(),
            Some("application/javascript; charset=UTF-8")
        );
        assert_eq!(
            ReceiverKind::Jsonp(cb("x")).content_type(),
            Some("application/javascript; charset=UTF-8")
        );
        assert_eq!(
            ReceiverKind::EventSource.content_type(),
            Some("text/event-stream; charset=UTF-8")
        );
        assert_eq!(
            ReceiverKind::HtmlFile(cb("x")).content_type(),
            Some("text/html; charset=UTF-8")
        );
        assert_eq!(ReceiverKind::WebSocket.content_type(), None);
    }

    #[test]
    fn preludes() {
        let p = ReceiverKind::XhrStreaming.prelude();
        assert_eq!(p.len(), 2049);
        assert_eq!(&p[..], format!("{}\n", "h".repeat(2048)).as_bytes());
        assert_eq!(&ReceiverKind::EventSource.prelude()[..], b"\r\n");
        assert!(ReceiverKind::XhrPolling.prelude().is_empty());
        assert!(ReceiverKind::WebSocket.prelude().is_empty());
    }

    #[test]
    fn htmlfile_prelude_matches_protocol() {
        // HtmlFile.test_transport: stripped body equals the head, > 1024 bytes.
        let head = r#"<!doctype html>
<html><head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
</head><body><h2>Don't panic!</h2>
  <script>
    document.domain = document.domain;
    var c = parent.callback;
    c.start();
    function p(d) {c.message(d);};
    window.onload = function() {c.stop();};
  </script>"#;
        let p = ReceiverKind::HtmlFile(cb("callback")).prelude();
        let text = std::str::from_utf8(&p).unwrap();
        assert_eq!(text.trim(), head);
        assert!(p.len() > 1024);
        // Node's arithmetic: 1027 + callback length.
        assert_eq!(p.len(), 1027 + "callback".len());
        assert!(text.ends_with(" \r\n\r\n"));
    }

    #[test]
    fn xhr_wrapping() {
        let m = [EncodedMessage::new("x")];
        assert_eq!(wrap(&ReceiverKind::XhrPolling, Frame::Open), "o\n");
        assert_eq!(
            wrap(&ReceiverKind::XhrStreaming, Frame::Messages(&m)),
            "a[\"x\"]\n"
        );
        assert_eq!(wrap(&ReceiverKind::XhrPolling, Frame::Heartbeat), "h\n");
        assert_eq!(
            wrap(
                &ReceiverKind::XhrPolling,
                Frame::Close(&CloseFrame::GO_AWAY)
            ),
            "c[3000,\"Go away!\"]\n"
        );
        assert_eq!(
            wrap(&ReceiverKind::WebSocket, Frame::Messages(&m)),
            "a[\"x\"]"
        );
    }

    #[test]
    fn eventsource_wrapping() {
        // EventSource.test_transport
        assert_eq!(
            wrap(&ReceiverKind::EventSource, Frame::Open),
            "data: o\r\n\r\n"
        );
        let m = [EncodedMessage::new("  \u{0}\n\r ")];
        assert_eq!(
            wrap(&ReceiverKind::EventSource, Frame::Messages(&m)),
            "data: a[\"  \\u0000\\n\\r \"]\r\n\r\n"
        );
        let m = [EncodedMessage::new("100%")];
        assert_eq!(
            wrap(&ReceiverKind::EventSource, Frame::Messages(&m)),
            "data: a[\"100%25\"]\r\n\r\n"
        );
    }

    #[test]
    fn htmlfile_wrapping() {
        // HtmlFile.test_transport
        let k = ReceiverKind::HtmlFile(cb("callback"));
        assert_eq!(wrap(&k, Frame::Open), "<script>\np(\"o\");\n</script>\r\n");
        let m = [EncodedMessage::new("x")];
        assert_eq!(
            wrap(&k, Frame::Messages(&m)),
            "<script>\np(\"a[\\\"x\\\"]\");\n</script>\r\n"
        );
        let m = [EncodedMessage::new("</script>")];
        assert_eq!(
            wrap(&k, Frame::Messages(&m)),
            "<script>\np(\"a[\\\"\\u003c/script>\\\"]\");\n</script>\r\n"
        );
    }

    #[test]
    fn jsonp_wrapping() {
        // JsonPolling.test_transport / test_close
        let k = ReceiverKind::Jsonp(cb("callback"));
        assert_eq!(wrap(&k, Frame::Open), "callback(\"o\");\r\n");
        let m = [EncodedMessage::new("x")];
        assert_eq!(
            wrap(&k, Frame::Messages(&m)),
            "callback(\"a[\\\"x\\\"]\");\r\n"
        );
        let k = ReceiverKind::Jsonp(cb("x"));
        assert_eq!(
            wrap(&k, Frame::Close(&CloseFrame::GO_AWAY)),
            "x(\"c[3000,\\\"Go away!\\\"]\");\r\n"
        );
        let m = [EncodedMessage::new("abc"), EncodedMessage::new("%61bc")];
        assert_eq!(
            wrap(&k, Frame::Messages(&m)),
            "x(\"a[\\\"abc\\\",\\\"%61bc\\\"]\");\r\n"
        );
    }
}
