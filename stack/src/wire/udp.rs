//! UDP (RFC 768).

use core::net::Ipv4Addr;

pub const HEADER_LEN: usize = 8;
const PROTOCOL: u8 = 17;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRepr {
    pub src_port: u16,
    pub dst_port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpError {
    /// Fewer than 8 bytes.
    Truncated,
    /// The length field is below 8 or beyond the IP payload.
    BadLength,
    BadChecksum,
}

impl UdpRepr {
    /// Parse and verify a datagram carried from `src` to `dst`. Returns the
    /// payload as the UDP length field delimits it.
    pub fn parse(data: &[u8], src: Ipv4Addr, dst: Ipv4Addr) -> Result<(UdpRepr, &[u8]), UdpError> {
        Self::parse_with(data, src, dst, true)
    }

    /// As [`Self::parse`], verifying the checksum only if `verify_checksum`
    /// (a device that vouched for it, or left it for us to trust: checksum
    /// offload).
    pub fn parse_with(
        data: &[u8],
        src: Ipv4Addr,
        dst: Ipv4Addr,
        verify_checksum: bool,
    ) -> Result<(UdpRepr, &[u8]), UdpError> {
        let header = etherparse::UdpHeaderSlice::from_slice(data).map_err(|_| UdpError::Truncated)?;
        let len = usize::from(header.length());
        if len < HEADER_LEN || len > data.len() {
            return Err(UdpError::BadLength);
        }
        // RFC 768: an all-zero checksum means the sender computed none.
        if verify_checksum && header.checksum() != 0 {
            let sum = super::sum16(super::pseudo_header_sum(src, dst, PROTOCOL, len), &data[..len]);
            if super::finish16(sum) != 0 {
                return Err(UdpError::BadChecksum);
            }
        }
        let repr = UdpRepr {
            src_port: header.source_port(),
            dst_port: header.destination_port(),
        };
        Ok((repr, &data[HEADER_LEN..len]))
    }

    /// Write the header for a payload already in `buf[8..8 + payload_len]`,
    /// with the checksum, which we always compute.
    pub fn emit_in_place(&self, buf: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr, payload_len: usize) -> usize {
        self.emit_with(buf, src, dst, payload_len, true)
    }

    /// As [`Self::emit_in_place`], with only the pseudo-header sum in the
    /// checksum field, for a device that completes it (checksum offload).
    pub fn emit_partial(&self, buf: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr, payload_len: usize) -> usize {
        self.emit_with(buf, src, dst, payload_len, false)
    }

    fn emit_with(
        &self,
        buf: &mut [u8],
        src: Ipv4Addr,
        dst: Ipv4Addr,
        payload_len: usize,
        full: bool,
    ) -> usize {
        let len = HEADER_LEN + payload_len;
        let dgram = &mut buf[..len];
        dgram[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        dgram[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        dgram[4..6].copy_from_slice(&(len as u16).to_be_bytes());
        dgram[6..8].copy_from_slice(&[0, 0]);
        let pseudo = super::pseudo_header_sum(src, dst, PROTOCOL, len);
        if !full {
            // The folded, uncomplemented pseudo-header sum the device adds
            // the rest to (Linux udp4_hwcsum).
            dgram[6..8].copy_from_slice(&(!super::finish16(pseudo)).to_be_bytes());
            return len;
        }
        let mut checksum = super::finish16(super::sum16(pseudo, dgram));
        // RFC 768: a computed zero is sent as all ones.
        if checksum == 0 {
            checksum = 0xffff;
        }
        dgram[6..8].copy_from_slice(&checksum.to_be_bytes());
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

    // Captured from the kernel: 10.77.0.1:40000 -> 10.77.0.2:7, payload "hi\n".
    fn datagram() -> [u8; 11] {
        let mut d = [0x9c, 0x40, 0x00, 0x07, 0x00, 0x0b, 0x00, 0x00, b'h', b'i', b'\n'];
        UdpRepr {
            src_port: 40000,
            dst_port: 7,
        }
        .emit_in_place(&mut d, SRC, DST, 3);
        d
    }

    #[test]
    fn parse_checks_checksum() {
        let d = datagram();
        let (repr, payload) = UdpRepr::parse(&d, SRC, DST).unwrap();
        assert_eq!(
            repr,
            UdpRepr {
                src_port: 40000,
                dst_port: 7
            }
        );
        assert_eq!(payload, b"hi\n");
        // The same bytes claimed from another source fail the pseudo-header.
        assert_eq!(
            UdpRepr::parse(&d, Ipv4Addr::new(10, 77, 0, 3), DST),
            Err(UdpError::BadChecksum)
        );
    }

    #[test]
    fn zero_checksum_is_accepted() {
        let mut d = datagram();
        d[6] = 0;
        d[7] = 0;
        assert!(UdpRepr::parse(&d, SRC, DST).is_ok());
    }

    #[test]
    fn length_field_is_checked() {
        let d = datagram();
        assert_eq!(UdpRepr::parse(&d[..7], SRC, DST), Err(UdpError::Truncated));
        let mut long = d;
        long[5] = 12;
        assert_eq!(UdpRepr::parse(&long, SRC, DST), Err(UdpError::BadLength));
        let mut short = d;
        short[5] = 7;
        assert_eq!(UdpRepr::parse(&short, SRC, DST), Err(UdpError::BadLength));
    }

    #[test]
    fn trailing_bytes_past_udp_length_are_ignored() {
        let mut v = datagram().to_vec();
        v.extend_from_slice(&[0, 0, 0]);
        assert_eq!(UdpRepr::parse(&v, SRC, DST).unwrap().1, b"hi\n");
    }

    proptest! {
        #[test]
        fn round_trip(sp: u16, dp: u16, src: u32, dst: u32, payload in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut buf = vec![0u8; 8 + payload.len()];
            buf[8..].copy_from_slice(&payload);
            let repr = UdpRepr { src_port: sp, dst_port: dp };
            repr.emit_in_place(&mut buf, src.into(), dst.into(), payload.len());
            let (r, p) = UdpRepr::parse(&buf, src.into(), dst.into()).unwrap();
            prop_assert_eq!(r, repr);
            prop_assert_eq!(p, &payload[..]);
        }
    }
}
