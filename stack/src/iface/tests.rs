//! Interface behaviour on a virtual clock, frame in, frame out.

use super::*;
use crate::socket::udp::{UdpBindError, UdpRecvError, UdpSendError};
use crate::testing::*;
use crate::time::Duration;
use crate::wire::{
    icmpv4, ArpOperation, ArpRepr, Icmpv4Message, Ipv4Cidr, Ipv4Repr, Protocol, UdpRepr, UnreachableCode,
};
use core::net::SocketAddrV4;

fn iface() -> Interface {
    Interface::new(config()).unwrap()
}

fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn peer(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(PEER_IP, port)
}

fn sent_ipv4(frame: &[u8]) -> (Ipv4Repr, Vec<u8>) {
    match decode(frame) {
        Sent::Ipv4 {
            dst_mac,
            repr,
            payload,
        } => {
            assert_eq!(dst_mac, PEER_MAC);
            (repr, payload)
        }
        other => panic!("expected IPv4, got {other:?}"),
    }
}

fn sent_arp(frame: &[u8]) -> (EthernetAddress, ArpRepr) {
    match decode(frame) {
        Sent::Arp { dst_mac, repr } => (dst_mac, repr),
        other => panic!("expected ARP, got {other:?}"),
    }
}

// ---------- ARP ----------

#[test]
fn answers_arp_request_for_our_address_and_learns_the_asker() {
    let mut i = iface();
    i.handle_frame(at(0), &arp_request_from_peer(TAPIR_IP));
    let out = drain(&mut i, at(0));
    assert_eq!(out.len(), 1);
    // The reply, byte for byte as Linux would send it.
    let expected: [u8; 42] = [
        0x02, 0x00, 0x00, 0x77, 0x00, 0x01, 0x02, 0x00, 0x00, 0x77, 0x00, 0x02, 0x08, 0x06, // ethernet
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, // reply
        0x02, 0x00, 0x00, 0x77, 0x00, 0x02, 10, 77, 0, 2, // sender: us
        0x02, 0x00, 0x00, 0x77, 0x00, 0x01, 10, 77, 0, 1, // target: the asker
    ];
    assert_eq!(out[0], expected);
    assert_eq!(i.neighbor(PEER_IP), Some(PEER_MAC));
    assert_eq!(i.stats().arp_requests_rx, 1);
    assert_eq!(i.stats().arp_replies_tx, 1);
}

#[test]
fn ignores_requests_for_other_hosts_and_does_not_learn_from_them() {
    let mut i = iface();
    i.handle_frame(at(0), &arp_request_from_peer(Ipv4Addr::new(10, 77, 0, 9)));
    assert!(drain(&mut i, at(0)).is_empty());
    assert_eq!(i.neighbor(PEER_IP), None);
    assert_eq!(i.stats().arp_ignored, 1);
}

#[test]
fn resolves_with_retries_then_sends_queued_datagrams_in_order() {
    let mut i = iface();
    let s = i
        .udp_bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 5000))
        .unwrap();
    i.udp_send_to(s, b"one", peer(9)).unwrap();
    i.udp_send_to(s, b"two", peer(9)).unwrap();
    let out = drain(&mut i, at(0));
    assert_eq!(out.len(), 1, "one broadcast request, datagrams held");
    let (dst, req) = sent_arp(&out[0]);
    assert!(dst.is_broadcast());
    assert_eq!((req.operation, req.target_ip), (ArpOperation::Request, PEER_IP));
    assert_eq!(i.poll_timeout(), Some(at(1000)));

    // No answer: a second request after the retry interval.
    i.handle_timeout(at(1000));
    let out = drain(&mut i, at(1000));
    assert_eq!(out.len(), 1);
    assert_eq!(sent_arp(&out[0]).1.target_ip, PEER_IP);

    // The answer releases both datagrams, in order.
    i.handle_frame(at(1500), &arp_reply_from_peer());
    let out = drain(&mut i, at(1500));
    assert_eq!(out.len(), 2);
    let payloads: Vec<Vec<u8>> = out.iter().map(|f| sent_ipv4(f).1[8..].to_vec()).collect();
    assert_eq!(payloads, vec![b"one".to_vec(), b"two".to_vec()]);
    assert_eq!(i.stats().arp_requests_tx, 2);
    assert_eq!(i.poll_timeout(), None);
}

#[test]
fn unanswered_resolution_gives_up_and_counts_the_drops() {
    let mut i = iface();
    let s = i
        .udp_bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 5000))
        .unwrap();
    for _ in 0..3 {
        i.udp_send_to(s, b"x", peer(9)).unwrap();
    }
    let mut requests = drain(&mut i, at(0)).len();
    let mut now = at(0);
    while let Some(t) = i.poll_timeout() {
        assert!(t > now, "deadline must move forward");
        now = t;
        i.handle_timeout(now);
        requests += drain(&mut i, now).len();
    }
    assert_eq!(requests, 3, "max_requests = 3");
    assert_eq!(now, at(3000));
    assert_eq!(i.stats().arp_resolution_failed, 3);
    assert_eq!(i.neighbors().count(), 0);
    // The queue space came back.
    assert_eq!(i.tx_packets, 0);
    assert_eq!(i.tx_bytes, 0);
}

#[test]
fn pending_queue_overflow_is_dropped_and_counted() {
    let mut cfg = config();
    cfg.arp.pending_per_neighbor = 4;
    let mut i = Interface::new(cfg).unwrap();
    let s = i
        .udp_bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 5000))
        .unwrap();
    for n in 0..10u8 {
        i.udp_send_to(s, &[n], peer(9)).unwrap();
    }
    drain(&mut i, at(0));
    assert_eq!(i.stats().arp_pending_full, 6);
    i.handle_frame(at(10), &arp_reply_from_peer());
    let out = drain(&mut i, at(10));
    let firsts: Vec<u8> = out.iter().map(|f| sent_ipv4(f).1[8]).collect();
    assert_eq!(firsts, vec![0, 1, 2, 3], "the first four waited, in order");
}

