//! TCP's table of sockets: demultiplexing, the RFC 5961 challenge-ACK
//! budget, RSTs for segments that reach nobody (RFC 9293 3.10.7.1),
//! RFC 6528 initial sequence numbers and RFC 6056 ephemeral ports, timers
//! and the output queue.
//!
//! Connections are found by a hash of (local port, remote address), then
//! half-open ones (`requests`: SYN-RECEIVED as small records, with their
//! own timer heap), then TIME-WAIT entries, then a listener by its port.
//! A connection's timers are one deadline in a
//! min-heap (`deadlines`), so the next deadline of all of TCP is its top.
//! Connections with something to send wait in a FIFO of handles (each at
//! most once), which [`TcpTable::produce`] serves round-robin, one segment
//! at a time.
//!
//! The table does not know the interface: the interface hands it a [`Cx`]
//! (the sockets, counters and configuration) with every call, a parsed
//! segment with every input, and emits the [`Segment`]s it returns.

use super::conn::{Challenge, Connection, Discard, Endpoints, Outcome, Transition};
use super::deadlines::Deadlines;
use super::listener::Listener;
use super::requests::Requests;
use super::seq::SeqNumber;
use super::time_wait::{TimeWaitTable, TimeWaitVerdict};
use super::trace::{ConnTrace, Trace, TraceSample, FINISHED_TRACES};
use super::{TcpOption, TcpState};
use crate::config::Config;
use crate::hash::{Keyed, KeyedMap};
use crate::iface::util::TokenBucket;
use crate::socket::{Socket, SocketError, SocketHandle, SocketSet};
use crate::socket::{EV_CLOSED, EV_CONNECTED, EV_ERROR, EV_READABLE, EV_WRITABLE};
use crate::stats::Stats;
use crate::time::Instant;
use crate::wire::ipv4::IpTx;
use crate::wire::{TcpFlags, TcpOptions, TcpRepr, UnreachableCode};
use core::net::{Ipv4Addr, SocketAddrV4};
use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};

/// RSTs and ACKs for segments that reach no connection, waiting for the
/// device.
const RST_QUEUE_LEN: usize = 64;

/// A connection's name in the table: (local port, remote address).
pub(crate) type ConnKey = (u16, SocketAddrV4);

/// A source of random numbers (the interface's seeded generator).
pub(crate) trait Random {
    fn next_u64(&mut self) -> u64;
}

/// What the table borrows from its owner for one call.
pub(crate) struct Cx<'a> {
    /// The latest time the owner has seen (for calls that carry none).
    pub now: Instant,
    pub config: &'a Config,
    pub stats: &'a mut Stats,
    pub sockets: &'a mut SocketSet,
    pub rng: &'a mut dyn Random,
}

impl Cx<'_> {
    pub fn socket_mut(&mut self, h: SocketHandle) -> Option<&mut TcpSocket> {
        self.sockets.get_mut(h).and_then(Socket::as_tcp_mut)
    }

    pub fn entry(&mut self, h: SocketHandle) -> Option<&mut ConnEntry> {
        match &mut self.socket_mut(h)?.kind {
            TcpKind::Conn(e) => Some(e),
            _ => None,
        }
    }

    pub fn listener(&mut self, h: SocketHandle) -> Option<&mut Listener> {
        match &mut self.socket_mut(h)?.kind {
            TcpKind::Listener(l) => Some(l),
            _ => None,
        }
    }

    pub fn push_event(&mut self, h: SocketHandle, kind: u8) {
        self.sockets.push_event(h, kind);
    }
}

/// The connection of `h`, if it has one.
pub(crate) fn conn_ref(sockets: &SocketSet, h: SocketHandle) -> Option<&Connection> {
    match &sockets.get(h)?.as_tcp()?.kind {
        TcpKind::Conn(e) => Some(&e.conn),
        _ => None,
    }
}

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

pub(crate) struct ConnEntry {
    pub conn: Box<Connection>,
    /// The listener, while the connection is not yet accepted.
    pub parent: Option<SocketHandle>,
    /// The application closed its handle: free the connection when done.
    pub app_closed: bool,
    deadline: Option<Instant>,
    dirty: bool,
    /// The connection's timeline, while the application records one.
    pub trace: Option<Box<Trace>>,
}

