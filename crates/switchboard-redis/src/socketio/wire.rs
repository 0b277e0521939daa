//! The messages Socket.IO nodes exchange over Redis, as a sans-IO codec:
//! [`Message::write_to`] encodes one, [`decode`] checks and parses one,
//! returning a [`DecodeError`] (never panicking, never allocating more than
//! the message's size) for anything malformed. It knows nothing of Redis
//! channels or of what the messages make a node do.
//!
//! # Format, version 1
//!
//! Integers in the header are big-endian; `varint` is LEB128 (at most 10
//! bytes, at most `u64::MAX`); `str` is a varint length then UTF-8; `bytes`
//! a varint length then the bytes; `list<T>` a varint count then the items.
//!
//! | field | size | |
//! |---|---|---|
//! | version | 1 | `1` |
//! | kind | 1 | see below |
//! | origin node id | 8 | random per node; a node drops its own messages |
//! | body | rest | by kind |
//!
//! | kind | body | channel |
//! |---|---|---|
//! | 1 HELLO | — (a node (re)joined: answer with a HEARTBEAT) | common |
//! | 2 HEARTBEAT | — | common, or the HELLO's node |
//! | 3 BYE | — (the node leaves) | common |
//! | 4 BROADCAST | `str` ns, opts, `u8` flags (bit 0 volatile, bit 1 with ack), *if with ack:* `varint` request id, `varint` timeout ms + 1 (0: none); packet | common |
//! | 5 SOCKETS_JOIN | `str` ns, opts, `list<str>` rooms | common |
//! | 6 SOCKETS_LEAVE | `str` ns, opts, `list<str>` rooms | common |
//! | 7 DISCONNECT_SOCKETS | `str` ns, opts, `u8` close (0/1) | common |
//! | 8 FETCH_SOCKETS | `varint` request id, `str` ns, opts | common |
//! | 9 FETCH_SOCKETS_RESPONSE | `varint` request id, `list<socket>` | the asking node's |
//! | 10 ACK_COUNT | `varint` request id, `list<str>` recipient socket ids | the asking node's |
//! | 11 ACK | `varint` request id, `str` socket id, `u8` 0 answered / 1 disconnected, *if answered:* values | the asking node's |
//! | 12 RECORDED | `str` offset, `str` ns, opts, `u8` flags (bit 0 local: for the origin's sockets only); packet | common, and the namespace's stream |
//!
//! * opts: `list<str>` rooms, `list<str>` except.
//! * packet: the encoded Socket.IO EVENT as the origin queued it to its own
//!   sockets (without ack id or recovery offset): `str` text,
//!   `list<bytes>` attachments.
//! * values: a list of Socket.IO values as an encoded ACK packet
//!   (`3[...]`, or `6<n>-[...]` with binary placeholders), i.e. `str`
//!   text, `list<bytes>` attachments.
//! * socket: `str` id, `list<str>` rooms, `list<(str, bytes)>` handshake
//!   headers, `str` url, `list<(str, str)>` query, `varint` issued (ms
//!   since the Unix epoch), `str` address (empty: unknown), `u8` 1 if data
//!   follows, values `[auth, data]`.
//!
//! A RECORDED message (connection state recovery across nodes) is written
//! with an empty offset (one `0` byte at [`HEADER_LEN`]); Redis puts the
//! stream entry id there when it publishes it ([`with_offset`]), so that
//! one script call numbers, stores and publishes it. A node applies its own
//! RECORDED messages too (that is how its sockets get them).
//!
//! Trailing bytes after a body are an error. A later format bumps the
//! version byte.

use std::fmt;
use std::io::{self, Write};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use switchboard_socketio::{
    BroadcastFlags, BroadcastOptions, EncodedPacket, Handshake, HandshakeRequest, Room,
    SessionState, SocketInfo, Value,
};
use switchboard_socketio_proto::{encode, Decoder, DecoderConfig, Packet, PacketType};

/// The format version written (and the only one read).
pub const VERSION: u8 = 1;

/// Bytes before the body: version, kind, node id.
pub const HEADER_LEN: usize = 10;

