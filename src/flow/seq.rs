//! TCP sequence space (RFC 9293 3.4): 32-bit numbers on a circle, compared
//! by the sign of their wrapping difference (RFC 1982's serial number
//! arithmetic). A [`Seq`] is a point on the circle; `a - b` is the signed
//! distance from `b` to `a` (an `i64` in `-2^31..2^31`), `a + n` moves `n`
//! bytes forward.
//!
//! Unlike smoltcp's `SeqNumber`, nothing here panics or asserts: a passive
//! observer reads whatever a capture holds, and a garbage sequence number
//! is a segment that is counted and skipped (a retransmission, data ahead
//! of a hole), never a crash. There is no `PartialOrd`: "after" on a circle
//! is not transitive, so the comparisons are spelled out
//! ([`Seq::after`], [`Seq::since`]) where they are meant.

use std::fmt;
use std::ops::{Add, Sub};

#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Seq(u32);

impl Seq {
    #[inline]
    pub const fn new(n: u32) -> Seq {
        Seq(n)
    }

    /// The number on the wire.
    #[inline]
    pub const fn get(self) -> u32 {
        self.0
    }

    /// Strictly after `other` (less than half the circle ahead of it).
    #[inline]
    pub fn after(self, other: Seq) -> bool {
        self - other > 0
    }

    /// Bytes from `start` up to `self`, when `self` is not before `start`;
    /// `None` when it is (a retransmission, or garbage).
    #[inline]
    pub fn since(self, start: Seq) -> Option<u32> {
        let d = self - start;
        (d >= 0).then_some(d as u32)
    }
}

/// `n` bytes further, around the circle.
impl Add<u32> for Seq {
    type Output = Seq;
    #[inline]
    fn add(self, n: u32) -> Seq {
        Seq(self.0.wrapping_add(n))
    }
}

/// The signed distance `self - other`: positive when `self` is after
/// `other`. Total: any two numbers have one, in `-2^31..2^31`.
impl Sub for Seq {
    type Output = i64;
    #[inline]
    fn sub(self, other: Seq) -> i64 {
        self.0.wrapping_sub(other.0) as i32 as i64
    }
}

impl From<u32> for Seq {
    #[inline]
    fn from(n: u32) -> Seq {
        Seq(n)
    }
}

impl fmt::Debug for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Seq({})", self.0)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Seq = Seq::new(u32::MAX);

    #[test]
    fn distance_across_the_wrap() {
        assert_eq!(Seq::new(5) - Seq::new(0xffff_fffb), 10);
        assert_eq!(Seq::new(0xffff_fffb) - Seq::new(5), -10);
        assert_eq!(Seq::new(100) - Seq::new(100), 0);
        assert_eq!(MAX + 1, Seq::new(0));
        assert_eq!(MAX + 6, Seq::new(5));
        assert_eq!((MAX + 6) - MAX, 6);
    }

    #[test]
    fn after_is_less_than_half_the_circle_ahead() {
        assert!(Seq::new(3).after(MAX));
        assert!(!MAX.after(Seq::new(3)));
        assert!(!Seq::new(7).after(Seq::new(7)));
        let a = Seq::new(0x1234_5678);
        assert!((a + 0x7fff_ffff).after(a), "just under half the circle: ahead");
        assert!(!(a + 0x8000_0000).after(a), "half the circle: behind (RFC 1982 leaves it undefined)");
        assert!(a.after(a + 0x8000_0001));
    }

    #[test]
    fn since_is_none_before_the_start() {
        let isn = Seq::new(u32::MAX - 2);
        assert_eq!((isn + 10).since(isn), Some(10));
        assert_eq!(isn.since(isn), Some(0));
        assert_eq!(isn.since(isn + 1), None);
        assert_eq!(Seq::new(0).since(Seq::new(0x8000_0000)), None, "garbage is not a long stream");
    }

    /// Every distance in a window across the wrap, from every start: the
    /// distance is what was added, in both directions, and nothing panics.
    #[test]
    fn arithmetic_holds_everywhere_around_2_pow_32() {
        for start in [0u32, 1, 0x7fff_ffff, 0x8000_0000, u32::MAX - 1000, u32::MAX] {
            let s = Seq::new(start);
            for n in (0..3000u32).chain([0x7fff_fffe, 0x7fff_ffff]) {
                assert_eq!((s + n) - s, n as i64, "{start} + {n}");
                assert_eq!(s - (s + n), -(n as i64), "{start} - {n}");
                assert_eq!((s + n).since(s), Some(n));
                assert_eq!(n > 0, (s + n).after(s));
            }
        }
        // Extremes of the difference: -2^31 and 2^31 - 1.
        assert_eq!(Seq::new(0) - Seq::new(0x8000_0000), i32::MIN as i64);
        assert_eq!(Seq::new(0x7fff_ffff) - Seq::new(0), i32::MAX as i64);
    }
}
