//! Sans-IO WebSocket protocol core (RFC 6455) with permessage-deflate
//! (RFC 7692).
//!
//! No sockets, no async runtime, no clocks: bytes go in, [`Event`]s and
//! bytes come out. The transport owns IO and timers.
//!
//! * [`handshake`] — validate an upgrade request ([`handshake::accept`]) or
//!   build one as a client ([`handshake::ClientRequest`]).
//! * [`Connection`] — the framing state machine: feed received bytes to
//!   [`Connection::receive`], handle [`Event`]s, send through the
//!   [`Writer`], and flush [`Writer::take_output`] with one vectored write.
//! * [`encode_frame`] — encode a broadcast once and share the same
//!   [`bytes::Bytes`] with every recipient via [`Writer::send_prepared`].
//!
//! # Example: an echo server driven by a client, all in memory
//!
//! ```
//! use switchboard_websocket::{Config, Connection, Event, Role};
//!
//! let mut server = Connection::new(Role::Server, Config::default());
//! let mut client = Connection::new(Role::Client, Config::default());
//!
//! // The client sends a (masked) text message.
//! client.writer().send_text("hello");
//! let mut wire = Vec::new();
//! client.writer().take_output(&mut wire);
//!
//! // The server echoes it from inside the event callback.
//! for chunk in wire {
//!     let mut data = chunk.to_vec();
//!     server
//!         .receive(&mut data, |event, writer| {
//!             if let Event::Text(text) = event {
//!                 writer.send_text(text);
//!             }
//!         })
//!         .unwrap();
//! }
//!
//! // The client receives the echo.
//! let mut wire = Vec::new();
//! server.writer().take_output(&mut wire);
//! let mut echoed = String::new();
//! for chunk in wire {
//!     let mut data = chunk.to_vec();
//!     client
//!         .receive(&mut data, |event, _| {
//!             if let Event::Text(text) = event {
//!                 echoed.push_str(text);
//!             }
//!         })
//!         .unwrap();
//! }
//! assert_eq!(echoed, "hello");
//! ```
#![warn(missing_docs)]

pub mod close;
pub mod connection;
pub mod deflate;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod mask;
mod output_pool;
mod rng;
pub mod utf8;

pub use close::CloseCode;
pub use connection::{Config, Connection, Event, Role, Writer};
pub use deflate::{DeflateConfig, DeflateParams};
pub use error::{Error, ProtocolError};
pub use frame::{encode_frame, encode_frame_into, FrameHeader, OpCode};
pub use handshake::{
    accept, accept_key, Accepted, ClientAccepted, ClientHandshake, ClientRequest, HandshakeError,
    ServerOptions,
};
pub use mask::{apply_mask, apply_mask_offset};
pub use utf8::{Utf8Error, Utf8Validator};
