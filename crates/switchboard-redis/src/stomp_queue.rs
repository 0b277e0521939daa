//! STOMP `/queue/...` destinations shared by several nodes over Redis
//! Streams: [`RedisQueues`] is a [`QueueBackend`] for
//! [`Broker::with_backend`]. A message sent to `/queue/jobs` on any node
//! goes to exactly one consumer of `/queue/jobs` among every node's, at
//! least once.
//!
//! ## Redis data
//!
//! * **One stream per queue**, `{prefix}:q:{queue}`. An entry's fields are
//!   the forwarded SEND headers as `h:<name>` → value, the body as `body`
//!   (binary-safe), and `redelivered` → `1` on a message given back.
//! * **One consumer group**, `switchboard` by default, created by the
//!   first node that consumes the queue with `XGROUP CREATE … 0 MKSTREAM`:
//!   from the start of the stream, so that messages sent before any
//!   consumer existed wait for the first one (and `BUSYGROUP` when it
//!   exists is fine). **One Redis consumer per node**: the node id.
//!
//! ## Commands
//!
//! * SEND: a script (`EVALSHA`) that refuses when `XLEN` ≥ the broker's
//!   `max_queue_length`, else `XADD key * h:… … body …`. An exact bound
//!   that refuses the SEND with an ERROR, like a single node does, rather
//!   than `XADD MAXLEN ~`, which would silently drop the oldest messages,
//!   delivered or not. The RECEIPT leaves after Redis answered.
//! * Fetch: a node with local consumers of a queue runs one reader for it
//!   (its own connection): `XREADGROUP GROUP g <node> COUNT n BLOCK t
//!   STREAMS key >`, with `n` what the local consumers can take now
//!   ([`Broker::queue_room`]: free in-flight slots minus what already
//!   waits), so a node never hoards what it cannot deliver.
//! * ACK (or written, in `auto` mode): `XACK` then `XDEL`. Deleting keeps
//!   the stream to the messages not yet acknowledged: the bound counts
//!   them exactly, memory is freed at once, and a group created again at
//!   `0` (after Redis lost it) cannot hand out acknowledged messages
//!   again.
//! * Release (NACK, UNSUBSCRIBE or disconnect before the ACK, aborted
//!   ACK/NACK, or fetched for a queue whose last local consumer left): a
//!   script that, if this node still owns the pending entry (`XPENDING`),
//!   acknowledges and deletes it and `XADD`s a copy marked `redelivered`,
//!   which any node's reader then fetches. If the group is gone (Redis
//!   lost it) the copy is added anyway.
//! * Liveness: every reader refreshes the idle time of what its node holds
//!   (`XCLAIM … 0 <ids> JUSTID`) every third of `reclaim_idle_ms`, and
//!   takes over what another node left idle longer than that (`XAUTOCLAIM
//!   … <reclaim_idle_ms>`), delivered marked `redelivered:true`: that is how
//!   the messages of a node that died (SIGKILL) come back.
//!
//! ## Faults
//!
//! One writer connection per node carries SENDs, ACKs and releases,
//! pipelined; a SEND while it is down is refused at once with ERROR
//! `/queue/<name>: not queued: redis unavailable`. ACKs and releases wait
//! for the reconnection and are sent then. Readers reconnect on their own
//! (capped, jittered backoff) and consumers stay connected meanwhile. A
//! Redis restart without persistence loses the streams: a reader finding
//! its group gone logs it at `warn` and creates it again.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisResult, RedisWrite, ToRedisArgs, Value};
use switchboard_stomp::{
    BackendError, Broker, MessageKey, QueueBackend, RemoteMessage, RemoteQueue, SendDone,
    WeakBroker,
};
use tokio::sync::{mpsc, watch, Notify};

use crate::backplane::random_u64;
use crate::config::{redact, RedisConfig};
use crate::error::Error;
use crate::link::Backoff;

/// Settings of [`RedisQueues`] besides the [`RedisConfig`] (URL, prefix,
/// reconnect and timeout timings, which it shares with the backplane).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StompQueueConfig {
    /// The consumer group of every queue stream. Default `switchboard`.
    pub group: String,
    /// A message pending for a node that has not refreshed it for this
    /// many milliseconds (the node died, or lost Redis that long) is
    /// taken over by another node and redelivered. Live nodes refresh
    /// theirs every third of it. Default 30,000.
    pub reclaim_idle_ms: u64,
    /// Most messages one fetch (`XREADGROUP`, `XAUTOCLAIM`) takes. Default
    /// 256.
    pub max_fetch: usize,
    /// The Redis consumer name of this node; default a random node id
    /// (16 hex digits). Give the backplane's, so that logs agree.
    pub node_id: Option<u64>,
}

impl Default for StompQueueConfig {
    fn default() -> Self {
        StompQueueConfig {
            group: "switchboard".into(),
            reclaim_idle_ms: 30_000,
            max_fetch: 256,
            node_id: None,
        }
    }
}

impl StompQueueConfig {
    fn reclaim_idle(&self) -> Duration {
        Duration::from_millis(self.reclaim_idle_ms)
    }

