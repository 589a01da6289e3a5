//! RFC 9293 3.10.7.4, fifth step: what an acceptable ACK does to the
//! send side (RFC 5681 congestion control, RFC 6298 RTT, window update).

use super::*;
use crate::socket::tcp::cc::AckEvent;
use crate::socket::tcp::recovery::{Prr, DUP_THRESH};

impl Connection {
    /// Our SYN was acknowledged: measure it and stop its timer.
    pub(super) fn on_syn_acked(&mut self, now: Instant, seg: &TcpRepr) {
        // RTT: the echoed timestamp says which transmission of the SYN was
        // acknowledged, so it gives a sample even after a resend (RFC 7323
        // 4.1; Linux tcp_ack_update_rtt); without timestamps only an
        // unrepeated SYN is timed (Karn, RFC 6298 3: a resend clears the
        // probe). Either way the SYN's probe is done with.
        if let Some(rtt) = self.rtt_sample(now, seg, self.snd.una) {
            self.rtt.sample(rtt, self.snd.una, self.snd.max);
            self.rack_rtt_sample(rtt);
        }
        self.rtt_probe = None;
        self.retries = 0;
        self.rtt.reset_backoff();
        self.timers[Timer::Rto] = None;
        // A SYN resend scheduled (snd.nxt rewound) but not yet sent is moot.
        self.snd.nxt = self.snd.nxt.max(self.snd.una);
        self.last_recv = now;
        if self.keepalive.enabled {
            self.timers[Timer::Keepalive] = Some(now + self.keepalive.idle);
        }
    }

    /// The RTT sample an ACK of `ack` gives: timestamps where we have them
    /// (RFC 7323 4), else Karn's timed segment (RFC 6298 3), which the
    /// sample uses up. Samples of a minute or more are no sample.
    fn rtt_sample(&mut self, now: Instant, seg: &TcpRepr, ack: SeqNumber) -> Option<Duration> {
        let sample = match (self.opt.ts, seg.options.timestamps) {
            (Some(_), Some((_, tsecr))) if tsecr != 0 => Some(Duration::from_millis(u64::from(
                self.tsval(now).wrapping_sub(tsecr),
            ))),
            _ => match self.rtt_probe {
                Some((probe, sent)) if ack > probe => {
                    self.rtt_probe = None;
                    Some(now - sent)
                }
                _ => None,
            },
        };
        sample.filter(|&r| r < Duration::from_secs(60))
    }

