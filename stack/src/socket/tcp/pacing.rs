//! Pacing: data leaves no faster than a rate, in bursts of about a
//! millisecond, instead of at once whenever an ACK opens the window.
//!
//! An ACK-clocked sender in slow start answers each ACK with twice what it
//! acknowledged, at the speed of the host, and an ACK that arrives with
//! others (a receiver's stretch ACK, a link that delivers in clumps)
//! becomes a line-rate burst of dozens of segments: a bottleneck with a
//! shallow queue drops the tail of it long before the path is full, and
//! the loss ends slow start at a fraction of the path's capacity. Linux
//! paces when the fq qdisc or a controller asks for it (BBR), at a rate it
//! derives from the window (`tcp_update_pacing_rate`): 200 % of cwnd / SRTT
//! in slow start, while cwnd is below half ssthresh, and 120 % after
//! (net.ipv4.tcp_pacing_ss_ratio and tcp_pacing_ca_ratio), so that pacing
//! never holds the window back, only spreads it over the round trip.
//!
//! The mechanism here is a token bucket of one burst: Linux sends one
//! TSO packet of about a millisecond at the pacing rate (`tcp_tso_autosize`:
//! sk_pacing_shift 10, at least two segments) and then waits out its
//! length at that rate (`tcp_update_skb_after_send`). A burst may go when
//! the bucket is full; it empties it, and the next one waits until the
//! rate has refilled it. The first ten segments of a connection are not
//! paced (sch_fq's initial quantum, kept by Linux's internal pacing), nor
//! is anything before the first RTT sample gives a rate.

use crate::time::{Duration, Instant};

/// Linux's sk_pacing_shift: a burst is 1/1024 of a second at the rate.
const BURST_SHIFT: u32 = 10;
/// Linux's min_tso_segs: a burst is at least two full segments.
const MIN_BURST_SEGMENTS: usize = 2;
/// sch_fq's initial quantum: segments a connection sends before pacing
/// starts.
const UNPACED_SEGMENTS: u64 = 10;

#[derive(Debug, Clone, Default)]
pub(crate) struct Pacer {
    /// Bytes of the current burst still allowed; negative when the last
    /// segment overdrew it (a segment is never cut for pacing).
    tokens: i64,
    /// When `tokens` was last brought up to date.
    updated: Option<Instant>,
    /// The burst is spent: nothing goes until the bucket is full again.
    refilling: bool,
    /// Segments sent so far (pacing starts after [`UNPACED_SEGMENTS`]).
    segments: u64,
}

impl Pacer {
    /// The bytes of one burst at `rate` bytes per second with full
    /// segments of `mss` bytes.
    pub fn burst(rate: u64, mss: usize) -> usize {
        let by_rate = usize::try_from(rate >> BURST_SHIFT).unwrap_or(usize::MAX);
        by_rate.max(MIN_BURST_SEGMENTS * mss)
    }

    fn refill(&mut self, now: Instant, rate: u64, burst: i64) {
        // A bucket not yet (or no longer) pacing starts full.
        self.tokens = match self.updated {
            None => burst,
            Some(t) => {
                let elapsed = micros(now.saturating_duration_since(t));
                let earned = i64::try_from(mul_div(rate, elapsed, 1_000_000)).unwrap_or(i64::MAX);
                self.tokens.saturating_add(earned).min(burst)
            }
        };
        self.updated = Some(now);
        if self.tokens >= burst {
            self.refilling = false;
        }
    }

    /// `None` if a segment may go at `now` at `rate` (no rate: not
    /// pacing); else when the bucket will be full again.
    pub fn wait(&mut self, now: Instant, rate: Option<u64>, mss: usize) -> Option<Instant> {
        let rate = rate.filter(|&r| r > 0 && self.segments >= UNPACED_SEGMENTS)?;
        let burst = Self::burst(rate, mss) as i64;
        self.refill(now, rate, burst);
        if !self.refilling {
            return None;
        }
        let missing = u64::try_from(burst - self.tokens).unwrap_or(0);
        let wait = mul_div_ceil(missing, 1_000_000, rate).max(1);
        Some(now + Duration::from_micros(wait))
    }

    /// A segment of `len` payload bytes went at `now`.
    pub fn on_send(&mut self, now: Instant, rate: Option<u64>, len: usize, mss: usize) {
        self.segments += 1;
        let Some(rate) = rate.filter(|&r| r > 0) else {
            // Not pacing: the next paced burst starts full.
            self.updated = None;
            self.refilling = false;
            return;
        };
        let burst = Self::burst(rate, mss) as i64;
        self.refill(now, rate, burst);
        self.tokens = self.tokens.saturating_sub(i64::try_from(len).unwrap_or(i64::MAX));
        if self.tokens <= 0 {
            self.refilling = true;
        }
    }
}

