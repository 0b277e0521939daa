//! The chat page (`/`), the admin page (`/admin`) and their assets
//! (`/assets/{file}`), embedded in the binary at build time from
//! `crates/switchboard-server/assets/`, and the client libraries they load (`/assets/vendor/{file}`, from npm by lockfile).
//! The Socket.IO client is also served where Node's server serves it
//! (`/socket.io/socket.io.js`), so pages written for Node work unchanged.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/assets.rs"));
}

/// Whether `name` (e.g. `vendor/sockjs.min.js`) is embedded.
pub(crate) fn has_asset(name: &str) -> bool {
    find(name).is_some()
}

fn find(name: &str) -> Option<&'static [u8]> {
    embedded::ASSETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, b)| *b)
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

fn serve(name: &str) -> Response {
    match find(name) {
        Some(body) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(content_type(name)),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
            body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}

/// `GET /admin`: the admin page (nodes, connections, topics, throughput;
/// it reads `/api/nodes` with an API key).
pub async fn admin() -> Response {
    serve("admin.html")
}

/// `GET /`: the chat page.
pub async fn index() -> Response {
    serve("index.html")
}

/// `GET /assets/{file}`.
pub async fn asset(Path(file): Path<String>) -> Response {
    serve(&file)
}

/// `GET /assets/vendor/{file}`: the browser client libraries (npm, by lockfile).
pub async fn vendor(Path(file): Path<String>) -> Response {
    serve(&format!("vendor/{file}"))
}

/// `GET /socket.io/socket.io.js` (and `.min.js`): the `socket.io-client`
/// browser bundle, as Node's `serveClient` does.
pub async fn socket_io_client() -> Response {
    serve("vendor/socket.io.min.js")
}
