//! Congestion control behind a small trait (RFC 5681): CUBIC (RFC 9438,
//! the default, as Linux) and Reno.
//!
//! The trait says what happened (data acknowledged, a congestion event, the
//! end of recovery, a timeout) and reads back the window; it does not say
//! how loss recovery sends. RFC 5681's window inflation during fast
//! recovery is the recovery's business (the connection adds it to the
//! window while recovering), so a controller like CUBIC (RFC 9438) or a
//! model-based one sets its window without knowing about it.
//!
//! The controller never reads a clock: the time of each event comes in as
//! an argument (the stack's virtual time), with the RTT the connection
//! measured.
//!
//! Room for a model-based controller (BBR), not built yet:
//!
//! - Its input is a delivery-rate sample per ACK
//!   (draft-cheng-iccrg-delivery-rate-estimation, as Linux's tcp_rate.c),
//!   a field of [`AckEvent`]. Computing it needs, per segment sent, the
//!   connection's delivered count, delivered time and first-sent time at
//!   that moment and whether the sender was application-limited; these
//!   belong with the per-segment send state of the SACK scoreboard
//!   (`recovery/`), which marks segments delivered by cumulative ACK or
//!   SACK. The sample is then (delivered now - delivered at send) over
//!   max(send interval, ACK interval), invalid below the minimum RTT.
//! - Its output is [`CongestionControl::pacing_rate`], which the output
//!   path honours (`socket/tcp/pacing.rs`: bursts of about a millisecond,
//!   a timer between them) in place of the rate it derives from the
//!   window for CUBIC and Reno, and the window, which stays.
//! - Its reaction to loss goes through the same `on_congestion_event` /
//!   `on_recovery_end` / `on_rto` calls; BBR may ignore them.

mod cubic;
mod hystart;
mod reno;
mod validation;

pub(crate) use cubic::Cubic;
pub(crate) use reno::Reno;
pub(crate) use validation::CwndValidation;

use super::seq::SeqNumber;
use crate::time::{Duration, Instant};
use core::fmt::Debug;

/// The congestion control algorithms a connection can use (Linux's
/// TCP_CONGESTION names them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CongestionAlgorithm {
    /// RFC 5681 Reno with RFC 3465 byte counting.
    Reno,
    /// RFC 9438 CUBIC.
    #[default]
    Cubic,
}

impl CongestionAlgorithm {
    /// Every algorithm, for parsing names.
    pub const ALL: [CongestionAlgorithm; 2] = [CongestionAlgorithm::Reno, CongestionAlgorithm::Cubic];

    /// The name Linux's TCP_CONGESTION uses.
    pub fn name(self) -> &'static str {
        match self {
            CongestionAlgorithm::Reno => "reno",
            CongestionAlgorithm::Cubic => "cubic",
        }
    }

    /// The algorithm of this TCP_CONGESTION name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// A controller of this algorithm starting from `initial` bytes, with
    /// HyStart++ in its initial slow start if `hystart`.
    pub(crate) fn controller(self, initial: usize, hystart: bool) -> Box<dyn CongestionControl> {
        let ss = SlowStart::new(hystart);
        match self {
            CongestionAlgorithm::Reno => Box::new(Reno::new(initial, ss)),
            CongestionAlgorithm::Cubic => Box::new(Cubic::new(initial, ss)),
        }
    }
}

impl core::fmt::Display for CongestionAlgorithm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

impl core::str::FromStr for CongestionAlgorithm {
    type Err = UnknownAlgorithm;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_name(s).ok_or(UnknownAlgorithm)
    }
}

/// A TCP_CONGESTION name that names no algorithm we have (Linux: ENOENT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownAlgorithm;

impl core::fmt::Display for UnknownAlgorithm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("unknown congestion control algorithm (reno, cubic)")
    }
}

impl std::error::Error for UnknownAlgorithm {}

