//! The server side of one STOMP connection as a sans-IO state machine:
//! bytes in ([`ServerSession::receive`]), [`Event`]s out, frames out
//! ([`ServerSession::take_output`]), timers in ([`ServerSession::handle_timeout`]).
//! It enforces the protocol rules; delivery and routing belong to the hub.
//!
//! # Lifecycle
//!
//! 1. The first frame must be CONNECT or STOMP. The session negotiates the
//!    version and heart-beats and reports [`Event::Connect`]; the
//!    application answers with [`accept`](ServerSession::accept) (CONNECTED)
//!    or [`reject`](ServerSession::reject) (ERROR, close). Bytes that arrive
//!    meanwhile are held (up to `max_frame_size`) and decoded on accept.
//! 2. Connected: every valid client frame becomes one event, in order.
//! 3. Any rule violation queues an ERROR frame (`message` header, the
//!    offending frame's `receipt-id`, a text body) and closes the session:
//!    [`is_closed`](ServerSession::is_closed) turns true, queued events are
//!    dropped and no further events come. Flush the output, then close the
//!    transport.
//!
//! # Receipts
//!
//! The application cannot forget a RECEIPT: for an event whose frame had a
//! `receipt` header, the session queues the RECEIPT when the application is
//! done with it, i.e. at its next call of `poll_event`, `take_output`,
//! `poll_transmit`, `handle_timeout` or `close`. Handle each event before
//! polling the next. [`send_error`](ServerSession::send_error) turns the
//! pending receipt into the ERROR's `receipt-id` instead; and
//! [`defer_receipt`](ServerSession::defer_receipt) takes it over for
//! asynchronous processing (then call
//! [`send_receipt`](ServerSession::send_receipt)).
//!
//! # Acknowledgements
//!
//! The session tracks subscriptions (so it can reject duplicate ids and
//! unknown UNSUBSCRIBEs) and, for `client` / `client-individual`
//! subscriptions, the messages sent through it that await an ACK/NACK. It
//! assigns message ids itself (a per-connection counter, also used as the
//! 1.2 `ack` value), validates every ACK/NACK against what is outstanding
//! (unknown → ERROR), and reports the covered ids (cumulative in `client`
//! mode). Transactional ACKs release messages immediately; undoing them on
//! ABORT is left to the broker.
//!
//! # Heart-beats
//!
//! When the negotiated outgoing interval passes without anything taken from
//! the output, [`handle_timeout`](ServerSession::handle_timeout) queues an
//! EOL. When nothing arrives for the incoming interval times
//! [`Config::heart_beat_grace`] (default 1.5, as ActiveMQ's
//! `hbGracePeriodMultiplier`), the session closes without an ERROR frame
//! ([`CloseReason::HeartBeatTimeout`]): the peer is presumed gone.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use crate::decoder::{Decoder, Item, Limits};
use crate::encoder::{
    encode_frame, put_content_length, put_message_head, put_message_headers, MessageTemplate,
    HEART_BEAT,
};
use crate::error::{NegotiateError, ProtocolError, SendError};
use crate::event::{ConnectRequest, Event};
use crate::frame::{Command, Frame};
use crate::heartbeat::HeartBeatTimers;
use crate::negotiate::{negotiate, HeartBeat, HeartBeatIntervals};
use crate::subscription::{AckMode, Subscriptions};
use crate::version::Version;

/// Settings of a [`ServerSession`].
#[derive(Debug, Clone)]
pub struct Config {
    /// Frame size limits for the decoder.
    pub limits: Limits,
    /// Versions the server accepts. Default: 1.0, 1.1 and 1.2.
    pub versions: Vec<Version>,
    /// The server's `heart-beat` (`sx,sy`). Default: 10 s both ways.
    pub heart_beat: HeartBeat,
    /// A silent client is dropped after the incoming interval times this
    /// factor (at least 1.0). Default 1.5.
    pub heart_beat_grace: f64,
    /// Value of the CONNECTED `server` header, if any.
    pub server: Option<String>,
    /// Active subscriptions per connection. Default 1024.
    pub max_subscriptions: usize,
    /// Open transactions per connection. Default 64.
    pub max_transactions: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            limits: Limits::default(),
            versions: Version::ALL.to_vec(),
            heart_beat: HeartBeat::from_millis(10_000, 10_000),
            heart_beat_grace: 1.5,
            server: Some(concat!("switchboard/", env!("CARGO_PKG_VERSION")).to_owned()),
            max_subscriptions: 1024,
            max_transactions: 64,
        }
    }
}

