//! [`BroadcastOperator`]: selects sockets by room and emits to all of them
//! with one encoding, on this node and, through the [`Cluster`] if there
//! is one, on the others.

use std::collections::{HashMap, HashSet};
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use switchboard_engineio::Utf8Bytes;
use switchboard_socketio_proto::{encode, Encoded, Value};
use tokio::sync::mpsc;

use crate::adapter::{BroadcastOptions, IntoRooms};
use crate::args::from_args;
use crate::client::Outgoing;
use crate::cluster::{AckEvent, AckSink, BroadcastFlags, Cluster, EncodedPacket, RemoteSocket};
use crate::error::{AckError, EmitError};
use crate::namespace::Namespace;
use crate::socket::{event_packet, AckSlot, SocketRef};
use crate::splice;

/// Node's `BroadcastOperator`: built from a namespace
/// ([`Namespace::to`]...), a socket ([`Socket::broadcast`](crate::Socket::broadcast),
/// which excludes the socket itself) or [`SocketIo`](crate::SocketIo), and
/// refined with [`to`](Self::to) / [`except`](Self::except) / flags.
#[derive(Clone, Debug)]
pub struct BroadcastOperator {
    ns: Namespace,
    opts: BroadcastOptions,
    volatile: bool,
    local: bool,
    timeout: Option<Duration>,
}

impl BroadcastOperator {
    pub(crate) fn new(ns: Namespace) -> Self {
        BroadcastOperator {
            ns,
            opts: BroadcastOptions::default(),
            volatile: false,
            local: false,
            timeout: None,
        }
    }

    /// Also targets `rooms` (union with the rooms already targeted).
    pub fn to(mut self, rooms: impl IntoRooms) -> Self {
        for r in rooms.into_rooms() {
            if !self.opts.rooms.contains(&r) {
                self.opts.rooms.push(r);
            }
        }
        self
    }

    /// Same as [`to`](Self::to).
    pub fn in_(self, rooms: impl IntoRooms) -> Self {
        self.to(rooms)
    }

    /// Excludes the sockets in `rooms`.
    pub fn except(mut self, rooms: impl IntoRooms) -> Self {
        for r in rooms.into_rooms() {
            if !self.opts.except.contains(&r) {
                self.opts.except.push(r);
            }
        }
        self
    }

    /// Marks the emit as droppable. Approximation: every broadcast is
    /// already best effort (a recipient whose session is closed is
    /// skipped); there is no "not writable right now" test yet.
    pub fn volatile(mut self) -> Self {
        self.volatile = true;
        self
    }

    /// Only this node's sockets: the [`Cluster`] (if any) is not told.
    pub fn local(mut self) -> Self {
        self.local = true;
        self
    }

    /// The deadline of [`emit_with_ack`](Self::emit_with_ack).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// The rooms and exclusions selected so far.
    pub fn options(&self) -> &BroadcastOptions {
        &self.opts
    }

    pub(crate) fn flags(&self) -> BroadcastFlags {
        BroadcastFlags {
            volatile: self.volatile,
        }
    }

    /// The cluster, unless this broadcast is [`local`](Self::local).
    fn cluster(&self) -> Option<&Arc<dyn Cluster>> {
        if self.local {
            None
        } else {
            self.ns.cluster()
        }
    }

    fn targets(&self) -> Vec<SocketRef> {
        let sids = self.ns.adapter().sockets(&self.opts);
        sids.iter().filter_map(|s| self.ns.get_socket(s)).collect()
    }