/// What one ACK of new data tells the controller. All sizes in bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AckEvent {
    pub now: Instant,
    /// Bytes of new data this ACK acknowledged (RFC 3465 byte counting).
    pub acked: usize,
    /// The sender's SMSS (payload bytes per full segment).
    pub mss: usize,
    /// The RTT sample this ACK gave, if any (RFC 7323 timestamps, or the
    /// timed segment of RFC 6298 3).
    pub rtt: Option<Duration>,
    /// The smoothed RTT after this ACK (RFC 6298), once there is one.
    pub srtt: Option<Duration>,
    /// SND.UNA after this ACK, and the highest sequence number sent
    /// (RFC 9406 4.2 counts rounds by them).
    pub una: SeqNumber,
    pub snd_max: SeqNumber,
    /// Whether the sender used its window in the current window of data
    /// (RFC 7661; Linux tcp_is_cwnd_limited: cwnd held sending back, or
    /// in slow start cwnd is below twice the largest flight): an
    /// application-limited sender must not grow the window.
    pub cwnd_limited: bool,
    /// Bytes in flight before this ACK, and the RTO (cwnd validation).
    pub in_flight: usize,
    pub rto: Duration,
    // now, rtt, una and snd_max feed CUBIC's curve and HyStart++'s rounds.
    // A delivery-rate sample (delivered bytes over the interval, and
    // whether the interval was application-limited) belongs here for BBR.
}

/// Slow start as both controllers do it: RFC 5681 3.1 with RFC 3465 byte
/// counting, and HyStart++ (RFC 9406) in the initial slow start only
/// (RFC 9406 4.4: later slow starts end at the ssthresh a loss set).
#[derive(Debug, Clone)]
pub(crate) struct SlowStart {
    hystart: Option<hystart::HyStart>,
    /// Conservative Slow Start growth owed, in bytes of slow-start growth
    /// (a quarter of which cwnd gets, in whole segments).
    css_credit: usize,
    /// In the slow start that follows a timeout, where L = 1 SMSS.
    after_rto: bool,
}

impl SlowStart {
    pub fn new(hystart: bool) -> Self {
        SlowStart {
            hystart: hystart.then(hystart::HyStart::new),
            css_credit: 0,
            after_rto: false,
        }
    }

    /// A retransmission timeout: the slow start that follows counts at
    /// most one SMSS per ACK (RFC 3465 2.3), since an ACK may then cover
    /// segments the receiver already had, which say nothing of the path.
    pub fn on_rto(&mut self) {
        self.after_rto = true;
    }

    /// The timeout proved spurious (F-RTO, Eifel): the ACKs that follow
    /// are for data the path delivered, so byte counting is back to L = 2.
    pub fn on_undo(&mut self) {
        self.after_rto = false;
    }

    /// An ACK while cwnd < ssthresh: grow cwnd, or end slow start by
    /// setting ssthresh to cwnd.
    fn on_ack(&mut self, cwnd: &mut usize, ssthresh: &mut usize, ack: &AckEvent) {
        let mss = ack.mss.max(1);
        // Every byte the ACK newly acknowledges, as Linux's tcp_slow_start
        // and gVisor's updateSlowStart count it, not RFC 3465 2.2's L = 2
        // SMSS (an experimental limit; RFC 9406 4.3 has L = 8 without
        // pacing). Receivers send stretch ACKs: one per read or per GRO
        // batch (Linux, and tapir, acknowledge unread data when it is
        // read), so a reader that takes a whole flight at once sends one
        // ACK for it, and with any fixed L slow start grew by L segments
        // a round trip instead of doubling. The one limit kept is RFC 3465
        // 2.3's L = 1 SMSS after a timeout, when an ACK may cover
        // segments the receiver already had.
        let inc = if self.after_rto {
            ack.acked.min(mss)
        } else {
            ack.acked
        };
        let growth = match self.hystart.as_mut() {
            Some(h) if *ssthresh == usize::MAX => h.on_ack(ack),
            _ => hystart::Growth::SlowStart,
        };
        match growth {
            hystart::Growth::SlowStart => {
                *cwnd = cwnd.saturating_add(inc);
                if *cwnd >= *ssthresh {
                    self.after_rto = false;
                }
            }
            hystart::Growth::Conservative => {
                // RFC 9406 4.2: cwnd += min(N, L*SMSS) / CSS_GROWTH_DIVISOR.
                let per_seg = hystart::CSS_GROWTH_DIVISOR * mss;
                self.css_credit = self.css_credit.saturating_add(inc);
                let segs = self.css_credit / per_seg;
                self.css_credit -= segs * per_seg;
                *cwnd = cwnd.saturating_add(segs.saturating_mul(mss));
            }
            hystart::Growth::Exit => {
                *ssthresh = *cwnd;
                self.hystart = None;
            }
        }
    }

    #[cfg(test)]
    fn in_css(&self) -> bool {
        self.hystart.as_ref().is_some_and(|h| h.in_css())
    }
}

