//! tapir's [`Interface`] as the stack under test of a segment script.

use super::host::{
    Errno, QueueIoctl, Readiness, ScriptHost, Shutdown, SockOpt, Sysctl, TcpInfo, CONGESTION_ALGORITHMS,
};
use core::net::{Ipv4Addr, SocketAddrV4};
use std::collections::HashSet;
use tapir_stack::{
    Config, Interface, SocketError, SocketHandle, TcpAcceptError, TcpBindError, TcpConnectError,
    TcpListenError, TcpOptionError, TcpRecvError, TcpSendError, TcpShutdownError, TcpSocketError,
};
use tapir_stack::{CongestionAlgorithm, PmtuDiscover, SynCookies, TcpOption, TcpState};
use tapir_stack::{Duration, Instant};

/// An [`Interface`] at 10.77.0.2 (the runner's default) driven by a script.
pub struct TapirHost {
    pub iface: Interface,
    /// Sockets whose non-blocking connect completed and was reported once
    /// (Linux returns 0 to the first connect after completion, then EISCONN).
    connect_reported: HashSet<SocketHandle>,
    connecting: HashSet<SocketHandle>,
    /// Shut down for reading: once the queue is empty, reads return end of
    /// file instead of blocking (Linux RCV_SHUTDOWN).
    read_shut: HashSet<SocketHandle>,
    /// The configuration `iface` was made with; sysctls set before the
    /// first socket change it and remake the interface.
    config: Config,
    /// A socket was made: sysctls can no longer remake the interface.
    sockets_made: bool,
}

impl TapirHost {
    /// The test configuration (tapir 10.77.0.2/24) with Linux-like
    /// defaults, and no pacing: the Linux packetdrill's scripts were
    /// written against paces CUBIC only under the fq qdisc, which a
    /// script's `tc qdisc ... fq` line asks for.
    pub fn new() -> Self {
        let mut config = tapir_stack::testing::config();
        config.tcp.pacing = false;
        Self::with_config(config)
    }

    pub fn with_config(config: Config) -> Self {
        let iface = Interface::new(config.clone()).expect("valid test configuration");
        TapirHost {
            iface,
            config,
            sockets_made: false,
            connect_reported: HashSet::new(),
            connecting: HashSet::new(),
            read_shut: HashSet::new(),
        }
    }

