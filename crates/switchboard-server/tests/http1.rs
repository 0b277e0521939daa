//! The binary's HTTP/1.1 connection loop (src/http1.rs) against raw
//! sockets: SockJS streams written by the loop itself, other requests by
//! hyper, in any order on one keep-alive connection; pipelining; an
//! upgrade behind an earlier request; a stream whose client leaves.

mod common;

use common::Server;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const T: Duration = Duration::from_secs(10);

/// Reads from `s` into `buf` until `buf` contains `needle`; panics after `T`.
async fn read_until(s: &mut TcpStream, buf: &mut Vec<u8>, needle: &str) {
    let deadline = tokio::time::Instant::now() + T;
    while !contains(buf, needle) {
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout_at(deadline, s.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} in {:?}", String::from_utf8_lossy(buf)))
            .unwrap();
        assert!(
            n > 0,
            "closed before {needle:?}: {:?}",
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn contains(buf: &[u8], needle: &str) -> bool {
    buf.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Takes one response off the front of `buf` (reading more as needed),
/// with its body (`content-length` or chunked).
async fn response(s: &mut TcpStream, buf: &mut Vec<u8>) -> String {
    read_until(s, buf, "\r\n\r\n").await;
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map(|v| v.trim().parse::<usize>().unwrap())
        .unwrap_or(0);
    if head.contains("transfer-encoding: chunked") {
        read_until(s, buf, "\r\n0\r\n\r\n").await;
        let body_end = buf.windows(7).position(|w| w == b"\r\n0\r\n\r\n").unwrap() + 7;
        let text = String::from_utf8_lossy(&buf[..body_end]).into_owned();
        buf.drain(..body_end);
        return text;
    }
    while buf.len() < end + len {
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout(T, s.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf[..end + len]).into_owned();
    buf.drain(..end + len);
    text
}

async fn post(server: &Server, path: &str, body: &str) -> String {
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    response(&mut s, &mut buf).await
}

#[tokio::test]
async fn streams_and_other_requests_share_one_connection() {
    let server = Server::start(&[]);
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let mut buf = Vec::new();

    // hyper's exchange, then a stream on the same connection.
    s.write_all(b"GET /sockjs/close/info HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let info = response(&mut s, &mut buf).await;
    assert!(info.starts_with("HTTP/1.1 200"), "{info}");
    assert!(info.contains("\"websocket\""), "{info}");
    assert!(
        !info.to_ascii_lowercase().contains("connection: close"),
        "{info}"
    );

    // `/sockjs/close` opens the session, then closes it: the stream ends.
    s.write_all(
        b"POST /sockjs/close/000/a1/xhr_streaming HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    )
    .await
    .unwrap();
    read_until(&mut s, &mut buf, "\r\n0\r\n\r\n").await;
    let stream = String::from_utf8_lossy(&buf).into_owned();
    buf.clear();
    assert!(stream.starts_with("HTTP/1.1 200 OK\r\n"), "{stream}");
    let lower = stream.to_ascii_lowercase();
    assert!(lower.contains("transfer-encoding: chunked\r\n"), "{stream}");
    assert!(
        lower.contains("content-type: application/javascript"),
        "{stream}"
    );
    assert!(lower.contains("\r\ndate: "), "{stream}");
    assert!(
        stream.contains(&format!("801\r\n{}\n\r\n", "h".repeat(2048))),
        "{stream}"
    );
    assert!(stream.contains("2\r\no\n\r\n"), "{stream}");
    assert!(stream.contains("c[3000,\"Go away!\"]\n"), "{stream}");

    // And the connection still serves: hyper again, then another stream.
    s.write_all(b"GET /sockjs/echo/info HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let info = response(&mut s, &mut buf).await;
    assert!(info.starts_with("HTTP/1.1 200"), "{info}");
    s.write_all(
        b"POST /sockjs/echo/000/a2/xhr_streaming HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    )
    .await
    .unwrap();
    read_until(&mut s, &mut buf, "2\r\no\n\r\n").await;
    let sent = post(&server, "/sockjs/echo/000/a2/xhr_send", "[\"ping\"]").await;
    assert!(sent.starts_with("HTTP/1.1 204"), "{sent}");
    read_until(&mut s, &mut buf, "a\r\na[\"ping\"]\n\r\n").await;
}

#[tokio::test]
async fn a_stream_after_a_request_with_a_body() {
    let server = Server::start(&[]);
    // Session b1 is opened (and kept) by a polling request elsewhere.
    let mut p = TcpStream::connect(server.addr).await.unwrap();
    p.write_all(b"POST /sockjs/echo/000/b1/xhr HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    let mut pbuf = Vec::new();
    let r = response(&mut p, &mut pbuf).await;
    assert!(r.ends_with("o\n"), "{r}");

    // On one connection: an xhr_send whose body arrives in two writes, then
    // the stream, as a browser reusing its connection sends them.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let mut buf = Vec::new();
    s.write_all(
        b"POST /sockjs/echo/000/b1/xhr_send HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n[\"he",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.write_all(b"llo\"]").await.unwrap();
    let r = response(&mut s, &mut buf).await;
    assert!(r.starts_with("HTTP/1.1 204"), "{r}");
    s.write_all(
        b"POST /sockjs/echo/000/b1/xhr_streaming HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    )
    .await
    .unwrap();
    // The echo queued while no receiver was attached comes on the stream.
    read_until(&mut s, &mut buf, "b\r\na[\"hello\"]\n\r\n").await;
    assert!(!contains(&buf, "connection: close"));
}

#[tokio::test]
async fn a_body_left_unread_ends_the_connection_after_the_answer() {
    let server = Server::start(&[]);
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    // 404 without reading a body that is still being sent.
    s.write_all(b"POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n0123")
        .await
        .unwrap();
    let mut all = Vec::new();
    tokio::time::timeout(T, s.read_to_end(&mut all))
        .await
        .expect("the connection stays open")
        .unwrap();
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.1 404"), "{text}");
}

#[tokio::test]
async fn event_source_and_htmlfile_streams() {
    let server = Server::start(&[]);
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let mut buf = Vec::new();
    s.write_all(b"GET /sockjs/close/000/e1/eventsource HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    read_until(&mut s, &mut buf, "\r\n0\r\n\r\n").await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    assert!(
        text.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{text}"
    );
    assert!(text.contains("data: o\r\n\r\n"), "{text}");
    assert!(
        text.contains("data: c[3000,\"Go away!\"]\r\n\r\n"),
        "{text}"
    );

    buf.clear();
    s.write_all(b"GET /sockjs/close/000/e2/htmlfile?c=cb HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    read_until(&mut s, &mut buf, "\r\n0\r\n\r\n").await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    assert!(text.contains("parent.cb"), "{text}");
    assert!(text.contains("<script>\np(\"o\");\n</script>"), "{text}");

    // A missing callback: a complete error answer on the same path.
    buf.clear();
    s.write_all(b"GET /sockjs/echo/000/e3/htmlfile HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let r = response(&mut s, &mut buf).await;
    assert!(r.starts_with("HTTP/1.1 500"), "{r}");
    assert!(r.contains("\"callback\" parameter required"), "{r}");
}

#[tokio::test]
async fn a_stream_whose_client_leaves_interrupts_its_session() {
    let server = Server::start(&[]);
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let mut buf = Vec::new();
    s.write_all(
        b"POST /sockjs/echo/000/g1/xhr_streaming HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    )
    .await
    .unwrap();
    read_until(&mut s, &mut buf, "2\r\no\n\r\n").await;
    drop(s);
    // The loop sees the socket close while it waits for frames and drops
    // the body: the session ends (its messages are refused) well before
    // its heartbeat or disconnect timeouts would end it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let r = post(&server, "/sockjs/echo/000/g1/xhr_send", "[\"x\"]").await;
        if r.starts_with("HTTP/1.1 404") {
            break;
        }
        assert!(r.starts_with("HTTP/1.1 204"), "{r}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the session is still open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn pipelined_requests_are_all_answered() {
    let server = Server::start(&[]);
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let mut buf = Vec::new();
    s.write_all(
        b"GET /sockjs/echo/info HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /sockjs/echo/info HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /sockjs/echo/info HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await
    .unwrap();
    for i in 0..3 {
        let r = response(&mut s, &mut buf).await;
        assert!(r.starts_with("HTTP/1.1 200"), "response {i}: {r}");
    }

    // A stream with a request pipelined behind it: answered once the
    // stream ends.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let mut buf = Vec::new();
    s.write_all(
        b"POST /sockjs/close/000/p1/xhr_streaming HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n\
          GET /sockjs/echo/info HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await
    .unwrap();
    read_until(&mut s, &mut buf, "\r\n0\r\n\r\n").await;
    let end = buf.windows(5).position(|w| w == b"0\r\n\r\n").unwrap() + 5;
    buf.drain(..end);
    let r = response(&mut s, &mut buf).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
}

/// The handshake of `/ws/echo` and a masked text frame "hi" behind it.
fn upgrade_and_frame() -> Vec<u8> {
    let mut req =
        b"GET /ws/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            .to_vec();
    let mask = [1u8, 2, 3, 4];
    req.extend_from_slice(&[0x81, 0x82]);
    req.extend_from_slice(&mask);
    req.extend(b"hi".iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    req
}

/// Reads the 101 and the echoed "hi" frame.
async fn expect_echo(s: &mut TcpStream, buf: &mut Vec<u8>) {
    read_until(s, buf, "\r\n\r\n").await;
    let head = String::from_utf8_lossy(buf).into_owned();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    buf.drain(..end);
    while buf.len() < 4 {
        let mut chunk = [0u8; 64];
        let n = tokio::time::timeout(T, s.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed after the 101");
        buf.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(&buf[..4], &[0x81, 0x02, b'h', b'i']);
}

#[tokio::test]
async fn a_websocket_upgrade_behind_an_earlier_request() {
    let server = Server::start(&[]);
    // One request after the other.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let mut buf = Vec::new();
    s.write_all(b"GET /sockjs/echo/info HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let r = response(&mut s, &mut buf).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    s.write_all(&upgrade_and_frame()).await.unwrap();
    expect_echo(&mut s, &mut buf).await;

    // In one write: the exchange for the first request must not take the
    // second (hyper's exchange serves no upgrade).
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let mut buf = Vec::new();
    let mut both = b"GET /sockjs/echo/info HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    both.extend_from_slice(&upgrade_and_frame());
    s.write_all(&both).await.unwrap();
    let r = response(&mut s, &mut buf).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(!r.to_ascii_lowercase().contains("connection: close"), "{r}");
    expect_echo(&mut s, &mut buf).await;
}

#[tokio::test]
async fn a_head_sent_byte_by_byte() {
    let server = Server::start(&[]);
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let mut buf = Vec::new();
    for head in [
        "GET /sockjs/echo/info HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /sockjs/close/000/t1/xhr_streaming HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    ] {
        for b in head.as_bytes() {
            s.write_all(std::slice::from_ref(b)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let r = response(&mut s, &mut buf).await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    }
}

#[tokio::test]
async fn connection_close_and_http_1_0_end_the_connection() {
    let server = Server::start(&[]);
    for req in [
        "POST /sockjs/close/000/c1/xhr_streaming HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        "POST /sockjs/close/000/c2/xhr_streaming HTTP/1.0\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        "GET /sockjs/echo/info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ] {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let mut all = Vec::new();
        tokio::time::timeout(T, s.read_to_end(&mut all))
            .await
            .unwrap_or_else(|_| panic!("still open after {req:?}"))
            .unwrap();
        let text = String::from_utf8_lossy(&all);
        assert!(text.starts_with("HTTP/1."), "{text}");
        assert!(text.contains("200 OK"), "{text}");
    }
}
