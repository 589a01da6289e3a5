//! The socket calls (RFC 9293 3.10.1-3.10.6: OPEN, SEND, RECEIVE, CLOSE,
//! ABORT, STATUS) as the table serves them, with the errno policy of the
//! BSD socket API. `Interface` exposes them as its `tcp_*` methods.

use super::conn::{self, Connection};
use super::error::*;
use super::listener::Listener;
use super::table::{conn_ref, ConnEntry, Cx, TcpKind, TcpSocket, TcpTable};
use super::trace::{ConnTrace, Trace, TraceSample};
use super::{PmtuDiscover, TcpConnStats, TcpOption, TcpState};
use crate::config::Config;
use crate::socket::{Socket, SocketError, SocketHandle, SocketSet};
use crate::time::{Duration, Instant};
use core::net::SocketAddrV4;

/// Options a socket remembers before it has a connection to apply them to.
const MAX_PENDING_OPTIONS: usize = 16;

impl TcpTable {
    pub fn socket(&mut self, cx: &mut Cx) -> Result<SocketHandle, TcpSocketError> {
        let s = TcpSocket {
            kind: TcpKind::Unbound {
                port: None,
                options: Vec::new(),
            },
            queued_events: 0,
        };
        cx.sockets
            .insert(Socket::Tcp(s))
            .ok_or(TcpSocketError::TooManySockets)
    }

    pub fn bind(&mut self, cx: &mut Cx, h: SocketHandle, local: SocketAddrV4) -> Result<(), TcpBindError> {
        if !local.ip().is_unspecified() && *local.ip() != cx.config.ipv4.addr {
            return Err(TcpBindError::AddrNotAvailable);
        }
        let port = match local.port() {
            0 => self.ephemeral_port(cx, None).ok_or(TcpBindError::NoFreePort)?,
            p => p,
        };
        if self.listeners.contains_key(&port) || self.bound.contains_key(&port) {
            return Err(TcpBindError::AddrInUse);
        }
        match &mut cx.socket_mut(h).ok_or(TcpBindError::BadHandle)?.kind {
            TcpKind::Unbound { port: p @ None, .. } => *p = Some(port),
            TcpKind::Unbound { .. } => return Err(TcpBindError::AlreadyBound),
            _ => return Err(TcpBindError::AlreadyConnected),
        }
        self.bound.insert(port, h);
        Ok(())
    }

    pub fn listen(&mut self, cx: &mut Cx, h: SocketHandle, backlog: usize) -> Result<(), TcpListenError> {
        let backlog = backlog.clamp(1, cx.config.tcp.max_backlog);
        let socket = cx.socket_mut(h).ok_or(TcpListenError::BadHandle)?;
        let (port, options) = match &mut socket.kind {
            TcpKind::Unbound {
                port: Some(p),
                options,
            } => (*p, core::mem::take(options)),
            TcpKind::Unbound { port: None, .. } => return Err(TcpListenError::NotBound),
            TcpKind::Listener(l) => {
                l.backlog = backlog;
                return Ok(());
            }
            TcpKind::Conn(_) => return Err(TcpListenError::AlreadyConnected),
        };
        socket.kind = TcpKind::Listener(Listener::new(port, backlog, options));
        self.bound.remove(&port);
        self.listeners.insert(port, h);
        tracing::debug!(%h, port, backlog, "tcp listening");
        Ok(())
    }

    pub fn accept(&mut self, cx: &mut Cx, listener: SocketHandle) -> Result<SocketHandle, TcpAcceptError> {
        let l = cx.listener(listener).ok_or(TcpAcceptError::BadHandle)?;
        let h = l.accept_queue.pop_front().ok_or(TcpAcceptError::WouldBlock)?;
        if let Some(e) = cx.entry(h) {
            e.parent = None;
        }
        Ok(h)
    }

