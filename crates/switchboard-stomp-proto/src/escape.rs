//! Header value escaping (STOMP 1.2 "Value Encoding"): which escapes each
//! version defines, decoding them on the way in and producing them on the way
//! out. Framing (lines, EOLs) is not handled here.

use std::borrow::Cow;

use bytes::{BufMut, BytesMut};

use crate::error::DecodeError;
use crate::frame::Command;
use crate::version::Version;

/// How the header names and values of one frame are escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Escaping {
    /// No escaping: STOMP 1.0, and CONNECT/STOMP/CONNECTED in every version.
    Raw,
    /// STOMP 1.1: `\n`, `\c`, `\\`.
    V11,
    /// STOMP 1.2: `\r`, `\n`, `\c`, `\\`.
    V12,
}

impl Escaping {
    /// The escaping used by a frame with `command` on a `version` connection.
    pub(crate) fn for_frame(command: Command, version: Version) -> Escaping {
        if !command.escapes_headers() {
            return Escaping::Raw;
        }
        match version {
            Version::V1_0 => Escaping::Raw,
            Version::V1_1 => Escaping::V11,
            Version::V1_2 => Escaping::V12,
        }
    }
}

/// Decodes the escapes in a header name or value. An escape the version does
/// not define (e.g. `\t`, or `\r` in 1.1) and a trailing lone `\` are
/// errors, as the spec requires.
pub(crate) fn unescape(s: &str, mode: Escaping) -> Result<Cow<'_, str>, DecodeError> {
    if mode == Escaping::Raw || !s.contains('\\') {
        return Ok(Cow::Borrowed(s));
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('c') => out.push(':'),
            Some('\\') => out.push('\\'),
            Some('r') if mode == Escaping::V12 => out.push('\r'),
            Some(other) => return Err(DecodeError::InvalidEscape(format!("\\{other}"))),
            None => return Err(DecodeError::InvalidEscape("\\".to_owned())),
        }
    }
    Ok(Cow::Owned(out))
}

/// Whether `s` would be changed by [`escape_into`] in some mode.
pub(crate) fn needs_escaping(s: &str) -> bool {
    s.bytes()
        .any(|b| matches!(b, b'\r' | b'\n' | b':' | b'\\' | 0))
}

/// Appends `s` escaped for `mode`.
///
/// Raw mode cannot express line breaks, so CR and LF become spaces (and a
/// `:` in a header *name* becomes a space); STOMP 1.1 has no `\r` escape and
/// CR is written as is (1.1 lines end with LF only). No version can carry
/// a NUL in a header (it ends the frame): it becomes a space.
pub(crate) fn escape_into(out: &mut BytesMut, s: &str, mode: Escaping, is_name: bool) {
    if !needs_escaping(s) {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    for &b in s.as_bytes() {
        match (mode, b) {
            (_, 0) => out.put_u8(b' '),
            (Escaping::Raw, b'\r' | b'\n') => out.put_u8(b' '),
            (Escaping::Raw, b':') if is_name => out.put_u8(b' '),
            (Escaping::Raw, _) => out.put_u8(b),
            (_, b'\n') => out.extend_from_slice(b"\\n"),
            (_, b':') => out.extend_from_slice(b"\\c"),
            (_, b'\\') => out.extend_from_slice(b"\\\\"),
            (Escaping::V12, b'\r') => out.extend_from_slice(b"\\r"),
            (_, _) => out.put_u8(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(s: &str, mode: Escaping, is_name: bool) -> String {
        let mut out = BytesMut::new();
        escape_into(&mut out, s, mode, is_name);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn mode_per_frame() {
        assert_eq!(
            Escaping::for_frame(Command::Send, Version::V1_2),
            Escaping::V12
        );
        assert_eq!(
            Escaping::for_frame(Command::Send, Version::V1_1),
            Escaping::V11
        );
        assert_eq!(
            Escaping::for_frame(Command::Send, Version::V1_0),
            Escaping::Raw
        );
        for c in [Command::Connect, Command::Stomp, Command::Connected] {
            assert_eq!(Escaping::for_frame(c, Version::V1_2), Escaping::Raw);
        }
    }

    #[test]
    fn unescape_each_sequence_1_2() {
        let m = Escaping::V12;
        assert_eq!(unescape(r"a\nb", m).unwrap(), "a\nb");
        assert_eq!(unescape(r"a\cb", m).unwrap(), "a:b");
        assert_eq!(unescape(r"a\\b", m).unwrap(), "a\\b");
        assert_eq!(unescape(r"a\rb", m).unwrap(), "a\rb");
        assert_eq!(unescape(r"\\n", m).unwrap(), "\\n");
        assert_eq!(unescape("plain", m).unwrap(), "plain");
        assert!(matches!(unescape("plain", m).unwrap(), Cow::Borrowed(_)));
    }

    #[test]
    fn unescape_1_1_has_no_cr_escape() {
        let m = Escaping::V11;
        assert_eq!(unescape(r"a\nb\c\\", m).unwrap(), "a\nb:\\");
        assert_eq!(
            unescape(r"a\rb", m),
            Err(DecodeError::InvalidEscape("\\r".into()))
        );
    }

    #[test]
    fn unescape_undefined_and_trailing() {
        assert_eq!(
            unescape(r"a\tb", Escaping::V12),
            Err(DecodeError::InvalidEscape("\\t".into()))
        );
        assert_eq!(
            unescape("a\\", Escaping::V12),
            Err(DecodeError::InvalidEscape("\\".into()))
        );
    }

    #[test]
    fn raw_mode_keeps_backslashes() {
        assert_eq!(unescape(r"a\tb\n", Escaping::Raw).unwrap(), r"a\tb\n");
    }

    #[test]
    fn escape_each_mode() {
        let s = "a\r\n:\\b";
        assert_eq!(esc(s, Escaping::V12, false), r"a\r\n\c\\b");
        assert_eq!(esc(s, Escaping::V11, false), "a\r\\n\\c\\\\b");
        assert_eq!(esc(s, Escaping::Raw, false), "a  :\\b");
        assert_eq!(esc("a:b", Escaping::Raw, true), "a b");
        assert_eq!(esc("plain", Escaping::V12, false), "plain");
    }

    /// Found by fuzzing (stomp_session): a NUL in an application-supplied
    /// header (here an ERROR `message`) ended the frame early, so the client
    /// could not decode the rest of the stream.
    #[test]
    fn nul_becomes_a_space_in_every_mode() {
        for m in [Escaping::Raw, Escaping::V11, Escaping::V12] {
            assert_eq!(esc("a\0b", m, false), "a b");
            assert_eq!(esc("n\0", m, true), "n ");
        }
        let mut out = BytesMut::new();
        let frame = crate::Frame::new(Command::Error).header("message", "bad\0input");
        crate::encode_frame(&frame, Version::V1_0, &mut out);
        assert_eq!(&out[..], b"ERROR\nmessage:bad input\n\n\0");
    }

    #[test]
    fn escape_round_trips() {
        for s in ["", "x", "a:b", "multi\nline", "back\\slash", "cr\r", "\\n"] {
            for m in [Escaping::V11, Escaping::V12] {
                if m == Escaping::V11 && s.contains('\r') {
                    continue;
                }
                assert_eq!(unescape(&esc(s, m, false), m).unwrap(), s);
            }
        }
    }
}
