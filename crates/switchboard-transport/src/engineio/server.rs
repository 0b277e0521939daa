//! [`EngineIo`]: one endpoint — request routing, handshakes, the session
//! map, event delivery and the per-session task.

use crate::tables::Shrink;
use std::collections::HashMap;
use std::future::poll_fn;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;

use axum::body::Body;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};
use parking_lot::Mutex;
use switchboard_engineio::{
    route_parts, EngineError, Event, PollOutcome, Route, Session, SidGenerator, TransportKind,
    POLL_CONTENT_TYPE,
};
use switchboard_websocket::handshake::ServerOptions;

use super::config::EngineIoConfig;
use super::socket::{now, EngineSocket};
use super::{polling, websocket, EngineHandler};
use crate::registry::Registry;

const SHARDS: usize = 16;

/// The Engine.IO endpoint: one per mount path (e.g. `/socket.io/`). Cheap
/// to clone.
pub struct EngineIo<H: EngineHandler> {
    pub(crate) shared: Arc<Shared<H>>,
}

/// An [`EngineIo`] is a tower `Service`, so it mounts in an axum router
/// as is: `Router::new().route_service("/socket.io/", engine)`.
impl<H, B> tower_service::Service<http::Request<B>> for EngineIo<H>
where
    H: EngineHandler,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: std::fmt::Display,
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

impl<H: EngineHandler> Clone for EngineIo<H> {
    fn clone(&self) -> Self {
        EngineIo {
            shared: self.shared.clone(),
        }
    }
}

pub(crate) struct Shared<H> {
    pub(crate) handler: H,
    pub(crate) config: EngineIoConfig,
    /// `config.engine`, shared by every session.
    pub(crate) engine: Arc<switchboard_engineio::Config>,
    pub(crate) registry: Registry,
    pub(crate) ws_options: ServerOptions,
    sessions: Sessions,
    sids: Mutex<SidGenerator>,
}

/// sid → session, sharded.
struct Sessions {
    hasher: RandomState,
    /// Keyed by the session's own copy of its sid.
    shards: [Mutex<HashMap<Arc<str>, EngineSocket>>; SHARDS],
    count: AtomicUsize,
}

impl Sessions {
    fn shard(&self, sid: &str) -> &Mutex<HashMap<Arc<str>, EngineSocket>> {
        &self.shards[self.hasher.hash_one(sid) as usize % SHARDS]
    }

    fn get(&self, sid: &str) -> Option<EngineSocket> {
        self.shard(sid).lock().get(sid).cloned()
    }

