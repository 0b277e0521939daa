//! Session rules, with synthetic `Instant`s, against the protocol test
//! suite's `Protocol`, `XhrStreaming`, `EventSource`, `HtmlFile`,
//! `JsonPolling` and `HandlingClose` cases.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::receiver::Callback;

fn config() -> SockJsConfig {
    SockJsConfig::default()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn text(data: &[Bytes]) -> Vec<String> {
    data.iter()
        .map(|b| String::from_utf8(b.to_vec()).unwrap())
        .collect()
}

fn out(session: &mut Session, now: Instant, id: ReceiverId) -> (Vec<String>, Flow) {
    let mut v = Vec::new();
    let flow = session.poll_output(now, id, &mut v);
    (text(&v), flow)
}

fn events(session: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| session.poll_event()).collect()
}

#[test]
fn first_attach_gets_open_polling_ends() {
    // Protocol.test_simpleSession
    let t0 = Instant::now();
    let mut s = Session::new(t0, &config());
    assert_eq!(s.state(), SessionState::New);
    let a = s.attach(t0, ReceiverKind::XhrPolling);
    assert_eq!(text(&a.data), ["o\n"]);
    assert_eq!(a.flow, Flow::End);
    assert_eq!(s.state(), SessionState::Open);
    assert_eq!(events(&mut s), [Event::Open]);
    assert!(!s.is_attached(a.id));
}

#[test]
fn polling_drains_queue_in_one_frame() {
    // Protocol.test_simpleSession, XhrPolling.test_content_types
    let t0 = Instant::now();
    let mut s = Session::new(t0, &config());
    s.attach(t0, ReceiverKind::XhrPolling);
    s.handle_messages(["a".to_owned()]);
    assert_eq!(events(&mut s), [Event::Open, Event::Message("a".into())]);
    for m in ["a", "b", "c"] {
        s.send_text(m).unwrap();
    }
    assert_eq!(s.queued(), 3);
    assert!(!s.has_output(), "no receiver attached");
    let a = s.attach(t0, ReceiverKind::XhrPolling);
    assert_eq!(text(&a.data), ["a[\"a\",\"b\",\"c\"]\n"]);
    assert_eq!(a.flow, Flow::End);
    assert_eq!(s.queued(), 0);
}

#[test]
fn parked_poll_answered_by_send() {
    let t0 = Instant::now();
    let mut s = Session::new(t0, &config());
    s.attach(t0, ReceiverKind::XhrPolling);
    let poll = s.attach(t0 + secs(1), ReceiverKind::XhrPolling);
    assert!(poll.data.is_empty());
    assert_eq!(poll.flow, Flow::Continue);
    assert!(!s.has_output());
    s.send_text("x").unwrap();
    s.send_text("y").unwrap();
    assert!(s.has_output());
    assert_eq!(
        out(&mut s, t0 + secs(2), poll.id),
        (vec!["a[\"x\",\"y\"]\n".to_owned()], Flow::End)
    );
    assert!(!s.is_attached(poll.id));
    // A stale id gets nothing.
    assert_eq!(out(&mut s, t0 + secs(2), poll.id), (vec![], Flow::End));
}

#[test]
fn second_concurrent_attach_gets_2010() {
    // Protocol.test_simpleSession, HandlingClose.test_close_request
    let t0 = Instant::now();
    let mut s = Session::new(t0, &config());
    let first = s.attach(t0, ReceiverKind::XhrStreaming);
    assert_eq!(first.flow, Flow::Continue);
    let second = s.attach(t0, ReceiverKind::XhrStreaming);
    assert_eq!(
        text(&second.data),
        ["c[2010,\"Another connection still open\"]\n"]
    );
    assert_eq!(second.flow, Flow::End);
    assert!(s.is_attached(first.id));
    let poll = s.attach(t0, ReceiverKind::XhrPolling);
    assert_eq!(
        text(&poll.data),
        ["c[2010,\"Another connection still open\"]\n"]
    );
    // The first is unaffected.
    s.send_text("m").unwrap();
    assert_eq!(
        out(&mut s, t0, first.id),
        (vec!["a[\"m\"]\n".to_owned()], Flow::Continue)
    );
}

