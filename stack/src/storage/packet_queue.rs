//! A bounded FIFO of datagrams whose payloads live in one byte ring.
//!
//! Used for UDP receive queues and the interface's transmit queue: each entry
//! is a small `Copy` metadata value (addresses, ports, ...) and a payload that
//! must come back out as one contiguous slice, so a datagram is never split
//! across the ring's wrap point.
//!
//! # Layout
//!
//! The ring is a "bip buffer" (two regions, as in smoltcp's `PacketBuffer`):
//!
//! ```text
//!   [ B: newest payloads | free | A: oldest payloads | padding ]
//!   0                 b_end   a_start             a_end      storage.len()
//! ```
//!
//! Payloads are appended after region A until one does not fit before the end
//! of the storage; that payload starts region B at offset 0 and the bytes left
//! at the end become padding. Later payloads go after B while they fit below
//! `a_start`. When A drains, B becomes A and the padding is forgotten.
//!
//! # Sizing: why the ring may grow to `2 * max_bytes`
//!
//! Padding is wasted space, so a ring of exactly `max_bytes` could refuse a
//! datagram even though the queued payload bytes are under the limit. We want
//! the simple contract "`Full` only if `len() == max_packets()` or
//! `bytes() + len > max_bytes()`", so the ring may be up to twice `max_bytes`:
//!
//! - Without a region B, the free space is `storage - bytes()`, split between
//!   the tail and the head. If neither side fits `len`, then
//!   `storage - bytes() < 2 * len`; with `bytes() + len <= max_bytes` that is
//!   `storage < 2 * max_bytes - bytes()`, impossible when `storage == 2 * max_bytes`.
//! - With a region B, the padding was created by a datagram that did not fit
//!   at the tail, so `padding < max_bytes`, and the free gap is
//!   `storage - bytes() - padding > max_bytes - bytes() >= len`.
//!
//! # Allocation
//!
//! Storage is allocated lazily: the queue starts with no buffer and, when a
//! datagram within the limits does not fit, reallocates to the larger of twice
//! its size and what the queued bytes need (at least 1 KiB), capped at
//! `2 * max_bytes`, and copies the queued payloads to the front. That happens
//! at most about `log2(max_bytes)` times in a queue's life, so a socket that
//! never receives much never holds much, and the steady state allocates
//! nothing. The metadata `VecDeque` likewise grows on demand up to
//! `max_packets` entries. Neither shrinks; [`PacketQueue::clear`] keeps them.

use std::collections::VecDeque;
use std::fmt;

/// The queue cannot take this datagram: it holds `max_packets` datagrams
/// already, or the payload would take the queued bytes past `max_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

impl fmt::Display for Full {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("packet queue is full")
    }
}

impl std::error::Error for Full {}

/// The smallest ring we allocate, so a stream of small datagrams does not
/// reallocate for each of the first few.
const MIN_STORAGE: usize = 1024;

/// A FIFO of (metadata, payload) packets stored in one byte ring, bounded by
/// packet count and total payload bytes. See the [module docs](self) for the
/// layout and why the ring may take up to `2 * max_bytes` bytes.
#[derive(Clone)]
pub struct PacketQueue<M: Copy> {
    /// (metadata, offset of the payload in `storage`, payload length), oldest
    /// first. Zero-length payloads have offset 0 and occupy no storage.
    meta: VecDeque<(M, usize, usize)>,
    storage: Vec<u8>,
    /// Region A: `storage[a_start..a_end]`, the oldest payloads.
    a_start: usize,
    a_end: usize,
    /// Region B: `storage[..b_end]`, payloads queued after the ring wrapped.
    /// Zero when there is no region B (a wrap always stores at least 1 byte).
    b_end: usize,
    /// Payload bytes queued (padding excluded).
    bytes: usize,
    max_packets: usize,
    max_bytes: usize,
    /// Reallocations so far, for tests of the sizing argument.
    #[cfg(test)]
    grows: usize,
}

impl<M: Copy> PacketQueue<M> {
    /// A queue of at most `max_packets` datagrams and `max_bytes` payload
    /// bytes. Allocates nothing until the first non-empty payload arrives.
    pub fn new(max_packets: usize, max_bytes: usize) -> Self {
        PacketQueue {
            meta: VecDeque::new(),
            storage: Vec::new(),
            a_start: 0,
            a_end: 0,
            b_end: 0,
            bytes: 0,
            max_packets,
            max_bytes,
            #[cfg(test)]
            grows: 0,
        }
    }

