//! `suite --cluster`: WebSocket fan-out across Switchboard nodes that share one
//! private `redis-server` (the Redis backplane, docs/cluster.md), against one
//! node, in the same run. Owns the topologies, starting redis-server and the
//! nodes, sampling their CPU time and RSS, and the cluster tables; the load is
//! the `fanout` scenario (fanout.rs) with one `--sub-url` per node.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::stats::Report;
use crate::suite::{fmt_num, fmt_ratio, median, SuiteArgs};
use crate::util::load_average;

/// How the nodes are laid out.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Topology {
    /// one node without `[redis]`: the in-memory hub (reference)
    Single,
    /// one node with the Redis backplane: the baseline of the ratios
    SingleRedis,
    /// `--nodes` nodes sharing the redis-server
    MultiRedis,
}

impl Topology {
    fn parse(s: &str) -> Result<Topology, String> {
        Ok(match s {
            "single" => Topology::Single,
            "single-redis" => Topology::SingleRedis,
            "multi-redis" => Topology::MultiRedis,
            _ => {
                return Err(format!(
                    "unknown cluster topology {s} (single, single-redis, multi-redis)"
                ))
            }
        })
    }
    fn key(self) -> &'static str {
        match self {
            Topology::Single => "single",
            Topology::SingleRedis => "single-redis",
            Topology::MultiRedis => "multi-redis",
        }
    }
    fn nodes(self, multi: usize) -> usize {
        match self {
            Topology::MultiRedis => multi,
            _ => 1,
        }
    }
    fn redis(self) -> bool {
        self != Topology::Single
    }
    fn label(self, multi: usize) -> String {
        match self {
            Topology::Single => "1 node, no Redis".into(),
            Topology::SingleRedis => "1 node + Redis".into(),
            Topology::MultiRedis => format!("{multi} nodes + Redis"),
        }
    }
}

/// The publication rate.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Load {
    /// `--rate` publications/s
    Fanout,
    /// a tenth of it
    FanoutLight,
}

impl Load {
    fn parse(s: &str) -> Result<Load, String> {
        match s {
            "fanout" => Ok(Load::Fanout),
            "fanout-light" => Ok(Load::FanoutLight),
            _ => Err(format!(
                "unknown cluster scenario {s} (fanout, fanout-light)"
            )),
        }
    }
    fn key(self) -> &'static str {
        match self {
            Load::Fanout => "fanout",
            Load::FanoutLight => "fanout-light",
        }
    }
    fn rate(self, a: &SuiteArgs) -> u64 {
        match self {
            Load::Fanout => a.rate,
            Load::FanoutLight => (a.rate / 10).max(1),
        }
    }
}

/// The topic the subscribers and the publisher use (`/ws/topic/bench`).
const TOPIC_PATH: &str = "/ws/topic/bench";

/// One run's report and the 1-minute load average when it started.
#[derive(Clone)]
struct Run {
    r: Report,
    load: f64,
}

/// What every node is given beside the suite's own settings.
struct NodeExtra {
    /// `--node-config`, and whether it has a `[redis]` section
    config: Option<(PathBuf, bool)>,
    env: Vec<(String, String)>,
}