    /// RFC 9293 3.10.7.4 fifth check for synchronized states: new data
    /// acknowledged, SACK blocks (RFC 2018, RFC 6675 Update()), duplicate
    /// ACKs and loss recovery (RFC 5681 3.2, RFC 6675 5, RFC 6582),
    /// window updates.
    pub(super) fn process_ack(&mut self, now: Instant, seg: &TcpRepr, ack: SeqNumber, payload_len: usize) {
        let seq = SeqNumber(seg.seq);
        let window = usize::from(seg.window) << self.snd.wscale;
        let prior_una = self.snd.una;
        let mss = self.payload_mss();
        let spurious = self.spurious_before_ack(seg, ack);
        if ack >= self.snd.una {
            // The peer is there: a probe was answered, whatever the window
            // (RFC 1122 4.2.2.17; Linux tcp_ack clears icsk_probes_out).
            self.probes_out = 0;
        }
        // RFC 7661 (and Linux's tcp_is_cwnd_limited): grow the window
        // only if the sender was using it; an application-limited
        // sender would otherwise inflate cwnd without bound on a clean
        // path, and burst when it finally has data.
        let in_flight = self.snd.in_flight();
        let cwnd_limited = self.usage.validates(self.cc.window(), self.cc.ssthresh());
        // For PRR (RFC 6937 DeliveredData) and its SSRB rule.
        let sacked_before = self.sb.sacked_bytes();
        let lost_before = self.sb.lost_boundary(mss);
        // NewReno's DeliveredData, estimated without SACK (RFC 6937 3).
        let mut newreno_delivered = 0;
        let mut acked = 0;
        let mut rtt = None;
        if ack > self.snd.una {
            acked = ack.distance(self.snd.una);
            // The FIN occupies a sequence number but no buffer byte.
            if self.snd.fin_seq.is_some_and(|f| ack > f) {
                acked -= 1;
            }
            let acked = self.snd.buf.dequeue_allocated(acked);
            self.stats.bytes_acked += acked as u64;
            self.snd.una = ack;
            if self.snd.nxt < self.snd.una {
                self.snd.nxt = self.snd.una;
            }
            self.sb.on_cumulative_ack(ack);
            if self.recover.is_some_and(|r| ack >= r) {
                self.recover = None;
                if let Some(r) = self.rack.as_mut() {
                    r.on_recovery_exit();
                }
            }
            rtt = self.rtt_sample(now, seg, ack);
            if let Some(rtt) = rtt {
                self.rtt.sample(rtt, self.snd.una, self.snd.max);
            }
            self.retries = 0;
            // No rtt.reset_backoff() here: without a valid sample (the ACK
            // covers a retransmission) the backed-off RTO stays until one
            // arrives (Karn, RFC 6298 5.7; Linux tcp_ack_update_rtt).
            // Progress: the persist timer starts over too (Linux shares
            // icsk_backoff between RTO and probes).
            self.persist_backoff = 0;
        }
        // RFC 2018, RFC 6675 Update(): the SACK blocks, if negotiated, of
        // any acceptable ACK, an old one (reordered, below SND.UNA)
        // included: what it SACKs above SND.UNA is as true as when it was
        // sent (Linux tcp_ack tags the SACKs of an old ACK and runs
        // recovery on them).
        let newly_sacked = if self.opt.sack_ok && !seg.options.sack_blocks.is_empty() {
            // A D-SACK block (RFC 2883) reports a duplicate, not data held.
            let blocks = seg.options.sack_blocks.iter().skip(spurious.skip_blocks);
            self.sb.update(self.snd.una, self.snd.max, blocks)
        } else {
            0
        };
        self.rack_on_ack(now, seg, rtt);
        // The controller's sample is the newest delivered segment's where
        // RACK's log has it (Rack::ack_rtt; Linux's ca_rtt_us).
        let ca_rtt = self.rack.as_ref().and_then(|r| r.ack_rtt()).or(rtt);
        let rack = self.rack_on();
        if ack > prior_una {
            match self.recovery {
                // RFC 6675 5 (A), RFC 6582 3.2 step 6: a full ACK.
                Some(r) if ack >= r.point => self.end_recovery(now),
                // RFC 6675 5 (B): the scoreboard has it; stay.
                Some(r) if r.sack => {}
                Some(_) => newreno_delivered = self.newreno_partial_ack(acked, mss),
                None => self.cc.on_ack(&AckEvent {
                    now,
                    acked,
                    mss,
                    rtt: ca_rtt,
                    srtt: self.rtt.srtt(),
                    una: self.snd.una,
                    snd_max: self.snd.max,
                    cwnd_limited,
                    in_flight,
                    rto: self.rtt.rto(),
                }),
            }
            // RFC 6675 2: a cumulative ACK resets DupAcks.
            self.dup_acks = 0;
            // RFC 6298 5.2/5.3: stop the timer when all is acked, else
            // restart; NewReno restarts it on the first partial ACK only
            // (RFC 6582 3.2 step 5, the Impatient variant of its section 4),
            // so a recovery losing segment after segment falls back on the
            // timer instead of crawling one segment per round trip.
            let impatient = self.recovery.is_some_and(|r| !r.sack && r.partial_acks > 1);
            if self.snd.in_flight() == 0 {
                self.timers[Timer::Rto] = None;
            } else if !impatient {
                self.timers[Timer::Rto] = Some(now + self.rtt.rto());
            }
            self.unacked_since = (self.snd.in_flight() > 0).then_some(now);
            if self.opt.sack_ok && self.sb.check_reneging(self.snd.una) {
                // RFC 2018 8, as Linux tcp_check_sack_reneging: the peer
                // discarded what it SACKed. Give it half an RTT (at least
                // 10 ms) to acknowledge further, then time out and forget
                // the SACKs.
                let half = self.rtt.srtt().unwrap_or(self.rtt.rto()) / 2;
                self.timers[Timer::Rto] = Some(now + half.max(Duration::from_millis(10)));
            }
            if self.rtt_probe.is_some_and(|(p, _)| p < self.snd.una) {
                self.rtt_probe = None;
            }
        } else if ack == self.snd.una
            && self.snd.in_flight() > 0
            && (newly_sacked > 0
                || (payload_len == 0 && !seg.flags.syn() && !seg.flags.fin() && window == self.snd.wnd))
        {
            // RFC 5681 2: a duplicate ACK needs outstanding data, no data
            // of its own, no SYN/FIN, and an unchanged window; RFC 6675 2:
            // or it SACKs octets not SACKed before.
            self.dup_acks += 1;
            self.stats.dup_acks_in += 1;
            match self.recovery.as_mut() {
                // With RACK, its loss marks start recovery (below).
                None if rack => {}
                None => {
                    // RFC 6675 5 steps 1-2: DupThresh duplicates, or the
                    // first unacknowledged octet lost by the SACKs above
                    // it; RFC 6582 3.2 step 1 and RFC 6675 5.1: not before
                    // the last recovery's or timeout's "recover" is acked.
                    let lost = self.opt.sack_ok && self.sb.is_lost(self.snd.una, mss);
                    if self.recover.is_none() && (self.dup_acks as usize >= DUP_THRESH || lost) {
                        // RFC 5681 3.2 step 2: data sent by limited
                        // transmit (beyond cwnd) MUST NOT count in the
                        // FlightSize that sets ssthresh.
                        let flight = self.snd.in_flight().min(self.cc.window().max(mss));
                        self.enter_recovery(now, flight, mss);
                        newreno_delivered = mss;
                    }
                }
                // RFC 5681 3.2 step 4 (RFC 6582 keeps it after partial
                // ACKs): each further duplicate ACK means a segment left
                // the network; PRR lets its share of one go.
                Some(r) if !r.sack => {
                    r.dup_delivered = (r.dup_delivered + mss).min(self.snd.in_flight().saturating_sub(mss));
                    newreno_delivered = mss;
                }
                // RFC 6675 5 (B): the scoreboard and pipe say it.
                Some(_) => {}
            }
        }
        // RFC 8985 6.2 step 5: RACK marks what this ACK shows lost, which
        // may start recovery.
        let rack_lost = self.rack_detect_loss(now);
        self.rack_enter_recovery(now);
        if self.recovery.is_some_and(|r| !r.sack) {
            // RFC 6937 for NewReno: a partial ACK marks the next segment
            // lost, so no SSRB extra segment for it (as Linux).
            let (pipe, ssthresh) = (self.pipe(mss), self.cc.ssthresh());
            let advanced = ack > prior_una;
            if let Some(r) = self.recovery.as_mut() {
                r.prr
                    .on_ack(newreno_delivered, pipe, ssthresh, mss, advanced, advanced);
            }
        } else if self.recovery.is_some() {
            // RFC 6937: DeliveredData is the change in SND.UNA plus the
            // change in SACKed bytes.
            let delivered = (acked + self.sb.sacked_bytes()).saturating_sub(sacked_before);
            let newly_lost = match (lost_before, self.sb.lost_boundary(mss)) {
                _ if rack => rack_lost > 0,
                (None, Some(_)) => true,
                (Some(b), Some(a)) => a > b,
                _ => false,
            };
            let (pipe, ssthresh) = (self.pipe(mss), self.cc.ssthresh());
            if let Some(r) = self.recovery.as_mut() {
                r.prr
                    .on_ack(delivered, pipe, ssthresh, mss, ack > prior_una, newly_lost);
            }
        }
        // RFC 9293 3.10.7.4 updates the send window if SND.UNA =< SEG.ACK
        // and (SND.WL1 < SEG.SEQ or (SND.WL1 = SEG.SEQ and SND.WL2 =<
        // SEG.ACK)). Like Linux (tcp_may_update_window), a segment that
        // advances neither SEG.SEQ nor SEG.ACK may only open the window (or
        // close it to zero): a duplicated or reordered old ACK (same SEQ,
        // same ACK, the smaller window from before the peer's application
        // read) would otherwise shrink it below data the peer has already
        // taken. acceptable_seq() then put the stale right edge, below the
        // peer's RCV.NXT, on every ACK we sent; the peer dropped them all as
        // unacceptable and neither side's SND.UNA moved again.
        // RFC 8985 7.4, then 7.2: the probe's episode, and the PTO.
        let pure_dup = ack == prior_una && newly_sacked == 0 && payload_len == 0 && window == self.snd.wnd;
        self.tlp_on_ack(now, seg, ack, pure_dup);
        if ack > prior_una {
            self.schedule_tlp(now);
        } else {
            self.check_tlp();
        }
        let newer = ack > prior_una
            || self.snd.wl1 < seq
            || (self.snd.wl1 == seq && (window > self.snd.wnd || window == 0));
        if ack >= prior_una && newer {
            self.update_window(window, seq, ack);
        }
        self.spurious_after_ack(now, seg, &spurious, newly_sacked);
        self.expand_send_buffer();
    }

