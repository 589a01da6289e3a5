//! The retransmission timer's estimator (RFC 6298).

use crate::time::Duration;

/// SRTT, RTTVAR and the RTO derived from them, with exponential backoff.
#[derive(Debug, Clone)]
pub(crate) struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    rto: Duration,
    min: Duration,
    max: Duration,
    /// Consecutive expirations without a new ACK (RFC 6298 5.5).
    backoff: u32,
}

/// RFC 6298 2.4: the clock granularity term G. We measure in microseconds,
/// but follow Linux in not letting RTTVAR's share fall below this.
const GRANULARITY: Duration = Duration::from_millis(1);

/// RFC 6298 5.7: the RTO once the handshake needed a retransmission.
const FALLBACK: Duration = Duration::from_secs(3);

impl RttEstimator {
    pub fn new(initial: Duration, min: Duration, max: Duration) -> Self {
        RttEstimator {
            srtt: None,
            rttvar: Duration::ZERO,
            rto: initial,
            min,
            max,
            backoff: 0,
        }
    }

    /// Feed one RTT measurement (RFC 6298 2.2 and 2.3).
    pub fn sample(&mut self, rtt: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                // RTTVAR <- 3/4 RTTVAR + 1/4 |SRTT - R'|; SRTT <- 7/8 SRTT + 1/8 R'
                let delta = srtt.abs_diff(rtt);
                self.rttvar = (self.rttvar * 3 + delta) / 4;
                self.srtt = Some((srtt * 7 + rtt) / 8);
            }
        }
        let srtt = self.srtt.unwrap_or(rtt);
        self.rto = (srtt + (self.rttvar * 4).max(GRANULARITY)).clamp(self.min, self.max);
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

    /// A new ACK arrived: stop backing off (RFC 6298 5.7 keeps the RTO until
    /// the next sample, Linux resets backoff on any forward progress).
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

    pub fn rttvar(&self) -> Duration {
        self.rttvar
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn first_sample_sets_srtt_and_half_rttvar() {
        let mut r = RttEstimator::new(ms(1000), ms(200), ms(120_000));
        assert_eq!(r.rto(), ms(1000));
        r.sample(ms(100));
        assert_eq!(r.srtt(), Some(ms(100)));
        assert_eq!(r.rttvar(), ms(50));
        // 100 + 4 * 50 = 300
        assert_eq!(r.rto(), ms(300));
    }

    #[test]
    fn smoothing_follows_rfc6298() {
        let mut r = RttEstimator::new(ms(1000), ms(1), ms(120_000));
        r.sample(ms(100));
        r.sample(ms(200));
        // RTTVAR = 3/4*50 + 1/4*100 = 62.5; SRTT = 7/8*100 + 1/8*200 = 112.5
        assert_eq!(r.rttvar(), Duration::from_micros(62_500));
        assert_eq!(r.srtt(), Some(Duration::from_micros(112_500)));
        assert_eq!(r.rto(), Duration::from_micros(362_500));
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let mut r = RttEstimator::new(ms(1000), ms(200), ms(60_000));
        for expect in [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000] {
            assert_eq!(r.rto(), ms(expect));
            r.back_off();
        }
        r.sample(ms(100));
        assert_eq!(r.rto(), ms(300));
    }

    #[test]
    fn timeout_before_any_sample_falls_back_to_three_seconds() {
        let mut r = RttEstimator::new(ms(1000), ms(200), ms(120_000));
        r.back_off();
        r.reset_backoff();
        assert_eq!(r.rto(), ms(3000));
        r.sample(ms(100));
        assert_eq!(r.rto(), ms(300));
        // With a sample, a later timeout does not fall back.
        r.back_off();
        r.reset_backoff();
        assert_eq!(r.rto(), ms(300));
    }

    #[test]
    fn minimum_applies() {
        let mut r = RttEstimator::new(ms(1000), ms(200), ms(120_000));
        r.sample(ms(1));
        assert_eq!(r.rto(), ms(200));
    }
}
