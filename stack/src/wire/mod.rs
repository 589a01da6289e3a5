//! Wire formats: parsing untrusted bytes and emitting our own.
//!
//! # The contract
//!
//! Every parser here takes `&[u8]` straight from the device and returns either
//! a view whose accessors cannot panic, or a typed error saying which check
//! failed. Nothing in this module indexes a slice before its length has been
//! checked, and no parser trusts a length field it has not compared with the
//! bytes actually present. The caller turns each error into one named drop
//! counter (see [`crate::stats`]).
//!
//! Emitters write into a caller-supplied buffer whose size the caller has
//! already checked against the `*_LEN` constants and the payload length; they
//! never allocate.
//!
//! Header layouts and field access come from `etherparse`; this module adds
//! what it does not do for us: the validation order a host needs (RFC 1122),
//! checksum verification on receive, and emitting into borrowed buffers.

pub mod arp;
pub mod ethernet;
pub mod icmpv4;
pub mod ipv4;
pub mod udp;

pub use arp::{ArpOperation, ArpRepr};
pub use ethernet::{EtherType, EthernetAddress, EthernetFrame};
pub use icmpv4::{Icmpv4Message, UnreachableCode};
pub use ipv4::{Ipv4Cidr, Ipv4Packet, Ipv4Repr, Protocol};
pub use udp::UdpRepr;

use core::net::Ipv4Addr;

/// The 16-bit one's-complement sum of RFC 1071, folded but not inverted.
pub(crate) fn sum16(initial: u32, data: &[u8]) -> u32 {
    etherparse::checksum::u32_16bit_word::add_slice(initial, data)
}

/// Finish an RFC 1071 sum: fold and invert. The sum is accumulated over
/// native-endian words (RFC 1071 2(B): byte order does not matter until the
/// end), so the result is converted back to the numeric value of the
/// big-endian field.
pub(crate) fn finish16(sum: u32) -> u16 {
    u16::from_be_bytes(etherparse::checksum::u32_16bit_word::ones_complement(sum).to_ne_bytes())
}

/// The RFC 768 / RFC 9293 pseudo-header sum for IPv4.
pub(crate) fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: usize) -> u32 {
    let mut sum = 0u32;
    sum = etherparse::checksum::u32_16bit_word::add_4bytes(sum, src.octets());
    sum = etherparse::checksum::u32_16bit_word::add_4bytes(sum, dst.octets());
    sum = etherparse::checksum::u32_16bit_word::add_2bytes(sum, [0, protocol]);
    // The length field of a UDP/TCP segment never exceeds 16 bits on IPv4.
    sum = etherparse::checksum::u32_16bit_word::add_2bytes(sum, (len as u16).to_be_bytes());
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the sum of 0001 f203 f4f5 f6f7 is ddf2 (folded).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(finish16(sum16(0, &data)), !0xddf2);
    }
}
