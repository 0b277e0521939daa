//! One STOMP connection inside the broker: [`StompClient`] joins the
//! protocol session ([`ServerSession`]), the connection's hub [`Client`]
//! (topic subscriptions and deliveries), its queue consumers and its open
//! transactions. It does no I/O: a driver (raw TCP in
//! [`connection`](crate::connection), WebSocket in
//! [`websocket`](crate::websocket)) feeds it bytes, wakes it for
//! deliveries and timers, and writes what it produced.
//!
//! Every refusal (bad credentials, unknown destination, permission denied,
//! full queue, slow consumer) becomes an ERROR frame here, in
//! `StompClient::fail`, and closes the session.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::task::Context;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use switchboard_hub::{
    Client, ClientInfo, Delivery, Encoding, HubError, Payload, PayloadKind, Publication,
};
use switchboard_stomp_proto::{
    encode_frame, AckMode, CloseReason, Command, ConnectRequest, Event, Frame, Headers,
    MessageTemplate, ServerSession, Version,
};

use crate::auth::{Action, Principal};
use crate::backend::{BackendError, SendDone};
use crate::broker::{Broker, SendToQueueError};
use crate::destination::Destination;
use crate::queue::{Inbox, QueueDelivery};
use crate::transaction::{Transactions, TxOp, Unacked};

/// `content-type` of MESSAGE frames made from hub publications, per kind.
pub fn content_type(kind: PayloadKind) -> &'static str {
    match kind {
        PayloadKind::Text => "text/plain;charset=utf-8",
        PayloadKind::Json => "application/json",
        PayloadKind::Binary => "application/octet-stream",
    }
}

/// The hub payload of a SEND to a `/topic/` destination, by its
/// `content-type`: `application/json` → JSON (a JSON string becomes text,
/// as for every JSON client of the hub), `application/octet-stream` or a
/// body that is not UTF-8 → binary, anything else → text.
pub fn payload_of(headers: &Headers, body: Bytes) -> Payload {
    let ct = headers
        .get("content-type")
        .map(|c| c.trim().to_ascii_lowercase());
    let utf8 = std::str::from_utf8(&body).is_ok();
    match ct.as_deref() {
        Some(ct) if ct.starts_with("application/json") && utf8 => Payload::json_or_text(body),
        Some(ct) if ct.starts_with("application/octet-stream") => Payload::binary(body),
        _ if utf8 => Payload::text(body),
        _ => Payload::binary(body),
    }
}

/// SEND headers not passed on to a queue MESSAGE.
const NOT_FORWARDED: [&str; 5] = [
    "destination",
    "transaction",
    "receipt",
    "content-length",
    "redelivered",
];

/// SENDs handed to a queue backend and not yet stored, per connection,
/// above which the TCP driver stops reading ([`StompClient::wants_input`]).
const MAX_PENDING_SENDS: usize = 1024;

/// What waits for a queue backend, in frame order: a SEND's outcome, and
/// the RECEIPTs of the frames that followed it.
#[derive(Debug)]
enum Pending {
    Send {
        id: u64,
        destination: String,
        result: Option<Result<(), BackendError>>,
    },
    Receipt(String),
}

/// Where a subscription's messages come from.
#[derive(Debug)]
enum Target {
    Topic(Arc<str>),
    Queue { name: Arc<str>, ack: AckMode },
}

/// The STOMP subscriptions of one connection to one hub topic.
#[derive(Debug)]
struct TopicSubscribers {
    /// `/topic/<name>`.
    destination: Arc<str>,
    ids: Vec<Arc<str>>,
}

/// The broker side of one STOMP connection (see the [module docs](self)).
///
/// Drive it with [`receive`](Self::receive) (bytes from the peer),
/// [`poll_deliveries`](Self::poll_deliveries) (topic and queue messages;
/// registers the task's waker), [`poll_timeout`](Self::poll_timeout) /
/// [`handle_timeout`](Self::handle_timeout), and send what
/// [`take_output`](Self::take_output) returns. When
/// [`is_closed`](Self::is_closed), flush and close the transport. Dropping
/// it releases everything: unacknowledged queue messages are redelivered,
/// open transactions aborted, topic subscriptions left.
pub struct StompClient {
    broker: Broker,
    id: u64,
    session: ServerSession,
    connect_deadline: Instant,
    principal: Option<Principal>,
    hub: Option<Client>,
    subscriptions: HashMap<Arc<str>, Target>,
    topics: HashMap<Arc<str>, TopicSubscribers>,
    batch: Vec<Delivery>,
    /// Allocated on first use (see [`Rare`]).
    rare: Option<Box<Rare>>,
}

