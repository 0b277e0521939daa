//! The payload data model: [`Value`], JSON plus binary ([`Value::Binary`]),
//! with objects kept in insertion order, conversions to and from
//! [`serde_json::Value`], and serde `Serialize`/`Deserialize` for `Value`.

use std::fmt;

use bytes::Bytes;
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Number;

/// An object: key/value pairs in insertion order (the order they were parsed
/// or built in, which is the order they are encoded in).
pub type Map = Vec<(String, Value)>;

/// A Socket.IO payload value: any JSON value, or binary data.
///
/// Binary values travel as separate attachments on the wire (see
/// [`encode`](crate::encode())); everywhere else they sit in the tree where
/// the sender put them, like a `Buffer` in a JavaScript object.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// JSON `null` (also what `undefined` inside an array becomes in JS).
    #[default]
    Null,
    /// JSON `true` / `false`.
    Bool(bool),
    /// A JSON number.
    Number(Number),
    /// A JSON string.
    String(String),
    /// Binary data (a `Buffer` / `ArrayBuffer` / `Blob` on the JS side).
    Binary(Bytes),
    /// A JSON array.
    Array(Vec<Value>),
    /// A JSON object, keys in insertion order.
    Object(Map),
}

impl Value {
    /// The string, if this is a [`Value::String`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The elements, if this is a [`Value::Array`].
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The entries, if this is a [`Value::Object`].
    pub fn as_object(&self) -> Option<&Map> {
        match self {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }

    /// The bytes, if this is a [`Value::Binary`].
    pub fn as_binary(&self) -> Option<&Bytes> {
        match self {
            Value::Binary(b) => Some(b),
            _ => None,
        }
    }

    /// Looks up `key` in an object (the last entry wins if a hand-built map
    /// repeats a key); `None` for other variants.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_object()?
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Whether a [`Value::Binary`] appears anywhere in this tree.
    pub fn has_binary(&self) -> bool {
        self.count_binary() > 0
    }

    /// How many [`Value::Binary`] leaves this tree holds (the number of
    /// attachments it encodes to).
    pub fn count_binary(&self) -> usize {
        match self {
            Value::Binary(_) => 1,
            Value::Array(a) => a.iter().map(Value::count_binary).sum(),
            Value::Object(m) => m.iter().map(|(_, v)| v.count_binary()).sum(),
            _ => 0,
        }
    }

    /// Parses JSON text (which cannot hold binary) into a `Value`, keeping
    /// key order. Like `JSON.parse`, a repeated key keeps its first position
    /// and its last value. Nesting is limited to 128 levels (serde_json).
    pub fn from_json_str(json: &str) -> Result<Value, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// Serializes to JSON text exactly like `JSON.stringify` does (number
    /// formatting included); binary values are written as Node's
    /// `Buffer.prototype.toJSON` form `{"type":"Buffer","data":[1,2]}`.
    pub fn to_json_string(&self) -> String {
        let mut out = String::new();
        crate::json::write_value(&mut out, self, &mut crate::json::BinaryAsBufferJson);
        out
    }
}

impl fmt::Display for Value {
    /// Formats as [`Value::to_json_string`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json_string())
    }
}

/// The error of converting a [`Value`] holding binary data into a
/// [`serde_json::Value`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainsBinary;

impl fmt::Display for ContainsBinary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("value contains binary data, which JSON cannot hold")
    }
}

impl std::error::Error for ContainsBinary {}

impl From<serde_json::Value> for Value {
    /// Lossless, except that a `serde_json::Map` without serde_json's
    /// `preserve_order` feature has already sorted its keys.
    fn from(v: serde_json::Value) -> Self {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => Value::Number(n),
            serde_json::Value::String(s) => Value::String(s),
            serde_json::Value::Array(a) => Value::Array(a.into_iter().map(Value::from).collect()),
            serde_json::Value::Object(m) => {
                Value::Object(m.into_iter().map(|(k, v)| (k, Value::from(v))).collect())
            }
        }
    }
}

impl TryFrom<Value> for serde_json::Value {
    type Error = ContainsBinary;

