//! The STOMP `ServerSession` under arbitrary client bytes, application
//! calls and time steps.
//!
//! Invariants: no panic; everything the server sends decodes (as a client
//! would, with the negotiated version) into server frames only (CONNECTED,
//! MESSAGE, RECEIPT, ERROR), CONNECTED at most once and first, nothing
//! after an ERROR; a closed session yields no events; `poll_timeout` is
//! `None` unless connected.

#![no_main]

use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use switchboard_stomp_proto::{
    Command, Config, Decoder, Event, HeartBeat, Item, Limits, MessageTemplate, ServerSession,
    Version,
};

#[derive(Debug, Arbitrary)]
enum Op {
    Receive(Vec<u8>),
    /// A CONNECT with this accept-version and heart-beat, so that the
    /// fuzzer starts from a connected session often.
    Connect {
        version: u8,
        heart_beat: (u8, u8),
    },
    PollEvent {
        accept: bool,
        defer_receipt: bool,
    },
    SendMessage {
        sub: u8,
        body: Vec<u8>,
        header: (String, String),
    },
    SendPrepared {
        sub: u8,
        body: Vec<u8>,
    },
    SendReceipt,
    SendError(String, String),
    Close,
    TakeOutput,
    PollTransmit,
    Advance(u16),
    NextTimer,
}

#[derive(Debug, Arbitrary)]
struct Input {
    small_limits: bool,
    ops: Vec<Op>,
}

struct Harness {
    s: ServerSession,
    now: Instant,
    subs: Vec<String>,
    deferred: Vec<String>,
    client: Decoder,
    connected_seen: bool,
    error_seen: bool,
}

impl Harness {
    fn sub(&self, i: u8) -> String {
        if self.subs.is_empty() {
            "nope".to_owned()
        } else {
            self.subs[usize::from(i) % self.subs.len()].clone()
        }
    }

    fn client_reads(&mut self, chunk: &Bytes) {
        if let Some(v) = self.s.version() {
            self.client.set_version(v);
        }
        let mut input = &chunk[..];
        loop {
            match self.client.decode(&mut input) {
                Ok(None) => break,
                Ok(Some(Item::HeartBeat)) => {}
                Ok(Some(Item::Frame(f))) => {
                    assert!(!self.error_seen, "{f:?} after ERROR");
                    match f.command {
                        Command::Connected => {
                            assert!(!self.connected_seen, "second CONNECTED");
                            self.connected_seen = true;
                        }
                        Command::Message | Command::Receipt => {
                            assert!(self.connected_seen, "{f:?} before CONNECTED")
                        }
                        Command::Error => self.error_seen = true,
                        other => panic!("server sent {other:?}"),
                    }
                }
                Err(e) => panic!("our output does not decode: {e:?} in {chunk:?}"),
            }
        }
    }

    fn apply(&mut self, op: Op) {
        let now = self.now;
        match op {
            Op::Receive(data) => {
                let _ = self.s.receive(now, &data);
            }
            Op::Connect {
                version,
                heart_beat,
            } => {
                let v = ["1.0", "1.1", "1.2", "1.0,1.1,1.2", "2.0"][usize::from(version) % 5];
                let frame = format!(
                    "CONNECT\naccept-version:{v}\nhost:/\nheart-beat:{},{}\n\n\0",
                    u32::from(heart_beat.0) * 100,
                    u32::from(heart_beat.1) * 100
                );
                let _ = self.s.receive(now, frame.as_bytes());
            }
            Op::PollEvent {
                accept,
                defer_receipt,
            } => {
                let closed = self.s.is_closed();
                let event = self.s.poll_event();
                if closed {
                    assert!(event.is_none(), "event {event:?} from a closed session");
                }
                match event {
                    Some(Event::Connect(_)) => {
                        if accept {
                            self.s.accept(now, &[("session", "s-1")]).unwrap();
                        } else {
                            self.s.reject("no", "go away").unwrap();
                        }
                    }
                    Some(Event::Subscribe { id, .. }) => self.subs.push(id),
                    Some(_) | None => {}
                }
                if defer_receipt {
                    if let Some(r) = self.s.defer_receipt() {
                        self.deferred.push(r);
                    }
                }
            }
            Op::SendMessage { sub, body, header } => {
                let sub = self.sub(sub);
                let headers = [(header.0.as_str(), header.1.as_str())];
                let _ = self
                    .s
                    .send_message(&sub, "/topic/a", &headers, Bytes::from(body));
            }
            Op::SendPrepared { sub, body } => {
                let sub = self.sub(sub);
                let t = MessageTemplate::new("/topic/a:b\\c", &[("x", "1\n2")], &body);
                let _ = self.s.send_prepared(&sub, &t);
            }
            Op::SendReceipt => {
                // Only receipts taken over with defer_receipt, as an
                // application does.
                if let Some(r) = self.deferred.pop() {
                    let _ = self.s.send_receipt(&r);
                }
            }
            Op::SendError(m, b) => {
                let _ = self.s.send_error(&m, &b);
            }
            Op::Close => self.s.close(),
            Op::TakeOutput => {
                let mut out = Vec::new();
                self.s.take_output(now, &mut out);
                for chunk in &out {
                    self.client_reads(chunk);
                }
            }
            Op::PollTransmit => {
                if let Some(chunk) = self.s.poll_transmit(now) {
                    self.client_reads(&chunk);
                }
            }
            Op::Advance(ms) => self.now += Duration::from_millis(u64::from(ms) * 4),
            Op::NextTimer => {
                if let Some(t) = self.s.poll_timeout() {
                    self.now = self.now.max(t);
                }
                self.s.handle_timeout(self.now);
            }
        }
        if !self.s.is_connected() {
            assert_eq!(self.s.poll_timeout(), None);
        }
        let _ = (
            self.s.heart_beat(),
            self.s.close_reason(),
            self.s.has_output(),
        );
    }
}

fuzz_target!(|input: Input| {
    let mut config = Config {
        heart_beat: HeartBeat::from_millis(1000, 1000),
        max_subscriptions: 4,
        max_transactions: 4,
        ..Config::default()
    };
    if input.small_limits {
        config.limits = Limits {
            max_frame_size: 256,
            max_headers: 6,
            max_header_length: 64,
            max_body: 128,
        };
    }
    let mut h = Harness {
        s: ServerSession::new(config),
        now: Instant::now(),
        subs: Vec::new(),
        deferred: Vec::new(),
        client: Decoder::new(
            Version::V1_0,
            Limits {
                max_frame_size: usize::MAX,
                max_headers: usize::MAX,
                max_header_length: usize::MAX,
                max_body: usize::MAX,
            },
        ),
        connected_seen: false,
        error_seen: false,
    };
    for op in input.ops.into_iter().take(64) {
        h.apply(op);
    }
    // Everything left goes out too.
    let mut out = Vec::new();
    h.s.take_output(h.now, &mut out);
    for chunk in &out {
        h.client_reads(chunk);
    }
});
