//! The tokio/hyper SockJS 0.3.3 server transport around the sans-IO
//! [`switchboard_sockjs::Session`]: every route of one service (info,
//! iframe, greeting, the polling and streaming receivers, `xhr_send` /
//! `jsonp_send`, the `websocket` transport), served by [`SockJs::handle`].
//!
//! One [`SockJs`] per service prefix (e.g. `/echo`); the caller strips the
//! prefix (axum's `nest_service` does). The application implements
//! [`SockJsHandler`] and talks to each session through a [`SockJsConn`].
//!
//! # Tasks, locks and wake-ups
//!
//! * Each session is one `parking_lot` mutex around the core `Session`, the
//!   waker of its attached receiver and the events not yet delivered. Every
//!   input (a receiving request, `xhr_send`, a WebSocket message, a timer,
//!   [`SockJsConn::send`] / [`close`](SockJsConn::close)) takes the lock,
//!   feeds the core, and wakes the receiver when the core
//!   [`has_output`](switchboard_sockjs::Session::has_output).
//! * A receiving HTTP request answers with a streaming body that polls the
//!   session ([`Session::poll_output`](switchboard_sockjs::Session::poll_output))
//!   whenever hyper asks for more: back-pressure is hyper's. A body dropped
//!   before its end (the client went away) aborts the session, as
//!   sockjs-node does.
//! * The `websocket` transport is one task per connection (a sans-IO
//!   `switchboard_websocket` connection over the upgraded socket) that is
//!   the session's receiver for its whole life.
//! * One small task per session sleeps until the core's `poll_timeout()`
//!   (heartbeats, disconnect delay), delivers deferred events, holds the
//!   session's [`Registry`](crate::Registry) slot and closes the session on
//!   shutdown. It ends once `on_close` was delivered; the session leaves
//!   the map then.
//! * Events reach the handler outside the lock, one deliverer at a time, in
//!   order: `on_open`, `on_message`s, `on_close` exactly once.
//!
//! # Close codes chosen here
//!
//! SockJS close codes are the application's; the transport itself closes
//! a session in two cases:
//!
//! * [`SLOW_CONSUMER`] (`c[1013,"Slow consumer"]`): [`SockJsConn::send`]
//!   found `http_message_cache_size` messages already waiting. The
//!   queued messages still go out before the close frame.
//! * [`SHUTTING_DOWN`] (`c[1001,"Server shutting down"]`): the registry was
//!   triggered. Attached receivers get the close frame at once; sessions
//!   without a receiver end without waiting for the disconnect delay.

mod config;
mod conn;
mod receiver;
mod server;
mod websocket;

#[cfg(test)]
mod tests;

pub use config::SockJsConfig;
pub use conn::{Closed, SockJsConn};
pub use server::SockJs;
pub use switchboard_sockjs::{CloseFrame, CloseReason, EncodedMessage};

/// The close frame of a session whose client does not keep up.
pub const SLOW_CONSUMER: CloseFrame = CloseFrame {
    code: 1013,
    reason: std::borrow::Cow::Borrowed("Slow consumer"),
};

/// The close frame every session gets when the server shuts down.
pub const SHUTTING_DOWN: CloseFrame = CloseFrame {
    code: 1001,
    reason: std::borrow::Cow::Borrowed("Server shutting down"),
};

/// What the application does with SockJS sessions.
///
/// Callbacks run on the runtime's worker threads, outside every session
/// lock; for one session they are never concurrent and come in order
/// (`on_open`, then `on_message`s, then `on_close` exactly once). They must
/// not block; calling back into [`SockJsConn`] from them is fine.
pub trait SockJsHandler: Send + Sync + 'static {
    /// A session opened (its first receiver got `o`); `req` is that
    /// request (headers, URI with the query the client's URL carried).
    fn on_open(&self, conn: SockJsConn, req: &http::request::Parts);
    /// A message from the client, in order.
    fn on_message(&self, conn: &SockJsConn, message: String);
    /// The session ended (exactly once per session).
    fn on_close(&self, conn: &SockJsConn, reason: CloseReason);
}
