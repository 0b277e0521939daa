//! One connection's handle on the hub: [`Client`] (subscribe, unsubscribe,
//! publish, mailbox), its identity ([`ClientId`], [`ClientInfo`]) and the
//! result of a subscribe ([`Subscribed`]). Dropping a `Client` disconnects it.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::config::Action;
use crate::error::{validate_topic, HubError};
use crate::hub::Hub;
use crate::mailbox::{Delivery, Mailbox};
use crate::presence::{Presence, PresenceEvent, PresenceKind};
use crate::publication::{now_ms, Payload, Publication};
use crate::registry::ProtocolCounters;
use crate::topic::{FanOut, Since, Topic};

/// Process-unique id of a connection (never reused by a hub).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub u64);

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Who a connection is: passed to [`Hub::connect`] and to the authorize hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// Display name, used as `from` of its publications and in presence.
    pub name: Arc<str>,
    /// Protocol it speaks, e.g. `"websocket"`, `"socket.io"`, `"sockjs"`, `"stomp"`.
    pub protocol: &'static str,
    /// Whether it receives presence events (join/leave) of its topics. Raw
    /// endpoints that cannot show them say no, which spares the O(subscribers)
    /// fan-out of every join and leave.
    pub presence_events: bool,
    /// What its credentials proved; `None` for an anonymous connection,
    /// whatever name it chose.
    pub credentials: Option<Arc<Credentials>>,
}

/// What an authenticated connection's credentials proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user (a token's subject, a STOMP login).
    pub user: Arc<str>,
    /// Limits carried by the credentials (e.g. a token's topic claims),
    /// checked on every subscribe and publish before the hub's authorize
    /// hook. `None`: no limit from the credentials.
    pub grants: Option<Grants>,
}

impl ClientInfo {
    /// Builds an anonymous `ClientInfo` without grants.
    pub fn new(name: impl Into<Arc<str>>, protocol: &'static str) -> Self {
        ClientInfo {
            name: name.into(),
            protocol,
            presence_events: true,
            credentials: None,
        }
    }

    /// Marks the connection as authenticated as `user`, with the
    /// credentials' limits if any (builder style).
    pub fn with_user(mut self, user: impl Into<Arc<str>>, grants: Option<Grants>) -> Self {
        self.credentials = Some(Arc::new(Credentials {
            user: user.into(),
            grants,
        }));
        self
    }

    /// The authenticated user, if any.
    pub fn user(&self) -> Option<&Arc<str>> {
        self.credentials.as_ref().map(|c| &c.user)
    }

    /// Sets whether presence events are delivered (builder style).
    pub fn with_presence_events(mut self, on: bool) -> Self {
        self.presence_events = on;
        self
    }
}

/// What a connection's credentials allow on topics: a predicate checked by
/// [`Client::subscribe`] and [`Client::publish`]. Equal when it is the same
/// predicate (pointer equality).
#[derive(Clone)]
pub struct Grants(Arc<GrantFn>);

type GrantFn = dyn Fn(&str, Action) -> bool + Send + Sync;

impl Grants {
    /// Wraps a predicate: `true` allows the action on the topic.
    pub fn new(f: impl Fn(&str, Action) -> bool + Send + Sync + 'static) -> Self {
        Grants(Arc::new(f))
    }

    /// Whether the credentials allow `action` on `topic`.
    pub fn allows(&self, topic: &str, action: Action) -> bool {
        (self.0)(topic, action)
    }
}

impl PartialEq for Grants {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Grants {}

impl fmt::Debug for Grants {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Grants(<fn>)")
    }
}

