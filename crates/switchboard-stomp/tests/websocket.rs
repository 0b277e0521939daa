//! STOMP frames in WebSocket messages: `StompWsHandler` under the transport's
//! WebSocket driver, with a client-role `switchboard_websocket` connection
//! over an in-memory pipe.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use switchboard_hub::{Hub, HubConfig, Payload};
use switchboard_stomp::{Broker, StompConfig, StompWsHandler};
use switchboard_transport::{drive, DriverConfig, Registry};
use switchboard_websocket::{Config, Connection, Event, Role};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// A WebSocket message as the client saw it.
#[derive(Debug, PartialEq, Eq)]
enum Msg {
    Text(String),
    Binary(Vec<u8>),
    Close,
}

struct WsClient {
    io: DuplexStream,
    conn: Connection,
    received: Vec<Msg>,
}

impl WsClient {
    async fn send_text(&mut self, text: &str) {
        self.conn.writer().send_text(text);
        self.flush().await;
    }

    async fn send_binary(&mut self, data: &[u8]) {
        self.conn.writer().send_binary(data);
        self.flush().await;
    }

    async fn flush(&mut self) {
        let mut out = Vec::new();
        self.conn.writer().take_output(&mut out);
        for chunk in out {
            self.io.write_all(&chunk).await.unwrap();
        }
    }

    async fn next(&mut self) -> Msg {
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if !self.received.is_empty() {
                    return self.received.remove(0);
                }
                let mut buf = vec![0u8; 65536];
                let n = self.io.read(&mut buf).await.unwrap();
                assert!(n > 0, "server closed the pipe");
                let received = &mut self.received;
                self.conn
                    .receive(&mut buf[..n], |ev, _| match ev {
                        Event::Text(t) => received.push(Msg::Text(t.to_owned())),
                        Event::Binary(b) => received.push(Msg::Binary(b.to_vec())),
                        Event::Close(_) => received.push(Msg::Close),
                        _ => {}
                    })
                    .unwrap();
            }
        })
        .await
        .expect("timed out")
    }

    async fn text(&mut self) -> String {
        match self.next().await {
            Msg::Text(t) => t,
            other => panic!("expected text, got {other:?}"),
        }
    }
}

fn start() -> (Broker, WsClient, Registry) {
    let broker = Broker::new(Hub::new(HubConfig::default()), StompConfig::default());
    let registry = Registry::new();
    let (server_io, client_io) = tokio::io::duplex(1 << 20);
    let driver = drive(
        server_io,
        Connection::new(Role::Server, Config::default()),
        StompWsHandler::new(&broker),
        Arc::new(DriverConfig::default()),
        &registry,
    );
    tokio::spawn(driver);
    let client = WsClient {
        io: client_io,
        conn: Connection::new(Role::Client, Config::default()),
        received: Vec::new(),
    };
    (broker, client, registry)
}

