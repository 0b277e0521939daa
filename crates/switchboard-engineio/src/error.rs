//! [`EngineError`]: every HTTP answer Node's `engine.io` gives to a request
//! it refuses — the status, the numeric Engine.IO error code and message,
//! and the exact body (`{"code":1,"message":"Session ID unknown"}`).

use std::borrow::Cow;
use std::fmt;

use http::StatusCode;

/// The Engine.IO error codes (`Server.errors` in `lib/server.ts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 0: `Transport unknown`.
    UnknownTransport = 0,
    /// 1: `Session ID unknown`.
    UnknownSid = 1,
    /// 2: `Bad handshake method`.
    BadHandshakeMethod = 2,
    /// 3: `Bad request`.
    BadRequest = 3,
    /// 4: `Forbidden` (the only one answered with 403).
    Forbidden = 4,
    /// 5: `Unsupported protocol version`.
    UnsupportedProtocolVersion = 5,
}

impl ErrorCode {
    /// The numeric code sent in the JSON body.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// Node's default message for this code (`Server.errorMessages`).
    pub const fn message(self) -> &'static str {
        match self {
            ErrorCode::UnknownTransport => "Transport unknown",
            ErrorCode::UnknownSid => "Session ID unknown",
            ErrorCode::BadHandshakeMethod => "Bad handshake method",
            ErrorCode::BadRequest => "Bad request",
            ErrorCode::Forbidden => "Forbidden",
            ErrorCode::UnsupportedProtocolVersion => "Unsupported protocol version",
        }
    }

    /// The HTTP status of a polling request refused with this code
    /// (`abortRequest`: 403 for `Forbidden`, 400 otherwise).
    pub const fn status(self) -> StatusCode {
        match self {
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// A refused Engine.IO HTTP request.
///
/// Two shapes, both copied from Node:
/// * with a [`code`](Self::code): `abortRequest` — `status` 400 (403 for
///   `Forbidden`), `Content-Type: application/json`, body
///   `{"code":N,"message":"..."}`;
/// * without a code: a bare status with an empty body, e.g. 413 for a POST
///   body over `maxPayload`, 400 for an overlapping poll, 500 for a method
///   other than GET/POST on an existing session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineError {
    /// The Engine.IO error code, `None` for bare-status answers.
    pub code: Option<ErrorCode>,
    /// The message (the JSON `message` field when there is a code).
    pub message: Cow<'static, str>,
    /// The HTTP status to answer with.
    pub status: StatusCode,
}

impl EngineError {
    /// An error with Node's default message for `code`.
    pub const fn from_code(code: ErrorCode) -> Self {
        EngineError {
            code: Some(code),
            message: Cow::Borrowed(code.message()),
            status: code.status(),
        }
    }

    /// 400 `{"code":0,"message":"Transport unknown"}`.
    pub const fn unknown_transport() -> Self {
        Self::from_code(ErrorCode::UnknownTransport)
    }

    /// 400 `{"code":1,"message":"Session ID unknown"}`.
    pub const fn unknown_sid() -> Self {
        Self::from_code(ErrorCode::UnknownSid)
    }

    /// 400 `{"code":2,"message":"Bad handshake method"}`.
    pub const fn bad_handshake_method() -> Self {
        Self::from_code(ErrorCode::BadHandshakeMethod)
    }

    /// 400 `{"code":3,"message":"Bad request"}`.
    pub const fn bad_request() -> Self {
        Self::from_code(ErrorCode::BadRequest)
    }

    /// 403 `{"code":4,"message":"Forbidden"}`, or with the custom message an
    /// `allowRequest` hook gave (Node puts it in the body instead).
    pub fn forbidden(message: Option<String>) -> Self {
        let mut err = Self::from_code(ErrorCode::Forbidden);
        if let Some(message) = message.filter(|m| !m.is_empty()) {
            err.message = Cow::Owned(message);
        }
        err
    }

    /// 400 `{"code":5,"message":"Unsupported protocol version"}`.
    pub const fn unsupported_protocol_version() -> Self {
        Self::from_code(ErrorCode::UnsupportedProtocolVersion)
    }

    /// 413 with an empty body: a polling POST body over `maxPayload`
    /// (`res.writeHead(413).end()` in `transports/polling.ts`).
    pub const fn payload_too_large() -> Self {
        Self::bare(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large")
    }

    /// 400 with an empty body: a second GET while one is pending, or a
    /// second POST while one is being read (`polling.ts` `onPollRequest`,
    /// `onDataRequest`).
    pub const fn request_overlap() -> Self {
        Self::bare(StatusCode::BAD_REQUEST, "Bad Request")
    }

    /// 400 with an empty body: a polling POST with
    /// `Content-Type: application/octet-stream`, which protocol 4 forbids.
    /// Node closes the session (`transport error`) and never answers the
    /// request at all; answering 400 is this crate's choice.
    pub const fn invalid_content() -> Self {
        Self::bare(StatusCode::BAD_REQUEST, "Bad Request")
    }

    /// 500 with an empty body: a method other than GET or POST on an
    /// existing polling session (`polling.ts` `onRequest`).
    pub const fn method_not_supported() -> Self {
        Self::bare(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
    }

    const fn bare(status: StatusCode, message: &'static str) -> Self {
        EngineError {
            code: None,
            message: Cow::Borrowed(message),
            status,
        }
    }

    /// The response body: `{"code":N,"message":"..."}` (JSON, as Node's
    /// `JSON.stringify` writes it), or empty for bare-status errors.
    pub fn body(&self) -> String {
        match self.code {
            Some(code) => {
                serde_json::json!({ "code": code.as_u8(), "message": self.message }).to_string()
            }
            None => String::new(),
        }
    }

    /// The `Content-Type` of [`body`](Self::body): `application/json` when
    /// there is a code, none otherwise.
    pub fn content_type(&self) -> Option<&'static str> {
        self.code.map(|_| "application/json")
    }

    /// For a refused WebSocket upgrade request, Node (`abortUpgrade`) writes
    /// `HTTP/1.1 400 Bad Request`, `Connection: close`,
    /// `Content-type: text/html` and the bare message as body — always 400,
    /// even for `Forbidden`. This is that body.
    pub fn upgrade_body(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(code) => write!(
                f,
                "engine.io error {} ({}): {}",
                code.as_u8(),
                self.status.as_u16(),
                self.message
            ),
            None => write!(
                f,
                "engine.io error ({}): {}",
                self.status.as_u16(),
                self.message
            ),
        }
    }
}

impl std::error::Error for EngineError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_match_node() {
        assert_eq!(
            EngineError::unknown_transport().body(),
            r#"{"code":0,"message":"Transport unknown"}"#
        );
        assert_eq!(
            EngineError::unknown_sid().body(),
            r#"{"code":1,"message":"Session ID unknown"}"#
        );
        assert_eq!(
            EngineError::bad_handshake_method().body(),
            r#"{"code":2,"message":"Bad handshake method"}"#
        );
        assert_eq!(
            EngineError::bad_request().body(),
            r#"{"code":3,"message":"Bad request"}"#
        );
        assert_eq!(
            EngineError::unsupported_protocol_version().body(),
            r#"{"code":5,"message":"Unsupported protocol version"}"#
        );
        let forbidden = EngineError::forbidden(None);
        assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
        assert_eq!(forbidden.body(), r#"{"code":4,"message":"Forbidden"}"#);
        assert_eq!(
            EngineError::forbidden(Some("no \"way\"".into())).body(),
            r#"{"code":4,"message":"no \"way\""}"#
        );
    }

    #[test]
    fn statuses_and_bare_errors() {
        assert_eq!(EngineError::unknown_sid().status, StatusCode::BAD_REQUEST);
        assert_eq!(
            EngineError::unknown_sid().content_type(),
            Some("application/json")
        );
        let too_large = EngineError::payload_too_large();
        assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(too_large.body(), "");
        assert_eq!(too_large.content_type(), None);
        assert_eq!(
            EngineError::request_overlap().status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            EngineError::method_not_supported().status,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(EngineError::forbidden(None).upgrade_body(), "Forbidden");
        assert_eq!(
            EngineError::unknown_sid().to_string(),
            "engine.io error 1 (400): Session ID unknown"
        );
    }
}
