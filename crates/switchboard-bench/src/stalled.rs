//! `--stalled N` of the fan-outs: subscribers that connect and subscribe with
//! the same code as the others (inside [`with_recv_buffer`], so their socket
//! has a small SO_RCVBUF from the SYN on), then never read again while the
//! run goes on. They count for nothing in the fan-out's figures; at the end
//! each one reports its fate ([`StalledFate`]).
//!
//! Owns the stalled subscriber task, watching its TCP connection through
//! the kernel (netlink `sock_diag`, [`crate::sockdiag`]: the server's side of
//! it leaving ESTABLISHED says when the server closed it, without the client
//! reading anything; both ends are on this machine) and the final drain,
//! which reads what is buffered and looks for the end: EOF, a reset, or the
//! protocol's own close (a WebSocket close frame, Engine.IO close, SockJS
//! `c[...]`, a STOMP ERROR frame).

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::sio::SioConn;
use crate::sockdiag::SockDiag;
use crate::sockjs::{Frame, SockJsWs, StreamState, XhrStream};
use crate::stomp::StompConn;
use crate::util::now_ns;
use crate::ws::{with_recv_buffer, WsConn};

/// What became of one stalled subscriber.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StalledFate {
    /// the server closed it (its side of the TCP connection left ESTABLISHED,
    /// or the final drain found the end)
    pub dropped: bool,
    /// seconds from the first publication until the server's side of the
    /// connection was first seen out of ESTABLISHED (sampled every 200 ms)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_after_s: Option<f64>,
    /// what the final drain found: `eof`, `reset`, the protocol's close
    /// (`websocket close`, `engine.io close`, `sockjs c[...]`, `stomp ERROR ...`;
    /// xhr-streaming: a complete response is reopened once, and a new session's
    /// open frame then is `session gone`), `open` (still open, nothing more
    /// came), or why the subscriber never got going
    pub end: String,
    /// bytes read by the final drain
    pub drained: u64,
    /// the most bytes seen queued in the server's socket send buffer for it
    pub server_send_q: u64,
    /// the most bytes seen in its own socket receive buffer
    pub client_recv_q: u64,
}

/// A subscriber connection of any fan-out protocol.
pub enum SubConn {
    Ws(WsConn),
    Sio(SioConn),
    SockJsWs(SockJsWs),
    Xhr(XhrStream),
    Stomp(StompConn),
}

impl SubConn {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            SubConn::Ws(c) => c.local_addr(),
            SubConn::Sio(c) => c.local_addr(),
            SubConn::SockJsWs(c) => c.local_addr(),
            SubConn::Xhr(c) => c.local_addr(),
            SubConn::Stomp(c) => c.ws.local_addr(),
        }
    }

    async fn read(&mut self) -> io::Result<usize> {
        match self {
            SubConn::Ws(c) => c.read().await,
            SubConn::Sio(c) => c.read().await,
            SubConn::SockJsWs(c) => c.read().await,
            SubConn::Xhr(c) => match c.read().await {
                Ok(0) if c.eof_ends_response() => Ok(0),
                r => r,
            },
            SubConn::Stomp(c) => c.read().await,
        }
    }

    /// Decodes what was read (and drops it); the protocol's end, if it came.
    fn ended(&mut self) -> Option<String> {
        match self {
            SubConn::Ws(c) => (!c.process(|_| {})).then(|| "websocket close".into()),
            SubConn::Sio(c) => (!c.process(|_| {})).then(|| "engine.io close".into()),
            SubConn::SockJsWs(c) => (!c.process(|_| {})).then(|| "sockjs c[...]".into()),
            SubConn::Xhr(c) => {
                // after reopening, an open frame means the session was gone
                let reopened = c.responses > 1;
                let mut end = None;
                let st = c.process_frames(|fr, _| match fr {
                    Frame::Close => end = Some("sockjs c[...]"),
                    Frame::Open if reopened => {
                        end = Some("session gone (new session on reopening)")
                    }
                    Frame::Bad => end = Some("bad sockjs frame"),
                    _ => {}
                });
                match (end, st) {
                    (Some(e), _) => Some(e.into()),
                    (None, Err(e)) => Some(format!("error: {e}")),
                    (None, Ok(StreamState::Ended)) => Some(STREAM_ENDED.into()),
                    (None, Ok(_)) => None,
                }
            }
            SubConn::Stomp(c) => {
                let alive = c.process(|_| {});
                match &c.failure {
                    Some(f) => Some(format!("stomp {f}")),
                    None if !alive => Some("websocket close".into()),
                    None => None,
                }
            }
        }
    }
}

