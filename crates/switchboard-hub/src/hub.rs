//! The [`Hub`]: the sharded topic map, publish fan-out, idle-topic retention,
//! presence/history queries, statistics ([`HubStats`]) and the entry point for
//! publications relayed from other nodes ([`Hub::deliver_remote`]), and the
//! non-owning [`WeakHub`] a backplane's network task holds.
//!
//! Locking and topic lifetime are documented on [`Hub`].

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use parking_lot::RwLock;

use crate::backplane::{Backplane, InMemoryBackplane};
use crate::client::{Client, ClientId, ClientInfo};
use crate::config::HubConfig;
use crate::error::{validate_topic, HubError};
use crate::history::HistoryRange;
use crate::mailbox::{Delivery, Mailbox};
use crate::presence::{MemberCounts, Presence, RemoteMembers};
use crate::publication::{now_ms, Payload, Publication};
use crate::registry::{FanoutSnapshot, ProtocolStats, Registry};
use crate::topic::{FanOut, Topic, TopicState};

/// Counters describing a hub.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HubStats {
    /// Topics currently in the map (with subscribers or idle).
    pub topics: usize,
    /// Topics without subscribers kept for their history.
    pub idle_topics: usize,
    /// Connected clients.
    pub clients: usize,
    /// Publications processed (local and remote).
    pub published: u64,
    /// Publications queued into mailboxes (one per recipient; presence events
    /// not counted).
    pub delivered: u64,
    /// Consumers marked slow (mailbox overflowed).
    pub dropped_slow_consumers: u64,
    /// Deliveries (publications and presence events) dropped because the
    /// recipient's mailbox had overflowed.
    pub dropped_deliveries: u64,
}

/// Connections that came (`+n`) or went (`-n`) per name between two
/// reports of a node's subscribers.
fn remote_events(old: Option<&RemoteMembers>, new: Option<&RemoteMembers>) -> Vec<(Arc<str>, i64)> {
    let empty = HashMap::new();
    let old = old.map_or(&empty, |r| &r.names);
    let new = new.map_or(&empty, |r| &r.names);
    let mut out = Vec::new();
    for (name, &n) in new {
        let delta = i64::from(n) - i64::from(old.get(name).copied().unwrap_or(0));
        if delta != 0 {
            out.push((name.clone(), delta));
        }
    }
    for (name, &n) in old {
        if !new.contains_key(name) {
            out.push((name.clone(), -i64::from(n)));
        }
    }
    out
}

/// A publication's number in a cluster whose backplane numbers
/// publications ([`Backplane::sequences`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sequenced {
    /// Numbering generation: changes when the topic's shared numbering
    /// restarts (its shared history expired).
    pub epoch: u64,
    /// The publication's number within the epoch (from 1, no gaps).
    pub seq: u64,
}

/// One publication of a topic's shared history, for [`Hub::sync_topic`].
#[derive(Debug, Clone)]
pub struct SequencedEntry {
    /// Its number.
    pub seq: u64,
    /// The data.
    pub payload: Payload,
    /// The publisher's display name.
    pub from: Option<Arc<str>>,
    /// Publication time on the origin node, ms since the Unix epoch.
    pub timestamp_ms: u64,
}

/// What [`Hub::deliver_sequenced`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequencedOutcome {
    /// Delivered to the local subscribers and kept in history.
    Delivered,
    /// Nothing to do: already delivered, or no local subscriber.
    Ignored,
    /// Publications before this one are missing here, or the numbering
    /// restarted: nothing was delivered; the backplane should fetch the
    /// topic's shared history (which holds this publication) and give it
    /// with [`Hub::sync_topic`].
    NeedsSync,
}

#[derive(Default)]
struct ShardMap {
    topics: HashMap<Arc<str>, Arc<Topic>>,
    /// Idle topics, oldest first (may also hold topics that got busy again;
    /// they are skipped when popped).
    idle: VecDeque<Arc<Topic>>,
}

#[repr(align(128))] // keep shards on separate cache lines
#[derive(Default)]
struct Shard {
    map: RwLock<ShardMap>,
    /// Topics of this shard whose `TopicState::idle` is set.
    idle_count: AtomicUsize,
}

