//! The `Cluster` contract without any network: two servers in one process
//! joined by an in-memory cluster that applies each call to the other
//! server at once, with in-memory Engine.IO sessions recording what is
//! sent.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use switchboard_socketio::{
    AckError, AckSink, BroadcastFlags, BroadcastOptions, Client, Closed, Cluster, ClusterFuture,
    Config, EncodedPacket, EngineConn, Message, RecoveryConfig, Room, SocketInfo, SocketIo,
    WeakSocketIo,
};

static NEXT: AtomicUsize = AtomicUsize::new(0);

#[derive(Default)]
struct FakeConn {
    sid: String,
    sent: Mutex<Vec<Message>>,
}

impl EngineConn for FakeConn {
    fn sid(&self) -> &str {
        &self.sid
    }
    fn send(&self, message: Message) -> Result<(), Closed> {
        self.sent.lock().push(message);
        Ok(())
    }
    fn close(&self) {}
}

struct Peer {
    io: SocketIo,
    conn: Arc<FakeConn>,
    client: Arc<Client>,
    sid: String,
}

impl Peer {
    fn connect(io: &SocketIo) -> Peer {
        let conn = Arc::new(FakeConn {
            sid: format!("eio{}", NEXT.fetch_add(1, Ordering::SeqCst)),
            ..FakeConn::default()
        });
        let parts = http::Request::builder()
            .uri("/socket.io/?EIO=4&transport=websocket")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        let client = io.engine_open(Box::new(conn.clone()), &parts);
        io.engine_message(&client, Message::Text("0".into()));
        let connect = texts(&conn.sent.lock().drain(..).collect::<Vec<_>>()).remove(0);
        let v = switchboard_socketio::Value::from_json_str(&connect[1..]).unwrap();
        let sid = v.get("sid").unwrap().as_str().unwrap().to_owned();
        Peer {
            io: io.clone(),
            conn,
            client,
            sid,
        }
    }

    fn take(&self) -> Vec<Message> {
        std::mem::take(&mut *self.conn.sent.lock())
    }

    fn texts(&self) -> Vec<String> {
        texts(&self.take())
    }

    fn answer(&self, text: &str) {
        self.io
            .engine_message(&self.client, Message::Text(text.into()));
    }
}

fn texts(m: &[Message]) -> Vec<String> {
    m.iter()
        .map(|m| match m {
            Message::Text(t) => t.as_str().to_owned(),
            Message::Binary(b) => format!("<bin:{}>", String::from_utf8_lossy(b)),
        })
        .collect()
}

/// Applies every call to the other server at once, and records the
/// broadcast packets it was given.
#[derive(Default)]
struct Loopback {
    other: OnceLock<WeakSocketIo>,
    packets: Mutex<Vec<EncodedPacket>>,
    calls: AtomicUsize,
}

impl Loopback {
    fn ns(&self, ns: &str) -> Option<switchboard_socketio::Namespace> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.other.get()?.upgrade()?.get_ns(ns)
    }
}

impl Cluster for Loopback {
    fn broadcast(
        &self,
        ns: &str,
        opts: &BroadcastOptions,
        flags: BroadcastFlags,
        packet: EncodedPacket,
    ) {
        self.packets.lock().push(packet.clone());
        if let Some(ns) = self.ns(ns) {
            ns.remote_broadcast(opts, flags, packet);
        }
    }

    fn broadcast_with_ack(
        &self,
        ns: &str,
        opts: &BroadcastOptions,
        packet: EncodedPacket,
        _timeout: Option<Duration>,
        acks: AckSink,
    ) {
        self.packets.lock().push(packet.clone());
        let Some(ns) = self.ns(ns) else { return };
        let mut local = ns.remote_broadcast_with_ack(opts, packet);
        acks.expect(local.recipients());
        acks.counted();
        tokio::spawn(async move {
            while let Some((sid, res)) = local.next().await {
                acks.answer(sid, res);
            }
        });
    }

    fn fetch_sockets(&self, ns: &str, opts: &BroadcastOptions) -> ClusterFuture<Vec<SocketInfo>> {
        let got = self
            .ns(ns)
            .map(|ns| ns.remote_fetch_sockets(opts))
            .unwrap_or_default();
        Box::pin(async move { got })
    }

    fn add_sockets(&self, ns: &str, opts: &BroadcastOptions, rooms: &[Room]) {
        if let Some(ns) = self.ns(ns) {
            ns.remote_sockets_join(opts, rooms);
        }
    }

    fn del_sockets(&self, ns: &str, opts: &BroadcastOptions, rooms: &[Room]) {
        if let Some(ns) = self.ns(ns) {
            ns.remote_sockets_leave(opts, rooms);
        }
    }

    fn disconnect_sockets(&self, ns: &str, opts: &BroadcastOptions, close: bool) {
        if let Some(ns) = self.ns(ns) {
            ns.remote_disconnect_sockets(opts, close);
        }
    }
}

/// Two servers joined by loopbacks.
fn pair(recovery: bool) -> [(SocketIo, Arc<Loopback>); 2] {
    let make = || {
        let cluster = Arc::new(Loopback::default());
        let io = SocketIo::with_config(Config {
            cluster: Some(cluster.clone()),
            connection_state_recovery: recovery.then(RecoveryConfig::default),
            ..Config::default()
        });
        (io, cluster)
    };
    let (x, y) = (make(), make());
    x.1.other.set(y.0.downgrade()).unwrap();
    y.1.other.set(x.0.downgrade()).unwrap();
    [x, y]
}

