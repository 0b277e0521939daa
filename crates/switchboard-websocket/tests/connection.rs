//! Integration tests: a client `Connection` driving a server `Connection`,
//! split-at-every-offset feeding, fragmentation limits and huge lengths.

use bytes::{Bytes, BytesMut};
use switchboard_websocket::deflate::Compressor;
use switchboard_websocket::handshake::{accept, ClientRequest, ServerOptions};
use switchboard_websocket::{
    apply_mask, encode_frame, CloseCode, Config, Connection, DeflateConfig, DeflateParams, Event,
    FrameHeader, OpCode, Role,
};

#[derive(Debug, Clone, PartialEq)]
enum Ev {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<(u16, String)>),
}

fn own(e: Event<'_>) -> Ev {
    match e {
        Event::Text(s) => Ev::Text(s.into()),
        Event::Binary(b) => Ev::Binary(b.into()),
        Event::Ping(b) => Ev::Ping(b.into()),
        Event::Pong(b) => Ev::Pong(b.into()),
        Event::Close(c) => Ev::Close(c.map(|(c, r)| (c.0, r.into()))),
    }
}

/// A masked client frame with explicit flags.
fn frame(fin: bool, rsv1: bool, op: OpCode, payload: &[u8]) -> Vec<u8> {
    let key = [0xa1, 0xb2, 0xc3, 0xd4];
    let h = FrameHeader {
        fin,
        rsv1,
        rsv2: false,
        rsv3: false,
        opcode: op,
        mask: Some(key),
        payload_len: payload.len() as u64,
    };
    let mut out = BytesMut::new();
    h.encode(&mut out);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], key);
    out.to_vec()
}

fn take(c: &mut Connection) -> Vec<u8> {
    let mut v = Vec::new();
    c.writer().take_output(&mut v);
    v.concat()
}

/// Feeds `chunks` in order; returns events, server output and the first error code.
fn run(cfg: &Config, chunks: &[&[u8]]) -> (Vec<Ev>, Vec<u8>, Option<u16>) {
    let mut c = Connection::new(Role::Server, cfg.clone());
    let mut evs = Vec::new();
    let mut err = None;
    for ch in chunks {
        let mut d = ch.to_vec();
        if let Err(e) = c.receive(&mut d, |e, _| evs.push(own(e))) {
            err.get_or_insert(e.close_code().0);
        }
    }
    (evs, take(&mut c), err)
}

fn deflate_cfg() -> Config {
    Config {
        deflate: Some(DeflateParams::default()),
        ..Config::default()
    }
}

/// A stream exercising every path: small/medium/large, fragmented text with
/// split code points, interleaved control frames, compressed single and
/// fragmented messages.
fn sample_stream() -> Vec<u8> {
    let mut s = short_stream();
    s.extend(frame(
        true,
        false,
        OpCode::Text,
        &"long text ".repeat(7000).into_bytes(),
    ));
    s.extend(frame(true, false, OpCode::Close, &[0x03, 0xe8, b'o', b'k']));
    s
}

/// Everything but the 70 KB frame and the close.
fn short_stream() -> Vec<u8> {
    let mut s = Vec::new();
    s.extend(frame(true, false, OpCode::Text, "héllo".as_bytes()));
    s.extend(frame(true, false, OpCode::Binary, &[]));
    s.extend(frame(true, false, OpCode::Binary, &[5u8; 300]));
    let euro = "€".as_bytes();
    s.extend(frame(false, false, OpCode::Text, &[b'a', euro[0]]));
    s.extend(frame(true, false, OpCode::Ping, b"ping"));
    s.extend(frame(false, false, OpCode::Continuation, &euro[1..2]));
    s.extend(frame(true, false, OpCode::Continuation, &[euro[2], b'z']));
    s.extend(frame(true, false, OpCode::Pong, b""));
    // Compressed: one frame, then the same message fragmented.
    let mut c = Compressor::new(6, 15, false);
    let mut z = BytesMut::new();
    c.compress("compressed text, compressed text".as_bytes(), &mut z);
    s.extend(frame(true, true, OpCode::Text, &z));
    let mut z = BytesMut::new();
    c.compress(&[9u8; 1000], &mut z);
    let (a, b) = z.split_at(z.len() / 2);
    s.extend(frame(false, true, OpCode::Binary, a));
    s.extend(frame(false, false, OpCode::Continuation, &[]));
    s.extend(frame(true, false, OpCode::Continuation, b));
    s
}