#[test]
fn closed_session_serves_close_frame_until_gc() {
    // Protocol.test_closeSession, JsonPolling.test_close
    let t0 = Instant::now();
    let mut s = Session::new(t0, &config());
    let cb = Callback::new("x").unwrap();
    let a = s.attach(t0, ReceiverKind::Jsonp(cb.clone()));
    assert_eq!(text(&a.data), ["x(\"o\");\r\n"]);
    assert!(s.close(3000, "Go away!"));
    assert!(!s.close(3000, "again"));
    assert_eq!(s.state(), SessionState::Closing);
    for i in 0..3 {
        let a = s.attach(t0 + secs(i), ReceiverKind::Jsonp(cb.clone()));
        assert_eq!(text(&a.data), ["x(\"c[3000,\\\"Go away!\\\"]\");\r\n"]);
        assert_eq!(a.flow, Flow::End);
    }
    // Each attach restarted the disconnect timer.
    assert_eq!(s.poll_timeout(), Some(t0 + secs(2) + secs(5)));
    s.handle_timeout(t0 + secs(6));
    assert!(!s.is_closed());
    s.handle_timeout(t0 + secs(7));
    assert!(s.is_closed());
    assert_eq!(
        events(&mut s),
        [
            Event::Open,
            Event::Closed(CloseReason::Application(CloseFrame::GO_AWAY))
        ]
    );
    assert_eq!(s.poll_timeout(), None);
    // After GC the server forgets it; if asked anyway it still says close.
    let a = s.attach(t0 + secs(8), ReceiverKind::XhrPolling);
    assert_eq!(text(&a.data), ["c[3000,\"Go away!\"]\n"]);
}

#[test]
fn close_while_streaming() {
    // HandlingClose.test_close_frame: the streaming receiver gets the close
    // frame and ends; a new one gets the close frame too.
    let t0 = Instant::now();
    let mut s = Session::new(t0, &config());
    let r1 = s.attach(t0, ReceiverKind::XhrStreaming);
    assert_eq!(text(&r1.data), ["o\n"]);
    s.send_text("last").unwrap();
    s.close(3000, "Go away!");
    assert!(s.has_output());
    assert_eq!(
        out(&mut s, t0, r1.id),
        (
            vec!["a[\"last\"]\nc[3000,\"Go away!\"]\n".to_owned()],
            Flow::End
        )
    );
    assert!(s.send_text("late").is_err());
    let r2 = s.attach(t0, ReceiverKind::XhrStreaming);
    assert_eq!(text(&r2.data), ["c[3000,\"Go away!\"]\n"]);
    assert_eq!(r2.flow, Flow::End);
}

#[test]
fn close_before_poll_delivers_queue_then_close() {
    // sockjs-node's register() on a closing session: a polling receiver
    // gets the queued messages, the next one the close frame.
    let t0 = Instant::now();
    let mut s = Session::new(t0, &config());
    s.attach(t0, ReceiverKind::XhrPolling);
    s.send_text("a").unwrap();
    s.close(1000, "Normal closure");
    let a = s.attach(t0, ReceiverKind::XhrPolling);
    assert_eq!(text(&a.data), ["a[\"a\"]\n"]);
    let a = s.attach(t0, ReceiverKind::XhrPolling);
    assert_eq!(text(&a.data), ["c[1000,\"Normal closure\"]\n"]);
}

#[test]
fn streaming_byte_limit_detaches() {
    // XhrStreaming.test_response_limit with the test server's 4096 bytes:
    // 'o\n' + 30 × 134 bytes stays under, the 31st message crosses it.
    let config = SockJsConfig {
        stream_bytes_limit: 4096,
        ..SockJsConfig::default()
    };
    let t0 = Instant::now();
    let mut s = Session::new(t0, &config);
    let r = s.attach(t0, ReceiverKind::XhrStreaming);
    assert_eq!(text(&r.data), ["o\n"]);
    let msg = "x".repeat(128);
    for i in 0..31 {
        s.handle_messages([msg.clone()]);
        s.send_text(&msg).unwrap();
        let (data, flow) = out(&mut s, t0, r.id);
        assert_eq!(data, [format!("a[\"{msg}\"]\n")]);
        let expected = if i < 30 { Flow::Continue } else { Flow::End };
        assert_eq!(flow, expected, "message {i}");
    }
    assert!(!s.is_attached(r.id));
    assert_eq!(s.state(), SessionState::Open);
    // The client reconnects and carries on with the same session.
    s.send_text("more").unwrap();
    let r2 = s.attach(t0 + secs(1), ReceiverKind::XhrStreaming);
    assert_eq!(text(&r2.data), ["a[\"more\"]\n"]);
    assert_eq!(r2.flow, Flow::Continue);
}

