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
        if self.window_end.is_none_or(|end| ack.una >= end) {
            // A new round.
            self.window_end = Some(ack.snd_max);
            self.last_round_min = self.current_round_min.take();
            self.samples = 0;
            if self.css_baseline.is_some() {
                self.css_rounds += 1;
                if self.css_rounds >= CSS_ROUNDS {
                    // CSS_ROUNDS rounds without the RTT falling back: the
                    // increase was real; congestion avoidance from here.
                    return Growth::Exit;
                }
            }
        }
        if let Some(rtt) = ack.rtt {
            self.current_round_min = Some(self.current_round_min.map_or(rtt, |m| m.min(rtt)));
            self.samples = self.samples.saturating_add(1);
        }
        let (Some(current), true) = (self.current_round_min, self.samples >= N_RTT_SAMPLE) else {
            return self.growth();
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
        self.growth()
    }

    fn growth(&self) -> Growth {
        match self.css_baseline {
            Some(_) => Growth::Conservative,
            None => Growth::SlowStart,
        }
    }
}