    /// Whether a closed connection has an error pending (POLLERR), without
    /// consuming it as `tcp_take_error` would: on a closed connection an
    /// empty send fails with the pending error, or with `NotConnected`
    /// when there is none, and changes nothing.
    /// Applies a Linux sysctl to the TCP configuration, if tapir has the
    /// knob; `None` if it does not know the name.
    fn apply_sysctl(&mut self, name: &str, value: &str) -> Option<Sysctl> {
        let tcp = &mut self.config.tcp;
        let num = value.trim().parse::<i64>().ok();
        let flag = |want: bool, what: &str| -> Sysctl {
            if num == Some(i64::from(want)) {
                Sysctl::NoEffect(format!(
                    "tapir {} {what}",
                    if want { "always has" } else { "has no" }
                ))
            } else {
                Sysctl::NoEffect(format!(
                    "tapir cannot change this: it {} {what}",
                    if want { "always has" } else { "has no" }
                ))
            }
        };
        let no_mechanism = |what: &str| Sysctl::NoEffect(format!("tapir has no {what}"));
        let short = name.strip_prefix("net.ipv4.").unwrap_or(name);
        Some(match (short, num) {
            ("tcp_timestamps", Some(v)) => {
                tcp.timestamps = v != 0;
                Sysctl::Applied
            }
            ("tcp_sack", Some(v)) => {
                tcp.sack = v != 0;
                Sysctl::Applied
            }
            ("tcp_window_scaling", Some(v)) => {
                tcp.window_scaling = v != 0;
                Sysctl::Applied
            }
            ("tcp_syn_retries", Some(v)) if v > 0 => {
                tcp.syn_retries = v as u32;
                Sysctl::Applied
            }
            ("tcp_synack_retries", Some(v)) if v > 0 => {
                tcp.synack_retries = v as u32;
                Sysctl::Applied
            }
            ("tcp_slow_start_after_idle", Some(v)) => {
                tcp.slow_start_after_idle = v != 0;
                Sysctl::Applied
            }
            ("tcp_syncookies", Some(v @ 0..=2)) => {
                tcp.syn_cookies = match v {
                    0 => SynCookies::Never,
                    1 => SynCookies::WhenFull,
                    _ => SynCookies::Always,
                };
                Sysctl::Applied
            }
            ("tcp_congestion_control", _) => match CongestionAlgorithm::from_name(value.trim()) {
                Some(a) => {
                    tcp.congestion_control = a;
                    Sysctl::Applied
                }
                None => Sysctl::NoEffect(format!("tapir has no congestion control '{value}'")),
            },
            // Linux's HyStart modes (1 ACK train, 2 delay, 3 both); tapir's
            // HyStart++ (RFC 9406) is delay-based.
            ("tcp_cubic.hystart_detect", Some(v)) => {
                tcp.hystart = v != 0;
                Sysctl::Applied
            }
            ("tcp_cubic.hystart", Some(v)) => {
                tcp.hystart = v != 0;
                Sysctl::Applied
            }
            ("tcp_rmem" | "tcp_wmem", _) => {
                let v: Vec<usize> = value.split_whitespace().filter_map(|x| x.parse().ok()).collect();
                let [_, def, max] = v[..] else { return None };
                if short == "tcp_rmem" {
                    tcp.recv_buffer = def;
                    tcp.recv_buffer_max = max;
                } else {
                    tcp.send_buffer = def;
                    tcp.send_buffer_max = max;
                }
                Sysctl::Applied
            }
            ("tcp_dsack", _) => flag(true, "D-SACK generation"),
            ("tcp_fack", _) => flag(false, "FACK"),
            ("tcp_ecn", _) => flag(false, "ECN"),
            ("tcp_reordering", Some(3)) => {
                Sysctl::NoEffect("tapir's duplicate-ACK threshold is 3 (RFC 5681 3.2)".into())
            }
            ("tcp_reordering", _) => {
                Sysctl::NoEffect("tapir cannot change its duplicate-ACK threshold of 3 (RFC 5681 3.2)".into())
            }
            // Linux: any non-zero value turns F-RTO on (the SACK-enhanced
            // algorithm with SACK, the basic one without, RFC 5682).
            ("tcp_frto", Some(v)) => {
                tcp.frto = v != 0;
                Sysctl::Applied
            }
            // Linux: 3 and 4 probe the tail (TLP), below that no probe.
            ("tcp_early_retrans", Some(v)) => {
                tcp.tlp = v >= 3;
                Sysctl::Applied
            }
            // Linux: bit 0 is RACK (1 by default); its other bits tune it.
            ("tcp_recovery", Some(v)) => {
                tcp.rack = v & 1 != 0;
                Sysctl::Applied
            }
            ("tcp_tso_win_divisor" | "tcp_min_tso_segs", _) => {
                no_mechanism("TSO: it sends MSS-sized segments")
            }
            ("tcp_pacing_ss_ratio", Some(v)) if (0..=999).contains(&v) => {
                tcp.pacing_ss_ratio = v as u32;
                Sysctl::Applied
            }
            ("tcp_pacing_ca_ratio", Some(v)) if (0..=999).contains(&v) => {
                tcp.pacing_ca_ratio = v as u32;
                Sysctl::Applied
            }
            // Linux paces CUBIC and Reno under fq (sch_fq), not pfifo.
            ("qdisc", _) => {
                tcp.pacing = value.trim() == "fq";
                Sysctl::Applied
            }
            ("tcp_notsent_lowat", _) => Sysctl::NoEffect("only TCP_NOTSENT_LOWAT sets it, per socket".into()),
            ("tcp_fastopen" | "tcp_fastopen_key", _) => no_mechanism("TCP Fast Open"),
            ("net.mptcp.enabled", _) | ("mptcp.enabled", _) => no_mechanism("MPTCP"),
            _ => return None,
        })
    }

