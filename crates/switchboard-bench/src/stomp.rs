//! A minimal STOMP 1.2 client over WebSocket (STOMP over WebSocket, as
//! `@stomp/stompjs` speaks it to RabbitMQ's Web-STOMP and to Switchboard):
//!
//! * the WebSocket is [`WsConn`] (Switchboard's own core in client role),
//!   offering the subprotocol `v12.stomp`;
//! * frames are encoded with `switchboard_stomp_proto::encode_frame`, one
//!   frame per WebSocket text message (as stompjs sends them);
//! * what the server sends is fed to `switchboard_stomp_proto`'s incremental
//!   [`Decoder`], so a WebSocket message may carry one frame (RabbitMQ), several
//!   (Switchboard coalesces what it produced between two flushes) or part of
//!   one; the EOLs RabbitMQ appends after each frame are heart-beat items and
//!   are skipped.
//! * **Fast path for MESSAGE frames.** The `Decoder` builds an owned
//!   [`Frame`] (a `String` per header name and value, a `Vec`, the body), about
//!   1.6 µs of the load generator's core per delivery here: at 1 M
//!   deliveries/s the client, not the server, would be the limit. So while the
//!   decoder is between frames, a complete `MESSAGE` frame at the front of the
//!   input is read in place ([`fast_message`]: the `content-length`, `ack`,
//!   `message-id` and `redelivered` headers are borrowed, nothing is
//!   allocated). Anything else — other commands, a frame split across
//!   WebSocket messages, no `content-length`, an escape sequence in a header
//!   the bench reads — goes to the `Decoder` as usual. `--full-decode` turns
//!   the fast path off; a unit test checks that both agree.
//!
//! CONNECT offers `accept-version:1.2`, `host`, `login`, `passcode` and
//! `heart-beat:0,0` (no heart-beats: runs are short and the load generator
//! must not spend time on timers).

use std::io;
use std::net::IpAddr;

use bytes::{Bytes, BytesMut};
use switchboard_stomp_proto::{encode_frame, Command, Decoder, Frame, Item, Limits, Version};

use crate::util::Target;
use crate::ws::WsConn;

/// The WebSocket subprotocol offered.
pub const SUBPROTOCOL: &str = "v12.stomp";

/// CONNECT credentials and virtual host.
#[derive(Clone, Debug, clap::Args)]
pub struct StompOpts {
    /// CONNECT `login`
    #[arg(long, default_value = "guest")]
    pub login: String,
    /// CONNECT `passcode`
    #[arg(long, default_value = "guest")]
    pub passcode: String,
    /// CONNECT `host` (the virtual host)
    #[arg(long, default_value = "/")]
    pub vhost: String,
    /// decode every frame with switchboard-stomp-proto's Decoder (no fast path
    /// for MESSAGE frames; costs the client ~1.6 µs more per message)
    #[arg(long)]
    pub full_decode: bool,
}

/// One frame from the server as the bench sees it: a borrowed view, from the
/// fast path or from a decoded [`Frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incoming<'a> {
    pub command: Command,
    pub body: &'a [u8],
    /// the `ack` header (STOMP 1.2, `client` ack modes)
    pub ack: Option<&'a str>,
    pub message_id: Option<&'a str>,
    /// `redelivered:true`
    pub redelivered: bool,
    /// the decoded frame (not for MESSAGEs taken by the fast path)
    pub frame: Option<&'a Frame>,
}

impl<'a> Incoming<'a> {
    fn of_frame(f: &'a Frame) -> Self {
        Incoming {
            command: f.command,
            body: &f.body,
            ack: f.get("ack"),
            message_id: f.get("message-id"),
            redelivered: f.get("redelivered") == Some("true"),
            frame: Some(f),
        }
    }
}

