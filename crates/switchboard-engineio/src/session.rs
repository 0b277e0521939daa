//! [`Session`]: one Engine.IO session as a sans-IO state machine — write
//! buffer, heartbeat, long-polling cycle, upgrade to WebSocket, close — as
//! Node's `lib/socket.ts`, `transport.ts` and `transports/*.ts` behave.
//!
//! # Driving a session
//!
//! The caller owns IO and clocks. It feeds inputs ([`Session::poll_request`],
//! [`Session::post`], [`Session::ws_message`], [`Session::ws_closed`], …,
//! [`Session::send_message`], [`Session::close`], [`Session::handle_timeout`]),
//! then drains [`Session::poll_event`] (for the application) and
//! [`Session::poll_transmit`] (for the transports), and sleeps until
//! [`Session::poll_timeout`]. Every input that can change timers takes
//! `now`.
//!
//! Long-polling: a GET is answered at once when packets are queued
//! ([`PollOutcome::Respond`]); otherwise it is parked ([`PollOutcome::Park`])
//! and answered later by a [`Transmit::PollResponse`]. A POST returns
//! `Ok(())` for `200 ok` or the [`EngineError`] to answer with. The caller
//! answers GETs with `Content-Type: text/plain; charset=UTF-8` and POSTs with
//! `text/html` / `ok` (see [`POLL_CONTENT_TYPE`], [`POST_CONTENT_TYPE`],
//! [`POST_BODY`]), both with `cache-control: no-store`.
//!
//! WebSocket: each WebSocket connection is a [`WsId`]; its messages go in
//! through [`Session::ws_message`] and out as [`Transmit::Ws`].
//!
//! # States
//!
//! ```text
//!  new_polling / new_websocket: open packet queued, ping due at now + ping_interval
//!        │
//!        ▼          close(): the buffer is still waiting for a GET
//!      Open ────────────────────────────────────────▶ Closing
//!        │  ▲ ping sent ─▶ pong within ping_timeout     │ buffer sent, then on the next
//!        │  └───────────── (next ping pong + interval)  │ GET `6␞1` (or `1` to a parked
//!        │                                              │ GET, or 30 s without a GET)
//!        │ ping timeout │ transport close │ transport   ▼
//!        │ error │ parse error │ close() with nothing queued ──▶ Closed  (Event::Closed)
//!        └──────────────────────────────────────────────────────▶
//! ```
//!
//! Upgrade (only while Open or Closing, never twice):
//!
//! ```text
//!  active: polling ── ws_open ──▶ upgrading ── 2probe / 3probe ──▶ probed
//!        ▲                         │                                │ a `6` answers the parked
//!        │  upgrade_timeout,       │ 5                               │ GET every 100 ms
//!        │  other packet, WS close ▼                                ▼ 5
//!        └──────────────────── (WS dropped)          active: websocket (upgraded):
//!                                                    the old poll gets `1` if parked,
//!                                                    buffered packets flush on the WS
//! ```
//!
//! Node quirks kept on purpose: a `1` packet is honoured only over polling
//! (over WebSocket the client just closes the socket, and Node ignores a
//! `1`); a client `ping` is an error (`transport error`); an upgrade cancels
//! an outstanding ping timeout (the next pong restarts the heartbeat).

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;

use crate::config::Config;
use crate::deadline::Deadline;
use crate::error::EngineError;
use crate::open::OpenPacket;
use crate::packet::{DecodeError, Message, Packet, PreparedText, WsMessage};
use crate::payload::{decode_payload, encode_payload};
use crate::transport::TransportKind;
use crate::Utf8Bytes;

/// `Content-Type` of a polling GET response.
pub const POLL_CONTENT_TYPE: &str = "text/plain; charset=UTF-8";
/// `Content-Type` of a successful polling POST response.
pub const POST_CONTENT_TYPE: &str = "text/html";
/// Body of a successful polling POST response.
pub const POST_BODY: &str = "ok";

/// How often, once the probe succeeded, a pending GET is answered with a
/// `noop` so the client's polling transport can pause (`setInterval(check,
/// 100)` in Node's `_maybeUpgrade`).
pub const UPGRADE_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// How long a polling transport waits for a GET to deliver its close packet
/// before closing anyway (`closeTimeout` in `polling.ts`).
pub const POLLING_CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

/// Identifies one WebSocket connection of a session.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WsId(u32);

impl fmt::Display for WsId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ws#{}", self.0)
    }
}

/// Why a session closed, with Node's reason strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// `transport close`: the client sent `1` over polling, or the WebSocket
    /// closed.
    TransportClose,
    /// `transport error`: an overlapping GET, an aborted GET, a client
    /// `ping`, a binary POST, a WebSocket error.
    TransportError,
    /// `ping timeout`: no pong within `ping_timeout` of a ping.
    PingTimeout,
    /// `parse error`: a malformed packet.
    ParseError,
    /// `forced close`: [`Session::close`].
    ForcedClose,
}

impl CloseReason {
    /// Node's string for this reason.
    pub const fn as_str(self) -> &'static str {
        match self {
            CloseReason::TransportClose => "transport close",
            CloseReason::TransportError => "transport error",
            CloseReason::PingTimeout => "ping timeout",
            CloseReason::ParseError => "parse error",
            CloseReason::ForcedClose => "forced close",
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened, for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The client sent a message.
    Message(Message),
    /// The session is closed; forget it (later requests with its sid must
    /// get [`EngineError::unknown_sid`]). Always the last event.
    Closed(CloseReason),
}

/// The answer to a polling GET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollOutcome {
    /// Answer now with this body (200, [`POLL_CONTENT_TYPE`]).
    Respond(Bytes),
    /// Keep the request open until a [`Transmit::PollResponse`].
    Park,
}

/// Output for the transports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// Answer the parked GET with this body (200, [`POLL_CONTENT_TYPE`]).
    PollResponse(Bytes),
    /// Send this message on WebSocket `ws`.
    Ws {
        /// The connection.
        ws: WsId,
        /// The message.
        message: WsMessage,
    },
    /// Close WebSocket `ws` (normal closure); nothing more is sent on it.
    WsClose(WsId),
}

/// The session's `readyState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReadyState {
    /// Exchanging packets.
    Open,
    /// [`Session::close`] was called; waiting to deliver the close.
    Closing,
    /// Done.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TransportState {
    Open,
    Closing,
    Closed,
}

/// What to do once a transport close completes (the `fn` of Node's
/// `transport.close(fn)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterClose {
    Nothing,
    ForcedClose,
}

#[derive(Debug)]
struct Polling {
    state: TransportState,
    /// A GET is parked (Node's `writable`).
    parked: bool,
    /// A close waiting for the next GET (Node's `shouldClose`).
    should_close: Option<AfterClose>,
    discarded: bool,
}

