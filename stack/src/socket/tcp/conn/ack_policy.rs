//! When to acknowledge: RFC 5681 4.2 (at least every second full-sized
//! segment, at once for out-of-order data or a filled hole), RFC 9293
//! 3.8.6.3 (delayed ACKs), and Linux's quick-ACK and ping-pong modes.
//!
//! Whether an ACK is owed now is not kept here but in the connection's
//! `Owed` set, beside the other segments it owes; the delayed-ACK
//! deadline is in its timer table.

use crate::time::{Duration, Instant};

/// RFC 9293 3.7.1: the MSS to assume when the peer sends none.
const DEFAULT_MSS: usize = 536;

#[derive(Debug)]
pub(super) struct AckPolicy {
    /// Data arrived that our next segment will acknowledge (Linux's
    /// ICSK_ACK_SCHED): sending that segment uses up a quick ACK.
    pub scheduled: bool,
    /// Quick ACKs left: data is acknowledged at once while this is non-zero
    /// and we are not in ping-pong mode (Linux icsk_ack.quick).
    pub quick: u32,
    /// Interactive mode: we answered the peer's data within the
    /// delayed-ACK time, so our ACKs wait to ride on the replies (Linux
    /// pingpong; left when the delayed-ACK timer fires).
    pub pingpong: bool,
    /// When data last arrived (Linux lrcvtime); `None` before the first.
    pub last_data_at: Option<Instant>,
    /// Our estimate of the peer's segment size (Linux icsk_ack.rcv_mss):
    /// more than this much unacknowledged data calls for an ACK at once.
    pub rcv_mss: usize,
}

impl AckPolicy {
    pub fn new(our_mss: usize) -> Self {
        AckPolicy {
            scheduled: false,
            quick: 0,
            pingpong: false,
            last_data_at: None,
            // Linux tcp_initialize_rcv_mss: a guess no larger than the
            // default MSS until segments show what the peer sends.
            rcv_mss: our_mss.clamp(88, DEFAULT_MSS),
        }
    }

    /// Bookkeeping for every segment that brought data (Linux
    /// tcp_event_data_recv and tcp_measure_rcv_mss). `window`: the
    /// receive window as last advertised, `rto` the current RTO.
    pub fn on_data(
        &mut self,
        now: Instant,
        len: usize,
        our_mss: usize,
        window: usize,
        rto: Duration,
        max: u32,
    ) {
        self.scheduled = true;
        if len >= self.rcv_mss {
            self.rcv_mss = len.min(our_mss);
        }
        match self.last_data_at {
            // The first data of the connection: the sender is in slow start
            // and every ACK we delay holds it back.
            None => self.incr_quick(window, max),
            // Silent for longer than an RTO: the sender restarts from a
            // small window (RFC 5681 4.1), so ACK quickly again.
            Some(t) if now - t > rto => self.incr_quick(window, max),
            Some(_) => {}
        }
        self.last_data_at = Some(now);
    }

    /// Linux tcp_incr_quickack: enough quick ACKs to cover half the window
    /// in segments, at most `max`.
    pub fn incr_quick(&mut self, window: usize, max: u32) {
        let mut quick = (window / (2 * self.rcv_mss)) as u32;
        if quick == 0 {
            quick = 2;
        }
        self.quick = self.quick.max(quick.min(max));
    }

    /// Linux tcp_enter_quickack_mode.
    pub fn enter_quickack_mode(&mut self, window: usize, max: u32) {
        self.incr_quick(window, max);
        self.pingpong = false;
    }

    /// A segment that acknowledges the data went out (Linux
    /// tcp_dec_quickack_mode: one quick ACK used).
    pub fn on_ack_sent(&mut self) {
        if self.scheduled {
            self.scheduled = false;
            self.quick = self.quick.saturating_sub(1);
        }
    }

    /// Data may be acknowledged at once rather than delayed.
    pub fn quick_ack_now(&self) -> bool {
        self.quick > 0 && !self.pingpong
    }
}
