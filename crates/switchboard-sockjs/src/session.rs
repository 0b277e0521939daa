//! [`Session`]: one SockJS session as a sans-IO state machine — the
//! outbound queue, the receiver (a polling or streaming response, or a
//! WebSocket) with its open / heartbeat / close frames and stream byte
//! limit, the disconnect delay — as sockjs-node's `lib/session.js` and
//! its receivers behave. No clocks, no sockets: `now` comes in, bytes and
//! [`Event`]s come out.
//!
//! # Driving a session
//!
//! The caller keeps sessions in a map by session id (WebSocket-transport
//! sessions are *not* in the map: each WebSocket gets a session of its
//! own, and the id may be reused), and for a receiving request:
//!
//! 1. writes [`response::transport`](crate::response::transport) (status,
//!    headers, prelude), or completes the WebSocket handshake;
//! 2. calls [`Session::attach`] and writes [`Attached::data`]; if
//!    [`Attached::flow`] is [`Flow::End`] it ends the response (or closes
//!    the WebSocket) — the session has already let go of it;
//! 3. otherwise waits until the session [`has_output`](Session::has_output)
//!    (checked after every input: [`send`](Session::send),
//!    [`close`](Session::close), [`handle_timeout`](Session::handle_timeout)),
//!    calls [`Session::poll_output`], writes, and repeats until
//!    [`Flow::End`];
//! 4. if the client goes away first (the HTTP connection drops, the
//!    WebSocket closes), calls [`Session::abort`].
//!
//! Inbound messages (`xhr_send`, `jsonp_send`, WebSocket text) go in via
//! [`Session::handle_messages`] / [`Session::handle_ws_message`]; the
//! application drains [`Session::poll_event`]. A timer sleeps until
//! [`Session::poll_timeout`] and calls [`Session::handle_timeout`]. Once
//! [`Session::is_closed`], drop the session from the map.
//!
//! # States
//!
//! ```text
//!  new ──attach: `o`, Event::Open──▶ Open ──close(code, reason)──▶ Closing
//!   │                                 │                              │ every attach gets
//!   │ disconnect_delay                │ no receiver for              │ `c[code,"reason"]`;
//!   │ without a receiver              │ disconnect_delay, or         │ disconnect_delay
//!   ▼                                 ▼ abort, or broken WS framing  ▼ without a receiver
//! Closed ◀────────────────────────────────────────────────────────── (Event::Closed)
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::config::SockJsConfig;
use crate::error::BrokenFraming;
use crate::frame::{CloseFrame, EncodedMessage, Frame};
use crate::inbound::parse_ws_message;
use crate::receiver::ReceiverKind;

/// Identifies one [`Session::attach`] call (one response or WebSocket).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReceiverId(u64);

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// Created, no receiver has come yet (no `o` sent).
    New,
    /// `o` sent; messages flow.
    Open,
    /// [`Session::close`] was called: receivers get the close frame.
    Closing,
    /// Gone: drop the session.
    Closed,
}

/// Why a session closed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// No receiver for `disconnect_delay`, or the receiver's connection
    /// dropped (sockjs-node: the client is gone).
    ClientGone,
    /// The application called [`Session::close`]; the frame it sent.
    Application(CloseFrame),
    /// The WebSocket sent something that is not SockJS framing.
    BrokenFraming,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::ClientGone => f.write_str("client gone"),
            CloseReason::Application(c) => write!(f, "closed: {} {}", c.code, c.reason),
            CloseReason::BrokenFraming => f.write_str("broken framing"),
        }
    }
}

/// What happened, for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The first receiver came and got `o`: the connection is open.
    Open,
    /// A message from the client.
    Message(String),
    /// The session is gone. Always the last event.
    Closed(CloseReason),
}

/// Whether a receiver stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flow {
    /// Keep the response (or WebSocket) open and wait for
    /// [`Session::has_output`].
    Continue,
    /// Write what was produced, then end the response (close the
    /// WebSocket, normal closure). The session no longer holds this
    /// receiver.
    End,
}

