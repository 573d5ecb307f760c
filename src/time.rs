//! Capture time. The engine never reads a clock: every timestamp comes from a
//! packet header, so offline analysis of a 60 s idle close is instant and
//! deterministic.

use std::fmt;

/// A capture timestamp in microseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ts(pub i64);

impl Ts {
    pub const ZERO: Ts = Ts(0);

    pub fn from_timeval(sec: i64, usec: i64) -> Ts {
        Ts(sec.saturating_mul(1_000_000).saturating_add(usec))
    }

    pub fn from_secs_f64(s: f64) -> Ts {
        Ts((s * 1e6).round() as i64)
    }

    /// Seconds as a float, the unit of every time in the JSON contract.
    pub fn secs(self) -> f64 {
        self.0 as f64 / 1e6
    }

    /// `self - earlier` in seconds.
    pub fn since(self, earlier: Ts) -> f64 {
        (self.0 - earlier.0) as f64 / 1e6
    }

    /// `self - earlier` in milliseconds.
    pub fn millis_since(self, earlier: Ts) -> f64 {
        (self.0 - earlier.0) as f64 / 1e3
    }

    pub fn add_secs(self, s: f64) -> Ts {
        Ts(self.0 + (s * 1e6) as i64)
    }

    /// Time of day, `HH:MM:SS.ffffff` in UTC, as tcpdump prints it (tcpdump
    /// uses local time; capture hosts for proxies run in UTC often enough, and
    /// UTC keeps output identical on every machine).
    pub fn time_of_day(self) -> TimeOfDay {
        TimeOfDay(self)
    }
}

pub struct TimeOfDay(Ts);

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.0.0.rem_euclid(86_400_000_000);
        let s = us / 1_000_000;
        write!(f, "{:02}:{:02}:{:02}.{:06}", s / 3600, (s / 60) % 60, s % 60, us % 1_000_000)
    }
}

/// Rounds a float to microsecond precision for output, so JSON shows
/// `1700000000.123456` rather than binary noise.
pub fn round_us(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

/// Rounds to three decimals (milliseconds values in the contract).
pub fn round3(v: f64) -> f64 {
    (v * 1e3).round() / 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_of_day_formats_like_tcpdump() {
        let t = Ts::from_timeval(1_700_000_000, 42);
        assert_eq!(t.time_of_day().to_string(), "22:13:20.000042");
        assert_eq!(Ts(0).time_of_day().to_string(), "00:00:00.000000");
    }

    #[test]
    fn differences() {
        let a = Ts::from_timeval(10, 500_000);
        let b = Ts::from_timeval(70, 500_000);
        assert_eq!(b.since(a), 60.0);
        assert_eq!(b.millis_since(a), 60_000.0);
        assert_eq!(round_us(a.secs()), 10.5);
    }
}
