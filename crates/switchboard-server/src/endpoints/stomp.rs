//! STOMP in the server (docs/stomp.md): `/stomp` speaks STOMP over
//! WebSocket (subprotocols `v12.stomp`, `v11.stomp`, `v10.stomp`, or none,
//! as RabbitMQ's Web-STOMP accepts) and, under the same prefix, STOMP over
//! SockJS for `new SockJS('/stomp')` clients (Spring's pattern); the plain
//! TCP listener is started by the binary ([`serve_tcp`]). Every transport
//! drives a `switchboard_stomp::StompClient` on the shared broker.

use crate::app::AppState;
use crate::config::{StompSettings, StompUser};
use crate::permissions::Rule;
use crate::upgrade::upgrade_with;
use axum::extract::Request;
use axum::Router;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};
use switchboard_hub::Hub;
use switchboard_redis::{RedisBackplane, RedisQueues, StompQueueConfig};
use switchboard_stomp::{Broker, RedbStore, StaticUsers, StompClient, StompConfig, StompWsHandler};
use switchboard_transport::sockjs::{CloseReason, SockJs, SockJsConn, SockJsHandler};
use switchboard_transport::Registry;
use switchboard_transport::Shrink;
use tokio::sync::Notify;
use tower::ServiceExt;

/// The broker `settings` describe, on `hub`; `rules` are the
/// `[[permissions]]` (the `queue` ones apply here; `/topic` destinations are
/// checked by the hub with the `topic` ones).
/// `auth` checks tokens (in `passcode` or a `token` header) besides
/// `[stomp] users`. With `redis` (the node's backplane, `[redis]`),
/// `/queue/...` destinations live in Redis Streams and are shared by every
/// node (`RedisQueues`, on the backplane's URL, prefix and timings, with its
/// node id as the Redis consumer name); `data_dir` is then not used.
///
/// # Panics
///
/// If `data_dir` cannot be opened, or, with `redis`, outside a Tokio
/// runtime.
pub fn broker(
    hub: &Hub,
    settings: &StompSettings,
    rules: &[Rule],
    auth: &Arc<switchboard_auth::Authenticator>,
    redis: Option<&RedisBackplane>,
) -> Broker {
    let mut config = StompConfig {
        connect_timeout: Duration::from_millis(settings.connect_timeout_ms),
        max_queue_length: settings.max_queue_length,
        ..StompConfig::default()
    };
    config.session.heart_beat = switchboard_stomp::proto::HeartBeat::from_millis(
        settings.heart_beat_ms,
        settings.heart_beat_ms,
    );
    let users = settings
        .users
        .iter()
        .fold(StaticUsers::new(), |u, StompUser { login, passcode }| {
            u.user(login.clone(), passcode.clone())
        })
        .allow_anonymous(settings.allow_anonymous);
    config = config.with_authenticator(crate::auth::StompAuth {
        users,
        has_users: !settings.users.is_empty(),
        tokens: auth.clone(),
    });
    if rules.iter().any(|r| r.queue.is_some()) {
        let rules = rules.to_vec();
        config = config.with_permission(move |principal, destination, action| {
            let Some(queue) = destination.strip_prefix("/queue/") else {
                return true;
            };
            let user = (!principal.is_anonymous()).then(|| &**principal.id());
            let action = match action {
                switchboard_stomp::Action::Send => switchboard_hub::Action::Publish,
                switchboard_stomp::Action::Subscribe => switchboard_hub::Action::Subscribe,
            };
            crate::permissions::queue_allowed(&rules, user, queue, action)
        });
    }
    let data_dir = settings
        .data_dir
        .as_deref()
        .filter(|d| !d.as_os_str().is_empty());
    if let Some(bp) = redis {
        if let Some(dir) = data_dir {
            tracing::warn!(
                data_dir = %dir.display(),
                "[stomp] data_dir is not used with [redis]: /queue/ destinations live in redis"
            );
        }
        let options = StompQueueConfig {
            reclaim_idle_ms: settings.queue_reclaim_ms,
            node_id: Some(bp.node_id()),
            ..StompQueueConfig::default()
        };
        let queues = RedisQueues::new(bp.config().clone(), options)
            .unwrap_or_else(|e| panic!("[redis] stomp queues: {e}"));
        let broker = Broker::with_backend(hub.clone(), config, queues.clone());
        queues
            .start(&broker)
            .unwrap_or_else(|e| panic!("[redis] stomp queues: {e}"));
        return broker;
    }
    match data_dir {
        // The server cannot run without the store it was told to use.
        Some(dir) => RedbStore::open(dir)
            .and_then(|store| Broker::with_store(hub.clone(), config, store))
            .unwrap_or_else(|e| panic!("stomp.data_dir {}: {e}", dir.display())),
        None => Broker::new(hub.clone(), config),
    }
}

/// Mounts `/stomp`: a WebSocket upgrade of `/stomp` itself is STOMP over
/// WebSocket; everything else under it is the SockJS service.
pub fn mount(router: Router<Arc<AppState>>, state: &Arc<AppState>) -> Router<Arc<AppState>> {
    match service(state) {
        Some(service) => router.nest_service("/stomp", service),
        None => router,
    }
}

