//! Configuration of an [`Interface`](crate::Interface). Every limit the stack
//! enforces on untrusted input lives here, with the default we chose and why.

use crate::socket::tcp::CongestionAlgorithm;
use crate::time::Duration;
use crate::wire::{EthernetAddress, Ipv4Cidr};
use core::fmt;
use core::net::Ipv4Addr;

#[derive(Debug, Clone)]
pub struct Config {
    /// Our MAC address. Must be unicast.
    pub mac: EthernetAddress,
    /// Our address and the on-link prefix.
    pub ipv4: Ipv4Cidr,
    /// Next hop for destinations off the on-link prefix. Without one they
    /// are unreachable.
    pub gateway: Option<Ipv4Addr>,
    /// IP MTU of the link (the largest IP datagram in one frame).
    pub mtu: usize,
    /// TTL of datagrams we originate (RFC 1700 suggests 64, as Linux uses).
    pub ttl: u8,
    /// Seeds everything the stack randomises (IP IDs, ephemeral ports, and
    /// the TCP ISN secret unless that is set), so a run is reproducible.
    /// The default is a constant: a stack facing a real network must take
    /// this and `tcp.isn_secret` from a random source (the stack reads
    /// none; `tapir_harness::randomize_config` does it).
    pub seed: u64,
    pub arp: ArpConfig,
    pub reassembly: ReassemblyConfig,
    pub udp: UdpConfig,
    pub icmp: IcmpConfig,
    pub tcp: TcpConfig,
    /// Datagrams waiting for the device, across all sockets.
    pub tx_queue_packets: usize,
    /// Bytes of those datagrams.
    pub tx_queue_bytes: usize,
    /// At most this many sockets at once.
    pub max_sockets: usize,
    /// The device completes TCP and UDP checksums we leave partial
    /// (checksum offload). Set from the device by
    /// [`Interface::set_offload`](crate::Interface::set_offload).
    pub tx_checksum_offload: bool,
}

#[derive(Debug, Clone)]
pub struct ArpConfig {
    /// Entries in the neighbor cache; the least recently confirmed is evicted.
    pub cache_capacity: usize,
    /// How long a resolved entry is trusted before we ask again (Linux's
    /// base_reachable_time is 30 s, randomised; it then goes STALE).
    pub reachable_time: Duration,
    /// Interval between requests while resolving (Linux: retrans_time 1 s).
    pub retry_interval: Duration,
    /// Requests sent before giving up (Linux: mcast_solicit 3).
    pub max_requests: u32,
    /// Packets held per unresolved neighbor (Linux bounds this by bytes,
    /// unres_qlen_bytes; a packet count is easier to reason about).
    pub pending_per_neighbor: usize,
    /// Packets held for all unresolved neighbors together.
    pub pending_total: usize,
}

#[derive(Debug, Clone)]
pub struct ReassemblyConfig {
    /// Datagrams being reassembled at once.
    pub max_datagrams: usize,
    /// Bytes of fragment data held across all reassemblies (Linux:
    /// ipfrag_high_thresh, 4 MiB).
    pub budget_bytes: usize,
    /// Give up on a datagram this long after its first fragment arrived
    /// (RFC 1122 3.3.2 suggests 60-120 s; Linux uses ipfrag_time = 30 s).
    pub timeout: Duration,
    /// Separate pieces held per datagram. A 64 KiB datagram at a 1500 MTU is
    /// 45 fragments; a sender sending many tiny ones is an attack.
    pub max_fragments: usize,
}

#[derive(Debug, Clone)]
pub struct UdpConfig {
    /// Datagrams queued per socket for the application.
    pub rx_queue_datagrams: usize,
    /// Payload bytes queued per socket (like SO_RCVBUF).
    pub rx_queue_bytes: usize,
    /// Ephemeral port range (RFC 6335 9.1.1 suggests 49152-65535).
    pub ephemeral_ports: (u16, u16),
}

#[derive(Debug, Clone)]
pub struct IcmpConfig {
    /// Answer echo requests.
    pub echo_reply: bool,
    /// Token-bucket rate of ICMP errors we originate, per second (RFC 1812
    /// 4.3.2.8; Linux: icmp_msgs_per_sec 1000).
    pub errors_per_sec: u32,
    /// Bucket depth (Linux: icmp_msgs_burst 50).
    pub errors_burst: u32,
    /// The smallest path MTU a "fragmentation needed" may set (RFC 1191).
    /// A lower one is raised to this, so that a forged or broken message
    /// cannot shrink segments to a few bytes each (Linux: min_pmtu 552).
    pub min_path_mtu: usize,
}