/// A segment for the interface to send: header fields, and for data the
/// connection and the offset and length of its bytes in the send buffer
/// (see [`conn_ref`] and `Connection::copy_data`).
pub(crate) struct Segment {
    pub dst: Ipv4Addr,
    pub repr: TcpRepr,
    pub data: Option<(SocketHandle, usize, usize)>,
    /// Non-zero: a super-segment for the device to cut into segments of
    /// this much payload (TSO).
    pub gso_size: u16,
    /// The socket's TOS byte and DF.
    pub ip: IpTx,
}

/// What TCP made of an ICMP error about one of its segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IcmpMatch {
    /// A connection took it.
    Delivered,
    /// No connection sent the quoted segment.
    NoConnection,
    /// The quoted segment is not in flight, so a blind attacker may have
    /// made it up (RFC 5927 4.1).
    OutOfWindow,
}

/// RFC 5961 7: an interface-wide budget of challenge ACKs per second,
/// on top of each connection's limit. A fixed budget is a side channel
/// (CVE-2016-5696: an attacker counts the challenge ACKs left to its own
/// connection), so, as Linux's tcp_send_challenge_ack, each second's
/// budget is drawn uniformly from [limit/2, limit/2 + limit) with the
/// interface's seeded generator; `u32::MAX` turns it off.
struct ChallengeBudget {
    tokens: u32,
    second: u64,
}

impl ChallengeBudget {
    fn allow(&mut self, now: Instant, cx: &mut Cx) -> bool {
        let limit = cx.config.tcp.challenge_ack_limit;
        if limit == u32::MAX {
            return true;
        }
        let second = now.total_micros() / 1_000_000;
        if second != self.second {
            self.second = second;
            let half = limit.div_ceil(2);
            let draw = match limit {
                0 => 0,
                _ => (cx.rng.next_u64() % u64::from(limit)) as u32,
            };
            self.tokens = half.saturating_add(draw);
        }
        if self.tokens > 0 {
            self.tokens -= 1;
            true
        } else {
            false
        }
    }
}

pub(crate) struct TcpTable {
    pub(super) conns: KeyedMap<ConnKey, SocketHandle>,
    pub(super) listeners: HashMap<u16, SocketHandle>,
    /// Ports taken by bound but not yet listening or connected sockets.
    pub(super) bound: HashMap<u16, SocketHandle>,
    pub(super) time_wait: TimeWaitTable,
    /// Half-open connections (SYN-RECEIVED), as small records.
    pub(super) requests: Requests,
    timers: Deadlines,
    dirty: VecDeque<SocketHandle>,
    /// RSTs, and half-open connections' SYN-ACKs with their listener's
    /// IP_TOS and IP_MTU_DISCOVER.
    rst_out: VecDeque<(Ipv4Addr, TcpRepr, IpTx)>,
    pub(super) secret: u64,
    challenge: ChallengeBudget,
    /// RSTs to segments for no connection (`TcpConfig::rst_per_sec`),
    /// made on first use from the configuration then.
    rst_limiter: Option<TokenBucket>,
    /// Out-of-order bytes held by all connections together, against
    /// `TcpConfig::max_ooo_bytes_total`.
    ooo_bytes: usize,
    /// Timelines of traced connections that ended, until drained.
    pub(super) finished_traces: VecDeque<ConnTrace>,
}

impl TcpTable {
    pub fn new(secret: u64, hasher: Keyed) -> Self {
        TcpTable {
            conns: KeyedMap::with_hasher(hasher),
            listeners: HashMap::new(),
            bound: HashMap::new(),
            time_wait: TimeWaitTable::default(),
            requests: Requests::default(),
            timers: Deadlines::default(),
            dirty: VecDeque::new(),
            rst_out: VecDeque::new(),
            secret,
            challenge: ChallengeBudget {
                tokens: 0,
                second: u64::MAX,
            },
            rst_limiter: None,
            ooo_bytes: 0,
            finished_traces: VecDeque::new(),
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let t = self.timers.next();
        [t, self.time_wait.next_expiry(), self.requests.next()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Connections, half-open ones included (not TIME-WAIT entries).
    pub fn connections(&self) -> usize {
        self.conns.len() + self.requests.len()
    }

    /// Half-open connections (SYN-RECEIVED, held as small records).
    pub fn half_open(&self) -> usize {
        self.requests.len()
    }

    pub fn ooo_bytes(&self) -> usize {
        self.ooo_bytes
    }

    pub fn time_wait_len(&self) -> usize {
        self.time_wait.len()
    }

    pub fn conn_handles(&self) -> impl Iterator<Item = SocketHandle> + '_ {
        self.conns.values().copied()
    }

    /// The half-open connections, unfolded one at a time, for queries.
    pub fn half_open_conns<'a>(
        &'a self,
        config: &'a Config,
        sockets: &'a SocketSet,
    ) -> impl Iterator<Item = Connection> + 'a {
        self.requests
            .iter()
            .filter_map(move |(key, r)| self.resume(config, sockets, r.listener, key.1, &r.half))
    }

