//! The Socket.IO v5 server layer: namespaces, sockets, rooms, events,
//! acknowledgements and broadcasts, behaving as the Node `socket.io` 4
//! server does for an unmodified `socket.io-client` 4.
//!
//! It sits between an Engine.IO transport (one [`EngineConn`] per session,
//! fed through [`SocketIo::engine_open`] / [`engine_message`](SocketIo::engine_message)
//! / [`engine_close`](SocketIo::engine_close)) and your handlers; packets
//! are encoded and decoded by `switchboard-socketio-proto`.
//!
//! # Model
//!
//! * [`SocketIo`] (cheap `Clone`) holds the [`Namespace`]s; `"/"` always
//!   exists. [`SocketIo::ns`] sets a connection handler,
//!   [`SocketIo::dynamic_ns`] accepts namespaces by predicate.
//! * Each connection to a namespace is a [`Socket`], shared as
//!   [`SocketRef`] (`Arc<Socket>`).
//! * **Handlers are synchronous closures**, called on the task that
//!   delivered the Engine.IO message, in packet order, with no lock held:
//!   they may emit, join, broadcast or disconnect freely. For async work
//!   use [`Socket::on_async`] (spawns one tokio task per event) or spawn
//!   yourself. Middlewares may be sync ([`Namespace::middleware`]) or
//!   async ([`Namespace::async_middleware`]).
//! * **Arguments** (see [`args`]): a tuple is several arguments, `()` none,
//!   any other `Serialize` type one; incoming, a tuple type takes the
//!   arguments positionally and any other `DeserializeOwned` type the first
//!   one. `bytes::Bytes` is binary (an attachment).
//! * Acks: an event handler gets `Option<AckSender>`;
//!   [`Socket::emit_with_ack`] returns a future of the answer, with an
//!   optional `.timeout(..)`; broadcasts with acks collect one result per
//!   recipient.
//! * Rooms live in an [`Adapter`] per namespace ([`LocalAdapter`] by
//!   default). Broadcasts encode once and queue the same bytes to each
//!   recipient (and hand them to the [`Cluster`], if any).
//!
//! * Connection state recovery (socket.io 4.6's `pid`/`offset` scheme) is
//!   an option ([`Config::connection_state_recovery`], see
//!   [`RecoveryConfig`]): a client whose transport dropped and that comes
//!   back in time keeps its socket id, rooms and extensions and receives
//!   the events it missed. With a [`Cluster`] that offers
//!   [`ClusterRecovery`], on any node.
//! * An [`EngineIo`](switchboard_transport::engineio::EngineIo) endpoint is
//!   a tower `Service`: `Router::new().route_service("/socket.io/", engine)`
//!   mounts it in axum (see `examples/chat.rs`).
//!
//! * Several nodes (Node's cluster adapters): set [`Config::cluster`] to a
//!   [`Cluster`] (e.g. `switchboard_redis::RedisSocketIoCluster`) and
//!   broadcasts, `sockets_join`/`sockets_leave`, `disconnect_sockets`,
//!   broadcasts with acks and [`fetch_cluster_sockets`](BroadcastOperator::fetch_cluster_sockets)
//!   reach every node's sockets; `local()` keeps them on this node. See
//!   [`cluster`].
//!
//! Not implemented: the per-socket `use` middleware and `volatile` on
//! single sockets, `onAnyOutgoing`, `serverSideEmit`.
//!
//! # Example: the chat server
//!
//! Node: `io.on('connection', socket => socket.on('chat message', msg => io.emit('chat message', msg)))`.
//!
//! ```
//! use switchboard_socketio::{AckSender, SocketIo, SocketRef};
//!
//! let io = SocketIo::new();
//! let io2 = io.clone();
//! io.ns("/", move |socket: SocketRef| {
//!     let io = io2.clone();
//!     socket.on("chat message", move |_s: SocketRef, msg: String, _ack: Option<AckSender>| {
//!         let _ = io.emit("chat message", &msg);
//!     });
//! });
//! ```
//!
//! # Example: rooms, acks, middleware, binary
//!
//! ```
//! use bytes::Bytes;
//! use serde::Deserialize;
//! use std::time::Duration;
//! use switchboard_socketio::{AckSender, ConnectError, SocketIo, SocketRef};
//!
//! #[derive(Deserialize)]
//! struct Auth { token: String }
//!
//! let io = SocketIo::new();
//! let chat = io.ns("/chat", |socket: SocketRef| {
//!     // `join("lobby", cb)` with an ack: two arguments, read as a tuple.
//!     socket.on("join", |s: SocketRef, (room, nick): (String, String), ack: Option<AckSender>| {
//!         s.join(room.as_str());
//!         let _ = s.to(room.as_str()).emit("joined", &nick);
//!         if let Some(ack) = ack {
//!             let _ = ack.send(("ok", s.rooms().len()));
//!         }
//!     });
//!     socket.on("upload", |s: SocketRef, file: Bytes, _ack: Option<AckSender>| {
//!         let _ = s.emit("uploaded", (file.len(), file)); // BINARY_EVENT
//!     });
//!     socket.on_async("ask", |s: SocketRef, _: (), _ack: Option<AckSender>| async move {
//!         let answer = s.emit_with_ack::<String>("question", "why?")
//!             .timeout(Duration::from_secs(5))
//!             .await;
//!         println!("{answer:?}");
//!     });
//!     socket.on_disconnect(|s, reason| println!("{} left: {reason}", s.id()));
//! });
//! chat.middleware(|socket| {
//!     let auth: Auth = socket.handshake().auth_as().map_err(|_| ConnectError::new("no token"))?;
//!     if auth.token != "secret" {
//!         return Err(ConnectError::new("not authorized").with_data(serde_json::json!({"retry": false})));
//!     }
//!     Ok(())
//! });
//! ```
#![warn(missing_docs)]

