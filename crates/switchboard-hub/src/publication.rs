//! Published messages: [`Payload`] (what a client sent), [`Publication`] (a
//! payload stamped with topic, per-topic sequence number, sender and time) and
//! the [`EncodingCache`] that lets each protocol encode a publication once.

use std::fmt;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

/// What kind of data a [`Payload`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadKind {
    /// UTF-8 text.
    Text,
    /// Opaque bytes.
    Binary,
    /// A JSON document that is *not* a plain JSON string (object, array,
    /// number, `true`/`false`/`null`). A JSON string is stored as [`Text`]
    /// with its unquoted content, see [`Payload::json_or_text`].
    ///
    /// [`Text`]: PayloadKind::Text
    Json,
}

/// The data of a message, independent of the protocol it arrived on.
///
/// Conventions shared by all transports:
/// * [`PayloadKind::Text`] data is valid UTF-8 (transports validate before
///   constructing it; [`Payload::text`] does not re-check).
/// * [`PayloadKind::Json`] data is a JSON document other than a plain string.
///   A JSON client publishing the JSON string `"hi"` produces `Text("hi")`, so
///   that a raw-WebSocket text client receives `hi`, and a JSON client gets
///   `"hi"` back. Use [`Payload::json_or_text`] to apply this rule.
/// * [`PayloadKind::Binary`] is opaque bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Payload {
    /// Kind of data.
    pub kind: PayloadKind,
    /// The bytes (cheaply clonable, shared with every recipient).
    pub data: Bytes,
}

impl Payload {
    /// Creates a payload of the given kind.
    pub fn new(kind: PayloadKind, data: impl Into<Bytes>) -> Self {
        Payload {
            kind,
            data: data.into(),
        }
    }

    /// A UTF-8 text payload. The caller guarantees `data` is valid UTF-8.
    pub fn text(data: impl Into<Bytes>) -> Self {
        Self::new(PayloadKind::Text, data)
    }

    /// A binary payload.
    pub fn binary(data: impl Into<Bytes>) -> Self {
        Self::new(PayloadKind::Binary, data)
    }

    /// A JSON document payload, stored as given (not validated). Prefer
    /// [`Payload::json_or_text`] for data received from a JSON client.
    pub fn json(data: impl Into<Bytes>) -> Self {
        Self::new(PayloadKind::Json, data)
    }

    /// Builds a payload from the serialized JSON value a JSON client sent:
    /// a JSON *string* becomes [`PayloadKind::Text`] holding the unquoted,
    /// unescaped content (zero-copy when it contains no escapes); anything
    /// else becomes [`PayloadKind::Json`] as is (not validated). A malformed
    /// string literal is kept as `Json`.
    pub fn json_or_text(data: impl Into<Bytes>) -> Self {
        let data: Bytes = data.into();
        let is_ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
        let start = data.iter().position(|b| !is_ws(b)).unwrap_or(data.len());
        let end = data
            .iter()
            .rposition(|b| !is_ws(b))
            .map_or(start, |e| e + 1);
        let doc = &data[start..end];
        if doc.len() >= 2 && doc[0] == b'"' && doc[doc.len() - 1] == b'"' {
            let inner = &doc[1..doc.len() - 1];
            let simple = !inner.iter().any(|&b| b == b'\\' || b == b'"' || b < 0x20);
            if simple && std::str::from_utf8(inner).is_ok() {
                return Self::text(data.slice(start + 1..end - 1));
            }
            if let Ok(s) = serde_json::from_slice::<String>(doc) {
                return Self::text(s);
            }
        }
        Self::new(PayloadKind::Json, data)
    }

    /// Length of the data in bytes.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the data is empty.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The data as `&str` if it is valid UTF-8 (always the case for `Text`
    /// and `Json` payloads built by well-behaved transports).
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.data).ok()
    }
}

/// The wire encodings a publication may be cached in, one slot each.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Raw WebSocket frame carrying only the payload.
    WsRaw,
    /// WebSocket frame carrying a JSON envelope (topic, seq, from, data).
    WsEnvelope,
    /// Socket.IO packet.
    SocketIo,
    /// SockJS frame.
    SockJs,
    /// STOMP `MESSAGE` frame.
    Stomp,
}

