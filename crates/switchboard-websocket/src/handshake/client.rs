//! Client role of the opening handshake: builds the raw HTTP/1.1 upgrade
//! request and incrementally parses/verifies the server's response
//! (status 101, accept key, subprotocol, permessage-deflate).

use base64::Engine as _;
use http::StatusCode;

use super::{accept_key, HandshakeError};
use crate::deflate::{parse_extensions, DeflateConfig, DeflateParams};
use crate::rng::FastRng;

/// Builder for a client upgrade request.
///
/// ```
/// use switchboard_websocket::handshake::ClientRequest;
/// let (bytes, hs) = ClientRequest::new("example.com", "/chat").protocols(["chat"]).encode();
/// assert!(bytes.starts_with(b"GET /chat HTTP/1.1\r\n"));
/// # let _ = hs;
/// ```
#[derive(Debug, Clone)]
pub struct ClientRequest {
    host: String,
    path: String,
    protocols: Vec<String>,
    deflate: Option<DeflateConfig>,
    headers: Vec<(String, String)>,
}

impl ClientRequest {
    /// A request for `path` (e.g. `"/ws?x=1"`) on `host` (the `Host` header
    /// value, e.g. `"example.com:8080"`).
    pub fn new(host: &str, path: &str) -> Self {
        ClientRequest {
            host: host.to_owned(),
            path: if path.is_empty() {
                "/".to_owned()
            } else {
                path.to_owned()
            },
            protocols: Vec::new(),
            deflate: None,
            headers: Vec::new(),
        }
    }

    /// Subprotocols to offer, in preference order.
    pub fn protocols<I, S>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.protocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// Offers permessage-deflate with these settings.
    pub fn deflate(mut self, cfg: DeflateConfig) -> Self {
        self.deflate = Some(cfg);
        self
    }

    /// Adds an arbitrary header (e.g. `Origin`, `Cookie`).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Encodes the request with a fresh random key. Returns the raw request
    /// bytes and the state needed to verify the response.
    pub fn encode(&self) -> (Vec<u8>, ClientHandshake) {
        let mut rng = FastRng::from_entropy();
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&rng.next_u64().to_ne_bytes());
        nonce[8..].copy_from_slice(&rng.next_u64().to_ne_bytes());
        let key = base64::engine::general_purpose::STANDARD.encode(nonce);
        let mut req = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n",
            self.path, self.host, key
        );
        if !self.protocols.is_empty() {
            req.push_str("Sec-WebSocket-Protocol: ");
            req.push_str(&self.protocols.join(", "));
            req.push_str("\r\n");
        }
        if let Some(d) = &self.deflate {
            req.push_str("Sec-WebSocket-Extensions: ");
            req.push_str(&d.offer_header());
            req.push_str("\r\n");
        }
        for (k, v) in &self.headers {
            req.push_str(k);
            req.push_str(": ");
            req.push_str(v);
            req.push_str("\r\n");
        }
        req.push_str("\r\n");
        let hs = ClientHandshake {
            expected_accept: accept_key(key.as_bytes()),
            key,
            protocols: self.protocols.clone(),
            deflate: self.deflate.clone(),
        };
        (req.into_bytes(), hs)
    }
}

/// Pending client handshake: verifies the server's response.
#[derive(Debug, Clone)]
pub struct ClientHandshake {
    key: String,
    expected_accept: String,
    protocols: Vec<String>,
    deflate: Option<DeflateConfig>,
}

/// Result of a successful client handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAccepted {
    /// Subprotocol selected by the server.
    pub protocol: Option<String>,
    /// Negotiated permessage-deflate parameters (for
    /// [`Config::deflate`](crate::Config::deflate)).
    pub deflate: Option<DeflateParams>,
}

const fn fail(status: StatusCode, reason: &'static str) -> HandshakeError {
    HandshakeError::new(status, reason)
}

const BAD: StatusCode = StatusCode::BAD_GATEWAY;

