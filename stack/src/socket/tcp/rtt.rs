//! The retransmission timer's estimator: RFC 6298, computed as Linux does
//! (tcp_rtt_estimator, tcp_set_rto).
//!
//! RFC 6298 2.3 sets RTO = SRTT + max(G, K*RTTVAR). Linux reads G as its
//! minimum RTO (200 ms), so the floor applies to the variance term, not to
//! the sum: a 50 ms path gets 250 ms, not 200 ms. Two refinements of
//! Linux's are kept too, because scripts written against Linux time their
//! retransmissions by them: a falling RTT moves the variance by 1/32 rather
//! than 1/4 (like Eifel, a sudden fast sample does not inflate the RTO),
//! and the variance used for the RTO follows the largest deviation seen
//! in the last round trip, decaying towards it by a quarter per round trip.

use super::seq::SeqNumber;
use crate::time::Duration;

/// SRTT, RTTVAR and the RTO derived from them, with exponential backoff.
#[derive(Debug, Clone)]
pub(crate) struct RttEstimator {
    srtt: Option<Duration>,
    /// K*RTTVAR of RFC 6298 (Linux mdev_us).
    mdev: Duration,
    /// The largest `mdev` this round trip, at least `min` (mdev_max_us).
    mdev_max: Duration,
    /// The variance term of the RTO (Linux rttvar_us).
    var_term: Duration,
    /// The round trip ends when this is acknowledged (Linux rtt_seq).
    round_end: SeqNumber,
    rto: Duration,
    min: Duration,
    max: Duration,
    /// Consecutive expirations without a new ACK (RFC 6298 5.5).
    backoff: u32,
}

/// RFC 6298 5.7: the RTO once the handshake needed a retransmission.
const FALLBACK: Duration = Duration::from_secs(3);

impl RttEstimator {
    pub fn new(initial: Duration, min: Duration, max: Duration) -> Self {
        RttEstimator {
            srtt: None,
            mdev: Duration::ZERO,
            mdev_max: min,
            var_term: min,
            round_end: SeqNumber(0),
            rto: initial,
            min,
            max,
            backoff: 0,
        }
    }

    /// Feed one RTT measurement (RFC 6298 2.2 and 2.3), taken when the
    /// cumulative ACK reached `una` with `nxt` the highest sequence sent.
    /// A valid measurement ends the backoff (Karn, RFC 6298 5.7).
    pub fn sample(&mut self, rtt: Duration, una: SeqNumber, nxt: SeqNumber) {
        match self.srtt {
            None => {
                // RFC 6298 2.2: SRTT <- R, RTTVAR <- R/2.
                self.srtt = Some(rtt);
                self.mdev = rtt * 2;
                self.mdev_max = self.mdev.max(self.min);
                self.var_term = self.mdev_max;
                self.round_end = nxt;
            }
            Some(srtt) => {
                // RTTVAR <- 3/4 RTTVAR + 1/4 |SRTT - R'| (in K*RTTVAR units:
                // mdev += |err| - mdev/4); a fall in RTT counts 1/8 as much.
                let quarter = self.mdev / 4;
                if rtt < srtt {
                    let err = srtt - rtt;
                    if err > quarter {
                        self.mdev += (err - quarter) / 8;
                    } else {
                        self.mdev -= quarter - err;
                    }
                } else {
                    let err = rtt - srtt;
                    if err > quarter {
                        self.mdev += err - quarter;
                    } else {
                        self.mdev -= quarter - err;
                    }
                }
                // SRTT <- 7/8 SRTT + 1/8 R'
                self.srtt = Some((srtt * 7 + rtt) / 8);
                if self.mdev > self.mdev_max {
                    self.mdev_max = self.mdev;
                    self.var_term = self.var_term.max(self.mdev_max);
                }
                if una > self.round_end {
                    // A round trip is over: let the variance term decay.
                    if self.mdev_max < self.var_term {
                        self.var_term -= (self.var_term - self.mdev_max) / 4;
                    }
                    self.round_end = nxt;
                    self.mdev_max = self.min;
                }
            }
        }
        let srtt = self.srtt.unwrap_or(rtt);
        self.rto = (srtt + self.var_term).clamp(self.min, self.max);
        self.backoff = 0;
    }

    /// The current RTO, backoff included.
    pub fn rto(&self) -> Duration {
        let factor = 1u32.checked_shl(self.backoff).unwrap_or(u32::MAX);
        self.rto.saturating_mul(factor).min(self.max)
    }

    /// RFC 6298 5.5: double the RTO on each expiration.
    pub fn back_off(&mut self) {
        self.backoff = (self.backoff + 1).min(31);
    }