pub(crate) struct HubInner {
    pub(crate) config: HubConfig,
    shards: Box<[Shard]>,
    hasher: RandomState,
    idle_per_shard: usize,
    pub(crate) backplane: Arc<dyn Backplane>,
    /// `backplane.sequences()`, read once.
    sequenced: bool,
    /// The last topic epoch given (see `new_epoch`).
    last_epoch: AtomicU64,
    next_client_id: AtomicU64,
    pub(crate) clients: AtomicUsize,
    published: AtomicU64,
    delivered: AtomicU64,
    dropped_deliveries: AtomicU64,
    dropped_slow_consumers: AtomicU64,
    pub(crate) registry: Registry,
}

/// The pub/sub hub shared by every protocol. Cheap to clone (an `Arc`).
///
/// # Locking
///
/// There is no global lock on the message path. Topics live in `shards`
/// `RwLock<HashMap>`s; a publish takes its shard's read lock just long enough
/// to clone the topic's `Arc`, then the topic's own mutex while it assigns
/// the seq, appends to history and pushes into each subscriber's mailbox
/// (each push takes that mailbox's short lock). Lock order, always:
/// client subscriptions → shard → topic → mailbox.
///
/// # Topic lifetime
///
/// A topic is created by its first subscribe or publish. When it has no
/// subscriber left it becomes *idle*: it is kept (with its seq counter and
/// history, so a reconnecting client can still recover) until more than
/// [`HubConfig::max_idle_topics`] topics are idle; then the oldest idle ones
/// are removed (FIFO per shard, the limit being split evenly between
/// shards). A removed topic starts again at seq 1 if it is recreated.
#[derive(Clone)]
pub struct Hub {
    pub(crate) inner: Arc<HubInner>,
}

impl Hub {
    /// Creates a single-node hub ([`InMemoryBackplane`]).
    pub fn new(config: HubConfig) -> Hub {
        Self::with_backplane(config, Arc::new(InMemoryBackplane))
    }

    /// Creates a hub relaying its publications through `backplane`.
    pub fn with_backplane(config: HubConfig, backplane: Arc<dyn Backplane>) -> Hub {
        let n = config.shards.max(1).next_power_of_two();
        let shards = (0..n).map(|_| Shard::default()).collect();
        Hub {
            inner: Arc::new(HubInner {
                idle_per_shard: config.max_idle_topics.div_ceil(n),
                config,
                shards,
                hasher: RandomState::new(),
                sequenced: backplane.sequences(),
                last_epoch: AtomicU64::new(0),
                backplane,
                next_client_id: AtomicU64::new(1),
                clients: AtomicUsize::new(0),
                published: AtomicU64::new(0),
                delivered: AtomicU64::new(0),
                dropped_deliveries: AtomicU64::new(0),
                dropped_slow_consumers: AtomicU64::new(0),
                registry: Registry::default(),
            }),
        }
    }

    /// A non-owning handle on this hub: it does not keep the hub alive.
    ///
    /// For a [`Backplane`] whose network task delivers remote publications
    /// with [`deliver_remote`](Self::deliver_remote): the hub owns the
    /// backplane, so a backplane holding a `Hub` would keep both alive
    /// forever. Its task holds a `WeakHub` instead and stops once
    /// [`WeakHub::upgrade`] returns `None`.
    ///
    /// ```
    /// use switchboard_hub::{Hub, HubConfig, Payload};
    ///
    /// let hub = Hub::new(HubConfig::default());
    /// let weak = hub.downgrade();
    /// if let Some(hub) = weak.upgrade() {
    ///     hub.deliver_remote("chat", Payload::text("hi"), None, 0).unwrap();
    /// }
    /// assert_eq!(hub.last_seq("chat"), 1);
    /// drop(hub);
    /// assert!(weak.upgrade().is_none());
    /// ```
    pub fn downgrade(&self) -> WeakHub {
        WeakHub {
            inner: Arc::downgrade(&self.inner),
        }
    }

    /// The configuration the hub was built with.
    pub fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    /// The hub's backplane.
    pub fn backplane(&self) -> &Arc<dyn Backplane> {
        &self.inner.backplane
    }

    /// Registers a connection: allocates its id and its [`Mailbox`] (with the
    /// configured limits). Dropping the [`Client`] disconnects it.
    pub fn connect(&self, info: ClientInfo) -> Client {
        let inner = &self.inner;
        let id = ClientId(inner.next_client_id.fetch_add(1, Ordering::Relaxed));
        let mut mailbox = Mailbox::new(
            inner.config.mailbox_max_messages,
            inner.config.mailbox_max_bytes,
        );
        if !info.presence_events {
            mailbox = mailbox.without_presence();
        }
        let mailbox = Arc::new(mailbox);
        inner.clients.fetch_add(1, Ordering::Relaxed);
        Client::new(id, info, self.clone(), mailbox)
    }

