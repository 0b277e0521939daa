//! Peer server on tokio-tungstenite, written the way its users write one.
//!
//! * any path: echo (text stays text, binary stays binary), `read.forward(write)`
//!   as in tokio-tungstenite's own echo-server example (it flushes when its
//!   input runs dry, so the replies to one read go out in one write);
//! * `/echo-send`: the same echo as its autobahn-server example writes it,
//!   `ws.send(msg).await` per message (a write and a flush per frame: the
//!   way the figures measured the Rust crates);
//! * `/fanout`: subscriber of a `tokio::sync::broadcast` channel;
//! * `/publish`: every text/binary message received is sent to the channel.
//!
//! `peer-tungstenite [--listen ADDR]` (default 127.0.0.1:9002); prints `ready` once listening.

use futures_util::{future, SinkExt, StreamExt, TryStreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

#[tokio::main]
async fn main() {
    let addr = listen_arg("127.0.0.1:9002");
    let listener = TcpListener::bind(&addr).await.expect("bind");
    // Same bound as Switchboard's per-connection outbound queue (1024 messages).
    let (tx, _) = broadcast::channel::<Message>(1024);
    println!(
        "peer-tungstenite ready on {}",
        listener.local_addr().unwrap()
    );
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(handle(stream, tx.clone()));
    }
}

async fn handle(stream: TcpStream, tx: broadcast::Sender<Message>) {
    let mut path = String::new();
    // the callback's signature (and its large `Err` type) is tokio-tungstenite's
    #[allow(clippy::result_large_err)]
    let cb = |req: &Request, resp: Response| {
        path = req.uri().path().to_owned();
        Ok(resp)
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, cb).await else {
        return;
    };
    if path == "/echo-send" {
        let mut ws = ws;
        while let Some(Ok(msg)) = ws.next().await {
            if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                break;
            }
        }
        return;
    }
    let (mut write, mut read) = ws.split();
    match path.as_str() {
        "/fanout" => {
            let mut rx = tx.subscribe();
            loop {
                tokio::select! {
                    m = rx.recv() => match m {
                        Ok(m) => if write.send(m).await.is_err() { break },
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => break,
                    },
                    m = read.next() => match m {
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                        _ => {}
                    },
                }
            }
        }
        "/publish" => {
            while let Some(Ok(msg)) = read.next().await {
                if msg.is_text() || msg.is_binary() {
                    let _ = tx.send(msg);
                }
            }
        }
        _ => {
            let _ = read
                .try_filter(|m| future::ready(m.is_text() || m.is_binary()))
                .forward(write)
                .await;
        }
    }
}

fn listen_arg(default: &str) -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().position(|a| a == "--listen") {
        Some(i) => args.get(i + 1).cloned().expect("--listen ADDR"),
        None => args.first().cloned().unwrap_or_else(|| default.to_owned()),
    }
}