    /// Send-buffer autotuning, as Linux's tcp_sndbuf_expand: room for
    /// twice the congestion window, so the application can keep a window
    /// in flight and another queued behind it, up to
    /// `TcpConfig::send_buffer_max`, unless SO_SNDBUF fixed the size. Only
    /// the bound grows; memory follows what the application writes.
    fn expand_send_buffer(&mut self) {
        if self.snd_buf_locked {
            return;
        }
        let want = self.cc.window().saturating_mul(2).min(self.cfg.send_buffer_max);
        if want > self.snd.buf.capacity() {
            let _ = self.snd.buf.resize(want);
        }
    }

    pub(super) fn update_window(&mut self, window: usize, seq: SeqNumber, ack: SeqNumber) {
        let was_zero = self.snd.wnd == 0;
        self.snd.wnd = window;
        self.snd.max_wnd = self.snd.max_wnd.max(window);
        self.snd.wl1 = seq;
        self.snd.wl2 = ack;
        if window > 0 && was_zero {
            self.timers[Timer::Persist] = None;
            self.persist_backoff = 0;
            self.probes_since = None;
        }
    }
}

impl Connection {
    /// RFC 6675 5 step 4, RFC 5681 3.2 steps 2-3: a congestion event, the
    /// fast retransmit, and recovery until SND.NXT as of now (HighData,
    /// RecoveryPoint) is acknowledged. With SACK blocks from the peer
    /// the scoreboard and pipe drive it (RFC 6675); without, NewReno
    /// (RFC 6582), counting each duplicate ACK as a segment delivered.
    /// Either way PRR (RFC 6937) says how much goes per ACK, where RFC
    /// 5681 3.2 inflated the window by a segment per duplicate.
    pub(super) fn enter_recovery(&mut self, now: Instant, flight: usize, mss: usize) {
        let prior_cwnd = self.cc.window();
        self.cc.on_congestion_event(now, flight, mss);
        // With RACK, SACK-based recovery whatever the scoreboard holds:
        // the records say what is lost and in flight.
        let sack = self.opt.sack_ok && (!self.sb.is_empty() || self.rack_on());
        self.recovery = Some(Recovery {
            point: self.snd.max,
            sack,
            dup_delivered: if sack {
                0
            } else {
                (self.dup_acks as usize * mss).min(self.snd.in_flight().saturating_sub(mss))
            },
            partial_acks: 0,
            prr: Prr::new(prior_cwnd, self.cc.ssthresh()),
        });
        self.recover = Some(self.snd.max);
        self.stats.fast_recoveries += 1;
        self.undo.start(self.snd.una);
        self.sb.on_recovery_start();
        self.owed.insert(Owed::FAST_RETRANSMIT);
        self.rtt_probe = None;
        // Recovery ends a probe's episode (Linux tcp_init_cwnd_reduction)
        // and allows no probe (RFC 8985 7.2).
        if let Some(r) = self.rack.as_mut() {
            r.tlp.end_seq = None;
        }
        self.timers[Timer::Tlp] = None;
    }

