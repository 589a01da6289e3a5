//! What the script runner needs from a stack under test.
//!
//! The runner drives the stack the way packetdrill drives a kernel: it
//! injects frames from a scripted peer, collects the frames the stack sends,
//! advances a virtual clock, and makes one socket call per script syscall.
//! Every socket call here is non-blocking; the runner builds packetdrill's
//! blocking semantics on top by retrying a call that returned
//! [`Errno::EAGAIN`] / [`Errno::EINPROGRESS`] after time moves or frames
//! arrive (see `runner/mod.rs`).

use core::fmt;
use core::net::{Ipv4Addr, SocketAddrV4};

use tapir_stack::Instant;

/// A script's file descriptor number (`socket(...) = 3`).
pub type Fd = i32;

/// The errors a socket call can fail with, named and numbered as on Linux,
/// because scripts name them (`= -1 ECONNREFUSED (Connection refused)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(clippy::upper_case_acronyms)]
pub enum Errno {
    EPERM,
    ENOENT,
    EINTR,
    EBADF,
    EAGAIN,
    ENOMEM,
    EACCES,
    EFAULT,
    EINVAL,
    ENOTTY,
    ENOSPC,
    EPIPE,
    ENOTSOCK,
    EDESTADDRREQ,
    EMSGSIZE,
    EPROTOTYPE,
    ENOPROTOOPT,
    EPROTONOSUPPORT,
    EOPNOTSUPP,
    EAFNOSUPPORT,
    EADDRINUSE,
    EADDRNOTAVAIL,
    ENETDOWN,
    ENETUNREACH,
    ECONNABORTED,
    ECONNRESET,
    ENOBUFS,
    EISCONN,
    ENOTCONN,
    ESHUTDOWN,
    ETIMEDOUT,
    ECONNREFUSED,
    EHOSTUNREACH,
    EALREADY,
    EINPROGRESS,
}

impl Errno {
    /// Every value, for lookups by name or number.
    pub const ALL: [Errno; 35] = [
        Errno::EPERM,
        Errno::ENOENT,
        Errno::EINTR,
        Errno::EBADF,
        Errno::EAGAIN,
        Errno::ENOMEM,
        Errno::EACCES,
        Errno::EFAULT,
        Errno::EINVAL,
        Errno::ENOTTY,
        Errno::ENOSPC,
        Errno::EPIPE,
        Errno::ENOTSOCK,
        Errno::EDESTADDRREQ,
        Errno::EMSGSIZE,
        Errno::EPROTOTYPE,
        Errno::ENOPROTOOPT,
        Errno::EPROTONOSUPPORT,
        Errno::EOPNOTSUPP,
        Errno::EAFNOSUPPORT,
        Errno::EADDRINUSE,
        Errno::EADDRNOTAVAIL,
        Errno::ENETDOWN,
        Errno::ENETUNREACH,
        Errno::ECONNABORTED,
        Errno::ECONNRESET,
        Errno::ENOBUFS,
        Errno::EISCONN,
        Errno::ENOTCONN,
        Errno::ESHUTDOWN,
        Errno::ETIMEDOUT,
        Errno::ECONNREFUSED,
        Errno::EHOSTUNREACH,
        Errno::EALREADY,
        Errno::EINPROGRESS,
    ];