    // ----- input -----

    /// RFC 9293 3.10.7: find who a segment from `src` is for, and hand it
    /// over: a connection, a TIME-WAIT entry, a listener, or nobody.
    pub fn input(&mut self, cx: &mut Cx, now: Instant, src: Ipv4Addr, repr: &TcpRepr, data: &[u8]) {
        let remote = SocketAddrV4::new(src, repr.src_port);
        let key = (repr.dst_port, remote);
        if let Some(&h) = self.conns.get(&key) {
            self.conn_input(cx, now, h, repr, data);
            return;
        }
        if let Some(req) = self.requests.remove(&key) {
            self.handshake_input(cx, now, req.listener, remote, &req.half, repr, data);
            return;
        }
        let mut reopen_isn = None;
        if self.time_wait.contains(&key) {
            let listening = self.listeners.contains_key(&key.0);
            match self.time_wait.input(now, key, repr, data.len(), listening, cx) {
                TimeWaitVerdict::Handled(None) => return,
                TimeWaitVerdict::Handled(Some(ack)) => {
                    self.queue_rst(cx, *key.1.ip(), ack);
                    return;
                }
                TimeWaitVerdict::Reopen(isn) => reopen_isn = Some(isn),
            }
        }
        if let Some(&l) = self.listeners.get(&repr.dst_port) {
            self.listen_input(cx, now, l, remote, repr, data, reopen_isn);
            return;
        }
        cx.stats.tcp_no_socket += 1;
        self.reset_closed(cx, src, repr, data.len());
    }

    pub(super) fn conn_input(
        &mut self,
        cx: &mut Cx,
        now: Instant,
        h: SocketHandle,
        repr: &TcpRepr,
        data: &[u8],
    ) {
        // The connection logs its transitions (at debug) inside this span,
        // which names its handle.
        let _span = tracing::debug_span!("conn", %h).entered();
        let Some(e) = cx.entry(h) else { return };
        // Linux keeps the handshake's final ACK waiting (drops it) while the
        // accept queue is full; the SYN-ACK timer tries again later.
        let final_ack = e.conn.state == TcpState::SynReceived
            && repr.flags.ack()
            && !repr.flags.rst()
            && !repr.flags.syn();
        if let Some(p) = e.parent.filter(|_| final_ack) {
            if cx.listener(p).is_some_and(|l| l.accept_queue_full()) {
                cx.stats.tcp_accept_queue_full += 1;
                return;
            }
        }
        let Some(e) = cx.entry(h) else { return };
        // An ACK the previous segment of this batch called for goes first
        // (when the queue has room; else it stays owed and rides out later).
        if self.rst_out.len() < RST_QUEUE_LEN {
            if let Some(ack) = e.conn.take_owed_ack(now) {
                self.rst_out.push_back((*e.conn.remote.ip(), ack, e.conn.ip_tx()));
            }
        }
        let ooo_room = cx.config.tcp.max_ooo_bytes_total.saturating_sub(self.ooo_bytes);
        let Some(e) = cx.entry(h) else { return };
        let closing = matches!(e.conn.state, TcpState::FinWait1 | TcpState::FinWait2);
        // Out-of-order data may only take what the stack-wide budget has
        // left; the connection drops (and counts) a segment beyond it.
        let (ooo_before, budget_before, ranges_before) = (
            e.conn.ooo_bytes(),
            e.conn.ooo_budget_drops(),
            e.conn.ooo_range_drops(),
        );
        e.conn.set_ooo_room(ooo_room);
        let spurious_before = e.conn.spurious_counts();
        let rack_before = e.conn.rack_counts();
        let mut out = e.conn.process(now, repr, data);
        let rack_after = e.conn.rack_counts();
        self.ooo_bytes = self.ooo_bytes.saturating_sub(ooo_before) + e.conn.ooo_bytes();
        let [d, du, tu, fs] = e.conn.spurious_counts();
        let (budget_drops, range_drops) = (
            e.conn.ooo_budget_drops() - budget_before,
            e.conn.ooo_range_drops() - ranges_before,
        );
        cx.stats.tcp_ooo_budget_full += budget_drops;
        cx.stats.tcp_ooo_ranges_full += range_drops;
        let [d0, du0, tu0, fs0] = spurious_before;
        cx.stats.tcp_dsack_recv += d - d0;
        cx.stats.tcp_dsack_undo += du - du0;
        cx.stats.tcp_ts_undo += tu - tu0;
        cx.stats.tcp_frto_spurious += fs - fs0;
        add_rack_counts(cx, rack_before, rack_after);
        let Some(e) = cx.entry(h) else { return };
        if closing && e.app_closed && e.conn.recv_queued() > 0 {
            // RFC 1122 4.2.2.13 / RFC 2525 2.17: new data after close() can
            // never be read: tell the peer it was lost (as Linux does).
            let rst = e.conn.reset_unreadable(now);
            let dst = *e.conn.remote.ip();
            self.queue_rst(cx, dst, rst);
            self.free(cx, h);
            return;
        }
        if self.challenge_allowed(cx, now, out.challenge.take()) {
            if let Some(e) = cx.entry(h) {
                e.conn.grant_challenge();
            }
        }
        self.after(cx, h, out);
    }

