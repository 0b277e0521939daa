//! Incremental UTF-8 validation for text messages that arrive in fragments or
//! partial frames. Fails as soon as a sequence is definitely invalid, even if
//! it is still incomplete; uses `simdutf8` for the bulk of the input.

use std::fmt;

/// Invalid UTF-8 was found (or the input ended inside a sequence).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utf8Error;

impl fmt::Display for Utf8Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid UTF-8")
    }
}

impl std::error::Error for Utf8Error {}

/// Validates a whole message. Short ASCII text, what most chat and
/// notification messages are, takes a word-at-a-time check
/// ([`<[u8]>::is_ascii`]); `simdutf8` hands inputs under 64 bytes to the
/// standard library's byte-oriented validator, which cost 2 % of the
/// server's CPU in a 32-byte echo. Everything else goes to `simdutf8`.
#[inline]
pub fn validate(bytes: &[u8]) -> Result<&str, Utf8Error> {
    if bytes.len() < 64 && bytes.is_ascii() {
        // SAFETY: ASCII is valid UTF-8.
        return Ok(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    simdutf8::basic::from_utf8(bytes).map_err(|_| Utf8Error)
}

/// Streaming UTF-8 validator.
///
/// ```
/// use switchboard_websocket::Utf8Validator;
/// let mut v = Utf8Validator::new();
/// v.feed(&[0xE2, 0x82]).unwrap(); // first two bytes of '€'
/// v.feed(&[0xAC]).unwrap();
/// v.finish().unwrap();
///
/// let mut v = Utf8Validator::new();
/// assert!(v.feed(&[0xF4, 0x90]).is_err()); // > U+10FFFF, known invalid already
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Utf8Validator {
    partial: [u8; 4],
    partial_len: u8,
}

/// Sequence length implied by a (valid) lead byte.
#[inline]
fn seq_len(lead: u8) -> usize {
    match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

impl Utf8Validator {
    /// A validator in the initial state.
    #[inline]
    pub const fn new() -> Self {
        Utf8Validator {
            partial: [0; 4],
            partial_len: 0,
        }
    }

    /// Whether an incomplete sequence is pending.
    #[inline]
    pub fn is_incomplete(&self) -> bool {
        self.partial_len != 0
    }

    /// Resets to the initial state.
    #[inline]
    pub fn reset(&mut self) {
        self.partial_len = 0;
    }

    /// Validates the next chunk of input.
    ///
    /// Fails as soon as the input seen so far cannot be a prefix of valid
    /// UTF-8. After an error the validator state is unspecified; `reset` it.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), Utf8Error> {
        if self.partial_len > 0 {
            let have = self.partial_len as usize;
            let need = seq_len(self.partial[0]) - have;
            let take = need.min(data.len());
            let mut tmp = self.partial;
            tmp[have..have + take].copy_from_slice(&data[..take]);
            let n = have + take;
            match std::str::from_utf8(&tmp[..n]) {
                Ok(_) => {
                    self.partial_len = 0;
                    data = &data[take..];
                }
                Err(e) if e.error_len().is_none() => {
                    // Still a valid, incomplete prefix (take < need).
                    self.partial = tmp;
                    self.partial_len = n as u8;
                    return Ok(());
                }
                Err(_) => return Err(Utf8Error),
            }
        }
        if data.is_empty() {
            return Ok(());
        }
        match simdutf8::compat::from_utf8(data) {
            Ok(_) => Ok(()),
            Err(e) => match e.error_len() {
                Some(_) => Err(Utf8Error),
                None => {
                    let tail = &data[e.valid_up_to()..];
                    debug_assert!(!tail.is_empty() && tail.len() < 4);
                    self.partial[..tail.len()].copy_from_slice(tail);
                    self.partial_len = tail.len() as u8;
                    Ok(())
                }
            },
        }
    }

    /// Ends the input: fails if an incomplete sequence is pending. Resets the
    /// validator either way.
    #[inline]
    pub fn finish(&mut self) -> Result<(), Utf8Error> {
        let incomplete = self.partial_len != 0;
        self.partial_len = 0;
        if incomplete {
            Err(Utf8Error)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ASCII shortcut and the general path agree with the standard
    /// library on both sides of the 64-byte line.
    #[test]
    fn whole_message_validation_matches_std() {
        let mut cases: Vec<Vec<u8>> = Vec::new();
        for len in [0usize, 1, 7, 8, 31, 32, 63, 64, 65, 200] {
            cases.push(vec![b'a'; len]);
            for at in [0, len / 2, len.saturating_sub(1)] {
                if len == 0 {
                    continue;
                }
                for bad in [0x80u8, 0xff, 0xc3] {
                    let mut v = vec![b'a'; len];
                    v[at] = bad;
                    cases.push(v);
                }
                let mut v = vec![b'a'; len.max(2)];
                v[at.min(len.max(2) - 2)..][..2].copy_from_slice("é".as_bytes());
                cases.push(v);
            }
        }
        for c in cases {
            assert_eq!(
                validate(&c).ok(),
                std::str::from_utf8(&c).ok(),
                "{c:?}"
            );
        }
    }

    fn check_all_splits(bytes: &[u8]) {
        let expected = std::str::from_utf8(bytes).is_ok();
        // Whole.
        let mut v = Utf8Validator::new();
        let whole = v.feed(bytes).and_then(|_| v.finish()).is_ok();
        assert_eq!(whole, expected, "{bytes:x?}");
        // Every 2-way and byte-by-byte split.
        for i in 0..=bytes.len() {
            let mut v = Utf8Validator::new();
            let r = v
                .feed(&bytes[..i])
                .and_then(|_| v.feed(&bytes[i..]))
                .and_then(|_| v.finish());
            assert_eq!(r.is_ok(), expected, "{bytes:x?} split {i}");
        }
        let mut v = Utf8Validator::new();
        let r = bytes
            .iter()
            .try_for_each(|b| v.feed(std::slice::from_ref(b)))
            .and_then(|_| v.finish());
        assert_eq!(r.is_ok(), expected, "{bytes:x?} bytewise");
    }

    #[test]
    fn valid_and_invalid_sequences() {
        let cases: &[&[u8]] = &[
            b"",
            b"hello",
            "κόσμε".as_bytes(),
            "€𝄞 mixed ascii and ü".as_bytes(),
            &[0xF4, 0x8F, 0xBF, 0xBF], // U+10FFFF
            &[0xF4, 0x90, 0x80, 0x80], // > U+10FFFF
            &[0xED, 0xA0, 0x80],       // surrogate
            &[0xC0, 0x80],             // overlong
            &[0xE0, 0x80, 0x80],       // overlong
            &[0xF0, 0x80, 0x80, 0x80], // overlong
            &[0xF8, 0x88, 0x80, 0x80, 0x80],
            &[0x80],
            &[0xCE, 0xBA, 0xE1],       // truncated at end
            &[0xCE, 0xBA, 0xE1, 0xBD], // truncated at end
            &[0xE1, 0xBD, 0xB9, 0xCF], // truncated
            &[0xEF, 0xBF, 0xBF],       // U+FFFF is valid
            &[0x61, 0xFF, 0x62],
        ];
        for c in cases {
            check_all_splits(c);
        }
        // A long valid text with multi-byte chars at all alignments.
        let s = "aé€𝄞".repeat(40);
        check_all_splits(s.as_bytes());
    }

    #[test]
    fn fails_fast_on_incomplete_invalid_prefix() {
        for bad in [
            &[0xF4u8, 0x90][..],
            &[0xED, 0xA0],
            &[0xE0, 0x80],
            &[0xF0, 0x80],
            &[0xC1],
        ] {
            let mut v = Utf8Validator::new();
            assert_eq!(v.feed(bad), Err(Utf8Error), "{bad:x?}");
            // Also when the lead byte arrived in an earlier chunk.
            if bad.len() == 2 {
                let mut v = Utf8Validator::new();
                assert_eq!(v.feed(&bad[..1]), Ok(()));
                assert_eq!(v.feed(&bad[1..]), Err(Utf8Error), "{bad:x?}");
                let mut v = Utf8Validator::new();
                let mut data = b"abc".to_vec();
                data.extend_from_slice(bad);
                assert_eq!(v.feed(&data), Err(Utf8Error));
            }
        }
        // Valid prefixes are accepted but fail at finish.
        let mut v = Utf8Validator::new();
        v.feed(&[0xF4, 0x8F]).unwrap();
        assert!(v.is_incomplete());
        assert_eq!(v.finish(), Err(Utf8Error));
        assert!(!v.is_incomplete());
    }
}
