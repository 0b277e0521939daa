//! Drives the Socket.IO layer with an in-memory Engine.IO session that
//! records what the server sends.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use serde::Deserialize;
use switchboard_socketio::{
    AckError, AckSender, Client, CloseReason, Closed, ConnectError, DisconnectReason, EmitError,
    EngineConn, Message, SocketIo, SocketRef, Value,
};

static NEXT: AtomicUsize = AtomicUsize::new(0);

struct FakeConn {
    sid: String,
    sent: Mutex<Vec<Message>>,
    closed: AtomicBool,
}

impl EngineConn for FakeConn {
    fn sid(&self) -> &str {
        &self.sid
    }
    fn send(&self, message: Message) -> Result<(), Closed> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Closed);
        }
        self.sent.lock().push(message);
        Ok(())
    }
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }
}

struct Peer {
    io: SocketIo,
    conn: Arc<FakeConn>,
    /// What the transport keeps with the session.
    client: Arc<Client>,
}

fn parts_at(uri: &str) -> http::request::Parts {
    http::Request::builder()
        .uri(uri)
        .header("x-user", "ann")
        .body(())
        .unwrap()
        .into_parts()
        .0
}

impl Peer {
    fn open(io: &SocketIo) -> Peer {
        Peer::open_at(io, "/socket.io/?EIO=4&transport=websocket&room=a%20b")
    }

    fn open_at(io: &SocketIo, uri: &str) -> Peer {
        let conn = Arc::new(FakeConn {
            sid: format!("eio{}", NEXT.fetch_add(1, Ordering::SeqCst)),
            sent: Mutex::default(),
            closed: AtomicBool::new(false),
        });
        let client = io.engine_open(Box::new(conn.clone()), &parts_at(uri));
        Peer {
            io: io.clone(),
            conn,
            client,
        }
    }

    fn text(&self, t: &str) {
        self.io
            .engine_message(&self.client, Message::Text(t.into()));
    }

    fn binary(&self, b: &'static [u8]) {
        self.io
            .engine_message(&self.client, Message::Binary(Bytes::from_static(b)));
    }

    /// What was sent since the last call: text as is, binary as `<bin:...>`.
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.conn.sent.lock())
            .into_iter()
            .map(|m| match m {
                Message::Text(t) => t.as_str().to_owned(),
                Message::Binary(b) => format!("<bin:{}>", String::from_utf8_lossy(&b)),
            })
            .collect()
    }

    fn closed(&self) -> bool {
        self.conn.closed.load(Ordering::SeqCst)
    }

    /// Connects to `nsp` ("/" or "/x"), returns the socket id.
    fn connect(&self, nsp: &str) -> String {
        let prefix = if nsp == "/" {
            String::new()
        } else {
            format!("{nsp},")
        };
        self.text(&format!("0{prefix}"));
        let sent = self.take();
        let first = sent.first().expect("a CONNECT answer");
        let json = first
            .strip_prefix(&format!("0{prefix}"))
            .unwrap_or_else(|| panic!("not a CONNECT: {first}"));
        let v = Value::from_json_str(json).unwrap();
        v.get("sid").unwrap().as_str().unwrap().to_owned()
    }
}

type Log = Arc<Mutex<Vec<String>>>;

fn log() -> Log {
    Arc::default()
}

