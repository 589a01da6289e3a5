//! IPv4 (RFC 791), validated as RFC 1122 3.2.1 asks of a host.

use core::fmt;
use core::net::Ipv4Addr;
use core::str::FromStr;

/// Length of the header we emit (we send no IP options).
pub const HEADER_LEN: usize = 20;
/// The largest datagram the 16-bit total length can describe.
pub const MAX_DATAGRAM_LEN: usize = 65535;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Icmp,
    Tcp,
    Udp,
    Other(u8),
}

impl From<u8> for Protocol {
    fn from(v: u8) -> Self {
        match v {
            1 => Protocol::Icmp,
            6 => Protocol::Tcp,
            17 => Protocol::Udp,
            other => Protocol::Other(other),
        }
    }
}

impl From<Protocol> for u8 {
    fn from(p: Protocol) -> u8 {
        match p {
            Protocol::Icmp => 1,
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Other(v) => v,
        }
    }
}

/// The fields of an IPv4 header that the stack acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: Protocol,
    pub ttl: u8,
    /// The second header byte: RFC 2474's DSCP in the upper six bits,
    /// RFC 3168's ECN field in the lower two.
    pub tos: u8,
    pub ident: u16,
    pub dont_fragment: bool,
    pub more_fragments: bool,
    /// Fragment offset in bytes (the header field times 8).
    pub frag_offset: usize,
    /// Length of the payload this header carries (total length minus header).
    pub payload_len: usize,
}

impl Ipv4Repr {
    pub fn is_fragment(&self) -> bool {
        self.more_fragments || self.frag_offset != 0
    }

    /// Write a 20-byte header (no options) with its checksum into
    /// `buf[..HEADER_LEN]`. `payload_len` must leave the total within 65535.
    pub fn emit(&self, buf: &mut [u8]) {
        let buf = &mut buf[..HEADER_LEN];
        let total = (HEADER_LEN + self.payload_len) as u16;
        let mut flags_frag = (self.frag_offset / 8) as u16 & 0x1fff;
        if self.dont_fragment {
            flags_frag |= 0x4000;
        }
        if self.more_fragments {
            flags_frag |= 0x2000;
        }
        buf[0] = 0x45;
        buf[1] = self.tos;
        buf[2..4].copy_from_slice(&total.to_be_bytes());
        buf[4..6].copy_from_slice(&self.ident.to_be_bytes());
        buf[6..8].copy_from_slice(&flags_frag.to_be_bytes());
        buf[8] = self.ttl;
        buf[9] = self.protocol.into();
        buf[10..12].copy_from_slice(&[0, 0]);
        buf[12..16].copy_from_slice(&self.src.octets());
        buf[16..20].copy_from_slice(&self.dst.octets());
        let (src, dst) = (u32::from(self.src), u32::from(self.dst));
        let checksum = super::finish16(super::sum_be_words(&[
            0x4500 | u16::from(self.tos),
            total,
            self.ident,
            flags_frag,
            u16::from_be_bytes([self.ttl, self.protocol.into()]),
            (src >> 16) as u16,
            src as u16,
            (dst >> 16) as u16,
            dst as u16,
        ]));
        buf[10..12].copy_from_slice(&checksum.to_be_bytes());
    }
}

/// What a socket chooses of the IPv4 header its datagrams go out with:
/// the TOS byte (IP_TOS) and DF (IP_MTU_DISCOVER).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IpTx {
    pub tos: u8,
    pub dont_fragment: bool,
}

impl IpTx {
    /// TCP's default: DF set, as RFC 1191 path MTU discovery needs.
    pub const TCP: IpTx = IpTx {
        tos: 0,
        dont_fragment: true,
    };
    /// UDP and ICMP: fragmented when they exceed the MTU.
    pub const DATAGRAM: IpTx = IpTx {
        tos: 0,
        dont_fragment: false,
    };
}

/// Why an IPv4 packet was rejected, in the order the checks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv4Error {
    /// Fewer bytes than a minimal header, or than the header's IHL says.
    Truncated,
    /// Version field is not 4.
    BadVersion,
    /// IHL below 5 words.
    BadHeaderLen,
    /// Total length smaller than the header, or larger than the frame.
    BadTotalLen,
    /// The header checksum does not verify (RFC 1122 3.2.1.2: silently discard).
    BadChecksum,
}

impl fmt::Display for Ipv4Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ipv4Error::Truncated => "truncated IPv4 header",
            Ipv4Error::BadVersion => "IP version is not 4",
            Ipv4Error::BadHeaderLen => "IPv4 header length below 20 bytes",
            Ipv4Error::BadTotalLen => "IPv4 total length inconsistent with header or frame",
            Ipv4Error::BadChecksum => "bad IPv4 header checksum",
        })
    }
}