/// Why a session closed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The client broke a rule; an ERROR frame was queued.
    PeerError(ProtocolError),
    /// The application sent an ERROR ([`ServerSession::send_error`] or
    /// [`ServerSession::reject`]).
    ServerError,
    /// The client sent DISCONNECT.
    Disconnect,
    /// Nothing arrived within the heart-beat deadline; no ERROR was sent.
    HeartBeatTimeout,
    /// The application called [`ServerSession::close`].
    Local,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitingConnect,
    ConnectPending,
    Connected,
    /// DISCONNECT received; earlier events are still being handed out.
    Disconnecting,
    Closed,
}

/// Server side of one STOMP connection (see the [module docs](self)).
///
/// ```
/// use std::time::Instant;
/// use switchboard_stomp_proto::{Config, Event, ServerSession};
///
/// let now = Instant::now();
/// let mut session = ServerSession::new(Config::default());
/// session.receive(now, b"CONNECT\naccept-version:1.2\nhost:/\n\n\0").unwrap();
/// let Some(Event::Connect(req)) = session.poll_event() else { panic!() };
/// assert_eq!(req.host.as_deref(), Some("/"));
/// session.accept(now, &[("session", "s-1")]).unwrap();
///
/// session
///     .receive(now, b"SUBSCRIBE\nid:0\ndestination:/topic/a\n\n\0")
///     .unwrap();
/// let Some(Event::Subscribe { id, .. }) = session.poll_event() else { panic!() };
/// session
///     .send_message(&id, "/topic/a", &[], "hello".into())
///     .unwrap();
///
/// let mut out = Vec::new();
/// session.take_output(now, &mut out);
/// let wire: Vec<u8> = out.concat();
/// assert!(wire.starts_with(b"CONNECTED\nversion:1.2\n"));
/// assert!(wire.ends_with(b"content-length:5\n\nhello\0"));
/// ```
#[derive(Debug)]
pub struct ServerSession {
    /// Shared by the sessions of one server (see [`ServerSession::new`]).
    config: Arc<Config>,
    decoder: Decoder,
    state: State,
    version: Option<Version>,
    intervals: HeartBeatIntervals,
    timers: Option<HeartBeatTimers>,
    events: VecDeque<(Event, Option<String>)>,
    /// Receipt of the event last handed out, sent at the next flush point.
    current_receipt: Option<String>,
    output: VecDeque<Bytes>,
    scratch: BytesMut,
    /// Bytes received while the CONNECT awaits the application.
    pipelined: BytesMut,
    subscriptions: Subscriptions,
    /// Open transactions; boxed on the first BEGIN, as most connections
    /// never open one (8 bytes in every session instead of a set's 48).
    #[allow(clippy::box_collection)]
    transactions: Option<Box<HashSet<String>>>,
    next_message_id: u64,
    /// Boxed: every open connection carries the field, few close with a
    /// reason of many words.
    close_reason: Option<Box<CloseReason>>,
    /// The CONNECTED is queued: once it is taken, the buffers the
    /// handshake grew are given back.
    release_after_flush: bool,
}

impl ServerSession {
    /// A session waiting for CONNECT. A server with many connections passes
    /// one `Arc<Config>` to all of them rather than a `Config` each.
    pub fn new(config: impl Into<Arc<Config>>) -> Self {
        let config = config.into();
        ServerSession {
            decoder: Decoder::new(Version::V1_2, config.limits),
            config,
            state: State::AwaitingConnect,
            version: None,
            intervals: HeartBeatIntervals::default(),
            timers: None,
            events: VecDeque::new(),
            current_receipt: None,
            output: VecDeque::new(),
            scratch: BytesMut::new(),
            pipelined: BytesMut::new(),
            subscriptions: Subscriptions::default(),
            transactions: None,
            next_message_id: 0,
            release_after_flush: false,
            close_reason: None,
        }
    }

    /// The negotiated version (`None` before CONNECT).
    pub fn version(&self) -> Option<Version> {
        self.version
    }

