//! [`Namespace`]: a connection handler, middlewares, its sockets, an
//! [`Adapter`] for rooms, and the entry points through which a [`Cluster`]
//! applies what other nodes ask.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use switchboard_transport::Shrink;

use std::time::Instant;

use parking_lot::{Mutex, RwLock};
use serde::de::DeserializeOwned;
use serde::Serialize;
use switchboard_engineio::Message;
use switchboard_socketio_proto::Encoded;
use tokio::sync::mpsc;

use crate::adapter::{Adapter, BroadcastOptions, IntoRooms, Room};
use crate::broadcast::{BroadcastAckFuture, BroadcastOperator};
use crate::client::Outgoing;
use crate::cluster::{
    offset_key, BroadcastFlags, Cluster, ClusterRecovery, EncodedPacket, LocalAcks, RecordedEvent,
    RemoteSocket, SocketInfo,
};
use crate::error::{ConnectError, DisconnectReason, EmitError};
use crate::recovery::{should_include, Recovery, RecoveryConfig};
use crate::socket::{event_fn, AckSender, AckSlot, EventFn, Socket, SocketRef};
use crate::splice;

pub(crate) type ConnFn = Arc<dyn Fn(SocketRef) + Send + Sync>;
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

type SyncMiddleware = Arc<dyn Fn(&SocketRef) -> Result<(), ConnectError> + Send + Sync>;

#[derive(Clone)]
pub(crate) enum Middleware {
    Sync(SyncMiddleware),
    Async(Arc<dyn Fn(SocketRef) -> BoxFuture<Result<(), ConnectError>> + Send + Sync>),
}

/// The connection handler and middlewares; shared by the children of a
/// dynamic namespace.
#[derive(Default)]
pub(crate) struct Hooks {
    pub on_connection: RwLock<Option<ConnFn>>,
    pub middlewares: RwLock<Vec<Middleware>>,
    /// Event handlers shared by every socket ([`Namespace::on_event`]).
    pub events: RwLock<HashMap<String, EventFn>>,
    /// Disconnecting handlers shared by every socket
    /// ([`Namespace::on_disconnecting`]).
    pub on_disconnecting: RwLock<Vec<SharedDisconnectFn>>,
}

/// A handler of [`Namespace::on_disconnecting`].
pub(crate) type SharedDisconnectFn = Arc<dyn Fn(SocketRef, DisconnectReason) + Send + Sync>;

impl Hooks {
    pub(crate) fn add_sync<F>(&self, f: F)
    where
        F: Fn(&SocketRef) -> Result<(), ConnectError> + Send + Sync + 'static,
    {
        self.middlewares.write().push(Middleware::Sync(Arc::new(f)));
    }

    pub(crate) fn add_async<F, Fut>(&self, f: F)
    where
        F: Fn(SocketRef) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ConnectError>> + Send + 'static,
    {
        self.middlewares
            .write()
            .push(Middleware::Async(Arc::new(move |s| Box::pin(f(s)))));
    }
}

/// A Socket.IO namespace (Node's `Namespace`). Cheap to clone.
#[derive(Clone)]
pub struct Namespace(Arc<NsInner>);

struct NsInner {
    name: String,
    hooks: Arc<Hooks>,
    /// Keyed by the socket's own copy of its id.
    sockets: RwLock<HashMap<Arc<str>, SocketRef>>,
    adapter: Arc<dyn Adapter>,
    recovery: Option<Recovery>,
    cluster: Option<Arc<dyn Cluster>>,
    ids: AtomicU64,
    taps: Mutex<Taps>,
}

/// Recorded events delivered while restores from the cluster's store are
/// in flight (each open [`Tap`] gets a copy).
#[derive(Default)]
struct Taps {
    next: u64,
    open: Vec<(u64, Vec<RecordedEvent>)>,
}

