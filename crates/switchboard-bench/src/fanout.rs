//! `fanout`: S subscriber connections and one publisher connection. The
//! publisher sends `rate` messages per second; each payload starts with its
//! sequence number and its send time (16 hex digits each, nanoseconds since the
//! process-local epoch shared by publisher and subscribers), padded to `size`.
//!
//! Measured window: publications stamped in [window start, window end). After
//! the window the publisher stops and the subscribers get a grace period to
//! receive what is still in flight; `lost` = expected − delivered of the
//! window's publications. `rate` counts deliveries *received* during the window.
//! The publisher's own connection reads and discards what it is sent (a
//! Switchboard `/ws/topic/{name}` connection is itself a subscriber).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::Semaphore;

use crate::sio::SioConn;
use crate::stats::{new_hist, Latency, Report};
use crate::util::{now_ns, parse_url, Target};
use crate::ws::WsConn;

#[derive(Clone, Debug, clap::Args)]
pub struct FanoutArgs {
    /// URL the subscribers connect to (Switchboard: ws://HOST/ws/topic/bench; peers: ws://HOST/fanout)
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws/topic/bench")]
    pub sub_url: String,
    /// URL the publisher connects to (Switchboard: the same topic URL; peers: ws://HOST/publish)
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws/topic/bench")]
    pub pub_url: String,
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// payload bytes (at least 32)
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// publications per second
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    #[arg(long, default_value = "10s", value_parser = crate::util::parse_duration)]
    pub duration: Duration,
    #[arg(long, default_value = "2s", value_parser = crate::util::parse_duration)]
    pub warmup: Duration,
    /// how long to wait after the window for deliveries still in flight
    #[arg(long, default_value = "3s", value_parser = crate::util::parse_duration)]
    pub grace: Duration,
}

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const GRACE: u8 = 2;
const DONE: u8 = 3;

struct Shared {
    phase: Cell<u8>,
    win_start: Cell<u64>,
    win_end: Cell<u64>,
    /// deliveries of window publications (any time)
    delivered: Cell<u64>,
    /// deliveries received while the window was open
    received_in_window: Cell<u64>,
    published: Cell<u64>,
    errors: Cell<u64>,
    ready: Cell<usize>,
    hist: RefCell<Histogram<u64>>,
}

impl Shared {
    fn error(&self, what: &str) {
        if self.phase.get() != DONE {
            if self.errors.get() < 3 {
                eprintln!("fanout: connection error: {what}");
            }
            self.errors.set(self.errors.get() + 1);
        }
    }
}

#[inline]
fn hex16(b: &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for &c in &b[..16] {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | d as u64;
    }
    Some(v)
}

#[inline]
fn put_hex16(out: &mut [u8], v: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in 0..16 {
        out[i] = HEX[((v >> (60 - 4 * i)) & 0xf) as usize];
    }
}

pub fn run(a: FanoutArgs) -> Result<Report, String> {
    run_proto(a, false)
}

/// `sio-fanout`: the same over Socket.IO. The subscribers `join` the room
/// (`420["join","bench"]`, waiting for its ack), the publisher (a socket of
/// its own, in no room) sends `42["broadcast","bench","<payload>"]` without
/// an ack id, the subscribers receive `42["msg","<payload>"]`. `--sub-url`
/// and `--pub-url` are both the server's `ws://HOST/socket.io/`.
pub fn run_sio(a: FanoutArgs) -> Result<Report, String> {
    run_proto(a, true)
}

/// What the publisher needs from its connection, WebSocket or Socket.IO.
trait PubConn {
    /// queues one publication
    fn publish(&mut self, payload: &str);
    /// reads and discards what the server sent (answering pings); false once closed
    fn discard(&mut self) -> std::io::Result<bool>;
    async fn flush(&mut self) -> std::io::Result<()>;
}

impl PubConn for WsConn {
    fn publish(&mut self, payload: &str) {
        self.send_text(payload);
    }
    fn discard(&mut self) -> std::io::Result<bool> {
        self.try_read()?;
        Ok(self.process(|_| {}))
    }
    async fn flush(&mut self) -> std::io::Result<()> {
        WsConn::flush(self).await
    }
}

struct SioPub {
    c: SioConn,
    msg: String,
}

