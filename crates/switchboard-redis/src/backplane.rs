//! [`RedisBackplane`]: the `switchboard_hub::Backplane` implementation (what
//! the hub calls under its topic locks: queue or record, never wait) and the
//! handle that starts and stops the two network links ([`crate::link`]).

use std::fmt;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::Arc;

use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use std::collections::HashSet;
use switchboard_hub::{Backplane, HistoryRange, Hub, Presence, Publication};
use tokio::sync::{mpsc, watch, Notify};

use crate::config::RedisConfig;
use crate::error::Error;
use crate::history;
use crate::link::{self, Links};
use crate::outbox::Outbox;
use crate::publisher::Publisher;
use crate::stats::{BackplaneStats, Counters};
use crate::subscriber::Subscriber;
use crate::topics::Topics;

/// State shared by the backplane handle and its links.
pub(crate) struct Shared {
    pub(crate) config: RedisConfig,
    pub(crate) client: redis::Client,
    pub(crate) node_id: u64,
    /// `{prefix}:t:`
    pub(crate) channel_prefix: String,
    pub(crate) outbox: Outbox,
    pub(crate) topics: Topics,
    pub(crate) stats: Counters,
    pub(crate) links: Links,
    /// The hub's `history_size`, known from `start`.
    pub(crate) history_size: std::sync::atomic::AtomicUsize,
    /// Topics whose local subscribers changed since the subscriber link last
    /// told Redis (see [`crate::presence`]).
    pub(crate) presence_dirty: Mutex<HashSet<Arc<str>>>,
    pub(crate) presence_changed: Notify,
}

impl Shared {
    /// Runs `read` on a fresh connection, all within `command_timeout`: a
    /// one-off read outside the links (for the HTTP API).
    async fn read_once<T>(
        &self,
        read: impl AsyncFnOnce(&mut MultiplexedConnection) -> redis::RedisResult<T>,
    ) -> Result<T, Error> {
        let run = async {
            let mut conn = self
                .client
                .get_multiplexed_async_connection_with_config(&self.config.connection())
                .await?;
            read(&mut conn).await
        };
        tokio::time::timeout(self.config.command_timeout(), run)
            .await
            .map_err(|_| Error::Unavailable("timed out".into()))?
            .map_err(|e| Error::Unavailable(e.to_string()))
    }

    /// Publications kept per topic in the shared history.
    pub(crate) fn history_size(&self) -> usize {
        self.history_size.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Relays a hub's publications through Redis pub/sub, so that the hubs of
/// several nodes sharing one Redis act as one.
///
/// Build it, give it to the hub, then start it with that hub:
///
/// ```no_run
/// use switchboard_hub::{Hub, HubConfig};
/// use switchboard_redis::{RedisBackplane, RedisConfig};
///
/// # async fn run() -> Result<(), switchboard_redis::Error> {
/// let bp = RedisBackplane::new(RedisConfig::new("redis://127.0.0.1:6379"))?;
/// let hub = Hub::with_backplane(HubConfig::default(), bp.clone());
/// bp.start(&hub)?; // spawns the network tasks on the current Tokio runtime
/// # Ok(()) }
/// ```
///
/// The tasks hold only a [`WeakHub`](switchboard_hub::WeakHub): when the hub
/// and every handle on the backplane are dropped (or on
/// [`shutdown`](Self::shutdown)) they stop and close their connections.
///
/// # What it guarantees
///
/// * `publish` never waits: it only queues (bounded).
/// * With shared history (the default): one order per topic for the whole
///   cluster, the numbers Redis gave (every node, the publishing one
///   included, delivers when the publication comes back from Redis); a node
///   that missed some (a gap, an outage, a topic just opened) reads them
///   from the topic's retained history and delivers them in order, so a
///   publication that reached Redis is delivered at least within the
///   retained history. Nothing is delivered while Redis is unreachable.
/// * Without it: local delivery at once; per-topic order per origin node (a
///   node's publications reach every other node in the order they were
///   published: one publisher link, pipelined on one connection; one
///   subscriber connection); sequence numbers node-local. While a node is
///   disconnected it receives nothing, and what other nodes publish
///   meanwhile cannot be recovered (Redis pub/sub keeps nothing).
/// * Either way, a publication is sent at most once. It is lost for the
///   other nodes when the outgoing queue is full
///   ([`BackplaneStats::dropped`]) or its `PUBLISH` fails
///   ([`BackplaneStats::publish_errors`]); while Redis is unreachable a
///   node's own publications are queued (within the bounds) and sent on
///   reconnection.
pub struct RedisBackplane {
    shared: Arc<Shared>,
    /// The outbox's receiver until `start` hands it to the publisher link.
    pending_rx: Mutex<Option<mpsc::UnboundedReceiver<Arc<Publication>>>>,
    /// Set to `true` (or dropped with the backplane) to stop the links.
    shutdown: watch::Sender<bool>,
}

impl RedisBackplane {
    /// Checks `config` and builds the backplane (no connection yet). Give a
    /// clone to [`Hub::with_backplane`], then call [`start`](Self::start).
    pub fn new(config: RedisConfig) -> Result<Arc<RedisBackplane>, Error> {
        config.validate()?;
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| Error::Config(format!("url: {e}")))?;
        let (outbox, rx) = Outbox::new(config.max_queued_messages, config.max_queued_bytes);
        let shared = Arc::new(Shared {
            channel_prefix: config.channel_prefix(),
            node_id: random_u64(),
            client,
            outbox,
            topics: Topics::default(),
            stats: Counters::default(),
            links: Links::default(),
            history_size: Default::default(),
            presence_dirty: Mutex::default(),
            presence_changed: Notify::new(),
            config,
        });
        Ok(Arc::new(RedisBackplane {
            shared,
            pending_rx: Mutex::new(Some(rx)),
            shutdown: watch::Sender::new(false),
        }))
    }

    /// Spawns the publisher and subscriber links on the current Tokio
    /// runtime; remote publications are delivered into `hub` (held weakly).
    /// Connecting happens in the background: an unreachable Redis is retried
    /// (and logged), never an error here. Publications and topics opened
    /// before `start` are sent once connected.
    pub fn start(&self, hub: &Hub) -> Result<(), Error> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let rx = self.pending_rx.lock().take().ok_or(Error::AlreadyStarted)?;
        let shared = &self.shared;
        shared.history_size.store(
            hub.config().history_size,
            std::sync::atomic::Ordering::Relaxed,
        );
        tracing::info!(
            node = %format_args!("{:016x}", shared.node_id),
            redis = %crate::config::redact(&shared.config.url),
            prefix = %shared.config.prefix,
            "redis backplane starting"
        );
        runtime.spawn(link::supervise(
            shared.clone(),
            Publisher::new(rx),
            self.shutdown.subscribe(),
        ));
        runtime.spawn(link::supervise(
            shared.clone(),
            Subscriber::new(hub.downgrade()),
            self.shutdown.subscribe(),
        ));
        Ok(())
    }

