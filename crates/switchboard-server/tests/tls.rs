//! TLS (`[tls]`) against the real binary with the test certificate in
//! tests/data/tls: HTTPS and WSS on the main listener, the Web-STOMP
//! listener over HTTPS, STOMP over TLS on the TCP listener; plain HTTP and
//! silent clients on the TLS port harm nobody else; bad files are
//! configuration errors (exit code 2).

use bytes::Bytes;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_websocket::handshake::client::ClientRequest;
use switchboard_websocket::{Config, Connection, Event, Role};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::{client::TlsStream, TlsConnector};

const T: Duration = Duration::from_secs(10);

fn data(file: &str) -> String {
    format!("{}/../../tests/data/tls/{file}", env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A client configuration that trusts the test certificate only.
fn connector(alpn: &[&[u8]]) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(data("cert.pem")).unwrap())
        .unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

async fn tls_connect(addr: SocketAddr, name: &str, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(name.to_owned()).unwrap();
    tokio::time::timeout(T, connector(alpn).connect(name, tcp))
        .await
        .expect("tls handshake in time")
        .expect("tls handshake")
}

/// One `Connection: close` request over any stream; the whole response.
async fn request<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, path: &str) -> String {
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    // A peer closing without close_notify is an error to rustls; what
    // arrived before it still counts.
    let _ = tokio::time::timeout(T, s.read_to_end(&mut out))
        .await
        .expect("response in time");
    String::from_utf8_lossy(&out).into_owned()
}

async fn https_get(addr: SocketAddr, path: &str) -> String {
    request(tls_connect(addr, "localhost", &[b"http/1.1"]).await, path).await
}

/// A running `switchboard serve` with `[tls]`, killed on drop.
struct Server {
    addr: SocketAddr,
    stomp: SocketAddr,
    web_stomp: SocketAddr,
    child: Child,
}

