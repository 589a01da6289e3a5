//! UDP, ARP, IP fragmentation and ICMP echo on the simulated network:
//! tapir against tapir over clean and impaired links, and tapir against
//! smoltcp. Every test is deterministic; a failing seed is named in the
//! panic and replays alone with `TAPIR_SIM_SEED=<seed>`.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use tapir_stack::testing::sim::{
    for_each_seed, host_ip, host_mac, ms, Impairments, LinkId, NodeId, Rng, Sim,
};
use tapir_stack::testing::smoltcp_peer::smoltcp;
use tapir_stack::{Interface, SocketHandle, Stats};

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr, IpAddress};

const ECHO_PORT: u16 = 7;
const CLIENT_PORT: u16 = 40000;

fn addr(n: u8, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(host_ip(n), port)
}

/// `port` on every address of the host.
fn any(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)
}

/// The datagram with sequence number `seq`: the number, then bytes no
/// corruption could turn into another datagram's, `len` bytes in all.
fn payload(seq: u32, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(u64::from(seq) ^ 0xda7a);
    let mut p: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
    p[..4].copy_from_slice(&seq.to_be_bytes());
    p
}

/// The length of datagram `seq` in the small-datagram tests: 4 to 1400 bytes.
fn small_len(seq: u32) -> usize {
    4 + (seq as usize * 211) % 1397
}

/// Is `data` exactly datagram `seq` of length `len(seq)`? Returns the seq.
fn check(data: &[u8], len: impl Fn(u32) -> usize) -> Result<u32, String> {
    let seq = data
        .get(..4)
        .map(|b| u32::from_be_bytes(b.try_into().unwrap()))
        .ok_or_else(|| format!("a {}-byte datagram reached the application", data.len()))?;
    if seq > 1_000_000 || data != payload(seq, len(seq)) {
        return Err(format!(
            "a damaged datagram reached the application ({} bytes, seq field {seq})",
            data.len()
        ));
    }
    Ok(seq)
}

/// Answer every queued datagram on `sock` with the same bytes; return what
/// was echoed.
fn echo(iface: &mut Interface, sock: SocketHandle) -> Vec<Vec<u8>> {
    let mut buf = vec![0u8; 65536];
    let mut echoed = Vec::new();
    while let Ok((n, from)) = iface.udp_recv_from(sock, &mut buf) {
        iface.udp_send_to(sock, &buf[..n], from).expect("echo send");
        echoed.push(buf[..n].to_vec());
    }
    echoed
}

/// Take every queued datagram on `sock`.
fn recv_all(iface: &mut Interface, sock: SocketHandle) -> Vec<(Vec<u8>, SocketAddrV4)> {
    let mut buf = vec![0u8; 65536];
    let mut got = Vec::new();
    while let Ok((n, from)) = iface.udp_recv_from(sock, &mut buf) {
        got.push((buf[..n].to_vec(), from));
    }
    got
}

/// Two tapir hosts, 10.77.0.2 (client) and 10.77.0.3 (echo server), on one link.
struct EchoPair {
    sim: Sim,
    client: NodeId,
    server: NodeId,
    link: LinkId,
    csock: SocketHandle,
    ssock: SocketHandle,
}

impl EchoPair {
    fn new(seed: u64, imp: Impairments) -> Self {
        let mut sim = Sim::new(seed);
        let client = sim.add_host(2);
        let server = sim.add_host(3);
        let link = sim.connect(client, server, imp);
        let csock = sim.iface(client).udp_bind(any(CLIENT_PORT)).unwrap();
        let ssock = sim.iface(server).udp_bind(any(ECHO_PORT)).unwrap();
        EchoPair {
            sim,
            client,
            server,
            link,
            csock,
            ssock,
        }
    }

    /// Resolve ARP both ways over a clean link with one datagram (consumed
    /// here), then give the link `imp`: the test then measures the data, not
    /// an unlucky first ARP exchange.
    fn warmed_up(seed: u64, imp: Impairments) -> Self {
        let mut p = EchoPair::new(seed, Impairments::clean());
        let (client, server, csock, ssock) = (p.client, p.server, p.csock, p.ssock);
        p.sim
            .iface(client)
            .udp_send_to(csock, b"warm", addr(3, ECHO_PORT))
            .unwrap();
        p.sim
            .run_until(|sim| !recv_all(sim.iface(server), ssock).is_empty(), 100)
            .unwrap();
        p.sim.set_impairments(p.link, imp);
        p
    }
}

