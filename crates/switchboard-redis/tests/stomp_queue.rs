//! STOMP `/queue/` destinations shared by several brokers ("nodes") over
//! one Redis (`RedisQueues`): each test starts its own redis-server and
//! two nodes in process, each a broker with its STOMP TCP listener on
//! 127.0.0.1, driven by a raw STOMP client.
#![cfg(feature = "stomp")]

#[path = "../../switchboard-stomp/tests/common/mod.rs"]
mod stomp;
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use stomp::{Conn, Frame};
use support::{config, eventually, init_tracing, RedisServer};
use switchboard_hub::{Hub, HubConfig};
use switchboard_redis::{RedisQueues, StompQueueConfig};
use switchboard_stomp::{serve_tcp, Broker, StompConfig};
use switchboard_transport::Registry;
use tokio::net::TcpListener;

struct Node {
    addr: SocketAddr,
    queues: Arc<RedisQueues>,
    registry: Registry,
    _broker: Broker,
}

impl Node {
    async fn start(url: &str, reclaim_idle_ms: u64) -> Node {
        init_tracing();
        let queues = RedisQueues::new(
            config(url),
            StompQueueConfig {
                reclaim_idle_ms,
                ..StompQueueConfig::default()
            },
        )
        .unwrap();
        let stomp = StompConfig {
            max_in_flight: 5,
            max_queue_length: 1_000,
            ..StompConfig::default()
        };
        let broker = Broker::with_backend(Hub::new(HubConfig::default()), stomp, queues.clone());
        queues.start(&broker).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let registry = Registry::new();
        tokio::spawn(serve_tcp(listener, broker.clone(), registry.clone()));
        let node = Node {
            addr,
            queues,
            registry,
            _broker: broker,
        };
        node.connected(true).await;
        node
    }

    async fn connected(&self, yes: bool) {
        eventually(&format!("connected == {yes}"), || {
            self.queues.stats().connected == yes
        })
        .await;
    }

    async fn client(&self) -> Conn {
        Conn::connected(self.addr).await
    }
}

/// Connections whose last command is `XREADGROUP`: the queue readers
/// (Redis 7.0 lists a consumer only once it has been given something).
async fn readers(redis: &RedisServer) -> usize {
    let mut raw = redis.raw().await;
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut raw)
        .await
        .unwrap();
    list.lines()
        .filter(|l| l.contains("cmd=xreadgroup"))
        .count()
}

async fn wait_readers(redis: &RedisServer, n: usize) {
    let deadline = tokio::time::Instant::now() + support::WAIT;
    while readers(redis).await < n {
        assert!(tokio::time::Instant::now() < deadline, "{n} queue readers");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// SENDs `bodies` to `destination`, pipelined, each with a receipt; waits
/// for every receipt.
async fn send_all(c: &mut Conn, destination: &str, bodies: &[String]) {
    for (i, b) in bodies.iter().enumerate() {
        let receipt = format!("r{i}");
        c.send_frame(
            "SEND",
            &[
                ("destination", destination),
                ("content-type", "text/plain"),
                ("receipt", &receipt),
            ],
            b.as_bytes(),
        )
        .await;
    }
    for i in 0..bodies.len() {
        c.expect_receipt(&format!("r{i}")).await;
    }
}

async fn ack(c: &mut Conn, m: &Frame) {
    c.send_frame("ACK", &[("id", m.header("ack").unwrap())], b"")
        .await;
}

/// Takes messages (acking each) until none comes for `quiet_ms`.
async fn drain(mut c: Conn, quiet_ms: u64) -> (Conn, Vec<String>) {
    let mut got = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_millis(quiet_ms), c.frame()).await {
            Ok(f) => {
                assert_eq!(f.command, "MESSAGE", "{f:?}");
                ack(&mut c, &f).await;
                got.push(f.body_str().to_owned());
            }
            Err(_) => return (c, got),
        }
    }
}

