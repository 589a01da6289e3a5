//! The per-connection bound on separate out-of-order ranges
//! (`TcpConfig::max_ooo_ranges`). A path that reorders a tenth of a fast
//! flow holds dozens of holes open at once (10 % of 40 000 segments/s held
//! back 11 ms is 44); the default must hold them all, as Linux's
//! out-of-order queue does, or every segment past the bound is a loss the
//! sender pays for with a retransmission and a smaller window. A
//! connection configured with fewer ranges drops and counts the rest, and
//! the stream still arrives byte-exact.

use std::collections::HashSet;
use tapir_stack::testing::sim::{ms, Impairments, Sim};
use tapir_stack::wire::{EthernetFrame, Ipv4Packet, TcpRepr};
use tapir_stack::Config;

const LEN: usize = 1_000_000;

/// The sequence number and payload length of a TCP segment in `frame`.
fn data_seq(frame: &[u8]) -> Option<(u32, usize)> {
    let eth = EthernetFrame::parse(frame).ok()?;
    let ip = Ipv4Packet::parse(eth.payload).ok()?;
    let (repr, payload) = TcpRepr::parse(ip.payload, ip.repr.src, ip.repr.dst, true).ok()?;
    Some((repr.seq, payload.len()))
}

/// Send `LEN` bytes from a to b over a 5 ms link that loses the first
/// transmission of every other new segment among the 150th to the 450th:
/// about 50 holes open at once in a window-limited flight. Returns
/// the most ranges b held at once, and b's stack-wide and per-connection
/// range drops.
fn transfer(configure: impl FnOnce(&mut Config)) -> (usize, u64, u64) {
    let mut sim = Sim::new(11);
    let a = sim.add_host(2);
    let b = sim.add_host_with(3, configure);
    let link = sim.connect(a, b, Impairments::clean().delay(ms(5)));
    let mut seen = HashSet::new();
    sim.set_filter(link, move |f| {
        if f.from != a {
            return true;
        }
        match data_seq(f.frame) {
            Some((seq, len)) if len > 0 && seen.insert(seq) => {
                let n = seen.len();
                !((150..450).contains(&n) && n % 2 == 0)
            }
            _ => true,
        }
    });
    let data: Vec<u8> = (0..LEN).map(|i| (i * 7 % 251) as u8).collect();
    let mut most = 0;
    let (got, _, s) = sim
        .stream(a, b, 9, &data, 65536, |sim, s| {
            if let Some(s) = s {
                most = most.max(sim.iface(b).tcp_stats(s).unwrap().ooo_ranges);
            }
        })
        .expect("transfer completes");
    assert!(got == data, "the stream arrived changed");
    let per_conn = sim.iface(b).tcp_stats(s).unwrap().ooo_range_drops;
    (most, sim.iface(b).stats().tcp_ooo_ranges_full, per_conn)
}

#[test]
fn fifty_holes_at_once_are_all_held_by_default() {
    let (most, stack, conn) = transfer(|_| {});
    assert_eq!((stack, conn), (0, 0), "segments dropped at the range bound");
    assert!(
        most > 40,
        "only {most} ranges at once: the test did not open enough holes"
    );
}

#[test]
fn segments_past_a_small_range_bound_are_dropped_and_counted() {
    let (most, stack, conn) = transfer(|c| c.tcp.max_ooo_ranges = 16);
    assert!(most <= 16, "{most} ranges held at once");
    assert!(stack > 0, "no segment met a bound of 16 ranges");
    assert_eq!(stack, conn, "stack-wide and per-connection counts differ");
}
