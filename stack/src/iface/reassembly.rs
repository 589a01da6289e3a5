//! IPv4 fragment reassembly (RFC 791 3.2, RFC 815, RFC 1122 3.3.2).
//!
//! Fragments are grouped by the tuple RFC 791 names as identifying a
//! datagram: source, destination, protocol and identification ([`FragKey`]).
//! Each datagram in progress keeps one contiguous buffer, which grows to the
//! highest fragment end seen, and the sorted list of byte ranges received.
//! When the fragment with MF=0 has told us the total length and the ranges
//! have merged into a single `[0, end)`, the buffer *is* the datagram's
//! payload and is handed to the caller without another copy.
//!
//! # Limits
//!
//! Everything an attacker can make us hold is bounded by
//! [`ReassemblyConfig`]: the number of datagrams in progress
//! (`max_datagrams`), the bytes of buffer held across all of them
//! (`budget_bytes`, counted as the capacity actually allocated), the number
//! of fragments accepted per datagram (`max_fragments`, which also bounds
//! the range list), and the time a datagram may stay incomplete (`timeout`,
//! measured from its *first* fragment: RFC 791's reassembly timer; RFC 791
//! would raise it to each fragment's TTL, but like Linux we never extend it,
//! so a trickle of fragments cannot keep a reassembly alive for ever).
//! When a limit refuses a fragment, that fragment alone is dropped
//! ([`FragDrop::BudgetExceeded`]) and reassemblies already in progress are
//! left to finish: we do not evict older datagrams to make room, which would
//! let a flood of fresh fragments starve every legitimate one.
//!
//! # Overlapping fragments
//!
//! RFC 791's reassembly procedure simply copies each fragment into the
//! buffer, so where fragments overlap the later one wins, and RFC 815 takes
//! overlap for granted ("fragments may overlap"): a datagram re-fragmented
//! along a different path legitimately repeats bytes. But when the
//! overlapping bytes *differ*, the result depends on arrival order, which is
//! exactly the ambiguity the teardrop and overlapping-fragment attacks
//! exploit (RFC 1858 section 4: a later fragment rewriting the TCP header a
//! firewall already checked). RFC 5722 answers this for IPv6 by discarding
//! the whole datagram on any overlap, and Linux (net/ipv4/inet_fragment.c,
//! since 4.19) applies the same rule to IPv4, dropping only exact
//! duplicates.
//!
//! We take the middle ground that keeps both properties:
//!
//! - an overlap whose bytes are identical to what we hold is benign: the
//!   fragment is accepted and any bytes it adds beyond what we hold are
//!   kept. If it adds nothing (an exact duplicate, or one inside held data),
//!   it is refused with [`FragDrop::Duplicate`] and nothing changes;
//! - an overlap whose bytes differ anywhere discards the whole datagram
//!   ([`FragDrop::OverlapConflict`]). No order of arrival can then produce
//!   two different datagrams, so nothing downstream can be shown a
//!   different payload than a monitor saw.
//!
//! # Timeouts
//!
//! All datagrams share one timeout, but we keep deadlines in a
//! `BTreeSet<(deadline, key)>` rather than an arrival-ordered queue so that
//! completed and discarded datagrams are removed at once: the set never
//! holds more than `max_datagrams` entries, and the next deadline is its
//! first element. When a datagram whose fragment zero arrived times out, the
//! caller gets that fragment's IP header and first 8 data bytes to build the
//! ICMP Time Exceeded message (code 1) RFC 792 describes; RFC 792 says none
//! need be sent if fragment zero never came, and RFC 1122 3.3.2 makes
//! sending it a MAY.
//!
//! `now` is used only to start the timer of a new reassembly: the caller
//! should run [`Reassembler::handle_timeout`] whenever
//! [`Reassembler::poll_timeout`] has passed.

use crate::config::ReassemblyConfig;
use crate::time::{Duration, Instant};
use core::fmt;
use core::net::Ipv4Addr;
use std::collections::{BTreeSet, HashMap};

/// The largest IPv4 payload: the 16-bit total length (RFC 791 3.1) less a
/// 20-byte header. A fragment ending past it is the "ping of death".
pub const MAX_PAYLOAD: usize = 65535 - 20;

/// The largest IPv4 header (IHL is 4 bits of 32-bit words).
const MAX_HEADER: usize = 60;

/// The bytes of original payload an ICMP error quotes (RFC 792: "the
/// internet header plus the first 64 bits of the original datagram's data").
const QUOTED_DATA: usize = 8;

/// What identifies the fragments of one datagram (RFC 791 3.2).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct FragKey {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub ident: u16,
}

/// Why a fragment was not accepted. Some reasons drop only the fragment and
/// leave the reassembly running; others discard the whole datagram
/// ([`FragDrop::discards_datagram`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FragDrop {
    /// Every byte of the fragment is already held, with the same content.
    /// The fragment is ignored; reassembly continues.
    Duplicate,
    /// The fragment overlaps held data with different bytes. The whole
    /// datagram is discarded.
    OverlapConflict,
    /// Holding the fragment would exceed `budget_bytes`, or it would start a
    /// reassembly beyond `max_datagrams`. Only the fragment is dropped.
    BudgetExceeded,
    /// The fragment ends past [`MAX_PAYLOAD`]; or it is not the last one
    /// (MF=1) and is empty or not a multiple of 8 bytes long; or its offset
    /// is not a multiple of 8; or it disagrees about where the datagram ends
    /// (a second last fragment ending elsewhere, or data past a known end).
    /// The whole datagram is discarded.
    BadLength,
    /// The datagram would take more than `max_fragments` fragments. The
    /// whole datagram is discarded.
    TooMany,
}

