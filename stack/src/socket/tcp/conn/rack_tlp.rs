//! The connection's side of RACK-TLP (RFC 8985): each transmission and
//! ACK goes to RACK, its loss marks start recovery, its reorder timer
//! and the probe timeout (PTO) fire here, and the end of a probe's
//! episode brings the congestion response. The rules themselves are in
//! `recovery/rack.rs`; the probe is sent by `output.rs`.

use super::*;
use crate::socket::tcp::recovery::dsack;
use crate::socket::tcp::recovery::{AckInfo, Rack, Tlp, TlpOutcome};

/// What a connection without RACK's box reads: nothing sent, nothing
/// known.
static NO_RACK: Rack = Rack::new();

impl Connection {
    /// RACK-TLP's counters for the stack (`tcp_rack_lost`,
    /// `tcp_tlp_probes`, `tcp_tlp_recoveries`).
    pub fn rack_counts(&self) -> [u64; 3] {
        let r = self.rack();
        [r.marked, r.probes, r.repaired]
    }

    /// RACK's state, empty until the first use.
    pub(super) fn rack(&self) -> &Rack {
        self.rack.as_deref().unwrap_or(&NO_RACK)
    }

    /// RFC 8985 6.2 step 1: an RTT measurement (RFC 6298, RFC 7323).
    pub(super) fn rack_rtt_sample(&mut self, rtt: Duration) {
        if self.rack_on() {
            let rack = self.rack.get_or_insert_with(Box::default);
            rack.on_rtt_sample(rtt);
            rack.tlp.rtt_sampled = true;
        }
    }

    /// RACK-TLP decides loss: configured (`TcpConfig::rack`), and the
    /// peer SACKs. Without SACK, TLP is not allowed (RFC 8985 7.2
    /// condition 1) and NewReno (RFC 6582) keeps DupThresh.
    pub(super) fn rack_on(&self) -> bool {
        self.cfg.rack && self.opt.sack_ok
    }

    /// `[start, end)` went out at `now`, new or again (RFC 8985 6.1:
    /// Segment.xmit_ts, Segment.retransmitted).
    pub(super) fn rack_on_send(&mut self, start: SeqNumber, end: SeqNumber, now: Instant) {
        if self.rack_on() {
            self.rack
                .get_or_insert_with(Box::default)
                .log
                .on_send(start, end, now);
        }
    }

    /// RFC 8985 6.2 steps 1 to 3 for an ACK whose SACK blocks are in the
    /// scoreboard already: the RTT sample, the segments it delivered,
    /// reordering.
    pub(super) fn rack_on_ack(&mut self, now: Instant, seg: &TcpRepr, rtt: Option<Duration>) {
        if !self.rack_on() {
            return;
        }
        if let Some(rtt) = rtt {
            self.rack_rtt_sample(rtt);
        }
        let tsecr = match (self.opt.ts, seg.options.timestamps) {
            (Some(_), Some((_, ecr))) if ecr != 0 => Some((ecr, self.opt.ts_offset)),
            _ => None,
        };
        let ack = AckInfo {
            now,
            una: self.snd.una,
            tsecr,
        };
        // Step 4, a D-SACK widening the window, is `on_dsack`'s
        // (spurious.rs).
        self.rack
            .get_or_insert_with(Box::default)
            .on_ack(&ack, &mut self.sb);
    }

    /// RFC 8985 6.2 step 5, RACK_detect_loss_and_arm_timer(). Returns
    /// the octets newly marked lost.
    pub(super) fn rack_detect_loss(&mut self, now: Instant) -> usize {
        if !self.rack_on() {
            return 0;
        }
        // Linux (tcp_rack_reo_wnd) counts TCP_CA_Loss as recovery too.
        let in_recovery = self.recovery.is_some() || self.recover.is_some();
        let Some(rack) = self.rack.as_mut() else {
            return 0;
        };
        let reo_wnd = rack.reo_wnd(in_recovery, &self.sb, self.rtt.srtt());
        let marked = rack.marked;
        let (lost, timeout) = rack.detect_loss(now, reo_wnd);
        if rack.marked > marked {
            tracing::trace!(
                marked = rack.marked - marked,
                ?reo_wnd,
                in_recovery,
                "rack marked lost"
            );
        }
        self.timers[Timer::RackReorder] = timeout.map(|t| now + t);
        lost
    }

    /// With RACK, recovery starts when a segment is marked lost, not at
    /// DupThresh (RFC 8985 6.2; Linux tcp_time_to_recover with
    /// tcp_recovery=1); RACK's zero reordering window once DupThresh
    /// segments are SACKed keeps the classic case as fast. Not before
    /// the last recovery's or timeout's "recover" (RFC 6675 5.1).
    pub(super) fn rack_enter_recovery(&mut self, now: Instant) {
        if self.recovery.is_some() || self.recover.is_some() || !self.rack().log.has_lost() {
            return;
        }
        let mss = self.payload_mss();
        // RFC 5681 3.2 step 2: data limited transmit sent beyond cwnd is
        // not in the FlightSize that sets ssthresh.
        let flight = self.snd.in_flight().min(self.cc.window().max(mss));
        self.enter_recovery(now, flight, mss);
    }

