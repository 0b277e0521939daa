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
use switchboard_websocket::handshake::server::accept;
use switchboard_websocket::{Config as WsConfig, Connection, Role};

/// Answers `req` with an HTTP error or a 101, and on success runs `make_handler`'s
/// handler on the upgraded connection in a task of its own.
pub fn upgrade<H: WsHandler>(state: &AppState, mut req: Request, handler: H) -> Response {
    let accepted = match accept(req.method(), req.version(), req.headers(), &state.ws_options) {
        Ok(a) => a,
        Err(e) => {
            let mut resp = text_response(e.status, e.reason);
            resp.headers_mut().extend(e.extra_headers());
            return resp;
        }
    };
    let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return text_response(StatusCode::UPGRADE_REQUIRED, "connection cannot be upgraded");
    };
    let config = WsConfig {
        max_message_size: state.config.websocket.max_message_size,
        max_frame_size: state.config.websocket.max_message_size,
        deflate: accepted.deflate.clone(),
    };
    let driver_config = state.driver_config.clone();
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let conn = Connection::new(Role::Server, config);
                drive(TokioIo::new(upgraded), conn, handler, driver_config, &shutdown).await;
            }
            Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
        }
    });
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    resp.headers_mut().extend(accepted.response_headers());
    resp
}

/// A plain-text response whose body is `reason` and a newline.
pub fn text_response(status: StatusCode, reason: &str) -> Response {
    let mut resp = Response::new(Body::from(format!("{reason}\n")));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}
