//! In-process tests: a hyper server on 127.0.0.1:0 with an echo handler,
//! spoken to with hyper's HTTP/1 client and a raw WebSocket client.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use switchboard_websocket::handshake::ClientRequest;
use switchboard_websocket::{Config as WsConfig, Connection, Event as WsEvent, Role};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::registry::Registry;

// ---------------------------------------------------------------- harness

#[derive(Default)]
struct Log {
    opened: Vec<EngineSocket>,
    closed: Vec<(String, CloseReason)>,
    messages: Vec<Message>,
    /// The handler's state of each session, as the session holds it.
    states: Vec<std::sync::Weak<String>>,
}

/// Echoes every message back; records opens, closes and messages.
#[derive(Default, Clone)]
struct Echo {
    log: Arc<Mutex<Log>>,
}

/// Its state for a session is the session's id, which every event checks:
/// the state given back is the session's own.
impl EngineHandler for Echo {
    type Session = String;

    fn on_open(&self, socket: EngineSocket, req: &http::request::Parts) -> Arc<String> {
        assert!(req.uri.query().unwrap_or("").contains("EIO=4"));
        let sid = Arc::new(socket.sid().to_owned());
        let mut log = self.log.lock();
        log.opened.push(socket);
        log.states.push(Arc::downgrade(&sid));
        sid
    }

    fn on_message(&self, sid: &Arc<String>, socket: &EngineSocket, message: Message) {
        assert_eq!(**sid, socket.sid());
        self.log.lock().messages.push(message.clone());
        if let Message::Text(t) = &message {
            if t.as_str() == "many" {
                let batch = ["a", "b", "c"].map(|s| Message::Text(s.into()));
                socket.send_many(batch).unwrap();
                return;
            }
            if t.as_str() == "close me" {
                socket.close();
                return;
            }
        }
        let _ = socket.send(message);
    }

    fn on_close(&self, sid: &Arc<String>, socket: &EngineSocket, reason: CloseReason) {
        assert_eq!(**sid, socket.sid());
        assert!(socket.is_closed());
        self.log
            .lock()
            .closed
            .push((socket.sid().to_owned(), reason));
    }
}

struct Server {
    addr: SocketAddr,
    eio: EngineIo<Echo>,
    registry: Registry,
}

impl Server {
    fn log(&self) -> parking_lot::MutexGuard<'_, Log> {
        self.eio.handler().log.lock()
    }

    fn closes_of(&self, sid: &str) -> Vec<CloseReason> {
        self.log()
            .closed
            .iter()
            .filter(|(s, _)| s == sid)
            .map(|(_, r)| *r)
            .collect()
    }
}

async fn start(config: EngineIoConfig) -> Server {
    let registry = Registry::new();
    let eio = EngineIo::new(Echo::default(), config, registry.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server_eio = eio.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let eio = server_eio.clone();
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
    Server {
        addr,
        eio,
        registry,
    }
}

fn fast_config() -> EngineIoConfig {
    EngineIoConfig::default()
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

async fn request(
    addr: SocketAddr,
    method: Method,
    query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(format!("/engine.io/?{query}"))
        .header("host", "localhost");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::copy_from_slice(body))).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
        .await
        .expect("response in time")
        .unwrap();
    let (parts, body) = resp.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

async fn get(addr: SocketAddr, sid: &str) -> Reply {
    request(
        addr,
        Method::GET,
        &format!("EIO=4&transport=polling&sid={sid}"),
        &[],
        b"",
    )
    .await
}

async fn post(addr: SocketAddr, sid: &str, body: &[u8]) -> Reply {
    request(
        addr,
        Method::POST,
        &format!("EIO=4&transport=polling&sid={sid}"),
        &[("content-type", "text/plain;charset=UTF-8")],
        body,
    )
    .await
}

fn sid_of(open: &str) -> String {
    let start = open.find("\"sid\":\"").expect("sid") + 7;
    open[start..start + 20].to_owned()
}

async fn handshake(addr: SocketAddr) -> String {
    let r = request(addr, Method::GET, "EIO=4&transport=polling&t=x", &[], b"").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().starts_with("0{\"sid\":\""), "{}", r.text());
    sid_of(r.text())
}

async fn eventually(mut f: impl FnMut() -> bool) {
    for _ in 0..400 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached in 4 s");
}

/// A minimal WebSocket client over the sans-IO core.
struct WsClient {
    stream: TcpStream,
    conn: Connection,
    buf: Vec<u8>,
    inbox: std::collections::VecDeque<WsMsg>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum WsMsg {
    Text(String),
    Binary(Vec<u8>),
    Close,
}

impl WsClient {
    async fn connect(addr: SocketAddr, query: &str) -> WsClient {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let (bytes, hs) = ClientRequest::new("localhost", &format!("/engine.io/?{query}")).encode();
        stream.write_all(&bytes).await.unwrap();
        let mut buf = Vec::new();
        let consumed = loop {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "eof during handshake");
            buf.extend_from_slice(&chunk[..n]);
            if let Some((_, n)) = hs.parse_response(&buf).expect("101") {
                break n;
            }
        };
        let mut client = WsClient {
            stream,
            conn: Connection::new(Role::Client, WsConfig::default()),
            buf: Vec::new(),
            inbox: Default::default(),
        };
        let mut rest = buf[consumed..].to_vec();
        client.feed(&mut rest);
        client
    }

