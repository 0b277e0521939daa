//! [`SocketIo`]: the server (Node's `Server`): namespaces, connections,
//! and the entry points the Engine.IO transport calls.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use switchboard_engineio::{CloseReason, Message, SidGenerator};
use switchboard_socketio_proto::{DecoderConfig, Value};

use crate::adapter::{Adapter, IntoRooms, LocalAdapter};
use crate::broadcast::{BroadcastAckFuture, BroadcastOperator};
use crate::client::Client;
use crate::cluster::{Cluster, RemoteSocket};
use crate::engine::EngineConn;
use crate::error::{ConnectError, DisconnectReason, EmitError};
use crate::handshake::{HandshakeRequest, KeptHeaders};
use crate::namespace::{Hooks, Namespace};
use crate::recovery::RecoveryConfig;
use crate::socket::SocketRef;

/// Makes the adapter of each namespace (given its name).
pub type AdapterFactory = Arc<dyn Fn(&str) -> Arc<dyn Adapter> + Send + Sync>;

/// Server options.
#[derive(Clone)]
pub struct Config {
    /// Close an Engine.IO session that joined no namespace within this
    /// long (Node's `connectTimeout`, 45 s). Zero disables it. Needs a
    /// tokio runtime at [`SocketIo::engine_open`]; without one there is no
    /// timeout.
    pub connect_timeout: Duration,
    /// Limits of the packet decoder.
    pub decoder: DecoderConfig,
    /// The adapter of each namespace; [`LocalAdapter`] by default.
    pub adapter: AdapterFactory,
    /// Connection state recovery (Node's `connectionStateRecovery`); off
    /// (`None`) by default, as in Node. See [`RecoveryConfig`].
    pub connection_state_recovery: Option<RecoveryConfig>,
    /// The other nodes, when this server is one of several behind a load
    /// balancer (Node's cluster adapters); `None` (alone) by default. See
    /// [`Cluster`] and `switchboard_redis::RedisSocketIoCluster`.
    pub cluster: Option<Arc<dyn Cluster>>,
    /// Which headers of the Engine.IO handshake request a connection keeps
    /// for its sockets' [`Handshake::headers`](crate::Handshake::headers):
    /// all (as Node) by default. Every idle connection holds them, and a
    /// browser sends about a kilobyte: keep only those the application
    /// reads after the handshake, if it knows them.
    pub handshake_headers: KeptHeaders,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            connect_timeout: Duration::from_secs(45),
            decoder: DecoderConfig::default(),
            adapter: Arc::new(|_| Arc::new(LocalAdapter::new())),
            connection_state_recovery: None,
            cluster: None,
            handshake_headers: KeptHeaders::All,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("connect_timeout", &self.connect_timeout)
            .field("decoder", &self.decoder)
            .field("connection_state_recovery", &self.connection_state_recovery)
            .field("cluster", &self.cluster.is_some())
            .field("handshake_headers", &self.handshake_headers)
            .finish_non_exhaustive()
    }
}

type Predicate = Arc<dyn Fn(&str, &Value) -> bool + Send + Sync>;

pub(crate) struct IoInner {
    pub(crate) config: Config,
    nsps: RwLock<HashMap<String, Namespace>>,
    dynamic: RwLock<Vec<(Predicate, Arc<Hooks>)>>,
    /// How many clients are open. The transport keeps each one with its
    /// session (no table here: it would cost ~43 bytes per connection).
    clients: AtomicUsize,
    sids: Mutex<SidGenerator>,
}

impl IoInner {
    pub(crate) fn next_sid(&self) -> String {
        self.sids.lock().next_sid()
    }

    /// A client shut down (once per client).
    pub(crate) fn remove_client(&self) {
        self.clients.fetch_sub(1, Ordering::AcqRel);
    }

    fn of(&self, name: &str, hooks: Option<Arc<Hooks>>) -> Namespace {
        if let Some(ns) = self.nsps.read().get(name) {
            return ns.clone();
        }
        let mut nsps = self.nsps.write();
        nsps.entry(name.to_owned())
            .or_insert_with(|| {
                Namespace::new(
                    name.to_owned(),
                    hooks.unwrap_or_default(),
                    (self.config.adapter)(name),
                    self.config.connection_state_recovery.clone(),
                    self.config.cluster.clone(),
                )
            })
            .clone()
    }

    /// The namespace a CONNECT to `name` reaches: an existing one, or a new
    /// child of the first dynamic namespace whose predicate accepts it.
    pub(crate) fn namespace_for(&self, name: &str, auth: &Value) -> Option<Namespace> {
        if let Some(ns) = self.nsps.read().get(name) {
            return Some(ns.clone());
        }
        let dynamic = self.dynamic.read().clone();
        for (pred, hooks) in dynamic {
            if pred(name, auth) {
                return Some(self.of(name, Some(hooks)));
            }
        }
        None
    }
}

