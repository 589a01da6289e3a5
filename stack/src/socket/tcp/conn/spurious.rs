//! The connection's side of spurious-retransmission detection and undo
//! (`recovery/dsack.rs`, `recovery/undo.rs`, `recovery/frto.rs`): what an
//! ACK, a retransmission and a timeout tell them, and the undo itself.
//! `process_ack` calls [`Connection::spurious_before_ack`] before it
//! touches anything and [`Connection::spurious_after_ack`] at its end,
//! in the order of Linux's tcp_ack (SACK tagging with tcp_check_dsack
//! first, then tcp_fastretrans_alert's undo checks).

use super::*;
use crate::socket::tcp::recovery::dsack::{self, Dsack};
use crate::socket::tcp::recovery::frto::{covered, FrtoAck, FrtoAction};
use crate::socket::tcp::recovery::undo::UndoReason;
use crate::socket::tcp::recovery::Frto;

/// What the ACK found before it was processed.
#[derive(Debug, Clone, Copy)]
pub(super) struct AckSnapshot {
    prior_una: SeqNumber,
    /// A valid D-SACK in the ACK's first block.
    dsack: Option<Dsack>,
    /// SACK blocks to skip before the scoreboard takes the rest: the
    /// D-SACK block, valid or not (RFC 2883 4).
    pub skip_blocks: usize,
    in_recovery: bool,
    /// After a timeout, until all it found outstanding is acknowledged
    /// (Linux TCP_CA_Loss).
    in_loss: bool,
    /// How far the timeout's retransmission had got (SND.NXT).
    rtx_end: SeqNumber,
    /// F-RTO: never-retransmitted octets acknowledged or SACKed so far.
    orig_before: Option<usize>,
    dup_acks_before: u64,
}

impl Connection {
    pub(super) fn spurious_before_ack(&self, seg: &TcpRepr, ack: SeqNumber) -> AckSnapshot {
        let prior_una = self.snd.una;
        let blocks = seg.options.sack_blocks.as_slice();
        let is_dsack = self.opt.sack_ok && ack >= prior_una && dsack::is_dsack(blocks, ack);
        let dsack = if is_dsack {
            dsack::check(blocks, ack, self.snd.max, self.snd.max_wnd)
        } else {
            None
        };
        let rtx_end = self.snd.nxt;
        AckSnapshot {
            prior_una,
            dsack,
            skip_blocks: usize::from(is_dsack),
            in_recovery: self.recovery.is_some(),
            in_loss: self.in_loss(),
            rtx_end,
            orig_before: self
                .frto
                .original_range(rtx_end)
                .map(|(from, to)| covered(prior_una, self.sb.ranges(), from, to)),
            dup_acks_before: self.stats.dup_acks_in,
        }
    }

    /// After a timeout, before everything it found outstanding is
    /// acknowledged: no fast recovery, and "recover" set.
    fn in_loss(&self) -> bool {
        self.recovery.is_none() && self.recover.is_some()
    }

    /// The ACK was processed (`newly_sacked` octets SACKed by it): count
    /// its D-SACK, run F-RTO, and undo a reduction proven unnecessary, as
    /// Linux's tcp_fastretrans_alert does per state.
    pub(super) fn spurious_after_ack(
        &mut self,
        now: Instant,
        seg: &TcpRepr,
        snap: &AckSnapshot,
        newly_sacked: usize,
    ) {
        if let Some(d) = snap.dsack {
            self.on_dsack(d, snap.prior_una);
        }
        let una = self.snd.una;
        let advanced = una > snap.prior_una;
        let tsecr = match (self.opt.ts, seg.options.timestamps) {
            (Some(_), Some((_, ecr))) => Some(ecr),
            _ => None,
        };
        // Linux tcp_process_loss: tcp_try_undo_loss first, on progress.
        if snap.in_loss && advanced {
            if let Some(reason) = self.undo.may_undo(tsecr) {
                self.undo_reduction(now, reason);
                return;
            }
        }
        if self.frto.active() && self.frto_on_ack(now, snap, advanced, newly_sacked) {
            return;
        }
        if !self.undo.armed() {
            return;
        }
        let reason = if snap.in_recovery {
            // Linux tcp_try_undo_partial (and tcp_try_undo_recovery on
            // the full ACK): the hole was filled by the original; undo
            // once no retransmission is outstanding. Else
            // tcp_try_undo_dsack.
            if advanced && self.undo.packet_delayed(tsecr) && !self.undo.retransmissions_outstanding(una) {
                Some(UndoReason::Timestamp)
            } else if self.undo.all_dsacked() {
                Some(UndoReason::Dsack)
            } else {
                None
            }
        } else if !snap.in_loss && self.undo.all_dsacked() {
            // After the episode (Linux CA_Open / CA_Disorder): the
            // retransmission's D-SACK usually comes after the ACK that
            // ended recovery.
            Some(UndoReason::Dsack)
        } else {
            None
        };
        if let Some(reason) = reason {
            self.undo_reduction(now, reason);
        }
    }

