//! The tokio/hyper Engine.IO v4 server transport: HTTP long-polling and
//! WebSocket around the sans-IO [`switchboard_engineio::Session`].
//!
//! One [`EngineIo`] per mount path serves every request of that path with
//! [`EngineIo::handle`]; the layer above (Socket.IO) implements
//! [`EngineHandler`] and talks to each session through an [`EngineSocket`].
//!
//! # Tasks, locks and wake-ups
//!
//! * Each session is one `parking_lot` mutex around the core `Session` plus
//!   the transport bits (the parked GET's oneshot, the outboxes of its
//!   WebSocket connections, the events not yet delivered). Every input
//!   (request, WebSocket message, timer, `send`, `close`) takes the lock,
//!   feeds the core, and *under the same lock* routes the core's transmits:
//!   a `PollResponse` completes the parked GET's oneshot, a `Ws` message is
//!   pushed to that connection's outbox and its task woken, `WsClose` marks
//!   the outbox closed. Routing never blocks, so output order is the core's.
//! * Events are moved to a per-session queue and delivered to the handler
//!   *outside* the lock by whoever produced them (the POST request, the
//!   WebSocket task, the session task), one deliverer at a time (a
//!   `delivering` flag): the handler sees a session's events in order, never
//!   concurrently, and may call [`EngineSocket::send`]/[`close`](EngineSocket::close)
//!   from inside its callbacks. `send`/`close` called by the application
//!   never call the handler themselves: they wake the session task.
//! * One task runs each session: for a session born on polling, a small
//!   *session task*, which sleeps until the core's `poll_timeout()` (tokio
//!   timer, millisecond precision), calls `handle_timeout`, delivers
//!   deferred events, polls the work the application attached
//!   ([`EngineSocket::attach`]: a per-session feed without a task of its
//!   own), holds the session's [`Registry`](crate::Registry) slot and
//!   closes the session on shutdown; it ends once `on_close` was delivered,
//!   or when the session is upgraded. A session born on a WebSocket, or
//!   upgraded to one, is run by that connection's task instead (the same
//!   duties, `session_turn`): one task per session. The session's wake-up
//!   (`TaskWaker`) is a flag and the waker of whichever task runs it.
//! * One task per WebSocket connection (a sans-IO `switchboard_websocket`
//!   connection over the upgraded socket) reads frames into the session and
//!   writes what the session pushed to its outbox, coalesced in one vectored
//!   write.

mod config;
mod polling;
mod server;
mod socket;
mod websocket;

#[cfg(test)]
mod tests;

pub use config::{Cors, EngineIoConfig, RequestFilter};
pub use server::EngineIo;
pub use socket::{EngineSocket, SessionWork, SocketClosed};
pub use switchboard_engineio::{CloseReason, Config as EngineConfig, Message, TransportKind};

use std::sync::Arc;

/// What the layer above (Socket.IO) does with Engine.IO sessions.
///
/// Callbacks run on the runtime's worker threads, outside every session
/// lock; for one session they are never concurrent and come in order
/// (`on_open`, then `on_message`s, then `on_close` exactly once). They must
/// not block; calling back into [`EngineSocket`] from them is fine.
pub trait EngineHandler: Send + Sync + 'static {
    /// What the handler keeps for each session (Socket.IO: its client),
    /// given back with every event of that session: the session holds it,
    /// so the handler needs no table of its own to find it.
    type Session: Send + Sync + 'static;
    /// A session opened; `req` is the handshake request (headers, URI with
    /// query) for auth/cookies. Returns the handler's state for it.
    fn on_open(&self, socket: EngineSocket, req: &http::request::Parts) -> Arc<Self::Session>;
    /// A message from the client (text or binary), in order.
    fn on_message(&self, session: &Arc<Self::Session>, socket: &EngineSocket, message: Message);
    /// The session ended (exactly once per session), with Node's reason.
    /// The session drops its handle on `session` afterwards.
    fn on_close(&self, session: &Arc<Self::Session>, socket: &EngineSocket, reason: CloseReason);
}