#[test]
fn stale_entry_is_reconfirmed_by_unicast_probe_and_removed_if_silent() {
    let mut i = iface();
    introduce_peer(&mut i, at(0));
    let s = i
        .udp_bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 5000))
        .unwrap();
    // Within the reachable time: straight out.
    i.udp_send_to(s, b"a", peer(9)).unwrap();
    assert_eq!(drain(&mut i, at(100)).len(), 1);
    // Past it: the datagram still goes to the known MAC, preceded by a
    // unicast request to re-confirm it.
    let later = at(31_000);
    i.udp_send_to(s, b"b", peer(9)).unwrap();
    let out = drain(&mut i, later);
    assert_eq!(out.len(), 2);
    let (dst, probe) = sent_arp(&out[0]);
    assert_eq!(dst, PEER_MAC, "probe is unicast");
    assert_eq!(probe.target_ip, PEER_IP);
    sent_ipv4(&out[1]);
    // Two more probes, then the entry goes.
    let mut now = later;
    let mut probes = 1;
    while let Some(t) = i.poll_timeout() {
        now = t;
        i.handle_timeout(now);
        probes += drain(&mut i, now).len();
    }
    assert_eq!(probes, 3);
    assert_eq!(i.neighbor(PEER_IP), None);
    // The next send resolves from scratch with a broadcast.
    i.udp_send_to(s, b"c", peer(9)).unwrap();
    let out = drain(&mut i, now);
    assert!(sent_arp(&out[0]).0.is_broadcast());
}

#[test]
fn gratuitous_arp_only_refreshes_an_existing_entry() {
    let new_mac = EthernetAddress([0x02, 0, 0, 0, 0, 0x99]);
    let garp = |ip| {
        arp_frame(
            EthernetAddress::BROADCAST,
            ArpRepr {
                operation: ArpOperation::Request,
                sender_mac: new_mac,
                sender_ip: ip,
                target_mac: EthernetAddress::ZERO,
                target_ip: ip,
            },
        )
    };
    let mut i = iface();
    i.handle_frame(at(0), &garp(Ipv4Addr::new(10, 77, 0, 50)));
    assert_eq!(i.neighbor(Ipv4Addr::new(10, 77, 0, 50)), None, "no entry created");
    introduce_peer(&mut i, at(0));
    i.handle_frame(at(1), &garp(PEER_IP));
    assert_eq!(i.neighbor(PEER_IP), Some(new_mac), "existing entry updated");
    assert_eq!(i.stats().arp_gratuitous_rx, 2);
    assert!(
        drain(&mut i, at(1)).is_empty(),
        "gratuitous ARP is never answered"
    );
    // A gratuitous ARP claiming our own address is a conflict, and ignored.
    i.handle_frame(at(2), &garp(TAPIR_IP));
    assert_eq!(i.stats().arp_conflict, 1);
    assert!(drain(&mut i, at(2)).is_empty());
}

#[test]
fn arp_probe_for_our_address_is_answered() {
    let mut i = iface();
    let probe = arp_frame(
        EthernetAddress::BROADCAST,
        ArpRepr {
            operation: ArpOperation::Request,
            sender_mac: PEER_MAC,
            sender_ip: Ipv4Addr::UNSPECIFIED,
            target_mac: EthernetAddress::ZERO,
            target_ip: TAPIR_IP,
        },
    );
    i.handle_frame(at(0), &probe);
    let out = drain(&mut i, at(0));
    let (dst, reply) = sent_arp(&out[0]);
    assert_eq!(
        (dst, reply.operation, reply.sender_ip),
        (PEER_MAC, ArpOperation::Reply, TAPIR_IP)
    );
    assert_eq!(i.neighbor(Ipv4Addr::UNSPECIFIED), None);
}

#[test]
fn neighbor_cache_is_bounded() {
    let mut cfg = config();
    cfg.arp.cache_capacity = 4;
    let mut i = Interface::new(cfg).unwrap();
    for n in 10..20u8 {
        let mut req = ArpRepr::parse(&arp_request_from_peer(TAPIR_IP)[14..]).unwrap();
        req.sender_ip = Ipv4Addr::new(10, 77, 0, n);
        req.sender_mac = EthernetAddress([2, 0, 0, 0, 0, n]);
        i.handle_frame(at(u64::from(n)), &arp_frame(EthernetAddress::BROADCAST, req));
    }
    assert_eq!(i.neighbors().count(), 4);
    assert_eq!(i.stats().arp_cache_evictions, 6);
    assert!(i.neighbor(Ipv4Addr::new(10, 77, 0, 19)).is_some(), "newest kept");
    assert!(
        i.neighbor(Ipv4Addr::new(10, 77, 0, 10)).is_none(),
        "oldest evicted"
    );
}

// ---------- IPv4 validation ----------

fn udp_frame_to(dst: Ipv4Addr, src: Ipv4Addr) -> Vec<u8> {
    let d = udp_datagram(SocketAddrV4::new(src, 1), SocketAddrV4::new(dst, 7), b"hi");
    ethernet(
        TAPIR_MAC,
        PEER_MAC,
        EtherType::Ipv4,
        &ipv4_packet(src, dst, Protocol::Udp, 1, false, 0, &d),
    )
}

#[test]
fn each_ipv4_defect_lands_in_its_counter() {
    let good = udp_from_peer(1, 7, b"hi");
    type Mutate = fn(&mut Vec<u8>);
    type Counter = fn(&Stats) -> u64;
    let cases: Vec<(&str, Mutate, Counter)> = vec![
        ("truncated header", |f| f.truncate(14 + 19), |s| s.ipv4_truncated),
        (
            "version 6 in an IPv4 frame",
            |f| f[14] = 0x65,
            |s| s.ipv4_bad_version,
        ),
        ("IHL 4", |f| f[14] = 0x44, |s| s.ipv4_bad_header_len),
        (
            "IHL beyond the frame",
            |f| {
                f[14] = 0x4f;
                f.truncate(14 + 40)
            },
            |s| s.ipv4_truncated,
        ),
        (
            "total length past the frame",
            |f| f[17] = 200,
            |s| s.ipv4_bad_total_len,
        ),
        (
            "total length below the header",
            |f| f[17] = 10,
            |s| s.ipv4_bad_total_len,
        ),
        ("header checksum", |f| f[24] ^= 0xff, |s| s.ipv4_bad_checksum),
        (
            "TTL changed without checksum",
            |f| f[22] = 1,
            |s| s.ipv4_bad_checksum,
        ),
    ];
    for (what, mutate, counter) in cases {
        let mut i = iface();
        let _s = i.udp_bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
        let mut f = good.clone();
        mutate(&mut f);
        i.handle_frame(at(0), &f);
        assert_eq!(counter(i.stats()), 1, "{what}: {}", i.stats());
        assert_eq!(i.stats().total_drops(), 1, "{what}: exactly one drop counter");
        assert_eq!(i.stats().udp_rx, 0, "{what}");
        assert!(
            drain(&mut i, at(0)).is_empty(),
            "{what}: no reply to a bad packet"
        );
    }
}