    /// Publishes `payload` on `topic` (server-side: the authorize hook is not
    /// consulted). Delivers it to every local subscriber, appends it to the
    /// topic's history, relays it to the backplane, and returns its seq.
    /// Creates the topic (as idle) if it does not exist.
    pub fn publish(
        &self,
        topic: &str,
        payload: Payload,
        from: Option<Arc<str>>,
    ) -> Result<u64, HubError> {
        validate_topic(topic)?;
        Ok(self.inner.publish(topic, payload, from, now_ms(), true))
    }

    /// Delivers a publication that came from another node through the
    /// backplane: like [`publish`](Self::publish) (a local seq is assigned,
    /// history is appended) but it is **not** sent back to the backplane.
    /// `timestamp_ms` is the origin's timestamp.
    pub fn deliver_remote(
        &self,
        topic: &str,
        payload: Payload,
        from: Option<Arc<str>>,
        timestamp_ms: u64,
    ) -> Result<u64, HubError> {
        validate_topic(topic)?;
        Ok(self
            .inner
            .publish(topic, payload, from, timestamp_ms, false))
    }

    /// Delivers a publication numbered by a sequencing backplane
    /// ([`Backplane::sequences`]) to this node's subscribers of `topic`, with
    /// the cluster's number `num`, keeping the origin's timestamp and sender.
    /// Delivers only the next number of the topic; anything else is either
    /// already here ([`SequencedOutcome::Ignored`]) or shows a gap, which the
    /// backplane repairs with [`sync_topic`](Self::sync_topic)
    /// ([`SequencedOutcome::NeedsSync`], nothing delivered). Topics without
    /// a local subscriber are ignored.
    pub fn deliver_sequenced(
        &self,
        topic: &str,
        num: Sequenced,
        payload: Payload,
        from: Option<Arc<str>>,
        timestamp_ms: u64,
    ) -> Result<SequencedOutcome, HubError> {
        validate_topic(topic)?;
        let inner = &self.inner;
        let Some(t) = inner.lookup(topic) else {
            return Ok(SequencedOutcome::Ignored);
        };
        let started = Instant::now();
        let fan = {
            let mut st = t.state.lock();
            if st.dead || st.count == 0 {
                return Ok(SequencedOutcome::Ignored);
            }
            if st.synced {
                if st.epoch == 0 && st.seq == 0 && num.seq == 1 {
                    // The first numbering of a topic that had none.
                    st.epoch = num.epoch;
                }
                if st.epoch != num.epoch || num.seq > st.seq + 1 {
                    return Ok(SequencedOutcome::NeedsSync);
                }
                if num.seq <= st.seq {
                    return Ok(SequencedOutcome::Ignored);
                }
            } else {
                // The pending sync brings the history before it (and this
                // publication again if it belongs to another numbering).
                if (st.epoch != 0 && st.epoch != num.epoch) || num.seq <= st.seq {
                    return Ok(SequencedOutcome::Ignored);
                }
                st.epoch = num.epoch;
            }
            let p = Arc::new(Publication::new(
                t.name.clone(),
                num.seq,
                from,
                payload,
                timestamp_ms,
            ));
            st.seq = num.seq;
            st.history.push(p.clone());
            st.broadcast(&Delivery::Message(p), None)
        };
        inner.registry.fanout.observe(started.elapsed());
        inner.count_delivery(fan);
        Ok(SequencedOutcome::Delivered)
    }