    /// The negotiated heart-beat intervals (none before CONNECT).
    pub fn heart_beat(&self) -> HeartBeatIntervals {
        self.intervals
    }

    /// Whether a CONNECT was accepted and the session is not closed.
    pub fn is_connected(&self) -> bool {
        matches!(self.state, State::Connected | State::Disconnecting)
    }

    /// Whether the session is closed: no more events; flush the output and
    /// close the transport.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Why the session closed, once it has.
    pub fn close_reason(&self) -> Option<&CloseReason> {
        self.close_reason.as_deref()
    }

    /// The ack mode of an active subscription.
    pub fn ack_mode(&self, subscription: &str) -> Option<AckMode> {
        self.subscriptions.get(subscription).map(|s| s.ack)
    }

    /// How many messages of a subscription await acknowledgement.
    pub fn unacked(&self, subscription: &str) -> Option<usize> {
        self.subscriptions.unacked(subscription)
    }

    // ---- bytes in ------------------------------------------------------

    /// Feeds bytes received from the client.
    ///
    /// On a protocol violation the ERROR frame is already queued and the
    /// session closed when this returns the error. Bytes after the session
    /// closed (or after DISCONNECT) are ignored.
    pub fn receive(&mut self, now: Instant, data: &[u8]) -> Result<(), ProtocolError> {
        if data.is_empty() || matches!(self.state, State::Closed | State::Disconnecting) {
            return Ok(());
        }
        if let Some(t) = &mut self.timers {
            t.on_receive(now);
        }
        if self.state == State::ConnectPending {
            return self.hold(data);
        }
        self.process(data)
    }

    /// Keeps bytes pipelined behind a CONNECT until it is accepted.
    fn hold(&mut self, data: &[u8]) -> Result<(), ProtocolError> {
        let limit = self.config.limits.max_frame_size;
        if self.pipelined.len() + data.len() > limit {
            return Err(self.fail(ProtocolError::PipelineTooLarge { limit }, None));
        }
        self.pipelined.extend_from_slice(data);
        Ok(())
    }

    fn process(&mut self, data: &[u8]) -> Result<(), ProtocolError> {
        let mut input = data;
        while !input.is_empty() {
            match self.state {
                State::AwaitingConnect | State::Connected => {}
                State::ConnectPending => return self.hold(input),
                State::Disconnecting | State::Closed => return Ok(()),
            }
            match self.decoder.decode(&mut input) {
                Ok(None) => break,
                Ok(Some(Item::HeartBeat)) => {
                    let repeated = matches!(self.events.back(), Some((Event::HeartBeat, _)));
                    if self.state == State::Connected && !repeated {
                        self.push_event(Event::HeartBeat, None);
                    }
                }
                Ok(Some(Item::Frame(frame))) => self.handle_frame(frame)?,
                Err(e) => return Err(self.fail(e.into(), None)),
            }
        }
        Ok(())
    }

    fn handle_frame(&mut self, frame: Frame) -> Result<(), ProtocolError> {
        let receipt = match frame.command {
            Command::Connect | Command::Stomp => None,
            _ => frame.get("receipt").map(str::to_owned),
        };
        let result = match (self.state, frame.command) {
            (State::AwaitingConnect, Command::Connect | Command::Stomp) => self.on_connect(frame),
            (State::AwaitingConnect, other) => Err(ProtocolError::ConnectExpected(other)),
            _ => self.on_frame(frame, receipt.as_deref()),
        };
        match result {
            Ok(event) => {
                self.push_event(event, receipt);
                Ok(())
            }
            Err(e) => Err(self.fail(e, receipt)),
        }
    }

    /// Queues an event for [`poll_event`](Self::poll_event). Input usually
    /// yields one event at a time, taken before the next input: the queue
    /// starts with room for one (an element is ~200 bytes, and a growing
    /// queue would keep room for four); an idle session gives it back (see
    /// [`release_idle_buffers`](Self::release_idle_buffers)).
    fn push_event(&mut self, event: Event, receipt: Option<String>) {
        if self.events.capacity() == 0 {
            self.events.reserve_exact(1);
        }
        self.events.push_back((event, receipt));
    }

