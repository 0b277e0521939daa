//! Connection state recovery across nodes over Redis (what
//! `@socket.io/redis-streams-adapter` does for Node): the
//! [`ClusterRecovery`] of [`RedisSocketIoCluster`]. Owns the record script,
//! the key names, the sessions this node keeps alive and their refresh, and
//! the restore query.
//!
//! * **Events**: each recorded event is one call of [`RECORD_SCRIPT`]:
//!   `XADD` to the namespace's stream `{prefix}:sio:ev:{ns}` (at most
//!   `max_packets` entries, approximately; the key expires
//!   `max_disconnection_duration` after the last event), then `PUBLISH` of
//!   the message with the entry id as offset on the common channel. One
//!   script: the channel's order is the stream's, and every node (the
//!   origin too) delivers the event when it comes back.
//! * **Sessions**: `{prefix}:sio:session:{pid}:{ns}` holds the socket's
//!   id, rooms and data ([`wire::encode_session`]). Written when the socket
//!   connects and when its rooms change, rewritten by this node every third
//!   of `max_disconnection_duration` while it is connected, with a time to
//!   live of 4/3 of it: a node that dies without a word (SIGKILL) leaves
//!   its sessions restorable for at least `max_disconnection_duration`. A
//!   recoverable disconnection rewrites it to expire
//!   `max_disconnection_duration` later; any other deletes it. All these
//!   writes go through the publisher's queue, in order with the events.
//! * **Restore**: one `MULTI` on a separate connection: `GET` of the
//!   session, `XRANGE` from the client's offset. The offset must still be
//!   the first entry; the entries after it are the missed events (the
//!   namespace keeps those meant for the socket). The session is not
//!   deleted: the restoring node writes it again at once (it holds the
//!   socket now), and a failed attempt (an offset no longer stored) must not
//!   take a live socket's session away. The restored socket is not sent the
//!   entries read again when this node's subscription brings them later
//!   ([`resync`](super::resync)).

use std::sync::atomic::Ordering::Relaxed;

use redis::aio::MultiplexedConnection;
use switchboard_socketio::{
    BroadcastOptions, ClusterFuture, ClusterRecovery, EncodedPacket, RecordedEvent, RecoveryConfig,
    RestoredSession, SessionState,
};

use super::cluster::{RedisSocketIoCluster, Shared};
use super::links::Op;
use super::resync::StreamId;
use super::wire::{self, Body, Message};

/// `KEYS[1]` stream; `ARGV[1]` channel, `ARGV[2]` most entries, `ARGV[3]`
/// time to live in ms, `ARGV[4]` the RECORDED message with an empty offset
/// (its byte 11, after the 10-byte header). Returns the entry id.
pub(crate) const RECORD_SCRIPT: &str = r"
local m = ARGV[4]
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'm', m)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', ARGV[1], string.sub(m, 1, 10) .. string.char(#id) .. id .. string.sub(m, 12))
return id
";

/// Session writes per queued item when refreshing.
const REFRESH_BATCH: usize = 256;

/// The stream of namespace `ns`'s recorded events.
pub(crate) fn stream_key(prefix: &str, ns: &str) -> String {
    format!("{prefix}:sio:ev:{ns}")
}

/// The key of session `pid` in namespace `ns`.
pub(crate) fn session_key(prefix: &str, ns: &str, pid: &str) -> String {
    format!("{prefix}:sio:session:{pid}:{ns}")
}

impl Shared {
    /// The recovery options of the server this cluster serves (defaults
    /// before [`start`](RedisSocketIoCluster::start)).
    pub(crate) fn recovery_config(&self) -> RecoveryConfig {
        self.recovery.get().cloned().unwrap_or_default()
    }

    /// How long a connected socket's session lives without a refresh, and
    /// how often it is refreshed.
    fn session_ttl_and_refresh(&self) -> (u64, std::time::Duration) {
        let window = self.recovery_config().max_disconnection_duration;
        let every = (window / 3).max(std::time::Duration::from_millis(10));
        let ttl = (window + every).as_millis().max(1) as u64;
        (ttl, every)
    }