    fn insert(&self, socket: EngineSocket) {
        let sid = socket.inner.sid.clone();
        if self.shard(&sid).lock().insert(sid, socket).is_none() {
            self.count.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn remove(&self, socket: &EngineSocket) {
        let mut shard = self.shard(socket.sid()).lock();
        if shard.get(socket.sid()).is_some_and(|s| s.ptr_eq(socket)) {
            shard.remove(socket.sid());
            shard.shrink_when_sparse();
            self.count.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl<H> Shared<H> {
    pub(crate) fn sids_next(&self) -> String {
        self.sids.lock().next_sid()
    }
}

impl<H: EngineHandler> EngineIo<H> {
    /// An endpoint delivering sessions to `handler`; `registry` is the
    /// server's (its `trigger()` closes every session).
    pub fn new(handler: H, config: EngineIoConfig, registry: Registry) -> Self {
        let ws_options = ServerOptions {
            deflate: config.per_message_deflate.clone(),
            ..ServerOptions::default()
        };
        EngineIo {
            shared: Arc::new(Shared {
                handler,
                engine: Arc::new(config.engine.clone()),
                config,
                registry,
                ws_options,
                sessions: Sessions {
                    hasher: RandomState::new(),
                    shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
                    count: AtomicUsize::new(0),
                },
                sids: Mutex::new(SidGenerator::new()),
            }),
        }
    }

    /// The handler given to [`EngineIo::new`].
    pub fn handler(&self) -> &H {
        &self.shared.handler
    }

    /// The endpoint's options.
    pub fn config(&self) -> &EngineIoConfig {
        &self.shared.config
    }

    /// Number of open sessions (closed ones are removed before their
    /// `on_close`).
    pub fn session_count(&self) -> usize {
        self.shared.sessions.count.load(Ordering::Acquire)
    }

    /// The open session with this id.
    pub fn socket(&self, sid: &str) -> Option<EngineSocket> {
        self.shared.sessions.get(sid)
    }

    /// Serves one HTTP request of this endpoint: polling GET/POST, CORS
    /// preflight, WebSocket upgrade GET (the request must come from hyper,
    /// e.g. through axum, so that it carries hyper's `OnUpgrade`). The
    /// query is read from the URI; the path is not looked at.
    pub async fn handle<B>(&self, req: http::Request<B>) -> Response<Body>
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: std::fmt::Display,
    {
        let (mut parts, body) = req.into_parts();
        let shared = &self.shared;
        let origin = parts.headers.get(header::ORIGIN).cloned();
        let cors = &shared.config.cors;
        let upgrade = switchboard_engineio::is_websocket_upgrade(&parts.headers);
        let mut resp = if parts.method == Method::OPTIONS && *cors != super::Cors::None {
            let mut resp = empty(StatusCode::NO_CONTENT);
            cors.apply_preflight(&parts.headers, resp.headers_mut());
            resp
        } else {
            match route_parts(&parts, &shared.config.engine) {
                Err(e) => error_response(&e, upgrade),
                Ok(Route::Handshake { transport, b64 }) => {
                    match shared.config.allow_request.as_ref().map(|f| f(&parts)) {
                        Some(Err(message)) => {
                            error_response(&EngineError::forbidden(Some(message)), upgrade)
                        }
                        _ => match transport {
                            TransportKind::Polling => self.handshake_polling(&parts),
                            TransportKind::WebSocket => {
                                websocket::handshake(shared, &mut parts, b64)
                            }
                        },
                    }
                }
                Ok(Route::Session {
                    sid,
                    transport,
                    b64,
                }) => match shared.sessions.get(&sid) {
                    None => error_response(&EngineError::unknown_sid(), upgrade),
                    Some(socket) => {
                        let checked = socket.inner.state.lock().session.check_request(
                            &parts.method,
                            transport,
                            upgrade,
                        );
                        match checked {
                            Err(e) => error_response(&e, upgrade),
                            Ok(()) if upgrade => {
                                websocket::upgrade(shared, &socket, &mut parts, b64)
                            }
                            Ok(()) if parts.method == Method::POST => {
                                polling::post(shared, &socket, &parts, body).await
                            }
                            Ok(()) => polling::get(shared, &socket).await,
                        }
                    }
                },
            }
        };
        cors.apply(origin.as_ref(), resp.headers_mut());
        resp
    }

    fn handshake_polling(&self, parts: &http::request::Parts) -> Response<Body> {
        let shared = &self.shared;
        let sid = shared.sids_next();
        let session = Session::new_polling(&sid, shared.engine.clone(), now());
        let socket = EngineSocket::new(session, sid.into(), self.shared.config.max_buffered_bytes);
        let body = {
            let mut st = socket.inner.state.lock();
            let outcome = st.session.poll_request(now());
            st.flush(&socket.inner);
            match outcome {
                Ok(PollOutcome::Respond(body)) => body,
                // A fresh session always answers its handshake GET.
                _ => Bytes::new(),
            }
        };
        let resp = poll_response(body);
        let resp = set_cookie(shared, resp, socket.sid());
        open_session(shared, socket, parts, true);
        resp
    }
}

/// Registers a new session (its first flush done): map, session task,
/// `on_open`, then whatever happened meanwhile.
/// `run_task`: the session gets its own session task; `false` for a
/// session born on a WebSocket, whose connection's task runs it
/// ([`session_turn`]).
pub(crate) fn open_session<H: EngineHandler>(
    shared: &Arc<Shared<H>>,
    socket: EngineSocket,
    parts: &http::request::Parts,
    run_task: bool,
) {
    shared.sessions.insert(socket.clone());
    if run_task {
        tokio::spawn(session_task(shared.clone(), socket.clone()));
    }
    let state = shared.handler.on_open(socket.clone(), parts);
    socket.inner.state.lock().handler = Some(state);
    deliver_loop(shared, &socket);
}

/// Delivers the session's queued events unless someone else is.
pub(crate) fn deliver<H: EngineHandler>(shared: &Shared<H>, socket: &EngineSocket) {
    {
        let mut st = socket.inner.state.lock();
        if st.delivering || !st.session.has_events() {
            return;
        }
        st.delivering = true;
    }
    deliver_loop(shared, socket);
}

/// Resets `delivering` if a handler panics.
struct Delivering<'a>(&'a EngineSocket);

impl Drop for Delivering<'_> {
    fn drop(&mut self) {
        self.0.inner.state.lock().delivering = false;
        self.0.inner.task.notify_one();
    }
}

/// Delivers events until the queue is empty; the caller set `delivering`.
fn deliver_loop<H: EngineHandler>(shared: &Shared<H>, socket: &EngineSocket) {
    let panic_guard = Delivering(socket);
    // The handler's state for this session, taken once per loop.
    let mut state: Option<Arc<H::Session>> = None;
    loop {
        let batch = {
            let mut st = socket.inner.state.lock();
            if !st.session.has_events() {
                st.delivering = false;
                let closed = st.session.is_closed();
                drop(st);
                std::mem::forget(panic_guard);
                if closed {
                    // The session task ends once everything was delivered.
                    socket.inner.task.notify_one();
                }
                return;
            }
            if state.is_none() {
                state = st.handler.clone().and_then(|h| h.downcast().ok());
            }
            st.session.take_events()
        };
        // Set before anything is delivered (`open_session`).
        let Some(state) = state.as_ref() else {
            tracing::error!(
                sid = socket.sid(),
                "events for a session without handler state"
            );
            continue;
        };
        for event in batch {
            match event {
                Event::Message(m) => shared.handler.on_message(state, socket, m),
                Event::Closed(reason) => {
                    shared.sessions.remove(socket);
                    shared.handler.on_close(state, socket, reason);
                    socket.inner.state.lock().handler = None;
                }
            }
        }
    }
}

/// One turn of what the task running a session does each time its
/// wake-up flag is set: the core's timer when due, the deferred
/// deliveries, the attached work. Returns the
/// core's next deadline (the task sleeps until it) and whether the session
/// is over (closed, everything delivered: the task may end).
pub(crate) fn session_turn<H: EngineHandler>(
    shared: &Shared<H>,
    socket: &EngineSocket,
) -> (Option<std::time::Instant>, bool) {
    let deadline = {
        let mut st = socket.inner.state.lock();
        if st.session.poll_timeout().is_some_and(|d| d <= now()) {
            st.session.handle_timeout(now());
            st.flush(&socket.inner);
        }
        let deadline = st.session.poll_timeout();
        st.arm(deadline);
        deadline
    };
    deliver(shared, socket);
    socket.poll_work();
    let st = socket.inner.state.lock();
    let over = st.session.is_closed() && !st.session.has_events() && !st.delivering;
    (deadline, over)
}

/// What the task running a session does when it ends.
pub(crate) fn session_ended<H: EngineHandler>(shared: &Shared<H>, socket: &EngineSocket) {
    // Defensive: a session closed by the core is always removed by the
    // delivery of its `Closed` event; this only matters after a panic.
    shared.sessions.remove(socket);
    socket.drop_task_state();
}

/// The session task of a session born on polling: timers, deferred
/// deliveries, attached work, shutdown, registry slot, until the session
/// ends or is upgraded (a session on a WebSocket is run by its connection's
/// task instead). What it keeps
/// across its wait is kept small (a tokio task is its future rounded up to
/// 128 bytes plus a header; a size test in `tests.rs`).
pub(super) async fn session_task<H: EngineHandler>(shared: Arc<Shared<H>>, socket: EngineSocket) {
    let guard = shared.registry.register();
    let mut shutdown_seen = false;
    loop {
        {
            let st = socket.inner.state.lock();
            if st.handed_off {
                // Upgraded: the WebSocket connection's task runs the
                // session now. It is woken to register its waker for the
                // session's wake-up in place of this task's, and to take
                // a turn (the flag this task may have taken).
                socket.inner.task.notify_one();
                if let Some(out) = &st.ws {
                    out.wake();
                }
                return;
            }
        }
        let (deadline, over) = session_turn(&shared, &socket);
        if over {
            break;
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
        let socket_ref = &socket;
        tokio::select! {
            _ = poll_fn(|cx| socket_ref.inner.task.poll_notified(cx)) => {}
            _ = sleep => {}
            _ = shutdown, if !shutdown_seen => {
                shutdown_seen = true;
                socket.close();
            }
        }
    }
    session_ended(&shared, &socket);
    drop(guard);
}

// ------------------------------------------------------------- responses

pub(crate) fn empty(status: StatusCode) -> Response<Body> {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = status;
    resp
}

fn no_store(resp: &mut Response<Body>) {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// 200 with a polling GET body.
pub(crate) fn poll_response(body: Bytes) -> Response<Body> {
    let mut resp = Response::new(Body::from(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(POLL_CONTENT_TYPE),
    );
    no_store(&mut resp);
    resp
}

/// 200 `ok` to a polling POST.
pub(crate) fn post_ok() -> Response<Body> {
    let mut resp = Response::new(Body::from(switchboard_engineio::POST_BODY));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(switchboard_engineio::POST_CONTENT_TYPE),
    );
    no_store(&mut resp);
    resp
}

/// An [`EngineError`] as Node answers it: `abortRequest` (status, JSON body
/// for coded errors) or, for WebSocket upgrade requests, `abortUpgrade`
/// (400, `text/html`, the bare message, `Connection: close`).
pub(crate) fn error_response(e: &EngineError, upgrade: bool) -> Response<Body> {
    if upgrade {
        let mut resp = Response::new(Body::from(e.upgrade_body().to_owned()));
        *resp.status_mut() = StatusCode::BAD_REQUEST;
        let h = resp.headers_mut();
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        return resp;
    }
    let mut resp = Response::new(Body::from(e.body()));
    *resp.status_mut() = e.status;
    if let Some(ct) = e.content_type() {
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    resp
}

/// Adds `Set-Cookie: NAME=sid; Path=/; HttpOnly; SameSite=Lax` when the
/// endpoint has a cookie name.
pub(crate) fn set_cookie<H>(
    shared: &Shared<H>,
    mut resp: Response<Body>,
    sid: &str,
) -> Response<Body> {
    if let Some(name) = &shared.config.cookie {
        let cookie = format!("{name}={sid}; Path=/; HttpOnly; SameSite=Lax");
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}