    fn on_connect(&mut self, frame: Frame) -> Result<Event, ProtocolError> {
        let params = negotiate(&frame, &self.config.versions, self.config.heart_beat)?;
        if frame.command == Command::Stomp && params.version == Version::V1_0 {
            return Err(ProtocolError::CommandNotInVersion {
                command: Command::Stomp,
                version: Version::V1_0,
            });
        }
        self.version = Some(params.version);
        self.decoder.set_version(params.version);
        self.intervals = params.heart_beat;
        self.state = State::ConnectPending;
        Ok(Event::Connect(ConnectRequest {
            command: frame.command,
            version: params.version,
            host: params.host,
            login: params.login,
            passcode: params.passcode,
            client_heart_beat: params.client_heart_beat,
            heart_beat: params.heart_beat,
            headers: frame.headers,
        }))
    }

    /// Validates a frame on a connected session and turns it into an event.
    fn on_frame(&mut self, frame: Frame, receipt: Option<&str>) -> Result<Event, ProtocolError> {
        let version = self.version.unwrap_or(Version::V1_2);
        let command = frame.command;
        let missing = |header: &'static str| ProtocolError::MissingHeader { command, header };
        let require = |name: &'static str| frame.get(name).map(str::to_owned).ok_or(missing(name));
        Ok(match command {
            Command::Connect | Command::Stomp => return Err(ProtocolError::AlreadyConnected),
            Command::Connected | Command::Message | Command::Receipt | Command::Error => {
                return Err(ProtocolError::UnexpectedCommand(command))
            }
            Command::Send => {
                let destination = require("destination")?;
                let transaction = self.check_transaction(&frame)?;
                Event::Send {
                    destination,
                    transaction,
                    headers: frame.headers,
                    body: frame.body,
                }
            }
            Command::Subscribe => {
                let destination = require("destination")?;
                let (id, explicit_id) = match frame.get("id") {
                    Some(id) => (id.to_owned(), true),
                    None if version == Version::V1_0 => (destination.clone(), false),
                    None => return Err(missing("id")),
                };
                let ack = match frame.get("ack") {
                    None => AckMode::Auto,
                    Some(m) => AckMode::parse(m, version)
                        .ok_or_else(|| ProtocolError::InvalidAckMode(m.to_owned()))?,
                };
                if self.subscriptions.contains(&id) {
                    return Err(ProtocolError::DuplicateSubscription(id));
                }
                let limit = self.config.max_subscriptions;
                if self.subscriptions.len() >= limit {
                    return Err(ProtocolError::TooManySubscriptions { limit });
                }
                self.subscriptions
                    .insert(id.clone(), destination.clone(), ack, explicit_id);
                Event::Subscribe {
                    id,
                    destination,
                    ack,
                    headers: frame.headers,
                }
            }
            Command::Unsubscribe => {
                let id = match (frame.get("id"), frame.get("destination")) {
                    (Some(id), _) => id.to_owned(),
                    (None, Some(d)) if version == Version::V1_0 => d.to_owned(),
                    (None, _) => return Err(missing("id")),
                };
                let (destination, unacked) = self
                    .subscriptions
                    .remove(&id)
                    .ok_or_else(|| ProtocolError::UnknownSubscription(id.clone()))?;
                Event::Unsubscribe {
                    id,
                    destination,
                    unacked,
                }
            }
            Command::Ack | Command::Nack => {
                if command == Command::Nack && version == Version::V1_0 {
                    return Err(ProtocolError::CommandNotInVersion { command, version });
                }
                let transaction = self.check_transaction(&frame)?;
                let (raw_id, subscription) = match version {
                    Version::V1_2 => (require("id")?, None),
                    Version::V1_1 => (require("message-id")?, Some(require("subscription")?)),
                    Version::V1_0 => (
                        require("message-id")?,
                        frame.get("subscription").map(str::to_owned),
                    ),
                };
                if let Some(sub) = &subscription {
                    if !self.subscriptions.contains(sub) {
                        return Err(ProtocolError::UnknownSubscription(sub.clone()));
                    }
                }
                let (subscription, message_ids) = raw_id
                    .parse::<u64>()
                    .ok()
                    .and_then(|id| self.subscriptions.ack(subscription.as_deref(), id))
                    .ok_or(ProtocolError::UnknownAck(raw_id))?;
                if command == Command::Ack {
                    Event::Ack {
                        subscription,
                        message_ids,
                        transaction,
                    }
                } else {
                    Event::Nack {
                        subscription,
                        message_ids,
                        transaction,
                    }
                }
            }
            Command::Begin => {
                let transaction = require("transaction")?;
                if self.in_transaction(&transaction) {
                    return Err(ProtocolError::TransactionExists(transaction));
                }
                let limit = self.config.max_transactions;
                let open = self.transactions.get_or_insert_with(Box::default);
                if open.len() >= limit {
                    return Err(ProtocolError::TooManyTransactions { limit });
                }
                open.insert(transaction.clone());
                Event::Begin { transaction }
            }
            Command::Commit | Command::Abort => {
                let transaction = require("transaction")?;
                if !self
                    .transactions
                    .as_mut()
                    .is_some_and(|t| t.remove(&transaction))
                {
                    return Err(ProtocolError::UnknownTransaction(transaction));
                }
                if command == Command::Commit {
                    Event::Commit { transaction }
                } else {
                    Event::Abort { transaction }
                }
            }
            Command::Disconnect => {
                self.state = State::Disconnecting;
                Event::Disconnect {
                    receipt: receipt.map(str::to_owned),
                }
            }
        })
    }

