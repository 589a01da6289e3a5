//! TCP on the interface: demultiplexing, listeners, TIME-WAIT, RSTs for
//! segments nobody wants, timers, and the output path.
//!
//! Connections are found by a hash of (local port, remote address); a
//! listener by its port. A connection's timers are one deadline in a
//! `BTreeSet`, so the next deadline of the whole interface is its first
//! element. Connections with something to send wait in a FIFO of handles
//! (each at most once), which `poll_transmit` serves round-robin, one
//! segment at a time.

use super::icmp::IcmpVerdict;
use super::{Interface, EV_CLOSED, EV_CONNECTED, EV_ERROR, EV_READABLE, EV_WRITABLE};
use crate::socket::tcp::conn::{self, Challenge, Connection, Endpoints, Transition};
use crate::socket::tcp::seq::SeqNumber;
use crate::socket::tcp::{TcpConnStats, TcpOption, TcpState};
use crate::socket::{Socket, SocketError, SocketHandle};
use crate::time::Instant;
use crate::wire::{tcp::TcpError as WireTcpError, Ipv4Repr, Protocol, TcpFlags, TcpOptions, TcpRepr};
use core::fmt;
use core::net::{Ipv4Addr, SocketAddrV4};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};

/// RSTs for segments that reach no connection, waiting for the device.
const RST_QUEUE_LEN: usize = 64;
/// Options a socket remembers before it has a connection to apply them to.
const MAX_PENDING_OPTIONS: usize = 16;

type ConnKey = (u16, SocketAddrV4);

pub(crate) struct TcpSocket {
    pub kind: TcpKind,
    pub queued_events: u8,
}

pub(crate) enum TcpKind {
    /// `socket()`, perhaps `bind()`: not yet listening or connecting.
    Unbound {
        port: Option<u16>,
        options: Vec<TcpOption>,
    },
    Listener(Listener),
    Conn(ConnEntry),
}

pub(crate) struct Listener {
    port: u16,
    backlog: usize,
    /// Embryonic connections (SYN-RECEIVED).
    syn_queue: Vec<SocketHandle>,
    /// Established, waiting for `accept`.
    accept_queue: VecDeque<SocketHandle>,
    /// Given to every connection it accepts.
    options: Vec<TcpOption>,
}

pub(crate) struct ConnEntry {
    conn: Box<Connection>,
    /// The listener, while the connection is not yet accepted.
    parent: Option<SocketHandle>,
    /// The application closed its handle: free the connection when done.
    app_closed: bool,
    deadline: Option<Instant>,
    dirty: bool,
}

/// A connection in TIME-WAIT reduced to what it needs to re-ACK a FIN.
#[derive(Debug, Clone, Copy)]
struct TimeWait {
    snd_nxt: SeqNumber,
    rcv_nxt: SeqNumber,
    window: u16,
    /// TS.Recent and our timestamp offset.
    ts: Option<(u32, u32)>,
    expires: Instant,
    /// When we last answered an unacceptable segment without data
    /// (Linux tw_last_oow_ack_time; `TcpConfig::invalid_ratelimit`).
    last_oow_ack: Option<Instant>,
}

/// What a TIME-WAIT stand-in made of a segment.
enum TimeWaitVerdict {
    /// Answered (or ignored); nothing more to do.
    Handled,
    /// A new SYN reopens the 4-tuple: hand it to the listener, and open
    /// the new connection with this ISN.
    Reopen(SeqNumber),
}

/// The ACK a TIME-WAIT stand-in sends: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>,
/// with our timestamp echoing TS.Recent.
fn time_wait_ack(now: Instant, key: ConnKey, tw: &TimeWait) -> TcpRepr {
    let mut options = TcpOptions::default();
    if let Some((recent, offset)) = tw.ts {
        let tsval = (now.total_millis() as u32).wrapping_add(offset);
        options.timestamps = Some((tsval, recent));
    }
    TcpRepr {
        src_port: key.0,
        dst_port: key.1.port(),
        seq: tw.snd_nxt.0,
        ack: tw.rcv_nxt.0,
        flags: TcpFlags::ACK,
        window: tw.window,
        urgent: 0,
        options,
    }
}

pub(crate) struct TcpTables {
    conns: HashMap<ConnKey, SocketHandle>,
    listeners: HashMap<u16, SocketHandle>,
    /// Ports taken by bound but not yet listening or connected sockets.
    bound: HashMap<u16, SocketHandle>,
    time_wait: HashMap<ConnKey, TimeWait>,
    /// TIME-WAIT expiries in order (all last the same time, so FIFO works;
    /// a restarted entry is pushed again and stale ones are skipped).
    time_wait_order: VecDeque<(Instant, ConnKey)>,
    timers: BTreeSet<(Instant, SocketHandle)>,
    dirty: VecDeque<SocketHandle>,
    rst_out: VecDeque<(Ipv4Addr, TcpRepr)>,
    secret: u64,
    challenge_tokens: u32,
    challenge_second: u64,
}

