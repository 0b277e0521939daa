//! Several servers as one (what Node's cluster adapters, such as
//! `@socket.io/redis-adapter`, do): the [`Cluster`] trait a multi-node
//! implementation provides, what this crate hands it ([`EncodedPacket`],
//! [`BroadcastFlags`], [`AckSink`]) and what it hands back ([`SocketInfo`]).
//! Applying what other nodes ask is done through [`Namespace`]'s
//! `remote_*` methods; [`RemoteSocket`] is what
//! [`fetch_cluster_sockets`](crate::BroadcastOperator::fetch_cluster_sockets)
//! returns. This module moves no bytes between nodes:
//! `switchboard-redis` implements the trait over Redis pub/sub.
//!
//! # The contract
//!
//! With [`Config::cluster`](crate::Config::cluster) set, every
//! [`BroadcastOperator`] operation first does its local part and then,
//! unless [`local`](BroadcastOperator::local), calls the cluster, which
//! makes every other node do the same with its own sockets:
//!
//! | operator | local part | cluster | other nodes call |
//! |---|---|---|---|
//! | `emit` | queue the encoded packet | [`broadcast`](Cluster::broadcast) | [`Namespace::remote_broadcast`] |
//! | `emit_with_ack` | queue it with this node's ack id | [`broadcast_with_ack`](Cluster::broadcast_with_ack) | [`Namespace::remote_broadcast_with_ack`], then report its recipients and their answers |
//! | `fetch_cluster_sockets` | this node's sockets | [`fetch_sockets`](Cluster::fetch_sockets) | [`Namespace::remote_fetch_sockets`] |
//! | `sockets_join` / `sockets_leave` | join / leave | [`add_sockets`](Cluster::add_sockets) / [`del_sockets`](Cluster::del_sockets) | [`Namespace::remote_sockets_join`] / [`remote_sockets_leave`](Namespace::remote_sockets_leave) |
//! | `disconnect_sockets` | disconnect | [`disconnect_sockets`](Cluster::disconnect_sockets) | [`Namespace::remote_disconnect_sockets`] |
//!
//! A broadcast is encoded once: the bytes queued to the local sockets are
//! the bytes given to the cluster (shared, not copied), and the receiving
//! nodes queue them to their sockets as they are. Two edits are made
//! without encoding again: a broadcast with acks travels without ack id and
//! every node puts in its own, and with connection state recovery every
//! node appends its own offset.
//!
//! Without a cluster (the default) nothing of this runs: no allocation, no
//! task, one `None` test per operation.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use switchboard_engineio::Utf8Bytes;
use switchboard_socketio_proto::Value;
use tokio::sync::mpsc;

use crate::adapter::{BroadcastOptions, IntoRooms, Room};
use crate::broadcast::BroadcastOperator;
use crate::error::{AckError, EmitError};
use crate::handshake::Handshake;
use crate::namespace::Namespace;
use crate::socket::SocketRef;

/// A boxed future, as [`Cluster::fetch_sockets`] returns.
pub type ClusterFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The options of a broadcast that other nodes must know.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BroadcastFlags {
    /// [`BroadcastOperator::volatile`]: not kept for connection state
    /// recovery.
    pub volatile: bool,
}

/// An EVENT packet encoded once: its text part (`2["ev",...]`, or
/// `5<n>-...` with binary placeholders) and its binary attachments. Cheap
/// to clone (the bytes are shared).
///
/// What a [`Cluster`] receives has no ack id and no recovery offset; give
/// it as is to [`Namespace::remote_broadcast`] /
/// [`remote_broadcast_with_ack`](Namespace::remote_broadcast_with_ack) on
/// the other nodes, which refuse (and log) anything else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPacket {
    /// The text part, without the Engine.IO `4` prefix.
    pub text: Utf8Bytes,
    /// The binary attachments, in placeholder order.
    pub attachments: Vec<Bytes>,
}

