//! What an idle established connection costs, measured on the heap: a
//! counting allocator tracks the live bytes while two in-memory tapir hosts
//! open `N` connections, exchange a little on each, and go idle. Buffers are
//! allocated on first use and given back once drained, so the figure is the
//! connection's state alone, not its 2 × 256 KiB of buffer bounds.
//!
//! One test per binary: the allocator's count is process-wide.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;
use tapir_stack::testing::sim::{host_config, host_ip, ms, Impairments, Sim};
use tapir_stack::SocketHandle;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

const N: usize = 1000;
const PORT: u16 = 7;
/// The goal of issue 10: a few KB per idle connection, buffers included.
const BUDGET_PER_ENDPOINT: isize = 4096;

#[test]
fn idle_established_connection_costs_a_few_kilobytes() {
    let mut sim = Sim::new(1);
    let grow = |c: &mut tapir_stack::Config| {
        c.max_sockets = 2 * N + 16;
        c.tcp.max_backlog = 2 * N;
    };
    let a = sim.add_host_with(2, grow);
    let b = sim.add_host_with(3, grow);
    sim.connect(a, b, Impairments::clean().delay(ms(1)));
    let l = sim
        .iface(b)
        .tcp_listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT), N)
        .unwrap();
    // Warm up the hosts' own tables (ARP, timers) with one connection so
    // the baseline does not charge them to the connections measured.
    let now = sim.now();
    let _warm = sim
        .iface(a)
        .tcp_connect(now, SocketAddrV4::new(host_ip(3), PORT))
        .unwrap();
    let mut warm_server = None;
    sim.run_until(
        |sim| {
            warm_server = warm_server.or_else(|| sim.iface(b).tcp_accept(l).ok());
            warm_server.is_some()
        },
        100_000,
    )
    .unwrap();
    sim.run_for(Duration::from_secs(1)).unwrap();

    let mut clients: Vec<SocketHandle> = Vec::with_capacity(N);
    let mut servers: Vec<SocketHandle> = Vec::with_capacity(N);
    let base = live();
    for _ in 0..N {
        let now = sim.now();
        clients.push(
            sim.iface(a)
                .tcp_connect(now, SocketAddrV4::new(host_ip(3), PORT))
                .unwrap(),
        );
    }
    sim.run_until(
        |sim| {
            while let Ok(s) = sim.iface(b).tcp_accept(l) {
                servers.push(s);
            }
            servers.len() == N
        },
        1_000_000,
    )
    .unwrap();
    sim.run_for(Duration::from_secs(1)).unwrap();
    let fresh = (live() - base) / (2 * N) as isize;

    // Use every connection once: 1 000 bytes each way, read back.
    let msg = [0x5au8; 1000];
    for (&c, &s) in clients.iter().zip(&servers) {
        assert_eq!(sim.iface(a).tcp_send(c, &msg).unwrap(), msg.len());
        assert_eq!(sim.iface(b).tcp_send(s, &msg).unwrap(), msg.len());
    }
    let mut buf = [0u8; 2000];
    let mut got = vec![0usize; 2 * N];
    sim.run_until(
        |sim| {
            for (i, (&c, &s)) in clients.iter().zip(&servers).enumerate() {
                while let Ok(n @ 1..) = sim.iface(a).tcp_recv(c, &mut buf) {
                    got[2 * i] += n;
                }
                while let Ok(n @ 1..) = sim.iface(b).tcp_recv(s, &mut buf) {
                    got[2 * i + 1] += n;
                }
            }
            got.iter().all(|&n| n == msg.len())
        },
        1_000_000,
    )
    .unwrap();
    // Long enough for every delayed ACK, so the send buffers drain too.
    sim.run_for(Duration::from_secs(2)).unwrap();
    let used = (live() - base) / (2 * N) as isize;

    println!(
        "heap per idle established connection endpoint: {fresh} B fresh, {used} B after \
         1 000 bytes each way (buffer bounds {} B + {} B)",
        host_config(2, 1).tcp.recv_buffer,
        host_config(2, 1).tcp.send_buffer,
    );
    assert!(fresh <= BUDGET_PER_ENDPOINT, "{fresh} B per fresh idle endpoint");
    assert!(used <= BUDGET_PER_ENDPOINT, "{used} B per used idle endpoint");
    assert_eq!(sim.iface(b).tcp_connection_count(), N + 1);
}