impl FragDrop {
    /// Whether this drop also discarded the reassembly the fragment belonged
    /// to (if there was one).
    pub fn discards_datagram(self) -> bool {
        match self {
            FragDrop::Duplicate | FragDrop::BudgetExceeded => false,
            FragDrop::OverlapConflict | FragDrop::BadLength | FragDrop::TooMany => true,
        }
    }
}

impl fmt::Display for FragDrop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FragDrop::Duplicate => "duplicate fragment",
            FragDrop::OverlapConflict => "fragment overlaps held data with different bytes",
            FragDrop::BudgetExceeded => "reassembly memory or datagram limit reached",
            FragDrop::BadLength => "fragment offset or length is inconsistent",
            FragDrop::TooMany => "too many fragments for one datagram",
        })
    }
}

impl std::error::Error for FragDrop {}

/// A datagram given up on by [`Reassembler::handle_timeout`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    pub key: FragKey,
    /// Present when fragment zero had arrived: what an ICMP Time Exceeded
    /// (code 1, "fragment reassembly time exceeded") must quote.
    pub first_fragment: Option<FirstFragment>,
}

/// The parts of fragment zero that RFC 792 says an ICMP error quotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstFragment {
    /// The IP header (with options) as fragment zero carried it; at most 60
    /// bytes.
    pub header: Vec<u8>,
    /// The first 8 bytes of its payload (fewer only if it was shorter).
    pub data: Vec<u8>,
}

/// Fragment zero's IP header, kept inline so a reassembly costs no extra
/// allocation for it.
#[derive(Clone, Copy)]
struct HeaderCopy {
    bytes: [u8; MAX_HEADER],
    len: u8,
}

/// One datagram being reassembled.
struct Datagram {
    deadline: Instant,
    /// Data received so far, at its offsets. Bytes outside `ranges` are
    /// zero filler and never read. `buf.len()` is the highest end held.
    buf: Vec<u8>,
    /// Byte ranges `[start, end)` received: sorted, disjoint and not
    /// touching (neighbours are merged).
    ///
    /// RFC 815 keeps the complement, a list of holes, so that each
    /// fragment only has to be checked against the holes it fills. A list
    /// of received ranges is the same information; keeping ranges makes
    /// the overlap check (compare against what we hold) direct, and
    /// completion is "one range, `[0, end)`", RFC 815's "hole list empty".
    /// Its length is bounded by the fragments accepted.
    ranges: Vec<(usize, usize)>,
    /// The datagram's payload length, known once the MF=0 fragment arrives.
    end: Option<usize>,
    /// Fragments accepted (those that added bytes or the end).
    fragments: usize,
    first_header: Option<HeaderCopy>,
}

/// What a fragment would change, decided before anything is changed.
struct Plan {
    /// The fragment carries bytes we do not hold.
    adds_bytes: bool,
    /// The fragment tells us the end for the first time.
    sets_end: bool,
}

impl Datagram {
    fn new(deadline: Instant) -> Self {
        Datagram {
            deadline,
            buf: Vec::new(),
            ranges: Vec::new(),
            end: None,
            fragments: 0,
            first_header: None,
        }
    }

    /// Check a fragment `[offset, end)` against what we hold without
    /// changing anything.
    fn plan(
        &self,
        offset: usize,
        end: usize,
        more: bool,
        payload: &[u8],
        max_fragments: usize,
    ) -> Result<Plan, FragDrop> {
        // RFC 791 3.2: only the last fragment (MF=0) says where the datagram
        // ends. Two last fragments that disagree, or data beyond the end,
        // leave no consistent datagram (Linux: "the segment is corrupted").
        if more {
            if self.end.is_some_and(|known| end > known) {
                return Err(FragDrop::BadLength);
            }
        } else if self.end.is_some_and(|known| known != end) || self.buf.len() > end {
            return Err(FragDrop::BadLength);
        }

        // Compare against every held range the fragment overlaps.
        let mut covered = 0;
        let first = self.ranges.partition_point(|&(_, e)| e <= offset);
        for &(start, stop) in &self.ranges[first..] {
            if start >= end {
                break;
            }
            let (lo, hi) = (start.max(offset), stop.min(end));
            if self.buf[lo..hi] != payload[lo - offset..hi - offset] {
                return Err(FragDrop::OverlapConflict);
            }
            covered += hi - lo;
        }

        let adds_bytes = covered < end - offset;
        let sets_end = !more && self.end.is_none();
        if !adds_bytes && !sets_end {
            return Err(FragDrop::Duplicate);
        }
        if self.fragments >= max_fragments {
            return Err(FragDrop::TooMany);
        }
        Ok(Plan { adds_bytes, sets_end })
    }

    /// The buffer capacity to have once data up to `end` is held. When the
    /// datagram's length is known (this fragment or an earlier one was the
    /// last), exactly that; otherwise grow geometrically, so in-order
    /// arrival does not reallocate and copy on every fragment. `exact` asks
    /// for the minimum instead, for when the budget is tight.
    fn capacity_for(&self, end: usize, more: bool, exact: bool) -> usize {
        let cap = self.buf.capacity();
        if end <= cap {
            return cap;
        }
        if exact || !more {
            return end;
        }
        match self.end {
            Some(total) => total,
            None => end.max(cap.saturating_mul(2)).min(MAX_PAYLOAD),
        }
    }