/// Checks that hold on any link: each side received exactly the frames the
/// link delivered to it, sent exactly the frames the link carried from it,
/// and every frame on the link is accounted for.
fn check_accounting(sim: &Sim, link: LinkId, a: NodeId, b: NodeId) -> Result<(), String> {
    for (me, other) in [(a, b), (b, a)] {
        let stats: &Stats = sim.node::<Interface>(me).stats();
        let towards_me = sim.stats_towards(link, me);
        let towards_other = sim.stats_towards(link, other);
        if stats.rx_frames != towards_me.delivered {
            return Err(format!(
                "{me} handled {} frames, the link delivered {}",
                stats.rx_frames, towards_me.delivered
            ));
        }
        if stats.tx_frames != towards_other.sent {
            return Err(format!(
                "{me} sent {} frames, the link carried {}",
                stats.tx_frames, towards_other.sent
            ));
        }
        if !towards_me.is_balanced() {
            return Err(format!("link counters do not add up: {towards_me:?}"));
        }
    }
    Ok(())
}

/// The checksum failures a host counted: each one is a corrupted frame caught.
fn checksum_drops(s: &Stats) -> u64 {
    s.ipv4_bad_checksum + s.udp_bad_checksum + s.icmp_bad_checksum
}

#[test]
fn clean_link_resolves_arp_and_echoes_100_datagrams() {
    let mut p = EchoPair::new(1, Impairments::clean().delay(ms(1)));
    let (client, server, csock, ssock) = (p.client, p.server, p.csock, p.ssock);
    for seq in 0..100u32 {
        let data = payload(seq, small_len(seq));
        p.sim
            .iface(client)
            .udp_send_to(csock, &data, addr(3, ECHO_PORT))
            .unwrap();
        let mut reply = None;
        p.sim
            .run_until(
                |sim| {
                    echo(sim.iface(server), ssock);
                    reply = recv_all(sim.iface(client), csock).pop();
                    reply.is_some()
                },
                1000,
            )
            .unwrap_or_else(|e| panic!("datagram {seq}: {e}"));
        let (got, from) = reply.unwrap();
        assert_eq!(got, data, "datagram {seq} came back changed");
        assert_eq!(from, addr(3, ECHO_PORT));
    }
    // The first datagram waited for one ARP exchange; the rest went at once.
    // Each round trip is 2 ms on the wire; ARP added 2 ms.
    assert_eq!(p.sim.now(), tapir_stack::Instant::from_millis(202));
    let (c, s) = (
        p.sim.iface(client).stats().clone(),
        p.sim.iface(server).stats().clone(),
    );
    assert_eq!((c.arp_requests_tx, c.arp_replies_rx), (1, 1));
    assert_eq!(
        (s.arp_requests_rx, s.arp_replies_tx, s.arp_requests_tx),
        (1, 1, 0)
    );
    assert_eq!((c.udp_tx, c.udp_rx, s.udp_tx, s.udp_rx), (100, 100, 100, 100));
    assert_eq!(c.total_drops() + s.total_drops(), 0, "client:\n{c}server:\n{s}");
    assert_eq!(p.sim.iface(client).neighbor(host_ip(3)), Some(host_mac(3)));
    assert_eq!(p.sim.iface(server).neighbor(host_ip(2)), Some(host_mac(2)));
    check_accounting(&p.sim, p.link, client, server).unwrap();
    assert_eq!(p.sim.link_stats(p.link).delivered, 2 + 200);
}

/// Send `count` datagrams from the client, one every `gap`, while the server
/// echoes; then let the stragglers land. Returns the sequence numbers the
/// server and the client received (with duplicates), having checked every
/// byte of each.
fn lossy_echo(
    p: &mut EchoPair,
    count: u32,
    len: impl Fn(u32) -> usize + Copy,
) -> Result<(Vec<u32>, Vec<u32>), String> {
    let (client, server, csock, ssock) = (p.client, p.server, p.csock, p.ssock);
    let mut at_server = Vec::new();
    let mut at_client = Vec::new();
    let mut failure = None;
    let mut pump = |sim: &mut Sim| {
        for d in echo(sim.iface(server), ssock) {
            match check(&d, len) {
                Ok(seq) => at_server.push(seq),
                Err(e) => failure = failure.take().or(Some(format!("server: {e}"))),
            }
        }
        for (d, from) in recv_all(sim.iface(client), csock) {
            if from != addr(3, ECHO_PORT) {
                failure = failure.take().or(Some(format!("client: reply from {from}")));
            }
            match check(&d, len) {
                Ok(seq) => at_client.push(seq),
                Err(e) => failure = failure.take().or(Some(format!("client: {e}"))),
            }
        }
    };
    for seq in 0..count {
        p.sim
            .iface(client)
            .udp_send_to(csock, &payload(seq, len(seq)), addr(3, ECHO_PORT))
            .map_err(|e| format!("send {seq}: {e}"))?;
        p.sim.run_for_with(ms(3), &mut pump).map_err(|e| e.to_string())?;
    }
    // ARP gives up after 3 s; fragments wait 30 s for their siblings.
    p.sim
        .run_for_with(ms(31_000), &mut pump)
        .map_err(|e| e.to_string())?;
    match failure {
        Some(e) => Err(e),
        None => Ok((at_server, at_client)),
    }
}

