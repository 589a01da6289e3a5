//! Congestion window validation: a window that was not used recently is
//! not a measure of the path any more (RFC 7661 1; RFC 5681 4.1). As
//! Linux, two rules: a sender that was idle for more than an RTO restarts
//! from the restart window (tcp_cwnd_restart), and one that was
//! application-limited for an RTO gives back half of what it did not use
//! (tcp_cwnd_application_limited). Whether an ACK may grow cwnd at all
//! is the connection's `CwndUsage` (conn/acked.rs), Linux's
//! tcp_is_cwnd_limited. RFC 7661's pipeACK and non-validated phase as
//! such are not implemented.

use super::AckEvent;
use crate::time::{Duration, Instant};

#[derive(Debug, Clone, Default)]
pub(crate) struct CwndValidation {
    /// The initial window, in bytes (RFC 6928), the floor of both rules.
    iw: usize,
    /// When the window was last used, and the most in flight since.
    stamp: Option<Instant>,
    used: usize,
}

/// Linux tcp_current_ssthresh: remember most of the window being given
/// up, so that slow start brings it back.
fn current_ssthresh(cwnd: usize, ssthresh: usize) -> usize {
    ssthresh.max(cwnd / 2 + cwnd / 4)
}

impl CwndValidation {
    pub fn set_initial_window(&mut self, iw: usize) {
        self.iw = iw;
    }

    /// RFC 5681 4.1: data goes out after nothing was sent for `idle`, more
    /// than an RTO: cwnd halves for every RTO of it (Linux
    /// tcp_cwnd_restart), down to the restart window RW = min(IW, cwnd).
    pub fn restart(
        &mut self,
        cwnd: &mut usize,
        ssthresh: &mut usize,
        idle: Duration,
        rto: Duration,
        mss: usize,
    ) {
        let mss = mss.max(1);
        let restart = self.iw.min(*cwnd);
        *ssthresh = current_ssthresh(*cwnd, *ssthresh);
        let periods = idle.as_micros().checked_div(rto.as_micros()).unwrap_or(u128::MAX);
        let mut c = *cwnd;
        for _ in 0..periods.min(64) {
            if c <= restart {
                break;
            }
            c = c / 2 / mss * mss;
        }
        *cwnd = c.max(restart);
        self.stamp = None;
        self.used = 0;
    }

    /// An ACK: after an RTO of not using the window, cwnd comes down to
    /// halfway between it and what was used (at least the IW).
    pub fn on_ack(&mut self, cwnd: &mut usize, ssthresh: &mut usize, ack: &AckEvent) {
        if ack.cwnd_limited {
            self.stamp = Some(ack.now);
            self.used = 0;
            return;
        }
        self.used = self.used.max(ack.in_flight);
        let stamp = *self.stamp.get_or_insert(ack.now);
        if ack.now - stamp >= ack.rto {
            let used = self.used.max(self.iw);
            if used < *cwnd {
                let mss = ack.mss.max(1);
                *ssthresh = current_ssthresh(*cwnd, *ssthresh);
                *cwnd = ((*cwnd / 2 + used / 2) / mss * mss).max(used);
            }
            self.stamp = Some(ack.now);
            self.used = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: usize = 1000;

    fn v() -> CwndValidation {
        let mut v = CwndValidation::default();
        v.set_initial_window(10 * MSS);
        v
    }

    #[test]
    fn idle_restart_halves_per_rto_down_to_the_initial_window() {
        let rto = Duration::from_millis(200);
        let (mut cwnd, mut ssthresh) = (40 * MSS, usize::MAX);
        v().restart(&mut cwnd, &mut ssthresh, Duration::from_millis(300), rto, MSS);
        assert_eq!(cwnd, 20 * MSS, "one RTO idle: halved once");
        let (mut cwnd, mut ssthresh) = (40 * MSS, 20 * MSS);
        v().restart(&mut cwnd, &mut ssthresh, Duration::from_secs(10), rto, MSS);
        assert_eq!(cwnd, 10 * MSS, "long idle: the restart window, min(IW, cwnd)");
        assert_eq!(ssthresh, 30 * MSS, "3/4 of the window given up");
        let (mut cwnd, mut ssthresh) = (4 * MSS, 20 * MSS);
        v().restart(&mut cwnd, &mut ssthresh, Duration::from_secs(10), rto, MSS);
        assert_eq!(cwnd, 4 * MSS, "never above what it was");
        let (mut cwnd, mut ssthresh) = (40 * MSS, 20 * MSS);
        v().restart(
            &mut cwnd,
            &mut ssthresh,
            Duration::from_secs(10),
            Duration::ZERO,
            MSS,
        );
        assert_eq!(cwnd, 10 * MSS, "a zero RTO does not divide by zero");
    }

    #[test]
    fn application_limited_for_an_rto_gives_back_half_the_unused_window() {
        let mut v = v();
        let (mut cwnd, mut ssthresh) = (40 * MSS, usize::MAX);
        let ack = |ms: u64, flight: usize, limited: bool| AckEvent {
            cwnd_limited: limited,
            in_flight: flight,
            rto: Duration::from_millis(200),
            ..AckEvent::test(Instant::from_millis(ms), MSS, MSS)
        };
        v.on_ack(&mut cwnd, &mut ssthresh, &ack(0, 40 * MSS, true));
        v.on_ack(&mut cwnd, &mut ssthresh, &ack(100, 12 * MSS, false));
        v.on_ack(&mut cwnd, &mut ssthresh, &ack(150, 8 * MSS, false));
        assert_eq!(cwnd, 40 * MSS, "not yet an RTO");
        v.on_ack(&mut cwnd, &mut ssthresh, &ack(200, 8 * MSS, false));
        // (40 + 12) / 2 = 26 segments; ssthresh stays (it was higher).
        assert_eq!((cwnd, ssthresh), (26 * MSS, usize::MAX));
        // A window in use is left alone however long.
        v.on_ack(&mut cwnd, &mut ssthresh, &ack(5000, 26 * MSS, true));
        assert_eq!(cwnd, 26 * MSS);
    }
}
