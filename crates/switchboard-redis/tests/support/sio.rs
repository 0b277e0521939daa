//! Socket.IO test support: a node (a `SocketIo` with a started
//! `RedisSocketIoCluster`, served over the tokio Engine.IO transport on a
//! free loopback port) and a minimal Socket.IO client over WebSocket (the
//! project's sans-IO core in client role): Engine.IO open, `40` connect,
//! pings answered, packets read as text.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use switchboard_redis::{RedisConfig, RedisSocketIoCluster, SocketIoClusterConfig};
use switchboard_socketio::{
    Config, ConnectError, RecoveryConfig, SocketData, SocketIo, SocketRef, Value,
};
use switchboard_transport::engineio::{EngineIo, EngineIoConfig};
use switchboard_transport::Registry;
use switchboard_websocket::handshake::client::ClientRequest;
use switchboard_websocket::{Config as WsConfig, Connection, Event, Role};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Fast cluster timings for tests.
pub fn cluster_options() -> SocketIoClusterConfig {
    SocketIoClusterConfig {
        heartbeat_interval_ms: 100,
        heartbeat_timeout_ms: 1_000,
        request_timeout_ms: 3_000,
    }
}

/// Connection state recovery with a 30 s window.
#[allow(dead_code)] // not every test binary uses every helper
pub fn recovery() -> Option<RecoveryConfig> {
    Some(RecoveryConfig {
        max_disconnection_duration: Duration::from_secs(30),
        ..RecoveryConfig::default()
    })
}

/// Whether the session of `pid` is stored (under the tests' `sbtest`
/// prefix) with `room` among its rooms.
#[allow(dead_code)] // not every test binary uses every helper
pub async fn stored_with_room(redis: &crate::support::RedisServer, pid: &str, room: &str) -> bool {
    let mut raw = redis.raw().await;
    let v: Option<Vec<u8>> = redis::cmd("GET")
        .arg(format!("sbtest:sio:session:{pid}:/"))
        .query_async(&mut raw)
        .await
        .unwrap();
    v.is_some_and(|b| b.windows(room.len()).any(|w| w == room.as_bytes()))
}

/// A Socket.IO server with its Redis cluster, serving on 127.0.0.1.
pub struct SioNode {
    pub name: &'static str,
    pub io: SocketIo,
    pub cluster: Arc<RedisSocketIoCluster>,
    pub addr: SocketAddr,
    accept: JoinHandle<()>,
}

#[allow(dead_code)] // not every test binary uses every helper
impl SioNode {
    /// Starts a node named `name`: its sockets carry
    /// `SocketData({"node": name, "user": auth.user})`.
    pub async fn start(name: &'static str, config: RedisConfig) -> SioNode {
        Self::start_with(name, config, None).await
    }

