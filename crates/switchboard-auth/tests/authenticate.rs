//! Every token rule of `Authenticator`, end to end: tokens are minted (or
//! hand-built, for the attacks) and checked at a fixed `now`. The RSA keys are
//! committed test-only keys under tests/data/.

use std::fs;
use std::path::PathBuf;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};
use switchboard_auth::{
    mint_hs256, mint_rs256, Action, AuthConfig, AuthError, Authenticator, Claims, Identity,
    MAX_TOKEN_LEN,
};

const SECRET: &str = "switchboard-test-secret-0123456789abcdef";
const OTHER_SECRET: &str = "another-secret-of-enough-length-0123456789";
const NOW: u64 = 1_700_000_000;

fn data_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn data(name: &str) -> String {
    fs::read_to_string(data_path(name)).unwrap()
}

fn hs_config() -> AuthConfig {
    AuthConfig {
        anonymous: false,
        jwt_hs256_secret: Some(SECRET.into()),
        ..AuthConfig::default()
    }
}

fn rs_config() -> AuthConfig {
    AuthConfig {
        anonymous: false,
        jwt_rs256_public_key: Some(data("test_rs256_public.pem")),
        ..AuthConfig::default()
    }
}

fn auth(config: AuthConfig) -> Authenticator {
    Authenticator::new(&config).unwrap()
}

fn claims() -> Claims {
    Claims {
        sub: Some("user-1".into()),
        exp: Some(NOW + 3600),
        ..Claims::default()
    }
}

fn hs(claims: &Claims) -> String {
    mint_hs256(SECRET.as_bytes(), claims)
}

fn rs(claims: &Claims) -> String {
    mint_rs256(&data("test_rs256_private.pem"), claims).unwrap()
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

/// A token with any header and payload, HMAC-SHA256-signed with `secret`
/// whatever the header says.
fn hs_raw(header: &Value, payload: &Value, secret: &[u8]) -> String {
    let message = format!("{}.{}", b64(header), b64(payload));
    let sig = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(secret),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{message}.{sig}")
}

fn payload() -> Value {
    json!({"sub": "user-1", "exp": NOW + 3600})
}

fn check(a: &Authenticator, token: &str) -> Result<Identity, AuthError> {
    a.authenticate_at(Some(token), NOW)
}

fn config_error(config: AuthConfig) -> String {
    match Authenticator::new(&config) {
        Err(AuthError::Config(msg)) => msg,
        other => panic!("expected a config error, got {other:?}"),
    }
}

// ---- valid tokens -------------------------------------------------------

#[test]
fn hs256_valid() {
    let token = hs(&Claims {
        name: Some("Ada".into()),
        subscribe: Some(vec!["chat.*".into()]),
        publish: Some(vec!["chat.lobby".into()]),
        ..claims()
    });
    let id = check(&auth(hs_config()), &token).unwrap();
    assert_eq!(&*id.name, "Ada");
    assert_eq!(id.subject.as_deref(), Some("user-1"));
    assert_eq!(id.expires_at, Some(NOW + 3600));
    assert!(!id.anonymous);
    assert_eq!(id.subscribe, Some(vec!["chat.*".to_string()]));
    assert_eq!(id.publish, Some(vec!["chat.lobby".to_string()]));
}

#[test]
fn name_falls_back_to_sub() {
    let id = check(&auth(hs_config()), &hs(&claims())).unwrap();
    assert_eq!(&*id.name, "user-1");
    assert_eq!(id.subject.as_deref(), Some("user-1"));
    assert_eq!(id.subscribe, None);
    assert_eq!(id.publish, None);
}

#[test]
fn name_without_sub_is_enough() {
    let token = hs(&Claims {
        sub: None,
        name: Some("Ada".into()),
        ..claims()
    });
    let id = check(&auth(hs_config()), &token).unwrap();
    assert_eq!(&*id.name, "Ada");
    assert_eq!(id.subject, None);
}

#[test]
fn rs256_valid_with_spki_and_pkcs1_public_keys() {
    let token = rs(&Claims {
        name: Some("Grace".into()),
        ..claims()
    });
    let id = check(&auth(rs_config()), &token).unwrap();
    assert_eq!(&*id.name, "Grace");

    let pkcs1 = AuthConfig {
        jwt_rs256_public_key: Some(data("test_rs256_public_pkcs1.pem")),
        ..rs_config()
    };
    assert_eq!(check(&auth(pkcs1), &token).unwrap(), id);
}

#[test]
fn rs256_key_from_file() {
    let config = AuthConfig {
        jwt_rs256_public_key: None,
        jwt_rs256_public_key_file: Some(data_path("test_rs256_public.pem")),
        ..rs_config()
    };
    check(&auth(config), &rs(&claims())).unwrap();
}

#[test]
fn rs256_minted_with_a_pkcs1_private_key() {
    let token = mint_rs256(&data("test_rs256_private_pkcs1.pem"), &claims()).unwrap();
    check(&auth(rs_config()), &token).unwrap();
}

#[test]
fn both_algorithms_configured_each_verifies_with_its_own_key() {
    let config = AuthConfig {
        jwt_hs256_secret: Some(SECRET.into()),
        ..rs_config()
    };
    let a = auth(config);
    check(&a, &hs(&claims())).unwrap();
    check(&a, &rs(&claims())).unwrap();
}

#[test]
fn authenticate_uses_the_system_clock() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let a = auth(hs_config());
    let fresh = hs(&Claims {
        exp: Some(now + 600),
        ..claims()
    });
    a.authenticate(Some(&fresh)).unwrap();
    let stale = hs(&Claims {
        exp: Some(now - 600),
        ..claims()
    });
    assert_eq!(a.authenticate(Some(&stale)), Err(AuthError::Expired));
}

