//! What the client sent when it connected ([`Handshake`]; the target and
//! headers of its request kept compactly in one [`HandshakeRequest`]) and
//! per-socket typed storage ([`Extensions`]).

use std::any::{Any, TypeId};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};
use parking_lot::RwLock;
use serde::de::DeserializeOwned;
use switchboard_socketio_proto::{from_value, Value};

/// Node's `socket.handshake`. Every socket keeps one, so it is compact:
/// 32 bytes, the request (address included) shared with the connection,
/// `auth` boxed only when the client sent one.
#[derive(Debug, Clone)]
pub struct Handshake {
    /// The CONNECT payload; `None` for `{}` (most clients send none): 8
    /// bytes in every socket instead of 40.
    auth: Option<Box<Value>>,
    request: HandshakeRequest,
    /// [`issued`](Self::issued) (the time in 8 bytes, not 16).
    issued: u64,
}

/// `{}`: the auth of a client that sent none.
static NO_AUTH: Value = Value::Object(Vec::new());

fn boxed_auth(auth: Value) -> Option<Box<Value>> {
    match auth {
        Value::Object(fields) if fields.is_empty() => None,
        other => Some(Box::new(other)),
    }
}

impl Handshake {
    pub(crate) fn new(request: &HandshakeRequest, auth: Value) -> Self {
        Handshake {
            auth: boxed_auth(auth),
            request: request.clone(),
            issued: millis_since_epoch(SystemTime::now()),
        }
    }

    /// A handshake as another node describes it (cluster adapters):
    /// `issued` in milliseconds since the Unix epoch.
    pub fn remote(auth: Value, request: HandshakeRequest, issued: u64) -> Self {
        Handshake {
            auth: boxed_auth(auth),
            request,
            issued,
        }
    }

    /// The CONNECT payload (the client's `auth` option), `{}` when absent.
    pub fn auth(&self) -> &Value {
        self.auth.as_deref().unwrap_or(&NO_AUTH)
    }

    /// The headers of the Engine.IO handshake request (those the server
    /// keeps: [`Config::handshake_headers`](crate::Config::handshake_headers)).
    pub fn headers(&self) -> HandshakeHeaders<'_> {
        self.request.headers()
    }

    /// The request target of the Engine.IO handshake (path and query;
    /// [`query`](Self::query) decodes the query).
    pub fn url(&self) -> &str {
        self.request.url()
    }

    /// The request this handshake shares with its connection's sockets.
    pub fn request(&self) -> &HandshakeRequest {
        &self.request
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
        self.request.address()
    }

    /// The decoded query pairs of [`url`](Self::url) (`EIO`, `transport`,
    /// `t` and yours), in order. Decoded on each call: a connection keeps
    /// only the URL.
    pub fn query(&self) -> Vec<(String, String)> {
        self.url()
            .split_once('?')
            .map(|(_, q)| parse_query(q))
            .unwrap_or_default()
    }

    /// The first query value named `key`, decoded.
    pub fn query_param(&self, key: &str) -> Option<String> {
        let (_, q) = self.url().split_once('?')?;
        q.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_component(k) == key).then(|| decode_component(v))
        })
    }

    /// The auth payload as a typed value.
    pub fn auth_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        from_value(self.auth().clone())
    }
}

fn millis_since_epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Which headers of the Engine.IO handshake request a connection keeps for
/// its sockets' [`Handshake::headers`]
/// ([`Config::handshake_headers`](crate::Config::handshake_headers)).
/// Every idle connection holds them: a browser sends about a kilobyte.
#[derive(Debug, Clone, Default)]
pub enum KeptHeaders {
    /// Every header, as Node keeps them (the default).
    #[default]
    All,
    /// Only these (e.g. `authorization` when only a middleware reads it).
    Only(Vec<HeaderName>),
}

impl KeptHeaders {
    fn keeps(&self, name: &HeaderName) -> bool {
        match self {
            KeptHeaders::All => true,
            KeptHeaders::Only(names) => names.contains(name),
        }
    }
}

