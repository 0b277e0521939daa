//! [`SockJs`]: one service — request routing, the static answers (info,
//! iframe, greeting, CORS preflight), `xhr_send` / `jsonp_send`, the
//! session map, event delivery and the per-session task.

use crate::tables::Shrink;
use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::SystemTime;

use axum::body::Body;
use http::{header, Method, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use parking_lot::Mutex;
use switchboard_sockjs::{
    parse_jsonp_send, parse_xhr_send, response, Event, IframePage, ReceiverKind, Route, Session,
    SockJsError, Transport,
};
use switchboard_websocket::handshake::ServerOptions;

use super::config::SockJsConfig;
use super::conn::{now, SockJsConn};
use super::{receiver, websocket, SockJsHandler, SHUTTING_DOWN};
use crate::registry::Registry;

const SHARDS: usize = 16;

/// A SockJS service: one per prefix (e.g. `/echo`). Cheap to clone.
///
/// ```no_run
/// use switchboard_transport::sockjs::{CloseReason, SockJs, SockJsConfig, SockJsConn, SockJsHandler};
/// use switchboard_transport::Registry;
///
/// struct Echo;
/// impl SockJsHandler for Echo {
///     fn on_open(&self, _conn: SockJsConn, _req: &http::request::Parts) {}
///     fn on_message(&self, conn: &SockJsConn, message: String) {
///         let _ = conn.send_text(&message);
///     }
///     fn on_close(&self, _conn: &SockJsConn, _reason: CloseReason) {}
/// }
///
/// let echo = SockJs::new(Echo, SockJsConfig::default(), Registry::new());
/// // The prefix is stripped by `nest_service`: the service sees `/info`,
/// // `/000/abc/xhr_streaming`, ...
/// let app: axum::Router = axum::Router::new().nest_service("/echo", echo);
/// # drop(app);
/// ```
pub struct SockJs<H: SockJsHandler> {
    pub(crate) shared: Arc<Shared<H>>,
}

impl<H: SockJsHandler> Clone for SockJs<H> {
    fn clone(&self) -> Self {
        SockJs {
            shared: self.shared.clone(),
        }
    }
}

/// A [`SockJs`] is a tower `Service`, so it mounts in an axum router as
/// is: `Router::new().nest_service("/echo", sockjs)`.
impl<H, B> tower_service::Service<http::Request<B>> for SockJs<H>
where
    H: SockJsHandler,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    type Response = Response<Body>;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Response<Body>, Self::Error>> + Send>,
    >;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(req).await) })
    }
}

pub(crate) struct Shared<H> {
    pub(crate) handler: H,
    pub(crate) config: SockJsConfig,
    pub(crate) registry: Registry,
    pub(crate) ws_options: ServerOptions,
    iframe: IframePage,
    sessions: Sessions,
    entropy: (RandomState, AtomicU64),
}

/// Session id → session, sharded. `websocket`-transport sessions are not
/// in it.
struct Sessions {
    hasher: RandomState,
    shards: [Mutex<HashMap<Box<str>, SockJsConn>>; SHARDS],
    count: AtomicUsize,
}

impl Sessions {
    fn shard(&self, id: &str) -> &Mutex<HashMap<Box<str>, SockJsConn>> {
        &self.shards[self.hasher.hash_one(id) as usize % SHARDS]
    }

    fn get(&self, id: &str) -> Option<SockJsConn> {
        self.shard(id).lock().get(id).cloned()
    }

    /// The session `id`, created with `make` if there is none; true when
    /// created.
    fn get_or_insert(&self, id: &str, make: impl FnOnce() -> SockJsConn) -> (SockJsConn, bool) {
        let mut shard = self.shard(id).lock();
        if let Some(conn) = shard.get(id) {
            return (conn.clone(), false);
        }
        let conn = make();
        shard.insert(id.into(), conn.clone());
        self.count.fetch_add(1, Ordering::AcqRel);
        (conn, true)
    }

