//! Socket.IO connection state recovery across nodes over a real
//! `redis-server`: a client of a node that dies without a word comes back
//! on another node with its socket id, rooms and data, and gets exactly the
//! events it missed, in order, then the live ones.
#![cfg(feature = "socketio")]

#[path = "support/sio.rs"]
mod sio;
mod support;

use std::time::Duration;

use sio::*;
use support::{config, eventually, eventually_async, init_tracing, RedisServer, WAIT};
use switchboard_socketio::{SocketData, Value};

/// The event name and the offset (last argument) of an EVENT packet.
fn event(packet: &str) -> (String, String) {
    let json = packet
        .strip_prefix('2')
        .unwrap_or_else(|| panic!("not an event: {packet}"));
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    let a = v.as_array().unwrap();
    let offset = a.last().unwrap().as_str().unwrap_or_default().to_owned();
    (a[0].as_str().unwrap().to_owned(), offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_a_dead_node_is_recovered_on_another_with_what_it_missed() {
    let redis = RedisServer::start().await;
    let a = SioNode::start_with("A", config(&redis.url()), recovery()).await;
    let b = SioNode::start_with("B", config(&redis.url()), recovery()).await;
    a.knows(1).await;
    b.knows(1).await;

    let (mut c, connect) = SioClient::connect_with(a.addr, "ann", "").await;
    let pid = connect["pid"].as_str().expect("a pid").to_owned();
    let sid = c.sid.clone();
    a.socket(&sid).join("room1");
    // socket.emit goes through Redis too (numbered like every event).
    a.socket(&sid).emit("hello", 1).unwrap();
    let (name, offset) = event(&c.expect().await);
    assert_eq!(name, "hello");
    assert!(!offset.is_empty(), "an offset");
    eventually_async("the session with its room is in Redis", || {
        stored_with_room(&redis, &pid, "room1")
    })
    .await;
    b.io.to("room1").emit("e1", ()).unwrap();
    let (name, last_seen) = event(&c.expect().await);
    assert_eq!(name, "e1");

    // Node A dies without a word: nothing more of it reaches Redis.
    a.cluster.shutdown().await;
    drop(a);
    b.io.to("room1").emit("e2", ()).unwrap();
    b.io.emit("e3", ()).unwrap();
    b.io.to("elsewhere").emit("not-for-ann", ()).unwrap();
    b.io.to(sid.as_str()).emit("e4", ()).unwrap();
    b.io.except("room1").emit("not-for-ann-either", ()).unwrap();
    // Restored at once: what Redis has not numbered yet when the session is
    // read comes through the namespace's tap.

    let auth = format!(r#""pid":"{pid}","offset":"{last_seen}""#);
    let (mut c2, connect) = SioClient::connect_with(b.addr, "ann", &auth).await;
    assert_eq!(c2.sid, sid, "the same socket id");
    assert_eq!(connect["pid"].as_str(), Some(pid.as_str()));
    let mut got = Vec::new();
    let mut offsets = Vec::new();
    for _ in 0..3 {
        let (name, offset) = event(&c2.expect().await);
        got.push(name);
        offsets.push(offset);
    }
    assert_eq!(got, ["e2", "e3", "e4"]);
    let socket = b.socket(&sid);
    assert!(socket.recovered());
    assert!(socket.rooms().contains(&"room1".to_owned()));
    let data = socket.extensions().get::<SocketData>().expect("data");
    assert_eq!(
        data.0,
        Value::Object(vec![
            ("node".into(), "A".into()),
            ("user".into(), "ann".into())
        ])
    );
    // Live again, in its room, offsets still increasing.
    b.io.to("room1").emit("e5", ()).unwrap();
    let (name, offset) = event(&c2.expect().await);
    assert_eq!(name, "e5");
    offsets.push(offset);
    let keys: Vec<(u64, u64)> = offsets
        .iter()
        .map(|o| {
            let (a, b) = o.split_once('-').unwrap();
            (a.parse().unwrap(), b.parse().unwrap())
        })
        .collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    c2.quiet(Duration::from_millis(200)).await;

    // The client comes back again (another drop) before this node noticed
    // the first: restored again, its stale socket ended.
    let (mut again, _) = SioClient::connect_with(b.addr, "ann", &auth).await;
    assert_eq!(again.sid, sid);
    let mut names = Vec::new();
    for _ in 0..4 {
        names.push(event(&again.expect().await).0);
    }
    assert_eq!(
        names,
        ["e2", "e3", "e4", "e5"],
        "missed since the offset given"
    );
    b.io.to("room1").emit("e6", ()).unwrap();
    assert_eq!(event(&again.expect().await).0, "e6");
    c2.quiet(Duration::from_millis(200)).await;
    assert_eq!(
        b.io.of("/")
            .sockets()
            .iter()
            .filter(|s| s.id() == sid)
            .count(),
        1
    );
    // An offset no longer (or never) stored: not recovered, and the live
    // socket's session stays.
    let bad = format!(r#""pid":"{pid}","offset":"1-0""#);
    let (other, _) = SioClient::connect_with(b.addr, "ann", &bad).await;
    assert_ne!(other.sid, sid);
    assert!(stored_with_room(&redis, &pid, "room1").await);
    let stats = b.cluster.stats();
    assert_eq!((stats.restores, stats.restored), (3, 2), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_left_on_purpose_is_not_recovered() {
    let redis = RedisServer::start().await;
    let a = SioNode::start_with("A", config(&redis.url()), recovery()).await;
    let (mut c, connect) = SioClient::connect_with(a.addr, "bob", "").await;
    let pid = connect["pid"].as_str().unwrap().to_owned();
    // A recorded event reaches this node's sockets when Redis publishes it
    // back: not before the node's subscription is up (a fresh node, alone).
    let offset = loop {
        a.io.emit("e1", ()).unwrap();
        if let Some(p) = c.next_within(Duration::from_millis(300)).await {
            break event(&p).1;
        }
    };
    eventually_async("the session is in Redis", || {
        stored_with_room(&redis, &pid, &c.sid)
    })
    .await;
    c.send("1").await; // DISCONNECT from the namespace
    let sid = c.sid.clone();
    eventually("the socket left", || {
        a.io.of("/").get_socket(&sid).is_none()
    })
    .await;
    eventually_async("the session is gone from Redis", || async {
        !stored_with_room(&redis, &pid, &sid).await
    })
    .await;
    let auth = format!(r#""pid":"{pid}","offset":"{offset}""#);
    let (again, _) = SioClient::connect_with(a.addr, "bob", &auth).await;
    assert_ne!(again.sid, sid);
}