/// Reads one complete `MESSAGE` frame at the front of `input` in place;
/// returns it and the bytes it took, or `None` when the frame is not a
/// MESSAGE, is incomplete, has no `content-length`, or a header the bench
/// reads has an escape sequence (the caller then hands the input to the
/// [`Decoder`]). Repeated headers: the first one counts, as in the Decoder.
pub fn fast_message(input: &[u8]) -> Option<(Incoming<'_>, usize)> {
    let mut pos = if input.starts_with(b"MESSAGE\n") {
        8
    } else if input.starts_with(b"MESSAGE\r\n") {
        9
    } else {
        return None;
    };
    let (mut clen, mut ack, mut mid, mut red) = (None, None, None, None);
    loop {
        let end = pos + input[pos..].iter().position(|&b| b == b'\n')?;
        let mut line = &input[pos..end];
        pos = end + 1;
        if let Some(l) = line.strip_suffix(b"\r") {
            line = l;
        }
        if line.is_empty() {
            break;
        }
        let colon = line.iter().position(|&b| b == b':')?;
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let text = || {
            if value.contains(&b'\\') {
                None
            } else {
                std::str::from_utf8(value).ok()
            }
        };
        match name {
            b"content-length" if clen.is_none() => {
                if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
                    return None;
                }
                clen = Some(std::str::from_utf8(value).ok()?.parse::<usize>().ok()?);
            }
            b"ack" if ack.is_none() => ack = Some(text()?),
            b"message-id" if mid.is_none() => mid = Some(text()?),
            b"redelivered" if red.is_none() => red = Some(value == b"true"),
            _ => {}
        }
    }
    let body_end = pos.checked_add(clen?)?;
    if *input.get(body_end)? != 0 {
        return None;
    }
    Some((
        Incoming {
            command: Command::Message,
            body: &input[pos..body_end],
            ack,
            message_id: mid,
            redelivered: red == Some(true),
            frame: None,
        },
        body_end + 1,
    ))
}

