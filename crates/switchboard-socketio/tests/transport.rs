//! End to end over the tokio Engine.IO transport (HTTP long-polling),
//! speaking what socket.io-client 4 sends.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use switchboard_socketio::{AckSender, SocketIo, SocketRef};
use switchboard_transport::engineio::{EngineIo, EngineIoConfig};
use switchboard_transport::Registry;
use tokio::net::{TcpListener, TcpStream};

async fn start(io: SocketIo) -> SocketAddr {
    let eio = EngineIo::new(io, EngineIoConfig::default(), Registry::new());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let eio = eio.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let eio = eio.clone();
                    async move { Ok::<_, Infallible>(eio.handle(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

async fn request(addr: SocketAddr, post: Option<&str>, query: &str) -> String {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .method(if post.is_some() { "POST" } else { "GET" })
        .uri(format!("/socket.io/?EIO=4&transport=polling{query}"))
        .header("host", "localhost")
        .header("content-type", "text/plain;charset=UTF-8")
        .body(Full::new(Bytes::from(post.unwrap_or("").to_owned())))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
        .await
        .expect("answer in time")
        .unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

#[tokio::test]
async fn chat_over_polling() {
    let io = SocketIo::new();
    let io2 = io.clone();
    io.ns("/", move |socket: SocketRef| {
        let io = io2.clone();
        socket.on(
            "chat message",
            move |_s, msg: String, _: Option<AckSender>| {
                io.emit("chat message", &msg).unwrap();
            },
        );
        socket.on("ping", |_s, (): (), ack: Option<AckSender>| {
            ack.unwrap().send("pong").unwrap();
        });
    });
    let addr = start(io.clone()).await;

    let open = request(addr, None, "&t=a").await;
    assert!(open.starts_with("0{\"sid\":\""), "{open}");
    let sid = &open[9..29];
    let q = format!("&sid={sid}");

    assert_eq!(request(addr, Some("40"), &q).await, "ok");
    let connect = request(addr, None, &q).await;
    assert!(connect.starts_with("40{\"sid\":\""), "{connect}");

    assert_eq!(
        request(
            addr,
            Some("42[\"chat message\",\"hi\"]\x1e421[\"ping\"]"),
            &q
        )
        .await,
        "ok"
    );
    let got = request(addr, None, &q).await;
    assert_eq!(got, "42[\"chat message\",\"hi\"]\x1e431[\"pong\"]");

    // The client leaves: "transport close".
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx = std::sync::Mutex::new(Some(tx));
    io.fetch_sockets()[0].on_disconnect(move |_s, r| {
        let _ = tx.lock().unwrap().take().unwrap().send(r.as_str());
    });
    assert_eq!(request(addr, Some("1"), &q).await, "ok");
    let reason = tokio::time::timeout(Duration::from_secs(5), rx)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reason, "transport close");
    assert_eq!(io.connection_count(), 0);
}
