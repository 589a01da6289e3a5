//! The interface: one Ethernet link, one IPv4 address, and its sockets.

mod egress;
mod neighbor;
pub(crate) mod reassembly;
pub(crate) mod tcp;
#[cfg(test)]
mod tcp_tests;
#[cfg(test)]
mod tests;

use crate::config::Config;
use crate::socket::udp::{UdpBindError, UdpRecvError, UdpSendError, UdpSocket};
use crate::socket::{
    Socket, SocketError, SocketHandle, SocketSet, EV_CLOSED, EV_CONNECTED, EV_ERROR, EV_READABLE, EV_WRITABLE,
};
use crate::stats::Stats;
use crate::time::Instant;
use crate::wire::{
    arp, ethernet, icmpv4, ipv4, udp, ArpOperation, ArpRepr, EtherType, EthernetAddress, EthernetFrame,
    Icmpv4Message, Ipv4Packet, Ipv4Repr, Protocol, UdpRepr, UnreachableCode,
};
use core::net::{Ipv4Addr, SocketAddrV4};
use egress::{BufferPool, OutDatagram, ReadyQueue};
use neighbor::{ArpOut, NeighborCache, Resolution};
use reassembly::{FragDrop, FragKey, Reassembler};
use std::collections::{HashMap, VecDeque};

pub use neighbor::NeighborInfo;

/// Something the application may want to act on.
///
/// Events are edge-triggered hints and never pile up: each socket has at
/// most one of each kind queued, so the queue is bounded by three times the
/// number of sockets. Acting on one is always optional; the socket calls
/// report the truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Data arrived on a socket whose queue was empty.
    Readable(SocketHandle),
    /// A send that was refused with `WouldBlock` can be retried.
    Writable(SocketHandle),
    /// The network reported an error for the socket (also kept for
    /// `udp_take_error` / `tcp_take_error`).
    Error(SocketHandle, SocketError),
    /// A TCP connect completed.
    Connected(SocketHandle),
    /// A TCP connection is closed (reset, timed out, or finished); the
    /// handle stays valid until `tcp_close`.
    Closed(SocketHandle),
}

/// A userspace IPv4 host on one Ethernet link.
///
/// `Interface` owns the link state (neighbor cache, fragment reassembly,
/// transmit queue) and every socket. It does no I/O and reads no clock:
///
/// - **Inputs**: [`handle_frame`](Self::handle_frame) for every frame the
///   device delivers, and [`handle_timeout`](Self::handle_timeout) when the
///   deadline from [`poll_timeout`](Self::poll_timeout) has passed.
/// - **Outputs**: [`poll_transmit`](Self::poll_transmit) writes the next
///   frame to send into a caller buffer; [`poll_event`](Self::poll_event)
///   yields socket events; [`poll_timeout`](Self::poll_timeout) says when to
///   call `handle_timeout` next.
/// - **Mutators**: `udp_bind`, `udp_send_to`, `udp_recv_from`, `udp_close`
///   and friends.
/// - **Getters**: [`stats`](Self::stats), [`config`](Self::config),
///   [`neighbors`](Self::neighbors).
///
/// # Call order
///
/// A driver loops:
///
/// 1. Read every frame the device has and pass each to `handle_frame`.
/// 2. Call `handle_timeout(now)` (harmless if nothing is due).
/// 3. Call `poll_transmit` until it returns `None`, sending each frame.
/// 4. Drain `poll_event` and wake the applications concerned.
/// 5. Sleep until the device is readable, an application acts, or
///    `poll_timeout()` arrives.
///
/// After any mutator, run step 3 again: sends are queued, not written.
/// `now` must never go backwards between calls.
pub struct Interface {
    config: Config,
    stats: Stats,
    neighbors: NeighborCache,
    reassembler: Reassembler,
    sockets: SocketSet,
    udp_ports: HashMap<u16, SocketHandle>,
    /// Datagrams queued by the application, not yet given to the neighbor
    /// cache (that needs `now`, which only the poll and handle calls carry).
    outgoing: VecDeque<OutDatagram>,
    arp_out: VecDeque<ArpOut>,
    ready: ReadyQueue,
    pool: BufferPool,
    /// Datagrams and bytes in `outgoing`, `ready` and the neighbor pending queues.
    tx_packets: usize,
    tx_bytes: usize,
    /// Sockets refused with WouldBlock, to be told when space frees.
    blocked: Vec<SocketHandle>,
    icmp_limiter: TokenBucket,
    tcp: crate::socket::tcp::table::TcpTable,
    next_ident: u16,
    rng: SplitMix64,
    /// The latest time seen, for reports only.
    last_now: Instant,
}