    /// The handshake completed: stop backing off.
    ///
    /// Only here, and in [`Self::sample`]: an ACK of data without a valid
    /// RTT sample (it acknowledges a retransmission, Karn's rule) keeps
    /// the backed-off RTO (RFC 6298 5.7 and section 3; Linux resets
    /// icsk_backoff only in tcp_ack_update_rtt, "only reset backoff on
    /// valid RTT measurement", and doubles icsk_rto itself on a timeout).
    ///
    /// If the timer expired before any RTT sample (a SYN or SYN-ACK was
    /// retransmitted, so Karn's rule left the handshake unmeasured), the
    /// RTO restarts at 3 s rather than the initial 1 s (RFC 6298 5.7; Linux
    /// TCP_TIMEOUT_FALLBACK in tcp_init_metrics), until a sample arrives.
    pub fn reset_backoff(&mut self) {
        if self.srtt.is_none() && self.backoff > 0 {
            self.rto = self.rto.max(FALLBACK).clamp(self.min, self.max);
        }
        self.backoff = 0;
    }

    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// RFC 6298's RTTVAR.
    pub fn rttvar(&self) -> Duration {
        self.mdev / 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    fn est() -> RttEstimator {
        RttEstimator::new(ms(1000), ms(200), ms(120_000))
    }

    /// Samples, each after a cumulative ACK that ends a round trip.
    fn feed(r: &mut RttEstimator, samples: &[u64]) {
        for (i, &s) in samples.iter().enumerate() {
            let una = SeqNumber(1000 * (i as u32 + 1));
            r.sample(ms(s), una, una + 1000);
        }
    }

    #[test]
    fn first_sample_sets_srtt_and_half_rttvar() {
        let mut r = est();
        assert_eq!(r.rto(), ms(1000));
        feed(&mut r, &[100]);
        assert_eq!(r.srtt(), Some(ms(100)));
        assert_eq!(r.rttvar(), ms(50));
        // 100 + max(200, 4 * 50) = 300
        assert_eq!(r.rto(), ms(300));
    }

    #[test]
    fn minimum_bounds_the_variance_term_not_the_sum() {
        // Linux: 50 + max(200, 100) = 250 (not max(200, 50 + 100)).
        let mut r = est();
        feed(&mut r, &[50]);
        assert_eq!(r.rto(), ms(250));
        let mut r = est();
        feed(&mut r, &[1]);
        assert_eq!(r.rto(), ms(201));
    }

    #[test]
    fn rising_rtt_follows_rfc6298() {
        let mut r = RttEstimator::new(ms(1000), ms(1), ms(120_000));
        feed(&mut r, &[100, 200]);
        // RTTVAR = 3/4*50 + 1/4*100 = 62.5; SRTT = 7/8*100 + 1/8*200 = 112.5
        assert_eq!(r.rttvar(), us(62_500));
        assert_eq!(r.srtt(), Some(us(112_500)));
        assert_eq!(r.rto(), us(362_500));
    }

    #[test]
    fn falling_rtt_moves_the_variance_an_eighth_as_much() {
        // As Linux: from 100 ms to 0, |err| - mdev/4 = 100 - 50 = 50 counts
        // as 50/8 = 6.25 ms of K*RTTVAR: 200 -> 206.25; RTO 87.5 + 206.25.
        let mut r = est();
        feed(&mut r, &[100, 0]);
        assert_eq!(r.srtt(), Some(us(87_500)));
        assert_eq!(r.rto(), us(293_750));
    }

    #[test]
    fn variance_term_decays_once_per_round_trip() {
        let mut r = RttEstimator::new(ms(1000), ms(1), ms(120_000));
        feed(&mut r, &[100]);
        assert_eq!(r.rto(), ms(300));
        // Steady 100 ms samples within one round trip (una never passes
        // the round's end): K*RTTVAR shrinks (200 -> 150 -> 112.5) but the
        // RTO's variance term holds at the round's maximum.
        let una = SeqNumber(1000);
        r.sample(ms(100), una, una + 5000);
        r.sample(ms(100), una, una + 5000);
        assert_eq!(r.rto(), ms(300));
        // The first round ends: its largest deviation was the first
        // sample's, so nothing decays yet.
        r.sample(ms(100), SeqNumber(3000), SeqNumber(9000));
        assert_eq!(r.rto(), ms(300));
        // The next round's largest deviation is smaller (about 63 ms): when
        // it ends, the term moves a quarter of the way down to it.
        r.sample(ms(100), SeqNumber(3000), SeqNumber(9000));
        r.sample(ms(100), SeqNumber(10_000), SeqNumber(12_000));
        let rto = r.rto();
        assert!(rto > ms(265) && rto < ms(266), "{rto:?}");
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let mut r = RttEstimator::new(ms(1000), ms(200), ms(60_000));
        for expect in [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000] {
            assert_eq!(r.rto(), ms(expect));
            r.back_off();
        }
        feed(&mut r, &[100]);
        assert_eq!(r.rto(), ms(300));
    }

    #[test]
    fn timeout_before_any_sample_falls_back_to_three_seconds() {
        let mut r = est();
        r.back_off();
        r.reset_backoff();
        assert_eq!(r.rto(), ms(3000));
        feed(&mut r, &[100]);
        assert_eq!(r.rto(), ms(300));
        // With a sample, a later timeout does not fall back.
        r.back_off();
        r.reset_backoff();
        assert_eq!(r.rto(), ms(300));
    }
}
