//! `suite --slow`: one stalled subscriber per protocol while the others take
//! a fan-out at full speed, Switchboard only. Owns the mode's defaults (its
//! servers and scenarios) and its table; the runs themselves are the suite's
//! (suite.rs: one fresh pinned server per run, the fan-out scenarios with
//! `--stalled`, without and with, alternating; the server's peak RSS sampled)
//! and the stalled subscribers are the fan-out's (stalled.rs).

use std::fmt::Write as _;
use std::time::Duration;

use crate::stats::Report;
use crate::suite::{fmt_num, fmt_ratio, median, SuiteArgs};

/// The servers of the slow suite: Switchboard's, one per protocol.
pub const SERVERS: &str = "switchboard,sio-switchboard,sockjs-switchboard,stomp-switchboard";

/// The fan-outs at a tenth of `--rate` (100 publications/s by default), one per
/// protocol and SockJS transport.
pub const SCENARIOS: &str = "fanout-light,sio-fanout-light,sockjs-fanout-ws-light,sockjs-fanout-xhr-light,stomp-fanout-light";

fn label(scenario: &str) -> &'static str {
    match scenario {
        s if s.starts_with("sio-") => "Socket.IO (websocket)",
        s if s.starts_with("sockjs-fanout-ws") => "SockJS websocket",
        s if s.starts_with("sockjs-fanout-xhr") => "SockJS xhr-streaming",
        s if s.starts_with("stomp-") => "STOMP over WebSocket",
        _ => "WebSocket `/ws/topic/bench`",
    }
}

