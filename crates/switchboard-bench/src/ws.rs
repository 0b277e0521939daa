//! WebSocket client connection: a tokio `TcpStream` plus Switchboard's own
//! sans-IO core (`switchboard_websocket`) in client role. Reads go into one
//! reusable buffer; every frame queued between two flushes goes out in one write.

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