    fn closed_with_error(&mut self, h: SocketHandle) -> bool {
        matches!(self.iface.tcp_send(h, &[]), Err(TcpSendError::Failed(_)))
    }
}

impl Default for TapirHost {
    fn default() -> Self {
        Self::new()
    }
}

/// The errno a Linux socket call gives for each of the stack's errors.
trait ToErrno {
    fn errno(self) -> Errno;
}

fn errno(e: impl ToErrno) -> Errno {
    e.errno()
}

impl ToErrno for TcpSocketError {
    fn errno(self) -> Errno {
        match self {
            TcpSocketError::TooManySockets => Errno::ENOBUFS,
        }
    }
}

impl ToErrno for TcpBindError {
    fn errno(self) -> Errno {
        match self {
            TcpBindError::BadHandle => Errno::EBADF,
            TcpBindError::AddrNotAvailable | TcpBindError::NoFreePort => Errno::EADDRNOTAVAIL,
            TcpBindError::AddrInUse => Errno::EADDRINUSE,
            TcpBindError::AlreadyBound => Errno::EINVAL,
            TcpBindError::AlreadyConnected => Errno::EISCONN,
        }
    }
}

impl ToErrno for TcpListenError {
    fn errno(self) -> Errno {
        match self {
            TcpListenError::BadHandle => Errno::EBADF,
            TcpListenError::NotBound => Errno::EINVAL,
            TcpListenError::AlreadyConnected => Errno::EISCONN,
            TcpListenError::Bind(e) => e.errno(),
            TcpListenError::TooManySockets => Errno::ENOBUFS,
        }
    }
}

impl ToErrno for TcpAcceptError {
    fn errno(self) -> Errno {
        match self {
            TcpAcceptError::BadHandle => Errno::EINVAL,
            TcpAcceptError::WouldBlock => Errno::EAGAIN,
        }
    }
}

impl ToErrno for TcpConnectError {
    fn errno(self) -> Errno {
        match self {
            TcpConnectError::BadHandle => Errno::EBADF,
            TcpConnectError::InvalidAddress => Errno::EINVAL,
            TcpConnectError::NoRoute => Errno::ENETUNREACH,
            TcpConnectError::AddrInUse => Errno::EADDRINUSE,
            TcpConnectError::NoFreePort => Errno::EADDRNOTAVAIL,
            TcpConnectError::InProgress => Errno::EAGAIN,
            TcpConnectError::AlreadyConnected => Errno::EISCONN,
            TcpConnectError::TooManySockets => Errno::ENOBUFS,
        }
    }
}

impl ToErrno for TcpSendError {
    fn errno(self) -> Errno {
        match self {
            TcpSendError::BadHandle => Errno::EBADF,
            TcpSendError::WouldBlock => Errno::EAGAIN,
            TcpSendError::NotConnected => Errno::ENOTCONN,
            TcpSendError::Closed => Errno::EPIPE,
            TcpSendError::Failed(e) => socket_errno(e),
        }
    }
}

impl ToErrno for TcpRecvError {
    fn errno(self) -> Errno {
        match self {
            TcpRecvError::BadHandle => Errno::EBADF,
            TcpRecvError::WouldBlock => Errno::EAGAIN,
            TcpRecvError::Failed(e) => socket_errno(e),
        }
    }
}

impl ToErrno for TcpShutdownError {
    fn errno(self) -> Errno {
        match self {
            TcpShutdownError::NotConnected => Errno::ENOTCONN,
        }
    }
}

