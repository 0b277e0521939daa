//! The requests this node made and waits for other nodes to answer:
//! `fetch_cluster_sockets` (one response per node) and broadcasts with acks
//! (one recipient list per node, then one answer per recipient). Each is
//! keyed by a request id unique on this node (answers come on this node's
//! own channel) and waits for the nodes alive when it was made; a node that
//! goes away stops being waited for. Timers and sending are the caller's.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use switchboard_socketio::{AckError, AckSink, SocketInfo, Value};
use tokio::sync::oneshot;

struct Fetch {
    waiting: HashSet<u64>,
    sockets: Vec<SocketInfo>,
    done: Option<oneshot::Sender<Vec<SocketInfo>>>,
}

impl Fetch {
    fn finish_if_complete(&mut self) {
        if self.waiting.is_empty() {
            if let Some(done) = self.done.take() {
                let _ = done.send(std::mem::take(&mut self.sockets));
            }
        }
    }
}

struct Acks {
    /// Nodes whose recipient lists have not come yet.
    counting: HashSet<u64>,
    /// Per node, the recipients that have not answered yet.
    expected: HashMap<u64, HashSet<String>>,
    sink: AckSink,
}

impl Acks {
    fn counted_if_complete(&self) {
        if self.counting.is_empty() {
            self.sink.counted();
        }
    }
}

/// The pending requests.
#[derive(Default)]
pub(crate) struct Requests {
    next: AtomicU64,
    fetches: Mutex<HashMap<u64, Fetch>>,
    acks: Mutex<HashMap<u64, Acks>>,
}