    /// Whether the challenge ACK a connection asked for may go, within
    /// the interface's budget (RFC 5961 7), counted either way.
    pub(super) fn challenge_allowed(&mut self, cx: &mut Cx, now: Instant, c: Option<Challenge>) -> bool {
        match c {
            Some(Challenge::Send) if self.challenge.allow(now, cx) => {
                cx.stats.tcp_challenge_acks += 1;
                true
            }
            Some(_) => {
                cx.stats.tcp_challenge_rate_limited += 1;
                false
            }
            None => false,
        }
    }

    /// A connection joining the table holds this many out-of-order bytes.
    pub(super) fn add_ooo_bytes(&mut self, n: usize) {
        self.ooo_bytes += n;
    }

    /// RFC 9293 3.10.7.1: a segment for no connection gets a RST, unless
    /// it is one.
    pub(super) fn reset_closed(&mut self, cx: &mut Cx, dst: Ipv4Addr, repr: &TcpRepr, len: usize) {
        if repr.flags.rst() {
            return;
        }
        let (seq, ack) = if repr.flags.ack() {
            (SeqNumber(repr.ack), None)
        } else {
            let seg_len = len + usize::from(repr.flags.syn()) + usize::from(repr.flags.fin());
            (SeqNumber(0), Some(SeqNumber(repr.seq) + seg_len))
        };
        let rst = rst_repr(repr.dst_port, repr.src_port, seq, ack);
        let tcp = &cx.config.tcp;
        if tcp.rst_per_sec != u32::MAX {
            let bucket = self
                .rst_limiter
                .get_or_insert_with(|| TokenBucket::new(tcp.rst_per_sec, tcp.rst_burst));
            if !bucket.take(cx.now) {
                cx.stats.tcp_rst_rate_limited += 1;
                return;
            }
        }
        self.queue_rst(cx, dst, rst);
    }

