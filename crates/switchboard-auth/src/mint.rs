//! Minting tokens: HS256 with a shared secret and RS256 with a PEM private
//! key. For tests, the demo and a `switchboard token` command; a production
//! deployment's tokens normally come from its own identity provider.

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::DecodePrivateKey;
use rsa::RsaPrivateKey;

use crate::claims::Claims;
use crate::error::AuthError;

/// An HS256 token (`{"alg":"HS256","typ":"JWT"}`) carrying `claims`, signed
/// with `secret`. The authenticator only accepts secrets of 32 bytes or more;
/// this function signs with whatever it is given.
pub fn mint_hs256(secret: &[u8], claims: &Claims) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("HMAC accepts any key and Claims always serializes")
}

/// An RS256 token carrying `claims`, signed with a PEM RSA private key
/// (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`). Fails with
/// [`AuthError::Config`] when the key does not parse.
///
/// The `rsa` crate's private-key operations are not constant-time
/// (RUSTSEC-2023-0071): fine for a command-line tool or a test, not for a
/// service that signs tokens on request where an attacker can time it.
pub fn mint_rs256(private_key_pem: &str, claims: &Claims) -> Result<String, AuthError> {
    let key = RsaPrivateKey::from_pkcs8_pem(private_key_pem)
        .or_else(|_| RsaPrivateKey::from_pkcs1_pem(private_key_pem))
        .map_err(|_| AuthError::Config("RS256 private key: not a PEM RSA private key".into()))?;
    let der = key
        .to_pkcs1_der()
        .map_err(|_| AuthError::Config("RS256 private key: cannot be encoded".into()))?;
    encode(
        &Header::new(Algorithm::RS256),
        claims,
        &EncodingKey::from_rsa_der(der.as_bytes()),
    )
    .map_err(|_| AuthError::Config("RS256 private key: signing failed".into()))
}
