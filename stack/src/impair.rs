//! A link emulator: what a real path does to the frames it carries, as a
//! sans-IO state machine.
//!
//! One [`Channel`] is one direction of a link. Frames go in with the time
//! they enter ([`Channel::offer`] decides their fate; [`Emulator::offer`]
//! also keeps them), and come out with the time they arrive
//! ([`Emulator::poll_timeout`], [`Emulator::poll_frame`]). Nothing here
//! reads a clock: the in-memory simulator drives it with virtual time, the
//! harness's device wrapper and bridge with the monotonic clock. The same
//! [`Impairments`] and the same seed make the same choices in both.
//!
//! The impairments ([`Impairments`] says in which order they apply):
//! MTU, random loss, Gilbert–Elliott burst loss, a rate limit with a
//! bounded tail-drop queue, duplication, corruption, delay plus jitter, and
//! reordering. Every choice is drawn from the channel's own seeded
//! [`Rng`], and a choice whose probability is zero draws nothing, so adding
//! a feature to the model does not shift the random stream of links that
//! do not use it.
//!
//! # Textual syntax
//!
//! [`Spec`] parses (and prints) a comma-separated list of `key=value`:
//!
//! ```text
//! delay=10ms,jitter=2ms,loss=1%,burst=ge:p=1%:r=30%,reorder=2%,dup=0.5%,
//! corrupt=0.1%,rate=100mbit,queue=100,mtu=1400,seed=7
//! ```
//!
//! | key | value | meaning |
//! |---|---|---|
//! | `delay` | duration (`us`, `ms`, `s`) | fixed one-way delay |
//! | `jitter` | duration | extra delay, uniform in `[0, jitter]` per frame |
//! | `loss` | probability | independent random loss |
//! | `burst` | `ge:p=P:r=R[:bad=B][:good=G]` | Gilbert–Elliott loss: P(good→bad) = P, P(bad→good) = R per frame, loss B in the bad state (default 100 %), G in the good one (default 0) |
//! | `reorder` | probability | hold a frame back so later ones overtake it |
//! | `reorder-delay` | duration | how long (default: delay + jitter + 1 ms) |
//! | `dup` | probability | deliver a frame twice |
//! | `corrupt` | probability | flip one byte of a frame |
//! | `rate` | `N[k,m,g]bit` | serialization rate |
//! | `queue` | frames, or bytes with `b` | the rate limiter's queue (default 64 KiB); full: tail drop |
//! | `mtu` | bytes | largest IP packet carried; larger frames are dropped |
//! | `limit` | frames | frames in flight at once (default 10 000); more are dropped |
//! | `seed` | integer | the seed of the random choices |
//!
//! A probability is a percentage (`1%`, `0.5%`) or a fraction (`0.01`).
//! An empty string or `none` is a clean link.

use crate::time::{Duration, Instant};
use core::cmp::Ordering;
use core::fmt;
use core::str::FromStr;
use std::collections::{BinaryHeap, VecDeque};

/// The ethernet header, which the MTU does not count.
pub const ETH_HEADER: usize = 14;

/// Frames an [`Emulator`] holds at once by default.
pub const DEFAULT_LIMIT: usize = 10_000;

/// Recycled frame buffers an [`Emulator`] keeps at most.
const POOL_MAX: usize = 1024;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ---------------------------------------------------------------------------
// The model

/// Gilbert–Elliott burst loss: a two-state Markov chain stepped once per
/// frame, with its own loss probability in each state. The mean burst
/// length is `1 / r` frames; the long-run share of frames in the bad
/// state is `p / (p + r)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GilbertElliott {
    /// P(good → bad) per frame.
    pub p: f64,
    /// P(bad → good) per frame.
    pub r: f64,
    /// Loss probability in the bad state.
    pub bad_loss: f64,
    /// Loss probability in the good state.
    pub good_loss: f64,
}

impl GilbertElliott {
    /// The simple Gilbert model: everything is lost in the bad state,
    /// nothing in the good one.
    pub fn new(p: f64, r: f64) -> Self {
        GilbertElliott {
            p: check_probability(p, "burst p"),
            r: check_probability(r, "burst r"),
            bad_loss: 1.0,
            good_loss: 0.0,
        }
    }

    /// The long-run loss rate.
    pub fn mean_loss(&self) -> f64 {
        if self.p + self.r == 0.0 {
            return self.good_loss;
        }
        let bad = self.p / (self.p + self.r);
        bad * self.bad_loss + (1.0 - bad) * self.good_loss
    }
}

/// What one direction of a link does to the frames it carries. Build it
/// from [`Impairments::clean`] or parse it from text ([`Spec`]):
///
/// ```
/// use tapir_stack::impair::Impairments;
/// use tapir_stack::Duration;
/// let wan = Impairments::clean()
///     .loss(0.01)
///     .delay(Duration::from_millis(10))
///     .jitter(Duration::from_millis(2))
///     .rate(10_000_000);
/// ```
///
/// Each frame, in order: dropped if larger than `mtu` (plus the 14-byte
/// Ethernet header); lost with probability `loss`; lost by the
/// Gilbert–Elliott chain `burst`; tail-dropped if the rate limiter's queue
/// would exceed `queue_limit` bytes, otherwise serialized at `rate_bps`;
/// duplicated with probability `duplicate`. Then each copy independently:
/// one byte flipped with probability `corrupt` (an error the Ethernet FCS
/// missed: it can hit any byte, headers included); delayed by `delay` plus
/// a uniform `[0, jitter]`; and with probability `reorder`, held back by a
/// further `reorder_delay` so that later frames overtake it. Jitter alone
/// also reorders, as a real path with varying delay does.
#[derive(Debug, Clone, PartialEq)]
pub struct Impairments {
    /// Probability that a frame is lost.
    pub loss: f64,
    /// Burst loss, on top of `loss`.
    pub burst: Option<GilbertElliott>,
    /// Fixed propagation delay.
    pub delay: Duration,
    /// Extra delay, uniform in `[0, jitter]`, per frame.
    pub jitter: Duration,
    /// Probability that a frame is held back by `reorder_delay`.
    pub reorder: f64,
    /// How long a reordered frame is held back. Zero means `delay + jitter
    /// + 1 ms`, enough for the frames after it to overtake it.
    pub reorder_delay: Duration,
    /// Probability that a frame arrives twice.
    pub duplicate: f64,
    /// Probability that one byte of a frame is flipped.
    pub corrupt: f64,
    /// Serialization rate in bits per second; `None` for infinitely fast.
    pub rate_bps: Option<u64>,
    /// Bytes the rate limiter queues (including the frame being
    /// serialized) before it drops new frames. Unused without `rate_bps`.
    pub queue_limit: usize,
    /// The largest IP packet the link carries; larger frames are dropped.
    pub mtu: usize,
    /// Frames an [`Emulator`] holds at once (in the rate limiter or in
    /// flight); more are dropped. The simulator, which holds frames
    /// itself, ignores it.
    pub limit: usize,
}

