//! The SockJS benchmark app on Switchboard's own SockJS transport
//! (`switchboard_transport::sockjs`), served with hyper as `sio-switchboard`
//! is. The same app as `node/peer-sockjs.mjs` (sockjs-node): one service at
//! prefix `/bench`, with the options `switchboard serve` gives its SockJS
//! services by default (heartbeat 25 s, disconnect delay 5 s, stream limit
//! 128 KiB, `http_message_cache_size` 1024, websocket enabled, no
//! compression):
//!
//! * every message is echoed back to its session;
//! * `"join"` puts the session in the broadcast set;
//! * a message starting with `"pub:"` is sent to every session in the set
//!   (encoded for SockJS once, the same bytes queued on each session; the
//!   publisher is not in the set unless it joined).
//!
//! Served by hyper's connection, as an application would; with
//! `--switchboard-loop`, by the `switchboard` binary's HTTP/1.1 loop
//! (`switchboard_server::http1`, which writes streaming responses itself).
//!
//! Usage: `sockjs-switchboard [--switchboard-loop] [--listen] HOST:PORT` (default 127.0.0.1:9014);
//! prints "sockjs-switchboard ready on ADDR" once listening.
//! `SWITCHBOARD_SOCKJS__HTTP_MESSAGE_CACHE_SIZE` in the environment sets
//! `http_message_cache_size` as it does for `switchboard serve`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::RwLock;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use switchboard_transport::sockjs::{
    CloseReason, EncodedMessage, SockJs, SockJsConfig, SockJsConn, SockJsHandler,
};
use switchboard_transport::Registry;
use tokio::net::TcpListener;

const PREFIX: &str = "/bench";

/// Echo plus a broadcast set keyed by [`SockJsConn::serial`].
#[derive(Default)]
struct Bench {
    members: RwLock<HashMap<u64, SockJsConn>>,
}

impl SockJsHandler for Bench {
    fn on_open(&self, _conn: SockJsConn, _req: &http::request::Parts) {}

    fn on_message(&self, conn: &SockJsConn, message: String) {
        if message.starts_with("pub:") {
            let encoded = EncodedMessage::new(&message);
            let _ = conn.send(encoded.clone());
            for m in self.members.read().unwrap().values() {
                let _ = m.send(encoded.clone());
            }
            return;
        }
        // a member before the echo: the echo of `join` confirms it
        if message == "join" {
            self.members
                .write()
                .unwrap()
                .insert(conn.serial(), conn.clone());
        }
        let _ = conn.send_text(&message);
    }

    fn on_close(&self, conn: &SockJsConn, _reason: CloseReason) {
        self.members.write().unwrap().remove(&conn.serial());
    }
}

fn config() -> SockJsConfig {
    let mut config = SockJsConfig::default();
    // `switchboard serve`'s default ([sockjs] http_message_cache_size)
    config.service.http_message_cache_size =
        std::env::var("SWITCHBOARD_SOCKJS__HTTP_MESSAGE_CACHE_SIZE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1024);
    config
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let own_loop = std::env::args().any(|a| a == "--switchboard-loop");
    let listen = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .unwrap_or_else(|| "127.0.0.1:9014".into());
    let sockjs = SockJs::new(Bench::default(), config(), Registry::new());

    let listener = TcpListener::bind(&listen).await?;
    println!("sockjs-switchboard ready on {}", listener.local_addr()?);

    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).keep_alive(true);
    if own_loop {
        return switchboard_loop(listener, sockjs, builder).await;
    }
    loop {
        let stream = accept(&listener).await;
        let sockjs = sockjs.clone();
        let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let sockjs = sockjs.clone();
            async move {
                let resp = match strip_prefix(req) {
                    // `SockJs::handle` sees the path after the prefix, as
                    // under axum's `nest_service`.
                    Ok(req) => sockjs.handle(req).await.map(Either::Left),
                    Err(()) => {
                        let mut resp = http::Response::new(Either::Right(Full::new(Bytes::from(
                            "not found\n",
                        ))));
                        *resp.status_mut() = http::StatusCode::NOT_FOUND;
                        resp
                    }
                };
                Ok::<_, Infallible>(resp)
            }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

/// The request with `/bench` cut from its path (query kept), or `Err` for
/// another path.
/// The accept loop of `--switchboard-loop`.
async fn switchboard_loop(
    listener: TcpListener,
    sockjs: SockJs<Bench>,
    builder: http1::Builder,
) -> std::io::Result<()> {
    use axum::response::IntoResponse;
    let service = tower::service_fn(move |req: http::Request<axum::body::Body>| {
        let sockjs = sockjs.clone();
        async move {
            Ok::<_, Infallible>(match strip_prefix(req) {
                Ok(req) => sockjs.handle(req).await.into_response(),
                Err(()) => (http::StatusCode::NOT_FOUND, "not found\n").into_response(),
            })
        }
    });
    let router = axum::Router::new().fallback_service(service);
    let builder = std::sync::Arc::new(builder);
    let shutdown = switchboard_transport::Shutdown::new();
    loop {
        let stream = accept(&listener).await;
        let (builder, router, guard) = (builder.clone(), router.clone(), shutdown.register());
        tokio::spawn(async move {
            switchboard_server::http1::serve_connection(&builder, stream, router, guard).await;
        });
    }
}

/// The next connection, with Nagle off (on an accept error, such as too
/// many open files, it waits 50 ms and tries again).
async fn accept(listener: &TcpListener) -> tokio::net::TcpStream {
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                let _ = stream.set_nodelay(true);
                return stream;
            }
            Err(e) => {
                eprintln!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

fn strip_prefix<B>(mut req: http::Request<B>) -> Result<http::Request<B>, ()> {
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let rest = pq.strip_prefix(PREFIX).ok_or(())?;
    if !(rest.is_empty() || rest.starts_with('/') || rest.starts_with('?')) {
        return Err(());
    }
    let rest = if rest.is_empty() || rest.starts_with('?') {
        format!("/{rest}")
    } else {
        rest.to_owned()
    };
    *req.uri_mut() = rest.parse().map_err(|_| ())?;
    Ok(req)
}