    /// Connect `h` to `remote`, which the caller checked is a unicast
    /// address it has a route to.
    pub fn connect(
        &mut self,
        cx: &mut Cx,
        now: Instant,
        h: SocketHandle,
        remote: SocketAddrV4,
    ) -> Result<(), TcpConnectError> {
        let (bound, options) = match &mut cx.socket_mut(h).ok_or(TcpConnectError::BadHandle)?.kind {
            TcpKind::Unbound { port, options } => (*port, core::mem::take(options)),
            TcpKind::Conn(e) => {
                return Err(match e.conn.state {
                    TcpState::SynSent | TcpState::SynReceived => TcpConnectError::InProgress,
                    _ => TcpConnectError::AlreadyConnected,
                })
            }
            TcpKind::Listener(_) => return Err(TcpConnectError::AlreadyConnected),
        };
        let port = match bound {
            Some(p) => {
                if self.conns.contains_key(&(p, remote)) || self.time_wait.contains(&(p, remote)) {
                    return Err(TcpConnectError::AddrInUse);
                }
                self.bound.remove(&p);
                p
            }
            None => self
                .ephemeral_port(cx, Some(remote))
                .ok_or(TcpConnectError::NoFreePort)?,
        };
        let local = SocketAddrV4::new(cx.config.ipv4.addr, port);
        let ep = self.endpoints(cx.config, now, local, remote);
        let mut conn = Connection::connect(now, &cx.config.tcp, ep);
        for o in options {
            conn.set_option(now, o);
        }
        self.install(cx, h, conn, None);
        cx.stats.tcp_active_opens += 1;
        tracing::debug!(%h, %local, %remote, "tcp connect");
        self.refresh(cx, h);
        Ok(())
    }

    pub fn send(&mut self, cx: &mut Cx, h: SocketHandle, data: &[u8]) -> Result<usize, TcpSendError> {
        let e = cx.entry(h).ok_or(TcpSendError::BadHandle)?;
        if let Some(err) = e.conn.error.filter(|_| e.conn.state == TcpState::Closed) {
            return Err(TcpSendError::Failed(err));
        }
        match e.conn.state {
            TcpState::SynSent | TcpState::SynReceived => return Err(TcpSendError::WouldBlock),
            TcpState::Established | TcpState::CloseWait if e.conn.may_send() => {}
            TcpState::Closed if e.conn.error.is_none() => return Err(TcpSendError::NotConnected),
            _ => return Err(TcpSendError::Closed),
        }
        if data.is_empty() {
            return Ok(0);
        }
        let n = e.conn.send(data);
        if n == 0 {
            return Err(TcpSendError::WouldBlock);
        }
        self.refresh(cx, h);
        Ok(n)
    }

    pub fn recv(&mut self, cx: &mut Cx, h: SocketHandle, buf: &mut [u8]) -> Result<usize, TcpRecvError> {
        let e = cx.entry(h).ok_or(TcpRecvError::BadHandle)?;
        let n = e.conn.recv(buf);
        if n > 0 {
            self.refresh(cx, h);
            return Ok(n);
        }
        let conn = &e.conn;
        if buf.is_empty() || conn.peer_closed() {
            return Ok(0);
        }
        match conn.state {
            TcpState::Closed => match conn.error {
                Some(err) => Err(TcpRecvError::Failed(err)),
                None => Ok(0),
            },
            TcpState::SynSent | TcpState::SynReceived => Err(TcpRecvError::WouldBlock),
            TcpState::TimeWait | TcpState::Closing | TcpState::LastAck | TcpState::CloseWait => Ok(0),
            _ => Err(TcpRecvError::WouldBlock),
        }
    }

    pub fn recv_with<R>(
        &mut self,
        cx: &mut Cx,
        h: SocketHandle,
        f: impl FnOnce(&[u8]) -> (usize, R),
    ) -> Result<R, TcpRecvError> {
        let e = cx.entry(h).ok_or(TcpRecvError::BadHandle)?;
        let (used, r) = f(e.conn.recv_slice(usize::MAX));
        e.conn.consume(used);
        self.refresh(cx, h);
        Ok(r)
    }

