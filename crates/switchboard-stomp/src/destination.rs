//! STOMP destination names and what they map to: `/topic/<name>` is hub
//! topic `<name>`, `/queue/<name>` is the broker's in-memory queue
//! `<name>`. Anything else is refused.

use std::fmt;

use switchboard_hub::validate_topic;

/// A parsed destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination<'a> {
    /// `/topic/<name>`: the hub topic `<name>` (shared with every protocol).
    Topic(&'a str),
    /// `/queue/<name>`: a point-to-point queue of this broker.
    Queue(&'a str),
}

/// Why a destination name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidDestination(pub String);

impl fmt::Display for InvalidDestination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown destination {:?}: use /topic/<name> or /queue/<name> \
             (1..=256 bytes, no control characters)",
            self.0
        )
    }
}

impl std::error::Error for InvalidDestination {}

impl<'a> Destination<'a> {
    /// Parses a `destination` header.
    ///
    /// ```
    /// use switchboard_stomp::Destination;
    /// assert_eq!(Destination::parse("/topic/chat"), Ok(Destination::Topic("chat")));
    /// assert_eq!(Destination::parse("/queue/jobs"), Ok(Destination::Queue("jobs")));
    /// assert!(Destination::parse("/exchange/x").is_err());
    /// assert!(Destination::parse("/topic/").is_err());
    /// ```
    pub fn parse(destination: &'a str) -> Result<Self, InvalidDestination> {
        let parsed = if let Some(name) = destination.strip_prefix("/topic/") {
            Destination::Topic(name)
        } else if let Some(name) = destination.strip_prefix("/queue/") {
            Destination::Queue(name)
        } else {
            return Err(InvalidDestination(destination.to_owned()));
        };
        match validate_topic(parsed.name()) {
            Ok(()) => Ok(parsed),
            Err(_) => Err(InvalidDestination(destination.to_owned())),
        }
    }

    /// The topic or queue name (without the prefix).
    pub fn name(&self) -> &'a str {
        match *self {
            Destination::Topic(n) | Destination::Queue(n) => n,
        }
    }
}