const FLAG_VOLATILE: u8 = 1;
const FLAG_ACK: u8 = 2;
const FLAG_LOCAL: u8 = 1;

/// A broadcast's ack request: the origin's request id and the caller's
/// timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckRequest {
    /// The origin's request id (answers go to the origin's channel).
    pub id: u64,
    /// The caller's deadline, if any.
    pub timeout: Option<Duration>,
}

/// What a message says.
#[derive(Debug, Clone)]
pub enum Body {
    /// A node (re)joined; the others answer with a heartbeat.
    Hello,
    /// The node is alive.
    Heartbeat,
    /// The node leaves.
    Bye,
    /// `emit` (or `emit_with_ack` when `ack` is set).
    Broadcast {
        /// The namespace.
        ns: String,
        /// Which sockets.
        opts: BroadcastOptions,
        /// Broadcast flags.
        flags: BroadcastFlags,
        /// Set for a broadcast with acks.
        ack: Option<AckRequest>,
        /// The encoded event.
        packet: EncodedPacket,
    },
    /// `sockets_join`.
    SocketsJoin {
        /// The namespace.
        ns: String,
        /// Which sockets.
        opts: BroadcastOptions,
        /// The rooms to join.
        rooms: Vec<Room>,
    },
    /// `sockets_leave`.
    SocketsLeave {
        /// The namespace.
        ns: String,
        /// Which sockets.
        opts: BroadcastOptions,
        /// The rooms to leave.
        rooms: Vec<Room>,
    },
    /// `disconnect_sockets`.
    DisconnectSockets {
        /// The namespace.
        ns: String,
        /// Which sockets.
        opts: BroadcastOptions,
        /// Close their whole connections.
        close: bool,
    },
    /// `fetch_cluster_sockets`.
    FetchSockets {
        /// The origin's request id.
        id: u64,
        /// The namespace.
        ns: String,
        /// Which sockets.
        opts: BroadcastOptions,
    },
    /// A node's answer to [`FetchSockets`](Body::FetchSockets).
    FetchSocketsResponse {
        /// The request id.
        id: u64,
        /// Its sockets.
        sockets: Vec<SocketInfo>,
    },
    /// A node's recipients of a broadcast with acks.
    AckCount {
        /// The request id.
        id: u64,
        /// The recipients' socket ids.
        sids: Vec<String>,
    },
    /// An event numbered for connection state recovery across nodes.
    Recorded {
        /// Its offset (the stream entry id; empty before Redis numbered it).
        offset: String,
        /// The namespace.
        ns: String,
        /// Which sockets.
        opts: BroadcastOptions,
        /// For the origin node's sockets only (`local()`).
        local: bool,
        /// The encoded event.
        packet: EncodedPacket,
    },
    /// One recipient's answer: its ack arguments, or `None` when it
    /// disconnected first.
    Ack {
        /// The request id.
        id: u64,
        /// The socket.
        sid: String,
        /// The ack arguments.
        args: Option<Vec<Value>>,
    },
}

impl Body {
    fn kind(&self) -> u8 {
        match self {
            Body::Hello => 1,
            Body::Heartbeat => 2,
            Body::Bye => 3,
            Body::Broadcast { .. } => 4,
            Body::SocketsJoin { .. } => 5,
            Body::SocketsLeave { .. } => 6,
            Body::DisconnectSockets { .. } => 7,
            Body::FetchSockets { .. } => 8,
            Body::FetchSocketsResponse { .. } => 9,
            Body::AckCount { .. } => 10,
            Body::Ack { .. } => 11,
            Body::Recorded { .. } => 12,
        }
    }
}

/// One message between nodes.
#[derive(Debug, Clone)]
pub struct Message {
    /// The sending node.
    pub node_id: u64,
    /// What it says.
    pub body: Body,
}

/// Counts bytes instead of keeping them.
struct Count(usize);

impl Write for Count {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn varint(out: &mut impl Write, mut n: u64) -> io::Result<()> {
    let mut buf = [0u8; 10];
    let mut i = 0;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            buf[i] = byte;
            i += 1;
            break;
        }
        buf[i] = byte | 0x80;
        i += 1;
    }
    out.write_all(&buf[..i])
}

