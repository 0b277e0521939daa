//! permessage-deflate (RFC 7692): extension negotiation (offer parsing,
//! response generation, client-side response checking) and the per-message
//! raw-DEFLATE compressor/decompressor with context-takeover handling.

use std::fmt::Write as _;

use bytes::BytesMut;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::error::ProtocolError;

/// The extension token.
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// The empty stored block appended by a sync flush; stripped on send and
/// re-appended on receive (RFC 7692 §7.2.1, §7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Local permessage-deflate settings (what this endpoint is willing to do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateConfig {
    /// Server resets its compression context after every message.
    pub server_no_context_takeover: bool,
    /// Client resets its compression context after every message.
    pub client_no_context_takeover: bool,
    /// Largest LZ77 window (log2) the server compresses with, 9..=15
    /// (8 is not supported by the zlib backend). Default 15.
    pub server_max_window_bits: u8,
    /// Largest LZ77 window (log2) the client compresses with, 8..=15.
    /// Default 15.
    pub client_max_window_bits: u8,
    /// zlib compression level 0..=9.
    pub compression_level: u32,
    /// Outgoing messages shorter than this are sent uncompressed. Default 0.
    pub min_size: usize,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            compression_level: 6,
            min_size: 0,
        }
    }
}

/// Negotiated permessage-deflate parameters, as agreed by both endpoints,
/// plus this endpoint's local compression settings.
///
/// `*_max_window_bits` are the negotiated limits (15 means "not limited"
/// and is omitted from the response header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compressor after each message (the client may
    /// reset its decompressor).
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after each message.
    pub client_no_context_takeover: bool,
    /// Window limit for server-to-client messages (9..=15).
    pub server_max_window_bits: u8,
    /// Window limit for client-to-server messages (8..=15).
    pub client_max_window_bits: u8,
    /// Local: zlib level of this endpoint's compressor.
    pub compression_level: u32,
    /// Local: messages shorter than this are sent uncompressed.
    pub min_size: usize,
    /// Local: upper bound on this endpoint's own compression window,
    /// applied on top of the negotiated limit.
    pub local_max_window_bits: u8,
}

impl Default for DeflateParams {
    fn default() -> Self {
        DeflateParams {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            compression_level: 6,
            min_size: 0,
            local_max_window_bits: 15,
        }
    }
}

impl DeflateParams {
    /// The `Sec-WebSocket-Extensions` value a server sends to accept.
    ///
    /// ```
    /// use switchboard_websocket::DeflateParams;
    /// let p = DeflateParams { client_no_context_takeover: true, ..Default::default() };
    /// assert_eq!(p.response_header(), "permessage-deflate; client_no_context_takeover");
    /// ```
    pub fn response_header(&self) -> String {
        let mut s = String::from(EXTENSION_NAME);
        if self.server_no_context_takeover {
            s.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            s.push_str("; client_no_context_takeover");
        }
        if self.server_max_window_bits < 15 {
            let _ = write!(
                s,
                "; server_max_window_bits={}",
                self.server_max_window_bits
            );
        }
        if self.client_max_window_bits < 15 {
            let _ = write!(
                s,
                "; client_max_window_bits={}",
                self.client_max_window_bits
            );
        }
        s
    }

    /// Builds the compressor for an endpoint in the given role.
    pub fn compressor(&self, server_role: bool) -> Compressor {
        let (bits, nct) = if server_role {
            (self.server_max_window_bits, self.server_no_context_takeover)
        } else {
            (self.client_max_window_bits, self.client_no_context_takeover)
        };
        Compressor::new(
            self.compression_level,
            bits.min(self.local_max_window_bits),
            nct,
        )
    }

    /// Builds the decompressor for an endpoint in the given role.
    pub fn decompressor(&self, server_role: bool) -> Decompressor {
        let (bits, nct) = if server_role {
            (self.client_max_window_bits, self.client_no_context_takeover)
        } else {
            (self.server_max_window_bits, self.server_no_context_takeover)
        };
        Decompressor::new(bits, nct)
    }
}

