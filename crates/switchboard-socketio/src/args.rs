//! How Rust values map to Socket.IO event arguments, both ways.
//!
//! * **Out** ([`to_args`]): a tuple is spread into one argument per
//!   element (`("a", 1)` → `emit("ev", "a", 1)`), `()` means no argument,
//!   anything else (struct, string, `Vec`, `serde_json::Value`, ...) is one
//!   argument. To send an array as one argument, send a `Vec`/slice; to
//!   send one tuple-shaped argument, wrap it: `((a, b),)`.
//! * **In** ([`from_args`]): a tuple type takes the arguments positionally
//!   (missing ones read as `null`, so trailing `Option`s work; extra ones
//!   are ignored, as in JS); `()` ignores them; any other type reads the
//!   first argument (`null` when there is none).
//!
//! Binary: [`bytes::Bytes`] (or `serde_bytes`) serializes to an attachment;
//! an incoming attachment deserializes into `Bytes` or `Vec<u8>`. A plain
//! `Vec<u8>` is sent as an array of numbers, as in JS.
//!
//! Any number of arguments, raw: [`Args`] (JS `(...args)`), both ways.

use std::fmt;

use serde::de::{self, DeserializeOwned, Visitor};
use serde::ser::{self, Impossible, Serialize};
use switchboard_socketio_proto::{to_value, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Unit,
    Tuple,
    Other,
}

/// Serializes `data` into the argument list (see the module docs).
pub fn to_args<T: Serialize + ?Sized>(data: &T) -> Result<Vec<Value>, String> {
    let shape = match data.serialize(Probe) {
        Ok(s) => s,
        Err(ProbeStop(s)) => s,
    };
    match shape {
        Shape::Unit => Ok(Vec::new()),
        Shape::Tuple => match to_value(data).map_err(|e| e.to_string())? {
            Value::Array(a) => Ok(a),
            v => Ok(vec![v]),
        },
        Shape::Other => Ok(vec![to_value(data).map_err(|e| e.to_string())?]),
    }
}

/// Deserializes the argument list into `T` (see the module docs).
pub fn from_args<T: DeserializeOwned>(args: Vec<Value>) -> Result<T, serde_json::Error> {
    T::deserialize(ArgsDe(args))
}

#[derive(Debug)]
struct ProbeStop(Shape);

impl fmt::Display for ProbeStop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("probe")
    }
}

impl std::error::Error for ProbeStop {}

impl ser::Error for ProbeStop {
    fn custom<T: fmt::Display>(_: T) -> Self {
        ProbeStop(Shape::Other)
    }
}

/// A serializer that only looks at the outermost shape of a value.
struct Probe;

type Imp = Impossible<Shape, ProbeStop>;

macro_rules! other {
    ($($name:ident($($arg:ident: $t:ty),*);)*) => {
        $(fn $name(self, $($arg: $t),*) -> Result<Shape, ProbeStop> { $(let _ = $arg;)* Ok(Shape::Other) })*
    };
}

impl ser::Serializer for Probe {
    type Ok = Shape;
    type Error = ProbeStop;
    type SerializeSeq = Imp;
    type SerializeTuple = Imp;
    type SerializeTupleStruct = Imp;
    type SerializeTupleVariant = Imp;
    type SerializeMap = Imp;
    type SerializeStruct = Imp;
    type SerializeStructVariant = Imp;