mod adapter;
pub mod args;
mod broadcast;
mod client;
pub mod cluster;
mod engine;
mod error;
mod handshake;
mod io;
mod namespace;
mod recovery;
mod socket;
mod splice;

pub use adapter::{Adapter, BroadcastOptions, IntoRooms, LocalAdapter, Room};
pub use broadcast::{BroadcastAckFuture, BroadcastOperator};
pub use client::Client;
pub use cluster::{
    AckSink, BroadcastFlags, Cluster, ClusterFuture, ClusterRecovery, EncodedPacket, LocalAcks,
    RecordedEvent, RemoteSocket, RestoredSession, SessionState, SocketData, SocketInfo,
};
pub use engine::{CloseReason, Closed, EngineConn, Message, SessionWork, Utf8Bytes};
pub use error::{AckError, ConnectError, DisconnectReason, EmitError};
pub use handshake::{
    Extensions, Handshake, HandshakeHeaders, HandshakeRequest, HeadersIter, KeptHeaders,
};
pub use io::{AdapterFactory, Config, DynamicNamespace, SocketIo, WeakSocketIo};
pub use namespace::Namespace;
pub use recovery::RecoveryConfig;
pub use socket::{AckFuture, AckSender, Socket, SocketRef};
pub use switchboard_socketio_proto::Value;
#[cfg(test)]
mod size_tests {
    /// What every idle connection holds: a socket per namespace joined
    /// (in an `Arc`: 16 bytes more) and the client, each filling a
    /// jemalloc size class (96, 112, 128, 160, 192): the handshake shares
    /// the connection's request and boxes a non-empty `auth`, and the
    /// rarely used parts (handlers on the socket itself, awaited acks, a
    /// half-received binary packet) are allocated when first used.
    #[test]
    fn idle_state_stays_small() {
        use std::mem::size_of;
        assert!(size_of::<crate::socket::Socket>() + 16 <= 160);
        assert!(size_of::<crate::client::Client>() + 16 <= 112);
        assert_eq!(size_of::<switchboard_socketio_proto::Decoder>(), 16);
    }
}
