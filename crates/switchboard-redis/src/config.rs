//! [`RedisConfig`]: where Redis is, the channel prefix, the bounds of the
//! outgoing queue and the reconnect and health-check timings. It deserializes
//! as the server's `[redis]` section; checking it is [`RedisConfig::validate`].

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::error::Error;

/// Configuration of a [`RedisBackplane`](crate::RedisBackplane); every field
/// has a default, so `[redis]` with only `url` is enough.
///
/// ```
/// use switchboard_redis::RedisConfig;
///
/// let config: RedisConfig = toml::from_str(r#"
///     url = "redis://10.0.0.5:6379"
///     prefix = "chat-prod"
/// "#).unwrap();
/// assert_eq!(config.max_queued_messages, 10_000);
/// assert_eq!(config.channel("room-1"), "chat-prod:t:room-1");
/// ```
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// Redis URL: `redis://[[user]:password@]host[:port][/db]` or
    /// `redis+unix:///path/to/socket`. (`rediss://` needs TLS, which this
    /// crate does not compile in.) Pub/sub channels are shared by all
    /// databases, so the `/db` part does not separate clusters: `prefix`
    /// does. Default `redis://127.0.0.1:6379`.
    pub url: String,
    /// Channel prefix: topic `t` travels on the Redis channel
    /// `{prefix}:t:{t}`. Every node of a cluster must use the same prefix;
    /// different prefixes keep clusters apart on one Redis. Default
    /// `switchboard`.
    pub prefix: String,
    /// Publications waiting to be sent to Redis, at most (while Redis is slow
    /// or unreachable); beyond that they are dropped and counted in
    /// [`BackplaneStats::dropped`](crate::BackplaneStats::dropped). Local
    /// delivery is never affected. Default 10,000.
    pub max_queued_messages: usize,
    /// Bytes (payload, topic, sender and header) waiting to be sent, at
    /// most; a single publication larger than this is still accepted into
    /// an empty queue. Default 16 MiB.
    pub max_queued_bytes: usize,
    /// First delay before reconnecting to Redis, in milliseconds; it doubles
    /// after each failed attempt up to `reconnect_max_ms` (each delay is
    /// jittered down by up to half). Default 100.
    pub reconnect_min_ms: u64,
    /// Longest delay between two reconnect attempts, in milliseconds.
    /// Default 5,000.
    pub reconnect_max_ms: u64,
    /// Milliseconds an idle connection waits before it sends a `PING`, so
    /// that a dead peer is noticed even without traffic; 0 disables.
    /// Default 5,000.
    pub ping_interval_ms: u64,
    /// Milliseconds to wait for a connection, or for Redis to answer a
    /// command (`PUBLISH` batch, `SUBSCRIBE`, `PING`), before the connection
    /// is considered lost. Default 5,000.
    pub command_timeout_ms: u64,
    /// Redis numbers every publication of a topic for the whole cluster and
    /// keeps the topic's last `history_size` publications (the hub's
    /// setting) in a stream, so that every node delivers the same messages
    /// in the same order with the same `seq`, and a client catches up
    /// (`since`) on any node, e.g. after its node died. Publications then
    /// reach local subscribers through Redis too (one round trip more), and
    /// none are delivered while Redis is unreachable (they wait in the
    /// bounded queue). `false`: each node numbers and delivers its own
    /// publications at once, history stays per node. Default `true`.
    pub shared_history: bool,
    /// Seconds a topic's shared numbering and history are kept after its
    /// last publication; 0 keeps them until Redis evicts them. When they
    /// expire, the topic's numbering starts again (a client's old `since`
    /// is then not recovered). Default 86,400 (a day).
    pub history_ttl_secs: u64,
    /// Milliseconds a node's report of a topic's subscribers is valid; it
    /// reports again every third of it. A node that died is forgotten (its
    /// subscribers leave the cluster's presence) within 4/3 of this.
    /// Default 15,000.
    pub presence_ttl_ms: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: "redis://127.0.0.1:6379".into(),
            prefix: "switchboard".into(),
            max_queued_messages: 10_000,
            max_queued_bytes: 16 * 1024 * 1024,
            reconnect_min_ms: 100,
            reconnect_max_ms: 5_000,
            ping_interval_ms: 5_000,
            command_timeout_ms: 5_000,
            shared_history: true,
            history_ttl_secs: 86_400,
            presence_ttl_ms: 15_000,
        }
    }
}