fn expected_events() -> Vec<Ev> {
    vec![
        Ev::Text("héllo".into()),
        Ev::Binary(vec![]),
        Ev::Binary(vec![5u8; 300]),
        Ev::Ping(b"ping".to_vec()),
        Ev::Text("a€z".into()),
        Ev::Pong(vec![]),
        Ev::Text("compressed text, compressed text".into()),
        Ev::Binary(vec![9u8; 1000]),
        Ev::Text("long text ".repeat(7000)),
        Ev::Close(Some((1000, "ok".into()))),
    ]
}

#[test]
fn whole_stream() {
    let s = sample_stream();
    let (evs, out, err) = run(&deflate_cfg(), &[&s]);
    assert_eq!(err, None);
    assert_eq!(evs, expected_events());
    // Pong for the ping, then the close echo.
    assert_eq!(out, b"\x8a\x04ping\x88\x02\x03\xe8");
}

#[test]
fn split_at_every_offset() {
    let cfg = deflate_cfg();
    // Every 2-way split of everything but the long frame...
    let s = short_stream();
    let (want, want_out, _) = run(&cfg, &[&s]);
    assert_eq!(want, expected_events()[..8]);
    for i in 0..=s.len() {
        let (evs, out, err) = run(&cfg, &[&s[..i], &s[i..]]);
        assert_eq!(err, None, "split {i}");
        assert_eq!(evs, want, "split {i}");
        assert_eq!(out, want_out, "split {i}");
    }
    // ...and three-way splits around the fragmented section.
    for i in (0..s.len()).step_by(5) {
        for j in (i..(i + 40).min(s.len())).step_by(9) {
            let (evs, _, err) = run(&cfg, &[&s[..i], &s[i..j], &s[j..]]);
            assert_eq!(err, None);
            assert_eq!(evs, want, "split {i}/{j}");
        }
    }
    // The full stream (64-bit length frame, close) at a stride.
    let s = sample_stream();
    let (want, want_out, _) = run(&cfg, &[&s]);
    let n = s.len();
    let offsets = (0..n).step_by(997).chain(n - 30..=n);
    for i in offsets {
        let (evs, out, err) = run(&cfg, &[&s[..i], &s[i..]]);
        assert_eq!(err, None, "split {i}");
        assert_eq!(evs, want, "split {i}");
        assert_eq!(out, want_out, "split {i}");
    }
}

#[test]
fn byte_by_byte() {
    let s = sample_stream();
    let cfg = deflate_cfg();
    let chunks: Vec<&[u8]> = s.chunks(1).collect();
    let (evs, out, err) = run(&cfg, &chunks);
    assert_eq!(err, None);
    assert_eq!(evs, expected_events());
    assert_eq!(out, b"\x8a\x04ping\x88\x02\x03\xe8");
    // Uneven chunk sizes too.
    for size in [2, 3, 5, 13, 127, 4096] {
        let chunks: Vec<&[u8]> = s.chunks(size).collect();
        let (evs, _, err) = run(&cfg, &chunks);
        assert_eq!(err, None);
        assert_eq!(evs, expected_events(), "chunk size {size}");
    }
}

#[test]
fn invalid_utf8_fails_at_every_split() {
    let mut s = frame(true, false, OpCode::Text, b"ok");
    s.extend(frame(false, false, OpCode::Text, &[b'a', 0xF4]));
    s.extend(frame(
        true,
        false,
        OpCode::Continuation,
        &[0x90, 0x80, 0x80],
    ));
    for i in 0..=s.len() {
        let (evs, out, err) = run(&Config::default(), &[&s[..i], &s[i..]]);
        assert_eq!(err, Some(1007), "split {i}");
        assert_eq!(evs, vec![Ev::Text("ok".into())]);
        assert_eq!(&out[..4], b"\x88\x0f\x03\xef");
    }
}

