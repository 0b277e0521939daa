//! Which topics this node wants from Redis and which ones Redis has
//! confirmed: the set of *open* topics (with local subscribers, maintained by
//! `topic_opened`/`topic_closed` under the hub's topic locks), the set of
//! *subscribed* ones (maintained by the subscriber link), and the topics
//! whose two states may differ, so that the link only looks at those.
//!
//! Reconciling states rather than replaying open/close events gives exactly
//! one `SUBSCRIBE` per topic per connection, however fast a topic flips, and
//! makes resubscribing after a reconnect the same operation.

use std::collections::HashSet;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

#[derive(Debug, Default)]
struct State {
    open: HashSet<Arc<str>>,
    subscribed: HashSet<Arc<str>>,
    /// Topics whose open/subscribed states may differ (only tracked while
    /// the subscriber link is connected; a reconnect looks at every topic).
    dirty: HashSet<Arc<str>>,
    /// Topics (re)opened since the last plan: with shared history, the hub
    /// needs their history synced again even when the subscription never
    /// changed (closed and reopened between two plans).
    reopened: HashSet<Arc<str>>,
    tracking: bool,
}

/// The topics' states, shared by the `Backplane` calls and the subscriber link.
#[derive(Debug, Default)]
pub(crate) struct Topics {
    state: Mutex<State>,
    changed: Notify,
}

/// What the subscriber link has to send.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) subscribe: Vec<Arc<str>>,
    pub(crate) unsubscribe: Vec<Arc<str>>,
    /// Reopened topics whose subscription stands: to sync again (those in
    /// `subscribe` are synced once confirmed).
    pub(crate) sync: Vec<Arc<str>>,
}

impl Plan {
    pub(crate) fn is_empty(&self) -> bool {
        self.subscribe.is_empty() && self.unsubscribe.is_empty() && self.sync.is_empty()
    }
}

impl Topics {
    /// `topic` got its first local subscriber.
    pub(crate) fn open(&self, topic: &str) {
        self.update(topic, true);
    }

    /// `topic` lost its last local subscriber.
    pub(crate) fn close(&self, topic: &str) {
        self.update(topic, false);
    }

    fn update(&self, topic: &str, open: bool) {
        let mut st = self.state.lock();
        let topic: Arc<str> = Arc::from(topic);
        if open {
            st.open.insert(topic.clone());
            if st.tracking {
                st.reopened.insert(topic.clone());
            }
        } else {
            st.open.remove(&topic);
        }
        if st.tracking {
            st.dirty.insert(topic);
            drop(st);
            self.changed.notify_one();
        }
    }

    /// Whether `topic` has local subscribers.
    pub(crate) fn is_open(&self, topic: &str) -> bool {
        self.state.lock().open.contains(topic)
    }

    /// Whether Redis confirmed the subscription to `topic`.
    pub(crate) fn is_subscribed(&self, topic: &str) -> bool {
        self.state.lock().subscribed.contains(topic)
    }

    /// The topics with local subscribers.
    pub(crate) fn open_topics(&self) -> Vec<Arc<str>> {
        self.state.lock().open.iter().cloned().collect()
    }

    /// Numbers of open and of subscribed topics.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let st = self.state.lock();
        (st.open.len(), st.subscribed.len())
    }

    /// The subscriber link connected: nothing is subscribed yet, every open
    /// topic needs a `SUBSCRIBE`, changes are tracked from now on.
    pub(crate) fn connected(&self) {
        let mut st = self.state.lock();
        st.subscribed.clear();
        st.dirty = st.open.clone();
        st.reopened = HashSet::new();
        st.tracking = true;
    }

    /// The subscriber link lost its connection (or stopped).
    pub(crate) fn disconnected(&self) {
        let mut st = self.state.lock();
        st.subscribed = HashSet::new();
        st.dirty = HashSet::new();
        st.reopened = HashSet::new();
        st.tracking = false;
    }

    /// Takes the pending differences: open topics to subscribe, closed ones
    /// to unsubscribe.
    pub(crate) fn plan(&self) -> Plan {
        let mut st = self.state.lock();
        let mut plan = Plan::default();
        let st = &mut *st;
        for topic in st.dirty.drain() {
            match (st.open.contains(&topic), st.subscribed.contains(&topic)) {
                (true, false) => plan.subscribe.push(topic),
                (false, true) => plan.unsubscribe.push(topic),
                _ => {}
            }
        }
        for topic in st.reopened.drain() {
            if st.open.contains(&topic) && st.subscribed.contains(&topic) {
                plan.sync.push(topic);
            }
        }
        plan
    }

    /// Redis confirmed these subscriptions (`subscribed = true`) or
    /// unsubscriptions. Topics whose wanted state changed meanwhile are
    /// marked again for the next plan.
    pub(crate) fn confirmed(&self, topics: &[Arc<str>], subscribed: bool) {
        let mut st = self.state.lock();
        for topic in topics {
            if subscribed {
                st.subscribed.insert(topic.clone());
            } else {
                st.subscribed.remove(topic);
            }
            if st.open.contains(topic) != subscribed {
                st.dirty.insert(topic.clone());
            }
        }
    }

    /// Resolves when `open`/`close` changed something since the last call
    /// (a change made while nobody waits is remembered).
    pub(crate) async fn changed(&self) {
        self.changed.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[Arc<str>]) -> Vec<&str> {
        let mut v: Vec<&str> = v.iter().map(|s| &**s).collect();
        v.sort();
        v
    }

    #[test]
    fn reconciles_states_not_events() {
        let t = Topics::default();
        t.open("a");
        t.open("b");
        t.close("b");
        assert!(t.plan().is_empty(), "not tracking while disconnected");
        t.connected();
        let plan = t.plan();
        assert_eq!(names(&plan.subscribe), ["a"]);
        t.confirmed(&plan.subscribe, true);
        assert_eq!(t.counts(), (1, 1));
        assert!(t.plan().is_empty());

        // Flipping fast gives one command for the final state, or none.
        t.close("a");
        t.open("a");
        t.open("c");
        t.close("c");
        t.open("d");
        let plan = t.plan();
        assert_eq!(names(&plan.subscribe), ["d"]);
        assert!(plan.unsubscribe.is_empty());
        assert_eq!(names(&plan.sync), ["a"], "reopened: its history again");

        // Closed while its SUBSCRIBE was in flight: unsubscribed next.
        t.close("d");
        t.confirmed(&plan.subscribe, true);
        let plan = t.plan();
        assert_eq!(names(&plan.unsubscribe), ["d"]);
        t.confirmed(&plan.unsubscribe, false);
        assert!(t.is_subscribed("a") && !t.is_subscribed("d"));
        assert_eq!(t.counts(), (1, 1));

        // A reconnect resubscribes every open topic.
        t.disconnected();
        assert_eq!(t.counts(), (1, 0));
        t.connected();
        assert_eq!(names(&t.plan().subscribe), ["a"]);
    }
}
