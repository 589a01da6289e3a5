//! Segment arrival (RFC 9293 3.10.7.3 and 3.10.7.4): one function per
//! step of the RFC, in its order.

use super::*;
use core::ops::ControlFlow;

/// A segment as the arrival steps see it.
pub(super) struct Arrival<'a> {
    pub seg: &'a TcpRepr,
    pub payload: &'a [u8],
    /// SEG.SEQ.
    pub seq: SeqNumber,
    /// SEG.LEN: the payload, plus one for each of SYN and FIN.
    pub len: usize,
    /// RFC 9293 3.5 figure 7 (simultaneous open): in an active
    /// SYN-RECEIVED the peer's SYN-ACK (SEG.SEQ = IRS, SEG.ACK = SND.NXT)
    /// completes the handshake. The acceptability test would reject it
    /// (it lies before RCV.NXT) and the SYN check would challenge it; like
    /// Linux (tcp_validate_incoming), it is taken as the handshake's ACK,
    /// and draws no ACK of its own (figure 7 has none).
    pub simultaneous_synack: bool,
}

impl<'a> Arrival<'a> {
    pub fn new(c: &Connection, seg: &'a TcpRepr, payload: &'a [u8]) -> Self {
        let seq = SeqNumber(seg.seq);
        let simultaneous_synack = c.state == TcpState::SynReceived
            && c.active
            && seg.flags.syn()
            && seg.flags.ack()
            && !seg.flags.rst()
            && !seg.flags.fin()
            && payload.is_empty()
            && seq == c.rcv.irs
            && SeqNumber(seg.ack) == c.snd.max;
        Arrival {
            seg,
            payload,
            seq,
            len: payload.len() + usize::from(seg.flags.syn()) + usize::from(seg.flags.fin()),
            simultaneous_synack,
        }
    }
}

impl Connection {
    /// Process one segment for this connection. `now` is the arrival time.
    pub fn process(&mut self, now: Instant, seg: &TcpRepr, payload: &[u8]) -> Outcome {
        self.stats.segs_in += 1;
        let t = match self.state {
            // TIME-WAIT: the table's compact entry has the 4-tuple.
            TcpState::Closed | TcpState::Listen | TcpState::TimeWait => Transition::None,
            TcpState::SynSent => self.process_syn_sent(now, seg, payload),
            _ => self.process_synchronized(now, seg, payload),
        };
        self.outcome(t)
    }