#[test]
fn client_server_roundtrip_with_handshake() {
    for deflate in [
        None,
        Some(DeflateConfig::default()),
        Some(DeflateConfig {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 10,
            client_max_window_bits: 9,
            min_size: 16,
            ..Default::default()
        }),
    ] {
        let mut req = ClientRequest::new("localhost", "/ws");
        if let Some(d) = &deflate {
            req = req.deflate(d.clone());
        }
        let (raw, hs) = req.encode();
        // Server side: parse the request with httparse into an http::HeaderMap.
        let mut hb = [httparse::EMPTY_HEADER; 16];
        let mut r = httparse::Request::new(&mut hb);
        r.parse(&raw).unwrap();
        let mut map = http::HeaderMap::new();
        for h in r.headers.iter() {
            map.append(
                http::HeaderName::from_bytes(h.name.as_bytes()).unwrap(),
                http::HeaderValue::from_bytes(h.value).unwrap(),
            );
        }
        let opts = ServerOptions {
            deflate: deflate.clone(),
            ..Default::default()
        };
        let acc = accept(&http::Method::GET, http::Version::HTTP_11, &map, &opts).unwrap();
        let mut resp = b"HTTP/1.1 101 Switching Protocols\r\n".to_vec();
        for (k, v) in acc.response_headers().iter() {
            resp.extend_from_slice(format!("{}: {}\r\n", k, v.to_str().unwrap()).as_bytes());
        }
        resp.extend_from_slice(b"\r\n");
        let (cacc, _) = hs.parse_response(&resp).unwrap().unwrap();
        assert_eq!(cacc.deflate.is_some(), deflate.is_some());

        let mut server = Connection::new(
            Role::Server,
            Config {
                deflate: acc.deflate.clone(),
                ..Config::default()
            },
        );
        let mut client = Connection::new(
            Role::Client,
            Config {
                deflate: cacc.deflate.clone(),
                ..Config::default()
            },
        );
        let msgs: Vec<String> = (0..50)
            .map(|i| format!("message {i} ").repeat(i * i % 300 + 1))
            .collect();
        for m in &msgs {
            client.writer().send_text(m);
        }
        client.writer().ping(b"are you there");
        let mut wire = take(&mut client);
        let mut got = Vec::new();
        server
            .receive(&mut wire, |e, w| {
                if let Event::Text(t) = e {
                    w.send_text(t);
                }
                got.push(own(e));
            })
            .unwrap();
        assert_eq!(got.len(), msgs.len() + 1);
        let mut back = take(&mut server);
        let mut echoed = Vec::new();
        client
            .receive(&mut back, |e, _| echoed.push(own(e)))
            .unwrap();
        let mut want: Vec<Ev> = msgs.iter().map(|m| Ev::Text(m.clone())).collect();
        want.push(Ev::Pong(b"are you there".to_vec()));
        assert_eq!(echoed, want);

        // Close handshake initiated by the client.
        client.writer().close(CloseCode::NORMAL, "done");
        let mut wire = take(&mut client);
        let mut got = Vec::new();
        server.receive(&mut wire, |e, _| got.push(own(e))).unwrap();
        assert_eq!(got, vec![Ev::Close(Some((1000, "done".into())))]);
        assert!(server.is_closed());
        let mut wire = take(&mut server);
        let mut got = Vec::new();
        client.receive(&mut wire, |e, _| got.push(own(e))).unwrap();
        assert_eq!(got, vec![Ev::Close(Some((1000, "".into())))]);
        assert!(client.is_closed());
        assert!(!client.writer().has_output());
    }
}

#[test]
fn prepared_broadcast_shared_bytes() {
    let shared: Bytes = encode_frame(OpCode::Text, b"to everyone");
    let mut conns: Vec<Connection> = (0..3)
        .map(|_| Connection::new(Role::Server, Config::default()))
        .collect();
    for c in &mut conns {
        c.writer().send_prepared(shared.clone());
    }
    for c in &mut conns {
        let mut out = Vec::new();
        c.writer().take_output(&mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].as_ptr(), shared.as_ptr());
        // A client decodes it.
        let mut client = Connection::new(Role::Client, Config::default());
        let mut d = out[0].to_vec();
        let mut got = Vec::new();
        client.receive(&mut d, |e, _| got.push(own(e))).unwrap();
        assert_eq!(got, vec![Ev::Text("to everyone".into())]);
    }
}