/// The answer to [`Session::attach`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    /// This receiver, for [`Session::poll_output`] and [`Session::abort`].
    pub id: ReceiverId,
    /// Bytes to write now, framed for the transport: for HTTP receivers at
    /// most one chunk; for a WebSocket one text message per element.
    pub data: Vec<Bytes>,
    /// Whether the receiver stays.
    pub flow: Flow,
}

/// A refused [`Session::send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SendError {
    /// The session is not open (not yet, or closing/closed): the message is
    /// dropped, as sockjs-node's `send` returns false.
    NotOpen,
    /// [`SockJsConfig::http_message_cache_size`] messages are already
    /// waiting for a receiver: the client is not keeping up. The message
    /// is not queued; apply the slow-consumer policy (drop, or
    /// [`Session::close`]).
    QueueFull {
        /// The configured limit.
        limit: usize,
    },
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::NotOpen => f.write_str("session not open"),
            SendError::QueueFull { limit } => write!(f, "{limit} messages already queued"),
        }
    }
}

impl std::error::Error for SendError {}

#[derive(Debug)]
struct Receiver {
    id: ReceiverId,
    kind: ReceiverKind,
    /// Framed bytes written to this receiver (streaming limit).
    bytes: usize,
}

/// One SockJS session. See the [module docs](self) for how to drive it.
///
/// ```
/// use std::time::{Duration, Instant};
/// use switchboard_sockjs::{EncodedMessage, Event, Flow, ReceiverKind, Session, SockJsConfig};
///
/// let t0 = Instant::now();
/// let mut session = Session::new(t0, &SockJsConfig::default());
///
/// // POST /000/abc/xhr_streaming (after the 2 KiB prelude)
/// let a = session.attach(t0, ReceiverKind::XhrStreaming);
/// assert_eq!(a.data, vec![bytes::Bytes::from_static(b"o\n")]);
/// assert_eq!(a.flow, Flow::Continue);
/// assert_eq!(session.poll_event(), Some(Event::Open));
///
/// // The hub broadcasts one pre-encoded message.
/// session.send(EncodedMessage::new("hello")).unwrap();
/// assert!(session.has_output());
/// let mut out = Vec::new();
/// assert_eq!(session.poll_output(t0, a.id, &mut out), Flow::Continue);
/// assert_eq!(out, vec![bytes::Bytes::from_static(b"a[\"hello\"]\n")]);
///
/// // 25 s of silence: a heartbeat.
/// assert_eq!(session.poll_timeout(), Some(t0 + Duration::from_secs(25)));
/// session.handle_timeout(t0 + Duration::from_secs(25));
/// out.clear();
/// session.poll_output(t0 + Duration::from_secs(25), a.id, &mut out);
/// assert_eq!(out, vec![bytes::Bytes::from_static(b"h\n")]);
/// ```
#[derive(Debug)]
pub struct Session {
    state: SessionState,
    heartbeat_time: Duration,
    disconnect_delay: Duration,
    stream_bytes_limit: usize,
    queue_limit: usize,
    queue: VecDeque<EncodedMessage>,
    receiver: Option<Receiver>,
    close_frame: Option<CloseFrame>,
    next_id: u64,
    heartbeat_at: Option<Instant>,
    heartbeat_due: bool,
    disconnect_at: Option<Instant>,
    events: VecDeque<Event>,
}

impl Session {
    /// A new session, created when a receiving request names an unknown
    /// session id (or for each WebSocket). Closes as gone if no receiver
    /// attaches within `disconnect_delay`.
    pub fn new(now: Instant, config: &SockJsConfig) -> Self {
        Session {
            state: SessionState::New,
            heartbeat_time: config.heartbeat_time,
            disconnect_delay: config.disconnect_delay,
            stream_bytes_limit: config.stream_bytes_limit,
            queue_limit: config.http_message_cache_size,
            queue: VecDeque::new(),
            receiver: None,
            close_frame: None,
            next_id: 0,
            heartbeat_at: None,
            heartbeat_due: false,
            disconnect_at: Some(now + config.disconnect_delay),
            events: VecDeque::new(),
        }
    }

