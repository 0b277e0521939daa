//! STOMP framing: `Decoder::decode` with every version and small limits.
//!
//! Input: `[cfg, split_seed, bytes...]`.
//!
//! Invariants:
//! * decoding the bytes in one chunk or in pseudo-random chunks gives the
//!   same items and the same error, and every call consumes its input up
//!   to an item boundary (or all of it);
//! * a decoded frame encodes (`encode_frame`) into bytes that decode to
//!   the same frame, `content-length` aside (the encoder computes it):
//!   exactly for STOMP 1.2 frames with escaped headers, else up to the
//!   characters raw and 1.1 headers cannot carry (CR, LF, NUL); and
//!   encoding is then a fixed point (but for 1.1 values ending in CR).

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use switchboard_stomp_proto::{encode_frame, Decoder, Frame, Item, Limits, Version};

fn limits(cfg: u8) -> Limits {
    if cfg & 0x04 == 0 {
        return Limits::default();
    }
    Limits {
        max_frame_size: 64 + usize::from(cfg >> 3) * 8,
        max_headers: usize::from(cfg >> 4),
        max_header_length: 8 + usize::from(cfg >> 3),
        max_body: usize::from(cfg >> 3) * 2,
    }
}

fn version(cfg: u8) -> Version {
    Version::ALL[usize::from(cfg & 3) % 3]
}

fn decode_chunks(cfg: u8, chunks: &[&[u8]]) -> (Vec<Item>, Option<String>) {
    let mut d = Decoder::new(version(cfg), limits(cfg));
    let mut items = Vec::new();
    for chunk in chunks {
        let mut input = *chunk;
        loop {
            let before = input.len();
            match d.decode(&mut input) {
                Ok(Some(item)) => {
                    assert!(input.len() < before, "item without consuming input");
                    items.push(item);
                }
                Ok(None) => {
                    assert!(input.is_empty(), "None with input left");
                    break;
                }
                Err(e) => {
                    let _ = e.message();
                    // The error sticks.
                    assert_eq!(d.decode(&mut &b"\n"[..]), Err(e.clone()));
                    return (items, Some(format!("{e:?}")));
                }
            }
        }
    }
    (items, None)
}

fn without_content_length(f: &Frame) -> Frame {
    let mut f = f.clone();
    f.headers.remove("content-length");
    f
}

fn encode(f: &Frame, v: Version) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_frame(f, v, &mut out);
    out.to_vec()
}

fn decode_one(bytes: &[u8], v: Version) -> Frame {
    let mut d = Decoder::new(
        v,
        Limits {
            max_frame_size: usize::MAX,
            max_headers: usize::MAX,
            max_header_length: usize::MAX,
            max_body: usize::MAX,
        },
    );
    let mut input = bytes;
    match d.decode(&mut input) {
        Ok(Some(Item::Frame(f))) => {
            assert!(input.is_empty(), "bytes left after our frame");
            f
        }
        other => panic!(
            "our encoding {:?} decodes to {other:?}",
            String::from_utf8_lossy(bytes)
        ),
    }
}

fn check_round_trip(f: &Frame, v: Version) {
    let e1 = encode(f, v);
    let f2 = decode_one(&e1, v);
    let exact = v == Version::V1_2 && f.command.escapes_headers();
    if exact {
        assert_eq!(without_content_length(f), without_content_length(&f2));
    } else {
        assert_eq!(f.command, f2.command);
        assert_eq!(f.body, f2.body);
    }
    // STOMP 1.1 has no CR escape: a value's trailing CR is written as is
    // and read back as part of the CRLF, so each round trip drops one.
    let lossy = v == Version::V1_1
        && f.command.escapes_headers()
        && f.headers.iter().any(|(_, value)| value.ends_with('\r'));
    if !lossy {
        let e2 = encode(&f2, v);
        assert_eq!(e1, e2, "encoding is not a fixed point");
    }
}

fuzz_target!(|data: &[u8]| {
    let [cfg, seed, bytes @ ..] = data else {
        return;
    };
    let whole = decode_chunks(*cfg, &[bytes]);

    let mut chunks = Vec::new();
    let mut rest = bytes;
    let mut x = u32::from(*seed) | 0x100;
    while !rest.is_empty() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let max = if seed & 0x80 != 0 { 3 } else { 24 };
        let n = (x as usize % max + 1).min(rest.len());
        chunks.push(&rest[..n]);
        rest = &rest[n..];
    }
    let split = decode_chunks(*cfg, &chunks);
    assert_eq!(whole, split, "chunking changed the outcome");

    for item in &whole.0 {
        if let Item::Frame(f) = item {
            check_round_trip(f, version(*cfg));
        }
    }
});