impl PubConn for SioPub {
    fn publish(&mut self, payload: &str) {
        self.msg.clear();
        self.msg.push_str("42[\"broadcast\",\"");
        self.msg.push_str(SIO_ROOM);
        self.msg.push_str("\",\"");
        self.msg.push_str(payload);
        self.msg.push_str("\"]");
        self.c.send(&self.msg);
    }
    fn discard(&mut self) -> std::io::Result<bool> {
        self.c.try_read()?;
        Ok(self.c.process(|_| {}))
    }
    async fn flush(&mut self) -> std::io::Result<()> {
        self.c.flush().await
    }
}

/// The room the Socket.IO subscribers join.
const SIO_ROOM: &str = "bench";

fn run_proto(a: FanoutArgs, sio: bool) -> Result<Report, String> {
    let sub = parse_url(&a.sub_url)?;
    let publ = parse_url(&a.pub_url)?;
    if a.size < 32 {
        return Err("--size must be at least 32".into());
    }
    crate::util::raise_nofile();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let sh = Rc::new(Shared {
            phase: Cell::new(WARMUP),
            win_start: Cell::new(u64::MAX),
            win_end: Cell::new(u64::MAX),
            delivered: Cell::new(0),
            received_in_window: Cell::new(0),
            published: Cell::new(0),
            errors: Cell::new(0),
            ready: Cell::new(0),
            hist: RefCell::new(new_hist()),
        });
        let sem = Rc::new(Semaphore::new(64));
        for _ in 0..a.subscribers {
            if sio {
                tokio::task::spawn_local(sio_subscriber(sub.clone(), sh.clone(), sem.clone()));
            } else {
                tokio::task::spawn_local(subscriber(sub.clone(), sh.clone(), sem.clone()));
            }
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while sh.ready.get() + (sh.errors.get() as usize) < a.subscribers
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let subs = sh.ready.get();
        if subs == 0 {
            return Err(format!("no subscriber could connect to {}", a.sub_url));
        }
        // let the server register the last subscriptions
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (size, rate) = (a.size, a.rate);
        let shp = sh.clone();
        let publisher = if sio {
            let c = SioConn::connect(&publ, None)
                .await
                .map_err(|e| format!("publisher: {e}"))?;
            let p = SioPub {
                c,
                msg: String::with_capacity(size + 64),
            };
            tokio::task::spawn_local(publish(p, shp, size, rate))
        } else {
            let p = WsConn::connect(&publ, None)
                .await
                .map_err(|e| format!("publisher: {e}"))?;
            tokio::task::spawn_local(publish(p, shp, size, rate))
        };
        tokio::time::sleep(a.warmup).await;
        sh.win_start.set(now_ns());
        sh.phase.set(MEASURE);
        let t0 = Instant::now();
        tokio::time::sleep(a.duration).await;
        sh.win_end.set(now_ns());
        sh.phase.set(GRACE);
        let secs = t0.elapsed().as_secs_f64();
        let received = sh.received_in_window.get();
        let expected = sh.published.get() * subs as u64;
        let grace_end = Instant::now() + a.grace;
        while sh.delivered.get() < expected && Instant::now() < grace_end {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sh.phase.set(DONE);
        publisher.abort();
        let hist = sh.hist.borrow();
        Ok(Report {
            scenario: if sio { "sio-fanout" } else { "fanout" }.into(),
            rate: received as f64 / secs,
            latency: Latency::from_hist(&hist),
            published: sh.published.get(),
            delivered: sh.delivered.get(),
            lost: expected.saturating_sub(sh.delivered.get()),
            errors: sh.errors.get(),
            connections: subs as u64,
            seconds: secs,
            ..Default::default()
        })
    })
}

async fn subscriber(t: Target, sh: Rc<Shared>, sem: Rc<Semaphore>) {
    let permit = sem.acquire().await;
    let mut c = match WsConn::connect(&t, None).await {
        Ok(c) => c,
        Err(e) => return sh.error(&e.to_string()),
    };
    drop(permit);
    sh.ready.set(sh.ready.get() + 1);
    loop {
        match c.read().await {
            Ok(0) => return sh.error("closed by server"),
            Err(e) => return sh.error(&e.to_string()),
            Ok(_) => {}
        }
        let phase = sh.phase.get();
        if phase == DONE {
            return;
        }
        let now = now_ns();
        let (ws, we) = (sh.win_start.get(), sh.win_end.get());
        let mut n = 0u64;
        let mut in_win = 0u64;
        let alive = {
            let mut h = sh.hist.borrow_mut();
            c.process(|p| {
                n += 1;
                if p.len() >= 32 {
                    if let Some(ts) = hex16(&p[16..32]) {
                        if ts >= ws && ts < we {
                            in_win += 1;
                            h.saturating_record(now.saturating_sub(ts).max(1));
                        }
                    }
                }
            })
        };
        sh.delivered.set(sh.delivered.get() + in_win);
        if phase == MEASURE {
            sh.received_in_window.set(sh.received_in_window.get() + n);
        }
        if let Err(e) = c.flush().await {
            return sh.error(&e.to_string());
        }
        if !alive {
            return sh.error("closed by server");
        }
    }
}

