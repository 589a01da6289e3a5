//! RFC 5681 Reno, with RFC 3465 byte counting.

use super::{AckEvent, CongestionControl, CwndValidation, SlowStart};
use crate::time::{Duration, Instant};

/// RFC 5681 Reno: slow start, congestion avoidance, and halving on a
/// congestion event (the inflation of fast recovery is the connection's).
#[derive(Debug, Clone)]
pub(crate) struct Reno {
    cwnd: usize,
    ssthresh: usize,
    /// Bytes acked since cwnd last grew in congestion avoidance.
    acked_in_ca: usize,
    /// Still at the initial window: nothing acknowledged or lost yet.
    initial: bool,
    slow_start: SlowStart,
    validation: CwndValidation,
    /// cwnd and ssthresh before the last reduction, to undo it.
    prior: Option<(usize, usize)>,
    /// A reduction is in force for this window (a timeout's until new data
    /// is acknowledged, a congestion event's until its recovery ends): a
    /// timeout meanwhile is part of it (Linux tcp_enter_loss).
    in_loss: bool,
}

impl Reno {
    /// `initial` is the initial window in bytes (RFC 6928).
    pub fn new(initial: usize, slow_start: SlowStart) -> Self {
        // RFC 5681 3.1: ssthresh starts arbitrarily high.
        Reno {
            slow_start,
            validation: CwndValidation::default(),
            prior: None,
            in_loss: false,
            cwnd: initial,
            ssthresh: usize::MAX,
            acked_in_ca: 0,
            initial: true,
        }
    }
}

impl CongestionControl for Reno {
    fn window(&self) -> usize {
        self.cwnd
    }

    fn ssthresh(&self) -> usize {
        self.ssthresh
    }

    fn set_initial_window(&mut self, bytes: usize) {
        self.validation.set_initial_window(bytes);
        if self.initial {
            self.cwnd = bytes;
        }
    }

    fn on_ack(&mut self, ack: &AckEvent) {
        self.initial = false;
        self.in_loss = false;
        self.validation.on_ack(&mut self.cwnd, &mut self.ssthresh, ack);
        if !ack.cwnd_limited {
            return;
        }
        let (acked, mss) = (ack.acked, ack.mss);
        if self.cwnd < self.ssthresh {
            // RFC 5681 3.1 equation 2, with RFC 3465's limit of L = 2*SMSS.
            self.slow_start.on_ack(&mut self.cwnd, &mut self.ssthresh, ack);
        } else {
            // RFC 5681 3.1: about one SMSS per RTT (byte counting, RFC 3465).
            self.acked_in_ca += acked;
            if self.acked_in_ca >= self.cwnd {
                self.acked_in_ca -= self.cwnd;
                self.cwnd = self.cwnd.saturating_add(mss);
            }
        }
    }

    fn on_congestion_event(&mut self, _now: Instant, in_flight: usize, mss: usize) {
        self.initial = false;
        self.prior = Some((self.cwnd, self.ssthresh));
        self.in_loss = true;
        // RFC 5681 equation 4; cwnd = ssthresh as step 6 leaves it (step
        // 3's + 3*SMSS is the recovery's inflation).
        self.ssthresh = (in_flight / 2).max(2 * mss);
        self.cwnd = self.ssthresh;
    }

    fn on_recovery_end(&mut self, _now: Instant) {
        self.in_loss = false;
        self.cwnd = self.ssthresh;
        self.acked_in_ca = 0;
    }

    fn on_rto(&mut self, _now: Instant, in_flight: usize, mss: usize) {
        self.slow_start.on_rto();
        if !self.in_loss {
            self.prior = Some((self.cwnd, self.ssthresh));
            self.in_loss = true;
            self.ssthresh = (in_flight / 2).max(2 * mss);
        }
        self.initial = false;
        // RFC 5681 3.1: LW = 1 full-sized segment.
        self.cwnd = mss;
        self.acked_in_ca = 0;
    }

    fn on_spurious_reduction(&mut self, _now: Instant) {
        // Linux tcp_undo_cwnd_reduction: the window back, at least.
        if let Some((cwnd, ssthresh)) = self.prior.take() {
            self.slow_start.on_undo();
            self.cwnd = self.cwnd.max(cwnd);
            self.ssthresh = ssthresh;
            self.in_loss = false;
        }
    }

    fn take_over(&mut self, cwnd: usize, ssthresh: usize) {
        self.initial = false;
        self.cwnd = cwnd;
        self.ssthresh = ssthresh;
    }

    fn on_idle_restart(&mut self, _now: Instant, idle: Duration, rto: Duration, mss: usize) {
        self.validation
            .restart(&mut self.cwnd, &mut self.ssthresh, idle, rto, mss);
        self.acked_in_ca = 0;
    }

    fn name(&self) -> &'static str {
        "reno"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_start_then_avoidance() {
        let mss = 1000;
        let mut r = Reno::new(10 * mss, SlowStart::new(false));
        r.on_ack(&AckEvent::test(Instant::ZERO, mss, mss));
        assert_eq!(r.window(), 11 * mss);
        r.on_rto(Instant::ZERO, 20 * mss, mss);
        assert_eq!((r.window(), r.ssthresh()), (mss, 10 * mss));
        for _ in 0..9 {
            r.on_ack(&AckEvent::test(Instant::ZERO, mss, mss));
        }
        assert_eq!(r.window(), 10 * mss, "slow start up to ssthresh");
        // Avoidance: one MSS per window's worth of ACKs.
        for _ in 0..10 {
            r.on_ack(&AckEvent::test(Instant::ZERO, mss, mss));
        }
        assert_eq!(r.window(), 11 * mss);
    }

    #[test]
    fn initial_window_follows_mss_until_first_ack() {
        let mut r = Reno::new(14600, SlowStart::new(false));
        r.set_initial_window(10 * 1000);
        assert_eq!(r.window(), 10_000);
        r.on_ack(&AckEvent::test(Instant::ZERO, 1000, 1000));
        assert_eq!(r.window(), 11_000);
        r.set_initial_window(10 * 536);
        assert_eq!(r.window(), 11_000, "only the initial window follows the MSS");
    }

    #[test]
    fn congestion_event_halves_without_inflation() {
        let mss = 1000;
        let mut r = Reno::new(10 * mss, SlowStart::new(false));
        r.on_congestion_event(Instant::ZERO, 10 * mss, mss);
        assert_eq!((r.ssthresh(), r.window()), (5 * mss, 5 * mss));
        r.on_recovery_end(Instant::ZERO);
        assert_eq!(r.window(), 5 * mss);
        r.on_ack(&AckEvent::test(Instant::ZERO, mss, mss));
        assert_eq!(r.window(), 5 * mss, "avoidance: a window's worth of ACKs per MSS");
    }
}
