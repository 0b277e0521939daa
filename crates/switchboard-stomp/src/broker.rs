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
//!
//! # Shared queues
//!
//! With a [`QueueBackend`] ([`Broker::with_backend`]) the queues live in
//! the backend (e.g. Redis Streams, shared by several nodes): SENDs go
//! there, and the local queues only hold what the backend handed over for
//! the local consumers (see [`crate::backend`]).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use parking_lot::Mutex;
use switchboard_hub::{validate_topic, Hub};

use crate::backend::{MessageKey, QueueBackend, RemoteMessage, SendDone};
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
    /// `config.session`, shared by every connection's session.
    session_config: Arc<switchboard_stomp_proto::Config>,
    config: StompConfig,
    queues: Mutex<Queues>,
    next_connection: AtomicU64,
    /// A durable store; `None` for the in-memory broker (no store calls).
    store: Option<Box<dyn QueueStore>>,
    /// Shared queues; `None`: the queues are this broker's own.
    backend: Option<Arc<dyn QueueBackend>>,
}

#[derive(Default)]
struct Queues {
    by_name: HashMap<Arc<str>, Queue>,
    next_seq: u64,
    /// Opens each new queue's handle in the backend, if any.
    backend: Option<Arc<dyn QueueBackend>>,
}

impl Queues {
    /// The queue `name`, created if needed, with its interned name.
    fn get(&mut self, name: &str) -> (Arc<str>, &mut Queue) {
        let key = match self.by_name.get_key_value(name) {
            Some((k, _)) => k.clone(),
            None => {
                let k: Arc<str> = Arc::from(name);
                let mut queue = Queue::default();
                queue.remote = self.backend.as_ref().map(|b| b.open(&k));
                self.by_name.insert(k.clone(), queue);
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
                session_config: Arc::new(config.session.clone()),
                config,
                queues: Mutex::new(Queues::default()),
                next_connection: AtomicU64::new(1),
                store: None,
                backend: None,
            }),
        }
    }

    /// A broker on `hub` whose `/queue/` destinations live in `backend`,
    /// shared with the other brokers on it (see [`crate::backend`]). Start
    /// the backend with this broker afterwards, as it says (it holds a
    /// [`WeakBroker`]).
    pub fn with_backend(hub: Hub, config: StompConfig, backend: Arc<dyn QueueBackend>) -> Broker {
        Broker {
            inner: Arc::new(Inner {
                hub,
                session_config: Arc::new(config.session.clone()),
                config,
                queues: Mutex::new(Queues {
                    backend: Some(backend.clone()),
                    ..Queues::default()
                }),
                next_connection: AtomicU64::new(1),
                store: None,
                backend: Some(backend),
            }),
        }
    }

    /// Whether queues live in a [`QueueBackend`].
    pub fn has_backend(&self) -> bool {
        self.inner.backend.is_some()
    }

    pub(crate) fn backend(&self) -> Option<&Arc<dyn QueueBackend>> {
        self.inner.backend.as_ref()
    }

    /// A handle that does not keep the broker alive (for a backend's
    /// tasks).
    pub fn downgrade(&self) -> WeakBroker {
        WeakBroker {
            inner: Arc::downgrade(&self.inner),
        }
    }

    /// How many more messages of queue `name` the local consumers can take
    /// now: their free in-flight slots
    /// ([`StompConfig::max_in_flight`] each) minus the messages already
    /// waiting for them; 0 without consumers. A backend fetches at most
    /// this many.
    pub fn queue_room(&self, name: &str) -> usize {
        let max_in_flight = self.inner.config.max_in_flight;
        self.inner
            .queues
            .lock()
            .by_name
            .get(name)
            .map_or(0, |q| q.room(max_in_flight))
    }

    /// The messages of queue `name` fetched from the backend and neither
    /// acked nor released yet (waiting here or in flight to a consumer).
    pub fn held_keys(&self, name: &str) -> Vec<MessageKey> {
        self.inner
            .queues
            .lock()
            .by_name
            .get(name)
            .map_or_else(Vec::new, |q| q.held.iter().copied().collect())
    }

    /// Messages of queue `name` fetched from the backend: handed to the
    /// local consumers, round robin. Without consumers (the last one left
    /// meanwhile) they are released back at once.
    pub fn deliver_remote(&self, name: &str, messages: Vec<RemoteMessage>) {
        let Some(backend) = &self.inner.backend else {
            return;
        };
        if messages.is_empty() {
            return;
        }
        let mut queues = self.inner.queues.lock();
        let mut seq = queues.next_seq;
        let (name, queue) = queues.get(name);
        if queue.consumers() == 0 {
            backend.release(&name, messages);
            queues.forget_if_unused(&name);
            return;
        }
        let destination: Arc<str> = Arc::from(format!("/queue/{name}"));
        for m in messages {
            seq += 1;
            queue.held.insert(m.key);
            let message = Arc::new(QueueMessage {
                seq,
                destination: destination.clone(),
                headers: m.headers,
                body: m.body,
                key: Some(m.key),
            });
            queue.push_remote(message, m.redelivered);
        }
        queue.dispatch(&name, self.inner.config.max_in_flight);
        queues.next_seq = seq;
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
                key: None,
            });
            queue.requeue(message, true);
        }
        Ok(Broker {
            inner: Arc::new(Inner {
                hub,
                session_config: Arc::new(config.session.clone()),
                config,
                queues: Mutex::new(queues),
                next_connection: AtomicU64::new(1),
                store: Some(Box::new(store)),
                backend: None,
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

    /// The protocol settings every connection's session shares.
    pub(crate) fn session_config(&self) -> &Arc<switchboard_stomp_proto::Config> {
        &self.inner.session_config
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
    ///
    /// With a [`QueueBackend`] the message is handed to it and `Ok` means
    /// only that: a refusal or failure there is logged.
    pub fn send_to_queue(
        &self,
        name: &str,
        headers: Vec<(String, String)>,
        body: Bytes,
    ) -> Result<(), SendToQueueError> {
        validate_topic(name).map_err(|_| SendToQueueError::InvalidName)?;
        if let Some(backend) = &self.inner.backend {
            backend.send(name, headers, body, SendDone::detached());
            return Ok(());
        }
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
            key: None,
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
        if let Some(remote) = &queue.remote {
            remote.wake();
        }
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
        if let Some(backend) = &self.inner.backend {
            // Shared queues: what this consumer had goes back to the
            // backend, for any node; so does what waits here once no local
            // consumer is left.
            let mut back: Vec<(Arc<QueueMessage>, bool)> =
                unacked.into_iter().map(|u| (u.message, true)).collect();
            if queue.consumers() == 0 {
                back.extend(queue.drain_waiting());
            }
            release_to(&**backend, &name, queue, back);
        } else {
            for u in unacked {
                queue.requeue(u.message, true);
            }
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
        if let Some(backend) = &self.inner.backend {
            let mut queues = self.inner.queues.lock();
            for (name, group) in by_queue(done) {
                let (name, queue) = queues.get(name);
                let keys: Vec<MessageKey> = group
                    .filter_map(|u| u.message.key)
                    .filter(|k| queue.held.remove(k))
                    .collect();
                if !keys.is_empty() {
                    backend.ack(&name, &keys);
                }
            }
        }
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
        if let Some(backend) = &self.inner.backend {
            for (name, group) in by_queue(returned) {
                let (name, queue) = queues.get(name);
                let back = group.map(|u| (u.message.clone(), redelivered)).collect();
                release_to(&**backend, &name, queue, back);
            }
            drop(queues);
            self.release(connection, returned);
            return;
        }
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
            if let Some(remote) = &queue.remote {
                remote.wake();
            }
            queues.forget_if_unused(&name);
        }
    }
}

/// `messages` grouped by queue (consecutive runs; usually one queue).
fn by_queue(messages: &[Unacked]) -> impl Iterator<Item = (&str, std::slice::Iter<'_, Unacked>)> {
    messages
        .chunk_by(|a, b| a.queue == b.queue)
        .map(|run| (&*run[0].queue, run.iter()))
}

/// Gives messages held from the backend back to it (those not held — e.g.
/// acked meanwhile — are skipped).
fn release_to(
    backend: &dyn QueueBackend,
    name: &str,
    queue: &mut Queue,
    messages: Vec<(Arc<QueueMessage>, bool)>,
) {
    let back: Vec<RemoteMessage> = messages
        .into_iter()
        .filter_map(|(m, redelivered)| {
            let key = m.key.filter(|k| queue.held.remove(k))?;
            Some(RemoteMessage {
                key,
                headers: m.headers.clone(),
                body: m.body.clone(),
                redelivered,
            })
        })
        .collect();
    if !back.is_empty() {
        backend.release(name, back);
    }
}

/// A [`Broker`] that may be gone (see [`Broker::downgrade`]).
#[derive(Clone)]
pub struct WeakBroker {
    inner: Weak<Inner>,
}

impl fmt::Debug for WeakBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakBroker")
            .field("alive", &(self.inner.strong_count() > 0))
            .finish()
    }
}

impl WeakBroker {
    /// The broker, if it still exists.
    pub fn upgrade(&self) -> Option<Broker> {
        self.inner.upgrade().map(|inner| Broker { inner })
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
            .field("backend", &self.has_backend())
            .finish()
    }
}