impl Encoding {
    /// Number of encoding slots.
    pub const COUNT: usize = 5;

    fn index(self) -> usize {
        self as usize
    }
}

/// Per-publication cache of encoded wire bytes, one lock-free-after-init slot
/// per [`Encoding`]. The first recipient of a protocol encodes, everybody
/// else clones the same [`Bytes`] (a reference-count increment).
///
/// Each slot is a `OnceLock<Box<Bytes>>` (16 bytes) so an unused cache costs
/// 80 bytes and no heap.
#[derive(Default)]
pub struct EncodingCache {
    slots: [OnceLock<Box<Bytes>>; Encoding::COUNT],
}

impl EncodingCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the cached bytes for `slot`, computing them with `f` on first
    /// use. Concurrent callers block until the first one finishes, so `f`
    /// runs at most once per slot.
    pub fn get_or_init(&self, slot: Encoding, f: impl FnOnce() -> Bytes) -> Bytes {
        (**self.slots[slot.index()].get_or_init(|| Box::new(f()))).clone()
    }

    /// Returns the cached bytes for `slot` if already computed.
    pub fn get(&self, slot: Encoding) -> Option<Bytes> {
        self.slots[slot.index()].get().map(|b| (**b).clone())
    }
}

impl fmt::Debug for EncodingCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cached = self.slots.iter().filter(|s| s.get().is_some()).count();
        f.debug_struct("EncodingCache")
            .field("cached", &cached)
            .finish()
    }
}

/// A message published on a topic. Travels as `Arc<Publication>`: one
/// allocation per publish, shared by history and every recipient.
#[derive(Debug)]
pub struct Publication {
    /// Topic it was published on.
    pub topic: Arc<str>,
    /// Per-topic sequence number: starts at 1 and strictly increases. It is
    /// node-local: publications relayed from other nodes through a
    /// [`Backplane`](crate::Backplane) get a local number on arrival.
    pub seq: u64,
    /// Display name of the publisher, if any (`None` for server-side publishes).
    pub from: Option<Arc<str>>,
    /// The data.
    pub payload: Payload,
    /// Publication time, milliseconds since the Unix epoch (the origin node's
    /// time for remote publications).
    pub timestamp_ms: u64,
    /// Encoded forms, filled lazily by transports.
    pub encoded: EncodingCache,
}

impl Publication {
    /// Creates a publication with an empty encoding cache.
    pub fn new(
        topic: Arc<str>,
        seq: u64,
        from: Option<Arc<str>>,
        payload: Payload,
        timestamp_ms: u64,
    ) -> Self {
        Publication {
            topic,
            seq,
            from,
            payload,
            timestamp_ms,
            encoded: EncodingCache::new(),
        }
    }
}

/// Current time in milliseconds since the Unix epoch (0 if the clock is
/// before the epoch).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_or_text_rules() {
        let p = Payload::json_or_text(" \"hello\" ");
        assert_eq!(p.kind, PayloadKind::Text);
        assert_eq!(&p.data[..], b"hello");
        let p = Payload::json_or_text(r#""a\"b\u00e9""#);
        assert_eq!(p.kind, PayloadKind::Text);
        assert_eq!(p.as_str(), Some("a\"b\u{e9}"));
        let p = Payload::json_or_text(r#"{"a":1}"#);
        assert_eq!(p.kind, PayloadKind::Json);
        let p = Payload::json_or_text("42");
        assert_eq!(p.kind, PayloadKind::Json);
        let p = Payload::json_or_text(r#""bad\q""#);
        assert_eq!(p.kind, PayloadKind::Json);
    }

    #[test]
    fn encoding_cache_inits_once() {
        let c = EncodingCache::new();
        let mut calls = 0;
        let a = c.get_or_init(Encoding::Stomp, || {
            calls += 1;
            Bytes::from_static(b"x")
        });
        let b = c.get_or_init(Encoding::Stomp, || {
            calls += 1;
            Bytes::from_static(b"y")
        });
        assert_eq!(a, b);
        assert_eq!(calls, 1);
        assert!(c.get(Encoding::WsRaw).is_none());
        assert_eq!(c.get(Encoding::Stomp).as_deref(), Some(&b"x"[..]));
    }
}