/// TCP defaults. Where RFCs leave a choice, we take Linux's, so that
/// scripts written against Linux describe tapir too; each says which.
#[derive(Debug, Clone)]
pub struct TcpConfig {
    /// Secret for RFC 6528 initial sequence numbers (and timestamp offsets).
    /// Derived from `Config::seed` when zero.
    pub isn_secret: u64,
    /// Receive buffer per connection (SO_RCVBUF) to start with; it doubles
    /// while the sender fills the window and the application keeps up, up
    /// to `recv_buffer_max`, unless SO_RCVBUF is set.
    pub recv_buffer: usize,
    /// The largest the receive buffer may be made (Linux tcp_rmem[2]). As
    /// Linux's tcp_select_initial_window, the window scale we offer is the
    /// smallest shift that can describe it (RFC 7323 2.3), unless SO_RCVBUF
    /// fixes the buffer first. 15 MiB, as in packetdrill's Linux test
    /// environment, gives wscale 8 (stock Linux's 6 MiB gives 7).
    pub recv_buffer_max: usize,
    /// Send buffer per connection (SO_SNDBUF) to start with; it grows to
    /// twice the congestion window (Linux tcp_sndbuf_expand) up to
    /// `send_buffer_max` unless SO_SNDBUF is set.
    pub send_buffer: usize,
    /// The largest autotuning makes the send buffer (Linux tcp_wmem[2],
    /// 4 MiB).
    pub send_buffer_max: usize,
    /// Initial congestion window in segments (RFC 6928: 10, as Linux).
    pub initial_window: u32,
    /// The congestion control algorithm of new connections (Linux
    /// tcp_congestion_control); TCP_CONGESTION changes it per socket.
    pub congestion_control: CongestionAlgorithm,
    /// Record a timeline of every new connection, each in a trace of this
    /// many samples, drained with `Interface::tcp_drain_traces` (`tapir
    /// up --trace DIR`). `None` (the default): only connections asked for
    /// with `Interface::tcp_trace` are traced.
    pub trace_connections: Option<usize>,
    /// HyStart++ (RFC 9406): end the initial slow start on a rise of the
    /// RTT rather than on loss (Linux: cubic's hystart parameter, on).
    pub hystart: bool,
    /// Pace data (`socket/tcp/pacing.rs`): segments leave in bursts of
    /// about a millisecond at `pacing_ss_ratio` percent of cwnd / SRTT in
    /// slow start (below half ssthresh) and `pacing_ca_ratio` percent
    /// after, so that a window opened by a clump of ACKs does not leave
    /// as one line-rate burst into a shallow queue. Linux paces so with
    /// the fq qdisc, or for a controller that asks (BBR); its ratios are
    /// net.ipv4.tcp_pacing_ss_ratio (200) and tcp_pacing_ca_ratio (120).
    ///
    /// tapir's `pacing_ca_ratio` is 0 by default, which (as in Linux's
    /// arithmetic) is no pacing: only slow start is paced, where its
    /// doubling bursts overflow shallow queues. In congestion avoidance
    /// the ACK clock spreads the window already, and pacing it at 120 %
    /// cost 15 % of goodput at 1 % random loss on a 10 ms path (three
    /// seeds: 6.1-6.7 MB in 8 s against 7.2-7.9 unpaced or paced in slow
    /// start only) for no gain on any link of BENCHMARKS.md's grid.
    pub pacing: bool,
    pub pacing_ss_ratio: u32,
    pub pacing_ca_ratio: u32,
    /// F-RTO (RFC 5682, the SACK-enhanced algorithm of its section 3):
    /// tell a spurious retransmission timeout by sending new data after
    /// it, and undo its reduction (Linux tcp_frto = 2, the default).
    pub frto: bool,
    /// Restart the congestion window after an idle spell longer than the
    /// RTO (RFC 5681 4.1; Linux tcp_slow_start_after_idle, on).
    pub slow_start_after_idle: bool,
    /// Lower bound on the RTO. RFC 6298 2.4 says 1 s SHOULD; Linux uses
    /// 200 ms (TCP_RTO_MIN), and so do we.
    pub rto_min: Duration,
    /// Upper bound on the RTO (RFC 6298 2.5: at least 60 s; Linux 120 s).
    pub rto_max: Duration,
    /// RTO before any RTT sample (RFC 6298 2.1: 1 s).
    pub rto_initial: Duration,
    /// SYN retransmissions before connect fails (Linux tcp_syn_retries = 6).
    pub syn_retries: u32,
    /// SYN-ACK retransmissions before an embryonic connection is dropped
    /// (Linux tcp_synack_retries = 5).
    pub synack_retries: u32,
    /// Data retransmissions before the connection is aborted (Linux
    /// tcp_retries2 = 15, about 15 minutes with backoff).
    pub max_retransmits: u32,
    /// Unanswered zero-window probes before a connection the application
    /// has closed is dropped (Linux tcp_orphan_retries, whose default 0
    /// means 8); one still held by the application gives up after
    /// `max_retransmits` (tcp_retries2), as Linux's tcp_probe_timer.
    pub orphan_retries: u32,
    /// Delayed ACK timeout (RFC 9293 3.8.6.3: under 0.5 s; Linux 40 ms minimum).
    pub delayed_ack: Duration,
    /// The largest TCP segment, as an IP datagram, the device cuts into
    /// MSS-sized ones for us (TSO); 0: off, every segment fits the MSS.
    /// Set from the device by
    /// [`Interface::set_offload`](crate::Interface::set_offload); at most
    /// 65535. Connections read it when they are made.
    pub tso_max: usize,
    /// Linux's quick-ACK mode: after a connection's first data, and after
    /// the peer was silent for longer than an RTO, up to this many segments
    /// are acknowledged at once instead of delayed, so a sender in slow
    /// start is not held back by our delayed-ACK timer (Linux
    /// TCP_MAX_QUICKACKS = 16; fewer when the window holds fewer than twice
    /// as many segments). RFC 5681 4.2 only bounds how long an ACK may wait;
    /// ACKing sooner is always allowed. Zero turns it off.
    pub quickack_max: u32,
    /// TIME-WAIT duration, 2 x MSL (Linux TCP_TIMEWAIT_LEN = 60 s).
    pub time_wait: Duration,
    /// TIME-WAIT entries held at once (Linux tcp_max_tw_buckets, 262 144
    /// on a machine with this much memory). Past it a closing connection
    /// skips TIME-WAIT and is counted (`tcp_time_wait_overflow`): a peer
    /// that opens and closes connections as fast as it can would otherwise
    /// grow the table by its rate times 60 s. An entry costs about 100
    /// bytes.
    pub max_time_wait: usize,
    /// How long a connection the application has closed may wait in
    /// FIN-WAIT-2 for the peer's FIN (Linux tcp_fin_timeout = 60 s);
    /// without a bound, a silent peer would pin it forever.
    pub fin_wait2_timeout: Duration,
    /// Keepalive defaults (RFC 1122 4.2.3.6: at least two hours idle).
    pub keepalive_idle: Duration,
    pub keepalive_interval: Duration,
    pub keepalive_count: u32,
    /// Challenge ACKs sent per second, across the interface, on top of
    /// each connection's `invalid_ratelimit` (RFC 5961 7; Linux
    /// tcp_challenge_ack_limit). Each second's budget is drawn at random
    /// around it (from half to one and a half times it), as Linux does, so
    /// that it cannot be counted (CVE-2016-5696). `u32::MAX` (the default,
    /// as Linux since 6.0, where the per-connection limit suffices) turns
    /// it off.
    pub challenge_ack_limit: u32,
    /// Per connection, at most one ACK per this interval in answer to
    /// segments without data that fail the acceptability tests (out of
    /// window, a SYN or inexact RST calling for a challenge ACK, an ACK of
    /// data never sent): two ends that each find the other's segments
    /// unacceptable would otherwise trade ACKs as fast as the link allows
    /// (Linux tcp_invalid_ratelimit = 500 ms). Zero turns the limit off.
    pub invalid_ratelimit: Duration,
    /// RSTs per second, across the interface, in answer to segments for
    /// no connection (RFC 9293 3.10.7.1: a closed port, a stray ACK to a
    /// listener, a failed SYN cookie), as a token bucket like ICMP errors'
    /// (RFC 1812 4.3.2.8), so that a scan or a flood of forged segments
    /// cannot make us send as fast as it sends. Linux has no such limit
    /// for TCP (its icmp_ratelimit covers ICMP only); `u32::MAX` turns it
    /// off. RSTs that belong to a connection (an abort, a bad ACK in
    /// SYN-RECEIVED) are not limited.
    pub rst_per_sec: u32,
    /// The bucket's depth.
    pub rst_burst: u32,
    /// Largest backlog a listener may ask for (Linux somaxconn = 4096).
    pub max_backlog: usize,
    /// When a listener answers a SYN with a SYN cookie instead of a
    /// SYN-RECEIVED entry (RFC 4987 3.6; Linux tcp_syncookies, default 1:
    /// when the SYN queue is full).
    pub syn_cookies: SynCookies,
    /// Separate out-of-order ranges (holes behind them) held per
    /// connection; a segment that would open one more is dropped and
    /// counted (`tcp_ooo_ranges_full`). A fast path reordering a tenth of
    /// its segments holds dozens of holes at once (10 % of 40 000
    /// segments/s held back 11 ms is 44), and Linux's out-of-order queue
    /// has no such count (only memory bounds it), so the default is well
    /// above that; a range costs 24 bytes, allocated only while held.
    pub max_ooo_ranges: usize,
    /// Out-of-order bytes held by all connections together. Each
    /// connection's are bounded by the window it offers; this bounds their
    /// sum, so that many connections each sent a window of data behind a
    /// hole cannot hold window x connections bytes (Linux bounds all
    /// socket memory with tcp_mem). Past it, out-of-order segments are
    /// dropped and counted (`tcp_ooo_budget_full`), which costs the sender a
    /// retransmission, not the connection.
    pub max_ooo_bytes_total: usize,
    /// Offer and use timestamps (RFC 7323), SACK (RFC 2018) and window scaling.
    pub timestamps: bool,
    pub sack: bool,
    pub window_scaling: bool,
    /// RACK-TLP (RFC 8985) decides loss with a SACK-capable peer: a
    /// segment is lost once one sent after it was delivered and a
    /// reordering window passed, and a tail loss probe answers a silent
    /// tail. Off: RFC 6675's DupThresh rule and the RTO alone. Linux's
    /// net.ipv4.tcp_recovery (1, RACK, by default). Peers without SACK
    /// always get NewReno (RFC 6582).
    pub rack: bool,
    /// Tail loss probes (RFC 8985 7), with RACK and a SACK peer: Linux's
    /// net.ipv4.tcp_early_retrans (3, on, by default).
    pub tlp: bool,
}

