//! [`DecodeError`]: every way an incoming Socket.IO packet can be malformed.
//! The Node server answers any of them by closing the connection with the
//! disconnect reason `"parse error"`; transports using this crate should too.

use std::fmt;

use crate::packet::PacketType;

/// A malformed packet (or packet sequence) from the peer.
///
/// socket.io (Node) closes the whole Engine.IO connection on any parse
/// error, with the disconnect reason `"parse error"`. Do the same: after an
/// error the [`Decoder`](crate::Decoder) has dropped any half-received
/// binary packet, but the peer's stream can no longer be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The first character is not a packet type digit `0`–`6` (`None`: the
    /// text was empty).
    UnknownPacketType(Option<char>),
    /// A binary packet whose attachment count is not a run of digits
    /// followed by `-`, or is zero.
    InvalidAttachments,
    /// An attachment count (`<digits>-`) on a packet type other than
    /// BINARY_EVENT / BINARY_ACK.
    AttachmentsOnNonBinary(PacketType),
    /// More attachments announced than the decoder's limit.
    TooManyAttachments {
        /// The count the packet announced (saturated at `usize::MAX`).
        count: usize,
        /// [`DecoderConfig::max_attachments`](crate::DecoderConfig::max_attachments).
        max: usize,
    },
    /// A placeholder whose `num` is not an integer in `0..attachments`.
    InvalidPlaceholder,
    /// Two placeholders refer to the same attachment.
    DuplicatePlaceholder(usize),
    /// An announced attachment that no placeholder refers to.
    MissingPlaceholder(usize),
    /// A binary message arrived while no binary packet was waiting for
    /// attachments.
    UnexpectedBinary,
    /// A text message arrived while a binary packet was still waiting for
    /// attachments.
    UnexpectedText,
    /// The namespace holds an ASCII control character.
    InvalidNamespace,
    /// The ack id does not fit in a `u64`.
    InvalidId,
    /// The payload is not valid JSON (the serde_json message).
    InvalidJson(String),
    /// The payload is not allowed for this packet type (`reason` says why).
    InvalidPayload {
        /// The packet's type as written on the wire.
        kind: PacketType,
        /// What was wrong.
        reason: &'static str,
    },
    /// An event named after one of
    /// [`RESERVED_EVENTS`](crate::RESERVED_EVENTS).
    ReservedEvent(String),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::UnknownPacketType(None) => f.write_str("empty packet"),
            DecodeError::UnknownPacketType(Some(c)) => write!(f, "unknown packet type {c:?}"),
            DecodeError::InvalidAttachments => f.write_str("illegal attachments count"),
            DecodeError::AttachmentsOnNonBinary(t) => {
                write!(f, "attachments count on a non-binary {t} packet")
            }
            DecodeError::TooManyAttachments { count, max } => {
                write!(f, "too many attachments: {count} (limit {max})")
            }
            DecodeError::InvalidPlaceholder => {
                f.write_str("placeholder num is not an integer within the attachments")
            }
            DecodeError::DuplicatePlaceholder(n) => {
                write!(f, "attachment {n} referenced by more than one placeholder")
            }
            DecodeError::MissingPlaceholder(n) => {
                write!(f, "attachment {n} is referenced by no placeholder")
            }
            DecodeError::UnexpectedBinary => {
                f.write_str("got binary data when not reconstructing a packet")
            }
            DecodeError::UnexpectedText => {
                f.write_str("got plaintext data when reconstructing a packet")
            }
            DecodeError::InvalidNamespace => f.write_str("invalid namespace"),
            DecodeError::InvalidId => f.write_str("ack id out of range"),
            DecodeError::InvalidJson(e) => write!(f, "invalid JSON payload: {e}"),
            DecodeError::InvalidPayload { kind, reason } => {
                write!(f, "invalid payload for {kind}: {reason}")
            }
            DecodeError::ReservedEvent(name) => write!(f, "reserved event name {name:?}"),
        }
    }
}

impl std::error::Error for DecodeError {}
