//! The connections' deadlines, all of TCP in one min-heap.
//!
//! Each connection has one deadline at a time (the earliest of its timers,
//! `ConnEntry::deadline`), and it moves often: every ACK that advances
//! SND.UNA restarts the retransmission timer (RFC 6298 5.3). So moving a
//! deadline must be cheap: it pushes the new one and leaves the old entry
//! where it is. An entry whose deadline is no longer its connection's is
//! *stale*; it is skipped when it reaches the top, and the heap is rebuilt
//! from the current entries when stale ones outnumber them, so the heap
//! holds at most about twice as many entries as there are deadlines.
//!
//! Once the heap has grown to what the connections need, nothing here
//! allocates (a `BTreeSet` allocates a node whenever it refills), which
//! keeps the per-packet path free of the allocator.

use crate::socket::SocketHandle;
use crate::time::Instant;
use core::cmp::Reverse;
use std::collections::BinaryHeap;

/// Rebuild when the heap holds this many entries more than twice the
/// current deadlines; the slack keeps a few connections from rebuilding
/// at every move.
const SLACK: usize = 64;

#[derive(Debug, Default)]
pub(crate) struct Deadlines {
    heap: BinaryHeap<Reverse<(Instant, SocketHandle)>>,
    /// Connections that have a deadline (each is in the heap at least
    /// once).
    live: usize,
    /// Reused by [`take_due`](Self::take_due).
    due: Vec<(Instant, SocketHandle)>,
}

impl Deadlines {
    /// The earliest entry: exact after [`skip_stale`](Self::skip_stale).
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((t, _))| *t)
    }

    /// Connection `h`'s deadline moved from `old` to `new`.
    pub fn moved(&mut self, h: SocketHandle, old: Option<Instant>, new: Option<Instant>) {
        if old == new {
            return;
        }
        if old.is_some() {
            self.live -= 1;
        }
        if let Some(t) = new {
            self.live += 1;
            if self.heap.capacity() == 0 {
                // Room for the slack at once, so a few connections never
                // regrow the heap between rebuilds, nor the list of due
                // entries (at most the heap's length).
                self.heap.reserve(2 * SLACK);
                self.due.reserve(2 * SLACK);
            }
            self.heap.push(Reverse((t, h)));
        }
    }

    /// The entries due at `now`, earliest first, for the caller to check
    /// against its connections (stale ones included) and give back with
    /// [`return_due`](Self::return_due). Entries pushed meanwhile wait for
    /// the next call, even if they are due by then.
    pub fn take_due(&mut self, now: Instant) -> Vec<(Instant, SocketHandle)> {
        let mut due = core::mem::take(&mut self.due);
        due.clear();
        while let Some(&Reverse((t, h))) = self.heap.peek() {
            if t > now {
                break;
            }
            self.heap.pop();
            due.push((t, h));
        }
        due
    }

    /// Give back the vector [`take_due`](Self::take_due) lent, keeping its
    /// capacity for the next time.
    pub fn return_due(&mut self, due: Vec<(Instant, SocketHandle)>) {
        self.due = due;
    }

    /// A connection's deadline `t` fired or the connection is gone: it no
    /// longer has one.
    pub fn cleared(&mut self, t: Option<Instant>) {
        if t.is_some() {
            self.live -= 1;
        }
    }

    /// Drop stale entries from the top, so [`next`](Self::next) is a real
    /// deadline, and rebuild the heap if stale entries have piled up.
    /// `current(t, h)` says whether `t` is still `h`'s deadline.
    pub fn skip_stale(&mut self, mut current: impl FnMut(Instant, SocketHandle) -> bool) {
        if self.heap.len() > 2 * self.live + SLACK {
            let mut v = core::mem::take(&mut self.heap).into_vec();
            v.retain(|&Reverse((t, h))| current(t, h));
            // A deadline that moved away and back is in twice.
            v.sort_unstable();
            v.dedup();
            self.heap = BinaryHeap::from(v);
        }
        while let Some(&Reverse((t, h))) = self.heap.peek() {
            if current(t, h) {
                break;
            }
            self.heap.pop();
        }
    }

    /// Entries in the heap, stale ones included.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    /// A model of the connections: handle -> current deadline.
    struct World {
        d: Deadlines,
        conns: HashMap<SocketHandle, Option<Instant>>,
    }

    impl World {
        fn set(&mut self, h: SocketHandle, new: Option<Instant>) {
            let old = self.conns.insert(h, new).flatten();
            self.d.moved(h, old, new);
            let conns = &self.conns;
            self.d
                .skip_stale(|t, h| conns.get(&h).copied().flatten() == Some(t));
        }

        fn fire(&mut self, now: Instant) -> Vec<SocketHandle> {
            let due = self.d.take_due(now);
            let mut fired = Vec::new();
            for &(t, h) in &due {
                if self.conns.get(&h).copied().flatten() == Some(t) {
                    self.conns.insert(h, None);
                    self.d.cleared(Some(t));
                    fired.push(h);
                }
            }
            self.d.return_due(due);
            let conns = &self.conns;
            self.d
                .skip_stale(|t, h| conns.get(&h).copied().flatten() == Some(t));
            fired
        }
    }

    fn handle(index: u32) -> SocketHandle {
        SocketHandle { index, generation: 0 }
    }

    fn world() -> World {
        World {
            d: Deadlines::default(),
            conns: HashMap::new(),
        }
    }

    #[test]
    fn moved_deadlines_fire_once_at_their_new_time() {
        let mut w = world();
        let (a, b) = (handle(1), handle(2));
        w.set(a, Some(at(200)));
        w.set(b, Some(at(300)));
        w.set(a, Some(at(400))); // the RTO restarted
        assert_eq!(w.d.next(), Some(at(300)), "the stale 200 ms entry is skipped");
        assert_eq!(w.fire(at(250)), vec![]);
        assert_eq!(w.fire(at(300)), vec![b]);
        assert_eq!(w.d.next(), Some(at(400)));
        w.set(a, Some(at(200))); // and back
        w.set(a, Some(at(400)));
        assert_eq!(w.fire(at(1000)), vec![a], "a deadline that moved back fires once");
        assert_eq!(w.d.next(), None);
        assert_eq!(w.d.len(), 0);
    }

    #[test]
    fn stale_entries_stay_bounded() {
        let mut w = world();
        let hs: Vec<_> = (0..10).map(handle).collect();
        for round in 0..10_000u64 {
            let h = hs[(round % 10) as usize];
            // Every move later, none ever fires.
            w.set(h, Some(at(1_000_000 + round)));
            assert!(w.d.len() <= 2 * 10 + SLACK + 1, "{} entries", w.d.len());
        }
        let fired = w.fire(at(10_000_000));
        assert_eq!(fired.len(), 10);
    }

    #[test]
    fn removed_connections_do_not_fire() {
        let mut w = world();
        let a = handle(3);
        w.set(a, Some(at(10)));
        w.conns.remove(&a);
        w.d.cleared(Some(at(10)));
        assert!(w.fire(at(20)).is_empty());
        assert_eq!(w.d.live, 0);
    }
}