    /// The Linux errno number (what `getsockopt(SO_ERROR)` reports).
    pub const fn code(self) -> i64 {
        match self {
            Errno::EPERM => 1,
            Errno::ENOENT => 2,
            Errno::EINTR => 4,
            Errno::EBADF => 9,
            Errno::EAGAIN => 11,
            Errno::ENOMEM => 12,
            Errno::EACCES => 13,
            Errno::EFAULT => 14,
            Errno::EINVAL => 22,
            Errno::ENOTTY => 25,
            Errno::ENOSPC => 28,
            Errno::EPIPE => 32,
            Errno::ENOTSOCK => 88,
            Errno::EDESTADDRREQ => 89,
            Errno::EMSGSIZE => 90,
            Errno::EPROTOTYPE => 91,
            Errno::ENOPROTOOPT => 92,
            Errno::EPROTONOSUPPORT => 93,
            Errno::EOPNOTSUPP => 95,
            Errno::EAFNOSUPPORT => 97,
            Errno::EADDRINUSE => 98,
            Errno::EADDRNOTAVAIL => 99,
            Errno::ENETDOWN => 100,
            Errno::ENETUNREACH => 101,
            Errno::ECONNABORTED => 103,
            Errno::ECONNRESET => 104,
            Errno::ENOBUFS => 105,
            Errno::EISCONN => 106,
            Errno::ENOTCONN => 107,
            Errno::ESHUTDOWN => 108,
            Errno::ETIMEDOUT => 110,
            Errno::ECONNREFUSED => 111,
            Errno::EHOSTUNREACH => 113,
            Errno::EALREADY => 114,
            Errno::EINPROGRESS => 115,
        }
    }

    /// The value with Linux errno number `code`.
    pub fn from_code(code: i64) -> Option<Errno> {
        Errno::ALL.into_iter().find(|e| e.code() == code)
    }