fn bodies(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn competing_consumers_on_two_nodes_share_every_message_once() {
    let redis = RedisServer::start().await;
    let (a, b) = (
        Node::start(&redis.url(), 30_000).await,
        Node::start(&redis.url(), 30_000).await,
    );
    let mut ca = a.client().await;
    let mut cb = b.client().await;
    ca.subscribe("s", "/queue/jobs", "client-individual").await;
    cb.subscribe("s", "/queue/jobs", "client-individual").await;
    wait_readers(&redis, 2).await;

    let sent = bodies("job", 60);
    let mut producer = a.client().await;
    send_all(&mut producer, "/queue/jobs", &sent).await;

    let (ra, rb) = tokio::join!(drain(ca, 700), drain(cb, 700));
    let (got_a, got_b) = (ra.1, rb.1);
    assert!(
        !got_a.is_empty() && !got_b.is_empty(),
        "both nodes get a share: {} / {}",
        got_a.len(),
        got_b.len()
    );
    let mut all: Vec<String> = got_a.iter().chain(&got_b).cloned().collect();
    assert_eq!(all.len(), sent.len(), "no duplicates, nothing missing");
    all.sort();
    let mut expected = sent.clone();
    expected.sort();
    assert_eq!(all, expected);
    // Acknowledged messages are gone from the stream.
    let mut raw = redis.raw().await;
    let len: usize = redis::cmd("XLEN")
        .arg(a.queues.stream_key("jobs"))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(len, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_sent_before_any_consumer_wait_for_the_first_one_and_transactions_apply_at_commit()
{
    let redis = RedisServer::start().await;
    let (a, b) = (
        Node::start(&redis.url(), 30_000).await,
        Node::start(&redis.url(), 30_000).await,
    );
    let mut producer = a.client().await;
    send_all(&mut producer, "/queue/later", &bodies("early", 3)).await;
    // A transaction: its SENDs are stored at COMMIT (whose RECEIPT means
    // stored); an aborted one stores nothing.
    producer
        .send_frame("BEGIN", &[("transaction", "t1")], b"")
        .await;
    for body in ["tx-1", "tx-2"] {
        producer
            .send_frame(
                "SEND",
                &[("destination", "/queue/later"), ("transaction", "t1")],
                body.as_bytes(),
            )
            .await;
    }
    producer
        .send_frame("BEGIN", &[("transaction", "t2")], b"")
        .await;
    producer
        .send_frame(
            "SEND",
            &[("destination", "/queue/later"), ("transaction", "t2")],
            b"aborted",
        )
        .await;
    producer
        .send_frame("ABORT", &[("transaction", "t2")], b"")
        .await;
    producer
        .send_frame("COMMIT", &[("transaction", "t1"), ("receipt", "c")], b"")
        .await;
    producer.expect_receipt("c").await;

    let mut consumer = b.client().await;
    consumer.subscribe("s", "/queue/later", "auto").await;
    let mut got = Vec::new();
    for _ in 0..5 {
        let m = consumer.message().await;
        assert_eq!(m.header("destination"), Some("/queue/later"));
        assert_eq!(m.header("content-type").is_some(), got.len() < 3, "{m:?}");
        assert_eq!(m.header("redelivered"), None);
        got.push(m.body_str().to_owned());
    }
    assert_eq!(got, ["early-0", "early-1", "early-2", "tx-1", "tx-2"]);
    consumer.expect_silence(300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nack_and_disconnect_redeliver_on_any_node_marked_redelivered() {
    let redis = RedisServer::start().await;
    let (a, b) = (
        Node::start(&redis.url(), 30_000).await,
        Node::start(&redis.url(), 30_000).await,
    );
    let mut ca = a.client().await;
    ca.subscribe("s", "/queue/work", "client-individual").await;
    let mut producer = b.client().await;
    send_all(&mut producer, "/queue/work", &bodies("w", 1)).await;
    let m = ca.message().await;
    assert_eq!((m.body_str(), m.header("redelivered")), ("w-0", None));

    // NACK: back in Redis, fetched again (here: the only consumer).
    ca.send_frame("NACK", &[("id", m.header("ack").unwrap())], b"")
        .await;
    let m = ca.message().await;
    assert_eq!(
        (m.body_str(), m.header("redelivered")),
        ("w-0", Some("true"))
    );

    // A consumer on the other node; the first one goes away without
    // acknowledging: the message goes to the other node.
    let mut cb = b.client().await;
    cb.subscribe("s", "/queue/work", "client").await;
    cb.expect_silence(200).await;
    drop(ca);
    let m = cb.message().await;
    assert_eq!(
        (m.body_str(), m.header("redelivered")),
        ("w-0", Some("true"))
    );
    ack(&mut cb, &m).await;
    cb.expect_silence(300).await;
    // NACK, disconnect (and maybe a bounce: fetched for the consumer that
    // was leaving, given back at once).
    assert!(a.queues.stats().released >= 2, "{:?}", a.queues.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_messages_are_taken_over_after_the_idle_timeout() {
    let redis = RedisServer::start().await;
    let idle = 600;
    let (a, b) = (
        Node::start(&redis.url(), idle).await,
        Node::start(&redis.url(), idle).await,
    );
    let mut ca = a.client().await;
    ca.subscribe("s", "/queue/dead", "client-individual").await;
    let mut producer = b.client().await;
    send_all(&mut producer, "/queue/dead", &bodies("d", 3)).await;
    for i in 0..3 {
        assert_eq!(ca.message().await.body_str(), format!("d-{i}"));
    }
    let mut cb = b.client().await;
    cb.subscribe("s", "/queue/dead", "client-individual").await;
    // Node A is alive and refreshes what it holds: B takes nothing over.
    cb.expect_silence(2 * idle).await;

    // Node A dies: its tasks stop without a word to Redis, then the rest
    // of it goes.
    a.queues.shutdown();
    a.registry.trigger();
    drop(ca);
    drop(a);
    let mut got = Vec::new();
    for _ in 0..3 {
        let m = cb.message().await;
        assert_eq!(m.header("redelivered"), Some("true"), "{m:?}");
        ack(&mut cb, &m).await;
        got.push(m.body_str().to_owned());
    }
    got.sort();
    assert_eq!(got, ["d-0", "d-1", "d-2"]);
    assert_eq!(b.queues.stats().reclaimed, 3);
    cb.expect_silence(2 * idle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_while_redis_is_down_is_an_error_and_consumers_survive_a_restart() {
    let mut redis = RedisServer::start().await;
    let (a, b) = (
        Node::start(&redis.url(), 30_000).await,
        Node::start(&redis.url(), 30_000).await,
    );
    let mut consumer = b.client().await;
    consumer.subscribe("s", "/queue/r", "auto").await;
    let mut producer = a.client().await;
    send_all(&mut producer, "/queue/r", &bodies("before", 1)).await;
    assert_eq!(consumer.message().await.body_str(), "before-0");

    redis.kill();
    a.connected(false).await;
    producer
        .send_frame(
            "SEND",
            &[("destination", "/queue/r"), ("receipt", "lost")],
            b"x",
        )
        .await;
    let e = producer.expect_error().await;
    assert_eq!(e.header("receipt-id"), Some("lost"));
    assert!(
        e.header("message")
            .unwrap()
            .contains("not queued\\c redis unavailable"),
        "{e:?}"
    );

    redis.restart().await;
    a.connected(true).await;
    let mut producer = a.client().await;
    send_all(&mut producer, "/queue/r", &bodies("after", 2)).await;
    // The consumer stayed connected; its node's reader reconnected and
    // created the (lost) group again.
    assert_eq!(consumer.message().await.body_str(), "after-0");
    assert_eq!(consumer.message().await.body_str(), "after-1");
    assert!(b.queues.stats().lost_groups >= 1, "{:?}", b.queues.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_the_send() {
    let redis = RedisServer::start().await;
    let queues = RedisQueues::new(config(&redis.url()), StompQueueConfig::default()).unwrap();
    let stomp = StompConfig {
        max_queue_length: 2,
        ..StompConfig::default()
    };
    let broker = Broker::with_backend(Hub::new(HubConfig::default()), stomp, queues.clone());
    queues.start(&broker).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_tcp(listener, broker.clone(), Registry::new()));
    eventually("connected", || queues.stats().connected).await;
    let mut c = Conn::connected(addr).await;
    send_all(&mut c, "/queue/small", &bodies("m", 2)).await;
    c.send_frame(
        "SEND",
        &[("destination", "/queue/small"), ("receipt", "3")],
        b"m-2",
    )
    .await;
    let e = c.expect_error().await;
    assert_eq!(e.header("receipt-id"), Some("3"));
    // (`\\c` is the escaped `:` of STOMP 1.2 headers.)
    assert_eq!(
        e.header("message"),
        Some("/queue/small\\c queue full (2 messages waiting)")
    );
}
