//! The Redis backplane against a real `redis-server` (one per test): nodes
//! are hubs in this process, each with its own backplane, sharing the server.

mod support;

use std::sync::Arc;

use support::*;
use switchboard_hub::{Hub, HubConfig, Payload, PayloadKind, Publication};
use switchboard_redis::wire::Message;
use switchboard_redis::{Error, RedisBackplane, RedisConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_deliver_exactly_once_with_sender_and_kind() {
    let redis = RedisServer::start().await;
    let a = Node::start(config(&redis.url()));
    let b = Node::start(config(&redis.url()));
    assert_ne!(a.bp.node_id(), b.bp.node_id());

    let alice = a.client("alice");
    let carol = a.client("carol");
    let bob = b.client("bob");
    for c in [&alice, &carol, &bob] {
        c.subscribe("t", None).unwrap();
    }
    a.subscribed("t", true).await;
    b.subscribed("t", true).await;
    // One subscription per node, not per client.
    let mut raw = redis.raw().await;
    assert_eq!(numsub(&mut raw, "sbtest:t:t").await, 2);

    bob.publish("t", Payload::text("héllo")).unwrap();
    bob.publish("t", Payload::binary(vec![0u8, 255, 1]))
        .unwrap();
    b.hub
        .publish("t", Payload::json(r#"{"n":1}"#), None)
        .unwrap();
    let sent = b.hub.history("t", 0).messages;

    for c in [&alice, &carol] {
        let got = recv(c, 3).await;
        let kinds: Vec<PayloadKind> = got.iter().map(|p| p.payload.kind).collect();
        assert_eq!(
            kinds,
            [PayloadKind::Text, PayloadKind::Binary, PayloadKind::Json]
        );
        assert_eq!(got[0].payload.as_str(), Some("héllo"));
        assert_eq!(&got[1].payload.data[..], &[0, 255, 1]);
        assert_eq!(got[2].payload.as_str(), Some(r#"{"n":1}"#));
        let from: Vec<Option<&str>> = got.iter().map(|p| p.from.as_deref()).collect();
        assert_eq!(from, [Some("bob"), Some("bob"), None]);
        for (g, s) in got.iter().zip(&sent) {
            assert_eq!(g.timestamp_ms, s.timestamp_ms, "origin timestamp kept");
        }
        assert_eq!(got.iter().map(|p| p.seq).collect::<Vec<_>>(), [1, 2, 3]);
    }

    // A fence from A: it reaches B after B's own echoes (same Redis order on
    // B's one subscribed connection), so any echo duplicate would show up
    // before it.
    alice.publish("t", Payload::text("fence")).unwrap();
    let got = recv(&bob, 4).await;
    assert_eq!(texts(&got)[3], "fence");
    assert_eq!(got[3].from.as_deref(), Some("alice"));
    assert_eq!(got[1].payload.kind, PayloadKind::Binary);
    assert!(pending(&bob).is_empty(), "no echo duplicate");
    let st = b.bp.stats();
    assert_eq!((st.received, st.ignored, st.decode_errors), (1, 3, 0));
    assert_eq!(st.lag.count, 1);
    assert!(st.connected);
    assert_eq!((st.open_topics, st.subscribed_topics), (1, 1));
    eventually("B's 3 publications acknowledged", || {
        b.bp.stats().published == 3
    })
    .await;

    // A got its 3 remote publications once, then its own fence locally.
    assert_eq!(texts(&recv(&alice, 1).await), ["fence"]);
    assert_eq!(texts(&recv(&carol, 1).await), ["fence"]);
    eventually("A's echo ignored", || a.bp.stats().ignored == 1).await;
    assert!(pending(&alice).is_empty() && pending(&carol).is_empty());
    let st = a.bp.stats();
    assert_eq!((st.received, st.decode_errors, st.dropped), (3, 0, 0));
    assert_eq!(st.lag.buckets.last(), Some(&3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_two_publishers_everyone_sees_everything_in_order() {
    const N: usize = 1000;
    let redis = RedisServer::start().await;
    let nodes: Vec<Node> = (0..3).map(|_| Node::start(config(&redis.url()))).collect();
    let subs: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let c = n.client(&format!("sub{i}"));
            c.subscribe("t", None).unwrap();
            c
        })
        .collect();
    for n in &nodes {
        n.subscribed("t", true).await;
    }

    let publishers = [nodes[0].client("p0"), nodes[1].client("p1")];
    let threads: Vec<_> = publishers
        .into_iter()
        .map(|p| {
            std::thread::spawn(move || {
                for i in 0..N {
                    p.publish("t", Payload::text(i.to_string())).unwrap();
                }
                p
            })
        })
        .collect();
    let publishers: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();

    for sub in &subs {
        let got = recv(sub, 2 * N).await;
        for name in ["p0", "p1"] {
            let mine: Vec<usize> = got
                .iter()
                .filter(|p| p.from.as_deref() == Some(name))
                .map(|p| p.payload.as_str().unwrap().parse().unwrap())
                .collect();
            assert_eq!(
                mine,
                (0..N).collect::<Vec<_>>(),
                "{name} at {}",
                sub.info().name
            );
        }
    }
    // Exactly once: each node received exactly the other nodes' publications.
    let expected = [N as u64, N as u64, 2 * N as u64];
    for (n, want) in nodes.iter().zip(expected) {
        let st = n.bp.stats();
        assert_eq!(st.received, want);
        assert_eq!(st.dropped + st.publish_errors + st.decode_errors, 0);
        assert_eq!(n.hub.last_seq("t"), 2 * N as u64);
    }
    for sub in &subs {
        assert!(pending(sub).is_empty());
    }
    drop(publishers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_topic_unsubscribes_and_closed_topics_receive_nothing() {
    let redis = RedisServer::start().await;
    let mut raw = redis.raw().await;
    let a = Node::start(config(&redis.url()));
    let b = Node::start(config(&redis.url()));
    let alice = a.client("alice");
    alice.subscribe("t", None).unwrap();
    alice.subscribe("u", None).unwrap();
    a.subscribed("t", true).await;
    a.subscribed("u", true).await;
    assert_eq!(numsub(&mut raw, "sbtest:t:t").await, 1);

    assert!(alice.unsubscribe("t"));
    a.subscribed("t", false).await;
    assert_eq!(numsub(&mut raw, "sbtest:t:t").await, 0);
    let st = a.bp.stats();
    assert_eq!((st.open_topics, st.subscribed_topics), (1, 1));

    // B publishes on the closed topic, then on the open one (the fence).
    b.hub
        .publish("t", Payload::text("nobody here"), None)
        .unwrap();
    b.hub.publish("u", Payload::text("fence"), None).unwrap();
    assert_eq!(texts(&recv(&alice, 1).await), ["fence"]);
    assert_eq!(a.hub.last_seq("t"), 0, "the idle topic got nothing");
    let st = a.bp.stats();
    assert_eq!((st.received, st.ignored), (1, 0));

    // Reopened: subscribed again, once.
    alice.subscribe("t", None).unwrap();
    a.subscribed("t", true).await;
    assert_eq!(numsub(&mut raw, "sbtest:t:t").await, 1);
    b.hub.publish("t", Payload::text("back"), None).unwrap();
    assert_eq!(texts(&recv(&alice, 1).await), ["back"]);

    // The last client leaving closes everything.
    drop(alice);
    a.subscribed("t", false).await;
    a.subscribed("u", false).await;
    assert_eq!(numsub(&mut raw, "sbtest:t:u").await, 0);
    let st = a.bp.stats();
    assert_eq!((st.open_topics, st.subscribed_topics), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_reconnects_resubscribes_and_counts_losses() {
    let mut redis = RedisServer::start().await;
    let url = redis.url();
    let a = Node::start(config(&url));
    let b = Node::start(RedisConfig {
        max_queued_messages: 5,
        ..config(&url)
    });
    let alice = a.client("alice");
    let bob = b.client("bob");
    alice.subscribe("t", None).unwrap();
    bob.subscribe("t", None).unwrap();
    a.subscribed("t", true).await;
    b.subscribed("t", true).await;
    bob.publish("t", Payload::text("before")).unwrap();
    assert_eq!(texts(&recv(&alice, 1).await), ["before"]);
    assert_eq!(texts(&recv(&bob, 1).await), ["before"]);

    redis.kill();
    eventually("both nodes disconnected", || {
        !a.bp.stats().connected && !b.bp.stats().connected
    })
    .await;
    eventually("subscriptions forgotten", || {
        a.bp.stats().subscribed_topics == 0 && !a.bp.is_subscribed("t")
    })
    .await;

    // Local delivery goes on, at once (no waiting on Redis).
    for i in 0..20 {
        bob.publish("t", Payload::text(format!("during {i}")))
            .unwrap();
    }
    alice.publish("t", Payload::text("alice during")).unwrap();
    assert_eq!(pending(&bob).len(), 20);
    assert_eq!(pending(&alice).len(), 1);
    // B's queue holds 5; the rest is dropped (or failed, if its publisher
    // link had not noticed the outage yet).
    eventually("B's outage publications accounted for", || {
        let st = b.bp.stats();
        st.dropped + st.publish_errors + st.queued as u64 == 20
    })
    .await;
    assert!(b.bp.stats().dropped >= 10, "{:?}", b.bp.stats());

    redis.restart().await;
    eventually("both nodes reconnected", || {
        let (sa, sb) = (a.bp.stats(), b.bp.stats());
        sa.connected && sb.connected && sa.reconnects >= 1 && sb.reconnects >= 1
    })
    .await;
    a.subscribed("t", true).await;
    b.subscribed("t", true).await;
    let mut raw = redis.raw().await;
    assert_eq!(numsub(&mut raw, "sbtest:t:t").await, 2, "resubscribed");

    // Cross-node delivery works again. Alice may first get some of B's
    // queued outage publications (sent late, in order), then "after".
    bob.publish("t", Payload::text("after")).unwrap();
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("after") {
        seen.extend(texts(&recv(&alice, 1).await));
    }
    let from_outage = &seen[..seen.len() - 1];
    let all: Vec<String> = (0..20).map(|i| format!("during {i}")).collect();
    let mut rest = all.iter();
    for s in from_outage {
        assert!(rest.any(|x| x == s), "out of order or unknown: {seen:?}");
    }
    let st = b.bp.stats();
    assert!(st.reconnects >= 1 && st.dropped >= 10, "{st:?}");
    assert_eq!(st.queued, 0);
}

/// A node that published nothing during an outage still holds its old
/// publishing connection when Redis is back: its first publication goes into
/// that dead connection, and must be sent again on a new one, not lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_publication_after_a_quiet_outage_is_not_lost() {
    let mut redis = RedisServer::start().await;
    let url = redis.url();
    let a = Node::start(config(&url));
    let b = Node::start(config(&url));
    let alice = a.client("alice");
    let bob = b.client("bob");
    alice.subscribe("t", None).unwrap();
    a.subscribed("t", true).await;
    bob.publish("t", Payload::text("before")).unwrap();
    assert_eq!(texts(&recv(&alice, 1).await), ["before"]);

    redis.kill();
    eventually("A disconnected", || !a.bp.stats().connected).await;
    redis.restart().await;
    eventually("A reconnected", || a.bp.stats().connected).await;
    a.subscribed("t", true).await;

    bob.publish("t", Payload::text("after")).unwrap();
    assert_eq!(texts(&recv(&alice, 1).await), ["after"]);
    // (the reply to B's PUBLISH may come after Alice got the message)
    eventually("B's publications counted", || b.bp.stats().published == 2).await;
    assert_eq!(b.bp.stats().publish_errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_are_counted_and_skipped() {
    let redis = RedisServer::start().await;
    let mut raw = redis.raw().await;
    let a = Node::start(config(&redis.url()));
    let b = Node::start(config(&redis.url()));
    let alice = a.client("alice");
    alice.subscribe("t", None).unwrap();
    a.subscribed("t", true).await;

    let foreign = Publication::new(
        "t".into(),
        9,
        Some("rust".into()),
        Payload::text("crafted"),
        42,
    );
    let valid = Message::from_publication(0xfeed, &foreign).encode();
    let echo = Message::from_publication(a.bp.node_id(), &foreign).encode();
    let mut bad_kind = valid.clone();
    bad_kind[17] = 9;
    let mut bad_utf8 = valid.clone();
    *bad_utf8.last_mut().unwrap() = 0xff;
    let garbage: [&[u8]; 5] = [b"", b"\x07junk", &bad_kind, &bad_utf8, &valid[..22]];
    for payload in garbage.iter().copied().chain([&echo[..], &valid[..]]) {
        let _: i64 = redis::cmd("PUBLISH")
            .arg("sbtest:t:t")
            .arg(payload)
            .query_async(&mut raw)
            .await
            .unwrap();
    }
    b.hub.publish("t", Payload::text("ok"), None).unwrap();

    let got = recv(&alice, 2).await;
    assert_eq!(texts(&got), ["crafted", "ok"]);
    assert_eq!(got[0].from.as_deref(), Some("rust"));
    assert_eq!(got[0].timestamp_ms, 42);
    let st = a.bp.stats();
    assert_eq!((st.decode_errors, st.ignored, st.received), (5, 1, 2));
    assert!(st.connected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_publish_and_subscribe_do_not_cut_the_node_off() {
    let redis = RedisServer::start().await;
    let mut raw = redis.raw().await;
    // A user that may only use the channel of topic "ok".
    let mut acl = redis::cmd("ACL");
    for arg in [
        "SETUSER",
        "limited",
        "on",
        ">pw",
        "~*",
        "&sbtest:t:ok",
        "+@all",
    ] {
        acl.arg(arg);
    }
    let _: () = acl.query_async(&mut raw).await.unwrap();
    let a = Node::start(config(&redis.url()));
    let limited_url = redis.url().replace("redis://", "redis://limited:pw@");
    let b = Node::start(config(&limited_url));
    let alice = a.client("alice");
    alice.subscribe("secret", None).unwrap();
    alice.subscribe("ok", None).unwrap();
    a.subscribed("secret", true).await;
    a.subscribed("ok", true).await;
    eventually("B connected", || b.bp.stats().connected).await;

    b.hub
        .publish("secret", Payload::text("denied"), None)
        .unwrap();
    b.hub.publish("ok", Payload::text("allowed"), None).unwrap();
    assert_eq!(texts(&recv(&alice, 1).await), ["allowed"]);
    eventually("B's refusal counted", || {
        let st = b.bp.stats();
        (st.published, st.publish_errors) == (1, 1)
    })
    .await;
    let st = b.bp.stats();
    assert!(st.connected && st.reconnects == 0, "{st:?}");

    // A refused SUBSCRIBE (even together with an allowed one) leaves the
    // allowed topic working and the link up.
    let bob = b.client("bob");
    bob.subscribe("secret", None).unwrap();
    bob.subscribe("ok", None).unwrap();
    b.subscribed("ok", true).await;
    assert!(!b.bp.is_subscribed("secret"));
    alice.publish("ok", Payload::text("to bob")).unwrap();
    assert_eq!(texts(&recv(&bob, 1).await), ["to bob"]);
    let st = b.bp.stats();
    assert!(st.connected && st.reconnects == 0, "{st:?}");
    assert_eq!((st.open_topics, st.subscribed_topics), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_hub_and_backplane_closes_the_connections() {
    let redis = RedisServer::start().await;
    let mut raw = redis.raw().await;
    let clients = |raw: &mut redis::aio::MultiplexedConnection| {
        let mut raw = raw.clone();
        async move {
            let info: String = redis::cmd("INFO")
                .arg("clients")
                .query_async(&mut raw)
                .await
                .unwrap();
            info.lines()
                .find_map(|l| l.strip_prefix("connected_clients:"))
                .and_then(|n| n.trim().parse::<u32>().ok())
                .unwrap()
        }
    };
    assert_eq!(clients(&mut raw).await, 1);

    let node = Node::start(config(&redis.url()));
    assert_eq!(node.bp.start(&node.hub), Err(Error::AlreadyStarted));
    eventually("connected", || node.bp.stats().connected).await;
    // Publisher, subscriber (pub/sub) and the subscriber's reader.
    assert_eq!(clients(&mut raw).await, 4);

    let weak = Arc::downgrade(&node.bp);
    drop(node);
    assert!(weak.upgrade().is_none(), "the tasks hold no strong handle");
    let deadline = tokio::time::Instant::now() + WAIT;
    while clients(&mut raw).await != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "links still connected"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[test]
fn start_needs_a_tokio_runtime() {
    let bp = RedisBackplane::new(RedisConfig::default()).unwrap();
    let hub = Hub::with_backplane(HubConfig::default(), bp.clone());
    assert_eq!(bp.start(&hub), Err(Error::NoRuntime));
    assert!(matches!(
        RedisBackplane::new(RedisConfig::new("nope://")),
        Err(Error::Config(_))
    ));
}
