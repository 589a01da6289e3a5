//! IPv4 input (validation, reassembly, delivery to the transport) and
//! output (routing and the transmit queue).

use super::egress::OutDatagram;
use super::neighbor::Resolution;
use super::reassembly::{FragDrop, FragKey};
use super::{Interface, EV_WRITABLE};
use crate::time::Instant;
use crate::wire::ipv4::IpTx;
use crate::wire::{icmpv4, ipv4, EthernetAddress, Ipv4Packet, Ipv4Repr, Protocol, UnreachableCode};
use core::net::Ipv4Addr;

impl Interface {
    pub(super) fn is_broadcast(&self, ip: Ipv4Addr) -> bool {
        ip.is_broadcast() || Some(ip) == self.config.ipv4.broadcast()
    }

    pub(super) fn ipv4_input(&mut self, now: Instant, data: &[u8]) {
        let packet = match Ipv4Packet::parse(data) {
            Ok(p) => p,
            Err(e) => {
                use ipv4::Ipv4Error::*;
                let counter = match e {
                    Truncated => &mut self.stats.ipv4_truncated,
                    BadVersion => &mut self.stats.ipv4_bad_version,
                    BadHeaderLen => &mut self.stats.ipv4_bad_header_len,
                    BadTotalLen => &mut self.stats.ipv4_bad_total_len,
                    BadChecksum => &mut self.stats.ipv4_bad_checksum,
                };
                *counter += 1;
                return;
            }
        };
        let repr = packet.repr;
        let broadcast = self.is_broadcast(repr.dst);
        // We are a host, not a router (RFC 1122 3.3.4.2: a host silently
        // discards datagrams not addressed to it). Multicast is not joined.
        if repr.dst != self.config.ipv4.addr && !broadcast {
            self.stats.ipv4_not_for_us += 1;
            return;
        }
        // RFC 1122 3.2.1.3: a source that is not a unique host address is
        // bogus. Our own address arriving from the wire is a loop or a spoof.
        let src = repr.src;
        if src.is_broadcast()
            || src.is_multicast()
            || src.is_unspecified()
            || src.is_loopback()
            || self.is_broadcast(src)
            || src == self.config.ipv4.addr
        {
            self.stats.ipv4_bad_source += 1;
            return;
        }
        self.stats.ipv4_rx += 1;
        if !repr.is_fragment() {
            self.deliver(now, &repr, packet.header, packet.payload, broadcast);
            return;
        }
        self.stats.frag_rx += 1;
        let key = FragKey {
            src,
            dst: repr.dst,
            protocol: repr.protocol.into(),
            ident: repr.ident,
        };
        match self.reassembler.insert(
            now,
            key,
            repr.frag_offset,
            repr.more_fragments,
            packet.header,
            packet.payload,
        ) {
            Ok(None) => {}
            Ok(Some(whole)) => {
                self.stats.frag_reassembled += 1;
                // What the device said was of the last fragment only.
                self.rx_csum_trusted = false;
                let full = Ipv4Repr {
                    more_fragments: false,
                    frag_offset: 0,
                    payload_len: whole.len(),
                    ..repr
                };
                // Quote a header describing the reassembled datagram.
                let mut header = [0u8; ipv4::HEADER_LEN];
                full.emit(&mut header);
                self.deliver(now, &full, &header, &whole, broadcast);
                self.pool.give(whole);
            }
            Err(reason) => {
                let counter = match reason {
                    FragDrop::Duplicate => &mut self.stats.frag_duplicate,
                    FragDrop::OverlapConflict => &mut self.stats.frag_overlap_conflict,
                    FragDrop::BudgetExceeded => &mut self.stats.frag_budget_exceeded,
                    FragDrop::BadLength => &mut self.stats.frag_bad_length,
                    FragDrop::TooMany => &mut self.stats.frag_too_many,
                };
                *counter += 1;
            }
        }
    }

    /// Hand a whole datagram to its transport protocol.
    pub(super) fn deliver(
        &mut self,
        now: Instant,
        ip: &Ipv4Repr,
        header: &[u8],
        payload: &[u8],
        broadcast: bool,
    ) {
        match ip.protocol {
            Protocol::Icmp => self.icmp_input(ip, payload, broadcast),
            Protocol::Udp => self.udp_input(now, ip, header, payload, broadcast),
            // TCP arrives with the TCP engine; until then it is counted.
            Protocol::Tcp => self.tcp_input(now, ip, payload, broadcast),
            Protocol::Other(_) => {
                self.stats.ipv4_unknown_protocol += 1;
                if !broadcast {
                    let code = UnreachableCode::Protocol.into();
                    self.send_icmp_error(
                        now,
                        icmpv4::TYPE_DEST_UNREACHABLE,
                        code,
                        [0; 4],
                        ip,
                        header,
                        payload,
                    );
                }
            }
        }
    }