/// Collects the recorded events this node delivers from its opening until
/// [`Namespace::resume_from_cluster`] (or its drop): those a restore may
/// have missed between the store's answer and the socket joining.
pub(crate) struct Tap {
    ns: Namespace,
    id: u64,
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.ns.0.taps.lock().open.retain(|(i, _)| *i != self.id);
    }
}

impl fmt::Debug for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Namespace")
            .field("name", &self.0.name)
            .field("sockets", &self.0.sockets.read().len())
            .finish_non_exhaustive()
    }
}

impl Namespace {
    pub(crate) fn new(
        name: String,
        hooks: Arc<Hooks>,
        adapter: Arc<dyn Adapter>,
        recovery: Option<RecoveryConfig>,
        cluster: Option<Arc<dyn Cluster>>,
    ) -> Self {
        Namespace(Arc::new(NsInner {
            name,
            hooks,
            sockets: RwLock::default(),
            adapter,
            recovery: recovery.map(Recovery::new),
            cluster,
            ids: AtomicU64::new(0),
            taps: Mutex::default(),
        }))
    }

    /// The cluster, when this server is one node of several.
    pub(crate) fn cluster(&self) -> Option<&Arc<dyn Cluster>> {
        self.0.cluster.as_ref()
    }

    /// The connection state recovery store, when recovery is on.
    pub(crate) fn recovery(&self) -> Option<&Recovery> {
        self.0.recovery.as_ref()
    }

    /// The cluster's connection state recovery, when recovery is on and
    /// the cluster offers it (then it replaces [`recovery`](Self::recovery)'s
    /// store).
    pub(crate) fn cluster_recovery(&self) -> Option<&dyn ClusterRecovery> {
        self.0.recovery.as_ref()?;
        self.0.cluster.as_ref()?.recovery()
    }

    /// Writes `socket`'s session through to the cluster's store (cluster
    /// recovery on): on connect and whenever its rooms change.
    pub(crate) fn session_changed(&self, socket: &Socket) {
        if let (Some(cr), Some(pid)) = (self.cluster_recovery(), socket.pid()) {
            if socket.connected() {
                cr.session_open(self.name(), pid, socket.session_state());
            }
        }
    }

    /// Starts collecting recorded events for a restore (see [`Tap`]).
    pub(crate) fn open_tap(&self) -> Tap {
        let mut taps = self.0.taps.lock();
        taps.next += 1;
        let id = taps.next;
        taps.open.push((id, Vec::new()));
        Tap {
            ns: self.clone(),
            id,
        }
    }

    /// Connects a socket restored from the cluster's store: calls `connect`
    /// with the events meant for `rooms` after `offset` (the client's last
    /// one) — those the store gave (`missed`), then those `tap` collected
    /// after them — under the lock recorded deliveries take, so that every
    /// recorded event is either among them or sent live after them.
    pub(crate) fn resume_from_cluster(
        &self,
        tap: Tap,
        offset: &str,
        missed: Vec<RecordedEvent>,
        rooms: &[Room],
        connect: impl FnOnce(Vec<Vec<Message>>),
    ) {
        let mut taps = self.0.taps.lock();
        let tapped = match taps.open.iter().position(|(i, _)| *i == tap.id) {
            Some(i) => taps.open.swap_remove(i).1,
            None => Vec::new(),
        };
        let mut last = offset_key(offset);
        let mut messages = Vec::new();
        for e in missed.into_iter().chain(tapped) {
            let Some(key) = offset_key(&e.offset) else {
                continue;
            };
            if last.is_some_and(|l| key <= l) {
                continue; // seen by the client, or both given and tapped
            }
            last = Some(key);
            if !should_include(rooms, &e.opts) {
                continue;
            }
            if let Some(text) = splice::with_offset(&e.packet.text, &e.offset) {
                let out = Outgoing::new(Encoded {
                    text,
                    attachments: e.packet.attachments,
                });
                messages.push(out.messages());
            }
        }
        connect(messages);
        drop(taps);
    }

    /// The name, e.g. `"/"` or `"/chat"`.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The room adapter.
    pub fn adapter(&self) -> &Arc<dyn Adapter> {
        &self.0.adapter
    }

