//! [`Deadline`]: an optional [`Instant`] in 8 bytes instead of 16, for
//! state every idle session holds (its heartbeat timers).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// An optional instant in 8 bytes (an `Option<Instant>` takes 16):
/// signed nanoseconds from a process-wide origin (the first instant ever
/// stored), `i64::MAX` for none. Exact, converting both ways, within ±292
/// years of the origin; reads no clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadline(i64);

static ORIGIN: OnceLock<Instant> = OnceLock::new();

impl Deadline {
    /// No deadline.
    pub const NONE: Deadline = Deadline(i64::MAX);

    /// `at`, or none.
    pub fn new(at: Option<Instant>) -> Self {
        let Some(at) = at else {
            return Deadline::NONE;
        };
        let origin = *ORIGIN.get_or_init(|| at);
        let nanos = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX - 1);
        match at.checked_duration_since(origin) {
            Some(after) => Deadline(nanos(after)),
            None => Deadline(-nanos(origin.duration_since(at))),
        }
    }

    /// The instant, if any.
    pub fn get(self) -> Option<Instant> {
        if self == Deadline::NONE {
            return None;
        }
        // Set by `new` before any deadline other than `NONE` exists.
        let origin = *ORIGIN.get()?;
        let offset = Duration::from_nanos(self.0.unsigned_abs());
        if self.0 >= 0 {
            origin.checked_add(offset)
        } else {
            origin.checked_sub(offset)
        }
    }

    /// Whether `t` comes before this deadline (always, when there is none).
    pub fn is_after(self, t: Instant) -> bool {
        self == Deadline::NONE || Deadline::new(Some(t)).0 < self.0
    }
}

impl Default for Deadline {
    fn default() -> Self {
        Deadline::NONE
    }
}

impl From<Option<Instant>> for Deadline {
    fn from(at: Option<Instant>) -> Self {
        Deadline::new(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eight_bytes_that_convert_and_compare_as_the_instants_do() {
        assert_eq!(std::mem::size_of::<Deadline>(), 8);
        // Whatever instant became the origin (tests share it), on either
        // side of it.
        let base = Instant::now();
        let instants = [
            base,
            base + Duration::from_nanos(1),
            base + Duration::from_secs(3600),
            base.checked_sub(Duration::from_millis(5)).unwrap_or(base),
        ];
        for t in instants {
            let d = Deadline::new(Some(t));
            assert_eq!(d.get(), Some(t));
            assert!(d.is_after(t - Duration::from_nanos(1)));
            assert!(!d.is_after(t));
            assert!(!d.is_after(t + Duration::from_nanos(1)));
            for u in instants {
                assert_eq!(Deadline::new(Some(u)).0 < d.0, u < t);
            }
        }
        assert_eq!(Deadline::new(None), Deadline::NONE);
        assert_eq!(Deadline::NONE.get(), None);
        assert!(Deadline::NONE.is_after(base + Duration::from_secs(86_400 * 365)));
    }
}
