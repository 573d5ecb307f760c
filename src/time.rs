//! Capture time. The engine never reads a clock: every timestamp comes from a
//! packet header, so offline analysis of a 60 s idle close is instant and
//! deterministic.

use std::fmt;

pub use crate::cli::TimeFormat;

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

    /// Time of day in local time (the TZ environment's zone), as text
    /// lines write it by default: `HH:MM:SS.ffffff` ([`Stamp`] with
    /// [`TimeFormat::Time`], tcpdump's default). The dashboard's clock.
    pub fn time_of_day(self) -> Stamp {
        Stamp { ts: self, format: TimeFormat::Time, prev: None, first: None }
    }
}

/// A text line's time, as the `-t` family says (tcpdump's `ts_format`):
/// the one place text output formats a time. `prev` is the previous
/// line's time (`-ttt`), `first` the first line's (`-ttttt`). Local time
/// is the TZ environment's, as tcpdump's (`TZ=UTC wstap ...` for UTC).
#[derive(Debug, Clone, Copy)]
pub struct Stamp {
    pub ts: Ts,
    pub format: TimeFormat,
    pub prev: Option<Ts>,
    pub first: Option<Ts>,
}

impl Stamp {
    /// Whether anything is written (`-t` writes no time, and no space).
    pub fn shown(&self) -> bool {
        self.format != TimeFormat::None
    }
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.ts.0;
        let frac = us.rem_euclid(1_000_000);
        let secs = us.div_euclid(1_000_000);
        match self.format {
            TimeFormat::None => Ok(()),
            TimeFormat::Epoch => write!(f, "{secs}.{frac:06}"),
            TimeFormat::Delta => Delta(us.saturating_sub(self.prev.unwrap_or(self.ts).0)).fmt(f),
            TimeFormat::SinceFirst => Delta(us.saturating_sub(self.first.unwrap_or(self.ts).0)).fmt(f),
            TimeFormat::Time => {
                let t = Local::at(secs);
                write!(f, "{:02}:{:02}:{:02}.{frac:06}", t.hour, t.min, t.sec)
            }
            TimeFormat::Date => {
                let t = Local::at(secs);
                write!(f, "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{frac:06}", t.year, t.mon, t.day, t.hour, t.min, t.sec)
            }
            TimeFormat::Iso => {
                let t = Local::at(secs);
                let (sign, off) = if t.offset < 0 { ('-', -t.offset) } else { ('+', t.offset) };
                write!(
                    f,
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{frac:06}{sign}{:02}:{:02}",
                    t.year,
                    t.mon,
                    t.day,
                    t.hour,
                    t.min,
                    t.sec,
                    off / 3600,
                    (off / 60) % 60
                )
            }
        }
    }
}

/// A time difference as tcpdump's `-ttt` prints it: `HH:MM:SS.ffffff`
/// (hours not wrapped; `-` before a negative one, a record written out of
/// time order).
struct Delta(i64);

impl fmt::Display for Delta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let us = self.0.unsigned_abs();
        let s = us / 1_000_000;
        write!(f, "{sign}{:02}:{:02}:{:02}.{:06}", s / 3600, (s / 60) % 60, s % 60, us % 1_000_000)
    }
}

/// A moment in local time (the TZ environment's zone).
struct Local {
    year: i64,
    mon: u32,
    day: u32,
    hour: u32,
    min: u32,
    sec: u32,
    /// Seconds east of UTC.
    offset: i64,
}

impl Local {
    fn at(secs: i64) -> Local {
        // SAFETY: localtime_r writes only into `tm`, plain data zeroed
        // before use; a time it cannot represent returns null.
        let tm = unsafe {
            let t = secs as libc::time_t;
            let mut tm: libc::tm = std::mem::zeroed();
            if libc::localtime_r(&t, &mut tm).is_null() {
                return Local::utc(secs);
            }
            tm
        };
        Local {
            year: tm.tm_year as i64 + 1900,
            mon: tm.tm_mon as u32 + 1,
            day: tm.tm_mday as u32,
            hour: tm.tm_hour as u32,
            min: tm.tm_min as u32,
            sec: tm.tm_sec as u32,
            offset: tm.tm_gmtoff as i64,
        }
    }

    /// UTC, by the civil-from-days algorithm (for times localtime refuses).
    fn utc(secs: i64) -> Local {
        let days = secs.div_euclid(86_400);
        let s = secs.rem_euclid(86_400) as u32;
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let mon = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(mon <= 2);
        Local { year, mon, day, hour: s / 3600, min: (s / 60) % 60, sec: s % 60, offset: 0 }
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

/// Pins the process's zone to UTC for unit tests that format local
/// times: every caller sets the same value (tests run in threads of one
/// process).
#[cfg(test)]
pub(crate) fn pin_utc() {
    // SAFETY: tests that read local time all set the same value first.
    unsafe { std::env::set_var("TZ", "UTC") };
    unsafe extern "C" {
        fn tzset();
    }
    // SAFETY: tzset re-reads TZ; no other thread sets another value.
    unsafe { tzset() };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(us: i64, format: TimeFormat) -> String {
        Stamp { ts: Ts(us), format, prev: Some(Ts(us - 20)), first: Some(Ts(us - 3_723_000_001)) }.to_string()
    }

    #[test]
    fn stamps_as_the_t_family() {
        pin_utc();
        let us = 1_700_000_000_000_042;
        assert_eq!(stamp(us, TimeFormat::Time), "22:13:20.000042");
        assert_eq!(stamp(us, TimeFormat::None), "");
        assert_eq!(stamp(us, TimeFormat::Epoch), "1700000000.000042");
        assert_eq!(stamp(us, TimeFormat::Delta), "00:00:00.000020");
        assert_eq!(stamp(us, TimeFormat::Date), "2023-11-14 22:13:20.000042");
        assert_eq!(stamp(us, TimeFormat::SinceFirst), "01:02:03.000001");
        assert_eq!(stamp(us, TimeFormat::Iso), "2023-11-14T22:13:20.000042+00:00");
        // Before 1970, and a negative delta (a record written early).
        assert_eq!(stamp(-1, TimeFormat::Epoch), "-1.999999");
        let back = Stamp { ts: Ts(10), format: TimeFormat::Delta, prev: Some(Ts(2_000_010)), first: None };
        assert_eq!(back.to_string(), "-00:00:02.000000");
        // The civil calendar agrees with localtime's UTC.
        for secs in [0, 951_782_400, 1_700_000_000, 4_102_444_800, -86_400 * 365] {
            let (a, b) = (Local::utc(secs), Local::at(secs));
            assert_eq!((a.year, a.mon, a.day, a.hour, a.min, a.sec), (b.year, b.mon, b.day, b.hour, b.min, b.sec));
        }
    }

    #[test]
    fn time_of_day_formats_like_tcpdump() {
        pin_utc();
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
