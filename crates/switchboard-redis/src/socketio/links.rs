//! The Socket.IO cluster's two Redis links, run by the crate's
//! [`supervise`](crate::link::supervise) (connect, reconnect with backoff):
//! the *publisher* drains the outgoing queue in order and sends it as
//! pipelined `PUBLISH`es, each message written straight into the command
//! buffer (the packet bytes are copied once, there); the *subscriber*
//! subscribes to the common channel and this node's own, says HELLO once
//! subscribed (after every reconnect too), catches up on the recorded
//! events it missed while it was down ([`resync`](super::resync)), then
//! hands each message to [`apply`](super::apply). Also the links' shared
//! state (`connected`, `reconnects`) and what an outage is logged as.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use redis::aio::{MultiplexedConnection, PubSub};
use redis::{RedisResult, RedisWrite, ToRedisArgs};
use tokio::sync::mpsc;

use super::cluster::Shared;
use super::wire::{self, Body};
use super::{apply, resync};
use crate::link::{End, Host, LinkKind, Session};

/// Most messages in one pipeline.
const MAX_BATCH: usize = 256;

/// What waits for the publisher.
pub(crate) struct Outgoing {
    pub(crate) op: Op,
    /// Bytes it is accounted as in the queue.
    pub(crate) cost: usize,
}

/// One queued write.
pub(crate) enum Op {
    /// `PUBLISH channel message`.
    Publish {
        channel: Arc<str>,
        message: wire::Message,
    },
    /// A RECORDED message (connection state recovery across nodes):
    /// numbered, kept in `stream` and published on the common channel by
    /// one call of [`RECORD_SCRIPT`](super::recovery::RECORD_SCRIPT).
    Record {
        stream: String,
        message: wire::Message,
    },
    /// Session writes of connection state recovery (in the queue's order,
    /// with the records).
    Commands(Vec<redis::Cmd>),
}

/// Both links' states.
#[derive(Debug, Default)]
pub(crate) struct LinkStates {
    publisher: bool,
    subscriber: bool,
    ever_connected: bool,
    outage: Option<(Instant, u64)>,
}

impl Host for Shared {
    const NAME: &'static str = "socket.io cluster";

    fn config(&self) -> &crate::RedisConfig {
        &self.config
    }

    fn link_up(&self, kind: LinkKind) {
        let mut st = self.links.lock();
        match kind {
            LinkKind::Publisher => st.publisher = true,
            LinkKind::Subscriber => st.subscriber = true,
        }
        tracing::debug!(
            link = kind.name(),
            "socket.io cluster: redis link connected"
        );
        if !(st.publisher && st.subscriber) {
            return;
        }
        self.stats.connected.store(true, Relaxed);
        let redis = crate::config::redact(&self.config.url);
        if !st.ever_connected {
            st.ever_connected = true;
            tracing::info!(%redis, "socket.io cluster connected");
            return;
        }
        self.stats.reconnects.fetch_add(1, Relaxed);
        if let Some((since, dropped)) = st.outage.take() {
            let dropped = self.stats.dropped.load(Relaxed) - dropped;
            tracing::warn!(
                %redis,
                outage = ?since.elapsed(),
                dropped,
                "socket.io cluster reconnected: what other nodes broadcast meanwhile did not \
                 arrive here and cannot be recovered (recorded events aside: those are read \
                 back); {dropped} messages of this node were dropped (queue full)"
            );
        }
    }

    fn link_down(&self, kind: LinkKind, reason: &str) {
        let mut st = self.links.lock();
        let was_connected = st.publisher && st.subscriber;
        match kind {
            LinkKind::Publisher => st.publisher = false,
            LinkKind::Subscriber => st.subscriber = false,
        }
        self.stats.connected.store(false, Relaxed);
        if !was_connected {
            tracing::debug!(
                link = kind.name(),
                "socket.io cluster: redis link lost: {reason}"
            );
            return;
        }
        st.outage = Some((Instant::now(), self.stats.dropped.load(Relaxed)));
        tracing::warn!(
            redis = %crate::config::redact(&self.config.url),
            link = kind.name(),
            "socket.io cluster lost its redis connection ({reason}); until it is back, other \
             nodes' broadcasts do not arrive here (and are lost for good, except recorded \
             events, read back then), this node's are queued (up to {} messages), and \
             requests only see the nodes still heard from",
            self.config.max_queued_messages
        );
    }