/// What a congestion controller sees of a connection. All sizes in bytes.
pub(crate) trait CongestionControl: Debug + Send {
    /// The congestion window.
    fn window(&self) -> usize;
    fn ssthresh(&self) -> usize;
    /// The initial window in bytes for the sender's MSS, once the handshake
    /// has settled it (RFC 6928: the IW is a number of segments). Ignored
    /// once any data was acknowledged or lost.
    fn set_initial_window(&mut self, bytes: usize);
    /// An ACK of new data outside recovery, whether or not the sender was
    /// using its window (`ack.cwnd_limited`).
    fn on_ack(&mut self, ack: &AckEvent);
    /// Loss detected without a timeout (three duplicate ACKs): a congestion
    /// event (RFC 5681 3.2 step 2; RFC 9438 4.6). `in_flight` is the
    /// FlightSize.
    fn on_congestion_event(&mut self, now: Instant, in_flight: usize, mss: usize);
    /// The recovery that followed a congestion event is over.
    fn on_recovery_end(&mut self, now: Instant);
    /// The retransmission timer expired (RFC 5681 3.1 equation 4, then
    /// restart from one segment).
    fn on_rto(&mut self, now: Instant, in_flight: usize, mss: usize);
    /// The last congestion event or timeout was spurious (D-SACK, RFC
    /// 2883 and 3708; F-RTO, RFC 5682; RACK): undo its reduction (RFC 9438
    /// 4.9; Linux tcp_undo_cwnd_reduction). Once per reduction.
    fn on_spurious_reduction(&mut self, now: Instant);
    /// Take over mid-connection from another controller (TCP_CONGESTION
    /// set once data has flowed): keep its window and threshold, as Linux's
    /// tcp_reinit_congestion_control does.
    fn take_over(&mut self, cwnd: usize, ssthresh: usize);
    /// Data goes out after nothing was sent for `idle`, longer than the
    /// RTO (RFC 5681 4.1): the window restarts.
    fn on_idle_restart(&mut self, now: Instant, idle: Duration, rto: Duration, mss: usize);
    /// The rate, in bytes per second, at which the output path should pace
    /// segments; `None` leaves it to the connection, which paces at a rate
    /// derived from the window (`TcpConfig::pacing`). A model-based
    /// controller (BBR) sets it.
    fn pacing_rate(&self) -> Option<u64> {
        None
    }
    /// The name Linux's TCP_CONGESTION uses.
    fn name(&self) -> &'static str;
}

