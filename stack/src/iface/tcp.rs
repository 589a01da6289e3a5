//! TCP on the interface: glue between IPv4 and `socket::tcp`, TCP's home.
//!
//! Input: a segment's header is parsed and checked here, then the table
//! (`socket::tcp::table`) finds its connection. Output: the table returns
//! the next segment, and we put it in an IPv4 datagram. The `tcp_*` calls
//! of [`Interface`] lend the table the sockets, counters and configuration.

use super::icmp::IcmpVerdict;
use super::{Interface, SplitMix64};
use crate::offload::{self, Transmit};
use crate::socket::tcp::seq::SeqNumber;
use crate::socket::tcp::table::{conn_ref, Cx, IcmpMatch, Random, Segment, TcpTable};
use crate::socket::tcp::{api, TcpConnStats, TcpOption, TcpState};
use crate::socket::tcp::{
    TcpAcceptError, TcpBindError, TcpConnectError, TcpListenError, TcpOptionError, TcpRecvError,
    TcpSendError, TcpShutdownError, TcpSocketError,
};
use crate::socket::{SocketError, SocketHandle};
use crate::time::Instant;
use crate::wire::{ethernet, ipv4, tcp::TcpParseError, EtherType, Ipv4Repr, Protocol, TcpRepr};
use core::net::SocketAddrV4;

impl Random for SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.next()
    }
}

impl Interface {
    /// The TCP table and what it borrows from the rest of the interface.
    fn tcp_cx(&mut self) -> (&mut TcpTable, Cx<'_>) {
        let cx = Cx {
            now: self.last_now,
            config: &self.config,
            stats: &mut self.stats,
            sockets: &mut self.sockets,
            rng: &mut self.rng,
        };
        (&mut self.tcp, cx)
    }

    // ----- public API -----

    /// A new TCP socket, neither bound nor connected (`socket(2)`).
    pub fn tcp_socket(&mut self) -> Result<SocketHandle, TcpSocketError> {
        let (t, mut cx) = self.tcp_cx();
        t.socket(&mut cx)
    }

    /// Bind a fresh socket to a local port (0: an ephemeral one).
    pub fn tcp_bind(&mut self, h: SocketHandle, local: SocketAddrV4) -> Result<(), TcpBindError> {
        let (t, mut cx) = self.tcp_cx();
        t.bind(&mut cx, h, local)
    }

    /// Listen on a bound socket (`listen(2)`). The backlog bounds both the
    /// SYN queue and the accept queue.
    pub fn tcp_listen_socket(&mut self, h: SocketHandle, backlog: usize) -> Result<(), TcpListenError> {
        let (t, mut cx) = self.tcp_cx();
        t.listen(&mut cx, h, backlog)
    }

    /// Socket, bind and listen in one call.
    pub fn tcp_listen(
        &mut self,
        local: SocketAddrV4,
        backlog: usize,
    ) -> Result<SocketHandle, TcpListenError> {
        let h = self.tcp_socket()?;
        let r = self
            .tcp_bind(h, local)
            .map_err(TcpListenError::from)
            .and_then(|_| self.tcp_listen_socket(h, backlog));
        match r {
            Ok(()) => Ok(h),
            Err(e) => {
                self.tcp_close(h);
                Err(e)
            }
        }
    }

    /// The next established connection of a listener.
    pub fn tcp_accept(&mut self, listener: SocketHandle) -> Result<SocketHandle, TcpAcceptError> {
        let (t, mut cx) = self.tcp_cx();
        t.accept(&mut cx, listener)
    }

    /// Open a connection (a new socket, ephemeral port).
    pub fn tcp_connect(
        &mut self,
        now: Instant,
        remote: SocketAddrV4,
    ) -> Result<SocketHandle, TcpConnectError> {
        let h = self.tcp_socket()?;
        match self.tcp_connect_socket(now, h, remote) {
            Ok(()) => Ok(h),
            Err(e) => {
                self.tcp_close(h);
                Err(e)
            }
        }
    }