    /// Record `[offset, end)`, merging it with the ranges it overlaps or
    /// touches.
    fn add_range(&mut self, offset: usize, end: usize) {
        let first = self.ranges.partition_point(|&(_, e)| e < offset);
        let mut last = first;
        let (mut lo, mut hi) = (offset, end);
        while let Some(&(start, stop)) = self.ranges.get(last) {
            if start > end {
                break;
            }
            lo = lo.min(start);
            hi = hi.max(stop);
            last += 1;
        }
        self.ranges.splice(first..last, [(lo, hi)]);
    }

    fn is_complete(&self) -> bool {
        match self.end {
            Some(0) => self.ranges.is_empty(),
            Some(end) => self.ranges.as_slice() == [(0, end)],
            None => false,
        }
    }

    fn first_fragment(&self) -> Option<FirstFragment> {
        let header = self.first_header?;
        let held = match self.ranges.first() {
            Some(&(0, stop)) => stop,
            _ => 0,
        };
        Some(FirstFragment {
            header: header.bytes[..usize::from(header.len)].to_vec(),
            data: self.buf[..held.min(QUOTED_DATA)].to_vec(),
        })
    }
}

/// Reassembles fragmented IPv4 datagrams within the limits of a
/// [`ReassemblyConfig`].
///
/// Feed it every fragment with [`insert`](Self::insert); arrange to call
/// [`handle_timeout`](Self::handle_timeout) once
/// [`poll_timeout`](Self::poll_timeout) has passed.
pub struct Reassembler {
    max_datagrams: usize,
    budget_bytes: usize,
    timeout: Duration,
    max_fragments: usize,
    datagrams: HashMap<FragKey, Datagram>,
    /// (deadline, key) of every datagram in `datagrams`.
    deadlines: BTreeSet<(Instant, FragKey)>,
    /// Sum of the buffer capacities of `datagrams`.
    bytes_held: usize,
}

impl Reassembler {
    pub fn new(config: &ReassemblyConfig) -> Self {
        Reassembler {
            max_datagrams: config.max_datagrams,
            budget_bytes: config.budget_bytes,
            timeout: config.timeout,
            max_fragments: config.max_fragments,
            datagrams: HashMap::new(),
            deadlines: BTreeSet::new(),
            bytes_held: 0,
        }
    }

    /// Take one fragment: `offset` in bytes (the header's fragment offset
    /// times 8), `more` its MF flag, `header` its IP header bytes (kept only
    /// for fragment zero, to quote in an ICMP Time Exceeded), `payload` the
    /// bytes after the header.
    ///
    /// Returns `Ok(Some(payload))` when this fragment completes the
    /// datagram: the whole reassembled payload, whose memory then leaves the
    /// budget. `Ok(None)` when it was kept and the datagram is incomplete.
    /// `Err` when it was dropped; see [`FragDrop`] for which reasons also
    /// discard the datagram. An unfragmented datagram (offset 0, MF=0) with
    /// no reassembly under its key is returned as it is.
    pub fn insert(
        &mut self,
        now: Instant,
        key: FragKey,
        offset: usize,
        more: bool,
        header: &[u8],
        payload: &[u8],
    ) -> Result<Option<Vec<u8>>, FragDrop> {
        let end = match offset.checked_add(payload.len()) {
            // RFC 791 3.1: offsets count 8-byte units and every fragment but
            // the last carries a multiple of 8 bytes, or the next offset
            // could not be expressed. An empty non-last fragment says
            // nothing and costs a range slot.
            Some(end)
                if end <= MAX_PAYLOAD
                    && offset & 7 == 0
                    && !(more && (payload.is_empty() || payload.len() & 7 != 0)) =>
            {
                end
            }
            _ => {
                self.discard(&key);
                return Err(FragDrop::BadLength);
            }
        };

        let Some(datagram) = self.datagrams.get_mut(&key) else {
            if offset == 0 && !more {
                // Not a fragment at all: nothing to hold.
                return Ok(Some(payload.to_vec()));
            }
            return self.start(now, key, offset, end, more, header, payload);
        };

        let plan = match datagram.plan(offset, end, more, payload, self.max_fragments) {
            Ok(plan) => plan,
            Err(reason) => {
                if reason.discards_datagram() {
                    self.discard(&key);
                }
                return Err(reason);
            }
        };
        let old_cap = datagram.buf.capacity();
        let others = self.bytes_held - old_cap;
        let cap = if plan.adds_bytes {
            Self::fit_budget(datagram, others, self.budget_bytes, end, more)?
        } else {
            old_cap
        };
        Self::apply(datagram, plan, cap, offset, end, header, payload);
        self.bytes_held = self.bytes_held - old_cap + datagram.buf.capacity();

        if datagram.is_complete() {
            let deadline = datagram.deadline;
            self.deadlines.remove(&(deadline, key));
            let buf = self.datagrams.remove(&key).map(|d| d.buf);
            let buf = buf.unwrap_or_default();
            self.bytes_held -= buf.capacity();
            return Ok(Some(buf));
        }
        Ok(None)
    }

    /// The first fragment of a datagram we hold nothing of.
    #[allow(clippy::too_many_arguments)]
    fn start(
        &mut self,
        now: Instant,
        key: FragKey,
        offset: usize,
        end: usize,
        more: bool,
        header: &[u8],
        payload: &[u8],
    ) -> Result<Option<Vec<u8>>, FragDrop> {
        if self.datagrams.len() >= self.max_datagrams {
            return Err(FragDrop::BudgetExceeded);
        }
        let mut datagram = Datagram::new(now + self.timeout);
        let plan = datagram.plan(offset, end, more, payload, self.max_fragments)?;
        let cap = if plan.adds_bytes {
            Self::fit_budget(&datagram, self.bytes_held, self.budget_bytes, end, more)?
        } else {
            0
        };
        Self::apply(&mut datagram, plan, cap, offset, end, header, payload);
        if datagram.is_complete() {
            // Only reachable for a datagram of one fragment, which `insert`
            // already returned; kept so no input can strand a full buffer.
            return Ok(Some(datagram.buf));
        }
        self.bytes_held += datagram.buf.capacity();
        self.deadlines.insert((datagram.deadline, key));
        self.datagrams.insert(key, datagram);
        Ok(None)
    }

