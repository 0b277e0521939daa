//! `idle`: opens N connections that then stay silent, and reports the growth
//! of the server's resident memory (VmRSS of the process and its children)
//! per connection. The connections are raw WebSocket by default, or those
//! of another protocol and transport (`--proto`). With `--cycles K` it is a
//! leak check (issue 7, "Leaks"): the N connections are opened and closed K
//! times and the server's RSS is read after each opening and each closing.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use serde::{Deserialize, Serialize};

use crate::sio::SioConn;
use crate::sockjs::{SockJsWs, XhrStream};
use crate::stats::Report;
use crate::stomp::{StompConn, StompOpts};
use crate::util::{parse_url, raise_nofile, rss_anon_bytes, rss_tree_bytes, source_ip, Target};
use crate::ws::WsConn;

/// The protocol and transport of the connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Proto {
    /// raw WebSocket (`--url ws://HOST/ws/echo`, or `/ws` for the envelope)
    Ws,
    /// Socket.IO over WebSocket, connected to `/` (`--url ws://HOST/socket.io/`)
    Sio,
    /// SockJS over its `websocket` transport (`--url ws://HOST/sockjs/echo`)
    SockjsWs,
    /// SockJS over `xhr-streaming` (`--url http://HOST/sockjs/echo`); a
    /// closed session lives on `[sockjs] disconnect_delay_ms` (5 s)
    SockjsXhr,
    /// STOMP over WebSocket, CONNECTED (`--url ws://HOST/stomp`)
    Stomp,
}

/// `--cycles`: the server's RSS after each opening and each closing of the
/// connections (bytes), in order.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Cycles {
    pub open: Vec<u64>,
    pub closed: Vec<u64>,
    /// RssAnon (without file-backed pages such as the binary's code) after
    /// each closing, and before the first cycle (after the warm-up, if any).
    #[serde(default)]
    pub closed_anon: Vec<u64>,
    #[serde(default)]
    pub anon_before: u64,
    /// With `--warmup`: VmRSS of the fresh server, before the warm-up (the
    /// report's `rss_before` is then read after it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fresh: Option<u64>,
}

#[derive(Clone, Debug, clap::Args)]
pub struct IdleArgs {
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws/echo")]
    pub url: String,
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
    /// pid of the server whose RSS is read (from /proc/PID/status)
    #[arg(long)]
    pub server_pid: u32,
    /// spread connections over source addresses 127.0.0.1..=127.0.0.N (more ephemeral ports)
    #[arg(long, default_value_t = 4)]
    pub source_ips: usize,
    /// handshakes in progress at once
    #[arg(long, default_value_t = 128)]
    pub concurrency: usize,
    /// wait after the last connection before reading RSS again
    #[arg(long, default_value = "2s", value_parser = crate::util::parse_duration)]
    pub settle: Duration,
    /// protocol and transport of the connections (`sio-idle` is `--proto sio`)
    #[arg(long, value_enum, default_value = "ws")]
    pub proto: Proto,
    /// leak check: open and close the connections this many times (0: open
    /// once and measure, the idle scenario)
    #[arg(long, default_value_t = 0)]
    pub cycles: u32,
    /// with --cycles: wait after closing before reading RSS (SockJS
    /// xhr-streaming sessions outlive their connection by the disconnect delay)
    #[arg(long, default_value = "3s", value_parser = crate::util::parse_duration)]
    pub closed_settle: Duration,
    /// with --cycles: open and close this many connections first and take
    /// the baseline after them (code paths paged in, lazy state built)
    #[arg(long, default_value_t = 0)]
    pub warmup: usize,
}

pub fn run(a: IdleArgs) -> Result<Report, String> {
    run_proto(a)
}

/// `sio-idle`: the same with Socket.IO sockets: each connection completes the
/// Engine.IO handshake and connects to the namespace `/` (`40` answered by
/// `40{"sid":..}`) before it goes idle (with pingInterval 25 s, the first ping
/// comes after the measurement in a normal run).
pub fn run_sio(a: IdleArgs) -> Result<Report, String> {
    run_proto(IdleArgs {
        proto: Proto::Sio,
        ..a
    })
}

/// An open connection, kept until the measurement is done.
#[allow(dead_code)] // held, never read
enum Held {
    Ws(WsConn),
    Sio(SioConn),
    SockJsWs(SockJsWs),
    SockJsXhr(XhrStream),
    Stomp(StompConn),
}

async fn connect(proto: Proto, t: &Target, ip: Option<std::net::IpAddr>) -> std::io::Result<Held> {
    Ok(match proto {
        Proto::Ws => Held::Ws(WsConn::connect(t, ip).await?),
        Proto::Sio => Held::Sio(SioConn::connect(t, ip).await?),
        Proto::SockjsWs => Held::SockJsWs(SockJsWs::connect(t, ip).await?),
        Proto::SockjsXhr => Held::SockJsXhr(XhrStream::open(t, ip).await?),
        Proto::Stomp => {
            let opts = StompOpts {
                login: "guest".into(),
                passcode: "guest".into(),
                vhost: "/".into(),
                full_decode: false,
            };
            Held::Stomp(StompConn::connect(t, ip, &opts).await?)
        }
    })
}