    /// Connect an existing socket (`connect(2)`); completion is signalled by
    /// [`Event::Connected`](crate::Event) or an error.
    pub fn tcp_connect_socket(
        &mut self,
        now: Instant,
        h: SocketHandle,
        remote: SocketAddrV4,
    ) -> Result<(), TcpConnectError> {
        let ip = *remote.ip();
        if ip.is_unspecified()
            || ip.is_broadcast()
            || ip.is_multicast()
            || self.is_broadcast(ip)
            || remote.port() == 0
        {
            return Err(TcpConnectError::InvalidAddress);
        }
        self.route(ip).ok_or(TcpConnectError::NoRoute)?;
        let (t, mut cx) = self.tcp_cx();
        t.connect(&mut cx, now, h, remote)
    }

    /// Queue data to send; returns how much the send buffer took.
    pub fn tcp_send(&mut self, h: SocketHandle, data: &[u8]) -> Result<usize, TcpSendError> {
        let (t, mut cx) = self.tcp_cx();
        t.send(&mut cx, h, data)
    }

    /// Read in-order data. `Ok(0)` is end of stream (the peer sent FIN).
    pub fn tcp_recv(&mut self, h: SocketHandle, buf: &mut [u8]) -> Result<usize, TcpRecvError> {
        let (t, mut cx) = self.tcp_cx();
        t.recv(&mut cx, h, buf)
    }

    /// Copy in-order data without consuming it.
    pub fn tcp_peek(&mut self, h: SocketHandle, buf: &mut [u8]) -> Result<usize, TcpRecvError> {
        Ok(conn_ref(&self.sockets, h)
            .ok_or(TcpRecvError::BadHandle)?
            .peek(buf))
    }

    /// Consume-in-place: `f` sees the readable bytes (contiguous, up to the
    /// ring's wrap) and returns how many it used.
    pub fn tcp_recv_with<R>(
        &mut self,
        h: SocketHandle,
        f: impl FnOnce(&[u8]) -> (usize, R),
    ) -> Result<R, TcpRecvError> {
        let (t, mut cx) = self.tcp_cx();
        t.recv_with(&mut cx, h, f)
    }

    /// Fill-in-place: `f` writes into free send buffer space and returns how
    /// many bytes it wrote.
    pub fn tcp_send_with<R>(
        &mut self,
        h: SocketHandle,
        f: impl FnOnce(&mut [u8]) -> (usize, R),
    ) -> Result<R, TcpSendError> {
        let (t, mut cx) = self.tcp_cx();
        t.send_with(&mut cx, h, f)
    }

    /// Bytes that can be read now.
    pub fn tcp_recv_queue(&self, h: SocketHandle) -> usize {
        conn_ref(&self.sockets, h).map(|c| c.recv_queued()).unwrap_or(0)
    }

    /// Free send buffer space.
    pub fn tcp_send_capacity(&self, h: SocketHandle) -> usize {
        conn_ref(&self.sockets, h).map(|c| c.send_capacity()).unwrap_or(0)
    }

    /// Bytes sent but not yet acknowledged, plus bytes not yet sent.
    pub fn tcp_send_queue(&self, h: SocketHandle) -> usize {
        conn_ref(&self.sockets, h)
            .map(|c| c.send_queue_len())
            .unwrap_or(0)
    }

    /// Bytes written but never sent yet.
    pub fn tcp_unsent(&self, h: SocketHandle) -> usize {
        conn_ref(&self.sockets, h)
            .map(|c| c.never_sent_len())
            .unwrap_or(0)
    }

    /// Whether `tcp_recv` would return data or end of stream now.
    pub fn tcp_can_recv(&self, h: SocketHandle) -> bool {
        conn_ref(&self.sockets, h).is_some_and(|c| c.can_recv() || c.state == TcpState::Closed)
    }

    /// Listener with connections ready to accept.
    pub fn tcp_can_accept(&self, h: SocketHandle) -> bool {
        api::can_accept(&self.sockets, h)
    }

