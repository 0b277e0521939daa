//! `stomp-queue`: point-to-point queue throughput with client acknowledgements
//! over STOMP over WebSocket.
//!
//! * C consumers (one connection each) SUBSCRIBE to the queue with
//!   `ack:client-individual` (or `client`) and `prefetch-count:N` (RabbitMQ's
//!   per-subscription prefetch; other brokers may ignore it), and wait for
//!   the RECEIPT; every MESSAGE is acknowledged at once with `ACK id:<ack>`
//!   (STOMP 1.2: the MESSAGE's `ack` header), written with the other frames
//!   produced while handling the same read.
//! * Then P producers (one connection each) SEND to the queue: as fast as a
//!   window allows (`--rate 0`, the default: a producer keeps at most
//!   `--window` of its messages sent and not yet received by a consumer), or
//!   at `--rate` messages/s over all producers (paced on a 1 ms tick, still
//!   within the window).
//! * Each body (`--size`, at least 64 bytes) carries the producer's sequence
//!   number, the send time, the producer's index and a run tag (16 hex digits
//!   each but the tag, 8), padded with `.`.
//!
//! Measured: messages received and acknowledged (the ACK written) during the
//! window, per second; latency (send → receive) of the messages sent during
//! the window; and over the whole run, that every message sent was received
//! exactly once: `missing` (never received by the end of the grace period),
//! `duplicates` (received again) and `redelivered` (MESSAGEs flagged so).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use switchboard_stomp_proto::Command;
use tokio::sync::{Notify, Semaphore};

use crate::stats::{new_hist, Latency, Report};
use crate::stomp::{StompConn, StompOpts};
use crate::util::{now_ns, parse_url, Target};

/// How the consumers acknowledge (SUBSCRIBE `ack`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AckArg {
    /// `ack:client-individual`: each ACK settles one message
    ClientIndividual,
    /// `ack:client`: cumulative (every message is still acknowledged)
    Client,
}

impl AckArg {
    pub fn header(self) -> &'static str {
        match self {
            AckArg::ClientIndividual => "client-individual",
            AckArg::Client => "client",
        }
    }
}

#[derive(Clone, Debug, clap::Args)]
pub struct QueueArgs {
    /// the server's STOMP-over-WebSocket endpoint
    #[arg(long, default_value = "ws://127.0.0.1:15674/ws")]
    pub url: String,
    /// the queue
    #[arg(long, default_value = "/queue/bench")]
    pub destination: String,
    #[arg(long, default_value_t = 4)]
    pub producers: usize,
    #[arg(long, default_value_t = 4)]
    pub consumers: usize,
    /// body bytes (at least 64)
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// messages per second over all producers; 0: as fast as the window allows
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// messages a producer may have sent and not yet seen received by a consumer
    #[arg(long, default_value_t = 1000)]
    pub window: u64,
    /// SUBSCRIBE `prefetch-count` (0: header not sent)
    #[arg(long, default_value_t = 1000)]
    pub prefetch: u64,
    /// the consumers' ack mode
    #[arg(long, value_enum, default_value = "client-individual")]
    pub ack: AckArg,
    #[arg(long, default_value = "10s", value_parser = crate::util::parse_duration)]
    pub duration: Duration,
    #[arg(long, default_value = "2s", value_parser = crate::util::parse_duration)]
    pub warmup: Duration,
    /// how long to wait after the window for messages still queued or in flight
    #[arg(long, default_value = "3s", value_parser = crate::util::parse_duration)]
    pub grace: Duration,
    #[command(flatten)]
    pub stomp: StompOpts,
}

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const GRACE: u8 = 2;
const DONE: u8 = 3;

/// One producer's bookkeeping.
struct Producer {
    /// messages sent (the next sequence number)
    sent: Cell<u64>,
    /// distinct messages received by any consumer
    received: Cell<u64>,
    /// times each sequence number was received (saturating)
    counts: RefCell<Vec<u8>>,
    /// woken when a consumer receives one of its messages
    room: Notify,
}

struct Shared {
    phase: Cell<u8>,
    win_start: Cell<u64>,
    win_end: Cell<u64>,
    tag: u32,
    producers: Vec<Producer>,
    /// messages acknowledged (ACK written) while the window was open
    acked_in_window: Cell<u64>,
    /// messages sent during the window
    sent_in_window: Cell<u64>,
    duplicates: Cell<u64>,
    redelivered: Cell<u64>,
    /// MESSAGEs that are not this run's (left in the queue by an earlier run)
    foreign: Cell<u64>,
    errors: Cell<u64>,
    ready: Cell<usize>,
    hist: RefCell<Histogram<u64>>,
}

impl Shared {
    fn error(&self, what: &str) {
        if self.phase.get() != DONE {
            if self.errors.get() < 3 {
                eprintln!("stomp-queue: connection error: {what}");
            }
            self.errors.set(self.errors.get() + 1);
        }
    }
    fn sent(&self) -> u64 {
        self.producers.iter().map(|p| p.sent.get()).sum()
    }
    fn received(&self) -> u64 {
        self.producers.iter().map(|p| p.received.get()).sum()
    }
}

