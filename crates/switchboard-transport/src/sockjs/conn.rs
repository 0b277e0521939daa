//! [`SockJsConn`]: the shared per-session state (core session under a
//! lock, the attached receiver's waker, undelivered events) and the
//! application's handle to it.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Waker;
use std::time::Instant;

use parking_lot::Mutex;
use switchboard_sockjs::{EncodedMessage, Event, ReceiverId, SendError, Session, SessionState};
use tokio::sync::Notify;

use super::SLOW_CONSUMER;

/// The clock the sessions run on (tokio's, so paused-time tests work).
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// [`SockJsConn::send`] on a session that is not open (closing or closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sockjs session not open")
    }
}

impl std::error::Error for Closed {}

/// Cheap-to-clone handle to one SockJS session; usable from any
/// task/thread. Equality is identity (same session).
#[derive(Clone)]
pub struct SockJsConn {
    pub(crate) inner: Arc<ConnInner>,
}

pub(crate) struct ConnInner {
    id: Box<str>,
    serial: u64,
    pub(crate) state: Mutex<State>,
    /// Set once the core session is no longer open (fast path of `send`).
    closed: AtomicBool,
    /// Wakes the session task: timers moved earlier, events to deliver,
    /// closed, shutdown handled.
    pub(crate) task: Notify,
}

pub(crate) struct State {
    pub(crate) session: Session,
    /// Events taken from the core, not yet handed to the handler.
    pub(crate) events: VecDeque<Event>,
    /// Someone is delivering events (outside the lock).
    pub(crate) delivering: bool,
    /// The receiver that stays attached (a streaming or parked polling
    /// response, or the WebSocket) and its waker once it waits for output.
    pub(crate) receiver: Option<(ReceiverId, Option<Waker>)>,
    /// The deadline the session task sleeps until.
    pub(crate) armed: Option<Instant>,
}

impl State {
    /// Whether a receiver is attached (the core has not let go of it).
    pub(crate) fn has_receiver(&self) -> bool {
        self.receiver
            .as_ref()
            .is_some_and(|(id, _)| self.session.is_attached(*id))
    }

    /// Registers `waker` for the attached receiver `id`.
    pub(crate) fn park(&mut self, id: ReceiverId, waker: &Waker) {
        if let Some((rid, w)) = &mut self.receiver {
            if *rid == id {
                match w {
                    Some(w) if w.will_wake(waker) => {}
                    _ => *w = Some(waker.clone()),
                }
            }
        }
    }

    /// Routes the core's state after an input: events to the queue, the
    /// receiver woken when it has output (or was let go), the session task
    /// woken when its deadline moved earlier or the session closed.
    /// Returns whether events wait for delivery.
    pub(crate) fn after_input(&mut self, inner: &ConnInner) -> bool {
        while let Some(e) = self.session.poll_event() {
            self.events.push_back(e);
        }
        if let Some((id, waker)) = &mut self.receiver {
            let attached = self.session.is_attached(*id);
            if attached && self.session.has_output() {
                if let Some(w) = waker.take() {
                    w.wake();
                }
            } else if !attached {
                if let Some((_, Some(w))) = self.receiver.take() {
                    w.wake();
                }
            }
        }
        if self.session.state() != SessionState::Open && self.session.state() != SessionState::New {
            inner.closed.store(true, Ordering::Release);
        }
        let timeout = self.session.poll_timeout();
        let wake = self.session.is_closed()
            || match (timeout, self.armed) {
                (Some(t), Some(a)) => t < a,
                (Some(_), None) => true,
                (None, _) => false,
            };
        if wake {
            inner.task.notify_one();
        }
        !self.events.is_empty()
    }

    /// [`State::after_input`] for inputs whose events the session task
    /// delivers (nobody delivers inline).
    pub(crate) fn after_input_deferred(&mut self, inner: &ConnInner) {
        if self.after_input(inner) && !self.delivering {
            inner.task.notify_one();
        }
    }
}

static SERIAL: AtomicU64 = AtomicU64::new(1);

impl SockJsConn {
    pub(crate) fn new(id: &str, session: Session) -> Self {
        SockJsConn {
            inner: Arc::new(ConnInner {
                id: id.into(),
                serial: SERIAL.fetch_add(1, Ordering::Relaxed),
                state: Mutex::new(State {
                    session,
                    events: VecDeque::new(),
                    // on_open goes first: nothing is delivered before it.
                    delivering: true,
                    receiver: None,
                    armed: None,
                }),
                closed: AtomicBool::new(false),
                task: Notify::new(),
            }),
        }
    }

    /// The session id the client chose (the second path segment). Ids of
    /// `websocket`-transport sessions are not unique: each WebSocket is a
    /// session of its own.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// A number unique to this session in the process, e.g. to key the
    /// application's per-session state.
    pub fn serial(&self) -> u64 {
        self.inner.serial
    }

    /// Queues a message encoded once (e.g. shared by every recipient of a
    /// broadcast). `Err` if the session is not open. Never blocks. When
    /// the client does not keep up (`http_message_cache_size` messages
    /// waiting) the session is closed with [`SLOW_CONSUMER`] and this
    /// returns `Err`.
    pub fn send(&self, message: EncodedMessage) -> Result<(), Closed> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Closed);
        }
        let mut st = self.inner.state.lock();
        let result = match st.session.send(message) {
            Ok(()) => Ok(()),
            Err(SendError::NotOpen) => return Err(Closed),
            Err(SendError::QueueFull { limit }) => {
                tracing::debug!(session = %self.inner.id, limit, "closing slow sockjs consumer");
                st.session
                    .close(SLOW_CONSUMER.code, SLOW_CONSUMER.reason.clone());
                Err(Closed)
            }
        };
        st.after_input_deferred(&self.inner);
        result
    }

    /// [`SockJsConn::send`] for a text not shared with other sessions.
    pub fn send_text(&self, text: &str) -> Result<(), Closed> {
        self.send(EncodedMessage::new(text))
    }

    /// Closes the session with `code` and `reason` (`c[code,"reason"]`;
    /// applications use 3000–4999, `1000 "Normal closure"` is
    /// sockjs-node's default). Queued messages go out first. `on_close`
    /// follows once the client took the close frame (or after the
    /// disconnect delay), never from inside this call. Returns whether this
    /// call closed it.
    pub fn close(&self, code: u16, reason: impl Into<std::borrow::Cow<'static, str>>) -> bool {
        let mut st = self.inner.state.lock();
        let closed = st.session.close(code, reason);
        st.after_input_deferred(&self.inner);
        closed
    }

    /// Whether the session is closing or closed ([`send`](Self::send)
    /// fails).
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Whether both handles are the same session.
    pub fn ptr_eq(&self, other: &SockJsConn) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl PartialEq for SockJsConn {
    fn eq(&self, other: &Self) -> bool {
        self.ptr_eq(other)
    }
}

impl Eq for SockJsConn {}

impl fmt::Debug for SockJsConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SockJsConn")
            .field("id", &self.inner.id)
            .field("serial", &self.inner.serial)
            .field("closed", &self.is_closed())
            .finish()
    }
}
