//! Latency histograms and the result record every scenario prints.

use std::cell::{Cell, RefCell};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

pub fn new_hist() -> Histogram<u64> {
    // 1 ns .. 100 s, 3 significant figures.
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("histogram bounds")
}

/// Latency percentiles in microseconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Latency {
    pub samples: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    /// the mean (with a rate, Little's law gives the number in flight);
    /// absent from reports written before it was added
    #[serde(default)]
    pub mean_us: f64,
}

impl Latency {
    pub fn from_hist(h: &Histogram<u64>) -> Self {
        let us = |ns: u64| ns as f64 / 1000.0;
        Latency {
            samples: h.len(),
            p50_us: us(h.value_at_quantile(0.50)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
            mean_us: h.mean() / 1000.0,
        }
    }
}

/// Messages counted per [`Timeline::BUCKET_MS`] of the measured window:
/// throughput over time, for the plots.
#[derive(Default)]
pub struct Timeline {
    start_ns: Cell<u64>,
    counts: RefCell<Vec<u64>>,
}

impl Timeline {
    pub const BUCKET_MS: u64 = 100;

    /// The window opens at `now_ns` (the clock of `util::now_ns`).
    pub fn start(&self, now_ns: u64) {
        self.start_ns.set(now_ns);
    }

    /// `n` messages at `now_ns` (in the window).
    #[inline]
    pub fn add(&self, now_ns: u64, n: u64) {
        let i =
            (now_ns.saturating_sub(self.start_ns.get()) / (Self::BUCKET_MS * 1_000_000)) as usize;
        let mut c = self.counts.borrow_mut();
        if c.len() <= i {
            c.resize(i + 1, 0);
        }
        c[i] += n;
    }

    /// Messages per second in each bucket, the last (partial) one dropped.
    pub fn rates(&self) -> Vec<f64> {
        let c = self.counts.borrow();
        let per_s = 1000.0 / Self::BUCKET_MS as f64;
        c[..c.len().saturating_sub(1)]
            .iter()
            .map(|&n| n as f64 * per_s)
            .collect()
    }
}

/// What one scenario run reports (printed as one JSON line with `--json`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Report {
    pub scenario: String,
    /// messages/s (echo) or deliveries/s (fan-out)
    #[serde(default)]
    pub rate: f64,
    #[serde(default)]
    pub latency: Latency,
    /// fan-out: publications sent in the measured window
    #[serde(default)]
    pub published: u64,
    /// fan-out: deliveries of publications of the measured window
    #[serde(default)]
    pub delivered: u64,
    /// fan-out: expected - delivered deliveries of the measured window
    #[serde(default)]
    pub lost: u64,
    /// connections that failed or were closed by the server during the run
    #[serde(default)]
    pub errors: u64,
    /// idle: server RSS before/after and bytes per connection
    #[serde(default)]
    pub rss_before: u64,
    #[serde(default)]
    pub rss_after: u64,
    #[serde(default)]
    pub bytes_per_conn: f64,
    #[serde(default)]
    pub connections: u64,
    #[serde(default)]
    pub seconds: f64,
    /// suite repetition (1-based) this run belongs to; 0 outside the suite
    #[serde(default)]
    pub rep: u32,
    /// STOMP: messages (publications) sent over the whole run, warm-up and
    /// window
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sent: u64,
    /// STOMP fan-out: sequence numbers skipped by a subscriber (a later one
    /// arrived first), summed over the subscribers
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gaps: u64,
    /// STOMP: messages received more than once (fan-out: or out of order)
    #[serde(default, skip_serializing_if = "is_zero")]
    pub duplicates: u64,
    /// STOMP: of every message sent over the whole run, those never
    /// received by the end of the grace period (fan-out: × subscribers)
    #[serde(default, skip_serializing_if = "is_zero")]
    pub missing: u64,
    /// STOMP queue: MESSAGE frames with `redelivered:true`
    #[serde(default, skip_serializing_if = "is_zero")]
    pub redelivered: u64,
    /// suite (every scenario but idle): the server's peak VmRSS (with its
    /// children) during the run; suite (cluster): the peak of the sum over
    /// the nodes
    #[serde(default, skip_serializing_if = "is_zero")]
    pub server_rss: u64,
    /// suite (every scenario but idle): the server's VmRSS (with its
    /// children) just before the load generator started
    #[serde(default, skip_serializing_if = "is_zero")]
    pub server_rss_start: u64,
    /// idle with `--cycles` (leak check): RSS after each opening and closing
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cycles: Option<crate::idle::Cycles>,
    /// fan-out with several `--sub-url`s: the subscribers on the publisher's server
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_node: Option<NodeSplit>,
    /// fan-out with several `--sub-url`s: the subscribers on the other servers
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_node: Option<NodeSplit>,
    /// suite (cluster): CPU time of the server processes (all nodes) over the
    /// measured window, in cores (1.0 = one core busy)
    #[serde(default, skip_serializing_if = "is_zero_f")]
    pub server_cpu: f64,
    /// suite (cluster): the same for redis-server
    #[serde(default, skip_serializing_if = "is_zero_f")]
    pub redis_cpu: f64,
    /// suite (cluster): redis-server's peak VmRSS during the run
    #[serde(default, skip_serializing_if = "is_zero")]
    pub redis_rss: u64,
    /// fan-out with `--stalled N`: N, the subscribers that never read
    #[serde(default, skip_serializing_if = "is_zero")]
    pub stalled: u64,
    /// fan-out with `--stalled N`: how many of them the server closed
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stalled_dropped: Option<u64>,
    /// fan-out with `--stalled N`: what became of each
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stalled_fates: Vec<crate::stalled::StalledFate>,
    /// echo, fan-out: messages (deliveries) per second in each 100 ms of the
    /// measured window
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<f64>,
}