/// The peer address, the target and the headers of the Engine.IO handshake
/// request, kept by a connection and shared by its sockets' handshakes:
/// one allocation — the address (tagged: none, IPv4 or IPv6), the URL,
/// then every header's name and value back to back, each with its length.
/// Cloning is cheap.
///
/// A [`HeaderMap`] would cost about a kilobyte for the handful of headers a
/// WebSocket client sends (an entry is ~100 bytes, and each value its own
/// allocation), held by every idle connection; and hyper's own values are
/// slices of the connection's read buffer, which they would pin.
/// [`HandshakeHeaders::to_header_map`] builds a `HeaderMap` when one is
/// needed.
///
/// ```
/// use http::{HeaderMap, HeaderValue};
/// use switchboard_socketio::HandshakeRequest;
///
/// let mut map = HeaderMap::new();
/// map.insert("x-user", HeaderValue::from_static("ann"));
/// map.append("cookie", HeaderValue::from_static("a=1"));
/// map.append("cookie", HeaderValue::from_static("b=2"));
/// let request = HandshakeRequest::new("/socket.io/?EIO=4", &map);
/// assert_eq!(request.url(), "/socket.io/?EIO=4");
/// let headers = request.headers();
/// assert_eq!(headers.get("X-User"), Some("ann"));
/// assert_eq!(headers.get_all("cookie").collect::<Vec<_>>(), [&b"a=1"[..], b"b=2"]);
/// assert_eq!(headers.len(), 3);
/// assert_eq!(headers.to_header_map(), map);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct HandshakeRequest(Arc<[u8]>);

/// The URL's length (`u32`, little endian) before the URL.
const URL_HEAD: usize = 4;
/// The address's tag: none, IPv4 (then the address and the port: 6 bytes)
/// or IPv6 (the address, the port, the flow info and the scope id: 26).
const NO_ADDR: u8 = 0;
const V4: u8 = 4;
const V6: u8 = 6;
/// Per header: the name's length and the value's (`u32`, little endian),
/// then the name and the value.
const ENTRY_HEAD: usize = 8;

impl HandshakeRequest {
    /// `url` (the request target) and `headers` (lower-case names, in
    /// request order), e.g. a `&HeaderMap`.
    pub fn new<N, V>(url: &str, headers: impl IntoIterator<Item = (N, V)>) -> Self
    where
        N: AsRef<str>,
        V: AsRef<[u8]>,
    {
        Self::from_peer(None, url, headers)
    }

    /// [`new`](Self::new) with the peer's address.
    pub fn from_peer<N, V>(
        address: Option<SocketAddr>,
        url: &str,
        headers: impl IntoIterator<Item = (N, V)>,
    ) -> Self
    where
        N: AsRef<str>,
        V: AsRef<[u8]>,
    {
        // A scratch buffer: the `Arc` copies it into a block of its own.
        // hyper refuses heads this large long before: no truncation.
        let mut buf = Vec::with_capacity(27 + URL_HEAD + url.len());
        match address {
            None => buf.push(NO_ADDR),
            Some(SocketAddr::V4(a)) => {
                buf.push(V4);
                buf.extend_from_slice(&a.ip().octets());
                buf.extend_from_slice(&a.port().to_le_bytes());
            }
            Some(SocketAddr::V6(a)) => {
                buf.push(V6);
                buf.extend_from_slice(&a.ip().octets());
                buf.extend_from_slice(&a.port().to_le_bytes());
                buf.extend_from_slice(&a.flowinfo().to_le_bytes());
                buf.extend_from_slice(&a.scope_id().to_le_bytes());
            }
        }
        buf.extend_from_slice(&(url.len() as u32).to_le_bytes());
        buf.extend_from_slice(url.as_bytes());
        for (name, value) in headers {
            let (name, value) = (name.as_ref(), value.as_ref());
            buf.extend_from_slice(&(name.len() as u32).to_le_bytes());
            buf.extend_from_slice(&(value.len() as u32).to_le_bytes());
            buf.extend_from_slice(name.as_bytes());
            buf.extend_from_slice(value);
        }
        HandshakeRequest(buf.into())
    }

    /// The request as the connection's transport saw it: the path and
    /// query, the headers `kept`, the peer address (a `SocketAddr` in the
    /// request extensions).
    pub(crate) fn from_parts(parts: &http::request::Parts, kept: &KeptHeaders) -> Self {
        let url = parts.uri.path_and_query().map_or_else(
            || std::borrow::Cow::Owned(parts.uri.to_string()),
            |p| std::borrow::Cow::Borrowed(p.as_str()),
        );
        let headers = parts
            .headers
            .iter()
            .filter(|(n, _)| kept.keeps(n))
            .map(|(n, v)| (n.as_str(), v.as_bytes()));
        let address = parts.extensions.get::<SocketAddr>().copied();
        Self::from_peer(address, &url, headers)
    }

    /// The address's length in the block, tag included.
    fn address_len(&self) -> usize {
        match self.0.first() {
            Some(&V4) => 1 + 6,
            Some(&V6) => 1 + 26,
            _ => 1,
        }
    }