    other! {
        serialize_bool(v: bool);
        serialize_i8(v: i8);
        serialize_i16(v: i16);
        serialize_i32(v: i32);
        serialize_i64(v: i64);
        serialize_i128(v: i128);
        serialize_u8(v: u8);
        serialize_u16(v: u16);
        serialize_u32(v: u32);
        serialize_u64(v: u64);
        serialize_u128(v: u128);
        serialize_f32(v: f32);
        serialize_f64(v: f64);
        serialize_char(v: char);
        serialize_str(v: &str);
        serialize_bytes(v: &[u8]);
        serialize_none();
        serialize_unit_struct(n: &'static str);
        serialize_unit_variant(n: &'static str, i: u32, v: &'static str);
    }

    fn serialize_unit(self) -> Result<Shape, ProbeStop> {
        Ok(Shape::Unit)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<Shape, ProbeStop> {
        Ok(Shape::Other)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<Shape, ProbeStop> {
        Ok(Shape::Other)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Shape, ProbeStop> {
        Ok(Shape::Other)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Imp, ProbeStop> {
        Err(ProbeStop(Shape::Other))
    }
    fn serialize_tuple(self, _: usize) -> Result<Imp, ProbeStop> {
        Err(ProbeStop(Shape::Tuple))
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Imp, ProbeStop> {
        Err(ProbeStop(Shape::Other))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Imp, ProbeStop> {
        Err(ProbeStop(Shape::Other))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Imp, ProbeStop> {
        Err(ProbeStop(Shape::Other))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Imp, ProbeStop> {
        Err(ProbeStop(Shape::Other))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Imp, ProbeStop> {
        Err(ProbeStop(Shape::Other))
    }
}

/// The whole argument list, raw (JS `...args`): incoming, every argument
/// (however many); outgoing, one argument per element (binary kept).
///
/// ```
/// use switchboard_socketio::{args::Args, AckSender, SocketRef};
/// fn echo(s: SocketRef, Args(args): Args, ack: Option<AckSender>) {
///     match ack {
///         Some(ack) => { let _ = ack.send(Args(args)); }
///         None => { let _ = s.emit("echo", Args(args)); }
///     }
/// }
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Args(pub Vec<Value>);

/// The newtype name [`ArgsDe`] recognizes to hand over every argument.
const ARGS_TOKEN: &str = "$switchboard_socketio::Args";

impl Serialize for Args {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use ser::SerializeTuple;
        // A tuple: spread into one argument per element by `to_args`.
        let mut t = s.serialize_tuple(self.0.len())?;
        for v in &self.0 {
            t.serialize_element(v)?;
        }
        t.end()
    }
}

impl<'de> de::Deserialize<'de> for Args {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Args;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an argument list")
            }
            fn visit_newtype_struct<D: de::Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<Args, D::Error> {
                <Vec<Value> as de::Deserialize>::deserialize(d).map(Args)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Args, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element()? {
                    out.push(v);
                }
                Ok(Args(out))
            }
        }
        d.deserialize_newtype_struct(ARGS_TOKEN, V)
    }
}

/// A deserializer over an argument list.
struct ArgsDe(Vec<Value>);

impl ArgsDe {
    fn first(self) -> Value {
        self.0.into_iter().next().unwrap_or(Value::Null)
    }
}

macro_rules! first {
    ($($name:ident($($arg:ident: $t:ty),*);)*) => {
        $(fn $name<V: Visitor<'de>>(self, $($arg: $t,)* visitor: V) -> Result<V::Value, serde_json::Error> {
            de::Deserializer::$name(self.first(), $($arg,)* visitor)
        })*
    };
}

impl<'de> de::Deserializer<'de> for ArgsDe {
    type Error = serde_json::Error;

    first! {
        deserialize_any();
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_str();
        deserialize_string();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_option();
        deserialize_unit_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier();
        deserialize_ignored_any();
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, serde_json::Error> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, serde_json::Error> {
        if name == ARGS_TOKEN {
            // `Args`: every argument.
            return visitor.visit_newtype_struct(Value::Array(self.0));
        }
        de::Deserializer::deserialize_newtype_struct(self.first(), name, visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, serde_json::Error> {
        let mut args = self.0;
        args.resize(len, Value::Null);
        de::Deserializer::deserialize_tuple(Value::Array(args), len, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn out_shapes() {
        assert_eq!(to_args(&()).unwrap(), vec![]);
        assert_eq!(to_args("a").unwrap(), vec![Value::from("a")]);
        assert_eq!(
            to_args(&("a", 1)).unwrap(),
            vec![Value::from("a"), Value::from(1)]
        );
        assert_eq!(
            to_args(&vec![1, 2]).unwrap(),
            vec![Value::Array(vec![1.into(), 2.into()])]
        );
        assert_eq!(
            to_args(&((1, 2),)).unwrap(),
            vec![Value::Array(vec![1.into(), 2.into()])]
        );
        let b = Bytes::from_static(b"x");
        assert_eq!(to_args(&b).unwrap(), vec![Value::Binary(b)]);
    }

    #[test]
    fn in_shapes() {
        let args = vec![Value::from("a"), Value::from(2)];
        assert_eq!(from_args::<String>(args.clone()).unwrap(), "a");
        assert_eq!(
            from_args::<(String, u8)>(args.clone()).unwrap(),
            ("a".into(), 2)
        );
        assert_eq!(
            from_args::<(String, u8, Option<bool>)>(args.clone()).unwrap(),
            ("a".into(), 2, None)
        );
        assert_eq!(from_args::<(String,)>(args.clone()).unwrap(), ("a".into(),));
        from_args::<()>(args).unwrap();
        assert_eq!(from_args::<Option<u8>>(vec![]).unwrap(), None);
        assert_eq!(
            from_args::<Vec<u8>>(vec![Value::Binary(Bytes::from_static(b"hi"))]).unwrap(),
            b"hi"
        );
    }

    #[test]
    fn all_args_raw() {
        let b = Value::Binary(Bytes::from_static(b"\x01\x02"));
        let args = vec![
            Value::from("a"),
            Value::Null,
            b.clone(),
            Value::Array(vec![b]),
        ];
        let got: Args = from_args(args.clone()).unwrap();
        assert_eq!(got.0, args);
        assert_eq!(to_args(&got).unwrap(), args);
        assert_eq!(from_args::<Args>(vec![]).unwrap(), Args::default());
        assert_eq!(to_args(&Args::default()).unwrap(), vec![]);
        // Outside an argument list it reads an array.
        let v: Args = switchboard_socketio_proto::from_value(Value::Array(vec![1.into()])).unwrap();
        assert_eq!(v.0, vec![Value::from(1)]);
    }
}
