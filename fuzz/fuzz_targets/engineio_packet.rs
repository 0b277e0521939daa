//! Engine.IO v4 packets, polling payloads and request queries.
//!
//! Input: `[mode, ...]`, the rest as UTF-8 (lossy) text.
//!
//! Invariants:
//! * payload: the packets decoded before the first error encode with
//!   `encode_payload` into a body that decodes to the same packets, with
//!   no error; decoding stops after the first error;
//! * packet: a WebSocket text message that decodes re-encodes (text or
//!   binary frame) into a message decoding to the same packet;
//! * query: `EngineQuery::parse` and `route` never panic; a handshake
//!   route has `EIO=4` and no sid.

#![no_main]

use bytes::Bytes;
use http::Method;
use libfuzzer_sys::fuzz_target;
use switchboard_engineio::{
    decode_payload, encode_payload, route, Config, EngineQuery, Packet, Route, Utf8Bytes, WsMessage,
};

fn payload(body: Bytes) {
    let mut packets = Vec::new();
    let mut errors = 0;
    for p in decode_payload(Utf8Bytes::from_bytes_lossy(body)) {
        assert_eq!(errors, 0, "decoding went on after an error");
        match p {
            Ok(p) => packets.push(p),
            Err(e) => {
                let _ = e.to_string();
                errors += 1;
            }
        }
    }
    if packets.is_empty() {
        return;
    }
    let encoded = encode_payload(&packets);
    let again: Vec<Packet> = decode_payload(Utf8Bytes::try_from_bytes(encoded.clone()).unwrap())
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("our payload {encoded:?} does not decode: {e}"));
    assert_eq!(packets, again);
}

fn packet(text: Utf8Bytes, binary: bool) {
    let Ok(p) = Packet::decode_ws(WsMessage::Text(text)) else {
        return;
    };
    let msg = p.encode_ws(binary);
    let again = Packet::decode_ws(msg.clone())
        .unwrap_or_else(|e| panic!("our message {msg:?} does not decode: {e}"));
    assert_eq!(p, again);
    assert_eq!(Packet::decode_text(p.encode_text()).unwrap(), p);
}

fn query(text: &str, flags: u8) {
    let q = EngineQuery::parse(text);
    let _ = (q.sid(), q.b64(), q.transport_kind());
    let method = if flags & 1 == 0 {
        Method::GET
    } else {
        Method::POST
    };
    let origin = (flags & 2 != 0).then_some(text.as_bytes());
    match route(&method, &q, origin, flags & 4 != 0, &Config::default()) {
        Ok(Route::Handshake { .. }) => {
            assert_eq!(q.eio.as_deref(), Some("4"));
            assert!(q.sid().is_none());
        }
        Ok(Route::Session { sid, .. }) => assert!(!sid.is_empty()),
        Err(e) => {
            let _ = format!("{e:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = Utf8Bytes::from_bytes_lossy(Bytes::copy_from_slice(rest));
    match mode % 3 {
        0 => payload(Bytes::copy_from_slice(rest)),
        1 => packet(text, mode & 0x80 != 0),
        _ => query(text.as_str(), mode >> 2),
    }
});
