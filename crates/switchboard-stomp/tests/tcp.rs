//! Raw TCP STOMP clients against `serve_tcp` on 127.0.0.1:0.

mod common;

use std::time::Duration;

use common::{start, start_with_hub, Conn};
use switchboard_hub::{ClientInfo, Delivery, HubConfig, Payload, PayloadKind};
use switchboard_stomp::{Action, StaticUsers, StompConfig};
use switchboard_stomp_proto::HeartBeat;

fn users() -> StompConfig {
    StompConfig::default().with_authenticator(
        StaticUsers::new()
            .user("alice", "secret")
            .allow_anonymous(true),
    )
}

// ---- connecting -------------------------------------------------------------

#[tokio::test]
async fn connect_anonymous_with_credentials_and_bad_credentials() {
    let server = start(users()).await;

    let (_anon, f) = Conn::login(server.addr, None).await;
    assert_eq!(f.command, "CONNECTED");
    assert_eq!(f.header("version"), Some("1.2"));
    assert_eq!(f.header("user-name"), None);

    let (_alice, f) = Conn::login(server.addr, Some(("alice", "secret"))).await;
    assert_eq!(f.command, "CONNECTED");
    assert_eq!(f.header("user-name"), Some("alice"));

    let (mut bad, f) = Conn::login(server.addr, Some(("alice", "wrong"))).await;
    assert_eq!(f.command, "ERROR");
    assert_eq!(f.header("message"), Some("bad credentials"));
    bad.expect_closed().await;
}

#[tokio::test]
async fn login_required_without_anonymous() {
    let config =
        StompConfig::default().with_authenticator(StaticUsers::new().user("alice", "secret"));
    let server = start(config).await;
    let (mut c, f) = Conn::login(server.addr, None).await;
    assert_eq!(f.command, "ERROR");
    assert_eq!(f.header("message"), Some("login required"));
    c.expect_closed().await;
}

#[tokio::test]
async fn frames_before_connect_are_an_error() {
    let server = start(StompConfig::default()).await;
    let mut c = Conn::open(server.addr).await;
    c.send_frame("SEND", &[("destination", "/topic/a")], b"hi")
        .await;
    let f = c.expect_error().await;
    assert_eq!(f.header("message"), Some("CONNECT expected"));
}

#[tokio::test]
async fn silent_connection_is_closed_after_the_connect_timeout() {
    let config = StompConfig {
        connect_timeout: Duration::from_millis(200),
        ..StompConfig::default()
    };
    let server = start(config).await;
    let mut c = Conn::open(server.addr).await;
    let f = c.expect_error().await;
    assert_eq!(f.header("message"), Some("connect timeout"));
}

#[tokio::test]
async fn heart_beats_are_sent_and_a_silent_client_is_dropped() {
    let mut config = StompConfig::default();
    config.session.heart_beat = HeartBeat::from_millis(100, 100);
    let server = start(config).await;
    let mut c = Conn::open(server.addr).await;
    c.send(b"CONNECT\naccept-version:1.2\nhost:/\nheart-beat:100,100\n\n\0")
        .await;
    let f = c.frame().await;
    assert_eq!(f.header("heart-beat"), Some("100,100"));
    // We keep quiet: the server sends EOLs every ~100 ms, then drops us
    // after 1.5 x 100 ms without anything from us.
    let (bytes, closed) = c.read_raw(2000).await;
    assert!(closed, "silent client not dropped");
    assert!(
        !bytes.is_empty() && bytes.iter().all(|&b| b == b'\n'),
        "{bytes:?}"
    );
}

#[tokio::test]
async fn receipts_and_disconnect() {
    let server = start(StompConfig::default()).await;
    let mut c = Conn::connected(server.addr).await;
    c.subscribe("0", "/topic/a", "auto").await;
    c.send_frame("UNSUBSCRIBE", &[("id", "0"), ("receipt", "u")], b"")
        .await;
    c.expect_receipt("u").await;
    c.send_frame("DISCONNECT", &[("receipt", "bye")], b"").await;
    c.expect_receipt("bye").await;
    c.expect_closed().await;
}