    /// The peer's address, if the transport gave it.
    pub fn address(&self) -> Option<SocketAddr> {
        let b = &self.0[..self.address_len()];
        let port = |at: usize| u16::from_le_bytes([b[at], b[at + 1]]);
        let word = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        match b[0] {
            V4 => {
                let ip: [u8; 4] = b[1..5].try_into().ok()?;
                Some(SocketAddr::from((ip, port(5))))
            }
            V6 => {
                let ip: [u8; 16] = b[1..17].try_into().ok()?;
                Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                    ip.into(),
                    port(17),
                    word(19),
                    word(23),
                )))
            }
            _ => None,
        }
    }

    fn split(&self) -> (&str, &[u8]) {
        let (n, rest) = self.0[self.address_len()..]
            .split_first_chunk::<URL_HEAD>()
            .expect("built with its URL's length");
        let (url, headers) = rest.split_at(u32::from_le_bytes(*n) as usize);
        // Copied from a `&str`.
        (std::str::from_utf8(url).unwrap_or_default(), headers)
    }

    /// The request target (path and query).
    pub fn url(&self) -> &str {
        self.split().0
    }

    /// The headers (Node's `handshake.headers`).
    pub fn headers(&self) -> HandshakeHeaders<'_> {
        HandshakeHeaders(self.split().1)
    }
}

impl fmt::Debug for HandshakeRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandshakeRequest")
            .field("address", &self.address())
            .field("url", &self.url())
            .field("headers", &self.headers())
            .finish()
    }
}

/// The headers of a handshake request (Node's `handshake.headers`):
/// lower-case names, each with its value, in request order (a name sent
/// twice, e.g. `cookie`, appears twice). A view of its
/// [`HandshakeRequest`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HandshakeHeaders<'a>(&'a [u8]);

impl<'a> HandshakeHeaders<'a> {
    /// Every header, in request order: the (lower-case) name and the value.
    pub fn iter(&self) -> HeadersIter<'a> {
        HeadersIter { rest: self.0 }
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
    pub fn get_all(self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The first value of the header named `name` (any case, a `&str` or
    /// a [`HeaderName`]), if it is UTF-8.
    pub fn get(&self, name: impl AsRef<str>) -> Option<&'a str> {
        std::str::from_utf8(self.get_bytes(name)?).ok()
    }

    /// The first value of the header named `name` (any case), as bytes.
    pub fn get_bytes(&self, name: impl AsRef<str>) -> Option<&'a [u8]> {
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

impl fmt::Debug for HandshakeHeaders<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(n, v)| (n, String::from_utf8_lossy(v))))
            .finish()
    }
}

impl<'a> IntoIterator for HandshakeHeaders<'a> {
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

/// One value per type, in a list of boxed values (each knows its type):
/// a socket keeps one or two, and a list of two costs a 32-byte block
/// where `http::Extensions`' hash map costs ~180 bytes for its first entry.
#[derive(Default)]
pub(crate) struct TypeMap(Vec<Box<dyn CloneAny>>);

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
        TypeMap(self.0.iter().map(|v| (**v).clone_box()).collect())
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

