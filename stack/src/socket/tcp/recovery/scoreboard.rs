//! The sender's SACK scoreboard (RFC 2018, RFC 6675 section 4): which
//! parts of SND.UNA..SND.NXT the peer has selectively acknowledged, and
//! from that RFC 6675's IsLost, pipe (SetPipe) and NextSeg.
//!
//! The scoreboard keeps SACKed *ranges*, not segments: sorted, disjoint,
//! never adjacent, at most [`MAX_RANGES`] of them, so its memory is
//! bounded whatever the peer sends, and a connection without loss holds
//! none (the list does not allocate until a block arrives). IsLost is
//! monotone in the sequence number (a lower octet has at least as much
//! SACKed above it), so one boundary per call says which holes are lost:
//! every un-SACKed octet below it. HighRxt and RescueRxt are kept here
//! too; HighACK is SND.UNA and HighData SND.NXT (the highest sent), which
//! the caller passes in.

use crate::socket::tcp::seq::SeqNumber;

/// RFC 6675 2 DupThresh: duplicate ACKs (or SACKed segments) that
/// declare a loss.
pub(crate) const DUP_THRESH: usize = 3;

/// SACKed ranges kept at most. A receiver reports at most four blocks per
/// ACK and repeats the newest, but a fast path that reorders a tenth of
/// its segments has dozens of holes in one flight (the receiver's
/// `TcpConfig::max_ooo_ranges` reasoning); 256 holds those and still
/// bounds what a peer can make us hold (8 bytes a range).
pub(crate) const MAX_RANGES: usize = 256;

/// What NextSeg (RFC 6675 4) says to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NextSeg {
    /// Rule 1: a lost segment: `(start, end)` in sequence space.
    Lost(SeqNumber, SeqNumber),
    /// Rule 2: new data, if the window and the application allow.
    NewData,
    /// Rule 3: an un-SACKed segment below the highest SACKed octet that
    /// is not yet deemed lost.
    Unsacked(SeqNumber, SeqNumber),
    /// Rule 4: the rescue retransmission, ending at the highest
    /// outstanding un-SACKed octet.
    Rescue(SeqNumber, SeqNumber),
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Scoreboard {
    /// SACKed `[start, end)` ranges, ascending, disjoint, not adjacent,
    /// all above SND.UNA.
    ranges: Vec<(SeqNumber, SeqNumber)>,
    /// RFC 6675 HighRxt, exclusive: octets below it were retransmitted
    /// in this recovery (`None` until the first retransmission).
    high_rxt: Option<SeqNumber>,
    /// RFC 6675 RescueRxt, exclusive: a rescue may go once SND.UNA
    /// reaches it (`None`: undefined, allowed).
    rescue_rxt: Option<SeqNumber>,
    /// RFC 6675 5.1: after a retransmission timeout every un-SACKed octet
    /// below this is lost.
    lost_to: Option<SeqNumber>,
    /// The last ACK suggests the peer reneged (RFC 2018 8): forget the
    /// SACKs if the retransmission timer fires.
    reneging: bool,
    /// Bumped whenever `ranges` may have changed, so that what was
    /// computed from them can be kept until then (`SentLog::pipe`).
    version: u64,
    /// The span of octets newly SACKed since [`Self::take_changed`] last
    /// took it: what RACK must look at to find the segments an ACK
    /// delivered, instead of every record from SND.UNA (Linux's SACK walk
    /// skips what the previous ACK's blocks covered for the same reason).
    changed: Option<(SeqNumber, SeqNumber)>,
}

impl Scoreboard {
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Changes whenever the SACKed ranges may have.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The SACKed ranges, ascending.
    pub fn ranges(&self) -> &[(SeqNumber, SeqNumber)] {
        &self.ranges
    }

    /// Bytes SACKed above SND.UNA.
    pub fn sacked_bytes(&self) -> usize {
        self.ranges.iter().map(|&(s, e)| e.distance(s)).sum()
    }

    /// The end of the highest SACKed range.
    /// The span of octets newly SACKed since the last call, if any: a
    /// segment that no range covered then and one covers now overlaps it.
    pub fn take_changed(&mut self) -> Option<(SeqNumber, SeqNumber)> {
        self.changed.take()
    }

    pub fn highest_sacked(&self) -> Option<SeqNumber> {
        self.ranges.last().map(|&(_, e)| e)
    }

