//! Per-connection bounded outbound queue ([`Mailbox`]) and the items it holds
//! ([`Delivery`]). The hub pushes, the connection's writer task drains; pushes
//! never block and never grow the queue beyond its limits.
//!
//! # Slow-consumer policy
//!
//! The hub never drops anything silently for a healthy client: every
//! publication and presence event is queued in the mailbox of every
//! subscriber, in the same order for all of them. A mailbox has two limits,
//! a number of deliveries and a number of bytes ([`Delivery::byte_len`]).
//! When a push would exceed either limit the consumer is *slow*: the mailbox
//! is marked overflowed ([`Mailbox::is_overflowed`]), that delivery and every
//! later one are dropped and counted ([`Mailbox::dropped`]), and the consumer
//! is woken. The transport then closes the connection (WebSocket close 1013
//! "slow consumer", a Socket.IO disconnect, a STOMP `ERROR` frame, ...), since
//! its stream now has a gap. Publishers and other subscribers are never slowed
//! down or blocked by a slow consumer, and a slow consumer's memory is bounded
//! by its limits. A single delivery larger than the byte limit is accepted
//! only into an empty mailbox (so a big message alone is not "slow").
//!
//! # Memory
//!
//! An idle mailbox owns no heap allocation: the queue buffer is released
//! whenever the mailbox is drained empty (a sparse client pays one small
//! allocation per burst instead of holding a buffer forever).

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;
use parking_lot::Mutex;

use crate::presence::PresenceEvent;
use crate::publication::Publication;

/// Fixed per-delivery overhead added by [`Delivery::byte_len`] to the
/// variable-size data, approximating queue slot + framing costs.
pub const DELIVERY_OVERHEAD: usize = 64;

/// One item in a connection's mailbox.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// A publication on a subscribed topic.
    Message(Arc<Publication>),
    /// Another connection joined or left a subscribed topic.
    Presence(Arc<PresenceEvent>),
    /// The answer to a subscribe that had to wait for the topic's shared
    /// history ([`Subscribed::pending`](crate::Subscribed::pending)): what
    /// `subscribe` would have returned, now, followed in this mailbox by the
    /// topic's live messages. Only with a backplane that numbers
    /// publications across nodes.
    CatchUp(Arc<CatchUp>),
    /// The answer to a history request read elsewhere (the cluster's shared
    /// history, read by the server from Redis), queued by whoever read it
    /// to the asking connection's mailbox, which replies in its own way.
    History(Arc<HistoryReply>),
}

/// A deferred history answer: see [`Delivery::History`].
#[derive(Debug, Clone)]
pub struct HistoryReply {
    /// The asking connection's number for the request.
    pub request: u64,
    /// The topic.
    pub topic: Arc<str>,
    /// The publications, or why they could not be read.
    pub result: Result<crate::HistoryRange, String>,
}

/// A deferred subscribe result: see [`Delivery::CatchUp`].
#[derive(Debug, Clone)]
pub struct CatchUp {
    /// The topic subscribed to.
    pub topic: Arc<str>,
    /// The `since` the subscriber gave.
    pub since: u64,
    /// The subscribe result (`replay` from `since`, `recovered`, presence).
    pub subscribed: crate::Subscribed,
}

impl Delivery {
    /// Bytes this delivery is accounted as against
    /// [`HubConfig::mailbox_max_bytes`](crate::HubConfig::mailbox_max_bytes):
    /// payload + topic + sender name + [`DELIVERY_OVERHEAD`].
    pub fn byte_len(&self) -> usize {
        match self {
            Delivery::Message(p) => {
                DELIVERY_OVERHEAD
                    + p.payload.data.len()
                    + p.topic.len()
                    + p.from.as_ref().map_or(0, |f| f.len())
            }
            Delivery::Presence(e) => DELIVERY_OVERHEAD + e.topic.len() + e.name.len(),
            Delivery::CatchUp(c) => {
                DELIVERY_OVERHEAD
                    + c.topic.len()
                    + c.subscribed
                        .replay
                        .iter()
                        .map(|p| p.payload.data.len() + DELIVERY_OVERHEAD)
                        .sum::<usize>()
            }
            Delivery::History(h) => {
                DELIVERY_OVERHEAD
                    + h.topic.len()
                    + h.result.as_ref().map_or(0, |r| {
                        r.messages
                            .iter()
                            .map(|p| p.payload.data.len() + DELIVERY_OVERHEAD)
                            .sum::<usize>()
                    })
            }
        }
    }

