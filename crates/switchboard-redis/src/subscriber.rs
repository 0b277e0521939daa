//! The subscriber link: one RESP2 pub/sub connection that keeps Redis'
//! subscriptions equal to the open topics (`SUBSCRIBE`/`UNSUBSCRIBE` in
//! batches, everything again after a reconnect) and hands every message to
//! the hub with `Hub::deliver_remote`, after dropping echoes of this node's
//! own publications and anything malformed.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use redis::aio::{MultiplexedConnection, PubSub, PubSubSink};
use redis::{RedisError, RedisResult};
use switchboard_hub::{now_ms, validate_topic, Payload, Sequenced, SequencedOutcome, WeakHub};

use crate::backplane::Shared;
use crate::link::{End, LinkKind, Session};
use crate::topics::Plan;
use crate::{history, presence, wire};

/// Most channels in one `SUBSCRIBE`/`UNSUBSCRIBE`.
const MAX_CHANNELS_PER_COMMAND: usize = 256;

pub(crate) struct Subscriber {
    hub: WeakHub,
    /// With shared history: the connection that reads topics' retained
    /// history (a pub/sub connection cannot), opened with the pub/sub one.
    reader: Option<MultiplexedConnection>,
}

/// What became of one message.
enum Handled {
    Done,
    /// The hub is gone.
    Stop,
    /// A gap or a restarted numbering on this topic: sync it.
    Sync(String),
}

impl Subscriber {
    pub(crate) fn new(hub: WeakHub) -> Self {
        Subscriber { hub, reader: None }
    }

    /// Reads each topic's retained shared history and gives it to the hub
    /// (`Hub::sync_topic`): the history a new subscriber with `since`
    /// waits for, and whatever this node missed (a gap, an outage) within
    /// what Redis retained. `Err`: the connection is lost.
    async fn sync(&mut self, shared: &Shared, topics: &[Arc<str>]) -> Result<bool, String> {
        let Some(conn) = self.reader.as_mut() else {
            return Ok(true);
        };
        let timeout = shared.config.command_timeout();
        let prefix = &shared.config.prefix;
        for topic in topics {
            let reports =
                match tokio::time::timeout(timeout, presence::fetch(conn, prefix, topic)).await {
                    Ok(Ok(r)) => r,
                    Ok(Err(e)) => return Err(format!("reading the presence of {topic:?}: {e}")),
                    Err(_) => return Err(format!("reading the presence of {topic:?} timed out")),
                };
            let retained = if shared.config.shared_history {
                let read = history::fetch(conn, prefix, topic, shared.history_size());
                match tokio::time::timeout(timeout, read).await {
                    Ok(Ok(r)) => Some(r),
                    Ok(Err(e)) => return Err(format!("reading the history of {topic:?}: {e}")),
                    Err(_) => return Err(format!("reading the history of {topic:?} timed out")),
                }
            } else {
                None
            };
            let Some(hub) = self.hub.upgrade() else {
                return Ok(false);
            };
            for (node, members, expires) in reports {
                if node != shared.node_id {
                    hub.set_remote_presence(topic, node, Some(members), expires);
                }
            }
            if let Some(retained) = retained {
                if retained.malformed > 0 {
                    malformed(shared, topic.as_bytes(), "unreadable history entries");
                }
                shared.stats.synced.fetch_add(1, Relaxed);
                hub.sync_topic(topic, retained.epoch, retained.entries);
            }
        }
        Ok(true)
    }

    /// Tells Redis (and through it the other nodes) who subscribes here to
    /// `topics`. `Err`: the connection is lost.
    async fn report(&mut self, shared: &Shared, topics: &[Arc<str>]) -> Result<bool, String> {
        let Some(conn) = self.reader.as_mut() else {
            return Ok(true);
        };
        let report = presence::report(shared, &self.hub, conn, topics);
        match tokio::time::timeout(shared.config.command_timeout(), report).await {
            Ok(Ok(alive)) => Ok(alive),
            Ok(Err(e)) => Err(format!("reporting presence: {e}")),
            Err(_) => Err("reporting presence timed out".into()),
        }
    }