#[test]
fn eventsource_and_htmlfile_byte_limits() {
    // EventSource.test_response_limit / HtmlFile.test_response_limit: one
    // 4 KiB message ends the stream.
    let config = SockJsConfig {
        stream_bytes_limit: 4096,
        ..SockJsConfig::default()
    };
    let msg = "x".repeat(4096);
    for kind in [
        ReceiverKind::EventSource,
        ReceiverKind::HtmlFile(Callback::new("callback").unwrap()),
    ] {
        let t0 = Instant::now();
        let mut s = Session::new(t0, &config);
        let r = s.attach(t0, kind.clone());
        assert_eq!(r.flow, Flow::Continue);
        s.send_text(&msg).unwrap();
        let (data, flow) = out(&mut s, t0, r.id);
        let expected = match kind {
            ReceiverKind::EventSource => format!("data: a[\"{msg}\"]\r\n\r\n"),
            _ => format!("<script>\np(\"a[\\\"{msg}\\\"]\");\n</script>\r\n"),
        };
        assert_eq!(data, [expected]);
        assert_eq!(flow, Flow::End);
    }
}

#[test]
fn heartbeats() {
    let t0 = Instant::now();
    let mut s = Session::new(t0, &config());
    let r = s.attach(t0, ReceiverKind::EventSource);
    assert_eq!(text(&r.data), ["data: o\r\n\r\n"]);
    assert_eq!(s.poll_timeout(), Some(t0 + secs(25)));
    s.handle_timeout(t0 + secs(24));
    assert!(!s.has_output());
    s.handle_timeout(t0 + secs(25));
    assert!(s.has_output());
    assert_eq!(
        out(&mut s, t0 + secs(25), r.id),
        (vec!["data: h\r\n\r\n".to_owned()], Flow::Continue)
    );
    // A message resets the heartbeat clock.
    assert_eq!(s.poll_timeout(), Some(t0 + secs(50)));
    s.send_text("m").unwrap();
    out(&mut s, t0 + secs(40), r.id);
    assert_eq!(s.poll_timeout(), Some(t0 + secs(65)));
    // A due heartbeat is skipped when a message goes out anyway.
    s.handle_timeout(t0 + secs(65));
    s.send_text("n").unwrap();
    assert_eq!(
        out(&mut s, t0 + secs(65), r.id),
        (vec!["data: a[\"n\"]\r\n\r\n".to_owned()], Flow::Continue)
    );
    assert!(!s.has_output());
}

#[test]
fn heartbeat_answers_parked_poll() {
    let t0 = Instant::now();
    let mut s = Session::new(t0, &config());
    s.attach(t0, ReceiverKind::XhrPolling);
    let p = s.attach(t0, ReceiverKind::XhrPolling);
    assert_eq!(p.flow, Flow::Continue);
    s.handle_timeout(t0 + secs(25));
    assert_eq!(
        out(&mut s, t0 + secs(25), p.id),
        (vec!["h\n".to_owned()], Flow::End)
    );
    // Now no receiver: the disconnect clock runs.
    assert_eq!(s.poll_timeout(), Some(t0 + secs(30)));
}

#[test]
fn disconnect_delay_closes_as_client_gone() {
    let t0 = Instant::now();
    let mut s = Session::new(t0, &config());
    s.attach(t0, ReceiverKind::XhrPolling);
    assert_eq!(s.poll_timeout(), Some(t0 + secs(5)));
    // A poll in time keeps it alive.
    let p = s.attach(t0 + secs(4), ReceiverKind::XhrPolling);
    assert_eq!(s.poll_timeout(), Some(t0 + secs(4) + secs(25)));
    s.handle_timeout(t0 + secs(10));
    assert!(!s.is_closed());
    s.send_text("x").unwrap();
    out(&mut s, t0 + secs(10), p.id);
    assert_eq!(s.poll_timeout(), Some(t0 + secs(15)));
    s.handle_timeout(t0 + secs(15));
    assert!(s.is_closed());
    assert_eq!(
        events(&mut s).last(),
        Some(&Event::Closed(CloseReason::ClientGone))
    );
    assert_eq!(s.send_text("late"), Err(SendError::NotOpen));
}