#[cfg(test)]
impl AckEvent {
    /// A cwnd-limited ACK of `acked` bytes without an RTT sample.
    pub(crate) fn test(now: Instant, acked: usize, mss: usize) -> Self {
        AckEvent {
            now,
            acked,
            mss,
            rtt: None,
            srtt: None,
            una: SeqNumber(0),
            snd_max: SeqNumber(0),
            cwnd_limited: true,
            in_flight: 0,
            rto: Duration::from_secs(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: usize = 1000;

    /// A sender in the initial slow start that keeps its window full, with
    /// HyStart++ on; ACKs one segment each, every one with an RTT sample.
    struct Sender {
        cc: Cubic,
        una: u32,
        now: Instant,
    }

    impl Sender {
        fn new() -> Self {
            Sender {
                cc: Cubic::new(10 * MSS, SlowStart::new(true)),
                una: 0,
                now: Instant::from_secs(1),
            }
        }

        /// One ACK with this RTT sample, the window refilled behind it.
        fn ack(&mut self, rtt_ms: u64) {
            self.una += MSS as u32;
            self.now += Duration::from_millis(1);
            let snd_max = SeqNumber(self.una.wrapping_add(self.cc.window() as u32));
            self.cc.on_ack(&AckEvent {
                rtt: Some(Duration::from_millis(rtt_ms)),
                una: SeqNumber(self.una),
                snd_max,
                ..AckEvent::test(self.now, MSS, MSS)
            });
        }

        /// A round's worth of ACKs (a window's), all with this RTT.
        fn round(&mut self, rtt_ms: u64) {
            for _ in 0..self.cc.window() / MSS {
                self.ack(rtt_ms);
            }
        }

        fn in_css(&self) -> bool {
            self.cc.slow_start.in_css()
        }
    }

    #[test]
    fn hystart_stays_in_slow_start_without_delay_increase() {
        let mut s = Sender::new();
        for _ in 0..6 {
            s.round(50);
        }
        assert!(!s.in_css());
        assert_eq!(s.cc.ssthresh(), usize::MAX);
        // Doubling per round, from 10 segments, give or take the round
        // boundary falling inside a window.
        assert!(s.cc.window() >= 320 * MSS, "{}", s.cc.window());
    }

    #[test]
    fn hystart_leaves_slow_start_on_delay_increase() {
        let mut s = Sender::new();
        s.round(50);
        s.round(50);
        // RttThresh = max(4 ms, min(50 ms / 8, 16 ms)) = 6.25 ms: 56 ms is
        // no increase (hystart::tests has the exact thresholds)...
        s.round(56);
        s.round(56);
        assert!(!s.in_css(), "56 ms is below 50 + 6.25");
        // ...60 ms over the 56 ms round is not either, but 70 ms over 60
        // ms is (60 + 7.5).
        s.round(60);
        assert!(!s.in_css(), "60 ms is below 56 + 7");
        let mut acks = 0;
        while !s.in_css() && acks < 200 {
            s.ack(70);
            acks += 1;
        }
        assert!(s.in_css(), "CSS on the delay increase");
        assert_eq!(s.cc.ssthresh(), usize::MAX, "CSS is still slow start");
        // CSS grows a quarter as fast: a window of 1-segment ACKs adds a
        // quarter window.
        let before = s.cc.window();
        let acks = before / MSS;
        for _ in 0..acks {
            s.ack(70);
        }
        assert!(s.in_css());
        let grown = s.cc.window() - before;
        assert!(
            grown <= acks * MSS / 4 + MSS && grown + MSS >= acks * MSS / 4,
            "CSS grew {grown}"
        );
        // After CSS_ROUNDS rounds of CSS, congestion avoidance at cwnd.
        for _ in 0..6 {
            s.round(70);
        }
        assert!(!s.in_css());
        // ssthresh = cwnd on leaving CSS, since when avoidance may have
        // added a segment.
        let (w, ss) = (s.cc.window(), s.cc.ssthresh());
        assert!(ss <= w && w <= ss + MSS, "cwnd {w} ssthresh {ss}");
        let w = s.cc.window();
        s.round(70);
        assert!(s.cc.window() < w + w / 4, "no longer slow start");
    }

    #[test]
    fn hystart_css_returns_to_slow_start_when_rtt_falls() {
        let mut s = Sender::new();
        s.round(50);
        s.round(60);
        assert!(s.in_css(), "60 >= 50 + 6.25");
        // The next round's minimum is below the baseline (60 ms): the
        // increase was noise, back to slow start.
        s.round(55);
        assert!(!s.in_css());
        assert_eq!(s.cc.ssthresh(), usize::MAX);
        let w = s.cc.window();
        s.round(55);
        assert!(
            s.cc.window() >= 2 * w - 2 * MSS,
            "slow start again: {w} -> {}",
            s.cc.window()
        );
    }

    #[test]
    fn slow_start_counts_stretch_acks_whole_but_one_segment_after_a_timeout() {
        // A stretch ACK grows cwnd by all it acknowledges (Linux
        // tcp_slow_start), not RFC 3465 2.2's L = 2.
        let mut c = Cubic::new(10 * MSS, SlowStart::new(false));
        c.on_ack(&AckEvent::test(Instant::ZERO, 5 * MSS, MSS));
        assert_eq!(c.window(), 15 * MSS);
        c.on_ack(&AckEvent::test(Instant::ZERO, 12 * MSS, MSS));
        assert_eq!(c.window(), 27 * MSS);
        // RFC 3465 2.3: after a timeout, L = 1 until slow start ends.
        c.on_rto(Instant::ZERO, 27 * MSS, MSS);
        assert_eq!((c.window(), c.ssthresh()), (MSS, 18 * MSS));
        c.on_ack(&AckEvent::test(Instant::ZERO, 2 * MSS, MSS));
        assert_eq!(c.window(), 2 * MSS);
        let mut r = Reno::new(10 * MSS, SlowStart::new(false));
        r.on_rto(Instant::ZERO, 10 * MSS, MSS);
        r.on_ack(&AckEvent::test(Instant::ZERO, 2 * MSS, MSS));
        assert_eq!(r.window(), 2 * MSS);
        for _ in 0..3 {
            r.on_ack(&AckEvent::test(Instant::ZERO, 2 * MSS, MSS));
        }
        assert_eq!(r.window(), 5 * MSS, "at ssthresh 5: slow start over");
    }

    #[test]
    fn spurious_reductions_are_undone() {
        // CUBIC, RFC 9438 4.9: window, threshold and curve come back.
        let mut c = Cubic::new(100 * MSS, SlowStart::new(false));
        c.on_congestion_event(Instant::ZERO, 100 * MSS, MSS);
        c.on_recovery_end(Instant::ZERO);
        c.on_ack(&AckEvent::test(Instant::from_secs(1), MSS, MSS));
        let (w, ss) = (c.window(), c.ssthresh());
        // A second event (say, reordering mistaken for loss), then found
        // spurious.
        c.on_congestion_event(Instant::from_secs(2), 70 * MSS, MSS);
        assert_eq!(c.window(), 49 * MSS);
        c.on_spurious_reduction(Instant::from_secs(2));
        assert_eq!((c.window(), c.ssthresh()), (w, ss));
        // The curve is the first event's: avoidance continues on it.
        c.on_ack(&AckEvent::test(Instant::from_secs(2), MSS, MSS));
        assert!(c.window() >= w);

        // A timeout, repeated, then found spurious (F-RTO): back to the
        // window before the first.
        let mut c = Cubic::new(40 * MSS, SlowStart::new(false));
        c.on_rto(Instant::ZERO, 40 * MSS, MSS);
        c.on_rto(Instant::from_secs(1), 40 * MSS, MSS);
        c.on_spurious_reduction(Instant::from_secs(1));
        assert_eq!((c.window(), c.ssthresh()), (40 * MSS, usize::MAX));
        // The slow start that follows counts every segment again (RFC
        // 3465 2.3's L = 1 is for ACKs after a real timeout).
        c.on_ack(&AckEvent::test(Instant::from_secs(1), 5 * MSS, MSS));
        assert_eq!(c.window(), 45 * MSS);

        // Reno, as Linux's tcp_undo_cwnd_reduction.
        let mut r = Reno::new(40 * MSS, SlowStart::new(false));
        r.on_rto(Instant::ZERO, 40 * MSS, MSS);
        r.on_rto(Instant::from_secs(1), 40 * MSS, MSS);
        assert_eq!(r.window(), MSS);
        r.on_spurious_reduction(Instant::from_secs(1));
        assert_eq!((r.window(), r.ssthresh()), (40 * MSS, usize::MAX));
        r.on_congestion_event(Instant::ZERO, 40 * MSS, MSS);
        r.on_spurious_reduction(Instant::ZERO);
        assert_eq!(r.window(), 40 * MSS);
    }

    /// A timeout that interrupts a fast recovery does not reduce again
    /// (Linux tcp_enter_loss: "if it has not yet been made inside this
    /// window"), and undoing it restores the state before the recovery.
    #[test]
    fn timeout_in_recovery_keeps_its_reduction() {
        let mut c = Cubic::new(100 * MSS, SlowStart::new(false));
        c.on_congestion_event(Instant::ZERO, 100 * MSS, MSS);
        c.on_rto(Instant::from_secs(1), 70 * MSS, MSS);
        assert_eq!((c.window(), c.ssthresh()), (MSS, 70 * MSS));
        c.on_spurious_reduction(Instant::from_secs(1));
        assert_eq!((c.window(), c.ssthresh()), (100 * MSS, usize::MAX));
        // After the recovery, a timeout is a new reduction.
        c.on_congestion_event(Instant::from_secs(2), 100 * MSS, MSS);
        c.on_recovery_end(Instant::from_secs(2));
        c.on_rto(Instant::from_secs(3), 70 * MSS, MSS);
        assert_eq!(c.ssthresh(), 49 * MSS);

        let mut r = Reno::new(40 * MSS, SlowStart::new(false));
        r.on_congestion_event(Instant::ZERO, 40 * MSS, MSS);
        r.on_rto(Instant::from_secs(1), 20 * MSS, MSS);
        assert_eq!((r.window(), r.ssthresh()), (MSS, 20 * MSS));
        r.on_spurious_reduction(Instant::from_secs(1));
        assert_eq!((r.window(), r.ssthresh()), (40 * MSS, usize::MAX));
    }

    #[test]
    fn hystart_only_in_the_initial_slow_start() {
        let mut s = Sender::new();
        s.round(50);
        s.cc.on_rto(s.now, 0, MSS);
        // Slow start after a timeout ends at ssthresh, whatever the RTT.
        for rtt in [50, 100, 200] {
            s.round(rtt);
        }
        assert!(!s.in_css());
    }
}
