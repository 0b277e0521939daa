//! Per-thread reuse of large output buffers.
//!
//! A connection's output is freed once written, so that an idle connection
//! holds none. A busy one would then allocate, grow (copying what it holds)
//! and free a large buffer for every flush: in a 4 KiB echo the allocator's
//! large-size path and the copies of growth took 6 % of the server's CPU.
//! Instead, output that outgrows [`SMALL`] moves into a buffer kept here,
//! and buffers of [`KEEP_MIN`]..=[`KEEP_MAX`] bytes come back once written
//! ([`recycle`], from [`drop_written`](crate::connection::drop_written))
//! when nobody else holds them. At most [`MAX_KEPT`] per thread are kept:
//! 1 MiB per thread at the very most, usually a few × 64 KiB.

use bytes::{Bytes, BytesMut};
use std::cell::RefCell;

/// Output up to this size is allocated as before and never takes a kept buffer.
pub const SMALL: usize = 4 * 1024;
/// Smallest capacity worth keeping.
pub const KEEP_MIN: usize = 32 * 1024;
/// Largest capacity kept (a larger one goes back to the allocator).
pub const KEEP_MAX: usize = 256 * 1024;
/// Buffers kept per thread.
pub const MAX_KEPT: usize = 4;

/// First allocation of an output buffer.
const MIN_ALLOC: usize = 1024;

thread_local! {
    static KEPT: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// Makes room in `buf` for `n` more bytes: a first allocation of at least
/// 1 KiB, or, once the output outgrows [`SMALL`], a kept buffer large
/// enough when there is one (what `buf` holds is copied over once).
#[inline]
pub fn reserve(buf: &mut BytesMut, n: usize) {
    if buf.capacity() - buf.len() >= n {
        return;
    }
    let need = buf.len() + n;
    if need > SMALL {
        if let Some(mut kept) = take(need) {
            kept.extend_from_slice(buf);
            *buf = kept;
            return;
        }
    }
    buf.reserve(n.max(MIN_ALLOC));
}

/// A kept buffer with room for `need` bytes, if the most recently kept one has it.
fn take(need: usize) -> Option<BytesMut> {
    KEPT.with(|k| {
        let mut k = k.borrow_mut();
        match k.last() {
            Some(b) if b.capacity() >= need => k.pop(),
            _ => None,
        }
    })
}

/// Drops a written chunk, keeping its buffer for the next large output when
/// it is large, no longer shared, and there is room.
#[inline]
pub fn recycle(chunk: Bytes) {
    if chunk.len() < SMALL {
        return;
    }
    let Ok(mut buf) = chunk.try_into_mut() else {
        return;
    };
    if !(KEEP_MIN..=KEEP_MAX).contains(&buf.capacity()) {
        return;
    }
    buf.clear();
    KEPT.with(|k| {
        let mut k = k.borrow_mut();
        if k.len() < MAX_KEPT {
            k.push(buf);
        }
    });
}

/// Buffers kept on this thread.
#[cfg(test)]
pub(crate) fn kept() -> usize {
    KEPT.with(|k| k.borrow().len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clear_kept() {
        KEPT.with(|k| k.borrow_mut().clear());
    }

    #[test]
    fn large_written_output_is_reused_and_small_output_never_takes_it() {
        clear_kept();
        let mut big = BytesMut::new();
        reserve(&mut big, 40 * 1024);
        big.extend_from_slice(&[7u8; 40 * 1024]);
        let ptr = big.as_ptr();
        recycle(big.freeze());
        assert_eq!(kept(), 1);

        // A small output allocates on its own.
        let mut small = BytesMut::new();
        reserve(&mut small, 100);
        assert_ne!(small.as_ptr(), ptr);
        assert_eq!(kept(), 1);

        // Output that outgrows SMALL moves into the kept buffer, keeping
        // what it held.
        small.extend_from_slice(b"head");
        reserve(&mut small, SMALL);
        assert_eq!(small.as_ptr(), ptr);
        assert_eq!(&small[..], b"head");
        assert_eq!(kept(), 0);
    }

    #[test]
    fn shared_small_oversized_or_surplus_chunks_are_not_kept() {
        clear_kept();
        let shared = Bytes::from(vec![1u8; 40 * 1024]);
        let other = shared.clone();
        recycle(shared);
        assert_eq!(kept(), 0, "still shared");
        drop(other);

        recycle(Bytes::from(vec![1u8; 1024]));
        recycle(Bytes::from(vec![1u8; 8 * 1024]));
        recycle(Bytes::from(vec![1u8; KEEP_MAX + 1]));
        assert_eq!(kept(), 0, "too small or too large");

        for _ in 0..MAX_KEPT + 2 {
            recycle(Bytes::from(vec![1u8; 64 * 1024]));
        }
        assert_eq!(kept(), MAX_KEPT);
        clear_kept();
    }

    #[test]
    fn a_kept_buffer_too_small_for_the_output_is_left() {
        clear_kept();
        recycle(Bytes::from(vec![1u8; 40 * 1024]));
        let mut buf = BytesMut::new();
        reserve(&mut buf, 100 * 1024);
        assert!(buf.capacity() >= 100 * 1024);
        assert_eq!(kept(), 1);
        clear_kept();
    }
}
