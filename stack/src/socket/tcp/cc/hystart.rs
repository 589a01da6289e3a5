//! HyStart++ (RFC 9406): leave the initial slow start when the RTT starts
//! to grow, before the queue overflows, through a few rounds of
//! Conservative Slow Start (CSS) in case the increase was noise.
//!
//! RTT samples are those the connection takes: one per ACK with
//! timestamps (RFC 7323), one per round trip without (RFC 6298's timed
//! segment), which is rarely the N_RTT_SAMPLE a round needs, so without
//! timestamps slow start mostly ends on loss as before.

use super::AckEvent;
use crate::socket::tcp::seq::SeqNumber;
use crate::time::Duration;

/// RFC 9406 4.3: the bounds of the delay increase that ends slow start,
/// the fraction of the last round's minimum RTT it is otherwise, and the
/// samples a round needs before it is checked.
const MIN_RTT_THRESH: Duration = Duration::from_millis(4);
const MAX_RTT_THRESH: Duration = Duration::from_millis(16);
const MIN_RTT_DIVISOR: u32 = 8;
const N_RTT_SAMPLE: u32 = 8;
/// RFC 9406 4.3: CSS grows a quarter as fast as slow start, for at most
/// five rounds.
pub(super) const CSS_GROWTH_DIVISOR: usize = 4;
const CSS_ROUNDS: u32 = 5;

/// How the window grows on this ACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Growth {
    /// Standard slow start.
    SlowStart,
    /// Conservative Slow Start: by 1/CSS_GROWTH_DIVISOR of slow start's.
    Conservative,
    /// Slow start is over: ssthresh = cwnd, congestion avoidance.
    Exit,
}

#[derive(Debug, Clone)]
pub(super) struct HyStart {
    /// windowEnd: the round ends when everything sent before it started
    /// is acknowledged (RFC 9406 4.2).
    window_end: Option<SeqNumber>,
    last_round_min: Option<Duration>,
    current_round_min: Option<Duration>,
    samples: u32,
    /// In CSS: the minimum RTT of the round that entered it, and the
    /// rounds spent in it.
    css_baseline: Option<Duration>,
    css_rounds: u32,
}

impl HyStart {
    pub fn new() -> Self {
        HyStart {
            window_end: None,
            last_round_min: None,
            current_round_min: None,
            samples: 0,
            css_baseline: None,
            css_rounds: 0,
        }
    }

    /// Whether the last ACK left the sender in Conservative Slow Start.
    #[cfg(test)]
    pub fn in_css(&self) -> bool {
        self.css_baseline.is_some()
    }

    /// An ACK in the initial slow start (RFC 9406 4.2).
    pub fn on_ack(&mut self, ack: &AckEvent) -> Growth {
        let window_end = *self.window_end.get_or_insert(ack.snd_max);
        // The sample is the round's whose data this ACK acknowledges, the
        // one ending here included (as Linux, which takes it before it
        // starts the next round).
        if let Some(rtt) = ack.rtt {
            self.current_round_min = Some(self.current_round_min.map_or(rtt, |m| m.min(rtt)));
            self.samples = self.samples.saturating_add(1);
            self.check();
        }
        if ack.una >= window_end {
            // The round is over; the next ends with what is sent by now.
            self.window_end = Some(ack.snd_max);
            self.last_round_min = self.current_round_min.take();
            self.samples = 0;
            if self.css_baseline.is_some() {
                // Counted at round starts: the round CSS began in is not a
                // whole one.
                self.css_rounds += 1;
                if self.css_rounds > CSS_ROUNDS {
                    // CSS_ROUNDS rounds without the RTT falling back: the
                    // increase was real; congestion avoidance from here.
                    return Growth::Exit;
                }
            }
        }
        self.growth()
    }

    /// With N_RTT_SAMPLE samples in this round: into CSS on a delay
    /// increase over the last round, back out if the RTT fell below the
    /// one that entered it.
    fn check(&mut self) {
        let (Some(current), true) = (self.current_round_min, self.samples >= N_RTT_SAMPLE) else {
            return;
        };
        match self.css_baseline {
            None => {
                if let Some(last) = self.last_round_min {
                    let thresh = (last / MIN_RTT_DIVISOR).clamp(MIN_RTT_THRESH, MAX_RTT_THRESH);
                    if current >= last.saturating_add(thresh) {
                        // The queue is building: on to CSS.
                        self.css_baseline = Some(current);
                        self.css_rounds = 0;
                    }
                }
            }
            Some(baseline) => {
                if current < baseline {
                    // The increase was a spurious one: back to slow start.
                    self.css_baseline = None;
                    self.css_rounds = 0;
                }
            }
        }
    }

