//! [`Error`]: what can go wrong when building or starting a
//! [`RedisBackplane`](crate::RedisBackplane). Faults of Redis itself are not
//! errors of the API: the backplane reconnects, counts and logs them.

use std::fmt;

/// Error from [`RedisBackplane::new`](crate::RedisBackplane::new) or
/// [`RedisBackplane::start`](crate::RedisBackplane::start).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid; the message names the field.
    Config(String),
    /// `start` was called outside a Tokio runtime.
    NoRuntime,
    /// `start` was called a second time.
    AlreadyStarted,
    /// A read from Redis (e.g. [`RedisBackplane::history`](crate::RedisBackplane::history))
    /// failed: Redis is unreachable or answered an error.
    Unavailable(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(what) => write!(f, "invalid redis configuration: {what}"),
            Error::NoRuntime => {
                f.write_str("the redis backplane must be started in a Tokio runtime")
            }
            Error::AlreadyStarted => f.write_str("the redis backplane was already started"),
            Error::Unavailable(e) => write!(f, "redis unavailable: {e}"),
        }
    }
}

impl std::error::Error for Error {}