/// Fan-out over several servers: one group of subscribers (those on the
/// publisher's server, or those on the others).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NodeSplit {
    /// subscribers of the group that subscribed
    pub subscribers: u64,
    /// deliveries of the window's publications to the group
    pub delivered: u64,
    /// publications × the group's subscribers − delivered
    pub lost: u64,
    pub latency: Latency,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_zero_f(v: &f64) -> bool {
    *v == 0.0
}

impl Report {
    pub fn print_human(&self) {
        match self.scenario.as_str() {
            "idle" | "sio-idle" => println!(
                "{}: {} connections, server RSS {:.1} MiB -> {:.1} MiB, {:.0} bytes/connection, errors {}",
                self.scenario,
                self.connections,
                self.rss_before as f64 / 1048576.0,
                self.rss_after as f64 / 1048576.0,
                self.bytes_per_conn,
                self.errors
            ),
            s => {
                let fanout = s.contains("fanout");
                let what = if fanout {
                    "deliveries/s"
                } else if s == "sio-echo" || s == "stomp-queue" {
                    "acks/s"
                } else {
                    "msgs/s"
                };
                println!(
                    "{s}: {:.0} {what} over {:.1}s, latency p50 {:.0} us, p99 {:.0} us, p99.9 {:.0} us, max {:.0} us ({} samples), errors {}",
                    self.rate,
                    self.seconds,
                    self.latency.p50_us,
                    self.latency.p99_us,
                    self.latency.p999_us,
                    self.latency.max_us,
                    self.latency.samples,
                    self.errors
                );
                if s.starts_with("stomp-") {
                    println!(
                        "{s}: {} sent in all, {} missing at the end, {} duplicates, {} sequence gaps, {} redelivered",
                        self.sent, self.missing, self.duplicates, self.gaps, self.redelivered
                    );
                }
                for (what, g) in [("same node", &self.same_node), ("cross node", &self.cross_node)] {
                    if let Some(g) = g {
                        println!(
                            "{s}: {what}: {} subscribers, latency p50 {:.0} us, p99 {:.0} us, p99.9 {:.0} us ({} samples), {} delivered, {} lost",
                            g.subscribers,
                            g.latency.p50_us,
                            g.latency.p99_us,
                            g.latency.p999_us,
                            g.latency.samples,
                            g.delivered,
                            g.lost
                        );
                    }
                }
                for f in &self.stalled_fates {
                    println!(
                        "{s}: stalled subscriber: {}, closed by the server {}, end of drain: {} ({} bytes), server send queue up to {} bytes, own receive queue up to {} bytes",
                        if f.dropped { "dropped" } else { "not dropped" },
                        f.closed_after_s
                            .map_or("not seen".into(), |t| format!("{t:.1} s after the first publication")),
                        f.end,
                        f.drained,
                        f.server_send_q,
                        f.client_recv_q
                    );
                }
                if self.stalled > 0 {
                    println!(
                        "{s}: stalled_dropped: {} of {}",
                        self.stalled_dropped.unwrap_or(0),
                        self.stalled
                    );
                }
                if fanout {
                    println!(
                        "{s}: {} published in window, {} delivered, {} lost ({:.3}%)",
                        self.published,
                        self.delivered,
                        self.lost,
                        if self.published > 0 {
                            100.0 * self.lost as f64 / (self.delivered + self.lost).max(1) as f64
                        } else {
                            0.0
                        }
                    );
                }
            }
        }
    }
}