    /// RFC 6582 3.2 step 5: a partial ACK. Retransmit the first
    /// unacknowledged segment and stay in fast recovery. RFC 6582's
    /// partial window deflation is PRR's business here: the ACK covers
    /// the retransmission and segments the duplicates already counted as
    /// delivered (Linux tcp_remove_reno_sacks). Returns DeliveredData.
    fn newreno_partial_ack(&mut self, acked: usize, mss: usize) -> usize {
        let mut delivered = 0;
        if let Some(r) = self.recovery.as_mut() {
            r.partial_acks += 1;
            delivered = acked.saturating_sub(r.dup_delivered).max(mss);
            r.dup_delivered = r.dup_delivered.saturating_sub(acked.saturating_sub(mss));
        }
        self.owed.insert(Owed::FAST_RETRANSMIT);
        delivered
    }

    /// RFC 5681 3.2 step 6: back to cwnd = ssthresh (the controller's),
    /// from PRR's window. The scoreboard keeps what lies above SND.UNA (RFC
    /// 6675 5 (A)).
    fn end_recovery(&mut self, now: Instant) {
        self.recovery = None;
        self.cc.on_recovery_end(now);
    }

    /// The congestion window the sender may use: PRR's in recovery (RFC
    /// 6937), else the controller's.
    pub(super) fn send_window(&self) -> usize {
        match self.recovery {
            Some(r) => r.prr.cwnd,
            None => self.cc.window(),
        }
    }

