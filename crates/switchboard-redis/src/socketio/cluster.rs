//! [`RedisSocketIoCluster`]: the `switchboard_socketio::Cluster`
//! implementation (what a `BroadcastOperator` calls: queue a message, or
//! register a request and queue it, never wait) and the handle that starts
//! and stops the links and the heartbeat. What arriving messages do is
//! [`apply`](super::apply)'s; the links are [`links`](super::links)'.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use switchboard_socketio::{
    AckSink, BroadcastFlags, BroadcastOptions, Cluster, ClusterFuture, ClusterRecovery,
    EncodedPacket, RecoveryConfig, Room, SocketInfo, SocketIo, WeakSocketIo,
};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};

use super::config::SocketIoClusterConfig;
use super::links::{LinkStates, Op, Outgoing, Publisher, Subscriber};
use super::nodes::Nodes;
use super::requests::Requests;
use super::resync::Positions;
use super::stats::{Counters, SocketIoClusterStats};
use super::wire::{AckRequest, Body, Message};
use crate::backplane::random_u64;
use crate::config::RedisConfig;
use crate::error::Error;
use crate::link;
use crate::outbox::Outbox;

/// State shared by the handle, the links and the heartbeat.
pub(crate) struct Shared {
    pub(crate) config: RedisConfig,
    pub(crate) options: SocketIoClusterConfig,
    pub(crate) client: redis::Client,
    pub(crate) node_id: u64,
    /// `{prefix}:sio#`: broadcasts, requests, heartbeats.
    pub(crate) channel: Arc<str>,
    /// `{prefix}:sio#{node id}`: answers to this node's requests.
    pub(crate) own_channel: Arc<str>,
    pub(crate) outbox: Outbox<Outgoing>,
    pub(crate) nodes: Nodes,
    pub(crate) requests: Requests,
    pub(crate) io: OnceLock<WeakSocketIo>,
    pub(crate) runtime: OnceLock<Handle>,
    pub(crate) stats: Counters,
    pub(crate) links: Mutex<LinkStates>,
    /// The server's connection state recovery options (set by `start`).
    pub(crate) recovery: OnceLock<RecoveryConfig>,
    /// Session key → encoded session, of this node's connected sockets
    /// (connection state recovery; refreshed in Redis while connected).
    pub(crate) sessions: Mutex<HashMap<String, Vec<u8>>>,
    /// The connection restores and catch-ups read with.
    pub(crate) reader: Mutex<Option<MultiplexedConnection>>,
    /// How far each namespace's sockets got in its stream of recorded
    /// events (connection state recovery).
    pub(crate) positions: Positions,
    /// Messages refused by a full queue already logged (to log rarely).
    logged_drops: Mutex<u64>,
}

impl Shared {
    /// The channel of `node`'s answers.
    pub(crate) fn node_channel(&self, node: u64) -> Arc<str> {
        Arc::from(format!("{}{node:016x}", &*self.channel))
    }

    /// Queues `body` for `channel`; `false` (counted, logged) when the
    /// queue is full.
    pub(crate) fn send(&self, channel: Arc<str>, body: Body) -> bool {
        let message = Message::new(self.node_id, body);
        let cost = message.encoded_len() + channel.len();
        self.push(Op::Publish { channel, message }, cost)
    }

    /// Queues `op` of `cost` bytes; `false` (counted, logged) when the
    /// queue is full.
    pub(crate) fn push(&self, op: Op, cost: usize) -> bool {
        if self.outbox.push_item(Outgoing { op, cost }, cost) {
            return true;
        }
        let n = self.stats.dropped.fetch_add(1, Relaxed) + 1;
        let mut logged = self.logged_drops.lock();
        if n >= logged.saturating_mul(2).max(1) {
            *logged = n;
            tracing::warn!(
                dropped = n,
                "socket.io cluster: outgoing queue full (redis slow or unreachable); \
                 messages for the other nodes are dropped"
            );
        }
        false
    }

    /// Queues `body` for every node.
    pub(crate) fn send_all(&self, body: Body) -> bool {
        self.send(self.channel.clone(), body)
    }

    pub(crate) fn io(&self) -> Option<SocketIo> {
        self.io.get()?.upgrade()
    }

