//! A minimal SockJS client, two transports, text messages only:
//!
//! * `websocket` ([`SockJsWs`]): a WebSocket (the client-role core of
//!   [`WsConn`]) to `<prefix>/<server>/<session>/websocket`; every WebSocket
//!   message is one SockJS frame (`o`, `h`, `a["..",..]`, `c[code,"reason"]`);
//!   messages go out as `["msg"]`, one per WebSocket message (as
//!   sockjs-client does).
//! * `xhr-streaming` ([`XhrStream`]): `POST <prefix>/<server>/<session>/xhr_streaming`
//!   over a raw HTTP/1.1 connection, the (chunked) body read as newline-ended
//!   frames after the 2 KiB `h` prelude. The server ends the response after
//!   its stream byte limit (128 KiB); the stream is then reopened with a new
//!   POST on the same session (on the same keep-alive connection, or a new one
//!   if the server closed it), as sockjs-client does, and messages keep being
//!   counted across reopenings. Messages are sent with [`xhr_send`]
//!   (`POST .../xhr_send`, body `["msg"]`, on a connection of its own).
//!
//! Messages are handed to the caller as the raw JSON string contents (escapes
//! not undone: the bench's payloads are plain ASCII with nothing to escape).

use std::cell::Cell;
use std::io;
use std::net::IpAddr;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util::{find, Target};
use crate::ws::{tcp_connect, WsConn};

thread_local! {
    static NEXT_SESSION: Cell<u64> = const { Cell::new(0) };
}

/// A fresh session path under the service prefix `base`:
/// `<base>/<3 digits>/<unique id>`.
pub fn session_path(base: &str) -> String {
    let n = NEXT_SESSION.with(|c| {
        let n = c.get();
        c.set(n + 1);
        n
    });
    let base = base.trim_end_matches('/');
    format!(
        "{base}/{:03}/{:x}{:x}{n:x}",
        n % 1000,
        std::process::id(),
        crate::util::now_ns() & 0xffff_ffff
    )
}

/// What one SockJS frame was.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    Open,
    Heartbeat,
    /// `a[...]`: the messages went to the closure
    Messages,
    Close,
    Bad,
}

/// Parses one frame (without its trailing newline); the messages of an `a`
/// frame go to `f` as the raw contents of their JSON strings.
pub fn parse_frame(frame: &[u8], mut f: impl FnMut(&[u8])) -> Frame {
    match frame.first() {
        Some(b'o') if frame.len() == 1 => Frame::Open,
        // `h`, and the xhr-streaming prelude (2048 `h`)
        Some(b'h') if frame.iter().all(|&c| c == b'h') => Frame::Heartbeat,
        Some(b'c') => Frame::Close,
        Some(b'a') => {
            let Some(body) = frame[1..].strip_prefix(b"[") else {
                return Frame::Bad;
            };
            let mut i = 0;
            loop {
                while i < body.len() && matches!(body[i], b' ' | b',' | b'\n' | b'\r' | b'\t') {
                    i += 1;
                }
                match body.get(i) {
                    Some(b']') => return Frame::Messages,
                    Some(b'"') => {}
                    _ => return Frame::Bad,
                }
                i += 1;
                let start = i;
                while i < body.len() && body[i] != b'"' {
                    i += if body[i] == b'\\' { 2 } else { 1 };
                }
                if i >= body.len() {
                    return Frame::Bad;
                }
                f(&body[start..i]);
                i += 1;
            }
        }
        _ => Frame::Bad,
    }
}

/// `["msg"]` for a message with nothing to escape (the bench's payloads).
fn push_array(out: &mut String, msg: &str) {
    debug_assert!(!msg.bytes().any(|c| c == b'"' || c == b'\\' || c < 0x20));
    out.push_str("[\"");
    out.push_str(msg);
    out.push_str("\"]");
}

/// A SockJS session over the `websocket` transport.
pub struct SockJsWs {
    ws: WsConn,
    buf: String,
}

