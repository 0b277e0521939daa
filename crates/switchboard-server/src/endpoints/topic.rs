//! `/ws/topic/{name}`: a connection bound to one topic. What the client sends is
//! published as is; every publication of the topic is delivered as is — the
//! seeds' `ws` broadcast chat, one room per topic.

use crate::app::AppState;
use crate::upgrade::{text_response, upgrade};
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use std::sync::Arc;
use switchboard_hub::{Client, Delivery, Encoding, HubError, Payload, PayloadKind};
use switchboard_transport::WsHandler;
use switchboard_websocket::{encode_frame, Event, OpCode, Writer};

/// The topic endpoint.
pub async fn topic(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let token = crate::auth::request_token(&parts);
    let info = match crate::auth::identify(
        &state.auth,
        token.as_deref(),
        Some("anonymous".to_owned()),
        "websocket",
    ) {
        Ok(info) => info.with_presence_events(false),
        Err(refusal) => return crate::upgrade::refused(&refusal),
    };
    let req = Request::from_parts(parts, body);
    let client = state.hub.connect(info);
    if let Err(e) = client.subscribe(&name, None) {
        let status = match e {
            HubError::InvalidTopic => StatusCode::BAD_REQUEST,
            HubError::Forbidden => StatusCode::FORBIDDEN,
        };
        return text_response(status, &format!("cannot subscribe: {e}"));
    }
    let topic: Arc<str> = name.into();
    upgrade(&state, req, TopicSocket { client, topic })
}

/// A raw connection bound to `topic`.
pub struct TopicSocket {
    client: Client,
    topic: Arc<str>,
}

impl WsHandler for TopicSocket {
    fn on_event(&mut self, event: Event<'_>, out: &mut Writer) {
        let payload = match event {
            Event::Text(text) => Payload::text(Bytes::copy_from_slice(text.as_bytes())),
            Event::Binary(data) => Payload::binary(Bytes::copy_from_slice(data)),
            _ => return,
        };
        if let Err(e) = self.client.publish(&self.topic, payload) {
            out.close(switchboard_websocket::CloseCode::POLICY, &e.to_string());
        }
    }

    fn mailbox(&self) -> Option<Arc<switchboard_hub::Mailbox>> {
        Some(self.client.mailbox().clone())
    }

    fn on_delivery(&mut self, delivery: Delivery, out: &mut Writer) {
        let Delivery::Message(p) = delivery else {
            return;
        };
        let opcode = match p.payload.kind {
            PayloadKind::Binary => OpCode::Binary,
            _ => OpCode::Text,
        };
        if out.deflate_enabled() {
            out.send(opcode, &p.payload.data);
        } else {
            out.send_prepared(
                p.encoded
                    .get_or_init(Encoding::WsRaw, || encode_frame(opcode, &p.payload.data)),
            );
        }
    }
}