/// One parsed extension element: name and `(param, value)` pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionOffer {
    /// Extension token, e.g. `permessage-deflate`.
    pub name: String,
    /// Parameters in order; quoted values are unquoted.
    pub params: Vec<(String, Option<String>)>,
}

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// Splits `s` at `sep` outside double-quoted strings.
fn split_unquoted(s: &str, sep: u8) -> Vec<&str> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let (mut start, mut in_q, mut esc) = (0, false, false);
    for (i, &c) in b.iter().enumerate() {
        if in_q {
            if esc {
                esc = false;
            } else if c == b'\\' {
                esc = true;
            } else if c == b'"' {
                in_q = false;
            }
        } else if c == b'"' {
            in_q = true;
        } else if c == sep {
            out.push(&s[start..i]);
            start = i + 1;
        }
    }
    out.push(&s[start..]);
    out
}

/// Parses one extension element (`name *(";" param["=" value])`).
fn parse_element(elem: &str) -> Option<ExtensionOffer> {
    let mut parts = split_unquoted(elem, b';').into_iter();
    let name = parts.next()?.trim();
    if !is_token(name) {
        return None;
    }
    let mut params = Vec::new();
    for p in parts {
        let (k, v) = match p.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (p.trim(), None),
        };
        if !is_token(k) {
            return None;
        }
        let v = match v {
            None => None,
            Some(v) if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') => {
                let inner = &v[1..v.len() - 1];
                let mut out = String::with_capacity(inner.len());
                let mut esc = false;
                for c in inner.chars() {
                    if esc {
                        out.push(c);
                        esc = false;
                    } else if c == '\\' {
                        esc = true;
                    } else if c == '"' {
                        return None;
                    } else {
                        out.push(c);
                    }
                }
                if esc {
                    return None;
                }
                // RFC 7692 §7.1: unquoted value must still be a token.
                if !is_token(&out) {
                    return None;
                }
                Some(out)
            }
            Some(v) if is_token(v) => Some(v.to_owned()),
            Some(_) => return None,
        };
        params.push((k.to_ascii_lowercase(), v));
    }
    Some(ExtensionOffer {
        name: name.to_ascii_lowercase(),
        params,
    })
}

/// Parses `Sec-WebSocket-Extensions` header values (one per header line) into
/// extension elements in order. Syntactically invalid elements are skipped;
/// empty list elements are ignored.
pub fn parse_extensions<'a, I>(values: I) -> Vec<ExtensionOffer>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut out = Vec::new();
    for line in values {
        for elem in split_unquoted(line, b',') {
            if elem.trim().is_empty() {
                continue;
            }
            if let Some(e) = parse_element(elem) {
                out.push(e);
            }
        }
    }
    out
}

/// Parses a window-bits value: 1*DIGIT without leading zero, 8..=15.
fn parse_bits(v: &str) -> Option<u8> {
    if v.is_empty() || v.len() > 2 || v.starts_with('0') || !v.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let n: u8 = v.parse().ok()?;
    (8..=15).contains(&n).then_some(n)
}

/// Parameters of one syntactically valid permessage-deflate element.
#[derive(Default)]
struct RawParams {
    snct: bool,
    cnct: bool,
    smwb: Option<u8>,
    /// `Some(None)`: present without value.
    cmwb: Option<Option<u8>>,
}

fn raw_params(params: &[(String, Option<String>)]) -> Option<RawParams> {
    let mut r = RawParams::default();
    for (k, v) in params {
        match k.as_str() {
            "server_no_context_takeover" => {
                if r.snct || v.is_some() {
                    return None;
                }
                r.snct = true;
            }
            "client_no_context_takeover" => {
                if r.cnct || v.is_some() {
                    return None;
                }
                r.cnct = true;
            }
            "server_max_window_bits" => {
                if r.smwb.is_some() {
                    return None;
                }
                r.smwb = Some(parse_bits(v.as_deref()?)?);
            }
            "client_max_window_bits" => {
                if r.cmwb.is_some() {
                    return None;
                }
                r.cmwb = Some(match v {
                    None => None,
                    Some(v) => Some(parse_bits(v)?),
                });
            }
            _ => return None,
        }
    }
    Some(r)
}

impl DeflateConfig {
    /// Server side: picks the first acceptable permessage-deflate offer from
    /// the client's `Sec-WebSocket-Extensions` header values.
    ///
    /// Offers with unknown or duplicate parameters or invalid values are
    /// skipped, as are offers asking for `server_max_window_bits=8` (the
    /// zlib backend cannot compress with a 256-byte window).
    pub fn negotiate<'a, I>(&self, header_values: I) -> Option<DeflateParams>
    where
        I: IntoIterator<Item = &'a str>,
    {
        parse_extensions(header_values)
            .iter()
            .filter(|e| e.name == EXTENSION_NAME)
            .find_map(|e| self.accept_offer(&e.params))
    }