    pub fn is_sacked(&self, seq: SeqNumber) -> bool {
        self.ranges.iter().any(|&(s, e)| s <= seq && seq < e)
    }

    /// RFC 6675 Update(): take the SACK blocks of an ACK whose cumulative
    /// point is `una`, with `max` the highest sequence number sent.
    /// Returns the bytes newly SACKed. RFC 2018 and Linux
    /// (tcp_is_sackblock_valid): only a block within SND.UNA..SND.NXT that
    /// starts above SND.UNA says something; one that is empty, reaches
    /// beyond what was sent, or starts at or below SND.UNA (a D-SACK, RFC
    /// 2883, or a stale or bogus block: a receiver holding the octet at
    /// SND.UNA would have acknowledged it) is ignored.
    pub fn update(
        &mut self,
        una: SeqNumber,
        max: SeqNumber,
        blocks: impl Iterator<Item = (u32, u32)>,
    ) -> usize {
        let mut newly = 0;
        for (s, e) in blocks {
            let (s, e) = (SeqNumber(s), SeqNumber(e));
            // An empty or reversed block, or one longer than 2^31 (the
            // comparison fails), says nothing.
            if e.diff(s) <= 0 || e > max || s <= una {
                continue;
            }
            newly += self.insert(s, e);
        }
        newly
    }

    /// Add `[s, e)`, merging with what overlaps or touches it. Returns the
    /// bytes that were not SACKed before. Over [`MAX_RANGES`], the highest
    /// range is forgotten: the peer repeats its newest blocks, and an
    /// octet wrongly thought outstanding costs at worst a retransmission,
    /// where one wrongly thought SACKed would wait for the RTO.
    fn insert(&mut self, s: SeqNumber, e: SeqNumber) -> usize {
        // First range ending at or after s (touching counts).
        let first = self
            .ranges
            .iter()
            .position(|&(_, re)| re >= s)
            .unwrap_or(self.ranges.len());
        // Ranges starting at or before e merge in.
        let last = self.ranges[first..]
            .iter()
            .position(|&(rs, _)| rs > e)
            .map_or(self.ranges.len(), |p| first + p);
        let mut already = 0;
        let (mut ns, mut ne) = (s, e);
        for &(rs, re) in &self.ranges[first..last] {
            // Overlap of [rs, re) with [s, e).
            already += re.min(e).distance(rs.max(s));
            ns = ns.min(rs);
            ne = ne.max(re);
        }
        self.ranges.splice(first..last, [(ns, ne)]);
        let newly = e.distance(s) - already;
        // Merging ranges that touch changes nothing SACKed.
        if newly > 0 {
            self.version += 1;
            self.changed = Some(match self.changed {
                Some((cs, ce)) => (cs.min(s), ce.max(e)),
                None => (s, e),
            });
        }
        if self.ranges.len() > MAX_RANGES {
            self.ranges.truncate(MAX_RANGES);
            self.version += 1;
        }
        newly
    }

    /// The cumulative ACK moved to `una`: forget what it covers.
    pub fn on_cumulative_ack(&mut self, una: SeqNumber) {
        if !self.ranges.is_empty() {
            self.version += 1;
            self.ranges.retain(|&(_, e)| e > una);
            if let Some(first) = self.ranges.first_mut() {
                first.0 = first.0.max(una);
            } else {
                // Recovered: an idle connection keeps no list (up to 2 KiB
                // after a reordering episode).
                self.ranges = Vec::new();
            }
        }
        if self.lost_to.is_some_and(|l| l <= una) {
            self.lost_to = None;
        }
    }

    /// RFC 2018 8 (Linux tcp_check_sack_reneging): after a cumulative
    /// ACK to `una`, the octet at `una` is SACKed. A receiver holding it
    /// would have acknowledged it; it must have discarded what it SACKed.
    /// Returns whether that is so, and remembers it for [`Self::on_rto`].
    pub fn check_reneging(&mut self, una: SeqNumber) -> bool {
        self.reneging = self.ranges.first().is_some_and(|&(s, _)| s == una);
        self.reneging
    }

    /// RFC 6675 5.1: a retransmission timeout; every un-SACKed octet below
    /// `max` is lost, and retransmission starts over from SND.UNA. If the
    /// peer reneged, every SACK is forgotten first (RFC 2018 8: "the data
    /// sender SHOULD turn off all of the SACKed bits"; Linux does so only
    /// for a peer that reneged, else the SACKed data is skipped).
    pub fn on_rto(&mut self, max: SeqNumber) {
        if self.reneging {
            self.ranges = Vec::new();
            self.reneging = false;
            self.version += 1;
        }
        self.lost_to = Some(max);
        self.high_rxt = None;
        self.rescue_rxt = None;
    }

