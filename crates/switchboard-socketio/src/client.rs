//! One Engine.IO session (Node's `Client`): decodes packets, connects
//! namespaces, routes packets to sockets, and closes everything together.

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Instant;

use parking_lot::Mutex;
use switchboard_engineio::{Message, PreparedText, Utf8Bytes};
use switchboard_socketio_proto::{
    encode, DecodeError, Decoder, Encoded, Packet, PacketType, Value,
};

use crate::cluster::{EncodedPacket, RecordedEvent};
use crate::engine::{Closed, EngineConn};
use crate::error::{ConnectError, DisconnectReason};
use crate::handshake::{Handshake, HandshakeRequest};
use crate::io::IoInner;
use crate::namespace::{Middleware, Namespace, Tap};
use crate::socket::{Socket, SocketRef};

/// A packet encoded once for all the recipients of a broadcast: a text
/// packet as one [`PreparedText`] (the same bytes go to every WebSocket),
/// a binary one as its messages.
pub(crate) enum Outgoing {
    Text(PreparedText),
    WithAttachments(Vec<Message>),
}

impl Outgoing {
    pub(crate) fn new(enc: Encoded) -> Self {
        if enc.attachments.is_empty() {
            Outgoing::Text(PreparedText::new(&enc.text))
        } else {
            Outgoing::WithAttachments(to_messages(enc))
        }
    }

    pub(crate) fn send_to(&self, client: &Client) -> Result<(), Closed> {
        match self {
            Outgoing::Text(p) => client.conn.send_prepared(p.clone()),
            Outgoing::WithAttachments(m) => client.send_messages(m.clone()),
        }
    }

    /// The messages, for the recovery store.
    pub(crate) fn messages(&self) -> Vec<Message> {
        match self {
            Outgoing::Text(p) => vec![Message::Text(p.text())],
            Outgoing::WithAttachments(m) => m.clone(),
        }
    }

    /// A packet that came from another node.
    pub(crate) fn from_packet(packet: EncodedPacket) -> Self {
        if packet.attachments.is_empty() {
            return Outgoing::Text(PreparedText::new(&packet.text));
        }
        let mut m = Vec::with_capacity(1 + packet.attachments.len());
        m.push(Message::Text(packet.text));
        m.extend(packet.attachments.into_iter().map(Message::Binary));
        Outgoing::WithAttachments(m)
    }

    /// The same bytes, for other nodes (shared, not copied).
    pub(crate) fn packet(&self) -> EncodedPacket {
        match self {
            Outgoing::Text(p) => EncodedPacket {
                text: p.text(),
                attachments: Vec::new(),
            },
            Outgoing::WithAttachments(m) => {
                let mut text = Utf8Bytes::from_static("");
                let mut attachments = Vec::with_capacity(m.len().saturating_sub(1));
                for msg in m {
                    match msg {
                        Message::Text(t) => text = t.clone(),
                        Message::Binary(b) => attachments.push(b.clone()),
                    }
                }
                EncodedPacket { text, attachments }
            }
        }
    }
}

pub(crate) fn to_messages(enc: Encoded) -> Vec<Message> {
    let mut out = Vec::with_capacity(1 + enc.attachments.len());
    out.push(Message::Text(Utf8Bytes::from(enc.text)));
    out.extend(enc.attachments.into_iter().map(Message::Binary));
    out
}

/// What a recovered socket gets back once connected: its rooms, and the
/// events after `offset` (the last one its client saw).
#[derive(Default)]
struct Resume {
    rooms: Vec<String>,
    offset: Option<u64>,
    /// Restored from the cluster's store: the tap, the client's offset and
    /// the events the store gave.
    cluster: Option<(Tap, String, Vec<RecordedEvent>)>,
}

/// The `pid` of an auth payload (present: it was checked before).
fn pid_of(auth: &Value) -> String {
    auth_str(auth, "pid").unwrap_or_default().to_owned()
}

/// The string at `key` of an object payload.
fn auth_str<'a>(auth: &'a Value, key: &str) -> Option<&'a str> {
    match auth {
        Value::Object(m) => m.iter().find(|(k, _)| k == key).and_then(|(_, v)| match v {
            Value::String(s) => Some(s.as_str()),
            _ => None,
        }),
        _ => None,
    }
}

