//! Presence across nodes: each node tells the others who subscribes to a
//! topic on it, and keeps what the others told it in the hub
//! (`Hub::set_remote_presence`), so that `Hub::presence` and the join/leave
//! events span the cluster.
//!
//! A node reports a topic's local subscribers (names with connection
//! counts, see [`wire::encode_presence`]) when they change and again every
//! third of `presence_ttl_ms`, on the topic's own channel (so only nodes subscribed to the
//! topic hear it, in order with its publications) and into the hash
//! `{prefix}:p:{topic}` (field: the node id), which a node reads when it
//! opens the topic. Each report is valid for `presence_ttl_ms`: a node that
//! died stops refreshing and the others forget its subscribers (with leave
//! events) within 4/3 of it. The hash expires with its last report.

use std::sync::Arc;

use redis::aio::MultiplexedConnection;
use switchboard_hub::{now_ms, MemberCounts, WeakHub};

use crate::backplane::Shared;
use crate::wire;

/// The hash of `topic`'s reports.
pub(crate) fn key(prefix: &str, topic: &str) -> String {
    format!("{prefix}:p:{topic}")
}

/// Reports `topics`' local subscribers: one pipeline of `HSET`+`PEXPIRE`
/// (or `HDEL`) and `PUBLISH` per topic. `Ok(false)`: the hub is gone.
pub(crate) async fn report(
    shared: &Shared,
    hub: &WeakHub,
    conn: &mut MultiplexedConnection,
    topics: &[Arc<str>],
) -> redis::RedisResult<bool> {
    if topics.is_empty() {
        return Ok(true);
    }
    let Some(hub) = hub.upgrade() else {
        return Ok(false);
    };
    let field = format!("{:016x}", shared.node_id);
    let ttl = shared.config.presence_ttl().as_millis() as u64;
    let expires = now_ms() + ttl;
    let mut pipe = redis::pipe();
    pipe.ignore_errors(); // an error reply (e.g. an ACL) skips that report only
    for topic in topics {
        let members = hub.local_presence(topic);
        let report = wire::encode_presence(shared.node_id, expires, members.as_ref());
        let key = key(&shared.config.prefix, topic);
        match members {
            Some(_) => {
                pipe.hset(&key, &field, &report).pexpire(&key, ttl as i64);
            }
            None => {
                pipe.hdel(&key, &field);
            }
        }
        pipe.publish(format!("{}{topic}", shared.channel_prefix), report);
    }
    drop(hub);
    let replies: Vec<redis::RedisResult<redis::Value>> = pipe.query_async(conn).await?;
    if let Some(Err(e)) = replies.iter().find(|r| r.is_err()) {
        tracing::debug!("redis backplane: a presence report was refused: {e}");
    }
    Ok(true)
}

/// The live reports on `topic` (node id, members, expiry).
pub(crate) async fn fetch(
    conn: &mut MultiplexedConnection,
    prefix: &str,
    topic: &str,
) -> redis::RedisResult<Vec<(u64, MemberCounts, u64)>> {
    let fields: Vec<(Vec<u8>, Vec<u8>)> = redis::cmd("HGETALL")
        .arg(key(prefix, topic))
        .query_async(conn)
        .await?;
    let now = now_ms();
    Ok(fields
        .into_iter()
        .filter_map(|(_, v)| match wire::decode_presence(&v) {
            Ok(Some((node, expires, Some(m)))) if expires > now => Some((node, m, expires)),
            _ => None,
        })
        .collect())
}