    fn feed(&mut self, data: &mut [u8]) {
        let inbox = &mut self.inbox;
        let _ = self.conn.receive(data, |ev, _| match ev {
            WsEvent::Text(t) => inbox.push_back(WsMsg::Text(t.to_owned())),
            WsEvent::Binary(b) => inbox.push_back(WsMsg::Binary(b.to_vec())),
            WsEvent::Close(_) => inbox.push_back(WsMsg::Close),
            _ => {}
        });
    }

    async fn flush(&mut self) {
        let mut out = Vec::new();
        self.conn.writer().take_output(&mut out);
        for chunk in out {
            self.stream.write_all(&chunk).await.unwrap();
        }
    }

    async fn send(&mut self, text: &str) {
        self.conn.writer().send_text(text);
        self.flush().await;
    }

    async fn send_binary(&mut self, data: &[u8]) {
        self.conn.writer().send_binary(data);
        self.flush().await;
    }

    async fn recv(&mut self) -> WsMsg {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(m) = self.inbox.pop_front() {
                self.flush().await; // close replies
                return m;
            }
            self.buf.resize(65536, 0);
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut self.buf))
                .await
                .expect("websocket message in time")
                .unwrap();
            if n == 0 {
                return WsMsg::Close;
            }
            let mut data = self.buf[..n].to_vec();
            self.feed(&mut data);
        }
    }

    async fn recv_text(&mut self) -> String {
        match self.recv().await {
            WsMsg::Text(t) => t,
            other => panic!("expected text, got {other:?}"),
        }
    }
}

// ------------------------------------------------------------------ tests

#[tokio::test]
async fn polling_handshake_and_echo() {
    let s = start(fast_config()).await;
    let r = request(
        s.addr,
        Method::GET,
        "EIO=4&transport=polling&t=N8hyd6w",
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "text/plain; charset=UTF-8");
    assert_eq!(r.headers["cache-control"], "no-store");
    assert!(r.headers.get("access-control-allow-origin").is_none());
    let sid = sid_of(r.text());
    assert!(r.text().ends_with(
        r#""upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#
    ));
    assert_eq!(s.eio.session_count(), 1);
    assert_eq!(s.log().opened.len(), 1);
    assert_eq!(s.log().opened[0].sid(), sid);
    assert_eq!(s.log().opened[0].transport(), TransportKind::Polling);

    let r = post(s.addr, &sid, b"4hello\x1e4world").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "text/html");
    assert_eq!(r.text(), "ok");
    // The echo of "hello" answered nothing (no GET parked), both wait.
    let r = get(s.addr, &sid).await;
    assert_eq!(r.text(), "4hello\x1e4world");
    assert_eq!(
        s.log().messages,
        vec![Message::Text("hello".into()), Message::Text("world".into())]
    );
}

