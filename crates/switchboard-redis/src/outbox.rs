//! The bounded queue of messages waiting for a publisher link (the hub's
//! publications, or the Socket.IO cluster's messages). [`Outbox::push`] is
//! what `Backplane::publish` does under the topic's lock: lock-free, never
//! blocking, dropping (and counting) beyond the bounds. Per-topic order
//! holds because the hub calls it in seq order.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use switchboard_hub::Publication;
use tokio::sync::mpsc;

use crate::wire;

/// Sending half, shared by every `Backplane::publish` call.
#[derive(Debug)]
pub(crate) struct Outbox<T = Arc<Publication>> {
    tx: mpsc::UnboundedSender<T>,
    messages: AtomicUsize,
    bytes: AtomicUsize,
    max_messages: usize,
    max_bytes: usize,
}

impl<T> Outbox<T> {
    /// An outbox and its receiving half (for the publisher link).
    pub(crate) fn new(
        max_messages: usize,
        max_bytes: usize,
    ) -> (Outbox<T>, mpsc::UnboundedReceiver<T>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let outbox = Outbox {
            tx,
            messages: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            max_messages,
            max_bytes,
        };
        (outbox, rx)
    }

    /// Queues `item`, accounted as `cost` bytes, or returns `false` if a
    /// bound would be exceeded (or the publisher is gone). An item larger
    /// than the byte bound is accepted into an empty queue.
    pub(crate) fn push_item(&self, item: T, cost: usize) -> bool {
        let n = self.messages.fetch_add(1, Relaxed);
        let b = self.bytes.fetch_add(cost, Relaxed);
        let fits = n < self.max_messages && (n == 0 || b + cost <= self.max_bytes);
        if fits && self.tx.send(item).is_ok() {
            return true;
        }
        self.messages.fetch_sub(1, Relaxed);
        self.bytes.fetch_sub(cost, Relaxed);
        false
    }

    /// The publisher took an item of `cost` bytes off the queue.
    pub(crate) fn taken_item(&self, cost: usize) {
        self.messages.fetch_sub(1, Relaxed);
        self.bytes.fetch_sub(cost, Relaxed);
    }

    /// An item of `cost` bytes the publisher took is waiting again (held
    /// to be sent on the next connection): counted as queued, and against
    /// the bounds, until taken again.
    pub(crate) fn returned_item(&self, cost: usize) {
        self.messages.fetch_add(1, Relaxed);
        self.bytes.fetch_add(cost, Relaxed);
    }

    /// Publications waiting.
    pub(crate) fn len(&self) -> usize {
        self.messages.load(Relaxed)
    }
}

impl Outbox<Arc<Publication>> {
    /// Queues `p`, or returns `false` if a bound would be exceeded (or the
    /// publisher is gone). A publication larger than the byte bound is
    /// accepted into an empty queue.
    pub(crate) fn push(&self, p: &Arc<Publication>) -> bool {
        self.push_item(p.clone(), cost(p))
    }

    /// The publisher took `p` off the queue.
    pub(crate) fn taken(&self, p: &Publication) {
        self.taken_item(cost(p))
    }

    /// `p`, taken, waits again (see [`returned_item`](Self::returned_item)).
    pub(crate) fn returned(&self, p: &Publication) {
        self.returned_item(cost(p))
    }
}

/// Bytes a queued publication is accounted as: its encoded message plus the
/// channel name (which repeats the topic).
pub(crate) fn cost(p: &Publication) -> usize {
    wire::Message::from_publication(0, p).encoded_len() + p.topic.len() + 16
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_hub::Payload;

    fn publication(data: &str) -> Arc<Publication> {
        Arc::new(Publication::new(
            "t".into(),
            1,
            None,
            Payload::text(data.to_owned()),
            0,
        ))
    }

    #[test]
    fn bounds_by_messages_and_bytes() {
        let (outbox, mut rx) = Outbox::new(3, 1000);
        let small = publication("x");
        assert!(outbox.push(&small));
        assert!(outbox.push(&small));
        assert!(outbox.push(&small));
        assert!(!outbox.push(&small));
        assert_eq!(outbox.len(), 3);
        let p = rx.try_recv().unwrap();
        outbox.taken(&p);
        assert!(outbox.push(&small));

        let (outbox, mut rx) = Outbox::new(100, 200);
        let big = publication(&"x".repeat(500));
        assert!(outbox.push(&big), "alone in an empty queue");
        assert!(!outbox.push(&small), "over the byte bound");
        outbox.taken(&rx.try_recv().unwrap());
        assert_eq!(outbox.len(), 0);
        assert!(outbox.push(&small));
        assert!(!outbox.push(&big));
        assert_eq!(outbox.bytes.load(Relaxed), cost(&small));

        drop(rx);
        let (outbox2, rx2) = Outbox::new(10, 1000);
        drop(rx2);
        assert!(!outbox2.push(&small), "publisher gone");
        assert_eq!(outbox2.len(), 0);
    }
}