    /// `node` is gone (timed out or said goodbye).
    pub(crate) fn node_gone(&self, node: u64, why: &str) {
        tracing::info!(node = %format_args!("{node:016x}"), "socket.io cluster: node {why}");
        self.requests.node_gone(node);
    }

    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        match self.runtime.get() {
            Some(rt) => {
                rt.spawn(task);
            }
            None => tracing::debug!("socket.io cluster not started: task dropped"),
        }
    }
}

/// Makes several Switchboard Socket.IO servers sharing one Redis act as one
/// (what `@socket.io/redis-adapter` does for Node): set it as
/// [`Config::cluster`](switchboard_socketio::Config::cluster), then
/// [`start`](Self::start) it with the server.
///
/// ```no_run
/// use std::sync::Arc;
/// use switchboard_redis::{RedisConfig, RedisSocketIoCluster};
/// use switchboard_socketio::{Config, SocketIo};
///
/// # async fn run() -> Result<(), switchboard_redis::Error> {
/// let cluster = RedisSocketIoCluster::new(RedisConfig::new("redis://127.0.0.1:6379"))?;
/// let io = SocketIo::with_config(Config {
///     cluster: Some(cluster.clone()),
///     ..Config::default()
/// });
/// cluster.start(&io)?; // spawns the network tasks on the current Tokio runtime
/// // io.to("room").emit(..) now reaches the room's sockets on every node.
/// # Ok(()) }
/// ```
///
/// The tasks hold the server weakly; they stop on
/// [`shutdown`](Self::shutdown) (which tells the other nodes) or when every
/// handle is dropped (the other nodes then notice after
/// [`heartbeat_timeout_ms`](SocketIoClusterConfig::heartbeat_timeout_ms)).
///
/// # What it guarantees
///
/// * Handlers never wait for Redis: every call only queues.
/// * Order per origin: what one thread of a node does (`sockets_join` then
///   `emit`, say) is applied in that order on every other node (one
///   publishing connection, one subscribed connection per node).
/// * At most once: a message is lost for the other nodes when the queue is
///   full ([`SocketIoClusterStats::dropped`]) or its `PUBLISH` fails.
///   While a node is cut off from Redis it receives nothing, and what the
///   others broadcast meanwhile is gone (Redis pub/sub keeps nothing),
///   except recorded events (connection state recovery): those are kept
///   in Redis and read back once its subscription is back, then delivered
///   in order, before the live ones, none twice.
/// * Requests wait for the nodes alive when they are made, and stop waiting
///   for a node that goes away; recipients of a broadcast with acks on a
///   node that goes away count as disconnected.
pub struct RedisSocketIoCluster {
    pub(crate) shared: Arc<Shared>,
    pending_rx: Mutex<Option<mpsc::UnboundedReceiver<Outgoing>>>,
    shutdown: watch::Sender<bool>,
}

impl RedisSocketIoCluster {
    /// Checks `config` and builds the cluster with the default
    /// [`SocketIoClusterConfig`] (no connection yet).
    pub fn new(config: RedisConfig) -> Result<Arc<Self>, Error> {
        Self::with_options(config, SocketIoClusterConfig::default())
    }