    fn link_stopped(&self, kind: LinkKind) {
        let mut st = self.links.lock();
        match kind {
            LinkKind::Publisher => st.publisher = false,
            LinkKind::Subscriber => st.subscriber = false,
        }
        self.stats.connected.store(false, Relaxed);
        tracing::debug!(link = kind.name(), "socket.io cluster: redis link stopped");
    }
}

/// Sends the outgoing queue.
pub(crate) struct Publisher {
    rx: mpsc::UnboundedReceiver<Outgoing>,
    batch: Vec<Outgoing>,
    /// The batch failed on a connection found dead: sent again, once.
    retrying: bool,
    /// SHA1 of the record script, loaded on the current connection.
    script: String,
}

impl Publisher {
    pub(crate) fn new(rx: mpsc::UnboundedReceiver<Outgoing>) -> Self {
        Publisher {
            rx,
            batch: Vec::new(),
            retrying: false,
            script: String::new(),
        }
    }

    /// Waits for messages and takes a batch (pinging Redis while idle).
    /// `Ok(false)`: the cluster is gone; `Err`: the connection failed.
    async fn fill(
        &mut self,
        shared: &Shared,
        conn: &mut MultiplexedConnection,
    ) -> Result<bool, End> {
        let timeout = shared.config.command_timeout();
        loop {
            let next = match shared.config.ping_interval() {
                Some(idle) => tokio::time::timeout(idle, self.rx.recv()).await.ok(),
                None => Some(self.rx.recv().await),
            };
            let first = match next {
                Some(Some(m)) => m,
                Some(None) => return Ok(false),
                None => {
                    let ping = redis::cmd("PING");
                    let pong = ping.query_async::<redis::Value>(conn);
                    match tokio::time::timeout(timeout, pong).await {
                        Ok(Ok(_)) => continue,
                        Ok(Err(e)) => return Err(End::Lost(format!("PING: {e}"))),
                        Err(_) => return Err(End::Lost("PING timed out".into())),
                    }
                }
            };
            shared.outbox.taken_item(first.cost);
            self.batch.push(first);
            while self.batch.len() < MAX_BATCH {
                let Ok(m) = self.rx.try_recv() else { break };
                shared.outbox.taken_item(m.cost);
                self.batch.push(m);
            }
            return Ok(true);
        }
    }
}

impl Session<Shared> for Publisher {
    type Conn = MultiplexedConnection;
    const KIND: LinkKind = LinkKind::Publisher;