impl Default for Impairments {
    fn default() -> Self {
        Impairments::clean()
    }
}

fn check_probability(p: f64, what: &str) -> f64 {
    assert!(
        (0.0..=1.0).contains(&p),
        "{what} probability {p} is not in [0, 1]"
    );
    p
}

impl Impairments {
    /// A perfect Ethernet link: no loss, no delay, infinitely fast, MTU
    /// 1500.
    pub fn clean() -> Self {
        Impairments {
            loss: 0.0,
            burst: None,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
            duplicate: 0.0,
            corrupt: 0.0,
            rate_bps: None,
            queue_limit: 64 * 1024,
            mtu: 1500,
            limit: DEFAULT_LIMIT,
        }
    }

    pub fn loss(self, p: f64) -> Self {
        Impairments {
            loss: check_probability(p, "loss"),
            ..self
        }
    }

    pub fn burst(self, ge: GilbertElliott) -> Self {
        Impairments {
            burst: Some(ge),
            ..self
        }
    }

    pub fn delay(self, delay: Duration) -> Self {
        Impairments { delay, ..self }
    }

    pub fn jitter(self, jitter: Duration) -> Self {
        Impairments { jitter, ..self }
    }

    pub fn reorder(self, p: f64) -> Self {
        Impairments {
            reorder: check_probability(p, "reorder"),
            ..self
        }
    }

    pub fn reorder_delay(self, reorder_delay: Duration) -> Self {
        Impairments {
            reorder_delay,
            ..self
        }
    }

    pub fn duplicate(self, p: f64) -> Self {
        Impairments {
            duplicate: check_probability(p, "duplicate"),
            ..self
        }
    }

    pub fn corrupt(self, p: f64) -> Self {
        Impairments {
            corrupt: check_probability(p, "corrupt"),
            ..self
        }
    }

    /// Serialize at `bps` bits per second through a tail-drop queue.
    pub fn rate(self, bps: u64) -> Self {
        assert!(bps > 0, "a rate of 0 bit/s carries nothing; use loss(1.0)");
        Impairments {
            rate_bps: Some(bps),
            ..self
        }
    }

    pub fn queue_limit(self, bytes: usize) -> Self {
        Impairments {
            queue_limit: bytes,
            ..self
        }
    }

    pub fn mtu(self, mtu: usize) -> Self {
        Impairments { mtu, ..self }
    }

    pub fn limit(self, frames: usize) -> Self {
        Impairments {
            limit: frames,
            ..self
        }
    }

    /// Does the link pass every frame within the MTU at once, untouched?
    /// Then a forwarder can skip the model entirely.
    pub fn is_transparent(&self) -> bool {
        self.loss == 0.0
            && self.burst.is_none()
            && self.delay.is_zero()
            && self.jitter.is_zero()
            && self.reorder == 0.0
            && self.duplicate == 0.0
            && self.corrupt == 0.0
            && self.rate_bps.is_none()
    }

    fn reorder_hold(&self) -> Duration {
        if self.reorder_delay.is_zero() {
            self.delay + self.jitter + ms(1)
        } else {
            self.reorder_delay
        }
    }
}

/// What happened to the frames of one direction of a link (or, summed, of
/// several).
///
/// Every frame offered is accounted for:
/// `sent + duplicated == delivered + lost + dropped_mtu + dropped_queue +
/// dropped_filter + dropped_limit + in_flight`
/// ([`is_balanced`](Self::is_balanced)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames offered to the link (on a switch, one per egress port).
    pub sent: u64,
    /// Frames handed to the receiver.
    pub delivered: u64,
    /// Frames lost at random or in a burst.
    pub lost: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Copies with a flipped byte.
    pub corrupted: u64,
    /// Copies held back to be overtaken.
    pub reordered: u64,
    /// Frames larger than the MTU.
    pub dropped_mtu: u64,
    /// Frames the rate limiter's full queue refused.
    pub dropped_queue: u64,
    /// Frames a filter dropped (the simulator's `set_filter`).
    pub dropped_filter: u64,
    /// Copies dropped because the emulator already held `limit` frames.
    pub dropped_limit: u64,
    /// Copies on the wire now.
    pub in_flight: u64,
}

impl LinkStats {
    /// Does every frame offered show up in exactly one outcome?
    pub fn is_balanced(&self) -> bool {
        self.sent + self.duplicated
            == self.delivered
                + self.lost
                + self.dropped_mtu
                + self.dropped_queue
                + self.dropped_filter
                + self.dropped_limit
                + self.in_flight
    }

    /// Add `other`'s counters to these.
    pub fn add(&mut self, other: &LinkStats) {
        let LinkStats {
            sent,
            delivered,
            lost,
            duplicated,
            corrupted,
            reordered,
            dropped_mtu,
            dropped_queue,
            dropped_filter,
            dropped_limit,
            in_flight,
        } = other;
        self.sent += sent;
        self.delivered += delivered;
        self.lost += lost;
        self.duplicated += duplicated;
        self.corrupted += corrupted;
        self.reordered += reordered;
        self.dropped_mtu += dropped_mtu;
        self.dropped_queue += dropped_queue;
        self.dropped_filter += dropped_filter;
        self.dropped_limit += dropped_limit;
        self.in_flight += in_flight;
    }
}

impl fmt::Display for LinkStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sent {} delivered {} lost {} duplicated {} corrupted {} reordered {} \
             dropped: mtu {} queue {} limit {}",
            self.sent,
            self.delivered,
            self.lost,
            self.duplicated,
            self.corrupted,
            self.reordered,
            self.dropped_mtu,
            self.dropped_queue,
            self.dropped_limit
        )
    }
}

// ---------------------------------------------------------------------------
// Randomness