    /// The capacity `datagram` may grow to for data up to `end`, given that
    /// the other reassemblies hold `others` bytes: room to grow if the
    /// budget allows, else just enough, else the fragment is refused.
    fn fit_budget(
        datagram: &Datagram,
        others: usize,
        budget: usize,
        end: usize,
        more: bool,
    ) -> Result<usize, FragDrop> {
        [false, true]
            .into_iter()
            .map(|exact| datagram.capacity_for(end, more, exact))
            .find(|&cap| others.saturating_add(cap) <= budget)
            .ok_or(FragDrop::BudgetExceeded)
    }

    /// Carry out a plan that passed every check, growing the buffer to `cap`.
    fn apply(
        datagram: &mut Datagram,
        plan: Plan,
        cap: usize,
        offset: usize,
        end: usize,
        header: &[u8],
        payload: &[u8],
    ) {
        if plan.adds_bytes {
            if end > datagram.buf.len() {
                datagram.buf.reserve_exact(cap.saturating_sub(datagram.buf.len()));
                datagram.buf.resize(end, 0);
            }
            // Where this overlaps held data the bytes are identical (checked
            // in `plan`), so copying the whole fragment is safe.
            datagram.buf[offset..end].copy_from_slice(payload);
            datagram.add_range(offset, end);
            datagram.fragments += 1;
        } else if plan.sets_end {
            // An empty last fragment, or one inside held data: it adds the
            // end, which is state worth a fragment slot too.
            datagram.fragments += 1;
        }
        if plan.sets_end {
            datagram.end = Some(end);
        }
        if offset == 0 && datagram.first_header.is_none() {
            let len = header.len().min(MAX_HEADER);
            let mut bytes = [0; MAX_HEADER];
            bytes[..len].copy_from_slice(&header[..len]);
            datagram.first_header = Some(HeaderCopy {
                bytes,
                len: len as u8,
            });
        }
    }

    /// Drop the reassembly under `key`, if any, releasing its memory.
    fn discard(&mut self, key: &FragKey) {
        if let Some(datagram) = self.datagrams.remove(key) {
            self.deadlines.remove(&(datagram.deadline, *key));
            self.bytes_held -= datagram.buf.capacity();
        }
    }

    /// When the oldest reassembly times out, if any are in progress.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.first().map(|&(deadline, _)| deadline)
    }

    /// Give up on every datagram whose deadline is at or before `now`,
    /// telling `expired` about each (oldest first).
    pub fn handle_timeout(&mut self, now: Instant, mut expired: impl FnMut(Expired)) {
        while let Some(&(deadline, key)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some(datagram) = self.datagrams.remove(&key) {
                self.bytes_held -= datagram.buf.capacity();
                expired(Expired {
                    key,
                    first_fragment: datagram.first_fragment(),
                });
            }
        }
    }

    /// Datagrams being reassembled.
    pub fn len(&self) -> usize {
        self.datagrams.len()
    }

    /// Bytes of buffer held for reassembly: what counts against
    /// `budget_bytes`.
    pub fn bytes_held(&self) -> usize {
        self.bytes_held
    }
}

