//! Error types, one per layer: [`DecodeError`] (bytes that are not a valid
//! frame), [`NegotiateError`] (a CONNECT the server cannot agree to),
//! [`ProtocolError`] (a valid frame the session must refuse) and
//! [`SendError`] (the application used the session in the wrong state).
//!
//! Each peer-caused error has a short [`message`](ProtocolError::message)
//! for the ERROR frame's `message` header; its `Display` is the longer
//! explanation sent as the ERROR body.

use std::fmt;

use crate::frame::Command;
use crate::version::Version;

/// Longest piece of peer input echoed back in an error text.
const ECHO_MAX: usize = 64;

/// Shortens peer-supplied text before it is echoed in an error.
pub(crate) fn echo(s: &str) -> String {
    match s.char_indices().nth(ECHO_MAX) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_owned(),
    }
}

/// The bytes received are not a well-formed frame (or exceed a limit).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The command line is not a known command.
    UnknownCommand(String),
    /// The command or a header line is not valid UTF-8.
    InvalidUtf8,
    /// A NUL octet inside the command or header section.
    UnexpectedNul,
    /// A header line without a `:`.
    MissingColon(String),
    /// An escape sequence the version does not define (e.g. `\t`).
    InvalidEscape(String),
    /// `content-length` is not a decimal number.
    InvalidContentLength(String),
    /// The `content-length` octets are not followed by a NUL.
    MissingNul,
    /// A non-empty body on a frame other than SEND, MESSAGE or ERROR.
    BodyNotAllowed(Command),
    /// A CR between frames that is not followed by LF.
    InvalidEol,
    /// The command or a header line is longer than the limit.
    HeaderLineTooLong {
        /// The configured limit in octets.
        limit: usize,
    },
    /// More header lines than the limit.
    TooManyHeaders {
        /// The configured limit.
        limit: usize,
    },
    /// A body longer than the limit.
    BodyTooLarge {
        /// The configured limit in octets.
        limit: usize,
    },
    /// The whole frame is longer than the limit.
    FrameTooLarge {
        /// The configured limit in octets.
        limit: usize,
    },
}

impl DecodeError {
    /// Short text for an ERROR frame's `message` header.
    pub fn message(&self) -> &'static str {
        match self {
            DecodeError::UnknownCommand(_) => "unknown command",
            DecodeError::InvalidUtf8 => "invalid UTF-8 in frame header",
            DecodeError::UnexpectedNul => "NUL octet in frame header",
            DecodeError::MissingColon(_) => "malformed header",
            DecodeError::InvalidEscape(_) => "undefined escape sequence",
            DecodeError::InvalidContentLength(_) => "invalid content-length",
            DecodeError::MissingNul => "frame not terminated by NUL",
            DecodeError::BodyNotAllowed(_) => "frame must not have a body",
            DecodeError::InvalidEol => "invalid end of line",
            DecodeError::HeaderLineTooLong { .. } => "header line too long",
            DecodeError::TooManyHeaders { .. } => "too many headers",
            DecodeError::BodyTooLarge { .. } => "body too large",
            DecodeError::FrameTooLarge { .. } => "frame too large",
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::UnknownCommand(c) => write!(f, "unknown command '{}'", echo(c)),
            DecodeError::InvalidUtf8 => f.write_str("the command and headers must be valid UTF-8"),
            DecodeError::UnexpectedNul => {
                f.write_str("a NUL octet appeared before the end of the headers")
            }
            DecodeError::MissingColon(line) => {
                write!(f, "header line '{}' has no ':'", echo(line))
            }
            DecodeError::InvalidEscape(seq) => {
                write!(f, "header contains the undefined escape sequence '{seq}'")
            }
            DecodeError::InvalidContentLength(v) => {
                write!(f, "content-length '{}' is not a decimal number", echo(v))
            }
            DecodeError::MissingNul => {
                f.write_str("the body announced by content-length is not followed by NUL")
            }
            DecodeError::BodyNotAllowed(c) => write!(
                f,
                "{c} frames must not have a body; only SEND, MESSAGE and ERROR may"
            ),
            DecodeError::InvalidEol => f.write_str("CR between frames must be followed by LF"),
            DecodeError::HeaderLineTooLong { limit } => {
                write!(f, "a header line is longer than {limit} octets")
            }
            DecodeError::TooManyHeaders { limit } => {
                write!(f, "a frame has more than {limit} headers")
            }
            DecodeError::BodyTooLarge { limit } => {
                write!(f, "a body is longer than {limit} octets")
            }
            DecodeError::FrameTooLarge { limit } => {
                write!(f, "a frame is longer than {limit} octets")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// A CONNECT frame the server cannot agree to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NegotiateError {
    /// No version in `accept-version` is supported (or the header is absent
    /// and 1.0 is not supported).
    UnsupportedVersion {
        /// The client's `accept-version` (empty when absent).
        requested: String,
        /// The versions the server supports, lowest first.
        supported: Vec<Version>,
    },
    /// `heart-beat` is not two comma-separated millisecond counts.
    InvalidHeartBeat(String),
}

impl NegotiateError {
    /// Short text for an ERROR frame's `message` header.
    pub fn message(&self) -> &'static str {
        match self {
            NegotiateError::UnsupportedVersion { .. } => "unsupported protocol version",
            NegotiateError::InvalidHeartBeat(_) => "invalid heart-beat header",
        }
    }
}

impl fmt::Display for NegotiateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NegotiateError::UnsupportedVersion { supported, .. } => {
                f.write_str("Supported protocol versions are")?;
                for v in supported {
                    write!(f, " {v}")?;
                }
                Ok(())
            }
            NegotiateError::InvalidHeartBeat(v) => write!(
                f,
                "heart-beat '{}' is not two comma-separated millisecond counts",
                echo(v)
            ),
        }
    }
}