#[test]
fn connect_main_namespace_and_handshake() {
    let io = SocketIo::new();
    let seen = log();
    let s2 = seen.clone();
    io.ns("/", move |s: SocketRef| {
        let h = s.handshake();
        s2.lock().push(format!(
            "{} {} {} {}",
            h.auth(),
            h.query_param("room").unwrap(),
            h.headers().get("x-user").unwrap(),
            s.rooms().join(",") == s.id()
        ));
    });
    let p = Peer::open(&io);
    p.text(r#"0{"token":"t"}"#);
    let sent = p.take();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].starts_with(r#"0{"sid":""#), "{sent:?}");
    assert_eq!(*seen.lock(), [r#"{"token":"t"} a b ann true"#]);
    assert_eq!(io.of("/").sockets().len(), 1);
}

#[test]
fn unknown_namespace_is_refused() {
    let io = SocketIo::new();
    let p = Peer::open(&io);
    p.text("0/admin,");
    assert_eq!(p.take(), [r#"4/admin,{"message":"Invalid namespace"}"#]);
    assert!(!p.closed());
    // Events for a namespace the client is not in are ignored.
    p.text(r#"2/admin,["x"]"#);
    assert!(p.take().is_empty());
}

#[derive(Deserialize)]
struct Auth {
    token: String,
}

#[test]
fn middleware_rejects_with_data_and_accepts() {
    let io = SocketIo::new();
    let connected = Arc::new(AtomicUsize::new(0));
    let c2 = connected.clone();
    io.ns("/chat", move |_s| {
        c2.fetch_add(1, Ordering::SeqCst);
    })
    .middleware(|s| {
        let auth: Auth = s
            .handshake()
            .auth_as()
            .map_err(|_| ConnectError::new("no token"))?;
        if auth.token != "secret" {
            return Err(
                ConnectError::new("not authorized").with_data(serde_json::json!({"retry": false}))
            );
        }
        s.extensions().insert(auth.token);
        Ok(())
    });
    let p = Peer::open(&io);
    p.text("0/chat,");
    assert_eq!(p.take(), [r#"4/chat,{"message":"no token"}"#]);
    p.text(r#"0/chat,{"token":"nope"}"#);
    assert_eq!(
        p.take(),
        [r#"4/chat,{"message":"not authorized","data":{"retry":false}}"#]
    );
    assert_eq!(connected.load(Ordering::SeqCst), 0);
    p.text(r#"0/chat,{"token":"secret"}"#);
    let sent = p.take();
    assert!(sent[0].starts_with(r#"0/chat,{"sid":""#), "{sent:?}");
    assert_eq!(connected.load(Ordering::SeqCst), 1);
    let s = &io.of("/chat").sockets()[0];
    assert_eq!(s.extensions().get::<String>().as_deref(), Some("secret"));
}

#[tokio::test]
async fn async_middleware() {
    let io = SocketIo::new();
    io.ns("/a", |s| {
        s.emit("hi", ()).unwrap();
    })
    .middleware(|_| Ok(()))
    .async_middleware(|s: SocketRef| async move {
        tokio::task::yield_now().await;
        match s.handshake().auth().get("ok") {
            Some(Value::Bool(true)) => Ok(()),
            _ => Err(ConnectError::new("nope")),
        }
    });
    let p = Peer::open(&io);
    p.text("0/a,");
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(p.take(), [r#"4/a,{"message":"nope"}"#]);
    p.text(r#"0/a,{"ok":true}"#);
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let sent = p.take();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent[0].starts_with(r#"0/a,{"sid":"#));
    assert_eq!(sent[1], r#"2/a,["hi"]"#);
}

#[derive(Deserialize, Debug, PartialEq)]
struct Msg {
    text: String,
}

#[test]
fn typed_events_and_incoming_acks() {
    let io = SocketIo::new();
    let seen = log();
    let s2 = seen.clone();
    io.ns("/", move |s: SocketRef| {
        let l = s2.clone();
        s.on("chat", move |_s, m: Msg, ack: Option<AckSender>| {
            l.lock()
                .push(format!("chat {} ack={}", m.text, ack.is_some()));
        });
        s.on("sum", |_s, (a, b): (i64, i64), ack: Option<AckSender>| {
            ack.unwrap().send(a + b).unwrap();
        });
        s.on("pair", |_s, _: (), ack: Option<AckSender>| {
            ack.unwrap().send(("x", 2)).unwrap();
        });
        let l = s2.clone();
        s.on_any(move |_s, ev, args| l.lock().push(format!("any {ev} {}", args.len())));
    });
    let p = Peer::open(&io);
    p.connect("/");
    p.text(r#"2["chat",{"text":"hello"}]"#);
    p.text(r#"2["chat",42]"#); // does not fit Msg: dropped
    p.text(r#"27["sum",1,2]"#);
    p.text(r#"28["pair"]"#);
    p.text(r#"2["nobody"]"#);
    assert_eq!(p.take(), ["37[3]", r#"38["x",2]"#]);
    assert_eq!(
        *seen.lock(),
        [
            "any chat 1",
            "chat hello ack=false",
            "any chat 1",
            "any sum 2",
            "any pair 0",
            "any nobody 0"
        ]
    );
}

#[test]
fn namespace_event_handlers_serve_every_socket_and_yield_to_its_own() {
    let io = SocketIo::new();
    let ns = io.ns("/", |s: SocketRef| {
        // Per-socket state for the shared handlers.
        s.extensions().insert(format!("state of {}", s.id()));
        if s.handshake().query_param("own").as_deref() == Some("1") {
            s.on("sum", |_s, _: (i64, i64), ack: Option<AckSender>| {
                ack.unwrap().send("own").unwrap();
            });
        }
    });
    ns.on_event("sum", |_s, (a, b): (i64, i64), ack: Option<AckSender>| {
        ack.unwrap().send(a + b).unwrap();
    });
    ns.on_event("whoami", |s: SocketRef, _: (), ack: Option<AckSender>| {
        let state: Option<String> = s.extensions().get();
        ack.unwrap()
            .send(state == Some(format!("state of {}", s.id())))
            .unwrap();
    });
    let a = Peer::open(&io);
    a.connect("/");
    a.text(r#"21["sum",1,2]"#);
    a.text(r#"22["sum","x"]"#); // does not fit (i64, i64): dropped
    a.text(r#"23["whoami"]"#);
    assert_eq!(a.take(), ["31[3]", "33[true]"]);
    let b = Peer::open_at(&io, "/socket.io/?EIO=4&transport=websocket&own=1");
    b.connect("/");
    b.text(r#"24["sum",1,2]"#);
    b.text(r#"25["whoami"]"#);
    assert_eq!(b.take(), [r#"34["own"]"#, "35[true]"]);
}

#[tokio::test(start_paused = true)]
async fn outgoing_acks_and_timeout() {
    let io = SocketIo::new();
    let p = Peer::open(&io);
    let sid = p.connect("/");
    let s = io.of("/").get_socket(&sid).unwrap();

    let fut = s.emit_with_ack::<String>("q", "why?");
    assert_eq!(p.take(), [r#"20["q","why?"]"#]);
    p.text(r#"30["because",1]"#);
    assert_eq!(fut.await.unwrap(), "because");

    let fut = s
        .emit_with_ack::<(String, u8)>("q", ())
        .timeout(Duration::from_secs(1));
    assert_eq!(p.take(), [r#"21["q"]"#]);
    let task = tokio::spawn(fut.into_future());
    tokio::task::yield_now().await;
    p.text(r#"31["a",7]"#);
    assert_eq!(task.await.unwrap().unwrap(), ("a".to_owned(), 7));

    let fut = s
        .emit_with_ack::<String>("q", ())
        .timeout(Duration::from_secs(1));
    assert_eq!(fut.await, Err(AckError::Timeout));
    // A late answer is ignored.
    p.text(r#"32["late"]"#);

    // Disconnection fails a pending ack.
    let fut = s.emit_with_ack::<String>("q", ());
    p.text("1");
    assert_eq!(fut.await, Err(AckError::Disconnected));
    assert_eq!(
        s.emit_with_ack::<String>("q", ()).await,
        Err(AckError::Emit(EmitError::Closed))
    );
}

use std::future::IntoFuture;

#[test]
fn binary_in_and_out() {
    let io = SocketIo::new();
    io.ns("/up", |s: SocketRef| {
        s.on(
            "upload",
            |s: SocketRef, (name, file): (String, Bytes), ack: Option<AckSender>| {
                s.emit("stored", (name, file.clone(), Bytes::from_static(b"thumb")))
                    .unwrap();
                ack.unwrap().send(file).unwrap();
            },
        );
        s.on(
            "vec",
            |s: SocketRef, v: Vec<u8>, _ack: Option<AckSender>| {
                s.emit("len", v.len()).unwrap();
            },
        );
    });
    let p = Peer::open(&io);
    p.connect("/up");
    p.text(r#"51-/up,4["upload","a.png",{"_placeholder":true,"num":0}]"#);
    assert!(p.take().is_empty());
    p.binary(b"PNG");
    assert_eq!(
        p.take(),
        [
            r#"52-/up,["stored","a.png",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
            "<bin:PNG>",
            "<bin:thumb>",
            r#"61-/up,4[{"_placeholder":true,"num":0}]"#,
            "<bin:PNG>",
        ]
    );
    p.text(r#"51-/up,["vec",{"_placeholder":true,"num":0}]"#);
    p.binary(b"abcd");
    assert_eq!(p.take(), [r#"2/up,["len",4]"#]);
}

#[test]
fn rooms_broadcast_except_and_same_bytes() {
    let io = SocketIo::new();
    io.ns("/", |s: SocketRef| {
        s.on(
            "join",
            |s: SocketRef, room: String, _: Option<AckSender>| s.join(room),
        );
        s.on(
            "say",
            |s: SocketRef, (room, msg): (String, String), _: Option<AckSender>| {
                s.to(room).emit("said", msg).unwrap();
            },
        );
        s.on("all", |s: SocketRef, msg: String, _: Option<AckSender>| {
            s.broadcast().emit("all", msg).unwrap();
        });
    });
    let a = Peer::open(&io);
    let b = Peer::open(&io);
    let c = Peer::open(&io);
    let ida = a.connect("/");
    let idb = b.connect("/");
    let _idc = c.connect("/");
    a.text(r#"2["join","r"]"#);
    b.text(r#"2["join","r"]"#);
    a.text(r#"2["say","r","hi"]"#);
    assert!(a.take().is_empty());
    assert_eq!(b.take(), [r#"2["said","hi"]"#]);
    assert!(c.take().is_empty());
    a.text(r#"2["all","yo"]"#);
    assert!(a.take().is_empty());
    assert_eq!(b.take(), [r#"2["all","yo"]"#]);
    assert_eq!(c.take(), [r#"2["all","yo"]"#]);

    // io.to / except / several rooms.
    io.to("r").except(idb.as_str()).emit("x", 1).unwrap();
    assert_eq!(a.take(), [r#"2["x",1]"#]);
    assert!(b.take().is_empty());
    io.to(["r", ida.as_str()]).emit("y", ()).unwrap();
    assert_eq!(a.take(), [r#"2["y"]"#]);
    assert_eq!(b.take(), [r#"2["y"]"#]);
    assert!(c.take().is_empty());
    io.except("r").emit("z", ()).unwrap();
    assert!(a.take().is_empty() && b.take().is_empty());
    assert_eq!(c.take(), [r#"2["z"]"#]);

    // Binary broadcast: the same attachments to everyone, in order.
    io.emit("bin", Bytes::from_static(b"B")).unwrap();
    for p in [&a, &b, &c] {
        assert_eq!(
            p.take(),
            [r#"51-["bin",{"_placeholder":true,"num":0}]"#, "<bin:B>"]
        );
    }

    let mut rooms = io.of("/").get_socket(&ida).unwrap().rooms();
    rooms.sort();
    let mut want = vec![ida.clone(), "r".to_owned()];
    want.sort();
    assert_eq!(rooms, want);
    assert_eq!(io.in_("r").fetch_sockets().len(), 2);
    io.sockets_join("everyone");
    assert_eq!(io.to("everyone").fetch_sockets().len(), 3);
    io.to("r").sockets_leave("everyone");
    assert_eq!(io.to("everyone").fetch_sockets().len(), 1);
    io.to("r").disconnect_sockets(false);
    assert_eq!(a.take(), ["1"]);
    assert_eq!(b.take(), ["1"]);
    assert_eq!(io.fetch_sockets().len(), 1);
    assert!(io.of("/").adapter().rooms().iter().all(|r| r != "r"));
}

#[tokio::test(start_paused = true)]
async fn broadcast_with_acks() {
    let io = SocketIo::new();
    let a = Peer::open(&io);
    let b = Peer::open(&io);
    let ida = a.connect("/");
    let idb = b.connect("/");
    let fut = io
        .timeout(Duration::from_secs(2))
        .emit_with_ack::<u32>("count", ());
    assert_eq!(a.take(), [r#"20["count"]"#]);
    assert_eq!(b.take(), [r#"20["count"]"#]);
    let task = tokio::spawn(fut.into_future());
    tokio::task::yield_now().await;
    a.text("30[5]");
    let mut res = task.await.unwrap().unwrap();
    res.sort_by(|x, y| x.0.cmp(&y.0));
    let mut want = vec![(ida.clone(), Ok(5)), (idb.clone(), Err(AckError::Timeout))];
    want.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(res, want);

    // All answer: resolves without waiting for the timeout.
    let fut = io.emit_with_ack::<String>("name", ());
    a.take();
    b.take();
    let task = tokio::spawn(fut.into_future());
    tokio::task::yield_now().await;
    a.text(r#"31["a"]"#);
    b.text(r#"31["b"]"#);
    let res = task.await.unwrap().unwrap();
    assert_eq!(res.len(), 2);
    assert!(res.iter().all(|(_, r)| r.is_ok()));
}

fn reason_recorder(io: &SocketIo, nsp: &str) -> Log {
    let seen = log();
    let s2 = seen.clone();
    io.ns(nsp, move |s: SocketRef| {
        let l = s2.clone();
        s.on_disconnecting(|s, _| assert!(!s.rooms().is_empty()));
        s.on_disconnect(move |s, r| {
            assert!(s.rooms().is_empty() && !s.connected());
            l.lock().push(r.as_str().to_owned());
        });
    });
    seen
}

#[test]
fn disconnect_reasons() {
    let io = SocketIo::new();
    let seen = reason_recorder(&io, "/");
    let _ = reason_recorder(&io, "/x");
    let seen_x = reason_recorder(&io, "/x");

    let p = Peer::open(&io);
    p.connect("/");
    p.text("1");
    assert_eq!(*seen.lock(), ["client namespace disconnect"]);
    assert!(!p.closed());

    p.connect("/");
    p.connect("/x");
    io.engine_close(&p.client, CloseReason::PingTimeout);
    assert_eq!(
        *seen.lock(),
        ["client namespace disconnect", "ping timeout"]
    );
    assert_eq!(*seen_x.lock(), ["ping timeout"]);
    assert_eq!(io.connection_count(), 0);

    let p = Peer::open(&io);
    let sid = p.connect("/");
    let s = io.of("/").get_socket(&sid).unwrap();
    s.disconnect(false);
    assert_eq!(p.take(), ["1"]);
    assert_eq!(seen.lock().last().unwrap(), "server namespace disconnect");
    assert!(!p.closed());
    assert_eq!(s.emit("x", ()), Err(EmitError::Closed));

    let sid = p.connect("/");
    p.connect("/x");
    io.of("/").get_socket(&sid).unwrap().disconnect(true);
    let mut sent = p.take();
    sent.sort();
    assert_eq!(sent, ["1", "1/x,"]);
    assert!(p.closed());
    assert_eq!(seen.lock().last().unwrap(), "server namespace disconnect");
    assert_eq!(seen_x.lock().last().unwrap(), "server namespace disconnect");
    // The transport reports the close later: ignored.
    io.engine_close(&p.client, CloseReason::ForcedClose);
    assert_eq!(seen.lock().len(), 4);

    let p = Peer::open(&io);
    p.connect("/");
    io.engine_close(&p.client, CloseReason::TransportClose);
    assert_eq!(seen.lock().last().unwrap(), "transport close");
    // Messages after the close go nowhere.
    p.text(r#"2["x"]"#);
}

#[test]
fn close_disconnects_every_socket_and_closes_their_sessions() {
    let io = SocketIo::new();
    let seen = reason_recorder(&io, "/");
    let seen_x = reason_recorder(&io, "/x");
    let both = Peer::open(&io);
    both.connect("/");
    both.connect("/x");
    let one = Peer::open(&io);
    one.connect("/x");
    let none = Peer::open(&io);
    assert_eq!(io.connection_count(), 3);

    io.close();
    assert_eq!(*seen.lock(), ["server shutting down"]);
    assert_eq!(*seen_x.lock(), ["server shutting down"; 2]);
    assert!(both.closed() && one.closed());
    // No namespace joined: the transport's shutdown closes that session.
    assert!(!none.closed());
    assert_eq!(io.connection_count(), 1);
    io.engine_close(&none.client, CloseReason::ForcedClose);
    assert_eq!(io.connection_count(), 0);
}

#[test]
fn parse_error_closes_the_session() {
    let io = SocketIo::new();
    let seen = reason_recorder(&io, "/");
    for bad in ["9", r#"2["connect"]"#, "2{", "51-[]"] {
        let p = Peer::open(&io);
        p.connect("/");
        p.text(bad);
        assert!(p.closed(), "{bad}");
        assert_eq!(seen.lock().last().unwrap(), "parse error");
    }
    // A binary message nobody waits for.
    let p = Peer::open(&io);
    p.connect("/");
    p.binary(b"?");
    assert!(p.closed());
    assert_eq!(io.connection_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn connect_timeout() {
    let io = SocketIo::new();
    let idle = Peer::open(&io);
    let busy = Peer::open(&io);
    busy.connect("/");
    let refused = Peer::open(&io);
    refused.text("0/nope,");
    tokio::time::sleep(Duration::from_secs(44)).await;
    assert!(!idle.closed());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(idle.closed());
    assert!(refused.closed());
    assert!(!busy.closed());
    assert_eq!(io.connection_count(), 1);
}

#[test]
fn dynamic_namespaces() {
    let io = SocketIo::new();
    let seen = log();
    let s2 = seen.clone();
    io.dynamic_ns(
        |name, _auth| name.starts_with("/room-"),
        move |s: SocketRef| s2.lock().push(s.ns().to_owned()),
    )
    .middleware(|s| {
        if s.ns() == "/room-banned" {
            Err("banned".into())
        } else {
            Ok(())
        }
    });
    let p = Peer::open(&io);
    p.connect("/room-1");
    p.text("0/room-banned,");
    assert_eq!(p.take(), [r#"4/room-banned,{"message":"banned"}"#]);
    p.text("0/other,");
    assert_eq!(p.take(), [r#"4/other,{"message":"Invalid namespace"}"#]);
    assert_eq!(*seen.lock(), ["/room-1"]);
    assert!(io.get_ns("/room-1").is_some());
    io.of("/room-1").emit("hey", ()).unwrap();
    assert_eq!(p.take(), [r#"2/room-1,["hey"]"#]);
}

#[test]
fn emit_rules() {
    let io = SocketIo::new();
    let p = Peer::open(&io);
    let sid = p.connect("/");
    let s = io.of("/").get_socket(&sid).unwrap();
    assert_eq!(
        s.emit("disconnect", ()),
        Err(EmitError::ReservedEvent("disconnect".into()))
    );
    s.emit("a", vec![1, 2]).unwrap();
    s.emit("b", ((1, 2),)).unwrap();
    s.emit(
        "c",
        ("x", Option::<u8>::None, serde_json::json!({"k": [true]})),
    )
    .unwrap();
    assert_eq!(
        p.take(),
        [
            r#"2["a",[1,2]]"#,
            r#"2["b",[1,2]]"#,
            r#"2["c","x",null,{"k":[true]}]"#
        ]
    );
}

#[test]
fn engine_sid_is_not_socket_id_and_reconnect_replaces() {
    let io = SocketIo::new();
    let seen = reason_recorder(&io, "/");
    let p = Peer::open(&io);
    let first = p.connect("/");
    assert_ne!(first, p.conn.sid);
    let second = p.connect("/");
    assert_ne!(first, second);
    assert_eq!(*seen.lock(), ["client namespace disconnect"]);
    assert_eq!(io.fetch_sockets().len(), 1);
    assert_eq!(io.fetch_sockets()[0].engine_sid(), p.conn.sid);
    let _ = DisconnectReason::ForcedClose;
}

/// The CONNECT answer's `sid` and `pid`.
fn sid_pid(answer: &str) -> (String, Option<String>) {
    let v = Value::from_json_str(answer.strip_prefix('0').expect("a CONNECT answer")).unwrap();
    (
        v.get("sid").unwrap().as_str().unwrap().to_owned(),
        v.get("pid").and_then(|p| p.as_str()).map(str::to_owned),
    )
}

fn recovering_io(middleware_calls: Arc<AtomicUsize>) -> SocketIo {
    let io = SocketIo::with_config(switchboard_socketio::Config {
        connection_state_recovery: Some(switchboard_socketio::RecoveryConfig::default()),
        ..Default::default()
    });
    io.ns("/", |s: SocketRef| {
        s.on(
            "join",
            |s: SocketRef, room: String, _ack: Option<AckSender>| {
                s.join(room.as_str());
                s.extensions().insert(room);
            },
        );
        let _ = s.emit("welcome", s.recovered());
    });
    io.of("/").middleware(move |_s| {
        middleware_calls.fetch_add(1, Ordering::SeqCst);
        Ok(())
    });
    io
}

#[test]
fn connection_state_recovery_restores_id_rooms_data_and_missed_events() {
    let calls = Arc::new(AtomicUsize::new(0));
    let io = recovering_io(calls.clone());
    let a = Peer::open(&io);
    a.text("0");
    let sent = a.take();
    let (sid, pid) = sid_pid(&sent[0]);
    let pid = pid.expect("a pid when recovery is on");
    // Every event carries an offset as its last argument.
    assert_eq!(sent[1], r#"2["welcome",false,"0"]"#);
    a.text(r#"2["join","red"]"#);
    io.emit("news", 1).unwrap();
    assert_eq!(a.take(), [r#"2["news",1,"1"]"#]);

    // The transport drops; events go on meanwhile.
    io.engine_close(&a.client, CloseReason::TransportClose);
    io.emit("news", 2).unwrap();
    io.to("red").emit("news", 3).unwrap();
    io.to("blue").emit("news", 4).unwrap();
    io.except("red").emit("news", 5).unwrap();
    io.broadcast().volatile().emit("news", 6).unwrap();

    // The client comes back with {pid, offset}: same socket id and pid,
    // the missed events (only those meant for it), no middleware run.
    let b = Peer::open(&io);
    b.text(&format!(r#"0{{"pid":"{pid}","offset":"1"}}"#));
    let sent = b.take();
    assert_eq!(sid_pid(&sent[0]), (sid.clone(), Some(pid.clone())));
    assert_eq!(
        sent[1..],
        [
            r#"2["news",2,"2"]"#.to_owned(),
            r#"2["news",3,"3"]"#.to_owned(),
            r#"2["welcome",true,"6"]"#.to_owned(),
        ]
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Rooms and data are back.
    let socket = io.of("/").get_socket(&sid).expect("the recovered socket");
    assert!(socket.recovered());
    assert_eq!(socket.extensions().get::<String>().as_deref(), Some("red"));
    io.to("red").emit("news", 8).unwrap();
    assert_eq!(b.take(), [r#"2["news",8,"7"]"#]);
}

#[test]
fn connection_state_recovery_refuses_unknown_sessions_and_client_disconnects() {
    let calls = Arc::new(AtomicUsize::new(0));
    let io = recovering_io(calls.clone());
    let a = Peer::open(&io);
    a.text("0");
    let (sid, pid) = sid_pid(&a.take()[0]);
    let pid = pid.unwrap();
    // The client left on purpose: nothing is kept.
    a.text("1");
    let b = Peer::open(&io);
    b.text(&format!(r#"0{{"pid":"{pid}","offset":"0"}}"#));
    let sent = b.take();
    let (sid2, pid2) = sid_pid(&sent[0]);
    assert_ne!(sid2, sid);
    assert_ne!(pid2.unwrap(), pid);
    assert_eq!(sent[1], r#"2["welcome",false,"1"]"#);
    // A made-up pid or an offset that was never sent: a fresh socket.
    let c = Peer::open(&io);
    c.text(r#"0{"pid":"nope","offset":"0"}"#);
    assert_eq!(c.take()[1], r#"2["welcome",false,"2"]"#);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[test]
fn without_recovery_there_is_no_pid_and_no_offset() {
    let io = SocketIo::new();
    io.ns("/", |s: SocketRef| {
        let _ = s.emit("welcome", s.recovered());
    });
    let a = Peer::open(&io);
    a.text("0");
    let sent = a.take();
    assert_eq!(sid_pid(&sent[0]).1, None);
    assert_eq!(sent[1], r#"2["welcome",false]"#);
}
