//! HTTP long-polling: the GET that receives (answered at once or parked
//! until the session has something) and the POST that sends.

use std::sync::Arc;

use axum::body::Body;
use bytes::{Buf, Bytes, BytesMut};
use http::{header, Response};
use http_body_util::BodyExt;
use switchboard_engineio::{EngineError, PollOutcome};
use tokio::sync::oneshot;

use super::server::{deliver, error_response, poll_response, post_ok, Shared};
use super::socket::{now, EngineSocket, ParkedPoll};
use super::EngineHandler;

/// A polling GET for `socket` (already checked).
pub(crate) async fn get<H: EngineHandler>(
    shared: &Arc<Shared<H>>,
    socket: &EngineSocket,
) -> Response<Body> {
    let (outcome, parked, events) = {
        let mut st = socket.inner.state.lock();
        let outcome = st.session.poll_request(now());
        let parked = match outcome {
            Ok(PollOutcome::Park) => {
                let (tx, rx) = oneshot::channel();
                let polling = st.polling.get_or_insert_with(Default::default);
                let id = polling.next_id;
                polling.next_id += 1;
                polling.parked = Some(ParkedPoll { id, tx });
                Some((id, rx))
            }
            _ => None,
        };
        let events = st.flush(&socket.inner);
        (outcome, parked, events)
    };
    if events {
        deliver(shared, socket);
    }
    match (outcome, parked) {
        (Err(e), _) => error_response(&e, false),
        (Ok(PollOutcome::Respond(body)), _) => poll_response(body),
        (Ok(PollOutcome::Park), Some((id, rx))) => {
            let guard = ParkGuard {
                socket,
                id,
                armed: true,
            };
            let body = rx.await;
            guard.disarm();
            // The sender is only dropped unanswered when the session closed
            // (the core answers `1` then anyway).
            poll_response(body.unwrap_or_else(|_| Bytes::from_static(b"1")))
        }
        (Ok(PollOutcome::Park), None) => unreachable!("parked without a channel"),
    }
}

/// Tells the session when a parked GET's request future is dropped
/// unanswered (hyper drops it when the client goes away): Node's "poll
/// connection closed prematurely", `transport error`.
struct ParkGuard<'a> {
    socket: &'a EngineSocket,
    id: u64,
    armed: bool,
}

impl ParkGuard<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for ParkGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let inner = &self.socket.inner;
        let mut st = inner.state.lock();
        let parked = st.polling.as_mut().map(|p| &mut p.parked);
        if let Some(parked) = parked.filter(|p| p.as_ref().is_some_and(|p| p.id == self.id)) {
            *parked = None;
            st.session.poll_aborted(now());
            // Delivered by the session task: this runs inside hyper's drop.
            if st.flush(inner) {
                inner.task.notify_one();
            }
        }
    }
}

/// A polling POST for `socket` (already checked).
pub(crate) async fn post<H, B>(
    shared: &Arc<Shared<H>>,
    socket: &EngineSocket,
    parts: &http::request::Parts,
    body: B,
) -> Response<Body>
where
    H: EngineHandler,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: std::fmt::Display,
{
    let limit = shared.config.max_http_buffer_size;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return error_response(&EngineError::payload_too_large(), false);
    }
    let data = match read_limited(body, limit.saturating_add(1)).await {
        Ok(data) => data,
        Err(e) => {
            tracing::debug!(sid = socket.sid(), error = %e, "polling POST body failed");
            return error_response(&EngineError::bad_request(), false);
        }
    };
    if data.len() > limit {
        return error_response(&EngineError::payload_too_large(), false);
    }
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let (result, events) = {
        let mut st = socket.inner.state.lock();
        let result = st.session.post(now(), content_type, data);
        (result, st.flush(&socket.inner))
    };
    if events {
        deliver(shared, socket);
    }
    match result {
        Ok(()) => post_ok(),
        Err(e) => error_response(&e, false),
    }
}

/// Reads a body, stopping once `max` bytes were read (the result is then
/// `max` bytes or more, for the caller to refuse).
async fn read_limited<B>(body: B, max: usize) -> Result<Bytes, B::Error>
where
    B: hyper::body::Body,
{
    let mut body = std::pin::pin!(body);
    let mut first: Option<Bytes> = None;
    let mut rest = BytesMut::new();
    let mut len = 0usize;
    while len < max {
        let Some(frame) = body.frame().await else {
            break;
        };
        let Ok(mut data) = frame?.into_data() else {
            continue; // trailers
        };
        let chunk = data.copy_to_bytes(data.remaining());
        len += chunk.len();
        match &first {
            None if rest.is_empty() => first = Some(chunk),
            _ => {
                if let Some(f) = first.take() {
                    rest.extend_from_slice(&f);
                }
                rest.extend_from_slice(&chunk);
            }
        }
    }
    Ok(first.unwrap_or_else(|| rest.freeze()))
}