    /// Topic the delivery concerns.
    pub fn topic(&self) -> &Arc<str> {
        match self {
            Delivery::Message(p) => &p.topic,
            Delivery::Presence(e) => &e.topic,
            Delivery::CatchUp(c) => &c.topic,
            Delivery::History(h) => &h.topic,
        }
    }
}

const OVERFLOWED: u8 = 1;
const CLOSED: u8 = 2;
const KICKED: u8 = 4;

/// Result of a push, for the hub's accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushOutcome {
    /// Queued.
    Queued,
    /// Dropped, and this push is the one that marked the mailbox overflowed.
    Overflowed,
    /// Dropped because the mailbox was already overflowed.
    Dropped,
    /// Dropped because the mailbox is closed (not a slow consumer).
    Closed,
}

/// The deliveries and their bytes, under the mailbox's lock. Consumers take
/// the whole queue ([`Mailbox::take_all`], [`Mailbox::drain`]), so a `Vec`
/// does (8 bytes less than a `VecDeque` in every mailbox;
/// [`Mailbox::drain_into`], which takes part, moves the rest down).
#[derive(Debug)]
struct Queue {
    items: Vec<Delivery>,
    /// Saturating (compared with `max_bytes`, a `u32`).
    bytes: u32,
    /// Beside `bytes`: both are read under the lock, and together they fill
    /// 8 bytes.
    max_bytes: u32,
}

/// Bounded, non-blocking, single-consumer outbound queue of one connection.
///
/// # Slow-consumer policy
///
/// The hub never drops anything silently for a healthy client: every
/// publication and presence event is queued in the mailbox of every
/// subscriber, in the same order for all of them. A mailbox has two limits,
/// a number of deliveries and a number of bytes ([`Delivery::byte_len`]).
/// When a push would exceed either limit the consumer is *slow*: the mailbox
/// is marked overflowed ([`Mailbox::is_overflowed`]), that delivery and every
/// later one are dropped and counted ([`Mailbox::dropped`]), and the consumer
/// is woken. The transport then closes the connection (WebSocket close 1013
/// "slow consumer", a Socket.IO disconnect, a STOMP `ERROR` frame, ...), since
/// its stream now has a gap. Publishers and other subscribers are never slowed
/// down or blocked by a slow consumer, and a slow consumer's memory is bounded
/// by its limits. A single delivery larger than the byte limit is accepted
/// only into an empty mailbox (so a big message alone is not "slow").
///
/// # Memory
///
/// An idle mailbox owns no heap allocation: the queue buffer is released
/// whenever the mailbox is drained empty (a sparse client pays one small
/// allocation per burst instead of holding a buffer forever).
#[derive(Debug)]
pub struct Mailbox {
    queue: Mutex<Queue>,
    waker: AtomicWaker,
    state: AtomicU8,
    max_messages: u32,
    /// Whether presence events are delivered here (see [`ClientInfo::presence`](crate::ClientInfo)).
    wants_presence: bool,
    dropped: AtomicU64,
}

impl Mailbox {
    /// Creates a mailbox with the given limits (each clamped to
    /// `1..=u32::MAX`).
    pub fn new(max_messages: usize, max_bytes: usize) -> Self {
        let clamp = |v: usize| v.clamp(1, u32::MAX as usize) as u32;
        Mailbox {
            queue: Mutex::new(Queue {
                items: Vec::new(),
                bytes: 0,
                max_bytes: clamp(max_bytes),
            }),
            waker: AtomicWaker::new(),
            state: AtomicU8::new(0),
            max_messages: clamp(max_messages),
            wants_presence: true,
            dropped: AtomicU64::new(0),
        }
    }

    /// This mailbox's owner does not want presence events (raw endpoints that
    /// could not show them): the hub skips it when fanning them out.
    pub fn without_presence(mut self) -> Self {
        self.wants_presence = false;
        self
    }

    /// Whether presence events are delivered to this mailbox.
    pub fn wants_presence(&self) -> bool {
        self.wants_presence
    }

    /// Queues a delivery. Returns `false` if it was dropped: the mailbox is
    /// closed, already overflowed, or this push overflows it (see the module
    /// docs). Never blocks beyond the mailbox's own short lock.
    pub fn push(&self, delivery: Delivery) -> bool {
        self.push_outcome(delivery) == PushOutcome::Queued
    }