    /// Half-close: no more sends; FIN follows the queued data.
    pub fn tcp_shutdown(&mut self, h: SocketHandle) -> Result<(), TcpShutdownError> {
        let (t, mut cx) = self.tcp_cx();
        t.shutdown(&mut cx, h)
    }

    /// Close the socket. A connection closes gracefully (FIN after the data)
    /// and is freed when done; unread received data makes it a RST instead
    /// (RFC 2525 2.17, as Linux). A listener resets the connections it
    /// holds that nobody accepted.
    pub fn tcp_close(&mut self, h: SocketHandle) {
        let (t, mut cx) = self.tcp_cx();
        t.close(&mut cx, h)
    }

    /// Abort: send RST if the peer knows the connection, free it now.
    pub fn tcp_abort(&mut self, h: SocketHandle) {
        let (t, mut cx) = self.tcp_cx();
        t.abort(&mut cx, h)
    }

    pub fn tcp_state(&self, h: SocketHandle) -> Option<TcpState> {
        api::state(&self.sockets, h)
    }

    pub fn tcp_local_addr(&self, h: SocketHandle) -> Option<SocketAddrV4> {
        api::local_addr(&self.sockets, &self.config, h)
    }

    pub fn tcp_peer_addr(&self, h: SocketHandle) -> Option<SocketAddrV4> {
        conn_ref(&self.sockets, h).map(|c| c.remote)
    }

    /// The error that ended (or troubles) the connection (like SO_ERROR).
    pub fn tcp_take_error(&mut self, h: SocketHandle) -> Option<SocketError> {
        let (t, mut cx) = self.tcp_cx();
        t.take_error(&mut cx, h)
    }

    pub(crate) fn tcp_peek_error(&self, h: SocketHandle) -> Option<SocketError> {
        conn_ref(&self.sockets, h)?.error
    }

    pub fn tcp_stats(&self, h: SocketHandle) -> Option<TcpConnStats> {
        api::stats(&self.sockets, h)
    }

    /// Record the connection's timeline from now on (see
    /// [`TraceSample`](crate::TraceSample)), keeping at most `capacity`
    /// samples between drains (the oldest go first); `None` stops
    /// recording and frees what was kept. A listener's accepted
    /// connections are not traced: trace each after accepting it.
    pub fn tcp_trace(&mut self, h: SocketHandle, capacity: Option<usize>) -> Result<(), TcpOptionError> {
        let (t, mut cx) = self.tcp_cx();
        t.set_trace(&mut cx, h, capacity)
    }

    /// Move the samples recorded so far into `out`; the number of samples
    /// lost since the last drain because the trace was full. Nothing for a
    /// connection that is not traced.
    pub fn tcp_drain_trace(&mut self, h: SocketHandle, out: &mut Vec<crate::TraceSample>) -> u64 {
        let (t, mut cx) = self.tcp_cx();
        t.drain_trace(&mut cx, h, out)
    }

    /// With `TcpConfig::trace_connections`: every connection's timeline
    /// since the last call, and the last part of each that ended (once).
    /// Also the connections traced with [`tcp_trace`](Self::tcp_trace).
    pub fn tcp_drain_traces(&mut self, out: &mut Vec<crate::ConnTrace>) {
        let (t, mut cx) = self.tcp_cx();
        t.drain_traces(&mut cx, out)
    }

