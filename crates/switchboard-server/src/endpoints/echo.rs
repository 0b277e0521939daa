//! `/ws/echo`: every message comes back as it was sent (conformance runs, benchmarks).

use crate::app::AppState;
use crate::upgrade::upgrade;
use axum::extract::{Request, State};
use axum::response::Response;
use std::sync::Arc;
use switchboard_transport::WsHandler;
use switchboard_websocket::{Event, Writer};

/// The echo endpoint.
pub async fn echo(State(state): State<Arc<AppState>>, req: Request) -> Response {
    upgrade(&state, req, Echo)
}

/// Sends every text and binary message back; pings are answered by the core.
pub struct Echo;

impl WsHandler for Echo {
    fn on_event(&mut self, event: Event<'_>, out: &mut Writer) {
        match event {
            Event::Text(text) => out.send_text(text),
            Event::Binary(data) => out.send_binary(data),
            _ => {}
        }
    }
}
