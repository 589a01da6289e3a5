//! Half-open connections (SYN-RECEIVED), as Linux's request socks: a
//! small record per 4-tuple ([`HalfOpen`], no buffers, no boxes), found
//! by the demultiplexer before the listener, and the SYN-ACK timers of
//! all of them in a min-heap of their own. The full control block is
//! made only when the ACK completes the handshake (Linux tcp_check_req ->
//! tcp_v4_syn_recv_sock). Their number is bounded by the listeners'
//! backlogs: each counts in its listener's SYN queue.
//!
//! A record's timer moves only when the record is put back (after its
//! timer fired or a segment was answered), which pushes a new heap entry
//! and leaves the old one stale; stale entries are skipped at the top and
//! the heap is rebuilt when they outnumber the live ones, as in
//! `deadlines.rs`.

use super::conn::HalfOpen;
use super::table::ConnKey;
use crate::socket::SocketHandle;
use crate::time::Instant;
use core::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// Rebuild the heap when it holds this many entries more than twice the
/// records.
const SLACK: usize = 64;

/// One half-open connection: its listener and its record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request {
    pub listener: SocketHandle,
    pub half: HalfOpen,
}

#[derive(Debug, Default)]
pub(crate) struct Requests {
    map: HashMap<ConnKey, Request>,
    heap: BinaryHeap<Reverse<(Instant, ConnKey)>>,
    /// Requests per listener: its SYN queue's length.
    per_listener: HashMap<SocketHandle, usize>,
}

impl Requests {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// The length of listener `l`'s SYN queue.
    pub fn of(&self, l: SocketHandle) -> usize {
        self.per_listener.get(&l).copied().unwrap_or(0)
    }

    fn count(&mut self, l: SocketHandle, up: bool) {
        let n = self.per_listener.entry(l).or_insert(0);
        if up {
            *n += 1;
        } else {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_listener.remove(&l);
            }
        }
    }

    pub fn get(&self, key: &ConnKey) -> Option<&Request> {
        self.map.get(key)
    }

    pub fn contains(&self, key: &ConnKey) -> bool {
        self.map.contains_key(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&ConnKey, &Request)> + '_ {
        self.map.iter()
    }

    pub fn insert(&mut self, key: ConnKey, req: Request) {
        if let Some(t) = req.half.rto_at {
            self.heap.push(Reverse((t, key)));
        }
        if let Some(old) = self.map.insert(key, req) {
            self.count(old.listener, false);
        }
        self.count(req.listener, true);
        self.tidy();
    }

    pub fn remove(&mut self, key: &ConnKey) -> Option<Request> {
        let r = self.map.remove(key);
        if let Some(r) = r {
            self.count(r.listener, false);
        }
        self.tidy();
        r
    }

    /// Drop every request of listener `l`; how many there were.
    pub fn remove_listener(&mut self, l: SocketHandle) -> usize {
        let before = self.map.len();
        self.map.retain(|_, r| r.listener != l);
        self.per_listener.remove(&l);
        self.tidy();
        before - self.map.len()
    }

    /// The earliest SYN-ACK timer.
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((t, _))| *t)
    }

    /// Take out the requests whose timer is due at `now`, into `out`.
    pub fn take_due(&mut self, now: Instant, out: &mut Vec<(ConnKey, Request)>) {
        while let Some(&Reverse((t, key))) = self.heap.peek() {
            if t > now {
                break;
            }
            self.heap.pop();
            if self.map.get(&key).is_some_and(|r| r.half.rto_at == Some(t)) {
                if let Some(r) = self.map.remove(&key) {
                    self.count(r.listener, false);
                    out.push((key, r));
                }
            }
        }
        self.tidy();
    }

    fn current(map: &HashMap<ConnKey, Request>, t: Instant, key: &ConnKey) -> bool {
        map.get(key).is_some_and(|r| r.half.rto_at == Some(t))
    }

    /// Skip stale entries at the top; rebuild when they pile up.
    fn tidy(&mut self) {
        let map = &self.map;
        if self.heap.len() > 2 * map.len() + SLACK {
            let mut v = core::mem::take(&mut self.heap).into_vec();
            v.retain(|Reverse((t, k))| Self::current(map, *t, k));
            v.sort_unstable();
            v.dedup();
            self.heap = BinaryHeap::from(v);
        }
        while let Some(Reverse((t, k))) = self.heap.peek() {
            if Self::current(map, *t, k) {
                break;
            }
            self.heap.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A half-open connection costs its record and its slot in the table
    /// (key and listener beside it), against about 2.3 KB for the whole
    /// control block it used to be, and 320 bytes for Linux's
    /// `request_sock_TCP` (its slab's object size on Linux 6.18, x86-64,
    /// /proc/slabinfo).
    #[test]
    fn a_half_open_record_is_small() {
        let record = core::mem::size_of::<HalfOpen>();
        let slot = core::mem::size_of::<(ConnKey, Request)>();
        let timer = core::mem::size_of::<Reverse<(Instant, ConnKey)>>();
        eprintln!("half-open: record {record} B, table slot {slot} B, timer entry {timer} B");
        assert!(record <= 80, "record {record} B");
        assert!(slot <= 96, "slot {slot} B");
        assert!(timer <= 16, "timer entry {timer} B");
    }
}