/// Result of [`Client::subscribe`].
///
/// The subscriber was registered and the history read under the topic's
/// lock, so `replay` followed by the mailbox's live messages is exactly the
/// sequence `since + 1, since + 2, …` with no duplicate and (when
/// `recovered`) no gap. The transport must send `replay` before anything it
/// drains from the mailbox for this topic.
#[derive(Debug, Clone)]
pub struct Subscribed {
    /// Last seq published on the topic at subscription time (0 if none);
    /// live messages start at `last_seq + 1`.
    pub last_seq: u64,
    /// The topic's numbering generation: a client that keeps it and gives
    /// it back with its `since` ([`Client::subscribe_at`]) is never answered
    /// with another numbering's messages (after the topic was recreated on
    /// this node, the server restarted, or a cluster's shared history
    /// expired).
    pub epoch: u64,
    /// Publications with `seq > since`, oldest first; empty when `since` was
    /// `None` or the client was already subscribed.
    pub replay: Vec<Arc<Publication>>,
    /// `true` if `since` was given and `replay` covers every publication
    /// after it (no gap). `false` when `since` was `None`, when messages after
    /// `since` were evicted from history, or when `since > last_seq` (the
    /// topic was recreated; `replay` then holds the whole retained history).
    pub recovered: bool,
    /// Subscribers after this subscription (including this connection).
    pub presence: Presence,
    /// The connection was already subscribed: nothing changed, no replay
    /// (live messages were already flowing), `recovered` is `since.is_some()`.
    pub already_subscribed: bool,
    /// The answer is not known yet: the backplane numbers publications
    /// across nodes and has not yet given this node the topic's shared
    /// history. The subscription is registered; the real result (replay,
    /// `recovered`) arrives as the first delivery for this topic in the
    /// mailbox, [`Delivery::CatchUp`], before any live message. The other
    /// fields are then placeholders (`replay` empty, `recovered` false).
    pub pending: bool,
}

#[derive(Debug)]
struct Subscription {
    topic: Arc<Topic>,
    slot: u32,
}

/// A connection's handle on the [`Hub`]. Not `Clone`: exactly one per
/// connection. Dropping it unsubscribes from every topic (delivering leave
/// events), closes the mailbox and decrements the client count.
pub struct Client {
    id: ClientId,
    info: ClientInfo,
    hub: Hub,
    mailbox: Arc<Mailbox>,
    subs: Mutex<Vec<Subscription>>,
    counters: Arc<ProtocolCounters>,
}

impl Client {
    pub(crate) fn new(id: ClientId, info: ClientInfo, hub: Hub, mailbox: Arc<Mailbox>) -> Self {
        let registry = &hub.inner.registry;
        let counters = registry.connected(info.protocol);
        if let Some(user) = info.user() {
            registry.add_user(user, id, &mailbox);
        }
        Client {
            id,
            info,
            hub,
            mailbox,
            subs: Mutex::new(Vec::new()),
            counters,
        }
    }

    /// This connection's id.
    pub fn id(&self) -> ClientId {
        self.id
    }

    /// This connection's identity.
    pub fn info(&self) -> &ClientInfo {
        &self.info
    }

    /// The hub this client is connected to.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// This connection's outbound queue (drain it from the writer task).
    pub fn mailbox(&self) -> &Arc<Mailbox> {
        &self.mailbox
    }

    fn authorize(&self, topic: &str, action: Action) -> Result<(), HubError> {
        if let Some(g) = self
            .info
            .credentials
            .as_ref()
            .and_then(|c| c.grants.as_ref())
        {
            if !g.allows(topic, action) {
                return Err(HubError::Forbidden);
            }
        }
        match &self.hub.inner.config.authorize {
            Some(f) if !f(&self.info, topic, action) => Err(HubError::Forbidden),
            _ => Ok(()),
        }
    }

    /// Subscribes to `topic` (validated, then checked with the authorize
    /// hook). With `since = Some(n)`, also returns the retained publications
    /// with `seq > n` (see [`Subscribed`] for the no-gap/no-duplicate
    /// guarantee). Other subscribers get a [`PresenceKind::Join`] event.
    /// Idempotent: subscribing again changes nothing
    /// ([`Subscribed::already_subscribed`]).
    pub fn subscribe(&self, topic: &str, since: Option<u64>) -> Result<Subscribed, HubError> {
        self.subscribe_at(topic, since, None)
    }