    /// The state.
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// Whether the session is gone and should be dropped.
    pub fn is_closed(&self) -> bool {
        self.state == SessionState::Closed
    }

    /// Messages waiting for a receiver.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Whether `id` is the attached receiver.
    pub fn is_attached(&self, id: ReceiverId) -> bool {
        self.receiver.as_ref().is_some_and(|r| r.id == id)
    }

    /// A receiver arrives (after its response head and prelude are
    /// written). The first one gets `o`; a second one while one is
    /// attached gets `c[2010,"Another connection still open"]` and ends; on
    /// a closing session it gets what is queued and the close frame, and
    /// ends; on a closed one `c[code,"reason"]` (or
    /// `c[1002,"Connection interrupted"]` if the client had gone) and ends.
    /// A polling receiver ends after one frame; a streaming one after
    /// `stream_bytes_limit` bytes.
    pub fn attach(&mut self, now: Instant, kind: ReceiverKind) -> Attached {
        let id = ReceiverId(self.next_id);
        self.next_id += 1;
        let mut data = Vec::new();
        if self.state == SessionState::Closed || self.receiver.is_some() {
            let frame = match (&self.close_frame, self.state) {
                (_, s) if s != SessionState::Closed => CloseFrame::ANOTHER_CONNECTION_STILL_OPEN,
                (Some(close), _) => close.clone(),
                (None, _) => CloseFrame::CONNECTION_INTERRUPTED,
            };
            let mut buf = Vec::new();
            kind.write_frame(&Frame::Close(&frame), &mut buf);
            data.push(Bytes::from(buf));
            return Attached {
                id,
                data,
                flow: Flow::End,
            };
        }
        self.disconnect_at = None;
        self.heartbeat_due = false;
        let mut receiver = Receiver { id, kind, bytes: 0 };
        let mut buf = Vec::new();
        let mut end = false;
        if self.state == SessionState::New {
            self.state = SessionState::Open;
            self.events.push_back(Event::Open);
            end = self.emit(&mut receiver, &Frame::Open, &mut buf, &mut data);
        }
        self.receiver = Some(receiver);
        let flow = if end {
            self.finish(&mut buf, &mut data);
            self.detach_receiver(now);
            Flow::End
        } else {
            self.flush(now, &mut buf, &mut data)
        };
        if flow == Flow::Continue {
            self.heartbeat_at = Some(now + self.heartbeat_time);
        }
        Attached { id, data, flow }
    }

    /// Whether the attached receiver has something to take: queued
    /// messages, a due heartbeat, or the close frame.
    pub fn has_output(&self) -> bool {
        self.receiver.is_some()
            && (!self.queue.is_empty() || self.heartbeat_due || self.state == SessionState::Closing)
    }

    /// Writes what the receiver `id` should get now into `out` (for HTTP
    /// receivers at most one chunk; for a WebSocket one text message per
    /// frame): all queued messages as one `a[...]`, a due heartbeat if
    /// nothing else went, the close frame if closing. [`Flow::End`] when
    /// the receiver is done (polling answered, stream limit reached, close
    /// frame sent) or `id` is no longer attached.
    pub fn poll_output(&mut self, now: Instant, id: ReceiverId, out: &mut Vec<Bytes>) -> Flow {
        if !self.is_attached(id) {
            return Flow::End;
        }
        let mut buf = Vec::new();
        self.flush(now, &mut buf, out)
    }

    /// The receiver `id` went away without the session ending it
    /// gracefully — e.g. the server is shutting down: the session waits
    /// `disconnect_delay` for another (a WebSocket session closes at once).
    pub fn detach(&mut self, now: Instant, id: ReceiverId) {
        if self.is_attached(id) {
            self.detach_receiver(now);
        }
    }

