//! TCP (RFC 9293), all of it. Read RFC 9293 section 3.10 first: `conn`
//! follows its "Event Processing" step by step, and cites it as it goes.
//!
//! - `table`: the sockets of TCP: demultiplexing by 4-tuple, RFC 6528
//!   ISNs, RFC 6056 ports, the RFC 5961 7 budget, RSTs for segments to
//!   nobody (RFC 9293 3.10.7.1), timers and the output queue.
//! - `api`: the socket calls (OPEN, SEND, RECEIVE, CLOSE, ABORT, STATUS).
//! - `error`: one error enum per call.
//! - `listener`: LISTEN, with its SYN and accept queues.
//! - `time_wait`: TIME-WAIT, one compact entry per 4-tuple, whether or
//!   not the application still holds the socket.
//! - `conn`: one connection: the state machine, reliable delivery, flow
//!   control, timers.
//! - `rtt`: the RFC 6298 estimator.
//! - `cc/`: congestion control behind a trait (`mod.rs`), one file per
//!   controller (`reno.rs` first).
//! - `seq`: sequence-number arithmetic modulo 2^32.
//! - `trace`: a connection's timeline, recorded on request, for plots.
//!
//! Nothing here knows the interface: `iface::tcp` parses segments and
//! hands them to the table, and emits the segments the table returns.

pub(crate) mod api;
pub(crate) mod cc;
pub(crate) mod conn;
mod deadlines;
mod error;
pub(crate) mod listener;
pub(crate) mod pacing;
pub(crate) mod recovery;
mod requests;
pub(crate) mod rtt;
pub(crate) mod seq;
pub(crate) mod table;
pub(crate) mod time_wait;
pub(crate) mod trace;

pub use cc::{CongestionAlgorithm, UnknownAlgorithm};
pub use error::{
    TcpAcceptError, TcpBindError, TcpConnectError, TcpListenError, TcpOptionError, TcpRecvError,
    TcpSendError, TcpShutdownError, TcpSocketError,
};
pub(crate) use table::TcpSocket;
pub use trace::{ConnTrace, TraceSample, DEFAULT_TRACE_CAPACITY};

use crate::time::Duration;
use core::fmt;

/// The connection states of RFC 9293 3.3.2, printed with the RFC's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpState {
    Closed,
    Listen,
    SynSent,
    SynReceived,
    Established,
    FinWait1,
    FinWait2,
    CloseWait,
    Closing,
    LastAck,
    TimeWait,
}

impl fmt::Display for TcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TcpState::Closed => "CLOSED",
            TcpState::Listen => "LISTEN",
            TcpState::SynSent => "SYN-SENT",
            TcpState::SynReceived => "SYN-RECEIVED",
            TcpState::Established => "ESTABLISHED",
            TcpState::FinWait1 => "FIN-WAIT-1",
            TcpState::FinWait2 => "FIN-WAIT-2",
            TcpState::CloseWait => "CLOSE-WAIT",
            TcpState::Closing => "CLOSING",
            TcpState::LastAck => "LAST-ACK",
            TcpState::TimeWait => "TIME-WAIT",
        })
    }
}

impl TcpState {
    /// RFC 9293 3.3.2: the states after the handshake completed.
    pub fn is_synchronized(self) -> bool {
        !matches!(
            self,
            TcpState::Closed | TcpState::Listen | TcpState::SynSent | TcpState::SynReceived
        )
    }
}

