//! Staying connected to Redis. Each link (publisher, subscriber) runs
//! [`supervise`]: connect with a timeout, run until the connection is lost,
//! back off (doubling, capped, jittered), connect again, telling its
//! [`Host`] (the hub backplane, or the Socket.IO cluster) at each step.
//! [`Links`] is the backplane's host side: it combines both links' states
//! into `connected` and `reconnects`, and logs what an outage cost.

use std::future::Future;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::backplane::{random_u64, Shared};

/// Which link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkKind {
    /// Sends local publications (`PUBLISH`).
    Publisher,
    /// Holds the subscriptions and receives remote publications.
    Subscriber,
}

impl LinkKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            LinkKind::Publisher => "publisher",
            LinkKind::Subscriber => "subscriber",
        }
    }
}

/// Why a connection's run ended.
#[derive(Debug)]
pub(crate) enum End {
    /// The connection failed: reconnect.
    Lost(String),
    /// Nothing left to do (the hub is gone): stop the link.
    Stop,
}

/// The state a link works for, told when the link's connection comes and
/// goes.
pub(crate) trait Host: Send + Sync + 'static {
    /// What the logs call it ("redis backplane").
    const NAME: &'static str;
    /// Where Redis is, and the timings.
    fn config(&self) -> &crate::RedisConfig;
    /// `kind` connected.
    fn link_up(&self, kind: LinkKind);
    /// `kind` lost its connection.
    fn link_down(&self, kind: LinkKind, reason: &str);
    /// `kind` stopped.
    fn link_stopped(&self, kind: LinkKind);
}

impl Host for Shared {
    const NAME: &'static str = "redis backplane";

    fn config(&self) -> &crate::RedisConfig {
        &self.config
    }

    fn link_up(&self, kind: LinkKind) {
        self.links.up(self, kind)
    }

    fn link_down(&self, kind: LinkKind, reason: &str) {
        self.links.down(self, kind, reason)
    }

    fn link_stopped(&self, kind: LinkKind) {
        self.links.stopped(self, kind)
    }
}

/// What a link does with one connection, for host `H`.
pub(crate) trait Session<H: Host = Shared>: Send + 'static {
    /// The connection type.
    type Conn: Send;
    /// Which link this is.
    const KIND: LinkKind;
    /// Opens a connection (the caller applies the timeout).
    fn connect(
        &mut self,
        shared: &H,
    ) -> impl Future<Output = redis::RedisResult<Self::Conn>> + Send;
    /// Uses the connection until it fails (or there is nothing left to do).
    fn run(&mut self, shared: &H, conn: Self::Conn) -> impl Future<Output = End> + Send;
    /// The connection is gone (failed, stopped, or the run was cancelled).
    fn disconnected(&mut self, shared: &H) {
        let _ = shared;
    }
}

/// Runs one link until shutdown: connects, runs, reconnects with backoff.
pub(crate) async fn supervise<H: Host, S: Session<H>>(
    shared: Arc<H>,
    mut session: S,
    mut shutdown: watch::Receiver<bool>,
) {
    let config = shared.config();
    let mut backoff = Backoff::new(config.reconnect_min(), config.reconnect_max());
    let mut failures: u64 = 0;
    loop {
        let connect = tokio::time::timeout(config.command_timeout(), session.connect(&shared));
        let attempt = tokio::select! {
            r = connect => r,
            _ = stopped(&mut shutdown) => break,
        };
        match attempt {
            Ok(Ok(conn)) => {
                failures = 0;
                let since = Instant::now();
                shared.link_up(S::KIND);
                let end = tokio::select! {
                    end = session.run(&shared, conn) => end,
                    _ = stopped(&mut shutdown) => End::Stop,
                };
                session.disconnected(&shared);
                match end {
                    End::Stop => break,
                    End::Lost(reason) => shared.link_down(S::KIND, &reason),
                }
                if since.elapsed() >= config.reconnect_max() {
                    backoff.reset();
                }
            }
            Ok(Err(e)) => connect_failed(&*shared, S::KIND, &mut failures, &e.to_string()),
            Err(_) => connect_failed(&*shared, S::KIND, &mut failures, "timed out"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.next()) => {}
            _ = stopped(&mut shutdown) => break,
        }
    }
    shared.link_stopped(S::KIND);
}

/// Resolves when shutdown is asked for (or the backplane is dropped).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Logs a failed connection attempt: the 1st, 2nd, 4th, 8th… at warn level.
fn connect_failed<H: Host>(shared: &H, kind: LinkKind, failures: &mut u64, error: &str) {
    *failures += 1;
    let redis = crate::config::redact(&shared.config().url);
    if failures.is_power_of_two() {
        tracing::warn!(
            link = kind.name(),
            %redis,
            attempts = *failures,
            "{} cannot connect: {error}; retrying",
            H::NAME
        );
    } else {
        tracing::debug!(link = kind.name(), %redis, attempts = *failures, "connect failed: {error}");
    }
}

