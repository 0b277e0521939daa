//! Packet decoding (socket.io-parser `Decoder`): a state machine fed one
//! Engine.IO message at a time, parsing text packets, validating payloads
//! per packet type, and reassembling binary packets from their attachments.

use bytes::Bytes;

use crate::error::DecodeError;
use crate::packet::{is_reserved_event, Packet, PacketType};
use crate::value::Value;

/// Limits of a [`Decoder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderConfig {
    /// The most attachments one binary packet may announce. Default 10, the
    /// default `maxAttachments` of socket.io-parser's `Decoder`. Memory held
    /// for one packet is bounded by this times the Engine.IO message size
    /// limit (`maxHttpBufferSize`, 1 MB in Node).
    pub max_attachments: usize,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            max_attachments: 10,
        }
    }
}

/// Turns Engine.IO messages into [`Packet`]s.
///
/// Feed every text message to [`feed_text`](Self::feed_text) and every
/// binary message to [`feed_binary`](Self::feed_binary). A BINARY_EVENT /
/// BINARY_ACK text announces N attachments; it yields its packet once the N
/// binary messages that follow it have arrived, with every placeholder
/// replaced by its [`Value::Binary`] and the type reported as EVENT / ACK.
///
/// On an error the decoder drops any half-received packet and is ready for
/// a new one, but the Node server treats every parse error as fatal
/// (disconnect reason `"parse error"`): the transport should close the
/// connection.
///
/// # Validation
///
/// The payload rules are socket.io-parser's `isPayloadValid`:
///
/// | type | payload |
/// |---|---|
/// | CONNECT | absent, or an object |
/// | DISCONNECT | absent |
/// | EVENT / BINARY_EVENT | an array whose first element is a number, or a string not in [`RESERVED_EVENTS`](crate::RESERVED_EVENTS) |
/// | ACK / BINARY_ACK | an array |
/// | CONNECT_ERROR | a string or an object |
///
/// Stricter than socket.io-parser (never produced by its encoder):
/// EVENT, ACK and CONNECT_ERROR must carry a payload (Node lets it be
/// absent, then fails or dispatches an `undefined` event later); counts
/// and ids must be plain ASCII digits (JS `Number()` also takes spaces,
/// `0x1`, `1e1`…); an empty message is an error (JS reads it as CONNECT);
/// a namespace with an ASCII control character is rejected; every
/// attachment must be referenced by exactly one placeholder (Node
/// tolerates duplicates and unreferenced attachments).
#[derive(Debug, Default)]
pub struct Decoder {
    config: DecoderConfig,
    /// A binary packet awaiting attachments (boxed: rare, and every
    /// connection holds a decoder).
    pending: Option<Box<Pending>>,
}

#[derive(Debug)]
struct Pending {
    packet: Packet,
    buffers: Vec<Bytes>,
}

impl Decoder {
    /// A decoder with the default [`DecoderConfig`].
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// A decoder with the given limits.
    pub fn with_config(config: DecoderConfig) -> Decoder {
        Decoder {
            config,
            pending: None,
        }
    }

    /// The decoder's limits.
    pub fn config(&self) -> &DecoderConfig {
        &self.config
    }

    /// Whether a binary packet is waiting for more attachments.
    pub fn is_awaiting_attachments(&self) -> bool {
        self.pending.is_some()
    }

    /// Drops any half-received binary packet (socket.io-parser `destroy`).
    pub fn reset(&mut self) {
        self.pending = None;
    }

    /// Decodes one Engine.IO text message.
    ///
    /// Returns the packet, or `None` for a binary packet that now waits for
    /// its attachments. Fails with [`DecodeError::UnexpectedText`] while a
    /// binary packet is still waiting.
    pub fn feed_text(&mut self, text: &str) -> Result<Option<Packet>, DecodeError> {
        if self.pending.take().is_some() {
            return Err(DecodeError::UnexpectedText);
        }
        let (packet, wire_kind) = parse_text(text, &self.config)?;
        if wire_kind.is_binary() {
            let buffers = Vec::with_capacity(packet.attachments);
            self.pending = Some(Box::new(Pending { packet, buffers }));
            Ok(None)
        } else {
            Ok(Some(packet))
        }
    }