    /// RFC 9293 3.10.7.3, SYN-SENT.
    pub(super) fn process_syn_sent(&mut self, now: Instant, seg: &TcpRepr, payload: &[u8]) -> Transition {
        let ack = SeqNumber(seg.ack);
        // First: check the ACK bit. RFC 9293's SND.NXT is the next new
        // sequence number, our snd.max: a SYN timeout rewinds snd.nxt to
        // resend the SYN, and a SYN-ACK arriving before that resend goes
        // is still acceptable (Linux compares with tp->snd_nxt, which a
        // retransmission does not rewind).
        if seg.flags.ack() && (ack <= self.snd.iss || ack > self.snd.max) {
            if !seg.flags.rst() {
                self.rst_out = Some(self.rst_repr(ack, None));
            }
            self.discard = Some(Discard::BadAck);
            return Transition::None;
        }
        let acceptable = seg.flags.ack(); // snd_una = iss < ack <= snd_nxt, checked above
                                          // Second: the RST bit. RFC 5961 3.2 keeps 9293's rule here: only a
                                          // RST acknowledging our SYN resets the connection.
        if seg.flags.rst() {
            if acceptable {
                self.error = Some(SocketError::ConnectionRefused);
                self.set_state(TcpState::Closed);
                return Transition::Closed;
            }
            self.discard = Some(Discard::RstNotExact);
            return Transition::None;
        }
        // Fourth: the SYN bit.
        if !seg.flags.syn() {
            return Transition::None;
        }
        self.learn_syn_options(now, seg);
        self.rcv.on_syn(SeqNumber(seg.seq));
        if acceptable {
            self.snd.una = ack;
            self.on_syn_acked(now, seg);
            // RFC 7323 2.2: a SYN's window is never scaled.
            self.snd.wl1 = SeqNumber(seg.seq);
            self.snd.wl2 = ack;
            self.snd.wnd = usize::from(seg.window);
            self.snd.max_wnd = self.snd.wnd;
            self.set_state(TcpState::Established);
            self.owed.insert(Owed::ACK);
            // "If there are other controls or text in the segment, continue
            // processing at the sixth step under Section 3.10.7.4": the
            // text (seventh step) and the FIN (eighth) are taken, not
            // dropped for the peer to send again.
            if !payload.is_empty() || seg.flags.fin() {
                self.receive_data(now, self.rcv.nxt, payload, seg.flags.fin());
                if self.rcv.fin == Some(self.rcv.nxt) {
                    self.rcv.nxt += 1;
                    self.set_state(TcpState::CloseWait);
                }
            }
            Transition::Connected
        } else {
            // Simultaneous open (RFC 9293 3.5 figure 7): answer with SYN-ACK.
            self.update_window(usize::from(seg.window), SeqNumber(seg.seq), self.snd.iss);
            self.opt.offered.window_scale = self
                .opt
                .offered
                .window_scale
                .filter(|_| seg.options.window_scale.is_some());
            self.opt.offered.sack_permitted &= seg.options.sack_permitted;
            self.opt.offered.timestamps = self.opt.offered.timestamps.filter(|_| self.opt.ts.is_some());
            self.snd.nxt = self.snd.iss; // resend our SYN, now with ACK
            self.set_state(TcpState::SynReceived);
            Transition::None
        }
    }

    /// RFC 9293 3.10.7.4: SYN-RECEIVED and every synchronized state, one
    /// step after the other; a step that disposes of the segment breaks
    /// out with the transition.
    pub(super) fn process_synchronized(&mut self, now: Instant, seg: &TcpRepr, payload: &[u8]) -> Transition {
        let arrival = Arrival::new(self, seg, payload);
        match self.segment_arrives(now, &arrival) {
            ControlFlow::Break(t) | ControlFlow::Continue(t) => t,
        }
    }

    fn segment_arrives(&mut self, now: Instant, a: &Arrival) -> ControlFlow<Transition, Transition> {
        self.check_syn_resent(a)?;
        self.check_paws(now, a)?;
        self.check_sequence(now, a)?;
        self.check_rst(now, a)?;
        self.check_syn(now, a)?;
        let transition = self.check_ack(now, a)?;
        self.update_ts_recent(now, a);
        self.check_fin_acked(now)?;
        self.process_text(now, a);
        self.process_fin(now)?;
        ControlFlow::Continue(transition)
    }

    /// A retransmitted SYN in passive SYN-RECEIVED: our SYN-ACK was lost.
    /// Linux answers with the SYN-ACK again rather than a challenge ACK.
    pub(super) fn check_syn_resent(&mut self, a: &Arrival) -> ControlFlow<Transition> {
        let seg = a.seg;
        if self.state == TcpState::SynReceived && seg.flags.syn() && !seg.flags.ack() && a.seq == self.rcv.irs
        {
            self.snd.nxt = self.snd.iss;
            return ControlFlow::Break(Transition::None);
        }
        ControlFlow::Continue(())
    }

    /// RFC 7323 5.3: PAWS, before the sequence check. Its ACK is one to
    /// an unacceptable segment like any other, so rate-limited (RFC 5961
    /// 7; Linux tcp_validate_incoming via tcp_oow_rate_limited).
    pub(super) fn check_paws(&mut self, now: Instant, a: &Arrival) -> ControlFlow<Transition> {
        if let (Some(ts), Some((tsval, _))) = (self.opt.ts, a.seg.options.timestamps) {
            if !a.seg.flags.rst() && ts_before(tsval, ts.recent) && now - ts.recent_at < PAWS_IDLE {
                if self.invalid_ack_allowed(now, a.seg, a.len) {
                    self.owed.insert(Owed::ACK);
                }
                self.discard = Some(Discard::Paws);
                return ControlFlow::Break(Transition::None);
            }
        }
        ControlFlow::Continue(())
    }

