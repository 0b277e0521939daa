//! STOMP protocol versions (1.0, 1.1, 1.2) and their wire names.
//! Which version a connection speaks is decided in [`crate::negotiate()`].

use std::fmt;

/// A STOMP protocol version.
///
/// Versions are ordered, so `Version::V1_2 > Version::V1_0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// STOMP 1.0: no header escaping, no heart-beats, no NACK.
    V1_0,
    /// STOMP 1.1: escaping of `\n`, `:` and `\`; heart-beats; NACK.
    V1_1,
    /// STOMP 1.2: adds the `\r` escape, CRLF line ends and the `ack`/`id`
    /// acknowledgement scheme.
    V1_2,
}

impl Version {
    /// Every version this crate implements, lowest first.
    pub const ALL: [Version; 3] = [Version::V1_0, Version::V1_1, Version::V1_2];

    /// The wire name as used in `accept-version` and `version` headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V1_0 => "1.0",
            Version::V1_1 => "1.1",
            Version::V1_2 => "1.2",
        }
    }

    /// Parses a wire name (`"1.0"`, `"1.1"`, `"1.2"`).
    ///
    /// ```
    /// use switchboard_stomp_proto::Version;
    /// assert_eq!(Version::parse("1.2"), Some(Version::V1_2));
    /// assert_eq!(Version::parse("2.0"), None);
    /// ```
    pub fn parse(s: &str) -> Option<Version> {
        match s {
            "1.0" => Some(Version::V1_0),
            "1.1" => Some(Version::V1_1),
            "1.2" => Some(Version::V1_2),
            _ => None,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_order() {
        for v in Version::ALL {
            assert_eq!(Version::parse(v.as_str()), Some(v));
            assert_eq!(v.to_string(), v.as_str());
        }
        assert!(Version::V1_0 < Version::V1_1 && Version::V1_1 < Version::V1_2);
        assert_eq!(Version::parse("1.3"), None);
        assert_eq!(Version::parse(""), None);
    }
}