/// SplitMix64's output function: a good 64-bit mixer.
pub(crate) fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// xoshiro256** (Blackman and Vigna 2018), seeded through SplitMix64 as its
/// authors recommend. Small, fast and reproducible; not for secrets.
#[derive(Debug, Clone)]
pub struct Rng([u64; 4]);

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut s = [0u64; 4];
        for (i, w) in s.iter_mut().enumerate() {
            *w = mix(seed, i as u64 + 1);
        }
        if s == [0; 4] {
            s[0] = 1; // the one state xoshiro cannot leave
        }
        Rng(s)
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, n)` (Lemire's multiply-shift; the bias for the
    /// small `n` we use is far below anything a test could see). `n > 0`.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `p`. Draws nothing when `p` is 0, so a clean
    /// link consumes no randomness.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    /// Uniform in `[0, max]`, at microsecond granularity.
    pub fn duration_upto(&mut self, max: Duration) -> Duration {
        let max = u64::try_from(max.as_micros()).unwrap_or(u64::MAX - 1);
        if max == 0 {
            return Duration::ZERO;
        }
        Duration::from_micros(self.below(max + 1))
    }
}

// ---------------------------------------------------------------------------
// One direction: the decisions

/// One copy of a frame the link will deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copy {
    /// When it arrives.
    pub at: Instant,
    /// A byte to flip: `frame[index] ^= mask` (`mask` is never 0).
    pub corrupt: Option<(usize, u8)>,
}

impl Copy {
    /// Apply the corruption, if any, to the copy's bytes.
    pub fn apply(&self, frame: &mut [u8]) {
        if let Some((at, mask)) = self.corrupt {
            if let Some(b) = frame.get_mut(at) {
                *b ^= mask;
            }
        }
    }
}

/// What the link does with one frame: zero, one or two copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fate {
    copies: [Option<Copy>; 2],
}

impl Fate {
    /// The copies to deliver, in the order they were decided.
    pub fn copies(&self) -> impl Iterator<Item = Copy> + '_ {
        self.copies.iter().flatten().copied()
    }

    /// Is the frame dropped?
    pub fn is_dropped(&self) -> bool {
        self.copies[0].is_none()
    }
}

/// One direction of a link: decides each frame's fate from the
/// impairments, its own seeded random stream, and the rate limiter's
/// state. It holds no frames; see [`Emulator`] for one that does.
#[derive(Debug, Clone)]
pub struct Channel {
    imp: Impairments,
    rng: Rng,
    stats: LinkStats,
    /// When the rate limiter finishes the frames it holds, in nanoseconds.
    busy_until_ns: u128,
    /// Frames in the rate limiter: (nanosecond their serialization ends, length).
    queue: VecDeque<(u128, usize)>,
    queued_bytes: usize,
    /// The Gilbert–Elliott chain is in its bad state.
    bad: bool,
}

impl Channel {
    pub fn new(imp: Impairments, seed: u64) -> Self {
        Channel {
            imp,
            rng: Rng::new(seed),
            stats: LinkStats::default(),
            busy_until_ns: 0,
            queue: VecDeque::new(),
            queued_bytes: 0,
            bad: false,
        }
    }

    pub fn impairments(&self) -> &Impairments {
        &self.imp
    }

    /// Change the impairments from now on; the random stream, the rate
    /// limiter and the burst state carry on.
    pub fn set_impairments(&mut self, imp: Impairments) {
        self.imp = imp;
    }

    pub fn stats(&self) -> &LinkStats {
        &self.stats
    }

    /// For the owner's own outcomes (deliveries, filters).
    pub fn stats_mut(&mut self) -> &mut LinkStats {
        &mut self.stats
    }

    /// A copy from [`offer`](Self::offer) reached the receiver.
    pub fn delivered(&mut self) {
        self.stats.in_flight -= 1;
        self.stats.delivered += 1;
    }

    /// Decide the fate of a frame of `len` bytes entering at `now`. Every
    /// copy returned is counted in flight until [`delivered`](Self::delivered).
    pub fn offer(&mut self, now: Instant, len: usize) -> Fate {
        let imp = &self.imp;
        let mut fate = Fate::default();
        self.stats.sent += 1;
        if len > imp.mtu + ETH_HEADER {
            self.stats.dropped_mtu += 1;
            return fate;
        }
        if self.rng.chance(imp.loss) {
            self.stats.lost += 1;
            return fate;
        }
        if let Some(ge) = imp.burst {
            // Step the chain, then draw the loss of the state it is in.
            self.bad = if self.bad {
                !self.rng.chance(ge.r)
            } else {
                self.rng.chance(ge.p)
            };
            let p = if self.bad { ge.bad_loss } else { ge.good_loss };
            if self.rng.chance(p) {
                self.stats.lost += 1;
                return fate;
            }
        }
        let departs = match imp.rate_bps {
            None => now,
            Some(bps) => {
                let now_ns = u128::from(now.total_micros()) * 1000;
                while let Some(&(end, qlen)) = self.queue.front() {
                    if end > now_ns {
                        break;
                    }
                    self.queue.pop_front();
                    self.queued_bytes -= qlen;
                }
                if self.queued_bytes + len > imp.queue_limit {
                    self.stats.dropped_queue += 1;
                    return fate;
                }
                let bits = len as u128 * 8;
                let tx_ns = (bits * 1_000_000_000).div_ceil(u128::from(bps));
                let end = self.busy_until_ns.max(now_ns) + tx_ns;
                self.busy_until_ns = end;
                self.queue.push_back((end, len));
                self.queued_bytes += len;
                let end_us = u64::try_from(end.div_ceil(1000)).unwrap_or(u64::MAX);
                Instant::from_micros(end_us)
            }
        };
        let copies = if self.rng.chance(imp.duplicate) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for slot in fate.copies.iter_mut().take(copies) {
            let mut corrupt = None;
            if len != 0 && self.rng.chance(imp.corrupt) {
                let at = self.rng.below(len as u64) as usize;
                corrupt = Some((at, 1 + self.rng.below(255) as u8));
                self.stats.corrupted += 1;
            }
            let mut delay = imp.delay + self.rng.duration_upto(imp.jitter);
            if self.rng.chance(imp.reorder) {
                delay += imp.reorder_hold();
                self.stats.reordered += 1;
            }
            self.stats.in_flight += 1;
            *slot = Some(Copy {
                at: departs + delay,
                corrupt,
            });
        }
        fate
    }
}

// ---------------------------------------------------------------------------
// One direction: the frames too

/// A frame the emulator holds until it arrives.
struct Held {
    at: Instant,
    /// Tie-break for equal times: the order the copies were made.
    seq: u64,
    frame: Vec<u8>,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Held {}

impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Held {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// One direction of an emulated link that keeps the frames in flight:
/// frames and time in ([`offer`](Self::offer)), frames and deadlines out
/// ([`poll_frame`](Self::poll_frame), [`poll_timeout`](Self::poll_timeout)).
/// Holds at most `limit` frames; buffers are recycled, so a steady flow
/// allocates nothing.
pub struct Emulator {
    channel: Channel,
    held: BinaryHeap<Held>,
    seq: u64,
    pool: Vec<Vec<u8>>,
}

impl fmt::Debug for Emulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Emulator")
            .field("imp", &self.channel.imp)
            .field("held", &self.held.len())
            .field("stats", &self.channel.stats)
            .finish()
    }
}

impl Emulator {
    pub fn new(imp: Impairments, seed: u64) -> Self {
        Emulator {
            channel: Channel::new(imp, seed),
            held: BinaryHeap::new(),
            seq: 0,
            pool: Vec::new(),
        }
    }

    pub fn impairments(&self) -> &Impairments {
        self.channel.impairments()
    }

    pub fn stats(&self) -> &LinkStats {
        self.channel.stats()
    }

    /// Frames held now.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// A frame enters the link at `now`.
    pub fn offer(&mut self, now: Instant, frame: &[u8]) {
        let fate = self.channel.offer(now, frame.len());
        for copy in fate.copies() {
            if self.held.len() >= self.channel.imp.limit {
                let s = self.channel.stats_mut();
                s.in_flight -= 1;
                s.dropped_limit += 1;
                continue;
            }
            let mut buf = self.pool.pop().unwrap_or_default();
            buf.clear();
            buf.extend_from_slice(frame);
            copy.apply(&mut buf);
            self.seq += 1;
            self.held.push(Held {
                at: copy.at,
                seq: self.seq,
                frame: buf,
            });
        }
    }

    /// When the next frame arrives.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.held.peek().map(|h| h.at)
    }

    /// The next frame that has arrived by `now`, if any. Give the buffer
    /// back with [`recycle`](Self::recycle) to avoid allocating.
    pub fn poll_frame(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.held.peek()?.at > now {
            return None;
        }
        let h = self.held.pop()?;
        self.channel.delivered();
        Some(h.frame)
    }

    /// Return a buffer from [`poll_frame`](Self::poll_frame) for reuse.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        if self.pool.len() < POOL_MAX {
            self.pool.push(buf);
        }
    }
}

// ---------------------------------------------------------------------------
// Text

/// Impairments and a seed, as written on a command line. See the module
/// docs for the syntax. Displays in the same syntax, so a spec printed in
/// a log can be pasted back.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Spec {
    pub imp: Impairments,
    pub seed: Option<u64>,
}

/// Why a spec did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecError {
    /// An item with no `=`, or nothing before it.
    NotKeyValue { item: String },
    /// A key the syntax does not have.
    UnknownKey { key: String },
    /// The same key twice.
    DuplicateKey { key: String },
    /// Not a number where one was expected.
    BadNumber { key: String, value: String },
    /// A number with a unit this key does not take.
    BadUnit {
        key: String,
        value: String,
        expected: &'static str,
    },
    /// A number outside what the key allows.
    OutOfRange {
        key: String,
        value: String,
        allowed: &'static str,
    },
    /// `burst=` names a model other than `ge`.
    UnknownBurstModel { model: String },
    /// `burst=ge:` without `p` or `r`.
    MissingBurstParameter { parameter: &'static str },
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecError::NotKeyValue { item } => write!(f, "`{item}` is not key=value"),
            SpecError::UnknownKey { key } => write!(
                f,
                "unknown key `{key}` (known: delay, jitter, loss, burst, reorder, reorder-delay, \
                 dup, corrupt, rate, queue, mtu, limit, seed)"
            ),
            SpecError::DuplicateKey { key } => write!(f, "`{key}` is given twice"),
            SpecError::BadNumber { key, value } => write!(f, "{key}: `{value}` is not a number"),
            SpecError::BadUnit { key, value, expected } => {
                write!(f, "{key}: `{value}` has no valid unit (expected {expected})")
            }
            SpecError::OutOfRange { key, value, allowed } => {
                write!(f, "{key}: `{value}` is out of range ({allowed})")
            }
            SpecError::UnknownBurstModel { model } => {
                write!(
                    f,
                    "burst: unknown model `{model}` (expected ge:p=P:r=R[:bad=B][:good=G])"
                )
            }
            SpecError::MissingBurstParameter { parameter } => {
                write!(f, "burst: ge needs `{parameter}=` (ge:p=P:r=R[:bad=B][:good=G])")
            }
        }
    }
}

impl std::error::Error for SpecError {}

fn split_number(value: &str) -> (&str, &str) {
    let end = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    value.split_at(end)
}

fn number(key: &str, digits: &str, value: &str) -> Result<f64, SpecError> {
    match digits.parse::<f64>() {
        Ok(n) if n.is_finite() => Ok(n),
        _ => Err(SpecError::BadNumber {
            key: key.into(),
            value: value.into(),
        }),
    }
}

fn integer(key: &str, value: &str) -> Result<u64, SpecError> {
    value.parse().map_err(|_| SpecError::BadNumber {
        key: key.into(),
        value: value.into(),
    })
}

fn probability(key: &str, value: &str) -> Result<f64, SpecError> {
    let (digits, unit) = split_number(value);
    let n = number(key, digits, value)?;
    let p = match unit {
        "%" => n / 100.0,
        "" => n,
        _ => {
            return Err(SpecError::BadUnit {
                key: key.into(),
                value: value.into(),
                expected: "a percentage like 1% or a fraction like 0.01",
            })
        }
    };
    if !(0.0..=1.0).contains(&p) {
        return Err(SpecError::OutOfRange {
            key: key.into(),
            value: value.into(),
            allowed: "0% to 100%",
        });
    }
    Ok(p)
}

fn duration(key: &str, value: &str) -> Result<Duration, SpecError> {
    let (digits, unit) = split_number(value);
    let n = number(key, digits, value)?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "" if n == 0.0 => 0.0,
        _ => {
            return Err(SpecError::BadUnit {
                key: key.into(),
                value: value.into(),
                expected: "us, ms or s",
            })
        }
    };
    let micros = n * scale;
    // An hour is longer than any path delay worth emulating.
    if micros > 3.6e9 || (micros > 0.0 && micros < 1.0) {
        return Err(SpecError::OutOfRange {
            key: key.into(),
            value: value.into(),
            allowed: "1us to 1 hour",
        });
    }
    Ok(Duration::from_micros(micros.round() as u64))
}

fn rate(key: &str, value: &str) -> Result<u64, SpecError> {
    let (digits, unit) = split_number(value);
    let n = number(key, digits, value)?;
    let scale = match unit.to_ascii_lowercase().as_str() {
        "bit" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        _ => {
            return Err(SpecError::BadUnit {
                key: key.into(),
                value: value.into(),
                expected: "bit, kbit, mbit or gbit",
            })
        }
    };
    let bps = (n * scale).round();
    if !(1.0..=1e12).contains(&bps) {
        return Err(SpecError::OutOfRange {
            key: key.into(),
            value: value.into(),
            allowed: "1bit to 1000gbit",
        });
    }
    Ok(bps as u64)
}

fn burst(value: &str) -> Result<GilbertElliott, SpecError> {
    let mut parts = value.split(':');
    let model = parts.next().unwrap_or_default();
    if model != "ge" {
        return Err(SpecError::UnknownBurstModel { model: model.into() });
    }
    let (mut p, mut r, mut bad, mut good) = (None, None, None, None);
    for part in parts {
        let Some((k, v)) = part.split_once('=') else {
            return Err(SpecError::NotKeyValue { item: part.into() });
        };
        let (slot, name) = match k {
            "p" => (&mut p, "burst p"),
            "r" => (&mut r, "burst r"),
            "bad" => (&mut bad, "burst bad"),
            "good" => (&mut good, "burst good"),
            _ => {
                return Err(SpecError::UnknownKey {
                    key: format!("burst {k}"),
                })
            }
        };
        if slot.is_some() {
            return Err(SpecError::DuplicateKey { key: name.into() });
        }
        *slot = Some(probability(name, v)?);
    }
    let p = p.ok_or(SpecError::MissingBurstParameter { parameter: "p" })?;
    let r = r.ok_or(SpecError::MissingBurstParameter { parameter: "r" })?;
    Ok(GilbertElliott {
        p,
        r,
        bad_loss: bad.unwrap_or(1.0),
        good_loss: good.unwrap_or(0.0),
    })
}

const KEYS: [&str; 13] = [
    "delay",
    "jitter",
    "loss",
    "burst",
    "reorder",
    "reorder-delay",
    "dup",
    "corrupt",
    "rate",
    "queue",
    "mtu",
    "limit",
    "seed",
];

impl FromStr for Spec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Spec, SpecError> {
        let mut spec = Spec::default();
        let s = s.trim();
        if s.is_empty() || s == "none" {
            return Ok(spec);
        }
        let mut seen = [false; KEYS.len()];
        // Frames: resolved once the MTU is known.
        let mut queue_frames = None;
        let imp = &mut spec.imp;
        for item in s.split(',').map(str::trim) {
            let Some((key, value)) = item.split_once('=').filter(|(k, _)| !k.is_empty()) else {
                return Err(SpecError::NotKeyValue { item: item.into() });
            };
            let key = key.trim();
            let value = value.trim();
            let key = if key == "duplicate" { "dup" } else { key };
            let Some(index) = KEYS.iter().position(|k| *k == key) else {
                return Err(SpecError::UnknownKey { key: key.into() });
            };
            if std::mem::replace(&mut seen[index], true) {
                return Err(SpecError::DuplicateKey { key: key.into() });
            }
            match key {
                "delay" => imp.delay = duration(key, value)?,
                "jitter" => imp.jitter = duration(key, value)?,
                "loss" => imp.loss = probability(key, value)?,
                "burst" => imp.burst = Some(burst(value)?),
                "reorder" => imp.reorder = probability(key, value)?,
                "reorder-delay" => imp.reorder_delay = duration(key, value)?,
                "dup" => imp.duplicate = probability(key, value)?,
                "corrupt" => imp.corrupt = probability(key, value)?,
                "rate" => imp.rate_bps = Some(rate(key, value)?),
                "queue" => {
                    let (n, bytes) = match value.strip_suffix('b') {
                        Some(n) => (integer(key, n)?, true),
                        None => (integer(key, value)?, false),
                    };
                    if n == 0 || n > 1 << 30 {
                        return Err(SpecError::OutOfRange {
                            key: key.into(),
                            value: value.into(),
                            allowed: "1 to 2^30",
                        });
                    }
                    if bytes {
                        imp.queue_limit = n as usize;
                    } else {
                        queue_frames = Some(n as usize);
                    }
                }
                "mtu" => {
                    let n = integer(key, value)?;
                    // RFC 791: every link carries 68-byte datagrams.
                    if !(68..=65535).contains(&n) {
                        return Err(SpecError::OutOfRange {
                            key: key.into(),
                            value: value.into(),
                            allowed: "68 to 65535",
                        });
                    }
                    imp.mtu = n as usize;
                }
                "limit" => {
                    let n = integer(key, value)?;
                    if n == 0 || n > 1 << 24 {
                        return Err(SpecError::OutOfRange {
                            key: key.into(),
                            value: value.into(),
                            allowed: "1 to 2^24 frames",
                        });
                    }
                    imp.limit = n as usize;
                }
                "seed" => spec.seed = Some(integer(key, value)?),
                _ => unreachable!("every key in KEYS is matched"),
            }
        }
        if let Some(n) = queue_frames {
            imp.queue_limit = n * (imp.mtu + ETH_HEADER);
        }
        Ok(spec)
    }
}

fn fmt_duration(d: Duration) -> String {
    let us = d.as_micros();
    if us.is_multiple_of(1_000_000) {
        format!("{}s", us / 1_000_000)
    } else if us.is_multiple_of(1000) {
        format!("{}ms", us / 1000)
    } else {
        format!("{us}us")
    }
}

fn fmt_probability(p: f64) -> String {
    format!("{}%", (p * 100.0 * 1e6).round() / 1e6)
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let imp = &self.imp;
        let clean = Impairments::clean();
        let mut items: Vec<String> = Vec::new();
        if !imp.delay.is_zero() {
            items.push(format!("delay={}", fmt_duration(imp.delay)));
        }
        if !imp.jitter.is_zero() {
            items.push(format!("jitter={}", fmt_duration(imp.jitter)));
        }
        if imp.loss > 0.0 {
            items.push(format!("loss={}", fmt_probability(imp.loss)));
        }
        if let Some(ge) = imp.burst {
            items.push(format!(
                "burst=ge:p={}:r={}:bad={}:good={}",
                fmt_probability(ge.p),
                fmt_probability(ge.r),
                fmt_probability(ge.bad_loss),
                fmt_probability(ge.good_loss)
            ));
        }
        if imp.reorder > 0.0 {
            items.push(format!("reorder={}", fmt_probability(imp.reorder)));
        }
        if !imp.reorder_delay.is_zero() {
            items.push(format!("reorder-delay={}", fmt_duration(imp.reorder_delay)));
        }
        if imp.duplicate > 0.0 {
            items.push(format!("dup={}", fmt_probability(imp.duplicate)));
        }
        if imp.corrupt > 0.0 {
            items.push(format!("corrupt={}", fmt_probability(imp.corrupt)));
        }
        if let Some(bps) = imp.rate_bps {
            let r = if bps.is_multiple_of(1_000_000_000) {
                format!("{}gbit", bps / 1_000_000_000)
            } else if bps.is_multiple_of(1_000_000) {
                format!("{}mbit", bps / 1_000_000)
            } else if bps.is_multiple_of(1000) {
                format!("{}kbit", bps / 1000)
            } else {
                format!("{bps}bit")
            };
            items.push(format!("rate={r}"));
        }
        if imp.queue_limit != clean.queue_limit {
            items.push(format!("queue={}b", imp.queue_limit));
        }
        if imp.mtu != clean.mtu {
            items.push(format!("mtu={}", imp.mtu));
        }
        if imp.limit != clean.limit {
            items.push(format!("limit={}", imp.limit));
        }
        if let Some(seed) = self.seed {
            items.push(format!("seed={seed}"));
        }
        if items.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&items.join(","))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    fn frame(tag: u32, len: usize) -> Vec<u8> {
        let mut f = vec![0u8; len.max(4)];
        f[..4].copy_from_slice(&tag.to_be_bytes());
        f
    }

    fn tag(f: &[u8]) -> u32 {
        u32::from_be_bytes(f[..4].try_into().unwrap())
    }

    /// Offer `n` frames of `len` bytes, one every `gap`, and drain the
    /// emulator as time passes. Returns (tag, sent at, arrived at) per
    /// delivered copy, in delivery order.
    fn run(em: &mut Emulator, n: u32, gap: Duration, len: usize) -> Vec<(u32, Instant, Instant)> {
        let mut out = Vec::new();
        let mut sent = Vec::new();
        let drain = |em: &mut Emulator, now: Instant, sent: &[Instant], out: &mut Vec<_>| {
            while let Some(f) = em.poll_frame(now) {
                let t = tag(&f);
                out.push((t, sent[t as usize], now));
                em.recycle(f);
            }
        };
        for i in 0..n {
            let now = Instant::ZERO + gap * i;
            // Deliver everything due before this frame enters, at its due time.
            while let Some(at) = em.poll_timeout().filter(|&at| at < now) {
                drain(em, at, &sent, &mut out);
            }
            sent.push(now);
            em.offer(now, &frame(i, len));
        }
        while let Some(at) = em.poll_timeout() {
            drain(em, at, &sent, &mut out);
        }
        assert!(em.stats().is_balanced(), "{:?}", em.stats());
        assert_eq!(em.stats().in_flight, 0);
        out
    }

    /// `|x - mean| <= 4 sd` of a binomial(n, p) count.
    fn within_binomial(x: u64, n: u64, p: f64) -> bool {
        let mean = n as f64 * p;
        let sd = (n as f64 * p * (1.0 - p)).sqrt();
        (x as f64 - mean).abs() <= 4.0 * sd
    }

    #[test]
    fn clean_link_passes_everything_at_once_in_order() {
        let mut em = Emulator::new(Impairments::clean(), 1);
        assert!(em.impairments().is_transparent());
        let got = run(&mut em, 1000, us(10), 100);
        assert_eq!(got.len(), 1000);
        assert!(got
            .iter()
            .enumerate()
            .all(|(i, &(t, s, a))| t == i as u32 && s == a));
    }

    #[test]
    fn loss_rate_is_within_statistical_bounds() {
        for seed in 0..5 {
            let mut em = Emulator::new(Impairments::clean().loss(0.05), seed);
            let got = run(&mut em, 20_000, us(10), 60);
            let lost = em.stats().lost;
            assert!(within_binomial(lost, 20_000, 0.05), "seed {seed}: {lost} lost");
            assert_eq!(got.len() as u64, 20_000 - lost);
        }
    }

    /// Lengths of the runs of consecutive lost frames.
    fn loss_runs(got: &[(u32, Instant, Instant)], n: u32) -> Vec<u32> {
        let mut delivered = vec![false; n as usize];
        for &(t, _, _) in got {
            delivered[t as usize] = true;
        }
        let mut runs = Vec::new();
        let mut run = 0;
        for d in delivered {
            if d {
                if run > 0 {
                    runs.push(run);
                }
                run = 0;
            } else {
                run += 1;
            }
        }
        runs
    }

    #[test]
    fn gilbert_elliott_losses_come_in_bursts() {
        let n = 50_000;
        let ge = GilbertElliott::new(0.01, 0.25);
        // 0.01 / 0.26: about 3.8 % of frames, in bursts of 4 on average.
        assert!((ge.mean_loss() - 0.0385).abs() < 0.001);
        let mut em = Emulator::new(Impairments::clean().burst(ge), 3);
        let got = run(&mut em, n, us(10), 60);
        let lost = em.stats().lost as f64 / f64::from(n);
        assert!((lost - ge.mean_loss()).abs() < 0.01, "loss {lost}");
        let runs = loss_runs(&got, n);
        let mean_run = runs.iter().sum::<u32>() as f64 / runs.len() as f64;
        assert!((3.0..5.0).contains(&mean_run), "mean burst {mean_run}");

        // The same loss rate at random: runs of about 1.04.
        let mut em = Emulator::new(Impairments::clean().loss(ge.mean_loss()), 3);
        let got = run(&mut em, n, us(10), 60);
        let runs = loss_runs(&got, n);
        let mean_run = runs.iter().sum::<u32>() as f64 / runs.len() as f64;
        assert!(mean_run < 1.2, "random loss has mean run {mean_run}");
    }

    #[test]
    fn gilbert_elliott_good_and_bad_loss_rates() {
        // Always bad after the first frame, losing half.
        let ge = GilbertElliott {
            p: 1.0,
            r: 0.0,
            bad_loss: 0.5,
            good_loss: 0.0,
        };
        let mut em = Emulator::new(Impairments::clean().burst(ge), 9);
        run(&mut em, 10_000, us(10), 60);
        assert!(within_binomial(em.stats().lost, 10_000, 0.5), "{:?}", em.stats());
    }

    #[test]
    fn delay_and_jitter_bound_the_arrival_time() {
        let imp = Impairments::clean()
            .delay(Duration::from_millis(5))
            .jitter(Duration::from_millis(2));
        let mut em = Emulator::new(imp, 7);
        let got = run(&mut em, 5000, us(100), 60);
        assert_eq!(got.len(), 5000);
        let (mut lo, mut hi) = (Duration::MAX, Duration::ZERO);
        for &(t, sent, at) in &got {
            let d = at - sent;
            assert!(d >= ms(5) && d <= ms(7), "frame {t} took {d:?}");
            lo = lo.min(d);
            hi = hi.max(d);
        }
        assert!(lo < ms(5) + us(50) && hi > ms(7) - us(50), "{lo:?}..{hi:?}");
        // Jitter several times the spacing reorders.
        assert!(got.windows(2).any(|w| w[0].0 > w[1].0));
    }

    #[test]
    fn rate_limit_serializes_and_tail_drops_at_the_queue_bound() {
        // 1 Mbit/s: a 1250-byte frame takes 10 ms on the wire. 20 offered
        // at once into a 5-frame queue: 5 pass, 15 are dropped.
        let imp = Impairments::clean().rate(1_000_000).queue_limit(5 * 1250);
        let mut em = Emulator::new(imp, 5);
        for i in 0..20 {
            em.offer(Instant::ZERO, &frame(i, 1250));
        }
        assert_eq!(em.stats().dropped_queue, 15);
        let mut times = Vec::new();
        while let Some(at) = em.poll_timeout() {
            let f = em.poll_frame(at).unwrap();
            times.push((tag(&f), at));
        }
        let expected: Vec<(u32, Instant)> = (0..5).map(|i| (i, Instant::ZERO + ms(10) * (i + 1))).collect();
        assert_eq!(times, expected);

        // A long flow offered at twice the rate: delivered at the rate.
        let imp = Impairments::clean().rate(10_000_000).queue_limit(10 * 1250);
        let mut em = Emulator::new(imp, 5);
        let got = run(&mut em, 10_000, us(500), 1250);
        let span = got.last().unwrap().2 - got.first().unwrap().2;
        let bits = (got.len() as u64 - 1) * 1250 * 8;
        let bps = bits as f64 / span.as_secs_f64();
        assert!((bps - 10e6).abs() < 10e6 * 0.001, "{bps} bit/s");
        assert!(
            within_binomial(em.stats().dropped_queue, 10_000, 0.5),
            "{:?}",
            em.stats()
        );
        // Never more than the queue's worth of waiting: 10 frames of 1 ms.
        assert!(got.iter().all(|&(_, s, a)| a - s <= ms(11)));
    }

    #[test]
    fn reorder_and_duplicate_counts() {
        let imp = Impairments::clean()
            .delay(ms(1))
            .reorder(0.1)
            .reorder_delay(ms(3))
            .duplicate(0.02);
        let mut em = Emulator::new(imp, 11);
        let got = run(&mut em, 10_000, ms(1), 60);
        let s = em.stats().clone();
        assert!(within_binomial(s.duplicated, 10_000, 0.02), "{s:?}");
        // Each copy is held back independently.
        assert!(within_binomial(s.reordered, 10_000 + s.duplicated, 0.1), "{s:?}");
        assert_eq!(got.len() as u64, 10_000 + s.duplicated);
        let mut seen = vec![0u32; 10_000];
        for &(t, _, _) in &got {
            seen[t as usize] += 1;
        }
        assert_eq!(seen.iter().filter(|&&c| c == 2).count() as u64, s.duplicated);
        assert!(seen.iter().all(|&c| c >= 1));
        // A held-back frame arrives 3 ms late: behind the next 3 frames.
        let descents = got.windows(2).filter(|w| w[0].0 > w[1].0).count() as u64;
        assert!(descents > 0 && descents <= s.reordered, "{descents} for {s:?}");
        assert!(got
            .iter()
            .all(|&(_, sent, at)| at - sent == ms(1) || at - sent == ms(4)));
    }

    #[test]
    fn corruption_flips_exactly_one_byte() {
        let mut em = Emulator::new(Impairments::clean().corrupt(0.1), 13);
        let mut differing = 0;
        for i in 0..5000u64 {
            let original = vec![0xa5u8; 200];
            em.offer(Instant::ZERO + us(i), &original);
            let f = em.poll_frame(Instant::ZERO + us(i)).unwrap();
            let d = f.iter().zip(&original).filter(|(a, b)| a != b).count();
            assert!(d <= 1);
            differing += d as u64;
            em.recycle(f);
        }
        assert_eq!(differing, em.stats().corrupted);
        assert!(within_binomial(differing, 5000, 0.1));
    }

    #[test]
    fn frames_over_the_mtu_are_dropped() {
        let mut em = Emulator::new(Impairments::clean().mtu(1400), 0);
        em.offer(Instant::ZERO, &frame(0, 1414));
        em.offer(Instant::ZERO, &frame(1, 1415));
        em.offer(Instant::ZERO, &frame(2, 60));
        let mut tags = Vec::new();
        while let Some(f) = em.poll_frame(Instant::ZERO) {
            tags.push(tag(&f));
        }
        assert_eq!(tags, [0, 2]);
        assert_eq!(em.stats().dropped_mtu, 1);
    }

    #[test]
    fn the_emulator_holds_at_most_limit_frames() {
        let mut em = Emulator::new(Impairments::clean().delay(ms(10)).limit(100), 0);
        for i in 0..150 {
            em.offer(Instant::ZERO, &frame(i, 60));
        }
        assert_eq!(em.held(), 100);
        assert_eq!(em.stats().dropped_limit, 50);
        assert!(em.poll_frame(Instant::ZERO + ms(9)).is_none());
        assert_eq!(em.poll_timeout(), Some(Instant::ZERO + ms(10)));
        let mut n = 0;
        while em.poll_frame(Instant::ZERO + ms(10)).is_some() {
            n += 1;
        }
        assert_eq!(n, 100);
        assert!(em.stats().is_balanced());
    }

    #[test]
    fn same_seed_same_fates() {
        let imp: Spec = "loss=5%,burst=ge:p=1%:r=30%,delay=2ms,jitter=1ms,dup=5%,corrupt=5%,reorder=5%"
            .parse()
            .unwrap();
        let fates = |seed| {
            let mut c = Channel::new(imp.imp.clone(), seed);
            (0..2000u32)
                .map(|i| c.offer(Instant::ZERO + us(u64::from(i) * 50), 100))
                .collect::<Vec<_>>()
        };
        assert_eq!(fates(1), fates(1));
        assert_ne!(fates(1), fates(2));
    }

    // ----- text -----

    fn parse(s: &str) -> Result<Spec, SpecError> {
        s.parse()
    }

    #[test]
    fn the_example_parses_and_prints_back() {
        let s = "delay=10ms,jitter=2ms,loss=1%,burst=ge:p=0.01:r=0.3,reorder=2%,dup=0.5%,corrupt=0.1%,\
                 rate=100mbit,queue=100,mtu=1400,seed=7";
        let spec = parse(s).unwrap();
        let imp = &spec.imp;
        assert_eq!(imp.delay, ms(10));
        assert_eq!(imp.jitter, ms(2));
        assert_eq!(imp.loss, 0.01);
        assert_eq!(imp.burst, Some(GilbertElliott::new(0.01, 0.3)));
        assert_eq!(imp.reorder, 0.02);
        assert_eq!(imp.duplicate, 0.005);
        assert_eq!(imp.corrupt, 0.001);
        assert_eq!(imp.rate_bps, Some(100_000_000));
        assert_eq!(imp.queue_limit, 100 * 1414);
        assert_eq!(imp.mtu, 1400);
        assert_eq!(spec.seed, Some(7));
        let printed = spec.to_string();
        assert_eq!(
            printed,
            "delay=10ms,jitter=2ms,loss=1%,burst=ge:p=1%:r=30%:bad=100%:good=0%,reorder=2%,dup=0.5%,\
             corrupt=0.1%,rate=100mbit,queue=141400b,mtu=1400,seed=7"
        );
        assert_eq!(parse(&printed).unwrap(), spec);
    }

    #[test]
    fn every_key_parses() {
        assert_eq!(parse("").unwrap(), Spec::default());
        assert_eq!(parse(" none ").unwrap(), Spec::default());
        assert_eq!(Spec::default().to_string(), "none");
        let one = |s: &str| parse(s).unwrap().imp;
        assert_eq!(one("delay=250us").delay, us(250));
        assert_eq!(one("delay=1.5s").delay, Duration::from_millis(1500));
        assert_eq!(one("delay=0").delay, Duration::ZERO);
        assert_eq!(one("jitter=3ms").jitter, ms(3));
        assert_eq!(one("loss=0.02").loss, 0.02);
        assert_eq!(one("loss=100%").loss, 1.0);
        let ge = one("burst=ge:p=2%:r=50%:bad=80%:good=0.1%").burst.unwrap();
        assert_eq!((ge.p, ge.r, ge.bad_loss, ge.good_loss), (0.02, 0.5, 0.8, 0.001));
        assert_eq!(one("reorder=10%").reorder, 0.1);
        assert_eq!(one("reorder-delay=4ms").reorder_delay, ms(4));
        assert_eq!(one("dup=1%").duplicate, 0.01);
        assert_eq!(one("duplicate=1%").duplicate, 0.01);
        assert_eq!(one("corrupt=0.5%").corrupt, 0.005);
        assert_eq!(one("rate=9600bit").rate_bps, Some(9600));
        assert_eq!(one("rate=64kbit").rate_bps, Some(64_000));
        assert_eq!(one("rate=1.5Mbit").rate_bps, Some(1_500_000));
        assert_eq!(one("rate=10gbit").rate_bps, Some(10_000_000_000));
        assert_eq!(one("queue=10").queue_limit, 10 * 1514);
        assert_eq!(one("queue=3000b").queue_limit, 3000);
        assert_eq!(one("mtu=9000,queue=2").queue_limit, 2 * 9014);
        assert_eq!(one("mtu=576").mtu, 576);
        assert_eq!(one("limit=50").limit, 50);
        assert_eq!(parse("seed=18446744073709551615").unwrap().seed, Some(u64::MAX));
        // Spaces around items are fine.
        assert_eq!(one(" loss = 1% , delay = 1ms ").delay, ms(1));
    }

    #[test]
    fn every_error_is_reported_clearly() {
        let err = |s: &str| parse(s).unwrap_err();
        assert_eq!(err("loss"), SpecError::NotKeyValue { item: "loss".into() });
        assert_eq!(err("=1%"), SpecError::NotKeyValue { item: "=1%".into() });
        assert_eq!(err("loss=1%,"), SpecError::NotKeyValue { item: "".into() });
        assert_eq!(err("lose=1%"), SpecError::UnknownKey { key: "lose".into() });
        assert_eq!(
            err("loss=1%,loss=2%"),
            SpecError::DuplicateKey { key: "loss".into() }
        );
        assert_eq!(
            err("dup=1%,duplicate=1%"),
            SpecError::DuplicateKey { key: "dup".into() }
        );
        assert_eq!(
            err("loss=abc"),
            SpecError::BadNumber {
                key: "loss".into(),
                value: "abc".into()
            }
        );
        assert_eq!(
            err("mtu=1.5"),
            SpecError::BadNumber {
                key: "mtu".into(),
                value: "1.5".into()
            }
        );
        assert!(matches!(err("seed=-1"), SpecError::BadNumber { .. }));
        assert!(matches!(err("queue=x"), SpecError::BadNumber { .. }));
        assert!(matches!(err("limit=x"), SpecError::BadNumber { .. }));
        assert!(matches!(err("delay=1.2.3ms"), SpecError::BadNumber { .. }));
        assert!(matches!(err("loss=1x"), SpecError::BadUnit { .. }));
        assert!(matches!(err("delay=10"), SpecError::BadUnit { .. }));
        assert!(matches!(err("jitter=2min"), SpecError::BadUnit { .. }));
        assert!(matches!(err("reorder-delay=2h"), SpecError::BadUnit { .. }));
        assert!(matches!(err("rate=100"), SpecError::BadUnit { .. }));
        assert!(matches!(err("rate=100mbps"), SpecError::BadUnit { .. }));
        assert!(matches!(err("loss=101%"), SpecError::OutOfRange { .. }));
        assert!(matches!(err("reorder=1.5"), SpecError::OutOfRange { .. }));
        assert!(matches!(err("dup=200%"), SpecError::OutOfRange { .. }));
        assert!(matches!(err("corrupt=2"), SpecError::OutOfRange { .. }));
        assert!(matches!(
            err("delay=2s,jitter=5000s"),
            SpecError::OutOfRange { .. }
        ));
        assert!(matches!(err("delay=0.1us"), SpecError::OutOfRange { .. }));
        assert!(matches!(err("rate=0mbit"), SpecError::OutOfRange { .. }));
        assert!(matches!(err("queue=0"), SpecError::OutOfRange { .. }));
        assert!(matches!(err("mtu=67"), SpecError::OutOfRange { .. }));
        assert!(matches!(err("mtu=65536"), SpecError::OutOfRange { .. }));
        assert!(matches!(err("limit=0"), SpecError::OutOfRange { .. }));
        assert_eq!(
            err("burst=gilbert:p=1%"),
            SpecError::UnknownBurstModel {
                model: "gilbert".into()
            }
        );
        assert_eq!(
            err("burst=ge:r=30%"),
            SpecError::MissingBurstParameter { parameter: "p" }
        );
        assert_eq!(
            err("burst=ge:p=1%"),
            SpecError::MissingBurstParameter { parameter: "r" }
        );
        assert_eq!(err("burst=ge:p"), SpecError::NotKeyValue { item: "p".into() });
        assert_eq!(
            err("burst=ge:q=1%"),
            SpecError::UnknownKey {
                key: "burst q".into()
            }
        );
        assert_eq!(
            err("burst=ge:p=1%:p=2%:r=1%"),
            SpecError::DuplicateKey {
                key: "burst p".into()
            }
        );
        assert!(matches!(err("burst=ge:p=2:r=1%"), SpecError::OutOfRange { .. }));
        // Every message names the key and the offending text.
        let msg = err("rate=100mbps").to_string();
        assert!(
            msg.contains("rate") && msg.contains("100mbps") && msg.contains("mbit"),
            "{msg}"
        );
        let msg = err("loss=101%").to_string();
        assert!(msg.contains("loss") && msg.contains("101%"), "{msg}");
        let msg = err("lose=1").to_string();
        assert!(msg.contains("lose") && msg.contains("known"), "{msg}");
    }
}