    /// Gives this node the shared history of `topic` from a sequencing
    /// backplane: `entries` are the topic's last retained publications in
    /// numbering `epoch`, oldest first. History becomes `entries` (plus
    /// anything newer already here); entries newer than what this node
    /// delivered are delivered now, in order; then every subscribe that was
    /// waiting for the sync ([`Subscribed::pending`](crate::Subscribed::pending))
    /// gets its [`Delivery::CatchUp`]. A different `epoch` than the topic's
    /// means the numbering restarted (the shared history expired): the
    /// topic's history and numbering are replaced. No-op for a topic without
    /// a local subscriber.
    pub fn sync_topic(&self, topic: &str, epoch: u64, entries: Vec<SequencedEntry>) {
        let inner = &self.inner;
        let Some(t) = inner.lookup(topic) else { return };
        let mut st = t.state.lock();
        if st.dead || st.count == 0 {
            return;
        }
        if st.epoch != epoch {
            st.history.clear();
            st.seq = 0;
            st.epoch = epoch;
        }
        let entries: Vec<Arc<Publication>> = entries
            .into_iter()
            .map(|e| {
                Arc::new(Publication::new(
                    t.name.clone(),
                    e.seq,
                    e.from,
                    e.payload,
                    e.timestamp_ms,
                ))
            })
            .collect();
        st.history.merge(&entries);
        let mut fan = FanOut::default();
        for p in entries {
            if p.seq > st.seq {
                st.seq = p.seq;
                let f = st.broadcast(&Delivery::Message(p), None);
                fan.delivered += f.delivered;
                fan.dropped += f.dropped;
                fan.newly_slow += f.newly_slow;
            }
        }
        st.synced = true;
        inner.resolve_waiting(&t, &mut st);
        drop(st);
        inner.count_delivery(fan);
    }

    /// Marks `topic` synced without shared history (the backplane cannot
    /// get it, e.g. its subscription was refused): subscribes waiting for it
    /// are answered from this node's history.
    pub fn give_up_sync(&self, topic: &str) {
        let Some(t) = self.inner.lookup(topic) else {
            return;
        };
        let mut st = t.state.lock();
        if st.dead || st.synced {
            return;
        }
        st.synced = true;
        self.inner.resolve_waiting(&t, &mut st);
    }

    /// This node's subscribers of `topic` (names with connection counts),
    /// for a backplane to tell other nodes; `None` if it has none.
    pub fn local_presence(&self, topic: &str) -> Option<MemberCounts> {
        let t = self.inner.lookup(topic)?;
        let st = t.state.lock();
        (st.count > 0 && !st.dead).then(|| st.members.counts())
    }

    /// Records node `node`'s subscribers of `topic` as told by a backplane
    /// (`None`: it has none left), until `expires_ms` (ms since the Unix
    /// epoch; see [`expire_remote_presence`](Self::expire_remote_presence)).
    /// [`presence`](Self::presence) then counts them, and this node's
    /// subscribers get a join or leave event for each connection that came
    /// or went there. Ignored for a topic without local subscribers.
    pub fn set_remote_presence(
        &self,
        topic: &str,
        node: u64,
        members: Option<MemberCounts>,
        expires_ms: u64,
    ) {
        let Some(t) = self.inner.lookup(topic) else {
            return;
        };
        let fan = {
            let mut st = t.state.lock();
            if st.dead || st.count == 0 {
                return;
            }
            let i = st.remote.iter().position(|r| r.node == node);
            let old = i.map(|i| st.remote.swap_remove(i));
            let new = members.map(|m| RemoteMembers::new(node, m, expires_ms));
            let events = remote_events(old.as_ref(), new.as_ref());
            if let Some(new) = new.filter(|n| n.count > 0) {
                st.remote.push(new);
            }
            self.inner.presence_events(&t, &st, events)
        };
        self.inner.record_drops(fan);
    }

    /// Forgets other nodes' subscribers not told again before `now_ms` (a
    /// node that died), with leave events. A backplane calls it regularly.
    pub fn expire_remote_presence(&self, now_ms: u64) {
        for shard in self.inner.shards.iter() {
            let topics: Vec<Arc<Topic>> = shard.map.read().topics.values().cloned().collect();
            for t in topics {
                let mut st = t.state.lock();
                if st.remote.iter().all(|r| r.expires_ms > now_ms) {
                    continue;
                }
                let (gone, kept) = std::mem::take(&mut st.remote)
                    .into_iter()
                    .partition::<Vec<_>, _>(|r| r.expires_ms <= now_ms);
                st.remote = kept;
                let mut fan = FanOut::default();
                for old in &gone {
                    let f = self
                        .inner
                        .presence_events(&t, &st, remote_events(Some(old), None));
                    fan.dropped += f.dropped;
                    fan.newly_slow += f.newly_slow;
                }
                drop(st);
                self.inner.record_drops(fan);
            }
        }
    }

    /// Current subscribers of `topic` (empty if the topic does not exist).    /// Current subscribers of `topic` (empty if the topic does not exist).
    pub fn presence(&self, topic: &str) -> Presence {
        match self.inner.lookup(topic) {
            Some(t) => {
                let st = t.state.lock();
                st.presence()
            }
            None => Presence::default(),
        }
    }

