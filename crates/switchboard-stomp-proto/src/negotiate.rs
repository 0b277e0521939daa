//! CONNECT negotiation (STOMP 1.2 "Protocol Negotiation", "Heart-beating"):
//! picking the version from `accept-version`, combining the client's and
//! the server's `heart-beat`, and reading `host`, `login` and `passcode`.
//! Sending CONNECTED or ERROR is the session's job.

use std::time::Duration;

use crate::error::NegotiateError;
use crate::frame::Frame;
use crate::version::Version;

/// One side's `heart-beat` header: how often it can send and how often it
/// wants to receive. [`Duration::ZERO`] means "cannot" / "does not want".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeartBeat {
    /// Smallest interval at which this side can send heart-beats.
    pub send: Duration,
    /// Interval at which this side wants to receive heart-beats.
    pub receive: Duration,
}

impl HeartBeat {
    /// No heart-beating in either direction (`0,0`).
    pub const NONE: HeartBeat = HeartBeat {
        send: Duration::ZERO,
        receive: Duration::ZERO,
    };

    /// A `heart-beat` of `send_ms,receive_ms`.
    pub fn from_millis(send_ms: u64, receive_ms: u64) -> Self {
        HeartBeat {
            send: Duration::from_millis(send_ms),
            receive: Duration::from_millis(receive_ms),
        }
    }

    /// Parses a `heart-beat` header value (`"10000,10000"`). Spaces around
    /// the numbers are tolerated.
    ///
    /// ```
    /// use switchboard_stomp_proto::HeartBeat;
    /// assert_eq!(HeartBeat::parse("0,500").unwrap(), HeartBeat::from_millis(0, 500));
    /// assert!(HeartBeat::parse("500").is_err());
    /// ```
    pub fn parse(value: &str) -> Result<Self, NegotiateError> {
        let invalid = || NegotiateError::InvalidHeartBeat(value.to_owned());
        let (a, b) = value.split_once(',').ok_or_else(invalid)?;
        let ms = |s: &str| {
            let s = s.trim_matches(' ');
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse::<u64>().ok()
        };
        match (ms(a), ms(b)) {
            (Some(a), Some(b)) => Ok(HeartBeat::from_millis(a, b)),
            _ => Err(invalid()),
        }
    }

    /// The header value, `send_ms,receive_ms`.
    pub fn to_header(&self) -> String {
        format!("{},{}", self.send.as_millis(), self.receive.as_millis())
    }
}

/// The heart-beat intervals a connection runs with, seen from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeartBeatIntervals {
    /// Server → client: send an EOL when nothing was sent for this long.
    pub outgoing: Option<Duration>,
    /// Client → server: the client promised to send something at least
    /// this often.
    pub incoming: Option<Duration>,
}

/// Combines the client's `heart-beat: cx,cy` with the server's `sx,sy`.
///
/// Server → client runs every `max(sx, cy)` unless either is 0; client →
/// server every `max(cx, sy)` unless either is 0.
///
/// ```
/// use std::time::Duration;
/// use switchboard_stomp_proto::{negotiate_heart_beat, HeartBeat};
///
/// let hb = negotiate_heart_beat(HeartBeat::from_millis(4000, 1000), HeartBeat::from_millis(2000, 5000));
/// assert_eq!(hb.outgoing, Some(Duration::from_millis(2000)));
/// assert_eq!(hb.incoming, Some(Duration::from_millis(5000)));
/// ```
pub fn negotiate_heart_beat(client: HeartBeat, server: HeartBeat) -> HeartBeatIntervals {
    let combine = |a: Duration, b: Duration| {
        if a.is_zero() || b.is_zero() {
            None
        } else {
            Some(a.max(b))
        }
    };
    HeartBeatIntervals {
        outgoing: combine(server.send, client.receive),
        incoming: combine(client.send, server.receive),
    }
}

