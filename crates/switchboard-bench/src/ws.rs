//! WebSocket client connection: a tokio `TcpStream` plus Switchboard's own
//! sans-IO core (`switchboard_websocket`) in client role. Reads go into one
//! reusable buffer; every frame queued between two flushes goes out in one write.
//! For the echo, which sends one message again and again, prebuilt masked
//! frames ([`masked_text_frames`]) and a header-only reply counter
//! ([`FrameCounter`]).

use std::io;
use std::net::{IpAddr, SocketAddr};

use bytes::{Bytes, BytesMut};
use switchboard_websocket::handshake::client::ClientRequest;
use switchboard_websocket::{Config, Connection, Event, Role};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::util::Target;

tokio::task_local! {
    /// SO_RCVBUF for every connection the current task opens (see [`with_recv_buffer`]).
    static RECV_BUFFER: u32;
}

/// Runs `f` with SO_RCVBUF set to `bytes` on every socket it opens through
/// [`tcp_connect`] (before connecting, so the advertised window is small from
/// the start): the fan-out's stalled subscribers open their connections with
/// the same code as the others, inside this.
pub async fn with_recv_buffer<F: std::future::Future>(bytes: u32, f: F) -> F::Output {
    RECV_BUFFER.scope(bytes, f).await
}

pub async fn tcp_connect(addr: SocketAddr, local: Option<IpAddr>) -> io::Result<TcpStream> {
    let sock = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Ok(bytes) = RECV_BUFFER.try_with(|b| *b) {
        sock.set_recv_buffer_size(bytes)?;
    }
    if let Some(ip) = local {
        // Let connect() pick the port for the full 4-tuple (IP_BIND_ADDRESS_NO_PORT).
        #[cfg(target_os = "linux")]
        unsafe {
            use std::os::fd::AsRawFd;
            let one: libc::c_int = 1;
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                &one as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        sock.bind(SocketAddr::new(ip, 0))?;
    }
    let s = sock.connect(addr).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

pub struct WsConn {
    pub stream: TcpStream,
    codec: Connection,
    rbuf: BytesMut,
    out: Vec<Bytes>,
    wbuf: Vec<u8>,
    closed: bool,
}

impl WsConn {
    pub async fn connect(t: &Target, local: Option<IpAddr>) -> io::Result<Self> {
        Self::connect_with_protocols(t, local, &[]).await
    }

    /// Connects offering the WebSocket subprotocols `protocols` (in
    /// preference order; none: no `Sec-WebSocket-Protocol` header).
    pub async fn connect_with_protocols(
        t: &Target,
        local: Option<IpAddr>,
        protocols: &[&str],
    ) -> io::Result<Self> {
        let mut stream = tcp_connect(t.addr, local).await?;
        let mut req = ClientRequest::new(&t.host, &t.path);
        if !protocols.is_empty() {
            req = req.protocols(protocols.iter().copied());
        }
        let (req, hs) = req.encode();
        stream.write_all(&req).await?;
        let mut rbuf = BytesMut::with_capacity(4096);
        loop {
            if stream.read_buf(&mut rbuf).await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed during handshake",
                ));
            }
            match hs.parse_response(&rbuf) {
                Ok(Some((_accepted, used))) => {
                    let _ = rbuf.split_to(used);
                    break;
                }
                Ok(None) => continue,
                Err(e) => return Err(io::Error::other(format!("handshake refused: {e:?}"))),
            }
        }
        Ok(WsConn {
            stream,
            codec: Connection::new(Role::Client, Config::default()),
            rbuf,
            out: Vec::with_capacity(64),
            wbuf: Vec::new(),
            closed: false,
        })
    }

    /// The connection's local address (to find it in /proc/net/tcp).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.local_addr()
    }

    /// Queues one text message (sent by the next `flush`).
    #[inline]
    pub fn send_text(&mut self, s: &str) {
        self.codec.writer().send_text(s);
    }

    /// Writes everything queued (data frames and the core's own control replies) in one write.
    pub async fn flush(&mut self) -> io::Result<()> {
        self.codec.writer().take_output(&mut self.out);
        if self.out.is_empty() {
            return Ok(());
        }
        if self.out.len() == 1 {
            let b = self.out.pop().unwrap();
            return self.stream.write_all(&b).await;
        }
        self.wbuf.clear();
        for b in self.out.drain(..) {
            self.wbuf.extend_from_slice(&b);
        }
        self.stream.write_all(&self.wbuf).await
    }

    /// Reads what the socket has (at least one byte); `Ok(0)` is end of stream.
    pub async fn read(&mut self) -> io::Result<usize> {
        if self.rbuf.capacity() - self.rbuf.len() < 16 * 1024 {
            self.rbuf.reserve(64 * 1024);
        }
        self.stream.read_buf(&mut self.rbuf).await
    }

    /// Reads whatever is already in the socket without waiting; returns the byte count.
    pub fn try_read(&mut self) -> io::Result<usize> {
        let mut total = 0;
        loop {
            if self.rbuf.capacity() - self.rbuf.len() < 4096 {
                self.rbuf.reserve(64 * 1024);
            }
            match self.stream.try_read_buf(&mut self.rbuf) {
                Ok(0) => {
                    return if total == 0 {
                        Err(io::ErrorKind::UnexpectedEof.into())
                    } else {
                        Ok(total)
                    }
                }
                Ok(n) => total += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(total),
                Err(e) => return Err(e),
            }
        }
    }

    /// Decodes every complete message read so far, calling `f` with each data
    /// message's payload. Returns false once the peer closed (or broke the protocol).
    pub fn process(&mut self, mut f: impl FnMut(&[u8])) -> bool {
        let mut closed = self.closed;
        if self.rbuf.is_empty() {
            return !closed;
        }
        // The core consumes all of it (a trailing partial frame is kept inside).
        let r = self.codec.receive(&mut self.rbuf[..], |ev, _w| match ev {
            Event::Text(s) => f(s.as_bytes()),
            Event::Binary(b) => f(b),
            Event::Close(..) => closed = true,
            _ => {}
        });
        self.rbuf.clear();
        if r.is_err() || self.codec.is_closed() {
            closed = true;
        }
        self.closed = closed;
        !closed
    }
}

