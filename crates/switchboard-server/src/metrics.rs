//! Operations: the Prometheus text exposition at `GET /metrics`
//! (connections by protocol, messages in and out, the hub's fan-out time
//! histogram, slow consumers, the backplane's lag and errors, process
//! memory and files) and the same counters as JSON for `/api/info` and the
//! admin page. Everything is read from counters the hub and backplane keep
//! anyway; a scrape costs no work on the message path.

use crate::app::AppState;
use crate::wire::json_str;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::fmt::Write as _;
use std::sync::Arc;
use switchboard_hub::FANOUT_BUCKETS_US;

/// `GET /metrics`.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&state),
    )
        .into_response()
}

/// One metric family's header.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The Prometheus text exposition of `state`'s counters.
pub fn render(state: &AppState) -> String {
    let mut out = String::with_capacity(4096);
    let hub = &state.hub;
    let stats = hub.stats();
    // The server's own hub clients (crate::nodes) are not connections.
    let protocols: Vec<_> = hub
        .protocol_stats()
        .into_iter()
        .filter(|p| p.protocol != crate::nodes::INTERNAL)
        .collect();

    family(
        &mut out,
        "switchboard_connections",
        "gauge",
        "Connected clients on the hub, by protocol.",
    );
    for p in &protocols {
        let _ = writeln!(
            out,
            "switchboard_connections{{protocol=\"{}\"}} {}",
            p.protocol, p.connections
        );
    }
    family(
        &mut out,
        "switchboard_messages_in_total",
        "counter",
        "Publications made by clients, by protocol.",
    );
    for p in &protocols {
        let _ = writeln!(
            out,
            "switchboard_messages_in_total{{protocol=\"{}\"}} {}",
            p.protocol, p.published
        );
    }
    let simple: [(&str, &str, &str, u64); 8] = [
        (
            "switchboard_publications_total",
            "counter",
            "Publications processed by the hub (local, API and remote).",
            stats.published,
        ),
        (
            "switchboard_messages_out_total",
            "counter",
            "Publications queued for delivery to subscribers (one per recipient).",
            stats.delivered,
        ),
        (
            "switchboard_slow_consumers_dropped_total",
            "counter",
            "Connections closed because they did not keep up (mailbox overflowed).",
            stats.dropped_slow_consumers,
        ),
        (
            "switchboard_deliveries_dropped_total",
            "counter",
            "Deliveries not queued because the recipient had already overflowed.",
            stats.dropped_deliveries,
        ),
        (
            "switchboard_topics",
            "gauge",
            "Topics in the hub (with subscribers or kept idle for history).",
            stats.topics as u64,
        ),
        (
            "switchboard_idle_topics",
            "gauge",
            "Topics without subscribers kept for their history.",
            stats.idle_topics as u64,
        ),
        (
            "switchboard_clients",
            "gauge",
            "Connected hub clients, every protocol.",
            stats.clients as u64,
        ),
        (
            "switchboard_users",
            "gauge",
            "Distinct authenticated users connected.",
            hub.user_count() as u64,
        ),
    ];
    for (name, kind, help, value) in simple {
        family(&mut out, name, kind, help);
        let _ = writeln!(out, "{name} {value}");
    }

    let h = hub.fanout_histogram();
    family(
        &mut out,
        "switchboard_fanout_seconds",
        "histogram",
        "Time for a publication to reach every local subscriber's queue.",
    );
    let mut cumulative = 0;
    for (i, &bound) in FANOUT_BUCKETS_US.iter().enumerate() {
        cumulative += h.counts[i];
        let _ = writeln!(
            out,
            "switchboard_fanout_seconds_bucket{{le=\"{}\"}} {cumulative}",
            bound as f64 / 1e6
        );
    }
    let _ = writeln!(
        out,
        "switchboard_fanout_seconds_bucket{{le=\"+Inf\"}} {}\nswitchboard_fanout_seconds_sum {}\nswitchboard_fanout_seconds_count {}",
        h.count(),
        h.sum_ns as f64 / 1e9,
        h.count()
    );

    if let Some(bp) = &state.redis {
        let s = bp.stats();
        let rows: [(&str, &str, &str, u64); 10] = [
            (
                "switchboard_backplane_connected",
                "gauge",
                "1 while the Redis backplane is connected.",
                s.connected as u64,
            ),
            (
                "switchboard_backplane_published_total",
                "counter",
                "Publications sent to Redis.",
                s.published,
            ),
            (
                "switchboard_backplane_received_total",
                "counter",
                "Publications received from other nodes.",
                s.received,
            ),
            (
                "switchboard_backplane_errors_total",
                "counter",
                "Failed Redis publishes.",
                s.publish_errors,
            ),
            (
                "switchboard_backplane_dropped_total",
                "counter",
                "Publications not sent to other nodes (queue full while Redis was away).",
                s.dropped,
            ),
            (
                "switchboard_backplane_decode_errors_total",
                "counter",
                "Malformed messages received from Redis.",
                s.decode_errors,
            ),
            (
                "switchboard_backplane_reconnects_total",
                "counter",
                "Reconnections to Redis.",
                s.reconnects,
            ),
            (
                "switchboard_backplane_history_syncs_total",
                "counter",
                "Topic histories read from Redis (shared history: topic opened, resubscribed, or a gap).",
                s.synced,
            ),
            (
                "switchboard_backplane_gaps_total",
                "counter",
                "Numbered publications that arrived after a gap, repaired from the shared history.",
                s.gaps,
            ),
            (
                "switchboard_backplane_subscribed_topics",
                "gauge",
                "Topics this node subscribes to on Redis.",
                s.subscribed_topics as u64,
            ),
        ];
        for (name, kind, help, value) in rows {
            family(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
        family(
            &mut out,
            "switchboard_backplane_lag_seconds",
            "gauge",
            "Delay between a publication on another node and its arrival here (last and max).",
        );
        let _ = writeln!(
            out,
            "switchboard_backplane_lag_seconds{{stat=\"last\"}} {}\nswitchboard_backplane_lag_seconds{{stat=\"max\"}} {}",
            s.lag.last_ms as f64 / 1e3,
            s.lag.max_ms as f64 / 1e3
        );
    }

    let process = process_stats();
    family(
        &mut out,
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
    );
    let _ = writeln!(out, "process_resident_memory_bytes {}", process.rss_bytes);
    if let Some(heap) = crate::memory::heap_usage_reported() {
        family(
            &mut out,
            "switchboard_heap_bytes",
            "gauge",
            "The allocator's heap: in live allocations, free but resident, its own bookkeeping.",
        );
        let _ = writeln!(
            out,
            "switchboard_heap_bytes{{state=\"in_use\"}} {}\nswitchboard_heap_bytes{{state=\"free\"}} {}\nswitchboard_heap_bytes{{state=\"metadata\"}} {}",
            heap.in_use, heap.free, heap.metadata
        );
    }
    family(
        &mut out,
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
    );
    let _ = writeln!(out, "process_open_fds {}", process.open_fds);
    family(
        &mut out,
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since the epoch, in seconds.",
    );
    let _ = writeln!(
        out,
        "process_start_time_seconds {}",
        state.started_at_ms as f64 / 1e3
    );
    out
}

/// Memory and files of this process, from `/proc` (zeros elsewhere).
pub struct ProcessStats {
    /// Resident set size.
    pub rss_bytes: u64,
    /// Open file descriptors.
    pub open_fds: u64,
}

/// Reads [`ProcessStats`].
pub fn process_stats() -> ProcessStats {
    let page = 4096; // Linux on x86_64 and aarch64 defaults
    let rss_bytes = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * page);
    let open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    ProcessStats {
        rss_bytes,
        open_fds,
    }
}

/// This node's counters as JSON (`/api/info`, the admin page).
pub fn info_json(state: &AppState) -> String {
    let hub = &state.hub;
    let stats = hub.stats();
    let process = process_stats();
    let mut r = String::with_capacity(512);
    let _ = write!(
        r,
        "{{\"node\":{},\"version\":{},\"uptime_ms\":{},\"time_ms\":{},\"connections\":{{",
        json_str(&state.node_id),
        json_str(env!("CARGO_PKG_VERSION")),
        switchboard_hub::now_ms().saturating_sub(state.started_at_ms),
        switchboard_hub::now_ms()
    );
    let protocols = hub.protocol_stats();
    let protocols = protocols
        .iter()
        .filter(|p| p.protocol != crate::nodes::INTERNAL);
    for (i, p) in protocols.enumerate() {
        let _ = write!(
            r,
            "{}{}:{}",
            if i > 0 { "," } else { "" },
            json_str(p.protocol),
            p.connections
        );
    }
    let _ = write!(
        r,
        "}},\"clients\":{},\"users\":{},\"topics\":{},\"idle_topics\":{},\"publications\":{},\"messages_out\":{},\"slow_consumers_dropped\":{},\"rss_bytes\":{},\"open_fds\":{}",
        stats.clients,
        hub.user_count(),
        stats.topics,
        stats.idle_topics,
        stats.published,
        stats.delivered,
        stats.dropped_slow_consumers,
        process.rss_bytes,
        process.open_fds
    );
    if let Some(heap) = crate::memory::heap_usage_reported() {
        let _ = write!(
            r,
            ",\"heap\":{{\"in_use\":{},\"free\":{},\"metadata\":{}}}",
            heap.in_use, heap.free, heap.metadata
        );
    }
    match &state.redis {
        Some(bp) => {
            let s = bp.stats();
            let _ = write!(
                r,
                ",\"backplane\":{{\"kind\":\"redis\",\"connected\":{},\"published\":{},\"received\":{},\"dropped\":{},\"errors\":{},\"reconnects\":{},\"lag_last_ms\":{}}}",
                s.connected, s.published, s.received, s.dropped, s.publish_errors, s.reconnects, s.lag.last_ms
            );
        }
        None => r.push_str(",\"backplane\":{\"kind\":\"memory\"}"),
    }
    let mut topics = hub.topics();
    topics.retain(|(name, _)| crate::nodes::client_topic(name));
    topics.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    r.push_str(",\"top_topics\":[");
    for (i, (name, subs)) in topics.iter().take(20).enumerate() {
        let _ = write!(
            r,
            "{}{{\"topic\":{},\"subscribers\":{subs}}}",
            if i > 0 { "," } else { "" },
            json_str(name)
        );
    }
    r.push_str("]}");
    r
}
