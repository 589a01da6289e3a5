//! ICMP input (echo, and errors about datagrams we sent) and the ICMP
//! errors we originate.

use super::{Interface, EV_ERROR};
use crate::socket::tcp::seq::SeqNumber;
use crate::socket::SocketError;
use crate::time::Instant;
use crate::wire::{icmpv4, ipv4, Icmpv4Message, Ipv4Repr, Protocol, UnreachableCode};
use core::net::{Ipv4Addr, SocketAddrV4};

impl Interface {
    pub(super) fn icmp_input(&mut self, ip: &Ipv4Repr, payload: &[u8], broadcast: bool) {
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
    /// where both ports are, and for TCP the sequence number) and record the
    /// error there.
    pub(super) fn icmp_error_input(
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
            let seq = Some(SeqNumber(quoted.seq));
            let counter = match self.tcp_icmp_error(quoted.src_port, remote, seq, make(remote)) {
                IcmpVerdict::Delivered => &mut self.stats.icmp_errors_delivered,
                IcmpVerdict::NoSocket => &mut self.stats.icmp_errors_unmatched,
                IcmpVerdict::OutOfWindow => &mut self.stats.icmp_errors_out_of_window,
            };
            *counter += 1;
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

    /// Send an ICMP error about a datagram we received (RFC 792), obeying
    /// RFC 1122 3.2.2: never about an ICMP error, and rate-limited.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn send_icmp_error(
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
}

/// The start of a datagram quoted in an ICMP error: enough to find the socket.
struct QuotedDatagram {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: Protocol,
    src_port: u16,
    dst_port: u16,
    /// Bytes 4..8 of the transport header: TCP's sequence number.
    seq: u32,
}

/// What a transport made of an ICMP error about one of its datagrams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IcmpVerdict {
    /// A socket took it.
    Delivered,
    /// No socket sent the quoted datagram.
    NoSocket,
    /// The quoted TCP segment is not in flight, so a blind attacker may have
    /// made it up (RFC 5927 4.1; Linux counts these as OutOfWindowIcmps).
    OutOfWindow,
}

impl QuotedDatagram {
    /// The quote is truncated by design, so the total length is not checked
    /// against it; the header and the first 8 bytes of the transport header
    /// must be present (RFC 792 requires them; Linux drops shorter quotes
    /// in icmp_socket_deliver).
    pub(super) fn parse(data: &[u8]) -> Option<Self> {
        let (&vihl, _) = data.split_first()?;
        let ihl = usize::from(vihl & 0x0f) * 4;
        if vihl >> 4 != 4 || ihl < ipv4::HEADER_LEN || data.len() < ihl + 8 {
            return None;
        }
        let ports = &data[ihl..ihl + 8];
        Some(QuotedDatagram {
            src: Ipv4Addr::new(data[12], data[13], data[14], data[15]),
            dst: Ipv4Addr::new(data[16], data[17], data[18], data[19]),
            protocol: Protocol::from(data[9]),
            src_port: u16::from_be_bytes([ports[0], ports[1]]),
            dst_port: u16::from_be_bytes([ports[2], ports[3]]),
            seq: u32::from_be_bytes([ports[4], ports[5], ports[6], ports[7]]),
        })
    }
}