impl std::error::Error for NegotiateError {}

/// A frame that is well-formed but breaks a protocol rule. The session
/// answers every one with an ERROR frame and closes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The bytes were not a valid frame.
    Decode(DecodeError),
    /// The CONNECT frame could not be negotiated.
    Negotiate(NegotiateError),
    /// The first frame was not CONNECT or STOMP.
    ConnectExpected(Command),
    /// A second CONNECT or STOMP frame.
    AlreadyConnected,
    /// A server command (CONNECTED, MESSAGE, RECEIPT, ERROR) from the client.
    UnexpectedCommand(Command),
    /// A command the negotiated version does not have (STOMP or NACK in 1.0).
    CommandNotInVersion {
        /// The command.
        command: Command,
        /// The version of the connection.
        version: Version,
    },
    /// A required header is absent.
    MissingHeader {
        /// The frame's command.
        command: Command,
        /// The missing header.
        header: &'static str,
    },
    /// SUBSCRIBE with an `ack` value other than auto, client,
    /// client-individual (the latter only in 1.1+).
    InvalidAckMode(String),
    /// SUBSCRIBE reusing the id of an active subscription.
    DuplicateSubscription(String),
    /// UNSUBSCRIBE (or ACK/NACK) naming no active subscription.
    UnknownSubscription(String),
    /// ACK/NACK of a message that is not awaiting acknowledgement.
    UnknownAck(String),
    /// BEGIN of a transaction that is already open.
    TransactionExists(String),
    /// COMMIT/ABORT (or a transactional SEND/ACK/NACK) naming no open
    /// transaction.
    UnknownTransaction(String),
    /// More active subscriptions than the configured limit.
    TooManySubscriptions {
        /// The configured limit.
        limit: usize,
    },
    /// More open transactions than the configured limit.
    TooManyTransactions {
        /// The configured limit.
        limit: usize,
    },
    /// Too much data pipelined while the CONNECT awaited the application's
    /// decision.
    PipelineTooLarge {
        /// The configured limit in octets.
        limit: usize,
    },
}