    pub(crate) fn hooks(&self) -> &Arc<Hooks> {
        &self.0.hooks
    }

    pub(crate) fn next_ack_id(&self) -> u64 {
        self.0.ids.fetch_add(1, Ordering::Relaxed)
    }

    /// Sets the connection handler, called with each socket right after
    /// the client got its CONNECT answer (Node's `on("connection")`).
    pub fn on_connection<F>(&self, handler: F) -> &Self
    where
        F: Fn(SocketRef) + Send + Sync + 'static,
    {
        *self.0.hooks.on_connection.write() = Some(Arc::new(handler));
        self
    }

    /// Registers the handler of `event` for every socket of the namespace:
    /// one closure shared by all of them, where [`Socket::on`] makes one per
    /// socket in the connection handler. For servers with many sockets
    /// (each `on` costs a closure, its name and a table slot per socket);
    /// per-socket state then lives in the socket's
    /// [`extensions`](Socket::extensions). A socket's own handler of the
    /// same event is called instead. Arguments and `ack` as in
    /// [`Socket::on`].
    pub fn on_event<T, F>(&self, event: impl Into<String>, handler: F) -> &Self
    where
        T: DeserializeOwned,
        F: Fn(SocketRef, T, Option<AckSender>) + Send + Sync + 'static,
    {
        let event = event.into();
        let f = event_fn(&event, handler);
        self.0.hooks.events.write().insert(event, f);
        self
    }

    /// Called for every socket of the namespace about to disconnect, while
    /// it is still in its rooms, after its own
    /// [`on_disconnecting`](Socket::on_disconnecting) handlers: one closure
    /// shared by all sockets (see [`on_event`](Self::on_event)).
    pub fn on_disconnecting<F>(&self, handler: F) -> &Self
    where
        F: Fn(SocketRef, DisconnectReason) + Send + Sync + 'static,
    {
        self.0
            .hooks
            .on_disconnecting
            .write()
            .push(Arc::new(handler));
        self
    }

    /// Adds a synchronous middleware (Node's `use`), run in order on every
    /// connecting socket before it connects; an `Err` refuses the
    /// connection with CONNECT_ERROR. The socket is not connected yet: it
    /// can read its handshake, fill its extensions and register handlers.
    pub fn middleware<F>(&self, f: F) -> &Self
    where
        F: Fn(&SocketRef) -> Result<(), ConnectError> + Send + Sync + 'static,
    {
        self.0.hooks.add_sync(f);
        self
    }

    /// Adds an async middleware. The chain runs inline until the first
    /// async middleware; from there it continues on a spawned tokio task
    /// (packets the client sends to this namespace meanwhile are dropped,
    /// as in Node).
    pub fn async_middleware<F, Fut>(&self, f: F) -> &Self
    where
        F: Fn(SocketRef) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ConnectError>> + Send + 'static,
    {
        self.0.hooks.add_async(f);
        self
    }

    /// The connected sockets of this namespace on this server.
    pub fn sockets(&self) -> Vec<SocketRef> {
        self.0.sockets.read().values().cloned().collect()
    }

    /// The connected socket with id `sid`.
    pub fn get_socket(&self, sid: &str) -> Option<SocketRef> {
        self.0.sockets.read().get(sid).cloned()
    }

    /// Adds a connected socket, in its own room and in `rooms` (those of a
    /// recovered session).
    pub(crate) fn insert_socket(&self, socket: SocketRef, rooms: &[String]) {
        self.0
            .adapter
            .add_all(socket.id_shared(), &[socket.id().to_owned()]);
        if !rooms.is_empty() {
            self.0.adapter.add_all(socket.id_shared(), rooms);
        }
        self.0
            .sockets
            .write()
            .insert(socket.id_shared().clone(), socket);
    }

