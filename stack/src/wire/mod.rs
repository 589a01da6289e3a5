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
pub mod tcp;
pub mod udp;

pub use arp::{ArpOperation, ArpRepr};
pub use ethernet::{EtherType, EthernetAddress, EthernetFrame};
pub use icmpv4::{Icmpv4Message, UnreachableCode};
pub use ipv4::{Ipv4Cidr, Ipv4Packet, Ipv4Repr, Protocol};
pub use tcp::{SackBlocks, TcpFlags, TcpOptions, TcpRepr};
pub use udp::UdpRepr;

use core::net::Ipv4Addr;

/// The 16-bit one's-complement sum of RFC 1071, folded to 32 bits but not
/// inverted, over native-endian words (RFC 1071 2(B): byte order only
/// matters at the end, see [`finish16`]).
///
/// RFC 1071 2(C) "parallel summation": one's-complement addition is the
/// same on any word size as long as the carries are folded back in, so we
/// add 32-bit words into a 64-bit accumulator, which cannot overflow for any
/// datagram, and fold once at the end. It is the checksum, not the parsing,
/// that dominates the per-byte cost of a receive path.
pub(crate) fn sum16(initial: u32, data: &[u8]) -> u32 {
    // The same loop compiled for AVX2 sums four words per instruction, not
    // two (SSE2 is all the x86-64 baseline promises): about 2.5x faster on
    // a full-sized segment, where the checksum was a fifth of a bulk
    // transfer's time. Short data is not worth the detection.
    #[cfg(all(target_arch = "x86_64", not(target_feature = "avx2")))]
    if data.len() >= 128 && std::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor has AVX2, as just checked.
        return unsafe { sum16_avx2(initial, data) };
    }
    sum16_words(initial, data)
}

#[cfg(all(target_arch = "x86_64", not(target_feature = "avx2")))]
#[target_feature(enable = "avx2")]
fn sum16_avx2(initial: u32, data: &[u8]) -> u32 {
    sum16_words(initial, data)
}

#[inline(always)]
fn sum16_words(initial: u32, data: &[u8]) -> u32 {
    let mut acc = u64::from(initial);
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    // An odd final byte is padded with zero on the right (RFC 1071 4.1).
    acc += u64::from(u32::from_ne_bytes(tail));
    // Fold 64 -> 32 bits with end-around carry.
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc as u32
}

/// The sum of big-endian 16-bit header fields, given as numbers, in
/// [`sum16`]'s native-endian domain (RFC 1071 2(B): the folded sum only
/// swaps with the byte order). For a header just written: summing it from
/// the values avoids reading back what narrower stores wrote, which the
/// processor cannot forward and stalls on (it showed in perf).
pub(crate) fn sum_be_words(words: &[u16]) -> u32 {
    words
        .iter()
        .map(|&w| u32::from(u16::from_ne_bytes(w.to_be_bytes())))
        .sum()
}

/// Add two [`sum16`] partial sums (end-around carry).
pub(crate) fn add_sums(a: u32, b: u32) -> u32 {
    let (s, carry) = a.overflowing_add(b);
    s + u32::from(carry)
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

    proptest::proptest! {
        #[test]
        fn sum_matches_reference(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000), init: u16) {
            let ours = finish16(sum16(u32::from(init), &data));
            let reference = etherparse::checksum::u32_16bit_word::add_slice(u32::from(init), &data);
            let reference = u16::from_be_bytes(etherparse::checksum::u32_16bit_word::ones_complement(reference).to_ne_bytes());
            proptest::prop_assert_eq!(ours, reference);
        }
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the sum of 0001 f203 f4f5 f6f7 is ddf2 (folded).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(finish16(sum16(0, &data)), !0xddf2);
    }
}