/// Feeds one chunk of the server's byte stream: MESSAGE frames on the fast
/// path (when `fast`) while `dec` is between frames, the rest through `dec`.
/// Stops at the first decode error (returned; the decoder keeps failing).
pub fn feed(
    dec: &mut Decoder,
    mut input: &[u8],
    fast: bool,
    mut f: impl FnMut(Incoming<'_>),
) -> Result<(), String> {
    loop {
        if fast && dec.is_idle() {
            while let [b'\n', rest @ ..] = input {
                input = rest; // EOLs between frames (heart-beats, RabbitMQ's trailing LF)
            }
            if let Some((m, used)) = fast_message(input) {
                f(m);
                input = &input[used..];
                continue;
            }
        }
        if input.is_empty() {
            return Ok(());
        }
        match dec.decode(&mut input) {
            Ok(Some(Item::Frame(fr))) => f(Incoming::of_frame(&fr)),
            Ok(Some(Item::HeartBeat)) => {}
            Ok(None) => return Ok(()),
            Err(e) => return Err(e.to_string()),
        }
    }
}

pub struct StompConn {
    pub ws: WsConn,
    dec: Decoder,
    /// MESSAGE frames on the fast path
    fast: bool,
    enc: BytesMut,
    /// the first decode error or ERROR frame seen, for the caller
    pub failure: Option<String>,
}

impl StompConn {
    /// Opens the WebSocket and the STOMP session (CONNECT → CONNECTED).
    pub async fn connect(t: &Target, local: Option<IpAddr>, o: &StompOpts) -> io::Result<Self> {
        let ws = WsConn::connect_with_protocols(t, local, &[SUBPROTOCOL]).await?;
        let mut c = StompConn {
            ws,
            dec: Decoder::new(Version::V1_2, Limits::default()),
            fast: !o.full_decode,
            enc: BytesMut::with_capacity(512),
            failure: None,
        };
        c.send(
            &Frame::new(Command::Connect)
                .header("accept-version", "1.2")
                .header("host", o.vhost.as_str())
                .header("login", o.login.as_str())
                .header("passcode", o.passcode.as_str())
                .header("heart-beat", "0,0"),
        );
        c.ws.flush().await?;
        c.wait_for(|f| f.command == Command::Connected).await?;
        Ok(c)
    }

    /// Queues one frame as one WebSocket message (sent by the next `flush`).
    pub fn send(&mut self, f: &Frame) {
        self.enc.clear();
        encode_frame(f, Version::V1_2, &mut self.enc);
        self.send_encoded();
    }

    /// Queues the frame already encoded in `self.enc`.
    fn send_encoded(&mut self) {
        match std::str::from_utf8(&self.enc) {
            Ok(s) => self.ws.send_text(s),
            // the bench sends ASCII only
            Err(_) => unreachable!("non-UTF-8 STOMP frame"),
        }
    }

    /// Queues `SEND` of `body` to `destination` (no receipt).
    pub fn send_message(&mut self, destination: &str, body: &[u8]) {
        self.send(
            &Frame::new(Command::Send)
                .header("destination", destination)
                .body(Bytes::copy_from_slice(body)),
        );
    }

    /// Queues `ACK` with `id` (STOMP 1.2: the MESSAGE's `ack` header).
    pub fn ack(&mut self, id: &str) {
        self.send(&Frame::new(Command::Ack).header("id", id));
    }

    pub async fn flush(&mut self) -> io::Result<()> {
        self.ws.flush().await
    }

    pub async fn read(&mut self) -> io::Result<usize> {
        self.ws.read().await
    }

    pub fn try_read(&mut self) -> io::Result<usize> {
        self.ws.try_read()
    }

    /// Decodes every complete frame read so far and hands it to `f`. An ERROR
    /// frame is passed on too, and recorded in `failure`. Returns false once
    /// the WebSocket closed or the stream could not be decoded.
    pub fn process(&mut self, mut f: impl FnMut(Incoming<'_>)) -> bool {
        let dec = &mut self.dec;
        let failure = &mut self.failure;
        let fast = self.fast;
        let mut broken = false;
        let alive = self.ws.process(|input| {
            if broken {
                return;
            }
            let r = feed(dec, input, fast, |m| {
                if m.command == Command::Error && failure.is_none() {
                    *failure = Some(format!(
                        "ERROR frame: {} {}",
                        m.frame.and_then(|fr| fr.get("message")).unwrap_or(""),
                        String::from_utf8_lossy(m.body).trim()
                    ));
                }
                f(m)
            });
            if let Err(e) = r {
                broken = true;
                if failure.is_none() {
                    *failure = Some(format!("undecodable STOMP: {e}"));
                }
            }
        });
        alive && !broken
    }

    /// Reads until a frame satisfies `pred` (other frames are dropped); an
    /// ERROR frame or the end of the connection is an error.
    pub async fn wait_for(&mut self, mut pred: impl FnMut(&Frame) -> bool) -> io::Result<()> {
        loop {
            let mut found = false;
            let alive = self.process(|m| {
                if let Some(f) = m.frame {
                    found |= pred(f);
                }
            });
            if found {
                return Ok(());
            }
            if let Some(e) = &self.failure {
                return Err(io::Error::other(e.clone()));
            }
            if !alive {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed",
                ));
            }
            self.ws.flush().await?;
            if self.ws.read().await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed",
                ));
            }
        }
    }

    /// SUBSCRIBE with a receipt, and waits for the RECEIPT (so the
    /// subscription exists on the server when this returns).
    pub async fn subscribe(
        &mut self,
        id: &str,
        destination: &str,
        extra: &[(&str, &str)],
    ) -> io::Result<()> {
        let receipt = format!("sub-{id}");
        let mut f = Frame::new(Command::Subscribe)
            .header("id", id)
            .header("destination", destination);
        for &(n, v) in extra {
            f = f.header(n, v);
        }
        f = f.header("receipt", receipt.as_str());
        self.send(&f);
        self.ws.flush().await?;
        self.wait_for(|f| f.command == Command::Receipt && f.get("receipt-id") == Some(&receipt))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_stomp_proto::MessageTemplate;

    /// What `feed` reports for a frame, owned, for comparisons.
    #[derive(Debug, PartialEq, Eq)]
    struct Seen {
        command: Command,
        body: Vec<u8>,
        ack: Option<String>,
        message_id: Option<String>,
        redelivered: bool,
    }

    fn run(chunks: &[&[u8]], fast: bool) -> (Vec<Seen>, Result<(), String>) {
        let mut dec = Decoder::new(Version::V1_2, Limits::default());
        let mut seen = Vec::new();
        let mut res = Ok(());
        for c in chunks {
            res = feed(&mut dec, c, fast, |m| {
                seen.push(Seen {
                    command: m.command,
                    body: m.body.to_vec(),
                    ack: m.ack.map(str::to_owned),
                    message_id: m.message_id.map(str::to_owned),
                    redelivered: m.redelivered,
                })
            });
            if res.is_err() {
                break;
            }
        }
        (seen, res)
    }

    fn stream() -> Vec<u8> {
        let mut out = Vec::new();
        let t = MessageTemplate::new(
            "/topic/bench",
            &[("content-type", "text/plain")],
            b"0123\0body",
        );
        out.extend(t.prepare(Version::V1_2, Some("0"), "17", None).to_vec());
        out.extend(
            t.prepare(Version::V1_2, Some("s:1"), "18", Some("18"))
                .to_vec(),
        );
        out.extend_from_slice(b"\n\n");
        // RabbitMQ's layout: ack and redelivered headers, trailing LF, CRLF lines
        out.extend_from_slice(
            b"MESSAGE\r\nsubscription:0\r\ndestination:/queue/bench\r\nmessage-id:T_0@@session-x@@1\r\n\
              redelivered:true\r\nack:T_0@@session-x@@1\r\ncontent-length:3\r\n\r\nabc\0\n",
        );
        // an escaped ack value: decoder only
        out.extend_from_slice(b"MESSAGE\nack:a\\cb\nmessage-id:1\ncontent-length:1\n\nz\0");
        // no content-length: decoder only
        out.extend_from_slice(b"MESSAGE\nmessage-id:2\nack:2\n\nxy\0");
        let mut b = bytes::BytesMut::new();
        encode_frame(
            &Frame::new(Command::Receipt).header("receipt-id", "sub-0"),
            Version::V1_2,
            &mut b,
        );
        out.extend_from_slice(&b);
        b.clear();
        encode_frame(
            &Frame::new(Command::Message)
                .header("message-id", "9")
                .header("redelivered", "false")
                .header("ack", "first")
                .header("ack", "second")
                .body("last"),
            Version::V1_2,
            &mut b,
        );
        out.extend_from_slice(&b);
        out
    }

    #[test]
    fn fast_path_agrees_with_the_decoder_however_split() {
        let s = stream();
        let (want, r) = run(&[&s], false);
        r.unwrap();
        assert_eq!(want.len(), 7, "{want:?}");
        assert_eq!(want[2].ack.as_deref(), Some("T_0@@session-x@@1"));
        assert!(want[2].redelivered);
        assert_eq!(want[3].ack.as_deref(), Some("a:b"));
        assert_eq!(want[4].body, b"xy");
        assert_eq!(want[5].command, Command::Receipt);
        assert_eq!(want[6].ack.as_deref(), Some("first"));
        for fast in [false, true] {
            assert_eq!(run(&[&s], fast).0, want);
            for i in 0..=s.len() {
                let (got, r) = run(&[&s[..i], &s[i..]], fast);
                r.unwrap();
                assert_eq!(got, want, "split at {i}, fast {fast}");
            }
        }
        let singles: Vec<&[u8]> = s.chunks(1).collect();
        assert_eq!(run(&singles, true).0, want);
    }

    #[test]
    fn fast_path_takes_only_complete_messages() {
        let s = b"MESSAGE\nmessage-id:1\ncontent-length:2\n\nab\0";
        let (m, used) = fast_message(s).unwrap();
        assert_eq!(
            (m.body, used, m.message_id),
            (&b"ab"[..], s.len(), Some("1"))
        );
        assert!(fast_message(&s[..s.len() - 1]).is_none());
        assert!(fast_message(b"MESSAGE\ncontent-length:1\n\nab\0").is_none());
        assert!(fast_message(b"RECEIPT\nreceipt-id:1\n\n\0").is_none());
        // a broken frame is left to the decoder, which reports it
        let (_, r) = run(&[b"MESSAGE\ncontent-length:1\n\nab\0"], true);
        assert!(r.is_err());
    }
}
