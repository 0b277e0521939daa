//! [`AuthError`]: why a connection, a token or the `[auth]` configuration
//! was refused. Every variant has a short message that is safe to send to a
//! client; none ever carries a token, a secret or a key.

use std::error::Error;
use std::fmt;

/// Why authentication failed (or, for [`AuthError::Config`], why the `[auth]`
/// configuration is unusable).
///
/// [`reason`](AuthError::reason) is the text to put in a close reason,
/// CONNECT_ERROR, STOMP ERROR frame or HTTP body. It deliberately says no
/// more than that (e.g. not which key was tried).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthError {
    /// No token was presented and anonymous connections are off.
    TokenRequired,
    /// A token was presented but the server has no JWT key configured.
    TokensNotAccepted,
    /// The token is longer than [`MAX_TOKEN_LEN`](crate::MAX_TOKEN_LEN).
    TokenTooLong,
    /// Not a JWS compact token: not three base64url parts, header or
    /// payload not JSON, a claim of the wrong type, a `crit` header.
    Malformed,
    /// The header's `alg` is not one of the configured algorithms (this
    /// includes `none` and every algorithm but HS256 and RS256).
    AlgorithmNotAccepted,
    /// The signature does not verify with the configured key.
    InvalidSignature,
    /// `exp` has passed (beyond the leeway).
    Expired,
    /// `nbf` is still in the future (beyond the leeway).
    NotYetValid,
    /// No `exp` claim while `require_exp` is on.
    MissingExpiry,
    /// `iss` is missing or not the configured issuer.
    WrongIssuer,
    /// `aud` is missing or does not contain the configured audience, or the
    /// token names an audience while none is configured (RFC 7519 §4.1.3).
    WrongAudience,
    /// The `name` claim is not 1–64 printable characters.
    InvalidName,
    /// The `sub` claim is not 1–64 printable characters.
    InvalidSubject,
    /// The token has neither a `name` nor a `sub` claim.
    MissingName,
    /// The `subscribe` or `publish` claim is not a list of topic globs.
    InvalidTopicClaim,
    /// The `[auth]` configuration (or a key given to a minting function) is
    /// unusable; the text says which setting and why, never its value.
    Config(String),
}

impl AuthError {
    /// A short message, safe to show to the client.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::TokenRequired => "token required",
            AuthError::TokensNotAccepted => "token authentication not configured",
            AuthError::TokenTooLong => "token too long",
            AuthError::Malformed => "malformed token",
            AuthError::AlgorithmNotAccepted => "token algorithm not accepted",
            AuthError::InvalidSignature => "invalid token signature",
            AuthError::Expired => "token expired",
            AuthError::NotYetValid => "token not yet valid",
            AuthError::MissingExpiry => "token has no expiry",
            AuthError::WrongIssuer => "wrong issuer",
            AuthError::WrongAudience => "wrong audience",
            AuthError::InvalidName => "invalid name claim",
            AuthError::InvalidSubject => "invalid sub claim",
            AuthError::MissingName => "token has no name or sub claim",
            AuthError::InvalidTopicClaim => "invalid subscribe or publish claim",
            AuthError::Config(_) => "invalid auth configuration",
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Config(detail) => write!(f, "invalid [auth] configuration: {detail}"),
            other => f.write_str(other.reason()),
        }
    }
}

impl Error for AuthError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_the_reason_except_for_config() {
        assert_eq!(AuthError::Expired.to_string(), "token expired");
        assert_eq!(
            AuthError::Config("api_keys: a key is empty".into()).to_string(),
            "invalid [auth] configuration: api_keys: a key is empty"
        );
        assert_eq!(
            AuthError::Config("x".into()).reason(),
            "invalid auth configuration"
        );
    }
}