/// The table: one row per scenario (its key and every run of it, with and
/// without stalled subscribers).
pub fn render(a: &SuiteArgs, rows: &[(&str, Vec<Report>)], took: Duration) -> String {
    let mut md = String::new();
    let rate = if rows.iter().all(|(k, _)| k.ends_with("-light")) {
        (a.rate / 10).max(1)
    } else {
        a.rate
    };
    let _ = writeln!(
        md,
        "Slow-client suite: {} repetitions (medians), runs of {} after {} warm-up; {} subscribers, {} B payload, {rate} publications/s; {} stalled subscriber(s) in every other run (SO_RCVBUF 4 KiB, never read); server env: {}; server on CPU {}, load generator on CPU {}{}.\n",
        a.reps,
        a.duration,
        a.warmup,
        a.subscribers,
        a.size,
        a.stalled,
        if a.node_env.is_empty() {
            "defaults".to_string()
        } else {
            format!("`{}`", a.node_env.join(" "))
        },
        a.server_cpu,
        a.client_cpu,
        if took.is_zero() {
            String::new()
        } else {
            format!("; took {:.0} s", took.as_secs_f64())
        }
    );
    let _ = writeln!(md, "| protocol | others' p50 µs without / with | others' p99 µs without / with | p99 with ÷ without (per repetition) | p99 with ÷ without | lost without / with | errors without / with | server peak RSS MiB without / with | stalled dropped | closed after (s) | end seen by the stalled client |");
    let _ = writeln!(md, "|---|---:|---:|---|---:|---:|---:|---:|---:|---|---|");
    for (key, runs) in rows {
        if runs.is_empty() {
            continue;
        }
        let without: Vec<&Report> = runs.iter().filter(|r| r.stalled == 0).collect();
        let with: Vec<&Report> = runs.iter().filter(|r| r.stalled > 0).collect();
        let m =
            |v: &[&Report], f: &dyn Fn(&Report) -> f64| median(v.iter().map(|r| f(r)).collect());
        // latency: over the runs that have samples
        let ml = |v: &[&Report], f: &dyn Fn(&Report) -> f64| {
            median(
                v.iter()
                    .filter(|r| r.latency.samples > 0)
                    .map(|r| f(r))
                    .collect(),
            )
        };
        let pair = |f: &dyn Fn(&[&Report]) -> String| format!("{} / {}", f(&without), f(&with));
        // paired: the run with ÷ the run without of the same repetition
        let mut ratios: Vec<(u32, f64)> = with
            .iter()
            .filter(|w| w.latency.samples > 0)
            .filter_map(|w| {
                without
                    .iter()
                    .find(|o| o.rep == w.rep && o.latency.samples > 0)
                    .map(|o| (w.rep, w.latency.p99_us / o.latency.p99_us))
            })
            .collect();
        ratios.sort_by_key(|r| r.0);
        let per_rep = if ratios.is_empty() {
            "–".to_string()
        } else {
            ratios
                .iter()
                .map(|(_, x)| format!("{x:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let dropped: u64 = with.iter().map(|r| r.stalled_dropped.unwrap_or(0)).sum();
        let stalled: u64 = with.iter().map(|r| r.stalled).sum();
        let fates: Vec<_> = with.iter().flat_map(|r| r.stalled_fates.iter()).collect();
        let closed: Vec<String> = fates
            .iter()
            .map(|f| f.closed_after_s.map_or("–".into(), |t| format!("{t:.1}")))
            .collect();
        // how the stalled clients' connections ended, with counts
        let mut ends: Vec<(String, usize)> = Vec::new();
        for f in &fates {
            match ends.iter_mut().find(|(e, _)| *e == f.end) {
                Some((_, n)) => *n += 1,
                None => ends.push((f.end.clone(), 1)),
            }
        }
        let ends = ends
            .iter()
            .map(|(e, n)| format!("{e} ×{n}"))
            .collect::<Vec<_>>()
            .join("; ");
        let errors = |v: &[&Report]| v.iter().map(|r| r.errors).sum::<u64>().to_string();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {per_rep} | {} | {} | {} | {} | {dropped} of {stalled} | {} | {} |",
            label(key),
            pair(&|v| fmt_num(ml(v, &|r| r.latency.p50_us))),
            pair(&|v| fmt_num(ml(v, &|r| r.latency.p99_us))),
            fmt_ratio(median(ratios.iter().map(|r| r.1).collect())),
            pair(&|v| fmt_num(m(v, &|r| r.lost as f64))),
            pair(&errors),
            pair(&|v| format!("{:.0}", m(v, &|r| r.server_rss as f64) / 1048576.0)),
            if closed.is_empty() {
                "–".into()
            } else {
                closed.join(", ")
            },
            if ends.is_empty() { "–".into() } else { ends },
        );
    }
    let _ = writeln!(
        md,
        "\nThe others are the {} subscribers that read; the stalled ones count for nothing in deliveries, latency or `lost`. Latency columns are medians over the repetitions (with samples); `p99 with ÷ without` pairs the two runs of the same repetition (the goal: ≤ 1.5×) and takes the median. `lost`: median count of the window's deliveries to the others not arrived 3 s after the window; `errors`: others' connections closed or failed, summed over the repetitions. Server peak RSS: the highest VmRSS of the server's process tree, sampled every 200 ms during the run (median). `stalled dropped`: stalled subscribers the server closed, over all runs with them; `closed after`: seconds from the first publication until the server's side of the stalled connection left ESTABLISHED (netlink sock_diag, sampled every 200 ms; `–`: not seen), per run; the last column is what reading the stalled connection at the end of the run found (`eof`, `reset`, the protocol's close, `open`).",
        a.subscribers
    );
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stalled::StalledFate;

    #[test]
    fn table() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            a: SuiteArgs,
        }
        let a = Cli::try_parse_from(["suite", "--slow", "--reps", "2"])
            .unwrap()
            .a;
        let run = |rep: u32, stalled: u64, p99: f64| Report {
            scenario: "fanout".into(),
            rep,
            stalled,
            stalled_dropped: (stalled > 0).then_some(1),
            stalled_fates: (0..stalled)
                .map(|_| StalledFate {
                    dropped: true,
                    closed_after_s: Some(2.5),
                    end: "eof".into(),
                    ..StalledFate::default()
                })
                .collect(),
            latency: crate::stats::Latency {
                samples: 10,
                p99_us: p99,
                ..Default::default()
            },
            ..Report::default()
        };
        let rows = vec![(
            "fanout-light",
            vec![
                run(1, 0, 100.0),
                run(1, 1, 120.0),
                run(2, 1, 100.0),
                run(2, 0, 100.0),
            ],
        )];
        let md = render(&a, &rows, Duration::ZERO);
        assert!(md.contains("| WebSocket `/ws/topic/bench` |"), "{md}");
        assert!(md.contains("| 1.20, 1.00 | 1.10× |"), "{md}");
        assert!(md.contains("| 2 of 2 | 2.5, 2.5 | eof ×2 |"), "{md}");
        assert!(md.contains("100 publications/s"), "{md}");
    }
}
