//! # switchboard-stomp
//!
//! The STOMP 1.0 / 1.1 / 1.2 broker of Switchboard, for unmodified STOMP
//! clients (`stomp.py`, `@stomp/stompjs`, Spring's `StompClient` …).
//!
//! * `/topic/<name>` is the hub topic `<name>`: STOMP subscribers see what
//!   WebSocket, Socket.IO and SockJS clients publish on it, and the other
//!   way round (see `docs/stomp.md` for the payload mapping).
//! * `/queue/<name>` is a point-to-point queue: one consumer per
//!   message, round robin, ack modes `auto` / `client` /
//!   `client-individual`, redelivery with `redelivered:true`. In memory by
//!   default; with [`Broker::with_store`] and a [`RedbStore`], messages not
//!   yet acknowledged survive a restart.
//!   With [`Broker::with_backend`] and a [`QueueBackend`] (Redis Streams in
//!   `switchboard-redis`), queues are shared by the brokers of several
//!   nodes, at least once.
//! * Transactions buffer SEND, ACK and NACK until COMMIT.
//! * [`Authenticator`] checks CONNECT credentials, a [`PermissionFn`]
//!   guards each destination.
//!
//! The protocol rules are `switchboard_stomp_proto`'s
//! [`ServerSession`](switchboard_stomp_proto::ServerSession); this crate
//! routes ([`Broker`], [`StompClient`]) and drives sockets
//! ([`serve_tcp`] for raw TCP, [`StompWsHandler`] for WebSocket).
//!
//! # Example: a STOMP server on TCP port 61613
//!
//! ```no_run
//! use switchboard_hub::{Hub, HubConfig};
//! use switchboard_stomp::{serve_tcp, Broker, StaticUsers, StompConfig};
//! use switchboard_transport::Registry;
//!
//! #[tokio::main]
//! async fn main() -> std::io::Result<()> {
//!     let hub = Hub::new(HubConfig::default());
//!     let config = StompConfig::default()
//!         .with_authenticator(StaticUsers::new().user("guest", "guest"))
//!         .with_permission(|user, destination, _action| {
//!             !destination.starts_with("/queue/admin.") || user.name() == "admin"
//!         });
//!     let broker = Broker::new(hub, config);
//!     let listener = tokio::net::TcpListener::bind("0.0.0.0:61613").await?;
//!     serve_tcp(listener, broker, Registry::new()).await
//! }
//! ```

#![deny(missing_docs)]

pub mod auth;
pub mod backend;
pub mod broker;
pub mod client;
pub mod config;
pub mod connection;
pub mod destination;
mod queue;
pub mod store;
mod transaction;
pub mod websocket;

pub use auth::{Action, AllowAll, Authenticator, PermissionFn, Principal, StaticUsers};
pub use backend::{BackendError, MessageKey, QueueBackend, RemoteMessage, RemoteQueue, SendDone};
pub use broker::{Broker, SendToQueueError, WeakBroker};
pub use client::{content_type, payload_of, StompClient};
pub use config::StompConfig;
pub use connection::{run_connection, serve_tcp};
pub use destination::{Destination, InvalidDestination};
pub use queue::QueueFull;
pub use store::{MemoryStore, QueueStore, RedbStore, StoredMessage};
pub use websocket::{StompWsHandler, SUBPROTOCOLS};

/// The protocol core (for [`StompConfig::session`] settings such as
/// heart-beats and frame limits).
pub use switchboard_stomp_proto as proto;
