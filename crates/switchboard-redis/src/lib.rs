//! # switchboard-redis
//!
//! The Redis backplane of Switchboard: several nodes (server processes)
//! share one `redis-server`, and a publication on topic `t` on any node
//! reaches the subscribers of `t` on every node, whatever protocol each
//! speaks. [`RedisBackplane`] implements [`switchboard_hub::Backplane`].
//!
//! ## How it works
//!
//! * **One channel per topic**, `{prefix}:t:{topic}`, and one `SUBSCRIBE`
//!   per topic per node: when a topic gets its first local subscriber the
//!   node subscribes to its channel, when it loses its last one the node
//!   unsubscribes. A node thus only receives what its clients want.
//! * **Two links**, each a Tokio task with its own connection: the
//!   *publisher* sends local publications (`PUBLISH`, pipelined in batches,
//!   in order) from a bounded queue; the *subscriber* holds the
//!   subscriptions and delivers publications into the hub with
//!   [`Hub::deliver_sequenced`](switchboard_hub::Hub::deliver_sequenced)
//!   (shared history: the number Redis gave) or
//!   [`Hub::deliver_remote`](switchboard_hub::Hub::deliver_remote) (the
//!   next local number), keeping their origin timestamp and sender; its
//!   second connection reads topics' history and presence and reports this
//!   node's presence.
//! * **Never in the way of local delivery**: the hub calls the backplane
//!   with a topic lock held, and the backplane only queues (lock-free) or
//!   records; a full queue drops and counts ([`BackplaneStats::dropped`]).
//! * **Faults**: a lost connection is retried with capped, jittered
//!   backoff; on reconnection every open topic is subscribed again and a
//!   warning says what the outage cost. Redis pub/sub stores nothing, so
//!   what other nodes published while this one was disconnected is gone.
//!   An error reply (e.g. an ACL denying a channel) is counted and logged
//!   and skips that publication or topic, without cutting the node off.
//! * **Messages** carry a version byte, the origin node id (so a node
//!   ignores its own publications echoed back), the origin timestamp, the
//!   payload kind and the sender: see [`wire`]. Malformed messages are
//!   counted and logged, never trusted.
//!
//! ## Use
//!
//! ```no_run
//! use switchboard_hub::{ClientInfo, Hub, HubConfig, Payload};
//! use switchboard_redis::{RedisBackplane, RedisConfig};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let bp = RedisBackplane::new(RedisConfig::new("redis://127.0.0.1:6379"))?;
//!     let hub = Hub::with_backplane(HubConfig::default(), bp.clone());
//!     bp.start(&hub)?;
//!
//!     // From here on, `hub` is used exactly as on a single node.
//!     let alice = hub.connect(ClientInfo::new("alice", "websocket"));
//!     alice.subscribe("chat", None)?; // this node now SUBSCRIBEs switchboard:t:chat
//!     alice.publish("chat", Payload::text("hello, every node"))?;
//!
//!     println!("{:?}", bp.stats());
//!     Ok(())
//! }
//! ```
//!
//! ## Socket.IO across nodes
//!
//! With the `socketio` feature (on by default), [`RedisSocketIoCluster`]
//! makes several Socket.IO servers one (rooms, broadcasts with acks,
//! `fetch_cluster_sockets`...) over the same Redis: see [`socketio`].
//!
//! ## STOMP queues across nodes
//!
//! With the `stomp` feature (on by default), [`RedisQueues`] keeps STOMP
//! `/queue/...` destinations in Redis Streams, so that the STOMP brokers
//! of every node share them: each message goes to one consumer among all
//! nodes', at least once. See [`stomp_queue`].
//!
//! ## Shared numbering, history and presence
//!
//! With [`RedisConfig::shared_history`] (the default) Redis numbers every
//! topic's publications and keeps the last ones (a stream per topic), in
//! one Lua script with the `PUBLISH`, so every node delivers the same
//! publications in the same order with the same `seq`, and a client
//! catches up with `since` on any node (the hub asks the backplane for the
//! topic's history first: `Hub::sync_topic`). Publications then reach
//! local subscribers through Redis too. Without it, each node numbers and
//! delivers its own publications at once and history stays per node.
//! Presence is shared either way: each node reports a topic's subscribers
//! on the topic's channel and in a hash, and the others count them.
//!
#![warn(missing_docs)]

mod backplane;
mod config;
mod error;
mod history;
mod link;
mod outbox;
mod presence;
mod publisher;
#[cfg(feature = "socketio")]
pub mod socketio;
mod stats;
#[cfg(feature = "stomp")]
pub mod stomp_queue;
mod subscriber;
mod topics;
pub mod wire;

pub use backplane::RedisBackplane;
pub use config::RedisConfig;
pub use error::Error;
#[cfg(feature = "socketio")]
pub use socketio::{RedisSocketIoCluster, SocketIoClusterConfig, SocketIoClusterStats};
pub use stats::{BackplaneStats, LagStats, LAG_BUCKETS_MS};
#[cfg(feature = "stomp")]
pub use stomp_queue::{RedisQueues, StompQueueConfig, StompQueueStats};
