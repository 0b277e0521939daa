//! [`Authenticator`]: the checked form of [`AuthConfig`] and the token rules,
//! in order: presence, size, algorithm (exactly the configured ones), the
//! signature, then `exp`/`nbf`, `iss`, `aud`, `sub`/`name` and the topic
//! claims. Signature verification itself is `jsonwebtoken`'s.

use std::fmt;
use std::fs;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use rsa::RsaPublicKey;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::api_key::ApiKeys;
use crate::claims::Payload;
use crate::config::AuthConfig;
use crate::error::AuthError;
use crate::identity::{valid_name, Identity};

/// The longest token accepted, in bytes. Longer ones are refused before any
/// decoding ([`AuthError::TokenTooLong`]).
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// RFC 7518 §3.2: an HS256 key must be at least as long as the hash output.
const MIN_HS256_SECRET_LEN: usize = 32;
/// The smallest RSA modulus accepted for RS256 (RFC 7518 §3.3).
const MIN_RSA_BITS: usize = 2048;

/// One accepted algorithm with its key and the `jsonwebtoken` settings that
/// accept exactly that algorithm and leave the claims to us.
#[derive(Clone)]
struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

impl Verifier {
    fn new(alg: Algorithm, key: DecodingKey) -> Verifier {
        let mut validation = Validation::new(alg);
        // Time, issuer and audience are checked in `check_claims` with the
        // caller's clock; jsonwebtoken only checks the algorithm and signature.
        validation.algorithms = vec![alg];
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        Verifier { key, validation }
    }
}

/// Checks connection tokens and API keys. Build one at start-up with
/// [`Authenticator::new`] and share it (it is `Send + Sync`; wrap it in an
/// `Arc` or clone it).
#[derive(Clone)]
pub struct Authenticator {
    anonymous: bool,
    hs256: Option<Verifier>,
    rs256: Option<Verifier>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: u64,
    require_exp: bool,
    api_keys: ApiKeys,
}

/// The part of the JOSE header we look at before verifying.
#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    /// RFC 7515 §4.1.11: we understand no extension, so any `crit` is refused.
    #[serde(default)]
    crit: Option<Value>,
}

impl Authenticator {
    /// Checks `config` and prepares the keys. Fails with [`AuthError::Config`]
    /// when the HS256 secret is empty, shorter than 32 bytes or looks like a
    /// PEM key; when the RSA public key is set twice, cannot be read, is not
    /// a PEM RSA public key or has fewer than 2048 bits; when `issuer` or
    /// `audience` is empty; when an API key is too short or not visible
    /// ASCII; and when `anonymous` is off with no JWT key to check tokens.
    pub fn new(config: &AuthConfig) -> Result<Authenticator, AuthError> {
        let hs256 = config
            .jwt_hs256_secret
            .as_deref()
            .map(hs256_key)
            .transpose()?
            .map(|key| Verifier::new(Algorithm::HS256, key));

        let pem = match (
            &config.jwt_rs256_public_key,
            &config.jwt_rs256_public_key_file,
        ) {
            (Some(_), Some(_)) => {
                return Err(AuthError::Config(
                    "set only one of jwt_rs256_public_key and jwt_rs256_public_key_file".into(),
                ))
            }
            (Some(pem), None) => Some(pem.clone()),
            (None, Some(path)) => Some(fs::read_to_string(path).map_err(|e| {
                AuthError::Config(format!("jwt_rs256_public_key_file {}: {e}", path.display()))
            })?),
            (None, None) => None,
        };
        let rs256 = pem
            .as_deref()
            .map(rs256_key)
            .transpose()?
            .map(|key| Verifier::new(Algorithm::RS256, key));

        if !config.anonymous && hs256.is_none() && rs256.is_none() {
            return Err(AuthError::Config(
                "anonymous = false needs jwt_hs256_secret or an RS256 public key to check tokens"
                    .into(),
            ));
        }
        for (field, value) in [("issuer", &config.issuer), ("audience", &config.audience)] {
            if value.as_deref().is_some_and(str::is_empty) {
                return Err(AuthError::Config(format!("{field}: empty")));
            }
        }

        Ok(Authenticator {
            anonymous: config.anonymous,
            hs256,
            rs256,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            leeway: config.leeway_secs,
            require_exp: config.require_exp,
            api_keys: ApiKeys::new(&config.api_keys)?,
        })
    }