/// Per-socket options (the `setsockopt` of tapir).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOption {
    /// Disable Nagle's algorithm (TCP_NODELAY).
    NoDelay(bool),
    /// SO_KEEPALIVE.
    KeepAlive(bool),
    /// TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT.
    KeepIdle(Duration),
    KeepInterval(Duration),
    KeepCount(u32),
    /// TCP_USER_TIMEOUT (RFC 5482): abort when data stays unacknowledged this
    /// long. Zero turns it off.
    UserTimeout(Duration),
    /// SO_RCVBUF / SO_SNDBUF, in bytes.
    RecvBuffer(usize),
    SendBuffer(usize),
    /// TCP_MAXSEG: a ceiling on the MSS we advertise and send with.
    MaxSegment(u16),
    /// TCP_QUICKACK. `false` enters interactive ("ping-pong") mode, where
    /// ACKs wait for the delayed-ACK timer or for data to ride on, until the
    /// timer first fires; `true` leaves it and sends a pending ACK now.
    /// Reads back `true` when not in ping-pong mode (Linux semantics).
    QuickAck(bool),
    /// TCP_LINGER2: how long a closed connection waits in FIN-WAIT-2 for
    /// the peer's FIN. `None` uses the configured default
    /// (`TcpConfig::fin_wait2_timeout`).
    Linger2(Option<Duration>),
    /// TCP_DEFER_ACCEPT (a listener's option, Linux): a handshake's final
    /// ACK without data does not complete the connection; the connection
    /// waits in SYN-RECEIVED for the first data for about this long,
    /// counted in SYN-ACK timeouts (1 s, 2 s, 4 s, ...), then resends the
    /// SYN-ACK once as a last chance and completes on the next ACK. Zero
    /// turns it off. Reads back rounded up to a whole number of timeouts.
    DeferAccept(Duration),
    /// TCP_CORK (Linux): hold partial segments until uncorked, the FIN
    /// goes, or the persist timer's override timeout (about the RTO, at
    /// least 200 ms) sends them anyway.
    Cork(bool),
    /// TCP_SYNCNT: SYN retransmissions before connect gives up (1-127).
    SynCount(u8),
    /// TCP_CONGESTION: the congestion control algorithm. Set once data has
    /// flowed, the new one starts from the current window (Linux).
    Congestion(CongestionAlgorithm),
    /// IP_TOS: the TOS byte of the connection's IPv4 headers (RFC 2474's
    /// DSCP). As Linux for stream sockets, the two ECN bits (RFC 3168) stay
    /// TCP's own: tapir does not negotiate ECN, so they are always 0 and a
    /// value read back has them clear. A listener's value is its
    /// connections' (and their SYN-ACKs').
    Tos(u8),
    /// IP_MTU_DISCOVER: whether segments carry DF and path MTU messages
    /// lower the MSS.
    PmtuDiscover(PmtuDiscover),
}

/// IP_MTU_DISCOVER's modes, with Linux's values and meaning for TCP
/// (`ip_dont_fragment`, `tcp_v4_mtu_reduced`, `ip_sk_accept_pmtu`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PmtuDiscover {
    /// IP_PMTUDISC_DONT (0): no DF; "fragmentation needed" is ignored, so
    /// a router on a smaller path fragments what it forwards.
    Dont,
    /// IP_PMTUDISC_WANT (1), the default: DF set, path MTU discovery (RFC
    /// 1191) lowers the MSS.
    #[default]
    Want,
    /// IP_PMTUDISC_DO (2): the same as `Want` for TCP.
    Do,
    /// IP_PMTUDISC_PROBE (3): no DF on TCP segments (Linux sets it only on
    /// datagrams in this mode); path MTU messages still lower the MSS.
    Probe,
    /// IP_PMTUDISC_INTERFACE (4): no DF; the interface's MTU only, path
    /// MTU messages ignored.
    Interface,
    /// IP_PMTUDISC_OMIT (5): as `Interface` for TCP.
    Omit,
}

impl PmtuDiscover {
    /// From Linux's value; `None` for one it refuses with EINVAL.
    pub fn from_value(v: i64) -> Option<PmtuDiscover> {
        Some(match v {
            0 => PmtuDiscover::Dont,
            1 => PmtuDiscover::Want,
            2 => PmtuDiscover::Do,
            3 => PmtuDiscover::Probe,
            4 => PmtuDiscover::Interface,
            5 => PmtuDiscover::Omit,
            _ => return None,
        })
    }

    /// Linux's value.
    pub fn value(self) -> i64 {
        self as i64
    }

    /// Whether TCP segments carry DF (Linux `ip_dont_fragment`: DO, or WANT
    /// on a route whose MTU is not locked; tapir locks none).
    pub fn dont_fragment(self) -> bool {
        matches!(self, PmtuDiscover::Want | PmtuDiscover::Do)
    }

    /// Whether a "fragmentation needed" lowers the connection's MSS
    /// (Linux `tcp_v4_mtu_reduced`: not in DONT, nor where
    /// `ip_sk_accept_pmtu` refuses, INTERFACE and OMIT).
    pub fn accepts_path_mtu(self) -> bool {
        !matches!(
            self,
            PmtuDiscover::Dont | PmtuDiscover::Interface | PmtuDiscover::Omit
        )
    }
}

impl TcpOption {
    /// Whether Linux's setsockopt would take this value (else EINVAL).
    /// Keepalive times are whole seconds there, 1 to 32767
    /// (MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL): a zero time would re-arm
    /// the keepalive timer at the instant it fires, forever. Probe counts
    /// are 1 to 127 (MAX_TCP_KEEPCNT).
    pub fn in_range(&self) -> bool {
        const KEEPALIVE_TIME: core::ops::RangeInclusive<Duration> =
            Duration::from_secs(1)..=Duration::from_secs(32767);
        match *self {
            TcpOption::KeepIdle(d) | TcpOption::KeepInterval(d) => KEEPALIVE_TIME.contains(&d),
            TcpOption::KeepCount(n) => (1..=127).contains(&n),
            TcpOption::SynCount(n) => (1..=127).contains(&n),
            _ => true,
        }
    }

