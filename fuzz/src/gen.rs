//! Structure-aware frame builders: `Arbitrary` descriptions of Ethernet,
//! ARP, IPv4 (with options and fragment fields), ICMP, UDP and TCP (with
//! options) that always serialize with correct lengths and checksums, so
//! the fuzzer's mutations reach TCP and ICMP state instead of dying at a
//! checksum. Sequence and acknowledgment numbers, SACK blocks and quoted
//! segments in ICMP errors can be relative to a live connection (taken
//! from [`Env`]), which lands them inside its windows. After the model of
//! Fuchsia netstack3's fuzz crate.

use crate::checksum;
use arbitrary::Arbitrary;
use core::net::Ipv4Addr;
use tapir_stack::testing::{PEER_IP, PEER_MAC, TAPIR_IP, TAPIR_MAC};

/// A connection as the peer sees it: tapir's ports and sequence variables.
#[derive(Debug, Clone, Copy)]
pub struct ConnView {
    pub local_port: u16,
    pub remote_ip: Ipv4Addr,
    pub remote_port: u16,
    pub snd_una: u32,
    pub snd_nxt: u32,
    pub rcv_nxt: u32,
}

/// What the builders may refer to.
#[derive(Debug, Default)]
pub struct Env {
    /// tapir's ports worth aiming at (listeners, bound UDP sockets).
    pub local_ports: Vec<u16>,
    /// Live connections.
    pub conns: Vec<ConnView>,
    /// The peer's TSval clock: advanced by every timestamp option built
    /// with `TsVal::Next`, so PAWS (RFC 7323 5) lets them through.
    pub ts_clock: u32,
}