// ---- time -----------------------------------------------------------------

#[test]
fn expired_beyond_leeway() {
    let a = auth(hs_config()); // leeway 30
    let token = hs(&Claims {
        exp: Some(NOW - 31),
        ..claims()
    });
    assert_eq!(check(&a, &token), Err(AuthError::Expired));
    // On the boundary (exp + leeway == now) it is expired too (RFC 7519: "on or after").
    let token = hs(&Claims {
        exp: Some(NOW - 30),
        ..claims()
    });
    assert_eq!(check(&a, &token), Err(AuthError::Expired));
}

#[test]
fn expired_within_leeway_is_accepted() {
    let a = auth(hs_config());
    for exp in [NOW - 29, NOW - 1, NOW, NOW + 1] {
        let token = hs(&Claims {
            exp: Some(exp),
            ..claims()
        });
        let id = check(&a, &token).unwrap();
        assert_eq!(id.expires_at, Some(exp));
    }
}

#[test]
fn zero_leeway_expires_at_exp() {
    let a = auth(AuthConfig {
        leeway_secs: 0,
        ..hs_config()
    });
    let at = |exp| {
        hs(&Claims {
            exp: Some(exp),
            ..claims()
        })
    };
    assert_eq!(check(&a, &at(NOW)), Err(AuthError::Expired));
    check(&a, &at(NOW + 1)).unwrap();
}

#[test]
fn nbf_in_the_future() {
    let a = auth(hs_config());
    let at = |nbf| {
        hs(&Claims {
            nbf: Some(nbf),
            ..claims()
        })
    };
    assert_eq!(check(&a, &at(NOW + 31)), Err(AuthError::NotYetValid));
    check(&a, &at(NOW + 30)).unwrap(); // within the leeway
    check(&a, &at(NOW)).unwrap();
    check(&a, &at(NOW - 100)).unwrap();
}

#[test]
fn missing_exp_when_required() {
    let token = hs(&Claims {
        exp: None,
        ..claims()
    });
    assert_eq!(
        check(&auth(hs_config()), &token),
        Err(AuthError::MissingExpiry)
    );
    let lax = auth(AuthConfig {
        require_exp: false,
        ..hs_config()
    });
    let id = check(&lax, &token).unwrap();
    assert_eq!(id.expires_at, None);
}

