//! ARP for IPv4 over Ethernet (RFC 826).

use super::EthernetAddress;
use core::net::Ipv4Addr;

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpOperation {
    Request,
    Reply,
}

/// An Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    pub operation: ArpOperation,
    pub sender_mac: EthernetAddress,
    pub sender_ip: Ipv4Addr,
    pub target_mac: EthernetAddress,
    pub target_ip: Ipv4Addr,
}

/// Why an ARP packet was not acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpError {
    /// Shorter than its own address-length fields require.
    Truncated,
    /// Not Ethernet hardware with IPv4 protocol addresses, or an
    /// operation other than request/reply (RFC 826 "?Do I have the hardware
    /// type in ar$hrd?" ... ).
    Unsupported,
}

impl ArpRepr {
    pub fn parse(data: &[u8]) -> Result<Self, ArpError> {
        let pkt = etherparse::ArpPacketSlice::from_slice(data).map_err(|_| ArpError::Truncated)?;
        if pkt.hw_addr_type() != etherparse::ArpHardwareId::ETHERNET
            || pkt.proto_addr_type() != etherparse::EtherType::IPV4
            || pkt.hw_addr_size() != 6
            || pkt.proto_addr_size() != 4
        {
            return Err(ArpError::Unsupported);
        }
        let operation = match pkt.operation() {
            etherparse::ArpOperation::REQUEST => ArpOperation::Request,
            etherparse::ArpOperation::REPLY => ArpOperation::Reply,
            _ => return Err(ArpError::Unsupported),
        };
        // The sizes were checked above, so these conversions cannot fail.
        let mac = |s: &[u8]| EthernetAddress(s.try_into().unwrap_or([0; 6]));
        let ip = |s: &[u8]| Ipv4Addr::from(<[u8; 4]>::try_from(s).unwrap_or([0; 4]));
        Ok(ArpRepr {
            operation,
            sender_mac: mac(pkt.sender_hw_addr()),
            sender_ip: ip(pkt.sender_protocol_addr()),
            target_mac: mac(pkt.target_hw_addr()),
            target_ip: ip(pkt.target_protocol_addr()),
        })
    }

    /// Write the packet into `buf[..PACKET_LEN]`.
    pub fn emit(&self, buf: &mut [u8]) {
        let op: u16 = match self.operation {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
        };
        let buf = &mut buf[..PACKET_LEN];
        buf[0..2].copy_from_slice(&1u16.to_be_bytes()); // Ethernet
        buf[2..4].copy_from_slice(&0x0800u16.to_be_bytes()); // IPv4
        buf[4] = 6;
        buf[5] = 4;
        buf[6..8].copy_from_slice(&op.to_be_bytes());
        buf[8..14].copy_from_slice(&self.sender_mac.0);
        buf[14..18].copy_from_slice(&self.sender_ip.octets());
        buf[18..24].copy_from_slice(&self.target_mac.0);
        buf[24..28].copy_from_slice(&self.target_ip.octets());
    }

    /// A gratuitous ARP announces the sender's own binding (RFC 5227 3).
    pub fn is_gratuitous(&self) -> bool {
        self.sender_ip == self.target_ip
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(request: bool, smac: [u8; 6], sip: u32, tmac: [u8; 6], tip: u32) {
            let repr = ArpRepr {
                operation: if request { ArpOperation::Request } else { ArpOperation::Reply },
                sender_mac: EthernetAddress(smac),
                sender_ip: sip.into(),
                target_mac: EthernetAddress(tmac),
                target_ip: tip.into(),
            };
            let mut buf = [0u8; PACKET_LEN];
            repr.emit(&mut buf);
            prop_assert_eq!(ArpRepr::parse(&buf), Ok(repr));
        }

        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = ArpRepr::parse(&data);
        }
    }

    // A request "who has 10.77.0.2? tell 10.77.0.1" as Linux sends it.
    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, //
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 10, 77, 0, 1, //
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 10, 77, 0, 2,
    ];

    fn request() -> ArpRepr {
        ArpRepr {
            operation: ArpOperation::Request,
            sender_mac: EthernetAddress([2, 0, 0, 0, 0, 1]),
            sender_ip: Ipv4Addr::new(10, 77, 0, 1),
            target_mac: EthernetAddress::ZERO,
            target_ip: Ipv4Addr::new(10, 77, 0, 2),
        }
    }

    #[test]
    fn parse_request() {
        assert_eq!(ArpRepr::parse(&REQUEST), Ok(request()));
        assert!(!request().is_gratuitous());
    }

    #[test]
    fn emit_request() {
        let mut buf = [0u8; 28];
        request().emit(&mut buf);
        assert_eq!(buf, REQUEST);
    }

    #[test]
    fn truncated_and_unsupported() {
        for len in 0..PACKET_LEN {
            assert_eq!(
                ArpRepr::parse(&REQUEST[..len]),
                Err(ArpError::Truncated),
                "len {len}"
            );
        }
        let mut bad = REQUEST;
        bad[1] = 6; // IEEE 802 hardware
        assert_eq!(ArpRepr::parse(&bad), Err(ArpError::Unsupported));
        let mut bad = REQUEST;
        bad[7] = 3; // RARP request
        assert_eq!(ArpRepr::parse(&bad), Err(ArpError::Unsupported));
        let mut bad = REQUEST;
        bad[5] = 16; // IPv6-sized protocol addresses: length grows, then it is short
        assert_eq!(ArpRepr::parse(&bad), Err(ArpError::Truncated));
    }
}