    async fn connect(&mut self, shared: &Shared) -> RedisResult<MultiplexedConnection> {
        let mut conn = shared
            .client
            .get_multiplexed_async_connection_with_config(&shared.config.connection())
            .await?;
        let mut load = redis::cmd("SCRIPT");
        load.arg("LOAD").arg(super::recovery::RECORD_SCRIPT);
        let load = load.query_async::<String>(&mut conn);
        match tokio::time::timeout(shared.config.command_timeout(), load).await {
            Ok(sha) => self.script = sha?,
            Err(_) => {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "SCRIPT LOAD timed out",
                )))
            }
        }
        Ok(conn)
    }

    async fn run(&mut self, shared: &Shared, mut conn: MultiplexedConnection) -> End {
        let timeout = shared.config.command_timeout();
        loop {
            if self.batch.is_empty() {
                match self.fill(shared, &mut conn).await {
                    Ok(true) => {}
                    Ok(false) => return End::Stop,
                    Err(end) => return end,
                }
            } else {
                // The batch held from a dead connection leaves the queue again.
                for m in &self.batch {
                    shared.outbox.taken_item(m.cost);
                }
            }
            let mut pipe = redis::pipe();
            pipe.ignore_errors(); // one result per PUBLISH, error replies included
            let mut n = 0;
            for m in &self.batch {
                match &m.op {
                    Op::Publish { channel, message } => {
                        pipe.cmd("PUBLISH").arg(&**channel).arg(Wire(message));
                        n += 1;
                    }
                    Op::Record { stream, message } => {
                        let keep = shared.recovery_config();
                        pipe.cmd("EVALSHA")
                            .arg(&self.script)
                            .arg(1)
                            .arg(stream)
                            .arg(&*shared.channel)
                            .arg(keep.max_packets.max(1))
                            .arg(keep.max_disconnection_duration.as_millis().max(1) as u64)
                            .arg(Wire(message));
                        n += 1;
                    }
                    Op::Commands(cmds) => {
                        for c in cmds {
                            pipe.add_command(c.clone());
                            n += 1;
                        }
                    }
                }
            }
            let query = pipe.query_async::<Vec<RedisResult<redis::Value>>>(&mut conn);
            let stats = &shared.stats;
            match tokio::time::timeout(timeout, query).await {
                Ok(Ok(results)) => {
                    self.batch.clear();
                    self.retrying = false;
                    let refused = results.iter().filter(|r| r.is_err()).count() as u64;
                    stats.published.fetch_add(n - refused, Relaxed);
                    stats.publish_errors.fetch_add(refused, Relaxed);
                    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
                        tracing::warn!(refused, "socket.io cluster: PUBLISH refused: {e}");
                    }
                }
                Ok(Err(e)) if !self.retrying && (e.is_connection_dropped() || e.is_io_error()) => {
                    self.retrying = true;
                    for m in &self.batch {
                        shared.outbox.returned_item(m.cost);
                    }
                    return End::Lost(format!("PUBLISH: {e} (the batch is sent again)"));
                }
                Ok(Err(e)) => {
                    self.batch.clear();
                    self.retrying = false;
                    stats.publish_errors.fetch_add(n, Relaxed);
                    return End::Lost(format!("PUBLISH: {e}"));
                }
                Err(_) => {
                    self.batch.clear();
                    self.retrying = false;
                    stats.publish_errors.fetch_add(n, Relaxed);
                    return End::Lost("PUBLISH timed out".into());
                }
            }
        }
    }
}

/// An encoded message as one argument, written in place.
struct Wire<'a>(&'a wire::Message);

impl ToRedisArgs for Wire<'_> {
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        let _ = self.0.write_to(&mut out.writer_for_next_arg());
    }
}

/// Holds the subscriptions and applies what arrives (with its own handle
/// on the state, for the tasks that applying may spawn).
pub(crate) struct Subscriber(pub(crate) Arc<Shared>);

impl Session<Shared> for Subscriber {
    type Conn = PubSub;
    const KIND: LinkKind = LinkKind::Subscriber;

    async fn connect(&mut self, shared: &Shared) -> RedisResult<PubSub> {
        shared.client.get_async_pubsub().await
    }

    async fn run(&mut self, shared: &Shared, conn: PubSub) -> End {
        let (mut sink, mut stream) = conn.split();
        let timeout = shared.config.command_timeout();
        let channels = [&*shared.channel, &*shared.own_channel];
        match tokio::time::timeout(timeout, sink.subscribe(&channels[..])).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return End::Lost(format!("SUBSCRIBE: {e}")),
            Err(_) => return End::Lost("SUBSCRIBE timed out".into()),
        }
        // Subscribed: the others answer with heartbeats, so that this node
        // knows them at once (and they know it).
        shared.send_all(Body::Hello);
        // Back after an outage: the recorded events missed meanwhile, before
        // what arrives from now on (which waits in the subscription).
        if let Err(reason) = resync::catch_up(shared).await {
            return End::Lost(reason);
        }
        let ping_every = shared.config.ping_interval();
        loop {
            let idle = async {
                match ping_every {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(msg) => apply::handle(&self.0, msg.get_payload_bytes()),
                    None => return End::Lost("connection closed".into()),
                },
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
}