#[derive(Debug)]
struct Ws {
    id: WsId,
    supports_binary: bool,
    state: TransportState,
}

#[derive(Debug)]
enum Active {
    Polling(Polling),
    Ws(Ws),
}

#[derive(Debug)]
struct Upgrade {
    ws: Ws,
    deadline: Instant,
    check_at: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
enum Timer {
    Ping,
    PingTimeout,
    UpgradeTimeout,
    UpgradeCheck,
    PollingClose,
}

/// One Engine.IO session (see the [module docs](self)).
#[derive(Debug)]
pub struct Session {
    /// Shared by every session of a server.
    config: Arc<Config>,
    state: ReadyState,
    active: Active,
    /// Boxed: rare and short-lived, and every idle session holds the slot.
    upgrade: Option<Box<Upgrade>>,
    upgraded: bool,
    write_buffer: Vec<Packet>,
    /// Payload bytes in `write_buffer`, saturating at 4 GiB: a `u32`, and
    /// the timers 8-byte [`Deadline`]s, because every idle session holds
    /// this state.
    buffered: u32,
    close_after_drain: bool,
    next_ping: Deadline,
    ping_deadline: Deadline,
    polling_close_deadline: Deadline,
    events: VecDeque<Event>,
    transmits: VecDeque<Transmit>,
    next_ws_id: u32,
    now: Instant,
}

impl Session {
    /// A session created by a polling handshake GET at `now`. Answer that
    /// GET with [`Session::poll_request`]: it returns the open packet.
    pub fn new_polling(sid: &str, config: impl Into<Arc<Config>>, now: Instant) -> Session {
        let polling = Polling {
            state: TransportState::Open,
            parked: false,
            should_close: None,
            discarded: false,
        };
        let mut session = Session::with_active(config.into(), now, Active::Polling(polling));
        session.on_open(sid);
        session
    }

    /// A session created by a WebSocket handshake at `now` (`b64`: the
    /// client asked for base64 binary). The open packet is the first
    /// [`Transmit::Ws`] on the returned connection.
    pub fn new_websocket(
        sid: &str,
        config: impl Into<Arc<Config>>,
        now: Instant,
        b64: bool,
    ) -> (Session, WsId) {
        let id = WsId(0);
        let ws = Ws {
            id,
            supports_binary: !b64,
            state: TransportState::Open,
        };
        let mut session = Session::with_active(config.into(), now, Active::Ws(ws));
        session.next_ws_id = 1;
        session.on_open(sid);
        (session, id)
    }

    fn with_active(config: Arc<Config>, now: Instant, active: Active) -> Session {
        Session {
            config,
            state: ReadyState::Open,
            active,
            upgrade: None,
            upgraded: false,
            write_buffer: Vec::new(),
            buffered: 0,
            close_after_drain: false,
            next_ping: Deadline::NONE,
            ping_deadline: Deadline::NONE,
            polling_close_deadline: Deadline::NONE,
            events: VecDeque::new(),
            transmits: VecDeque::new(),
            next_ws_id: 0,
            now,
        }
    }

    /// The options this session runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The current transport.
    pub fn transport(&self) -> TransportKind {
        match self.active {
            Active::Polling(_) => TransportKind::Polling,
            Active::Ws(_) => TransportKind::WebSocket,
        }
    }

    /// The session's state.
    pub fn ready_state(&self) -> ReadyState {
        self.state
    }

    /// Whether the session is closed.
    pub fn is_closed(&self) -> bool {
        self.state == ReadyState::Closed
    }

    /// Whether an upgrade is in progress.
    pub fn is_upgrading(&self) -> bool {
        self.upgrade.is_some()
    }

    /// Whether the session was upgraded (it cannot be again).
    pub fn is_upgraded(&self) -> bool {
        self.upgraded
    }

    /// Validates a request routed to this session
    /// ([`Route::Session`](crate::Route::Session)), as Node does after
    /// finding the sid:
    ///
    /// * closed session → code 1 `Session ID unknown`;
    /// * not an upgrade and `transport` is not the current transport →
    ///   code 3 `Bad request` (e.g. polling after the upgrade);
    /// * polling with a method other than GET or POST → bare 500;
    /// * a plain HTTP request with `transport=websocket` → code 3 (Node
    ///   leaves it unanswered);
    /// * an upgrade request with `transport=polling` → code 3 (Node accepts
    ///   the WebSocket, then closes it).
    ///
    /// An accepted upgrade request continues with [`Session::ws_open`].
    pub fn check_request(
        &self,
        method: &Method,
        transport: TransportKind,
        upgrade: bool,
    ) -> Result<(), EngineError> {
        if self.is_closed() {
            return Err(EngineError::unknown_sid());
        }
        if upgrade {
            return match transport {
                TransportKind::WebSocket => Ok(()),
                TransportKind::Polling => Err(EngineError::bad_request()),
            };
        }
        if transport != self.transport() {
            return Err(EngineError::bad_request());
        }
        match transport {
            TransportKind::Polling if method == Method::GET || method == Method::POST => Ok(()),
            TransportKind::Polling => Err(EngineError::method_not_supported()),
            TransportKind::WebSocket => Err(EngineError::bad_request()),
        }
    }

    // ---------------------------------------------------------------- output

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Every event not yet taken, at once (the queue's room goes with
    /// them: an idle session keeps none).
    pub fn take_events(&mut self) -> VecDeque<Event> {
        std::mem::take(&mut self.events)
    }

    /// Whether events wait to be taken.
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// The next output for the transports.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// When [`Session::handle_timeout`] must next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_timer().map(|(at, _)| at)
    }

