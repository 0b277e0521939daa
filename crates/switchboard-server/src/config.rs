//! Server configuration: defaults, the TOML file, and `SWITCHBOARD_*` environment overrides.
//!
//! An override names a key path with `__` between sections:
//! `SWITCHBOARD_LISTEN=0.0.0.0:8080`, `SWITCHBOARD_WEBSOCKET__COMPRESSION=true`.
//! Values are read as TOML scalars (numbers, booleans) and otherwise as strings.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Everything the server can be told; every field has a default.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// `tracing` filter, e.g. `info` or `switchboard=debug`.
    pub log: String,
    /// Tokio worker threads of the binary; 0: one per CPU the process may
    /// run on.
    pub worker_threads: usize,
    /// Raw WebSocket settings.
    pub websocket: WebSocketConfig,
    /// Hub settings.
    pub hub: HubConfig,
    /// SockJS service settings (`/sockjs/*`).
    pub sockjs: SockJsSettings,
    /// The STOMP broker (`/stomp` and a TCP port).
    pub stomp: StompSettings,
    /// Socket.IO settings (`/socket.io/`).
    pub socketio: SocketIoSettings,
    /// The Redis backplane (`[redis]`): absent, the node is alone (in-memory hub).
    pub redis: Option<switchboard_redis::RedisConfig>,
    /// Connection tokens and API keys (`[auth]`, docs/auth.md).
    pub auth: switchboard_auth::AuthConfig,
    /// Topic permission rules, first match wins (`[[permissions]]`).
    pub permissions: Vec<crate::permissions::Rule>,
    /// TLS (`[tls]`): with a certificate and key, the HTTP listeners serve
    /// HTTPS and WSS only.
    pub tls: TlsSettings,
}

/// TLS for the listeners (`[tls]`): PEM files; both set, or neither (an
/// empty path counts as unset).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// The certificate chain, PEM, the server's certificate first.
    pub cert_file: Option<PathBuf>,
    /// The private key, PEM: PKCS#8, PKCS#1 (RSA) or SEC1 (EC), unencrypted.
    pub key_file: Option<PathBuf>,
}

impl TlsSettings {
    /// The certificate and key files, or None when TLS is off; an error when
    /// only one of them is set.
    pub fn files(&self) -> Result<Option<(&Path, &Path)>, ConfigError> {
        fn set(p: &Option<PathBuf>) -> Option<&Path> {
            p.as_deref().filter(|p| !p.as_os_str().is_empty())
        }
        match (set(&self.cert_file), set(&self.key_file)) {
            (Some(c), Some(k)) => Ok(Some((c, k))),
            (None, None) => Ok(None),
            (Some(_), None) => Err(ConfigError(
                "tls.cert_file is set but tls.key_file is not".into(),
            )),
            (None, Some(_)) => Err(ConfigError(
                "tls.key_file is set but tls.cert_file is not".into(),
            )),
        }
    }

    /// Whether `[tls]` has a certificate and a key.
    pub fn enabled(&self) -> bool {
        matches!(self.files(), Ok(Some(_)))
    }
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

/// SockJS service settings, named as Spring's `SockJsServiceRegistration`
/// options (times in milliseconds).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SockJsSettings {
    /// Milliseconds a receiver may stay silent before the server writes a
    /// heartbeat frame (`heartbeatTime`).
    pub heartbeat_time_ms: u64,
    /// Milliseconds a session may have no receiver before it is closed
    /// (`disconnectDelay`).
    pub disconnect_delay_ms: u64,
    /// Bytes a streaming response carries before it is ended so the client
    /// opens a new one (`streamBytesLimit`).
    pub stream_bytes_limit: usize,
    /// Messages a session may hold for its client; one more closes it as a
    /// slow consumer (`httpMessageCacheSize`).
    pub http_message_cache_size: usize,
    /// Serve the `websocket` transport (`webSocketEnabled`).
    pub websocket_enabled: bool,
    /// `cookie_needed` in `/info` and a `JSESSIONID` cookie
    /// (`sessionCookieNeeded`).
    pub session_cookie_needed: bool,
    /// The `sockjs-client` script the iframe page loads (`clientLibraryUrl`);
    /// unset: this server's embedded copy, `/assets/vendor/sockjs.min.js`
    /// (the jsDelivr URL of sockjs-client 1.x when the build had none).
    pub client_library_url: Option<String>,
    /// The services (`[[sockjs.services]]`); the default is `/sockjs/echo`,
    /// `/sockjs/close` and `/sockjs/chat`. Declaring any replaces them all.
    pub services: Vec<SockJsService>,
}