/// The router of the RabbitMQ Web-STOMP layout (`[stomp] web_stomp_listen`,
/// port 15674 there): STOMP over WebSocket at `/ws`, STOMP over SockJS at
/// `/stomp`, so client code written for RabbitMQ runs unchanged.
pub fn web_stomp_router(state: &Arc<AppState>) -> axum::Router {
    let Some(service) = service(state) else {
        return axum::Router::new();
    };
    axum::Router::new()
        .route_service("/ws", service.clone())
        .nest_service("/stomp", service)
}

/// The `/stomp` service: STOMP over WebSocket for an upgrade of its root,
/// the SockJS service for everything else.
fn service(
    state: &Arc<AppState>,
) -> Option<
    impl tower::Service<
            Request,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
            Future = impl Send,
        > + Clone
        + Send
        + Sync
        + 'static,
> {
    let broker = state.stomp.clone()?;
    let sockjs = SockJs::new(
        StompOverSockJs {
            broker: broker.clone(),
            sessions: Mutex::new(HashMap::new()),
        },
        crate::endpoints::sockjs::service_config(state, None),
        state.shutdown.clone(),
    );
    let state = state.clone();
    Some(tower::service_fn(move |req: Request| {
        let (state, broker, sockjs) = (state.clone(), broker.clone(), sockjs.clone());
        async move {
            // Under `nest_service` the root is "/"; under `route_service("/ws")`
            // the path is the whole "/ws".
            let at_root = matches!(req.uri().path(), "" | "/" | "/ws");
            if at_root && switchboard_engineio::is_websocket_upgrade(req.headers()) {
                let handler = StompWsHandler::new(&broker);
                return Ok(upgrade_with(&state, req, handler, &state.stomp_ws_options));
            }
            sockjs.oneshot(req).await
        }
    }))
}

/// Serves STOMP over TCP on `listener` until `registry` shuts down.
pub async fn serve_tcp(listener: tokio::net::TcpListener, broker: Broker, registry: Registry) {
    if let Err(e) = switchboard_stomp::serve_tcp(listener, broker, registry).await {
        tracing::error!(error = %e, "STOMP TCP listener failed");
    }
}

/// STOMP over SockJS: each SockJS message carries STOMP bytes; what the
/// connection produces between two flushes leaves as one SockJS message.
/// (SockJS carries text only: STOMP bodies that are not UTF-8 cannot cross
/// it, as with Spring's SockJS.)
struct StompOverSockJs {
    broker: Broker,
    /// Open sessions by [`SockJsConn::serial`].
    sessions: Mutex<HashMap<u64, Arc<Session>>>,
}

struct Session {
    client: Mutex<StompClient>,
    /// Wakes the session's task after input: its timers may have moved.
    wake: Notify,
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Session {
    /// Sends what the connection produced; closes the SockJS session once
    /// the STOMP session is over. Returns whether it is still open.
    fn flush(&self, conn: &SockJsConn) -> bool {
        let mut out = Vec::new();
        let closed = {
            let mut c = self.client.lock();
            c.take_output(Instant::now(), &mut out);
            c.is_closed()
        };
        if !out.is_empty() {
            let bytes = out.concat();
            let _ = conn.send_text(&String::from_utf8_lossy(&bytes));
        }
        if closed {
            conn.close(1000, "Normal closure");
        }
        !closed
    }
}

/// One session's task: deliveries from the hub and the queues, heart-beats
/// and the CONNECT timeout.
async fn run(session: Arc<Session>, conn: SockJsConn) {
    loop {
        let deadline = session.client.lock().poll_timeout();
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                None => std::future::pending().await,
            }
        };
        let deliveries = poll_fn(|cx| {
            let mut c = session.client.lock();
            c.poll_deliveries(cx);
            if c.has_output() || c.is_closed() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        });
        tokio::select! {
            () = deliveries => {}
            () = sleep => session.client.lock().handle_timeout(Instant::now()),
            () = session.wake.notified() => {}
        }
        if !session.flush(&conn) {
            return;
        }
    }
}

impl SockJsHandler for StompOverSockJs {
    fn on_open(&self, conn: SockJsConn, _req: &axum::http::request::Parts) {
        let session = Arc::new(Session {
            client: Mutex::new(StompClient::new(&self.broker, Instant::now())),
            wake: Notify::new(),
            task: Mutex::new(None),
        });
        let task = tokio::spawn(run(session.clone(), conn.clone()));
        *session.task.lock() = Some(task.abort_handle());
        self.sessions.lock().insert(conn.serial(), session);
    }

    fn on_message(&self, conn: &SockJsConn, message: String) {
        let Some(session) = self.sessions.lock().get(&conn.serial()).cloned() else {
            return;
        };
        session
            .client
            .lock()
            .receive(Instant::now(), message.as_bytes());
        session.flush(conn);
        session.wake.notify_one();
    }

    fn on_close(&self, conn: &SockJsConn, _reason: CloseReason) {
        let session = {
            let mut sessions = self.sessions.lock();
            let session = sessions.remove(&conn.serial());
            sessions.shrink_when_sparse();
            session
        };
        let Some(session) = session else {
            return;
        };
        if let Some(task) = session.task.lock().take() {
            task.abort();
        }
        // Unacked queue messages go back to their queues; subscriptions end.
        session.client.lock().shutdown();
    }
}