    /// Sends `event` to every selected socket, on every node (unless
    /// [`local`](Self::local)). The packet is encoded once and the same
    /// bytes (text and attachments) are queued to each recipient and handed
    /// to the [`Cluster`]. `data` follows the [`args`](crate::args) rule.
    ///
    /// With connection state recovery on, a non-volatile emit also gets an
    /// offset as its last argument and is kept for sockets that come back
    /// (each node adds its own offset; with a cluster that offers
    /// [`ClusterRecovery`](crate::ClusterRecovery), the cluster numbers it
    /// and every node, this one too, delivers it when it comes back).
    pub fn emit(&self, event: &str, data: impl Serialize) -> Result<(), EmitError> {
        let encoded = encode(&event_packet(self.ns.name(), event, &data)?);
        let cluster = self.cluster();
        match self.ns.recovery() {
            Some(_) if !self.volatile => {
                let packet = EncodedPacket {
                    text: Utf8Bytes::from(encoded.text),
                    attachments: encoded.attachments,
                };
                // Numbered for the whole cluster, delivered when it comes
                // back (here too).
                if let Some(cr) = self.ns.cluster_recovery() {
                    cr.record(self.ns.name(), &self.opts, self.local, packet);
                    return Ok(());
                }
                if let Some(c) = cluster {
                    c.broadcast(self.ns.name(), &self.opts, self.flags(), packet.clone());
                }
                self.ns.send_recorded(&self.opts, packet);
            }
            _ => {
                let out = Outgoing::new(encoded);
                self.ns.for_each_target(&self.opts, |s| {
                    let _ = out.send_to(&s.client);
                });
                if let Some(c) = cluster {
                    c.broadcast(self.ns.name(), &self.opts, self.flags(), out.packet());
                }
            }
        }
        Ok(())
    }

    /// Sends `event` with an ack id to every selected socket, on every node
    /// (unless [`local`](Self::local)), and collects the answers: the
    /// future resolves to one `(socket id, result)` per recipient once all
    /// answered or disconnected (and, with a cluster, every node reported
    /// its recipients), or once the [`timeout`](Self::timeout) passed (then
    /// the silent ones get [`AckError::Timeout`]). Each answer is read into
    /// `T` by the [`args`](crate::args) rule.
    pub fn emit_with_ack<T>(&self, event: &str, data: impl Serialize) -> BroadcastAckFuture<T> {
        let state = (|| {
            let id = self.ns.next_ack_id();
            let packet = event_packet(self.ns.name(), event, &data)?;
            let (tx, rx) = mpsc::unbounded_channel();
            let cluster = self.cluster();
            // With a cluster the packet is encoded without id, for the other
            // nodes to put in theirs, and this node's id is spliced in.
            let (out, remote) = match cluster {
                None => (Outgoing::new(encode(&packet.with_id(id))), None),
                Some(_) => {
                    let base = encode(&packet);
                    let text = splice::with_ack_id(&base.text, id)
                        .unwrap_or_else(|| encode(&packet.clone().with_id(id)).text);
                    let out = Outgoing::new(Encoded {
                        text,
                        attachments: base.attachments.clone(),
                    });
                    let remote = EncodedPacket {
                        text: Utf8Bytes::from(base.text),
                        attachments: base.attachments,
                    };
                    (out, Some(remote))
                }
            };
            let mut expected = Vec::new();
            self.ns.for_each_target(&self.opts, |s| {
                s.insert_ack(id, AckSlot::Broadcast(tx.clone()));
                if out.send_to(&s.client).is_ok() {
                    expected.push(s.clone());
                } else {
                    s.remove_ack(id);
                }
            });
            if let (Some(c), Some(packet)) = (cluster, remote) {
                let sink = AckSink::new(tx);
                c.broadcast_with_ack(self.ns.name(), &self.opts, packet, self.timeout, sink);
            }
            Ok(Pending {
                rx,
                expected,
                id,
                remote: cluster.is_some(),
            })
        })();
        BroadcastAckFuture {
            state,
            timeout: self.timeout,
            _t: PhantomData,
        }
    }

    /// The selected sockets of this node (synchronous; for every node's,
    /// see [`fetch_cluster_sockets`](Self::fetch_cluster_sockets)).
    pub fn fetch_sockets(&self) -> Vec<SocketRef> {
        self.targets()
    }

