//! `/ws`: the JSON envelope (docs/ws-envelope.md, [`super::envelope`]) over
//! raw WebSocket. Bad requests get an `error` reply and the connection stays
//! open.

use crate::app::AppState;
use crate::endpoints::envelope::{self, message_event_json, Envelope, EnvelopeOut};
use crate::upgrade::upgrade;
use axum::extract::{Query, Request, State};
use axum::response::Response;
use std::sync::Arc;
use switchboard_hub::{Delivery, Encoding, Publication};
use switchboard_transport::WsHandler;
use switchboard_websocket::{encode_frame, Event, OpCode, Writer};

/// The envelope endpoint.
pub async fn chat(
    State(state): State<Arc<AppState>>,
    Query(q): Query<envelope::ConnectQuery>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let token = crate::auth::request_token(&parts);
    let name = q.name.clone();
    let info = match crate::auth::identify(&state.auth, token.as_deref(), name, "websocket") {
        Ok(info) => q.apply(info),
        Err(refusal) => return crate::upgrade::refused(&refusal),
    };
    let req = Request::from_parts(parts, body);
    let client = state.hub.connect(info);
    upgrade(
        &state,
        req,
        ChatSocket {
            envelope: Envelope::new(client).with_cluster_history(state.redis.as_ref()),
        },
    )
}

/// One `/ws` connection.
pub struct ChatSocket {
    envelope: Envelope,
}

/// The envelope's output framed as WebSocket text messages.
struct WsOut<'a>(&'a mut Writer);

impl EnvelopeOut for WsOut<'_> {
    fn reply(&mut self, json: &str) {
        self.0.send_text(json);
    }

    /// The frame is encoded once and shared by every `/ws` subscriber
    /// without compression.
    fn publication(&mut self, p: &Arc<Publication>) {
        if self.0.deflate_enabled() {
            self.0.send_text(&message_event_json(p));
        } else {
            self.0
                .send_prepared(p.encoded.get_or_init(Encoding::WsEnvelope, || {
                    encode_frame(OpCode::Text, message_event_json(p).as_bytes())
                }));
        }
    }
}

impl WsHandler for ChatSocket {
    fn on_event(&mut self, event: Event<'_>, out: &mut Writer) {
        match event {
            Event::Text(text) => self.envelope.on_text(text, &mut WsOut(out)),
            Event::Binary(_) => envelope::binary_unsupported(&mut WsOut(out)),
            _ => {}
        }
    }

    fn mailbox(&self) -> Option<Arc<switchboard_hub::Mailbox>> {
        Some(self.envelope.client().mailbox().clone())
    }

    fn on_delivery(&mut self, delivery: Delivery, out: &mut Writer) {
        self.envelope.deliver(delivery, &mut WsOut(out));
    }
}
