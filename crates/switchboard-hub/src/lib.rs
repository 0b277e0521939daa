//! # switchboard-hub
//!
//! The protocol-agnostic, runtime-agnostic pub/sub core of Switchboard: every
//! protocol's connections (WebSocket, Socket.IO, SockJS, STOMP) meet in one
//! [`Hub`]. It owns topics (per-topic sequence numbers, bounded history for
//! recovery), presence, per-connection bounded [`Mailbox`]es with a
//! slow-consumer policy, and a [`Backplane`] hook for scale-out.
//!
//! A transport calls [`Hub::connect`] per connection, then
//! [`Client::subscribe`] / [`Client::publish`] as its protocol requires, and
//! runs a writer task that waits on [`Mailbox::poll_ready`], drains the
//! mailbox and encodes each [`Delivery`] (sharing encodings through
//! [`Publication::encoded`]). When [`Mailbox::is_overflowed`] is set, it
//! closes the connection as a slow consumer.
//!
//! ```
//! use switchboard_hub::{ClientInfo, Delivery, Hub, HubConfig, Payload};
//!
//! let hub = Hub::new(HubConfig::default());
//! let alice = hub.connect(ClientInfo::new("alice", "websocket"));
//! let bob = hub.connect(ClientInfo::new("bob", "stomp"));
//!
//! alice.subscribe("chat", None).unwrap();
//! let sub = bob.subscribe("chat", Some(0)).unwrap();
//! assert_eq!(sub.presence.count, 2);
//!
//! let seq = bob.publish("chat", Payload::text("hello")).unwrap();
//! assert_eq!(seq, 1);
//!
//! let mut out = Vec::new();
//! alice.mailbox().drain(&mut out);
//! // alice saw bob join, then his message.
//! assert!(matches!(&out[0], Delivery::Presence(ev) if &*ev.name == "bob"));
//! match &out[1] {
//!     Delivery::Message(p) => {
//!         assert_eq!(p.seq, 1);
//!         assert_eq!(p.from.as_deref(), Some("bob"));
//!         assert_eq!(&p.payload.data[..], b"hello");
//!     }
//!     other => panic!("unexpected {other:?}"),
//! }
//!
//! // A late joiner recovers what it missed.
//! let carol = hub.connect(ClientInfo::new("carol", "socket.io"));
//! let sub = carol.subscribe("chat", Some(0)).unwrap();
//! assert!(sub.recovered);
//! assert_eq!(sub.replay.len(), 1);
//!
//! drop(bob); // leave event to alice and carol
//! assert_eq!(hub.presence("chat").count, 2);
//! ```
#![warn(missing_docs)]

mod backplane;
mod client;
mod config;
mod error;
mod history;
mod hub;
mod mailbox;
mod presence;
mod publication;
mod registry;
pub mod tables;
mod topic;

pub use backplane::{Backplane, InMemoryBackplane};
pub use client::{Client, ClientId, ClientInfo, Credentials, Grants, Subscribed};
pub use config::{Action, AuthorizeFn, HubConfig};
pub use error::{validate_topic, HubError, MAX_TOPIC_LEN};
pub use history::HistoryRange;
pub use hub::{Hub, HubStats, Sequenced, SequencedEntry, SequencedOutcome, WeakHub};
pub use mailbox::{CatchUp, Delivery, HistoryReply, Mailbox, DELIVERY_OVERHEAD};
pub use presence::{MemberCounts, Presence, PresenceEvent, PresenceKind};
pub use publication::{now_ms, Encoding, EncodingCache, Payload, PayloadKind, Publication};
pub use registry::{FanoutHistogram, FanoutSnapshot, ProtocolStats, FANOUT_BUCKETS_US};
pub use tables::Shrink;