    /// The reorder timer: a segment's reordering window ended (RFC 8985
    /// 6.2 step 5). As Linux's tcp_rack_reo_timeout, recovery starts if it
    /// has not, and PRR counts a segment delivered so that the loss can
    /// be retransmitted at once.
    pub(super) fn on_rack_reorder_timer(&mut self, now: Instant) {
        if !self.state.is_synchronized() || self.rack_detect_loss(now) == 0 {
            return;
        }
        if self.recovery.is_none() {
            self.rack_enter_recovery(now);
            return;
        }
        let mss = self.payload_mss();
        let (pipe, ssthresh) = (self.pipe(mss), self.cc.ssthresh());
        if let Some(r) = self.recovery.as_mut().filter(|r| r.sack) {
            r.prr.on_ack(mss, pipe, ssthresh, mss, false, true);
        }
    }

    /// RFC 8985 7.2 conditions: SACK (and RACK, whose records the probe
    /// uses; `TcpConfig::tlp`), not in recovery (fast or timeout),
    /// no segment SACKed, data in flight, and a state that sends data.
    /// "No SACKed sequences" is taken by segment, as Linux's TCP_CA_Open
    /// (a SACK of less than a segment leaves Linux's sacked_out at 0).
    fn tlp_allowed(&self) -> bool {
        self.cfg.tlp
            && self.rack_on()
            && self.recovery.is_none()
            && self.recover.is_none()
            && !self.rack().log.any_sacked(&self.sb)
            && self.snd.in_flight() > 0
            && matches!(
                self.state,
                TcpState::Established
                    | TcpState::CloseWait
                    | TcpState::FinWait1
                    | TcpState::Closing
                    | TcpState::LastAck
            )
    }

    /// RFC 8985 7.2: after new data went out or an ACK advanced SND.UNA,
    /// (re)arm the PTO if a probe is allowed; else there is none and the
    /// RTO stands.
    pub(super) fn schedule_tlp(&mut self, now: Instant) {
        if !self.tlp_allowed() {
            self.timers[Timer::Tlp] = None;
            return;
        }
        let rto_in = self.timers[Timer::Rto].map(|t| t - now);
        let pto = Tlp::pto(self.rtt.srtt(), self.rack().log.len() <= 1, rto_in);
        self.timers[Timer::Tlp] = Some(now + pto);
    }

    /// An ACK that did not advance SND.UNA: the PTO stays as it was, but
    /// goes if a probe is no longer allowed (SACKs arrived, recovery).
    pub(super) fn check_tlp(&mut self) {
        if !self.tlp_allowed() {
            self.timers[Timer::Tlp] = None;
        }
    }

    /// The PTO fired (RFC 8985 7.3): a probe goes unless one is still
    /// out or no RTT was sampled since the last; either way the RTO, not
    /// the PTO, is armed again.
    pub(super) fn on_tlp_timer(&mut self, now: Instant) {
        if !self.tlp_allowed() {
            return;
        }
        let Some(rack) = self.rack.as_mut() else {
            return;
        };
        if rack.tlp.end_seq.is_none() && rack.tlp.rtt_sampled {
            // Counted now, so that the stack counts it with this timer;
            // with data in flight the probe goes at the next output.
            self.owed.insert(Owed::TLP);
            rack.probes += 1;
        }
        self.timers[Timer::Rto] = Some(now + self.rtt.rto());
    }

    /// RFC 8985 7.4 TLP_process_ack(): whether the probe's episode ended,
    /// and if it repaired a loss, the congestion response, once (7.4.2:
    /// as for a loss detected by fast recovery). As Linux's
    /// tcp_process_tlp_ack, ssthresh and cwnd come down at once, from the
    /// window (Linux's ssthresh hooks halve cwnd, or take 0.7 of it),
    /// not from the FlightSize, which by now is the probe alone, and the
    /// sender stays in the open state. `pure_dup`: a duplicate ACK that
    /// neither advanced SND.UNA nor SACKed anything new.
    pub(super) fn tlp_on_ack(&mut self, now: Instant, seg: &TcpRepr, ack: SeqNumber, pure_dup: bool) {
        let Some(tlp) = self
            .rack
            .as_mut()
            .map(|r| &mut r.tlp)
            .filter(|t| t.end_seq.is_some())
        else {
            return;
        };
        let blocks = seg.options.sack_blocks.as_slice();
        let dsack = dsack::check(blocks, ack, self.snd.max, self.snd.max_wnd).map(|d| (d.start, d.end));
        let dsack_ok = dsack;
        if tlp.on_ack(ack, dsack_ok, pure_dup) == TlpOutcome::Repaired {
            let mss = self.payload_mss();
            let window = self.cc.window();
            self.cc.on_congestion_event(now, window, mss);
            self.cc.on_recovery_end(now);
            if let Some(r) = self.rack.as_mut() {
                r.repaired += 1;
            }
        }
    }
}
