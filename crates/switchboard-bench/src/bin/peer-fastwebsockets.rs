//! Peer server on fastwebsockets (hyper upgrade), written the way its examples do.
//!
//! * any path: echo (`FragmentCollector`, `read_frame` / `write_frame`);
//! * `/fanout`: subscriber of a `tokio::sync::broadcast` channel (split socket:
//!   one task writes what the channel delivers, the other reads until close);
//! * `/publish`: every text/binary message received is sent to the channel.
//!
//! `peer-fastwebsockets [--listen ADDR]` (default 127.0.0.1:9003); prints `ready` once listening.

use bytes::Bytes;
use fastwebsockets::{
    upgrade, FragmentCollector, FragmentCollectorRead, Frame, OpCode, Payload, WebSocketError,
};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use tokio::net::TcpListener;
use tokio::sync::broadcast;

type Msg = (OpCode, Bytes);

#[tokio::main]
async fn main() {
    let addr = listen_arg("127.0.0.1:9003");
    let listener = TcpListener::bind(&addr).await.expect("bind");
    let (tx, _) = broadcast::channel::<Msg>(1024);
    println!(
        "peer-fastwebsockets ready on {}",
        listener.local_addr().unwrap()
    );
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let tx = tx.clone();
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let svc = service_fn(move |req| server_upgrade(req, tx.clone()));
            let _ = http1::Builder::new()
                .serve_connection(io, svc)
                .with_upgrades()
                .await;
        });
    }
}

async fn server_upgrade(
    mut req: Request<Incoming>,
    tx: broadcast::Sender<Msg>,
) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let path = req.uri().path().to_owned();
    let (response, fut) = upgrade::upgrade(&mut req)?;
    tokio::spawn(async move {
        let r = match path.as_str() {
            "/fanout" => subscriber(fut, tx).await,
            "/publish" => publisher(fut, tx).await,
            _ => echo(fut).await,
        };
        let _ = r;
    });
    Ok(response)
}

async fn echo(fut: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = FragmentCollector::new(fut.await?);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => break,
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
    Ok(())
}

async fn publisher(
    fut: upgrade::UpgradeFut,
    tx: broadcast::Sender<Msg>,
) -> Result<(), WebSocketError> {
    let mut ws = FragmentCollector::new(fut.await?);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => break,
            OpCode::Text | OpCode::Binary => {
                let _ = tx.send((frame.opcode, Bytes::copy_from_slice(&frame.payload)));
            }
            _ => {}
        }
    }
    Ok(())
}

async fn subscriber(
    fut: upgrade::UpgradeFut,
    tx: broadcast::Sender<Msg>,
) -> Result<(), WebSocketError> {
    let ws = fut.await?;
    let (rx_half, mut tx_half) = ws.split(tokio::io::split);
    let mut rx_half = FragmentCollectorRead::new(rx_half);
    let mut sub = tx.subscribe();
    let writer = tokio::spawn(async move {
        loop {
            match sub.recv().await {
                Ok((op, payload)) => {
                    let frame = Frame::new(true, op, None, Payload::Borrowed(&payload));
                    if tx_half.write_frame(frame).await.is_err() {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    });
    loop {
        // Control replies (pong/close) are not needed by the bench; drop them.
        let frame = rx_half
            .read_frame::<_, WebSocketError>(&mut |_| async { Ok(()) })
            .await;
        match frame {
            Ok(f) if f.opcode == OpCode::Close => break,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    writer.abort();
    Ok(())
}

fn listen_arg(default: &str) -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().position(|a| a == "--listen") {
        Some(i) => args.get(i + 1).cloned().expect("--listen ADDR"),
        None => args.first().cloned().unwrap_or_else(|| default.to_owned()),
    }
}