/// The Socket.IO server. Cheap to clone; every clone is the same server.
///
/// The main namespace `"/"` always exists. Feed it Engine.IO sessions with
/// [`engine_open`](Self::engine_open), [`engine_message`](Self::engine_message)
/// and [`engine_close`](Self::engine_close) (the tokio transport's
/// `EngineHandler` adapter does this).
#[derive(Clone)]
pub struct SocketIo(Arc<IoInner>);

impl fmt::Debug for SocketIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocketIo")
            .field("namespaces", &self.0.nsps.read().len())
            .field("connections", &self.connection_count())
            .finish()
    }
}

impl Default for SocketIo {
    fn default() -> Self {
        Self::new()
    }
}

fn normalize(name: &str) -> String {
    if name.starts_with('/') {
        name.to_owned()
    } else {
        format!("/{name}")
    }
}

impl SocketIo {
    /// A server with the default [`Config`].
    pub fn new() -> Self {
        Self::with_config(Config::default())
    }

    /// A server with `config`.
    pub fn with_config(config: Config) -> Self {
        let io = SocketIo(Arc::new(IoInner {
            config,
            nsps: RwLock::default(),
            dynamic: RwLock::default(),
            clients: AtomicUsize::new(0),
            sids: Mutex::new(SidGenerator::new()),
        }));
        io.of("/");
        io
    }

    /// The options.
    pub fn config(&self) -> &Config {
        &self.0.config
    }

    /// The namespace `name` (a leading `/` is added if missing), created
    /// if needed (Node's `io.of(name)`).
    pub fn of(&self, name: &str) -> Namespace {
        self.0.of(&normalize(name), None)
    }

    /// The namespace `name` with `handler` as its connection handler.
    pub fn ns<F>(&self, name: &str, handler: F) -> Namespace
    where
        F: Fn(SocketRef) + Send + Sync + 'static,
    {
        let ns = self.of(name);
        ns.on_connection(handler);
        ns
    }

    /// The namespace `name` if it exists.
    pub fn get_ns(&self, name: &str) -> Option<Namespace> {
        self.0.nsps.read().get(&normalize(name)).cloned()
    }

    /// Every namespace.
    pub fn namespaces(&self) -> Vec<Namespace> {
        self.0.nsps.read().values().cloned().collect()
    }

    /// Dynamic namespaces (Node's `io.of(regex | fn)`): a CONNECT to an
    /// unknown namespace for which `accept(name, auth)` is true creates
    /// that namespace, sharing `handler` and the middlewares of the
    /// returned [`DynamicNamespace`]. Created namespaces stay.
    pub fn dynamic_ns<P, F>(&self, accept: P, handler: F) -> DynamicNamespace
    where
        P: Fn(&str, &Value) -> bool + Send + Sync + 'static,
        F: Fn(SocketRef) + Send + Sync + 'static,
    {
        let hooks = Arc::new(Hooks::default());
        *hooks.on_connection.write() = Some(Arc::new(handler));
        self.0
            .dynamic
            .write()
            .push((Arc::new(accept), hooks.clone()));
        DynamicNamespace { hooks }
    }

    /// A broadcast over the main namespace.
    pub fn broadcast(&self) -> BroadcastOperator {
        self.of("/").broadcast()
    }

    /// `io.to(rooms)` on the main namespace.
    pub fn to(&self, rooms: impl IntoRooms) -> BroadcastOperator {
        self.broadcast().to(rooms)
    }

    /// `io.in(rooms)` on the main namespace.
    pub fn in_(&self, rooms: impl IntoRooms) -> BroadcastOperator {
        self.to(rooms)
    }

    /// `io.except(rooms)` on the main namespace.
    pub fn except(&self, rooms: impl IntoRooms) -> BroadcastOperator {
        self.broadcast().except(rooms)
    }

    /// `io.local` on the main namespace: this node's sockets only.
    pub fn local(&self) -> BroadcastOperator {
        self.broadcast().local()
    }

    /// `io.timeout(d)` on the main namespace.
    pub fn timeout(&self, d: Duration) -> BroadcastOperator {
        self.broadcast().timeout(d)
    }

    /// `io.emit(event, data)`: every socket of the main namespace.
    pub fn emit(&self, event: &str, data: impl Serialize) -> Result<(), EmitError> {
        self.broadcast().emit(event, data)
    }