impl Server {
    fn start() -> Server {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let stomp: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let web_stomp: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["serve", "--listen", &addr.to_string()])
            .env("SWITCHBOARD_LOG", "warn")
            .env("SWITCHBOARD_TLS__CERT_FILE", data("cert.pem"))
            .env("SWITCHBOARD_TLS__KEY_FILE", data("key.pem"))
            .env("SWITCHBOARD_STOMP__TCP_LISTEN", stomp.to_string())
            .env("SWITCHBOARD_STOMP__TCP_TLS", "true")
            .env("SWITCHBOARD_STOMP__WEB_STOMP_LISTEN", web_stomp.to_string())
            .stdin(Stdio::null())
            .spawn()
            .expect("start switchboard");
        Server {
            addr,
            stomp,
            web_stomp,
            child,
        }
    }

    /// Waits until GET /healthz answers 200 over HTTPS.
    async fn ready(self) -> Server {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(tcp) = TcpStream::connect(self.addr).await {
                let name = ServerName::try_from("localhost").unwrap();
                if let Ok(Ok(s)) = tokio::time::timeout(T, connector(&[]).connect(name, tcp)).await
                {
                    if request(s, "/healthz").await.starts_with("HTTP/1.1 200") {
                        return self;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("switchboard did not answer /healthz over https");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, PartialEq)]
enum Msg {
    Text(String),
    Binary(Vec<u8>),
    Close(Option<u16>),
}

/// A WebSocket client over the project's sans-IO core, on any stream.
struct Ws<S> {
    stream: S,
    conn: Connection,
    inbox: std::collections::VecDeque<Msg>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Ws<S> {
    async fn connect(mut stream: S, path: &str) -> Ws<S> {
        let (request, handshake) = ClientRequest::new("localhost", path).encode();
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
        let mut ws = Ws {
            stream,
            conn: Connection::new(Role::Client, Config::default()),
            inbox: Default::default(),
        };
        ws.feed(leftover);
        ws
    }

    fn feed(&mut self, mut data: Vec<u8>) {
        let inbox = &mut self.inbox;
        let _ = self.conn.receive(&mut data, |ev, _| match ev {
            Event::Text(t) => inbox.push_back(Msg::Text(t.to_owned())),
            Event::Binary(b) => inbox.push_back(Msg::Binary(b.to_vec())),
            Event::Close(c) => inbox.push_back(Msg::Close(c.map(|(code, _)| code.0))),
            Event::Ping(_) | Event::Pong(_) => {}
        });
    }

    async fn flush(&mut self) {
        let mut out: Vec<Bytes> = Vec::new();
        self.conn.writer().take_output(&mut out);
        for b in out {
            self.stream.write_all(&b).await.unwrap();
        }
        self.stream.flush().await.unwrap();
    }

    async fn next(&mut self) -> Msg {
        let deadline = tokio::time::Instant::now() + T;
        loop {
            if let Some(m) = self.inbox.pop_front() {
                return m;
            }
            let mut chunk = vec![0u8; 64 * 1024];
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut chunk))
                .await
                .expect("a message in time")
                .expect("read");
            assert!(n > 0, "EOF before a message");
            chunk.truncate(n);
            self.feed(chunk);
            self.flush().await; // pongs, the close echo
        }
    }

    async fn echo(&mut self, text: &str) {
        self.conn.writer().send_text(text);
        self.flush().await;
        assert_eq!(self.next().await, Msg::Text(text.into()));
    }
}

#[tokio::test]
async fn https_and_wss_on_the_main_listener() {
    let server = Server::start().ready().await;

    let r = https_get(server.addr, "/healthz").await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.ends_with("ok") || r.ends_with("ok\n"), "{r}");
    // The chat page and the metrics come over HTTPS too.
    let r = https_get(server.addr, "/").await;
    assert!(r.starts_with("HTTP/1.1 200"), "{}", &r[..r.len().min(200)]);
    let r = https_get(server.addr, "/metrics").await;
    assert!(r.starts_with("HTTP/1.1 200"), "{}", &r[..r.len().min(200)]);

    // ALPN: a client offering h2 and http/1.1 gets http/1.1.
    let s = tls_connect(server.addr, "localhost", &[b"h2", b"http/1.1"]).await;
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    // The certificate names 127.0.0.1 too.
    let s = tls_connect(server.addr, "127.0.0.1", &[]).await;
    let r = request(s, "/healthz").await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");

    // wss:// /ws/echo round trip, text and binary.
    let s = tls_connect(server.addr, "localhost", &[b"http/1.1"]).await;
    let mut ws = Ws::connect(s, "/ws/echo").await;
    ws.echo("hello over tls").await;
    let big = "x".repeat(200_000);
    ws.echo(&big).await;
    ws.conn.writer().send_binary(&[0, 1, 2, 255]);
    ws.flush().await;
    assert_eq!(ws.next().await, Msg::Binary(vec![0, 1, 2, 255]));
    ws.conn
        .writer()
        .close(switchboard_websocket::CloseCode(1000), "bye");
    ws.flush().await;
    assert_eq!(ws.next().await, Msg::Close(Some(1000)));

    // Two wss:// /ws/topic clients talk through the hub.
    let mut a = Ws::connect(
        tls_connect(server.addr, "localhost", &[]).await,
        "/ws/topic/tls",
    )
    .await;
    let mut b = Ws::connect(
        tls_connect(server.addr, "localhost", &[]).await,
        "/ws/topic/tls",
    )
    .await;
    a.conn.writer().send_text("to b");
    a.flush().await;
    assert_eq!(b.next().await, Msg::Text("to b".into()));
}

#[tokio::test]
async fn plain_http_on_the_tls_port_fails_cleanly_and_harms_nobody() {
    let server = Server::start().ready().await;
    // A TLS client in the middle of a conversation.
    let mut ws = Ws::connect(tls_connect(server.addr, "localhost", &[]).await, "/ws/echo").await;
    ws.echo("before").await;

    // Plain HTTP: a 400 that says why, then the connection ends.
    let r = request(TcpStream::connect(server.addr).await.unwrap(), "/healthz").await;
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    assert!(r.contains("HTTPS"), "{r}");
    // A plain WebSocket handshake: the same.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let (req, _) = ClientRequest::new("localhost", "/ws/echo").encode();
    s.write_all(&req).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(T, s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert!(out.starts_with(b"HTTP/1.1 400"));
    // Bytes that are neither HTTP nor TLS: rustls answers with an alert
    // (or nothing) and closes; no HTTP answer.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(&[0u8; 64]).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(T, s.read_to_end(&mut out))
        .await
        .expect("closed in time");
    assert!(!out.starts_with(b"HTTP/"), "{out:?}");

    // The TLS client never noticed.
    ws.echo("after").await;
    let r = https_get(server.addr, "/healthz").await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
}

#[tokio::test]
async fn silent_clients_do_not_block_others_and_are_dropped_after_the_handshake_timeout() {
    let server = Server::start().ready().await;
    // Connected and silent; one that began a TLS record and stalled.
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(TcpStream::connect(server.addr).await.unwrap());
    }
    let mut stalled = TcpStream::connect(server.addr).await.unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    let started = Instant::now();

    // Others are served at once.
    for _ in 0..5 {
        let r = tokio::time::timeout(Duration::from_secs(3), https_get(server.addr, "/healthz"))
            .await
            .expect("served while silent clients are connected");
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    }
    let mut ws = Ws::connect(tls_connect(server.addr, "localhost", &[]).await, "/ws/echo").await;
    ws.echo("still fine").await;
    assert!(started.elapsed() < Duration::from_secs(5));

    // The handshake timeout (10 s) closes the silent ones.
    for s in silent.iter_mut().take(3).chain([&mut stalled]) {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf))
            .await
            .expect("closed by the handshake timeout");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    assert!(started.elapsed() >= Duration::from_secs(9));
}

