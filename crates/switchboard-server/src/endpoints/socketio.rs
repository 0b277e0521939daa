//! `/socket.io/`: Socket.IO clients on the hub. Topics are rooms every
//! protocol shares: built-in events subscribe, leave and publish
//! (docs/socketio-events.md); hub publications reach the socket as `message`
//! events encoded once per publication, presence changes as `presence`.

use crate::app::AppState;
use crate::wire::{
    history_members_json, json_str, message_json, presence_event_json, presence_json,
};
use bytes::Bytes;
use serde::Deserialize;
use std::sync::Arc;
use std::task::{Context, Poll};
use switchboard_engineio::Utf8Bytes;
use switchboard_hub::{
    Client, ClientInfo, Delivery, Encoding, HubError, Payload, PayloadKind, Publication, Subscribed,
};
use switchboard_redis::RedisSocketIoCluster;
use switchboard_socketio::{
    AckSender, ConnectError, DisconnectReason, KeptHeaders, Namespace, SocketIo, SocketRef, Value,
};
use switchboard_socketio_proto::encode_event_raw;
use switchboard_transport::engineio::{Cors, EngineIo, EngineIoConfig};

/// Builds the Socket.IO server bound to `state`'s hub and its Engine.IO
/// endpoint. With `[redis]`, its rooms API (`io.to(room).emit`, fetching
/// sockets, joins, disconnects, broadcast acks; `/api/socketio/emit`) spans
/// every node through a `RedisSocketIoCluster` (docs/cluster.md); hub topics
/// cross nodes through the hub's backplane either way.
///
/// # Panics
///
/// With `[redis]`, outside a Tokio runtime.
pub fn socket_io(state: &Arc<AppState>) -> (SocketIo, EngineIo<SocketIo>) {
    let cluster = state.redis.as_ref().map(|bp| {
        RedisSocketIoCluster::new(bp.config().clone()).unwrap_or_else(|e| panic!("[redis]: {e}"))
    });
    let settings = &state.config.socketio;
    let recovery =
        settings
            .connection_state_recovery
            .then(|| switchboard_socketio::RecoveryConfig {
                max_disconnection_duration: std::time::Duration::from_secs(
                    settings.max_disconnection_duration_secs,
                ),
                ..switchboard_socketio::RecoveryConfig::default()
            });
    let io = SocketIo::with_config(switchboard_socketio::Config {
        cluster: cluster
            .clone()
            .map(|c| c as Arc<dyn switchboard_socketio::Cluster>),
        connection_state_recovery: recovery,
        // A socket's identity is settled when it connects (`identify`), and
        // nothing reads its handshake headers later: a connection keeps
        // only the one `identify` reads, not the kilobyte a browser sends.
        handshake_headers: KeptHeaders::Only(vec![axum::http::header::AUTHORIZATION]),
        ..switchboard_socketio::Config::default()
    });
    if let Some(c) = &cluster {
        c.start(&io).unwrap_or_else(|e| panic!("[redis]: {e}"));
    }
    let hub_state = state.clone();
    let ns = io.ns("/", move |socket: SocketRef| {
        on_connection(&hub_state, socket)
    });
    register_events(state, &ns);
    // Before the socket's data is kept for connection state recovery: the
    // hub client is not part of it, and dropping it leaves every topic
    // (presence leave events) and ends the socket's pump.
    ns.on_disconnecting(|s: SocketRef, _reason: DisconnectReason| {
        s.extensions().remove::<HubLink>();
    });
    // Credentials are checked before the socket connects: a refusal is a
    // CONNECT_ERROR whose message is the reason (`connect_error` on the client).
    let auth_state = state.clone();
    ns.middleware(move |socket: &SocketRef| {
        let info = identify(&auth_state, socket).map_err(|r| ConnectError::new(r.reason()))?;
        socket.extensions().insert(info);
        Ok(())
    });
    let config = EngineIoConfig {
        cors: Cors::Reflect,
        // `[websocket] compression` applies to Socket.IO's WebSocket transport too.
        per_message_deflate: state.ws_options.deflate.clone(),
        ..EngineIoConfig::default()
    };
    let engine = EngineIo::new(io.clone(), config, state.shutdown.clone());
    (io, engine)
}