    /// Takes one Engine.IO binary message as the next attachment of the
    /// waiting binary packet.
    ///
    /// Returns the completed packet after its last attachment, `None` before.
    /// Fails with [`DecodeError::UnexpectedBinary`] when no packet waits.
    pub fn feed_binary(&mut self, data: Bytes) -> Result<Option<Packet>, DecodeError> {
        let pending = self.pending.as_mut().ok_or(DecodeError::UnexpectedBinary)?;
        pending.buffers.push(data);
        if pending.buffers.len() < pending.packet.attachments {
            return Ok(None);
        }
        let Pending {
            mut packet,
            buffers,
        } = *self.pending.take().expect("pending");
        let mut buffers: Vec<Option<Bytes>> = buffers.into_iter().map(Some).collect();
        if let Some(data) = &mut packet.data {
            fill_placeholders(data, &mut buffers);
        }
        Ok(Some(packet))
    }
}

/// Parses a text packet; for binary packets the placeholders are checked
/// but left in place. Returns the packet (type without binary) and the
/// type as written.
fn parse_text(text: &str, config: &DecoderConfig) -> Result<(Packet, PacketType), DecodeError> {
    let b = text.as_bytes();
    let first = *b.first().ok_or(DecodeError::UnknownPacketType(None))?;
    let kind = PacketType::from_digit(first)
        .ok_or_else(|| DecodeError::UnknownPacketType(text.chars().next()))?;
    let mut pos = 1;

    let mut attachments = 0;
    let digits = count_digits(&b[pos..]);
    if kind.is_binary() {
        if digits == 0 || b.get(pos + digits) != Some(&b'-') {
            return Err(DecodeError::InvalidAttachments);
        }
        let count = b[pos..pos + digits].iter().fold(0usize, |n, d| {
            n.saturating_mul(10).saturating_add(usize::from(d - b'0'))
        });
        if count == 0 {
            return Err(DecodeError::InvalidAttachments);
        }
        if count > config.max_attachments {
            return Err(DecodeError::TooManyAttachments {
                count,
                max: config.max_attachments,
            });
        }
        attachments = count;
        pos += digits + 1;
    } else if digits > 0 && b.get(pos + digits) == Some(&b'-') {
        // No valid payload starts with '-', so this is a misplaced count.
        return Err(DecodeError::AttachmentsOnNonBinary(kind));
    }

    let mut nsp = "/";
    if b.get(pos) == Some(&b'/') {
        let end = b[pos..]
            .iter()
            .position(|&c| c == b',')
            .map_or(b.len(), |i| pos + i);
        nsp = &text[pos..end];
        if nsp.bytes().any(|c| c < 0x20 || c == 0x7f) {
            return Err(DecodeError::InvalidNamespace);
        }
        pos = (end + 1).min(b.len());
    }

    let mut id = None;
    let digits = count_digits(&b[pos..]);
    if digits > 0 {
        let mut n: u64 = 0;
        for &d in &b[pos..pos + digits] {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(d - b'0')))
                .ok_or(DecodeError::InvalidId)?;
        }
        id = Some(n);
        pos += digits;
    }

    let data = if pos < b.len() {
        let v = Value::from_json_str(&text[pos..])
            .map_err(|e| DecodeError::InvalidJson(e.to_string()))?;
        Some(v)
    } else {
        None
    };
    validate_payload(kind, data.as_ref())?;
    if kind.is_binary() {
        let mut seen = vec![false; attachments];
        if let Some(data) = &data {
            check_placeholders(data, &mut seen)?;
        }
        if let Some(missing) = seen.iter().position(|s| !s) {
            return Err(DecodeError::MissingPlaceholder(missing));
        }
    }

    let packet = Packet {
        kind: kind.without_binary(),
        nsp: nsp.to_owned(),
        id,
        data,
        attachments,
    };
    Ok((packet, kind))
}

