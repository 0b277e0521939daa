//! In-memory point-to-point queues (`/queue/<name>`): each message goes to
//! exactly one consumer, round robin among the subscriptions that have room
//! for more in flight; messages wait (up to a bound) while no consumer can
//! take them. Redelivered messages go back in their original order.
//!
//! This module owns the queue state only. Delivery to a connection goes
//! through its [`Inbox`]; ACK bookkeeping per message id lives in the
//! connection (and the protocol session), which reports settled and
//! returned messages back here.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::task::Waker;

use atomic_waker::AtomicWaker;
use bytes::Bytes;
use parking_lot::Mutex;

use crate::backend::{BackendError, MessageKey, RemoteQueue};

/// A message sent to a queue. Shared (`Arc`) between the queue and the
/// consumer it is in flight to.
#[derive(Debug)]
pub(crate) struct QueueMessage {
    /// Order of arrival in its queue (redelivery keeps this order).
    pub(crate) seq: u64,
    /// `/queue/<name>`, the MESSAGE `destination`.
    pub(crate) destination: Arc<str>,
    /// The SEND's headers to pass on (`content-type`, application headers).
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Bytes,
    /// Its id in the queue backend, for a message fetched from one.
    pub(crate) key: Option<MessageKey>,
}

/// A queue message handed to one subscription of a connection.
#[derive(Debug)]
pub(crate) struct QueueDelivery {
    pub(crate) queue: Arc<str>,
    pub(crate) subscription: Arc<str>,
    pub(crate) message: Arc<QueueMessage>,
    /// Sent before and not acknowledged: the MESSAGE gets `redelivered:true`.
    pub(crate) redelivered: bool,
}

/// A connection's queue of [`QueueDelivery`]s, filled by the broker and
/// drained by the connection's task (woken through the waker).
#[derive(Default)]
pub(crate) struct Inbox {
    items: Mutex<VecDeque<QueueDelivery>>,
    /// Outcomes of SENDs handed to a queue backend, by send id.
    sends: Mutex<Vec<(u64, Result<(), BackendError>)>>,
    waker: AtomicWaker,
}

impl Inbox {
    pub(crate) fn complete_send(&self, id: u64, result: Result<(), BackendError>) {
        self.sends.lock().push((id, result));
        self.waker.wake();
    }

    /// The send outcomes that arrived since the last call.
    pub(crate) fn take_sends(&self, out: &mut Vec<(u64, Result<(), BackendError>)>) {
        out.append(&mut self.sends.lock());
    }

    fn push(&self, delivery: QueueDelivery) {
        self.items.lock().push_back(delivery);
        self.waker.wake();
    }

    pub(crate) fn pop(&self) -> Option<QueueDelivery> {
        self.items.lock().pop_front()
    }

    pub(crate) fn register(&self, waker: &Waker) {
        self.waker.register(waker);
    }

    /// Removes the deliveries not yet taken for one subscription.
    fn take_for(&self, queue: &str, subscription: &str) -> Vec<QueueDelivery> {
        let mut items = self.items.lock();
        let mut taken = Vec::new();
        items.retain_mut(|d| {
            if &*d.queue == queue && &*d.subscription == subscription {
                taken.push(QueueDelivery {
                    queue: d.queue.clone(),
                    subscription: d.subscription.clone(),
                    message: d.message.clone(),
                    redelivered: d.redelivered,
                });
                false
            } else {
                true
            }
        });
        taken
    }
}

impl fmt::Debug for Inbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbox")
            .field("len", &self.items.lock().len())
            .finish()
    }
}

/// A SEND was refused: the queue already holds its maximum of waiting
/// messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull {
    /// The configured bound.
    pub limit: usize,
}

impl fmt::Display for QueueFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "queue full ({} messages waiting)", self.limit)
    }
}

impl std::error::Error for QueueFull {}

struct Waiting {
    message: Arc<QueueMessage>,
    redelivered: bool,
}

struct Consumer {
    connection: u64,
    subscription: Arc<str>,
    /// Handed to the inbox and not yet settled.
    in_flight: usize,
    inbox: Arc<Inbox>,
}

/// One queue: waiting messages and competing consumers.
#[derive(Default)]
pub(crate) struct Queue {
    waiting: VecDeque<Waiting>,
    consumers: Vec<Consumer>,
    /// Index of the consumer that gets the next message (round robin).
    next: usize,
    /// With a queue backend: this queue's handle there.
    pub(crate) remote: Option<Box<dyn RemoteQueue>>,
    /// With a queue backend: the messages fetched from it and not yet
    /// acked or released (waiting here, or in flight to a consumer).
    pub(crate) held: HashSet<MessageKey>,
}

impl Queue {
    /// Neither messages nor consumers (nor, with a backend, messages held
    /// from it): the queue can be forgotten.
    pub(crate) fn is_unused(&self) -> bool {
        self.waiting.is_empty() && self.consumers.is_empty() && self.held.is_empty()
    }

    /// How many more messages the consumers can take: their free in-flight
    /// slots, minus what already waits for them.
    pub(crate) fn room(&self, max_in_flight: usize) -> usize {
        let free: usize = self
            .consumers
            .iter()
            .map(|c| max_in_flight.saturating_sub(c.in_flight))
            .sum();
        free.saturating_sub(self.waiting.len())
    }

    /// Appends a message fetched from the backend (no bound: the fetch is
    /// bounded by [`room`](Self::room)).
    pub(crate) fn push_remote(&mut self, message: Arc<QueueMessage>, redelivered: bool) {
        self.waiting.push_back(Waiting {
            message,
            redelivered,
        });
    }

