//! The token payload: [`Claims`], the typed form used to mint tokens, and
//! the lenient readers that pull each claim out of a verified payload
//! (numbers or fractional NumericDates, `aud` as a string or a list). Which
//! claim is checked against what lives in the authenticator, not here.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::AuthError;

/// A token payload, for minting ([`mint_hs256`](crate::mint_hs256),
/// [`mint_rs256`](crate::mint_rs256)). Unset fields are left out.
///
/// ```json
/// {
///   "sub": "user-42",
///   "name": "Ada",
///   "iss": "https://auth.example.com/",
///   "aud": "switchboard",
///   "iat": 1700000000,
///   "nbf": 1700000000,
///   "exp": 1700003600,
///   "subscribe": ["chat.*", "news"],
///   "publish": ["chat.*"]
/// }
/// ```
///
/// When verifying, `aud` may also be a list, `subscribe`/`publish` a single
/// string, and the dates fractional; other claims are ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Subject: the stable user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Display name; the subject is shown when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// Expiry, unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// Not before, unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issued at, unix seconds (informative; not checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Topic globs the holder may subscribe to; absent: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribe: Option<Vec<String>>,
    /// Topic globs the holder may publish to; absent: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<Vec<String>>,
}

/// A verified payload's claims, read one by one. A claim that is `null` is
/// treated as absent.
pub(crate) struct Payload(pub(crate) Map<String, Value>);

impl Payload {
    fn get(&self, claim: &str) -> Option<&Value> {
        self.0.get(claim).filter(|v| !v.is_null())
    }

    /// A NumericDate (`exp`, `nbf`): a non-negative number, fractions
    /// truncated. Anything else is a malformed token.
    pub(crate) fn date(&self, claim: &str) -> Result<Option<u64>, AuthError> {
        let Some(v) = self.get(claim) else {
            return Ok(None);
        };
        let n = v.as_number().ok_or(AuthError::Malformed)?;
        if let Some(u) = n.as_u64() {
            return Ok(Some(u));
        }
        match n.as_f64() {
            // `as` saturates: 1e300 becomes u64::MAX.
            Some(f) if f.is_finite() && f >= 0.0 => Ok(Some(f as u64)),
            _ => Err(AuthError::Malformed),
        }
    }

    /// A string claim; `Err(bad)` when present but not a string.
    pub(crate) fn string(&self, claim: &str, bad: AuthError) -> Result<Option<&str>, AuthError> {
        match self.get(claim) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(bad),
        }
    }

    /// A string or a list of strings (`aud`, `subscribe`, `publish`);
    /// `Err(bad)` for anything else.
    pub(crate) fn strings(
        &self,
        claim: &str,
        bad: AuthError,
    ) -> Result<Option<Vec<String>>, AuthError> {
        match self.get(claim) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned).ok_or_else(|| bad.clone()))
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(bad),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn payload(v: Value) -> Payload {
        match v {
            Value::Object(m) => Payload(m),
            _ => unreachable!(),
        }
    }

    #[test]
    fn dates() {
        let p = payload(json!({"a": 5, "b": 5.9, "c": -1, "d": "5", "e": null, "f": -0.5}));
        assert_eq!(p.date("a"), Ok(Some(5)));
        assert_eq!(p.date("b"), Ok(Some(5)));
        assert_eq!(p.date("c"), Err(AuthError::Malformed));
        assert_eq!(p.date("d"), Err(AuthError::Malformed));
        assert_eq!(p.date("e"), Ok(None));
        assert_eq!(p.date("f"), Err(AuthError::Malformed));
        assert_eq!(p.date("missing"), Ok(None));
    }

    #[test]
    fn strings_and_lists() {
        let p = payload(json!({"s": "x", "l": ["a", "b"], "n": 1, "bad": ["a", 2]}));
        let bad = || AuthError::InvalidTopicClaim;
        assert_eq!(p.string("s", bad()), Ok(Some("x")));
        assert_eq!(p.string("n", bad()), Err(bad()));
        assert_eq!(p.strings("s", bad()), Ok(Some(vec!["x".into()])));
        assert_eq!(
            p.strings("l", bad()),
            Ok(Some(vec!["a".into(), "b".into()]))
        );
        assert_eq!(p.strings("bad", bad()), Err(bad()));
        assert_eq!(p.strings("n", bad()), Err(bad()));
        assert_eq!(p.strings("missing", bad()), Ok(None));
    }

    #[test]
    fn claims_serialize_without_unset_fields() {
        let c = Claims {
            sub: Some("u".into()),
            exp: Some(10),
            ..Claims::default()
        };
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"sub": "u", "exp": 10})
        );
    }
}
