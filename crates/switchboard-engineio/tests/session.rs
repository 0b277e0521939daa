//! Whole sessions driven byte for byte as `engine.io-client` 6 drives a
//! Node `engine.io` 6 server, through a tiny in-memory server that routes
//! HTTP requests and WebSocket messages the way a real transport would.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use switchboard_engineio::{
    route, CloseReason, Config, EngineError, EngineQuery, Event, Message, PollOutcome, Route,
    Session, Transmit, TransportKind, WsId, WsMessage, POLL_CONTENT_TYPE, POST_BODY,
    POST_CONTENT_TYPE,
};

/// An HTTP answer: status, content type, body. `None` body = still parked.
#[derive(Debug, PartialEq)]
struct Reply {
    status: StatusCode,
    content_type: Option<&'static str>,
    body: String,
}

fn ok(content_type: &'static str, body: impl Into<String>) -> Reply {
    Reply {
        status: StatusCode::OK,
        content_type: Some(content_type),
        body: body.into(),
    }
}

fn refused(err: EngineError) -> Reply {
    Reply {
        status: err.status,
        content_type: err.content_type(),
        body: err.body(),
    }
}

/// What the in-memory server did for one request.
#[derive(Debug, PartialEq)]
enum Answer {
    Now(Reply),
    Parked,
    Upgraded(WsId),
}

struct Server {
    config: Config,
    sessions: HashMap<String, Session>,
    next: u32,
    /// Responses delivered to parked GETs, by sid.
    parked_replies: Vec<(String, String)>,
    /// Messages / closes sent on WebSockets.
    ws_out: Vec<(WsId, Option<WsMessage>)>,
    /// Application events, by sid.
    events: Vec<(String, Event)>,
}

impl Server {
    fn new(config: Config) -> Self {
        Server {
            config,
            sessions: HashMap::new(),
            next: 0,
            parked_replies: Vec::new(),
            ws_out: Vec::new(),
            events: Vec::new(),
        }
    }

    fn sid(&mut self) -> String {
        self.next += 1;
        format!("sid{:017}", self.next)
    }

    fn request(
        &mut self,
        now: Instant,
        method: Method,
        query: &str,
        body: &'static [u8],
        upgrade: bool,
    ) -> Answer {
        let query = EngineQuery::parse(query);
        let answer = match route(&method, &query, None, upgrade, &self.config) {
            Err(err) => Answer::Now(refused(err)),
            Ok(Route::Handshake { transport, b64 }) => {
                let sid = self.sid();
                match transport {
                    TransportKind::Polling => {
                        let mut s = Session::new_polling(&sid, self.config.clone(), now);
                        let outcome = s.poll_request(now);
                        self.sessions.insert(sid.clone(), s);
                        self.poll_answer(outcome)
                    }
                    TransportKind::WebSocket => {
                        let (s, ws) =
                            Session::new_websocket(&sid, self.config.clone(), now, b64);
                        self.sessions.insert(sid.clone(), s);
                        Answer::Upgraded(ws)
                    }
                }
            }
            Ok(Route::Session {
                sid,
                transport,
                b64,
            }) => match self.sessions.get_mut(&sid) {
                None => Answer::Now(refused(EngineError::unknown_sid())),
                Some(s) => match s.check_request(&method, transport, upgrade) {
                    Err(err) => Answer::Now(refused(err)),
                    Ok(()) if upgrade => match s.ws_open(now, b64) {
                        Some(ws) => Answer::Upgraded(ws),
                        None => Answer::Now(refused(EngineError::bad_request())),
                    },
                    Ok(()) if method == Method::GET => {
                        let outcome = s.poll_request(now);
                        self.poll_answer(outcome)
                    }
                    Ok(()) => match s.post(now, None, Bytes::from_static(body)) {
                        Ok(()) => Answer::Now(ok(POST_CONTENT_TYPE, POST_BODY)),
                        Err(err) => Answer::Now(refused(err)),
                    },
                },
            },
        };
        self.drain();
        answer
    }

    fn poll_answer(&self, outcome: Result<PollOutcome, EngineError>) -> Answer {
        match outcome {
            Ok(PollOutcome::Respond(body)) => Answer::Now(ok(
                POLL_CONTENT_TYPE,
                String::from_utf8(body.to_vec()).unwrap(),
            )),
            Ok(PollOutcome::Park) => Answer::Parked,
            Err(err) => Answer::Now(refused(err)),
        }
    }

    fn ws(&mut self, now: Instant, sid: &str, ws: WsId, text: &'static str) {
        let s = self.sessions.get_mut(sid).unwrap();
        s.ws_message(now, ws, WsMessage::Text(text.into()));
        self.drain();
    }

    fn tick(&mut self, now: Instant) {
        for s in self.sessions.values_mut() {
            if s.poll_timeout().is_some_and(|t| t <= now) {
                s.handle_timeout(now);
            }
        }
        self.drain();
    }

