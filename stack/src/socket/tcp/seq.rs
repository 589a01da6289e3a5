//! TCP sequence numbers: 32-bit serial numbers compared modulo 2^32
//! (RFC 9293 3.4, RFC 1982).
//!
//! "The sequence number space ranges from 0 to 2^32 - 1. Since the space is
//! finite, all arithmetic dealing with sequence numbers must be performed
//! modulo 2^32" (RFC 9293 3.4). `a < b` means b lies less than 2^31 ahead of
//! a, which is only meaningful because a connection never has more than 2^31
//! bytes in flight or in its windows (RFC 7323 2.3 caps the scaled window at
//! 2^30 for this reason).
//!
//! The order is therefore not total: it is not transitive across distances
//! above 2^31, and two numbers exactly 2^31 apart are incomparable
//! (`partial_cmp` returns `None`, RFC 1982 3.2 leaves that case undefined).
//! There is deliberately no `Ord` and no `Sub<SeqNumber>`: use
//! [`SeqNumber::diff`] (signed) or [`SeqNumber::distance`] (clamped at 0).

use core::cmp::Ordering;
use core::fmt;
use core::ops::{Add, AddAssign, Sub, SubAssign};

#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNumber(pub u32);

impl SeqNumber {
    pub const fn wrapping_add(self, n: u32) -> SeqNumber {
        SeqNumber(self.0.wrapping_add(n))
    }

    pub const fn wrapping_sub(self, n: u32) -> SeqNumber {
        SeqNumber(self.0.wrapping_sub(n))
    }

    /// Signed distance `self - other`: positive if `self` is after `other`.
    /// Exactly 2^31 apart gives `i32::MIN` either way round.
    pub const fn diff(self, other: SeqNumber) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }

    /// Bytes from `from` up to `self`, or 0 if `self` is not after `from`.
    /// For "how much is acknowledged / in flight" computations, where a
    /// negative answer would be a peer's bogus number, not a count.
    pub const fn distance(self, from: SeqNumber) -> usize {
        let d = self.diff(from);
        if d > 0 {
            d as usize
        } else {
            0
        }
    }

    /// The later of the two (`self` if they are equal or incomparable).
    pub fn max(self, other: SeqNumber) -> SeqNumber {
        if other > self {
            other
        } else {
            self
        }
    }

    /// The earlier of the two (`self` if they are equal or incomparable).
    pub fn min(self, other: SeqNumber) -> SeqNumber {
        if other < self {
            other
        } else {
            self
        }
    }

    /// `start <= self < start + len`, modulo 2^32: the test RFC 9293 3.10.7.4
    /// writes as `RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND`. Correct for any
    /// `len` up to 2^32; `len == 0` contains nothing.
    pub const fn in_window(self, start: SeqNumber, len: usize) -> bool {
        let offset = self.0.wrapping_sub(start.0) as usize;
        offset < len
    }
}

/// Advance by `n` bytes (wrapping). `n` is a length inside one connection's
/// windows, so below 2^31; larger values wrap modulo 2^32 and are flagged in
/// debug builds as the logic error they are.
impl Add<usize> for SeqNumber {
    type Output = SeqNumber;
    fn add(self, n: usize) -> SeqNumber {
        debug_assert!(
            n <= i32::MAX as usize,
            "sequence offset {n} overflows the comparison window"
        );
        SeqNumber(self.0.wrapping_add(n as u32))
    }
}

impl Sub<usize> for SeqNumber {
    type Output = SeqNumber;
    fn sub(self, n: usize) -> SeqNumber {
        debug_assert!(
            n <= i32::MAX as usize,
            "sequence offset {n} overflows the comparison window"
        );
        SeqNumber(self.0.wrapping_sub(n as u32))
    }
}

impl AddAssign<usize> for SeqNumber {
    fn add_assign(&mut self, n: usize) {
        *self = *self + n;
    }
}

impl SubAssign<usize> for SeqNumber {
    fn sub_assign(&mut self, n: usize) {
        *self = *self - n;
    }
}

/// RFC 1982 3.2 comparison: `a < b` iff `b - a` (mod 2^32) is in
/// `1..2^31`; exactly 2^31 apart is `None`.
impl PartialOrd for SeqNumber {
    fn partial_cmp(&self, other: &SeqNumber) -> Option<Ordering> {
        match self.diff(*other) {
            0 => Some(Ordering::Equal),
            i32::MIN => None,
            d if d > 0 => Some(Ordering::Greater),
            _ => Some(Ordering::Less),
        }
    }
}