fn count_digits(b: &[u8]) -> usize {
    b.iter().take_while(|c| c.is_ascii_digit()).count()
}

/// socket.io-parser `isPayloadValid`, plus "payload required" for the types
/// whose consumers need one.
fn validate_payload(kind: PacketType, data: Option<&Value>) -> Result<(), DecodeError> {
    let invalid = |reason| Err(DecodeError::InvalidPayload { kind, reason });
    match (kind, data) {
        (PacketType::Connect, None | Some(Value::Object(_))) => Ok(()),
        (PacketType::Connect, Some(_)) => invalid("CONNECT payload must be an object"),
        (PacketType::Disconnect, None) => Ok(()),
        (PacketType::Disconnect, Some(_)) => invalid("DISCONNECT carries no payload"),
        (PacketType::ConnectError, Some(Value::String(_) | Value::Object(_))) => Ok(()),
        (PacketType::ConnectError, _) => {
            invalid("CONNECT_ERROR payload must be a string or an object")
        }
        (PacketType::Event | PacketType::BinaryEvent, Some(Value::Array(a))) => match a.first() {
            Some(Value::Number(_)) => Ok(()),
            Some(Value::String(name)) if is_reserved_event(name) => {
                Err(DecodeError::ReservedEvent(name.clone()))
            }
            Some(Value::String(_)) => Ok(()),
            Some(_) => invalid("event name must be a string or a number"),
            None => invalid("event payload must not be empty"),
        },
        (PacketType::Event | PacketType::BinaryEvent, _) => {
            invalid("event payload must be an array")
        }
        (PacketType::Ack | PacketType::BinaryAck, Some(Value::Array(_))) => Ok(()),
        (PacketType::Ack | PacketType::BinaryAck, _) => invalid("ack payload must be an array"),
    }
}

/// If `m` is a placeholder object (`_placeholder` is `true`), its `num`:
/// `Some(Ok(n))` for a non-negative integer (JS `typeof num === "number"`,
/// so `0.0` counts too), `Some(Err)` otherwise.
fn placeholder_num(m: &[(String, Value)]) -> Option<Result<usize, DecodeError>> {
    let is_placeholder = m
        .iter()
        .rev()
        .find(|(k, _)| k == "_placeholder")
        .is_some_and(|(_, v)| *v == Value::Bool(true));
    if !is_placeholder {
        return None;
    }
    let num = m.iter().rev().find(|(k, _)| k == "num").map(|(_, v)| v);
    let n = match num {
        Some(Value::Number(n)) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f < 1e15)
                .map(|f| f as u64)
        }),
        _ => None,
    };
    Some(
        n.and_then(|n| usize::try_from(n).ok())
            .ok_or(DecodeError::InvalidPlaceholder),
    )
}

fn check_placeholders(v: &Value, seen: &mut [bool]) -> Result<(), DecodeError> {
    match v {
        Value::Array(a) => a.iter().try_for_each(|v| check_placeholders(v, seen)),
        Value::Object(m) => match placeholder_num(m) {
            Some(n) => {
                let n = n?;
                let slot = seen.get_mut(n).ok_or(DecodeError::InvalidPlaceholder)?;
                if *slot {
                    return Err(DecodeError::DuplicatePlaceholder(n));
                }
                *slot = true;
                Ok(())
            }
            None => m.iter().try_for_each(|(_, v)| check_placeholders(v, seen)),
        },
        _ => Ok(()),
    }
}

/// Replaces placeholders (already validated) by their attachments.
fn fill_placeholders(v: &mut Value, buffers: &mut [Option<Bytes>]) {
    match v {
        Value::Array(a) => a.iter_mut().for_each(|v| fill_placeholders(v, buffers)),
        Value::Object(m) => match placeholder_num(m) {
            Some(Ok(n)) => {
                if let Some(b) = buffers.get_mut(n).and_then(Option::take) {
                    *v = Value::Binary(b);
                }
            }
            _ => m
                .iter_mut()
                .for_each(|(_, v)| fill_placeholders(v, buffers)),
        },
        _ => {}
    }
}
