//! Typed payloads: `to_value` / `from_value` with structs, enums, options
//! and binary fields.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use switchboard_socketio_proto::{encode, from_value, to_value, Packet, PacketType, Value};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Upload {
    name: String,
    size: u32,
    data: Bytes,
    tags: Vec<String>,
    note: Option<String>,
    kind: Kind,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Kind {
    Image,
    Text(String),
    Pair(u8, i64),
    Sized { w: f64, h: f64 },
}

#[test]
fn struct_with_binary_round_trips_through_the_wire() {
    let upload = Upload {
        name: "cat".into(),
        size: 3,
        data: Bytes::from_static(&[1, 2, 3]),
        tags: vec!["a".into()],
        note: None,
        kind: Kind::Sized { w: 1.5, h: 2.0 },
    };
    let v = to_value(&upload).unwrap();
    let p = Packet::event("/", "upload", vec![v]);
    let e = encode(&p);
    assert_eq!(
        e.text,
        r#"51-["upload",{"name":"cat","size":3,"data":{"_placeholder":true,"num":0},"tags":["a"],"note":null,"kind":{"Sized":{"w":1.5,"h":2}}}]"#
    );

    let mut d = switchboard_socketio_proto::Decoder::new();
    assert!(d.feed_text(&e.text).unwrap().is_none());
    let got = d.feed_binary(e.attachments[0].clone()).unwrap().unwrap();
    assert_eq!(got.kind, PacketType::Event);
    let back: Upload = from_value(got.args().unwrap()[0].clone()).unwrap();
    assert_eq!(back, upload);
}

#[test]
fn enums_options_and_maps() {
    for k in [
        Kind::Image,
        Kind::Text("t".into()),
        Kind::Pair(1, -2),
        Kind::Sized { w: 0.5, h: 1e300 },
    ] {
        let v = to_value(&k).unwrap();
        assert_eq!(from_value::<Kind>(v).unwrap(), k);
    }
    assert_eq!(to_value(&Kind::Image).unwrap(), Value::from("Image"));
    assert_eq!(from_value::<Option<u8>>(Value::Null).unwrap(), None);
    assert_eq!(from_value::<Option<u8>>(Value::from(7)).unwrap(), Some(7));
    assert!(from_value::<u8>(Value::from(300)).is_err());

    let mut m = BTreeMap::new();
    m.insert(2u32, "two");
    let v = to_value(&m).unwrap();
    assert_eq!(v.to_json_string(), r#"{"2":"two"}"#);
    let back: BTreeMap<String, String> = from_value(v).unwrap();
    assert_eq!(back["2"], "two");
}

#[test]
fn binary_into_vec_u8_and_value() {
    let bin = Value::Binary(Bytes::from_static(b"hi"));
    assert_eq!(from_value::<Vec<u8>>(bin.clone()).unwrap(), b"hi");
    assert_eq!(from_value::<Bytes>(bin.clone()).unwrap(), "hi");
    assert_eq!(from_value::<Value>(bin.clone()).unwrap(), bin);
    // A plain Vec<u8> serializes as numbers, as a JS array would.
    assert_eq!(to_value(&vec![1u8, 2]).unwrap().to_json_string(), "[1,2]");
    // Extra fields are ignored, missing ones fail.
    #[derive(Deserialize)]
    struct A {
        #[allow(dead_code)]
        a: u8,
    }
    assert!(from_value::<A>(Value::from_json_str(r#"{"a":1,"b":[{}]}"#).unwrap()).is_ok());
    assert!(from_value::<A>(Value::from_json_str(r#"{"b":1}"#).unwrap()).is_err());
    // Tuples from arrays, with length checks.
    let (s, n): (String, i64) = from_value(Value::from_json_str(r#"["x",-1]"#).unwrap()).unwrap();
    assert_eq!((s.as_str(), n), ("x", -1));
    assert!(from_value::<(String,)>(Value::from_json_str(r#"["x",1]"#).unwrap()).is_err());
}

#[test]
fn value_serializes_through_serde_json() {
    let v = Value::from_json_str(r#"{"b":[1,"x"],"a":null}"#).unwrap();
    let j = serde_json::to_value(&v).unwrap();
    assert_eq!(j, serde_json::json!({"a": null, "b": [1, "x"]}));
    assert_eq!(to_value(&v).unwrap(), v);
}