    fn accept_offer(&self, params: &[(String, Option<String>)]) -> Option<DeflateParams> {
        let r = raw_params(params)?;
        let local = self.server_max_window_bits.clamp(9, 15);
        let server_max_window_bits = match r.smwb {
            Some(b) if b < 9 => return None,
            Some(b) => b.min(local),
            None => 15,
        };
        let client_max_window_bits = match r.cmwb {
            None => 15,
            Some(v) => v
                .unwrap_or(15)
                .min(self.client_max_window_bits.clamp(8, 15)),
        };
        Some(DeflateParams {
            server_no_context_takeover: r.snct || self.server_no_context_takeover,
            client_no_context_takeover: r.cnct || self.client_no_context_takeover,
            server_max_window_bits,
            client_max_window_bits,
            compression_level: self.compression_level.min(9),
            min_size: self.min_size,
            local_max_window_bits: local,
        })
    }

    /// Client side: the `Sec-WebSocket-Extensions` offer to send.
    ///
    /// ```
    /// use switchboard_websocket::DeflateConfig;
    /// assert_eq!(
    ///     DeflateConfig::default().offer_header(),
    ///     "permessage-deflate; client_max_window_bits"
    /// );
    /// ```
    pub fn offer_header(&self) -> String {
        let mut s = String::from(EXTENSION_NAME);
        if self.server_no_context_takeover {
            s.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            s.push_str("; client_no_context_takeover");
        }
        if self.server_max_window_bits < 15 {
            let _ = write!(
                s,
                "; server_max_window_bits={}",
                self.server_max_window_bits.clamp(9, 15)
            );
        }
        s.push_str("; client_max_window_bits");
        if self.client_max_window_bits < 15 {
            let _ = write!(s, "={}", self.client_max_window_bits.clamp(9, 15));
        }
        s
    }

    /// Client side: validates the server's accepted extension element
    /// (as produced by [`offer_header`](Self::offer_header)'s counterpart)
    /// and returns the parameters to use.
    pub fn accept_response(&self, element: &ExtensionOffer) -> Result<DeflateParams, &'static str> {
        if element.name != EXTENSION_NAME {
            return Err("server accepted an extension that was not offered");
        }
        let r = raw_params(&element.params).ok_or("invalid permessage-deflate parameters")?;
        let offered_client = self.client_max_window_bits.clamp(9, 15);
        let client_max_window_bits = match r.cmwb {
            None => 15,
            Some(None) => return Err("client_max_window_bits without value in response"),
            Some(Some(b)) if b < 9 => return Err("unsupported client_max_window_bits=8"),
            Some(Some(b)) if b > offered_client => {
                return Err("client_max_window_bits larger than offered")
            }
            Some(Some(b)) => b,
        };
        // What offer_header sent: a limit below 9 is offered as 9.
        let offered_server = self.server_max_window_bits.clamp(9, 15);
        let server_max_window_bits = match r.smwb {
            None => 15,
            Some(b) if offered_server < 15 && b > offered_server => {
                return Err("server_max_window_bits larger than offered")
            }
            Some(b) => b.max(9),
        };
        Ok(DeflateParams {
            server_no_context_takeover: r.snct,
            client_no_context_takeover: r.cnct || self.client_no_context_takeover,
            server_max_window_bits,
            client_max_window_bits,
            compression_level: self.compression_level.min(9),
            min_size: self.min_size,
            local_max_window_bits: offered_client,
        })
    }
}

/// Per-message compressor (raw DEFLATE, sync flush, tail stripped).
///
/// The zlib state (about 256 KiB at 15 window bits) is allocated on the
/// first message, not with the connection: an idle connection that
/// negotiated permessage-deflate costs nothing extra.
pub struct Compressor {
    inner: Option<Compress>,
    level: u32,
    window_bits: u8,
    no_context_takeover: bool,
}

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressor")
            .field("no_context_takeover", &self.no_context_takeover)
            .finish_non_exhaustive()
    }
}

impl Compressor {
    /// A compressor with the given zlib level (0..=9) and window bits
    /// (clamped to 9..=15). With `no_context_takeover` the LZ77 context is
    /// reset after every message.
    pub fn new(level: u32, window_bits: u8, no_context_takeover: bool) -> Self {
        Compressor {
            inner: None,
            level: level.min(9),
            window_bits: window_bits.clamp(9, 15),
            no_context_takeover,
        }
    }

