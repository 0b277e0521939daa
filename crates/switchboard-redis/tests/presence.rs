//! Presence across nodes against a real `redis-server`: every node's
//! `Hub::presence` counts the subscribers of every node, join and leave
//! events cross nodes, a node that stops reporting is forgotten, and
//! `RedisBackplane::presence` answers for a topic a node has no subscriber of.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use support::*;
use switchboard_hub::{Client, ClientInfo, Delivery, Hub, HubConfig, PresenceKind};
use switchboard_redis::{RedisBackplane, RedisConfig};

/// A node whose hub delivers presence events.
fn node(config: RedisConfig) -> Node {
    init_tracing();
    let bp = RedisBackplane::new(config).expect("valid config");
    let hub = Hub::with_backplane(HubConfig::default(), bp.clone());
    bp.start(&hub).expect("start");
    Node { hub, bp }
}

fn fast(url: &str) -> RedisConfig {
    RedisConfig {
        presence_ttl_ms: 900,
        ..shared(url)
    }
}

fn members(hub: &Hub, topic: &str) -> (usize, BTreeSet<String>) {
    let p = hub.presence(topic);
    (p.count, p.members.iter().map(|m| m.to_string()).collect())
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Presence events (kind, name) received so far.
fn events(c: &Client) -> Vec<(PresenceKind, String)> {
    pending(c)
        .into_iter()
        .filter_map(|d| match d {
            Delivery::Presence(e) => Some((e.kind, e.name.to_string())),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_spans_the_nodes_and_forgets_a_dead_one() {
    let redis = RedisServer::start().await;
    let a = node(fast(&redis.url()));
    let b = node(fast(&redis.url()));
    let alice = a.hub.connect(ClientInfo::new("alice", "websocket"));
    alice.subscribe("room", None).unwrap();
    a.subscribed("room", true).await;
    let bob = b.hub.connect(ClientInfo::new("bob", "socket.io"));
    let bob2 = b.hub.connect(ClientInfo::new("bob", "stomp"));
    bob.subscribe("room", None).unwrap();
    bob2.subscribe("room", None).unwrap();

    // Both nodes see all three connections (two names).
    for n in [&a, &b] {
        eventually("three in the room everywhere", || {
            members(&n.hub, "room") == (3, set(&["alice", "bob"]))
        })
        .await;
    }
    // Alice was told of each of bob's connections.
    let mut seen = Vec::new();
    eventually("two joins at alice", || {
        seen.extend(events(&alice));
        seen.len() >= 2
    })
    .await;
    assert_eq!(seen, vec![(PresenceKind::Join, "bob".into()); 2]);

    // A node with no subscriber of the topic reads it from Redis.
    let c = node(fast(&redis.url()));
    let p = c.bp.presence("room").await.unwrap();
    assert_eq!(p.count, 3);
    assert_eq!(
        p.members
            .iter()
            .map(|m| m.to_string())
            .collect::<BTreeSet<_>>(),
        set(&["alice", "bob"])
    );

    // One of bob's connections leaves: a leave event on the other node.
    drop(bob2);
    eventually("bob2's leave at alice", || {
        events(&alice) == [(PresenceKind::Leave, "bob".to_owned())]
    })
    .await;
    assert_eq!(members(&a.hub, "room"), (2, set(&["alice", "bob"])));

    // Node B stops without a word (its links die, as in a SIGKILL): A
    // forgets its subscribers once their report expires.
    b.bp.shutdown();
    tokio::time::sleep(Duration::from_millis(300)).await;
    eventually("bob forgotten on A", || {
        members(&a.hub, "room") == (1, set(&["alice"]))
    })
    .await;
    assert_eq!(events(&alice), [(PresenceKind::Leave, "bob".to_owned())]);
    drop(bob);
}
