//! Sans-IO STOMP 1.0 / 1.1 / 1.2 protocol core.
//!
//! No sockets, no async runtime, no clock: bytes and [`std::time::Instant`]s
//! go in, [`Event`]s and bytes come out. The transport (raw TCP, WebSocket,
//! SockJS) moves the bytes and runs the timer.
//!
//! * [`Frame`], [`Command`], [`Headers`] — the frame model.
//! * [`Decoder`] — incremental parsing with [`Limits`] (split anywhere,
//!   LF or CRLF, per-version escaping, `content-length` binary bodies).
//! * [`encode_frame`] and [`MessageTemplate`] — encoding; a broadcast is
//!   encoded once and each subscriber gets a small head plus shared
//!   [`bytes::Bytes`].
//! * [`negotiate()`] — `accept-version`, `heart-beat`, `host`, `login`.
//! * [`ServerSession`] — the server-side state machine that enforces the
//!   protocol rules, answers violations with ERROR and runs heart-beats.
//!
//! # Example: a client connects, subscribes, sends, and gets its message
//!
//! ```
//! use std::time::Instant;
//! use switchboard_stomp_proto::{Config, Event, MessageTemplate, ServerSession};
//!
//! let now = Instant::now();
//! let mut session = ServerSession::new(Config::default());
//! session
//!     .receive(
//!         now,
//!         b"STOMP\naccept-version:1.2\nhost:/\n\n\0\
//!           SUBSCRIBE\nid:s1\ndestination:/topic/chat\n\n\0\
//!           SEND\ndestination:/topic/chat\nreceipt:r1\n\nhi\0",
//!     )
//!     .unwrap();
//!
//! let mut out = Vec::new();
//! while let Some(event) = session.poll_event() {
//!     match event {
//!         Event::Connect(_) => session.accept(now, &[]).unwrap(),
//!         Event::Subscribe { .. } => {}
//!         Event::Send { destination, body, .. } => {
//!             // The hub would fan this out; encode once, send to each.
//!             let template = MessageTemplate::new(&destination, &[], &body);
//!             session.send_prepared("s1", &template).unwrap();
//!         }
//!         other => panic!("{other:?}"),
//!     }
//! }
//! session.take_output(now, &mut out);
//! let wire: Vec<u8> = out.concat();
//! let text = String::from_utf8(wire).unwrap();
//! assert!(text.starts_with("CONNECTED\n"));
//! assert!(text.contains("MESSAGE\nsubscription:s1\nmessage-id:0\ndestination:/topic/chat\n"));
//! assert!(text.ends_with("RECEIPT\nreceipt-id:r1\n\n\0"));
//! ```

#![deny(missing_docs)]

pub mod decoder;
pub mod encoder;
pub mod error;
mod escape;
pub mod event;
pub mod frame;
mod heartbeat;
pub mod negotiate;
pub mod session;
pub mod subscription;
pub mod version;

pub use decoder::{Decoder, Item, Limits};
pub use encoder::{encode_frame, MessageTemplate, PreparedMessage, HEART_BEAT};
pub use error::{DecodeError, NegotiateError, ProtocolError, SendError};
pub use event::{ConnectRequest, Event};
pub use frame::{Command, Frame, Headers};
pub use negotiate::{
    negotiate, negotiate_heart_beat, negotiate_version, ConnectParams, HeartBeat,
    HeartBeatIntervals,
};
pub use session::{CloseReason, Config, ServerSession};
pub use subscription::AckMode;
pub use version::Version;
