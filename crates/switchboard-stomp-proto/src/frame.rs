//! The STOMP frame model: [`Command`], the ordered [`Headers`] list and
//! [`Frame`]. Parsing lives in [`crate::decoder`], serialisation in
//! [`crate::encoder`]; this module knows nothing about the wire format.

use std::fmt;

use bytes::Bytes;

/// A frame command, client or server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// Client: open a session (all versions).
    Connect,
    /// Client: open a session (1.1+ alias of CONNECT).
    Stomp,
    /// Client: send a message to a destination.
    Send,
    /// Client: subscribe to a destination.
    Subscribe,
    /// Client: end a subscription.
    Unsubscribe,
    /// Client: acknowledge a message.
    Ack,
    /// Client: reject a message (1.1+).
    Nack,
    /// Client: start a transaction.
    Begin,
    /// Client: commit a transaction.
    Commit,
    /// Client: roll back a transaction.
    Abort,
    /// Client: close the session gracefully.
    Disconnect,
    /// Server: session accepted.
    Connected,
    /// Server: a message for a subscription.
    Message,
    /// Server: acknowledges a client frame that carried `receipt`.
    Receipt,
    /// Server: something went wrong; the connection closes afterwards.
    Error,
}

impl Command {
    /// Every command, client commands first.
    pub const ALL: [Command; 15] = [
        Command::Connect,
        Command::Stomp,
        Command::Send,
        Command::Subscribe,
        Command::Unsubscribe,
        Command::Ack,
        Command::Nack,
        Command::Begin,
        Command::Commit,
        Command::Abort,
        Command::Disconnect,
        Command::Connected,
        Command::Message,
        Command::Receipt,
        Command::Error,
    ];

    /// The command as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Connect => "CONNECT",
            Command::Stomp => "STOMP",
            Command::Send => "SEND",
            Command::Subscribe => "SUBSCRIBE",
            Command::Unsubscribe => "UNSUBSCRIBE",
            Command::Ack => "ACK",
            Command::Nack => "NACK",
            Command::Begin => "BEGIN",
            Command::Commit => "COMMIT",
            Command::Abort => "ABORT",
            Command::Disconnect => "DISCONNECT",
            Command::Connected => "CONNECTED",
            Command::Message => "MESSAGE",
            Command::Receipt => "RECEIPT",
            Command::Error => "ERROR",
        }
    }

    /// Parses a command line (without its EOL). Commands are case-sensitive.
    ///
    /// ```
    /// use switchboard_stomp_proto::Command;
    /// assert_eq!(Command::parse(b"SEND"), Some(Command::Send));
    /// assert_eq!(Command::parse(b"send"), None);
    /// ```
    pub fn parse(line: &[u8]) -> Option<Command> {
        Command::ALL
            .into_iter()
            .find(|c| c.as_str().as_bytes() == line)
    }

    /// Whether a client sends this command.
    pub fn is_client(self) -> bool {
        !self.is_server()
    }

    /// Whether a server sends this command.
    pub fn is_server(self) -> bool {
        matches!(
            self,
            Command::Connected | Command::Message | Command::Receipt | Command::Error
        )
    }

    /// Whether a frame with this command may carry a body. Only SEND,
    /// MESSAGE and ERROR may (STOMP 1.2 "Body").
    pub fn allows_body(self) -> bool {
        matches!(self, Command::Send | Command::Message | Command::Error)
    }

    /// Whether header values of this command are escaped. CONNECT, STOMP and
    /// CONNECTED never are, so that 1.0 peers can read them before a version
    /// is negotiated (STOMP 1.2 "Value Encoding").
    pub fn escapes_headers(self) -> bool {
        !matches!(self, Command::Connect | Command::Stomp | Command::Connected)
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The headers of a frame, in wire order, repeats included.
///
/// STOMP allows a header name to repeat; only the first occurrence counts
/// ([`get`](Self::get)) but all are kept so a broker can forward them.
///
/// ```
/// use switchboard_stomp_proto::Headers;
/// let mut h = Headers::new();
/// h.push("foo", "first");
/// h.push("foo", "second");
/// assert_eq!(h.get("foo"), Some("first"));
/// assert_eq!(h.get_all("foo").collect::<Vec<_>>(), ["first", "second"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<(String, String)>,
}

impl Headers {
    /// An empty header list.
    pub fn new() -> Self {
        Headers::default()
    }

    /// An empty header list with room for `n` entries.
    pub fn with_capacity(n: usize) -> Self {
        Headers {
            entries: Vec::with_capacity(n),
        }
    }

    /// Appends a header (after any existing one with the same name).
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.entries.push((name.into(), value.into()));
    }

    /// The value of the first header called `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The values of every header called `name`, in wire order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether a header called `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Removes every header called `name`; returns how many were removed.
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.entries.len();
        self.entries.retain(|(n, _)| n != name);
        before - self.entries.len()
    }

    /// All headers in wire order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Number of header lines (repeats included).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Headers {
            entries: iter
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}

/// One STOMP frame: command, headers, body.
///
/// ```
/// use switchboard_stomp_proto::{Command, Frame};
/// let frame = Frame::new(Command::Send)
///     .header("destination", "/topic/chat")
///     .body("hello");
/// assert_eq!(frame.headers.get("destination"), Some("/topic/chat"));
/// assert_eq!(&frame.body[..], b"hello");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The command.
    pub command: Command,
    /// The headers, in wire order.
    pub headers: Headers,
    /// The body; empty for most commands.
    pub body: Bytes,
}

impl Frame {
    /// A frame with no headers and no body.
    pub fn new(command: Command) -> Self {
        Frame {
            command,
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// Builder: appends a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push(name, value);
        self
    }

    /// Builder: sets the body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Shorthand for `self.headers.get(name)`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_round_trips() {
        for c in Command::ALL {
            assert_eq!(Command::parse(c.as_str().as_bytes()), Some(c));
            assert_eq!(c.to_string(), c.as_str());
            assert_ne!(c.is_client(), c.is_server());
        }
        assert_eq!(Command::parse(b""), None);
        assert_eq!(Command::parse(b"CONNECT "), None);
        assert_eq!(Command::parse(b"Connect"), None);
    }

    #[test]
    fn body_and_escaping_rules() {
        let with_body: Vec<_> = Command::ALL
            .into_iter()
            .filter(|c| c.allows_body())
            .collect();
        assert_eq!(with_body, [Command::Send, Command::Message, Command::Error]);
        let raw: Vec<_> = Command::ALL
            .into_iter()
            .filter(|c| !c.escapes_headers())
            .collect();
        assert_eq!(raw, [Command::Connect, Command::Stomp, Command::Connected]);
    }

    #[test]
    fn headers_first_wins_and_remove() {
        let mut h: Headers = [("a", "1"), ("b", "2"), ("a", "3")].into_iter().collect();
        assert_eq!(h.get("a"), Some("1"));
        assert_eq!(h.get("c"), None);
        assert!(h.contains("b"));
        assert_eq!(h.len(), 3);
        assert_eq!(h.remove("a"), 2);
        assert_eq!(h.iter().collect::<Vec<_>>(), [("b", "2")]);
        assert!(!h.is_empty());
    }
}
