//! Which out-of-order byte ranges of a TCP receive stream have arrived.
//!
//! Offsets are relative to the in-order point (RCV.NXT): offset 0 is the
//! next byte the application would read once it arrives. The socket writes
//! an out-of-order segment's payload into the receive ring at its offset
//! ([`RingBuffer::write_unallocated`](super::RingBuffer::write_unallocated)),
//! records it here with [`Assembler::add`], and when the hole at the front
//! is filled moves the now contiguous bytes into the ring with
//! [`Assembler::remove_front`] and
//! [`RingBuffer::enqueue_unallocated`](super::RingBuffer::enqueue_unallocated).
//!
//! The number of separate ranges is bounded (`max_ranges`): a peer that
//! sends every other byte cannot make us track unboundedly many holes. A
//! segment that would need one range too many is refused
//! ([`TooManyRanges`]) and the socket drops it; it will be retransmitted.
//!
//! # SACK order
//!
//! RFC 2018 4: the first SACK block "MUST specify the contiguous block of
//! data containing the segment which triggered this ACK", and the others
//! should be the most recently reported ones. We keep, per range, a stamp of
//! the last [`add`](Assembler::add) that created, extended or repeated it
//! (merging takes the new stamp), and [`Assembler::sack_ranges`] lists
//! ranges newest first. That is what Linux does too: `tcp_sack_new_ofo_skb`
//! moves the block a segment lands in to the front of its SACK list.
//! A range's stamp is a u64 counter, so it cannot wrap in practice.

use std::fmt;

/// [`Assembler::add`] would need more separate ranges than allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyRanges;

impl fmt::Display for TooManyRanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("too many out-of-order ranges")
    }
}

impl std::error::Error for TooManyRanges {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    start: usize,
    end: usize,
    /// When an add last touched this range; unique among ranges.
    stamp: u64,
}

#[derive(Debug, Clone)]
pub struct Assembler {
    /// Sorted by start; disjoint, non-adjacent and non-empty.
    ranges: Vec<Range>,
    max_ranges: usize,
    next_stamp: u64,
}

impl Assembler {
    /// An empty assembler that tracks at most `max_ranges` separate ranges.
    /// It allocates nothing until the first range: most connections never
    /// see a segment out of order, and a half-open one (SYN-RECEIVED)
    /// should cost as little as it can (768 bytes for 32 ranges were a
    /// third of it).
    pub fn new(max_ranges: usize) -> Assembler {
        Assembler {
            ranges: Vec::new(),
            max_ranges,
            next_stamp: 0,
        }
    }

    pub fn max_ranges(&self) -> usize {
        self.max_ranges
    }

    /// Record `[offset, offset + len)` as received, merging it with the
    /// ranges it overlaps or touches. The end saturates at `usize::MAX`.
    /// An empty range changes nothing. If the result would need more than
    /// `max_ranges` separate ranges, nothing changes and the segment should
    /// be dropped.
    pub fn add(&mut self, offset: usize, len: usize) -> Result<(), TooManyRanges> {
        if len == 0 {
            return Ok(());
        }
        let end = offset.saturating_add(len);
        // Ranges i..j overlap or touch [offset, end). Both predicates hold on
        // a prefix of the sorted list, and the first implies the second, so
        // i <= j.
        let i = self.ranges.partition_point(|r| r.end < offset);
        let j = self.ranges.partition_point(|r| r.start <= end);
        if i == j {
            if self.ranges.len() >= self.max_ranges {
                return Err(TooManyRanges);
            }
            let stamp = self.stamp();
            self.ranges.insert(
                i,
                Range {
                    start: offset,
                    end,
                    stamp,
                },
            );
        } else {
            let stamp = self.stamp();
            let last_end = self.ranges.get(j - 1).map_or(end, |r| r.end);
            if let Some(first) = self.ranges.get_mut(i) {
                first.start = first.start.min(offset);
                first.end = end.max(last_end);
                first.stamp = stamp;
            }
            self.ranges.drain(i + 1..j);
        }
        Ok(())
    }

    fn stamp(&mut self) -> u64 {
        let stamp = self.next_stamp;
        self.next_stamp = self.next_stamp.wrapping_add(1);
        stamp
    }

    /// If data has arrived at offset 0, forget the range starting there and
    /// return its length, shifting everything else down by it: the caller
    /// enqueues that many bytes and advances RCV.NXT. Otherwise 0.
    pub fn remove_front(&mut self) -> usize {
        match self.ranges.first() {
            Some(first) if first.start == 0 => {
                let n = first.end;
                self.ranges.remove(0);
                for r in &mut self.ranges {
                    // Non-adjacent: every later range starts after n.
                    r.start -= n;
                    r.end -= n;
                }
                self.release_if_empty();
                n
            }
            _ => 0,
        }
    }

