//! Per-thread pool of read buffers.
//!
//! A connection borrows a buffer only for the duration of one read and gives it
//! back before it waits again, so an idle connection holds no read buffer at all.

use std::cell::RefCell;

/// Size of each pooled read buffer.
pub const READ_BUFFER_SIZE: usize = 64 * 1024;
/// Buffers kept per thread; more than this are freed when returned.
const MAX_POOLED: usize = 8;

thread_local! {
    static POOL: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

/// A read buffer borrowed from the current thread's pool; returned on drop.
pub struct PooledBuffer {
    buf: Option<Box<[u8]>>,
}

impl PooledBuffer {
    /// Takes a buffer from this thread's pool, allocating one if it is empty.
    pub fn take() -> Self {
        let buf = POOL
            .with(|p| p.borrow_mut().pop())
            .unwrap_or_else(|| vec![0u8; READ_BUFFER_SIZE].into_boxed_slice());
        PooledBuffer { buf: Some(buf) }
    }
}

/// Reads once from `io` into a pooled buffer and hands the bytes read to
/// `on_data` before the buffer goes back to the pool: `Ready(Ok(n))` with
/// `n == 0` at end of stream, `Pending` (waker registered, nothing held) when
/// the socket has nothing.
pub fn poll_read_pooled<IO: tokio::io::AsyncRead + Unpin>(
    io: &mut IO,
    cx: &mut std::task::Context<'_>,
    on_data: impl FnOnce(&mut [u8]),
) -> std::task::Poll<std::io::Result<usize>> {
    let mut buf = PooledBuffer::take();
    let mut rb = tokio::io::ReadBuf::new(&mut buf);
    match std::pin::Pin::new(io).poll_read(cx, &mut rb) {
        std::task::Poll::Pending => std::task::Poll::Pending,
        std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Err(e)),
        std::task::Poll::Ready(Ok(())) => {
            let n = rb.filled().len();
            if n > 0 {
                on_data(&mut buf[..n]);
            }
            std::task::Poll::Ready(Ok(n))
        }
    }
}

impl std::ops::Deref for PooledBuffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.buf.as_deref().expect("buffer present until drop")
    }
}

impl std::ops::DerefMut for PooledBuffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.buf.as_deref_mut().expect("buffer present until drop")
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            POOL.with(|p| {
                let mut p = p.borrow_mut();
                if p.len() < MAX_POOLED {
                    p.push(buf);
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_on_the_same_thread() {
        let ptr = {
            let b = PooledBuffer::take();
            b.as_ptr()
        };
        let b = PooledBuffer::take();
        assert_eq!(b.as_ptr(), ptr);
        assert_eq!(b.len(), READ_BUFFER_SIZE);
    }
}
