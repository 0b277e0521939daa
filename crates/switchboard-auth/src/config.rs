//! [`AuthConfig`]: the `[auth]` section of the server's TOML, as plain data.
//! Checking that it is usable (keys parse, secrets are long enough) is
//! [`Authenticator::new`](crate::Authenticator::new)'s job, not this file's.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

/// The `[auth]` configuration section.
///
/// ```toml
/// [auth]
/// anonymous = false
/// jwt_hs256_secret = "at least 32 bytes of secret, shared with the token issuer"
/// # and/or, for tokens signed by an identity provider:
/// jwt_rs256_public_key_file = "/etc/switchboard/issuer.pub.pem"
/// issuer = "https://auth.example.com/"
/// audience = "switchboard"
/// leeway_secs = 30
/// require_exp = true
/// api_keys = ["a-long-random-key-for-the-backend"]
/// ```
///
/// `Debug` prints whether secrets are set, never their value.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Whether a connection without a token is accepted as anonymous (the
    /// demo mode). When `false`, every connection needs a valid token, so at
    /// least one JWT key must be configured. A token that *is* presented
    /// must be valid either way. Default `true`.
    pub anonymous: bool,
    /// Shared secret for HS256 tokens (UTF-8 bytes of the string, at least
    /// 32 bytes as RFC 7518 §3.2 requires). `None` refuses HS256 tokens.
    pub jwt_hs256_secret: Option<String>,
    /// PEM text of the RSA public key (SPKI `PUBLIC KEY` or PKCS#1
    /// `RSA PUBLIC KEY`, 2048–4096 bits) for RS256 tokens.
    pub jwt_rs256_public_key: Option<String>,
    /// The same, read from a file at start-up. At most one of the two.
    pub jwt_rs256_public_key_file: Option<PathBuf>,
    /// When set, a token's `iss` must equal it.
    pub issuer: Option<String>,
    /// When set, a token's `aud` (a string or a list) must contain it. When
    /// unset, a token that names any audience is refused (RFC 7519 §4.1.3).
    pub audience: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds. Default 30.
    pub leeway_secs: u64,
    /// Whether a token without `exp` is refused. Default `true`.
    pub require_exp: bool,
    /// Keys accepted by the backend HTTP API (visible ASCII, at least 16
    /// characters each). Empty: no key is accepted.
    pub api_keys: Vec<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            anonymous: true,
            jwt_hs256_secret: None,
            jwt_rs256_public_key: None,
            jwt_rs256_public_key_file: None,
            issuer: None,
            audience: None,
            leeway_secs: 30,
            require_exp: true,
            api_keys: Vec::new(),
        }
    }
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |v: bool| if v { "<set>" } else { "<unset>" };
        f.debug_struct("AuthConfig")
            .field("anonymous", &self.anonymous)
            .field("jwt_hs256_secret", &set(self.jwt_hs256_secret.is_some()))
            .field(
                "jwt_rs256_public_key",
                &set(self.jwt_rs256_public_key.is_some()),
            )
            .field("jwt_rs256_public_key_file", &self.jwt_rs256_public_key_file)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_secs", &self.leeway_secs)
            .field("require_exp", &self.require_exp)
            .field("api_keys", &format_args!("<{} keys>", self.api_keys.len()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Outer {
        #[serde(default)]
        auth: AuthConfig,
    }

    #[test]
    fn defaults_from_an_empty_section_and_from_no_section() {
        let c: Outer = toml::from_str("[auth]\n").unwrap();
        assert!(c.auth.anonymous);
        assert_eq!(c.auth.leeway_secs, 30);
        assert!(c.auth.require_exp);
        assert!(c.auth.api_keys.is_empty());
        let c: Outer = toml::from_str("").unwrap();
        assert!(c.auth.anonymous);
    }

    #[test]
    fn every_field_parses() {
        let c: Outer = toml::from_str(
            r#"
            [auth]
            anonymous = false
            jwt_hs256_secret = "s"
            jwt_rs256_public_key = "-----BEGIN PUBLIC KEY-----"
            jwt_rs256_public_key_file = "/k.pem"
            issuer = "iss"
            audience = "aud"
            leeway_secs = 5
            require_exp = false
            api_keys = ["k1", "k2"]
            "#,
        )
        .unwrap();
        let a = c.auth;
        assert!(!a.anonymous);
        assert_eq!(a.jwt_hs256_secret.as_deref(), Some("s"));
        assert_eq!(a.jwt_rs256_public_key_file, Some(PathBuf::from("/k.pem")));
        assert_eq!(a.issuer.as_deref(), Some("iss"));
        assert_eq!(a.audience.as_deref(), Some("aud"));
        assert_eq!(a.leeway_secs, 5);
        assert!(!a.require_exp);
        assert_eq!(a.api_keys, ["k1", "k2"]);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = toml::from_str::<Outer>("[auth]\njwt_secret = \"x\"\n").unwrap_err();
        assert!(e.to_string().contains("jwt_secret"), "{e}");
    }

    #[test]
    fn debug_hides_secrets() {
        let c = AuthConfig {
            jwt_hs256_secret: Some("hunter2-hunter2".into()),
            api_keys: vec!["api-key-value".into()],
            ..AuthConfig::default()
        };
        let d = format!("{c:?}");
        assert!(!d.contains("hunter2"), "{d}");
        assert!(!d.contains("api-key-value"), "{d}");
        assert!(d.contains("<set>") && d.contains("<1 keys>"), "{d}");
    }
}
