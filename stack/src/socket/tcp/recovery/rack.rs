//! RACK-TLP loss detection (RFC 8985), as Linux's tcp_recovery.c: a
//! segment is lost once a segment sent after it has been delivered and
//! a reordering window has passed since (RACK, section 6), and a tail
//! loss probe (TLP, section 7) makes the peer say something when the
//! tail of a flight is lost and no ACK would otherwise come.
//!
//! RACK needs to know, for each segment in flight, when it was last
//! sent: [`SentLog`] keeps a record per transmitted segment. The
//! [`Scoreboard`] stays the one truth about what the peer SACKed; a
//! record only remembers that RACK has already taken its delivery into
//! account (RFC 8985 6.2 steps 2 and 3 run once per segment).

use std::collections::VecDeque;

use super::scoreboard::{Scoreboard, DUP_THRESH};
use crate::socket::tcp::seq::SeqNumber;
use crate::time::{Duration, Instant};

/// Records kept at most. Every record covers at least one sequence
/// number of what is in flight, so the log can never hold more records
/// than the send buffer holds bytes; a full segment of 1448 bytes makes
/// this 23 MB in flight, more than `TcpConfig::send_buffer_max`. Past it
/// (a large buffer sent in tiny segments), a new segment merges into the
/// last record and a retransmission does not split records: RACK then
/// sees coarser, later send times, which can only delay a loss mark,
/// never make one spurious.
pub(crate) const MAX_RECORDS: usize = 16 * 1024;

/// RFC 8985 6.2 step 4: recoveries a grown reordering window persists.
const REO_WND_PERSIST: u32 = 16;

/// RFC 8985 7.2 WCDelAckT: the worst-case delayed-ACK time a lone
/// segment's probe waits for beside 2 * SRTT.
pub(crate) const WC_DEL_ACK: Duration = Duration::from_millis(200);

/// One transmitted segment `[start, end)` (sequence space, the FIN
/// included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sent {
    pub start: SeqNumber,
    pub end: SeqNumber,
    /// RFC 8985 Segment.xmit_ts: when it was last (re)transmitted.
    pub xmit: Instant,
    /// The order of that transmission among all: RFC 8985 breaks a tie
    /// of send times by end_seq, standing for the order segments went
    /// in; a retransmission sent in the same tick as higher new data
    /// would lose that tie wrongly, so the order itself is kept.
    pub order: u64,
    /// RFC 8985 Segment.retransmitted (Linux TCPCB_EVER_RETRANS).
    pub ever_rxt: bool,
    /// A retransmission of it is in flight (Linux TCPCB_SACKED_RETRANS):
    /// pipe counts it once more (RFC 6675 SetPipe).
    pub rxt_in_flight: bool,
    /// RFC 8985 Segment.lost: marked lost by RACK or a timeout.
    pub lost: bool,
    /// RACK took its delivery (cumulative or SACK) into account.
    pub delivered: bool,
}

impl Sent {
    fn len(&self) -> usize {
        self.end.distance(self.start)
    }
}

/// RFC 8985 RACK_sent_after(t1, seq1, t2, seq2), with the sending
/// order for the sequence number (see [`Sent::order`]).
fn sent_after(t1: Instant, o1: u64, t2: Instant, o2: u64) -> bool {
    t1 > t2 || (t1 == t2 && o1 > o2)
}

/// A computed pipe and the scoreboard version it holds for. Atomics, not
/// a `Cell`: the shared empty `Rack` of connections without RACK is a
/// `static` (relaxed loads and stores cost what plain ones do).
#[derive(Debug)]
struct PipeCache {
    /// The scoreboard's version; [`PipeCache::NONE`]: nothing kept (a
    /// scoreboard counts up from 0 and never gets there).
    version: core::sync::atomic::AtomicU64,
    pipe: core::sync::atomic::AtomicUsize,
}

impl PipeCache {
    const NONE: u64 = u64::MAX;

    const fn new() -> Self {
        PipeCache {
            version: core::sync::atomic::AtomicU64::new(Self::NONE),
            pipe: core::sync::atomic::AtomicUsize::new(0),
        }
    }

    fn get(&self) -> Option<(u64, usize)> {
        use core::sync::atomic::Ordering::Relaxed;
        let v = self.version.load(Relaxed);
        (v != Self::NONE).then(|| (v, self.pipe.load(Relaxed)))
    }

    fn set(&self, kept: Option<(u64, usize)>) {
        use core::sync::atomic::Ordering::Relaxed;
        let (v, pipe) = kept.unwrap_or((Self::NONE, 0));
        self.pipe.store(pipe, Relaxed);
        self.version.store(v, Relaxed);
    }
}

impl Default for PipeCache {
    fn default() -> Self {
        PipeCache::new()
    }
}

impl Clone for PipeCache {
    fn clone(&self) -> Self {
        let c = PipeCache::new();
        c.set(self.get());
        c
    }
}

/// The per-segment transmission record of what is in flight, ascending
/// by sequence number, from SND.UNA to the highest sequence sent.
#[derive(Debug, Clone, Default)]
pub(crate) struct SentLog {
    segs: VecDeque<Sent>,
    /// Records marked lost, and records ever retransmitted: with neither
    /// (and nothing SACKed), pipe and loss detection take the fast path.
    n_lost: usize,
    n_rxt: usize,
    /// The next transmission's [`Sent::order`].
    next_order: u64,
    /// [`Self::pipe`] as last computed, with the scoreboard's version it
    /// was computed against: pipe is asked several times per segment
    /// sent and per ACK, and computing it walks every record (with a
    /// 4 000-segment flight into a path that reorders, that walk was half
    /// of tapir's CPU). Kept across new data sent (which adds its length);
    /// anything else that changes records or SACKs drops it.
    pipe_cache: PipeCache,
    /// The span of records split or cut short since [`Rack::on_ack`]
    /// last looked: a piece of a record may be wholly SACKed where the
    /// record was not, with no new SACK to point at it.
    reshaped: Option<(SeqNumber, SeqNumber)>,
}