    /// Sends `plan` to Redis and records what it confirmed. A chunk that
    /// Redis refuses (an error reply, e.g. an ACL denying a channel) is
    /// retried topic by topic, and the refused topics are skipped (until
    /// they are reopened or the link reconnects), so that one forbidden
    /// channel does not cut the node off. `Err` means the connection is lost.
    ///
    /// With shared history, topics newly subscribed (once Redis confirmed,
    /// so that nothing falls between) and those reopened are synced; those
    /// refused are given up (`Hub::give_up_sync`). `Ok(false)`: the hub is gone.
    async fn apply(
        &mut self,
        shared: &Shared,
        sink: &mut PubSubSink,
        plan: Plan,
    ) -> Result<bool, String> {
        let mut to_sync = plan.sync;
        let mut given_up = Vec::new();
        for (topics, subscribe) in [(plan.subscribe, true), (plan.unsubscribe, false)] {
            for chunk in topics.chunks(MAX_CHANNELS_PER_COMMAND) {
                match command(shared, sink, chunk, subscribe).await? {
                    None => {
                        shared.topics.confirmed(chunk, subscribe);
                        if subscribe {
                            to_sync.extend_from_slice(chunk);
                        }
                    }
                    Some(_) if chunk.len() > 1 => {
                        for topic in chunk.chunks(1) {
                            match command(shared, sink, topic, subscribe).await? {
                                None => {
                                    shared.topics.confirmed(topic, subscribe);
                                    if subscribe {
                                        to_sync.extend_from_slice(topic);
                                    }
                                }
                                Some(e) => {
                                    refused(&topic[0], subscribe, &e);
                                    given_up.push(topic[0].clone());
                                }
                            }
                        }
                    }
                    Some(e) => {
                        refused(&chunk[0], subscribe, &e);
                        given_up.extend_from_slice(chunk);
                    }
                }
            }
        }
        if self.reader.is_some() {
            if let Some(hub) = self.hub.upgrade() {
                for topic in &given_up {
                    hub.give_up_sync(topic);
                }
            }
        }
        self.sync(shared, &to_sync).await
    }

    /// Delivers one message.
    fn handle(&self, shared: &Shared, msg: &redis::Msg) -> Handled {
        let stats = &shared.stats;
        let channel = msg.get_channel::<Vec<u8>>().unwrap_or_default();
        let topic = channel
            .strip_prefix(shared.channel_prefix.as_bytes())
            .and_then(|t| std::str::from_utf8(t).ok());
        let payload = msg.get_payload_bytes();
        if let (Some(topic), Some(b'P')) = (topic, payload.first()) {
            return self.presence_report(shared, &channel, topic, payload);
        }
        let decoded = match topic {
            Some(topic) => wire::decode_numbered(payload)
                .and_then(|n| match n {
                    Some((epoch, seq, m)) => Ok((Some(Sequenced { epoch, seq }), m)),
                    None => wire::decode(payload).map(|m| (None, m)),
                })
                .map(|(num, m)| (topic, num, m))
                .map_err(|e| e.to_string()),
            None => Err("unexpected channel".to_owned()),
        };
        let (topic, num, m) = match decoded {
            Ok(ok) => ok,
            Err(error) => {
                malformed(shared, &channel, &error);
                return Handled::Done;
            }
        };
        // Numbered publications come back to their origin too: that is how
        // it delivers its own.
        let echo = num.is_none() && m.node_id == shared.node_id;
        if echo || !shared.topics.is_open(topic) {
            stats.ignored.fetch_add(1, Relaxed);
            return Handled::Done;
        }
        let Some(hub) = self.hub.upgrade() else {
            return Handled::Stop;
        };
        if let Err(e) = validate_topic(topic) {
            malformed(shared, &channel, &e.to_string());
            return Handled::Done;
        }
        // Counted before delivery, so that whoever sees the message sees it counted.
        stats.received.fetch_add(1, Relaxed);
        stats.record_lag(now_ms().saturating_sub(m.timestamp_ms));
        let payload = Payload::new(m.kind, Bytes::copy_from_slice(m.data));
        let from = m.from.map(Arc::from);
        let delivered = match num {
            Some(num) => hub.deliver_sequenced(topic, num, payload, from, m.timestamp_ms),
            None => hub
                .deliver_remote(topic, payload, from, m.timestamp_ms)
                .map(|_| SequencedOutcome::Delivered),
        };
        match delivered {
            Ok(SequencedOutcome::NeedsSync) => Handled::Sync(topic.to_owned()),
            Ok(_) => Handled::Done,
            Err(e) => {
                tracing::warn!(%topic, "redis backplane: the hub refused a remote publication: {e}");
                Handled::Done
            }
        }
    }
}

impl Subscriber {
    /// Another node's presence report on `topic`, into the hub.
    fn presence_report(
        &self,
        shared: &Shared,
        channel: &[u8],
        topic: &str,
        payload: &[u8],
    ) -> Handled {
        let (node, expires, members) = match wire::decode_presence(payload) {
            Ok(Some(r)) => r,
            Ok(None) => return Handled::Done,
            Err(e) => {
                malformed(shared, channel, &e.to_string());
                return Handled::Done;
            }
        };
        if node == shared.node_id || !shared.topics.is_open(topic) {
            return Handled::Done;
        }
        let Some(hub) = self.hub.upgrade() else {
            return Handled::Stop;
        };
        hub.set_remote_presence(topic, node, members, expires);
        Handled::Done
    }
}

