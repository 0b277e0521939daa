//! RFC 6455 framing: `Connection::receive` in both roles, with small limits
//! and permessage-deflate, on arbitrary bytes.
//!
//! Input: `[cfg, limit, split_seed, wire...]`.
//!
//! Invariants:
//! * feeding `wire` in one chunk or in pseudo-random chunks gives the same
//!   events, the same error and the same closed state;
//! * everything the connection sends (echoes of every message, pongs, the
//!   close reply or the error's close frame) is valid for the peer: a
//!   connection in the other role decodes it without error, and sees the
//!   same messages for both chunkings.

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_websocket::{Config, Connection, DeflateParams, Event, Role};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<(u16, String)>),
}

fn own(e: Event<'_>) -> Ev {
    match e {
        Event::Text(t) => Ev::Text(t.to_owned()),
        Event::Binary(b) => Ev::Binary(b.to_vec()),
        Event::Ping(p) => Ev::Ping(p.to_vec()),
        Event::Pong(p) => Ev::Pong(p.to_vec()),
        Event::Close(c) => Ev::Close(c.map(|(code, r)| (code.as_u16(), r.to_owned()))),
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    events: Vec<Ev>,
    error: Option<String>,
    closed: bool,
    /// What the peer saw of our output.
    peer_events: Vec<Ev>,
}

fn deflate(cfg: u8) -> Option<DeflateParams> {
    if cfg & 0x02 == 0 {
        return None;
    }
    let bits = 9 + (cfg >> 5) % 7; // 9..=15
    Some(DeflateParams {
        server_no_context_takeover: cfg & 0x04 != 0,
        client_no_context_takeover: cfg & 0x08 != 0,
        server_max_window_bits: bits,
        client_max_window_bits: bits,
        compression_level: u32::from(cfg >> 4) % 10,
        min_size: if cfg & 0x10 != 0 { 8 } else { 0 },
        local_max_window_bits: 15,
    })
}

fn run(cfg: u8, limit: u8, chunks: &[&[u8]]) -> Outcome {
    let role = if cfg & 1 == 0 {
        Role::Server
    } else {
        Role::Client
    };
    let peer_role = if role == Role::Server {
        Role::Client
    } else {
        Role::Server
    };
    let mut config = Config {
        deflate: deflate(cfg),
        ..Config::default()
    };
    if limit != 0 {
        // Small limits to reach the size checks.
        config.max_message_size = usize::from(limit) * 4;
        config.max_frame_size = usize::from(limit) * 2;
    }
    let peer_config = Config {
        deflate: config.deflate.clone(),
        ..Config::default()
    };
    let mut conn = Connection::new(role, config);
    let mut events = Vec::new();
    let mut error = None;
    for chunk in chunks {
        let mut data = chunk.to_vec();
        let r = conn.receive(&mut data, |e, w| {
            match e {
                Event::Text(t) => w.send_text(t),
                Event::Binary(b) => w.send_binary(b),
                _ => {}
            }
            events.push(own(e));
        });
        if let Err(e) = r {
            assert!(error.is_none(), "second error {e:?} after {error:?}");
            assert!(conn.is_closed());
            error = Some(format!("{e:?}"));
        }
    }
    assert!(conn.buffered_len() <= chunks.iter().map(|c| c.len()).sum::<usize>() + (64 << 10) * 8);
    if conn.is_closed() {
        assert_eq!(conn.buffered_len(), 0, "buffers kept after close");
    }
    let mut out = Vec::new();
    conn.writer().take_output(&mut out);
    let mut wire: Vec<u8> = out.concat();

    let mut peer = Connection::new(peer_role, peer_config);
    let mut peer_events = Vec::new();
    if let Err(e) = peer.receive(&mut wire, |e, _| peer_events.push(own(e))) {
        panic!("peer rejected our output: {e:?}; events {peer_events:?}");
    }
    assert_eq!(peer.buffered_len(), 0, "our output ends mid-frame");
    Outcome {
        events,
        error,
        closed: conn.is_closed(),
        peer_events,
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let (cfg, limit, seed, wire) = (data[0], data[1], data[2], &data[3..]);
    let whole = run(cfg, limit, &[wire]);

    // Pseudo-random chunks from the seed (at least one split when possible).
    let mut chunks = Vec::new();
    let mut rest = wire;
    let mut x = u32::from(seed) | 0x100;
    while !rest.is_empty() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let max = if seed & 0x80 != 0 { 3 } else { 40 };
        let n = (x as usize % max + 1).min(rest.len());
        chunks.push(&rest[..n]);
        rest = &rest[n..];
    }
    let split = run(cfg, limit, &chunks);
    assert_eq!(whole, split, "chunking changed the outcome");
});
