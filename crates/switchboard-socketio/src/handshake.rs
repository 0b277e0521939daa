//! What the client sent when it connected ([`Handshake`], its request
//! headers kept compactly in [`HandshakeHeaders`]) and per-socket typed
//! storage ([`Extensions`]).

use std::any::{Any, TypeId};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};
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
    pub headers: HandshakeHeaders,
    /// The request target of the Engine.IO handshake (path and query;
    /// [`query`](Self::query) decodes the query).
    pub url: Arc<str>,
    /// [`issued`](Self::issued) (every socket keeps its handshake: the
    /// time in 8 bytes, the address shared, instead of 16 and 32).
    issued: u64,
    address: Option<Arc<SocketAddr>>,
}

impl Handshake {
    pub(crate) fn new(req: &RequestInfo, auth: Value) -> Self {
        Handshake {
            auth,
            headers: req.headers.clone(),
            url: req.url.clone(),
            issued: millis_since_epoch(SystemTime::now()),
            address: req.address.clone(),
        }
    }

    /// A handshake as another node describes it (cluster adapters):
    /// `issued` in milliseconds since the Unix epoch.
    pub fn remote(
        auth: Value,
        headers: HandshakeHeaders,
        url: Arc<str>,
        issued: u64,
        address: Option<SocketAddr>,
    ) -> Self {
        Handshake {
            auth,
            headers,
            url,
            issued,
            address: address.map(Arc::new),
        }
    }

    /// When the socket connected to the namespace.
    pub fn time(&self) -> SystemTime {
        UNIX_EPOCH + std::time::Duration::from_millis(self.issued)
    }

    /// [`time`](Self::time) in milliseconds since the Unix epoch (Node's
    /// `handshake.issued`).
    pub fn issued(&self) -> u64 {
        self.issued
    }

    /// The peer address, when the transport put a `SocketAddr` in the
    /// request extensions.
    pub fn address(&self) -> Option<SocketAddr> {
        self.address.as_deref().copied()
    }

    /// The decoded query pairs of [`url`](Self::url) (`EIO`, `transport`,
    /// `t` and yours), in order. Decoded on each call: a connection keeps
    /// only the URL.
    pub fn query(&self) -> Vec<(String, String)> {
        self.url
            .split_once('?')
            .map(|(_, q)| parse_query(q))
            .unwrap_or_default()
    }

    /// The first query value named `key`, decoded.
    pub fn query_param(&self, key: &str) -> Option<String> {
        let (_, q) = self.url.split_once('?')?;
        q.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_component(k) == key).then(|| decode_component(v))
        })
    }

    /// The auth payload as a typed value.
    pub fn auth_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        from_value(self.auth.clone())
    }
}

fn millis_since_epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The parts of the Engine.IO handshake request a connection keeps.
#[derive(Debug, Clone)]
pub(crate) struct RequestInfo {
    pub headers: HandshakeHeaders,
    pub url: Arc<str>,
    /// Shared with the sockets' handshakes (most transports put none, and
    /// a `SocketAddr` takes 32 bytes).
    pub address: Option<Arc<SocketAddr>>,
}

impl RequestInfo {
    pub(crate) fn from_parts(parts: &http::request::Parts) -> Self {
        RequestInfo {
            headers: HandshakeHeaders::from(&parts.headers),
            url: parts
                .uri
                .path_and_query()
                .map_or_else(|| parts.uri.to_string().into(), |p| p.as_str().into()),
            address: parts.extensions.get::<SocketAddr>().copied().map(Arc::new),
        }
    }
}

