//! The connection's timers: one deadline per [`Timer`] in a table, the
//! connection's next deadline the minimum of it (as quinn-proto's
//! `TimerTable`), and what each does when it fires (RFC 6298 5, RFC 9293
//! 3.8.6.1 and 3.10.8, RFC 1122 4.2.3.6).

use core::ops::{Index, IndexMut};

use super::*;
use crate::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Retransmission (RFC 6298), also the SYN and SYN-ACK timer.
    Rto,
    /// Zero-window probes and the SWS override (RFC 9293 3.8.6.1).
    Persist,
    /// Delayed ACK (RFC 9293 3.8.6.3).
    DelayedAck,
    /// Keepalive (RFC 1122 4.2.3.6).
    Keepalive,
    /// 2 MSL in TIME-WAIT.
    TimeWait,
    /// An orphaned FIN-WAIT-2's bound (Linux tcp_fin_timeout).
    FinWait2,
    /// RACK's reorder timer: a segment's reordering window ends (RFC
    /// 8985 6.2 step 5; Linux ICSK_TIME_REO_TIMEOUT).
    RackReorder,
    /// The tail loss probe timeout, PTO (RFC 8985 7.2).
    Tlp,
    /// Give back the storage of buffers that stayed empty (see
    /// [`RECLAIM_AFTER`]).
    Reclaim,
    /// Pacing holds data until the bucket has refilled (`pacing.rs`).
    Pacing,
}

impl Timer {
    const COUNT: usize = 10;
}

/// How long a drained send or receive buffer keeps its storage before it
/// is given back. A connection streaming in bursts drains its buffers
/// between bursts; keeping the storage that long means the next burst
/// neither allocates nor regrows it (the hot path allocates nothing), while
/// an idle connection still holds no buffer memory a second later.
pub(crate) const RECLAIM_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug, Default, Clone)]
pub(crate) struct TimerTable {
    deadlines: [Option<Instant>; Timer::COUNT],
}

impl TimerTable {
    /// The earliest deadline of all timers.
    pub fn next(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// Whether `timer` is set and due at `now`; if so it is stopped.
    pub fn expired(&mut self, timer: Timer, now: Instant) -> bool {
        let due = self[timer].is_some_and(|t| now >= t);
        if due {
            self[timer] = None;
        }
        due
    }

    pub fn stop_all(&mut self) {
        self.deadlines = [None; Timer::COUNT];
    }
}

impl Index<Timer> for TimerTable {
    type Output = Option<Instant>;
    fn index(&self, t: Timer) -> &Option<Instant> {
        &self.deadlines[t as usize]
    }
}

impl IndexMut<Timer> for TimerTable {
    fn index_mut(&mut self, t: Timer) -> &mut Option<Instant> {
        &mut self.deadlines[t as usize]
    }
}

impl Connection {
    /// The earliest deadline of this connection's timers.
    pub(super) fn deadline(&self) -> Option<Instant> {
        // Asked after every input and output: no array of options here,
        // whose spill and reload stalled the store forwarding (perf).
        match (self.timers.next(), self.user_deadline()) {
            (Some(t), Some(u)) => Some(t.min(u)),
            (t, u) => t.or(u),
        }
    }

    pub(super) fn user_deadline(&self) -> Option<Instant> {
        Some(self.unacked_since? + self.user_timeout?)
    }

    /// Act on every timer that is due.
    pub fn on_timer(&mut self, now: Instant) -> Outcome {
        let t = self.run_timers(now);
        self.outcome(t)
    }

    fn run_timers(&mut self, now: Instant) -> Transition {
        if self.timers.expired(Timer::TimeWait, now) {
            self.set_state(TcpState::Closed);
            return Transition::Closed;
        }
        if self.timers.expired(Timer::FinWait2, now) {
            tracing::debug!(remote = %self.remote, "orphaned FIN-WAIT-2 timed out");
            self.set_state(TcpState::Closed);
            return Transition::Closed;
        }
        if self.user_deadline().is_some_and(|t| now >= t) {
            return self.time_out(now, false);
        }
        // Nothing to do but send: the output path asks the pacer again.
        self.timers.expired(Timer::Pacing, now);
        if self.timers.expired(Timer::RackReorder, now) {
            self.on_rack_reorder_timer(now);
        }
        if self.timers.expired(Timer::Tlp, now) {
            self.on_tlp_timer(now);
        }
        if self.timers.expired(Timer::Rto, now) {
            if let Some(t) = self.on_rto_timer(now) {
                return t;
            }
        }
        if self.timers.expired(Timer::Persist, now) {
            if let Some(t) = self.on_persist_timer(now) {
                return t;
            }
        }
        if self.timers.expired(Timer::DelayedAck, now) {
            self.owed.insert(Owed::ACK);
            // The reply we waited to piggyback on did not come in time:
            // leave interactive mode (Linux tcp_delack_timer_handler).
            self.ack.pingpong = false;
        }
        if self.timers.expired(Timer::Reclaim, now) {
            // Still in use: the next drain re-arms the timer.
            self.snd.buf.release_if_unused();
            self.rcv.buf.release_if_unused();
            if let Some(r) = self.rack.as_mut() {
                r.log.release_if_unused();
            }
        }
        if self.timers.expired(Timer::Keepalive, now) {
            return self.on_keepalive_timer(now);
        }
        Transition::None
    }

