//! Broker settings: [`StompConfig`] (protocol session limits, timeouts,
//! queue bounds, authentication and permissions).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::{Action, AllowAll, Authenticator, PermissionFn, Principal};

/// Configuration of a [`Broker`](crate::Broker).
#[derive(Clone)]
pub struct StompConfig {
    /// Protocol settings of each connection's session (frame limits,
    /// versions, the server's heart-beat, subscription and transaction
    /// limits).
    pub session: switchboard_stomp_proto::Config,
    /// A connection that has not sent CONNECT (or STOMP) within this time
    /// is closed. Default 10 s.
    pub connect_timeout: Duration,
    /// Messages a queue holds waiting for a consumer; a SEND beyond it is
    /// refused with an ERROR frame (the message is not queued). Messages
    /// handed to a consumer and awaiting its ACK do not count. Default 10,000.
    pub max_queue_length: usize,
    /// Queue messages in flight to one subscription: handed to it and not
    /// yet acknowledged (`client` modes) or not yet written (`auto`). A
    /// subscription at the limit is skipped by the round robin until it
    /// acknowledges. Default 1,000.
    pub max_in_flight: usize,
    /// Output not yet accepted by the socket above which a connection stops
    /// reading frames and taking deliveries. Default 256 KiB.
    pub output_high_water: usize,
    /// Checks CONNECT credentials. Default [`AllowAll`]. The `host` header
    /// is passed along; with the default every host is accepted.
    pub authenticator: Arc<dyn Authenticator>,
    /// Per-destination permission hook; `None` allows everything.
    pub permission: Option<PermissionFn>,
}

impl Default for StompConfig {
    fn default() -> Self {
        StompConfig {
            session: switchboard_stomp_proto::Config::default(),
            connect_timeout: Duration::from_secs(10),
            max_queue_length: 10_000,
            max_in_flight: 1_000,
            output_high_water: 256 * 1024,
            authenticator: Arc::new(AllowAll),
            permission: None,
        }
    }
}

impl StompConfig {
    /// Sets the authenticator (builder style).
    pub fn with_authenticator(mut self, authenticator: impl Authenticator) -> Self {
        self.authenticator = Arc::new(authenticator);
        self
    }

    /// Sets the permission hook (builder style).
    pub fn with_permission(
        mut self,
        f: impl Fn(&Principal, &str, Action) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.permission = Some(Arc::new(f));
        self
    }
}

impl fmt::Debug for StompConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StompConfig")
            .field("session", &self.session)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_queue_length", &self.max_queue_length)
            .field("max_in_flight", &self.max_in_flight)
            .field("output_high_water", &self.output_high_water)
            .field("permission", &self.permission.as_ref().map(|_| "<fn>"))
            .finish_non_exhaustive()
    }
}
