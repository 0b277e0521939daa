//! `echo`: N connections, each keeping `in_flight` messages pipelined; the send
//! time of each in-flight message is kept per connection in a FIFO (replies come
//! back in order), so the payload is a constant buffer and nothing is allocated
//! per message. The WebSocket and raw TCP clients do no per-message work
//! beyond counting: prebuilt frames out, frame headers (or bytes) counted in.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::fanout::{WINDOW_CLOSE, WINDOW_OPEN};
use crate::sio::{parse_ack, SioConn};
use crate::sockjs::SockJsWs;
use crate::stats::{new_hist, Latency, Report, Timeline};
use crate::util::{now_ns, parse_url, Target};
use crate::ws::{masked_text_frames, tcp_connect, FrameCounter, FrameStop, WsConn};

#[derive(Clone, Debug, clap::Args)]
pub struct EchoArgs {
    /// ws://host:port/path of the echo endpoint (with --raw-tcp: the TCP echo server's address)
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws/echo")]
    pub url: String,
    #[arg(long, default_value_t = 100)]
    pub connections: usize,
    /// payload bytes per message
    #[arg(long, default_value_t = 32)]
    pub size: usize,
    /// messages kept in flight per connection
    #[arg(long, default_value_t = 16)]
    pub in_flight: usize,
    #[arg(long, default_value = "10s", value_parser = crate::util::parse_duration)]
    pub duration: Duration,
    #[arg(long, default_value = "2s", value_parser = crate::util::parse_duration)]
    pub warmup: Duration,
    /// speak plain TCP echo (same sizes): the ceiling reference
    #[arg(long)]
    pub raw_tcp: bool,
    /// print `@window-open` and `@window-close` on stderr when the measured window
    /// opens and closes (the suite samples the server's CPU time then)
    #[arg(long, hide = true)]
    pub mark_window: bool,
}

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

struct Shared {
    phase: Cell<u8>,
    count: Cell<u64>,
    errors: Cell<u64>,
    ready: Cell<usize>,
    hist: RefCell<Histogram<u64>>,
    timeline: Timeline,
}

impl Shared {
    #[inline]
    fn completed(&self, fifo: &mut VecDeque<u64>, n: usize, now: u64) {
        if self.phase.get() == MEASURE {
            let mut h = self.hist.borrow_mut();
            for _ in 0..n {
                let sent = fifo.pop_front().unwrap_or(now);
                h.saturating_record(now.saturating_sub(sent).max(1));
            }
            self.count.set(self.count.get() + n as u64);
            self.timeline.add(now, n as u64);
        } else {
            for _ in 0..n {
                fifo.pop_front();
            }
        }
    }
    fn error(&self, what: &str) {
        if self.phase.get() != STOP {
            if self.errors.get() < 3 {
                eprintln!("echo: connection error: {what}");
            }
            self.errors.set(self.errors.get() + 1);
        }
    }
}

/// What the echo connections speak.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Proto {
    WebSocket,
    SocketIo,
    /// SockJS over its `websocket` transport
    SockJs,
}

pub fn run(a: EchoArgs) -> Result<Report, String> {
    run_proto(a, Proto::WebSocket)
}

/// `sio-echo`: the same over Socket.IO: every message is an acked `echo`
/// event (`42<id>["echo","xx…"]`), answered by `43<id>["xx…"]`.
pub fn run_sio(a: EchoArgs) -> Result<Report, String> {
    if a.raw_tcp {
        return Err("--raw-tcp does not apply to Socket.IO".into());
    }
    run_proto(a, Proto::SocketIo)
}

/// `sockjs-echo`: the same over SockJS's `websocket` transport (`--url
/// ws://HOST/bench`, the service prefix): each session is
/// `/bench/<server>/<session>/websocket`, every message goes out as
/// `["xx…"]` and comes back in an `a[...]` frame (possibly with others).
pub fn run_sockjs(a: EchoArgs) -> Result<Report, String> {
    if a.raw_tcp {
        return Err("--raw-tcp does not apply to SockJS".into());
    }
    run_proto(a, Proto::SockJs)
}

