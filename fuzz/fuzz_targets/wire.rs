//! Every wire parser on arbitrary bytes: none may panic, and what parses
//! must survive emit -> parse unchanged (as far as the emitter can say it).
#![no_main]

use core::net::Ipv4Addr;
use libfuzzer_sys::fuzz_target;
use tapir_stack::wire::{
    arp, ethernet, icmpv4, ArpRepr, EtherType, EthernetFrame, Icmpv4Message, Ipv4Packet, Protocol,
    TcpOptions, TcpRepr, UdpRepr,
};

const SRC: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const DST: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

fuzz_target!(|data: &[u8]| {
    // Each parser on the raw bytes.
    ethernet_roundtrip(data);
    arp_roundtrip(data);
    ipv4_roundtrip(data);
    icmp_roundtrip(data);
    udp_roundtrip(data, SRC, DST);
    tcp_roundtrip(data, SRC, DST);
    options_roundtrip(data);

    // And down the stack, so a frame that is valid at one layer feeds the
    // next with that layer's addresses.
    if let Ok(eth) = EthernetFrame::parse(data) {
        if let Ok(ip) = Ipv4Packet::parse(eth.payload) {
            let (src, dst) = (ip.repr.src, ip.repr.dst);
            match ip.repr.protocol {
                Protocol::Tcp => tcp_roundtrip(ip.payload, src, dst),
                Protocol::Udp => udp_roundtrip(ip.payload, src, dst),
                _ => icmp_roundtrip(ip.payload),
            }
        }
    }
});

/// An ICMP message that parses re-emits byte for byte from its type, code,
/// rest-of-header and body (the checksum is recomputed).
fn icmp_roundtrip(data: &[u8]) {
    let Ok(msg) = Icmpv4Message::parse(data) else {
        return;
    };
    let (body, rest) = (&data[icmpv4::HEADER_LEN..], [data[4], data[5], data[6], data[7]]);
    match msg {
        Icmpv4Message::EchoRequest { data: d, .. } | Icmpv4Message::EchoReply { data: d, .. } => {
            assert_eq!(d, body, "echo data is not the body");
            let (ident, seq) = (
                u16::from_be_bytes([rest[0], rest[1]]),
                u16::from_be_bytes([rest[2], rest[3]]),
            );
            assert_eq!(icmpv4::echo_rest(ident, seq), rest);
        }
        Icmpv4Message::DestUnreachable { original, .. }
        | Icmpv4Message::TimeExceeded { original, .. }
        | Icmpv4Message::ParameterProblem { original, .. }
        | Icmpv4Message::SourceQuench { original } => {
            assert_eq!(original, body, "quoted datagram is not the body")
        }
        Icmpv4Message::Other { msg_type, code } => assert_eq!((msg_type, code), (data[0], data[1])),
    }
    let mut out = vec![0u8; data.len()];
    let n = icmpv4::emit(&mut out, data[0], data[1], rest, body);
    assert_eq!(n, data.len());
    // The checksum may differ only as 0x0000 vs 0xffff (both are zero in
    // ones' complement); everything else is byte for byte.
    assert_eq!(out[..2], data[..2], "ICMP type/code did not round-trip");
    assert_eq!(out[4..], data[4..], "ICMP message did not round-trip");
    assert_eq!(Icmpv4Message::parse(&out), Ok(msg));
}

fn ethernet_roundtrip(data: &[u8]) {
    let Ok(eth) = EthernetFrame::parse(data) else {
        assert!(
            data.len() < ethernet::HEADER_LEN,
            "refused a {}-byte frame",
            data.len()
        );
        return;
    };
    assert_eq!(eth.payload, &data[ethernet::HEADER_LEN..]);
    let mut h = [0u8; ethernet::HEADER_LEN];
    ethernet::emit_header(&mut h, eth.dst, eth.src, eth.ethertype);
    assert_eq!(
        &h[..],
        &data[..ethernet::HEADER_LEN],
        "Ethernet header did not round-trip"
    );
    assert_eq!(EtherType::from(u16::from(eth.ethertype)), eth.ethertype);
}

