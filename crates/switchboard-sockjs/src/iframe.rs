//! [`IframePage`]: the `/iframe*.html` page that loads `sockjs-client` on
//! the server's origin for the cross-domain transports — its body (the
//! 0.3.3 protocol test's template), a stable `ETag`, and the `304` answer.

use std::time::SystemTime;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use http::{HeaderMap, HeaderValue, StatusCode};

use crate::headers::cache_for_year;
use crate::receiver::HTML_CONTENT_TYPE;
use crate::response::Response;

/// The iframe page for one client library URL. Build it once per service
/// and answer every `/iframe*.html` request from it.
///
/// ```
/// use std::time::SystemTime;
/// use http::HeaderMap;
/// use switchboard_sockjs::IframePage;
///
/// let page = IframePage::new("/static/sockjs.min.js");
/// let ok = page.respond(&HeaderMap::new(), SystemTime::now());
/// assert_eq!(ok.status, 200);
/// let mut again = HeaderMap::new();
/// again.insert("if-none-match", ok.headers["etag"].clone());
/// assert_eq!(page.respond(&again, SystemTime::now()).status, 304);
/// ```
#[derive(Debug, Clone)]
pub struct IframePage {
    body: Bytes,
    etag: HeaderValue,
}

impl IframePage {
    /// Renders the page for `client_library_url` (HTML-escaped into the
    /// `src` attribute).
    pub fn new(client_library_url: &str) -> Self {
        let body = format!(
            "<!DOCTYPE html>\n<html>\n<head>\n  \
<meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n  \
<meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n  \
<script>\n    document.domain = document.domain;\n    \
_sockjs_onload = function(){{SockJS.bootstrap_iframe();}};\n  </script>\n  \
<script src=\"{}\"></script>\n</head>\n<body>\n  <h2>Don't panic!</h2>\n  \
<p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>\n\
</body>\n</html>",
            html_attr_escape(client_library_url)
        );
        let etag = format!("\"{:016x}\"", fnv1a64(body.as_bytes()));
        IframePage {
            body: Bytes::from(body),
            etag: HeaderValue::from_str(&etag).expect("hex in quotes is a valid header value"),
        }
    }

    /// The HTML.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The quoted `ETag` (a 64-bit FNV-1a of the body, in hex).
    pub fn etag(&self) -> &HeaderValue {
        &self.etag
    }

    /// `304 Not Modified` (no body, no `Content-Type`) when the request's
    /// `If-None-Match` names this page's ETag; otherwise `200` with
    /// `Content-Type: text/html; charset=UTF-8`, `ETag`, and one year of
    /// `Cache-Control` / `Expires` counted from `now`.
    pub fn respond(&self, request: &HeaderMap, now: SystemTime) -> Response {
        let matches = request
            .get_all(IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .any(|tag| tag == "*" || tag.as_bytes() == self.etag.as_bytes());
        let mut headers = HeaderMap::new();
        if matches {
            headers.insert(ETAG, self.etag.clone());
            return Response {
                status: StatusCode::NOT_MODIFIED,
                headers,
                body: Bytes::new(),
            };
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(HTML_CONTENT_TYPE));
        cache_for_year(&mut headers, now);
        headers.insert(ETAG, self.etag.clone());
        Response {
            status: StatusCode::OK,
            headers,
            body: self.body.clone(),
        }
    }
}

fn html_attr_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

fn fnv1a64(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_CLIENT_LIBRARY_URL;

    const EXPECTED: &str = r#"<!DOCTYPE html>
<html>
<head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
  <script>
    document.domain = document.domain;
    _sockjs_onload = function(){SockJS.bootstrap_iframe();};
  </script>
  <script src="https://cdn.jsdelivr.net/npm/sockjs-client@1/dist/sockjs.min.js"></script>
</head>
<body>
  <h2>Don't panic!</h2>
  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>
</body>
</html>"#;

    #[test]
    fn body_matches_protocol_template() {
        let page = IframePage::new(DEFAULT_CLIENT_LIBRARY_URL);
        assert_eq!(&page.body()[..], EXPECTED.as_bytes());
    }

    #[test]
    fn headers_and_cacheability() {
        // IframePage.verify / test_cacheability
        let page = IframePage::new(DEFAULT_CLIENT_LIBRARY_URL);
        let r = page.respond(&HeaderMap::new(), SystemTime::UNIX_EPOCH);
        assert_eq!(r.status, 200);
        assert_eq!(r.headers["content-type"], "text/html; charset=UTF-8");
        assert_eq!(r.headers["cache-control"], "public, max-age=31536000");
        assert!(r.headers.contains_key("expires"));
        assert!(r.headers.get("last-modified").is_none());
        assert!(r.headers.get("set-cookie").is_none());
        let etag = r.headers["etag"].clone();
        assert_eq!(
            IframePage::new(DEFAULT_CLIENT_LIBRARY_URL)
                .respond(&HeaderMap::new(), SystemTime::now())
                .headers["etag"],
            etag
        );
        let mut h = HeaderMap::new();
        h.insert(IF_NONE_MATCH, etag);
        let r = page.respond(&h, SystemTime::UNIX_EPOCH);
        assert_eq!(r.status, 304);
        assert!(r.headers.get("content-type").is_none());
        assert!(r.body.is_empty());
        let mut h = HeaderMap::new();
        h.insert(IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
        assert_eq!(page.respond(&h, SystemTime::UNIX_EPOCH).status, 200);
    }

    #[test]
    fn url_is_configurable_and_escaped() {
        let a = IframePage::new("/sockjs.js");
        let b = IframePage::new("/x.js?a=1&b=\"2\"");
        assert!(std::str::from_utf8(a.body())
            .unwrap()
            .contains("<script src=\"/sockjs.js\"></script>"));
        assert!(std::str::from_utf8(b.body())
            .unwrap()
            .contains("src=\"/x.js?a=1&amp;b=&quot;2&quot;\""));
        assert_ne!(a.etag(), b.etag());
    }
}
