//! A hub whose backplane numbers publications across nodes
//! (`Backplane::sequences`): nothing is delivered locally until the
//! backplane brings it back numbered; gaps and late subscribers with `since`
//! are answered from the shared history the backplane syncs.

use std::sync::Arc;

use parking_lot::Mutex;
use switchboard_hub::{
    Backplane, ClientInfo, Delivery, Hub, HubConfig, Payload, Publication, Sequenced,
    SequencedEntry, SequencedOutcome,
};

#[derive(Default)]
struct Recorder {
    published: Mutex<Vec<Arc<Publication>>>,
    opened: Mutex<Vec<String>>,
}

impl Backplane for Recorder {
    fn publish(&self, p: &Arc<Publication>) {
        self.published.lock().push(p.clone());
    }
    fn topic_opened(&self, topic: &str) {
        self.opened.lock().push(topic.to_owned());
    }
    fn sequences(&self) -> bool {
        true
    }
}

fn hub() -> (Hub, Arc<Recorder>) {
    let bp = Arc::new(Recorder::default());
    (Hub::with_backplane(HubConfig::default(), bp.clone()), bp)
}

fn entry(seq: u64) -> SequencedEntry {
    SequencedEntry {
        seq,
        payload: Payload::text(format!("m{seq}")),
        from: Some("x".into()),
        timestamp_ms: seq,
    }
}

fn deliver(hub: &Hub, topic: &str, epoch: u64, seq: u64) -> SequencedOutcome {
    let e = entry(seq);
    hub.deliver_sequenced(
        topic,
        Sequenced { epoch, seq },
        e.payload,
        e.from,
        e.timestamp_ms,
    )
    .unwrap()
}

fn drain(c: &switchboard_hub::Client) -> Vec<Delivery> {
    let mut v = Vec::new();
    c.mailbox().drain(&mut v);
    v
}

fn seqs(v: &[Delivery]) -> Vec<u64> {
    v.iter()
        .filter_map(|d| match d {
            Delivery::Message(p) => Some(p.seq),
            _ => None,
        })
        .collect()
}

#[test]
fn local_publications_go_to_the_backplane_unnumbered() {
    let (hub, bp) = hub();
    let a = hub.connect(ClientInfo::new("a", "test"));
    let sub = a.subscribe("t", None).unwrap();
    assert!(!sub.pending, "no `since`: nothing to wait for");
    assert_eq!(a.publish("t", Payload::text("hi")).unwrap(), 0);
    assert!(
        drain(&a).is_empty(),
        "delivered only when it comes back numbered"
    );
    let published = bp.published.lock();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].seq, 0);
    assert_eq!(&*published[0].topic, "t");
    assert_eq!(bp.opened.lock().as_slice(), ["t"]);
}

#[test]
fn in_order_delivery_duplicates_and_gaps() {
    let (hub, _bp) = hub();
    let a = hub.connect(ClientInfo::new("a", "test"));
    a.subscribe("t", None).unwrap();
    hub.sync_topic("t", 7, vec![entry(1), entry(2)]);
    assert_eq!(
        seqs(&drain(&a)),
        vec![1, 2],
        "the sync delivers what is newer"
    );
    assert_eq!(deliver(&hub, "t", 7, 3), SequencedOutcome::Delivered);
    assert_eq!(deliver(&hub, "t", 7, 3), SequencedOutcome::Ignored);
    assert_eq!(deliver(&hub, "t", 7, 2), SequencedOutcome::Ignored);
    assert_eq!(deliver(&hub, "t", 7, 5), SequencedOutcome::NeedsSync);
    assert_eq!(seqs(&drain(&a)), vec![3]);
    // The repair: 4 and 5 from the shared history, in order.
    hub.sync_topic("t", 7, (1..=5).map(entry).collect());
    assert_eq!(seqs(&drain(&a)), vec![4, 5]);
    assert_eq!(hub.last_seq("t"), 5);
    assert_eq!(deliver(&hub, "nobody", 7, 1), SequencedOutcome::Ignored);
}

