//! Shared driver for the interface-level fuzz targets: feeds frames and
//! time to an [`Interface`], drains it after every input, and checks the
//! invariants that must hold whatever the input was.

pub mod gen;

use core::net::Ipv4Addr;
use tapir_stack::testing::{self, PEER_IP, TAPIR_IP, TAPIR_MAC};
use tapir_stack::wire::{EtherType, EthernetFrame, Icmpv4Message, Ipv4Packet, Protocol, TcpRepr, UdpRepr};
use tapir_stack::{Config, Duration, Instant, Interface, Stats};

/// Frames one drain may produce before we call it a livelock. A correct
/// stack sends at most a send buffer's worth of segments plus a few control
/// frames per input.
pub const MAX_FRAMES_PER_DRAIN: usize = 10_000;
/// Times `handle_timeout(now)` may leave a deadline at or before `now`
/// before we call it a busy loop.
pub const MAX_TIMER_ROUNDS: usize = 64;
/// Events one drain may produce (the queue holds at most three per socket).
pub const MAX_EVENTS_PER_DRAIN: usize = 10_000;

/// The test configuration (tapir at 10.77.0.2/24) with buffers small enough
/// for the fuzzer to fill them.
pub fn config() -> Config {
    let mut c = testing::config();
    c.tcp.recv_buffer = 16 * 1024;
    c.tcp.send_buffer = 16 * 1024;
    c
}

pub struct Harness {
    pub iface: Interface,
    pub now: Instant,
    /// Frames given to `handle_frame`.
    pub fed: u64,
    /// Frames taken from `poll_transmit`.
    pub sent: u64,
    /// Bytes of the frames fed and taken.
    pub fed_bytes: u64,
    pub sent_bytes: u64,
    /// The counters at the previous check: none may go down.
    prev: Stats,
    buf: Vec<u8>,
}

impl Harness {
    pub fn new(config: Config) -> Harness {
        let iface = Interface::new(config).expect("valid config");
        let buf = vec![0u8; iface.max_frame_len()];
        Harness {
            iface,
            now: Instant::from_secs(1),
            fed: 0,
            sent: 0,
            fed_bytes: 0,
            sent_bytes: 0,
            prev: Stats::default(),
            buf,
        }
    }

    /// Hand one frame to the stack, then settle. Returns what it sent.
    pub fn feed(&mut self, frame: &[u8]) -> Vec<Vec<u8>> {
        self.iface.handle_frame(self.now, frame);
        self.fed += 1;
        self.fed_bytes += frame.len() as u64;
        self.settle()
    }

    /// Move the clock forward by `d`, running every timer that falls due on
    /// the way at its own deadline. Returns every frame sent meanwhile.
    pub fn advance(&mut self, d: Duration) -> Vec<Vec<u8>> {
        let target = self.now + d;
        let mut out = Vec::new();
        for _ in 0..1_000_000 {
            match self.iface.poll_timeout() {
                Some(t) if t <= target => {
                    self.now = self.now.max(t);
                    self.iface.handle_timeout(self.now);
                    out.extend(self.settle());
                }
                _ => {
                    self.now = target;
                    out.extend(self.settle());
                    return out;
                }
            }
        }
        panic!("timers keep firing before {target:?}");
    }