#[inline]
fn hex(b: &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for &c in b {
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
fn put_hex(out: &mut [u8], v: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let n = out.len();
    for (i, o) in out.iter_mut().enumerate() {
        *o = HEX[((v >> (4 * (n - 1 - i))) & 0xf) as usize];
    }
}

pub fn run(a: QueueArgs) -> Result<Report, String> {
    let target = parse_url(&a.url)?;
    if a.size < 64 {
        return Err("--size must be at least 64".into());
    }
    if a.producers == 0 || a.consumers == 0 || a.window == 0 {
        return Err("--producers, --consumers and --window must be positive".into());
    }
    crate::util::raise_nofile();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let tag = (std::process::id() ^ (now_ns() as u32).rotate_left(16)) | 0x1000_0000;
        let sh = Rc::new(Shared {
            phase: Cell::new(WARMUP),
            win_start: Cell::new(u64::MAX),
            win_end: Cell::new(u64::MAX),
            tag,
            producers: (0..a.producers)
                .map(|_| Producer {
                    sent: Cell::new(0),
                    received: Cell::new(0),
                    counts: RefCell::new(Vec::with_capacity(1 << 16)),
                    room: Notify::new(),
                })
                .collect(),
            acked_in_window: Cell::new(0),
            sent_in_window: Cell::new(0),
            duplicates: Cell::new(0),
            redelivered: Cell::new(0),
            foreign: Cell::new(0),
            errors: Cell::new(0),
            ready: Cell::new(0),
            hist: RefCell::new(new_hist()),
        });
        let a = Rc::new(a);
        // consumers first: the queue has its consumers before any message
        let sem = Rc::new(Semaphore::new(64));
        let mut tasks = Vec::new();
        for _ in 0..a.consumers {
            tasks.push(tokio::task::spawn_local(consumer(
                target.clone(),
                sh.clone(),
                a.clone(),
                sem.clone(),
            )));
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while sh.ready.get() + (sh.errors.get() as usize) < a.consumers
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if sh.ready.get() == 0 {
            return Err(format!("no consumer could subscribe at {}", a.url));
        }
        let mut producers = Vec::new();
        for i in 0..a.producers {
            let c = StompConn::connect(&target, None, &a.stomp)
                .await
                .map_err(|e| format!("producer: {e}"))?;
            producers.push(c);
            let _ = i;
        }
        for (i, c) in producers.into_iter().enumerate() {
            tasks.push(tokio::task::spawn_local(producer(c, i, sh.clone(), a.clone())));
        }
        tokio::time::sleep(a.warmup).await;
        sh.win_start.set(now_ns());
        sh.phase.set(MEASURE);
        let t0 = Instant::now();
        tokio::time::sleep(a.duration).await;
        sh.win_end.set(now_ns());
        sh.phase.set(GRACE);
        let secs = t0.elapsed().as_secs_f64();
        let acked = sh.acked_in_window.get();
        let grace_end = Instant::now() + a.grace;
        while sh.received() < sh.sent() && Instant::now() < grace_end {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // a little longer, for duplicates or redeliveries that would follow
        tokio::time::sleep(Duration::from_millis(200)).await;
        sh.phase.set(DONE);
        for t in tasks {
            t.abort();
        }
        let mut missing = 0u64;
        for p in &sh.producers {
            let counts = p.counts.borrow();
            let sent = p.sent.get() as usize;
            missing += counts.iter().take(sent).filter(|&&c| c == 0).count() as u64;
            missing += sent.saturating_sub(counts.len()) as u64;
        }
        let sent = sh.sent();
        eprintln!(
            "stomp-queue: {} sent in all ({} in the window), {} received once or more, {} missing, {} duplicates, {} redelivered, {} not of this run",
            sent,
            sh.sent_in_window.get(),
            sh.received(),
            missing,
            sh.duplicates.get(),
            sh.redelivered.get(),
            sh.foreign.get()
        );
        let hist = sh.hist.borrow();
        Ok(Report {
            scenario: "stomp-queue".into(),
            rate: acked as f64 / secs,
            latency: Latency::from_hist(&hist),
            published: sh.sent_in_window.get(),
            delivered: sh.received(),
            lost: missing,
            errors: sh.errors.get(),
            connections: (a.producers + a.consumers) as u64,
            seconds: secs,
            sent,
            duplicates: sh.duplicates.get(),
            missing,
            redelivered: sh.redelivered.get(),
            ..Default::default()
        })
    })
}

async fn consumer(t: Target, sh: Rc<Shared>, a: Rc<QueueArgs>, sem: Rc<Semaphore>) {
    let permit = sem.acquire().await;
    let mut c = match StompConn::connect(&t, None, &a.stomp).await {
        Ok(c) => c,
        Err(e) => return sh.error(&e.to_string()),
    };
    let prefetch = a.prefetch.to_string();
    let mut extra = vec![("ack", a.ack.header())];
    if a.prefetch > 0 {
        extra.push(("prefetch-count", prefetch.as_str()));
    }
    if let Err(e) = c.subscribe("0", &a.destination, &extra).await {
        return sh.error(&format!("subscribe: {e}"));
    }
    drop(permit);
    sh.ready.set(sh.ready.get() + 1);
    let mut ids: Vec<String> = Vec::with_capacity(256);
    loop {
        match c.read().await {
            Ok(0) => return sh.error("closed by server"),
            Err(e) => return sh.error(&e.to_string()),
            Ok(_) => {}
        }
        if sh.phase.get() == DONE {
            return;
        }
        let now = now_ns();
        let (ws, we) = (sh.win_start.get(), sh.win_end.get());
        let alive = {
            let mut h = sh.hist.borrow_mut();
            c.process(|m| {
                if m.command != Command::Message {
                    return;
                }
                // 1.2: the `ack` header; a 1.0/1.1 server: `message-id`
                if let Some(id) = m.ack.or(m.message_id) {
                    ids.push(id.to_owned());
                }
                if m.redelivered {
                    sh.redelivered.set(sh.redelivered.get() + 1);
                }
                let p = m.body;
                let parsed = (p.len() >= 56)
                    .then(|| {
                        Some((
                            hex(&p[0..16])?,
                            hex(&p[16..32])?,
                            hex(&p[32..48])? as usize,
                            hex(&p[48..56])? as u32,
                        ))
                    })
                    .flatten();
                let Some((seq, ts, pi, tag)) = parsed else {
                    sh.foreign.set(sh.foreign.get() + 1);
                    return;
                };
                if tag != sh.tag || pi >= sh.producers.len() {
                    sh.foreign.set(sh.foreign.get() + 1);
                    return;
                }
                let prod = &sh.producers[pi];
                let mut counts = prod.counts.borrow_mut();
                let seq = seq as usize;
                if counts.len() <= seq {
                    counts.resize(seq + 1, 0);
                }
                let n = counts[seq];
                counts[seq] = n.saturating_add(1);
                if n > 0 {
                    sh.duplicates.set(sh.duplicates.get() + 1);
                    return;
                }
                prod.received.set(prod.received.get() + 1);
                prod.room.notify_one();
                if ts >= ws && ts < we {
                    h.saturating_record(now.saturating_sub(ts).max(1));
                }
            })
        };
        let n = ids.len() as u64;
        for id in ids.drain(..) {
            c.ack(&id);
        }
        if let Some(e) = &c.failure {
            return sh.error(e);
        }
        if let Err(e) = c.flush().await {
            return sh.error(&e.to_string());
        }
        if sh.phase.get() == MEASURE {
            sh.acked_in_window.set(sh.acked_in_window.get() + n);
        }
        if !alive {
            return sh.error("closed by server");
        }
    }
}

async fn producer(mut c: StompConn, index: usize, sh: Rc<Shared>, a: Rc<QueueArgs>) {
    let me = &sh.producers[index];
    let mut buf = vec![b'.'; a.size];
    put_hex(&mut buf[32..48], index as u64);
    put_hex(&mut buf[48..56], sh.tag as u64);
    // per-producer share of --rate
    let rate = a.rate as f64 / a.producers as f64;
    let t0 = Instant::now();
    let mut iv = tokio::time::interval(Duration::from_millis(1));
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        if sh.phase.get() >= GRACE {
            // stop sending; keep reading (RECEIPT/ERROR) until the end
            if let Ok(n) = c.try_read() {
                if n > 0 {
                    c.process(|_| {});
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        let outstanding = me.sent.get() - me.received.get();
        let mut room = a.window.saturating_sub(outstanding);
        if a.rate > 0 {
            let due = (t0.elapsed().as_secs_f64() * rate) as u64;
            room = room.min(due.saturating_sub(me.sent.get()));
        }
        for _ in 0..room {
            let seq = me.sent.get();
            let ts = now_ns();
            put_hex(&mut buf[0..16], seq);
            put_hex(&mut buf[16..32], ts);
            c.send_message(&a.destination, &buf);
            me.sent.set(seq + 1);
            if ts >= sh.win_start.get() && ts < sh.win_end.get() {
                sh.sent_in_window.set(sh.sent_in_window.get() + 1);
            }
        }
        // what the server sent the producer (an ERROR, if anything)
        match c.try_read() {
            Ok(n) => {
                if n > 0 && !c.process(|_| {}) {
                    return sh.error(&format!(
                        "producer closed: {}",
                        c.failure.as_deref().unwrap_or("by server")
                    ));
                }
            }
            Err(e) => return sh.error(&format!("producer: {e}")),
        }
        if let Some(e) = &c.failure {
            return sh.error(&format!("producer: {e}"));
        }
        if let Err(e) = c.flush().await {
            return sh.error(&format!("producer: {e}"));
        }
        if a.rate > 0 {
            iv.tick().await;
        } else if me.sent.get() - me.received.get() >= a.window {
            // wait for room (or re-check the phase now and then)
            let _ = tokio::time::timeout(Duration::from_millis(50), me.room.notified()).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
}
