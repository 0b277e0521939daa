//! Test harness: the `switchboard` binary on a free loopback port, and a small
//! WebSocket client built on the project's sans-IO core in client role.
#![allow(dead_code)]

use bytes::Bytes;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use switchboard_websocket::handshake::client::ClientRequest;
use switchboard_websocket::{Config, Connection, Event, Role};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A running `switchboard serve`, killed on drop.
pub struct Server {
    pub addr: SocketAddr,
    pub child: Child,
}

impl Server {
    /// Starts the binary with extra `SWITCHBOARD_*` variables and waits for /healthz.
    pub fn start(env: &[(&str, &str)]) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
        cmd.args(["serve", "--listen", &addr.to_string()])
            .env("SWITCHBOARD_LOG", "warn")
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start switchboard");
        let server = Server { addr, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(mut s) = std::net::TcpStream::connect(addr) {
                use std::io::{Read, Write};
                let _ =
                    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                let mut resp = String::new();
                let _ = s.read_to_string(&mut resp);
                if resp.starts_with("HTTP/1.1 200") {
                    return server;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("switchboard did not become healthy");
    }

    /// Resident set size of the server process, in bytes.
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            * 1024
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An event with owned data.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<(u16, String)>),
}

/// A WebSocket client over the sans-IO core.
pub struct Client {
    pub stream: TcpStream,
    pub conn: Connection,
    pub inbox: VecDeque<Msg>,
    pub eof: bool,
}

impl Client {
    /// Connects and completes the opening handshake on `path`.
    pub async fn connect(addr: SocketAddr, path: &str) -> Client {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (request, handshake) = ClientRequest::new(&addr.to_string(), path).encode();
        stream.write_all(&request).await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let leftover = loop {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "server closed during the handshake");
            buf.extend_from_slice(&chunk[..n]);
            if let Some((_accepted, used)) =
                handshake.parse_response(&buf).expect("handshake accepted")
            {
                break buf.split_off(used);
            }
        };
        let mut client = Client {
            stream,
            conn: Connection::new(Role::Client, Config::default()),
            inbox: VecDeque::new(),
            eof: false,
        };
        if !leftover.is_empty() {
            client.feed(leftover);
        }
        client
    }

    fn feed(&mut self, mut data: Vec<u8>) {
        let inbox = &mut self.inbox;
        let _ = self.conn.receive(&mut data, |ev, _w| {
            inbox.push_back(match ev {
                Event::Text(t) => Msg::Text(t.to_owned()),
                Event::Binary(b) => Msg::Binary(b.to_vec()),
                Event::Ping(p) => Msg::Ping(p.to_vec()),
                Event::Pong(p) => Msg::Pong(p.to_vec()),
                Event::Close(c) => Msg::Close(c.map(|(code, r)| (code.0, r.to_owned()))),
            })
        });
    }

    /// Writes whatever the core has queued.
    pub async fn flush(&mut self) {
        let mut out: Vec<Bytes> = Vec::new();
        self.conn.writer().take_output(&mut out);
        for b in out {
            self.stream.write_all(&b).await.unwrap();
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.conn.writer().send_text(text);
        self.flush().await;
    }

    pub async fn send_binary(&mut self, data: &[u8]) {
        self.conn.writer().send_binary(data);
        self.flush().await;
    }

    /// Writes raw bytes (for malformed frames).
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next event, skipping pings, or None on EOF / timeout.
    pub async fn next(&mut self, timeout: Duration) -> Option<Msg> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(m) = self.inbox.pop_front() {
                if matches!(m, Msg::Ping(_)) {
                    continue;
                }
                return Some(m);
            }
            if self.eof {
                return None;
            }
            let mut chunk = vec![0u8; 64 * 1024];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return None,
                Ok(Ok(0)) | Ok(Err(_)) => self.eof = true,
                Ok(Ok(n)) => {
                    chunk.truncate(n);
                    self.feed(chunk);
                    // Replies the core queued (pong, close echo).
                    self.flush_quietly().await;
                }
            }
        }
    }

    async fn flush_quietly(&mut self) {
        let mut out: Vec<Bytes> = Vec::new();
        self.conn.writer().take_output(&mut out);
        for b in out {
            if self.stream.write_all(&b).await.is_err() {
                break;
            }
        }
    }

    /// The next text message, as JSON.
    pub async fn next_json(&mut self) -> serde_json::Value {
        match self.next(Duration::from_secs(10)).await {
            Some(Msg::Text(t)) => serde_json::from_str(&t).unwrap(),
            other => panic!("expected a text message, got {other:?}"),
        }
    }

    /// Reads until the server's close frame; returns its code.
    pub async fn expect_close(&mut self) -> Option<u16> {
        loop {
            match self.next(Duration::from_secs(10)).await {
                Some(Msg::Close(c)) => return c.map(|(code, _)| code),
                Some(_) => continue,
                None => panic!("no close frame before EOF/timeout"),
            }
        }
    }
}

/// A masked client frame built by hand: `fin`, `opcode`, payload, with the
/// given 64-bit length field when `len_override` is set.
pub fn raw_frame(fin: bool, opcode: u8, payload: &[u8], len_override: Option<u64>) -> Vec<u8> {
    let mut f = vec![(if fin { 0x80 } else { 0 }) | opcode];
    let len = len_override.unwrap_or(payload.len() as u64);
    if len_override.is_some() || len > 65535 {
        f.push(0x80 | 127);
        f.extend_from_slice(&len.to_be_bytes());
    } else if len > 125 {
        f.push(0x80 | 126);
        f.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        f.push(0x80 | len as u8);
    }
    let key = [0x12, 0x34, 0x56, 0x78];
    f.extend_from_slice(&key);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    f
}
