//! The JSON envelope of docs/ws-envelope.md, independent of the transport
//! that carries it (`/ws` over raw WebSocket, `/sockjs/chat` over SockJS):
//! text in → replies out, hub deliveries → `message` / `presence` events.
//! How a reply or a publication is framed is the transport's
//! ([`EnvelopeOut`]); publications are encoded once per publication and
//! transport through the hub's encoding cache.

use bytes::Bytes;
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use switchboard_hub::{
    Client, ClientInfo, Delivery, HistoryReply, HubError, Payload, Publication, Subscribed,
};
use switchboard_redis::RedisBackplane;

use crate::wire::{
    history_members_json, json_str, message_json, presence_event_json, presence_json,
};

/// Where the envelope's output goes: one transport's framing.
pub trait EnvelopeOut {
    /// A reply or event built for this client alone (JSON text).
    fn reply(&mut self, json: &str);
    /// A publication's `message` event ([`message_event_json`]), shared by
    /// every subscriber: encode it once through `p.encoded`.
    fn publication(&mut self, p: &Arc<Publication>);
}

/// The reply to a `subscribe`, then its replayed messages.
fn reply_subscribed(
    out: &mut impl EnvelopeOut,
    id: Option<&str>,
    topic: &str,
    since: Option<u64>,
    sub: &Subscribed,
) {
    let mut r = ok_head("subscribe", id);
    let _ = write!(
        r,
        ",\"topic\":{},\"seq\":{},\"epoch\":{},\"recovered\":{},\"presence\":{}}}",
        json_str(topic),
        sub.last_seq,
        sub.epoch,
        // Nothing to recover without `since`.
        since.is_none() || sub.recovered,
        presence_json(&sub.presence)
    );
    out.reply(&r);
    for p in &sub.replay {
        out.publication(p);
    }
}

/// Takes the value of the first request in `pending` keyed `key` (a
/// request answered later: its reply `id`, or its ack). The list gives its
/// buffer back when it empties.
pub(crate) fn take_pending<K: PartialEq, V>(pending: &Mutex<Vec<(K, V)>>, key: &K) -> Option<V> {
    let mut pending = pending.lock();
    let i = pending.iter().position(|(k, _)| k == key)?;
    let (_, v) = pending.swap_remove(i);
    if pending.is_empty() {
        *pending = Vec::new();
    }
    Some(v)
}

/// The answer to a `history` request.
fn history_reply(id: Option<&str>, topic: &str, h: &switchboard_hub::HistoryRange) -> String {
    let mut r = ok_head("history", id);
    r.push(',');
    r.push_str(&history_members_json(topic, h));
    r.push('}');
    r
}

/// Query parameters of an envelope connection (`/ws`, `/sockjs/chat`):
/// `name`, and `presence=false` for a connection that wants no presence
/// events (a dashboard, a bot: its topics' joins and leaves cost it nothing).
#[derive(Deserialize, Default)]
pub struct ConnectQuery {
    /// The display name.
    pub name: Option<String>,
    /// Presence events delivered (default true).
    pub presence: Option<bool>,
}

impl ConnectQuery {
    /// Applies the `presence` choice to `info`.
    pub fn apply(&self, info: ClientInfo) -> ClientInfo {
        match self.presence {
            Some(false) => info.with_presence_events(false),
            _ => info,
        }
    }
}

static ANON: AtomicU64 = AtomicU64::new(1);

/// The display name from a `name` query parameter: 1 to 64 printable
/// characters, or `anon-<n>` when absent.
pub fn display_name(name: Option<String>) -> Result<String, &'static str> {
    match name {
        Some(n) if !n.is_empty() && n.chars().count() <= 64 && !n.chars().any(char::is_control) => {
            Ok(n)
        }
        Some(_) => Err("name must be 1 to 64 printable characters"),
        None => Ok(format!("anon-{}", ANON.fetch_add(1, Ordering::Relaxed))),
    }
}

/// One client's envelope session, bound to its hub [`Client`].
pub struct Envelope {
    client: Client,
    /// Subscribes answered later ([`Subscribed::pending`]): topic and the
    /// request's `id` (raw JSON).
    pending: Mutex<Vec<(Arc<str>, Option<String>)>>,
    /// The cluster's shared history, read for `history` requests (with
    /// `[redis] shared_history`).
    cluster_history: Option<Arc<RedisBackplane>>,
    /// `history` requests being read there: request number and `id`.
    pending_history: Mutex<Vec<(u64, Option<String>)>>,
    requests: AtomicU64,
}