/// The headers of the handshake request (Node's `handshake.headers`):
/// lower-case names, each with its value, in request order (a name sent
/// twice, e.g. `cookie`, appears twice). Cloning is cheap: the connection's
/// sockets share one copy.
///
/// The copy is one allocation, names and values back to back. A
/// [`HeaderMap`] would cost about a kilobyte for the handful of headers a
/// WebSocket client sends (an entry is ~100 bytes, and each value its own
/// allocation), held by every idle connection; and hyper's own values are
/// slices of the connection's read buffer, which they would pin.
/// [`to_header_map`](Self::to_header_map) builds a `HeaderMap` when one is
/// needed.
///
/// ```
/// use http::{HeaderMap, HeaderValue};
/// use switchboard_socketio::HandshakeHeaders;
///
/// let mut map = HeaderMap::new();
/// map.insert("x-user", HeaderValue::from_static("ann"));
/// map.append("cookie", HeaderValue::from_static("a=1"));
/// map.append("cookie", HeaderValue::from_static("b=2"));
/// let headers = HandshakeHeaders::from(&map);
/// assert_eq!(headers.get("X-User"), Some("ann"));
/// assert_eq!(headers.get_all("cookie").collect::<Vec<_>>(), [&b"a=1"[..], b"b=2"]);
/// assert_eq!(headers.len(), 3);
/// assert_eq!(headers.to_header_map(), map);
/// ```
#[derive(Clone)]
pub struct HandshakeHeaders(Arc<[u8]>);

/// Per header: the name's length and the value's (`u32`, little endian),
/// then the name and the value.
const ENTRY_HEAD: usize = 8;

impl HandshakeHeaders {
    fn encode<'a>(pairs: impl Iterator<Item = (&'a str, &'a [u8])>) -> Self {
        // A scratch buffer: the `Arc` copies it into a block of its own.
        let mut buf = Vec::new();
        for (name, value) in pairs {
            // hyper refuses heads this large long before: no truncation.
            let (n, v) = (name.len() as u32, value.len() as u32);
            buf.extend_from_slice(&n.to_le_bytes());
            buf.extend_from_slice(&v.to_le_bytes());
            buf.extend_from_slice(name.as_bytes());
            buf.extend_from_slice(value);
        }
        HandshakeHeaders(buf.into())
    }

    /// Every header, in request order: the (lower-case) name and the value.
    pub fn iter(&self) -> HeadersIter<'_> {
        HeadersIter { rest: &self.0 }
    }

    /// The number of headers (a repeated name counts each time).
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The values of the headers named `name` (any case), in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The first value of the header named `name` (any case, a `&str` or
    /// a [`HeaderName`]), if it is UTF-8.
    pub fn get(&self, name: impl AsRef<str>) -> Option<&str> {
        std::str::from_utf8(self.get_bytes(name)?).ok()
    }

    /// The first value of the header named `name` (any case), as bytes.
    pub fn get_bytes(&self, name: impl AsRef<str>) -> Option<&[u8]> {
        let name = name.as_ref();
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Whether a header named `name` (any case) was sent.
    pub fn contains_key(&self, name: impl AsRef<str>) -> bool {
        self.get_bytes(name).is_some()
    }

    /// The headers as a [`HeaderMap`] (a new one each call).
    pub fn to_header_map(&self) -> HeaderMap {
        self.iter()
            .filter_map(|(n, v)| {
                let name = HeaderName::from_bytes(n.as_bytes()).ok()?;
                Some((name, HeaderValue::from_bytes(v).ok()?))
            })
            .collect()
    }
}

impl Default for HandshakeHeaders {
    fn default() -> Self {
        HandshakeHeaders::encode(std::iter::empty())
    }
}

impl From<&HeaderMap> for HandshakeHeaders {
    fn from(map: &HeaderMap) -> Self {
        HandshakeHeaders::encode(map.iter().map(|(n, v)| (n.as_str(), v.as_bytes())))
    }
}

impl FromIterator<(HeaderName, HeaderValue)> for HandshakeHeaders {
    fn from_iter<I: IntoIterator<Item = (HeaderName, HeaderValue)>>(pairs: I) -> Self {
        let pairs: Vec<_> = pairs.into_iter().collect();
        HandshakeHeaders::encode(pairs.iter().map(|(n, v)| (n.as_str(), v.as_bytes())))
    }
}

impl PartialEq for HandshakeHeaders {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for HandshakeHeaders {}

impl fmt::Debug for HandshakeHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(n, v)| (n, String::from_utf8_lossy(v))))
            .finish()
    }
}

