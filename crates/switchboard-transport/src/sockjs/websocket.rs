//! The `websocket` transport and the raw `/websocket` endpoint: the
//! handshake (a session of its own per WebSocket, not in the map) and the
//! task that drives one connection — text frames in → the session; the
//! session's output → frames out; the session's end → close.
//!
//! A raw WebSocket carries the application's messages as they are, one
//! per text frame, without SockJS framing (as sockjs-node's raw endpoint):
//! the session's frames are unwrapped (`a[...]` → one text frame per
//! message, `c[code,"reason"]` → the WebSocket close, `h` → a ping, `o`
//! dropped).

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
use switchboard_sockjs::{
    check_websocket_upgrade, parse_ws_message, BrokenFraming, Flow, ReceiverId, ReceiverKind,
    Session,
};
use switchboard_websocket::handshake::accept;
use switchboard_websocket::{CloseCode, Config as WsConfig, Connection, Event, Role};
use tokio::io::{AsyncRead, AsyncWrite};

use super::conn::{now, SockJsConn, State};
use super::server::{deliver, open_session, Shared};
use super::SockJsHandler;
use crate::buffer_pool::poll_read_pooled;
use crate::registry::ConnectionGuard;
use crate::write_queue::WriteQueue;

/// Reads per poll before yielding to other tasks.
const READS_PER_POLL: usize = 16;
/// Output not yet accepted by the socket above which the connection stops
/// reading and taking the session's output (the session's queue then
/// fills and the slow-consumer close applies).
const OUTPUT_HIGH_WATER: usize = 256 * 1024;
/// How long to wait for the peer's close frame after sending ours.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// `GET /server/session/websocket`: checks the upgrade, answers 101 and
/// starts the session and its connection task.
/// With `raw`, the raw `/websocket` endpoint (`session_id` is then empty).
pub(crate) fn open<H: SockJsHandler>(
    shared: &Arc<Shared<H>>,
    parts: &mut http::request::Parts,
    session_id: &str,
    raw: bool,
) -> Response<Body> {
    if let Err(e) = check_websocket_upgrade(&parts.headers) {
        return shared.error(e, parts);
    }
    if shared.registry.is_triggered() {
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        return resp;
    }
    let accepted = match accept(
        &parts.method,
        parts.version,
        &parts.headers,
        &shared.ws_options,
    ) {
        Ok(a) => a,
        Err(e) => {
            let mut resp = Response::new(Body::from(format!("{}\n", e.reason)));
            *resp.status_mut() = e.status;
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            resp.headers_mut().extend(e.extra_headers());
            return resp;
        }
    };
    let Some(on_upgrade) = parts.extensions.remove::<OnUpgrade>() else {
        let mut resp = Response::new(Body::from("connection cannot be upgraded\n"));
        *resp.status_mut() = StatusCode::UPGRADE_REQUIRED;
        return resp;
    };
    let max = shared.config.max_message_size;
    let ws_config = WsConfig {
        max_message_size: max,
        max_frame_size: max,
        deflate: accepted.deflate.clone(),
    };
    let conn = SockJsConn::new(session_id, Session::new(now(), &shared.config.service));
    let attached = {
        let mut st = conn.inner.state.lock();
        let attached = st.session.attach(now(), ReceiverKind::WebSocket);
        st.receiver = Some((attached.id, None));
        st.after_input(&conn.inner);
        attached
    };
    let first = if raw { Vec::new() } else { attached.data };
    spawn_connection(
        Link {
            shared: shared.clone(),
            conn: conn.clone(),
            id: attached.id,
        },
        raw,
        first,
        on_upgrade,
        ws_config,
    );
    open_session(shared, &conn, parts);
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    resp.headers_mut().extend(accepted.response_headers());
    resp
}