    /// Whether `transaction` is open.
    fn in_transaction(&self, transaction: &str) -> bool {
        self.transactions
            .as_ref()
            .is_some_and(|t| t.contains(transaction))
    }

    /// The frame's `transaction`, which must be open.
    fn check_transaction(&self, frame: &Frame) -> Result<Option<String>, ProtocolError> {
        match frame.get("transaction") {
            None => Ok(None),
            Some(t) if self.in_transaction(t) => Ok(Some(t.to_owned())),
            Some(t) => Err(ProtocolError::UnknownTransaction(t.to_owned())),
        }
    }

    /// Queues the ERROR for a peer violation and closes.
    fn fail(&mut self, error: ProtocolError, receipt: Option<String>) -> ProtocolError {
        self.flush_receipt();
        let mut frame = Frame::new(Command::Error).header("message", error.message());
        if let Some(r) = receipt {
            frame.headers.push("receipt-id", r);
        }
        if let ProtocolError::Negotiate(NegotiateError::UnsupportedVersion { supported, .. }) =
            &error
        {
            let list: Vec<&str> = supported.iter().map(|v| v.as_str()).collect();
            frame.headers.push("version", list.join(","));
        }
        frame.headers.push("content-type", "text/plain");
        frame.body = Bytes::from(format!("{error}\n"));
        self.queue_frame(&frame);
        self.close_with(CloseReason::PeerError(error.clone()));
        error
    }

    fn close_with(&mut self, reason: CloseReason) {
        self.state = State::Closed;
        self.close_reason = Some(Box::new(reason));
        self.events.clear();
        self.current_receipt = None;
        self.timers = None;
        self.pipelined = BytesMut::new();
    }

    // ---- events --------------------------------------------------------