    /// Calls `f` with each connected socket `opts` selects, without
    /// collecting them (the broadcast path). `f` must not join, leave or
    /// disconnect (it runs under the namespace's and adapter's read locks).
    pub(crate) fn for_each_target(&self, opts: &BroadcastOptions, mut f: impl FnMut(&SocketRef)) {
        let sockets = self.0.sockets.read();
        self.0.adapter.for_each_socket(opts, &mut |sid| {
            if let Some(s) = sockets.get(sid) {
                f(s);
            }
        });
    }

    pub(crate) fn remove_socket(&self, sid: &str) {
        let mut sockets = self.0.sockets.write();
        sockets.remove(sid);
        sockets.shrink_when_sparse();
    }

    /// Queues `packet` (an encoded event without offset) to the sockets
    /// `opts` selects, with the next recovery offset spliced in, and keeps
    /// it for sockets that come back. Recovery must be on.
    pub(crate) fn send_recorded(&self, opts: &BroadcastOptions, packet: EncodedPacket) {
        let Some(recovery) = self.recovery() else {
            return;
        };
        recovery.record(Instant::now(), opts, |offset| {
            let Some(text) = splice::with_offset(&packet.text, offset) else {
                return Vec::new();
            };
            let out = Outgoing::new(Encoded {
                text,
                attachments: packet.attachments,
            });
            self.for_each_target(opts, |s| {
                let _ = out.send_to(&s.client);
            });
            out.messages()
        })
    }

    /// A broadcast operator over the whole namespace.
    pub fn broadcast(&self) -> BroadcastOperator {
        BroadcastOperator::new(self.clone())
    }

    /// A broadcast to `rooms`.
    pub fn to(&self, rooms: impl IntoRooms) -> BroadcastOperator {
        self.broadcast().to(rooms)
    }

    /// Same as [`to`](Self::to).
    pub fn in_(&self, rooms: impl IntoRooms) -> BroadcastOperator {
        self.to(rooms)
    }

    /// A broadcast to every socket outside `rooms`.
    pub fn except(&self, rooms: impl IntoRooms) -> BroadcastOperator {
        self.broadcast().except(rooms)
    }

    /// See [`BroadcastOperator::volatile`].
    pub fn volatile(&self) -> BroadcastOperator {
        self.broadcast().volatile()
    }

    /// See [`BroadcastOperator::local`].
    pub fn local(&self) -> BroadcastOperator {
        self.broadcast().local()
    }

    /// See [`BroadcastOperator::timeout`].
    pub fn timeout(&self, d: Duration) -> BroadcastOperator {
        self.broadcast().timeout(d)
    }

    /// Sends `event` to every socket of the namespace.
    pub fn emit(&self, event: &str, data: impl Serialize) -> Result<(), EmitError> {
        self.broadcast().emit(event, data)
    }

    /// Sends `event` to every socket and collects their answers.
    pub fn emit_with_ack<T>(&self, event: &str, data: impl Serialize) -> BroadcastAckFuture<T> {
        self.broadcast().emit_with_ack(event, data)
    }

    /// The connected sockets of this node (synchronous).
    pub fn fetch_sockets(&self) -> Vec<SocketRef> {
        self.broadcast().fetch_sockets()
    }

    /// The connected sockets of every node (Node's `fetchSockets`); see
    /// [`BroadcastOperator::fetch_cluster_sockets`].
    pub fn fetch_cluster_sockets(
        &self,
    ) -> impl Future<Output = Vec<RemoteSocket>> + Send + 'static {
        self.broadcast().fetch_cluster_sockets()
    }

    /// Makes every socket join `rooms`.
    pub fn sockets_join(&self, rooms: impl IntoRooms) {
        self.broadcast().sockets_join(rooms)
    }

    /// Makes every socket leave `rooms`.
    pub fn sockets_leave(&self, rooms: impl IntoRooms) {
        self.broadcast().sockets_leave(rooms)
    }

    /// Disconnects every socket (see [`Socket::disconnect`](crate::Socket::disconnect)).
    pub fn disconnect_sockets(&self, close: bool) {
        self.broadcast().disconnect_sockets(close)
    }
}