    fn growth(&self) -> Growth {
        match self.css_baseline {
            Some(_) => Growth::Conservative,
            None => Growth::SlowStart,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Instant;

    /// An ACK up to segment `una` (in segments), with `snd_max` sent so
    /// far, and an RTT sample.
    fn ack(h: &mut HyStart, una: u32, snd_max: u32, rtt_ms: u64) -> Growth {
        h.on_ack(&AckEvent {
            rtt: Some(Duration::from_millis(rtt_ms)),
            una: SeqNumber(una),
            snd_max: SeqNumber(snd_max),
            ..AckEvent::test(Instant::ZERO, 1, 1)
        })
    }

    /// Rounds of ten segments: the ACK of segment `10 k` ends round k.
    fn round(h: &mut HyStart, k: u32, rtt_ms: u64) -> Growth {
        let mut g = Growth::SlowStart;
        for una in 10 * (k - 1) + 1..=10 * k {
            // The next round's data goes out as this one's last is acked.
            let snd_max = if una == 10 * k { 10 * k + 10 } else { 10 * k };
            g = ack(h, una, snd_max, rtt_ms);
        }
        g
    }

    #[test]
    fn delay_increase_needs_the_threshold_and_eight_samples() {
        let mut h = HyStart::new();
        // Round 1 ends with the ACK of segment 10 (windowEnd).
        ack(&mut h, 1, 10, 50);
        for una in 2..=10 {
            assert_eq!(ack(&mut h, una, 20, 50), Growth::SlowStart);
        }
        // RttThresh = max(4, min(50 / 8, 16)) = 6.25 ms: 56 ms is not an
        // increase, even with ten samples.
        assert_eq!(round(&mut h, 2, 56), Growth::SlowStart);
        // Over 56 ms: RttThresh 7 ms; 63 ms is, from the eighth sample.
        for una in 21..=27 {
            assert_eq!(ack(&mut h, una, 30, 63), Growth::SlowStart, "segment {una}");
        }
        assert_eq!(ack(&mut h, 28, 30, 63), Growth::Conservative);
    }

    #[test]
    fn rtt_thresholds_are_clamped() {
        // A 10 ms path: RttThresh is MIN_RTT_THRESH, 4 ms (not 1.25).
        let mut h = HyStart::new();
        round(&mut h, 1, 10);
        assert_eq!(round(&mut h, 2, 13), Growth::SlowStart);
        assert_eq!(round(&mut h, 3, 17), Growth::Conservative);
        // A 400 ms path: MAX_RTT_THRESH, 16 ms (not 50).
        let mut h = HyStart::new();
        round(&mut h, 1, 400);
        assert_eq!(round(&mut h, 2, 415), Growth::SlowStart);
        assert_eq!(round(&mut h, 3, 431), Growth::Conservative);
    }

    #[test]
    fn css_ends_after_five_rounds_or_when_the_rtt_falls() {
        let mut h = HyStart::new();
        round(&mut h, 1, 50);
        assert_eq!(round(&mut h, 2, 60), Growth::Conservative);
        // Rounds 3 to 6 in CSS; the ACK ending the fifth (round 7) exits.
        for k in 3..=6 {
            assert_eq!(round(&mut h, k, 60), Growth::Conservative, "round {k}");
        }
        assert_eq!(round(&mut h, 7, 60), Growth::Exit);

        // The same, but round 3 comes back under the 60 ms baseline.
        let mut h = HyStart::new();
        round(&mut h, 1, 50);
        assert_eq!(round(&mut h, 2, 60), Growth::Conservative);
        assert_eq!(round(&mut h, 3, 59), Growth::SlowStart);
    }

    #[test]
    fn no_samples_no_exit() {
        // Without RTT samples (no timestamps), HyStart++ never acts.
        let mut h = HyStart::new();
        for una in 1..1000 {
            let g = h.on_ack(&AckEvent {
                una: SeqNumber(una),
                snd_max: SeqNumber(una + 10),
                ..AckEvent::test(Instant::ZERO, 1, 1)
            });
            assert_eq!(g, Growth::SlowStart);
        }
    }
}
