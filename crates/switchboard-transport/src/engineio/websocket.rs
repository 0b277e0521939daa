//! Engine.IO over WebSocket: the direct WebSocket handshake, the upgrade of
//! a polling session, and the task that drives one WebSocket connection
//! (frames in → `ws_message`; the session's outbox → frames out).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use switchboard_engineio::{Session, TransportKind, Utf8Bytes, WsId, WsMessage};
use switchboard_websocket::handshake::{accept, HandshakeError};
use switchboard_websocket::{CloseCode, Config as WsConfig, Connection, Event, Role};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::server::{deliver, open_session, session_ended, session_turn, set_cookie, Shared};
use super::socket::{now, EngineSocket, WsOutbox};
use super::EngineHandler;
use crate::buffer_pool::poll_read_pooled;
use crate::registry::ConnectionGuard;
use crate::write_queue::poll_write_chunks;

/// Reads per poll before yielding to other tasks.
const READS_PER_POLL: usize = 16;
/// Output not yet accepted by the socket above which reading pauses.
const OUTPUT_HIGH_WATER: usize = 256 * 1024;
/// How long to wait for the peer's close frame after sending ours.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// A session deadline at least this far away waits on the registry's
/// one-second ticker instead of a timer of the session's own.
const SESSION_TICKER_MIN: Duration = Duration::from_secs(2);

/// `transport=websocket` without a sid: a session born on a WebSocket.
pub(crate) fn handshake<H: EngineHandler>(
    shared: &Arc<Shared<H>>,
    parts: &mut http::request::Parts,
    b64: bool,
) -> Response<Body> {
    let (ws_config, on_upgrade, resp) = match accept_upgrade(shared, parts) {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let sid = shared.sids_next();
    let (session, ws) = Session::new_websocket(&sid, shared.engine.clone(), now(), b64);
    let socket = EngineSocket::new(session, sid.into(), shared.config.max_buffered_bytes);
    let outbox = WsOutbox::new();
    {
        let mut st = socket.inner.state.lock();
        st.attach_ws(ws, &outbox);
        st.flush(&socket.inner); // the open packet, into the outbox
    }
    spawn_connection(
        shared.clone(),
        Some((socket.clone(), ws)),
        outbox,
        on_upgrade,
        ws_config,
        true,
    );
    let resp = set_cookie(shared, resp, socket.sid());
    // No session task: the connection's task runs the session.
    open_session(shared, socket, parts, false);
    resp
}

/// `transport=websocket` with the sid of a polling session (checked): the
/// upgrade. A connection the core refuses (already upgrading or upgraded)
/// is accepted and closed at once, as Node does.
pub(crate) fn upgrade<H: EngineHandler>(
    shared: &Arc<Shared<H>>,
    socket: &EngineSocket,
    parts: &mut http::request::Parts,
    b64: bool,
) -> Response<Body> {
    let (ws_config, on_upgrade, resp) = match accept_upgrade(shared, parts) {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let outbox = WsOutbox::new();
    let ws = {
        let mut st = socket.inner.state.lock();
        let ws = st.session.ws_open(now(), b64);
        if let Some(ws) = ws {
            st.attach_ws(ws, &outbox);
        }
        st.flush(&socket.inner); // the upgrade timeout is a new deadline
        ws
    };
    let link = match ws {
        Some(ws) => Some((socket.clone(), ws)),
        None => {
            outbox.close();
            None
        }
    };
    spawn_connection(shared.clone(), link, outbox, on_upgrade, ws_config, false);
    resp
}

/// The WebSocket handshake proper; `Err` is the response refusing it.
#[allow(clippy::result_large_err)]
fn accept_upgrade<H>(
    shared: &Shared<H>,
    parts: &mut http::request::Parts,
) -> Result<(WsConfig, OnUpgrade, Response<Body>), Response<Body>> {
    let accepted = accept(
        &parts.method,
        parts.version,
        &parts.headers,
        &shared.ws_options,
    )
    .map_err(|e| handshake_error(&e))?;
    let on_upgrade = parts.extensions.remove::<OnUpgrade>().ok_or_else(|| {
        let mut resp = Response::new(Body::from("connection cannot be upgraded\n"));
        *resp.status_mut() = StatusCode::UPGRADE_REQUIRED;
        resp
    })?;
    let max = shared.config.engine.max_payload;
    let ws_config = WsConfig {
        max_message_size: max,
        max_frame_size: max,
        deflate: accepted.deflate.clone(),
    };
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    resp.headers_mut().extend(accepted.response_headers());
    Ok((ws_config, on_upgrade, resp))
}

fn handshake_error(e: &HandshakeError) -> Response<Body> {
    let mut resp = Response::new(Body::from(format!("{}\n", e.reason)));
    *resp.status_mut() = e.status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp.headers_mut().extend(e.extra_headers());
    resp
}

/// Waits for hyper to hand over the socket, then runs the connection
/// (and, `runs_session`, the session born on it: it has no session task).
fn spawn_connection<H: EngineHandler>(
    shared: Arc<Shared<H>>,
    link: Option<(EngineSocket, WsId)>,
    outbox: Arc<WsOutbox>,
    on_upgrade: OnUpgrade,
    config: WsConfig,
    runs_session: bool,
) {
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "engine.io websocket upgrade failed");
                if let Some((socket, ws)) = link {
                    let events = {
                        let mut st = socket.inner.state.lock();
                        st.session.ws_error(now(), ws);
                        st.flush(&socket.inner)
                    };
                    if events {
                        deliver(&shared, &socket);
                    }
                    if runs_session {
                        session_ended(&shared, &socket);
                    }
                }
                return;
            }
        };
        let guard = shared.registry.register();
        // Served by a plain accept loop the socket is a TcpStream: drive it
        // directly. Otherwise drive whatever hyper gives.
        match crate::upgraded_tcp(upgraded) {
            Ok((io, read_buf)) => {
                let mut driver = WsDriver::new(io, config, shared, link, outbox, guard);
                if runs_session {
                    driver.run_session();
                }
                if !read_buf.is_empty() {
                    // Frames the client sent right behind its handshake:
                    // to the session now (the driver keeps no list of
                    // messages read between polls).
                    let mut early = read_buf.to_vec();
                    let mut incoming = Vec::new();
                    WsDriver::<TcpStream, H>::receive(
                        &mut driver.conn,
                        &mut early,
                        &mut incoming,
                        &mut driver.peer_closed,
                        &mut driver.failed,
                    );
                    driver.report(&mut incoming);
                }
                // Even empty, it pins hyper's whole read buffer: let it go
                // before the connection's long wait.
                drop(read_buf);
                // Its own task: the long-lived future is the driver alone,
                // not this one's state around it (the upgrade future, the
                // captures moved into the driver, the other branch).
                tracing::trace!(
                    bytes = std::mem::size_of_val(&driver),
                    "engine.io websocket task size"
                );
                tokio::spawn(driver);
            }
            Err(upgraded) => {
                let mut driver =
                    WsDriver::new(TokioIo::new(upgraded), config, shared, link, outbox, guard);
                if runs_session {
                    driver.run_session();
                }
                driver.await
            }
        }
    });
}

