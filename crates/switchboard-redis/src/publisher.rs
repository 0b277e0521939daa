//! The publisher link: drains the outbox in order and sends each batch as
//! one pipeline of `PUBLISH {prefix}:t:{topic} {message}` on a multiplexed
//! connection, one batch in flight at a time (which keeps per-topic order).
//! The channel name and the message are written straight into the command
//! buffer: one copy of the payload per publication.
//!
//! With shared history, each publication is instead one `EVALSHA` of
//! [`history::PUBLISH_SCRIPT`] (loaded on every new connection), which
//! numbers it, keeps it in the topic's stream and publishes it.
//!
//! A batch whose connection turns out dead when it is written (an idle
//! connection that outlived a Redis restart unnoticed: broken pipe, reset)
//! is kept and sent again once on the new connection, since the dead one
//! cannot have delivered it. A batch that times out or fails otherwise is
//! counted in `publish_errors` and not retried (it might have been
//! delivered: no duplicates).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use redis::aio::MultiplexedConnection;
use redis::{RedisResult, RedisWrite, ToRedisArgs};
use switchboard_hub::Publication;
use tokio::sync::mpsc;

use crate::backplane::Shared;
use crate::link::{End, LinkKind, Session};
use crate::{history, wire};

/// Most publications in one pipeline.
const MAX_BATCH: usize = 512;
/// A batch stops growing past this many bytes of data.
const MAX_BATCH_BYTES: usize = 1 << 20;

pub(crate) struct Publisher {
    rx: mpsc::UnboundedReceiver<Arc<Publication>>,
    batch: Vec<Arc<Publication>>,
    /// Publish errors already logged (to log the first and then rarely).
    logged_errors: u64,
    /// `batch` failed once on a dead connection and is being sent again.
    retrying: bool,
    /// SHA1 of the publish script loaded on the current connection (shared
    /// history only).
    script: Option<String>,
}

impl Publisher {
    pub(crate) fn new(rx: mpsc::UnboundedReceiver<Arc<Publication>>) -> Self {
        Publisher {
            rx,
            batch: Vec::new(),
            logged_errors: 0,
            retrying: false,
            script: None,
        }
    }

    /// Waits for the next publication; `None` after `ping_interval` idle.
    async fn next(&mut self, shared: &Shared) -> Option<Option<Arc<Publication>>> {
        match shared.config.ping_interval() {
            Some(idle) => tokio::time::timeout(idle, self.rx.recv()).await.ok(),
            None => Some(self.rx.recv().await),
        }
    }
}

impl Session for Publisher {
    type Conn = MultiplexedConnection;
    const KIND: LinkKind = LinkKind::Publisher;

    async fn connect(&mut self, shared: &Shared) -> RedisResult<MultiplexedConnection> {
        let mut conn = shared
            .client
            .get_multiplexed_async_connection_with_config(&shared.config.connection())
            .await?;
        self.script = None;
        if shared.config.shared_history {
            let mut cmd = redis::cmd("SCRIPT");
            cmd.arg("LOAD").arg(history::PUBLISH_SCRIPT);
            let load = cmd.query_async::<String>(&mut conn);
            match tokio::time::timeout(shared.config.command_timeout(), load).await {
                Ok(sha) => self.script = Some(sha?),
                Err(_) => {
                    return Err(redis::RedisError::from((
                        redis::ErrorKind::Io,
                        "SCRIPT LOAD timed out",
                    )))
                }
            }
        }
        Ok(conn)
    }

