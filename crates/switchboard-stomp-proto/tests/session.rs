//! Protocol rules of `ServerSession`, tested by feeding bytes and checking
//! the bytes and events that come out. No server runs.

use std::time::{Duration, Instant};

use bytes::Bytes;
use switchboard_stomp_proto::{
    AckMode, CloseReason, Command, Config, Decoder, Event, Frame, HeartBeat, Item, Limits,
    MessageTemplate, ProtocolError, SendError, ServerSession, Version,
};

fn config() -> Config {
    Config {
        server: None,
        ..Config::default()
    }
}

/// Everything the session wants to send, as one buffer.
fn wire(s: &mut ServerSession, now: Instant) -> Vec<u8> {
    let mut out = Vec::new();
    s.take_output(now, &mut out);
    out.concat()
}

/// Everything the session wants to send, decoded.
fn frames(s: &mut ServerSession, now: Instant) -> Vec<Frame> {
    let bytes = wire(s, now);
    let mut d = Decoder::new(Version::V1_2, Limits::default());
    let mut input = &bytes[..];
    let mut out = Vec::new();
    while let Some(item) = d.decode(&mut input).unwrap() {
        if let Item::Frame(f) = item {
            out.push(f);
        }
    }
    out
}

fn one_frame(s: &mut ServerSession, now: Instant) -> Frame {
    let mut f = frames(s, now);
    assert_eq!(f.len(), 1, "{f:?}");
    f.pop().unwrap()
}

fn events(s: &mut ServerSession) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

/// A session connected with `accept-version` (or none for 1.0).
fn connected_with(accept: Option<&str>, cfg: Config) -> (ServerSession, Instant) {
    let now = Instant::now();
    let mut s = ServerSession::new(cfg);
    let connect = match accept {
        Some(v) => format!("CONNECT\naccept-version:{v}\nhost:/\n\n\0"),
        None => "CONNECT\n\n\0".to_owned(),
    };
    s.receive(now, connect.as_bytes()).unwrap();
    assert!(matches!(s.poll_event(), Some(Event::Connect(_))));
    s.accept(now, &[]).unwrap();
    let f = one_frame(&mut s, now);
    assert_eq!(f.command, Command::Connected);
    (s, now)
}

fn connected(accept: &str) -> (ServerSession, Instant) {
    connected_with(Some(accept), config())
}

/// Feeds a frame that must be refused; returns the ERROR and the error.
fn refused(s: &mut ServerSession, now: Instant, bytes: &[u8]) -> (Frame, ProtocolError) {
    let err = s.receive(now, bytes).unwrap_err();
    assert!(s.is_closed());
    assert_eq!(s.close_reason(), Some(&CloseReason::PeerError(err.clone())));
    assert_eq!(s.poll_event(), None);
    // Earlier output (MESSAGEs) may precede it; the ERROR comes last.
    let f = frames(s, now).pop().unwrap();
    assert_eq!(f.command, Command::Error);
    assert_eq!(f.get("message"), Some(err.message()));
    assert_eq!(f.get("content-type"), Some("text/plain"));
    assert_eq!(std::str::from_utf8(&f.body).unwrap(), format!("{err}\n"));
    (f, err)
}

fn refused_12(bytes: &[u8]) -> (Frame, ProtocolError) {
    let (mut s, now) = connected("1.2");
    refused(&mut s, now, bytes)
}

// ---- CONNECT ---------------------------------------------------------------

#[test]
fn connect_1_2_connected_headers() {
    let now = Instant::now();
    let mut s = ServerSession::new(Config {
        server: Some("sb/1".into()),
        heart_beat: HeartBeat::from_millis(5000, 6000),
        ..Config::default()
    });
    s.receive(
        now,
        b"CONNECT\naccept-version:1.0,1.1,1.2\nhost:vh\nlogin:guest\npasscode:pw\nheart-beat:1000,2000\n\n\0",
    )
    .unwrap();
    let Some(Event::Connect(req)) = s.poll_event() else {
        panic!()
    };
    assert_eq!(req.command, Command::Connect);
    assert_eq!(req.version, Version::V1_2);
    assert_eq!(req.host.as_deref(), Some("vh"));
    assert_eq!(req.login.as_deref(), Some("guest"));
    assert_eq!(req.passcode.as_deref(), Some("pw"));
    assert_eq!(req.heart_beat.outgoing, Some(Duration::from_millis(5000)));
    assert_eq!(req.heart_beat.incoming, Some(Duration::from_millis(6000)));
    assert!(!format!("{req:?}").contains("pw"));
    assert!(!s.is_connected());
    assert_eq!(s.poll_event(), None);
    s.accept(now, &[("session", "abc"), ("version", "ignored")])
        .unwrap();
    assert!(s.is_connected());
    assert_eq!(s.version(), Some(Version::V1_2));
    assert_eq!(
        wire(&mut s, now),
        b"CONNECTED\nversion:1.2\nheart-beat:5000,6000\nserver:sb/1\nsession:abc\n\n\0"
    );
}