    /// First: the sequence number (the acceptability test).
    pub(super) fn check_sequence(&mut self, now: Instant, a: &Arrival) -> ControlFlow<Transition> {
        if a.simultaneous_synack || self.acceptable(a) {
            return ControlFlow::Continue(());
        }
        if !a.seg.flags.rst() {
            // RFC 9293: send <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>.
            let allowed = self.invalid_ack_allowed(now, a.seg, a.len);
            self.owed.set(Owed::ACK, allowed);
            // RFC 2883 4: with a D-SACK of the old part, which tells the
            // peer its retransmission was spurious (Linux tcp_send_dupack).
            // A SYN is answered by a challenge ACK instead (check_syn).
            if a.len > 0 && !a.seg.flags.syn() && a.seq < self.rcv.nxt {
                self.note_dsack(a.seq, (a.seq + a.len).min(self.rcv.nxt));
            }
        }
        self.discard = Some(Discard::OutOfWindow);
        ControlFlow::Break(Transition::None)
    }

    /// RFC 9293 3.10.7.4's table of the four cases.
    fn acceptable(&self, a: &Arrival) -> bool {
        let (seq, nxt, wnd) = (a.seq, self.rcv.nxt, self.rcv.wnd());
        if a.len == 0 {
            if wnd == 0 {
                seq == nxt
            } else {
                nxt <= seq && seq < nxt + wnd
            }
        } else if wnd == 0 {
            // RFC 9293: "If the RCV.WND is zero, no segments will be
            // acceptable, but special allowance should be made to accept
            // valid ACKs, URGs, and RSTs". We also accept a segment starting
            // exactly at RCV.NXT so its ACK and FIN are processed (its data
            // is dropped below for lack of room), as Linux does.
            seq == nxt
        } else {
            let last = seq + (a.len - 1);
            (nxt <= seq && seq < nxt + wnd) || (nxt <= last && last < nxt + wnd)
        }
    }

    /// Second: the RST bit, with RFC 5961 3.2's exact-match rule.
    pub(super) fn check_rst(&mut self, now: Instant, a: &Arrival) -> ControlFlow<Transition> {
        if !a.seg.flags.rst() {
            return ControlFlow::Continue(());
        }
        if a.seq != self.rcv.nxt {
            // In window but not exact: challenge ACK (rate-limited).
            self.challenge_ack(now);
            self.discard = Some(Discard::RstNotExact);
            return ControlFlow::Break(Transition::None);
        }
        ControlFlow::Break(self.on_reset())
    }

    /// Fourth: the SYN bit (RFC 5961 4.2): in any synchronized state
    /// (and SYN-RECEIVED), a SYN gets a challenge ACK and is dropped.
    pub(super) fn check_syn(&mut self, now: Instant, a: &Arrival) -> ControlFlow<Transition> {
        if a.seg.flags.syn() && !a.simultaneous_synack {
            self.challenge_ack(now);
            self.discard = Some(Discard::Syn);
            return ControlFlow::Break(Transition::None);
        }
        ControlFlow::Continue(())
    }