#[test]
fn datagrams_not_for_us_or_from_bogus_sources_are_dropped() {
    let mut i = iface();
    let _s = i.udp_bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    i.handle_frame(at(0), &udp_frame_to(Ipv4Addr::new(10, 77, 0, 3), PEER_IP));
    i.handle_frame(at(0), &udp_frame_to(Ipv4Addr::new(224, 0, 0, 1), PEER_IP));
    assert_eq!(i.stats().ipv4_not_for_us, 2);
    for bogus in [
        Ipv4Addr::BROADCAST,
        Ipv4Addr::new(10, 77, 0, 255),
        Ipv4Addr::new(224, 0, 0, 5),
        Ipv4Addr::new(127, 0, 0, 1),
        TAPIR_IP,
        Ipv4Addr::UNSPECIFIED,
    ] {
        i.handle_frame(at(0), &udp_frame_to(TAPIR_IP, bogus));
    }
    assert_eq!(i.stats().ipv4_bad_source, 6);
    // Broadcast destinations are accepted.
    i.handle_frame(at(0), &udp_frame_to(Ipv4Addr::BROADCAST, PEER_IP));
    i.handle_frame(at(0), &udp_frame_to(Ipv4Addr::new(10, 77, 0, 255), PEER_IP));
    assert_eq!(i.stats().udp_rx, 2);
    assert!(drain(&mut i, at(0)).is_empty());
}

#[test]
fn ethernet_level_filtering() {
    let mut i = iface();
    i.handle_frame(at(0), &[0u8; 13]);
    assert_eq!(i.stats().eth_truncated, 1);
    let mut other = udp_from_peer(1, 7, b"x");
    other[0..6].copy_from_slice(&[2, 9, 9, 9, 9, 9]);
    i.handle_frame(at(0), &other);
    assert_eq!(i.stats().eth_not_for_us, 1);
    let ipv6 = ethernet(TAPIR_MAC, PEER_MAC, EtherType::Ipv6, &[0x60; 40]);
    i.handle_frame(at(0), &ipv6);
    assert_eq!(i.stats().eth_unknown_type, 1);
    let own = ethernet(EthernetAddress::BROADCAST, TAPIR_MAC, EtherType::Arp, &[0; 28]);
    i.handle_frame(at(0), &own);
    assert_eq!(i.stats().eth_own_source, 1);
    assert_eq!(i.stats().rx_frames, 4);
    assert_eq!(i.stats().total_drops(), 4);
}

// ---------- ICMP ----------