    /// The selected sockets of every node (Node's `fetchSockets`): this
    /// node's, then the others' as the [`Cluster`] returns them (once every
    /// node answered, or its deadline passed). Without a cluster, or
    /// [`local`](Self::local), only this node's.
    pub fn fetch_cluster_sockets(
        &self,
    ) -> impl Future<Output = Vec<RemoteSocket>> + Send + 'static {
        let local: Vec<RemoteSocket> = self
            .targets()
            .into_iter()
            .map(RemoteSocket::from_local)
            .collect();
        let remote = self
            .cluster()
            .map(|c| c.fetch_sockets(self.ns.name(), &self.opts));
        let ns = self.ns.clone();
        async move {
            let mut all = local;
            if let Some(remote) = remote {
                all.extend(
                    remote
                        .await
                        .into_iter()
                        .map(|info| RemoteSocket::from_remote(ns.clone(), info)),
                );
            }
            all
        }
    }

    /// Makes the selected sockets join `rooms`, on every node (unless
    /// [`local`](Self::local)).
    pub fn sockets_join(&self, rooms: impl IntoRooms) {
        let rooms = rooms.into_rooms();
        for s in self.targets() {
            self.ns.adapter().add_all(s.id_shared(), &rooms);
            self.ns.session_changed(&s);
        }
        if let Some(c) = self.cluster() {
            c.add_sockets(self.ns.name(), &self.opts, &rooms);
        }
    }

    /// Makes the selected sockets leave `rooms`, on every node (unless
    /// [`local`](Self::local)).
    pub fn sockets_leave(&self, rooms: impl IntoRooms) {
        let rooms = rooms.into_rooms();
        for s in self.targets() {
            for r in &rooms {
                self.ns.adapter().del(s.id(), r);
            }
            self.ns.session_changed(&s);
        }
        if let Some(c) = self.cluster() {
            c.del_sockets(self.ns.name(), &self.opts, &rooms);
        }
    }

    /// Disconnects the selected sockets (`close`: their whole connections),
    /// on every node (unless [`local`](Self::local)).
    pub fn disconnect_sockets(&self, close: bool) {
        for s in self.targets() {
            s.disconnect(close);
        }
        if let Some(c) = self.cluster() {
            c.disconnect_sockets(self.ns.name(), &self.opts, close);
        }
    }
}

struct Pending {
    rx: mpsc::UnboundedReceiver<AckEvent>,
    /// This node's recipients.
    expected: Vec<SocketRef>,
    id: u64,
    /// Whether other nodes take part (until they are counted).
    remote: bool,
}

/// The answers to [`BroadcastOperator::emit_with_ack`]: await it.
#[must_use = "the answers are only read when awaited"]
pub struct BroadcastAckFuture<T> {
    state: Result<Pending, EmitError>,
    timeout: Option<Duration>,
    _t: PhantomData<fn() -> T>,
}

impl<T> BroadcastAckFuture<T> {
    /// Sets (or overrides) the deadline.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }
}

type AckResults<T> = Vec<(String, Result<T, AckError>)>;

impl<T: DeserializeOwned + Send + 'static> IntoFuture for BroadcastAckFuture<T> {
    type Output = Result<AckResults<T>, EmitError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let Pending {
                mut rx,
                expected,
                id,
                remote,
            } = self.state?;
            let mut waiting: HashSet<String> = expected.iter().map(|s| s.id().to_owned()).collect();
            let mut out: AckResults<T> = Vec::with_capacity(expected.len());
            let mut counting = remote;
            // Answers that came before their node's recipients (defensive:
            // a cluster reports the recipients first).
            let mut early: HashMap<String, Result<Vec<Value>, AckError>> = HashMap::new();
            let read = |res: Result<Vec<Value>, AckError>| {
                res.and_then(|args| {
                    from_args::<T>(args).map_err(|e| AckError::Decode(e.to_string()))
                })
            };
            let collect = async {
                while !waiting.is_empty() || counting {
                    let Some(event) = rx.recv().await else {
                        break;
                    };
                    match event {
                        AckEvent::Answer(sid, res) => {
                            if waiting.remove(&sid) {
                                out.push((sid, read(res)));
                            } else if counting {
                                early.insert(sid, res);
                            }
                        }
                        AckEvent::Expect(sids) => {
                            for sid in sids {
                                match early.remove(&sid) {
                                    Some(res) => out.push((sid, read(res))),
                                    None => {
                                        waiting.insert(sid);
                                    }
                                }
                            }
                        }
                        AckEvent::Counted => counting = false,
                    }
                }
            };
            match self.timeout {
                Some(d) => {
                    let _ = tokio::time::timeout(d, collect).await;
                }
                None => collect.await,
            }
            for s in &expected {
                if waiting.remove(s.id()) {
                    s.remove_ack(id);
                    out.push((s.id().to_owned(), Err(AckError::Timeout)));
                }
            }
            // Other nodes' silent recipients.
            out.extend(waiting.into_iter().map(|sid| (sid, Err(AckError::Timeout))));
            Ok(out)
        })
    }
}