impl fmt::Display for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl From<u32> for SeqNumber {
    fn from(n: u32) -> SeqNumber {
        SeqNumber(n)
    }
}

impl From<SeqNumber> for u32 {
    fn from(n: SeqNumber) -> u32 {
        n.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HALF: u32 = 1 << 31;

    #[test]
    fn wraps_around_zero() {
        let a = SeqNumber(u32::MAX - 1);
        let b = a + 4;
        assert_eq!(b, SeqNumber(2));
        assert!(a < b);
        assert!(b > a);
        assert_eq!(b.diff(a), 4);
        assert_eq!(a.diff(b), -4);
        assert_eq!(b.distance(a), 4);
        assert_eq!(a.distance(b), 0);
        assert_eq!(b - 4, a);
        assert_eq!(a.max(b), b);
        assert_eq!(SeqNumber::min(a, b), a);
        let mut c = a;
        c += 10;
        c -= 3;
        assert_eq!(c, SeqNumber(5));
        assert_eq!(a.wrapping_add(2), SeqNumber(0));
        assert_eq!(SeqNumber(0).wrapping_sub(1), SeqNumber(u32::MAX));
    }

    #[test]
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    fn half_the_space_apart_is_incomparable() {
        let a = SeqNumber(7);
        let b = a.wrapping_add(HALF);
        assert_eq!(a.partial_cmp(&b), None);
        assert_eq!(b.partial_cmp(&a), None);
        assert!(!(a < b));
        assert!(!(b < a));
        assert!(!(a >= b));
        assert_ne!(a, b);
        assert_eq!(a.max(b), a);
        assert_eq!(b.max(a), b);
        assert_eq!(a.distance(b), 0);
        assert_eq!(b.distance(a), 0);
        // One less than half is still "after".
        assert!(a.wrapping_add(HALF - 1) > a);
        assert!(a.wrapping_add(HALF + 1) < a);
    }

    #[test]
    fn in_window_bounds() {
        let start = SeqNumber(u32::MAX - 9);
        assert!(start.in_window(start, 1));
        assert!(!start.in_window(start, 0));
        assert!((start + 19).in_window(start, 20));
        assert!(!(start + 20).in_window(start, 20));
        assert!(!(start - 1).in_window(start, 20));
        // The whole space.
        assert!((start - 1).in_window(start, 1 << 32));
    }

    #[test]
    fn prints_the_number() {
        assert_eq!(SeqNumber(42).to_string(), "42");
        assert_eq!(format!("{:?}", SeqNumber(42)), "42");
        assert_eq!(format!("{:>4}", SeqNumber(7)), "   7");
        assert_eq!(u32::from(SeqNumber::from(9)), 9);
    }

    proptest! {
        #[test]
        fn add_then_diff_is_identity(a: u32, n in 0usize..(HALF as usize)) {
            let a = SeqNumber(a);
            let b = a + n;
            prop_assert_eq!(b.diff(a), n as i32);
            prop_assert_eq!(b.distance(a), n);
            prop_assert_eq!(b - n, a);
            prop_assert_eq!(a.distance(b), 0);
        }

        #[test]
        fn order_agrees_with_offsets(a: u32, n in 1usize..(HALF as usize)) {
            let a = SeqNumber(a);
            let b = a + n;
            prop_assert!(b > a);
            prop_assert!(a < b);
            prop_assert!(a <= b);
            prop_assert!(b >= a);
            prop_assert_eq!(a.partial_cmp(&b), Some(Ordering::Less));
            prop_assert_eq!(a.max(b), b);
            prop_assert_eq!(b.max(a), b);
            prop_assert_eq!(a.min(b), a);
            prop_assert_eq!(b.min(a), a);
            prop_assert!(b.in_window(a, n + 1));
            prop_assert!(!b.in_window(a, n));
        }

        #[test]
        fn comparison_is_antisymmetric(a: u32, b: u32) {
            let (a, b) = (SeqNumber(a), SeqNumber(b));
            let ab = a.partial_cmp(&b);
            prop_assert_eq!(ab.map(Ordering::reverse), b.partial_cmp(&a));
            prop_assert_eq!(ab == Some(Ordering::Equal), a == b);
            prop_assert_eq!(a.diff(b).wrapping_neg(), b.diff(a));
        }
    }
}
