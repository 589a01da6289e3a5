//! Incoming D-SACK blocks (RFC 2883): the peer reports a segment it
//! received twice. The sender uses them to learn that a retransmission was
//! unnecessary (RFC 3708; `undo`), and RACK to widen its reordering window
//! (RFC 8985 7.2).
//!
//! A D-SACK block is never a SACK of outstanding data: the scoreboard must
//! not take it (one below the cumulative ACK it already ignores; one above
//! it lies within the block that follows, which the scoreboard takes).

use crate::socket::tcp::seq::SeqNumber;

/// A duplicate range `[start, end)` the peer reported (RFC 2883).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dsack {
    pub start: SeqNumber,
    pub end: SeqNumber,
}

impl Dsack {
    pub fn len(&self) -> usize {
        self.end.distance(self.start)
    }
}

/// RFC 2883 4 (Linux tcp_check_dsack): the first SACK block of an ACK
/// acknowledging `ack` is a D-SACK if it lies below the cumulative ACK
/// (4.1.1: the duplicate was already acknowledged), or if it is contained
/// in the second block (4.1.2 and 4.1.3: a duplicate of out-of-order data,
/// reported with the block that holds it). Anything else is a SACK.
///
/// `snd_max` is the highest sequence number sent, `max_window` the largest
/// window the peer offered: as Linux's tcp_dsack_seen, a block that is
/// empty, reaches beyond what was sent, or is longer than any window could
/// have held is dubious and ignored (a D-SACK still never goes to the
/// scoreboard, see [`is_dsack`]).
pub(crate) fn check(
    blocks: &[(u32, u32)],
    ack: SeqNumber,
    snd_max: SeqNumber,
    max_window: usize,
) -> Option<Dsack> {
    if !is_dsack(blocks, ack) {
        return None;
    }
    let (s, e) = blocks[0];
    let d = Dsack {
        start: SeqNumber(s),
        end: SeqNumber(e),
    };
    // An empty or reversed block compares as a non-positive distance.
    if d.end.diff(d.start) <= 0 || d.end > snd_max || d.len() > max_window.max(1) {
        return None;
    }
    Some(d)
}

/// Whether the first of these blocks, in an ACK of `ack`, is a D-SACK
/// (RFC 2883 4), valid or not: either way it is kept out of the
/// scoreboard.
pub(crate) fn is_dsack(blocks: &[(u32, u32)], ack: SeqNumber) -> bool {
    let Some(&(s0, e0)) = blocks.first() else {
        return false;
    };
    let (s0, e0) = (SeqNumber(s0), SeqNumber(e0));
    if s0 < ack {
        return true;
    }
    match blocks.get(1) {
        Some(&(s1, e1)) => s0 >= SeqNumber(s1) && e0 <= SeqNumber(e1),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sq(n: u32) -> SeqNumber {
        SeqNumber(n)
    }

    const MAX: SeqNumber = SeqNumber(10_000);

    #[test]
    fn below_the_cumulative_ack() {
        // RFC 2883 4.1.1: a duplicate of acknowledged data.
        let d = check(&[(1000, 2000)], sq(3000), MAX, 65535).unwrap();
        assert_eq!((d.start, d.end, d.len()), (sq(1000), sq(2000), 1000));
        // With SACK blocks behind it.
        let d = check(&[(1000, 2000), (4000, 5000)], sq(3000), MAX, 65535);
        assert_eq!(d.map(|d| d.start), Some(sq(1000)));
        // Straddling the cumulative ACK counts too (it starts below).
        assert!(is_dsack(&[(2500, 3500)], sq(3000)));
    }

    #[test]
    fn within_the_second_block() {
        // RFC 2883 4.1.2: a duplicate of out-of-order data, first, then
        // the block holding it.
        let d = check(&[(4000, 5000), (4000, 6000)], sq(3000), MAX, 65535).unwrap();
        assert_eq!((d.start, d.end), (sq(4000), sq(5000)));
        assert!(is_dsack(&[(5000, 6000), (4000, 6000)], sq(3000)));
        // Not contained: an ordinary SACK with the newest block first.
        assert!(!is_dsack(&[(7000, 8000), (4000, 6000)], sq(3000)));
        assert!(!is_dsack(&[(4000, 7000), (4000, 6000)], sq(3000)));
        // One block above the ACK is a SACK.
        assert!(!is_dsack(&[(4000, 5000)], sq(3000)));
        assert!(!is_dsack(&[], sq(3000)));
    }

    #[test]
    fn dubious_blocks_are_ignored_but_still_dsacks() {
        // Empty, reversed, beyond SND.MAX, longer than any window.
        for b in [(1000, 1000), (2000, 1000), (9000, 11_000), (0, 3000)] {
            assert!(is_dsack(&[b], sq(9500)), "{b:?}");
            assert_eq!(check(&[b], sq(9500), MAX, 2000), None, "{b:?}");
        }
    }

    #[test]
    fn sequence_numbers_wrap() {
        let una = SeqNumber(u32::MAX - 500);
        let b = |o: usize| (una + o).0;
        let d = check(&[(b(0), b(1000))], una + 1000, una + 2000, 65535).unwrap();
        assert_eq!(d.len(), 1000);
        let d = check(
            &[(b(1200), b(1400)), (b(1100), b(1500))],
            una + 1000,
            una + 2000,
            65535,
        );
        assert_eq!(d.map(|d| d.len()), Some(200));
    }
}