    /// Stops the links and closes their connections; publications still
    /// queued are discarded. Later publications are counted as dropped.
    /// (Dropping the hub and every handle on the backplane does the same.)
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// This node's id: random per backplane, carried by every message so
    /// that a node ignores its own publications echoed back by Redis.
    pub fn node_id(&self) -> u64 {
        self.shared.node_id
    }

    /// The configuration.
    pub fn config(&self) -> &RedisConfig {
        &self.shared.config
    }

    /// Whether Redis has confirmed this node's subscription to `topic` on
    /// the current connection (so remote publications on it arrive).
    pub fn is_subscribed(&self, topic: &str) -> bool {
        self.shared.topics.is_subscribed(topic)
    }

    /// Whether Redis numbers publications and keeps their history
    /// ([`RedisConfig::shared_history`]).
    pub fn shared_history(&self) -> bool {
        self.shared.config.shared_history
    }

    /// The shared history of `topic` after `since`, read from Redis (with
    /// [`RedisConfig::shared_history`]; otherwise an error): what any node
    /// would replay, whether or not this one has subscribers of the topic.
    pub async fn history(&self, topic: &str, since: u64) -> Result<HistoryRange, Error> {
        let shared = &self.shared;
        if !shared.config.shared_history {
            return Err(Error::Config("shared_history is off".into()));
        }
        let retained = shared
            .read_once(async |conn| {
                let prefix = &shared.config.prefix;
                history::fetch(conn, prefix, topic, shared.history_size()).await
            })
            .await?;
        let topic: Arc<str> = Arc::from(topic);
        let oldest = retained
            .entries
            .first()
            .map_or(retained.last_seq + 1, |e| e.seq);
        let messages: Vec<Arc<Publication>> = retained
            .entries
            .into_iter()
            .filter(|e| e.seq > since)
            .map(|e| {
                Arc::new(Publication::new(
                    topic.clone(),
                    e.seq,
                    e.from,
                    e.payload,
                    e.timestamp_ms,
                ))
            })
            .collect();
        Ok(HistoryRange {
            messages,
            complete: since <= retained.last_seq && oldest <= since + 1,
        })
    }

    /// Who subscribes to `topic` on every live node, read from Redis: for a
    /// topic this node has no subscriber of (otherwise
    /// [`Hub::presence`](switchboard_hub::Hub::presence) already counts every
    /// node's).
    pub async fn presence(&self, topic: &str) -> Result<Presence, Error> {
        let shared = &self.shared;
        let reports = shared
            .read_once(async |conn| {
                crate::presence::fetch(conn, &shared.config.prefix, topic).await
            })
            .await?;
        let mut names = HashSet::new();
        let mut count = 0;
        for (_, members, _) in reports {
            count += members.count();
            names.extend(members.names.into_iter().map(|(n, _)| n));
        }
        Ok(Presence {
            count,
            members: names.into_iter().collect(),
        })
    }

    /// Counters, for monitoring.
    pub fn stats(&self) -> BackplaneStats {
        let mut stats = self.shared.stats.snapshot();
        stats.queued = self.shared.outbox.len();
        let (open, subscribed) = self.shared.topics.counts();
        stats.open_topics = open;
        stats.subscribed_topics = subscribed;
        stats
    }
}

impl Backplane for RedisBackplane {
    fn publish(&self, publication: &Arc<Publication>) {
        if !self.shared.outbox.push(publication) {
            self.shared
                .stats
                .dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn topic_opened(&self, topic: &str) {
        self.shared.topics.open(topic);
    }

    fn topic_closed(&self, topic: &str) {
        self.shared.topics.close(topic);
    }

    fn presence_changed(&self, topic: &str) {
        let mut dirty = self.shared.presence_dirty.lock();
        if !dirty.contains(topic) {
            dirty.insert(Arc::from(topic));
        }
        drop(dirty);
        self.shared.presence_changed.notify_one();
    }

    fn sequences(&self) -> bool {
        self.shared.config.shared_history
    }
}

impl fmt::Debug for RedisBackplane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackplane")
            .field("node_id", &format_args!("{:016x}", self.shared.node_id))
            .field("config", &self.shared.config)
            .field("stats", &self.stats())
            .finish()
    }
}

/// A random `u64` from the standard library's per-process random hash keys
/// (no RNG dependency); distinct on every call.
pub(crate) fn random_u64() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(CALLS.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}