    /// `SET key value PX ttl_ms`.
    fn set_cmd(key: &str, value: &[u8], ttl_ms: u64) -> redis::Cmd {
        let mut c = redis::cmd("SET");
        c.arg(key).arg(value).arg("PX").arg(ttl_ms);
        c
    }

    /// Rewrites the sessions of this node's connected sockets (so that they
    /// outlive the node by `max_disconnection_duration`), in batches through
    /// the queue, under the sessions' lock: a disconnection's write cannot
    /// be overtaken by a refresh.
    pub(crate) fn refresh_sessions(&self) {
        let (ttl, _) = self.session_ttl_and_refresh();
        let sessions = self.sessions.lock();
        let mut batch = Vec::new();
        let mut cost = 0;
        for (key, value) in sessions.iter() {
            batch.push(Self::set_cmd(key, value, ttl));
            cost += key.len() + value.len();
            if batch.len() == REFRESH_BATCH {
                self.push(Op::Commands(std::mem::take(&mut batch)), cost);
                cost = 0;
            }
        }
        if !batch.is_empty() {
            self.push(Op::Commands(batch), cost);
        }
    }

    /// How often [`refresh_sessions`](Self::refresh_sessions) runs.
    pub(crate) fn session_refresh_interval(&self) -> std::time::Duration {
        self.session_ttl_and_refresh().1
    }

    /// A connection for reads (restores, catch-ups), made once and kept
    /// (dropped when a read fails).
    pub(crate) async fn reader(&self) -> redis::RedisResult<MultiplexedConnection> {
        if let Some(c) = self.reader.lock().clone() {
            return Ok(c);
        }
        let config = self.config.connection();
        let connect = self
            .client
            .get_multiplexed_async_connection_with_config(&config);
        let conn = match tokio::time::timeout(self.config.command_timeout(), connect).await {
            Ok(c) => c?,
            Err(_) => {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "connect timed out",
                )))
            }
        };
        *self.reader.lock() = Some(conn.clone());
        Ok(conn)
    }
}

impl ClusterRecovery for RedisSocketIoCluster {
    fn record(&self, ns: &str, opts: &BroadcastOptions, local: bool, packet: EncodedPacket) {
        let shared = &self.shared;
        let message = Message::new(
            shared.node_id,
            Body::Recorded {
                offset: String::new(),
                ns: ns.to_owned(),
                opts: opts.clone(),
                local,
                packet,
            },
        );
        let stream = stream_key(&shared.config.prefix, ns);
        let cost = message.encoded_len() + stream.len();
        shared.push(Op::Record { stream, message }, cost);
    }

    fn session_open(&self, ns: &str, pid: &str, session: SessionState) {
        let shared = &self.shared;
        let key = session_key(&shared.config.prefix, ns, pid);
        let value = wire::encode_session(&session);
        let (ttl, _) = shared.session_ttl_and_refresh();
        let cost = key.len() + value.len();
        let mut sessions = shared.sessions.lock();
        shared.push(Op::Commands(vec![Shared::set_cmd(&key, &value, ttl)]), cost);
        sessions.insert(key, value);
    }

    fn session_closed(&self, ns: &str, pid: &str, session: Option<SessionState>) {
        let shared = &self.shared;
        let key = session_key(&shared.config.prefix, ns, pid);
        let cmd = match session {
            Some(s) => {
                let window = shared.recovery_config().max_disconnection_duration;
                let ttl = window.as_millis().max(1) as u64;
                Shared::set_cmd(&key, &wire::encode_session(&s), ttl)
            }
            None => {
                let mut c = redis::cmd("DEL");
                c.arg(&key);
                c
            }
        };
        let mut sessions = shared.sessions.lock();
        sessions.remove(&key);
        shared.push(Op::Commands(vec![cmd]), key.len());
    }

