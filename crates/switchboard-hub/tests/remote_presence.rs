//! Other nodes' subscribers as a backplane reports them
//! (`Hub::set_remote_presence`): counted by `presence`, turned into join and
//! leave events for local subscribers, forgotten when they expire.

use std::sync::Arc;

use parking_lot::Mutex;
use switchboard_hub::{
    Backplane, ClientInfo, Delivery, Hub, HubConfig, MemberCounts, PresenceKind, Publication,
};

#[derive(Default)]
struct Recorder {
    changed: Mutex<Vec<String>>,
}

impl Backplane for Recorder {
    fn publish(&self, _: &Arc<Publication>) {}
    fn presence_changed(&self, topic: &str) {
        self.changed.lock().push(topic.to_owned());
    }
}

fn counts(names: &[(&str, u32)]) -> MemberCounts {
    MemberCounts {
        names: names.iter().map(|(n, c)| (Arc::from(*n), *c)).collect(),
    }
}

fn events(c: &switchboard_hub::Client) -> Vec<(PresenceKind, String, usize)> {
    let mut v = Vec::new();
    c.mailbox().drain(&mut v);
    v.into_iter()
        .filter_map(|d| match d {
            Delivery::Presence(e) => Some((e.kind, e.name.to_string(), e.count)),
            _ => None,
        })
        .collect()
}

#[test]
fn remote_members_are_counted_announced_and_expire() {
    let bp = Arc::new(Recorder::default());
    let hub = Hub::with_backplane(HubConfig::default(), bp.clone());
    let alice = hub.connect(ClientInfo::new("alice", "test"));
    alice.subscribe("room", None).unwrap();
    assert_eq!(bp.changed.lock().as_slice(), ["room"], "a join is reported");
    let local = hub.local_presence("room").unwrap();
    assert_eq!(local.names, vec![(Arc::from("alice"), 1)]);
    assert!(hub.local_presence("elsewhere").is_none());

    hub.set_remote_presence("room", 7, Some(counts(&[("bob", 2), ("alice", 1)])), 1_000);
    let p = hub.presence("room");
    assert_eq!(p.count, 4);
    let mut names: Vec<String> = p.members.iter().map(|m| m.to_string()).collect();
    names.sort();
    assert_eq!(names, ["alice", "bob"]);
    let mut ev = events(&alice);
    ev.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        ev,
        [
            (PresenceKind::Join, "alice".into(), 4),
            (PresenceKind::Join, "bob".into(), 4),
            (PresenceKind::Join, "bob".into(), 4),
        ]
    );

    // The same report again: nothing new. One bob fewer: one leave.
    hub.set_remote_presence("room", 7, Some(counts(&[("bob", 2), ("alice", 1)])), 2_000);
    assert!(events(&alice).is_empty());
    hub.set_remote_presence("room", 7, Some(counts(&[("bob", 1), ("alice", 1)])), 2_000);
    assert_eq!(events(&alice), [(PresenceKind::Leave, "bob".into(), 3)]);

    // Not refreshed: forgotten after its expiry, with leave events.
    hub.expire_remote_presence(1_999);
    assert_eq!(hub.presence("room").count, 3);
    hub.expire_remote_presence(2_000);
    assert_eq!(hub.presence("room").count, 1);
    assert_eq!(events(&alice).len(), 2);

    // A report for a topic without local subscribers is ignored; so are all
    // once the last local subscriber left.
    hub.set_remote_presence("elsewhere", 7, Some(counts(&[("bob", 1)])), 9_000);
    assert_eq!(hub.presence("elsewhere").count, 0);
    hub.set_remote_presence("room", 8, Some(counts(&[("carol", 1)])), 9_000);
    alice.unsubscribe("room");
    let bob = hub.connect(ClientInfo::new("bob", "test"));
    bob.subscribe("room", None).unwrap();
    assert_eq!(
        hub.presence("room").count,
        1,
        "carol forgotten when the topic closed here"
    );
}