impl SentLog {
    pub const fn new() -> Self {
        SentLog {
            segs: VecDeque::new(),
            n_lost: 0,
            n_rxt: 0,
            next_order: 0,
            pipe_cache: PipeCache::new(),
            reshaped: None,
        }
    }

    /// The records of `[lo, hi)` were split or cut short.
    fn reshape(&mut self, lo: SeqNumber, hi: SeqNumber) {
        self.reshaped = Some(match self.reshaped {
            Some((l, h)) => (l.min(lo), h.max(hi)),
            None => (lo, hi),
        });
    }

    /// Records changed in a way pipe cannot follow.
    fn forget_pipe(&mut self) {
        self.pipe_cache.set(None);
    }

    pub fn len(&self) -> usize {
        self.segs.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.segs.is_empty()
    }

    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.segs.capacity()
    }

    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = &Sent> {
        self.segs.iter()
    }

    /// Some record lies wholly within a SACKed range. A SACK of part of
    /// a segment (the last byte of it, say) marks nothing, as in Linux,
    /// whose sacked_out counts whole segments (tcp_match_skb_to_sack
    /// splits only at MSS multiples).
    pub fn any_sacked(&self, sb: &Scoreboard) -> bool {
        sb.ranges().iter().any(|&(s, e)| self.any_sacked_in(s, e))
    }

    /// Some record lies wholly within the SACKed range `[s, e)`.
    pub fn any_sacked_in(&self, s: SeqNumber, e: SeqNumber) -> bool {
        let i = self.segs.partition_point(|r| r.start < s);
        self.segs.get(i).is_some_and(|r| r.end <= e)
    }

    /// The start of the last record (the highest segment sent).
    pub fn last_start(&self) -> Option<SeqNumber> {
        self.segs.back().map(|s| s.start)
    }

    fn count(&mut self, s: &Sent, add: bool) {
        let (l, r) = (usize::from(s.lost), usize::from(s.ever_rxt));
        if add {
            self.n_lost += l;
            self.n_rxt += r;
        } else {
            self.n_lost -= l;
            self.n_rxt -= r;
        }
    }

    /// Split the record holding `at` so that one starts there, if room.
    fn split_at(&mut self, at: SeqNumber) {
        if self.segs.len() >= MAX_RECORDS {
            return;
        }
        let i = self.segs.partition_point(|s| s.end <= at);
        if self.segs.get(i).is_none_or(|s| s.start >= at) {
            return;
        }
        let mut upper = self.segs[i];
        self.reshape(upper.start, upper.end);
        upper.start = at;
        self.segs[i].end = at;
        self.count(&upper, true);
        self.segs.insert(i + 1, upper);
    }

    /// `[start, end)` went out at `now`: what lies below the highest
    /// sequence sent is a retransmission, the rest is new.
    pub fn on_send(&mut self, start: SeqNumber, end: SeqNumber, now: Instant) {
        if end <= start {
            return;
        }
        let order = self.next_order;
        self.next_order += 1;
        let top = self.segs.back().map(|s| s.end);
        if let Some(top) = top.filter(|&t| start < t) {
            self.forget_pipe();
            self.split_at(start);
            self.split_at(end.min(top));
            let first = self.segs.partition_point(|s| s.end <= start);
            for i in first..self.segs.len() {
                let s = self.segs[i];
                if s.start >= end {
                    break;
                }
                self.count(&s, false);
                let r = &mut self.segs[i];
                r.xmit = now;
                r.order = order;
                r.ever_rxt = true;
                r.rxt_in_flight = true;
                let r = *r;
                self.count(&r, true);
            }
            if end <= top {
                return;
            }
        }
        let start = top.map_or(start, |t| t.max(start));
        if self.segs.len() >= MAX_RECORDS {
            self.forget_pipe();
            if let Some(last) = self.segs.back_mut() {
                // At the bound: the new data joins the last record.
                last.end = end;
                last.xmit = now;
                last.order = order;
                last.delivered = false;
                if last.lost {
                    last.lost = false;
                    self.n_lost -= 1;
                }
                return;
            }
        }
        let s = Sent {
            start,
            end,
            xmit: now,
            order,
            ever_rxt: false,
            rxt_in_flight: false,
            lost: false,
            delivered: false,
        };
        // New data is in flight once, and nothing SACKs what was never
        // sent.
        if let Some((v, pipe)) = self.pipe_cache.get() {
            self.pipe_cache.set(Some((v, pipe + end.distance(start))));
        }
        self.segs.push_back(s);
    }

    /// The cumulative ACK moved to `una`: forget what it covers; a
    /// drained log gives its memory back.
    pub fn on_cumulative_ack(&mut self, una: SeqNumber) {
        if self.segs.front().is_some_and(|s| s.start < una) {
            self.forget_pipe();
        }
        while let Some(&s) = self.segs.front() {
            if s.end <= una {
                self.count(&s, false);
                self.segs.pop_front();
            } else {
                if s.start < una {
                    self.segs[0].start = una;
                    self.reshape(una, s.end);
                }
                break;
            }
        }
    }

    /// The log is empty but keeps storage: [`Self::release_if_unused`]
    /// gives it back once the connection's reclaim timer finds it still
    /// so (a flight that drains between bursts keeps it, and the hot path
    /// allocates nothing).
    pub fn holds_unused_storage(&self) -> bool {
        self.segs.is_empty() && self.segs.capacity() > 0
    }

    pub fn release_if_unused(&mut self) {
        if self.holds_unused_storage() {
            self.segs = VecDeque::new();
            self.forget_pipe();
        }
    }

    /// RFC 6675 5.1 (Linux tcp_timeout_mark_lost): a retransmission
    /// timeout; whatever the scoreboard does not hold SACKed is lost, and
    /// no retransmission is in flight any more.
    pub fn on_rto(&mut self, sb: &Scoreboard) {
        self.forget_pipe();
        let mut cursor = Cursor::new(sb);
        for i in 0..self.segs.len() {
            let s = self.segs[i];
            self.count(&s, false);
            let sacked = cursor.covered(s.start, s.end);
            let r = &mut self.segs[i];
            r.delivered = r.delivered && sacked;
            r.lost = !sacked;
            r.rxt_in_flight = false;
            let r = *r;
            self.count(&r, true);
        }
    }

    /// RFC 6675 SetPipe() from the records: an un-SACKed octet counts
    /// once unless lost, once more while its retransmission is in flight.
    pub fn pipe(&self, sb: &Scoreboard) -> usize {
        if self.n_lost == 0 && self.n_rxt == 0 && sb.is_empty() {
            // The records are contiguous: all of them is in flight.
            return match (self.segs.front(), self.segs.back()) {
                (Some(f), Some(b)) => b.end.distance(f.start),
                _ => 0,
            };
        }
        if let Some((v, pipe)) = self.pipe_cache.get().filter(|&(v, _)| v == sb.version()) {
            debug_assert_eq!(pipe, self.walk_pipe(sb), "a kept pipe went stale (version {v})");
            return pipe;
        }
        let pipe = self.walk_pipe(sb);
        self.pipe_cache.set(Some((sb.version(), pipe)));
        pipe
    }

    fn walk_pipe(&self, sb: &Scoreboard) -> usize {
        let mut cursor = Cursor::new(sb);
        self.segs
            .iter()
            .map(|s| cursor.unsacked(s) * (usize::from(!s.lost) + usize::from(s.rxt_in_flight)))
            .sum()
    }

    /// Octets marked lost and not yet retransmitted.
    pub fn lost_bytes(&self, sb: &Scoreboard) -> usize {
        if self.n_lost == 0 {
            return 0;
        }
        let mut cursor = Cursor::new(sb);
        self.segs
            .iter()
            .filter(|s| s.lost && !s.rxt_in_flight)
            .map(|s| cursor.unsacked(s))
            .sum()
    }

    /// A reduction was undone (RFC 3708, RFC 4015): nothing is lost after
    /// all (Linux tcp_undo_cwnd_reduction unmarks TCPCB_LOST).
    pub fn clear_lost(&mut self) {
        self.forget_pipe();
        for s in self.segs.iter_mut() {
            s.lost = false;
        }
        self.n_lost = 0;
    }

    /// Whether a segment is marked lost and waits for its retransmission.
    pub fn has_lost(&self) -> bool {
        self.n_lost > 0
            && self
                .segs
                .iter()
                .any(|s| s.lost && !s.rxt_in_flight && !s.delivered)
    }

    /// RFC 6675 NextSeg rule 1 with RACK's IsLost: the first un-SACKed
    /// part, at most `seg` octets, of the lowest segment marked lost and
    /// not yet retransmitted.
    pub fn next_lost(&self, sb: &Scoreboard, seg: usize) -> Option<(SeqNumber, SeqNumber)> {
        if self.n_lost == 0 {
            return None;
        }
        self.segs
            .iter()
            .filter(|s| s.lost && !s.rxt_in_flight && !s.delivered)
            .find_map(|s| sb.holes(s.start, s.end).next())
            .map(|(s, e)| (s, e.min(s + seg.max(1))))
    }
}

