//! Getting the token out of what a transport carries: an `Authorization:
//! Bearer` header value and a URL query string. Protocol-specific places
//! (Socket.IO `auth`, STOMP headers) are plain strings the server reads.

use std::borrow::Cow;

/// The token in an `Authorization` header value: `Bearer <token>`, the scheme
/// case-insensitive, surrounding whitespace ignored. `None` for another
/// scheme or an empty token.
///
/// ```
/// use switchboard_auth::bearer_token;
/// assert_eq!(bearer_token("Bearer abc.def.ghi"), Some("abc.def.ghi"));
/// assert_eq!(bearer_token("bearer  abc "), Some("abc"));
/// assert_eq!(bearer_token("Basic dXNlcjpwYXNz"), None);
/// ```
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let value = authorization.trim_start();
    let scheme = value.get(..6)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let rest = &value[6..];
    // The scheme must be followed by whitespace ("Bearerabc" is not Bearer).
    if !rest.starts_with([' ', '\t']) {
        return None;
    }
    let token = rest.trim();
    (!token.is_empty()).then_some(token)
}

/// The first value of parameter `name` in a URL query string (with or
/// without its leading `?`), `+` and `%XX` decoded. A parameter without `=`
/// has the empty value. Malformed `%` escapes are kept as they are; invalid
/// UTF-8 after decoding is replaced with U+FFFD. Borrowed when nothing
/// needed decoding.
///
/// ```
/// use switchboard_auth::query_param;
/// assert_eq!(query_param("?room=a&token=x.y.z", "token").as_deref(), Some("x.y.z"));
/// assert_eq!(query_param("name=Ada+L%C3%B6", "name").as_deref(), Some("Ada Lö"));
/// assert_eq!(query_param("a=1", "token"), None);
/// ```
pub fn query_param<'q>(query: &'q str, name: &str) -> Option<Cow<'q, str>> {
    let query = query.strip_prefix('?').unwrap_or(query);
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key) == name).then(|| percent_decode(value))
        })
}

/// `application/x-www-form-urlencoded` decoding of one key or value.
fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.bytes().any(|b| b == b'+' || b == b'%') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                bytes.get(i + 1).and_then(hex),
                bytes.get(i + 2).and_then(hex),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

fn hex(b: &u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer() {
        assert_eq!(bearer_token("Bearer t"), Some("t"));
        assert_eq!(bearer_token("BEARER t"), Some("t"));
        assert_eq!(bearer_token("bEaReR\tt"), Some("t"));
        assert_eq!(bearer_token("  Bearer   t.u.v  "), Some("t.u.v"));
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer    "), None);
        assert_eq!(bearer_token("Bearert"), None);
        assert_eq!(bearer_token("Basic t"), None);
        assert_eq!(bearer_token(""), None);
        assert_eq!(bearer_token("Béarer t"), None); // multi-byte: no panic
        assert_eq!(bearer_token("Bearé"), None);
    }

    #[test]
    fn query() {
        assert_eq!(query_param("token=abc", "token").as_deref(), Some("abc"));
        assert_eq!(query_param("?token=abc", "token").as_deref(), Some("abc"));
        assert_eq!(
            query_param("a=1&token=abc&b=2", "token").as_deref(),
            Some("abc")
        );
        assert_eq!(
            query_param("token=first&token=second", "token").as_deref(),
            Some("first")
        );
        assert_eq!(query_param("tokens=x&xtoken=y", "token"), None);
        assert_eq!(query_param("token", "token").as_deref(), Some(""));
        assert_eq!(query_param("token=", "token").as_deref(), Some(""));
        assert_eq!(query_param("&&token=a&", "token").as_deref(), Some("a"));
        assert_eq!(query_param("", "token"), None);
        assert_eq!(query_param("a=b=c", "a").as_deref(), Some("b=c"));
    }

    #[test]
    fn query_decoding() {
        assert_eq!(query_param("t=a+b", "t").as_deref(), Some("a b"));
        assert_eq!(query_param("t=a%2Bb", "t").as_deref(), Some("a+b"));
        assert_eq!(query_param("t=%2e%2E", "t").as_deref(), Some(".."));
        assert_eq!(query_param("t=caf%C3%A9", "t").as_deref(), Some("café"));
        assert_eq!(query_param("t=100%", "t").as_deref(), Some("100%"));
        assert_eq!(query_param("t=%zz%4", "t").as_deref(), Some("%zz%4"));
        assert_eq!(query_param("t=%FF", "t").as_deref(), Some("\u{FFFD}"));
        assert_eq!(query_param("t=%26x", "t").as_deref(), Some("&x"));
        // Keys are decoded too.
        assert_eq!(query_param("to%6Ben=v", "token").as_deref(), Some("v"));
        // Borrowed when nothing was escaped.
        assert!(matches!(
            query_param("t=abc.def", "t"),
            Some(Cow::Borrowed("abc.def"))
        ));
        assert!(matches!(query_param("t=a+b", "t"), Some(Cow::Owned(_))));
    }
}
