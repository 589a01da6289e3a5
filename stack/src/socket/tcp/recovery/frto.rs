//! F-RTO (RFC 5682), the SACK-enhanced algorithm of its section 3, as
//! Linux's tcp_process_loss with tcp_frto=2: after a retransmission
//! timeout has resent SND.UNA, the first ACK that advances SND.UNA lets
//! two segments of *new* data out instead of more retransmissions; if the
//! ACK after that acknowledges (cumulatively or by SACK) data that was
//! never retransmitted, the originals were only delayed and the timeout
//! was spurious. A duplicate ACK or a SACK of the new data alone instead
//! says the loss was real, and conventional recovery (go-back-N in slow
//! start, skipping SACKed data, RFC 6675 5.1) goes on.
//!
//! Without SACK the same steps are the basic algorithm of RFC 5682 2.1,
//! a duplicate ACK standing for a SACK of new data, as Linux runs one
//! tcp_process_loss for both (num_dupack beside FLAG_DATA_SACKED). The
//! one difference: RFC 5682 2.1 step 2.a gives up on a duplicate ACK as
//! the first ACK after the timeout, where the SACK-enhanced version and
//! Linux wait for one that advances SND.UNA; we wait too.
//!
//! The connection drives it only when the timeout does not interrupt a
//! fast recovery, unless it repeats on the same SND.UNA (RFC 5682 3.2;
//! Linux tcp_enter_loss).

use crate::socket::tcp::seq::SeqNumber;

/// Where F-RTO is (RFC 5682 3.1 steps).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Frto {
    /// Not running: no timeout, not eligible, or decided.
    #[default]
    Off,
    /// Step 1 done: the timeout resent SND.UNA; `high` is the highest
    /// sequence number sent at the timeout (RFC 5682 "recover").
    AfterRto { high: SeqNumber },
    /// Step 2.b done: new data went out; what the timeout retransmitted
    /// ends at `rtx_end`, so `[rtx_end, high)` was never retransmitted.
    NewDataSent { high: SeqNumber, rtx_end: SeqNumber },
}

/// What one ACK says, as F-RTO needs it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrtoAck {
    /// SND.UNA after the ACK.
    pub una: SeqNumber,
    pub una_advanced: bool,
    /// The ACK newly acknowledged or SACKed never-retransmitted data
    /// below `high` (Linux FLAG_ORIG_SACK_ACKED).
    pub orig_acked: bool,
    /// It SACKed something new or was a duplicate ACK (Linux
    /// FLAG_DATA_SACKED or num_dupack).
    pub sacked_or_dup: bool,
    /// New data is queued and the peer's window has room for it.
    pub can_send_new: bool,
}

/// What the connection does after the ACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrtoAction {
    /// Nothing changes.
    None,
    /// Step 2.b: stop retransmitting; send new data (up to two segments,
    /// which the window after the ACK allows).
    SendNew,
    /// Step 3.b: the timeout was spurious; undo its reduction.
    Spurious,
    /// Step 2.a/3.a: the loss was real; resume conventional recovery.
    Conventional,
}

impl Frto {
    /// A retransmission timeout with `snd_max` the highest sequence number
    /// sent; `eligible` per RFC 5682 3 and 3.2.
    pub fn on_rto(&mut self, eligible: bool, snd_max: SeqNumber) {
        *self = if eligible {
            Frto::AfterRto { high: snd_max }
        } else {
            Frto::Off
        };
    }

    pub fn active(&self) -> bool {
        *self != Frto::Off
    }

    /// Where never-retransmitted data lies, given where the timeout's
    /// retransmission has got to (`rtx_end`) before step 2.b.
    pub fn original_range(&self, rtx_end: SeqNumber) -> Option<(SeqNumber, SeqNumber)> {
        match *self {
            Frto::Off => None,
            Frto::AfterRto { high } => Some((rtx_end, high)),
            Frto::NewDataSent { high, rtx_end } => Some((rtx_end, high)),
        }
    }

