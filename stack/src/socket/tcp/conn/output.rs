//! What the connection sends next (RFC 9293 3.10.7 answers, RFC 9293
//! 3.8.6 window management, RFC 5681/6298 retransmission).

use super::*;
use crate::socket::tcp::recovery::NextSeg;

/// A segment to send: header fields, and the offset and length of its
/// payload in the send buffer.
pub(crate) type OutSegment = (TcpRepr, usize, usize);

/// Segment sizes for this output decision.
#[derive(Clone, Copy)]
pub(super) struct Sizes {
    /// The SMSS congestion control counts in (timestamps taken off).
    mss: usize,
    /// What a segment may carry now, SACK blocks taken off.
    payload_max: usize,
    /// What one segment of new data may carry when the device cuts it
    /// (TSO): a multiple of `payload_max`; `payload_max` without TSO.
    pub(super) burst_max: usize,
    /// [`Connection::pacing_rate`], once per decision: it divides by SRTT,
    /// and each segment sent consults it twice. Like Linux's
    /// sk_pacing_rate, which changes on ACKs, not on sends, the segment
    /// just sent does not change the rate it is paced at.
    pacing_rate: Option<u64>,
}

/// `len` rounded down to whole pieces of `piece` bytes (`piece` > 0).
/// Without TSO nearly every call has at most one piece, and then no
/// division: a 64-bit one costs tens of cycles, and the output path asked
/// for five per segment.
fn whole_pieces(len: usize, piece: usize) -> usize {
    if len < piece.saturating_mul(2) {
        if len >= piece {
            piece
        } else {
            0
        }
    } else {
        len / piece * piece
    }
}

/// Where the send windows stand for this output decision.
struct Usable {
    /// Offset of SND.NXT in the send buffer.
    offset: usize,
    /// Bytes queued beyond SND.NXT.
    unsent: usize,
    /// SND.NXT is below the highest sequence sent (go-back-N).
    is_retransmit: bool,
    /// Bytes limited transmit allows beyond cwnd.
    limited: usize,
    /// The right edge of what may be sent.
    end: SeqNumber,
    /// From SND.NXT to `end`.
    usable: usize,
}

/// RFC 1122 4.2.3.4: the sender SWS override timeout is 0.1 to 1.0 s.
const SWS_OVERRIDE_MIN: Duration = Duration::from_millis(100);
const SWS_OVERRIDE_MAX: Duration = Duration::from_secs(1);

impl Connection {
    /// The window to advertise now, and whether it moves the right edge by
    /// enough to be worth an update. RFC 9293 3.8.6.2.2 (receiver-side SWS
    /// avoidance): open the window only in steps of min(buffer/2, MSS), and
    /// never move the right edge left (RFC 1122 4.2.2.16), except by less
    /// than the window scale's granularity where keeping it would promise
    /// more than the buffer holds (RFC 7323 2.4).
    /// Whether an ACK now would advertise at least the window last
    /// advertised, measured from its own acknowledgment: the right edge
    /// moves on by all that arrived since (Linux __tcp_ack_snd_check,
    /// `__tcp_select_window(sk) >= tp->rcv_wnd`). Not so while what arrived
    /// waits unread, unless the buffer grew meanwhile.
    pub(super) fn ack_would_advance_window(&self) -> bool {
        let (wnd, _) = self.window_to_advertise();
        wnd >= self.rcv.adv.distance(self.rcv.last_ack_sent)
    }

    pub(super) fn window_to_advertise(&self) -> (usize, bool) {
        let free = self.rcv.buf.window();
        let current = self.rcv.wnd();
        let step = (self.rcv.buf.capacity() / 2).min(self.opt.our_mss).max(1);
        let max = 65535usize << self.rcv.wscale;
        let wnd = if free >= current + step || (free > current && free == self.rcv.buf.capacity()) {
            free.min(max)
        } else {
            current.min(max)
        };
        // The scaled field rounds down; round the granted window down with
        // it. What was already promised is kept by rounding it up, but only
        // if the buffer holds that much: RFC 7323 2.4 lets the edge retract
        // by less than the granularity rather than advertise beyond the
        // buffer, and its rule 1 has us honour every window we advertised,
        // which a promise beyond the buffer cannot be (the data would be
        // dropped in window). Rounding up regardless let the edge creep
        // right by up to a granule with every ACK while the application
        // did not read, and the window never closed: the buffer full, we
        // still offered a granule, and dropped what came into it.
        let granularity = 1usize << self.rcv.wscale;
        let kept = current.div_ceil(granularity) * granularity;
        let kept = if kept <= free {
            kept
        } else {
            current / granularity * granularity
        };
        let wnd = (wnd / granularity * granularity).max(kept).min(max);
        (wnd, wnd > current && wnd - current >= step)
    }

    pub(super) fn rst_repr(&self, seq: SeqNumber, ack: Option<SeqNumber>) -> TcpRepr {
        crate::socket::tcp::table::rst_repr(self.local.port(), self.remote.port(), seq, ack)
    }

    /// The owner's budget allows the challenge ACK an [`Outcome`] asked
    /// for (RFC 5961 7): send it at the next opportunity.
    pub fn grant_challenge(&mut self) {
        self.owed.insert(Owed::ACK);
    }

    /// The next segment to send, if any: header fields, plus the offset and
    /// length of its data in the send buffer (see [`Self::copy_data`]).
    pub fn poll_segment(&mut self, now: Instant) -> Option<(TcpRepr, usize, usize)> {
        match self.state {
            // TIME-WAIT: the compact entry answers for the connection.
            TcpState::Closed | TcpState::Listen | TcpState::TimeWait => None,
            TcpState::SynSent | TcpState::SynReceived => self.poll_handshake(now),
            _ => self.poll_data(now),
        }
    }