    /// An ICMP error quoting one of our segments (RFC 1122 4.2.3.9).
    /// `quoted_seq` is the quoted sequence number, which must be in flight
    /// (RFC 5927 4.1); a locally made error (a failed ARP resolution) has
    /// none to check.
    pub fn icmp_error(
        &mut self,
        cx: &mut Cx,
        local_port: u16,
        remote: SocketAddrV4,
        quoted_seq: Option<SeqNumber>,
        err: SocketError,
    ) -> IcmpMatch {
        let Some(&h) = self.conns.get(&(local_port, remote)) else {
            return match self.requests.get(&(local_port, remote)) {
                // A half-open connection sent only its SYN-ACK (RFC 5927
                // 4.1). As Linux (tcp_req_err), the error is not kept:
                // there is nobody to report it to, and POSIX wants no
                // network error from accept(). Net or host unreachable,
                // time exceeded and parameter problem drop the half-open
                // connection (the peer's SYN came from where the SYN-ACK
                // cannot go: Linux tcp_v4_err's abort for
                // TCP_NEW_SYN_RECV); other errors leave the SYN-ACK timer
                // to go on.
                Some(r) if quoted_seq.is_none_or(|s| s == r.half.iss) => {
                    let abort = matches!(
                        err,
                        SocketError::Unreachable {
                            code: UnreachableCode::Net | UnreachableCode::Host,
                            ..
                        } | SocketError::TimeExceeded { .. }
                            | SocketError::ParameterProblem { .. }
                    );
                    if abort {
                        self.requests.remove(&(local_port, remote));
                        cx.stats.tcp_half_open_icmp_aborts += 1;
                    }
                    IcmpMatch::Delivered
                }
                Some(_) => IcmpMatch::OutOfWindow,
                None => IcmpMatch::NoConnection,
            };
        };
        let min_path_mtu = cx.config.icmp.min_path_mtu;
        let Some(e) = cx.entry(h) else {
            return IcmpMatch::NoConnection;
        };
        if quoted_seq.is_some_and(|seq| !e.conn.icmp_seq_acceptable(seq)) {
            return IcmpMatch::OutOfWindow;
        }
        let out = match err {
            // RFC 1191: about the path, never fatal (Linux tcp_v4_err). The
            // new MTU is clamped from below, as Linux's min_pmtu; an old
            // router's message without one (RFC 1191 5) changes nothing.
            SocketError::Unreachable {
                code: crate::wire::UnreachableCode::FragmentationNeeded,
                next_hop_mtu,
                ..
            } => match next_hop_mtu {
                // IP_MTU_DISCOVER may say the path MTU is not ours to
                // follow (Linux tcp_v4_mtu_reduced).
                Some(mtu) if e.conn.pmtu_discover().accepts_path_mtu() => {
                    e.conn.on_path_mtu(usize::from(mtu).max(min_path_mtu))
                }
                _ => e.conn.unchanged(),
            },
            _ => e.conn.on_icmp_error(err),
        };
        self.after(cx, h, out);
        IcmpMatch::Delivered
    }

    // ----- timers and output -----

    pub fn handle_timeout(&mut self, cx: &mut Cx, now: Instant) {
        // Only the deadlines due when the call began: a connection that
        // re-arms a timer at or before `now` waits for the next call, so a
        // timer bug shows as a connection that fires on every poll, never
        // as a stack that spins here.
        let due = self.timers.take_due(now);
        for &(t, h) in &due {
            let Some(e) = cx.entry(h) else { continue };
            if e.deadline != Some(t) {
                continue; // moved meanwhile; the new entry is in `timers`
            }
            e.deadline = None;
            self.timers.cleared(Some(t));
            let _span = tracing::debug_span!("conn", %h).entered();
            let rack_before = e.conn.rack_counts();
            let out = e.conn.on_timer(now);
            let rack_after = e.conn.rack_counts();
            add_rack_counts(cx, rack_before, rack_after);
            self.after(cx, h, out);
        }
        self.timers.return_due(due);
        self.skip_stale_deadlines(cx);
        self.time_wait.expire(now);
        if self.requests.next().is_some_and(|t| t <= now) {
            let mut due = Vec::new();
            self.requests.take_due(now, &mut due);
            for (key, req) in &due {
                self.request_timeout(cx, now, key.1, req);
            }
        }
    }

    /// The next TCP segment to send (a queued RST or ACK, or a
    /// connection's output), if any.
    pub fn produce(&mut self, cx: &mut Cx, now: Instant) -> Option<Segment> {
        if let Some((dst, repr, ip)) = self.rst_out.pop_front() {
            if repr.flags.rst() {
                cx.stats.tcp_rst_tx += 1;
            }
            return Some(Segment {
                dst,
                repr,
                data: None,
                gso_size: 0,
                ip,
            });
        }
        while let Some(h) = self.dirty.pop_front() {
            let Some(e) = cx.entry(h) else { continue };
            e.dirty = false;
            let dst = *e.conn.remote.ip();
            let Some((repr, offset, len)) = e.conn.poll_segment(now) else {
                // Nothing it may send now (window, Nagle): it is marked
                // again when an input or timer changes that.
                self.refresh_inner(cx, h, false);
                continue;
            };
            let gso_size = e.conn.gso_size(&repr, len);
            let ip = e.conn.ip_tx();
            // Whatever else it has goes after the other connections' turns.
            self.refresh(cx, h);
            let data = Some((h, offset, len));
            return Some(Segment {
                dst,
                repr,
                data,
                gso_size,
                ip,
            });
        }
        None
    }