    /// The timeout or recovery proved spurious (Linux
    /// tcp_undo_cwnd_reduction with unmark_loss): nothing is lost and
    /// nothing needs retransmitting any more; SACKs stay.
    pub fn clear_lost(&mut self) {
        self.lost_to = None;
        self.high_rxt = None;
        self.rescue_rxt = None;
    }

    /// A new loss recovery begins (RFC 6675 5 step 4).
    pub fn on_recovery_start(&mut self) {
        self.high_rxt = None;
        self.rescue_rxt = None;
    }

    pub fn high_rxt(&self) -> Option<SeqNumber> {
        self.high_rxt
    }

    /// RFC 6675 5 (C.2): `[s, e)` was retransmitted (not as a rescue).
    pub fn on_retransmit(&mut self, e: SeqNumber) {
        self.high_rxt = Some(self.high_rxt.map_or(e, |h| h.max(e)));
    }

    /// RFC 6675 5 (4.3): the first retransmission of a recovery also
    /// defers the rescue until it is acknowledged.
    pub fn on_first_retransmit(&mut self, e: SeqNumber) {
        self.on_retransmit(e);
        self.rescue_rxt = Some(e);
    }

    /// RFC 6675 4 NextSeg rule 4: the rescue went; none again in this
    /// recovery, which ends at `point`.
    pub fn on_rescue(&mut self, point: SeqNumber) {
        self.rescue_rxt = Some(point + 1);
    }

    /// RFC 6675 4 IsLost(seq), for every octet at once: un-SACKed octets
    /// below the returned boundary are lost. An octet is lost when
    /// DupThresh discontiguous SACKed sequences lie above it, or more than
    /// (DupThresh - 1) * SMSS SACKed bytes. Octets within a SACKed range
    /// are not holes, so the boundary can be the start of the range at
    /// which either count is reached, walking down from the top.
    pub fn lost_boundary(&self, mss: usize) -> Option<SeqNumber> {
        let mut bytes = 0usize;
        let mut found = None;
        for (n, &(s, e)) in self.ranges.iter().rev().enumerate() {
            bytes += e.distance(s);
            if n + 1 >= DUP_THRESH || bytes > (DUP_THRESH - 1) * mss {
                found = Some(s);
                break;
            }
        }
        match (found, self.lost_to) {
            (Some(f), Some(l)) => Some(f.max(l)),
            (f, l) => f.or(l),
        }
    }

    /// RFC 6675 IsLost(seq).
    pub fn is_lost(&self, seq: SeqNumber, mss: usize) -> bool {
        self.lost_boundary(mss).is_some_and(|b| seq < b) && !self.is_sacked(seq)
    }