fn arp_roundtrip(data: &[u8]) {
    let Ok(repr) = ArpRepr::parse(data) else { return };
    let mut p = [0u8; arp::PACKET_LEN];
    repr.emit(&mut p);
    assert_eq!(ArpRepr::parse(&p), Ok(repr), "ARP did not round-trip");
}

fn ipv4_roundtrip(data: &[u8]) {
    let Ok(ip) = Ipv4Packet::parse(data) else { return };
    assert_eq!(ip.payload.len(), ip.repr.payload_len);
    assert!(ip.header.len() >= 20 && ip.header.len() <= 60);
    let mut p = vec![0u8; 20 + ip.payload.len()];
    ip.repr.emit(&mut p);
    p[20..].copy_from_slice(ip.payload);
    let again = Ipv4Packet::parse(&p).expect("emitted IPv4 header does not parse");
    assert_eq!(again.repr, ip.repr, "IPv4 did not round-trip");
    assert_eq!(again.payload, ip.payload);
}

fn udp_roundtrip(data: &[u8], src: Ipv4Addr, dst: Ipv4Addr) {
    let Ok((repr, payload)) = UdpRepr::parse(data, src, dst) else {
        return;
    };
    let mut d = vec![0u8; 8 + payload.len()];
    d[8..].copy_from_slice(payload);
    let n = repr.emit_in_place(&mut d, src, dst, payload.len());
    assert_eq!(n, d.len());
    let (again, p2) = UdpRepr::parse(&d, src, dst).expect("emitted UDP does not parse");
    assert_eq!(again, repr, "UDP did not round-trip");
    assert_eq!(p2, payload);
}

fn tcp_roundtrip(data: &[u8], src: Ipv4Addr, dst: Ipv4Addr) {
    let checked = TcpRepr::parse(data, src, dst, true);
    let unchecked = TcpRepr::parse(data, src, dst, false);
    match (&checked, &unchecked) {
        // Checksum verification can only reject more, and changes nothing else.
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Ok(_), Err(e)) => panic!("verified parse succeeded, unverified failed: {e:?}"),
        (Err(_), _) => {}
    }
    let Ok((repr, payload)) = unchecked else { return };
    let _ = format!("{} {}", repr.flags, repr.options);
    let header_len = repr.header_len();
    assert!((20..=60).contains(&header_len) && header_len % 4 == 0);
    let mut seg = vec![0u8; header_len + payload.len()];
    seg[header_len..].copy_from_slice(payload);
    let n = repr.emit(&mut seg, src, dst, payload.len());
    assert_eq!(n, seg.len(), "TcpRepr::emit wrote a different length");
    let (again, p2) = TcpRepr::parse(&seg, src, dst, true).expect("emitted TCP does not parse");
    assert_eq!(p2, payload);
    assert_same_repr(&repr, &again);
    // A second round trip is exact: the first dropped whatever cannot be said.
    let mut seg2 = vec![0u8; again.header_len() + payload.len()];
    seg2[again.header_len()..].copy_from_slice(payload);
    again.emit(&mut seg2, src, dst, payload.len());
    assert_eq!(seg, seg2, "TCP emit is not stable");
}

fn options_roundtrip(data: &[u8]) {
    let opts = TcpOptions::parse(data);
    let repr = TcpRepr {
        options: opts,
        ..TcpRepr::default()
    };
    let mut seg = vec![0u8; repr.header_len()];
    let n = repr.emit(&mut seg, SRC, DST, 0);
    assert_eq!(n, seg.len());
    let (again, _) = TcpRepr::parse(&seg, SRC, DST, true).expect("emitted options do not parse");
    assert_same_repr(&repr, &again);
}

/// Equal except that the emitter may have kept only the first SACK blocks.
fn assert_same_repr(before: &TcpRepr, after: &TcpRepr) {
    let a = before.options.sack_blocks.as_slice();
    let b = after.options.sack_blocks.as_slice();
    assert!(
        b.len() <= a.len() && a[..b.len()] == *b,
        "SACK blocks changed: {a:?} -> {b:?}"
    );
    let mut trimmed = *before;
    trimmed.options.sack_blocks.truncate(b.len());
    assert_eq!(trimmed, *after, "TCP header did not round-trip");
}