/// What the stalled subscribers of one run share.
pub struct StalledRun {
    /// connected and subscribed
    pub ready: Cell<usize>,
    /// could not connect or subscribe
    pub failed: Cell<usize>,
    /// when the publisher started (`now_ns`); `u64::MAX` before
    pub since: Cell<u64>,
    /// the run is over: drain and report
    pub done: Cell<bool>,
    /// Shared with the sampling thread ([`StalledRun::watch`]).
    watched: Arc<Mutex<Vec<Watch>>>,
}

/// One stalled connection as the kernel shows it.
struct Watch {
    client: SocketAddr,
    server: SocketAddr,
    /// `now_ns` when the server's side was first seen out of ESTABLISHED
    closed_at: Option<u64>,
    send_q: u64,
    recv_q: u64,
}

impl StalledRun {
    pub fn new() -> Rc<StalledRun> {
        Rc::new(StalledRun {
            ready: Cell::new(0),
            failed: Cell::new(0),
            since: Cell::new(u64::MAX),
            done: Cell::new(false),
            watched: Arc::default(),
        })
    }

    fn watched(&self) -> MutexGuard<'_, Vec<Watch>> {
        self.watched.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Looks at the watched connections every 200 ms until the run is over,
    /// on a thread of its own at the lowest priority, by netlink
    /// ([`SockDiag`]: one exact lookup per socket). `/proc/net/tcp` is the
    /// fallback: with thousands of sockets in it (TIME_WAIT ones of earlier
    /// runs too) one read costs milliseconds of kernel time, which showed in
    /// the others' latency when it ran on the load generator's event loop.
    pub async fn watch(self: Rc<Self>) {
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (watched, stop) = (self.watched.clone(), stop.clone());
            std::thread::spawn(move || {
                // SAFETY: setpriority on the calling thread (who 0) only.
                unsafe {
                    libc::setpriority(libc::PRIO_PROCESS, 0, 19);
                }
                let mut diag = SockDiag::new().ok();
                while !stop.load(Ordering::Relaxed) {
                    let now = now_ns();
                    if let Some(d) = &mut diag {
                        if let Err(e) = sample_diag(&watched, d, now) {
                            eprintln!("stalled: sock_diag failed ({e}): reading /proc/net/tcp");
                            diag = None;
                        }
                    }
                    if diag.is_none() {
                        if let Ok(text) = std::fs::read_to_string("/proc/net/tcp") {
                            sample(&watched, &text, now);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        };
        while !self.done.get() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop.store(true, Ordering::Relaxed);
        let _ = tokio::task::spawn_blocking(move || sampler.join()).await;
    }

    #[cfg(test)]
    fn sample(&self, table: &str, now: u64) {
        sample(&self.watched, table, now)
    }
}

/// One look at the watched connections at `now` through `diag`: the server's
/// side (its send queue; out of ESTABLISHED or gone: closed) and the
/// client's (its receive queue).
fn sample_diag(watched: &Mutex<Vec<Watch>>, diag: &mut SockDiag, now: u64) -> io::Result<()> {
    let mut watched = watched.lock().unwrap_or_else(|e| e.into_inner());
    for w in watched.iter_mut() {
        match diag.lookup(w.server, w.client)? {
            Some(info) => {
                w.send_q = w.send_q.max(info.send_q.into());
                if info.state != TCP_ESTABLISHED && w.closed_at.is_none() {
                    w.closed_at = Some(now);
                }
            }
            None if w.closed_at.is_none() => w.closed_at = Some(now),
            None => {}
        }
        if let Some(info) = diag.lookup(w.client, w.server)? {
            w.recv_q = w.recv_q.max(info.recv_q.into());
        }
    }
    Ok(())
}

/// One look at `/proc/net/tcp` (`table`) at `now` for the watched connections.
fn sample(watched: &Mutex<Vec<Watch>>, table: &str, now: u64) {
    let mut watched = watched.lock().unwrap_or_else(|e| e.into_inner());
    if watched.is_empty() {
        return;
    }
    let mut seen = vec![false; watched.len()];
    for line in table.lines().skip(1) {
        let Some(e) = parse_tcp_line(line) else {
            continue;
        };
        for (i, w) in watched.iter_mut().enumerate() {
            if e.local == w.server && e.remote == w.client {
                seen[i] = true;
                w.send_q = w.send_q.max(e.tx_queue);
                if e.state != TCP_ESTABLISHED && w.closed_at.is_none() {
                    w.closed_at = Some(now);
                }
            } else if e.local == w.client && e.remote == w.server {
                w.recv_q = w.recv_q.max(e.rx_queue);
            }
        }
    }
    for (w, seen) in watched.iter_mut().zip(seen) {
        // gone from the table: closed (and already reset or finished)
        if !seen && w.closed_at.is_none() {
            w.closed_at = Some(now);
        }
    }
}

/// `st` of an established connection in `/proc/net/tcp`.
const TCP_ESTABLISHED: u8 = 1;

/// One row of `/proc/net/tcp`.
#[derive(Debug, PartialEq, Eq)]
struct TcpEntry {
    local: SocketAddr,
    remote: SocketAddr,
    state: u8,
    tx_queue: u64,
    rx_queue: u64,
}

/// `  0: 0100007F:1F90 0100007F:D2F4 01 00000000:00000000 ...`: the IPv4
/// address is the kernel's network-order word printed as a native integer.
fn parse_tcp_line(line: &str) -> Option<TcpEntry> {
    let mut f = line.split_whitespace().skip(1);
    let addr = |s: &str| -> Option<SocketAddr> {
        let (ip, port) = s.split_once(':')?;
        let ip = u32::from_str_radix(ip, 16).ok()?;
        let port = u16::from_str_radix(port, 16).ok()?;
        Some(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::from(ip.to_ne_bytes())),
            port,
        ))
    };
    let local = addr(f.next()?)?;
    let remote = addr(f.next()?)?;
    let state = u8::from_str_radix(f.next()?, 16).ok()?;
    let (tx, rx) = f.next()?.split_once(':')?;
    Some(TcpEntry {
        local,
        remote,
        state,
        tx_queue: u64::from_str_radix(tx, 16).ok()?,
        rx_queue: u64::from_str_radix(rx, 16).ok()?,
    })
}

/// What the drain reports for a complete xhr-streaming response (the stream
/// limit), after reopening once.
const STREAM_ENDED: &str = "stream ended";

/// How long the final drain reads at most, and how long a silence ends it.
const DRAIN_FOR: Duration = Duration::from_secs(5);
const DRAIN_IDLE: Duration = Duration::from_millis(500);

/// One stalled subscriber: `connect` (the fan-out's own connection code for
/// the protocol) with SO_RCVBUF `rcvbuf`, then nothing until the run is
/// over, then the drain.
pub async fn subscriber(
    connect: impl Future<Output = Result<SubConn, String>>,
    server: SocketAddr,
    rcvbuf: u32,
    run: Rc<StalledRun>,
    sem: Rc<Semaphore>,
) -> StalledFate {
    let permit = sem.acquire().await;
    let mut c = match with_recv_buffer(rcvbuf, connect).await {
        Ok(c) => c,
        Err(e) => {
            run.failed.set(run.failed.get() + 1);
            eprintln!("fanout: stalled subscriber: {e}");
            return StalledFate {
                end: format!("never subscribed: {e}"),
                ..StalledFate::default()
            };
        }
    };
    drop(permit);
    let index = c.local_addr().ok().map(|client| {
        let mut w = run.watched();
        w.push(Watch {
            client,
            server,
            closed_at: None,
            send_q: 0,
            recv_q: 0,
        });
        w.len() - 1
    });
    run.ready.set(run.ready.get() + 1);
    while !run.done.get() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (end, drained) = drain(&mut c).await;
    let mut fate = StalledFate {
        dropped: !matches!(end.as_str(), "open" | STREAM_ENDED),
        end,
        drained,
        ..StalledFate::default()
    };
    if let Some(w) = index.and_then(|i| {
        run.watched()
            .get(i)
            .map(|w| (w.closed_at, w.send_q, w.recv_q))
    }) {
        let (closed_at, send_q, recv_q) = w;
        fate.server_send_q = send_q;
        fate.client_recv_q = recv_q;
        if let Some(t) = closed_at {
            fate.dropped = true;
            fate.closed_after_s = Some(t.saturating_sub(run.since.get()) as f64 / 1e9);
        }
    }
    fate
}

/// Reads what the server sent until the connection ends, nothing comes for
/// [`DRAIN_IDLE`] or [`DRAIN_FOR`] passed; returns how it ended and the bytes read.
async fn drain(c: &mut SubConn) -> (String, u64) {
    let deadline = Instant::now() + DRAIN_FOR;
    let mut total = 0u64;
    loop {
        match (c.ended(), &mut *c) {
            // the response hit the stream limit: reopen once, as a client
            // would, and see whether the session is still there
            (Some(end), SubConn::Xhr(x)) if end == STREAM_ENDED && x.responses == 1 => {
                if let Err(e) = x.reopen().await {
                    return (format!("reopening: {e}"), total);
                }
            }
            (Some(end), _) => return (end, total),
            (None, _) => {}
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return ("open".into(), total);
        }
        match tokio::time::timeout(left.min(DRAIN_IDLE), c.read()).await {
            Err(_) => return ("open".into(), total),
            Ok(Ok(0)) => return ("eof".into(), total),
            Ok(Ok(n)) => total += n as u64,
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionReset => {
                return ("reset".into(), total)
            }
            Ok(Err(e)) => return (format!("error: {e}"), total),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tcp_rows() {
        let e = parse_tcp_line(
            "   3: 0100007F:1F90 0100007F:D2F4 04 0001A2B0:00000000 01:00000020 00000000  1000        0 0 1 0000000000000000 20 4 30 10 -1",
        )
        .unwrap();
        assert_eq!(e.local, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(e.remote, "127.0.0.1:54004".parse().unwrap());
        assert_eq!((e.state, e.tx_queue, e.rx_queue), (4, 0x1a2b0, 0));
        assert!(parse_tcp_line("  sl  local_address rem_address   st tx_queue").is_none());
    }

    #[test]
    fn samples() {
        let run = StalledRun::new();
        run.watched().push(Watch {
            client: "127.0.0.1:54004".parse().unwrap(),
            server: "127.0.0.1:8080".parse().unwrap(),
            closed_at: None,
            send_q: 0,
            recv_q: 0,
        });
        let head = "  sl  local_address rem_address   st tx_queue rx_queue\n";
        let row = |local: &str, remote: &str, st: &str, q: &str| {
            format!("   0: {local} {remote} {st} {q} 00:00000000 00000000 0 0 1\n")
        };
        let est = format!(
            "{head}{}{}",
            row("0100007F:1F90", "0100007F:D2F4", "01", "00010000:00000000"),
            row("0100007F:D2F4", "0100007F:1F90", "01", "00000000:00002000")
        );
        run.sample(&est, 1);
        {
            let w = &run.watched()[0];
            assert_eq!((w.closed_at, w.send_q, w.recv_q), (None, 0x10000, 0x2000));
        }
        run.sample(
            &format!(
                "{head}{}",
                row("0100007F:1F90", "0100007F:D2F4", "04", "00020000:00000000")
            ),
            2,
        );
        assert_eq!(run.watched()[0].closed_at, Some(2));
        assert_eq!(run.watched()[0].send_q, 0x20000);
        // gone later: the first time it was seen closed stays
        run.sample(head, 3);
        assert_eq!(run.watched()[0].closed_at, Some(2));
    }

    /// A stalled connection the server closes is found dropped; one it keeps is not.
    #[tokio::test(flavor = "current_thread")]
    async fn fates() {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = l.local_addr().unwrap();
                let t = crate::util::parse_url(&format!("ws://{addr}/t")).unwrap();
                let server = tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut keep = Vec::new();
                    for i in 0..2 {
                        let (mut s, _) = l.accept().await.unwrap();
                        let mut buf = vec![0u8; 4096];
                        let n = s.read(&mut buf).await.unwrap();
                        let req = String::from_utf8_lossy(&buf[..n]).into_owned();
                        let key = req
                            .lines()
                            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                            .unwrap()
                            .trim()
                            .to_owned();
                        let accept = switchboard_websocket::handshake::accept_key(key.as_bytes());
                        let resp = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n");
                        s.write_all(resp.as_bytes()).await.unwrap();
                        if i == 0 {
                            // unmasked text "hi", then close 1013
                            s.write_all(&[0x81, 2, b'h', b'i', 0x88, 2, 0x03, 0xf5])
                                .await
                                .unwrap();
                            drop(s);
                        } else {
                            keep.push(s);
                        }
                    }
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    drop(keep);
                });
                let run = StalledRun::new();
                let sem = Rc::new(Semaphore::new(4));
                run.since.set(now_ns());
                let mut tasks = Vec::new();
                for _ in 0..2 {
                    let t = t.clone();
                    tasks.push(tokio::task::spawn_local(subscriber(
                        async move {
                            WsConn::connect(&t, None)
                                .await
                                .map(SubConn::Ws)
                                .map_err(|e| e.to_string())
                        },
                        addr,
                        4096,
                        run.clone(),
                        sem.clone(),
                    )));
                    // the first one is accepted (and closed) first
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                run.done.set(true);
                let first = tasks.remove(0).await.unwrap();
                let second = tasks.remove(0).await.unwrap();
                assert!(first.dropped, "{first:?}");
                assert_eq!(first.end, "websocket close");
                assert!(!second.dropped, "{second:?}");
                assert_eq!(second.end, "open");
                server.abort();
            })
            .await;
    }
}
