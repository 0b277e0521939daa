//! The connection state machine: turns received bytes into [`Event`]s
//! (unmasking in place, zero-copy where possible) and queues outgoing frames
//! in a [`Writer`] whose output is drained in one vectored write per flush.

use std::mem;

use bytes::{Bytes, BytesMut};

use crate::close::{parse_close_payload, CloseCode};
use crate::deflate::{Compressor, Decompressor, DeflateParams};
use crate::error::{Error, ProtocolError};
use crate::frame::{FrameHeader, OpCode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
use crate::mask::{apply_mask, apply_mask_offset};
use crate::output_pool::{self, reserve};
use crate::rng::FastRng;
use crate::utf8::Utf8Validator;

/// Which end of the connection this is. Servers expect masked frames and
/// send unmasked ones; clients the opposite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Accepting side.
    Server,
    /// Connecting side.
    Client,
}

/// Connection limits and negotiated extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Largest message (after reassembly and decompression). Default 16 MiB.
    /// Limits above 4 GiB (less 64 bytes) count as that.
    pub max_message_size: usize,
    /// Largest single frame payload (as received). Default 16 MiB. Limits
    /// above 4 GiB (less 64 bytes) count as that.
    pub max_frame_size: usize,
    /// Negotiated permessage-deflate parameters, if any.
    pub deflate: Option<DeflateParams>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_message_size: 16 << 20,
            max_frame_size: 16 << 20,
            deflate: None,
        }
    }
}