    /// Every connection's stats (the `ss -ti` of tapir), half-open ones
    /// (SYN-RECEIVED) included.
    pub fn tcp_connections(&self) -> impl Iterator<Item = (SocketAddrV4, SocketAddrV4, TcpConnStats)> + '_ {
        let full = self
            .tcp
            .conn_handles()
            .filter_map(|h| conn_ref(&self.sockets, h))
            .map(|c| (c.local, c.remote, c.stats()));
        let half = self
            .tcp
            .half_open_conns(&self.config, &self.sockets)
            .map(|c| (c.local, c.remote, c.stats()));
        full.chain(half)
    }

    /// Connections, half-open ones included (not TIME-WAIT entries).
    pub fn tcp_connection_count(&self) -> usize {
        self.tcp.connections()
    }

    /// Half-open connections (SYN-RECEIVED): each a small record, not a
    /// control block, until the handshake completes.
    pub fn tcp_half_open_count(&self) -> usize {
        self.tcp.half_open()
    }

    /// Out-of-order bytes all connections hold together (bounded by
    /// `TcpConfig::max_ooo_bytes_total`).
    pub fn tcp_ooo_bytes(&self) -> usize {
        self.tcp.ooo_bytes()
    }

    /// Connections in TIME-WAIT (held compactly).
    pub fn tcp_time_wait_count(&self) -> usize {
        self.tcp.time_wait_len()
    }

    /// Set a per-socket option (before or after connecting; a listener
    /// passes its options to the connections it accepts).
    pub fn tcp_set_option(
        &mut self,
        now: Instant,
        h: SocketHandle,
        opt: TcpOption,
    ) -> Result<(), TcpOptionError> {
        let (t, mut cx) = self.tcp_cx();
        t.set_option(&mut cx, now, h, opt)
    }

    /// Read back an option's current value.
    pub fn tcp_get_option(&self, h: SocketHandle, opt: TcpOption) -> Option<TcpOption> {
        api::get_option(&self.sockets, &self.config, h, opt)
    }

    // ----- input, timers, output -----

    pub(super) fn tcp_input(&mut self, now: Instant, ip: &Ipv4Repr, payload: &[u8], broadcast: bool) {
        let (repr, data) = match TcpRepr::parse(payload, ip.src, ip.dst, !self.rx_csum_trusted) {
            Ok(r) => r,
            Err(TcpParseError::BadChecksum) => {
                self.stats.tcp_bad_checksum += 1;
                return;
            }
            Err(_) => {
                self.stats.tcp_truncated += 1;
                return;
            }
        };
        // RFC 1122 4.2.3.10: a SYN (or any segment) to a broadcast address
        // is dropped silently.
        if broadcast {
            self.stats.tcp_broadcast += 1;
            return;
        }
        self.stats.tcp_rx += 1;
        let _span = tracing::trace_span!("tcp", src = %ip.src, sport = repr.src_port, dport = repr.dst_port)
            .entered();
        let (t, mut cx) = self.tcp_cx();
        t.input(&mut cx, now, ip.src, &repr, data);
    }

    /// An ICMP error quoting one of our segments. `quoted_seq` is the
    /// quoted sequence number, which must be in flight (RFC 5927 4.1); a
    /// locally made error (a failed ARP resolution) has none to check.
    pub(super) fn tcp_icmp_error(
        &mut self,
        local_port: u16,
        remote: SocketAddrV4,
        quoted_seq: Option<SeqNumber>,
        err: SocketError,
    ) -> IcmpVerdict {
        let (t, mut cx) = self.tcp_cx();
        match t.icmp_error(&mut cx, local_port, remote, quoted_seq, err) {
            IcmpMatch::Delivered => IcmpVerdict::Delivered,
            IcmpMatch::NoConnection => IcmpVerdict::NoSocket,
            IcmpMatch::OutOfWindow => IcmpVerdict::OutOfWindow,
        }
    }

    pub(super) fn tcp_handle_timeout(&mut self, now: Instant) {
        let (t, mut cx) = self.tcp_cx();
        t.handle_timeout(&mut cx, now);
    }

    /// Write the next TCP segment into `buf`, straight from the send
    /// ring: headers and payload, the one copy out. A segment that cannot
    /// go now (its next hop still resolving or broadcast, `buf` too short,
    /// larger than the MTU) is built in a pooled buffer and queued instead,
    /// as every other datagram is.
    pub(super) fn tcp_transmit(&mut self, now: Instant, buf: &mut [u8]) -> TcpOut {
        let (t, mut cx) = self.tcp_cx();
        let Some(Segment {
            dst,
            repr,
            data,
            gso_size,
            ip: ip_tx,
        }) = t.produce(&mut cx, now)
        else {
            return TcpOut::Nothing;
        };
        let Some(next_hop) = self.route(dst) else {
            self.stats.ipv4_no_route += 1;
            return TcpOut::Queued;
        };
        self.stats.tcp_tx += 1;
        let header = repr.header_len();
        let len = data.map(|(_, _, l)| l).unwrap_or(0);
        // A super-segment always leaves its checksums to the device, which
        // computes one per segment it cuts.
        let partial = self.config.tx_checksum_offload || gso_size != 0;
        let ip_len = ipv4::HEADER_LEN + header + len;
        let frame_len = ethernet::HEADER_LEN + ip_len;
        let fits = (gso_size != 0 || ip_len <= self.config.mtu) && buf.len() >= frame_len;
        let mac = match fits && !self.is_broadcast(next_hop) {
            true => self
                .neighbors
                .resolved(now, next_hop, &mut self.arp_out, &mut self.stats),
            false => None,
        };
        let Some(mac) = mac else {
            let mut payload = self.pool.take_for(header + len);
            payload.resize(header + len, 0);
            self.copy_segment_data(data, &mut payload[header..]);
            if partial {
                repr.emit_partial(&mut payload, self.config.ipv4.addr, dst, len);
                self.enqueue_offloaded(
                    dst,
                    next_hop,
                    Protocol::Tcp,
                    payload,
                    Some(16),
                    gso_size,
                    header,
                    ip_tx,
                );
            } else {
                repr.emit(&mut payload, self.config.ipv4.addr, dst, len);
                self.enqueue_offloaded(dst, next_hop, Protocol::Tcp, payload, None, 0, 0, ip_tx);
            }
            return TcpOut::Queued;
        };
        let at = ethernet::HEADER_LEN + ipv4::HEADER_LEN;
        let segment = &mut buf[at..frame_len];
        self.copy_segment_data(data, &mut segment[header..]);
        if partial {
            repr.emit_partial(segment, self.config.ipv4.addr, dst, len);
        } else {
            repr.emit(segment, self.config.ipv4.addr, dst, len);
        }
        ethernet::emit_header(buf, mac, self.config.mac, EtherType::Ipv4);
        let ip = Ipv4Repr {
            src: self.config.ipv4.addr,
            dst,
            protocol: Protocol::Tcp,
            ttl: self.config.ttl,
            tos: ip_tx.tos,
            ident: self.take_ident(),
            // RFC 1191: TCP discovers the path MTU, unless the socket's
            // IP_MTU_DISCOVER says otherwise.
            dont_fragment: ip_tx.dont_fragment,
            more_fragments: false,
            frag_offset: 0,
            payload_len: header + len,
        };
        ip.emit(&mut buf[ethernet::HEADER_LEN..]);
        self.stats.ipv4_tx += 1;
        let mut tx = Transmit::default();
        if partial {
            tx.checksum = offload::partial_at(ipv4::HEADER_LEN, 16);
            self.stats.tx_csum_partial += 1;
        }
        self.set_gso(&mut tx, gso_size, header, header + len);
        tx.len = self.count_tx(frame_len);
        TcpOut::Written(tx)
    }

    fn copy_segment_data(&self, data: Option<(SocketHandle, usize, usize)>, out: &mut [u8]) {
        if let Some((h, offset, len)) = data {
            if let Some(c) = conn_ref(&self.sockets, h) {
                let copied = c.copy_data(offset, &mut out[..len]);
                debug_assert_eq!(copied, len, "segment data must be in the send buffer");
            }
        }
    }
}

/// What [`Interface::tcp_transmit`] did.
pub(super) enum TcpOut {
    /// No connection had a segment to send.
    Nothing,
    /// A segment was written into the caller's buffer.
    Written(Transmit),
    /// A segment was queued (or dropped for want of a route): look again.
    Queued,
}
