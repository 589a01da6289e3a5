//! A passive SYN-RECEIVED connection folded into the few bytes a
//! listener's half-open entry keeps (Linux's `struct tcp_request_sock`,
//! 320 bytes in its slab), and unfolded again when a segment or the
//! SYN-ACK timer needs the connection.
//!
//! Everything else a SYN-RECEIVED control block holds follows from the
//! configuration, the listener's options and the 4-tuple, so the
//! connection [`Connection::resume_half_open`] rebuilds is the one that
//! would have been kept: the same SYN-ACK, the same checks of RFC 9293
//! 3.10.7.4 (and RFC 5961's) on every segment, the same retransmission
//! timer and limit. A SYN cookie (RFC 4987 3.6) is the same record
//! decoded from the ACK instead of read from the table.

use super::*;

/// What a passive SYN-RECEIVED connection is, beyond what its listener
/// and the configuration say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HalfOpen {
    /// Our ISN and the peer's.
    pub iss: SeqNumber,
    pub irs: SeqNumber,
    /// The peer's window, from its SYN (RFC 7323 2.2: never scaled).
    pub window: u16,
    /// The peer's MSS (its SYN's, or the default).
    pub mss: u16,
    /// The peer's window scale, if scaling was agreed (RFC 7323 2.2).
    pub wscale: Option<u8>,
    /// SACK-permitted was agreed (RFC 2018 2).
    pub sack: bool,
    /// Timestamps were agreed: TS.Recent (RFC 7323 4.3).
    pub ts_recent: Option<u32>,
    /// When the SYN came (and the first SYN-ACK went).
    pub born: Instant,
    /// The first SYN-ACK was never resent, so its ACK times the round
    /// trip from `born` (Karn, RFC 6298 3).
    pub timed: bool,
    /// SYN-ACK timeouts so far: the backoff and the retry count.
    pub retries: u16,
    /// The SYN-ACK retransmission timer (`None`: as if the SYN-ACK had
    /// just gone, for a cookie's).
    pub rto_at: Option<Instant>,
    /// TCP_DEFER_ACCEPT: the peer has ACKed without data.
    pub defer_acked: bool,
    /// The last ACK to an unacceptable segment (RFC 5961 7).
    pub last_invalid_ack: Option<Instant>,
    /// Segments in, out and resent so far, for the connection's stats.
    pub segs_in: u16,
    pub segs_out: u16,
    pub retransmits: u16,
}

impl HalfOpen {
    /// The SYN as the record remembers it: what `Connection::accept_syn`
    /// learns from.
    pub fn syn(&self, src_port: u16, dst_port: u16) -> TcpRepr {
        let mut syn = TcpRepr {
            src_port,
            dst_port,
            seq: self.irs.0,
            flags: TcpFlags::SYN,
            window: self.window,
            ..TcpRepr::default()
        };
        syn.options.mss = Some(self.mss);
        syn.options.window_scale = self.wscale;
        syn.options.sack_permitted = self.sack;
        syn.options.timestamps = self.ts_recent.map(|t| (t, 0));
        syn
    }
}

impl Connection {
    /// Fold a passive SYN-RECEIVED connection whose SYN-ACK has gone
    /// (nothing left to send) into its record; `None` for any other.
    pub fn half_open(&self) -> Option<HalfOpen> {
        if self.state != TcpState::SynReceived || self.active || self.snd.nxt == self.snd.iss {
            return None;
        }
        let sat = |n: u64| n.min(u64::from(u16::MAX)) as u16;
        Some(HalfOpen {
            iss: self.snd.iss,
            irs: self.rcv.irs,
            window: self.snd.wnd.min(65535) as u16,
            mss: self.opt.peer_mss.min(65535) as u16,
            wscale: self.opt.offered.window_scale.map(|_| self.snd.wscale),
            sack: self.opt.sack_ok,
            ts_recent: self.opt.ts.map(|t| t.recent),
            born: self.opt.ts.map_or(self.last_recv, |t| t.recent_at),
            timed: self.rtt_probe.is_some(),
            retries: self.retries.min(u32::from(u16::MAX)) as u16,
            rto_at: self.timers[Timer::Rto],
            defer_acked: self.defer_acked,
            last_invalid_ack: self.last_invalid_ack,
            segs_in: sat(self.stats.segs_in),
            segs_out: sat(self.stats.segs_out),
            retransmits: sat(self.stats.retransmits),
        })
    }

    /// The connection `h` folds: `self` is fresh from `accept_syn` of
    /// `h.syn()` (with the listener's options set, as when it was made),
    /// and its SYN-ACK is marked sent, as it went at `h.born`.
    pub fn resume_half_open(&mut self, h: &HalfOpen) {
        let _ = self.poll_segment(h.born);
        if let Some(ts) = self.opt.ts.as_mut() {
            ts.recent_at = h.born;
        }
        self.last_recv = h.born;
        self.rtt_probe = h.timed.then_some((self.snd.iss, h.born));
        self.retries = u32::from(h.retries);
        for _ in 0..h.retries {
            self.rtt.back_off();
        }
        if let Some(t) = h.rto_at {
            self.timers[Timer::Rto] = Some(t);
        }
        self.defer_acked = h.defer_acked;
        self.last_invalid_ack = h.last_invalid_ack;
        self.stats.segs_in = u64::from(h.segs_in);
        self.stats.segs_out = u64::from(h.segs_out);
        self.stats.retransmits = u64::from(h.retransmits);
    }
}
