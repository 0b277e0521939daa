//! Packet encoding (socket.io-parser `Encoder`): the text form
//! `<type>[<attachments>-][<nsp>,][<id>][<json>]` plus the binary attachments,
//! and a tree-free fast path for broadcasting pre-serialized events.

use bytes::Bytes;

use crate::json::{self, BinaryAsBufferJson, Placeholders};
use crate::packet::{Packet, PacketType};
use crate::value::Value;

/// An encoded packet: send `text` as one Engine.IO text message, then each
/// of `attachments`, in order, as one Engine.IO binary message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The packet in text form, with placeholders for binary values.
    pub text: String,
    /// The binary values of the payload, in placeholder order (`num` 0, 1…).
    pub attachments: Vec<Bytes>,
}

/// Encodes `packet` exactly as socket.io-parser's `Encoder` does.
///
/// * An EVENT or ACK whose data holds any [`Value::Binary`] is sent as
///   BINARY_EVENT / BINARY_ACK: each binary value becomes
///   `{"_placeholder":true,"num":N}` (depth-first, N counting from 0) and an
///   attachment. A `BinaryEvent`/`BinaryAck` packet without binary data is
///   sent as a plain EVENT/ACK (socket.io-parser would write a `0-` count
///   that its own decoder now rejects).
/// * The namespace is omitted when it is `"/"` or empty.
/// * `data` of `None` or [`Value::Null`] is omitted (JS `null != data`).
/// * Binary inside CONNECT / DISCONNECT / CONNECT_ERROR data is written as
///   Node's `Buffer` JSON (`{"type":"Buffer","data":[...]}`), as
///   `JSON.stringify` would.
///
/// The namespace is written as given: it should pass
/// [`is_valid_namespace`](crate::is_valid_namespace) (socket.io-parser
/// throws on a `,`; here a debug assertion checks it).
pub fn encode(packet: &Packet) -> Encoded {
    let data = packet.data.as_ref().filter(|d| !matches!(d, Value::Null));
    let binary_count = data.map_or(0, Value::count_binary);
    let kind = match packet.kind.without_binary() {
        PacketType::Event if binary_count > 0 => PacketType::BinaryEvent,
        PacketType::Ack if binary_count > 0 => PacketType::BinaryAck,
        other => other,
    };

    let mut text = String::new();
    text.push(kind.as_digit());
    if kind.is_binary() {
        text.push_str(itoa::Buffer::new().format(binary_count));
        text.push('-');
    }
    push_nsp(&mut text, &packet.nsp);
    if let Some(id) = packet.id {
        text.push_str(itoa::Buffer::new().format(id));
    }
    let mut attachments = Vec::new();
    if let Some(data) = data {
        if kind.is_binary() {
            attachments.reserve_exact(binary_count);
            let mut sink = Placeholders {
                attachments: &mut attachments,
            };
            json::write_value(&mut text, data, &mut sink);
        } else {
            json::write_value(&mut text, data, &mut BinaryAsBufferJson);
        }
    }
    Encoded { text, attachments }
}

/// Encodes an EVENT without building a [`Value`] tree: `event` is escaped
/// as a JSON string and each of `raw_json_args` is copied verbatim, so each
/// must already be one valid JSON value (e.g. from `serde_json::to_string`
/// or `RawValue::get`) without binary.
///
/// `encode_event_raw("/chat", "msg", &["1", r#"{"a":2}"#])` gives
/// `2/chat,["msg",1,{"a":2}]`. The output is exactly what [`encode`] writes
/// for the same event when the JSON of each argument is the same.
pub fn encode_event_raw(nsp: &str, event: &str, raw_json_args: &[&str]) -> String {
    let cap =
        4 + nsp.len() + event.len() + raw_json_args.iter().map(|a| a.len() + 1).sum::<usize>() + 3;
    let mut text = String::with_capacity(cap);
    text.push('2');
    push_nsp(&mut text, nsp);
    text.push('[');
    json::write_str(&mut text, event);
    for arg in raw_json_args {
        text.push(',');
        text.push_str(arg);
    }
    text.push(']');
    text
}

fn push_nsp(text: &mut String, nsp: &str) {
    if !nsp.is_empty() && nsp != "/" {
        debug_assert!(
            crate::packet::is_valid_namespace(nsp),
            "namespace {nsp:?} cannot be encoded"
        );
        text.push_str(nsp);
        text.push(',');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bin(b: &'static [u8]) -> Value {
        Value::Binary(Bytes::from_static(b))
    }

    #[test]
    fn simple_packets() {
        assert_eq!(encode(&Packet::new(PacketType::Connect)).text, "0");
        let p = Packet::new(PacketType::Disconnect).with_nsp("/admin");
        assert_eq!(encode(&p).text, "1/admin,");
        let p = Packet::new(PacketType::Event)
            .with_nsp("")
            .with_data(Value::Null);
        assert_eq!(encode(&p).text, "2");
        let p = Packet::event("/", "hello", vec![1.into()]).with_id(12);
        assert_eq!(encode(&p).text, r#"212["hello",1]"#);
    }

    #[test]
    fn binary_switches_type_and_numbers_depth_first() {
        let data = Value::Array(vec![
            "up".into(),
            Value::Object(vec![
                ("z".into(), bin(b"0")),
                ("a".into(), Value::Array(vec![bin(b"1"), 5.into()])),
            ]),
            bin(b"2"),
        ]);
        let e = encode(
            &Packet::new(PacketType::Event)
                .with_data(data.clone())
                .with_id(7),
        );
        assert_eq!(
            e.text,
            r#"53-7["up",{"z":{"_placeholder":true,"num":0},"a":[{"_placeholder":true,"num":1},5]},{"_placeholder":true,"num":2}]"#
        );
        assert_eq!(e.attachments, vec![&b"0"[..], &b"1"[..], &b"2"[..]]);

        let e = encode(&Packet::ack("/admin", 456, vec![bin(b"x")]));
        assert_eq!(e.text, r#"61-/admin,456[{"_placeholder":true,"num":0}]"#);

        // BinaryEvent without binary is sent as a plain EVENT.
        let p = Packet::new(PacketType::BinaryEvent).with_data(Value::Array(vec!["a".into()]));
        assert_eq!(encode(&p).text, r#"2["a"]"#);
    }

    #[test]
    fn binary_in_connect_is_buffer_json() {
        let p = Packet::new(PacketType::Connect)
            .with_data(Value::Object(vec![("k".into(), bin(&[1, 255]))]));
        let e = encode(&p);
        assert_eq!(e.text, r#"0{"k":{"type":"Buffer","data":[1,255]}}"#);
        assert!(e.attachments.is_empty());
    }

    #[test]
    fn raw_event_matches_tree_encoding() {
        let raw = encode_event_raw("/chat", "m\"sg", &["1", r#"{"b":1,"a":[true]}"#]);
        assert_eq!(raw, r#"2/chat,["m\"sg",1,{"b":1,"a":[true]}]"#);
        let tree = Packet::event(
            "/chat",
            "m\"sg",
            vec![
                1.into(),
                Value::from_json_str(r#"{"b":1,"a":[true]}"#).unwrap(),
            ],
        );
        assert_eq!(encode(&tree).text, raw);
        assert_eq!(encode_event_raw("/", "ping", &[]), r#"2["ping"]"#);
    }
}
