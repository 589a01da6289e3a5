//! CUBIC (RFC 9438), the default controller, as Linux's.
//!
//! The window function works in segments and seconds, as the RFC's
//! constants do (C = 0.4 segments/s^3); the window itself is kept in bytes
//! and grows in whole segments, so a sender never gets a window that ends
//! in a runt. Floating point is used only for the curve, whose inputs are
//! all finite and non-negative; every float-to-integer conversion saturates
//! (Rust's `as`), so no input panics.

use super::{AckEvent, CongestionControl, CwndValidation, SlowStart};
use crate::time::{Duration, Instant};

/// RFC 9438 5: C, in segments per second cubed.
const C: f64 = 0.4;
/// RFC 9438 4.6: beta_cubic = 0.7, as a fraction for integer window math.
const BETA_NUM: usize = 7;
const BETA_DEN: usize = 10;
const BETA: f64 = 0.7;
/// RFC 9438 4.3: alpha_cubic = 3 (1 - beta) / (1 + beta), so that the
/// Reno-friendly estimate grows as fast on average as Reno with beta 0.5.
const ALPHA: f64 = 3.0 * (1.0 - BETA) / (1.0 + BETA);

/// RFC 9438 4.2 equation 2: the time the curve takes from `cwnd_epoch`
/// back to `w_max` (segments in, seconds out); zero when the window starts
/// at or above `w_max` (convex from the start).
pub(super) fn k(w_max: f64, cwnd_epoch: f64) -> f64 {
    if w_max > cwnd_epoch {
        ((w_max - cwnd_epoch) / C).cbrt()
    } else {
        0.0
    }
}

/// RFC 9438 4.2 equation 1: W_cubic(t) = C (t - K)^3 + W_max, in segments.
pub(super) fn w_cubic(t: f64, k: f64, w_max: f64) -> f64 {
    let d = t - k;
    C * d * d * d + w_max
}

/// What a reduction changed, kept to undo it if it proves spurious
/// (RFC 9438 4.9).
#[derive(Debug, Clone, Copy)]
struct Prior {
    cwnd: usize,
    ssthresh: usize,
    w_max: f64,
    cwnd_prior: f64,
    epoch: Option<Epoch>,
    after_rto: bool,
}

/// The current congestion-avoidance stage (RFC 9438 4.2).
#[derive(Debug, Clone, Copy)]
struct Epoch {
    /// t_epoch: when the stage began (its first ACK, as Linux).
    start: Instant,
    /// K in seconds and W_max in segments for this stage.
    k: f64,
    w_max: f64,
    /// W_est, the Reno-friendly estimate in segments (RFC 9438 4.3).
    w_est: f64,
}

#[derive(Debug, Clone)]
pub(crate) struct Cubic {
    cwnd: usize,
    ssthresh: usize,
    /// Still at the initial window: nothing acknowledged or lost yet.
    initial: bool,
    /// W_max in segments: the window before the last reduction, lowered by
    /// fast convergence (RFC 9438 4.7). Zero before the first.
    w_max: f64,
    /// cwnd_prior in segments: the window before the last reduction, where
    /// the Reno-friendly estimate switches to Reno's slope (RFC 9438 4.3).
    cwnd_prior: f64,
    epoch: Option<Epoch>,
    /// The first congestion-avoidance stage after a timeout starts with
    /// K = 0 and W_max = cwnd (RFC 9438 4.8).
    after_rto: bool,
    /// A reduction is in force for this window: a timeout's, until new
    /// data is acknowledged, or a congestion event's, until its recovery
    /// ends. A timeout meanwhile keeps ssthresh and the state to undo (as
    /// Linux's tcp_enter_loss, "if it has not yet been made inside this
    /// window"), where the collapsed cwnd would otherwise drive ssthresh
    /// to 2 segments, or a timeout in recovery reduce twice.
    in_loss: bool,
    /// Growth owed in congestion avoidance, in bytes, below one segment.
    credit: f64,
    /// Since when the sender has been application-limited within the
    /// current stage: that time is left out of t (RFC 9438 5.8).
    app_limited_since: Option<Instant>,
    /// The state before the last reduction, until it is undone or new
    /// data is acknowledged after a timeout's.
    prior: Option<Prior>,
    pub(super) slow_start: SlowStart,
    validation: CwndValidation,
}

