//! A socket with bytes already read from it in front: what an accept loop
//! that reads a request head itself (to choose who serves it) hands to
//! hyper, either for good or for one request only
//! ([`Prefixed::one_request`]), and how an upgraded connection gets its
//! plain [`TcpStream`] back ([`upgraded_tcp`]).

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Bytes read past the one request a [`Prefixed::one_request`] gives.
const MAX_AHEAD: usize = 64 * 1024;

/// `io` whose reads give `prefix` first. Writes go straight to `io`.
#[derive(Debug)]
pub struct Prefixed<IO> {
    prefix: Bytes,
    io: IO,
    one: Option<OneRequest>,
}

/// What limits the reads of a [`Prefixed::one_request`].
#[derive(Debug)]
struct OneRequest {
    /// Body bytes still to come from the socket.
    body_left: u64,
    /// What the socket gave after the request.
    ahead: BytesMut,
}

/// A [`Prefixed::one_request`] taken apart.
#[derive(Debug)]
pub struct OneRequestParts<IO> {
    pub io: IO,
    /// The part of the request not read (empty once it was read whole).
    pub unread: Bytes,
    /// Body bytes that were never asked for.
    pub body_left: u64,
    /// What the client sent after the request.
    pub ahead: BytesMut,
}

impl<IO> Prefixed<IO> {
    /// `io` with `prefix` to be read before it.
    pub fn new(prefix: Bytes, io: IO) -> Self {
        Prefixed {
            prefix,
            io,
            one: None,
        }
    }

    /// `io` as a server sees one request on it: `request` (its head and the
    /// part of its body read with it), then `body_left` more bytes from
    /// `io`, then nothing. What `io` gives after them is kept, behind
    /// `ahead` (up to 64 KiB; then reading stops), so that the server
    /// cannot start on the next request; the end of the stream and errors
    /// still reach it (a client gone during a long poll is noticed).
    pub fn one_request(request: Bytes, body_left: u64, ahead: BytesMut, io: IO) -> Self {
        Prefixed {
            prefix: request,
            io,
            one: Some(OneRequest { body_left, ahead }),
        }
    }

    /// The socket and the part of the prefix not read yet (after a
    /// [`Prefixed::one_request`], what was read ahead is dropped: use
    /// [`Prefixed::into_one_request_parts`]).
    pub fn into_parts(self) -> (IO, Bytes) {
        (self.io, self.prefix)
    }

    /// A [`Prefixed::one_request`]'s socket and what is left of its bytes.
    pub fn into_one_request_parts(self) -> OneRequestParts<IO> {
        let (body_left, ahead) = match self.one {
            Some(one) => (one.body_left, one.ahead),
            None => (0, BytesMut::new()),
        };
        OneRequestParts {
            io: self.io,
            unread: self.prefix,
            body_left,
            ahead,
        }
    }

    /// The socket, for reads that bypass the prefix.
    pub fn get_mut(&mut self) -> &mut IO {
        &mut self.io
    }
}

/// Reads what `io` has into `stash` through a buffer on the stack, so that
/// a connection waiting for bytes holds none. `Ok(0)`: the end of the
/// stream.
pub fn poll_read_into<IO: AsyncRead + Unpin>(
    io: &mut IO,
    stash: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
    let mut rb = ReadBuf::uninit(&mut buf);
    ready!(Pin::new(io).poll_read(cx, &mut rb))?;
    stash.extend_from_slice(rb.filled());
    Poll::Ready(Ok(rb.filled().len()))
}

impl<IO: AsyncRead + Unpin> AsyncRead for Prefixed<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            if self.prefix.is_empty() {
                // An emptied `Bytes` still holds its buffer.
                self.prefix = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        let this = self.get_mut();
        let Some(one) = &mut this.one else {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        };
        if one.body_left > 0 {
            let mut tmp = [MaybeUninit::<u8>::uninit(); 8192];
            let room = buf.remaining().min(tmp.len());
            let room = room.min(usize::try_from(one.body_left).unwrap_or(usize::MAX));
            let mut part = ReadBuf::uninit(&mut tmp[..room]);
            ready!(Pin::new(&mut this.io).poll_read(cx, &mut part))?;
            buf.put_slice(part.filled());
            one.body_left -= part.filled().len() as u64;
            return Poll::Ready(Ok(()));
        }
        while one.ahead.len() < MAX_AHEAD {
            match ready!(poll_read_into(&mut this.io, &mut one.ahead, cx)) {
                // The end of the stream: the reader's to see.
                Ok(0) => return Poll::Ready(Ok(())),
                Ok(_) => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        // Full: nothing more is read until the request is served (its
        // server's own wake-ups see to that).
        Poll::Pending
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Prefixed<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The plain socket under an upgraded connection, and the bytes the client
/// sent behind its handshake (read already, by hyper or by the accept
/// loop): when the connection was served on a [`TcpStream`] directly or
/// through [`Prefixed`]. Otherwise (TLS, another server's I/O type) the
/// connection comes back as it was.
pub fn upgraded_tcp(upgraded: Upgraded) -> Result<(TcpStream, Bytes), Upgraded> {
    let upgraded = match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => return Ok((parts.io.into_inner(), parts.read_buf)),
        Err(u) => u,
    };
    let parts = upgraded.downcast::<TokioIo<Prefixed<TcpStream>>>()?;
    let (io, rest) = parts.io.into_inner().into_parts();
    let read_buf = parts.read_buf;
    if rest.is_empty() {
        return Ok((io, read_buf));
    }
    // hyper read only part of the prefix: its buffer comes first.
    let mut early = BytesMut::with_capacity(read_buf.len() + rest.len());
    early.extend_from_slice(&read_buf);
    early.extend_from_slice(&rest);
    Ok((io, early.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn reads_the_prefix_then_the_socket() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut p = Prefixed::new(Bytes::from_static(b"head"), a);
        b.write_all(b"-tail").await.unwrap();
        drop(b);
        let mut small = [0u8; 3];
        p.read_exact(&mut small).await.unwrap();
        assert_eq!(&small, b"hea");
        let mut rest = Vec::new();
        p.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"d-tail");
        let (_, left) = p.into_parts();
        assert!(left.is_empty());
    }

    #[tokio::test]
    async fn one_request_gives_its_bytes_and_keeps_the_rest() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut p = Prefixed::one_request(Bytes::from_static(b"HEAD+b"), 3, BytesMut::new(), a);
        b.write_all(b"odyNEXT").await.unwrap();
        let mut got = [0u8; 9];
        p.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"HEAD+body");
        // The next request's bytes are kept, not given.
        let mut more = [0u8; 4];
        let r = tokio::time::timeout(std::time::Duration::from_millis(50), p.read(&mut more)).await;
        assert!(r.is_err(), "read past the request");
        drop(b);
        // The end of the stream is given.
        assert_eq!(p.read(&mut more).await.unwrap(), 0);
        let parts = p.into_one_request_parts();
        assert!(parts.unread.is_empty());
        assert_eq!(parts.body_left, 0);
        assert_eq!(&parts.ahead[..], b"NEXT");
    }

    #[tokio::test]
    async fn writes_go_to_the_socket() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut p = Prefixed::new(Bytes::from_static(b"unread"), a);
        p.write_all(b"out").await.unwrap();
        let mut got = [0u8; 3];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"out");
        assert_eq!(p.into_parts().1, Bytes::from_static(b"unread"));
    }
}