    /// Give up on reassemblies that took too long.
    pub(super) fn reassembly_handle_timeout(&mut self, now: Instant) {
        let mut expired = Vec::new();
        self.reassembler.handle_timeout(now, |e| expired.push(e));
        for e in expired {
            self.stats.frag_timeout += 1;
            tracing::debug!(src = %e.key.src, ident = e.key.ident, "reassembly timed out");
            // RFC 792 / RFC 1122 3.3.2: if fragment zero arrived, tell the
            // sender with Time Exceeded, code 1 (fragment reassembly).
            if let Some(first) = e.first_fragment {
                let repr = Ipv4Repr {
                    src: e.key.src,
                    dst: e.key.dst,
                    protocol: Protocol::from(e.key.protocol),
                    ttl: 0,
                    tos: 0,
                    ident: e.key.ident,
                    dont_fragment: false,
                    more_fragments: true,
                    frag_offset: 0,
                    payload_len: 0,
                };
                let broadcast = self.is_broadcast(e.key.dst);
                if !broadcast {
                    self.send_icmp_error(
                        now,
                        icmpv4::TYPE_TIME_EXCEEDED,
                        1,
                        [0; 4],
                        &repr,
                        &first.header[..],
                        &first.data[..],
                    );
                }
            }
        }
    }

    // ----- egress -----

    /// The next hop for `dst`, or `None` if there is no route.
    pub(super) fn route(&self, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        if self.config.ipv4.contains(dst) || dst.is_broadcast() {
            Some(dst)
        } else {
            self.config.gateway
        }
    }

    pub(super) fn tx_has_room(&self, len: usize) -> bool {
        self.tx_packets < self.config.tx_queue_packets && self.tx_bytes + len <= self.config.tx_queue_bytes
    }

    pub(super) fn enqueue(
        &mut self,
        dst: Ipv4Addr,
        next_hop: Ipv4Addr,
        protocol: Protocol,
        payload: Vec<u8>,
    ) {
        self.enqueue_offloaded(dst, next_hop, protocol, payload, None, 0, 0, IpTx::DATAGRAM);
    }

    /// Queue a datagram whose transport checksum at `csum_offset` is left
    /// to the device, or a TCP super-segment for it to cut into segments of
    /// `gso_size` payload behind a `transport_header_len` header. The
    /// caller makes sure such a datagram needs no fragmenting: a partial
    /// checksum cannot be completed across fragments.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn enqueue_offloaded(
        &mut self,
        dst: Ipv4Addr,
        next_hop: Ipv4Addr,
        protocol: Protocol,
        payload: Vec<u8>,
        csum_offset: Option<u16>,
        gso_size: u16,
        transport_header_len: usize,
        ip: IpTx,
    ) {
        let ident = self.take_ident();
        self.tx_packets += 1;
        self.tx_bytes += payload.len();
        self.outgoing.push_back(OutDatagram {
            dst,
            next_hop,
            protocol,
            ident,
            ip,
            payload,
            sent: 0,
            csum_offset,
            gso_size,
            transport_header_len,
        });
    }

    /// The identification of the next datagram sent (RFC 791 3.2; RFC
    /// 6864 4.1 lets an atomic datagram carry any value, and we use the
    /// one counter for all).
    pub(super) fn take_ident(&mut self) -> u16 {
        let ident = self.next_ident;
        self.next_ident = self.next_ident.wrapping_add(1);
        ident
    }

    /// Give queued datagrams to the neighbor cache, which says whether the
    /// next hop is known.
    pub(super) fn route_outgoing(&mut self, now: Instant) {
        while let Some(d) = self.outgoing.pop_front() {
            if self.is_broadcast(d.next_hop) {
                self.ready.push(EthernetAddress::BROADCAST, d);
                continue;
            }
            match self
                .neighbors
                .resolve(now, d.next_hop, d, &mut self.arp_out, &mut self.stats)
            {
                Resolution::Ready(mac, d) => self.ready.push(mac, d),
                Resolution::Queued => {}
                Resolution::Dropped(d) => self.release(d),
            }
        }
    }

    /// A datagram left the transmit queue (sent or dropped): return its
    /// space and tell blocked senders.
    pub(super) fn release(&mut self, d: OutDatagram) {
        self.tx_packets -= 1;
        self.tx_bytes -= d.payload.len();
        self.pool.give(d.payload);
        for handle in core::mem::take(&mut self.blocked) {
            if let Some(s) = self.udp_socket(handle) {
                s.blocked = false;
                self.push_event(handle, EV_WRITABLE);
            }
        }
    }
}
