//! The response headers every SockJS endpoint shares: CORS, the
//! `JSESSIONID` cookie, "never cache" and "cache for a year" (with its
//! `Expires` HTTP-date). Values follow the 0.3.3 protocol test suite.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_REQUEST_HEADERS, CACHE_CONTROL, COOKIE, EXPIRES, ORIGIN, SET_COOKIE, VARY,
};
use http::{HeaderMap, HeaderValue};

use crate::config::SockJsConfig;

/// `Cache-Control` of everything that must not be cached (the transports
/// and `/info`), exactly as `verify_not_cached` in
/// `sockjs-protocol-0.3.3.py` and Spring send it.
pub const NO_CACHE: &str = "no-store, no-cache, must-revalidate, max-age=0";

/// One year, the cache lifetime of the iframe page and OPTIONS answers.
pub const ONE_YEAR: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// `Cache-Control` of the iframe page and OPTIONS answers.
pub const CACHE_FOR_YEAR: &str = "public, max-age=31536000";

/// Adds `Cache-Control: no-store, no-cache, must-revalidate, max-age=0`.
pub fn no_cache(headers: &mut HeaderMap) {
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(NO_CACHE));
}

/// Adds `Cache-Control: public, max-age=31536000` and `Expires` one year
/// after `now`.
pub fn cache_for_year(headers: &mut HeaderMap, now: SystemTime) {
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(CACHE_FOR_YEAR));
    let expires = http_date(now + ONE_YEAR);
    headers.insert(
        EXPIRES,
        HeaderValue::from_str(&expires).expect("an HTTP-date is a valid header value"),
    );
}

/// Adds the CORS headers (unless [`SockJsConfig::suppress_cors`]):
/// `Access-Control-Allow-Origin` echoing the request's `Origin`, or `*`
/// when it is absent or `null` (a `file://` page); `Access-Control-Allow-
/// Credentials: true`; `Access-Control-Allow-Headers` echoing a non-empty
/// `Access-Control-Request-Headers`; `Vary: Origin`.
pub fn cors(headers: &mut HeaderMap, request: &HeaderMap, config: &SockJsConfig) {
    if config.suppress_cors {
        return;
    }
    let origin = request
        .get(ORIGIN)
        .filter(|o| !o.is_empty() && o.as_bytes() != b"null")
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("*"));
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(
        ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    if let Some(h) = request
        .get(ACCESS_CONTROL_REQUEST_HEADERS)
        .filter(|h| !h.is_empty())
    {
        headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, h.clone());
    }
    headers.insert(VARY, HeaderValue::from_static("Origin"));
}

/// Adds `Set-Cookie: JSESSIONID=<the request's JSESSIONID or dummy>;
/// path=/` when [`SockJsConfig::session_cookie_needed`].
pub fn session_cookie(headers: &mut HeaderMap, request: &HeaderMap, config: &SockJsConfig) {
    if !config.session_cookie_needed {
        return;
    }
    let jsid = request
        .get_all(COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (name.trim() == "JSESSIONID").then(|| value.trim())
        })
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic() && b != b','))
        .unwrap_or("dummy");
    let value = HeaderValue::from_str(&format!("JSESSIONID={jsid}; path=/"))
        .unwrap_or_else(|_| HeaderValue::from_static("JSESSIONID=dummy; path=/"));
    headers.insert(SET_COOKIE, value);
}

/// Formats `t` as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use switchboard_sockjs::headers::http_date;
///
/// assert_eq!(http_date(UNIX_EPOCH + Duration::from_secs(784111777)), "Sun, 06 Nov 1994 08:49:37 GMT");
/// ```
pub fn http_date(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days, for days >= 0.
    let z = days as i64 + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn dates() {
        assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(http_date(t), "Tue, 29 Feb 2000 00:00:00 GMT");
        let t = UNIX_EPOCH + Duration::from_secs(1_735_689_599); // 2024-12-31 23:59:59
        assert_eq!(http_date(t), "Tue, 31 Dec 2024 23:59:59 GMT");
    }

    #[test]
    fn cors_origin_rules() {
        // verify_cors: origin echoed; absent or "null" gives "*"; credentials always.
        let config = SockJsConfig::default();
        for (origin, expected) in [(None, "*"), (Some("test"), "test"), (Some("null"), "*")] {
            let request = match origin {
                Some(o) => req(&[("origin", o)]),
                None => HeaderMap::new(),
            };
            let mut h = HeaderMap::new();
            cors(&mut h, &request, &config);
            assert_eq!(h["access-control-allow-origin"], expected);
            assert_eq!(h["access-control-allow-credentials"], "true");
            assert!(h.get("access-control-allow-headers").is_none());
        }
    }

    #[test]
    fn cors_request_headers() {
        // XhrPolling.test_request_headers_cors
        let config = SockJsConfig::default();
        let mut h = HeaderMap::new();
        cors(
            &mut h,
            &req(&[("access-control-request-headers", "a, b, c")]),
            &config,
        );
        assert_eq!(h["access-control-allow-headers"], "a, b, c");
        let mut h = HeaderMap::new();
        cors(
            &mut h,
            &req(&[("access-control-request-headers", "")]),
            &config,
        );
        assert!(h.get("access-control-allow-headers").is_none());
    }

    #[test]
    fn cors_suppressed() {
        let config = SockJsConfig {
            suppress_cors: true,
            ..SockJsConfig::default()
        };
        let mut h = HeaderMap::new();
        cors(&mut h, &req(&[("origin", "test")]), &config);
        assert!(h.is_empty());
    }

    #[test]
    fn cookie() {
        let on = SockJsConfig {
            session_cookie_needed: true,
            ..SockJsConfig::default()
        };
        let set = |request: HeaderMap, config: &SockJsConfig| {
            let mut h = HeaderMap::new();
            session_cookie(&mut h, &request, config);
            h.get("set-cookie").map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(
            set(HeaderMap::new(), &on).as_deref(),
            Some("JSESSIONID=dummy; path=/")
        );
        assert_eq!(
            set(req(&[("cookie", "JSESSIONID=abcdef")]), &on).as_deref(),
            Some("JSESSIONID=abcdef; path=/")
        );
        assert_eq!(
            set(req(&[("cookie", "a=1; JSESSIONID = xyz ; b=2")]), &on).as_deref(),
            Some("JSESSIONID=xyz; path=/")
        );
        assert_eq!(
            set(
                req(&[("cookie", "JSESSIONID=abcdef")]),
                &SockJsConfig::default()
            ),
            None
        );
    }

    #[test]
    fn caching() {
        let mut h = HeaderMap::new();
        no_cache(&mut h);
        assert_eq!(
            h["cache-control"],
            "no-store, no-cache, must-revalidate, max-age=0"
        );
        let mut h = HeaderMap::new();
        cache_for_year(&mut h, UNIX_EPOCH);
        assert_eq!(h["cache-control"], "public, max-age=31536000");
        assert_eq!(h["expires"], "Fri, 01 Jan 1971 00:00:00 GMT");
    }
}