impl<'a> IntoIterator for &'a HandshakeHeaders {
    type Item = (&'a str, &'a [u8]);
    type IntoIter = HeadersIter<'a>;
    fn into_iter(self) -> HeadersIter<'a> {
        self.iter()
    }
}

/// The headers of a [`HandshakeHeaders`], in request order.
#[derive(Debug, Clone)]
pub struct HeadersIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for HeadersIter<'a> {
    type Item = (&'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let (head, rest) = self.rest.split_first_chunk::<ENTRY_HEAD>()?;
        let n = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let v = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let (name, rest) = rest.split_at(n);
        let (value, rest) = rest.split_at(v);
        self.rest = rest;
        // Names come from `HeaderName`s: always ASCII.
        Some((std::str::from_utf8(name).unwrap_or_default(), value))
    }
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
pub struct Extensions(RwLock<TypeMap>);

impl Extensions {
    pub(crate) fn from_inner(inner: TypeMap) -> Self {
        Extensions(RwLock::new(inner))
    }

    /// A copy of every value (for connection state recovery).
    pub(crate) fn snapshot(&self) -> TypeMap {
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

/// One value per type, in a list: a socket keeps one or two, and a list
/// of two costs a 64-byte block where `http::Extensions`' hash map costs
/// ~180 bytes for its first entry.
#[derive(Default)]
pub(crate) struct TypeMap(Vec<(TypeId, Box<dyn CloneAny>)>);

trait CloneAny: Any + Send + Sync {
    fn clone_box(&self) -> Box<dyn CloneAny>;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

impl<T: Clone + Send + Sync + 'static> CloneAny for T {
    fn clone_box(&self) -> Box<dyn CloneAny> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

impl Clone for TypeMap {
    fn clone(&self) -> Self {
        TypeMap(
            self.0
                .iter()
                .map(|(t, v)| (*t, (**v).clone_box()))
                .collect(),
        )
    }
}

impl fmt::Debug for TypeMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypeMap")
            .field("len", &self.0.len())
            .finish()
    }
}

impl TypeMap {
    pub(crate) fn new() -> Self {
        TypeMap(Vec::new())
    }

    fn position<T: 'static>(&self) -> Option<usize> {
        self.0.iter().position(|(t, _)| *t == TypeId::of::<T>())
    }

