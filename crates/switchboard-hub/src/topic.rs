//! One topic: its subscriber slab, member table, history ring and sequence
//! counter, all behind the topic's own lock. Publishing holds only this lock
//! while assigning a seq and pushing into each subscriber's mailbox, which is
//! what gives every subscriber the same order.

use crate::tables::Shrink;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::client::ClientId;
use crate::history::History;
use crate::mailbox::{Delivery, Mailbox, PushOutcome};
use crate::presence::{Members, Presence, RemoteMembers};

/// Where a subscriber's catch-up starts: after `seq` of numbering `epoch`
/// (`None`: the client does not say, `seq` is taken as the topic's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Since {
    pub(crate) seq: u64,
    pub(crate) epoch: Option<u64>,
}

/// A topic, shared between the shard map and its subscribers' clients.
#[derive(Debug)]
pub(crate) struct Topic {
    pub(crate) name: Arc<str>,
    pub(crate) state: Mutex<TopicState>,
}

impl Topic {
    /// `synced`: whether the topic's numbering and history are already this
    /// node's to give (always, unless the backplane numbers publications);
    /// `epoch`: its numbering generation (0 until a numbering backplane
    /// gives it).
    pub(crate) fn new(name: Arc<str>, history_size: usize, synced: bool, epoch: u64) -> Self {
        Topic {
            name,
            state: Mutex::new(TopicState {
                seq: 0,
                epoch,
                synced,
                waiting: 0,
                remote: Vec::new(),
                subs: Vec::new(),
                free: Vec::new(),
                count: 0,
                members: Members::default(),
                history: History::new(history_size),
                dead: false,
                idle: false,
                idle_queued: false,
            }),
        }
    }
}

#[derive(Debug)]
struct Subscriber {
    client: ClientId,
    mailbox: Arc<Mailbox>,
    /// `Some(since)`: subscribed with `since` before the topic was synced;
    /// receives nothing until the sync hands it its catch-up.
    waiting: Option<Since>,
}

/// Counters from one fan-out, folded into the hub stats by the caller.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FanOut {
    pub(crate) delivered: u64,
    pub(crate) dropped: u64,
    pub(crate) newly_slow: u64,
}

/// Mutable state of a topic (guarded by `Topic::state`).
#[derive(Debug)]
pub(crate) struct TopicState {
    /// Last assigned sequence number (0 = none yet).
    pub(crate) seq: u64,
    /// Numbering generation given by a sequencing backplane (0: unknown or
    /// node-local numbering).
    pub(crate) epoch: u64,
    /// `false` while a sequencing backplane has not yet given this node the
    /// topic's shared history since it was (re)opened here.
    pub(crate) synced: bool,
    /// Subscribers waiting for the sync (see `Subscriber::waiting`).
    pub(crate) waiting: usize,
    /// Other nodes' subscribers, as their backplane told (only while this
    /// node has subscribers of the topic).
    pub(crate) remote: Vec<RemoteMembers>,
    /// Subscriber slab; clients remember their slot index, so subscribe and
    /// unsubscribe are O(1) and fan-out is a linear scan.
    subs: Vec<Option<Subscriber>>,
    free: Vec<u32>,
    /// Number of subscribers (occupied slots).
    pub(crate) count: usize,
    pub(crate) members: Members,
    pub(crate) history: History,
    /// Removed from the shard map; holders of a stale `Arc` must re-lookup.
    pub(crate) dead: bool,
    /// No subscriber and counted in its shard's idle count.
    pub(crate) idle: bool,
    /// Currently listed in its shard's idle queue.
    pub(crate) idle_queued: bool,
}

impl TopicState {
    /// Registers a subscriber and returns its slot.
    #[cfg(test)]
    pub(crate) fn add_subscriber(&mut self, client: ClientId, mailbox: Arc<Mailbox>) -> u32 {
        self.add_subscriber_waiting(client, mailbox, None)
    }

    /// Registers a subscriber that waits for the topic's sync with
    /// `waiting = Some(since)` (see `Subscriber::waiting`).
    pub(crate) fn add_subscriber_waiting(
        &mut self,
        client: ClientId,
        mailbox: Arc<Mailbox>,
        waiting: Option<Since>,
    ) -> u32 {
        let sub = Some(Subscriber {
            client,
            mailbox,
            waiting,
        });
        self.waiting += usize::from(waiting.is_some());
        self.count += 1;
        if let Some(slot) = self.free.pop() {
            self.subs[slot as usize] = sub;
            slot
        } else {
            self.subs.push(sub);
            (self.subs.len() - 1) as u32
        }
    }