pub fn run(a: &SuiteArgs) -> Result<(), String> {
    let topos: Vec<Topology> = list(
        a.servers
            .as_deref()
            .unwrap_or("single,single-redis,multi-redis"),
        Topology::parse,
    )?;
    let loads: Vec<Load> = list(
        a.scenarios.as_deref().unwrap_or("fanout,fanout-light"),
        Load::parse,
    )?;
    if a.nodes < 2 {
        return Err("--nodes must be at least 2".into());
    }
    if let Some(p) = &a.render {
        let results = read_results(p, &topos, &loads)?;
        println!("{}", render(a, &topos, &loads, &results, Duration::ZERO));
        return Ok(());
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let sb = a
        .switchboard
        .clone()
        .unwrap_or_else(|| exe.parent().unwrap().join("switchboard"));
    let extra = NodeExtra {
        config: match &a.node_config {
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
                let p = std::fs::canonicalize(p).map_err(|e| format!("{}: {e}", p.display()))?;
                Some((p, has_redis_section(&text)))
            }
            None => None,
        },
        env: crate::util::parse_env_pairs(&a.node_env)?,
    };
    if let Some((p, true)) = &extra.config {
        if topos.contains(&Topology::Single) {
            eprintln!(
                "suite: {} has a [redis] section: the no-Redis reference runs without it",
                p.display()
            );
        }
    }
    let mut json_out = match &a.json_out {
        Some(p) => Some(std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?),
        None => None,
    };
    let log_dir = std::env::temp_dir().join("switchboard-bench-logs");
    let _ = std::fs::create_dir_all(&log_dir);
    let started = Instant::now();
    let redis = if topos.iter().any(|t| t.redis()) {
        let r = Redis::start(&a.redis_server, &a.server_cpu, &log_dir)?;
        eprintln!(
            "suite: redis-server on 127.0.0.1:{} (pid {}, CPU {})",
            r.port,
            r.child.id(),
            a.server_cpu
        );
        Some(r)
    } else {
        None
    };
    // results[load][topology]
    let mut results: Vec<Vec<Vec<Run>>> = vec![vec![Vec::new(); topos.len()]; loads.len()];
    let mut runs = 0u32;
    for rep in 0..a.reps {
        for (li, &load) in loads.iter().enumerate() {
            for (ti, &topo) in topos.iter().enumerate() {
                runs += 1;
                let load_avg = load_average().unwrap_or(f64::NAN);
                // a fresh channel prefix per run: nothing of an earlier run reaches it
                let prefix = format!("sbbench{}r{runs}", std::process::id());
                let res = run_one(a, &exe, &sb, topo, load, redis.as_ref(), &prefix, &extra);
                match res {
                    Ok(mut r) => {
                        eprintln!(
                            "[{:>4.0}s] rep {} {:<12} {:<12} {} (load {load_avg:.2})",
                            started.elapsed().as_secs_f64(),
                            rep + 1,
                            load.key(),
                            topo.key(),
                            brief(&r)
                        );
                        r.rep = rep as u32 + 1;
                        if let Some(f) = json_out.as_mut() {
                            use std::io::Write;
                            let mut v = serde_json::to_value(&r).unwrap();
                            v["server"] = topo.key().into();
                            v["suite_scenario"] = load.key().into();
                            v["nodes"] = topo.nodes(a.nodes).into();
                            v["load_avg"] = load_avg.into();
                            if let Some((p, _)) = &extra.config {
                                v["node_config"] = p.to_string_lossy().into();
                            }
                            if !a.node_env.is_empty() {
                                v["node_env"] = a.node_env.clone().into();
                            }
                            let _ = writeln!(f, "{v}");
                        }
                        results[li][ti].push(Run { r, load: load_avg });
                    }
                    Err(e) => eprintln!(
                        "[{:>4.0}s] rep {} {} {}: FAILED: {e}",
                        started.elapsed().as_secs_f64(),
                        rep + 1,
                        load.key(),
                        topo.key()
                    ),
                }
                // let the killed nodes' sockets leave the table
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    drop(redis);
    let md = render(a, &topos, &loads, &results, started.elapsed());
    println!("{md}");
    if let Some(p) = &a.out {
        std::fs::write(p, &md).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(())
}

fn list<T>(s: &str, parse: fn(&str) -> Result<T, String>) -> Result<Vec<T>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse)
        .collect()
}

/// Whether a TOML text sets anything of `[redis]` (a table header or a
/// dotted key at the top level); a line scan, not a parser.
fn has_redis_section(toml: &str) -> bool {
    toml.lines().map(str::trim).any(|l| {
        l.strip_prefix('[')
            .map(|h| h.trim_start_matches('[').trim_start())
            .is_some_and(|h| {
                h.starts_with("redis]") || h.starts_with("redis.") || h.starts_with("redis ")
            })
            || l.starts_with("redis.")
            || l.starts_with("redis ")
            || l.starts_with("redis=")
    })
}

/// The private redis-server: its own port and directory, no persistence, its
/// log in the suite's log directory; stopped (and its directory removed) when
/// dropped.
struct Redis {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Redis {
    fn start(bin: &Path, cpu: &str, log_dir: &Path) -> Result<Redis, String> {
        let dir = crate::suite::private_dir("redis")?;
        let port = crate::suite::free_port()?;
        let log = log_dir.join("cluster-redis.log");
        let mut child = Command::new("taskset")
            .args(["-c", cpu])
            .arg(bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", bin.display()))?;
        crate::suite::guard_pid(child.id());
        let addr = format!("127.0.0.1:{port}");
        if let Err(e) = crate::suite::wait_ready(&addr, &mut child, Duration::from_secs(10)) {
            let r = Redis { child, dir, port };
            drop(r);
            return Err(format!("redis-server: {e} (log: {})", log.display()));
        }
        Ok(Redis { child, dir, port })
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        // SIGTERM: without persistence it exits at once
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        crate::suite::wait_exit(&mut self.child, Duration::from_secs(5));
        crate::suite::unguard_pid(self.child.id());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The nodes of one run; killed when dropped.
struct Nodes(Vec<Child>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
            crate::suite::unguard_pid(c.id());
        }
    }
}

/// Distinct free ports.
fn free_ports(n: usize) -> Result<Vec<u16>, String> {
    let mut ports = Vec::with_capacity(n);
    while ports.len() < n {
        let p = crate::suite::free_port()?;
        if !ports.contains(&p) {
            ports.push(p);
        }
    }
    Ok(ports)
}

/// Starts the topology's nodes, runs the load generator against them and
/// measures the nodes (and redis-server) while it runs.
#[allow(clippy::too_many_arguments)]
fn run_one(
    a: &SuiteArgs,
    exe: &Path,
    sb: &Path,
    topo: Topology,
    load: Load,
    redis: Option<&Redis>,
    prefix: &str,
    extra: &NodeExtra,
) -> Result<Report, String> {
    let n = topo.nodes(a.nodes);
    let ports = free_ports(n)?;
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let log_dir = std::env::temp_dir().join("switchboard-bench-logs");
    let mut nodes = Nodes(Vec::with_capacity(n));
    for (i, addr) in addrs.iter().enumerate() {
        let log = std::fs::File::create(log_dir.join(format!(
            "cluster-{}-node{}.log",
            topo.key(),
            i + 1
        )))
        .map_err(|e| e.to_string())?;
        let mut cmd = Command::new("taskset");
        cmd.args(["-c", &a.server_cpu])
            .arg(sb)
            .args(["serve", "--listen", addr]);
        let with_redis = topo.redis();
        match &extra.config {
            Some((p, has_redis)) if with_redis || !has_redis => {
                cmd.arg("--config").arg(p);
            }
            _ => {}
        }
        cmd.env("RUST_LOG", "warn")
            .env("SWITCHBOARD_LOG", "warn")
            // several nodes on one machine: no STOMP TCP listener (its default port)
            .env("SWITCHBOARD_STOMP__TCP_LISTEN", "");
        if with_redis {
            let r = redis.ok_or("no redis-server")?;
            cmd.env("SWITCHBOARD_REDIS__URL", r.url())
                .env("SWITCHBOARD_REDIS__PREFIX", prefix);
        }
        for (k, v) in &extra.env {
            if with_redis || !k.starts_with("SWITCHBOARD_REDIS__") {
                cmd.env(k, v);
            }
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        let child = cmd
            .spawn()
            .map_err(|e| format!("starting node {}: {e}", i + 1))?;
        crate::suite::guard_pid(child.id());
        nodes.0.push(child);
    }
    for (i, addr) in addrs.iter().enumerate() {
        crate::suite::wait_ready(addr, &mut nodes.0[i], Duration::from_secs(15))
            .map_err(|e| format!("node {}: {e}", i + 1))?;
    }
    std::thread::sleep(Duration::from_millis(300));

    let url = |addr: &str| format!("ws://{addr}{TOPIC_PATH}");
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", &a.client_cpu]).arg(exe).arg("fanout");
    for addr in &addrs {
        cmd.args(["--sub-url", &url(addr)]);
    }
    // the publisher on node 1
    cmd.args(["--pub-url", &url(&addrs[0])]);
    cmd.args(["--subscribers", &a.subscribers.to_string(), "--size", "64"]);
    cmd.args(["--rate", &load.rate(a).to_string()]);
    cmd.args(["--duration", &a.duration, "--warmup", &a.warmup]);
    cmd.args(["--mark-window", "--json"]);
    let node_pids: Vec<u32> = nodes.0.iter().map(Child::id).collect();
    let redis_pids: Vec<u32> = redis
        .filter(|_| topo.redis())
        .map(|r| r.child.id())
        .into_iter()
        .collect();
    let (out, seen) = crate::watch::run(&mut cmd, &[&node_pids, &redis_pids])?;
    drop(nodes);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| format!("load generator failed ({}): {}", out.status, stdout.trim()))?;
    let mut r =
        serde_json::from_str::<Report>(line).map_err(|e| format!("bad report {line}: {e}"))?;
    r.server_rss = seen[0].peak_rss;
    r.redis_rss = seen[1].peak_rss;
    (r.server_cpu, r.redis_cpu) = (seen[0].cpu, seen[1].cpu);
    Ok(r)
}

fn brief(r: &Report) -> String {
    let mut s = format!(
        "{:.0} deliveries/s p50 {:.0} us p99 {:.0} us",
        r.rate, r.latency.p50_us, r.latency.p99_us
    );
    if let Some(c) = &r.cross_node {
        let _ = write!(
            s,
            " (cross-node p50 {:.0} us p99 {:.0} us, same-node p99 {:.0} us)",
            c.latency.p50_us,
            c.latency.p99_us,
            r.same_node.as_ref().map_or(f64::NAN, |g| g.latency.p99_us)
        );
    }
    let _ = write!(
        s,
        " lost {} errors {} CPU nodes {:.2} redis {:.3}",
        r.lost, r.errors, r.server_cpu, r.redis_cpu
    );
    s
}

fn read_results(
    p: &Path,
    topos: &[Topology],
    loads: &[Load],
) -> Result<Vec<Vec<Vec<Run>>>, String> {
    crate::suite::read_results(
        p,
        (loads.len(), topos.len()),
        |t, l| {
            let li = loads.iter().position(|x| x.key() == l)?;
            Some((li, topos.iter().position(|x| x.key() == t)?))
        },
        |r, v| Run {
            r,
            load: v["load_avg"].as_f64().unwrap_or(f64::NAN),
        },
    )
}

fn render(
    a: &SuiteArgs,
    topos: &[Topology],
    loads: &[Load],
    results: &[Vec<Vec<Run>>],
    took: Duration,
) -> String {
    let mut md = String::new();
    let loads_seen: Vec<f64> = results
        .iter()
        .flatten()
        .flatten()
        .map(|r| r.load)
        .filter(|l| !l.is_nan())
        .collect();
    let (lo, hi) = loads_seen
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &l| {
            (lo.min(l), hi.max(l))
        });
    let _ = writeln!(
        md,
        "Cluster suite: {} repetitions (medians), runs of {} after {} warm-up, {} subscribers (round-robin over the nodes), publisher on node 1; nodes and redis-server on CPU {}, load generator on CPU {}; 1-minute load average {} at the runs' starts{}.\n",
        a.reps,
        a.duration,
        a.warmup,
        a.subscribers,
        a.server_cpu,
        a.client_cpu,
        if loads_seen.is_empty() {
            "–".to_string()
        } else {
            format!("{lo:.2}–{hi:.2}")
        },
        if took.is_zero() {
            String::new()
        } else {
            format!("; took {:.0} s", took.as_secs_f64())
        }
    );
    // the baseline of the ratios: 1 node + Redis, else the first topology
    let base = topos
        .iter()
        .position(|&t| t == Topology::SingleRedis)
        .unwrap_or(0);
    let base_label = topos[base].label(a.nodes);
    for (li, &load) in loads.iter().enumerate() {
        let _ = writeln!(
            md,
            "### Fan-out across nodes: {} subscribers, 64 B text, {} publications/s\n",
            a.subscribers,
            load.rate(a)
        );
        let _ = writeln!(md, "| topology | deliveries/s | p50 µs | p99 µs | p99.9 µs | same node p50 / p99 µs | cross node p50 / p99 µs | lost | errors | nodes CPU (cores) | redis CPU (cores) | nodes peak RSS MiB | redis peak RSS MiB | ÷ {base_label}: deliveries/s | p50 | p99 | CPU (nodes + redis) |");
        let _ = writeln!(
            md,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for (ti, &topo) in topos.iter().enumerate() {
            let runs = &results[li][ti];
            if runs.is_empty() {
                continue;
            }
            let m = |f: &dyn Fn(&Report) -> f64| median(runs.iter().map(|x| f(&x.r)).collect());
            // latency: median over the runs that have samples
            let ml = |f: &dyn Fn(&Report) -> Option<f64>| {
                median(
                    runs.iter()
                        .filter(|x| x.r.latency.samples > 0)
                        .filter_map(|x| f(&x.r))
                        .collect(),
                )
            };
            // paired: this topology's run ÷ the baseline's run of the same repetition
            let ratio = |f: &dyn Fn(&Report) -> f64| {
                median(
                    runs.iter()
                        .filter_map(|x| {
                            results[li][base]
                                .iter()
                                .find(|b| b.r.rep == x.r.rep)
                                .map(|b| f(&x.r) / f(&b.r))
                        })
                        .filter(|v| v.is_finite())
                        .collect(),
                )
            };
            // single node: every subscriber is on the publisher's node
            let same = |f: fn(&crate::stats::Latency) -> f64| {
                ml(&|r| Some(f(r.same_node.as_ref().map_or(&r.latency, |g| &g.latency))))
            };
            let cross = |f: fn(&crate::stats::Latency) -> f64| {
                ml(&|r| {
                    r.cross_node
                        .as_ref()
                        .filter(|g| g.latency.samples > 0)
                        .map(|g| f(&g.latency))
                })
            };
            let pair = |p50: f64, p99: f64| {
                if p50.is_nan() {
                    "–".to_string()
                } else {
                    format!("{} / {}", fmt_num(p50), fmt_num(p99))
                }
            };
            let errors: u64 = runs.iter().map(|x| x.r.errors).sum();
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {errors} | {:.2} | {} | {:.0} | {} | {} | {} | {} | {} |",
                topo.label(a.nodes),
                fmt_num(m(&|r| r.rate)),
                fmt_num(ml(&|r| Some(r.latency.p50_us))),
                fmt_num(ml(&|r| Some(r.latency.p99_us))),
                fmt_num(ml(&|r| Some(r.latency.p999_us))),
                pair(same(|l| l.p50_us), same(|l| l.p99_us)),
                pair(cross(|l| l.p50_us), cross(|l| l.p99_us)),
                fmt_num(m(&|r| r.lost as f64)),
                m(&|r| r.server_cpu),
                if topo.redis() {
                    format!("{:.3}", m(&|r| r.redis_cpu))
                } else {
                    "–".into()
                },
                m(&|r| r.server_rss as f64) / 1048576.0,
                if topo.redis() {
                    format!("{:.1}", m(&|r| r.redis_rss as f64) / 1048576.0)
                } else {
                    "–".into()
                },
                fmt_ratio(ratio(&|r| r.rate)),
                fmt_ratio(ratio(&|r| r.latency.p50_us)),
                fmt_ratio(ratio(&|r| r.latency.p99_us)),
                fmt_ratio(ratio(&|r| r.server_cpu + r.redis_cpu)),
            );
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(
        md,
        "Ratios are the median over the repetitions of the topology's figure divided by {base_label}'s in the same repetition (the other columns are plain medians; latency over the repetitions with samples). Latency is publish → receive, in the load generator's clock, for the publications of the measured window; `same node` are the subscribers on the publisher's node, `cross node` those on the others (their deliveries went node 1 → redis-server → node N); on one node every subscriber is on the publisher's node. `lost` counts deliveries of the window's publications missing 3 s after it; `errors` sums closed or failed connections over all repetitions. CPU is the nodes' (and redis-server's) user + system time over the measured window divided by its length, from /proc/PID/stat; RSS the peak, sampled every 200 ms during the run, of the nodes' summed VmRSS (and redis-server's)."
    );
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_section_detection() {
        assert!(has_redis_section("[redis]\nshared_history = true\n"));
        assert!(has_redis_section("[hub]\nhistory_size = 0\n[ redis ]\n"));
        assert!(has_redis_section("redis.shared_history = true\n"));
        assert!(has_redis_section("redis = { url = \"redis://x:1\" }\n"));
        assert!(!has_redis_section("[hub]\nhistory_size = 0\n"));
        assert!(!has_redis_section("[redisx]\n# [redis]\n"));
    }

    #[test]
    fn names() {
        for t in ["single", "single-redis", "multi-redis"] {
            assert_eq!(Topology::parse(t).unwrap().key(), t);
        }
        assert!(Topology::parse("cluster").is_err());
        assert_eq!(Topology::MultiRedis.nodes(3), 3);
        assert_eq!(Topology::SingleRedis.nodes(3), 1);
        assert!(!Topology::Single.redis());
        assert_eq!(Load::parse("fanout-light").unwrap().key(), "fanout-light");
        assert!(Load::parse("echo16").is_err());
    }
}
