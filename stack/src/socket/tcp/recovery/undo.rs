//! Undoing a congestion response that proved unnecessary, as Linux's
//! tcp_try_undo_* family: the state of one reduction episode (a fast
//! recovery or a retransmission timeout) from which the detectors decide.
//!
//! - D-SACK (RFC 2883, RFC 3708 3): every retransmission of the episode
//!   was reported as a duplicate, so the originals all arrived (Linux
//!   undo_retrans counted down to zero, tcp_try_undo_dsack).
//! - Timestamps (RFC 3522, Eifel detection; Linux tcp_packet_delayed):
//!   an ACK covering the retransmission echoes a TSval older than the
//!   first retransmission, so it acknowledges the original.
//! - F-RTO (RFC 5682) is in `frto`; it undoes through the same response.
//!
//! The response (RFC 4015, as Linux's tcp_undo_cwnd_reduction) is the
//! controller's: `CongestionControl::on_spurious_reduction` restores the
//! window, the threshold and, for CUBIC, its curve (RFC 9438 4.9); the
//! connection leaves recovery and forgets what it marked lost.
//!
//! Linux counts retransmitted segments; we count sequence space, as the
//! rest of the scoreboard does. A D-SACK reports what arrived twice, so a
//! retransmission found unnecessary is D-SACKed for as many octets as it
//! carried.

use super::dsack::Dsack;
use crate::socket::tcp::seq::SeqNumber;

/// Why an episode was undone (each a counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UndoReason {
    /// Every retransmission was D-SACKed (RFC 3708).
    Dsack,
    /// The ACK echoed a timestamp older than the retransmission (RFC 3522).
    Timestamp,
    /// F-RTO found the timeout spurious (RFC 5682).
    Frto,
}

/// The undo state of the current (or last) reduction episode.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Undo {
    /// Linux undo_marker: SND.UNA when the episode began; `None` once
    /// undone, or before any episode: nothing to undo.
    marker: Option<SeqNumber>,
    /// Linux undo_retrans: octets retransmitted in the episode and not
    /// yet D-SACKed. `None` until the first retransmission (Linux's -1):
    /// an episode that retransmitted nothing is not undone by D-SACKs.
    retrans: Option<usize>,
    /// The end of the highest retransmission of the episode.
    high_rxt: Option<SeqNumber>,
    /// Linux retrans_stamp: the TSval of the episode's first
    /// retransmission, if timestamps are on.
    stamp: Option<u32>,
    /// Octets retransmitted and D-SACKed over the connection: a peer
    /// reporting more duplicates than we ever resent is not believed
    /// (Linux tcp_dsack_seen's dsack_dups against total_retrans).
    rexmit_total: u64,
    dsack_total: u64,
}

impl Undo {
    /// A fast recovery or a timeout begins at `una` (Linux tcp_init_undo).
    pub fn start(&mut self, una: SeqNumber) {
        self.marker = Some(una);
        self.retrans = None;
        self.high_rxt = None;
        self.stamp = None;
    }

    /// Whether an episode can still be undone.
    pub fn armed(&self) -> bool {
        self.marker.is_some()
    }

    /// The episode's reduction was undone, or must never be (Linux clears
    /// undo_marker).
    pub fn disarm(&mut self) {
        self.marker = None;
    }

    /// `[seq, end)` was sent again, `data` octets of it data (the rest a
    /// FIN), carrying `tsval` if timestamps are on. A D-SACK may or may
    /// not cover a FIN, so the FIN counts only when it went alone.
    pub fn on_retransmit(&mut self, seq: SeqNumber, end: SeqNumber, data: usize, tsval: Option<u32>) {
        if end.distance(seq) == 0 {
            return;
        }
        let len = data.max(1);
        self.rexmit_total = self.rexmit_total.saturating_add(len as u64);
        if self.marker.is_none() {
            return;
        }
        self.retrans = Some(self.retrans.unwrap_or(0).saturating_add(len));
        self.high_rxt = Some(self.high_rxt.map_or(end, |h| h.max(end)));
        if self.stamp.is_none() {
            self.stamp = tsval;
        }
    }

    /// A D-SACK arrived on an ACK that found SND.UNA at `prior_una`.
    /// Returns false for a dubious one (more duplicates reported than we
    /// ever retransmitted: the peer or the network duplicates, which says
    /// nothing of our retransmissions). A D-SACK counts against the
    /// episode's retransmissions if it lies above the marker, and either
    /// below SND.UNA (Linux tcp_check_dsack) or within what the episode
    /// retransmitted (tcp_sacktag_one's dup_sack of a retransmitted
    /// segment).
    pub fn on_dsack(&mut self, d: Dsack, prior_una: SeqNumber) -> bool {
        let len = d.len();
        self.dsack_total = self.dsack_total.saturating_add(len as u64);
        if self.dsack_total > self.rexmit_total {
            return false;
        }
        if let (Some(m), Some(r)) = (self.marker, self.retrans) {
            let retransmitted = d.end <= prior_una || self.high_rxt.is_some_and(|h| d.start < h);
            if r > 0 && d.end > m && retransmitted {
                self.retrans = Some(r.saturating_sub(len));
            }
        }
        true
    }

    /// Every retransmission of the episode was D-SACKed (Linux
    /// tcp_try_undo_dsack's condition).
    pub fn all_dsacked(&self) -> bool {
        self.marker.is_some() && self.retrans == Some(0)
    }