/// One SockJS service: a prefix, what it does, and the options it sets
/// differently from `[sockjs]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SockJsService {
    /// The URL prefix, e.g. `/echo` (no trailing `/`).
    pub prefix: String,
    /// What the service does with its sessions.
    pub behaviour: SockJsBehaviour,
    /// Overrides `[sockjs] websocket_enabled`.
    pub websocket_enabled: Option<bool>,
    /// Overrides `[sockjs] session_cookie_needed`.
    pub session_cookie_needed: Option<bool>,
    /// Overrides `[sockjs] stream_bytes_limit`.
    pub stream_bytes_limit: Option<usize>,
}

/// What a SockJS service does.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SockJsBehaviour {
    /// Every message comes back.
    Echo,
    /// Every session is closed at once with `c[3000,"Go away!"]`.
    Close,
    /// The JSON envelope of docs/ws-envelope.md on the hub.
    Chat,
}

impl SockJsService {
    fn new(prefix: &str, behaviour: SockJsBehaviour) -> Self {
        SockJsService {
            prefix: prefix.to_owned(),
            behaviour,
            websocket_enabled: None,
            session_cookie_needed: None,
            stream_bytes_limit: None,
        }
    }
}

/// The STOMP broker: STOMP over WebSocket and over SockJS at `/stomp`, and
/// over plain TCP.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StompSettings {
    /// Serve STOMP at all.
    pub enabled: bool,
    /// The plain TCP listener: unset, `127.0.0.1:61613` when that port is
    /// free (a warning, not an error, when it is not); `""` for none; an
    /// address, that address (an error when it cannot be bound).
    pub tcp_listen: Option<String>,
    /// An extra listener laid out as RabbitMQ's Web-STOMP (there on port
    /// 15674): STOMP over WebSocket at `/ws`, over SockJS at `/stomp`, so
    /// client code written for RabbitMQ runs unchanged. Unset: none.
    pub web_stomp_listen: Option<SocketAddr>,
    /// With `[tls]`: the TCP listener speaks STOMP over TLS (`stomp+ssl`,
    /// RabbitMQ's port 61614) instead of plain STOMP.
    pub tcp_tls: bool,
    /// Users allowed to connect (`login` / `passcode` of CONNECT).
    pub users: Vec<StompUser>,
    /// Whether a CONNECT without credentials is accepted (the demo default;
    /// RabbitMQ's `guest` plays that part there).
    pub allow_anonymous: bool,
    /// Milliseconds a connection may take to send CONNECT.
    pub connect_timeout_ms: u64,
    /// The heart-beat the server offers, both ways, in milliseconds (the
    /// CONNECTED `heart-beat` header: it can send that often and wants to
    /// hear from the client that often; 0: none). A client silent for 1.5
    /// times the negotiated interval is dropped.
    pub heart_beat_ms: u64,
    /// Messages one `/queue/...` holds for a consumer; more are refused.
    pub max_queue_length: usize,
    /// Directory of the durable queue store: `/queue/...` messages not yet
    /// acknowledged survive a restart. Unset (or `""`): queues live in memory.
    /// Not used with `[redis]`, where queues live in Redis.
    pub data_dir: Option<std::path::PathBuf>,
    /// With `[redis]`: milliseconds after which `/queue/...` messages held
    /// by a node that stopped refreshing them (it died) are taken over by
    /// another node and redelivered.
    pub queue_reclaim_ms: u64,
}

/// One STOMP user.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StompUser {
    /// The `login` header.
    pub login: String,
    /// The `passcode` header.
    pub passcode: String,
}

/// The default STOMP TCP address (the usual STOMP port).
pub const DEFAULT_STOMP_TCP: &str = "127.0.0.1:61613";

impl Default for StompSettings {
    fn default() -> Self {
        StompSettings {
            enabled: true,
            tcp_listen: None,
            web_stomp_listen: None,
            tcp_tls: false,
            users: Vec::new(),
            allow_anonymous: true,
            connect_timeout_ms: 10_000,
            heart_beat_ms: 10_000,
            max_queue_length: 10_000,
            data_dir: None,
            queue_reclaim_ms: 30_000,
        }
    }
}