    /// Fifth: the ACK field. Continues with the transition the ACK made
    /// (a completed handshake).
    pub(super) fn check_ack(&mut self, now: Instant, a: &Arrival) -> ControlFlow<Transition, Transition> {
        let seg = a.seg;
        if !seg.flags.ack() {
            self.discard = Some(Discard::NoAck);
            return ControlFlow::Break(Transition::None);
        }
        let ack = SeqNumber(seg.ack);
        if self.state == TcpState::SynReceived {
            return self.ack_in_syn_received(now, a, ack);
        }
        // RFC 5961 5.2: acceptable if SND.UNA - MAX.SND.WND <= SEG.ACK <= SND.NXT.
        if ack > self.snd.max || ack < self.snd.una - self.snd.max_wnd.max(1) {
            // RFC 9293: ACK for something not yet sent: ACK and drop;
            // RFC 5961 5.2: an ACK too old to be acceptable, the same,
            // as a challenge ACK (rate-limited, as Linux).
            self.challenge_ack(now);
            self.discard = Some(Discard::BadAck);
            return ControlFlow::Break(Transition::None);
        }
        self.process_ack(now, seg, ack, a.payload.len());
        ControlFlow::Continue(Transition::None)
    }

    /// SYN-RECEIVED: an ACK of our SYN completes the handshake; any other
    /// draws <SEQ=SEG.ACK><CTL=RST>.
    fn ack_in_syn_received(
        &mut self,
        now: Instant,
        a: &Arrival,
        ack: SeqNumber,
    ) -> ControlFlow<Transition, Transition> {
        let seg = a.seg;
        // RFC 9293 3.10.7.4: SND.UNA < SEG.ACK =< SND.NXT, SND.NXT
        // being the next new sequence number (snd.max): a retransmitted
        // SYN from the peer rewinds snd.nxt to resend our SYN-ACK, and
        // the peer's ACK of the first SYN-ACK may arrive before that
        // resend goes. Judged against snd.nxt it would draw a RST at
        // exactly the peer's RCV.NXT, resetting its established side.
        if !(self.snd.una < ack && ack <= self.snd.max) {
            self.rst_out = Some(self.rst_repr(ack, None));
            self.discard = Some(Discard::BadAck);
            return ControlFlow::Break(Transition::None);
        }
        if !self.active && a.len == 0 && self.retries < self.defer_accept {
            // TCP_DEFER_ACCEPT: a bare ACK does not complete the
            // connection; wait for the first data (Linux
            // tcp_check_req drops it and marks the request acked).
            self.defer_acked = true;
            return ControlFlow::Break(Transition::None);
        }
        self.snd.una = ack;
        self.on_syn_acked(now, seg);
        // RFC 7323 2.2: the window of a SYN (here a simultaneous
        // open's SYN-ACK) is never scaled.
        let shift = if seg.flags.syn() { 0 } else { self.snd.wscale };
        self.snd.wnd = usize::from(seg.window) << shift;
        self.snd.max_wnd = self.snd.max_wnd.max(self.snd.wnd);
        self.snd.wl1 = a.seq;
        self.snd.wl2 = ack;
        self.set_state(TcpState::Established);
        if self.snd.fin_queued {
            self.set_state(TcpState::FinWait1);
        }
        ControlFlow::Continue(if self.active {
            Transition::Connected
        } else {
            Transition::Established
        })
    }

    /// Timestamps (RFC 7323 4.3): TS.Recent takes SEG.TSval only if
    /// SEG.SEQ <= Last.ACK.sent, so an ACK covering several segments
    /// (a delayed ACK) echoes the earliest of them and the peer's RTT
    /// sample includes our delay (Linux: tcp_replace_ts_recent vs rcv_wup).
    /// The segment also shows the peer alive (keepalive).
    pub(super) fn update_ts_recent(&mut self, now: Instant, a: &Arrival) {
        if let (Some(ts), Some((tsval, _))) = (self.opt.ts.as_mut(), a.seg.options.timestamps) {
            if a.seq <= self.rcv.last_ack_sent && !ts_before(tsval, ts.recent) {
                ts.recent = tsval;
                ts.recent_at = now;
            }
        }
        self.last_recv = now;
        if self.keepalive.enabled {
            self.keepalive.probes_sent = 0;
            self.timers[Timer::Keepalive] = Some(now + self.keepalive.idle);
        }
    }