impl Cubic {
    /// `initial` is the initial window in bytes (RFC 6928).
    pub fn new(initial: usize, slow_start: SlowStart) -> Self {
        Cubic {
            slow_start,
            validation: CwndValidation::default(),
            cwnd: initial,
            // RFC 5681 3.1: ssthresh starts arbitrarily high.
            ssthresh: usize::MAX,
            initial: true,
            w_max: 0.0,
            cwnd_prior: 0.0,
            epoch: None,
            after_rto: false,
            in_loss: false,
            credit: 0.0,
            app_limited_since: None,
            prior: None,
        }
    }

    /// RFC 9438 4.6 and 4.7, shared by a congestion event and a timeout:
    /// remember the window (lowered by fast convergence if it did not get
    /// back to the last W_max) and set ssthresh to beta_cubic of it.
    ///
    /// ssthresh comes from cwnd, not FlightSize: RFC 9438 4.6 allows it
    /// for a sender that, like this one, does not grow cwnd while
    /// application-limited, and it is what Linux and Windows do.
    fn reduce(&mut self, mss: usize) {
        self.prior = Some(Prior {
            cwnd: self.cwnd,
            ssthresh: self.ssthresh,
            w_max: self.w_max,
            cwnd_prior: self.cwnd_prior,
            epoch: self.epoch,
            after_rto: self.after_rto,
        });
        let mss = mss.max(1);
        let cwnd_seg = self.cwnd as f64 / mss as f64;
        self.w_max = if cwnd_seg < self.w_max {
            cwnd_seg * (1.0 + BETA) / 2.0
        } else {
            cwnd_seg
        };
        self.cwnd_prior = cwnd_seg;
        let reduced = (self.cwnd as u128 * BETA_NUM as u128 / BETA_DEN as u128) as usize;
        self.ssthresh = (reduced / mss * mss).max(2 * mss);
        self.epoch = None;
        self.credit = 0.0;
        self.app_limited_since = None;
    }

    /// RFC 9438 4.2-4.5: one ACK in congestion avoidance.
    fn avoid(&mut self, ack: &AckEvent) {
        let mss = ack.mss.max(1);
        let mss_f = mss as f64;
        let cwnd_seg = (self.cwnd as f64 / mss_f).max(1.0);
        let epoch = match self.epoch {
            Some(e) => e,
            None => {
                // RFC 9438 4.8: after a timeout, and whenever the window
                // already is at or above W_max, the curve starts here.
                if self.after_rto || self.w_max < cwnd_seg {
                    self.w_max = cwnd_seg;
                }
                self.after_rto = false;
                let e = Epoch {
                    start: ack.now,
                    k: k(self.w_max, cwnd_seg),
                    w_max: self.w_max,
                    w_est: cwnd_seg,
                };
                self.epoch = Some(e);
                e
            }
        };
        let t = (ack.now - epoch.start).as_secs_f64();
        let rtt = ack.srtt.unwrap_or_default().as_secs_f64();
        // RFC 9438 4.4/4.5: aim at W_cubic one RTT ahead, no lower than
        // cwnd and no more than 1.5 cwnd.
        let target = w_cubic(t + rtt, epoch.k, epoch.w_max)
            .max(cwnd_seg)
            .min(1.5 * cwnd_seg);
        // RFC 9438 4.3: the Reno-friendly estimate, at Reno's average slope
        // (alpha_cubic) until it passes the window before the reduction,
        // then at Reno's own.
        let alpha = if epoch.w_est >= self.cwnd_prior {
            1.0
        } else {
            ALPHA
        };
        let acked_seg = ack.acked as f64 / mss_f;
        let w_est = epoch.w_est + alpha * acked_seg / cwnd_seg;
        self.epoch = Some(Epoch { w_est, ..epoch });

        // (target - cwnd) / cwnd per segment acknowledged.
        self.credit += (target - cwnd_seg) / cwnd_seg * ack.acked as f64;
        if self.credit >= mss_f {
            let segs = (self.credit / mss_f).floor();
            self.credit -= segs * mss_f;
            self.cwnd = self.cwnd.saturating_add((segs as usize).saturating_mul(mss));
        }
        // Reno-friendly region: where W_cubic(t) is below W_est, cwnd
        // follows W_est (in whole segments). Taking the larger of the two
        // increases, as Linux's tcp_friendliness, rather than either.
        if w_cubic(t, epoch.k, epoch.w_max) < w_est {
            let est = (w_est * mss_f) as usize;
            if est > self.cwnd {
                self.cwnd += (est - self.cwnd) / mss * mss;
            }
        }
    }

