//! Errors returned by hub operations ([`HubError`]) and topic-name
//! validation ([`validate_topic`]).

use std::fmt;

/// Maximum length of a topic name in bytes.
pub const MAX_TOPIC_LEN: usize = 256;

/// Error returned by hub operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HubError {
    /// The topic name is empty, longer than [`MAX_TOPIC_LEN`] bytes, or
    /// contains control characters.
    InvalidTopic,
    /// The authorize hook denied the action.
    Forbidden,
}

impl fmt::Display for HubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HubError::InvalidTopic => f.write_str("invalid topic name"),
            HubError::Forbidden => f.write_str("forbidden"),
        }
    }
}

impl std::error::Error for HubError {}

/// Checks a topic name: 1..=256 bytes and no control characters
/// (`char::is_control`: C0, DEL and C1).
pub fn validate_topic(topic: &str) -> Result<(), HubError> {
    if topic.is_empty() || topic.len() > MAX_TOPIC_LEN || topic.chars().any(char::is_control) {
        Err(HubError::InvalidTopic)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_validation() {
        assert!(validate_topic("chat/room-1").is_ok());
        assert!(validate_topic("é").is_ok());
        assert!(validate_topic(&"a".repeat(256)).is_ok());
        assert_eq!(validate_topic(""), Err(HubError::InvalidTopic));
        assert_eq!(
            validate_topic(&"a".repeat(257)),
            Err(HubError::InvalidTopic)
        );
        assert_eq!(validate_topic("a\nb"), Err(HubError::InvalidTopic));
        assert_eq!(validate_topic("a\u{7f}"), Err(HubError::InvalidTopic));
        assert_eq!(validate_topic("a\u{85}"), Err(HubError::InvalidTopic));
    }
}
