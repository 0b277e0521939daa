//! Heart-beat timers of a connected session: when the next EOL must be sent
//! and when the peer has been silent for too long. Negotiating the intervals
//! is [`crate::negotiate_heart_beat`]'s job; acting on a deadline is the session's.

use std::time::{Duration, Instant};

use crate::negotiate::HeartBeatIntervals;

/// Both heart-beat deadlines, driven by the times passed in by the caller.
#[derive(Debug, Clone)]
pub(crate) struct HeartBeatTimers {
    outgoing: Option<Duration>,
    /// Incoming interval already multiplied by the grace factor.
    incoming: Option<Duration>,
    last_in: Instant,
    last_out: Instant,
}

impl HeartBeatTimers {
    pub(crate) fn new(intervals: HeartBeatIntervals, grace: f64, now: Instant) -> Self {
        HeartBeatTimers {
            outgoing: intervals.outgoing,
            incoming: intervals.incoming.map(|d| d.mul_f64(grace.max(1.0))),
            last_in: now,
            last_out: now,
        }
    }

    /// Something arrived from the peer.
    pub(crate) fn on_receive(&mut self, now: Instant) {
        self.last_in = self.last_in.max(now);
    }

    /// Something was handed to the transport for sending.
    pub(crate) fn on_send(&mut self, now: Instant) {
        self.last_out = self.last_out.max(now);
    }

    /// When an EOL must be sent if nothing else was.
    pub(crate) fn send_deadline(&self) -> Option<Instant> {
        self.outgoing.map(|d| self.last_out + d)
    }

    /// When the peer counts as dead if nothing arrives.
    pub(crate) fn receive_deadline(&self) -> Option<Instant> {
        self.incoming.map(|d| self.last_in + d)
    }

    /// The earlier of both deadlines.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        match (self.send_deadline(), self.receive_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_move_with_activity() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut t = HeartBeatTimers::new(
            HeartBeatIntervals {
                outgoing: Some(s),
                incoming: Some(2 * s),
            },
            1.5,
            t0,
        );
        assert_eq!(t.send_deadline(), Some(t0 + s));
        assert_eq!(t.receive_deadline(), Some(t0 + 3 * s));
        assert_eq!(t.next_deadline(), Some(t0 + s));
        t.on_send(t0 + s);
        t.on_receive(t0 + s);
        t.on_receive(t0); // time never goes back
        assert_eq!(t.send_deadline(), Some(t0 + 2 * s));
        assert_eq!(t.receive_deadline(), Some(t0 + 4 * s));
    }

    #[test]
    fn no_intervals_no_deadline() {
        let t = HeartBeatTimers::new(HeartBeatIntervals::default(), 1.5, Instant::now());
        assert_eq!(t.next_deadline(), None);
    }
}
