//! One client's presence in one namespace: [`Socket`] (shared as
//! [`SocketRef`]), event handlers, acknowledgements.

use std::collections::HashMap;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;
use switchboard_socketio_proto::{encode, is_reserved_event, Packet, PacketType, Value};
use tokio::sync::oneshot;

use crate::adapter::{IntoRooms, Room};
use crate::args::{from_args, to_args};
use crate::broadcast::BroadcastOperator;
use crate::client::Client;
use crate::cluster::{AckEvent, AckTx};
use crate::error::{AckError, DisconnectReason, EmitError};
use crate::handshake::{Extensions, Handshake};
use crate::namespace::Namespace;

/// A shared handle to a [`Socket`]; what every handler receives.
pub type SocketRef = Arc<Socket>;

pub(crate) type EventFn = Arc<dyn Fn(SocketRef, Vec<Value>, Option<AckSender>) + Send + Sync>;

/// `handler` of `event` taking its arguments as `T` ([`Socket::on`]).
pub(crate) fn event_fn<T, F>(event: &str, handler: F) -> EventFn
where
    T: DeserializeOwned,
    F: Fn(SocketRef, T, Option<AckSender>) + Send + Sync + 'static,
{
    let name = event.to_owned();
    Arc::new(move |s, args, ack| match from_args::<T>(args) {
        Ok(data) => handler(s, data, ack),
        Err(e) => {
            tracing::debug!(event = %name, error = %e, "event data does not fit the handler")
        }
    })
}
type AnyFn = Arc<dyn Fn(SocketRef, &str, &[Value]) + Send + Sync>;
type DisconnectFn = Box<dyn FnOnce(SocketRef, DisconnectReason) + Send>;
pub(crate) enum AckSlot {
    Single(oneshot::Sender<Vec<Value>>),
    Broadcast(AckTx),
}

/// One client connected to one namespace (Node's `Socket`).
///
/// Handlers are plain closures called on the thread that delivered the
/// Engine.IO message, in packet order, with no lock of this crate held:
/// they may emit, join, broadcast or disconnect. Do blocking or async
/// work by spawning (or use [`on_async`](Self::on_async)).
pub struct Socket {
    /// Shared with the namespace's table of sockets.
    id: Arc<str>,
    /// The private session id of connection state recovery.
    pid: Option<Box<str>>,
    recovered: bool,
    ns: Namespace,
    pub(crate) client: Arc<Client>,
    handshake: Handshake,
    extensions: Extensions,
    connected: AtomicBool,
    /// Allocated by the first handler registered on the socket itself or
    /// the first ack awaited: a socket whose application registers its
    /// handlers on the namespace ([`Namespace::on_event`]) holds none.
    registered: Mutex<Option<Box<Registered>>>,
}

/// What the application registered on one socket, and the acks it awaits.
#[derive(Default)]
struct Registered {
    handlers: HashMap<String, EventFn>,
    any: Option<AnyFn>,
    on_disconnecting: Vec<DisconnectFn>,
    on_disconnect: Vec<DisconnectFn>,
    acks: HashMap<u64, AckSlot>,
}

impl fmt::Debug for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socket")
            .field("id", &self.id)
            .field("ns", &self.ns.name())
            .field("connected", &self.connected())
            .finish_non_exhaustive()
    }
}

pub(crate) fn check_event(event: &str) -> Result<(), EmitError> {
    if is_reserved_event(event) {
        Err(EmitError::ReservedEvent(event.to_owned()))
    } else {
        Ok(())
    }
}

pub(crate) fn event_packet(
    nsp: &str,
    event: &str,
    data: &(impl Serialize + ?Sized),
) -> Result<Packet, EmitError> {
    check_event(event)?;
    let args = to_args(data).map_err(EmitError::Serialize)?;
    Ok(Packet::event(nsp, event, args))
}

impl Socket {
    /// A new socket. `session` is `(pid, recovered)` when connection
    /// state recovery is on; `data` the recovered socket's data.
    pub(crate) fn new(
        id: Arc<str>,
        session: Option<(String, bool)>,
        ns: Namespace,
        client: Arc<Client>,
        handshake: Handshake,
        data: crate::handshake::TypeMap,
    ) -> SocketRef {
        let (pid, recovered) = match session {
            Some((pid, recovered)) => (Some(pid.into_boxed_str()), recovered),
            None => (None, false),
        };
        Arc::new(Socket {
            id,
            pid,
            recovered,
            ns,
            client,
            handshake,
            extensions: Extensions::from_inner(data),
            connected: AtomicBool::new(false),
            registered: Mutex::new(None),
        })
    }

