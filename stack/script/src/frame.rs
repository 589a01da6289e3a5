//! Ethernet + IPv4 + TCP (and ARP) frames as the runner builds and reads
//! them. This is the one place that knows header layouts, so it can later
//! be switched to `tapir_stack::wire`; everything else works on [`TcpSegment`].

use core::fmt;
use core::net::Ipv4Addr;

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
const ETH_HEADER_LEN: usize = 14;
const IPV4_HEADER_LEN: usize = 20;
const TCP_HEADER_LEN: usize = 20;
const PROTO_TCP: u8 = 6;

/// TCP header flags, including the ECN (ECE, CWR) and AccECN (AE) bits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpFlags {
    pub fin: bool,
    pub syn: bool,
    pub rst: bool,
    pub psh: bool,
    pub ack: bool,
    pub urg: bool,
    pub ece: bool,
    pub cwr: bool,
    pub ae: bool,
}

impl TcpFlags {
    /// From the 9 flag bits (AE is bit 8 of the 16-bit word after the
    /// acknowledgment number, FIN bit 0).
    pub fn from_bits(b: u16) -> Self {
        TcpFlags {
            fin: b & 0x001 != 0,
            syn: b & 0x002 != 0,
            rst: b & 0x004 != 0,
            psh: b & 0x008 != 0,
            ack: b & 0x010 != 0,
            urg: b & 0x020 != 0,
            ece: b & 0x040 != 0,
            cwr: b & 0x080 != 0,
            ae: b & 0x100 != 0,
        }
    }

    pub fn bits(self) -> u16 {
        [
            self.fin, self.syn, self.rst, self.psh, self.ack, self.urg, self.ece, self.cwr, self.ae,
        ]
        .iter()
        .enumerate()
        .fold(0, |acc, (i, &set)| if set { acc | (1 << i) } else { acc })
    }

    /// packetdrill's spelling: `S.`, `P.`, `F.`, `R`, `.`, `FP.`, `SEW`;
    /// `-` for none.
    pub fn script(self) -> String {
        let mut s = String::new();
        for (set, c) in [
            (self.fin, 'F'),
            (self.syn, 'S'),
            (self.rst, 'R'),
            (self.psh, 'P'),
            (self.urg, 'U'),
            (self.ece, 'E'),
            (self.cwr, 'W'),
            (self.ae, 'A'),
            (self.ack, '.'),
        ] {
            if set {
                s.push(c);
            }
        }
        if s.is_empty() {
            s.push('-');
        }
        s
    }
}

/// One TCP option, as scripts write it and as decoded from the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpOption {
    Eol,
    Nop,
    Mss(u16),
    WindowScale(u8),
    SackPermitted,
    /// Blocks as (left, right) edges.
    Sack(Vec<(u32, u32)>),
    Timestamp {
        val: u32,
        ecr: u32,
    },
    /// TCP Fast Open cookie (kind 34).
    FastOpen(Vec<u8>),
    /// TCP Fast Open, experimental kind 254 with magic 0xF989.
    FastOpenExp(Vec<u8>),
    /// TCP MD5 signature (kind 19).
    Md5(Vec<u8>),
    Unknown {
        kind: u8,
        data: Vec<u8>,
    },
}

impl TcpOption {
    pub fn kind(&self) -> u8 {
        match self {
            TcpOption::Eol => 0,
            TcpOption::Nop => 1,
            TcpOption::Mss(_) => 2,
            TcpOption::WindowScale(_) => 3,
            TcpOption::SackPermitted => 4,
            TcpOption::Sack(_) => 5,
            TcpOption::Timestamp { .. } => 8,
            TcpOption::Md5(_) => 19,
            TcpOption::FastOpen(_) => 34,
            TcpOption::FastOpenExp(_) => 254,
            TcpOption::Unknown { kind, .. } => *kind,
        }
    }

    /// Bytes on the wire, including kind and length.
    pub fn wire_len(&self) -> usize {
        match self {
            TcpOption::Eol | TcpOption::Nop => 1,
            TcpOption::Mss(_) => 4,
            TcpOption::WindowScale(_) => 3,
            TcpOption::SackPermitted => 2,
            TcpOption::Sack(blocks) => 2 + 8 * blocks.len(),
            TcpOption::Timestamp { .. } => 10,
            TcpOption::Md5(d) => 2 + d.len(),
            TcpOption::FastOpen(c) => 2 + c.len(),
            TcpOption::FastOpenExp(c) => 4 + c.len(),
            TcpOption::Unknown { data, .. } => 2 + data.len(),
        }
    }