    /// Takes every waiting message (with its redelivered flag).
    pub(crate) fn drain_waiting(&mut self) -> Vec<(Arc<QueueMessage>, bool)> {
        self.waiting
            .drain(..)
            .map(|w| (w.message, w.redelivered))
            .collect()
    }

    pub(crate) fn waiting(&self) -> usize {
        self.waiting.len()
    }

    pub(crate) fn consumers(&self) -> usize {
        self.consumers.len()
    }

    /// Whether a new message may be appended: fewer than `limit` wait.
    pub(crate) fn check_room(&self, limit: usize) -> Result<(), QueueFull> {
        if self.waiting.len() >= limit {
            return Err(QueueFull { limit });
        }
        Ok(())
    }

    /// Appends a new message, unless `limit` messages already wait.
    pub(crate) fn push(
        &mut self,
        message: Arc<QueueMessage>,
        limit: usize,
    ) -> Result<(), QueueFull> {
        self.check_room(limit)?;
        self.waiting.push_back(Waiting {
            message,
            redelivered: false,
        });
        Ok(())
    }

    /// Puts messages back in arrival order (before newer ones).
    pub(crate) fn requeue(&mut self, message: Arc<QueueMessage>, redelivered: bool) {
        let pos = self
            .waiting
            .partition_point(|w| w.message.seq < message.seq);
        self.waiting.insert(
            pos,
            Waiting {
                message,
                redelivered,
            },
        );
    }

    pub(crate) fn add_consumer(
        &mut self,
        connection: u64,
        subscription: Arc<str>,
        inbox: Arc<Inbox>,
    ) {
        self.consumers.push(Consumer {
            connection,
            subscription,
            in_flight: 0,
            inbox,
        });
    }

    /// Removes a consumer; what its inbox still held goes back to the queue
    /// unchanged (it was never sent).
    pub(crate) fn remove_consumer(&mut self, queue: &str, connection: u64, subscription: &str) {
        let Some(i) = self.position(connection, subscription) else {
            return;
        };
        let c = self.consumers.remove(i);
        if self.next > i {
            self.next -= 1;
        }
        for d in c.inbox.take_for(queue, subscription) {
            self.requeue(d.message, d.redelivered);
        }
    }

    /// `n` messages of a consumer were settled (acknowledged, written in
    /// `auto` mode, or returned): it has room for more.
    pub(crate) fn settle(&mut self, connection: u64, subscription: &str, n: usize) {
        if let Some(i) = self.position(connection, subscription) {
            let c = &mut self.consumers[i];
            c.in_flight = c.in_flight.saturating_sub(n);
        }
    }

    fn position(&self, connection: u64, subscription: &str) -> Option<usize> {
        self.consumers
            .iter()
            .position(|c| c.connection == connection && &*c.subscription == subscription)
    }

    /// Hands waiting messages to consumers with room, round robin.
    pub(crate) fn dispatch(&mut self, name: &Arc<str>, max_in_flight: usize) {
        while !self.waiting.is_empty() {
            let n = self.consumers.len();
            let Some(i) = (0..n)
                .map(|k| (self.next + k) % n)
                .find(|&i| self.consumers[i].in_flight < max_in_flight)
            else {
                return;
            };
            self.next = (i + 1) % n;
            let w = self.waiting.pop_front().expect("not empty");
            let c = &mut self.consumers[i];
            c.in_flight += 1;
            c.inbox.push(QueueDelivery {
                queue: name.clone(),
                subscription: c.subscription.clone(),
                message: w.message,
                redelivered: w.redelivered,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(seq: u64) -> Arc<QueueMessage> {
        Arc::new(QueueMessage {
            seq,
            destination: Arc::from("/queue/q"),
            headers: Vec::new(),
            body: Bytes::new(),
            key: None,
        })
    }

    fn drain(inbox: &Inbox) -> Vec<(u64, bool)> {
        std::iter::from_fn(|| inbox.pop())
            .map(|d| (d.message.seq, d.redelivered))
            .collect()
    }

    #[test]
    fn round_robin_bound_and_redelivery_order() {
        let name: Arc<str> = Arc::from("q");
        let mut q = Queue::default();
        for s in 1..=3 {
            q.push(msg(s), 3).unwrap();
        }
        assert_eq!(q.push(msg(4), 3), Err(QueueFull { limit: 3 }));
        q.dispatch(&name, 10);
        assert_eq!(q.waiting(), 3, "no consumer: messages wait");

        let (a, b) = (Arc::new(Inbox::default()), Arc::new(Inbox::default()));
        q.add_consumer(1, Arc::from("s"), a.clone());
        q.add_consumer(2, Arc::from("s"), b.clone());
        q.dispatch(&name, 10);
        assert_eq!(drain(&a), vec![(1, false), (3, false)]);
        assert_eq!(drain(&b), vec![(2, false)]);

        // Consumer 1 returns message 3 unacked, then message 1.
        q.requeue(msg(3), true);
        q.requeue(msg(1), true);
        q.settle(1, "s", 2);
        q.remove_consumer("q", 2, "s");
        q.dispatch(&name, 1);
        assert_eq!(drain(&a), vec![(1, true)], "in-flight limit 1");
        q.settle(1, "s", 1);
        q.dispatch(&name, 1);
        assert_eq!(drain(&a), vec![(3, true)]);
    }

    #[test]
    fn removed_consumer_returns_its_untaken_deliveries() {
        let name: Arc<str> = Arc::from("q");
        let mut q = Queue::default();
        let a = Arc::new(Inbox::default());
        q.add_consumer(1, Arc::from("s"), a.clone());
        q.push(msg(1), 10).unwrap();
        q.dispatch(&name, 10);
        q.remove_consumer("q", 1, "s");
        assert!(a.pop().is_none());
        assert_eq!(q.waiting(), 1);
        assert_eq!(q.consumers(), 0);
    }
}