/// One `SUBSCRIBE` (or `UNSUBSCRIBE`) of `topics`: `Ok(None)` when
/// confirmed, `Ok(Some(error))` when Redis refused it, `Err` when the
/// connection is lost.
async fn command(
    shared: &Shared,
    sink: &mut PubSubSink,
    topics: &[Arc<str>],
    subscribe: bool,
) -> Result<Option<RedisError>, String> {
    let channels: Vec<String> = topics
        .iter()
        .map(|t| format!("{}{t}", shared.channel_prefix))
        .collect();
    let timeout = shared.config.command_timeout();
    let (verb, result) = if subscribe {
        let r = tokio::time::timeout(timeout, sink.subscribe(channels)).await;
        ("SUBSCRIBE", r)
    } else {
        let r = tokio::time::timeout(timeout, sink.unsubscribe(channels)).await;
        ("UNSUBSCRIBE", r)
    };
    match result {
        Ok(Ok(())) => Ok(None),
        Ok(Err(e))
            if e.is_unrecoverable_error() || e.is_io_error() || e.is_connection_dropped() =>
        {
            Err(format!("{verb}: {e}"))
        }
        Ok(Err(e)) => Ok(Some(e)),
        Err(_) => Err(format!("{verb} timed out")),
    }
}

fn refused(topic: &str, subscribe: bool, error: &RedisError) {
    if subscribe {
        tracing::warn!(
            %topic,
            "redis backplane: SUBSCRIBE refused ({error}); remote publications on this topic \
             do not arrive here"
        );
    } else {
        tracing::warn!(%topic, "redis backplane: UNSUBSCRIBE refused ({error})");
    }
}

/// Counts a malformed message and logs it (the 1st, 2nd, 4th, 8th… at warn
/// level, so that a flood does not flood the log).
fn malformed(shared: &Shared, channel: &[u8], error: &str) {
    let n = shared.stats.decode_errors.fetch_add(1, Relaxed) + 1;
    let channel = String::from_utf8_lossy(channel);
    if n.is_power_of_two() {
        tracing::warn!(%channel, decode_errors = n, "redis backplane: malformed message dropped: {error}");
    } else {
        tracing::debug!(%channel, decode_errors = n, "malformed message dropped: {error}");
    }
}

impl Session for Subscriber {
    type Conn = PubSub;
    const KIND: LinkKind = LinkKind::Subscriber;

    async fn connect(&mut self, shared: &Shared) -> RedisResult<PubSub> {
        self.reader = None;
        let conn = shared
            .client
            .get_multiplexed_async_connection_with_config(&shared.config.connection())
            .await?;
        self.reader = Some(conn);
        shared.client.get_async_pubsub().await
    }

    async fn run(&mut self, shared: &Shared, conn: PubSub) -> End {
        let (mut sink, mut stream) = conn.split();
        shared.topics.connected();
        let timeout = shared.config.command_timeout();
        let ping_every = shared.config.ping_interval();
        let mut refresh = tokio::time::interval(shared.config.presence_refresh());
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // What changed while disconnected is reported with everything else.
        shared.presence_dirty.lock().clear();
        loop {
            let plan = shared.topics.plan();
            if !plan.is_empty() {
                match self.apply(shared, &mut sink, plan).await {
                    Ok(true) => {}
                    Ok(false) => return End::Stop,
                    Err(reason) => return End::Lost(reason),
                }
                continue;
            }
            let idle = async {
                match ping_every {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(msg) => match self.handle(shared, &msg) {
                        Handled::Done => {}
                        Handled::Stop => return End::Stop,
                        Handled::Sync(topic) => {
                            shared.stats.gaps.fetch_add(1, Relaxed);
                            match self.sync(shared, &[Arc::from(topic)]).await {
                                Ok(true) => {}
                                Ok(false) => return End::Stop,
                                Err(reason) => return End::Lost(reason),
                            }
                        }
                    },
                    None => return End::Lost("connection closed".into()),
                },
                _ = shared.topics.changed() => {}
                _ = shared.presence_changed.notified() => {
                    let dirty: Vec<Arc<str>> = shared.presence_dirty.lock().drain().collect();
                    match self.report(shared, &dirty).await {
                        Ok(true) => {}
                        Ok(false) => return End::Stop,
                        Err(reason) => return End::Lost(reason),
                    }
                }
                _ = refresh.tick() => {
                    let Some(hub) = self.hub.upgrade() else { return End::Stop };
                    hub.expire_remote_presence(now_ms());
                    drop(hub);
                    let open = shared.topics.open_topics();
                    match self.report(shared, &open).await {
                        Ok(true) => {}
                        Ok(false) => return End::Stop,
                        Err(reason) => return End::Lost(reason),
                    }
                }
                _ = idle => {
                    match tokio::time::timeout(timeout, sink.ping::<redis::Value>()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return End::Lost(format!("PING: {e}")),
                        Err(_) => return End::Lost("PING timed out".into()),
                    }
                }
            }
        }
    }

    fn disconnected(&mut self, shared: &Shared) {
        shared.topics.disconnected();
    }
}