/// The part of a [`StompClient`] that only queues, transactions and the
/// frames after a DISCONNECT use. Boxed on first use: a connection that
/// only uses topics (most, and every idle one) carries a pointer instead
/// of some 250 bytes and an inbox for its whole life.
#[derive(Default)]
struct Rare {
    /// Queue deliveries and the outcomes of queue SENDs, for this
    /// connection.
    inbox: Arc<Inbox>,
    /// Queue messages sent on `client` subscriptions, by session message id.
    unacked: HashMap<u64, Unacked>,
    transactions: Transactions,
    /// SENDs handed to the queue backend, and the receipts behind them.
    pending: VecDeque<Pending>,
    /// `Pending::Send`s in `pending`.
    sends_in_flight: usize,
    next_send: u64,
    sends_done: Vec<(u64, Result<(), BackendError>)>,
    /// DISCONNECT arrived while SENDs were pending: its RECEIPT (if any)
    /// waits for them.
    disconnect_receipt: Option<Option<String>>,
    /// Frames encoded here, sent after the session's output (receipts
    /// after a DISCONNECT, the ERROR of a failed SEND).
    extra: Vec<Bytes>,
}

impl StompClient {
    /// A connection that has just been accepted, at `now` (the CONNECT
    /// timeout runs from here).
    pub fn new(broker: &Broker, now: Instant) -> Self {
        let config = broker.config();
        StompClient {
            id: broker.next_connection_id(),
            session: ServerSession::new(broker.session_config().clone()),
            connect_deadline: now + config.connect_timeout,
            broker: broker.clone(),
            principal: None,
            hub: None,
            subscriptions: HashMap::new(),
            topics: HashMap::new(),
            batch: Vec::new(),
            rare: None,
        }
    }

    /// The rarely used part, allocated now if it was not.
    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// Whether SENDs (or the receipts behind them) wait for the queue
    /// backend.
    fn has_pending(&self) -> bool {
        self.rare.as_ref().is_some_and(|r| !r.pending.is_empty())
    }

    /// The authenticated principal, once connected.
    pub fn principal(&self) -> Option<&Principal> {
        self.principal.as_ref()
    }

    /// The protocol session (version, heart-beats, close reason).
    pub fn session(&self) -> &ServerSession {
        &self.session
    }

    /// Whether the connection is over: flush the output, then close. (After
    /// a DISCONNECT, only once the SENDs before it are stored by the queue
    /// backend, if any are pending.)
    pub fn is_closed(&self) -> bool {
        self.session.is_closed() && !self.has_pending()
    }

    /// Whether there is output to send.
    pub fn has_output(&self) -> bool {
        self.session.has_output() || self.rare.as_ref().is_some_and(|r| !r.extra.is_empty())
    }

    /// Whether the driver should read more from the peer: `false` while
    /// too many SENDs wait for the queue backend (the connection's task is
    /// woken when they complete).
    pub fn wants_input(&self) -> bool {
        self.rare
            .as_ref()
            .is_none_or(|r| r.sends_in_flight < MAX_PENDING_SENDS)
    }

    /// Moves the pending output into `out` (for one vectored write).
    pub fn take_output(&mut self, now: Instant, out: &mut Vec<Bytes>) {
        self.drain_output(now, |chunk| out.push(chunk));
    }

    /// Hands the pending output to `f`, chunk by chunk, in order (like
    /// [`take_output`](Self::take_output), without a list to fill).
    pub fn drain_output(&mut self, now: Instant, mut f: impl FnMut(Bytes)) {
        while let Some(chunk) = self.session.poll_transmit(now) {
            f(chunk);
        }
        if let Some(r) = &mut self.rare {
            r.extra.drain(..).for_each(f);
        }
    }

    /// The broker's output high-water mark (bytes waiting for the socket
    /// above which deliveries wait).
    pub fn output_high_water(&self) -> usize {
        self.broker.config().output_high_water
    }

    /// Feeds bytes from the peer and handles every complete frame.
    pub fn receive(&mut self, now: Instant, data: &[u8]) {
        if let Err(e) = self.session.receive(now, data) {
            tracing::debug!(error = %e, "stomp protocol error");
        }
        while let Some(event) = self.session.poll_event() {
            self.on_event(now, event);
            if self.has_pending() {
                // Behind a SEND still going to the queue backend: this
                // frame's RECEIPT waits for it.
                if let Some(r) = self.session.defer_receipt() {
                    self.rare().pending.push_back(Pending::Receipt(r));
                }
            }
        }
        if self.session.is_closed() {
            self.release();
            self.abandon_pending();
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due: the CONNECT
    /// deadline, then the session's heart-beats.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.session.is_closed() {
            None
        } else if !self.session.is_connected() {
            Some(self.connect_deadline)
        } else {
            self.session.poll_timeout()
        }
    }