    /// The holes: un-SACKed `[start, end)` ranges from `una` to `max`.
    pub fn holes(&self, una: SeqNumber, max: SeqNumber) -> impl Iterator<Item = (SeqNumber, SeqNumber)> + '_ {
        let mut from = una;
        let mut i = 0;
        core::iter::from_fn(move || loop {
            if from >= max {
                return None;
            }
            match self.ranges.get(i) {
                Some(&(s, e)) => {
                    i += 1;
                    let hole = (from, s.min(max));
                    from = from.max(e);
                    if hole.0 < hole.1 {
                        return Some(hole);
                    }
                }
                None => {
                    let hole = (from, max);
                    from = max;
                    return Some(hole);
                }
            }
        })
    }

    /// Un-SACKed octets from `una` to `max` deemed lost (IsLost) and not
    /// yet retransmitted (below `rxt_to`).
    pub fn lost_bytes(&self, una: SeqNumber, max: SeqNumber, rxt_to: Option<SeqNumber>, mss: usize) -> usize {
        let Some(b) = self.lost_boundary(mss) else {
            return 0;
        };
        let from = rxt_to.map_or(una, |r| r.max(una));
        self.holes(from, max).map(|(s, e)| e.min(b).distance(s)).sum()
    }

    /// RFC 6675 SetPipe(): octets between `una` and `max` that are not
    /// SACKed count once if not lost, and once more if retransmitted.
    /// `rxt_to` is where retransmission has got to (HighRxt, or SND.NXT
    /// when retransmitting after a timeout), if anywhere.
    pub fn pipe(&self, una: SeqNumber, max: SeqNumber, rxt_to: Option<SeqNumber>, mss: usize) -> usize {
        if self.ranges.is_empty() && self.lost_to.is_none() {
            // Nothing SACKed or lost: the cheap case without loss.
            return max.distance(una) + rxt_to.map_or(0, |r| r.min(max).distance(una));
        }
        let lost = self.lost_boundary(mss);
        let mut pipe = 0;
        for (s, e) in self.holes(una, max) {
            let not_lost_from = lost.map_or(s, |b| b.max(s));
            pipe += e.distance(not_lost_from);
            if let Some(r) = rxt_to {
                pipe += r.min(e).distance(s);
            }
        }
        pipe
    }

    /// RFC 6675 4 NextSeg(), rules 1, 3 and 4 (the caller judges rule 2,
    /// new data). Segments are at most `seg` octets and never cover
    /// SACKed octets. `point` is the RecoveryPoint.
    pub fn next_seg(
        &self,
        una: SeqNumber,
        max: SeqNumber,
        seg: usize,
        mss: usize,
        new_data: bool,
    ) -> Option<NextSeg> {
        let highest = self.highest_sacked();
        let from = self.high_rxt.map_or(una, |h| h.max(una));
        let lost = self.lost_boundary(mss);
        // Rule 1: the first lost octet above HighRxt and below the
        // highest SACKed octet (1.a, 1.b), lost (1.c). After a timeout
        // (RFC 6675 5.1) everything un-SACKed is lost, up to `lost_to`.
        let limit = match (highest, self.lost_to) {
            (Some(h), Some(l)) => Some(h.max(l)),
            (h, l) => h.or(l),
        };
        let mut rule3 = None;
        for (s, e) in self.holes(from, max) {
            if limit.is_none_or(|l| s >= l) {
                break;
            }
            if let Some(b) = lost.filter(|&b| s < b) {
                return Some(NextSeg::Lost(s, e.min(s + seg).min(b)));
            }
            if rule3.is_none() && highest.is_some_and(|h| s < h) {
                rule3 = Some((s, e.min(s + seg)));
            }
        }
        if new_data {
            return Some(NextSeg::NewData);
        }
        if let Some((s, e)) = rule3 {
            return Some(NextSeg::Unsacked(s, e));
        }
        // Rule 4: once per recovery, after HighACK passed RescueRxt. It is
        // meant for losses at the end of the window, above the highest
        // SACK, where nothing else can detect them: the rescued octet must
        // not have been retransmitted already (a literal reading would
        // resend the last retransmitted hole a second time).
        if self.rescue_rxt.is_none_or(|r| una >= r) {
            if let Some((s, e)) = self.holes(from, max).last() {
                let start = s.max(e - seg.min(e.distance(s)));
                return Some(NextSeg::Rescue(start, e));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: usize = 100;

    fn sq(n: u32) -> SeqNumber {
        SeqNumber(n)
    }

    fn sb(blocks: &[(u32, u32)]) -> Scoreboard {
        let mut s = Scoreboard::default();
        s.update(sq(1000), sq(3000), blocks.iter().copied());
        s
    }

    #[test]
    fn overlapping_and_adjacent_blocks_merge() {
        let mut s = Scoreboard::default();
        assert_eq!(s.update(sq(1000), sq(3000), [(1200, 1300)].into_iter()), 100);
        assert_eq!(
            s.update(sq(1000), sq(3000), [(1300, 1400)].into_iter()),
            100,
            "adjacent"
        );
        assert_eq!(s.ranges(), &[(sq(1200), sq(1400))]);
        assert_eq!(
            s.update(sq(1000), sq(3000), [(1250, 1350)].into_iter()),
            0,
            "inside: nothing new"
        );
        assert_eq!(
            s.update(sq(1000), sq(3000), [(1600, 1700), (1100, 1500)].into_iter()),
            300
        );
        assert_eq!(s.ranges(), &[(sq(1100), sq(1500)), (sq(1600), sq(1700))]);
        assert_eq!(
            s.update(sq(1000), sq(3000), [(1050, 1800)].into_iter()),
            250,
            "covers both"
        );
        assert_eq!(s.ranges(), &[(sq(1050), sq(1800))]);
        assert_eq!(s.sacked_bytes(), 750);
    }

    #[test]
    fn out_of_range_blocks_are_ignored() {
        let mut s = Scoreboard::default();
        let blocks = [
            (900, 1000),  // below SND.UNA (a D-SACK)
            (2900, 3100), // beyond SND.NXT
            (1500, 1400), // reversed
            (1500, 1500), // empty
            (5000, 4000), // far out
        ];
        assert_eq!(s.update(sq(1000), sq(3000), blocks.into_iter()), 0);
        assert!(s.is_empty());
        // Straddling or starting at SND.UNA: bogus.
        assert_eq!(
            s.update(sq(1000), sq(3000), [(900, 1100), (1000, 1100)].into_iter()),
            0
        );
        assert!(s.is_empty());
        // Up to SND.NXT: fine.
        assert_eq!(s.update(sq(1000), sq(3000), [(2900, 3000)].into_iter()), 100);
    }

    #[test]
    fn ranges_are_bounded() {
        let mut s = Scoreboard::default();
        let blocks = (0..MAX_RANGES as u32 + 50).map(|i| (2000 + 20 * i, 2010 + 20 * i));
        s.update(sq(1000), sq(100_000), blocks);
        assert_eq!(s.ranges().len(), MAX_RANGES);
        assert_eq!(s.ranges()[0], (sq(2000), sq(2010)), "the lowest are kept");
    }

    #[test]
    fn cumulative_ack_trims() {
        let mut s = sb(&[(1200, 1300), (1400, 1500)]);
        s.on_cumulative_ack(sq(1250));
        assert_eq!(s.ranges(), &[(sq(1250), sq(1300)), (sq(1400), sq(1500))]);
        s.on_cumulative_ack(sq(1500));
        assert!(s.is_empty());
    }

    #[test]
    fn is_lost_by_bytes_or_by_ranges() {
        // Two segments SACKed above 1000: not enough (2 * SMSS is not more).
        let s = sb(&[(1100, 1300)]);
        assert!(!s.is_lost(sq(1000), MSS));
        // Three segments' worth: more than (DupThresh - 1) * SMSS.
        let s = sb(&[(1100, 1400)]);
        assert!(s.is_lost(sq(1000), MSS));
        assert!(!s.is_lost(sq(1100), MSS), "SACKed is not lost");
        assert!(!s.is_lost(sq(1400), MSS), "nothing above");
        // Three discontiguous small ranges: DupThresh sequences above.
        let s = sb(&[(1100, 1110), (1200, 1210), (1300, 1310)]);
        assert!(s.is_lost(sq(1000), MSS));
        assert!(s.is_lost(sq(1099), MSS));
        assert!(!s.is_lost(sq(1150), MSS), "only two ranges above");
    }

    #[test]
    fn pipe_counts_holes_not_lost_plus_retransmitted() {
        // Sent 1000..2000; SACKed 1100..1400 and 1500..1600.
        let mut s = Scoreboard::default();
        s.update(sq(1000), sq(2000), [(1100, 1400), (1500, 1600)].into_iter());
        // Lost: holes below 1100 (3 segments above), i.e. 1000..1100, and
        // 1400..1500 (only one segment above: not lost). Not lost:
        // 1400..1500 and 1600..2000.
        assert_eq!(s.pipe(sq(1000), sq(2000), None, MSS), 100 + 400);
        assert_eq!(s.lost_bytes(sq(1000), sq(2000), None, MSS), 100);
        assert_eq!(s.lost_bytes(sq(1000), sq(2000), Some(sq(1050)), MSS), 50);
        // 1000..1100 retransmitted: counts once more.
        assert_eq!(s.pipe(sq(1000), sq(2000), Some(sq(1100)), MSS), 600);
        // Cheap case: nothing SACKed.
        let e = Scoreboard::default();
        assert_eq!(e.pipe(sq(1000), sq(2000), None, MSS), 1000);
    }

    #[test]
    fn next_seg_rules() {
        // Sent 1000..2000; holes 1000..1100, 1400..1500, 1600..2000.
        let mut s = Scoreboard::default();
        s.update(sq(1000), sq(2000), [(1100, 1400), (1500, 1600)].into_iter());
        let next = |s: &Scoreboard, new| s.next_seg(sq(1000), sq(2000), MSS, MSS, new);
        assert_eq!(next(&s, true), Some(NextSeg::Lost(sq(1000), sq(1100))));
        s.on_first_retransmit(sq(1100));
        // Rule 2 before rule 3.
        assert_eq!(next(&s, true), Some(NextSeg::NewData));
        assert_eq!(next(&s, false), Some(NextSeg::Unsacked(sq(1400), sq(1500))));
        // More SACKs make 1400..1500 lost too.
        s.update(sq(1000), sq(2000), [(1700, 1800), (1900, 2000)].into_iter());
        assert_eq!(next(&s, true), Some(NextSeg::Lost(sq(1400), sq(1500))));
        s.on_retransmit(sq(1500));
        // 1600..1700 has two ranges, 200 bytes above: not lost.
        assert!(!s.is_lost(sq(1600), MSS));
        assert_eq!(next(&s, true), Some(NextSeg::NewData));
        assert_eq!(next(&s, false), Some(NextSeg::Unsacked(sq(1600), sq(1700))));
        s.on_retransmit(sq(1700));
        assert_eq!(next(&s, false), Some(NextSeg::Unsacked(sq(1800), sq(1900))));
        s.on_retransmit(sq(1900));
        // Rules 1-3 exhausted; the rescue waits for SND.UNA to pass the
        // first retransmission.
        assert_eq!(next(&s, false), None);
        assert_eq!(
            s.next_seg(sq(1100), sq(2100), MSS, MSS, false),
            Some(NextSeg::Rescue(sq(2000), sq(2100)))
        );
        s.on_rescue(sq(2100));
        assert_eq!(
            s.next_seg(sq(1100), sq(2100), MSS, MSS, false),
            None,
            "one rescue per recovery"
        );
    }

    #[test]
    fn after_rto_everything_unsacked_is_lost() {
        let mut s = Scoreboard::default();
        s.update(sq(1000), sq(2000), [(1500, 1600)].into_iter());
        s.on_rto(sq(2000));
        assert!(s.is_lost(sq(1000), MSS));
        assert!(s.is_lost(sq(1900), MSS));
        assert_eq!(s.pipe(sq(1000), sq(2000), None, MSS), 0);
        assert_eq!(
            s.next_seg(sq(1000), sq(2000), MSS, MSS, true),
            Some(NextSeg::Lost(sq(1000), sq(1100)))
        );
        s.on_retransmit(sq(1500));
        assert_eq!(
            s.next_seg(sq(1000), sq(2000), MSS, MSS, true),
            Some(NextSeg::Lost(sq(1600), sq(1700))),
            "SACKed data is skipped"
        );
        s.on_cumulative_ack(sq(2000));
        assert!(!s.is_lost(sq(2000), MSS));
    }

    #[test]
    fn reneging_forgets_sacks_on_rto() {
        let mut s = sb(&[(1100, 1400)]);
        s.on_cumulative_ack(sq(1050));
        assert!(!s.check_reneging(sq(1050)));
        // The peer acknowledged up to SACKed data, and no further.
        s.on_cumulative_ack(sq(1100));
        assert!(s.check_reneging(sq(1100)));
        s.on_rto(sq(3000));
        assert!(s.is_empty());
        assert!(s.is_lost(sq(1100), MSS));
        // Without reneging the SACKs stay.
        let mut s = sb(&[(1100, 1400)]);
        s.on_rto(sq(3000));
        assert_eq!(s.sacked_bytes(), 300);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let una = SeqNumber(u32::MAX - 1500);
        let mut s = Scoreboard::default();
        let b = |o: usize| (una + o).0;
        s.update(
            una,
            una + 3000,
            [(b(1000), b(1400)), (b(1500), b(2000))].into_iter(),
        );
        assert_eq!(s.sacked_bytes(), 900);
        assert!(s.is_lost(una, MSS));
        let holes: Vec<_> = s.holes(una, una + 3000).collect();
        assert_eq!(
            holes,
            vec![
                (una, una + 1000),
                (una + 1400, una + 1500),
                (una + 2000, una + 3000)
            ]
        );
        s.on_cumulative_ack(una + 1450);
        assert_eq!(s.ranges(), &[(una + 1500, una + 2000)]);
    }

    #[test]
    fn holes_between_ranges() {
        let s = sb(&[(1100, 1200), (1300, 1400)]);
        let holes: Vec<_> = s.holes(sq(1000), sq(1500)).collect();
        assert_eq!(
            holes,
            vec![(sq(1000), sq(1100)), (sq(1200), sq(1300)), (sq(1400), sq(1500))]
        );
        let holes: Vec<_> = s.holes(sq(1150), sq(1350)).collect();
        assert_eq!(holes, vec![(sq(1200), sq(1300))]);
    }
}
