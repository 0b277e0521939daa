//! Sans-IO Engine.IO v4 server core, byte-compatible with Node's
//! `engine.io` 6 as seen by `engine.io-client` 6 / `socket.io-client` 4.
//!
//! No sockets, no async runtime, no clocks: requests, bodies and WebSocket
//! messages go in, [`Event`]s, [`Transmit`]s and HTTP answers come out, and
//! time is an [`Instant`](std::time::Instant) argument.
//!
//! * [`packet`] — the packet types and their encoding ([`Packet`]).
//! * [`payload`] — long-polling bodies (`4hello\x1e4world`).
//! * [`request`] — query parsing and Node's request checks ([`route`]),
//!   refusals as [`EngineError`]s with Node's exact bodies.
//! * [`open`] — the open packet and session ids.
//! * [`session`] — the per-session state machine ([`Session`]): heartbeat,
//!   polling cycle, upgrade to WebSocket, close.
//!
//! # Example: a polling handshake, a message each way, and an upgrade
//!
//! ```
//! use std::time::{Duration, Instant};
//! use bytes::Bytes;
//! use http::Method;
//! use switchboard_engineio::{
//!     route, Config, EngineQuery, Event, Message, PollOutcome, Route, Session, SidGenerator,
//!     Transmit, WsMessage,
//! };
//!
//! let config = Config::default();
//! let t0 = Instant::now();
//!
//! // GET /engine.io/?EIO=4&transport=polling&t=N8hyd6w
//! let query = EngineQuery::parse("EIO=4&transport=polling&t=N8hyd6w");
//! let Ok(Route::Handshake { .. }) = route(&Method::GET, &query, None, false, &config) else {
//!     panic!("valid handshake");
//! };
//! let sid = SidGenerator::new().next_sid();
//! let mut session = Session::new_polling(&sid, config.clone(), t0);
//! let PollOutcome::Respond(body) = session.poll_request(t0).unwrap() else { panic!() };
//! assert!(body.starts_with(b"0{\"sid\":\""));
//!
//! // The client POSTs two messages.
//! session.post(t0, None, Bytes::from_static(b"4hello\x1e4world")).unwrap();
//! assert_eq!(session.poll_event(), Some(Event::Message(Message::Text("hello".into()))));
//! assert_eq!(session.poll_event(), Some(Event::Message(Message::Text("world".into()))));
//!
//! // The client polls; the application answers.
//! assert_eq!(session.poll_request(t0).unwrap(), PollOutcome::Park);
//! session.send_text("hi");
//! assert_eq!(session.poll_transmit(), Some(Transmit::PollResponse(Bytes::from_static(b"4hi"))));
//!
//! // Upgrade: the client opens a WebSocket with the sid, probes, upgrades.
//! let ws = session.ws_open(t0, false).unwrap();
//! session.ws_message(t0, ws, WsMessage::Text("2probe".into()));
//! assert_eq!(
//!     session.poll_transmit(),
//!     Some(Transmit::Ws { ws, message: WsMessage::Text("3probe".into()) })
//! );
//! session.ws_message(t0, ws, WsMessage::Text("5".into()));
//! assert!(session.is_upgraded());
//!
//! // Heartbeat: a ping every 25 s, now over the WebSocket.
//! assert_eq!(session.poll_timeout(), Some(t0 + Duration::from_secs(25)));
//! session.handle_timeout(t0 + Duration::from_secs(25));
//! assert_eq!(
//!     session.poll_transmit(),
//!     Some(Transmit::Ws { ws, message: WsMessage::Text("2".into()) })
//! );
//! ```
#![warn(missing_docs)]

pub mod config;
mod deadline;
pub mod error;
pub mod open;
pub mod packet;
pub mod payload;
pub mod request;
pub mod session;
pub mod transport;
mod utf8_bytes;

pub use config::Config;
pub use deadline::Deadline;
pub use error::{EngineError, ErrorCode};
pub use open::{sid_from_bytes, OpenPacket, SidGenerator};
pub use packet::{DecodeError, Message, Packet, PacketType, PreparedText, WsMessage};
pub use payload::{decode_payload, encode_payload, PayloadDecoder, RECORD_SEPARATOR};
pub use request::{
    has_invalid_header_char, is_websocket_upgrade, route, route_parts, EngineQuery, Route,
};
pub use session::{
    CloseReason, Event, PollOutcome, ReadyState, Session, Transmit, WsId, POLLING_CLOSE_TIMEOUT,
    POLL_CONTENT_TYPE, POST_BODY, POST_CONTENT_TYPE, UPGRADE_CHECK_INTERVAL,
};
pub use transport::{TransportKind, Transports};
pub use utf8_bytes::Utf8Bytes;