    /// Runs the timers: the CONNECT timeout (ERROR, close) and heart-beats.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.session.is_closed() {
            return;
        }
        if !self.session.is_connected() {
            if now >= self.connect_deadline {
                self.fail("connect timeout", "no CONNECT frame in time");
            }
            return;
        }
        self.session.handle_timeout(now);
        if self.session.is_closed() {
            tracing::debug!("stomp heart-beat timeout");
            self.release();
            self.abandon_pending();
        }
    }

    /// Server shutdown: an ERROR frame `server shutting down`, then close.
    pub fn shutdown(&mut self) {
        if !self.session.is_closed() {
            self.fail("server shutting down", "");
        }
    }

    /// Takes the deliveries waiting for this connection — hub publications
    /// of its topics and messages of its queues — and queues them as
    /// MESSAGE frames. Registers `cx`'s waker for the next ones. A hub
    /// mailbox that overflowed (slow consumer) ends the connection with an
    /// ERROR.
    ///
    /// Also takes the outcomes of SENDs handed to a queue backend: their
    /// RECEIPTs (and those of the frames behind them), or the ERROR of one
    /// that failed. Returns whether any completed (then
    /// [`wants_input`](Self::wants_input) may have changed).
    pub fn poll_deliveries(&mut self, cx: &mut Context<'_>) -> bool {
        if self.session.is_closed() {
            if !self.has_pending() {
                return false;
            }
            if let Some(r) = &self.rare {
                r.inbox.register(cx.waker());
            }
            return self.poll_sends();
        }
        // No inbox before the first queue SUBSCRIBE or SEND; both happen
        // while this task runs, and it polls here again before it sleeps.
        if let Some(r) = &self.rare {
            r.inbox.register(cx.waker());
        }
        let sent = self.poll_sends();
        if self.session.is_closed() {
            return sent;
        }
        while let Some(d) = self.rare.as_ref().and_then(|r| r.inbox.pop()) {
            self.on_queue_delivery(d);
        }
        let Some(mailbox) = self.hub.as_ref().map(|c| c.mailbox().clone()) else {
            return sent;
        };
        let mut batch = std::mem::take(&mut self.batch);
        while mailbox.poll_ready(cx).is_ready() {
            if mailbox.is_overflowed() {
                self.fail(
                    "slow consumer",
                    "too many messages waiting for this connection",
                );
                return sent;
            }
            let drained = mailbox.drain(&mut batch);
            for d in batch.drain(..) {
                if let Delivery::Message(p) = d {
                    self.on_publication(&p);
                }
            }
            if mailbox.is_kicked() {
                self.fail("disconnected by the server", "");
                return sent;
            }
            if drained == 0 {
                break;
            }
        }
        self.batch = batch;
        sent
    }

    /// While the connection's output is backed up (no deliveries taken):
    /// registers `cx`'s waker with the hub mailbox, and ends the connection
    /// with an ERROR if it overflowed (slow consumer) — else a client that
    /// stopped reading would make the mailbox wait forever.
    pub fn poll_overflow(&mut self, cx: &mut Context<'_>) {
        if self.session.is_closed() {
            return;
        }
        let Some(mailbox) = self.hub.as_ref().map(|c| c.mailbox().clone()) else {
            return;
        };
        mailbox.register_waker(cx.waker());
        if mailbox.is_overflowed() {
            self.fail(
                "slow consumer",
                "too many messages waiting for this connection",
            );
        }
    }

    /// Applies the SEND outcomes that arrived (see
    /// [`poll_deliveries`](Self::poll_deliveries)).
    fn poll_sends(&mut self) -> bool {
        let Some(rare) = self.rare.as_deref_mut() else {
            return false;
        };
        if rare.pending.is_empty() {
            return false;
        }
        let mut done = std::mem::take(&mut rare.sends_done);
        rare.inbox.take_sends(&mut done);
        if done.is_empty() {
            rare.sends_done = done;
            return false;
        }
        for (id, result) in done.drain(..) {
            let slot = rare.pending.iter_mut().find_map(|p| match p {
                Pending::Send {
                    id: i, result: r, ..
                } if *i == id => Some(r),
                _ => None,
            });
            if let Some(slot) = slot {
                *slot = Some(result);
            }
        }
        rare.sends_done = done;
        while let Some(rare) = self.rare.as_deref_mut() {
            match rare.pending.front_mut() {
                None => break,
                Some(Pending::Send { result: None, .. }) => return true,
                Some(Pending::Receipt(_)) => {
                    let Some(Pending::Receipt(r)) = rare.pending.pop_front() else {
                        unreachable!()
                    };
                    self.receipt(&r);
                }
                Some(Pending::Send {
                    result: Some(result),
                    destination,
                    ..
                }) => {
                    let failed = result.as_ref().err().map(|e| format!("{destination}: {e}"));
                    rare.pending.pop_front();
                    rare.sends_in_flight -= 1;
                    if let Some(message) = failed {
                        self.send_failed(&message);
                        return true;
                    }
                }
            }
        }
        // Everything before the DISCONNECT is stored: its RECEIPT now.
        let receipt = self.rare.as_mut().and_then(|r| r.disconnect_receipt.take());
        if let Some(receipt) = receipt.flatten() {
            self.receipt(&receipt);
        }
        true
    }

    /// A RECEIPT, through the session while it is open, else (after a
    /// DISCONNECT) encoded here.
    fn receipt(&mut self, receipt_id: &str) {
        if self.session.send_receipt(receipt_id).is_err() {
            let frame = Frame::new(Command::Receipt).header("receipt-id", receipt_id);
            self.push_frame(&frame);
        }
    }

    fn push_frame(&mut self, frame: &Frame) {
        let mut out = BytesMut::new();
        encode_frame(
            frame,
            self.session.version().unwrap_or(Version::V1_0),
            &mut out,
        );
        self.rare().extra.push(out.freeze());
    }

    /// A SEND the queue backend did not take: ERROR (with the receipt-id
    /// of the frame the client waits on: the SEND's own, or the next one)
    /// and close; what was behind it is dropped.
    fn send_failed(&mut self, message: &str) {
        tracing::debug!(message, "stomp queue send failed");
        let receipt = self.rare.as_deref_mut().and_then(|rare| {
            rare.pending
                .iter()
                .find_map(|p| match p {
                    Pending::Receipt(r) => Some(r.clone()),
                    Pending::Send { .. } => None,
                })
                .or_else(|| rare.disconnect_receipt.take().flatten())
        });
        let mut frame = Frame::new(Command::Error).header("message", message);
        if let Some(r) = receipt {
            frame.headers.push("receipt-id", r);
        }
        frame.headers.push("content-type", "text/plain");
        frame.body = Bytes::from_static(b"message not queued\n");
        self.session.close();
        self.push_frame(&frame);
        let rare = self.rare();
        rare.pending.clear();
        rare.sends_in_flight = 0;
        rare.disconnect_receipt = None;
        self.release();
    }

    /// The session ended otherwise than by DISCONNECT: nobody waits for
    /// the pending SENDs any more (the backend still completes them).
    fn abandon_pending(&mut self) {
        if self.session.close_reason() != Some(&CloseReason::Disconnect) {
            self.forget_pending();
        }
    }

    // ---- frames in -----------------------------------------------------

    fn on_event(&mut self, now: Instant, event: Event) {
        match event {
            Event::Connect(req) => self.on_connect(now, req),
            Event::Send {
                destination,
                transaction,
                headers,
                body,
            } => {
                if self.check(&destination, Action::Send).is_none() {
                    return;
                }
                match transaction {
                    Some(tx) => self.rare().transactions.push(
                        &tx,
                        TxOp::Send {
                            destination,
                            headers,
                            body,
                        },
                    ),
                    None => self.route(&destination, &headers, body),
                }
            }
            Event::Subscribe {
                id,
                destination,
                ack,
                ..
            } => self.on_subscribe(id, &destination, ack),
            Event::Unsubscribe { id, unacked, .. } => self.on_unsubscribe(&id, &unacked),
            Event::Ack {
                message_ids,
                transaction,
                ..
            } => {
                let acked = self.take_unacked(&message_ids);
                match transaction {
                    Some(tx) => self.rare().transactions.push(&tx, TxOp::Ack(acked)),
                    None => self.broker.settle(self.id, &acked),
                }
            }
            Event::Nack {
                message_ids,
                transaction,
                ..
            } => {
                let nacked = self.take_unacked(&message_ids);
                match transaction {
                    Some(tx) => self.rare().transactions.push(&tx, TxOp::Nack(nacked)),
                    None => self.broker.requeue(self.id, &nacked, true),
                }
            }
            Event::Begin { transaction } => self.rare().transactions.begin(transaction),
            Event::Commit { transaction } => {
                for op in self.rare().transactions.finish(&transaction) {
                    match op {
                        TxOp::Send {
                            destination,
                            headers,
                            body,
                        } => self.route(&destination, &headers, body),
                        TxOp::Ack(acked) => self.broker.settle(self.id, &acked),
                        TxOp::Nack(nacked) => self.broker.requeue(self.id, &nacked, true),
                    }
                }
            }
            Event::Abort { transaction } => {
                let ops = self.rare().transactions.finish(&transaction);
                self.abort(ops);
            }
            Event::Disconnect { receipt } => {
                self.release();
                if let Some(rare) = self.rare.as_deref_mut().filter(|r| !r.pending.is_empty()) {
                    // The session has queued the RECEIPT last: hold it back
                    // until the SENDs before it are stored.
                    self.session.take_output(now, &mut rare.extra);
                    if receipt.is_some() {
                        rare.extra.pop();
                    }
                    rare.disconnect_receipt = Some(receipt);
                }
            }
            _ => {}
        }
    }

    fn on_connect(&mut self, now: Instant, req: ConnectRequest) {
        let auth = self
            .broker
            .config()
            .authenticator
            .authenticate_request(&req);
        let principal = match auth {
            Ok(p) => p,
            Err(message) => {
                tracing::debug!(login = ?req.login, %message, "stomp login refused");
                let _ = self.session.reject(&message, "authentication failed");
                return;
            }
        };
        let mut info =
            ClientInfo::new(principal.name_arc().clone(), "stomp").with_presence_events(false);
        if !principal.is_anonymous() {
            info = info.with_user(principal.id().clone(), principal.grants().cloned());
        }
        self.hub = Some(self.broker.hub().connect(info));
        let session_id = format!("session-{}", self.id);
        let mut headers = vec![("session", session_id.as_str())];
        if !principal.is_anonymous() {
            headers.push(("user-name", principal.name()));
        }
        let _ = self.session.accept(now, &headers);
        self.principal = Some(principal);
    }

    /// Parses a destination and asks the permission hook; on refusal sends
    /// the ERROR and returns `None`.
    fn check<'d>(&mut self, destination: &'d str, action: Action) -> Option<Destination<'d>> {
        let parsed = match Destination::parse(destination) {
            Ok(d) => d,
            Err(e) => {
                self.fail("invalid destination", &e.to_string());
                return None;
            }
        };
        let allowed = match (&self.broker.config().permission, &self.principal) {
            (Some(f), Some(p)) => f(p, destination, action),
            _ => true,
        };
        if !allowed {
            let verb = match action {
                Action::Send => "sending to",
                Action::Subscribe => "subscribing to",
            };
            self.fail(&format!("{verb} {destination} not allowed"), "");
            return None;
        }
        Some(parsed)
    }

    /// Delivers a SEND (immediately or at COMMIT).
    fn route(&mut self, destination: &str, headers: &Headers, body: Bytes) {
        if self.session.is_closed() {
            return; // an earlier SEND of the same COMMIT failed
        }
        match Destination::parse(destination) {
            Ok(Destination::Topic(topic)) => {
                let Some(hub) = &self.hub else { return };
                if let Err(e) = hub.publish(topic, payload_of(headers, body)) {
                    self.hub_refused(destination, e);
                }
            }
            Ok(Destination::Queue(queue)) => {
                let forwarded = headers
                    .iter()
                    .filter(|(n, _)| !NOT_FORWARDED.contains(n))
                    .map(|(n, v)| (n.to_owned(), v.to_owned()))
                    .collect();
                if let Some(backend) = self.broker.backend() {
                    // Stored by the backend asynchronously; the RECEIPT
                    // (of this SEND, or of the COMMIT) waits for it.
                    let rare = self.rare.get_or_insert_with(Box::default);
                    let id = rare.next_send;
                    rare.next_send += 1;
                    backend.send(queue, forwarded, body, SendDone::new(&rare.inbox, id));
                    rare.pending.push_back(Pending::Send {
                        id,
                        destination: destination.to_owned(),
                        result: None,
                    });
                    rare.sends_in_flight += 1;
                    return;
                }
                match self.broker.send_to_queue(queue, forwarded, body) {
                    Ok(()) => {}
                    Err(SendToQueueError::Full(e)) => {
                        self.fail(&format!("{destination}: {e}"), "message not queued");
                    }
                    Err(SendToQueueError::Store) => {
                        self.fail(
                            &format!("{destination}: {}", SendToQueueError::Store),
                            "message not queued",
                        );
                    }
                    Err(SendToQueueError::InvalidName) => {
                        self.fail("invalid destination", destination);
                    }
                }
            }
            Err(e) => self.fail("invalid destination", &e.to_string()),
        }
    }

    fn hub_refused(&mut self, destination: &str, e: HubError) {
        match e {
            HubError::Forbidden => self.fail(&format!("{destination} not allowed"), ""),
            HubError::InvalidTopic => self.fail("invalid destination", destination),
        }
    }

    fn on_subscribe(&mut self, id: String, destination: &str, ack: AckMode) {
        let Some(parsed) = self.check(destination, Action::Subscribe) else {
            return;
        };
        let id: Arc<str> = Arc::from(id);
        match parsed {
            Destination::Topic(topic) => {
                let Some(hub) = &self.hub else { return };
                if let Err(e) = hub.subscribe(topic, None) {
                    self.hub_refused(destination, e);
                    return;
                }
                let topic: Arc<str> = Arc::from(topic);
                self.topics
                    .entry(topic.clone())
                    .or_insert_with(|| TopicSubscribers {
                        destination: Arc::from(destination),
                        ids: Vec::new(),
                    })
                    .ids
                    .push(id.clone());
                self.subscriptions.insert(id, Target::Topic(topic));
            }
            Destination::Queue(queue) => {
                let name: Arc<str> = Arc::from(queue);
                self.subscriptions.insert(
                    id.clone(),
                    Target::Queue {
                        name: name.clone(),
                        ack,
                    },
                );
                let inbox = &self.rare.get_or_insert_with(Box::default).inbox;
                self.broker.subscribe_queue(&name, self.id, id, inbox);
            }
        }
    }

    fn on_unsubscribe(&mut self, id: &str, unacked_ids: &[u64]) {
        match self.subscriptions.remove(id) {
            Some(Target::Topic(topic)) => {
                if let Some(subs) = self.topics.get_mut(&topic) {
                    subs.ids.retain(|s| &**s != id);
                    if subs.ids.is_empty() {
                        self.topics.remove(&topic);
                        if let Some(hub) = &self.hub {
                            hub.unsubscribe(&topic);
                        }
                    }
                }
            }
            Some(Target::Queue { name, .. }) => {
                let unacked = self.take_unacked(unacked_ids);
                self.broker.unsubscribe_queue(&name, self.id, id, unacked);
            }
            None => {}
        }
    }

    /// The queue messages among `ids` (topic messages need no tracking).
    fn take_unacked(&mut self, ids: &[u64]) -> Vec<Unacked> {
        match &mut self.rare {
            Some(r) => ids.iter().filter_map(|i| r.unacked.remove(i)).collect(),
            None => Vec::new(),
        }
    }

    /// ABORT: buffered SENDs are dropped; buffered ACKs and NACKs are
    /// undone. The session has forgotten those message ids, so the messages
    /// cannot be acknowledged again: they are redelivered.
    fn abort(&mut self, ops: Vec<TxOp>) {
        for op in ops {
            match op {
                TxOp::Send { .. } => {}
                TxOp::Ack(m) | TxOp::Nack(m) => self.broker.requeue(self.id, &m, true),
            }
        }
    }

    /// ERROR frame (with the current frame's receipt-id) and close.
    fn fail(&mut self, message: &str, body: &str) {
        tracing::debug!(message, "stomp error");
        let _ = self.session.send_error(message, body);
        self.release();
        self.forget_pending();
    }

    /// Nobody waits for the pending SENDs any more.
    fn forget_pending(&mut self) {
        if let Some(r) = &mut self.rare {
            r.pending.clear();
            r.sends_in_flight = 0;
        }
    }

    /// Gives back everything the connection holds in the broker: open
    /// transactions are aborted, queue subscriptions removed (their
    /// unacknowledged messages redelivered), the hub client dropped.
    fn release(&mut self) {
        let mut unacked: HashMap<Arc<str>, Vec<Unacked>> = HashMap::new();
        let ops = match self.rare.as_deref_mut() {
            Some(r) => {
                for (_, u) in r.unacked.drain() {
                    unacked.entry(u.subscription.clone()).or_default().push(u);
                }
                r.transactions.finish_all()
            }
            None => Vec::new(),
        };
        self.abort(ops);
        for (id, target) in self.subscriptions.drain() {
            if let Target::Queue { name, .. } = target {
                let mut mine = unacked.remove(&id).unwrap_or_default();
                mine.sort_by_key(|u| u.message.seq);
                self.broker.unsubscribe_queue(&name, self.id, &id, mine);
            }
        }
        self.topics.clear();
        self.hub = None;
    }

    // ---- messages out --------------------------------------------------

    /// One hub publication to every subscription of its topic. The body is
    /// shared (`Bytes`), only the small head is encoded per subscription.
    /// A hub publication to this connection's subscriptions of its topic.
    /// The MESSAGE's shared part (destination, content-type, body) is encoded
    /// once per publication for every STOMP subscriber through the hub's
    /// encoding cache; each recipient adds only its small head. (Only when
    /// nothing needs escaping and the destination is the canonical
    /// `/topic/<name>`; otherwise it is encoded here.)
    fn on_publication(&mut self, p: &Publication) {
        let Some(subs) = self.topics.get(&p.topic) else {
            return;
        };
        let headers = [("content-type", content_type(p.payload.kind))];
        let canonical = subs
            .destination
            .strip_prefix("/topic/")
            .is_some_and(|t| t == &*p.topic);
        let shared = canonical.then(|| {
            p.encoded.get_or_init(Encoding::Stomp, || {
                let template = MessageTemplate::new(&subs.destination, &headers, &p.payload.data);
                // Empty: no encoding fits every version (escaping).
                template.uniform().cloned().unwrap_or_default()
            })
        });
        for id in &subs.ids {
            let _ = match &shared {
                Some(shared) if !shared.is_empty() => self.session.send_shared(id, shared.clone()),
                _ => self.session.send_message(
                    id,
                    &subs.destination,
                    &headers,
                    p.payload.data.clone(),
                ),
            };
        }
    }

    fn on_queue_delivery(&mut self, d: QueueDelivery) {
        let ack = match self.subscriptions.get(&d.subscription) {
            Some(Target::Queue { ack, .. }) => *ack,
            _ => AckMode::Auto,
        };
        let mut headers: Vec<(&str, &str)> = d
            .message
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        if d.redelivered {
            headers.push(("redelivered", "true"));
        }
        let sent = self.session.send_message(
            &d.subscription,
            &d.message.destination,
            &headers,
            d.message.body.clone(),
        );
        let unacked = Unacked {
            queue: d.queue,
            subscription: d.subscription,
            message: d.message,
        };
        match sent {
            Ok(message_id) if ack != AckMode::Auto => {
                self.rare().unacked.insert(message_id, unacked);
            }
            Ok(_) => self.broker.settle(self.id, &[unacked]),
            Err(_) => self.broker.requeue(self.id, &[unacked], d.redelivered),
        }
    }
}