fn impaired() -> Impairments {
    Impairments::clean()
        .loss(0.10)
        .delay(ms(5))
        .jitter(ms(2))
        .duplicate(0.01)
        .reorder(0.02)
        .corrupt(0.03)
}

#[test]
fn impaired_link_delivers_only_exact_datagrams() {
    let mut corrupted = 0;
    let mut caught = 0;
    let mut echoed = 0;
    for_each_seed(0..20, |seed| {
        let mut p = EchoPair::warmed_up(seed, impaired());
        let (at_server, at_client) = lossy_echo(&mut p, 150, small_len)?;
        check_accounting(&p.sim, p.link, p.client, p.server)?;
        let c = p.sim.iface(p.client).stats().clone();
        let s = p.sim.iface(p.server).stats().clone();
        let link = p.sim.link_stats(p.link);
        // Every datagram that reached an application is one that was sent;
        // the hosts' UDP counters agree with what the applications read.
        // (The warm-up datagram is one more sent and received.)
        if s.udp_rx != at_server.len() as u64 + 1 || c.udp_rx != at_client.len() as u64 {
            return Err(format!(
                "udp_rx {}/{} but apps read {}/{}",
                s.udp_rx,
                c.udp_rx,
                at_server.len(),
                at_client.len()
            ));
        }
        if s.udp_tx != at_server.len() as u64 || c.udp_tx != 151 {
            return Err(format!("udp_tx server {} client {}", s.udp_tx, c.udp_tx));
        }
        // Only corruption makes a checksum fail.
        let bad = checksum_drops(&c) + checksum_drops(&s);
        if bad > link.corrupted {
            return Err(format!(
                "{bad} checksum failures from {} corrupted frames",
                link.corrupted
            ));
        }
        // With 10 % loss each way most datagrams still make it.
        if at_client.len() < 90 {
            return Err(format!("only {} of 150 round trips completed", at_client.len()));
        }
        corrupted += link.corrupted;
        caught += bad;
        echoed += at_client.len();
        Ok::<(), String>(())
    });
    // Over all the seeds corruption did happen, and checksums caught it.
    assert!(
        corrupted > 100 && caught > corrupted / 2,
        "{caught} of {corrupted} corrupted frames caught"
    );
    assert!(echoed > 20 * 100, "{echoed} round trips");
}

#[test]
fn fragmented_datagrams_arrive_whole_or_not_at_all() {
    const LEN: usize = 20_000;
    let mut whole = 0;
    let mut timed_out = 0;
    for_each_seed(100..106, |seed| {
        let imp = Impairments::clean()
            .loss(0.03)
            .delay(ms(5))
            .jitter(ms(2))
            .duplicate(0.01)
            .reorder(0.02)
            .corrupt(0.01);
        let mut p = EchoPair::new(seed, imp);
        let (at_server, at_client) = lossy_echo(&mut p, 12, |_| LEN)?;
        check_accounting(&p.sim, p.link, p.client, p.server)?;
        let link = p.sim.link_stats(p.link);
        if link.dropped_mtu != 0 {
            return Err(format!("{} frames over the MTU", link.dropped_mtu));
        }
        for node in [p.client, p.server] {
            let iface = p.sim.iface(node);
            // 31 s after the last fragment, nothing is left half-assembled.
            if iface.reassemblies_in_progress() != 0 || iface.reassembly_bytes() != 0 {
                return Err(format!(
                    "{node} still holds {} bytes of fragments",
                    iface.reassembly_bytes()
                ));
            }
            let s = iface.stats();
            whole += s.frag_reassembled;
            timed_out += s.frag_timeout;
            // 20008 bytes of UDP in 1480-byte pieces.
            if s.ipv4_frags_tx != s.udp_tx * 14 {
                return Err(format!(
                    "{} fragments for {} datagrams",
                    s.ipv4_frags_tx, s.udp_tx
                ));
            }
        }
        if at_server.is_empty() {
            return Err("no datagram survived".into());
        }
        let _ = at_client;
        Ok::<(), String>(())
    });
    assert!(
        whole > 20 && timed_out > 5,
        "{whole} reassembled, {timed_out} timed out"
    );
}