    /// Called after every change to the connection: if a buffer has drained
    /// but holds storage, give it back in [`RECLAIM_AFTER`] unless it fills
    /// again by then.
    pub(crate) fn arm_reclaim(&mut self, now: Instant) {
        if self.timers[Timer::Reclaim].is_none()
            && self.state != TcpState::Closed
            && (self.snd.buf.holds_unused_storage()
                || self.rcv.buf.holds_unused_storage()
                || self.rack().log.holds_unused_storage())
        {
            self.timers[Timer::Reclaim] = Some(now + RECLAIM_AFTER);
        }
    }

    /// RFC 6298 5.4-5.7: the retransmission timer fired. `Some` ends the
    /// timer run (the connection gave up, or it defers).
    fn on_rto_timer(&mut self, now: Instant) -> Option<Transition> {
        let limit = match self.state {
            TcpState::SynSent => self.syn_retries,
            // Linux syn_ack_recalc: a deferred connection the peer has
            // ACKed lives out the whole deferral.
            TcpState::SynReceived if self.defer_acked => self.cfg.synack_retries.max(self.defer_accept),
            TcpState::SynReceived => self.cfg.synack_retries,
            _ => self.cfg.max_retransmits,
        };
        if self.retries >= limit {
            return Some(self.time_out(now, false));
        }
        self.retries += 1;
        self.rtt.back_off();
        self.rtt_probe = None;
        // RFC 5681 3.1 / RFC 6298 5.4: retransmit the earliest segment,
        // go back to one segment of window.
        if self.state.is_synchronized() {
            let mss = self.payload_mss();
            self.spurious_on_rto();
            self.cc.on_rto(now, self.snd.in_flight(), mss);
            // RFC 6675 5.1: every un-SACKed octet is lost and goes again,
            // holes in order; no new recovery until all that was sent is
            // acknowledged (RFC 6582 3.2 step 1 for NewReno's "recover").
            self.sb.on_rto(self.snd.max);
            if let Some(r) = self.rack.as_mut() {
                r.log.on_rto(&self.sb);
            }
            self.recover = Some(self.snd.max);
        }
        // RFC 8985 7: no probe in RTO recovery; RACK's marks stand.
        if let Some(r) = self.rack.as_mut() {
            r.tlp.end_seq = None;
        }
        self.timers[Timer::Tlp] = None;
        self.timers[Timer::RackReorder] = None;
        self.owed.remove(Owed::TLP);
        self.recovery = None;
        self.dup_acks = 0;
        if self.state == TcpState::SynReceived && self.defer_acked && self.retries < self.defer_accept {
            // Deferring, and the peer has our SYN-ACK: keep the timer
            // (and its backoff) but resend only at the end of the
            // deferral, as a last chance (Linux syn_ack_recalc).
            self.timers[Timer::Rto] = Some(now + self.rtt.rto());
            return Some(Transition::None);
        }
        self.snd.nxt = if self.state == TcpState::SynSent || self.state == TcpState::SynReceived {
            self.snd.iss
        } else {
            self.snd.una
        };
        tracing::debug!(remote = %self.remote, retries = self.retries, rto = ?self.rtt.rto(), "retransmission timeout");
        None
    }

    /// RFC 9293 3.8.6.1: the persist timer fired; probe, or give up.
    /// RFC 1122 4.2.2.17 keeps probing a zero window for as long as the
    /// peer answers. One that stopped answering is given up on after
    /// tcp_retries2 probes (fewer once the application has closed), and a
    /// window closed for longer than TCP_USER_TIMEOUT since the first
    /// probe ends the connection too: Linux tcp_probe_timer (gVisor does
    /// the same). ETIMEDOUT, no RST.
    fn on_persist_timer(&mut self, now: Instant) -> Option<Transition> {
        let since = *self.probes_since.get_or_insert(now);
        if self.user_timeout.is_some_and(|limit| now - since >= limit) {
            return Some(self.time_out(now, false));
        }
        let max = if self.orphan {
            self.cfg.orphan_retries
        } else {
            self.cfg.max_retransmits
        };
        if self.probes_out >= max {
            return Some(self.time_out(now, false));
        }
        self.probes_out += 1;
        self.owed.insert(Owed::PROBE);
        self.persist_backoff = (self.persist_backoff + 1).min(16);
        None
    }