    /// Whether the zlib state is allocated (it is after the first message).
    pub fn is_allocated(&self) -> bool {
        self.inner.is_some()
    }

    /// Compresses one whole message, appending the compressed bytes (without
    /// the `00 00 ff ff` tail) to `out`.
    pub fn compress(&mut self, input: &[u8], out: &mut BytesMut) {
        let (level, bits) = (self.level, self.window_bits);
        let inner = self.inner.get_or_insert_with(|| {
            Compress::new_with_window_bits(Compression::new(level), false, bits)
        });
        let start_len = out.len();
        let start_in = inner.total_in();
        loop {
            let consumed = (inner.total_in() - start_in) as usize;
            let remaining = input.len() - consumed;
            let room = (remaining + remaining / 8 + 64).max(64);
            out.reserve(room);
            let spare = out.spare_capacity_mut();
            let room = spare.len();
            let before_out = inner.total_out();
            let status = inner
                .compress_uninit(&input[consumed..], spare, FlushCompress::Sync)
                .expect("deflate with valid parameters cannot fail");
            let produced = (inner.total_out() - before_out) as usize;
            debug_assert!(produced <= room);
            // SAFETY: the compressor initialized exactly `produced` bytes of
            // the spare capacity, starting at its beginning.
            unsafe { out.set_len(out.len() + produced) };
            let consumed = (inner.total_in() - start_in) as usize;
            if consumed == input.len() && produced < room {
                break;
            }
            if status == Status::BufError && produced == 0 && consumed == input.len() {
                break;
            }
        }
        if out.len() - start_len >= TAIL.len() && out.ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        if out.len() == start_len {
            // zlib emits nothing for an empty input right after a sync flush;
            // RFC 7692 §7.2.3.6: an empty message is the single byte 0x00.
            out.extend_from_slice(&[0x00]);
        }
        if self.no_context_takeover {
            inner.reset();
        }
    }
}

/// Per-message decompressor with an output size limit.
pub struct Decompressor {
    /// Allocated on the first compressed message (see [`Compressor`]).
    inner: Option<Decompress>,
    window_bits: u8,
    no_context_takeover: bool,
}

impl std::fmt::Debug for Decompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decompressor")
            .field("window_bits", &self.window_bits)
            .field("no_context_takeover", &self.no_context_takeover)
            .finish_non_exhaustive()
    }
}

impl Decompressor {
    /// A decompressor for a peer compressing with at most `window_bits`
    /// (clamped to 9..=15; a larger window always decodes a smaller one).
    /// With `no_context_takeover` the state is reset after every message.
    pub fn new(window_bits: u8, no_context_takeover: bool) -> Self {
        let window_bits = window_bits.clamp(9, 15);
        Decompressor {
            inner: None,
            window_bits,
            no_context_takeover,
        }
    }

    /// Inflates the next chunk of a message's compressed payload, appending
    /// to `out`. Fails with [`ProtocolError::MessageTooBig`] as soon as
    /// `out` would exceed `limit` bytes (never allocating much past it), or
    /// [`ProtocolError::InvalidCompressedData`] on corrupt input.
    pub fn decompress(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), ProtocolError> {
        let bits = self.window_bits;
        let inner = self
            .inner
            .get_or_insert_with(|| Decompress::new_with_window_bits(false, bits));
        let mut consumed = 0usize;
        loop {
            if out.len() > limit {
                return Err(ProtocolError::MessageTooBig);
            }
            let remaining = input.len() - consumed;
            let room = (remaining * 4)
                .max(out.len())
                .clamp(256, 1 << 20)
                .min(limit + 1 - out.len());
            if out.capacity() - out.len() < room {
                out.reserve_exact(room);
            }
            let before_in = inner.total_in();
            let before_out = inner.total_out();
            let spare_before = out.capacity() - out.len();
            let status = inner
                .decompress_vec(&input[consumed..], out, FlushDecompress::Sync)
                .map_err(|_| ProtocolError::InvalidCompressedData)?;
            consumed += (inner.total_in() - before_in) as usize;
            let produced = (inner.total_out() - before_out) as usize;
            if out.len() > limit {
                return Err(ProtocolError::MessageTooBig);
            }
            match status {
                Status::StreamEnd => {
                    // A BFINAL block ended the stream; anything after it is
                    // ignored and the next message starts a fresh stream.
                    inner.reset(false);
                    return Ok(());
                }
                Status::Ok | Status::BufError => {
                    if consumed == input.len() && produced < spare_before {
                        return Ok(());
                    }
                    if produced == 0 && inner.total_in() == before_in {
                        if consumed == input.len() {
                            return Ok(());
                        }
                        return Err(ProtocolError::InvalidCompressedData);
                    }
                }
            }
        }
    }

