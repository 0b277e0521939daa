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
//!
//! `--stalled N` adds N subscribers that connect and subscribe with the same
//! code (the `*_connect` functions below) and then never read (stalled.rs):
//! they count for nothing here and report, at the end, whether the server
//! dropped them.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::Semaphore;

use crate::sio::SioConn;
use crate::sockjs::{xhr_send, SockJsWs, StreamState, XhrStream};
use crate::stalled::{StalledRun, SubConn};
use crate::stats::{new_hist, Latency, NodeSplit, Report, Timeline};
use crate::stomp::{StompConn, StompOpts};
use crate::util::{find, now_ns, parse_url, Target};
use crate::ws::WsConn;

#[derive(Clone, Debug, clap::Args)]
pub struct FanoutArgs {
    /// URL the subscribers connect to (Switchboard: ws://HOST/ws/topic/bench; peers:
    /// ws://HOST/fanout). Repeat it to spread the subscribers over several servers
    /// (subscriber i connects to URL i mod N); those on the publisher's host:port count
    /// as "same node", the others as "cross node" (reported apart)
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws/topic/bench")]
    pub sub_url: Vec<String>,
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
    /// extra subscribers that connect and subscribe exactly like the others, then
    /// never read again (their socket's SO_RCVBUF is --stalled-rcvbuf): not counted
    /// in deliveries, latency or lost; at the end each reports whether (and about
    /// when) the server closed it
    #[arg(long, default_value_t = 0)]
    pub stalled: usize,
    /// SO_RCVBUF of the stalled subscribers' sockets, in bytes, set before connecting
    #[arg(long, default_value_t = 4096)]
    pub stalled_rcvbuf: u32,
    /// print `@window-open` and `@window-close` on stderr when the measured window
    /// opens and closes (the suite samples the servers' CPU time then)
    #[arg(long, hide = true)]
    pub mark_window: bool,
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
    /// the same per 100 ms
    timeline: Timeline,
    published: Cell<u64>,
    errors: Cell<u64>,
    ready: Cell<usize>,
    /// latency of window deliveries, by subscriber group ([`SAME_NODE`],
    /// [`CROSS_NODE`]); the overall histogram is their sum
    hists: RefCell<[Histogram<u64>; 2]>,
    /// `delivered` and `ready` by subscriber group
    delivered_by: [Cell<u64>; 2],
    ready_by: [Cell<usize>; 2],
    /// publications sent over the whole run (STOMP: for the sequence checks)
    sent_total: Cell<u64>,
    /// STOMP: publications received over the whole run, all subscribers
    received_total: Cell<u64>,
    /// STOMP: publications skipped (a later sequence number arrived first)
    gaps: Cell<u64>,
    /// STOMP: publications received again or out of order (sequence number
    /// not above the subscriber's last one)
    dups: Cell<u64>,
}

/// Subscriber groups: on the publisher's server (same host:port) or on another one.
const SAME_NODE: usize = 0;
const CROSS_NODE: usize = 1;

impl Shared {
    /// a subscriber of group `g` is subscribed
    fn ready(&self, g: usize) {
        self.ready.set(self.ready.get() + 1);
        self.ready_by[g].set(self.ready_by[g].get() + 1);
    }

    /// `n` deliveries received at `now` while the window is open
    fn received(&self, now: u64, n: u64) {
        self.received_in_window
            .set(self.received_in_window.get() + n);
        self.timeline.add(now, n);
    }

    /// `n` deliveries of window publications to subscribers of group `g`
    fn delivered(&self, g: usize, n: u64) {
        self.delivered.set(self.delivered.get() + n);
        self.delivered_by[g].set(self.delivered_by[g].get() + n);
    }

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

/// What the subscribers and the publisher speak.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    WebSocket,
    SocketIo,
    /// SockJS, subscribers on the `websocket` transport
    SockJsWs,
    /// SockJS, subscribers on the `xhr-streaming` transport
    SockJsXhr,
    /// STOMP over WebSocket: subscribers SUBSCRIBE to a `/topic/`, the
    /// publisher SENDs to it
    Stomp,
}