    /// The client dropped the receiver `id` (connection closed mid-response,
    /// WebSocket closed): as in sockjs-node, the session closes at once
    /// ([`CloseReason::ClientGone`], or the application's reason when
    /// closing).
    pub fn abort(&mut self, _now: Instant, id: ReceiverId) {
        if self.is_attached(id) {
            self.receiver = None;
            let reason = self.ending_reason();
            self.close_now(reason);
        }
    }

    /// Queues a pre-encoded message for the client. Check
    /// [`Session::has_output`] afterwards and wake the receiver.
    pub fn send(&mut self, message: EncodedMessage) -> Result<(), SendError> {
        if self.state != SessionState::Open {
            return Err(SendError::NotOpen);
        }
        if self.queue.len() >= self.queue_limit {
            return Err(SendError::QueueFull {
                limit: self.queue_limit,
            });
        }
        self.queue.push_back(message);
        Ok(())
    }

    /// [`Session::send`] for a message not shared with other sessions.
    pub fn send_text(&mut self, text: &str) -> Result<(), SendError> {
        self.send(EncodedMessage::new(text))
    }

    /// Messages from the client (a parsed `xhr_send` / `jsonp_send` body):
    /// [`Event::Message`]s while open, dropped otherwise.
    pub fn handle_messages(&mut self, messages: impl IntoIterator<Item = String>) {
        if self.state == SessionState::Open {
            self.events.extend(messages.into_iter().map(Event::Message));
        }
    }

    /// A text message on the WebSocket receiver `id`: its messages become
    /// events. On [`BrokenFraming`] the session closes at once
    /// ([`CloseReason::BrokenFraming`]); close the WebSocket with
    /// [`BrokenFraming::CLOSE_CODE`] and [`BrokenFraming::CLOSE_REASON`].
    pub fn handle_ws_message(
        &mut self,
        _now: Instant,
        id: ReceiverId,
        text: &str,
    ) -> Result<(), BrokenFraming> {
        match parse_ws_message(text) {
            Ok(messages) => {
                if self.is_attached(id) {
                    self.handle_messages(messages);
                }
                Ok(())
            }
            Err(e) => {
                if self.is_attached(id) {
                    self.receiver = None;
                    self.close_now(CloseReason::BrokenFraming);
                }
                Err(e)
            }
        }
    }