#[test]
fn unattached_new_session_expires() {
    let t0 = Instant::now();
    let mut s = Session::new(t0, &config());
    assert_eq!(s.poll_timeout(), Some(t0 + secs(5)));
    s.handle_timeout(t0 + secs(5));
    assert!(s.is_closed());
    assert_eq!(events(&mut s), [Event::Closed(CloseReason::ClientGone)]);
}

#[test]
fn abort_closes_at_once() {
    // HandlingClose.test_abort_xhr_streaming: after the abort the session
    // is gone; a later request would make a new one and get `o`.
    let t0 = Instant::now();
    let mut s = Session::new(t0, &config());
    let r = s.attach(t0, ReceiverKind::XhrStreaming);
    let other = s.attach(t0, ReceiverKind::XhrStreaming);
    s.abort(t0, other.id); // not the attached one: ignored
    assert!(!s.is_closed());
    s.abort(t0, r.id);
    assert!(s.is_closed());
    assert_eq!(
        events(&mut s),
        [Event::Open, Event::Closed(CloseReason::ClientGone)]
    );
    let late = s.attach(t0, ReceiverKind::XhrStreaming);
    assert_eq!(text(&late.data), ["c[1002,\"Connection interrupted\"]\n"]);
}

#[test]
fn graceful_detach_waits_disconnect_delay() {
    let t0 = Instant::now();
    let mut s = Session::new(t0, &config());
    let r = s.attach(t0, ReceiverKind::XhrStreaming);
    s.detach(t0 + secs(1), r.id);
    assert!(!s.is_attached(r.id));
    assert_eq!(s.poll_timeout(), Some(t0 + secs(6)));
    s.handle_timeout(t0 + secs(6));
    assert!(s.is_closed());
}

#[test]
fn queue_bound_reports_overflow() {
    let config = SockJsConfig {
        http_message_cache_size: 2,
        ..SockJsConfig::default()
    };
    let t0 = Instant::now();
    let mut s = Session::new(t0, &config);
    assert_eq!(s.send_text("early"), Err(SendError::NotOpen));
    s.attach(t0, ReceiverKind::XhrPolling);
    s.send_text("1").unwrap();
    s.send_text("2").unwrap();
    assert_eq!(s.send_text("3"), Err(SendError::QueueFull { limit: 2 }));
    let a = s.attach(t0, ReceiverKind::XhrPolling);
    assert_eq!(text(&a.data), ["a[\"1\",\"2\"]\n"]);
    s.send_text("3").unwrap();
}

#[test]
fn broadcast_message_encoded_once() {
    let t0 = Instant::now();
    let shared = EncodedMessage::new("to all\u{2028}");
    let mut outputs = Vec::new();
    for kind in [ReceiverKind::XhrStreaming, ReceiverKind::WebSocket] {
        let mut s = Session::new(t0, &config());
        let r = s.attach(t0, kind);
        s.send(shared.clone()).unwrap();
        outputs.push(out(&mut s, t0, r.id).0);
    }
    assert_eq!(outputs[0], ["a[\"to all\\u2028\"]\n"]);
    assert_eq!(outputs[1], ["a[\"to all\\u2028\"]"]);
}

