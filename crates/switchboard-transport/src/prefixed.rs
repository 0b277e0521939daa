//! A socket with bytes already read from it in front: what an accept loop
//! that reads a request head itself (to choose who serves it) hands to
//! hyper, and how an upgraded connection gets its plain [`TcpStream`] back
//! ([`upgraded_tcp`]).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// `io` whose reads give `prefix` first. Writes go straight to `io`.
#[derive(Debug)]
pub struct Prefixed<IO> {
    prefix: Bytes,
    io: IO,
}

impl<IO> Prefixed<IO> {
    /// `io` with `prefix` to be read before it.
    pub fn new(prefix: Bytes, io: IO) -> Self {
        Prefixed { prefix, io }
    }

    /// The socket and the part of the prefix not read yet.
    pub fn into_parts(self) -> (IO, Bytes) {
        (self.io, self.prefix)
    }

    /// The socket, for reads that bypass the prefix.
    pub fn get_mut(&mut self) -> &mut IO {
        &mut self.io
    }
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
        Pin::new(&mut self.io).poll_read(cx, buf)
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