/// A walk over the scoreboard's ranges beside ascending records, so that
/// a pass over the log costs records + ranges, not their product.
struct Cursor<'a> {
    ranges: &'a [(SeqNumber, SeqNumber)],
    next: usize,
}

impl<'a> Cursor<'a> {
    fn new(sb: &'a Scoreboard) -> Self {
        Cursor {
            ranges: sb.ranges(),
            next: 0,
        }
    }

    /// Octets of `[s, e)` not SACKed; `s` must not go down between calls.
    fn unsacked_range(&mut self, s: SeqNumber, e: SeqNumber) -> usize {
        while self.ranges.get(self.next).is_some_and(|&(_, re)| re <= s) {
            self.next += 1;
        }
        let mut left = e.distance(s);
        for &(rs, re) in &self.ranges[self.next..] {
            if rs >= e {
                break;
            }
            left -= re.min(e).distance(rs.max(s));
        }
        left
    }

    /// The scoreboard holds all of `[s, e)` SACKed.
    fn covered(&mut self, s: SeqNumber, e: SeqNumber) -> bool {
        self.unsacked_range(s, e) == 0
    }

    /// Octets of the record not SACKed.
    fn unsacked(&mut self, s: &Sent) -> usize {
        if s.delivered {
            return 0;
        }
        self.unsacked_range(s.start, s.end)
    }
}

/// What an ACK tells RACK besides the scoreboard.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AckInfo {
    pub now: Instant,
    /// SND.UNA after the ACK.
    pub una: SeqNumber,
    /// The ACK's TSecr and the TSval our clock gave at a given instant
    /// (RFC 7323), if timestamps are in use: `(tsecr, offset)`.
    pub tsecr: Option<(u32, u32)>,
}

/// RACK's state (RFC 8985 6.1) and the segments it watches.
#[derive(Debug, Clone)]
pub(crate) struct Rack {
    pub log: SentLog,
    /// RACK.xmit_ts, RACK.end_seq: the most recently sent segment that
    /// has been delivered (its order for end_seq, see [`Sent::order`]).
    xmit_ts: Option<Instant>,
    order: u64,
    /// RACK.rtt: the RTT of that segment's delivery.
    rtt: Duration,
    /// RACK.min_RTT.
    min_rtt: Option<Duration>,
    /// The round trip of the most recently sent original transmission the
    /// last ACK delivered (Linux's ca_rtt_us), for the congestion
    /// controller; see [`Rack::ack_rtt`].
    ack_rtt: Option<Duration>,
    /// RACK.fack: the highest sequence delivered.
    fack: Option<SeqNumber>,
    /// RACK.reordering_seen.
    reordering_seen: bool,
    /// RACK.reo_wnd_mult, RACK.reo_wnd_persist, RACK.dsack_round.
    reo_wnd_mult: u32,
    reo_wnd_persist: u32,
    dsack_round: Option<SeqNumber>,
    /// Segments marked lost so far, for the counters.
    pub marked: u64,
    /// The tail loss probe's episode (RFC 8985 7), probes sent and the
    /// losses they repaired.
    pub tlp: Tlp,
    pub probes: u64,
    pub repaired: u64,
}

