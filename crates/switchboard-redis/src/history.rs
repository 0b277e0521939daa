//! Shared history (`RedisConfig::shared_history`): Redis numbers each
//! topic's publications for the whole cluster and keeps the last ones.
//! Owns the Lua script that numbers, stores and publishes a publication in
//! one atomic step, the key names, and the read of a topic's retained
//! history (for `Hub::sync_topic` and the HTTP API).
//!
//! Per topic `t` there are two keys: `{prefix}:s:{t}`, a hash with the
//! numbering epoch `e` (set from the Redis clock when the numbering starts)
//! and the last number `s`; and `{prefix}:h:{t}`, a stream of the last
//! `history_size` publications (`s` = number, `m` = the message in the
//! [`wire`](crate::wire) format). Both expire `history_ttl_secs` after the
//! topic's last publication. Because numbering, storing and `PUBLISH`
//! happen in one script, the order of the channel is the order of the
//! numbers and of the stream.

use std::sync::Arc;

use bytes::Bytes;
use redis::aio::MultiplexedConnection;
use redis::Value;
use switchboard_hub::{Payload, SequencedEntry};

use crate::wire;

/// `KEYS[1]` numbering hash, `KEYS[2]` stream; `ARGV[1]` channel, `ARGV[2]`
/// message, `ARGV[3]` stream length (0: no history), `ARGV[4]` TTL in ms
/// (0: none). Returns the number.
pub(crate) const PUBLISH_SCRIPT: &str = r"
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  local t = redis.call('TIME')
  epoch = t[1] .. string.format('%06d', tonumber(t[2]))
  redis.call('HSET', KEYS[1], 'e', epoch)
end
local seq = redis.call('HINCRBY', KEYS[1], 's', 1)
local maxlen = tonumber(ARGV[3])
if maxlen > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*', 's', seq, 'm', ARGV[2])
end
local ttl = tonumber(ARGV[4])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  if maxlen > 0 then
    redis.call('PEXPIRE', KEYS[2], ttl)
  end
end
redis.call('PUBLISH', ARGV[1], 'S' .. epoch .. ':' .. seq .. ':' .. ARGV[2])
return seq
";

/// The numbering hash of `topic`.
pub(crate) fn numbering_key(prefix: &str, topic: &str) -> String {
    format!("{prefix}:s:{topic}")
}

/// The history stream of `topic`.
pub(crate) fn stream_key(prefix: &str, topic: &str) -> String {
    format!("{prefix}:h:{topic}")
}

/// A topic's retained shared history.
#[derive(Debug, Default)]
pub(crate) struct Retained {
    /// Numbering epoch (0: the topic was never numbered, or expired).
    pub(crate) epoch: u64,
    /// Last number given (0 if none).
    pub(crate) last_seq: u64,
    /// The last publications, oldest first.
    pub(crate) entries: Vec<SequencedEntry>,
    /// Stream entries that could not be read (counted by the caller).
    pub(crate) malformed: usize,
}

/// Reads the last `count` publications of `topic` with its epoch and last
/// number, atomically (one `MULTI`).
pub(crate) async fn fetch(
    conn: &mut MultiplexedConnection,
    prefix: &str,
    topic: &str,
    count: usize,
) -> redis::RedisResult<Retained> {
    let mut pipe = redis::pipe();
    pipe.atomic()
        .cmd("HMGET")
        .arg(numbering_key(prefix, topic))
        .arg("e")
        .arg("s");
    if count > 0 {
        pipe.cmd("XREVRANGE")
            .arg(stream_key(prefix, topic))
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(count);
    }
    let mut replies: Vec<Value> = pipe.query_async(conn).await?;
    let stream = if count > 0 { replies.pop() } else { None };
    let numbering = replies.pop();
    Ok(parse(numbering, stream))
}

fn parse(numbering: Option<Value>, stream: Option<Value>) -> Retained {
    let mut out = Retained::default();
    if let Some(Value::Array(fields)) = numbering {
        let mut it = fields.iter().map(number);
        out.epoch = it.next().flatten().unwrap_or(0);
        out.last_seq = it.next().flatten().unwrap_or(0);
    }
    if out.epoch == 0 {
        return out;
    }
    if let Some(Value::Array(entries)) = stream {
        for e in entries.into_iter().rev() {
            match entry(e) {
                Some(e) if e.seq <= out.last_seq => out.entries.push(e),
                _ => out.malformed += 1,
            }
        }
    }
    out
}

/// One stream entry `[id, [s, N, m, MESSAGE]]`.
fn entry(v: Value) -> Option<SequencedEntry> {
    let Value::Array(mut parts) = v else {
        return None;
    };
    let Some(Value::Array(fields)) = parts.pop() else {
        return None;
    };
    let (mut seq, mut message) = (None, None);
    for pair in fields.chunks(2) {
        match (bytes(&pair[0]), pair.get(1)) {
            (Some(b"s"), Some(v)) => seq = number(v),
            (Some(b"m"), Some(v)) => message = bytes(v),
            _ => {}
        }
    }
    let m = wire::decode(message?).ok()?;
    Some(SequencedEntry {
        seq: seq?,
        payload: Payload::new(m.kind, Bytes::copy_from_slice(m.data)),
        from: m.from.map(Arc::from),
        timestamp_ms: m.timestamp_ms,
    })
}

fn bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn number(v: &Value) -> Option<u64> {
    match v {
        Value::Int(n) => u64::try_from(*n).ok(),
        _ => std::str::from_utf8(bytes(v)?).ok()?.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_hub::PayloadKind;

    fn bulk(b: &[u8]) -> Value {
        Value::BulkString(b.to_vec())
    }

    fn stream_entry(seq: u64, text: &str) -> Value {
        let m = wire::Message {
            node_id: 1,
            timestamp_ms: 5,
            kind: PayloadKind::Text,
            from: Some("a"),
            data: text.as_bytes(),
        };
        Value::Array(vec![
            bulk(b"1-0"),
            Value::Array(vec![
                bulk(b"s"),
                bulk(seq.to_string().as_bytes()),
                bulk(b"m"),
                bulk(&m.encode()),
            ]),
        ])
    }

    #[test]
    fn parses_newest_first_replies_into_oldest_first_entries() {
        let numbering = Value::Array(vec![bulk(b"1700000000000001"), bulk(b"9")]);
        let stream = Value::Array(vec![
            stream_entry(9, "nine"),
            stream_entry(8, "eight"),
            bulk(b"junk"),
            stream_entry(99, "beyond the last number"),
        ]);
        let r = parse(Some(numbering), Some(stream));
        assert_eq!((r.epoch, r.last_seq), (1_700_000_000_000_001, 9));
        let seqs: Vec<u64> = r.entries.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![8, 9]);
        assert_eq!(&r.entries[1].payload.data[..], b"nine");
        assert_eq!(r.entries[1].from.as_deref(), Some("a"));
        assert_eq!(r.malformed, 2);
    }

    #[test]
    fn a_topic_never_numbered_has_epoch_zero() {
        let r = parse(Some(Value::Array(vec![Value::Nil, Value::Nil])), None);
        assert_eq!((r.epoch, r.last_seq, r.entries.len()), (0, 0, 0));
    }
}
