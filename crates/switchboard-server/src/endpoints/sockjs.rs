//! SockJS services (`sockjs-client` 1.x and Spring's / Java's SockJS
//! clients), one per prefix declared in `[[sockjs.services]]` (by default
//! `/sockjs/echo`, `/sockjs/close`, `/sockjs/chat`), each with one
//! behaviour:
//!
//! * `echo` — every message comes back.
//! * `close` — closes every session at once with `c[3000,"Go away!"]`, as
//!   the SockJS protocol test server's `close` service does.
//! * `chat` — the JSON envelope of docs/ws-envelope.md, the same as `/ws`,
//!   on the same hub. A publication is escaped for SockJS once, for every
//!   SockJS subscriber (the hub's `SockJs` encoding slot). `?name=` on the
//!   service URL names the client; an invalid name closes the session with
//!   [`BAD_NAME_CODE`] and the reason.

use crate::app::AppState;
use crate::config::{SockJsBehaviour, SockJsService};
use crate::endpoints::envelope::{message_event_json, ConnectQuery, Envelope, EnvelopeOut};
use axum::extract::Query;
use axum::Router;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use switchboard_hub::{Encoding, Hub, Publication};
use switchboard_transport::sockjs::{
    CloseReason, EncodedMessage, SockJs, SockJsConfig, SockJsConn, SockJsHandler, SLOW_CONSUMER,
};
use switchboard_transport::Shrink;

/// The close code of a `chat` session whose `name` is invalid.
pub const BAD_NAME_CODE: u16 = 4000;

/// Mounts every service of `[sockjs]` (`[[sockjs.services]]`) under its
/// prefix, with the `[sockjs]` options and the service's own overrides.
pub fn mount(mut router: Router<Arc<AppState>>, state: &Arc<AppState>) -> Router<Arc<AppState>> {
    for service in &state.config.sockjs.services {
        let config = service_config(state, Some(service));
        let registry = state.shutdown.clone();
        let prefix = service.prefix.as_str();
        router = match service.behaviour {
            SockJsBehaviour::Echo => {
                router.nest_service(prefix, SockJs::new(Echo, config, registry))
            }
            SockJsBehaviour::Close => {
                router.nest_service(prefix, SockJs::new(CloseAtOnce, config, registry))
            }
            SockJsBehaviour::Chat => {
                let chat = Chat {
                    hub: state.hub.clone(),
                    redis: state.redis.clone(),
                    auth: state.auth.clone(),
                    sessions: Mutex::new(HashMap::new()),
                };
                router.nest_service(prefix, SockJs::new(chat, config, registry))
            }
        };
    }
    router
}

/// The options of one service: `[sockjs]`, `[websocket]` limits and
/// compression, then the service's overrides (if it is a declared one).
pub(crate) fn service_config(state: &AppState, service: Option<&SockJsService>) -> SockJsConfig {
    let s = &state.config.sockjs;
    let mut config = SockJsConfig {
        max_message_size: state.config.websocket.max_message_size,
        // `[websocket] compression` applies to SockJS's WebSocket transport too.
        per_message_deflate: state.ws_options.deflate.clone(),
        ..SockJsConfig::default()
    };
    let c = &mut config.service;
    c.heartbeat_time = Duration::from_millis(s.heartbeat_time_ms);
    c.disconnect_delay = Duration::from_millis(s.disconnect_delay_ms);
    c.stream_bytes_limit = service
        .and_then(|v| v.stream_bytes_limit)
        .unwrap_or(s.stream_bytes_limit);
    c.http_message_cache_size = s.http_message_cache_size;
    c.websocket_enabled = service
        .and_then(|v| v.websocket_enabled)
        .unwrap_or(s.websocket_enabled);
    c.session_cookie_needed = service
        .and_then(|v| v.session_cookie_needed)
        .unwrap_or(s.session_cookie_needed);
    // The iframe transports load the client library into the iframe: the
    // copy this server embeds (npm, by lockfile) unless told otherwise, so
    // they work without reaching a CDN.
    if let Some(url) = &s.client_library_url {
        c.client_library_url = url.clone();
    } else if crate::endpoints::page::has_asset("vendor/sockjs.min.js") {
        c.client_library_url = "/assets/vendor/sockjs.min.js".to_owned();
    }
    config
}

/// The `echo` behaviour.
pub struct Echo;

impl SockJsHandler for Echo {
    fn on_open(&self, _conn: SockJsConn, _req: &axum::http::request::Parts) {}