    #[cfg(test)]
    fn w_max(&self) -> f64 {
        self.w_max
    }

    #[cfg(test)]
    fn k(&self) -> Option<f64> {
        self.epoch.map(|e| e.k)
    }
}

impl CongestionControl for Cubic {
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
        self.validation.on_ack(&mut self.cwnd, &mut self.ssthresh, ack);
        self.in_loss = false;
        if !ack.cwnd_limited {
            // RFC 9438 5.8 (and RFC 7661): no growth while the application
            // does not use the window, and that time does not count in t.
            if self.epoch.is_some() && self.app_limited_since.is_none() {
                self.app_limited_since = Some(ack.now);
            }
            return;
        }
        if let Some(since) = self.app_limited_since.take() {
            if let Some(e) = self.epoch.as_mut() {
                e.start += ack.now - since;
            }
        }
        if self.cwnd < self.ssthresh {
            // RFC 9438 4.10: slow start, ended by HyStart++ or a loss.
            self.slow_start.on_ack(&mut self.cwnd, &mut self.ssthresh, ack);
        } else {
            self.avoid(ack);
        }
    }

    fn on_congestion_event(&mut self, _now: Instant, _in_flight: usize, mss: usize) {
        self.initial = false;
        self.reduce(mss);
        self.in_loss = true;
        // RFC 9438 4.6: cwnd = ssthresh (at least 2 segments).
        self.cwnd = self.ssthresh;
    }

    fn on_recovery_end(&mut self, _now: Instant) {
        self.in_loss = false;
        // The congestion-avoidance stage starts with the next ACK.
        self.cwnd = self.ssthresh;
        self.epoch = None;
        self.credit = 0.0;
    }

    fn on_rto(&mut self, _now: Instant, _in_flight: usize, mss: usize) {
        self.slow_start.on_rto();
        self.initial = false;
        // RFC 9438 4.8: ssthresh by beta_cubic as on a congestion event,
        // cwnd to one segment as Reno (RFC 5681 3.1).
        if !self.in_loss {
            self.reduce(mss);
            self.in_loss = true;
        }
        self.epoch = None;
        self.after_rto = true;
        self.cwnd = mss.max(1);
        self.credit = 0.0;
    }

    fn on_spurious_reduction(&mut self, _now: Instant) {
        // RFC 9438 4.9: back to the state before the reduction, the curve
        // included (t keeps counting from its old epoch).
        if let Some(p) = self.prior.take() {
            self.slow_start.on_undo();
            self.cwnd = self.cwnd.max(p.cwnd);
            self.ssthresh = p.ssthresh;
            self.w_max = p.w_max;
            self.cwnd_prior = p.cwnd_prior;
            self.epoch = p.epoch;
            self.after_rto = p.after_rto;
            self.in_loss = false;
            self.credit = 0.0;
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
        // A new congestion-avoidance stage when the window is reached again.
        self.epoch = None;
        self.credit = 0.0;
        self.app_limited_since = None;
    }

    fn name(&self) -> &'static str {
        "cubic"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;

    const MSS: usize = 1000;

    fn segs(c: &Cubic) -> usize {
        c.window() / MSS
    }

    /// One round trip of ACK clocking: a cwnd-limited ACK of one segment
    /// for every segment of the window, at `now`.
    fn round(c: &mut Cubic, now: Instant, srtt: Duration) {
        for _ in 0..segs(c) {
            let mut a = AckEvent::test(now, MSS, MSS);
            a.srtt = Some(srtt);
            c.on_ack(&a);
        }
    }

    /// A controller that just lost at `w_max` segments and recovered.
    fn after_loss_at(w_max: usize) -> Cubic {
        let mut c = Cubic::new(w_max * MSS, SlowStart::new(false));
        c.on_congestion_event(Instant::ZERO, w_max * MSS, MSS);
        c.on_recovery_end(Instant::ZERO);
        c
    }

    #[test]
    fn k_and_w_cubic_match_values_by_hand() {
        // RFC 9438 4.2: W_max = 100, cwnd_epoch = 0.7 * 100 = 70, so
        // K = cbrt((100 - 70) / 0.4) = cbrt(75) = 4.2171633 s.
        let k = k(100.0, 70.0);
        assert!((k - 4.217_163_3).abs() < 1e-6, "K = {k}");
        // The curve leaves cwnd_epoch at t = 0 and is back at W_max at K.
        assert!((w_cubic(0.0, k, 100.0) - 70.0).abs() < 1e-9);
        assert!((w_cubic(k, k, 100.0) - 100.0).abs() < 1e-9);
        // Concave: 0.4 (2 - 4.2171633)^3 + 100 = 95.640336.
        assert!((w_cubic(2.0, k, 100.0) - 95.640_336).abs() < 1e-5);
        // Convex: one second past K, 0.4 * 1^3 above W_max.
        assert!((w_cubic(k + 1.0, k, 100.0) - 100.4).abs() < 1e-9);
        // A window already above W_max starts convex (K = 0).
        assert_eq!(super::k(50.0, 70.0), 0.0);
    }

    #[test]
    fn congestion_event_keeps_seven_tenths() {
        let mut c = Cubic::new(100 * MSS, SlowStart::new(false));
        c.on_congestion_event(Instant::ZERO, 100 * MSS, MSS);
        assert_eq!((c.window(), c.ssthresh()), (70 * MSS, 70 * MSS));
        assert_eq!(c.w_max(), 100.0);
        c.on_recovery_end(Instant::ZERO);
        assert_eq!(c.window(), 70 * MSS, "no deflation below beta_cubic");
        // A tiny window still keeps two segments (RFC 9438 4.6).
        let mut c = Cubic::new(2 * MSS, SlowStart::new(false));
        c.on_congestion_event(Instant::ZERO, 2 * MSS, MSS);
        assert_eq!(c.window(), 2 * MSS);
    }

    /// Rounds of `rtt` from `*t_ms` up to `until_ms` after the epoch.
    fn rounds_until(c: &mut Cubic, t_ms: &mut u64, until_ms: u64, rtt: Duration) {
        let epoch = Instant::from_secs(10);
        while *t_ms < until_ms {
            *t_ms += rtt.as_millis() as u64;
            round(c, epoch + Duration::from_millis(*t_ms), rtt);
        }
    }

    #[test]
    fn growth_follows_the_curve_back_to_w_max_then_convex() {
        // W_max = 1000 segments, so that the curve, not the Reno-friendly
        // estimate (70 segments in 7 s here), leads: K = cbrt(300 / 0.4)
        // = cbrt(750) = 9.0856 s.
        let rtt = Duration::from_millis(100);
        let mut c = after_loss_at(1000);
        assert_eq!(segs(&c), 700);
        round(&mut c, Instant::from_secs(10), rtt);
        assert!((c.k().unwrap() - 9.085_603).abs() < 1e-6);
        // First RTT: the target is W_cubic(0.1) = 709.8; (target - cwnd) /
        // cwnd per ACK closes the gap as 1 - 1/e over a window of ACKs:
        // 700 + 9.8 (1 - 1/e) = 706.2.
        assert_eq!(segs(&c), 706);
        // Concave: at t = 2 s W_cubic(2 + 0.1) is 863.6.
        let mut t = 0;
        rounds_until(&mut c, &mut t, 2000, rtt);
        assert!((860..=864).contains(&segs(&c)), "at 2 s: {}", segs(&c));
        // At K the window is back at W_max, and plateaus there.
        rounds_until(&mut c, &mut t, 9100, rtt);
        assert!((999..=1001).contains(&segs(&c)), "at K: {}", segs(&c));
        // Convex: W_cubic(K + 5 s) = 1000 + 0.4 * 125 = 1050, aiming an
        // RTT ahead at 1053.
        rounds_until(&mut c, &mut t, 14100, rtt);
        assert!((1048..=1054).contains(&segs(&c)), "at K + 5 s: {}", segs(&c));
    }

    #[test]
    fn reno_friendly_region_takes_over_with_small_windows() {
        // W_max = 10 segments, reduced to 7: K = cbrt(3 / 0.4) = 1.957 s,
        // and W_cubic(0.1 s) is only 7.44. On a 1 ms path Reno would have
        // grown a segment per RTT: W_est grows by alpha = 0.53 per RTT up
        // to cwnd_prior = 10 (6 RTTs), then by 1, so after 100 RTTs it is
        // about 10 + 94 = 104 segments, and cwnd follows it.
        let rtt = Duration::from_millis(1);
        let mut c = after_loss_at(10);
        assert_eq!(segs(&c), 7);
        let mut now = Instant::from_secs(10);
        for _ in 0..100 {
            round(&mut c, now, rtt);
            now += rtt;
        }
        assert!((100..=105).contains(&segs(&c)), "Reno-friendly: {}", segs(&c));
    }

    #[test]
    fn fast_convergence_lowers_w_max() {
        // A loss at 70 segments before getting back to W_max = 100: the
        // flow releases bandwidth, W_max = 70 (1 + 0.7) / 2 = 59.5
        // (RFC 9438 4.7), ssthresh 0.7 * 70 = 49.
        let mut c = after_loss_at(100);
        c.on_congestion_event(Instant::ZERO, 70 * MSS, MSS);
        assert_eq!(c.w_max(), 59.5);
        assert_eq!(c.window(), 49 * MSS);
        c.on_recovery_end(Instant::ZERO);
        round(&mut c, Instant::from_secs(1), Duration::from_millis(100));
        // K = cbrt((59.5 - 49) / 0.4) = cbrt(26.25) = 2.97196 s.
        assert!((c.k().unwrap() - 2.971_96).abs() < 1e-5, "{:?}", c.k());
    }

    #[test]
    fn rto_collapses_then_restarts_the_curve_at_the_window() {
        let mut c = Cubic::new(100 * MSS, SlowStart::new(false));
        c.on_rto(Instant::ZERO, 100 * MSS, MSS);
        // RFC 9438 4.8: cwnd one segment, ssthresh by beta_cubic.
        assert_eq!((c.window(), c.ssthresh()), (MSS, 70 * MSS));
        // A second timeout before progress keeps ssthresh.
        c.on_rto(Instant::from_secs(1), MSS, MSS);
        assert_eq!((c.window(), c.ssthresh()), (MSS, 70 * MSS));
        let now = Instant::from_secs(3);
        for _ in 0..69 {
            c.on_ack(&AckEvent::test(now, MSS, MSS));
        }
        assert_eq!(segs(&c), 70, "slow start up to ssthresh");
        c.on_ack(&AckEvent::test(now, MSS, MSS));
        // The first avoidance stage after the timeout: K = 0 and W_max is
        // the window it starts at, so growth is convex from here.
        assert_eq!((c.k(), c.w_max()), (Some(0.0), 70.0));
    }

    #[test]
    fn application_limited_acks_do_not_grow() {
        let mut c = after_loss_at(100);
        let mut a = AckEvent::test(Instant::from_secs(1), MSS, MSS);
        a.cwnd_limited = false;
        for _ in 0..1000 {
            c.on_ack(&a);
        }
        assert_eq!(segs(&c), 70);
    }

    #[test]
    fn extreme_inputs_do_not_panic() {
        let mut c = Cubic::new(usize::MAX, SlowStart::new(true));
        c.on_congestion_event(Instant::ZERO, usize::MAX, 0);
        c.on_recovery_end(Instant::ZERO);
        for mss in [0, 1, usize::MAX] {
            let mut a = AckEvent::test(Instant::from_micros(u64::MAX), usize::MAX, mss);
            a.srtt = Some(Duration::MAX);
            c.on_ack(&a);
            a.srtt = Some(Duration::ZERO);
            a.now = Instant::ZERO;
            c.on_ack(&a);
        }
        c.on_rto(Instant::ZERO, 0, 0);
        assert!(c.window() >= 1);
    }
}
