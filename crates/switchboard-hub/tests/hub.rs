//! Integration tests of the hub: ordering, concurrency, recovery, slow
//! consumers, presence, lifecycle, validation, authorization, wake-ups.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;

use switchboard_hub::*;

fn cfg() -> HubConfig {
    HubConfig::default()
}

fn drain(c: &Client) -> Vec<Delivery> {
    let mut out = Vec::new();
    c.mailbox().drain(&mut out);
    out
}

fn messages(ds: &[Delivery]) -> Vec<Arc<Publication>> {
    ds.iter()
        .filter_map(|d| match d {
            Delivery::Message(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

fn seqs(ps: &[Arc<Publication>]) -> Vec<u64> {
    ps.iter().map(|p| p.seq).collect()
}

fn presence_events(ds: &[Delivery]) -> Vec<(PresenceKind, String, usize)> {
    ds.iter()
        .filter_map(|d| match d {
            Delivery::Presence(e) => Some((e.kind, e.name.to_string(), e.count)),
            _ => None,
        })
        .collect()
}

#[test]
fn order_per_topic_across_many_subscribers() {
    let hub = Hub::new(HubConfig {
        mailbox_max_messages: 10_000,
        presence_events: false,
        ..cfg()
    });
    let clients: Vec<Client> = (0..50)
        .map(|i| hub.connect(ClientInfo::new(format!("c{i}"), "websocket")))
        .collect();
    for c in &clients {
        let s = c.subscribe("news", None).unwrap();
        assert_eq!(s.last_seq, 0);
        assert!(s.replay.is_empty());
    }
    for i in 1..=1000u64 {
        let seq = hub
            .publish("news", Payload::text(i.to_string()), None)
            .unwrap();
        assert_eq!(seq, i);
    }
    let first = messages(&drain(&clients[0]));
    assert_eq!(seqs(&first), (1..=1000).collect::<Vec<_>>());
    for c in &clients[1..] {
        let got = messages(&drain(c));
        assert_eq!(got.len(), 1000);
        // Same Arc shared by every recipient (encode once).
        for (a, b) in first.iter().zip(&got) {
            assert!(Arc::ptr_eq(a, b));
        }
    }
    let st = hub.stats();
    assert_eq!(st.published, 1000);
    assert_eq!(st.delivered, 50_000);
    assert_eq!(st.dropped_deliveries, 0);
}

#[test]
fn encoding_cache_shared_between_recipients() {
    let hub = Hub::new(cfg());
    let a = hub.connect(ClientInfo::new("a", "websocket"));
    let b = hub.connect(ClientInfo::new("b", "websocket"));
    a.subscribe("t", None).unwrap();
    b.subscribe("t", None).unwrap();
    drain(&a);
    hub.publish("t", Payload::binary(&b"\x01\x02"[..]), None)
        .unwrap();
    let calls = AtomicUsize::new(0);
    let mut encoded = Vec::new();
    for c in [&a, &b] {
        for p in messages(&drain(c)) {
            encoded.push(p.encoded.get_or_init(Encoding::WsRaw, || {
                calls.fetch_add(1, Ordering::SeqCst);
                p.payload.data.clone()
            }));
        }
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(encoded.len(), 2);
    assert_eq!(encoded[0].as_ptr(), encoded[1].as_ptr());
}

#[test]
fn concurrent_publishers_every_subscriber_sees_same_sequence() {
    const THREADS: usize = 4;
    const PER: usize = 2000;
    let hub = Hub::new(HubConfig {
        mailbox_max_messages: 100_000,
        mailbox_max_bytes: 64 << 20,
        ..cfg()
    });
    let subs: Vec<Client> = (0..8)
        .map(|i| {
            let c = hub.connect(ClientInfo::new(format!("s{i}"), "stomp"));
            c.subscribe("room", None).unwrap();
            c
        })
        .collect();
    for s in &subs {
        drain(s); // presence events of the setup
    }
    // Half the subscribers drain concurrently while publishing happens.
    let collected: Vec<Mutex<Vec<Delivery>>> = subs.iter().map(|_| Mutex::default()).collect();
    let done = AtomicUsize::new(0);
    thread::scope(|s| {
        for t in 0..THREADS {
            let hub = hub.clone();
            let done = &done;
            s.spawn(move || {
                let name: Arc<str> = format!("p{t}").into();
                for i in 0..PER {
                    hub.publish(
                        "room",
                        Payload::text(format!("{t}:{i}")),
                        Some(name.clone()),
                    )
                    .unwrap();
                }
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
        for (c, out) in subs.iter().zip(&collected).step_by(2) {
            let done = &done;
            s.spawn(move || loop {
                let finished = done.load(Ordering::SeqCst) == THREADS;
                c.mailbox().drain(&mut out.lock().unwrap());
                if finished {
                    break;
                }
                thread::yield_now();
            });
        }
    });
    let mut reference: Option<Vec<(u64, String)>> = None;
    for (c, out) in subs.iter().zip(&collected) {
        let mut all = std::mem::take(&mut *out.lock().unwrap());
        c.mailbox().drain(&mut all);
        let got: Vec<(u64, String)> = messages(&all)
            .iter()
            .map(|p| (p.seq, p.payload.as_str().unwrap().to_owned()))
            .collect();
        assert_eq!(got.len(), THREADS * PER);
        for (i, (seq, _)) in got.iter().enumerate() {
            assert_eq!(*seq, i as u64 + 1);
        }
        // Per publisher, its own messages are in publish order.
        for t in 0..THREADS {
            let mine: Vec<&String> = got
                .iter()
                .map(|(_, s)| s)
                .filter(|s| s.starts_with(&format!("{t}:")))
                .collect();
            let expect: Vec<String> = (0..PER).map(|i| format!("{t}:{i}")).collect();
            assert_eq!(mine, expect.iter().collect::<Vec<_>>());
        }
        match &reference {
            None => reference = Some(got),
            Some(r) => assert_eq!(r, &got),
        }
        assert!(!c.mailbox().is_overflowed());
    }
}

#[test]
fn subscribe_since_has_no_gap_and_no_duplicate_while_publishing() {
    const N: u64 = 20_000;
    let hub = Hub::new(HubConfig {
        history_size: 50_000,
        mailbox_max_messages: 1_000_000,
        mailbox_max_bytes: 1 << 30,
        presence_events: false,
        ..cfg()
    });
    hub.publish("feed", Payload::text("warmup"), None).unwrap();
    let joiners: Vec<(Client, Subscribed, u64)> = thread::scope(|s| {
        let h = hub.clone();
        s.spawn(move || {
            for i in 0..N {
                h.publish("feed", Payload::text(i.to_string()), None)
                    .unwrap();
            }
        });
        let mut joiners = Vec::new();
        for k in 0..30 {
            let c = hub.connect(ClientInfo::new(format!("j{k}"), "sockjs"));
            let last = hub.last_seq("feed");
            // Alternate between recovering from some point and a plain join.
            let since = if k % 3 == 2 {
                None
            } else {
                Some(last.saturating_sub(k * 7))
            };
            let sub = c.subscribe("feed", since).unwrap();
            let start = since.unwrap_or(sub.last_seq);
            joiners.push((c, sub, start));
            thread::yield_now();
        }
        joiners
    });
    let last = hub.last_seq("feed");
    assert_eq!(last, N + 1);
    for (c, sub, start) in &joiners {
        let mut got = seqs(&sub.replay);
        if sub.replay.is_empty() {
            assert!(sub.last_seq >= *start);
        } else {
            assert!(sub.recovered);
        }
        got.extend(seqs(&messages(&drain(c))));
        assert_eq!(
            got,
            (start + 1..=last).collect::<Vec<_>>(),
            "joiner {}",
            c.info().name
        );
    }
}

#[test]
fn topics_without_history_number_and_deliver_but_keep_nothing() {
    let hub = Hub::new(HubConfig {
        history_size: 5,
        keeps_history: |topic| !topic.starts_with('$'),
        ..cfg()
    });
    let c = hub.connect(ClientInfo::new("sub", "websocket"));
    c.subscribe("$reports", None).unwrap();
    for i in 1..=3 {
        assert_eq!(
            hub.publish("$reports", Payload::text(format!("r{i}")), None),
            Ok(i)
        );
        hub.publish("chat", Payload::text(format!("m{i}")), None)
            .unwrap();
    }
    assert_eq!(seqs(&messages(&drain(&c))), vec![1, 2, 3]);
    let r = hub.history("$reports", 0);
    assert!(r.messages.is_empty() && !r.complete);
    let late = hub.connect(ClientInfo::new("late", "websocket"));
    let s = late.subscribe("$reports", Some(1)).unwrap();
    assert!(!s.recovered && s.replay.is_empty());
    assert_eq!(s.last_seq, 3);
    // Other topics of the same hub keep theirs.
    let r = hub.history("chat", 0);
    assert!(r.complete);
    assert_eq!(seqs(&r.messages), vec![1, 2, 3]);
}

#[test]
fn history_eviction_reports_unrecovered() {
    let hub = Hub::new(HubConfig {
        history_size: 5,
        ..cfg()
    });
    for i in 1..=10 {
        hub.publish("h", Payload::text(format!("m{i}")), None)
            .unwrap();
    }
    let c = hub.connect(ClientInfo::new("late", "websocket"));
    let s = c.subscribe("h", Some(2)).unwrap();
    assert!(!s.recovered);
    assert_eq!(seqs(&s.replay), vec![6, 7, 8, 9, 10]);
    assert_eq!(s.last_seq, 10);

    let c2 = hub.connect(ClientInfo::new("ok", "websocket"));
    let s = c2.subscribe("h", Some(5)).unwrap();
    assert!(s.recovered);
    assert_eq!(seqs(&s.replay), vec![6, 7, 8, 9, 10]);

    let c3 = hub.connect(ClientInfo::new("cur", "websocket"));
    let s = c3.subscribe("h", Some(10)).unwrap();
    assert!(s.recovered && s.replay.is_empty());

    // since ahead of the topic: topic was recreated, numbering restarted.
    let c4 = hub.connect(ClientInfo::new("future", "websocket"));
    let s = c4.subscribe("h", Some(99)).unwrap();
    assert!(!s.recovered);
    assert_eq!(s.replay.len(), 5);

    let r = hub.history("h", 0);
    assert!(!r.complete);
    assert_eq!(seqs(&r.messages), vec![6, 7, 8, 9, 10]);
    let r = hub.history("h", 7);
    assert!(r.complete);
    assert_eq!(seqs(&r.messages), vec![8, 9, 10]);
    let r = hub.history("unknown", 0);
    assert!(r.complete && r.messages.is_empty());
    assert!(!hub.history("unknown", 3).complete);

    // History off: any since > 0 with past messages is a gap.
    let hub = Hub::new(HubConfig {
        history_size: 0,
        ..cfg()
    });
    hub.publish("h", Payload::text("x"), None).unwrap();
    let c = hub.connect(ClientInfo::new("a", "websocket"));
    let s = c.subscribe("h", Some(0)).unwrap();
    assert!(!s.recovered);
    assert!(s.replay.is_empty());
}

#[test]
fn slow_consumer_overflows_and_others_get_everything() {
    let hub = Hub::new(HubConfig {
        mailbox_max_messages: 10,
        presence_events: false,
        ..cfg()
    });
    let slow = hub.connect(ClientInfo::new("slow", "websocket"));
    let fast = hub.connect(ClientInfo::new("fast", "websocket"));
    slow.subscribe("t", None).unwrap();
    fast.subscribe("t", None).unwrap();
    let mut fast_got = Vec::new();
    for i in 0..100 {
        hub.publish("t", Payload::text(format!("{i}")), None)
            .unwrap();
        fast.mailbox().drain(&mut fast_got);
        assert_eq!(slow.mailbox().is_overflowed(), i >= 10);
    }
    assert_eq!(seqs(&messages(&fast_got)), (1..=100).collect::<Vec<_>>());
    assert!(!fast.mailbox().is_overflowed());
    let mb = slow.mailbox();
    assert!(mb.is_overflowed());
    assert_eq!(mb.len(), 10); // memory bounded
    assert_eq!(mb.dropped(), 90);
    let st = hub.stats();
    assert_eq!(st.dropped_slow_consumers, 1);
    assert_eq!(st.dropped_deliveries, 90);
    assert_eq!(st.delivered, 110);
    // The queued prefix is intact and ordered.
    assert_eq!(seqs(&messages(&drain(&slow))), (1..=10).collect::<Vec<_>>());
    // Still dropped after draining: the stream has a gap, transport must close.
    hub.publish("t", Payload::text("x"), None).unwrap();
    assert!(slow.mailbox().is_empty());
}

#[test]
fn slow_consumer_byte_limit() {
    let hub = Hub::new(HubConfig {
        mailbox_max_bytes: 10_000,
        presence_events: false,
        ..cfg()
    });
    let slow = hub.connect(ClientInfo::new("slow", "websocket"));
    slow.subscribe("big", None).unwrap();
    let payload = Payload::binary(vec![7u8; 1000]);
    for _ in 0..50 {
        hub.publish("big", payload.clone(), None).unwrap();
    }
    let mb = slow.mailbox();
    assert!(mb.is_overflowed());
    assert!(mb.queued_bytes() <= 10_000);
    assert_eq!(mb.len() as u64 + mb.dropped(), 50);
    assert!(mb.len() >= 8);
}

#[test]
fn presence_join_leave_counts_and_events() {
    let hub = Hub::new(cfg());
    let a = hub.connect(ClientInfo::new("alice", "websocket"));
    let b = hub.connect(ClientInfo::new("bob", "socket.io"));
    let a2 = hub.connect(ClientInfo::new("alice", "stomp"));

    let s = a.subscribe("room", None).unwrap();
    assert_eq!(s.presence.count, 1);
    assert_eq!(s.presence.members, vec![Arc::<str>::from("alice")]);
    let s = b.subscribe("room", None).unwrap();
    assert_eq!(s.presence.count, 2);
    let s = a2.subscribe("room", None).unwrap();
    assert_eq!(s.presence.count, 3);
    let mut names: Vec<String> = s.presence.members.iter().map(|m| m.to_string()).collect();
    names.sort();
    assert_eq!(names, vec!["alice", "bob"]);

    assert_eq!(
        presence_events(&drain(&a)),
        vec![
            (PresenceKind::Join, "bob".into(), 2),
            (PresenceKind::Join, "alice".into(), 3)
        ]
    );
    assert_eq!(
        presence_events(&drain(&b)),
        vec![(PresenceKind::Join, "alice".into(), 3)]
    );
    assert!(drain(&a2).is_empty()); // the joiner gets no event about itself

    assert!(b.unsubscribe("room"));
    assert!(!b.unsubscribe("room"));
    assert_eq!(
        presence_events(&drain(&a)),
        vec![(PresenceKind::Leave, "bob".into(), 2)]
    );
    assert!(drain(&b).is_empty());
    let p = hub.presence("room");
    assert_eq!(p.count, 2);
    assert_eq!(p.members, vec![Arc::<str>::from("alice")]);

    drop(a2);
    assert_eq!(
        presence_events(&drain(&a)),
        vec![(PresenceKind::Leave, "alice".into(), 1)]
    );
    assert_eq!(hub.presence("room").members.len(), 1);
    drop(a);
    assert_eq!(hub.presence("room"), Presence::default());
}

#[test]
fn subscribe_is_idempotent() {
    let hub = Hub::new(cfg());
    let a = hub.connect(ClientInfo::new("a", "websocket"));
    let b = hub.connect(ClientInfo::new("b", "websocket"));
    b.subscribe("t", None).unwrap();
    let first = a.subscribe("t", None).unwrap();
    assert!(!first.already_subscribed);
    hub.publish("t", Payload::text("1"), None).unwrap();
    let again = a.subscribe("t", Some(0)).unwrap();
    assert!(again.already_subscribed);
    assert!(again.replay.is_empty());
    assert_eq!(again.last_seq, 1);
    assert_eq!(again.presence.count, 2);
    assert_eq!(a.subscriptions(), vec![Arc::<str>::from("t")]);
    hub.publish("t", Payload::text("2"), None).unwrap();
    assert_eq!(seqs(&messages(&drain(&a))), vec![1, 2]);
    // b saw exactly one join.
    assert_eq!(presence_events(&drain(&b)).len(), 1);
    assert!(a.unsubscribe("t"));
    assert!(a.subscriptions().is_empty());
}

#[test]
fn drop_cleans_up_and_topics_are_removed_when_empty() {
    let hub = Hub::new(HubConfig {
        max_idle_topics: 0,
        ..cfg()
    });
    let watcher = hub.connect(ClientInfo::new("w", "websocket"));
    watcher.subscribe("a", None).unwrap();
    {
        let c = hub.connect(ClientInfo::new("gone", "stomp"));
        for t in ["a", "b", "c"] {
            c.subscribe(t, None).unwrap();
        }
        assert_eq!(hub.stats().clients, 2);
        assert_eq!(hub.stats().topics, 3);
        let mut ts = hub.topics();
        ts.sort();
        assert_eq!(ts, vec![("a".into(), 2), ("b".into(), 1), ("c".into(), 1)]);
    }
    assert_eq!(hub.stats().clients, 1);
    assert_eq!(hub.topics(), vec![("a".into(), 1)]);
    assert_eq!(
        presence_events(&drain(&watcher)),
        vec![
            (PresenceKind::Join, "gone".into(), 2),
            (PresenceKind::Leave, "gone".into(), 1)
        ]
    );
    let mb = watcher.mailbox().clone();
    drop(watcher);
    assert!(mb.is_closed());
    let st = hub.stats();
    assert_eq!((st.topics, st.idle_topics, st.clients), (0, 0, 0));
    // Publishing to a topic nobody listens to leaves nothing behind.
    hub.publish("nobody", Payload::text("x"), None).unwrap();
    assert_eq!(hub.stats().topics, 0);
}

#[test]
fn idle_topics_keep_history_and_seq_up_to_a_bound() {
    let hub = Hub::new(HubConfig {
        max_idle_topics: 4,
        shards: 1,
        ..cfg()
    });
    let c = hub.connect(ClientInfo::new("c", "websocket"));
    c.subscribe("keep", None).unwrap();
    hub.publish("keep", Payload::text("1"), None).unwrap();
    drop(c);
    let st = hub.stats();
    assert_eq!((st.topics, st.idle_topics), (1, 1));
    // Still there: seq continues, history recoverable.
    assert_eq!(hub.publish("keep", Payload::text("2"), None).unwrap(), 2);
    let c = hub.connect(ClientInfo::new("c", "websocket"));
    let s = c.subscribe("keep", Some(0)).unwrap();
    assert!(s.recovered);
    assert_eq!(seqs(&s.replay), vec![1, 2]);
    assert_eq!(hub.stats().idle_topics, 0);

    for i in 0..10 {
        hub.publish(&format!("t{i}"), Payload::text("x"), None)
            .unwrap();
    }
    let st = hub.stats();
    assert_eq!(st.idle_topics, 4);
    assert_eq!(st.topics, 5); // 4 idle + "keep"
    let mut names: Vec<String> = hub.topics().iter().map(|(n, _)| n.to_string()).collect();
    names.sort();
    assert_eq!(names, vec!["keep", "t6", "t7", "t8", "t9"]);
    // An evicted topic restarts at 1.
    assert_eq!(hub.publish("t0", Payload::text("y"), None).unwrap(), 1);
    drop(c);
    assert_eq!(hub.stats().idle_topics, 4);
}

#[test]
fn invalid_topics_are_rejected() {
    let hub = Hub::new(cfg());
    let c = hub.connect(ClientInfo::new("c", "websocket"));
    let long = "x".repeat(257);
    for bad in ["", "a\0b", "tab\there", "nl\n", long.as_str(), "del\u{7f}"] {
        assert_eq!(c.subscribe(bad, None).unwrap_err(), HubError::InvalidTopic);
        assert_eq!(
            c.publish(bad, Payload::text("x")).unwrap_err(),
            HubError::InvalidTopic
        );
        assert_eq!(
            hub.publish(bad, Payload::text("x"), None).unwrap_err(),
            HubError::InvalidTopic
        );
    }
    assert!(c.subscribe(&"x".repeat(256), None).is_ok());
    assert!(c.subscribe("ünïcödé/topic with spaces", None).is_ok());
    assert_eq!(hub.stats().topics, 2);
}

#[test]
fn authorize_hook_forbids() {
    let config = cfg().with_authorize(|info, topic, action| {
        if topic.starts_with("private/") {
            return &*info.name == "admin";
        }
        !(topic == "readonly" && action == Action::Publish)
    });
    let hub = Hub::new(config);
    let user = hub.connect(ClientInfo::new("user", "websocket"));
    let admin = hub.connect(ClientInfo::new("admin", "stomp"));
    assert_eq!(
        user.subscribe("private/x", None).unwrap_err(),
        HubError::Forbidden
    );
    assert_eq!(
        user.publish("private/x", Payload::text("x")).unwrap_err(),
        HubError::Forbidden
    );
    assert!(admin.subscribe("private/x", None).is_ok());
    assert!(user.subscribe("readonly", None).is_ok());
    assert_eq!(
        user.publish("readonly", Payload::text("x")).unwrap_err(),
        HubError::Forbidden
    );
    // Server-side publish is not subject to the hook.
    assert_eq!(hub.publish("readonly", Payload::text("x"), None), Ok(1));
    assert_eq!(user.subscriptions(), vec![Arc::<str>::from("readonly")]);
    assert_eq!(HubError::Forbidden.to_string(), "forbidden");
}

#[test]
fn grants_limit_a_client_before_the_hook() {
    // The hook allows everything but "closed"; the token allows reading
    // "news.*" and writing "chat" only.
    let hub = Hub::new(cfg().with_authorize(|_, topic, _| topic != "closed"));
    let grants = Grants::new(|topic, action| match action {
        Action::Subscribe => topic.starts_with("news.") || topic == "chat" || topic == "closed",
        Action::Publish => topic == "chat",
    });
    let limited =
        hub.connect(ClientInfo::new("alice", "websocket").with_user("alice", Some(grants.clone())));
    assert_eq!(limited.info().user().map(|u| &**u), Some("alice"));
    assert!(limited.subscribe("news.today", None).is_ok());
    assert!(limited.subscribe("chat", None).is_ok());
    assert_eq!(
        limited.subscribe("other", None).unwrap_err(),
        HubError::Forbidden
    );
    assert_eq!(
        limited
            .publish("news.today", Payload::text("x"))
            .unwrap_err(),
        HubError::Forbidden
    );
    assert_eq!(limited.publish("chat", Payload::text("x")), Ok(1));
    // Both must agree: the grants allow "closed", the hook does not.
    assert_eq!(
        limited.subscribe("closed", None).unwrap_err(),
        HubError::Forbidden
    );
    // A client without grants is only subject to the hook.
    let free = hub.connect(ClientInfo::new("bob", "websocket"));
    assert!(free.subscribe("other", None).is_ok());
    assert_eq!(grants, grants.clone());
    assert_ne!(grants, Grants::new(|_, _| true));
}

#[test]
fn counters_per_protocol_and_fanout_histogram() {
    let hub = Hub::new(cfg());
    let a = hub.connect(ClientInfo::new("a", "websocket"));
    let b = hub.connect(ClientInfo::new("b", "websocket"));
    let c = hub.connect(ClientInfo::new("c", "stomp"));
    a.subscribe("t", None).unwrap();
    c.subscribe("t", None).unwrap();
    b.publish("t", Payload::text("1")).unwrap();
    b.publish("t", Payload::text("2")).unwrap();
    c.publish("t", Payload::text("3")).unwrap();
    hub.publish("t", Payload::text("server"), None).unwrap();
    let find = |p: &str| {
        hub.protocol_stats()
            .into_iter()
            .find(|s| s.protocol == p)
            .unwrap()
    };
    assert_eq!(
        (find("websocket").connections, find("websocket").published),
        (2, 2)
    );
    assert_eq!((find("stomp").connections, find("stomp").published), (1, 1));
    drop(b);
    assert_eq!(find("websocket").connections, 1);
    // Every publication (client or server) was timed once.
    let h = hub.fanout_histogram();
    assert_eq!(h.count(), 4);
    assert_eq!(h.counts.len(), FANOUT_BUCKETS_US.len() + 1);
    assert!(h.sum_ns > 0);
}

fn queued_messages(m: &Mailbox) -> usize {
    let mut out = Vec::new();
    m.drain(&mut out);
    messages(&out).len()
}

#[test]
fn disconnect_user_kicks_only_that_users_connections() {
    let hub = Hub::new(cfg());
    let alice1 = hub.connect(ClientInfo::new("alice", "websocket").with_user("alice", None));
    let alice2 = hub.connect(ClientInfo::new("Alice", "stomp").with_user("alice", None));
    let bob = hub.connect(ClientInfo::new("bob", "websocket").with_user("bob", None));
    // Anonymous, calling itself alice: not alice.
    let impostor = hub.connect(ClientInfo::new("alice", "sockjs"));
    for c in [&alice1, &alice2, &bob, &impostor] {
        c.subscribe("t", None).unwrap();
    }
    assert_eq!(hub.user_count(), 2);
    hub.publish("t", Payload::text("before"), None).unwrap();
    assert_eq!(hub.disconnect_user("alice"), 2);
    assert_eq!(hub.disconnect_user("alice"), 0, "already kicked");
    assert_eq!(hub.disconnect_user("nobody"), 0);
    hub.publish("t", Payload::text("after"), None).unwrap();
    for kicked in [&alice1, &alice2] {
        let m = kicked.mailbox();
        assert!(m.is_kicked() && m.is_closed() && !m.is_overflowed());
        // What was queued before the kick can still be delivered; nothing after.
        assert_eq!(queued_messages(m), 1);
    }
    for free in [&bob, &impostor] {
        assert!(!free.mailbox().is_kicked());
        assert_eq!(queued_messages(free.mailbox()), 2);
    }
    drop(alice1);
    drop(alice2);
    assert_eq!(hub.user_count(), 1);
}

struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn poll_ready_wakes() {
    let hub = Hub::new(HubConfig {
        mailbox_max_messages: 3,
        ..cfg()
    });
    let c = hub.connect(ClientInfo::new("c", "websocket"));
    c.subscribe("t", None).unwrap();
    let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let waker = Waker::from(counter.clone());
    let mut cx = Context::from_waker(&waker);
    let mb = c.mailbox().clone();
    let wakes = || counter.0.load(Ordering::SeqCst);

    assert_eq!(mb.poll_ready(&mut cx), Poll::Pending);
    hub.publish("t", Payload::text("1"), None).unwrap();
    assert_eq!(wakes(), 1);
    assert_eq!(mb.poll_ready(&mut cx), Poll::Ready(()));
    assert_eq!(drain(&c).len(), 1);

    assert_eq!(mb.poll_ready(&mut cx), Poll::Pending);
    hub.publish("t", Payload::text("2"), None).unwrap();
    assert_eq!(wakes(), 2);
    // Further pushes to a non-empty mailbox need no wake-up (the consumer
    // was already woken and has not polled since).
    hub.publish("t", Payload::text("3"), None).unwrap();
    hub.publish("t", Payload::text("4"), None).unwrap();
    assert_eq!(wakes(), 2);
    hub.publish("t", Payload::text("5"), None).unwrap();
    assert!(mb.is_overflowed());
    assert_eq!(mb.poll_ready(&mut cx), Poll::Ready(()));
    drain(&c);
    assert_eq!(mb.poll_ready(&mut cx), Poll::Ready(())); // overflowed stays ready

    // Close wakes a pending consumer, and is ready.
    let d = hub.connect(ClientInfo::new("d", "websocket"));
    let mb = d.mailbox().clone();
    assert_eq!(mb.poll_ready(&mut cx), Poll::Pending);
    drop(d);
    assert_eq!(wakes(), 3);
    assert_eq!(mb.poll_ready(&mut cx), Poll::Ready(()));
}

#[test]
fn poll_ready_wakes_across_threads() {
    // A consumer thread parks until woken; the publisher thread wakes it.
    struct ThreadWaker(thread::Thread);
    impl Wake for ThreadWaker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let hub = Hub::new(HubConfig {
        presence_events: false,
        ..cfg()
    });
    let c = hub.connect(ClientInfo::new("c", "websocket"));
    c.subscribe("t", None).unwrap();
    let barrier = Barrier::new(2);
    thread::scope(|s| {
        let h = hub.clone();
        let barrier = &barrier;
        s.spawn(move || {
            barrier.wait();
            for i in 0..500 {
                h.publish("t", Payload::text(i.to_string()), None).unwrap();
                if i % 50 == 0 {
                    thread::yield_now();
                }
            }
        });
        let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut got = Vec::new();
        barrier.wait();
        while got.len() < 500 {
            match c.mailbox().poll_ready(&mut cx) {
                Poll::Ready(()) => {
                    c.mailbox().drain_into(&mut got, 64);
                }
                Poll::Pending => thread::park_timeout(std::time::Duration::from_secs(5)),
            }
        }
        assert_eq!(seqs(&messages(&got)), (1..=500).collect::<Vec<_>>());
    });
}

#[derive(Default)]
struct RecordingBackplane {
    events: Mutex<Vec<String>>,
}

impl Backplane for RecordingBackplane {
    fn publish(&self, p: &Arc<Publication>) {
        self.events
            .lock()
            .unwrap()
            .push(format!("pub {} {}", p.topic, p.seq));
    }
    fn topic_opened(&self, topic: &str) {
        self.events.lock().unwrap().push(format!("open {topic}"));
    }
    fn topic_closed(&self, topic: &str) {
        self.events.lock().unwrap().push(format!("close {topic}"));
    }
}

#[test]
fn backplane_relays_local_publications_only() {
    let bp = Arc::new(RecordingBackplane::default());
    let hub = Hub::with_backplane(cfg(), bp.clone());
    let c = hub.connect(ClientInfo::new("c", "websocket"));
    let d = hub.connect(ClientInfo::new("d", "websocket"));
    c.subscribe("t", None).unwrap();
    d.subscribe("t", None).unwrap();
    c.publish("t", Payload::text("local")).unwrap();
    let seq = hub
        .deliver_remote("t", Payload::text("remote"), Some("far".into()), 42)
        .unwrap();
    assert_eq!(seq, 2);
    let got = messages(&drain(&c));
    assert_eq!(seqs(&got), vec![1, 2]);
    assert_eq!(got[0].from.as_deref(), Some("c"));
    assert_eq!(got[1].from.as_deref(), Some("far"));
    assert_eq!(got[1].timestamp_ms, 42);
    assert!(got[0].timestamp_ms > 1_600_000_000_000);
    drop(c);
    drop(d);
    assert_eq!(
        *bp.events.lock().unwrap(),
        vec!["open t", "pub t 1", "close t"]
    );
    assert!(hub.deliver_remote("", Payload::text("x"), None, 0).is_err());
}

#[test]
fn churn_with_concurrent_publishes_and_eviction_does_not_deadlock() {
    let hub = Hub::new(HubConfig {
        max_idle_topics: 2,
        shards: 2,
        mailbox_max_messages: 64,
        ..cfg()
    });
    thread::scope(|s| {
        for t in 0..3 {
            let hub = hub.clone();
            s.spawn(move || {
                for i in 0..3000 {
                    let topic = format!("t{}", (i + t) % 7);
                    hub.publish(&topic, Payload::text("x"), None).unwrap();
                }
            });
        }
        for t in 0..3 {
            let hub = hub.clone();
            s.spawn(move || {
                for i in 0..300 {
                    let c = hub.connect(ClientInfo::new(format!("c{t}"), "websocket"));
                    for k in 0..3 {
                        c.subscribe(&format!("t{}", (i + k + t) % 7), Some(0))
                            .unwrap();
                    }
                    c.unsubscribe(&format!("t{}", (i + t) % 7));
                    let mut out = Vec::new();
                    c.mailbox().drain(&mut out);
                }
            });
        }
    });
    let st = hub.stats();
    assert_eq!(st.clients, 0);
    assert!(st.idle_topics <= 2, "{st:?}");
    assert_eq!(st.topics, st.idle_topics);
    for (_, subs) in hub.topics() {
        assert_eq!(subs, 0);
    }
}

#[test]
fn handles_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Hub>();
    check::<Client>();
    check::<Mailbox>();
    check::<Publication>();
    check::<Delivery>();
}

#[test]
fn unsubscribe_all_keeps_connection() {
    let hub = Hub::new(cfg());
    let c = hub.connect(ClientInfo::new("c", "websocket"));
    c.subscribe("a", None).unwrap();
    c.subscribe("b", None).unwrap();
    assert_eq!(c.unsubscribe_all(), 2);
    assert!(c.subscriptions().is_empty());
    assert!(!c.mailbox().is_closed());
    assert_eq!(hub.presence("a").count, 0);
    assert_eq!(hub.stats().clients, 1);
}

#[test]
fn sizes() {
    use std::mem::size_of;
    let sizes = [
        ("Mailbox", size_of::<Mailbox>()),
        ("Client", size_of::<Client>()),
        ("Publication", size_of::<Publication>()),
        ("Payload", size_of::<Payload>()),
        ("EncodingCache", size_of::<EncodingCache>()),
        ("Delivery", size_of::<Delivery>()),
        ("PresenceEvent", size_of::<PresenceEvent>()),
        ("Hub", size_of::<Hub>()),
    ];
    for (name, size) in sizes {
        println!("size_of::<{name}>() = {size}");
    }
    assert!(size_of::<Mailbox>() <= 128);
    assert!(size_of::<Client>() <= 128);
    assert!(size_of::<EncodingCache>() <= 80);
    assert_eq!(size_of::<Delivery>(), 16);
    // Idle connection: Client + Arc<Mailbox> allocation (2 counters) + no
    // queue buffer, far below the 1 KB per-connection budget.
    let idle = size_of::<Client>() + size_of::<Mailbox>() + 16;
    println!("idle connection in the hub: {idle} bytes");
    assert!(idle < 300);
}

#[test]
fn a_since_from_another_numbering_is_not_recovered() {
    use switchboard_hub::{ClientInfo, Hub, HubConfig, Payload};
    // Before a restart: three messages, the client saw up to 2.
    let old = Hub::new(HubConfig::default());
    let c = old.connect(ClientInfo::new("c", "test"));
    let before = c.subscribe("t", None).unwrap();
    for i in 0..3 {
        old.publish("t", Payload::text(format!("old {i}")), None)
            .unwrap();
    }
    drop((c, old));
    // After it: a new numbering that went past the client's `since`.
    let hub = Hub::new(HubConfig::default());
    for i in 0..5 {
        hub.publish("t", Payload::text(format!("new {i}")), None)
            .unwrap();
    }
    let c = hub.connect(ClientInfo::new("c", "test"));
    let sub = c.subscribe_at("t", Some(2), Some(before.epoch)).unwrap();
    assert!(
        sub.epoch > before.epoch,
        "a later incarnation has a later epoch"
    );
    assert!(
        !sub.recovered,
        "2 of the old numbering is not 2 of this one"
    );
    assert_eq!(sub.replay.len(), 5, "the whole retained history instead");
    // With this numbering's epoch (or none, as before epochs) it is.
    let d = hub.connect(ClientInfo::new("d", "test"));
    let sub2 = d.subscribe_at("t", Some(2), Some(sub.epoch)).unwrap();
    assert!(sub2.recovered);
    assert_eq!(
        sub2.replay.iter().map(|p| p.seq).collect::<Vec<_>>(),
        [3, 4, 5]
    );
    let e = hub.connect(ClientInfo::new("e", "test"));
    assert!(e.subscribe("t", Some(2)).unwrap().recovered);
}
