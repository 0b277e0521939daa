//! End-to-end tests of the SockJS transport over a real hyper server:
//! polling and streaming receivers, sends, timers, shutdown. The protocol
//! rules themselves are tested in `switchboard_sockjs`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::registry::Registry;

#[derive(Default)]
struct Log {
    opened: usize,
    messages: Vec<String>,
    closed: Vec<CloseReason>,
}

/// Echoes; `close` closes with 3000 "Go away!"; `flood` sends more than
/// the message cache holds.
#[derive(Default, Clone)]
struct Echo {
    log: Arc<Mutex<Log>>,
}

impl SockJsHandler for Echo {
    fn on_open(&self, _conn: SockJsConn, _req: &http::request::Parts) {
        self.log.lock().opened += 1;
    }

    fn on_message(&self, conn: &SockJsConn, message: String) {
        self.log.lock().messages.push(message.clone());
        match message.as_str() {
            "close" => {
                conn.close(3000, "Go away!");
            }
            "flood" => {
                let encoded = EncodedMessage::new("x");
                while conn.send(encoded.clone()).is_ok() {}
            }
            _ => {
                let _ = conn.send_text(&message);
            }
        }
    }

    fn on_close(&self, conn: &SockJsConn, reason: CloseReason) {
        assert!(conn.is_closed());
        self.log.lock().closed.push(reason);
    }
}

struct Server {
    addr: SocketAddr,
    sockjs: SockJs<Echo>,
    registry: Registry,
}

impl Server {
    fn log(&self) -> parking_lot::MutexGuard<'_, Log> {
        self.sockjs.handler().log.lock()
    }
}

async fn start(config: SockJsConfig) -> Server {
    let registry = Registry::new();
    let sockjs = SockJs::new(Echo::default(), config, registry.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = sockjs.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let sockjs = server.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let sockjs = sockjs.clone();
                    async move { Ok::<_, Infallible>(sockjs.handle(req).await) }
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
        sockjs,
        registry,
    }
}

struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    body: String,
}

async fn request(addr: SocketAddr, method: Method, path: &str, body: &str) -> Reply {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
        .await
        .expect("response in time")
        .unwrap();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
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

#[tokio::test]
async fn static_routes() {
    let s = start(SockJsConfig::default()).await;
    let r = request(s.addr, Method::GET, "/", "").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (StatusCode::OK, "Welcome to SockJS!\n")
    );
    let r = request(s.addr, Method::GET, "/info", "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("\"websocket\":true"), "{}", r.body);
    let r = request(s.addr, Method::OPTIONS, "/info", "").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.headers["access-control-allow-methods"], "OPTIONS, GET");
    let r = request(s.addr, Method::GET, "/iframe.html", "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers.contains_key("etag"));
    let r = request(s.addr, Method::GET, "/nope", "").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = request(s.addr, Method::POST, "/000/x/xhr_send", "[\"a\"]").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (StatusCode::NOT_FOUND, "session not found")
    );
}

