//! A bounded byte ring: the send and receive buffers of a TCP socket.
//!
//! ```text
//!   storage: [ .. free .. | queued (len bytes) ........ | .. free .. ]
//!                         ^ read_at                     ^ write position
//! ```
//!
//! The queued bytes start at `read_at` and run `len` bytes, wrapping at the
//! end of the storage. Besides the FIFO operations, the ring offers the
//! random access TCP needs:
//!
//! - send side: queued data stays in the ring until it is acknowledged.
//!   [`RingBuffer::read_allocated`] / [`RingBuffer::get_allocated`] copy or
//!   borrow it at an offset from the front for (re)transmission, and
//!   [`RingBuffer::dequeue_allocated`] drops it once acknowledged.
//! - receive side: out-of-order segments are written into the free space
//!   past the queued data with [`RingBuffer::write_unallocated`], and
//!   [`RingBuffer::enqueue_unallocated`] commits them once the gap before them
//!   is filled (the [`Assembler`](super::Assembler) tracks which bytes are
//!   there).
//!
//! The write position is never moved except by enqueueing, [`clear`] and
//! [`resize`]; in particular emptying the ring does not rewind it to offset 0,
//! so out-of-order data written past the end stays where it was put.
//!
//! # Memory
//!
//! The ring's [`capacity`](RingBuffer::capacity) is a bound, not an
//! allocation: what the window is computed from, what the socket may hold.
//! The storage behind it starts empty and is allocated on first use, then
//! doubles whenever a write needs more (at least [`MIN_ALLOC`] bytes at a
//! time, never more than the bound), so a connection that carries little
//! costs little, and one that carries much grows to its bound, as Linux's
//! receive-buffer autotuning grows `sk_rcvbuf` towards `tcp_rmem[2]`. Any
//! byte the window offers can always be written: growth is only bounded by
//! the capacity. Emptying the ring keeps the storage, so a busy connection
//! whose buffer drains at every burst does not allocate and regrow it each
//! time; its owner gives it back with [`release_if_unused`] once the ring
//! has stayed empty a while (TCP's reclaim timer), so an idle connection
//! holds no buffer memory at all. Growing copies the bytes that matter (the
//! queued ones and any written past them) to the front of the new storage.
//!
//! No operation panics: counts and offsets beyond what is queued or free are
//! clamped, and a zero-capacity ring accepts nothing.
//!
//! [`clear`]: RingBuffer::clear
//! [`resize`]: RingBuffer::resize
//! [`release_if_unused`]: RingBuffer::release_if_unused

use std::fmt;

/// The smallest storage the ring allocates: a couple of full-sized segments,
/// so a small exchange does not reallocate at every segment.
pub const MIN_ALLOC: usize = 4096;

/// [`RingBuffer::resize`] was asked for less than the queued data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResizeError {
    pub len: usize,
    pub requested: usize,
}

impl fmt::Display for ResizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot resize a ring holding {} bytes to {} bytes",
            self.len, self.requested
        )
    }
}

impl std::error::Error for ResizeError {}

#[derive(Clone)]
pub struct RingBuffer {
    /// The allocated part; its length is at most `capacity`, and 0 while
    /// nothing is held.
    storage: Vec<u8>,
    /// The bound: queued bytes never exceed it, and the free space is
    /// counted from it.
    capacity: usize,
    /// Index in `storage` of the first queued byte; below `storage.len()`
    /// (or 0 when that is 0).
    read_at: usize,
    /// Queued bytes; at most `storage.len()`.
    len: usize,
    /// How far past the queued data bytes may have been written in place
    /// ([`write_unallocated`](Self::write_unallocated),
    /// [`get_unallocated`](Self::get_unallocated)) and not yet enqueued:
    /// those must survive growth, and keep the storage from being released.
    /// `len + dirty <= storage.len()`.
    dirty: usize,
    /// The first allocation's size ([`MIN_ALLOC`] but in tests).
    min_alloc: usize,
}