/// Opens `a.connections` connections (at most `a.concurrency` handshakes at
/// once); returns those that opened and the number of failures.
async fn open_all(a: &IdleArgs, target: &Target) -> (Vec<Held>, u64) {
    let sem = Rc::new(Semaphore::new(a.concurrency.max(1)));
    let errors = Rc::new(Cell::new(0u64));
    let mut handles = Vec::with_capacity(a.connections);
    for i in 0..a.connections {
        let (t, sem, errors, proto) = (target.clone(), sem.clone(), errors.clone(), a.proto);
        let ip = source_ip(i, a.source_ips);
        handles.push(tokio::task::spawn_local(async move {
            let _permit = sem.acquire().await;
            match connect(proto, &t, ip).await {
                Ok(c) => Some(c),
                Err(e) => {
                    if errors.get() < 3 {
                        eprintln!("idle: connect: {e}");
                    }
                    errors.set(errors.get() + 1);
                    None
                }
            }
        }));
    }
    let mut conns = Vec::with_capacity(a.connections);
    for h in handles {
        if let Ok(Some(c)) = h.await {
            conns.push(c);
        }
    }
    (conns, errors.get())
}

fn run_proto(a: IdleArgs) -> Result<Report, String> {
    let target = parse_url(&a.url)?;
    let limit = raise_nofile();
    if (limit as usize) < a.connections + 64 {
        eprintln!(
            "idle: warning: open-files limit {limit} is below {} connections",
            a.connections
        );
    }
    let rss = |pid: u32| rss_tree_bytes(pid).map_err(|e| format!("server pid {pid}: {e}"));
    let rss_before = rss(a.server_pid)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let scenario = match (a.proto, a.cycles) {
            (Proto::Sio, 0) => "sio-idle".to_owned(),
            (Proto::Ws, 0) => "idle".to_owned(),
            (p, 0) => format!("idle-{p:?}").to_lowercase(),
            (p, _) => format!("leak-{p:?}").to_lowercase(),
        };
        if a.cycles == 0 {
            let t0 = Instant::now();
            let (conns, errors) = open_all(&a, &target).await;
            let connect_secs = t0.elapsed().as_secs_f64();
            tokio::time::sleep(a.settle).await;
            let rss_after = rss(a.server_pid)?;
            let n = conns.len() as u64;
            drop(conns);
            return Ok(Report {
                scenario,
                rss_before,
                rss_after,
                bytes_per_conn: if n > 0 {
                    rss_after.saturating_sub(rss_before) as f64 / n as f64
                } else {
                    0.0
                },
                connections: n,
                errors,
                seconds: connect_secs,
                ..Default::default()
            });
        }
        // Leak check: open, read RSS, close, read RSS; `cycles` times.
        let t0 = Instant::now();
        let mut cycles = Cycles::default();
        let mut rss_before = rss_before;
        if a.warmup > 0 {
            let warm = IdleArgs {
                connections: a.warmup,
                ..a.clone()
            };
            let (conns, _) = open_all(&warm, &target).await;
            tokio::time::sleep(a.settle).await;
            drop(conns);
            tokio::time::sleep(a.closed_settle).await;
            cycles.fresh = Some(rss_before);
            rss_before = rss(a.server_pid)?;
            eprintln!(
                "{scenario}: warm-up: {} connections opened and closed: {:.1} MiB (fresh: {:.1} MiB)",
                a.warmup,
                rss_before as f64 / 1048576.0,
                cycles.fresh.unwrap_or(0) as f64 / 1048576.0
            );
        }
        let anon = |pid: u32| rss_anon_bytes(pid).map_err(|e| format!("server pid {pid}: {e}"));
        cycles.anon_before = anon(a.server_pid)?;
        let (mut errors, mut opened) = (0, u64::MAX);
        for cycle in 1..=a.cycles {
            let (conns, e) = open_all(&a, &target).await;
            errors += e;
            opened = opened.min(conns.len() as u64);
            tokio::time::sleep(a.settle).await;
            cycles.open.push(rss(a.server_pid)?);
            drop(conns);
            tokio::time::sleep(a.closed_settle).await;
            cycles.closed.push(rss(a.server_pid)?);
            cycles.closed_anon.push(anon(a.server_pid)?);
            eprintln!(
                "{scenario}: cycle {cycle}: {} open: {:.1} MiB, closed: {:.1} MiB (before: {:.1} MiB), anonymous closed: {:.2} MiB (before: {:.2} MiB)",
                opened,
                *cycles.open.last().unwrap() as f64 / 1048576.0,
                *cycles.closed.last().unwrap() as f64 / 1048576.0,
                rss_before as f64 / 1048576.0,
                *cycles.closed_anon.last().unwrap() as f64 / 1048576.0,
                cycles.anon_before as f64 / 1048576.0
            );
        }
        let peak = cycles.open.iter().copied().max().unwrap_or(0);
        Ok(Report {
            scenario,
            rss_before,
            rss_after: *cycles.closed.last().unwrap_or(&rss_before),
            bytes_per_conn: if opened > 0 {
                peak.saturating_sub(rss_before) as f64 / opened as f64
            } else {
                0.0
            },
            connections: opened,
            errors,
            seconds: t0.elapsed().as_secs_f64(),
            cycles: Some(cycles),
            ..Default::default()
        })
    })
}
