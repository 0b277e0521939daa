//! `/api/...`: the HTTP API for backends (docs/api.md, described by
//! docs/openapi.json, served at `/api/openapi.json`): publish to a topic,
//! emit to Socket.IO rooms, presence, history, node info, disconnecting a
//! user. Every call but the OpenAPI document needs an API key from
//! `[auth] api_keys` (`Authorization: apikey KEY`, `Authorization: Bearer KEY`
//! or `X-API-Key: KEY`); answers and errors are JSON
//! (`{"error":{"code":..,"message":..}}` with the HTTP status).

use crate::app::AppState;
use crate::wire::{history_members_json, json_str, presence_json};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::fmt::Write as _;
use std::sync::Arc;
use switchboard_hub::{validate_topic, HubError, Payload};

/// The OpenAPI 3.1 document of this API.
pub const OPENAPI: &str = include_str!("../../../../docs/openapi.json");

/// The `/api` routes (mounted at the router's root).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/openapi.json", get(openapi))
        .route("/api/publish", post(publish))
        .route("/api/presence", get(presence))
        .route("/api/history", get(history))
        .route("/api/info", get(info))
        .route("/api/nodes", get(nodes))
        .route("/api/socketio/emit", post(socketio_emit))
        .route("/api/disconnect", post(disconnect))
}

/// A JSON error answer.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    json(
        status,
        format!(
            "{{\"error\":{{\"code\":{},\"message\":{}}}}}",
            json_str(code),
            json_str(message)
        ),
    )
}

fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn hub_error(e: HubError) -> Response {
    match e {
        HubError::InvalidTopic => error(StatusCode::BAD_REQUEST, "invalid_topic", &e.to_string()),
        HubError::Forbidden => error(StatusCode::FORBIDDEN, "forbidden", &e.to_string()),
    }
}

/// The key a request presents, from any of the accepted headers.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim());
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = auth.trim().split_once(' ')?;
    (scheme.eq_ignore_ascii_case("apikey") || scheme.eq_ignore_ascii_case("bearer"))
        .then(|| key.trim())
}

/// `Ok` when the request carries a configured API key; the error answer
/// otherwise (401 with `WWW-Authenticate`, or 403 when no key is configured).
#[allow(clippy::result_large_err)]
fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), Response> {
    if !state.auth.api_keys_configured() {
        return Err(error(
            StatusCode::FORBIDDEN,
            "api_disabled",
            "the HTTP API is disabled: no key in [auth] api_keys",
        ));
    }
    match presented_key(headers) {
        Some(key) if state.auth.check_api_key(key) => Ok(()),
        presented => {
            let message = if presented.is_some() {
                "invalid API key"
            } else {
                "API key required (Authorization: apikey KEY)"
            };
            let mut r = error(StatusCode::UNAUTHORIZED, "unauthorized", message);
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("apikey"),
            );
            Err(r)
        }
    }
}

/// Parses a JSON request body; a 400 answer when it is not the expected shape.
#[allow(clippy::result_large_err)]
fn body<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, Response> {
    serde_json::from_slice(bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, "bad_request", &e.to_string()))
}

async fn openapi() -> Response {
    json(StatusCode::OK, OPENAPI.to_owned())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody<'a> {
    topic: String,
    #[serde(borrow)]
    data: &'a RawValue,
    /// The sender name subscribers see (`from`); none by default.
    from: Option<String>,
}

/// `POST /api/publish {"topic":..,"data":<any JSON>,"from":..}` →
/// `{"topic":..,"seq":N}`. Server-side: topic permissions do not apply.
async fn publish(State(state): State<Arc<AppState>>, headers: HeaderMap, raw: Bytes) -> Response {
    if let Err(r) = authorize(&state, &headers) {
        return r;
    }
    let b: PublishBody = match body(&raw) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let payload = Payload::json_or_text(Bytes::copy_from_slice(b.data.get().as_bytes()));
    match state.hub.publish(&b.topic, payload, b.from.map(Into::into)) {
        Ok(seq) => json(
            StatusCode::OK,
            format!("{{\"topic\":{},\"seq\":{seq}}}", json_str(&b.topic)),
        ),
        Err(e) => hub_error(e),
    }
}

#[derive(Deserialize)]
struct TopicQuery {
    topic: String,
    since: Option<u64>,
}