/// A request with every field still raw: only "not JSON" and "not an object"
/// fail here (`bad_json`); a field of the wrong type is a `bad_request` that
/// still echoes the `id`.
#[derive(Deserialize)]
struct Request_<'a> {
    #[serde(borrow)]
    op: Option<&'a RawValue>,
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    topic: Option<&'a RawValue>,
    #[serde(borrow)]
    since: Option<&'a RawValue>,
    #[serde(borrow)]
    epoch: Option<&'a RawValue>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

impl<'a> Request_<'a> {
    fn field<T: Deserialize<'a>>(
        raw: Option<&'a RawValue>,
        name: &str,
    ) -> Result<Option<T>, Failure> {
        raw.map(|r| serde_json::from_str::<T>(r.get()))
            .transpose()
            .map_err(|_| Failure("bad_request", format!("invalid \"{name}\"")))
    }

    fn topic(&self) -> Result<std::borrow::Cow<'a, str>, Failure> {
        Self::field::<std::borrow::Cow<'a, str>>(self.topic, "topic")?
            .ok_or_else(|| Failure("bad_request", "missing \"topic\"".into()))
    }

    fn since(&self) -> Result<Option<u64>, Failure> {
        Self::field(self.since, "since")
    }

    fn epoch(&self) -> Result<Option<u64>, Failure> {
        Self::field(self.epoch, "epoch")
    }
}