    /// RFC 3522 3.2 (Linux tcp_packet_delayed): the ACK echoes `tsecr`,
    /// older than the first retransmission, so it was sent for the
    /// original. Zero is no echo (RFC 7323 3.2). An episode that has
    /// retransmitted nothing yet (pacing held the retransmission until the
    /// original arrived) was delayed whatever the echo, as in Linux since
    /// 6.10 ("nothing was retransmitted").
    pub fn packet_delayed(&self, tsecr: Option<u32>) -> bool {
        if self.marker.is_some() && self.retrans.is_none() {
            return true;
        }
        match (self.stamp, tsecr) {
            (Some(stamp), Some(ecr)) if ecr != 0 => (ecr.wrapping_sub(stamp) as i32) < 0,
            _ => false,
        }
    }

    /// Retransmissions of the episode still above SND.UNA (Linux
    /// retrans_out, as far as ranges tell).
    pub fn retransmissions_outstanding(&self, una: SeqNumber) -> bool {
        self.high_rxt.is_some_and(|h| h > una)
    }

    /// Linux tcp_may_undo: armed, and either every retransmission was
    /// D-SACKed or the ACK (echoing `tsecr`) was for an original.
    pub fn may_undo(&self, tsecr: Option<u32>) -> Option<UndoReason> {
        self.marker?;
        if self.retrans == Some(0) {
            Some(UndoReason::Dsack)
        } else if self.packet_delayed(tsecr) {
            Some(UndoReason::Timestamp)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sq(n: u32) -> SeqNumber {
        SeqNumber(n)
    }

    fn ds(s: u32, e: u32) -> Dsack {
        Dsack {
            start: sq(s),
            end: sq(e),
        }
    }

    #[test]
    fn all_retransmissions_dsacked_undoes() {
        let mut u = Undo::default();
        assert!(!u.armed() && u.may_undo(None).is_none());
        u.start(sq(1000));
        assert!(!u.all_dsacked(), "nothing retransmitted yet");
        u.on_retransmit(sq(1000), sq(2000), 1000, None);
        u.on_retransmit(sq(3000), sq(4000), 1000, None);
        // Below SND.UNA, above the marker: the first.
        assert!(u.on_dsack(ds(1000, 2000), sq(5000)));
        assert!(!u.all_dsacked());
        // Above SND.UNA, within what was retransmitted: the second.
        assert!(u.on_dsack(ds(3000, 4000), sq(2000)));
        assert!(u.all_dsacked());
        assert_eq!(u.may_undo(None), Some(UndoReason::Dsack));
        u.disarm();
        assert!(!u.all_dsacked() && u.may_undo(None).is_none());
    }

    #[test]
    fn unrelated_dsacks_do_not_count() {
        let mut u = Undo::default();
        u.on_retransmit(sq(0), sq(5000), 5000, None); // an earlier episode's
        u.start(sq(10_000));
        u.on_retransmit(sq(10_000), sq(11_000), 1000, None);
        // Below the marker: an older episode's duplicate.
        assert!(u.on_dsack(ds(9000, 10_000), sq(12_000)));
        // Above SND.UNA but never retransmitted: network duplication.
        assert!(u.on_dsack(ds(11_000, 12_000), sq(11_000)));
        assert!(!u.all_dsacked());
    }

    #[test]
    fn a_fin_counts_only_alone() {
        let mut u = Undo::default();
        u.start(sq(1000));
        // Data and FIN: the D-SACK of the data is enough.
        u.on_retransmit(sq(1000), sq(1501), 500, None);
        assert!(u.on_dsack(ds(1000, 1500), sq(1501)));
        assert!(u.all_dsacked());
        // A FIN alone needs its own D-SACK; nothing sent counts nothing.
        u.start(sq(1500));
        u.on_retransmit(sq(1500), sq(1500), 0, None);
        assert!(!u.all_dsacked());
        u.on_retransmit(sq(1500), sq(1501), 0, None);
        assert!(!u.all_dsacked());
        assert!(u.on_dsack(ds(1500, 1501), sq(1501)));
        assert!(u.all_dsacked());
    }

    #[test]
    fn more_dsacks_than_retransmissions_are_dubious() {
        let mut u = Undo::default();
        u.start(sq(1000));
        u.on_retransmit(sq(1000), sq(2000), 1000, None);
        assert!(!u.on_dsack(ds(1000, 3000), sq(3000)));
        assert!(!u.all_dsacked());
    }

    #[test]
    fn eifel_compares_with_the_first_retransmission() {
        let mut u = Undo::default();
        u.start(sq(1000));
        // Nothing retransmitted yet: whatever filled the hole was the
        // original (Linux since 6.10).
        assert!(u.packet_delayed(Some(50)));
        assert!(u.packet_delayed(None));
        u.on_retransmit(sq(1000), sq(2000), 1000, Some(100));
        u.on_retransmit(sq(2000), sq(3000), 1000, Some(200));
        assert!(u.packet_delayed(Some(99)));
        assert!(!u.packet_delayed(Some(100)), "the retransmission's own echo");
        assert!(!u.packet_delayed(Some(0)), "no echo");
        assert!(!u.packet_delayed(None));
        assert_eq!(u.may_undo(Some(99)), Some(UndoReason::Timestamp));
        // Serial arithmetic across the wrap.
        let mut u = Undo::default();
        u.start(sq(1000));
        u.on_retransmit(sq(1000), sq(2000), 1000, Some(5));
        assert!(u.packet_delayed(Some(u32::MAX - 5)));
        assert!(u.retransmissions_outstanding(sq(1500)));
        assert!(!u.retransmissions_outstanding(sq(2000)));
    }
}