    /// Queue a copy of `payload`. A 0-byte payload is allowed and still
    /// counts as a packet.
    pub fn enqueue(&mut self, meta: M, payload: &[u8]) -> Result<(), Full> {
        self.enqueue_with(meta, payload.len(), |buf| buf.copy_from_slice(payload))
    }

    /// Reserve `len` bytes at the back and let `f` write the payload in place.
    ///
    /// `f` gets a slice of exactly `len` bytes holding unspecified old data
    /// (bytes of earlier datagrams): it must overwrite all of it, or stale
    /// bytes are what the consumer will read. `f` is not called when the
    /// queue is full.
    pub fn enqueue_with(&mut self, meta: M, len: usize, f: impl FnOnce(&mut [u8])) -> Result<(), Full> {
        if self.meta.len() >= self.max_packets {
            return Err(Full);
        }
        match self.bytes.checked_add(len) {
            Some(total) if total <= self.max_bytes => {}
            _ => return Err(Full),
        }
        let offset = match self.place(len) {
            Some(offset) => offset,
            None => {
                self.grow(len);
                // After `grow` the queued payloads sit at the front of a ring
                // of at least `bytes + len` bytes, so this cannot fail; if it
                // ever did, refusing is better than panicking.
                self.place(len).ok_or(Full)?
            }
        };
        self.bytes += len;
        self.meta.push_back((meta, offset, len));
        f(&mut self.storage[offset..offset + len]);
        Ok(())
    }

    /// The oldest datagram, without removing it.
    pub fn peek(&self) -> Option<(&M, &[u8])> {
        let (meta, offset, len) = self.meta.front()?;
        Some((meta, &self.storage[*offset..*offset + *len]))
    }

    /// Remove the oldest datagram. Its payload stays readable until the queue
    /// is next modified, which the borrow enforces.
    pub fn dequeue(&mut self) -> Option<(M, &[u8])> {
        let (meta, offset, len) = self.meta.pop_front()?;
        if len > 0 {
            // FIFO order means this payload is the first one of region A.
            self.a_start = offset + len;
            self.bytes -= len;
        }
        if self.bytes == 0 {
            // Nothing left (zero-length packets own no storage): start over at
            // offset 0 so the whole ring is one free run again.
            self.a_start = 0;
            self.a_end = 0;
            self.b_end = 0;
        } else if self.a_start == self.a_end {
            // Region A drained: B becomes A and the padding is free again.
            self.a_start = 0;
            self.a_end = self.b_end;
            self.b_end = 0;
        }
        Some((meta, &self.storage[offset..offset + len]))
    }

    /// Datagrams queued.
    pub fn len(&self) -> usize {
        self.meta.len()
    }

    pub fn is_empty(&self) -> bool {
        self.meta.is_empty()
    }

    /// Payload bytes queued (not counting ring padding).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn max_packets(&self) -> usize {
        self.max_packets
    }

    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Bytes of ring storage allocated now: at most `2 * max_bytes()`.
    pub fn storage_len(&self) -> usize {
        self.storage.len()
    }

    /// Drop every queued datagram, keeping the allocated storage.
    pub fn clear(&mut self) {
        self.meta.clear();
        self.a_start = 0;
        self.a_end = 0;
        self.b_end = 0;
        self.bytes = 0;
    }

    /// Where a payload of `len` bytes goes in the current storage, updating
    /// the regions; `None` if no contiguous run of `len` bytes is free.
    fn place(&mut self, len: usize) -> Option<usize> {
        if len == 0 {
            return Some(0);
        }
        if self.b_end == 0 {
            if self.storage.len() - self.a_end >= len {
                let offset = self.a_end;
                self.a_end += len;
                return Some(offset);
            }
            // The tail is too short: wrap, leaving it as padding, if the
            // head (before the oldest payload) has room.
            if self.a_start >= len {
                self.b_end = len;
                return Some(0);
            }
            None
        } else if self.a_start - self.b_end >= len {
            let offset = self.b_end;
            self.b_end += len;
            Some(offset)
        } else {
            None
        }
    }

    /// Reallocate the ring so that `len` more bytes fit, copying the queued
    /// payloads (A, then B) to the front. Rare: see the module docs.
    fn grow(&mut self, len: usize) {
        let needed = self.bytes + len;
        let cap = self.max_bytes.saturating_mul(2);
        let size = needed
            .max(self.storage.len().saturating_mul(2))
            .max(MIN_STORAGE)
            .min(cap)
            .max(needed);
        let mut storage = vec![0; size];
        let a_len = self.a_end - self.a_start;
        storage[..a_len].copy_from_slice(&self.storage[self.a_start..self.a_end]);
        storage[a_len..a_len + self.b_end].copy_from_slice(&self.storage[..self.b_end]);
        for (_, offset, plen) in self.meta.iter_mut() {
            if *plen == 0 {
                continue;
            }
            // Payloads of B sit below a_start; those of A at or above it.
            *offset = if self.b_end > 0 && *offset < self.a_start {
                a_len + *offset
            } else {
                *offset - self.a_start
            };
        }
        self.storage = storage;
        self.a_start = 0;
        self.a_end = a_len + self.b_end;
        self.b_end = 0;
        #[cfg(test)]
        {
            self.grows += 1;
        }
    }
}

