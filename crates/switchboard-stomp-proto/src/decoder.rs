//! Incremental frame decoder: bytes in, [`Item`]s (frames and heart-beat
//! EOLs) out, with every size [`Limits`] enforced before anything beyond it
//! is buffered. Protocol rules above framing live in [`crate::session`].
//!
//! Wire format (STOMP 1.2 "Augmented BNF"):
//!
//! ```text
//! frame   = command EOL *( header EOL ) EOL *OCTET NUL
//! EOL     = [CR] LF
//! between frames: any number of EOLs (heart-beats)
//! ```
//!
//! CRLF is accepted in every version (1.0 and 1.1 peers send LF, so this is
//! only lenient, never ambiguous). Header names and values are not trimmed.
//! A header value may contain raw `:` (only the first one splits).

use bytes::{Bytes, BytesMut};

use crate::error::DecodeError;
use crate::escape::{unescape, Escaping};
use crate::frame::{Command, Frame, Headers};
use crate::version::Version;

/// Bodies announced by `content-length` get at most this much capacity up
/// front; the rest grows as octets actually arrive.
const BODY_PREALLOC: usize = 64 * 1024;

/// Size limits applied while decoding.
///
/// The defaults follow common broker settings: RabbitMQ caps a header line
/// at a few KiB and ActiveMQ caps headers at 1000 (we choose 100, plenty for
/// any real client); bodies default to 4 MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Whole frame (command, headers, body, NUL), in octets. Default
    /// 4 MiB + 64 KiB.
    pub max_frame_size: usize,
    /// Header lines per frame. Default 100.
    pub max_headers: usize,
    /// Octets in the command line or one header line, EOL excluded.
    /// Default 8 KiB.
    pub max_header_length: usize,
    /// Body octets. Default 4 MiB.
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_size: 4 * 1024 * 1024 + 64 * 1024,
            max_headers: 100,
            max_header_length: 8 * 1024,
            max_body: 4 * 1024 * 1024,
        }
    }
}

/// What the decoder produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A complete frame.
    Frame(Frame),
    /// An EOL between frames: a heart-beat (or trailing EOL after a NUL).
    HeartBeat,
}

#[derive(Debug)]
enum State {
    /// Between frames.
    Idle,
    /// Between frames, after a CR.
    IdleCr,
    /// Reading the command line (no command yet) or a header line.
    Line,
    /// Reading the body: `Some(n)` octets left of a `content-length`
    /// body, or `None` for a body that ends at the first NUL.
    Body(Option<usize>),
    /// A `content-length` body was read; the NUL must follow.
    Nul,
    /// An error occurred; the decoder is unusable.
    Failed(DecodeError),
}

/// Incremental STOMP frame decoder.
///
/// Feed any chunking of the byte stream to [`decode`](Self::decode); it
/// consumes input up to the end of one item and leaves the rest, so the
/// caller can change the [`Version`] between frames (after CONNECT).
///
/// ```
/// use switchboard_stomp_proto::{Command, Decoder, Item, Limits, Version};
///
/// let mut decoder = Decoder::new(Version::V1_2, Limits::default());
/// let mut input: &[u8] = b"SEND\ndestination:/queue/a\n\nhi\0\n";
/// let Some(Item::Frame(frame)) = decoder.decode(&mut input).unwrap() else { panic!() };
/// assert_eq!(frame.command, Command::Send);
/// assert_eq!(&frame.body[..], b"hi");
/// assert_eq!(decoder.decode(&mut input).unwrap(), Some(Item::HeartBeat));
/// assert!(input.is_empty());
/// ```
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    version: Version,
    state: State,
    line: Vec<u8>,
    command: Option<Command>,
    headers: Headers,
    body: BytesMut,
    frame_len: usize,
}

impl Decoder {
    /// A decoder for `version` (header escaping depends on it).
    pub fn new(version: Version, limits: Limits) -> Self {
        Decoder {
            limits,
            version,
            state: State::Idle,
            line: Vec::new(),
            command: None,
            headers: Headers::new(),
            body: BytesMut::new(),
            frame_len: 0,
        }
    }

