//! Edits of an encoded EVENT packet that spare encoding it again: giving it
//! an ack id (every node numbers its own acks) or appending a connection
//! state recovery offset as its last argument (every node counts its own
//! offsets). It does not encode or decode anything else.
//!
//! The input is what `encode` writes for an EVENT or BINARY_EVENT without
//! ack id: `2` or `5<n>-`, then `<nsp>,` unless the namespace is `/`, then
//! the JSON array of the event name and its arguments. The output is byte
//! for byte what `encode` writes for the packet with the id or the extra
//! argument.

/// Where the JSON array starts, if `text` is an encoded event without ack
/// id.
fn data_start(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let mut i = match b.first()? {
        b'2' => 1,
        b'5' => {
            let n = b[1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 || b.get(1 + n) != Some(&b'-') {
                return None;
            }
            2 + n
        }
        _ => return None,
    };
    if b.get(i) == Some(&b'/') {
        i += b[i..].iter().position(|&c| c == b',')? + 1;
    }
    (b.get(i) == Some(&b'[')).then_some(i)
}

/// Whether `text` is an encoded event without ack id (what the edits take).
pub(crate) fn is_event(text: &str) -> bool {
    data_start(text).is_some() && text.ends_with(']')
}

/// `text` with ack id `id` (`2/chat,["ev"]` → `2/chat,7["ev"]`); `None` if
/// `text` is not an encoded event without ack id.
pub(crate) fn with_ack_id(text: &str, id: u64) -> Option<String> {
    let at = data_start(text)?;
    let id = id.to_string();
    let mut out = String::with_capacity(text.len() + id.len());
    out.push_str(&text[..at]);
    out.push_str(&id);
    out.push_str(&text[at..]);
    Some(out)
}

/// `text` with the string `offset` (decimal digits, maybe a `-`) as last argument
/// (`2["ev",1]` → `2["ev",1,"42"]`); `None` if `text` is not an encoded
/// event (its JSON array is last: only the type and the closing bracket
/// are looked at).
pub(crate) fn with_offset(text: &str, offset: &str) -> Option<String> {
    debug_assert!(
        offset.bytes().all(|c| c.is_ascii_digit() || c == b'-'),
        "{offset:?}"
    );
    if !(text.starts_with(['2', '5']) && text.ends_with(']')) {
        return None;
    }
    let mut out = String::with_capacity(text.len() + offset.len() + 3);
    out.push_str(&text[..text.len() - 1]);
    out.push_str(",\"");
    out.push_str(offset);
    out.push_str("\"]");
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use switchboard_socketio_proto::{encode, Packet, Value};

    fn packets() -> Vec<Packet> {
        let bin = Value::Binary(Bytes::from_static(b"x"));
        vec![
            Packet::event("/", "ev", vec![]),
            Packet::event("/", "ev", vec![1.into(), "a,[b]".into()]),
            Packet::event("/chat", "ev", vec![Value::Null]),
            Packet::event("/a[1]", "ev", vec![bin.clone()]),
            Packet::event("/", "ev", vec![bin.clone(), bin]),
        ]
    }

    #[test]
    fn same_bytes_as_encoding_with_the_id_or_the_offset() {
        for p in packets() {
            let text = encode(&p).text;
            assert!(is_event(&text), "{text}");
            for id in [0, 7, 1234] {
                let want = encode(&p.clone().with_id(id)).text;
                assert_eq!(with_ack_id(&text, id).as_deref(), Some(want.as_str()));
            }
            let mut q = p.clone();
            if let Some(Value::Array(args)) = &mut q.data {
                args.push(Value::from("42"));
            }
            let want = encode(&q).text;
            assert_eq!(with_offset(&text, "42").as_deref(), Some(want.as_str()));
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for text in [
            "",
            "2",
            "3[1]",
            "21[\"a\"]",
            "5-[\"a\"]",
            "51[\"a\"]",
            "2/chat",
            "2/x,1[]",
            "0",
        ] {
            assert!(!is_event(text), "{text}");
            assert_eq!(with_ack_id(text, 1), None, "{text}");
        }
        for text in ["", "2", "3[1]", "2/chat", "0", "1/x,"] {
            assert_eq!(with_offset(text, "1"), None, "{text}");
        }
    }
}