fn bytes(out: &mut impl Write, b: &[u8]) -> io::Result<()> {
    varint(out, b.len() as u64)?;
    out.write_all(b)
}

fn strs(out: &mut impl Write, list: &[String]) -> io::Result<()> {
    varint(out, list.len() as u64)?;
    for s in list {
        bytes(out, s.as_bytes())?;
    }
    Ok(())
}

fn opts(out: &mut impl Write, o: &BroadcastOptions) -> io::Result<()> {
    strs(out, &o.rooms)?;
    strs(out, &o.except)
}

fn packet(out: &mut impl Write, text: &[u8], attachments: &[Bytes]) -> io::Result<()> {
    bytes(out, text)?;
    varint(out, attachments.len() as u64)?;
    for a in attachments {
        bytes(out, a)?;
    }
    Ok(())
}

fn values(out: &mut impl Write, args: Vec<Value>) -> io::Result<()> {
    let enc = encode(&Packet::ack("/", 0, args));
    packet(out, enc.text.as_bytes(), &enc.attachments)
}

fn socket(out: &mut impl Write, s: &SocketInfo) -> io::Result<()> {
    bytes(out, s.id.as_bytes())?;
    strs(out, &s.rooms)?;
    let h = &s.handshake;
    varint(out, h.headers().len() as u64)?;
    for (name, value) in h.headers() {
        bytes(out, name.as_bytes())?;
        bytes(out, value)?;
    }
    bytes(out, h.url().as_bytes())?;
    let query = h.query();
    varint(out, query.len() as u64)?;
    for (k, v) in &query {
        bytes(out, k.as_bytes())?;
        bytes(out, v.as_bytes())?;
    }
    varint(out, h.issued())?;
    let address = h.address().map(|a| a.to_string()).unwrap_or_default();
    bytes(out, address.as_bytes())?;
    out.write_all(&[u8::from(s.data.is_some())])?;
    values(
        out,
        vec![h.auth().clone(), s.data.clone().unwrap_or(Value::Null)],
    )
}

impl Message {
    /// A message from `node_id`.
    pub fn new(node_id: u64, body: Body) -> Self {
        Message { node_id, body }
    }

    /// Writes the encoded message to `out` (errors only if `out` fails).
    pub fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        let mut header = [0u8; HEADER_LEN];
        header[0] = VERSION;
        header[1] = self.body.kind();
        header[2..10].copy_from_slice(&self.node_id.to_be_bytes());
        out.write_all(&header)?;
        match &self.body {
            Body::Hello | Body::Heartbeat | Body::Bye => Ok(()),
            Body::Broadcast {
                ns,
                opts: o,
                flags,
                ack,
                packet: p,
            } => {
                bytes(out, ns.as_bytes())?;
                opts(out, o)?;
                let mut f = 0;
                if flags.volatile {
                    f |= FLAG_VOLATILE;
                }
                if ack.is_some() {
                    f |= FLAG_ACK;
                }
                out.write_all(&[f])?;
                if let Some(ack) = ack {
                    varint(out, ack.id)?;
                    let ms = ack.timeout.map_or(0, |d| {
                        (d.as_millis().min(u128::from(u64::MAX - 1)) as u64) + 1
                    });
                    varint(out, ms)?;
                }
                packet(out, p.text.as_bytes(), &p.attachments)
            }
            Body::SocketsJoin { ns, opts: o, rooms }
            | Body::SocketsLeave { ns, opts: o, rooms } => {
                bytes(out, ns.as_bytes())?;
                opts(out, o)?;
                strs(out, rooms)
            }
            Body::DisconnectSockets { ns, opts: o, close } => {
                bytes(out, ns.as_bytes())?;
                opts(out, o)?;
                out.write_all(&[u8::from(*close)])
            }
            Body::FetchSockets { id, ns, opts: o } => {
                varint(out, *id)?;
                bytes(out, ns.as_bytes())?;
                opts(out, o)
            }
            Body::FetchSocketsResponse { id, sockets } => {
                varint(out, *id)?;
                varint(out, sockets.len() as u64)?;
                for s in sockets {
                    socket(out, s)?;
                }
                Ok(())
            }
            Body::AckCount { id, sids } => {
                varint(out, *id)?;
                strs(out, sids)
            }
            Body::Recorded {
                offset,
                ns,
                opts: o,
                local,
                packet: p,
            } => {
                bytes(out, offset.as_bytes())?;
                bytes(out, ns.as_bytes())?;
                opts(out, o)?;
                out.write_all(&[if *local { FLAG_LOCAL } else { 0 }])?;
                packet(out, p.text.as_bytes(), &p.attachments)
            }
            Body::Ack { id, sid, args } => {
                varint(out, *id)?;
                bytes(out, sid.as_bytes())?;
                match args {
                    Some(args) => {
                        out.write_all(&[0])?;
                        values(out, args.clone())
                    }
                    None => out.write_all(&[1]),
                }
            }
        }
    }

    /// Length of the encoded message.
    pub fn encoded_len(&self) -> usize {
        let mut c = Count(0);
        let _ = self.write_to(&mut c);
        c.0
    }

    /// The encoded message.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.write_to(&mut out).expect("writing to a Vec");
        out
    }
}