/// Waits for hyper to hand over the socket, then runs the connection.
fn spawn_connection<H: SockJsHandler>(
    link: Link<H>,
    raw: bool,
    first: Vec<Bytes>,
    on_upgrade: OnUpgrade,
    config: WsConfig,
) {
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "sockjs websocket upgrade failed");
                let mut st = link.conn.inner.state.lock();
                st.receiver = None;
                st.session.abort(now(), link.id);
                st.after_input_deferred(&link.conn.inner);
                return;
            }
        };
        let guard = link.shared.registry.register();
        match crate::upgraded_tcp(upgraded) {
            Ok((io, read_buf)) => {
                let mut driver = WsDriver::new(io, config, link, raw, first, guard);
                if !read_buf.is_empty() {
                    // Frames the client sent right behind its handshake:
                    // to the session now (the driver keeps no list of
                    // messages read between polls).
                    let mut early = read_buf.to_vec();
                    let mut incoming = Vec::new();
                    driver.receive(&mut early, &mut incoming);
                    driver.feed_incoming(&mut incoming);
                }
                // Even empty, it pins hyper's whole read buffer.
                drop(read_buf);
                // Its own task: the long-lived future is the driver alone,
                // not this one's state around it (the upgrade future, the
                // captures moved into the driver, the other branch).
                tracing::trace!(
                    bytes = std::mem::size_of_val(&driver),
                    "sockjs websocket task size"
                );
                tokio::spawn(driver);
            }
            Err(upgraded) => {
                WsDriver::new(TokioIo::new(upgraded), config, link, raw, first, guard).await
            }
        }
    });
}

/// The connection's session.
struct Link<H: SockJsHandler> {
    shared: Arc<Shared<H>>,
    conn: SockJsConn,
    id: ReceiverId,
}

/// One SockJS WebSocket connection's task. Every idle connection holds
/// one: tokio rounds a task to 128 bytes plus its header, so this stays
/// within 288 bytes (a size test in `tests.rs`) — no list of messages read
/// (they go to the session within the poll that read them) and no timer of
/// its own (the registry's ticker wakes it at its close timeout).
pub(super) struct WsDriver<IO, H: SockJsHandler> {
    io: IO,
    ws: Connection,
    link: Link<H>,
    guard: ConnectionGuard,
    /// Bytes produced but not yet accepted by the socket, in order.
    out: WriteQueue,
    /// Our close frame is out and the registry's deadline is the close
    /// timeout.
    close_armed: bool,
    /// The raw `/websocket` endpoint: no SockJS framing.
    raw: bool,
    peer_closed: bool,
    failed: bool,
    io_done: bool,
    /// The session let go of this connection (its last frame is out, or
    /// it was told the connection is gone).
    ended: bool,
    paused: bool,
}

impl<IO, H> WsDriver<IO, H>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    H: SockJsHandler,
{
    fn new(
        io: IO,
        config: WsConfig,
        link: Link<H>,
        raw: bool,
        first: Vec<Bytes>,
        guard: ConnectionGuard,
    ) -> Self {
        let mut ws = Connection::new(Role::Server, config);
        for frame in &first {
            ws.writer()
                .send_text(std::str::from_utf8(frame).expect("sockjs frames are UTF-8"));
        }
        WsDriver {
            io,
            ws,
            link,
            guard,
            out: WriteQueue::new(),
            close_armed: false,
            raw,
            peer_closed: false,
            failed: false,
            io_done: false,
            ended: false,
            paused: false,
        }
    }

    /// Feeds received bytes to the WebSocket core; text messages go to
    /// `incoming`.
    fn receive(&mut self, data: &mut [u8], incoming: &mut Vec<String>) {
        receive(
            &mut self.ws,
            data,
            incoming,
            &mut self.peer_closed,
            &mut self.failed,
        );
    }

    fn backlog(&mut self) -> usize {
        self.out.len() + self.ws.writer().output_len()
    }

