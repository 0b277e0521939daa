//! Server configuration: defaults, the TOML file, and `SWITCHBOARD_*` environment overrides.
//!
//! An override names a key path with `__` between sections:
//! `SWITCHBOARD_LISTEN=0.0.0.0:8080`, `SWITCHBOARD_WEBSOCKET__COMPRESSION=true`.
//! Values are read as TOML scalars (numbers, booleans) and otherwise as strings.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// Everything the server can be told; every field has a default.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// `tracing` filter, e.g. `info` or `switchboard=debug`.
    pub log: String,
    /// Raw WebSocket settings.
    pub websocket: WebSocketConfig,
    /// Hub settings.
    pub hub: HubConfig,
    /// Topic permission rules, first match wins (`[[permissions]]`).
    pub permissions: Vec<crate::permissions::TopicRule>,
}

/// Raw WebSocket endpoint settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSocketConfig {
    /// Largest message accepted, in bytes (larger: close 1009).
    pub max_message_size: usize,
    /// Offer permessage-deflate (RFC 7692) to clients that ask for it.
    pub compression: bool,
    /// zlib level for outgoing messages (0–9); 1 favours latency and CPU.
    pub compression_level: u32,
    /// Outgoing messages shorter than this many bytes are not compressed.
    pub compression_min_size: usize,
    /// Seconds without traffic before the server pings (0: never).
    pub ping_interval_secs: u64,
    /// Seconds to wait for any traffic after a ping before dropping the peer.
    pub ping_timeout_secs: u64,
    /// Allowed `Origin` values; empty allows every origin.
    pub allowed_origins: Vec<String>,
}

/// Hub settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubConfig {
    /// Messages kept per topic for catch-up (0: none).
    pub history_size: usize,
    /// A connection's outbound queue limit, in messages.
    pub mailbox_max_messages: usize,
    /// A connection's outbound queue limit, in bytes.
    pub mailbox_max_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            log: "info".into(),
            websocket: WebSocketConfig::default(),
            hub: HubConfig::default(),
            permissions: Vec::new(),
        }
    }
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        WebSocketConfig {
            max_message_size: 16 << 20,
            compression: false,
            compression_level: 1,
            compression_min_size: 64,
            ping_interval_secs: 30,
            ping_timeout_secs: 30,
            allowed_origins: Vec::new(),
        }
    }
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            history_size: 100,
            mailbox_max_messages: 1024,
            mailbox_max_bytes: 4 << 20,
        }
    }
}

impl WebSocketConfig {
    /// The ping interval, or None when pings are off.
    pub fn ping_interval(&self) -> Option<Duration> {
        (self.ping_interval_secs > 0).then(|| Duration::from_secs(self.ping_interval_secs))
    }
}

/// A configuration that could not be loaded.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// The top-level keys an environment variable may set.
const TOP_LEVEL_KEYS: &[&str] = &["listen", "log", "websocket", "hub", "permissions"];

impl Config {
    /// Loads the defaults, then `file` if given, then `SWITCHBOARD_*` variables from `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut tree = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?
            }
            None => toml::Table::new(),
        };
        for (key, value) in env {
            let Some(path) = key.strip_prefix("SWITCHBOARD_") else {
                continue;
            };
            let path: Vec<String> = path.split("__").map(|p| p.to_ascii_lowercase()).collect();
            // Other tools' SWITCHBOARD_* variables (e.g. SWITCHBOARD_BIN in the
            // test harness) are not ours; a typo inside a section still fails.
            if !TOP_LEVEL_KEYS.contains(&path[0].as_str()) {
                continue;
            }
            set_path(&mut tree, &path, parse_scalar(&value))
                .map_err(|e| ConfigError(format!("{key}: {e}")))?;
        }
        Config::deserialize(toml::Value::Table(tree)).map_err(|e| ConfigError(e.to_string()))
    }
}

fn parse_scalar(value: &str) -> toml::Value {
    format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()))
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    match path {
        [] => Err("empty key".into()),
        [last] => {
            table.insert(last.clone(), value);
            Ok(())
        }
        [first, rest @ ..] => {
            let entry = table
                .entry(first.clone())
                .or_insert_with(|| toml::Value::Table(Default::default()));
            match entry {
                toml::Value::Table(t) => set_path(t, rest, value),
                _ => Err(format!("{first} is not a section")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_without_file_or_env() {
        let c = Config::load(None, env(&[("PATH", "/bin")])).unwrap();
        assert_eq!(c.listen.port(), 8080);
        assert!(!c.websocket.compression);
        assert_eq!(c.hub.history_size, 100);
    }

    #[test]
    fn file_then_env_overrides() {
        let dir = std::env::temp_dir().join(format!("sb-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\n[websocket]\ncompression = true\nmax_message_size = 10\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&path),
            env(&[
                ("SWITCHBOARD_WEBSOCKET__MAX_MESSAGE_SIZE", "20"),
                ("SWITCHBOARD_LOG", "debug"),
            ]),
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert!(c.websocket.compression);
        assert_eq!(c.websocket.max_message_size, 20);
        assert_eq!(c.log, "debug");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        assert!(Config::load(None, env(&[("SWITCHBOARD_WEBSOCKET__NOPE", "1")])).is_err());
        // Not one of ours: ignored.
        assert!(Config::load(None, env(&[("SWITCHBOARD_BIN", "/x")])).is_ok());
        assert!(Config::load(None, env(&[("SWITCHBOARD_LISTEN", "not an address")])).is_err());
    }
}