    /// How often a reader refreshes what its node holds.
    fn touch_interval(&self) -> Duration {
        self.reclaim_idle() / 3
    }

    /// How long one `XREADGROUP` blocks: short enough for the refreshes.
    fn block(&self) -> Duration {
        (self.reclaim_idle() / 4).clamp(Duration::from_millis(50), Duration::from_secs(2))
    }
}

/// Counters of a [`RedisQueues`], for monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StompQueueStats {
    /// The writer connection is up.
    pub connected: bool,
    /// SENDs stored in Redis.
    pub sent: u64,
    /// SENDs refused: queue full, Redis unavailable or erroring.
    pub send_errors: u64,
    /// Messages fetched (`XREADGROUP`).
    pub fetched: u64,
    /// Messages taken over from idle nodes (`XAUTOCLAIM`).
    pub reclaimed: u64,
    /// Messages acknowledged (`XACK`).
    pub acked: u64,
    /// Messages given back (`XADD` of a redelivered copy).
    pub released: u64,
    /// Times a queue's stream or group was found gone (Redis lost it).
    pub lost_groups: u64,
}

#[derive(Default)]
struct Counters {
    connected: AtomicBool,
    sent: AtomicU64,
    send_errors: AtomicU64,
    fetched: AtomicU64,
    reclaimed: AtomicU64,
    acked: AtomicU64,
    released: AtomicU64,
    lost_groups: AtomicU64,
}

fn add(c: &AtomicU64, n: usize) {
    c.fetch_add(n as u64, Ordering::Relaxed);
}

/// SEND: refuse at the bound, else append. KEYS[1] stream, ARGV[1] bound,
/// ARGV[2..] the fields.
const SEND_SCRIPT: &str = r"
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return false end
return redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))
";

/// Release: if still pending for this node (or the group is gone), ack and
/// delete the entry and append a copy. KEYS[1] stream, ARGV[1] group,
/// ARGV[2] entry id, ARGV[3] consumer, ARGV[4..] the copy's fields.
const RELEASE_SCRIPT: &str = r"
local p = redis.pcall('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if type(p) == 'table' and p.err == nil then
  if #p == 0 or p[1][2] ~= ARGV[3] then return false end
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
  redis.call('XDEL', KEYS[1], ARGV[2])
end
return redis.call('XADD', KEYS[1], '*', unpack(ARGV, 4))
";

/// Work for the writer connection.
enum Op {
    Send {
        key: String,
        headers: Vec<(String, String)>,
        body: Bytes,
        done: SendDone,
    },
    Ack {
        key: String,
        ids: Vec<MessageKey>,
    },
    Release {
        key: String,
        messages: Vec<RemoteMessage>,
    },
}

/// State shared by the handle, the writer and the readers.
struct Shared {
    config: RedisConfig,
    options: StompQueueConfig,
    client: redis::Client,
    /// This node's consumer name.
    consumer: String,
    /// `{prefix}:q:`
    key_prefix: String,
    ops: mpsc::UnboundedSender<Op>,
    /// The writer tried and has no connection: SENDs are refused at once.
    /// (Before its first attempt they wait for it.)
    down: AtomicBool,
    stats: Counters,
    broker: OnceLock<WeakBroker>,
    runtime: OnceLock<tokio::runtime::Handle>,
    /// The broker's `max_queue_length`, known at `start`.
    max_len: AtomicUsize,
    /// The queues this node reads, by name (touched on open and close
    /// only, never per message).
    readers: Mutex<HashMap<Arc<str>, Arc<Reader>>>,
    shutdown: watch::Receiver<bool>,
}

impl Shared {
    fn key(&self, queue: &str) -> String {
        format!("{}{queue}", self.key_prefix)
    }

    fn broker(&self) -> Option<Broker> {
        self.broker.get()?.upgrade()
    }

    fn connection_config(&self, extra: Duration) -> AsyncConnectionConfig {
        let timeout = self.config.command_timeout();
        AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout + extra))
    }

    fn stopped(&self) -> bool {
        *self.shutdown.borrow() || self.shutdown.has_changed().is_err()
    }
}

/// STOMP queues shared by every node on one Redis (see the
/// [module docs](self)).
///
/// ```no_run
/// use switchboard_hub::{Hub, HubConfig};
/// use switchboard_redis::{RedisConfig, RedisQueues, StompQueueConfig};
/// use switchboard_stomp::{Broker, StompConfig};
///
/// # async fn run() -> Result<(), switchboard_redis::Error> {
/// let queues = RedisQueues::new(
///     RedisConfig::new("redis://127.0.0.1:6379"),
///     StompQueueConfig::default(),
/// )?;
/// let hub = Hub::new(HubConfig::default());
/// let broker = Broker::with_backend(hub, StompConfig::default(), queues.clone());
/// queues.start(&broker)?; // spawns the writer on the current runtime
/// # Ok(()) }
/// ```
///
/// The tasks hold the broker weakly: when the broker and every handle on
/// this are dropped (or on [`shutdown`](Self::shutdown)) they stop.
pub struct RedisQueues {
    shared: Arc<Shared>,
    pending_rx: Mutex<Option<mpsc::UnboundedReceiver<Op>>>,
    shutdown: watch::Sender<bool>,
}