    /// A D-SACK for `d` (RFC 2883) arrived on an ACK that found SND.UNA at
    /// `prior_una`: count it and hold it against the episode's
    /// retransmissions (RFC 3708). RACK (RFC 8985 7.2) widens its
    /// reordering window on each D-SACK: it hooks in here.
    pub(super) fn on_dsack(&mut self, d: Dsack, prior_una: SeqNumber) {
        self.stats.dsack_recv += 1;
        self.undo.on_dsack(d, prior_una);
    }

    /// F-RTO's step for this ACK (RFC 5682 3.1). Returns whether the
    /// timeout was undone.
    fn frto_on_ack(&mut self, now: Instant, snap: &AckSnapshot, advanced: bool, newly_sacked: usize) -> bool {
        let una = self.snd.una;
        let orig_acked = match (snap.orig_before, self.frto.original_range(snap.rtx_end)) {
            (Some(before), Some((from, to))) => covered(una, self.sb.ranges(), from, to) > before,
            _ => false,
        };
        let a = FrtoAck {
            una,
            una_advanced: advanced,
            orig_acked,
            sacked_or_dup: newly_sacked > 0 || self.stats.dup_acks_in > snap.dup_acks_before,
            can_send_new: self.never_sent_len() > 0 && self.snd.una + self.snd.wnd > self.snd.max,
        };
        let sent_new = matches!(self.frto, Frto::NewDataSent { .. });
        match self.frto.on_ack(&a, snap.rtx_end) {
            FrtoAction::None => false,
            // Step 2.b: stop going back; the window after this ACK (two
            // segments in slow start from one) goes to new data.
            FrtoAction::SendNew => {
                self.snd.nxt = self.snd.max;
                false
            }
            FrtoAction::Spurious => {
                self.undo_reduction(now, UndoReason::Frto);
                true
            }
            // Step 3.a: resume going back from SND.UNA in slow start;
            // what the peer SACKed of the old and new data is skipped
            // (RFC 6675 5.1).
            FrtoAction::Conventional => {
                if sent_new {
                    self.snd.nxt = self.snd.una;
                }
                false
            }
        }
    }

    /// RFC 4015 / RFC 3708 response, as Linux's tcp_undo_cwnd_reduction
    /// and the state change after it: the controller restores its window,
    /// threshold and curve; the connection leaves recovery (or the
    /// timeout's go-back-N) and forgets what it marked lost.
    fn undo_reduction(&mut self, now: Instant, reason: UndoReason) {
        tracing::debug!(remote = %self.remote, ?reason, "spurious retransmission: reduction undone");
        self.cc.on_spurious_reduction(now);
        self.sb.clear_lost();
        if self.snd.nxt < self.snd.max {
            self.snd.nxt = self.snd.max;
        }
        self.recovery = None;
        self.owed.remove(Owed::FAST_RETRANSMIT);
        self.dup_acks = 0;
        // Linux tcp_is_non_sack_preventing_reopen: without SACK, hold off
        // a new recovery until something above the old one is ACKed.
        if self.opt.sack_ok || self.recover != Some(self.snd.una) {
            self.recover = None;
        }
        self.frto = Frto::Off;
        self.undo.disarm();
        match reason {
            UndoReason::Dsack => self.stats.dsack_undo += 1,
            UndoReason::Timestamp => self.stats.ts_undo += 1,
            UndoReason::Frto => self.stats.frto_spurious += 1,
        }
    }

    /// A retransmission timeout (RFC 6298 5.4) on a synchronized
    /// connection, before its reduction. Each timeout starts an undo
    /// episode, except one repeating without progress (Linux
    /// tcp_enter_loss keeps undo state in CA_Loss while icsk_retransmits
    /// counts). F-RTO runs with SACK, unless the timeout interrupts a
    /// fast recovery or a timeout's recovery that made progress (RFC
    /// 5682 3.2; Linux tcp_enter_loss).
    pub(super) fn spurious_on_rto(&mut self) {
        // `retries` already counts this timeout.
        let recurring = self.retries > 1;
        if !(recurring && self.in_loss() && self.undo.armed()) {
            self.undo.start(self.snd.una);
        }
        let fresh = self.recovery.is_none() && self.recover.is_none();
        let eligible = self.cfg.frto && self.opt.sack_ok && (fresh || recurring);
        self.frto.on_rto(eligible, self.snd.max);
    }

    /// Data is resent because the path MTU fell, not because of loss: no
    /// undo and no F-RTO (Linux tcp_simple_retransmit).
    pub(super) fn spurious_on_mtu_resend(&mut self) {
        self.undo.disarm();
        self.frto = Frto::Off;
    }

    /// The counters of [`TcpConnStats`] the stack adds up: D-SACKs
    /// received, and undos by D-SACK, timestamps and F-RTO.
    pub fn spurious_counts(&self) -> [u64; 4] {
        let s = &self.stats;
        [s.dsack_recv, s.dsack_undo, s.ts_undo, s.frto_spurious]
    }
}