#[test]
fn dates_may_be_fractional_but_not_strings_or_negative() {
    let a = auth(hs_config());
    let signed = |p: Value| hs_raw(&json!({"alg": "HS256"}), &p, SECRET.as_bytes());
    let id = check(
        &a,
        &signed(json!({"sub": "u", "exp": (NOW + 10) as f64 + 0.5})),
    )
    .unwrap();
    assert_eq!(id.expires_at, Some(NOW + 10));
    for exp in [json!("1800000000"), json!(-5), json!(true), json!([1])] {
        assert_eq!(
            check(&a, &signed(json!({"sub": "u", "exp": exp}))),
            Err(AuthError::Malformed),
            "{exp}"
        );
    }
    assert_eq!(
        check(
            &a,
            &signed(json!({"sub": "u", "exp": NOW + 10, "nbf": "x"}))
        ),
        Err(AuthError::Malformed)
    );
}

// ---- issuer and audience ----------------------------------------------------

#[test]
fn wrong_issuer() {
    let a = auth(AuthConfig {
        issuer: Some("https://auth.example.com/".into()),
        ..hs_config()
    });
    let with = |iss: Option<&str>| {
        hs(&Claims {
            iss: iss.map(Into::into),
            ..claims()
        })
    };
    check(&a, &with(Some("https://auth.example.com/"))).unwrap();
    assert_eq!(
        check(&a, &with(Some("https://evil.example.com/"))),
        Err(AuthError::WrongIssuer)
    );
    assert_eq!(
        check(&a, &with(Some("https://auth.example.com"))),
        Err(AuthError::WrongIssuer)
    );
    assert_eq!(check(&a, &with(None)), Err(AuthError::WrongIssuer));
    let non_string = hs_raw(
        &json!({"alg": "HS256"}),
        &json!({"sub": "u", "exp": NOW + 10, "iss": 5}),
        SECRET.as_bytes(),
    );
    assert_eq!(check(&a, &non_string), Err(AuthError::WrongIssuer));
    // No issuer configured: any issuer is fine.
    check(&auth(hs_config()), &with(Some("whoever"))).unwrap();
}

#[test]
fn wrong_audience() {
    let a = auth(AuthConfig {
        audience: Some("switchboard".into()),
        ..hs_config()
    });
    let signed = |aud: Value| {
        hs_raw(
            &json!({"alg": "HS256"}),
            &json!({"sub": "u", "exp": NOW + 10, "aud": aud}),
            SECRET.as_bytes(),
        )
    };
    check(&a, &signed(json!("switchboard"))).unwrap();
    check(&a, &signed(json!(["other", "switchboard"]))).unwrap();
    assert_eq!(
        check(&a, &signed(json!("other"))),
        Err(AuthError::WrongAudience)
    );
    assert_eq!(
        check(&a, &signed(json!(["other"]))),
        Err(AuthError::WrongAudience)
    );
    assert_eq!(check(&a, &signed(json!([]))), Err(AuthError::WrongAudience));
    assert_eq!(check(&a, &signed(json!(7))), Err(AuthError::WrongAudience));
    assert_eq!(
        check(&a, &signed(json!(null))),
        Err(AuthError::WrongAudience)
    );
    assert_eq!(check(&a, &hs(&claims())), Err(AuthError::WrongAudience));
}

#[test]
fn a_token_for_an_audience_is_refused_when_none_is_configured() {
    let a = auth(hs_config());
    let token = hs(&Claims {
        aud: Some("some-other-service".into()),
        ..claims()
    });
    assert_eq!(check(&a, &token), Err(AuthError::WrongAudience));
}

// ---- forgery ---------------------------------------------------------------

#[test]
fn forged_signature_with_another_secret() {
    let token = mint_hs256(OTHER_SECRET.as_bytes(), &claims());
    assert_eq!(
        check(&auth(hs_config()), &token),
        Err(AuthError::InvalidSignature)
    );
}

