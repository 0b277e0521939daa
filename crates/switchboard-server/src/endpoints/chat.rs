//! `/ws`: the JSON envelope over raw WebSocket (docs/ws-envelope.md) —
//! subscribe, unsubscribe, publish, presence, history. Bad requests get an
//! `error` reply and the connection stays open.

use crate::app::AppState;
use crate::upgrade::{text_response, upgrade};
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use switchboard_hub::{Client, ClientInfo, Delivery, Encoding, HubError, Payload, Publication};
use switchboard_transport::WsHandler;
use switchboard_websocket::{encode_frame, Event, OpCode, Writer};

use crate::wire::{
    json_str, message_fields_json, message_json, presence_event_json, presence_json,
};

/// Query parameters of `/ws`.
#[derive(Deserialize)]
pub struct ChatQuery {
    name: Option<String>,
}

static ANON: AtomicU64 = AtomicU64::new(1);

/// The envelope endpoint.
pub async fn chat(
    State(state): State<Arc<AppState>>,
    Query(q): Query<ChatQuery>,
    req: Request,
) -> Response {
    let name = match q.name {
        Some(n) if !n.is_empty() && n.chars().count() <= 64 && !n.chars().any(char::is_control) => {
            n
        }
        Some(_) => {
            return text_response(
                StatusCode::BAD_REQUEST,
                "name must be 1 to 64 printable characters",
            )
        }
        None => format!("anon-{}", ANON.fetch_add(1, Ordering::Relaxed)),
    };
    let client = state.hub.connect(ClientInfo::new(name, "websocket"));
    upgrade(&state, req, ChatSocket { client })
}

/// One `/ws` connection.
pub struct ChatSocket {
    client: Client,
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

impl WsHandler for ChatSocket {
    fn on_event(&mut self, event: Event<'_>, out: &mut Writer) {
        match event {
            Event::Text(text) => self.on_request(text, out),
            Event::Binary(_) => reply_error(
                out,
                None,
                &Failure("binary_unsupported", "send JSON text messages".into()),
            ),
            _ => {}
        }
    }

    fn mailbox(&self) -> Option<Arc<switchboard_hub::Mailbox>> {
        Some(self.client.mailbox().clone())
    }

    fn on_delivery(&mut self, delivery: Delivery, out: &mut Writer) {
        match delivery {
            Delivery::Message(p) => send_publication(&p, out),
            Delivery::Presence(ev) => out.send_text(&presence_event_json(&ev)),
        }
    }
}

impl ChatSocket {
    fn on_request(&mut self, text: &str, out: &mut Writer) {
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
        &mut self,
        op: &str,
        req: &Request_,
        id: Option<&str>,
        out: &mut Writer,
    ) -> Result<(), Failure> {
        match op {
            "subscribe" => {
                let topic = &*req.topic()?;
                let since = req.since()?;
                let sub = self.client.subscribe(topic, since)?;
                let mut r = ok_head("subscribe", id);
                let _ = write!(
                    r,
                    ",\"topic\":{},\"seq\":{},\"recovered\":{},\"presence\":{}}}",
                    json_str(topic),
                    sub.last_seq,
                    // Nothing to recover without `since`.
                    since.is_none() || sub.recovered,
                    presence_json(&sub.presence)
                );
                out.send_text(&r);
                for p in &sub.replay {
                    send_publication(p, out);
                }
            }
            "unsubscribe" => {
                let topic = &*req.topic()?;
                self.client.unsubscribe(topic);
                let mut r = ok_head("unsubscribe", id);
                let _ = write!(r, ",\"topic\":{}}}", json_str(topic));
                out.send_text(&r);
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
                out.send_text(&r);
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
                out.send_text(&r);
            }
            "history" => {
                let topic = &*req.topic()?;
                switchboard_hub::validate_topic(topic)?;
                let h = self.client.hub().history(topic, req.since()?.unwrap_or(0));
                let mut r = ok_head("history", id);
                let _ = write!(
                    r,
                    ",\"topic\":{},\"complete\":{},\"messages\":[",
                    json_str(topic),
                    h.complete
                );
                for (i, p) in h.messages.iter().enumerate() {
                    if i > 0 {
                        r.push(',');
                    }
                    r.push_str(&message_fields_json(p));
                }
                r.push_str("]}");
                out.send_text(&r);
            }
            "ping" => {
                let mut r = String::from("{\"type\":\"pong\"");
                if let Some(id) = id {
                    let _ = write!(r, ",\"id\":{id}");
                }
                r.push('}');
                out.send_text(&r);
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

fn reply_error(out: &mut Writer, id: Option<&str>, f: &Failure) {
    let mut r = String::from("{\"type\":\"error\"");
    if let Some(id) = id {
        let _ = write!(r, ",\"id\":{id}");
    }
    let _ = write!(r, ",\"code\":\"{}\",\"message\":{}}}", f.0, json_str(&f.1));
    out.send_text(&r);
}

/// The `message` event of a publication, encoded once and shared by every
/// `/ws` subscriber without compression.
fn send_publication(p: &Arc<Publication>, out: &mut Writer) {
    let json = || {
        let object = message_json(p);
        format!("{{\"type\":\"message\",{}", &object[1..])
    };
    if out.deflate_enabled() {
        out.send_text(&json());
    } else {
        out.send_prepared(p.encoded.get_or_init(Encoding::WsEnvelope, || {
            encode_frame(OpCode::Text, json().as_bytes())
        }));
    }
}
