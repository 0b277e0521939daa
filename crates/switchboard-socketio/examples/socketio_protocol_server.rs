//! The server of the Socket.IO v5 / Engine.IO v4 protocol test suites
//! (`socket.io/docs/socket.io-protocol/v5-test-suite` and
//! `engine.io-protocol/test-suite`), in Rust, for interop tests against the
//! real npm clients.
//!
//! The Node reference:
//!
//! ```js
//! const io = new Server(PORT, { pingInterval: 300, pingTimeout: 200,
//!   maxPayload: 1e6, connectTimeout: 1000, cors: { origin: "*" } });
//! io.on("connection", (socket) => {
//!   socket.emit("auth", socket.handshake.auth);
//!   socket.on("message", (...args) => socket.emit("message-back", ...args));
//!   socket.on("message-with-ack", (...args) => { const ack = args.pop(); ack(...args); });
//! });
//! io.of("/custom").on("connection", (socket) => socket.emit("auth", socket.handshake.auth));
//! // plus a raw Engine.IO server at /engine.io/ echoing every message
//! ```
//!
//! For the tests to see the server side, it also prints one line per
//! namespace connection and disconnection: `connect NSP SOCKET_ID` and
//! `disconnect NSP SOCKET_ID REASON`.
//!
//! Run: `cargo run --release -p switchboard-socketio --example
//! socketio_protocol_server -- 3000` (or `PORT=3000`); it prints
//! `listening on 127.0.0.1:PORT` when ready.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use switchboard_socketio::args::Args;
use switchboard_socketio::{AckSender, Config, SocketIo, SocketRef};
use switchboard_transport::engineio::{
    CloseReason, Cors, EngineConfig, EngineHandler, EngineIo, EngineIoConfig, EngineSocket, Message,
};
use switchboard_transport::Registry;
use tokio::net::TcpListener;

/// The raw Engine.IO endpoint: sends back every message it gets.
struct Echo;

impl EngineHandler for Echo {
    /// Nothing kept per session.
    type Session = ();

    fn on_open(&self, _socket: EngineSocket, _req: &http::request::Parts) -> Arc<()> {
        Arc::new(())
    }

    fn on_message(&self, _: &Arc<()>, socket: &EngineSocket, message: Message) {
        let _ = socket.send(message);
    }

    fn on_close(&self, _: &Arc<()>, _socket: &EngineSocket, _reason: CloseReason) {}
}

fn engine_config() -> EngineIoConfig {
    let mut config = EngineIoConfig::new(EngineConfig {
        ping_interval: Duration::from_millis(300),
        ping_timeout: Duration::from_millis(200),
        max_payload: 1_000_000,
        ..EngineConfig::default()
    });
    config.cors = Cors::Any;
    config
}

/// Prints the connection and, later, the disconnection with its reason.
fn trace(socket: &SocketRef) {
    println!("connect {} {}", socket.ns(), socket.id());
    socket.on_disconnect(|s, reason| println!("disconnect {} {} {reason}", s.ns(), s.id()));
}

fn socket_io() -> SocketIo {
    let io = SocketIo::with_config(Config {
        connect_timeout: Duration::from_millis(1000),
        ..Config::default()
    });
    io.ns("/", |socket: SocketRef| {
        trace(&socket);
        let _ = socket.emit("auth", socket.handshake().auth());
        socket.on(
            "message",
            |s: SocketRef, args: Args, _ack: Option<AckSender>| {
                let _ = s.emit("message-back", args);
            },
        );
        socket.on(
            "message-with-ack",
            |_s: SocketRef, args: Args, ack: Option<AckSender>| {
                if let Some(ack) = ack {
                    let _ = ack.send(args);
                }
            },
        );
    });
    io.ns("/custom", |socket: SocketRef| {
        trace(&socket);
        let _ = socket.emit("auth", socket.handshake().auth());
    });
    io
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("PORT").ok())
        .map(|p| p.parse().expect("the port must be a number"))
        .unwrap_or(3000);
    let registry = Registry::new();
    let sio = EngineIo::new(socket_io(), engine_config(), registry.clone());
    let eio = EngineIo::new(Echo, engine_config(), registry);

    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on {}", listener.local_addr()?);

    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).keep_alive(true);
    loop {
        let (stream, _peer) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                eprintln!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (sio, eio) = (sio.clone(), eio.clone());
        let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let (sio, eio) = (sio.clone(), eio.clone());
            async move {
                let path = req.uri().path();
                let resp = if path == "/socket.io/" || path == "/socket.io" {
                    sio.handle(req).await.map(Either::Left)
                } else if path == "/engine.io/" || path == "/engine.io" {
                    eio.handle(req).await.map(Either::Left)
                } else {
                    let mut resp =
                        http::Response::new(Either::Right(Full::new(Bytes::from("not found\n"))));
                    *resp.status_mut() = http::StatusCode::NOT_FOUND;
                    resp
                };
                Ok::<_, Infallible>(resp)
            }
        });
        // The IO is `TokioIo<TcpStream>`: the WebSocket takes its fast path.
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}