#[test]
fn echo_request_gets_an_identical_echo_reply() {
    let mut i = iface();
    introduce_peer(&mut i, at(0));
    let data: Vec<u8> = (0..56u8).collect();
    i.handle_frame(
        at(1),
        &ipv4_from_peer(Protocol::Icmp, &icmp_echo_request(0x4242, 7, &data)),
    );
    let out = drain(&mut i, at(1));
    assert_eq!(out.len(), 1);
    let (repr, payload) = sent_ipv4(&out[0]);
    assert_eq!(
        (repr.src, repr.dst, repr.protocol, repr.ttl),
        (TAPIR_IP, PEER_IP, Protocol::Icmp, 64)
    );
    assert!(!repr.dont_fragment);
    match Icmpv4Message::parse(&payload).unwrap() {
        Icmpv4Message::EchoReply { ident, seq, data: d } => {
            assert_eq!((ident, seq), (0x4242, 7));
            assert_eq!(d, &data[..]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn echo_to_broadcast_is_ignored() {
    let mut i = iface();
    introduce_peer(&mut i, at(0));
    let icmp = icmp_echo_request(1, 1, b"x");
    let f = ethernet(
        TAPIR_MAC,
        PEER_MAC,
        EtherType::Ipv4,
        &ipv4_packet(PEER_IP, Ipv4Addr::BROADCAST, Protocol::Icmp, 1, false, 0, &icmp),
    );
    i.handle_frame(at(1), &f);
    assert!(drain(&mut i, at(1)).is_empty());
    assert_eq!(i.stats().icmp_echo_ignored, 1);
}

#[test]
fn bad_icmp_is_counted() {
    let mut i = iface();
    introduce_peer(&mut i, at(0));
    let mut icmp = icmp_echo_request(1, 1, b"abcd");
    icmp[9] ^= 1;
    i.handle_frame(at(1), &ipv4_from_peer(Protocol::Icmp, &icmp));
    i.handle_frame(at(1), &ipv4_from_peer(Protocol::Icmp, &icmp[..7]));
    assert_eq!(i.stats().icmp_bad_checksum, 1);
    assert_eq!(i.stats().icmp_truncated, 1);
    assert!(drain(&mut i, at(1)).is_empty());
}

/// Fragments of `packet`'s payload, as a sender with `mtu` would cut them.
fn fragment_frames(
    src: Ipv4Addr,
    protocol: Protocol,
    ident: u16,
    payload: &[u8],
    chunk: usize,
) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let mut off = 0;
    while off < payload.len() {
        let end = (off + chunk).min(payload.len());
        let more = end < payload.len();
        let ip = ipv4_packet(src, TAPIR_IP, protocol, ident, more, off, &payload[off..end]);
        frames.push(ethernet(TAPIR_MAC, PEER_MAC, EtherType::Ipv4, &ip));
        off = end;
    }
    frames
}

fn reassemble_sent(frames: &[Vec<u8>]) -> (Vec<Ipv4Repr>, Vec<u8>) {
    let mut reprs = Vec::new();
    let mut whole = Vec::new();
    for f in frames {
        let (repr, payload) = sent_ipv4(f);
        assert!(20 + payload.len() <= 1500, "fragment exceeds the MTU");
        assert_eq!(repr.frag_offset, whole.len(), "fragments in order, no gaps");
        whole.extend_from_slice(&payload);
        reprs.push(repr);
    }
    assert!(!reprs.last().unwrap().more_fragments);
    assert!(reprs.iter().all(|r| r.ident == reprs[0].ident));
    (reprs, whole)
}

#[test]
fn fragmented_3000_byte_ping_gets_a_complete_fragmented_reply() {
    let mut i = iface();
    introduce_peer(&mut i, at(0));
    let data: Vec<u8> = (0..3000u32).map(|n| (n * 7) as u8).collect();
    let icmp = icmp_echo_request(9, 1, &data);
    let frames = fragment_frames(PEER_IP, Protocol::Icmp, 77, &icmp, 1480);
    assert_eq!(frames.len(), 3);
    // Arrive in reverse order.
    for f in frames.iter().rev() {
        i.handle_frame(at(1), f);
    }
    assert_eq!(i.stats().frag_reassembled, 1);
    let out = drain(&mut i, at(1));
    assert_eq!(out.len(), 3, "3008 bytes of ICMP need three fragments");
    let (reprs, whole) = reassemble_sent(&out);
    assert!(reprs.iter().all(|r| !r.dont_fragment));
    match Icmpv4Message::parse(&whole).unwrap() {
        Icmpv4Message::EchoReply {
            ident: 9,
            seq: 1,
            data: d,
        } => assert_eq!(d, &data[..]),
        other => panic!("{other:?}"),
    }
    assert_eq!(i.stats().ipv4_frags_tx, 3);
    assert_eq!(i.stats().ipv4_tx, 1);
}

#[test]
fn fragments_out_of_order_with_duplicates_and_consistent_overlap_reassemble() {
    let mut i = iface();
    introduce_peer(&mut i, at(0));
    let s = i.udp_bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    let data: Vec<u8> = (0..2000u32).map(|n| n as u8).collect();
    let udp = udp_datagram(peer(1), SocketAddrV4::new(TAPIR_IP, 7), &data);
    let small = fragment_frames(PEER_IP, Protocol::Udp, 5, &udp, 504);
    // Order: 2, 0, 2 again (duplicate), an overlapping re-cut of bytes
    // 496..1016 with the same content, then 1, 3.
    i.handle_frame(at(1), &small[2]);
    i.handle_frame(at(1), &small[0]);
    i.handle_frame(at(1), &small[2]);
    let overlap = ipv4_packet(PEER_IP, TAPIR_IP, Protocol::Udp, 5, true, 496, &udp[496..1016]);
    i.handle_frame(at(1), &ethernet(TAPIR_MAC, PEER_MAC, EtherType::Ipv4, &overlap));
    i.handle_frame(at(1), &small[1]);
    assert_eq!(i.stats().udp_rx, 0);
    i.handle_frame(at(1), &small[3]);
    // The second copy of fragment 2, and fragment 1 (the overlap had
    // already brought all its bytes), added nothing.
    assert_eq!(i.stats().frag_duplicate, 2);
    assert_eq!(i.stats().udp_rx, 1);
    let mut buf = [0u8; 4000];
    let (n, from) = i.udp_recv_from(s, &mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&data[..], peer(1)));
}

#[test]
fn conflicting_overlap_discards_the_datagram() {
    let mut i = iface();
    let _s = i.udp_bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    let data = vec![0x11u8; 1000];
    let udp = udp_datagram(peer(1), SocketAddrV4::new(TAPIR_IP, 7), &data);
    let frames = fragment_frames(PEER_IP, Protocol::Udp, 6, &udp, 504);
    i.handle_frame(at(1), &frames[0]);
    let evil = ipv4_packet(PEER_IP, TAPIR_IP, Protocol::Udp, 6, true, 496, &[0x22; 16]);
    i.handle_frame(at(1), &ethernet(TAPIR_MAC, PEER_MAC, EtherType::Ipv4, &evil));
    assert_eq!(i.stats().frag_overlap_conflict, 1);
    assert_eq!(i.reassemblies_in_progress(), 0);
    i.handle_frame(at(1), &frames[1]);
    assert_eq!(i.stats().udp_rx, 0, "the rest alone cannot complete it");
}

#[test]
fn missing_fragment_times_out_with_time_exceeded() {
    let mut i = iface();
    introduce_peer(&mut i, at(0));
    let icmp = icmp_echo_request(3, 3, &[0xab; 2000]);
    let frames = fragment_frames(PEER_IP, Protocol::Icmp, 8, &icmp, 1480);
    i.handle_frame(at(10), &frames[0]);
    assert_eq!(i.poll_timeout(), Some(at(10) + Duration::from_secs(30)));
    i.handle_timeout(at(30_009));
    assert_eq!(i.reassemblies_in_progress(), 1, "not before the deadline");
    // Keep the peer's ARP entry fresh so no probe joins the output.
    i.handle_frame(at(30_010), &arp_reply_from_peer());
    i.handle_timeout(at(30_010));
    assert_eq!(i.reassemblies_in_progress(), 0);
    assert_eq!(i.stats().frag_timeout, 1);
    let out = drain(&mut i, at(30_010));
    assert_eq!(out.len(), 1);
    let (_, payload) = sent_ipv4(&out[0]);
    match Icmpv4Message::parse(&payload).unwrap() {
        Icmpv4Message::TimeExceeded { code: 1, original } => {
            assert_eq!(&original[12..16], &PEER_IP.octets(), "quotes the original header");
            assert_eq!(original.len(), 28);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(i.poll_timeout(), None);
}

#[test]
fn reassembly_budget_is_enforced() {
    let mut cfg = config();
    cfg.reassembly.budget_bytes = 3000;
    let mut i = Interface::new(cfg).unwrap();
    let _s = i.udp_bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    let udp = udp_datagram(peer(1), SocketAddrV4::new(TAPIR_IP, 7), &[5; 2952]);
    let first = fragment_frames(PEER_IP, Protocol::Udp, 1, &udp, 1480);
    let second = fragment_frames(PEER_IP, Protocol::Udp, 2, &udp, 1480);
    i.handle_frame(at(0), &first[0]);
    i.handle_frame(at(0), &second[0]);
    assert_eq!(i.reassembly_bytes(), 2960);
    // Completing the second would need 1480 more bytes than the budget has.
    i.handle_frame(at(0), &second[1]);
    assert_eq!(i.stats().frag_budget_exceeded, 1);
    assert_eq!(i.reassemblies_in_progress(), 2);
    assert!(i.reassembly_bytes() <= 3000);
    // Once the stalled ones time out, the budget is free again.
    i.handle_timeout(at(30_000));
    assert_eq!((i.reassemblies_in_progress(), i.reassembly_bytes()), (0, 0));
    i.handle_frame(at(30_001), &second[0]);
    i.handle_frame(at(30_001), &second[1]);
    assert_eq!(i.stats().frag_reassembled, 1);
    assert_eq!(i.stats().udp_rx, 1);
}

// ---------- UDP ----------

#[test]
fn udp_echo_round_trip() {
    let mut i = iface();
    introduce_peer(&mut i, at(0));
    let s = i.udp_bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    i.handle_frame(at(1), &udp_from_peer(40000, 7, b"hello"));
    assert_eq!(i.poll_event(), Some(Event::Readable(s)));
    assert_eq!(i.poll_event(), None);
    let mut buf = [0u8; 64];
    let (n, from) = i.udp_recv_from(s, &mut buf).unwrap();
    assert_eq!(i.udp_recv_from(s, &mut buf), Err(UdpRecvError::WouldBlock));
    i.udp_send_to(s, &buf[..n], from).unwrap();
    let out = drain(&mut i, at(1));
    let (repr, payload) = sent_ipv4(&out[0]);
    assert_eq!(repr.protocol, Protocol::Udp);
    let (udp, data) = UdpRepr::parse(&payload, repr.src, repr.dst).unwrap();
    assert_eq!((udp.src_port, udp.dst_port, data), (7, 40000, &b"hello"[..]));
}

#[test]
fn closed_port_gets_port_unreachable_quoting_the_datagram() {
    let mut i = iface();
    introduce_peer(&mut i, at(0));
    let f = udp_from_peer(40000, 9999, b"anyone?");
    i.handle_frame(at(1), &f);
    assert_eq!(i.stats().udp_no_socket, 1);
    let out = drain(&mut i, at(1));
    assert_eq!(out.len(), 1);
    let (_, payload) = sent_ipv4(&out[0]);
    match Icmpv4Message::parse(&payload).unwrap() {
        Icmpv4Message::DestUnreachable {
            code: UnreachableCode::Port,
            original,
            ..
        } => {
            assert_eq!(original, &f[14..], "the whole small datagram is quoted");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn port_unreachable_is_rate_limited() {
    let mut cfg = config();
    cfg.icmp.errors_burst = 5;
    cfg.icmp.errors_per_sec = 10;
    let mut i = Interface::new(cfg).unwrap();
    introduce_peer(&mut i, at(0));
    for _ in 0..20 {
        i.handle_frame(at(1), &udp_from_peer(1, 9999, b"x"));
    }
    assert_eq!(drain(&mut i, at(1)).len(), 5);
    assert_eq!(i.stats().icmp_rate_limited, 15);
    // 100 ms later one token has come back.
    i.handle_frame(at(101), &udp_from_peer(1, 9999, b"x"));
    i.handle_frame(at(101), &udp_from_peer(1, 9999, b"x"));
    assert_eq!(drain(&mut i, at(101)).len(), 1);
}

/// A SYN from the peer to `port`, with sequence number `seq`.
fn tcp_syn_from_peer(port: u16, seq: u32) -> Vec<u8> {
    let syn = crate::wire::TcpRepr {
        src_port: 40000,
        dst_port: port,
        seq,
        flags: crate::wire::TcpFlags::SYN,
        window: 1000,
        ..Default::default()
    };
    let mut seg = vec![0u8; syn.header_len()];
    syn.emit(&mut seg, PEER_IP, crate::testing::TAPIR_IP, 0);
    crate::testing::ipv4_from_peer(Protocol::Tcp, &seg)
}

#[test]
fn rst_to_closed_port_is_rate_limited() {
    let mut cfg = config();
    cfg.tcp.rst_burst = 5;
    cfg.tcp.rst_per_sec = 10;
    let mut i = Interface::new(cfg).unwrap();
    introduce_peer(&mut i, at(0));
    for n in 0..20 {
        i.handle_frame(at(1), &tcp_syn_from_peer(9999, n));
    }
    assert_eq!(drain(&mut i, at(1)).len(), 5);
    assert_eq!(i.stats().tcp_rst_tx, 5);
    assert_eq!(i.stats().tcp_rst_rate_limited, 15);
    assert_eq!(i.stats().tcp_no_socket, 20, "each segment is still counted");
    // 100 ms later one token has come back.
    i.handle_frame(at(101), &tcp_syn_from_peer(9999, 100));
    i.handle_frame(at(101), &tcp_syn_from_peer(9999, 101));
    assert_eq!(drain(&mut i, at(101)).len(), 1);
    assert_eq!(i.stats().tcp_rst_rate_limited, 16);

    // u32::MAX turns the limit off.
    let mut cfg = config();
    cfg.tcp.rst_per_sec = u32::MAX;
    let mut i = Interface::new(cfg).unwrap();
    introduce_peer(&mut i, at(0));
    for n in 0..60 {
        i.handle_frame(at(1), &tcp_syn_from_peer(9999, n));
    }
    assert_eq!(drain(&mut i, at(1)).len(), 60);
    assert_eq!(i.stats().tcp_rst_rate_limited, 0);
}

/// A segment from the peer's port `src_port` to `port`.
fn tcp_from_peer(src_port: u16, port: u16, seq: u32, ack: u32, flags: crate::wire::TcpFlags) -> Vec<u8> {
    let repr = crate::wire::TcpRepr {
        src_port,
        dst_port: port,
        seq,
        ack,
        flags,
        window: 1000,
        ..Default::default()
    };
    let mut seg = vec![0u8; repr.header_len()];
    repr.emit(&mut seg, PEER_IP, crate::testing::TAPIR_IP, 0);
    crate::testing::ipv4_from_peer(Protocol::Tcp, &seg)
}

#[test]
fn syn_flood_keeps_small_records_and_no_connections() {
    use crate::wire::TcpFlags;
    // N forged SYNs (distinct ports, never ACKed) to a listener whose SYN
    // queue holds them all, without cookies: each is answered with a
    // SYN-ACK and kept as a half-open record; none takes a socket or a
    // control block. The SYN-ACK timer resends each `synack_retries`
    // times, backing off, and then drops it (RFC 9293 3.10.7.4 leaves
    // the retries to the implementation; Linux tcp_synack_retries).
    const N: u16 = 300;
    let mut cfg = config();
    cfg.tcp.syn_cookies = crate::config::SynCookies::Never;
    let retries = cfg.tcp.synack_retries as usize;
    let mut i = Interface::new(cfg).unwrap();
    introduce_peer(&mut i, at(0));
    i.tcp_listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80), 512)
        .unwrap();
    let sockets = i.socket_count();
    for k in 0..N {
        let syn = tcp_from_peer(10_000 + k, 80, u32::from(k) * 1000, 0, TcpFlags::SYN);
        i.handle_frame(at(1), &syn);
    }
    // All answered at once: the SYN-ACKs do not wait on a short queue.
    assert_eq!(drain(&mut i, at(1)).len(), usize::from(N));
    assert_eq!(i.tcp_half_open_count(), usize::from(N));
    assert_eq!(i.tcp_connection_count(), usize::from(N), "half-open ones count");
    assert_eq!(i.socket_count(), sockets, "no socket per SYN");
    assert_eq!(i.tcp_connections().count(), usize::from(N));
    assert!(i
        .tcp_connections()
        .all(|(_, _, s)| s.state == Some(crate::socket::tcp::TcpState::SynReceived)));
    // The timers: each record's SYN-ACK goes `retries` more times, at
    // 1, 2, 4, 8 and 16 s after the one before, and then it is dropped.
    let mut resent = 0;
    let mut times = Vec::new();
    while let Some(t) = i.poll_timeout() {
        assert!(t < Instant::from_secs(200), "still timing at {t}");
        i.handle_timeout(t);
        // SYN-ACKs only (the neighbor cache refreshes the peer's entry).
        let n = drain(&mut i, t)
            .iter()
            .filter(|f| matches!(decode(f), Sent::Ipv4 { .. }))
            .count();
        if n > 0 {
            times.push((t, n));
        }
        resent += n;
    }
    assert_eq!(resent, usize::from(N) * retries);
    let expect: Vec<_> = [1u64, 3, 7, 15, 31]
        .iter()
        .take(retries)
        .map(|s| (at(1 + s * 1000), usize::from(N)))
        .collect();
    assert_eq!(times, expect);
    assert_eq!(i.tcp_half_open_count(), 0);
    assert_eq!(i.tcp_connection_count(), 0);
    assert_eq!(i.stats().tcp_timeouts, u64::from(N));
    assert_eq!(i.socket_count(), sockets);
}

/// Port unreachable from the peer, quoting a segment from our port 80 to
/// its `port` with sequence number `seq`.
fn port_unreachable_about(port: u16, seq: u32) -> Vec<u8> {
    unreachable_about(3, port, seq)
}

fn unreachable_about(code: u8, port: u16, seq: u32) -> Vec<u8> {
    let mut q = vec![0u8; 28];
    let ip = Ipv4Repr {
        src: TAPIR_IP,
        dst: PEER_IP,
        protocol: Protocol::Tcp,
        ttl: 64,
        tos: 0,
        ident: 1,
        dont_fragment: true,
        more_fragments: false,
        frag_offset: 0,
        payload_len: 8,
    };
    ip.emit(&mut q);
    q[20..22].copy_from_slice(&80u16.to_be_bytes());
    q[22..24].copy_from_slice(&port.to_be_bytes());
    q[24..28].copy_from_slice(&seq.to_be_bytes());
    let mut msg = vec![0u8; 8 + 28];
    icmpv4::emit(&mut msg, icmpv4::TYPE_DEST_UNREACHABLE, code, [0; 4], &q);
    ipv4_from_peer(Protocol::Icmp, &msg)
}

#[test]
fn host_unreachable_about_a_synack_drops_the_half_open_connection() {
    use crate::wire::TcpFlags;
    // Linux tcp_v4_err for TCP_NEW_SYN_RECV: net or host unreachable (and
    // time exceeded, parameter problem) quoting the SYN-ACK drop the
    // request; the SYN-ACK is not resent, and the peer's late ACK is a
    // stray for the listener.
    let mut i = iface();
    introduce_peer(&mut i, at(0));
    i.tcp_listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80), 8)
        .unwrap();
    i.handle_frame(at(1), &tcp_from_peer(40000, 80, 1000, 0, TcpFlags::SYN));
    let out = drain(&mut i, at(1));
    let (_, seg) = sent_ipv4(&out[0]);
    let (synack, _) = crate::wire::TcpRepr::parse(&seg, TAPIR_IP, PEER_IP, true).unwrap();
    i.handle_frame(at(2), &unreachable_about(1, 40000, synack.seq));
    assert_eq!(i.stats().icmp_errors_delivered, 1);
    assert_eq!(i.stats().tcp_half_open_icmp_aborts, 1);
    assert_eq!(i.tcp_half_open_count(), 0);
    assert!(drain(&mut i, at(5_000)).is_empty(), "the SYN-ACK was resent");
}

#[test]
fn icmp_error_about_a_synack_leaves_the_half_open_connection() {
    use crate::wire::TcpFlags;
    // RFC 5927 4.1: an ICMP error must quote a sequence number in flight;
    // a half-open connection has sent only its SYN-ACK (SEQ = ISS). As
    // Linux's tcp_req_err, a matching error is taken and not kept (nobody
    // to report it to; accept() returns no network errors), and the
    // handshake completes afterwards.
    let mut i = iface();
    introduce_peer(&mut i, at(0));
    let l = i
        .tcp_listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80), 8)
        .unwrap();
    i.handle_frame(at(1), &tcp_from_peer(40000, 80, 1000, 0, TcpFlags::SYN));
    let out = drain(&mut i, at(1));
    let (_, seg) = sent_ipv4(&out[0]);
    let (synack, _) = crate::wire::TcpRepr::parse(&seg, TAPIR_IP, PEER_IP, true).unwrap();
    let iss = synack.seq;
    i.handle_frame(at(2), &port_unreachable_about(40000, iss.wrapping_add(7)));
    assert_eq!(i.stats().icmp_errors_out_of_window, 1);
    i.handle_frame(at(3), &port_unreachable_about(40000, iss));
    assert_eq!(i.stats().icmp_errors_delivered, 1);
    i.handle_frame(at(4), &port_unreachable_about(40001, iss));
    assert_eq!(i.stats().icmp_errors_unmatched, 1);
    assert_eq!(i.tcp_half_open_count(), 1);
    i.handle_frame(
        at(5),
        &tcp_from_peer(40000, 80, 1001, iss.wrapping_add(1), TcpFlags::ACK),
    );
    let s = i.tcp_accept(l).unwrap();
    assert_eq!(i.tcp_take_error(s), None);
    assert_eq!(i.tcp_half_open_count(), 0);
}

#[test]
fn forged_syn_cookie_acks_are_counted_failed_and_reset() {
    use crate::wire::TcpFlags;
    let ack = TcpFlags::ACK;
    // Cookies for every SYN, so that one SYN makes the listener check ACKs.
    let mut cfg = config();
    cfg.tcp.syn_cookies = crate::config::SynCookies::Always;
    let mut i = Interface::new(cfg.clone()).unwrap();
    introduce_peer(&mut i, at(0));
    i.tcp_listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80), 8)
        .unwrap();
    // Before any cookie: an ACK to the listener is a stray.
    i.handle_frame(at(1), &tcp_from_peer(40000, 80, 1001, 5001, ack));
    assert_eq!(i.stats().tcp_listen_bad_segment, 1);
    assert_eq!(i.stats().tcp_syncookies_failed, 0);
    assert_eq!(drain(&mut i, at(1)).len(), 1, "RST");
    // A SYN gets a cookie; the SYN-ACK's ISN is it.
    i.handle_frame(at(2), &tcp_from_peer(40000, 80, 1000, 0, TcpFlags::SYN));
    let out = drain(&mut i, at(2));
    assert_eq!(out.len(), 1);
    let (_, seg) = sent_ipv4(&out[0]);
    let (synack, _) = crate::wire::TcpRepr::parse(&seg, crate::testing::TAPIR_IP, PEER_IP, true).unwrap();
    assert!(synack.flags.syn() && synack.flags.ack());
    assert_eq!(i.stats().tcp_syncookies_sent, 1);
    let isn = synack.seq;
    // Forged: a wrong ACK number, the right one with another SEQ, the
    // right pair from another port. Each is counted and reset.
    for (port, seq, acked) in [
        (40000, 1001, isn.wrapping_add(2)),
        (40000, 1002, isn.wrapping_add(1)),
        (40001, 1001, isn.wrapping_add(1)),
    ] {
        i.handle_frame(at(3), &tcp_from_peer(port, 80, seq, acked, ack));
    }
    assert_eq!(i.stats().tcp_syncookies_failed, 3);
    assert_eq!(i.stats().tcp_syncookies_recv, 0);
    assert_eq!(drain(&mut i, at(3)).len(), 3, "three RSTs");
    assert!(i.tcp_connections().next().is_none());
    // The real ACK makes the connection.
    i.handle_frame(at(4), &tcp_from_peer(40000, 80, 1001, isn.wrapping_add(1), ack));
    assert_eq!(i.stats().tcp_syncookies_recv, 1);
    assert_eq!(i.tcp_connections().count(), 1);
    assert_eq!(i.stats().tcp_listen_bad_segment, 1);

    // A stale cookie: sent in counter tick 0, its ACK comes in tick 2
    // (128 s on), while another SYN keeps the listener checking.
    i.handle_frame(at(5), &tcp_from_peer(40002, 80, 7000, 0, TcpFlags::SYN));
    let out = drain(&mut i, at(5));
    let (_, seg) = sent_ipv4(&out[0]);
    let (synack, _) = crate::wire::TcpRepr::parse(&seg, crate::testing::TAPIR_IP, PEER_IP, true).unwrap();
    i.handle_frame(at(100_000), &tcp_from_peer(40003, 80, 9000, 0, TcpFlags::SYN));
    drain(&mut i, at(100_000));
    i.handle_frame(
        at(128_500),
        &tcp_from_peer(40002, 80, 7001, synack.seq.wrapping_add(1), ack),
    );
    assert_eq!(i.stats().tcp_syncookies_failed, 4);
    assert_eq!(i.stats().tcp_syncookies_recv, 1);
    assert_eq!(i.tcp_connections().count(), 1);
}

