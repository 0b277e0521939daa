//! Raw TCP echo server on tokio: the ceiling for the WebSocket echo scenario
//! (no framing, no masking, no UTF-8 validation).
//!
//! `peer-tcp-echo [--listen ADDR]` (default 127.0.0.1:9004); prints `ready` once listening.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() {
    let addr = listen_arg("127.0.0.1:9004");
    let listener = TcpListener::bind(&addr).await.expect("bind");
    println!("peer-tcp-echo ready on {}", listener.local_addr().unwrap());
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if stream.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
    }
}

fn listen_arg(default: &str) -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().position(|a| a == "--listen") {
        Some(i) => args.get(i + 1).cloned().expect("--listen ADDR"),
        None => args.first().cloned().unwrap_or_else(|| default.to_owned()),
    }
}