/// `GET /api/presence?topic=T` → `{"topic":..,"presence":{"count":N,"members":[..]}}`.
async fn presence(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<TopicQuery>,
) -> Response {
    if let Err(r) = authorize(&state, &headers) {
        return r;
    }
    if let Err(e) = validate_topic(&q.topic) {
        return hub_error(e);
    }
    let p = match &state.redis {
        // No subscriber here: this node is not told about the others'.
        Some(redis) if state.hub.local_presence(&q.topic).is_none() => {
            match redis.presence(&q.topic).await {
                Ok(p) => p,
                Err(e) => {
                    return error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "unavailable",
                        &e.to_string(),
                    )
                }
            }
        }
        _ => state.hub.presence(&q.topic),
    };
    json(
        StatusCode::OK,
        format!(
            "{{\"topic\":{},\"presence\":{}}}",
            json_str(&q.topic),
            presence_json(&p)
        ),
    )
}

/// `GET /api/history?topic=T&since=N` → `{"topic":..,"complete":..,"messages":[..]}`.
async fn history(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<TopicQuery>,
) -> Response {
    if let Err(r) = authorize(&state, &headers) {
        return r;
    }
    if let Err(e) = validate_topic(&q.topic) {
        return hub_error(e);
    }
    let since = q.since.unwrap_or(0);
    let h = match &state.redis {
        // The cluster's history, whether or not this node has the topic open.
        Some(redis) if redis.shared_history() => match redis.history(&q.topic, since).await {
            Ok(h) => h,
            Err(e) => {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    &e.to_string(),
                )
            }
        },
        _ => state.hub.history(&q.topic, since),
    };
    let r = format!("{{{}}}", history_members_json(&q.topic, &h));
    json(StatusCode::OK, r)
}

/// `GET /api/info`: this node's counters (the admin page polls it).
async fn info(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(r) = authorize(&state, &headers) {
        return r;
    }
    json(StatusCode::OK, crate::metrics::info_json(&state))
}

/// `GET /api/nodes`: `{"nodes":[..]}`, this node's report and the last one
/// of every other live node (crate::nodes).
async fn nodes(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(r) = authorize(&state, &headers) {
        return r;
    }
    json(StatusCode::OK, state.nodes.json(&state))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmitBody<'a> {
    #[serde(default = "root_ns")]
    namespace: String,
    #[serde(default)]
    rooms: Vec<String>,
    #[serde(default)]
    except: Vec<String>,
    event: String,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

fn root_ns() -> String {
    "/".to_owned()
}

/// `POST /api/socketio/emit {"namespace":"/","rooms":[..],"except":[..],"event":..,"data":..}`:
/// `io.of(namespace).to(rooms).except(except).emit(event, data)` (every
/// socket of the namespace when `rooms` is empty).
async fn socketio_emit(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    if let Err(r) = authorize(&state, &headers) {
        return r;
    }
    let b: EmitBody = match body(&raw) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if b.event.is_empty() || switchboard_socketio_proto::is_reserved_event(&b.event) {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "event must be a non-empty name that Socket.IO does not reserve",
        );
    }
    let Some(io) = state.socket_io.get() else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            "Socket.IO is not mounted",
        );
    };
    let Some(ns) = io.get_ns(&b.namespace) else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no namespace {}", b.namespace),
        );
    };
    let data: switchboard_socketio::Value = match b.data {
        Some(d) => match serde_json::from_str(d.get()) {
            Ok(v) => v,
            Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", &e.to_string()),
        },
        None => switchboard_socketio::Value::Null,
    };
    let op = ns.to(b.rooms).except(b.except);
    match op.emit(&b.event, data) {
        Ok(()) => json(StatusCode::OK, "{\"ok\":true}".to_owned()),
        Err(e) => error(StatusCode::BAD_REQUEST, "bad_request", &e.to_string()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DisconnectBody {
    user: String,
}

/// `POST /api/disconnect {"user":..}` → `{"user":..,"disconnected":N}`: closes
/// every connection authenticated as `user`, whatever its protocol, on every
/// node (`N` counts this node's).
async fn disconnect(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    if let Err(r) = authorize(&state, &headers) {
        return r;
    }
    let b: DisconnectBody = match body(&raw) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let n = state.hub.disconnect_user(&b.user);
    // The other nodes (with a backplane) do the same with their connections.
    crate::nodes::broadcast_disconnect(&state, &b.user);
    let mut r = String::new();
    let _ = write!(r, "{{\"user\":{},\"disconnected\":{n}}}", json_str(&b.user));
    json(StatusCode::OK, r)
}