#[test]
fn no_icmp_error_about_icmp_errors_or_broadcasts() {
    let mut i = iface();
    introduce_peer(&mut i, at(0));
    // Port unreachable for a broadcast datagram: none.
    i.handle_frame(at(1), &udp_frame_to(Ipv4Addr::BROADCAST, PEER_IP));
    // Unknown protocol: protocol unreachable.
    i.handle_frame(at(1), &ipv4_from_peer(Protocol::Other(253), b"experimental"));
    let out = drain(&mut i, at(1));
    assert_eq!(out.len(), 1);
    match Icmpv4Message::parse(&sent_ipv4(&out[0]).1).unwrap() {
        Icmpv4Message::DestUnreachable {
            code: UnreachableCode::Protocol,
            ..
        } => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(i.stats().ipv4_unknown_protocol, 1);
}

#[test]
fn udp_checksum_and_length_errors() {
    let mut i = iface();
    let s = i.udp_bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    let good = udp_from_peer(1, 7, b"data");
    let mut bad_sum = good.clone();
    *bad_sum.last_mut().unwrap() ^= 1;
    i.handle_frame(at(0), &bad_sum);
    let mut bad_len = good.clone();
    bad_len[14 + 20 + 5] = 200;
    i.handle_frame(at(0), &bad_len);
    i.handle_frame(at(0), &ipv4_from_peer(Protocol::Udp, &[0, 1, 0]));
    let mut zero_sum = good.clone();
    zero_sum[14 + 20 + 6] = 0;
    zero_sum[14 + 20 + 7] = 0;
    i.handle_frame(at(0), &zero_sum);
    let s_ = i.stats();
    assert_eq!(
        (s_.udp_bad_checksum, s_.udp_bad_len, s_.udp_truncated, s_.udp_rx),
        (1, 1, 1, 1)
    );
    assert!(i.udp_peek_len(s) == Some(4));
}

#[test]
fn udp_receive_queue_is_bounded() {
    let mut cfg = config();
    cfg.udp.rx_queue_datagrams = 3;
    let mut i = Interface::new(cfg).unwrap();
    let s = i.udp_bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    for n in 0..5u8 {
        i.handle_frame(at(0), &udp_from_peer(1, 7, &[n]));
    }
    assert_eq!(i.stats().udp_queue_full, 2);
    let mut buf = [0u8; 1];
    let got: Vec<u8> = (0..3)
        .map(|_| {
            i.udp_recv_from(s, &mut buf).unwrap();
            buf[0]
        })
        .collect();
    assert_eq!(got, vec![0, 1, 2]);
}

#[test]
fn large_udp_datagram_is_fragmented_on_send() {
    let mut i = iface();
    introduce_peer(&mut i, at(0));
    let s = i.udp_bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    let data: Vec<u8> = (0..20000u32).map(|n| (n % 251) as u8).collect();
    i.udp_send_to(s, &data, peer(5000)).unwrap();
    let out = drain(&mut i, at(1));
    assert_eq!(out.len(), 14);
    let (reprs, whole) = reassemble_sent(&out);
    let (udp, got) = UdpRepr::parse(&whole, reprs[0].src, reprs[0].dst).unwrap();
    assert_eq!(udp.dst_port, 5000);
    assert_eq!(got, &data[..]);
    assert_eq!(
        i.udp_send_to(s, &vec![0; 65508], peer(1)),
        Err(UdpSendError::TooLarge)
    );
    assert!(i.udp_send_to(s, &vec![0; 65507], peer(1)).is_ok());
}

#[test]
fn udp_ip_tos_marks_every_datagram_and_fragment_of_its_socket() {
    for offload in [false, true] {
        let mut cfg = config();
        cfg.tx_checksum_offload = offload;
        let mut i = Interface::new(cfg).unwrap();
        introduce_peer(&mut i, at(0));
        let any = |p| SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, p);
        let (marked, plain) = (i.udp_bind(any(7)).unwrap(), i.udp_bind(any(8)).unwrap());
        assert_eq!(i.udp_tos(marked), Some(0));
        // DSCP EF (46) with ECT(1): a datagram socket keeps the ECN field
        // the application chose, as Linux does.
        assert!(i.udp_set_tos(marked, 0xb9));
        assert_eq!(i.udp_tos(marked), Some(0xb9));
        i.udp_send_to(marked, b"small", peer(5000)).unwrap();
        i.udp_send_to(plain, b"small", peer(5000)).unwrap();
        i.udp_send_to(marked, &[7; 3000], peer(5000)).unwrap();
        let out = drain(&mut i, at(1));
        let tos: Vec<u8> = out.iter().map(|f| sent_ipv4(f).0.tos).collect();
        assert_eq!(tos, [0xb9, 0, 0xb9, 0xb9, 0xb9], "offload {offload}");
        i.udp_close(marked);
        assert!(!i.udp_set_tos(marked, 1), "no such socket");
        assert_eq!(i.udp_tos(marked), None);
    }
}