impl StompSettings {
    /// Where to listen for STOMP over TCP, and whether failing to is an
    /// error (an address the operator chose) or only a warning (the default).
    pub fn tcp_address(&self) -> Result<Option<(SocketAddr, bool)>, ConfigError> {
        if !self.enabled {
            return Ok(None);
        }
        match self.tcp_listen.as_deref() {
            None => Ok(Some((DEFAULT_STOMP_TCP.parse().expect("valid"), false))),
            Some("") => Ok(None),
            Some(a) => a
                .parse()
                .map(|a| Some((a, true)))
                .map_err(|e| ConfigError(format!("stomp.tcp_listen {a:?}: {e}"))),
        }
    }
}

/// Paths the server's other endpoints own: no SockJS prefix may be one of
/// them or lie under one.
const RESERVED_PREFIXES: &[&str] = &["/ws", "/socket.io", "/assets", "/healthz", "/stomp"];

impl SockJsSettings {
    /// Checks the service prefixes: `/name[/name...]`, unique, and clear of
    /// the other endpoints (the router would refuse overlapping routes).
    fn validate(&self) -> Result<(), ConfigError> {
        let mut seen = std::collections::HashSet::new();
        for s in &self.services {
            let p = s.prefix.as_str();
            let well_formed = p.len() > 1
                && p.starts_with('/')
                && !p.ends_with('/')
                && !p.contains("//")
                && p.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~')
                });
            if !well_formed {
                return Err(ConfigError(format!(
                    "sockjs service prefix {p:?}: expected /name or /name/name (letters, digits, - _ . ~)"
                )));
            }
            let clash = RESERVED_PREFIXES
                .iter()
                .any(|r| p == *r || p.starts_with(&format!("{r}/")));
            if clash {
                return Err(ConfigError(format!(
                    "sockjs service prefix {p:?} overlaps another endpoint"
                )));
            }
            let nested = self
                .services
                .iter()
                .any(|o| o.prefix != s.prefix && p.starts_with(&format!("{}/", o.prefix)));
            if !seen.insert(p) || nested {
                return Err(ConfigError(format!(
                    "sockjs service prefix {p:?} is declared twice or nested in another"
                )));
            }
        }
        Ok(())
    }
}

/// Socket.IO settings (`[socketio]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SocketIoSettings {
    /// Connection state recovery (socket.io 4.6's `connectionStateRecovery`,
    /// off by default as in Node): a client whose connection dropped comes
    /// back with its socket id and rooms and gets the Socket.IO events it
    /// missed; with `[redis]`, on any node.
    pub connection_state_recovery: bool,
    /// How long a disconnected client can come back (Node's
    /// `maxDisconnectionDuration`).
    pub max_disconnection_duration_secs: u64,
}

