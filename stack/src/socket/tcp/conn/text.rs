//! RFC 9293 3.10.7.4, seventh and eighth steps: segment text into the
//! receive buffer (or the assembler), and the FIN.

use super::input::Arrival;
use super::*;
use core::ops::ControlFlow;

impl Connection {
    /// Seventh: the segment text.
    pub(super) fn process_text(&mut self, now: Instant, a: &Arrival) {
        if a.payload.is_empty() && !a.seg.flags.fin() {
            return;
        }
        match self.state {
            TcpState::Established | TcpState::FinWait1 | TcpState::FinWait2 | TcpState::SynReceived => {
                self.measure_rcv_rtt(now, a);
                self.receive_data(now, a.seq, a.payload, a.seg.flags.fin());
            }
            // CLOSE-WAIT, CLOSING, LAST-ACK: the peer already sent its
            // FIN; data now is a retransmission. ACK it.
            _ => self.owed.insert(Owed::ACK),
        }
    }

    /// Eighth: the FIN, once everything before it has arrived.
    pub(super) fn process_fin(&mut self, now: Instant) -> ControlFlow<Transition> {
        if self.rcv.fin != Some(self.rcv.nxt) {
            return ControlFlow::Continue(());
        }
        self.rcv.nxt += 1;
        self.owed.insert(Owed::ACK);
        match self.state {
            TcpState::SynReceived | TcpState::Established => self.set_state(TcpState::CloseWait),
            TcpState::FinWait1 if !self.snd.fin_acked() => self.set_state(TcpState::Closing),
            TcpState::FinWait1 | TcpState::FinWait2 => {
                self.enter_time_wait(now);
                return ControlFlow::Break(Transition::TimeWait);
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
    /// Place segment text in the receive buffer (RFC 9293 3.10.7.4 seventh
    /// check), trimming what lies outside the window.
    pub(super) fn receive_data(&mut self, now: Instant, seq: SeqNumber, payload: &[u8], fin: bool) {
        // Trim the part already received.
        let (mut seq, mut data) = (seq, payload);
        if seq < self.rcv.nxt {
            // RFC 2883 4 (Linux tcp_data_queue): report the old part.
            self.note_dsack(seq, (seq + data.len()).min(self.rcv.nxt));
            let dup = self.rcv.nxt.distance(seq).min(data.len());
            data = &data[dup..];
            seq += dup;
        }
        if fin {
            let fin_at = seq + data.len();
            if self.rcv.fin.is_none() {
                self.rcv.fin = Some(fin_at);
            }
        }
        if data.is_empty() {
            if !fin {
                // A pure duplicate: the peer retransmitted, perhaps because
                // our ACKs are lost or late; say where we are, and ACK the
                // next data at once too (Linux tcp_enter_quickack_mode).
                self.owed.insert(Owed::ACK);
                self.enter_quickack_mode();
            }
            return;
        }
        let offset = seq.distance(self.rcv.nxt);
        let room = self.rcv.buf.window();
        if offset >= room {
            self.owed.insert(Owed::ACK);
            self.enter_quickack_mode();
            return;
        }
        let data = &data[..data.len().min(room - offset)];
        self.on_data_received(now, payload.len());
        if offset == 0 {
            let had_holes = !self.rcv.ooo.is_empty();
            self.expand_recv_buffer(now, seq + data.len());
            let n = self.rcv.buf.enqueue_slice(data);
            self.rcv.ooo.advance(n);
            let more = self.rcv.ooo.remove_front();
            self.rcv.buf.enqueue_unallocated(more);
            self.rcv.nxt += n + more;
            self.stats.bytes_received += (n + more) as u64;
            if had_holes {
                // RFC 5681 4.2: ACK at once when a segment fills a hole.
                self.owed.insert(Owed::ACK);
            } else if self.rcv.nxt.distance(self.rcv.last_ack_sent) > self.ack.rcv_mss
                && self.ack_would_advance_window()
            {
                // RFC 5681 4.2: ACK at least every second full-sized
                // segment. As Linux (__tcp_ack_snd_check), more than one
                // segment's worth of unacknowledged data is the test, so a
                // coalesced (GRO) segment or a full one after a small one
                // counts too; and only while the ACK would move the
                // window's right edge on by what arrived. Data the
                // application has not read yet is acknowledged when it
                // reads (`after_read`, Linux tcp_cleanup_rbuf), or when
                // the delayed-ACK timer fires: an ACK now would only
                // shrink the window, and a receiver that keeps up with
                // its frames but not its reads sent one ACK per two
                // segments all the same.
                self.owed.insert(Owed::ACK);
            } else if self.ack.quick_ack_now() {
                self.owed.insert(Owed::ACK);
            }
            if !self.owed.contains(Owed::ACK) && self.timers[Timer::DelayedAck].is_none() {
                self.timers[Timer::DelayedAck] = Some(now + self.cfg.delayed_ack);
            }
        } else {
            // Out of order: keep it if the assembler and the stack-wide
            // budget have room, and send a duplicate ACK at once (RFC 5681
            // 4.2), with SACK blocks. A dropped segment is only delayed:
            // the sender retransmits it once the hole before it fills.
            self.owed.insert(Owed::ACK);
            if data.len() > self.ooo_room {
                self.stats.ooo_budget_drops += 1;
                return;
            }
            let written = self.rcv.buf.write_unallocated(offset, data);
            // RFC 2883 4: the part we already held is a duplicate (Linux
            // tcp_data_queue_ofo reports the first overlap).
            let overlap = self
                .rcv
                .ooo
                .ranges()
                .map(|(s, e)| (s.max(offset), e.min(offset + written)))
                .find(|&(s, e)| s < e);
            if let Some((s, e)) = overlap {
                self.note_dsack(self.rcv.nxt + s, self.rcv.nxt + e);
            }
            if self.rcv.ooo.add(offset, written).is_err() {
                self.stats.ooo_range_drops += 1;
                tracing::debug!(remote = %self.remote, "too many out-of-order ranges; segment dropped");
            }
            self.owed.insert(Owed::ACK);
        }
        if self.rcv.fin.is_some_and(|f| f == self.rcv.nxt) {
            self.owed.insert(Owed::ACK);
        }
    }

    /// RFC 2883: `[start, end)` arrived twice; say so in the next ACK's
    /// first SACK block, if SACK was negotiated (as Linux, whose
    /// tcp_dsack default is on).
    pub(super) fn note_dsack(&mut self, start: SeqNumber, end: SeqNumber) {
        if self.opt.sack_ok && start < end {
            self.rcv.dsack = Some((start, end));
        }
    }

    pub(super) fn on_data_received(&mut self, now: Instant, len: usize) {
        let window = self.rcv.adv.distance(self.rcv.last_ack_sent);
        let (mss, rto, max) = (self.opt.our_mss, self.rtt.rto(), self.cfg.quickack_max);
        self.ack.on_data(now, len, mss, window, rto, max);
    }

    pub(super) fn enter_quickack_mode(&mut self) {
        let window = self.rcv.adv.distance(self.rcv.last_ack_sent);
        self.ack.enter_quickack_mode(window, self.cfg.quickack_max);
    }

    /// The round trip as the receiver sees it: data carries the TSval of
    /// the ACK that let it go as its TSecr, so now less that is one round
    /// trip (Linux tcp_rcv_rtt_measure_ts). Kept low: a lower sample is
    /// taken at once, a higher one by an eighth.
    fn measure_rcv_rtt(&mut self, now: Instant, a: &Arrival) {
        let Some((_, tsecr)) = a.seg.options.timestamps else {
            return;
        };
        if a.payload.is_empty() || tsecr == 0 || self.opt.ts.is_none() {
            return;
        }
        let sample = self.tsval(now).wrapping_sub(tsecr);
        if sample > 60_000 {
            return; // from before a wrap or not ours
        }
        let sample = sample.max(1);
        self.rcv_rtt_ms = Some(match self.rcv_rtt_ms {
            Some(old) if sample >= old => old - old / 8 + sample / 8,
            _ => sample,
        });
    }

    /// Receive-buffer autotuning, as Linux's tcp_rcv_space_adjust
    /// (dynamic right-sizing): once per round trip, if the application
    /// took more than half the buffer in that round trip, the window was
    /// what held the sender back, and the buffer grows to twice what was
    /// taken (at least double), up to `TcpConfig::recv_buffer_max`,
    /// unless SO_RCVBUF fixed it. A slow reader's buffer does not grow.
    /// The round trip is the receiver's own estimate from timestamps, or
    /// the sender's SRTT; without either, in-order data reaching (within a
    /// segment) the right edge we offered stands for a sender held back.
    /// The window scale offered at the handshake already allows the
    /// maximum (RFC 7323 2.3). Only the bound grows: memory follows the
    /// data that waits.
    pub(super) fn expand_recv_buffer(&mut self, now: Instant, end: SeqNumber) {
        let cap = self.rcv.buf.capacity();
        let max = self.cfg.recv_buffer_max.max(self.cfg.recv_buffer);
        if self.rcv_buf_locked || cap >= max {
            return;
        }
        let rtt = self
            .rcv_rtt_ms
            .map(|ms| Duration::from_millis(u64::from(ms)))
            .or_else(|| self.rtt.srtt());
        let grow = match rtt {
            Some(rtt) => {
                let start = *self.rcv_space_at.get_or_insert(now);
                if now - start < rtt {
                    return;
                }
                self.rcv_space_at = Some(now);
                let copied = (self.app_read - self.app_read_at_edge) as usize;
                self.app_read_at_edge = self.app_read;
                // Linux's slack of 16 segments (tcp_rcv_space_adjust):
                // a reader that takes a whole flight only after it has
                // arrived leaves the last ACK of the flight offering the
                // buffer less that flight, so a sender held back by the
                // window delivers just under half the buffer per round
                // trip, and without the slack the buffer never grows.
                let slack = 16 * self.ack.rcv_mss;
                (copied + slack > cap / 2)
                    .then(|| (copied.saturating_mul(2) + slack).max(cap.saturating_mul(2)))
            }
            None => {
                // Within a segment of the edge: a sender sends whole
                // segments, so one held back stops short by less than one.
                if end + self.ack.rcv_mss < self.rcv.adv {
                    return;
                }
                let read = (self.app_read - self.app_read_at_edge) as usize;
                self.app_read_at_edge = self.app_read;
                (read >= cap / 2).then(|| cap.saturating_mul(2))
            }
        };
        if let Some(size) = grow {
            let _ = self.rcv.buf.resize(size.min(max));
        }
    }
}