    fn emit(&self, out: &mut Vec<u8>) {
        let kind = self.kind();
        match self {
            TcpOption::Eol | TcpOption::Nop => out.push(kind),
            _ => {
                out.push(kind);
                out.push(self.wire_len() as u8);
            }
        }
        match self {
            TcpOption::Eol | TcpOption::Nop | TcpOption::SackPermitted => {}
            TcpOption::Mss(m) => out.extend_from_slice(&m.to_be_bytes()),
            TcpOption::WindowScale(s) => out.push(*s),
            TcpOption::Sack(blocks) => {
                for (l, r) in blocks {
                    out.extend_from_slice(&l.to_be_bytes());
                    out.extend_from_slice(&r.to_be_bytes());
                }
            }
            TcpOption::Timestamp { val, ecr } => {
                out.extend_from_slice(&val.to_be_bytes());
                out.extend_from_slice(&ecr.to_be_bytes());
            }
            TcpOption::FastOpenExp(c) => {
                out.extend_from_slice(&0xF989u16.to_be_bytes());
                out.extend_from_slice(c);
            }
            TcpOption::Md5(d) | TcpOption::FastOpen(d) | TcpOption::Unknown { data: d, .. } => {
                out.extend_from_slice(d)
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl fmt::Display for TcpOption {
    /// packetdrill's spelling: `mss 1460`, `TS val 100 ecr 0`, `sack 1:2 3:4`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TcpOption::Eol => write!(f, "eol"),
            TcpOption::Nop => write!(f, "nop"),
            TcpOption::Mss(m) => write!(f, "mss {m}"),
            TcpOption::WindowScale(s) => write!(f, "wscale {s}"),
            TcpOption::SackPermitted => write!(f, "sackOK"),
            TcpOption::Sack(blocks) => {
                write!(f, "sack")?;
                for (l, r) in blocks {
                    write!(f, " {l}:{r}")?;
                }
                Ok(())
            }
            TcpOption::Timestamp { val, ecr } => write!(f, "TS val {val} ecr {ecr}"),
            TcpOption::FastOpen(c) if c.is_empty() => write!(f, "FO"),
            TcpOption::FastOpen(c) => write!(f, "FO {}", hex(c)),
            TcpOption::FastOpenExp(c) if c.is_empty() => write!(f, "FOEXP"),
            TcpOption::FastOpenExp(c) => write!(f, "FOEXP {}", hex(c)),
            TcpOption::Md5(d) => write!(f, "md5 {}", hex(d)),
            TcpOption::Unknown { kind, data } => write!(f, "opt{kind}[{}]", hex(data)),
        }
    }
}

/// Formats an option list as a script does: `<mss 1460,nop,wscale 7>`.
pub fn options_script(opts: &[TcpOption]) -> String {
    let parts: Vec<String> = opts.iter().map(|o| o.to_string()).collect();
    format!("<{}>", parts.join(","))
}

pub fn encode_options(opts: &[TcpOption]) -> Vec<u8> {
    let mut out = Vec::new();
    for o in opts {
        o.emit(&mut out);
    }
    out
}

/// Decodes a TCP option area. Bytes after an EOL are padding and dropped.
pub fn decode_options(mut b: &[u8]) -> Result<Vec<TcpOption>, String> {
    let mut out = Vec::new();
    while let Some(&kind) = b.first() {
        match kind {
            0 => {
                out.push(TcpOption::Eol);
                break;
            }
            1 => {
                out.push(TcpOption::Nop);
                b = &b[1..];
                continue;
            }
            _ => {}
        }
        let len = *b
            .get(1)
            .ok_or_else(|| format!("option kind {kind} without a length"))? as usize;
        if len < 2 || len > b.len() {
            return Err(format!("option kind {kind} has bad length {len}"));
        }
        let data = &b[2..len];
        let bad = || format!("option kind {kind} has bad length {len}");
        let be32 = |d: &[u8]| u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
        out.push(match kind {
            2 if len == 4 => TcpOption::Mss(u16::from_be_bytes([data[0], data[1]])),
            3 if len == 3 => TcpOption::WindowScale(data[0]),
            4 if len == 2 => TcpOption::SackPermitted,
            5 => {
                if !data.len().is_multiple_of(8) {
                    return Err(bad());
                }
                TcpOption::Sack(data.chunks(8).map(|c| (be32(&c[..4]), be32(&c[4..]))).collect())
            }
            8 if len == 10 => TcpOption::Timestamp {
                val: be32(&data[..4]),
                ecr: be32(&data[4..]),
            },
            19 => TcpOption::Md5(data.to_vec()),
            34 => TcpOption::FastOpen(data.to_vec()),
            254 if data.len() >= 2 && data[..2] == [0xF9, 0x89] => TcpOption::FastOpenExp(data[2..].to_vec()),
            2 | 3 | 4 | 8 => return Err(bad()),
            _ => TcpOption::Unknown {
                kind,
                data: data.to_vec(),
            },
        });
        b = &b[len..];
    }
    Ok(out)
}

/// A TCP segment: header fields, decoded options and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSegment {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    /// The three reserved bits between data offset and AE.
    pub reserved: u8,
    pub window: u16,
    pub urgent: u16,
    pub options: Vec<TcpOption>,
    /// Length of the option area on the wire (with padding).
    pub options_len: usize,
    pub payload: Vec<u8>,
}

/// The IPv4 header fields the runner sets and checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Meta {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// The whole TOS byte (DSCP and ECN).
    pub tos: u8,
    pub ttl: u8,
    pub ident: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket {
    /// 1 request, 2 reply.
    pub op: u16,
    pub sender_mac: [u8; 6],
    pub sender_ip: Ipv4Addr,
    pub target_mac: [u8; 6],
    pub target_ip: Ipv4Addr,
}

/// What a frame from the stack turned out to be.
#[derive(Debug, Clone)]
pub enum Frame {
    Arp(ArpPacket),
    Tcp {
        ip: Ipv4Meta,
        /// IPv4 header length; 20 unless the stack sent IP options.
        ip_header_len: usize,
        ip_checksum_ok: bool,
        tcp_checksum_ok: bool,
        seg: TcpSegment,
    },
    /// IPv4 that is not TCP (ICMP, UDP), or a fragment.
    OtherIpv4 {
        src: Ipv4Addr,
        dst: Ipv4Addr,
        protocol: u8,
    },
    Other {
        ethertype: u16,
    },
    Malformed(String),
}

fn sum16(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

fn tcp_checksum_sum(src: Ipv4Addr, dst: Ipv4Addr, tcp: &[u8]) -> u16 {
    let mut acc = sum16(&src.octets(), 0);
    acc = sum16(&dst.octets(), acc);
    acc += u32::from(PROTO_TCP) + tcp.len() as u32;
    fold(sum16(tcp, acc))
}

fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload_len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(ETH_HEADER_LEN + payload_len);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// An Ethernet frame carrying `seg` in IPv4 (DF set, no IP options), with
/// correct IPv4 and TCP checksums. Options are written in the order
/// given, then zero-padded to a multiple of 4 bytes (the parser already
/// rejects script option lists that need padding, as packetdrill does).
pub fn encode_tcp_frame(dst_mac: [u8; 6], src_mac: [u8; 6], ip: &Ipv4Meta, seg: &TcpSegment) -> Vec<u8> {
    let mut opts = encode_options(&seg.options);
    while !opts.len().is_multiple_of(4) {
        opts.push(0);
    }
    let tcp_len = TCP_HEADER_LEN + opts.len() + seg.payload.len();
    let total = IPV4_HEADER_LEN + tcp_len;
    let mut f = ethernet(dst_mac, src_mac, ETHERTYPE_IPV4, total);
    let ip_start = f.len();
    f.push(0x45);
    f.push(ip.tos);
    f.extend_from_slice(&(total as u16).to_be_bytes());
    f.extend_from_slice(&ip.ident.to_be_bytes());
    f.extend_from_slice(&0x4000u16.to_be_bytes());
    f.push(ip.ttl);
    f.push(PROTO_TCP);
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&ip.src.octets());
    f.extend_from_slice(&ip.dst.octets());
    let csum = !fold(sum16(&f[ip_start..], 0));
    f[ip_start + 10..ip_start + 12].copy_from_slice(&csum.to_be_bytes());

    let tcp_start = f.len();
    f.extend_from_slice(&seg.src_port.to_be_bytes());
    f.extend_from_slice(&seg.dst_port.to_be_bytes());
    f.extend_from_slice(&seg.seq.to_be_bytes());
    f.extend_from_slice(&seg.ack.to_be_bytes());
    let doff = ((TCP_HEADER_LEN + opts.len()) / 4) as u16;
    let word = (doff << 12) | (u16::from(seg.reserved & 7) << 9) | seg.flags.bits();
    f.extend_from_slice(&word.to_be_bytes());
    f.extend_from_slice(&seg.window.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&seg.urgent.to_be_bytes());
    f.extend_from_slice(&opts);
    f.extend_from_slice(&seg.payload);
    let csum = !tcp_checksum_sum(ip.src, ip.dst, &f[tcp_start..]);
    f[tcp_start + 16..tcp_start + 18].copy_from_slice(&csum.to_be_bytes());
    f
}

pub fn encode_arp(dst_mac: [u8; 6], src_mac: [u8; 6], arp: &ArpPacket) -> Vec<u8> {
    let mut f = ethernet(dst_mac, src_mac, ETHERTYPE_ARP, 28);
    f.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4]);
    f.extend_from_slice(&arp.op.to_be_bytes());
    f.extend_from_slice(&arp.sender_mac);
    f.extend_from_slice(&arp.sender_ip.octets());
    f.extend_from_slice(&arp.target_mac);
    f.extend_from_slice(&arp.target_ip.octets());
    f
}