#[test]
fn forged_signature_with_another_rsa_key() {
    let token = mint_rs256(&data("other_rs256_private.pem"), &claims()).unwrap();
    assert_eq!(
        check(&auth(rs_config()), &token),
        Err(AuthError::InvalidSignature)
    );
}

#[test]
fn signature_is_checked_before_claims() {
    // An expired token with a bad signature says "invalid signature", so an
    // attacker learns nothing about how claims are judged.
    let token = mint_hs256(
        OTHER_SECRET.as_bytes(),
        &Claims {
            exp: Some(1),
            ..claims()
        },
    );
    assert_eq!(
        check(&auth(hs_config()), &token),
        Err(AuthError::InvalidSignature)
    );
}

#[test]
fn tampered_payload() {
    for (a, token) in [
        (auth(hs_config()), hs(&claims())),
        (auth(rs_config()), rs(&claims())),
    ] {
        let parts: Vec<&str> = token.split('.').collect();
        let evil = b64(&json!({"sub": "admin", "exp": NOW + 3600}));
        let tampered = format!("{}.{}.{}", parts[0], evil, parts[2]);
        assert_eq!(check(&a, &tampered), Err(AuthError::InvalidSignature));
        // A changed signature character too (the first one: all six of its
        // bits are signature bits, so the base64 stays canonical).
        let first = if parts[2].starts_with('A') { "B" } else { "A" };
        let flipped = format!("{}.{}.{first}{}", parts[0], parts[1], &parts[2][1..]);
        assert_eq!(check(&a, &flipped), Err(AuthError::InvalidSignature));
        // No signature at all.
        let unsigned = format!("{}.{}.", parts[0], parts[1]);
        assert_eq!(check(&a, &unsigned), Err(AuthError::InvalidSignature));
    }
}

#[test]
fn alg_none_is_always_refused() {
    let both = auth(AuthConfig {
        jwt_hs256_secret: Some(SECRET.into()),
        ..rs_config()
    });
    for alg in ["none", "None", "NONE", "nOnE", ""] {
        let header = b64(&json!({"alg": alg, "typ": "JWT"}));
        let body = b64(&payload());
        for token in [
            format!("{header}.{body}."),
            format!("{header}.{body}.c2lnbmF0dXJl"),
        ] {
            for a in [&both, &auth(hs_config()), &auth(rs_config())] {
                assert_eq!(
                    check(a, &token),
                    Err(AuthError::AlgorithmNotAccepted),
                    "{alg}"
                );
            }
        }
    }
}

#[test]
fn hs256_token_against_rs256_only_config() {
    assert_eq!(
        check(&auth(rs_config()), &hs(&claims())),
        Err(AuthError::AlgorithmNotAccepted)
    );
}

#[test]
fn rs256_token_against_hs256_only_config() {
    assert_eq!(
        check(&auth(hs_config()), &rs(&claims())),
        Err(AuthError::AlgorithmNotAccepted)
    );
}

#[test]
fn rs256_public_key_as_hmac_secret_is_refused() {
    // The classic confusion attack: the public key is public, so an attacker
    // HMAC-signs with its PEM text and hopes the server verifies HS256 with it.
    let pem = data("test_rs256_public.pem");
    let header = json!({"alg": "HS256", "typ": "JWT"});
    for secret in [pem.as_str(), pem.trim()] {
        let token = hs_raw(&header, &payload(), secret.as_bytes());
        assert_eq!(
            check(&auth(rs_config()), &token),
            Err(AuthError::AlgorithmNotAccepted)
        );
        // With both algorithms on, the HS256 token meets the real secret.
        let both = auth(AuthConfig {
            jwt_hs256_secret: Some(SECRET.into()),
            ..rs_config()
        });
        assert_eq!(check(&both, &token), Err(AuthError::InvalidSignature));
    }
    // And the PEM text cannot be configured as the HMAC secret.
    let msg = config_error(AuthConfig {
        jwt_hs256_secret: Some(pem.clone()),
        ..rs_config()
    });
    assert!(msg.contains("PEM"), "{msg}");
}