    pub(crate) fn insert<T: Clone + Send + Sync + 'static>(&mut self, value: T) -> Option<T> {
        match self.position::<T>() {
            Some(i) => {
                let slot = self.0[i]
                    .1
                    .as_any_mut()
                    .downcast_mut::<T>()
                    .expect("keyed by type");
                Some(std::mem::replace(slot, value))
            }
            None => {
                // One or two values: no spare room.
                self.0.reserve_exact(1);
                self.0.push((TypeId::of::<T>(), Box::new(value)));
                None
            }
        }
    }

    pub(crate) fn get<T: 'static>(&self) -> Option<&T> {
        let i = self.position::<T>()?;
        self.0[i].1.as_any().downcast_ref::<T>()
    }

    pub(crate) fn get_mut<T: 'static>(&mut self) -> Option<&mut T> {
        let i = self.position::<T>()?;
        self.0[i].1.as_any_mut().downcast_mut::<T>()
    }

    pub(crate) fn remove<T: 'static>(&mut self) -> Option<T> {
        let i = self.position::<T>()?;
        let (_, v) = self.0.swap_remove(i);
        if self.0.is_empty() {
            self.0 = Vec::new();
        }
        v.into_any().downcast::<T>().ok().map(|b| *b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_map_keeps_one_value_per_type() {
        let mut m = TypeMap::new();
        assert_eq!(m.insert(1u32), None);
        assert_eq!(m.insert("a".to_owned()), None);
        assert_eq!(m.insert(2u32), Some(1));
        assert_eq!(m.get::<u32>(), Some(&2));
        *m.get_mut::<String>().unwrap() += "b";
        let copy = m.clone();
        assert_eq!(m.remove::<String>().as_deref(), Some("ab"));
        assert_eq!(m.get::<String>(), None);
        assert_eq!(m.remove::<u64>(), None);
        assert_eq!(copy.get::<String>().map(String::as_str), Some("ab"));
        assert_eq!(copy.get::<u32>(), Some(&2));
        assert_eq!(m.remove::<u32>(), Some(2));
        assert_eq!(m.0.capacity(), 0, "an emptied map gives its block back");
    }

    #[test]
    fn time_and_address_are_kept_compactly() {
        let before = SystemTime::now();
        let addr: SocketAddr = "[::1]:4000".parse().unwrap();
        let req = RequestInfo {
            headers: HandshakeHeaders::default(),
            url: "/socket.io/?EIO=4".into(),
            address: Some(Arc::new(addr)),
        };
        let hs = Handshake::new(&req, Value::Null);
        assert_eq!(hs.address(), Some(addr));
        // Shared with the connection's copy, not one of its own.
        assert!(Arc::ptr_eq(
            hs.address.as_ref().unwrap(),
            req.address.as_ref().unwrap()
        ));
        let since = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        assert!(hs.issued() >= since(before) && hs.issued() <= since(SystemTime::now()));
        assert_eq!(since(hs.time()), hs.issued());
        let remote = Handshake::remote(
            Value::Null,
            HandshakeHeaders::default(),
            "/".into(),
            1_234,
            None,
        );
        assert_eq!((remote.issued(), remote.address()), (1_234, None));
        assert_eq!(
            remote.time(),
            UNIX_EPOCH + std::time::Duration::from_millis(1_234)
        );
    }

    #[test]
    fn query_is_decoded_from_the_url() {
        let hs = Handshake::new(
            &RequestInfo {
                headers: HandshakeHeaders::default(),
                url: "/socket.io/?EIO=4&name=a%20b+c&token=x&name=second".into(),
                address: None,
            },
            Value::Null,
        );
        assert_eq!(hs.query_param("name").as_deref(), Some("a b c"));
        assert_eq!(hs.query_param("token").as_deref(), Some("x"));
        assert_eq!(hs.query_param("absent"), None);
        assert_eq!(hs.query().len(), 4);
        assert_eq!(hs.query()[0], ("EIO".to_owned(), "4".to_owned()));
    }

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

    #[test]
    fn handshake_headers_keep_every_header_in_one_block() {
        let mut map = HeaderMap::new();
        map.insert("host", HeaderValue::from_static("example.com"));
        map.append("cookie", HeaderValue::from_static("a=1"));
        map.append("cookie", HeaderValue::from_static("b=2"));
        map.insert("x-raw", HeaderValue::from_bytes(b"caf\xe9").unwrap());
        let h = HandshakeHeaders::from(&map);
        assert_eq!(h.len(), 4);
        assert_eq!(h.get("HOST"), Some("example.com"));
        assert_eq!(h.get(http::header::COOKIE), Some("a=1"));
        assert_eq!(h.get_all("cookie").count(), 2);
        // Not UTF-8: only as bytes.
        assert_eq!(h.get("x-raw"), None);
        assert_eq!(h.get_bytes("x-raw"), Some(&b"caf\xe9"[..]));
        assert!(!h.contains_key("origin"));
        assert_eq!(h.to_header_map(), map);
        // Names and values back to back, with their lengths: nothing else.
        let payload: usize = map.iter().map(|(n, v)| n.as_str().len() + v.len()).sum();
        assert_eq!(h.0.len(), payload + 4 * ENTRY_HEAD);
        // The connection's sockets share it.
        let copy = h.clone();
        assert!(Arc::ptr_eq(&h.0, &copy.0));
        assert_eq!(copy, h);

        let empty = HandshakeHeaders::default();
        assert!(empty.is_empty() && empty.len() == 0 && empty.iter().next().is_none());
        assert_eq!(format!("{h:?}").matches("cookie").count(), 2);
    }
}