impl RedisQueues {
    /// Checks the configuration and builds the backend (no connection
    /// yet). Give a clone to [`Broker::with_backend`], then
    /// [`start`](Self::start) it with that broker.
    pub fn new(config: RedisConfig, options: StompQueueConfig) -> Result<Arc<RedisQueues>, Error> {
        config.validate()?;
        if options.group.is_empty() || options.reclaim_idle_ms < 30 || options.max_fetch == 0 {
            return Err(Error::Config(
                "stomp queues: group must be non-empty, reclaim_idle_ms at least 30, \
                 max_fetch positive"
                    .into(),
            ));
        }
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| Error::Config(format!("url: {e}")))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let shutdown = watch::Sender::new(false);
        let node = options.node_id.unwrap_or_else(random_u64);
        let shared = Arc::new(Shared {
            consumer: format!("{node:016x}"),
            key_prefix: format!("{}:q:", config.prefix),
            client,
            ops: tx,
            down: AtomicBool::new(false),
            stats: Counters::default(),
            broker: OnceLock::new(),
            runtime: OnceLock::new(),
            max_len: AtomicUsize::new(usize::MAX),
            readers: Mutex::new(HashMap::new()),
            shutdown: shutdown.subscribe(),
            config,
            options,
        });
        Ok(Arc::new(RedisQueues {
            shared,
            pending_rx: Mutex::new(Some(rx)),
            shutdown,
        }))
    }

    /// Spawns the writer on the current Tokio runtime; readers are
    /// spawned there as queues get local consumers. Fetched messages are
    /// delivered into `broker` (held weakly). Connecting happens in the
    /// background.
    pub fn start(&self, broker: &Broker) -> Result<(), Error> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let rx = self.pending_rx.lock().take().ok_or(Error::AlreadyStarted)?;
        let shared = &self.shared;
        let _ = shared.broker.set(broker.downgrade());
        let _ = shared.runtime.set(runtime.clone());
        shared
            .max_len
            .store(broker.config().max_queue_length, Ordering::Relaxed);
        tracing::info!(
            node = %shared.consumer,
            redis = %redact(&shared.config.url),
            prefix = %shared.config.prefix,
            "stomp queues over redis starting"
        );
        runtime.spawn(writer(shared.clone(), rx, self.shutdown.subscribe()));
        // Queues the broker opened before `start`.
        let readers: Vec<Arc<Reader>> = shared.readers.lock().values().cloned().collect();
        for r in readers {
            runtime.spawn(read_loop(shared.clone(), r));
        }
        Ok(())
    }

    /// Stops every task and closes the connections; what is still queued
    /// for Redis (SENDs, ACKs, releases) is dropped, so that messages this
    /// node holds stay pending for it and are taken over by other nodes
    /// after `reclaim_idle_ms` (as if the node had died).
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// This node's Redis consumer name.
    pub fn consumer(&self) -> &str {
        &self.shared.consumer
    }

    /// The Redis stream of `queue`: `{prefix}:q:{queue}`.
    pub fn stream_key(&self, queue: &str) -> String {
        self.shared.key(queue)
    }

    /// Counters, for monitoring.
    pub fn stats(&self) -> StompQueueStats {
        let c = &self.shared.stats;
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StompQueueStats {
            connected: c.connected.load(Ordering::Relaxed),
            sent: n(&c.sent),
            send_errors: n(&c.send_errors),
            fetched: n(&c.fetched),
            reclaimed: n(&c.reclaimed),
            acked: n(&c.acked),
            released: n(&c.released),
            lost_groups: n(&c.lost_groups),
        }
    }
}

impl fmt::Debug for RedisQueues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisQueues")
            .field("consumer", &self.shared.consumer)
            .field("config", &self.shared.config)
            .field("options", &self.shared.options)
            .field("stats", &self.stats())
            .finish()
    }
}

impl QueueBackend for RedisQueues {
    fn send(&self, queue: &str, headers: Vec<(String, String)>, body: Bytes, done: SendDone) {
        let shared = &self.shared;
        if shared.down.load(Ordering::Relaxed) || shared.stopped() {
            add(&shared.stats.send_errors, 1);
            done.complete(Err(BackendError::Unavailable("redis unavailable".into())));
            return;
        }
        let op = Op::Send {
            key: shared.key(queue),
            headers,
            body,
            done,
        };
        if let Err(mpsc::error::SendError(Op::Send { done, .. })) = shared.ops.send(op) {
            add(&shared.stats.send_errors, 1);
            done.complete(Err(BackendError::Unavailable("redis unavailable".into())));
        }
    }

    fn open(&self, queue: &Arc<str>) -> Box<dyn RemoteQueue> {
        let shared = &self.shared;
        let mut readers = shared.readers.lock();
        if let Some(r) = readers.get(queue) {
            r.handles.fetch_add(1, Ordering::AcqRel);
            return Box::new(ReaderHandle(r.clone()));
        }
        let reader = Arc::new(Reader {
            queue: queue.clone(),
            key: shared.key(queue),
            notify: Notify::new(),
            handles: AtomicUsize::new(1),
        });
        readers.insert(queue.clone(), reader.clone());
        if let Some(rt) = shared.runtime.get() {
            rt.spawn(read_loop(shared.clone(), reader.clone()));
        }
        Box::new(ReaderHandle(reader))
    }

