//! Sans-IO SockJS server core, speaking protocol 0.3.3 as sockjs-node and
//! Spring's SockJS service do, to the unmodified `sockjs-client` 1.x.
//!
//! No sockets, no async runtime, no clocks: paths, headers and bodies go
//! in, [`Response`]s, framed bytes and [`Event`]s come out, and time is an
//! [`Instant`](std::time::Instant) (or a
//! [`SystemTime`](std::time::SystemTime) where an HTTP date is written).
//!
//! * [`path`] — which endpoint a path names ([`Route`]) and its methods.
//! * [`frame`] — `o`, `h`, `a[...]`, `c[...]` and the outbound string
//!   escaping, done once per message ([`EncodedMessage`]).
//! * [`receiver`] — the receiving transports' wrapping, preludes and
//!   content types ([`ReceiverKind`], [`Callback`]).
//! * [`inbound`] — `xhr_send` / `jsonp_send` bodies and WebSocket
//!   messages.
//! * [`response`], [`iframe`], [`headers`], [`upgrade`] — every HTTP
//!   answer, byte for byte as the 0.3.3 protocol test suite expects.
//! * [`session`] — the per-session state machine ([`Session`]): open,
//!   queue, heartbeat, stream limit, disconnect delay, close.
//! * [`error`] — every refusal and its answer ([`SockJsError`]).
//!
//! # Example: an XHR-polling session, a message each way, and a close
//!
//! ```
//! use std::time::{Duration, Instant};
//! use bytes::Bytes;
//! use http::{HeaderMap, Method};
//! use switchboard_sockjs::{
//!     parse_xhr_send, response, CloseReason, EncodedMessage, Event, Flow, ReceiverKind, Route,
//!     Session, SockJsConfig,
//! };
//!
//! let config = SockJsConfig::default();
//! let headers = HeaderMap::new();
//! let t0 = Instant::now();
//!
//! // POST /echo/000/abc/xhr — the prefix `/echo` already stripped.
//! let route = Route::parse("/000/abc/xhr");
//! route.check_method(&Method::POST, &config).unwrap();
//! let Route::Session { transport, .. } = route else { unreachable!() };
//! let kind = ReceiverKind::for_transport(transport, None).unwrap().unwrap();
//! let head = response::transport(&kind, &headers, &config);
//! assert_eq!(head.status, 200);
//! let mut session = Session::new(t0, &config); // unknown id: a new session
//! let first = session.attach(t0, kind.clone());
//! assert_eq!((first.data, first.flow), (vec![Bytes::from_static(b"o\n")], Flow::End));
//! assert_eq!(session.poll_event(), Some(Event::Open));
//!
//! // POST /echo/000/abc/xhr_send  ["hi"]
//! session.handle_messages(parse_xhr_send(br#"["hi"]"#).unwrap());
//! assert_eq!(response::xhr_send_ok(&headers, &config).status, 204);
//! let Some(Event::Message(text)) = session.poll_event() else { panic!() };
//!
//! // The application echoes it; the next poll takes it.
//! session.send(EncodedMessage::new(&text)).unwrap();
//! let poll = session.attach(t0, kind.clone());
//! assert_eq!(poll.data, vec![Bytes::from_static(b"a[\"hi\"]\n")]);
//!
//! // The application closes: polls get the close frame until the
//! // session is gone, 5 s after the last one.
//! session.close(3000, "Go away!");
//! let last = session.attach(t0, kind);
//! assert_eq!(last.data, vec![Bytes::from_static(b"c[3000,\"Go away!\"]\n")]);
//! session.handle_timeout(t0 + Duration::from_secs(5));
//! assert!(session.is_closed());
//! assert!(matches!(session.poll_event(), Some(Event::Closed(CloseReason::Application(_)))));
//! ```
#![warn(missing_docs)]

pub mod config;
pub mod error;
mod form;
pub mod frame;
pub mod headers;
pub mod iframe;
pub mod inbound;
pub mod path;
pub mod receiver;
pub mod response;
pub mod session;
pub mod upgrade;

pub use config::{SockJsConfig, DEFAULT_CLIENT_LIBRARY_URL};
pub use error::{BrokenFraming, InboundError, SockJsError};
pub use frame::{json_quote, quote, CloseFrame, EncodedMessage, Frame};
pub use iframe::IframePage;
pub use inbound::{parse_jsonp_send, parse_ws_message, parse_xhr_send};
pub use path::{Route, Transport};
pub use receiver::{Callback, ReceiverKind};
pub use response::Response;
pub use session::{
    Attached, CloseReason, Event, Flow, ReceiverId, SendError, Session, SessionState,
};
pub use upgrade::check_websocket_upgrade;
