//! Turns an HTTP request into a WebSocket connection: the handshake verdict
//! from the sans-IO core becomes either an HTTP error (status + one-line reason)
//! or a 101 response, and the upgraded socket is handed to the transport driver.

use crate::app::AppState;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use hyper_util::rt::TokioIo;
use switchboard_transport::{drive, WsHandler};
use switchboard_websocket::handshake::server::{accept, ServerOptions};
use switchboard_websocket::{Config as WsConfig, Connection, Role};

/// Answers `req` with an HTTP error or a 101, and on success runs `make_handler`'s
/// handler on the upgraded connection in a task of its own.
pub fn upgrade<H: WsHandler>(state: &AppState, req: Request, handler: H) -> Response {
    upgrade_with(state, req, handler, &state.ws_options)
}

/// [`upgrade`] with other handshake options (e.g. the subprotocols of STOMP).
pub fn upgrade_with<H: WsHandler>(
    state: &AppState,
    mut req: Request,
    handler: H,
    options: &ServerOptions,
) -> Response {
    let accepted = match accept(req.method(), req.version(), req.headers(), options) {
        Ok(a) => a,
        Err(e) => {
            let mut resp = text_response(e.status, e.reason);
            resp.headers_mut().extend(e.extra_headers());
            return resp;
        }
    };
    let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return text_response(
            StatusCode::UPGRADE_REQUIRED,
            "connection cannot be upgraded",
        );
    };
    let config = WsConfig {
        max_message_size: state.config.websocket.max_message_size,
        max_frame_size: state.config.websocket.max_message_size,
        deflate: accepted.deflate.clone(),
    };
    let driver_config = state.driver_config.clone();
    let shutdown = state.shutdown.clone();
    // A short task waits for hyper to hand over the socket, then spawns the
    // connection's long-lived task: the driver alone, so nothing else sits in
    // every idle connection's memory.
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => return tracing::debug!(error = %e, "websocket upgrade failed"),
        };
        let mut conn = Connection::new(Role::Server, config);
        let mut handler = handler;
        // Served by our accept loop, the socket is a plain TcpStream: drive it
        // directly (no boxed I/O object, no rewind buffer). Behind another
        // server (a Rust app's own `axum::serve`), drive whatever it is.
        match switchboard_transport::upgraded_tcp(upgraded) {
            Ok((io, read_buf)) => {
                if !read_buf.is_empty() {
                    // Frames the client sent right behind its handshake.
                    let mut early = read_buf.to_vec();
                    let _ = conn.receive(&mut early, |ev, w| handler.on_event(ev, w));
                }
                // Even empty, it pins hyper's whole read buffer: let it go now.
                drop(read_buf);
                spawn_driver(drive(io, conn, handler, driver_config, &shutdown));
            }
            Err(upgraded) => spawn_driver(drive(
                TokioIo::new(upgraded),
                conn,
                handler,
                driver_config,
                &shutdown,
            )),
        }
    });
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    resp.headers_mut().extend(accepted.response_headers());
    resp
}

fn spawn_driver<F: std::future::Future<Output = ()> + Send + 'static>(driver: F) {
    tracing::trace!(bytes = std::mem::size_of::<F>(), "websocket task size");
    tokio::spawn(driver);
}

/// A plain-text response whose body is `reason` and a newline.
pub fn text_response(status: StatusCode, reason: &str) -> Response {
    let mut resp = Response::new(Body::from(format!("{reason}\n")));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// The answer to an upgrade refused for its credentials (401 with
/// `WWW-Authenticate: Bearer`) or its display name (400), with the reason.
pub fn refused(refusal: &crate::auth::Refusal) -> Response {
    match refusal {
        crate::auth::Refusal::Auth(_) => {
            let mut r = text_response(StatusCode::UNAUTHORIZED, refusal.reason());
            r.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
            r
        }
        crate::auth::Refusal::BadName(_) => {
            text_response(StatusCode::BAD_REQUEST, refusal.reason())
        }
    }
}
