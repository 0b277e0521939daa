//! Socket.IO recorded events across a node's subscription outage, over a
//! real `redis-server`: what other nodes (and the node itself) recorded
//! while its Redis pub/sub link was down reaches its connected sockets once
//! the link is back — read from the namespace's stream, in order, then the
//! live ones, none twice (not even to a socket restored meanwhile).
#![cfg(feature = "socketio")]

#[path = "support/sio.rs"]
mod sio;
mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use sio::*;
use support::{config, eventually, eventually_async, init_tracing, RedisServer, WAIT};
use switchboard_redis::RedisConfig;

/// A node whose links come back 1 to 2 s after they drop (the backoff is
/// jittered down by up to half): long enough to record events meanwhile.
fn slow_to_reconnect(url: &str) -> RedisConfig {
    RedisConfig {
        reconnect_min_ms: 2_000,
        reconnect_max_ms: 2_000,
        ..config(url)
    }
}

/// Cuts every pub/sub connection (each node's Socket.IO subscriber link);
/// the publishing and reading connections stay.
async fn kill_subscriptions(redis: &RedisServer) -> i64 {
    let mut raw = redis.raw().await;
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut raw)
        .await
        .expect("CLIENT KILL")
}

/// Entries in the stream of namespace `/`.
async fn recorded(redis: &RedisServer) -> u64 {
    let mut raw = redis.raw().await;
    redis::cmd("XLEN")
        .arg("sbtest:sio:ev:/")
        .query_async(&mut raw)
        .await
        .expect("XLEN")
}

/// The event name, first argument and offset (last argument) of an EVENT
/// packet.
fn event(packet: &str) -> (String, serde_json::Value, (u64, u64)) {
    let json = packet
        .strip_prefix('2')
        .unwrap_or_else(|| panic!("not an event: {packet}"));
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    let a = v.as_array().unwrap();
    let offset = a.last().unwrap().as_str().expect("an offset");
    let (ms, seq) = offset.split_once('-').expect("a stream id");
    let offset = (ms.parse().unwrap(), seq.parse().unwrap());
    (a[0].as_str().unwrap().to_owned(), a[1].clone(), offset)
}