#[test]
fn bind_rules() {
    let mut i = iface();
    let any = |p| SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, p);
    let a = i.udp_bind(any(7)).unwrap();
    assert_eq!(i.udp_bind(any(7)), Err(UdpBindError::AddrInUse));
    assert_eq!(
        i.udp_bind(SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 3), 8)),
        Err(UdpBindError::AddrNotAvailable)
    );
    let e = i.udp_bind(any(0)).unwrap();
    let port = i.udp_local_addr(e).unwrap().port();
    assert!(port >= 49152);
    i.udp_close(a);
    assert!(
        i.udp_bind(SocketAddrV4::new(TAPIR_IP, 7)).is_ok(),
        "port free after close"
    );
    assert_eq!(i.udp_send_to(a, b"x", peer(1)), Err(UdpSendError::BadHandle));
    assert_eq!(
        i.udp_send_to(e, b"x", SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 1)),
        Err(UdpSendError::NoRoute)
    );
    assert_eq!(
        i.udp_send_to(e, b"x", peer(0)),
        Err(UdpSendError::InvalidDestination)
    );
}

#[test]
fn ephemeral_ports_run_out_cleanly() {
    let mut cfg = config();
    cfg.udp.ephemeral_ports = (60000, 60003);
    let mut i = Interface::new(cfg).unwrap();
    let mut ports: Vec<u16> = (0..4)
        .map(|_| {
            let h = i.udp_bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)).unwrap();
            i.udp_local_addr(h).unwrap().port()
        })
        .collect();
    ports.sort();
    assert_eq!(ports, vec![60000, 60001, 60002, 60003]);
    assert_eq!(
        i.udp_bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
        Err(UdpBindError::NoFreePort)
    );
}