#[test]
fn other_algorithms_are_refused_even_when_correctly_signed() {
    // HS384/HS512 with the right secret, and every other name.
    let a = auth(AuthConfig {
        jwt_hs256_secret: Some(SECRET.into()),
        ..rs_config()
    });
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(alg),
            &claims(),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert_eq!(
            check(&a, &token),
            Err(AuthError::AlgorithmNotAccepted),
            "{alg:?}"
        );
    }
    for alg in [
        "RS512", "PS256", "ES256", "EdDSA", "hs256", "HS256 ", "rs256",
    ] {
        let token = hs_raw(&json!({"alg": alg}), &payload(), SECRET.as_bytes());
        assert_eq!(
            check(&a, &token),
            Err(AuthError::AlgorithmNotAccepted),
            "{alg}"
        );
    }
}

// ---- malformed ---------------------------------------------------------------

#[test]
fn garbage_tokens_are_malformed() {
    let a = auth(AuthConfig {
        jwt_hs256_secret: Some(SECRET.into()),
        ..rs_config()
    });
    let good = hs(&claims());
    let parts: Vec<&str> = good.split('.').collect();
    let cases = [
        "garbage".to_string(),
        "a.b".to_string(),
        format!("{}.{}", parts[0], parts[1]),
        format!("{good}.extra"),
        "..".to_string(),
        "!!!.###.$$$".to_string(),
        format!("{}=.{}.{}", parts[0], parts[1], parts[2]), // padding
        format!("not-json.{}.{}", parts[1], parts[2]),
        format!("{}.{}.{}", b64(&json!({"typ": "JWT"})), parts[1], parts[2]), // no alg
        format!("{}.{}.{}", b64(&json!({"alg": 256})), parts[1], parts[2]),
        format!("{}.{}.{}", b64(&json!(["HS256"])), parts[1], parts[2]),
        format!("{}.%%%.{}", parts[0], parts[2]),
        format!("{}.{}.%%%", parts[0], parts[1]),
        "eyJhbGciOiJIUzI1NiJ9.e30.\u{1F600}".to_string(),
    ];
    for token in &cases {
        assert_eq!(check(&a, token), Err(AuthError::Malformed), "{token}");
    }
}

#[test]
fn correctly_signed_but_malformed_payloads() {
    let a = auth(hs_config());
    let header = b64(&json!({"alg": "HS256"}));
    let sign = |body: &str| {
        let message = format!("{header}.{body}");
        let sig = jsonwebtoken::crypto::sign(
            message.as_bytes(),
            &EncodingKey::from_secret(SECRET.as_bytes()),
            Algorithm::HS256,
        )
        .unwrap();
        format!("{message}.{sig}")
    };
    for body in [
        URL_SAFE_NO_PAD.encode("not json"),
        URL_SAFE_NO_PAD.encode("[1,2]"),
        URL_SAFE_NO_PAD.encode("\"str\""),
        URL_SAFE_NO_PAD.encode([0xff, 0xfe]),
        "!!".to_string(),
    ] {
        assert_eq!(check(&a, &sign(&body)), Err(AuthError::Malformed), "{body}");
    }
}

#[test]
fn crit_header_is_refused() {
    let token = hs_raw(
        &json!({"alg": "HS256", "crit": ["exp"], "exp": 1}),
        &payload(),
        SECRET.as_bytes(),
    );
    assert_eq!(check(&auth(hs_config()), &token), Err(AuthError::Malformed));
}

#[test]
fn duplicate_alg_header_is_refused() {
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","alg":"none"}"#);
    let token = format!("{header}.{}.", b64(&payload()));
    assert_eq!(check(&auth(hs_config()), &token), Err(AuthError::Malformed));
}