/// A validated IPv4 packet borrowing its header and payload.
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Packet<'a> {
    pub repr: Ipv4Repr,
    /// The whole header, options included (ICMP errors quote it).
    pub header: &'a [u8],
    /// The payload, trimmed to the total length (Ethernet padding removed).
    pub payload: &'a [u8],
}

impl<'a> Ipv4Packet<'a> {
    pub fn parse(data: &'a [u8]) -> Result<Self, Ipv4Error> {
        use etherparse::err::ipv4::{HeaderError, HeaderSliceError};
        let header = etherparse::Ipv4HeaderSlice::from_slice(data).map_err(|e| match e {
            HeaderSliceError::Len(_) => Ipv4Error::Truncated,
            HeaderSliceError::Content(HeaderError::UnexpectedVersion { .. }) => Ipv4Error::BadVersion,
            HeaderSliceError::Content(HeaderError::HeaderLengthSmallerThanHeader { .. }) => {
                Ipv4Error::BadHeaderLen
            }
        })?;
        let header_len = header.slice().len();
        let total_len = usize::from(header.total_len());
        if total_len < header_len || total_len > data.len() {
            return Err(Ipv4Error::BadTotalLen);
        }
        if super::finish16(super::sum16(0, header.slice())) != 0 {
            return Err(Ipv4Error::BadChecksum);
        }
        Ok(Ipv4Packet {
            repr: Ipv4Repr {
                src: header.source_addr(),
                dst: header.destination_addr(),
                protocol: Protocol::from(header.protocol().0),
                ttl: header.ttl(),
                tos: header.slice()[1],
                ident: header.identification(),
                dont_fragment: header.dont_fragment(),
                more_fragments: header.more_fragments(),
                frag_offset: usize::from(header.fragments_offset().value()) * 8,
                payload_len: total_len - header_len,
            },
            header: header.slice(),
            payload: &data[header_len..total_len],
        })
    }
}

/// An interface address with its on-link prefix, e.g. `10.77.0.2/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
}

impl Ipv4Cidr {
    /// `None` if the prefix is longer than 32 bits.
    pub fn new(addr: Ipv4Addr, prefix_len: u8) -> Option<Self> {
        (prefix_len <= 32).then_some(Ipv4Cidr { addr, prefix_len })
    }

    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask())
    }

    fn mask(&self) -> u32 {
        u32::MAX.checked_shl(32 - u32::from(self.prefix_len)).unwrap_or(0)
    }

    /// Is `ip` on this link?
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (u32::from(ip) & self.mask()) == (u32::from(self.addr) & self.mask())
    }

    /// The subnet-directed broadcast address, if the prefix has one
    /// (RFC 3021: /31 and /32 have none).
    pub fn broadcast(&self) -> Option<Ipv4Addr> {
        (self.prefix_len <= 30).then(|| Ipv4Addr::from(u32::from(self.addr) | !self.mask()))
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// Error parsing `A.B.C.D/N`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseCidrError;

impl fmt::Display for ParseCidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("expected an IPv4 address with prefix length, like 10.77.0.2/24")
    }
}

impl std::error::Error for ParseCidrError {}