impl Default for SocketIoSettings {
    fn default() -> Self {
        SocketIoSettings {
            connection_state_recovery: false,
            max_disconnection_duration_secs: 120,
        }
    }
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
            worker_threads: 0,
            websocket: WebSocketConfig::default(),
            hub: HubConfig::default(),
            sockjs: SockJsSettings::default(),
            stomp: StompSettings::default(),
            socketio: SocketIoSettings::default(),
            permissions: Vec::new(),
            auth: Default::default(),
            redis: None,
            tls: TlsSettings::default(),
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

impl Default for SockJsSettings {
    fn default() -> Self {
        SockJsSettings {
            heartbeat_time_ms: 25_000,
            disconnect_delay_ms: 5_000,
            stream_bytes_limit: 128 * 1024,
            // Spring's default is 100; as many as a hub mailbox holds, so a
            // burst the hub accepts does not close the session.
            http_message_cache_size: 1024,
            websocket_enabled: true,
            session_cookie_needed: false,
            client_library_url: None,
            services: vec![
                SockJsService::new("/sockjs/echo", SockJsBehaviour::Echo),
                SockJsService::new("/sockjs/close", SockJsBehaviour::Close),
                SockJsService::new("/sockjs/chat", SockJsBehaviour::Chat),
            ],
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
const TOP_LEVEL_KEYS: &[&str] = &[
    "listen",
    "log",
    "worker_threads",
    "socketio",
    "websocket",
    "hub",
    "sockjs",
    "stomp",
    "permissions",
    "auth",
    "redis",
    "tls",
];

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
        let config = Config::deserialize(toml::Value::Table(tree))
            .map_err(|e| ConfigError(e.to_string()))?;
        config.sockjs.validate()?;
        config.stomp.tcp_address()?;
        if config.stomp.queue_reclaim_ms < 30 {
            return Err(ConfigError(
                "stomp.queue_reclaim_ms must be at least 30".into(),
            ));
        }
        // Unreadable or invalid certificate or key files fail here, at start-up.
        let tls = crate::tls::acceptor(&config.tls)?;
        if config.stomp.tcp_tls && tls.is_none() {
            return Err(ConfigError(
                "stomp.tcp_tls needs [tls] cert_file and key_file".into(),
            ));
        }
        if let Some(redis) = &config.redis {
            redis
                .validate()
                .map_err(|e| ConfigError(format!("[redis]: {e}")))?;
        }
        switchboard_auth::Authenticator::new(&config.auth)
            .map_err(|e| ConfigError(format!("[auth]: {e}")))?;
        for rule in &config.permissions {
            rule.validate().map_err(ConfigError)?;
        }
        Ok(config)
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
    fn every_documented_top_level_key_can_be_set_from_the_environment() {
        // The reference block of docs/configuration.md, commented-out
        // sections included (`# [redis]`).
        let doc = include_str!("../../../docs/configuration.md");
        let start = doc.find("```toml\n").unwrap();
        let block = &doc[start..start + doc[start..].find("\n```\n").unwrap()];
        let mut keys = Vec::new();
        for line in block.lines().skip(1) {
            let line = line.trim_start_matches("# ");
            if let Some(table) = line.strip_prefix('[') {
                let name = table.trim_start_matches('[');
                let end = name.find([']', '.']).unwrap();
                keys.push(&name[..end]);
            } else if keys.is_empty() {
                if let Some((k, _)) = line.split_once(" = ") {
                    keys.push(k.trim());
                }
            }
        }
        assert!(keys.len() > 10, "{keys:?}");
        for k in keys {
            assert!(TOP_LEVEL_KEYS.contains(&k), "{k} is not in TOP_LEVEL_KEYS");
        }
        let c = Config::load(
            None,
            env(&[
                ("SWITCHBOARD_WORKER_THREADS", "3"),
                ("SWITCHBOARD_SOCKETIO__CONNECTION_STATE_RECOVERY", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(c.worker_threads, 3);
        assert!(c.socketio.connection_state_recovery);
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
    fn stomp_section() {
        let c = Config::load(None, env(&[])).unwrap();
        assert!(c.stomp.enabled && c.stomp.allow_anonymous);
        assert_eq!(
            c.stomp.tcp_address().unwrap(),
            Some((DEFAULT_STOMP_TCP.parse().unwrap(), false))
        );
        let c = Config::load(
            None,
            env(&[
                ("SWITCHBOARD_STOMP__TCP_LISTEN", "127.0.0.1:7000"),
                (
                    "SWITCHBOARD_STOMP__USERS",
                    r#"[{login = "guest", passcode = "guest"}]"#,
                ),
                ("SWITCHBOARD_STOMP__ALLOW_ANONYMOUS", "false"),
            ]),
        )
        .unwrap();
        assert_eq!(
            c.stomp.tcp_address().unwrap(),
            Some(("127.0.0.1:7000".parse().unwrap(), true))
        );
        assert_eq!(c.stomp.users[0].login, "guest");
        assert!(!c.stomp.allow_anonymous);
        let c = Config::load(None, env(&[("SWITCHBOARD_STOMP__TCP_LISTEN", "")])).unwrap();
        assert_eq!(c.stomp.tcp_address().unwrap(), None);
        assert!(Config::load(None, env(&[("SWITCHBOARD_STOMP__TCP_LISTEN", "nope")])).is_err());
    }

    #[test]
    fn sockjs_section() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.sockjs.heartbeat_time_ms, 25_000);
        assert!(c.sockjs.websocket_enabled);
        let c = Config::load(
            None,
            env(&[
                ("SWITCHBOARD_SOCKJS__HEARTBEAT_TIME_MS", "1000"),
                ("SWITCHBOARD_SOCKJS__WEBSOCKET_ENABLED", "false"),
            ]),
        )
        .unwrap();
        assert_eq!(c.sockjs.heartbeat_time_ms, 1000);
        assert!(!c.sockjs.websocket_enabled);
        assert!(Config::load(None, env(&[("SWITCHBOARD_SOCKJS__NOPE", "1")])).is_err());
        assert_eq!(c.sockjs.services.len(), 3);

        let services = r#"[{prefix = "/echo", behaviour = "echo", websocket_enabled = false},
            {prefix = "/a/chat", behaviour = "chat"}]"#;
        let c = Config::load(None, env(&[("SWITCHBOARD_SOCKJS__SERVICES", services)])).unwrap();
        assert_eq!(c.sockjs.services.len(), 2);
        assert_eq!(c.sockjs.services[0].websocket_enabled, Some(false));
        assert_eq!(c.sockjs.services[1].behaviour, SockJsBehaviour::Chat);
        for bad in [
            r#"[{prefix = "/ws/x", behaviour = "echo"}]"#,
            r#"[{prefix = "/", behaviour = "echo"}]"#,
            r#"[{prefix = "/e/", behaviour = "echo"}]"#,
            r#"[{prefix = "/e", behaviour = "shout"}]"#,
            r#"[{prefix = "/e", behaviour = "echo"}, {prefix = "/e", behaviour = "close"}]"#,
            r#"[{prefix = "/e", behaviour = "echo"}, {prefix = "/e/f", behaviour = "close"}]"#,
        ] {
            assert!(
                Config::load(None, env(&[("SWITCHBOARD_SOCKJS__SERVICES", bad)])).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn tls_section() {
        let data = |f: &str| format!("{}/../../tests/data/tls/{f}", env!("CARGO_MANIFEST_DIR"));
        let c = Config::load(None, env(&[])).unwrap();
        assert!(!c.tls.enabled() && !c.stomp.tcp_tls);
        let cert = data("cert.pem");
        for key in ["key.pem", "key-sec1.pem"] {
            let key = data(key);
            let c = Config::load(
                None,
                env(&[
                    ("SWITCHBOARD_TLS__CERT_FILE", &cert),
                    ("SWITCHBOARD_TLS__KEY_FILE", &key),
                    ("SWITCHBOARD_STOMP__TCP_TLS", "true"),
                ]),
            )
            .unwrap();
            assert!(c.tls.enabled() && c.stomp.tcp_tls);
            let acceptor = crate::tls::acceptor(&c.tls).unwrap().unwrap();
            assert_eq!(acceptor.config().alpn_protocols, vec![b"http/1.1".to_vec()]);
            assert!(crate::tls::without_alpn(&acceptor)
                .config()
                .alpn_protocols
                .is_empty());
        }
        // Empty paths are unset.
        let c = Config::load(
            None,
            env(&[
                ("SWITCHBOARD_TLS__CERT_FILE", ""),
                ("SWITCHBOARD_TLS__KEY_FILE", ""),
            ]),
        )
        .unwrap();
        assert!(!c.tls.enabled());
        let err = |pairs: &[(&str, &str)]| Config::load(None, env(pairs)).unwrap_err().0;
        let missing = data("missing.pem");
        let e = err(&[
            ("SWITCHBOARD_TLS__CERT_FILE", &missing),
            ("SWITCHBOARD_TLS__KEY_FILE", &data("key.pem")),
        ]);
        assert!(
            e.starts_with("tls.cert_file ") && e.contains("missing.pem"),
            "{e}"
        );
        let e = err(&[
            ("SWITCHBOARD_TLS__CERT_FILE", &cert),
            ("SWITCHBOARD_TLS__KEY_FILE", &data("other-key.pem")),
        ]);
        assert!(e.starts_with("[tls] cert_file"), "{e}");
        let e = err(&[("SWITCHBOARD_TLS__KEY_FILE", &cert)]);
        assert_eq!(e, "tls.key_file is set but tls.cert_file is not");
        assert!(err(&[("SWITCHBOARD_TLS__NOPE", "1")]).contains("nope"));
        let e = err(&[("SWITCHBOARD_STOMP__TCP_TLS", "true")]);
        assert!(e.contains("stomp.tcp_tls"), "{e}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        assert!(Config::load(None, env(&[("SWITCHBOARD_WEBSOCKET__NOPE", "1")])).is_err());
        // Not one of ours: ignored.
        assert!(Config::load(None, env(&[("SWITCHBOARD_BIN", "/x")])).is_ok());
        assert!(Config::load(None, env(&[("SWITCHBOARD_LISTEN", "not an address")])).is_err());
    }
}