#[test]
fn too_long_tokens_are_refused_before_decoding() {
    let token = "a".repeat(MAX_TOKEN_LEN + 1);
    assert_eq!(
        check(&auth(hs_config()), &token),
        Err(AuthError::TokenTooLong)
    );
    // A long but acceptable token still works.
    let token = hs(&Claims {
        subscribe: Some(vec!["x".repeat(4000)]),
        ..claims()
    });
    assert!(token.len() < MAX_TOKEN_LEN);
    check(&auth(hs_config()), &token).unwrap();
}

// ---- anonymous ----------------------------------------------------------------

#[test]
fn anonymous_allowed() {
    let a = auth(AuthConfig {
        anonymous: true,
        ..hs_config()
    });
    for token in [None, Some(""), Some("   ")] {
        let id = a.authenticate_at(token, NOW).unwrap();
        assert_eq!(id, Identity::anonymous());
        assert!(id.anonymous);
        assert_eq!(&*id.name, switchboard_auth::ANONYMOUS_NAME);
        assert!(id.may("anything", Action::Publish));
    }
    // A token that is presented must still be valid: no downgrade.
    assert_eq!(
        a.authenticate_at(Some("garbage"), NOW),
        Err(AuthError::Malformed)
    );
    let expired = hs(&Claims {
        exp: Some(NOW - 3600),
        ..claims()
    });
    assert_eq!(
        a.authenticate_at(Some(&expired), NOW),
        Err(AuthError::Expired)
    );
    // And a valid one is used.
    let id = a.authenticate_at(Some(&hs(&claims())), NOW).unwrap();
    assert!(!id.anonymous);
}

#[test]
fn anonymous_required() {
    let a = auth(hs_config());
    assert!(!a.anonymous_allowed());
    for token in [None, Some(""), Some(" \t")] {
        assert_eq!(a.authenticate_at(token, NOW), Err(AuthError::TokenRequired));
    }
}

#[test]
fn demo_mode_without_keys_refuses_presented_tokens() {
    let a = auth(AuthConfig::default());
    assert!(a.anonymous_allowed());
    assert!(!a.accepts_tokens());
    assert!(a.authenticate_at(None, NOW).unwrap().anonymous);
    assert_eq!(
        a.authenticate_at(Some(&hs(&claims())), NOW),
        Err(AuthError::TokensNotAccepted)
    );
}

#[test]
fn surrounding_whitespace_is_ignored() {
    let token = format!("  {}\r\n", hs(&claims()));
    check(&auth(hs_config()), &token).unwrap();
}

// ---- name, sub and topic claims -------------------------------------------------

#[test]
fn name_claim_validation() {
    let a = auth(hs_config());
    let with_name = |name: &str| {
        hs(&Claims {
            name: Some(name.into()),
            ..claims()
        })
    };
    check(&a, &with_name(&"n".repeat(64))).unwrap();
    check(&a, &with_name("Zoë 🚀")).unwrap();
    for bad in [
        String::new(),
        " ".into(),
        "n".repeat(65),
        "line\nbreak".into(),
        "nul\0".into(),
        "bell\u{7}".into(),
        "rtl\u{202E}override".into(),
        " padded".into(),
    ] {
        assert_eq!(
            check(&a, &with_name(&bad)),
            Err(AuthError::InvalidName),
            "{bad:?}"
        );
    }
    let non_string = hs_raw(
        &json!({"alg": "HS256"}),
        &json!({"sub": "u", "exp": NOW + 10, "name": 42}),
        SECRET.as_bytes(),
    );
    assert_eq!(check(&a, &non_string), Err(AuthError::InvalidName));
}

#[test]
fn sub_claim_validation() {
    let a = auth(hs_config());
    let with_sub = |sub: &str| {
        hs(&Claims {
            sub: Some(sub.into()),
            name: Some("Ada".into()),
            ..claims()
        })
    };
    for bad in [String::new(), "s".repeat(65), "tab\tsub".into()] {
        assert_eq!(
            check(&a, &with_sub(&bad)),
            Err(AuthError::InvalidSubject),
            "{bad:?}"
        );
    }
    let numeric = hs_raw(
        &json!({"alg": "HS256"}),
        &json!({"sub": 7, "exp": NOW + 10}),
        SECRET.as_bytes(),
    );
    assert_eq!(check(&a, &numeric), Err(AuthError::InvalidSubject));
}