fn run_proto(a: EchoArgs, proto: Proto) -> Result<Report, String> {
    let target = parse_url(&a.url)?;
    if a.size == 0 || a.in_flight == 0 || a.connections == 0 {
        return Err("--size, --in-flight and --connections must be positive".into());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let sh = Rc::new(Shared {
            phase: Cell::new(WARMUP),
            count: Cell::new(0),
            errors: Cell::new(0),
            ready: Cell::new(0),
            hist: RefCell::new(new_hist()),
            timeline: Timeline::default(),
        });
        let (start_tx, start_rx) = watch::channel(false);
        for _ in 0..a.connections {
            let (sh, t, rx) = (sh.clone(), target.clone(), start_rx.clone());
            let (size, inf) = (a.size, a.in_flight);
            if proto == Proto::SocketIo {
                tokio::task::spawn_local(sio_conn(t, sh, size, inf, rx));
            } else if proto == Proto::SockJs {
                tokio::task::spawn_local(sockjs_conn(t, sh, size, inf, rx));
            } else if a.raw_tcp {
                tokio::task::spawn_local(tcp_conn(t, sh, size, inf, rx));
            } else {
                tokio::task::spawn_local(ws_conn(t, sh, size, inf, rx));
            }
        }
        // all connected (or failed) before the clock starts
        let deadline = Instant::now() + Duration::from_secs(30);
        while sh.ready.get() + (sh.errors.get() as usize) < a.connections
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if sh.ready.get() == 0 {
            return Err(format!("no connection to {} could be opened", a.url));
        }
        let _ = start_tx.send(true);
        tokio::time::sleep(a.warmup).await;
        sh.timeline.start(now_ns());
        sh.phase.set(MEASURE);
        if a.mark_window {
            eprintln!("{WINDOW_OPEN}");
        }
        let t0 = Instant::now();
        tokio::time::sleep(a.duration).await;
        sh.phase.set(STOP);
        if a.mark_window {
            eprintln!("{WINDOW_CLOSE}");
        }
        let secs = t0.elapsed().as_secs_f64();
        let hist = sh.hist.borrow();
        Ok(Report {
            scenario: if proto == Proto::SocketIo {
                "sio-echo".into()
            } else if proto == Proto::SockJs {
                "sockjs-echo".into()
            } else if a.raw_tcp {
                "echo-tcp".into()
            } else {
                "echo".into()
            },
            rate: sh.count.get() as f64 / secs,
            latency: Latency::from_hist(&hist),
            errors: sh.errors.get(),
            connections: sh.ready.get() as u64,
            seconds: secs,
            timeline: sh.timeline.rates(),
            ..Default::default()
        })
    })
}

async fn ws_conn(
    t: Target,
    sh: Rc<Shared>,
    size: usize,
    inf: usize,
    mut start: watch::Receiver<bool>,
) {
    let c = match WsConn::connect(&t, None).await {
        Ok(c) => c,
        Err(e) => return sh.error(&e.to_string()),
    };
    let (mut s, early) = c.into_parts();
    // A fixed key per connection, never zero (a server could skip the XOR).
    let key = ((now_ns() as u32).wrapping_mul(0x9e37_79b9) | 0x0101_0101).to_le_bytes();
    let out = masked_text_frames(&vec![b'x'; size], key, inf);
    let frame_len = out.len() / inf;
    let mut frames = FrameCounter::new(size);
    sh.ready.set(sh.ready.get() + 1);
    let _ = start.wait_for(|v| *v).await;
    let mut fifo: VecDeque<u64> = VecDeque::with_capacity(inf + 1);
    let now = now_ns();
    fifo.extend(std::iter::repeat_n(now, inf));
    if let Err(e) = s.write_all(&out).await {
        return sh.error(&e.to_string());
    }
    let mut buf = vec![0u8; early.len().max(64 * 1024)];
    let mut got = early.len();
    buf[..got].copy_from_slice(&early);
    loop {
        if got == 0 {
            got = match s.read(&mut buf).await {
                Ok(0) => return sh.error("closed by server"),
                Err(e) => return sh.error(&e.to_string()),
                Ok(n) => n,
            };
        }
        if sh.phase.get() == STOP {
            return;
        }
        let now = now_ns();
        let n = match frames.feed(&buf[..got]) {
            Ok(n) => n,
            Err(FrameStop::Closed) => return sh.error("closed by server"),
            Err(FrameStop::Bad(what)) => return sh.error(what),
        };
        got = 0;
        if n == 0 {
            continue;
        }
        if n > fifo.len() {
            return sh.error("more replies than messages sent");
        }
        sh.completed(&mut fifo, n, now);
        fifo.extend(std::iter::repeat_n(now, n));
        if let Err(e) = s.write_all(&out[..n * frame_len]).await {
            return sh.error(&e.to_string());
        }
    }
}

/// SockJS echo over the `websocket` transport: replies come back in order
/// (one session), several per frame at times.
async fn sockjs_conn(
    t: Target,
    sh: Rc<Shared>,
    size: usize,
    inf: usize,
    mut start: watch::Receiver<bool>,
) {
    let payload = "x".repeat(size);
    let mut c = match SockJsWs::connect(&t, None).await {
        Ok(c) => c,
        Err(e) => return sh.error(&e.to_string()),
    };
    sh.ready.set(sh.ready.get() + 1);
    let _ = start.wait_for(|v| *v).await;
    let mut fifo: VecDeque<u64> = VecDeque::with_capacity(inf + 1);
    let now = now_ns();
    for _ in 0..inf {
        c.send(&payload);
        fifo.push_back(now);
    }
    if let Err(e) = c.flush().await {
        return sh.error(&e.to_string());
    }
    loop {
        match c.read().await {
            Ok(0) => return sh.error("closed by server"),
            Err(e) => return sh.error(&e.to_string()),
            Ok(_) => {}
        }
        if sh.phase.get() == STOP {
            return;
        }
        let now = now_ns();
        let mut n = 0usize;
        let mut bad = 0usize;
        let alive = c.process(|p| {
            n += 1;
            bad += (p.len() != size) as usize;
        });
        if bad > 0 {
            return sh.error("echoed message of the wrong size");
        }
        sh.completed(&mut fifo, n, now);
        for _ in 0..n {
            c.send(&payload);
            fifo.push_back(now);
        }
        if let Err(e) = c.flush().await {
            return sh.error(&e.to_string());
        }
        if !alive {
            return sh.error("closed by server");
        }
    }
}