    pub fn send_with<R>(
        &mut self,
        cx: &mut Cx,
        h: SocketHandle,
        f: impl FnOnce(&mut [u8]) -> (usize, R),
    ) -> Result<R, TcpSendError> {
        let e = cx.entry(h).ok_or(TcpSendError::BadHandle)?;
        if !e.conn.may_send() {
            return Err(if e.conn.state.is_synchronized() {
                TcpSendError::Closed
            } else {
                TcpSendError::WouldBlock
            });
        }
        let (n, r) = f(e.conn.send_buffer(usize::MAX));
        e.conn.commit_send(n);
        self.refresh(cx, h);
        Ok(r)
    }

    pub fn shutdown(&mut self, cx: &mut Cx, h: SocketHandle) -> Result<(), TcpShutdownError> {
        let e = cx.entry(h).ok_or(TcpShutdownError::NotConnected)?;
        if e.conn.state == TcpState::Closed || e.conn.state == TcpState::SynSent {
            e.conn.shutdown_write();
            return Err(TcpShutdownError::NotConnected);
        }
        e.conn.shutdown_write();
        self.refresh(cx, h);
        Ok(())
    }

    pub fn close(&mut self, cx: &mut Cx, h: SocketHandle) {
        let now = cx.now;
        let Some(socket) = cx.socket_mut(h) else {
            return;
        };
        match &mut socket.kind {
            TcpKind::Unbound { port, .. } => {
                if let Some(p) = *port {
                    self.bound.remove(&p);
                }
                cx.sockets.remove(h);
            }
            TcpKind::Listener(l) => {
                let port = l.port;
                let established: Vec<SocketHandle> = l.accept_queue.drain(..).collect();
                self.listeners.remove(&port);
                cx.sockets.remove(h);
                // As Linux (inet_csk_listen_stop) and gVisor: connections
                // nobody accepted are reset, while half-open ones vanish
                // silently; the peer's next segment finds no connection
                // and draws a RST (RFC 9293 3.10.7.1). RFC 9293 has no
                // listener separate from its SYN-RECEIVED children, so it
                // does not choose.
                self.requests.remove_listener(h);
                for c in established {
                    self.abort(cx, c);
                }
                tracing::debug!(%h, port, "tcp listener closed");
            }
            TcpKind::Conn(e) => {
                e.app_closed = true;
                match e.conn.state {
                    TcpState::Closed | TcpState::SynSent => self.free(cx, h),
                    TcpState::TimeWait => self.enter_time_wait(cx, h),
                    _ if e.conn.recv_queued() > 0 => self.abort(cx, h),
                    _ => {
                        e.conn.shutdown_write();
                        e.conn.orphaned(now);
                        self.refresh(cx, h);
                    }
                }
            }
        }
    }

    pub fn abort(&mut self, cx: &mut Cx, h: SocketHandle) {
        let now = cx.now;
        let Some(e) = cx.entry(h) else {
            self.close(cx, h);
            return;
        };
        let rst = e.conn.abort(now);
        let remote = e.conn.remote;
        if let Some(r) = rst {
            self.queue_rst(cx, *remote.ip(), r);
        }
        self.free(cx, h);
    }

    pub fn take_error(&mut self, cx: &mut Cx, h: SocketHandle) -> Option<SocketError> {
        cx.entry(h)?.conn.error.take()
    }

    pub fn set_trace(
        &mut self,
        cx: &mut Cx,
        h: SocketHandle,
        capacity: Option<usize>,
    ) -> Result<(), TcpOptionError> {
        let now = cx.now;
        let e = cx.entry(h).ok_or(TcpOptionError::BadHandle)?;
        e.trace = capacity.map(|c| {
            let mut t = Box::new(Trace::new(c));
            t.record(TraceSample::from_stats(now, &e.conn.stats()));
            t
        });
        Ok(())
    }