impl ClientHandshake {
    /// The `Sec-WebSocket-Key` that was sent.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Parses the server's response from the start of `buf`.
    ///
    /// Returns `Ok(None)` while the response head is incomplete, otherwise
    /// the result and the number of bytes consumed (any bytes after that are
    /// already WebSocket frames).
    pub fn parse_response(
        &self,
        buf: &[u8],
    ) -> Result<Option<(ClientAccepted, usize)>, HandshakeError> {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        let n = match resp.parse(buf) {
            Ok(httparse::Status::Partial) => return Ok(None),
            Ok(httparse::Status::Complete(n)) => n,
            Err(_) => return Err(fail(BAD, "malformed HTTP response")),
        };
        let code = resp.code.unwrap_or(0);
        let status = StatusCode::from_u16(code).unwrap_or(BAD);
        if code != 101 {
            return Err(fail(status, "server did not switch protocols"));
        }
        let values = |name: &'static str| {
            resp.headers
                .iter()
                .filter(move |h| h.name.eq_ignore_ascii_case(name))
                .filter_map(|h| std::str::from_utf8(h.value).ok())
        };
        let has_token = |name: &'static str, token: &str| {
            values(name).any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        };
        if !has_token("upgrade", "websocket") {
            return Err(fail(status, "missing Upgrade: websocket"));
        }
        if !has_token("connection", "upgrade") {
            return Err(fail(status, "missing Connection: upgrade"));
        }
        let mut accepts = values("sec-websocket-accept");
        match (accepts.next(), accepts.next()) {
            (Some(a), None) if a.trim() == self.expected_accept => {}
            _ => return Err(fail(status, "invalid Sec-WebSocket-Accept")),
        }
        let mut protos = values("sec-websocket-protocol");
        let protocol = match (protos.next(), protos.next()) {
            (None, _) => None,
            (Some(p), None) if self.protocols.iter().any(|o| o == p.trim()) => {
                Some(p.trim().to_owned())
            }
            _ => {
                return Err(fail(
                    status,
                    "server selected a protocol that was not offered",
                ))
            }
        };
        let exts = parse_extensions(values("sec-websocket-extensions"));
        let raw_ext_present = values("sec-websocket-extensions").any(|v| !v.trim().is_empty());
        let deflate = match (exts.as_slice(), &self.deflate) {
            ([], _) if raw_ext_present => {
                return Err(fail(status, "invalid Sec-WebSocket-Extensions"))
            }
            ([], _) => None,
            ([e], Some(cfg)) => Some(cfg.accept_response(e).map_err(|r| fail(status, r))?),
            ([_], None) => {
                return Err(fail(
                    status,
                    "server accepted an extension that was not offered",
                ))
            }
            _ => return Err(fail(status, "server accepted more than one extension")),
        };
        Ok(Some((ClientAccepted { protocol, deflate }, n)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::server::{accept, ServerOptions};

    /// Runs the server side on an encoded request and renders its response.
    fn serve(req: &[u8], opts: &ServerOptions) -> Vec<u8> {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut r = httparse::Request::new(&mut headers);
        assert!(r.parse(req).unwrap().is_complete());
        let mut map = http::HeaderMap::new();
        for h in r.headers.iter() {
            map.append(
                http::HeaderName::from_bytes(h.name.as_bytes()).unwrap(),
                http::HeaderValue::from_bytes(h.value).unwrap(),
            );
        }
        let method = http::Method::from_bytes(r.method.unwrap().as_bytes()).unwrap();
        let a = accept(&method, http::Version::HTTP_11, &map, opts).unwrap();
        let mut out = b"HTTP/1.1 101 Switching Protocols\r\n".to_vec();
        for (k, v) in a.response_headers().iter() {
            out.extend_from_slice(k.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    #[test]
    fn full_handshake_incremental() {
        let (req, hs) = ClientRequest::new("localhost:9000", "/ws")
            .protocols(["stomp", "chat"])
            .deflate(DeflateConfig::default())
            .header("Origin", "http://localhost")
            .encode();
        let text = String::from_utf8(req.clone()).unwrap();
        assert!(text.contains("Sec-WebSocket-Version: 13\r\n"));
        assert!(text.contains("Origin: http://localhost\r\n"));
        let opts = ServerOptions {
            protocols: vec!["chat".into()],
            deflate: Some(DeflateConfig::default()),
            ..Default::default()
        };
        let mut resp = serve(&req, &opts);
        let head_len = resp.len();
        resp.extend_from_slice(&[0x81, 0x00]); // a frame right after the head
        for i in 0..head_len {
            assert_eq!(hs.parse_response(&resp[..i]).unwrap(), None);
        }
        let (acc, n) = hs.parse_response(&resp).unwrap().unwrap();
        assert_eq!(n, head_len);
        assert_eq!(acc.protocol.as_deref(), Some("chat"));
        assert!(acc.deflate.is_some());
    }

    #[test]
    fn response_rejections() {
        let (req, hs) = ClientRequest::new("h", "/").encode();
        let ok = serve(&req, &ServerOptions::default());
        assert!(hs.parse_response(&ok).unwrap().is_some());

        let e = hs
            .parse_response(b"HTTP/1.1 403 Forbidden\r\n\r\n")
            .unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        let bad_key = String::from_utf8(ok.clone())
            .unwrap()
            .replace(&hs.expected_accept, "AAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        assert!(hs.parse_response(bad_key.as_bytes()).is_err());
        // Extension that was not offered.
        let mut with_ext = ok[..ok.len() - 2].to_vec();
        with_ext.extend_from_slice(b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n");
        assert!(hs.parse_response(&with_ext).is_err());
        // Protocol that was not offered.
        let mut with_proto = ok[..ok.len() - 2].to_vec();
        with_proto.extend_from_slice(b"Sec-WebSocket-Protocol: chat\r\n\r\n");
        assert!(hs.parse_response(&with_proto).is_err());
        assert!(hs.parse_response(b"garbage\r\n\r\n").is_err());
    }
}
