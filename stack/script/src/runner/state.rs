//! The runner's bookkeeping: sockets as the script sees them, frames the
//! stack sent, calls in progress.

use super::*;

/// packetdrill's socket states, for the mapping of the socket under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SockState {
    New,
    Listening,
    PassivePacketReceived,
    PassiveSynackSent,
    PassiveSynackAcked,
    ActiveConnecting,
    ActiveSynSent,
    ActiveSynAcked,
}

/// A socket as the script sees it: for connections, the mapping between
/// script and live ports and sequence numbers.
#[derive(Debug, Clone)]
pub(super) struct Sock {
    pub(super) state: SockState,
    pub(super) fd: Option<Fd>,
    pub(super) bound_port: Option<u16>,
    pub(super) local_port: Option<u16>,
    pub(super) remote_port: Option<u16>,
    pub(super) script_local_isn: u32,
    pub(super) live_local_isn: Option<u32>,
    pub(super) remote_isn: Option<u32>,
    /// Outbound TS val: script value -> live value.
    pub(super) ts_map: HashMap<u32, u32>,
    /// The first (script, live) TS val pair seen.
    pub(super) first_ts: Option<(u32, u32)>,
}

impl Sock {
    pub(super) fn new(state: SockState) -> Self {
        Sock {
            state,
            fd: None,
            bound_port: None,
            local_port: None,
            remote_port: None,
            script_local_isn: 0,
            live_local_isn: None,
            remote_isn: None,
            ts_map: HashMap::new(),
            first_ts: None,
        }
    }

    /// Offset from script to live for the stack's sequence space.
    pub(super) fn local_offset(&self, syn: bool) -> u32 {
        match self.live_local_isn {
            None => 0,
            Some(live) if syn => live.wrapping_sub(self.script_local_isn),
            Some(live) => live,
        }
    }

    /// Offset from script to live for the peer's sequence space.
    pub(super) fn remote_offset(&self, syn: bool) -> u32 {
        if syn {
            0
        } else {
            self.remote_isn.unwrap_or(0)
        }
    }
}

pub(super) struct FdEntry<Hd> {
    pub(super) handle: Hd,
    pub(super) nonblocking: bool,
    pub(super) sock: usize,
}

/// A TCP frame the stack sent.
#[derive(Debug, Clone)]
pub(super) struct Sent {
    pub(super) at: Us,
    pub(super) ip: Ipv4Meta,
    pub(super) ip_header_len: usize,
    pub(super) ip_ok: bool,
    pub(super) tcp_ok: bool,
    pub(super) seg: TcpSegment,
}

/// What a syscall returned, in script terms.
#[derive(Debug, Clone, Copy)]
pub(super) enum Val<Hd> {
    Int(i64),
    Handle(Hd),
}

#[derive(Debug, Clone)]
pub(super) struct PollFd<Hd> {
    pub(super) fd: Fd,
    pub(super) handle: Option<Hd>,
    pub(super) events: i64,
    pub(super) expected_revents: i64,
    pub(super) revents: i64,
}

/// A socket operation that may have to wait.
#[derive(Debug, Clone)]
pub(super) enum Op<Hd> {
    Accept {
        listener: Hd,
    },
    Connect {
        h: Hd,
        remote: SocketAddrV4,
        retry: bool,
    },
    Read {
        h: Hd,
        len: usize,
    },
    Write {
        h: Hd,
        len: usize,
        done: usize,
    },
    Poll {
        fds: Vec<PollFd<Hd>>,
        timeout_at: Option<Us>,
    },
}

/// What the script expects a call to return.
#[derive(Debug, Clone, Copy)]
pub(super) struct Expect {
    pub(super) result: i64,
    pub(super) errno: Option<Errno>,
}

pub(super) struct Pending<Hd> {
    pub(super) line: usize,
    pub(super) name: String,
    pub(super) op: Op<Hd>,
    pub(super) expect: Expect,
    /// `...` end time and its tolerance.
    pub(super) end: Option<(Us, Us)>,
    pub(super) give_up: Us,
}