    /// Fifth step, by state: what our FIN being acknowledged does in
    /// FIN-WAIT-1, CLOSING and LAST-ACK. (TIME-WAIT's rules are the
    /// compact entry's, in `time_wait.rs`: no segment reaches a connection
    /// in TIME-WAIT.)
    pub(super) fn check_fin_acked(&mut self, now: Instant) -> ControlFlow<Transition> {
        let fin_acked = self.snd.fin_acked();
        match self.state {
            TcpState::FinWait1 if fin_acked => self.set_state(TcpState::FinWait2),
            TcpState::Closing if fin_acked => {
                self.enter_time_wait(now);
                return ControlFlow::Break(Transition::TimeWait);
            }
            TcpState::LastAck if fin_acked => {
                self.set_state(TcpState::Closed);
                return ControlFlow::Break(Transition::Closed);
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    /// A RST passed RFC 5961's exact-sequence test (RFC 9293 3.10.7.4,
    /// second check).
    pub(super) fn on_reset(&mut self) -> Transition {
        let state = self.state;
        self.set_state(TcpState::Closed);
        match state {
            TcpState::SynReceived if !self.active => Transition::BackToListen,
            TcpState::SynReceived => {
                self.error = Some(SocketError::ConnectionRefused);
                Transition::Closed
            }
            TcpState::Established | TcpState::FinWait1 | TcpState::FinWait2 | TcpState::CloseWait => {
                self.error = Some(SocketError::ConnectionReset);
                Transition::Closed
            }
            _ => Transition::Closed,
        }
    }

    /// RFC 5961 (3.2, 4.2, 5.2): answer with a challenge ACK, within this
    /// connection's limit here and the interface's budget in the owner.
    /// The limit applies whatever the segment carries (Linux
    /// tcp_send_challenge_ack uses __tcp_oow_rate_limited, without the
    /// exemption for data): else an off-path attacker's in-window RST or
    /// too-old ACK with a byte of payload is answered every time, and its
    /// answers can be counted (CVE-2016-5696).
    pub(super) fn challenge_ack(&mut self, now: Instant) {
        self.challenge = Some(if self.oow_ack_allowed(now) {
            Challenge::Send
        } else {
            Challenge::Suppressed
        });
    }

    /// Whether an unacceptable segment may be answered with an ACK now
    /// (TcpConfig::invalid_ratelimit; Linux tcp_oow_rate_limited). A
    /// segment with data (and no SYN) always may: it cannot be one side
    /// of an ACK loop, and its ACK may be what the peer needs to recover
    /// from a lost one (RFC 9293 3.10.7.4 answers every unacceptable
    /// segment; the limit is the throttling RFC 5961 7 recommends).
    pub(super) fn invalid_ack_allowed(&mut self, now: Instant, seg: &TcpRepr, seg_len: usize) -> bool {
        (seg_len > 0 && !seg.flags.syn()) || self.oow_ack_allowed(now)
    }

    /// This connection's limit on ACKs to unacceptable segments, one per
    /// `invalid_ratelimit` (Linux __tcp_oow_rate_limited).
    fn oow_ack_allowed(&mut self, now: Instant) -> bool {
        let limit = self.cfg.invalid_ratelimit;
        if limit.is_zero() {
            return true;
        }
        if self.last_invalid_ack.is_some_and(|t| now < t + limit) {
            self.stats.acks_rate_limited += 1;
            return false;
        }
        self.last_invalid_ack = Some(now);
        true
    }

    pub(super) fn enter_time_wait(&mut self, now: Instant) {
        self.set_state(TcpState::TimeWait);
        self.timers[Timer::TimeWait] = Some(now + self.cfg.time_wait);
        self.timers[Timer::Rto] = None;
        self.timers[Timer::Persist] = None;
        self.timers[Timer::Keepalive] = None;
        self.timers[Timer::DelayedAck] = None;
    }
}
