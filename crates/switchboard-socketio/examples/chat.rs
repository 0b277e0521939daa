//! The seeds' Socket.IO chat server, in Rust, mounted in an axum router.
//!
//! The Node original:
//!
//! ```js
//! const io = require('socket.io')(3000, { cors: { origin: "*" } });
//! io.on('connection', (socket) => {
//!   console.log('a client connected');
//!   socket.on('chat message', (message) => io.emit('chat message', message));
//!   socket.on('disconnect', () => console.log('a client disconnected'));
//! });
//! ```
//!
//! plus what a chat soon needs: `socket.broadcast.emit('new user', id)`,
//! rooms (`join` with an ack listing the socket's rooms, `leave`, and
//! `room message` sent to the others in a room), and connection state
//! recovery, so that a client whose network blinks keeps its id and rooms
//! and gets the messages it missed; and permessage-deflate on the
//! WebSocket transport for messages of 1 KiB and more (Node's
//! `perMessageDeflate: { threshold: 1024 }`).
//!
//! Run: `cargo run --release -p switchboard-socketio --example chat -- 3000`
//! (or `PORT=3000`); it prints `listening on 127.0.0.1:PORT` when ready.
//! `CHAT_RECOVERY=off` turns connection state recovery off (the churn
//! test's control run, tests/node/churn.test.mjs).
//! The seeds' page (`io('http://localhost:3000')`) talks to it unchanged.

use axum::Router;
use serde_json::Value;
use switchboard_socketio::{AckSender, Config, RecoveryConfig, SocketIo, SocketRef};
use switchboard_transport::engineio::{Cors, EngineIo, EngineIoConfig};
use switchboard_transport::Registry;
use switchboard_websocket::DeflateConfig;

fn chat(recovery: bool) -> SocketIo {
    let io = SocketIo::with_config(Config {
        connection_state_recovery: recovery.then(RecoveryConfig::default),
        ..Config::default()
    });
    let everyone = io.clone();
    io.ns("/", move |socket: SocketRef| {
        println!("connect {} recovered={}", socket.id(), socket.recovered());
        if !socket.recovered() {
            let _ = socket.broadcast().emit("new user", socket.id());
        }

        let io = everyone.clone();
        socket.on(
            "chat message",
            move |_s: SocketRef, message: Value, _ack: Option<AckSender>| {
                let _ = io.emit("chat message", &message);
            },
        );
        socket.on(
            "join",
            |s: SocketRef, room: String, ack: Option<AckSender>| {
                s.join(room.as_str());
                if let Some(ack) = ack {
                    let mut rooms = s.rooms();
                    rooms.sort();
                    let _ = ack.send(rooms);
                }
            },
        );
        socket.on(
            "leave",
            |s: SocketRef, room: String, ack: Option<AckSender>| {
                s.leave(room.as_str());
                if let Some(ack) = ack {
                    let _ = ack.send(());
                }
            },
        );
        socket.on(
            "room message",
            |s: SocketRef, (room, message): (String, Value), _ack: Option<AckSender>| {
                let _ = s.to(room.as_str()).emit("room message", (&room, &message));
            },
        );
        socket.on_disconnect(|s, reason| println!("disconnect {} {reason}", s.id()));
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
    let config = EngineIoConfig {
        cors: Cors::Any, // cors: { origin: "*" }
        per_message_deflate: Some(DeflateConfig {
            min_size: 1024,
            ..DeflateConfig::default()
        }),
        ..EngineIoConfig::default()
    };
    let recovery = std::env::var("CHAT_RECOVERY").map_or(true, |v| v != "off");
    let engine = EngineIo::new(chat(recovery), config, Registry::new());
    let app = Router::new().route_service("/socket.io/", engine);

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await
}