impl Drop for StompClient {
    fn drop(&mut self) {
        self.release();
    }
}

impl fmt::Debug for StompClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StompClient")
            .field("id", &self.id)
            .field("principal", &self.principal)
            .field("session", &self.session)
            .field("subscriptions", &self.subscriptions.len())
            .field(
                "unacked",
                &self.rare.as_ref().map_or(0, |r| r.unacked.len()),
            )
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StompConfig;
    use std::task::Waker;
    use switchboard_hub::{Hub, HubConfig};

    /// Everything the client has to send, as text.
    fn output(c: &mut StompClient, now: Instant) -> String {
        let mut cx = Context::from_waker(Waker::noop());
        c.poll_deliveries(&mut cx);
        let mut out = Vec::new();
        c.take_output(now, &mut out);
        String::from_utf8(out.concat()).unwrap()
    }

    /// A backend that keeps each SEND's completion for the test to answer.
    #[derive(Default)]
    struct Held {
        sends: parking_lot::Mutex<Vec<(String, Bytes, SendDone)>>,
    }

    struct NoFetch;

    impl crate::RemoteQueue for NoFetch {
        fn wake(&self) {}
    }

    impl crate::QueueBackend for Held {
        fn send(&self, queue: &str, _: Vec<(String, String)>, body: Bytes, done: SendDone) {
            self.sends.lock().push((queue.to_owned(), body, done));
        }
        fn open(&self, _: &Arc<str>) -> Box<dyn crate::RemoteQueue> {
            Box::new(NoFetch)
        }
        fn ack(&self, _: &str, _: &[crate::MessageKey]) {}
        fn release(&self, _: &str, _: Vec<crate::RemoteMessage>) {}
    }

    #[test]
    fn a_topic_only_connection_keeps_no_queue_state() {
        let now = Instant::now();
        let broker = Broker::new(Hub::new(HubConfig::default()), StompConfig::default());
        let mut c = StompClient::new(&broker, now);
        c.receive(now, b"CONNECT\naccept-version:1.2\nhost:/\n\n\0");
        c.receive(
            now,
            b"SUBSCRIBE\nid:0\ndestination:/topic/t\nreceipt:r\n\n\0\
              SEND\ndestination:/topic/t\n\nhi\0",
        );
        let out = output(&mut c, now);
        assert!(out.contains("RECEIPT\nreceipt-id:r") && out.contains("\n\nhi\0"));
        assert!(c.rare.is_none(), "topics, receipts and sends need none");
        // The first queue subscription allocates it, and its deliveries
        // arrive through its inbox.
        c.receive(
            now,
            b"SUBSCRIBE\nid:1\ndestination:/queue/q\nack:client\n\n\0\
              SEND\ndestination:/queue/q\n\nqueued\0",
        );
        assert!(c.rare.is_some());
        let out = output(&mut c, now);
        assert!(
            out.contains("subscription:1") && out.ends_with("queued\0"),
            "{out}"
        );
        assert_eq!(c.rare.as_ref().unwrap().unacked.len(), 1);
    }

    #[test]
    fn receipts_wait_for_the_backend_in_order_and_a_failed_send_is_an_error() {
        let now = Instant::now();
        let backend = Arc::new(Held::default());
        let broker = Broker::with_backend(
            Hub::new(HubConfig::default()),
            StompConfig::default(),
            backend.clone(),
        );
        let mut c = StompClient::new(&broker, now);
        c.receive(now, b"CONNECT\naccept-version:1.2\nhost:/\n\n\0");
        assert!(output(&mut c, now).starts_with("CONNECTED\n"));
        c.receive(
            now,
            b"SEND\ndestination:/queue/q\nreceipt:1\n\na\0\
              SEND\ndestination:/topic/t\nreceipt:2\n\nb\0\
              SEND\ndestination:/queue/q\n\nc\0\
              DISCONNECT\nreceipt:3\n\n\0",
        );
        assert_eq!(
            output(&mut c, now),
            "",
            "every receipt waits for the first SEND"
        );
        assert!(
            !c.is_closed(),
            "open until the SENDs before DISCONNECT are stored"
        );
        let mut sends = std::mem::take(&mut *backend.sends.lock());
        assert_eq!(sends.len(), 2);
        let (_, _, second) = sends.pop().unwrap();
        let (queue, body, first) = sends.pop().unwrap();
        assert_eq!((queue.as_str(), &body[..]), ("q", &b"a"[..]));
        first.complete(Ok(()));
        assert_eq!(
            output(&mut c, now),
            "RECEIPT\nreceipt-id:1\n\n\0RECEIPT\nreceipt-id:2\n\n\0"
        );
        assert!(!c.is_closed());
        second.complete(Ok(()));
        assert_eq!(output(&mut c, now), "RECEIPT\nreceipt-id:3\n\n\0");
        assert!(c.is_closed());

        // A SEND the backend refuses: ERROR with its receipt-id, closed.
        let mut c = StompClient::new(&broker, now);
        c.receive(
            now,
            b"CONNECT\naccept-version:1.2\nhost:/\n\n\0\
              SEND\ndestination:/queue/q\nreceipt:9\n\nx\0",
        );
        assert!(output(&mut c, now).starts_with("CONNECTED\n"));
        let (_, _, done) = backend.sends.lock().pop().unwrap();
        drop(done); // a backend that goes away counts as unavailable
        let out = output(&mut c, now);
        assert!(
            out.starts_with(
                "ERROR\nmessage:/queue/q\\c not queued\\c queue backend gone\nreceipt-id:9\n"
            ),
            "{out}"
        );
        assert!(c.is_closed());
    }

    #[test]
    fn nack_in_an_aborted_transaction_is_redelivered_without_any_server() {
        let now = Instant::now();
        let broker = Broker::new(Hub::new(HubConfig::default()), StompConfig::default());
        let mut c = StompClient::new(&broker, now);
        c.receive(
            now,
            b"CONNECT\naccept-version:1.2\nhost:/\n\n\0\
              SUBSCRIBE\nid:s\ndestination:/queue/q\nack:client\n\n\0\
              SEND\ndestination:/queue/q\n\nwork\0",
        );
        let out = output(&mut c, now);
        assert!(out.starts_with("CONNECTED\n"), "{out}");
        assert!(
            out.contains("MESSAGE\nsubscription:s\nmessage-id:0\nack:0\n"),
            "{out}"
        );

        c.receive(
            now,
            b"BEGIN\ntransaction:t\n\n\0NACK\nid:0\ntransaction:t\n\n\0ABORT\ntransaction:t\n\n\0",
        );
        let out = output(&mut c, now);
        assert!(
            out.starts_with("MESSAGE\nsubscription:s\nmessage-id:1\nack:1\n"),
            "{out}"
        );
        assert!(out.contains("redelivered:true\n"), "{out}");
        assert!(out.ends_with("\n\nwork\0"), "{out}");

        drop(c);
        assert_eq!(
            broker.queue_len("q"),
            1,
            "unacked at disconnect: back in the queue"
        );
        assert_eq!(broker.queue_consumers("q"), 0);
    }
}
