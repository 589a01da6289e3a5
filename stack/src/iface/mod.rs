//! The interface: one Ethernet link, one IPv4 address, and its sockets.
//!
//! This file holds the [`Interface`] type, its inputs and outputs and its
//! event queue; each protocol adds its part in its own file: `arp` (ARP
//! input and failed resolutions), `ipv4` (IPv4 input, reassembly,
//! delivery, routing and the transmit queue), `icmp`, `udp` and `tcp`.

mod arp;
mod egress;
mod icmp;
mod ipv4;
mod neighbor;
#[cfg(test)]
mod offload_tests;
pub(crate) mod reassembly;
pub(crate) mod tcp;
#[cfg(test)]
mod tcp_tests;
#[cfg(test)]
mod tests;
mod udp;
pub(crate) mod util;

use crate::config::Config;
use crate::hash::KeyedMap;
use crate::offload::{self, GsoType, Offload, RxChecksum, RxMeta, Transmit};
use crate::socket::{
    Socket, SocketError, SocketHandle, SocketSet, EV_CLOSED, EV_CONNECTED, EV_ERROR, EV_READABLE, EV_WRITABLE,
};
use crate::stats::Stats;
use crate::time::Instant;
use crate::wire::{self, ethernet, EtherType, EthernetAddress, EthernetFrame};
use core::net::Ipv4Addr;
use egress::{BufferPool, OutDatagram, ReadyQueue};
use neighbor::{ArpOut, NeighborCache};
use reassembly::Reassembler;
use std::collections::VecDeque;
use util::{SplitMix64, TokenBucket};

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
    udp_ports: KeyedMap<u16, SocketHandle>,
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
    /// The device vouched for the transport checksum of the frame being
    /// handled (or left it partial): TCP and UDP take it unverified.
    rx_csum_trusted: bool,
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
        let hasher = crate::hash::keyed(config.seed);
        Ok(Interface {
            stats: Stats::default(),
            neighbors: NeighborCache::new(config.arp.clone(), config.mac, config.ipv4.addr, hasher.clone()),
            reassembler: Reassembler::new(&config.reassembly),
            sockets: SocketSet::new(config.max_sockets),
            udp_ports: KeyedMap::with_hasher(hasher.clone()),
            outgoing: VecDeque::new(),
            arp_out: VecDeque::new(),
            ready: ReadyQueue::new(),
            pool: BufferPool::new(),
            tx_packets: 0,
            tx_bytes: 0,
            blocked: Vec::new(),
            icmp_limiter: TokenBucket::new(config.icmp.errors_per_sec, config.icmp.errors_burst),
            tcp: crate::socket::tcp::table::TcpTable::new(secret, hasher),
            next_ident,
            rng,
            last_now: Instant::ZERO,
            rx_csum_trusted: false,
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

    /// The largest frame `poll_transmit` writes: the MTU (or the largest
    /// TSO super-segment, if larger) plus the Ethernet header.
    pub fn max_frame_len(&self) -> usize {
        self.config.mtu.max(self.config.tcp.tso_max) + ethernet::HEADER_LEN
    }

    /// Tell the stack what the device does for it (checksum offload, TSO).
    /// Call it before opening connections (each reads the TSO limit when
    /// it is made); the driver does, from the device's capabilities. TSO
    /// needs checksum offload: without it, it stays off.
    pub fn set_offload(&mut self, offload: Offload) {
        self.config.tx_checksum_offload = offload.tx_checksum;
        self.config.tcp.tso_max = if offload.tx_checksum && offload.tso_max > self.config.mtu {
            offload.tso_max.min(65535)
        } else {
            0
        };
    }

    /// What the stack leaves to the device (see [`Self::set_offload`]).
    pub fn offload(&self) -> Offload {
        Offload {
            tso_max: self.config.tcp.tso_max,
            tx_checksum: self.config.tx_checksum_offload,
        }
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
        self.rx_csum_trusted = false;
        self.frame_input(now, frame);
    }

    /// [`Self::handle_frame`] for a frame the device says more about: a
    /// transport checksum it verified or left partial is trusted, not
    /// verified; a TCP/IPv4 super-segment (GRO, GSO) is taken as one
    /// large segment, the IPv4 total length covering all of it.
    pub fn handle_frame_meta(&mut self, now: Instant, frame: &[u8], meta: RxMeta) {
        match meta.gso {
            GsoType::None => {}
            GsoType::TcpV4 => self.stats.rx_gso_frames += 1,
            GsoType::Other(_) => {
                self.stats.rx_frames += 1;
                self.stats.rx_bytes += frame.len() as u64;
                self.stats.rx_gso_unsupported += 1;
                return;
            }
        }
        self.rx_csum_trusted = match meta.checksum {
            RxChecksum::None => false,
            RxChecksum::Verified => {
                self.stats.rx_csum_verified += 1;
                true
            }
            RxChecksum::Partial { .. } => {
                self.stats.rx_csum_partial += 1;
                true
            }
        };
        self.frame_input(now, frame);
        self.rx_csum_trusted = false;
    }

    fn frame_input(&mut self, now: Instant, frame: &[u8]) {
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
        self.neighbor_handle_timeout(now);
        self.reassembly_handle_timeout(now);
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
        self.poll_transmit_meta(now, buf).map(|t| t.len)
    }

    /// [`Self::poll_transmit`] with what the device must do for the frame:
    /// complete its checksum, cut a TSO super-segment. Only frames of a
    /// stack told it may ([`Self::set_offload`]) need either.
    pub fn poll_transmit_meta(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        self.last_now = now;
        self.route_outgoing(now);
        // TCP produces segments on demand, one at a time, while the
        // transmit queue has nothing ready and room to spare; one whose
        // next hop is known is written into `buf` at once.
        while self.arp_out.is_empty() && self.ready.front().is_none() && self.tx_has_room(self.config.mtu) {
            match self.tcp_transmit(now, buf) {
                tcp::TcpOut::Written(tx) => return Some(tx),
                tcp::TcpOut::Queued => self.route_outgoing(now),
                tcp::TcpOut::Nothing => break,
            }
        }
        if let Some(out) = self.arp_out.front() {
            let len = ethernet::HEADER_LEN + wire::arp::PACKET_LEN;
            if buf.len() < len {
                self.stats.tx_buf_too_small += 1;
                return None;
            }
            ethernet::emit_header(buf, out.dst_mac, self.config.mac, EtherType::Arp);
            out.repr.emit(&mut buf[ethernet::HEADER_LEN..]);
            self.arp_out.pop_front();
            return Some(Transmit {
                len: self.count_tx(len),
                ..Transmit::default()
            });
        }
        let (mac, d) = self.ready.front()?;
        let mac = *mac;
        let frag = egress::next_fragment(d, self.config.ipv4.addr, self.config.ttl, self.config.mtu);
        let len = ethernet::HEADER_LEN + wire::ipv4::HEADER_LEN + frag.len;
        if buf.len() < len {
            self.stats.tx_buf_too_small += 1;
            return None;
        }
        ethernet::emit_header(buf, mac, self.config.mac, EtherType::Ipv4);
        frag.repr.emit(&mut buf[ethernet::HEADER_LEN..]);
        let at = ethernet::HEADER_LEN + wire::ipv4::HEADER_LEN;
        buf[at..len].copy_from_slice(&d.payload[frag.offset..frag.offset + frag.len]);
        if frag.repr.is_fragment() {
            self.stats.ipv4_frags_tx += 1;
        }
        let mut tx = Transmit::default();
        // A partial checksum is left only on a datagram sent whole (see
        // `enqueue_offloaded`).
        if let (Some(offset), false) = (d.csum_offset, frag.repr.is_fragment()) {
            tx.checksum = offload::partial_at(wire::ipv4::HEADER_LEN, offset);
            self.stats.tx_csum_partial += 1;
        }
        let (gso_size, header_len) = (d.gso_size, d.transport_header_len);
        self.set_gso(&mut tx, gso_size, header_len, frag.len);
        if frag.last {
            let (_, d) = self.ready.pop().expect("front exists");
            self.stats.ipv4_tx += 1;
            self.release(d);
        } else if let Some((_, d)) = self.ready.front_mut() {
            d.sent += frag.len;
        }
        tx.len = self.count_tx(len);
        Some(tx)
    }

    /// A TCP super-segment's metadata for the device (none if `gso_size`
    /// is zero): `transport_header_len` of TCP header and `ip_payload_len`
    /// of IP payload in all.
    fn set_gso(
        &mut self,
        tx: &mut Transmit,
        gso_size: u16,
        transport_header_len: usize,
        ip_payload_len: usize,
    ) {
        if gso_size == 0 {
            return;
        }
        tx.gso_size = gso_size;
        tx.header_len = (ethernet::HEADER_LEN + wire::ipv4::HEADER_LEN + transport_header_len) as u16;
        self.stats.tx_gso_frames += 1;
        let data = ip_payload_len.saturating_sub(transport_header_len);
        self.stats.tx_gso_segments += data.div_ceil(usize::from(gso_size)) as u64;
    }

    fn count_tx(&mut self, len: usize) -> usize {
        self.stats.tx_frames += 1;
        self.stats.tx_bytes += len as u64;
        len
    }

    pub(super) fn push_event(&mut self, handle: SocketHandle, kind: u8) {
        self.sockets.push_event(handle, kind);
    }

    pub(super) fn tcp_error_of(&self, handle: SocketHandle) -> Option<SocketError> {
        self.tcp_peek_error(handle)
    }
}
