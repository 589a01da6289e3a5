//! UDP sockets and UDP input.

use super::{Interface, EV_READABLE};
use crate::socket::udp::{UdpBindError, UdpRecvError, UdpSendError, UdpSocket};
use crate::socket::{Socket, SocketError, SocketHandle};
use crate::time::Instant;
use crate::wire::ipv4::IpTx;
use crate::wire::{icmpv4, ipv4, udp, Ipv4Repr, Protocol, UdpRepr, UnreachableCode};
use core::net::SocketAddrV4;

impl Interface {
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
    pub(super) fn ephemeral_port(&mut self) -> Option<u16> {
        let (lo, hi) = self.config.udp.ephemeral_ports;
        let span = u32::from(hi - lo) + 1;
        let start = (self.rng.next() % u64::from(span)) as u32;
        (0..span)
            .map(|i| lo + ((start + i) % span) as u16)
            .find(|p| !self.udp_ports.contains_key(p))
    }

    pub(super) fn udp_socket(&mut self, handle: SocketHandle) -> Option<&mut UdpSocket> {
        self.sockets.get_mut(handle).and_then(Socket::as_udp_mut)
    }

    /// IP_TOS: the TOS byte (DSCP and ECN field) of the datagrams this
    /// socket sends from now on, fragments included; `false` if there is no
    /// such UDP socket. Linux keeps all eight bits for a datagram socket
    /// (it clears the ECN field only on TCP's, whose ECN is RFC 3168's to
    /// run): an application that runs its own ECN, as QUIC does (RFC 9000
    /// 13.4), sets ECT here.
    pub fn udp_set_tos(&mut self, handle: SocketHandle, tos: u8) -> bool {
        match self.udp_socket(handle) {
            Some(s) => {
                s.tos = tos;
                true
            }
            None => false,
        }
    }

    /// The socket's IP_TOS byte.
    pub fn udp_tos(&self, handle: SocketHandle) -> Option<u8> {
        self.sockets.get(handle).and_then(Socket::as_udp).map(|s| s.tos)
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
        let socket = self.udp_socket(handle).ok_or(UdpSendError::BadHandle)?;
        let local_port = socket.local.port();
        let ip = IpTx {
            tos: socket.tos,
            ..IpTx::DATAGRAM
        };
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
        // Checksum offload only for a datagram sent whole: fragments would
        // each need the device to sum what the others carry.
        if self.config.tx_checksum_offload && len + ipv4::HEADER_LEN <= self.config.mtu {
            repr.emit_partial(&mut payload, self.config.ipv4.addr, *to.ip(), data.len());
            self.enqueue_offloaded(*to.ip(), next_hop, Protocol::Udp, payload, Some(6), 0, 0, ip);
        } else {
            repr.emit_in_place(&mut payload, self.config.ipv4.addr, *to.ip(), data.len());
            self.enqueue_offloaded(*to.ip(), next_hop, Protocol::Udp, payload, None, 0, 0, ip);
        }
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

    pub(super) fn udp_input(
        &mut self,
        now: Instant,
        ip: &Ipv4Repr,
        header: &[u8],
        payload: &[u8],
        broadcast: bool,
    ) {
        let (repr, data) = match UdpRepr::parse_with(payload, ip.src, ip.dst, !self.rx_csum_trusted) {
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
}