    /// Every traced connection's samples since the last drain, then the
    /// timelines of those that ended.
    pub fn drain_traces(&mut self, cx: &mut Cx, out: &mut Vec<ConnTrace>) {
        for h in self.conns.values().copied() {
            let Some(e) = cx.entry(h) else { continue };
            let Some(t) = e.trace.as_mut() else { continue };
            let mut samples = Vec::new();
            let dropped = t.drain(&mut samples);
            if !samples.is_empty() || dropped > 0 {
                out.push(ConnTrace {
                    handle: h,
                    local: e.conn.local,
                    remote: e.conn.remote,
                    samples,
                    dropped,
                    finished: false,
                });
            }
        }
        out.extend(self.finished_traces.drain(..));
    }

    pub fn drain_trace(&mut self, cx: &mut Cx, h: SocketHandle, out: &mut Vec<TraceSample>) -> u64 {
        match cx.entry(h).and_then(|e| e.trace.as_mut()) {
            Some(t) => t.drain(out),
            None => 0,
        }
    }

    pub fn set_option(
        &mut self,
        cx: &mut Cx,
        now: Instant,
        h: SocketHandle,
        opt: TcpOption,
    ) -> Result<(), TcpOptionError> {
        let socket = cx.socket_mut(h).ok_or(TcpOptionError::BadHandle)?;
        if !opt.in_range() {
            return Err(TcpOptionError::InvalidValue);
        }
        let opt = opt.kept();
        match &mut socket.kind {
            TcpKind::Unbound { options, .. } | TcpKind::Listener(Listener { options, .. }) => {
                options.retain(|o| core::mem::discriminant(o) != core::mem::discriminant(&opt));
                if options.len() < MAX_PENDING_OPTIONS {
                    options.push(opt);
                }
            }
            TcpKind::Conn(e) => e.conn.set_option(now, opt),
        }
        self.refresh(cx, h);
        Ok(())
    }
}

// ----- getters: they need only the sockets (and the configuration) -----

fn tcp_socket(sockets: &SocketSet, h: SocketHandle) -> Option<&TcpSocket> {
    sockets.get(h)?.as_tcp()
}

pub(crate) fn can_accept(sockets: &SocketSet, h: SocketHandle) -> bool {
    matches!(tcp_socket(sockets, h), Some(TcpSocket { kind: TcpKind::Listener(l), .. }) if !l.accept_queue.is_empty())
}

pub(crate) fn state(sockets: &SocketSet, h: SocketHandle) -> Option<TcpState> {
    match &tcp_socket(sockets, h)?.kind {
        TcpKind::Unbound { .. } => Some(TcpState::Closed),
        TcpKind::Listener(_) => Some(TcpState::Listen),
        TcpKind::Conn(e) => Some(e.conn.state),
    }
}

pub(crate) fn local_addr(sockets: &SocketSet, config: &Config, h: SocketHandle) -> Option<SocketAddrV4> {
    match &tcp_socket(sockets, h)?.kind {
        TcpKind::Unbound { port, .. } => Some(SocketAddrV4::new(config.ipv4.addr, port.unwrap_or(0))),
        TcpKind::Listener(l) => Some(SocketAddrV4::new(config.ipv4.addr, l.port)),
        TcpKind::Conn(e) => Some(e.conn.local),
    }
}

pub(crate) fn stats(sockets: &SocketSet, h: SocketHandle) -> Option<TcpConnStats> {
    conn_ref(sockets, h).map(|c| c.stats())
}

/// Read back an option's current value.
pub(crate) fn get_option(
    sockets: &SocketSet,
    config: &Config,
    h: SocketHandle,
    opt: TcpOption,
) -> Option<TcpOption> {
    match &tcp_socket(sockets, h)?.kind {
        TcpKind::Unbound { options, .. } | TcpKind::Listener(Listener { options, .. }) => {
            Some(pending_option(config, options, opt))
        }
        TcpKind::Conn(e) => Some(conn_option(e, opt)),
    }
}

