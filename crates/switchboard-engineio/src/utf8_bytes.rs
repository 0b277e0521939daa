//! [`Utf8Bytes`]: a cheaply clonable, reference-counted string — `Bytes`
//! that are known to hold valid UTF-8. Text payloads are sliced out of the
//! received buffers with it, without copying.

use std::fmt;
use std::ops::Deref;

use bytes::Bytes;

/// Immutable UTF-8 text backed by [`Bytes`]: cloning and slicing share the
/// buffer instead of copying it.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Utf8Bytes(Bytes);

impl Utf8Bytes {
    /// Wraps a static string without copying.
    pub const fn from_static(text: &'static str) -> Self {
        Utf8Bytes(Bytes::from_static(text.as_bytes()))
    }

    /// Validates `bytes` as UTF-8 and wraps them without copying.
    pub fn try_from_bytes(bytes: Bytes) -> Result<Self, std::str::Utf8Error> {
        std::str::from_utf8(&bytes)?;
        Ok(Utf8Bytes(bytes))
    }

    /// Wraps `bytes`, replacing invalid UTF-8 sequences with U+FFFD (as
    /// Node's `setEncoding("utf8")` does). Copies only when the input is
    /// not valid UTF-8.
    pub fn from_bytes_lossy(bytes: Bytes) -> Self {
        match std::str::from_utf8(&bytes) {
            Ok(_) => Utf8Bytes(bytes),
            Err(_) => Utf8Bytes::from(String::from_utf8_lossy(&bytes).into_owned()),
        }
    }

    /// Wraps bytes already known to be UTF-8.
    ///
    /// Only used inside the crate on sub-slices that start and end at
    /// ASCII boundaries of a validated buffer.
    pub(crate) fn from_utf8_slice_unchecked(bytes: Bytes) -> Self {
        debug_assert!(std::str::from_utf8(&bytes).is_ok());
        Utf8Bytes(bytes)
    }

    /// The text.
    #[inline]
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor guarantees the bytes are valid UTF-8 and
        // the buffer is immutable.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// The UTF-8 bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The underlying buffer.
    #[inline]
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// The text from byte `start` on, sharing the buffer.
    ///
    /// # Panics
    /// When `start` is not on a character boundary or is past the end.
    pub fn slice_from(&self, start: usize) -> Self {
        assert!(self.as_str().is_char_boundary(start));
        Utf8Bytes(self.0.slice(start..))
    }
}

impl Deref for Utf8Bytes {
    type Target = str;
    #[inline]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Utf8Bytes {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl From<String> for Utf8Bytes {
    fn from(text: String) -> Self {
        Utf8Bytes(Bytes::from(text))
    }
}

impl From<&str> for Utf8Bytes {
    fn from(text: &str) -> Self {
        Utf8Bytes(Bytes::copy_from_slice(text.as_bytes()))
    }
}

impl From<Utf8Bytes> for Bytes {
    fn from(text: Utf8Bytes) -> Self {
        text.0
    }
}

impl PartialEq<str> for Utf8Bytes {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Utf8Bytes {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_and_shares() {
        let bytes = Bytes::from_static("4héllo".as_bytes());
        let text = Utf8Bytes::try_from_bytes(bytes.clone()).unwrap();
        let tail = text.slice_from(1);
        assert_eq!(tail, "héllo");
        assert_eq!(tail.as_bytes().as_ptr(), bytes[1..].as_ptr());
        assert!(Utf8Bytes::try_from_bytes(Bytes::from_static(b"\xff")).is_err());
    }

    #[test]
    fn lossy_replaces_invalid_sequences() {
        let text = Utf8Bytes::from_bytes_lossy(Bytes::from_static(b"4a\xffb"));
        assert_eq!(text, "4a\u{fffd}b");
    }
}
