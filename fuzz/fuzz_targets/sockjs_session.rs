//! The SockJS `Session` state machine under arbitrary sequences of
//! receivers (every transport), messages both ways, closes and time steps.
//!
//! Invariants: no panic; every chunk a receiver gets unwraps into valid
//! SockJS frames (`o`, `h`, `a[...]` of strings, `c[code,"reason"]`), `o`
//! at most once; the messages delivered are, in order, a prefix of the
//! messages `send` accepted (none lost in the middle, none duplicated);
//! `Closed` is the last event and comes once; after `handle_timeout(now)`
//! no deadline is still due; a receiver told `End` is no longer attached.

#![no_main]

use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use switchboard_sockjs::{Callback, Event, Flow, ReceiverId, ReceiverKind, Session, SockJsConfig};

#[derive(Debug, Arbitrary)]
enum Op {
    Advance(u16),
    NextTimer,
    Attach(u8),
    Poll(u8),
    Detach(u8),
    Abort(u8),
    Send(String),
    ClientMessages(Vec<String>),
    ClientWs { receiver: u8, text: String },
    Close { code: u16, reason: String },
}

#[derive(Debug, Arbitrary)]
struct Input {
    small_limits: bool,
    ops: Vec<Op>,
}

fn kind(i: u8) -> ReceiverKind {
    let cb = || Callback::new("cb").unwrap();
    match i % 6 {
        0 => ReceiverKind::XhrPolling,
        1 => ReceiverKind::XhrStreaming,
        2 => ReceiverKind::EventSource,
        3 => ReceiverKind::HtmlFile(cb()),
        4 => ReceiverKind::Jsonp(cb()),
        _ => ReceiverKind::WebSocket,
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// The SockJS frames in one chunk written to a receiver of `kind`.
fn unwrap(kind: &ReceiverKind, chunk: &Bytes) -> Vec<String> {
    let s = std::str::from_utf8(chunk).expect("chunk is UTF-8");
    let pieces = |sep: &str| -> Vec<String> {
        let body = s
            .strip_suffix(sep)
            .unwrap_or_else(|| panic!("{s:?} lacks {sep:?}"));
        body.split(sep).map(str::to_owned).collect()
    };
    match kind {
        ReceiverKind::WebSocket => vec![s.to_owned()],
        ReceiverKind::XhrPolling | ReceiverKind::XhrStreaming => pieces("\n"),
        ReceiverKind::EventSource => pieces("\r\n\r\n")
            .iter()
            .map(|p| percent_decode(p.strip_prefix("data: ").unwrap()))
            .collect(),
        ReceiverKind::HtmlFile(_) => pieces(");\n</script>\r\n")
            .iter()
            .map(|p| {
                let lit = p.strip_prefix("<script>\np(").unwrap();
                serde_json::from_str::<String>(lit).unwrap()
            })
            .collect(),
        ReceiverKind::Jsonp(_) => pieces(");\r\n")
            .iter()
            .map(|p| {
                let lit = p.strip_prefix("cb(").unwrap();
                serde_json::from_str::<String>(lit).unwrap()
            })
            .collect(),
    }
}

struct Harness {
    s: Session,
    now: Instant,
    receivers: Vec<(ReceiverId, ReceiverKind)>,
    accepted: Vec<String>,
    delivered: usize,
    opened: bool,
    closed_event: bool,
}

impl Harness {
    fn receiver(&self, i: u8) -> Option<(ReceiverId, ReceiverKind)> {
        (!self.receivers.is_empty())
            .then(|| self.receivers[usize::from(i) % self.receivers.len()].clone())
    }

    fn take(&mut self, id: ReceiverId, kind: &ReceiverKind, data: &[Bytes], flow: Flow) {
        if !matches!(kind, ReceiverKind::WebSocket) {
            assert!(data.len() <= 1, "several chunks for an HTTP receiver");
        }
        for chunk in data {
            for frame in unwrap(kind, chunk) {
                match frame.as_bytes().first() {
                    Some(b'o') if frame == "o" => {
                        assert!(!self.opened, "second open frame");
                        self.opened = true;
                    }
                    Some(b'h') if frame == "h" => {}
                    Some(b'a') => {
                        let msgs: Vec<String> = serde_json::from_str(&frame[1..])
                            .unwrap_or_else(|e| panic!("bad frame {frame:?}: {e}"));
                        for m in msgs {
                            assert!(
                                self.delivered < self.accepted.len()
                                    && self.accepted[self.delivered] == m,
                                "delivered {m:?} out of order"
                            );
                            self.delivered += 1;
                        }
                    }
                    Some(b'c') => {
                        let _: (u16, String) = serde_json::from_str(&frame[1..])
                            .unwrap_or_else(|e| panic!("bad frame {frame:?}: {e}"));
                    }
                    _ => panic!("bad frame {frame:?}"),
                }
            }
        }
        if flow == Flow::End {
            assert!(!self.s.is_attached(id), "ended receiver still attached");
        }
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
                    assert!(t > self.now, "deadline still due after handle_timeout");
                }
            }
            Op::Attach(k) => {
                let kind = kind(k);
                let _ = kind.prelude();
                let a = self.s.attach(now, kind.clone());
                self.take(a.id, &kind, &a.data, a.flow);
                if a.flow == Flow::Continue {
                    self.receivers.push((a.id, kind));
                }
            }
            Op::Poll(i) => {
                if let Some((id, kind)) = self.receiver(i) {
                    let _ = self.s.has_output();
                    let mut out = Vec::new();
                    let flow = self.s.poll_output(now, id, &mut out);
                    self.take(id, &kind, &out, flow);
                }
            }
            Op::Detach(i) => {
                if let Some((id, _)) = self.receiver(i) {
                    self.s.detach(now, id);
                }
            }
            Op::Abort(i) => {
                if let Some((id, _)) = self.receiver(i) {
                    self.s.abort(now, id);
                }
            }
            Op::Send(text) => {
                if self.s.send_text(&text).is_ok() {
                    self.accepted.push(text);
                }
            }
            Op::ClientMessages(m) => self.s.handle_messages(m),
            Op::ClientWs { receiver, text } => {
                if let Some((id, _)) = self.receiver(receiver) {
                    let _ = self.s.handle_ws_message(now, id, &text);
                }
            }
            Op::Close { code, reason } => {
                let _ = self.s.close(code, reason);
            }
        }
        let _ = (self.s.state(), self.s.queued());
        self.receivers.retain(|(id, _)| self.s.is_attached(*id));
        self.drain();
    }
}

fuzz_target!(|input: Input| {
    let mut config = SockJsConfig::default();
    if input.small_limits {
        config.stream_bytes_limit = 64;
        config.http_message_cache_size = 3;
    }
    let t0 = Instant::now();
    let mut h = Harness {
        s: Session::new(t0, &config),
        now: t0,
        receivers: Vec::new(),
        accepted: Vec::new(),
        delivered: 0,
        opened: false,
        closed_event: false,
    };
    for op in input.ops.into_iter().take(64) {
        h.apply(op);
    }
});