    /// Where the value of type `T` is (each value's type read through its
    /// vtable: an entry is 16 bytes, not 32 with the `TypeId` beside it).
    fn position<T: 'static>(&self) -> Option<usize> {
        self.0
            .iter()
            .position(|v| (**v).as_any().type_id() == TypeId::of::<T>())
    }

    pub(crate) fn insert<T: Clone + Send + Sync + 'static>(&mut self, value: T) -> Option<T> {
        match self.position::<T>() {
            Some(i) => {
                let slot = self.0[i]
                    .as_any_mut()
                    .downcast_mut::<T>()
                    .expect("keyed by type");
                Some(std::mem::replace(slot, value))
            }
            None => {
                // One or two values: no spare room.
                self.0.reserve_exact(1);
                self.0.push(Box::new(value));
                None
            }
        }
    }

    pub(crate) fn get<T: 'static>(&self) -> Option<&T> {
        let i = self.position::<T>()?;
        self.0[i].as_any().downcast_ref::<T>()
    }

    pub(crate) fn get_mut<T: 'static>(&mut self) -> Option<&mut T> {
        let i = self.position::<T>()?;
        self.0[i].as_any_mut().downcast_mut::<T>()
    }

    pub(crate) fn remove<T: 'static>(&mut self) -> Option<T> {
        let i = self.position::<T>()?;
        let v = self.0.swap_remove(i);
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
        for addr in ["[fe80::1%2]:4000", "127.0.0.1:80"] {
            let addr: SocketAddr = addr.parse().unwrap();
            let req = HandshakeRequest::from_peer(Some(addr), "/socket.io/?EIO=4", no_headers());
            assert_eq!(req.url(), "/socket.io/?EIO=4");
            let hs = Handshake::new(&req, Value::Null);
            assert_eq!(hs.address(), Some(addr));
            // In the connection's block, not in one of its own.
            assert!(Arc::ptr_eq(&hs.request.0, &req.0));
        }
        let v6 = std::net::SocketAddrV6::new(std::net::Ipv6Addr::LOCALHOST, 1, 0xabcd, 7);
        let req = HandshakeRequest::from_peer(Some(v6.into()), "/", no_headers());
        assert_eq!(req.address(), Some(v6.into()));
        let req = HandshakeRequest::from_peer(None, "/x", no_headers());
        assert_eq!((req.address(), req.url()), (None, "/x"));
        let req = HandshakeRequest::new("/socket.io/?EIO=4", no_headers());
        let hs = Handshake::new(&req, Value::Null);
        let since = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        assert!(hs.issued() >= since(before) && hs.issued() <= since(SystemTime::now()));
        assert_eq!(since(hs.time()), hs.issued());
        let remote =
            Handshake::remote(Value::Null, HandshakeRequest::new("/", no_headers()), 1_234);
        assert_eq!((remote.issued(), remote.address()), (1_234, None));
        assert_eq!(
            remote.time(),
            UNIX_EPOCH + std::time::Duration::from_millis(1_234)
        );
    }

    #[test]
    fn query_is_decoded_from_the_url() {
        let hs = Handshake::new(
            &HandshakeRequest::new(
                "/socket.io/?EIO=4&name=a%20b+c&token=x&name=second",
                no_headers(),
            ),
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

    fn no_headers() -> [(&'static str, &'static [u8]); 0] {
        []
    }

    #[test]
    fn the_request_is_one_block_of_url_and_headers() {
        let mut map = HeaderMap::new();
        map.insert("host", HeaderValue::from_static("example.com"));
        map.append("cookie", HeaderValue::from_static("a=1"));
        map.append("cookie", HeaderValue::from_static("b=2"));
        map.insert("x-raw", HeaderValue::from_bytes(b"caf\xe9").unwrap());
        let url = "/socket.io/?EIO=4&transport=websocket";
        let r = HandshakeRequest::new(url, &map);
        assert_eq!(r.url(), url);
        let h = r.headers();
        assert_eq!(h.len(), 4);
        assert_eq!(h.get("HOST"), Some("example.com"));
        assert_eq!(h.get(http::header::COOKIE), Some("a=1"));
        assert_eq!(h.get_all("cookie").count(), 2);
        // Not UTF-8: only as bytes.
        assert_eq!(h.get("x-raw"), None);
        assert_eq!(h.get_bytes("x-raw"), Some(&b"caf\xe9"[..]));
        assert!(!h.contains_key("origin"));
        assert_eq!(h.to_header_map(), map);
        // The URL, names and values back to back, with their lengths:
        // nothing else.
        let payload: usize = map.iter().map(|(n, v)| n.as_str().len() + v.len()).sum();
        assert_eq!(
            r.0.len(),
            1 + URL_HEAD + url.len() + payload + 4 * ENTRY_HEAD
        );
        // The connection's sockets share it.
        let copy = r.clone();
        assert!(Arc::ptr_eq(&r.0, &copy.0));
        assert_eq!(copy, r);
        assert_eq!(format!("{h:?}").matches("cookie").count(), 2);

        let empty = HandshakeRequest::new("", no_headers());
        let h = empty.headers();
        assert!(h.is_empty() && h.iter().next().is_none());
        assert_eq!(h.len(), 0);
        assert_eq!(empty.url(), "");
    }

    #[test]
    fn a_connection_keeps_the_headers_it_is_told_to() {
        let req = http::Request::get("/socket.io/?EIO=4")
            .header("authorization", "Bearer t")
            .header("user-agent", "x")
            .header("cookie", "a=1")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let all = HandshakeRequest::from_parts(&parts, &KeptHeaders::All);
        assert_eq!(all.headers().len(), 3);
        assert_eq!(all.url(), "/socket.io/?EIO=4");
        let only = HandshakeRequest::from_parts(
            &parts,
            &KeptHeaders::Only(vec![http::header::AUTHORIZATION]),
        );
        let kept: Vec<_> = only.headers().iter().collect();
        assert_eq!(kept, [("authorization", &b"Bearer t"[..])]);
        assert_eq!(only.url(), "/socket.io/?EIO=4");
        assert!(only.0.len() < all.0.len());
        assert_eq!(only.address(), None);
    }

    #[test]
    fn an_empty_auth_takes_no_block() {
        let req = HandshakeRequest::new("/", no_headers());
        let hs = Handshake::new(&req, Value::Object(Vec::new()));
        assert!(hs.auth.is_none());
        assert_eq!(hs.auth(), &Value::Object(Vec::new()));
        let with = Handshake::new(&req, Value::Object(vec![("a".into(), Value::from(1u64))]));
        assert_eq!(
            with.auth_as::<serde_json::Value>().unwrap(),
            serde_json::json!({"a": 1})
        );
        assert_eq!(std::mem::size_of::<Handshake>(), 32);
    }
}
