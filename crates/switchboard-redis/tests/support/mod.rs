//! Test support: a private `redis-server` per test (killed on drop), nodes
//! (a hub with its Redis backplane), and bounded waits.

#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use switchboard_hub::{Client, ClientInfo, Delivery, Hub, HubConfig, Publication};
use switchboard_redis::{RedisBackplane, RedisConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// Generous bound for anything that should happen "at once" over loopback.
pub const WAIT: Duration = Duration::from_secs(5);

/// A `redis-server` on 127.0.0.1 with a free port, no persistence; killed
/// when dropped.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    pub async fn start() -> RedisServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = RedisServer { port, child: None };
        server.spawn().await;
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) {
        let port = self.port.to_string();
        let child = Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-server is not installed; these tests start their own: \
                 apt-get install -y redis-server"
            ),
            Err(e) => panic!("cannot start redis-server: {e}"),
        };
        self.child = Some(child);
        let deadline = Instant::now() + WAIT;
        while !self.ping().await {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("redis-server on port {port} exited: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {port} not ready"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn ping(&self) -> bool {
        let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").await.is_ok()
            && s.read_exact(&mut buf).await.is_ok()
            && &buf == b"+PONG\r\n"
    }

    /// Kills the server (SIGKILL: clients see their connections reset).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (empty: no persistence).
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    /// A plain client connection for checks and raw commands.
    pub async fn raw(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .expect("raw connection")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `PUBSUB NUMSUB channel`: subscriptions to `channel` on the server.
pub async fn numsub(raw: &mut redis::aio::MultiplexedConnection, channel: &str) -> i64 {
    let (_, n): (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(raw)
        .await
        .expect("PUBSUB NUMSUB");
    n
}

/// A node: a hub with a started Redis backplane.
pub struct Node {
    pub hub: Hub,
    pub bp: Arc<RedisBackplane>,
}

/// Test defaults: prefix `sbtest`, fast reconnects and health checks; each
/// node numbers and delivers its own publications (no shared history).
pub fn config(url: &str) -> RedisConfig {
    RedisConfig {
        shared_history: false,
        ..shared(url)
    }
}

/// [`config`] with shared history: Redis numbers publications.
#[allow(dead_code)] // not every test binary uses it
pub fn shared(url: &str) -> RedisConfig {
    RedisConfig {
        prefix: "sbtest".into(),
        reconnect_min_ms: 20,
        reconnect_max_ms: 200,
        ping_interval_ms: 200,
        command_timeout_ms: 2_000,
        ..RedisConfig::new(url)
    }
}

/// Logs to the test output with `RUST_LOG` (e.g. `RUST_LOG=switchboard_redis=debug`).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

impl Node {
    pub fn start(config: RedisConfig) -> Node {
        init_tracing();
        let bp = RedisBackplane::new(config).expect("valid config");
        let hub = Hub::with_backplane(
            HubConfig {
                mailbox_max_messages: 100_000,
                mailbox_max_bytes: 64 << 20,
                presence_events: false,
                ..HubConfig::default()
            },
            bp.clone(),
        );
        bp.start(&hub).expect("start");
        Node { hub, bp }
    }

    pub fn client(&self, name: &str) -> Client {
        self.hub.connect(ClientInfo::new(name, "websocket"))
    }

    /// Waits until Redis confirmed this node's subscription to `topic`
    /// (`true`) or its unsubscription (`false`).
    pub async fn subscribed(&self, topic: &str, yes: bool) {
        eventually(&format!("subscribed({topic}) == {yes}"), || {
            self.bp.is_subscribed(topic) == yes
        })
        .await;
    }
}

/// Polls `cond` until it holds, failing after [`WAIT`].
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Polls an async condition for up to [`WAIT`].
pub async fn eventually_async<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Receives publications until `n` arrived (waiting at most [`WAIT`] for
/// each next one); fails on a presence event or a slow-consumer overflow.
pub async fn recv(c: &Client, n: usize) -> Vec<Arc<Publication>> {
    let mut got = Vec::new();
    let mut out = Vec::new();
    while got.len() < n {
        if tokio::time::timeout(WAIT, c.mailbox().ready())
            .await
            .is_err()
        {
            panic!("{}: got {} of {n} publications", c.info().name, got.len());
        }
        assert!(!c.mailbox().is_overflowed(), "mailbox overflowed");
        c.mailbox().drain(&mut out);
        for d in out.drain(..) {
            match d {
                Delivery::Message(p) => got.push(p),
                other => panic!("unexpected delivery {other:?}"),
            }
        }
    }
    got
}

/// Texts of publications.
pub fn texts(ps: &[Arc<Publication>]) -> Vec<String> {
    ps.iter()
        .map(|p| String::from_utf8_lossy(&p.payload.data).into_owned())
        .collect()
}

/// Whatever is in the mailbox now, without waiting.
pub fn pending(c: &Client) -> Vec<Delivery> {
    let mut out = Vec::new();
    c.mailbox().drain(&mut out);
    out
}
