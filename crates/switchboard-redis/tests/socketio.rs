//! Socket.IO across nodes over a real `redis-server` (one per test): each
//! node is a `SocketIo` with its `RedisSocketIoCluster`, serving WebSocket
//! clients on its own loopback port; the clients are spread across nodes.
#![cfg(feature = "socketio")]

#[path = "support/sio.rs"]
mod sio;
mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use sio::*;
use support::{config, eventually, init_tracing, RedisServer, WAIT};
use switchboard_redis::socketio::wire;
use switchboard_socketio::{AckError, Value};

/// Three nodes that know each other.
async fn three_nodes(redis: &RedisServer) -> [SioNode; 3] {
    let nodes = [
        SioNode::start("A", config(&redis.url())).await,
        SioNode::start("B", config(&redis.url())).await,
        SioNode::start("C", config(&redis.url())).await,
    ];
    for n in &nodes {
        n.knows(2).await;
    }
    nodes
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_broadcasts_reach_every_node_once_in_order_with_except_and_local() {
    let redis = RedisServer::start().await;
    let [a, b, c] = three_nodes(&redis).await;
    let mut a1 = a.client("a1").await;
    let mut b1 = b.client("b1").await;
    let mut b2 = b.client("b2").await;
    let mut c1 = c.client("c1").await;
    for (node, client) in [(&a, &a1), (&b, &b1), (&c, &c1)] {
        node.socket(&client.sid).join("r");
    }
    c.socket(&c1.sid).join("x");

    const N: usize = 50;
    for i in 0..N {
        a.io.to("r").emit("m", i).unwrap();
    }
    for client in [&mut a1, &mut b1, &mut c1] {
        for i in 0..N {
            assert_eq!(
                client.expect().await,
                format!(r#"2["m",{i}]"#),
                "{}",
                client.user
            );
        }
    }

    // Step by step, each awaited (order is per publisher): except, a
    // binary broadcast from B, local, socket.broadcast from C.
    a.io.to("r").except("x").emit("no-x", ()).unwrap();
    for client in [&mut a1, &mut b1] {
        assert_eq!(client.expect().await, r#"2["no-x"]"#, "{}", client.user);
    }
    b.io.to("r")
        .emit("bin", Bytes::from_static(b"\x01z"))
        .unwrap();
    for client in [&mut a1, &mut b1, &mut c1] {
        assert_eq!(
            client.expect().await,
            r#"51-["bin",{"_placeholder":true,"num":0}]"#
        );
        assert_eq!(client.expect().await, "<bin:\u{1}z>", "{}", client.user);
    }
    a.io.local().emit("local", ()).unwrap();
    assert_eq!(a1.expect().await, r#"2["local"]"#);
    c.socket(&c1.sid).broadcast().emit("from-c1", ()).unwrap();
    for client in [&mut a1, &mut b1, &mut b2] {
        assert_eq!(client.expect().await, r#"2["from-c1"]"#, "{}", client.user);
    }
    // A fence from A reaches each node after anything A sent before it:
    // nothing else reached anyone (b2 and c1 included), and nothing twice.
    a.io.emit("fence", ()).unwrap();
    for client in [&mut a1, &mut b1, &mut b2, &mut c1] {
        assert_eq!(client.expect().await, r#"2["fence"]"#, "{}", client.user);
        client.quiet(Duration::from_millis(100)).await;
    }
    let st = b.cluster.stats();
    assert_eq!((st.decode_errors, st.dropped, st.nodes), (0, 0, 2));
    assert!(st.connected && st.received >= N as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_join_leave_and_disconnect_across_nodes() {
    let redis = RedisServer::start().await;
    let [a, b, c] = three_nodes(&redis).await;
    let mut a1 = a.client("a1").await;
    let mut b1 = b.client("b1").await;
    let mut c1 = c.client("c1").await;
    let mut c2 = c.client("c2").await;
    b.socket(&b1.sid).join("r");
    c.socket(&c1.sid).join("r");

    // Every node's sockets, with rooms, handshake and data.
    let all = a.io.fetch_cluster_sockets().await;
    let ids = sorted(all.iter().map(|s| s.id().to_owned()).collect());
    let want = sorted([&a1, &b1, &c1, &c2].iter().map(|c| c.sid.clone()).collect());
    assert_eq!(ids, want);
    let rb1 = all.iter().find(|s| s.id() == b1.sid).unwrap();
    assert!(!rb1.is_local());
    assert_eq!(
        sorted(rb1.rooms().to_vec()),
        sorted(vec![b1.sid.clone(), "r".into()])
    );
    assert_eq!(rb1.handshake().auth().get("user"), Some(&Value::from("b1")));
    assert_eq!(
        rb1.handshake().query_param("transport").as_deref(),
        Some("websocket")
    );
    assert!(rb1.handshake().headers().contains_key("sec-websocket-key"));
    assert_eq!(
        rb1.data().and_then(|d| d.get("node")),
        Some(&Value::from("B"))
    );
    assert!(all.iter().find(|s| s.id() == a1.sid).unwrap().is_local());

    // A room's sockets only; `local` only this node's.
    let r = a.io.in_("r").fetch_cluster_sockets().await;
    assert_eq!(
        sorted(r.iter().map(|s| s.id().to_owned()).collect()),
        sorted(vec![b1.sid.clone(), c1.sid.clone()])
    );
    assert_eq!(a.io.local().fetch_cluster_sockets().await.len(), 1);

    // A remote socket handle acts where the socket is.
    rb1.emit("direct", "hi").unwrap();
    assert_eq!(b1.expect().await, r#"2["direct","hi"]"#);
    rb1.join("solo");
    a.io.to("solo").emit("solo", ()).unwrap();
    assert_eq!(b1.expect().await, r#"2["solo"]"#);

    // Remote sockets_join, then a broadcast to the new room: in order.
    a.io.in_("r").sockets_join("r2");
    a.io.to("r2").emit("r2", 1).unwrap();
    assert_eq!(b1.expect().await, r#"2["r2",1]"#);
    assert_eq!(c1.expect().await, r#"2["r2",1]"#);
    let r2 = a.io.in_("r2").fetch_cluster_sockets().await;
    assert_eq!(r2.len(), 2);
    assert!(r2.iter().all(|s| s.rooms().iter().any(|r| r == "r2")));

    // sockets_leave, then the same broadcast reaches nobody there.
    c.io.in_("r2").except(b1.sid.as_str()).sockets_leave("r2");
    a.io.to("r2").emit("r2", 2).unwrap();
    assert_eq!(b1.expect().await, r#"2["r2",2]"#);
    rb1.leave("solo");
    a.io.to("solo").emit("solo", 2).unwrap();
    a.io.to("r").emit("fence", ()).unwrap();
    assert_eq!(b1.expect().await, r#"2["fence"]"#);
    assert_eq!(c1.expect().await, r#"2["fence"]"#);

    // disconnect_sockets from A disconnects C's sockets of room r.
    a.io.in_("r")
        .except(b1.sid.as_str())
        .disconnect_sockets(false);
    assert_eq!(c1.expect().await, "1");
    eventually("c1 gone from C", || {
        c.io.of("/").get_socket(&c1.sid).is_none()
    })
    .await;
    let left = a.io.fetch_cluster_sockets().await;
    assert_eq!(left.len(), 3);
    assert!(left.iter().all(|s| s.id() != c1.sid));
    // A remote socket's disconnect(true) closes its whole connection.
    let rc2 = left.iter().find(|s| s.id() == c2.sid).unwrap();
    rc2.disconnect(true);
    assert_eq!(c2.expect().await, "1");
    eventually("c2 gone from C", || c.io.of("/").sockets().is_empty()).await;
    for n in [&a, &b, &c] {
        assert_eq!(n.cluster.stats().pending_requests, 0, "{}", n.name);
    }
    a1.quiet(Duration::from_millis(50)).await;
}

/// Reads a `2<id>["ask"]`-like packet and returns its ack id.
fn ack_id(packet: &str, event: &str) -> u64 {
    let rest = packet
        .strip_prefix('2')
        .unwrap_or_else(|| panic!("{packet}"));
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    assert_eq!(&rest[digits.len()..], format!(r#"["{event}"]"#), "{packet}");
    digits.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_with_acks_collects_every_nodes_answers() {
    let redis = RedisServer::start().await;
    let [a, b, c] = three_nodes(&redis).await;
    let mut clients = vec![
        a.client("a1").await,
        b.client("b1").await,
        b.client("b2").await,
        c.client("c1").await,
    ];
    c.socket(&clients[3].sid).join("silent");

    // Everyone answers: resolves as soon as the last answer is in.
    let started = Instant::now();
    let fut =
        a.io.timeout(Duration::from_secs(10))
            .emit_with_ack::<String>("ask", ());
    let task = tokio::spawn(async move { fut.await });
    for cl in &mut clients {
        let id = ack_id(&cl.expect().await, "ask");
        cl.send(&format!(r#"3{id}["from {}"]"#, cl.user)).await;
    }
    let mut got = task.await.unwrap().unwrap();
    got.sort_by(|x, y| x.0.cmp(&y.0));
    let mut want: Vec<(String, Result<String, AckError>)> = clients
        .iter()
        .map(|c| (c.sid.clone(), Ok(format!("from {}", c.user))))
        .collect();
    want.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(got, want);
    assert!(started.elapsed() < Duration::from_secs(5));

    // One remote socket stays silent: it times out, by its id, and the
    // others' answers are there.
    let started = Instant::now();
    let fut =
        b.io.timeout(Duration::from_millis(800))
            .emit_with_ack::<String>("ask", ());
    let task = tokio::spawn(async move { fut.await });
    for cl in &mut clients {
        let id = ack_id(&cl.expect().await, "ask");
        if cl.user != "c1" {
            cl.send(&format!(r#"3{id}["again {}"]"#, cl.user)).await;
        }
    }
    let got = task.await.unwrap().unwrap();
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(750) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    assert_eq!(got.len(), 4);
    for (sid, res) in &got {
        let user = &clients.iter().find(|c| &c.sid == sid).unwrap().user;
        match user.as_str() {
            "c1" => assert_eq!(res, &Err(AckError::Timeout)),
            u => assert_eq!(res, &Ok(format!("again {u}"))),
        }
    }

    // A remote recipient that disconnects before answering: Disconnected.
    let fut =
        a.io.to("silent")
            .timeout(Duration::from_secs(10))
            .emit_with_ack::<String>("ask", ());
    let task = tokio::spawn(async move { fut.await });
    ack_id(&clients[3].expect().await, "ask");
    c.socket(&clients[3].sid).disconnect(false);
    let got = task.await.unwrap().unwrap();
    assert_eq!(
        got,
        vec![(clients[3].sid.clone(), Err(AckError::Disconnected))]
    );

    // No recipient anywhere: resolves at once with nothing.
    let got =
        a.io.to("nobody")
            .timeout(Duration::from_secs(10))
            .emit_with_ack::<String>("ask", ())
            .await;
    assert_eq!(got.unwrap(), vec![]);
    for n in [&a, &b, &c] {
        eventually("no pending request", || {
            n.cluster.stats().pending_requests == 0
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_is_forgotten_and_does_not_stall_requests() {
    let redis = RedisServer::start().await;
    let [a, b, c] = three_nodes(&redis).await;
    let _a1 = a.client("a1").await;
    let b1 = b.client("b1").await;
    let c1 = c.client("c1").await;
    assert_eq!(a.io.fetch_cluster_sockets().await.len(), 3);

    // C stops without a word (a crash): its clients and every handle go.
    let c_id = c.cluster.node_id();
    drop(c1);
    drop(c);
    // A fetch made meanwhile waits for C only until C is forgotten (about
    // the heartbeat timeout), not for the whole request timeout.
    let started = Instant::now();
    let got = a.io.fetch_cluster_sockets().await;
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_millis(2_500), "{elapsed:?}");
    let ids: Vec<String> = got.iter().map(|s| s.id().to_owned()).collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&b1.sid));
    a.knows(1).await;
    assert!(!a.cluster.nodes().contains(&c_id));
    // Then requests do not wait for it at all.
    let started = Instant::now();
    assert_eq!(a.io.fetch_cluster_sockets().await.len(), 2);
    assert!(started.elapsed() < Duration::from_millis(500));

    // B leaves properly: A forgets it at once.
    let b_id = b.cluster.node_id();
    b.cluster.shutdown().await;
    eventually("A forgot B", || !a.cluster.nodes().contains(&b_id)).await;
    let started = Instant::now();
    assert_eq!(a.io.fetch_cluster_sockets().await.len(), 1);
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(a.cluster.stats().request_timeouts, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_are_counted_and_skipped() {
    init_tracing();
    let redis = RedisServer::start().await;
    let a = SioNode::start("A", config(&redis.url())).await;
    let b = SioNode::start("B", config(&redis.url())).await;
    a.knows(1).await;
    let mut a1 = a.client("a1").await;
    let mut raw = redis.raw().await;
    let hello = wire::Message::new(0xfeed, wire::Body::Heartbeat).encode();
    let mut bad_kind = hello.clone();
    bad_kind[1] = 99;
    let garbage: [&[u8]; 4] = [b"", b"\x07junk", &bad_kind, &hello[..5]];
    for payload in garbage {
        let _: i64 = redis::cmd("PUBLISH")
            .arg("sbtest:sio#")
            .arg(payload)
            .query_async(&mut raw)
            .await
            .unwrap();
    }
    b.io.emit("still", ()).unwrap();
    assert_eq!(a1.expect().await, r#"2["still"]"#);
    eventually("4 decode errors", || a.cluster.stats().decode_errors == 4).await;
    assert!(a.cluster.stats().connected);
}