    /// Runs `f` on the socket's registrations, allocating them first.
    fn register<R>(&self, f: impl FnOnce(&mut Registered) -> R) -> R {
        f(self.registered.lock().get_or_insert_with(Default::default))
    }

    /// Runs `f` on the socket's registrations, if it has any.
    fn registered<R>(&self, f: impl FnOnce(&mut Registered) -> R) -> Option<R> {
        self.registered.lock().as_deref_mut().map(f)
    }

    /// Awaits the answer `slot` to ack `id`.
    pub(crate) fn insert_ack(&self, id: u64, slot: AckSlot) {
        self.register(|r| r.acks.insert(id, slot));
    }

    /// Stops awaiting ack `id`.
    pub(crate) fn remove_ack(&self, id: u64) -> Option<AckSlot> {
        self.registered(|r| r.acks.remove(&id)).flatten()
    }

    /// The socket id (also the name of its own room). Distinct from the
    /// Engine.IO session id ([`engine_sid`](Self::engine_sid)).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The id, shared.
    pub(crate) fn id_shared(&self) -> &Arc<str> {
        &self.id
    }

    /// The private session id a client presents to recover this socket
    /// (connection state recovery on), never shared with other clients.
    pub fn pid(&self) -> Option<&str> {
        self.pid.as_deref()
    }

    /// Whether this socket is a recovered one: same id, rooms and data as
    /// before its transport dropped, and the missed events were sent
    /// (Node's `socket.recovered`).
    pub fn recovered(&self) -> bool {
        self.recovered
    }

    /// The Engine.IO session id of the connection (Node's `socket.conn.id`).
    pub fn engine_sid(&self) -> &str {
        self.client.conn.sid()
    }

    /// The namespace name.
    pub fn ns(&self) -> &str {
        self.ns.name()
    }

    /// The namespace.
    pub fn namespace(&self) -> &Namespace {
        &self.ns
    }

    /// What the client sent when connecting.
    pub fn handshake(&self) -> &Handshake {
        &self.handshake
    }