impl ToErrno for TcpOptionError {
    fn errno(self) -> Errno {
        match self {
            TcpOptionError::BadHandle => Errno::EBADF,
            TcpOptionError::InvalidValue => Errno::EINVAL,
        }
    }
}

fn socket_errno(e: SocketError) -> Errno {
    match e {
        SocketError::ConnectionRefused => Errno::ECONNREFUSED,
        SocketError::ConnectionReset => Errno::ECONNRESET,
        SocketError::TimedOut => Errno::ETIMEDOUT,
        SocketError::Unreachable { code, .. } => match code {
            tapir_stack::wire::UnreachableCode::Port | tapir_stack::wire::UnreachableCode::Protocol => {
                Errno::ECONNREFUSED
            }
            tapir_stack::wire::UnreachableCode::Net => Errno::ENETUNREACH,
            _ => Errno::EHOSTUNREACH,
        },
        SocketError::TimeExceeded { .. } => Errno::EHOSTUNREACH,
        SocketError::ParameterProblem { .. } => Errno::EPROTOTYPE,
    }
}

fn secs(v: i64) -> Duration {
    Duration::from_secs(v.max(0) as u64)
}

impl ScriptHost for TapirHost {
    type Handle = SocketHandle;

    fn local_ip(&self) -> Ipv4Addr {
        self.iface.ipv4_addr()
    }
    fn local_mac(&self) -> [u8; 6] {
        self.iface.mac().0
    }
    fn handle_frame(&mut self, now: Instant, frame: &[u8]) {
        self.iface.handle_frame(now, frame)
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.iface.handle_timeout(now)
    }
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        self.iface.poll_transmit(now, buf)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.iface.poll_timeout()
    }

    fn socket(&mut self, _now: Instant) -> Result<SocketHandle, Errno> {
        self.sockets_made = true;
        self.iface.tcp_socket().map_err(errno)
    }

    fn bind(&mut self, _now: Instant, h: SocketHandle, port: u16) -> Result<(), Errno> {
        self.iface
            .tcp_bind(h, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port))
            .map_err(errno)
    }

    fn listen(&mut self, _now: Instant, h: SocketHandle, backlog: u32) -> Result<(), Errno> {
        self.iface.tcp_listen_socket(h, backlog as usize).map_err(errno)
    }

    fn accept(&mut self, _now: Instant, h: SocketHandle) -> Result<SocketHandle, Errno> {
        self.iface.tcp_accept(h).map_err(errno)
    }

    fn connect(&mut self, now: Instant, h: SocketHandle, remote: SocketAddrV4) -> Result<(), Errno> {
        if !self.connecting.contains(&h) {
            self.iface.tcp_connect_socket(now, h, remote).map_err(errno)?;
            self.connecting.insert(h);
            return Err(Errno::EINPROGRESS);
        }
        match self.iface.tcp_state(h) {
            Some(TcpState::SynSent | TcpState::SynReceived) => Err(Errno::EALREADY),
            Some(TcpState::Closed) | None => Err(self
                .iface
                .tcp_take_error(h)
                .map(socket_errno)
                .unwrap_or(Errno::ECONNABORTED)),
            Some(_) => {
                if self.connect_reported.insert(h) {
                    Ok(())
                } else {
                    Err(Errno::EISCONN)
                }
            }
        }
    }

    fn write(&mut self, _now: Instant, h: SocketHandle, data: &[u8]) -> Result<usize, Errno> {
        self.iface.tcp_send(h, data).map_err(errno)
    }

    fn read(&mut self, _now: Instant, h: SocketHandle, buf: &mut [u8]) -> Result<usize, Errno> {
        match self.iface.tcp_recv(h, buf).map_err(errno) {
            Err(Errno::EAGAIN) if self.read_shut.contains(&h) => Ok(0),
            r => r,
        }
    }

    fn shutdown(&mut self, _now: Instant, h: SocketHandle, how: Shutdown) -> Result<(), Errno> {
        match how {
            // Reads after SHUT_RD return EOF on Linux; data still arrives.
            Shutdown::Read => match self.iface.tcp_state(h) {
                Some(TcpState::Closed | TcpState::Listen) | None => Err(Errno::ENOTCONN),
                _ => {
                    self.read_shut.insert(h);
                    Ok(())
                }
            },
            Shutdown::Write => self.iface.tcp_shutdown(h).map_err(errno),
            Shutdown::Both => {
                self.iface.tcp_shutdown(h).map_err(errno)?;
                self.read_shut.insert(h);
                Ok(())
            }
        }
    }

    fn close(&mut self, _now: Instant, h: SocketHandle) -> Result<(), Errno> {
        self.connecting.remove(&h);
        self.connect_reported.remove(&h);
        self.read_shut.remove(&h);
        self.iface.tcp_close(h);
        Ok(())
    }

    fn setsockopt(&mut self, now: Instant, h: SocketHandle, opt: SockOpt, value: i64) -> Result<(), Errno> {
        let opt = match opt {
            SockOpt::NoDelay => TcpOption::NoDelay(value != 0),
            SockOpt::KeepAlive => TcpOption::KeepAlive(value != 0),
            SockOpt::KeepIdle => TcpOption::KeepIdle(secs(value)),
            SockOpt::KeepIntvl => TcpOption::KeepInterval(secs(value)),
            SockOpt::KeepCnt => TcpOption::KeepCount(value.clamp(0, i64::from(u32::MAX)) as u32),
            SockOpt::UserTimeout => TcpOption::UserTimeout(Duration::from_millis(value.max(0) as u64)),
            SockOpt::RcvBuf => TcpOption::RecvBuffer(value.max(256) as usize),
            SockOpt::SndBuf => TcpOption::SendBuffer(value.max(256) as usize),
            SockOpt::MaxSeg => TcpOption::MaxSegment(value.clamp(64, 65535) as u16),
            SockOpt::QuickAck => TcpOption::QuickAck(value != 0),
            SockOpt::Cork => TcpOption::Cork(value != 0),
            // Linux: 1 to 127, else EINVAL.
            SockOpt::SynCount if !(1..=127).contains(&value) => return Err(Errno::EINVAL),
            SockOpt::SynCount => TcpOption::SynCount(value as u8),
            SockOpt::DeferAccept => TcpOption::DeferAccept(secs(value.max(0))),
            // Linux: 0 restores the default, a negative value means no
            // FIN-WAIT-2 wait at all.
            SockOpt::Linger2 => TcpOption::Linger2(match value {
                0 => None,
                v if v < 0 => Some(Duration::ZERO),
                v => Some(secs(v)),
            }),
            // Accepted for compatibility; tapir has no address reuse rules
            // that these would relax.
            SockOpt::ReuseAddr | SockOpt::ReusePort => return Ok(()),
            SockOpt::Congestion => TcpOption::Congestion(
                usize::try_from(value)
                    .ok()
                    .and_then(|i| CONGESTION_ALGORITHMS.get(i))
                    .and_then(|name| CongestionAlgorithm::from_name(name))
                    .ok_or(Errno::ENOENT)?,
            ),
            // Linux keeps the low byte (inet->tos is a u8).
            SockOpt::IpTos => TcpOption::Tos(value as u8),
            SockOpt::IpMtuDiscover => {
                TcpOption::PmtuDiscover(PmtuDiscover::from_value(value).ok_or(Errno::EINVAL)?)
            }
            _ => return Err(Errno::ENOPROTOOPT),
        };
        self.iface.tcp_set_option(now, h, opt).map_err(errno)
    }

    fn getsockopt(&mut self, _now: Instant, h: SocketHandle, opt: SockOpt) -> Result<i64, Errno> {
        let probe = match opt {
            SockOpt::NoDelay => TcpOption::NoDelay(false),
            SockOpt::KeepAlive => TcpOption::KeepAlive(false),
            SockOpt::KeepIdle => TcpOption::KeepIdle(Duration::ZERO),
            SockOpt::KeepIntvl => TcpOption::KeepInterval(Duration::ZERO),
            SockOpt::KeepCnt => TcpOption::KeepCount(0),
            SockOpt::UserTimeout => TcpOption::UserTimeout(Duration::ZERO),
            SockOpt::RcvBuf => TcpOption::RecvBuffer(0),
            SockOpt::SndBuf => TcpOption::SendBuffer(0),
            SockOpt::MaxSeg => TcpOption::MaxSegment(0),
            SockOpt::QuickAck => TcpOption::QuickAck(true),
            SockOpt::Cork => TcpOption::Cork(false),
            SockOpt::SynCount => TcpOption::SynCount(0),
            SockOpt::DeferAccept => TcpOption::DeferAccept(Duration::ZERO),
            SockOpt::Linger2 => TcpOption::Linger2(None),
            SockOpt::Congestion => TcpOption::Congestion(CongestionAlgorithm::default()),
            SockOpt::IpTos => TcpOption::Tos(0),
            SockOpt::IpMtuDiscover => TcpOption::PmtuDiscover(PmtuDiscover::default()),
            _ => return Err(Errno::ENOPROTOOPT),
        };
        Ok(match self.iface.tcp_get_option(h, probe).ok_or(Errno::EBADF)? {
            TcpOption::NoDelay(b) | TcpOption::KeepAlive(b) => i64::from(b),
            TcpOption::KeepIdle(d) | TcpOption::KeepInterval(d) => d.as_secs() as i64,
            TcpOption::KeepCount(n) => i64::from(n),
            TcpOption::UserTimeout(d) => d.as_millis() as i64,
            TcpOption::RecvBuffer(n) | TcpOption::SendBuffer(n) => n as i64,
            TcpOption::MaxSegment(n) => i64::from(n),
            TcpOption::QuickAck(b) | TcpOption::Cork(b) => i64::from(b),
            TcpOption::SynCount(n) => i64::from(n),
            TcpOption::DeferAccept(d) => d.as_secs() as i64,
            TcpOption::Linger2(d) => d.map_or(0, |d| d.as_secs() as i64),
            TcpOption::Congestion(a) => CONGESTION_ALGORITHMS
                .iter()
                .position(|&n| n == a.name())
                .map_or(-1, |i| i as i64),
            TcpOption::Tos(t) => i64::from(t),
            TcpOption::PmtuDiscover(m) => m.value(),
        })
    }

    fn take_error(&mut self, _now: Instant, h: SocketHandle) -> Option<Errno> {
        self.iface.tcp_take_error(h).map(socket_errno)
    }

    /// Linux's `tcp_poll`: a connection that ended (reset, timed out,
    /// refused) has both directions shut down, so it reports POLLIN|RDHUP
    /// and POLLOUT besides POLLHUP (and POLLERR while the error is pending);
    /// a socket that sent its FIN reports POLLOUT (the write fails at once).
    /// Linux tcp_ioctl: `EINVAL` on a listener, 0 during the handshake.
    fn queue_size(&mut self, _now: Instant, h: SocketHandle, q: QueueIoctl) -> Result<i64, Errno> {
        match self.iface.tcp_state(h) {
            None => return Err(Errno::EBADF),
            Some(TcpState::Listen) => return Err(Errno::EINVAL),
            Some(TcpState::SynSent | TcpState::SynReceived) => return Ok(0),
            _ => {}
        }
        Ok(match q {
            QueueIoctl::InQ => self.iface.tcp_recv_queue(h),
            QueueIoctl::OutQ => self.iface.tcp_send_queue(h),
            QueueIoctl::OutQNotSent => self.iface.tcp_unsent(h),
        } as i64)
    }

    fn readiness(&mut self, _now: Instant, h: SocketHandle) -> Readiness {
        let state = self.iface.tcp_state(h);
        let closed = state == Some(TcpState::Closed);
        let ended = closed && self.iface.tcp_stats(h).is_some();
        let send_shutdown = matches!(
            state,
            Some(
                TcpState::FinWait1
                    | TcpState::FinWait2
                    | TcpState::Closing
                    | TcpState::LastAck
                    | TcpState::TimeWait
            )
        );
        Readiness {
            readable: self.iface.tcp_can_recv(h)
                || self.iface.tcp_can_accept(h)
                || self.read_shut.contains(&h),
            writable: closed
                || send_shutdown
                || matches!(state, Some(TcpState::Established | TcpState::CloseWait))
                    && self.iface.tcp_send_capacity(h) > 0,
            error: ended && self.closed_with_error(h),
            hangup: closed,
            read_hangup: ended
                || self.read_shut.contains(&h)
                || matches!(
                    state,
                    Some(TcpState::CloseWait | TcpState::LastAck | TcpState::Closing | TcpState::TimeWait)
                ),
        }
    }

    /// Linux sysctls, applied to the configuration while no socket exists
    /// (packetdrill's scripts set them first). tapir's TCP never reads a
    /// changed configuration in the middle of a connection.
    fn sysctl(&mut self, _now: Instant, name: &str, value: &str) -> Sysctl {
        let before = self.config.clone();
        let Some(result) = self.apply_sysctl(name, value) else {
            return Sysctl::Unknown;
        };
        if result == Sysctl::Applied {
            if self.sockets_made {
                self.config = before;
                return Sysctl::NoEffect(
                    "set after the first socket: tapir applies sysctls only before".into(),
                );
            }
            match Interface::new(self.config.clone()) {
                Ok(iface) => self.iface = iface,
                Err(_) => {
                    self.config = before;
                    return Sysctl::NoEffect(format!("the value '{value}' makes an invalid configuration"));
                }
            }
        }
        result
    }

    /// TCP_INFO from the connection's counters, in Linux's units: windows
    /// and counts in segments of the current MSS, times in microseconds.
    /// tapir keeps no count of segments marked lost (Linux lost_out counts
    /// retransmitted ones too), retransmitted-and-unacknowledged segments
    /// (retrans_out), reordering degree or minimum RTT, so `tcpi_lost`,
    /// `tcpi_retrans`, `tcpi_reordering`, `tcpi_reord_seen` and
    /// `tcpi_min_rtt` are not reported; a snippet that reads them fails.
    fn tcp_info(&mut self, _now: Instant, h: SocketHandle) -> Result<TcpInfo, Errno> {
        let s = self.iface.tcp_stats(h).ok_or(Errno::EBADF)?;
        let mss = s.mss.max(1);
        let segs = |bytes: usize| bytes.div_ceil(mss) as i64;
        let us = |d: Duration| d.as_micros() as i64;
        Ok(vec![
            ("snd_mss", mss as i64),
            // Linux counts cwnd in whole segments.
            ("snd_cwnd", (s.cwnd / mss) as i64),
            (
                "snd_ssthresh",
                if s.ssthresh >= 0x7fff_ffff {
                    0x7fff_ffff // TCP_INFINITE_SSTHRESH
                } else {
                    (s.ssthresh / mss) as i64
                },
            ),
            // TCP_CA_Open / TCP_CA_Recovery: tapir has no Disorder, CWR or
            // Loss state to report.
            (
                "ca_state",
                // Linux's TCP_CA_Recovery 3, TCP_CA_Loss 4, else Open 0.
                match s.recovery {
                    "recovery" => 3,
                    "loss" => 4,
                    _ => 0,
                },
            ),
            ("unacked", segs(s.snd_nxt.wrapping_sub(s.snd_una) as usize)),
            ("sacked", segs(s.sacked_bytes)),
            ("total_retrans", s.retransmits as i64),
            ("rtt", s.srtt.map_or(0, us)),
            ("rttvar", us(s.rttvar)),
            ("rto", us(s.rto)),
        ])
    }
}