    fn ack(&self, queue: &str, keys: &[MessageKey]) {
        let _ = self.shared.ops.send(Op::Ack {
            key: self.shared.key(queue),
            ids: keys.to_vec(),
        });
    }

    fn release(&self, queue: &str, messages: Vec<RemoteMessage>) {
        let _ = self.shared.ops.send(Op::Release {
            key: self.shared.key(queue),
            messages,
        });
    }
}

// ---- redis arguments ---------------------------------------------------

/// A stream entry id, `ms-seq`.
struct Id(MessageKey);

impl ToRedisArgs for Id {
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        out.write_arg_fmt(self.0);
    }
}

/// A header's field name, `h:<name>`.
struct HeaderField<'a>(&'a str);

impl ToRedisArgs for HeaderField<'_> {
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        use std::io::Write;
        let mut w = out.writer_for_next_arg();
        let _ = w.write_all(b"h:");
        let _ = w.write_all(self.0.as_bytes());
    }
}

/// Appends a message's fields to the last command of `pipe`.
fn push_fields(
    pipe: &mut redis::Pipeline,
    headers: &[(String, String)],
    body: &[u8],
    redelivered: bool,
) {
    for (n, v) in headers {
        pipe.arg(HeaderField(n)).arg(v.as_str());
    }
    pipe.arg("body").arg(body);
    if redelivered {
        pipe.arg("redelivered").arg("1");
    }
}

// ---- the writer --------------------------------------------------------

/// Most operations in one pipeline.
const MAX_BATCH: usize = 256;

struct Scripts {
    send: String,
    release: String,
}

async fn connect_writer(shared: &Shared) -> RedisResult<(MultiplexedConnection, Scripts)> {
    let mut conn = shared
        .client
        .get_multiplexed_async_connection_with_config(&shared.connection_config(Duration::ZERO))
        .await?;
    let mut load = redis::pipe();
    load.cmd("SCRIPT").arg("LOAD").arg(SEND_SCRIPT);
    load.cmd("SCRIPT").arg("LOAD").arg(RELEASE_SCRIPT);
    let (send, release): (String, String) = load.query_async(&mut conn).await?;
    Ok((conn, Scripts { send, release }))
}

/// Sends SENDs, ACKs and releases, pipelined, on one connection;
/// reconnects with backoff. SENDs fail at once while disconnected; ACKs
/// and releases are kept and sent after the reconnection.
async fn writer(
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<Op>,
    mut shutdown: watch::Receiver<bool>,
) {
    let config = &shared.config;
    let mut backoff = Backoff::new(config.reconnect_min(), config.reconnect_max());
    let mut batch: Vec<Op> = Vec::new();
    let mut failures: u64 = 0;
    let mut outage: Option<Instant> = None;
    let mut keep_batch = false;
    let mut retried = false;
    loop {
        let connect = tokio::time::timeout(config.command_timeout(), connect_writer(&shared));
        let attempt = tokio::select! {
            r = connect => r,
            _ = stopped(&mut shutdown) => break,
        };
        let redis = redact(&config.url);
        match attempt {
            Ok(Ok((mut conn, scripts))) => {
                failures = 0;
                shared.down.store(false, Ordering::Relaxed);
                shared.stats.connected.store(true, Ordering::Relaxed);
                match outage.take() {
                    Some(since) => tracing::warn!(
                        %redis,
                        outage = ?since.elapsed(),
                        "stomp queues reconnected to redis; SENDs to /queue/ during the \
                         outage were refused with an ERROR"
                    ),
                    None => tracing::debug!(%redis, "stomp queues connected"),
                }
                let since = Instant::now();
                let end = tokio::select! {
                    end = write_loop(&shared, &mut conn, &scripts, &mut rx, &mut batch, &mut retried) => end,
                    _ = stopped(&mut shutdown) => None,
                };
                shared.stats.connected.store(false, Ordering::Relaxed);
                let Some((reason, resend)) = end else { break };
                keep_batch = resend;
                outage = Some(Instant::now());
                tracing::warn!(
                    %redis,
                    "stomp queues lost redis ({reason}); SENDs to /queue/ are refused with an \
                     ERROR until it is back, consumers stay connected"
                );
                if since.elapsed() >= config.reconnect_max() {
                    backoff.reset();
                }
            }
            Ok(Err(e)) => writer_connect_failed(&redis, &mut failures, &e.to_string()),
            Err(_) => writer_connect_failed(&redis, &mut failures, "timed out"),
        }
        shared.down.store(true, Ordering::Relaxed);
        if outage.is_none() {
            outage = Some(Instant::now());
        }
        // Disconnected: what waits is refused (SENDs) or kept (the rest),
        // unless the batch is to be sent again as it is.
        if !std::mem::take(&mut keep_batch) {
            batch.retain_mut(keep_or_fail);
        }
        let wait = tokio::time::sleep(backoff.next());
        tokio::pin!(wait);
        loop {
            tokio::select! {
                _ = &mut wait => break,
                op = rx.recv() => match op {
                    Some(mut op) => if keep_or_fail(&mut op) { batch.push(op) },
                    None => return,
                },
                _ = stopped(&mut shutdown) => return,
            }
        }
    }
}