    /// Removes the subscriber in `slot` if it belongs to `client`.
    pub(crate) fn remove_subscriber(&mut self, slot: u32, client: ClientId) -> bool {
        match self.subs.get_mut(slot as usize) {
            Some(s) if s.as_ref().is_some_and(|s| s.client == client) => {
                if s.take().is_some_and(|s| s.waiting.is_some()) {
                    self.waiting -= 1;
                }
                self.count -= 1;
                if self.count == 0 {
                    // Release the slab: an idle topic holds no subscriber memory.
                    self.subs = Vec::new();
                    self.free = Vec::new();
                } else if slot as usize == self.subs.len() - 1 {
                    self.subs.pop();
                    self.trim_tail();
                } else {
                    self.free.push(slot);
                }
                true
            }
            _ => false,
        }
    }

    /// Drops trailing empty slots and forgets free-list entries beyond the end.
    fn trim_tail(&mut self) {
        while matches!(self.subs.last(), Some(None)) {
            self.subs.pop();
        }
        let len = self.subs.len() as u32;
        self.free.retain(|&s| s < len);
        self.subs.shrink_when_sparse();
    }

    /// Pushes `delivery` into every subscriber's mailbox except `except`.
    pub(crate) fn broadcast(&self, delivery: &Delivery, except: Option<u32>) -> FanOut {
        let mut f = FanOut::default();
        for (i, s) in self.subs.iter().enumerate() {
            let Some(s) = s else { continue };
            if except == Some(i as u32) || s.waiting.is_some() {
                continue;
            }
            if matches!(delivery, Delivery::Presence(_)) && !s.mailbox.wants_presence() {
                continue;
            }
            match s.mailbox.push_outcome(delivery.clone()) {
                PushOutcome::Queued => f.delivered += 1,
                PushOutcome::Overflowed => {
                    f.dropped += 1;
                    f.newly_slow += 1;
                }
                PushOutcome::Dropped => f.dropped += 1,
                PushOutcome::Closed => {}
            }
        }
        f
    }

    /// Subscribers on this node and, as last told, on the others.
    pub(crate) fn presence(&self) -> Presence {
        self.members.snapshot_with(self.count, &self.remote)
    }

    /// The retained publications after `since` and whether they are all of
    /// them: see [`Subscribed::recovered`](crate::Subscribed::recovered). A
    /// `since` from another numbering (`epoch`) recovers nothing: the whole
    /// retained history, not recovered.
    pub(crate) fn catch_up(&self, since: Since) -> (Vec<Arc<crate::Publication>>, bool) {
        let r = match since.epoch {
            Some(e) if e != self.epoch => {
                let mut r = self.history.since(0, self.seq);
                r.complete = false;
                r
            }
            _ => self.history.since(since.seq, self.seq),
        };
        (r.messages, r.complete)
    }

    /// Subscribed connections here and, as last told, on other nodes.
    pub(crate) fn presence_count(&self) -> usize {
        self.count + self.remote.iter().map(|r| r.count).sum::<usize>()
    }

    /// Takes every waiting subscriber out of the waiting state, giving each
    /// its mailbox and the `since` it asked for.
    pub(crate) fn take_waiting(&mut self) -> Vec<(Arc<Mailbox>, Since)> {
        if self.waiting == 0 {
            return Vec::new();
        }
        self.waiting = 0;
        self.subs
            .iter_mut()
            .flatten()
            .filter_map(|s| Some((s.mailbox.clone(), s.waiting.take()?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slab_reuses_and_trims() {
        let t = Topic::new("t".into(), 0, true, 1);
        let mut st = t.state.lock();
        let mb = Arc::new(Mailbox::new(10, 1000));
        let slots: Vec<u32> = (0..5)
            .map(|i| st.add_subscriber(ClientId(i), mb.clone()))
            .collect();
        assert_eq!(slots, vec![0, 1, 2, 3, 4]);
        assert!(st.remove_subscriber(1, ClientId(1)));
        assert!(!st.remove_subscriber(1, ClientId(1)));
        assert!(!st.remove_subscriber(2, ClientId(9)));
        assert_eq!(st.add_subscriber(ClientId(7), mb.clone()), 1);
        assert!(st.remove_subscriber(3, ClientId(3)));
        assert!(st.remove_subscriber(4, ClientId(4)));
        // slot 3 and 4 gone from the tail; free list must not hand out 3.
        assert_eq!(st.subs.len(), 3);
        assert_eq!(st.add_subscriber(ClientId(8), mb.clone()), 3);
        assert_eq!(st.count, 5 - 3 + 2);
        for (slot, id) in [(0, 0), (1, 7), (2, 2), (3, 8)] {
            assert!(st.remove_subscriber(slot, ClientId(id)));
        }
        assert_eq!(st.count, 0);
        assert_eq!(st.subs.capacity(), 0);
    }
}