#[test]
fn same_seed_replays_the_same_network() {
    let run = |seed| {
        let mut p = EchoPair::new(seed, impaired());
        let (a, b) = lossy_echo(&mut p, 40, small_len).unwrap();
        (p.sim.trace_hash(), p.sim.deliveries(), a, b)
    };
    let first = run(5);
    assert_eq!(first, run(5));
    assert_ne!(first.0, run(6).0);
}

#[test]
fn hosts_on_a_switch_talk_pairwise() {
    let mut sim = Sim::new(9);
    let sw = sim.add_switch();
    let hosts: Vec<NodeId> = (2..6).map(|n| sim.add_host(n)).collect();
    let socks: Vec<SocketHandle> = hosts
        .iter()
        .map(|&h| {
            sim.attach(sw, h, Impairments::clean().delay(ms(1)));
            sim.iface(h).udp_bind(any(ECHO_PORT)).unwrap()
        })
        .collect();
    // Every host sends one datagram to every other host.
    for (i, &h) in hosts.iter().enumerate() {
        for j in 0..hosts.len() {
            if i != j {
                let data = [i as u8, j as u8];
                sim.iface(h)
                    .udp_send_to(socks[i], &data, addr(2 + j as u8, ECHO_PORT))
                    .unwrap();
            }
        }
    }
    sim.run_until_idle(10_000).unwrap();
    for (j, &h) in hosts.iter().enumerate() {
        let mut got: Vec<(Vec<u8>, SocketAddrV4)> = recv_all(sim.iface(h), socks[j]);
        got.sort();
        let expected: Vec<(Vec<u8>, SocketAddrV4)> = (0..hosts.len())
            .filter(|&i| i != j)
            .map(|i| (vec![i as u8, j as u8], addr(2 + i as u8, ECHO_PORT)))
            .collect();
        assert_eq!(got, expected, "host {j}");
        // After ARP the switch knows every port, so unicast IP frames reach
        // only their destination.
        let s = sim.iface(h).stats();
        assert_eq!(s.udp_rx, 3);
        assert_eq!(s.eth_not_for_us, 0);
    }
    assert!(sim.link_stats(sw).is_balanced());
}

// ----- against smoltcp -----

/// tapir at 10.77.0.2, smoltcp at 10.77.0.3.
fn with_smoltcp(seed: u64, imp: Impairments) -> (Sim, NodeId, NodeId, LinkId) {
    let mut sim = Sim::new(seed);
    let tapir = sim.add_host(2);
    let peer = sim.add_smoltcp(3);
    let link = sim.connect(tapir, peer, imp);
    (sim, tapir, peer, link)
}

#[test]
fn smoltcp_pings_tapir() {
    let (mut sim, tapir, peer, _) = with_smoltcp(3, Impairments::clean().delay(ms(1)));
    const IDENT: u16 = 0x7a9;
    let icmp = sim.smoltcp(peer).add_icmp_socket(IDENT);
    let caps = ChecksumCapabilities::default();
    for seq in 0..10u16 {
        let data = payload(u32::from(seq), 56);
        let request = Icmpv4Repr::EchoRequest {
            ident: IDENT,
            seq_no: seq,
            data: &data,
        };
        let socket = sim.smoltcp(peer).icmp_socket(icmp);
        let buf = socket
            .send(request.buffer_len(), IpAddress::from(host_ip(2)))
            .unwrap();
        request.emit(&mut Icmpv4Packet::new_unchecked(buf), &caps);
        let mut reply = None;
        sim.run_until(
            |sim| {
                let socket = sim.smoltcp(peer).icmp_socket(icmp);
                if let Ok((bytes, from)) = socket.recv() {
                    reply = Some((bytes.to_vec(), from));
                }
                reply.is_some()
            },
            1000,
        )
        .unwrap_or_else(|e| panic!("ping {seq}: {e}"));
        let (bytes, from) = reply.unwrap();
        assert_eq!(from, IpAddress::from(host_ip(2)));
        let packet = Icmpv4Packet::new_checked(&bytes[..]).unwrap();
        match Icmpv4Repr::parse(&packet, &caps).expect("smoltcp accepts tapir's reply and its checksum") {
            Icmpv4Repr::EchoReply {
                ident,
                seq_no,
                data: echoed,
            } => {
                assert_eq!((ident, seq_no), (IDENT, seq));
                assert_eq!(echoed, &data[..]);
            }
            other => panic!("expected an echo reply, got {other:?}"),
        }
    }
    let s = sim.iface(tapir).stats();
    assert_eq!((s.icmp_echo_requests_rx, s.icmp_echo_replies_tx), (10, 10));
    assert_eq!(s.total_drops(), 0, "{s}");
}