    /// Checks both configurations and builds the cluster (no connection
    /// yet). Every node must use the same `prefix`.
    pub fn with_options(
        config: RedisConfig,
        options: SocketIoClusterConfig,
    ) -> Result<Arc<Self>, Error> {
        config.validate()?;
        options.validate()?;
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| Error::Config(format!("url: {e}")))?;
        let (outbox, rx) = Outbox::new(config.max_queued_messages, config.max_queued_bytes);
        let node_id = random_u64();
        let channel: Arc<str> = Arc::from(format!("{}:sio#", config.prefix));
        let own_channel = Arc::from(format!("{channel}{node_id:016x}"));
        let shared = Arc::new(Shared {
            nodes: Nodes::new(options.heartbeat_timeout()),
            client,
            node_id,
            channel,
            own_channel,
            outbox,
            requests: Requests::default(),
            io: OnceLock::new(),
            runtime: OnceLock::new(),
            stats: Counters::default(),
            links: Mutex::default(),
            recovery: OnceLock::new(),
            sessions: Mutex::default(),
            reader: Mutex::default(),
            positions: Positions::default(),
            logged_drops: Mutex::new(0),
            config,
            options,
        });
        Ok(Arc::new(RedisSocketIoCluster {
            shared,
            pending_rx: Mutex::new(Some(rx)),
            shutdown: watch::Sender::new(false),
        }))
    }

    /// Spawns the links and the heartbeat on the current Tokio runtime;
    /// what other nodes ask is applied to `io` (held weakly), which should
    /// have this cluster as its [`Config::cluster`](switchboard_socketio::Config::cluster).
    /// Connecting happens in the background: an unreachable Redis is
    /// retried (and logged), never an error here.
    pub fn start(&self, io: &SocketIo) -> Result<(), Error> {
        let runtime = Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let rx = self.pending_rx.lock().take().ok_or(Error::AlreadyStarted)?;
        let shared = &self.shared;
        let _ = shared.io.set(io.downgrade());
        if let Some(r) = &io.config().connection_state_recovery {
            let _ = shared.recovery.set(r.clone());
        }
        let _ = shared.runtime.set(runtime.clone());
        tracing::info!(
            node = %format_args!("{:016x}", shared.node_id),
            redis = %crate::config::redact(&shared.config.url),
            channel = %shared.channel,
            "socket.io cluster starting"
        );
        runtime.spawn(link::supervise(
            shared.clone(),
            Publisher::new(rx),
            self.shutdown.subscribe(),
        ));
        runtime.spawn(link::supervise(
            shared.clone(),
            Subscriber(shared.clone()),
            self.shutdown.subscribe(),
        ));
        runtime.spawn(heartbeat(shared.clone(), self.shutdown.subscribe()));
        if shared.recovery.get().is_some() {
            runtime.spawn(refresh_sessions(shared.clone(), self.shutdown.subscribe()));
        }
        Ok(())
    }

    /// Tells the other nodes this one leaves (so that they stop counting it
    /// at once), waits until that is sent (at most the command timeout),
    /// then stops the links.
    pub async fn shutdown(&self) {
        let published = self.shared.stats.published.load(Relaxed);
        if self.shared.send_all(Body::Bye) {
            let deadline = Instant::now() + self.shared.config.command_timeout();
            while self.shared.stats.published.load(Relaxed) == published
                && Instant::now() < deadline
                && !self.shutdown.is_closed()
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        self.shutdown.send_replace(true);
    }

    /// This node's id: random per instance, carried by every message.
    pub fn node_id(&self) -> u64 {
        self.shared.node_id
    }

    /// The other nodes heard from within the heartbeat timeout.
    pub fn nodes(&self) -> Vec<u64> {
        self.shared.nodes.live(Instant::now())
    }

    /// The Redis configuration.
    pub fn config(&self) -> &RedisConfig {
        &self.shared.config
    }

    /// The cluster timings.
    pub fn options(&self) -> &SocketIoClusterConfig {
        &self.shared.options
    }

    /// Counters, for monitoring.
    pub fn stats(&self) -> SocketIoClusterStats {
        let mut stats = self.shared.stats.snapshot();
        stats.queued = self.shared.outbox.len();
        stats.nodes = self.nodes().len();
        let (fetches, acks) = self.shared.requests.pending();
        stats.pending_requests = fetches + acks;
        stats
    }
}

impl fmt::Debug for RedisSocketIoCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSocketIoCluster")
            .field("node_id", &format_args!("{:016x}", self.shared.node_id))
            .field("config", &self.shared.config)
            .field("options", &self.shared.options)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Says this node is alive every interval, and forgets the nodes that
/// stopped saying so.
async fn heartbeat(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(shared.options.heartbeat_interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
        shared.send_all(Body::Heartbeat);
        for node in shared.nodes.prune(Instant::now()) {
            shared.node_gone(node, "timed out (no heartbeat)");
        }
    }
}

/// Rewrites this node's connected sessions in Redis every third of
/// `max_disconnection_duration` (connection state recovery).
async fn refresh_sessions(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let every = shared.session_refresh_interval();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => shared.refresh_sessions(),
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
}