/// # Applying what other nodes ask
///
/// The entry points of a [`Cluster`] implementation on the receiving node:
/// each acts on this node's sockets only, as the matching
/// [`BroadcastOperator`] operation with [`local`](BroadcastOperator::local)
/// would.
impl Namespace {
    /// Queues `packet` (from another node's
    /// [`Cluster::broadcast`]) to the sockets `opts` selects; with
    /// connection state recovery on and not `volatile`, with this node's
    /// next offset, kept for sockets that come back. A packet that is not
    /// an encoded event without ack id is dropped (and logged).
    pub fn remote_broadcast(
        &self,
        opts: &BroadcastOptions,
        flags: BroadcastFlags,
        packet: EncodedPacket,
    ) {
        if !splice::is_event(&packet.text) {
            tracing::debug!(ns = %self.name(), "remote broadcast dropped: not an encoded event");
            return;
        }
        if self.recovery().is_some() && !flags.volatile {
            self.send_recorded(opts, packet);
            return;
        }
        let out = Outgoing::from_packet(packet);
        self.for_each_target(opts, |s| {
            let _ = out.send_to(&s.client);
        });
    }

    /// Queues `packet`, an event numbered by the cluster's
    /// [`ClusterRecovery::record`] (from any node, this one included), with
    /// `offset` as last argument to the sockets `opts` selects. A packet
    /// that is not an encoded event without ack id, or an offset that is
    /// not one, is dropped (and logged).
    pub fn deliver_recorded(&self, opts: &BroadcastOptions, offset: &str, packet: EncodedPacket) {
        let text = match offset_key(offset) {
            Some(_) if splice::is_event(&packet.text) => splice::with_offset(&packet.text, offset),
            _ => None,
        };
        let Some(text) = text else {
            tracing::debug!(ns = %self.name(), offset, "recorded event dropped: malformed");
            return;
        };
        let out = Outgoing::new(Encoded {
            text,
            attachments: packet.attachments.clone(),
        });
        let mut taps = self.0.taps.lock();
        if !taps.open.is_empty() {
            let event = RecordedEvent {
                offset: offset.to_owned(),
                opts: opts.clone(),
                packet,
            };
            for (_, events) in taps.open.iter_mut() {
                events.push(event.clone());
            }
        }
        self.for_each_target(opts, |s| {
            let _ = out.send_to(&s.client);
        });
        drop(taps);
    }