    async fn run(&mut self, shared: &Shared, mut conn: MultiplexedConnection) -> End {
        let timeout = shared.config.command_timeout();
        loop {
            if self.batch.is_empty() {
                match self.fill(shared, &mut conn, timeout).await {
                    Ok(true) => {}
                    Ok(false) => return End::Stop,
                    Err(end) => return end,
                }
            } else {
                // The batch held from a dead connection leaves the queue again.
                for p in &self.batch {
                    shared.outbox.taken(p);
                }
            }
            let mut pipe = redis::pipe();
            pipe.ignore_errors(); // one result per PUBLISH, error replies included
            fn channel<'a>(shared: &'a Shared, p: &'a Publication) -> Channel<'a> {
                Channel {
                    prefix: &shared.channel_prefix,
                    topic: &p.topic,
                }
            }
            match &self.script {
                Some(sha) => {
                    let prefix = &shared.config.prefix;
                    let maxlen = shared.history_size();
                    let ttl_ms = shared.config.history_ttl_secs.saturating_mul(1000);
                    for p in &self.batch {
                        pipe.cmd("EVALSHA")
                            .arg(sha)
                            .arg(2)
                            .arg(history::numbering_key(prefix, &p.topic))
                            .arg(history::stream_key(prefix, &p.topic))
                            .arg(channel(shared, p))
                            .arg(Wire(wire::Message::from_publication(shared.node_id, p)))
                            .arg(maxlen)
                            .arg(ttl_ms);
                    }
                }
                None => {
                    for p in &self.batch {
                        pipe.cmd("PUBLISH")
                            .arg(channel(shared, p))
                            .arg(Wire(wire::Message::from_publication(shared.node_id, p)));
                    }
                }
            }
            let n = self.batch.len() as u64;
            let query = pipe.query_async::<Vec<RedisResult<redis::Value>>>(&mut conn);
            let refused = match tokio::time::timeout(timeout, query).await {
                Ok(Ok(results)) => {
                    self.batch.clear();
                    self.retrying = false;
                    let refused: Vec<_> = results.into_iter().filter_map(Result::err).collect();
                    let stats = &shared.stats;
                    stats.published.fetch_add(n - refused.len() as u64, Relaxed);
                    stats
                        .publish_errors
                        .fetch_add(refused.len() as u64, Relaxed);
                    refused
                }
                Ok(Err(e)) if !self.retrying && (e.is_connection_dropped() || e.is_io_error()) => {
                    // Written into a dead connection: not delivered. Again,
                    // once, on the next connection.
                    self.retrying = true;
                    // Waiting again: counted as queued meanwhile.
                    for p in &self.batch {
                        shared.outbox.returned(p);
                    }
                    return End::Lost(format!("PUBLISH: {e} (the batch is sent again)"));
                }
                Ok(Err(e)) => {
                    self.batch.clear();
                    self.retrying = false;
                    shared.stats.publish_errors.fetch_add(n, Relaxed);
                    return End::Lost(format!("PUBLISH: {e}"));
                }
                Err(_) => {
                    self.batch.clear();
                    self.retrying = false;
                    shared.stats.publish_errors.fetch_add(n, Relaxed);
                    return End::Lost("PUBLISH timed out".into());
                }
            };
            // Error replies (e.g. an ACL denying a channel): the connection
            // is fine. Logged the 1st, 2nd, 4th… time.
            if let Some(e) = refused.first() {
                let total = shared.stats.publish_errors.load(Relaxed);
                if total >= self.logged_errors.saturating_mul(2).max(1) {
                    self.logged_errors = total;
                    tracing::warn!(
                        refused = refused.len(),
                        publish_errors = total,
                        "redis backplane: PUBLISH refused: {e}"
                    );
                }
            }
        }
    }
}

impl Publisher {
    /// Waits for publications and takes a batch of them from the outbox
    /// (pinging Redis while idle). `Ok(false)`: the backplane is gone;
    /// `Err`: the connection failed its ping.
    async fn fill(
        &mut self,
        shared: &Shared,
        conn: &mut MultiplexedConnection,
        timeout: std::time::Duration,
    ) -> Result<bool, End> {
        loop {
            let first = match self.next(shared).await {
                Some(Some(p)) => p,
                Some(None) => return Ok(false), // the backplane is gone
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
            let mut bytes = first.payload.len();
            shared.outbox.taken(&first);
            self.batch.push(first);
            while self.batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
                let Ok(p) = self.rx.try_recv() else { break };
                bytes += p.payload.len();
                shared.outbox.taken(&p);
                self.batch.push(p);
            }
            return Ok(true);
        }
    }
}

/// The channel name `{prefix}{topic}` as one argument, built in place.
struct Channel<'a> {
    prefix: &'a str,
    topic: &'a str,
}

impl ToRedisArgs for Channel<'_> {
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        use std::io::Write;
        let mut arg = out.writer_for_next_arg();
        let _ = arg.write_all(self.prefix.as_bytes());
        let _ = arg.write_all(self.topic.as_bytes());
    }
}

/// An encoded message as one argument, built in place.
struct Wire<'a>(wire::Message<'a>);

impl ToRedisArgs for Wire<'_> {
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        let _ = self.0.write_to(&mut out.writer_for_next_arg());
    }
}