impl TcpTables {
    pub fn new(secret: u64) -> Self {
        TcpTables {
            conns: HashMap::new(),
            listeners: HashMap::new(),
            bound: HashMap::new(),
            time_wait: HashMap::new(),
            time_wait_order: VecDeque::new(),
            timers: BTreeSet::new(),
            dirty: VecDeque::new(),
            rst_out: VecDeque::new(),
            secret,
            challenge_tokens: 0,
            challenge_second: u64::MAX,
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let t = self.timers.first().map(|(t, _)| *t);
        let tw = self.time_wait_order.front().map(|(t, _)| *t);
        match (t, tw) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    pub fn time_wait_len(&self) -> usize {
        self.time_wait.len()
    }
}

/// Why a TCP call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpError {
    /// Not an open TCP socket (or the wrong kind for the call).
    BadHandle,
    /// Nothing to do now; an event follows when there is (EAGAIN).
    WouldBlock,
    /// The port (or 4-tuple) is taken (EADDRINUSE).
    AddrInUse,
    /// The address is not ours (EADDRNOTAVAIL).
    AddrNotAvailable,
    /// No ephemeral port is free for this destination.
    NoFreePort,
    /// Off-link and no gateway (ENETUNREACH).
    NoRoute,
    /// Destination address or port unusable (EINVAL).
    InvalidAddress,
    /// The socket is listening, connecting or connected already (EISCONN / EINVAL).
    AlreadyConnected,
    /// Not connected (ENOTCONN).
    NotConnected,
    /// Writing after shutdown or close (EPIPE).
    Closed,
    /// The configured socket limit is reached.
    TooManySockets,
    /// The connection failed: refused, reset, timed out or unreachable.
    Failed(SocketError),
}

impl fmt::Display for TcpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TcpError::BadHandle => f.write_str("not an open TCP socket of that kind"),
            TcpError::WouldBlock => f.write_str("operation would block"),
            TcpError::AddrInUse => f.write_str("address in use"),
            TcpError::AddrNotAvailable => f.write_str("address not available on this interface"),
            TcpError::NoFreePort => f.write_str("no free ephemeral port"),
            TcpError::NoRoute => f.write_str("no route to host"),
            TcpError::InvalidAddress => f.write_str("invalid address"),
            TcpError::AlreadyConnected => f.write_str("socket already listening or connected"),
            TcpError::NotConnected => f.write_str("not connected"),
            TcpError::Closed => f.write_str("socket closed for writing"),
            TcpError::TooManySockets => f.write_str("socket limit reached"),
            TcpError::Failed(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for TcpError {}

impl Interface {
    fn tcp_socket_mut(&mut self, h: SocketHandle) -> Option<&mut TcpSocket> {
        self.sockets.get_mut(h).and_then(Socket::as_tcp_mut)
    }

    fn tcp_entry(&mut self, h: SocketHandle) -> Option<&mut ConnEntry> {
        match &mut self.tcp_socket_mut(h)?.kind {
            TcpKind::Conn(e) => Some(e),
            _ => None,
        }
    }

    fn tcp_conn_ref(&self, h: SocketHandle) -> Option<&Connection> {
        match &self.sockets.get(h)?.as_tcp()?.kind {
            TcpKind::Conn(e) => Some(&e.conn),
            _ => None,
        }
    }

    // ----- public API -----

    /// A new TCP socket, neither bound nor connected (`socket(2)`).
    pub fn tcp_socket(&mut self) -> Result<SocketHandle, TcpError> {
        let s = TcpSocket {
            kind: TcpKind::Unbound {
                port: None,
                options: Vec::new(),
            },
            queued_events: 0,
        };
        self.sockets
            .insert(Socket::Tcp(s))
            .ok_or(TcpError::TooManySockets)
    }

    /// Bind a fresh socket to a local port (0: an ephemeral one).
    pub fn tcp_bind(&mut self, h: SocketHandle, local: SocketAddrV4) -> Result<(), TcpError> {
        if !local.ip().is_unspecified() && *local.ip() != self.config.ipv4.addr {
            return Err(TcpError::AddrNotAvailable);
        }
        let port = match local.port() {
            0 => self.tcp_ephemeral_port(None).ok_or(TcpError::NoFreePort)?,
            p => p,
        };
        if self.tcp.listeners.contains_key(&port) || self.tcp.bound.contains_key(&port) {
            return Err(TcpError::AddrInUse);
        }
        match &mut self.tcp_socket_mut(h).ok_or(TcpError::BadHandle)?.kind {
            TcpKind::Unbound { port: p @ None, .. } => *p = Some(port),
            TcpKind::Unbound { .. } => return Err(TcpError::InvalidAddress),
            _ => return Err(TcpError::AlreadyConnected),
        }
        self.tcp.bound.insert(port, h);
        Ok(())
    }

    /// Listen on a bound socket (`listen(2)`). The backlog bounds both the
    /// SYN queue and the accept queue.
    pub fn tcp_listen_socket(&mut self, h: SocketHandle, backlog: usize) -> Result<(), TcpError> {
        let backlog = backlog.clamp(1, self.config.tcp.max_backlog);
        let socket = self.tcp_socket_mut(h).ok_or(TcpError::BadHandle)?;
        let (port, options) = match &mut socket.kind {
            TcpKind::Unbound {
                port: Some(p),
                options,
            } => (*p, core::mem::take(options)),
            TcpKind::Unbound { port: None, .. } => return Err(TcpError::InvalidAddress),
            TcpKind::Listener(l) => {
                l.backlog = backlog;
                return Ok(());
            }
            TcpKind::Conn(_) => return Err(TcpError::AlreadyConnected),
        };
        socket.kind = TcpKind::Listener(Listener {
            port,
            backlog,
            syn_queue: Vec::new(),
            accept_queue: VecDeque::new(),
            options,
        });
        self.tcp.bound.remove(&port);
        self.tcp.listeners.insert(port, h);
        tracing::debug!(%h, port, backlog, "tcp listening");
        Ok(())
    }

    /// Socket, bind and listen in one call.
    pub fn tcp_listen(&mut self, local: SocketAddrV4, backlog: usize) -> Result<SocketHandle, TcpError> {
        let h = self.tcp_socket()?;
        let r = self
            .tcp_bind(h, local)
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
    pub fn tcp_accept(&mut self, listener: SocketHandle) -> Result<SocketHandle, TcpError> {
        let Some(TcpSocket {
            kind: TcpKind::Listener(l),
            ..
        }) = self.tcp_socket_mut(listener)
        else {
            return Err(TcpError::BadHandle);
        };
        let h = l.accept_queue.pop_front().ok_or(TcpError::WouldBlock)?;
        if let Some(e) = self.tcp_entry(h) {
            e.parent = None;
        }
        Ok(h)
    }

    /// Open a connection (a new socket, ephemeral port).
    pub fn tcp_connect(&mut self, now: Instant, remote: SocketAddrV4) -> Result<SocketHandle, TcpError> {
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
    ) -> Result<(), TcpError> {
        let ip = *remote.ip();
        if ip.is_unspecified()
            || ip.is_broadcast()
            || ip.is_multicast()
            || self.is_broadcast(ip)
            || remote.port() == 0
        {
            return Err(TcpError::InvalidAddress);
        }
        self.route(ip).ok_or(TcpError::NoRoute)?;
        let (bound, options) = match &mut self.tcp_socket_mut(h).ok_or(TcpError::BadHandle)?.kind {
            TcpKind::Unbound { port, options } => (*port, core::mem::take(options)),
            TcpKind::Conn(e) => {
                return Err(match e.conn.state {
                    TcpState::SynSent | TcpState::SynReceived => TcpError::WouldBlock,
                    _ => TcpError::AlreadyConnected,
                })
            }
            TcpKind::Listener(_) => return Err(TcpError::AlreadyConnected),
        };
        let port = match bound {
            Some(p) => {
                if self.tcp.conns.contains_key(&(p, remote)) || self.tcp.time_wait.contains_key(&(p, remote))
                {
                    return Err(TcpError::AddrInUse);
                }
                self.tcp.bound.remove(&p);
                p
            }
            None => self
                .tcp_ephemeral_port(Some(remote))
                .ok_or(TcpError::NoFreePort)?,
        };
        let local = SocketAddrV4::new(self.config.ipv4.addr, port);
        let ep = self.endpoints(now, local, remote);
        let mut conn = Connection::connect(now, &self.config.tcp, ep);
        for o in options {
            conn.set_option(now, o);
        }
        self.tcp_install(h, conn, None);
        self.stats.tcp_active_opens += 1;
        tracing::debug!(%h, %local, %remote, "tcp connect");
        self.tcp_refresh(h);
        Ok(())
    }

    /// Queue data to send; returns how much the send buffer took.
    pub fn tcp_send(&mut self, h: SocketHandle, data: &[u8]) -> Result<usize, TcpError> {
        let e = self.tcp_entry(h).ok_or(TcpError::BadHandle)?;
        if let Some(err) = e.conn.error.filter(|_| e.conn.state == TcpState::Closed) {
            return Err(TcpError::Failed(err));
        }
        match e.conn.state {
            TcpState::SynSent | TcpState::SynReceived => return Err(TcpError::WouldBlock),
            TcpState::Established | TcpState::CloseWait if e.conn.may_send() => {}
            TcpState::Closed if e.conn.error.is_none() => return Err(TcpError::NotConnected),
            _ => return Err(TcpError::Closed),
        }
        if data.is_empty() {
            return Ok(0);
        }
        let n = e.conn.send(data);
        if n == 0 {
            return Err(TcpError::WouldBlock);
        }
        self.tcp_refresh(h);
        Ok(n)
    }

    /// Read in-order data. `Ok(0)` is end of stream (the peer sent FIN).
    pub fn tcp_recv(&mut self, h: SocketHandle, buf: &mut [u8]) -> Result<usize, TcpError> {
        let e = self.tcp_entry(h).ok_or(TcpError::BadHandle)?;
        let n = e.conn.recv(buf);
        if n > 0 {
            self.tcp_refresh(h);
            return Ok(n);
        }
        let conn = &e.conn;
        if buf.is_empty() || conn.peer_closed() {
            return Ok(0);
        }
        match conn.state {
            TcpState::Closed => match conn.error {
                Some(err) => Err(TcpError::Failed(err)),
                None => Ok(0),
            },
            TcpState::SynSent | TcpState::SynReceived => Err(TcpError::WouldBlock),
            TcpState::TimeWait | TcpState::Closing | TcpState::LastAck | TcpState::CloseWait => Ok(0),
            _ => Err(TcpError::WouldBlock),
        }
    }

    /// Copy in-order data without consuming it.
    pub fn tcp_peek(&mut self, h: SocketHandle, buf: &mut [u8]) -> Result<usize, TcpError> {
        Ok(self.tcp_conn_ref(h).ok_or(TcpError::BadHandle)?.peek(buf))
    }

    /// Consume-in-place: `f` sees the readable bytes (contiguous, up to the
    /// ring's wrap) and returns how many it used.
    pub fn tcp_recv_with<R>(
        &mut self,
        h: SocketHandle,
        f: impl FnOnce(&[u8]) -> (usize, R),
    ) -> Result<R, TcpError> {
        let e = self.tcp_entry(h).ok_or(TcpError::BadHandle)?;
        let (used, r) = f(e.conn.recv_slice(usize::MAX));
        e.conn.consume(used);
        self.tcp_refresh(h);
        Ok(r)
    }

    /// Fill-in-place: `f` writes into free send buffer space and returns how
    /// many bytes it wrote.
    pub fn tcp_send_with<R>(
        &mut self,
        h: SocketHandle,
        f: impl FnOnce(&mut [u8]) -> (usize, R),
    ) -> Result<R, TcpError> {
        let e = self.tcp_entry(h).ok_or(TcpError::BadHandle)?;
        if !e.conn.may_send() {
            return Err(if e.conn.state.is_synchronized() {
                TcpError::Closed
            } else {
                TcpError::WouldBlock
            });
        }
        let (n, r) = f(e.conn.send_buffer(usize::MAX));
        e.conn.commit_send(n);
        self.tcp_refresh(h);
        Ok(r)
    }

    /// Bytes that can be read now.
    pub fn tcp_recv_queue(&self, h: SocketHandle) -> usize {
        self.tcp_conn_ref(h).map(|c| c.recv_queued()).unwrap_or(0)
    }

    /// Free send buffer space.
    pub fn tcp_send_capacity(&self, h: SocketHandle) -> usize {
        self.tcp_conn_ref(h).map(|c| c.send_capacity()).unwrap_or(0)
    }

    /// Bytes sent but not yet acknowledged, plus bytes not yet sent.
    pub fn tcp_send_queue(&self, h: SocketHandle) -> usize {
        self.tcp_conn_ref(h).map(|c| c.send_queue_len()).unwrap_or(0)
    }

    /// Bytes written but never sent yet.
    pub fn tcp_unsent(&self, h: SocketHandle) -> usize {
        self.tcp_conn_ref(h).map(|c| c.never_sent_len()).unwrap_or(0)
    }

    /// Whether `tcp_recv` would return data or end of stream now.
    pub fn tcp_can_recv(&self, h: SocketHandle) -> bool {
        self.tcp_conn_ref(h)
            .is_some_and(|c| c.can_recv() || c.state == TcpState::Closed)
    }

    /// Listener with connections ready to accept.
    pub fn tcp_can_accept(&self, h: SocketHandle) -> bool {
        matches!(self.sockets.get(h).and_then(Socket::as_tcp), Some(TcpSocket { kind: TcpKind::Listener(l), .. }) if !l.accept_queue.is_empty())
    }

    /// Half-close: no more sends; FIN follows the queued data.
    pub fn tcp_shutdown(&mut self, h: SocketHandle) -> Result<(), TcpError> {
        let e = self.tcp_entry(h).ok_or(TcpError::NotConnected)?;
        if e.conn.state == TcpState::Closed || e.conn.state == TcpState::SynSent {
            e.conn.shutdown_write();
            return Err(TcpError::NotConnected);
        }
        e.conn.shutdown_write();
        self.tcp_refresh(h);
        Ok(())
    }

    /// Close the socket. A connection closes gracefully (FIN after the data)
    /// and is freed when done; unread received data makes it a RST instead
    /// (RFC 2525 2.17, as Linux). A listener resets the connections it
    /// holds that nobody accepted.
    pub fn tcp_close(&mut self, h: SocketHandle) {
        let now = self.last_now;
        let Some(socket) = self.tcp_socket_mut(h) else {
            return;
        };
        match &mut socket.kind {
            TcpKind::Unbound { port, .. } => {
                if let Some(p) = *port {
                    self.tcp.bound.remove(&p);
                }
                self.sockets.remove(h);
            }
            TcpKind::Listener(l) => {
                let port = l.port;
                let embryonic: Vec<SocketHandle> = l.syn_queue.drain(..).collect();
                let established: Vec<SocketHandle> = l.accept_queue.drain(..).collect();
                self.tcp.listeners.remove(&port);
                self.sockets.remove(h);
                // As Linux (inet_csk_listen_stop) and gVisor: connections
                // nobody accepted are reset, while half-open ones vanish
                // silently; the peer's next segment finds no connection
                // and draws a RST (RFC 9293 3.10.7.1). RFC 9293 has no
                // listener separate from its SYN-RECEIVED children, so it
                // does not choose.
                for c in embryonic {
                    self.tcp_free(c);
                }
                for c in established {
                    self.tcp_abort(c);
                }
                tracing::debug!(%h, port, "tcp listener closed");
            }
            TcpKind::Conn(e) => {
                e.app_closed = true;
                match e.conn.state {
                    TcpState::Closed | TcpState::SynSent => self.tcp_free(h),
                    TcpState::TimeWait => self.tcp_to_time_wait(h),
                    _ if e.conn.recv_queued() > 0 => self.tcp_abort(h),
                    _ => {
                        e.conn.shutdown_write();
                        e.conn.orphaned(now);
                        self.tcp_refresh(h);
                    }
                }
            }
        }
    }

    /// Abort: send RST if the peer knows the connection, free it now.
    pub fn tcp_abort(&mut self, h: SocketHandle) {
        let now = self.last_now;
        let Some(e) = self.tcp_entry(h) else {
            self.tcp_close(h);
            return;
        };
        let rst = e.conn.abort(now);
        let remote = e.conn.remote;
        if let Some(r) = rst {
            self.queue_rst(*remote.ip(), r);
        }
        self.tcp_free(h);
    }

    pub fn tcp_state(&self, h: SocketHandle) -> Option<TcpState> {
        match &self.sockets.get(h)?.as_tcp()?.kind {
            TcpKind::Unbound { .. } => Some(TcpState::Closed),
            TcpKind::Listener(_) => Some(TcpState::Listen),
            TcpKind::Conn(e) => Some(e.conn.state),
        }
    }

    pub fn tcp_local_addr(&self, h: SocketHandle) -> Option<SocketAddrV4> {
        match &self.sockets.get(h)?.as_tcp()?.kind {
            TcpKind::Unbound { port, .. } => {
                Some(SocketAddrV4::new(self.config.ipv4.addr, port.unwrap_or(0)))
            }
            TcpKind::Listener(l) => Some(SocketAddrV4::new(self.config.ipv4.addr, l.port)),
            TcpKind::Conn(e) => Some(e.conn.local),
        }
    }

    pub fn tcp_peer_addr(&self, h: SocketHandle) -> Option<SocketAddrV4> {
        self.tcp_conn_ref(h).map(|c| c.remote)
    }

    /// The error that ended (or troubles) the connection (like SO_ERROR).
    pub fn tcp_take_error(&mut self, h: SocketHandle) -> Option<SocketError> {
        self.tcp_entry(h)?.conn.error.take()
    }

    pub(crate) fn tcp_peek_error(&self, h: SocketHandle) -> Option<SocketError> {
        self.tcp_conn_ref(h)?.error
    }

    pub fn tcp_stats(&self, h: SocketHandle) -> Option<TcpConnStats> {
        self.tcp_conn_ref(h).map(|c| c.stats())
    }

    /// Every connection's stats (the `ss -ti` of tapir).
    pub fn tcp_connections(&self) -> impl Iterator<Item = (SocketAddrV4, SocketAddrV4, TcpConnStats)> + '_ {
        self.tcp
            .conns
            .values()
            .filter_map(|h| self.tcp_conn_ref(*h))
            .map(|c| (c.local, c.remote, c.stats()))
    }

    /// Connections with a full control block (not TIME-WAIT stand-ins).
    pub fn tcp_connection_count(&self) -> usize {
        self.tcp.connections()
    }

    /// Connections in TIME-WAIT (held compactly).
    pub fn tcp_time_wait_count(&self) -> usize {
        self.tcp.time_wait_len()
    }

    /// Set a per-socket option (before or after connecting; a listener
    /// passes its options to the connections it accepts).
    pub fn tcp_set_option(&mut self, now: Instant, h: SocketHandle, opt: TcpOption) -> Result<(), TcpError> {
        match &mut self.tcp_socket_mut(h).ok_or(TcpError::BadHandle)?.kind {
            TcpKind::Unbound { options, .. } | TcpKind::Listener(Listener { options, .. }) => {
                options.retain(|o| core::mem::discriminant(o) != core::mem::discriminant(&opt));
                if options.len() < MAX_PENDING_OPTIONS {
                    options.push(opt);
                }
            }
            TcpKind::Conn(e) => e.conn.set_option(now, opt),
        }
        self.tcp_refresh(h);
        Ok(())
    }

    /// Read back an option's current value.
    pub fn tcp_get_option(&self, h: SocketHandle, opt: TcpOption) -> Option<TcpOption> {
        let pending = |options: &Vec<TcpOption>| {
            options
                .iter()
                .copied()
                .find(|o| core::mem::discriminant(o) == core::mem::discriminant(&opt))
        };
        match &self.sockets.get(h)?.as_tcp()?.kind {
            TcpKind::Unbound { options, .. } | TcpKind::Listener(Listener { options, .. }) => {
                let cfg = &self.config.tcp;
                let pending = pending(options).map(|o| match o {
                    // Linux reads back whole SYN-ACK timeouts.
                    TcpOption::DeferAccept(d) => {
                        let n = conn::secs_to_retrans(d, cfg.rto_initial, cfg.rto_max);
                        TcpOption::DeferAccept(conn::retrans_to_secs(n, cfg.rto_initial, cfg.rto_max))
                    }
                    o => o,
                });
                pending.or(Some(match opt {
                    TcpOption::RecvBuffer(_) => TcpOption::RecvBuffer(self.config.tcp.recv_buffer),
                    TcpOption::SendBuffer(_) => TcpOption::SendBuffer(self.config.tcp.send_buffer),
                    TcpOption::MaxSegment(_) => TcpOption::MaxSegment((self.config.mtu - 40) as u16),
                    TcpOption::SynCount(_) => TcpOption::SynCount(self.config.tcp.syn_retries.min(127) as u8),
                    other => other,
                }))
            }
            TcpKind::Conn(e) => Some(match opt {
                TcpOption::NoDelay(_) => TcpOption::NoDelay(e.conn.nodelay()),
                TcpOption::KeepAlive(_) => TcpOption::KeepAlive(e.conn.keepalive_enabled()),
                TcpOption::RecvBuffer(_) => TcpOption::RecvBuffer(e.conn.rx_capacity()),
                TcpOption::SendBuffer(_) => TcpOption::SendBuffer(e.conn.tx_capacity()),
                TcpOption::MaxSegment(_) => TcpOption::MaxSegment(e.conn.payload_mss() as u16),
                TcpOption::QuickAck(_) => TcpOption::QuickAck(!e.conn.pingpong()),
                TcpOption::Linger2(_) => TcpOption::Linger2(e.conn.linger2()),
                TcpOption::Cork(_) => TcpOption::Cork(e.conn.cork()),
                TcpOption::SynCount(_) => TcpOption::SynCount(e.conn.syn_retries() as u8),
                TcpOption::DeferAccept(_) => TcpOption::DeferAccept(e.conn.defer_accept()),
                other => other,
            }),
        }
    }

    // ----- internals -----

    fn endpoints(&self, now: Instant, local: SocketAddrV4, remote: SocketAddrV4) -> Endpoints {
        // RFC 6528: ISN = M + F(localip, localport, remoteip, remoteport,
        // secretkey), M a 4 microsecond clock, F a keyed hash (SipHash here,
        // with the secret hashed in first).
        let f = |tag: u8| {
            let mut h = DefaultHasher::new();
            (self.tcp.secret, tag, local, remote).hash(&mut h);
            h.finish() as u32
        };
        let m = (now.total_micros() / 4) as u32;
        Endpoints {
            local,
            remote,
            iss: SeqNumber(m.wrapping_add(f(0))),
            ts_offset: f(1),
            mtu: self.config.mtu,
        }
    }

    /// RFC 6056 algorithm 1 with a per-destination check: a random start,
    /// then the first port not in use towards `remote` (or at all, for bind).
    fn tcp_ephemeral_port(&mut self, remote: Option<SocketAddrV4>) -> Option<u16> {
        let (lo, hi) = self.config.udp.ephemeral_ports;
        let span = u32::from(hi - lo) + 1;
        let start = (self.rng.next() % u64::from(span)) as u32;
        (0..span).map(|i| lo + ((start + i) % span) as u16).find(|&p| {
            !self.tcp.listeners.contains_key(&p)
                && !self.tcp.bound.contains_key(&p)
                && match remote {
                    Some(r) => {
                        !self.tcp.conns.contains_key(&(p, r)) && !self.tcp.time_wait.contains_key(&(p, r))
                    }
                    None => !self.tcp.conns.keys().any(|(lp, _)| *lp == p),
                }
        })
    }

    fn tcp_install(&mut self, h: SocketHandle, conn: Connection, parent: Option<SocketHandle>) {
        let key = (conn.local.port(), conn.remote);
        self.tcp.conns.insert(key, h);
        if let Some(s) = self.tcp_socket_mut(h) {
            s.kind = TcpKind::Conn(ConnEntry {
                conn: Box::new(conn),
                parent,
                app_closed: false,
                deadline: None,
                dirty: false,
            });
        }
    }

    /// Forget a connection entirely.
    fn tcp_free(&mut self, h: SocketHandle) {
        let Some(Socket::Tcp(TcpSocket {
            kind: TcpKind::Conn(e),
            ..
        })) = self.sockets.remove(h)
        else {
            return;
        };
        let key = (e.conn.local.port(), e.conn.remote);
        if self.tcp.conns.get(&key) == Some(&h) {
            self.tcp.conns.remove(&key);
        }
        if let Some(d) = e.deadline {
            self.tcp.timers.remove(&(d, h));
        }
        if let Some(p) = e.parent {
            if let Some(TcpSocket {
                kind: TcpKind::Listener(l),
                ..
            }) = self.tcp_socket_mut(p)
            {
                l.syn_queue.retain(|c| *c != h);
                l.accept_queue.retain(|c| *c != h);
            }
        }
        tracing::debug!(%h, local = %e.conn.local, remote = %e.conn.remote, stats = %e.conn.stats(), "tcp connection freed");
    }

    /// Replace a connection in TIME-WAIT by its compact stand-in.
    fn tcp_to_time_wait(&mut self, h: SocketHandle) {
        let Some(e) = self.tcp_entry(h) else { return };
        let info = e.conn.time_wait_info();
        // The segment that brought it here (the peer's FIN) is owed an ACK
        // the connection has not sent yet; the stand-in sends it.
        let owes_ack = e.conn.wants_to_send();
        let key = (e.conn.local.port(), e.conn.remote);
        let now = self.last_now;
        let expires = info.expires.unwrap_or(now + self.config.tcp.time_wait);
        self.tcp_free(h);
        let tw = TimeWait {
            snd_nxt: info.snd_nxt,
            rcv_nxt: info.rcv_nxt,
            window: info.window,
            ts: info.ts,
            expires,
            last_oow_ack: None,
        };
        self.tcp.time_wait.insert(key, tw);
        self.tcp.time_wait_order.push_back((expires, key));
        if owes_ack {
            let ack = time_wait_ack(now, key, &tw);
            self.queue_rst(*key.1.ip(), ack);
        }
    }

    /// Recompute a connection's deadline and whether it has output.
    pub(super) fn tcp_refresh(&mut self, h: SocketHandle) {
        self.tcp_refresh_inner(h, true);
    }

    fn tcp_refresh_inner(&mut self, h: SocketHandle, may_mark_dirty: bool) {
        let Some(e) = self.tcp_entry(h) else { return };
        let new = e.conn.deadline();
        let old = e.deadline;
        let wants = may_mark_dirty && !e.dirty && e.conn.wants_to_send();
        e.deadline = new;
        if wants {
            e.dirty = true;
        }
        if old != new {
            if let Some(d) = old {
                self.tcp.timers.remove(&(d, h));
            }
            if let Some(d) = new {
                self.tcp.timers.insert((d, h));
            }
        }
        if wants {
            self.tcp.dirty.push_back(h);
        }
    }

    fn queue_rst(&mut self, dst: Ipv4Addr, repr: TcpRepr) {
        if self.tcp.rst_out.len() < RST_QUEUE_LEN {
            self.tcp.rst_out.push_back((dst, repr));
        } else {
            self.stats.tx_queue_full += 1;
        }
    }

    /// RFC 5961 7: an interface-wide budget of challenge ACKs per second,
    /// on top of each connection's limit. A fixed budget is a side
    /// channel (CVE-2016-5696: an attacker counts the challenge ACKs left
    /// to its own connection), so, as Linux's tcp_send_challenge_ack, each
    /// second's budget is drawn uniformly from [limit/2, limit/2 + limit)
    /// with the interface's seeded generator; `u32::MAX` turns it off.
    fn challenge_allowed(&mut self, now: Instant) -> bool {
        let limit = self.config.tcp.challenge_ack_limit;
        if limit == u32::MAX {
            return true;
        }
        let second = now.total_micros() / 1_000_000;
        if second != self.tcp.challenge_second {
            self.tcp.challenge_second = second;
            let half = limit.div_ceil(2);
            let draw = match limit {
                0 => 0,
                _ => (self.rng.next() % u64::from(limit)) as u32,
            };
            self.tcp.challenge_tokens = half.saturating_add(draw);
        }
        if self.tcp.challenge_tokens > 0 {
            self.tcp.challenge_tokens -= 1;
            true
        } else {
            false
        }
    }

    /// Act on what a connection said after an input or a timer.
    fn tcp_after(&mut self, h: SocketHandle, t: Transition) {
        let Some(e) = self.tcp_entry(h) else { return };
        if let Some(rst) = e.conn.take_rst() {
            let dst = *e.conn.remote.ip();
            self.queue_rst(dst, rst);
        }
        let Some(e) = self.tcp_entry(h) else { return };
        let readable = e.conn.can_recv();
        let writable = e.conn.may_send() && e.conn.send_capacity() > 0;
        let parent = e.parent;
        let app_closed = e.app_closed;
        let error = e.conn.error;
        match t {
            Transition::None => {}
            Transition::Established => {
                self.stats.tcp_passive_opens += 1;
                if let Some(p) = parent {
                    if let Some(TcpSocket {
                        kind: TcpKind::Listener(l),
                        ..
                    }) = self.tcp_socket_mut(p)
                    {
                        l.syn_queue.retain(|c| *c != h);
                        l.accept_queue.push_back(h);
                    }
                    self.push_event(p, EV_READABLE);
                }
            }
            Transition::Connected => {
                self.push_event(h, EV_CONNECTED);
            }
            Transition::BackToListen => {
                self.tcp_free(h);
                return;
            }
            Transition::TimeWait => {
                self.stats.tcp_time_wait += 1;
                if app_closed {
                    self.tcp_to_time_wait(h);
                    return;
                }
            }
            Transition::Closed => {
                match error {
                    Some(SocketError::ConnectionReset) => self.stats.tcp_resets_rx += 1,
                    Some(SocketError::TimedOut) => self.stats.tcp_timeouts += 1,
                    _ => {}
                }
                let embryonic = parent.is_some();
                if app_closed || embryonic {
                    self.tcp_free(h);
                    return;
                }
                let key = self.tcp_entry(h).map(|e| (e.conn.local.port(), e.conn.remote));
                if let Some(k) = key {
                    self.tcp.conns.remove(&k);
                }
                if error.is_some() {
                    self.push_event(h, EV_ERROR);
                }
                self.push_event(h, EV_CLOSED);
                self.push_event(h, EV_READABLE);
            }
        }
        if app_closed {
            let now = self.last_now;
            if let Some(e) = self.tcp_entry(h) {
                e.conn.orphaned(now);
            }
        }
        if readable && parent.is_none() {
            self.push_event(h, EV_READABLE);
        }
        if writable && parent.is_none() {
            self.push_event(h, EV_WRITABLE);
        }
        self.tcp_refresh(h);
    }

    // ----- input -----

    pub(super) fn tcp_input(&mut self, now: Instant, ip: &Ipv4Repr, payload: &[u8], broadcast: bool) {
        let (repr, data) = match TcpRepr::parse(payload, ip.src, ip.dst, true) {
            Ok(r) => r,
            Err(WireTcpError::BadChecksum) => {
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
        let remote = SocketAddrV4::new(ip.src, repr.src_port);
        let key = (repr.dst_port, remote);
        if let Some(&h) = self.tcp.conns.get(&key) {
            self.tcp_conn_input(now, h, &repr, data);
            return;
        }
        let mut reopen_isn = None;
        if let Some(tw) = self.tcp.time_wait.get(&key).copied() {
            match self.time_wait_input(now, key, tw, &repr, data.len()) {
                TimeWaitVerdict::Handled => return,
                TimeWaitVerdict::Reopen(isn) => reopen_isn = Some(isn),
            }
        }
        if let Some(&l) = self.tcp.listeners.get(&repr.dst_port) {
            self.listen_input(now, l, remote, &repr, data.len(), reopen_isn);
            return;
        }
        self.stats.tcp_no_socket += 1;
        self.reset_closed(ip.src, &repr, data.len());
    }

    fn tcp_conn_input(&mut self, now: Instant, h: SocketHandle, repr: &TcpRepr, data: &[u8]) {
        // Linux keeps the handshake's final ACK waiting (drops it) while the
        // accept queue is full; the SYN-ACK timer tries again later.
        let Some(e) = self.tcp_entry(h) else { return };
        if e.conn.state == TcpState::SynReceived && repr.flags.ack() && !repr.flags.rst() && !repr.flags.syn()
        {
            if let Some(p) = e.parent {
                let full = match self.sockets.get(p).and_then(Socket::as_tcp) {
                    Some(TcpSocket {
                        kind: TcpKind::Listener(l),
                        ..
                    }) => l.accept_queue.len() >= l.backlog,
                    _ => false,
                };
                if full {
                    self.stats.tcp_accept_queue_full += 1;
                    return;
                }
            }
        }
        let Some(e) = self.tcp_entry(h) else { return };
        let closing = matches!(e.conn.state, TcpState::FinWait1 | TcpState::FinWait2);
        let t = e.conn.process(now, repr, data);
        if closing && e.app_closed && e.conn.recv_queued() > 0 {
            // RFC 1122 4.2.2.13 / RFC 2525 2.17: new data after close() can
            // never be read: tell the peer it was lost (as Linux does).
            let rst = e.conn.reset_unreadable(now);
            let dst = *e.conn.remote.ip();
            self.queue_rst(dst, rst);
            self.tcp_free(h);
            return;
        }
        match e.conn.take_challenge() {
            Some(Challenge::Send) if self.challenge_allowed(now) => {
                self.stats.tcp_challenge_acks += 1;
                if let Some(e) = self.tcp_entry(h) {
                    e.conn.request_ack();
                }
            }
            Some(_) => self.stats.tcp_challenge_rate_limited += 1,
            None => {}
        }
        self.tcp_after(h, t);
    }

    /// RFC 9293 3.10.7.2, LISTEN.
    fn listen_input(
        &mut self,
        now: Instant,
        l: SocketHandle,
        remote: SocketAddrV4,
        repr: &TcpRepr,
        len: usize,
        reopen_isn: Option<SeqNumber>,
    ) {
        // First: a RST is ignored. Second: an ACK gets <SEQ=SEG.ACK><CTL=RST>.
        if repr.flags.rst() {
            self.stats.tcp_listen_bad_segment += 1;
            return;
        }
        if repr.flags.ack() {
            self.stats.tcp_listen_bad_segment += 1;
            self.reset_closed(*remote.ip(), repr, len);
            return;
        }
        if !repr.flags.syn() {
            self.stats.tcp_listen_bad_segment += 1;
            return;
        }
        if repr.flags.fin() {
            // SYN+FIN: RFC 9293 would open the connection and process the
            // FIN later, but no real client sends it; it is a scanner's
            // probe (an OS fingerprint or a filter evasion). Linux drops it
            // unanswered (tcp_rcv_state_process), and so do we.
            self.stats.tcp_listen_bad_segment += 1;
            return;
        }
        let (port, full, options) = match self.sockets.get(l).and_then(Socket::as_tcp) {
            Some(TcpSocket {
                kind: TcpKind::Listener(li),
                ..
            }) => (
                li.port,
                li.syn_queue.len() >= li.backlog || li.accept_queue.len() >= li.backlog,
                li.options.clone(),
            ),
            _ => return,
        };
        if full {
            // Dropped: the peer retransmits its SYN (SYN cookies come later).
            self.stats.tcp_listen_overflow += 1;
            return;
        }
        let Ok(h) = self.tcp_socket() else {
            self.stats.tcp_listen_overflow += 1;
            return;
        };
        let local = SocketAddrV4::new(self.config.ipv4.addr, port);
        let mut ep = self.endpoints(now, local, remote);
        if let Some(isn) = reopen_isn {
            ep.iss = isn;
        }
        let mut conn = Connection::accept_syn(now, &self.config.tcp, ep, repr);
        for o in options {
            conn.set_option(now, o);
        }
        self.tcp_install(h, conn, Some(l));
        if let Some(TcpSocket {
            kind: TcpKind::Listener(li),
            ..
        }) = self.tcp_socket_mut(l)
        {
            li.syn_queue.push(h);
        }
        tracing::debug!(%h, %remote, "tcp SYN received");
        self.tcp_refresh(h);
    }

    /// A segment for a connection in TIME-WAIT: answered here, or a new
    /// SYN that reopens the 4-tuple and goes on to the listener. The rules
    /// are Linux's tcp_timewait_state_process (with tcp_rfc1337 set).
    fn time_wait_input(
        &mut self,
        now: Instant,
        key: ConnKey,
        tw: TimeWait,
        repr: &TcpRepr,
        len: usize,
    ) -> TimeWaitVerdict {
        if repr.flags.rst() {
            // RFC 1337: ignore RSTs in TIME-WAIT.
            self.stats.tcp_time_wait_rst_ignored += 1;
            return TimeWaitVerdict::Handled;
        }
        let seg_len = len + usize::from(repr.flags.syn()) + usize::from(repr.flags.fin());
        let tsval = repr.options.timestamps.map(|(v, _)| v);
        // RFC 7323 5.3 (PAWS): a TSval older than TS.Recent is an old duplicate.
        let paws_reject =
            matches!((tw.ts, tsval), (Some((recent, _)), Some(v)) if (v.wrapping_sub(recent) as i32) < 0);
        let time_wait = self.config.tcp.time_wait;
        if !paws_reject && SeqNumber(repr.seq) == tw.rcv_nxt && seg_len == 0 {
            // In window without data: the peer's ACK (of our FIN, or
            // a duplicate of it). RFC 9293 3.10.7.4 answers only
            // unacceptable segments; ACKing it would let two ends in
            // TIME-WAIT trade ACKs for 2 MSL. Accepted silently, restarting
            // the timer and taking its TSval, as Linux.
            if let Some(t) = self.tcp.time_wait.get_mut(&key) {
                t.expires = now + time_wait;
                if let (Some((recent, _)), Some(v)) = (t.ts.as_mut(), tsval) {
                    *recent = v;
                }
            }
            self.tcp.time_wait_order.push_back((now + time_wait, key));
            return TimeWaitVerdict::Handled;
        }
        if repr.flags.syn() && !repr.flags.ack() && !paws_reject && self.tcp.listeners.contains_key(&key.0) {
            // RFC 6191: a new SYN may reopen the 4-tuple if, where both
            // sides use timestamps, its TSval is newer than TS.Recent, and
            // otherwise if its sequence number is beyond RCV.NXT (RFC 1122
            // 4.2.2.13). Without a listener it is an old duplicate to ACK
            // (as Linux, which keeps TIME-WAIT and ACKs it then).
            let newer = match (tw.ts, repr.options.timestamps) {
                (Some((recent, _)), Some((tsval, _))) => (tsval.wrapping_sub(recent) as i32) > 0,
                _ => SeqNumber(repr.seq) > tw.rcv_nxt,
            };
            if newer {
                self.tcp.time_wait.remove(&key);
                self.stats.tcp_time_wait_reused += 1;
                // RFC 1122 4.2.2.13 (a): the new incarnation's ISN lies
                // beyond every sequence number the old one used; Linux takes
                // SND.NXT + 65537 (tcp_timewait_state_process).
                return TimeWaitVerdict::Reopen(tw.snd_nxt + 65537);
            }
        }
        // Unacceptable (out of window, PAWS-rejected, with data or a FIN,
        // chiefly a retransmitted FIN: our ACK was lost): answered with
        // <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> (RFC 9293 3.10.7.4), and
        // the 2 MSL timer restarts (Linux: on an ACK or a PAWS reject).
        if paws_reject || repr.flags.ack() {
            if let Some(t) = self.tcp.time_wait.get_mut(&key) {
                t.expires = now + time_wait;
            }
            self.tcp.time_wait_order.push_back((now + time_wait, key));
        }
        // At most one answer per invalid_ratelimit to segments without
        // data (RFC 5961 7; Linux tcp_timewait_check_oow_rate_limit):
        // one that occupies sequence space cannot be half of an ACK loop.
        let limit = self.config.tcp.invalid_ratelimit;
        if limit.is_zero() || (seg_len > 0 && !repr.flags.syn()) {
            // Exempt.
        } else if tw.last_oow_ack.is_some_and(|t| now < t + limit) {
            self.stats.tcp_time_wait_acks_rate_limited += 1;
            return TimeWaitVerdict::Handled;
        } else if let Some(t) = self.tcp.time_wait.get_mut(&key) {
            t.last_oow_ack = Some(now);
        }
        let ack = time_wait_ack(now, key, &tw);
        self.queue_rst(*key.1.ip(), ack);
        TimeWaitVerdict::Handled
    }

    /// RFC 9293 3.10.7.1: a segment for no connection gets a RST, unless
    /// it is one.
    fn reset_closed(&mut self, dst: Ipv4Addr, repr: &TcpRepr, len: usize) {
        if repr.flags.rst() {
            return;
        }
        let mut rst = TcpRepr {
            src_port: repr.dst_port,
            dst_port: repr.src_port,
            seq: 0,
            ack: 0,
            flags: TcpFlags::RST,
            window: 0,
            urgent: 0,
            options: TcpOptions::default(),
        };
        if repr.flags.ack() {
            rst.seq = repr.ack;
        } else {
            rst.flags.insert(TcpFlags::ACK);
            let seg_len = len + usize::from(repr.flags.syn()) + usize::from(repr.flags.fin());
            rst.ack = (SeqNumber(repr.seq) + seg_len).0;
        }
        self.queue_rst(dst, rst);
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
        let Some(&h) = self.tcp.conns.get(&(local_port, remote)) else {
            return IcmpVerdict::NoSocket;
        };
        let min_path_mtu = self.config.icmp.min_path_mtu;
        let Some(e) = self.tcp_entry(h) else {
            return IcmpVerdict::NoSocket;
        };
        if quoted_seq.is_some_and(|seq| !e.conn.icmp_seq_acceptable(seq)) {
            return IcmpVerdict::OutOfWindow;
        }
        let t = match err {
            // RFC 1191: about the path, never fatal (Linux tcp_v4_err). The
            // new MTU is clamped from below, as Linux's min_pmtu; an old
            // router's message without one (RFC 1191 5) changes nothing.
            SocketError::Unreachable {
                code: crate::wire::UnreachableCode::FragmentationNeeded,
                next_hop_mtu,
                ..
            } => {
                if let Some(mtu) = next_hop_mtu {
                    e.conn.on_path_mtu(usize::from(mtu).max(min_path_mtu));
                }
                Transition::None
            }
            _ => e.conn.on_icmp_error(err),
        };
        self.tcp_after(h, t);
        IcmpVerdict::Delivered
    }

    // ----- timers and output -----

    pub(super) fn tcp_handle_timeout(&mut self, now: Instant) {
        while let Some(&(t, h)) = self.tcp.timers.first() {
            if t > now {
                break;
            }
            self.tcp.timers.remove(&(t, h));
            let Some(e) = self.tcp_entry(h) else { continue };
            e.deadline = None;
            let tr = e.conn.on_timer(now);
            self.tcp_after(h, tr);
        }
        while let Some(&(t, key)) = self.tcp.time_wait_order.front() {
            if t > now {
                break;
            }
            self.tcp.time_wait_order.pop_front();
            if self.tcp.time_wait.get(&key).is_some_and(|tw| tw.expires <= now) {
                self.tcp.time_wait.remove(&key);
            }
        }
    }

    /// Put the next TCP segment (a queued RST or ACK, or a connection's
    /// output) on the transmit queue. Returns false if there was none.
    pub(super) fn tcp_produce(&mut self, now: Instant) -> bool {
        if let Some((dst, repr)) = self.tcp.rst_out.pop_front() {
            if repr.flags.rst() {
                self.stats.tcp_rst_tx += 1;
            }
            self.tcp_emit(dst, &repr, None);
            return true;
        }
        while let Some(h) = self.tcp.dirty.pop_front() {
            let Some(e) = self.tcp_entry(h) else { continue };
            e.dirty = false;
            if let Some(rst) = e.conn.take_rst() {
                let dst = *e.conn.remote.ip();
                self.stats.tcp_rst_tx += 1;
                self.tcp_emit(dst, &rst, None);
                self.tcp_refresh(h);
                return true;
            }
            let Some(e) = self.tcp_entry(h) else { continue };
            let Some((repr, offset, len)) = e.conn.poll_segment(now) else {
                // Nothing it may send now (window, Nagle): it is marked
                // again when an input or timer changes that.
                self.tcp_refresh_inner(h, false);
                continue;
            };
            let dst = *e.conn.remote.ip();
            self.tcp_emit(dst, &repr, Some((h, offset, len)));
            // Whatever else it has goes after the other connections' turns.
            self.tcp_refresh(h);
            return true;
        }
        false
    }

    fn tcp_emit(&mut self, dst: Ipv4Addr, repr: &TcpRepr, data: Option<(SocketHandle, usize, usize)>) {
        let Some(next_hop) = self.route(dst) else {
            self.stats.ipv4_no_route += 1;
            return;
        };
        let header = repr.header_len();
        let len = data.map(|(_, _, l)| l).unwrap_or(0);
        let mut buf = self.pool.take();
        buf.resize(header + len, 0);
        if let Some((h, offset, len)) = data {
            if let Some(c) = self.tcp_conn_ref(h) {
                let copied = c.copy_data(offset, &mut buf[header..header + len]);
                debug_assert_eq!(copied, len, "segment data must be in the send buffer");
            }
        }
        repr.emit(&mut buf, self.config.ipv4.addr, dst, len);
        self.stats.tcp_tx += 1;
        self.enqueue(dst, next_hop, Protocol::Tcp, buf);
    }
}