#[tokio::test]
async fn shutdown_sends_error_and_closes() {
    let server = start(StompConfig::default()).await;
    let mut c = Conn::connected(server.addr).await;
    server.registry.trigger();
    let f = c.expect_error().await;
    assert_eq!(f.header("message"), Some("server shutting down"));
    assert_eq!(server.registry.wait_idle(Duration::from_secs(5)).await, 0);
}

// ---- destinations and permissions -------------------------------------------

#[tokio::test]
async fn unknown_destination_is_an_error() {
    let server = start(StompConfig::default()).await;
    let mut c = Conn::connected(server.addr).await;
    c.send_frame(
        "SUBSCRIBE",
        &[
            ("id", "0"),
            ("destination", "/exchange/x"),
            ("receipt", "r"),
        ],
        b"",
    )
    .await;
    let f = c.expect_error().await;
    assert_eq!(f.header("message"), Some("invalid destination"));
    assert_eq!(f.header("receipt-id"), Some("r"));
}

#[tokio::test]
async fn forbidden_destination_is_an_error() {
    let config = users().with_permission(|user, destination, action| {
        !(destination == "/queue/secret" && action == Action::Subscribe && user.is_anonymous())
    });
    let server = start(config).await;

    let mut alice = Conn::login(server.addr, Some(("alice", "secret"))).await.0;
    alice.subscribe("0", "/queue/secret", "auto").await;

    let mut anon = Conn::connected(server.addr).await;
    anon.send_text("/queue/secret", "sending is allowed").await;
    anon.send_frame(
        "SUBSCRIBE",
        &[("id", "0"), ("destination", "/queue/secret")],
        b"",
    )
    .await;
    let f = anon.expect_error().await;
    assert_eq!(
        f.header("message"),
        Some("subscribing to /queue/secret not allowed")
    );
    assert_eq!(alice.message().await.body_str(), "sending is allowed");
}

// ---- topics -----------------------------------------------------------------

#[tokio::test]
async fn topic_reaches_every_subscriber() {
    let server = start(StompConfig::default()).await;
    let mut a = Conn::connected(server.addr).await;
    let mut b = Conn::connected(server.addr).await;
    a.subscribe("sa", "/topic/chat", "auto").await;
    b.subscribe("sb", "/topic/chat", "auto").await;

    let mut sender = Conn::connected(server.addr).await;
    sender.send_text("/topic/chat", "hello").await;

    for (c, sub) in [(&mut a, "sa"), (&mut b, "sb")] {
        let m = c.message().await;
        assert_eq!(m.header("subscription"), Some(sub));
        assert_eq!(m.header("destination"), Some("/topic/chat"));
        assert_eq!(m.header("content-type"), Some("text/plain;charset=utf-8"));
        assert_eq!(m.body_str(), "hello");
    }
    // Unsubscribed: no more messages.
    a.send_frame("UNSUBSCRIBE", &[("id", "sa"), ("receipt", "u")], b"")
        .await;
    a.expect_receipt("u").await;
    sender.send_text("/topic/chat", "again").await;
    assert_eq!(b.message().await.body_str(), "again");
    a.expect_silence(200).await;
}