    // ----- internals -----

    /// RFC 6528: ISN = M + F(localip, localport, remoteip, remoteport,
    /// secretkey), M a 4 microsecond clock, F a keyed hash (SipHash here,
    /// with the secret hashed in first). The same hash, keyed apart, gives
    /// the connection's timestamp offset (RFC 7323 5.4).
    pub(super) fn endpoints(
        &self,
        config: &Config,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
    ) -> Endpoints {
        let f = |tag: u8| {
            let mut h = DefaultHasher::new();
            (self.secret, tag, local, remote).hash(&mut h);
            h.finish() as u32
        };
        let m = (now.total_micros() / 4) as u32;
        Endpoints {
            local,
            remote,
            iss: SeqNumber(m.wrapping_add(f(0))),
            ts_offset: f(1),
            mtu: config.mtu,
        }
    }

    /// RFC 6056 algorithm 1 with a per-destination check: a random start,
    /// then the first port not in use towards `remote` (or at all, for bind).
    pub(super) fn ephemeral_port(&self, cx: &mut Cx, remote: Option<SocketAddrV4>) -> Option<u16> {
        let (lo, hi) = cx.config.udp.ephemeral_ports;
        let span = u32::from(hi - lo) + 1;
        let start = (cx.rng.next_u64() % u64::from(span)) as u32;
        (0..span).map(|i| lo + ((start + i) % span) as u16).find(|&p| {
            !self.listeners.contains_key(&p)
                && !self.bound.contains_key(&p)
                && match remote {
                    Some(r) => !self.conns.contains_key(&(p, r)) && !self.time_wait.contains(&(p, r)),
                    None => !self.conns.keys().any(|(lp, _)| *lp == p),
                }
        })
    }

    pub(super) fn install(
        &mut self,
        cx: &mut Cx,
        h: SocketHandle,
        conn: Connection,
        parent: Option<SocketHandle>,
    ) {
        self.install_traced(cx, h, conn, parent, None);
    }

    /// Install `conn`; with `TcpConfig::trace_connections`, its timeline
    /// starts with `first` (a half-open connection's, at its SYN), then
    /// with what it is now.
    pub(super) fn install_traced(
        &mut self,
        cx: &mut Cx,
        h: SocketHandle,
        conn: Connection,
        parent: Option<SocketHandle>,
        first: Option<TraceSample>,
    ) {
        let key = (conn.local.port(), conn.remote);
        self.conns.insert(key, h);
        let trace = cx.config.tcp.trace_connections.map(|c| {
            let mut t = Box::new(Trace::new(c));
            if let Some(s) = first {
                t.record(s);
            }
            t.record(TraceSample::from_stats(cx.now, &conn.stats()));
            t
        });
        if let Some(s) = cx.socket_mut(h) {
            s.kind = TcpKind::Conn(ConnEntry {
                conn: Box::new(conn),
                parent,
                app_closed: false,
                deadline: None,
                dirty: false,
                trace,
            });
        }
    }

    /// Forget a connection entirely.
    pub(super) fn free(&mut self, cx: &mut Cx, h: SocketHandle) {
        let Some(Socket::Tcp(TcpSocket {
            kind: TcpKind::Conn(e),
            ..
        })) = cx.sockets.remove(h)
        else {
            return;
        };
        let key = (e.conn.local.port(), e.conn.remote);
        if self.conns.get(&key) == Some(&h) {
            self.conns.remove(&key);
        }
        self.ooo_bytes = self.ooo_bytes.saturating_sub(e.conn.ooo_bytes());
        self.timers.cleared(e.deadline);
        self.skip_stale_deadlines(cx);
        if let Some(l) = e.parent.and_then(|p| cx.listener(p)) {
            l.forget(h);
        }
        if let (Some(mut t), true) = (e.trace, cx.config.tcp.trace_connections.is_some()) {
            // The end of an automatically traced timeline waits to be
            // drained; one traced on request ends with its socket.
            t.record(TraceSample::from_stats(cx.now, &e.conn.stats()));
            let mut samples = Vec::new();
            let dropped = t.drain(&mut samples);
            if self.finished_traces.len() == FINISHED_TRACES {
                self.finished_traces.pop_front();
                cx.stats.tcp_traces_dropped += 1;
            }
            self.finished_traces.push_back(ConnTrace {
                handle: h,
                local: e.conn.local,
                remote: e.conn.remote,
                samples,
                dropped,
                finished: true,
            });
        }
        tracing::debug!(%h, local = %e.conn.local, remote = %e.conn.remote, stats = %e.conn.stats(), "tcp connection freed");
    }

