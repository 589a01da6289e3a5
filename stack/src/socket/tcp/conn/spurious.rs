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
        // An old ACK's (below SND.UNA, reordered) D-SACK counts too, as
        // Linux's tcp_check_dsack for any ACK with SACK blocks: on a path
        // that reorders ACKs, an episode's last D-SACK often comes on one,
        // and without it the reduction is never undone.
        let is_dsack = self.opt.sack_ok && dsack::is_dsack(blocks, ack);
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
    pub(super) fn in_loss(&self) -> bool {
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
        if snap.in_recovery && advanced && self.undo.packet_delayed(tsecr) {
            // The original filled the hole: reordering, not loss (Linux
            // tcp_try_undo_partial's tcp_check_sack_reordering).
            if let Some(r) = self.rack.as_mut() {
                r.on_reordering_seen();
            }
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
    /// retransmissions (RFC 3708). RACK widens its reordering window
    /// (RFC 8985 6.2 step 4).
    pub(super) fn on_dsack(&mut self, d: Dsack, prior_una: SeqNumber) {
        self.stats.dsack_recv += 1;
        self.undo.on_dsack(d, prior_una);
        if let Some(r) = self.rack.as_mut() {
            r.on_dsack(self.snd.una, self.snd.max);
        }
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
        if let Some(r) = self.rack.as_mut() {
            r.log.clear_lost();
        }
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
    /// connection, before its reduction. A timeout starts an undo episode
    /// unless it interrupts a fast recovery or repeats without progress:
    /// the reduction in force is then the one to undo, as the controller
    /// keeps it (Linux tcp_enter_loss: "if it has not yet been made inside
    /// this window"). F-RTO runs unless the timeout interrupts a fast
    /// recovery or a timeout's recovery that made progress (RFC 5682 3.2;
    /// Linux tcp_enter_loss), with or without SACK.
    pub(super) fn spurious_on_rto(&mut self) {
        // `retries` already counts this timeout.
        let recurring = self.retries > 1;
        let reduced = self.recovery.is_some() || (recurring && self.in_loss());
        if !(reduced && self.undo.armed()) {
            self.undo.start(self.snd.una);
        }
        let fresh = self.recovery.is_none() && self.recover.is_none();
        let eligible = self.cfg.frto && (fresh || recurring);
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

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    const ISS: u32 = 1_000;
    const IRS: u32 = 5_000;
    const BASE: u32 = ISS + 1;
    const MSS: usize = 1000;

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn ack(n: u32, sack: &[(u32, u32)]) -> TcpRepr {
        let mut r = TcpRepr {
            src_port: 40000,
            dst_port: 8080,
            seq: IRS + 1,
            ack: BASE + n,
            flags: TcpFlags::ACK,
            window: 65535,
            urgent: 0,
            options: TcpOptions::default(),
        };
        for &(s, e) in sack {
            r.options.sack_blocks.push((BASE + s, BASE + e));
        }
        r
    }

    /// ESTABLISHED with SACK, MSS 1000, `len` bytes queued and the initial
    /// window (ten segments) sent at 10 ms.
    fn sending(cfg: TcpConfig, len: usize) -> Connection {
        let ep = Endpoints {
            local: SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 2), 8080),
            remote: SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 1), 40000),
            iss: SeqNumber(ISS),
            ts_offset: 0,
            mtu: 1500,
        };
        let mut syn = ack(0, &[]);
        syn.seq = IRS;
        syn.ack = 0;
        syn.flags = TcpFlags::SYN;
        syn.options.sack_permitted = true;
        syn.options.mss = Some(MSS as u16);
        let mut c = Connection::accept_syn(at(0), &cfg, ep, &syn);
        c.poll_segment(at(0)).expect("SYN-ACK");
        c.process(at(10), &ack(0, &[]), &[]);
        assert_eq!(c.send(&vec![7; len]), len);
        while c.poll_segment(at(10)).is_some() {}
        assert_eq!(c.snd.max, SeqNumber(BASE + 10 * MSS as u32));
        c
    }

    /// Sequence numbers (relative) of what goes out now.
    fn drain(c: &mut Connection, now: Instant) -> Vec<(u32, usize)> {
        core::iter::from_fn(|| c.poll_segment(now))
            .map(|(r, _, len)| (r.seq - BASE, len))
            .collect()
    }

    #[test]
    fn dsack_after_recovery_undoes_it() {
        let mut c = sending(TcpConfig::default(), 10_000);
        for n in 2..=4 {
            c.process(at(20), &ack(0, &[(1000, n * 1000)]), &[]);
        }
        assert_eq!(drain(&mut c, at(20)), vec![(0, 1000)], "the fast retransmit");
        c.process(at(30), &ack(10_000, &[]), &[]);
        let s = c.stats();
        assert_eq!((s.cwnd, s.ssthresh), (7 * MSS, 7 * MSS), "CUBIC's reduction");
        // The retransmission's D-SACK, below the cumulative ACK.
        c.process(at(40), &ack(10_000, &[(0, 1000)]), &[]);
        let s = c.stats();
        assert_eq!((s.dsack_recv, s.dsack_undo, s.ts_undo), (1, 1, 0));
        assert_eq!((s.cwnd, s.ssthresh), (10 * MSS, usize::MAX));
        // Once only.
        c.process(at(50), &ack(10_000, &[(0, 1000)]), &[]);
        assert_eq!(c.stats().dsack_undo, 1);
        assert_eq!(c.spurious_counts(), [2, 1, 0, 0]);
    }

    /// Two retransmissions, both unnecessary: one D-SACKed above SND.UNA
    /// while the recovery goes on (inside the block that holds it, RFC
    /// 2883 4.1.2), the other below it after: undone at the second.
    #[test]
    fn dsacks_above_and_below_snd_una_add_up() {
        let mut c = sending(TcpConfig::default(), 10_000);
        for n in 2..=4 {
            c.process(at(20), &ack(0, &[(1000, n * 1000)]), &[]);
        }
        assert_eq!(drain(&mut c, at(20)), vec![(0, 1000)]);
        // 5000:6000 is late too; the SACKs above it mark it lost.
        for n in 7..=10 {
            c.process(at(21), &ack(0, &[(6000, n * 1000), (1000, 5000)]), &[]);
        }
        assert_eq!(drain(&mut c, at(21)), vec![(5000, 1000)]);
        // Its original arrived, then the retransmission: a D-SACK above
        // SND.UNA.
        c.process(at(30), &ack(0, &[(5000, 6000), (1000, 10_000)]), &[]);
        let s = c.stats();
        assert_eq!((s.dsack_recv, s.dsack_undo, s.recovery), (1, 0, "recovery"));
        assert_eq!(s.sacked_bytes, 9000);
        c.process(at(31), &ack(10_000, &[]), &[]);
        c.process(at(40), &ack(10_000, &[(0, 1000)]), &[]);
        let s = c.stats();
        assert_eq!((s.dsack_recv, s.dsack_undo), (2, 1));
        assert_eq!((s.cwnd, s.ssthresh), (10 * MSS, usize::MAX));
    }

    #[test]
    fn dsack_of_what_was_not_retransmitted_undoes_nothing() {
        let mut c = sending(TcpConfig::default(), 10_000);
        // The network duplicated 0:1000; nothing was ever resent.
        c.process(at(20), &ack(1000, &[(0, 1000)]), &[]);
        // A duplicate of out-of-order data, inside the block holding it:
        // not SACKed twice.
        c.process(at(20), &ack(1000, &[(3000, 4000), (3000, 5000)]), &[]);
        let s = c.stats();
        assert_eq!((s.dsack_recv, s.dsack_undo), (2, 0));
        assert_eq!(s.sacked_bytes, 2000);
    }

    /// Pacing by default covers slow start only (`pacing_ca_ratio` 0):
    /// once cwnd reaches half ssthresh nothing is paced, and a TSO segment
    /// is not cut to a paced burst either.
    #[test]
    fn past_half_ssthresh_nothing_is_paced_by_default() {
        let cfg = TcpConfig {
            frto: false,
            tlp: false,
            tso_max: 65536,
            ..TcpConfig::default()
        };
        let mut c = sending(cfg, 20_000);
        let rto = c.schedule().deadline.expect("the RTO");
        c.on_timer(rto);
        assert!(
            c.pacing_rate().is_some_and(|r| r > 0),
            "slow start after a timeout is paced"
        );
        // ssthresh is half the flight (5 segments); slow start brings cwnd
        // past half of it.
        let mut now = rto;
        drain(&mut c, now);
        for _ in 0..6 {
            now += Duration::from_millis(10);
            let sent = c.snd.nxt.0.wrapping_sub(BASE);
            c.process(now, &ack(sent, &[]), &[]);
            drain(&mut c, now);
        }
        assert!(c.cc.window() >= c.cc.ssthresh() / 2);
        assert_eq!(c.pacing_rate(), None);
        assert!(
            c.segment_sizes().burst_max > 2 * 1000,
            "a TSO segment is not one paced burst"
        );
    }

    /// The RTO of the spurious case in frto_detects_spurious_rto.pkt,
    /// with F-RTO turned off: go-back-N, no undo (conventional RTO
    /// recovery, RFC 5681 3.1).
    #[test]
    fn frto_off_goes_back() {
        for frto in [true, false] {
            // No tail loss probe (RFC 8985 7): the first deadline is the RTO.
            let cfg = TcpConfig {
                frto,
                tlp: false,
                ..TcpConfig::default()
            };
            let mut c = sending(cfg, 20_000);
            let rto = c.schedule().deadline.expect("the RTO");
            c.on_timer(rto);
            assert_eq!(drain(&mut c, rto), vec![(0, 1000)]);
            c.process(rto + Duration::from_millis(50), &ack(1000, &[]), &[]);
            let next = drain(&mut c, rto + Duration::from_millis(50));
            let later = rto + Duration::from_millis(60);
            c.process(later, &ack(3000, &[]), &[]);
            let s = c.stats();
            if frto {
                assert_eq!(next, vec![(10_000, 1000), (11_000, 1000)], "new data");
                assert_eq!((s.frto_spurious, s.cwnd), (1, 10 * MSS));
                assert_eq!(drain(&mut c, later), vec![(12_000, 1000)]);
            } else {
                assert_eq!(next, vec![(1000, 1000), (2000, 1000)], "go-back-N");
                assert_eq!(s.frto_spurious, 0);
                assert!(s.cwnd < 10 * MSS);
            }
        }
    }
}
