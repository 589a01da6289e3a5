//! Helpers for tests: crafting frames a peer would send and reading the
//! ones the stack sends. Built on the same `wire` emitters the stack uses,
//! but each test checks the stack against literal byte arrays somewhere too,
//! so the two cannot agree on a mistake unnoticed.

use crate::config::Config;
use crate::time::Instant;
use crate::wire::{
    arp, ethernet, icmpv4, ArpOperation, ArpRepr, EtherType, EthernetAddress, EthernetFrame, Ipv4Cidr,
};
use crate::wire::{Ipv4Packet, Ipv4Repr, Protocol, UdpRepr};
use crate::Interface;
use core::net::{Ipv4Addr, SocketAddrV4};

pub const TAPIR_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0x00, 0x77, 0x00, 0x02]);
pub const TAPIR_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
pub const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0x00, 0x77, 0x00, 0x01]);
pub const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

/// The configuration the tests use: tapir at 10.77.0.2/24.
pub fn config() -> Config {
    Config::new(TAPIR_MAC, Ipv4Cidr::new(TAPIR_IP, 24).expect("valid prefix"))
}

pub fn ethernet(dst: EthernetAddress, src: EthernetAddress, ethertype: EtherType, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; ethernet::HEADER_LEN + payload.len()];
    ethernet::emit_header(&mut f, dst, src, ethertype);
    f[ethernet::HEADER_LEN..].copy_from_slice(payload);
    f
}

pub fn arp_frame(dst: EthernetAddress, repr: ArpRepr) -> Vec<u8> {
    let mut p = [0u8; arp::PACKET_LEN];
    repr.emit(&mut p);
    ethernet(dst, repr.sender_mac, EtherType::Arp, &p)
}

/// "Who has `target`? Tell PEER", broadcast from the peer.
pub fn arp_request_from_peer(target: Ipv4Addr) -> Vec<u8> {
    arp_frame(
        EthernetAddress::BROADCAST,
        ArpRepr {
            operation: ArpOperation::Request,
            sender_mac: PEER_MAC,
            sender_ip: PEER_IP,
            target_mac: EthernetAddress::ZERO,
            target_ip: target,
        },
    )
}

/// "PEER is at PEER_MAC", sent to tapir.
pub fn arp_reply_from_peer() -> Vec<u8> {
    arp_frame(
        TAPIR_MAC,
        ArpRepr {
            operation: ArpOperation::Reply,
            sender_mac: PEER_MAC,
            sender_ip: PEER_IP,
            target_mac: TAPIR_MAC,
            target_ip: TAPIR_IP,
        },
    )
}

/// An IPv4 packet (header + payload) with the given fragment fields.
#[allow(clippy::too_many_arguments)]
pub fn ipv4_packet(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: Protocol,
    ident: u16,
    more: bool,
    offset: usize,
    payload: &[u8],
) -> Vec<u8> {
    let repr = Ipv4Repr {
        src,
        dst,
        protocol,
        ttl: 64,
        tos: 0,
        ident,
        dont_fragment: false,
        more_fragments: more,
        frag_offset: offset,
        payload_len: payload.len(),
    };
    let mut p = vec![0u8; 20 + payload.len()];
    repr.emit(&mut p);
    p[20..].copy_from_slice(payload);
    p
}

/// An IPv4 frame from the peer to tapir.
pub fn ipv4_from_peer(protocol: Protocol, payload: &[u8]) -> Vec<u8> {
    ethernet(
        TAPIR_MAC,
        PEER_MAC,
        EtherType::Ipv4,
        &ipv4_packet(PEER_IP, TAPIR_IP, protocol, 1, false, 0, payload),
    )
}

/// A UDP datagram (header + data) with a correct checksum.
pub fn udp_datagram(src: SocketAddrV4, dst: SocketAddrV4, data: &[u8]) -> Vec<u8> {
    let mut d = vec![0u8; 8 + data.len()];
    d[8..].copy_from_slice(data);
    UdpRepr {
        src_port: src.port(),
        dst_port: dst.port(),
    }
    .emit_in_place(&mut d, *src.ip(), *dst.ip(), data.len());
    d
}

pub fn udp_from_peer(src_port: u16, dst_port: u16, data: &[u8]) -> Vec<u8> {
    let d = udp_datagram(
        SocketAddrV4::new(PEER_IP, src_port),
        SocketAddrV4::new(TAPIR_IP, dst_port),
        data,
    );
    ipv4_from_peer(Protocol::Udp, &d)
}

pub fn icmp_echo_request(ident: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut m = vec![0u8; icmpv4::HEADER_LEN + data.len()];
    icmpv4::emit(
        &mut m,
        icmpv4::TYPE_ECHO_REQUEST,
        0,
        icmpv4::echo_rest(ident, seq),
        data,
    );
    m
}

/// Every frame the interface wants to send now.
pub fn drain(iface: &mut Interface, now: Instant) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; iface.max_frame_len()];
    while let Some(n) = iface.poll_transmit(now, &mut buf) {
        out.push(buf[..n].to_vec());
        assert!(out.len() < 100_000, "poll_transmit never ran dry");
    }
    out
}

/// A frame the stack sent, decoded for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    Arp {
        dst_mac: EthernetAddress,
        repr: ArpRepr,
    },
    Ipv4 {
        dst_mac: EthernetAddress,
        repr: Ipv4Repr,
        payload: Vec<u8>,
    },
    Other(Vec<u8>),
}

/// Decode a frame the stack sent. Panics on a malformed one: the stack
/// must never emit one, so in a test that is a failure.
pub fn decode(frame: &[u8]) -> Sent {
    let eth = EthernetFrame::parse(frame).expect("stack emitted a truncated frame");
    assert_eq!(eth.src, TAPIR_MAC, "stack sent from a foreign MAC");
    match eth.ethertype {
        EtherType::Arp => Sent::Arp {
            dst_mac: eth.dst,
            repr: ArpRepr::parse(eth.payload).expect("stack emitted bad ARP"),
        },
        EtherType::Ipv4 => {
            let p = Ipv4Packet::parse(eth.payload).expect("stack emitted a bad IPv4 packet");
            Sent::Ipv4 {
                dst_mac: eth.dst,
                repr: p.repr,
                payload: p.payload.to_vec(),
            }
        }
        _ => Sent::Other(frame.to_vec()),
    }
}

/// Teach the interface the peer's MAC by having the peer ask for ours, and
/// consume the ARP reply.
pub fn introduce_peer(iface: &mut Interface, now: Instant) {
    iface.handle_frame(now, &arp_request_from_peer(TAPIR_IP));
    let sent = drain(iface, now);
    assert_eq!(sent.len(), 1, "expected exactly the ARP reply");
}