/// One Engine.IO WebSocket connection's task, which also runs the session
/// when the session was born on this connection or upgraded to it
/// (`runs_session`: the
/// session task's timers, deliveries, attached work and shutdown, so that
/// such a session is one task). Every idle connection holds one: tokio
/// makes a task of its header and the future rounded up to 128 bytes, so
/// this stays within 160 bytes, a 256-byte task (a size test in
/// `tests.rs`) — the messages read and those taken from the outbox live
/// within one poll, the output waits in the WebSocket core (boxed while
/// there is some), the close timeout is the registry's deadline, and the
/// session's timer is kept in the session.
pub(super) struct WsDriver<IO, H: EngineHandler> {
    io: IO,
    conn: Connection,
    shared: Arc<Shared<H>>,
    /// The session; `None` for a connection refused by the core (closed at
    /// once).
    socket: Option<EngineSocket>,
    /// This connection's id in the session (apart from the session: the
    /// pair would take 16 bytes).
    ws: WsId,
    outbox: Arc<WsOutbox>,
    guard: ConnectionGuard,
    /// Our close frame is out and the registry's deadline is the close
    /// timeout.
    close_armed: bool,
    peer_closed: bool,
    failed: bool,
    io_done: bool,
    /// The session was told this connection is gone.
    reported: bool,
    paused: bool,
    /// This task runs the session (born on this connection, or upgraded to
    /// it).
    runs_session: bool,
    /// The registry's shutdown was seen (and the session closed).
    shutdown_seen: bool,
}

impl<IO, H> WsDriver<IO, H>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    H: EngineHandler,
{
    fn new(
        io: IO,
        config: WsConfig,
        shared: Arc<Shared<H>>,
        link: Option<(EngineSocket, WsId)>,
        outbox: Arc<WsOutbox>,
        guard: ConnectionGuard,
    ) -> Self {
        let (socket, ws) = match link {
            Some((socket, ws)) => (Some(socket), ws),
            None => (None, WsId::default()),
        };
        WsDriver {
            io,
            conn: Connection::new(Role::Server, config),
            shared,
            socket,
            ws,
            outbox,
            guard,
            close_armed: false,
            peer_closed: false,
            failed: false,
            io_done: false,
            reported: false,
            paused: false,
            runs_session: false,
            shutdown_seen: false,
        }
    }

