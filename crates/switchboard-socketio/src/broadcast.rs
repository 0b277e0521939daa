//! [`BroadcastOperator`]: selects sockets by room and emits to all of them
//! with one encoding.

use std::collections::HashSet;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;
use switchboard_socketio_proto::{encode, Value};
use tokio::sync::mpsc;

use crate::adapter::{BroadcastOptions, IntoRooms};
use crate::args::from_args;
use crate::client::Outgoing;
use crate::error::{AckError, EmitError};
use crate::namespace::Namespace;
use crate::socket::{event_packet, AckSlot, SocketRef};

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

    /// Only this server's sockets. With the in-memory adapter every
    /// broadcast is local, so this changes nothing yet.
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

    fn targets(&self) -> Vec<SocketRef> {
        let sids = self.ns.adapter().sockets(&self.opts);
        sids.iter().filter_map(|s| self.ns.get_socket(s)).collect()
    }

    /// Sends `event` to every selected socket. The packet is encoded once
    /// and the same bytes (text and attachments) are queued to each
    /// recipient. `data` follows the [`args`](crate::args) rule.
    ///
    /// With connection state recovery on, a non-volatile emit also gets an
    /// offset as its last argument and is kept for sockets that come back.
    pub fn emit(&self, event: &str, data: impl Serialize) -> Result<(), EmitError> {
        let mut packet = event_packet(self.ns.name(), event, &data)?;
        let send = |out: &Outgoing| {
            self.ns.for_each_target(&self.opts, |s| {
                let _ = out.send_to(&s.client);
            });
        };
        match self.ns.recovery() {
            Some(recovery) if !self.volatile => {
                recovery.record(Instant::now(), &self.opts, |offset| {
                    if let Some(Value::Array(args)) = &mut packet.data {
                        args.push(Value::from(offset));
                    }
                    let out = Outgoing::new(encode(&packet));
                    send(&out);
                    out.messages()
                })
            }
            _ => send(&Outgoing::new(encode(&packet))),
        }
        Ok(())
    }

    /// Sends `event` with one ack id to every selected socket and collects
    /// the answers: the future resolves to one `(socket id, result)` per
    /// recipient once all answered, disconnected, or the
    /// [`timeout`](Self::timeout) passed (then the silent ones get
    /// [`AckError::Timeout`]). Each answer is read into `T` by the
    /// [`args`](crate::args) rule.
    pub fn emit_with_ack<T>(&self, event: &str, data: impl Serialize) -> BroadcastAckFuture<T> {
        let state = (|| {
            let id = self.ns.next_ack_id();
            let packet = event_packet(self.ns.name(), event, &data)?.with_id(id);
            let out = Outgoing::new(encode(&packet));
            let (tx, rx) = mpsc::unbounded_channel();
            let mut expected = Vec::new();
            self.ns.for_each_target(&self.opts, |s| {
                s.acks.lock().insert(id, AckSlot::Broadcast(tx.clone()));
                if out.send_to(&s.client).is_ok() {
                    expected.push(s.clone());
                } else {
                    s.acks.lock().remove(&id);
                }
            });
            Ok(Pending { rx, expected, id })
        })();
        BroadcastAckFuture {
            state,
            timeout: self.timeout,
            _t: PhantomData,
        }
    }

    /// The selected sockets (Node's `fetchSockets`; local only).
    pub fn fetch_sockets(&self) -> Vec<SocketRef> {
        self.targets()
    }

    /// Makes the selected sockets join `rooms`.
    pub fn sockets_join(&self, rooms: impl IntoRooms) {
        let rooms = rooms.into_rooms();
        for s in self.targets() {
            self.ns.adapter().add_all(s.id(), &rooms);
        }
    }

    /// Makes the selected sockets leave `rooms`.
    pub fn sockets_leave(&self, rooms: impl IntoRooms) {
        let rooms = rooms.into_rooms();
        for s in self.targets() {
            for r in &rooms {
                self.ns.adapter().del(s.id(), r);
            }
        }
    }

    /// Disconnects the selected sockets (`close`: their whole connections).
    pub fn disconnect_sockets(&self, close: bool) {
        for s in self.targets() {
            s.disconnect(close);
        }
    }
}

struct Pending {
    rx: mpsc::UnboundedReceiver<(String, Result<Vec<Value>, AckError>)>,
    expected: Vec<SocketRef>,
    id: u64,
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
            } = self.state?;
            let mut waiting: HashSet<String> = expected.iter().map(|s| s.id().to_owned()).collect();
            let mut out: AckResults<T> = Vec::with_capacity(expected.len());
            let collect = async {
                while !waiting.is_empty() {
                    let Some((sid, res)) = rx.recv().await else {
                        break;
                    };
                    if !waiting.remove(&sid) {
                        continue;
                    }
                    let res = res.and_then(|args| {
                        from_args::<T>(args).map_err(|e| AckError::Decode(e.to_string()))
                    });
                    out.push((sid, res));
                }
            };
            match self.timeout {
                Some(d) => {
                    let _ = tokio::time::timeout(d, collect).await;
                }
                None => collect.await,
            }
            for s in &expected {
                if waiting.contains(s.id()) {
                    s.acks.lock().remove(&id);
                    out.push((s.id().to_owned(), Err(AckError::Timeout)));
                }
            }
            Ok(out)
        })
    }
}
