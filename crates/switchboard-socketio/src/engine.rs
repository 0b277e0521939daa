//! The seam to the Engine.IO transport: what this crate needs from one
//! Engine.IO session ([`EngineConn`]).

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

pub use switchboard_engineio::{CloseReason, Message, PreparedText, Utf8Bytes};

/// The Engine.IO session is closed: the message was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("engine.io session closed")
    }
}

impl std::error::Error for Closed {}

/// One Engine.IO session, as seen by the Socket.IO layer.
///
/// The tokio transport's `EngineSocket` implements it; tests implement it
/// with an in-memory recorder. Implementations must not call back into
/// [`SocketIo`](crate::SocketIo) synchronously from [`send`](Self::send);
/// calling [`SocketIo::engine_close`](crate::SocketIo::engine_close) from
/// [`close`](Self::close) is fine (the layer holds no lock there).
pub trait EngineConn: Send + Sync + 'static {
    /// The Engine.IO session id.
    fn sid(&self) -> &str;
    /// Queues one message.
    fn send(&self, message: Message) -> Result<(), Closed>;
    /// Queues several messages back to back (a binary packet: its text part
    /// then its attachments), ideally in one write.
    fn send_many(&self, messages: Vec<Message>) -> Result<(), Closed> {
        for m in messages {
            self.send(m)?;
        }
        Ok(())
    }
    /// Queues a text message encoded once for many sessions (broadcasts);
    /// by default sent as a plain text message.
    fn send_prepared(&self, message: PreparedText) -> Result<(), Closed> {
        self.send(Message::Text(message.text()))
    }
    /// Closes the session (the transport then reports the close, which the
    /// layer ignores when it closed the session itself).
    fn close(&self);
    /// Runs `work` until it returns `Ready` or the session closes
    /// ([`Socket::attach`](crate::Socket::attach)). The tokio transport
    /// polls it on the session's task; this default spawns a task of its
    /// own, which ends only when `work` returns `Ready`.
    fn attach(&self, work: SessionWork) {
        tokio::spawn(std::future::poll_fn(work));
    }
}

/// A shared connection is one too (tests keep a handle to theirs).
impl<T: EngineConn + ?Sized> EngineConn for Arc<T> {
    fn sid(&self) -> &str {
        (**self).sid()
    }
    fn send(&self, message: Message) -> Result<(), Closed> {
        (**self).send(message)
    }
    fn send_many(&self, messages: Vec<Message>) -> Result<(), Closed> {
        (**self).send_many(messages)
    }
    fn send_prepared(&self, message: PreparedText) -> Result<(), Closed> {
        (**self).send_prepared(message)
    }
    fn close(&self) {
        (**self).close()
    }
    fn attach(&self, work: SessionWork) {
        (**self).attach(work)
    }
}

/// Work run for a session ([`EngineConn::attach`]).
pub type SessionWork = Box<dyn FnMut(&mut Context<'_>) -> Poll<()> + Send>;

use switchboard_transport::engineio::{EngineHandler, EngineSocket};

impl EngineConn for EngineSocket {
    fn sid(&self) -> &str {
        EngineSocket::sid(self)
    }

    fn send(&self, message: Message) -> Result<(), Closed> {
        EngineSocket::send(self, message).map_err(|_| Closed)
    }

    fn send_many(&self, messages: Vec<Message>) -> Result<(), Closed> {
        EngineSocket::send_many(self, messages).map_err(|_| Closed)
    }

    fn send_prepared(&self, message: PreparedText) -> Result<(), Closed> {
        EngineSocket::send_prepared(self, message).map_err(|_| Closed)
    }

    fn close(&self) {
        EngineSocket::close(self)
    }

    fn attach(&self, work: SessionWork) {
        EngineSocket::attach(self, work)
    }
}

/// Mount a [`SocketIo`](crate::SocketIo) on the tokio Engine.IO transport:
/// `EngineIo::new(io.clone(), config, registry)`. Each session keeps its
/// [`Client`](crate::Client), so a message reaches it without a lookup.
impl EngineHandler for crate::SocketIo {
    type Session = crate::Client;

    fn on_open(&self, socket: EngineSocket, req: &http::request::Parts) -> Arc<crate::Client> {
        // The handle is one pointer: an 8-byte box (an `Arc` around it
        // would take 32).
        self.engine_open(Box::new(socket), req)
    }

    fn on_message(&self, client: &Arc<crate::Client>, _socket: &EngineSocket, message: Message) {
        self.engine_message(client, message);
    }

    fn on_close(&self, client: &Arc<crate::Client>, _socket: &EngineSocket, reason: CloseReason) {
        self.engine_close(client, reason);
    }
}