    /// `len` sequence numbers went out: PRR counts what recovery sends.
    pub(super) fn on_sent_in_recovery(&mut self, len: usize) {
        if let Some(r) = self.recovery.as_mut() {
            r.prr.on_send(len);
        }
    }

    /// RFC 6675 SetPipe(): the octets in the network. Without SACK, what
    /// was sent from SND.UNA to SND.NXT (which a timeout rewinds), less,
    /// in NewReno's recovery, what the duplicate ACKs say was delivered
    /// and the first segment while its retransmission is due (Linux
    /// tcp_packets_in_flight with its Reno "sacked_out").
    pub(super) fn pipe(&self, mss: usize) -> usize {
        if let Some(r) = self.recovery.filter(|r| !r.sack) {
            let lost = if self.owed.contains(Owed::FAST_RETRANSMIT) {
                mss
            } else {
                0
            };
            return self
                .snd
                .nxt
                .distance(self.snd.una)
                .saturating_sub(r.dup_delivered + lost);
        }
        if !self.opt.sack_ok {
            if let Frto::NewDataSent { high, rtx_end } = self.frto {
                // F-RTO step 2.b sent new data past what the timeout
                // counts lost (Linux tcp_enter_loss marks it all): in the
                // network are the retransmission and the new data.
                return rtx_end.distance(self.snd.una) + self.snd.nxt.distance(high.max(self.snd.una));
            }
            return self.snd.nxt.distance(self.snd.una);
        }
        if self.rack_on() {
            return self.rack().log.pipe(&self.sb);
        }
        self.sb.pipe(self.snd.una, self.snd.max, self.rxt_to(), mss)
    }

    /// Where retransmission has got to: HighRxt, or after a timeout
    /// SND.NXT, which retransmits from SND.UNA.
    pub(super) fn rxt_to(&self) -> Option<SeqNumber> {
        match (self.sb.high_rxt(), self.snd.nxt < self.snd.max) {
            (h, true) => Some(h.map_or(self.snd.nxt, |h| h.max(self.snd.nxt))),
            (h, false) => h,
        }
    }
}

/// How much of cwnd the sender used over the current window of data
/// (until SND.UNA passes `end`), as Linux's tcp_cwnd_validate keeps it:
/// whether cwnd ever held sending back, and the most in flight. RFC 7661
/// measures the data acknowledged over an RTT (pipeACK); the window's
/// largest flight is the same measure taken at the sender, and unlike the
/// flight left when an ACK arrives it does not shrink as the window
/// drains (an application that wrote ten segments at once used ten).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct CwndUsage {
    limited: bool,
    max_flight: usize,
    end: Option<SeqNumber>,
}

impl CwndUsage {
    /// Data went out; `flight` is in the network now, and `limited` says
    /// cwnd allows no more.
    pub(super) fn on_send(&mut self, una: SeqNumber, snd_max: SeqNumber, flight: usize, limited: bool) {
        let window_over = self.end.is_none_or(|e| una >= e);
        if window_over || limited || (!self.limited && flight > self.max_flight) {
            self.limited = limited;
            self.max_flight = flight;
            self.end = Some(snd_max);
        }
    }

    /// Whether an ACK may grow cwnd: cwnd held sending back in this
    /// window, or in slow start cwnd is below twice the largest flight
    /// (RFC 7661 4.3 validates cwnd while pipeACK >= cwnd / 2; Linux
    /// tcp_is_cwnd_limited, strictly below).
    pub(super) fn validates(&self, cwnd: usize, ssthresh: usize) -> bool {
        self.limited || (cwnd < ssthresh && cwnd < 2 * self.max_flight)
    }
}