/// The multi-node hook of a [`SocketIo`](crate::SocketIo) (one per server,
/// set in [`Config::cluster`](crate::Config::cluster)): carries what a
/// [`BroadcastOperator`] does to the other nodes. `ns` is the namespace
/// name (`"/"`, `"/chat"`).
///
/// The calls come from handlers and must not block: queue and return.
/// Order matters: calls made one after the other from one thread must be
/// applied in that order on every other node (a `sockets_join` then an
/// `emit` to the new room reaches the joined sockets).
///
/// See the [module docs](crate::cluster) for who calls what.
pub trait Cluster: Send + Sync + 'static {
    /// Makes the other nodes send `packet` to their sockets selected by
    /// `opts` ([`Namespace::remote_broadcast`]).
    fn broadcast(
        &self,
        ns: &str,
        opts: &BroadcastOptions,
        flags: BroadcastFlags,
        packet: EncodedPacket,
    );

    /// Like [`broadcast`](Self::broadcast), with acks: every other node
    /// sends `packet` with an ack id of its own
    /// ([`Namespace::remote_broadcast_with_ack`]) and reports back; report
    /// through `acks`: [`expect`](AckSink::expect) each node's recipients,
    /// then [`answer`](AckSink::answer) for each of them, and
    /// [`counted`](AckSink::counted) once every node reported its
    /// recipients (or will not: gone, or too slow). `timeout` is the
    /// caller's deadline, if any; it is the caller that turns silence into
    /// [`AckError::Timeout`].
    fn broadcast_with_ack(
        &self,
        ns: &str,
        opts: &BroadcastOptions,
        packet: EncodedPacket,
        timeout: Option<Duration>,
        acks: AckSink,
    );

    /// The sockets of the other nodes selected by `opts`
    /// ([`Namespace::remote_fetch_sockets`]), once every node answered or
    /// a deadline of the implementation passed.
    fn fetch_sockets(&self, ns: &str, opts: &BroadcastOptions) -> ClusterFuture<Vec<SocketInfo>>;

    /// Makes the sockets `opts` selects on the other nodes join `rooms`.
    fn add_sockets(&self, ns: &str, opts: &BroadcastOptions, rooms: &[Room]);

    /// Makes the sockets `opts` selects on the other nodes leave `rooms`.
    fn del_sockets(&self, ns: &str, opts: &BroadcastOptions, rooms: &[Room]);

    /// Disconnects the sockets `opts` selects on the other nodes (`close`:
    /// their whole connections).
    fn disconnect_sockets(&self, ns: &str, opts: &BroadcastOptions, close: bool);

    /// Connection state recovery across the nodes, if this cluster offers
    /// it (none by default: then each node recovers its own sockets).
    fn recovery(&self) -> Option<&dyn ClusterRecovery> {
        None
    }
}