fn writer_connect_failed(redis: &str, failures: &mut u64, error: &str) {
    *failures += 1;
    if failures.is_power_of_two() {
        tracing::warn!(%redis, attempts = *failures, "stomp queues cannot connect to redis: {error}; retrying");
    } else {
        tracing::debug!(%redis, attempts = *failures, "stomp queues: connect failed: {error}");
    }
}

/// While disconnected: a SEND is refused (`false`: drop it), anything else
/// kept for the reconnection.
fn keep_or_fail(op: &mut Op) -> bool {
    match op {
        Op::Send { done, .. } => {
            let done = std::mem::replace(done, SendDone::detached());
            done.complete(Err(BackendError::Unavailable("redis unavailable".into())));
            false
        }
        _ => true,
    }
}

/// Writes batches until the connection fails (`Some((reason, resend))`:
/// `resend` when the batch was never written and goes again as it is on
/// the next connection) or the backend is gone (`None`). `batch` may hold
/// what waited for this connection.
async fn write_loop(
    shared: &Shared,
    conn: &mut MultiplexedConnection,
    scripts: &Scripts,
    rx: &mut mpsc::UnboundedReceiver<Op>,
    batch: &mut Vec<Op>,
    retried: &mut bool,
) -> Option<(String, bool)> {
    let timeout = shared.config.command_timeout();
    loop {
        if batch.is_empty() {
            let next = match shared.config.ping_interval() {
                Some(idle) => tokio::time::timeout(idle, rx.recv()).await.ok(),
                None => Some(rx.recv().await),
            };
            match next {
                Some(Some(op)) => batch.push(op),
                Some(None) => return None,
                None => {
                    let cmd = redis::cmd("PING");
                    let ping = cmd.query_async::<Value>(conn);
                    match tokio::time::timeout(timeout, ping).await {
                        Ok(Ok(_)) => continue,
                        Ok(Err(e)) => return Some((format!("PING: {e}"), false)),
                        Err(_) => return Some(("PING timed out".into(), false)),
                    }
                }
            }
        }
        while batch.len() < MAX_BATCH {
            let Ok(op) = rx.try_recv() else { break };
            batch.push(op);
        }
        let max_len = shared.max_len.load(Ordering::Relaxed);
        let group = &shared.options.group;
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for op in batch.iter() {
            match op {
                Op::Send {
                    key, headers, body, ..
                } => {
                    pipe.cmd("EVALSHA")
                        .arg(&scripts.send)
                        .arg(1)
                        .arg(key)
                        .arg(max_len);
                    push_fields(&mut pipe, headers, body, false);
                }
                Op::Ack { key, ids } => {
                    pipe.cmd("XACK").arg(key).arg(group);
                    for id in ids {
                        pipe.arg(Id(*id));
                    }
                    pipe.cmd("XDEL").arg(key);
                    for id in ids {
                        pipe.arg(Id(*id));
                    }
                }
                Op::Release { key, messages } => {
                    for m in messages {
                        pipe.cmd("EVALSHA")
                            .arg(&scripts.release)
                            .arg(1)
                            .arg(key)
                            .arg(group)
                            .arg(Id(m.key))
                            .arg(&shared.consumer);
                        push_fields(&mut pipe, &m.headers, &m.body, true);
                    }
                }
            }
        }
        let query = pipe.query_async::<Vec<RedisResult<Value>>>(conn);
        match tokio::time::timeout(timeout, query).await {
            Ok(Ok(results)) => {
                *retried = false;
                settle_batch(shared, batch.drain(..), results);
            }
            Ok(Err(e)) if !*retried && e.is_connection_dropped() => {
                // Found dead before anything was written (idle through a
                // restart): sent again on the next connection, once.
                *retried = true;
                return Some((format!("{e} (the batch is sent again)"), true));
            }
            Ok(Err(e)) => {
                *retried = false;
                fail_sends(shared, batch, &format!("redis unavailable ({e})"));
                return Some((e.to_string(), false));
            }
            Err(_) => {
                *retried = false;
                fail_sends(shared, batch, "redis did not answer in time");
                return Some(("timed out".into(), false));
            }
        }
    }
}

/// Refuses the batch's SENDs (the rest is kept for the next connection).
fn fail_sends(shared: &Shared, batch: &mut Vec<Op>, why: &str) {
    batch.retain_mut(|op| match op {
        Op::Send { done, .. } => {
            add(&shared.stats.send_errors, 1);
            let done = std::mem::replace(done, SendDone::detached());
            done.complete(Err(BackendError::Unavailable(why.to_owned())));
            false
        }
        _ => true,
    });
}