/// When to send SYN cookies (RFC 4987 3.6), as Linux's tcp_syncookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SynCookies {
    /// Never: a SYN that finds the SYN queue full is dropped (0).
    Never,
    /// When the listener's SYN queue is full (1, Linux's default).
    WhenFull,
    /// For every SYN: no SYN-RECEIVED entries at all (2).
    Always,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            isn_secret: 0,
            recv_buffer: 256 * 1024,
            recv_buffer_max: 15 << 20,
            send_buffer: 256 * 1024,
            send_buffer_max: 4 << 20,
            initial_window: 10,
            congestion_control: CongestionAlgorithm::default(),
            trace_connections: None,
            hystart: true,
            pacing: true,
            pacing_ss_ratio: 200,
            pacing_ca_ratio: 0,
            frto: true,
            slow_start_after_idle: true,
            rto_min: Duration::from_millis(200),
            rto_max: Duration::from_secs(120),
            rto_initial: Duration::from_secs(1),
            syn_retries: 6,
            synack_retries: 5,
            max_retransmits: 15,
            orphan_retries: 8,
            delayed_ack: Duration::from_millis(40),
            tso_max: 0,
            quickack_max: 16,
            time_wait: Duration::from_secs(60),
            max_time_wait: 262_144,
            fin_wait2_timeout: Duration::from_secs(60),
            keepalive_idle: Duration::from_secs(7200),
            keepalive_interval: Duration::from_secs(75),
            keepalive_count: 9,
            challenge_ack_limit: u32::MAX,
            invalid_ratelimit: Duration::from_millis(500),
            rst_per_sec: 1000,
            rst_burst: 50,
            max_backlog: 4096,
            syn_cookies: SynCookies::WhenFull,
            max_ooo_ranges: 256,
            max_ooo_bytes_total: 128 << 20,
            timestamps: true,
            sack: true,
            window_scaling: true,
            rack: true,
            tlp: true,
        }
    }
}