#[test]
fn gateway_routes_off_link_traffic() {
    let mut cfg = config();
    cfg.gateway = Some(PEER_IP);
    let mut i = Interface::new(cfg).unwrap();
    introduce_peer(&mut i, at(0));
    let s = i.udp_bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    let far = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 10), 53);
    i.udp_send_to(s, b"q", far).unwrap();
    let out = drain(&mut i, at(1));
    let (repr, _) = sent_ipv4(&out[0]); // sent to the gateway's MAC
    assert_eq!(repr.dst, *far.ip());
}

#[test]
fn transmit_queue_full_blocks_then_signals_writable() {
    let mut cfg = config();
    cfg.tx_queue_packets = 2;
    let mut i = Interface::new(cfg).unwrap();
    introduce_peer(&mut i, at(0));
    let s = i.udp_bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    i.udp_send_to(s, b"1", peer(9)).unwrap();
    i.udp_send_to(s, b"2", peer(9)).unwrap();
    assert_eq!(i.udp_send_to(s, b"3", peer(9)), Err(UdpSendError::WouldBlock));
    assert_eq!(i.poll_event(), None);
    assert_eq!(drain(&mut i, at(1)).len(), 2);
    assert_eq!(i.poll_event(), Some(Event::Writable(s)));
    assert!(i.udp_send_to(s, b"3", peer(9)).is_ok());
}

