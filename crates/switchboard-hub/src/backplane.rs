//! Scale-out hook: the [`Backplane`] trait that relays local publications to
//! other nodes, and the default [`InMemoryBackplane`] (single node, no-op).
//! Publications from other nodes enter through [`Hub::deliver_remote`](crate::Hub::deliver_remote).
//!
//! ## Contract
//!
//! * [`Backplane::publish`] is called for every *local* publish (from
//!   [`Hub::publish`](crate::Hub::publish) / [`Client::publish`](crate::Client::publish)),
//!   never for publications delivered with `deliver_remote`, so nothing loops.
//! * [`Backplane::topic_opened`] is called when a topic gets its first local
//!   subscriber and [`Backplane::topic_closed`] when its last local subscriber
//!   leaves: a Redis backplane would `SUBSCRIBE`/`UNSUBSCRIBE` its channel.
//!   Topics without local subscribers (idle topics kept for their history)
//!   therefore do not receive remote publications.
//! * All three are called **with the topic's lock held**, so that per-topic
//!   calls arrive in order (publications in seq order, open/close paired).
//!   They must be cheap and non-blocking (typically: push into a channel
//!   drained by a network task) and must not call back into the hub.
//! * Sequence numbers are node-local: a remote publication gets the next
//!   local seq of the topic on the receiving node; its original timestamp
//!   and sender are kept.

use std::sync::Arc;

use crate::publication::Publication;

/// Relay between this node's hub and other nodes. Object safe.
///
/// # Contract
///
/// * [`Backplane::publish`] is called for every *local* publish (from
///   [`Hub::publish`](crate::Hub::publish) / [`Client::publish`](crate::Client::publish)),
///   never for publications delivered with `deliver_remote`, so nothing loops.
/// * [`Backplane::topic_opened`] is called when a topic gets its first local
///   subscriber and [`Backplane::topic_closed`] when its last local subscriber
///   leaves: a Redis backplane would `SUBSCRIBE`/`UNSUBSCRIBE` its channel.
///   Topics without local subscribers (idle topics kept for their history)
///   therefore do not receive remote publications.
/// * All three are called **with the topic's lock held**, so that per-topic
///   calls arrive in order (publications in seq order, open/close paired).
///   They must be cheap and non-blocking (typically: push into a channel
///   drained by a network task) and must not call back into the hub.
/// * Sequence numbers are node-local: a remote publication gets the next
///   local seq of the topic on the receiving node; its original timestamp
///   and sender are kept.
pub trait Backplane: Send + Sync {
    /// A publication was made on this node (already delivered locally).
    fn publish(&self, publication: &Arc<Publication>);

    /// `topic` got its first local subscriber. Default: no-op.
    fn topic_opened(&self, topic: &str) {
        let _ = topic;
    }

    /// `topic` lost its last local subscriber. Default: no-op.
    fn topic_closed(&self, topic: &str) {
        let _ = topic;
    }

    /// The local subscribers of `topic` changed (a join or a leave, the last
    /// one included): a backplane sharing presence reads them with
    /// [`Hub::local_presence`](crate::Hub::local_presence) later and tells
    /// the other nodes, which record them with
    /// [`Hub::set_remote_presence`](crate::Hub::set_remote_presence).
    /// Called with the topic's lock held. Default: no-op.
    fn presence_changed(&self, topic: &str) {
        let _ = topic;
    }

    /// Whether this backplane numbers publications for the whole cluster
    /// (read once, when the hub is built). Default: `false`.
    ///
    /// When `true`, the hub delivers nothing itself: [`Backplane::publish`]
    /// receives every local publication with `seq` 0 (from
    /// [`Hub::publish`](crate::Hub::publish), which returns 0), and the
    /// backplane brings every publication back, local ones included, with
    /// its cluster-wide number through
    /// [`Hub::deliver_sequenced`](crate::Hub::deliver_sequenced). Each node
    /// then delivers the same publications in the same order with the same
    /// numbers, so a client can catch up (`since`) on any node. When a topic
    /// is opened ([`Backplane::topic_opened`]) the backplane must, once it
    /// receives the topic's publications, give the hub the topic's retained
    /// history with [`Hub::sync_topic`](crate::Hub::sync_topic) (or
    /// [`Hub::give_up_sync`](crate::Hub::give_up_sync)): until then a
    /// subscribe with `since` is answered later
    /// ([`Subscribed::pending`](crate::Subscribed::pending)).
    fn sequences(&self) -> bool {
        false
    }
}

/// Single-node backplane: relays nothing. The default for [`Hub::new`](crate::Hub::new).
#[derive(Debug, Clone, Copy, Default)]
pub struct InMemoryBackplane;

impl Backplane for InMemoryBackplane {
    fn publish(&self, _publication: &Arc<Publication>) {}
}