#[test]
fn a_broadcast_is_encoded_once_and_the_same_bytes_go_everywhere() {
    let [(x, xc), (y, _)] = pair(false);
    let px = Peer::connect(&x);
    let py = Peer::connect(&y);
    let py2 = Peer::connect(&y);
    y.of("/").get_socket(&py.sid).unwrap().join("r");
    x.of("/").get_socket(&px.sid).unwrap().join("r");

    x.to("r").emit("m", 1).unwrap();
    let local = px.take();
    assert_eq!(texts(&local), [r#"2["m",1]"#]);
    assert_eq!(py.texts(), [r#"2["m",1]"#]);
    assert!(py2.take().is_empty());
    // The cluster got the bytes queued locally, shared, not a copy.
    let packet = xc.packets.lock().pop().unwrap();
    let Message::Text(sent) = &local[0] else {
        panic!()
    };
    assert_eq!(packet.text.as_ptr(), sent.as_ptr());

    // Binary: text part and attachments shared too.
    x.emit("b", bytes::Bytes::from_static(b"B")).unwrap();
    let local = px.take();
    let packet = xc.packets.lock().pop().unwrap();
    let Message::Binary(att) = &local[1] else {
        panic!()
    };
    assert_eq!(packet.attachments[0].as_ptr(), att.as_ptr());
    for p in [&py, &py2] {
        assert_eq!(
            p.texts(),
            [r#"51-["b",{"_placeholder":true,"num":0}]"#, "<bin:B>"]
        );
    }

    // local(): the cluster is not called.
    let calls = xc.calls.load(Ordering::SeqCst);
    x.local().emit("l", ()).unwrap();
    x.to("r").local().sockets_join("q");
    assert_eq!(xc.calls.load(Ordering::SeqCst), calls);
    assert_eq!(px.texts(), [r#"2["l"]"#]);
    assert!(py.take().is_empty());

    // Join on every node, then a broadcast to the new room; a remote
    // socket handle; disconnect.
    x.to("r").sockets_join("r2");
    y.to("r2").emit("r2", ()).unwrap();
    assert_eq!(px.texts(), [r#"2["r2"]"#]);
    assert_eq!(py.texts(), [r#"2["r2"]"#]);
    x.in_("r2").sockets_leave("r2");
    y.to("r2").emit("r2", ()).unwrap();
    assert!(px.take().is_empty() && py.take().is_empty());
    x.except("r").disconnect_sockets(false);
    assert_eq!(py2.texts(), ["1"]);
    assert!(y.of("/").get_socket(&py2.sid).is_none());
}

#[tokio::test]
async fn fetch_and_acks_span_both_servers() {
    let [(x, _), (y, _)] = pair(false);
    let px = Peer::connect(&x);
    let py = Peer::connect(&y);
    let all = x.fetch_cluster_sockets().await;
    assert_eq!(all.len(), 2);
    let remote = all.iter().find(|s| !s.is_local()).unwrap();
    assert_eq!(remote.id(), py.sid);
    remote.emit("hi", ()).unwrap();
    assert_eq!(py.texts(), [r#"2["hi"]"#]);
    assert_eq!(x.local().fetch_cluster_sockets().await.len(), 1);

    // Each server numbers its own acks: both got id 0 here.
    let fut = x
        .timeout(Duration::from_millis(500))
        .emit_with_ack::<u32>("q", ());
    let task = tokio::spawn(async move { fut.await });
    assert_eq!(px.texts(), [r#"20["q"]"#]);
    assert_eq!(py.texts(), [r#"20["q"]"#]);
    py.answer("30[7]");
    let got = task.await.unwrap().unwrap();
    let mut got: Vec<_> = got.into_iter().map(|(sid, r)| (sid == px.sid, r)).collect();
    got.sort_by_key(|(local, _)| *local);
    assert_eq!(got, [(false, Ok(7)), (true, Err(AckError::Timeout))]);
}

#[test]
fn with_recovery_every_server_adds_its_own_offset() {
    let [(x, xc), (y, _)] = pair(true);
    let px = Peer::connect(&x);
    let py = Peer::connect(&y);
    y.emit("before", ()).unwrap(); // offset 0 on y
    assert_eq!(px.texts(), [r#"2["before","0"]"#]);
    assert_eq!(py.texts(), [r#"2["before","0"]"#]);
    y.local().emit("local", ()).unwrap(); // offset 1 on y only
    py.take();
    x.emit("m", 5).unwrap();
    assert_eq!(px.texts(), [r#"2["m",5,"1"]"#]);
    assert_eq!(py.texts(), [r#"2["m",5,"2"]"#]);
    // The other servers get the packet without an offset.
    assert_eq!(xc.packets.lock().last().unwrap().text, r#"2["m",5]"#);
    // volatile: no offset anywhere.
    x.broadcast().volatile().emit("v", ()).unwrap();
    assert_eq!(px.texts(), [r#"2["v"]"#]);
    assert_eq!(py.texts(), [r#"2["v"]"#]);
    // A socket's own emit stays on its server.
    let calls = xc.calls.load(Ordering::SeqCst);
    x.of("/")
        .get_socket(&px.sid)
        .unwrap()
        .emit("own", ())
        .unwrap();
    assert_eq!(xc.calls.load(Ordering::SeqCst), calls);
    assert_eq!(px.texts(), [r#"2["own","2"]"#]);
}
