//! The [`Broker`]: what all STOMP connections of a server share — the hub
//! (for `/topic/` destinations), the in-memory queues (for `/queue/`
//! destinations) and the configuration (authentication, permissions,
//! limits). Per-connection state lives in [`StompClient`](crate::StompClient).
//!
//! # Locking
//!
//! Topics use the hub's own locking. All queues share one mutex, held only
//! to append, dispatch or return messages (never across I/O); a dispatch
//! pushes into the consumer's inbox under it (lock order: queues → inbox).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use switchboard_hub::{validate_topic, Hub};

use crate::config::StompConfig;
use crate::queue::{Inbox, Queue, QueueFull, QueueMessage};
use crate::store::QueueStore;
use crate::transaction::Unacked;

/// The STOMP broker. Cheap to clone (an `Arc`); one per server, shared by
/// every STOMP connection whatever its transport (TCP, WebSocket).
///
/// ```
/// use switchboard_hub::{Hub, HubConfig};
/// use switchboard_stomp::{Broker, StompConfig, StaticUsers};
///
/// let hub = Hub::new(HubConfig::default());
/// let config = StompConfig::default()
///     .with_authenticator(StaticUsers::new().user("guest", "guest"));
/// let broker = Broker::new(hub, config);
/// broker.send_to_queue("jobs", vec![], "work".into()).unwrap();
/// assert_eq!(broker.queue_len("jobs"), 1);
/// ```
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

struct Inner {
    hub: Hub,
    config: StompConfig,
    queues: Mutex<Queues>,
    next_connection: AtomicU64,
    /// A durable store; `None` for the in-memory broker (no store calls).
    store: Option<Box<dyn QueueStore>>,
}

#[derive(Default)]
struct Queues {
    by_name: HashMap<Arc<str>, Queue>,
    next_seq: u64,
}

impl Queues {
    /// The queue `name`, created if needed, with its interned name.
    fn get(&mut self, name: &str) -> (Arc<str>, &mut Queue) {
        let key = match self.by_name.get_key_value(name) {
            Some((k, _)) => k.clone(),
            None => {
                let k: Arc<str> = Arc::from(name);
                self.by_name.insert(k.clone(), Queue::default());
                k
            }
        };
        let queue = self.by_name.get_mut(name).expect("present");
        (key, queue)
    }

    fn forget_if_unused(&mut self, name: &str) {
        if self.by_name.get(name).is_some_and(Queue::is_unused) {
            self.by_name.remove(name);
        }
    }
}

impl Broker {
    /// A broker on `hub`.
    pub fn new(hub: Hub, config: StompConfig) -> Broker {
        Broker {
            inner: Arc::new(Inner {
                hub,
                config,
                queues: Mutex::new(Queues::default()),
                next_connection: AtomicU64::new(1),
                store: None,
            }),
        }
    }

    /// A broker on `hub` whose queue messages are kept in `store` until
    /// acknowledged (see [`crate::store`]). Every message already in the
    /// store is loaded into its queue, in order, marked `redelivered:true`
    /// (it may have been delivered before); the queue bound does not apply
    /// to them. A non-durable store ([`MemoryStore`](crate::MemoryStore))
    /// gives the same broker as [`Broker::new`].
    pub fn with_store(
        hub: Hub,
        config: StompConfig,
        store: impl QueueStore,
    ) -> std::io::Result<Broker> {
        if !store.is_durable() {
            return Ok(Broker::new(hub, config));
        }
        let mut queues = Queues::default();
        for m in store.load()? {
            queues.next_seq = queues.next_seq.max(m.seq);
            let (name, queue) = queues.get(&m.queue);
            let message = Arc::new(QueueMessage {
                seq: m.seq,
                destination: Arc::from(format!("/queue/{name}")),
                headers: m.headers,
                body: m.body,
            });
            queue.requeue(message, true);
        }
        Ok(Broker {
            inner: Arc::new(Inner {
                hub,
                config,
                queues: Mutex::new(queues),
                next_connection: AtomicU64::new(1),
                store: Some(Box::new(store)),
            }),
        })
    }

    /// Whether queue messages are kept in a durable store.
    pub fn is_durable(&self) -> bool {
        self.inner.store.is_some()
    }

    /// The hub `/topic/` destinations live on.
    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    /// The configuration.
    pub fn config(&self) -> &StompConfig {
        &self.inner.config
    }

    /// Messages waiting in queue `name` for a consumer (not counting those
    /// in flight to one); 0 for an unknown queue.
    pub fn queue_len(&self, name: &str) -> usize {
        self.inner
            .queues
            .lock()
            .by_name
            .get(name)
            .map_or(0, Queue::waiting)
    }

    /// Subscriptions consuming from queue `name`.
    pub fn queue_consumers(&self, name: &str) -> usize {
        self.inner
            .queues
            .lock()
            .by_name
            .get(name)
            .map_or(0, Queue::consumers)
    }