    /// The version used to unescape headers.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Changes the version; affects headers decoded from now on.
    pub fn set_version(&mut self, version: Version) {
        self.version = version;
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether the decoder is between frames (no partial frame buffered).
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle)
    }

    /// Between frames, gives back the line buffer and the body buffer's
    /// spare room (which shares a block with the last body handed out):
    /// for a connection gone quiet, not per frame.
    pub fn release_idle_buffers(&mut self) {
        if self.is_idle() {
            self.line = Vec::new();
            self.body = BytesMut::new();
        }
    }

    /// Consumes bytes from the front of `input` until one item is complete
    /// and returns it, or consumes all of `input` and returns `None`.
    ///
    /// After an error the decoder returns the same error forever.
    pub fn decode(&mut self, input: &mut &[u8]) -> Result<Option<Item>, DecodeError> {
        if let State::Failed(e) = &self.state {
            return Err(e.clone());
        }
        match self.step(input) {
            Ok(item) => Ok(item),
            Err(e) => {
                self.state = State::Failed(e.clone());
                self.line = Vec::new();
                self.body = BytesMut::new();
                self.headers = Headers::new();
                Err(e)
            }
        }
    }

    fn step(&mut self, input: &mut &[u8]) -> Result<Option<Item>, DecodeError> {
        loop {
            let Some(&first) = input.first() else {
                return Ok(None);
            };
            match self.state {
                State::Idle => match first {
                    b'\n' => {
                        *input = &input[1..];
                        return Ok(Some(Item::HeartBeat));
                    }
                    b'\r' => {
                        *input = &input[1..];
                        self.state = State::IdleCr;
                    }
                    _ => {
                        self.frame_len = 0;
                        self.command = None;
                        self.state = State::Line;
                    }
                },
                State::IdleCr => {
                    if first != b'\n' {
                        return Err(DecodeError::InvalidEol);
                    }
                    *input = &input[1..];
                    self.state = State::Idle;
                    return Ok(Some(Item::HeartBeat));
                }
                State::Line => match input.iter().position(|&b| b == b'\n' || b == 0) {
                    Some(i) if input[i] == 0 => {
                        // The limits first, as when the NUL arrives in a
                        // later chunk: the error must not depend on chunking.
                        self.take_line(i, i)?;
                        return Err(DecodeError::UnexpectedNul);
                    }
                    Some(i) => {
                        self.take_line(i, i + 1)?;
                        self.line.extend_from_slice(&input[..i]);
                        *input = &input[i + 1..];
                        let mut line = std::mem::take(&mut self.line);
                        if line.last() == Some(&b'\r') {
                            line.pop();
                        }
                        if line.len() > self.limits.max_header_length {
                            return Err(DecodeError::HeaderLineTooLong {
                                limit: self.limits.max_header_length,
                            });
                        }
                        self.end_of_line(&line)?;
                        line.clear();
                        self.line = line;
                    }
                    None => {
                        self.take_line(input.len(), input.len())?;
                        self.line.extend_from_slice(input);
                        *input = &[];
                        return Ok(None);
                    }
                },
                State::Body(Some(remaining)) => {
                    let n = remaining.min(input.len());
                    self.body.extend_from_slice(&input[..n]);
                    *input = &input[n..];
                    self.state = if n == remaining {
                        State::Nul
                    } else {
                        State::Body(Some(remaining - n))
                    };
                }
                State::Nul => {
                    if first != 0 {
                        return Err(DecodeError::MissingNul);
                    }
                    *input = &input[1..];
                    return self.finish().map(Some);
                }
                State::Body(None) => match input.iter().position(|&b| b == 0) {
                    Some(i) => {
                        self.take_body(i, i + 1)?;
                        self.body.extend_from_slice(&input[..i]);
                        *input = &input[i + 1..];
                        return self.finish().map(Some);
                    }
                    None => {
                        self.take_body(input.len(), input.len())?;
                        self.body.extend_from_slice(input);
                        *input = &[];
                        return Ok(None);
                    }
                },
                State::Failed(ref e) => return Err(e.clone()),
            }
        }
    }

    /// Takes `n` more octets of the current line, and `counted` more of
    /// the frame (the line's and its terminator's). One extra octet of
    /// slack for the CR of a CRLF.
    fn take_line(&mut self, n: usize, counted: usize) -> Result<(), DecodeError> {
        let room =
            (self.limits.max_header_length.saturating_add(1)).saturating_sub(self.line.len());
        let over = DecodeError::HeaderLineTooLong {
            limit: self.limits.max_header_length,
        };
        self.take(n, room, over, counted)
    }

    /// Takes `n` more octets of a body read up to its NUL, and `counted`
    /// more of the frame.
    fn take_body(&mut self, n: usize, counted: usize) -> Result<(), DecodeError> {
        let room = self.limits.max_body.saturating_sub(self.body.len());
        let over = DecodeError::BodyTooLarge {
            limit: self.limits.max_body,
        };
        self.take(n, room, over, counted)
    }

    /// `n` octets of a part with `room` left before `over`, and `counted`
    /// octets of the frame, checked as if they arrived one at a time: the
    /// limit crossed at the earlier octet is the error (the part's on the
    /// same octet), so the error does not depend on how the input was
    /// chunked (fuzzing, stomp_frames). Counts them when neither is.
    fn take(
        &mut self,
        n: usize,
        room: usize,
        over: DecodeError,
        counted: usize,
    ) -> Result<(), DecodeError> {
        let frame_room = self.limits.max_frame_size.saturating_sub(self.frame_len);
        // The index of the octet crossing each limit.
        let part_at = (n > room).then_some(room);
        let frame_at = (counted > frame_room).then_some(frame_room);
        match (part_at, frame_at) {
            (Some(p), Some(f)) if f < p => Err(self.frame_too_large()),
            (Some(_), _) => Err(over),
            (None, Some(_)) => Err(self.frame_too_large()),
            (None, None) => {
                self.frame_len += counted;
                Ok(())
            }
        }
    }

    fn frame_too_large(&self) -> DecodeError {
        DecodeError::FrameTooLarge {
            limit: self.limits.max_frame_size,
        }
    }

    fn check_body_len(&self, len: usize) -> Result<(), DecodeError> {
        if len > self.limits.max_body {
            return Err(DecodeError::BodyTooLarge {
                limit: self.limits.max_body,
            });
        }
        Ok(())
    }

    /// Handles one complete command or header line (EOL stripped).
    fn end_of_line(&mut self, line: &[u8]) -> Result<(), DecodeError> {
        let Some(command) = self.command else {
            let command =
                Command::parse(line).ok_or_else(|| match simdutf8::basic::from_utf8(line) {
                    Ok(s) => DecodeError::UnknownCommand(s.to_owned()),
                    Err(_) => DecodeError::InvalidUtf8,
                })?;
            self.command = Some(command);
            self.headers = Headers::new();
            return Ok(());
        };
        if line.is_empty() {
            return self.begin_body(command);
        }
        if self.headers.len() >= self.limits.max_headers {
            return Err(DecodeError::TooManyHeaders {
                limit: self.limits.max_headers,
            });
        }
        let line = simdutf8::basic::from_utf8(line).map_err(|_| DecodeError::InvalidUtf8)?;
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| DecodeError::MissingColon(line.to_owned()))?;
        let mode = Escaping::for_frame(command, self.version);
        let name = unescape(name, mode)?.into_owned();
        let value = unescape(value, mode)?.into_owned();
        self.headers.push(name, value);
        Ok(())
    }

    /// The blank line after the headers: sets up body reading.
    fn begin_body(&mut self, command: Command) -> Result<(), DecodeError> {
        let Some(raw) = self.headers.get("content-length") else {
            self.state = State::Body(None);
            return Ok(());
        };
        let trimmed = raw.trim_matches(|c: char| c == ' ' || c == '\t');
        let len = if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
            trimmed.parse::<usize>().ok()
        } else {
            None
        }
        .ok_or_else(|| DecodeError::InvalidContentLength(raw.to_owned()))?;
        self.check_body_len(len)?;
        if len > 0 && !command.allows_body() {
            return Err(DecodeError::BodyNotAllowed(command));
        }
        // The body and its NUL must fit in the frame limit: fail now rather
        // than after buffering.
        if self.frame_len.saturating_add(len).saturating_add(1) > self.limits.max_frame_size {
            return Err(DecodeError::FrameTooLarge {
                limit: self.limits.max_frame_size,
            });
        }
        self.frame_len += len;
        self.body.reserve(len.min(BODY_PREALLOC));
        self.state = if len == 0 {
            State::Nul
        } else {
            State::Body(Some(len))
        };
        Ok(())
    }

    fn finish(&mut self) -> Result<Item, DecodeError> {
        let command = self.command.take().expect("command parsed before body");
        if !self.body.is_empty() && !command.allows_body() {
            return Err(DecodeError::BodyNotAllowed(command));
        }
        let body = if self.body.is_empty() {
            // No split of an empty buffer: it would make the buffer shared
            // (an allocation) for nothing.
            Bytes::new()
        } else {
            self.body.split().freeze()
        };
        let headers = std::mem::take(&mut self.headers);
        self.state = State::Idle;
        Ok(Item::Frame(Frame {
            command,
            headers,
            body,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_decoder_gives_its_buffers_back() {
        let mut d = Decoder::new(Version::V1_2, Limits::default());
        let mut input = &b"SEND\ndestination:/a\n\nhello\0CONN"[..];
        let Some(Item::Frame(f)) = d.decode(&mut input).unwrap() else {
            panic!("a frame")
        };
        assert_eq!(&f.body[..], b"hello");
        // Mid-frame: nothing is given back.
        assert!(d.decode(&mut input).unwrap().is_none());
        d.release_idle_buffers();
        assert_eq!(d.line, b"CONN");
        let mut input = &b"ECT\naccept-version:1.2\n\n\0"[..];
        let Some(Item::Frame(f)) = d.decode(&mut input).unwrap() else {
            panic!("a frame")
        };
        assert_eq!(f.command, Command::Connect);
        assert!(f.body.is_empty());
        // Between frames: the body's spare room (shared with `hello`)
        // and the line buffer go.
        assert!(d.body.capacity() > 0 || d.line.capacity() > 0);
        d.release_idle_buffers();
        assert_eq!((d.body.capacity(), d.line.capacity()), (0, 0));
        let mut input = &b"SEND\ndestination:/a\n\nagain\0"[..];
        let Some(Item::Frame(f)) = d.decode(&mut input).unwrap() else {
            panic!("a frame")
        };
        assert_eq!(&f.body[..], b"again");
    }

    fn decode_with(
        version: Version,
        limits: Limits,
        chunks: &[&[u8]],
    ) -> Result<Vec<Item>, DecodeError> {
        let mut d = Decoder::new(version, limits);
        let mut items = Vec::new();
        for chunk in chunks {
            let mut input = *chunk;
            while let Some(item) = d.decode(&mut input)? {
                items.push(item);
            }
            assert!(input.is_empty());
        }
        Ok(items)
    }

    /// Decodes `bytes` whole and byte by byte; both must agree.
    fn decode_v(version: Version, bytes: &[u8]) -> Result<Vec<Item>, DecodeError> {
        let whole = decode_with(version, Limits::default(), &[bytes]);
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        let split = decode_with(version, Limits::default(), &singles);
        assert_eq!(whole, split, "byte-by-byte decoding differs");
        whole
    }

    fn decode(bytes: &[u8]) -> Result<Vec<Item>, DecodeError> {
        decode_v(Version::V1_2, bytes)
    }

    fn one_frame(bytes: &[u8]) -> Frame {
        one_frame_v(Version::V1_2, bytes)
    }

    fn one_frame_v(version: Version, bytes: &[u8]) -> Frame {
        let mut items = decode_v(version, bytes).unwrap();
        assert_eq!(items.len(), 1, "{items:?}");
        match items.pop().unwrap() {
            Item::Frame(f) => f,
            Item::HeartBeat => panic!("heart-beat"),
        }
    }

    fn err(bytes: &[u8]) -> DecodeError {
        decode(bytes).unwrap_err()
    }

    #[test]
    fn every_command_decodes() {
        for c in Command::ALL {
            let wire = format!("{}\n\n\0", c.as_str());
            let f = one_frame(wire.as_bytes());
            assert_eq!(f.command, c);
            assert!(f.headers.is_empty());
            assert!(f.body.is_empty());
        }
    }

    #[test]
    fn headers_and_body() {
        let f = one_frame(b"SEND\ndestination:/queue/a\ncontent-type:text/plain\n\nhello\0");
        assert_eq!(f.command, Command::Send);
        assert_eq!(f.get("destination"), Some("/queue/a"));
        assert_eq!(f.get("content-type"), Some("text/plain"));
        assert_eq!(&f.body[..], b"hello");
    }

    #[test]
    fn crlf_line_ends() {
        let f = one_frame(b"SEND\r\ndestination:/q\r\n\r\nbody\0");
        assert_eq!(f.command, Command::Send);
        assert_eq!(f.get("destination"), Some("/q"));
        assert_eq!(&f.body[..], b"body");
    }

    #[test]
    fn mixed_lf_and_crlf() {
        let f = one_frame(b"SEND\ndestination:/q\r\na:b\n\r\nx\0");
        assert_eq!(f.get("destination"), Some("/q"));
        assert_eq!(f.get("a"), Some("b"));
    }

    #[test]
    fn heart_beats_lf_and_crlf() {
        let items = decode(b"\n\r\n\nSEND\ndestination:/q\n\n\0\r\n\n").unwrap();
        assert_eq!(items.len(), 6);
        assert_eq!(
            items[..3],
            [Item::HeartBeat, Item::HeartBeat, Item::HeartBeat]
        );
        assert!(matches!(items[3], Item::Frame(_)));
        assert_eq!(items[4..], [Item::HeartBeat, Item::HeartBeat]);
    }

    #[test]
    fn several_frames_in_one_chunk() {
        let items = decode(b"BEGIN\ntransaction:t\n\n\0COMMIT\ntransaction:t\n\n\0").unwrap();
        assert_eq!(items.len(), 2);
    }

    #[test]
    fn decode_stops_after_each_item() {
        let mut d = Decoder::new(Version::V1_2, Limits::default());
        let mut input: &[u8] = b"\nDISCONNECT\n\n\0rest";
        assert_eq!(d.decode(&mut input).unwrap(), Some(Item::HeartBeat));
        assert!(matches!(
            d.decode(&mut input).unwrap(),
            Some(Item::Frame(_))
        ));
        assert_eq!(input, b"rest");
        assert!(d.is_idle());
    }

    #[test]
    fn repeated_headers_first_wins() {
        let f = one_frame(b"SEND\nfoo:1\nfoo:2\n\n\0");
        assert_eq!(f.get("foo"), Some("1"));
        assert_eq!(f.headers.len(), 2);
    }

    #[test]
    fn value_keeps_extra_colons_and_spaces() {
        let f = one_frame(b"SEND\nurl: http://x:80 \n\n\0");
        assert_eq!(f.get("url"), Some(" http://x:80 "));
        let f = one_frame(b"SEND\nempty:\n:noname\n\n\0");
        assert_eq!(f.get("empty"), Some(""));
        assert_eq!(f.get(""), Some("noname"));
    }

    #[test]
    fn escapes_1_2() {
        let f = one_frame(b"SEND\na\\cb:x\\ny\\rz\\\\w\\c\n\n\0");
        assert_eq!(f.get("a:b"), Some("x\ny\rz\\w:"));
    }

    #[test]
    fn escape_newline() {
        assert_eq!(one_frame(b"SEND\nk:a\\nb\n\n\0").get("k"), Some("a\nb"));
    }

    #[test]
    fn escape_colon() {
        assert_eq!(one_frame(b"SEND\nk:a\\cb\n\n\0").get("k"), Some("a:b"));
    }

    #[test]
    fn escape_backslash() {
        assert_eq!(one_frame(b"SEND\nk:a\\\\b\n\n\0").get("k"), Some("a\\b"));
    }

    #[test]
    fn escape_carriage_return_1_2() {
        assert_eq!(one_frame(b"SEND\nk:a\\rb\n\n\0").get("k"), Some("a\rb"));
    }

    #[test]
    fn escapes_1_1() {
        let f = one_frame_v(Version::V1_1, b"SEND\nk:a\\nb\\c\\\\\n\n\0");
        assert_eq!(f.get("k"), Some("a\nb:\\"));
        assert_eq!(
            decode_v(Version::V1_1, b"SEND\nk:\\r\n\n\0").unwrap_err(),
            DecodeError::InvalidEscape("\\r".into())
        );
    }

    #[test]
    fn no_escapes_in_1_0() {
        let f = one_frame_v(Version::V1_0, b"SEND\nk:a\\tb\\n\n\n\0");
        assert_eq!(f.get("k"), Some("a\\tb\\n"));
    }

    #[test]
    fn connect_frames_never_unescape() {
        for cmd in ["CONNECT", "STOMP", "CONNECTED"] {
            let wire = format!("{cmd}\npasscode:a\\tb\\c\n\n\0");
            let f = one_frame(wire.as_bytes());
            assert_eq!(f.get("passcode"), Some("a\\tb\\c"));
        }
    }

    #[test]
    fn escape_split_across_chunks() {
        let items = decode_with(
            Version::V1_2,
            Limits::default(),
            &[b"SEND\nk:a\\", b"nb\r", b"\n\r", b"\n\0"],
        )
        .unwrap();
        let Item::Frame(f) = &items[0] else { panic!() };
        assert_eq!(f.get("k"), Some("a\nb"));
    }

    #[test]
    fn content_length_binary_body_with_nuls() {
        let body = [0u8, 1, 0, 255, 0];
        let mut wire = b"SEND\ndestination:/q\ncontent-length:5\n\n".to_vec();
        wire.extend_from_slice(&body);
        wire.push(0);
        wire.extend_from_slice(b"\n");
        let items = decode(&wire).unwrap();
        let Item::Frame(f) = &items[0] else { panic!() };
        assert_eq!(&f.body[..], &body);
        assert_eq!(items[1], Item::HeartBeat);
    }

    #[test]
    fn content_length_zero() {
        let f = one_frame(b"SEND\ncontent-length:0\n\n\0");
        assert!(f.body.is_empty());
        // Allowed on frames without a body too.
        let f = one_frame(b"SUBSCRIBE\ncontent-length:0\n\n\0");
        assert_eq!(f.command, Command::Subscribe);
    }

    #[test]
    fn content_length_first_occurrence_wins() {
        let f = one_frame(b"SEND\ncontent-length:2\ncontent-length:9\n\nab\0");
        assert_eq!(&f.body[..], b"ab");
    }

    #[test]
    fn body_is_utf8_agnostic_without_content_length() {
        let f = one_frame(b"MESSAGE\n\n\xff\xfe\0");
        assert_eq!(&f.body[..], b"\xff\xfe");
    }

    #[test]
    fn error_unknown_command() {
        assert_eq!(err(b"FOO\n\n\0"), DecodeError::UnknownCommand("FOO".into()));
        assert_eq!(
            err(b"send\n\n\0"),
            DecodeError::UnknownCommand("send".into())
        );
    }

    #[test]
    fn error_invalid_utf8_command() {
        assert_eq!(err(b"\xff\n\n\0"), DecodeError::InvalidUtf8);
    }

    #[test]
    fn error_invalid_utf8_header() {
        assert_eq!(err(b"SEND\nk:\xc3\x28\n\n\0"), DecodeError::InvalidUtf8);
    }

    #[test]
    fn error_nul_in_headers() {
        assert_eq!(err(b"SEND\nk:v\0\n\n\0"), DecodeError::UnexpectedNul);
        assert_eq!(err(b"DISCONNECT\n\0"), DecodeError::UnexpectedNul);
    }

    /// Found by fuzzing (stomp_frames): a NUL after an over-long line (or
    /// past the frame limit) gave `UnexpectedNul` when it came in the same
    /// chunk but the limit error when the line came first.
    #[test]
    fn nul_after_limit_errors_like_any_chunking() {
        let limits = Limits {
            max_header_length: 13,
            ..Limits::default()
        };
        let bytes = b"SEestinationz/queue/\xff\xff\xff\xff\0";
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        let expected = Err(DecodeError::HeaderLineTooLong { limit: 13 });
        assert_eq!(decode_with(Version::V1_2, limits, &[bytes]), expected);
        assert_eq!(decode_with(Version::V1_2, limits, &singles), expected);

        let limits = Limits {
            max_frame_size: 16,
            ..Limits::default()
        };
        let bytes = b"SEND\nk:0123456789abcdef\0";
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        let expected = Err(DecodeError::FrameTooLarge { limit: 16 });
        assert_eq!(decode_with(Version::V1_2, limits, &[bytes]), expected);
        assert_eq!(decode_with(Version::V1_2, limits, &singles), expected);
    }

    /// Found by fuzzing (stomp_frames): a line over its limit and past the
    /// frame limit gave the line's error when it came whole and the frame's
    /// when it came in pieces (the frame limit crossed at an earlier
    /// octet). Now the limit crossed first wins however it is chunked; the
    /// same for a body read up to its NUL.
    #[test]
    fn the_limit_crossed_first_wins_however_chunked() {
        let cases: [(Limits, &[u8], DecodeError); 3] = [
            (
                // Frame full at octet 13, the line at octet 17.
                Limits {
                    max_header_length: 10,
                    max_frame_size: 12,
                    ..Limits::default()
                },
                b"SEND\naaaaaaaaaaaaaaaaaaaaa\n",
                DecodeError::FrameTooLarge { limit: 12 },
            ),
            (
                // The line over first.
                Limits {
                    max_header_length: 4,
                    max_frame_size: 12,
                    ..Limits::default()
                },
                b"SEND\naaaaaaaaaaaaaaaaaaaaa\n",
                DecodeError::HeaderLineTooLong { limit: 4 },
            ),
            (
                // A body: the frame full before the body's own limit.
                Limits {
                    max_body: 10,
                    max_frame_size: 14,
                    ..Limits::default()
                },
                b"SEND\n\nbbbbbbbbbbbbbbbbbbbb\0",
                DecodeError::FrameTooLarge { limit: 14 },
            ),
        ];
        for (limits, bytes, error) in cases {
            for size in [bytes.len(), 1, 2, 3, 7] {
                let chunks: Vec<&[u8]> = bytes.chunks(size).collect();
                assert_eq!(
                    decode_with(Version::V1_2, limits, &chunks),
                    Err(error.clone()),
                    "chunks of {size}"
                );
            }
        }
    }

    #[test]
    fn error_missing_colon() {
        assert_eq!(
            err(b"SEND\nnocolon\n\n\0"),
            DecodeError::MissingColon("nocolon".into())
        );
    }

    #[test]
    fn error_undefined_escape() {
        assert_eq!(
            err(b"SEND\nk:a\\tb\n\n\0"),
            DecodeError::InvalidEscape("\\t".into())
        );
        assert_eq!(
            err(b"SEND\nk\\x:v\n\n\0"),
            DecodeError::InvalidEscape("\\x".into())
        );
    }

    #[test]
    fn error_trailing_backslash() {
        assert_eq!(
            err(b"SEND\nk:a\\\n\n\0"),
            DecodeError::InvalidEscape("\\".into())
        );
    }

    #[test]
    fn error_invalid_content_length() {
        for v in ["abc", "-1", "", "1.5", "99999999999999999999999"] {
            let wire = format!("SEND\ncontent-length:{v}\n\n\0");
            assert_eq!(
                err(wire.as_bytes()),
                DecodeError::InvalidContentLength(v.into())
            );
        }
    }

    #[test]
    fn content_length_tolerates_spaces() {
        let f = one_frame(b"SEND\ncontent-length: 2 \n\nab\0");
        assert_eq!(&f.body[..], b"ab");
    }

    #[test]
    fn error_missing_nul_after_content_length() {
        assert_eq!(
            err(b"SEND\ncontent-length:2\n\nabc\0"),
            DecodeError::MissingNul
        );
    }

    #[test]
    fn error_body_not_allowed() {
        assert_eq!(
            err(b"SUBSCRIBE\nid:1\n\nbody\0"),
            DecodeError::BodyNotAllowed(Command::Subscribe)
        );
        assert_eq!(
            err(b"DISCONNECT\ncontent-length:1\n\nx\0"),
            DecodeError::BodyNotAllowed(Command::Disconnect)
        );
    }

    #[test]
    fn error_bare_cr_between_frames() {
        assert_eq!(err(b"\rSEND\n\n\0"), DecodeError::InvalidEol);
    }

    fn small() -> Limits {
        Limits {
            max_frame_size: 64,
            max_headers: 2,
            max_header_length: 16,
            max_body: 32,
        }
    }

    #[test]
    fn error_header_line_too_long_before_eol() {
        // A header line streamed forever is rejected once it passes the
        // limit, without waiting for its EOL.
        let mut d = Decoder::new(Version::V1_2, small());
        let mut input: &[u8] = b"SEND\n";
        assert_eq!(d.decode(&mut input).unwrap(), None);
        let mut total = 0;
        let e = loop {
            let mut input: &[u8] = b"xxxx";
            match d.decode(&mut input) {
                Ok(_) => total += 4,
                Err(e) => break e,
            }
            assert!(total < 64);
        };
        assert_eq!(e, DecodeError::HeaderLineTooLong { limit: 16 });
        assert!(d.line.capacity() <= 64);
    }

    #[test]
    fn header_line_limit_is_exact() {
        let ok = format!("SEND\n{}\n\n\0", "k:".to_owned() + &"v".repeat(14));
        assert!(decode_with(Version::V1_2, small(), &[ok.as_bytes()]).is_ok());
        let ok_crlf = format!("SEND\r\n{}\r\n\r\n\0", "k:".to_owned() + &"v".repeat(14));
        assert!(decode_with(Version::V1_2, small(), &[ok_crlf.as_bytes()]).is_ok());
        let bad = format!("SEND\n{}\n\n\0", "k:".to_owned() + &"v".repeat(15));
        assert_eq!(
            decode_with(Version::V1_2, small(), &[bad.as_bytes()]).unwrap_err(),
            DecodeError::HeaderLineTooLong { limit: 16 }
        );
    }

    #[test]
    fn error_too_many_headers() {
        assert_eq!(
            decode_with(Version::V1_2, small(), &[b"SEND\na:1\nb:2\nc:3\n\n\0"]).unwrap_err(),
            DecodeError::TooManyHeaders { limit: 2 }
        );
    }

    #[test]
    fn error_body_too_large_without_content_length() {
        let mut wire = b"SEND\n\n".to_vec();
        wire.extend(std::iter::repeat_n(b'x', 33));
        assert_eq!(
            decode_with(Version::V1_2, small(), &[&wire]).unwrap_err(),
            DecodeError::BodyTooLarge { limit: 32 }
        );
    }

    #[test]
    fn error_body_too_large_by_content_length() {
        // Rejected on the header alone, before any body octet.
        assert_eq!(
            decode_with(
                Version::V1_2,
                Limits {
                    max_header_length: 32,
                    ..small()
                },
                &[b"SEND\ncontent-length:33\n\n"]
            )
            .unwrap_err(),
            DecodeError::BodyTooLarge { limit: 32 }
        );
    }

    #[test]
    fn error_frame_too_large() {
        let limits = Limits {
            max_frame_size: 40,
            ..small()
        };
        let wire = b"SEND\na:1234567890\nb:1234567890\ncontent-length:10\n\n";
        assert_eq!(
            decode_with(Version::V1_2, limits, &[wire]).unwrap_err(),
            DecodeError::FrameTooLarge { limit: 40 }
        );
        let wire = b"SEND\na:1234567890\nb:1234567890\n\n0123456789";
        assert_eq!(
            decode_with(Version::V1_2, limits, &[wire]).unwrap_err(),
            DecodeError::FrameTooLarge { limit: 40 }
        );
    }

    #[test]
    fn limits_reset_per_frame() {
        let limits = small();
        let frame = b"SEND\na:1\n\n0123456789\0";
        let wire: Vec<u8> = frame
            .iter()
            .copied()
            .cycle()
            .take(frame.len() * 5)
            .collect();
        assert_eq!(
            decode_with(Version::V1_2, limits, &[&wire]).unwrap().len(),
            5
        );
    }

    #[test]
    fn failed_decoder_stays_failed() {
        let mut d = Decoder::new(Version::V1_2, Limits::default());
        let mut input: &[u8] = b"BAD\n";
        assert!(d.decode(&mut input).is_err());
        let mut input: &[u8] = b"SEND\n\n\0";
        assert_eq!(
            d.decode(&mut input).unwrap_err(),
            DecodeError::UnknownCommand("BAD".into())
        );
    }

    #[test]
    fn version_switch_between_frames() {
        let mut d = Decoder::new(Version::V1_0, Limits::default());
        let mut input: &[u8] = b"SEND\nk:a\\nb\n\n\0SEND\nk:a\\nb\n\n\0";
        let Some(Item::Frame(f)) = d.decode(&mut input).unwrap() else {
            panic!()
        };
        assert_eq!(f.get("k"), Some("a\\nb"));
        d.set_version(Version::V1_2);
        assert_eq!(d.version(), Version::V1_2);
        let Some(Item::Frame(f)) = d.decode(&mut input).unwrap() else {
            panic!()
        };
        assert_eq!(f.get("k"), Some("a\nb"));
    }

    #[test]
    fn split_everywhere_every_position() {
        let wire: &[u8] =
            b"\r\nSEND\r\nk:a\\cb\\r\r\ncontent-length:3\r\n\r\n\0x\0\0\r\nMESSAGE\nm:1\n\nbody\0\n";
        let expected = decode_with(Version::V1_2, Limits::default(), &[wire]).unwrap();
        assert_eq!(expected.len(), 5);
        for i in 0..wire.len() {
            for j in i..wire.len() {
                let got = decode_with(
                    Version::V1_2,
                    Limits::default(),
                    &[&wire[..i], &wire[i..j], &wire[j..]],
                )
                .unwrap();
                assert_eq!(got, expected, "split at {i},{j}");
            }
        }
    }
}