    /// The next event, in arrival order; `None` when there is none or the
    /// session is closed. Also sends the RECEIPT of the previous event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.flush_receipt();
        let (event, receipt) = self.events.pop_front()?;
        if let Event::Disconnect { .. } = event {
            if let Some(r) = receipt {
                self.queue_receipt(&r);
            }
            self.close_with(CloseReason::Disconnect);
        } else {
            self.current_receipt = receipt;
        }
        Some(event)
    }

    /// Takes over the RECEIPT of the event last returned by
    /// [`poll_event`](Self::poll_event), for an application that finishes
    /// the work asynchronously; send it later with
    /// [`send_receipt`](Self::send_receipt).
    pub fn defer_receipt(&mut self) -> Option<String> {
        self.current_receipt.take()
    }

    /// Sends a RECEIPT for `receipt_id` (see
    /// [`defer_receipt`](Self::defer_receipt)).
    pub fn send_receipt(&mut self, receipt_id: &str) -> Result<(), SendError> {
        if self.state == State::Closed {
            return Err(SendError::Closed);
        }
        self.queue_receipt(receipt_id);
        Ok(())
    }

    fn flush_receipt(&mut self) {
        if let Some(r) = self.current_receipt.take() {
            self.queue_receipt(&r);
        }
    }

    fn queue_receipt(&mut self, receipt_id: &str) {
        let frame = Frame::new(Command::Receipt).header("receipt-id", receipt_id);
        self.queue_frame(&frame);
    }

    // ---- answering CONNECT ---------------------------------------------

    /// Accepts the pending CONNECT: sends CONNECTED with `version`,
    /// `heart-beat` (1.1+), `server` (if configured) and `extra_headers`
    /// (e.g. `session`, `user-name`), starts the heart-beat timers and
    /// decodes anything the client pipelined. Check
    /// [`is_closed`](Self::is_closed) afterwards: the pipelined bytes may
    /// have broken a rule.
    pub fn accept(
        &mut self,
        now: Instant,
        extra_headers: &[(&str, &str)],
    ) -> Result<(), SendError> {
        self.check_pending()?;
        let version = self.version.unwrap_or(Version::V1_0);
        let mut frame = Frame::new(Command::Connected);
        if version >= Version::V1_1 {
            frame.headers.push("version", version.as_str());
            frame
                .headers
                .push("heart-beat", self.config.heart_beat.to_header());
        }
        if let Some(server) = &self.config.server {
            frame.headers.push("server", server.as_str());
        }
        for &(name, value) in extra_headers {
            if !matches!(name, "version" | "heart-beat") {
                frame.headers.push(name, value);
            }
        }
        self.queue_frame(&frame);
        self.state = State::Connected;
        self.release_after_flush = true;
        self.timers = Some(HeartBeatTimers::new(
            self.intervals,
            self.config.heart_beat_grace,
            now,
        ));
        let pipelined = std::mem::take(&mut self.pipelined);
        // A violation here is reported through is_closed()/close_reason().
        let _ = self.process(&pipelined);
        Ok(())
    }

    /// Rejects the pending CONNECT with an ERROR frame and closes.
    pub fn reject(&mut self, message: &str, body: &str) -> Result<(), SendError> {
        self.check_pending()?;
        self.send_error(message, body)
    }

    fn check_pending(&self) -> Result<(), SendError> {
        match self.state {
            State::ConnectPending => Ok(()),
            State::AwaitingConnect => Err(SendError::NotConnected),
            State::Closed => Err(SendError::Closed),
            State::Connected | State::Disconnecting => Err(SendError::AlreadyConnected),
        }
    }

    // ---- frames out ----------------------------------------------------

    /// Sends a MESSAGE on `subscription` (id as in [`Event::Subscribe`]).
    ///
    /// The session adds `subscription`, `message-id`, `ack` (1.2, non-auto
    /// subscriptions), `destination` and `content-length`; those names in
    /// `headers` are ignored. The body is not copied. Returns the message
    /// id, which ACK/NACK events refer to.
    pub fn send_message(
        &mut self,
        subscription: &str,
        destination: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<u64, SendError> {
        let (version, message_id) = self.start_message(subscription)?;
        put_message_headers(&mut self.scratch, version, destination, headers);
        put_content_length(&mut self.scratch, body.len());
        self.output.push_back(self.scratch.split().freeze());
        if !body.is_empty() {
            self.output.push_back(body);
        }
        self.output.push_back(Bytes::from_static(b"\0"));
        Ok(message_id)
    }

    /// Sends a MESSAGE encoded once for many subscribers: costs one small
    /// head plus a clone of the template's shared [`Bytes`]. Returns the
    /// message id.
    pub fn send_prepared(
        &mut self,
        subscription: &str,
        template: &MessageTemplate,
    ) -> Result<u64, SendError> {
        let (version, message_id) = self.start_message(subscription)?;
        self.output.push_back(self.scratch.split().freeze());
        self.output.push_back(template.shared(version).clone());
        Ok(message_id)
    }

    /// Sends a MESSAGE whose shared tail was encoded once for every
    /// version ([`MessageTemplate::uniform`], e.g. kept in a publication's
    /// encoding cache): one small head plus a clone of `shared`. Returns
    /// the message id.
    pub fn send_shared(&mut self, subscription: &str, shared: Bytes) -> Result<u64, SendError> {
        let (_, message_id) = self.start_message(subscription)?;
        self.output.push_back(self.scratch.split().freeze());
        self.output.push_back(shared);
        Ok(message_id)
    }

    /// Checks the subscription, assigns a message id, records it for
    /// acknowledgement and writes the per-recipient head into `scratch`.
    fn start_message(&mut self, subscription: &str) -> Result<(Version, u64), SendError> {
        match self.state {
            State::Connected | State::Disconnecting => {}
            State::Closed => return Err(SendError::Closed),
            State::AwaitingConnect | State::ConnectPending => return Err(SendError::NotConnected),
        }
        let version = self.version.unwrap_or(Version::V1_2);
        let sub = self
            .subscriptions
            .get(subscription)
            .ok_or_else(|| SendError::UnknownSubscription(subscription.to_owned()))?;
        let message_id = self.next_message_id;
        self.next_message_id += 1;
        let id = message_id.to_string();
        let ack = (version == Version::V1_2 && sub.ack != AckMode::Auto).then_some(id.as_str());
        put_message_head(
            &mut self.scratch,
            version,
            sub.explicit_id.then_some(subscription),
            &id,
            ack,
        );
        self.subscriptions.record(subscription, message_id);
        Ok((version, message_id))
    }

    /// Sends an ERROR frame (with the current event's `receipt-id`, if it
    /// had one) and closes the session.
    pub fn send_error(&mut self, message: &str, body: &str) -> Result<(), SendError> {
        if self.state == State::Closed {
            return Err(SendError::Closed);
        }
        let mut frame = Frame::new(Command::Error).header("message", message);
        if let Some(r) = self.current_receipt.take() {
            frame.headers.push("receipt-id", r);
        }
        if !body.is_empty() {
            frame.headers.push("content-type", "text/plain");
            frame.body = Bytes::copy_from_slice(body.as_bytes());
        }
        self.queue_frame(&frame);
        self.close_with(CloseReason::ServerError);
        Ok(())
    }

    /// Closes the session without an ERROR (pending receipts are still
    /// sent). Flush the output, then close the transport.
    pub fn close(&mut self) {
        if self.state != State::Closed {
            self.flush_receipt();
            self.close_with(CloseReason::Local);
        }
    }

    fn queue_frame(&mut self, frame: &Frame) {
        let version = self.version.unwrap_or(Version::V1_0);
        encode_frame(frame, version, &mut self.scratch);
        self.output.push_back(self.scratch.split().freeze());
    }

    /// Whether there is anything to send.
    pub fn has_output(&self) -> bool {
        !self.output.is_empty() || self.current_receipt.is_some()
    }

    /// The next chunk to send. `now` restarts the outgoing heart-beat
    /// interval.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Bytes> {
        self.flush_receipt();
        let chunk = self.output.pop_front()?;
        if let Some(t) = &mut self.timers {
            t.on_send(now);
        }
        if self.output.is_empty() {
            self.after_flush();
        }
        Some(chunk)
    }

    /// Moves every pending chunk into `out`, for one vectored write. `now`
    /// restarts the outgoing heart-beat interval.
    pub fn take_output(&mut self, now: Instant, out: &mut Vec<Bytes>) {
        self.flush_receipt();
        if self.output.is_empty() {
            return;
        }
        out.extend(self.output.drain(..));
        if let Some(t) = &mut self.timers {
            t.on_send(now);
        }
        self.after_flush();
    }

    /// The output was all taken.
    fn after_flush(&mut self) {
        if std::mem::take(&mut self.release_after_flush) {
            self.release_idle_buffers();
        }
    }

    // ---- timers --------------------------------------------------------

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.is_connected() {
            return None;
        }
        self.timers.as_ref()?.next_deadline()
    }

    /// Gives back the room the session's empty queues and encoding buffer
    /// hold, so that an idle connection keeps none. The session does this
    /// itself once the CONNECTED is taken and after each heart-beat check
    /// (once its heart-beat is taken); never per frame, which would
    /// reallocate for every one.
    pub fn release_idle_buffers(&mut self) {
        if self.events.is_empty() {
            self.events = VecDeque::new();
        }
        if self.output.is_empty() {
            self.output = VecDeque::new();
        }
        if self.scratch.is_empty() {
            // Its spare room shares a block with frames already sent.
            self.scratch = BytesMut::new();
        }
        self.decoder.release_idle_buffers();
    }

    /// Sends a heart-beat or drops a silent client, as the deadlines say.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.flush_receipt();
        if self.output.is_empty() {
            self.release_idle_buffers();
        } else {
            self.release_after_flush = true;
        }
        if !self.is_connected() {
            return;
        }
        let Some(timers) = &mut self.timers else {
            return;
        };
        if timers.receive_deadline().is_some_and(|d| now >= d) {
            self.close_with(CloseReason::HeartBeatTimeout);
            return;
        }
        if timers.send_deadline().is_some_and(|d| now >= d) {
            if self.output.is_empty() {
                self.output.push_back(Bytes::from_static(HEART_BEAT));
                self.release_after_flush = true;
            }
            // Output already pending counts as activity: the transport is
            // about to write it.
            timers.on_send(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn an_idle_session_keeps_no_buffers() {
        let now = Instant::now();
        let mut s = ServerSession::new(Config::default());
        s.receive(
            now,
            b"CONNECT\naccept-version:1.2\nheart-beat:1000,1000\n\n\0",
        )
        .unwrap();
        assert!(matches!(s.poll_event(), Some(Event::Connect(_))));
        s.accept(now, &[]).unwrap();
        let mut out = Vec::new();
        assert!(s.scratch.capacity() > 0 && s.output.capacity() > 0);
        s.take_output(now, &mut out);
        assert!(out.concat().starts_with(b"CONNECTED\n"));
        assert_eq!(s.events.capacity(), 0, "given back once CONNECTED is taken");
        assert_eq!(s.output.capacity(), 0);
        assert_eq!(s.scratch.capacity(), 0);

        // A burst of three frames in one read grows the queue...
        s.receive(
            now,
            b"SEND\ndestination:/a\n\nx\0SEND\ndestination:/a\n\ny\0SEND\ndestination:/a\n\nz\0",
        )
        .unwrap();
        assert_eq!(std::iter::from_fn(|| s.poll_event()).count(), 3);
        assert!(s.events.capacity() >= 3);
        // ...until the next heart-beat check gives the room back.
        let later = now + Duration::from_millis(1_100);
        s.handle_timeout(later);
        assert!(!s.is_closed());
        assert_eq!(s.events.capacity(), 0);
        s.receive(later, b"SEND\ndestination:/a\n\nw\0").unwrap();
        assert!(matches!(s.poll_event(), Some(Event::Send { .. })));
        assert_eq!(s.events.capacity(), 1, "one event at a time: room for one");

        // A heart-beat is queued, then the queue is given back once taken.
        let beat = now + Duration::from_millis(10_500);
        s.handle_timeout(beat);
        assert!(s.poll_event().is_none());
        let mut out = Vec::new();
        s.take_output(beat, &mut out);
        assert_eq!(out.concat(), b"\n");
        assert_eq!(s.output.capacity(), 0);
        assert_eq!(s.events.capacity(), 0);
    }

    #[test]
    fn the_connected_taken_chunk_by_chunk_also_releases() {
        let now = Instant::now();
        let mut s = ServerSession::new(Config::default());
        s.receive(now, b"CONNECT\naccept-version:1.2\n\n\0")
            .unwrap();
        assert!(matches!(s.poll_event(), Some(Event::Connect(_))));
        s.accept(now, &[]).unwrap();
        while s.poll_transmit(now).is_some() {}
        assert_eq!(s.output.capacity(), 0);
        assert_eq!(s.scratch.capacity(), 0);
        // Later frames keep their buffers until the connection is idle.
        s.receive(now, b"SUBSCRIBE\nid:1\ndestination:/t\nreceipt:r\n\n\0")
            .unwrap();
        assert!(matches!(s.poll_event(), Some(Event::Subscribe { .. })));
        while s.poll_transmit(now).is_some() {}
        assert!(s.output.capacity() > 0, "not released per frame");
    }

    #[test]
    fn sessions_share_one_config() {
        let config = Arc::new(Config::default());
        let a = ServerSession::new(config.clone());
        let b = ServerSession::new(config.clone());
        assert!(Arc::ptr_eq(&a.config, &b.config));
        assert_eq!(Arc::strong_count(&config), 3);
    }
}