/// A RECORDED message written with an empty offset (`unnumbered`) with
/// `offset` put in (what the record script does in Lua), or `None` if it
/// is not one or `offset` is too long (over 127 bytes).
pub fn with_offset(unnumbered: &[u8], offset: &str) -> Option<Vec<u8>> {
    let recorded = unnumbered.len() > HEADER_LEN
        && unnumbered[0] == VERSION
        && unnumbered[1] == 12
        && unnumbered[HEADER_LEN] == 0;
    if !recorded || offset.len() > 127 {
        return None;
    }
    let mut out = Vec::with_capacity(unnumbered.len() + offset.len());
    out.extend_from_slice(&unnumbered[..HEADER_LEN]);
    out.push(offset.len() as u8);
    out.extend_from_slice(offset.as_bytes());
    out.extend_from_slice(&unnumbered[HEADER_LEN + 1..]);
    Some(out)
}

/// A connection state recovery session as kept in Redis: version, `str`
/// sid, `list<str>` rooms, `u8` 1 if data follows, values `[data]`.
pub fn encode_session(s: &SessionState) -> Vec<u8> {
    let mut out = vec![VERSION];
    let _ = (|| -> io::Result<()> {
        bytes(&mut out, s.sid.as_bytes())?;
        strs(&mut out, &s.rooms)?;
        out.write_all(&[u8::from(s.data.is_some())])?;
        if let Some(d) = &s.data {
            values(&mut out, vec![d.clone()])?;
        }
        Ok(())
    })();
    out
}

/// Reads what [`encode_session`] wrote.
pub fn decode_session(b: &[u8]) -> Result<SessionState, DecodeError> {
    let mut r = Reader(b);
    let version = r.u8()?;
    if version != VERSION {
        return Err(DecodeError::UnknownVersion(version));
    }
    let sid = r.string()?;
    let rooms = r.strings()?;
    let data = match r.bool()? {
        true => {
            let mut v = r.values()?;
            if v.len() != 1 {
                return Err(DecodeError::BadValues("one value expected".into()));
            }
            v.pop()
        }
        false => None,
    };
    if !r.0.is_empty() {
        return Err(DecodeError::Trailing(r.0.len()));
    }
    Ok(SessionState { sid, rooms, data })
}