#[test]
fn smoltcp_udp_round_trips_through_tapir_echo() {
    for_each_seed(0..5, |seed| {
        let imp = Impairments::clean().delay(ms(2)).jitter(ms(1)).loss(0.05);
        let (mut sim, tapir, peer, link) = with_smoltcp(seed, imp);
        let echo_sock = sim.iface(tapir).udp_bind(any(ECHO_PORT)).unwrap();
        let usock = sim.smoltcp(peer).add_udp_socket(CLIENT_PORT);
        let mut replies = HashMap::new();
        let mut pump = |sim: &mut Sim| {
            echo(sim.iface(tapir), echo_sock);
            while let Ok((d, meta)) = sim.smoltcp(peer).udp_socket(usock).recv() {
                assert_eq!(meta.endpoint.addr, IpAddress::from(host_ip(2)));
                assert_eq!(meta.endpoint.port, ECHO_PORT);
                let seq = check(d, small_len).unwrap();
                *replies.entry(seq).or_insert(0) += 1;
            }
        };
        for seq in 0..50u32 {
            let data = payload(seq, small_len(seq));
            let to = (IpAddress::from(host_ip(2)), ECHO_PORT);
            sim.smoltcp(peer)
                .udp_socket(usock)
                .send_slice(&data, to)
                .map_err(|e| e.to_string())?;
            sim.run_for_with(ms(5), &mut pump).map_err(|e| e.to_string())?;
        }
        // Long enough for smoltcp to retry a lost ARP request (after 1 s):
        // its socket holds the datagrams until then.
        sim.run_for_with(ms(3000), &mut pump).map_err(|e| e.to_string())?;
        let s = sim.iface(tapir).stats();
        if s.udp_bad_checksum != 0 || s.ipv4_bad_checksum != 0 {
            return Err(format!("tapir rejected smoltcp's checksums:\n{s}"));
        }
        if replies.len() < 35 {
            return Err(format!("only {} of 50 round trips", replies.len()));
        }
        if !sim.link_stats(link).is_balanced() {
            return Err("link counters do not add up".into());
        }
        Ok(())
    });
}

#[test]
fn tapir_sends_udp_to_smoltcp_including_fragmented() {
    let (mut sim, tapir, peer, link) = with_smoltcp(4, Impairments::clean().delay(ms(1)));
    let tsock = sim.iface(tapir).udp_bind(any(CLIENT_PORT)).unwrap();
    let usock = sim.smoltcp(peer).add_udp_socket(ECHO_PORT);
    // Small ones, then ones that tapir must fragment and smoltcp reassemble.
    let lens = [1, 100, 1472, 1473, 3000, 20_000, 65_507];
    for (seq, &len) in lens.iter().enumerate() {
        let data = payload(seq as u32, len.max(4));
        sim.iface(tapir)
            .udp_send_to(tsock, &data, addr(3, ECHO_PORT))
            .unwrap();
        let mut got = None;
        sim.run_until(
            |sim| {
                if let Ok((d, meta)) = sim.smoltcp(peer).udp_socket(usock).recv() {
                    got = Some((d.to_vec(), meta.endpoint));
                }
                got.is_some()
            },
            1000,
        )
        .unwrap_or_else(|e| panic!("{len}-byte datagram: {e}"));
        let (d, from) = got.unwrap();
        assert_eq!(d, data, "{len}-byte datagram changed");
        assert_eq!(from.addr, IpAddress::from(host_ip(2)));
        assert_eq!(from.port, CLIENT_PORT);
    }
    let s = sim.iface(tapir).stats();
    assert_eq!(s.udp_tx, lens.len() as u64);
    assert!(s.ipv4_frags_tx > 40, "{s}");
    assert_eq!(sim.link_stats(link).dropped_mtu, 0);
}