    /// Typed per-socket storage (Node's `socket.data`).
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// Whether the socket is connected to its namespace.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    pub(crate) fn set_connected(&self) {
        self.connected.store(true, Ordering::Release);
    }

    /// Registers the handler of `event` (replacing any previous one).
    ///
    /// The arguments are deserialized into `T` by the rule of the
    /// [`args`](crate::args) module: a tuple takes them positionally, any
    /// other type takes the first one; use [`Value`] to take it raw. When
    /// they do not fit `T` the event is dropped (logged at debug level).
    /// `ack` is `Some` when the client passed an acknowledgement callback.
    pub fn on<T, F>(&self, event: impl Into<String>, handler: F)
    where
        T: DeserializeOwned,
        F: Fn(SocketRef, T, Option<AckSender>) + Send + Sync + 'static,
    {
        let event = event.into();
        let f = event_fn(&event, handler);
        self.register(|r| r.handlers.insert(event, f));
    }

    /// Like [`on`](Self::on), with an async handler spawned onto the
    /// current tokio runtime for each event (so events handled this way
    /// may complete out of order).
    pub fn on_async<T, F, Fut>(&self, event: impl Into<String>, handler: F)
    where
        T: DeserializeOwned,
        F: Fn(SocketRef, T, Option<AckSender>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.on(event, move |s, data: T, ack| {
            tokio::spawn(handler(s, data, ack));
        });
    }

    /// A catch-all called for every incoming event, before its own handler,
    /// with the event name and the raw arguments (Node's `onAny`).
    pub fn on_any<F>(&self, handler: F)
    where
        F: Fn(SocketRef, &str, &[Value]) + Send + Sync + 'static,
    {
        self.register(|r| r.any = Some(Arc::new(handler)));
    }

    /// Removes the handler of `event`.
    pub fn off(&self, event: &str) {
        self.registered(|r| r.handlers.remove(event));
    }

    /// Called once when the socket disconnects, after it left its rooms,
    /// with Node's reason.
    pub fn on_disconnect<F>(&self, handler: F)
    where
        F: FnOnce(SocketRef, DisconnectReason) + Send + 'static,
    {
        self.register(|r| r.on_disconnect.push(Box::new(handler)));
    }

    /// Called once when the socket is about to disconnect, while it is
    /// still in its rooms (Node's `disconnecting`).
    pub fn on_disconnecting<F>(&self, handler: F)
    where
        F: FnOnce(SocketRef, DisconnectReason) + Send + 'static,
    {
        self.register(|r| r.on_disconnecting.push(Box::new(handler)));
    }

    /// Runs `work` on the connection's own task (the Engine.IO session's):
    /// polled whenever that task wakes (the wakers it registers wake that
    /// task) until it returns `Ready` or the connection closes, when it is
    /// dropped. A per-socket feed (a subscription's queue, drained into
    /// [`emit`](Self::emit)s) then costs no task of its own. `work` must not
    /// block. It is not stopped when the socket leaves its namespace while
    /// the connection stays: end it then (e.g. from
    /// [`on_disconnecting`](Self::on_disconnecting)); holding the socket by
    /// a `Weak` avoids keeping it alive until the connection closes.
    pub fn attach(&self, work: impl FnMut(&mut Context<'_>) -> Poll<()> + Send + 'static) {
        self.client.conn.attach(Box::new(work));
    }

    /// Sends `event` to this client. `data` follows the
    /// [`args`](crate::args) rule: a tuple is several arguments, `()` none,
    /// anything else one. Binary inside (`bytes::Bytes`) makes it a
    /// BINARY_EVENT with attachments.
    ///
    /// With connection state recovery on, the event is sent as a broadcast
    /// to this socket's own room, as Node does, so that it is kept (with an
    /// offset) for a reconnection.
    pub fn emit(&self, event: &str, data: impl Serialize) -> Result<(), EmitError> {
        if !self.connected() {
            return Err(EmitError::Closed);
        }
        if self.ns.recovery().is_some() {
            let op = BroadcastOperator::new(self.ns.clone()).to(&*self.id);
            // Local (this socket is on this node), except with the cluster's
            // recovery: an event only this node sees would not be given to
            // the socket restored on another node.
            if self.ns.cluster_recovery().is_some() {
                return op.emit(event, data);
            }
            return op.local().emit(event, data);
        }
        let packet = event_packet(self.ns.name(), event, &data)?;
        self.send_packet(&packet)
    }

    /// Sends `event` to this client now, without an offset and without
    /// keeping it for connection state recovery (Node's
    /// `socket.volatile.emit`, as far as recovery goes): for events the
    /// application recovers its own way, e.g. numbered messages a client
    /// catches up on with `since`.
    pub fn emit_volatile(&self, event: &str, data: impl Serialize) -> Result<(), EmitError> {
        if !self.connected() {
            return Err(EmitError::Closed);
        }
        let packet = event_packet(self.ns.name(), event, &data)?;
        self.send_packet(&packet)
    }

    /// Sends a packet already encoded as text, e.g. by
    /// [`encode_event_raw`](switchboard_socketio_proto::encode_event_raw) for
    /// this socket's namespace: the way to encode a broadcast once and hand
    /// the same bytes to every recipient. It must be a complete non-binary
    /// packet; nothing checks it, and connection state recovery does not
    /// keep it.
    pub fn emit_encoded(
        &self,
        packet_text: switchboard_engineio::Utf8Bytes,
    ) -> Result<(), EmitError> {
        if !self.connected() {
            return Err(EmitError::Closed);
        }
        self.client
            .send_messages(vec![crate::Message::Text(packet_text)])
            .map_err(|_| EmitError::Closed)
    }

    /// Sends `event` with an acknowledgement id; the returned future
    /// resolves to the client's answer (its arguments read into `T` by the
    /// [`args`](crate::args) rule). The event is sent right away; the
    /// future may be awaited later. Without
    /// [`timeout`](AckFuture::timeout) it waits until the answer or the
    /// disconnection.
    pub fn emit_with_ack<T>(&self, event: &str, data: impl Serialize) -> AckFuture<T> {
        let state = (|| {
            if !self.connected() {
                return Err(EmitError::Closed);
            }
            let id = self.ns.next_ack_id();
            let packet = event_packet(self.ns.name(), event, &data)?.with_id(id);
            let (tx, rx) = oneshot::channel();
            self.insert_ack(id, AckSlot::Single(tx));
            if let Err(e) = self.send_packet(&packet) {
                self.remove_ack(id);
                return Err(e);
            }
            Ok((rx, id))
        })();
        AckFuture {
            state: state.map(|(rx, id)| (rx, self.ns.clone(), self.id.to_string(), id)),
            timeout: None,
            _t: PhantomData,
        }
    }

    /// Joins `rooms`.
    pub fn join(&self, rooms: impl IntoRooms) {
        self.ns.adapter().add_all(&self.id, &rooms.into_rooms());
        self.ns.session_changed(self);
    }

    /// Leaves `rooms`.
    pub fn leave(&self, rooms: impl IntoRooms) {
        for r in rooms.into_rooms() {
            self.ns.adapter().del(&self.id, &r);
        }
        self.ns.session_changed(self);
    }

    /// What the cluster's recovery store keeps of this socket.
    pub(crate) fn session_state(&self) -> crate::cluster::SessionState {
        crate::cluster::SessionState {
            sid: self.id.to_string(),
            rooms: self.rooms(),
            data: self
                .extensions
                .get::<crate::cluster::SocketData>()
                .map(|d| d.0),
        }
    }

    /// The rooms this socket is in (its own id included while connected).
    pub fn rooms(&self) -> Vec<Room> {
        self.ns.adapter().socket_rooms(&self.id)
    }

    /// A broadcast to every other socket of the namespace.
    pub fn broadcast(&self) -> BroadcastOperator {
        BroadcastOperator::new(self.ns.clone()).except(&*self.id)
    }

    /// A broadcast to `rooms`, this socket excluded.
    pub fn to(&self, rooms: impl IntoRooms) -> BroadcastOperator {
        self.broadcast().to(rooms)
    }

    /// Same as [`to`](Self::to).
    pub fn in_(&self, rooms: impl IntoRooms) -> BroadcastOperator {
        self.to(rooms)
    }

    /// A broadcast to every socket outside `rooms`, this socket excluded.
    pub fn except(&self, rooms: impl IntoRooms) -> BroadcastOperator {
        self.broadcast().except(rooms)
    }

    /// Leaves the namespace: sends DISCONNECT, then the socket disconnects
    /// with reason `server namespace disconnect`. With `close`, every socket
    /// of the same connection does so and the Engine.IO session is closed.
    pub fn disconnect(self: &Arc<Self>, close: bool) {
        if close {
            self.client.disconnect_all();
            return;
        }
        if !self.connected() {
            return;
        }
        let _ = self.send_packet(&Packet::new(PacketType::Disconnect).with_nsp(self.ns.name()));
        self.close(DisconnectReason::ServerNamespaceDisconnect);
    }

    pub(crate) fn send_packet(&self, packet: &Packet) -> Result<(), EmitError> {
        self.client
            .send_encoded(encode(packet))
            .map_err(|_| EmitError::Closed)
    }

    pub(crate) fn on_packet(self: &Arc<Self>, packet: Packet) {
        if !self.connected() {
            return;
        }
        match packet.kind {
            PacketType::Event | PacketType::BinaryEvent => self.on_event(packet),
            PacketType::Ack | PacketType::BinaryAck => self.on_ack(packet),
            PacketType::Disconnect => self.close(DisconnectReason::ClientNamespaceDisconnect),
            PacketType::Connect | PacketType::ConnectError => {}
        }
    }

    fn on_event(self: &Arc<Self>, packet: Packet) {
        let Some(Value::Array(mut all)) = packet.data else {
            return;
        };
        if all.is_empty() {
            return;
        }
        let name = match all.remove(0) {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            _ => return,
        };
        let (any, own) = self
            .registered(|r| (r.any.clone(), r.handlers.get(&name).cloned()))
            .unwrap_or_default();
        if let Some(any) = any {
            any(self.clone(), &name, &all);
        }
        let handler = own.or_else(|| self.ns.hooks().events.read().get(&name).cloned());
        match handler {
            Some(h) => {
                let ack = packet.id.map(|id| AckSender {
                    socket: self.clone(),
                    id,
                });
                h(self.clone(), all, ack);
            }
            None => tracing::trace!(event = %name, "no handler"),
        }
    }

    fn on_ack(&self, packet: Packet) {
        let Some(id) = packet.id else { return };
        let Some(slot) = self.remove_ack(id) else {
            tracing::debug!(id, "unknown ack id");
            return;
        };
        let args = match packet.data {
            Some(Value::Array(a)) => a,
            _ => Vec::new(),
        };
        match slot {
            AckSlot::Single(tx) => {
                let _ = tx.send(args);
            }
            AckSlot::Broadcast(tx) => {
                let _ = tx.send(AckEvent::Answer(self.id.to_string(), Ok(args)));
            }
        }
    }

    /// Drops the handlers of a socket that never connected (refused by a
    /// middleware, or its connection closed meanwhile).
    pub(crate) fn discard(&self) {
        self.registered.lock().take();
    }

    /// Leaves the namespace locally (no packet sent), running the
    /// disconnect handlers. Idempotent.
    pub(crate) fn close(self: &Arc<Self>, reason: DisconnectReason) {
        if !self.connected.swap(false, Ordering::AcqRel) {
            return;
        }
        let disconnecting = self
            .registered(|r| std::mem::take(&mut r.on_disconnecting))
            .unwrap_or_default();
        for h in disconnecting {
            h(self.clone(), reason);
        }
        let shared = self.ns.hooks().on_disconnecting.read().clone();
        for h in shared {
            h(self.clone(), reason);
        }
        if let (Some(cr), Some(pid)) = (self.ns.cluster_recovery(), &self.pid) {
            let keep = crate::recovery::is_recoverable(reason).then(|| self.session_state());
            cr.session_closed(self.ns.name(), pid, keep);
        } else if let (Some(recovery), Some(pid)) = (self.ns.recovery(), &self.pid) {
            if crate::recovery::is_recoverable(reason) {
                recovery.persist(
                    std::time::Instant::now(),
                    pid,
                    &self.id,
                    self.rooms(),
                    self.extensions.snapshot(),
                );
            }
        }
        self.ns.adapter().del_all(&self.id);
        self.ns.remove_socket(&self.id);
        self.client.remove_socket(self.ns.name(), &self.id);
        // Drop the handlers: closures capturing a SocketRef would otherwise
        // keep the socket alive forever.
        let Some(registered) = self.registered.lock().take() else {
            return;
        };
        let Registered {
            acks,
            on_disconnect,
            ..
        } = *registered;
        for (_, slot) in acks {
            if let AckSlot::Broadcast(tx) = slot {
                let _ = tx.send(AckEvent::Answer(
                    self.id.to_string(),
                    Err(AckError::Disconnected),
                ));
            }
        }
        for h in on_disconnect {
            h(self.clone(), reason);
        }
    }
}

