//! Tokio driver for one WebSocket connection: socket ⇄ sans-IO core ⇄ handler.
//!
//! One task per connection, one future with no buffers of its own while idle:
//! reads borrow a pooled buffer, and everything produced between two flushes
//! (replies to every frame of a read, a burst of hub deliveries) leaves in one
//! vectored write. The protocol rules live in `switchboard_websocket`; this
//! module only moves bytes, runs the timers and applies back-pressure.

use crate::buffer_pool::poll_read_pooled;
use crate::registry::{ConnectionGuard, Registry};
use crate::write_queue::WriteQueue;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use switchboard_hub::{Delivery, Mailbox};
use switchboard_websocket::{CloseCode, Connection, Event, Writer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

/// Close code of a connection the server ended on purpose (e.g. a backend
/// disconnected its user through the API): 4001, from the range RFC 6455
/// leaves to applications, with reason "disconnected by the server".
pub const DISCONNECTED_BY_SERVER: CloseCode = CloseCode(4001);

/// What a WebSocket endpoint does with a connection's traffic.
pub trait WsHandler: Send + Unpin + 'static {
    /// Called for every event from the peer; replies go to `out`.
    fn on_event(&mut self, event: Event<'_>, out: &mut Writer);

    /// The hub mailbox this connection receives publications on, if any
    /// (asked once, when the connection starts).
    fn mailbox(&self) -> Option<Arc<Mailbox>> {
        None
    }

    /// Called for each delivery taken from [`WsHandler::mailbox`].
    fn on_delivery(&mut self, _delivery: Delivery, _out: &mut Writer) {}

    /// Called on every wake-up of the connection's task (until a close was
    /// queued), for a handler with wake-up sources of its own (timers,
    /// queues outside the hub): it registers `cx`'s waker with them and
    /// writes what they produced to `out`. `backlogged`: the output waiting
    /// for the socket (in `out` and in the driver's write queue) is above
    /// [`DriverConfig::output_high_water`]; the handler should then take no
    /// more deliveries, but still notice its own slow-consumer limit (the
    /// driver polls again once the backlog drained). The default does
    /// nothing.
    fn poll_sources(&mut self, _cx: &mut Context<'_>, _out: &mut Writer, _backlogged: bool) {}
}

/// Timing and back-pressure settings of the driver.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// Send a ping after this long without hearing from the peer (None: never).
    pub ping_interval: Option<Duration>,
    /// Drop the connection when the peer stays silent this long after a ping.
    pub ping_timeout: Duration,
    /// How long to wait for the peer's close frame after sending ours.
    pub close_timeout: Duration,
    /// Output not yet accepted by the socket above which the driver stops
    /// reading requests and taking hub deliveries (the mailbox then fills and
    /// the slow-consumer policy applies).
    pub output_high_water: usize,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            ping_interval: Some(Duration::from_secs(30)),
            ping_timeout: Duration::from_secs(30),
            close_timeout: Duration::from_secs(5),
            output_high_water: 256 * 1024,
        }
    }
}

/// Reads per poll before yielding to other tasks.
const READS_PER_POLL: usize = 16;