    /// The caller consumed `n` bytes in order (an in-order segment arrived):
    /// shift everything down by `n`. Ranges wholly below `n` disappear and a
    /// range straddling it is trimmed to start at 0, so a following
    /// [`remove_front`](Self::remove_front) picks it up.
    pub fn advance(&mut self, n: usize) {
        // Every in-order segment comes here; most find no ranges.
        if n == 0 || self.ranges.is_empty() {
            return;
        }
        self.ranges.retain_mut(|r| {
            if r.end <= n {
                return false;
            }
            r.start = r.start.saturating_sub(n);
            r.end -= n;
            true
        });
        self.release_if_empty();
    }

    /// The last hole filled: give the list's storage back, so that a
    /// connection keeps none once a reordering episode is over (it may
    /// have grown to `max_ranges`).
    fn release_if_empty(&mut self) {
        if self.ranges.is_empty() {
            self.ranges = Vec::new();
        }
    }

    /// The ranges as `(start, end)`, ascending.
    pub fn ranges(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.ranges.iter().map(|r| (r.start, r.end))
    }

    /// Up to `n` ranges as `(start, end)`, most recently added to first (RFC
    /// 2018 4; see the module docs). For SACK blocks, add RCV.NXT to both
    /// edges.
    pub fn sack_ranges(&self, n: usize) -> SackRanges<'_> {
        SackRanges {
            ranges: &self.ranges,
            below: None,
            left: n.min(self.ranges.len()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Number of separate ranges.
    pub fn range_count(&self) -> usize {
        self.ranges.len()
    }

    /// Bytes held in all ranges.
    pub fn total_bytes(&self) -> usize {
        self.ranges.iter().map(|r| r.end - r.start).sum()
    }

    /// Forget every range.
    pub fn clear(&mut self) {
        self.ranges = Vec::new();
    }
}

/// Iterator of [`Assembler::sack_ranges`]: each step picks the range with
/// the newest stamp older than the previous one, O(ranges) per step and no
/// allocation (a SACK option holds at most 4 blocks).
#[derive(Debug, Clone)]
pub struct SackRanges<'a> {
    ranges: &'a [Range],
    below: Option<u64>,
    left: usize,
}

impl Iterator for SackRanges<'_> {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        if self.left == 0 {
            return None;
        }
        let below = self.below;
        let r = self
            .ranges
            .iter()
            .filter(|r| below.is_none_or(|b| r.stamp < b))
            .max_by_key(|r| r.stamp)?;
        self.below = Some(r.stamp);
        self.left -= 1;
        Some((r.start, r.end))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ranges(a: &Assembler) -> Vec<(usize, usize)> {
        a.ranges().collect()
    }

    #[test]
    fn merges_overlapping_and_adjacent() {
        let mut a = Assembler::new(8);
        assert!(a.is_empty());
        a.add(10, 5).unwrap();
        a.add(20, 5).unwrap();
        assert_eq!(ranges(&a), vec![(10, 15), (20, 25)]);
        // Adjacent on the left of the second.
        a.add(17, 3).unwrap();
        assert_eq!(ranges(&a), vec![(10, 15), (17, 25)]);
        // Bridges both.
        a.add(15, 2).unwrap();
        assert_eq!(ranges(&a), vec![(10, 25)]);
        // Inside: no change.
        a.add(12, 3).unwrap();
        assert_eq!(ranges(&a), vec![(10, 25)]);
        // Covers and extends both ways.
        a.add(5, 30).unwrap();
        assert_eq!(ranges(&a), vec![(5, 35)]);
        assert_eq!(a.total_bytes(), 30);
        // Zero-length adds change nothing.
        a.add(0, 0).unwrap();
        assert_eq!(ranges(&a), vec![(5, 35)]);
    }

    #[test]
    fn remove_front_and_advance() {
        let mut a = Assembler::new(8);
        a.add(4, 4).unwrap();
        a.add(10, 2).unwrap();
        assert_eq!(a.remove_front(), 0);
        a.add(0, 4).unwrap();
        assert_eq!(a.remove_front(), 8);
        assert_eq!(ranges(&a), vec![(2, 4)]);
        assert_eq!(a.remove_front(), 0);
        // An in-order segment of 3 bytes: the range straddling 3 is trimmed.
        a.advance(3);
        assert_eq!(ranges(&a), vec![(0, 1)]);
        assert_eq!(a.remove_front(), 1);
        assert!(a.is_empty());
        a.add(5, 5).unwrap();
        a.advance(20);
        assert!(a.is_empty());
    }

    #[test]
    fn too_many_ranges_leaves_state_unchanged() {
        let mut a = Assembler::new(2);
        a.add(0, 1).unwrap();
        a.add(4, 1).unwrap();
        assert_eq!(a.add(8, 1), Err(TooManyRanges));
        assert_eq!(a.add(2, 1), Err(TooManyRanges));
        assert_eq!(ranges(&a), vec![(0, 1), (4, 5)]);
        // Merging still works at the limit.
        a.add(1, 3).unwrap();
        assert_eq!(ranges(&a), vec![(0, 5)]);
        a.add(8, 1).unwrap();
        assert_eq!(a.range_count(), 2);
        let mut none = Assembler::new(0);
        assert_eq!(none.add(0, 1), Err(TooManyRanges));
        assert_eq!(none.add(0, 0), Ok(()));
    }

    #[test]
    fn saturates_at_the_end_of_the_address_space() {
        let mut a = Assembler::new(4);
        a.add(usize::MAX - 1, 10).unwrap();
        assert_eq!(ranges(&a), vec![(usize::MAX - 1, usize::MAX)]);
        a.add(usize::MAX, 1).unwrap();
        assert_eq!(ranges(&a), vec![(usize::MAX - 1, usize::MAX)]);
        a.advance(usize::MAX);
        assert!(a.is_empty());
    }

    #[test]
    fn sack_order_is_most_recent_first() {
        let mut a = Assembler::new(8);
        a.add(10, 2).unwrap(); // A
        a.add(20, 2).unwrap(); // B
        a.add(30, 2).unwrap(); // C
        let order: Vec<_> = a.sack_ranges(4).collect();
        assert_eq!(order, vec![(30, 32), (20, 22), (10, 12)]);
        // A segment landing in A (even a duplicate) puts A first.
        a.add(10, 1).unwrap();
        let order: Vec<_> = a.sack_ranges(4).collect();
        assert_eq!(order, vec![(10, 12), (30, 32), (20, 22)]);
        // Extending B.
        a.add(22, 2).unwrap();
        assert_eq!(a.sack_ranges(2).collect::<Vec<_>>(), vec![(20, 24), (10, 12)]);
        // Merging A and B: the merged block is the newest.
        a.add(12, 8).unwrap();
        assert_eq!(a.sack_ranges(9).collect::<Vec<_>>(), vec![(10, 24), (30, 32)]);
        assert_eq!(a.sack_ranges(0).count(), 0);
        // Order survives shifting.
        a.advance(5);
        assert_eq!(a.sack_ranges(4).collect::<Vec<_>>(), vec![(5, 19), (25, 27)]);
    }

    /// Maximal runs of true in the bitmap.
    fn runs(bits: &[bool]) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < bits.len() {
            if bits[i] {
                let start = i;
                while i < bits.len() && bits[i] {
                    i += 1;
                }
                out.push((start, i));
            } else {
                i += 1;
            }
        }
        out
    }

    #[derive(Debug, Clone)]
    enum Op {
        Add(usize, usize),
        RemoveFront,
        Advance(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0usize..96, 0usize..24).prop_map(|(o, l)| Op::Add(o, l)),
            1 => Just(Op::RemoveFront),
            1 => (0usize..32).prop_map(Op::Advance),
        ]
    }

    const MODEL_LEN: usize = 128;

    proptest! {
        #[test]
        fn matches_bitmap_model(max_ranges in 0usize..8, ops in prop::collection::vec(op(), 0..100)) {
            let mut a = Assembler::new(max_ranges);
            // Per byte: received, and the time of the last add touching its run.
            let mut bits = vec![false; MODEL_LEN];
            let mut stamps = vec![0u64; MODEL_LEN];
            for (t, op) in ops.into_iter().enumerate() {
                let t = t as u64 + 1;
                match op {
                    Op::Add(offset, len) => {
                        let mut after = bits.clone();
                        after[offset..offset + len].fill(true);
                        let fits = len == 0 || runs(&after).len() <= max_ranges;
                        prop_assert_eq!(a.add(offset, len).is_ok(), fits);
                        if fits && len > 0 {
                            bits = after;
                            let (s, e) = runs(&bits).into_iter().find(|&(s, e)| s <= offset && offset < e).unwrap();
                            stamps[s..e].fill(t);
                        }
                    }
                    Op::RemoveFront => {
                        let n = bits.iter().take_while(|&&b| b).count();
                        prop_assert_eq!(a.remove_front(), n);
                        bits.drain(..n);
                        bits.resize(MODEL_LEN, false);
                        stamps.drain(..n);
                        stamps.resize(MODEL_LEN, 0);
                    }
                    Op::Advance(n) => {
                        a.advance(n);
                        bits.drain(..n);
                        bits.resize(MODEL_LEN, false);
                        stamps.drain(..n);
                        stamps.resize(MODEL_LEN, 0);
                    }
                }
                let want = runs(&bits);
                prop_assert_eq!(ranges(&a), want.clone());
                prop_assert_eq!(a.total_bytes(), bits.iter().filter(|&&b| b).count());
                prop_assert_eq!(a.is_empty(), want.is_empty());
                prop_assert!(a.range_count() <= max_ranges);
                // A trimmed range keeps its stamp; order by the newest byte's.
                let mut by_recency = want.clone();
                by_recency.sort_by_key(|&(s, e)| std::cmp::Reverse(stamps[s..e].iter().max().copied()));
                prop_assert_eq!(a.sack_ranges(usize::MAX).collect::<Vec<_>>(), by_recency.clone());
                prop_assert_eq!(a.sack_ranges(3).collect::<Vec<_>>(), by_recency.into_iter().take(3).collect::<Vec<_>>());
            }
        }
    }
}
