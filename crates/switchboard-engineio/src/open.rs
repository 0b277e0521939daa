//! The handshake: the `open` packet's JSON (`Socket.onOpen` in Node's
//! `lib/socket.ts`) and session id generation (Node's `base64id`: 15 random
//! bytes as URL-safe base64, 20 characters).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use base64::Engine as _;
use serde::Serialize;

use crate::config::Config;
use crate::transport::TransportKind;

/// The data of the `open` packet, serialized in Node's key order:
/// `{"sid":"…","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenPacket {
    /// The session id.
    pub sid: String,
    /// The transports the client may upgrade to.
    pub upgrades: Vec<&'static str>,
    /// `pingInterval` in milliseconds.
    pub ping_interval: u64,
    /// `pingTimeout` in milliseconds.
    pub ping_timeout: u64,
    /// `maxPayload` in bytes.
    pub max_payload: usize,
}

impl OpenPacket {
    /// The open packet of a session `sid` opened on `transport`. Upgrades
    /// are Node's `getAvailableUpgrades`: `["websocket"]` for polling when
    /// upgrades are allowed and WebSocket is enabled, else `[]`.
    pub fn new(sid: &str, transport: TransportKind, config: &Config) -> Self {
        let upgrades = match transport {
            TransportKind::Polling if config.allow_upgrades && config.transports.websocket => {
                vec![TransportKind::WebSocket.as_str()]
            }
            _ => Vec::new(),
        };
        OpenPacket {
            sid: sid.to_owned(),
            upgrades,
            ping_interval: config.ping_interval.as_millis() as u64,
            ping_timeout: config.ping_timeout.as_millis() as u64,
            max_payload: config.max_payload,
        }
    }

    /// The JSON text (the packet data after the `0`).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("open packet serializes")
    }
}

/// Formats 15 bytes as a session id exactly as `base64id` does: standard
/// base64 with `/` → `_` and `+` → `-` (20 characters, no padding).
pub fn sid_from_bytes(bytes: &[u8; 15]) -> String {
    base64::engine::general_purpose::URL_SAFE.encode(bytes)
}

/// Generates session ids: 20 URL-safe base64 characters of 120
/// unpredictable bits.
///
/// The bits are SipHash outputs of a counter under the secret random keys
/// of a std [`RandomState`] (seeded by the OS once per thread). That is a
/// keyed PRF, not a vetted CSPRNG: if you need one, draw 15 bytes from it
/// and use [`sid_from_bytes`].
#[derive(Debug, Clone)]
pub struct SidGenerator {
    keys: RandomState,
    counter: u64,
}

impl Default for SidGenerator {
    fn default() -> Self {
        Self::new()
    }
}

impl SidGenerator {
    /// A generator with fresh random keys.
    pub fn new() -> Self {
        SidGenerator {
            keys: RandomState::new(),
            counter: 0,
        }
    }

    /// The next session id.
    pub fn next_sid(&mut self) -> String {
        self.counter = self.counter.wrapping_add(1);
        let a = self.keys.hash_one((self.counter, 0u8)).to_le_bytes();
        let b = self.keys.hash_one((self.counter, 1u8)).to_le_bytes();
        let mut bytes = [0u8; 15];
        bytes[..8].copy_from_slice(&a);
        bytes[8..].copy_from_slice(&b[..7]);
        sid_from_bytes(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_packet_json_matches_node() {
        let json = OpenPacket::new(
            "lv_VI97HAXpY6yYWAAAC",
            TransportKind::Polling,
            &Config::default(),
        )
        .to_json();
        assert_eq!(
            json,
            r#"{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#
        );
        let json = OpenPacket::new("x", TransportKind::WebSocket, &Config::default()).to_json();
        assert!(json.contains(r#""upgrades":[]"#));
        let config = Config {
            allow_upgrades: false,
            ..Config::default()
        };
        let json = OpenPacket::new("x", TransportKind::Polling, &config).to_json();
        assert!(json.contains(r#""upgrades":[]"#));
    }

    #[test]
    fn sids_look_like_base64id() {
        let mut gen = SidGenerator::new();
        let a = gen.next_sid();
        let b = gen.next_sid();
        assert_ne!(a, b);
        for sid in [&a, &b] {
            assert_eq!(sid.len(), 20);
            assert!(sid
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        }
        assert_eq!(sid_from_bytes(&[0xff; 15]), "____________________");
        assert_eq!(sid_from_bytes(&[0xfb; 15]), "-_v7-_v7-_v7-_v7-_v7");
    }
}