    pub(crate) fn push_outcome(&self, delivery: Delivery) -> PushOutcome {
        let len = delivery.byte_len();
        let mut q = self.queue.lock();
        let state = self.state.load(Ordering::Relaxed);
        if state & CLOSED != 0 {
            return PushOutcome::Closed;
        }
        if state & OVERFLOWED != 0 {
            drop(q);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return PushOutcome::Dropped;
        }
        let n = q.items.len();
        if n >= self.max_messages as usize
            || (n > 0 && q.bytes as usize + len > q.max_bytes as usize)
        {
            self.state.fetch_or(OVERFLOWED, Ordering::Release);
            drop(q);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            self.waker.wake();
            return PushOutcome::Overflowed;
        }
        q.items.push(delivery);
        q.bytes = q
            .bytes
            .saturating_add(u32::try_from(len).unwrap_or(u32::MAX));
        drop(q);
        if n == 0 {
            // Only the empty -> non-empty transition needs a wake-up: a
            // consumer that saw a non-empty queue drains before re-polling.
            self.waker.wake();
        }
        PushOutcome::Queued
    }

    /// Moves every queued delivery into `out`, returns how many. Releases the
    /// queue's buffer, so a drained mailbox holds no heap memory.
    pub fn drain(&self, out: &mut Vec<Delivery>) -> usize {
        let items = {
            let mut q = self.queue.lock();
            q.bytes = 0;
            std::mem::take(&mut q.items)
        };
        let n = items.len();
        out.extend(items);
        n
    }

    /// Takes every queued delivery, oldest first (the queue's own buffer:
    /// no copy, and the mailbox holds no heap memory after).
    pub fn take_all(&self) -> Vec<Delivery> {
        let mut q = self.queue.lock();
        q.bytes = 0;
        std::mem::take(&mut q.items)
    }

    /// Moves at most `max` deliveries (oldest first) into `out`, returns how
    /// many. Releases the queue's buffer when it becomes empty.
    pub fn drain_into(&self, out: &mut Vec<Delivery>, max: usize) -> usize {
        let mut q = self.queue.lock();
        let n = q.items.len().min(max);
        if n == q.items.len() {
            q.bytes = 0;
            let items = std::mem::take(&mut q.items);
            drop(q);
            out.extend(items);
            return n;
        }
        out.reserve(n);
        let mut bytes = 0usize;
        for d in q.items.drain(..n) {
            bytes += d.byte_len();
            out.push(d);
        }
        q.bytes = q
            .bytes
            .saturating_sub(u32::try_from(bytes).unwrap_or(u32::MAX));
        n
    }

    /// Number of queued deliveries.
    pub fn len(&self) -> usize {
        self.queue.lock().items.len()
    }

    /// Whether no delivery is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes currently queued, as counted by [`Delivery::byte_len`].
    pub fn queued_bytes(&self) -> usize {
        self.queue.lock().bytes as usize
    }

    /// Whether the consumer was marked slow (a push exceeded a limit). Sticky.
    pub fn is_overflowed(&self) -> bool {
        self.state.load(Ordering::Acquire) & OVERFLOWED != 0
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.state.load(Ordering::Acquire) & CLOSED != 0
    }

    /// Deliveries dropped because the mailbox overflowed.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Maximum number of queued deliveries.
    pub fn max_messages(&self) -> usize {
        self.max_messages as usize
    }

    /// Maximum number of queued bytes.
    pub fn max_bytes(&self) -> usize {
        self.queue.lock().max_bytes as usize
    }

    /// Closes the mailbox: later pushes are refused (not counted as drops).
    /// Already queued deliveries can still be drained. Wakes the consumer.
    pub fn close(&self) {
        {
            let _q = self.queue.lock();
            self.state.fetch_or(CLOSED, Ordering::Release);
        }
        self.waker.wake();
    }

    /// Asks the consumer to end its connection ([`Hub::disconnect_user`](crate::Hub::disconnect_user)):
    /// closes the mailbox (later pushes are refused; queued deliveries can
    /// still be drained), marks it kicked ([`is_kicked`](Self::is_kicked))
    /// and wakes the consumer, whose transport then closes the connection
    /// with its protocol's "disconnected by the server". Returns `false` if
    /// it was already kicked or closed.
    pub fn kick(&self) -> bool {
        let before = {
            let _q = self.queue.lock();
            self.state.fetch_or(KICKED | CLOSED, Ordering::AcqRel)
        };
        self.waker.wake();
        before & (KICKED | CLOSED) == 0
    }

