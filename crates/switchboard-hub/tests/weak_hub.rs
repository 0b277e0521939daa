//! `WeakHub`: a backplane task's non-owning handle on the hub.

use std::sync::{Arc, Mutex};

use switchboard_hub::*;

/// A backplane that keeps a `WeakHub` to its own hub, as a network task would.
#[derive(Default)]
struct SelfReferencing {
    hub: Mutex<WeakHub>,
}

impl Backplane for SelfReferencing {
    fn publish(&self, _publication: &Arc<Publication>) {}
}

#[test]
fn weak_hub_upgrades_while_the_hub_lives_and_does_not_keep_it_alive() {
    assert!(WeakHub::default().upgrade().is_none());

    let bp = Arc::new(SelfReferencing::default());
    let hub = Hub::with_backplane(HubConfig::default(), bp.clone());
    *bp.hub.lock().unwrap() = hub.downgrade();
    let weak = bp.hub.lock().unwrap().clone();

    let c = hub.connect(ClientInfo::new("c", "websocket"));
    c.subscribe("t", None).unwrap();
    let seq = weak
        .upgrade()
        .expect("hub alive")
        .deliver_remote("t", Payload::text("x"), Some("far".into()), 7)
        .unwrap();
    assert_eq!(seq, 1);
    let mut out = Vec::new();
    c.mailbox().drain(&mut out);
    assert_eq!(out.len(), 1);

    // A client keeps the hub alive; the weak handle and the backplane do not.
    drop(hub);
    assert!(weak.upgrade().is_some());
    drop(c);
    assert!(weak.upgrade().is_none());
    // The hub released its backplane: only the test's `bp` is left.
    assert_eq!(Arc::strong_count(&bp), 1);
    assert!(format!("{weak:?}").contains("alive: false"));
}