    /// `io.emitWithAck(...)` on the main namespace.
    pub fn emit_with_ack<T>(&self, event: &str, data: impl Serialize) -> BroadcastAckFuture<T> {
        self.broadcast().emit_with_ack(event, data)
    }

    /// This node's sockets of the main namespace (synchronous).
    pub fn fetch_sockets(&self) -> Vec<SocketRef> {
        self.broadcast().fetch_sockets()
    }

    /// `io.fetchSockets()` on the main namespace: every node's sockets.
    pub fn fetch_cluster_sockets(
        &self,
    ) -> impl std::future::Future<Output = Vec<RemoteSocket>> + Send + 'static {
        self.broadcast().fetch_cluster_sockets()
    }

    /// A handle that does not keep the server alive (what a [`Cluster`]
    /// keeps to apply what other nodes ask).
    pub fn downgrade(&self) -> WeakSocketIo {
        WeakSocketIo(Arc::downgrade(&self.0))
    }

    /// `io.socketsJoin(rooms)` on the main namespace.
    pub fn sockets_join(&self, rooms: impl IntoRooms) {
        self.broadcast().sockets_join(rooms)
    }

    /// `io.socketsLeave(rooms)` on the main namespace.
    pub fn sockets_leave(&self, rooms: impl IntoRooms) {
        self.broadcast().sockets_leave(rooms)
    }

    /// `io.disconnectSockets(close)` on the main namespace.
    pub fn disconnect_sockets(&self, close: bool) {
        self.broadcast().disconnect_sockets(close)
    }

    /// How many Engine.IO sessions are attached.
    pub fn connection_count(&self) -> usize {
        self.0.clients.load(Ordering::Acquire)
    }

    /// Disconnects every socket of every namespace (reason `server
    /// shutting down`) and closes their Engine.IO sessions. A session that
    /// has not joined a namespace yet is the transport's to close (its
    /// shutdown closes every session; `connect_timeout` closes it too).
    pub fn close(&self) {
        let nsps: Vec<Namespace> = self.0.nsps.read().values().cloned().collect();
        let mut clients: Vec<Arc<Client>> = nsps
            .iter()
            .flat_map(|ns| ns.sockets())
            .map(|s| s.client.clone())
            .collect();
        // A client with sockets in several namespaces once.
        clients.sort_unstable_by_key(Arc::as_ptr);
        clients.dedup_by(|a, b| Arc::ptr_eq(a, b));
        for c in clients {
            c.shutdown(DisconnectReason::ServerShuttingDown, true);
        }
    }

    /// A new Engine.IO session: starts the `connect_timeout`. Returns its
    /// client, which the transport keeps with the session and gives back
    /// with the session's messages and close.
    pub fn engine_open(
        &self,
        conn: Box<dyn EngineConn>,
        req: &http::request::Parts,
    ) -> Arc<Client> {
        let req = HandshakeRequest::from_parts(req, &self.0.config.handshake_headers);
        self.0.clients.fetch_add(1, Ordering::AcqRel);
        Client::new(conn, &self.0, req)
    }

    /// A message of `client`'s session.
    pub fn engine_message(&self, client: &Arc<Client>, message: Message) {
        client.on_message(message);
    }

    /// `client`'s session closed: its sockets disconnect with `reason`.
    pub fn engine_close(&self, client: &Arc<Client>, reason: CloseReason) {
        client.shutdown(reason.into(), false);
    }
}

/// A [`SocketIo`] that may be gone: [`upgrade`](Self::upgrade) it to use it.
#[derive(Clone, Debug)]
pub struct WeakSocketIo(Weak<IoInner>);

impl WeakSocketIo {
    /// The server, unless every [`SocketIo`] handle was dropped.
    pub fn upgrade(&self) -> Option<SocketIo> {
        self.0.upgrade().map(SocketIo)
    }
}

/// The template of dynamically created namespaces (Node's
/// `ParentNamespace`): its middlewares apply to every child.
#[derive(Clone)]
pub struct DynamicNamespace {
    hooks: Arc<Hooks>,
}

impl fmt::Debug for DynamicNamespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamicNamespace").finish_non_exhaustive()
    }
}

impl DynamicNamespace {
    /// See [`Namespace::middleware`].
    pub fn middleware<F>(&self, f: F) -> &Self
    where
        F: Fn(&SocketRef) -> Result<(), ConnectError> + Send + Sync + 'static,
    {
        self.hooks.add_sync(f);
        self
    }

    /// See [`Namespace::async_middleware`].
    pub fn async_middleware<F, Fut>(&self, f: F) -> &Self
    where
        F: Fn(SocketRef) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), ConnectError>> + Send + 'static,
    {
        self.hooks.add_async(f);
        self
    }
}
