//! A minimal Socket.IO v5 / Engine.IO v4 client over the WebSocket client
//! ([`WsConn`]), websocket transport only, namespace `/`, text packets only:
//!
//! * `GET /socket.io/?EIO=4&transport=websocket` (the upgrade), read the
//!   Engine.IO open packet `0{...}`, send `40`, read `40{"sid":...}`;
//! * every Engine.IO ping `2` is answered with a pong `3` (queued while
//!   processing, written by the next `flush`);
//! * events go out as `42["name",...]`, with an ack id as `42<id>["name",...]`;
//!   the answer comes back as `43<id>[...]`.
//!
//! Everything else the server sends (noop, other packets) is passed on to the
//! caller's closure if it is a Socket.IO packet (`4...`), dropped otherwise.

use std::io;
use std::net::IpAddr;

use crate::util::Target;
use crate::ws::WsConn;

pub struct SioConn {
    ws: WsConn,
}

/// The Engine.IO handshake path for `t`'s path (normally `/socket.io/`).
fn handshake_path(path: &str) -> String {
    let base = if path.ends_with('/') {
        path.to_owned()
    } else {
        format!("{path}/")
    };
    format!("{base}?EIO=4&transport=websocket")
}

impl SioConn {
    /// Opens the WebSocket, the Engine.IO session and the Socket.IO connection to `/`.
    pub async fn connect(t: &Target, local: Option<IpAddr>) -> io::Result<Self> {
        let t = Target {
            path: handshake_path(&t.path),
            ..t.clone()
        };
        let mut c = SioConn {
            ws: WsConn::connect(&t, local).await?,
        };
        // 0: the Engine.IO open packet
        c.wait_for(|m| m.first() == Some(&b'0')).await?;
        c.send("40");
        c.flush().await?;
        // 40{"sid":...}: connected to the namespace (44: refused)
        let mut refused = false;
        c.wait_for(|m| {
            refused |= m.starts_with(b"44");
            m.starts_with(b"40") || m.starts_with(b"44")
        })
        .await?;
        if refused {
            return Err(io::Error::other("namespace connection refused (44)"));
        }
        Ok(c)
    }

    /// Reads until a packet for which `want` is true arrived; the other
    /// packets before it are dropped. Pings are answered.
    pub async fn wait_for(&mut self, mut want: impl FnMut(&[u8]) -> bool) -> io::Result<()> {
        let mut found = false;
        loop {
            // What is already buffered first: the WebSocket handshake's read
            // may have taken the first packets along with the 101 response.
            let alive = self.process_all(|m| {
                if !found && want(m) {
                    found = true;
                }
            });
            self.flush().await?;
            if found {
                return Ok(());
            }
            if !alive {
                return Err(io::Error::other("closed by server"));
            }
            if self.ws.read().await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed during the Socket.IO handshake",
                ));
            }
        }
    }

    /// Queues one Engine.IO message (the text as is, e.g. `42["ev","x"]`).
    #[inline]
    pub fn send(&mut self, packet: &str) {
        self.ws.send_text(packet);
    }

    pub async fn flush(&mut self) -> io::Result<()> {
        self.ws.flush().await
    }

    pub async fn read(&mut self) -> io::Result<usize> {
        self.ws.read().await
    }

    pub fn try_read(&mut self) -> io::Result<usize> {
        self.ws.try_read()
    }

    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.ws.local_addr()
    }

    /// Decodes every complete message read so far and calls `f` with each
    /// Socket.IO packet (`4` stripped: `2["ev",...]`, `3<id>[...]`, ...);
    /// answers pings. Returns false once the peer closed.
    pub fn process(&mut self, mut f: impl FnMut(&[u8])) -> bool {
        self.process_all(|m| {
            if let Some(p) = m.strip_prefix(b"4") {
                f(p)
            }
        })
    }

    /// Like `process`, with every Engine.IO message as is (pings answered).
    fn process_all(&mut self, mut f: impl FnMut(&[u8])) -> bool {
        let mut pings = 0usize;
        let mut close = false;
        let alive = self.ws.process(|m| match m {
            b"2" => pings += 1,
            b"1" => close = true,
            _ => f(m),
        });
        for _ in 0..pings {
            self.ws.send_text("3");
        }
        alive && !close
    }
}

/// `3<id>[...]` (an ack, `4` already stripped): the id and the arguments.
#[inline]
pub fn parse_ack(p: &[u8]) -> Option<(u64, &[u8])> {
    let rest = p.strip_prefix(b"3")?;
    let n = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    if n == 0 || n > 19 {
        return None;
    }
    let mut id = 0u64;
    for &c in &rest[..n] {
        id = id * 10 + (c - b'0') as u64;
    }
    Some((id, &rest[n..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            handshake_path("/socket.io/"),
            "/socket.io/?EIO=4&transport=websocket"
        );
        assert_eq!(
            handshake_path("/socket.io"),
            "/socket.io/?EIO=4&transport=websocket"
        );
    }

    #[test]
    fn acks() {
        assert_eq!(parse_ack(b"312[\"x\"]"), Some((12, &b"[\"x\"]"[..])));
        assert_eq!(parse_ack(b"3[\"x\"]"), None);
        assert_eq!(parse_ack(b"2[\"x\"]"), None);
    }
}
