//! Writes the seed corpora of the `script` and `wire` targets (see
//! README.md, "Seed corpus"; `seeds.sh` runs this, then derives the
//! structured targets' seeds):
//!
//! - `seeds/script/`: the segment scripts under `stack/tests/scripts`
//!   (those up to 1200 bytes, to keep the corpus small);
//! - `seeds/wire/`: frames the simulator carried between two tapir stacks
//!   (ARP, a TCP handshake, bulk data both ways with SACK and timestamps,
//!   and the close), plus a UDP datagram, an ICMP echo request and the two
//!   fragments of a UDP datagram, as a peer sends them.
//!
//! Run from `fuzz/`: `cargo run --example seeds`.

use core::net::{Ipv4Addr, SocketAddrV4};
use std::collections::HashSet;
use std::fs;
use std::path::Path;
use tapir_stack::testing::sim::{host_ip, ms, Impairments, Sim};
use tapir_stack::testing::{self, PEER_IP, PEER_MAC, TAPIR_IP, TAPIR_MAC};
use tapir_stack::wire::{EtherType, Protocol};

const SCRIPT_MAX: u64 = 1200;
const WIRE_MAX_FRAMES: usize = 48;

fn main() -> std::io::Result<()> {
    let out = Path::new("seeds");
    let scripts = out.join("script");
    let wire = out.join("wire");
    for d in [&scripts, &wire] {
        if d.exists() {
            fs::remove_dir_all(d)?;
        }
        fs::create_dir_all(d)?;
    }

    let mut n = 0;
    let mut entries: Vec<_> = fs::read_dir("../stack/tests/scripts")?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "pkt") && e.metadata()?.len() <= SCRIPT_MAX {
            fs::copy(&p, scripts.join(p.file_name().expect("a file")))?;
            n += 1;
        }
    }
    println!("seeds/script: {n} scripts");

    let mut frames = sim_frames();
    frames.truncate(WIRE_MAX_FRAMES);
    frames.push(testing::udp_from_peer(40000, 7, b"hello"));
    frames.push(testing::ipv4_from_peer(
        Protocol::Icmp,
        &testing::icmp_echo_request(1, 1, b"ping"),
    ));
    let dgram = testing::udp_datagram(
        SocketAddrV4::new(PEER_IP, 40000),
        SocketAddrV4::new(TAPIR_IP, 7),
        &[0x5a; 1200],
    );
    for (i, chunk) in dgram.chunks(800).enumerate() {
        let more = (i + 1) * 800 < dgram.len();
        frames.push(testing::ethernet(
            TAPIR_MAC,
            PEER_MAC,
            EtherType::Ipv4,
            &testing::ipv4_packet(PEER_IP, TAPIR_IP, Protocol::Udp, 9, more, i * 800, chunk),
        ));
    }
    for (i, f) in frames.iter().enumerate() {
        fs::write(wire.join(format!("frame-{i:03}")), f)?;
    }
    println!("seeds/wire: {} frames", frames.len());
    Ok(())
}

/// The distinct frames (by length and flags byte) of a short transfer
/// between two tapir stacks over a lossy link, in the order they went.
fn sim_frames() -> Vec<Vec<u8>> {
    let mut sim = Sim::new(1);
    let a = sim.add_host(2);
    let b = sim.add_host(3);
    let link = sim.connect(a, b, Impairments::clean().delay(ms(1)).loss(0.05));
    sim.capture(link);
    let l = sim
        .iface(b)
        .tcp_listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 5001), 4)
        .expect("listen");
    let now = sim.now();
    let c = sim
        .iface(a)
        .tcp_connect(now, SocketAddrV4::new(host_ip(3), 5001))
        .expect("connect");
    let mut server = None;
    let (mut up, mut down) = (0usize, 0usize);
    let data = vec![0x42u8; 4000];
    let mut buf = vec![0u8; 8192];
    let mut closed = false;
    let _ = sim.run_until(
        |sim| {
            if server.is_none() {
                server = sim.iface(b).tcp_accept(l).ok();
            }
            if up < 20_000 {
                up += sim.iface(a).tcp_send(c, &data).unwrap_or(0);
            }
            if let Some(s) = server {
                if down < 20_000 {
                    down += sim.iface(b).tcp_send(s, &data).unwrap_or(0);
                }
                while matches!(sim.iface(b).tcp_recv(s, &mut buf), Ok(n) if n > 0) {}
            }
            while matches!(sim.iface(a).tcp_recv(c, &mut buf), Ok(n) if n > 0) {}
            if up >= 20_000 && down >= 20_000 && !closed {
                let _ = sim.iface(a).tcp_shutdown(c);
                if let Some(s) = server {
                    let _ = sim.iface(b).tcp_shutdown(s);
                }
                closed = true;
            }
            closed && sim.now().total_millis() > 5_000
        },
        200_000,
    );
    let mut seen = HashSet::new();
    sim.captured(link)
        .iter()
        .filter(|f| seen.insert((f.frame.len(), f.frame.get(47).copied())))
        .map(|f| f.frame.clone())
        .collect()
}