/// Answers one incoming event that carried an ack id (the JS callback
/// passed as the client's last argument). Consumed by
/// [`send`](Self::send), so it answers at most once.
pub struct AckSender {
    socket: SocketRef,
    id: u64,
}

impl fmt::Debug for AckSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AckSender")
            .field("socket", &self.socket.id())
            .field("id", &self.id)
            .finish()
    }
}

impl AckSender {
    /// The ack id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Sends the ACK (BINARY_ACK when `data` holds binary). `data` follows
    /// the [`args`](crate::args) rule: a tuple answers several arguments.
    pub fn send(self, data: impl Serialize) -> Result<(), EmitError> {
        let args = to_args(&data).map_err(EmitError::Serialize)?;
        self.socket
            .send_packet(&Packet::ack(self.socket.ns(), self.id, args))
    }
}

/// The receiver, namespace, socket id and ack id of a sent event.
type PendingAck = (oneshot::Receiver<Vec<Value>>, Namespace, String, u64);

/// The answer to [`Socket::emit_with_ack`]: await it (it implements
/// [`IntoFuture`]).
#[must_use = "the answer is only read when awaited"]
pub struct AckFuture<T> {
    state: Result<PendingAck, EmitError>,
    timeout: Option<Duration>,
    _t: PhantomData<fn() -> T>,
}

impl<T> AckFuture<T> {
    /// Fails with [`AckError::Timeout`] when no answer came within `d` of
    /// awaiting.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }
}

impl<T: DeserializeOwned + Send + 'static> IntoFuture for AckFuture<T> {
    type Output = Result<T, AckError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<T, AckError>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let (rx, ns, sid, id) = self.state?;
            let res = match self.timeout {
                Some(d) => match tokio::time::timeout(d, rx).await {
                    Ok(r) => r,
                    Err(_) => {
                        if let Some(s) = ns.get_socket(&sid) {
                            s.remove_ack(id);
                        }
                        return Err(AckError::Timeout);
                    }
                },
                None => rx.await,
            };
            let args = res.map_err(|_| AckError::Disconnected)?;
            from_args(args).map_err(|e| AckError::Decode(e.to_string()))
        })
    }
}
