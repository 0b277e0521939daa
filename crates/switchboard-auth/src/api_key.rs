//! API keys for the backend HTTP API: checked at start-up, kept only as
//! SHA-256 digests, compared in constant time. Where the key travels
//! (header, query) is the server's business.

use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use crate::error::AuthError;

/// The fewest characters an API key may have.
pub(crate) const MIN_API_KEY_LEN: usize = 16;

/// The configured keys, as digests. Comparing digests rather than the keys
/// hides both the keys' lengths and where a presented key first differs.
#[derive(Clone, Default)]
pub(crate) struct ApiKeys {
    digests: Vec<[u8; 32]>,
}

impl ApiKeys {
    /// Checks and hashes the configured keys: each must be visible ASCII
    /// (it travels in an HTTP header) and at least [`MIN_API_KEY_LEN`] long.
    pub(crate) fn new(keys: &[String]) -> Result<ApiKeys, AuthError> {
        let mut digests = Vec::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            if key.len() < MIN_API_KEY_LEN {
                return Err(AuthError::Config(format!(
                    "api_keys[{i}]: shorter than {MIN_API_KEY_LEN} characters"
                )));
            }
            if !key.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(AuthError::Config(format!(
                    "api_keys[{i}]: only visible ASCII characters (no spaces) are allowed"
                )));
            }
            digests.push(digest(key));
        }
        Ok(ApiKeys { digests })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Whether `presented` is one of the keys. Every configured key is
    /// compared, in constant time, whatever matches.
    pub(crate) fn check(&self, presented: &str) -> bool {
        let presented = digest(presented);
        let mut found = Choice::from(0);
        for d in &self.digests {
            found |= d.ct_eq(&presented);
        }
        bool::from(found)
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_compares_every_key() {
        let keys =
            ApiKeys::new(&["0123456789abcdef".into(), "fedcba9876543210-second".into()]).unwrap();
        assert!(keys.check("0123456789abcdef"));
        assert!(keys.check("fedcba9876543210-second"));
        assert!(!keys.check("0123456789abcdeF"));
        assert!(!keys.check("0123456789abcde"));
        assert!(!keys.check("0123456789abcdef0"));
        assert!(!keys.check(""));
        assert!(!ApiKeys::default().check(""));
        assert!(!ApiKeys::default().check("0123456789abcdef"));
    }

    #[test]
    fn bad_keys_are_refused_without_echoing_them() {
        for bad in [
            "tiny-key",
            "0123456789 abcdef",
            "0123456789abcdef\n",
            "0123456789abcdéf",
        ] {
            let e = ApiKeys::new(&[bad.into()]).map(|_| ()).unwrap_err();
            assert!(matches!(e, AuthError::Config(_)), "{bad:?}");
            assert!(!e.to_string().contains(bad.trim()), "{e}");
        }
    }
}