/// Something that happened on the connection. Borrowed data is valid only
/// for the duration of the callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// A complete text message (validated UTF-8).
    Text(&'a str),
    /// A complete binary message.
    Binary(&'a [u8]),
    /// A ping; the matching pong has already been queued.
    Ping(&'a [u8]),
    /// A pong.
    Pong(&'a [u8]),
    /// The peer's close frame (code and reason, or `None` if empty). A reply
    /// close has been queued if we had not sent one; the connection is now
    /// closed: flush the output, then drop the transport.
    Close(Option<(CloseCode, &'a str)>),
}

/// Message currently being reassembled from fragments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Msg {
    None,
    Text,
    Binary,
}

/// Decompression state (only when permessage-deflate is negotiated).
#[derive(Debug)]
struct Inflate {
    d: Decompressor,
    /// Decompressed message; kept between messages only if small.
    buf: Vec<u8>,
}

/// Keep at most this much decompression buffer capacity between messages.
const INFLATE_KEEP: usize = 16 * 1024;

/// Receive half. Every connection keeps one for its whole life, so what
/// only an incomplete frame or message needs is boxed ([`Partial`]): an
/// idle reader is 32 bytes.
#[derive(Debug)]
struct Reader {
    server: bool,
    closed: bool,
    msg: Msg,
    msg_compressed: bool,
    // The limits are `u32`s (see above).
    max_message_size: u32,
    max_frame_size: u32,
    /// `Some` while a frame or a message is incomplete; freed when the
    /// reader is idle again (at the end of [`Reader::receive`]).
    partial: Option<Box<Partial>>,
    inflate: Option<Box<Inflate>>,
}

/// The receive state of an incomplete frame or message.
#[derive(Debug, Default)]
struct Partial {
    /// Bytes of an incomplete frame (header included).
    pending: Vec<u8>,
    /// Payload bytes at the start of `pending`'s payload already unmasked
    /// (and UTF-8-validated if text); at most `max_frame_size`.
    pending_checked: u32,
    /// UTF-8 validation across the frames (and reads) of a text message.
    utf8: Utf8Validator,
    /// Uncompressed fragmented message being reassembled.
    msg_buf: Vec<u8>,
}

/// A sans-IO WebSocket connection.
///
/// Feed received bytes to [`receive`](Self::receive); send through the
/// [`Writer`] (also handed to the event callback); drain output with
/// [`Writer::take_output`]. An idle connection holds no heap buffers
/// (except the zlib state when permessage-deflate is negotiated).
#[derive(Debug)]
pub struct Connection {
    reader: Reader,
    writer: Writer,
}

impl Connection {
    /// A new connection in the open state (after the handshake).
    pub fn new(role: Role, config: Config) -> Self {
        let server = role == Role::Server;
        let inflate = config.deflate.as_ref().map(|p| {
            Box::new(Inflate {
                d: p.decompressor(server),
                buf: Vec::new(),
            })
        });
        Connection {
            reader: Reader {
                server,
                closed: false,
                msg: Msg::None,
                msg_compressed: false,
                max_message_size: clamp_limit(config.max_message_size),
                max_frame_size: clamp_limit(config.max_frame_size),
                partial: None,
                inflate,
            },
            writer: Writer::new(role, config.deflate.as_ref()),
        }
    }

    /// Processes received bytes, calling `on_event` for every event.
    ///
    /// `data` is unmasked in place; complete unfragmented, uncompressed
    /// messages are delivered as slices of `data`. A trailing partial frame
    /// is buffered internally until the rest arrives.
    ///
    /// On a protocol violation a close frame with the matching code is
    /// queued, the connection becomes closed and the error is returned.
    /// Input after the close handshake or an error is ignored.
    pub fn receive<F>(&mut self, data: &mut [u8], mut on_event: F) -> Result<(), Error>
    where
        F: FnMut(Event<'_>, &mut Writer),
    {
        if self.reader.closed {
            return Ok(());
        }
        let r = self.reader.receive(data, &mut self.writer, &mut on_event);
        if self.reader.closed || r.is_err() {
            self.reader.release();
        }
        match r {
            Ok(()) => Ok(()),
            Err(e) => {
                self.reader.closed = true;
                self.writer.close(e.close_code(), e.reason());
                Err(Error::Protocol(e))
            }
        }
    }

    /// The send half.
    #[inline]
    pub fn writer(&mut self) -> &mut Writer {
        &mut self.writer
    }

    /// Whether the connection is finished (close handshake done or protocol
    /// error): flush remaining output, then drop the transport.
    #[inline]
    pub fn is_closed(&self) -> bool {
        self.reader.closed
    }

    /// Whether we have sent (queued) a close frame.
    #[inline]
    pub fn close_sent(&self) -> bool {
        self.writer.close_sent
    }

    /// This endpoint's role.
    #[inline]
    pub fn role(&self) -> Role {
        if self.reader.server {
            Role::Server
        } else {
            Role::Client
        }
    }

    /// Bytes currently buffered on the receive side (partial frame plus
    /// fragmented message); 0 when idle.
    pub fn buffered_len(&self) -> usize {
        self.reader
            .partial
            .as_ref()
            .map_or(0, |p| p.pending.len() + p.msg_buf.len())
            + self.reader.inflate.as_ref().map_or(0, |i| i.buf.len())
    }

    /// Heap capacity held by receive and send buffers (not counting zlib
    /// state). 0 for an idle connection whose output has been taken.
    pub fn buffer_capacity(&self) -> usize {
        self.reader.partial.as_ref().map_or(0, |p| {
            mem::size_of::<Partial>() + p.pending.capacity() + p.msg_buf.capacity()
        }) + self.reader.inflate.as_ref().map_or(0, |i| i.buf.capacity())
            + self.writer.out.as_ref().map_or(0, |o| {
                mem::size_of::<Output>()
                    + o.buf.capacity()
                    + o.chunks.capacity() * mem::size_of::<Bytes>()
            })
    }
}

/// The largest limit a connection keeps: a frame (payload plus a header of
/// at most 14 bytes) still counts in a `u32`.
const MAX_LIMIT: u32 = u32::MAX - 64;

fn clamp_limit(limit: usize) -> u32 {
    u32::try_from(limit).map_or(MAX_LIMIT, |l| l.min(MAX_LIMIT))
}

impl Reader {
    /// Frees all buffers (after close or error).
    fn release(&mut self) {
        self.partial = None;
        if let Some(i) = &mut self.inflate {
            i.buf = Vec::new();
        }
    }

    fn receive<F>(
        &mut self,
        data: &mut [u8],
        w: &mut Writer,
        f: &mut F,
    ) -> Result<(), ProtocolError>
    where
        F: FnMut(Event<'_>, &mut Writer),
    {
        let r = self.receive_frames(data, w, f);
        // Idle again (no incomplete frame, no message under way): the
        // partial state goes.
        if self.msg == Msg::None && self.partial.as_ref().is_some_and(|p| p.pending.is_empty()) {
            self.partial = None;
        }
        r
    }

    fn receive_frames<F>(
        &mut self,
        data: &mut [u8],
        w: &mut Writer,
        f: &mut F,
    ) -> Result<(), ProtocolError>
    where
        F: FnMut(Event<'_>, &mut Writer),
    {
        let mut pos = 0;
        if self.partial.as_ref().is_some_and(|p| !p.pending.is_empty()) {
            pos = self.receive_pending(data, w, f)?;
        }
        while pos < data.len() && !self.closed {
            let rest = &mut data[pos..];
            let Some((h, hl)) = FrameHeader::parse(rest)? else {
                self.partial().pending.extend_from_slice(rest);
                return Ok(());
            };
            self.check_header(&h)?;
            // check_header bounds payload_len by max_frame_size (a usize).
            let len = h.payload_len as usize;
            if rest.len() - hl < len {
                self.partial().pending.extend_from_slice(rest);
                return self.speculate(&h, hl);
            }
            let payload = &mut rest[hl..hl + len];
            if let Some(k) = h.mask {
                apply_mask(payload, k);
            }
            self.handle_frame(&h, payload, 0, w, f)?;
            pos += hl + len;
        }
        Ok(())
    }

    /// The partial state, allocated at its first use.
    #[inline]
    fn partial(&mut self) -> &mut Partial {
        self.partial.get_or_insert_with(Box::default)
    }

    /// Feeds `bytes` of the text message under way to its UTF-8 check.
    #[inline]
    fn feed_utf8(&mut self, bytes: &[u8]) -> Result<(), ProtocolError> {
        self.partial()
            .utf8
            .feed(bytes)
            .map_err(|_| ProtocolError::InvalidUtf8)
    }

    /// The end of a text message: an incomplete sequence fails.
    #[inline]
    fn finish_utf8(&mut self) -> Result<(), ProtocolError> {
        match self.partial.as_mut() {
            Some(p) => p.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8),
            None => Ok(()),
        }
    }

    /// Continues the frame buffered in `pending`; returns bytes consumed.
    fn receive_pending<F>(
        &mut self,
        data: &[u8],
        w: &mut Writer,
        f: &mut F,
    ) -> Result<usize, ProtocolError>
    where
        F: FnMut(Event<'_>, &mut Writer),
    {
        let mut consumed = 0;
        let (h, hl) = loop {
            let pending = &mut self.partial().pending;
            if let Some(x) = FrameHeader::parse(pending)? {
                break x;
            }
            let need = FrameHeader::required_len(pending) - pending.len();
            let take = need.min(data.len() - consumed);
            if take == 0 {
                return Ok(consumed);
            }
            pending.extend_from_slice(&data[consumed..consumed + take]);
            consumed += take;
        };
        self.check_header(&h)?;
        let total = hl + h.payload_len as usize;
        let pending = &mut self.partial().pending;
        let take = (total - pending.len()).min(data.len() - consumed);
        pending.extend_from_slice(&data[consumed..consumed + take]);
        consumed += take;
        if pending.len() < total {
            self.speculate(&h, hl)?;
            return Ok(consumed);
        }
        let p = self.partial();
        let mut buf = mem::take(&mut p.pending);
        let checked = mem::replace(&mut p.pending_checked, 0) as usize;
        let payload = &mut buf[hl..total];
        if let Some(k) = h.mask {
            apply_mask_offset(&mut payload[checked..], k, checked);
        }
        self.handle_frame(&h, payload, checked, w, f)?;
        Ok(consumed)
    }

    /// Whether a frame with header `h` carries (uncompressed) text.
    #[inline]
    fn is_plain_text(&self, h: &FrameHeader) -> bool {
        match h.opcode {
            OpCode::Text => !h.rsv1,
            OpCode::Continuation => self.msg == Msg::Text && !self.msg_compressed,
            _ => false,
        }
    }

    /// For a partially received text frame, unmasks and validates the bytes
    /// that have arrived so that invalid UTF-8 fails before the frame ends.
    fn speculate(&mut self, h: &FrameHeader, hl: usize) -> Result<(), ProtocolError> {
        if !self.is_plain_text(h) {
            return Ok(());
        }
        let p = self.partial();
        if p.pending.len() <= hl {
            return Ok(());
        }
        let avail = p.pending.len() - hl;
        let checked = p.pending_checked as usize;
        if avail <= checked {
            return Ok(());
        }
        let new = &mut p.pending[hl + checked..hl + avail];
        if let Some(k) = h.mask {
            apply_mask_offset(new, k, checked);
        }
        p.utf8.feed(new).map_err(|_| ProtocolError::InvalidUtf8)?;
        // avail ≤ the payload length ≤ max_frame_size (check_header).
        p.pending_checked = avail as u32;
        Ok(())
    }

    /// Validates a header against role, extensions, message state and limits.
    #[inline]
    fn check_header(&self, h: &FrameHeader) -> Result<(), ProtocolError> {
        if self.server {
            if h.mask.is_none() {
                return Err(ProtocolError::UnmaskedFrame);
            }
        } else if h.mask.is_some() {
            return Err(ProtocolError::MaskedFrame);
        }
        if h.rsv2 || h.rsv3 {
            return Err(ProtocolError::ReservedBits);
        }
        if h.rsv1 && (self.inflate.is_none() || !matches!(h.opcode, OpCode::Text | OpCode::Binary))
        {
            return Err(ProtocolError::ReservedBits);
        }
        let compressed = match h.opcode {
            OpCode::Continuation => {
                if self.msg == Msg::None {
                    return Err(ProtocolError::UnexpectedContinuation);
                }
                self.msg_compressed
            }
            OpCode::Text | OpCode::Binary => {
                if self.msg != Msg::None {
                    return Err(ProtocolError::ExpectedContinuation);
                }
                h.rsv1
            }
            _ => return Ok(()),
        };
        if h.payload_len > self.max_frame_size as u64 {
            return Err(ProtocolError::MessageTooBig);
        }
        let buffered = self.partial.as_ref().map_or(0, |p| p.msg_buf.len());
        if !compressed
            && (buffered as u64).saturating_add(h.payload_len) > self.max_message_size as u64
        {
            return Err(ProtocolError::MessageTooBig);
        }
        Ok(())
    }

    /// Handles one complete, unmasked frame. `checked` payload bytes were
    /// already UTF-8-validated by [`speculate`](Self::speculate).
    fn handle_frame<F>(
        &mut self,
        h: &FrameHeader,
        payload: &[u8],
        checked: usize,
        w: &mut Writer,
        f: &mut F,
    ) -> Result<(), ProtocolError>
    where
        F: FnMut(Event<'_>, &mut Writer),
    {
        let limit = self.max_message_size as usize;
        match h.opcode {
            OpCode::Ping => {
                w.pong(payload);
                f(Event::Ping(payload), w);
            }
            OpCode::Pong => f(Event::Pong(payload), w),
            OpCode::Close => {
                let parsed = parse_close_payload(payload)?;
                self.closed = true;
                if !w.close_sent {
                    w.close(parsed.map_or(CloseCode::NORMAL, |(c, _)| c), "");
                }
                f(Event::Close(parsed), w);
            }
            OpCode::Text | OpCode::Binary => {
                let text = h.opcode == OpCode::Text;
                if h.rsv1 {
                    let inf = self.inflate.as_mut().expect("checked by check_header");
                    inf.buf.clear();
                    inf.d.decompress(payload, &mut inf.buf, limit)?;
                    if h.fin {
                        inf.d.finish(&mut inf.buf, limit)?;
                        deliver(text, &inf.buf, w, f)?;
                        inf.recycle();
                    } else {
                        if text {
                            let p = self.partial.get_or_insert_with(Box::default);
                            p.utf8
                                .feed(&inf.buf)
                                .map_err(|_| ProtocolError::InvalidUtf8)?;
                        }
                        self.start_message(text, true);
                    }
                } else if h.fin {
                    if text {
                        if checked > 0 {
                            self.feed_utf8(&payload[checked..])?;
                            self.finish_utf8()?;
                        }
                        let s = crate::utf8::validate(payload)
                            .map_err(|_| ProtocolError::InvalidUtf8)?;
                        f(Event::Text(s), w);
                    } else {
                        f(Event::Binary(payload), w);
                    }
                } else {
                    if text {
                        self.feed_utf8(&payload[checked..])?;
                    }
                    self.partial().msg_buf.extend_from_slice(payload);
                    self.start_message(text, false);
                }
            }
            OpCode::Continuation => {
                let text = self.msg == Msg::Text;
                if self.msg_compressed {
                    let inf = self
                        .inflate
                        .as_mut()
                        .expect("compressed message implies deflate");
                    let start = inf.buf.len();
                    inf.d.decompress(payload, &mut inf.buf, limit)?;
                    if h.fin {
                        inf.d.finish(&mut inf.buf, limit)?;
                    }
                    if text {
                        let p = self.partial.get_or_insert_with(Box::default);
                        p.utf8
                            .feed(&inf.buf[start..])
                            .map_err(|_| ProtocolError::InvalidUtf8)?;
                    }
                    if h.fin {
                        self.end_message(text)?;
                        let inf = self
                            .inflate
                            .as_mut()
                            .expect("compressed message implies deflate");
                        deliver(text, &inf.buf, w, f)?;
                        inf.recycle();
                    }
                } else {
                    if text {
                        self.feed_utf8(&payload[checked..])?;
                    }
                    self.partial().msg_buf.extend_from_slice(payload);
                    if h.fin {
                        self.end_message(text)?;
                        let buf = mem::take(&mut self.partial().msg_buf);
                        deliver(text, &buf, w, f)?;
                    }
                }
            }
        }
        Ok(())
    }

    #[inline]
    fn start_message(&mut self, text: bool, compressed: bool) {
        self.msg = if text { Msg::Text } else { Msg::Binary };
        self.msg_compressed = compressed;
    }

    #[inline]
    fn end_message(&mut self, text: bool) -> Result<(), ProtocolError> {
        self.msg = Msg::None;
        self.msg_compressed = false;
        if text {
            self.finish_utf8()?;
        }
        Ok(())
    }
}

impl Inflate {
    /// Empties the message buffer, keeping a small allocation for reuse.
    fn recycle(&mut self) {
        if self.buf.capacity() > INFLATE_KEEP {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
    }
}

/// Delivers a reassembled or decompressed message.
#[inline]
fn deliver<F>(text: bool, data: &[u8], w: &mut Writer, f: &mut F) -> Result<(), ProtocolError>
where
    F: FnMut(Event<'_>, &mut Writer),
{
    if text {
        let s = crate::utf8::validate(data).map_err(|_| ProtocolError::InvalidUtf8)?;
        f(Event::Text(s), w);
    } else {
        f(Event::Binary(data), w);
    }
    Ok(())
}

/// Compression state of the send half.
#[derive(Debug)]
struct Deflate {
    c: Compressor,
    min_size: usize,
    no_context_takeover: bool,
}

/// Send half: frames queued for output.
///
/// Small frames are encoded into one contiguous buffer; shared prepared
/// frames ([`send_prepared`](Self::send_prepared)) are kept as separate
/// chunks, preserving order, so that everything can be flushed with one
/// vectored write. After a close has been queued every send is a no-op.
///
/// Every connection keeps one for its whole life, so the output is boxed
/// ([`Output`]) while there is some and freed once it is taken or written:
/// an idle writer is 32 bytes.
#[derive(Debug)]
pub struct Writer {
    out: Option<Box<Output>>,
    server: bool,
    close_sent: bool,
    /// Masks (the client role only).
    rng: Option<Box<FastRng>>,
    deflate: Option<Box<Deflate>>,
}

/// Output not yet taken or written.
#[derive(Debug, Default)]
struct Output {
    buf: BytesMut,
    chunks: Vec<Bytes>,
    /// Bytes in `chunks` (saturating: only compared with small limits).
    chunks_len: u32,
}

impl Writer {
    fn new(role: Role, deflate: Option<&DeflateParams>) -> Self {
        let server = role == Role::Server;
        Writer {
            out: None,
            server,
            close_sent: false,
            rng: (!server).then(|| Box::new(FastRng::from_entropy())),
            deflate: deflate.map(|p| {
                let nct = if server {
                    p.server_no_context_takeover
                } else {
                    p.client_no_context_takeover
                };
                Box::new(Deflate {
                    c: p.compressor(server),
                    min_size: p.min_size,
                    no_context_takeover: nct,
                })
            }),
        }
    }

    /// Queues a text message.
    #[inline]
    pub fn send_text(&mut self, text: &str) {
        self.send(OpCode::Text, text.as_bytes());
    }

    /// Queues a binary message.
    #[inline]
    pub fn send_binary(&mut self, data: &[u8]) {
        self.send(OpCode::Binary, data);
    }

    /// Queues a single-frame message or control frame. Data messages are
    /// compressed when permessage-deflate is enabled and the payload is at
    /// least `min_size` bytes. Control payloads are truncated to 125 bytes;
    /// a Close payload is validated and routed through [`close`](Self::close).
    /// `Continuation` queues a final (FIN) continuation frame, see
    /// [`send_fragment`](Self::send_fragment). For `Text` the caller
    /// guarantees valid UTF-8.
    pub fn send(&mut self, opcode: OpCode, payload: &[u8]) {
        if self.close_sent {
            return;
        }
        match opcode {
            OpCode::Close => {
                let (code, reason) = match parse_close_payload(payload) {
                    Ok(Some((c, r))) => (c, r),
                    _ => (CloseCode::NO_STATUS, ""),
                };
                self.close(code, reason);
            }
            OpCode::Ping | OpCode::Pong => {
                let p = &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)];
                self.write_frame(opcode, p, false);
            }
            OpCode::Continuation => self.write_frame(opcode, payload, false),
            OpCode::Text | OpCode::Binary => {
                let compress = matches!(&self.deflate, Some(d) if payload.len() >= d.min_size);
                if compress {
                    self.write_compressed(opcode, payload);
                } else {
                    self.write_frame(opcode, payload, false);
                }
            }
        }
    }

    /// Queues one frame of a fragmented message, never compressed: the first
    /// fragment uses `Text`/`Binary`, the following ones `Continuation`, the
    /// last one has `fin` set. Control frames may be interleaved with
    /// [`ping`](Self::ping) etc. The caller is responsible for the fragment
    /// sequence being valid (and, for text, the whole message being UTF-8).
    /// Control opcodes are sent as with [`send`](Self::send).
    pub fn send_fragment(&mut self, opcode: OpCode, payload: &[u8], fin: bool) {
        if opcode.is_control() {
            self.send(opcode, payload);
        } else if !self.close_sent {
            self.write_frame_fin(opcode, payload, false, fin);
        }
    }

    /// Queues a ping (payload truncated to 125 bytes).
    #[inline]
    pub fn ping(&mut self, payload: &[u8]) {
        self.send(OpCode::Ping, payload);
    }

    /// Queues a pong (payload truncated to 125 bytes).
    #[inline]
    pub fn pong(&mut self, payload: &[u8]) {
        self.send(OpCode::Pong, payload);
    }

    /// Queues a close frame; only the first call has an effect, and nothing
    /// can be sent afterwards. Codes that may not appear on the wire (e.g.
    /// 1005) produce an empty close payload. The reason is truncated to 123
    /// bytes at a character boundary.
    pub fn close(&mut self, code: CloseCode, reason: &str) {
        if self.close_sent {
            return;
        }
        let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
        let n = if code.is_valid_on_wire() {
            let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            payload[..2].copy_from_slice(&code.0.to_be_bytes());
            payload[2..2 + end].copy_from_slice(&reason.as_bytes()[..end]);
            2 + end
        } else {
            0
        };
        self.write_frame(OpCode::Close, &payload[..n], false);
        self.close_sent = true;
    }

    /// Queues an already-encoded frame (e.g. from
    /// [`encode_frame`](crate::encode_frame)) as a separate chunk, without
    /// copying. Prepared frames are sent as-is: they are never compressed
    /// (an uncompressed message is always valid under permessage-deflate).
    ///
    /// Server role only: client frames must be masked, so in the client role
    /// the frame is ignored (and debug builds panic).
    pub fn send_prepared(&mut self, frame: Bytes) {
        debug_assert!(
            self.server,
            "prepared frames are unmasked: server role only"
        );
        if self.close_sent || !self.server || frame.is_empty() {
            return;
        }
        let o = self.output();
        o.seal();
        o.count(frame.len());
        o.chunks.push(frame);
    }

    /// Whether permessage-deflate is active for outgoing messages.
    #[inline]
    pub fn deflate_enabled(&self) -> bool {
        self.deflate.is_some()
    }

    /// Whether a close frame has been queued.
    #[inline]
    pub fn close_sent(&self) -> bool {
        self.close_sent
    }

    /// Whether there is output to flush.
    #[inline]
    pub fn has_output(&self) -> bool {
        self.out
            .as_ref()
            .is_some_and(|o| !o.chunks.is_empty() || !o.buf.is_empty())
    }

    /// Total bytes of pending output.
    #[inline]
    pub fn output_len(&self) -> usize {
        self.out
            .as_ref()
            .map_or(0, |o| o.chunks_len as usize + o.buf.len())
    }

    /// The output, allocated at its first frame.
    #[inline]
    fn output(&mut self) -> &mut Output {
        self.out.get_or_insert_with(Box::default)
    }

    /// Appends all pending output to `out` as chunks in send order (for a
    /// single vectored write) and leaves the writer empty, holding no heap
    /// memory.
    pub fn take_output(&mut self, out: &mut Vec<Bytes>) {
        let Some(mut o) = self.out.take() else {
            return;
        };
        if !o.chunks.is_empty() {
            if out.is_empty() {
                mem::swap(out, &mut o.chunks);
            } else {
                out.append(&mut o.chunks);
            }
        }
        if !o.buf.is_empty() {
            out.push(o.buf.freeze());
        }
    }

    /// The output in send order, for a caller that writes it itself: write
    /// these (e.g. with one vectored write), then [`consume`](Self::consume)
    /// what was written. Empty when there is none.
    pub fn output_chunks(&mut self) -> &[Bytes] {
        match self.out.as_mut() {
            Some(o) => {
                o.seal();
                &o.chunks
            }
            None => &[],
        }
    }

    /// Drops the first `n` bytes of the output (written by the caller; see
    /// [`output_chunks`](Self::output_chunks)); frees it once all is gone.
    pub fn consume(&mut self, n: usize) {
        let Some(o) = self.out.as_mut() else {
            return;
        };
        o.seal();
        let len = u32::try_from(n).unwrap_or(u32::MAX);
        o.chunks_len = o.chunks_len.saturating_sub(len);
        drop_written(&mut o.chunks, n);
        if o.chunks.is_empty() {
            self.out = None;
        }
    }

    #[inline]
    fn next_mask(&mut self) -> Option<[u8; 4]> {
        self.rng.as_mut().map(|r| r.next_mask())
    }

    /// Encodes one FIN frame (masked in the client role).
    #[inline]
    fn write_frame(&mut self, opcode: OpCode, payload: &[u8], rsv1: bool) {
        self.write_frame_fin(opcode, payload, rsv1, true);
    }

    #[inline]
    fn write_frame_fin(&mut self, opcode: OpCode, payload: &[u8], rsv1: bool, fin: bool) {
        let mask = self.next_mask();
        let h = FrameHeader {
            fin,
            rsv1,
            mask,
            ..FrameHeader::new(opcode, payload.len() as u64)
        };
        let mut tmp = [0u8; MAX_HEADER_LEN];
        let n = h.encode_to_array(&mut tmp);
        let buf = &mut self.output().buf;
        reserve(buf, n + payload.len());
        buf.extend_from_slice(&tmp[..n]);
        let start = buf.len();
        buf.extend_from_slice(payload);
        if let Some(k) = mask {
            apply_mask(&mut buf[start..], k);
        }
    }

    /// Compresses a data message directly into the output buffer, leaving
    /// room for the longest header and closing the gap afterwards.
    fn write_compressed(&mut self, opcode: OpCode, payload: &[u8]) {
        let max_hl = if self.server { 10 } else { 14 };
        let buf = &mut self.out.get_or_insert_with(Box::default).buf;
        let start = buf.len();
        reserve(buf, max_hl + payload.len() / 2 + 64);
        buf.resize(start + max_hl, 0);
        let d = self.deflate.as_mut().expect("deflate enabled");
        d.c.compress(payload, buf);
        let clen = buf.len() - start - max_hl;
        if d.no_context_takeover && clen >= payload.len() {
            // Incompressible and no shared context: send it plain instead.
            buf.truncate(start);
            self.write_frame(opcode, payload, false);
            return;
        }
        let mask = self.next_mask();
        let h = FrameHeader {
            rsv1: true,
            mask,
            ..FrameHeader::new(opcode, clen as u64)
        };
        let mut tmp = [0u8; MAX_HEADER_LEN];
        let n = h.encode_to_array(&mut tmp);
        let buf = &mut self.output().buf;
        if n < max_hl {
            buf.copy_within(start + max_hl.., start + n);
            buf.truncate(start + n + clen);
        }
        buf[start..start + n].copy_from_slice(&tmp[..n]);
        if let Some(k) = mask {
            apply_mask(&mut buf[start + n..], k);
        }
    }
}

/// Drops the first `n` bytes of `chunks` (written to a socket): whole
/// chunks go, a chunk written in part is advanced. Returns whether the
/// first chunk left was written in part.
pub fn drop_written(chunks: &mut Vec<Bytes>, mut n: usize) -> bool {
    let mut done = 0;
    let mut partial = false;
    while n > 0 && done < chunks.len() {
        let first = &mut chunks[done];
        if n >= first.len() {
            n -= first.len();
            done += 1;
        } else {
            bytes::Buf::advance(first, n);
            partial = true;
            n = 0;
        }
    }
    for chunk in chunks.drain(..done) {
        output_pool::recycle(chunk);
    }
    partial
}

impl Output {
    /// Moves the encoded frames in `buf` to the back of `chunks` (before a
    /// shared frame joins them, or before the chunks are written).
    #[inline]
    fn seal(&mut self) {
        if !self.buf.is_empty() {
            let head = self.buf.split().freeze();
            self.count(head.len());
            self.chunks.push(head);
        }
    }

    /// Counts `len` more bytes in `chunks`.
    #[inline]
    fn count(&mut self, len: usize) {
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        self.chunks_len = self.chunks_len.saturating_add(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::encode_frame;

    fn server() -> Connection {
        Connection::new(Role::Server, Config::default())
    }

    /// Builds a masked client frame.
    fn masked(b0: u8, payload: &[u8]) -> Vec<u8> {
        let key = [0x11, 0x22, 0x33, 0x44];
        let mut h = FrameHeader::new(OpCode::from_u8(b0 & 0xf).unwrap(), payload.len() as u64);
        h.fin = b0 & 0x80 != 0;
        h.rsv1 = b0 & 0x40 != 0;
        h.mask = Some(key);
        let mut out = BytesMut::new();
        h.encode(&mut out);
        let start = out.len();
        out.extend_from_slice(payload);
        apply_mask(&mut out[start..], key);
        out.to_vec()
    }

    #[derive(Debug, PartialEq)]
    enum Ev {
        Text(String),
        Binary(Vec<u8>),
        Ping(Vec<u8>),
        Pong(Vec<u8>),
        Close(Option<(u16, String)>),
    }

    fn own(e: Event<'_>) -> Ev {
        match e {
            Event::Text(s) => Ev::Text(s.into()),
            Event::Binary(b) => Ev::Binary(b.into()),
            Event::Ping(b) => Ev::Ping(b.into()),
            Event::Pong(b) => Ev::Pong(b.into()),
            Event::Close(c) => Ev::Close(c.map(|(c, r)| (c.0, r.into()))),
        }
    }

    fn feed(c: &mut Connection, data: &[u8]) -> (Vec<Ev>, Result<(), Error>) {
        let mut evs = Vec::new();
        let mut d = data.to_vec();
        let r = c.receive(&mut d, |e, _| evs.push(own(e)));
        (evs, r)
    }

    fn output(c: &mut Connection) -> Vec<u8> {
        let mut v = Vec::new();
        c.writer().take_output(&mut v);
        v.concat()
    }

    #[test]
    fn zero_copy_text_and_echo() {
        let mut c = server();
        let mut data = masked(0x81, b"hello");
        let base = data.as_ptr() as usize;
        let mut seen = false;
        c.receive(&mut data, |e, w| {
            if let Event::Text(s) = e {
                assert_eq!(s, "hello");
                // Borrowed from the input buffer.
                let p = s.as_ptr() as usize;
                assert!(p >= base && p < base + 16);
                w.send_text(s);
                seen = true;
            }
        })
        .unwrap();
        assert!(seen);
        assert_eq!(output(&mut c), b"\x81\x05hello");
        assert_eq!(c.buffer_capacity(), 0);
    }

    #[test]
    fn ping_pong_and_close() {
        let mut c = server();
        let (ev, r) = feed(&mut c, &masked(0x89, b"hi"));
        r.unwrap();
        assert_eq!(ev, vec![Ev::Ping(b"hi".to_vec())]);
        assert_eq!(output(&mut c), b"\x8a\x02hi");
        let (ev, r) = feed(&mut c, &masked(0x88, &[0x03, 0xe9, b'x']));
        r.unwrap();
        assert_eq!(ev, vec![Ev::Close(Some((1001, "x".into())))]);
        assert!(c.is_closed() && c.close_sent());
        assert_eq!(output(&mut c), b"\x88\x02\x03\xe9");
        // Further input ignored.
        let (ev, r) = feed(&mut c, &masked(0x81, b"late"));
        r.unwrap();
        assert!(ev.is_empty());
        assert!(!c.writer().has_output());
    }

    #[test]
    fn empty_close_echoes_1000() {
        let mut c = server();
        let (ev, _) = feed(&mut c, &masked(0x88, b""));
        assert_eq!(ev, vec![Ev::Close(None)]);
        assert_eq!(output(&mut c), b"\x88\x02\x03\xe8");
    }

    #[test]
    fn we_close_first() {
        let mut c = server();
        c.writer().close(CloseCode::GOING_AWAY, "bye");
        c.writer().close(CloseCode::NORMAL, "again");
        c.writer().send_text("ignored");
        assert_eq!(output(&mut c), b"\x88\x05\x03\xe9bye");
        assert!(!c.is_closed());
        // Data still delivered until the peer's close arrives.
        let (ev, _) = feed(&mut c, &masked(0x81, b"x"));
        assert_eq!(ev, vec![Ev::Text("x".into())]);
        let (ev, _) = feed(&mut c, &masked(0x88, &[0x03, 0xe9]));
        assert_eq!(ev.len(), 1);
        assert!(c.is_closed());
        assert!(!c.writer().has_output());
    }

    fn expect_err(data: &[u8], code: u16) {
        let mut c = server();
        let (_, r) = feed(&mut c, data);
        let e = r.unwrap_err();
        assert_eq!(e.close_code().0, code, "{e}");
        assert!(c.is_closed());
        let out = output(&mut c);
        assert_eq!(out[0], 0x88);
        assert_eq!(u16::from_be_bytes([out[2], out[3]]), code);
    }

    #[test]
    fn protocol_errors() {
        expect_err(b"\x81\x02hi", 1002); // unmasked
        expect_err(&[0x83, 0x80, 0, 0, 0, 0], 1002); // reserved opcode
        expect_err(&[0x09, 0x80, 0, 0, 0, 0], 1002); // fragmented ping
        let mut big_ping = vec![0x89, 0xfe, 0, 126, 0, 0, 0, 0];
        big_ping.extend_from_slice(&[0; 126]);
        expect_err(&big_ping, 1002);
    }

    #[test]
    fn protocol_errors_more() {
        let mut rsv = masked(0x81, b"hi");
        rsv[0] |= 0x40;
        expect_err(&rsv, 1002);
        let mut rsv = masked(0x81, b"hi");
        rsv[0] |= 0x20;
        expect_err(&rsv, 1002);
        expect_err(&masked(0x80, b"x"), 1002); // continuation without start
        let mut two = masked(0x01, b"a");
        two.extend(masked(0x81, b"b"));
        expect_err(&two, 1002);
        expect_err(&masked(0x88, &[3]), 1002);
        expect_err(&masked(0x88, &[0x03, 0xed]), 1002);
        expect_err(&masked(0x88, &[0x03, 0xe8, 0xff]), 1007);
        expect_err(&masked(0x81, &[0xff]), 1007);
        let mut frag = masked(0x01, &[0xce]);
        frag.extend(masked(0x80, &[0xff]));
        expect_err(&frag, 1007);
        // Fragment ends with a truncated sequence.
        let mut frag = masked(0x01, b"ok");
        frag.extend(masked(0x80, &[0xce]));
        expect_err(&frag, 1007);
    }

    #[test]
    fn client_role_rejects_masked() {
        let mut c = Connection::new(Role::Client, Config::default());
        let (_, r) = feed(&mut c, &masked(0x81, b"hi"));
        assert_eq!(r.unwrap_err(), Error::Protocol(ProtocolError::MaskedFrame));
        // The client's close frame is masked.
        let out = output(&mut c);
        assert_eq!(out[0], 0x88);
        assert_eq!(out[1] & 0x80, 0x80);
    }

    #[test]
    fn prepared_frames_keep_order() {
        let mut c = server();
        let shared = encode_frame(OpCode::Text, b"broadcast");
        c.writer().send_text("a");
        c.writer().send_prepared(shared.clone());
        c.writer().send_text("b");
        c.writer().send_prepared(shared.clone());
        assert_eq!(c.writer().output_len(), 3 + 11 + 3 + 11);
        let mut out = Vec::new();
        c.writer().take_output(&mut out);
        assert_eq!(out.len(), 4);
        assert_eq!(out[1].as_ptr(), shared.as_ptr());
        assert_eq!(
            out.concat(),
            b"\x81\x01a\x81\x09broadcast\x81\x01b\x81\x09broadcast"
        );
        assert!(!c.writer().has_output());
        assert_eq!(c.buffer_capacity(), 0);
    }

    #[test]
    fn written_large_output_is_reused_by_the_next_one() {
        let mut c = server();
        // Ten 4 KiB frames: output that outgrows the small sizes.
        let payload = [b'x'; 4096];
        for _ in 0..10 {
            c.writer().send_text(std::str::from_utf8(&payload).unwrap());
        }
        let mut out = Vec::new();
        c.writer().take_output(&mut out);
        assert_eq!(out.len(), 1);
        let len = out[0].len();
        assert_eq!(len, 10 * (4 + 4096));
        let kept = output_pool::kept();
        // Written in two parts, as a socket might.
        assert!(drop_written(&mut out, 1000));
        assert!(!drop_written(&mut out, len - 1000));
        assert!(out.is_empty());
        assert_eq!(c.buffer_capacity(), 0, "nothing held between flushes");
        assert_eq!(output_pool::kept(), kept + 1, "the written buffer is kept");

        c.writer().send_text(std::str::from_utf8(&payload).unwrap());
        c.writer().send_text(std::str::from_utf8(&payload).unwrap());
        assert_eq!(
            output_pool::kept(),
            kept,
            "and taken by the next large output"
        );
        c.writer().take_output(&mut out);
        assert_eq!(out.concat()[..4], *b"\x81\x7e\x10\x00");
        assert_eq!(out.concat().len(), 2 * (4 + 4096));
    }

    #[test]
    fn idle_holds_no_buffers() {
        let mut c = server();
        let msg = masked(0x82, &[7u8; 300]);
        // Partial frame: buffered.
        let (ev, r) = feed(&mut c, &msg[..100]);
        r.unwrap();
        assert!(ev.is_empty());
        assert!(c.buffered_len() > 0);
        let (ev, r) = feed(&mut c, &msg[100..]);
        r.unwrap();
        assert_eq!(ev, vec![Ev::Binary(vec![7u8; 300])]);
        assert_eq!(c.buffer_capacity(), 0);
        // Fragmented message: buffered only while in progress.
        let mut frag = masked(0x02, b"ab");
        frag.extend(masked(0x80, b"cd"));
        let (ev, _) = feed(&mut c, &frag);
        assert_eq!(ev, vec![Ev::Binary(b"abcd".to_vec())]);
        assert_eq!(c.buffer_capacity(), 0);
    }

    #[test]
    fn huge_lengths_do_not_allocate() {
        // 2^63: invalid length → 1002.
        let mut h = vec![0x82, 0xff];
        h.extend_from_slice(&(1u64 << 63).to_be_bytes());
        h.extend_from_slice(&[1, 2, 3, 4]);
        expect_err(&h, 1002);
        // 2^62: too big → 1009, before buffering.
        let mut h = vec![0x82, 0xff];
        h.extend_from_slice(&(1u64 << 62).to_be_bytes());
        h.extend_from_slice(&[1, 2, 3, 4, 0, 0]);
        expect_err(&h, 1009);
        let mut c = server();
        let (_, r) = feed(&mut c, &h[..5]);
        r.unwrap();
        let (_, r) = feed(&mut c, &h[5..]);
        assert_eq!(r.unwrap_err().close_code(), CloseCode::TOO_BIG);
        assert_eq!(c.buffered_len(), 0);
        output(&mut c);
        assert_eq!(c.buffer_capacity(), 0);
    }

    #[test]
    fn speculative_utf8_fails_before_frame_end() {
        let mut payload = b"valid text ".repeat(10);
        payload.extend_from_slice(&[0xF4, 0x90]);
        payload.extend_from_slice(&[b'a'; 1000]);
        let frame = masked(0x81, &payload);
        let mut c = server();
        // Deliver only up to just past the invalid bytes.
        let cut = frame.len() - 1000;
        let (_, r) = feed(&mut c, &frame[..cut - 30]);
        r.unwrap();
        let (_, r) = feed(&mut c, &frame[cut - 30..cut]);
        assert_eq!(r.unwrap_err().close_code(), CloseCode::INVALID_PAYLOAD);
    }

    #[test]
    fn control_frames_interleaved_with_fragments() {
        let mut c = server();
        let mut d = masked(0x01, "héllo ".as_bytes());
        d.extend(masked(0x89, b"p"));
        d.extend(masked(0x80, "wörld".as_bytes()));
        let (ev, r) = feed(&mut c, &d);
        r.unwrap();
        assert_eq!(
            ev,
            vec![Ev::Ping(b"p".to_vec()), Ev::Text("héllo wörld".into())]
        );
    }

    #[test]
    fn message_size_limits() {
        let cfg = Config {
            max_message_size: 10,
            max_frame_size: 8,
            deflate: None,
        };
        let mut c = Connection::new(Role::Server, cfg.clone());
        let (_, r) = feed(&mut c, &masked(0x82, &[0; 9]));
        assert_eq!(r.unwrap_err().close_code(), CloseCode::TOO_BIG);
        let mut c = Connection::new(Role::Server, cfg);
        let mut d = masked(0x02, &[0; 8]);
        d.extend(masked(0x80, &[0; 3]));
        let (_, r) = feed(&mut c, &d);
        assert_eq!(r.unwrap_err().close_code(), CloseCode::TOO_BIG);
    }

    #[test]
    fn limits_beyond_four_gib_count_as_the_largest_kept() {
        assert_eq!(clamp_limit(usize::MAX), MAX_LIMIT);
        assert_eq!(clamp_limit(u32::MAX as usize), MAX_LIMIT);
        assert_eq!(clamp_limit(16 << 20), 16 << 20);
        let cfg = Config {
            max_message_size: usize::MAX,
            max_frame_size: usize::MAX,
            deflate: None,
        };
        let mut c = Connection::new(Role::Server, cfg);
        // A text frame split in two reads: the partial payload is
        // validated as it arrives (the `u32` count of checked bytes).
        let frame = masked(0x81, "héllo wörld".as_bytes());
        let (ev, r) = feed(&mut c, &frame[..9]);
        r.unwrap();
        assert!(ev.is_empty());
        let (ev, r) = feed(&mut c, &frame[9..]);
        r.unwrap();
        assert_eq!(ev, vec![Ev::Text("héllo wörld".into())]);
    }

    #[test]
    fn an_idle_connection_is_small() {
        // Every idle connection holds this (inside its task) for its whole
        // life; docs/benchmarks.md, "Idle". An incomplete frame or message
        // and pending output are boxed while they exist.
        assert!(std::mem::size_of::<Connection>() <= 64);
    }

    #[test]
    fn partial_state_and_output_are_freed_when_done() {
        let mut c = server();
        // A text message in two frames, the second split across reads.
        let first = masked(0x01, "hé".as_bytes());
        let second = masked(0x80, "llo".as_bytes());
        let (ev, r) = feed(&mut c, &first);
        r.unwrap();
        assert!(ev.is_empty());
        assert!(c.reader.partial.is_some(), "a message under way");
        let (ev, r) = feed(&mut c, &second[..3]);
        r.unwrap();
        assert!(ev.is_empty());
        let (ev, r) = feed(&mut c, &second[3..]);
        r.unwrap();
        assert_eq!(ev, vec![Ev::Text("héllo".into())]);
        assert!(c.reader.partial.is_none(), "idle again");
        assert_eq!(c.buffer_capacity(), 0);

        // Output written by the caller, part by part.
        c.writer().send_text("abc");
        c.writer().send_prepared(Bytes::from_static(b"\x81\x01x"));
        c.writer().send_text("de");
        let w = c.writer();
        let all: Vec<u8> = w.output_chunks().concat();
        assert_eq!(all, b"\x81\x03abc\x81\x01x\x81\x02de");
        assert_eq!(w.output_len(), all.len());
        w.consume(4);
        assert_eq!(w.output_chunks().concat(), &all[4..]);
        assert_eq!(w.output_len(), all.len() - 4);
        w.consume(all.len() - 4);
        assert!(!w.has_output() && w.output_chunks().is_empty());
        assert_eq!(c.buffer_capacity(), 0, "nothing held once written");
    }

    #[test]
    fn client_writer_masks() {
        let mut c = Connection::new(Role::Client, Config::default());
        c.writer().send_text("hello");
        let out = output(&mut c);
        assert_eq!(out[0], 0x81);
        assert_eq!(out[1], 0x85);
        let mut s = server();
        let (ev, r) = feed(&mut s, &out);
        r.unwrap();
        assert_eq!(ev, vec![Ev::Text("hello".into())]);
    }

    #[test]
    fn client_sends_fragments() {
        let mut c = Connection::new(Role::Client, Config::default());
        c.writer()
            .send_fragment(OpCode::Text, "ab€".as_bytes()[..3].as_ref(), false);
        c.writer().ping(b"p");
        c.writer()
            .send_fragment(OpCode::Continuation, &"ab€".as_bytes()[3..], false);
        c.writer().send(OpCode::Continuation, b"!");
        let out = output(&mut c);
        let mut s = server();
        let (ev, r) = feed(&mut s, &out);
        r.unwrap();
        assert_eq!(ev, vec![Ev::Ping(b"p".to_vec()), Ev::Text("ab€!".into())]);
    }

    #[test]
    fn deflate_roundtrip_and_rsv_rules() {
        let params = DeflateParams::default();
        let cfg = Config {
            deflate: Some(params),
            ..Config::default()
        };
        let mut client = Connection::new(Role::Client, cfg.clone());
        let mut server = Connection::new(Role::Server, cfg);
        assert!(client.writer().deflate_enabled());
        for msg in ["Hello", "Hello", "", &"x".repeat(100_000)] {
            client.writer().send_text(msg);
            let out = output(&mut client);
            assert_eq!(out[0], 0xc1, "RSV1 + FIN + text");
            let (ev, r) = feed(&mut server, &out);
            r.unwrap();
            assert_eq!(ev, vec![Ev::Text(msg.into())]);
            server.writer().send_binary(msg.as_bytes());
            let out = output(&mut server);
            assert_eq!(out[0], 0xc2);
            let (ev, r) = feed(&mut client, &out);
            r.unwrap();
            assert_eq!(ev, vec![Ev::Binary(msg.as_bytes().to_vec())]);
        }
        // RSV1 on a control frame → 1002.
        let mut c = Connection::new(
            Role::Server,
            Config {
                deflate: Some(DeflateParams::default()),
                ..Config::default()
            },
        );
        let (_, r) = feed(&mut c, &masked(0xc9, b""));
        assert_eq!(r.unwrap_err().close_code(), CloseCode::PROTOCOL);
    }
}
