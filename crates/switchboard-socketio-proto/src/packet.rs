//! The Socket.IO v5 packet: its seven types ([`PacketType`]), the [`Packet`]
//! struct, and the event names the JavaScript implementations reserve.

use std::fmt;

use crate::value::Value;

/// Event names that can be neither sent nor received as events
/// (socket.io-parser `RESERVED_EVENTS`): they have a meaning of their own in
/// the JavaScript client, server or `EventEmitter`.
pub const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// Whether `name` is one of [`RESERVED_EVENTS`].
pub fn is_reserved_event(name: &str) -> bool {
    RESERVED_EVENTS.contains(&name)
}

/// Whether `nsp` can be written on the wire and read back unchanged: it
/// starts with `/` and holds no `,` (which ends the namespace on the wire,
/// socket.io-parser rejects it when encoding) and no ASCII control
/// character (which this crate's decoder rejects).
pub fn is_valid_namespace(nsp: &str) -> bool {
    nsp.starts_with('/') && !nsp.bytes().any(|b| b == b',' || b < 0x20 || b == 0x7f)
}

/// The packet type, the first character of every packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PacketType {
    /// `0`: connect to a namespace (client: optional auth object; server:
    /// `{"sid": ...}`).
    Connect = 0,
    /// `1`: leave a namespace; carries no data.
    Disconnect = 1,
    /// `2`: an event: `["name", args...]`, optionally with an ack id.
    Event = 2,
    /// `3`: the answer to an event that carried an ack id: `[args...]`.
    Ack = 3,
    /// `4`: the server refused a namespace connection: an object
    /// (`{"message": ...}`) or a string.
    ConnectError = 4,
    /// `5`: an event whose arguments hold binary attachments.
    BinaryEvent = 5,
    /// `6`: an ack whose arguments hold binary attachments.
    BinaryAck = 6,
}

impl PacketType {
    /// The type for the digit `b` (`b'0'`..=`b'6'`).
    pub fn from_digit(b: u8) -> Option<PacketType> {
        Some(match b {
            b'0' => PacketType::Connect,
            b'1' => PacketType::Disconnect,
            b'2' => PacketType::Event,
            b'3' => PacketType::Ack,
            b'4' => PacketType::ConnectError,
            b'5' => PacketType::BinaryEvent,
            b'6' => PacketType::BinaryAck,
            _ => return None,
        })
    }

    /// The digit this type is written as.
    pub fn as_digit(self) -> char {
        (b'0' + self as u8) as char
    }

    /// Whether this is [`BinaryEvent`](Self::BinaryEvent) or
    /// [`BinaryAck`](Self::BinaryAck) (the types that carry attachments).
    pub fn is_binary(self) -> bool {
        matches!(self, PacketType::BinaryEvent | PacketType::BinaryAck)
    }

    /// The type with the binary distinction removed: `BinaryEvent` →
    /// `Event`, `BinaryAck` → `Ack`, others unchanged. The decoder returns
    /// packets in this form, like socket.io-parser.
    pub fn without_binary(self) -> PacketType {
        match self {
            PacketType::BinaryEvent => PacketType::Event,
            PacketType::BinaryAck => PacketType::Ack,
            other => other,
        }
    }
}

impl fmt::Display for PacketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PacketType::Connect => "CONNECT",
            PacketType::Disconnect => "DISCONNECT",
            PacketType::Event => "EVENT",
            PacketType::Ack => "ACK",
            PacketType::ConnectError => "CONNECT_ERROR",
            PacketType::BinaryEvent => "BINARY_EVENT",
            PacketType::BinaryAck => "BINARY_ACK",
        })
    }
}

