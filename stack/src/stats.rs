//! Counters: everything received, sent, and every drop by its reason.
//!
//! A frame the stack does not use increments exactly one drop counter, so
//! `rx_frames` equals the frames that were used plus the sum of the drops
//! for them. Read them as a struct (`iface.stats().ipv4_bad_checksum`) or
//! print them (`Display` lists the non-zero ones, one per line).

use core::fmt;

macro_rules! stats {
    (@drop drop $v:expr) => { $v };
    (@drop count $v:expr) => { 0 };
    ($( $(#[doc = $doc:literal])* $kind:ident $name:ident, )*) => {
        /// Interface-wide counters. See the module docs.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct Stats {
            $( $(#[doc = $doc])* pub $name: u64, )*
        }

        impl Stats {
            /// Every counter with its name, in declaration order.
            pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
                [$( (stringify!($name), self.$name), )*].into_iter()
            }

            /// The sum of every counter that records a dropped packet.
            pub fn total_drops(&self) -> u64 {
                0 $( + stats!(@drop $kind self.$name) )*
            }
        }
    };
}

stats! {
    /// Frames handed to `handle_frame`.
    count rx_frames,
    /// Bytes of those frames.
    count rx_bytes,
    /// Frames written by `poll_transmit`.
    count tx_frames,
    /// Bytes of those frames.
    count tx_bytes,

    /// Received TCP super-segments (GRO/GSO: one frame carrying several
    /// segments' data), each taken as one segment.
    count rx_gso_frames,
    /// Received frames whose TCP/UDP checksum the device left partial
    /// (a local sender's checksum offload), taken without verifying.
    count rx_csum_partial,
    /// Received frames whose TCP/UDP checksum the device had verified.
    count rx_csum_verified,
    /// Dropped: a super-segment of a kind we do not take (not TCP/IPv4).
    drop rx_gso_unsupported,
    /// TCP super-segments sent for the device to cut (TSO).
    count tx_gso_frames,
    /// The MSS-sized segments those become on the wire.
    count tx_gso_segments,
    /// Frames sent with the transport checksum left to the device.
    count tx_csum_partial,

    /// Dropped: shorter than an Ethernet header.
    drop eth_truncated,
    /// Dropped: destination MAC neither ours nor broadcast.
    drop eth_not_for_us,
    /// Dropped: a frame claiming to come from our own MAC (a loop).
    drop eth_own_source,
    /// Dropped: EtherType we do not speak (IPv6 for now, LLDP, ...).
    drop eth_unknown_type,

    /// ARP requests received for our address.
    count arp_requests_rx,
    /// ARP replies received.
    count arp_replies_rx,
    /// ARP requests we sent.
    count arp_requests_tx,
    /// ARP replies we sent.
    count arp_replies_tx,
    /// Gratuitous ARPs seen (they only refresh an existing entry).
    count arp_gratuitous_rx,
    /// Dropped: truncated ARP packet.
    drop arp_truncated,
    /// Dropped: ARP for another hardware/protocol type or operation.
    drop arp_unsupported,
    /// Dropped: ARP with an unusable sender (broadcast/multicast MAC or address).
    drop arp_bad_sender,
    /// Dropped: someone else claims our IP address (conflict; RFC 5227).
    drop arp_conflict,
    /// ARP we looked at and did not need (requests for other hosts, unsolicited replies).
    count arp_ignored,
    /// Dropped: packets waiting for a neighbor that never answered.
    drop arp_resolution_failed,
    /// Dropped: a neighbor's pending queue (or the total) was full.
    drop arp_pending_full,
    /// Neighbor entries evicted because the cache was full.
    count arp_cache_evictions,

    /// IPv4 packets that passed validation.
    count ipv4_rx,
    /// Dropped: truncated IPv4 header.
    drop ipv4_truncated,
    /// Dropped: version field not 4.
    drop ipv4_bad_version,
    /// Dropped: IHL below 5.
    drop ipv4_bad_header_len,
    /// Dropped: total length below the header or beyond the frame.
    drop ipv4_bad_total_len,
    /// Dropped: header checksum failed.
    drop ipv4_bad_checksum,
    /// Dropped: destination is not us, our broadcast or limited broadcast.
    drop ipv4_not_for_us,
    /// Dropped: source is broadcast, multicast, or unspecified where that is not allowed (RFC 1122 3.2.1.3).
    drop ipv4_bad_source,
    /// Dropped: transport protocol we do not implement (answered with protocol unreachable).
    drop ipv4_unknown_protocol,
    /// IPv4 datagrams we originated (a fragmented one counts once).
    count ipv4_tx,
    /// Fragments we sent for datagrams larger than the MTU.
    count ipv4_frags_tx,
    /// Dropped on send: no route (off-link and no gateway).
    drop ipv4_no_route,

    /// Fragments received.
    count frag_rx,
    /// Datagrams completed by reassembly.
    count frag_reassembled,
    /// Dropped: a fragment identical in place to one we hold.
    drop frag_duplicate,
    /// Datagrams discarded: a fragment overlapped held data with different bytes.
    drop frag_overlap_conflict,
    /// Datagrams discarded: not complete before the reassembly timeout.
    drop frag_timeout,
    /// Dropped: the fragment would exceed the reassembly byte budget or datagram limit.
    drop frag_budget_exceeded,
    /// Datagrams discarded: fragments describe more than 65535 bytes, or
    /// disagree about where the datagram ends.
    drop frag_bad_length,
    /// Datagrams discarded: more separate pieces than the per-datagram limit.
    drop frag_too_many,

    /// ICMP messages received.
    count icmp_rx,
    /// Dropped: truncated ICMP message.
    drop icmp_truncated,
    /// Dropped: ICMP checksum failed.
    drop icmp_bad_checksum,
    /// Echo requests received.
    count icmp_echo_requests_rx,
    /// Echo replies we sent.
    count icmp_echo_replies_tx,
    /// Echo requests we did not answer (to broadcast, or echo disabled).
    count icmp_echo_ignored,
    /// ICMP errors we sent (unreachable, time exceeded).
    count icmp_errors_tx,
    /// ICMP errors not sent because of the rate limit.
    count icmp_rate_limited,
    /// ICMP errors received.
    count icmp_errors_rx,
    /// ICMP errors delivered to the socket they concern.
    count icmp_errors_delivered,
    /// ICMP errors whose quoted datagram matches no socket of ours.
    count icmp_errors_unmatched,
    /// Dropped: ICMP error quoting a TCP segment that is not in flight
    /// (RFC 5927 4.1; Linux's OutOfWindowIcmps).
    drop icmp_errors_out_of_window,
    /// ICMP messages of a type we do not act on (replies to pings we did not send, redirects, ...).
    count icmp_ignored,

    /// UDP datagrams delivered to a socket.
    count udp_rx,
    /// Dropped: UDP shorter than its header.
    drop udp_truncated,
    /// Dropped: UDP length field inconsistent with the IP payload.
    drop udp_bad_len,
    /// Dropped: UDP checksum failed.
    drop udp_bad_checksum,
    /// Dropped: no socket on the destination port (answered with port unreachable).
    drop udp_no_socket,
    /// Dropped: the socket's receive queue was full.
    drop udp_queue_full,
    /// UDP datagrams sent.
    count udp_tx,

    /// TCP segments that passed validation.
    count tcp_rx,
    /// TCP segments sent.
    count tcp_tx,
    /// Dropped: TCP header truncated or data offset impossible.
    drop tcp_truncated,
    /// Dropped: TCP checksum failed.
    drop tcp_bad_checksum,
    /// Dropped: TCP to a broadcast address (RFC 1122 4.2.3.10).
    drop tcp_broadcast,
    /// Segments for no connection or listener (answered with RST unless a RST).
    drop tcp_no_socket,
    /// RSTs we sent (closed ports, bad ACKs, aborts).
    count tcp_rst_tx,
    /// RSTs to segments for no connection not sent because of
    /// `TcpConfig::rst_per_sec` (the segment itself is counted where it
    /// was dropped, `tcp_no_socket` or the listener's counters).
    count tcp_rst_rate_limited,
    /// Timelines of ended connections dropped before they were drained
    /// (`TcpConfig::trace_connections`).
    count tcp_traces_dropped,
    /// Dropped: a SYN to a listener whose SYN or accept queue was full.
    drop tcp_listen_overflow,
    /// Dropped: the handshake's final ACK while the accept queue was full, or no socket was free for the connection (the SYN-ACK is retransmitted later).
    drop tcp_accept_queue_full,
    /// Dropped: a segment to a listener that was neither SYN nor RST (answered with RST when it carries an ACK).
    drop tcp_listen_bad_segment,
    /// Half-open connections given up because an ICMP error (net or host
    /// unreachable, time exceeded, parameter problem) quoted their SYN-ACK
    /// (Linux tcp_req_err, counted in its ListenDrops).
    count tcp_half_open_icmp_aborts,
    /// SYN cookies sent: SYN-ACKs for a listener whose SYN queue was full
    /// (RFC 4987 3.6; Linux SyncookiesSent).
    count tcp_syncookies_sent,
    /// ACKs to a listener whose cookie checked: a connection was made from
    /// it (Linux SyncookiesRecv).
    count tcp_syncookies_recv,
    /// Dropped: an ACK to a listener that had sent cookies lately, whose
    /// cookie did not check (answered with RST; Linux SyncookiesFailed).
    drop tcp_syncookies_failed,
    /// Segments RACK marked lost (RFC 8985 6.2; Linux TCPLostRetransmit
    /// counts a part of them).
    count tcp_rack_lost,
    /// Tail loss probes sent (RFC 8985 7.3; Linux TCPLossProbes).
    count tcp_tlp_probes,
    /// Losses a tail loss probe repaired, each with a congestion
    /// response (RFC 8985 7.4; Linux TCPLossProbeRecovery).
    count tcp_tlp_recoveries,
    /// Challenge ACKs sent (RFC 5961).
    count tcp_challenge_acks,
    /// Challenge ACKs suppressed by the connection's limit or the interface's budget.
    count tcp_challenge_rate_limited,
    /// Connections opened actively / passively.
    count tcp_active_opens,
    count tcp_passive_opens,
    /// Connections that entered TIME-WAIT.
    count tcp_time_wait,
    /// TIME-WAIT entries ended early by a new SYN (RFC 6191).
    count tcp_time_wait_reused,
    /// Out-of-order segments dropped because all connections together held
    /// `TcpConfig::max_ooo_bytes_total` out-of-order bytes.
    drop tcp_ooo_budget_full,
    /// Out-of-order segments dropped because they would have opened one
    /// more separate range than `TcpConfig::max_ooo_ranges` allows.
    drop tcp_ooo_ranges_full,
    /// Connections that closed without TIME-WAIT because
    /// `TcpConfig::max_time_wait` entries were held (Linux
    /// TCPTimeWaitOverflow).
    count tcp_time_wait_overflow,
    /// RSTs received in TIME-WAIT and ignored (RFC 1337).
    drop tcp_time_wait_rst_ignored,
    /// Unacceptable segments in TIME-WAIT left unanswered by the rate limit.
    drop tcp_time_wait_acks_rate_limited,
    /// Connections reset by the peer.
    count tcp_resets_rx,
    /// Segments a connection discarded (RFC 9293 3.10.7.4), by reason:
    /// an old timestamp (PAWS, RFC 7323 5; Linux PAWSEstabRejected),
    drop tcp_paws_rejected,
    /// outside the receive window (answered with an ACK),
    drop tcp_out_of_window,
    /// a RST in the window but not at RCV.NXT (RFC 5961 3.2: a challenge
    /// ACK), or one in SYN-SENT not acknowledging our SYN,
    drop tcp_rst_not_exact,
    /// a SYN on a synchronized connection (RFC 5961 4.2: a challenge ACK;
    /// Linux TCPSYNChallenge),
    drop tcp_syn_in_window,
    /// no ACK bit (fifth check),
    drop tcp_no_ack_flag,
    /// an ACK of data never sent or too old (RFC 5961 5.2: a challenge
    /// ACK), or in SYN-SENT / SYN-RECEIVED one not for our SYN (a RST).
    drop tcp_bad_ack,
    /// Connections that timed out.
    count tcp_timeouts,
    /// D-SACK blocks received (RFC 2883; Linux TCPDSACKRecv +
    /// TCPDSACKOfoRecv).
    count tcp_dsack_recv,
    /// Congestion reductions undone because every retransmission of the
    /// episode was D-SACKed (RFC 3708; Linux TCPDSACKUndo and the
    /// D-SACK part of TCPFullUndo / TCPLossUndo).
    count tcp_dsack_undo,
    /// Reductions undone because an ACK echoed a timestamp older than the
    /// retransmission (RFC 3522 Eifel; Linux TCPPartialUndo and the
    /// timestamp part of TCPFullUndo / TCPLossUndo).
    count tcp_ts_undo,
    /// Retransmission timeouts F-RTO found spurious (RFC 5682; Linux
    /// TCPSpuriousRTOs).
    count tcp_frto_spurious,

    /// Sends refused because the transmit queue was full.
    count tx_queue_full,
    /// `poll_transmit` calls whose buffer could not hold the next frame.
    count tx_buf_too_small,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut any = false;
        for (name, value) in self.iter().filter(|(_, v)| *v != 0) {
            writeln!(f, "{name:<28} {value}")?;
            any = true;
        }
        if !any {
            writeln!(f, "(all counters zero)")?;
        }
        Ok(())
    }
}