impl SockJsWs {
    /// Opens `<t.path>/<server>/<session>/websocket` (`t.path` is the service
    /// prefix, e.g. `/bench`) and waits for the open frame.
    pub async fn connect(t: &Target, local: Option<IpAddr>) -> io::Result<Self> {
        let t = Target {
            path: format!("{}/websocket", session_path(&t.path)),
            ..t.clone()
        };
        let mut c = SockJsWs {
            ws: WsConn::connect(&t, local).await?,
            buf: String::with_capacity(128),
        };
        let mut open = false;
        let mut bad = false;
        loop {
            // the handshake's read may have taken the open frame along
            let alive = c.ws.process(|m| match parse_frame(m, |_| {}) {
                Frame::Open => open = true,
                Frame::Heartbeat => {}
                _ => bad = true,
            });
            if open {
                return Ok(c);
            }
            if bad || !alive {
                return Err(io::Error::other("no SockJS open frame"));
            }
            if c.ws.read().await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Queues one message (`["msg"]`, sent by the next `flush`).
    #[inline]
    pub fn send(&mut self, msg: &str) {
        self.buf.clear();
        push_array(&mut self.buf, msg);
        self.ws.send_text(&self.buf);
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

    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.ws.local_addr()
    }

    /// Calls `f` with every message received so far; false once the session
    /// or the WebSocket closed (or a frame was not SockJS).
    pub fn process(&mut self, mut f: impl FnMut(&[u8])) -> bool {
        let mut ok = true;
        let alive = self.ws.process(|m| match parse_frame(m, &mut f) {
            Frame::Close | Frame::Bad => ok = false,
            _ => {}
        });
        alive && ok
    }

    /// Reads until the message `want` came back (dropping the others before it).
    pub async fn wait_for(&mut self, want: &[u8]) -> io::Result<()> {
        loop {
            let mut found = false;
            let alive = self.process(|m| found |= m == want);
            if found {
                return Ok(());
            }
            if !alive {
                return Err(io::Error::other("closed by server"));
            }
            if self.ws.read().await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }
}

/// Where the HTTP response of the stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Http {
    /// waiting for the status line and headers
    Head,
    /// chunked: waiting for a chunk-size line
    ChunkSize,
    /// chunked: this many data bytes of the chunk left
    ChunkData(usize),
    /// chunked: the CRLF after a chunk's data
    ChunkEnd,
    /// chunked: after the last chunk, the (empty) trailer
    Trailer,
    /// Content-Length body: this many bytes left
    Length(usize),
    /// body until the server closes
    UntilClose,
    /// the response is complete
    Done,
}

/// What [`XhrStream::process`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamState {
    /// the response goes on
    Open,
    /// the response ended (stream byte limit): reopen with [`XhrStream::reopen`]
    Ended,
    /// the session was closed (`c` frame) or the response was not a stream
    Closed,
}

/// The receiving side of a SockJS session over `xhr-streaming`.
pub struct XhrStream {
    target: Target,
    local: Option<IpAddr>,
    /// `<prefix>/<server>/<session>`
    pub session: String,
    stream: TcpStream,
    rbuf: BytesMut,
    http: Http,
    /// the server said `Connection: close`
    close_after: bool,
    /// body bytes of the frame not yet complete
    line: Vec<u8>,
    /// responses opened on this session (1 + reopenings)
    pub responses: u64,
}

impl XhrStream {
    /// Opens a new session's stream (`POST .../xhr_streaming`); returns once
    /// the open frame `o` arrived.
    pub async fn open(t: &Target, local: Option<IpAddr>) -> io::Result<Self> {
        let stream = tcp_connect(t.addr, local).await?;
        let mut s = XhrStream {
            target: t.clone(),
            local,
            session: session_path(&t.path),
            stream,
            rbuf: BytesMut::with_capacity(16 * 1024),
            http: Http::Head,
            close_after: false,
            line: Vec::with_capacity(4096),
            responses: 0,
        };
        s.post().await?;
        let mut open = false;
        let mut bad = false;
        loop {
            let st = s.process_frames(|fr, _| match fr {
                Frame::Open => open = true,
                Frame::Heartbeat => {}
                _ => bad = true,
            })?;
            if open {
                return Ok(s);
            }
            if bad || st != StreamState::Open {
                return Err(io::Error::other("no SockJS open frame on xhr_streaming"));
            }
            if s.read().await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    async fn post(&mut self) -> io::Result<()> {
        let req = format!(
            "POST {}/xhr_streaming HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nAccept: */*\r\n\r\n",
            self.session, self.target.host
        );
        self.http = Http::Head;
        self.line.clear();
        self.responses += 1;
        self.stream.write_all(req.as_bytes()).await
    }

    /// Opens the next response of the same session (after [`StreamState::Ended`]):
    /// on the same connection if the server keeps it alive, else on a new one.
    pub async fn reopen(&mut self) -> io::Result<()> {
        if self.close_after || !self.rbuf.is_empty() {
            self.stream = tcp_connect(self.target.addr, self.local).await?;
            self.rbuf.clear();
            self.close_after = false;
        }
        match self.post().await {
            Ok(()) => Ok(()),
            // the server closed the kept-alive connection meanwhile
            Err(_) => {
                self.stream = tcp_connect(self.target.addr, self.local).await?;
                self.rbuf.clear();
                self.post().await
            }
        }
    }

    /// Reads what the socket has; `Ok(0)` is end of stream. A kept-alive
    /// connection the server closed before answering a reopening is
    /// replaced (and the POST sent again) here.
    pub async fn read(&mut self) -> io::Result<usize> {
        loop {
            if self.rbuf.capacity() - self.rbuf.len() < 8 * 1024 {
                self.rbuf.reserve(64 * 1024);
            }
            let n = self.stream.read_buf(&mut self.rbuf).await?;
            if n == 0 && self.http == Http::Head && self.rbuf.is_empty() && self.responses > 1 {
                self.stream = tcp_connect(self.target.addr, self.local).await?;
                self.responses -= 1;
                self.post().await?;
                continue;
            }
            return Ok(n);
        }
    }

    /// The stream connection's local address (to find it in /proc/net/tcp).
    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.stream.local_addr()
    }

    /// Whether end of stream right now is the end of an until-close body.
    pub fn eof_ends_response(&mut self) -> bool {
        if self.http == Http::UntilClose {
            self.http = Http::Done;
            self.close_after = true;
            return true;
        }
        false
    }

    /// Calls `f` with every message received so far.
    pub fn process(&mut self, mut f: impl FnMut(&[u8])) -> io::Result<StreamState> {
        let mut closed = false;
        let st = self.process_frames(|fr, m| match fr {
            Frame::Messages => f(m),
            Frame::Close | Frame::Bad => closed = true,
            _ => {}
        })?;
        Ok(if closed { StreamState::Closed } else { st })
    }

    /// Decodes the HTTP response read so far; every frame goes to `f`
    /// (`Frame::Messages` once per message, with the message).
    pub fn process_frames(&mut self, mut f: impl FnMut(Frame, &[u8])) -> io::Result<StreamState> {
        loop {
            match self.http {
                Http::Head => {
                    let Some(end) = find(&self.rbuf, b"\r\n\r\n") else {
                        return Ok(StreamState::Open);
                    };
                    let head = std::str::from_utf8(&self.rbuf[..end])
                        .map_err(|_| io::Error::other("response head not UTF-8"))?
                        .to_ascii_lowercase();
                    self.rbuf.advance(end + 4);
                    let mut lines = head.split("\r\n");
                    let status = lines.next().unwrap_or("");
                    if !status.starts_with("http/1.1 200") && !status.starts_with("http/1.0 200") {
                        return Err(io::Error::other(format!("xhr_streaming: {status}")));
                    }
                    let mut chunked = false;
                    let mut length = None;
                    self.close_after = status.starts_with("http/1.0");
                    for l in lines {
                        let Some((k, v)) = l.split_once(':') else {
                            continue;
                        };
                        let v = v.trim();
                        match k.trim() {
                            "transfer-encoding" => chunked = v.contains("chunked"),
                            "content-length" => length = v.parse::<usize>().ok(),
                            "connection" => self.close_after = v.contains("close"),
                            _ => {}
                        }
                    }
                    self.http = if chunked {
                        Http::ChunkSize
                    } else if let Some(n) = length {
                        Http::Length(n)
                    } else {
                        Http::UntilClose
                    };
                }
                Http::ChunkSize => {
                    let Some(end) = find(&self.rbuf, b"\r\n") else {
                        return Ok(StreamState::Open);
                    };
                    let line = std::str::from_utf8(&self.rbuf[..end]).unwrap_or("");
                    let hex = line.split(';').next().unwrap_or("").trim();
                    let n = usize::from_str_radix(hex, 16)
                        .map_err(|_| io::Error::other(format!("bad chunk size {line:?}")))?;
                    self.rbuf.advance(end + 2);
                    self.http = if n == 0 {
                        Http::Trailer
                    } else {
                        Http::ChunkData(n)
                    };
                }
                Http::ChunkData(left) => {
                    if self.rbuf.is_empty() {
                        return Ok(StreamState::Open);
                    }
                    let n = left.min(self.rbuf.len());
                    self.body(n, &mut f);
                    self.http = if n == left {
                        Http::ChunkEnd
                    } else {
                        Http::ChunkData(left - n)
                    };
                }
                Http::ChunkEnd => {
                    if self.rbuf.len() < 2 {
                        return Ok(StreamState::Open);
                    }
                    self.rbuf.advance(2);
                    self.http = Http::ChunkSize;
                }
                Http::Trailer => {
                    let Some(end) = find(&self.rbuf, b"\r\n") else {
                        return Ok(StreamState::Open);
                    };
                    self.rbuf.advance(end + 2);
                    if end == 0 {
                        self.http = Http::Done;
                    }
                }
                Http::Length(left) => {
                    if left == 0 {
                        self.http = Http::Done;
                        continue;
                    }
                    if self.rbuf.is_empty() {
                        return Ok(StreamState::Open);
                    }
                    let n = left.min(self.rbuf.len());
                    self.body(n, &mut f);
                    self.http = Http::Length(left - n);
                }
                Http::UntilClose => {
                    let n = self.rbuf.len();
                    if n == 0 {
                        return Ok(StreamState::Open);
                    }
                    self.body(n, &mut f);
                }
                Http::Done => return Ok(StreamState::Ended),
            }
        }
    }

    /// `n` body bytes from the read buffer: complete frames go to `f`.
    fn body(&mut self, n: usize, f: &mut impl FnMut(Frame, &[u8])) {
        let data = self.rbuf.split_to(n);
        let mut rest: &[u8] = &data;
        while let Some(i) = rest.iter().position(|&c| c == b'\n') {
            let frame: &[u8] = if self.line.is_empty() {
                &rest[..i]
            } else {
                self.line.extend_from_slice(&rest[..i]);
                &self.line
            };
            let kind = parse_frame(frame, |m| f(Frame::Messages, m));
            if kind != Frame::Messages {
                f(kind, &[]);
            }
            self.line.clear();
            rest = &rest[i + 1..];
        }
        self.line.extend_from_slice(rest);
    }
}

/// `POST <session>/xhr_send` with `["msg"]` on a connection of its own;
/// waits for the 204 (sockjs-node) or 200-class answer.
pub async fn xhr_send(t: &Target, session: &str, msg: &str) -> io::Result<()> {
    let mut body = String::with_capacity(msg.len() + 4);
    push_array(&mut body, msg);
    let req = format!(
        "POST {session}/xhr_send HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        t.host,
        body.len()
    );
    let mut s: TcpStream = tcp_connect(t.addr, None).await?;
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::with_capacity(512);
    loop {
        if let Some(end) = find(&buf, b"\r\n") {
            let status = String::from_utf8_lossy(&buf[..end]).into_owned();
            return if status.starts_with("HTTP/1.1 2") || status.starts_with("HTTP/1.0 2") {
                Ok(())
            } else {
                Err(io::Error::other(format!("xhr_send: {status}")))
            };
        }
        if s.read_buf(&mut buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(frame: &[u8]) -> (Frame, Vec<Vec<u8>>) {
        let mut v = Vec::new();
        let k = parse_frame(frame, |m| v.push(m.to_vec()));
        (k, v)
    }

    #[test]
    fn frames() {
        assert_eq!(msgs(b"o").0, Frame::Open);
        assert_eq!(msgs(b"h").0, Frame::Heartbeat);
        assert_eq!(msgs(&[b'h'; 2048]).0, Frame::Heartbeat);
        assert_eq!(msgs(b"c[3000,\"Go away!\"]").0, Frame::Close);
        assert_eq!(
            msgs(b"a[\"x\",\"y\\\"z\"]"),
            (Frame::Messages, vec![b"x".to_vec(), b"y\\\"z".to_vec()])
        );
        assert_eq!(msgs(b"a[]"), (Frame::Messages, vec![]));
        assert_eq!(msgs(b"a[\"x\"").0, Frame::Bad);
        assert_eq!(msgs(b"x").0, Frame::Bad);
    }

    #[test]
    fn session_paths() {
        let a = session_path("/bench");
        let b = session_path("/bench/");
        assert!(a.starts_with("/bench/000/"));
        assert!(b.starts_with("/bench/001/"));
        assert_ne!(a, b);
    }

    /// The chunked decoder over a response split at every byte.
    #[tokio::test]
    async fn chunked_stream() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhhh\no\n\r\n")
                .await
                .unwrap();
            // the client has taken the open frame before the messages come
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let body = b"a[\"m1\",\"m2\"]\nh\na[\"m3\"]\n";
            let mut resp = Vec::new();
            for part in [&body[..5], &body[5..12], &body[12..]] {
                resp.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                resp.extend_from_slice(part);
                resp.extend_from_slice(b"\r\n");
            }
            resp.extend_from_slice(b"0\r\n\r\n");
            for b in resp {
                s.write_all(&[b]).await.unwrap();
                s.flush().await.unwrap();
            }
            s
        });
        let t = crate::util::parse_url(&format!("http://{addr}/bench")).unwrap();
        let mut x = XhrStream::open(&t, None).await.unwrap();
        let mut got = Vec::new();
        loop {
            match x.process(|m| got.push(m.to_vec())).unwrap() {
                StreamState::Open => {}
                StreamState::Ended => break,
                StreamState::Closed => panic!("closed"),
            }
            assert!(x.read().await.unwrap() > 0);
        }
        assert_eq!(got, vec![b"m1".to_vec(), b"m2".to_vec(), b"m3".to_vec()]);
        drop(server);
    }
}
