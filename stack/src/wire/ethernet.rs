//! Ethernet II framing (IEEE 802.3 with a type field, RFC 894).

use core::fmt;
use core::str::FromStr;

/// A 48-bit IEEE MAC address.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    pub const BROADCAST: EthernetAddress = EthernetAddress([0xff; 6]);
    pub const ZERO: EthernetAddress = EthernetAddress([0; 6]);

    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Group bit set: broadcast or multicast.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// A unicast address a host may use as its own.
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast() && *self != Self::ZERO
    }

    /// A locally administered unicast address derived from `seed`, so a stack
    /// without a configured MAC still gets a stable one.
    pub fn local_from_seed(seed: u64) -> Self {
        let b = seed.to_be_bytes();
        EthernetAddress([0x02, b[3], b[4], b[5], b[6], b[7]])
    }
}

impl fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Error parsing a MAC address from text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseMacError;

impl fmt::Display for ParseMacError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("expected a MAC address like 02:00:00:00:00:01")
    }
}

impl std::error::Error for ParseMacError {}

impl FromStr for EthernetAddress {
    type Err = ParseMacError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in out.iter_mut() {
            let part = parts.next().ok_or(ParseMacError)?;
            if part.is_empty() || part.len() > 2 {
                return Err(ParseMacError);
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| ParseMacError)?;
        }
        if parts.next().is_some() {
            return Err(ParseMacError);
        }
        Ok(EthernetAddress(out))
    }
}

/// The EtherType values we act on; anything else is counted and dropped.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum EtherType {
    Ipv4,
    Arp,
    Ipv6,
    Other(u16),
}

impl From<u16> for EtherType {
    fn from(v: u16) -> Self {
        match v {
            0x0800 => EtherType::Ipv4,
            0x0806 => EtherType::Arp,
            0x86dd => EtherType::Ipv6,
            other => EtherType::Other(other),
        }
    }
}

impl From<EtherType> for u16 {
    fn from(t: EtherType) -> u16 {
        match t {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Ipv6 => 0x86dd,
            EtherType::Other(v) => v,
        }
    }
}

/// A parsed Ethernet II frame borrowing its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetFrame<'a> {
    pub dst: EthernetAddress,
    pub src: EthernetAddress,
    pub ethertype: EtherType,
    /// Everything after the header, including any padding to the 60-byte
    /// minimum: the network layer trims by its own length field.
    pub payload: &'a [u8],
}

/// The frame was shorter than an Ethernet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncated;

pub const HEADER_LEN: usize = 14;

impl<'a> EthernetFrame<'a> {
    pub fn parse(frame: &'a [u8]) -> Result<Self, Truncated> {
        let header = etherparse::Ethernet2HeaderSlice::from_slice(frame).map_err(|_| Truncated)?;
        Ok(EthernetFrame {
            dst: EthernetAddress(header.destination()),
            src: EthernetAddress(header.source()),
            ethertype: EtherType::from(header.ether_type().0),
            payload: &frame[HEADER_LEN..],
        })
    }
}

/// Write an Ethernet II header into `buf[..14]`. The caller checked the length.
pub fn emit_header(buf: &mut [u8], dst: EthernetAddress, src: EthernetAddress, ethertype: EtherType) {
    let header = etherparse::Ethernet2Header {
        destination: dst.0,
        source: src.0,
        ether_type: etherparse::EtherType(ethertype.into()),
    };
    buf[..HEADER_LEN].copy_from_slice(&header.to_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut buf = vec![0u8; HEADER_LEN + payload.len()];
            emit_header(&mut buf, EthernetAddress(dst), EthernetAddress(src), EtherType::from(ethertype));
            buf[HEADER_LEN..].copy_from_slice(&payload);
            let f = EthernetFrame::parse(&buf).unwrap();
            prop_assert_eq!((f.dst.0, f.src.0, u16::from(f.ethertype), f.payload), (dst, src, ethertype, &payload[..]));
        }

        #[test]
        fn mac_text_round_trip(mac: [u8; 6]) {
            let m = EthernetAddress(mac);
            prop_assert_eq!(m.to_string().parse::<EthernetAddress>(), Ok(m));
        }
    }

    const FRAME: [u8; 18] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // src
        0x08, 0x06, // ARP
        0xde, 0xad, 0xbe, 0xef,
    ];

    #[test]
    fn parse_frame() {
        let f = EthernetFrame::parse(&FRAME).unwrap();
        assert!(f.dst.is_broadcast());
        assert_eq!(f.src, EthernetAddress([2, 0, 0, 0, 0, 1]));
        assert_eq!(f.ethertype, EtherType::Arp);
        assert_eq!(f.payload, &[0xde, 0xad, 0xbe, 0xef]);
    }

    #[test]
    fn truncated_frames_are_errors() {
        for len in 0..HEADER_LEN {
            assert_eq!(EthernetFrame::parse(&FRAME[..len]), Err(Truncated));
        }
    }

    #[test]
    fn emit_matches_parse() {
        let mut buf = [0u8; 14];
        emit_header(
            &mut buf,
            EthernetAddress::BROADCAST,
            EthernetAddress([2, 0, 0, 0, 0, 1]),
            EtherType::Arp,
        );
        assert_eq!(buf, FRAME[..14]);
    }

    #[test]
    fn mac_text() {
        let m: EthernetAddress = "02:aB:00:00:00:01".parse().unwrap();
        assert_eq!(m.to_string(), "02:ab:00:00:00:01");
        assert!("02:ab:00:00:00".parse::<EthernetAddress>().is_err());
        assert!("02:ab:00:00:00:01:03".parse::<EthernetAddress>().is_err());
        assert!("02:ab:00:00:00:zz".parse::<EthernetAddress>().is_err());
        assert!(m.is_unicast());
        assert!(EthernetAddress::BROADCAST.is_multicast());
    }
}
