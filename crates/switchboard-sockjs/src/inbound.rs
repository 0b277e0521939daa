//! Messages from the client: the `xhr_send` and `jsonp_send` bodies and the
//! WebSocket transport's text messages, parsed as sockjs-node parses them
//! (`lib/transport/xhr.js`, `jsonp-polling.js`, `websocket.js`). The raw
//! `/websocket` endpoint has no framing: its text is the message.

use serde_json::Value;

use crate::error::{BrokenFraming, InboundError};
use crate::form;

/// Parses an `xhr_send` body: a JSON array of strings. Any `Content-Type`
/// is accepted.
///
/// * empty → [`InboundError::PayloadExpected`];
/// * not JSON → [`InboundError::BrokenJson`];
/// * JSON but not an array → [`InboundError::PayloadExpected`];
/// * an array holding a non-string → [`InboundError::BrokenJson`]
///   (`sockjs-client` only sends strings).
///
/// ```
/// use switchboard_sockjs::{parse_xhr_send, InboundError};
///
/// assert_eq!(parse_xhr_send(br#"["a","b"]"#), Ok(vec!["a".to_owned(), "b".to_owned()]));
/// assert_eq!(parse_xhr_send(b""), Err(InboundError::PayloadExpected));
/// assert_eq!(parse_xhr_send(br#"["x"#), Err(InboundError::BrokenJson));
/// ```
pub fn parse_xhr_send(body: &[u8]) -> Result<Vec<String>, InboundError> {
    if body.is_empty() {
        return Err(InboundError::PayloadExpected);
    }
    if let Ok(messages) = serde_json::from_slice::<Vec<String>>(body) {
        return Ok(messages);
    }
    let value: Value = serde_json::from_slice(body).map_err(|_| InboundError::BrokenJson)?;
    strings(value)
}

/// Parses a `jsonp_send` body. With `Content-Type:
/// application/x-www-form-urlencoded` the JSON array is the url-decoded
/// `d` field (absent or empty → [`InboundError::PayloadExpected`]);
/// otherwise the body itself is the JSON (as `text/plain`), and if that
/// JSON is a string, the string is parsed again, as sockjs-node does.
/// Errors as in [`parse_xhr_send`].
///
/// ```
/// use switchboard_sockjs::parse_jsonp_send;
///
/// let form = Some("application/x-www-form-urlencoded");
/// assert_eq!(parse_jsonp_send(form, b"d=%5B%22x%22%5D"), Ok(vec!["x".to_owned()]));
/// assert_eq!(parse_jsonp_send(Some("text/plain"), br#"["%61bc"]"#), Ok(vec!["%61bc".to_owned()]));
/// ```
pub fn parse_jsonp_send(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Vec<String>, InboundError> {
    let mime = content_type
        .and_then(|ct| ct.split(';').next())
        .unwrap_or("")
        .trim();
    if mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        let body = String::from_utf8_lossy(body);
        let d = form::field(&body, "d").ok_or(InboundError::PayloadExpected)?;
        if d.is_empty() {
            return Err(InboundError::PayloadExpected);
        }
        return parse_xhr_send(d.as_bytes());
    }
    if body.is_empty() {
        return Err(InboundError::PayloadExpected);
    }
    let value: Value = serde_json::from_slice(body).map_err(|_| InboundError::BrokenJson)?;
    match value {
        Value::String(inner) if !inner.is_empty() => parse_xhr_send(inner.as_bytes()),
        value => strings(value),
    }
}

/// Parses a message of the `websocket` transport: empty → no messages
/// (ignored, as the protocol requires); starting with `[` → a JSON array of
/// strings; otherwise a single JSON string. Anything else is
/// [`BrokenFraming`]: close the WebSocket with
/// [`BrokenFraming::CLOSE_CODE`].
///
/// ```
/// use switchboard_sockjs::{parse_ws_message, BrokenFraming};
///
/// assert_eq!(parse_ws_message(r#"["a","b"]"#), Ok(vec!["a".to_owned(), "b".to_owned()]));
/// assert_eq!(parse_ws_message(r#""a""#), Ok(vec!["a".to_owned()]));
/// assert_eq!(parse_ws_message(""), Ok(vec![]));
/// assert_eq!(parse_ws_message(r#"["a"#), Err(BrokenFraming));
/// ```
pub fn parse_ws_message(text: &str) -> Result<Vec<String>, BrokenFraming> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    if text.starts_with('[') {
        serde_json::from_str::<Vec<String>>(text).map_err(|_| BrokenFraming)
    } else {
        serde_json::from_str::<String>(text)
            .map(|m| vec![m])
            .map_err(|_| BrokenFraming)
    }
}