#[test]
fn neither_name_nor_sub() {
    let token = hs(&Claims {
        sub: None,
        ..claims()
    });
    assert_eq!(
        check(&auth(hs_config()), &token),
        Err(AuthError::MissingName)
    );
}

#[test]
fn may_with_globs_from_the_token() {
    let a = auth(hs_config());
    let token = hs(&Claims {
        subscribe: Some(vec!["chat.*".into(), "news".into()]),
        publish: Some(vec![]),
        ..claims()
    });
    let id = check(&a, &token).unwrap();
    assert!(id.may("chat.lobby", Action::Subscribe));
    assert!(id.may("news", Action::Subscribe));
    assert!(!id.may("news.sport", Action::Subscribe));
    assert!(!id.may("admin", Action::Subscribe));
    assert!(!id.may("chat.lobby", Action::Publish)); // empty list: nothing

    // A single string is one glob; no claim is no limit.
    let token = hs_raw(
        &json!({"alg": "HS256"}),
        &json!({"sub": "u", "exp": NOW + 10, "publish": "chat.*"}),
        SECRET.as_bytes(),
    );
    let id = check(&a, &token).unwrap();
    assert!(id.may("chat.x", Action::Publish));
    assert!(!id.may("other", Action::Publish));
    assert!(id.may("other", Action::Subscribe));
}

#[test]
fn bad_topic_claims() {
    let a = auth(hs_config());
    for (claim, value) in [
        ("subscribe", json!(5)),
        ("subscribe", json!(["ok", 5])),
        ("publish", json!({"topic": "x"})),
        ("publish", json!([["nested"]])),
    ] {
        let mut p = payload();
        p[claim] = value.clone();
        let token = hs_raw(&json!({"alg": "HS256"}), &p, SECRET.as_bytes());
        assert_eq!(
            check(&a, &token),
            Err(AuthError::InvalidTopicClaim),
            "{claim}: {value}"
        );
    }
}

// ---- configuration --------------------------------------------------------------

#[test]
fn unusable_configurations_are_refused() {
    let cases: Vec<(AuthConfig, &str)> = vec![
        (
            AuthConfig {
                jwt_hs256_secret: Some(String::new()),
                ..hs_config()
            },
            "empty",
        ),
        (
            AuthConfig {
                jwt_hs256_secret: Some("short-secret".into()),
                ..hs_config()
            },
            "32 bytes",
        ),
        (
            AuthConfig {
                jwt_rs256_public_key: Some(
                    "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n".into(),
                ),
                ..rs_config()
            },
            "not a PEM RSA public key",
        ),
        (
            AuthConfig {
                jwt_rs256_public_key: Some("not pem at all".into()),
                ..rs_config()
            },
            "not a PEM RSA public key",
        ),
        (
            AuthConfig {
                // A private key where the public key belongs.
                jwt_rs256_public_key: Some(data("test_rs256_private.pem")),
                ..rs_config()
            },
            "not a PEM RSA public key",
        ),
        (
            AuthConfig {
                jwt_rs256_public_key: Some(data("weak_rsa1024_public.pem")),
                ..rs_config()
            },
            "1024 bits",
        ),
        (
            AuthConfig {
                jwt_rs256_public_key_file: Some(data_path("test_rs256_public.pem")),
                ..rs_config()
            },
            "only one",
        ),
        (
            AuthConfig {
                jwt_rs256_public_key: None,
                jwt_rs256_public_key_file: Some(data_path("does-not-exist.pem")),
                ..rs_config()
            },
            "does-not-exist.pem",
        ),
        (
            AuthConfig {
                anonymous: false,
                ..AuthConfig::default()
            },
            "anonymous = false",
        ),
        (
            AuthConfig {
                anonymous: false,
                api_keys: vec!["0123456789abcdef-api".into()],
                ..AuthConfig::default()
            },
            "anonymous = false",
        ),
        (
            AuthConfig {
                issuer: Some(String::new()),
                ..hs_config()
            },
            "issuer",
        ),
        (
            AuthConfig {
                audience: Some(String::new()),
                ..hs_config()
            },
            "audience",
        ),
        (
            AuthConfig {
                api_keys: vec!["tiny".into()],
                ..AuthConfig::default()
            },
            "api_keys[0]",
        ),
    ];
    for (config, expected) in cases {
        let msg = config_error(config.clone());
        assert!(
            msg.contains(expected),
            "{msg:?} should mention {expected:?}"
        );
        if let Some(secret) = config.jwt_hs256_secret.filter(|s| !s.is_empty()) {
            assert!(!msg.contains(&secret), "{msg} leaks the secret");
        }
        assert!(!msg.contains("tiny"), "{msg} leaks an API key");
    }
}