impl Default for Rack {
    fn default() -> Self {
        Rack::new()
    }
}

impl Rack {
    /// Nothing sent, nothing known: reo_wnd_mult 1 (RFC 8985 6.1).
    pub const fn new() -> Self {
        Rack {
            log: SentLog::new(),
            xmit_ts: None,
            order: 0,
            rtt: Duration::ZERO,
            min_rtt: None,
            ack_rtt: None,
            fack: None,
            reordering_seen: false,
            reo_wnd_mult: 1,
            reo_wnd_persist: 0,
            dsack_round: None,
            marked: 0,
            tlp: Tlp::new(),
            probes: 0,
            repaired: 0,
        }
    }

    #[cfg(test)]
    pub fn reordering_seen(&self) -> bool {
        self.reordering_seen
    }

    #[cfg(test)]
    pub fn reo_wnd_mult(&self) -> u32 {
        self.reo_wnd_mult
    }

    /// The round trip of the most recently sent segment the last ACK
    /// delivered, cumulatively or by SACK, if it was never retransmitted:
    /// Linux's ca_rtt_us (tcp_clean_rtx_queue's last_ackt, tcp_sacktag's
    /// last_sackt), which its congestion controllers see. The RFC 7323
    /// sample is the *oldest* segment's: an ACK that fills a hole echoes
    /// the timestamp of the segment that filled it (RFC 7323 4.3), held
    /// back by the reordering, and on a path that reorders a tenth of a
    /// fast flow most ACKs do that; HyStart++ (RFC 9406) took those for a
    /// queue building and left slow start at a fraction of the path.
    pub fn ack_rtt(&self) -> Option<Duration> {
        self.ack_rtt
    }

    /// Reordering proven another way than step 3's: a hole was filled by
    /// the original transmission of a segment RACK had marked lost and
    /// resent (its timestamp echo is older than the retransmission, RFC
    /// 3522), as Linux's tcp_try_undo_partial calls
    /// tcp_check_sack_reordering. Step 3 never sees it: the segment was
    /// retransmitted, so its delivery below RACK.fack does not count, and
    /// with a zero reordering window (none seen, DupThresh SACKed) every
    /// held-back segment is resent before its original arrives.
    pub fn on_reordering_seen(&mut self) {
        self.reordering_seen = true;
    }

    /// RFC 8985 6.2 step 1: an RTT measurement (RFC 6298, RFC 7323).
    pub fn on_rtt_sample(&mut self, rtt: Duration) {
        self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
    }

    /// RFC 8985 6.2 steps 2 and 3 for every segment this ACK delivered
    /// (cumulatively or by SACK, per the scoreboard already updated),
    /// then trim the log to SND.UNA. Returns whether any was delivered.
    pub fn on_ack(&mut self, ack: &AckInfo, sb: &mut Scoreboard) -> bool {
        let mut advanced = false;
        self.ack_rtt = None;
        let changed = sb.take_changed();
        let sb = &*sb;
        let highest = sb.highest_sacked();
        let mut cursor = Cursor::new(sb);
        // A segment is delivered by this ACK if the cumulative ACK covers
        // it, or if the SACKs cover it now and did not before: it overlaps
        // what was newly SACKed, or it is a piece of a record split or cut
        // short by a cumulative ACK since (a piece can be wholly SACKed
        // where the record was not). The records below SND.UNA, then those
        // overlapping either span, in ascending order, are all there is to
        // look at; every other record SACKed was marked at an earlier ACK.
        // Walking them all again on every ACK was RACK's largest cost with
        // a reordering path (10.6 % of tapir's CPU at 1 Gbit/s, 4 000
        // records).
        let cumulative_end = self.log.segs.partition_point(|s| s.end <= ack.una);
        let overlapping = |(lo, hi): (SeqNumber, SeqNumber)| {
            let first = self.log.segs.partition_point(|s| s.end <= lo);
            let last = self.log.segs.partition_point(|s| s.start < hi);
            first.max(cumulative_end)..last.max(cumulative_end)
        };
        let mut spans = [changed, self.log.reshaped.take()].map(|c| c.map(overlapping).unwrap_or_default());
        spans.sort_by_key(|r| r.start);
        if spans[0].end >= spans[1].start {
            spans = [0..0, spans[0].start..spans[0].end.max(spans[1].end)];
        }
        let [a, b] = spans;
        for i in (0..cumulative_end).chain(a).chain(b) {
            let s = self.log.segs[i];
            let cumulative = s.end <= ack.una;
            if !cumulative && highest.is_none_or(|h| s.start >= h) {
                break;
            }
            if s.delivered || !(cumulative || cursor.covered(s.start, s.end)) {
                continue;
            }
            // Delivered: wholly SACKed or below SND.UNA, which pipe
            // counted as such already.
            self.log.segs[i].delivered = true;
            advanced = true;
            if !s.ever_rxt {
                let rtt = ack.now - s.xmit;
                self.ack_rtt = Some(self.ack_rtt.map_or(rtt, |r| r.min(rtt)));
            }
            self.advance(ack, &s);
            self.detect_reordering(&s);
        }
        #[cfg(debug_assertions)]
        self.check_nothing_else_delivered(ack, sb);
        self.log.on_cumulative_ack(ack.una);
        if self.dsack_round.is_some_and(|r| ack.una >= r) {
            self.dsack_round = None;
        }
        advanced
    }

    /// Debug builds: the walk [`Self::on_ack`] narrowed to the changed
    /// span left no record behind that the whole walk would have found
    /// delivered.
    #[cfg(debug_assertions)]
    fn check_nothing_else_delivered(&self, ack: &AckInfo, sb: &Scoreboard) {
        let highest = sb.highest_sacked();
        let mut cursor = Cursor::new(sb);
        for s in &self.log.segs {
            let cumulative = s.end <= ack.una;
            if !cumulative && highest.is_none_or(|h| s.start >= h) {
                break;
            }
            let covered = cumulative || cursor.covered(s.start, s.end);
            debug_assert!(
                s.delivered || !covered,
                "RACK missed a delivered record {:?}..{:?} (SND.UNA {:?})",
                s.start,
                s.end,
                ack.una
            );
        }
    }