impl WsConn {
    /// The socket and any bytes read past the handshake, for a connection
    /// that goes on with [`masked_text_frames`] and [`FrameCounter`].
    pub fn into_parts(self) -> (TcpStream, BytesMut) {
        (self.stream, self.rbuf)
    }
}

/// `count` copies of one masked text frame carrying `payload`, masked with
/// `key` (the echo sends the same message again and again: it builds the
/// bytes once and writes slices of them, as the raw TCP echo client does, so
/// that the load generator does no per-message work the TCP client skips).
/// The key is fixed per connection; the server cannot tell, and unmasks it
/// as any other.
pub fn masked_text_frames(payload: &[u8], key: [u8; 4], count: usize) -> Vec<u8> {
    let mut frame = vec![0x81u8];
    match payload.len() {
        n @ 0..=125 => frame.push(0x80 | n as u8),
        n @ 126..=0xffff => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&key);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    frame.repeat(count)
}

/// Counts the complete data frames in a stream of server frames, however the
/// reads split them, without looking at their payloads: every data frame
/// must be a whole (FIN) text or binary message of `size` bytes; pings and
/// pongs are skipped; a close ends it.
pub struct FrameCounter {
    size: u64,
    /// Payload bytes of the current frame still to skip.
    skip: u64,
    /// A header split by a read.
    head: [u8; 10],
    head_len: usize,
}

/// What [`FrameCounter::feed`] found wrong, or the close.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameStop {
    Closed,
    Bad(&'static str),
}