    /// Drain the transmit queue and events, run due timers, and check the
    /// invariants. Call after every input or mutator.
    pub fn settle(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut rounds = 0;
        loop {
            let mut n_frames = 0;
            while let Some(n) = self.iface.poll_transmit(self.now, &mut self.buf) {
                assert!(n <= self.buf.len(), "poll_transmit returned {n} > buffer");
                let frame = self.buf[..n].to_vec();
                check_sent_frame(&frame, self.iface.max_frame_len());
                out.push(frame);
                self.sent += 1;
                self.sent_bytes += n as u64;
                n_frames += 1;
                assert!(n_frames < MAX_FRAMES_PER_DRAIN, "poll_transmit never ran dry");
            }
            match self.iface.poll_timeout() {
                Some(t) if t <= self.now => {
                    rounds += 1;
                    assert!(
                        rounds < MAX_TIMER_ROUNDS,
                        "poll_timeout stays at {t:?} <= now {:?} after handle_timeout",
                        self.now
                    );
                    self.iface.handle_timeout(self.now);
                }
                _ => break,
            }
        }
        let mut events = 0;
        while self.iface.poll_event().is_some() {
            events += 1;
            assert!(events < MAX_EVENTS_PER_DRAIN, "poll_event never ran dry");
        }
        let stats = self.iface.stats();
        assert_eq!(
            stats.rx_frames, self.fed,
            "rx_frames does not count the frames fed"
        );
        assert_eq!(
            stats.tx_frames, self.sent,
            "tx_frames does not count the frames sent"
        );
        assert_eq!(
            stats.rx_bytes, self.fed_bytes,
            "rx_bytes does not count the bytes fed"
        );
        assert_eq!(
            stats.tx_bytes, self.sent_bytes,
            "tx_bytes does not count the bytes sent"
        );
        for ((name, now), (_, before)) in stats.iter().zip(self.prev.iter()) {
            assert!(now >= before, "counter {name} went down from {before} to {now}");
        }
        self.prev = stats.clone();
        let cfg = self.iface.config();
        assert!(
            self.iface.socket_count() <= cfg.max_sockets,
            "{} sockets > max_sockets {}",
            self.iface.socket_count(),
            cfg.max_sockets
        );
        assert!(
            self.iface.reassembly_bytes() <= cfg.reassembly.budget_bytes,
            "reassembly holds {} bytes > budget",
            self.iface.reassembly_bytes()
        );
        assert!(self.iface.reassemblies_in_progress() <= cfg.reassembly.max_datagrams);
        // The stack-wide out-of-order total is the connections' sum, and
        // within its bound.
        let ooo: usize = self.iface.tcp_connections().map(|(_, _, s)| s.ooo_bytes).sum();
        assert_eq!(
            ooo,
            self.iface.tcp_ooo_bytes(),
            "out-of-order total drifted from the connections' sum"
        );
        assert!(ooo <= cfg.tcp.max_ooo_bytes_total);
        assert!(self.iface.tcp_time_wait_count() <= cfg.tcp.max_time_wait);
        if let Some(t) = self.iface.poll_timeout() {
            assert!(t > self.now, "deadline {t:?} in the past at {:?}", self.now);
        }
        out
    }
}

/// Everything the stack sends must parse with its own parsers: a valid
/// Ethernet header from our MAC, and for IPv4 a valid header checksum from
/// our address and, unfragmented, a valid transport checksum.
pub fn check_sent_frame(frame: &[u8], max_len: usize) {
    assert!(
        frame.len() <= max_len,
        "frame of {} > max_frame_len {max_len}",
        frame.len()
    );
    let eth = EthernetFrame::parse(frame).expect("stack sent a truncated Ethernet frame");
    assert_eq!(eth.src, TAPIR_MAC, "stack sent from a foreign MAC");
    match eth.ethertype {
        EtherType::Arp => {
            let arp = tapir_stack::wire::ArpRepr::parse(eth.payload).expect("stack sent a bad ARP packet");
            assert_eq!(arp.sender_ip, TAPIR_IP, "ARP from a foreign address");
        }
        EtherType::Ipv4 => {
            let ip = Ipv4Packet::parse(eth.payload).expect("stack sent a bad IPv4 packet");
            assert_eq!(ip.repr.src, TAPIR_IP, "IPv4 from a foreign address");
            if ip.repr.is_fragment() {
                return;
            }
            let (src, dst) = (ip.repr.src, ip.repr.dst);
            match ip.repr.protocol {
                Protocol::Tcp => {
                    TcpRepr::parse(ip.payload, src, dst, true).expect("stack sent a bad TCP segment");
                }
                Protocol::Udp => {
                    UdpRepr::parse(ip.payload, src, dst).expect("stack sent a bad UDP datagram");
                }
                Protocol::Icmp => {
                    Icmpv4Message::parse(ip.payload).expect("stack sent a bad ICMP message");
                }
                other => panic!("stack sent IPv4 protocol {other:?}"),
            }
        }
        other => panic!("stack sent EtherType {other:?}"),
    }
}