#[test]
fn connect_without_accept_version_is_1_0() {
    let now = Instant::now();
    let mut s = ServerSession::new(config());
    s.receive(now, b"CONNECT\nheart-beat:1000,1000\n\n\0")
        .unwrap();
    let Some(Event::Connect(req)) = s.poll_event() else {
        panic!()
    };
    assert_eq!(req.version, Version::V1_0);
    assert_eq!(req.heart_beat.outgoing, None);
    s.accept(now, &[("session", "x")]).unwrap();
    assert_eq!(wire(&mut s, now), b"CONNECTED\nsession:x\n\n\0");
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn connect_1_1() {
    let (s, _) = connected("1.1");
    assert_eq!(s.version(), Some(Version::V1_1));
}

#[test]
fn stomp_command_connects() {
    let now = Instant::now();
    let mut s = ServerSession::new(config());
    s.receive(now, b"STOMP\naccept-version:1.1,1.2\nhost:/\n\n\0")
        .unwrap();
    let Some(Event::Connect(req)) = s.poll_event() else {
        panic!()
    };
    assert_eq!(req.command, Command::Stomp);
    assert_eq!(req.version, Version::V1_2);
}

#[test]
fn error_stomp_command_in_1_0() {
    let mut s = ServerSession::new(config());
    let (_, e) = refused(&mut s, Instant::now(), b"STOMP\n\n\0");
    assert_eq!(
        e,
        ProtocolError::CommandNotInVersion {
            command: Command::Stomp,
            version: Version::V1_0
        }
    );
}

#[test]
fn error_unsupported_version_lists_versions() {
    let mut s = ServerSession::new(config());
    let (f, _) = refused(&mut s, Instant::now(), b"CONNECT\naccept-version:2.0\n\n\0");
    assert_eq!(f.get("message"), Some("unsupported protocol version"));
    assert_eq!(f.get("version"), Some("1.0,1.1,1.2"));
    assert_eq!(
        &f.body[..],
        b"Supported protocol versions are 1.0 1.1 1.2\n"
    );
}

#[test]
fn error_version_not_enabled() {
    let mut s = ServerSession::new(Config {
        versions: vec![Version::V1_2],
        ..config()
    });
    let (f, _) = refused(&mut s, Instant::now(), b"CONNECT\n\n\0");
    assert_eq!(f.get("version"), Some("1.2"));
}

#[test]
fn error_invalid_heart_beat() {
    let mut s = ServerSession::new(config());
    let (f, _) = refused(
        &mut s,
        Instant::now(),
        b"CONNECT\naccept-version:1.2\nheart-beat:soon\n\n\0",
    );
    assert_eq!(f.get("message"), Some("invalid heart-beat header"));
}

#[test]
fn error_first_frame_not_connect() {
    let mut s = ServerSession::new(config());
    let (f, e) = refused(
        &mut s,
        Instant::now(),
        b"SEND\ndestination:/q\nreceipt:77\n\nx\0",
    );
    assert_eq!(e, ProtocolError::ConnectExpected(Command::Send));
    assert_eq!(f.get("message"), Some("CONNECT expected"));
    assert_eq!(f.get("receipt-id"), Some("77"));
}

#[test]
fn error_second_connect() {
    let (_, e) = refused_12(b"CONNECT\naccept-version:1.2\n\n\0");
    assert_eq!(e, ProtocolError::AlreadyConnected);
}

#[test]
fn error_server_command_from_client() {
    for cmd in ["CONNECTED", "MESSAGE", "RECEIPT", "ERROR"] {
        let (_, e) = refused_12(format!("{cmd}\n\n\0").as_bytes());
        assert!(matches!(e, ProtocolError::UnexpectedCommand(_)), "{cmd}");
    }
}

#[test]
fn reject_sends_error_and_closes() {
    let now = Instant::now();
    let mut s = ServerSession::new(config());
    s.receive(
        now,
        b"CONNECT\naccept-version:1.2\nlogin:x\n\n\0SEND\ndestination:/q\n\n\0",
    )
    .unwrap();
    assert!(matches!(s.poll_event(), Some(Event::Connect(_))));
    s.reject("access refused", "bad credentials").unwrap();
    assert!(s.is_closed());
    assert_eq!(s.close_reason(), Some(&CloseReason::ServerError));
    assert_eq!(s.poll_event(), None);
    let f = one_frame(&mut s, now);
    assert_eq!(f.command, Command::Error);
    assert_eq!(f.get("message"), Some("access refused"));
    assert_eq!(&f.body[..], b"bad credentials");
    assert_eq!(s.accept(now, &[]), Err(SendError::Closed));
}

#[test]
fn accept_and_reject_in_wrong_state() {
    let now = Instant::now();
    let mut s = ServerSession::new(config());
    assert_eq!(s.accept(now, &[]), Err(SendError::NotConnected));
    assert_eq!(s.reject("x", ""), Err(SendError::NotConnected));
    let (mut s, now) = connected("1.2");
    assert_eq!(s.accept(now, &[]), Err(SendError::AlreadyConnected));
}

#[test]
fn pipelined_frames_wait_for_accept() {
    let now = Instant::now();
    let mut s = ServerSession::new(config());
    s.receive(
        now,
        b"CONNECT\naccept-version:1.2\n\n\0SUBSCRIBE\nid:1\ndestination:/a\n\n\0SEND\ndesti",
    )
    .unwrap();
    s.receive(now, b"nation:/a\n\nx\0").unwrap();
    assert!(matches!(s.poll_event(), Some(Event::Connect(_))));
    assert_eq!(s.poll_event(), None);
    s.accept(now, &[]).unwrap();
    let ev = events(&mut s);
    assert!(matches!(&ev[0], Event::Subscribe { id, .. } if id == "1"));
    assert!(matches!(&ev[1], Event::Send { destination, .. } if destination == "/a"));
    assert_eq!(ev.len(), 2);
}

#[test]
fn pipelined_frames_are_decoded_with_the_negotiated_version() {
    let now = Instant::now();
    let mut s = ServerSession::new(config());
    s.receive(now, b"CONNECT\n\n\0SEND\ndestination:/a\\tb\n\n\0")
        .unwrap();
    s.poll_event();
    s.accept(now, &[]).unwrap();
    // 1.0 has no escapes: "\t" stays literal.
    assert!(
        matches!(&events(&mut s)[0], Event::Send { destination, .. } if destination == "/a\\tb")
    );
}

#[test]
fn error_pipeline_too_large() {
    let now = Instant::now();
    let mut s = ServerSession::new(Config {
        limits: Limits {
            max_frame_size: 100,
            ..Limits::default()
        },
        ..config()
    });
    s.receive(now, b"CONNECT\naccept-version:1.2\n\n\0")
        .unwrap();
    s.poll_event();
    let (_, e) = refused(&mut s, now, &[b'\n'; 101]);
    assert_eq!(e, ProtocolError::PipelineTooLarge { limit: 100 });
}

#[test]
fn error_in_pipelined_bytes_closes_on_accept() {
    let now = Instant::now();
    let mut s = ServerSession::new(config());
    s.receive(now, b"CONNECT\naccept-version:1.2\n\n\0BOGUS\n\n\0")
        .unwrap();
    s.poll_event();
    s.accept(now, &[]).unwrap();
    assert!(s.is_closed());
    let f = frames(&mut s, now);
    assert_eq!(f[0].command, Command::Connected);
    assert_eq!(f[1].command, Command::Error);
    assert_eq!(f[1].get("message"), Some("unknown command"));
}

// ---- decode errors through the session -------------------------------------

#[test]
fn error_decode_failure_is_answered() {
    let (f, e) = refused_12(b"SEND\nno colon here\n\n\0");
    assert!(matches!(e, ProtocolError::Decode(_)));
    assert_eq!(f.get("message"), Some("malformed header"));
}

#[test]
fn error_drops_queued_events_and_ignores_later_bytes() {
    let (mut s, now) = connected("1.2");
    let e = s
        .receive(now, b"SEND\ndestination:/q\n\nok\0SEND\nk:\\t\n\n\0")
        .unwrap_err();
    assert_eq!(e.message(), "undefined escape sequence");
    assert_eq!(s.poll_event(), None);
    s.receive(now, b"SEND\ndestination:/q\n\n\0").unwrap();
    assert_eq!(s.poll_event(), None);
}

#[test]
fn decoding_byte_by_byte_gives_the_same_events() {
    let input: &[u8] = b"CONNECT\r\naccept-version:1.2\r\n\r\n\0\r\nSEND\ndestination:/a\\cb\ncontent-length:3\n\n\0\0\0\0\n";
    let now = Instant::now();
    let mut whole = ServerSession::new(config());
    whole.receive(now, input).unwrap();
    let mut split = ServerSession::new(config());
    for b in input {
        split.receive(now, std::slice::from_ref(b)).unwrap();
    }
    for s in [&mut whole, &mut split] {
        assert!(matches!(s.poll_event(), Some(Event::Connect(_))));
        s.accept(now, &[]).unwrap();
    }
    let a = events(&mut whole);
    assert_eq!(a, events(&mut split));
    assert_eq!(a.len(), 3);
    assert!(
        matches!(&a[1], Event::Send { destination, body, .. } if destination == "/a:b" && &body[..] == b"\0\0\0")
    );
}

// ---- SEND ------------------------------------------------------------------

#[test]
fn send_event() {
    let (mut s, now) = connected("1.2");
    s.receive(
        now,
        b"SEND\ndestination:/queue/a\ncontent-type:text/plain\nx:1\n\nhello\0",
    )
    .unwrap();
    let Some(Event::Send {
        destination,
        transaction,
        headers,
        body,
    }) = s.poll_event()
    else {
        panic!()
    };
    assert_eq!(destination, "/queue/a");
    assert_eq!(transaction, None);
    assert_eq!(headers.get("x"), Some("1"));
    assert_eq!(&body[..], b"hello");
    assert!(wire(&mut s, now).is_empty());
}

#[test]
fn error_send_without_destination() {
    let (f, e) = refused_12(b"SEND\nreceipt:r9\n\nx\0");
    assert_eq!(
        e,
        ProtocolError::MissingHeader {
            command: Command::Send,
            header: "destination"
        }
    );
    assert_eq!(f.get("receipt-id"), Some("r9"));
}

// ---- SUBSCRIBE / UNSUBSCRIBE -------------------------------------------------

#[test]
fn subscribe_event_and_ack_modes() {
    let (mut s, now) = connected("1.2");
    s.receive(
        now,
        b"SUBSCRIBE\nid:a\ndestination:/t/1\n\n\0\
          SUBSCRIBE\nid:b\ndestination:/t/2\nack:client\n\n\0\
          SUBSCRIBE\nid:c\ndestination:/t/3\nack:client-individual\n\n\0",
    )
    .unwrap();
    let ev = events(&mut s);
    let modes: Vec<AckMode> = ev
        .iter()
        .map(|e| match e {
            Event::Subscribe { ack, .. } => *ack,
            _ => panic!(),
        })
        .collect();
    assert_eq!(
        modes,
        [AckMode::Auto, AckMode::Client, AckMode::ClientIndividual]
    );
    assert_eq!(s.ack_mode("b"), Some(AckMode::Client));
    assert_eq!(s.ack_mode("zz"), None);
}

#[test]
fn error_subscribe_without_destination() {
    let (_, e) = refused_12(b"SUBSCRIBE\nid:1\n\n\0");
    assert_eq!(
        e,
        ProtocolError::MissingHeader {
            command: Command::Subscribe,
            header: "destination"
        }
    );
}

#[test]
fn error_subscribe_without_id_1_1() {
    let (mut s, now) = connected("1.1");
    let (_, e) = refused(&mut s, now, b"SUBSCRIBE\ndestination:/a\n\n\0");
    assert_eq!(
        e,
        ProtocolError::MissingHeader {
            command: Command::Subscribe,
            header: "id"
        }
    );
}

#[test]
fn subscribe_without_id_1_0() {
    let (mut s, now) = connected_with(None, config());
    s.receive(now, b"SUBSCRIBE\ndestination:/a\nack:client\n\n\0")
        .unwrap();
    let Some(Event::Subscribe { id, .. }) = s.poll_event() else {
        panic!()
    };
    assert_eq!(id, "/a");
    let mid = s.send_message(&id, "/a", &[], Bytes::new()).unwrap();
    // No subscription header for an id-less 1.0 subscription, no ack header.
    assert_eq!(
        wire(&mut s, now),
        b"MESSAGE\nmessage-id:0\ndestination:/a\ncontent-length:0\n\n\0"
    );
    s.receive(now, format!("ACK\nmessage-id:{mid}\n\n\0").as_bytes())
        .unwrap();
    assert!(matches!(s.poll_event(), Some(Event::Ack { .. })));
    s.receive(now, b"UNSUBSCRIBE\ndestination:/a\n\n\0")
        .unwrap();
    assert!(matches!(s.poll_event(), Some(Event::Unsubscribe { id, .. }) if id == "/a"));
}

#[test]
fn error_invalid_ack_mode() {
    let (_, e) = refused_12(b"SUBSCRIBE\nid:1\ndestination:/a\nack:sometimes\n\n\0");
    assert_eq!(e, ProtocolError::InvalidAckMode("sometimes".into()));
}

#[test]
fn error_client_individual_in_1_0() {
    let (mut s, now) = connected_with(None, config());
    let (_, e) = refused(
        &mut s,
        now,
        b"SUBSCRIBE\ndestination:/a\nack:client-individual\n\n\0",
    );
    assert_eq!(e, ProtocolError::InvalidAckMode("client-individual".into()));
}

#[test]
fn error_duplicate_subscription() {
    let (_, e) =
        refused_12(b"SUBSCRIBE\nid:1\ndestination:/a\n\n\0SUBSCRIBE\nid:1\ndestination:/b\n\n\0");
    assert_eq!(e, ProtocolError::DuplicateSubscription("1".into()));
}

#[test]
fn error_too_many_subscriptions() {
    let (mut s, now) = connected_with(
        Some("1.2"),
        Config {
            max_subscriptions: 1,
            ..config()
        },
    );
    let (_, e) = refused(
        &mut s,
        now,
        b"SUBSCRIBE\nid:1\ndestination:/a\n\n\0SUBSCRIBE\nid:2\ndestination:/a\n\n\0",
    );
    assert_eq!(e, ProtocolError::TooManySubscriptions { limit: 1 });
}

#[test]
fn unsubscribe_reports_unacked() {
    let (mut s, now) = connected("1.2");
    s.receive(now, b"SUBSCRIBE\nid:s\ndestination:/a\nack:client\n\n\0")
        .unwrap();
    events(&mut s);
    s.send_message("s", "/a", &[], "1".into()).unwrap();
    s.send_message("s", "/a", &[], "2".into()).unwrap();
    assert_eq!(s.unacked("s"), Some(2));
    s.receive(now, b"UNSUBSCRIBE\nid:s\n\n\0").unwrap();
    assert_eq!(
        s.poll_event(),
        Some(Event::Unsubscribe {
            id: "s".into(),
            destination: "/a".into(),
            unacked: vec![0, 1]
        })
    );
    assert_eq!(
        s.send_message("s", "/a", &[], Bytes::new()),
        Err(SendError::UnknownSubscription("s".into()))
    );
}

#[test]
fn error_unsubscribe_unknown() {
    let (_, e) = refused_12(b"UNSUBSCRIBE\nid:nope\n\n\0");
    assert_eq!(e, ProtocolError::UnknownSubscription("nope".into()));
}

#[test]
fn error_unsubscribe_without_id() {
    let (_, e) = refused_12(b"UNSUBSCRIBE\ndestination:/a\n\n\0");
    assert_eq!(
        e,
        ProtocolError::MissingHeader {
            command: Command::Unsubscribe,
            header: "id"
        }
    );
}

// ---- MESSAGE / ACK / NACK ----------------------------------------------------

fn subscribed(version: &str, ack: &str) -> (ServerSession, Instant) {
    let (mut s, now) = connected(version);
    s.receive(
        now,
        format!("SUBSCRIBE\nid:s\ndestination:/a\nack:{ack}\n\n\0").as_bytes(),
    )
    .unwrap();
    events(&mut s);
    (s, now)
}

#[test]
fn message_headers_per_mode() {
    let (mut s, now) = subscribed("1.2", "client");
    s.send_message(
        "s",
        "/a",
        &[("content-type", "text/plain"), ("message-id", "x")],
        "hi".into(),
    )
    .unwrap();
    assert_eq!(
        wire(&mut s, now),
        b"MESSAGE\nsubscription:s\nmessage-id:0\nack:0\ndestination:/a\ncontent-type:text/plain\ncontent-length:2\n\nhi\0"
    );
    let (mut s, now) = subscribed("1.2", "auto");
    s.send_message("s", "/a", &[], "hi".into()).unwrap();
    assert_eq!(
        wire(&mut s, now),
        b"MESSAGE\nsubscription:s\nmessage-id:0\ndestination:/a\ncontent-length:2\n\nhi\0"
    );
}

#[test]
fn send_prepared_matches_send_message() {
    let template = MessageTemplate::new("/a", &[("k", "v:w")], b"\0bin\0");
    for v in ["1.1", "1.2"] {
        let (mut a, now) = subscribed(v, "client-individual");
        let (mut b, _) = subscribed(v, "client-individual");
        a.send_message("s", "/a", &[("k", "v:w")], Bytes::from_static(b"\0bin\0"))
            .unwrap();
        b.send_prepared("s", &template).unwrap();
        assert_eq!(wire(&mut a, now), wire(&mut b, now));
    }
}

#[test]
fn send_shared_matches_send_message_for_every_version() {
    // No header needs escaping: one encoding serves 1.0, 1.1 and 1.2.
    let template = MessageTemplate::new("/topic/a", &[("content-type", "text/plain")], b"hi");
    let shared = template.uniform().expect("uniform").clone();
    for v in ["1.0", "1.1", "1.2"] {
        for ack in ["auto", "client"] {
            let (mut a, now) = subscribed(v, ack);
            let (mut b, _) = subscribed(v, ack);
            a.send_message("s", "/topic/a", &[("content-type", "text/plain")], "hi".into())
                .unwrap();
            b.send_shared("s", shared.clone()).unwrap();
            assert_eq!(wire(&mut a, now), wire(&mut b, now), "{v} {ack}");
        }
    }
    // A header that escapes differently per version has no uniform encoding.
    assert!(MessageTemplate::new("/a", &[("k", "v:w")], b"x").uniform().is_none());
    let (mut s, _) = subscribed("1.2", "auto");
    assert!(matches!(
        s.send_shared("nope", shared),
        Err(SendError::UnknownSubscription(_))
    ));
}

#[test]
fn send_before_connect_or_after_close() {
    let now = Instant::now();
    let mut s = ServerSession::new(config());
    assert_eq!(
        s.send_message("s", "/a", &[], Bytes::new()),
        Err(SendError::NotConnected)
    );
    let (mut s, _) = subscribed("1.2", "auto");
    s.close();
    assert_eq!(
        s.send_message("s", "/a", &[], Bytes::new()),
        Err(SendError::Closed)
    );
    assert_eq!(s.send_error("x", ""), Err(SendError::Closed));
    assert_eq!(s.send_receipt("x"), Err(SendError::Closed));
    assert!(wire(&mut s, now).is_empty());
}

#[test]
fn ack_1_2_individual() {
    let (mut s, now) = subscribed("1.2", "client-individual");
    for _ in 0..3 {
        s.send_message("s", "/a", &[], Bytes::new()).unwrap();
    }
    s.receive(now, b"ACK\nid:1\n\n\0NACK\nid:2\n\n\0").unwrap();
    assert_eq!(
        events(&mut s),
        [
            Event::Ack {
                subscription: "s".into(),
                message_ids: vec![1],
                transaction: None
            },
            Event::Nack {
                subscription: "s".into(),
                message_ids: vec![2],
                transaction: None
            }
        ]
    );
    assert_eq!(s.unacked("s"), Some(1));
}

#[test]
fn ack_1_2_client_is_cumulative() {
    let (mut s, now) = subscribed("1.2", "client");
    for _ in 0..3 {
        s.send_message("s", "/a", &[], Bytes::new()).unwrap();
    }
    s.receive(now, b"ACK\nid:1\n\n\0").unwrap();
    assert!(
        matches!(s.poll_event(), Some(Event::Ack { message_ids, .. }) if message_ids == [0, 1])
    );
    assert_eq!(s.unacked("s"), Some(1));
}

#[test]
fn ack_1_1_uses_message_id_and_subscription() {
    let (mut s, now) = subscribed("1.1", "client");
    s.send_message("s", "/a", &[], Bytes::new()).unwrap();
    // 1.1 MESSAGE frames carry no ack header.
    assert!(!String::from_utf8(wire(&mut s, now))
        .unwrap()
        .contains("ack:"));
    s.receive(now, b"ACK\nmessage-id:0\nsubscription:s\n\n\0")
        .unwrap();
    assert!(matches!(s.poll_event(), Some(Event::Ack { message_ids, .. }) if message_ids == [0]));
}

#[test]
fn error_ack_1_1_without_subscription() {
    let (mut s, now) = subscribed("1.1", "client");
    s.send_message("s", "/a", &[], Bytes::new()).unwrap();
    let (_, e) = refused(&mut s, now, b"ACK\nmessage-id:0\n\n\0");
    assert_eq!(
        e,
        ProtocolError::MissingHeader {
            command: Command::Ack,
            header: "subscription"
        }
    );
}

#[test]
fn error_ack_1_1_unknown_subscription() {
    let (mut s, now) = subscribed("1.1", "client");
    s.send_message("s", "/a", &[], Bytes::new()).unwrap();
    let (_, e) = refused(&mut s, now, b"ACK\nmessage-id:0\nsubscription:t\n\n\0");
    assert_eq!(e, ProtocolError::UnknownSubscription("t".into()));
}

#[test]
fn error_ack_without_id() {
    let (mut s, now) = subscribed("1.2", "client");
    let (_, e) = refused(&mut s, now, b"ACK\nmessage-id:0\n\n\0");
    assert_eq!(
        e,
        ProtocolError::MissingHeader {
            command: Command::Ack,
            header: "id"
        }
    );
}

#[test]
fn error_ack_1_0_without_message_id() {
    let (mut s, now) = connected_with(None, config());
    let (_, e) = refused(&mut s, now, b"ACK\n\n\0");
    assert_eq!(
        e,
        ProtocolError::MissingHeader {
            command: Command::Ack,
            header: "message-id"
        }
    );
}

#[test]
fn error_ack_unknown_message() {
    let (mut s, now) = subscribed("1.2", "client");
    s.send_message("s", "/a", &[], Bytes::new()).unwrap();
    let (f, e) = refused(&mut s, now, b"ACK\nid:5\nreceipt:r\n\n\0");
    assert_eq!(e, ProtocolError::UnknownAck("5".into()));
    assert_eq!(f.get("receipt-id"), Some("r"));
}

#[test]
fn error_ack_twice() {
    let (mut s, now) = subscribed("1.2", "client-individual");
    s.send_message("s", "/a", &[], Bytes::new()).unwrap();
    let (_, e) = refused(&mut s, now, b"ACK\nid:0\n\n\0ACK\nid:0\n\n\0");
    assert_eq!(e, ProtocolError::UnknownAck("0".into()));
}

#[test]
fn error_ack_on_auto_subscription() {
    let (mut s, now) = subscribed("1.2", "auto");
    s.send_message("s", "/a", &[], Bytes::new()).unwrap();
    let (_, e) = refused(&mut s, now, b"ACK\nid:0\n\n\0");
    assert_eq!(e, ProtocolError::UnknownAck("0".into()));
}

#[test]
fn error_nack_in_1_0() {
    let (mut s, now) = connected_with(None, config());
    let (_, e) = refused(&mut s, now, b"NACK\nmessage-id:0\n\n\0");
    assert_eq!(
        e,
        ProtocolError::CommandNotInVersion {
            command: Command::Nack,
            version: Version::V1_0
        }
    );
}

// ---- transactions ------------------------------------------------------------

#[test]
fn transaction_lifecycle() {
    let (mut s, now) = subscribed("1.2", "client");
    s.send_message("s", "/a", &[], Bytes::new()).unwrap();
    s.receive(
        now,
        b"BEGIN\ntransaction:t\n\n\0\
          SEND\ndestination:/a\ntransaction:t\n\n\0\
          ACK\nid:0\ntransaction:t\n\n\0\
          COMMIT\ntransaction:t\n\n\0\
          BEGIN\ntransaction:t\n\n\0\
          ABORT\ntransaction:t\n\n\0",
    )
    .unwrap();
    let ev = events(&mut s);
    assert_eq!(
        ev[0],
        Event::Begin {
            transaction: "t".into()
        }
    );
    assert!(matches!(&ev[1], Event::Send { transaction: Some(t), .. } if t == "t"));
    assert!(matches!(&ev[2], Event::Ack { transaction: Some(t), .. } if t == "t"));
    assert_eq!(
        ev[3],
        Event::Commit {
            transaction: "t".into()
        }
    );
    assert_eq!(
        ev[4],
        Event::Begin {
            transaction: "t".into()
        }
    );
    assert_eq!(
        ev[5],
        Event::Abort {
            transaction: "t".into()
        }
    );
}

#[test]
fn error_begin_existing_transaction() {
    let (_, e) = refused_12(b"BEGIN\ntransaction:t\n\n\0BEGIN\ntransaction:t\n\n\0");
    assert_eq!(e, ProtocolError::TransactionExists("t".into()));
}

#[test]
fn error_begin_without_transaction() {
    let (_, e) = refused_12(b"BEGIN\n\n\0");
    assert_eq!(
        e,
        ProtocolError::MissingHeader {
            command: Command::Begin,
            header: "transaction"
        }
    );
}

#[test]
fn error_commit_unknown_transaction() {
    let (_, e) = refused_12(b"COMMIT\ntransaction:t\n\n\0");
    assert_eq!(e, ProtocolError::UnknownTransaction("t".into()));
}

#[test]
fn error_abort_unknown_transaction() {
    let (_, e) = refused_12(
        b"BEGIN\ntransaction:t\n\n\0COMMIT\ntransaction:t\n\n\0ABORT\ntransaction:t\n\n\0",
    );
    assert_eq!(e, ProtocolError::UnknownTransaction("t".into()));
}

#[test]
fn error_send_in_unknown_transaction() {
    let (_, e) = refused_12(b"SEND\ndestination:/a\ntransaction:x\n\n\0");
    assert_eq!(e, ProtocolError::UnknownTransaction("x".into()));
}

#[test]
fn error_too_many_transactions() {
    let (mut s, now) = connected_with(
        Some("1.2"),
        Config {
            max_transactions: 1,
            ..config()
        },
    );
    let (_, e) = refused(
        &mut s,
        now,
        b"BEGIN\ntransaction:a\n\n\0BEGIN\ntransaction:b\n\n\0",
    );
    assert_eq!(e, ProtocolError::TooManyTransactions { limit: 1 });
}

// ---- receipts ----------------------------------------------------------------

#[test]
fn receipt_sent_after_the_event_is_handled() {
    let (mut s, now) = subscribed("1.2", "auto");
    s.receive(
        now,
        b"SEND\ndestination:/a\nreceipt:r1\n\nx\0BEGIN\ntransaction:t\nreceipt:r2\n\n\0",
    )
    .unwrap();
    assert!(matches!(s.poll_event(), Some(Event::Send { .. })));
    // Not yet: the application is still handling the SEND.
    assert!(s.has_output());
    s.send_message("s", "/a", &[], "x".into()).unwrap();
    assert!(matches!(s.poll_event(), Some(Event::Begin { .. })));
    assert_eq!(s.poll_event(), None);
    let f = frames(&mut s, now);
    let kinds: Vec<_> = f
        .iter()
        .map(|f| (f.command, f.get("receipt-id").map(str::to_owned)))
        .collect();
    assert_eq!(
        kinds,
        [
            (Command::Message, None),
            (Command::Receipt, Some("r1".into())),
            (Command::Receipt, Some("r2".into())),
        ]
    );
}

#[test]
fn receipt_flushed_by_take_output() {
    let (mut s, now) = connected("1.2");
    s.receive(now, b"SUBSCRIBE\nid:1\ndestination:/a\nreceipt:r\n\n\0")
        .unwrap();
    s.poll_event();
    assert_eq!(wire(&mut s, now), b"RECEIPT\nreceipt-id:r\n\n\0");
}

#[test]
fn receipt_deferred() {
    let (mut s, now) = connected("1.2");
    s.receive(now, b"SEND\ndestination:/a\nreceipt:r\n\n\0")
        .unwrap();
    s.poll_event();
    let r = s.defer_receipt().unwrap();
    assert!(wire(&mut s, now).is_empty());
    s.send_receipt(&r).unwrap();
    assert_eq!(wire(&mut s, now), b"RECEIPT\nreceipt-id:r\n\n\0");
}

#[test]
fn send_error_carries_the_current_receipt() {
    let (mut s, now) = connected("1.2");
    s.receive(now, b"SEND\ndestination:/forbidden\nreceipt:r\n\n\0")
        .unwrap();
    s.poll_event();
    s.send_error("access denied", "").unwrap();
    let f = one_frame(&mut s, now);
    assert_eq!(f.command, Command::Error);
    assert_eq!(f.get("receipt-id"), Some("r"));
    assert_eq!(f.get("message"), Some("access denied"));
    assert!(f.body.is_empty());
}

#[test]
fn receipt_of_handled_event_precedes_later_error() {
    let (mut s, now) = connected("1.2");
    s.receive(now, b"SEND\ndestination:/a\nreceipt:ok\n\n\0")
        .unwrap();
    s.poll_event();
    s.receive(now, b"BOGUS\n\n\0").unwrap_err();
    let f = frames(&mut s, now);
    assert_eq!(f[0].command, Command::Receipt);
    assert_eq!(f[1].command, Command::Error);
}

#[test]
fn receipt_id_is_escaped() {
    let (mut s, now) = connected("1.2");
    s.receive(now, b"BEGIN\ntransaction:t\nreceipt:a\\cb\n\n\0")
        .unwrap();
    s.poll_event();
    assert_eq!(wire(&mut s, now), b"RECEIPT\nreceipt-id:a\\cb\n\n\0");
}

// ---- DISCONNECT / close --------------------------------------------------------

#[test]
fn disconnect_with_receipt() {
    let (mut s, now) = connected("1.2");
    s.receive(
        now,
        b"SEND\ndestination:/a\nreceipt:r1\n\n\0DISCONNECT\nreceipt:bye\n\n\0SEND\ndestination:/a\n\n\0",
    )
    .unwrap();
    assert!(matches!(s.poll_event(), Some(Event::Send { .. })));
    assert!(!s.is_closed());
    assert_eq!(
        s.poll_event(),
        Some(Event::Disconnect {
            receipt: Some("bye".into())
        })
    );
    assert!(s.is_closed());
    assert_eq!(s.close_reason(), Some(&CloseReason::Disconnect));
    assert_eq!(s.poll_event(), None);
    assert_eq!(
        wire(&mut s, now),
        b"RECEIPT\nreceipt-id:r1\n\n\0RECEIPT\nreceipt-id:bye\n\n\0"
    );
    s.receive(now, b"SEND\ndestination:/a\n\n\0").unwrap();
    assert_eq!(s.poll_event(), None);
}

#[test]
fn disconnect_without_receipt() {
    let (mut s, now) = connected("1.2");
    s.receive(now, b"DISCONNECT\n\n\0").unwrap();
    assert_eq!(s.poll_event(), Some(Event::Disconnect { receipt: None }));
    assert!(s.is_closed());
    assert!(wire(&mut s, now).is_empty());
}

#[test]
fn local_close() {
    let (mut s, now) = connected("1.2");
    s.receive(now, b"SEND\ndestination:/a\n\n\0").unwrap();
    s.close();
    assert!(s.is_closed());
    assert_eq!(s.close_reason(), Some(&CloseReason::Local));
    assert_eq!(s.poll_event(), None);
    assert_eq!(s.poll_timeout(), None);
    assert!(wire(&mut s, now).is_empty());
}

// ---- heart-beats -------------------------------------------------------------

fn hb_session(client: &str, server: HeartBeat) -> (ServerSession, Instant) {
    let now = Instant::now();
    let mut s = ServerSession::new(Config {
        heart_beat: server,
        ..config()
    });
    s.receive(
        now,
        format!("CONNECT\naccept-version:1.2\nheart-beat:{client}\n\n\0").as_bytes(),
    )
    .unwrap();
    s.poll_event();
    s.accept(now, &[]).unwrap();
    wire(&mut s, now);
    (s, now)
}

const SEC: Duration = Duration::from_secs(1);

#[test]
fn heart_beat_eol_sent_when_idle() {
    // Client wants one every 1 s, cannot send: outgoing only.
    let (mut s, t0) = hb_session("0,1000", HeartBeat::from_millis(500, 0));
    assert_eq!(s.poll_timeout(), Some(t0 + SEC));
    s.handle_timeout(t0 + SEC / 2);
    assert!(wire(&mut s, t0 + SEC / 2).is_empty());
    s.handle_timeout(t0 + SEC);
    assert_eq!(wire(&mut s, t0 + SEC), b"\n");
    assert_eq!(s.poll_timeout(), Some(t0 + 2 * SEC));
    assert!(!s.is_closed());
}

#[test]
fn heart_beat_not_sent_after_other_output() {
    let (mut s, t0) = hb_session("0,1000", HeartBeat::from_millis(1000, 0));
    s.receive(t0, b"SUBSCRIBE\nid:1\ndestination:/a\n\n\0")
        .unwrap();
    s.poll_event();
    let t = t0 + SEC * 8 / 10;
    s.send_message("1", "/a", &[], Bytes::new()).unwrap();
    wire(&mut s, t);
    assert_eq!(s.poll_timeout(), Some(t + SEC));
    s.handle_timeout(t0 + SEC);
    assert!(wire(&mut s, t0 + SEC).is_empty());
    s.handle_timeout(t + SEC);
    assert_eq!(wire(&mut s, t + SEC), b"\n");
}

#[test]
fn heart_beat_pending_output_counts_as_activity() {
    let (mut s, t0) = hb_session("0,1000", HeartBeat::from_millis(1000, 0));
    s.receive(t0, b"SUBSCRIBE\nid:1\ndestination:/a\n\n\0")
        .unwrap();
    s.poll_event();
    s.send_message("1", "/a", &[], Bytes::new()).unwrap();
    s.handle_timeout(t0 + SEC);
    assert_eq!(s.poll_timeout(), Some(t0 + 2 * SEC));
    assert!(!wire(&mut s, t0 + SEC).ends_with(b"\0\n"));
}

#[test]
fn heart_beat_receive_timeout_with_grace() {
    // Client promises one every 2 s; server wants 1 s: incoming = 2 s,
    // dropped after 2 s * 1.5 = 3 s of silence.
    let (mut s, t0) = hb_session("2000,0", HeartBeat::from_millis(0, 1000));
    assert_eq!(s.heart_beat().incoming, Some(2 * SEC));
    assert_eq!(s.poll_timeout(), Some(t0 + 3 * SEC));
    s.receive(t0 + 2 * SEC, b"\n").unwrap();
    assert_eq!(s.poll_event(), Some(Event::HeartBeat));
    assert_eq!(s.poll_timeout(), Some(t0 + 5 * SEC));
    s.handle_timeout(t0 + 4 * SEC);
    assert!(!s.is_closed());
    s.handle_timeout(t0 + 5 * SEC);
    assert!(s.is_closed());
    assert_eq!(s.close_reason(), Some(&CloseReason::HeartBeatTimeout));
    // No ERROR frame: the peer is gone.
    assert!(wire(&mut s, t0 + 5 * SEC).is_empty());
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn heart_beat_grace_is_configurable() {
    let now = Instant::now();
    let mut s = ServerSession::new(Config {
        heart_beat: HeartBeat::from_millis(0, 1000),
        heart_beat_grace: 2.0,
        ..config()
    });
    s.receive(now, b"CONNECT\naccept-version:1.2\nheart-beat:1000,0\n\n\0")
        .unwrap();
    s.poll_event();
    s.accept(now, &[]).unwrap();
    assert_eq!(s.poll_timeout(), Some(now + 2 * SEC));
}

#[test]
fn any_frame_counts_as_incoming_activity() {
    let (mut s, t0) = hb_session("1000,0", HeartBeat::from_millis(0, 1000));
    s.receive(t0 + SEC, b"SEND\ndestination:/a\n\n\0").unwrap();
    assert_eq!(s.poll_timeout(), Some(t0 + SEC + SEC * 3 / 2));
}

#[test]
fn heart_beat_events_are_coalesced() {
    let (mut s, t0) = connected("1.2");
    s.receive(t0, b"\n\n\r\n\nSEND\ndestination:/a\n\n\0\n\n")
        .unwrap();
    let ev = events(&mut s);
    assert_eq!(ev.len(), 3);
    assert_eq!(ev[0], Event::HeartBeat);
    assert_eq!(ev[2], Event::HeartBeat);
}

#[test]
fn no_heart_beats_when_either_side_says_zero() {
    let (s, _) = hb_session("0,0", HeartBeat::from_millis(1000, 1000));
    assert_eq!(s.poll_timeout(), None);
    let (s, _) = hb_session("1000,1000", HeartBeat::NONE);
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn poll_transmit_drains_one_chunk_at_a_time() {
    let (mut s, now) = connected("1.2");
    s.receive(now, b"BEGIN\ntransaction:t\nreceipt:1\n\n\0")
        .unwrap();
    s.poll_event();
    assert_eq!(
        s.poll_transmit(now).as_deref(),
        Some(&b"RECEIPT\nreceipt-id:1\n\n\0"[..])
    );
    assert_eq!(s.poll_transmit(now), None);
    assert!(!s.has_output());
}