/// Matches each operation with its replies.
fn settle_batch(shared: &Shared, ops: impl Iterator<Item = Op>, results: Vec<RedisResult<Value>>) {
    let stats = &shared.stats;
    let mut results = results.into_iter();
    for op in ops {
        match op {
            Op::Send { done, key, .. } => match results.next() {
                Some(Ok(Value::Nil)) => {
                    add(&stats.send_errors, 1);
                    done.complete(Err(BackendError::Full(
                        shared.max_len.load(Ordering::Relaxed),
                    )));
                }
                Some(Ok(_)) => {
                    add(&stats.sent, 1);
                    done.complete(Ok(()));
                }
                Some(Err(e)) => {
                    add(&stats.send_errors, 1);
                    tracing::warn!(stream = %key, "stomp queues: redis refused a SEND: {e}");
                    done.complete(Err(BackendError::Unavailable(format!("redis: {e}"))));
                }
                None => done.complete(Err(BackendError::Unavailable("no reply".into()))),
            },
            Op::Ack { key, ids } => {
                let (ack, _del) = (results.next(), results.next());
                match ack {
                    Some(Ok(_)) => add(&stats.acked, ids.len()),
                    Some(Err(e)) => {
                        tracing::warn!(stream = %key, "stomp queues: XACK refused: {e}")
                    }
                    None => {}
                }
            }
            Op::Release { key, messages } => {
                for _ in &messages {
                    match results.next() {
                        Some(Ok(Value::Nil)) => {} // not ours any more
                        Some(Ok(_)) => add(&stats.released, 1),
                        Some(Err(e)) => {
                            tracing::warn!(stream = %key, "stomp queues: release refused: {e}")
                        }
                        None => {}
                    }
                }
            }
        }
    }
}

/// Resolves when shutdown is asked for (or the handle is dropped).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

// ---- the readers -------------------------------------------------------

/// One queue this node consumes.
struct Reader {
    queue: Arc<str>,
    key: String,
    /// The local consumers may take more.
    notify: Notify,
    /// Open [`ReaderHandle`]s (the broker's queue); 0: the reader stops.
    handles: AtomicUsize,
}

/// The broker's handle on a [`Reader`].
struct ReaderHandle(Arc<Reader>);

impl RemoteQueue for ReaderHandle {
    fn wake(&self) {
        self.0.notify.notify_one();
    }
}

impl Drop for ReaderHandle {
    fn drop(&mut self) {
        if self.0.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.notify.notify_one();
        }
    }
}

/// A reader's connection and what it knows.
struct ReadState {
    conn: Option<MultiplexedConnection>,
    /// The group existed (or was created) on an earlier connection.
    group_seen: bool,
    next_touch: Instant,
    next_reclaim: Instant,
    cursor: String,
    backoff: Backoff,
}

/// Fetches queue `reader.queue` for the local consumers while the broker
/// has it open: `XREADGROUP` as much as they can take, `XAUTOCLAIM` what
/// idle nodes left, and refreshes what this node holds.
async fn read_loop(shared: Arc<Shared>, reader: Arc<Reader>) {
    let mut shutdown = shared.shutdown.clone();
    let config = &shared.config;
    let options = &shared.options;
    let now = Instant::now();
    let mut st = ReadState {
        conn: None,
        group_seen: false,
        next_touch: now + options.touch_interval(),
        next_reclaim: now,
        cursor: "0-0".into(),
        backoff: Backoff::new(config.reconnect_min(), config.reconnect_max()),
    };
    loop {
        if shared.stopped() || shared.broker.get().is_some_and(|b| b.upgrade().is_none()) {
            return; // the broker is gone: nothing to deliver to
        }
        if reader.handles.load(Ordering::Acquire) == 0 {
            let mut readers = shared.readers.lock();
            if reader.handles.load(Ordering::Acquire) == 0 {
                if readers
                    .get(&reader.queue)
                    .is_some_and(|r| Arc::ptr_eq(r, &reader))
                {
                    readers.remove(&reader.queue);
                }
                return;
            }
        }
        let step = tokio::select! {
            r = read_step(&shared, &reader, &mut st) => r,
            _ = stopped(&mut shutdown) => return,
        };
        if let Err(e) = step {
            st.conn = None;
            tracing::debug!(queue = %reader.queue, "stomp queue reader lost redis: {e}");
            tokio::select! {
                _ = tokio::time::sleep(st.backoff.next()) => {}
                _ = stopped(&mut shutdown) => return,
            }
        }
    }
}