/// Connection state recovery that spans the nodes (what
/// `@socket.io/redis-streams-adapter` does for Node): a store every node
/// shares, so that a client whose node died comes back on any other node
/// with its socket id, rooms and [`SocketData`], and receives the events
/// it missed. A [`Cluster`] offers it through [`Cluster::recovery`]; it is
/// used when [`Config::connection_state_recovery`](crate::Config::connection_state_recovery)
/// is set too, and then replaces the per-node store.
///
/// # The contract
///
/// * **One numbering**: every recorded event (a non-volatile emit without
///   ack, `socket.emit` included) is given to [`record`](Self::record)
///   and *not* sent by the caller; the implementation numbers it for the
///   whole cluster and has every node, the caller's included, hand it to
///   [`Namespace::deliver_recorded`] with its offset, in offset order.
///   Offsets are decimal digits, optionally followed by `-` and more
///   digits (`1700000000000-3`); they compare as pairs of numbers.
/// * **Sessions written through**: [`session_open`](Self::session_open) is
///   called when a socket connects and whenever its rooms change, while it
///   is connected; the session must stay restorable for
///   `max_disconnection_duration` after the node that holds it stops
///   refreshing it (it may die without a word).
///   [`session_closed`](Self::session_closed) says it disconnected: keep
///   it `max_disconnection_duration` from now, or forget it.
/// * **Restore**: [`restore`](Self::restore) gives the session and the
///   recorded events after `offset`, oldest first; `None` when the session
///   is unknown or expired, or `offset` is no longer (or never was) stored.
///   Unlike a node's own store, a session is not restored once only: it is
///   written through while its socket lives, so the client (the only one
///   that knows the `pid`) may come back again after another drop, even
///   before the node that held it noticed the first (the restoring node
///   then ends its own stale socket of that id; another node's ends at its
///   ping timeout).
pub trait ClusterRecovery: Send + Sync + 'static {
    /// Numbers `packet` (an event without ack id or offset) and delivers it
    /// on every node (only on this one when `local`) through
    /// [`Namespace::deliver_recorded`]. Must not block.
    fn record(&self, ns: &str, opts: &BroadcastOptions, local: bool, packet: EncodedPacket);

    /// A connected socket's session, new or changed. Must not block.
    fn session_open(&self, ns: &str, pid: &str, session: SessionState);

    /// The socket of session `pid` disconnected: keep `session` for a
    /// restore (`Some`, a recoverable reason) or forget it (`None`). Must
    /// not block.
    fn session_closed(&self, ns: &str, pid: &str, session: Option<SessionState>);

    /// Session `pid` and the events after `offset`.
    fn restore(&self, ns: &str, pid: &str, offset: &str) -> ClusterFuture<Option<RestoredSession>>;
}

/// What a [`ClusterRecovery`] keeps of a socket.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionState {
    /// The socket id.
    pub sid: String,
    /// Its rooms (its own id included).
    pub rooms: Vec<Room>,
    /// Its [`SocketData`], if it has some (the other extensions are typed
    /// Rust values and stay on their node).
    pub data: Option<Value>,
}

/// An event as a [`ClusterRecovery`] numbered it.
#[derive(Debug, Clone)]
pub struct RecordedEvent {
    /// Its offset.
    pub offset: String,
    /// Which sockets it was for.
    pub opts: BroadcastOptions,
    /// The encoded event, without ack id or offset.
    pub packet: EncodedPacket,
}

/// What [`ClusterRecovery::restore`] gives back.
#[derive(Debug, Clone)]
pub struct RestoredSession {
    /// The session.
    pub session: SessionState,
    /// The recorded events after the client's offset, oldest first (for
    /// every socket: the namespace keeps those meant for this one).
    pub missed: Vec<RecordedEvent>,
}

