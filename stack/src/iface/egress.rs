//! Outgoing IPv4 datagrams: the transmit queue and fragmentation on send.
//!
//! A datagram is queued whole (transport header and data, no IP header) and
//! cut into MTU-sized fragments only as `poll_transmit` writes each frame,
//! so a 20000-byte UDP datagram costs one buffer, not fourteen.

use crate::wire::ipv4::IpTx;
use crate::wire::{ipv4, EthernetAddress, Ipv4Repr, Protocol};
use core::net::Ipv4Addr;
use std::collections::VecDeque;

/// A datagram waiting for the device.
#[derive(Debug)]
pub(crate) struct OutDatagram {
    pub dst: Ipv4Addr,
    /// Where the frame goes on the link: `dst` itself, or the gateway.
    pub next_hop: Ipv4Addr,
    pub protocol: Protocol,
    pub ident: u16,
    /// The TOS byte, and RFC 791 DF: set on TCP (RFC 1191 path MTU
    /// discovery) unless its socket says otherwise; clear on UDP and ICMP,
    /// which we fragment when they exceed the MTU.
    pub ip: IpTx,
    /// The IP payload.
    pub payload: Vec<u8>,
    /// Bytes of `payload` already sent in earlier fragments.
    pub sent: usize,
    /// Where the transport checksum is in `payload`, if it was left to
    /// the device (checksum offload): the datagram is then never
    /// fragmented.
    pub csum_offset: Option<u16>,
    /// Non-zero: a TCP super-segment the device cuts into segments of this
    /// much payload (TSO); sent whole, whatever the MTU.
    pub gso_size: u16,
    /// The TCP header's length, for a super-segment.
    pub transport_header_len: usize,
}

/// Reuses payload buffers so steady-state sending does not allocate.
pub(crate) struct BufferPool {
    free: Vec<Vec<u8>>,
    large: Vec<Vec<u8>>,
    /// Buffers handed out, for tests of what goes through the queue.
    #[cfg(test)]
    pub taken: u64,
}

/// Buffers kept for reuse; beyond this they are freed.
const POOL_LEN: usize = 64;
/// Buffers that grew beyond this (a 64 KiB datagram) are kept apart.
pub(crate) const POOL_BUF_MAX: usize = 2048;
/// Large buffers (TSO super-segments) kept for reuse: the transmit path
/// holds one super-segment at a time.
const POOL_LARGE_LEN: usize = 4;
/// Larger buffers than this are never kept.
const POOL_LARGE_MAX: usize = 65536 + 64;

impl BufferPool {
    pub fn new() -> Self {
        BufferPool {
            free: Vec::new(),
            large: Vec::new(),
            #[cfg(test)]
            taken: 0,
        }
    }

    pub fn take(&mut self) -> Vec<u8> {
        #[cfg(test)]
        {
            self.taken += 1;
        }
        self.free.pop().unwrap_or_default()
    }

    /// A buffer for a datagram of `len` bytes.
    pub fn take_for(&mut self, len: usize) -> Vec<u8> {
        if len > POOL_BUF_MAX {
            #[cfg(test)]
            {
                self.taken += 1;
            }
            self.large.pop().unwrap_or_default()
        } else {
            self.take()
        }
    }

    pub fn give(&mut self, mut buf: Vec<u8>) {
        let cap = buf.capacity();
        if cap <= POOL_BUF_MAX {
            if self.free.len() < POOL_LEN {
                buf.clear();
                self.free.push(buf);
            }
        } else if cap <= POOL_LARGE_MAX && self.large.len() < POOL_LARGE_LEN {
            buf.clear();
            self.large.push(buf);
        }
    }
}

/// Datagrams whose next hop is resolved, in sending order.
pub(crate) struct ReadyQueue {
    queue: VecDeque<(EthernetAddress, OutDatagram)>,
}

/// One frame's worth of a datagram, described for the caller to emit.
pub(crate) struct Fragment {
    pub repr: Ipv4Repr,
    pub offset: usize,
    pub len: usize,
    /// This was the datagram's last fragment (or its only frame).
    pub last: bool,
}

impl ReadyQueue {
    pub fn new() -> Self {
        ReadyQueue {
            queue: VecDeque::new(),
        }
    }

    pub fn push(&mut self, mac: EthernetAddress, d: OutDatagram) {
        self.queue.push_back((mac, d));
    }

    pub fn front(&self) -> Option<&(EthernetAddress, OutDatagram)> {
        self.queue.front()
    }

    pub fn pop(&mut self) -> Option<(EthernetAddress, OutDatagram)> {
        self.queue.pop_front()
    }

    pub fn front_mut(&mut self) -> Option<&mut (EthernetAddress, OutDatagram)> {
        self.queue.front_mut()
    }
}

/// The next frame of `d`: the whole datagram if it fits the MTU, else the
/// next fragment. RFC 791 3.2: every fragment but the last carries a
/// multiple of 8 bytes, and all carry the original's identification.
pub(crate) fn next_fragment(d: &OutDatagram, src: Ipv4Addr, ttl: u8, mtu: usize) -> Fragment {
    let room = if d.gso_size != 0 {
        d.payload.len()
    } else {
        mtu - ipv4::HEADER_LEN
    };
    let remaining = d.payload.len() - d.sent;
    let (len, more) = if d.sent == 0 && remaining <= room {
        (remaining, false)
    } else {
        let chunk = room & !7;
        if remaining <= room {
            (remaining, false)
        } else {
            (chunk, true)
        }
    };
    let fragmented = more || d.sent != 0;
    Fragment {
        repr: Ipv4Repr {
            src,
            dst: d.dst,
            protocol: d.protocol,
            ttl,
            tos: d.ip.tos,
            ident: d.ident,
            dont_fragment: d.ip.dont_fragment && !fragmented,
            more_fragments: more,
            frag_offset: d.sent,
            payload_len: len,
        },
        offset: d.sent,
        len,
        last: !more,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dgram(len: usize) -> OutDatagram {
        OutDatagram {
            dst: Ipv4Addr::new(10, 77, 0, 1),
            next_hop: Ipv4Addr::new(10, 77, 0, 1),
            protocol: Protocol::Udp,
            ident: 7,
            ip: IpTx::DATAGRAM,
            payload: vec![0; len],
            sent: 0,
            csum_offset: None,
            gso_size: 0,
            transport_header_len: 0,
        }
    }

    #[test]
    fn fits_in_one_frame() {
        let f = next_fragment(&dgram(1480), Ipv4Addr::new(10, 77, 0, 2), 64, 1500);
        assert!(f.last);
        assert!(!f.repr.more_fragments);
        assert_eq!(f.len, 1480);
    }

    #[test]
    fn fragments_are_multiples_of_eight_and_cover_the_datagram() {
        let mut d = dgram(3008);
        let mut pieces = Vec::new();
        loop {
            let f = next_fragment(&d, Ipv4Addr::new(10, 77, 0, 2), 64, 1500);
            assert_eq!(f.offset, d.sent);
            assert!(f.len + ipv4::HEADER_LEN <= 1500);
            if !f.last {
                assert_eq!(f.len % 8, 0);
                assert!(f.repr.more_fragments);
            }
            pieces.push((f.offset, f.len));
            d.sent += f.len;
            if f.last {
                break;
            }
        }
        assert_eq!(pieces, vec![(0, 1480), (1480, 1480), (2960, 48)]);
    }

    #[test]
    fn odd_mtu_rounds_down() {
        let d = dgram(2000);
        let f = next_fragment(&d, Ipv4Addr::new(10, 77, 0, 2), 64, 1006);
        assert_eq!(f.len, 984);
    }
}
