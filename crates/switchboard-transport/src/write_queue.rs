//! Output waiting for a socket: encoded chunks in order, written with as few
//! (vectored) writes as the socket allows, and no buffer held once empty.
//!
//! Every driver flushes through this, so "everything produced between two
//! flushes leaves in one write" is implemented once.

use bytes::Bytes;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use switchboard_websocket::connection::drop_written;
use switchboard_websocket::Writer;
use tokio::io::AsyncWrite;

/// Chunks handed to one vectored write.
const MAX_IOSLICES: usize = 64;

/// One write of `chunks` (non-empty), vectored when there are several and
/// the socket takes that: the bytes written (a zero-length write is an
/// error). The caller drops them (e.g. [`Writer::consume`]).
pub fn poll_write_chunks<IO: AsyncWrite + Unpin>(
    io: &mut IO,
    cx: &mut Context<'_>,
    chunks: &[Bytes],
) -> Poll<io::Result<usize>> {
    let result = if chunks.len() == 1 || !io.is_write_vectored() {
        Pin::new(&mut *io).poll_write(cx, &chunks[0])
    } else {
        let mut slices = [IoSlice::new(&[]); MAX_IOSLICES];
        let n = chunks.len().min(MAX_IOSLICES);
        for (s, b) in slices.iter_mut().zip(&chunks[..n]) {
            *s = IoSlice::new(b);
        }
        Pin::new(&mut *io).poll_write_vectored(cx, &slices[..n])
    };
    match ready!(result) {
        Ok(0) => Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
        other => Poll::Ready(other),
    }
}

/// Bytes produced for a socket but not yet accepted by it.
#[derive(Default)]
pub struct WriteQueue {
    chunks: Vec<Bytes>,
    /// The first chunk was partly written: it cannot be discarded.
    front_partial: bool,
}

impl WriteQueue {
    /// An empty queue (no allocation).
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the WebSocket core's pending output to the back of the queue.
    pub fn take_from(&mut self, writer: &mut Writer) {
        if writer.has_output() {
            writer.take_output(&mut self.chunks);
        }
    }

    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Drops every chunk the peer has not started to receive (a chunk holds
    /// whole frames, so no frame is cut), e.g. before a slow consumer's close.
    pub fn discard_unstarted(&mut self) {
        self.chunks.truncate(usize::from(self.front_partial));
    }

    /// Writes until the queue is empty (`Ready(Ok)`), the socket would block
    /// (`Pending`, waker registered) or fails (`Ready(Err)`; a zero-length
    /// write counts as failure).
    pub fn poll_write_to<IO: AsyncWrite + Unpin>(
        &mut self,
        io: &mut IO,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while !self.chunks.is_empty() {
            let n = ready!(poll_write_chunks(io, cx, &self.chunks))?;
            // A write (never empty) ending on a chunk's boundary leaves
            // none written in part at the front.
            self.front_partial = drop_written(&mut self.chunks, n);
        }
        // Free the chunk list of a connection going idle.
        self.chunks = Vec::new();
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    /// Accepts at most `cap` bytes per write, records them.
    struct Trickle {
        cap: usize,
        got: Vec<u8>,
        writes: usize,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.cap);
            self.got.extend_from_slice(&buf[..n]);
            self.writes += 1;
            Poll::Ready(Ok(n))
        }
        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let mut left = self.cap;
            let mut n = 0;
            for b in bufs {
                let k = b.len().min(left);
                self.got.extend_from_slice(&b[..k]);
                left -= k;
                n += k;
            }
            self.writes += 1;
            Poll::Ready(Ok(n))
        }
        fn is_write_vectored(&self) -> bool {
            true
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn chunks_leave_in_order_in_few_writes() {
        let mut q = WriteQueue::new();
        q.chunks = (0..10u8).map(|i| Bytes::from(vec![i; 3])).collect();
        let mut io = Trickle {
            cap: usize::MAX,
            got: Vec::new(),
            writes: 0,
        };
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(
            q.poll_write_to(&mut io, &mut cx),
            Poll::Ready(Ok(()))
        ));
        assert_eq!(io.writes, 1, "one vectored write");
        assert_eq!(io.got, (0..10u8).flat_map(|i| [i; 3]).collect::<Vec<_>>());
        assert_eq!(q.chunks.capacity(), 0, "no buffer kept once empty");
    }

    #[test]
    fn partial_writes_resume_and_keep_the_started_chunk() {
        let mut q = WriteQueue::new();
        q.chunks = vec![
            Bytes::from_static(b"abcd"),
            Bytes::from_static(b"efgh"),
            Bytes::from_static(b"ijkl"),
        ];
        let mut io = Trickle {
            cap: 6,
            got: Vec::new(),
            writes: 0,
        };
        let mut cx = Context::from_waker(Waker::noop());
        // Emulate a socket that blocks after one write: do the first write by hand.
        let first = Pin::new(&mut io).poll_write_vectored(
            &mut cx,
            &[IoSlice::new(&q.chunks[0]), IoSlice::new(&q.chunks[1])],
        );
        assert!(matches!(first, Poll::Ready(Ok(6))));
        q.chunks.remove(0);
        bytes::Buf::advance(&mut q.chunks[0], 2);
        q.front_partial = true;
        q.discard_unstarted();
        assert_eq!(q.chunks, vec![Bytes::from_static(b"gh")]);
        assert!(matches!(
            q.poll_write_to(&mut io, &mut cx),
            Poll::Ready(Ok(()))
        ));
        assert_eq!(io.got, b"abcdefgh");
    }
}