    /// Whether connections without a token are accepted.
    pub fn anonymous_allowed(&self) -> bool {
        self.anonymous
    }

    /// Whether any JWT key is configured (otherwise every token is refused).
    pub fn accepts_tokens(&self) -> bool {
        self.hs256.is_some() || self.rs256.is_some()
    }

    /// Authenticates a connection by its token (`None`, empty or blank: no
    /// token) at the current system time. See [`authenticate_at`](Self::authenticate_at).
    pub fn authenticate(&self, token: Option<&str>) -> Result<Identity, AuthError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.authenticate_at(token, now)
    }

    /// Authenticates a connection by its token at `now` (unix seconds).
    ///
    /// No token gives [`Identity::anonymous`] when anonymous connections are
    /// allowed, else [`AuthError::TokenRequired`]. A token that is presented
    /// must be valid even when anonymous connections are allowed: a bad token
    /// is never downgraded to anonymous.
    pub fn authenticate_at(&self, token: Option<&str>, now: u64) -> Result<Identity, AuthError> {
        let token = match token.map(str::trim) {
            None | Some("") if self.anonymous => return Ok(Identity::anonymous()),
            None | Some("") => return Err(AuthError::TokenRequired),
            Some(token) => token,
        };
        if !self.accepts_tokens() {
            return Err(AuthError::TokensNotAccepted);
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::TokenTooLong);
        }
        let verifier = self.verifier_for(token)?;
        let data = decode::<Map<String, Value>>(token, &verifier.key, &verifier.validation)
            .map_err(jwt_error)?;
        self.check_claims(&Payload(data.claims), now)
    }

    /// Picks the verifier by the header's `alg`, before any signature work:
    /// exactly the configured algorithms, never `none`, never one family's
    /// token against the other family's key.
    fn verifier_for(&self, token: &str) -> Result<&Verifier, AuthError> {
        let mut parts = token.split('.');
        let (Some(header), Some(_payload), Some(_signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed);
        };
        let base64url = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        if !token.bytes().all(|b| b == b'.' || base64url(b)) {
            return Err(AuthError::Malformed);
        }
        let header = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| AuthError::Malformed)?;
        let header: JoseHeader =
            serde_json::from_slice(&header).map_err(|_| AuthError::Malformed)?;
        if header.crit.is_some() {
            return Err(AuthError::Malformed);
        }
        let verifier = match header.alg.as_str() {
            "HS256" => self.hs256.as_ref(),
            "RS256" => self.rs256.as_ref(),
            _ => None,
        };
        verifier.ok_or(AuthError::AlgorithmNotAccepted)
    }

    /// The claim rules, on a payload whose signature has been verified.
    fn check_claims(&self, p: &Payload, now: u64) -> Result<Identity, AuthError> {
        let exp = p.date("exp")?;
        let nbf = p.date("nbf")?;
        match exp {
            None if self.require_exp => return Err(AuthError::MissingExpiry),
            // RFC 7519 §4.1.4: not accepted on or after `exp`.
            Some(exp) if now >= exp.saturating_add(self.leeway) => return Err(AuthError::Expired),
            _ => {}
        }
        if nbf.is_some_and(|nbf| now.saturating_add(self.leeway) < nbf) {
            return Err(AuthError::NotYetValid);
        }

        if let Some(issuer) = &self.issuer {
            if p.string("iss", AuthError::WrongIssuer)? != Some(issuer.as_str()) {
                return Err(AuthError::WrongIssuer);
            }
        }
        let aud = p.strings("aud", AuthError::WrongAudience)?;
        let aud_ok = match (&self.audience, &aud) {
            (Some(want), Some(aud)) => aud.contains(want),
            (Some(_), None) => false,
            // RFC 7519 §4.1.3: a token for a named audience is not for us.
            (None, Some(aud)) => aud.is_empty(),
            (None, None) => true,
        };
        if !aud_ok {
            return Err(AuthError::WrongAudience);
        }

        let sub = p.string("sub", AuthError::InvalidSubject)?;
        if sub.is_some_and(|s| !valid_name(s)) {
            return Err(AuthError::InvalidSubject);
        }
        let name = p.string("name", AuthError::InvalidName)?;
        if name.is_some_and(|n| !valid_name(n)) {
            return Err(AuthError::InvalidName);
        }
        let display = name.or(sub).ok_or(AuthError::MissingName)?;

        Ok(Identity {
            name: Arc::from(display),
            subject: sub.map(Arc::from),
            expires_at: exp,
            anonymous: false,
            subscribe: p.strings("subscribe", AuthError::InvalidTopicClaim)?,
            publish: p.strings("publish", AuthError::InvalidTopicClaim)?,
        })
    }

    /// Whether `presented` is one of the configured API keys. Compares
    /// SHA-256 digests in constant time against every configured key, so
    /// neither which key nor how much of it matched shows in the timing.
    /// Always `false` when no key is configured.
    pub fn check_api_key(&self, presented: &str) -> bool {
        self.api_keys.check(presented)
    }

    /// Whether any API key is configured (if not, the HTTP API is closed or
    /// open by the server's choice, not by this crate's).
    pub fn api_keys_configured(&self) -> bool {
        !self.api_keys.is_empty()
    }
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("anonymous", &self.anonymous)
            .field("hs256", &self.hs256.is_some())
            .field("rs256", &self.rs256.is_some())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .field("require_exp", &self.require_exp)
            .field("api_keys", &self.api_keys_configured())
            .finish()
    }
}

