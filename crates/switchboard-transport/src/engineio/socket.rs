//! [`EngineSocket`]: the shared per-session state (core session under a
//! lock, parked GET, WebSocket outboxes, undelivered events) and the
//! application's handle to it.

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use atomic_waker::AtomicWaker;
use bytes::Bytes;
use parking_lot::Mutex;
use switchboard_engineio::{
    Deadline, PreparedText, ReadyState, Session, Transmit, WsId, WsMessage,
};
use tokio::sync::oneshot;

use super::{Message, TransportKind};

/// The clock the sessions run on (tokio's, so paused-time tests work).
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// [`EngineSocket::send`] on a session that is closing or closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketClosed;

impl fmt::Display for SocketClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("engine.io session closed")
    }
}

impl std::error::Error for SocketClosed {}

/// Cheap-to-clone handle to one Engine.IO session; usable from any
/// task/thread. Equality is identity (same session).
#[derive(Clone)]
pub struct EngineSocket {
    pub(crate) inner: Arc<SocketInner>,
}

pub(crate) struct SocketInner {
    /// The core session's copy, shared.
    pub(crate) sid: Arc<str>,
    pub(crate) state: Mutex<State>,
    /// Set once the core session is closed (fast path of `send`).
    closed: AtomicBool,
    /// Wakes the task that runs the session: timers changed, events to
    /// deliver, work attached, closed.
    pub(crate) task: TaskWaker,
    /// The slow-consumer limit ([`EngineIoConfig::max_buffered_bytes`](super::EngineIoConfig::max_buffered_bytes)),
    /// at most 4 GiB (packed beside `closed`).
    max_buffered: u32,
}

