//! The application: shared state (hub, shutdown signal, settings) and the axum
//! router that wires every endpoint. Rust apps mount [`Switchboard::router`] in
//! their own router; the `switchboard` binary serves it as is.

use crate::config::Config;
use crate::endpoints;
use axum::routing::{any, get};
use axum::Router;
use std::hash::BuildHasher;
use std::sync::{Arc, OnceLock};
use switchboard_auth::Authenticator;
use switchboard_hub::{now_ms, Hub};
use switchboard_redis::RedisBackplane;
use switchboard_socketio::SocketIo;
use switchboard_transport::{DriverConfig, Shutdown};
use switchboard_websocket::handshake::server::ServerOptions;
use switchboard_websocket::DeflateConfig;

/// State shared by every endpoint.
pub struct AppState {
    /// The settings the server was started with.
    pub config: Config,
    /// The pub/sub hub every protocol publishes into.
    pub hub: Hub,
    /// Tells live connections to close when the server stops.
    pub shutdown: Shutdown,
    /// Handshake options derived from `config`.
    pub ws_options: ServerOptions,
    /// Timers and back-pressure of WebSocket connections.
    pub driver_config: Arc<DriverConfig>,
    /// The STOMP broker (`[stomp] enabled`).
    pub stomp: Option<switchboard_stomp::Broker>,
    /// Handshake options of STOMP over WebSocket: `ws_options` with the
    /// STOMP subprotocols.
    pub stomp_ws_options: ServerOptions,
    /// Connection tokens and API keys (`[auth]`).
    pub auth: Arc<Authenticator>,
    /// The Redis backplane, when `[redis]` is configured (for metrics).
    pub redis: Option<Arc<RedisBackplane>>,
    /// The Socket.IO server, once [`Switchboard::router`] built it (for the API).
    pub socket_io: OnceLock<SocketIo>,
    /// This node's id (random per process; the Redis backplane's when it has one).
    pub node_id: String,
    /// When the server started, in ms since the epoch.
    pub started_at_ms: u64,
    /// The cluster's nodes as this node hears them ([`crate::nodes`]).
    pub nodes: crate::nodes::Nodes,
}

/// A Switchboard instance: build it from a [`Config`], mount its router.
///
/// ```
/// use switchboard_server::{Config, Switchboard};
/// let sb = Switchboard::new(Config::default());
/// let app: axum::Router = axum::Router::new().nest("/realtime", sb.router());
/// # drop(app);
/// ```
#[derive(Clone)]
pub struct Switchboard {
    state: Arc<AppState>,
}

impl Switchboard {
    /// Builds the hub and the endpoint settings from `config`.
    ///
    /// # Panics
    ///
    /// If `[auth]` is unusable or `[redis]` invalid ([`Config::load`]
    /// reports both as errors first), or, with `[redis]`, outside a Tokio
    /// runtime (the backplane starts its tasks here).
    pub fn new(config: Config) -> Self {
        let mut hub_config = switchboard_hub::HubConfig {
            history_size: config.hub.history_size,
            // The server's own topics (crate::nodes): the latest report and
            // each command matter when published, never later.
            keeps_history: crate::nodes::client_topic,
            mailbox_max_messages: config.hub.mailbox_max_messages,
            mailbox_max_bytes: config.hub.mailbox_max_bytes,
            ..Default::default()
        };
        // Topics starting with `$` are the server's own (crate::nodes).
        let rules = config.permissions.clone();
        hub_config = hub_config.with_authorize(move |client, topic, action| {
            if client.protocol == crate::nodes::INTERNAL {
                return true;
            }
            crate::nodes::client_topic(topic)
                && crate::permissions::allowed(&rules, client, topic, action)
        });
        match config.redis.clone() {
            Some(redis) => {
                let bp = RedisBackplane::new(redis).unwrap_or_else(|e| panic!("[redis]: {e}"));
                let hub = Hub::with_backplane(hub_config, bp.clone());
                bp.start(&hub).unwrap_or_else(|e| panic!("[redis]: {e}"));
                Self::build(config, hub, Some(bp))
            }
            None => Self::build(config, Hub::new(hub_config), None),
        }
    }

    /// Like [`Switchboard::new`] with a hub of the caller's (e.g. shared with
    /// the rest of the application, or with another backplane).
    pub fn with_hub(config: Config, hub: Hub) -> Self {
        Self::build(config, hub, None)
    }