    /// Looks up a script's errno name; `EWOULDBLOCK` and `ENOTSUP` are the
    /// Linux aliases of `EAGAIN` and `EOPNOTSUPP`.
    pub fn from_name(name: &str) -> Option<Errno> {
        match name {
            "EWOULDBLOCK" => Some(Errno::EAGAIN),
            "ENOTSUP" => Some(Errno::EOPNOTSUPP),
            _ => Errno::ALL.into_iter().find(|e| e.name() == name),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Errno::EPERM => "EPERM",
            Errno::ENOENT => "ENOENT",
            Errno::EINTR => "EINTR",
            Errno::EBADF => "EBADF",
            Errno::EAGAIN => "EAGAIN",
            Errno::ENOMEM => "ENOMEM",
            Errno::EACCES => "EACCES",
            Errno::EFAULT => "EFAULT",
            Errno::EINVAL => "EINVAL",
            Errno::ENOTTY => "ENOTTY",
            Errno::ENOSPC => "ENOSPC",
            Errno::EPIPE => "EPIPE",
            Errno::ENOTSOCK => "ENOTSOCK",
            Errno::EDESTADDRREQ => "EDESTADDRREQ",
            Errno::EMSGSIZE => "EMSGSIZE",
            Errno::EPROTOTYPE => "EPROTOTYPE",
            Errno::ENOPROTOOPT => "ENOPROTOOPT",
            Errno::EPROTONOSUPPORT => "EPROTONOSUPPORT",
            Errno::EOPNOTSUPP => "EOPNOTSUPP",
            Errno::EAFNOSUPPORT => "EAFNOSUPPORT",
            Errno::EADDRINUSE => "EADDRINUSE",
            Errno::EADDRNOTAVAIL => "EADDRNOTAVAIL",
            Errno::ENETDOWN => "ENETDOWN",
            Errno::ENETUNREACH => "ENETUNREACH",
            Errno::ECONNABORTED => "ECONNABORTED",
            Errno::ECONNRESET => "ECONNRESET",
            Errno::ENOBUFS => "ENOBUFS",
            Errno::EISCONN => "EISCONN",
            Errno::ENOTCONN => "ENOTCONN",
            Errno::ESHUTDOWN => "ESHUTDOWN",
            Errno::ETIMEDOUT => "ETIMEDOUT",
            Errno::ECONNREFUSED => "ECONNREFUSED",
            Errno::EHOSTUNREACH => "EHOSTUNREACH",
            Errno::EALREADY => "EALREADY",
            Errno::EINPROGRESS => "EINPROGRESS",
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Socket options scripts set and read, with values in the units the Linux
/// API uses (bytes, seconds for the keepalive times and `Linger`/`Linger2`,
/// milliseconds for `UserTimeout`, 0/1 for booleans).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SockOpt {
    /// SO_REUSEADDR
    ReuseAddr,
    /// SO_REUSEPORT
    ReusePort,
    /// SO_KEEPALIVE
    KeepAlive,
    /// SO_SNDBUF
    SndBuf,
    /// SO_RCVBUF
    RcvBuf,
    /// SO_LINGER: a negative value means off, otherwise the linger time in
    /// seconds (`{onoff=1, linger=0}` is 0: close sends a RST).
    Linger,
    /// TCP_NODELAY
    NoDelay,
    /// TCP_MAXSEG
    MaxSeg,
    /// TCP_CORK
    Cork,
    /// TCP_KEEPIDLE
    KeepIdle,
    /// TCP_KEEPINTVL
    KeepIntvl,
    /// TCP_KEEPCNT
    KeepCnt,
    /// TCP_SYNCNT
    SynCount,
    /// TCP_LINGER2 (FIN_WAIT_2 timeout)
    Linger2,
    /// TCP_DEFER_ACCEPT
    DeferAccept,
    /// TCP_WINDOW_CLAMP
    WindowClamp,
    /// TCP_QUICKACK
    QuickAck,
    /// TCP_USER_TIMEOUT
    UserTimeout,
    /// TCP_NOTSENT_LOWAT
    NotSentLowat,
    /// TCP_CONGESTION: the algorithm, as its index in
    /// [`CONGESTION_ALGORITHMS`] (scripts give the name; one not in the
    /// list is -1, which a host refuses with ENOENT, as Linux).
    Congestion,
    /// IP_TOS (SOL_IP)
    IpTos,
    /// IP_MTU_DISCOVER (SOL_IP): IP_PMTUDISC_DONT, _WANT, _DO, _PROBE.
    IpMtuDiscover,
}

/// The TCP_CONGESTION names scripts may use (Linux's).
pub const CONGESTION_ALGORITHMS: &[&str] = &["reno", "cubic"];

/// What a host did with a `sysctl` a script's shell line sets (the runner
/// reads `sysctl`, `echo V > /proc/sys/...` and packetdrill's
/// `set_sysctls.py` out of shell lines; it never runs a shell).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sysctl {
    /// The host now behaves as the setting asks.
    Applied,
    /// Accepted without changing anything, and why: the host already
    /// behaves so, the knob concerns a mechanism the host does not have
    /// (TSO, a qdisc), or the host cannot do what it asks (the runner
    /// reports that as a warning; the script's packets then show it).
    NoEffect(String),
    /// The host does not know the name: the shell line counts as skipped.
    Unknown,
}

/// Linux's TCP_INFO fields a host can report to a script's `%{ }%`
/// snippets, by their `tcpi_` names without the prefix, in Linux's units
/// (segments for windows and counts, microseconds for times).
pub type TcpInfo = Vec<(&'static str, i64)>;

/// The queue sizes `ioctl()` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueIoctl {
    /// SIOCINQ / FIONREAD: bytes ready to read.
    InQ,
    /// SIOCOUTQ / TIOCOUTQ: bytes written and not yet acknowledged.
    OutQ,
    /// SIOCOUTQNSD: bytes written and not yet sent.
    OutQNotSent,
}

/// `shutdown()`'s `how`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    Read,
    Write,
    Both,
}

/// A socket's state as `poll()` reports it (Linux `tcp_poll` semantics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Readiness {
    /// POLLIN: data to read, the peer's FIN received, or (listener) a
    /// connection ready to accept.
    pub readable: bool,
    /// POLLOUT: connected and room in the send buffer.
    pub writable: bool,
    /// POLLERR: a pending socket error (the one `take_error` would return).
    pub error: bool,
    /// POLLHUP: both directions shut down, or the connection is closed or
    /// reset.
    pub hangup: bool,
    /// POLLRDHUP: the peer's FIN received.
    pub read_hangup: bool,
}

