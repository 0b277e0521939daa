//! Hub configuration: [`HubConfig`] (history depth, mailbox limits, sharding,
//! idle-topic retention, presence) and the optional permission hook
//! ([`AuthorizeFn`], [`Action`]).

use std::fmt;
use std::sync::Arc;

use crate::client::ClientInfo;

/// What a client is trying to do on a topic, passed to the authorize hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Subscribing to the topic.
    Subscribe,
    /// Publishing to the topic.
    Publish,
}

/// Permission hook: returns `true` to allow `client` to perform the action on
/// `topic`. Called on every [`Client::subscribe`](crate::Client::subscribe)
/// and [`Client::publish`](crate::Client::publish) (not for server-side
/// [`Hub::publish`](crate::Hub::publish)), with no hub lock held. Keep it cheap.
pub type AuthorizeFn = Arc<dyn Fn(&ClientInfo, &str, Action) -> bool + Send + Sync>;

/// Configuration of a [`Hub`](crate::Hub).
#[derive(Clone)]
pub struct HubConfig {
    /// Publications kept per topic for `since` recovery and
    /// [`Hub::history`](crate::Hub::history). Default 100; 0 disables history.
    pub history_size: usize,
    /// Whether a topic keeps history (decided when the topic is created):
    /// `false` for topics whose publications no one will ask for again,
    /// such as a server's own periodic reports. Those would otherwise stay
    /// in memory [`history_size`](Self::history_size) at a time, each
    /// allocated whenever it was published, which after a crowd of
    /// connections means scattered among the crowd's freed memory.
    /// Default: every topic does.
    pub keeps_history: fn(&str) -> bool,
    /// Maximum deliveries queued in one connection's mailbox before the
    /// connection is marked as a slow consumer. Default 1024.
    pub mailbox_max_messages: usize,
    /// Maximum bytes (as counted by [`Delivery::byte_len`](crate::Delivery::byte_len))
    /// queued in one mailbox. Default 4 MiB.
    pub mailbox_max_bytes: usize,
    /// Number of topic-map shards (rounded up to a power of two, at least 1).
    /// Default 64.
    pub shards: usize,
    /// Maximum number of topics kept without subscribers (to preserve their
    /// sequence numbers and history). When exceeded, the oldest idle topics
    /// are removed (roughly FIFO, per shard). 0 removes a topic as soon as
    /// it has no subscriber. Default 10,000.
    pub max_idle_topics: usize,
    /// Whether join/leave [`PresenceEvent`](crate::PresenceEvent)s are
    /// delivered to the other subscribers. Default `true`. Note that each
    /// join/leave is pushed to every other subscriber of the topic, so a join
    /// storm on a topic with N subscribers costs O(N²) deliveries.
    pub presence_events: bool,
    /// Optional permission hook; `None` allows everything.
    pub authorize: Option<AuthorizeFn>,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            history_size: 100,
            keeps_history: |_| true,
            mailbox_max_messages: 1024,
            mailbox_max_bytes: 4 * 1024 * 1024,
            shards: 64,
            max_idle_topics: 10_000,
            presence_events: true,
            authorize: None,
        }
    }
}

impl HubConfig {
    /// Sets the permission hook (builder style).
    pub fn with_authorize(
        mut self,
        f: impl Fn(&ClientInfo, &str, Action) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.authorize = Some(Arc::new(f));
        self
    }
}

impl fmt::Debug for HubConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubConfig")
            .field("history_size", &self.history_size)
            .field("keeps_history", &"<fn>")
            .field("mailbox_max_messages", &self.mailbox_max_messages)
            .field("mailbox_max_bytes", &self.mailbox_max_bytes)
            .field("shards", &self.shards)
            .field("max_idle_topics", &self.max_idle_topics)
            .field("presence_events", &self.presence_events)
            .field("authorize", &self.authorize.as_ref().map(|_| "<fn>"))
            .finish()
    }
}
