//! Socket.IO v5 packets: the `Decoder` state machine fed an arbitrary
//! sequence of text and binary Engine.IO messages, and `Value` JSON.
//!
//! Input: `[mode, ...]`. Mode 0: the rest is JSON text for
//! `Value::from_json_str`. Otherwise the rest is a list of messages, each
//! `[kind, len, bytes...]` (kind bit 0: binary).
//!
//! Invariants:
//! * every packet the decoder yields has a valid namespace and re-encodes
//!   (`encode`) into a text message and attachments that a fresh decoder
//!   turns back into a packet with the same type, namespace, id and
//!   attachment count, and the same data (numbers compared as `f64`, up to
//!   one ulp: `1.0` becomes `1`, and serde_json's default float parsing is
//!   not always correctly rounded);
//! * `Value`: JSON that parses serializes to JSON that parses to the same
//!   value (numbers as above).

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use switchboard_socketio_proto::{
    encode, is_valid_namespace, Decoder, DecoderConfig, Encoded, Packet, Value,
};

fn decode_encoded(e: &Encoded, config: DecoderConfig) -> Packet {
    let mut d = Decoder::with_config(config);
    let mut got = d
        .feed_text(&e.text)
        .unwrap_or_else(|err| panic!("our text {:?} does not decode: {err}", e.text));
    for (i, a) in e.attachments.iter().enumerate() {
        assert!(got.is_none(), "packet complete before attachment {i}");
        got = d
            .feed_binary(a.clone())
            .unwrap_or_else(|err| panic!("attachment {i} refused: {err}"));
    }
    assert!(!d.is_awaiting_attachments());
    got.unwrap_or_else(|| panic!("{:?} still waits for attachments", e.text))
}

fn check_packet(p: &Packet, config: DecoderConfig) {
    assert!(is_valid_namespace(&p.nsp), "{:?}", p.nsp);
    let e1 = encode(p);
    let p2 = decode_encoded(&e1, config);
    assert_eq!(p.kind, p2.kind);
    assert_eq!(p.nsp, p2.nsp);
    assert_eq!(p.id, p2.id);
    assert_eq!(p.attachments, p2.attachments);
    assert_eq!(e1.attachments.len(), p.attachments);
    match (&p.data, &p2.data) {
        (None, None) => {}
        (Some(a), Some(b)) => assert!(same(a, b), "{a:?} became {b:?} via {:?}", e1.text),
        (a, b) => panic!("{a:?} became {b:?}"),
    }
}

/// Structural equality, numbers compared as f64 within one ulp or so.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            x == y || (x - y).abs() <= x.abs().max(y.abs()) * 4.0 * f64::EPSILON
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|((ka, va), (kb, vb))| ka == kb && same(va, vb))
        }
        _ => a == b,
    }
}

fn value(json: &str) {
    let Ok(v) = Value::from_json_str(json) else {
        return;
    };
    let s1 = v.to_json_string();
    let v2 = Value::from_json_str(&s1).unwrap_or_else(|e| panic!("{s1:?}: {e}"));
    assert!(same(&v, &v2), "{v:?} became {v2:?} via {s1:?}");
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    if mode == 0 {
        if let Ok(json) = std::str::from_utf8(rest) {
            value(json);
        }
        return;
    }
    let mut d = Decoder::with_config(DecoderConfig {
        max_attachments: usize::from(mode % 16),
    });
    while let [kind, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (msg, next) = tail.split_at(n);
        rest = next;
        let r = if kind & 1 == 1 {
            d.feed_binary(Bytes::copy_from_slice(msg))
        } else {
            d.feed_text(&String::from_utf8_lossy(msg))
        };
        match r {
            Ok(Some(p)) => {
                assert!(!d.is_awaiting_attachments());
                check_packet(&p, *d.config());
            }
            Ok(None) => assert!(d.is_awaiting_attachments()),
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
});