impl Interface {
    pub fn new(config: Config) -> Result<Interface, crate::ConfigError> {
        config.validate()?;
        let mut rng = SplitMix64(config.seed);
        let next_ident = rng.next() as u16;
        let secret = match config.tcp.isn_secret {
            0 => rng.next(),
            s => s,
        };
        Ok(Interface {
            stats: Stats::default(),
            neighbors: NeighborCache::new(config.arp.clone(), config.mac, config.ipv4.addr),
            reassembler: Reassembler::new(&config.reassembly),
            sockets: SocketSet::new(config.max_sockets),
            udp_ports: HashMap::new(),
            outgoing: VecDeque::new(),
            arp_out: VecDeque::new(),
            ready: ReadyQueue::new(),
            pool: BufferPool::new(),
            tx_packets: 0,
            tx_bytes: 0,
            blocked: Vec::new(),
            icmp_limiter: TokenBucket::new(config.icmp.errors_per_sec, config.icmp.errors_burst),
            tcp: crate::socket::tcp::table::TcpTable::new(secret),
            next_ident,
            rng,
            last_now: Instant::ZERO,
            config,
        })
    }

    // ----- getters -----

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn mac(&self) -> EthernetAddress {
        self.config.mac
    }

    pub fn ipv4_addr(&self) -> Ipv4Addr {
        self.config.ipv4.addr
    }

    /// The largest frame `poll_transmit` writes: the MTU plus the Ethernet header.
    pub fn max_frame_len(&self) -> usize {
        self.config.mtu + ethernet::HEADER_LEN
    }

    /// The link address we have for `ip`, if resolved.
    pub fn neighbor(&self, ip: Ipv4Addr) -> Option<EthernetAddress> {
        self.neighbors.lookup(ip)
    }