    /// The value as the socket keeps it: IP_TOS's ECN bits cleared
    /// (Linux `__ip_sock_set_tos` keeps a stream socket's own, which for
    /// tapir are 0).
    pub(crate) fn kept(self) -> TcpOption {
        match self {
            TcpOption::Tos(tos) => TcpOption::Tos(tos & !ECN_MASK),
            o => o,
        }
    }
}

/// RFC 3168 5: the ECN field, the TOS byte's two low bits.
const ECN_MASK: u8 = 0b11;

/// What `ss -ti` shows for a Linux connection, for one of ours.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcpConnStats {
    pub state: Option<TcpState>,
    pub snd_una: u32,
    pub snd_nxt: u32,
    pub snd_wnd: usize,
    pub rcv_nxt: u32,
    pub rcv_wnd: usize,
    /// Payload of a full segment (MSS less TCP options in every segment,
    /// as Linux's mss_cache).
    pub mss: usize,
    pub srtt: Option<Duration>,
    pub rttvar: Duration,
    pub rto: Duration,
    pub cwnd: usize,
    pub ssthresh: usize,
    pub bytes_in_flight: usize,
    /// Fast recoveries entered (Linux TCPSackRecovery + TCPRenoRecovery).
    pub fast_recoveries: u64,
    pub segs_out: u64,
    pub segs_in: u64,
    pub retransmits: u64,
    pub dup_acks_in: u64,
    pub ooo_bytes: usize,
    /// Separate out-of-order ranges held (holes behind them: one each).
    pub ooo_ranges: usize,
    pub zero_window_probes: u64,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    /// ACKs not sent to unacceptable segments because of
    /// `TcpConfig::invalid_ratelimit` (Linux TCPACKSkipped*).
    pub acks_rate_limited: u64,
    pub congestion_control: &'static str,
    /// Bytes above SND.UNA the peer reported holding (SACK scoreboard).
    pub sacked_bytes: usize,
    /// Bytes marked lost and not yet retransmitted.
    pub lost_bytes: usize,
    /// The sender's loss-recovery state: "open", "recovery" (fast
    /// recovery), or "loss" (retransmitting after a timeout).
    pub recovery: &'static str,
    /// Out-of-order segments dropped because `TcpConfig::max_ooo_bytes_total`
    /// was reached.
    pub ooo_budget_drops: u64,
    /// Out-of-order segments dropped because they would have opened one
    /// more separate range than `TcpConfig::max_ooo_ranges`.
    pub ooo_range_drops: u64,
    /// D-SACK blocks received (RFC 2883; Linux TCPDSACKRecv and
    /// TCPDSACKOfoRecv).
    pub dsack_recv: u64,
    /// Reductions undone because every retransmission was D-SACKed (RFC
    /// 3708; Linux TCPDSACKUndo, and TCPFullUndo/TCPLossUndo for this
    /// reason).
    pub dsack_undo: u64,
    /// Reductions undone by the timestamp echo (RFC 3522 Eifel; Linux
    /// TCPPartialUndo, TCPFullUndo, TCPLossUndo for this reason).
    pub ts_undo: u64,
    /// Timeouts F-RTO found spurious (RFC 5682; Linux TCPSpuriousRTOs).
    pub frto_spurious: u64,
}

impl fmt::Display for TcpConnStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        write!(
            f,
            "{} {} mss:{} rto:{:.0} rtt:{}/{:.1} cwnd:{} ssthresh:{} snd_una:{} snd_nxt:{} snd_wnd:{} \
             rcv_nxt:{} rcv_wnd:{} inflight:{} segs_out:{} segs_in:{} retrans:{} dupacks:{} ooo:{} probes:{}",
            self.state.map(|s| s.to_string()).unwrap_or_default(),
            self.congestion_control,
            self.mss,
            ms(self.rto),
            self.srtt
                .map(|s| format!("{:.1}", ms(s)))
                .unwrap_or_else(|| "-".into()),
            ms(self.rttvar),
            self.cwnd,
            if self.ssthresh == usize::MAX {
                "inf".to_string()
            } else {
                self.ssthresh.to_string()
            },
            self.snd_una,
            self.snd_nxt,
            self.snd_wnd,
            self.rcv_nxt,
            self.rcv_wnd,
            self.bytes_in_flight,
            self.segs_out,
            self.segs_in,
            self.retransmits,
            self.dup_acks_in,
            self.ooo_bytes,
            self.zero_window_probes,
        )
    }
}