    /// RFC 8985 6.2 step 2: `s` was delivered; if it was sent after
    /// RACK's segment it becomes RACK's segment. A retransmitted
    /// segment may have been delivered by an earlier transmission: its
    /// ACK says nothing of the last one if it echoes an older timestamp
    /// or came sooner than a round trip could (Linux tcp_rack_advance
    /// checks the latter).
    fn advance(&mut self, ack: &AckInfo, s: &Sent) {
        let rtt = ack.now - s.xmit;
        if s.ever_rxt {
            let old_echo = ack
                .tsecr
                .is_some_and(|(ecr, offset)| ts_before(ecr, ts_of(s.xmit, offset)));
            if old_echo || self.min_rtt.is_some_and(|m| rtt < m) {
                return;
            }
        }
        self.rtt = rtt;
        match self.xmit_ts {
            Some(t) if !sent_after(s.xmit, s.order, t, self.order) => {}
            _ => {
                self.xmit_ts = Some(s.xmit);
                self.order = s.order;
            }
        }
    }

    /// RFC 8985 6.2 step 3: an original transmission delivered below
    /// what was delivered before it arrived out of order.
    fn detect_reordering(&mut self, s: &Sent) {
        match self.fack {
            Some(f) if s.end <= f => {
                if s.end < f && !s.ever_rxt {
                    self.reordering_seen = true;
                }
            }
            _ => self.fack = Some(s.end),
        }
    }

    /// RFC 8985 6.2 step 4: the ACK carried a D-SACK (RFC 2883). Once a
    /// round trip (until SND.UNA passes `snd_nxt` as of now), widen the
    /// reordering window by another min_RTT / 4, for 16 recoveries.
    pub fn on_dsack(&mut self, una: SeqNumber, snd_nxt: SeqNumber) {
        if self.dsack_round.is_some_and(|r| una >= r) {
            self.dsack_round = None;
        }
        if self.dsack_round.is_none() {
            self.dsack_round = Some(snd_nxt);
            self.reo_wnd_mult = (self.reo_wnd_mult + 1).min(255);
            self.reo_wnd_persist = REO_WND_PERSIST;
        }
    }

    /// RFC 8985 6.2 step 4: a fast or timeout recovery ended; after 16
    /// without a D-SACK the window shrinks back.
    pub fn on_recovery_exit(&mut self) {
        self.reo_wnd_persist = self.reo_wnd_persist.saturating_sub(1);
        if self.reo_wnd_persist == 0 {
            self.reo_wnd_mult = 1;
        }
    }

    /// RFC 8985 6.2 RACK_update_reo_wnd(), as Linux's tcp_rack_reo_wnd:
    /// without reordering seen, none in recovery or once DupThresh
    /// segments are SACKed (the classic rule still starts recovery at
    /// once); else min_RTT / 4 per step, at most SRTT.
    pub fn reo_wnd(&self, in_recovery: bool, sb: &Scoreboard, srtt: Option<Duration>) -> Duration {
        if !self.reordering_seen {
            if in_recovery {
                return Duration::ZERO;
            }
            let sacked = if sb.is_empty() {
                0
            } else {
                let mut cursor = Cursor::new(sb);
                self.log
                    .segs
                    .iter()
                    .filter(|s| cursor.covered(s.start, s.end))
                    .take(DUP_THRESH)
                    .count()
            };
            if sacked >= DUP_THRESH {
                return Duration::ZERO;
            }
        }
        // Without a min_RTT yet, SRTT bounds it (as Linux, whose min_rtt
        // starts at infinity).
        match (self.min_rtt, srtt) {
            (Some(m), Some(s)) => (m / 4 * self.reo_wnd_mult).min(s),
            (Some(m), None) => m / 4 * self.reo_wnd_mult,
            (None, s) => s.unwrap_or(Duration::ZERO),
        }
    }

    /// RFC 8985 6.2 step 5, RACK_detect_loss(): mark lost every segment
    /// sent before RACK's segment whose reordering window has passed.
    /// Returns the octets newly marked lost and, if a segment's window is
    /// still open, when to look again (the RACK reorder timer).
    pub fn detect_loss(&mut self, now: Instant, reo_wnd: Duration) -> (usize, Option<Duration>) {
        let Some(rack_ts) = self.xmit_ts else {
            return (0, None);
        };
        let mut lost = 0;
        let mut timeout: Option<Duration> = None;
        for i in 0..self.log.segs.len() {
            let s = self.log.segs[i];
            if s.delivered || (s.lost && !s.rxt_in_flight) {
                continue;
            }
            if !sent_after(rack_ts, self.order, s.xmit, s.order) {
                // Without retransmissions the log is in sending order too:
                // nothing further up was sent earlier.
                if self.log.n_rxt == 0 {
                    break;
                }
                continue;
            }
            let deadline = s.xmit + self.rtt + reo_wnd;
            if now >= deadline {
                self.log.count(&s, false);
                self.log.forget_pipe();
                let r = &mut self.log.segs[i];
                r.lost = true;
                r.rxt_in_flight = false;
                let r = *r;
                self.log.count(&r, true);
                lost += r.len();
                self.marked += 1;
            } else {
                let remaining = deadline - now;
                timeout = Some(timeout.map_or(remaining, |t| t.max(remaining)));
            }
        }
        (lost, timeout)
    }
}

/// RFC 7323 5.3: TSval comparison modulo 2^32.
fn ts_before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// Our TSval at `t` (as `conn::ts_now`).
fn ts_of(t: Instant, offset: u32) -> u32 {
    (t.total_millis() as u32).wrapping_add(offset)
}