    /// The neighbor cache, as of the latest time the interface saw.
    pub fn neighbors(&self) -> impl Iterator<Item = NeighborInfo> + '_ {
        self.neighbors.iter(self.last_now)
    }

    /// Fragmented datagrams being reassembled.
    pub fn reassemblies_in_progress(&self) -> usize {
        self.reassembler.len()
    }

    /// Bytes held by fragment reassembly (bounded by the reassembly budget).
    pub fn reassembly_bytes(&self) -> usize {
        self.reassembler.bytes_held()
    }

    /// Open sockets.
    pub fn socket_count(&self) -> usize {
        self.sockets.len()
    }

    /// Datagrams waiting to be sent (including those waiting for ARP).
    pub fn tx_queue_len(&self) -> usize {
        self.tx_packets
    }

    // ----- inputs -----

    /// Process one Ethernet frame from the device. Never panics: a frame we
    /// cannot use increments one drop counter in [`Stats`].
    pub fn handle_frame(&mut self, now: Instant, frame: &[u8]) {
        self.last_now = now;
        self.stats.rx_frames += 1;
        self.stats.rx_bytes += frame.len() as u64;
        let _span = tracing::trace_span!("rx", len = frame.len()).entered();
        let Ok(eth) = EthernetFrame::parse(frame) else {
            self.stats.eth_truncated += 1;
            return;
        };
        if eth.dst != self.config.mac && !eth.dst.is_broadcast() {
            self.stats.eth_not_for_us += 1;
            return;
        }
        if eth.src == self.config.mac {
            self.stats.eth_own_source += 1;
            return;
        }
        match eth.ethertype {
            EtherType::Arp => self.arp_input(now, eth.payload),
            EtherType::Ipv4 => self.ipv4_input(now, eth.payload),
            EtherType::Ipv6 | EtherType::Other(_) => self.stats.eth_unknown_type += 1,
        }
    }

    /// Run the timers that are due: ARP retries and give-ups, reassembly timeouts.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = now;
        self.tcp_handle_timeout(now);
        let mut failed = Vec::new();
        self.neighbors
            .handle_timeout(now, &mut self.arp_out, &mut self.stats, |d| failed.push(d));
        for d in failed {
            // Linux turns a failed neighbour resolution into a local ICMP
            // host unreachable, which ends a connect in progress with
            // EHOSTUNREACH (tcp_v4_err); established connections treat it
            // as soft and keep retransmitting.
            if d.protocol == Protocol::Tcp && d.payload.len() >= 4 {
                let local_port = u16::from_be_bytes([d.payload[0], d.payload[1]]);
                let remote = SocketAddrV4::new(d.dst, u16::from_be_bytes([d.payload[2], d.payload[3]]));
                let err = SocketError::Unreachable {
                    reporter: self.config.ipv4.addr,
                    dst: remote,
                    code: UnreachableCode::Host,
                    next_hop_mtu: None,
                };
                self.tcp_icmp_error(local_port, remote, err);
            }
            self.release(d);
        }
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

    // ----- outputs -----

    /// When `handle_timeout` should next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.neighbors.poll_timeout(),
            self.reassembler.poll_timeout(),
            self.tcp.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next socket event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        while let Some((handle, kind)) = self.sockets.pop_event() {
            let Some(socket) = self.sockets.get(handle) else {
                continue;
            };
            let event = match (kind, socket) {
                (EV_READABLE, Socket::Udp(s)) => (!s.rx.is_empty()).then_some(Event::Readable(handle)),
                (EV_READABLE, Socket::Tcp(_)) => Some(Event::Readable(handle)),
                (EV_WRITABLE, _) => Some(Event::Writable(handle)),
                (EV_ERROR, Socket::Udp(s)) => s.error.map(|e| Event::Error(handle, e)),
                (EV_ERROR, Socket::Tcp(_)) => self.tcp_error_of(handle).map(|e| Event::Error(handle, e)),
                (EV_CONNECTED, _) => Some(Event::Connected(handle)),
                (EV_CLOSED, _) => Some(Event::Closed(handle)),
                _ => None,
            };
            if event.is_some() {
                return event;
            }
        }
        None
    }

    /// Write the next frame to send into `buf` and return its length, or
    /// `None` when there is nothing to send. `buf` must hold
    /// [`max_frame_len`](Self::max_frame_len) bytes; a shorter buffer gets
    /// `None` (counted in `tx_buf_too_small`) and the frame stays queued.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        self.last_now = now;
        self.route_outgoing(now);
        // TCP produces segments on demand, one at a time, while the
        // transmit queue has nothing ready and room to spare.
        while self.arp_out.is_empty()
            && self.ready.front().is_none()
            && self.tx_has_room(self.config.mtu)
            && self.tcp_produce(now)
        {
            self.route_outgoing(now);
        }
        if let Some(out) = self.arp_out.front() {
            let len = ethernet::HEADER_LEN + arp::PACKET_LEN;
            if buf.len() < len {
                self.stats.tx_buf_too_small += 1;
                return None;
            }
            ethernet::emit_header(buf, out.dst_mac, self.config.mac, EtherType::Arp);
            out.repr.emit(&mut buf[ethernet::HEADER_LEN..]);
            self.arp_out.pop_front();
            return Some(self.count_tx(len));
        }
        let (mac, d) = self.ready.front()?;
        let mac = *mac;
        let frag = egress::next_fragment(d, self.config.ipv4.addr, self.config.ttl, self.config.mtu);
        let len = ethernet::HEADER_LEN + ipv4::HEADER_LEN + frag.len;
        if buf.len() < len {
            self.stats.tx_buf_too_small += 1;
            return None;
        }
        ethernet::emit_header(buf, mac, self.config.mac, EtherType::Ipv4);
        frag.repr.emit(&mut buf[ethernet::HEADER_LEN..]);
        let at = ethernet::HEADER_LEN + ipv4::HEADER_LEN;
        buf[at..len].copy_from_slice(&d.payload[frag.offset..frag.offset + frag.len]);
        if frag.repr.is_fragment() {
            self.stats.ipv4_frags_tx += 1;
        }
        if frag.last {
            let (_, d) = self.ready.pop().expect("front exists");
            self.stats.ipv4_tx += 1;
            self.release(d);
        } else if let Some((_, d)) = self.ready.front_mut() {
            d.sent += frag.len;
        }
        Some(self.count_tx(len))
    }

    fn count_tx(&mut self, len: usize) -> usize {
        self.stats.tx_frames += 1;
        self.stats.tx_bytes += len as u64;
        len
    }

    // ----- UDP sockets -----

    /// Bind a UDP socket. Port 0 picks a free ephemeral port; the address
    /// must be ours or unspecified.
    pub fn udp_bind(&mut self, local: SocketAddrV4) -> Result<SocketHandle, UdpBindError> {
        if !local.ip().is_unspecified() && *local.ip() != self.config.ipv4.addr {
            return Err(UdpBindError::AddrNotAvailable);
        }
        let port = match local.port() {
            0 => self.ephemeral_port().ok_or(UdpBindError::NoFreePort)?,
            p if self.udp_ports.contains_key(&p) => return Err(UdpBindError::AddrInUse),
            p => p,
        };
        let addr = SocketAddrV4::new(*local.ip(), port);
        let socket = UdpSocket::new(
            addr,
            self.config.udp.rx_queue_datagrams,
            self.config.udp.rx_queue_bytes,
        );
        let handle = self
            .sockets
            .insert(Socket::Udp(socket))
            .ok_or(UdpBindError::TooManySockets)?;
        self.udp_ports.insert(port, handle);
        tracing::debug!(%handle, %addr, "udp bound");
        Ok(handle)
    }

    /// RFC 6056 algorithm 1 (simple random port): start at a seeded random
    /// point of the range and take the first free port.
    fn ephemeral_port(&mut self) -> Option<u16> {
        let (lo, hi) = self.config.udp.ephemeral_ports;
        let span = u32::from(hi - lo) + 1;
        let start = (self.rng.next() % u64::from(span)) as u32;
        (0..span)
            .map(|i| lo + ((start + i) % span) as u16)
            .find(|p| !self.udp_ports.contains_key(p))
    }

    fn udp_socket(&mut self, handle: SocketHandle) -> Option<&mut UdpSocket> {
        self.sockets.get_mut(handle).and_then(Socket::as_udp_mut)
    }

    pub fn udp_local_addr(&self, handle: SocketHandle) -> Option<SocketAddrV4> {
        self.sockets.get(handle).and_then(Socket::as_udp).map(|s| s.local)
    }

    /// Queue one datagram. Larger than the MTU is fine: it is fragmented.
    pub fn udp_send_to(
        &mut self,
        handle: SocketHandle,
        data: &[u8],
        to: SocketAddrV4,
    ) -> Result<(), UdpSendError> {
        let local_port = self
            .udp_socket(handle)
            .ok_or(UdpSendError::BadHandle)?
            .local
            .port();
        if data.len() > ipv4::MAX_DATAGRAM_LEN - ipv4::HEADER_LEN - udp::HEADER_LEN {
            return Err(UdpSendError::TooLarge);
        }
        if to.ip().is_unspecified() || to.port() == 0 {
            return Err(UdpSendError::InvalidDestination);
        }
        let next_hop = self.route(*to.ip()).ok_or_else(|| {
            self.stats.ipv4_no_route += 1;
            UdpSendError::NoRoute
        })?;
        let len = udp::HEADER_LEN + data.len();
        if !self.tx_has_room(len) {
            self.stats.tx_queue_full += 1;
            if let Some(s) = self.udp_socket(handle) {
                if !s.blocked {
                    s.blocked = true;
                    self.blocked.push(handle);
                }
            }
            return Err(UdpSendError::WouldBlock);
        }
        let mut payload = self.pool.take();
        payload.resize(len, 0);
        payload[udp::HEADER_LEN..].copy_from_slice(data);
        let repr = UdpRepr {
            src_port: local_port,
            dst_port: to.port(),
        };
        repr.emit_in_place(&mut payload, self.config.ipv4.addr, *to.ip(), data.len());
        self.enqueue(*to.ip(), next_hop, Protocol::Udp, payload);
        self.stats.udp_tx += 1;
        Ok(())
    }

    /// Take the oldest datagram: copies up to `buf.len()` bytes (the rest of
    /// a longer datagram is discarded, as with `recv_from(2)`) and returns
    /// the datagram's full length and sender.
    pub fn udp_recv_from(
        &mut self,
        handle: SocketHandle,
        buf: &mut [u8],
    ) -> Result<(usize, SocketAddrV4), UdpRecvError> {
        let socket = self.udp_socket(handle).ok_or(UdpRecvError::BadHandle)?;
        let (from, data) = socket.rx.dequeue().ok_or(UdpRecvError::WouldBlock)?;
        let n = data.len().min(buf.len());
        buf[..n].copy_from_slice(&data[..n]);
        Ok((data.len(), from))
    }

    /// Length of the next datagram, without taking it.
    pub fn udp_peek_len(&mut self, handle: SocketHandle) -> Option<usize> {
        self.udp_socket(handle)?.rx.peek().map(|(_, d)| d.len())
    }

    /// Take the last network error reported for this socket (like SO_ERROR).
    pub fn udp_take_error(&mut self, handle: SocketHandle) -> Option<SocketError> {
        self.udp_socket(handle)?.error.take()
    }

    /// Close the socket. Datagrams it already queued are still sent.
    pub fn udp_close(&mut self, handle: SocketHandle) {
        if let Some(s) = self.sockets.remove(handle).as_ref().and_then(Socket::as_udp) {
            self.udp_ports.remove(&s.local.port());
            self.blocked.retain(|h| *h != handle);
            tracing::debug!(%handle, "udp closed");
        }
    }

    // ----- ingress -----

    fn arp_input(&mut self, now: Instant, payload: &[u8]) {
        let repr = match ArpRepr::parse(payload) {
            Ok(r) => r,
            Err(arp::ArpError::Truncated) => {
                self.stats.arp_truncated += 1;
                return;
            }
            Err(arp::ArpError::Unsupported) => {
                self.stats.arp_unsupported += 1;
                return;
            }
        };
        let our_ip = self.config.ipv4.addr;
        let sip = repr.sender_ip;
        if !repr.sender_mac.is_unicast()
            || sip.is_broadcast()
            || sip.is_multicast()
            || Some(sip) == self.config.ipv4.broadcast()
        {
            self.stats.arp_bad_sender += 1;
            return;
        }
        if sip == our_ip {
            // Someone else uses our address (RFC 5227 2.4). We keep ours and
            // learn nothing from them.
            self.stats.arp_conflict += 1;
            tracing::debug!(mac = %repr.sender_mac, "ARP conflict for our address");
            return;
        }
        let for_us = repr.target_ip == our_ip;
        if sip.is_unspecified() {
            // RFC 5227 probe: answer it if it asks for our address, so the
            // prober knows the address is taken; learn nothing.
            if for_us && repr.operation == ArpOperation::Request {
                self.stats.arp_requests_rx += 1;
                self.queue_arp_reply(&repr);
            } else {
                self.stats.arp_ignored += 1;
            }
            return;
        }
        // RFC 826: update an existing entry for the sender whatever the
        // packet is; create one only when the packet is a request for us.
        let had_entry = self.neighbors.contains(sip);
        let create = for_us && repr.operation == ArpOperation::Request;
        let ready = self
            .neighbors
            .learn(now, sip, repr.sender_mac, create, &mut self.stats);
        for d in ready {
            self.ready.push(repr.sender_mac, d);
        }
        match repr.operation {
            ArpOperation::Request if for_us => {
                self.stats.arp_requests_rx += 1;
                self.queue_arp_reply(&repr);
            }
            _ if repr.is_gratuitous() => self.stats.arp_gratuitous_rx += 1,
            ArpOperation::Reply if had_entry => self.stats.arp_replies_rx += 1,
            _ => self.stats.arp_ignored += 1,
        }
    }

    fn queue_arp_reply(&mut self, request: &ArpRepr) {
        if self.arp_out.len() >= neighbor::ARP_QUEUE_LEN {
            self.stats.tx_queue_full += 1;
            return;
        }
        self.arp_out.push_back(ArpOut {
            dst_mac: request.sender_mac,
            repr: ArpRepr {
                operation: ArpOperation::Reply,
                sender_mac: self.config.mac,
                sender_ip: self.config.ipv4.addr,
                target_mac: request.sender_mac,
                target_ip: request.sender_ip,
            },
        });
        self.stats.arp_replies_tx += 1;
    }

    fn is_broadcast(&self, ip: Ipv4Addr) -> bool {
        ip.is_broadcast() || Some(ip) == self.config.ipv4.broadcast()
    }

    fn ipv4_input(&mut self, now: Instant, data: &[u8]) {
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
    fn deliver(&mut self, now: Instant, ip: &Ipv4Repr, header: &[u8], payload: &[u8], broadcast: bool) {
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

    fn icmp_input(&mut self, ip: &Ipv4Repr, payload: &[u8], broadcast: bool) {
        self.stats.icmp_rx += 1;
        let msg = match Icmpv4Message::parse(payload) {
            Ok(m) => m,
            Err(icmpv4::Icmpv4Error::Truncated) => {
                self.stats.icmp_truncated += 1;
                return;
            }
            Err(icmpv4::Icmpv4Error::BadChecksum) => {
                self.stats.icmp_bad_checksum += 1;
                return;
            }
        };
        match msg {
            Icmpv4Message::EchoRequest { ident, seq, data } => {
                self.stats.icmp_echo_requests_rx += 1;
                // RFC 1122 3.2.2.6: an echo to a broadcast address MAY be
                // ignored; Linux does (icmp_echo_ignore_broadcasts=1).
                if broadcast || !self.config.icmp.echo_reply {
                    self.stats.icmp_echo_ignored += 1;
                    return;
                }
                let len = icmpv4::HEADER_LEN + data.len();
                if !self.tx_has_room(len) {
                    self.stats.tx_queue_full += 1;
                    return;
                }
                let mut reply = self.pool.take();
                reply.resize(len, 0);
                icmpv4::emit(
                    &mut reply,
                    icmpv4::TYPE_ECHO_REPLY,
                    0,
                    icmpv4::echo_rest(ident, seq),
                    data,
                );
                match self.route(ip.src) {
                    Some(next_hop) => {
                        self.enqueue(ip.src, next_hop, Protocol::Icmp, reply);
                        self.stats.icmp_echo_replies_tx += 1;
                    }
                    None => {
                        self.stats.ipv4_no_route += 1;
                        self.pool.give(reply);
                    }
                }
            }
            Icmpv4Message::DestUnreachable {
                code,
                next_hop_mtu,
                original,
            } => {
                self.stats.icmp_errors_rx += 1;
                let mtu = (code == UnreachableCode::FragmentationNeeded && next_hop_mtu != 0)
                    .then_some(next_hop_mtu);
                self.icmp_error_input(ip.src, original, |dst| SocketError::Unreachable {
                    reporter: ip.src,
                    dst,
                    code,
                    next_hop_mtu: mtu,
                });
            }
            Icmpv4Message::TimeExceeded { code, original } => {
                self.stats.icmp_errors_rx += 1;
                self.icmp_error_input(ip.src, original, |dst| SocketError::TimeExceeded {
                    reporter: ip.src,
                    dst,
                    code,
                });
            }
            Icmpv4Message::ParameterProblem { pointer, original } => {
                self.stats.icmp_errors_rx += 1;
                self.icmp_error_input(ip.src, original, |dst| SocketError::ParameterProblem {
                    reporter: ip.src,
                    dst,
                    pointer,
                });
            }
            // RFC 6633: hosts MUST silently discard Source Quench.
            Icmpv4Message::SourceQuench { .. }
            | Icmpv4Message::EchoReply { .. }
            | Icmpv4Message::Other { .. } => {
                self.stats.icmp_ignored += 1;
            }
        }
    }

    /// Find the socket that sent the datagram an ICMP error quotes (RFC 1122
    /// 3.2.2: the quote holds the IP header and at least 8 bytes, which is
    /// where both ports are) and record the error there.
    fn icmp_error_input(
        &mut self,
        _reporter: Ipv4Addr,
        original: &[u8],
        make: impl FnOnce(SocketAddrV4) -> SocketError,
    ) {
        let Some(quoted) = QuotedDatagram::parse(original) else {
            self.stats.icmp_errors_unmatched += 1;
            return;
        };
        if quoted.src != self.config.ipv4.addr {
            self.stats.icmp_errors_unmatched += 1;
            return;
        }
        if quoted.protocol == Protocol::Tcp {
            let remote = SocketAddrV4::new(quoted.dst, quoted.dst_port);
            if self.tcp_icmp_error(quoted.src_port, remote, make(remote)) {
                self.stats.icmp_errors_delivered += 1;
            } else {
                self.stats.icmp_errors_unmatched += 1;
            }
            return;
        }
        let handle = match quoted.protocol {
            Protocol::Udp => self.udp_ports.get(&quoted.src_port).copied(),
            _ => None,
        };
        let Some(handle) = handle else {
            self.stats.icmp_errors_unmatched += 1;
            return;
        };
        let err = make(SocketAddrV4::new(quoted.dst, quoted.dst_port));
        tracing::debug!(%handle, %err, "ICMP error for socket");
        if let Some(s) = self.udp_socket(handle) {
            s.error = Some(err);
        }
        self.stats.icmp_errors_delivered += 1;
        self.push_event(handle, EV_ERROR);
    }

    fn udp_input(&mut self, now: Instant, ip: &Ipv4Repr, header: &[u8], payload: &[u8], broadcast: bool) {
        let (repr, data) = match UdpRepr::parse(payload, ip.src, ip.dst) {
            Ok(r) => r,
            Err(e) => {
                let counter = match e {
                    udp::UdpError::Truncated => &mut self.stats.udp_truncated,
                    udp::UdpError::BadLength => &mut self.stats.udp_bad_len,
                    udp::UdpError::BadChecksum => &mut self.stats.udp_bad_checksum,
                };
                *counter += 1;
                return;
            }
        };
        let handle = self.udp_ports.get(&repr.dst_port).copied();
        let Some(handle) = handle else {
            self.stats.udp_no_socket += 1;
            // RFC 1122 4.1.3.1: port unreachable, but never for broadcasts.
            if !broadcast {
                let code = UnreachableCode::Port.into();
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
            return;
        };
        let from = SocketAddrV4::new(ip.src, repr.src_port);
        let Some(socket) = self.udp_socket(handle) else {
            return;
        };
        let was_empty = socket.rx.is_empty();
        if socket.rx.enqueue(from, data).is_err() {
            self.stats.udp_queue_full += 1;
            return;
        }
        self.stats.udp_rx += 1;
        if was_empty {
            self.push_event(handle, EV_READABLE);
        }
    }

    // ----- egress -----

    /// The next hop for `dst`, or `None` if there is no route.
    fn route(&self, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        if self.config.ipv4.contains(dst) || dst.is_broadcast() {
            Some(dst)
        } else {
            self.config.gateway
        }
    }

    fn tx_has_room(&self, len: usize) -> bool {
        self.tx_packets < self.config.tx_queue_packets && self.tx_bytes + len <= self.config.tx_queue_bytes
    }

    fn enqueue(&mut self, dst: Ipv4Addr, next_hop: Ipv4Addr, protocol: Protocol, payload: Vec<u8>) {
        let ident = self.next_ident;
        self.next_ident = self.next_ident.wrapping_add(1);
        self.tx_packets += 1;
        self.tx_bytes += payload.len();
        self.outgoing.push_back(OutDatagram {
            dst,
            next_hop,
            protocol,
            ident,
            dont_fragment: protocol == Protocol::Tcp,
            payload,
            sent: 0,
        });
    }

    /// Give queued datagrams to the neighbor cache, which says whether the
    /// next hop is known.
    fn route_outgoing(&mut self, now: Instant) {
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
    fn release(&mut self, d: OutDatagram) {
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

    /// Send an ICMP error about a datagram we received (RFC 792), obeying
    /// RFC 1122 3.2.2: never about an ICMP error, and rate-limited.
    #[allow(clippy::too_many_arguments)]
    fn send_icmp_error(
        &mut self,
        now: Instant,
        msg_type: u8,
        code: u8,
        rest: [u8; 4],
        ip: &Ipv4Repr,
        header: &[u8],
        payload: &[u8],
    ) {
        if ip.protocol == Protocol::Icmp && payload.first().is_none_or(|t| Icmpv4Message::is_error(*t)) {
            return;
        }
        if !self.icmp_limiter.take(now) {
            self.stats.icmp_rate_limited += 1;
            return;
        }
        let Some(next_hop) = self.route(ip.src) else {
            self.stats.ipv4_no_route += 1;
            return;
        };
        let max_quote = icmpv4::ERROR_MAX_LEN - ipv4::HEADER_LEN - icmpv4::HEADER_LEN;
        let header_len = header.len().min(max_quote);
        let quote_len = header_len + payload.len().min(max_quote - header_len);
        let len = icmpv4::HEADER_LEN + quote_len;
        if !self.tx_has_room(len) {
            self.stats.tx_queue_full += 1;
            return;
        }
        let mut msg = self.pool.take();
        msg.resize(len, 0);
        let body = &mut msg[icmpv4::HEADER_LEN..];
        body[..header_len].copy_from_slice(&header[..header_len]);
        body[header_len..].copy_from_slice(&payload[..quote_len - header_len]);
        icmpv4::emit_in_place(&mut msg, msg_type, code, rest, quote_len);
        self.enqueue(ip.src, next_hop, Protocol::Icmp, msg);
        self.stats.icmp_errors_tx += 1;
    }

    fn push_event(&mut self, handle: SocketHandle, kind: u8) {
        self.sockets.push_event(handle, kind);
    }

    fn tcp_error_of(&self, handle: SocketHandle) -> Option<SocketError> {
        self.tcp_peek_error(handle)
    }
}

/// The start of a datagram quoted in an ICMP error: enough to find the socket.
struct QuotedDatagram {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: Protocol,
    src_port: u16,
    dst_port: u16,
}

impl QuotedDatagram {
    /// The quote is truncated by design, so the total length is not checked
    /// against it; the header and the 4 port bytes must be present.
    fn parse(data: &[u8]) -> Option<Self> {
        let (&vihl, _) = data.split_first()?;
        let ihl = usize::from(vihl & 0x0f) * 4;
        if vihl >> 4 != 4 || ihl < ipv4::HEADER_LEN || data.len() < ihl + 4 {
            return None;
        }
        let ports = &data[ihl..ihl + 4];
        Some(QuotedDatagram {
            src: Ipv4Addr::new(data[12], data[13], data[14], data[15]),
            dst: Ipv4Addr::new(data[16], data[17], data[18], data[19]),
            protocol: Protocol::from(data[9]),
            src_port: u16::from_be_bytes([ports[0], ports[1]]),
            dst_port: u16::from_be_bytes([ports[2], ports[3]]),
        })
    }
}

/// A token bucket for ICMP errors (RFC 1812 4.3.2.8). Tokens are kept in
/// millionths so that refill is exact at any rate.
struct TokenBucket {
    micro_tokens: u64,
    max: u64,
    rate: u64,
    last: Option<Instant>,
}

impl TokenBucket {
    fn new(per_sec: u32, burst: u32) -> Self {
        let max = u64::from(burst.max(1)) * 1_000_000;
        TokenBucket {
            micro_tokens: max,
            max,
            rate: u64::from(per_sec),
            last: None,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let elapsed = (now - last).as_micros().min(u128::from(u64::MAX)) as u64;
            self.micro_tokens = self
                .micro_tokens
                .saturating_add(elapsed.saturating_mul(self.rate))
                .min(self.max);
        }
        self.last = Some(now);
        if self.micro_tokens >= 1_000_000 {
            self.micro_tokens -= 1_000_000;
            true
        } else {
            false
        }
    }
}

/// SplitMix64 (Steele et al. 2014): small, fast, and deterministic for a
/// seed. Not for secrets; TCP's ISN key will be derived separately.
pub(crate) struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
