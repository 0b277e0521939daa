//! The subscriber link: one RESP2 pub/sub connection that keeps Redis'
//! subscriptions equal to the open topics (`SUBSCRIBE`/`UNSUBSCRIBE` in
//! batches, everything again after a reconnect) and hands every message to
//! the hub with `Hub::deliver_remote`, after dropping echoes of this node's
//! own publications and anything malformed.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use redis::aio::{PubSub, PubSubSink};
use redis::{RedisError, RedisResult};
use switchboard_hub::{now_ms, validate_topic, Payload, WeakHub};

use crate::backplane::Shared;
use crate::link::{End, LinkKind, Session};
use crate::topics::Plan;
use crate::wire;

/// Most channels in one `SUBSCRIBE`/`UNSUBSCRIBE`.
const MAX_CHANNELS_PER_COMMAND: usize = 256;

pub(crate) struct Subscriber {
    hub: WeakHub,
}

impl Subscriber {
    pub(crate) fn new(hub: WeakHub) -> Self {
        Subscriber { hub }
    }

    /// Sends `plan` to Redis and records what it confirmed. A chunk that
    /// Redis refuses (an error reply, e.g. an ACL denying a channel) is
    /// retried topic by topic, and the refused topics are skipped (until
    /// they are reopened or the link reconnects), so that one forbidden
    /// channel does not cut the node off. `Err` means the connection is lost.
    async fn apply(
        &self,
        shared: &Shared,
        sink: &mut PubSubSink,
        plan: Plan,
    ) -> Result<(), String> {
        for (topics, subscribe) in [(plan.subscribe, true), (plan.unsubscribe, false)] {
            for chunk in topics.chunks(MAX_CHANNELS_PER_COMMAND) {
                match command(shared, sink, chunk, subscribe).await? {
                    None => shared.topics.confirmed(chunk, subscribe),
                    Some(_) if chunk.len() > 1 => {
                        for topic in chunk.chunks(1) {
                            match command(shared, sink, topic, subscribe).await? {
                                None => shared.topics.confirmed(topic, subscribe),
                                Some(e) => refused(&topic[0], subscribe, &e),
                            }
                        }
                    }
                    Some(e) => refused(&chunk[0], subscribe, &e),
                }
            }
        }
        Ok(())
    }

    /// Delivers one message; `false` once the hub is gone.
    fn handle(&self, shared: &Shared, msg: &redis::Msg) -> bool {
        let stats = &shared.stats;
        let channel = msg.get_channel::<Vec<u8>>().unwrap_or_default();
        let topic = channel
            .strip_prefix(shared.channel_prefix.as_bytes())
            .and_then(|t| std::str::from_utf8(t).ok());
        let decoded = match topic {
            Some(topic) => wire::decode(msg.get_payload_bytes())
                .map(|m| (topic, m))
                .map_err(|e| e.to_string()),
            None => Err("unexpected channel".to_owned()),
        };
        let (topic, m) = match decoded {
            Ok(ok) => ok,
            Err(error) => {
                malformed(shared, &channel, &error);
                return true;
            }
        };
        if m.node_id == shared.node_id || !shared.topics.is_open(topic) {
            stats.ignored.fetch_add(1, Relaxed);
            return true;
        }
        let Some(hub) = self.hub.upgrade() else {
            return false;
        };
        if let Err(e) = validate_topic(topic) {
            malformed(shared, &channel, &e.to_string());
            return true;
        }
        // Counted before delivery, so that whoever sees the message sees it counted.
        stats.received.fetch_add(1, Relaxed);
        stats.record_lag(now_ms().saturating_sub(m.timestamp_ms));
        let payload = Payload::new(m.kind, Bytes::copy_from_slice(m.data));
        if let Err(e) = hub.deliver_remote(topic, payload, m.from.map(Arc::from), m.timestamp_ms) {
            tracing::warn!(%topic, "redis backplane: the hub refused a remote publication: {e}");
        }
        true
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
        shared.client.get_async_pubsub().await
    }

    async fn run(&mut self, shared: &Shared, conn: PubSub) -> End {
        let (mut sink, mut stream) = conn.split();
        shared.topics.connected();
        let timeout = shared.config.command_timeout();
        let ping_every = shared.config.ping_interval();
        loop {
            let plan = shared.topics.plan();
            if !plan.is_empty() {
                if let Err(reason) = self.apply(shared, &mut sink, plan).await {
                    return End::Lost(reason);
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
                    Some(msg) => {
                        if !self.handle(shared, &msg) {
                            return End::Stop;
                        }
                    }
                    None => return End::Lost("connection closed".into()),
                },
                _ = shared.topics.changed() => {}
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