/// The SockJS transport of the fan-out's subscribers.
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum SockJsTransport {
    Websocket,
    XhrStreaming,
}

pub fn run(a: FanoutArgs) -> Result<Report, String> {
    run_proto(a, Kind::WebSocket, None, None)
}

/// `stomp-fanout`: the same over STOMP over WebSocket (`--sub-url` and
/// `--pub-url` are the server's STOMP WebSocket endpoint, e.g.
/// `ws://HOST:15674/ws`). Every subscriber is a connection of its own that
/// SUBSCRIBEs (`ack:auto`) to `destination` and waits for the RECEIPT; the
/// publisher (a connection that subscribes to nothing) SENDs each payload
/// to `destination` as the body (`content-length`, no `content-type`).
/// Besides the window counts, every subscriber checks the sequence numbers
/// (gaps, duplicates) and, at the end, how many of all publications it
/// never got.
pub fn run_stomp(a: FanoutArgs, o: StompOpts, destination: String) -> Result<Report, String> {
    run_proto(a, Kind::Stomp, Some(Rc::new((o, destination))), None)
}

/// `sio-fanout`: the same over Socket.IO. The subscribers `join` the room
/// (`420["join","bench"]`, waiting for its ack), the publisher (a socket of
/// its own, in no room) sends `42["broadcast","bench","<payload>"]` without
/// an ack id, the subscribers receive `42["msg","<payload>"]`. `--sub-url`
/// and `--pub-url` are both the server's `ws://HOST/socket.io/`.
///
/// With `topic` (Switchboard's hub, `switchboard serve`) the subscribers
/// `subscribe` to that hub topic instead (`420["subscribe","<topic>"]`,
/// waiting for an `"ok":true` ack), the publisher emits
/// `42["publish",{"topic":"<topic>","data":"<payload>"}]` and the
/// subscribers receive `42["message",{"topic":..,"seq":..,"data":"<payload>",..}]`.
pub fn run_sio(a: FanoutArgs, topic: Option<String>) -> Result<Report, String> {
    run_proto(a, Kind::SocketIo, None, topic.map(Rc::from))
}

/// `sockjs-fanout`: the same over SockJS (`--sub-url` and `--pub-url` are
/// the service prefix, `ws://HOST/bench`). Subscribers open a session on
/// `transport` (`websocket` or `xhr-streaming`), send `join` and wait for
/// its echo; the publisher (a `websocket` session in no set) sends
/// `pub:<payload>`, which the server sends to every member (and echoes to
/// the publisher, which discards it).
pub fn run_sockjs(a: FanoutArgs, transport: SockJsTransport) -> Result<Report, String> {
    run_proto(
        a,
        match transport {
            SockJsTransport::Websocket => Kind::SockJsWs,
            SockJsTransport::XhrStreaming => Kind::SockJsXhr,
        },
        None,
        None,
    )
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
    /// the hub topic (`publish` events) instead of the room
    topic: Option<Rc<str>>,
}