impl FrameCounter {
    pub fn new(size: usize) -> Self {
        FrameCounter {
            size: size as u64,
            skip: 0,
            head: [0; 10],
            head_len: 0,
        }
    }

    /// The data frames `buf` completes.
    pub fn feed(&mut self, mut buf: &[u8]) -> Result<usize, FrameStop> {
        let mut messages = 0;
        loop {
            if self.skip > 0 {
                let n = self.skip.min(buf.len() as u64);
                self.skip -= n;
                buf = &buf[n as usize..];
            }
            if buf.is_empty() {
                return Ok(messages);
            }
            // The header: 2 bytes, then 0, 2 or 8 of length.
            let need = |h: &[u8]| match h.get(1).map(|b| b & 0x7f) {
                None => 2,
                Some(126) => 4,
                Some(127) => 10,
                Some(_) => 2,
            };
            while self.head_len < need(&self.head[..self.head_len]) {
                let Some((&b, rest)) = buf.split_first() else {
                    return Ok(messages);
                };
                self.head[self.head_len] = b;
                self.head_len += 1;
                buf = rest;
            }
            let h = &self.head[..self.head_len];
            if h[1] & 0x80 != 0 {
                return Err(FrameStop::Bad("masked frame from the server"));
            }
            let len = match h[1] & 0x7f {
                126 => u64::from(u16::from_be_bytes([h[2], h[3]])),
                127 => u64::from_be_bytes(h[2..10].try_into().unwrap()),
                n => u64::from(n),
            };
            match h[0] {
                0x81 | 0x82 if len == self.size => messages += 1,
                0x81 | 0x82 => return Err(FrameStop::Bad("echoed payload of the wrong size")),
                0x89 | 0x8a => {}
                0x88 => return Err(FrameStop::Closed),
                _ => return Err(FrameStop::Bad("fragmented or unknown frame")),
            }
            self.head_len = 0;
            self.skip = len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Server frames as the core writes them, fed whole and one byte at a time.
    #[test]
    fn counts_whole_frames_across_any_split() {
        let mut server = Connection::new(Role::Server, Config::default());
        let mut stream = Vec::new();
        for size in [32usize, 4096, 70_000] {
            let text = "y".repeat(size);
            server.writer().ping(b"p");
            server.writer().send_text(&text);
            server.writer().send_text(&text);
            let mut out = Vec::new();
            server.writer().take_output(&mut out);
            let all: Vec<u8> = out.iter().flat_map(|b| b.iter().copied()).collect();
            assert_eq!(FrameCounter::new(size).feed(&all), Ok(2));
            let mut c = FrameCounter::new(size);
            let by_byte: usize = all.chunks(1).map(|b| c.feed(b).unwrap()).sum();
            assert_eq!(by_byte, 2);
            stream = all;
        }
        assert_eq!(
            FrameCounter::new(32).feed(&stream),
            Err(FrameStop::Bad("echoed payload of the wrong size"))
        );
        server.writer().close(switchboard_websocket::CloseCode::NORMAL, "");
        let mut out = Vec::new();
        server.writer().take_output(&mut out);
        assert_eq!(FrameCounter::new(32).feed(&out[0]), Err(FrameStop::Closed));
    }

    /// The prebuilt frames are what the server core reads as text messages.
    #[test]
    fn prebuilt_frames_unmask_to_the_payload() {
        for size in [32usize, 200, 70_000] {
            let payload = "z".repeat(size);
            let mut frames = masked_text_frames(payload.as_bytes(), [1, 2, 3, 0xfe], 3);
            let mut server = Connection::new(Role::Server, Config::default());
            let mut got = Vec::new();
            server
                .receive(&mut frames[..], |ev, _| {
                    if let Event::Text(s) = ev {
                        got.push(s.len());
                        assert!(s.bytes().all(|b| b == b'z'));
                    }
                })
                .unwrap();
            assert_eq!(got, vec![size; 3]);
        }
    }
}