impl ProtocolError {
    /// Short text for an ERROR frame's `message` header.
    pub fn message(&self) -> &'static str {
        match self {
            ProtocolError::Decode(e) => e.message(),
            ProtocolError::Negotiate(e) => e.message(),
            ProtocolError::ConnectExpected(_) => "CONNECT expected",
            ProtocolError::AlreadyConnected => "already connected",
            ProtocolError::UnexpectedCommand(_) => "unexpected command",
            ProtocolError::CommandNotInVersion { .. } => "command not supported in this version",
            ProtocolError::MissingHeader { .. } => "missing header",
            ProtocolError::InvalidAckMode(_) => "invalid ack mode",
            ProtocolError::DuplicateSubscription(_) => "duplicate subscription id",
            ProtocolError::UnknownSubscription(_) => "unknown subscription",
            ProtocolError::UnknownAck(_) => "unknown message to acknowledge",
            ProtocolError::TransactionExists(_) => "transaction already started",
            ProtocolError::UnknownTransaction(_) => "unknown transaction",
            ProtocolError::TooManySubscriptions { .. } => "too many subscriptions",
            ProtocolError::TooManyTransactions { .. } => "too many transactions",
            ProtocolError::PipelineTooLarge { .. } => "too much data before CONNECTED",
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::Decode(e) => e.fmt(f),
            ProtocolError::Negotiate(e) => e.fmt(f),
            ProtocolError::ConnectExpected(c) => {
                write!(f, "the first frame must be CONNECT or STOMP, got {c}")
            }
            ProtocolError::AlreadyConnected => {
                f.write_str("CONNECT or STOMP received on a connected session")
            }
            ProtocolError::UnexpectedCommand(c) => {
                write!(f, "{c} is a server frame and cannot be sent by a client")
            }
            ProtocolError::CommandNotInVersion { command, version } => {
                write!(f, "{command} is not part of STOMP {version}")
            }
            ProtocolError::MissingHeader { command, header } => {
                write!(f, "{command} frame requires the '{header}' header")
            }
            ProtocolError::InvalidAckMode(m) => write!(
                f,
                "ack mode '{}' is not auto, client or client-individual",
                echo(m)
            ),
            ProtocolError::DuplicateSubscription(id) => {
                write!(f, "a subscription with id '{}' already exists", echo(id))
            }
            ProtocolError::UnknownSubscription(id) => {
                write!(f, "no subscription with id '{}'", echo(id))
            }
            ProtocolError::UnknownAck(id) => {
                write!(f, "no message '{}' awaits acknowledgement", echo(id))
            }
            ProtocolError::TransactionExists(t) => {
                write!(f, "transaction '{}' is already open", echo(t))
            }
            ProtocolError::UnknownTransaction(t) => {
                write!(f, "no open transaction '{}'", echo(t))
            }
            ProtocolError::TooManySubscriptions { limit } => {
                write!(f, "at most {limit} subscriptions per connection")
            }
            ProtocolError::TooManyTransactions { limit } => {
                write!(f, "at most {limit} open transactions per connection")
            }
            ProtocolError::PipelineTooLarge { limit } => write!(
                f,
                "more than {limit} octets were sent before the server answered CONNECT"
            ),
        }
    }
}

impl std::error::Error for ProtocolError {}

impl From<DecodeError> for ProtocolError {
    fn from(e: DecodeError) -> Self {
        ProtocolError::Decode(e)
    }
}

impl From<NegotiateError> for ProtocolError {
    fn from(e: NegotiateError) -> Self {
        ProtocolError::Negotiate(e)
    }
}

/// The application called a session method in a state that does not allow
/// it. Nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The session is closed.
    Closed,
    /// The session is not connected yet (or no CONNECT awaits a decision,
    /// for `accept`/`reject`).
    NotConnected,
    /// `accept`/`reject` on a session that is already connected.
    AlreadyConnected,
    /// No active subscription with this id.
    UnknownSubscription(String),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed => f.write_str("the session is closed"),
            SendError::NotConnected => f.write_str("no CONNECT has been accepted or is pending"),
            SendError::AlreadyConnected => f.write_str("the session is already connected"),
            SendError::UnknownSubscription(id) => write!(f, "no subscription with id '{id}'"),
        }
    }
}

impl std::error::Error for SendError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_truncates() {
        assert_eq!(echo("short"), "short");
        let long = "x".repeat(100);
        assert_eq!(echo(&long).len(), ECHO_MAX + 3);
    }

    #[test]
    fn messages_are_single_line() {
        let errors = [
            ProtocolError::Decode(DecodeError::MissingColon("a\nb".into())),
            ProtocolError::ConnectExpected(Command::Send),
            ProtocolError::Negotiate(NegotiateError::UnsupportedVersion {
                requested: "2.0".into(),
                supported: Version::ALL.to_vec(),
            }),
        ];
        for e in errors {
            assert!(!e.message().contains('\n'));
            assert!(!e.to_string().is_empty());
        }
        let e = NegotiateError::UnsupportedVersion {
            requested: String::new(),
            supported: Version::ALL.to_vec(),
        };
        assert_eq!(e.to_string(), "Supported protocol versions are 1.0 1.1 1.2");
    }
}