/// One Engine.IO session's Socket.IO connection: its decoder and its
/// sockets (one per namespace joined). Opaque: [`SocketIo::engine_open`](crate::SocketIo::engine_open)
/// makes one and the transport keeps it with the session.
pub struct Client {
    pub(crate) conn: Box<dyn EngineConn>,
    io: Weak<IoInner>,
    req: HandshakeRequest,
    state: Mutex<State>,
}

struct State {
    decoder: Decoder,
    /// One socket per namespace joined (a client joins one or two; a
    /// boxed slice, rebuilt on the rare join and leave: 8 bytes less than
    /// a `Vec` in every client).
    sockets: Box<[SocketRef]>,
    closed: bool,
    timer: Option<tokio::task::AbortHandle>,
}

impl State {
    /// The socket of namespace `nsp`.
    fn socket(&self, nsp: &str) -> Option<&SocketRef> {
        self.sockets.iter().find(|s| s.ns() == nsp)
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("sid", &self.conn.sid())
            .finish_non_exhaustive()
    }
}

impl Client {
    pub(crate) fn new(
        conn: Box<dyn EngineConn>,
        io: &Arc<IoInner>,
        req: HandshakeRequest,
    ) -> Arc<Client> {
        let client = Arc::new(Client {
            conn,
            io: Arc::downgrade(io),
            req,
            state: Mutex::new(State {
                decoder: Decoder::with_config(io.config.decoder),
                sockets: Box::default(),
                closed: false,
                timer: None,
            }),
        });
        let timeout = io.config.connect_timeout;
        if !timeout.is_zero() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let weak = Arc::downgrade(&client);
                let task = rt.spawn(async move {
                    tokio::time::sleep(timeout).await;
                    if let Some(c) = weak.upgrade() {
                        if c.state.lock().sockets.is_empty() {
                            tracing::debug!(sid = c.conn.sid(), "no namespace joined in time");
                            c.shutdown(DisconnectReason::ForcedClose, true);
                        }
                    }
                });
                client.state.lock().timer = Some(task.abort_handle());
            }
        }
        client
    }

    pub(crate) fn send_messages(&self, mut messages: Vec<Message>) -> Result<(), Closed> {
        if messages.len() == 1 {
            self.conn.send(messages.pop().expect("one message"))
        } else {
            self.conn.send_many(messages)
        }
    }

    pub(crate) fn send_encoded(&self, enc: Encoded) -> Result<(), Closed> {
        if enc.attachments.is_empty() {
            self.conn.send(Message::Text(Utf8Bytes::from(enc.text)))
        } else {
            self.conn.send_many(to_messages(enc))
        }
    }

    fn send_packet(&self, packet: &Packet) {
        let _ = self.send_encoded(encode(packet));
    }

    pub(crate) fn on_message(self: &Arc<Self>, message: Message) {
        let res = {
            let mut st = self.state.lock();
            if st.closed {
                return;
            }
            match message {
                Message::Text(t) => st.decoder.feed_text(t.as_str()),
                Message::Binary(b) => st.decoder.feed_binary(b),
            }
        };
        match res {
            Ok(Some(packet)) => self.on_packet(packet),
            Ok(None) => {}
            Err(e) => self.on_decode_error(e),
        }
    }

    fn on_decode_error(&self, e: DecodeError) {
        tracing::debug!(sid = self.conn.sid(), error = %e, "parse error");
        self.shutdown(DisconnectReason::ParseError, true);
    }

    fn on_packet(self: &Arc<Self>, packet: Packet) {
        if packet.kind == PacketType::Connect {
            let auth = match packet.data {
                Some(v @ Value::Object(_)) => v,
                _ => Value::Object(Vec::new()),
            };
            self.connect(packet.nsp, auth);
            return;
        }
        let socket = self.state.lock().socket(&packet.nsp).cloned();
        match socket {
            Some(s) => s.on_packet(packet),
            None => tracing::debug!(nsp = %packet.nsp, "no socket for namespace"),
        }
    }

    fn connect(self: &Arc<Self>, nsp: String, auth: Value) {
        let Some(io) = self.io.upgrade() else { return };
        let Some(ns) = io.namespace_for(&nsp, &auth) else {
            let err = ConnectError::new("Invalid namespace");
            self.send_packet(
                &Packet::new(PacketType::ConnectError)
                    .with_nsp(&nsp)
                    .with_data(err.to_value()),
            );
            return;
        };
        // A second CONNECT for a namespace this connection is already in
        // replaces the old socket.
        let old = self.state.lock().socket(&nsp).cloned();
        if let Some(old) = old {
            old.close(DisconnectReason::ClientNamespaceDisconnect);
        }
        // Connection state recovery: `{pid, offset}` in the auth payload
        // (socket.io-client adds them on reconnection) restore the socket.
        let session = match (auth_str(&auth, "pid"), auth_str(&auth, "offset")) {
            (Some(pid), Some(offset)) => Some((pid.to_owned(), offset.to_owned())),
            _ => None,
        };
        if let (Some(cr), Some((pid, offset))) = (ns.cluster_recovery(), &session) {
            // From the cluster's store: the events recorded from now on are
            // tapped, so that none falls between the store's answer and
            // the socket joining.
            let tap = ns.open_tap();
            let restore = cr.restore(ns.name(), pid, offset);
            let client = self.clone();
            let offset = offset.clone();
            tokio::spawn(async move {
                let restored = restore.await;
                let Some(io) = client.io.upgrade() else {
                    return;
                };
                let (socket, resume) = match restored {
                    Some(r) => {
                        tracing::debug!(sid = %r.session.sid, nsp = %ns.name(), "connection state recovered from the cluster");
                        // The client came back before this node noticed it
                        // had gone: its stale socket of that id goes first.
                        if let Some(stale) = ns.get_socket(&r.session.sid) {
                            stale.close(DisconnectReason::TransportClose);
                        }
                        let mut data = crate::handshake::TypeMap::new();
                        if let Some(d) = r.session.data {
                            data.insert(crate::cluster::SocketData(d));
                        }
                        let socket = Socket::new(
                            r.session.sid.into(),
                            Some((pid_of(&auth), true)),
                            ns.clone(),
                            client.clone(),
                            Handshake::new(&client.req, auth),
                            data,
                        );
                        let resume = Resume {
                            rooms: r.session.rooms,
                            offset: None,
                            cluster: Some((tap, offset, r.missed)),
                        };
                        (socket, resume)
                    }
                    None => {
                        drop(tap);
                        client.fresh_socket(&io, &ns, auth)
                    }
                };
                client.run_middlewares(ns, socket, resume);
            });
            return;
        }
        let restored = ns.recovery().and_then(|recovery| {
            let (pid, offset) = session.as_ref()?;
            recovery.restore(Instant::now(), pid, offset)
        });
        let (socket, resume) = match restored {
            Some(r) => {
                tracing::debug!(sid = %r.sid, nsp = %nsp, "connection state recovered");
                let socket = Socket::new(
                    r.sid.into(),
                    Some((r.pid, true)),
                    ns.clone(),
                    self.clone(),
                    Handshake::new(&self.req, auth),
                    r.data,
                );
                (
                    socket,
                    Resume {
                        rooms: r.rooms,
                        offset: Some(r.offset),
                        cluster: None,
                    },
                )
            }
            None => self.fresh_socket(&io, &ns, auth),
        };
        self.run_middlewares(ns, socket, resume);
    }

    /// A new socket (with a new private session id when recovery is on).
    fn fresh_socket(
        self: &Arc<Self>,
        io: &IoInner,
        ns: &Namespace,
        auth: Value,
    ) -> (SocketRef, Resume) {
        let session = ns.recovery().map(|_| (io.next_sid(), false));
        let socket = Socket::new(
            io.next_sid().into(),
            session,
            ns.clone(),
            self.clone(),
            Handshake::new(&self.req, auth),
            crate::handshake::TypeMap::new(),
        );
        (socket, Resume::default())
    }

    /// Runs the namespace's middlewares (inline until the first async one,
    /// then on a task), then connects the socket.
    fn run_middlewares(self: &Arc<Self>, ns: Namespace, socket: SocketRef, resume: Resume) {
        let skip = socket.recovered() && ns.recovery().is_some_and(|r| r.config().skip_middlewares);
        let middlewares = if skip {
            Vec::new()
        } else {
            ns.hooks().middlewares.read().clone()
        };
        let mut i = 0;
        while i < middlewares.len() {
            match &middlewares[i] {
                Middleware::Sync(f) => {
                    if let Err(e) = f(&socket) {
                        socket.discard();
                        self.refuse(&ns, e);
                        return;
                    }
                }
                Middleware::Async(_) => break,
            }
            i += 1;
        }
        if i == middlewares.len() {
            self.finish_connect(ns, socket, resume);
            return;
        }
        let client = self.clone();
        tokio::spawn(async move {
            for mw in &middlewares[i..] {
                let res = match mw {
                    Middleware::Sync(f) => f(&socket),
                    Middleware::Async(f) => f(socket.clone()).await,
                };
                if let Err(e) = res {
                    socket.discard();
                    client.refuse(&ns, e);
                    return;
                }
            }
            client.finish_connect(ns, socket, resume);
        });
    }

    fn refuse(&self, ns: &Namespace, e: ConnectError) {
        if self.state.lock().closed {
            return;
        }
        self.send_packet(
            &Packet::new(PacketType::ConnectError)
                .with_nsp(ns.name())
                .with_data(e.to_value()),
        );
    }

    fn finish_connect(&self, ns: Namespace, socket: SocketRef, resume: Resume) {
        {
            let mut st = self.state.lock();
            if st.closed {
                drop(st);
                socket.discard();
                return;
            }
            socket.set_connected();
            st.sockets = (st.sockets.iter())
                .filter(|s| s.ns() != ns.name())
                .chain(std::iter::once(&socket))
                .cloned()
                .collect();
            if let Some(t) = st.timer.take() {
                t.abort();
            }
        }
        let connect = |missed: Vec<Vec<Message>>| {
            ns.insert_socket(socket.clone(), &resume.rooms);
            let mut data = vec![("sid".to_owned(), Value::from(socket.id()))];
            if let Some(pid) = socket.pid() {
                data.push(("pid".to_owned(), Value::from(pid)));
            }
            self.send_packet(
                &Packet::new(PacketType::Connect)
                    .with_nsp(ns.name())
                    .with_data(Value::Object(data)),
            );
            for messages in missed {
                let _ = self.send_messages(messages);
            }
        };
        // A recovered socket joins its rooms and gets CONNECT and the missed
        // events under the store's lock: every event of the namespace is
        // then either among the missed ones or sent live after them.
        match (resume.offset, ns.recovery(), resume.cluster) {
            (_, _, Some((tap, offset, missed))) => {
                ns.resume_from_cluster(tap, &offset, missed, &resume.rooms, connect)
            }
            (Some(offset), Some(recovery), None) => recovery.resume(offset, &resume.rooms, connect),
            _ => connect(Vec::new()),
        }
        ns.session_changed(&socket);
        let handler = ns.hooks().on_connection.read().clone();
        if let Some(h) = handler {
            h(socket);
        }
    }

    pub(crate) fn remove_socket(&self, nsp: &str, sid: &str) {
        let mut st = self.state.lock();
        if st.sockets.iter().any(|s| s.ns() == nsp && s.id() == sid) {
            st.sockets = (st.sockets.iter())
                .filter(|s| s.ns() != nsp || s.id() != sid)
                .cloned()
                .collect();
        }
    }

    /// `disconnect(true)`: every socket leaves with a DISCONNECT packet,
    /// then the session closes.
    pub(crate) fn disconnect_all(&self) {
        let sockets = self.state.lock().sockets.clone();
        for s in sockets {
            s.disconnect(false);
        }
        self.shutdown(DisconnectReason::ForcedServerClose, true);
    }

    /// Marks the connection closed, disconnects its sockets with `reason`,
    /// forgets it, and closes the Engine.IO session if `close_conn`.
    pub(crate) fn shutdown(&self, reason: DisconnectReason, close_conn: bool) {
        let sockets = {
            let mut st = self.state.lock();
            if st.closed {
                return;
            }
            st.closed = true;
            st.decoder.reset();
            if let Some(t) = st.timer.take() {
                t.abort();
            }
            std::mem::take(&mut st.sockets)
        };
        if let Some(io) = self.io.upgrade() {
            io.remove_client();
        }
        for s in sockets {
            s.close(reason);
        }
        if close_conn {
            self.conn.close();
        }
    }
}