/// The pacing rate Linux derives from the window, in bytes per second
/// (`tcp_update_pacing_rate`): `ratio` percent of max(cwnd, in flight)
/// per SRTT.
pub(crate) fn rate_from_window(window: usize, srtt: Duration, ratio_percent: u32) -> u64 {
    let window = u64::try_from(window).unwrap_or(u64::MAX);
    mul_div(window, u64::from(ratio_percent) * 10_000, micros(srtt).max(1))
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// `a * b / c` (`c` > 0) without overflow, saturating at `u64::MAX`. The
/// pacer runs this for every segment sent: the 128-bit division (a library
/// call on x86-64, 2.8 % of a bulk transfer's CPU) only for products that
/// do not fit 64 bits.
fn mul_div(a: u64, b: u64, c: u64) -> u64 {
    match a.checked_mul(b) {
        Some(p) => p / c,
        None => u64::try_from(u128::from(a) * u128::from(b) / u128::from(c)).unwrap_or(u64::MAX),
    }
}

/// [`mul_div`], rounded up.
fn mul_div_ceil(a: u64, b: u64, c: u64) -> u64 {
    match a.checked_mul(b) {
        Some(p) => p.div_ceil(c),
        None => u64::try_from((u128::from(a) * u128::from(b)).div_ceil(u128::from(c))).unwrap_or(u64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: usize = 1448;

    fn pacer_after_initial_segments(now: Instant, rate: u64) -> Pacer {
        let mut p = Pacer::default();
        for _ in 0..UNPACED_SEGMENTS {
            assert_eq!(p.wait(now, Some(rate), MSS), None, "the first ten are not paced");
            p.on_send(now, Some(rate), MSS, MSS);
        }
        p
    }

    #[test]
    fn window_rate_is_linux_arithmetic() {
        // 100 segments of 1448 bytes per 100 ms, at 200 %: 2.896 MB/s.
        let r = rate_from_window(100 * MSS, Duration::from_millis(100), 200);
        assert_eq!(r, 2_896_000);
        // No division by zero on a sub-microsecond path.
        assert!(rate_from_window(10 * MSS, Duration::ZERO, 120) > 0);
    }

    #[test]
    fn products_past_64_bits_are_exact() {
        assert_eq!(mul_div(u64::MAX, 1_000_000, 1_000_000), u64::MAX);
        assert_eq!(mul_div(1 << 40, 1 << 40, 1 << 30), 1 << 50);
        assert_eq!(mul_div(u64::MAX, u64::MAX, 1), u64::MAX, "saturates");
        assert_eq!(mul_div_ceil((1 << 40) + 1, 1 << 40, 1 << 41), (1 << 39) + 1);
        assert_eq!(mul_div_ceil(7, 1_000_000, 3), 2_333_334);
    }

    #[test]
    fn bursts_of_a_millisecond_average_the_rate() {
        // 12.5 MB/s (100 Mbit/s): a burst is 12 207 bytes, 9 segments.
        let rate = 12_500_000;
        let start = Instant::from_secs(1);
        let mut p = pacer_after_initial_segments(start, rate);
        let mut now = start;
        let mut sent = 0usize;
        let mut wakeups = 0;
        while now < start + Duration::from_secs(1) {
            match p.wait(now, Some(rate), MSS) {
                None => {
                    p.on_send(now, Some(rate), MSS, MSS);
                    sent += MSS;
                }
                Some(t) => {
                    assert!(t > now, "a wait is always in the future");
                    now = t;
                    wakeups += 1;
                }
            }
        }
        // One second at the rate, give or take a burst.
        let burst = Pacer::burst(rate, MSS);
        assert!(sent.abs_diff(12_500_000) <= 2 * burst, "sent {sent}");
        // About a wakeup per millisecond, not one per segment.
        assert!((900..1100).contains(&wakeups), "{wakeups} wakeups");
    }

    #[test]
    fn an_idle_sender_gets_one_burst_not_the_idle_time() {
        let rate = 12_500_000;
        let start = Instant::from_secs(1);
        let mut p = pacer_after_initial_segments(start, rate);
        // Spend the burst.
        while p.wait(start, Some(rate), MSS).is_none() {
            p.on_send(start, Some(rate), MSS, MSS);
        }
        // A second later: one burst goes, then it waits again.
        let later = start + Duration::from_secs(1);
        let mut n = 0;
        while p.wait(later, Some(rate), MSS).is_none() {
            p.on_send(later, Some(rate), MSS, MSS);
            n += 1;
        }
        assert_eq!(n, Pacer::burst(rate, MSS).div_ceil(MSS));
    }

    #[test]
    fn no_rate_means_no_pacing() {
        let now = Instant::from_secs(1);
        let mut p = pacer_after_initial_segments(now, 1);
        for _ in 0..1000 {
            assert_eq!(p.wait(now, None, MSS), None);
            p.on_send(now, None, MSS, MSS);
        }
    }
}
