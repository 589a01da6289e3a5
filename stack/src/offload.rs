//! What a device that offloads work tells the stack, and what the stack
//! tells it: the fields of Linux's virtio-net header (`struct
//! virtio_net_hdr`, include/uapi/linux/virtio_net.h) that matter to us,
//! without its layout, which is the device's business.
//!
//! Receiving, a device may vouch for a frame's transport checksum
//! ([`RxChecksum::Verified`], virtio's `DATA_VALID`), or hand over a frame
//! whose checksum was never computed ([`RxChecksum::Partial`],
//! `NEEDS_CSUM`: the field holds the pseudo-header sum only), and may
//! hand over a GSO super-segment: one TCP segment carrying many MSS worth
//! of data, which the stack takes whole ([`RxMeta::gso`]).
//!
//! Sending, the stack may leave the checksum to the device
//! ([`TxChecksum::Partial`]) and emit one TCP segment of several MSS that
//! the device cuts into `gso_size` pieces ([`Transmit::gso_size`]).

use crate::wire::{self, ethernet};

/// How the device vouches for a received frame's TCP or UDP checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RxChecksum {
    /// Nothing known: the stack verifies it.
    #[default]
    None,
    /// The device (or the kernel behind it) verified it.
    Verified,
    /// Never computed (a frame from a local sender that offloads its
    /// checksum): the field holds the pseudo-header sum; the sum over the
    /// frame from `start` belongs at `start + offset`. Offsets count from
    /// the start of the Ethernet frame.
    Partial { start: u16, offset: u16 },
}

/// The kind of a GSO super-segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GsoType {
    #[default]
    None,
    /// IPv4 TCP (TSO): one IPv4 header whose total length covers the
    /// whole super-segment, one TCP header.
    TcpV4,
    /// Anything else (TCPv6, UDP fragmentation or segmentation offload):
    /// the stack does not take these.
    Other(u8),
}

/// What the device knows about a frame it hands the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RxMeta {
    pub checksum: RxChecksum,
    /// The super-segment's kind; `None` for an ordinary frame.
    pub gso: GsoType,
    /// The size of the segments it was made of (informative).
    pub gso_size: u16,
}

/// Who computes a transmitted frame's transport checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TxChecksum {
    /// Every checksum in the frame is complete.
    #[default]
    Full,
    /// The device must sum the frame from `start` (counted from the start
    /// of the Ethernet frame) and store the result at `start + offset`;
    /// the field holds the pseudo-header sum.
    Partial { start: u16, offset: u16 },
}

/// A frame [`Interface::poll_transmit_meta`](crate::Interface::poll_transmit_meta)
/// wrote, and what the device must do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Transmit {
    /// The frame's length in the caller's buffer.
    pub len: usize,
    /// Non-zero: a TCP/IPv4 super-segment to cut into segments carrying
    /// `gso_size` bytes of payload each (each with the same headers,
    /// sequence numbers, lengths and checksums fixed by the device).
    pub gso_size: u16,
    /// Ethernet, IP and TCP headers of a super-segment (virtio's
    /// `hdr_len`); zero otherwise.
    pub header_len: u16,
    pub checksum: TxChecksum,
}

/// What the device can do for the stack (see
/// [`Interface::set_offload`](crate::Interface::set_offload)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Offload {
    /// The largest TCP super-segment, as an IP datagram (headers
    /// included), the device segments for us; 0: none (TSO off). At most
    /// 65535.
    pub tso_max: usize,
    /// The device completes partial TCP and UDP checksums.
    pub tx_checksum: bool,
}

/// Complete a partial checksum in software, for a device that cannot: sum
/// `frame[start..]` (the field holds the pseudo-header sum) and store the
/// result at `start + offset`. Returns false, leaving the frame alone,
/// when the offsets do not fit the frame.
pub fn complete_checksum(frame: &mut [u8], start: usize, offset: usize) -> bool {
    let at = start.saturating_add(offset);
    if start > frame.len() || at.saturating_add(2) > frame.len() {
        return false;
    }
    let mut sum = wire::finish16(wire::sum16(0, &frame[start..]));
    // RFC 768: a UDP checksum that computes to zero is sent as all ones;
    // for TCP the two are the same one's-complement value.
    if sum == 0 {
        sum = 0xffff;
    }
    frame[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    true
}

/// Where the transport checksum of an IPv4 datagram with a header of
/// `ip_header_len` sits, for [`TxChecksum::Partial`].
pub(crate) fn partial_at(ip_header_len: usize, checksum_offset: u16) -> TxChecksum {
    TxChecksum::Partial {
        start: (ethernet::HEADER_LEN + ip_header_len) as u16,
        offset: checksum_offset,
    }
}