/// One round of a reader; an error means the connection is lost.
async fn read_step(shared: &Shared, reader: &Reader, st: &mut ReadState) -> Result<(), String> {
    let options = &shared.options;
    let group = &options.group;
    let Some(broker) = shared.broker() else {
        return Ok(()); // gone: the loop stops
    };
    if st.conn.is_none() {
        let config = shared.connection_config(options.block());
        let connect = shared
            .client
            .get_multiplexed_async_connection_with_config(&config);
        let conn = match tokio::time::timeout(shared.config.command_timeout(), connect).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("connect timed out".into()),
        };
        st.conn = Some(conn);
        st.backoff.reset();
        create_group(shared, reader, st).await?;
    }
    let conn = st.conn.as_mut().expect("connected");
    let now = Instant::now();
    if now >= st.next_touch {
        st.next_touch = now + options.touch_interval();
        let held = broker.held_keys(&reader.queue);
        for chunk in held.chunks(512) {
            let mut cmd = redis::cmd("XCLAIM");
            cmd.arg(&reader.key).arg(group).arg(&shared.consumer).arg(0);
            for id in chunk {
                cmd.arg(Id(*id));
            }
            cmd.arg("JUSTID");
            match cmd.query_async::<Value>(conn).await {
                Ok(_) => {}
                Err(e) if e.code() == Some("NOGROUP") => break,
                Err(e) if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() => {
                    return Err(format!("XCLAIM: {e}"))
                }
                Err(e) => tracing::warn!(queue = %reader.queue, "stomp queues: XCLAIM: {e}"),
            }
        }
    }
    let room = broker.queue_room(&reader.queue).min(options.max_fetch);
    if room == 0 {
        drop(broker);
        tokio::select! {
            _ = reader.notify.notified() => {}
            _ = tokio::time::sleep_until(st.next_touch.into()) => {}
        }
        return Ok(());
    }
    if now >= st.next_reclaim {
        let reply = redis::cmd("XAUTOCLAIM")
            .arg(&reader.key)
            .arg(group)
            .arg(&shared.consumer)
            .arg(options.reclaim_idle_ms)
            .arg(&st.cursor)
            .arg("COUNT")
            .arg(room)
            .query_async::<Value>(conn)
            .await;
        match reply {
            Ok(v) => {
                let (cursor, entries) = parse_autoclaim(v);
                if cursor == "0-0" || cursor.is_empty() {
                    st.cursor = "0-0".into();
                    st.next_reclaim = now + options.reclaim_idle() / 2;
                } else {
                    st.cursor = cursor;
                }
                if !entries.is_empty() {
                    let n = entries.len();
                    add(&shared.stats.reclaimed, n);
                    tracing::info!(
                        queue = %reader.queue,
                        n,
                        "stomp queues: took over messages left idle by another node \
                         (redelivered)"
                    );
                    let messages = entries.into_iter().map(|mut m| {
                        m.redelivered = true;
                        m
                    });
                    broker.deliver_remote(&reader.queue, messages.collect());
                    return Ok(());
                }
            }
            Err(e) if e.code() == Some("NOGROUP") => {
                return lost_group(shared, reader, st).await;
            }
            Err(e) if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() => {
                return Err(format!("XAUTOCLAIM: {e}"));
            }
            Err(e) => {
                st.next_reclaim = now + options.reclaim_idle() / 2;
                tracing::warn!(queue = %reader.queue, "stomp queues: XAUTOCLAIM: {e}");
            }
        }
    }
    drop(broker);
    let block = options.block().as_millis() as u64;
    let reply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(group)
        .arg(&shared.consumer)
        .arg("COUNT")
        .arg(room)
        .arg("BLOCK")
        .arg(block)
        .arg("STREAMS")
        .arg(&reader.key)
        .arg(">")
        .query_async::<Value>(conn)
        .await;
    match reply {
        Ok(v) => {
            let entries = parse_read(v);
            if !entries.is_empty() {
                add(&shared.stats.fetched, entries.len());
                match shared.broker() {
                    Some(broker) => broker.deliver_remote(&reader.queue, entries),
                    // Left pending: taken over by another node later.
                    None => return Ok(()),
                }
            }
            Ok(())
        }
        Err(e) if e.code() == Some("NOGROUP") => lost_group(shared, reader, st).await,
        Err(e) => Err(format!("XREADGROUP: {e}")),
    }
}

/// `XGROUP CREATE … 0 MKSTREAM`: from the start of the stream, so that
/// what was sent before any consumer is delivered.
async fn create_group(shared: &Shared, reader: &Reader, st: &mut ReadState) -> Result<(), String> {
    let conn = st.conn.as_mut().expect("connected");
    let created = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&reader.key)
        .arg(&shared.options.group)
        .arg("0")
        .arg("MKSTREAM")
        .query_async::<Value>(conn)
        .await;
    match created {
        Ok(_) if st.group_seen => {
            add(&shared.stats.lost_groups, 1);
            tracing::warn!(
                queue = %reader.queue,
                stream = %reader.key,
                "stomp queues: the queue's stream or consumer group was gone from redis \
                 (restarted without persistence?): the messages it held are lost; created \
                 again"
            );
        }
        Ok(_) => tracing::debug!(queue = %reader.queue, "stomp queues: consumer group created"),
        Err(e) if e.code() == Some("BUSYGROUP") => {}
        Err(e) => return Err(format!("XGROUP CREATE: {e}")),
    }
    st.group_seen = true;
    Ok(())
}

/// The group vanished under a live connection (Redis lost it): log it and
/// create it again.
async fn lost_group(shared: &Shared, reader: &Reader, st: &mut ReadState) -> Result<(), String> {
    st.group_seen = true;
    st.cursor = "0-0".into();
    create_group(shared, reader, st).await
}