/// Two nodes, B slow to reconnect, and a client of B in `room1` that got
/// one recorded event (so B has a position in the stream); also the
/// client's CONNECT data and that event's offset.
async fn setup(redis: &RedisServer) -> (SioNode, SioNode, SioClient, serde_json::Value, String) {
    let a = SioNode::start_with("A", config(&redis.url()), recovery()).await;
    let b = SioNode::start_with("B", slow_to_reconnect(&redis.url()), recovery()).await;
    a.knows(1).await;
    b.knows(1).await;
    let (mut c, connect) = SioClient::connect_with(b.addr, "ann", "").await;
    b.socket(&c.sid).join("room1");
    a.io.to("room1").emit("before", 0).unwrap();
    let (name, _, (ms, seq)) = event(&c.expect().await);
    assert_eq!(name, "before");
    (a, b, c, connect, format!("{ms}-{seq}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_recorded_while_a_nodes_subscription_is_down_reach_its_sockets_when_it_is_back() {
    let redis = RedisServer::start().await;
    let (a, b, mut c, _, _) = setup(&redis).await;

    assert_eq!(kill_subscriptions(&redis).await, 2, "A's and B's");
    eventually("B's subscription is down", || !b.cluster.stats().connected).await;
    // (each node's events reach the stream in its own time: one node at a
    // time, for a known order)
    a.io.to("room1").emit("e1", 1).unwrap();
    a.io.to("elsewhere").emit("not-for-ann", ()).unwrap();
    eventually_async("A's events recorded", || async {
        recorded(&redis).await == 3
    })
    .await;
    // B's own events come back to B through Redis too: missed as well.
    b.io.to("room1").emit("e2", 2).unwrap();
    b.io.local().emit("e3", 3).unwrap();
    eventually_async("B's events recorded", || async {
        recorded(&redis).await == 5
    })
    .await;
    a.io.local().emit("for-a-only", ()).unwrap();
    a.io.emit("e4", 4).unwrap();
    eventually_async("A's next events recorded", || async {
        recorded(&redis).await == 7
    })
    .await;
    assert!(
        !b.cluster.stats().connected,
        "B was still cut off when they were recorded (else this test proves nothing)"
    );

    // B back: exactly the missed events, in order, then the live ones.
    let mut names = Vec::new();
    let mut offsets = Vec::new();
    for _ in 0..4 {
        let (name, _, offset) = event(&c.expect().await);
        names.push(name);
        offsets.push(offset);
    }
    assert_eq!(names, ["e1", "e2", "e3", "e4"]);
    eventually("B reconnected", || b.cluster.stats().connected).await;
    a.io.to("room1").emit("e5", 5).unwrap();
    let (name, _, offset) = event(&c.expect().await);
    assert_eq!(name, "e5");
    offsets.push(offset);
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    c.quiet(Duration::from_millis(300)).await;
    // One catch-up (none at the first subscription); the 6 entries after
    // B's position but A's `local` one were handed to B's namespace.
    let stats = b.cluster.stats();
    assert_eq!((stats.resyncs, stats.resynced), (1, 5), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_stream_across_a_subscription_outage_arrives_once_and_in_order() {
    let redis = RedisServer::start().await;
    let (a, b, mut c, _, _) = setup(&redis).await;

    // A emits numbered events all along: before the cut, while B is cut
    // off, while B reads what it missed, and after.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let emitter = {
        let (io, stop, sent) = (a.io.clone(), stop.clone(), sent.clone());
        tokio::spawn(async move {
            while !stop.load(SeqCst) {
                let i = sent.load(SeqCst);
                io.to("room1").emit("n", i).unwrap();
                sent.store(i + 1, SeqCst);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    eventually("some sent", || sent.load(SeqCst) >= 50).await;
    kill_subscriptions(&redis).await;
    eventually("B's subscription is down", || !b.cluster.stats().connected).await;
    let cut_at = sent.load(SeqCst);
    eventually_async("B reconnected", || async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        b.cluster.stats().connected
    })
    .await;
    let back_at = sent.load(SeqCst);
    assert!(
        back_at > cut_at + 50,
        "events while cut off: {cut_at}..{back_at}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, SeqCst);
    emitter.await.unwrap();
    let n = sent.load(SeqCst);

    let mut last = (0, 0);
    for i in 0..n {
        let (name, arg, offset) = event(&c.expect().await);
        assert_eq!((name.as_str(), arg.as_u64()), ("n", Some(i)));
        assert!(offset > last, "offsets increase");
        last = offset;
    }
    c.quiet(Duration::from_millis(300)).await;
    let stats = b.cluster.stats();
    assert_eq!(stats.resyncs, 1, "{stats:?}");
    assert!(stats.resynced >= 50, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_restored_while_its_node_was_cut_off_gets_nothing_twice() {
    let redis = RedisServer::start().await;
    let (a, b, c, connect, seen) = setup(&redis).await;
    let pid = connect["pid"].as_str().expect("a pid").to_owned();
    let sid = c.sid.clone();
    eventually_async("the session with its room is in Redis", || {
        stored_with_room(&redis, &pid, "room1")
    })
    .await;

    kill_subscriptions(&redis).await;
    eventually("B's subscription is down", || !b.cluster.stats().connected).await;
    a.io.to("room1").emit("e1", 1).unwrap();
    a.io.to("room1").emit("e2", 2).unwrap();
    eventually_async("the events recorded", || async {
        recorded(&redis).await == 3
    })
    .await;
    // The client drops and comes back to B, which restores it from Redis
    // (its reading connection is up) with the two events it missed.
    drop(c);
    let auth = format!(r#""pid":"{pid}","offset":"{seen}""#);
    let (mut c2, _) = SioClient::connect_with(b.addr, "ann", &auth).await;
    assert_eq!(c2.sid, sid, "restored");
    assert_eq!(event(&c2.expect().await).0, "e1");
    assert_eq!(event(&c2.expect().await).0, "e2");
    assert!(
        !b.cluster.stats().connected,
        "restored while B was still cut off (else this test proves nothing)"
    );

    // B's subscription comes back and B catches up on e1 and e2 for its
    // sockets: not for this one, which has them.
    eventually_async("B reconnected", || async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        b.cluster.stats().connected
    })
    .await;
    a.io.to("room1").emit("e3", 3).unwrap();
    assert_eq!(event(&c2.expect().await).0, "e3");
    c2.quiet(Duration::from_millis(300)).await;
    let stats = b.cluster.stats();
    assert_eq!(
        (stats.restored, stats.resyncs, stats.resynced),
        (1, 1, 2),
        "{stats:?}"
    );
}
