//! What a [`ServerSession`](crate::ServerSession) reports to the
//! application: one [`Event`] per accepted client frame (plus heart-beats).
//! Frames that break a rule never become events; the session answers them.

use std::fmt;

use bytes::Bytes;

use crate::frame::{Command, Headers};
use crate::negotiate::{HeartBeat, HeartBeatIntervals};
use crate::subscription::AckMode;
use crate::version::Version;

/// A CONNECT (or STOMP) frame that passed negotiation and awaits the
/// application's [`accept`](crate::ServerSession::accept) or
/// [`reject`](crate::ServerSession::reject).
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    /// [`Command::Connect`] or [`Command::Stomp`].
    pub command: Command,
    /// The negotiated version.
    pub version: Version,
    /// The `host` header (virtual host), if any.
    pub host: Option<String>,
    /// The `login` header, if any.
    pub login: Option<String>,
    /// The `passcode` header, if any.
    pub passcode: Option<String>,
    /// The client's `heart-beat` (0,0 when absent or in 1.0).
    pub client_heart_beat: HeartBeat,
    /// The heart-beat intervals that will run once accepted.
    pub heart_beat: HeartBeatIntervals,
    /// All headers of the frame, unescaped as CONNECT requires.
    pub headers: Headers,
}

impl fmt::Debug for ConnectRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (n, if n == "passcode" { "<redacted>" } else { v }))
            .collect();
        f.debug_struct("ConnectRequest")
            .field("command", &self.command)
            .field("version", &self.version)
            .field("host", &self.host)
            .field("login", &self.login)
            .field("passcode", &self.passcode.as_ref().map(|_| "<redacted>"))
            .field("client_heart_beat", &self.client_heart_beat)
            .field("heart_beat", &self.heart_beat)
            .field("headers", &headers)
            .finish()
    }
}

/// Something the client did, in arrival order.
///
/// If the frame carried a `receipt` header the session sends the RECEIPT
/// itself once the application is done with the event (see
/// [`ServerSession`](crate::ServerSession)); events therefore carry no
/// receipt field, except [`Event::Disconnect`] for information.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A client wants to connect; answer with `accept` or `reject`.
    Connect(ConnectRequest),
    /// SEND: publish `body` to `destination`.
    Send {
        /// The `destination` header.
        destination: String,
        /// The open transaction this SEND belongs to.
        transaction: Option<String>,
        /// All headers of the frame (destination, content-type, custom ...).
        headers: Headers,
        /// The body.
        body: Bytes,
    },
    /// SUBSCRIBE: the subscription is registered in the session already.
    Subscribe {
        /// Subscription id (the destination for an id-less 1.0 SUBSCRIBE).
        id: String,
        /// The `destination` header.
        destination: String,
        /// The ack mode.
        ack: AckMode,
        /// All headers of the frame (selector, durable options ...).
        headers: Headers,
    },
    /// UNSUBSCRIBE: the subscription is removed from the session already.
    Unsubscribe {
        /// Subscription id.
        id: String,
        /// Its destination.
        destination: String,
        /// Messages sent on it that were never acknowledged (for
        /// redelivery), oldest first.
        unacked: Vec<u64>,
    },
    /// ACK of one or more messages sent by this session.
    Ack {
        /// The subscription the messages were sent on.
        subscription: String,
        /// Message ids covered, oldest first (several in `client` mode).
        message_ids: Vec<u64>,
        /// The open transaction this ACK belongs to.
        transaction: Option<String>,
    },
    /// NACK (1.1+) of one or more messages sent by this session.
    Nack {
        /// The subscription the messages were sent on.
        subscription: String,
        /// Message ids covered, oldest first (several in `client` mode).
        message_ids: Vec<u64>,
        /// The open transaction this NACK belongs to.
        transaction: Option<String>,
    },
    /// BEGIN of a new transaction.
    Begin {
        /// The transaction id.
        transaction: String,
    },
    /// COMMIT of an open transaction.
    Commit {
        /// The transaction id.
        transaction: String,
    },
    /// ABORT of an open transaction.
    Abort {
        /// The transaction id.
        transaction: String,
    },
    /// DISCONNECT: the session has queued the RECEIPT (if asked for) and is
    /// closed; flush the output and close the transport.
    Disconnect {
        /// The `receipt` header, if any.
        receipt: Option<String>,
    },
    /// One or more EOLs arrived between frames (consecutive ones are
    /// reported once).
    HeartBeat,
}