impl FromStr for Ipv4Cidr {
    type Err = ParseCidrError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = s.split_once('/').ok_or(ParseCidrError)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| ParseCidrError)?;
        let len: u8 = len.parse().map_err(|_| ParseCidrError)?;
        Ipv4Cidr::new(addr, len).ok_or(ParseCidrError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // An ICMP echo request header from 10.77.0.1 to 10.77.0.2, 84 bytes total,
    // DF set, as `ping` sends it (checksum computed by hand-checked emit).
    fn sample_repr() -> Ipv4Repr {
        Ipv4Repr {
            src: Ipv4Addr::new(10, 77, 0, 1),
            dst: Ipv4Addr::new(10, 77, 0, 2),
            protocol: Protocol::Icmp,
            ttl: 64,
            tos: 0,
            ident: 0x1c46,
            dont_fragment: true,
            more_fragments: false,
            frag_offset: 0,
            payload_len: 64,
        }
    }

    const SAMPLE_HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x54, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x01, 0x00, 0x00, 10, 77, 0, 1, 10, 77, 0, 2,
    ];

    fn with_checksum(mut h: [u8; 20]) -> [u8; 20] {
        h[10] = 0;
        h[11] = 0;
        let c = crate::wire::finish16(crate::wire::sum16(0, &h));
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h
    }

    fn packet(header: [u8; 20], payload_len: usize) -> Vec<u8> {
        let mut v = header.to_vec();
        v.resize(20 + payload_len, 0xab);
        v
    }

    #[test]
    fn emit_then_parse() {
        let mut buf = [0u8; 20];
        sample_repr().emit(&mut buf);
        assert_eq!(buf, with_checksum(SAMPLE_HEADER));
        let data = packet(buf, 64);
        let p = Ipv4Packet::parse(&data).unwrap();
        assert_eq!(p.repr, sample_repr());
        assert_eq!(p.payload.len(), 64);
    }

    #[test]
    fn ethernet_padding_is_trimmed() {
        let mut data = packet(with_checksum(SAMPLE_HEADER), 64);
        data.extend_from_slice(&[0; 10]);
        assert_eq!(Ipv4Packet::parse(&data).unwrap().payload.len(), 64);
    }

    #[test]
    fn each_check_has_its_error() {
        let good = packet(with_checksum(SAMPLE_HEADER), 64);
        assert_eq!(Ipv4Packet::parse(&good[..19]).unwrap_err(), Ipv4Error::Truncated);

        let mut h = SAMPLE_HEADER;
        h[0] = 0x65;
        assert_eq!(
            Ipv4Packet::parse(&packet(with_checksum(h), 64)).unwrap_err(),
            Ipv4Error::BadVersion
        );

        let mut h = SAMPLE_HEADER;
        h[0] = 0x44;
        assert_eq!(
            Ipv4Packet::parse(&packet(with_checksum(h), 64)).unwrap_err(),
            Ipv4Error::BadHeaderLen
        );

        let mut h = SAMPLE_HEADER;
        h[0] = 0x4f; // 60-byte header in a 30-byte packet
        assert_eq!(
            Ipv4Packet::parse(&packet(with_checksum(h), 10)).unwrap_err(),
            Ipv4Error::Truncated
        );

        let mut h = SAMPLE_HEADER;
        h[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(
            Ipv4Packet::parse(&packet(with_checksum(h), 64)).unwrap_err(),
            Ipv4Error::BadTotalLen
        );

        // Total length claims more than the frame holds.
        assert_eq!(
            Ipv4Packet::parse(&good[..80]).unwrap_err(),
            Ipv4Error::BadTotalLen
        );

        let mut bad = good.clone();
        bad[8] = 63; // TTL changed, checksum not updated
        assert_eq!(Ipv4Packet::parse(&bad).unwrap_err(), Ipv4Error::BadChecksum);
    }

    #[test]
    fn options_are_skipped() {
        let mut h = vec![0x46u8];
        h.extend_from_slice(&SAMPLE_HEADER[1..]);
        h.extend_from_slice(&[1, 1, 1, 0]); // NOP NOP NOP EOL
        h[2..4].copy_from_slice(&(24u16 + 8).to_be_bytes());
        h.extend_from_slice(&[7; 8]);
        let c = crate::wire::finish16(crate::wire::sum16(0, &h[..24]));
        h[10..12].copy_from_slice(&c.to_be_bytes());
        let p = Ipv4Packet::parse(&h).unwrap();
        assert_eq!(p.header.len(), 24);
        assert_eq!(p.payload, &[7; 8]);
    }

    #[test]
    fn cidr() {
        let c: Ipv4Cidr = "10.77.0.2/24".parse().unwrap();
        assert!(c.contains(Ipv4Addr::new(10, 77, 0, 200)));
        assert!(!c.contains(Ipv4Addr::new(10, 77, 1, 1)));
        assert_eq!(c.broadcast(), Some(Ipv4Addr::new(10, 77, 0, 255)));
        assert_eq!(c.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        let z: Ipv4Cidr = "10.0.0.1/0".parse().unwrap();
        assert!(z.contains(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!("10.0.0.1/31".parse::<Ipv4Cidr>().unwrap().broadcast(), None);
        assert!("10.0.0.1/33".parse::<Ipv4Cidr>().is_err());
        assert!("10.0.0.1".parse::<Ipv4Cidr>().is_err());
    }

    proptest! {
        #[test]
        fn repr_round_trips(src: u32, dst: u32, proto: u8, ttl: u8, tos: u8, ident: u16, df: bool, mf: bool,
                            off in 0usize..8192, len in 0usize..1480) {
            let repr = Ipv4Repr {
                src: src.into(), dst: dst.into(), protocol: Protocol::from(proto), ttl, tos, ident,
                dont_fragment: df, more_fragments: mf, frag_offset: off * 8, payload_len: len,
            };
            let mut buf = vec![0u8; 20 + len];
            repr.emit(&mut buf);
            let p = Ipv4Packet::parse(&buf).unwrap();
            prop_assert_eq!(p.repr, repr);
        }

        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = Ipv4Packet::parse(&data);
        }
    }
}