fn hs256_key(secret: &str) -> Result<DecodingKey, AuthError> {
    if secret.is_empty() {
        return Err(AuthError::Config("jwt_hs256_secret: empty".into()));
    }
    if secret.len() < MIN_HS256_SECRET_LEN {
        return Err(AuthError::Config(format!(
            "jwt_hs256_secret: shorter than {MIN_HS256_SECRET_LEN} bytes (RFC 7518 §3.2)"
        )));
    }
    // A public key used as an HMAC secret is the classic algorithm confusion:
    // anyone holding the public key could mint tokens.
    if secret.contains("-----BEGIN") {
        return Err(AuthError::Config(
            "jwt_hs256_secret: looks like a PEM key; an RSA public key goes in jwt_rs256_public_key"
                .into(),
        ));
    }
    Ok(DecodingKey::from_secret(secret.as_bytes()))
}

fn rs256_key(pem: &str) -> Result<DecodingKey, AuthError> {
    let pem = pem.trim();
    let key = RsaPublicKey::from_public_key_pem(pem)
        .or_else(|_| RsaPublicKey::from_pkcs1_pem(pem))
        .map_err(|_| {
            AuthError::Config(
                "RS256 public key: not a PEM RSA public key (`PUBLIC KEY` or `RSA PUBLIC KEY`)"
                    .into(),
            )
        })?;
    let bits = key.n().bits();
    if bits < MIN_RSA_BITS {
        return Err(AuthError::Config(format!(
            "RS256 public key: {bits} bits, at least {MIN_RSA_BITS} needed"
        )));
    }
    Ok(DecodingKey::from_rsa_raw_components(
        &key.n().to_bytes_be(),
        &key.e().to_bytes_be(),
    ))
}

/// What a `jsonwebtoken` failure means for the client. Claim validation is
/// off there, so only shape, algorithm and signature errors remain; anything
/// unexpected is a signature failure (refused either way).
fn jwt_error(e: jsonwebtoken::errors::Error) -> AuthError {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::InvalidToken | K::Base64(_) | K::Json(_) | K::Utf8(_) | K::InvalidClaimFormat(_) => {
            AuthError::Malformed
        }
        K::InvalidAlgorithm | K::InvalidAlgorithmName | K::MissingAlgorithm => {
            AuthError::AlgorithmNotAccepted
        }
        _ => AuthError::InvalidSignature,
    }
}
