//! The hot path allocates nothing: once a bulk transfer between two
//! interfaces is under way, moving more data through it (segments out of
//! the sender's ring, into the receiver's ring, ACKs back, the application
//! writing and reading) takes no heap allocation; nor does a UDP echo
//! exchange once its pooled buffers exist. A counting allocator
//! counts every `alloc`/`realloc` while a steady-state transfer runs; the
//! link is a direct hand-over of each frame from one interface's
//! `poll_transmit` buffer to the other's `handle_frame`, so the harness
//! itself allocates nothing either.
//!
//! One test per binary: the allocator's count is process-wide.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tapir_stack::testing::sim::{host_config, host_ip};
use tapir_stack::{Instant, Interface, SocketHandle};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);
/// The sizes of the last few allocations, for the failure message.
static SIZES: [AtomicUsize; 8] = [const { AtomicUsize::new(0) }; 8];

fn count(size: usize) {
    let i = ALLOCS.fetch_add(1, Ordering::Relaxed);
    SIZES[i % SIZES.len()].store(size, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn allocs() -> usize {
    ALLOCS.load(Ordering::Relaxed)
}

/// Sizes of the last allocations (up to 8), oldest first.
fn last_sizes(n: usize) -> Vec<usize> {
    let end = allocs();
    (end.saturating_sub(n.min(SIZES.len()))..end)
        .map(|i| SIZES[i % SIZES.len()].load(Ordering::Relaxed))
        .collect()
}

/// Two interfaces joined by a lossless wire with no delay: every frame one
/// sends is handed to the other at once.
struct Pair {
    a: Interface,
    b: Interface,
    now: Instant,
    buf: Vec<u8>,
    frames: u64,
}

impl Pair {
    fn new() -> Pair {
        let a = Interface::new(host_config(2, 7)).unwrap();
        let b = Interface::new(host_config(3, 7)).unwrap();
        let buf = vec![0u8; a.max_frame_len().max(b.max_frame_len())];
        Pair {
            a,
            b,
            now: Instant::from_secs(1),
            buf,
            frames: 0,
        }
    }

    /// Moves frames both ways until neither side has anything to send,
    /// then lets 100 µs pass and runs the timers due.
    fn step(&mut self) {
        loop {
            let mut moved = false;
            while let Some(n) = self.a.poll_transmit(self.now, &mut self.buf) {
                self.b.handle_frame(self.now, &self.buf[..n]);
                self.frames += 1;
                moved = true;
            }
            while let Some(n) = self.b.poll_transmit(self.now, &mut self.buf) {
                self.a.handle_frame(self.now, &self.buf[..n]);
                self.frames += 1;
                moved = true;
            }
            if !moved {
                break;
            }
        }
        self.now += Duration::from_micros(100);
        self.a.handle_timeout(self.now);
        self.b.handle_timeout(self.now);
    }
}

/// Sends and receives `len` bytes on an established connection, in writes
/// and reads of 16 KiB, as an application streaming a file would.
fn stream(p: &mut Pair, tx: SocketHandle, rx: SocketHandle, len: usize, chunk: &[u8], buf: &mut [u8]) {
    let (mut sent, mut got) = (0, 0);
    let mut steps = 0;
    while got < len {
        while sent < len {
            match p.a.tcp_send(tx, &chunk[..(len - sent).min(chunk.len())]) {
                Ok(n) if n > 0 => sent += n,
                _ => break,
            }
        }
        p.step();
        while let Ok(n) = p.b.tcp_recv(rx, buf) {
            if n == 0 {
                break;
            }
            got += n;
        }
        steps += 1;
        assert!(steps < 1_000_000, "the transfer stalled at {got} of {len} bytes");
    }
}

/// `n` datagrams of 512 bytes from `a` to an echo on `b` and back.
fn echo(p: &mut Pair, a: SocketHandle, b: SocketHandle, n: usize) {
    let data = [0x33u8; 512];
    let mut buf = [0u8; 2048];
    let to = SocketAddrV4::new(host_ip(3), 7);
    for _ in 0..n {
        p.a.udp_send_to(a, &data, to).unwrap();
        p.step();
        let (len, from) = p.b.udp_recv_from(b, &mut buf).expect("the echo got it");
        p.b.udp_send_to(b, &buf[..len], from).unwrap();
        p.step();
        let (len, _) = p.a.udp_recv_from(a, &mut buf).expect("the echo came back");
        assert_eq!(len, data.len());
    }
}

#[test]
fn steady_state_traffic_allocates_nothing() {
    let mut p = Pair::new();
    let l =
        p.b.tcp_listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 5001), 4)
            .unwrap();
    let tx =
        p.a.tcp_connect(p.now, SocketAddrV4::new(host_ip(3), 5001))
            .unwrap();
    let mut rx = None;
    for _ in 0..100 {
        p.step();
        rx = rx.or_else(|| p.b.tcp_accept(l).ok());
    }
    let rx = rx.expect("the connection was accepted");
    let chunk = vec![0x5au8; 16 * 1024];
    let mut buf = vec![0u8; 16 * 1024];

    // Warm up: the rings, queues and tables grow to what this transfer
    // needs (buffer autotuning included, which follows cwnd to the 4 MiB
    // limit), ARP is resolved. Until a whole transfer allocates nothing;
    // a hot path that allocates per packet never gets there and fails
    // below.
    for _ in 0..4 {
        let before = allocs();
        stream(&mut p, tx, rx, 64 << 20, &chunk, &mut buf);
        if allocs() == before {
            break;
        }
    }

    let frames = p.frames;
    let before = allocs();
    stream(&mut p, tx, rx, 64 << 20, &chunk, &mut buf);
    let n = allocs() - before;
    let frames = p.frames - frames;
    eprintln!("{n} allocations for {frames} frames of a 64 MiB transfer in steady state");
    assert!(frames > 40_000, "only {frames} frames: the transfer did not run");
    assert_eq!(
        n,
        0,
        "{n} heap allocations for {frames} frames on the hot path (last sizes {:?})",
        last_sizes(n)
    );

    let a =
        p.a.udp_bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 4000))
            .unwrap();
    let b = p.b.udp_bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    echo(&mut p, a, b, 1000);
    let before = allocs();
    echo(&mut p, a, b, 10_000);
    let n = allocs() - before;
    eprintln!("{n} allocations for 10 000 UDP echoes");
    assert_eq!(
        n,
        0,
        "{n} heap allocations for 10 000 UDP echoes (last sizes {:?})",
        last_sizes(n)
    );
}