/// Picks the highest version in `accept_version` that is also in
/// `supported`. An absent header means 1.0.
///
/// ```
/// use switchboard_stomp_proto::{negotiate_version, Version};
/// assert_eq!(negotiate_version(Some("1.0,1.1,1.2"), &Version::ALL), Ok(Version::V1_2));
/// assert_eq!(negotiate_version(None, &Version::ALL), Ok(Version::V1_0));
/// assert!(negotiate_version(Some("2.0"), &Version::ALL).is_err());
/// ```
pub fn negotiate_version(
    accept_version: Option<&str>,
    supported: &[Version],
) -> Result<Version, NegotiateError> {
    let chosen = match accept_version {
        None => supported.contains(&Version::V1_0).then_some(Version::V1_0),
        Some(list) => list
            .split(',')
            .filter_map(|v| Version::parse(v.trim_matches(' ')))
            .filter(|v| supported.contains(v))
            .max(),
    };
    chosen.ok_or_else(|| {
        let mut supported = supported.to_vec();
        supported.sort();
        supported.dedup();
        NegotiateError::UnsupportedVersion {
            requested: accept_version.unwrap_or_default().to_owned(),
            supported,
        }
    })
}

/// What a CONNECT (or STOMP) frame asks for, after negotiation.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectParams {
    /// The negotiated version.
    pub version: Version,
    /// The client's `heart-beat` (0,0 when absent, and always in 1.0).
    pub client_heart_beat: HeartBeat,
    /// The negotiated heart-beat intervals.
    pub heart_beat: HeartBeatIntervals,
    /// The `host` header (virtual host).
    pub host: Option<String>,
    /// The `login` header.
    pub login: Option<String>,
    /// The `passcode` header.
    pub passcode: Option<String>,
}

