//! The Socket.IO benchmark app on Switchboard's own `switchboard-socketio`,
//! served with hyper as `examples/socketio_protocol_server.rs` does (default
//! engine options: pingInterval 25 s, pingTimeout 20 s, polling and websocket).
//! The same app as `peer-socketioxide` and `node/peer-socketio.mjs`:
//!
//! * `echo (...args)` → acked with the same arguments;
//! * `join (room)` → joins the room, acks `true`;
//! * `broadcast (room, payload)` → `io.to(room).emit("msg", payload)`, acks `true` if asked.
//!
//! Usage: `sio-switchboard [--listen] HOST:PORT` (default 127.0.0.1:9012);
//! prints "sio-switchboard ready on ADDR" once listening. The environment
//! variable `SIO_SWITCHBOARD_MAX_BUFFERED_BYTES` sets the slow-consumer limit
//! (`EngineIoConfig::max_buffered_bytes`, default 4 MiB).

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use switchboard_socketio::args::Args;
use switchboard_socketio::{AckSender, SocketIo, SocketRef, Value};
use switchboard_transport::engineio::{EngineConfig, EngineIo, EngineIoConfig};
use switchboard_transport::Registry;
use tokio::net::TcpListener;

fn socket_io() -> SocketIo {
    let io = SocketIo::new();
    let io2 = io.clone();
    io.ns("/", move |socket: SocketRef| {
        socket.on(
            "echo",
            |_s: SocketRef, args: Args, ack: Option<AckSender>| {
                if let Some(ack) = ack {
                    let _ = ack.send(args);
                }
            },
        );
        socket.on(
            "join",
            |s: SocketRef, room: String, ack: Option<AckSender>| {
                s.join(room);
                if let Some(ack) = ack {
                    let _ = ack.send(true);
                }
            },
        );
        let io = io2.clone();
        socket.on(
            "broadcast",
            move |_s: SocketRef, (room, payload): (String, Value), ack: Option<AckSender>| {
                let _ = io.to(room).emit("msg", &payload);
                if let Some(ack) = ack {
                    let _ = ack.send(true);
                }
            },
        );
    });
    io
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::args()
        .skip(1)
        .find(|a| a != "--listen")
        .unwrap_or_else(|| "127.0.0.1:9012".into());
    let registry = Registry::new();
    let mut config = EngineIoConfig::new(EngineConfig::default());
    if let Some(n) = std::env::var("SIO_SWITCHBOARD_MAX_BUFFERED_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.max_buffered_bytes = n;
    }
    let sio = EngineIo::new(socket_io(), config, registry);

    let listener = TcpListener::bind(&listen).await?;
    println!("sio-switchboard ready on {}", listener.local_addr()?);

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
        let sio = sio.clone();
        let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let sio = sio.clone();
            async move {
                let path = req.uri().path();
                let resp = if path == "/socket.io/" || path == "/socket.io" {
                    sio.handle(req).await.map(Either::Left)
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
