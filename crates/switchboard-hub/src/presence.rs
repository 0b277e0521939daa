//! Presence: who is subscribed to a topic. Owns the [`Presence`] snapshot,
//! the [`PresenceEvent`] delivered on join/leave, and the per-topic member
//! table (distinct display names with a connection count per name).

use std::collections::HashMap;
use std::sync::Arc;

/// Snapshot of a topic's subscribers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Presence {
    /// Number of subscribed connections.
    pub count: usize,
    /// Distinct display names of the subscribers, in no particular order (a
    /// name subscribed from several connections appears once).
    pub members: Vec<Arc<str>>,
}

/// Whether a [`PresenceEvent`] is a join or a leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PresenceKind {
    /// A connection subscribed.
    Join,
    /// A connection unsubscribed or disconnected.
    Leave,
}

/// Delivered to the *other* subscribers of a topic when a connection joins or
/// leaves it (the joiner itself gets a [`Presence`] snapshot in
/// [`Subscribed`](crate::Subscribed) instead). One event per connection, even
/// if the same name is already present from another connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceEvent {
    /// Topic joined or left.
    pub topic: Arc<str>,
    /// Join or leave.
    pub kind: PresenceKind,
    /// Display name of the connection that joined or left.
    pub name: Arc<str>,
    /// Number of subscribed connections after the change.
    pub count: usize,
}

/// A topic's subscribers on one node, as names with a connection count
/// each: what a backplane sends to other nodes
/// ([`Hub::local_presence`](crate::Hub::local_presence)) and gives back on
/// them ([`Hub::set_remote_presence`](crate::Hub::set_remote_presence)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberCounts {
    /// Display names with how many connections each has subscribed.
    pub names: Vec<(Arc<str>, u32)>,
}

impl MemberCounts {
    /// Number of connections.
    pub fn count(&self) -> usize {
        self.names.iter().map(|(_, n)| *n as usize).sum()
    }
}

/// Another node's subscribers of a topic, as last told by the backplane.
#[derive(Debug)]
pub(crate) struct RemoteMembers {
    pub(crate) node: u64,
    pub(crate) count: usize,
    pub(crate) names: HashMap<Arc<str>, u32>,
    /// Forgotten after this time (ms since the Unix epoch) unless told again.
    pub(crate) expires_ms: u64,
}

impl RemoteMembers {
    pub(crate) fn new(node: u64, members: MemberCounts, expires_ms: u64) -> Self {
        RemoteMembers {
            node,
            count: members.count(),
            names: members.names.into_iter().filter(|(_, n)| *n > 0).collect(),
            expires_ms,
        }
    }
}

/// Distinct member names of a topic with a connection count per name.
#[derive(Debug, Default)]
pub(crate) struct Members {
    names: HashMap<Arc<str>, u32>,
}

impl Members {
    pub(crate) fn add(&mut self, name: &Arc<str>) {
        *self.names.entry(name.clone()).or_insert(0) += 1;
    }

    pub(crate) fn remove(&mut self, name: &str) {
        if let Some(n) = self.names.get_mut(name) {
            *n -= 1;
            if *n == 0 {
                self.names.remove(name);
            }
        }
        if self.names.is_empty() {
            // Release the table's buffer: an idle topic should hold no heap.
            self.names = HashMap::new();
        }
    }

    /// This node's members and their connection counts.
    pub(crate) fn counts(&self) -> MemberCounts {
        MemberCounts {
            names: self.names.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        }
    }

    /// The snapshot of this node's `count` subscribers plus other nodes'.
    pub(crate) fn snapshot_with(&self, count: usize, remote: &[RemoteMembers]) -> Presence {
        if remote.is_empty() {
            return Presence {
                count,
                members: self.names.keys().cloned().collect(),
            };
        }
        let mut names: std::collections::HashSet<&Arc<str>> = self.names.keys().collect();
        for r in remote {
            names.extend(r.names.keys());
        }
        Presence {
            count: count + remote.iter().map(|r| r.count).sum::<usize>(),
            members: names.into_iter().cloned().collect(),
        }
    }
}