impl<M: Copy + fmt::Debug> fmt::Debug for PacketQueue<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PacketQueue")
            .field("len", &self.meta.len())
            .field("bytes", &self.bytes)
            .field("max_packets", &self.max_packets)
            .field("max_bytes", &self.max_bytes)
            .field("storage_len", &self.storage.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn drain(q: &mut PacketQueue<u32>) -> Vec<(u32, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some((m, p)) = q.dequeue() {
            out.push((m, p.to_vec()));
        }
        out
    }

    #[test]
    fn fifo_order_and_counters() {
        let mut q = PacketQueue::new(4, 100);
        assert!(q.is_empty());
        assert_eq!(q.storage_len(), 0, "nothing allocated before the first payload");
        q.enqueue(1u32, b"one").unwrap();
        q.enqueue(2, b"second").unwrap();
        assert_eq!(q.len(), 2);
        assert_eq!(q.bytes(), 9);
        assert_eq!(q.peek(), Some((&1, &b"one"[..])));
        assert_eq!(q.dequeue(), Some((1, &b"one"[..])));
        assert_eq!(q.dequeue(), Some((2, &b"second"[..])));
        assert_eq!(q.dequeue(), None);
        assert_eq!(q.peek(), None);
        assert_eq!((q.len(), q.bytes()), (0, 0));
        assert_eq!((q.max_packets(), q.max_bytes()), (4, 100));
    }

    #[test]
    fn full_on_packet_count() {
        let mut q = PacketQueue::new(2, 100);
        q.enqueue(1u32, b"a").unwrap();
        q.enqueue(2, b"").unwrap();
        assert_eq!(q.enqueue(3, b"c"), Err(Full));
        assert_eq!(q.enqueue(3, b""), Err(Full));
        q.dequeue().unwrap();
        q.enqueue(3, b"c").unwrap();
        assert_eq!(drain(&mut q), vec![(2, vec![]), (3, b"c".to_vec())]);
    }

    #[test]
    fn full_on_bytes() {
        let mut q = PacketQueue::new(10, 10);
        q.enqueue(1u32, &[1; 6]).unwrap();
        assert_eq!(q.enqueue(2, &[2; 5]), Err(Full));
        q.enqueue(2, &[2; 4]).unwrap();
        assert_eq!(q.bytes(), 10);
        assert_eq!(q.enqueue(3, &[3; 1]), Err(Full));
        // A zero-length payload still fits when the bytes are exhausted.
        q.enqueue(3, &[]).unwrap();
        assert_eq!(q.len(), 3);
    }

    #[test]
    fn payload_larger_than_max_bytes_is_always_full() {
        let mut q = PacketQueue::<u32>::new(10, 10);
        assert_eq!(q.enqueue(1, &[0; 11]), Err(Full));
        let mut called = false;
        assert_eq!(q.enqueue_with(1, usize::MAX, |_| called = true), Err(Full));
        assert!(!called, "f must not run when the queue refuses");
        assert!(q.is_empty());
    }

    #[test]
    fn zero_byte_queue_takes_only_empty_packets() {
        let mut q = PacketQueue::new(3, 0);
        q.enqueue(1u32, b"").unwrap();
        assert_eq!(q.enqueue(2, b"x"), Err(Full));
        assert_eq!(q.dequeue(), Some((1, &b""[..])));
        assert_eq!(q.storage_len(), 0);
    }

    #[test]
    fn zero_length_packets_interleaved() {
        let mut q = PacketQueue::new(8, 16);
        q.enqueue(1u32, b"").unwrap();
        q.enqueue(2, b"abc").unwrap();
        q.enqueue(3, b"").unwrap();
        q.enqueue(4, b"de").unwrap();
        q.enqueue(5, b"").unwrap();
        assert_eq!(q.len(), 5);
        assert_eq!(q.bytes(), 5);
        assert_eq!(
            drain(&mut q),
            vec![
                (1, vec![]),
                (2, b"abc".to_vec()),
                (3, vec![]),
                (4, b"de".to_vec()),
                (5, vec![]),
            ]
        );
    }

    #[test]
    fn enqueue_with_writes_in_place() {
        let mut q = PacketQueue::new(4, 64);
        q.enqueue_with(7u32, 5, |buf| {
            assert_eq!(buf.len(), 5);
            buf.copy_from_slice(b"hello");
        })
        .unwrap();
        q.enqueue_with(8, 0, |buf| assert!(buf.is_empty())).unwrap();
        assert_eq!(q.dequeue(), Some((7, &b"hello"[..])));
        assert_eq!(q.dequeue(), Some((8, &b""[..])));
    }

    #[test]
    fn wraparound_keeps_payloads_contiguous() {
        // max_bytes 1000: the ring is 1024 bytes (MIN_STORAGE) after first
        // use, below the 2000 cap.
        let mut q = PacketQueue::new(16, 1000);
        for i in 0..3u32 {
            q.enqueue(i, &[i as u8; 300]).unwrap();
        }
        assert_eq!(q.storage_len(), 1024);
        // Free the head; a 300-byte payload no longer fits in the 124-byte
        // tail, so it wraps to offset 0 and the tail becomes padding.
        assert_eq!(q.dequeue().unwrap().0, 0);
        assert_eq!(q.dequeue().unwrap().0, 1);
        q.enqueue(3, &[3; 300]).unwrap();
        q.enqueue(4, &[4; 200]).unwrap();
        assert_eq!(q.storage_len(), 1024);
        assert_eq!(q.grows, 1, "wrapped instead of growing");
        assert_eq!(q.bytes(), 800);
        for want in 2..=4u32 {
            let (m, p) = q.dequeue().unwrap();
            assert_eq!(m, want);
            assert_eq!(p.len(), if want == 4 { 200 } else { 300 });
            assert!(p.iter().all(|&b| b == want as u8));
        }
        assert!(q.is_empty());
        // Empty again: the next payload starts at offset 0 of the whole ring.
        q.enqueue(5, &[5; 1000]).unwrap();
        assert_eq!(q.grows, 1);
    }

    #[test]
    fn padding_never_refuses_at_full_size() {
        let max = 1000;
        let mut q = PacketQueue::new(100, max);
        // Warm up until the ring reaches its 2 * max_bytes cap.
        q.enqueue(0u32, &[0; 400]).unwrap();
        q.enqueue(0, &[0; 400]).unwrap();
        q.dequeue().unwrap();
        q.enqueue(0, &[0; 600]).unwrap();
        assert_eq!(q.storage_len(), 2 * max);
        let grows = q.grows;
        q.clear();
        // March 111-byte payloads to the end of the ring: 18 of them end at
        // 1998, leaving a 2-byte tail.
        for i in 0..18u32 {
            if q.len() == 9 {
                q.dequeue().unwrap();
            }
            q.enqueue(i, &[i as u8; 111]).unwrap();
        }
        while q.len() > 1 {
            q.dequeue().unwrap();
        }
        // 111 bytes queued at 1887..1998; 889 more are within the bound and
        // must fit (after the wrap) without reallocating.
        q.enqueue(18, &[18; 889]).unwrap();
        assert_eq!(q.bytes(), max);
        assert_eq!(q.grows, grows, "no reallocation at the cap");
        assert_eq!(q.dequeue().unwrap().1, &[17; 111][..]);
        assert_eq!(q.dequeue().unwrap().1, &[18; 889][..]);
    }

    #[test]
    fn growth_relocates_wrapped_payloads() {
        // Start small, wrap, then force a reallocation while wrapped.
        let mut q = PacketQueue::new(64, 4000);
        for i in 0..3u32 {
            q.enqueue(i, &[i as u8; 400]).unwrap(); // ring: 1024 bytes
        }
        q.dequeue().unwrap();
        q.enqueue(3, &[3; 300]).unwrap(); // wraps to offset 0
        q.enqueue(4, &[4; 1000]).unwrap(); // cannot fit: grows and relocates
        assert!(q.storage_len() >= 2100);
        let got = drain(&mut q);
        let want: Vec<(u32, Vec<u8>)> = vec![
            (1, vec![1; 400]),
            (2, vec![2; 400]),
            (3, vec![3; 300]),
            (4, vec![4; 1000]),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn clear_empties_and_keeps_storage() {
        let mut q = PacketQueue::new(4, 64);
        q.enqueue(1u32, b"abc").unwrap();
        q.enqueue(2, b"").unwrap();
        let storage = q.storage_len();
        q.clear();
        assert!(q.is_empty());
        assert_eq!(q.bytes(), 0);
        assert_eq!(q.storage_len(), storage);
        q.enqueue(3, b"xyz").unwrap();
        assert_eq!(q.dequeue(), Some((3, &b"xyz"[..])));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Enqueue(usize),
        EnqueueWith(usize),
        Dequeue,
        Peek,
        Clear,
    }

    fn op(max_len: usize) -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0..=max_len).prop_map(Op::Enqueue),
            2 => (0..=max_len).prop_map(Op::EnqueueWith),
            6 => Just(Op::Dequeue),
            1 => Just(Op::Peek),
            1 => Just(Op::Clear),
        ]
    }

    proptest! {
        #[test]
        fn matches_vecdeque_model(
            max_packets in 0usize..12,
            max_bytes in 0usize..3000,
            ops in prop::collection::vec(op(1500), 0..300),
        ) {
            let mut q = PacketQueue::<u32>::new(max_packets, max_bytes);
            let cap = 2 * max_bytes;
            let mut model: VecDeque<(u32, Vec<u8>)> = VecDeque::new();
            for (seq, op) in ops.into_iter().enumerate() {
                let seq = seq as u32;
                // Distinct content per packet so misplaced bytes show up.
                let payload = |len: usize| -> Vec<u8> {
                    (0..len).map(|i| (seq as usize * 31 + i) as u8).collect()
                };
                // At the cap, the sizing argument says nothing ever needs to
                // be moved again.
                let grows_at_cap = (q.storage_len() == cap).then_some(q.grows);
                match op {
                    Op::Enqueue(len) | Op::EnqueueWith(len) => {
                        let data = payload(len);
                        let model_bytes: usize = model.iter().map(|(_, p)| p.len()).sum();
                        let fits = model.len() < max_packets && model_bytes + len <= max_bytes;
                        let got = if matches!(op, Op::Enqueue(_)) {
                            q.enqueue(seq, &data)
                        } else {
                            q.enqueue_with(seq, len, |buf| buf.copy_from_slice(&data))
                        };
                        prop_assert_eq!(got.is_ok(), fits);
                        if fits {
                            model.push_back((seq, data));
                        }
                    }
                    Op::Dequeue => {
                        let got = q.dequeue().map(|(m, p)| (m, p.to_vec()));
                        prop_assert_eq!(got, model.pop_front());
                    }
                    Op::Peek => {
                        let got = q.peek().map(|(m, p)| (*m, p.to_vec()));
                        prop_assert_eq!(got, model.front().cloned());
                    }
                    Op::Clear => {
                        q.clear();
                        model.clear();
                    }
                }
                prop_assert_eq!(q.len(), model.len());
                prop_assert_eq!(q.bytes(), model.iter().map(|(_, p)| p.len()).sum::<usize>());
                prop_assert!(q.storage_len() <= cap);
                if let Some(grows) = grows_at_cap {
                    prop_assert_eq!(q.grows, grows);
                }
            }
        }
    }
}
