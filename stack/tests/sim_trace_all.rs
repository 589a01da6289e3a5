//! `TcpConfig::trace_connections` (`tapir up --trace DIR`): every new
//! connection records its timeline without being asked, the application
//! drains all of them in one call, and the end of a connection's timeline
//! is kept after the connection is gone, until drained once.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use tapir_stack::testing::sim::{host_ip, ms, Impairments, Sim};
use tapir_stack::{ConnTrace, SocketHandle, TcpState, TraceSample};

const LEN: usize = 300_000;

/// Each connection's timeline, assembled from successive drains, and
/// whether it was reported finished.
#[derive(Default)]
struct Timelines(HashMap<SocketHandle, (Vec<TraceSample>, bool)>);

impl Timelines {
    fn absorb(&mut self, batch: Vec<ConnTrace>) {
        for t in batch {
            let entry = self.0.entry(t.handle).or_default();
            assert!(!entry.1, "{}: samples after the timeline finished", t.handle);
            assert_eq!(t.dropped, 0);
            entry.0.extend(t.samples);
            entry.1 = t.finished;
        }
    }
}

#[test]
fn every_connection_is_traced_to_its_end() {
    let mut sim = Sim::new(5);
    let a = sim.add_host_with(2, |c| c.tcp.trace_connections = Some(100_000));
    let b = sim.add_host_with(3, |c| c.tcp.trace_connections = Some(100_000));
    sim.connect(a, b, Impairments::clean().delay(ms(5)).loss(0.02));
    let now = sim.now();
    let l = sim
        .iface(b)
        .tcp_listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 9), 4)
        .unwrap();
    let c = sim
        .iface(a)
        .tcp_connect(now, SocketAddrV4::new(host_ip(3), 9))
        .unwrap();
    let (mut ta, mut tb) = (Timelines::default(), Timelines::default());
    let (mut sent, mut got, mut s, mut closed) = (0, 0, None, false);
    let data = vec![7u8; 8192];
    let mut buf = vec![0u8; 65536];
    let mut batch = Vec::new();
    sim.run_until(
        |sim| {
            while sent < LEN {
                match sim.iface(a).tcp_send(c, &data[..(LEN - sent).min(data.len())]) {
                    Ok(n) if n > 0 => sent += n,
                    _ => break,
                }
            }
            if sent == LEN && !closed {
                sim.iface(a).tcp_close(c);
                closed = true;
            }
            s = s.or_else(|| sim.iface(b).tcp_accept(l).ok());
            if let Some(h) = s {
                loop {
                    match sim.iface(b).tcp_recv(h, &mut buf) {
                        Ok(0) => {
                            sim.iface(b).tcp_close(h);
                            s = None;
                            break;
                        }
                        Ok(n) => got += n,
                        Err(_) => break,
                    }
                }
            }
            sim.iface(a).tcp_drain_traces(&mut batch);
            ta.absorb(std::mem::take(&mut batch));
            sim.iface(b).tcp_drain_traces(&mut batch);
            tb.absorb(std::mem::take(&mut batch));
            got == LEN && ta.0.values().all(|t| t.1) && tb.0.values().all(|t| t.1) && !ta.0.is_empty()
        },
        50_000_000,
    )
    .expect("the transfer completes and both timelines end");

    for (name, t) in [("sender", &ta), ("receiver", &tb)] {
        assert_eq!(t.0.len(), 1, "{name}: one connection, one timeline");
        let (samples, finished) = t.0.values().next().unwrap();
        assert!(finished);
        assert!(
            samples.windows(2).all(|w| w[0].time <= w[1].time),
            "{name}: time runs forward"
        );
        // A sample per change (the receiver's ~80 with paced bursts of a
        // few segments, the sender's ~400).
        assert!(samples.len() > 50, "{name}: only {} samples", samples.len());
        let last = samples.last().unwrap();
        assert!(
            matches!(last.state, TcpState::Closed | TcpState::TimeWait),
            "{name} ended in {:?}",
            last.state
        );
    }
    // The receiver's timeline covers its handshake although it was only
    // a half-open record then: it starts at the SYN, in SYN-RECEIVED.
    let (samples, _) = tb.0.values().next().unwrap();
    assert_eq!(samples[0].state, TcpState::SynReceived);
    assert_eq!(samples[1].state, TcpState::Established);
    let (samples, _) = ta.0.values().next().unwrap();
    assert_eq!(samples[0].state, TcpState::SynSent);
    // SYN, the data and the FIN, all acknowledged.
    let first = samples[0].snd_una;
    let last = samples.last().unwrap().snd_una;
    assert_eq!(last.wrapping_sub(first) as usize, LEN + 2);
    assert!(
        samples.iter().any(|s| s.retransmits > 0),
        "2 % loss: some retransmission shows"
    );
}
