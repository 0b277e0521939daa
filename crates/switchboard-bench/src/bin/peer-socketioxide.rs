//! The Socket.IO benchmark app on `socketioxide` (crates.io), served with
//! hyper as its hyper-echo example does (`SocketIo::new_svc()`, default
//! options: pingInterval 25 s, pingTimeout 20 s, polling and websocket,
//! in-memory adapter). The same app as `sio-switchboard` and
//! `node/peer-socketio.mjs`:
//!
//! * `echo (arg)` → acked with the same argument;
//! * `join (room)` → joins the room, acks `true`;
//! * `broadcast (room, payload)` → `io.to(room).emit("msg", payload)`, acks `true` if asked.
//!
//! Usage: `peer-socketioxide [--listen] HOST:PORT` (default 127.0.0.1:9013);
//! prints "peer-socketioxide ready on ADDR" once listening.

use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::Value;
use socketioxide::extract::{AckSender, Data, SocketRef};
use socketioxide::SocketIo;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::args()
        .skip(1)
        .find(|a| a != "--listen")
        .unwrap_or_else(|| "127.0.0.1:9013".into());
    let (svc, io) = SocketIo::new_svc();
    io.ns("/", async |s: SocketRef| {
        s.on("echo", async |Data::<Value>(data), ack: AckSender| {
            ack.send(&data).ok();
        });
        s.on(
            "join",
            async |s: SocketRef, Data::<String>(room), ack: AckSender| {
                s.join(room);
                ack.send(&true).ok();
            },
        );
        s.on(
            "broadcast",
            async |io: SocketIo, Data::<(String, Value)>((room, payload)), ack: AckSender| {
                io.to(room).emit("msg", &payload).await.ok();
                ack.send(&true).ok();
            },
        );
    });

    let listener = TcpListener::bind(&listen).await?;
    println!("peer-socketioxide ready on {}", listener.local_addr()?);

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
        let conn = builder
            .serve_connection(TokioIo::new(stream), svc.clone())
            .with_upgrades();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}
