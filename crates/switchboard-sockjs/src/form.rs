//! `application/x-www-form-urlencoded` decoding, for the `jsonp_send` body
//! (`d=...`) and the `c=` / `callback=` query parameter — what Node's
//! `querystring.parse` does, on bytes.

use std::borrow::Cow;

/// The first value of `name` in `input` (`a=1&b=2`), `+` and `%XX`
/// decoded; a malformed `%` escape stays as it is. `None` when absent.
pub(crate) fn field<'a>(input: &'a str, name: &str) -> Option<Cow<'a, str>> {
    input.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(key) == name).then(|| decode(value))
    })
}

/// Decodes `+` and `%XX`; invalid UTF-8 after decoding is replaced.
pub(crate) fn decode(s: &str) -> Cow<'_, str> {
    if !s.bytes().any(|b| b == b'+' || b == b'%') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex(b: Option<&u8>) -> Option<u8> {
    let b = *b?;
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
    fn decodes() {
        assert_eq!(decode("plain"), "plain");
        assert_eq!(decode("%5B%22x%22%5D"), "[\"x\"]");
        assert_eq!(decode("a+b%20c"), "a b c");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz%4"), "%zz%4");
        assert_eq!(decode("%C3%A9"), "é");
    }

    #[test]
    fn fields() {
        assert_eq!(field("d=%5B%22x%22%5D", "d").as_deref(), Some("[\"x\"]"));
        assert_eq!(field("p=p", "d"), None);
        assert_eq!(field("d=", "d").as_deref(), Some(""));
        assert_eq!(field("d", "d").as_deref(), Some(""));
        assert_eq!(field("", "d"), None);
        assert_eq!(
            field("t=1&c=%63allback&c=x", "c").as_deref(),
            Some("callback")
        );
    }
}
