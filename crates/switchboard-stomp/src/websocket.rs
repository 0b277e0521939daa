//! STOMP over WebSocket ("frames in messages"): [`StompWsHandler`] is a
//! [`WsHandler`] for `switchboard_transport`'s WebSocket driver. Every text
//! or binary message from the client carries STOMP bytes (a frame, several,
//! or part of one — the decoder is incremental); what the connection
//! produces between two flushes leaves as one message, text when it is
//! valid UTF-8, binary otherwise (as `@stomp/stompjs` and Spring accept).
//!
//! The server mounts it on an upgrade that negotiated one of the
//! [`SUBPROTOCOLS`]. WebSocket pings run as usual; STOMP heart-beats and
//! the CONNECT timeout run from the handler's own timer.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::Instant;

use bytes::Bytes;
use switchboard_transport::WsHandler;
use switchboard_websocket::{CloseCode, Event, Writer};
use tokio::time::Sleep;

use crate::broker::Broker;
use crate::client::StompClient;

/// The WebSocket subprotocols of STOMP, preferred first.
pub const SUBPROTOCOLS: [&str; 3] = ["v12.stomp", "v11.stomp", "v10.stomp"];

/// One STOMP connection over WebSocket; hand it to
/// [`switchboard_transport::drive`].
#[derive(Debug)]
pub struct StompWsHandler {
    client: StompClient,
    timer: Option<Pin<Box<Sleep>>>,
}

impl StompWsHandler {
    /// A connection that has just been upgraded (the CONNECT timeout starts
    /// now).
    pub fn new(broker: &Broker) -> Self {
        StompWsHandler {
            client: StompClient::new(broker, Instant::now()),
            timer: None,
        }
    }

    /// The broker side of the connection.
    pub fn client(&self) -> &StompClient {
        &self.client
    }

    /// Sends the connection's output as one message; closes the WebSocket
    /// once the STOMP session is over.
    fn flush(&mut self, ws: &mut Writer) {
        // Usually one chunk, sent as it is; several are joined (no list of
        // chunks kept in every idle connection's task).
        let mut one: Option<Bytes> = None;
        let mut joined = Vec::new();
        self.client.drain_output(Instant::now(), |chunk| {
            if joined.is_empty() && one.is_none() {
                one = Some(chunk);
            } else {
                if let Some(first) = one.take() {
                    joined.extend_from_slice(&first);
                }
                joined.extend_from_slice(&chunk);
            }
        });
        if let Some(one) = one {
            send(ws, &one);
        } else if !joined.is_empty() {
            send(ws, &joined);
        }
        if self.client.is_closed() {
            ws.close(CloseCode::NORMAL, "");
        }
    }
}

fn send(ws: &mut Writer, data: &[u8]) {
    match std::str::from_utf8(data) {
        Ok(text) => ws.send_text(text),
        Err(_) => ws.send_binary(data),
    }
}

impl WsHandler for StompWsHandler {
    fn on_event(&mut self, event: Event<'_>, out: &mut Writer) {
        match event {
            Event::Text(text) => self.client.receive(Instant::now(), text.as_bytes()),
            Event::Binary(data) => self.client.receive(Instant::now(), data),
            _ => return,
        }
        self.flush(out);
    }

    fn poll_sources(&mut self, cx: &mut Context<'_>, out: &mut Writer, backlogged: bool) {
        if self.client.is_closed() {
            return;
        }
        if backlogged || out.output_len() >= self.client.output_high_water() {
            // The driver stops reading and polls again once it has flushed;
            // deliveries wait in the mailbox meanwhile, and a mailbox that
            // overflows ends the connection (slow consumer).
            self.client.poll_overflow(cx);
        } else {
            self.client.poll_deliveries(cx);
        }
        if let Some(deadline) = self.client.poll_timeout() {
            let deadline = tokio::time::Instant::from_std(deadline);
            let sleep = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if sleep.deadline() != deadline {
                sleep.as_mut().reset(deadline);
            }
            if sleep.as_mut().poll(cx).is_ready() {
                self.client.handle_timeout(Instant::now());
            }
        } else {
            // Connected without heart-beats: the CONNECT timer is done.
            self.timer = None;
        }
        self.flush(out);
    }
}