thread_local! {
    static DELIVERIES: std::cell::RefCell<Vec<Delivery>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The future that runs a WebSocket connection to completion (it is the
/// whole per-connection task: keep it small).
pub fn drive<IO, H>(
    io: IO,
    conn: Connection,
    handler: H,
    config: Arc<DriverConfig>,
    registry: &Registry,
) -> Driver<IO, H>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    H: WsHandler,
{
    let guard = registry.register();
    Driver {
        mailbox: handler.mailbox(),
        io,
        conn,
        handler,
        mark: guard.millis(Instant::now()),
        guard,
        out: WriteQueue::new(),
        close_armed: false,
        ping_sent: false,
        shutting_down: false,
        paused: false,
        io_done: false,
        config,
    }
}

/// A WebSocket connection's task; see [`drive`].
pub struct Driver<IO, H> {
    io: IO,
    conn: Connection,
    handler: H,
    mailbox: Option<Arc<Mailbox>>,
    guard: ConnectionGuard,
    /// Bytes produced but not yet accepted by the socket, in order.
    out: WriteQueue,
    /// When the peer was last heard from or, once `close_armed`, when our
    /// close frame was sent ([`ConnectionGuard::millis`]): two `Instant`s
    /// folded into 4 bytes of every connection's task. The spans measured
    /// from it are bounded by the ping and close timeouts.
    mark: u32,
    close_armed: bool,
    ping_sent: bool,
    shutting_down: bool,
    /// Reading or the mailbox was skipped because of the backlog.
    paused: bool,
    /// The socket failed or reached EOF: nothing more can be read or written.
    io_done: bool,
    config: Arc<DriverConfig>,
}

impl<IO, H> Driver<IO, H>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    H: WsHandler,
{
    /// Whether output waiting for the socket is above the high-water mark;
    /// remembers that a source was paused so the poll loop retries it.
    fn backlogged(&mut self) -> bool {
        let backlog = self.out.len() + self.conn.writer().output_len();
        let high = backlog >= self.config.output_high_water;
        self.paused |= high;
        high
    }

    /// Reads and processes what the socket has, until it would block, the
    /// backlog is high or the per-poll budget is spent. `now_ms`: this
    /// poll's time ([`ConnectionGuard::millis`]), the peer's last sign of life
    /// if something is read.
    fn poll_read_side(&mut self, cx: &mut Context<'_>, now_ms: u32) {
        for _ in 0..READS_PER_POLL {
            if self.io_done || self.conn.is_closed() || self.backlogged() {
                return;
            }
            let (conn, handler) = (&mut self.conn, &mut self.handler);
            let read = poll_read_pooled(&mut self.io, cx, |data| {
                if let Err(e) = conn.receive(data, |ev, w| handler.on_event(ev, w)) {
                    tracing::debug!(error = %e, "websocket protocol error");
                }
            });
            match read {
                Poll::Pending => return,
                Poll::Ready(Ok(0)) => {
                    self.io_done = true;
                    return;
                }
                Poll::Ready(Err(e)) => {
                    tracing::debug!(error = %e, "websocket read failed");
                    self.io_done = true;
                    return;
                }
                Poll::Ready(Ok(_)) => {
                    if !self.close_armed {
                        self.mark = now_ms;
                    }
                    self.ping_sent = false;
                }
            }
        }
        // Budget spent with data still flowing: let other tasks run.
        cx.waker().wake_by_ref();
    }

    /// Takes hub deliveries while the output backlog allows; applies the
    /// slow-consumer policy when the mailbox overflowed.
    fn poll_mailbox(&mut self, cx: &mut Context<'_>) {
        if self.conn.close_sent() {
            return;
        }
        let backlogged = self.backlogged();
        let Some(mailbox) = self.mailbox.clone() else {
            return;
        };
        if backlogged {
            // Not taking deliveries now, but an overflow must still wake us.
            mailbox.register_waker(cx.waker());
        }
        let mut batch = DELIVERIES.with(|d| std::mem::take(&mut *d.borrow_mut()));
        // Drain until the mailbox is empty and has our waker (poll_ready
        // registers it only when it returns Pending).
        while !backlogged && mailbox.poll_ready(cx).is_ready() && !mailbox.is_overflowed() {
            if mailbox.drain(&mut batch) == 0 {
                break; // closed and empty
            }
            for d in batch.drain(..) {
                self.handler.on_delivery(d, self.conn.writer());
            }
            if self.backlogged() {
                mailbox.register_waker(cx.waker());
                break;
            }
        }
        DELIVERIES.with(|d| *d.borrow_mut() = batch);
        if mailbox.is_overflowed() {
            self.drop_slow_consumer();
        } else if mailbox.is_kicked() {
            self.conn
                .writer()
                .close(DISCONNECTED_BY_SERVER, "disconnected by the server");
        } else if mailbox.is_closed() {
            self.conn
                .writer()
                .close(CloseCode::GOING_AWAY, "server shutting down");
        }
    }

    /// Slow-consumer policy: frames the peer has not started to receive are
    /// discarded, so the close 1013 goes out right after the frame in flight.
    fn drop_slow_consumer(&mut self) {
        tracing::debug!("closing slow consumer");
        self.out.take_from(self.conn.writer());
        self.out.discard_unstarted();
        self.conn
            .writer()
            .close(CloseCode::TRY_AGAIN_LATER, "slow consumer");
    }

    /// Writes pending output. Ready(()) when all was written or the socket is gone.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.out.take_from(self.conn.writer());
        if self.io_done {
            return Poll::Ready(());
        }
        match ready!(self.out.poll_write_to(&mut self.io, cx)) {
            Ok(()) => {}
            Err(_) => self.io_done = true,
        }
        Poll::Ready(())
    }

    /// Heartbeat and close timers. Returns true when the connection must be
    /// dropped now. The wake-up comes from the registry's shared ticker: reads
    /// only move `mark`, and a wake-up re-computes the real deadline. `now`
    /// is this poll's time (the clock is read once per poll).
    fn poll_timers(&mut self, now: Instant, now_ms: u32) -> bool {
        loop {
            let wait = if self.conn.close_sent() {
                if !self.close_armed {
                    self.close_armed = true;
                    self.mark = now_ms;
                }
                self.config.close_timeout
            } else if let Some(interval) = self.config.ping_interval {
                if self.ping_sent {
                    interval + self.config.ping_timeout
                } else {
                    interval
                }
            } else {
                self.guard.set_deadline(None);
                return false;
            };
            let elapsed = Duration::from_millis(u64::from(now_ms.wrapping_sub(self.mark)));
            // Due within the millisecond the timestamps are rounded to.
            let left = wait.saturating_sub(elapsed);
            if left > Duration::from_millis(1) {
                self.guard.set_deadline(Some(now + left));
                return false;
            }
            if self.conn.close_sent() {
                tracing::debug!("websocket close timeout");
                return true;
            }
            if self.ping_sent {
                tracing::debug!("websocket ping timeout");
                self.conn
                    .writer()
                    .close(CloseCode::GOING_AWAY, "ping timeout");
                return true;
            }
            self.conn.writer().ping(b"");
            self.ping_sent = true;
        }
    }
}

impl<IO, H> Future for Driver<IO, H>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    H: WsHandler,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            if this.guard.poll_shutdown(cx) && !this.shutting_down {
                this.shutting_down = true;
                this.conn
                    .writer()
                    .close(CloseCode::GOING_AWAY, "server shutting down");
            }
            let now = Instant::now();
            let now_ms = this.guard.millis(now);
            this.poll_read_side(cx, now_ms);
            if !this.conn.close_sent() {
                let backlogged = this.backlogged();
                this.handler
                    .poll_sources(cx, this.conn.writer(), backlogged);
            }
            this.poll_mailbox(cx);
            let drop_now = this.poll_timers(now, now_ms);
            let flushed = this.poll_flush(cx).is_ready();
            if this.io_done || drop_now || (this.conn.is_closed() && flushed) {
                if !this.io_done && flushed {
                    // Best effort: close our side cleanly after the last frame.
                    let _ = Pin::new(&mut this.io).poll_shutdown(cx);
                }
                return Poll::Ready(());
            }
            // Reading and the mailbox pause while the backlog is high; when a
            // flush drained it they have not registered a waker, so go again.
            if !(this.paused && flushed) {
                return Poll::Pending;
            }
            this.paused = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_websocket::{Config, Role};
    use tokio::io::{AsyncReadExt, DuplexStream};

    struct Silent;

    impl WsHandler for Silent {
        fn on_event(&mut self, _: Event<'_>, _: &mut Writer) {}
    }

    /// A driver on one end of a pipe; the test holds the other end and
    /// never writes to it (a peer that answers nothing).
    fn start(registry: &Registry) -> (DuplexStream, tokio::task::JoinHandle<()>) {
        let (server_io, peer) = tokio::io::duplex(1 << 16);
        let config = Arc::new(DriverConfig {
            ping_interval: Some(Duration::from_secs(10)),
            ping_timeout: Duration::from_secs(5),
            close_timeout: Duration::from_secs(3),
            ..DriverConfig::default()
        });
        let conn = Connection::new(Role::Server, Config::default());
        (
            peer,
            tokio::spawn(drive(server_io, conn, Silent, config, registry)),
        )
    }

    /// The next frame the server wrote (unmasked, payload under 126 bytes),
    /// or None at EOF. Fails after a minute (of paused time: at once) rather
    /// than wait for a wake-up that never comes.
    async fn frame(peer: &mut DuplexStream) -> Option<(u8, Vec<u8>)> {
        let read = async {
            let mut head = [0u8; 2];
            if peer.read_exact(&mut head).await.is_err() {
                return None;
            }
            let mut payload = vec![0; usize::from(head[1] & 0x7f)];
            peer.read_exact(&mut payload).await.unwrap();
            Some((head[0], payload))
        };
        tokio::time::timeout(Duration::from_secs(60), read)
            .await
            .expect("the driver never woke up")
    }

    fn secs_since(t: Instant) -> f64 {
        t.elapsed().as_secs_f64()
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_is_pinged_then_dropped() {
        let registry = Registry::new();
        let start_at = Instant::now();
        let (mut peer, task) = start(&registry);
        // The ping interval after the last read (here: the start), give or
        // take the registry's one-second tick.
        assert_eq!(frame(&mut peer).await, Some((0x89, vec![])));
        let pinged = secs_since(start_at);
        assert!((10.0..=11.5).contains(&pinged), "pinged after {pinged} s");
        // No pong within the ping timeout: close 1001 "ping timeout", gone.
        let (op, payload) = frame(&mut peer).await.unwrap();
        assert_eq!((op, &payload[..2]), (0x88, &1001u16.to_be_bytes()[..]));
        assert_eq!(&payload[2..], b"ping timeout");
        let closed = secs_since(start_at);
        assert!((15.0..=17.0).contains(&closed), "closed after {closed} s");
        assert_eq!(frame(&mut peer).await, None);
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn an_unanswered_close_times_out() {
        let registry = Registry::new();
        let (mut peer, task) = start(&registry);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let closing = Instant::now();
        registry.trigger();
        let (op, payload) = frame(&mut peer).await.unwrap();
        assert_eq!((op, &payload[..2]), (0x88, &1001u16.to_be_bytes()[..]));
        // The peer never answers our close: dropped after the close timeout
        // (before any ping: the close stops them).
        assert_eq!(frame(&mut peer).await, None);
        let gone = secs_since(closing);
        assert!((3.0..=4.5).contains(&gone), "dropped after {gone} s");
        task.await.unwrap();
    }
}