    /// RFC 1122 4.2.3.6: the keepalive timer fired.
    fn on_keepalive_timer(&mut self, now: Instant) -> Transition {
        if self.snd.in_flight() > 0 || self.unsent() > 0 {
            // RFC 1122 4.2.3.6 probes an idle connection; with data
            // outstanding the retransmission timer watches the peer
            // (as Linux's tcp_keepalive_timer, which only re-arms).
            self.keepalive.probes_sent = 0;
            self.timers[Timer::Keepalive] = Some(now + self.keepalive.idle);
        } else if self.keepalive.probes_sent >= self.keepalive.count {
            // Linux resets a connection whose keepalives went
            // unanswered (tcp_keepalive_timer).
            return self.time_out(now, true);
        } else {
            self.keepalive.probes_sent += 1;
            self.owed.insert(Owed::KEEPALIVE);
            self.timers[Timer::Keepalive] = Some(now + self.keepalive.interval);
        }
        Transition::None
    }

    /// Give up on the peer (ETIMEDOUT). `reset`: tell the peer with a RST,
    /// which Linux does for unanswered keepalives only; a connection whose
    /// retransmissions or user timeout ran out is dropped silently (RFC
    /// 9293 3.10.8 USER TIMEOUT, RFC 1122 4.2.3.5; Linux tcp_write_err).
    pub(super) fn time_out(&mut self, now: Instant, reset: bool) -> Transition {
        tracing::debug!(remote = %self.remote, state = %self.state, "connection timed out");
        // RFC 1122 4.2.3.9: a soft ICMP error seen earlier (and not yet
        // read by the user) likely explains the silence; report it rather
        // than ETIMEDOUT, as Linux's tcp_write_err (sk_err_soft ? : ETIMEDOUT).
        // Only soft errors survive into a state that can time out.
        self.error = Some(self.error.take().unwrap_or(SocketError::TimedOut));
        self.timed_out = true;
        let synchronized = matches!(
            self.state,
            TcpState::Established | TcpState::CloseWait | TcpState::FinWait1 | TcpState::FinWait2
        );
        if reset && synchronized {
            self.rst_out = Some(self.active_rst(now));
        }
        self.set_state(TcpState::Closed);
        Transition::Closed
    }

    /// Whether an ICMP error quoting a segment with sequence number `seq`
    /// can be about this connection: only a segment in flight can draw one,
    /// SND.UNA <= SEG.SEQ <= SND.NXT (RFC 5927 4.1; Linux tcp_v4_err). The
    /// highest sequence number sent stands for SND.NXT, which retransmission
    /// rewinds.
    pub fn icmp_seq_acceptable(&self, seq: SeqNumber) -> bool {
        self.snd.una <= seq && seq <= self.snd.max
    }

    /// An ICMP error other than "fragmentation needed" arrived for this
    /// connection. Fatal while connecting (as Linux's tcp_v4_err); once
    /// synchronized, every one is soft, kept for SO_ERROR and nothing more
    /// (RFC 1122 4.2.3.9 for the soft codes, RFC 5927 5.2 for the rest).
    pub fn on_icmp_error(&mut self, err: SocketError) -> Outcome {
        let t = self.icmp_error(err);
        self.outcome(t)
    }

    fn icmp_error(&mut self, err: SocketError) -> Transition {
        if self.state == TcpState::SynSent || self.state == TcpState::SynReceived && self.active {
            self.error = Some(err);
            self.set_state(TcpState::Closed);
            return Transition::Closed;
        }
        // In synchronized states errors are soft: remember, keep going.
        self.error = Some(err);
        Transition::None
    }

    /// Path MTU lowered (RFC 1191): clamp the MSS and resend what no longer fits.
    pub fn on_path_mtu(&mut self, mtu: usize) -> Outcome {
        self.path_mtu(mtu);
        self.outcome(Transition::None)
    }

    fn path_mtu(&mut self, mtu: usize) {
        if mtu >= 68 && mtu < self.opt.mtu {
            self.opt.mtu = mtu;
            if self.snd.in_flight() > 0 {
                self.snd.nxt = self.snd.una;
                // What was sent is lost, as after a timeout (RFC 6675 5.1).
                self.sb.on_rto(self.snd.max);
                if let Some(r) = self.rack.as_mut() {
                    r.log.on_rto(&self.sb);
                }
                self.spurious_on_mtu_resend();
            }
        }
    }
}
