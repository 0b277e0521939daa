//! Which other nodes are alive: every message from a node (its heartbeats
//! above all) marks it seen; a node not heard from within the heartbeat
//! timeout, or that said goodbye, is gone. Requests that wait for every
//! node's answer wait for the nodes alive when they were made. Nothing here
//! sends anything.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The other nodes and when each was last heard from.
#[derive(Debug)]
pub(crate) struct Nodes {
    timeout: Duration,
    seen: Mutex<HashMap<u64, Instant>>,
}

impl Nodes {
    pub(crate) fn new(timeout: Duration) -> Self {
        Nodes {
            timeout,
            seen: Mutex::default(),
        }
    }

    /// `node` was heard from at `now`; `true` if it was not known (or had
    /// timed out).
    pub(crate) fn seen(&self, node: u64, now: Instant) -> bool {
        let mut seen = self.seen.lock();
        let fresh = seen
            .get(&node)
            .is_some_and(|at| now.saturating_duration_since(*at) <= self.timeout);
        seen.insert(node, now);
        !fresh
    }

    /// `node` said goodbye; `true` if it was known.
    pub(crate) fn remove(&self, node: u64) -> bool {
        self.seen.lock().remove(&node).is_some()
    }

    /// The nodes heard from within the timeout.
    pub(crate) fn live(&self, now: Instant) -> Vec<u64> {
        self.seen
            .lock()
            .iter()
            .filter(|(_, at)| now.saturating_duration_since(**at) <= self.timeout)
            .map(|(n, _)| *n)
            .collect()
    }

    /// Forgets the nodes not heard from within the timeout and returns them.
    pub(crate) fn prune(&self, now: Instant) -> Vec<u64> {
        let mut gone = Vec::new();
        self.seen.lock().retain(|n, at| {
            let alive = now.saturating_duration_since(*at) <= self.timeout;
            if !alive {
                gone.push(*n);
            }
            alive
        });
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_come_and_go() {
        let s = Duration::from_secs;
        let t = Instant::now();
        let n = Nodes::new(s(10));
        assert!(n.seen(1, t));
        assert!(!n.seen(1, t + s(5)));
        assert!(n.seen(2, t + s(6)));
        assert_eq!(n.live(t + s(16)), [2]);
        assert_eq!(n.prune(t + s(16)), [1]);
        assert!(n.seen(1, t + s(17)), "back after it was pruned");
        assert!(n.remove(2));
        assert!(!n.remove(2));
        assert_eq!(n.live(t + s(17)), [1]);
        // Missed heartbeats without a prune: seen again counts as new.
        assert!(n.seen(1, t + s(40)));
    }
}
