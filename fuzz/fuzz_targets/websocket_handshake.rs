//! The opening handshake: `handshake::accept` on arbitrary requests,
//! `ClientHandshake::parse_response` on arbitrary responses, and a full
//! client/server handshake with arbitrary permessage-deflate settings.
//!
//! Input: `[mode, ...]`.
//! * mode 0: the rest is a raw HTTP request head given to `accept` (the
//!   server offers subprotocols and permessage-deflate); an accepted
//!   request gets the accept key of its `Sec-WebSocket-Key`, an offered
//!   subprotocol and a `Sec-WebSocket-Extensions` answer that parses back.
//! * mode 1: the rest is a raw response given to a client handshake;
//!   it never claims more bytes than it was given.
//! * otherwise: structured settings for both ends. Our own client must
//!   accept our own server's answer, and the two connections built from
//!   the negotiated parameters exchange a message each way intact.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Version};
use libfuzzer_sys::fuzz_target;
use switchboard_websocket::deflate::parse_extensions;
use switchboard_websocket::{
    accept, accept_key, ClientRequest, Config, Connection, DeflateConfig, Event, Role,
    ServerOptions,
};

#[derive(Debug, Arbitrary)]
struct Side {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: u8,
    client_max_window_bits: u8,
    compression_level: u8,
    min_size: u8,
}