    pub(super) fn poll_handshake(&mut self, now: Instant) -> Option<(TcpRepr, usize, usize)> {
        if self.snd.nxt != self.snd.iss {
            // SYN sent; in SYN-RECEIVED we may still owe an ACK.
            if self.state == TcpState::SynReceived && self.owed.contains(Owed::ACK) {
                return Some((self.pure_ack(now), 0, 0));
            }
            return None;
        }
        let mut options = self.opt.offered;
        if let Some(ts) = self.ts_for_syn() {
            options.timestamps = Some((self.tsval(now), ts));
        }
        let mut flags = TcpFlags::SYN;
        let mut ack = 0;
        if self.state == TcpState::SynReceived {
            flags.insert(TcpFlags::ACK);
            ack = self.rcv.nxt.0;
            self.rcv.last_ack_sent = self.rcv.nxt;
        }
        let repr = TcpRepr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq: self.snd.iss.0,
            ack,
            flags,
            // RFC 7323 2.2: the window in a SYN is not scaled.
            window: self.rcv.buf.window().min(65535) as u16,
            urgent: 0,
            options,
        };
        if self.state == TcpState::SynReceived {
            self.rcv.adv = self.rcv.nxt + usize::from(repr.window);
        }
        // Karn (RFC 6298 3): time only the first transmission of our SYN.
        // A resend (timer, a retransmitted SYN from the peer, or the
        // SYN-ACK of a simultaneous open) makes the ACK ambiguous.
        if self.snd.max == self.snd.iss {
            self.rtt_probe = Some((self.snd.iss, now));
        } else {
            self.rtt_probe = None;
            self.stats.retransmits += 1;
        }
        self.snd.nxt = self.snd.iss + 1;
        self.snd.max = self.snd.max.max(self.snd.nxt);
        self.timers[Timer::Rto] = Some(now + self.rtt.rto());
        self.owed.remove(Owed::ACK);
        self.timers[Timer::DelayedAck] = None;
        self.stats.segs_out += 1;
        Some((repr, 0, 0))
    }

    /// TSecr for a SYN: 0 on an active open, the peer's TSval on a SYN-ACK.
    pub(super) fn ts_for_syn(&self) -> Option<u32> {
        self.opt.offered.timestamps?;
        Some(match (self.state, self.opt.ts) {
            (TcpState::SynReceived, Some(ts)) => ts.recent,
            _ => 0,
        })
    }

    /// Header fields every synchronized segment carries.
    pub(super) fn base_repr(&mut self, now: Instant, seq: SeqNumber, flags: u8) -> TcpRepr {
        let (wnd, _) = self.window_to_advertise();
        self.rcv.adv = self.rcv.adv.max(self.rcv.nxt + wnd);
        let mut options = TcpOptions::default();
        if let Some(ts) = self.opt.ts {
            options.timestamps = Some((self.tsval(now), ts.recent));
        }
        if self.opt.sack_ok {
            // RFC 2883 4: a D-SACK block goes first, in one ACK only; RFC
            // 2018 4: then the block with the most recent data first.
            let mut room = if self.opt.ts.is_some() { 3 } else { 4 };
            if let Some((start, end)) = self.rcv.dsack.take() {
                options.sack_blocks.push((start.0, end.0));
                room -= 1;
            }
            for (start, end) in self.rcv.ooo.sack_ranges(room) {
                options
                    .sack_blocks
                    .push(((self.rcv.nxt + start).0, (self.rcv.nxt + end).0));
            }
        }
        self.owed.remove(Owed::ACK);
        self.timers[Timer::DelayedAck] = None;
        self.ack.on_ack_sent();
        self.stats.segs_out += 1;
        TcpRepr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq: seq.0,
            ack: {
                self.rcv.last_ack_sent = self.rcv.nxt;
                self.rcv.nxt.0
            },
            flags: TcpFlags(flags | TcpFlags::ACK.0),
            window: (wnd >> self.rcv.wscale).min(65535) as u16,
            urgent: 0,
            options,
        }
    }

    /// An ACK owed for segments already processed, taken out before the
    /// next segment of the same batch is: each arrival that calls for an
    /// ACK at once (RFC 5681 4.2: every second full-sized segment, every
    /// out-of-order segment) gets its own, as Linux answers each segment
    /// from its input path. Without this, a batch of segments behind a
    /// hole drew one duplicate ACK instead of one each, too few for the
    /// sender's fast retransmit (RFC 5681 3.2), and a batch of in-order
    /// data one stretch ACK.
    pub fn take_owed_ack(&mut self, now: Instant) -> Option<TcpRepr> {
        let synchronized = matches!(
            self.state,
            TcpState::Established
                | TcpState::FinWait1
                | TcpState::FinWait2
                | TcpState::CloseWait
                | TcpState::Closing
                | TcpState::LastAck
        );
        (synchronized && self.owed.contains(Owed::ACK)).then(|| self.pure_ack(now))
    }

    pub(super) fn pure_ack(&mut self, now: Instant) -> TcpRepr {
        let seq = self.acceptable_seq();
        self.base_repr(now, seq, 0)
    }

    /// The sequence number of a segment without data (an ACK, a RST).
    ///
    /// RFC 9293's SND.NXT is our snd_max: snd_nxt is rewound by a
    /// retransmission timeout, and an ACK with a sequence number the peer
    /// has already passed would fail its acceptability test and be
    /// dropped, ACK field and all.
    ///
    /// But a peer may shrink its window below data we already sent (RFC
    /// 9293 3.8.6: it SHOULD NOT; the sender must cope). SND.NXT is then
    /// beyond its window and fails the same test (RFC 9293 3.10.7.4: with
    /// RCV.WND = 0 only SEG.SEQ = RCV.NXT is acceptable), so the peer never
    /// sees our ACKs; if its application is blocked sending, it never reads
    /// and never opens the window again. As Linux (tcp_acceptable_seq),
    /// use the right edge of the window, SND.UNA + SND.WND, instead.
    ///
    /// Except, as Linux again, while SND.NXT is less than one unit of the
    /// peer's window scale beyond the edge: the scaled window rounds
    /// down, so the edge may retract by that much (RFC 7323 2.4) after
    /// the peer took data up to SND.NXT; the edge would be below its
    /// RCV.NXT, and each side's ACKs unacceptable to the other.
    pub(super) fn acceptable_seq(&self) -> SeqNumber {
        let edge = self.snd.una + self.snd.wnd;
        let rounding = self.snd.max.distance(edge) < 1usize << self.snd.wscale;
        // Before our SYN is acknowledged the window says nothing of it.
        if self.syn_unacked() || self.snd.max <= edge || rounding {
            self.snd.max
        } else {
            edge
        }
    }

    /// Output in a synchronized state, in order of precedence: a fast
    /// retransmission, new (or go-back-N) data the windows and Nagle let
    /// go, a zero-window probe, a keepalive, an ACK.
    pub(super) fn poll_data(&mut self, now: Instant) -> Option<OutSegment> {
        // RFC 6928: the initial window is ten segments of the MSS the
        // handshake settled on (the SMSS excludes options, RFC 5681 2).
        // Like Linux, which counts cwnd in segments, no 14600-byte cap.
        self.cc
            .set_initial_window(self.cfg.initial_window as usize * self.payload_mss());
        let sizes = self.segment_sizes();
        // Pacing holds data and retransmissions (as Linux's
        // tcp_pacing_check in tcp_write_xmit and
        // tcp_xmit_retransmit_queue), not probes or ACKs. Its timer is
        // armed only when it holds back something the windows would let
        // go: a sender limited by cwnd waits for ACKs, not for the pacer.
        let paced = self.pacer.wait(now, sizes.pacing_rate, sizes.mss);
        self.timers[Timer::Pacing] = None;
        if self.owed.contains(Owed::FAST_RETRANSMIT) {
            if paced.is_some() {
                self.timers[Timer::Pacing] = paced;
            } else {
                self.owed.remove(Owed::FAST_RETRANSMIT);
                if let Some(out) = self.fast_retransmit(now, sizes) {
                    return Some(out);
                }
            }
        }
        if self.owed.take(Owed::TLP) {
            if let Some(out) = self.tlp_probe(now, sizes) {
                return Some(out);
            }
        }
        if paced.is_none() {
            if let Some(out) = self.sack_recovery_segment(now, sizes) {
                return Some(out);
            }
        } else if self.recovery.is_some() {
            self.timers[Timer::Pacing] = paced;
        }
        self.skip_sacked();
        let mut w = self.usable_window(sizes);
        let mut len = self.sendable_len(&w, sizes);
        let mut fin_now = self.fin_fits(&w, len);
        if paced.is_some() && (len > 0 || fin_now) {
            self.timers[Timer::Pacing] = paced;
            (len, fin_now) = (0, false);
        }
        if (len > 0 || fin_now) && self.restart_after_idle(now, sizes.mss) {
            w = self.usable_window(sizes);
            len = self.sendable_len(&w, sizes);
            fin_now = self.fin_fits(&w, len);
        }
        if len > 0 || fin_now {
            return Some(self.data_segment(now, &w, sizes, len, fin_now));
        }
        if let Some(out) = self.persist(now, &w) {
            return Some(out);
        }
        if self.owed.take(Owed::KEEPALIVE) {
            // RFC 1122 4.2.3.6: SEG.SEQ = SND.NXT-1, no data (as Linux).
            let seq = self.snd.max - 1;
            return Some((self.base_repr(now, seq, 0), 0, 0));
        }
        if self.owed.contains(Owed::ACK) {
            return Some((self.pure_ack(now), 0, 0));
        }
        None
    }

    /// The payload a segment may carry now (SACK blocks take room from
    /// it) and the SMSS congestion control counts in.
    pub(super) fn segment_sizes(&self) -> Sizes {
        let sack_blocks = if self.opt.sack_ok {
            // RFC 2018 3: three blocks fit beside timestamps, four without,
            // a D-SACK block (RFC 2883) among them.
            let room = if self.opt.ts.is_some() { 3 } else { 4 };
            let dsack = usize::from(self.rcv.dsack.is_some());
            dsack + self.rcv.ooo.sack_ranges(room - dsack).count()
        } else {
            0
        };
        // Congestion control counts in the payload of a full segment, the
        // size segments are cut to (RFC 5681 2: the SMSS excludes options;
        // Linux counts cwnd in segments of mss_cache). Counting in the MSS
        // with the options in made one SMSS of cwnd after a timeout a full
        // segment and a 12-byte runt.
        let payload_max = self
            .mss()
            .saturating_sub(self.option_overhead(sack_blocks))
            .max(1);
        let mut burst_max = self.burst_max(payload_max, sack_blocks);
        let pacing_rate = self.pacing_rate();
        if let Some(rate) = pacing_rate {
            // A TSO segment is one paced burst (Linux tcp_tso_autosize).
            let burst = Pacer::burst(rate, payload_max);
            if burst < burst_max {
                burst_max = whole_pieces(burst, payload_max).max(payload_max);
            }
        }
        Sizes {
            mss: self.payload_mss(),
            payload_max,
            burst_max,
            pacing_rate,
        }
    }

    /// The rate, in bytes per second, data is paced at: the controller's
    /// own (BBR would set one), else Linux's from the window
    /// (`tcp_update_pacing_rate`); none before the first RTT sample or
    /// with pacing off.
    pub(super) fn pacing_rate(&self) -> Option<u64> {
        if !self.cfg.pacing {
            return None;
        }
        if let Some(rate) = self.cc.pacing_rate() {
            return Some(rate);
        }
        let srtt = self.rtt.srtt()?;
        let cwnd = self.send_window();
        let ratio = if cwnd < self.cc.ssthresh() / 2 {
            self.cfg.pacing_ss_ratio
        } else {
            self.cfg.pacing_ca_ratio
        };
        // A ratio of 0 (tapir's default past slow start) is no pacing.
        Some(pacing::rate_from_window(
            cwnd.max(self.snd.in_flight()),
            srtt,
            ratio,
        ))
        .filter(|&r| r > 0)
    }

    /// TSO: the most new data one segment may carry when the device cuts
    /// it into `payload_max` pieces: whole pieces, within the device's
    /// limit for the datagram (IP and TCP headers in).
    fn burst_max(&self, payload_max: usize, sack_blocks: usize) -> usize {
        let headers = 40 + self.option_overhead(sack_blocks);
        let room = self.cfg.tso_max.saturating_sub(headers);
        whole_pieces(room, payload_max).max(payload_max)
    }

    /// RFC 5681 4.1 (Linux tcp_cwnd_restart, slow_start_after_idle): data
    /// about to go, nothing in flight, and nothing sent for longer than
    /// the RTO: the window the ACK clock no longer backs restarts "before
    /// beginning transmission". Not while data waits for a window that
    /// does not let it go (a zero window's probes leave cwnd alone, as
    /// Linux's). Once per idle spell; true if cwnd restarted.
    fn restart_after_idle(&mut self, now: Instant, mss: usize) -> bool {
        if !self.cfg.slow_start_after_idle || self.snd.in_flight() > 0 || self.unsent() == 0 {
            return false;
        }
        let rto = self.rtt.rto();
        let Some(idle) = self.last_data_sent.map(|t| now - t).filter(|&idle| idle > rto) else {
            return false;
        };
        self.cc.on_idle_restart(now, idle, rto, mss);
        self.last_data_sent = None;
        true
    }

    /// RFC 5681 3.2 step 2, RFC 6675 5 step 4.3, RFC 6582 3.2 step 5:
    /// resend the first unacknowledged segment now (not what the peer
    /// SACKed of it).
    fn fast_retransmit(&mut self, now: Instant, sizes: Sizes) -> Option<OutSegment> {
        if self.rack_on() {
            // RFC 8985: the first segment RACK marked lost.
            if let Some((s, e)) = self.rack().log.next_lost(&self.sb, sizes.payload_max) {
                let (s, e) = self.with_fin(s, e, false);
                let out = self.retransmit(now, s, e)?;
                if self.sb.high_rxt().is_none() {
                    self.sb.on_first_retransmit(e);
                }
                return Some(out);
            }
        }
        let una = self.snd.una;
        let mut end = una + sizes.payload_max.min(self.snd.in_flight());
        if let Some((_, hole_end)) = self.sb.holes(una, self.snd.max).next() {
            end = end.min(hole_end);
        }
        // A FIN right behind the data goes with it.
        if self.snd.fin_seq == Some(end) && self.snd.max > end {
            end += 1;
        }
        let out = self.retransmit(now, una, end)?;
        if self.recovery.is_some_and(|r| r.sack) && self.sb.high_rxt().is_none() {
            self.sb.on_first_retransmit(end);
        }
        Some(out)
    }

    /// RFC 6675 5 (C): while in SACK-based recovery and cwnd - pipe is at
    /// least one SMSS, what NextSeg says: a lost segment (rule 1), else
    /// new data (rule 2, left to the data path), else an un-SACKed one
    /// below the highest SACK (rule 3), else the rescue (rule 4).
    fn sack_recovery_segment(&mut self, now: Instant, sizes: Sizes) -> Option<OutSegment> {
        let r = self.recovery.filter(|r| r.sack)?;
        if self.snd.nxt < self.snd.max || self.send_window().saturating_sub(self.pipe(sizes.mss)) < sizes.mss
        {
            return None;
        }
        let new_data = {
            let w = self.usable_window(sizes);
            let len = self.sendable_len(&w, sizes);
            len > 0 || self.fin_fits(&w, len)
        };
        if self.rack_on() {
            // NextSeg rule 1 with RACK's IsLost (RFC 8985 6.2), then new
            // data (rule 2); as Linux, no rule 3 or rescue: RACK marks
            // what they would guess at once a later segment is delivered.
            let (s, e) = self.rack().log.next_lost(&self.sb, sizes.payload_max)?;
            let (s, e) = self.with_fin(s, e, false);
            let out = self.retransmit(now, s, e)?;
            self.sb.on_retransmit(e);
            return Some(out);
        }
        let (una, max) = (self.snd.una, self.snd.max);
        match self
            .sb
            .next_seg(una, max, sizes.payload_max, sizes.mss, new_data)?
        {
            NextSeg::NewData => None,
            NextSeg::Lost(s, e) | NextSeg::Unsacked(s, e) => {
                let (s, e) = self.with_fin(s, e, false);
                let out = self.retransmit(now, s, e)?;
                self.sb.on_retransmit(e);
                Some(out)
            }
            NextSeg::Rescue(s, e) => {
                let (s, e) = self.with_fin(s, e, true);
                let out = self.retransmit(now, s, e)?;
                self.sb.on_rescue(r.point);
                Some(out)
            }
        }
    }

    /// NextSeg counts the FIN as an octet of the segment; a full segment
    /// of data carries it besides. A segment ending just before an
    /// un-SACKed FIN takes it along; a rescue, which ends with the FIN,
    /// starts a sequence number earlier, within the same hole.
    fn with_fin(&self, s: SeqNumber, e: SeqNumber, rescue: bool) -> (SeqNumber, SeqNumber) {
        match self.snd.fin_seq {
            Some(f) if f == e && e < self.snd.max && !self.sb.is_sacked(f) => (s, e + 1),
            Some(f) if rescue && f + 1 == e && s > self.snd.una && s < f && !self.sb.is_sacked(s - 1) => {
                (s - 1, e)
            }
            _ => (s, e),
        }
    }

    /// Resend `[seq, end)` of what was sent (data, and the FIN if it lies
    /// within), as the original went: PSH only on the segment that ends
    /// the queued data (as Linux, whose retransmission keeps the flags
    /// of the original segment).
    fn retransmit(&mut self, now: Instant, seq: SeqNumber, end: SeqNumber) -> Option<OutSegment> {
        let fin = self.snd.fin_seq.is_some_and(|f| seq <= f && f < end);
        let data_end = if fin { end - 1 } else { end };
        let len = data_end.distance(seq);
        if len == 0 && !fin {
            return None;
        }
        let offset = self.data_offset(seq);
        let push = len > 0 && offset + len == self.snd.buf.len();
        let flags = if fin { TcpFlags::FIN.0 } else { 0 } | if push { TcpFlags::PSH.0 } else { 0 };
        let repr = self.base_repr(now, seq, flags);
        self.stats.retransmits += 1;
        let tsval = repr.options.timestamps.map(|t| t.0);
        self.undo.on_retransmit(seq, end, len, tsval);
        self.on_sent_in_recovery(end.distance(seq));
        self.rack_on_send(seq, end, now);
        let rate = self.pacing_rate();
        self.pacer.on_send(now, rate, len, self.payload_mss());
        // Karn (RFC 6298 3): a timed segment sent again gives no sample.
        if self.rtt_probe.is_some_and(|(p, _)| seq <= p && p < end) {
            self.rtt_probe = None;
        }
        // RFC 6298 5.1 starts a stopped timer; the retransmission of the
        // first unacknowledged segment restarts it (as Linux's
        // tcp_xmit_retransmit_queue), except on NewReno's later partial
        // ACKs (RFC 6582 3.2 step 5, see process_ack).
        let impatient = self.recovery.is_some_and(|r| !r.sack && r.partial_acks > 1);
        if self.timers[Timer::Rto].is_none() || (seq == self.snd.una && !impatient) {
            self.timers[Timer::Rto] = Some(now + self.rtt.rto());
        }
        Some((repr, offset, len))
    }

    /// RFC 6675 5.1: retransmitting after a timeout (SND.NXT rewound),
    /// skip what the peer SACKed. Without SACK, skip what went out after
    /// the timeout (F-RTO's new data, RFC 5682 2.1 step 2.b): the timeout
    /// did not find it outstanding, and the duplicate ACKs that ended
    /// F-RTO say it arrived (Linux retransmits only what tcp_enter_loss
    /// marked lost).
    fn skip_sacked(&mut self) {
        if self.snd.nxt >= self.snd.max {
            return;
        }
        if let Some(high) = self.loss_high().filter(|&h| self.snd.nxt >= h) {
            self.snd.nxt = self.snd.max;
            tracing::trace!(%high, "go-back-N skips data sent after the timeout");
            return;
        }
        if self.sb.is_empty() {
            return;
        }
        for &(s, e) in self.sb.ranges() {
            if s <= self.snd.nxt && self.snd.nxt < e {
                self.snd.nxt = e.min(self.snd.max);
            }
        }
    }

    /// Without SACK, after a timeout that F-RTO answered with new data:
    /// where what the timeout found outstanding ends ("recover"), if new
    /// data went out beyond it.
    fn loss_high(&self) -> Option<SeqNumber> {
        if self.opt.sack_ok || !self.in_loss() {
            return None;
        }
        self.recover.filter(|&r| self.snd.max > r)
    }

    /// The window left to send into: the peer's window and cwnd, with
    /// RFC 3042 limited transmit (RFC 5681 3.2): each of the first two
    /// duplicate ACKs lets one segment of new data out beyond cwnd (if
    /// the peer's window allows), keeping the ACK clock going so a small
    /// window still collects the three duplicates fast retransmit needs.
    /// cwnd itself is left alone.
    fn usable_window(&self, sizes: Sizes) -> Usable {
        let unsent = self.unsent();
        let is_retransmit = self.snd.nxt < self.snd.max;
        // With SACK information, RFC 6675 5 (1.c) and (C) send by pipe,
        // which lets out as much as limited transmit and more after
        // SACKed data (as Linux's packets-in-flight accounting).
        let limited = if self.recovery.is_none() && !is_retransmit && self.sb.is_empty() {
            self.dup_acks.min(2) as usize * sizes.mss
        } else {
            0
        };
        let cwnd = (self.send_window().max(sizes.mss) + limited).saturating_sub(self.pipe(sizes.mss));
        let edge = self.snd.una + self.snd.wnd;
        let mut usable = if edge > self.snd.nxt {
            edge.distance(self.snd.nxt).min(cwnd)
        } else {
            0
        };
        if is_retransmit {
            // RFC 6675 5.1: a retransmission after a timeout stops short
            // of what the peer SACKed, or without SACK of what was sent
            // after the timeout.
            // With RACK's records, only a range that holds a whole
            // segment counts, as Linux's segment-granular SACK tagging
            // (a segment with its last byte SACKed goes again whole).
            let whole =
                |&&(s, e): &&(SeqNumber, SeqNumber)| !self.rack_on() || self.rack().log.any_sacked_in(s, e);
            if let Some(&(s, _)) = self
                .sb
                .ranges()
                .iter()
                .filter(whole)
                .find(|&&(s, _)| s > self.snd.nxt)
            {
                usable = usable.min(s.distance(self.snd.nxt));
            }
            if let Some(high) = self.loss_high() {
                usable = usable.min(high.distance(self.snd.nxt));
            }
        }
        Usable {
            offset: self.data_sent_offset(),
            unsent,
            is_retransmit,
            limited,
            end: self.snd.nxt + usable,
            usable,
        }
    }

    /// How much data to send now: what is queued, fits the window and a
    /// segment, and passes sender SWS avoidance, Nagle and TCP_CORK.
    fn sendable_len(&self, w: &Usable, sizes: Sizes) -> usize {
        let len = w.unsent.min(sizes.payload_max).min(w.usable);
        if len == 0 || w.is_retransmit {
            return len;
        }
        if len >= sizes.payload_max {
            return self.super_segment_len(w, sizes);
        }
        // RFC 9293 3.8.6.2.1 sender SWS avoidance and RFC 896 Nagle: a
        // partial segment goes only if it is all we have and Nagle
        // allows it, or it fills half the largest window the peer ever
        // offered. Nagle as Linux implements it (Minshall's variant,
        // draft-minshall-nagle): a small segment waits only while an
        // earlier small segment is unacknowledged, so the tail of a
        // large write is not delayed by the full segments before it.
        let all_queued = len == w.unsent;
        let small_outstanding = self.snd.sml > self.snd.una;
        // TCP_CORK holds every partial segment (Linux tcp_nagle_check)
        // until the FIN goes behind it.
        let nagle_ok = (self.nodelay || self.snd.in_flight() == 0 || !small_outstanding)
            && (!self.cork || self.snd.fin_queued);
        let big_enough = len >= self.snd.max_wnd / 2 && self.snd.max_wnd > 0;
        // RFC 1122 4.2.3.4 (4) / RFC 9293 3.8.6.2.1: the override
        // timeout (our persist timer, armed below while nothing is in
        // flight) sends what fits rather than wait for ever on a window
        // too small for a full segment (Linux: tcp_write_wakeup).
        let overdue = self.owed.contains(Owed::PROBE) && self.snd.in_flight() == 0;
        if (all_queued && nagle_ok) || big_enough || overdue {
            len
        } else {
            0
        }
    }

    /// TSO: a segment of new data carries as many full segments as the
    /// windows let go (up to the device's limit), and the queue's short
    /// tail only if it would go on its own behind them: sender SWS
    /// avoidance and Nagle (RFC 9293 3.8.6.2.1) judge it as if each piece
    /// were sent separately. Retransmissions never come here: they stay
    /// one MSS.
    fn super_segment_len(&self, w: &Usable, sizes: Sizes) -> usize {
        let len = w.unsent.min(w.usable).min(sizes.burst_max);
        let full = whole_pieces(len, sizes.payload_max);
        if len == full {
            return len;
        }
        // Full segments are in flight when the tail would go, so Nagle
        // (Minshall's) holds it only behind an unacknowledged small one.
        let nagle_ok = (self.nodelay || self.snd.sml <= self.snd.una) && (!self.cork || self.snd.fin_queued);
        let big_enough = len - full >= self.snd.max_wnd / 2 && self.snd.max_wnd > 0;
        if (len == w.unsent && nagle_ok) || big_enough {
            len
        } else {
            full
        }
    }

    /// The FIN goes with (or after) the last data, when the window has
    /// room for its sequence number: it is subject to flow control like
    /// data (RFC 9293 3.8.6.1; Linux tcp_snd_wnd_test counts it). Into a
    /// zero window the persist timer probes (see `persist`).
    fn fin_fits(&self, w: &Usable, len: usize) -> bool {
        self.fin_pending() && len == w.unsent && (self.snd.nxt + len) < w.end
    }

    /// Our FIN is queued and not yet sent (or rewound for a resend).
    fn fin_pending(&self) -> bool {
        self.snd.fin_queued && self.snd.fin_seq.is_none_or(|f| self.snd.nxt <= f)
    }

    /// A segment of `len` bytes at SND.NXT (and the FIN if `fin_now`).
    fn data_segment(
        &mut self,
        now: Instant,
        w: &Usable,
        sizes: Sizes,
        len: usize,
        fin_now: bool,
    ) -> OutSegment {
        let mut flags = 0;
        // RFC 1122 4.2.2.2: PSH on the segment that empties the queue.
        // Like Linux, also on the last segment of a burst the congestion
        // window cuts short, with more data queued behind it (RFC 9293
        // 3.9.1.2 leaves PSH beyond the last queued byte to the sender).
        let cwnd_limited = self.send_window().max(sizes.mss) <= self.snd.wnd;
        let burst_end = !w.is_retransmit
            && cwnd_limited
            && w.limited == 0
            // Nor what SACKs let out (limited transmit by pipe).
            && self.sb.is_empty()
            && w.usable - len < (w.unsent - len).min(sizes.payload_max);
        if len > 0 && (len == w.unsent || burst_end) {
            flags |= TcpFlags::PSH.0;
        }
        if fin_now {
            flags |= TcpFlags::FIN.0;
        }
        let seq = self.snd.nxt;
        let repr = self.base_repr(now, seq, flags);
        if w.is_retransmit {
            self.stats.retransmits += 1;
            let end = seq + len + usize::from(fin_now);
            let tsval = repr.options.timestamps.map(|t| t.0);
            self.undo.on_retransmit(seq, end, len, tsval);
        } else if self.rtt_probe.is_none() && self.opt.ts.is_none() && len > 0 {
            self.rtt_probe = Some((seq, now));
        }
        if !w.is_retransmit
            && len > 0
            && self
                .ack
                .last_data_at
                .is_some_and(|t| now - t < self.cfg.delayed_ack)
        {
            // A reply within the delayed-ACK time of the peer's data:
            // the exchange is interactive, so let later ACKs wait for
            // our replies (Linux tcp_event_data_sent, pingpong).
            self.ack.pingpong = true;
        }
        self.on_sent_in_recovery(len + usize::from(fin_now));
        if len > 0 {
            self.last_data_sent = Some(now);
        }
        self.snd.nxt += len;
        // A super-segment (TSO) ending in a short piece sent one.
        if len < sizes.payload_max || whole_pieces(len, sizes.payload_max) != len {
            self.snd.sml = self.snd.nxt;
        }
        // The segments a super-segment becomes on the wire.
        if len > sizes.payload_max {
            self.stats.segs_out += (len.div_ceil(sizes.payload_max) - 1) as u64;
        }
        if fin_now {
            self.snd.fin_seq = Some(self.snd.nxt);
            self.snd.nxt += 1;
        }
        self.snd.max = self.snd.max.max(self.snd.nxt);
        self.rack_on_send(seq, self.snd.nxt, now);
        self.pacer.on_send(now, sizes.pacing_rate, len, sizes.payload_max);
        // RFC 7661: how much of cwnd this window used (Linux
        // tcp_cwnd_validate after tcp_write_xmit).
        let flight = if self.opt.sack_ok {
            self.pipe(sizes.mss)
        } else {
            self.snd.in_flight()
        };
        let limited = flight + sizes.mss > self.send_window();
        self.usage.on_send(self.snd.una, self.snd.max, flight, limited);
        if self.timers[Timer::Rto].is_none() {
            self.timers[Timer::Rto] = Some(now + self.rtt.rto());
        }
        if !w.is_retransmit {
            // RFC 8985 7.2: new data went out.
            self.schedule_tlp(now);
        }
        if self.unacked_since.is_none() {
            self.unacked_since = Some(now);
        }
        self.timers[Timer::Persist] = None;
        self.owed.remove(Owed::PROBE);
        self.probes_out = 0;
        self.probes_since = None;
        (repr, w.offset, len)
    }

    /// RFC 8985 7.3 TLP_send_probe(): a segment of new data if there is
    /// some and the peer's window takes it, whatever cwnd says (the probe
    /// may exceed it by a segment); else the highest-sequence segment
    /// sent, again. Then the RTO, not the PTO, is armed.
    fn tlp_probe(&mut self, now: Instant, sizes: Sizes) -> Option<OutSegment> {
        if self.snd.in_flight() == 0 {
            return None;
        }
        let edge = self.snd.una + self.snd.wnd;
        let room = if edge > self.snd.nxt {
            edge.distance(self.snd.nxt)
        } else {
            0
        };
        let unsent = self.unsent();
        let start = self.snd.nxt;
        let out = if self.snd.nxt == self.snd.max && unsent > 0 && room > 0 {
            let len = unsent.min(sizes.payload_max).min(room);
            let w = Usable {
                offset: self.data_sent_offset(),
                unsent,
                is_retransmit: false,
                limited: 0,
                end: self.snd.nxt + room,
                usable: len,
            };
            let fin_now = self.fin_fits(&w, len);
            let out = self.data_segment(now, &w, sizes, len, fin_now);
            let max = self.snd.max;
            if let Some(r) = self.rack.as_mut() {
                r.tlp.on_probe(start, max, false);
            }
            out
        } else {
            let end = self.snd.max;
            let fin_sent = self.snd.fin_seq.is_some_and(|f| f + 1 == end);
            let data_end = if fin_sent { end - 1 } else { end };
            let last = self.rack().log.last_start().unwrap_or(self.snd.una);
            let seg = sizes.payload_max.min(data_end.distance(self.snd.una));
            let s = last.max(self.snd.una).max(data_end - seg);
            let out = self.retransmit(now, s, end)?;
            let max = self.snd.max;
            if let Some(r) = self.rack.as_mut() {
                r.tlp.on_probe(s, max, true);
            }
            out
        };
        self.timers[Timer::Tlp] = None;
        self.timers[Timer::Rto] = Some(now + self.rtt.rto());
        Some(out)
    }

    /// Data waiting, nothing in flight, and nothing could go: the window
    /// is zero, or too small to beat SWS avoidance. The persist timer
    /// probes a zero window (RFC 9293 3.8.6.1) and sends into a small
    /// one (above). Like Linux, the probe is a segment with an old
    /// sequence number that elicits an ACK carrying the current window.
    /// The same after a retransmission timeout that found the window
    /// closed (data in flight, none of it may go, no timer left): the
    /// expiry counts as the first probe's, so probe at once.
    fn persist(&mut self, now: Instant, w: &Usable) -> Option<OutSegment> {
        let rtx_blocked = self.snd.nxt < self.snd.max && self.timers[Timer::Rto].is_none() && w.usable == 0;
        if rtx_blocked && self.timers[Timer::Persist].is_none() {
            self.owed.insert(Owed::PROBE);
        }
        if !(((w.unsent > 0 || self.fin_pending()) && self.snd.in_flight() == 0) || rtx_blocked) {
            return None;
        }
        if self.owed.contains(Owed::PROBE) && w.usable == 0 {
            self.owed.remove(Owed::PROBE);
            self.stats.zero_window_probes += 1;
            let seq = self.snd.una - 1;
            let repr = self.base_repr(now, seq, 0);
            self.timers[Timer::Persist] = Some(now + self.persist_interval(now));
            return Some((repr, 0, 0));
        }
        if self.timers[Timer::Persist].is_none() {
            let mut interval = self.persist_interval(now);
            if w.usable > 0 {
                // The window is open, only smaller than sender SWS
                // avoidance waits for: that is the override timeout of
                // RFC 1122 4.2.3.4 (0.1 to 1.0 s), not a zero-window
                // probe's backed-off interval. A peer whose buffer holds
                // less than a segment is otherwise fed one piece per
                // backed-off RTO.
                interval = interval.min(self.rtt.rto().clamp(SWS_OVERRIDE_MIN, SWS_OVERRIDE_MAX));
            }
            self.timers[Timer::Persist] = Some(now + interval);
        }
        None
    }

    pub(super) fn persist_interval(&self, now: Instant) -> Duration {
        let factor = 1u32 << self.persist_backoff.min(16);
        let interval = self
            .rtt
            .rto()
            .saturating_mul(factor)
            .clamp(self.cfg.rto_min, PERSIST_MAX);
        // Expire no later than the user timeout, so probing gives up on
        // time (Linux tcp_clamp_probe0_to_user_timeout).
        match (self.probes_since, self.user_timeout) {
            (Some(since), Some(limit)) => interval.min((since + limit) - now),
            _ => interval,
        }
    }

    /// Sequence number of `tx`'s first byte.
    pub(super) fn data_base(&self) -> SeqNumber {
        if self.syn_unacked() {
            self.snd.iss + 1
        } else {
            self.snd.una
        }
    }

    /// Our SYN (or SYN-ACK) is not yet acknowledged, so it, not data, sits
    /// at SND.UNA = ISS. Asked of the state, not of SND.UNA == ISS: SND.UNA
    /// comes back to ISS after every 2^32 bytes (RFC 9293 3.4, sequence
    /// numbers are modulo 2^32), and the send buffer addressed from ISS + 1
    /// then would put every byte sent one place early.
    fn syn_unacked(&self) -> bool {
        matches!(self.state, TcpState::SynSent | TcpState::SynReceived)
    }

    /// Copy `len` bytes of the send buffer at `offset` into `out`.
    pub fn copy_data(&self, offset: usize, out: &mut [u8]) -> usize {
        self.snd.buf.read_allocated(offset, out)
    }

    /// When the owner must next call [`Self::on_timer`], and whether
    /// [`Self::poll_segment`] may have something to send now.
    pub fn schedule(&self) -> Schedule {
        Schedule {
            deadline: self.deadline(),
            wants_to_send: self.wants_to_send(),
        }
    }

    /// Has this connection anything to send right now?
    fn wants_to_send(&self) -> bool {
        self.owed.wants_segment()
            || (matches!(self.state, TcpState::SynSent | TcpState::SynReceived)
                && self.snd.nxt == self.snd.iss)
            || self.unsent() > 0
            || (self.snd.fin_queued && self.snd.fin_seq.is_none())
            || (self.snd.nxt < self.snd.max)
            || self.recovery.is_some_and(|r| r.sack)
    }

    /// Bytes of send buffer not yet acknowledged and not yet sent: zero
    /// once everything was delivered (for a graceful close).
    pub fn send_queue_len(&self) -> usize {
        self.snd.buf.len()
    }

    /// Bytes written and never sent (Linux SIOCOUTQNSD: a retransmission
    /// timeout does not make sent data unsent).
    pub fn never_sent_len(&self) -> usize {
        self.snd.buf.len().saturating_sub(self.data_offset(self.snd.max))
    }

    /// Hand TIME-WAIT over to the table's compact entry (there is one
    /// TIME-WAIT, whoever holds the socket): what the entry needs, and
    /// whether the connection owed the peer an ACK (of the FIN that
    /// brought it here), which the entry sends instead.
    pub fn hand_over_time_wait(&mut self) -> (TimeWaitInfo, bool) {
        let owes_ack = self.wants_to_send();
        self.owed = Owed::default();
        (self.time_wait_info(), owes_ack)
    }

    fn time_wait_info(&self) -> TimeWaitInfo {
        TimeWaitInfo {
            snd_nxt: self.snd.nxt,
            rcv_nxt: self.rcv.nxt,
            window: (self.rcv.wnd() >> self.rcv.wscale).min(65535) as u16,
            ts: self.opt.ts.map(|t| (t.recent, self.opt.ts_offset)),
            expires: self.timers[Timer::TimeWait],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::whole_pieces;

    #[test]
    fn whole_pieces_is_the_division() {
        for piece in [1usize, 2, 536, 1448, 1460, 65_483] {
            for len in
                (0..5 * piece)
                    .step_by(piece.div_ceil(7))
                    .chain([piece - 1, piece, piece + 1, 2 * piece])
            {
                assert_eq!(
                    whole_pieces(len, piece),
                    len / piece * piece,
                    "{len} in pieces of {piece}"
                );
            }
        }
        assert_eq!(whole_pieces(usize::MAX, usize::MAX), usize::MAX);
    }
}