/// Socket.IO echo: acks may come back out of order (socketioxide runs every
/// handler on its own task), so the send times are kept by ack id in a small
/// list of the `inf` acks outstanding.
async fn sio_conn(
    t: Target,
    sh: Rc<Shared>,
    size: usize,
    inf: usize,
    mut start: watch::Receiver<bool>,
) {
    use std::fmt::Write as _;
    let payload = "x".repeat(size);
    let mut c = match SioConn::connect(&t, None).await {
        Ok(c) => c,
        Err(e) => return sh.error(&e.to_string()),
    };
    sh.ready.set(sh.ready.get() + 1);
    let _ = start.wait_for(|v| *v).await;
    // (ack id, send time) of the events in flight
    let mut pending: Vec<(u64, u64)> = Vec::with_capacity(inf);
    let mut next_id = 0u64;
    let mut msg = String::with_capacity(size + 32);
    let mut send = |c: &mut SioConn, pending: &mut Vec<(u64, u64)>, now: u64| {
        msg.clear();
        let _ = write!(msg, "42{next_id}[\"echo\",\"{payload}\"]");
        c.send(&msg);
        pending.push((next_id, now));
        next_id += 1;
    };
    let now = now_ns();
    for _ in 0..inf {
        send(&mut c, &mut pending, now);
    }
    if let Err(e) = c.flush().await {
        return sh.error(&e.to_string());
    }
    let mut done: Vec<u64> = Vec::with_capacity(inf);
    let mut fifo: VecDeque<u64> = VecDeque::with_capacity(inf);
    loop {
        match c.read().await {
            Ok(0) => return sh.error("closed by server"),
            Err(e) => return sh.error(&e.to_string()),
            Ok(_) => {}
        }
        if sh.phase.get() == STOP {
            return;
        }
        let now = now_ns();
        let mut bad = 0usize;
        done.clear();
        let alive = c.process(|p| {
            if let Some((id, args)) = parse_ack(p) {
                // `["xx…"]`
                bad += (args.len() != size + 4) as usize;
                done.push(id);
            }
        });
        if bad > 0 {
            return sh.error("echo ack with arguments of the wrong size");
        }
        for &id in &done {
            let Some(i) = pending.iter().position(|&(p, _)| p == id) else {
                return sh.error("ack for an unknown id");
            };
            fifo.push_back(pending.swap_remove(i).1);
        }
        let n = fifo.len();
        sh.completed(&mut fifo, n, now);
        for _ in 0..n {
            send(&mut c, &mut pending, now);
        }
        if let Err(e) = c.flush().await {
            return sh.error(&e.to_string());
        }
        if !alive {
            return sh.error("closed by server");
        }
    }
}

async fn tcp_conn(
    t: Target,
    sh: Rc<Shared>,
    size: usize,
    inf: usize,
    mut start: watch::Receiver<bool>,
) {
    let out = vec![b'x'; size * inf];
    let mut s = match tcp_connect(t.addr, None).await {
        Ok(s) => s,
        Err(e) => return sh.error(&e.to_string()),
    };
    sh.ready.set(sh.ready.get() + 1);
    let _ = start.wait_for(|v| *v).await;
    let mut fifo: VecDeque<u64> = VecDeque::with_capacity(inf + 1);
    let now = now_ns();
    fifo.extend(std::iter::repeat_n(now, inf));
    if let Err(e) = s.write_all(&out).await {
        return sh.error(&e.to_string());
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut partial = 0usize; // bytes of a message not yet complete
    loop {
        let got = match s.read(&mut buf).await {
            Ok(0) => return sh.error("closed by server"),
            Err(e) => return sh.error(&e.to_string()),
            Ok(n) => n,
        };
        if sh.phase.get() == STOP {
            return;
        }
        let now = now_ns();
        partial += got;
        let n = partial / size;
        partial %= size;
        if n == 0 {
            continue;
        }
        sh.completed(&mut fifo, n, now);
        fifo.extend(std::iter::repeat_n(now, n));
        if let Err(e) = s.write_all(&out[..n * size]).await {
            return sh.error(&e.to_string());
        }
    }
}