/// The RFC 1071 checksum of `data` after `initial` (a 32-bit partial sum).
pub fn checksum(initial: u32, data: &[u8]) -> u16 {
    let mut sum = initial;
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [b] = words.remainder() {
        sum += u32::from(u16::from_be_bytes([*b, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: usize) -> u32 {
    let s = src.octets();
    let d = dst.octets();
    u32::from(u16::from_be_bytes([s[0], s[1]]))
        + u32::from(u16::from_be_bytes([s[2], s[3]]))
        + u32::from(u16::from_be_bytes([d[0], d[1]]))
        + u32::from(u16::from_be_bytes([d[2], d[3]]))
        + u32::from(protocol)
        + (len as u32 & 0xffff)
}

/// A TCP segment from the peer with raw option bytes (at most 40, padded
/// with EOL to a multiple of 4) and a correct checksum, in a frame to tapir.
#[allow(clippy::too_many_arguments)]
pub fn tcp_frame_from_peer(
    src_port: u16,
    dst_port: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    urgent: u16,
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let options = &options[..options.len().min(40)];
    let header_len = 20 + options.len().div_ceil(4) * 4;
    // Stay within one unfragmented IPv4 datagram at a 1500 MTU.
    let payload = &payload[..payload.len().min(1500 - 20 - header_len)];
    let mut seg = vec![0u8; header_len + payload.len()];
    seg[0..2].copy_from_slice(&src_port.to_be_bytes());
    seg[2..4].copy_from_slice(&dst_port.to_be_bytes());
    seg[4..8].copy_from_slice(&seq.to_be_bytes());
    seg[8..12].copy_from_slice(&ack.to_be_bytes());
    seg[12] = ((header_len / 4) as u8) << 4;
    seg[13] = flags;
    seg[14..16].copy_from_slice(&window.to_be_bytes());
    seg[18..20].copy_from_slice(&urgent.to_be_bytes());
    seg[20..20 + options.len()].copy_from_slice(options);
    seg[header_len..].copy_from_slice(payload);
    let c = checksum(pseudo_header(PEER_IP, TAPIR_IP, 6, seg.len()), &seg);
    seg[16..18].copy_from_slice(&c.to_be_bytes());
    testing::ipv4_from_peer(Protocol::Tcp, &seg)
}

/// The TCP segments tapir sent to the peer in `frames`.
pub fn sent_tcp(frames: &[Vec<u8>]) -> Vec<(TcpRepr, usize)> {
    let mut out = Vec::new();
    for f in frames {
        let Ok(eth) = EthernetFrame::parse(f) else {
            continue;
        };
        if eth.ethertype != EtherType::Ipv4 {
            continue;
        }
        let Ok(ip) = Ipv4Packet::parse(eth.payload) else {
            continue;
        };
        if ip.repr.protocol != Protocol::Tcp || ip.repr.is_fragment() {
            continue;
        }
        if let Ok((repr, payload)) = TcpRepr::parse(ip.payload, ip.repr.src, ip.repr.dst, true) {
            out.push((repr, payload.len()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crafted_segment_parses() {
        let f = tcp_frame_from_peer(40000, 80, 1, 0, 0x02, 1000, 0, &[2, 4, 5, 0xb4, 1], b"hi");
        let eth = EthernetFrame::parse(&f).unwrap();
        let ip = Ipv4Packet::parse(eth.payload).unwrap();
        let (repr, payload) = TcpRepr::parse(ip.payload, PEER_IP, TAPIR_IP, true).unwrap();
        assert_eq!(repr.options.mss, Some(1460));
        assert_eq!(payload, b"hi");
    }
}