    /// Like [`start`](Self::start), with connection state recovery.
    pub async fn start_with(
        name: &'static str,
        config: RedisConfig,
        recovery: Option<RecoveryConfig>,
    ) -> SioNode {
        super::init_tracing();
        let cluster = RedisSocketIoCluster::with_options(config, cluster_options()).unwrap();
        let io = SocketIo::with_config(Config {
            cluster: Some(cluster.clone()),
            connection_state_recovery: recovery,
            ..Config::default()
        });
        io.ns("/", |_s: SocketRef| {})
            .middleware(move |s: &SocketRef| {
                let user = s
                    .handshake()
                    .auth()
                    .get("user")
                    .cloned()
                    .unwrap_or(Value::Null);
                let data = Value::Object(vec![("node".into(), name.into()), ("user".into(), user)]);
                s.extensions().insert(SocketData(data));
                Ok::<(), ConnectError>(())
            });
        cluster.start(&io).unwrap();
        let eio = EngineIo::new(io.clone(), EngineIoConfig::default(), Registry::new());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let eio = eio.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let eio = eio.clone();
                        async move { Ok::<_, Infallible>(eio.handle(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        SioNode {
            name,
            io,
            cluster,
            addr,
            accept,
        }
    }

    /// Waits until this node knows `n` other nodes.
    pub async fn knows(&self, n: usize) {
        super::eventually(&format!("{} knows {n} nodes", self.name), || {
            self.cluster.nodes().len() == n
        })
        .await;
    }

    /// A client of this node, connected to `/` as `user`.
    pub async fn client(&self, user: &str) -> SioClient {
        SioClient::connect(self.addr, user).await
    }

    /// The local socket `sid`.
    pub fn socket(&self, sid: &str) -> SocketRef {
        self.io.of("/").get_socket(sid).expect("a local socket")
    }
}

impl Drop for SioNode {
    fn drop(&mut self) {
        self.accept.abort();
        self.io.close();
    }
}

/// A Socket.IO client over WebSocket.
pub struct SioClient {
    pub user: String,
    pub sid: String,
    stream: TcpStream,
    conn: Connection,
    /// Engine.IO messages received: text as is, binary as `<bin:...>`.
    inbox: VecDeque<String>,
    eof: bool,
}

#[allow(dead_code)] // not every test binary uses every helper
impl SioClient {
    pub async fn connect(addr: SocketAddr, user: &str) -> SioClient {
        Self::connect_with(addr, user, "").await.0
    }

    /// Connects with `extra` (JSON members, e.g. `"pid":"..","offset":".."`)
    /// in the auth payload; also returns the CONNECT packet's data.
    pub async fn connect_with(
        addr: SocketAddr,
        user: &str,
        extra: &str,
    ) -> (SioClient, serde_json::Value) {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let path = "/socket.io/?EIO=4&transport=websocket";
        let (request, handshake) = ClientRequest::new(&addr.to_string(), path).encode();
        stream.write_all(&request).await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let leftover = loop {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "server closed during the handshake");
            buf.extend_from_slice(&chunk[..n]);
            if let Some((_, used)) = handshake.parse_response(&buf).expect("handshake accepted") {
                break buf.split_off(used);
            }
        };
        let mut c = SioClient {
            user: user.to_owned(),
            sid: String::new(),
            stream,
            conn: Connection::new(Role::Client, WsConfig::default()),
            inbox: VecDeque::new(),
            eof: false,
        };
        c.feed(leftover);
        let open = c.engine_message().await.expect("the Engine.IO open packet");
        assert!(open.starts_with("0{"), "{open}");
        let extra = if extra.is_empty() {
            String::new()
        } else {
            format!(",{extra}")
        };
        c.send(&format!(r#"0{{"user":"{user}"{extra}}}"#)).await;
        let connect = c.next().await.expect("CONNECT");
        let json = connect
            .strip_prefix('0')
            .unwrap_or_else(|| panic!("{connect}"));
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        c.sid = v["sid"].as_str().unwrap().to_owned();
        (c, v)
    }

    fn feed(&mut self, mut data: Vec<u8>) {
        let inbox = &mut self.inbox;
        let _ = self.conn.receive(&mut data, |ev, _w| match ev {
            Event::Text(t) => inbox.push_back(t.to_owned()),
            Event::Binary(b) => inbox.push_back(format!("<bin:{}>", String::from_utf8_lossy(b))),
            Event::Close(_) => inbox.push_back("<close>".into()),
            Event::Ping(_) | Event::Pong(_) => {}
        });
    }

    async fn flush(&mut self) {
        let mut out: Vec<Bytes> = Vec::new();
        self.conn.writer().take_output(&mut out);
        for b in out {
            if self.stream.write_all(&b).await.is_err() {
                break;
            }
        }
    }

    /// Sends one Engine.IO message (`4` is added: `send("2[\"ev\"]")`
    /// sends a Socket.IO EVENT).
    pub async fn send(&mut self, packet: &str) {
        self.conn.writer().send_text(&format!("4{packet}"));
        self.flush().await;
    }

    /// The next Engine.IO message within `timeout` (pings answered), or
    /// `None`.
    async fn engine_message_within(&mut self, timeout: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(m) = self.inbox.pop_front() {
                if m == "2" {
                    self.conn.writer().send_text("3");
                    self.flush().await;
                    continue;
                }
                return Some(m);
            }
            if self.eof {
                return None;
            }
            let mut chunk = vec![0u8; 64 * 1024];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return None,
                Ok(Ok(0)) | Ok(Err(_)) => self.eof = true,
                Ok(Ok(n)) => {
                    chunk.truncate(n);
                    self.feed(chunk);
                    self.flush().await;
                }
            }
        }
    }

    async fn engine_message(&mut self) -> Option<String> {
        self.engine_message_within(super::WAIT).await
    }

    /// The next Socket.IO packet (`4` stripped; binary attachments as
    /// `<bin:...>`), waiting at most [`WAIT`](super::WAIT).
    pub async fn next(&mut self) -> Option<String> {
        self.next_within(super::WAIT).await
    }

    /// Like [`next`](Self::next), waiting at most `timeout`.
    pub async fn next_within(&mut self, timeout: Duration) -> Option<String> {
        let m = self.engine_message_within(timeout).await?;
        Some(m.strip_prefix('4').map(str::to_owned).unwrap_or(m))
    }

    /// The next packet, which must be there.
    pub async fn expect(&mut self) -> String {
        match self.next().await {
            Some(p) => p,
            None => panic!("{}: no packet", self.user),
        }
    }

    /// Asserts that nothing arrives within `d`.
    pub async fn quiet(&mut self, d: Duration) {
        if let Some(p) = self.next_within(d).await {
            panic!("{}: unexpected {p}", self.user);
        }
    }
}