#[derive(Deserialize, Default)]
struct Auth {
    name: Option<String>,
    token: Option<String>,
    /// `false`: no `presence` events (also `?presence=false`).
    presence: Option<bool>,
}

/// The socket's hub identity from its handshake: the token in `auth.token`,
/// `?token=` or `Authorization: Bearer`, the name in `auth.name` or `?name=`.
fn identify(state: &AppState, socket: &SocketRef) -> Result<ClientInfo, crate::auth::Refusal> {
    let hs = socket.handshake();
    let auth = hs.auth_as::<Auth>().unwrap_or_default();
    let token = auth.token.or_else(|| hs.query_param("token")).or_else(|| {
        hs.headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(switchboard_auth::bearer_token)
            .map(str::to_owned)
    });
    let name = auth.name.or_else(|| hs.query_param("name"));
    let presence = auth
        .presence
        .unwrap_or_else(|| hs.query_param("presence").as_deref() != Some("false"));
    crate::auth::identify(&state.auth, token.as_deref(), name, "socket.io")
        .map(|info| info.with_presence_events(presence))
}

/// `subscribe` takes a topic name or `{topic, since, epoch}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum SubscribeArg {
    Topic(String),
    Full {
        topic: String,
        since: Option<u64>,
        epoch: Option<u64>,
    },
}

#[derive(Deserialize)]
struct PublishArg {
    topic: String,
    data: Value,
}

#[derive(Deserialize)]
struct HistoryArg {
    topic: String,
    since: Option<u64>,
}

/// A connected socket's hub client, kept in the socket's extensions for
/// the event handlers, which are registered once for all sockets
/// ([`register_events`]). Removed when the socket disconnects: the hub
/// client goes (its topics are left), and with it the pump ([`pump`]).
/// Every connection keeps one: the client alone, a 128-byte block.
#[derive(Clone)]
struct HubLink(Arc<Client>);

impl std::ops::Deref for HubLink {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.0
    }
}

/// Subscribes answered later ([`Subscribed::pending`]): topic and ack. In
/// the socket's extensions from its first such subscribe (most sockets
/// never have one).
#[derive(Clone, Default)]
struct PendingSubscribes(Arc<parking_lot::Mutex<Waiting>>);

/// Topic and ack of each subscribe waiting for its catch-up.
type Waiting = Vec<(Arc<str>, Option<AckSender>)>;

fn on_connection(state: &Arc<AppState>, socket: SocketRef) {
    // Set by the middleware, taken (the hub client keeps it); a socket
    // recovered without middlewares (connection state recovery) is
    // identified again.
    let info = match socket.extensions().remove::<ClientInfo>() {
        Some(info) => info,
        None => match identify(state, &socket) {
            Ok(info) => info,
            Err(refusal) => {
                let _ = socket.emit_volatile("error", refusal.reason());
                socket.disconnect(false);
                return;
            }
        },
    };
    let link = Arc::new(state.hub.connect(info));
    socket.attach(pump(&link, &socket));
    socket.extensions().insert(HubLink(link));
}