impl std::fmt::Debug for ConnectParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectParams")
            .field("version", &self.version)
            .field("client_heart_beat", &self.client_heart_beat)
            .field("heart_beat", &self.heart_beat)
            .field("host", &self.host)
            .field("login", &self.login)
            .field("passcode", &self.passcode.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Negotiates a CONNECT/STOMP frame against the server's supported
/// versions and its own `heart-beat`. STOMP 1.0 has no heart-beats, so the
/// header is ignored when 1.0 is chosen.
///
/// ```
/// use switchboard_stomp_proto::{negotiate, Command, Frame, HeartBeat, Version};
///
/// let connect = Frame::new(Command::Connect)
///     .header("accept-version", "1.1,1.2")
///     .header("host", "/")
///     .header("heart-beat", "0,10000");
/// let params = negotiate(&connect, &Version::ALL, HeartBeat::from_millis(5000, 5000)).unwrap();
/// assert_eq!(params.version, Version::V1_2);
/// assert_eq!(params.heart_beat.outgoing.unwrap().as_millis(), 10000);
/// assert_eq!(params.heart_beat.incoming, None);
/// ```
pub fn negotiate(
    frame: &Frame,
    supported: &[Version],
    server_heart_beat: HeartBeat,
) -> Result<ConnectParams, NegotiateError> {
    let version = negotiate_version(frame.get("accept-version"), supported)?;
    let client_heart_beat = match (version, frame.get("heart-beat")) {
        (Version::V1_0, _) | (_, None) => HeartBeat::NONE,
        (_, Some(v)) => HeartBeat::parse(v)?,
    };
    Ok(ConnectParams {
        version,
        client_heart_beat,
        heart_beat: negotiate_heart_beat(client_heart_beat, server_heart_beat),
        host: frame.get("host").map(str::to_owned),
        login: frame.get("login").map(str::to_owned),
        passcode: frame.get("passcode").map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Command;

    fn ms(v: u64) -> Option<Duration> {
        Some(Duration::from_millis(v))
    }

    /// `(cx, cy, sx, sy)` and the expected `(outgoing, incoming)`.
    type Row = ((u64, u64, u64, u64), (Option<Duration>, Option<Duration>));

    #[test]
    fn heart_beat_table() {
        // outgoing = max(sx, cy), incoming = max(cx, sy), 0 disables
        let table: [Row; 9] = [
            ((0, 0, 0, 0), (None, None)),
            ((0, 0, 1000, 1000), (None, None)),
            ((1000, 1000, 0, 0), (None, None)),
            ((1000, 0, 0, 1000), (None, ms(1000))),
            ((0, 1000, 1000, 0), (ms(1000), None)),
            ((100, 200, 300, 400), (ms(300), ms(400))),
            ((500, 500, 100, 100), (ms(500), ms(500))),
            ((4000, 1000, 2000, 5000), (ms(2000), ms(5000))),
            ((10000, 10000, 10000, 10000), (ms(10000), ms(10000))),
        ];
        for ((cx, cy, sx, sy), (out, inc)) in table {
            let got = negotiate_heart_beat(
                HeartBeat::from_millis(cx, cy),
                HeartBeat::from_millis(sx, sy),
            );
            assert_eq!(
                (got.outgoing, got.incoming),
                (out, inc),
                "{cx},{cy} vs {sx},{sy}"
            );
        }
    }

    #[test]
    fn heart_beat_parse() {
        assert_eq!(
            HeartBeat::parse("10000,10000").unwrap(),
            HeartBeat::from_millis(10000, 10000)
        );
        assert_eq!(
            HeartBeat::parse(" 1 , 2 ").unwrap(),
            HeartBeat::from_millis(1, 2)
        );
        for bad in ["", "1", "1,", ",1", "a,b", "-1,0", "1,2,3", "1;2"] {
            assert_eq!(
                HeartBeat::parse(bad),
                Err(NegotiateError::InvalidHeartBeat(bad.into())),
                "{bad}"
            );
        }
        assert_eq!(HeartBeat::from_millis(5, 0).to_header(), "5,0");
    }

    #[test]
    fn version_table() {
        let all = &Version::ALL;
        let cases: [(Option<&str>, &[Version], Option<Version>); 10] = [
            (None, all, Some(Version::V1_0)),
            (Some("1.0"), all, Some(Version::V1_0)),
            (Some("1.1"), all, Some(Version::V1_1)),
            (Some("1.2"), all, Some(Version::V1_2)),
            (Some("1.0,1.1,1.2"), all, Some(Version::V1_2)),
            (Some("1.2,1.0"), all, Some(Version::V1_2)),
            (Some("1.1, 2.0"), all, Some(Version::V1_1)),
            (Some("1.2"), &[Version::V1_0, Version::V1_1], None),
            (None, &[Version::V1_1, Version::V1_2], None),
            (Some("2.0,3"), all, None),
        ];
        for (accept, supported, expected) in cases {
            assert_eq!(
                negotiate_version(accept, supported).ok(),
                expected,
                "{accept:?}"
            );
        }
    }

    #[test]
    fn unsupported_version_lists_supported() {
        let e = negotiate_version(Some("9.9"), &[Version::V1_2, Version::V1_1]).unwrap_err();
        assert_eq!(
            e,
            NegotiateError::UnsupportedVersion {
                requested: "9.9".into(),
                supported: vec![Version::V1_1, Version::V1_2],
            }
        );
    }

    #[test]
    fn connect_params() {
        let f = Frame::new(Command::Stomp)
            .header("accept-version", "1.2")
            .header("host", "vhost")
            .header("login", "guest")
            .header("passcode", "secret")
            .header("heart-beat", "1000,0");
        let p = negotiate(&f, &Version::ALL, HeartBeat::from_millis(0, 2000)).unwrap();
        assert_eq!(p.version, Version::V1_2);
        assert_eq!(p.host.as_deref(), Some("vhost"));
        assert_eq!(p.login.as_deref(), Some("guest"));
        assert_eq!(p.passcode.as_deref(), Some("secret"));
        assert_eq!(p.heart_beat.incoming, ms(2000));
        assert_eq!(p.heart_beat.outgoing, None);
        assert!(!format!("{p:?}").contains("secret"));
    }

    #[test]
    fn connect_1_0_ignores_heart_beat() {
        let f = Frame::new(Command::Connect).header("heart-beat", "garbage");
        let p = negotiate(&f, &Version::ALL, HeartBeat::from_millis(1000, 1000)).unwrap();
        assert_eq!(p.version, Version::V1_0);
        assert_eq!(p.heart_beat, HeartBeatIntervals::default());
    }

    #[test]
    fn connect_invalid_heart_beat() {
        let f = Frame::new(Command::Connect)
            .header("accept-version", "1.2")
            .header("heart-beat", "x");
        assert_eq!(
            negotiate(&f, &Version::ALL, HeartBeat::NONE),
            Err(NegotiateError::InvalidHeartBeat("x".into()))
        );
    }
}