#[test]
fn icmp_port_unreachable_is_delivered_to_the_sending_socket() {
    let mut i = iface();
    introduce_peer(&mut i, at(0));
    let s = i
        .udp_bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 5555))
        .unwrap();
    i.udp_send_to(s, b"ping", peer(9)).unwrap();
    let out = drain(&mut i, at(1));
    // The peer answers with port unreachable quoting our datagram.
    let ours = &out[0][14..];
    let mut icmp = vec![0u8; 8 + ours.len()];
    icmpv4::emit(&mut icmp, icmpv4::TYPE_DEST_UNREACHABLE, 3, [0; 4], ours);
    i.handle_frame(at(2), &ipv4_from_peer(Protocol::Icmp, &icmp));
    let expected = SocketError::Unreachable {
        reporter: PEER_IP,
        dst: peer(9),
        code: UnreachableCode::Port,
        next_hop_mtu: None,
    };
    assert_eq!(i.poll_event(), Some(Event::Error(s, expected)));
    assert_eq!(i.udp_take_error(s), Some(expected));
    assert_eq!(i.udp_take_error(s), None);
    assert_eq!(i.stats().icmp_errors_delivered, 1);
    // An error quoting a port nobody has is counted, not delivered.
    let mut other = ours.to_vec();
    other[20] = 0x01; // source port changed
    let mut icmp = vec![0u8; 8 + other.len()];
    icmpv4::emit(&mut icmp, icmpv4::TYPE_DEST_UNREACHABLE, 3, [0; 4], &other);
    i.handle_frame(at(3), &ipv4_from_peer(Protocol::Icmp, &icmp));
    assert_eq!(i.stats().icmp_errors_unmatched, 1);
}

#[test]
fn config_is_validated() {
    let mut c = config();
    c.mtu = 60;
    assert!(matches!(Interface::new(c), Err(crate::ConfigError::Mtu(60))));
    let mut c = config();
    c.mac = EthernetAddress::BROADCAST;
    assert!(Interface::new(c).is_err());
    let mut c = config();
    c.gateway = Some(Ipv4Addr::new(192, 0, 2, 1));
    assert!(Interface::new(c).is_err());
    let c = Config::new(TAPIR_MAC, Ipv4Cidr::new(Ipv4Addr::new(224, 0, 0, 1), 24).unwrap());
    assert!(Interface::new(c).is_err());
}

// ---------- robustness ----------

/// Every prefix of every kind of valid frame, and single-byte corruptions of
/// each, go through without a panic, and every frame is accounted for.
#[test]
fn truncated_and_corrupted_frames_never_panic() {
    let frames = vec![
        arp_request_from_peer(TAPIR_IP),
        arp_reply_from_peer(),
        udp_from_peer(1, 7, b"some data here"),
        udp_from_peer(1, 9, b"closed port"),
        ipv4_from_peer(Protocol::Icmp, &icmp_echo_request(1, 2, b"ping data")),
        ipv4_from_peer(Protocol::Tcp, &[0u8; 20]),
        fragment_frames(PEER_IP, Protocol::Udp, 3, &[7u8; 100], 48)[1].clone(),
    ];
    let mut i = iface();
    let _s = i.udp_bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    let mut fed = 0u64;
    let mut now = 0;
    for f in &frames {
        for len in 0..=f.len() {
            i.handle_frame(at(now), &f[..len]);
            fed += 1;
        }
        for pos in 0..f.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut g = f.clone();
                g[pos] ^= flip;
                i.handle_frame(at(now), &g);
                fed += 1;
            }
        }
        now += 1;
        drain(&mut i, at(now));
        i.handle_timeout(at(now));
    }
    assert_eq!(i.stats().rx_frames, fed);
}
