//! Counters of a backplane: the public snapshot ([`BackplaneStats`], with
//! the delivery-lag histogram [`LagStats`]) and the atomics behind it, which
//! the links and the `Backplane` calls update without locks.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};

/// Upper bounds (inclusive, in ms) of the [`LagStats::buckets`]; a last
/// bucket takes everything above.
pub const LAG_BUCKETS_MS: [u64; 10] = [1, 2, 5, 10, 25, 50, 100, 250, 1_000, 5_000];

/// Delivery lag of remote publications: time of arrival on this node minus
/// the origin's timestamp (0 when the origin's clock is ahead). It includes
/// time spent queued on the origin (e.g. during an outage) and any clock
/// difference between nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LagStats {
    /// Lag of the latest remote publication.
    pub last_ms: u64,
    /// Largest lag seen.
    pub max_ms: u64,
    /// Sum of all lags (with `count`, the mean).
    pub sum_ms: u64,
    /// Remote publications measured.
    pub count: u64,
    /// Cumulative histogram, Prometheus style: `buckets[i]` counts lags
    /// `<= LAG_BUCKETS_MS[i]`; the last entry (`+Inf`) equals `count`.
    pub buckets: [u64; LAG_BUCKETS_MS.len() + 1],
}

/// Counters of a [`RedisBackplane`](crate::RedisBackplane), read one by one
/// (not a consistent snapshot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BackplaneStats {
    /// Local publications sent to Redis (`PUBLISH` acknowledged).
    pub published: u64,
    /// Local publications whose `PUBLISH` failed (connection lost or error
    /// reply while it was in flight); they are not retried, so other nodes
    /// may have missed them.
    pub publish_errors: u64,
    /// Local publications dropped because the outgoing queue was full
    /// (Redis slow or unreachable); other nodes never see them.
    pub dropped: u64,
    /// Local publications waiting in the outgoing queue.
    pub queued: usize,
    /// Publications from Redis delivered into the hub (with shared history
    /// this node's own too: they come back numbered).
    pub received: u64,
    /// Messages ignored: this node's own publications echoed back by Redis,
    /// and messages for a topic that was closed here meanwhile.
    pub ignored: u64,
    /// Malformed messages (bad format, or a channel that is not a valid
    /// topic), dropped.
    pub decode_errors: u64,
    /// Times the connection to Redis was re-established after a loss.
    pub reconnects: u64,
    /// Whether both connections (publishing and subscribed) are up.
    pub connected: bool,
    /// Topics with local subscribers (the ones this node wants to receive).
    pub open_topics: usize,
    /// Topics whose `SUBSCRIBE` Redis has confirmed on the current
    /// connection (equals `open_topics` once in sync).
    pub subscribed_topics: usize,
    /// Topic histories read from Redis and given to the hub (shared
    /// history: a topic opened here, reopened, resubscribed, or a gap).
    pub synced: u64,
    /// Numbered publications that showed a gap (or a restarted numbering)
    /// on this node, each repaired from the shared history.
    pub gaps: u64,
    /// Delivery lag of remote publications.
    pub lag: LagStats,
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
    pub(crate) reconnects: AtomicU64,
    pub(crate) connected: AtomicBool,
    pub(crate) subscribed_topics: AtomicUsize,
    pub(crate) synced: AtomicU64,
    pub(crate) gaps: AtomicU64,
    lag_last: AtomicU64,
    lag_max: AtomicU64,
    lag_sum: AtomicU64,
    lag_count: AtomicU64,
    lag_buckets: [AtomicU64; LAG_BUCKETS_MS.len() + 1],
}

impl Counters {
    pub(crate) fn record_lag(&self, lag_ms: u64) {
        self.lag_last.store(lag_ms, Relaxed);
        self.lag_max.fetch_max(lag_ms, Relaxed);
        self.lag_sum.fetch_add(lag_ms, Relaxed);
        self.lag_count.fetch_add(1, Relaxed);
        let i = LAG_BUCKETS_MS.partition_point(|&b| b < lag_ms);
        self.lag_buckets[i].fetch_add(1, Relaxed);
    }

    /// The snapshot, except `queued` and `open_topics`, which the caller fills.
    pub(crate) fn snapshot(&self) -> BackplaneStats {
        let mut buckets = [0; LAG_BUCKETS_MS.len() + 1];
        let mut total = 0;
        for (out, b) in buckets.iter_mut().zip(&self.lag_buckets) {
            total += b.load(Relaxed);
            *out = total;
        }
        BackplaneStats {
            published: self.published.load(Relaxed),
            publish_errors: self.publish_errors.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            queued: 0,
            received: self.received.load(Relaxed),
            ignored: self.ignored.load(Relaxed),
            decode_errors: self.decode_errors.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            connected: self.connected.load(Relaxed),
            open_topics: 0,
            subscribed_topics: self.subscribed_topics.load(Relaxed),
            synced: self.synced.load(Relaxed),
            gaps: self.gaps.load(Relaxed),
            lag: LagStats {
                last_ms: self.lag_last.load(Relaxed),
                max_ms: self.lag_max.load(Relaxed),
                sum_ms: self.lag_sum.load(Relaxed),
                count: self.lag_count.load(Relaxed),
                buckets,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_histogram_is_cumulative() {
        let c = Counters::default();
        for lag in [0, 1, 2, 3, 7_000, 40] {
            c.record_lag(lag);
        }
        let lag = c.snapshot().lag;
        assert_eq!(lag.last_ms, 40);
        assert_eq!(lag.max_ms, 7_000);
        assert_eq!(lag.sum_ms, 7_046);
        assert_eq!(lag.count, 6);
        // <=1: 0,1 | <=2: 2 | <=5: 3 | <=50: 40 | +Inf: 7000
        assert_eq!(lag.buckets, [2, 3, 4, 4, 4, 5, 5, 5, 5, 5, 6]);
    }
}
