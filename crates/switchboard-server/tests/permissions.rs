//! Topic permissions from the configuration, seen through `/ws` and `/ws/topic`.

mod common;

use common::{Client, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const RULES: &str = r#"[{topic = "secret*", subscribe = false, publish = false}, {topic = "news", publish = false}]"#;

#[tokio::test]
async fn forbidden_topics_get_error_replies_and_the_connection_stays() {
    let server = Server::start(&[("SWITCHBOARD_PERMISSIONS", RULES)]);
    let mut c = Client::connect(server.addr, "/ws?name=eve").await;
    c.send_text(r#"{"op":"subscribe","topic":"secret.plans","id":1}"#)
        .await;
    let r = c.next_json().await;
    assert_eq!(
        (r["type"].as_str(), r["code"].as_str(), r["id"].as_i64()),
        (Some("error"), Some("forbidden"), Some(1))
    );
    c.send_text(r#"{"op":"publish","topic":"news","data":"fake","id":2}"#)
        .await;
    let r = c.next_json().await;
    assert_eq!(
        (r["code"].as_str(), r["id"].as_i64()),
        (Some("forbidden"), Some(2))
    );
    // Reading "news" is allowed, and the connection is still fine.
    c.send_text(r#"{"op":"subscribe","topic":"news","id":3}"#)
        .await;
    let r = c.next_json().await;
    assert_eq!(
        (r["type"].as_str(), r["id"].as_i64()),
        (Some("ok"), Some(3))
    );
}

#[tokio::test]
async fn a_forbidden_raw_topic_is_refused_before_the_upgrade() {
    let server = Server::start(&[("SWITCHBOARD_PERMISSIONS", RULES)]);
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    s.write_all(
        b"GET /ws/topic/secret HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
}