/// A stack under test, seen from a packetdrill script.
///
/// Time only moves when the runner says so: every call carries the virtual
/// `now`, which never decreases. The stack's address is `local_ip()`; the
/// scripted peer is another host on the same link (10.77.0.1 by default)
/// that answers ARP.
pub trait ScriptHost {
    /// Names a socket (listener or connection).
    type Handle: Copy + Eq + fmt::Debug;

    /// The stack's IPv4 address.
    fn local_ip(&self) -> Ipv4Addr;
    /// The stack's MAC address; injected frames are sent to it.
    fn local_mac(&self) -> [u8; 6];
    /// One Ethernet frame from the link (no FCS).
    fn handle_frame(&mut self, now: Instant, frame: &[u8]);
    /// Time has reached `now`: run due timers.
    fn handle_timeout(&mut self, now: Instant);
    /// The next frame the stack wants to send, written to `buf` (64 KiB);
    /// returns its length, or `None` when nothing is queued.
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize>;
    /// When `handle_timeout` should next be called, if ever.
    fn poll_timeout(&self) -> Option<Instant>;

    /// A new, unbound TCP socket.
    fn socket(&mut self, now: Instant) -> Result<Self::Handle, Errno>;
    /// Binds to `port` on `local_ip()`.
    fn bind(&mut self, now: Instant, h: Self::Handle, port: u16) -> Result<(), Errno>;
    fn listen(&mut self, now: Instant, h: Self::Handle, backlog: u32) -> Result<(), Errno>;
    /// A connection from the listener's accept queue; `EAGAIN` when none is
    /// ready.
    fn accept(&mut self, now: Instant, h: Self::Handle) -> Result<Self::Handle, Errno>;
    /// Starts an active open (binding an ephemeral port if unbound) and
    /// returns `EINPROGRESS`. Later calls on the same socket: `EALREADY`
    /// while the handshake is in progress, `Ok` (or `EISCONN`) once
    /// established, and the failure (`ECONNREFUSED`, `ETIMEDOUT`, ...) once
    /// it failed.
    fn connect(&mut self, now: Instant, h: Self::Handle, remote: SocketAddrV4) -> Result<(), Errno>;
    /// Queues as much of `data` as fits; `EAGAIN` when nothing fits, `EPIPE`
    /// after shutdown(WR), the connection's error once it failed.
    fn write(&mut self, now: Instant, h: Self::Handle, data: &[u8]) -> Result<usize, Errno>;
    /// Reads into `buf`; `EAGAIN` when nothing is there yet, `Ok(0)` after
    /// the peer's FIN, the connection's error (`ECONNRESET`, ...) once it
    /// failed.
    fn read(&mut self, now: Instant, h: Self::Handle, buf: &mut [u8]) -> Result<usize, Errno>;
    fn shutdown(&mut self, now: Instant, h: Self::Handle, how: Shutdown) -> Result<(), Errno>;
    /// Releases the handle (the connection may live on to finish closing).
    fn close(&mut self, now: Instant, h: Self::Handle) -> Result<(), Errno>;
    /// `ENOPROTOOPT` for options the stack does not implement.
    fn setsockopt(&mut self, now: Instant, h: Self::Handle, opt: SockOpt, value: i64) -> Result<(), Errno>;
    fn getsockopt(&mut self, now: Instant, h: Self::Handle, opt: SockOpt) -> Result<i64, Errno>;
    /// SO_ERROR: returns and clears the pending socket error.
    fn take_error(&mut self, now: Instant, h: Self::Handle) -> Option<Errno>;
    /// What `poll()` would report for the socket now.
    fn readiness(&mut self, now: Instant, h: Self::Handle) -> Readiness;
    /// `ioctl()` for a queue size (Linux semantics: `EINVAL` on a
    /// listener, 0 during the handshake).
    fn queue_size(&mut self, _now: Instant, _h: Self::Handle, _q: QueueIoctl) -> Result<i64, Errno> {
        Err(Errno::ENOTTY)
    }
    /// Sets a sysctl (`name` dotted, as `net.ipv4.tcp_sack`; `value` as
    /// written). Called before the script's first socket exists when the
    /// script sets it up front, as packetdrill's do. A `tc qdisc ... root
    /// KIND` line comes here too, as `qdisc` = `fq` or `pfifo`.
    fn sysctl(&mut self, _now: Instant, _name: &str, _value: &str) -> Sysctl {
        Sysctl::Unknown
    }
    /// getsockopt(TCP_INFO), for `%{ }%` snippets; `ENOPROTOOPT` (the
    /// default) makes the runner skip snippets, as it did before.
    fn tcp_info(&mut self, _now: Instant, _h: Self::Handle) -> Result<TcpInfo, Errno> {
        Err(Errno::ENOPROTOOPT)
    }
}