    /// Queues `packet` (from another node's [`Cluster::broadcast_with_ack`])
    /// with an ack id of this node to the sockets `opts` selects; the
    /// returned [`LocalAcks`] gives the recipients, then their answers, to
    /// report to the origin. A packet that is not an encoded event without
    /// ack id reaches nobody (and is logged).
    pub fn remote_broadcast_with_ack(
        &self,
        opts: &BroadcastOptions,
        packet: EncodedPacket,
    ) -> LocalAcks {
        let id = self.next_ack_id();
        let Some(text) = splice::with_ack_id(&packet.text, id) else {
            tracing::debug!(ns = %self.name(), "remote broadcast dropped: not an encoded event");
            return LocalAcks::none();
        };
        let out = Outgoing::new(Encoded {
            text,
            attachments: packet.attachments,
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let mut sockets = Vec::new();
        self.for_each_target(opts, |s| {
            s.insert_ack(id, AckSlot::Broadcast(tx.clone()));
            if out.send_to(&s.client).is_ok() {
                sockets.push(s.clone());
            } else {
                s.remove_ack(id);
            }
        });
        LocalAcks::new(id, rx, sockets)
    }

    /// The sockets `opts` selects, described for another node's
    /// [`Cluster::fetch_sockets`].
    pub fn remote_fetch_sockets(&self, opts: &BroadcastOptions) -> Vec<SocketInfo> {
        self.local_operator(opts)
            .fetch_sockets()
            .iter()
            .map(SocketInfo::of)
            .collect()
    }

    /// Makes the sockets `opts` selects join `rooms` (another node's
    /// [`Cluster::add_sockets`]).
    pub fn remote_sockets_join(&self, opts: &BroadcastOptions, rooms: &[Room]) {
        self.local_operator(opts).sockets_join(rooms.to_vec())
    }

    /// Makes the sockets `opts` selects leave `rooms` (another node's
    /// [`Cluster::del_sockets`]).
    pub fn remote_sockets_leave(&self, opts: &BroadcastOptions, rooms: &[Room]) {
        self.local_operator(opts).sockets_leave(rooms.to_vec())
    }

    /// Disconnects the sockets `opts` selects (another node's
    /// [`Cluster::disconnect_sockets`]).
    pub fn remote_disconnect_sockets(&self, opts: &BroadcastOptions, close: bool) {
        self.local_operator(opts).disconnect_sockets(close)
    }

    fn local_operator(&self, opts: &BroadcastOptions) -> BroadcastOperator {
        self.broadcast()
            .to(opts.rooms.clone())
            .except(opts.except.clone())
            .local()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_engineio::Utf8Bytes;

    fn opts(rooms: &[&str]) -> BroadcastOptions {
        BroadcastOptions {
            rooms: rooms.iter().map(|s| s.to_string()).collect(),
            except: Vec::new(),
        }
    }

    fn packet(name: &str) -> EncodedPacket {
        EncodedPacket {
            text: Utf8Bytes::from(format!("2[\"{name}\"]")),
            attachments: Vec::new(),
        }
    }

    fn event(offset: &str, rooms: &[&str], name: &str) -> RecordedEvent {
        RecordedEvent {
            offset: offset.into(),
            opts: opts(rooms),
            packet: packet(name),
        }
    }

    fn texts(messages: Vec<Vec<Message>>) -> Vec<String> {
        messages
            .into_iter()
            .map(|m| match &m[0] {
                Message::Text(t) => t.as_str().to_owned(),
                Message::Binary(_) => "bin".into(),
            })
            .collect()
    }

    #[test]
    fn a_cluster_resume_merges_the_stores_events_and_the_tapped_ones_by_offset() {
        let ns = crate::SocketIo::new().of("/");
        let tap = ns.open_tap();
        // Delivered here while the store was read: one older than the
        // client's offset (this node lagged), one the store gave too, one
        // for another room, one newer.
        ns.deliver_recorded(&opts(&[]), "3-0", packet("seen"));
        ns.deliver_recorded(&opts(&[]), "5-0", packet("b"));
        ns.deliver_recorded(&opts(&["other"]), "6-0", packet("x"));
        ns.deliver_recorded(&opts(&["r"]), "7-0", packet("c"));
        let missed = vec![event("4-1", &[], "a"), event("5-0", &[], "b")];
        let rooms = ["sid".to_owned(), "r".to_owned()];
        let mut got = Vec::new();
        ns.resume_from_cluster(tap, "4-0", missed, &rooms, |m| got = m);
        assert_eq!(
            texts(got),
            [r#"2["a","4-1"]"#, r#"2["b","5-0"]"#, r#"2["c","7-0"]"#]
        );
        // The tap is closed: later events are not collected.
        ns.deliver_recorded(&opts(&[]), "8-0", packet("d"));
        assert!(ns.0.taps.lock().open.is_empty());
    }

    #[test]
    fn a_dropped_tap_stops_collecting_and_malformed_offsets_are_dropped() {
        let ns = crate::SocketIo::new().of("/");
        let tap = ns.open_tap();
        ns.deliver_recorded(&opts(&[]), "1-0", packet("a"));
        ns.deliver_recorded(&opts(&[]), "1\"-0", packet("bad"));
        ns.deliver_recorded(&opts(&[]), "2-0", packet("b"));
        assert_eq!(ns.0.taps.lock().open[0].1.len(), 2);
        drop(tap);
        assert!(ns.0.taps.lock().open.is_empty());
    }
}
