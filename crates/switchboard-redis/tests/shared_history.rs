//! Shared history (`RedisConfig::shared_history`) against a real
//! `redis-server`: Redis numbers each topic's publications, every node
//! delivers the same numbers in the same order, and a client catches up
//! with `since` on a node that never saw the topic.

mod support;

use std::sync::Arc;

use support::*;
use switchboard_hub::{Client, Delivery, Payload, Publication, Subscribed};

/// The deferred answer to a pending subscribe, then `n` live publications.
async fn catch_up(c: &Client) -> Subscribed {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut out = Vec::new();
    loop {
        tokio::time::timeout_at(deadline, c.mailbox().ready())
            .await
            .expect("the catch-up in time");
        c.mailbox().drain(&mut out);
        if let Some(d) = out.first() {
            let Delivery::CatchUp(cu) = d else {
                panic!("expected the catch-up first, got {d:?}");
            };
            assert!(out.len() == 1, "nothing after the catch-up yet: {out:?}");
            return cu.subscribed.clone();
        }
    }
}

fn seqs(ps: &[Arc<Publication>]) -> Vec<u64> {
    ps.iter().map(|p| p.seq).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_delivers_the_same_numbers_in_the_same_order() {
    let redis = RedisServer::start().await;
    let nodes: Vec<Node> = (0..3).map(|_| Node::start(shared(&redis.url()))).collect();
    let clients: Vec<Client> = nodes.iter().map(|n| n.client("c")).collect();
    for (n, c) in nodes.iter().zip(&clients) {
        assert!(!c.subscribe("t", None).unwrap().pending);
        n.subscribed("t", true).await;
    }
    // Two publishers on two nodes, interleaved; the local publisher's own
    // node delivers it only when it comes back numbered.
    for i in 0..50 {
        let seq = clients[i % 2]
            .publish("t", Payload::text(format!("{}:{i}", i % 2)))
            .unwrap();
        assert_eq!(seq, 0, "numbered by Redis, not here");
    }
    let mut orders = Vec::new();
    for c in &clients {
        let got = recv(c, 50).await;
        assert_eq!(seqs(&got), (1..=50).collect::<Vec<u64>>());
        orders.push(texts(&got));
    }
    assert_eq!(orders[0], orders[1], "same order on every node");
    assert_eq!(orders[0], orders[2]);
    for p in 0..2 {
        let mine: Vec<&String> = orders[0]
            .iter()
            .filter(|t| t.starts_with(&format!("{p}:")))
            .collect();
        let sent: Vec<String> = (0..50)
            .filter(|i| i % 2 == p)
            .map(|i| format!("{p}:{i}"))
            .collect();
        assert_eq!(mine, sent.iter().collect::<Vec<_>>(), "per publisher order");
    }
    for n in &nodes {
        assert_eq!(n.hub.last_seq("t"), 50);
        assert_eq!(n.bp.stats().gaps, 0);
    }
    let mut raw = redis.raw().await;
    let len: usize = redis::cmd("XLEN")
        .arg("sbtest:h:t")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(len, 50, "the stream keeps the history (history_size 100)");
    let ttl: i64 = redis::cmd("TTL")
        .arg("sbtest:s:t")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(
        ttl > 86_000,
        "expires a day after the last publication: {ttl}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_catches_up_on_a_node_that_never_saw_the_topic() {
    let redis = RedisServer::start().await;
    let a = Node::start(shared(&redis.url()));
    let b = Node::start(shared(&redis.url()));
    let alice = a.client("alice");
    alice.subscribe("room", None).unwrap();
    a.subscribed("room", true).await;
    for i in 1..=10 {
        alice
            .publish("room", Payload::text(format!("m{i}")))
            .unwrap();
    }
    assert_eq!(
        seqs(&recv(&alice, 10).await),
        (1..=10).collect::<Vec<u64>>()
    );

    // Bob saw up to 3 on node A, which died; he comes back on node B.
    let bob = b.client("bob");
    let sub = bob.subscribe("room", Some(3)).unwrap();
    assert!(sub.pending, "B has no history of `room` yet");
    let cu = catch_up(&bob).await;
    assert!(cu.recovered);
    assert_eq!(cu.last_seq, 10);
    assert_eq!(seqs(&cu.replay), (4..=10).collect::<Vec<u64>>());
    assert_eq!(texts(&cu.replay)[0], "m4");
    assert_eq!(cu.replay[0].from.as_deref(), Some("alice"));

    // Live from 11 on both nodes; B's history now answers at once.
    bob.publish("room", Payload::text("m11")).unwrap();
    assert_eq!(seqs(&recv(&bob, 1).await), [11]);
    assert_eq!(seqs(&recv(&alice, 1).await), [11]);
    let carol = b.client("carol");
    let sub = carol.subscribe("room", Some(8)).unwrap();
    assert!(!sub.pending && sub.recovered);
    assert_eq!(seqs(&sub.replay), [9, 10, 11]);
    assert_eq!(b.hub.history("room", 0).messages.len(), 11);

    // Beyond the retained history: not recovered, says so.
    let dave = b.client("dave");
    let sub = dave.subscribe("other", Some(5)).unwrap();
    assert!(sub.pending);
    let cu = catch_up(&dave).await;
    assert!(!cu.recovered && cu.replay.is_empty() && cu.last_seq == 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gaps_and_restarted_numbering_are_repaired_from_redis() {
    let redis = RedisServer::start().await;
    let a = Node::start(shared(&redis.url()));
    let alice = a.client("alice");
    alice.subscribe("t", None).unwrap();
    a.subscribed("t", true).await;
    alice.publish("t", Payload::text("one")).unwrap();
    assert_eq!(seqs(&recv(&alice, 1).await), [1]);

    // Numbers 2..=4 never published (as if this node missed them): the
    // next one shows a gap, the node reads the stream and delivers 5.
    let mut raw = redis.raw().await;
    let _: i64 = redis::cmd("HINCRBY")
        .arg("sbtest:s:t")
        .arg("s")
        .arg(3)
        .query_async(&mut raw)
        .await
        .unwrap();
    alice.publish("t", Payload::text("five")).unwrap();
    let got = recv(&alice, 1).await;
    assert_eq!(
        (seqs(&got), texts(&got)),
        (vec![5], vec!["five".to_owned()])
    );
    assert_eq!(a.bp.stats().gaps, 1);

    // The shared history expired: numbering restarts at 1 (new epoch).
    let _: i64 = redis::cmd("DEL")
        .arg("sbtest:s:t")
        .arg("sbtest:h:t")
        .query_async(&mut raw)
        .await
        .unwrap();
    alice.publish("t", Payload::text("again")).unwrap();
    let got = recv(&alice, 1).await;
    assert_eq!(
        (seqs(&got), texts(&got)),
        (vec![1], vec!["again".to_owned()])
    );
    assert_eq!(a.hub.last_seq("t"), 1);
    assert_eq!(a.bp.stats().gaps, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publications_wait_out_a_redis_restart_and_nothing_is_lost() {
    let mut redis = RedisServer::start().await;
    let a = Node::start(shared(&redis.url()));
    let b = Node::start(shared(&redis.url()));
    let alice = a.client("alice");
    let bob = b.client("bob");
    alice.subscribe("t", None).unwrap();
    bob.subscribe("t", None).unwrap();
    a.subscribed("t", true).await;
    b.subscribed("t", true).await;
    alice.publish("t", Payload::text("before")).unwrap();
    assert_eq!(texts(&recv(&bob, 1).await), ["before"]);
    assert_eq!(texts(&recv(&alice, 1).await), ["before"]);

    redis.kill();
    // Published while Redis is down: queued, delivered nowhere yet.
    for i in 0..5 {
        alice
            .publish("t", Payload::text(format!("during {i}")))
            .unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(pending(&alice).is_empty() && pending(&bob).is_empty());
    redis.restart().await;
    // Redis came back empty (no persistence): a new numbering, the same
    // order on both nodes.
    for c in [&alice, &bob] {
        let got = recv(c, 5).await;
        assert_eq!(
            texts(&got),
            (0..5).map(|i| format!("during {i}")).collect::<Vec<_>>()
        );
        assert_eq!(seqs(&got), [1, 2, 3, 4, 5]);
    }
}