/// Why a message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// Shorter than announced.
    Truncated,
    /// A version other than [`VERSION`].
    UnknownVersion(u8),
    /// An unknown message kind.
    UnknownKind(u8),
    /// A varint longer than 10 bytes or over `u64::MAX`.
    BadVarint,
    /// A string that is not UTF-8.
    InvalidUtf8,
    /// Unknown flag bits, or a boolean other than 0 or 1.
    BadFlag(u8),
    /// An invalid header name or value.
    BadHeader,
    /// Values that are not a valid encoded ACK packet.
    BadValues(String),
    /// Bytes left after the body.
    Trailing(usize),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated => f.write_str("truncated message"),
            DecodeError::UnknownVersion(v) => write!(f, "unknown format version {v}"),
            DecodeError::UnknownKind(k) => write!(f, "unknown message kind {k}"),
            DecodeError::BadVarint => f.write_str("bad varint"),
            DecodeError::InvalidUtf8 => f.write_str("string is not UTF-8"),
            DecodeError::BadFlag(b) => write!(f, "bad flag byte {b:#04x}"),
            DecodeError::BadHeader => f.write_str("bad handshake header"),
            DecodeError::BadValues(e) => write!(f, "bad values: {e}"),
            DecodeError::Trailing(n) => write!(f, "{n} bytes after the message"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// A cursor over a message being decoded.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.0.len() {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(DecodeError::BadFlag(b)),
        }
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut n: u64 = 0;
        for i in 0..10 {
            let b = self.u8()?;
            let part = u64::from(b & 0x7f);
            if i == 9 && part > 1 {
                return Err(DecodeError::BadVarint);
            }
            n |= part << (7 * i);
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(DecodeError::BadVarint)
    }

    /// A count of items that take at least one byte each: never more than
    /// the bytes left (so that no allocation exceeds the message size).
    fn count(&mut self) -> Result<usize, DecodeError> {
        let n = self.varint()?;
        if n > self.0.len() as u64 {
            return Err(DecodeError::Truncated);
        }
        Ok(n as usize)
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.varint()?;
        if n > self.0.len() as u64 {
            return Err(DecodeError::Truncated);
        }
        self.take(n as usize)
    }

    fn str(&mut self) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| DecodeError::InvalidUtf8)
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        self.str().map(str::to_owned)
    }

    fn strings(&mut self) -> Result<Vec<String>, DecodeError> {
        let n = self.count()?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.string()?);
        }
        Ok(out)
    }

    fn opts(&mut self) -> Result<BroadcastOptions, DecodeError> {
        Ok(BroadcastOptions {
            rooms: self.strings()?,
            except: self.strings()?,
        })
    }

    fn packet(&mut self) -> Result<(&'a str, Vec<Bytes>), DecodeError> {
        let text = self.str()?;
        let n = self.count()?;
        let mut attachments = Vec::with_capacity(n);
        for _ in 0..n {
            attachments.push(Bytes::copy_from_slice(self.bytes()?));
        }
        Ok((text, attachments))
    }

    fn values(&mut self) -> Result<Vec<Value>, DecodeError> {
        let (text, attachments) = self.packet()?;
        let bad = |e: String| DecodeError::BadValues(e);
        let mut decoder = Decoder::with_config(DecoderConfig {
            max_attachments: attachments.len(),
        });
        let mut got = decoder.feed_text(text).map_err(|e| bad(e.to_string()))?;
        let n = attachments.len();
        for (i, a) in attachments.into_iter().enumerate() {
            if got.is_some() {
                return Err(bad(format!("{} attachments unused", n - i)));
            }
            got = decoder.feed_binary(a).map_err(|e| bad(e.to_string()))?;
        }
        match got {
            Some(p) if p.kind == PacketType::Ack => match p.data {
                Some(Value::Array(args)) => Ok(args),
                _ => Ok(Vec::new()),
            },
            Some(p) => Err(bad(format!("a {:?} packet", p.kind))),
            None => Err(bad("attachments missing".into())),
        }
    }

    fn socket(&mut self) -> Result<SocketInfo, DecodeError> {
        let id = self.string()?;
        let rooms = self.strings()?;
        let n = self.count()?;
        let mut headers = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            let name = HeaderName::from_bytes(self.bytes()?).map_err(|_| DecodeError::BadHeader)?;
            let value =
                HeaderValue::from_bytes(self.bytes()?).map_err(|_| DecodeError::BadHeader)?;
            headers.push((name, value));
        }
        let url = self.string()?;
        // The decoded query pairs: what `url` decodes to
        // (`Handshake::query`), read past.
        let n = self.count()?;
        for _ in 0..n {
            self.str()?;
            self.str()?;
        }
        let issued = self.varint()?;
        let address = self.str()?.parse().ok();
        let has_data = self.bool()?;
        let mut v = self.values()?.into_iter();
        let auth = v.next().unwrap_or(Value::Null);
        let data = v.next().filter(|_| has_data);
        Ok(SocketInfo {
            id,
            rooms,
            handshake: Handshake::remote(
                auth,
                HandshakeRequest::from_peer(
                    address,
                    &url,
                    headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())),
                ),
                issued,
            ),
            data,
        })
    }
}