impl Requests {
    fn next_id(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// A new fetch waiting for `nodes`: its id and where the sockets come.
    pub(crate) fn start_fetch(&self, nodes: Vec<u64>) -> (u64, oneshot::Receiver<Vec<SocketInfo>>) {
        let id = self.next_id();
        let (tx, rx) = oneshot::channel();
        let mut fetch = Fetch {
            waiting: nodes.into_iter().collect(),
            sockets: Vec::new(),
            done: Some(tx),
        };
        fetch.finish_if_complete();
        if fetch.done.is_some() {
            self.fetches.lock().insert(id, fetch);
        }
        (id, rx)
    }

    /// `node` answered fetch `id`; `false` if no such fetch waits for it.
    pub(crate) fn fetch_response(&self, node: u64, id: u64, sockets: Vec<SocketInfo>) -> bool {
        let mut fetches = self.fetches.lock();
        let Some(f) = fetches.get_mut(&id) else {
            return false;
        };
        if !f.waiting.remove(&node) {
            return false;
        }
        f.sockets.extend(sockets);
        f.finish_if_complete();
        if f.done.is_none() {
            fetches.remove(&id);
        }
        true
    }

    /// Forgets fetch `id` (answered, timed out or abandoned): the sockets
    /// received so far and the nodes that did not answer.
    pub(crate) fn end_fetch(&self, id: u64) -> (Vec<SocketInfo>, Vec<u64>) {
        match self.fetches.lock().remove(&id) {
            Some(f) => (f.sockets, f.waiting.into_iter().collect()),
            None => (Vec::new(), Vec::new()),
        }
    }

    /// A new broadcast with acks waiting for `nodes` to report to `sink`.
    pub(crate) fn start_acks(&self, nodes: Vec<u64>, sink: AckSink) -> u64 {
        let id = self.next_id();
        let acks = Acks {
            counting: nodes.into_iter().collect(),
            expected: HashMap::new(),
            sink,
        };
        acks.counted_if_complete();
        self.acks.lock().insert(id, acks);
        id
    }

    /// `node` sent its recipients for broadcast `id`; `false` if unexpected.
    pub(crate) fn ack_count(&self, node: u64, id: u64, sids: Vec<String>) -> bool {
        let mut all = self.acks.lock();
        let Some(a) = all.get_mut(&id) else {
            return false;
        };
        if !a.counting.remove(&node) {
            return false;
        }
        a.expected.insert(node, sids.iter().cloned().collect());
        a.sink.expect(sids);
        a.counted_if_complete();
        true
    }

    /// `sid` on `node` answered broadcast `id` (`None`: it disconnected);
    /// `false` if unexpected.
    pub(crate) fn ack(&self, node: u64, id: u64, sid: String, args: Option<Vec<Value>>) -> bool {
        let mut all = self.acks.lock();
        let Some(a) = all.get_mut(&id) else {
            return false;
        };
        if !a.expected.get_mut(&node).is_some_and(|e| e.remove(&sid)) {
            return false;
        }
        a.sink.answer(sid, args.ok_or(AckError::Disconnected));
        true
    }

    /// Stops waiting for recipient lists of broadcast `id` (too late now);
    /// returns the nodes that did not send theirs.
    pub(crate) fn stop_counting(&self, id: u64) -> Vec<u64> {
        match self.acks.lock().get_mut(&id) {
            Some(a) => {
                a.sink.counted();
                a.counting.drain().collect()
            }
            None => Vec::new(),
        }
    }

    /// Forgets broadcast `id` (its caller stopped listening).
    pub(crate) fn end_acks(&self, id: u64) {
        self.acks.lock().remove(&id);
    }

    /// `node` is gone: nothing more is awaited from it; its recipients that
    /// did not answer count as disconnected.
    pub(crate) fn node_gone(&self, node: u64) {
        let mut done = Vec::new();
        {
            let mut fetches = self.fetches.lock();
            for (id, f) in fetches.iter_mut() {
                if f.waiting.remove(&node) {
                    f.finish_if_complete();
                    if f.done.is_none() {
                        done.push(*id);
                    }
                }
            }
            for id in done {
                fetches.remove(&id);
            }
        }
        for a in self.acks.lock().values_mut() {
            if a.counting.remove(&node) {
                a.counted_if_complete();
            }
            for sid in a.expected.remove(&node).into_iter().flatten() {
                a.sink.answer(sid, Err(AckError::Disconnected));
            }
        }
    }

    /// Pending requests (fetches, broadcasts with acks).
    pub(crate) fn pending(&self) -> (usize, usize) {
        (self.fetches.lock().len(), self.acks.lock().len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fetch_completes_when_every_node_answered_or_left() {
        let r = Requests::default();
        let (id, mut rx) = r.start_fetch(vec![1, 2, 3]);
        assert!(r.fetch_response(1, id, Vec::new()));
        assert!(!r.fetch_response(1, id, Vec::new()), "once per node");
        assert!(!r.fetch_response(9, id, Vec::new()), "not asked");
        assert!(rx.try_recv().is_err());
        r.node_gone(2);
        assert!(rx.try_recv().is_err());
        assert!(r.fetch_response(3, id, Vec::new()));
        assert!(rx.try_recv().is_ok());
        assert_eq!(r.pending(), (0, 0));

        let (id, _rx) = r.start_fetch(vec![1]);
        let (partial, missing) = r.end_fetch(id);
        assert!(partial.is_empty());
        assert_eq!(missing, [1]);
        assert!(!r.fetch_response(1, id, Vec::new()), "too late");

        let (_, mut rx) = r.start_fetch(vec![]);
        assert!(rx.try_recv().is_ok(), "nobody to wait for");
    }

    #[test]
    fn acks_are_expected_then_answered_and_a_gone_node_disconnects_its_own() {
        let r = Requests::default();
        let id = r.start_acks(vec![1, 2], AckSink::detached());
        assert!(r.ack_count(1, id, vec!["a".into(), "b".into()]));
        assert!(!r.ack_count(1, id, vec![]), "once per node");
        assert!(r.ack(1, id, "a".into(), Some(vec![])));
        assert!(!r.ack(1, id, "a".into(), Some(vec![])), "once per socket");
        assert!(!r.ack(2, id, "b".into(), None), "not its socket");
        r.node_gone(1);
        assert!(!r.ack(1, id, "b".into(), None), "already disconnected");
        r.stop_counting(id);
        assert!(!r.ack_count(2, id, vec![]), "too late");
        r.end_acks(id);
        assert_eq!(r.pending(), (0, 0));
    }
}
