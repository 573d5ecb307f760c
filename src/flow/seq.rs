//! TCP sequence numbers (RFC 9293 3.4): 32-bit, compared modulo 2^32.
//! Unlike smoltcp's, nothing here panics: a passive observer must survive
//! any garbage a capture holds.

/// Signed distance `a - b` in sequence space. Positive when `a` is after `b`.
#[inline]
pub fn diff(a: u32, b: u32) -> i64 {
    a.wrapping_sub(b) as i32 as i64
}

/// `a` strictly after `b`.
#[inline]
pub fn after(a: u32, b: u32) -> bool {
    diff(a, b) > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_across_wraparound() {
        assert_eq!(diff(5, 0xffff_fffb), 10);
        assert_eq!(diff(0xffff_fffb, 5), -10);
        assert!(after(3, u32::MAX));
        assert!(!after(u32::MAX, 3));
        assert_eq!(diff(100, 100), 0);
    }
}