#[test]
fn subscribe_with_since_waits_for_the_sync() {
    let (hub, _bp) = hub();
    let a = hub.connect(ClientInfo::new("a", "test"));
    let sub = a.subscribe("t", Some(2)).unwrap();
    assert!(sub.pending && sub.replay.is_empty());
    // A live publication before the sync is kept but not given to the
    // waiting subscriber ahead of its catch-up.
    assert_eq!(deliver(&hub, "t", 9, 6), SequencedOutcome::Delivered);
    assert!(drain(&a).is_empty());
    hub.sync_topic("t", 9, (1..=5).map(entry).collect());
    let got = drain(&a);
    assert_eq!(got.len(), 1, "{got:?}");
    let Delivery::CatchUp(c) = &got[0] else {
        panic!("{got:?}")
    };
    assert_eq!(&*c.topic, "t");
    assert_eq!(c.since, 2);
    assert!(c.subscribed.recovered);
    assert_eq!(c.subscribed.last_seq, 6);
    let replay: Vec<u64> = c.subscribed.replay.iter().map(|p| p.seq).collect();
    assert_eq!(replay, vec![3, 4, 5, 6]);
    assert_eq!(c.subscribed.presence.count, 1);
    // Live from here on; a second subscriber is answered at once.
    assert_eq!(deliver(&hub, "t", 9, 7), SequencedOutcome::Delivered);
    assert_eq!(seqs(&drain(&a)), vec![7]);
    let b = hub.connect(ClientInfo::new("b", "test"));
    let sub = b.subscribe("t", Some(5)).unwrap();
    assert!(!sub.pending && sub.recovered);
    assert_eq!(
        sub.replay.iter().map(|p| p.seq).collect::<Vec<_>>(),
        vec![6, 7]
    );
}

#[test]
fn a_catch_up_beyond_the_shared_history_is_not_recovered() {
    let (hub, _bp) = hub();
    let a = hub.connect(ClientInfo::new("a", "test"));
    assert!(a.subscribe("t", Some(1)).unwrap().pending);
    hub.sync_topic("t", 1, (5..=8).map(entry).collect());
    let got = drain(&a);
    let Delivery::CatchUp(c) = &got[0] else {
        panic!("{got:?}")
    };
    assert!(!c.subscribed.recovered, "2..=4 are gone");
    assert_eq!(c.subscribed.replay.len(), 4);
}

#[test]
fn a_restarted_numbering_replaces_history_and_delivers_the_new_one() {
    let (hub, _bp) = hub();
    let a = hub.connect(ClientInfo::new("a", "test"));
    a.subscribe("t", None).unwrap();
    hub.sync_topic("t", 1, (1..=3).map(entry).collect());
    drain(&a);
    // The shared history expired; publishing started again at 1, epoch 2.
    assert_eq!(deliver(&hub, "t", 2, 1), SequencedOutcome::NeedsSync);
    hub.sync_topic("t", 2, vec![entry(1)]);
    assert_eq!(seqs(&drain(&a)), vec![1]);
    assert_eq!(hub.last_seq("t"), 1);
    let r = hub.history("t", 0);
    assert_eq!(r.messages.len(), 1);
}

#[test]
fn a_topic_reopened_is_synced_again_and_give_up_answers_from_local_history() {
    let (hub, bp) = hub();
    let a = hub.connect(ClientInfo::new("a", "test"));
    a.subscribe("t", None).unwrap();
    hub.sync_topic("t", 1, (1..=3).map(entry).collect());
    a.unsubscribe("t");
    let b = hub.connect(ClientInfo::new("b", "test"));
    assert!(
        b.subscribe("t", Some(1)).unwrap().pending,
        "reopened: not synced"
    );
    assert_eq!(bp.opened.lock().len(), 2);
    hub.give_up_sync("t");
    let got = drain(&b);
    let Delivery::CatchUp(c) = &got[0] else {
        panic!("{got:?}")
    };
    assert_eq!(
        c.subscribed
            .replay
            .iter()
            .map(|p| p.seq)
            .collect::<Vec<_>>(),
        vec![2, 3]
    );
}

#[test]
fn a_waiting_subscriber_that_leaves_is_forgotten() {
    let (hub, _bp) = hub();
    let a = hub.connect(ClientInfo::new("a", "test"));
    let b = hub.connect(ClientInfo::new("b", "test"));
    b.subscribe("t", None).unwrap();
    assert!(a.subscribe("t", Some(0)).unwrap().pending);
    drop(a);
    hub.sync_topic("t", 1, vec![entry(1)]);
    assert_eq!(seqs(&drain(&b)).len(), 1);
}