/// Lets a script run against a borrowed stack, so a test can inspect the
/// stack afterwards.
impl<T: ScriptHost + ?Sized> ScriptHost for &mut T {
    type Handle = T::Handle;

    fn local_ip(&self) -> Ipv4Addr {
        (**self).local_ip()
    }
    fn local_mac(&self) -> [u8; 6] {
        (**self).local_mac()
    }
    fn handle_frame(&mut self, now: Instant, frame: &[u8]) {
        (**self).handle_frame(now, frame)
    }
    fn handle_timeout(&mut self, now: Instant) {
        (**self).handle_timeout(now)
    }
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        (**self).poll_transmit(now, buf)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        (**self).poll_timeout()
    }
    fn socket(&mut self, now: Instant) -> Result<Self::Handle, Errno> {
        (**self).socket(now)
    }
    fn bind(&mut self, now: Instant, h: Self::Handle, port: u16) -> Result<(), Errno> {
        (**self).bind(now, h, port)
    }
    fn listen(&mut self, now: Instant, h: Self::Handle, backlog: u32) -> Result<(), Errno> {
        (**self).listen(now, h, backlog)
    }
    fn accept(&mut self, now: Instant, h: Self::Handle) -> Result<Self::Handle, Errno> {
        (**self).accept(now, h)
    }
    fn connect(&mut self, now: Instant, h: Self::Handle, remote: SocketAddrV4) -> Result<(), Errno> {
        (**self).connect(now, h, remote)
    }
    fn write(&mut self, now: Instant, h: Self::Handle, data: &[u8]) -> Result<usize, Errno> {
        (**self).write(now, h, data)
    }
    fn read(&mut self, now: Instant, h: Self::Handle, buf: &mut [u8]) -> Result<usize, Errno> {
        (**self).read(now, h, buf)
    }
    fn shutdown(&mut self, now: Instant, h: Self::Handle, how: Shutdown) -> Result<(), Errno> {
        (**self).shutdown(now, h, how)
    }
    fn close(&mut self, now: Instant, h: Self::Handle) -> Result<(), Errno> {
        (**self).close(now, h)
    }
    fn setsockopt(&mut self, now: Instant, h: Self::Handle, opt: SockOpt, value: i64) -> Result<(), Errno> {
        (**self).setsockopt(now, h, opt, value)
    }
    fn getsockopt(&mut self, now: Instant, h: Self::Handle, opt: SockOpt) -> Result<i64, Errno> {
        (**self).getsockopt(now, h, opt)
    }
    fn take_error(&mut self, now: Instant, h: Self::Handle) -> Option<Errno> {
        (**self).take_error(now, h)
    }
    fn readiness(&mut self, now: Instant, h: Self::Handle) -> Readiness {
        (**self).readiness(now, h)
    }
    fn queue_size(&mut self, now: Instant, h: Self::Handle, q: QueueIoctl) -> Result<i64, Errno> {
        (**self).queue_size(now, h, q)
    }
    fn sysctl(&mut self, now: Instant, name: &str, value: &str) -> Sysctl {
        (**self).sysctl(now, name, value)
    }
    fn tcp_info(&mut self, now: Instant, h: Self::Handle) -> Result<TcpInfo, Errno> {
        (**self).tcp_info(now, h)
    }
}