    /// Retained publications of `topic` with `seq > since`. For an unknown
    /// topic: no messages, `complete` only if `since == 0`.
    pub fn history(&self, topic: &str, since: u64) -> HistoryRange {
        match self.inner.lookup(topic) {
            Some(t) => {
                let st = t.state.lock();
                st.history.since(since, st.seq)
            }
            None => HistoryRange {
                messages: Vec::new(),
                complete: since == 0,
            },
        }
    }

    /// Last seq assigned on `topic` (0 if none or unknown).
    pub fn last_seq(&self, topic: &str) -> u64 {
        self.inner.lookup(topic).map_or(0, |t| t.state.lock().seq)
    }

    /// Counters (each read independently, so not a consistent snapshot).
    pub fn stats(&self) -> HubStats {
        let i = &self.inner;
        HubStats {
            topics: i.shards.iter().map(|s| s.map.read().topics.len()).sum(),
            idle_topics: i
                .shards
                .iter()
                .map(|s| s.idle_count.load(Ordering::Relaxed))
                .sum(),
            clients: i.clients.load(Ordering::Relaxed),
            published: i.published.load(Ordering::Relaxed),
            delivered: i.delivered.load(Ordering::Relaxed),
            dropped_slow_consumers: i.dropped_slow_consumers.load(Ordering::Relaxed),
            dropped_deliveries: i.dropped_deliveries.load(Ordering::Relaxed),
        }
    }

    /// Connections and publications per protocol (`ClientInfo::protocol`),
    /// for every protocol seen since the hub started.
    pub fn protocol_stats(&self) -> Vec<ProtocolStats> {
        self.inner.registry.protocol_stats()
    }

    /// How long publications took to reach every local subscriber's mailbox.
    pub fn fanout_histogram(&self) -> FanoutSnapshot {
        self.inner.registry.fanout.snapshot()
    }

    /// Number of distinct authenticated users connected.
    pub fn user_count(&self) -> usize {
        self.inner.registry.users()
    }

    /// Disconnects every connection authenticated as `user`
    /// (`ClientInfo::user`): kicks their mailboxes ([`Mailbox::kick`]), and
    /// each transport closes its connection. Returns how many were kicked.
    pub fn disconnect_user(&self, user: &str) -> usize {
        self.inner.registry.disconnect_user(user)
    }

    /// Every topic in the map with its number of subscribers (0 for idle
    /// topics), in no particular order.
    pub fn topics(&self) -> Vec<(Arc<str>, usize)> {
        let mut out = Vec::new();
        for shard in self.inner.shards.iter() {
            let topics: Vec<Arc<Topic>> = shard.map.read().topics.values().cloned().collect();
            for t in topics {
                let st = t.state.lock();
                if !st.dead {
                    out.push((t.name.clone(), st.count));
                }
            }
        }
        out
    }
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub")
            .field("config", &self.inner.config)
            .field("stats", &self.stats())
            .finish()
    }
}

/// A non-owning handle on a [`Hub`], from [`Hub::downgrade`]: it does not
/// keep the hub (nor, therefore, its backplane) alive. Cheap to clone;
/// `WeakHub::default()` never upgrades.
#[derive(Clone, Default)]
pub struct WeakHub {
    inner: Weak<HubInner>,
}

impl WeakHub {
    /// The hub, if it still exists (some [`Hub`] or [`Client`] holds it).
    pub fn upgrade(&self) -> Option<Hub> {
        self.inner.upgrade().map(|inner| Hub { inner })
    }
}

impl fmt::Debug for WeakHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakHub")
            .field("alive", &(self.inner.strong_count() > 0))
            .finish()
    }
}

impl HubInner {
    fn shard(&self, name: &str) -> &Shard {
        let h = self.hasher.hash_one(name) as usize;
        &self.shards[h & (self.shards.len() - 1)]
    }

    pub(crate) fn lookup(&self, name: &str) -> Option<Arc<Topic>> {
        self.shard(name).map.read().topics.get(name).cloned()
    }