/// sockjs-node's `if (!d || d.__proto__.constructor !== Array)` check, then
/// the string-only rule.
fn strings(value: Value) -> Result<Vec<String>, InboundError> {
    match value {
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(InboundError::BrokenJson),
            })
            .collect(),
        _ => Err(InboundError::PayloadExpected),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn xhr_send() {
        assert_eq!(parse_xhr_send(br#"["a"]"#), Ok(v(&["a"])));
        assert_eq!(parse_xhr_send(b"[]"), Ok(v(&[])));
        assert_eq!(parse_xhr_send(b" [\"a\" , \"b\"] "), Ok(v(&["a", "b"])));
        // XhrPolling.test_invalid_json
        assert_eq!(parse_xhr_send(br#"["x"#), Err(InboundError::BrokenJson));
        assert_eq!(parse_xhr_send(b""), Err(InboundError::PayloadExpected));
        // Valid JSON, not an array.
        for body in [&br#""a""#[..], b"{}", b"1", b"null", b"false"] {
            assert_eq!(parse_xhr_send(body), Err(InboundError::PayloadExpected));
        }
        assert_eq!(parse_xhr_send(b"[1]"), Err(InboundError::BrokenJson));
        assert_eq!(parse_xhr_send(b"  "), Err(InboundError::BrokenJson));
        assert_eq!(parse_xhr_send(b"[\"\xff\"]"), Err(InboundError::BrokenJson));
    }

    #[test]
    fn xhr_send_decodes_client_escapes() {
        // JSONEncoding.test_xhr_server_decodes, a sample.
        let got = parse_xhr_send(br#"["\u0000\u00ad\u0600\u2000\ufeff\ufffe\u0300"]"#).unwrap();
        assert_eq!(
            got,
            v(&["\u{0}\u{ad}\u{600}\u{2000}\u{feff}\u{fffe}\u{300}"])
        );
        let got = parse_xhr_send(br#"["\ud83d\ude00"]"#).unwrap();
        assert_eq!(got, v(&["😀"]));
    }

    #[test]
    fn jsonp_send() {
        let form = Some("application/x-www-form-urlencoded");
        // JsonPolling.test_transport / test_invalid_json / test_content_types
        assert_eq!(parse_jsonp_send(form, b"d=%5B%22x%22%5D"), Ok(v(&["x"])));
        assert_eq!(
            parse_jsonp_send(form, b"d=%5B%22x"),
            Err(InboundError::BrokenJson)
        );
        for body in [&b""[..], b"d=", b"p=p"] {
            assert_eq!(
                parse_jsonp_send(form, body),
                Err(InboundError::PayloadExpected)
            );
        }
        assert_eq!(
            parse_jsonp_send(form, b"d=%5B%22abc%22%5D"),
            Ok(v(&["abc"]))
        );
        assert_eq!(
            parse_jsonp_send(Some("text/plain"), br#"["%61bc"]"#),
            Ok(v(&["%61bc"]))
        );
        assert_eq!(
            parse_jsonp_send(
                Some("application/x-www-form-urlencoded; charset=UTF-8"),
                b"d=%5B%22a+b%22%5D"
            ),
            Ok(v(&["a b"]))
        );
        assert_eq!(parse_jsonp_send(None, br#"["a"]"#), Ok(v(&["a"])));
        assert_eq!(
            parse_jsonp_send(None, b""),
            Err(InboundError::PayloadExpected)
        );
        assert_eq!(
            parse_jsonp_send(None, b"[\"a"),
            Err(InboundError::BrokenJson)
        );
        // A JSON string holding the JSON array is parsed twice.
        assert_eq!(parse_jsonp_send(None, br#""[\"a\"]""#), Ok(v(&["a"])));
        assert_eq!(
            parse_jsonp_send(None, br#""""#),
            Err(InboundError::PayloadExpected)
        );
        assert_eq!(
            parse_jsonp_send(None, b"{}"),
            Err(InboundError::PayloadExpected)
        );
    }

    #[test]
    fn ws_messages() {
        assert_eq!(parse_ws_message(r#"["a"]"#), Ok(v(&["a"])));
        assert_eq!(parse_ws_message(r#"["a","b"]"#), Ok(v(&["a", "b"])));
        assert_eq!(parse_ws_message(r#""single""#), Ok(v(&["single"])));
        assert_eq!(parse_ws_message(""), Ok(v(&[])));
        // WebsocketHybi10.test_broken_json
        assert_eq!(parse_ws_message(r#"["a"#), Err(BrokenFraming));
        assert_eq!(parse_ws_message("a"), Err(BrokenFraming));
        assert_eq!(parse_ws_message("[1]"), Err(BrokenFraming));
        assert_eq!(parse_ws_message("{}"), Err(BrokenFraming));
    }
}