/// Parses and checks one message.
pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
    let mut r = Reader(bytes);
    let version = r.u8()?;
    if version != VERSION {
        return Err(DecodeError::UnknownVersion(version));
    }
    let kind = r.u8()?;
    let node_id = u64::from_be_bytes(r.take(8)?.try_into().expect("8 bytes"));
    let body = match kind {
        1 => Body::Hello,
        2 => Body::Heartbeat,
        3 => Body::Bye,
        4 => {
            let ns = r.string()?;
            let opts = r.opts()?;
            let f = r.u8()?;
            if f & !(FLAG_VOLATILE | FLAG_ACK) != 0 {
                return Err(DecodeError::BadFlag(f));
            }
            let ack = if f & FLAG_ACK != 0 {
                let id = r.varint()?;
                let ms = r.varint()?;
                Some(AckRequest {
                    id,
                    timeout: ms.checked_sub(1).map(Duration::from_millis),
                })
            } else {
                None
            };
            let (text, attachments) = r.packet()?;
            Body::Broadcast {
                ns,
                opts,
                flags: BroadcastFlags {
                    volatile: f & FLAG_VOLATILE != 0,
                },
                ack,
                packet: EncodedPacket {
                    text: text.to_owned().into(),
                    attachments,
                },
            }
        }
        5 | 6 => {
            let ns = r.string()?;
            let opts = r.opts()?;
            let rooms = r.strings()?;
            if kind == 5 {
                Body::SocketsJoin { ns, opts, rooms }
            } else {
                Body::SocketsLeave { ns, opts, rooms }
            }
        }
        7 => Body::DisconnectSockets {
            ns: r.string()?,
            opts: r.opts()?,
            close: r.bool()?,
        },
        8 => Body::FetchSockets {
            id: r.varint()?,
            ns: r.string()?,
            opts: r.opts()?,
        },
        9 => {
            let id = r.varint()?;
            let n = r.count()?;
            let mut sockets = Vec::with_capacity(n);
            for _ in 0..n {
                sockets.push(r.socket()?);
            }
            Body::FetchSocketsResponse { id, sockets }
        }
        10 => Body::AckCount {
            id: r.varint()?,
            sids: r.strings()?,
        },
        11 => {
            let id = r.varint()?;
            let sid = r.string()?;
            let args = match r.u8()? {
                0 => Some(r.values()?),
                1 => None,
                b => return Err(DecodeError::BadFlag(b)),
            };
            Body::Ack { id, sid, args }
        }
        12 => {
            let offset = r.string()?;
            let ns = r.string()?;
            let opts = r.opts()?;
            let f = r.u8()?;
            if f & !FLAG_LOCAL != 0 {
                return Err(DecodeError::BadFlag(f));
            }
            let (text, attachments) = r.packet()?;
            Body::Recorded {
                offset,
                ns,
                opts,
                local: f & FLAG_LOCAL != 0,
                packet: EncodedPacket {
                    text: text.to_owned().into(),
                    attachments,
                },
            }
        }
        k => return Err(DecodeError::UnknownKind(k)),
    };
    if !r.0.is_empty() {
        return Err(DecodeError::Trailing(r.0.len()));
    }
    Ok(Message { node_id, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> BroadcastOptions {
        BroadcastOptions {
            rooms: vec!["r1".into(), "é".into()],
            except: vec!["x".into()],
        }
    }

    fn info() -> SocketInfo {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-user", HeaderValue::from_static("ann"));
        headers.append("cookie", HeaderValue::from_static("a=1"));
        headers.append("cookie", HeaderValue::from_static("b=2"));
        SocketInfo {
            id: "sid1".into(),
            rooms: vec!["sid1".into(), "r".into()],
            handshake: Handshake::remote(
                Value::from_json_str(r#"{"token":"t","n":[1,2.5]}"#).unwrap(),
                HandshakeRequest::from_peer(
                    Some("127.0.0.1:4000".parse().unwrap()),
                    "/socket.io/?EIO=4",
                    &headers,
                ),
                1_700_000_000_123,
            ),
            data: Some(Value::Array(vec![
                Value::from("d"),
                Value::Binary(Bytes::from_static(b"\x00\xff")),
            ])),
        }
    }

    fn samples() -> Vec<Message> {
        let packet = EncodedPacket {
            text: "51-/chat,[\"ev\",{\"_placeholder\":true,\"num\":0}]".into(),
            attachments: vec![Bytes::from_static(b"\x01\x02")],
        };
        let bodies = vec![
            Body::Hello,
            Body::Heartbeat,
            Body::Bye,
            Body::Broadcast {
                ns: "/chat".into(),
                opts: opts(),
                flags: BroadcastFlags { volatile: true },
                ack: None,
                packet: packet.clone(),
            },
            Body::Broadcast {
                ns: "/".into(),
                opts: BroadcastOptions::default(),
                flags: BroadcastFlags::default(),
                ack: Some(AckRequest {
                    id: 300,
                    timeout: Some(Duration::from_millis(1500)),
                }),
                packet: packet.clone(),
            },
            Body::SocketsJoin {
                ns: "/".into(),
                opts: opts(),
                rooms: vec!["a".into()],
            },
            Body::SocketsLeave {
                ns: "/".into(),
                opts: opts(),
                rooms: vec![],
            },
            Body::DisconnectSockets {
                ns: "/".into(),
                opts: opts(),
                close: true,
            },
            Body::FetchSockets {
                id: u64::MAX,
                ns: "/".into(),
                opts: opts(),
            },
            Body::FetchSocketsResponse {
                id: 1,
                sockets: vec![info(), info()],
            },
            Body::AckCount {
                id: 2,
                sids: vec!["a".into(), "b".into()],
            },
            Body::Ack {
                id: 3,
                sid: "a".into(),
                args: Some(vec![
                    Value::from("ok"),
                    Value::Binary(Bytes::from_static(b"bin")),
                ]),
            },
            Body::Ack {
                id: 3,
                sid: "b".into(),
                args: None,
            },
            Body::Recorded {
                offset: "1700000000000-12".into(),
                ns: "/chat".into(),
                opts: opts(),
                local: true,
                packet: packet.clone(),
            },
        ];
        bodies
            .into_iter()
            .map(|b| Message::new(0x0102_0304_0506_0708, b))
            .collect()
    }

    /// Equality through the debug form (the body types are not `PartialEq`).
    fn same(a: &Message, b: &Message) -> bool {
        format!("{a:?}") == format!("{b:?}")
    }

    #[test]
    fn round_trips() {
        for m in samples() {
            let b = m.encode();
            assert_eq!(b.len(), m.encoded_len());
            let d = decode(&b).unwrap_or_else(|e| panic!("{e} for {m:?}"));
            assert!(same(&m, &d), "{m:?}\n{d:?}");
        }
    }

    #[test]
    fn an_offset_is_put_into_an_unnumbered_recorded_message() {
        let recorded = |offset: &str| {
            Message::new(
                7,
                Body::Recorded {
                    offset: offset.into(),
                    ns: "/".into(),
                    opts: opts(),
                    local: false,
                    packet: EncodedPacket {
                        text: "2[\"ev\"]".into(),
                        attachments: vec![],
                    },
                },
            )
            .encode()
        };
        let unnumbered = recorded("");
        assert_eq!(unnumbered[HEADER_LEN], 0);
        let numbered = with_offset(&unnumbered, "1-2").expect("a recorded message");
        assert_eq!(numbered, recorded("1-2"));
        assert!(with_offset(&numbered, "3-4").is_none(), "already numbered");
        let other = Message::new(7, Body::Hello).encode();
        assert!(with_offset(&other, "1-2").is_none());
        assert!(with_offset(&unnumbered, &"9".repeat(128)).is_none());
    }

    #[test]
    fn sessions_round_trip() {
        for data in [None, Some(Value::from("x")), Some(info().data.unwrap())] {
            let s = SessionState {
                sid: "sid1".into(),
                rooms: vec!["sid1".into(), "é".into()],
                data,
            };
            let b = encode_session(&s);
            assert_eq!(decode_session(&b), Ok(s));
            assert!(decode_session(&b[..b.len() - 1]).is_err());
        }
        assert!(decode_session(b"").is_err());
    }

    #[test]
    fn layout_of_the_header() {
        let b = Message::new(0x0102_0304_0506_0708, Body::Heartbeat).encode();
        assert_eq!(b, [1, 2, 1, 2, 3, 4, 5, 6, 7, 8]);
        let mut big = Vec::new();
        varint(&mut big, u64::MAX).unwrap();
        assert_eq!(big.len(), 10);
        assert_eq!(Reader(&big).varint(), Ok(u64::MAX));
        assert_eq!(
            Reader(&[0xff; 10]).varint(),
            Err(DecodeError::BadVarint),
            "over u64::MAX"
        );
        assert_eq!(Reader(&[0x80; 11]).varint(), Err(DecodeError::BadVarint));
    }

    #[test]
    fn malformed_messages_are_errors_never_panics() {
        assert_eq!(decode(b"").unwrap_err(), DecodeError::Truncated);
        assert_eq!(decode(b"\x02").unwrap_err(), DecodeError::UnknownVersion(2));
        assert_eq!(
            decode(&[1, 99, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap_err(),
            DecodeError::UnknownKind(99)
        );
        assert_eq!(
            decode(&[1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap_err(),
            DecodeError::Trailing(1)
        );
        // A huge announced count allocates nothing.
        let mut b = Message::new(
            1,
            Body::AckCount {
                id: 1,
                sids: vec![],
            },
        )
        .encode();
        b.truncate(b.len() - 1);
        varint(&mut b, u64::MAX / 2).unwrap();
        assert_eq!(decode(&b).unwrap_err(), DecodeError::Truncated);
        // Every prefix and every single-byte corruption of every sample.
        for m in samples() {
            let good = m.encode();
            for n in 0..good.len() {
                assert!(decode(&good[..n]).is_err(), "prefix {n} of {m:?}");
                for v in [0u8, 1, 0x7f, 0x80, 0xff] {
                    let mut bad = good.clone();
                    bad[n] = v;
                    let _ = decode(&bad);
                }
            }
        }
    }

    #[test]
    fn values_must_be_one_ack_packet() {
        let frame = |text: &str, atts: &[&'static [u8]]| {
            let mut b = vec![1, 11, 0, 0, 0, 0, 0, 0, 0, 0];
            varint(&mut b, 1).unwrap();
            bytes(&mut b, b"s").unwrap();
            b.push(0);
            let atts: Vec<Bytes> = atts.iter().map(|a| Bytes::from_static(a)).collect();
            packet(&mut b, text.as_bytes(), &atts).unwrap();
            b
        };
        assert!(decode(&frame("3[1]", &[])).is_ok());
        for (text, atts) in [
            ("2[\"ev\"]", &[][..]),
            ("3[1]", &[&b"x"[..]][..]),
            ("61-[{\"_placeholder\":true,\"num\":0}]", &[][..]),
            ("62-[{\"_placeholder\":true,\"num\":0}]", &[&b"x"[..]][..]),
            ("69999999999-[]", &[&b"x"[..]][..]),
            ("3{", &[][..]),
        ] {
            assert!(
                matches!(decode(&frame(text, atts)), Err(DecodeError::BadValues(_))),
                "{text}"
            );
        }
    }
}