// ---- replies -----------------------------------------------------------

fn parse_id(v: &Value) -> Option<MessageKey> {
    let s = match v {
        Value::BulkString(b) => std::str::from_utf8(b).ok()?,
        Value::SimpleString(s) => s.as_str(),
        _ => return None,
    };
    let (ms, seq) = s.split_once('-')?;
    Some(MessageKey(ms.parse().ok()?, seq.parse().ok()?))
}

fn into_bytes(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    }
}

fn into_string(v: Value) -> Option<String> {
    into_bytes(v).map(|b| {
        String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    })
}

/// One entry, `[id, [field, value, …]]` (a deleted entry has no fields:
/// skipped).
fn parse_entry(v: Value) -> Option<RemoteMessage> {
    let Value::Array(mut parts) = v else {
        return None;
    };
    if parts.len() != 2 {
        return None;
    }
    let fields = parts.pop()?;
    let key = parse_id(&parts[0])?;
    let fields = match fields {
        Value::Array(f) => f,
        Value::Map(m) => m.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => return None,
    };
    let mut headers = Vec::new();
    let mut body = Bytes::new();
    let mut redelivered = false;
    let mut it = fields.into_iter();
    while let (Some(name), Some(value)) = (it.next(), it.next()) {
        let Some(name) = into_bytes(name) else {
            continue;
        };
        match &name[..] {
            b"body" => body = into_bytes(value).map(Bytes::from).unwrap_or_default(),
            b"redelivered" => redelivered = true,
            n if n.starts_with(b"h:") => {
                let n = String::from_utf8_lossy(&n[2..]).into_owned();
                if let Some(v) = into_string(value) {
                    headers.push((n, v));
                }
            }
            _ => {}
        }
    }
    Some(RemoteMessage {
        key,
        headers,
        body,
        redelivered,
    })
}

fn parse_entries(v: Value) -> Vec<RemoteMessage> {
    match v {
        Value::Array(entries) => entries.into_iter().filter_map(parse_entry).collect(),
        _ => Vec::new(),
    }
}

/// `XREADGROUP` of one stream: nil, or `[[key, entries]]` (a map in RESP3).
fn parse_read(v: Value) -> Vec<RemoteMessage> {
    match v {
        Value::Array(streams) => streams
            .into_iter()
            .flat_map(|s| match s {
                Value::Array(mut kv) if kv.len() == 2 => parse_entries(kv.pop().expect("2")),
                _ => Vec::new(),
            })
            .collect(),
        Value::Map(streams) => streams
            .into_iter()
            .flat_map(|(_, entries)| parse_entries(entries))
            .collect(),
        _ => Vec::new(),
    }
}

/// `XAUTOCLAIM`: `[next cursor, entries, deleted ids]`.
fn parse_autoclaim(v: Value) -> (String, Vec<RemoteMessage>) {
    let Value::Array(parts) = v else {
        return (String::new(), Vec::new());
    };
    let mut it = parts.into_iter();
    let cursor = it.next().and_then(into_string).unwrap_or_default();
    let entries = it.next().map(parse_entries).unwrap_or_default();
    (cursor, entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &[u8]) -> Value {
        Value::BulkString(s.to_vec())
    }

    #[test]
    fn entries_parse_with_binary_bodies_and_headers() {
        let entry = Value::Array(vec![
            bulk(b"1700000000000-7"),
            Value::Array(vec![
                bulk(b"h:content-type"),
                bulk(b"application/octet-stream"),
                bulk(b"h:x:y"),
                bulk(b"a\nb"),
                bulk(b"body"),
                bulk(b"\0\xff\0"),
                bulk(b"redelivered"),
                bulk(b"1"),
            ]),
        ]);
        let read = Value::Array(vec![Value::Array(vec![
            bulk(b"sb:q:jobs"),
            Value::Array(vec![entry, Value::Array(vec![bulk(b"1-2"), Value::Nil])]),
        ])]);
        let got = parse_read(read);
        assert_eq!(got.len(), 1, "the deleted entry is skipped");
        let m = &got[0];
        assert_eq!(m.key, MessageKey(1_700_000_000_000, 7));
        assert_eq!(&m.body[..], b"\0\xff\0");
        assert!(m.redelivered);
        assert_eq!(
            m.headers,
            vec![
                (
                    "content-type".to_owned(),
                    "application/octet-stream".to_owned()
                ),
                ("x:y".to_owned(), "a\nb".to_owned()),
            ]
        );
        assert!(parse_read(Value::Nil).is_empty());
        let (cursor, entries) = parse_autoclaim(Value::Array(vec![
            bulk(b"0-0"),
            Value::Array(vec![]),
            Value::Array(vec![]),
        ]));
        assert_eq!((cursor.as_str(), entries.len()), ("0-0", 0));
    }

    #[test]
    fn ids_format_as_redis_does() {
        assert_eq!(MessageKey(12, 3).to_string(), "12-3");
        assert_eq!(parse_id(&bulk(b"12-3")), Some(MessageKey(12, 3)));
        assert_eq!(parse_id(&bulk(b"12")), None);
    }
}
