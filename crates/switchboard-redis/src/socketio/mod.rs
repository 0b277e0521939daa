//! Socket.IO across several nodes over Redis (what `@socket.io/redis-adapter`
//! does for Node's socket.io): [`RedisSocketIoCluster`] implements
//! [`switchboard_socketio::Cluster`], so that room broadcasts,
//! `sockets_join`/`sockets_leave`, `disconnect_sockets`, broadcasts with
//! acks and `fetch_cluster_sockets` reach every node's sockets. It is
//! independent of the hub backplane ([`RedisBackplane`](crate::RedisBackplane)):
//! its own two connections, its own channels.
//!
//! ## How it works
//!
//! * **Two channels per node**: every node subscribes to the common
//!   channel `{prefix}:sio#` (broadcasts, requests and heartbeats of every
//!   namespace) and to its own `{prefix}:sio#{node id}` (answers to its
//!   requests). One channel for all namespaces rather than one each: every
//!   node must answer every request anyway (the asker waits for each live
//!   node), namespaces come and go at run time (dynamic ones), and a fixed
//!   pair of subscriptions makes resubscribing after a reconnect trivial; a
//!   node drops what is for a namespace it does not have.
//! * **Encode once**: a broadcast's bytes (the Socket.IO packet as queued
//!   to the local sockets) are written into the `PUBLISH` as they are, and
//!   queued as they are to the receiving node's sockets. Only two edits are
//!   made on the way, without encoding again: the receiving node puts in
//!   its own ack id (broadcast with acks) or its own recovery offset.
//! * **Live nodes**: every node sends a heartbeat every
//!   `heartbeat_interval_ms`, and HELLO when it (re)subscribes (the others
//!   answer at once); a node not heard from within `heartbeat_timeout_ms`,
//!   or that said BYE ([`RedisSocketIoCluster::shutdown`]), is gone.
//! * **Requests** (`fetch_cluster_sockets`; the recipient lists of a
//!   broadcast with acks) carry a request id and wait for the nodes alive
//!   when they were made, at most `request_timeout_ms`; a node that goes
//!   away meanwhile stops being waited for, and its recipients count as
//!   disconnected. Each node answers a broadcast with acks with its
//!   recipients' ids, then each answer as it comes, so that the origin
//!   reports a silent remote socket by its id.
//! * **Faults**: the links are the crate's (capped, jittered reconnects;
//!   idle `PING`s). Messages are versioned and decoded defensively
//!   ([`wire`]); malformed ones are counted and logged. A node ignores its
//!   own messages echoed back.
//!
//! * **Connection state recovery across nodes** (when the server has
//!   `connection_state_recovery`): the cluster is also a
//!   [`ClusterRecovery`](switchboard_socketio::ClusterRecovery): events
//!   numbered and kept in a Redis stream per namespace, sessions written
//!   through, restores on any node ([`recovery`]'s docs); what a node
//!   missed while its subscription was down is read back from the streams
//!   once it is back (the `resync` module's docs).
//!
//! ## Not covered
//!
//! `serverSideEmit` is not implemented.

mod apply;
mod cluster;
mod config;
mod links;
mod nodes;
mod recovery;
mod requests;
mod resync;
mod stats;
pub mod wire;

pub use cluster::RedisSocketIoCluster;
pub use config::SocketIoClusterConfig;
pub use stats::SocketIoClusterStats;