#[tokio::test]
async fn xhr_polling_echo_and_close() {
    let s = start(SockJsConfig::default()).await;
    let r = request(s.addr, Method::POST, "/000/a/xhr", "").await;
    assert_eq!(r.body, "o\n");
    assert_eq!(s.log().opened, 1);
    assert_eq!(s.sockjs.session_count(), 1);
    // A parked poll is answered by the echo of a later send.
    let addr = s.addr;
    let poll = tokio::spawn(async move { request(addr, Method::POST, "/000/a/xhr", "").await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let r = request(
        s.addr,
        Method::POST,
        "/000/a/xhr_send",
        r#"["a\u2028b","c"]"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(poll.await.unwrap().body, "a[\"a\\u2028b\",\"c\"]\n");
    let r = request(s.addr, Method::POST, "/000/a/xhr_send", "").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, "Payload expected.")
    );
    let r = request(s.addr, Method::POST, "/000/a/xhr_send", "[\"x").await;
    assert_eq!(r.body, "Broken JSON encoding.");
    request(s.addr, Method::POST, "/000/a/xhr_send", r#"["close"]"#).await;
    let r = request(s.addr, Method::POST, "/000/a/xhr", "").await;
    assert_eq!(r.body, "c[3000,\"Go away!\"]\n");
    assert!(
        s.log().closed.is_empty(),
        "closed after the disconnect delay"
    );
}

#[tokio::test]
async fn streaming_second_receiver_and_abort() {
    let s = start(SockJsConfig::default()).await;
    let stream = TcpStream::connect(s.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let conn_task = tokio::spawn(conn);
    let req = Request::builder()
        .method(Method::POST)
        .uri("/000/s/xhr_streaming")
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let mut body = sender.send_request(req).await.unwrap().into_body();
    let prelude = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(prelude.len(), 2049);
    let open = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&open[..], b"o\n");
    let r = request(s.addr, Method::POST, "/000/s/xhr_streaming", "").await;
    assert!(r
        .body
        .ends_with("c[2010,\"Another connection still open\"]\n"));
    request(s.addr, Method::POST, "/000/s/xhr_send", r#"["hi"]"#).await;
    let m = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&m[..], b"a[\"hi\"]\n");
    // The client goes away mid-response: the session ends at once.
    drop(body);
    drop(sender);
    conn_task.abort();
    eventually(|| s.log().closed == vec![CloseReason::ClientGone]).await;
    assert_eq!(s.sockjs.session_count(), 0);
}

#[tokio::test]
async fn slow_consumer_is_closed() {
    let mut config = SockJsConfig::default();
    config.service.http_message_cache_size = 5;
    let s = start(config).await;
    request(s.addr, Method::POST, "/000/f/xhr", "").await;
    request(s.addr, Method::POST, "/000/f/xhr_send", r#"["flood"]"#).await;
    let r = request(s.addr, Method::POST, "/000/f/xhr", "").await;
    assert_eq!(r.body, "a[\"x\",\"x\",\"x\",\"x\",\"x\"]\n");
    let r = request(s.addr, Method::POST, "/000/f/xhr", "").await;
    assert_eq!(r.body, "c[1013,\"Slow consumer\"]\n");
}

#[tokio::test]
async fn disconnect_delay_and_shutdown() {
    let mut config = SockJsConfig::default();
    config.service.disconnect_delay = Duration::from_millis(100);
    let s = start(config).await;
    request(s.addr, Method::POST, "/000/d/xhr", "").await;
    eventually(|| s.log().closed.len() == 1).await;
    assert_eq!(s.log().closed[0], CloseReason::ClientGone);
    assert_eq!(s.sockjs.session_count(), 0);

    // A streaming receiver gets the shutdown close frame; the session and
    // its task end.
    let addr = s.addr;
    let stream =
        tokio::spawn(async move { request(addr, Method::POST, "/000/e/xhr_streaming", "").await });
    eventually(|| s.log().opened == 2).await;
    assert_eq!(s.registry.live(), 1);
    s.registry.trigger();
    let r = stream.await.unwrap();
    assert!(
        r.body.ends_with("o\nc[1001,\"Server shutting down\"]\n"),
        "{}",
        r.body
    );
    eventually(|| s.log().closed.len() == 2).await;
    eventually(|| s.registry.live() == 0).await;
    let r = request(s.addr, Method::POST, "/000/g/xhr", "").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
}

/// Reads one unmasked server frame with a payload under 126 bytes; None
/// at EOF.
async fn ws_frame(peer: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    let mut head = [0u8; 2];
    peer.read_exact(&mut head).await.ok()?;
    let mut payload = vec![0; usize::from(head[1] & 0x7f)];
    peer.read_exact(&mut payload).await.ok()?;
    Some((head[0], payload))
}

#[tokio::test]
async fn a_websocket_peer_that_never_answers_the_close_is_dropped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = start(SockJsConfig::default()).await;
    let mut peer = TcpStream::connect(s.addr).await.unwrap();
    peer.write_all(
        b"GET /000/w/websocket HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
          Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
          Sec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(peer.read_u8().await.unwrap());
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    assert_eq!(ws_frame(&mut peer).await, Some((0x81, b"o".to_vec())));
    // `["close"]`, masked with a zero key: the handler closes the session.
    let msg = b"[\"close\"]";
    let mut frame = vec![0x81, 0x80 | msg.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(msg);
    peer.write_all(&frame).await.unwrap();
    assert_eq!(
        ws_frame(&mut peer).await,
        Some((0x81, b"c[3000,\"Go away!\"]".to_vec()))
    );
    // The SockJS close frame carries the code; the WebSocket closes normally.
    let (op, payload) = ws_frame(&mut peer).await.unwrap();
    assert_eq!((op, &payload[..2]), (0x88, &1000u16.to_be_bytes()[..]));
    // The peer never sends its close frame: the connection is dropped after
    // the 5 s close timeout (give or take the registry's 1 s tick), and
    // the session is closed.
    let sent = std::time::Instant::now();
    let eof = tokio::time::timeout(Duration::from_secs(10), ws_frame(&mut peer))
        .await
        .expect("dropped within 10 s");
    assert_eq!(eof, None);
    let waited = sent.elapsed().as_secs_f64();
    assert!((4.5..=7.5).contains(&waited), "dropped after {waited} s");
    eventually(|| s.registry.live() == 0).await;
    assert_eq!(s.log().closed.len(), 1);
}

#[test]
fn an_idle_websocket_task_stays_in_its_tokio_size_class() {
    // tokio allocates a task as the future rounded up to 128 bytes plus a
    // header of about 96: a driver above 288 bytes costs every idle
    // connection 128 more (docs/benchmarks.md, idle memory).
    let n = std::mem::size_of::<super::websocket::WsDriver<TcpStream, Echo>>();
    assert!(n <= 288, "WsDriver is {n} bytes");
}

#[tokio::test]
async fn an_idle_session_task_stays_in_its_tokio_size_class() {
    // As the driver's: a future above 288 bytes costs every session 128
    // more.
    let s = start(SockJsConfig::default()).await;
    let conn = SockJsConn::new(
        "x",
        switchboard_sockjs::Session::new(super::conn::now(), &s.sockjs.shared.config.service),
    );
    let task = super::server::session_task(s.sockjs.shared.clone(), conn);
    let n = std::mem::size_of_val(&task);
    assert!(n <= 288, "the session task's future is {n} bytes");
}