/// The built-in events (docs/socketio-events.md), one handler each for every
/// socket of `ns`.
fn register_events(state: &Arc<AppState>, ns: &Namespace) {
    ns.on_event(
        "subscribe",
        |s: SocketRef, arg: SubscribeArg, ack: Option<AckSender>| {
            let Some(link) = s.extensions().get::<HubLink>() else {
                return;
            };
            let (topic, since, epoch) = match arg {
                SubscribeArg::Topic(t) => (t, None, None),
                SubscribeArg::Full {
                    topic,
                    since,
                    epoch,
                } => (topic, since, epoch),
            };
            let reply = match link.subscribe_at(&topic, since, epoch) {
                Ok(sub) if sub.pending => {
                    // Answered by the `CatchUp` delivery, before live
                    // messages. A socket's events are handled one at a
                    // time: no other subscribe inserts meanwhile.
                    let pending = s.extensions().get::<PendingSubscribes>();
                    let pending = pending.unwrap_or_else(|| {
                        let p = PendingSubscribes::default();
                        s.extensions().insert(p.clone());
                        p
                    });
                    pending.0.lock().push((Arc::from(topic), ack));
                    return;
                }
                Ok(sub) => subscribed(&s, &topic, since, &sub),
                Err(e) => error_json(e),
            };
            ack_raw(ack, &reply);
        },
    );

    ns.on_event(
        "unsubscribe",
        |s: SocketRef, topic: String, ack: Option<AckSender>| {
            let Some(link) = s.extensions().get::<HubLink>() else {
                return;
            };
            let was = link.unsubscribe(&topic);
            ack_raw(
                ack,
                &format!(
                    "{{\"ok\":true,\"topic\":{},\"was_subscribed\":{was}}}",
                    json_str(&topic)
                ),
            );
        },
    );

    ns.on_event(
        "publish",
        |s: SocketRef, arg: PublishArg, ack: Option<AckSender>| {
            let Some(link) = s.extensions().get::<HubLink>() else {
                return;
            };
            let payload = match arg.data {
                Value::Binary(b) => Payload::binary(b),
                other => Payload::json_or_text(Bytes::from(other.to_json_string())),
            };
            let reply = match link.publish(&arg.topic, payload) {
                Ok(seq) => format!(
                    "{{\"ok\":true,\"topic\":{},\"seq\":{seq}}}",
                    json_str(&arg.topic)
                ),
                Err(e) => error_json(e),
            };
            ack_raw(ack, &reply);
        },
    );

    let hub = state.hub.clone();
    ns.on_event(
        "presence",
        move |_s: SocketRef, topic: String, ack: Option<AckSender>| {
            let reply = match switchboard_hub::validate_topic(&topic) {
                Ok(()) => format!(
                    "{{\"ok\":true,\"topic\":{},\"presence\":{}}}",
                    json_str(&topic),
                    presence_json(&hub.presence(&topic))
                ),
                Err(e) => error_json(e),
            };
            ack_raw(ack, &reply);
        },
    );

    let hub = state.hub.clone();
    let cluster_history = state.redis.clone().filter(|r| r.shared_history());
    ns.on_event(
        "history",
        move |_s: SocketRef, arg: HistoryArg, ack: Option<AckSender>| {
            if let Err(e) = switchboard_hub::validate_topic(&arg.topic) {
                return ack_raw(ack, &error_json(e));
            }
            let since = arg.since.unwrap_or(0);
            match &cluster_history {
                // The cluster's, read from Redis (this node's copy is the
                // cluster's only for topics it has subscribers of).
                Some(redis) => {
                    let redis = redis.clone();
                    tokio::spawn(async move {
                        let reply = match redis.history(&arg.topic, since).await {
                            Ok(h) => history_json(&arg.topic, &h),
                            Err(e) => format!(
                                "{{\"ok\":false,\"code\":\"unavailable\",\"message\":{}}}",
                                json_str(&e.to_string())
                            ),
                        };
                        ack_raw(ack, &reply);
                    });
                }
                None => ack_raw(
                    ack,
                    &history_json(&arg.topic, &hub.history(&arg.topic, since)),
                ),
            }
        },
    );
}

/// Sends a subscribe's replay (before the ack and before live messages)
/// and returns the ack's JSON.
fn subscribed(socket: &SocketRef, topic: &str, since: Option<u64>, sub: &Subscribed) -> String {
    for p in &sub.replay {
        send_publication(socket, p);
    }
    format!(
        "{{\"ok\":true,\"topic\":{},\"seq\":{},\"epoch\":{},\"recovered\":{},\"presence\":{}}}",
        json_str(topic),
        sub.last_seq,
        sub.epoch,
        since.is_none() || sub.recovered,
        presence_json(&sub.presence)
    )
}

/// The ack of a `history` event.
fn history_json(topic: &str, h: &switchboard_hub::HistoryRange) -> String {
    format!("{{\"ok\":true,{}}}", history_members_json(topic, h))
}

fn error_json(e: HubError) -> String {
    let code = match e {
        HubError::Forbidden => "forbidden",
        HubError::InvalidTopic => "invalid_topic",
    };
    format!(
        "{{\"ok\":false,\"code\":\"{code}\",\"message\":{}}}",
        json_str(&e.to_string())
    )
}