    fn build(config: Config, hub: Hub, redis: Option<Arc<RedisBackplane>>) -> Self {
        let allowed = config.websocket.allowed_origins.clone();
        let origin_allowed: Option<switchboard_websocket::handshake::OriginCheck> =
            if allowed.is_empty() {
                None
            } else {
                Some(Arc::new(move |origin: Option<&str>| match origin {
                    Some(o) => allowed.iter().any(|a| a.eq_ignore_ascii_case(o)),
                    // Non-browser clients send no Origin; the allow-list is about browsers.
                    None => true,
                }))
            };
        let ws_options = ServerOptions {
            protocols: Vec::new(),
            deflate: config.websocket.compression.then(|| DeflateConfig {
                compression_level: config.websocket.compression_level.min(9),
                min_size: config.websocket.compression_min_size,
                ..DeflateConfig::default()
            }),
            origin_allowed,
        };
        let driver_config = Arc::new(DriverConfig {
            ping_interval: config.websocket.ping_interval(),
            ping_timeout: std::time::Duration::from_secs(config.websocket.ping_timeout_secs),
            ..DriverConfig::default()
        });
        let auth =
            Arc::new(Authenticator::new(&config.auth).unwrap_or_else(|e| panic!("[auth]: {e}")));
        let stomp = config.stomp.enabled.then(|| {
            let rules = &config.permissions;
            endpoints::stomp::broker(&hub, &config.stomp, rules, &auth, redis.as_deref())
        });
        let stomp_ws_options = ServerOptions {
            protocols: switchboard_stomp::SUBPROTOCOLS
                .iter()
                .map(|p| p.to_string())
                .collect(),
            deflate: ws_options.deflate.clone(),
            origin_allowed: ws_options.origin_allowed.clone(),
        };
        let node_id = match &redis {
            Some(bp) => format!("{:016x}", bp.node_id()),
            None => format!(
                "{:016x}",
                std::collections::hash_map::RandomState::new().hash_one(now_ms())
            ),
        };
        Switchboard {
            state: Arc::new(AppState {
                config,
                hub,
                shutdown: Shutdown::new(),
                ws_options,
                driver_config,
                stomp,
                stomp_ws_options,
                auth,
                redis,
                socket_io: OnceLock::new(),
                node_id,
                started_at_ms: now_ms(),
                nodes: Default::default(),
            }),
        }
    }

    /// The hub, to publish from application code.
    pub fn hub(&self) -> &Hub {
        &self.state.hub
    }

    /// The signal that closes live connections (`trigger`) and waits for them.
    pub fn shutdown(&self) -> &Shutdown {
        &self.state.shutdown
    }

    /// The STOMP broker, when `[stomp] enabled` (for the TCP listener:
    /// `switchboard_stomp::serve_tcp`).
    pub fn stomp(&self) -> Option<&switchboard_stomp::Broker> {
        self.state.stomp.as_ref()
    }

    /// The shared state, for custom endpoints.
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Every endpoint: the chat page, health, the WebSocket endpoints, Socket.IO
    /// and the SockJS services.
    pub fn router(&self) -> Router {
        let (io, engine) = endpoints::socketio::socket_io(&self.state);
        if self.state.socket_io.set(io).is_ok() {
            // The first router starts the node heartbeat.
            crate::nodes::start(&self.state);
        }
        let router = endpoints::stomp::mount(endpoints::api::routes(), &self.state);
        endpoints::sockjs::mount(router, &self.state)
            .route(
                "/socket.io/",
                any(move |req: axum::extract::Request| {
                    let engine = engine.clone();
                    async move { engine.handle(req).await }
                }),
            )
            .route(
                "/socket.io/socket.io.js",
                get(endpoints::page::socket_io_client),
            )
            .route(
                "/socket.io/socket.io.min.js",
                get(endpoints::page::socket_io_client),
            )
            .route("/", get(endpoints::page::index))
            .route("/admin", get(endpoints::page::admin))
            .route("/assets/{file}", get(endpoints::page::asset))
            .route("/assets/vendor/{file}", get(endpoints::page::vendor))
            .route("/healthz", get(endpoints::health::healthz))
            .route("/metrics", get(crate::metrics::metrics))
            .route("/ws", any(endpoints::chat::chat))
            .route("/ws/echo", any(endpoints::echo::echo))
            .route("/ws/topic/{name}", any(endpoints::topic::topic))
            .with_state(self.state.clone())
    }
}