    fn get_or_create(&self, name: &str) -> (Arc<Topic>, bool) {
        let shard = self.shard(name);
        if let Some(t) = shard.map.read().topics.get(name) {
            return (t.clone(), false);
        }
        let mut map = shard.map.write();
        if let Some(t) = map.topics.get(name) {
            return (t.clone(), false);
        }
        // A numbering backplane gives the epoch; here it is the time of
        // creation (µs), above any epoch this process gave before, so a
        // client's `since` from an earlier incarnation of the topic (evicted,
        // or before a restart) is not taken for this one's.
        let epoch = if self.sequenced { 0 } else { self.new_epoch() };
        let history_size = if (self.config.keeps_history)(name) {
            self.config.history_size
        } else {
            0
        };
        let t = Arc::new(Topic::new(
            Arc::from(name),
            history_size,
            !self.sequenced,
            epoch,
        ));
        map.topics.insert(t.name.clone(), t.clone());
        (t, true)
    }

    /// Runs `f` once with the live (not removed) topic `name` locked,
    /// creating the topic if needed. Returns the topic, whether this call
    /// created it, and `f`'s result.
    pub(crate) fn with_live_topic<R>(
        &self,
        name: &str,
        f: impl FnOnce(&Arc<Topic>, &mut TopicState) -> R,
    ) -> (Arc<Topic>, bool, R) {
        let mut f = Some(f);
        loop {
            let (t, created) = self.get_or_create(name);
            let mut st = t.state.lock();
            if st.dead {
                continue; // removed between lookup and lock: look up again
            }
            let r = (f.take().expect("called once"))(&t, &mut st);
            drop(st);
            return (t, created, r);
        }
    }

    pub(crate) fn publish_local(
        &self,
        name: &str,
        payload: Payload,
        from: Option<Arc<str>>,
        timestamp_ms: u64,
    ) -> u64 {
        self.publish(name, payload, from, timestamp_ms, true)
    }

    fn publish(
        &self,
        name: &str,
        payload: Payload,
        from: Option<Arc<str>>,
        timestamp_ms: u64,
        local: bool,
    ) -> u64 {
        if local && self.sequenced {
            // Numbered and delivered everywhere (here too) by the backplane.
            let p = Publication::new(Arc::from(name), 0, from, payload, timestamp_ms);
            self.backplane.publish(&Arc::new(p));
            return 0;
        }
        let started = Instant::now();
        let (topic, created, (seq, fan, idle)) = self.with_live_topic(name, |t, st| {
            st.seq += 1;
            let p = Arc::new(Publication::new(
                t.name.clone(),
                st.seq,
                from,
                payload,
                timestamp_ms,
            ));
            st.history.push(p.clone());
            let fan = st.broadcast(&Delivery::Message(p.clone()), None);
            if local {
                self.backplane.publish(&p);
            }
            (st.seq, fan, st.count == 0)
        });
        self.registry.fanout.observe(started.elapsed());
        self.published.fetch_add(1, Ordering::Relaxed);
        self.delivered.fetch_add(fan.delivered, Ordering::Relaxed);
        self.record_drops(fan);
        if created && idle {
            self.park_idle(&topic);
        }
        seq
    }