    fn remove(&self, conn: &SockJsConn) {
        let mut shard = self.shard(conn.id()).lock();
        if shard.get(conn.id()).is_some_and(|c| c.ptr_eq(conn)) {
            shard.remove(conn.id());
            shard.shrink_when_sparse();
            self.count.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl<H: SockJsHandler> SockJs<H> {
    /// A service delivering sessions to `handler`; `registry` is the
    /// server's (its `trigger()` closes every session with
    /// [`SHUTTING_DOWN`]).
    pub fn new(handler: H, config: SockJsConfig, registry: Registry) -> Self {
        let ws_options = ServerOptions {
            deflate: config.per_message_deflate.clone(),
            ..ServerOptions::default()
        };
        let iframe = IframePage::new(&config.service.client_library_url);
        SockJs {
            shared: Arc::new(Shared {
                handler,
                config,
                registry,
                ws_options,
                iframe,
                sessions: Sessions {
                    hasher: RandomState::new(),
                    shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
                    count: AtomicUsize::new(0),
                },
                entropy: (RandomState::new(), AtomicU64::new(0)),
            }),
        }
    }

    /// The handler given to [`SockJs::new`].
    pub fn handler(&self) -> &H {
        &self.shared.handler
    }

    /// The service's options.
    pub fn config(&self) -> &SockJsConfig {
        &self.shared.config
    }

    /// Number of HTTP-transport sessions in the map (a closed session
    /// leaves it before its `on_close`; `websocket` sessions are not
    /// counted).
    pub fn session_count(&self) -> usize {
        self.shared.sessions.count.load(Ordering::Acquire)
    }

    /// The HTTP-transport session with this id.
    pub fn session(&self, id: &str) -> Option<SockJsConn> {
        self.shared.sessions.get(id)
    }

    /// Serves one request of this service. The URI path is the part after
    /// the service prefix (`/info`, `/000/abc/xhr`, `/` or empty for the
    /// greeting); the query is read from the URI too. A `websocket`
    /// request must come from hyper (e.g. through axum) so that it carries
    /// hyper's `OnUpgrade`.
    pub async fn handle<B>(&self, req: http::Request<B>) -> Response<Body>
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let (mut parts, body) = req.into_parts();
        let shared = &self.shared;
        let service = &shared.config.service;
        let uri = parts.uri.clone();
        let route = Route::parse(uri.path());
        if let Err(e) = route.check_method(&parts.method, service) {
            return shared.error(e, &parts);
        }
        if parts.method == Method::OPTIONS {
            let r = response::options(&route, &parts.headers, service, SystemTime::now());
            return convert(r);
        }
        match route {
            Route::Greeting => convert(response::greeting()),
            Route::Info => {
                let (hasher, counter) = &shared.entropy;
                let entropy = hasher.hash_one(counter.fetch_add(1, Ordering::Relaxed)) as u32;
                convert(response::info(&parts.headers, service, entropy))
            }
            Route::Iframe => convert(shared.iframe.respond(&parts.headers, SystemTime::now())),
            Route::RawWebSocket => websocket::open(shared, &mut parts, "", true),
            Route::NotFound => shared.error(SockJsError::NotFound, &parts),
            Route::Session {
                session_id,
                transport,
                ..
            } => match transport {
                Transport::XhrSend | Transport::JsonpSend => {
                    self.send(&parts, session_id, transport, body).await
                }
                Transport::WebSocket => websocket::open(shared, &mut parts, session_id, false),
                _ => match ReceiverKind::for_transport(transport, uri.query()) {
                    Ok(Some(kind)) => self.receive(&parts, session_id, kind),
                    Ok(None) => shared.error(SockJsError::NotFound, &parts),
                    Err(e) => shared.error(e, &parts),
                },
            },
        }
    }

    /// `xhr_send` / `jsonp_send`: messages into an existing session.
    async fn send<B>(
        &self,
        parts: &http::request::Parts,
        session_id: &str,
        transport: Transport,
        body: B,
    ) -> Response<Body>
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let shared = &self.shared;
        let Some(conn) = shared.sessions.get(session_id) else {
            return shared.error(SockJsError::SessionNotFound, parts);
        };
        let limit = shared.config.max_message_size;
        let data = match Limited::new(body, limit).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) => {
                let too_large = e.is::<http_body_util::LengthLimitError>();
                tracing::debug!(session = session_id, error = %e, "sockjs send body failed");
                let status = if too_large {
                    StatusCode::PAYLOAD_TOO_LARGE
                } else {
                    StatusCode::BAD_REQUEST
                };
                let mut resp = Response::new(Body::empty());
                *resp.status_mut() = status;
                return resp;
            }
        };
        let parsed = if transport == Transport::XhrSend {
            parse_xhr_send(&data)
        } else {
            let content_type = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok());
            parse_jsonp_send(content_type, &data)
        };
        let messages = match parsed {
            Ok(m) => m,
            Err(e) => return shared.error(e.into(), parts),
        };
        let events = {
            let mut st = conn.inner.state.lock();
            st.session.handle_messages(messages);
            st.after_input(&conn.inner)
        };
        if events {
            deliver(shared, &conn);
        }
        let service = &shared.config.service;
        convert(if transport == Transport::XhrSend {
            response::xhr_send_ok(&parts.headers, service)
        } else {
            response::jsonp_send_ok(&parts.headers, service)
        })
    }

    /// A receiving request: finds or creates the session and attaches.
    fn receive(
        &self,
        parts: &http::request::Parts,
        session_id: &str,
        kind: ReceiverKind,
    ) -> Response<Body> {
        let shared = &self.shared;
        let service = &shared.config.service;
        let head = response::transport(&kind, &parts.headers, service);
        let existing = shared.sessions.get(session_id);
        if existing.is_none() && shared.registry.is_triggered() {
            let mut resp = Response::new(Body::empty());
            *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            return resp;
        }
        let (conn, created) = match existing {
            Some(conn) => (conn, false),
            None => shared.sessions.get_or_insert(session_id, || {
                SockJsConn::new(session_id, Session::new(now(), service))
            }),
        };
        let (attached, events) = {
            let mut st = conn.inner.state.lock();
            let attached = st.session.attach(now(), kind);
            if attached.flow == switchboard_sockjs::Flow::Continue {
                st.receiver = Some((attached.id, None));
            }
            (attached, st.after_input(&conn.inner))
        };
        if created {
            open_session(shared, &conn, parts);
        } else if events {
            deliver(shared, &conn);
        }
        let mut resp = Response::new(receiver::body(conn, head.body, attached));
        *resp.status_mut() = head.status;
        *resp.headers_mut() = head.headers;
        resp
    }
}

