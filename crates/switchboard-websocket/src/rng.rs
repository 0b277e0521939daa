//! A tiny, fast, non-cryptographic PRNG used for client masking keys and
//! `Sec-WebSocket-Key` nonces. Seeded once from std's `RandomState`.
//! (RFC 6455 only requires masking keys to be unpredictable to scripts.)

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::num::NonZeroU64;

/// The seed when the hash gives zero.
const FALLBACK_SEED: NonZeroU64 = match NonZeroU64::new(0x9E37_79B9_7F4A_7C15) {
    Some(s) => s,
    None => NonZeroU64::MIN,
};

/// xorshift64* generator. Its state is never zero (xorshift maps a non-zero
/// state to a non-zero state), which also makes `Option<FastRng>` 8 bytes.
#[derive(Debug, Clone)]
pub(crate) struct FastRng(NonZeroU64);

impl FastRng {
    /// Seeds a new generator from the process' hash randomness.
    pub(crate) fn from_entropy() -> Self {
        let mut h = RandomState::new().build_hasher();
        h.write_usize(&h as *const _ as usize);
        let seed = h.finish();
        FastRng(NonZeroU64::new(seed).unwrap_or(FALLBACK_SEED))
    }

    /// Next 64 random bits.
    #[inline]
    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = NonZeroU64::new(x).unwrap_or(NonZeroU64::MIN);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Next 4 random bytes (a masking key).
    #[inline]
    pub(crate) fn next_mask(&mut self) -> [u8; 4] {
        ((self.next_u64() >> 32) as u32).to_ne_bytes()
    }
}
