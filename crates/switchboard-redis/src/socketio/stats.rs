//! Counters of the Socket.IO cluster: the public snapshot
//! ([`SocketIoClusterStats`]) and the atomics behind it, updated by the
//! links and the `Cluster` calls without locks.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// Counters of a [`RedisSocketIoCluster`](crate::RedisSocketIoCluster), read
/// one by one (not a consistent snapshot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SocketIoClusterStats {
    /// Messages sent to Redis (`PUBLISH` acknowledged): broadcasts,
    /// requests, answers, heartbeats.
    pub published: u64,
    /// Messages whose `PUBLISH` failed; they are not retried (except once,
    /// a batch written into a connection found dead).
    pub publish_errors: u64,
    /// Messages dropped because the outgoing queue was full (Redis slow or
    /// unreachable).
    pub dropped: u64,
    /// Messages waiting in the outgoing queue.
    pub queued: usize,
    /// Messages received from other nodes and applied.
    pub received: u64,
    /// Messages ignored: this node's own echoed back, answers that came too
    /// late, requests for a namespace this node does not have, recorded
    /// events already delivered (read back after an outage).
    pub ignored: u64,
    /// Malformed messages, dropped.
    pub decode_errors: u64,
    /// Requests (`fetch_cluster_sockets`, recipient lists of broadcasts
    /// with acks) that some node did not answer in time.
    pub request_timeouts: u64,
    /// Times the connection to Redis was re-established after a loss.
    pub reconnects: u64,
    /// Connection state restores asked of Redis (a client came back with
    /// its session id and offset).
    pub restores: u64,
    /// Of those, the sessions restored (the others had expired, were
    /// unknown, or their offset was no longer stored).
    pub restored: u64,
    /// Catch-ups after this node's subscription came back: the recorded
    /// events of the namespaces it had received some of, read back from
    /// their streams.
    pub resyncs: u64,
    /// Recorded events those catch-ups handed to this node's namespaces
    /// (missed while the subscription was down).
    pub resynced: u64,
    /// Whether both connections (publishing and subscribed) are up.
    pub connected: bool,
    /// Other nodes heard from within the heartbeat timeout.
    pub nodes: usize,
    /// Requests of this node waiting for other nodes (fetches, broadcasts
    /// with acks whose caller still listens).
    pub pending_requests: usize,
}

/// The live counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) published: AtomicU64,
    pub(crate) publish_errors: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) ignored: AtomicU64,
    pub(crate) decode_errors: AtomicU64,
    pub(crate) request_timeouts: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) restores: AtomicU64,
    pub(crate) restored: AtomicU64,
    pub(crate) resyncs: AtomicU64,
    pub(crate) resynced: AtomicU64,
    pub(crate) connected: AtomicBool,
}

impl Counters {
    /// The snapshot, except `queued`, `nodes` and `pending_requests`, which
    /// the caller fills.
    pub(crate) fn snapshot(&self) -> SocketIoClusterStats {
        SocketIoClusterStats {
            published: self.published.load(Relaxed),
            publish_errors: self.publish_errors.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            queued: 0,
            received: self.received.load(Relaxed),
            ignored: self.ignored.load(Relaxed),
            decode_errors: self.decode_errors.load(Relaxed),
            request_timeouts: self.request_timeouts.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            restores: self.restores.load(Relaxed),
            restored: self.restored.load(Relaxed),
            resyncs: self.resyncs.load(Relaxed),
            resynced: self.resynced.load(Relaxed),
            connected: self.connected.load(Relaxed),
            nodes: 0,
            pending_requests: 0,
        }
    }
}