    /// Reads what the socket has; text messages go to `incoming`.
    fn poll_read_side(&mut self, cx: &mut Context<'_>, incoming: &mut Vec<String>) {
        for _ in 0..READS_PER_POLL {
            if self.io_done || self.ws.is_closed() {
                return;
            }
            if self.backlog() >= OUTPUT_HIGH_WATER {
                self.paused = true;
                return;
            }
            let ws = &mut self.ws;
            let (peer_closed, failed) = (&mut self.peer_closed, &mut self.failed);
            let read = poll_read_pooled(&mut self.io, cx, |data| {
                receive(ws, data, incoming, peer_closed, failed)
            });
            match read {
                Poll::Pending => return,
                Poll::Ready(Ok(0)) => {
                    self.io_done = true;
                    return;
                }
                Poll::Ready(Err(e)) => {
                    tracing::debug!(error = %e, "sockjs websocket read failed");
                    self.io_done = true;
                    return;
                }
                Poll::Ready(Ok(_)) => {}
            }
        }
        cx.waker().wake_by_ref();
    }

    /// Gives what was read to the session (and tells it when the
    /// connection is gone) and delivers the resulting events; then takes
    /// the session's output, so replies the handler gave go out in the
    /// same write.
    fn exchange(&mut self, cx: &mut Context<'_>, incoming: &mut Vec<String>) {
        self.feed_incoming(incoming);
        if self.ended || self.paused {
            return;
        }
        let inner = self.link.conn.inner.clone();
        let events = {
            let mut st = inner.state.lock();
            self.take_output(&mut st, cx);
            st.after_input(&inner)
        };
        if events {
            deliver(&self.link.shared, &self.link.conn);
        }
    }

    /// Gives `incoming` to the session (and tells it when the connection
    /// is gone), delivering the resulting events; `incoming` is left empty.
    fn feed_incoming(&mut self, incoming: &mut Vec<String>) {
        if self.ended {
            incoming.clear();
            return;
        }
        let gone = self.failed || self.peer_closed || self.io_done || self.ws.is_closed();
        if incoming.is_empty() && !gone {
            return;
        }
        // The lock guard borrows the session, not `self`.
        let inner = self.link.conn.inner.clone();
        let events = {
            let mut st = inner.state.lock();
            self.feed(&mut st, incoming, gone);
            st.after_input(&inner)
        };
        if events {
            deliver(&self.link.shared, &self.link.conn);
        }
    }

    /// Messages read → the session; the connection's end → `abort`.
    fn feed(&mut self, st: &mut State, incoming: &mut Vec<String>, gone: bool) {
        let (id, raw) = (self.link.id, self.raw);
        let t = now();
        for text in incoming.drain(..) {
            if raw {
                st.session.handle_messages(std::iter::once(text));
            } else if st.session.handle_ws_message(t, id, &text).is_err() {
                // The session closed itself.
                self.ended = true;
                let w = self.ws.writer();
                if !w.close_sent() {
                    w.close(
                        CloseCode(BrokenFraming::CLOSE_CODE),
                        BrokenFraming::CLOSE_REASON,
                    );
                }
                break;
            }
        }
        incoming.clear();
        if !self.ended && gone {
            st.session.abort(t, id);
            self.ended = true;
        }
        if self.ended {
            st.receiver = None;
        }
    }

    /// The session's output → frames; its end → the close; otherwise the
    /// waker is left for the next output.
    fn take_output(&mut self, st: &mut State, cx: &mut Context<'_>) {
        let id = self.link.id;
        if st.session.has_output() || !st.session.is_attached(id) {
            let mut out = Vec::new();
            let flow = st.session.poll_output(now(), id, &mut out);
            let w = self.ws.writer();
            let mut close = (CloseCode::NORMAL, String::new());
            for frame in &out {
                let frame = std::str::from_utf8(frame).expect("sockjs frames are UTF-8");
                if self.raw {
                    unwrap_raw(frame, w, &mut close);
                } else {
                    w.send_text(frame);
                }
            }
            if flow == Flow::End {
                self.ended = true;
                st.receiver = None;
                if !w.close_sent() {
                    w.close(close.0, &close.1);
                }
                return;
            }
        }
        st.park(id, cx.waker());
    }

