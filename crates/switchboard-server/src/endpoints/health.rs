//! `GET /healthz`: 200 `ok` while the server accepts connections, 503 once it is shutting down.

use crate::app::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use std::sync::Arc;

/// The health check.
pub async fn healthz(State(state): State<Arc<AppState>>) -> (StatusCode, &'static str) {
    if state.shutdown.is_triggered() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    } else {
        (StatusCode::OK, "ok\n")
    }
}
