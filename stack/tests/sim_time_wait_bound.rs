//! TIME-WAIT is bounded (`TcpConfig::max_time_wait`, Linux
//! tcp_max_tw_buckets): past the bound a connection that closes first
//! skips TIME-WAIT, is counted, and still acknowledges the peer's FIN.

use std::net::{Ipv4Addr, SocketAddrV4};
use tapir_stack::testing::sim::{host_ip, ms, Impairments, Sim};
use tapir_stack::TcpState;

#[test]
fn time_wait_entries_stop_at_the_bound_and_the_rest_are_counted() {
    let mut sim = Sim::new(5);
    // Host 2 serves and closes first (so it holds TIME-WAIT), with room
    // for two entries.
    let server = sim.add_host_with(2, |c| c.tcp.max_time_wait = 2);
    let client = sim.add_host(3);
    sim.connect(server, client, Impairments::clean().delay(ms(1)));
    let l = sim
        .iface(server)
        .tcp_listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80), 8)
        .unwrap();
    for i in 0..5 {
        let now = sim.now();
        let c = sim
            .iface(client)
            .tcp_connect(now, SocketAddrV4::new(host_ip(2), 80))
            .unwrap();
        let mut s = None;
        sim.run_until(
            |sim| {
                s = s.or_else(|| sim.iface(server).tcp_accept(l).ok());
                s.is_some()
            },
            100_000,
        )
        .unwrap();
        let s = s.unwrap();
        sim.iface(server).tcp_close(s);
        // The client sees the FIN, closes too, and is done once our ACK
        // of its FIN arrives (LAST-ACK -> CLOSED): the ACK is sent even
        // when no TIME-WAIT entry is made.
        sim.run_until(
            |sim| sim.iface(client).tcp_state(c) == Some(TcpState::CloseWait),
            100_000,
        )
        .unwrap();
        sim.iface(client).tcp_close(c);
        sim.run_until(|sim| sim.iface(client).tcp_connection_count() == 0, 100_000)
            .unwrap_or_else(|e| panic!("connection {i}: the client's LAST-ACK never ended: {e}"));
    }
    assert_eq!(sim.iface(server).tcp_time_wait_count(), 2);
    assert_eq!(sim.iface(server).stats().tcp_time_wait_overflow, 3);
    assert_eq!(sim.iface(server).stats().tcp_time_wait, 5);
}
