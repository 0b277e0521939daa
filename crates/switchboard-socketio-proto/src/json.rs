//! JSON text output byte-for-byte like JavaScript's `JSON.stringify`: string
//! escaping, ECMAScript `Number::toString` formatting, and a pluggable rule
//! for where binary values go (placeholders, or Node's `Buffer` JSON form).

use bytes::Bytes;
use serde_json::Number;

use crate::value::Value;

/// What to write in place of a [`Value::Binary`].
pub(crate) trait BinarySink {
    fn write_binary(&mut self, out: &mut String, bytes: &Bytes);
}

/// Writes binary as `Buffer.prototype.toJSON` does:
/// `{"type":"Buffer","data":[...]}` (what `JSON.stringify` of a Node
/// `Buffer` gives, e.g. binary inside a CONNECT payload).
pub(crate) struct BinaryAsBufferJson;

impl BinarySink for BinaryAsBufferJson {
    fn write_binary(&mut self, out: &mut String, bytes: &Bytes) {
        out.push_str(r#"{"type":"Buffer","data":["#);
        let mut buf = itoa::Buffer::new();
        for (i, b) in bytes.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(buf.format(*b));
        }
        out.push_str("]}");
    }
}

/// Writes `{"_placeholder":true,"num":N}` and collects the bytes as
/// attachment `N` (socket.io-parser `deconstructPacket`, depth-first order).
pub(crate) struct Placeholders<'a> {
    pub(crate) attachments: &'a mut Vec<Bytes>,
}

impl BinarySink for Placeholders<'_> {
    fn write_binary(&mut self, out: &mut String, bytes: &Bytes) {
        out.push_str(r#"{"_placeholder":true,"num":"#);
        out.push_str(itoa::Buffer::new().format(self.attachments.len()));
        out.push('}');
        self.attachments.push(bytes.clone());
    }
}

/// Appends `v` as JSON text.
pub(crate) fn write_value(out: &mut String, v: &Value, sink: &mut impl BinarySink) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_str(out, s),
        Value::Binary(b) => sink.write_binary(out, b),
        Value::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, v, sink);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(out, k);
                out.push(':');
                write_value(out, v, sink);
            }
            out.push('}');
        }
    }
}

/// Appends `s` as a JSON string literal, escaped like `JSON.stringify`:
/// `"` and `\` escaped, `\b \f \n \r \t` short forms, other C0 controls as
/// lowercase `\u00xx`, everything else (DEL, non-ASCII) written as is.
pub(crate) fn write_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        // `i` is at an ASCII byte, so both slices fall on char boundaries.
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0xf) as usize] as char);
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Appends a number as JavaScript would print it.
pub(crate) fn write_number(out: &mut String, n: &Number) {
    if let Some(u) = n.as_u64() {
        out.push_str(itoa::Buffer::new().format(u));
    } else if let Some(i) = n.as_i64() {
        out.push_str(itoa::Buffer::new().format(i));
    } else if let Some(f) = n.as_f64() {
        write_f64(out, f);
    }
}

/// ECMAScript `Number::toString(10)` (ECMA-262 §6.1.6.1.20) for a finite
/// `f64`, built from Rust's shortest round-trip digits.
pub(crate) fn write_f64(out: &mut String, f: f64) {
    if !f.is_finite() {
        // JSON.stringify writes NaN and ±Infinity as null.
        out.push_str("null");
        return;
    }
    if f == 0.0 {
        out.push('0'); // also -0
        return;
    }
    if f < 0.0 {
        out.push('-');
    }
    // "d.ddde±x": shortest digits that round-trip, and the exponent.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let exp: i32 = exp.parse().unwrap_or(0);
    let k = digits.len() as i32;
    let n = exp + 1; // value = 0.digits × 10^n
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(&digits);
    } else {
        let e = n - 1;
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if e < 0 { '-' } else { '+' });
        out.push_str(itoa::Buffer::new().format(e.unsigned_abs()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn js(f: f64) -> String {
        let mut s = String::new();
        write_f64(&mut s, f);
        s
    }

    #[test]
    fn numbers_like_javascript() {
        assert_eq!(js(1.0), "1");
        assert_eq!(js(-0.0), "0");
        assert_eq!(js(1.5), "1.5");
        assert_eq!(js(-123.456), "-123.456");
        assert_eq!(js(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(js(1e21), "1e+21");
        assert_eq!(js(1e20), "100000000000000000000");
        assert_eq!(js(123e18), "123000000000000000000");
        assert_eq!(js(1.5e21), "1.5e+21");
        assert_eq!(js(0.000001), "0.000001");
        assert_eq!(js(0.0000001), "1e-7");
        assert_eq!(js(1.25e-7), "1.25e-7");
        assert_eq!(js(5e-324), "5e-324");
        assert_eq!(js(f64::MAX), "1.7976931348623157e+308");
        assert_eq!(js(f64::NAN), "null");
        let mut s = String::new();
        write_number(&mut s, &serde_json::from_str::<Number>("1.0").unwrap());
        write_number(&mut s, &Number::from(-5));
        write_number(&mut s, &Number::from(u64::MAX));
        assert_eq!(s, "1-518446744073709551615");
    }

    #[test]
    fn strings_like_javascript() {
        let mut s = String::new();
        write_str(&mut s, "a\"b\\c\n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f}é€😀");
        assert_eq!(s, "\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001f\u{7f}é€😀\"");
    }
}
