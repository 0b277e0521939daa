//! Queues shared by several brokers: [`QueueBackend`], the seam through
//! which a [`Broker`] built with [`Broker::with_backend`] stores and
//! fetches its `/queue/` messages elsewhere (`switchboard-redis`'s
//! `RedisQueues` keeps them in Redis Streams, so that the brokers of
//! several nodes share their queues). Without a backend ([`Broker::new`],
//! [`Broker::with_store`]) queues are the broker's own, in memory or in its
//! durable [`QueueStore`](crate::QueueStore), and nothing here is used.
//!
//! # Division of work
//!
//! * **SEND** (outside a transaction, or at COMMIT): the broker hands the
//!   message to [`QueueBackend::send`] and does not queue it locally. The
//!   backend stores it and calls [`SendDone::complete`]; only then does the
//!   connection emit the SEND's (or COMMIT's) RECEIPT, or, on an error, an
//!   ERROR frame (and close). Frames that follow a pending SEND keep their
//!   receipts in order behind it.
//! * **Fetching**: the broker opens a [`RemoteQueue`] per queue it knows
//!   ([`QueueBackend::open`]) and calls [`RemoteQueue::wake`] whenever its
//!   local consumers may take more ([`Broker::queue_room`] says how many).
//!   The backend fetches at most that many and hands them over with
//!   [`Broker::deliver_remote`]; the broker's usual round robin (with its
//!   in-flight limits) hands them to consumers.
//! * **Done**: acknowledged messages (or written, on `auto` subscriptions)
//!   go to [`QueueBackend::ack`]. Returned ones (NACK, UNSUBSCRIBE or
//!   disconnect before the ACK, aborted transactional ACK/NACK, or fetched
//!   for a queue that has lost its last local consumer) go to
//!   [`QueueBackend::release`], to be fetched again by any broker.
//! * **Held**: what the broker has fetched and not yet acked or released
//!   ([`Broker::held_keys`]), so that a backend can tell the live holder
//!   of a message from a dead one.

use std::fmt;
use std::sync::{Arc, Weak};

use bytes::Bytes;

use crate::queue::Inbox;

#[cfg(doc)]
use crate::Broker;

/// A message's id in its [`QueueBackend`] (a Redis stream entry id
/// `ms-seq` is `MessageKey(ms, seq)`). Ordered as the backend orders
/// its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageKey(pub u64, pub u64);

impl fmt::Display for MessageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

/// A message fetched from a backend, for [`Broker::deliver_remote`].
#[derive(Debug, Clone)]
pub struct RemoteMessage {
    /// Its id in the backend (given back in `ack` / `release`).
    pub key: MessageKey,
    /// The headers passed on to the MESSAGE (`content-type`, application
    /// headers).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
    /// Possibly delivered before: the MESSAGE carries `redelivered:true`.
    pub redelivered: bool,
}

/// Why a backend did not take a SEND.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendError {
    /// The queue holds its maximum of messages
    /// ([`StompConfig::max_queue_length`](crate::StompConfig::max_queue_length)).
    Full(usize),
    /// The backend cannot be reached (or did not answer in time): the
    /// message may not have been queued.
    Unavailable(String),
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendError::Full(limit) => write!(f, "queue full ({limit} messages waiting)"),
            BackendError::Unavailable(why) => write!(f, "not queued: {why}"),
        }
    }
}

impl std::error::Error for BackendError {}

/// Shared queues behind a [`Broker`] (see the [module docs](self)).
///
/// Every method is called from a connection's task, some with the broker's
/// queue lock held: queue the work and return, never wait.
pub trait QueueBackend: Send + Sync + 'static {
    /// Stores a message for queue `queue` (without `/queue/`); call
    /// `done` once it is stored, or failed. Dropping `done` uncalled
    /// counts as [`BackendError::Unavailable`].
    fn send(&self, queue: &str, headers: Vec<(String, String)>, body: Bytes, done: SendDone);

    /// The broker now knows queue `queue` (a consumer subscribed, or a
    /// message of it is being settled). The handle lives as long as the
    /// broker's queue: until it has neither consumers nor held messages.
    fn open(&self, queue: &Arc<str>) -> Box<dyn RemoteQueue>;

    /// Messages of `queue` are done with (acknowledged, or written on an
    /// `auto` subscription).
    fn ack(&self, queue: &str, keys: &[MessageKey]);

    /// Messages of `queue` given back: make them available again to any
    /// consumer (marked redelivered when `redelivered`).
    fn release(&self, queue: &str, messages: Vec<RemoteMessage>);
}

/// One queue of a [`QueueBackend`], as one broker consumes it.
pub trait RemoteQueue: Send + Sync + 'static {
    /// The local consumers may take more ([`Broker::queue_room`]): fetch.
    fn wake(&self);
}

/// The completion of one [`QueueBackend::send`]: tells the sending
/// connection (and wakes it).
pub struct SendDone {
    inbox: Weak<Inbox>,
    id: u64,
    done: bool,
}

impl SendDone {
    pub(crate) fn new(inbox: &Arc<Inbox>, id: u64) -> SendDone {
        SendDone {
            inbox: Arc::downgrade(inbox),
            id,
            done: false,
        }
    }

    /// A completion that tells nobody (for server-side sends).
    pub fn detached() -> SendDone {
        SendDone {
            inbox: Weak::new(),
            id: 0,
            done: false,
        }
    }

    /// Reports the outcome. A connection that is gone meanwhile is not
    /// told.
    pub fn complete(mut self, result: Result<(), BackendError>) {
        self.done = true;
        self.finish(result);
    }

    fn finish(&self, result: Result<(), BackendError>) {
        match self.inbox.upgrade() {
            Some(inbox) => inbox.complete_send(self.id, result),
            None => {
                if let Err(e) = result {
                    tracing::warn!(error = %e, "stomp queue send failed (sender gone)");
                }
            }
        }
    }
}

impl Drop for SendDone {
    fn drop(&mut self) {
        if !self.done {
            self.finish(Err(BackendError::Unavailable("queue backend gone".into())));
        }
    }
}

impl fmt::Debug for SendDone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendDone").field("id", &self.id).finish()
    }
}
