//! Wire-level tests: the examples of the Socket.IO v5 protocol document,
//! round trips, binary reassembly, every decode error, and a no-panic sweep.

use bytes::Bytes;
use switchboard_socketio_proto::{
    encode, DecodeError, Decoder, DecoderConfig, Packet, PacketType, Value,
};

fn decode_one(text: &str) -> Result<Packet, DecodeError> {
    Decoder::new()
        .feed_text(text)
        .map(|p| p.expect("complete packet"))
}

fn json(s: &str) -> Value {
    Value::from_json_str(s).unwrap()
}

/// Decodes `text` then encodes the packet again: must give `text` back.
fn round_trip(text: &str) -> Packet {
    let p = decode_one(text).unwrap();
    let e = encode(&p);
    assert_eq!(e.text, text);
    assert!(e.attachments.is_empty());
    p
}

#[test]
fn protocol_doc_examples_text() {
    let p = round_trip("0");
    assert_eq!(
        (p.kind, p.nsp.as_str(), p.id, &p.data),
        (PacketType::Connect, "/", None, &None)
    );

    let p = round_trip(r#"0/admin,{"token":"123"}"#);
    assert_eq!(p.kind, PacketType::Connect);
    assert_eq!(p.nsp, "/admin");
    assert_eq!(p.data, Some(json(r#"{"token":"123"}"#)));

    let p = round_trip(r#"0{"sid":"oSO0OpakMV_3jnilAAAA"}"#);
    assert_eq!(
        p.data.unwrap().get("sid").unwrap().as_str(),
        Some("oSO0OpakMV_3jnilAAAA")
    );

    let p = round_trip("1/admin,");
    assert_eq!(
        (p.kind, p.nsp.as_str(), p.data),
        (PacketType::Disconnect, "/admin", None)
    );
    round_trip("1");

    let p = round_trip(r#"2["hello",1]"#);
    assert_eq!(p.kind, PacketType::Event);
    assert_eq!(p.event_name(), Some("hello"));
    assert_eq!(p.args(), Some(&[Value::from(1)][..]));

    let p = round_trip(r#"212["foo"]"#);
    assert_eq!((p.id, p.event_name()), (Some(12), Some("foo")));

    let p = round_trip(r#"2/admin,456["project:delete",123]"#);
    assert_eq!((p.nsp.as_str(), p.id), ("/admin", Some(456)));

    let p = round_trip(r#"3/admin,13["bar"]"#);
    assert_eq!(
        (p.kind, p.nsp.as_str(), p.id),
        (PacketType::Ack, "/admin", Some(13))
    );
    assert_eq!(p.args(), Some(&[Value::from("bar")][..]));
    round_trip("3/admin,456[]");

    let p = round_trip(r#"4{"message":"Not authorized"}"#);
    assert_eq!(p.kind, PacketType::ConnectError);
    round_trip(r#"4/admin,"Not authorized""#);

    // Node also accepts a number as the event name.
    round_trip("2[42,true]");
    // A namespace without the trailing comma is read to the end (Node).
    let p = decode_one("1/admin").unwrap();
    assert_eq!(p.nsp, "/admin");
}

#[test]
fn protocol_doc_examples_binary() {
    let mut d = Decoder::new();
    let text = r#"51-["hello",{"_placeholder":true,"num":0}]"#;
    assert_eq!(d.feed_text(text).unwrap(), None);
    assert!(d.is_awaiting_attachments());
    let p = d
        .feed_binary(Bytes::from_static(&[1, 2, 3, 4]))
        .unwrap()
        .unwrap();
    assert!(!d.is_awaiting_attachments());
    assert_eq!(p.kind, PacketType::Event);
    assert_eq!(p.attachments, 1);
    assert_eq!(
        p.data,
        Some(Value::Array(vec![
            "hello".into(),
            Value::Binary(Bytes::from_static(&[1, 2, 3, 4]))
        ]))
    );
    let e = encode(&p);
    assert_eq!(e.text, text);
    assert_eq!(e.attachments, vec![Bytes::from_static(&[1, 2, 3, 4])]);

    let text = r#"61-/admin,456[{"_placeholder":true,"num":0}]"#;
    assert_eq!(d.feed_text(text).unwrap(), None);
    let p = d.feed_binary(Bytes::from_static(&[9])).unwrap().unwrap();
    assert_eq!(
        (p.kind, p.nsp.as_str(), p.id),
        (PacketType::Ack, "/admin", Some(456))
    );
    assert_eq!(encode(&p).text, text);
}

#[test]
fn nested_binary_out_of_order_placeholders() {
    // Placeholders may point at attachments in any order (socket.io-parser
    // indexes by num); the decoder puts each where its placeholder was.
    let text = r#"53-7["up",{"b":{"_placeholder":true,"num":2},"a":[{"_placeholder":true,"num":0},{"deep":{"_placeholder":true,"num":1}}]}]"#;
    let mut d = Decoder::new();
    assert_eq!(d.feed_text(text).unwrap(), None);
    assert_eq!(d.feed_binary(Bytes::from_static(b"zero")).unwrap(), None);
    assert_eq!(d.feed_binary(Bytes::from_static(b"one")).unwrap(), None);
    let p = d.feed_binary(Bytes::from_static(b"two")).unwrap().unwrap();
    let obj = &p.args().unwrap()[0];
    assert_eq!(obj.get("b").unwrap().as_binary().unwrap(), "two");
    let a = obj.get("a").unwrap().as_array().unwrap();
    assert_eq!(a[0].as_binary().unwrap(), "zero");
    assert_eq!(a[1].get("deep").unwrap().as_binary().unwrap(), "one");
    // Re-encoding numbers depth-first and keeps key order.
    let e = encode(&p);
    assert_eq!(
        e.text,
        r#"53-7["up",{"b":{"_placeholder":true,"num":0},"a":[{"_placeholder":true,"num":1},{"deep":{"_placeholder":true,"num":2}}]}]"#
    );
    assert_eq!(e.attachments, vec!["two", "zero", "one"]);
}

#[test]
fn placeholders_in_plain_event_stay_objects() {
    let p = round_trip(r#"2["x",{"_placeholder":true,"num":0}]"#);
    assert!(!p.data.unwrap().has_binary());
}

#[test]
fn key_order_and_numbers_preserved() {
    round_trip(r#"2["k",{"z":1,"a":{"y":[1.5,-2,1e+21,"é\n"],"b":null},"m":false}]"#);
    // JS number forms are normalized as JSON.stringify would.
    let p = decode_one(r#"2["n",1.0,1E2,0.0000001]"#).unwrap();
    assert_eq!(encode(&p).text, r#"2["n",1,100,1e-7]"#);
}

#[test]
fn decoder_is_reusable_across_packets() {
    let mut d = Decoder::new();
    for _ in 0..3 {
        assert!(d.feed_text(r#"2["a"]"#).unwrap().is_some());
        assert!(d
            .feed_text(r#"52-["b",{"_placeholder":true,"num":1},{"_placeholder":true,"num":0}]"#)
            .unwrap()
            .is_none());
        assert!(d.feed_binary(Bytes::from_static(b"0")).unwrap().is_none());
        let p = d.feed_binary(Bytes::from_static(b"1")).unwrap().unwrap();
        assert_eq!(p.args().unwrap()[0].as_binary().unwrap(), "1");
    }
}

fn err(text: &str) -> DecodeError {
    Decoder::new().feed_text(text).unwrap_err()
}

#[test]
fn every_decode_error() {
    use DecodeError::*;
    assert_eq!(err(""), UnknownPacketType(None));
    assert_eq!(err("7"), UnknownPacketType(Some('7')));
    assert_eq!(err("é"), UnknownPacketType(Some('é')));
    assert_eq!(err("x[]"), UnknownPacketType(Some('x')));

    assert_eq!(err(r#"5["a"]"#), InvalidAttachments);
    assert_eq!(err(r#"5-["a"]"#), InvalidAttachments);
    assert_eq!(err(r#"51["a"]"#), InvalidAttachments);
    assert_eq!(err("51"), InvalidAttachments);
    assert_eq!(err(r#"50-["a"]"#), InvalidAttachments);
    assert_eq!(err(r#"6a-[]"#), InvalidAttachments);

    assert_eq!(
        err(r#"21-["a"]"#),
        AttachmentsOnNonBinary(PacketType::Event)
    );
    assert_eq!(err(r#"31-[]"#), AttachmentsOnNonBinary(PacketType::Ack));

    assert_eq!(
        err(r#"511-["a"]"#),
        TooManyAttachments { count: 11, max: 10 }
    );
    assert_eq!(
        err(r#"599999999999999999999999-["a"]"#),
        TooManyAttachments {
            count: usize::MAX,
            max: 10
        }
    );
    let mut small = Decoder::with_config(DecoderConfig { max_attachments: 1 });
    assert_eq!(small.config().max_attachments, 1);
    assert_eq!(
        small.feed_text(r#"52-["a"]"#).unwrap_err(),
        TooManyAttachments { count: 2, max: 1 }
    );

    for bad in [
        r#"51-["a",{"_placeholder":true,"num":1}]"#,
        r#"51-["a",{"_placeholder":true,"num":-1}]"#,
        r#"51-["a",{"_placeholder":true,"num":0.5}]"#,
        r#"51-["a",{"_placeholder":true,"num":"0"}]"#,
        r#"51-["a",{"_placeholder":true}]"#,
    ] {
        assert_eq!(err(bad), InvalidPlaceholder, "{bad}");
    }
    // `num: 0.0` is a JS number 0: accepted.
    assert!(Decoder::new()
        .feed_text(r#"51-["a",{"_placeholder":true,"num":0.0}]"#)
        .is_ok());
    assert_eq!(
        err(r#"52-["a",{"_placeholder":true,"num":0},{"_placeholder":true,"num":0}]"#),
        DuplicatePlaceholder(0)
    );
    assert_eq!(
        err(r#"52-["a",{"_placeholder":true,"num":1}]"#),
        MissingPlaceholder(0)
    );
    assert_eq!(
        err(r#"51-["a",{"_placeholder":false,"num":0}]"#),
        MissingPlaceholder(0)
    );

    let mut d = Decoder::new();
    assert_eq!(
        d.feed_binary(Bytes::from_static(b"x")),
        Err(UnexpectedBinary)
    );
    assert_eq!(
        d.feed_text(r#"51-["a",{"_placeholder":true,"num":0}]"#),
        Ok(None)
    );
    assert_eq!(d.feed_text(r#"2["a"]"#), Err(UnexpectedText));
    // The half-received packet was dropped: the decoder starts over.
    assert!(!d.is_awaiting_attachments());
    assert_eq!(
        d.feed_binary(Bytes::from_static(b"x")),
        Err(UnexpectedBinary)
    );
    assert_eq!(
        d.feed_text(r#"51-["a",{"_placeholder":true,"num":0}]"#),
        Ok(None)
    );
    d.reset();
    assert_eq!(
        d.feed_text(r#"2["a"]"#).unwrap().unwrap().event_name(),
        Some("a")
    );

    assert_eq!(err("2/ad\u{1}min,[\"a\"]"), InvalidNamespace);
    assert_eq!(err("0/a\u{7f},"), InvalidNamespace);

    assert_eq!(err(r#"218446744073709551616["a"]"#), InvalidId);
    assert_eq!(
        decode_one(r#"218446744073709551615["a"]"#).unwrap().id,
        Some(u64::MAX)
    );

    for bad in [
        r#"2["a""#,
        "2{",
        "0{\"a\":}",
        "2admin,[\"a\"]",
        "3 x",
        r#"2["a"]x"#,
    ] {
        assert!(matches!(err(bad), InvalidJson(_)), "{bad}");
    }

    let invalid = |text: &str, kind| match err(text) {
        InvalidPayload { kind: k, .. } => assert_eq!(k, kind, "{text}"),
        other => panic!("{text}: {other:?}"),
    };
    invalid("0[]", PacketType::Connect);
    invalid(r#"0"x""#, PacketType::Connect);
    invalid("0null", PacketType::Connect);
    invalid("1{}", PacketType::Disconnect);
    invalid("1/admin,{}", PacketType::Disconnect);
    invalid("2", PacketType::Event);
    invalid("2{}", PacketType::Event);
    invalid("2[]", PacketType::Event);
    invalid("2[null]", PacketType::Event);
    invalid("2[[\"a\"]]", PacketType::Event);
    invalid("3", PacketType::Ack);
    invalid("3{}", PacketType::Ack);
    invalid("4", PacketType::ConnectError);
    invalid("4[]", PacketType::ConnectError);
    invalid("41", PacketType::ConnectError); // id 1, no payload
    invalid(
        r#"51-{"_placeholder":true,"num":0}"#,
        PacketType::BinaryEvent,
    );
    invalid(r#"61-{"_placeholder":true,"num":0}"#, PacketType::BinaryAck);

    for name in switchboard_socketio_proto::RESERVED_EVENTS {
        assert_eq!(
            err(&format!(r#"2["{name}"]"#)),
            ReservedEvent(name.to_owned())
        );
    }

    // Every variant has a message.
    for e in [
        UnknownPacketType(None),
        InvalidAttachments,
        InvalidJson("x".into()),
        InvalidPayload {
            kind: PacketType::Ack,
            reason: "r",
        },
        ReservedEvent("connect".into()),
    ] {
        assert!(!e.to_string().is_empty());
    }
}

/// xorshift64*: deterministic pseudo-random input.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn random_input_never_panics() {
    const ALPHABET: &[u8] = b"0123456-/,[]{}\":_placeholdertruenum \\,.e-9aA\x01";
    let seeds = [
        r#"51-["a",{"_placeholder":true,"num":0}]"#,
        r#"3/admin,13["bar"]"#,
        r#"0/admin,{"token":"123"}"#,
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut d = Decoder::new();
    for i in 0..20_000 {
        let text: String = if i % 2 == 0 {
            // Random characters from the packet alphabet.
            let len = (rng.next() % 40) as usize;
            (0..len)
                .map(|_| ALPHABET[(rng.next() % ALPHABET.len() as u64) as usize] as char)
                .collect()
        } else {
            // A mutated valid packet.
            let mut b = seeds[(rng.next() % 3) as usize].as_bytes().to_vec();
            for _ in 0..1 + rng.next() % 3 {
                let at = (rng.next() % b.len() as u64) as usize;
                b[at] = ALPHABET[(rng.next() % ALPHABET.len() as u64) as usize];
            }
            String::from_utf8(b).unwrap()
        };
        let _ = d.feed_text(&text);
        if rng.next().is_multiple_of(3) {
            let _ = d.feed_binary(Bytes::from(vec![0u8; (rng.next() % 4) as usize]));
        }
        // Arbitrary bytes, lossily made text.
        let raw: Vec<u8> = (0..rng.next() % 24).map(|_| rng.next() as u8).collect();
        if let Ok(Some(p)) = Decoder::new().feed_text(&String::from_utf8_lossy(&raw)) {
            let _ = encode(&p);
        }
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = format!("2[\"a\",{}{}]", "[".repeat(100_000), "]".repeat(100_000));
    assert!(matches!(err(&deep), DecodeError::InvalidJson(_)));
    let ok = format!("2[\"a\",{}{}]", "[".repeat(100), "]".repeat(100));
    round_trip(&ok);
}