    /// A numbering epoch: microseconds since the Unix epoch, strictly above
    /// every epoch given before by this hub (below 2^53: exact in JSON).
    fn new_epoch(&self) -> u64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_micros() as u64);
        let prev = self
            .last_epoch
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| {
                Some(now.max(p + 1))
            })
            .expect("always Some");
        now.max(prev + 1)
    }

    /// Counts one delivered publication's fan-out.
    fn count_delivery(&self, fan: FanOut) {
        self.published.fetch_add(1, Ordering::Relaxed);
        self.delivered.fetch_add(fan.delivered, Ordering::Relaxed);
        self.record_drops(fan);
    }

    /// Delivers join/leave events (`(name, +n or -n connections)`) to the
    /// local subscribers of `t` (topic locked), if presence events are on.
    fn presence_events(&self, t: &Topic, st: &TopicState, events: Vec<(Arc<str>, i64)>) -> FanOut {
        let mut fan = FanOut::default();
        if !self.config.presence_events || events.is_empty() {
            return fan;
        }
        let count = st.presence_count();
        for (name, delta) in events {
            let kind = if delta > 0 {
                crate::presence::PresenceKind::Join
            } else {
                crate::presence::PresenceKind::Leave
            };
            let ev = Arc::new(crate::presence::PresenceEvent {
                topic: t.name.clone(),
                kind,
                name,
                count,
            });
            for _ in 0..delta.unsigned_abs().min(64) {
                let f = st.broadcast(&Delivery::Presence(ev.clone()), None);
                fan.dropped += f.dropped;
                fan.newly_slow += f.newly_slow;
            }
        }
        fan
    }

    /// Answers every subscribe of `t` waiting for its sync (topic locked).
    fn resolve_waiting(&self, t: &Topic, st: &mut TopicState) {
        for (mailbox, since) in st.take_waiting() {
            let (replay, recovered) = st.catch_up(since);
            let catch_up = crate::mailbox::CatchUp {
                topic: t.name.clone(),
                since: since.seq,
                subscribed: crate::Subscribed {
                    last_seq: st.seq,
                    epoch: st.epoch,
                    replay,
                    recovered,
                    presence: st.presence(),
                    already_subscribed: false,
                    pending: false,
                },
            };
            let _ = mailbox.push(Delivery::CatchUp(Arc::new(catch_up)));
        }
    }

    pub(crate) fn record_drops(&self, fan: FanOut) {
        if fan.dropped > 0 {
            self.dropped_deliveries
                .fetch_add(fan.dropped, Ordering::Relaxed);
        }
        if fan.newly_slow > 0 {
            self.dropped_slow_consumers
                .fetch_add(fan.newly_slow, Ordering::Relaxed);
        }
    }

    /// Called (topic locked) when a topic goes from 0 to 1 subscriber.
    pub(crate) fn topic_became_busy(&self, topic: &Topic, st: &mut TopicState) {
        if self.sequenced {
            // Not received while closed here: history to be synced again.
            st.synced = false;
        }
        if st.idle {
            st.idle = false;
            self.shard(&topic.name)
                .idle_count
                .fetch_sub(1, Ordering::Relaxed);
        }
        self.backplane.topic_opened(&topic.name);
    }

    /// Marks a subscriber-less topic idle and evicts the oldest idle topics
    /// of its shard beyond the limit. Called with no topic lock held.
    pub(crate) fn park_idle(&self, topic: &Arc<Topic>) {
        let shard = self.shard(&topic.name);
        let mut map = shard.map.write();
        {
            let mut st = topic.state.lock();
            if st.dead || st.count > 0 || st.idle {
                return;
            }
            st.idle = true;
            shard.idle_count.fetch_add(1, Ordering::Relaxed);
            if !st.idle_queued {
                st.idle_queued = true;
                map.idle.push_back(topic.clone());
            }
        }
        while shard.idle_count.load(Ordering::Relaxed) > self.idle_per_shard {
            // Every idle topic is in the queue, so this finds one.
            let Some(t) = map.idle.pop_front() else { break };
            let mut st = t.state.lock();
            st.idle_queued = false;
            if st.idle {
                st.idle = false;
                st.dead = true;
                shard.idle_count.fetch_sub(1, Ordering::Relaxed);
                drop(st);
                if map.topics.get(&t.name).is_some_and(|x| Arc::ptr_eq(x, &t)) {
                    map.topics.remove(&t.name);
                }
            }
        }
        if map.idle.is_empty() && map.idle.capacity() > 64 {
            map.idle = VecDeque::new();
        }
    }

    /// Removes a subscription (from `Client::unsubscribe` or `Drop`).
    pub(crate) fn leave(&self, topic: &Arc<Topic>, slot: u32, id: ClientId, info: &ClientInfo) {
        let (count, fan) = {
            let mut st = topic.state.lock();
            if !st.remove_subscriber(slot, id) {
                return;
            }
            st.members.remove(&info.name);
            self.backplane.presence_changed(&topic.name);
            let count = st.count;
            let mut fan = FanOut::default();
            if count == 0 {
                // Not told about other nodes any more once closed here.
                st.remote = Vec::new();
                self.backplane.topic_closed(&topic.name);
            } else if self.config.presence_events {
                let ev = crate::presence::PresenceEvent {
                    topic: topic.name.clone(),
                    kind: crate::presence::PresenceKind::Leave,
                    name: info.name.clone(),
                    count: st.presence_count(),
                };
                fan = st.broadcast(&Delivery::Presence(Arc::new(ev)), None);
            }
            (count, fan)
        };
        self.record_drops(fan);
        if count == 0 {
            self.park_idle(topic);
        }
    }

    pub(crate) fn client_gone(&self) {
        self.clients.fetch_sub(1, Ordering::Relaxed);
    }
}