#[test]
fn million_one_byte_fragments() {
    const N: usize = 1_000_000;
    let mut s = Vec::with_capacity(N * 7);
    s.extend(frame(false, false, OpCode::Binary, b"x"));
    let cont = frame(false, false, OpCode::Continuation, b"x");
    for _ in 1..N - 1 {
        s.extend_from_slice(&cont);
    }
    s.extend(frame(true, false, OpCode::Continuation, b"x"));
    let mut c = Connection::new(Role::Server, Config::default());
    let mut n = 0;
    c.receive(&mut s.clone(), |e, _| {
        if let Event::Binary(b) = e {
            n = b.len();
        }
    })
    .unwrap();
    assert_eq!(n, N);
    // With a smaller limit the total size is enforced, not the count.
    let cfg = Config {
        max_message_size: N / 2,
        ..Config::default()
    };
    let (evs, out, err) = run(&cfg, &[&s]);
    assert!(evs.is_empty());
    assert_eq!(err, Some(1009));
    assert_eq!(&out[..4], b"\x88\x11\x03\xf1");
}

#[test]
fn huge_length_headers() {
    // 2^63 → 1002 (invalid length), 2^62 → 1009, neither allocates.
    for (len, code) in [
        (1u64 << 63, 1002u16),
        (u64::MAX, 1002),
        (1u64 << 62, 1009),
        ((1 << 24) + 1, 1009),
    ] {
        let mut h = vec![0x82, 0xff];
        h.extend_from_slice(&len.to_be_bytes());
        h.extend_from_slice(&[1, 2, 3, 4, 0xaa, 0xbb]);
        let (_, _, err) = run(&Config::default(), &[&h]);
        assert_eq!(err, Some(code), "len {len}");
        let chunks: Vec<&[u8]> = h.chunks(1).collect();
        let (_, _, err) = run(&Config::default(), &chunks);
        assert_eq!(err, Some(code), "len {len} bytewise");
    }
}

#[test]
fn zip_bomb_is_too_big() {
    let mut c = Compressor::new(9, 15, false);
    let mut z = BytesMut::new();
    c.compress(&vec![0u8; 2 << 20], &mut z);
    let cfg = Config {
        max_message_size: 256 << 10,
        ..deflate_cfg()
    };
    let (evs, _, err) = run(&cfg, &[&frame(true, true, OpCode::Binary, &z)]);
    assert!(evs.is_empty());
    assert_eq!(err, Some(1009));
    // Also when fragmented.
    let (a, b) = z.split_at(z.len() / 3);
    let mut s = frame(false, true, OpCode::Binary, a);
    s.extend(frame(true, false, OpCode::Continuation, b));
    let (_, _, err) = run(&cfg, &[&s]);
    assert_eq!(err, Some(1009));
}

#[test]
fn rsv1_rules_with_deflate() {
    let cfg = deflate_cfg();
    // RSV1 on a continuation frame.
    let mut s = frame(false, false, OpCode::Binary, b"a");
    s.extend(frame(true, true, OpCode::Continuation, b"b"));
    assert_eq!(run(&cfg, &[&s]).2, Some(1002));
    // RSV1 on a ping.
    assert_eq!(
        run(&cfg, &[&frame(true, true, OpCode::Ping, b"")]).2,
        Some(1002)
    );
    // RSV1 without deflate.
    assert_eq!(
        run(
            &Config::default(),
            &[&frame(true, true, OpCode::Text, b"a")]
        )
        .2,
        Some(1002)
    );
    // Corrupt compressed data.
    assert_eq!(
        run(&cfg, &[&frame(true, true, OpCode::Binary, &[0xff; 8])]).2,
        Some(1007)
    );
    // Uncompressed messages are still fine under deflate.
    let (evs, _, err) = run(&cfg, &[&frame(true, false, OpCode::Text, b"plain")]);
    assert_eq!(err, None);
    assert_eq!(evs, vec![Ev::Text("plain".into())]);
}

#[test]
fn errors_stop_processing() {
    let mut s = frame(true, false, OpCode::Text, b"one");
    s.extend_from_slice(&[0x83, 0x80, 0, 0, 0, 0]); // reserved opcode
    s.extend(frame(true, false, OpCode::Text, b"two"));
    let mut c = Connection::new(Role::Server, Config::default());
    let mut evs = Vec::new();
    let r = c.receive(&mut s, |e, _| evs.push(own(e)));
    assert_eq!(r.unwrap_err().close_code(), CloseCode::PROTOCOL);
    assert_eq!(evs, vec![Ev::Text("one".into())]);
    // Later input ignored, no further output after the close frame.
    take(&mut c);
    let mut more = frame(true, false, OpCode::Ping, b"x");
    assert!(c.receive(&mut more, |e, _| evs.push(own(e))).is_ok());
    assert_eq!(evs.len(), 1);
    assert!(!c.writer().has_output());
}