/// `offset` as a pair of numbers (`"7"` is `(7, 0)`), for ordering.
pub(crate) fn offset_key(offset: &str) -> Option<(u64, u64)> {
    let (a, b) = offset.split_once('-').unwrap_or((offset, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if !digits(a) || !digits(b) {
        return None;
    }
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// What the collector of a broadcast with acks receives.
pub(crate) enum AckEvent {
    /// More recipients (another node's).
    Expect(Vec<String>),
    /// One recipient's answer.
    Answer(String, Result<Vec<Value>, AckError>),
    /// No more [`Expect`](Self::Expect) will come.
    Counted,
}

pub(crate) type AckTx = mpsc::UnboundedSender<AckEvent>;

/// Where a [`Cluster`] reports the other nodes' part of a broadcast with
/// acks. Cheap to clone; when the last clone is dropped without
/// [`counted`](Self::counted), that is reported as if it had been called.
#[derive(Clone)]
pub struct AckSink(Arc<SinkInner>);

struct SinkInner {
    tx: AckTx,
    counted: AtomicBool,
}

impl Drop for SinkInner {
    fn drop(&mut self) {
        if !self.counted.swap(true, Ordering::AcqRel) {
            let _ = self.tx.send(AckEvent::Counted);
        }
    }
}

impl fmt::Debug for AckSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AckSink")
            .field("counted", &self.0.counted.load(Ordering::Relaxed))
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl AckSink {
    pub(crate) fn new(tx: AckTx) -> Self {
        AckSink(Arc::new(SinkInner {
            tx,
            counted: AtomicBool::new(false),
        }))
    }

    /// A sink whose broadcast is already over (for tests and for
    /// implementations that drive [`Cluster`] by hand): what is reported
    /// goes nowhere.
    pub fn detached() -> Self {
        let (tx, _) = mpsc::unbounded_channel();
        AckSink::new(tx)
    }

    /// One node's recipients (socket ids): their answers are awaited.
    /// Call it before the [`answer`](Self::answer)s of those sockets.
    pub fn expect(&self, sids: Vec<String>) {
        if !sids.is_empty() {
            let _ = self.0.tx.send(AckEvent::Expect(sids));
        }
    }

    /// The answer of socket `sid` (its ack arguments), or why there is
    /// none ([`AckError::Disconnected`]).
    pub fn answer(&self, sid: String, result: Result<Vec<Value>, AckError>) {
        let _ = self.0.tx.send(AckEvent::Answer(sid, result));
    }

    /// Every node reported its recipients, or will not: stop waiting for
    /// more. Idempotent.
    pub fn counted(&self) {
        if !self.0.counted.swap(true, Ordering::AcqRel) {
            let _ = self.0.tx.send(AckEvent::Counted);
        }
    }

    /// Whether the caller stopped listening (its future completed or was
    /// dropped): nothing more needs to be reported.
    pub fn is_closed(&self) -> bool {
        self.0.tx.is_closed()
    }

    /// Resolves once the caller stopped listening.
    pub async fn closed(&self) {
        self.0.tx.closed().await
    }
}

/// What a socket's node tells about it: Node's `RemoteSocket` data.
#[derive(Debug, Clone)]
pub struct SocketInfo {
    /// The socket id.
    pub id: String,
    /// Its rooms (its own id included).
    pub rooms: Vec<Room>,
    /// Its handshake (headers, query, auth, address...).
    pub handshake: Handshake,
    /// Its [`SocketData`], if it has some.
    pub data: Option<Value>,
}

impl SocketInfo {
    /// The description of a local socket.
    pub fn of(socket: &SocketRef) -> Self {
        SocketInfo {
            id: socket.id().to_owned(),
            rooms: socket.rooms(),
            handshake: socket.handshake().clone(),
            data: socket.extensions().get::<SocketData>().map(|d| d.0),
        }
    }
}

/// The part of a socket's data other nodes see (Node's `socket.data` as
/// `fetchSockets` carries it): store it in the socket's
/// [`extensions`](crate::Socket::extensions), e.g.
/// `socket.extensions().insert(SocketData(json))`. The other extensions are
/// typed Rust values and stay on their node.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SocketData(pub Value);

/// A socket of any node, as
/// [`fetch_cluster_sockets`](BroadcastOperator::fetch_cluster_sockets)
/// returns it (Node's `RemoteSocket`): its id, rooms, handshake and data
/// as they were when fetched, and operations that act on it wherever it is.
#[derive(Clone)]
pub struct RemoteSocket {
    info: SocketInfo,
    ns: Namespace,
    local: Option<SocketRef>,
}

impl fmt::Debug for RemoteSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteSocket")
            .field("id", &self.info.id)
            .field("ns", &self.ns.name())
            .field("rooms", &self.info.rooms)
            .field("local", &self.local.is_some())
            .finish()
    }
}

impl RemoteSocket {
    pub(crate) fn from_local(socket: SocketRef) -> Self {
        RemoteSocket {
            info: SocketInfo::of(&socket),
            ns: socket.namespace().clone(),
            local: Some(socket),
        }
    }

    pub(crate) fn from_remote(ns: Namespace, info: SocketInfo) -> Self {
        RemoteSocket {
            info,
            ns,
            local: None,
        }
    }

    /// The socket id.
    pub fn id(&self) -> &str {
        &self.info.id
    }

    /// Its rooms when fetched.
    pub fn rooms(&self) -> &[Room] {
        &self.info.rooms
    }

    /// Its handshake.
    pub fn handshake(&self) -> &Handshake {
        &self.info.handshake
    }

    /// Its [`SocketData`] when fetched.
    pub fn data(&self) -> Option<&Value> {
        self.info.data.as_ref()
    }

    /// Everything fetched.
    pub fn info(&self) -> &SocketInfo {
        &self.info
    }

    /// The socket itself when it is on this node.
    pub fn as_local(&self) -> Option<&SocketRef> {
        self.local.as_ref()
    }

    /// Whether it is on this node.
    pub fn is_local(&self) -> bool {
        self.local.is_some()
    }

    /// A broadcast to this socket only (its own room), wherever it is:
    /// e.g. `.timeout(d).emit_with_ack(..)`.
    pub fn operator(&self) -> BroadcastOperator {
        let op = BroadcastOperator::new(self.ns.clone()).to(self.info.id.as_str());
        if self.local.is_some() {
            op.local()
        } else {
            op
        }
    }

    /// Sends `event` to the socket (see [`Socket::emit`](crate::Socket::emit)).
    pub fn emit(&self, event: &str, data: impl Serialize) -> Result<(), EmitError> {
        match &self.local {
            Some(s) => s.emit(event, data),
            None => self.operator().emit(event, data),
        }
    }

    /// Makes the socket join `rooms`.
    pub fn join(&self, rooms: impl IntoRooms) {
        match &self.local {
            Some(s) => s.join(rooms),
            None => self.operator().sockets_join(rooms),
        }
    }

    /// Makes the socket leave `rooms`.
    pub fn leave(&self, rooms: impl IntoRooms) {
        match &self.local {
            Some(s) => s.leave(rooms),
            None => self.operator().sockets_leave(rooms),
        }
    }

    /// Disconnects the socket (see [`Socket::disconnect`](crate::Socket::disconnect)).
    pub fn disconnect(&self, close: bool) {
        match &self.local {
            Some(s) => s.disconnect(close),
            None => self.operator().disconnect_sockets(close),
        }
    }
}

/// What this node's sockets answer to a broadcast with acks that came from
/// another node ([`Namespace::remote_broadcast_with_ack`]): the recipients,
/// then each one's answer. Dropping it forgets the sockets that did not
/// answer yet (their late answers are then ignored).
pub struct LocalAcks {
    id: u64,
    rx: Option<mpsc::UnboundedReceiver<AckEvent>>,
    sockets: Vec<SocketRef>,
    waiting: HashSet<String>,
}

impl fmt::Debug for LocalAcks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalAcks")
            .field("recipients", &self.sockets.len())
            .field("waiting", &self.waiting.len())
            .finish()
    }
}