    /// Fails with [`ContainsBinary`] if any [`Value::Binary`] is present.
    fn try_from(v: Value) -> Result<Self, ContainsBinary> {
        Ok(match v {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(b),
            Value::Number(n) => serde_json::Value::Number(n),
            Value::String(s) => serde_json::Value::String(s),
            Value::Binary(_) => return Err(ContainsBinary),
            Value::Array(a) => serde_json::Value::Array(
                a.into_iter()
                    .map(serde_json::Value::try_from)
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(m) => {
                let mut out = serde_json::Map::new();
                for (k, v) in m {
                    out.insert(k, serde_json::Value::try_from(v)?);
                }
                serde_json::Value::Object(out)
            }
        })
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl From<Bytes> for Value {
    fn from(b: Bytes) -> Self {
        Value::Binary(b)
    }
}

impl From<Vec<Value>> for Value {
    fn from(a: Vec<Value>) -> Self {
        Value::Array(a)
    }
}

impl From<Map> for Value {
    fn from(m: Map) -> Self {
        Value::Object(m)
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(n: $t) -> Self {
                Value::Number(Number::from(n))
            }
        }
    )*};
}
from_int!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);

impl From<f64> for Value {
    /// NaN and infinities become [`Value::Null`], as in `JSON.stringify`.
    fn from(f: f64) -> Self {
        Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

impl Serialize for Value {
    /// Binary is serialized with `serialize_bytes`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Number(n) => n.serialize(s),
            Value::String(v) => s.serialize_str(v),
            Value::Binary(b) => s.serialize_bytes(b),
            Value::Array(a) => {
                let mut seq = s.serialize_seq(Some(a.len()))?;
                for v in a {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Value::Object(m) => {
                let mut map = s.serialize_map(Some(m.len()))?;
                for (k, v) in m {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    /// Accepts anything self-describing; bytes become [`Value::Binary`].
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value or bytes")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_f64<E>(self, f: f64) -> Result<Value, E> {
        Ok(Value::from(f))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_bytes<E>(self, b: &[u8]) -> Result<Value, E> {
        Ok(Value::Binary(Bytes::copy_from_slice(b)))
    }

    fn visit_byte_buf<E>(self, b: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Binary(Bytes::from(b)))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(v) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out: Map = Vec::new();
        // Index used only once the object is large, to keep duplicate-key
        // handling linear.
        let mut index: Option<std::collections::HashMap<String, usize>> = None;
        while let Some(key) = map.next_key::<String>()? {
            let value: Value = map.next_value()?;
            if out.len() == 32 && index.is_none() {
                index = Some(
                    out.iter()
                        .enumerate()
                        .map(|(i, (k, _))| (k.clone(), i))
                        .collect(),
                );
            }
            let existing = match &index {
                Some(ix) => ix.get(&key).copied(),
                None => out.iter().position(|(k, _)| *k == key),
            };
            match existing {
                // JSON.parse: a repeated key keeps its first position, last value.
                Some(i) => out[i].1 = value,
                None => {
                    if let Some(ix) = &mut index {
                        ix.insert(key.clone(), out.len());
                    }
                    out.push((key, value));
                }
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_keeps_order_and_js_duplicate_rule() {
        let v = Value::from_json_str(r#"{"b":1,"a":2,"b":3}"#).unwrap();
        assert_eq!(
            v,
            Value::Object(vec![("b".into(), 3.into()), ("a".into(), 2.into())])
        );
        assert_eq!(v.to_json_string(), r#"{"b":3,"a":2}"#);
        assert_eq!(v.get("b"), Some(&Value::from(3)));
    }

    #[test]
    fn duplicate_keys_in_large_object() {
        let mut json = String::from("{");
        for i in 0..100 {
            json.push_str(&format!("\"k{}\":{},", i % 50, i));
        }
        json.push_str("\"z\":0}");
        let v = Value::from_json_str(&json).unwrap();
        let m = v.as_object().unwrap();
        assert_eq!(m.len(), 51);
        assert_eq!(m[0], ("k0".to_string(), Value::from(50)));
        assert_eq!(m[50].0, "z");
    }

    #[test]
    fn serde_json_conversions() {
        let j = serde_json::json!({"a": [1, "x", null, true, 1.5]});
        let v = Value::from(j.clone());
        assert_eq!(serde_json::Value::try_from(v).unwrap(), j);
        let b = Value::Array(vec![Value::Binary(Bytes::from_static(b"x"))]);
        assert_eq!(serde_json::Value::try_from(b), Err(ContainsBinary));
    }

    #[test]
    fn binary_to_json_is_node_buffer_form() {
        let v = Value::Binary(Bytes::from_static(&[1, 2]));
        assert_eq!(v.to_string(), r#"{"type":"Buffer","data":[1,2]}"#);
        assert_eq!(Value::from(f64::NAN), Value::Null);
    }
}