impl fmt::Debug for Reassembler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reassembler")
            .field("datagrams", &self.datagrams.len())
            .field("bytes_held", &self.bytes_held)
            .field("next_deadline", &self.poll_timeout())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: Instant = Instant::ZERO;
    const HEADER: [u8; 20] = [
        0x45, 0, 0, 0, 0x12, 0x34, 0x20, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];

    fn key(ident: u16) -> FragKey {
        FragKey {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(10, 0, 0, 2),
            protocol: 17,
            ident,
        }
    }

    fn config() -> ReassemblyConfig {
        ReassemblyConfig {
            max_datagrams: 8,
            budget_bytes: 1 << 20,
            timeout: Duration::from_secs(30),
            max_fragments: 64,
        }
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    /// Cut `payload` into fragments of `size` bytes (a multiple of 8):
    /// (offset, more, bytes).
    fn fragment(payload: &[u8], size: usize) -> Vec<(usize, bool, &[u8])> {
        let chunks: Vec<&[u8]> = payload.chunks(size).collect();
        let n = chunks.len();
        chunks
            .into_iter()
            .enumerate()
            .map(|(i, c)| (i * size, i + 1 < n, c))
            .collect()
    }

    /// Insert fragments in the given order; return the results.
    fn feed(
        r: &mut Reassembler,
        k: FragKey,
        frags: &[(usize, bool, &[u8])],
    ) -> Vec<Result<Option<Vec<u8>>, FragDrop>> {
        frags
            .iter()
            .map(|&(off, more, bytes)| r.insert(T0, k, off, more, &HEADER, bytes))
            .collect()
    }

    /// Every result but the last is Ok(None) and the last is the payload.
    fn assert_completes(results: &[Result<Option<Vec<u8>>, FragDrop>], payload: &[u8]) {
        let (last, rest) = results.split_last().unwrap();
        for r in rest {
            assert_eq!(r, &Ok(None));
        }
        assert_eq!(last.as_ref().unwrap().as_deref(), Some(payload));
    }

    fn assert_empty(r: &Reassembler) {
        assert_eq!(r.len(), 0);
        assert_eq!(r.bytes_held(), 0);
        assert_eq!(r.poll_timeout(), None);
    }

    #[test]
    fn in_order() {
        let mut r = Reassembler::new(&config());
        let payload = data(4000);
        let results = feed(&mut r, key(1), &fragment(&payload, 1480));
        assert_completes(&results, &payload);
        assert_empty(&r);
    }

    #[test]
    fn reverse_order() {
        let mut r = Reassembler::new(&config());
        let payload = data(10_000);
        let mut frags = fragment(&payload, 1480);
        frags.reverse();
        let results = feed(&mut r, key(1), &frags);
        assert_completes(&results, &payload);
        assert_empty(&r);
    }

    #[test]
    fn shuffled() {
        let mut r = Reassembler::new(&config());
        let payload = data(9000);
        let frags = fragment(&payload, 1024); // 9 fragments
        let order = [4, 8, 0, 6, 2, 7, 1, 5, 3];
        let shuffled: Vec<_> = order.iter().map(|&i| frags[i]).collect();
        let results = feed(&mut r, key(1), &shuffled);
        assert_completes(&results, &payload);
        assert_empty(&r);
    }

    #[test]
    fn unfragmented_datagram_passes_through() {
        let mut r = Reassembler::new(&config());
        assert_eq!(
            r.insert(T0, key(1), 0, false, &HEADER, b"whole"),
            Ok(Some(b"whole".to_vec()))
        );
        assert_eq!(r.insert(T0, key(1), 0, false, &HEADER, b""), Ok(Some(vec![])));
        assert_empty(&r);
    }

    #[test]
    fn overlapping_consistent_is_accepted() {
        let mut r = Reassembler::new(&config());
        let payload = data(64);
        let k = key(1);
        assert_eq!(r.insert(T0, k, 0, true, &HEADER, &payload[..24]), Ok(None));
        // Overlaps 16..24 with identical bytes and adds 24..40.
        assert_eq!(r.insert(T0, k, 16, true, &HEADER, &payload[16..40]), Ok(None));
        // Re-fragmented along another path: spans both held pieces' edges.
        assert_eq!(r.insert(T0, k, 48, false, &HEADER, &payload[48..]), Ok(None));
        assert_eq!(
            r.insert(T0, k, 8, true, &HEADER, &payload[8..56]),
            Ok(Some(payload.clone()))
        );
        assert_empty(&r);
    }

    #[test]
    fn overlapping_conflict_discards_datagram() {
        let mut r = Reassembler::new(&config());
        let payload = data(64);
        let k = key(1);
        assert_eq!(r.insert(T0, k, 0, true, &HEADER, &payload[..32]), Ok(None));
        assert_eq!(r.insert(T0, k, 48, false, &HEADER, &payload[48..]), Ok(None));
        let mut evil = payload[24..48].to_vec();
        evil[3] ^= 0xff; // byte 27, inside held data
        assert_eq!(
            r.insert(T0, k, 24, true, &HEADER, &evil),
            Err(FragDrop::OverlapConflict)
        );
        assert!(FragDrop::OverlapConflict.discards_datagram());
        assert_empty(&r);
        // The missing piece alone now starts a fresh reassembly that cannot
        // complete from it.
        assert_eq!(r.insert(T0, k, 32, true, &HEADER, &payload[32..48]), Ok(None));
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn exact_duplicate_is_ignored_and_reassembly_completes() {
        let mut r = Reassembler::new(&config());
        let payload = data(3000);
        let frags = fragment(&payload, 1480);
        let k = key(1);
        assert_eq!(feed(&mut r, k, &frags[..1]), vec![Ok(None)]);
        let held = r.bytes_held();
        assert_eq!(feed(&mut r, k, &frags[..1]), vec![Err(FragDrop::Duplicate)]);
        assert!(!FragDrop::Duplicate.discards_datagram());
        assert_eq!((r.len(), r.bytes_held()), (1, held));
        // A fragment entirely inside held data is a duplicate too.
        assert_eq!(
            r.insert(T0, k, 8, true, &HEADER, &payload[8..16]),
            Err(FragDrop::Duplicate)
        );
        assert_eq!(feed(&mut r, k, &frags[2..]), vec![Ok(None)]);
        assert_eq!(feed(&mut r, k, &frags[2..]), vec![Err(FragDrop::Duplicate)]);
        assert_eq!(feed(&mut r, k, &frags[1..2]), vec![Ok(Some(payload))]);
        assert_empty(&r);
    }

    #[test]
    fn missing_piece_times_out_with_first_fragment() {
        let mut r = Reassembler::new(&config());
        let payload = data(3000);
        let frags = fragment(&payload, 1480);
        let k = key(1);
        let t = Instant::from_secs(5);
        assert_eq!(r.insert(t, k, 0, true, &HEADER, frags[0].2), Ok(None));
        // Later fragments do not extend the timer (RFC 791, as Linux).
        let later = Instant::from_secs(20);
        assert_eq!(r.insert(later, k, 2960, false, &HEADER, frags[2].2), Ok(None));
        let deadline = Instant::from_secs(35);
        assert_eq!(r.poll_timeout(), Some(deadline));

        let mut expired = Vec::new();
        r.handle_timeout(Instant::from_millis(34_999), |e| expired.push(e));
        assert!(expired.is_empty());
        assert_eq!(r.len(), 1);

        r.handle_timeout(deadline, |e| expired.push(e));
        assert_eq!(
            expired,
            vec![Expired {
                key: k,
                first_fragment: Some(FirstFragment {
                    header: HEADER.to_vec(),
                    data: payload[..8].to_vec(),
                }),
            }]
        );
        assert_empty(&r);
        // The missing piece now finds nothing to complete.
        assert_eq!(r.insert(later, k, 1480, true, &HEADER, frags[1].2), Ok(None));
    }

    #[test]
    fn timeout_without_fragment_zero_has_no_first_fragment() {
        let mut r = Reassembler::new(&config());
        let payload = data(3000);
        let frags = fragment(&payload, 1480);
        assert_eq!(feed(&mut r, key(1), &frags[1..]), vec![Ok(None), Ok(None)]);
        assert_eq!(
            r.insert(Instant::from_secs(1), key(2), 0, true, &HEADER, frags[0].2),
            Ok(None)
        );
        assert_eq!(r.poll_timeout(), Some(Instant::from_secs(30)));
        let mut expired = Vec::new();
        r.handle_timeout(Instant::from_secs(30), |e| expired.push(e));
        assert_eq!(
            expired,
            vec![Expired {
                key: key(1),
                first_fragment: None
            }]
        );
        // The second datagram is still there, with its own deadline.
        assert_eq!(r.len(), 1);
        assert_eq!(r.poll_timeout(), Some(Instant::from_secs(31)));
        r.handle_timeout(Instant::from_secs(100), |e| expired.push(e));
        assert_eq!(expired.len(), 2);
        assert_eq!(expired[1].key, key(2));
        assert!(expired[1].first_fragment.is_some());
        assert_empty(&r);
    }

    #[test]
    fn first_fragment_header_keeps_options_up_to_60_bytes() {
        let mut r = Reassembler::new(&config());
        let header: Vec<u8> = (0..64).collect(); // longer than any IP header
        assert_eq!(r.insert(T0, key(1), 0, true, &header, &data(16)), Ok(None));
        let mut expired = Vec::new();
        r.handle_timeout(Instant::from_secs(30), |e| expired.push(e));
        let first = expired[0].first_fragment.clone().unwrap();
        assert_eq!(first.header, header[..60]);
        assert_eq!(first.data, data(8));
    }

    #[test]
    fn completion_and_discard_clear_the_deadline() {
        let mut r = Reassembler::new(&config());
        let payload = data(100);
        let frags = fragment(&payload, 48);
        assert_eq!(feed(&mut r, key(1), &frags[..1]), vec![Ok(None)]);
        assert_eq!(
            r.insert(Instant::from_secs(1), key(2), 0, true, &HEADER, &payload[..8]),
            Ok(None)
        );
        assert_eq!(r.poll_timeout(), Some(Instant::from_secs(30)));
        assert_eq!(feed(&mut r, key(1), &frags[1..]).last(), Some(&Ok(Some(payload))));
        assert_eq!(r.poll_timeout(), Some(Instant::from_secs(31)));
        assert_eq!(
            r.insert(T0, key(2), 0, true, &HEADER, &[0xee; 8]),
            Err(FragDrop::OverlapConflict)
        );
        assert_empty(&r);
    }

    #[test]
    fn same_key_after_completion_starts_fresh() {
        let mut r = Reassembler::new(&config());
        let first = data(3000);
        let second: Vec<u8> = first.iter().map(|b| !b).collect();
        let k = key(7);
        assert_completes(&feed(&mut r, k, &fragment(&first, 1480)), &first);
        // Identification wrapped around: same key, different bytes. Not an
        // overlap conflict with the finished datagram.
        let mut frags = fragment(&second, 1480);
        frags.reverse();
        assert_completes(&feed(&mut r, k, &frags), &second);
        assert_empty(&r);
    }

    #[test]
    fn budget_exhausted_refuses_new_datagram_until_memory_frees() {
        // Room for two 3000-byte datagrams but not a third.
        let cfg = ReassemblyConfig {
            budget_bytes: 7000,
            ..config()
        };
        let mut r = Reassembler::new(&cfg);
        let payload = data(3000);
        let frags = fragment(&payload, 1480);
        // Last fragments first: the buffer is sized exactly to 3000.
        for k in [key(1), key(2)] {
            assert_eq!(feed(&mut r, k, &frags[2..]), vec![Ok(None)]);
        }
        assert_eq!(r.bytes_held(), 6000);
        assert_eq!(
            feed(&mut r, key(3), &frags[2..]),
            vec![Err(FragDrop::BudgetExceeded)]
        );
        assert!(!FragDrop::BudgetExceeded.discards_datagram());
        assert_eq!(r.len(), 2);
        // Held datagrams still finish; that frees their memory.
        assert_eq!(
            feed(&mut r, key(1), &frags[..2]),
            vec![Ok(None), Ok(Some(payload.clone()))]
        );
        assert_eq!(r.bytes_held(), 3000);
        assert_eq!(feed(&mut r, key(3), &frags[2..]), vec![Ok(None)]);
        assert_eq!(
            feed(&mut r, key(4), &frags[2..]),
            vec![Err(FragDrop::BudgetExceeded)]
        );
        // Expiry frees memory too.
        r.handle_timeout(Instant::from_secs(30), |_| {});
        assert_empty(&r);
        assert_eq!(feed(&mut r, key(4), &frags[2..]), vec![Ok(None)]);
    }

    #[test]
    fn budget_limits_growth_of_held_datagram() {
        let cfg = ReassemblyConfig {
            budget_bytes: 2000,
            ..config()
        };
        let mut r = Reassembler::new(&cfg);
        let payload = data(3000);
        let frags = fragment(&payload, 1480);
        assert_eq!(feed(&mut r, key(1), &frags[..1]), vec![Ok(None)]);
        assert!(r.bytes_held() <= 2000);
        // Growing to 2960 bytes would pass the budget: only this fragment
        // is dropped.
        assert_eq!(
            feed(&mut r, key(1), &frags[1..2]),
            vec![Err(FragDrop::BudgetExceeded)]
        );
        assert_eq!(r.len(), 1);
        assert!(r.bytes_held() <= 2000);
    }

    #[test]
    fn max_datagrams() {
        let cfg = ReassemblyConfig {
            max_datagrams: 2,
            ..config()
        };
        let mut r = Reassembler::new(&cfg);
        let payload = data(100);
        let frags = fragment(&payload, 48);
        assert_eq!(feed(&mut r, key(1), &frags[..1]), vec![Ok(None)]);
        assert_eq!(feed(&mut r, key(2), &frags[..1]), vec![Ok(None)]);
        assert_eq!(
            feed(&mut r, key(3), &frags[..1]),
            vec![Err(FragDrop::BudgetExceeded)]
        );
        // Unfragmented datagrams need no slot.
        assert_eq!(
            r.insert(T0, key(3), 0, false, &HEADER, b"x"),
            Ok(Some(b"x".to_vec()))
        );
        // Fragments of held datagrams still count.
        assert_eq!(
            feed(&mut r, key(2), &frags[1..]),
            vec![Ok(None), Ok(Some(payload.clone()))]
        );
        assert_eq!(feed(&mut r, key(3), &frags[..1]), vec![Ok(None)]);
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn too_many_fragments_discards_datagram() {
        let cfg = ReassemblyConfig {
            max_fragments: 4,
            ..config()
        };
        let mut r = Reassembler::new(&cfg);
        let payload = data(80);
        let frags = fragment(&payload, 16); // 5 fragments
        let results = feed(&mut r, key(1), &frags);
        assert_eq!(results[..4], [Ok(None), Ok(None), Ok(None), Ok(None)]);
        assert_eq!(results[4], Err(FragDrop::TooMany));
        assert!(FragDrop::TooMany.discards_datagram());
        assert_empty(&r);
        // Duplicates do not count towards the limit.
        let frags4 = fragment(&payload, 24); // 4 fragments
        assert_eq!(feed(&mut r, key(2), &frags4[..1]), vec![Ok(None)]);
        for _ in 0..10 {
            assert_eq!(feed(&mut r, key(2), &frags4[..1]), vec![Err(FragDrop::Duplicate)]);
        }
        assert_completes(&feed(&mut r, key(2), &frags4[1..]), &payload);
    }

    #[test]
    fn bad_lengths() {
        let mut r = Reassembler::new(&config());
        let k = key(1);
        let hold = |r: &mut Reassembler| {
            assert_eq!(r.insert(T0, k, 0, true, &HEADER, &data(16)), Ok(None));
            assert_eq!(r.len(), 1);
        };
        let bad = Err(FragDrop::BadLength);

        // A non-last fragment whose length is not a multiple of 8.
        hold(&mut r);
        assert_eq!(r.insert(T0, k, 16, true, &HEADER, &data(12)), bad);
        assert!(FragDrop::BadLength.discards_datagram());
        assert_empty(&r);
        // An empty non-last fragment.
        hold(&mut r);
        assert_eq!(r.insert(T0, k, 16, true, &HEADER, &[]), bad);
        assert_empty(&r);
        // An offset that is not a multiple of 8.
        hold(&mut r);
        assert_eq!(r.insert(T0, k, 20, true, &HEADER, &data(8)), bad);
        assert_empty(&r);
        // Two last fragments ending at different places.
        hold(&mut r);
        assert_eq!(r.insert(T0, k, 32, false, &HEADER, &data(10)), Ok(None));
        assert_eq!(r.insert(T0, k, 32, false, &HEADER, &data(11)), bad);
        assert_empty(&r);
        // Data beyond a known end.
        hold(&mut r);
        assert_eq!(r.insert(T0, k, 32, false, &HEADER, &data(10)), Ok(None));
        assert_eq!(r.insert(T0, k, 40, true, &HEADER, &data(8)), bad);
        assert_empty(&r);
        // A last fragment ending before data we hold.
        hold(&mut r);
        assert_eq!(r.insert(T0, k, 8, false, &HEADER, &data(4)), bad);
        assert_empty(&r);
        // Past the largest IPv4 payload: the ping of death.
        hold(&mut r);
        assert_eq!(r.insert(T0, k, 65512, false, &HEADER, &data(8)), bad);
        assert_empty(&r);
        // Without a reassembly in progress the fragment alone is dropped.
        assert_eq!(r.insert(T0, k, 65535 * 8, true, &HEADER, &data(8)), bad);
        assert_eq!(r.insert(T0, k, usize::MAX, false, &HEADER, &data(8)), bad);
        assert_empty(&r);
    }

    #[test]
    fn empty_last_fragment_marks_the_end() {
        let mut r = Reassembler::new(&config());
        let payload = data(32);
        let k = key(1);
        assert_eq!(r.insert(T0, k, 32, false, &HEADER, &[]), Ok(None));
        assert_eq!(r.bytes_held(), 0);
        assert_eq!(r.insert(T0, k, 32, false, &HEADER, &[]), Err(FragDrop::Duplicate));
        assert_eq!(r.insert(T0, k, 0, true, &HEADER, &payload[..16]), Ok(None));
        assert_eq!(
            r.insert(T0, k, 16, true, &HEADER, &payload[16..]),
            Ok(Some(payload))
        );
        assert_empty(&r);
    }

    #[test]
    fn last_fragment_inside_held_data_completes() {
        // All bytes arrived with MF=1; a later MF=0 fragment that repeats
        // the tail only adds the end.
        let mut r = Reassembler::new(&config());
        let payload = data(32);
        let k = key(1);
        assert_eq!(r.insert(T0, k, 0, true, &HEADER, &payload), Ok(None));
        assert_eq!(
            r.insert(T0, k, 16, false, &HEADER, &payload[16..]),
            Ok(Some(payload))
        );
        assert_empty(&r);
    }

    #[test]
    fn largest_datagram_reassembles_and_one_more_byte_is_refused() {
        let mut r = Reassembler::new(&config());
        let payload = data(MAX_PAYLOAD);
        let mut frags = fragment(&payload, 1480);
        frags.swap(3, 20);
        assert_completes(&feed(&mut r, key(1), &frags), &payload);
        assert_empty(&r);

        let too_big = data(MAX_PAYLOAD + 1);
        let frags = fragment(&too_big, 1480);
        let results = feed(&mut r, key(2), &frags);
        let (last, rest) = results.split_last().unwrap();
        assert!(rest.iter().all(|r| r == &Ok(None)));
        assert_eq!(last, &Err(FragDrop::BadLength));
        assert_empty(&r);
    }

    #[test]
    fn in_order_growth_stays_within_twice_the_data() {
        let mut r = Reassembler::new(&config());
        let payload = data(40_000);
        let frags = fragment(&payload, 1480);
        for &(off, more, bytes) in &frags[..frags.len() - 1] {
            assert_eq!(r.insert(T0, key(1), off, more, &HEADER, bytes), Ok(None));
            let held = off + bytes.len();
            assert!(r.bytes_held() >= held && r.bytes_held() <= 2 * held);
        }
    }

    proptest! {
        #[test]
        fn random_fragmentation_reassembles(
            payload in prop::collection::vec(any::<u8>(), 0..5000),
            cuts in prop::collection::vec(1usize..100, 1..700),
            dups in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
            last in any::<prop::sample::Index>(),
            shuffle_seed in any::<u64>(),
        ) {
            // Cut into fragments of random multiples of 8 bytes.
            let mut frags: Vec<(usize, bool, &[u8])> = Vec::new();
            let mut off = 0;
            let mut cuts = cuts.into_iter().cycle();
            loop {
                let size = cuts.next().unwrap_or(1) * 8;
                let end = (off + size).min(payload.len());
                frags.push((off, end < payload.len(), &payload[off..end]));
                off = end;
                if off >= payload.len() {
                    break;
                }
            }
            // The fragments are disjoint, so the datagram completes when the
            // last distinct one arrives. Hold one back to arrive last, never
            // duplicated: a copy arriving after completion would rightly
            // start a fresh reassembly under the same key.
            let last = frags.swap_remove(last.index(frags.len()));
            for d in &dups {
                if !frags.is_empty() {
                    let f = frags[d.index(frags.len())];
                    frags.push(f);
                }
            }
            // Fisher-Yates with a small xorshift, seeded by proptest.
            let mut s = shuffle_seed | 1;
            for i in (1..frags.len()).rev() {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                frags.swap(i, (s % (i as u64 + 1)) as usize);
            }
            frags.push(last);

            let cfg = ReassemblyConfig { max_fragments: 1000, ..config() };
            let mut r = Reassembler::new(&cfg);
            let mut completed = Vec::new();
            for &(off, more, bytes) in &frags {
                match r.insert(T0, key(9), off, more, &HEADER, bytes) {
                    Ok(Some(p)) => completed.push(p),
                    Ok(None) | Err(FragDrop::Duplicate) => {}
                    Err(e) => prop_assert!(false, "unexpected drop {e:?}"),
                }
            }
            prop_assert_eq!(completed.len(), 1);
            prop_assert_eq!(&completed[0], &payload);
            prop_assert_eq!(r.bytes_held(), 0);
            prop_assert_eq!(r.len(), 0);
        }

        #[test]
        fn arbitrary_input_never_panics_and_stays_bounded(
            frags in prop::collection::vec(
                (0u16..4, 0usize..=65535 * 8, any::<bool>(), 0usize..2000, any::<u8>(), 0u64..100),
                0..200,
            ),
        ) {
            let cfg = ReassemblyConfig {
                max_datagrams: 3,
                budget_bytes: 20_000,
                timeout: Duration::from_secs(30),
                max_fragments: 8,
            };
            let mut r = Reassembler::new(&cfg);
            let mut now = T0;
            for (ident, offset, more, len, fill, advance) in frags {
                // Offsets mostly small and aligned so fragments interact.
                let offset = if offset % 3 == 0 { offset } else { (offset % 4096) & !7 };
                now += Duration::from_secs(advance / 10);
                r.handle_timeout(now, |_| {});
                let payload = vec![fill; len];
                let _ = r.insert(now, key(ident), offset, more, &HEADER, &payload);
                prop_assert!(r.len() <= cfg.max_datagrams);
                prop_assert!(r.bytes_held() <= cfg.budget_bytes);
                prop_assert_eq!(r.poll_timeout().is_some(), r.len() != 0);
            }
            r.handle_timeout(now + cfg.timeout, |_| {});
            prop_assert_eq!(r.len(), 0);
            prop_assert_eq!(r.bytes_held(), 0);
        }
    }
}