    /// Whether [`kick`](Self::kick) was called: the transport must close the
    /// connection. Sticky.
    pub fn is_kicked(&self) -> bool {
        self.state.load(Ordering::Acquire) & KICKED != 0
    }

    fn is_ready(&self) -> bool {
        self.state.load(Ordering::Acquire) != 0 || !self.queue.lock().items.is_empty()
    }

    /// Ready when the mailbox is non-empty, overflowed, kicked or closed; otherwise
    /// registers the task's waker (only the last registered waker is kept:
    /// a mailbox has a single consumer) and returns `Pending`.
    pub fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_ready() {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        if self.is_ready() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Registers the task's waker without taking anything: a consumer that
    /// leaves deliveries queued (its socket is backed up) is still woken when
    /// the mailbox overflows or is closed.
    pub fn register_waker(&self, waker: &std::task::Waker) {
        self.waker.register(waker);
    }

    /// Future form of [`poll_ready`](Self::poll_ready).
    pub fn ready(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| self.poll_ready(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mailbox_fits_a_96_byte_block() {
        // Every connection on the hub keeps one, in an `Arc` (16 bytes of
        // counts); jemalloc's size classes around it are 80, 96, 112.
        let n = std::mem::size_of::<Mailbox>() + 16;
        assert!(n <= 96, "a mailbox takes {n} bytes");
    }
    use crate::publication::Payload;

    fn msg(n: usize) -> Delivery {
        Delivery::Message(Arc::new(Publication::new(
            "t".into(),
            1,
            None,
            Payload::binary(vec![0u8; n]),
            0,
        )))
    }

    #[test]
    fn message_limit_overflows() {
        let m = Mailbox::new(2, 1 << 20);
        assert!(m.push(msg(1)));
        assert!(m.push(msg(1)));
        assert!(!m.is_overflowed());
        assert_eq!(m.push_outcome(msg(1)), PushOutcome::Overflowed);
        assert!(m.is_overflowed());
        assert_eq!(m.push_outcome(msg(1)), PushOutcome::Dropped);
        assert_eq!(m.len(), 2);
        assert_eq!(m.dropped(), 2);
    }

    #[test]
    fn byte_limit_overflows_but_big_single_message_fits_empty_box() {
        let m = Mailbox::new(100, 1000);
        assert!(m.push(msg(5000)));
        assert!(!m.push(msg(1)));
        assert!(m.is_overflowed());

        let m = Mailbox::new(100, 1000);
        assert!(m.push(msg(500)));
        assert!(!m.push(msg(500)));
    }

    #[test]
    fn drain_releases_buffer_and_accounting() {
        let m = Mailbox::new(100, 1 << 20);
        for _ in 0..10 {
            m.push(msg(10));
        }
        let mut out = Vec::new();
        assert_eq!(m.drain_into(&mut out, 4), 4);
        assert_eq!(m.len(), 6);
        assert_eq!(m.queued_bytes(), 6 * msg(10).byte_len());
        assert_eq!(m.drain_into(&mut out, 100), 6);
        assert_eq!(out.len(), 10);
        assert_eq!(m.queued_bytes(), 0);
        assert_eq!(m.queue.lock().items.capacity(), 0);
        m.push(msg(1));
        m.drain(&mut out);
        assert_eq!(m.queue.lock().items.capacity(), 0);
        m.push(msg(2));
        m.push(msg(3));
        let taken = m.take_all();
        assert_eq!(taken.len(), 2);
        assert_eq!(taken[1].byte_len(), msg(3).byte_len());
        assert_eq!(m.queued_bytes(), 0);
        assert!(m.is_empty());
        assert_eq!(m.queue.lock().items.capacity(), 0);
    }

    #[test]
    fn closed_refuses_without_counting() {
        let m = Mailbox::new(10, 1000);
        m.push(msg(1));
        m.close();
        assert_eq!(m.push_outcome(msg(1)), PushOutcome::Closed);
        assert_eq!(m.dropped(), 0);
        assert!(m.is_closed());
        assert_eq!(m.len(), 1);
    }
}