#[tokio::test]
async fn stomp_over_websocket_topics_queues_and_binary() {
    let (broker, mut ws, _registry) = start();
    ws.send_text("CONNECT\naccept-version:1.2\nhost:/\n\n\0")
        .await;
    assert!(ws.text().await.starts_with("CONNECTED\nversion:1.2\n"));

    // A frame split over two messages, and two frames in one message.
    ws.send_text("SUBSCRIBE\nid:t\ndestination:/topic/news\n")
        .await;
    ws.send_text("receipt:r1\n\n\0SUBSCRIBE\nid:q\ndestination:/queue/jobs\nreceipt:r2\n\n\0")
        .await;
    let mut receipts = ws.text().await;
    if !receipts.contains("r2") {
        receipts.push_str(&ws.text().await);
    }
    assert_eq!(
        receipts,
        "RECEIPT\nreceipt-id:r1\n\n\0RECEIPT\nreceipt-id:r2\n\n\0"
    );

    // Hub publication (another protocol) → MESSAGE in a text message.
    broker
        .hub()
        .publish("news", Payload::text("hello"), None)
        .unwrap();
    let m = ws.text().await;
    assert!(m.starts_with("MESSAGE\nsubscription:t\n"), "{m:?}");
    assert!(m.ends_with("content-type:text/plain;charset=utf-8\ncontent-length:5\n\nhello\0"));

    // A queue message sent from the server side wakes the connection.
    broker
        .send_to_queue("jobs", vec![], Bytes::from_static(b"job"))
        .unwrap();
    let m = ws.text().await;
    assert!(m.starts_with("MESSAGE\nsubscription:q\n"), "{m:?}");
    assert!(m.ends_with("\n\njob\0"));

    // A binary body (not UTF-8) comes back as a binary WebSocket message.
    let mut frame = b"SEND\ndestination:/topic/news\ncontent-type:application/octet-stream\ncontent-length:3\n\n".to_vec();
    frame.extend_from_slice(&[0xff, 0, 0xfe, 0]);
    ws.send_binary(&frame).await;
    match ws.next().await {
        Msg::Binary(b) => assert!(b.ends_with(&[b'\n', b'\n', 0xff, 0, 0xfe, 0])),
        other => panic!("expected binary, got {other:?}"),
    }

    ws.send_text("DISCONNECT\nreceipt:bye\n\n\0").await;
    assert_eq!(ws.text().await, "RECEIPT\nreceipt-id:bye\n\n\0");
    assert_eq!(ws.next().await, Msg::Close);
}

#[tokio::test]
async fn websocket_connect_timeout_closes() {
    let broker = Broker::new(
        Hub::new(HubConfig::default()),
        StompConfig {
            connect_timeout: Duration::from_millis(100),
            ..StompConfig::default()
        },
    );
    let registry = Registry::new();
    let (server_io, client_io) = tokio::io::duplex(1 << 16);
    tokio::spawn(drive(
        server_io,
        Connection::new(Role::Server, Config::default()),
        StompWsHandler::new(&broker),
        Arc::new(DriverConfig::default()),
        &registry,
    ));
    let mut ws = WsClient {
        io: client_io,
        conn: Connection::new(Role::Client, Config::default()),
        received: Vec::new(),
    };
    let error = ws.text().await;
    assert!(
        error.starts_with("ERROR\nmessage:connect timeout\n"),
        "{error:?}"
    );
    assert_eq!(ws.next().await, Msg::Close);
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_is_dropped_as_a_slow_consumer() {
    let hub = Hub::new(HubConfig {
        mailbox_max_messages: 64,
        ..HubConfig::default()
    });
    let broker = Broker::new(hub.clone(), StompConfig::default());
    let registry = Registry::new();
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    let config = DriverConfig {
        close_timeout: Duration::from_millis(200),
        ..DriverConfig::default()
    };
    let driver = tokio::spawn(drive(
        server_io,
        Connection::new(Role::Server, Config::default()),
        StompWsHandler::new(&broker),
        Arc::new(config),
        &registry,
    ));
    let mut ws = WsClient {
        io: client_io,
        conn: Connection::new(Role::Client, Config::default()),
        received: Vec::new(),
    };
    ws.send_text("CONNECT\naccept-version:1.2\nhost:/\n\n\0")
        .await;
    assert!(ws.text().await.starts_with("CONNECTED"));
    ws.send_text("SUBSCRIBE\nid:0\ndestination:/topic/flood\nreceipt:r\n\n\0")
        .await;
    assert!(ws.text().await.starts_with("RECEIPT"));
    // The client stops reading; 8 MB are published. Its messages must not
    // pile up in the server: once its output is backed up, its mailbox fills
    // and the connection ends.
    let body = "x".repeat(16 * 1024);
    for _ in 0..512 {
        hub.publish("flood", Payload::text(body.clone()), None)
            .unwrap();
        tokio::task::yield_now().await;
    }
    tokio::time::timeout(Duration::from_secs(5), driver)
        .await
        .expect("the stalled connection was not dropped")
        .unwrap();
    assert_eq!(hub.stats().clients, 0, "its hub client is gone");
}