#[test]
fn websocket_session() {
    // WebsocketHybi10.test_transport / test_close / test_broken_json
    let t0 = Instant::now();
    let mut s = Session::new(t0, &config());
    let ws = s.attach(t0, ReceiverKind::WebSocket);
    assert_eq!(text(&ws.data), ["o"]);
    assert_eq!(ws.flow, Flow::Continue);
    s.handle_ws_message(t0, ws.id, "").unwrap();
    s.handle_ws_message(t0, ws.id, r#"["a"]"#).unwrap();
    s.handle_ws_message(t0, ws.id, r#""b""#).unwrap();
    assert_eq!(
        events(&mut s),
        [
            Event::Open,
            Event::Message("a".into()),
            Event::Message("b".into())
        ]
    );
    // Two messages queued: one frame, one WebSocket message.
    s.send_text("a").unwrap();
    s.send_text("b").unwrap();
    assert_eq!(
        out(&mut s, t0, ws.id),
        (vec!["a[\"a\",\"b\"]".to_owned()], Flow::Continue)
    );
    // Heartbeats as frames too.
    s.handle_timeout(t0 + secs(25));
    assert_eq!(
        out(&mut s, t0 + secs(25), ws.id),
        (vec!["h".to_owned()], Flow::Continue)
    );
    // Application close: close frame, then the WebSocket closes and the
    // session is gone at once.
    s.close(3000, "Go away!");
    assert_eq!(
        out(&mut s, t0 + secs(26), ws.id),
        (vec!["c[3000,\"Go away!\"]".to_owned()], Flow::End)
    );
    assert!(s.is_closed());
    assert_eq!(
        events(&mut s),
        [Event::Closed(CloseReason::Application(CloseFrame::GO_AWAY))]
    );
}

#[test]
fn websocket_broken_framing_closes() {
    let t0 = Instant::now();
    let mut s = Session::new(t0, &config());
    let ws = s.attach(t0, ReceiverKind::WebSocket);
    assert_eq!(s.handle_ws_message(t0, ws.id, r#"["a"#), Err(BrokenFraming));
    assert!(s.is_closed());
    assert_eq!(
        events(&mut s),
        [Event::Open, Event::Closed(CloseReason::BrokenFraming)]
    );
}

#[test]
fn websocket_close_by_client() {
    let t0 = Instant::now();
    let mut s = Session::new(t0, &config());
    let ws = s.attach(t0, ReceiverKind::WebSocket);
    s.abort(t0, ws.id);
    assert!(s.is_closed());
    assert_eq!(
        events(&mut s),
        [Event::Open, Event::Closed(CloseReason::ClientGone)]
    );
}

#[test]
fn messages_ignored_unless_open() {
    let t0 = Instant::now();
    let mut s = Session::new(t0, &config());
    s.handle_messages(["early".to_owned()]);
    assert!(events(&mut s).is_empty());
    s.attach(t0, ReceiverKind::XhrPolling);
    s.close(3000, "Go away!");
    s.handle_messages(["late".to_owned()]);
    assert_eq!(events(&mut s), [Event::Open]);
}

#[test]
fn htmlfile_and_jsonp_framing_through_session() {
    // HtmlFile.test_transport, JsonPolling.test_transport
    let t0 = Instant::now();
    let mut s = Session::new(t0, &config());
    let cb = Callback::new("callback").unwrap();
    let h = s.attach(t0, ReceiverKind::HtmlFile(cb.clone()));
    assert_eq!(text(&h.data), ["<script>\np(\"o\");\n</script>\r\n"]);
    s.handle_messages(["x".to_owned()]);
    s.send_text("x").unwrap();
    assert_eq!(
        out(&mut s, t0, h.id),
        (
            vec!["<script>\np(\"a[\\\"x\\\"]\");\n</script>\r\n".to_owned()],
            Flow::Continue
        )
    );
    s.abort(t0, h.id);

    let mut s = Session::new(t0, &config());
    let j = s.attach(t0, ReceiverKind::Jsonp(cb.clone()));
    assert_eq!(text(&j.data), ["callback(\"o\");\r\n"]);
    s.send_text("x").unwrap();
    let j = s.attach(t0, ReceiverKind::Jsonp(cb));
    assert_eq!(text(&j.data), ["callback(\"a[\\\"x\\\"]\");\r\n"]);
}

#[test]
fn an_idle_session_gives_its_event_buffer_back() {
    let t0 = Instant::now();
    let mut s = Session::new(t0, &config());
    let a = s.attach(t0, ReceiverKind::XhrStreaming);
    assert_eq!(events(&mut s), [Event::Open]);
    assert!(s.events.capacity() > 0);
    s.release_idle_buffers();
    assert_eq!(s.events.capacity(), 0);
    // Pending events are kept; the session goes on as before.
    s.handle_messages(["c".to_owned()]);
    s.release_idle_buffers();
    assert_eq!(events(&mut s), [Event::Message("c".into())]);
    s.send_text("b").unwrap();
    assert_eq!(out(&mut s, t0, a.id).0, ["a[\"b\"]\n"]);
}