impl LocalAcks {
    pub(crate) fn new(
        id: u64,
        rx: mpsc::UnboundedReceiver<AckEvent>,
        sockets: Vec<SocketRef>,
    ) -> Self {
        let waiting = sockets.iter().map(|s| s.id().to_owned()).collect();
        LocalAcks {
            id,
            rx: Some(rx),
            sockets,
            waiting,
        }
    }

    pub(crate) fn none() -> Self {
        LocalAcks {
            id: 0,
            rx: None,
            sockets: Vec::new(),
            waiting: HashSet::new(),
        }
    }

    /// The ids of the sockets the packet was sent to.
    pub fn recipients(&self) -> Vec<String> {
        self.sockets.iter().map(|s| s.id().to_owned()).collect()
    }

    /// The next answer: `(socket id, arguments)`, or
    /// [`AckError::Disconnected`] for a socket that left first; `None` once
    /// every recipient answered or left.
    pub async fn next(&mut self) -> Option<(String, Result<Vec<Value>, AckError>)> {
        while !self.waiting.is_empty() {
            let rx = self.rx.as_mut()?;
            match rx.recv().await? {
                AckEvent::Answer(sid, res) if self.waiting.remove(&sid) => return Some((sid, res)),
                _ => {}
            }
        }
        None
    }
}

impl Drop for LocalAcks {
    fn drop(&mut self) {
        for s in &self.sockets {
            if self.waiting.contains(s.id()) {
                s.remove_ack(self.id);
            }
        }
    }
}
