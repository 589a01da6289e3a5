//! The stack-wide bound on out-of-order bytes
//! (`TcpConfig::max_ooo_bytes_total`): segments beyond it are dropped and
//! counted, the transfer still completes byte-exact, and the running total
//! returns to zero.

use tapir_stack::testing::sim::{ms, Impairments, Sim};
use tapir_stack::wire::{EthernetFrame, Ipv4Packet, TcpRepr};

const LEN: usize = 100_000;
const BUDGET: usize = 3 * 1448;

fn data_len(frame: &[u8]) -> Option<usize> {
    let eth = EthernetFrame::parse(frame).ok()?;
    let ip = Ipv4Packet::parse(eth.payload).ok()?;
    let (_, payload) = TcpRepr::parse(ip.payload, ip.repr.src, ip.repr.dst, true).ok()?;
    Some(payload.len())
}

#[test]
fn out_of_order_data_beyond_the_stack_wide_budget_is_dropped_and_counted() {
    let mut sim = Sim::new(9);
    let a = sim.add_host(2);
    let b = sim.add_host_with(3, |c| c.tcp.max_ooo_bytes_total = BUDGET);
    let link = sim.connect(a, b, Impairments::clean().delay(ms(5)));
    // Lose the 3rd data segment once: the ten behind it arrive out of order.
    let mut n = 0;
    sim.set_filter(link, move |f| {
        if f.from == a && data_len(f.frame).is_some_and(|l| l > 0) {
            n += 1;
            return n != 3;
        }
        true
    });
    let data: Vec<u8> = (0..LEN).map(|i| (i * 7 % 251) as u8).collect();
    let mut max_ooo = 0;
    let (got, _, s) = sim
        .stream(a, b, 9, &data, 16384, |sim, _| {
            max_ooo = max_ooo.max(sim.iface(b).tcp_ooo_bytes());
        })
        .expect("transfer completes");
    assert!(got == data, "the stream arrived changed");
    assert!(max_ooo <= BUDGET, "held {max_ooo} out-of-order bytes");
    assert!(max_ooo > 0, "nothing was held out of order at all");
    let dropped = sim.iface(b).stats().tcp_ooo_budget_full;
    assert!(dropped > 0, "no segment met the budget");
    assert_eq!(sim.iface(b).tcp_stats(s).unwrap().ooo_budget_drops, dropped);
    assert_eq!(sim.iface(b).tcp_ooo_bytes(), 0);
}