/// Work the application runs on a session's own task
/// ([`EngineSocket::attach`]): polled whenever that task wakes, until it
/// returns `Ready` or the session ends.
pub type SessionWork = Box<dyn FnMut(&mut Context<'_>) -> Poll<()> + Send>;

/// The session as a waker: what the task running it polls on its behalf
/// (attached work, the core's timer) wakes it through the session's
/// wake-up flag, so that task runs a session turn only when the flag was
/// set — not on every poll (a WebSocket connection's task is polled for
/// every read).
impl std::task::Wake for SocketInner {
    fn wake(self: Arc<Self>) {
        self.task.notify_one();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.task.notify_one();
    }
}

/// Two pieces of work as one: each polled until it is `Ready`; `Ready`
/// when both are.
fn both(a: SessionWork, b: SessionWork) -> SessionWork {
    let (mut a, mut b) = (Some(a), Some(b));
    Box::new(move |cx| {
        for slot in [&mut a, &mut b] {
            if slot.as_mut().is_some_and(|w| w(cx).is_ready()) {
                *slot = None;
            }
        }
        if a.is_none() && b.is_none() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
}

/// The wake-up of the one task that runs a session (its session task, or
/// the WebSocket connection's task of a session born on a WebSocket): a
/// flag, so that a wake-up sent while that task runs is not lost, and the
/// waker it registered last.
#[derive(Default)]
pub(crate) struct TaskWaker {
    woken: AtomicBool,
    waker: AtomicWaker,
}

impl TaskWaker {
    /// Wakes the task (or has its next poll find the flag).
    pub(crate) fn notify_one(&self) {
        self.woken.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Registers the task's waker; `Ready` (and the flag cleared) when a
    /// wake-up was sent since the last `Ready`.
    pub(crate) fn poll_notified(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.waker.register(cx.waker());
        if self.woken.swap(false, Ordering::AcqRel) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// The parked polling GET.
pub(crate) struct ParkedPoll {
    pub(crate) id: u64,
    pub(crate) tx: oneshot::Sender<Bytes>,
}

/// What only polling GETs use (boxed, allocated at the first one: a
/// session born on a WebSocket holds none).
#[derive(Default)]
pub(crate) struct Polling {
    pub(crate) parked: Option<ParkedPoll>,
    pub(crate) next_id: u64,
}

pub(crate) struct State {
    /// The core; its events wait in it until delivered.
    pub(crate) session: Session,
    /// Someone is delivering events (outside the lock).
    pub(crate) delivering: bool,
    pub(crate) polling: Option<Box<Polling>>,
    /// The outbox of this session's WebSocket connection (`ws_id`): the
    /// core has one at a time (it refuses another while one is open or
    /// upgrading). Two fields, not an `Option` of a pair: the id packs
    /// beside the flags.
    pub(crate) ws: Option<Arc<WsOutbox>>,
    ws_id: WsId,
    /// The deadline the session task sleeps until ([`Deadline`]).
    armed: Deadline,
    /// The handler's state for this session ([`EngineHandler::Session`](super::EngineHandler::Session)),
    /// from its `on_open` until its `on_close`.
    pub(crate) handler: Option<Arc<dyn Any + Send + Sync>>,
    /// Work attached by the application ([`EngineSocket::attach`]).
    /// One piece, or several combined into one ([`both`]): most sessions
    /// have one, and then no list is allocated.
    pub(crate) work: Option<SessionWork>,
    /// The session, born on polling, upgraded: its WebSocket connection's
    /// task runs it from now on and its session task ends.
    pub(crate) handed_off: bool,
    /// The core's timer, for a session run by its WebSocket connection's
    /// task (allocated at its first use; a session task has its own).
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl State {
    /// Routes the core's output after an input: transmits to the parked GET
    /// and the WebSocket outboxes (in order), events to the queue; wakes
    /// the session task when its deadline moved earlier or the session
    /// closed. Returns whether events wait for delivery.
    pub(crate) fn flush(&mut self, inner: &SocketInner) -> bool {
        while let Some(t) = self.session.poll_transmit() {
            match t {
                Transmit::PollResponse(body) => match self.parked_poll() {
                    Some(p) => {
                        let _ = p.tx.send(body);
                    }
                    None => tracing::debug!(sid = %inner.sid, "poll response without a parked GET"),
                },
                Transmit::Ws { ws, message } => {
                    if let Some(out) = self.ws.as_ref().filter(|_| self.ws_id == ws) {
                        out.push(message);
                    }
                }
                Transmit::WsClose(ws) => {
                    if let Some(out) = self.ws.take_if(|_| self.ws_id == ws) {
                        out.close();
                    }
                }
            }
        }
        // Drained (the events are taken whole by the delivery): the core's
        // queues give their room back, so an idle session keeps none from
        // its last exchange (the Socket.IO CONNECT, or the last message) —
        // an allocation per exchange instead of ~350 bytes on every idle
        // connection.
        self.session.release_idle_buffers();
        let timeout = self.session.poll_timeout();
        let mut wake = timeout.is_some_and(|t| self.armed.is_after(t));
        if self.session.is_closed() && !inner.closed.swap(true, Ordering::AcqRel) {
            // A GET still parked (the core answers it with `1` on every
            // close path, so this is a safety net) completes with `1`.
            if let Some(p) = self.polling.as_mut() {
                p.parked = None;
            }
            if let Some(out) = self.ws.take() {
                out.close();
            }
            wake = true;
        }
        if wake {
            inner.task.notify_one();
        }
        self.session.has_events()
    }

    /// Records the outbox of WebSocket connection `ws`, which the core has
    /// just accepted. The core accepts one only when it has no other (one
    /// left over would be closed: its connection ends).
    pub(crate) fn attach_ws(&mut self, ws: WsId, outbox: &Arc<WsOutbox>) {
        self.ws_id = ws;
        if let Some(old) = self.ws.replace(outbox.clone()) {
            old.close();
        }
    }

    /// Records the deadline the session task now sleeps until.
    pub(crate) fn arm(&mut self, deadline: Option<Instant>) {
        self.armed = Deadline::new(deadline);
    }

    /// Takes the parked GET, if any.
    fn parked_poll(&mut self) -> Option<ParkedPoll> {
        self.polling.as_mut()?.parked.take()
    }
}

impl EngineSocket {
    /// `session`'s handle; `sid` is its id (the core does not keep it).
    pub(crate) fn new(session: Session, sid: Arc<str>, max_buffered: usize) -> Self {
        EngineSocket {
            inner: Arc::new(SocketInner {
                sid,
                state: Mutex::new(State {
                    session,
                    // on_open goes first: nothing is delivered before it.
                    delivering: true,
                    polling: None,
                    ws: None,
                    ws_id: WsId::default(),
                    armed: Deadline::NONE,
                    handler: None,
                    work: None,
                    handed_off: false,
                    timer: None,
                }),
                closed: AtomicBool::new(false),
                task: TaskWaker::default(),
                max_buffered: u32::try_from(max_buffered).unwrap_or(u32::MAX),
            }),
        }
    }

    /// The session id.
    pub fn sid(&self) -> &str {
        &self.inner.sid
    }

    /// The session id, shared: a table keyed by it holds no copy.
    pub fn sid_shared(&self) -> &Arc<str> {
        &self.inner.sid
    }

    /// Queues a message; `Err` if the session is closing or closed. Never
    /// blocks. Over polling it answers a parked GET at once, otherwise it
    /// waits for the next GET; over WebSocket it is written by the
    /// connection's task.
    pub fn send(&self, message: Message) -> Result<(), SocketClosed> {
        self.send_many(std::iter::once(message))
    }

    /// Queues several messages atomically: no other send interleaves with
    /// them (e.g. a Socket.IO binary packet and its attachments).
    pub fn send_many(
        &self,
        messages: impl IntoIterator<Item = Message>,
    ) -> Result<(), SocketClosed> {
        self.enqueue(|session| {
            for m in messages {
                session.send_message(m);
            }
        })
    }

    /// Queues a text message encoded once for many sessions (a broadcast):
    /// over WebSocket no byte of it is copied per session.
    pub fn send_prepared(&self, message: PreparedText) -> Result<(), SocketClosed> {
        self.enqueue(|session| session.send_prepared(message))
    }

    fn enqueue(&self, queue: impl FnOnce(&mut Session)) -> Result<(), SocketClosed> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(SocketClosed);
        }
        let mut st = self.inner.state.lock();
        if st.session.ready_state() != ReadyState::Open {
            return Err(SocketClosed);
        }
        queue(&mut st.session);
        // Slow consumer: what waits for this client (in the core for the
        // next poll, in the WebSocket outboxes) is bounded; past the
        // limit the session is closed (`forced close`), as a hub mailbox
        // overflow closes a WebSocket.
        let queued =
            st.session.buffered_bytes() + st.ws.as_ref().map_or(0, |out| out.queued_bytes());
        let overflow = queued > self.inner.max_buffered as usize;
        if overflow {
            tracing::debug!(sid = %self.inner.sid, queued, "slow consumer: closing the session");
            st.session.close(now());
        }
        if st.flush(&self.inner) && !st.delivering {
            self.inner.task.notify_one();
        }
        if overflow {
            return Err(SocketClosed);
        }
        Ok(())
    }

    /// Closes the session (reason `forced close`). Over WebSocket the
    /// connection closes now; over polling a parked GET gets `1`, or the
    /// next GET gets the queued packets then `6␞1`. `on_close` follows,
    /// from the session task (never from inside this call).
    pub fn close(&self) {
        let mut st = self.inner.state.lock();
        st.session.close(now());
        if st.flush(&self.inner) {
            self.inner.task.notify_one();
        }
    }

    /// Runs `work` on the session's own task: it is polled whenever that
    /// task wakes (the wakers it registers wake that task) until it
    /// returns `Ready` or the session ends, when it is dropped. A feed the
    /// application keeps per session (a subscription's queue) costs no
    /// task of its own. `work` must not block; it may call every method of
    /// this handle. On a closed session it is dropped at once.
    pub fn attach(&self, work: SessionWork) {
        {
            let mut st = self.inner.state.lock();
            if !self.inner.closed.load(Ordering::Acquire) {
                st.work = Some(match st.work.take() {
                    Some(first) => both(first, work),
                    None => work,
                });
                drop(st);
                // Its first poll (registering its wakers) on the task.
                self.inner.task.notify_one();
                return;
            }
        }
        drop(work);
    }

    /// The session as a waker (see `impl Wake for SocketInner`).
    fn waker(&self) -> Waker {
        Waker::from(self.inner.clone())
    }

    /// Polls the attached work (outside the lock: it may send) and keeps
    /// what is still pending. Its wakers set the session's wake-up flag
    /// (and wake the task running the session), which polls it again.
    pub(crate) fn poll_work(&self) {
        let Some(mut work) = self.inner.state.lock().work.take() else {
            return;
        };
        let waker = self.waker();
        if work(&mut Context::from_waker(&waker)).is_ready() {
            return;
        }
        let mut st = self.inner.state.lock();
        // Attached meanwhile: polled on the wake-up `attach` sent.
        st.work = Some(match st.work.take() {
            Some(attached) => both(work, attached),
            None => work,
        });
    }

    /// Arms the session's timer for `deadline` (for a session run by its
    /// WebSocket connection's task): when it fires it sets the session's
    /// wake-up flag. `Ready` when the deadline has passed already.
    pub(crate) fn poll_timer(&self, deadline: Instant) -> Poll<()> {
        let deadline = tokio::time::Instant::from_std(deadline);
        let waker = self.waker();
        let mut cx = Context::from_waker(&waker);
        let mut st = self.inner.state.lock();
        let timer = match &mut st.timer {
            Some(t) => {
                if t.deadline() != deadline {
                    t.as_mut().reset(deadline);
                }
                t
            }
            None => st
                .timer
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        timer.as_mut().poll(&mut cx)
    }

    /// Whether the session has a timer of its own (allocated at its first
    /// near deadline).
    #[cfg(test)]
    pub(crate) fn has_timer(&self) -> bool {
        self.inner.state.lock().timer.is_some()
    }

    /// What the task running the session held for it: the attached work
    /// and the timer, dropped when the session ends (the work may hold
    /// handles to this session, and its wakers do: a cycle, broken here).
    pub(crate) fn drop_task_state(&self) {
        let (work, timer) = {
            let mut st = self.inner.state.lock();
            (std::mem::take(&mut st.work), st.timer.take())
        };
        drop((work, timer));
    }

    /// Whether the session is closed (`on_close` was or is about to be
    /// called). A closing session (after [`close`](Self::close), while the
    /// polling transport delivers its last packets) is not closed yet, but
    /// [`send`](Self::send) already fails.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// The current transport (polling until an upgrade completes).
    pub fn transport(&self) -> TransportKind {
        self.inner.state.lock().session.transport()
    }

    /// Whether both handles are the same session.
    pub fn ptr_eq(&self, other: &EngineSocket) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl PartialEq for EngineSocket {
    fn eq(&self, other: &Self) -> bool {
        self.ptr_eq(other)
    }
}

impl Eq for EngineSocket {}

impl fmt::Debug for EngineSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineSocket")
            .field("sid", &self.inner.sid)
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// What the session has for one WebSocket connection's task.
pub(crate) struct WsOutbox {
    q: Mutex<OutboxQueue>,
}

#[derive(Default)]
pub(crate) struct OutboxQueue {
    pub(crate) messages: VecDeque<WsMessage>,
    /// Payload bytes in `messages`, saturating at 4 GiB (a `u32`: every
    /// WebSocket connection holds an outbox, which fits an 80-byte block
    /// so).
    bytes: u32,
    pub(crate) close: bool,
    waker: Option<Waker>,
}

impl WsOutbox {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(WsOutbox {
            q: Mutex::new(OutboxQueue::default()),
        })
    }

    fn push(&self, message: WsMessage) {
        let waker = {
            let mut q = self.q.lock();
            if q.close {
                return;
            }
            let len = match &message {
                WsMessage::Text(t) => t.len(),
                WsMessage::Binary(b) => b.len(),
            };
            q.bytes = q
                .bytes
                .saturating_add(u32::try_from(len).unwrap_or(u32::MAX));
            q.messages.push_back(message);
            q.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    pub(crate) fn close(&self) {
        let waker = {
            let mut q = self.q.lock();
            q.close = true;
            q.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Wakes the connection's task (without a message: it runs the
    /// session from now on).
    pub(crate) fn wake(&self) {
        let waker = self.q.lock().waker.take();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Payload bytes waiting for the connection's task.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.q.lock().bytes as usize
    }

    /// Moves the queued messages to `into` (unless `!take`: the socket is
    /// not keeping up, they stay here and count against the session's
    /// limit), stores `waker` for the next push, and tells whether the
    /// connection must close after them.
    pub(crate) fn drain(&self, into: &mut VecDeque<WsMessage>, waker: &Waker, take: bool) -> bool {
        let mut q = self.q.lock();
        if take {
            if into.is_empty() {
                std::mem::swap(into, &mut q.messages);
            } else {
                into.append(&mut q.messages);
            }
            q.bytes = 0;
        }
        match &q.waker {
            Some(w) if w.will_wake(waker) => {}
            _ => q.waker = Some(waker.clone()),
        }
        q.close
    }
}
