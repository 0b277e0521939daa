//! `idle`: opens N WebSocket connections that then stay silent, and reports the
//! growth of the server's resident memory (VmRSS of the process and its
//! children) per connection.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::sio::SioConn;
use crate::stats::Report;
use crate::util::{parse_url, raise_nofile, rss_tree_bytes, source_ip};
use crate::ws::WsConn;

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
}

pub fn run(a: IdleArgs) -> Result<Report, String> {
    run_proto(a, false)
}

/// `sio-idle`: the same with Socket.IO sockets: each connection completes the
/// Engine.IO handshake and connects to the namespace `/` (`40` answered by
/// `40{"sid":..}`) before it goes idle (with pingInterval 25 s, the first ping
/// comes after the measurement in a normal run).
pub fn run_sio(a: IdleArgs) -> Result<Report, String> {
    run_proto(a, true)
}

/// An open connection, kept until the measurement is done.
enum Held {
    Ws(#[allow(dead_code)] WsConn),
    Sio(#[allow(dead_code)] SioConn),
}

fn run_proto(a: IdleArgs, sio: bool) -> Result<Report, String> {
    let target = parse_url(&a.url)?;
    let limit = raise_nofile();
    if (limit as usize) < a.connections + 64 {
        eprintln!(
            "idle: warning: open-files limit {limit} is below {} connections",
            a.connections
        );
    }
    let rss_before =
        rss_tree_bytes(a.server_pid).map_err(|e| format!("server pid {}: {e}", a.server_pid))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let sem = Rc::new(Semaphore::new(a.concurrency.max(1)));
        let errors = Rc::new(Cell::new(0u64));
        let t0 = Instant::now();
        let mut handles = Vec::with_capacity(a.connections);
        for i in 0..a.connections {
            let (t, sem, errors) = (target.clone(), sem.clone(), errors.clone());
            let ip = source_ip(i, a.source_ips);
            handles.push(tokio::task::spawn_local(async move {
                let _permit = sem.acquire().await;
                let r = if sio {
                    SioConn::connect(&t, ip).await.map(Held::Sio)
                } else {
                    WsConn::connect(&t, ip).await.map(Held::Ws)
                };
                match r {
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
        let connect_secs = t0.elapsed().as_secs_f64();
        tokio::time::sleep(a.settle).await;
        let rss_after = rss_tree_bytes(a.server_pid)
            .map_err(|e| format!("server pid {}: {e}", a.server_pid))?;
        let n = conns.len() as u64;
        drop(conns);
        Ok(Report {
            scenario: if sio { "sio-idle" } else { "idle" }.into(),
            rss_before,
            rss_after,
            bytes_per_conn: if n > 0 {
                rss_after.saturating_sub(rss_before) as f64 / n as f64
            } else {
                0.0
            },
            connections: n,
            errors: errors.get(),
            seconds: connect_secs,
            ..Default::default()
        })
    })
}