impl RedisConfig {
    /// A default configuration for the Redis at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            ..RedisConfig::default()
        }
    }

    /// The Redis channel that carries `topic`: `{prefix}:t:{topic}`.
    pub fn channel(&self, topic: &str) -> String {
        format!("{}{topic}", self.channel_prefix())
    }

    /// What every channel name starts with: `{prefix}:t:`.
    pub(crate) fn channel_prefix(&self) -> String {
        format!("{}:t:", self.prefix)
    }

    /// Checks the values (the URL is parsed but not connected to).
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |what: String| Err(Error::Config(what));
        if let Err(e) = redis::Client::open(self.url.as_str()) {
            return bad(format!("url {:?}: {e}", redact(&self.url)));
        }
        if self.prefix.is_empty() || self.prefix.chars().any(char::is_control) {
            return bad("prefix must be non-empty, without control characters".into());
        }
        if self.max_queued_messages == 0 || self.max_queued_bytes == 0 {
            return bad("max_queued_messages and max_queued_bytes must be positive".into());
        }
        if self.reconnect_min_ms == 0 || self.reconnect_min_ms > self.reconnect_max_ms {
            return bad("reconnect_min_ms must be positive and at most reconnect_max_ms".into());
        }
        if self.command_timeout_ms == 0 {
            return bad("command_timeout_ms must be positive".into());
        }
        if self.presence_ttl_ms < 30 {
            return bad("presence_ttl_ms must be at least 30".into());
        }
        Ok(())
    }

    /// Connection settings: `command_timeout` to connect and for each reply.
    pub(crate) fn connection(&self) -> redis::AsyncConnectionConfig {
        let timeout = Some(self.command_timeout());
        redis::AsyncConnectionConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout)
    }

    /// How long a presence report is valid.
    pub(crate) fn presence_ttl(&self) -> Duration {
        Duration::from_millis(self.presence_ttl_ms)
    }

    /// How often a node reports its presence again.
    pub(crate) fn presence_refresh(&self) -> Duration {
        Duration::from_millis(self.presence_ttl_ms / 3)
    }

    pub(crate) fn reconnect_min(&self) -> Duration {
        Duration::from_millis(self.reconnect_min_ms)
    }

    pub(crate) fn reconnect_max(&self) -> Duration {
        Duration::from_millis(self.reconnect_max_ms)
    }

    pub(crate) fn ping_interval(&self) -> Option<Duration> {
        (self.ping_interval_ms > 0).then(|| Duration::from_millis(self.ping_interval_ms))
    }

    pub(crate) fn command_timeout(&self) -> Duration {
        Duration::from_millis(self.command_timeout_ms)
    }
}

/// `Debug` hides the password of the URL.
impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact(&self.url))
            .field("prefix", &self.prefix)
            .field("max_queued_messages", &self.max_queued_messages)
            .field("max_queued_bytes", &self.max_queued_bytes)
            .field("reconnect_min_ms", &self.reconnect_min_ms)
            .field("reconnect_max_ms", &self.reconnect_max_ms)
            .field("ping_interval_ms", &self.ping_interval_ms)
            .field("command_timeout_ms", &self.command_timeout_ms)
            .field("shared_history", &self.shared_history)
            .field("history_ttl_secs", &self.history_ttl_secs)
            .field("presence_ttl_ms", &self.presence_ttl_ms)
            .finish()
    }
}

/// `url` with the password of its user-info part (if any) replaced by `***`.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***{}", &rest[at..])
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_unknown_fields() {
        let c: RedisConfig = toml::from_str("").unwrap();
        assert_eq!(c, RedisConfig::default());
        assert!(c.validate().is_ok());
        assert_eq!(c.channel("a b/é"), "switchboard:t:a b/é");
        let err = toml::from_str::<RedisConfig>("urll = \"redis://x\"").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[test]
    fn validation() {
        let ok = RedisConfig::default();
        for bad in [
            RedisConfig {
                url: "http://nope".into(),
                ..ok.clone()
            },
            RedisConfig {
                prefix: String::new(),
                ..ok.clone()
            },
            RedisConfig {
                max_queued_messages: 0,
                ..ok.clone()
            },
            RedisConfig {
                reconnect_min_ms: 10_000,
                ..ok.clone()
            },
            RedisConfig {
                command_timeout_ms: 0,
                ..ok.clone()
            },
        ] {
            assert!(matches!(bad.validate(), Err(Error::Config(_))), "{bad:?}");
        }
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redact("redis://user:secret@host:6379/0"),
            "redis://user:***@host:6379/0"
        );
        assert_eq!(redact("redis://:secret@host"), "redis://:***@host");
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
        let c = RedisConfig::new("redis://:hunter2@10.0.0.1");
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