    /// A connection entered TIME-WAIT (or its socket, in TIME-WAIT, was
    /// closed). There is one TIME-WAIT with one rule set (RFC 9293
    /// 3.10.7.4, RFC 1337, RFC 6191; Linux's tcp_timewait_state_process):
    /// the compact entry takes the 4-tuple over at once, and with it the
    /// ACK the connection owes, whether or not the application still holds
    /// the socket. A socket still held keeps its control block, out of
    /// the demultiplexer, to report TIME-WAIT until its own 2 MSL end.
    pub(super) fn enter_time_wait(&mut self, cx: &mut Cx, h: SocketHandle) {
        let Some(e) = cx.entry(h) else { return };
        let key = (e.conn.local.port(), e.conn.remote);
        let app_closed = e.app_closed;
        if self.conns.get(&key) == Some(&h) {
            let (info, owes_ack) = e.conn.hand_over_time_wait();
            self.conns.remove(&key);
            let tcp = &cx.config.tcp;
            let (ack, held) = self
                .time_wait
                .insert(cx.now, key, info, tcp.time_wait, tcp.max_time_wait);
            if !held {
                cx.stats.tcp_time_wait_overflow += 1;
            }
            if owes_ack {
                self.queue_rst(cx, *key.1.ip(), ack);
            }
        }
        if app_closed {
            self.free(cx, h);
        }
    }

    /// Recompute a connection's deadline and whether it has output.
    pub(super) fn refresh(&mut self, cx: &mut Cx, h: SocketHandle) {
        self.refresh_inner(cx, h, true);
    }

    fn refresh_inner(&mut self, cx: &mut Cx, h: SocketHandle, may_mark_dirty: bool) {
        let now = cx.now;
        let Some(e) = cx.entry(h) else { return };
        e.conn.arm_reclaim(now);
        if let Some(t) = e.trace.as_mut() {
            t.record(TraceSample::from_stats(now, &e.conn.stats()));
        }
        let schedule = e.conn.schedule();
        let new = schedule.deadline;
        let old = e.deadline;
        let wants = may_mark_dirty && !e.dirty && schedule.wants_to_send;
        e.deadline = new;
        if wants {
            e.dirty = true;
        }
        if old != new {
            self.timers.moved(h, old, new);
            self.skip_stale_deadlines(cx);
        }
        if wants {
            self.dirty.push_back(h);
        }
    }

    fn skip_stale_deadlines(&mut self, cx: &mut Cx) {
        self.timers
            .skip_stale(|t, h| cx.entry(h).is_some_and(|e| e.deadline == Some(t)));
    }

    /// A half-open connection's SYN-ACK (or ACK): it waits with the RSTs,
    /// but the queue takes one for every half-open connection beyond its
    /// own bound, so that a burst of SYNs is answered in full.
    pub(super) fn queue_synack(&mut self, cx: &mut Cx, dst: Ipv4Addr, repr: TcpRepr, ip: IpTx) {
        if self.rst_out.len() < RST_QUEUE_LEN + self.requests.len() + 1 {
            self.rst_out.push_back((dst, repr, ip));
        } else {
            cx.stats.tx_queue_full += 1;
        }
    }

    pub(super) fn queue_rst(&mut self, cx: &mut Cx, dst: Ipv4Addr, repr: TcpRepr) {
        if self.rst_out.len() < RST_QUEUE_LEN {
            self.rst_out.push_back((dst, repr, IpTx::TCP));
        } else {
            cx.stats.tx_queue_full += 1;
        }
    }