impl Side {
    fn config(&self) -> DeflateConfig {
        DeflateConfig {
            server_no_context_takeover: self.server_no_context_takeover,
            client_no_context_takeover: self.client_no_context_takeover,
            server_max_window_bits: 8 + self.server_max_window_bits % 8,
            client_max_window_bits: 8 + self.client_max_window_bits % 8,
            compression_level: u32::from(self.compression_level % 10),
            min_size: usize::from(self.min_size % 4),
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Pair {
    client: Option<Side>,
    server: Option<Side>,
    client_protocols: Vec<String>,
    server_protocols: Vec<String>,
    messages: Vec<(bool, Vec<u8>)>,
}

struct Request {
    method: Method,
    version: Version,
    headers: HeaderMap,
    len: usize,
}

fn parse_request(raw: &[u8]) -> Option<Request> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(len) = req.parse(raw).ok()? else {
        return None;
    };
    let method = Method::from_bytes(req.method?.as_bytes()).ok()?;
    let version = if req.version? == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let mut map = HeaderMap::new();
    for h in req.headers.iter() {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_bytes(h.value),
        ) else {
            continue;
        };
        map.append(name, value);
    }
    Some(Request {
        method,
        version,
        headers: map,
        len,
    })
}

fn server_accepts_raw(raw: &[u8]) {
    let Some(req) = parse_request(raw) else {
        return;
    };
    let opts = ServerOptions {
        protocols: vec!["chat".into(), "stomp".into(), "v12.stomp".into()],
        deflate: Some(DeflateConfig::default()),
        origin_allowed: None,
    };
    match accept(&req.method, req.version, &req.headers, &opts) {
        Ok(a) => {
            let key = req.headers["sec-websocket-key"].as_bytes().trim_ascii();
            assert_eq!(a.accept_key, accept_key(key));
            if let Some(p) = &a.protocol {
                assert!(opts.protocols.contains(p), "{p:?} not offered");
            }
            let headers = a.response_headers();
            if let Some(d) = &a.deflate {
                let ext = headers["sec-websocket-extensions"].to_str().unwrap();
                let parsed = parse_extensions([ext]);
                assert_eq!(parsed.len(), 1, "{ext:?}");
                assert_eq!(parsed[0].name, "permessage-deflate");
                assert!((9..=15).contains(&d.server_max_window_bits), "{d:?}");
                assert!((8..=15).contains(&d.client_max_window_bits), "{d:?}");
            }
        }
        Err(e) => {
            let _ = e.extra_headers();
            let _ = e.to_string();
        }
    }
}

fn client_parses_raw(raw: &[u8]) {
    let (_, hs) = ClientRequest::new("localhost", "/ws")
        .protocols(["chat", "stomp"])
        .deflate(DeflateConfig::default())
        .encode();
    if let Ok(Some((_, n))) = hs.parse_response(raw) {
        assert!(n <= raw.len());
    }
}

fn response_bytes(headers: &HeaderMap) -> Vec<u8> {
    let mut out = b"HTTP/1.1 101 Switching Protocols\r\n".to_vec();
    for (k, v) in headers {
        out.extend_from_slice(k.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

fn pair(p: Pair) {
    // Subprotocols are tokens (RFC 6455 §4.1); keep only those.
    let client_protocols: Vec<String> = p
        .client_protocols
        .into_iter()
        .filter(|s| is_token(s))
        .take(4)
        .collect();
    let mut request = ClientRequest::new("localhost", "/ws").protocols(client_protocols.clone());
    if let Some(c) = &p.client {
        request = request.deflate(c.config());
    }
    let (raw, hs) = request.encode();
    let req = parse_request(&raw).expect("our request parses");
    assert_eq!(req.len, raw.len());
    let opts = ServerOptions {
        protocols: p.server_protocols.into_iter().take(4).collect(),
        deflate: p.server.as_ref().map(Side::config),
        origin_allowed: None,
    };
    let accepted = accept(&req.method, req.version, &req.headers, &opts)
        .unwrap_or_else(|e| panic!("server refused our client: {e}"));
    if let Some(proto) = &accepted.protocol {
        assert!(client_protocols.contains(proto) && opts.protocols.contains(proto));
    }
    let response = response_bytes(&accepted.response_headers());
    let client = match hs.parse_response(&response) {
        Ok(Some((c, n))) => {
            assert_eq!(n, response.len());
            c
        }
        Ok(None) => panic!("complete response reported partial"),
        Err(e) => {
            // Known limitation: the zlib backend cannot compress with a
            // 256-byte window, so the client refuses `=8`.
            let server_cmwb = p.server.as_ref().map(|s| s.config().client_max_window_bits);
            assert!(
                server_cmwb == Some(8) && e.reason == "unsupported client_max_window_bits=8",
                "client refused our server: {e} ({:?})",
                accepted.response_headers()
            );
            return;
        }
    };
    assert_eq!(client.protocol, accepted.protocol);
    assert_eq!(client.deflate.is_some(), accepted.deflate.is_some());

    let mut server = Connection::new(
        Role::Server,
        Config {
            deflate: accepted.deflate,
            ..Config::default()
        },
    );
    let mut client = Connection::new(
        Role::Client,
        Config {
            deflate: client.deflate,
            ..Config::default()
        },
    );
    for (text, payload) in p.messages.iter().take(8) {
        let text = text.then(|| String::from_utf8_lossy(payload).into_owned());
        for client_sends in [true, false] {
            let (from, to) = if client_sends {
                (&mut client, &mut server)
            } else {
                (&mut server, &mut client)
            };
            match &text {
                Some(t) => from.writer().send_text(t),
                None => from.writer().send_binary(payload),
            }
            let mut out = Vec::new();
            from.writer().take_output(&mut out);
            let mut got = Vec::new();
            for chunk in out {
                let mut data = chunk.to_vec();
                to.receive(&mut data, |e, _| match e {
                    Event::Text(t) => got.push(t.as_bytes().to_vec()),
                    Event::Binary(b) => got.push(b.to_vec()),
                    other => panic!("unexpected {other:?}"),
                })
                .unwrap_or_else(|e| panic!("{:?} rejected a message: {e}", to.role()));
            }
            let want = text.as_ref().map_or(&payload[..], |t| t.as_bytes());
            assert_eq!(got, [want]);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode {
        0 => server_accepts_raw(rest),
        1 => client_parses_raw(rest),
        _ => {
            if let Ok(p) = Pair::arbitrary_take_rest(Unstructured::new(rest)) {
                pair(p);
            }
        }
    }
});