    /// Sends a message to queue `name` (without the `/queue/` prefix) from
    /// the server side, as a STOMP SEND would: `headers` are passed on to
    /// the MESSAGE (`content-type` and application headers).
    pub fn send_to_queue(
        &self,
        name: &str,
        headers: Vec<(String, String)>,
        body: Bytes,
    ) -> Result<(), SendToQueueError> {
        validate_topic(name).map_err(|_| SendToQueueError::InvalidName)?;
        let config = &self.inner.config;
        let mut queues = self.inner.queues.lock();
        let seq = queues.next_seq + 1;
        let (name, queue) = queues.get(name);
        if let Some(store) = &self.inner.store {
            // Durable: on disk before it can be dispatched or receipted.
            // Under the queues lock, so the bound and the order hold.
            let stored = queue
                .check_room(config.max_queue_length)
                .map_err(SendToQueueError::Full)
                .and_then(|()| {
                    store.insert(seq, &name, &headers, &body).map_err(|e| {
                        tracing::error!(error = %e, "stomp queue store: insert failed");
                        SendToQueueError::Store
                    })
                });
            if let Err(e) = stored {
                queues.forget_if_unused(&name);
                return Err(e);
            }
        }
        let message = Arc::new(QueueMessage {
            seq,
            destination: Arc::from(format!("/queue/{name}")),
            headers,
            body,
        });
        let pushed = queue.push(message, config.max_queue_length);
        queue.dispatch(&name, config.max_in_flight);
        queues.next_seq = seq;
        if pushed.is_err() {
            queues.forget_if_unused(&name);
        }
        pushed.map_err(SendToQueueError::Full)
    }

    pub(crate) fn next_connection_id(&self) -> u64 {
        self.inner.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn subscribe_queue(
        &self,
        name: &str,
        connection: u64,
        subscription: Arc<str>,
        inbox: &Arc<Inbox>,
    ) {
        let mut queues = self.inner.queues.lock();
        let (name, queue) = queues.get(name);
        queue.add_consumer(connection, subscription, inbox.clone());
        queue.dispatch(&name, self.inner.config.max_in_flight);
    }

    /// Removes a subscription from its queue: what it had not yet taken goes
    /// back as it was, `unacked` goes back marked redelivered.
    pub(crate) fn unsubscribe_queue(
        &self,
        name: &str,
        connection: u64,
        subscription: &str,
        unacked: Vec<Unacked>,
    ) {
        let mut queues = self.inner.queues.lock();
        let (name, queue) = queues.get(name);
        queue.remove_consumer(&name, connection, subscription);
        for u in unacked {
            queue.requeue(u.message, true);
        }
        queue.dispatch(&name, self.inner.config.max_in_flight);
        queues.forget_if_unused(&name);
    }

    /// Messages done with: acknowledged, or written on an `auto`
    /// subscription. Their consumers get room for more.
    ///
    /// Durable store: this is where messages are deleted from it, before
    /// the consumer gets room for more. A failed delete only means the
    /// message may come back after a restart (at least once).
    pub(crate) fn settle(&self, connection: u64, done: &[Unacked]) {
        if let Some(store) = &self.inner.store {
            if !done.is_empty() {
                let seqs: Vec<u64> = done.iter().map(|u| u.message.seq).collect();
                if let Err(e) = store.remove(&seqs) {
                    tracing::error!(error = %e, "stomp queue store: remove failed");
                }
            }
        }
        self.release(connection, done);
    }

    /// Messages returned (NACK, transactional ACK aborted): back to their
    /// queues marked redelivered (`redelivered`) or as they were.
    pub(crate) fn requeue(&self, connection: u64, returned: &[Unacked], redelivered: bool) {
        let mut queues = self.inner.queues.lock();
        for u in returned {
            let (_, queue) = queues.get(&u.queue);
            queue.requeue(u.message.clone(), redelivered);
        }
        drop(queues);
        self.release(connection, returned);
    }

    /// Gives the messages' consumers room again and dispatches.
    fn release(&self, connection: u64, messages: &[Unacked]) {
        if messages.is_empty() {
            return;
        }
        let max_in_flight = self.inner.config.max_in_flight;
        let mut queues = self.inner.queues.lock();
        for u in messages {
            let (_, queue) = queues.get(&u.queue);
            queue.settle(connection, &u.subscription, 1);
        }
        let mut names: Vec<&Arc<str>> = messages.iter().map(|u| &u.queue).collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            let (name, queue) = queues.get(name);
            queue.dispatch(&name, max_in_flight);
            queues.forget_if_unused(&name);
        }
    }
}

/// Why [`Broker::send_to_queue`] refused a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendToQueueError {
    /// Empty, longer than 256 bytes or with control characters.
    InvalidName,
    /// The queue is at its bound ([`StompConfig::max_queue_length`]).
    Full(QueueFull),
    /// The durable store could not write the message (logged).
    Store,
}

impl fmt::Display for SendToQueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendToQueueError::InvalidName => f.write_str("invalid queue name"),
            SendToQueueError::Full(e) => e.fmt(f),
            SendToQueueError::Store => f.write_str("message could not be stored"),
        }
    }
}

impl std::error::Error for SendToQueueError {}

impl fmt::Debug for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let queues = self.inner.queues.lock().by_name.len();
        f.debug_struct("Broker")
            .field("config", &self.inner.config)
            .field("queues", &queues)
            .field("durable", &self.is_durable())
            .finish()
    }
}