    /// This task runs the session from now on: its first turn is due.
    fn run_session(&mut self) {
        self.runs_session = true;
        if let Some(socket) = &self.socket {
            socket.inner.task.notify_one();
        }
    }

    /// The session task's duties, for a session this task runs:
    /// shutdown, and a session turn (the core's timer, deferred
    /// deliveries, attached work) when the session's wake-up flag is set —
    /// by a send or close elsewhere, an attach, the work's wakers or the
    /// timer's. Without it nothing is locked: this runs on every poll,
    /// i.e. for every read. Before the outbox is read: what a turn
    /// produces goes out in this poll.
    fn poll_session(&mut self, cx: &mut Context<'_>) {
        let Some(socket) = &self.socket else {
            return;
        };
        if !self.shutdown_seen && self.guard.poll_shutdown(cx) {
            self.shutdown_seen = true;
            socket.close();
        }
        // The session's deadline on the registry's ticker (no lock).
        let mut due = !self.close_armed && self.guard.deadline_passed();
        // Bounded (a timer due at once takes another round), then the
        // task yields.
        for _ in 0..4 {
            if socket.inner.task.poll_notified(cx).is_pending() && !due {
                return;
            }
            let (deadline, _) = session_turn(&self.shared, socket);
            due = false;
            match deadline {
                // Far enough (the pings and their timeouts, 20–25 s by
                // default): on the registry's ticker, which wakes this
                // task anyway — up to a tick late, never early; no timer
                // of the session's own (an allocation every idle session
                // would keep).
                Some(d) if !self.close_armed && d >= now() + SESSION_TICKER_MIN => {
                    self.guard
                        .set_deadline(Some(tokio::time::Instant::from_std(d)));
                }
                other => {
                    if !self.close_armed {
                        // Our close timeout owns the slot once armed.
                        self.guard.set_deadline(None);
                    }
                    if let Some(d) = other {
                        if socket.poll_timer(d).is_ready() {
                            // Due already: its wake-up is the next round's.
                            socket.inner.task.notify_one();
                        }
                    }
                }
            }
        }
        cx.waker().wake_by_ref();
    }

    /// Feeds received bytes to the WebSocket core.
    /// Frames `data`: messages go to `incoming`, a close frame sets
    /// `peer_closed`, a protocol error sets `failed`.
    fn receive(
        conn: &mut Connection,
        data: &mut [u8],
        incoming: &mut Vec<WsMessage>,
        peer_closed: &mut bool,
        failed: &mut bool,
    ) {
        let result = conn.receive(data, |event, _| match event {
            Event::Text(t) => incoming.push(WsMessage::Text(Utf8Bytes::from(t))),
            Event::Binary(b) => incoming.push(WsMessage::Binary(Bytes::copy_from_slice(b))),
            Event::Close(_) => *peer_closed = true,
            Event::Ping(_) | Event::Pong(_) => {}
        });
        if let Err(e) = result {
            tracing::debug!(error = %e, "engine.io websocket protocol error");
            *failed = true;
        }
    }

    fn backlog(&mut self) -> usize {
        self.conn.writer().output_len()
    }

    /// Reads what the socket has; messages go to `incoming`.
    fn poll_read_side(&mut self, cx: &mut Context<'_>, incoming: &mut Vec<WsMessage>) {
        for _ in 0..READS_PER_POLL {
            if self.io_done || self.conn.is_closed() {
                return;
            }
            if self.backlog() >= OUTPUT_HIGH_WATER {
                self.paused = true;
                return;
            }
            let conn = &mut self.conn;
            let (peer_closed, failed) = (&mut self.peer_closed, &mut self.failed);
            let read = poll_read_pooled(&mut self.io, cx, |data| {
                Self::receive(conn, data, incoming, peer_closed, failed)
            });
            match read {
                Poll::Pending => return,
                Poll::Ready(Ok(0)) => {
                    self.io_done = true;
                    return;
                }
                Poll::Ready(Err(e)) => {
                    tracing::debug!(error = %e, "engine.io websocket read failed");
                    self.io_done = true;
                    return;
                }
                Poll::Ready(Ok(_)) => {}
            }
        }
        cx.waker().wake_by_ref();
    }