    /// Fires every timer due at `now`, in order.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        while let Some((at, timer)) = self.next_timer() {
            if at > now {
                break;
            }
            self.fire(at, timer);
        }
    }

    /// Gives back the buffers of the event and transmit queues that are
    /// empty. For idle moments, not per packet (a queue then regrows from
    /// nothing): the transports call it after a timer fired and its output
    /// was taken, i.e. once per ping interval of an idle session, which
    /// otherwise keeps the room its first packets needed.
    pub fn release_idle_buffers(&mut self) {
        if self.events.is_empty() && self.events.capacity() > 0 {
            self.events = VecDeque::new();
        }
        if self.transmits.is_empty() && self.transmits.capacity() > 0 {
            self.transmits = VecDeque::new();
        }
    }

    /// The earliest armed timer (the first in this order on a tie). On
    /// the path of every message (the task running the session asks for
    /// the deadline after each flush): one comparison per armed timer,
    /// usually one or two.
    fn next_timer(&self) -> Option<(Instant, Timer)> {
        let mut next: Option<(Instant, Timer)> = None;
        let mut consider = |at: Option<Instant>, timer: Timer| {
            if let Some(at) = at {
                if next.is_none_or(|(n, _)| at < n) {
                    next = Some((at, timer));
                }
            }
        };
        consider(self.next_ping.get(), Timer::Ping);
        consider(self.ping_deadline.get(), Timer::PingTimeout);
        if let Some(u) = &self.upgrade {
            consider(Some(u.deadline), Timer::UpgradeTimeout);
            consider(u.check_at, Timer::UpgradeCheck);
        }
        consider(self.polling_close_deadline.get(), Timer::PollingClose);
        next
    }

    fn fire(&mut self, at: Instant, timer: Timer) {
        match timer {
            Timer::Ping => {
                self.next_ping = Deadline::NONE;
                self.send_packet(Packet::Ping(Utf8Bytes::default()));
                self.ping_deadline = Deadline::new(Some(self.now + self.config.ping_timeout));
            }
            Timer::PingTimeout => {
                self.ping_deadline = Deadline::NONE;
                self.on_close(CloseReason::PingTimeout);
            }
            Timer::UpgradeTimeout => {
                if let Some(upgrade) = self.upgrade.take() {
                    self.close_ws(upgrade.ws);
                }
            }
            Timer::UpgradeCheck => {
                let next = (at + UPGRADE_CHECK_INTERVAL).max(self.now + Duration::from_millis(1));
                if let Some(upgrade) = self.upgrade.as_mut() {
                    upgrade.check_at = Some(next);
                }
                if matches!(&self.active, Active::Polling(p) if p.parked) {
                    self.polling_send(vec![Packet::Noop]);
                }
            }
            Timer::PollingClose => {
                self.polling_close_deadline = Deadline::NONE;
                if let Active::Polling(p) = &mut self.active {
                    if let Some(after) = p.should_close.take() {
                        p.state = TransportState::Closed;
                        self.run_after_close(after);
                    }
                }
            }
        }
    }

    // ------------------------------------------------------------ app input

    /// Queues a message for the client (dropped once closing or closed, as
    /// in Node). Over polling it answers the parked GET at once, alone, as
    /// Node flushes on every send; later messages wait for the next GET.
    pub fn send_message(&mut self, message: impl Into<Message>) {
        self.send_packet(Packet::Message(message.into()));
    }

    /// Payload bytes queued for the client and not yet handed to a
    /// transport (waiting for the next polling GET, or for the end of an
    /// upgrade): what a slow-consumer policy looks at.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered as usize
    }

    /// [`Session::send_message`] with a message encoded once for many
    /// sessions.
    pub fn send_prepared(&mut self, message: PreparedText) {
        self.send_packet(Packet::Prepared(message));
    }

    /// [`Session::send_message`] with text.
    pub fn send_text(&mut self, text: impl Into<Utf8Bytes>) {
        self.send_message(Message::Text(text.into()));
    }

    /// [`Session::send_message`] with bytes.
    pub fn send_binary(&mut self, data: impl Into<Bytes>) {
        self.send_message(Message::Binary(data.into()));
    }

    /// Closes the session from the server (`socket.close()`), ending with
    /// `Closed(ForcedClose)`:
    ///
    /// * WebSocket: [`Transmit::WsClose`] now (no `1` packet, as Node);
    /// * polling with a parked GET: it gets `1` now;
    /// * polling without: the next GET gets `6␞1` (if packets are still
    ///   queued, that GET gets them and the one after gets `6␞1`), or the
    ///   session closes after [`POLLING_CLOSE_TIMEOUT`] without a GET.
    pub fn close(&mut self, now: Instant) {
        self.now = now;
        if self.state != ReadyState::Open {
            return;
        }
        self.state = ReadyState::Closing;
        if self.write_buffer.is_empty() {
            self.close_active(AfterClose::ForcedClose);
        } else {
            self.close_after_drain = true;
        }
    }

    // -------------------------------------------------------------- polling

    /// A polling GET arrived. The handshake GET must come here too.
    ///
    /// Errors: a second GET while one is parked closes the session
    /// (`transport error`; the parked GET gets `1` through
    /// [`Transmit::PollResponse`]) and is answered with a bare 400; a GET
    /// to a closed session → `Session ID unknown`; to a WebSocket session
    /// → `Bad request`.
    pub fn poll_request(&mut self, now: Instant) -> Result<PollOutcome, EngineError> {
        self.now = now;
        if self.is_closed() {
            return Err(EngineError::unknown_sid());
        }
        let Active::Polling(polling) = &mut self.active else {
            return Err(EngineError::bad_request());
        };
        if polling.parked {
            // "overlap from client"
            self.on_close(CloseReason::TransportError);
            return Err(EngineError::request_overlap());
        }
        polling.parked = true;
        // The transmits so far (the transports take them all after every
        // input, so usually none): an answer to this GET is pushed after
        // them, and taken back out below to be returned.
        let before = self.transmits.len();
        self.flush();
        if let Active::Polling(p) = &self.active {
            if p.parked && p.should_close.is_some() {
                self.polling_send(vec![Packet::Noop]);
            }
        }
        let answer = (before..self.transmits.len())
            .find(|&i| matches!(self.transmits[i], Transmit::PollResponse(_)));
        Ok(match answer.and_then(|i| self.transmits.remove(i)) {
            Some(Transmit::PollResponse(body)) => PollOutcome::Respond(body),
            _ => PollOutcome::Park,
        })
    }

    /// The parked GET's connection closed before it was answered ("poll
    /// connection closed prematurely"): the session closes with
    /// `transport error`.
    pub fn poll_aborted(&mut self, now: Instant) {
        self.now = now;
        if let Active::Polling(p) = &mut self.active {
            if p.parked {
                p.parked = false;
                self.on_close(CloseReason::TransportError);
            }
        }
    }

    /// A polling POST with its whole body. `Ok(())`: answer 200
    /// [`POST_CONTENT_TYPE`] [`POST_BODY`]; then drain events.
    ///
    /// As in Node:
    /// * a body over `max_payload` bytes → bare 413, the session stays
    ///   open and nothing is decoded (a transport should stop reading after
    ///   `max_payload + 1` bytes);
    /// * `Content-Type: application/octet-stream` → `transport error` and a
    ///   bare 400 ([`EngineError::invalid_content`]);
    /// * a malformed packet → the packets before it are delivered, the
    ///   session closes with `parse error`, and the POST still gets `ok`;
    /// * a `1` packet → `transport close` (a parked GET gets `6`);
    /// * invalid UTF-8 is replaced with U+FFFD.
    pub fn post(
        &mut self,
        now: Instant,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<(), EngineError> {
        self.now = now;
        if self.is_closed() {
            return Err(EngineError::unknown_sid());
        }
        if !matches!(self.active, Active::Polling(_)) {
            return Err(EngineError::bad_request());
        }
        if content_type == Some("application/octet-stream") {
            self.on_close(CloseReason::TransportError);
            return Err(EngineError::invalid_content());
        }
        if body.len() > self.config.max_payload {
            return Err(EngineError::payload_too_large());
        }
        for packet in decode_payload(Utf8Bytes::from_bytes_lossy(body)) {
            match packet {
                Ok(Packet::Close) => self.polling_on_close(),
                other => self.on_packet(other),
            }
            if self.is_closed() {
                break;
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------ websocket

    /// A WebSocket upgrade request for this session was accepted (after
    /// [`Session::check_request`]). Returns the id of the new connection,
    /// which must then send `2probe` and `5`; `None` when Node would close it
    /// right after the handshake (session closed, upgrading, or upgraded).
    /// The upgrade is abandoned after `upgrade_timeout`.
    pub fn ws_open(&mut self, now: Instant, b64: bool) -> Option<WsId> {
        self.now = now;
        if self.is_closed() || self.upgrade.is_some() || self.upgraded {
            return None;
        }
        let id = WsId(self.next_ws_id);
        self.next_ws_id = self.next_ws_id.wrapping_add(1);
        self.upgrade = Some(Box::new(Upgrade {
            ws: Ws {
                id,
                supports_binary: !b64,
                state: TransportState::Open,
            },
            deadline: now + self.config.upgrade_timeout,
            check_at: None,
        }));
        Some(id)
    }

    /// A message arrived on WebSocket `ws`.
    pub fn ws_message(&mut self, now: Instant, ws: WsId, message: WsMessage) {
        self.now = now;
        let packet = Packet::decode_ws(message);
        if matches!(&self.active, Active::Ws(w) if w.id == ws && w.state == TransportState::Open) {
            self.on_packet(packet);
        } else if self.upgrade.as_ref().is_some_and(|u| u.ws.id == ws) {
            self.on_probe_packet(packet);
        }
    }

    /// WebSocket `ws` closed. On the current transport: `transport close`;
    /// on an upgrading connection: the upgrade is abandoned.
    pub fn ws_closed(&mut self, now: Instant, ws: WsId) {
        self.ws_gone(now, ws, CloseReason::TransportClose);
    }

    /// WebSocket `ws` failed (protocol error, message over `max_payload`,
    /// IO error). On the current transport: `transport error`; on an
    /// upgrading connection: the upgrade is abandoned. Either way a
    /// [`Transmit::WsClose`] follows.
    pub fn ws_error(&mut self, now: Instant, ws: WsId) {
        self.ws_gone(now, ws, CloseReason::TransportError);
    }

    fn ws_gone(&mut self, now: Instant, ws: WsId, reason: CloseReason) {
        self.now = now;
        let closed = reason == CloseReason::TransportClose;
        if let Active::Ws(w) = &mut self.active {
            if w.id == ws {
                if closed {
                    w.state = TransportState::Closed;
                }
                self.on_close(reason);
                return;
            }
        }
        if self.upgrade.as_ref().is_some_and(|u| u.ws.id == ws) {
            let mut upgrade = self.upgrade.take().expect("checked");
            if closed {
                upgrade.ws.state = TransportState::Closed;
            }
            self.close_ws(upgrade.ws);
        }
    }

    // ------------------------------------------------------------ internals

    /// `Socket.onOpen`: the open packet carries the sid (which the session
    /// does not keep: its transport does).
    fn on_open(&mut self, sid: &str) {
        let open = OpenPacket::new(sid, self.transport(), &self.config).to_json();
        self.send_packet(Packet::Open(open.into()));
        self.next_ping = Deadline::new(Some(self.now + self.config.ping_interval));
    }

    /// `Socket.sendPacket`.
    fn send_packet(&mut self, packet: Packet) {
        if self.state == ReadyState::Open {
            let bytes = match &packet {
                Packet::Message(Message::Text(t)) => t.len() + 1,
                Packet::Message(Message::Binary(b)) => b.len() + 1,
                Packet::Prepared(p) => p.packet().len(),
                _ => 1,
            };
            let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
            self.buffered = self.buffered.saturating_add(bytes);
            self.write_buffer.push(packet);
            self.flush();
        }
    }

    /// `Socket.flush`, then the `drain` listener of `Socket.close`.
    fn flush(&mut self) {
        let writable = match &self.active {
            Active::Polling(p) => p.parked,
            Active::Ws(w) => w.state == TransportState::Open,
        };
        if self.state == ReadyState::Closed || !writable || self.write_buffer.is_empty() {
            return;
        }
        let packets = std::mem::take(&mut self.write_buffer);
        self.buffered = 0;
        match &self.active {
            Active::Polling(_) => self.polling_send(packets),
            Active::Ws(w) => {
                let (id, binary) = (w.id, w.supports_binary);
                for packet in &packets {
                    self.transmits.push_back(Transmit::Ws {
                        ws: id,
                        message: packet.encode_ws(binary),
                    });
                }
            }
        }
        if self.close_after_drain {
            self.close_after_drain = false;
            self.close_active(AfterClose::ForcedClose);
        }
    }

    /// `Polling.send`: answers the parked GET, appending a pending close.
    fn polling_send(&mut self, mut packets: Vec<Packet>) {
        let Active::Polling(p) = &mut self.active else {
            return;
        };
        p.parked = false;
        let after = p.should_close.take();
        if after.is_some() {
            packets.push(Packet::Close);
            p.state = TransportState::Closed;
            self.polling_close_deadline = Deadline::NONE;
        }
        let body = encode_payload(&packets);
        // Inside `poll_request`, which takes it back out as its answer.
        self.transmits.push_back(Transmit::PollResponse(body));
        if let Some(after) = after {
            self.run_after_close(after);
        }
    }

    /// `Polling.onClose` after a `1` from the client.
    fn polling_on_close(&mut self) {
        if matches!(&self.active, Active::Polling(p) if p.parked) {
            self.polling_send(vec![Packet::Noop]);
        }
        if let Active::Polling(p) = &mut self.active {
            p.state = TransportState::Closed;
        }
        self.on_close(CloseReason::TransportClose);
    }

    /// `Transport.close(fn)` on the current transport.
    fn close_active(&mut self, after: AfterClose) {
        match &mut self.active {
            Active::Ws(w) => {
                if w.state != TransportState::Open {
                    return;
                }
                w.state = TransportState::Closing;
                self.transmits.push_back(Transmit::WsClose(w.id));
                self.run_after_close(after);
            }
            Active::Polling(p) => {
                if p.state != TransportState::Open {
                    return;
                }
                p.state = TransportState::Closing;
                if p.parked {
                    self.polling_send(vec![Packet::Close]);
                    if let Active::Polling(p) = &mut self.active {
                        p.state = TransportState::Closed;
                    }
                    self.run_after_close(after);
                } else if p.discarded {
                    p.state = TransportState::Closed;
                    self.run_after_close(after);
                } else {
                    p.should_close = Some(after);
                    self.polling_close_deadline =
                        Deadline::new(Some(self.now + POLLING_CLOSE_TIMEOUT));
                }
            }
        }
    }

    fn run_after_close(&mut self, after: AfterClose) {
        if after == AfterClose::ForcedClose {
            self.on_close(CloseReason::ForcedClose);
        }
    }

    /// Closes a WebSocket that is not (or no longer) the current transport.
    fn close_ws(&mut self, ws: Ws) {
        if ws.state == TransportState::Open {
            self.transmits.push_back(Transmit::WsClose(ws.id));
        }
    }

    /// `Socket.onClose`.
    fn on_close(&mut self, reason: CloseReason) {
        if self.state == ReadyState::Closed {
            return;
        }
        self.state = ReadyState::Closed;
        self.next_ping = Deadline::NONE;
        self.ping_deadline = Deadline::NONE;
        self.write_buffer.clear();
        self.buffered = 0;
        self.close_after_drain = false;
        // clearTransport
        self.close_active(AfterClose::Nothing);
        self.polling_close_deadline = Deadline::NONE;
        if let Some(upgrade) = self.upgrade.take() {
            self.close_ws(upgrade.ws);
        }
        self.events.push_back(Event::Closed(reason));
    }

    /// `Socket.onPacket` for the current transport.
    fn on_packet(&mut self, packet: Result<Packet, DecodeError>) {
        if self.state != ReadyState::Open {
            return;
        }
        match packet {
            Err(_) => self.on_close(CloseReason::ParseError),
            // "invalid heartbeat direction"
            Ok(Packet::Ping(_)) => self.on_close(CloseReason::TransportError),
            Ok(Packet::Pong(_)) => {
                self.ping_deadline = Deadline::NONE;
                self.next_ping = Deadline::new(Some(self.now + self.config.ping_interval));
            }
            Ok(Packet::Message(message)) => self.events.push_back(Event::Message(message)),
            Ok(Packet::Prepared(p)) => self
                .events
                .push_back(Event::Message(Message::Text(p.text()))),
            Ok(Packet::Open(_) | Packet::Close | Packet::Upgrade | Packet::Noop) => {}
        }
    }

    /// The `onPacket` listener of `_maybeUpgrade`.
    fn on_probe_packet(&mut self, packet: Result<Packet, DecodeError>) {
        match packet {
            Ok(Packet::Ping(data)) if data == "probe" => {
                let upgrade = self.upgrade.as_mut().expect("probe packet without upgrade");
                let message = Packet::Pong(Utf8Bytes::from_static("probe"))
                    .encode_ws(upgrade.ws.supports_binary);
                self.transmits.push_back(Transmit::Ws {
                    ws: upgrade.ws.id,
                    message,
                });
                upgrade.check_at = Some(self.now + UPGRADE_CHECK_INTERVAL);
            }
            Ok(Packet::Upgrade) if self.state != ReadyState::Closed => self.complete_upgrade(),
            _ => {
                let upgrade = self.upgrade.take().expect("probe packet without upgrade");
                self.close_ws(upgrade.ws);
            }
        }
    }

    fn complete_upgrade(&mut self) {
        let upgrade = self.upgrade.take().expect("upgrade in progress");
        if let Active::Polling(p) = &mut self.active {
            p.discarded = true;
        }
        self.upgraded = true;
        // clearTransport: closes the old transport, cancels the ping timeout.
        self.ping_deadline = Deadline::NONE;
        self.close_active(AfterClose::Nothing);
        self.polling_close_deadline = Deadline::NONE;
        self.active = Active::Ws(upgrade.ws);
        self.flush();
        if self.state == ReadyState::Closing {
            self.close_active(AfterClose::ForcedClose);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SID: &str = "AAAAAAAAAAAAAAAAAAAA";

    fn open_json(upgrades: &str) -> String {
        format!(
            r#"0{{"sid":"{SID}","upgrades":[{upgrades}],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}}"#
        )
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn respond(outcome: Result<PollOutcome, EngineError>) -> String {
        match outcome.unwrap() {
            PollOutcome::Respond(body) => String::from_utf8(body.to_vec()).unwrap(),
            PollOutcome::Park => panic!("parked"),
        }
    }

    fn polling(t0: Instant) -> Session {
        let mut s = Session::new_polling(SID, Config::default(), t0);
        assert_eq!(respond(s.poll_request(t0)), open_json(r#""websocket""#));
        s
    }

    fn events(s: &mut Session) -> Vec<Event> {
        std::iter::from_fn(|| s.poll_event()).collect()
    }

    fn transmits(s: &mut Session) -> Vec<Transmit> {
        std::iter::from_fn(|| s.poll_transmit()).collect()
    }

    fn poll_body(t: &Transmit) -> &[u8] {
        match t {
            Transmit::PollResponse(b) => b,
            other => panic!("not a poll response: {other:?}"),
        }
    }

    fn ws_text(ws: WsId, text: &'static str) -> Transmit {
        Transmit::Ws {
            ws,
            message: WsMessage::Text(text.into()),
        }
    }

    fn text(s: &'static str) -> WsMessage {
        WsMessage::Text(Utf8Bytes::from_static(s))
    }

    #[test]
    fn polling_handshake_then_ping_pong_timing() {
        let t0 = Instant::now();
        let mut s = polling(t0);
        assert_eq!(s.poll_timeout(), Some(t0 + ms(25_000)));
        assert_eq!(s.poll_request(t0 + ms(10)).unwrap(), PollOutcome::Park);

        s.handle_timeout(t0 + ms(24_999));
        assert!(transmits(&mut s).is_empty());
        s.handle_timeout(t0 + ms(25_000));
        assert_eq!(poll_body(&transmits(&mut s)[0]), b"2");
        assert_eq!(s.poll_timeout(), Some(t0 + ms(45_000)));

        // pong after 100 ms: next ping one interval after the pong
        s.post(t0 + ms(25_100), None, Bytes::from_static(b"3"))
            .unwrap();
        assert_eq!(s.poll_timeout(), Some(t0 + ms(50_100)));
        assert!(events(&mut s).is_empty());
        assert!(!s.is_closed());
    }

    #[test]
    fn an_idle_session_gives_its_queue_buffers_back() {
        let t0 = Instant::now();
        let mut s = polling(t0);
        s.post(t0, None, Bytes::from_static(b"4a\x1e4b")).unwrap();
        assert_eq!(events(&mut s).len(), 2);
        assert_eq!(s.poll_request(t0 + ms(10)).unwrap(), PollOutcome::Park);
        s.handle_timeout(t0 + ms(25_000));
        assert_eq!(poll_body(&transmits(&mut s)[0]), b"2");
        assert!(s.events.capacity() > 0 && s.transmits.capacity() > 0);
        s.release_idle_buffers();
        assert_eq!((s.events.capacity(), s.transmits.capacity()), (0, 0));
        // Pending output is kept; the session goes on as before.
        s.send_text("x");
        s.release_idle_buffers();
        assert_eq!(respond(s.poll_request(t0 + ms(25_050))), "4x");
        s.post(t0 + ms(25_100), None, Bytes::from_static(b"3"))
            .unwrap();
        assert!(!s.is_closed());
    }

    #[test]
    fn ping_timeout_closes() {
        let t0 = Instant::now();
        let mut s = polling(t0);
        s.handle_timeout(t0 + ms(25_000));
        // no GET parked: the ping waits in the buffer
        assert!(transmits(&mut s).is_empty());
        s.handle_timeout(t0 + ms(44_999));
        assert!(!s.is_closed());
        s.handle_timeout(t0 + ms(45_000));
        assert_eq!(
            events(&mut s),
            vec![Event::Closed(CloseReason::PingTimeout)]
        );
        assert_eq!(s.poll_timeout(), None);
        assert_eq!(
            s.poll_request(t0 + ms(45_001)).unwrap_err(),
            EngineError::unknown_sid()
        );
    }

    #[test]
    fn ping_timeout_answers_parked_get_with_close() {
        let t0 = Instant::now();
        let mut s = polling(t0);
        s.handle_timeout(t0 + ms(25_000));
        assert_eq!(respond(s.poll_request(t0 + ms(25_001))), "2");
        assert_eq!(s.poll_request(t0 + ms(25_002)).unwrap(), PollOutcome::Park);
        s.handle_timeout(t0 + ms(45_000));
        assert_eq!(poll_body(&transmits(&mut s)[0]), b"1");
        assert_eq!(
            events(&mut s),
            vec![Event::Closed(CloseReason::PingTimeout)]
        );
    }

    #[test]
    fn polling_with_and_without_queued_data() {
        let t0 = Instant::now();
        let mut s = polling(t0);
        s.send_text("hello");
        s.send_binary(Bytes::from_static(&[1, 2, 3, 4]));
        assert_eq!(respond(s.poll_request(t0)), "4hello\x1ebAQIDBA==");
        assert_eq!(s.poll_request(t0).unwrap(), PollOutcome::Park);
        // Node flushes on every send: the first message answers alone.
        s.send_text("a");
        s.send_text("b");
        assert_eq!(poll_body(&transmits(&mut s)[0]), b"4a");
        assert_eq!(respond(s.poll_request(t0)), "4b");
    }

    #[test]
    fn post_delivers_messages() {
        let t0 = Instant::now();
        let mut s = polling(t0);
        s.post(
            t0,
            Some("text/plain;charset=UTF-8"),
            Bytes::from_static(b"4hello\x1e4world\x1ebAQIDBA=="),
        )
        .unwrap();
        assert_eq!(
            events(&mut s),
            vec![
                Event::Message(Message::Text("hello".into())),
                Event::Message(Message::Text("world".into())),
                Event::Message(Message::Binary(Bytes::from_static(&[1, 2, 3, 4]))),
            ]
        );
    }

    #[test]
    fn overlapping_get_closes_with_transport_error() {
        let t0 = Instant::now();
        let mut s = polling(t0);
        assert_eq!(s.poll_request(t0).unwrap(), PollOutcome::Park);
        let err = s.poll_request(t0).unwrap_err();
        assert_eq!(err, EngineError::request_overlap());
        assert_eq!(err.status, http::StatusCode::BAD_REQUEST);
        assert_eq!(err.body(), "");
        assert_eq!(poll_body(&transmits(&mut s)[0]), b"1");
        assert_eq!(
            events(&mut s),
            vec![Event::Closed(CloseReason::TransportError)]
        );
    }

    #[test]
    fn aborted_get_closes_with_transport_error() {
        let t0 = Instant::now();
        let mut s = polling(t0);
        s.poll_aborted(t0); // nothing parked: ignored
        assert!(!s.is_closed());
        assert_eq!(s.poll_request(t0).unwrap(), PollOutcome::Park);
        s.poll_aborted(t0);
        assert!(transmits(&mut s).is_empty());
        assert_eq!(
            events(&mut s),
            vec![Event::Closed(CloseReason::TransportError)]
        );
    }

    #[test]
    fn post_decode_error_delivers_prefix_then_parse_error() {
        let t0 = Instant::now();
        let mut s = polling(t0);
        assert_eq!(s.poll_request(t0).unwrap(), PollOutcome::Park);
        // Node still answers the POST with "ok".
        s.post(t0, None, Bytes::from_static(b"4a\x1e9x\x1e4b"))
            .unwrap();
        assert_eq!(
            events(&mut s),
            vec![
                Event::Message(Message::Text("a".into())),
                Event::Closed(CloseReason::ParseError)
            ]
        );
        assert_eq!(poll_body(&transmits(&mut s)[0]), b"1");
    }

    #[test]
    fn empty_post_is_a_parse_error() {
        let t0 = Instant::now();
        let mut s = polling(t0);
        s.post(t0, None, Bytes::new()).unwrap();
        assert_eq!(events(&mut s), vec![Event::Closed(CloseReason::ParseError)]);
    }

    #[test]
    fn client_ping_is_a_transport_error() {
        let t0 = Instant::now();
        let mut s = polling(t0);
        s.post(t0, None, Bytes::from_static(b"2")).unwrap();
        assert_eq!(
            events(&mut s),
            vec![Event::Closed(CloseReason::TransportError)]
        );
    }

    #[test]
    fn binary_content_type_is_rejected() {
        let t0 = Instant::now();
        let mut s = polling(t0);
        let err = s
            .post(
                t0,
                Some("application/octet-stream"),
                Bytes::from_static(b"4a"),
            )
            .unwrap_err();
        assert_eq!(err, EngineError::invalid_content());
        assert_eq!(
            events(&mut s),
            vec![Event::Closed(CloseReason::TransportError)]
        );
    }

    #[test]
    fn max_payload_answers_413_and_keeps_the_session() {
        let t0 = Instant::now();
        let config = Config {
            max_payload: 5,
            ..Config::default()
        };
        let mut s = Session::new_polling(SID, config, t0);
        s.poll_request(t0).unwrap();
        s.post(t0, None, Bytes::from_static(b"4abcd")).unwrap();
        let err = s.post(t0, None, Bytes::from_static(b"4abcde")).unwrap_err();
        assert_eq!(err.status, http::StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(err.body(), "");
        assert_eq!(
            events(&mut s),
            vec![Event::Message(Message::Text("abcd".into()))]
        );
        assert!(!s.is_closed());
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let t0 = Instant::now();
        let mut s = polling(t0);
        s.post(t0, None, Bytes::from_static(b"4a\xffb")).unwrap();
        assert_eq!(
            events(&mut s),
            vec![Event::Message(Message::Text("a\u{fffd}b".into()))]
        );
    }

    #[test]
    fn client_close_packet_over_polling() {
        let t0 = Instant::now();
        let mut s = polling(t0);
        assert_eq!(s.poll_request(t0).unwrap(), PollOutcome::Park);
        s.post(t0, None, Bytes::from_static(b"1\x1e4ignored"))
            .unwrap();
        assert_eq!(poll_body(&transmits(&mut s)[0]), b"6");
        assert_eq!(
            events(&mut s),
            vec![Event::Closed(CloseReason::TransportClose)]
        );
    }

    #[test]
    fn server_close_with_parked_get() {
        let t0 = Instant::now();
        let mut s = polling(t0);
        assert_eq!(s.poll_request(t0).unwrap(), PollOutcome::Park);
        s.close(t0);
        assert_eq!(poll_body(&transmits(&mut s)[0]), b"1");
        assert_eq!(
            events(&mut s),
            vec![Event::Closed(CloseReason::ForcedClose)]
        );
    }

    #[test]
    fn server_close_waits_for_next_get() {
        let t0 = Instant::now();
        let mut s = polling(t0);
        s.close(t0);
        assert_eq!(s.ready_state(), ReadyState::Closing);
        s.send_text("dropped");
        assert_eq!(s.poll_timeout(), Some(t0 + ms(25_000)));
        assert_eq!(respond(s.poll_request(t0 + ms(5))), "6\x1e1");
        assert_eq!(
            events(&mut s),
            vec![Event::Closed(CloseReason::ForcedClose)]
        );
    }

    #[test]
    fn server_close_flushes_queue_first() {
        let t0 = Instant::now();
        let mut s = polling(t0);
        s.send_text("bye");
        s.close(t0);
        assert_eq!(respond(s.poll_request(t0)), "4bye");
        assert!(!s.is_closed());
        assert_eq!(respond(s.poll_request(t0)), "6\x1e1");
        assert_eq!(
            events(&mut s),
            vec![Event::Closed(CloseReason::ForcedClose)]
        );
    }

    #[test]
    fn server_close_times_out_without_get() {
        let t0 = Instant::now();
        let config = Config {
            ping_interval: Duration::from_secs(100),
            ..Config::default()
        };
        let mut s = Session::new_polling(SID, config, t0);
        s.poll_request(t0).unwrap();
        s.close(t0 + ms(1));
        assert_eq!(s.poll_timeout(), Some(t0 + ms(30_001)));
        s.handle_timeout(t0 + ms(30_001));
        assert_eq!(
            events(&mut s),
            vec![Event::Closed(CloseReason::ForcedClose)]
        );
    }

    #[test]
    fn check_request_rules() {
        let t0 = Instant::now();
        let s = polling(t0);
        assert!(s
            .check_request(&Method::GET, TransportKind::Polling, false)
            .is_ok());
        assert!(s
            .check_request(&Method::POST, TransportKind::Polling, false)
            .is_ok());
        assert_eq!(
            s.check_request(&Method::PUT, TransportKind::Polling, false),
            Err(EngineError::method_not_supported())
        );
        assert_eq!(
            s.check_request(&Method::GET, TransportKind::WebSocket, false),
            Err(EngineError::bad_request())
        );
        assert!(s
            .check_request(&Method::GET, TransportKind::WebSocket, true)
            .is_ok());
        let (ws, _) = Session::new_websocket(SID, Config::default(), t0, false);
        assert_eq!(
            ws.check_request(&Method::GET, TransportKind::Polling, false),
            Err(EngineError::bad_request())
        );
    }

    #[test]
    fn websocket_session() {
        let t0 = Instant::now();
        let (mut s, ws) = Session::new_websocket(SID, Config::default(), t0, false);
        assert_eq!(
            transmits(&mut s),
            vec![Transmit::Ws {
                ws,
                message: WsMessage::Text(open_json("").into())
            }]
        );
        s.ws_message(t0, ws, text("4hi"));
        s.ws_message(t0, ws, WsMessage::Binary(Bytes::from_static(&[9])));
        s.ws_message(t0, ws, text("1")); // ignored over WebSocket, as in Node
        assert_eq!(
            events(&mut s),
            vec![
                Event::Message(Message::Text("hi".into())),
                Event::Message(Message::Binary(Bytes::from_static(&[9])))
            ]
        );
        s.send_binary(Bytes::from_static(&[1, 2]));
        s.send_text("yo");
        s.handle_timeout(t0 + ms(25_000));
        assert_eq!(
            transmits(&mut s),
            vec![
                Transmit::Ws {
                    ws,
                    message: WsMessage::Binary(Bytes::from_static(&[1, 2]))
                },
                ws_text(ws, "4yo"),
                ws_text(ws, "2"),
            ]
        );
        s.ws_message(t0 + ms(25_050), ws, text("3"));
        assert_eq!(s.poll_timeout(), Some(t0 + ms(50_050)));
        s.ws_closed(t0 + ms(26_000), ws);
        assert!(transmits(&mut s).is_empty());
        assert_eq!(
            events(&mut s),
            vec![Event::Closed(CloseReason::TransportClose)]
        );
    }

    #[test]
    fn websocket_b64_and_errors() {
        let t0 = Instant::now();
        let (mut s, ws) = Session::new_websocket(SID, Config::default(), t0, true);
        transmits(&mut s);
        s.send_binary(Bytes::from_static(&[1, 2, 3, 4]));
        assert_eq!(transmits(&mut s), vec![ws_text(ws, "bAQIDBA==")]);
        s.ws_message(t0, ws, text("x"));
        assert_eq!(events(&mut s), vec![Event::Closed(CloseReason::ParseError)]);
        assert_eq!(transmits(&mut s), vec![Transmit::WsClose(ws)]);

        let (mut s, ws) = Session::new_websocket(SID, Config::default(), t0, false);
        s.ws_error(t0, ws);
        assert_eq!(
            events(&mut s),
            vec![Event::Closed(CloseReason::TransportError)]
        );
        assert_eq!(transmits(&mut s).last(), Some(&Transmit::WsClose(ws)));
    }

    #[test]
    fn websocket_server_close() {
        let t0 = Instant::now();
        let (mut s, ws) = Session::new_websocket(SID, Config::default(), t0, false);
        transmits(&mut s);
        s.close(t0);
        assert_eq!(transmits(&mut s), vec![Transmit::WsClose(ws)]);
        assert_eq!(
            events(&mut s),
            vec![Event::Closed(CloseReason::ForcedClose)]
        );
    }

    #[test]
    fn upgrade_happy_path() {
        let t0 = Instant::now();
        let mut s = polling(t0);
        assert_eq!(s.poll_request(t0).unwrap(), PollOutcome::Park);
        let ws = s.ws_open(t0 + ms(1), false).unwrap();
        assert!(s.is_upgrading());
        assert_eq!(s.ws_open(t0, false), None, "second upgrade refused");
        s.ws_message(t0 + ms(2), ws, text("2probe"));
        assert_eq!(transmits(&mut s), vec![ws_text(ws, "3probe")]);
        assert_eq!(s.poll_timeout(), Some(t0 + ms(102)));
        s.handle_timeout(t0 + ms(102));
        assert_eq!(poll_body(&transmits(&mut s)[0]), b"6");
        // a message sent while paused waits for the WebSocket
        s.send_text("queued");
        assert!(transmits(&mut s).is_empty());
        s.ws_message(t0 + ms(150), ws, text("5"));
        assert!(s.is_upgraded());
        assert_eq!(s.transport(), TransportKind::WebSocket);
        assert_eq!(transmits(&mut s), vec![ws_text(ws, "4queued")]);
        assert_eq!(s.poll_timeout(), Some(t0 + ms(25_000)));
        assert_eq!(
            s.poll_request(t0 + ms(200)).unwrap_err(),
            EngineError::bad_request()
        );
        assert_eq!(s.ws_open(t0, false), None, "upgraded once");
        s.ws_message(t0 + ms(300), ws, text("4over ws"));
        assert_eq!(
            events(&mut s),
            vec![Event::Message(Message::Text("over ws".into()))]
        );
    }

    #[test]
    fn upgrade_closes_parked_poll_with_close_packet() {
        let t0 = Instant::now();
        let mut s = polling(t0);
        assert_eq!(s.poll_request(t0).unwrap(), PollOutcome::Park);
        let ws = s.ws_open(t0, false).unwrap();
        s.ws_message(t0, ws, text("2probe"));
        s.ws_message(t0, ws, text("5"));
        assert_eq!(
            transmits(&mut s),
            vec![
                ws_text(ws, "3probe"),
                Transmit::PollResponse(Bytes::from_static(b"1"))
            ]
        );
        assert!(events(&mut s).is_empty());
    }

    #[test]
    fn upgrade_timeout_keeps_polling() {
        let t0 = Instant::now();
        let mut s = polling(t0);
        let ws = s.ws_open(t0, false).unwrap();
        s.ws_message(t0, ws, text("2probe"));
        transmits(&mut s);
        // checks without a parked GET send nothing
        s.handle_timeout(t0 + ms(9_999));
        assert!(transmits(&mut s).is_empty());
        s.handle_timeout(t0 + ms(10_000));
        assert_eq!(transmits(&mut s), vec![Transmit::WsClose(ws)]);
        assert!(!s.is_upgrading());
        s.ws_message(t0, ws, text("5"));
        assert!(!s.is_upgraded());
        s.send_text("still polling");
        assert_eq!(respond(s.poll_request(t0 + ms(10_001))), "4still polling");
        // a later upgrade may still succeed
        assert!(s.ws_open(t0 + ms(10_002), false).is_some());
    }

    #[test]
    fn upgrade_aborted_by_unexpected_packet_or_close() {
        let t0 = Instant::now();
        let mut s = polling(t0);
        let ws = s.ws_open(t0, false).unwrap();
        s.ws_message(t0, ws, text("4early"));
        assert_eq!(transmits(&mut s), vec![Transmit::WsClose(ws)]);
        assert!(!s.is_upgrading());
        assert!(events(&mut s).is_empty());

        let ws = s.ws_open(t0, false).unwrap();
        s.ws_closed(t0, ws);
        assert!(!s.is_upgrading());
        assert!(transmits(&mut s).is_empty());
        assert!(!s.is_closed());
    }

    #[test]
    fn session_close_drops_probe() {
        let t0 = Instant::now();
        let mut s = polling(t0);
        assert_eq!(s.poll_request(t0).unwrap(), PollOutcome::Park);
        let ws = s.ws_open(t0, false).unwrap();
        s.close(t0);
        assert_eq!(
            events(&mut s),
            vec![Event::Closed(CloseReason::ForcedClose)]
        );
        assert_eq!(
            transmits(&mut s),
            vec![
                Transmit::PollResponse(Bytes::from_static(b"1")),
                Transmit::WsClose(ws)
            ]
        );
        assert!(!s.is_upgrading());
    }

    #[test]
    fn upgrade_while_closing_closes_over_websocket() {
        let t0 = Instant::now();
        let mut s = polling(t0);
        let ws = s.ws_open(t0, false).unwrap();
        s.send_text("last");
        s.close(t0);
        s.ws_message(t0, ws, text("5"));
        assert_eq!(
            transmits(&mut s),
            vec![ws_text(ws, "4last"), Transmit::WsClose(ws)]
        );
        assert_eq!(
            events(&mut s),
            vec![Event::Closed(CloseReason::ForcedClose)]
        );
    }

    #[test]
    fn upgrade_cancels_outstanding_ping_timeout() {
        let t0 = Instant::now();
        let mut s = polling(t0);
        s.handle_timeout(t0 + ms(25_000));
        let ws = s.ws_open(t0 + ms(25_001), false).unwrap();
        s.ws_message(t0 + ms(25_002), ws, text("5"));
        assert_eq!(transmits(&mut s), vec![ws_text(ws, "2")]);
        assert_eq!(s.poll_timeout(), None);
        s.ws_message(t0 + ms(26_000), ws, text("3"));
        assert_eq!(s.poll_timeout(), Some(t0 + ms(51_000)));
    }
}

#[cfg(test)]
mod size_tests {
    /// Every idle Engine.IO connection holds a session (inside the
    /// transport's handle): the configuration is shared, the rare upgrade
    /// state boxed and the sid kept by the transport, so that it stays
    /// small.
    #[test]
    fn a_session_stays_small() {
        let n = std::mem::size_of::<super::Session>();
        assert!(n <= 232, "Session is {n} bytes");
    }
}