/// A tail loss probe episode (RFC 8985 7).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tlp {
    /// TLP.end_seq: SND.NXT after the probe, while its episode lasts.
    pub end_seq: Option<SeqNumber>,
    /// TLP.is_retrans: the probe retransmitted old data.
    pub is_retrans: bool,
    /// The start of the probe, to recognise a D-SACK of it.
    pub probe_start: SeqNumber,
    /// RFC 8985 7.3 condition 2: an RTT sample since the last probe.
    pub rtt_sampled: bool,
}

impl Default for Tlp {
    fn default() -> Self {
        Tlp::new()
    }
}

impl Tlp {
    pub const fn new() -> Self {
        Tlp {
            end_seq: None,
            is_retrans: false,
            probe_start: SeqNumber(0),
            rtt_sampled: true,
        }
    }
}

/// What an ACK says of the probe's episode (RFC 8985 7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TlpOutcome {
    /// Still open, or no episode.
    Pending,
    /// Over, nothing was lost (new data delivered, a D-SACK for the
    /// probe, or a duplicate ACK for both copies).
    NoLoss,
    /// Over: the probe repaired a loss; the congestion controller must
    /// respond.
    Repaired,
}

impl Tlp {
    /// RFC 8985 7.2 TLP_calc_PTO(): 2 * SRTT, plus WCDelAckT when one
    /// segment is in flight, 1 s without SRTT; never after the RTO,
    /// which is `rto_in` away.
    pub fn pto(srtt: Option<Duration>, one_segment: bool, rto_in: Option<Duration>) -> Duration {
        let pto = match srtt {
            Some(s) if one_segment => s * 2 + WC_DEL_ACK,
            Some(s) => s * 2,
            None => Duration::from_secs(1),
        };
        rto_in.map_or(pto, |r| pto.min(r))
    }

    /// The probe `[start, snd_nxt)` went, `retrans` if old data.
    pub fn on_probe(&mut self, start: SeqNumber, snd_nxt: SeqNumber, retrans: bool) {
        self.end_seq = Some(snd_nxt);
        self.is_retrans = retrans;
        self.probe_start = start;
        self.rtt_sampled = false;
    }