    /// [`subscribe`](Self::subscribe) with the numbering `epoch` the client
    /// saw `since` in ([`Subscribed::epoch`]): when the topic's numbering is
    /// another one, nothing after `since` can be told apart, so the replay
    /// is the whole retained history and `recovered` is false.
    pub fn subscribe_at(
        &self,
        topic: &str,
        since: Option<u64>,
        epoch: Option<u64>,
    ) -> Result<Subscribed, HubError> {
        let since = since.map(|seq| Since { seq, epoch });
        validate_topic(topic)?;
        self.authorize(topic, Action::Subscribe)?;
        let mut subs = self.subs.lock();
        if let Some(s) = subs.iter().find(|s| &*s.topic.name == topic) {
            let st = s.topic.state.lock();
            return Ok(Subscribed {
                last_seq: st.seq,
                epoch: st.epoch,
                replay: Vec::new(),
                recovered: since.is_some(),
                presence: st.presence(),
                already_subscribed: true,
                pending: false,
            });
        }
        let inner = &self.hub.inner;
        let (topic, _created, (slot, subscribed, fan)) = inner.with_live_topic(topic, |t, st| {
            if st.count == 0 {
                inner.topic_became_busy(t, st);
            }
            // Without the shared history yet, `since` is answered later.
            let waiting = since.filter(|_| !st.synced);
            let slot = st.add_subscriber_waiting(self.id, self.mailbox.clone(), waiting);
            st.members.add(&self.info.name);
            inner.backplane.presence_changed(&t.name);
            let (replay, recovered) = match since {
                Some(since) if waiting.is_none() => st.catch_up(since),
                _ => (Vec::new(), false),
            };
            let mut fan = FanOut::default();
            if inner.config.presence_events && st.count > 1 {
                let ev = PresenceEvent {
                    topic: t.name.clone(),
                    kind: PresenceKind::Join,
                    name: self.info.name.clone(),
                    count: st.presence_count(),
                };
                fan = st.broadcast(&Delivery::Presence(Arc::new(ev)), Some(slot));
            }
            let subscribed = Subscribed {
                last_seq: st.seq,
                epoch: st.epoch,
                replay,
                recovered,
                presence: st.presence(),
                already_subscribed: false,
                pending: waiting.is_some(),
            };
            (slot, subscribed, fan)
        });
        inner.record_drops(fan);
        subs.push(Subscription { topic, slot });
        Ok(subscribed)
    }

    /// Unsubscribes from `topic`; returns whether the client was subscribed.
    /// Other subscribers get a [`PresenceKind::Leave`] event.
    pub fn unsubscribe(&self, topic: &str) -> bool {
        let mut subs = self.subs.lock();
        let Some(i) = subs.iter().position(|s| &*s.topic.name == topic) else {
            return false;
        };
        let s = subs.swap_remove(i);
        if subs.is_empty() {
            *subs = Vec::new();
        }
        self.hub.inner.leave(&s.topic, s.slot, self.id, &self.info);
        true
    }

    /// Unsubscribes from every topic (as on drop, but the client stays
    /// connected and its mailbox open); returns how many topics it left.
    pub fn unsubscribe_all(&self) -> usize {
        let subs = std::mem::take(&mut *self.subs.lock());
        let n = subs.len();
        for s in subs {
            self.hub.inner.leave(&s.topic, s.slot, self.id, &self.info);
        }
        n
    }

    /// Whether the client is subscribed to `topic`.
    pub fn is_subscribed(&self, topic: &str) -> bool {
        self.subs.lock().iter().any(|s| &*s.topic.name == topic)
    }

    /// Topics this client is subscribed to, in no particular order.
    pub fn subscriptions(&self) -> Vec<Arc<str>> {
        self.subs
            .lock()
            .iter()
            .map(|s| s.topic.name.clone())
            .collect()
    }

    /// Publishes on `topic` as this client (`from` = its name), after
    /// validation and the authorize hook. Returns the publication's seq (0
    /// when the backplane numbers publications across nodes: it is not known
    /// yet). The publisher receives its own publication if it is subscribed.
    pub fn publish(&self, topic: &str, payload: Payload) -> Result<u64, HubError> {
        validate_topic(topic)?;
        self.authorize(topic, Action::Publish)?;
        self.counters.published.fetch_add(1, Ordering::Relaxed);
        Ok(self
            .hub
            .inner
            .publish_local(topic, payload, Some(self.info.name.clone()), now_ms()))
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("info", &self.info)
            .field("subscriptions", &self.subscriptions())
            .finish()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.unsubscribe_all();
        self.mailbox.close();
        self.counters.connections.fetch_sub(1, Ordering::Relaxed);
        if let Some(user) = self.info.user() {
            self.hub.inner.registry.remove_user(user, self.id);
        }
        self.hub.inner.client_gone();
    }
}