    /// Gives `incoming` to the session (and tells it when the connection
    /// is gone), then delivers the resulting events; `incoming` is left
    /// empty.
    fn report(&mut self, incoming: &mut Vec<WsMessage>) {
        let gone = self.failed || self.peer_closed || self.io_done || self.conn.is_closed();
        let (Some(socket), ws) = (&self.socket, &self.ws) else {
            incoming.clear();
            return;
        };
        if self.reported || (incoming.is_empty() && !gone) {
            incoming.clear();
            return;
        }
        let (events, take_over) = {
            let mut st = socket.inner.state.lock();
            let t = now();
            for m in incoming.drain(..) {
                st.session.ws_message(t, *ws, m);
            }
            if self.failed {
                st.session.ws_error(t, *ws);
                self.reported = true;
            } else if gone {
                st.session.ws_closed(t, *ws);
                self.reported = true;
            }
            let events = st.flush(&socket.inner);
            // The upgrade completed (this connection is the session's
            // transport now): this task runs the session from here, its
            // session task ends (one task per session, as when born here).
            let take_over = !self.runs_session
                && !self.reported
                && !st.handed_off
                && !st.session.is_closed()
                && st.session.transport() == TransportKind::WebSocket;
            if take_over {
                st.handed_off = true;
            }
            (events, take_over)
        };
        if take_over {
            // This task runs the session from now on: its first turn is
            // due. The session task, woken too, sees `handed_off` and ends.
            self.runs_session = true;
            socket.inner.task.notify_one();
        }
        if events {
            deliver(&self.shared, socket);
        }
    }

    /// Frames what the session queued for this connection.
    fn poll_outbox(&mut self, cx: &mut Context<'_>) {
        // Past the high-water mark the messages wait in the outbox, where
        // the session's slow-consumer limit sees them; the write side
        // wakes this task when the socket drains.
        let take = self.backlog() < OUTPUT_HIGH_WATER;
        let mut pending = VecDeque::new();
        let close = self.outbox.drain(&mut pending, cx.waker(), take);
        if close && !take {
            // Closed while the peer is not reading (a slow consumer, or a
            // ping timeout): no point in a closing handshake behind a
            // backlog it will not read; drop the connection.
            self.io_done = true;
            return;
        }
        let w = self.conn.writer();
        // Consumed here: an idle connection keeps no queue capacity.
        for m in pending {
            match m {
                WsMessage::Text(t) => w.send_text(t.as_str()),
                WsMessage::Binary(b) => w.send_binary(&b),
            }
        }
        if close && !w.close_sent() {
            w.close(CloseCode::NORMAL, "");
        }
    }

    /// Writes pending output, straight from the WebSocket core's (no
    /// queue of the driver's own: 32 bytes in every idle connection).
    /// Ready when all was written or the socket is gone.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let w = self.conn.writer();
        while !self.io_done {
            let chunks = w.output_chunks();
            if chunks.is_empty() {
                break;
            }
            match ready!(poll_write_chunks(&mut self.io, cx, chunks)) {
                Ok(n) => w.consume(n),
                Err(_) => self.io_done = true,
            }
        }
        Poll::Ready(())
    }

    fn finish(&mut self) {
        self.io_done = true;
        self.report(&mut Vec::new());
        if self.runs_session {
            if let Some(socket) = &self.socket {
                // Telling the session its connection is gone closed it:
                // everything was delivered (a delivery under way elsewhere
                // finishes the queue itself).
                session_ended(&self.shared, socket);
            }
        }
    }
}

impl<IO, H> Future for WsDriver<IO, H>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    H: EngineHandler,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // Messages read in this poll (no allocation while none are).
        let mut incoming = Vec::new();
        loop {
            this.poll_read_side(cx, &mut incoming);
            this.report(&mut incoming);
            if this.runs_session {
                this.poll_session(cx);
            }
            // After the report: replies the handler queued go out in this
            // same write.
            this.poll_outbox(cx);
            let flushed = this.poll_flush(cx).is_ready();
            if this.io_done {
                this.finish();
                return Poll::Ready(());
            }
            if this.conn.is_closed() && flushed {
                let _ = Pin::new(&mut this.io).poll_shutdown(cx);
                this.finish();
                return Poll::Ready(());
            }
            // Bounded even when the peer stops reading: the close frame
            // may never leave, the connection still ends.
            if this.conn.close_sent()
                && this
                    .guard
                    .timeout_passed(&mut this.close_armed, CLOSE_TIMEOUT, cx)
            {
                tracing::debug!("engine.io websocket close timeout");
                this.finish();
                return Poll::Ready(());
            }
            if !(this.paused && flushed) {
                return Poll::Pending;
            }
            this.paused = false;
        }
    }
}
