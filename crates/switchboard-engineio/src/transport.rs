//! The low-level transports a session can run on ([`TransportKind`]) and
//! the set a server enables ([`Transports`]). WebTransport is not
//! supported (Node disables it by default too).

use std::fmt;

/// A low-level Engine.IO transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// HTTP long-polling (`transport=polling`): GET to receive, POST to send.
    Polling,
    /// WebSocket (`transport=websocket`).
    WebSocket,
}

impl TransportKind {
    /// The name used in the `transport` query parameter and in `upgrades`.
    pub const fn as_str(self) -> &'static str {
        match self {
            TransportKind::Polling => "polling",
            TransportKind::WebSocket => "websocket",
        }
    }

    /// Parses a `transport` query value (exact, case-sensitive match).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "polling" => Some(TransportKind::Polling),
            "websocket" => Some(TransportKind::WebSocket),
            _ => None,
        }
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The transports a server accepts (Node's `transports` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Transports {
    /// Accept HTTP long-polling.
    pub polling: bool,
    /// Accept WebSocket.
    pub websocket: bool,
}

impl Default for Transports {
    /// Both, as Node's default `["polling", "websocket"]`.
    fn default() -> Self {
        Transports {
            polling: true,
            websocket: true,
        }
    }
}

impl Transports {
    /// Whether `kind` is enabled.
    pub const fn contains(self, kind: TransportKind) -> bool {
        match kind {
            TransportKind::Polling => self.polling,
            TransportKind::WebSocket => self.websocket,
        }
    }
}
