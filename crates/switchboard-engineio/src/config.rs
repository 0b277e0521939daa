//! [`Config`]: the server options that shape a session, with Node
//! `engine.io` 6's defaults (`BaseServer` constructor in `lib/server.ts`).

use std::time::Duration;

use crate::transport::Transports;

/// Engine.IO server options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// How long after the handshake (and after each pong) the server sends
    /// a ping (`pingInterval`, 25 s).
    pub ping_interval: Duration,
    /// How long the client has to answer a ping before the session closes
    /// with `ping timeout` (`pingTimeout`, 20 s).
    pub ping_timeout: Duration,
    /// How long an upgrade may take, from the WebSocket being opened to the
    /// `5` packet, before the WebSocket is dropped (`upgradeTimeout`, 10 s).
    pub upgrade_timeout: Duration,
    /// The largest polling POST body, and the largest WebSocket message the
    /// WebSocket layer should accept, in bytes (`maxHttpBufferSize`, 1e6).
    /// Announced to the client as `maxPayload`.
    pub max_payload: usize,
    /// The transports accepted (`transports`, polling and websocket).
    pub transports: Transports,
    /// Whether polling sessions may upgrade to WebSocket (`allowUpgrades`,
    /// true). Only changes the `upgrades` announced in the open packet, as
    /// in Node.
    pub allow_upgrades: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ping_interval: Duration::from_millis(25_000),
            ping_timeout: Duration::from_millis(20_000),
            upgrade_timeout: Duration::from_millis(10_000),
            max_payload: 1_000_000,
            transports: Transports::default(),
            allow_upgrades: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_nodes() {
        let c = Config::default();
        assert_eq!(c.ping_interval.as_millis(), 25000);
        assert_eq!(c.ping_timeout.as_millis(), 20000);
        assert_eq!(c.upgrade_timeout.as_millis(), 10000);
        assert_eq!(c.max_payload, 1_000_000);
        assert!(c.transports.polling && c.transports.websocket);
        assert!(c.allow_upgrades);
    }
}
