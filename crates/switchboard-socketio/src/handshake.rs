//! What the client sent when it connected ([`Handshake`]) and per-socket
//! typed storage ([`Extensions`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue};
use parking_lot::RwLock;
use serde::de::DeserializeOwned;
use switchboard_socketio_proto::{from_value, Value};

/// Node's `socket.handshake`.
#[derive(Debug, Clone)]
pub struct Handshake {
    /// The CONNECT payload (`auth` option of the client), `{}` when absent.
    pub auth: Value,
    /// The headers of the Engine.IO handshake request (shared by the
    /// connection's sockets).
    pub headers: Arc<HeaderMap>,
    /// The request target of the Engine.IO handshake (path and query).
    pub url: String,
    /// The decoded query pairs (`EIO`, `transport`, `t` and yours).
    pub query: Arc<[(String, String)]>,
    /// When the socket connected to the namespace.
    pub time: SystemTime,
    /// [`time`](Self::time) in milliseconds since the Unix epoch.
    pub issued: u64,
    /// The peer address, when the transport put a `SocketAddr` in the
    /// request extensions.
    pub address: Option<SocketAddr>,
}

impl Handshake {
    pub(crate) fn new(req: &RequestInfo, auth: Value) -> Self {
        let time = SystemTime::now();
        Handshake {
            auth,
            headers: req.headers.clone(),
            url: req.url.clone(),
            query: req.query.clone(),
            time,
            issued: time
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            address: req.address,
        }
    }

    /// The first query value named `key`.
    pub fn query_param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The auth payload as a typed value.
    pub fn auth_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        from_value(self.auth.clone())
    }
}

/// The parts of the Engine.IO handshake request a connection keeps.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestInfo {
    pub headers: Arc<HeaderMap>,
    pub url: String,
    pub query: Arc<[(String, String)]>,
    pub address: Option<SocketAddr>,
}

impl RequestInfo {
    pub(crate) fn from_parts(parts: &http::request::Parts) -> Self {
        RequestInfo {
            headers: Arc::new(detach(&parts.headers)),
            url: parts
                .uri
                .path_and_query()
                .map_or_else(|| parts.uri.to_string(), |p| p.as_str().to_owned()),
            query: parts
                .uri
                .query()
                .map(parse_query)
                .unwrap_or_default()
                .into(),
            address: parts.extensions.get::<SocketAddr>().copied(),
        }
    }
}

/// A copy of `headers` that owns its values. hyper's header values are
/// slices of the connection's read buffer: kept as they are, the headers
/// of a long-lived connection would pin that whole buffer (kilobytes per
/// connection, for a few hundred bytes of headers).
fn detach(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let mut owned = HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
        owned.set_sensitive(value.is_sensitive());
        out.append(name.clone(), owned);
    }
    out
}

fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_component(k), decode_component(v))
        })
        .collect()
}

fn decode_component(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Typed per-socket storage (like `socket.data` in Node): one value per
/// type, cloned out on read.
#[derive(Debug, Default)]
pub struct Extensions(RwLock<http::Extensions>);

impl Extensions {
    pub(crate) fn from_inner(inner: http::Extensions) -> Self {
        Extensions(RwLock::new(inner))
    }

    /// A copy of every value (for connection state recovery).
    pub(crate) fn snapshot(&self) -> http::Extensions {
        self.0.read().clone()
    }

    /// Stores `value`, returning the previous value of that type.
    pub fn insert<T: Clone + Send + Sync + 'static>(&self, value: T) -> Option<T> {
        self.0.write().insert(value)
    }

    /// A clone of the stored value of type `T`.
    pub fn get<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.0.read().get::<T>().cloned()
    }

    /// Runs `f` on the stored value of type `T` (mutable), if any.
    pub fn with_mut<T: Clone + Send + Sync + 'static, R>(
        &self,
        f: impl FnOnce(&mut T) -> R,
    ) -> Option<R> {
        self.0.write().get_mut::<T>().map(f)
    }

    /// Removes and returns the stored value of type `T`.
    pub fn remove<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.0.write().remove::<T>()
    }

    /// Whether a value of type `T` is stored.
    pub fn contains<T: Clone + Send + Sync + 'static>(&self) -> bool {
        self.0.read().get::<T>().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        assert_eq!(
            parse_query("EIO=4&transport=polling&name=a%20b+c&x=%zz&e="),
            vec![
                ("EIO".into(), "4".into()),
                ("transport".into(), "polling".into()),
                ("name".into(), "a b c".into()),
                ("x".into(), "%zz".into()),
                ("e".into(), "".into()),
            ]
        );
        assert_eq!(decode_component("%4"), "%4");
        assert_eq!(decode_component("%41"), "A");
    }
}
