//! [`SocketIoClusterConfig`]: the timings of the Socket.IO cluster
//! (heartbeats, how long a silent node is still counted, how long a request
//! waits for the other nodes). Where Redis is and the reconnect timings are
//! the [`RedisConfig`](crate::RedisConfig)'s.

use std::time::Duration;

use serde::Deserialize;

use crate::error::Error;

/// Timings of a [`RedisSocketIoCluster`](crate::RedisSocketIoCluster); the
/// defaults are `@socket.io/redis-adapter`'s.
///
/// ```
/// use switchboard_redis::SocketIoClusterConfig;
///
/// let c: SocketIoClusterConfig = toml::from_str("heartbeat_interval_ms = 2000").unwrap();
/// assert_eq!(c.heartbeat_timeout_ms, 10_000);
/// assert!(c.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SocketIoClusterConfig {
    /// Every node says it is alive this often, in milliseconds. Default
    /// 5,000.
    pub heartbeat_interval_ms: u64,
    /// A node not heard from for this long is gone: requests stop waiting
    /// for it and its sockets are no longer fetched. More than
    /// `heartbeat_interval_ms`. Default 10,000.
    pub heartbeat_timeout_ms: u64,
    /// How long `fetch_cluster_sockets` waits for the other nodes' answers,
    /// and a broadcast with acks for their recipient lists (at most its own
    /// timeout), in milliseconds. Default 5,000.
    pub request_timeout_ms: u64,
}

impl Default for SocketIoClusterConfig {
    fn default() -> Self {
        SocketIoClusterConfig {
            heartbeat_interval_ms: 5_000,
            heartbeat_timeout_ms: 10_000,
            request_timeout_ms: 5_000,
        }
    }
}

impl SocketIoClusterConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |what: &str| Err(Error::Config(what.to_owned()));
        if self.heartbeat_interval_ms == 0 || self.request_timeout_ms == 0 {
            return bad("heartbeat_interval_ms and request_timeout_ms must be positive");
        }
        if self.heartbeat_timeout_ms <= self.heartbeat_interval_ms {
            return bad("heartbeat_timeout_ms must be more than heartbeat_interval_ms");
        }
        Ok(())
    }

    pub(crate) fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms)
    }

    pub(crate) fn heartbeat_timeout(&self) -> Duration {
        Duration::from_millis(self.heartbeat_timeout_ms)
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert!(SocketIoClusterConfig::default().validate().is_ok());
        for bad in [
            SocketIoClusterConfig {
                heartbeat_interval_ms: 0,
                ..Default::default()
            },
            SocketIoClusterConfig {
                heartbeat_timeout_ms: 5_000,
                ..Default::default()
            },
            SocketIoClusterConfig {
                request_timeout_ms: 0,
                ..Default::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        let err = toml::from_str::<SocketIoClusterConfig>("heartbeat = 1").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }
}