    /// RFC 8985 7.4 TLP_process_ack(), as Linux's tcp_process_tlp_ack.
    /// `dsack` is the ACK's D-SACK block if it has one; `pure_dup`: the
    /// ACK neither advanced SND.UNA nor SACKed anything, a duplicate.
    pub fn on_ack(
        &mut self,
        ack: SeqNumber,
        dsack: Option<(SeqNumber, SeqNumber)>,
        pure_dup: bool,
    ) -> TlpOutcome {
        let Some(end) = self.end_seq else {
            return TlpOutcome::Pending;
        };
        if ack < end {
            return TlpOutcome::Pending;
        }
        let dsack_probe = dsack.is_some_and(|(s, e)| s < end && e > self.probe_start);
        let outcome = if !self.is_retrans || dsack_probe || (ack == end && pure_dup) {
            TlpOutcome::NoLoss
        } else if ack > end {
            TlpOutcome::Repaired
        } else {
            return TlpOutcome::Pending;
        };
        self.end_seq = None;
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: usize = 100;

    fn sq(n: u32) -> SeqNumber {
        SeqNumber(n)
    }

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    fn d(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Ten segments of MSS from `base`, one per millisecond from t = 0.
    fn sent(base: SeqNumber) -> Rack {
        let mut r = Rack::default();
        for i in 0..10 {
            r.log.on_send(base + i * MSS, base + (i + 1) * MSS, ms(i as u64));
        }
        r
    }

    fn sack(sb: &mut Scoreboard, una: SeqNumber, max: SeqNumber, s: SeqNumber, e: SeqNumber) {
        sb.update(una, max, [(s.0, e.0)].into_iter());
    }

    fn ack(now: u64, una: SeqNumber) -> AckInfo {
        AckInfo {
            now: ms(now),
            una,
            tsecr: None,
        }
    }

    /// An ACK looks only where something changed; a record split by a
    /// retransmission is such a place even without a new SACK: its upper
    /// piece may be wholly SACKed where the record was not (found by
    /// fuzzing `tcp_pair`, with the debug check of every record).
    #[test]
    fn a_split_record_is_delivered_by_the_next_ack_without_a_new_sack() {
        let base = sq(1000);
        let mut r = Rack::default();
        // One TSO segment of three MSS; the peer SACKs its upper two.
        r.log.on_send(base, base + 3 * MSS, ms(0));
        let mut sb = Scoreboard::default();
        sack(&mut sb, base, base + 3 * MSS, base + MSS, base + 3 * MSS);
        assert!(
            !r.on_ack(&ack(100, base), &mut sb),
            "the record is not wholly SACKed"
        );
        // Its first MSS goes again: the record splits at base + MSS.
        r.log.on_send(base, base + MSS, ms(150));
        assert!(
            r.on_ack(&ack(160, base), &mut sb),
            "the SACKed piece is delivered"
        );
        assert!(r.log.segs.iter().any(|s| s.start == base + MSS && s.delivered));
    }

    /// The same for a record the cumulative ACK cut short: what is left
    /// of it may be wholly SACKed (found by fuzzing `tcp_established`).
    #[test]
    fn a_record_cut_short_by_the_cumulative_ack_is_delivered_by_the_next_ack() {
        let base = sq(1000);
        let mut r = Rack::default();
        r.log.on_send(base, base + 3 * MSS, ms(0));
        let mut sb = Scoreboard::default();
        sack(&mut sb, base, base + 3 * MSS, base + MSS, base + 3 * MSS);
        // The ACK covers the first MSS: the record straddles SND.UNA.
        sb.on_cumulative_ack(base + MSS);
        assert!(!r.on_ack(&ack(100, base + MSS), &mut sb));
        assert!(r.on_ack(&ack(110, base + MSS), &mut sb), "the rest is delivered");
    }

    #[test]
    fn later_delivery_marks_earlier_segment_lost_after_reo_wnd() {
        let base = sq(1000);
        let mut r = sent(base);
        r.on_rtt_sample(d(100));
        let mut sb = Scoreboard::default();
        // Segment 1 SACKed at t = 101: segment 0 was sent before it.
        sack(&mut sb, base, base + 1000, base + 100, base + 200);
        assert!(r.on_ack(&ack(101, base), &mut sb));
        let reo = r.reo_wnd(false, &sb, Some(d(100)));
        assert_eq!(reo, d(25), "min_RTT / 4, no reordering seen");
        let (lost, timer) = r.detect_loss(ms(101), reo);
        assert_eq!(lost, 0);
        // RACK.rtt = 100 ms: segment 0 (sent at 0) is due at 0 + 100 + 25.
        assert_eq!(timer, Some(d(24)));
        let (lost, timer) = r.detect_loss(ms(125), reo);
        assert_eq!((lost, timer), (MSS, None));
        assert!(r.log.has_lost());
        assert_eq!(r.log.next_lost(&sb, MSS), Some((base, base + 100)));
        assert_eq!(r.log.lost_bytes(&sb), MSS);
        // Pipe: 8 segments unSACKed and not lost.
        assert_eq!(r.log.pipe(&sb), 8 * MSS);
        // The retransmission goes: pipe counts it, it is no longer due.
        r.log.on_send(base, base + 100, ms(130));
        assert_eq!(r.log.pipe(&sb), 9 * MSS);
        assert_eq!(r.log.lost_bytes(&sb), 0);
        assert_eq!(r.log.next_lost(&sb, MSS), None);
    }

    #[test]
    fn ack_rtt_is_the_newest_original_delivered() {
        let base = sq(1000);
        let mut r = sent(base);
        let mut sb = Scoreboard::default();
        // Segments 2 to 4 (sent at 2..4 ms) SACKed at 24 ms: 20 ms.
        sack(&mut sb, base, base + 1000, base + 200, base + 500);
        r.on_ack(&ack(24, base), &mut sb);
        assert_eq!(r.ack_rtt(), Some(d(20)));
        // Segment 0, held back, fills the hole at 40 ms with segment 1:
        // the oldest is 40 ms old, the newest delivered 39 ms (what a
        // timestamp echo would give is the former).
        r.on_ack(&ack(40, base + 200), &mut sb);
        assert_eq!(r.ack_rtt(), Some(d(39)));
        // An ACK delivering nothing new gives no sample.
        r.on_ack(&ack(41, base + 500), &mut sb);
        assert_eq!(r.ack_rtt(), None, "segments 2-4 were delivered already");
        // A retransmitted segment gives none (Karn): segment 5 resent at
        // 50 ms, then acknowledged with nothing else.
        r.log.on_send(base + 500, base + 600, ms(50));
        r.on_ack(&ack(70, base + 600), &mut sb);
        assert_eq!(r.ack_rtt(), None);
    }

    #[test]
    fn no_reo_wnd_once_dupthresh_segments_are_sacked_or_in_recovery() {
        let base = sq(1000);
        let mut r = sent(base);
        r.on_rtt_sample(d(100));
        let mut sb = Scoreboard::default();
        sack(&mut sb, base, base + 1000, base + 100, base + 400);
        r.on_ack(&ack(104, base), &mut sb);
        assert_eq!(r.reo_wnd(false, &sb, Some(d(100))), Duration::ZERO);
        let (lost, _) = r.detect_loss(ms(104), Duration::ZERO);
        assert_eq!(lost, MSS, "the classic DupThresh case: at once");
        let mut sb = Scoreboard::default();
        sack(&mut sb, base, base + 1000, base + 100, base + 200);
        assert_eq!(r.reo_wnd(true, &sb, Some(d(100))), Duration::ZERO, "in recovery");
    }

    #[test]
    fn reordering_seen_keeps_the_window_and_dsack_grows_it() {
        let base = sq(1000);
        let mut r = sent(base);
        r.on_rtt_sample(d(40));
        let mut sb = Scoreboard::default();
        sack(&mut sb, base, base + 1000, base + 100, base + 400);
        r.on_ack(&ack(50, base), &mut sb);
        assert!(!r.reordering_seen());
        // Segment 0 arrives late, never retransmitted: reordering.
        sb.on_cumulative_ack(base + 400);
        r.on_ack(&ack(51, base + 400), &mut sb);
        assert!(r.reordering_seen());
        assert_eq!(r.log.len(), 6, "trimmed to SND.UNA");
        assert_eq!(r.reo_wnd(true, &sb, Some(d(100))), d(10), "kept in recovery");
        // A D-SACK: one more step, once per round trip.
        r.on_dsack(base + 400, base + 1000);
        assert_eq!(r.reo_wnd_mult(), 2);
        assert_eq!(r.reo_wnd(false, &sb, Some(d(100))), d(20));
        r.on_dsack(base + 500, base + 1000);
        assert_eq!(r.reo_wnd_mult(), 2, "same round trip");
        r.on_dsack(base + 1000, base + 1000);
        assert_eq!(r.reo_wnd_mult(), 3);
        // Capped at SRTT.
        assert_eq!(r.reo_wnd(false, &sb, Some(d(15))), d(15));
        // 16 recoveries without D-SACK: back to one step.
        for _ in 0..15 {
            r.on_recovery_exit();
        }
        assert_eq!(r.reo_wnd_mult(), 3);
        r.on_recovery_exit();
        assert_eq!(r.reo_wnd_mult(), 1);
    }

    #[test]
    fn ambiguous_retransmission_does_not_advance() {
        let base = sq(1000);
        let mut r = sent(base);
        r.on_rtt_sample(d(100));
        r.log.on_send(base, base + 100, ms(150));
        let mut sb = Scoreboard::default();
        // The ACK of 0 comes 10 ms after its retransmission: the original
        // was delivered, the retransmission's time says nothing.
        r.on_ack(&ack(160, base + 100), &mut sb);
        assert_eq!(r.xmit_ts, None);
        // With timestamps: an echo older than the retransmission.
        let mut r = sent(base);
        r.on_rtt_sample(d(10));
        r.log.on_send(base, base + 100, ms(150));
        let a = AckInfo {
            now: ms(300),
            una: base + 100,
            tsecr: Some((5, 0)),
        };
        r.on_ack(&a, &mut sb);
        assert_eq!(r.xmit_ts, None);
        let a = AckInfo {
            now: ms(300),
            una: base + 200,
            tsecr: Some((150, 0)),
        };
        r.on_ack(&a, &mut sb);
        assert_eq!(r.xmit_ts, Some(ms(1)), "segment 1, not retransmitted");
    }

    #[test]
    fn retransmission_lost_again_is_marked_again() {
        let base = sq(1000);
        let mut r = sent(base);
        r.on_rtt_sample(d(100));
        let mut sb = Scoreboard::default();
        sack(&mut sb, base, base + 1000, base + 100, base + 400);
        r.on_ack(&ack(104, base), &mut sb);
        r.detect_loss(ms(104), Duration::ZERO);
        r.log.on_send(base, base + 100, ms(104));
        // Segment 9 was sent at 9: a retransmission sent later is
        // delivered (SACKed) later: segment 4..9 sent before it are lost,
        // and so is the retransmission of 0 if sent before it.
        r.log.on_send(base + 900, base + 1000, ms(110));
        sack(&mut sb, base, base + 1000, base + 900, base + 1000);
        r.on_ack(&ack(210, base), &mut sb);
        let (lost, _) = r.detect_loss(ms(210), Duration::ZERO);
        assert_eq!(lost, 6 * MSS, "0 again and 4..8");
        assert_eq!(r.log.next_lost(&sb, MSS), Some((base, base + 100)));
    }

    #[test]
    fn sequence_numbers_wrap() {
        let base = SeqNumber(u32::MAX - 450);
        let mut r = sent(base);
        r.on_rtt_sample(d(100));
        let mut sb = Scoreboard::default();
        sack(&mut sb, base, base + 1000, base + 500, base + 800);
        r.on_ack(&ack(107, base + 200), &mut sb);
        assert_eq!(r.log.iter().next().map(|s| s.start), Some(base + 200));
        let (lost, _) = r.detect_loss(ms(107), Duration::ZERO);
        assert_eq!(lost, 3 * MSS, "200..500 across the wrap");
        assert_eq!(r.log.next_lost(&sb, 1000), Some((base + 200, base + 300)));
        assert_eq!(r.log.pipe(&sb), 2 * MSS);
        sb.on_cumulative_ack(base + 1000);
        r.on_ack(&ack(110, base + 1000), &mut sb);
        assert!(r.log.is_empty());
    }

    #[test]
    fn log_is_bounded_and_released() {
        let mut log = SentLog::default();
        assert_eq!(log.capacity(), 0, "no allocation before anything is sent");
        let base = sq(5);
        for i in 0..MAX_RECORDS + 100 {
            log.on_send(base + i, base + i + 1, ms(i as u64));
        }
        assert_eq!(log.len(), MAX_RECORDS);
        assert_eq!(log.iter().last().map(|s| s.end), Some(base + MAX_RECORDS + 100));
        // Retransmissions at the bound do not split.
        log.on_send(base + 10, base + 11, ms(1_000_000));
        assert_eq!(log.len(), MAX_RECORDS);
        log.on_cumulative_ack(base + MAX_RECORDS + 100);
        assert!(log.is_empty());
        assert!(log.holds_unused_storage(), "kept until the reclaim timer");
        log.release_if_unused();
        assert_eq!(log.capacity(), 0, "released");
    }

    #[test]
    fn retransmission_splits_records() {
        let mut log = SentLog::default();
        log.on_send(sq(0), sq(300), ms(0));
        log.on_send(sq(100), sq(200), ms(5));
        let v: Vec<_> = log.iter().map(|s| (s.start.0, s.end.0, s.ever_rxt)).collect();
        assert_eq!(v, vec![(0, 100, false), (100, 200, true), (200, 300, false)]);
        // Partly beyond the top: the rest is new.
        log.on_send(sq(250), sq(400), ms(6));
        let v: Vec<_> = log.iter().map(|s| (s.start.0, s.end.0, s.ever_rxt)).collect();
        assert_eq!(
            v,
            vec![
                (0, 100, false),
                (100, 200, true),
                (200, 250, false),
                (250, 300, true),
                (300, 400, false)
            ]
        );
    }

    #[test]
    fn pto_follows_rfc_8985_7_2() {
        assert_eq!(Tlp::pto(Some(d(100)), false, None), d(200));
        assert_eq!(Tlp::pto(Some(d(100)), true, None), d(400));
        assert_eq!(
            Tlp::pto(Some(d(100)), true, Some(d(300))),
            d(300),
            "never after the RTO"
        );
        assert_eq!(Tlp::pto(None, false, None), Duration::from_secs(1));
    }

    #[test]
    fn tlp_episode_ends_per_rfc_8985_7_4() {
        let mut t = Tlp::default();
        t.on_probe(sq(900), sq(1000), true);
        assert_eq!(t.on_ack(sq(950), None, false), TlpOutcome::Pending);
        assert_eq!(
            t.on_ack(sq(1000), None, false),
            TlpOutcome::Pending,
            "either copy"
        );
        assert_eq!(t.on_ack(sq(1100), None, false), TlpOutcome::Repaired);
        assert_eq!(t.end_seq, None);
        t.on_probe(sq(900), sq(1000), true);
        assert_eq!(
            t.on_ack(sq(1000), Some((sq(900), sq(1000))), false),
            TlpOutcome::NoLoss,
            "D-SACK: both copies arrived"
        );
        t.on_probe(sq(900), sq(1000), true);
        assert_eq!(
            t.on_ack(sq(1000), None, true),
            TlpOutcome::NoLoss,
            "a pure dupack"
        );
        t.on_probe(sq(900), sq(1000), false);
        assert_eq!(t.on_ack(sq(1000), None, false), TlpOutcome::NoLoss, "new data");
        assert_eq!(t.on_ack(sq(1000), None, false), TlpOutcome::Pending, "no episode");
    }
}