    /// An ACK in F-RTO; `rtx_end` is where retransmission had got to.
    pub fn on_ack(&mut self, a: &FrtoAck, rtx_end: SeqNumber) -> FrtoAction {
        let high = match *self {
            Frto::Off => return FrtoAction::None,
            Frto::AfterRto { high } | Frto::NewDataSent { high, .. } => high,
        };
        // Step 3.b (Linux checks it on the first ACK too): originals
        // arrived that were never sent again, so not everything was lost.
        if a.orig_acked {
            *self = Frto::Off;
            return FrtoAction::Spurious;
        }
        if a.una >= high {
            // Everything the timeout found outstanding is acknowledged:
            // recovery is over (step 2.a); the timestamps may still call
            // it spurious (Eifel), which is `undo`'s.
            *self = Frto::Off;
            return FrtoAction::None;
        }
        match *self {
            Frto::NewDataSent { .. } if a.sacked_or_dup => {
                // Step 3.a: the new data arrived, the old did not.
                *self = Frto::Off;
                FrtoAction::Conventional
            }
            Frto::AfterRto { high } if a.una_advanced => {
                if a.can_send_new {
                    *self = Frto::NewDataSent { high, rtx_end };
                    FrtoAction::SendNew
                } else {
                    // Step 2.b without new data to send: conventional.
                    *self = Frto::Off;
                    FrtoAction::Conventional
                }
            }
            _ => FrtoAction::None,
        }
    }
}

/// Octets of `[from, to)` acknowledged cumulatively (below `una`) or
/// SACKed (`ranges`, above `una`): compared before and after an ACK, it
/// says whether the ACK newly covered any of them.
pub(crate) fn covered(
    una: SeqNumber,
    ranges: &[(SeqNumber, SeqNumber)],
    from: SeqNumber,
    to: SeqNumber,
) -> usize {
    let acked = una.min(to).distance(from);
    let lo = from.max(una);
    let sacked: usize = ranges.iter().map(|&(s, e)| e.min(to).distance(s.max(lo))).sum();
    acked + sacked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sq(n: u32) -> SeqNumber {
        SeqNumber(n)
    }

    fn ack(una: u32, advanced: bool, orig: bool, dup: bool) -> FrtoAck {
        FrtoAck {
            una: sq(una),
            una_advanced: advanced,
            orig_acked: orig,
            sacked_or_dup: dup,
            can_send_new: true,
        }
    }

    #[test]
    fn spurious_timeout() {
        // Sent 1000..11000; the timeout resends 1000..2000.
        let mut f = Frto::default();
        f.on_rto(true, sq(11_000));
        // The ACK of the first segment: new data instead of 2000..
        assert_eq!(
            f.on_ack(&ack(2000, true, false, false), sq(2000)),
            FrtoAction::SendNew
        );
        assert_eq!(f.original_range(sq(0)), Some((sq(2000), sq(11_000))));
        // The next ACK covers 2000..3000, never retransmitted: spurious.
        assert_eq!(
            f.on_ack(&ack(3000, true, true, false), sq(2000)),
            FrtoAction::Spurious
        );
        assert!(!f.active());
    }

    #[test]
    fn real_loss_falls_back() {
        let mut f = Frto::default();
        f.on_rto(true, sq(11_000));
        // A duplicate before step 2 changes nothing.
        assert_eq!(
            f.on_ack(&ack(1000, false, false, true), sq(2000)),
            FrtoAction::None
        );
        assert_eq!(
            f.on_ack(&ack(2000, true, false, false), sq(2000)),
            FrtoAction::SendNew
        );
        // The new data SACKed, SND.UNA stuck: the old data was lost.
        assert_eq!(
            f.on_ack(&ack(2000, false, false, true), sq(2000)),
            FrtoAction::Conventional
        );
        assert!(!f.active());
    }

    #[test]
    fn no_new_data_or_not_eligible() {
        let mut f = Frto::default();
        f.on_rto(true, sq(11_000));
        let mut a = ack(2000, true, false, false);
        a.can_send_new = false;
        assert_eq!(f.on_ack(&a, sq(2000)), FrtoAction::Conventional);
        f.on_rto(false, sq(11_000));
        assert_eq!(
            f.on_ack(&ack(3000, true, true, false), sq(2000)),
            FrtoAction::None
        );
        // Everything acknowledged at step 2: over, not spurious by F-RTO.
        f.on_rto(true, sq(11_000));
        assert_eq!(
            f.on_ack(&ack(11_000, true, false, false), sq(2000)),
            FrtoAction::None
        );
        assert!(!f.active());
    }

    #[test]
    fn covered_counts_acked_and_sacked() {
        let r = [(sq(3000), sq(4000)), (sq(6000), sq(9000))];
        assert_eq!(covered(sq(2500), &r, sq(2000), sq(8000)), 500 + 1000 + 2000);
        assert_eq!(covered(sq(1000), &[], sq(2000), sq(8000)), 0);
        assert_eq!(covered(sq(9000), &[], sq(2000), sq(8000)), 6000);
    }
}