#[test]
fn authenticator_debug_hides_secrets() {
    let a = auth(AuthConfig {
        api_keys: vec!["0123456789abcdef-api".into()],
        ..hs_config()
    });
    let d = format!("{a:?}");
    assert!(
        !d.contains(SECRET) && !d.contains("0123456789abcdef-api"),
        "{d}"
    );
}

// ---- API keys ---------------------------------------------------------------------

#[test]
fn api_keys() {
    let a = auth(AuthConfig {
        api_keys: vec![
            "first-api-key-0123456789".into(),
            "second-api-key-abcdefghij".into(),
        ],
        ..AuthConfig::default()
    });
    assert!(a.api_keys_configured());
    assert!(a.check_api_key("first-api-key-0123456789"));
    assert!(a.check_api_key("second-api-key-abcdefghij"));
    assert!(!a.check_api_key("first-api-key-012345678"));
    assert!(!a.check_api_key("first-api-key-01234567890"));
    assert!(!a.check_api_key("FIRST-API-KEY-0123456789"));
    assert!(!a.check_api_key(""));

    let none = auth(AuthConfig::default());
    assert!(!none.api_keys_configured());
    assert!(!none.check_api_key(""));
    assert!(!none.check_api_key("first-api-key-0123456789"));
}

// ---- errors ------------------------------------------------------------------------

#[test]
fn reasons_are_short_distinct_and_client_safe() {
    let all = [
        AuthError::TokenRequired,
        AuthError::TokensNotAccepted,
        AuthError::TokenTooLong,
        AuthError::Malformed,
        AuthError::AlgorithmNotAccepted,
        AuthError::InvalidSignature,
        AuthError::Expired,
        AuthError::NotYetValid,
        AuthError::MissingExpiry,
        AuthError::WrongIssuer,
        AuthError::WrongAudience,
        AuthError::InvalidName,
        AuthError::InvalidSubject,
        AuthError::MissingName,
        AuthError::InvalidTopicClaim,
        AuthError::Config(SECRET.into()),
    ];
    let mut seen = std::collections::HashSet::new();
    for e in &all {
        let r = e.reason();
        assert!(!r.is_empty() && r.len() <= 40, "{r}");
        assert!(seen.insert(r), "duplicate reason {r}");
        assert!(!r.contains(SECRET));
    }
    assert_eq!(AuthError::Expired.reason(), "token expired");
    assert_eq!(AuthError::NotYetValid.reason(), "token not yet valid");
    assert_eq!(
        AuthError::InvalidSignature.reason(),
        "invalid token signature"
    );
    assert_eq!(AuthError::Malformed.reason(), "malformed token");
    assert_eq!(
        AuthError::AlgorithmNotAccepted.reason(),
        "token algorithm not accepted"
    );
    let boxed: Box<dyn std::error::Error> = Box::new(AuthError::WrongIssuer);
    assert_eq!(boxed.to_string(), "wrong issuer");
}