impl PubConn for SioPub {
    fn publish(&mut self, payload: &str) {
        self.msg.clear();
        match &self.topic {
            None => {
                self.msg.push_str("42[\"broadcast\",\"");
                self.msg.push_str(SIO_ROOM);
                self.msg.push_str("\",\"");
                self.msg.push_str(payload);
                self.msg.push_str("\"]");
            }
            Some(topic) => {
                self.msg.push_str("42[\"publish\",{\"topic\":\"");
                self.msg.push_str(topic);
                self.msg.push_str("\",\"data\":\"");
                self.msg.push_str(payload);
                self.msg.push_str("\"}]");
            }
        }
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

struct SockJsPub {
    c: SockJsWs,
    msg: String,
}

impl PubConn for SockJsPub {
    fn publish(&mut self, payload: &str) {
        self.msg.clear();
        self.msg.push_str(SOCKJS_PUB);
        self.msg.push_str(payload);
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

struct StompPub {
    c: StompConn,
    destination: String,
}

impl PubConn for StompPub {
    fn publish(&mut self, payload: &str) {
        self.c.send_message(&self.destination, payload.as_bytes());
    }
    fn discard(&mut self) -> std::io::Result<bool> {
        self.c.try_read()?;
        let alive = self.c.process(|_| {});
        if let Some(e) = &self.c.failure {
            return Err(std::io::Error::other(e.clone()));
        }
        Ok(alive)
    }
    async fn flush(&mut self) -> std::io::Result<()> {
        self.c.flush().await
    }
}

/// What `--mark-window` prints on stderr when the measured window opens and closes.
pub const WINDOW_OPEN: &str = "@window-open";
pub const WINDOW_CLOSE: &str = "@window-close";

/// The prefix of a SockJS publication (the message is sent on as is).
const SOCKJS_PUB: &str = "pub:";

/// The room the Socket.IO subscribers join.
const SIO_ROOM: &str = "bench";

fn run_proto(
    a: FanoutArgs,
    kind: Kind,
    stomp: Option<Rc<(StompOpts, String)>>,
    sio_topic: Option<Rc<str>>,
) -> Result<Report, String> {
    let publ = parse_url(&a.pub_url)?;
    // each subscriber URL with its group: the publisher's server or another one
    let subs: Vec<(Target, usize)> = a
        .sub_url
        .iter()
        .map(|u| {
            let t = parse_url(u)?;
            let g = if t.addr == publ.addr {
                SAME_NODE
            } else {
                CROSS_NODE
            };
            Ok((t, g))
        })
        .collect::<Result<_, String>>()?;
    if subs.is_empty() {
        return Err("no --sub-url".into());
    }
    let split = subs.len() > 1;
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
            timeline: Timeline::default(),
            published: Cell::new(0),
            errors: Cell::new(0),
            ready: Cell::new(0),
            hists: RefCell::new([new_hist(), new_hist()]),
            delivered_by: [Cell::new(0), Cell::new(0)],
            ready_by: [Cell::new(0), Cell::new(0)],
            sent_total: Cell::new(0),
            received_total: Cell::new(0),
            gaps: Cell::new(0),
            dups: Cell::new(0),
        });
        let sem = Rc::new(Semaphore::new(64));
        let reopened = Rc::new(Cell::new(0u64));
        for i in 0..a.subscribers {
            // round-robin over the subscriber URLs
            let (t, g) = subs[i % subs.len()].clone();
            let (shc, semc) = (sh.clone(), sem.clone());
            match kind {
                Kind::WebSocket => tokio::task::spawn_local(subscriber(t, g, shc, semc)),
                Kind::SocketIo => {
                    tokio::task::spawn_local(sio_subscriber(t, g, shc, semc, sio_topic.clone()))
                }
                Kind::SockJsWs => tokio::task::spawn_local(sockjs_ws_subscriber(t, g, shc, semc)),
                Kind::SockJsXhr => tokio::task::spawn_local(sockjs_xhr_subscriber(
                    t,
                    g,
                    shc,
                    semc,
                    reopened.clone(),
                )),
                Kind::Stomp => {
                    let st = stomp.clone().expect("STOMP options");
                    tokio::task::spawn_local(stomp_subscriber(t, g, shc, semc, st))
                }
            };
        }
        // the stalled subscribers: the same connection code, then silence
        let stalled = StalledRun::new();
        let mut stalled_tasks = Vec::with_capacity(a.stalled);
        for i in 0..a.stalled {
            let (t, _) = subs[i % subs.len()].clone();
            let st = stomp.clone();
            let topic = sio_topic.clone();
            let server = t.addr;
            let connect = async move {
                Ok(match kind {
                    Kind::WebSocket => SubConn::Ws(ws_connect(&t).await?),
                    Kind::SocketIo => SubConn::Sio(sio_connect(&t, topic.as_deref()).await?),
                    Kind::SockJsWs => SubConn::SockJsWs(sockjs_ws_connect(&t).await?),
                    Kind::SockJsXhr => SubConn::Xhr(sockjs_xhr_connect(&t).await?),
                    Kind::Stomp => {
                        let st = st.expect("STOMP options");
                        SubConn::Stomp(stomp_connect(&t, &st).await?)
                    }
                })
            };
            stalled_tasks.push(tokio::task::spawn_local(crate::stalled::subscriber(
                connect,
                server,
                a.stalled_rcvbuf,
                stalled.clone(),
                sem.clone(),
            )));
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while (sh.ready.get() + (sh.errors.get() as usize) < a.subscribers
            || stalled.ready.get() + stalled.failed.get() < a.stalled)
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let subs = sh.ready.get();
        if subs == 0 {
            return Err(format!(
                "no subscriber could connect to {}",
                a.sub_url.join(", ")
            ));
        }
        let watcher = (a.stalled > 0).then(|| tokio::task::spawn_local(stalled.clone().watch()));
        // let the server register the last subscriptions
        tokio::time::sleep(Duration::from_millis(500)).await;
        stalled.since.set(now_ns());
        let (size, rate) = (a.size, a.rate);
        let shp = sh.clone();
        let publisher = match kind {
            Kind::SocketIo => {
                let c = SioConn::connect(&publ, None)
                    .await
                    .map_err(|e| format!("publisher: {e}"))?;
                let p = SioPub {
                    c,
                    msg: String::with_capacity(size + 64),
                    topic: sio_topic.clone(),
                };
                tokio::task::spawn_local(publish(p, shp, size, rate))
            }
            Kind::SockJsWs | Kind::SockJsXhr => {
                let c = SockJsWs::connect(&publ, None)
                    .await
                    .map_err(|e| format!("publisher: {e}"))?;
                let p = SockJsPub {
                    c,
                    msg: String::with_capacity(size + 8),
                };
                tokio::task::spawn_local(publish(p, shp, size, rate))
            }
            Kind::WebSocket => {
                let p = WsConn::connect(&publ, None)
                    .await
                    .map_err(|e| format!("publisher: {e}"))?;
                tokio::task::spawn_local(publish(p, shp, size, rate))
            }
            Kind::Stomp => {
                let st = stomp.clone().expect("STOMP options");
                let c = StompConn::connect(&publ, None, &st.0)
                    .await
                    .map_err(|e| format!("publisher: {e}"))?;
                let p = StompPub {
                    c,
                    destination: st.1.clone(),
                };
                tokio::task::spawn_local(publish(p, shp, size, rate))
            }
        };
        tokio::time::sleep(a.warmup).await;
        sh.win_start.set(now_ns());
        sh.timeline.start(sh.win_start.get());
        sh.phase.set(MEASURE);
        if a.mark_window {
            eprintln!("{WINDOW_OPEN}");
        }
        let t0 = Instant::now();
        tokio::time::sleep(a.duration).await;
        sh.win_end.set(now_ns());
        sh.phase.set(GRACE);
        if a.mark_window {
            eprintln!("{WINDOW_CLOSE}");
        }
        let secs = t0.elapsed().as_secs_f64();
        let received = sh.received_in_window.get();
        let expected = sh.published.get() * subs as u64;
        let grace_end = Instant::now() + a.grace;
        while sh.delivered.get() < expected && Instant::now() < grace_end {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sh.phase.set(DONE);
        publisher.abort();
        stalled.done.set(true);
        let mut fates = Vec::with_capacity(stalled_tasks.len());
        for t in stalled_tasks {
            fates.push(t.await.map_err(|e| e.to_string())?);
        }
        if let Some(w) = watcher {
            let _ = w.await;
        }
        if kind == Kind::SockJsXhr {
            eprintln!(
                "sockjs-fanout: xhr_streaming responses reopened {} times ({:.1} per subscriber)",
                reopened.get(),
                reopened.get() as f64 / subs as f64
            );
        }
        let hists = sh.hists.borrow();
        let mut hist = hists[SAME_NODE].clone();
        hist.add(&hists[CROSS_NODE]).map_err(|e| e.to_string())?;
        let mut extra = Report::default();
        if a.stalled > 0 {
            let dropped = fates.iter().filter(|f| f.dropped).count() as u64;
            extra.stalled = a.stalled as u64;
            extra.stalled_dropped = Some(dropped);
            extra.stalled_fates = fates;
        }
        if split {
            let group = |g: usize| {
                let expected = sh.published.get() * sh.ready_by[g].get() as u64;
                NodeSplit {
                    subscribers: sh.ready_by[g].get() as u64,
                    delivered: sh.delivered_by[g].get(),
                    lost: expected.saturating_sub(sh.delivered_by[g].get()),
                    latency: Latency::from_hist(&hists[g]),
                }
            };
            extra.same_node = Some(group(SAME_NODE));
            extra.cross_node = Some(group(CROSS_NODE));
        }
        if kind == Kind::Stomp {
            // over the whole run: every publication × every subscriber that
            // did not arrive (minus duplicates) by the end of the grace period
            let expected_all = sh.sent_total.get() * subs as u64;
            let unique = sh.received_total.get().saturating_sub(sh.dups.get());
            extra.gaps = sh.gaps.get();
            extra.duplicates = sh.dups.get();
            extra.missing = expected_all.saturating_sub(unique);
            extra.sent = sh.sent_total.get();
            eprintln!(
                "stomp-fanout: {} publications sent in all, {} deliveries expected, {} received ({} duplicates / out of order), {} missing at the end, {} sequence gaps",
                extra.sent,
                expected_all,
                sh.received_total.get(),
                extra.duplicates,
                extra.missing,
                extra.gaps
            );
        }
        Ok(Report {
            scenario: match kind {
                Kind::WebSocket => "fanout",
                Kind::SocketIo => "sio-fanout",
                Kind::SockJsWs => "sockjs-fanout-ws",
                Kind::SockJsXhr => "sockjs-fanout-xhr",
                Kind::Stomp => "stomp-fanout",
            }
            .into(),
            rate: received as f64 / secs,
            latency: Latency::from_hist(&hist),
            published: sh.published.get(),
            delivered: sh.delivered.get(),
            lost: expected.saturating_sub(sh.delivered.get()),
            errors: sh.errors.get(),
            connections: subs as u64,
            seconds: secs,
            timeline: sh.timeline.rates(),
            ..extra
        })
    })
}

/// Opens a WebSocket subscriber (on Switchboard's `/ws/topic/{name}` the
/// connection is the subscription).
async fn ws_connect(t: &Target) -> Result<WsConn, String> {
    WsConn::connect(t, None).await.map_err(|e| e.to_string())
}

async fn subscriber(t: Target, g: usize, sh: Rc<Shared>, sem: Rc<Semaphore>) {
    let permit = sem.acquire().await;
    let mut c = match ws_connect(&t).await {
        Ok(c) => c,
        Err(e) => return sh.error(&e),
    };
    drop(permit);
    sh.ready(g);
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
            let mut hs = sh.hists.borrow_mut();
            let h = &mut hs[g];
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
        sh.delivered(g, in_win);
        if phase == MEASURE {
            sh.received(now, n);
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
            sh.sent_total.set(seq);
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

/// Opens a Socket.IO subscriber: connects, joins the room (or subscribes
/// to the hub `topic`) and waits for the ack.
async fn sio_connect(t: &Target, topic: Option<&str>) -> Result<SioConn, String> {
    let mut c = SioConn::connect(t, None).await.map_err(|e| e.to_string())?;
    let (what, request) = match topic {
        None => ("join", format!("420[\"join\",\"{SIO_ROOM}\"]")),
        Some(topic) => ("subscribe", format!("420[\"subscribe\",\"{topic}\"]")),
    };
    c.send(&request);
    c.flush().await.map_err(|e| e.to_string())?;
    // the room's ack is empty, the hub's says `"ok":true` or why not
    let mut ok = topic.is_none();
    c.wait_for(|m| {
        let ack = m.starts_with(b"430[");
        ok |= ack && find(m, b"\"ok\":true").is_some();
        ack
    })
    .await
    .map_err(|e| format!("{what}: {e}"))?;
    if !ok {
        return Err(format!("{what}: refused"));
    }
    Ok(c)
}

/// The payload of a Socket.IO delivery: `2["msg","<payload>"` (the room)
/// or `2["message",{…,"data":"<payload>"` (a hub topic).
fn sio_payload(m: &[u8], hub: bool) -> Option<&[u8]> {
    if !hub {
        return m.strip_prefix(b"2[\"msg\",\"");
    }
    let rest = m.strip_prefix(b"2[\"message\",{")?;
    const DATA: &[u8] = b"\"data\":\"";
    let at = find(rest, DATA)?;
    Some(&rest[at + DATA.len()..])
}

/// A Socket.IO subscriber: joins the room (or subscribes to the hub
/// `topic`), waiting for the ack, then counts the deliveries.
async fn sio_subscriber(
    t: Target,
    g: usize,
    sh: Rc<Shared>,
    sem: Rc<Semaphore>,
    topic: Option<Rc<str>>,
) {
    let hub = topic.is_some();
    let permit = sem.acquire().await;
    let mut c = match sio_connect(&t, topic.as_deref()).await {
        Ok(c) => c,
        Err(e) => return sh.error(&e),
    };
    drop(permit);
    sh.ready(g);
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
            let mut hs = sh.hists.borrow_mut();
            let h = &mut hs[g];
            c.process(|p| {
                let Some(p) = sio_payload(p, hub) else {
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
        sh.delivered(g, in_win);
        if phase == MEASURE {
            sh.received(now, n);
        }
        if let Err(e) = c.flush().await {
            return sh.error(&e.to_string());
        }
        if !alive {
            return sh.error("closed by server");
        }
    }
}

/// Opens a STOMP subscriber: CONNECT, then SUBSCRIBE (`ack:auto`) to the
/// destination, waiting for the RECEIPT.
async fn stomp_connect(t: &Target, st: &(StompOpts, String)) -> Result<StompConn, String> {
    let mut c = StompConn::connect(t, None, &st.0)
        .await
        .map_err(|e| e.to_string())?;
    c.subscribe("0", &st.1, &[])
        .await
        .map_err(|e| format!("subscribe: {e}"))?;
    Ok(c)
}

/// A STOMP subscriber: its own connection, SUBSCRIBE (`ack:auto`) with a
/// receipt, then counts MESSAGE frames and checks their sequence numbers.
async fn stomp_subscriber(
    t: Target,
    g: usize,
    sh: Rc<Shared>,
    sem: Rc<Semaphore>,
    st: Rc<(StompOpts, String)>,
) {
    let permit = sem.acquire().await;
    let mut c = match stomp_connect(&t, &st).await {
        Ok(c) => c,
        Err(e) => return sh.error(&e),
    };
    drop(permit);
    sh.ready(g);
    // the next sequence number expected
    let mut next = 0u64;
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
        let (mut n, mut in_win, mut gaps, mut dups) = (0u64, 0u64, 0u64, 0u64);
        let alive = {
            let mut hs = sh.hists.borrow_mut();
            let h = &mut hs[g];
            c.process(|m| {
                if m.command != switchboard_stomp_proto::Command::Message {
                    return;
                }
                let p = m.body;
                n += 1;
                if p.len() < 32 {
                    return;
                }
                if let Some(seq) = hex16(&p[0..16]) {
                    if seq >= next {
                        gaps += seq - next;
                        next = seq + 1;
                    } else {
                        dups += 1;
                    }
                }
                if let Some(ts) = hex16(&p[16..32]) {
                    if ts >= ws && ts < we {
                        in_win += 1;
                        h.saturating_record(now.saturating_sub(ts).max(1));
                    }
                }
            })
        };
        sh.delivered(g, in_win);
        sh.received_total.set(sh.received_total.get() + n);
        sh.gaps.set(sh.gaps.get() + gaps);
        sh.dups.set(sh.dups.get() + dups);
        if phase == MEASURE {
            sh.received(now, n);
        }
        if let Some(e) = &c.failure {
            return sh.error(e);
        }
        if let Err(e) = c.flush().await {
            return sh.error(&e.to_string());
        }
        if !alive {
            return sh.error("closed by server");
        }
    }
}

/// One SockJS message received by a subscriber: a `pub:` one is counted
/// (and, if published in the window, recorded).
#[inline]
fn sockjs_delivery(
    m: &[u8],
    now: u64,
    (ws, we): (u64, u64),
    h: &mut Histogram<u64>,
    n: &mut u64,
    in_win: &mut u64,
) {
    let Some(p) = m.strip_prefix(SOCKJS_PUB.as_bytes()) else {
        return;
    };
    *n += 1;
    if p.len() >= 32 {
        if let Some(ts) = hex16(&p[16..32]) {
            if ts >= ws && ts < we {
                *in_win += 1;
                h.saturating_record(now.saturating_sub(ts).max(1));
            }
        }
    }
}

/// Opens a SockJS subscriber on the `websocket` transport: sends `join` and
/// waits for its echo.
async fn sockjs_ws_connect(t: &Target) -> Result<SockJsWs, String> {
    let mut c = SockJsWs::connect(t, None)
        .await
        .map_err(|e| e.to_string())?;
    c.send("join");
    c.flush().await.map_err(|e| e.to_string())?;
    c.wait_for(b"join")
        .await
        .map_err(|e| format!("join: {e}"))?;
    Ok(c)
}

/// A SockJS subscriber on the `websocket` transport: sends `join`, waits for
/// its echo, then counts `pub:` messages.
async fn sockjs_ws_subscriber(t: Target, g: usize, sh: Rc<Shared>, sem: Rc<Semaphore>) {
    let permit = sem.acquire().await;
    let mut c = match sockjs_ws_connect(&t).await {
        Ok(c) => c,
        Err(e) => return sh.error(&e),
    };
    drop(permit);
    sh.ready(g);
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
        let win = (sh.win_start.get(), sh.win_end.get());
        let (mut n, mut in_win) = (0u64, 0u64);
        let alive = {
            let mut hs = sh.hists.borrow_mut();
            let h = &mut hs[g];
            c.process(|m| sockjs_delivery(m, now, win, h, &mut n, &mut in_win))
        };
        sh.delivered(g, in_win);
        if phase == MEASURE {
            sh.received(now, n);
        }
        if let Err(e) = c.flush().await {
            return sh.error(&e.to_string());
        }
        if !alive {
            return sh.error("closed by server");
        }
    }
}

/// Opens a SockJS subscriber on the `xhr-streaming` transport: opens the
/// stream, sends `join` with `xhr_send` and waits for its echo on the stream.
async fn sockjs_xhr_connect(t: &Target) -> Result<XhrStream, String> {
    let mut x = XhrStream::open(t, None).await.map_err(|e| e.to_string())?;
    xhr_send(t, &x.session, "join")
        .await
        .map_err(|e| format!("join: {e}"))?;
    let mut joined = false;
    loop {
        match x.process(|m| joined |= m == b"join") {
            Ok(StreamState::Open) => {}
            Ok(StreamState::Ended) => x.reopen().await.map_err(|e| format!("reopen: {e}"))?,
            Ok(StreamState::Closed) => return Err("closed by server".into()),
            Err(e) => return Err(e.to_string()),
        }
        if joined {
            return Ok(x);
        }
        match x.read().await {
            Ok(0) if x.eof_ends_response() => {}
            Ok(0) => return Err("closed by server".into()),
            Err(e) => return Err(e.to_string()),
            Ok(_) => {}
        }
    }
}

/// A SockJS subscriber on the `xhr-streaming` transport: opens the stream,
/// sends `join` with `xhr_send`, waits for its echo on the stream, then
/// counts `pub:` messages, reopening the stream each time the server ends it
/// (stream byte limit).
async fn sockjs_xhr_subscriber(
    t: Target,
    g: usize,
    sh: Rc<Shared>,
    sem: Rc<Semaphore>,
    reopened: Rc<Cell<u64>>,
) {
    let permit = sem.acquire().await;
    let mut x = match sockjs_xhr_connect(&t).await {
        Ok(x) => x,
        Err(e) => return sh.error(&e),
    };
    drop(permit);
    sh.ready(g);
    loop {
        match x.read().await {
            Ok(0) if x.eof_ends_response() => {}
            Ok(0) => return sh.error("closed by server"),
            Err(e) => return sh.error(&e.to_string()),
            Ok(_) => {}
        }
        let phase = sh.phase.get();
        if phase == DONE {
            return;
        }
        let now = now_ns();
        let win = (sh.win_start.get(), sh.win_end.get());
        let (mut n, mut in_win) = (0u64, 0u64);
        let state = {
            let mut hs = sh.hists.borrow_mut();
            let h = &mut hs[g];
            x.process(|m| sockjs_delivery(m, now, win, h, &mut n, &mut in_win))
        };
        sh.delivered(g, in_win);
        if phase == MEASURE {
            sh.received(now, n);
        }
        match state {
            Ok(StreamState::Open) => {}
            Ok(StreamState::Ended) => {
                reopened.set(reopened.get() + 1);
                if let Err(e) = x.reopen().await {
                    return sh.error(&format!("reopen: {e}"));
                }
            }
            Ok(StreamState::Closed) => return sh.error("closed by server"),
            Err(e) => return sh.error(&e.to_string()),
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

    #[test]
    fn sio_payloads() {
        assert_eq!(
            sio_payload(br#"2["msg","abc"]"#, false),
            Some(&br#"abc"]"#[..])
        );
        assert_eq!(sio_payload(br#"2["other","abc"]"#, false), None);
        // as `switchboard serve` sends a hub publication
        let m = br#"2["message",{"topic":"bench","seq":7,"data":"abc","ts":1}]"#;
        assert_eq!(sio_payload(m, true), Some(&br#"abc","ts":1}]"#[..]));
        assert_eq!(sio_payload(m, false), None);
        assert_eq!(sio_payload(br#"2["presence",{"data":"x"}]"#, true), None);
        assert_eq!(sio_payload(br#"2["message",{"seq":1}]"#, true), None);
    }

    #[test]
    fn sub_url_repeats() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            a: FanoutArgs,
        }
        let c = Cli::try_parse_from(["fanout"]).unwrap();
        assert_eq!(c.a.sub_url, ["ws://127.0.0.1:8080/ws/topic/bench"]);
        let c = Cli::try_parse_from([
            "fanout",
            "--sub-url",
            "ws://a:1/t",
            "--sub-url",
            "ws://b:2/t",
        ])
        .unwrap();
        assert_eq!(c.a.sub_url, ["ws://a:1/t", "ws://b:2/t"]);
        assert!(!c.a.mark_window);
    }
}