    /// Act on what a connection said after an input or a timer.
    pub(super) fn after(&mut self, cx: &mut Cx, h: SocketHandle, out: Outcome) {
        let Some(e) = cx.entry(h) else { return };
        let (parent, app_closed, dst) = (e.parent, e.app_closed, *e.conn.remote.ip());
        if matches!(out.transition, Transition::Closed | Transition::TimeWait) {
            // Out-of-order data of a connection that is over is garbage;
            // free its share of the stack-wide budget now, not when the
            // application gets round to closing the socket.
            let freed = e.conn.discard_ooo();
            self.ooo_bytes = self.ooo_bytes.saturating_sub(freed);
        }
        let Outcome {
            transition,
            rst,
            challenge: _,
            readable,
            writable,
            error,
            timed_out,
            dropped,
        } = out;
        count_discard(cx, dropped);
        if let Some(rst) = rst {
            self.queue_rst(cx, dst, rst);
        }
        match transition {
            Transition::None => {}
            Transition::Established => {
                cx.stats.tcp_passive_opens += 1;
                if let Some(p) = parent {
                    if let Some(l) = cx.listener(p) {
                        l.established(h);
                    }
                    cx.push_event(p, EV_READABLE);
                }
            }
            Transition::Connected => cx.push_event(h, EV_CONNECTED),
            Transition::BackToListen => {
                self.free(cx, h);
                return;
            }
            Transition::TimeWait => {
                cx.stats.tcp_time_wait += 1;
                self.enter_time_wait(cx, h);
                if app_closed {
                    return;
                }
            }
            Transition::Closed => {
                if timed_out {
                    cx.stats.tcp_timeouts += 1;
                } else if error == Some(SocketError::ConnectionReset) {
                    cx.stats.tcp_resets_rx += 1;
                }
                let embryonic = parent.is_some();
                if app_closed || embryonic {
                    self.free(cx, h);
                    return;
                }
                // The 4-tuple may belong to a new connection already (a
                // TIME-WAIT reopened by a SYN).
                let key = cx.entry(h).map(|e| (e.conn.local.port(), e.conn.remote));
                if let Some(k) = key.filter(|k| self.conns.get(k) == Some(&h)) {
                    self.conns.remove(&k);
                }
                if error.is_some() {
                    cx.push_event(h, EV_ERROR);
                }
                cx.push_event(h, EV_CLOSED);
                cx.push_event(h, EV_READABLE);
            }
        }
        if app_closed {
            let now = cx.now;
            if let Some(e) = cx.entry(h) {
                e.conn.orphaned(now);
            }
        }
        if readable && parent.is_none() {
            cx.push_event(h, EV_READABLE);
        }
        if writable && parent.is_none() {
            cx.push_event(h, EV_WRITABLE);
        }
        self.refresh(cx, h);
    }
}

/// A RST (with ACK if `ack` is given) from `src_port` to `dst_port`:
/// every RST TCP sends is built here.
pub(crate) fn rst_repr(src_port: u16, dst_port: u16, seq: SeqNumber, ack: Option<SeqNumber>) -> TcpRepr {
    let mut flags = TcpFlags::RST;
    if ack.is_some() {
        flags.insert(TcpFlags::ACK);
    }
    TcpRepr {
        src_port,
        dst_port,
        seq: seq.0,
        ack: ack.map(|a| a.0).unwrap_or(0),
        flags,
        window: 0,
        urgent: 0,
        options: TcpOptions::default(),
    }
}

/// Count why a connection discarded a segment.
pub(super) fn count_discard(cx: &mut Cx, dropped: Option<Discard>) {
    match dropped {
        None => {}
        Some(Discard::Paws) => cx.stats.tcp_paws_rejected += 1,
        Some(Discard::OutOfWindow) => cx.stats.tcp_out_of_window += 1,
        Some(Discard::RstNotExact) => cx.stats.tcp_rst_not_exact += 1,
        Some(Discard::Syn) => cx.stats.tcp_syn_in_window += 1,
        Some(Discard::NoAck) => cx.stats.tcp_no_ack_flag += 1,
        Some(Discard::BadAck) => cx.stats.tcp_bad_ack += 1,
    }
}

/// RACK-TLP's counters (RFC 8985): a connection's change over one event.
fn add_rack_counts(cx: &mut Cx, before: [u64; 3], after: [u64; 3]) {
    cx.stats.tcp_rack_lost += after[0] - before[0];
    cx.stats.tcp_tlp_probes += after[1] - before[1];
    cx.stats.tcp_tlp_recoveries += after[2] - before[2];
}