impl RingBuffer {
    /// A ring bounded by `capacity` bytes. Nothing is allocated until data
    /// arrives.
    pub fn new(capacity: usize) -> RingBuffer {
        RingBuffer {
            storage: Vec::new(),
            capacity,
            read_at: 0,
            len: 0,
            dirty: 0,
            min_alloc: MIN_ALLOC,
        }
    }

    /// A ring whose first allocation is `min_alloc` bytes, so tests see it
    /// grow with small data.
    #[cfg(test)]
    fn with_min_alloc(capacity: usize, min_alloc: usize) -> RingBuffer {
        RingBuffer {
            min_alloc,
            ..RingBuffer::new(capacity)
        }
    }

    /// The bound (SO_RCVBUF / SO_SNDBUF), not what is allocated now.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes of storage allocated now: between 0 and [`capacity`](Self::capacity).
    pub fn allocated(&self) -> usize {
        self.storage.len()
    }

    /// Queued bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_full(&self) -> bool {
        self.len == self.capacity
    }

    /// Free bytes: what can still be enqueued (the receive window a socket
    /// can offer).
    pub fn window(&self) -> usize {
        self.capacity - self.len
    }

    /// Index in `storage` of the byte `offset` bytes after the read position.
    /// Callers keep `offset <= storage.len()`, so the sum cannot overflow.
    fn index(&self, offset: usize) -> usize {
        let size = self.storage.len();
        if size == 0 {
            return 0;
        }
        let i = self.read_at + offset;
        if i >= size {
            i - size
        } else {
            i
        }
    }

    /// Make the storage hold at least `need` bytes from the read position
    /// (`need <= capacity`): double it, or more if that is not enough,
    /// within the bound. The queued bytes and those written past them move
    /// to the front of the new storage.
    fn reserve(&mut self, need: usize) {
        let size = self.storage.len();
        if need <= size {
            return;
        }
        let new_size = need
            .max(size.saturating_mul(2))
            .max(self.min_alloc)
            .min(self.capacity)
            .max(need);
        let mut storage = vec![0; new_size];
        let keep = (self.len + self.dirty).min(size);
        self.copy_out(self.read_at, &mut storage[..keep]);
        self.storage = storage;
        self.read_at = 0;
    }

    /// Give the storage back if nothing in it matters any more: nothing is
    /// queued and no bytes wait past the queue. Returns whether it did.
    pub fn release_if_unused(&mut self) -> bool {
        let unused = self.len == 0 && self.dirty == 0 && !self.storage.is_empty();
        if unused {
            self.storage = Vec::new();
            self.read_at = 0;
        }
        unused
    }

    /// Whether the ring holds storage it could give back
    /// ([`release_if_unused`](Self::release_if_unused) would free it).
    pub fn holds_unused_storage(&self) -> bool {
        self.len == 0 && self.dirty == 0 && !self.storage.is_empty()
    }

    /// Copy `data` (at most the storage's size) into the storage starting at
    /// index `start`, wrapping once.
    fn copy_in(&mut self, start: usize, data: &[u8]) {
        let first = data.len().min(self.storage.len().saturating_sub(start));
        let (head, tail) = data.split_at(first);
        if let Some(dst) = self.storage.get_mut(start..start + first) {
            dst.copy_from_slice(head);
        }
        if let Some(dst) = self.storage.get_mut(..tail.len()) {
            dst.copy_from_slice(tail);
        }
    }

    /// Fill `out` (at most the storage's size) from the storage starting at
    /// index `start`, wrapping once.
    fn copy_out(&self, start: usize, out: &mut [u8]) {
        let first = out.len().min(self.storage.len().saturating_sub(start));
        let (head, tail) = out.split_at_mut(first);
        if let Some(src) = self.storage.get(start..start + first) {
            head.copy_from_slice(src);
        }
        if let Some(src) = self.storage.get(..tail.len()) {
            tail.copy_from_slice(src);
        }
    }

    /// Append as much of `data` as fits; returns how much that was.
    pub fn enqueue_slice(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.window());
        if n == 0 {
            return 0;
        }
        self.reserve(self.len + n);
        let start = self.index(self.len);
        self.copy_in(start, &data[..n]);
        self.len += n;
        self.dirty = self.dirty.saturating_sub(n);
        n
    }

    /// Move up to `out.len()` bytes from the front into `out`; returns the
    /// count.
    pub fn dequeue_slice(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.len);
        self.copy_out(self.read_at, &mut out[..n]);
        self.dequeue_allocated(n)
    }

    /// Copy queued bytes starting `offset` bytes after the front into `out`,
    /// without consuming them; returns the count (0 if `offset >= len()`).
    pub fn read_allocated(&self, offset: usize, out: &mut [u8]) -> usize {
        if offset >= self.len {
            return 0;
        }
        let n = out.len().min(self.len - offset);
        self.copy_out(self.index(offset), &mut out[..n]);
        n
    }

    /// Borrow up to `max` queued bytes starting `offset` bytes after the
    /// front. The slice stops at the end of the storage, so it may be shorter
    /// than what is queued: ask again at `offset + slice.len()` for the rest.
    pub fn get_allocated(&self, offset: usize, max: usize) -> &[u8] {
        if offset >= self.len {
            return &[];
        }
        let start = self.index(offset);
        let n = max.min(self.len - offset).min(self.storage.len() - start);
        self.storage.get(start..start + n).unwrap_or(&[])
    }

    /// Write `data` into the free space starting `offset` bytes past the end
    /// of the queued data, without enqueueing it (out-of-order receive).
    /// Returns how many bytes were written: those that fall inside the free
    /// space, 0 if `offset >= window()`.
    pub fn write_unallocated(&mut self, offset: usize, data: &[u8]) -> usize {
        let window = self.window();
        if offset >= window {
            return 0;
        }
        let n = data.len().min(window - offset);
        if n == 0 {
            return 0;
        }
        // len + offset + n <= capacity.
        self.reserve(self.len + offset + n);
        let start = self.index(self.len + offset);
        self.copy_in(start, &data[..n]);
        self.dirty = self.dirty.max(offset + n);
        n
    }

    /// Turn the first `count` free bytes, already written with
    /// [`write_unallocated`](Self::write_unallocated) or
    /// [`get_unallocated`](Self::get_unallocated), into queued data. Clamped
    /// to the free space; returns the count enqueued.
    pub fn enqueue_unallocated(&mut self, count: usize) -> usize {
        let n = count.min(self.window());
        if n == 0 {
            return 0;
        }
        // Bytes never written are stale (zeros if just allocated), as they
        // always were; the storage must still cover them.
        self.reserve(self.len + n);
        self.len += n;
        self.dirty = self.dirty.saturating_sub(n);
        n
    }

    /// Drop up to `count` bytes from the front (acknowledged data); returns
    /// the count dropped.
    pub fn dequeue_allocated(&mut self, count: usize) -> usize {
        let n = count.min(self.len);
        self.read_at = self.index(n);
        self.len -= n;
        n
    }

    /// Borrow up to `max` bytes of the free space right after the queued
    /// data, to fill in place and then commit with
    /// [`enqueue_unallocated`](Self::enqueue_unallocated). The slice stops at
    /// the end of the storage: after committing it, ask again for the part
    /// after the wrap. Its contents are stale bytes.
    pub fn get_unallocated(&mut self, max: usize) -> &mut [u8] {
        let want = max.min(self.window());
        if want == 0 {
            return &mut [];
        }
        self.reserve(self.len + want);
        let start = self.index(self.len);
        let n = want.min(self.storage.len() - start);
        self.dirty = self.dirty.max(n);
        self.storage.get_mut(start..start + n).unwrap_or(&mut [])
    }

    /// Forget all queued data and rewind to offset 0 (giving the storage
    /// back).
    pub fn clear(&mut self) {
        self.read_at = 0;
        self.len = 0;
        self.dirty = 0;
        self.release_if_unused();
    }

    /// Change the bound to `capacity` bytes (SO_RCVBUF / SO_SNDBUF changes),
    /// keeping the queued data and, from the free space after it, as many
    /// bytes as still fit (so out-of-order data already written survives if
    /// the new window covers it; the caller must forget any beyond the new
    /// window). Refuses to drop queued data. The storage only changes if it
    /// is larger than the new bound.
    pub fn resize(&mut self, capacity: usize) -> Result<(), ResizeError> {
        if capacity < self.len {
            return Err(ResizeError {
                len: self.len,
                requested: capacity,
            });
        }
        self.capacity = capacity;
        self.dirty = self.dirty.min(capacity - self.len);
        if self.storage.len() > capacity {
            let mut storage = vec![0; capacity];
            let keep = self.len + self.dirty;
            self.copy_out(self.read_at, &mut storage[..keep]);
            self.storage = storage;
            self.read_at = 0;
        }
        self.release_if_unused();
        Ok(())
    }
}