    fn on_message(&self, conn: &SockJsConn, message: String) {
        let _ = conn.send_text(&message);
    }

    fn on_close(&self, _conn: &SockJsConn, _reason: CloseReason) {}
}

/// The `close` behaviour.
pub struct CloseAtOnce;

impl SockJsHandler for CloseAtOnce {
    fn on_open(&self, conn: SockJsConn, _req: &axum::http::request::Parts) {
        conn.close(3000, "Go away!");
    }

    fn on_message(&self, _conn: &SockJsConn, _message: String) {}

    fn on_close(&self, _conn: &SockJsConn, _reason: CloseReason) {}
}

/// The `chat` behaviour: the envelope on the hub.
pub struct Chat {
    hub: Hub,
    /// The Redis backplane, for the cluster's shared history.
    redis: Option<Arc<switchboard_redis::RedisBackplane>>,
    auth: Arc<switchboard_auth::Authenticator>,
    /// Open sessions by [`SockJsConn::serial`].
    sessions: Mutex<HashMap<u64, ChatSession>>,
}

struct ChatSession {
    envelope: Arc<Envelope>,
    pump: tokio::task::JoinHandle<()>,
}

impl SockJsHandler for Chat {
    fn on_open(&self, conn: SockJsConn, req: &axum::http::request::Parts) {
        let q = Query::<ConnectQuery>::try_from_uri(&req.uri)
            .map(|q| q.0)
            .unwrap_or_default();
        let token = crate::auth::request_token(req);
        let info =
            match crate::auth::identify(&self.auth, token.as_deref(), q.name.clone(), "sockjs") {
                Ok(info) => q.apply(info),
                Err(refusal) => {
                    let code = match refusal {
                        crate::auth::Refusal::Auth(_) => crate::auth::UNAUTHORIZED_CLOSE_CODE,
                        crate::auth::Refusal::BadName(_) => BAD_NAME_CODE,
                    };
                    conn.close(code, refusal.reason());
                    return;
                }
            };
        let client = self.hub.connect(info);
        let envelope = Arc::new(Envelope::new(client).with_cluster_history(self.redis.as_ref()));
        let pump = tokio::spawn(pump(envelope.clone(), conn.clone()));
        self.sessions
            .lock()
            .insert(conn.serial(), ChatSession { envelope, pump });
    }

    fn on_message(&self, conn: &SockJsConn, message: String) {
        let envelope = self
            .sessions
            .lock()
            .get(&conn.serial())
            .map(|s| s.envelope.clone());
        if let Some(envelope) = envelope {
            envelope.on_text(&message, &mut SockJsOut(conn));
        }
    }

    fn on_close(&self, conn: &SockJsConn, _reason: CloseReason) {
        // Dropping the client leaves every topic (presence leave events).
        let session = {
            let mut sessions = self.sessions.lock();
            let session = sessions.remove(&conn.serial());
            sessions.shrink_when_sparse();
            session
        };
        if let Some(session) = session {
            session.pump.abort();
        }
    }
}

/// The envelope's output as SockJS messages.
struct SockJsOut<'a>(&'a SockJsConn);

impl EnvelopeOut for SockJsOut<'_> {
    fn reply(&mut self, json: &str) {
        let _ = self.0.send_text(json);
    }

    fn publication(&mut self, p: &Arc<Publication>) {
        let escaped = p.encoded.get_or_init(Encoding::SockJs, || {
            EncodedMessage::new(&message_event_json(p)).to_bytes()
        });
        let _ = self.0.send(EncodedMessage::from_escaped(escaped));
    }
}

/// Moves hub deliveries to the session until it goes away; a mailbox
/// overflow closes it as a slow consumer.
async fn pump(envelope: Arc<Envelope>, conn: SockJsConn) {
    let mailbox = envelope.client().mailbox();
    let mut batch = Vec::new();
    loop {
        mailbox.ready().await;
        if mailbox.is_overflowed() {
            tracing::debug!(session = conn.id(), "closing slow sockjs consumer");
            conn.close(SLOW_CONSUMER.code, SLOW_CONSUMER.reason.clone());
            return;
        }
        let drained = mailbox.drain(&mut batch);
        for d in batch.drain(..) {
            envelope.deliver(d, &mut SockJsOut(&conn));
        }
        if mailbox.is_kicked() {
            conn.close(
                switchboard_transport::DISCONNECTED_BY_SERVER.0,
                "Disconnected by the server",
            );
            return;
        }
        if drained == 0 && mailbox.is_closed() {
            return;
        }
        if conn.is_closed() {
            return;
        }
    }
}
