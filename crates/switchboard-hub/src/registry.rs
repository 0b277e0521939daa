//! What the hub knows about its connections beyond topics: counters per
//! protocol ([`ProtocolStats`]), the fan-out time histogram
//! ([`FanoutHistogram`]), and the connections of each authenticated user so
//! that a backend can disconnect a user ([`Hub::disconnect_user`](crate::Hub::disconnect_user)).
//! All plain atomics and short locks taken at connect and disconnect, never
//! per delivery.

use crate::tables::Shrink;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;

use crate::client::ClientId;
use crate::mailbox::Mailbox;

/// One protocol's live counters (shared by its clients).
#[derive(Debug)]
pub(crate) struct ProtocolCounters {
    pub(crate) protocol: &'static str,
    pub(crate) connections: AtomicUsize,
    pub(crate) published: AtomicU64,
}

/// A snapshot of one protocol's counters, from [`Hub::protocol_stats`](crate::Hub::protocol_stats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolStats {
    /// The `ClientInfo::protocol` of these connections.
    pub protocol: &'static str,
    /// Connected clients.
    pub connections: usize,
    /// Publications made by its clients (`Client::publish`).
    pub published: u64,
}

/// Upper bounds of the fan-out histogram's buckets, in microseconds (the
/// last bucket, `+Inf`, is implicit).
pub const FANOUT_BUCKETS_US: [u64; 10] = [5, 10, 25, 50, 100, 250, 1_000, 5_000, 25_000, 100_000];

/// Time a publication takes to reach every local subscriber's mailbox
/// (topic lock, history, one push per subscriber), as a cumulative
/// histogram with fixed buckets ([`FANOUT_BUCKETS_US`]).
#[derive(Debug, Default)]
pub struct FanoutHistogram {
    buckets: [AtomicU64; FANOUT_BUCKETS_US.len() + 1],
    sum_ns: AtomicU64,
}

/// A snapshot of [`FanoutHistogram`]: per-bucket counts (not cumulative),
/// the last one for `+Inf`, and the sum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanoutSnapshot {
    /// Counts per bucket of [`FANOUT_BUCKETS_US`], then the overflow bucket.
    pub counts: Vec<u64>,
    /// Sum of every observation, in nanoseconds.
    pub sum_ns: u64,
}

impl FanoutSnapshot {
    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

impl FanoutHistogram {
    pub(crate) fn observe(&self, d: Duration) {
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        let i = FANOUT_BUCKETS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(FANOUT_BUCKETS_US.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns
            .fetch_add(d.as_nanos().min(u64::MAX as u128) as u64, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> FanoutSnapshot {
        FanoutSnapshot {
            counts: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            sum_ns: self.sum_ns.load(Ordering::Relaxed),
        }
    }
}

type UserConnections = Vec<(ClientId, Weak<Mailbox>)>;

/// Per-protocol counters and the users' connections.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    protocols: Mutex<Vec<Arc<ProtocolCounters>>>,
    users: Mutex<HashMap<Arc<str>, UserConnections>>,
    pub(crate) fanout: FanoutHistogram,
}

impl Registry {
    /// Counts a new connection of `protocol`; the returned counters are the
    /// client's to decrement when it goes.
    pub(crate) fn connected(&self, protocol: &'static str) -> Arc<ProtocolCounters> {
        let mut list = self.protocols.lock();
        let counters = match list.iter().find(|c| c.protocol == protocol) {
            Some(c) => c.clone(),
            None => {
                let c = Arc::new(ProtocolCounters {
                    protocol,
                    connections: AtomicUsize::new(0),
                    published: AtomicU64::new(0),
                });
                list.push(c.clone());
                c
            }
        };
        counters.connections.fetch_add(1, Ordering::Relaxed);
        counters
    }

    pub(crate) fn protocol_stats(&self) -> Vec<ProtocolStats> {
        self.protocols
            .lock()
            .iter()
            .map(|c| ProtocolStats {
                protocol: c.protocol,
                connections: c.connections.load(Ordering::Relaxed),
                published: c.published.load(Ordering::Relaxed),
            })
            .collect()
    }

    pub(crate) fn add_user(&self, user: &Arc<str>, id: ClientId, mailbox: &Arc<Mailbox>) {
        self.users
            .lock()
            .entry(user.clone())
            .or_default()
            .push((id, Arc::downgrade(mailbox)));
    }

    pub(crate) fn remove_user(&self, user: &str, id: ClientId) {
        let mut users = self.users.lock();
        if let Some(list) = users.get_mut(user) {
            list.retain(|(c, _)| *c != id);
            if list.is_empty() {
                users.remove(user);
                users.shrink_when_sparse();
            }
        }
    }

    /// Kicks every live connection of `user`; returns how many.
    pub(crate) fn disconnect_user(&self, user: &str) -> usize {
        let mailboxes: Vec<Arc<Mailbox>> = match self.users.lock().get(user) {
            Some(list) => list.iter().filter_map(|(_, m)| m.upgrade()).collect(),
            None => return 0,
        };
        mailboxes.iter().filter(|m| m.kick()).count()
    }

    pub(crate) fn users(&self) -> usize {
        self.users.lock().len()
    }
}