impl fmt::Debug for RingBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingBuffer")
            .field("capacity", &self.capacity)
            .field("allocated", &self.storage.len())
            .field("len", &self.len)
            .field("read_at", &self.read_at)
            .field("dirty", &self.dirty)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    fn drain(r: &mut RingBuffer) -> Vec<u8> {
        let mut out = vec![0; r.len()];
        assert_eq!(r.dequeue_slice(&mut out), out.len());
        out
    }

    #[test]
    fn fifo_with_wraparound() {
        let mut r = RingBuffer::new(8);
        assert!(r.is_empty());
        assert_eq!(r.window(), 8);
        assert_eq!(r.enqueue_slice(b"abcdef"), 6);
        let mut out = [0; 4];
        assert_eq!(r.dequeue_slice(&mut out), 4);
        assert_eq!(&out, b"abcd");
        // 2 queued at 4..6; 6 free, wrapping.
        assert_eq!(r.enqueue_slice(b"ghijklmn"), 6);
        assert!(r.is_full());
        assert_eq!(r.window(), 0);
        assert_eq!(r.enqueue_slice(b"x"), 0);
        assert_eq!(drain(&mut r), b"efghijkl");
        assert!(r.is_empty());
    }

    #[test]
    fn retransmission_reads_at_offsets() {
        let mut r = RingBuffer::new(8);
        r.enqueue_slice(b"012345");
        r.dequeue_allocated(4);
        r.enqueue_slice(b"6789ab"); // queued "456789ab", storage wraps at 8
        let mut out = [0; 5];
        assert_eq!(r.read_allocated(1, &mut out), 5);
        assert_eq!(&out, b"56789");
        assert_eq!(r.read_allocated(6, &mut out), 2);
        assert_eq!(&out[..2], b"ab");
        assert_eq!(r.read_allocated(8, &mut out), 0);
        assert_eq!(r.read_allocated(usize::MAX, &mut out), 0);
        // Borrowed slices stop at the end of the storage.
        assert_eq!(r.get_allocated(0, 100), b"4567");
        assert_eq!(r.get_allocated(4, 100), b"89ab");
        assert_eq!(r.get_allocated(2, 1), b"6");
        assert_eq!(r.get_allocated(8, 1), b"");
        assert_eq!(r.len(), 8, "reading does not consume");
        assert_eq!(r.dequeue_allocated(100), 8);
        assert!(r.is_empty());
    }

    #[test]
    fn out_of_order_receive() {
        let mut r = RingBuffer::new(10);
        r.enqueue_slice(b"ab");
        // Bytes 3..5 past the end arrive first.
        assert_eq!(r.write_unallocated(3, b"fgh"), 3);
        assert_eq!(r.len(), 2);
        // Then the gap.
        assert_eq!(r.write_unallocated(0, b"cde"), 3);
        assert_eq!(r.enqueue_unallocated(6), 6);
        assert_eq!(drain(&mut r), b"abcdefgh");
        // Bounded by the free space.
        assert_eq!(r.write_unallocated(9, b"xyz"), 1);
        assert_eq!(r.write_unallocated(10, b"x"), 0);
        assert_eq!(r.write_unallocated(usize::MAX, b"x"), 0);
        assert_eq!(r.enqueue_unallocated(usize::MAX), 10);
        assert!(r.is_full());
    }

    #[test]
    fn emptying_keeps_out_of_order_data_in_place() {
        let mut r = RingBuffer::new(8);
        r.enqueue_slice(b"abc");
        assert_eq!(r.write_unallocated(2, b"XY"), 2);
        assert_eq!(drain(&mut r), b"abc");
        // The gap [0, 2) arrives after the reader emptied the ring.
        assert_eq!(r.write_unallocated(0, b"de"), 2);
        r.enqueue_unallocated(4);
        assert_eq!(drain(&mut r), b"deXY");
    }

    #[test]
    fn fill_in_place() {
        let mut r = RingBuffer::new(8);
        r.enqueue_slice(b"abcdef");
        r.dequeue_allocated(5);
        let buf = r.get_unallocated(100);
        assert_eq!(buf.len(), 2, "stops at the end of the storage");
        buf.copy_from_slice(b"gh");
        r.enqueue_unallocated(2);
        let buf = r.get_unallocated(3);
        assert_eq!(buf.len(), 3);
        buf.copy_from_slice(b"ijk");
        r.enqueue_unallocated(3);
        assert_eq!(drain(&mut r), b"fghijk");
    }

    #[test]
    fn zero_capacity_accepts_nothing() {
        let mut r = RingBuffer::new(0);
        assert!(r.is_empty() && r.is_full());
        assert_eq!(r.enqueue_slice(b"a"), 0);
        assert_eq!(r.write_unallocated(0, b"a"), 0);
        assert_eq!(r.enqueue_unallocated(1), 0);
        assert_eq!(r.dequeue_allocated(1), 0);
        assert_eq!(r.dequeue_slice(&mut [0; 1]), 0);
        assert_eq!(r.get_unallocated(1).len(), 0);
        assert_eq!(r.get_allocated(0, 1).len(), 0);
        r.resize(4).unwrap();
        assert_eq!(r.enqueue_slice(b"abcde"), 4);
    }

    #[test]
    fn resize_keeps_data() {
        let mut r = RingBuffer::new(8);
        r.enqueue_slice(b"abcdef");
        r.dequeue_allocated(4);
        r.enqueue_slice(b"ghij"); // "efghij", wrapped
        assert_eq!(r.write_unallocated(0, b"k"), 1);
        assert_eq!(r.resize(5), Err(ResizeError { len: 6, requested: 5 }));
        r.resize(6).unwrap();
        assert!(r.is_full());
        r.resize(16).unwrap();
        assert_eq!(r.capacity(), 16);
        assert_eq!(r.enqueue_slice(b"KLM"), 3);
        assert_eq!(drain(&mut r), b"efghijKLM");
        // Growing keeps out-of-order bytes already written.
        let mut r = RingBuffer::new(4);
        r.enqueue_slice(b"ab");
        r.write_unallocated(0, b"cd");
        r.resize(8).unwrap();
        r.enqueue_unallocated(2);
        assert_eq!(drain(&mut r), b"abcd");
        r.clear();
        assert_eq!(r.window(), 8);
    }

    #[test]
    fn storage_grows_on_use_up_to_the_bound() {
        let cap = 256 * 1024;
        let mut r = RingBuffer::new(cap);
        assert_eq!(r.allocated(), 0, "nothing allocated before data");
        assert_eq!(r.window(), cap, "the window comes from the bound");
        assert_eq!(r.enqueue_slice(&[1; 100]), 100);
        assert_eq!(r.allocated(), MIN_ALLOC);
        assert_eq!(r.enqueue_slice(&[2; 5000]), 5000);
        assert_eq!(r.allocated(), 2 * MIN_ALLOC, "doubles");
        // A big write grows at once to what it needs.
        assert_eq!(r.enqueue_slice(&vec![3; 40_000]), 40_000);
        assert_eq!(r.allocated(), 45_100);
        // Every byte of the window can be taken, and no more is allocated
        // than the bound.
        let rest = r.window();
        assert_eq!(r.enqueue_slice(&vec![4; rest + 10]), rest);
        assert!(r.is_full());
        assert_eq!(r.allocated(), cap);
        let mut out = vec![0; cap];
        assert_eq!(r.dequeue_slice(&mut out), cap);
        assert_eq!(&out[..100], &[1; 100][..]);
        assert_eq!(&out[100..5100], &[2; 5000][..]);
        assert_eq!(&out[5100..45_100], &[3; 40_000][..]);
        assert!(out[45_100..].iter().all(|&b| b == 4));
        assert_eq!(r.allocated(), cap, "a drained ring keeps its storage");
        assert!(r.release_if_unused());
        assert_eq!(r.allocated(), 0, "until it is given back");
    }

    #[test]
    fn growth_keeps_wrapped_and_out_of_order_bytes() {
        let mut r = RingBuffer::with_min_alloc(64, 8);
        r.enqueue_slice(b"abcdef");
        r.dequeue_allocated(5);
        r.enqueue_slice(b"ghi"); // "fghi", wrapped in 8 bytes
        assert_eq!(r.allocated(), 8);
        assert_eq!(r.write_unallocated(1, b"K"), 1);
        // Far past the storage: grows to cover it, keeping all of the above.
        assert_eq!(r.write_unallocated(30, b"Z"), 1);
        assert_eq!(r.allocated(), 35);
        assert_eq!(r.write_unallocated(0, b"j"), 1);
        assert_eq!(r.enqueue_unallocated(2), 2);
        assert_eq!(drain(&mut r), b"fghijK");
        assert_eq!(r.allocated(), 35, "out-of-order byte still waits");
        // "Z" went 30 past "fghi", so 28 past "fghijK".
        assert_eq!(r.write_unallocated(0, &[b'.'; 28]), 28);
        assert_eq!(r.enqueue_unallocated(29), 29);
        let got = drain(&mut r);
        assert_eq!(got.last(), Some(&b'Z'));
        assert!(r.release_if_unused());
        assert_eq!(r.allocated(), 0);
    }

    #[test]
    fn drained_ring_is_released_on_request_but_not_with_out_of_order_data() {
        let mut r = RingBuffer::with_min_alloc(64, 8);
        r.write_unallocated(4, b"xy");
        assert_eq!(r.allocated(), 8);
        r.dequeue_allocated(10);
        assert!(!r.holds_unused_storage());
        assert!(!r.release_if_unused());
        assert_eq!(r.allocated(), 8, "nothing queued, but bytes are waiting");
        r.clear();
        assert_eq!(r.allocated(), 0);
        // Filling in place counts as written until committed.
        let n = r.get_unallocated(3).len();
        assert_eq!(n, 3);
        assert!(!r.release_if_unused());
        assert_eq!(r.allocated(), 8);
        r.enqueue_unallocated(3);
        r.dequeue_allocated(3);
        assert_eq!(
            r.allocated(),
            8,
            "drained, the storage is kept for the next burst"
        );
        assert!(r.holds_unused_storage());
        assert!(r.release_if_unused());
        assert_eq!(r.allocated(), 0);
        assert!(!r.holds_unused_storage());
        assert_eq!(r.get_unallocated(0).len(), 0);
        assert_eq!(r.allocated(), 0, "asking for nothing allocates nothing");
    }

    #[test]
    fn resize_below_storage_shrinks_it() {
        let mut r = RingBuffer::with_min_alloc(64, 8);
        r.enqueue_slice(&[7; 40]);
        assert_eq!(r.allocated(), 40);
        r.resize(48).unwrap();
        assert_eq!(r.allocated(), 40);
        r.dequeue_allocated(30);
        r.resize(16).unwrap();
        assert_eq!((r.allocated(), r.capacity(), r.len()), (16, 16, 10));
        assert_eq!(drain(&mut r), vec![7; 10]);
        assert!(r.release_if_unused());
        assert_eq!(r.allocated(), 0);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Enqueue(Vec<u8>),
        Dequeue(usize),
        ReadAllocated(usize, usize),
        GetAllocated(usize, usize),
        WriteUnallocated(usize, Vec<u8>),
        EnqueueUnallocated(usize),
        DequeueAllocated(usize),
        FillUnallocated(usize, u8),
        Clear,
        Resize(usize),
        Release,
    }

    fn op() -> impl Strategy<Value = Op> {
        let data = || prop::collection::vec(any::<u8>(), 0..40);
        prop_oneof![
            4 => data().prop_map(Op::Enqueue),
            3 => (0usize..40).prop_map(Op::Dequeue),
            2 => (0usize..40, 0usize..40).prop_map(|(o, n)| Op::ReadAllocated(o, n)),
            2 => (0usize..40, 0usize..40).prop_map(|(o, n)| Op::GetAllocated(o, n)),
            3 => (0usize..40, data()).prop_map(|(o, d)| Op::WriteUnallocated(o, d)),
            2 => (0usize..40).prop_map(Op::EnqueueUnallocated),
            2 => (0usize..40).prop_map(Op::DequeueAllocated),
            2 => (0usize..40, any::<u8>()).prop_map(|(n, b)| Op::FillUnallocated(n, b)),
            1 => Just(Op::Clear),
            1 => (0usize..48).prop_map(Op::Resize),
            1 => Just(Op::Release),
        ]
    }

    /// The model: the queued bytes, and what is known of the free space after
    /// them (`None` where nothing was written since it last held data).
    struct Model {
        queued: VecDeque<Option<u8>>,
        free: VecDeque<Option<u8>>,
    }

    impl Model {
        fn check(&self, got: &[u8], offset: usize) -> Result<(), TestCaseError> {
            for (i, &b) in got.iter().enumerate() {
                if let Some(want) = self.queued[offset + i] {
                    prop_assert_eq!(b, want, "byte {}", offset + i);
                }
            }
            Ok(())
        }

        fn take_free(&mut self, n: usize) {
            for _ in 0..n {
                let b = self.free.pop_front().unwrap();
                self.queued.push_back(b);
            }
        }

        fn drop_front(&mut self, n: usize) {
            for _ in 0..n {
                self.queued.pop_front();
                self.free.push_back(None);
            }
        }
    }

    proptest! {
        #[test]
        fn matches_vecdeque_model(
            cap in 0usize..120,
            min_alloc in 1usize..16,
            ops in prop::collection::vec(op(), 0..120),
        ) {
            let mut r = RingBuffer::with_min_alloc(cap, min_alloc);
            let mut m = Model { queued: VecDeque::new(), free: vec![None; cap].into() };
            // The most the ring was asked to hold since its storage was last
            // given back: the storage never exceeds twice that.
            let mut peak = 0usize;
            for op in ops {
                let released = matches!(op, Op::Release);
                let window = m.free.len();
                let queued = m.queued.len();
                peak = peak.max(match &op {
                    Op::Enqueue(d) => queued + d.len().min(window),
                    Op::WriteUnallocated(o, d) if *o < window => queued + o + d.len().min(window - o),
                    Op::EnqueueUnallocated(n) | Op::FillUnallocated(n, _) => queued + n.min(&window),
                    _ => 0,
                });
                match op {
                    Op::Enqueue(data) => {
                        let n = r.enqueue_slice(&data);
                        prop_assert_eq!(n, data.len().min(m.free.len()));
                        for &b in &data[..n] {
                            m.free.pop_front();
                            m.queued.push_back(Some(b));
                        }
                    }
                    Op::Dequeue(n) => {
                        let mut out = vec![0; n];
                        let got = r.dequeue_slice(&mut out);
                        prop_assert_eq!(got, n.min(m.queued.len()));
                        m.check(&out[..got], 0)?;
                        m.drop_front(got);
                    }
                    Op::ReadAllocated(offset, n) => {
                        let mut out = vec![0; n];
                        let got = r.read_allocated(offset, &mut out);
                        prop_assert_eq!(got, n.min(m.queued.len().saturating_sub(offset)));
                        m.check(&out[..got], offset)?;
                    }
                    Op::GetAllocated(offset, n) => {
                        let got = r.get_allocated(offset, n);
                        let avail = n.min(m.queued.len().saturating_sub(offset));
                        prop_assert!(got.len() <= avail);
                        prop_assert!(avail == 0 || !got.is_empty(), "no progress");
                        m.check(got, offset)?;
                    }
                    Op::WriteUnallocated(offset, data) => {
                        let got = r.write_unallocated(offset, &data);
                        prop_assert_eq!(got, data.len().min(m.free.len().saturating_sub(offset)));
                        for (i, &b) in data[..got].iter().enumerate() {
                            m.free[offset + i] = Some(b);
                        }
                    }
                    Op::EnqueueUnallocated(n) => {
                        let got = r.enqueue_unallocated(n);
                        prop_assert_eq!(got, n.min(m.free.len()));
                        m.take_free(got);
                    }
                    Op::DequeueAllocated(n) => {
                        let got = r.dequeue_allocated(n);
                        prop_assert_eq!(got, n.min(m.queued.len()));
                        m.drop_front(got);
                    }
                    Op::FillUnallocated(n, byte) => {
                        let buf = r.get_unallocated(n);
                        let got = buf.len();
                        prop_assert!(got <= n.min(m.free.len()));
                        prop_assert!(n.min(m.free.len()) == 0 || got > 0, "no progress");
                        buf.fill(byte);
                        for slot in m.free.iter_mut().take(got) {
                            *slot = Some(byte);
                        }
                        prop_assert_eq!(r.enqueue_unallocated(got), got);
                        m.take_free(got);
                    }
                    Op::Clear => {
                        r.clear();
                        let cap = r.capacity();
                        m.queued.clear();
                        m.free = vec![None; cap].into();
                    }
                    Op::Release => {
                        let held = r.holds_unused_storage();
                        prop_assert_eq!(r.release_if_unused(), held);
                    }
                    Op::Resize(new_cap) => {
                        let res = r.resize(new_cap);
                        prop_assert_eq!(res.is_ok(), new_cap >= m.queued.len());
                        if res.is_ok() {
                            m.free.resize(new_cap - m.queued.len(), None);
                        }
                    }
                }
                prop_assert_eq!(r.len(), m.queued.len());
                prop_assert_eq!(r.window(), m.free.len());
                prop_assert_eq!(r.capacity(), m.queued.len() + m.free.len());
                prop_assert!(r.allocated() <= r.capacity());
                prop_assert!(r.allocated() >= r.len() + r.dirty);
                prop_assert!(r.allocated() <= (2 * peak).max(min_alloc).min(r.capacity()).max(peak));
                let unused = m.queued.is_empty() && m.free.iter().all(Option::is_none);
                if released && r.is_empty() && r.dirty == 0 {
                    prop_assert!(unused, "given back while the model holds bytes");
                    prop_assert_eq!(r.allocated(), 0, "unused storage is given back");
                }
                if r.allocated() == 0 {
                    peak = 0;
                }
                // Everything queued reads back.
                let mut all = vec![0; r.len()];
                prop_assert_eq!(r.read_allocated(0, &mut all), all.len());
                m.check(&all, 0)?;
            }
        }
    }
}