    /// Writes pending output. Ready when all was written or the socket is
    /// gone.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.out.take_from(self.ws.writer());
        if self.io_done {
            return Poll::Ready(());
        }
        if ready!(self.out.poll_write_to(&mut self.io, cx)).is_err() {
            self.io_done = true;
        }
        Poll::Ready(())
    }

    /// The connection is over: make sure the session knows.
    fn finish(&mut self, cx: &mut Context<'_>) {
        self.io_done = true;
        self.exchange(cx, &mut Vec::new());
    }
}

impl<IO, H> Future for WsDriver<IO, H>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    H: SockJsHandler,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // Text messages read in this poll (no allocation while none are).
        let mut incoming = Vec::new();
        loop {
            this.poll_read_side(cx, &mut incoming);
            this.paused = this.backlog() >= OUTPUT_HIGH_WATER;
            // After the input: replies the handler gave go out in this
            // same write.
            this.exchange(cx, &mut incoming);
            let flushed = this.poll_flush(cx).is_ready();
            if this.io_done {
                this.finish(cx);
                return Poll::Ready(());
            }
            if this.ws.is_closed() && flushed {
                let _ = Pin::new(&mut this.io).poll_shutdown(cx);
                this.finish(cx);
                return Poll::Ready(());
            }
            if this.ws.close_sent()
                && flushed
                && this
                    .guard
                    .timeout_passed(&mut this.close_armed, CLOSE_TIMEOUT, cx)
            {
                tracing::debug!("sockjs websocket close timeout");
                this.finish(cx);
                return Poll::Ready(());
            }
            // Reading and the session's output pause while the backlog is
            // high; once a flush drained it, go again.
            if !(this.paused && flushed && this.backlog() < OUTPUT_HIGH_WATER) {
                return Poll::Pending;
            }
            this.paused = false;
        }
    }
}

/// Frames `data`: text messages go to `incoming`, a close frame sets
/// `peer_closed`, a protocol error sets `failed`.
fn receive(
    ws: &mut Connection,
    data: &mut [u8],
    incoming: &mut Vec<String>,
    peer_closed: &mut bool,
    failed: &mut bool,
) {
    let result = ws.receive(data, |event, _| match event {
        Event::Text(t) => incoming.push(t.to_owned()),
        Event::Close(_) => *peer_closed = true,
        // SockJS frames are text; binary is not part of the protocol.
        Event::Binary(_) | Event::Ping(_) | Event::Pong(_) => {}
    });
    if let Err(e) = result {
        tracing::debug!(error = %e, "sockjs websocket protocol error");
        *failed = true;
    }
}

/// A session frame for a raw WebSocket: each message of `a[...]` as a text
/// frame; `c[code,"reason"]` becomes the close to send; `h` a ping; `o`
/// dropped.
fn unwrap_raw(frame: &str, w: &mut switchboard_websocket::Writer, close: &mut (CloseCode, String)) {
    if let Some(array) = frame.strip_prefix('a') {
        match parse_ws_message(array) {
            Ok(messages) => messages.iter().for_each(|m| w.send_text(m)),
            Err(_) => tracing::warn!("sockjs message frame did not parse"),
        }
    } else if frame == "h" {
        // Keeps the connection alive as the heartbeat frame would.
        w.ping(b"");
    } else if let Some(rest) = frame.strip_prefix("c[").and_then(|r| r.strip_suffix(']')) {
        if let Some((code, reason)) = rest.split_once(',') {
            let code = code.parse().unwrap_or(1000);
            let reason = parse_ws_message(reason)
                .ok()
                .and_then(|r| r.into_iter().next())
                .unwrap_or_default();
            *close = (CloseCode(code), reason);
        }
    }
}