/// The publisher: paces itself on a 1 ms tick (`rate × elapsed` due).
async fn publish(mut p: impl PubConn, sh: Rc<Shared>, size: usize, rate: u64) {
    let mut buf = vec![b'.'; size];
    let mut iv = tokio::time::interval(Duration::from_millis(1));
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let t0 = Instant::now();
    let mut seq = 0u64;
    loop {
        iv.tick().await;
        let phase = sh.phase.get();
        if phase == DONE {
            return;
        }
        if phase < GRACE {
            let due = (t0.elapsed().as_secs_f64() * rate as f64) as u64;
            while seq < due {
                let ts = now_ns();
                put_hex16(&mut buf[0..16], seq);
                put_hex16(&mut buf[16..32], ts);
                // ASCII only
                p.publish(std::str::from_utf8(&buf).unwrap());
                if ts >= sh.win_start.get() && ts < sh.win_end.get() {
                    sh.published.set(sh.published.get() + 1);
                }
                seq += 1;
            }
        }
        // discard what the publisher's own connection is sent
        if let Err(e) = p.discard() {
            return sh.error(&format!("publisher: {e}"));
        }
        if let Err(e) = p.flush().await {
            return sh.error(&format!("publisher: {e}"));
        }
    }
}

/// A Socket.IO subscriber: joins the room (waits for the ack), then counts
/// `42["msg","<payload>"]` events.
async fn sio_subscriber(t: Target, sh: Rc<Shared>, sem: Rc<Semaphore>) {
    const PREFIX: &[u8] = b"2[\"msg\",\"";
    let permit = sem.acquire().await;
    let mut c = match SioConn::connect(&t, None).await {
        Ok(c) => c,
        Err(e) => return sh.error(&e.to_string()),
    };
    c.send(&format!("420[\"join\",\"{SIO_ROOM}\"]"));
    if let Err(e) = c.flush().await {
        return sh.error(&e.to_string());
    }
    if let Err(e) = c.wait_for(|m| m.starts_with(b"430[")).await {
        return sh.error(&format!("join: {e}"));
    }
    drop(permit);
    sh.ready.set(sh.ready.get() + 1);
    loop {
        match c.read().await {
            Ok(0) => return sh.error("closed by server"),
            Err(e) => return sh.error(&e.to_string()),
            Ok(_) => {}
        }
        let phase = sh.phase.get();
        if phase == DONE {
            return;
        }
        let now = now_ns();
        let (ws, we) = (sh.win_start.get(), sh.win_end.get());
        let mut n = 0u64;
        let mut in_win = 0u64;
        let alive = {
            let mut h = sh.hist.borrow_mut();
            c.process(|p| {
                let Some(p) = p.strip_prefix(PREFIX) else {
                    return;
                };
                n += 1;
                if p.len() >= 32 {
                    if let Some(ts) = hex16(&p[16..32]) {
                        if ts >= ws && ts < we {
                            in_win += 1;
                            h.saturating_record(now.saturating_sub(ts).max(1));
                        }
                    }
                }
            })
        };
        sh.delivered.set(sh.delivered.get() + in_win);
        if phase == MEASURE {
            sh.received_in_window.set(sh.received_in_window.get() + n);
        }
        if let Err(e) = c.flush().await {
            return sh.error(&e.to_string());
        }
        if !alive {
            return sh.error("closed by server");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let mut b = [0u8; 16];
        for v in [0u64, 1, 0xdead_beef, u64::MAX] {
            put_hex16(&mut b, v);
            assert_eq!(hex16(&b), Some(v));
        }
        assert_eq!(hex16(b"000000000000000g"), None);
    }
}