    fn drain(&mut self) {
        let mut gone = Vec::new();
        for (sid, s) in &mut self.sessions {
            while let Some(t) = s.poll_transmit() {
                match t {
                    Transmit::PollResponse(body) => self
                        .parked_replies
                        .push((sid.clone(), String::from_utf8(body.to_vec()).unwrap())),
                    Transmit::Ws { ws, message } => self.ws_out.push((ws, Some(message))),
                    Transmit::WsClose(ws) => self.ws_out.push((ws, None)),
                }
            }
            while let Some(e) = s.poll_event() {
                if matches!(e, Event::Closed(_)) {
                    gone.push(sid.clone());
                }
                self.events.push((sid.clone(), e));
            }
        }
        for sid in gone {
            self.sessions.remove(&sid);
        }
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn text(ws: WsId, s: &str) -> (WsId, Option<WsMessage>) {
    (ws, Some(WsMessage::Text(s.into())))
}

#[test]
fn polling_then_upgrade_like_engine_io_client() {
    let t0 = Instant::now();
    let mut server = Server::new(Config::default());

    // 1. Handshake: GET /engine.io/?EIO=4&transport=polling&t=N8hyd6w
    let answer = server.request(
        t0,
        Method::GET,
        "EIO=4&transport=polling&t=N8hyd6w",
        b"",
        false,
    );
    let sid = "sid00000000000000001";
    assert_eq!(
        answer,
        Answer::Now(ok(
            "text/plain; charset=UTF-8",
            format!(
                r#"0{{"sid":"{sid}","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}}"#
            )
        ))
    );

    // 2. The client starts polling and sends the Socket.IO CONNECT packet.
    let q = format!("EIO=4&transport=polling&t=N8hyd7H&sid={sid}");
    let q: &'static str = Box::leak(q.into_boxed_str());
    assert_eq!(
        server.request(t0 + ms(5), Method::GET, q, b"", false),
        Answer::Parked
    );
    assert_eq!(
        server.request(t0 + ms(6), Method::POST, q, b"40", false),
        Answer::Now(ok("text/html", "ok"))
    );
    assert_eq!(
        server.events.remove(0),
        (sid.to_owned(), Event::Message(Message::Text("0".into())))
    );
    // The application answers: the parked GET gets it.
    server
        .sessions
        .get_mut(sid)
        .unwrap()
        .send_text(r#"0{"sid":"app"}"#);
    server.drain();
    assert_eq!(
        server.parked_replies.remove(0),
        (sid.to_owned(), r#"40{"sid":"app"}"#.to_owned())
    );

    // 3. Two messages in one POST, binary as base64.
    assert_eq!(
        server.request(t0 + ms(10), Method::POST, q, b"4hello\x1ebAQIDBA==", false),
        Answer::Now(ok("text/html", "ok"))
    );
    assert_eq!(
        server.events.drain(..).map(|(_, e)| e).collect::<Vec<_>>(),
        vec![
            Event::Message(Message::Text("hello".into())),
            Event::Message(Message::Binary(Bytes::from_static(&[1, 2, 3, 4]))),
        ]
    );

    // 4. Queued data, then a GET collects it all in one body.
    let s = server.sessions.get_mut(sid).unwrap();
    s.send_text("hello");
    s.send_text("world");
    assert_eq!(
        server.request(t0 + ms(12), Method::GET, q, b"", false),
        Answer::Now(ok(POLL_CONTENT_TYPE, "4hello\x1e4world"))
    );

    // 5. The client polls again and, in parallel, probes a WebSocket.
    assert_eq!(
        server.request(t0 + ms(13), Method::GET, q, b"", false),
        Answer::Parked
    );
    let wq = format!("EIO=4&transport=websocket&sid={sid}");
    let wq: &'static str = Box::leak(wq.into_boxed_str());
    let Answer::Upgraded(ws) = server.request(t0 + ms(14), Method::GET, wq, b"", true) else {
        panic!("upgrade refused")
    };
    server.ws(t0 + ms(15), sid, ws, "2probe");
    assert_eq!(server.ws_out.remove(0), text(ws, "3probe"));

    // 6. Within 100 ms the parked GET gets a noop so the client can pause.
    server.tick(t0 + ms(114));
    assert!(server.parked_replies.is_empty());
    server.tick(t0 + ms(115));
    assert_eq!(
        server.parked_replies.remove(0),
        (sid.to_owned(), "6".to_owned())
    );

    // 7. The client sends `5`: everything now flows over the WebSocket.
    server.ws(t0 + ms(120), sid, ws, "5");
    let s = server.sessions.get_mut(sid).unwrap();
    assert!(s.is_upgraded());
    s.send_text("over ws");
    s.send_binary(Bytes::from_static(&[0xff]));
    server.drain();
    assert_eq!(
        server.ws_out.drain(..).collect::<Vec<_>>(),
        vec![
            text(ws, "4over ws"),
            (ws, Some(WsMessage::Binary(Bytes::from_static(&[0xff])))),
        ]
    );
    // Polling is over for this session.
    assert_eq!(
        server.request(t0 + ms(121), Method::GET, q, b"", false),
        Answer::Now(Reply {
            status: StatusCode::BAD_REQUEST,
            content_type: Some("application/json"),
            body: r#"{"code":3,"message":"Bad request"}"#.into()
        })
    );

    // 8. Heartbeat over the WebSocket.
    server.tick(t0 + ms(25_000));
    assert_eq!(server.ws_out.remove(0), text(ws, "2"));
    server.ws(t0 + ms(25_030), sid, ws, "3");
    server.tick(t0 + ms(45_000));
    assert!(server.events.is_empty(), "pong arrived in time");
    server.tick(t0 + ms(50_030));
    assert_eq!(server.ws_out.remove(0), text(ws, "2"));

    // 9. No pong this time: ping timeout, the WebSocket is closed.
    server.tick(t0 + ms(70_030));
    assert_eq!(
        server.events.remove(0),
        (sid.to_owned(), Event::Closed(CloseReason::PingTimeout))
    );
    assert_eq!(server.ws_out.remove(0), (ws, None));
    assert_eq!(
        server.request(t0 + ms(70_031), Method::GET, q, b"", false),
        Answer::Now(Reply {
            status: StatusCode::BAD_REQUEST,
            content_type: Some("application/json"),
            body: r#"{"code":1,"message":"Session ID unknown"}"#.into()
        })
    );
}

#[test]
fn websocket_only_client() {
    // io("…", { transports: ["websocket"] })
    let t0 = Instant::now();
    let mut server = Server::new(Config::default());
    let Answer::Upgraded(ws) =
        server.request(t0, Method::GET, "EIO=4&transport=websocket", b"", true)
    else {
        panic!()
    };
    let sid = "sid00000000000000001";
    assert_eq!(
        server.ws_out.remove(0),
        text(
            ws,
            &format!(
                r#"0{{"sid":"{sid}","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}}"#
            )
        )
    );
    server.ws(t0, sid, ws, "40");
    assert_eq!(
        server.events.remove(0).1,
        Event::Message(Message::Text("0".into()))
    );
    server.sessions.get_mut(sid).unwrap().close(t0);
    server.drain();
    assert_eq!(server.ws_out.remove(0), (ws, None));
    assert_eq!(
        server.events.remove(0).1,
        Event::Closed(CloseReason::ForcedClose)
    );
}

#[test]
fn client_close_over_polling() {
    // socket.close() in engine.io-client over polling POSTs `1`.
    let t0 = Instant::now();
    let mut server = Server::new(Config::default());
    server.request(t0, Method::GET, "EIO=4&transport=polling", b"", false);
    let q = "EIO=4&transport=polling&sid=sid00000000000000001";
    assert_eq!(
        server.request(t0, Method::GET, q, b"", false),
        Answer::Parked
    );
    assert_eq!(
        server.request(t0, Method::POST, q, b"1", false),
        Answer::Now(ok("text/html", "ok"))
    );
    assert_eq!(server.parked_replies.remove(0).1, "6");
    assert_eq!(
        server.events.remove(0).1,
        Event::Closed(CloseReason::TransportClose)
    );
    assert!(server.sessions.is_empty());
}

#[test]
fn refusals_have_nodes_bodies() {
    let t0 = Instant::now();
    let mut server = Server::new(Config::default());
    let cases: [(Method, &'static str, bool, StatusCode, &str); 6] = [
        (
            Method::GET,
            "EIO=4&transport=carrier-pigeon",
            false,
            StatusCode::BAD_REQUEST,
            r#"{"code":0,"message":"Transport unknown"}"#,
        ),
        (
            Method::GET,
            "EIO=4&transport=polling&sid=nope",
            false,
            StatusCode::BAD_REQUEST,
            r#"{"code":1,"message":"Session ID unknown"}"#,
        ),
        (
            Method::POST,
            "EIO=4&transport=polling",
            false,
            StatusCode::BAD_REQUEST,
            r#"{"code":2,"message":"Bad handshake method"}"#,
        ),
        (
            Method::GET,
            "EIO=4&transport=websocket",
            false,
            StatusCode::BAD_REQUEST,
            r#"{"code":3,"message":"Bad request"}"#,
        ),
        (
            Method::GET,
            "EIO=3&transport=polling",
            false,
            StatusCode::BAD_REQUEST,
            r#"{"code":5,"message":"Unsupported protocol version"}"#,
        ),
        (
            Method::GET,
            "transport=polling",
            false,
            StatusCode::BAD_REQUEST,
            r#"{"code":5,"message":"Unsupported protocol version"}"#,
        ),
    ];
    for (method, query, upgrade, status, body) in cases {
        let Answer::Now(reply) = server.request(t0, method, query, b"", upgrade) else {
            panic!("{query} accepted")
        };
        assert_eq!(reply.status, status, "{query}");
        assert_eq!(reply.body, body, "{query}");
        assert_eq!(reply.content_type, Some("application/json"));
    }
    assert!(server.sessions.is_empty());
}