fn ack_raw(ack: Option<AckSender>, json: &str) {
    if let Some(ack) = ack {
        let value = Value::from_json_str(json).expect("replies are built as valid JSON");
        let _ = ack.send(value);
    }
}

/// Moves hub deliveries to the socket, polled on the connection's own task
/// ([`SocketRef::attach`]: no task per socket), until the hub client goes
/// (the socket disconnected, [`HubLink`]) or the connection closes. Holds
/// the socket and the link weakly: neither is kept alive by it. Two weak
/// handles and nothing else (every connection keeps it: a 16-byte block).
fn pump(
    link: &Arc<Client>,
    socket: &SocketRef,
) -> impl FnMut(&mut Context<'_>) -> Poll<()> + Send + 'static {
    let link = Arc::downgrade(link);
    let socket = Arc::downgrade(socket);
    move |cx| {
        // The hub client went with the link: nothing more to move.
        let Some(hub_link) = link.upgrade() else {
            return Poll::Ready(());
        };
        let mailbox = hub_link.mailbox();
        // A bounded number of rounds per wake-up: a busy mailbox does not
        // starve the connection's other work.
        for _ in 0..16 {
            if mailbox.poll_ready(cx).is_pending() {
                return Poll::Pending;
            }
            let Some(socket) = socket.upgrade() else {
                return Poll::Ready(());
            };
            if mailbox.is_overflowed() {
                tracing::debug!(socket = socket.id(), "closing slow socket.io consumer");
                socket.disconnect(true);
                return Poll::Ready(());
            }
            let batch = mailbox.take_all();
            let drained = batch.len();
            for d in batch {
                match d {
                    Delivery::Message(p) => send_publication(&socket, &p),
                    Delivery::Presence(ev) => {
                        let text = encode_event_raw("/", "presence", &[&presence_event_json(&ev)]);
                        let _ = socket.emit_encoded(Utf8Bytes::from(text));
                    }
                    Delivery::CatchUp(c) => {
                        let pending = socket.extensions().get::<PendingSubscribes>();
                        let Some(ack) =
                            pending.and_then(|p| super::envelope::take_pending(&p.0, &c.topic))
                        else {
                            continue;
                        };
                        let reply = subscribed(&socket, &c.topic, Some(c.since), &c.subscribed);
                        ack_raw(ack, &reply);
                    }
                    // History read elsewhere is acknowledged by its reader.
                    Delivery::History(_) => {}
                }
            }
            if mailbox.is_kicked() {
                // "io server disconnect": the client does not reconnect by itself.
                socket.disconnect(false);
                return Poll::Ready(());
            }
            if drained == 0 && mailbox.is_closed() {
                return Poll::Ready(());
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// A publication as the `message` event, encoded once for every Socket.IO
/// subscriber; binary payloads travel as a binary attachment instead.
fn send_publication(socket: &SocketRef, p: &Arc<Publication>) {
    if p.payload.kind == PayloadKind::Binary {
        let mut fields = vec![
            ("topic".to_owned(), Value::String(p.topic.to_string())),
            ("seq".to_owned(), Value::from(p.seq)),
        ];
        if let Some(from) = &p.from {
            fields.push(("from".to_owned(), Value::String(from.to_string())));
        }
        fields.push(("data".to_owned(), Value::Binary(p.payload.data.clone())));
        fields.push(("ts".to_owned(), Value::from(p.timestamp_ms)));
        // Hub messages are caught up with `since`, not by Socket.IO recovery.
        let _ = socket.emit_volatile("message", Value::Object(fields));
        return;
    }
    let encoded = p.encoded.get_or_init(Encoding::SocketIo, || {
        Bytes::from(encode_event_raw("/", "message", &[&message_json(p)]))
    });
    match Utf8Bytes::try_from_bytes(encoded) {
        Ok(text) => {
            let _ = socket.emit_encoded(text);
        }
        Err(_) => tracing::warn!("socket.io encoding of a publication is not UTF-8"),
    }
}
