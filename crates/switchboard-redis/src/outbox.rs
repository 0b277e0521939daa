//! The bounded queue of local publications waiting for the publisher link.
//! [`Outbox::push`] is what `Backplane::publish` does under the topic's lock:
//! lock-free, never blocking, dropping (and counting) beyond the bounds.
//! Per-topic order holds because the hub calls it in seq order.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use switchboard_hub::Publication;
use tokio::sync::mpsc;

use crate::wire;

/// Sending half, shared by every `Backplane::publish` call.
#[derive(Debug)]
pub(crate) struct Outbox {
    tx: mpsc::UnboundedSender<Arc<Publication>>,
    messages: AtomicUsize,
    bytes: AtomicUsize,
    max_messages: usize,
    max_bytes: usize,
}

impl Outbox {
    /// An outbox and its receiving half (for the publisher link).
    pub(crate) fn new(
        max_messages: usize,
        max_bytes: usize,
    ) -> (Outbox, mpsc::UnboundedReceiver<Arc<Publication>>) {
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

    /// Queues `p`, or returns `false` if a bound would be exceeded (or the
    /// publisher is gone). A publication larger than the byte bound is
    /// accepted into an empty queue.
    pub(crate) fn push(&self, p: &Arc<Publication>) -> bool {
        let cost = cost(p);
        let n = self.messages.fetch_add(1, Relaxed);
        let b = self.bytes.fetch_add(cost, Relaxed);
        let fits = n < self.max_messages && (n == 0 || b + cost <= self.max_bytes);
        if fits && self.tx.send(p.clone()).is_ok() {
            return true;
        }
        self.messages.fetch_sub(1, Relaxed);
        self.bytes.fetch_sub(cost, Relaxed);
        false
    }

    /// The publisher took `p` off the queue.
    pub(crate) fn taken(&self, p: &Publication) {
        self.messages.fetch_sub(1, Relaxed);
        self.bytes.fetch_sub(cost(p), Relaxed);
    }

    /// Publications waiting.
    pub(crate) fn len(&self) -> usize {
        self.messages.load(Relaxed)
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
