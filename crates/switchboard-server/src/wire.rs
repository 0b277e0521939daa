//! JSON shapes shared by the endpoints that speak JSON to clients (`/ws`,
//! Socket.IO): a publication, a presence snapshot, a presence event.
//! docs/ws-envelope.md describes them.

use base64::Engine as _;
use std::fmt::Write as _;
use switchboard_hub::{PayloadKind, Presence, PresenceEvent, PresenceKind, Publication};

/// `s` as a JSON string literal.
pub fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("strings always serialize")
}

/// `{"count":N,"members":[...]}`.
pub fn presence_json(p: &Presence) -> String {
    let members: Vec<&str> = p.members.iter().map(|m| &**m).collect();
    format!(
        "{{\"count\":{},\"members\":{}}}",
        p.count,
        serde_json::to_string(&members).expect("serializes")
    )
}

/// `{"type":"presence","topic":..,"event":"join"|"leave","name":..,"count":N}`.
pub fn presence_event_json(ev: &PresenceEvent) -> String {
    let kind = match ev.kind {
        PresenceKind::Join => "join",
        PresenceKind::Leave => "leave",
    };
    format!(
        "{{\"type\":\"presence\",\"topic\":{},\"event\":\"{kind}\",\"name\":{},\"count\":{}}}",
        json_str(&ev.topic),
        json_str(&ev.name),
        ev.count
    )
}

/// `"topic":..,"complete":..,"messages":[..]`: the members of every history
/// answer (API, `/ws` envelope, Socket.IO), without braces.
pub fn history_members_json(topic: &str, h: &switchboard_hub::HistoryRange) -> String {
    let mut r = format!(
        "\"topic\":{},\"complete\":{},\"messages\":[",
        json_str(topic),
        h.complete
    );
    for (i, p) in h.messages.iter().enumerate() {
        if i > 0 {
            r.push(',');
        }
        r.push_str(&message_fields_json(p));
    }
    r.push(']');
    r
}

/// `{"seq":..,"from":..,"data":..,"ts":..}` (history entries).
pub fn message_fields_json(p: &Publication) -> String {
    let mut r = String::with_capacity(p.payload.data.len() + 64);
    let _ = write!(r, "{{\"seq\":{}", p.seq);
    write_rest(&mut r, p);
    r
}

/// `{"topic":..,"seq":..,"from":..,"data":..,"ts":..}` (live messages).
pub fn message_json(p: &Publication) -> String {
    let mut r = String::with_capacity(p.payload.data.len() + p.topic.len() + 80);
    let _ = write!(r, "{{\"topic\":{},\"seq\":{}", json_str(&p.topic), p.seq);
    write_rest(&mut r, p);
    r
}

fn write_rest(r: &mut String, p: &Publication) {
    if let Some(from) = &p.from {
        let _ = write!(r, ",\"from\":{}", json_str(from));
    }
    match p.payload.kind {
        PayloadKind::Text => {
            let text = std::str::from_utf8(&p.payload.data).unwrap_or_default();
            let _ = write!(r, ",\"data\":{}", json_str(text));
        }
        PayloadKind::Json => {
            r.push_str(",\"data\":");
            r.push_str(std::str::from_utf8(&p.payload.data).unwrap_or("null"));
        }
        PayloadKind::Binary => {
            let b64 = base64::engine::general_purpose::STANDARD.encode(&p.payload.data);
            let _ = write!(r, ",\"binary\":true,\"data\":\"{b64}\"");
        }
    }
    let _ = write!(r, ",\"ts\":{}}}", p.timestamp_ms);
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_hub::Payload;

    #[test]
    fn message_shapes() {
        let p = Publication::new(
            "room".into(),
            7,
            Some("al\"ice".into()),
            Payload::text("hi"),
            5,
        );
        assert_eq!(
            message_json(&p),
            r#"{"topic":"room","seq":7,"from":"al\"ice","data":"hi","ts":5}"#
        );
        assert_eq!(
            message_fields_json(&p),
            r#"{"seq":7,"from":"al\"ice","data":"hi","ts":5}"#
        );
        let p = Publication::new("r".into(), 1, None, Payload::json(&b"{\"a\":1}"[..]), 0);
        assert_eq!(
            message_json(&p),
            r#"{"topic":"r","seq":1,"data":{"a":1},"ts":0}"#
        );
        let p = Publication::new("r".into(), 1, None, Payload::binary(&[1u8, 2, 3][..]), 0);
        assert_eq!(
            message_json(&p),
            r#"{"topic":"r","seq":1,"binary":true,"data":"AQID","ts":0}"#
        );
    }
}