#[tokio::test]
async fn long_poll_parks_until_a_message() {
    let s = start(fast_config()).await;
    let sid = handshake(s.addr).await;
    let addr = s.addr;
    let sid2 = sid.clone();
    let parked = tokio::spawn(async move { get(addr, &sid2).await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!parked.is_finished(), "the GET must wait");
    assert_eq!(post(s.addr, &sid, b"4late").await.text(), "ok");
    let r = parked.await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "4late");

    // The server side sends on its own: a parked GET is answered at once.
    let socket = s.eio.socket(&sid).unwrap();
    let sid2 = sid.clone();
    let parked = tokio::spawn(async move { get(addr, &sid2).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    socket.send(Message::Text("push".into())).unwrap();
    assert_eq!(parked.await.unwrap().text(), "4push");
}

#[tokio::test]
async fn binary_over_polling_is_base64() {
    let s = start(fast_config()).await;
    let sid = handshake(s.addr).await;
    assert_eq!(post(s.addr, &sid, b"bAQID").await.text(), "ok");
    assert_eq!(get(s.addr, &sid).await.text(), "bAQID");
    assert_eq!(
        s.log().messages,
        vec![Message::Binary(Bytes::from_static(&[1, 2, 3]))]
    );
}

#[tokio::test]
async fn refusals_match_node() {
    let s = start(fast_config()).await;
    let r = get(s.addr, "AAAAAAAAAAAAAAAAAAAA").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.text(), r#"{"code":1,"message":"Session ID unknown"}"#);

    let r = request(
        s.addr,
        Method::GET,
        "EIO=4&transport=carrier-pigeon",
        &[],
        b"",
    )
    .await;
    assert_eq!(r.text(), r#"{"code":0,"message":"Transport unknown"}"#);
    let r = request(s.addr, Method::GET, "EIO=3&transport=polling", &[], b"").await;
    assert_eq!(
        r.text(),
        r#"{"code":5,"message":"Unsupported protocol version"}"#
    );
    let r = request(s.addr, Method::POST, "EIO=4&transport=polling", &[], b"4x").await;
    assert_eq!(r.text(), r#"{"code":2,"message":"Bad handshake method"}"#);
    // Without CORS, OPTIONS is just a bad handshake method.
    let r = request(s.addr, Method::OPTIONS, "EIO=4&transport=polling", &[], b"").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // A PUT on a polling session: a bare 500, as the core says.
    let sid = handshake(s.addr).await;
    let r = request(
        s.addr,
        Method::PUT,
        &format!("EIO=4&transport=polling&sid={sid}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(s.eio.session_count(), 1);
}

#[tokio::test]
async fn post_over_max_http_buffer_size_is_413() {
    let mut config = fast_config();
    config.engine.max_payload = 10;
    config.max_http_buffer_size = 10;
    let s = start(config).await;
    let sid = handshake(s.addr).await;
    let r = post(s.addr, &sid, b"4this is far too long").await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.text(), "");
    assert_eq!(post(s.addr, &sid, b"4fits").await.text(), "ok");
    assert_eq!(get(s.addr, &sid).await.text(), "4fits");
    assert_eq!(s.eio.session_count(), 1);
}

#[tokio::test]
async fn allow_request_refuses_with_403() {
    let mut config = fast_config();
    config.allow_request = Some(Arc::new(|parts: &http::request::Parts| {
        if parts.headers.contains_key("x-token") {
            Ok(())
        } else {
            Err("no token".to_owned())
        }
    }));
    let s = start(config).await;
    let r = request(s.addr, Method::GET, "EIO=4&transport=polling", &[], b"").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.text(), r#"{"code":4,"message":"no token"}"#);
    let r = request(
        s.addr,
        Method::GET,
        "EIO=4&transport=polling",
        &[("x-token", "1")],
        b"",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(s.eio.session_count(), 1);
}

#[tokio::test]
async fn cors_preflight_and_headers() {
    let mut config = fast_config();
    config.cors = Cors::Any;
    config.cookie = Some("io".into());
    let s = start(config).await;
    let r = request(
        s.addr,
        Method::OPTIONS,
        "EIO=4&transport=polling",
        &[
            ("origin", "http://example.com"),
            ("access-control-request-headers", "content-type, x-a"),
        ],
        b"",
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.headers["access-control-allow-origin"], "*");
    assert_eq!(r.headers["access-control-allow-methods"], "GET,POST");
    assert_eq!(
        r.headers["access-control-allow-headers"],
        "content-type, x-a"
    );
    assert!(r.headers.get("access-control-allow-credentials").is_none());
    let r = request(s.addr, Method::GET, "EIO=4&transport=polling", &[], b"").await;
    assert_eq!(r.headers["access-control-allow-origin"], "*");
    let sid = sid_of(r.text());
    assert_eq!(
        r.headers["set-cookie"],
        format!("io={sid}; Path=/; HttpOnly; SameSite=Lax").as_str()
    );
    let r = get(s.addr, "nope").await;
    assert_eq!(r.headers["access-control-allow-origin"], "*");

    let mut config = fast_config();
    config.cors = Cors::List(vec!["http://good.example".into()]);
    let s = start(config).await;
    let good = [("origin", "http://good.example")];
    let r = request(s.addr, Method::GET, "EIO=4&transport=polling", &good, b"").await;
    assert_eq!(
        r.headers["access-control-allow-origin"],
        "http://good.example"
    );
    assert_eq!(r.headers["access-control-allow-credentials"], "true");
    let bad = [("origin", "http://bad.example")];
    let r = request(s.addr, Method::GET, "EIO=4&transport=polling", &bad, b"").await;
    assert!(r.headers.get("access-control-allow-origin").is_none());

    let mut config = fast_config();
    config.cors = Cors::Reflect;
    let s = start(config).await;
    let r = request(
        s.addr,
        Method::OPTIONS,
        "EIO=4&transport=polling",
        &bad,
        b"",
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        r.headers["access-control-allow-origin"],
        "http://bad.example"
    );
    assert_eq!(r.headers["access-control-allow-credentials"], "true");
}

#[tokio::test]
async fn upgrade_from_polling_to_websocket() {
    let s = start(fast_config()).await;
    let sid = handshake(s.addr).await;
    let addr = s.addr;
    let sid2 = sid.clone();
    let parked = tokio::spawn(async move { get(addr, &sid2).await });
    tokio::time::sleep(Duration::from_millis(50)).await;

    let mut ws = WsClient::connect(s.addr, &format!("EIO=4&transport=websocket&sid={sid}")).await;
    ws.send("2probe").await;
    assert_eq!(ws.recv_text().await, "3probe");
    // The parked GET is answered with a noop so the client can pause.
    assert_eq!(parked.await.unwrap().text(), "6");
    ws.send("5").await;
    eventually(|| s.log().opened[0].transport() == TransportKind::WebSocket).await;

    ws.send("4over websocket").await;
    assert_eq!(ws.recv_text().await, "4over websocket");
    ws.send_binary(&[1, 2, 3]).await;
    assert_eq!(ws.recv().await, WsMsg::Binary(vec![1, 2, 3]));
    // send_many stays together and in order.
    ws.send("4many").await;
    for m in ["4a", "4b", "4c"] {
        assert_eq!(ws.recv_text().await, m);
    }
    // Polling is over for this session.
    let r = get(s.addr, &sid).await;
    assert_eq!(r.text(), r#"{"code":3,"message":"Bad request"}"#);

    // The client closes the WebSocket: transport close, once.
    ws.conn
        .writer()
        .close(switchboard_websocket::CloseCode::NORMAL, "");
    ws.flush().await;
    eventually(|| !s.closes_of(&sid).is_empty()).await;
    assert_eq!(s.closes_of(&sid), vec![CloseReason::TransportClose]);
    assert_eq!(s.eio.session_count(), 0);
}

#[tokio::test]
async fn websocket_only_session() {
    let s = start(fast_config()).await;
    let mut ws = WsClient::connect(s.addr, "EIO=4&transport=websocket").await;
    let open = ws.recv_text().await;
    assert!(open.starts_with("0{\"sid\":\""), "{open}");
    assert!(open.contains(r#""upgrades":[]"#), "{open}");
    let sid = sid_of(&open);
    assert_eq!(s.eio.session_count(), 1);
    assert_eq!(s.log().opened[0].transport(), TransportKind::WebSocket);
    ws.send("4hi").await;
    assert_eq!(ws.recv_text().await, "4hi");
    assert!(
        s.log().states[0].upgrade().is_some(),
        "the session holds the handler's state"
    );

    // A server close: the WebSocket closes, on_close says forced close.
    ws.send("4close me").await;
    assert_eq!(ws.recv().await, WsMsg::Close);
    eventually(|| !s.closes_of(&sid).is_empty()).await;
    assert_eq!(s.closes_of(&sid), vec![CloseReason::ForcedClose]);
    assert_eq!(s.eio.session_count(), 0);
    // After on_close the session lets go of it (the test still holds the
    // session's handle).
    eventually(|| s.log().states[0].upgrade().is_none()).await;
    assert!(s.log().opened[0]
        .send(Message::Text("late".into()))
        .is_err());
}

/// Pings every `interval` ms, `timeout` ms to answer.
fn ping_config(interval: u64, timeout: u64) -> EngineIoConfig {
    let mut config = fast_config();
    config.engine.ping_interval = Duration::from_millis(interval);
    config.engine.ping_timeout = Duration::from_millis(timeout);
    config
}

/// A ping of `ping_config(300, _)` that arrived `at` after the session opened:
/// never early; the upper bound only guards against a lost timer
/// (generous: CI machines are loaded).
fn assert_ping_on_time(at: Duration) {
    assert!(
        at >= Duration::from_millis(250) && at < Duration::from_millis(1500),
        "ping after {at:?}"
    );
}

#[tokio::test]
async fn ping_timeout_closes_the_session_once() {
    let s = start(ping_config(300, 200)).await;
    let sid = handshake(s.addr).await;
    let t0 = tokio::time::Instant::now();
    // The ping arrives on time.
    let r = get(s.addr, &sid).await;
    assert_ping_on_time(t0.elapsed());
    assert_eq!(r.text(), "2");
    // Answering it keeps the session...
    assert_eq!(post(s.addr, &sid, b"3").await.text(), "ok");
    assert_eq!(get(s.addr, &sid).await.text(), "2");
    // ...not answering closes it 200 ms after the ping.
    let t1 = tokio::time::Instant::now();
    eventually(|| !s.closes_of(&sid).is_empty()).await;
    let at = t1.elapsed();
    assert!(at < Duration::from_millis(1500), "{at:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(s.closes_of(&sid), vec![CloseReason::PingTimeout]);
    assert_eq!(s.eio.session_count(), 0);
    let r = get(s.addr, &sid).await;
    assert_eq!(r.text(), r#"{"code":1,"message":"Session ID unknown"}"#);
    eventually(|| s.registry.live() == 0).await;
}

#[tokio::test]
async fn aborted_poll_is_a_transport_error() {
    let s = start(fast_config()).await;
    let sid = handshake(s.addr).await;
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream
        .write_all(
            format!(
                "GET /engine.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: x\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(stream);
    eventually(|| !s.closes_of(&sid).is_empty()).await;
    assert_eq!(s.closes_of(&sid), vec![CloseReason::TransportError]);
    assert_eq!(s.eio.session_count(), 0);
}

#[tokio::test]
async fn overlapping_get_closes_the_session() {
    let s = start(fast_config()).await;
    let sid = handshake(s.addr).await;
    let addr = s.addr;
    let sid2 = sid.clone();
    let first = tokio::spawn(async move { get(addr, &sid2).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = get(s.addr, &sid).await;
    assert_eq!(second.status, StatusCode::BAD_REQUEST);
    assert_eq!(first.await.unwrap().text(), "1");
    eventually(|| !s.closes_of(&sid).is_empty()).await;
    assert_eq!(s.closes_of(&sid), vec![CloseReason::TransportError]);
}

#[tokio::test]
async fn many_sessions_leave_nothing_behind() {
    let s = start(fast_config()).await;
    let mut sids = Vec::new();
    for _ in 0..60 {
        sids.push(handshake(s.addr).await);
    }
    assert_eq!(s.eio.session_count(), 60);
    let mut ws_clients = Vec::new();
    for _ in 0..20 {
        let mut ws = WsClient::connect(s.addr, "EIO=4&transport=websocket").await;
        ws.recv_text().await;
        ws_clients.push(ws);
    }
    assert_eq!(s.eio.session_count(), 80);
    for (i, sid) in sids.iter().enumerate() {
        match i % 3 {
            // The client closes.
            0 => assert_eq!(post(s.addr, sid, b"1").await.text(), "ok"),
            // The server closes with a GET parked.
            1 => {
                let addr = s.addr;
                let sid2 = sid.clone();
                let parked = tokio::spawn(async move { get(addr, &sid2).await });
                tokio::time::sleep(Duration::from_millis(5)).await;
                s.eio.socket(sid).unwrap().close();
                assert_eq!(parked.await.unwrap().text(), "1");
            }
            // The server closes without a GET: the next one gets `6␞1`.
            _ => {
                s.eio.socket(sid).unwrap().close();
                assert_eq!(get(s.addr, sid).await.text(), "6\x1e1");
            }
        }
    }
    // WebSocket clients just drop their connection.
    drop(ws_clients);
    eventually(|| s.eio.session_count() == 0).await;
    eventually(|| s.log().closed.len() == 80).await;
    eventually(|| s.registry.live() == 0).await;
    let log = s.log();
    let mut seen = std::collections::HashSet::new();
    for (sid, _) in &log.closed {
        assert!(seen.insert(sid.clone()), "on_close twice for {sid}");
    }
    let count = |r: CloseReason| log.closed.iter().filter(|(_, x)| *x == r).count();
    assert_eq!(count(CloseReason::TransportClose), 20 + 20);
    assert_eq!(count(CloseReason::ForcedClose), 40);
}

#[tokio::test]
async fn shutdown_closes_every_session() {
    let s = start(fast_config()).await;
    let sid = handshake(s.addr).await;
    let addr = s.addr;
    let sid2 = sid.clone();
    let parked = tokio::spawn(async move { get(addr, &sid2).await });
    let mut ws = WsClient::connect(s.addr, "EIO=4&transport=websocket").await;
    let ws_sid = sid_of(&ws.recv_text().await);
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.registry.trigger();
    assert_eq!(parked.await.unwrap().text(), "1");
    assert_eq!(ws.recv().await, WsMsg::Close);
    eventually(|| s.log().closed.len() == 2).await;
    assert_eq!(s.closes_of(&sid), vec![CloseReason::ForcedClose]);
    assert_eq!(s.closes_of(&ws_sid), vec![CloseReason::ForcedClose]);
    assert_eq!(s.eio.session_count(), 0);
    assert_eq!(s.registry.wait_idle(Duration::from_secs(2)).await, 0);
}

#[tokio::test]
async fn websocket_message_over_max_payload_is_a_transport_error() {
    let mut config = fast_config();
    config.engine.max_payload = 16;
    config.max_http_buffer_size = 16;
    let s = start(config).await;
    let mut ws = WsClient::connect(s.addr, "EIO=4&transport=websocket").await;
    let sid = sid_of(&ws.recv_text().await);
    ws.send("4small").await;
    assert_eq!(ws.recv_text().await, "4small");
    ws.send("4this message is longer than sixteen bytes").await;
    assert_eq!(ws.recv().await, WsMsg::Close);
    eventually(|| !s.closes_of(&sid).is_empty()).await;
    assert_eq!(s.closes_of(&sid), vec![CloseReason::TransportError]);
    assert_eq!(s.eio.session_count(), 0);
    eventually(|| s.registry.live() == 0).await;
}

/// Sends 64 KiB messages to `socket` until it refuses one; returns how
/// many bytes it accepted.
fn flood(socket: &EngineSocket) -> usize {
    let chunk: switchboard_engineio::Utf8Bytes = "x".repeat(64 * 1024).into();
    let mut sent = 0;
    while socket.send(Message::Text(chunk.clone())).is_ok() {
        sent += chunk.len();
        assert!(sent < 1 << 30, "never refused: the backlog is unbounded");
    }
    sent
}

#[tokio::test]
async fn a_websocket_that_stops_reading_is_dropped_at_the_limit() {
    let config = EngineIoConfig {
        max_buffered_bytes: 1 << 20,
        ..fast_config()
    };
    let s = start(config).await;
    let mut ws = WsClient::connect(s.addr, "EIO=4&transport=websocket").await;
    let sid = sid_of(&ws.recv_text().await);
    eventually(|| !s.log().opened.is_empty()).await;
    let socket = s.log().opened[0].clone();
    // The client reads nothing more. The server side may run ahead by the
    // socket buffers and the driver's high-water mark, then the limit.
    let mut accepted = 0;
    for _ in 0..100 {
        accepted += flood(&socket);
        if socket.is_closed() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(socket.is_closed());
    assert!(accepted < 64 << 20, "accepted {accepted} bytes");
    eventually(|| !s.closes_of(&sid).is_empty()).await;
    assert_eq!(s.closes_of(&sid), vec![CloseReason::ForcedClose]);
    eventually(|| s.eio.session_count() == 0).await;
    drop(ws);
}

#[tokio::test]
async fn a_polling_client_that_stops_polling_is_dropped_at_the_limit() {
    let config = EngineIoConfig {
        max_buffered_bytes: 1 << 20,
        ..fast_config()
    };
    let s = start(config).await;
    let sid = handshake(s.addr).await;
    eventually(|| !s.log().opened.is_empty()).await;
    let socket = s.log().opened[0].clone();
    let accepted = flood(&socket);
    assert!(accepted <= 1 << 20, "accepted {accepted} bytes");
    // Refused from now on; the next GET drains what was queued, the one
    // after gets the close, and the session is gone.
    assert!(socket.send(Message::Text("more".into())).is_err());
    let reply = get(s.addr, &sid).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.len() >= accepted);
    let reply = get(s.addr, &sid).await;
    assert_eq!(reply.text(), "6\u{1e}1");
    eventually(|| !s.closes_of(&sid).is_empty()).await;
    assert_eq!(s.closes_of(&sid), vec![CloseReason::ForcedClose]);
}

#[tokio::test]
async fn a_websocket_peer_that_never_answers_the_close_is_dropped() {
    let s = start(fast_config()).await;
    let mut ws = WsClient::connect(s.addr, "EIO=4&transport=websocket").await;
    let open = ws.recv_text().await;
    assert!(open.starts_with("0{\"sid\":\""), "{open}");
    ws.send("4close me").await;
    // The server's close frame comes; this peer never answers it (raw
    // reads: the client core's automatic reply is never flushed). Dropped
    // after the 5 s close timeout, give or take the registry's 1 s tick.
    let sent = std::time::Instant::now();
    let mut buf = vec![0u8; 4096];
    let read_to_eof = async { while ws.stream.read(&mut buf).await.unwrap_or(0) > 0 {} };
    tokio::time::timeout(Duration::from_secs(10), read_to_eof)
        .await
        .expect("dropped within 10 s");
    let waited = sent.elapsed().as_secs_f64();
    assert!((4.5..=7.5).contains(&waited), "dropped after {waited} s");
    eventually(|| s.registry.live() == 0).await;
}

#[test]
fn an_idle_websocket_task_stays_in_its_tokio_size_class() {
    // tokio allocates a task as its header (about 96 bytes) and the
    // future, rounded up to 128: a driver within 160 bytes is a 256-byte
    // task, above it 384 — 128 more in every idle connection
    // (docs/benchmarks.md, idle memory).
    let n = std::mem::size_of::<super::websocket::WsDriver<TcpStream, Echo>>();
    assert!(n <= 160, "WsDriver is {n} bytes");
}

#[tokio::test]
async fn an_idle_session_task_stays_in_its_tokio_size_class() {
    // As the driver's: a future above 288 bytes costs every session 128
    // more.
    let s = start(fast_config()).await;
    let session = switchboard_engineio::Session::new_polling(
        "x",
        s.eio.shared.config.engine.clone(),
        socket::now(),
    );
    let socket = EngineSocket::new(session, "x".into(), 1024);
    let task = super::server::session_task(s.eio.shared.clone(), socket);
    let n = std::mem::size_of_val(&task);
    assert!(n <= 288, "the session task's future is {n} bytes");
}

/// Sets its flag when dropped.
struct DropFlag(Arc<std::sync::atomic::AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Work forwarding a channel's items to `socket` (held strongly: the
/// session must break that cycle when it ends).
fn forwarder(
    socket: EngineSocket,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<&'static str>,
    dropped: &Arc<std::sync::atomic::AtomicBool>,
) -> SessionWork {
    let flag = DropFlag(dropped.clone());
    Box::new(move |cx| {
        let _ = &flag;
        loop {
            match rx.poll_recv(cx) {
                std::task::Poll::Ready(Some(text)) => {
                    let _ = socket.send(Message::Text(text.into()));
                }
                std::task::Poll::Ready(None) => return std::task::Poll::Ready(()),
                std::task::Poll::Pending => return std::task::Poll::Pending,
            }
        }
    })
}

#[tokio::test]
async fn attached_work_runs_on_the_session_task_until_done_or_closed() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let s = start(fast_config()).await;
    let sid = handshake(s.addr).await;
    let socket = s.eio.socket(&sid).unwrap();
    let tasks = s.registry.live();

    // Woken by its own source, it sends on the session.
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let first = Arc::new(AtomicBool::new(false));
    socket.attach(forwarder(socket.clone(), rx, &first));
    tx.send("fed").unwrap();
    assert_eq!(get(s.addr, &sid).await.text(), "4fed");
    tx.send("a").unwrap();
    tx.send("b").unwrap();
    assert_eq!(get(s.addr, &sid).await.text(), "4a\x1e4b");
    assert_eq!(s.registry.live(), tasks, "no task of its own");
    // Done (`Ready`): dropped, the session goes on.
    drop(tx);
    eventually(|| first.load(Ordering::SeqCst)).await;
    assert!(!socket.is_closed());

    // Two at once (one slot, combined): each runs until it is done.
    let (tx1, rx1) = tokio::sync::mpsc::unbounded_channel();
    let (tx2, rx2) = tokio::sync::mpsc::unbounded_channel();
    let (one, two) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    socket.attach(forwarder(socket.clone(), rx1, &one));
    socket.attach(forwarder(socket.clone(), rx2, &two));
    tx1.send("x").unwrap();
    assert_eq!(get(s.addr, &sid).await.text(), "4x");
    tx2.send("y").unwrap();
    assert_eq!(get(s.addr, &sid).await.text(), "4y");
    drop(tx1);
    eventually(|| one.load(Ordering::SeqCst)).await;
    tx2.send("z").unwrap();
    assert_eq!(get(s.addr, &sid).await.text(), "4z");
    assert!(!two.load(Ordering::SeqCst));
    drop(tx2);
    eventually(|| two.load(Ordering::SeqCst)).await;

    // Still pending when the session closes: dropped with it (it holds
    // the session: without that the session would never be freed).
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let second = Arc::new(AtomicBool::new(false));
    socket.attach(forwarder(socket.clone(), rx, &second));
    socket.close();
    drop(socket);
    // Over polling the session ends with the next GET.
    assert_eq!(get(s.addr, &sid).await.text(), "6\x1e1");
    eventually(|| second.load(Ordering::SeqCst)).await;
    eventually(|| s.registry.live() == 0 && s.eio.session_count() == 0).await;
    assert!(
        tx.send("late").is_err(),
        "the work and its receiver are gone"
    );

    // Attached to a closed session: dropped at once.
    let third = Arc::new(AtomicBool::new(false));
    let (_tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let closed = s.log().opened[0].clone();
    closed.attach(forwarder(closed.clone(), rx, &third));
    assert!(third.load(Ordering::SeqCst));
}

#[test]
fn an_outbox_fits_an_80_byte_block() {
    // One per WebSocket connection, in an `Arc`.
    let n = std::mem::size_of::<socket::WsOutbox>() + 16;
    assert!(n <= 80, "an outbox takes {n} bytes");
}

#[test]
fn a_session_fits_a_320_byte_block() {
    // Every session's state is one `Arc` (16 bytes of counts): jemalloc's
    // size classes around it are 256, 320, 384 (the sid kept here, not
    // in the core too; one WebSocket outbox, not a list; the limit a u32;
    // the core's timers 8-byte deadlines, its byte count a u32, and no
    // slot for a polling answer in progress).
    let n = std::mem::size_of::<socket::SocketInner>() + 16;
    assert!(n <= 320, "a session takes {n} bytes");
}

#[tokio::test]
async fn a_session_born_on_a_websocket_is_one_task() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let s = start(ping_config(300, 200)).await;
    let mut ws = WsClient::connect(s.addr, "EIO=4&transport=websocket").await;
    let sid = sid_of(&ws.recv_text().await);
    // The connection's task runs the session: one registry slot, no
    // session task.
    eventually(|| s.registry.live() == 1).await;
    let socket = s.eio.socket(&sid).unwrap();

    // Its timer: the ping on time, answered...
    let t0 = tokio::time::Instant::now();
    assert_eq!(ws.recv_text().await, "2");
    assert_ping_on_time(t0.elapsed());
    ws.send("3").await;
    // ...sends of the application and attached work go out on it...
    socket.send(Message::Text("pushed".into())).unwrap();
    assert_eq!(ws.recv_text().await, "4pushed");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let dropped = Arc::new(AtomicBool::new(false));
    socket.attach(forwarder(socket.clone(), rx, &dropped));
    tx.send("fed").unwrap();
    assert_eq!(ws.recv_text().await, "4fed");
    assert_eq!(s.registry.live(), 1);

    // ...and a ping left unanswered closes the session, once; the work
    // (holding the session) goes with it.
    assert_eq!(ws.recv_text().await, "2");
    let t1 = tokio::time::Instant::now();
    eventually(|| !s.closes_of(&sid).is_empty()).await;
    assert!(t1.elapsed() < Duration::from_millis(1500));
    assert_eq!(ws.recv().await, WsMsg::Close);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(s.closes_of(&sid), vec![CloseReason::PingTimeout]);
    eventually(|| dropped.load(Ordering::SeqCst)).await;
    drop(ws);
    eventually(|| s.registry.live() == 0 && s.eio.session_count() == 0).await;
}

#[tokio::test]
async fn far_session_deadlines_wait_on_the_registry_ticker() {
    // Pings 2.5 s apart, 2.5 s to answer (the defaults are 25 s and 20 s):
    // past the two seconds above which a session on a WebSocket keeps no
    // timer of its own.
    let s = start(ping_config(2500, 2500)).await;
    let t0 = tokio::time::Instant::now();
    let mut ws = WsClient::connect(s.addr, "EIO=4&transport=websocket").await;
    let sid = sid_of(&ws.recv_text().await);
    let socket = s.eio.socket(&sid).unwrap();
    // On time (never early, at most a tick late), answered...
    assert_eq!(ws.recv_text().await, "2");
    let at = t0.elapsed();
    assert!(
        at >= Duration::from_millis(2400) && at < Duration::from_millis(4500),
        "ping after {at:?}"
    );
    ws.send("3").await;
    assert_eq!(ws.recv_text().await, "2");
    assert!(!socket.has_timer(), "no timer of the session's own");
    // ...and the next one, unanswered, closes the session in time.
    let t1 = tokio::time::Instant::now();
    while s.closes_of(&sid).is_empty() && t1.elapsed() < Duration::from_secs(6) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let at = t1.elapsed();
    assert!(
        at >= Duration::from_millis(2400) && at < Duration::from_millis(4500),
        "closed after {at:?}"
    );
    assert_eq!(s.closes_of(&sid), vec![CloseReason::PingTimeout]);
    assert_eq!(ws.recv().await, WsMsg::Close);
}

#[tokio::test]
async fn a_websocket_task_takes_session_turns_only_when_woken() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let s = start(fast_config()).await;
    let mut ws = WsClient::connect(s.addr, "EIO=4&transport=websocket").await;
    let sid = sid_of(&ws.recv_text().await);
    let socket = s.eio.socket(&sid).unwrap();
    // Work that counts its polls and never asks to be woken.
    let polls = Arc::new(AtomicUsize::new(0));
    let counter = polls.clone();
    socket.attach(Box::new(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        std::task::Poll::Pending
    }));
    eventually(|| polls.load(Ordering::SeqCst) == 1).await;
    // Every message read (echoed by the handler) is a poll of the
    // connection's task; none wakes the session, so none polls the work
    // (nor locks the session for a turn).
    for i in 0..50 {
        ws.send(&format!("4m{i}")).await;
        assert_eq!(ws.recv_text().await, format!("4m{i}"));
    }
    assert_eq!(polls.load(Ordering::SeqCst), 1);
    // A wake-up of the session does.
    socket.send(Message::Text("x".into())).unwrap();
    assert_eq!(ws.recv_text().await, "4x");
    attach_wake(&socket);
    eventually(|| polls.load(Ordering::SeqCst) == 2).await;
}

/// Wakes the task running `socket` the way an attach does.
fn attach_wake(socket: &EngineSocket) {
    socket.attach(Box::new(|_| std::task::Poll::Ready(())));
}

#[tokio::test]
async fn shutdown_closes_a_session_born_on_a_websocket() {
    let s = start(fast_config()).await;
    let mut ws = WsClient::connect(s.addr, "EIO=4&transport=websocket").await;
    let sid = sid_of(&ws.recv_text().await);
    eventually(|| s.registry.live() == 1).await;
    s.registry.trigger();
    assert_eq!(ws.recv().await, WsMsg::Close);
    eventually(|| !s.closes_of(&sid).is_empty()).await;
    assert_eq!(s.closes_of(&sid), vec![CloseReason::ForcedClose]);
    drop(ws);
    eventually(|| s.registry.live() == 0).await;
}

#[tokio::test]
async fn an_upgraded_session_is_handed_to_its_websocket_task() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let s = start(ping_config(400, 300)).await;
    let sid = handshake(s.addr).await;
    let socket = s.eio.socket(&sid).unwrap();
    // Work attached while the session task runs the session...
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let dropped = Arc::new(AtomicBool::new(false));
    socket.attach(forwarder(socket.clone(), rx, &dropped));
    tx.send("before").unwrap();
    assert_eq!(get(s.addr, &sid).await.text(), "4before");
    eventually(|| s.registry.live() == 1).await;

    let mut ws = WsClient::connect(s.addr, &format!("EIO=4&transport=websocket&sid={sid}")).await;
    ws.send("2probe").await;
    assert_eq!(ws.recv_text().await, "3probe");
    // Both tasks while upgrading.
    eventually(|| s.registry.live() == 2).await;
    ws.send("5").await;
    eventually(|| socket.transport() == TransportKind::WebSocket).await;
    // Upgraded: the session task ended, the connection's task runs it.
    eventually(|| s.registry.live() == 1).await;

    // ...goes on waking the task that runs the session now.
    tx.send("after").unwrap();
    assert_eq!(ws.recv_text().await, "4after");
    socket.send(Message::Text("pushed".into())).unwrap();
    assert_eq!(ws.recv_text().await, "4pushed");
    // Its timer: pings over the WebSocket, answered; then one left
    // unanswered closes the session once, the work with it.
    assert_eq!(ws.recv_text().await, "2");
    ws.send("3").await;
    assert_eq!(ws.recv_text().await, "2");
    eventually(|| !s.closes_of(&sid).is_empty()).await;
    assert_eq!(ws.recv().await, WsMsg::Close);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(s.closes_of(&sid), vec![CloseReason::PingTimeout]);
    eventually(|| dropped.load(Ordering::SeqCst)).await;
    drop(ws);
    eventually(|| s.registry.live() == 0 && s.eio.session_count() == 0).await;
}