#[tokio::test]
async fn topic_is_shared_with_other_protocols() {
    let server = start(StompConfig::default()).await;
    let hub = server.broker.hub().clone();
    let mut c = Conn::connected(server.addr).await;
    c.subscribe("0", "/topic/news", "auto").await;

    // Published on the hub (as a Socket.IO or WebSocket client would).
    hub.publish("news", Payload::json(r#"{"a":1}"#), None)
        .unwrap();
    let m = c.message().await;
    assert_eq!(m.header("content-type"), Some("application/json"));
    assert_eq!(m.body_str(), r#"{"a":1}"#);

    hub.publish("news", Payload::binary(vec![0u8, 1, 0]), None)
        .unwrap();
    let m = c.message().await;
    assert_eq!(m.header("content-type"), Some("application/octet-stream"));
    assert_eq!(m.body, vec![0u8, 1, 0]);

    // And the other way: a STOMP SEND reaches a hub subscriber.
    let ws = hub.connect(ClientInfo::new("ws-client", "websocket"));
    ws.subscribe("news", None).unwrap();
    c.send_text("/topic/news", "from stomp").await;
    c.message().await; // c is subscribed too
    let mut out = Vec::new();
    ws.mailbox().drain(&mut out);
    let Some(Delivery::Message(p)) = out.into_iter().find(|d| matches!(d, Delivery::Message(_)))
    else {
        panic!("no publication")
    };
    assert_eq!(p.payload.kind, PayloadKind::Text);
    assert_eq!(&p.payload.data[..], b"from stomp");
    assert_eq!(p.from.as_deref(), Some("anonymous"));
}

#[tokio::test]
async fn binary_bodies_with_nuls_stay_intact() {
    let server = start(StompConfig::default()).await;
    let mut c = Conn::connected(server.addr).await;
    c.subscribe("t", "/topic/bin", "auto").await;
    c.subscribe("q", "/queue/bin", "auto").await;
    let body = [0u8, 1, 0, 2, 0xff, 0];
    for dest in ["/topic/bin", "/queue/bin"] {
        c.send_frame(
            "SEND",
            &[
                ("destination", dest),
                ("content-type", "application/octet-stream"),
            ],
            &body,
        )
        .await;
        let m = c.message().await;
        assert_eq!(m.header("destination"), Some(dest));
        assert_eq!(m.header("content-type"), Some("application/octet-stream"));
        assert_eq!(m.header("content-length"), Some("6"));
        assert_eq!(m.body, body);
    }
}

// ---- queues -----------------------------------------------------------------

#[tokio::test]
async fn queue_round_robin_between_competing_consumers() {
    let server = start(StompConfig::default()).await;
    let mut a = Conn::connected(server.addr).await;
    let mut b = Conn::connected(server.addr).await;
    a.subscribe("0", "/queue/work", "auto").await;
    b.subscribe("0", "/queue/work", "auto").await;
    let mut p = Conn::connected(server.addr).await;
    for i in 1..=4 {
        p.send_text("/queue/work", &format!("job {i}")).await;
    }
    assert_eq!(a.message().await.body_str(), "job 1");
    assert_eq!(b.message().await.body_str(), "job 2");
    assert_eq!(a.message().await.body_str(), "job 3");
    let m = b.message().await;
    assert_eq!(m.body_str(), "job 4");
    assert_eq!(m.header("destination"), Some("/queue/work"));
    assert_eq!(m.header("content-type"), Some("text/plain"));
    a.expect_silence(100).await;
    assert_eq!(server.broker.queue_len("work"), 0);
}

#[tokio::test]
async fn queue_messages_wait_for_a_consumer() {
    let server = start(StompConfig::default()).await;
    let mut p = Conn::connected(server.addr).await;
    for i in 1..=3 {
        p.send_text("/queue/later", &format!("m{i}")).await;
    }
    assert_eq!(server.broker.queue_len("later"), 3);
    let mut c = Conn::connected(server.addr).await;
    c.subscribe("0", "/queue/later", "auto").await;
    for i in 1..=3 {
        let m = c.message().await;
        assert_eq!(m.body_str(), format!("m{i}"));
        assert_eq!(m.header("redelivered"), None);
    }
    assert_eq!(server.broker.queue_len("later"), 0);
}

#[tokio::test]
async fn queue_bound_refuses_sends() {
    let config = StompConfig {
        max_queue_length: 2,
        ..StompConfig::default()
    };
    let server = start(config).await;
    let mut p = Conn::connected(server.addr).await;
    p.send_text("/queue/small", "1").await;
    p.send_text("/queue/small", "2").await;
    p.send_frame(
        "SEND",
        &[("destination", "/queue/small"), ("receipt", "r")],
        b"3",
    )
    .await;
    let f = p.expect_error().await;
    assert_eq!(f.header("receipt-id"), Some("r"));
    assert!(f.header("message").unwrap().contains("queue full"), "{f:?}");
    assert_eq!(server.broker.queue_len("small"), 2);
}

#[tokio::test]
async fn client_individual_ack_and_nack_redelivery() {
    let server = start(StompConfig::default()).await;
    let mut c = Conn::connected(server.addr).await;
    c.subscribe("0", "/queue/jobs", "client-individual").await;
    let mut p = Conn::connected(server.addr).await;
    p.send_text("/queue/jobs", "one").await;
    p.send_text("/queue/jobs", "two").await;
    let one = c.message().await;
    let two = c.message().await;
    assert_eq!((one.body_str(), two.body_str()), ("one", "two"));

    c.send_frame("NACK", &[("id", one.header("ack").unwrap())], b"")
        .await;
    let again = c.message().await;
    assert_eq!(again.body_str(), "one");
    assert_eq!(again.header("redelivered"), Some("true"));
    assert_ne!(again.header("message-id"), one.header("message-id"));

    c.send_frame("ACK", &[("id", two.header("ack").unwrap())], b"")
        .await;
    c.send_frame(
        "ACK",
        &[("id", again.header("ack").unwrap()), ("receipt", "done")],
        b"",
    )
    .await;
    c.expect_receipt("done").await;
    c.send_frame("DISCONNECT", &[], b"").await;
    c.expect_closed().await;

    // Everything was acknowledged: nothing comes back.
    let mut d = Conn::connected(server.addr).await;
    d.subscribe("0", "/queue/jobs", "auto").await;
    d.expect_silence(200).await;
}

#[tokio::test]
async fn client_ack_is_cumulative() {
    let server = start(StompConfig::default()).await;
    let mut c = Conn::connected(server.addr).await;
    c.subscribe("0", "/queue/cum", "client").await;
    let mut p = Conn::connected(server.addr).await;
    for i in 1..=3 {
        p.send_text("/queue/cum", &format!("m{i}")).await;
    }
    let mut last = None;
    for _ in 1..=3 {
        last = Some(c.message().await);
    }
    let last = last.unwrap();
    c.send_frame(
        "ACK",
        &[("id", last.header("ack").unwrap()), ("receipt", "a")],
        b"",
    )
    .await;
    c.expect_receipt("a").await;
    drop(c);
    let mut d = Conn::connected(server.addr).await;
    d.subscribe("0", "/queue/cum", "auto").await;
    d.expect_silence(200).await;
}

#[tokio::test]
async fn unacked_messages_are_redelivered_when_a_consumer_leaves() {
    let server = start(StompConfig::default()).await;
    let mut a = Conn::connected(server.addr).await;
    a.subscribe("0", "/queue/r", "client").await;
    let mut p = Conn::connected(server.addr).await;
    p.send_text("/queue/r", "first").await;
    p.send_text("/queue/r", "second").await;
    assert_eq!(a.message().await.body_str(), "first");
    assert_eq!(a.message().await.body_str(), "second");

    // Another consumer joins; a leaves without acknowledging.
    let mut b = Conn::connected(server.addr).await;
    b.subscribe("0", "/queue/r", "client-individual").await;
    drop(a);
    for body in ["first", "second"] {
        let m = b.message().await;
        assert_eq!(m.body_str(), body);
        assert_eq!(m.header("redelivered"), Some("true"));
    }

    // UNSUBSCRIBE also returns unacknowledged messages.
    let mut c = Conn::connected(server.addr).await;
    c.subscribe("0", "/queue/r", "auto").await;
    b.send_frame("UNSUBSCRIBE", &[("id", "0")], b"").await;
    for body in ["first", "second"] {
        let m = c.message().await;
        assert_eq!(m.body_str(), body);
        assert_eq!(m.header("redelivered"), Some("true"));
    }
}

// ---- transactions -----------------------------------------------------------

#[tokio::test]
async fn transaction_commit_and_abort() {
    let server = start(StompConfig::default()).await;
    let mut p = Conn::connected(server.addr).await;
    let mut c = Conn::connected(server.addr).await;
    c.subscribe("0", "/queue/tx", "auto").await;

    p.send_frame("BEGIN", &[("transaction", "t1")], b"").await;
    for body in ["a", "b"] {
        p.send_frame(
            "SEND",
            &[("destination", "/queue/tx"), ("transaction", "t1")],
            body.as_bytes(),
        )
        .await;
    }
    p.send_frame(
        "SEND",
        &[
            ("destination", "/topic/tx"),
            ("transaction", "t1"),
            ("receipt", "buffered"),
        ],
        b"topic",
    )
    .await;
    p.expect_receipt("buffered").await;
    c.expect_silence(100).await;

    p.send_frame("COMMIT", &[("transaction", "t1"), ("receipt", "c")], b"")
        .await;
    p.expect_receipt("c").await;
    assert_eq!(c.message().await.body_str(), "a");
    assert_eq!(c.message().await.body_str(), "b");

    p.send_frame("BEGIN", &[("transaction", "t2")], b"").await;
    p.send_frame(
        "SEND",
        &[("destination", "/queue/tx"), ("transaction", "t2")],
        b"dropped",
    )
    .await;
    p.send_frame("ABORT", &[("transaction", "t2"), ("receipt", "ab")], b"")
        .await;
    p.expect_receipt("ab").await;
    c.expect_silence(200).await;
    assert_eq!(server.broker.queue_len("tx"), 0);
}

#[tokio::test]
async fn aborted_ack_is_undone_and_disconnect_aborts() {
    let server = start(StompConfig::default()).await;
    let mut c = Conn::connected(server.addr).await;
    c.subscribe("0", "/queue/txack", "client-individual").await;
    let mut p = Conn::connected(server.addr).await;
    p.send_text("/queue/txack", "m").await;
    let m = c.message().await;

    c.send_frame("BEGIN", &[("transaction", "t")], b"").await;
    c.send_frame(
        "ACK",
        &[("id", m.header("ack").unwrap()), ("transaction", "t")],
        b"",
    )
    .await;
    c.send_frame("ABORT", &[("transaction", "t")], b"").await;
    let again = c.message().await;
    assert_eq!(again.body_str(), "m");
    assert_eq!(again.header("redelivered"), Some("true"));

    // A committed ACK sticks.
    c.send_frame("BEGIN", &[("transaction", "t2")], b"").await;
    c.send_frame(
        "ACK",
        &[("id", again.header("ack").unwrap()), ("transaction", "t2")],
        b"",
    )
    .await;
    c.send_frame("COMMIT", &[("transaction", "t2"), ("receipt", "c")], b"")
        .await;
    c.expect_receipt("c").await;

    // DISCONNECT with an open transaction: its SENDs are discarded.
    c.send_frame("BEGIN", &[("transaction", "t3")], b"").await;
    c.send_frame(
        "SEND",
        &[("destination", "/queue/txack"), ("transaction", "t3")],
        b"never",
    )
    .await;
    c.send_frame("DISCONNECT", &[("receipt", "bye")], b"").await;
    c.expect_receipt("bye").await;
    c.expect_closed().await;

    let mut d = Conn::connected(server.addr).await;
    d.subscribe("0", "/queue/txack", "auto").await;
    d.expect_silence(200).await;
    assert_eq!(server.broker.queue_len("txack"), 0);
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_is_dropped_and_the_others_get_everything() {
    let hub_config = HubConfig {
        mailbox_max_messages: 128,
        ..HubConfig::default()
    };
    let server = start_with_hub(StompConfig::default(), hub_config).await;
    let hub = server.broker.hub().clone();
    let mut stalled = Conn::connected(server.addr).await;
    stalled.subscribe("s", "/topic/flood", "auto").await;
    let mut fast = Conn::connected(server.addr).await;
    fast.subscribe("f", "/topic/flood", "auto").await;
    // 32 MB, the publisher at most 32 messages ahead of the reader.
    let body = "x".repeat(16 * 1024);
    let total = 2000;
    let mut received = 0;
    for sent in 1..=total {
        hub.publish("flood", Payload::text(body.clone()), None)
            .unwrap();
        while sent - received > 32 {
            assert_eq!(fast.message().await.body.len(), body.len());
            received += 1;
        }
    }
    while received < total {
        fast.message().await;
        received += 1;
    }
    // The stalled one is dropped while it still reads nothing (its socket
    // stopped taking data, its mailbox overflowed)...
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while hub.stats().clients > 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stalled subscriber is still connected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ...and finds what the kernel buffered, then the end of the connection.
    let mut closed = false;
    for _ in 0..50 {
        let (_, eof) = stalled.read_raw(200).await;
        if eof {
            closed = true;
            break;
        }
    }
    assert!(closed, "the stalled subscriber's connection did not end");
}