/// One Socket.IO packet.
///
/// Binary data sits inside [`data`](Self::data) as [`Value::Binary`], where
/// the sender put it; the encoder turns it into placeholders plus
/// attachments and the decoder puts the attachments back.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    /// The packet type. The decoder reports `BinaryEvent`/`BinaryAck` as
    /// `Event`/`Ack` (as socket.io-parser does); the encoder picks the
    /// binary form by itself whenever `data` holds binary.
    pub kind: PacketType,
    /// The namespace, `"/"` by default (an empty string encodes as `"/"`).
    pub nsp: String,
    /// The acknowledgement id, for an event that wants an answer and for
    /// the answer itself.
    pub id: Option<u64>,
    /// The payload: absent, or an object / array / string depending on
    /// `kind` (see [`Decoder`](crate::Decoder) for the rules).
    pub data: Option<Value>,
    /// On a decoded packet: how many binary attachments it arrived with.
    /// Ignored by the encoder, which counts the binary values in `data`.
    pub attachments: usize,
}

impl Packet {
    /// A packet of type `kind` in the main namespace `"/"`, with no id, data
    /// or attachments.
    pub fn new(kind: PacketType) -> Packet {
        Packet {
            kind,
            nsp: "/".to_owned(),
            id: None,
            data: None,
            attachments: 0,
        }
    }

    /// An EVENT packet: `data` is `[event, args...]`.
    pub fn event(nsp: &str, event: &str, args: Vec<Value>) -> Packet {
        let mut data = Vec::with_capacity(args.len() + 1);
        data.push(Value::from(event));
        data.extend(args);
        Packet::new(PacketType::Event)
            .with_nsp(nsp)
            .with_data(Value::Array(data))
    }

    /// An ACK packet answering `id` with `args`.
    pub fn ack(nsp: &str, id: u64, args: Vec<Value>) -> Packet {
        Packet::new(PacketType::Ack)
            .with_nsp(nsp)
            .with_id(id)
            .with_data(Value::Array(args))
    }

    /// Sets the namespace.
    pub fn with_nsp(mut self, nsp: &str) -> Packet {
        nsp.clone_into(&mut self.nsp);
        self
    }

    /// Sets the acknowledgement id.
    pub fn with_id(mut self, id: u64) -> Packet {
        self.id = Some(id);
        self
    }

    /// Sets the payload.
    pub fn with_data(mut self, data: Value) -> Packet {
        self.data = Some(data);
        self
    }

    /// For an event (binary or not) whose first element is a string: the
    /// event name. (Node also accepts a number as the first element.)
    pub fn event_name(&self) -> Option<&str> {
        if self.kind.without_binary() != PacketType::Event {
            return None;
        }
        self.data.as_ref()?.as_array()?.first()?.as_str()
    }

    /// For an event: the arguments after the event name; for an ack: all
    /// the arguments. `None` for other types.
    pub fn args(&self) -> Option<&[Value]> {
        let all = self.data.as_ref()?.as_array()?;
        match self.kind.without_binary() {
            PacketType::Event => all.get(1..),
            PacketType::Ack => Some(all),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_and_helpers() {
        for d in b'0'..=b'6' {
            let t = PacketType::from_digit(d).unwrap();
            assert_eq!(t.as_digit() as u8, d);
        }
        assert_eq!(PacketType::from_digit(b'7'), None);
        assert_eq!(PacketType::BinaryAck.without_binary(), PacketType::Ack);
        assert!(PacketType::BinaryEvent.is_binary());
        assert_eq!(PacketType::ConnectError.to_string(), "CONNECT_ERROR");
        assert!(is_reserved_event("newListener"));
        assert!(!is_reserved_event("message"));
        assert!(is_valid_namespace("/admin"));
        assert!(!is_valid_namespace("admin"));
        assert!(!is_valid_namespace("/a,b"));
        assert!(!is_valid_namespace("/a\nb"));

        let p = Packet::event("/", "hello", vec![1.into()]);
        assert_eq!(p.event_name(), Some("hello"));
        assert_eq!(p.args(), Some(&[Value::from(1)][..]));
        let a = Packet::ack("/x", 3, vec![]);
        assert_eq!(a.event_name(), None);
        assert_eq!(a.args(), Some(&[][..]));
        assert_eq!(Packet::new(PacketType::Connect).args(), None);
    }
}