/// A new session (its first receiver attached): the session task,
/// `on_open`, then whatever happened meanwhile.
pub(crate) fn open_session<H: SockJsHandler>(
    shared: &Arc<Shared<H>>,
    conn: &SockJsConn,
    parts: &http::request::Parts,
) {
    tokio::spawn(session_task(shared.clone(), conn.clone()));
    {
        let mut st = conn.inner.state.lock();
        if matches!(st.events.front(), Some(Event::Open)) {
            st.events.pop_front();
            if st.events.is_empty() {
                // Usually alone: no room kept for later events, here or
                // in the core (which queued it).
                st.events = VecDeque::new();
                st.session.release_idle_buffers();
            }
        }
    }
    shared.handler.on_open(conn.clone(), parts);
    deliver_loop(shared, conn);
}

/// Delivers the session's queued events unless someone else is.
pub(crate) fn deliver<H: SockJsHandler>(shared: &Shared<H>, conn: &SockJsConn) {
    {
        let mut st = conn.inner.state.lock();
        if st.delivering || st.events.is_empty() {
            return;
        }
        st.delivering = true;
    }
    deliver_loop(shared, conn);
}

/// Resets `delivering` if a handler panics.
struct Delivering<'a>(&'a SockJsConn);

impl Drop for Delivering<'_> {
    fn drop(&mut self) {
        self.0.inner.state.lock().delivering = false;
        self.0.inner.task.notify_one();
    }
}