#[tokio::test]
async fn web_stomp_and_stomp_tcp_listeners_speak_tls() {
    let server = Server::start().ready().await;

    // Web-STOMP layout over HTTPS: SockJS /stomp/info and STOMP over wss:// /ws.
    let r = https_get(server.web_stomp, "/stomp/info").await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.contains("\"websocket\""), "{r}");
    let s = tls_connect(server.web_stomp, "localhost", &[]).await;
    let mut ws = Ws::connect(s, "/ws").await;
    ws.conn
        .writer()
        .send_text("CONNECT\naccept-version:1.2\nhost:/\n\n\0");
    ws.flush().await;
    match ws.next().await {
        Msg::Text(t) => assert!(t.starts_with("CONNECTED\n"), "{t}"),
        other => panic!("{other:?}"),
    }
    let r = request(
        TcpStream::connect(server.web_stomp).await.unwrap(),
        "/stomp/info",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");

    // stomp+ssl: STOMP over TLS on the TCP listener (no ALPN needed, and a
    // client offering another protocol is not refused).
    let mut s = tls_connect(server.stomp, "localhost", &[b"stomp"]).await;
    assert_eq!(s.get_ref().1.alpn_protocol(), None);
    s.write_all(b"CONNECT\naccept-version:1.2\nhost:/\n\n\0")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(T, s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let reply = String::from_utf8_lossy(&buf[..n]);
    assert!(reply.starts_with("CONNECTED\n"), "{reply}");
    // Plain STOMP on that port gets no STOMP answer.
    let mut p = TcpStream::connect(server.stomp).await.unwrap();
    p.write_all(b"CONNECT\naccept-version:1.2\nhost:/\n\n\0")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(T, p.read_to_end(&mut out))
        .await
        .expect("closed in time");
    assert!(!out.starts_with(b"CONNECTED"), "{out:?}");
}

/// Runs the binary with `env` and returns its exit code and stderr.
fn run_bad(env: &[(&str, String)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{}", free_port())])
        .env("SWITCHBOARD_STOMP__TCP_LISTEN", "")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("switchboard started with {env:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn unreadable_or_invalid_files_are_configuration_errors() {
    let cert = ("SWITCHBOARD_TLS__CERT_FILE", data("cert.pem"));
    let key = ("SWITCHBOARD_TLS__KEY_FILE", data("key.pem"));
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (
            vec![
                ("SWITCHBOARD_TLS__CERT_FILE", data("missing.pem")),
                key.clone(),
            ],
            "tls.cert_file",
        ),
        (
            vec![
                cert.clone(),
                ("SWITCHBOARD_TLS__KEY_FILE", data("missing.pem")),
            ],
            "tls.key_file",
        ),
        // A key where the certificate should be, and the reverse.
        (
            vec![("SWITCHBOARD_TLS__CERT_FILE", data("key.pem")), key.clone()],
            "no PEM certificate",
        ),
        (
            vec![
                cert.clone(),
                ("SWITCHBOARD_TLS__KEY_FILE", data("cert.pem")),
            ],
            "no PEM private key",
        ),
        (
            vec![
                cert.clone(),
                ("SWITCHBOARD_TLS__KEY_FILE", data("other-key.pem")),
            ],
            "[tls]",
        ),
        (vec![cert.clone()], "tls.key_file is not"),
        (
            vec![("SWITCHBOARD_STOMP__TCP_TLS", "true".into())],
            "stomp.tcp_tls",
        ),
    ];
    for (env, expected) in cases {
        let (code, stderr) = run_bad(&env);
        assert_eq!(code, Some(2), "{env:?}: {stderr}");
        assert!(
            stderr.contains("configuration error") && stderr.contains(expected),
            "{env:?}: {stderr}"
        );
    }
}