impl Default for ArpConfig {
    fn default() -> Self {
        ArpConfig {
            cache_capacity: 256,
            reachable_time: Duration::from_secs(30),
            retry_interval: Duration::from_secs(1),
            max_requests: 3,
            pending_per_neighbor: 64,
            pending_total: 256,
        }
    }
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        ReassemblyConfig {
            max_datagrams: 64,
            budget_bytes: 4 << 20,
            timeout: Duration::from_secs(30),
            max_fragments: 64,
        }
    }
}

impl Default for UdpConfig {
    fn default() -> Self {
        UdpConfig {
            rx_queue_datagrams: 1024,
            rx_queue_bytes: 1 << 20,
            ephemeral_ports: (49152, 65535),
        }
    }
}

impl Default for IcmpConfig {
    fn default() -> Self {
        IcmpConfig {
            echo_reply: true,
            errors_per_sec: 1000,
            errors_burst: 50,
            min_path_mtu: 552,
        }
    }
}

impl Config {
    /// A configuration with our defaults for the given address.
    pub fn new(mac: EthernetAddress, ipv4: Ipv4Cidr) -> Self {
        Config {
            mac,
            ipv4,
            gateway: None,
            mtu: 1500,
            ttl: 64,
            seed: 0x7a91_2f00_c0ff_ee00,
            arp: ArpConfig::default(),
            reassembly: ReassemblyConfig::default(),
            udp: UdpConfig::default(),
            icmp: IcmpConfig::default(),
            tcp: TcpConfig::default(),
            tx_queue_packets: 1024,
            tx_queue_bytes: 4 << 20,
            max_sockets: 4096,
            tx_checksum_offload: false,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if !self.mac.is_unicast() {
            return Err(ConfigError::MacNotUnicast);
        }
        // RFC 791: every host must accept 576-byte datagrams; our fragment
        // arithmetic needs at least 68 (RFC 791 "every internet module must
        // be able to forward a datagram of 68 octets without fragmentation").
        if !(68..=65535).contains(&self.mtu) {
            return Err(ConfigError::Mtu(self.mtu));
        }
        let a = self.ipv4.addr;
        if a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback() {
            return Err(ConfigError::Address(a));
        }
        if let Some(gw) = self.gateway {
            if !self.ipv4.contains(gw) || gw == a {
                return Err(ConfigError::Gateway(gw));
            }
        }
        let (lo, hi) = self.udp.ephemeral_ports;
        if lo == 0 || lo > hi {
            return Err(ConfigError::EphemeralPorts(lo, hi));
        }
        if self.tcp.tso_max > 65535 {
            return Err(ConfigError::Mtu(self.tcp.tso_max));
        }
        if self.arp.max_requests == 0 || self.tx_queue_packets == 0 || self.max_sockets == 0 {
            return Err(ConfigError::ZeroLimit);
        }
        Ok(())
    }
}

/// A configuration the stack refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    MacNotUnicast,
    Mtu(usize),
    Address(Ipv4Addr),
    Gateway(Ipv4Addr),
    EphemeralPorts(u16, u16),
    ZeroLimit,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::MacNotUnicast => f.write_str("the MAC address must be unicast and non-zero"),
            ConfigError::Mtu(m) => write!(f, "MTU {m} is outside 68..=65535"),
            ConfigError::Address(a) => write!(f, "{a} cannot be a host address"),
            ConfigError::Gateway(g) => write!(f, "gateway {g} is not another address on the local prefix"),
            ConfigError::EphemeralPorts(lo, hi) => {
                write!(f, "ephemeral port range {lo}-{hi} is empty or includes 0")
            }
            ConfigError::ZeroLimit => f.write_str("queue and retry limits must be at least 1"),
        }
    }
}

impl std::error::Error for ConfigError {}