/// Delivers events until the queue is empty; the caller set `delivering`.
fn deliver_loop<H: SockJsHandler>(shared: &Shared<H>, conn: &SockJsConn) {
    let panic_guard = Delivering(conn);
    loop {
        let batch = {
            let mut st = conn.inner.state.lock();
            if st.events.is_empty() {
                st.delivering = false;
                let closed = st.session.is_closed();
                drop(st);
                std::mem::forget(panic_guard);
                if closed {
                    // The session task ends once everything was delivered.
                    conn.inner.task.notify_one();
                }
                return;
            }
            std::mem::take(&mut st.events)
        };
        for event in batch {
            match event {
                // on_open was called by the request that opened it.
                Event::Open => {}
                Event::Message(m) => shared.handler.on_message(conn, m),
                Event::Closed(reason) => {
                    shared.sessions.remove(conn);
                    shared.handler.on_close(conn, reason);
                }
            }
        }
    }
}

/// The session task: timers, deferred deliveries, shutdown, registry slot.
/// One per session, idle or not: what it keeps across its wait is kept
/// small (a tokio task is its future rounded up to 128 bytes plus a
/// header; a size test in `tests.rs`).
pub(super) async fn session_task<H: SockJsHandler>(shared: Arc<Shared<H>>, conn: SockJsConn) {
    let guard = shared.registry.register();
    let mut shutdown_seen = false;
    loop {
        let deadline = {
            let mut st = conn.inner.state.lock();
            let t = now();
            let fired = st.session.poll_timeout().is_some_and(|d| d <= t);
            if fired {
                st.session.handle_timeout(t);
            }
            if shutdown_seen && !st.session.is_closed() && !st.has_receiver() {
                // Nobody to hand the close frame to (or it was handed
                // out): end now rather than after the disconnect delay.
                st.session
                    .handle_timeout(t + shared.config.service.disconnect_delay);
            }
            st.after_input(&conn.inner);
            if fired {
                // Once a heartbeat: an idle session keeps no queue room (this
                // side's queue keeps none: delivery takes it whole).
                st.session.release_idle_buffers();
            }
            st.armed = st.session.poll_timeout();
            st.armed
        };
        deliver(&shared, &conn);
        {
            let st = conn.inner.state.lock();
            if st.session.is_closed() && st.events.is_empty() && !st.delivering {
                break;
            }
        }
        let sleep = crate::registry::sleep_until(deadline);
        let guard = &guard;
        let shutdown = poll_fn(move |cx| {
            if guard.poll_shutdown(cx) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        });
        tokio::select! {
            _ = conn.inner.task.notified() => {}
            _ = sleep => {}
            _ = shutdown, if !shutdown_seen => {
                shutdown_seen = true;
                conn.close(SHUTTING_DOWN.code, SHUTTING_DOWN.reason.clone());
            }
        }
    }
    // Defensive: a closed session is removed when its `Closed` event is
    // delivered; this only matters after a panic.
    shared.sessions.remove(&conn);
    drop(guard);
}

// ------------------------------------------------------------- responses

/// A core [`response::Response`] as an axum response.
pub(crate) fn convert(r: response::Response) -> Response<Body> {
    let mut resp = Response::new(Body::from(r.body));
    *resp.status_mut() = r.status;
    *resp.headers_mut() = r.headers;
    resp
}

impl<H> Shared<H> {
    /// A refusal as sockjs-node answers it.
    pub(crate) fn error(&self, e: SockJsError, parts: &http::request::Parts) -> Response<Body> {
        convert(response::error(e, &parts.headers, &self.config.service))
    }
}
