//! Small helpers of the interface: a token bucket and a seeded generator.

use crate::time::Instant;

/// A token bucket for ICMP errors (RFC 1812 4.3.2.8) and TCP's RSTs to
/// segments for no connection. Tokens are kept in millionths so that
/// refill is exact at any rate.
pub(crate) struct TokenBucket {
    micro_tokens: u64,
    max: u64,
    rate: u64,
    last: Option<Instant>,
}

impl TokenBucket {
    pub(crate) fn new(per_sec: u32, burst: u32) -> Self {
        let max = u64::from(burst.max(1)) * 1_000_000;
        TokenBucket {
            micro_tokens: max,
            max,
            rate: u64::from(per_sec),
            last: None,
        }
    }

    pub(crate) fn take(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let elapsed = (now - last).as_micros().min(u128::from(u64::MAX)) as u64;
            self.micro_tokens = self
                .micro_tokens
                .saturating_add(elapsed.saturating_mul(self.rate))
                .min(self.max);
        }
        self.last = Some(now);
        if self.micro_tokens >= 1_000_000 {
            self.micro_tokens -= 1_000_000;
            true
        } else {
            false
        }
    }
}

/// SplitMix64 (Steele et al. 2014): small, fast, and deterministic for a
/// seed. Not for secrets; TCP's ISN key will be derived separately.
pub(crate) struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