    /// The application closes the session with `code` and `reason`
    /// (sockjs-node's default is `1000 "Normal closure"`, the protocol
    /// test's `close` service uses `3000 "Go away!"`). Queued messages are
    /// still delivered before the close frame. Only an open session can be
    /// closed; returns whether this call closed it.
    pub fn close(&mut self, code: u16, reason: impl Into<std::borrow::Cow<'static, str>>) -> bool {
        if self.state != SessionState::Open {
            return false;
        }
        self.state = SessionState::Closing;
        self.close_frame = Some(CloseFrame::new(code, reason));
        true
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] should next be called: the
    /// heartbeat of the attached receiver, or the disconnect deadline when
    /// none is attached.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == SessionState::Closed {
            return None;
        }
        if self.receiver.is_some() {
            self.heartbeat_at
        } else {
            self.disconnect_at
        }
    }

    /// Gives back the event queue's buffer when it is empty (the message
    /// queue is handed out whole and keeps none). For idle moments, not per
    /// message (the queue then regrows from nothing): the transports call
    /// it after a timer fired, i.e. once per heartbeat of an idle session,
    /// which otherwise keeps the room its first events needed.
    pub fn release_idle_buffers(&mut self) {
        if self.events.is_empty() && self.events.capacity() > 0 {
            self.events = VecDeque::new();
        }
    }

    /// Advances the timers: a due heartbeat becomes output (check
    /// [`Session::has_output`]); a passed disconnect deadline closes the
    /// session ([`Event::Closed`]).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.receiver.is_none() {
            if self.disconnect_at.is_some_and(|t| t <= now) {
                let reason = self.ending_reason();
                self.close_now(reason);
            }
        } else if self.heartbeat_at.is_some_and(|t| t <= now) {
            self.heartbeat_at = None;
            self.heartbeat_due = true;
        }
    }

    /// The reason the session ends with if it ends now.
    fn ending_reason(&self) -> CloseReason {
        match &self.close_frame {
            Some(frame) => CloseReason::Application(frame.clone()),
            None => CloseReason::ClientGone,
        }
    }

    fn close_now(&mut self, reason: CloseReason) {
        if self.state == SessionState::Closed {
            return;
        }
        self.state = SessionState::Closed;
        self.receiver = None;
        self.queue.clear();
        self.heartbeat_at = None;
        self.heartbeat_due = false;
        self.disconnect_at = None;
        self.events.push_back(Event::Closed(reason));
    }

    /// The attached receiver is done: wait `disconnect_delay` for the next
    /// (a WebSocket session ends with its WebSocket).
    fn detach_receiver(&mut self, now: Instant) {
        let Some(receiver) = self.receiver.take() else {
            return;
        };
        self.heartbeat_at = None;
        self.heartbeat_due = false;
        if receiver.kind == ReceiverKind::WebSocket {
            let reason = self.ending_reason();
            self.close_now(reason);
        } else {
            self.disconnect_at = Some(now + self.disconnect_delay);
        }
    }

    /// Writes `frame` for `receiver`; true when the receiver must end.
    fn emit(
        &self,
        receiver: &mut Receiver,
        frame: &Frame<'_>,
        buf: &mut Vec<u8>,
        out: &mut Vec<Bytes>,
    ) -> bool {
        if receiver.kind == ReceiverKind::WebSocket {
            let mut message = Vec::with_capacity(frame.encoded_len());
            receiver.kind.write_frame(frame, &mut message);
            out.push(Bytes::from(message));
            return false;
        }
        let before = buf.len();
        receiver.kind.write_frame(frame, buf);
        receiver.bytes += buf.len() - before;
        receiver.kind.is_polling()
            || (receiver.kind.is_streaming() && receiver.bytes >= self.stream_bytes_limit)
    }

    fn finish(&self, buf: &mut Vec<u8>, out: &mut Vec<Bytes>) {
        if !buf.is_empty() {
            out.push(Bytes::from(std::mem::take(buf)));
        }
    }

    /// Writes queued messages, a due heartbeat, the close frame, in that
    /// order, to the attached receiver; detaches it when it must end.
    fn flush(&mut self, now: Instant, buf: &mut Vec<u8>, out: &mut Vec<Bytes>) -> Flow {
        let Some(mut receiver) = self.receiver.take() else {
            return Flow::End;
        };
        let mut wrote = false;
        let mut end = false;
        if !self.queue.is_empty() {
            let messages = std::mem::take(&mut self.queue);
            let messages = Vec::from(messages);
            end = self.emit(&mut receiver, &Frame::Messages(&messages), buf, out);
            wrote = true;
        }
        if self.heartbeat_due {
            self.heartbeat_due = false;
            if !wrote && !end {
                end = self.emit(&mut receiver, &Frame::Heartbeat, buf, out);
                wrote = true;
            }
        }
        if !end && self.state == SessionState::Closing {
            let frame = self
                .close_frame
                .clone()
                .expect("closing sessions have a close frame");
            self.emit(&mut receiver, &Frame::Close(&frame), buf, out);
            wrote = true;
            end = true;
        }
        self.receiver = Some(receiver);
        self.finish(buf, out);
        if end {
            self.detach_receiver(now);
            if self.state == SessionState::Closing {
                // sockjs-node restarts the disconnect timer when a closing
                // session hands out its close frame.
                self.disconnect_at = Some(now + self.disconnect_delay);
            }
            Flow::End
        } else {
            if wrote {
                self.heartbeat_at = Some(now + self.heartbeat_time);
            }
            Flow::Continue
        }
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
