//! Typed refusals and their protocol answers, in one place: every HTTP
//! error a SockJS endpoint gives ([`SockJsError`], with sockjs-node's
//! statuses and bodies), the inbound payload errors ([`InboundError`]) and
//! the WebSocket framing error ([`BrokenFraming`], a close code).

use std::fmt;

use http::StatusCode;

/// A refused SockJS HTTP request. [`crate::response::error`] turns it into
/// the response sockjs-node gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SockJsError {
    /// 404: not a SockJS URL, or a disabled transport.
    NotFound,
    /// 404: `xhr_send` / `jsonp_send` to a session that does not exist.
    SessionNotFound,
    /// 405: a SockJS URL with the wrong method; `allow` is the `Allow`
    /// header (`"OPTIONS, POST"`).
    MethodNotAllowed {
        /// The methods the URL accepts, as sent in `Allow`.
        allow: &'static str,
    },
    /// 500 `Payload expected.`: an empty send body, or not a JSON array.
    PayloadExpected,
    /// 500 `Broken JSON encoding.`: a send body that does not parse.
    BrokenJson,
    /// 500 `"callback" parameter required`: `htmlfile` / `jsonp` without
    /// `c=`.
    CallbackRequired,
    /// 500 `invalid "callback" parameter`: a callback with characters
    /// outside `[a-zA-Z0-9-_.]`.
    InvalidCallback,
    /// 400 `Can "Upgrade" only to "WebSocket".`: a plain GET to a
    /// WebSocket URL.
    NotWebSocketUpgrade,
    /// 400 `"Connection" must be "Upgrade".`: an upgrade whose `Connection`
    /// header lost its `Upgrade` token on the way.
    ConnectionNotUpgrade,
}

impl SockJsError {
    /// The HTTP status.
    pub const fn status(self) -> StatusCode {
        match self {
            SockJsError::NotFound | SockJsError::SessionNotFound => StatusCode::NOT_FOUND,
            SockJsError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            SockJsError::PayloadExpected
            | SockJsError::BrokenJson
            | SockJsError::CallbackRequired
            | SockJsError::InvalidCallback => StatusCode::INTERNAL_SERVER_ERROR,
            SockJsError::NotWebSocketUpgrade | SockJsError::ConnectionNotUpgrade => {
                StatusCode::BAD_REQUEST
            }
        }
    }

    /// The body (`text/plain; charset=UTF-8`; empty for 405, which has no
    /// `Content-Type`).
    pub const fn body(self) -> &'static str {
        match self {
            SockJsError::NotFound => "404 Error: Page not found\n",
            SockJsError::SessionNotFound => "session not found",
            SockJsError::MethodNotAllowed { .. } => "",
            SockJsError::PayloadExpected => "Payload expected.",
            SockJsError::BrokenJson => "Broken JSON encoding.",
            SockJsError::CallbackRequired => "\"callback\" parameter required",
            SockJsError::InvalidCallback => "invalid \"callback\" parameter",
            SockJsError::NotWebSocketUpgrade => "Can \"Upgrade\" only to \"WebSocket\".",
            SockJsError::ConnectionNotUpgrade => "\"Connection\" must be \"Upgrade\".",
        }
    }
}

impl fmt::Display for SockJsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status().as_u16(), self.body().trim_end())
    }
}

impl std::error::Error for SockJsError {}

/// An `xhr_send` / `jsonp_send` body that carries no messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InboundError {
    /// Empty, or valid JSON that is not an array.
    PayloadExpected,
    /// Not JSON, or an array with something other than strings in it.
    BrokenJson,
}

impl From<InboundError> for SockJsError {
    fn from(e: InboundError) -> Self {
        match e {
            InboundError::PayloadExpected => SockJsError::PayloadExpected,
            InboundError::BrokenJson => SockJsError::BrokenJson,
        }
    }
}

impl fmt::Display for InboundError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SockJsError::from(*self).body())
    }
}

impl std::error::Error for InboundError {}

/// A WebSocket-transport message that is not a JSON string or array of
/// strings. sockjs-node answers by closing the WebSocket with
/// [`BrokenFraming::CLOSE_CODE`] / [`BrokenFraming::CLOSE_REASON`]; the
/// session is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BrokenFraming;

impl BrokenFraming {
    /// The WebSocket close code to send.
    pub const CLOSE_CODE: u16 = 3000;
    /// The WebSocket close reason to send.
    pub const CLOSE_REASON: &'static str = "Broken framing.";
}

impl fmt::Display for BrokenFraming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::CLOSE_REASON)
    }
}

impl std::error::Error for BrokenFraming {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_bodies() {
        let cases = [
            (SockJsError::NotFound, 404, "404 Error: Page not found\n"),
            (SockJsError::SessionNotFound, 404, "session not found"),
            (SockJsError::MethodNotAllowed { allow: "GET" }, 405, ""),
            (SockJsError::PayloadExpected, 500, "Payload expected."),
            (SockJsError::BrokenJson, 500, "Broken JSON encoding."),
            (
                SockJsError::CallbackRequired,
                500,
                "\"callback\" parameter required",
            ),
            (
                SockJsError::InvalidCallback,
                500,
                "invalid \"callback\" parameter",
            ),
            (
                SockJsError::NotWebSocketUpgrade,
                400,
                "Can \"Upgrade\" only to \"WebSocket\".",
            ),
            (
                SockJsError::ConnectionNotUpgrade,
                400,
                "\"Connection\" must be \"Upgrade\".",
            ),
        ];
        for (e, status, body) in cases {
            assert_eq!(e.status().as_u16(), status, "{e:?}");
            assert_eq!(e.body(), body, "{e:?}");
        }
        assert_eq!(
            SockJsError::from(InboundError::BrokenJson),
            SockJsError::BrokenJson
        );
        assert_eq!(
            InboundError::PayloadExpected.to_string(),
            "Payload expected."
        );
    }
}