    fn restore(&self, ns: &str, pid: &str, offset: &str) -> ClusterFuture<Option<RestoredSession>> {
        let shared = self.shared.clone();
        let ns = ns.to_owned();
        let key = session_key(&shared.config.prefix, &ns, pid);
        let offset = offset.to_owned();
        Box::pin(async move {
            let offset_id = StreamId::parse(&offset)?;
            shared.stats.restores.fetch_add(1, Relaxed);
            let timeout = shared.config.command_timeout();
            let read = restore(&shared, &ns, &key, &offset, offset_id);
            let restored = match tokio::time::timeout(timeout, read).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    *shared.reader.lock() = None;
                    tracing::warn!("socket.io cluster: session restore failed: {e}");
                    None
                }
                Err(_) => {
                    *shared.reader.lock() = None;
                    tracing::warn!("socket.io cluster: session restore timed out");
                    None
                }
            };
            if restored.is_some() {
                shared.stats.restored.fetch_add(1, Relaxed);
            }
            restored
        })
    }
}

/// Reads session `key` and the stream of `ns` from `offset` (`offset_id`
/// parsed); `None` if either is gone.
async fn restore(
    shared: &Shared,
    ns: &str,
    key: &str,
    offset: &str,
    offset_id: StreamId,
) -> redis::RedisResult<Option<RestoredSession>> {
    let mut conn = shared.reader().await?;
    let count = shared.recovery_config().max_packets.max(1) + 1;
    let mut pipe = redis::pipe();
    pipe.atomic()
        .cmd("GET")
        .arg(key)
        .cmd("XRANGE")
        .arg(stream_key(&shared.config.prefix, ns))
        .arg(offset)
        .arg("+")
        .arg("COUNT")
        .arg(count);
    let (session, entries): (Option<Vec<u8>>, Vec<StreamEntry>) =
        pipe.query_async(&mut conn).await?;
    let Some(session) = session else {
        return Ok(None);
    };
    let session = match wire::decode_session(&session) {
        Ok(s) => s,
        Err(e) => {
            shared.stats.decode_errors.fetch_add(1, Relaxed);
            tracing::warn!("socket.io cluster: malformed session dropped: {e}");
            return Ok(None);
        }
    };
    let mut entries = entries.into_iter();
    // The client's offset must still be stored (else events were trimmed).
    match entries.next() {
        Some((id, _)) if StreamId::parse(&id) == Some(offset_id) => {}
        _ => return Ok(None),
    }
    // How far the socket gets: it is not sent these again.
    let mut upto = offset_id;
    let mut missed = Vec::new();
    for (id, fields) in entries {
        upto = StreamId::parse(&id).map_or(upto, |i| upto.max(i));
        match entry_message(&id, fields) {
            Some(Message {
                body:
                    Body::Recorded {
                        ns: event_ns,
                        opts,
                        local: false,
                        packet,
                        ..
                    },
                ..
            }) if event_ns == ns => missed.push(RecordedEvent {
                offset: id,
                opts,
                packet,
            }),
            // Local events were for the origin's sockets only.
            Some(Message {
                body: Body::Recorded { local: true, .. },
                ..
            }) => {}
            _ => {
                shared.stats.decode_errors.fetch_add(1, Relaxed);
            }
        }
    }
    shared.positions.restored(ns, &session.sid, upto);
    Ok(Some(RestoredSession { session, missed }))
}

/// A stream entry as `XRANGE` gives it: id, then field/value pairs.
pub(crate) type StreamEntry = (String, Vec<(String, Vec<u8>)>);

/// The message of stream entry `id` (its field `m`, numbered `id`); `None`
/// if it has none or it is malformed.
pub(crate) fn entry_message(id: &str, fields: Vec<(String, Vec<u8>)>) -> Option<Message> {
    let (_, m) = fields.into_iter().find(|(f, _)| f == "m")?;
    wire::decode(&wire::with_offset(&m, id)?).ok()
}