/// Both links' states, and the outage in progress.
#[derive(Debug, Default)]
pub(crate) struct Links {
    state: Mutex<LinkStates>,
}

#[derive(Debug, Default)]
struct LinkStates {
    publisher: bool,
    subscriber: bool,
    ever_connected: bool,
    outage: Option<Outage>,
}

#[derive(Debug)]
struct Outage {
    since: Instant,
    dropped: u64,
    publish_errors: u64,
}

impl LinkStates {
    fn set(&mut self, kind: LinkKind, up: bool) {
        match kind {
            LinkKind::Publisher => self.publisher = up,
            LinkKind::Subscriber => self.subscriber = up,
        }
    }

    fn both(&self) -> bool {
        self.publisher && self.subscriber
    }
}

impl Links {
    /// `kind` connected.
    fn up(&self, shared: &Shared, kind: LinkKind) {
        let mut st = self.state.lock();
        st.set(kind, true);
        tracing::debug!(link = kind.name(), "redis link connected");
        if !st.both() {
            return;
        }
        shared.stats.connected.store(true, Relaxed);
        let redis = crate::config::redact(&shared.config.url);
        if !st.ever_connected {
            st.ever_connected = true;
            let dropped = shared.stats.dropped.load(Relaxed);
            if dropped > 0 {
                tracing::warn!(
                    %redis,
                    dropped,
                    "redis backplane connected; {dropped} local publications were dropped \
                     (queue full) before that, so other nodes never got them"
                );
            } else {
                tracing::info!(%redis, "redis backplane connected");
            }
            return;
        }
        shared.stats.reconnects.fetch_add(1, Relaxed);
        let Some(outage) = st.outage.take() else {
            return;
        };
        let stats = &shared.stats;
        let dropped = stats.dropped.load(Relaxed) - outage.dropped;
        let failed = stats.publish_errors.load(Relaxed) - outage.publish_errors;
        tracing::warn!(
            %redis,
            outage = ?outage.since.elapsed(),
            dropped,
            failed,
            queued = shared.outbox.len(),
            "redis backplane reconnected: {dropped} local publications were dropped (queue \
             full) and {failed} failed while disconnected, so other nodes never got them; \
             publications made on other nodes during the outage were not received here and \
             cannot be recovered; resubscribing {} topics",
            shared.topics.counts().0
        );
    }

    /// `kind` lost its connection.
    fn down(&self, shared: &Shared, kind: LinkKind, reason: &str) {
        let mut st = self.state.lock();
        let was_connected = st.both();
        st.set(kind, false);
        shared.stats.connected.store(false, Relaxed);
        if !was_connected {
            tracing::debug!(link = kind.name(), "redis link lost: {reason}");
            return;
        }
        st.outage = Some(Outage {
            since: Instant::now(),
            dropped: shared.stats.dropped.load(Relaxed),
            publish_errors: shared.stats.publish_errors.load(Relaxed),
        });
        tracing::warn!(
            redis = %crate::config::redact(&shared.config.url),
            link = kind.name(),
            "redis backplane lost its connection ({reason}); until it is back, publications \
             from other nodes do not arrive here (and are lost for good), and local ones are \
             queued for the other nodes (up to {} messages, {} bytes), then dropped; local \
             delivery is not affected",
            shared.config.max_queued_messages,
            shared.config.max_queued_bytes,
        );
    }

    /// `kind` stopped (shutdown, or the hub is gone).
    fn stopped(&self, shared: &Shared, kind: LinkKind) {
        let mut st = self.state.lock();
        st.set(kind, false);
        shared.stats.connected.store(false, Relaxed);
        tracing::debug!(link = kind.name(), "redis link stopped");
    }
}

/// Reconnect delays: `min`, doubling up to `max`, each jittered down by up
/// to half (so that nodes restarted together do not reconnect in step).
#[derive(Debug)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max,
            next: min,
        }
    }

    /// The next delay.
    pub(crate) fn next(&mut self) -> Duration {
        let d = self.next;
        self.next = (d * 2).min(self.max);
        let half = d / 2;
        let jitter = random_u64() % (half.as_micros() as u64 + 1);
        half + Duration::from_micros(jitter)
    }

    /// Back to `min` (after a connection that lasted).
    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_jitters() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(100), ms(1000));
        let bounds = [100, 200, 400, 800, 1000, 1000];
        for max in bounds {
            let d = b.next();
            assert!(d >= ms(max) / 2 && d <= ms(max), "{d:?} for {max}");
        }
        b.reset();
        assert!(b.next() <= ms(100));
    }
}
