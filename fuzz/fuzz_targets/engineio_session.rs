//! The Engine.IO `Session` state machine under arbitrary sequences of
//! requests, WebSocket messages, application calls and time steps.
//!
//! Invariants: no panic; `Closed` is the last event and comes once, and
//! then the session says it is closed; after `handle_timeout(now)` no timer
//! is still due; a polling response only answers a parked GET; nothing is
//! sent on a WebSocket after its `WsClose`.

#![no_main]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use switchboard_engineio::{
    Config, Event, PollOutcome, Session, Transmit, Utf8Bytes, WsId, WsMessage,
};

#[derive(Debug, Arbitrary)]
enum Op {
    Advance(u16),
    /// Jump to the next timer and fire it.
    NextTimer,
    Poll,
    PollAborted,
    Post {
        octet_stream: bool,
        body: Vec<u8>,
    },
    WsOpen {
        b64: bool,
    },
    WsText {
        ws: u8,
        text: String,
    },
    WsBinary {
        ws: u8,
        data: Vec<u8>,
    },
    WsProbe {
        ws: u8,
    },
    WsUpgrade {
        ws: u8,
    },
    WsPong {
        ws: u8,
    },
    WsClosed {
        ws: u8,
    },
    WsError {
        ws: u8,
    },
    SendText(String),
    SendBinary(Vec<u8>),
    Close,
}

#[derive(Debug, Arbitrary)]
struct Input {
    websocket_handshake: bool,
    b64: bool,
    small_payload: bool,
    ops: Vec<Op>,
}

struct Harness {
    s: Session,
    now: Instant,
    ws: Vec<WsId>,
    ws_closed: HashSet<WsId>,
    parked: bool,
    closed_event: bool,
}

impl Harness {
    fn ws(&self, i: u8) -> Option<WsId> {
        (!self.ws.is_empty()).then(|| self.ws[usize::from(i) % self.ws.len()])
    }

    fn drain(&mut self) {
        while let Some(e) = self.s.poll_event() {
            assert!(!self.closed_event, "event {e:?} after Closed");
            if let Event::Closed(_) = e {
                self.closed_event = true;
            }
        }
        if self.closed_event {
            assert!(self.s.is_closed());
        }
        while let Some(t) = self.s.poll_transmit() {
            match t {
                Transmit::PollResponse(body) => {
                    assert!(self.parked, "poll response {body:?} without a parked GET");
                    self.parked = false;
                }
                Transmit::Ws { ws, message } => {
                    assert!(
                        !self.ws_closed.contains(&ws),
                        "{message:?} sent on {ws} after its close"
                    );
                }
                Transmit::WsClose(ws) => {
                    self.ws_closed.insert(ws);
                }
            }
        }
    }

    fn apply(&mut self, op: Op) {
        let now = self.now;
        match op {
            Op::Advance(ms) => self.now += Duration::from_millis(u64::from(ms) * 4),
            Op::NextTimer => {
                if let Some(t) = self.s.poll_timeout() {
                    self.now = self.now.max(t);
                }
                self.s.handle_timeout(self.now);
                if let Some(t) = self.s.poll_timeout() {
                    assert!(t > self.now, "timer still due after handle_timeout");
                }
            }
            Op::Poll => match self.s.poll_request(now) {
                Ok(PollOutcome::Park) => {
                    assert!(!self.parked);
                    self.parked = true;
                }
                Ok(PollOutcome::Respond(_)) => assert!(!self.parked),
                Err(_) => {}
            },
            Op::PollAborted => {
                self.s.poll_aborted(now);
                self.parked = false;
            }
            Op::Post { octet_stream, body } => {
                let ct = octet_stream.then_some("application/octet-stream");
                let _ = self.s.post(now, ct, Bytes::from(body));
            }
            Op::WsOpen { b64 } => {
                if let Some(id) = self.s.ws_open(now, b64) {
                    assert!(!self.ws.contains(&id), "ws id reused");
                    self.ws.push(id);
                }
            }
            Op::WsText { ws, text } => {
                if let Some(ws) = self.ws(ws) {
                    self.s.ws_message(now, ws, WsMessage::Text(text.into()));
                }
            }
            Op::WsBinary { ws, data } => {
                if let Some(ws) = self.ws(ws) {
                    self.s.ws_message(now, ws, WsMessage::Binary(data.into()));
                }
            }
            Op::WsProbe { ws } | Op::WsUpgrade { ws } | Op::WsPong { ws } => {
                let text = match op {
                    Op::WsProbe { .. } => "2probe",
                    Op::WsUpgrade { .. } => "5",
                    _ => "3",
                };
                if let Some(ws) = self.ws(ws) {
                    self.s
                        .ws_message(now, ws, WsMessage::Text(Utf8Bytes::from(text)));
                }
            }
            Op::WsClosed { ws } => {
                if let Some(ws) = self.ws(ws) {
                    self.s.ws_closed(now, ws);
                }
            }
            Op::WsError { ws } => {
                if let Some(ws) = self.ws(ws) {
                    self.s.ws_error(now, ws);
                }
            }
            Op::SendText(t) => self.s.send_text(t),
            Op::SendBinary(b) => self.s.send_binary(b),
            Op::Close => self.s.close(now),
        }
        let _ = (
            self.s.buffered_bytes(),
            self.s.ready_state(),
            self.s.transport(),
        );
        self.drain();
    }
}

fuzz_target!(|input: Input| {
    let mut config = Config::default();
    if input.small_payload {
        config.max_payload = 16;
    }
    let t0 = Instant::now();
    let (s, ws) = if input.websocket_handshake {
        let (s, id) = Session::new_websocket("sid", config, t0, input.b64);
        (s, vec![id])
    } else {
        (Session::new_polling("sid", config, t0), Vec::new())
    };
    let mut h = Harness {
        s,
        now: t0,
        ws,
        ws_closed: HashSet::new(),
        parked: false,
        closed_event: false,
    };
    h.drain();
    for op in input.ops.into_iter().take(64) {
        h.apply(op);
    }
});