fn ip4(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

pub fn decode_frame(f: &[u8]) -> Frame {
    if f.len() < ETH_HEADER_LEN {
        return Frame::Malformed(format!(
            "{}-byte frame is shorter than an Ethernet header",
            f.len()
        ));
    }
    let ethertype = u16::from_be_bytes([f[12], f[13]]);
    let p = &f[ETH_HEADER_LEN..];
    match ethertype {
        ETHERTYPE_ARP => {
            if p.len() < 28 || p[..6] != [0, 1, 0x08, 0x00, 6, 4] {
                return Frame::Malformed("ARP packet is not Ethernet/IPv4 or is truncated".into());
            }
            let mac = |b: &[u8]| -> [u8; 6] { b[..6].try_into().expect("6 bytes") };
            Frame::Arp(ArpPacket {
                op: u16::from_be_bytes([p[6], p[7]]),
                sender_mac: mac(&p[8..]),
                sender_ip: ip4(&p[14..]),
                target_mac: mac(&p[18..]),
                target_ip: ip4(&p[24..]),
            })
        }
        ETHERTYPE_IPV4 => decode_ipv4(p),
        _ => Frame::Other { ethertype },
    }
}

fn decode_ipv4(p: &[u8]) -> Frame {
    if p.len() < IPV4_HEADER_LEN || p[0] >> 4 != 4 {
        return Frame::Malformed("truncated or non-version-4 IP header".into());
    }
    let ihl = usize::from(p[0] & 0xf) * 4;
    let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
    if ihl < IPV4_HEADER_LEN || total < ihl || total > p.len() {
        return Frame::Malformed(format!(
            "bad IPv4 lengths: header {ihl}, total {total}, {} bytes present",
            p.len()
        ));
    }
    let p = &p[..total];
    let ip = Ipv4Meta {
        src: ip4(&p[12..]),
        dst: ip4(&p[16..]),
        tos: p[1],
        ttl: p[8],
        ident: u16::from_be_bytes([p[4], p[5]]),
    };
    let frag = u16::from_be_bytes([p[6], p[7]]);
    let protocol = p[9];
    if protocol != PROTO_TCP || frag & 0x3fff != 0 {
        return Frame::OtherIpv4 {
            src: ip.src,
            dst: ip.dst,
            protocol,
        };
    }
    let ip_checksum_ok = fold(sum16(&p[..ihl], 0)) == 0xffff;
    let t = &p[ihl..];
    if t.len() < TCP_HEADER_LEN {
        return Frame::Malformed("truncated TCP header".into());
    }
    let doff = usize::from(t[12] >> 4) * 4;
    if doff < TCP_HEADER_LEN || doff > t.len() {
        return Frame::Malformed(format!("bad TCP data offset {doff} for {} bytes", t.len()));
    }
    let options = match decode_options(&t[TCP_HEADER_LEN..doff]) {
        Ok(o) => o,
        Err(e) => return Frame::Malformed(format!("bad TCP options: {e}")),
    };
    let word = u16::from_be_bytes([t[12], t[13]]);
    let seg = TcpSegment {
        src_port: u16::from_be_bytes([t[0], t[1]]),
        dst_port: u16::from_be_bytes([t[2], t[3]]),
        seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
        ack: u32::from_be_bytes([t[8], t[9], t[10], t[11]]),
        flags: TcpFlags::from_bits(word & 0x1ff),
        reserved: ((word >> 9) & 7) as u8,
        window: u16::from_be_bytes([t[14], t[15]]),
        urgent: u16::from_be_bytes([t[18], t[19]]),
        options,
        options_len: doff - TCP_HEADER_LEN,
        payload: t[doff..].to_vec(),
    };
    Frame::Tcp {
        ip,
        ip_header_len: ihl,
        ip_checksum_ok,
        tcp_checksum_ok: tcp_checksum_sum(ip.src, ip.dst, t) == 0xffff,
        seg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    fn sample() -> (Ipv4Meta, TcpSegment) {
        let ip = Ipv4Meta {
            src: Ipv4Addr::new(10, 77, 0, 1),
            dst: Ipv4Addr::new(10, 77, 0, 2),
            tos: 0x02,
            ttl: 64,
            ident: 7,
        };
        let seg = TcpSegment {
            src_port: 48123,
            dst_port: 8080,
            seq: 0xdead_beef,
            ack: 1,
            flags: TcpFlags {
                syn: true,
                ack: true,
                ece: true,
                ..TcpFlags::default()
            },
            reserved: 0,
            window: 65535,
            urgent: 0,
            options: vec![
                TcpOption::Mss(1460),
                TcpOption::SackPermitted,
                TcpOption::Timestamp { val: 100, ecr: 7 },
                TcpOption::Nop,
                TcpOption::WindowScale(7),
            ],
            options_len: 20,
            payload: vec![1, 2, 3],
        };
        (ip, seg)
    }

    #[test]
    fn encoding_agrees_with_etherparse() {
        let (ip, seg) = sample();
        let f = encode_tcp_frame([2, 0, 0, 0x77, 0, 2], [2, 0, 0, 0x77, 0, 1], &ip, &seg);
        let pkt = SlicedPacket::from_ethernet(&f).expect("etherparse accepts the frame");
        let Some(NetSlice::Ipv4(ipv4)) = pkt.net else {
            panic!("not IPv4")
        };
        let h = ipv4.header().to_header();
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        assert_eq!(h.source, [10, 77, 0, 1]);
        assert!(h.dont_fragment);
        let Some(TransportSlice::Tcp(tcp)) = pkt.transport else {
            panic!("not TCP")
        };
        assert_eq!(tcp.sequence_number(), 0xdead_beef);
        assert!(tcp.syn() && tcp.ack() && tcp.ece() && !tcp.cwr());
        assert_eq!(tcp.options().len(), 20);
        let th = tcp.to_header();
        assert_eq!(th.checksum, th.calc_checksum_ipv4(&h, tcp.payload()).unwrap());
        assert_eq!(tcp.payload(), &[1, 2, 3]);
    }

    #[test]
    fn round_trip() {
        let (ip, seg) = sample();
        let f = encode_tcp_frame([0; 6], [0; 6], &ip, &seg);
        let Frame::Tcp {
            ip: ip2,
            ip_checksum_ok,
            tcp_checksum_ok,
            seg: seg2,
            ..
        } = decode_frame(&f)
        else {
            panic!("not decoded as TCP")
        };
        assert!(ip_checksum_ok && tcp_checksum_ok);
        assert_eq!((ip2, seg2), (ip, seg));
        let mut bad = f.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(matches!(
            decode_frame(&bad),
            Frame::Tcp {
                tcp_checksum_ok: false,
                ..
            }
        ));
    }

    #[test]
    fn arp_round_trip() {
        let a = ArpPacket {
            op: 1,
            sender_mac: [2, 0, 0, 0x77, 0, 1],
            sender_ip: Ipv4Addr::new(10, 77, 0, 1),
            target_mac: [0; 6],
            target_ip: Ipv4Addr::new(10, 77, 0, 2),
        };
        let f = encode_arp([0xff; 6], a.sender_mac, &a);
        assert!(matches!(decode_frame(&f), Frame::Arp(b) if b == a));
    }

    #[test]
    fn flags_and_options_text() {
        let f = TcpFlags {
            fin: true,
            psh: true,
            ack: true,
            ..TcpFlags::default()
        };
        assert_eq!(f.script(), "FP.");
        assert_eq!(TcpFlags::from_bits(f.bits()), f);
        assert_eq!(TcpFlags::default().script(), "-");
        assert_eq!(
            options_script(&[TcpOption::Sack(vec![(1, 2), (3, 4)]), TcpOption::Nop]),
            "<sack 1:2 3:4,nop>"
        );
        let bytes = encode_options(&[TcpOption::FastOpenExp(vec![0xab]), TcpOption::Eol, TcpOption::Eol]);
        assert_eq!(
            decode_options(&bytes).unwrap(),
            vec![TcpOption::FastOpenExp(vec![0xab]), TcpOption::Eol]
        );
    }
}
