//! Sans-IO Socket.IO v5 packet layer, wire-compatible with
//! `socket.io-parser` 4 (what `socket.io-client` 4 and the Node `socket.io`
//! 4 server speak).
//!
//! No sockets and no Engine.IO: each Engine.IO message goes in, packets come
//! out, and packets go out as one text message plus binary attachments.
//!
//! * [`Packet`] / [`PacketType`] — the seven packet types, namespace, ack id
//!   and payload.
//! * [`Value`] — the payload model: JSON with ordered objects, plus
//!   [`Value::Binary`] for `Buffer`s; [`to_value`] / [`from_value`] bridge
//!   it to your `Serialize` / `Deserialize` types.
//! * [`encode()`] — a packet to `<type>[<n>-][<nsp>,][<id>][<json>]` plus
//!   attachments; [`encode_event_raw`] for broadcasts of pre-serialized
//!   JSON without building a tree.
//! * [`Decoder`] — the receiving state machine, with socket.io-parser's
//!   validation and binary reassembly; any [`DecodeError`] should close the
//!   connection (Node's `"parse error"`).
//!
//! # Example: a binary event, encoded then decoded
//!
//! ```
//! use bytes::Bytes;
//! use switchboard_socketio_proto::{encode, Decoder, Packet, PacketType, Value};
//!
//! let packet = Packet::event(
//!     "/admin",
//!     "upload",
//!     vec![Value::from("a.png"), Value::Binary(Bytes::from_static(b"\x89PNG"))],
//! )
//! .with_id(7);
//! let wire = encode(&packet);
//! assert_eq!(
//!     wire.text,
//!     r#"51-/admin,7["upload","a.png",{"_placeholder":true,"num":0}]"#
//! );
//! assert_eq!(wire.attachments, vec![Bytes::from_static(b"\x89PNG")]);
//!
//! let mut decoder = Decoder::new();
//! assert_eq!(decoder.feed_text(&wire.text).unwrap(), None); // waits for 1 attachment
//! let got = decoder.feed_binary(wire.attachments[0].clone()).unwrap().unwrap();
//! assert_eq!(got.kind, PacketType::Event);
//! assert_eq!(got.event_name(), Some("upload"));
//! assert_eq!(got.data, packet.data);
//!
//! // Typed arguments: binary surfaces as bytes.
//! let (name, image): (String, Bytes) =
//!     switchboard_socketio_proto::from_value(Value::Array(got.args().unwrap().to_vec())).unwrap();
//! assert_eq!((name.as_str(), &image[..]), ("a.png", &b"\x89PNG"[..]));
//! ```
#![warn(missing_docs)]

pub mod de;
pub mod decode;
pub mod encode;
pub mod error;
mod json;
pub mod packet;
pub mod ser;
pub mod value;

pub use de::from_value;
pub use decode::{Decoder, DecoderConfig};
pub use encode::{encode, encode_event_raw, Encoded};
pub use error::DecodeError;
pub use packet::{is_reserved_event, is_valid_namespace, Packet, PacketType, RESERVED_EVENTS};
pub use ser::to_value;
pub use value::{ContainsBinary, Map, Value};
