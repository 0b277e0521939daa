//! SockJS parsing and escaping: routes, callbacks, `xhr_send` /
//! `jsonp_send` bodies, WebSocket messages, and the outbound quoting.
//!
//! Input: `[mode, ...]`.
//!
//! Invariants:
//! * `quote` / `json_quote` output is valid JSON that parses back to the
//!   input, and holds none of the characters sockjs-node escapes;
//! * messages parsed from any inbound body, sent back in an `a[...]` frame
//!   built from `EncodedMessage`s, parse (as a WebSocket message) to the
//!   same messages; and unwrapped from every receiving transport's framing
//!   (`\n`, `data: `, `p("...")`, `cb("...")`) give the same frame text;
//! * a close frame is a JSON array `[code, reason]`;
//! * `Route::parse`, `check_method`, `Callback::from_query` never panic,
//!   and a session route's ids are non-empty and slash-free.

#![no_main]

use http::Method;
use libfuzzer_sys::fuzz_target;
use switchboard_sockjs::{
    json_quote, parse_jsonp_send, parse_ws_message, parse_xhr_send, quote, Callback, CloseFrame,
    EncodedMessage, Frame, ReceiverKind, Route, SockJsConfig,
};

fn check_quote(text: &str) {
    for (sockjs, f) in [(true, quote as fn(&str, &mut Vec<u8>)), (false, json_quote)] {
        let mut out = Vec::new();
        f(text, &mut out);
        let s = std::str::from_utf8(&out).expect("quoted text is UTF-8");
        let back: String =
            serde_json::from_str(s).unwrap_or_else(|e| panic!("{s:?} is not JSON: {e}"));
        assert_eq!(back, text);
        assert!(
            !s.chars().any(|c| (c as u32) < 0x20),
            "raw control in {s:?}"
        );
        if sockjs {
            assert!(
                !s.chars().any(|c| matches!(c as u32,
                    0x200c..=0x200f | 0x2028..=0x202f | 0x2060..=0x206f | 0xfff0..=0xffff | 0x10000..)),
                "unescaped character in {s:?}"
            );
        }
    }
}

/// Unwraps one frame from each receiving transport's framing and checks
/// it is `frame`.
fn check_wrappings(frame: &Frame<'_>) {
    let raw = frame.encode();
    let text = std::str::from_utf8(&raw).unwrap();
    let cb = Callback::new("cb").unwrap();
    for kind in [
        ReceiverKind::XhrPolling,
        ReceiverKind::XhrStreaming,
        ReceiverKind::WebSocket,
        ReceiverKind::EventSource,
        ReceiverKind::HtmlFile(cb.clone()),
        ReceiverKind::Jsonp(cb.clone()),
    ] {
        let mut out = Vec::new();
        kind.write_frame(frame, &mut out);
        let out = String::from_utf8(out).expect("wrapped frame is UTF-8");
        let got = match &kind {
            ReceiverKind::XhrPolling | ReceiverKind::XhrStreaming => {
                out.strip_suffix('\n').unwrap().to_owned()
            }
            ReceiverKind::WebSocket => out.clone(),
            ReceiverKind::EventSource => {
                let data = out
                    .strip_prefix("data: ")
                    .and_then(|s| s.strip_suffix("\r\n\r\n"))
                    .unwrap();
                assert!(!data.contains(['\r', '\n', '\0']), "{data:?}");
                percent_decode(data)
            }
            ReceiverKind::HtmlFile(_) => {
                let lit = out
                    .strip_prefix("<script>\np(")
                    .and_then(|s| s.strip_suffix(");\n</script>\r\n"))
                    .unwrap();
                assert!(!lit.contains('<'), "{lit:?} can end the script");
                serde_json::from_str::<String>(lit).unwrap()
            }
            ReceiverKind::Jsonp(_) => {
                let lit = out
                    .strip_prefix("cb(")
                    .and_then(|s| s.strip_suffix(");\r\n"))
                    .unwrap();
                serde_json::from_str::<String>(lit).unwrap()
            }
        };
        assert_eq!(got, text, "{kind:?}");
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn check_messages(messages: &[String]) {
    let encoded: Vec<EncodedMessage> = messages.iter().map(|m| EncodedMessage::new(m)).collect();
    let frame = Frame::Messages(&encoded);
    let raw = frame.encode();
    assert_eq!(raw.len(), frame.encoded_len());
    let text = std::str::from_utf8(&raw).unwrap();
    let back = parse_ws_message(text.strip_prefix('a').unwrap())
        .unwrap_or_else(|_| panic!("our frame {text:?} does not parse"));
    assert_eq!(back, messages);
    check_wrappings(&frame);
}

fn check_close(code: u16, reason: &str) {
    let close = CloseFrame::new(code, reason.to_owned());
    let frame = Frame::Close(&close);
    let raw = frame.encode();
    assert_eq!(raw.len(), frame.encoded_len());
    let json = std::str::from_utf8(&raw[1..]).unwrap();
    let (c, r): (u16, String) = serde_json::from_str(json).unwrap();
    assert_eq!((c, r.as_str()), (code, reason));
    check_wrappings(&frame);
}

fn route(path: &str) {
    let config = SockJsConfig::default();
    let r = Route::parse(path);
    for m in [
        Method::GET,
        Method::POST,
        Method::OPTIONS,
        Method::HEAD,
        Method::PUT,
    ] {
        let _ = r.check_method(&m, &config);
    }
    let _ = r.allowed_methods();
    if let Route::Session {
        server_id,
        session_id,
        transport,
    } = r
    {
        for id in [server_id, session_id] {
            assert!(!id.is_empty() && !id.contains('/'), "{id:?}");
        }
        let query = path.split_once('?').map(|(_, q)| q);
        if let Ok(Some(kind)) = ReceiverKind::for_transport(transport, query) {
            let _ = (kind.prelude(), kind.content_type());
        }
    }
    if let Ok(cb) = Callback::from_query(Some(path)) {
        assert!(Callback::new(cb.as_str()).is_ok());
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match mode % 6 {
        0 => route(&text),
        1 => {
            if let Ok(m) = parse_xhr_send(rest) {
                check_messages(&m);
            }
        }
        2 => {
            let ct = match mode >> 3 {
                0 => None,
                1 => Some("application/x-www-form-urlencoded"),
                2 => Some("application/x-www-form-urlencoded; charset=UTF-8"),
                _ => Some("text/plain"),
            };
            if let Ok(m) = parse_jsonp_send(ct, rest) {
                check_messages(&m);
            }
        }
        3 => {
            if let Ok(m) = parse_ws_message(&text) {
                check_messages(&m);
            }
        }
        4 => {
            check_quote(&text);
            check_messages(&[text.into_owned()]);
        }
        _ => {
            let code = u16::from(mode) * 37;
            check_close(code, &text);
        }
    }
});