impl Env {
    fn conn(&self, i: u8) -> Option<ConnView> {
        (!self.conns.is_empty()).then(|| self.conns[usize::from(i) % self.conns.len()])
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Mac {
    Tapir,
    Peer,
    Broadcast,
    Other([u8; 6]),
}

impl Mac {
    fn bytes(self) -> [u8; 6] {
        match self {
            Mac::Tapir => TAPIR_MAC.0,
            Mac::Peer => PEER_MAC.0,
            Mac::Broadcast => [0xff; 6],
            Mac::Other(m) => m,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Addr {
    Tapir,
    Peer,
    /// Another host on tapir's /24.
    Neighbor(u8),
    SubnetBroadcast,
    Broadcast,
    Other([u8; 4]),
}

impl Addr {
    fn ip(self) -> Ipv4Addr {
        match self {
            Addr::Tapir => TAPIR_IP,
            Addr::Peer => PEER_IP,
            Addr::Neighbor(n) => Ipv4Addr::new(10, 77, 0, n),
            Addr::SubnetBroadcast => Ipv4Addr::new(10, 77, 0, 255),
            Addr::Broadcast => Ipv4Addr::BROADCAST,
            Addr::Other(a) => Ipv4Addr::from(a),
        }
    }
}

/// A whole frame.
#[derive(Arbitrary, Debug)]
pub struct Frame {
    pub dst: Mac,
    pub src: Mac,
    pub body: L3,
}

#[derive(Arbitrary, Debug)]
pub enum L3 {
    Arp(Arp),
    Ipv4(Ipv4),
    Raw { ethertype: u16, bytes: Vec<u8> },
}

#[derive(Arbitrary, Debug)]
pub struct Arp {
    /// 1 request, 2 reply, anything else is malformed.
    pub op: u16,
    pub sender_mac: Mac,
    pub sender_ip: Addr,
    pub target_mac: Mac,
    pub target_ip: Addr,
    /// Mostly Ethernet/IPv4; anything else is malformed.
    pub odd_hardware: Option<(u16, u16, u8, u8)>,
}

#[derive(Arbitrary, Debug)]
pub struct Ipv4 {
    /// Default: from the peer to tapir.
    pub addrs: Option<(Addr, Addr)>,
    pub tos: u8,
    pub ttl: u8,
    pub ident: u16,
    pub dont_fragment: bool,
    pub more_fragments: bool,
    /// Fragment offset in 8-byte units (13 bits).
    pub frag_offset: u16,
    /// IP option bytes (at most 40, padded with EOL).
    pub options: Vec<u8>,
    pub body: L4,
}

#[derive(Arbitrary, Debug)]
pub enum L4 {
    Tcp(Tcp),
    Udp(Udp),
    Icmp(Icmp),
    Raw { protocol: u8, bytes: Vec<u8> },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Port {
    /// One of `Env::local_ports`.
    Known(u8),
    /// One of four peer ports, 40000-40003.
    Peer(u8),
    Any(u16),
}

impl Port {
    fn local(self, env: &Env) -> u16 {
        match self {
            Port::Known(i) if !env.local_ports.is_empty() => {
                env.local_ports[usize::from(i) % env.local_ports.len()]
            }
            Port::Known(_) => 80,
            Port::Peer(i) => 40000 + u16::from(i % 4),
            Port::Any(p) => p,
        }
    }
}

/// Whose connection a TCP segment belongs to.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Flow {
    /// One of `Env::conns`: its ports, and numbers relative to its state.
    Conn(u8),
    /// From a peer port to a local port, numbers absolute.
    Ports { src: Port, dst: Port },
}

/// A sequence number: relative to the connection (`rcv_nxt` for SEQ,
/// `snd_una`/`snd_nxt` for ACK), or absolute.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Seq {
    Rel(i16),
    RelAlt(i16),
    Abs(u32),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum TsVal {
    /// The peer's clock, advanced by this much first.
    Next(u8),
    Abs(u32),
}

#[derive(Arbitrary, Debug)]
pub enum TcpOpt {
    Eol,
    Nop,
    Mss(u16),
    WindowScale(u8),
    SackPermitted,
    /// Blocks relative to SND.UNA of the connection (left, length).
    Sack(Vec<(i16, u16)>),
    Timestamps {
        val: TsVal,
        ecr: u32,
    },
    /// Any kind with its data (length byte = 2 + data).
    Raw {
        kind: u8,
        data: Vec<u8>,
    },
    /// A kind with a lying length byte (0, 1 or beyond the options).
    BadLength {
        kind: u8,
        len: u8,
    },
}

#[derive(Arbitrary, Debug)]
pub struct Tcp {
    pub flow: Flow,
    pub seq: Seq,
    pub ack: Seq,
    /// FIN SYN RST PSH ACK URG ECE CWR, and the 4 reserved bits.
    pub flags: u8,
    pub reserved: u8,
    pub window: u16,
    pub urgent: u16,
    pub options: Vec<TcpOpt>,
    pub payload: Payload,
    /// Break the checksum (the one deliberate error).
    pub bad_checksum: bool,
}

/// Payload bytes: given, or a run of a length (cheaper for the fuzzer to
/// reach full segments).
#[derive(Arbitrary, Debug)]
pub enum Payload {
    Bytes(Vec<u8>),
    Fill { byte: u8, len: u16 },
}

impl Payload {
    fn bytes(&self, max: usize) -> Vec<u8> {
        match self {
            Payload::Bytes(b) => b[..b.len().min(max)].to_vec(),
            Payload::Fill { byte, len } => vec![*byte; usize::from(*len).min(max)],
        }
    }
}

#[derive(Arbitrary, Debug)]
pub struct Udp {
    pub src_port: u16,
    pub dst_port: Port,
    pub payload: Payload,
    /// Send with checksum 0 (none, RFC 768).
    pub no_checksum: bool,
}

#[derive(Arbitrary, Debug)]
pub enum Icmp {
    Echo {
        request: bool,
        ident: u16,
        seq: u16,
        data: Vec<u8>,
    },
    Unreachable {
        code: u8,
        mtu: u16,
        quote: Quote,
    },
    TimeExceeded {
        code: u8,
        quote: Quote,
    },
    ParameterProblem {
        pointer: u8,
        quote: Quote,
    },
    SourceQuench {
        quote: Quote,
    },
    Raw {
        msg_type: u8,
        code: u8,
        rest: [u8; 4],
        body: Vec<u8>,
    },
}

/// The datagram an ICMP error quotes: as if tapir had sent it to the peer.
#[derive(Arbitrary, Debug)]
pub struct Quote {
    pub flow: Flow,
    /// Relative to SND.UNA of the connection (or absolute without one).
    pub seq: i32,
    pub protocol: QuoteProtocol,
    /// Bytes of the quoted transport header kept: 8 (RFC 792) up to 20.
    pub keep: u8,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum QuoteProtocol {
    Tcp,
    Udp,
    Other(u8),
}

// ---------------------------------------------------------------------------

fn pseudo(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: usize) -> u32 {
    let (s, d) = (src.octets(), dst.octets());
    u32::from(u16::from_be_bytes([s[0], s[1]]))
        + u32::from(u16::from_be_bytes([s[2], s[3]]))
        + u32::from(u16::from_be_bytes([d[0], d[1]]))
        + u32::from(u16::from_be_bytes([d[2], d[3]]))
        + u32::from(protocol)
        + (len as u32 & 0xffff)
}

impl Frame {
    pub fn build(&self, env: &mut Env) -> Vec<u8> {
        let (ethertype, payload) = match &self.body {
            L3::Arp(a) => (0x0806, a.build()),
            L3::Ipv4(ip) => (0x0800, ip.build(env)),
            L3::Raw { ethertype, bytes } => (*ethertype, bytes[..bytes.len().min(1500)].to_vec()),
        };
        let mut f = Vec::with_capacity(14 + payload.len());
        f.extend_from_slice(&self.dst.bytes());
        f.extend_from_slice(&self.src.bytes());
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(&payload);
        f
    }
}

impl Arp {
    fn build(&self) -> Vec<u8> {
        let (htype, ptype, hlen, plen) = self.odd_hardware.unwrap_or((1, 0x0800, 6, 4));
        let mut p = Vec::with_capacity(28);
        p.extend_from_slice(&htype.to_be_bytes());
        p.extend_from_slice(&ptype.to_be_bytes());
        p.push(hlen);
        p.push(plen);
        p.extend_from_slice(&self.op.to_be_bytes());
        p.extend_from_slice(&self.sender_mac.bytes());
        p.extend_from_slice(&self.sender_ip.ip().octets());
        p.extend_from_slice(&self.target_mac.bytes());
        p.extend_from_slice(&self.target_ip.ip().octets());
        p
    }
}

/// An IPv4 header with `options` and a correct checksum, then `payload`.
#[allow(clippy::too_many_arguments)]
fn ipv4_header(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    tos: u8,
    ttl: u8,
    ident: u16,
    flags_frag: u16,
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let options = &options[..options.len().min(40)];
    let hlen = 20 + options.len().div_ceil(4) * 4;
    let total = (hlen + payload.len()).min(65535);
    let mut p = vec![0u8; hlen];
    p[0] = 0x40 | (hlen / 4) as u8;
    p[1] = tos;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[4..6].copy_from_slice(&ident.to_be_bytes());
    p[6..8].copy_from_slice(&flags_frag.to_be_bytes());
    p[8] = ttl;
    p[9] = protocol;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    p[20..20 + options.len()].copy_from_slice(options);
    let c = checksum(0, &p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&payload[..total - hlen]);
    p
}

impl Ipv4 {
    fn build(&self, env: &mut Env) -> Vec<u8> {
        let (src, dst) = self.addrs.map_or((PEER_IP, TAPIR_IP), |(s, d)| (s.ip(), d.ip()));
        // Keep unfragmented datagrams within a 1500-byte MTU.
        let room = 1480 - self.options.len().min(40).div_ceil(4) * 4;
        let (protocol, payload) = match &self.body {
            L4::Tcp(t) => (6, t.build(env, src, dst, room)),
            L4::Udp(u) => (17, u.build(env, src, dst, room)),
            L4::Icmp(i) => (1, i.build(env, room)),
            L4::Raw { protocol, bytes } => (*protocol, bytes[..bytes.len().min(room)].to_vec()),
        };
        let flags_frag = u16::from(self.dont_fragment) << 14
            | u16::from(self.more_fragments) << 13
            | (self.frag_offset & 0x1fff);
        ipv4_header(
            src,
            dst,
            protocol,
            self.tos,
            self.ttl,
            self.ident,
            flags_frag,
            &self.options,
            &payload,
        )
    }
}

impl Seq {
    fn resolve(self, base: u32, alt: u32) -> u32 {
        match self {
            Seq::Rel(d) => base.wrapping_add(d as i32 as u32),
            Seq::RelAlt(d) => alt.wrapping_add(d as i32 as u32),
            Seq::Abs(s) => s,
        }
    }
}

impl Flow {
    /// (tapir's port, the peer's port, the connection if any).
    fn resolve(self, env: &Env) -> (u16, u16, Option<ConnView>) {
        match self {
            Flow::Conn(i) => match env.conn(i) {
                Some(c) => (c.local_port, c.remote_port, Some(c)),
                None => (Port::Known(i).local(env), 40000 + u16::from(i % 4), None),
            },
            Flow::Ports { src, dst } => (dst.local(env), src.local(env), None),
        }
    }
}

impl TcpOpt {
    fn emit(&self, env: &mut Env, conn: Option<ConnView>, out: &mut Vec<u8>) {
        match self {
            TcpOpt::Eol => out.push(0),
            TcpOpt::Nop => out.push(1),
            TcpOpt::Mss(m) => {
                out.extend_from_slice(&[2, 4]);
                out.extend_from_slice(&m.to_be_bytes());
            }
            TcpOpt::WindowScale(s) => out.extend_from_slice(&[3, 3, *s]),
            TcpOpt::SackPermitted => out.extend_from_slice(&[4, 2]),
            TcpOpt::Sack(blocks) => {
                let base = conn.map_or(0, |c| c.snd_una);
                let blocks = &blocks[..blocks.len().min(4)];
                out.extend_from_slice(&[5, 2 + 8 * blocks.len() as u8]);
                for &(left, len) in blocks {
                    let l = base.wrapping_add(left as i32 as u32);
                    out.extend_from_slice(&l.to_be_bytes());
                    out.extend_from_slice(&l.wrapping_add(u32::from(len)).to_be_bytes());
                }
            }
            TcpOpt::Timestamps { val, ecr } => {
                let val = match val {
                    TsVal::Next(d) => {
                        env.ts_clock = env.ts_clock.wrapping_add(u32::from(*d));
                        env.ts_clock
                    }
                    TsVal::Abs(v) => *v,
                };
                out.extend_from_slice(&[8, 10]);
                out.extend_from_slice(&val.to_be_bytes());
                out.extend_from_slice(&ecr.to_be_bytes());
            }
            TcpOpt::Raw { kind, data } => {
                let data = &data[..data.len().min(38)];
                out.extend_from_slice(&[*kind, 2 + data.len() as u8]);
                out.extend_from_slice(data);
            }
            TcpOpt::BadLength { kind, len } => out.extend_from_slice(&[*kind, *len]),
        }
    }
}

impl Tcp {
    fn build(&self, env: &mut Env, src: Ipv4Addr, dst: Ipv4Addr, room: usize) -> Vec<u8> {
        let (local, remote, conn) = self.flow.resolve(env);
        let (rcv_nxt, snd_una, snd_nxt) = conn.map_or((0, 0, 0), |c| (c.rcv_nxt, c.snd_una, c.snd_nxt));
        let seq = self.seq.resolve(rcv_nxt, rcv_nxt);
        let ack = self.ack.resolve(snd_nxt, snd_una);
        let mut opts = Vec::new();
        for o in &self.options {
            o.emit(env, conn, &mut opts);
        }
        opts.truncate(40);
        let hlen = 20 + opts.len().div_ceil(4) * 4;
        let payload = self.payload.bytes(room - hlen);
        let mut seg = vec![0u8; hlen];
        seg[0..2].copy_from_slice(&remote.to_be_bytes());
        seg[2..4].copy_from_slice(&local.to_be_bytes());
        seg[4..8].copy_from_slice(&seq.to_be_bytes());
        seg[8..12].copy_from_slice(&ack.to_be_bytes());
        seg[12] = ((hlen / 4) as u8) << 4 | (self.reserved & 0x0f);
        seg[13] = self.flags;
        seg[14..16].copy_from_slice(&self.window.to_be_bytes());
        seg[18..20].copy_from_slice(&self.urgent.to_be_bytes());
        seg[20..20 + opts.len()].copy_from_slice(&opts);
        seg.extend_from_slice(&payload);
        let mut c = checksum(pseudo(src, dst, 6, seg.len()), &seg);
        if self.bad_checksum {
            c = c.wrapping_add(1);
        }
        seg[16..18].copy_from_slice(&c.to_be_bytes());
        seg
    }
}

impl Udp {
    fn build(&self, env: &Env, src: Ipv4Addr, dst: Ipv4Addr, room: usize) -> Vec<u8> {
        let payload = self.payload.bytes(room - 8);
        let mut d = vec![0u8; 8];
        d[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        d[2..4].copy_from_slice(&self.dst_port.local(env).to_be_bytes());
        d[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        d.extend_from_slice(&payload);
        if !self.no_checksum {
            let mut c = checksum(pseudo(src, dst, 17, d.len()), &d);
            // RFC 768: a computed zero is sent as all ones.
            if c == 0 {
                c = 0xffff;
            }
            d[6..8].copy_from_slice(&c.to_be_bytes());
        }
        d
    }
}

impl Quote {
    /// The quoted datagram: an IPv4 header from tapir to the peer and the
    /// start of the transport header.
    fn build(&self, env: &Env) -> Vec<u8> {
        let (local, remote, conn) = self.flow.resolve(env);
        let seq = conn.map_or(0, |c| c.snd_una).wrapping_add(self.seq as u32);
        let (protocol, mut l4) = match self.protocol {
            QuoteProtocol::Tcp => (6, vec![0u8; 20]),
            QuoteProtocol::Udp => (17, vec![0u8; 8]),
            // Another protocol number can still be 6: TCP's header then.
            QuoteProtocol::Other(p) => (p, vec![0u8; if p == 6 { 20 } else { 8 }]),
        };
        l4[0..2].copy_from_slice(&local.to_be_bytes());
        l4[2..4].copy_from_slice(&remote.to_be_bytes());
        l4[4..8].copy_from_slice(&seq.to_be_bytes());
        if protocol == 6 {
            l4[12] = 0x50;
            l4[13] = 0x18;
        }
        let keep = (8 + usize::from(self.keep) % 13).min(l4.len());
        let remote_ip = conn.map_or(PEER_IP, |c| c.remote_ip);
        // The original's total length says 1500, as the segment it quotes.
        let mut ip = ipv4_header(TAPIR_IP, remote_ip, protocol, 0, 64, 1, 0x4000, &[], &l4[..keep]);
        ip[2..4].copy_from_slice(&1500u16.to_be_bytes());
        ip
    }
}

impl Icmp {
    fn build(&self, env: &Env, room: usize) -> Vec<u8> {
        let (msg_type, code, rest, body) = match self {
            Icmp::Echo {
                request,
                ident,
                seq,
                data,
            } => {
                let (i, s) = (ident.to_be_bytes(), seq.to_be_bytes());
                (
                    if *request { 8 } else { 0 },
                    0,
                    [i[0], i[1], s[0], s[1]],
                    data.clone(),
                )
            }
            Icmp::Unreachable { code, mtu, quote } => {
                let m = mtu.to_be_bytes();
                (3, *code, [0, 0, m[0], m[1]], quote.build(env))
            }
            Icmp::TimeExceeded { code, quote } => (11, *code, [0; 4], quote.build(env)),
            Icmp::ParameterProblem { pointer, quote } => (12, 0, [*pointer, 0, 0, 0], quote.build(env)),
            Icmp::SourceQuench { quote } => (4, 0, [0; 4], quote.build(env)),
            Icmp::Raw {
                msg_type,
                code,
                rest,
                body,
            } => (*msg_type, *code, *rest, body.clone()),
        };
        let body = &body[..body.len().min(room - 8)];
        let mut m = vec![msg_type, code, 0, 0, rest[0], rest[1], rest[2], rest[3]];
        m.extend_from_slice(body);
        let c = checksum(0, &m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapir_stack::wire::{EthernetFrame, Icmpv4Message, Ipv4Packet, TcpRepr, UdpRepr};

    fn env() -> Env {
        Env {
            local_ports: vec![80],
            conns: vec![ConnView {
                local_port: 80,
                remote_ip: PEER_IP,
                remote_port: 40001,
                snd_una: 1000,
                snd_nxt: 2000,
                rcv_nxt: 5000,
            }],
            ts_clock: 7,
        }
    }

    fn ip(body: L4, options: Vec<u8>) -> Frame {
        Frame {
            dst: Mac::Tapir,
            src: Mac::Peer,
            body: L3::Ipv4(Ipv4 {
                addrs: None,
                tos: 0,
                ttl: 64,
                ident: 1,
                dont_fragment: true,
                more_fragments: false,
                frag_offset: 0,
                options,
                body,
            }),
        }
    }

    #[test]
    fn tcp_with_options_parses_with_its_checksum() {
        let mut env = env();
        let f = ip(
            L4::Tcp(Tcp {
                flow: Flow::Conn(0),
                seq: Seq::Rel(3),
                ack: Seq::RelAlt(-1),
                flags: 0x18,
                reserved: 0,
                window: 100,
                urgent: 0,
                options: vec![
                    TcpOpt::Nop,
                    TcpOpt::Nop,
                    TcpOpt::Timestamps {
                        val: TsVal::Next(5),
                        ecr: 9,
                    },
                    TcpOpt::Sack(vec![(10, 20)]),
                ],
                payload: Payload::Fill { byte: 1, len: 3000 },
                bad_checksum: false,
            }),
            vec![1, 1, 1, 0],
        )
        .build(&mut env);
        assert!(f.len() <= 1514);
        let eth = EthernetFrame::parse(&f).unwrap();
        let ip = Ipv4Packet::parse(eth.payload).unwrap();
        let (tcp, payload) = TcpRepr::parse(ip.payload, PEER_IP, TAPIR_IP, true).unwrap();
        assert_eq!(
            (tcp.src_port, tcp.dst_port, tcp.seq, tcp.ack),
            (40001, 80, 5003, 999)
        );
        assert_eq!(tcp.options.timestamps, Some((12, 9)));
        assert_eq!(payload.len(), 1500 - 24 - 20 - 12 - 12);
    }

    #[test]
    fn udp_and_icmp_quote_parse() {
        let mut env = env();
        let f = ip(
            L4::Udp(Udp {
                src_port: 9,
                dst_port: Port::Known(0),
                payload: Payload::Bytes(b"abc".to_vec()),
                no_checksum: false,
            }),
            vec![],
        )
        .build(&mut env);
        let eth = EthernetFrame::parse(&f).unwrap();
        let ip4 = Ipv4Packet::parse(eth.payload).unwrap();
        assert!(UdpRepr::parse(ip4.payload, PEER_IP, TAPIR_IP).is_ok());

        let f = ip(
            L4::Icmp(Icmp::Unreachable {
                code: 4,
                mtu: 1000,
                quote: Quote {
                    flow: Flow::Conn(0),
                    seq: 0,
                    protocol: QuoteProtocol::Tcp,
                    keep: 0,
                },
            }),
            vec![],
        )
        .build(&mut env);
        let eth = EthernetFrame::parse(&f).unwrap();
        let ip4 = Ipv4Packet::parse(eth.payload).unwrap();
        let Ok(Icmpv4Message::DestUnreachable { original, .. }) = Icmpv4Message::parse(ip4.payload) else {
            panic!("not an unreachable");
        };
        assert_eq!(&original[20..22], &80u16.to_be_bytes());
        assert_eq!(&original[24..28], &1000u32.to_be_bytes());
    }
}