    /// Ends a message: feeds the `00 00 ff ff` tail and resets the context
    /// if no context takeover applies.
    pub fn finish(&mut self, out: &mut Vec<u8>, limit: usize) -> Result<(), ProtocolError> {
        let r = self.decompress(&TAIL, out, limit);
        if self.no_context_takeover || r.is_err() {
            self.reset();
        }
        r
    }

    /// Resets the LZ77 context.
    pub fn reset(&mut self) {
        // flate2 keeps the configured window size (re-creating the state
        // only for non-default windows).
        if let Some(inner) = &mut self.inner {
            inner.reset(false);
        }
    }

    /// Whether the zlib state is allocated (it is after the first message).
    pub fn is_allocated(&self) -> bool {
        self.inner.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn neg(cfg: &DeflateConfig, hdrs: &[&str]) -> Option<DeflateParams> {
        cfg.negotiate(hdrs.iter().copied())
    }

    #[test]
    fn zlib_state_is_allocated_on_first_use() {
        let mut c = Compressor::new(1, 15, false);
        let mut d = Decompressor::new(15, false);
        assert!(!c.is_allocated() && !d.is_allocated());
        let mut out = BytesMut::new();
        c.compress(b"hello hello hello", &mut out);
        let mut plain = Vec::new();
        d.decompress(&out, &mut plain, 1 << 20).unwrap();
        d.finish(&mut plain, 1 << 20).unwrap();
        assert_eq!(plain, b"hello hello hello");
        assert!(c.is_allocated() && d.is_allocated());
    }

    #[test]
    fn rfc7692_hello_example() {
        let mut c = Compressor::new(6, 15, false);
        let mut out = BytesMut::new();
        c.compress(b"Hello", &mut out);
        assert_eq!(&out[..], &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        // Context takeover: the second "Hello" refers back to the first.
        let mut out2 = BytesMut::new();
        c.compress(b"Hello", &mut out2);
        assert!(out2.len() < out.len(), "{out2:x?}");
        // An empty message after a flush is the single byte 0x00.
        let mut empty = BytesMut::new();
        c.compress(b"", &mut empty);
        assert_eq!(&empty[..], &[0x00]);

        let mut d = Decompressor::new(15, false);
        let mut msg = Vec::new();
        d.decompress(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], &mut msg, 100)
            .unwrap();
        d.finish(&mut msg, 100).unwrap();
        assert_eq!(msg, b"Hello");
        // RFC 7692 §7.2.3.2: the second message shares the sliding window.
        let mut msg = Vec::new();
        d.decompress(&[0xf2, 0x00, 0x11, 0x00, 0x00], &mut msg, 100)
            .unwrap();
        d.finish(&mut msg, 100).unwrap();
        assert_eq!(msg, b"Hello");
        let mut msg = Vec::new();
        d.decompress(&out2, &mut msg, 100).unwrap();
        d.finish(&mut msg, 100).unwrap();
        assert_eq!(msg, b"Hello");
        let mut msg = Vec::new();
        d.decompress(&empty, &mut msg, 100).unwrap();
        d.finish(&mut msg, 100).unwrap();
        assert_eq!(msg, b"");
        // RFC 7692 §7.2.3.3: stored (uncompressed) block.
        let mut d = Decompressor::new(15, false);
        let mut msg = Vec::new();
        d.decompress(
            &[
                0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
            ],
            &mut msg,
            100,
        )
        .unwrap();
        d.finish(&mut msg, 100).unwrap();
        assert_eq!(msg, b"Hello");
        // RFC 7692 §7.2.3.4: BFINAL set.
        let mut d = Decompressor::new(15, false);
        let mut msg = Vec::new();
        d.decompress(&[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], &mut msg, 100)
            .unwrap();
        d.finish(&mut msg, 100).unwrap();
        assert_eq!(msg, b"Hello");
    }

    #[test]
    fn no_context_takeover() {
        let mut c = Compressor::new(6, 15, true);
        let mut a = BytesMut::new();
        let mut b = BytesMut::new();
        c.compress(b"Hello", &mut a);
        c.compress(b"Hello", &mut b);
        assert_eq!(a, b);
        let mut d = Decompressor::new(15, true);
        for frame in [&a, &b] {
            let mut msg = Vec::new();
            d.decompress(frame, &mut msg, 100).unwrap();
            d.finish(&mut msg, 100).unwrap();
            assert_eq!(msg, b"Hello");
        }
    }

    #[test]
    fn roundtrip_sizes_and_windows() {
        for bits in [9u8, 12, 15] {
            for nct in [false, true] {
                let mut c = Compressor::new(6, bits, nct);
                let mut d = Decompressor::new(bits, nct);
                for len in [0usize, 1, 100, 5000, 70000] {
                    let input: Vec<u8> = (0..len)
                        .map(|i| ((i * 31) % 251) as u8 ^ (i / 1000) as u8)
                        .collect();
                    let mut out = BytesMut::new();
                    c.compress(&input, &mut out);
                    let mut msg = Vec::new();
                    // Feed in two pieces to exercise fragment handling.
                    let mid = out.len() / 2;
                    d.decompress(&out[..mid], &mut msg, 1 << 20).unwrap();
                    d.decompress(&out[mid..], &mut msg, 1 << 20).unwrap();
                    d.finish(&mut msg, 1 << 20).unwrap();
                    assert_eq!(msg, input, "bits {bits} nct {nct} len {len}");
                }
            }
        }
    }

    #[test]
    fn decompression_limit() {
        let mut c = Compressor::new(9, 15, false);
        let zeros = vec![0u8; 1 << 20];
        let mut out = BytesMut::new();
        c.compress(&zeros, &mut out);
        assert!(out.len() < 5_000);
        let mut d = Decompressor::new(15, false);
        let mut msg = Vec::new();
        let r = d
            .decompress(&out, &mut msg, 100_000)
            .and_then(|_| d.finish(&mut msg, 100_000));
        assert_eq!(r, Err(ProtocolError::MessageTooBig));
        assert!(msg.capacity() <= 100_000 + 1 + 4096, "{}", msg.capacity());
        // Exactly at the limit is fine.
        let mut d = Decompressor::new(15, false);
        let mut msg = Vec::new();
        d.decompress(&out, &mut msg, 1 << 20).unwrap();
        d.finish(&mut msg, 1 << 20).unwrap();
        assert_eq!(msg.len(), 1 << 20);
    }

    #[test]
    fn corrupt_input() {
        let mut d = Decompressor::new(15, false);
        let mut msg = Vec::new();
        let r = d.decompress(&[0xff, 0xff, 0xff, 0xff, 0xff], &mut msg, 100);
        assert_eq!(r, Err(ProtocolError::InvalidCompressedData));
    }

    #[test]
    fn negotiation_basic() {
        let cfg = DeflateConfig::default();
        let p = neg(&cfg, &["permessage-deflate"]).unwrap();
        assert_eq!(p.response_header(), "permessage-deflate");
        let p = neg(&cfg, &["permessage-deflate; client_max_window_bits"]).unwrap();
        assert_eq!(p.response_header(), "permessage-deflate");
        let p = neg(&cfg, &["permessage-deflate; client_max_window_bits=10"]).unwrap();
        assert_eq!(p.client_max_window_bits, 10);
        assert_eq!(
            p.response_header(),
            "permessage-deflate; client_max_window_bits=10"
        );
        let p = neg(
            &cfg,
            &["permessage-deflate;server_no_context_takeover;client_no_context_takeover"],
        )
        .unwrap();
        assert_eq!(
            p.response_header(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
        let p = neg(&cfg, &["permessage-deflate; server_max_window_bits=10"]).unwrap();
        assert_eq!(p.server_max_window_bits, 10);
        assert_eq!(
            p.response_header(),
            "permessage-deflate; server_max_window_bits=10"
        );
        assert_eq!(neg(&cfg, &["x-webkit-deflate-frame"]), None);
        assert_eq!(neg(&cfg, &[]), None);
    }

    #[test]
    fn negotiation_quoted_and_multiple() {
        let cfg = DeflateConfig::default();
        let p = neg(&cfg, &["permessage-deflate; client_max_window_bits=\"12\""]).unwrap();
        assert_eq!(p.client_max_window_bits, 12);
        // First acceptable offer wins; invalid offers are skipped.
        let p = neg(
            &cfg,
            &[
                "permessage-deflate; server_max_window_bits=8, permessage-deflate; foo=1",
                "permessage-deflate; server_max_window_bits=\"11\"; client_max_window_bits, permessage-deflate",
            ],
        )
        .unwrap();
        assert_eq!(p.server_max_window_bits, 11);
        // Quoted comma does not split elements.
        let v = parse_extensions(["foo; bar=\"a,b\", permessage-deflate"]);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].name, "permessage-deflate");
        let v = parse_extensions(["foo; bar=\"a\\\"b\", permessage-deflate"]);
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn negotiation_rejects() {
        let cfg = DeflateConfig::default();
        for bad in [
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_max_window_bits=10; client_max_window_bits=10",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; server_max_window_bits=8",
            "permessage-deflate; client_max_window_bits=abc",
            "permessage-deflate; client_max_window_bits=\"\"",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; unknown_param",
            "permessage-deflate; a b",
        ] {
            assert_eq!(neg(&cfg, &[bad]), None, "{bad}");
        }
        // client_max_window_bits=8 is fine (we decompress with a larger window).
        let p = neg(&cfg, &["permessage-deflate; client_max_window_bits=8"]).unwrap();
        assert_eq!(p.client_max_window_bits, 8);
    }

    #[test]
    fn negotiation_server_config_applies() {
        let cfg = DeflateConfig {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 10,
            client_max_window_bits: 11,
            ..Default::default()
        };
        // Client did not offer window params: we must not announce them but
        // still compress with a small window locally.
        let p = neg(&cfg, &["permessage-deflate"]).unwrap();
        assert_eq!(
            p.response_header(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
        assert_eq!(p.local_max_window_bits, 10);
        let p = neg(
            &cfg,
            &["permessage-deflate; client_max_window_bits; server_max_window_bits=12"],
        )
        .unwrap();
        assert_eq!(
            p.response_header(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=11"
        );
    }

    #[test]
    fn client_offer_and_response() {
        let cfg = DeflateConfig {
            client_no_context_takeover: true,
            client_max_window_bits: 12,
            ..Default::default()
        };
        assert_eq!(
            cfg.offer_header(),
            "permessage-deflate; client_no_context_takeover; client_max_window_bits=12"
        );
        // Server side negotiation of our own offer, then client acceptance.
        let server = DeflateConfig::default()
            .negotiate([cfg.offer_header().as_str()])
            .unwrap();
        let resp = parse_extensions([server.response_header().as_str()]);
        let p = cfg.accept_response(&resp[0]).unwrap();
        assert!(p.client_no_context_takeover);
        assert_eq!(p.client_max_window_bits, 12);
        assert_eq!(server.client_max_window_bits, 12);

        let bad = parse_extensions(["permessage-deflate; client_max_window_bits=14"]);
        assert!(cfg.accept_response(&bad[0]).is_err());
        let bad = parse_extensions(["permessage-deflate; client_max_window_bits=8"]);
        assert!(DeflateConfig::default().accept_response(&bad[0]).is_err());
        let bad = parse_extensions(["permessage-deflate; bogus"]);
        assert!(cfg.accept_response(&bad[0]).is_err());
    }

    /// Found by fuzzing (websocket_handshake): a client configured with
    /// `server_max_window_bits: 8` offers 9 (zlib has no 8-bit window) and
    /// must accept the server agreeing to 9.
    #[test]
    fn client_accepts_the_server_window_it_offered() {
        let cfg = DeflateConfig {
            server_max_window_bits: 8,
            ..Default::default()
        };
        assert_eq!(
            cfg.offer_header(),
            "permessage-deflate; server_max_window_bits=9; client_max_window_bits"
        );
        let server = DeflateConfig::default()
            .negotiate([cfg.offer_header().as_str()])
            .unwrap();
        assert_eq!(server.server_max_window_bits, 9);
        let resp = parse_extensions([server.response_header().as_str()]);
        let p = cfg.accept_response(&resp[0]).unwrap();
        assert_eq!(p.server_max_window_bits, 9);
        let bad = parse_extensions(["permessage-deflate; server_max_window_bits=10"]);
        assert!(cfg.accept_response(&bad[0]).is_err());
    }
}
