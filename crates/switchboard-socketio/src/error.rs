//! Errors and disconnect reasons.

use std::fmt;

use serde::Serialize;
use switchboard_engineio::CloseReason;
use switchboard_socketio_proto::{to_value, Value};

/// Why a socket left its namespace, with Node's reason strings
/// ([`as_str`](Self::as_str)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisconnectReason {
    /// `transport close`: the client closed the connection (or the page).
    TransportClose,
    /// `transport error`: the connection failed.
    TransportError,
    /// `ping timeout`: the client stopped answering pings.
    PingTimeout,
    /// `parse error`: the client sent a malformed packet; the whole
    /// connection was closed.
    ParseError,
    /// `forced close`: the Engine.IO session was closed by the server.
    ForcedClose,
    /// `forced server close`: `disconnect(true)` on another socket of the
    /// same connection.
    ForcedServerClose,
    /// `client namespace disconnect`: the client called `socket.disconnect()`.
    ClientNamespaceDisconnect,
    /// `server namespace disconnect`: the server called `socket.disconnect()`.
    ServerNamespaceDisconnect,
    /// `server shutting down`: [`SocketIo::close`](crate::SocketIo::close).
    ServerShuttingDown,
}

impl DisconnectReason {
    /// Node's string for this reason.
    pub const fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::TransportClose => "transport close",
            DisconnectReason::TransportError => "transport error",
            DisconnectReason::PingTimeout => "ping timeout",
            DisconnectReason::ParseError => "parse error",
            DisconnectReason::ForcedClose => "forced close",
            DisconnectReason::ForcedServerClose => "forced server close",
            DisconnectReason::ClientNamespaceDisconnect => "client namespace disconnect",
            DisconnectReason::ServerNamespaceDisconnect => "server namespace disconnect",
            DisconnectReason::ServerShuttingDown => "server shutting down",
        }
    }
}

impl From<CloseReason> for DisconnectReason {
    fn from(r: CloseReason) -> Self {
        match r {
            CloseReason::TransportClose => DisconnectReason::TransportClose,
            CloseReason::TransportError => DisconnectReason::TransportError,
            CloseReason::PingTimeout => DisconnectReason::PingTimeout,
            CloseReason::ParseError => DisconnectReason::ParseError,
            CloseReason::ForcedClose => DisconnectReason::ForcedClose,
        }
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A middleware's refusal: the client gets CONNECT_ERROR
/// `{"message": message, "data": data}` (`data` omitted when `None`), which
/// `socket.io-client` surfaces as a `connect_error` `Error` with `.message`
/// and `.data`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectError {
    /// `err.message` on the client.
    pub message: String,
    /// `err.data` on the client.
    pub data: Option<Value>,
}

impl ConnectError {
    /// A refusal with a message only.
    pub fn new(message: impl Into<String>) -> Self {
        ConnectError {
            message: message.into(),
            data: None,
        }
    }

    /// Adds `data` (serialized with the proto's serde bridge; a value that
    /// fails to serialize is sent as `null`).
    pub fn with_data(mut self, data: impl Serialize) -> Self {
        self.data = Some(to_value(&data).unwrap_or(Value::Null));
        self
    }

    pub(crate) fn to_value(&self) -> Value {
        let mut m = vec![("message".to_owned(), Value::from(self.message.as_str()))];
        if let Some(d) = &self.data {
            m.push(("data".to_owned(), d.clone()));
        }
        Value::Object(m)
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConnectError {}

impl From<&str> for ConnectError {
    fn from(m: &str) -> Self {
        ConnectError::new(m)
    }
}

impl From<String> for ConnectError {
    fn from(m: String) -> Self {
        ConnectError::new(m)
    }
}

/// Why an emit failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmitError {
    /// The event name is one of the reserved ones (`connect`,
    /// `disconnect`, ...): Node throws for these too.
    ReservedEvent(String),
    /// The data failed to serialize (the serde message).
    Serialize(String),
    /// The socket is disconnected or its Engine.IO session is closed.
    Closed,
}

impl fmt::Display for EmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmitError::ReservedEvent(e) => write!(f, "{e:?} is a reserved event name"),
            EmitError::Serialize(e) => write!(f, "cannot serialize the event data: {e}"),
            EmitError::Closed => f.write_str("socket closed"),
        }
    }
}

impl std::error::Error for EmitError {}

/// Why an acknowledgement did not arrive (or could not be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckError {
    /// No answer within the timeout (Node: "operation has timed out").
    Timeout,
    /// The socket disconnected before answering.
    Disconnected,
    /// The answer did not deserialize into the requested type.
    Decode(String),
    /// The event could not be sent.
    Emit(EmitError),
}

impl fmt::Display for AckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AckError::Timeout => f.write_str("operation has timed out"),
            AckError::Disconnected => f.write_str("socket disconnected before acknowledging"),
            AckError::Decode(e) => write!(f, "cannot deserialize the acknowledgement: {e}"),
            AckError::Emit(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for AckError {}

impl From<EmitError> for AckError {
    fn from(e: EmitError) -> Self {
        AckError::Emit(e)
    }
}
