//! A raw-TCP STOMP test client and a server on 127.0.0.1:0.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use switchboard_hub::{Hub, HubConfig};
use switchboard_stomp::{serve_tcp, Broker, StompConfig};
use switchboard_transport::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const TIMEOUT: Duration = Duration::from_secs(5);

pub struct Server {
    pub addr: SocketAddr,
    pub broker: Broker,
    pub registry: Registry,
}

pub async fn start(config: StompConfig) -> Server {
    start_with_hub(config, HubConfig::default()).await
}

pub async fn start_with_hub(config: StompConfig, hub: HubConfig) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let broker = Broker::new(Hub::new(hub), config);
    let registry = Registry::new();
    tokio::spawn(serve_tcp(listener, broker.clone(), registry.clone()));
    Server {
        addr,
        broker,
        registry,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub command: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Frame {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Conn {
        Conn {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    /// Opens a connection and logs in (STOMP 1.2, no heart-beats).
    pub async fn login(addr: SocketAddr, creds: Option<(&str, &str)>) -> (Conn, Frame) {
        let mut c = Conn::open(addr).await;
        let mut frame = String::from("CONNECT\naccept-version:1.2\nhost:/\n");
        if let Some((l, p)) = creds {
            frame.push_str(&format!("login:{l}\npasscode:{p}\n"));
        }
        frame.push_str("\n\0");
        c.send(frame.as_bytes()).await;
        let f = c.frame().await;
        (c, f)
    }

    pub async fn connected(addr: SocketAddr) -> Conn {
        let (c, f) = Conn::login(addr, None).await;
        assert_eq!(f.command, "CONNECTED", "{f:?}");
        c
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Sends a frame built from a command, headers and body.
    pub async fn send_frame(&mut self, command: &str, headers: &[(&str, &str)], body: &[u8]) {
        let mut out = format!("{command}\n").into_bytes();
        for (n, v) in headers {
            out.extend_from_slice(format!("{n}:{v}\n").as_bytes());
        }
        if !body.is_empty() {
            out.extend_from_slice(format!("content-length:{}\n", body.len()).as_bytes());
        }
        out.push(b'\n');
        out.extend_from_slice(body);
        out.push(0);
        self.send(&out).await;
    }

    /// SUBSCRIBE with a receipt, waiting for it.
    pub async fn subscribe(&mut self, id: &str, destination: &str, ack: &str) {
        let receipt = format!("sub-{id}");
        self.send_frame(
            "SUBSCRIBE",
            &[
                ("id", id),
                ("destination", destination),
                ("ack", ack),
                ("receipt", &receipt),
            ],
            b"",
        )
        .await;
        self.expect_receipt(&receipt).await;
    }

    /// SEND of a text body with a receipt, waiting for it.
    pub async fn send_text(&mut self, destination: &str, body: &str) {
        self.send_frame(
            "SEND",
            &[
                ("destination", destination),
                ("content-type", "text/plain"),
                ("receipt", "send"),
            ],
            body.as_bytes(),
        )
        .await;
        self.expect_receipt("send").await;
    }

    pub async fn expect_receipt(&mut self, id: &str) {
        let f = self.frame().await;
        assert_eq!(f.command, "RECEIPT", "{f:?}");
        assert_eq!(f.header("receipt-id"), Some(id));
    }

    /// The next frame (heart-beat EOLs skipped); panics on timeout or EOF.
    pub async fn frame(&mut self) -> Frame {
        tokio::time::timeout(TIMEOUT, self.next_frame())
            .await
            .expect("timed out waiting for a frame")
            .expect("connection closed while waiting for a frame")
    }

    pub async fn message(&mut self) -> Frame {
        let f = self.frame().await;
        assert_eq!(f.command, "MESSAGE", "{f:?}");
        f
    }

    /// An ERROR frame, then the server closes the connection.
    pub async fn expect_error(&mut self) -> Frame {
        let f = self.frame().await;
        assert_eq!(f.command, "ERROR", "{f:?}");
        self.expect_closed().await;
        f
    }

    pub async fn expect_closed(&mut self) {
        let r = tokio::time::timeout(TIMEOUT, self.next_frame())
            .await
            .expect("timed out waiting for the close");
        assert_eq!(r, None, "expected the connection to close");
    }

    /// Asserts that no frame arrives within `ms`.
    pub async fn expect_silence(&mut self, ms: u64) {
        if let Ok(r) = tokio::time::timeout(Duration::from_millis(ms), self.next_frame()).await {
            panic!("unexpected {r:?}");
        }
    }

    /// Raw bytes received within `ms` (EOF ends early).
    pub async fn read_raw(&mut self, ms: u64) -> (Vec<u8>, bool) {
        let mut got = std::mem::take(&mut self.buf);
        let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
        loop {
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return (got, false),
                Ok(Ok(0)) | Ok(Err(_)) => return (got, true),
                Ok(Ok(n)) => got.extend_from_slice(&chunk[..n]),
            }
        }
    }

    async fn next_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = self.parse() {
                return Some(f);
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn parse(&mut self) -> Option<Frame> {
        let start = self.buf.iter().position(|&b| b != b'\n' && b != b'\r')?;
        let rest = &self.buf[start..];
        let head_end = rest.windows(2).position(|w| w == b"\n\n")?;
        let head = std::str::from_utf8(&rest[..head_end]).unwrap();
        let mut lines = head.lines();
        let command = lines.next().unwrap().to_owned();
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap();
                (n.to_owned(), v.to_owned())
            })
            .collect();
        let body_start = head_end + 2;
        let len = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map(|(_, v)| v.parse::<usize>().unwrap());
        let body_end = match len {
            Some(len) => {
                if rest.len() < body_start + len + 1 {
                    return None;
                }
                assert_eq!(rest[body_start + len], 0, "frame must end with NUL");
                body_start + len
            }
            None => body_start + rest[body_start..].iter().position(|&b| b == 0)?,
        };
        let body = rest[body_start..body_end].to_vec();
        self.buf.drain(..start + body_end + 1);
        Some(Frame {
            command,
            headers,
            body,
        })
    }
}
