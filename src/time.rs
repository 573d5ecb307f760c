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

    /// `self - earlier` in seconds. Saturating, as is all arithmetic on
    /// `Ts`: a damaged pcapng can carry any 64-bit time.
    pub fn since(self, earlier: Ts) -> f64 {
        self.0.saturating_sub(earlier.0) as f64 / 1e6
    }

    /// `self - earlier` in milliseconds.
    pub fn millis_since(self, earlier: Ts) -> f64 {
        self.0.saturating_sub(earlier.0) as f64 / 1e3
    }

    pub fn add_secs(self, s: f64) -> Ts {
        Ts(self.0.saturating_add((s * 1e6) as i64))
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

    /// Fuzz crash (pipeline target, minimised input `fd ff ff`): one
    /// packet stamped `i64::MAX` overflowed `add_secs` in the flow
    /// table's expiry; a packet at `i64::MIN` then one at 0 overflowed
    /// `since`.
    #[test]
    fn extreme_timestamps_saturate() {
        assert_eq!(Ts(i64::MAX).add_secs(10.0), Ts(i64::MAX));
        assert_eq!(Ts(i64::MIN).add_secs(-10.0), Ts(i64::MIN));
        assert_eq!(Ts(i64::MAX).since(Ts(i64::MIN)), i64::MAX as f64 / 1e6);
        assert_eq!(Ts(i64::MIN).millis_since(Ts(i64::MAX)), i64::MIN as f64 / 1e3);
        let args = crate::cli::Args { read: Some("-".into()), verbose: 1, ..Default::default() };
        let mut p = crate::app::build_pipeline(&args).unwrap();
        let syn = crate::decode::ip::tests::ipv4_tcp([1, 1, 1, 1], 1, [2, 2, 2, 2], 80, 0, 0x02, b"");
        for ts in [i64::MIN, 0, i64::MAX] {
            p.packet(crate::decode::LinkType::NULL, Ts(ts), &[], 0);
            p.packet(crate::decode::LinkType::RAW, Ts(ts), &syn, 0);
        }
        let s = p.finish();
        assert_eq!(s.packets, 6);
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