/// An option set before there was a connection, or its default.
fn pending_option(config: &Config, options: &[TcpOption], opt: TcpOption) -> TcpOption {
    let cfg = &config.tcp;
    let pending = options
        .iter()
        .copied()
        .find(|o| core::mem::discriminant(o) == core::mem::discriminant(&opt))
        .map(|o| match o {
            // Linux reads back whole SYN-ACK timeouts.
            TcpOption::DeferAccept(d) => {
                let n = conn::secs_to_retrans(d, cfg.rto_initial, cfg.rto_max);
                TcpOption::DeferAccept(conn::retrans_to_secs(n, cfg.rto_initial, cfg.rto_max))
            }
            o => o,
        });
    pending.unwrap_or(match opt {
        TcpOption::RecvBuffer(_) => TcpOption::RecvBuffer(cfg.recv_buffer),
        TcpOption::SendBuffer(_) => TcpOption::SendBuffer(cfg.send_buffer),
        TcpOption::MaxSegment(_) => TcpOption::MaxSegment((config.mtu - 40) as u16),
        TcpOption::SynCount(_) => TcpOption::SynCount(cfg.syn_retries.min(127) as u8),
        TcpOption::KeepIdle(_) => TcpOption::KeepIdle(cfg.keepalive_idle),
        TcpOption::KeepInterval(_) => TcpOption::KeepInterval(cfg.keepalive_interval),
        TcpOption::KeepCount(_) => TcpOption::KeepCount(cfg.keepalive_count),
        TcpOption::UserTimeout(_) => TcpOption::UserTimeout(Duration::ZERO),
        TcpOption::Congestion(_) => TcpOption::Congestion(cfg.congestion_control),
        TcpOption::Tos(_) => TcpOption::Tos(0),
        TcpOption::PmtuDiscover(_) => TcpOption::PmtuDiscover(PmtuDiscover::default()),
        other => other,
    })
}

fn conn_option(e: &ConnEntry, opt: TcpOption) -> TcpOption {
    let c = &e.conn;
    match opt {
        TcpOption::NoDelay(_) => TcpOption::NoDelay(c.nodelay()),
        TcpOption::KeepAlive(_) => TcpOption::KeepAlive(c.keepalive_enabled()),
        TcpOption::KeepIdle(_) => TcpOption::KeepIdle(c.keepalive_idle()),
        TcpOption::KeepInterval(_) => TcpOption::KeepInterval(c.keepalive_interval()),
        TcpOption::KeepCount(_) => TcpOption::KeepCount(c.keepalive_count()),
        TcpOption::UserTimeout(_) => TcpOption::UserTimeout(c.user_timeout()),
        TcpOption::RecvBuffer(_) => TcpOption::RecvBuffer(c.rx_capacity()),
        TcpOption::SendBuffer(_) => TcpOption::SendBuffer(c.tx_capacity()),
        TcpOption::MaxSegment(_) => TcpOption::MaxSegment(c.payload_mss() as u16),
        TcpOption::QuickAck(_) => TcpOption::QuickAck(!c.pingpong()),
        TcpOption::Linger2(_) => TcpOption::Linger2(c.linger2()),
        TcpOption::Cork(_) => TcpOption::Cork(c.cork()),
        TcpOption::SynCount(_) => TcpOption::SynCount(c.syn_retries() as u8),
        TcpOption::DeferAccept(_) => TcpOption::DeferAccept(c.defer_accept()),
        TcpOption::Congestion(_) => TcpOption::Congestion(c.congestion_algorithm()),
        TcpOption::Tos(_) => TcpOption::Tos(c.ip_tos()),
        TcpOption::PmtuDiscover(_) => TcpOption::PmtuDiscover(c.pmtu_discover()),
    }
}