/// Forgets a fetch when its future is dropped, whatever happened.
struct EndFetch {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for EndFetch {
    fn drop(&mut self) {
        self.shared.requests.end_fetch(self.id);
    }
}

impl Cluster for RedisSocketIoCluster {
    fn broadcast(
        &self,
        ns: &str,
        opts: &BroadcastOptions,
        flags: BroadcastFlags,
        packet: EncodedPacket,
    ) {
        self.shared.send_all(Body::Broadcast {
            ns: ns.to_owned(),
            opts: opts.clone(),
            flags,
            ack: None,
            packet,
        });
    }

    fn broadcast_with_ack(
        &self,
        ns: &str,
        opts: &BroadcastOptions,
        packet: EncodedPacket,
        timeout: Option<Duration>,
        acks: AckSink,
    ) {
        let shared = &self.shared;
        let nodes = shared.nodes.live(Instant::now());
        if nodes.is_empty() || shared.runtime.get().is_none() {
            acks.counted();
            return;
        }
        let id = shared.requests.start_acks(nodes, acks.clone());
        let sent = shared.send_all(Body::Broadcast {
            ns: ns.to_owned(),
            opts: opts.clone(),
            flags: BroadcastFlags::default(),
            ack: Some(AckRequest { id, timeout }),
            packet,
        });
        if !sent {
            shared.requests.end_acks(id);
            acks.counted();
            return;
        }
        let request_timeout = shared.options.request_timeout();
        let count_wait = timeout.map_or(request_timeout, |t| t.min(request_timeout));
        let task_shared = shared.clone();
        shared.spawn(async move {
            let shared = task_shared;
            tokio::select! {
                _ = tokio::time::sleep(count_wait) => {}
                _ = acks.closed() => {}
            }
            let silent = shared.requests.stop_counting(id);
            if !silent.is_empty() && !acks.is_closed() {
                shared.stats.request_timeouts.fetch_add(1, Relaxed);
                tracing::warn!(
                    nodes = silent.len(),
                    "socket.io cluster: a broadcast with acks got no recipient list from \
                     {} node(s) in {count_wait:?}; their sockets' answers are not awaited",
                    silent.len()
                );
            }
            acks.closed().await;
            shared.requests.end_acks(id);
        });
    }

    fn fetch_sockets(&self, ns: &str, opts: &BroadcastOptions) -> ClusterFuture<Vec<SocketInfo>> {
        let shared = self.shared.clone();
        let nodes = shared.nodes.live(Instant::now());
        if nodes.is_empty() {
            return Box::pin(async { Vec::new() });
        }
        let (id, rx) = shared.requests.start_fetch(nodes);
        let guard = EndFetch {
            shared: shared.clone(),
            id,
        };
        let sent = shared.send_all(Body::FetchSockets {
            id,
            ns: ns.to_owned(),
            opts: opts.clone(),
        });
        if !sent {
            return Box::pin(async { Vec::new() });
        }
        let timeout = shared.options.request_timeout();
        Box::pin(async move {
            let guard = guard;
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(sockets)) => sockets,
                _ => {
                    let (partial, missing) = guard.shared.requests.end_fetch(guard.id);
                    guard.shared.stats.request_timeouts.fetch_add(1, Relaxed);
                    tracing::warn!(
                        missing = missing.len(),
                        "socket.io cluster: fetch_sockets got no answer from {} node(s) in \
                         {timeout:?}; their sockets are missing from the result",
                        missing.len()
                    );
                    partial
                }
            }
        })
    }

    fn add_sockets(&self, ns: &str, opts: &BroadcastOptions, rooms: &[Room]) {
        self.shared.send_all(Body::SocketsJoin {
            ns: ns.to_owned(),
            opts: opts.clone(),
            rooms: rooms.to_vec(),
        });
    }

    fn del_sockets(&self, ns: &str, opts: &BroadcastOptions, rooms: &[Room]) {
        self.shared.send_all(Body::SocketsLeave {
            ns: ns.to_owned(),
            opts: opts.clone(),
            rooms: rooms.to_vec(),
        });
    }

    fn disconnect_sockets(&self, ns: &str, opts: &BroadcastOptions, close: bool) {
        self.shared.send_all(Body::DisconnectSockets {
            ns: ns.to_owned(),
            opts: opts.clone(),
            close,
        });
    }

    fn recovery(&self) -> Option<&dyn ClusterRecovery> {
        Some(self)
    }
}