/// An error reply's code and message.
struct Failure(&'static str, String);

impl From<HubError> for Failure {
    fn from(e: HubError) -> Self {
        match e {
            HubError::Forbidden => Failure("forbidden", e.to_string()),
            HubError::InvalidTopic => Failure("invalid_topic", e.to_string()),
        }
    }
}

impl Envelope {
    /// A session for `client` (its mailbox is the caller's to drain).
    pub fn new(client: Client) -> Self {
        Envelope {
            client,
            pending: Mutex::new(Vec::new()),
            cluster_history: None,
            pending_history: Mutex::new(Vec::new()),
            requests: AtomicU64::new(0),
        }
    }

    /// Answers `history` from the cluster's shared history in `redis` (if
    /// it shares history) rather than this node's copy, which is the
    /// cluster's only for topics this node has subscribers of.
    pub fn with_cluster_history(mut self, redis: Option<&Arc<RedisBackplane>>) -> Self {
        self.cluster_history = redis.filter(|r| r.shared_history()).cloned();
        self
    }

    /// A hub delivery as the envelope's event (or the late answer to a
    /// subscribe that waited for the cluster's history).
    pub fn deliver(&self, delivery: Delivery, out: &mut impl EnvelopeOut) {
        match delivery {
            Delivery::Message(p) => out.publication(&p),
            Delivery::Presence(ev) => out.reply(&presence_event_json(&ev)),
            Delivery::CatchUp(c) => {
                let Some(id) = take_pending(&self.pending, &c.topic) else {
                    return;
                };
                reply_subscribed(out, id.as_deref(), &c.topic, Some(c.since), &c.subscribed);
            }
            Delivery::History(h) => {
                let Some(id) = take_pending(&self.pending_history, &h.request) else {
                    return;
                };
                match &h.result {
                    Ok(range) => out.reply(&history_reply(id.as_deref(), &h.topic, range)),
                    Err(e) => reply_error(out, id.as_deref(), &Failure("unavailable", e.clone())),
                }
            }
        }
    }

    /// The hub client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// One text message from the client: its reply (and, for a `subscribe`
    /// with `since`, the replayed messages) go to `out`.
    pub fn on_text(&self, text: &str, out: &mut impl EnvelopeOut) {
        let req: Request_ = match serde_json::from_str(text) {
            Ok(r) => r,
            Err(e) => {
                let msg = if text.trim_start().starts_with('{') {
                    format!("invalid JSON: {e}")
                } else {
                    "expected a JSON object".to_owned()
                };
                return reply_error(out, None, &Failure("bad_json", msg));
            }
        };
        let id = req.id.map(RawValue::get);
        let op = match Request_::field::<&str>(req.op, "op") {
            Ok(Some(op)) => op,
            Ok(None) => {
                return reply_error(out, id, &Failure("bad_request", "missing \"op\"".into()))
            }
            Err(f) => return reply_error(out, id, &f),
        };
        if let Err(f) = self.dispatch(op, &req, id, out) {
            reply_error(out, id, &f);
        }
    }

    fn dispatch(
        &self,
        op: &str,
        req: &Request_,
        id: Option<&str>,
        out: &mut impl EnvelopeOut,
    ) -> Result<(), Failure> {
        match op {
            "subscribe" => {
                let topic = &*req.topic()?;
                let since = req.since()?;
                let sub = self.client.subscribe_at(topic, since, req.epoch()?)?;
                if sub.pending {
                    // Answered by the `CatchUp` delivery, before live messages.
                    self.pending
                        .lock()
                        .push((Arc::from(topic), id.map(str::to_owned)));
                } else {
                    reply_subscribed(out, id, topic, since, &sub);
                }
            }
            "unsubscribe" => {
                let topic = &*req.topic()?;
                self.client.unsubscribe(topic);
                let mut r = ok_head("unsubscribe", id);
                let _ = write!(r, ",\"topic\":{}}}", json_str(topic));
                out.reply(&r);
            }
            "publish" => {
                let topic = &*req.topic()?;
                let data = req
                    .data
                    .ok_or_else(|| Failure("bad_request", "missing \"data\"".into()))?;
                let payload = Payload::json_or_text(Bytes::copy_from_slice(data.get().as_bytes()));
                let seq = self.client.publish(topic, payload)?;
                let mut r = ok_head("publish", id);
                let _ = write!(r, ",\"topic\":{},\"seq\":{}}}", json_str(topic), seq);
                out.reply(&r);
            }
            "presence" => {
                let topic = &*req.topic()?;
                switchboard_hub::validate_topic(topic)?;
                let presence = self.client.hub().presence(topic);
                let mut r = ok_head("presence", id);
                let _ = write!(
                    r,
                    ",\"topic\":{},\"presence\":{}}}",
                    json_str(topic),
                    presence_json(&presence)
                );
                out.reply(&r);
            }
            "history" => {
                let topic = &*req.topic()?;
                switchboard_hub::validate_topic(topic)?;
                let since = req.since()?.unwrap_or(0);
                if let Some(redis) = &self.cluster_history {
                    // Read from Redis; answered through the mailbox.
                    let request = self.requests.fetch_add(1, Ordering::Relaxed);
                    self.pending_history
                        .lock()
                        .push((request, id.map(str::to_owned)));
                    let (redis, mailbox) = (redis.clone(), self.client.mailbox().clone());
                    let topic: Arc<str> = Arc::from(topic);
                    tokio::spawn(async move {
                        let result = redis.history(&topic, since).await;
                        mailbox.push(Delivery::History(Arc::new(HistoryReply {
                            request,
                            topic,
                            result: result.map_err(|e| e.to_string()),
                        })));
                    });
                    return Ok(());
                }
                let h = self.client.hub().history(topic, since);
                out.reply(&history_reply(id, topic, &h));
            }
            "ping" => {
                let mut r = String::from("{\"type\":\"pong\"");
                if let Some(id) = id {
                    let _ = write!(r, ",\"id\":{id}");
                }
                r.push('}');
                out.reply(&r);
            }
            other => {
                return Err(Failure(
                    "unknown_op",
                    format!("unknown op {}", json_str(other)),
                ))
            }
        }
        Ok(())
    }
}

fn ok_head(op: &str, id: Option<&str>) -> String {
    let mut r = format!("{{\"type\":\"ok\",\"op\":\"{op}\"");
    if let Some(id) = id {
        let _ = write!(r, ",\"id\":{id}");
    }
    r
}

fn reply_error(out: &mut impl EnvelopeOut, id: Option<&str>, f: &Failure) {
    let mut r = String::from("{\"type\":\"error\"");
    if let Some(id) = id {
        let _ = write!(r, ",\"id\":{id}");
    }
    let _ = write!(r, ",\"code\":\"{}\",\"message\":{}}}", f.0, json_str(&f.1));
    out.reply(&r);
}

/// The `message` event of a publication:
/// `{"type":"message","topic":..,"seq":..,"from":..,"data":..,"ts":..}`.
pub fn message_event_json(p: &Publication) -> String {
    let object = message_json(p);
    format!("{{\"type\":\"message\",{}", &object[1..])
}

/// The `error` reply to a binary message (the envelope is JSON text).
pub fn binary_unsupported(out: &mut impl EnvelopeOut) {
    reply_error(
        out,
        None,
        &Failure("binary_unsupported", "send JSON text messages".into()),
    );
}
