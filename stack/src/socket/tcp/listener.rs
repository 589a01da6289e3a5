//! LISTEN (RFC 9293 3.10.7.2): a listener's SYN queue (connections in
//! SYN-RECEIVED, each a half-open record in the table's `requests` until
//! the ACK that completes its handshake makes the connection, as Linux's
//! request socks) and accept queue (established, not yet accepted), both
//! bounded by the backlog, and SYN cookies (RFC 4987 3.6) for when the
//! SYN queue is full. A stored record and a cookie's ACK go the same way:
//! unfolded into the connection they stand for, which takes the segment.
//!
//! A SYN cookie is an ISN that lets the listener rebuild the handshake
//! from the ACK that completes it, so a SYN costs no state: a flood of
//! SYNs from forged addresses fills the SYN queue, and the legitimate
//! clients behind it still connect. As Linux (net/ipv4/syncookies.c):
//!
//! ```text
//! ISN = H0(4-tuple) + peer's ISN + (counter << 24) + low24
//! low24 = (H1(4-tuple, counter, mss index) << 2 | mss index) mod 2^24
//! ```
//!
//! H0 and H1 are SipHash keyed with the table's secret (as the RFC 6528
//! ISNs); the counter ticks every 64 s and a cookie is good for the
//! current and the previous tick (Linux MAX_SYNCOOKIE_AGE). Unlike
//! Linux, whose H1 is added to the index, the index is hashed with the
//! rest, so any bit of the cookie changed fails it. The peer's MSS is
//! rounded down to one of four values (Linux msstab). With timestamps,
//! the low 6 bits of our TSval carry the peer's window scale (0xf for
//! none) and SACK-permitted (bit 4; bit 5 is Linux's ECN, which we never
//! set); the peer echoes them in TSecr. Without timestamps there is no
//! room for them, so the SYN-ACK offers neither (Linux tcp_clear_options).

use super::conn::{Connection, HalfOpen, Transition};
use super::requests::Request;
use super::seq::SeqNumber;
use super::table::{count_discard, Cx, TcpKind, TcpTable};
use super::trace::TraceSample;
use super::TcpOption;
use crate::config::{Config, SynCookies};
use crate::socket::{SocketHandle, SocketSet};
use crate::time::{Duration, Instant};
use crate::wire::TcpRepr;
use core::net::SocketAddrV4;
use std::collections::VecDeque;
use std::hash::{DefaultHasher, Hash, Hasher};

/// The peer MSS a cookie can say (Linux msstab): the SYN's is rounded
/// down to one of these.
pub(crate) const COOKIE_MSS: [u16; 4] = [536, 1300, 1440, 1460];
/// Bits of the cookie below the counter.
const COOKIE_BITS: u32 = 24;
const COOKIE_MASK: u32 = (1 << COOKIE_BITS) - 1;
/// One tick of the cookie counter (Linux: 60 s, TCP_SYNCOOKIE_PERIOD).
pub(crate) const COOKIE_PERIOD: Duration = Duration::from_secs(64);
/// A cookie is good while the counter has moved on by less than this
/// (Linux MAX_SYNCOOKIE_AGE).
const COOKIE_MAX_AGE: u32 = 2;
/// The low bits of a cookie TSval that carry options (Linux TSBITS).
const TS_OPT_BITS: u32 = 6;
const TS_OPT_MASK: u32 = (1 << TS_OPT_BITS) - 1;
/// No window scale (Linux TS_OPT_WSCALE_MASK).
const TS_NO_WSCALE: u32 = 0xf;
const TS_OPT_SACK: u32 = 1 << 4;
const TS_OPT_ECN: u32 = 1 << 5;

/// The cookie counter at `now`.
pub(crate) fn cookie_counter(now: Instant) -> u32 {
    (now.total_micros() / COOKIE_PERIOD.as_micros() as u64) as u32
}

/// Who a cookie is for: the secret and the 4-tuple.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CookieKey {
    pub secret: u64,
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
}

impl CookieKey {
    fn hash(&self, tag: u8, counter: u32, index: u32) -> u32 {
        let mut h = DefaultHasher::new();
        (self.secret, tag, self.local, self.remote, counter, index).hash(&mut h);
        h.finish() as u32
    }

    /// The ISN of a SYN-ACK answering a SYN with sequence number
    /// `peer_isn`, at cookie counter `counter`, saying MSS `COOKIE_MSS[index]`.
    pub fn encode(&self, peer_isn: SeqNumber, counter: u32, index: usize) -> SeqNumber {
        let index = (index.min(COOKIE_MSS.len() - 1)) as u32;
        let low = ((self.hash(3, counter, index) << 2) | index) & COOKIE_MASK;
        let isn = self
            .hash(2, 0, 0)
            .wrapping_add(peer_isn.0)
            .wrapping_add(counter << COOKIE_BITS)
            .wrapping_add(low);
        SeqNumber(isn)
    }

    /// The MSS index of `cookie` (our ISN, the ACK's less one) for a
    /// connection whose peer ISN is `peer_isn`, if it is ours and fresh at
    /// counter `now`.
    pub fn decode(&self, peer_isn: SeqNumber, cookie: SeqNumber, now: u32) -> Option<usize> {
        let c = cookie.0.wrapping_sub(self.hash(2, 0, 0)).wrapping_sub(peer_isn.0);
        let age = now.wrapping_sub(c >> COOKIE_BITS) & (u32::MAX >> COOKIE_BITS);
        if age >= COOKIE_MAX_AGE {
            return None;
        }
        let counter = now.wrapping_sub(age);
        let index = c & 3;
        let low = ((self.hash(3, counter, index) << 2) | index) & COOKIE_MASK;
        (c & COOKIE_MASK == low).then_some(index as usize)
    }
}

/// The index of the largest cookie MSS not above `mss` (Linux
/// cookie_v4_init_sequence).
pub(crate) fn cookie_mss_index(mss: u16) -> usize {
    COOKIE_MSS.iter().rposition(|&m| m <= mss).unwrap_or(0)
}

/// Our TSval `tsval` with the peer's window scale and SACK-permitted in
/// its low bits, moved back one step if that put it ahead of our clock,
/// so that later TSvals never go backwards (Linux cookie_init_timestamp).
pub(crate) fn cookie_tsval(tsval: u32, wscale: Option<u8>, sack: bool) -> u32 {
    let mut opts = wscale.map_or(TS_NO_WSCALE, |w| u32::from(w.min(14)));
    if sack {
        opts |= TS_OPT_SACK;
    }
    let mut ts = (tsval & !TS_OPT_MASK) | opts;
    if opts > tsval & TS_OPT_MASK {
        ts = ts.wrapping_sub(1 << TS_OPT_BITS);
    }
    ts
}

/// The peer's window scale and SACK-permitted from the TSecr of a
/// cookie's ACK, unless they make no sense (Linux cookie_timestamp_decode).
pub(crate) fn cookie_ts_options(tsecr: u32) -> Option<(Option<u8>, bool)> {
    let opts = tsecr & TS_OPT_MASK;
    if opts & TS_OPT_ECN != 0 {
        return None; // we never offer ECN
    }
    let wscale = match opts & TS_NO_WSCALE {
        TS_NO_WSCALE => None,
        w => Some(w as u8), // 0..=14: 15 is none
    };
    Some((wscale, opts & TS_OPT_SACK != 0))
}

pub(crate) struct Listener {
    pub port: u16,
    /// Bounds the SYN queue (its half-open connections, kept as records
    /// in the table's `requests`) and the accept queue, each.
    pub backlog: usize,
    /// Established, waiting for `accept`.
    pub accept_queue: VecDeque<SocketHandle>,
    /// Given to every connection it accepts.
    pub options: Vec<TcpOption>,
    /// When it last sent a SYN cookie: only an ACK that comes within two
    /// counter ticks of that is checked for one (Linux
    /// tcp_synq_no_recent_overflow).
    pub last_cookie: Option<Instant>,
}

impl Listener {
    pub fn new(port: u16, backlog: usize, options: Vec<TcpOption>) -> Self {
        Listener {
            port,
            backlog,
            accept_queue: VecDeque::new(),
            options,
            last_cookie: None,
        }
    }

    /// No room for one more established connection: Linux leaves the
    /// handshake's final ACK unprocessed then.
    pub fn accept_queue_full(&self) -> bool {
        self.accept_queue.len() >= self.backlog
    }

    /// It sent a cookie recently enough for an ACK to carry one back.
    fn cookies_recent(&self, now: Instant) -> bool {
        self.last_cookie
            .is_some_and(|t| now.saturating_duration_since(t) < COOKIE_PERIOD * COOKIE_MAX_AGE)
    }

    /// A connection of ours completed its handshake.
    pub fn established(&mut self, h: SocketHandle) {
        self.accept_queue.push_back(h);
    }

    /// A connection of ours is gone.
    pub fn forget(&mut self, h: SocketHandle) {
        self.accept_queue.retain(|c| *c != h);
    }
}

impl TcpTable {
    /// RFC 9293 3.10.7.2, LISTEN. `reopen_isn`: the SYN reopens a 4-tuple
    /// in TIME-WAIT, and the new connection starts at this ISN.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn listen_input(
        &mut self,
        cx: &mut Cx,
        now: Instant,
        l: SocketHandle,
        remote: SocketAddrV4,
        repr: &TcpRepr,
        data: &[u8],
        reopen_isn: Option<SeqNumber>,
    ) {
        // First: a RST is ignored. Second: an ACK gets <SEQ=SEG.ACK><CTL=RST>,
        // unless it completes a handshake we answered with a cookie.
        if repr.flags.rst() {
            cx.stats.tcp_listen_bad_segment += 1;
            return;
        }
        if repr.flags.ack() {
            match self.cookie_ack(cx, now, l, remote, repr, data) {
                CookieVerdict::NotChecked => cx.stats.tcp_listen_bad_segment += 1,
                CookieVerdict::Failed => cx.stats.tcp_syncookies_failed += 1,
                CookieVerdict::Taken => return,
            }
            self.reset_closed(cx, *remote.ip(), repr, data.len());
            return;
        }
        if !repr.flags.syn() {
            cx.stats.tcp_listen_bad_segment += 1;
            return;
        }
        if repr.flags.fin() {
            // SYN+FIN: RFC 9293 would open the connection and process the
            // FIN later, but no real client sends it; it is a scanner's
            // probe (an OS fingerprint or a filter evasion). Linux drops it
            // unanswered (tcp_rcv_state_process), and so do we.
            cx.stats.tcp_listen_bad_segment += 1;
            return;
        }
        let mode = cx.config.tcp.syn_cookies;
        let half_open = self.requests.of(l);
        let Some(li) = cx.listener(l) else { return };
        let syn_queue_full = half_open >= li.backlog;
        // Linux tcp_conn_request: a full accept queue drops the SYN, cookie
        // or not; a full SYN queue calls for a cookie, except for a SYN
        // reopening TIME-WAIT, whose ISN is already chosen.
        let want_cookie = reopen_isn.is_none()
            && match mode {
                SynCookies::Never => false,
                SynCookies::WhenFull => syn_queue_full,
                SynCookies::Always => true,
            };
        if li.accept_queue_full() || (syn_queue_full && !want_cookie) {
            // Dropped: the peer retransmits its SYN.
            cx.stats.tcp_listen_overflow += 1;
            return;
        }
        if want_cookie {
            li.last_cookie = Some(now);
            self.send_cookie(cx, now, l, remote, repr);
            return;
        }
        // SYN-RECEIVED: the connection answers with its SYN-ACK and is
        // folded into a half-open record until a segment needs it. Data
        // on the SYN is not taken (no Fast Open, as Linux without
        // TCP_FASTOPEN): the SYN-ACK acknowledges only the SYN, and the
        // peer sends the data again.
        let iss = match reopen_isn {
            Some(isn) => isn,
            None => {
                let local = SocketAddrV4::new(cx.config.ipv4.addr, repr.dst_port);
                self.endpoints(cx.config, now, local, remote).iss
            }
        };
        let Some(conn) = self.listener_connection(cx.config, cx.sockets, now, l, remote, repr, iss) else {
            return;
        };
        tracing::debug!(%remote, "tcp SYN received");
        self.keep_half_open(cx, now, l, conn);
    }

    /// The connection the listener `l` would make of `syn`: what its
    /// SYN-ACK says, and what its ACK builds on. A SYN's half-open
    /// record, a cookie's SYN-ACK and the connections their ACKs make all
    /// come from here, so they agree (window, window scale, MSS) as if
    /// the connection had been kept whole.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn listener_connection(
        &self,
        config: &Config,
        sockets: &SocketSet,
        now: Instant,
        l: SocketHandle,
        remote: SocketAddrV4,
        syn: &TcpRepr,
        iss: SeqNumber,
    ) -> Option<Connection> {
        let li = match &sockets.get(l)?.as_tcp()?.kind {
            TcpKind::Listener(li) => li,
            _ => return None,
        };
        let local = SocketAddrV4::new(config.ipv4.addr, li.port);
        let mut ep = self.endpoints(config, now, local, remote);
        ep.iss = iss;
        let mut conn = Connection::accept_syn(now, &config.tcp, ep, syn);
        for o in li.options.iter().copied() {
            conn.set_option(now, o);
        }
        Some(conn)
    }

    /// The SYN-RECEIVED connection the half-open record `half` of
    /// listener `l` folds.
    pub(super) fn resume(
        &self,
        config: &Config,
        sockets: &SocketSet,
        l: SocketHandle,
        remote: SocketAddrV4,
        half: &HalfOpen,
    ) -> Option<Connection> {
        let li = match &sockets.get(l)?.as_tcp()?.kind {
            TcpKind::Listener(li) => li,
            _ => return None,
        };
        let syn = half.syn(remote.port(), li.port);
        let mut conn = self.listener_connection(config, sockets, half.born, l, remote, &syn, half.iss)?;
        conn.resume_half_open(half);
        Some(conn)
    }

    /// Send what the SYN-RECEIVED connection `conn` of listener `l` owes
    /// (its SYN-ACK, an ACK) and fold it into its record, if the SYN
    /// queue has room.
    pub(super) fn keep_half_open(
        &mut self,
        cx: &mut Cx,
        now: Instant,
        l: SocketHandle,
        mut conn: Connection,
    ) {
        let dst = *conn.remote.ip();
        // At most a SYN-ACK and an ACK; bounded all the same.
        for _ in 0..4 {
            let Some((seg, _, _)) = conn.poll_segment(now) else {
                break;
            };
            self.queue_synack(cx, dst, seg, conn.ip_tx());
        }
        let Some(half) = conn.half_open() else { return };
        let key = (conn.local.port(), conn.remote);
        let Some(backlog) = cx.listener(l).map(|li| li.backlog) else {
            return;
        };
        if self.requests.of(l) >= backlog && !self.requests.contains(&key) {
            cx.stats.tcp_listen_overflow += 1;
            return;
        }
        self.requests.insert(key, Request { listener: l, half });
    }

    /// A segment for a half-open connection of listener `l`, a stored
    /// one or a cookie's (RFC 9293 3.10.7.4 in SYN-RECEIVED, Linux
    /// tcp_check_req): the connection is unfolded and takes the segment
    /// like any other. If that completes the handshake, it is installed
    /// (and its handshake's timeline starts at the SYN); else it is folded
    /// back, or gone (a RST, the SYN-ACK retries ran out).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn handshake_input(
        &mut self,
        cx: &mut Cx,
        now: Instant,
        l: SocketHandle,
        remote: SocketAddrV4,
        half: &HalfOpen,
        repr: &TcpRepr,
        data: &[u8],
    ) {
        let _span = tracing::debug_span!("half-open", %remote).entered();
        let Some(mut conn) = self.resume(cx.config, cx.sockets, l, remote, half) else {
            return;
        };
        let final_ack = repr.flags.ack() && !repr.flags.rst() && !repr.flags.syn();
        let mut h = None;
        if final_ack {
            // Linux keeps the handshake's final ACK waiting (drops it)
            // while the accept queue is full, and while there is no room
            // for the connection; the SYN-ACK timer tries again later.
            if cx.listener(l).is_some_and(|li| li.accept_queue_full()) {
                cx.stats.tcp_accept_queue_full += 1;
                self.keep_half_open(cx, now, l, conn);
                return;
            }
            let Ok(s) = self.socket(cx) else {
                cx.stats.tcp_accept_queue_full += 1;
                self.keep_half_open(cx, now, l, conn);
                return;
            };
            h = Some(s);
        }
        let first = cx
            .config
            .tcp
            .trace_connections
            .map(|_| TraceSample::from_stats(half.born, &conn.stats()));
        conn.set_ooo_room(cx.config.tcp.max_ooo_bytes_total.saturating_sub(self.ooo_bytes()));
        let mut out = conn.process(now, repr, data);
        cx.stats.tcp_ooo_budget_full += conn.ooo_budget_drops();
        cx.stats.tcp_ooo_ranges_full += conn.ooo_range_drops();
        if self.challenge_allowed(cx, now, out.challenge.take()) {
            conn.grant_challenge();
        }
        match (out.transition, h) {
            (Transition::Established, Some(h)) => {
                tracing::debug!(%h, %remote, "tcp handshake completed");
                self.add_ooo_bytes(conn.ooo_bytes());
                self.install_traced(cx, h, conn, Some(l), first);
                self.after(cx, h, out);
            }
            (transition, h) => {
                if let Some(h) = h {
                    cx.sockets.remove(h);
                }
                count_discard(cx, out.dropped);
                if let Some(rst) = out.rst.take() {
                    self.queue_rst(cx, *remote.ip(), rst);
                }
                if transition == Transition::None {
                    self.keep_half_open(cx, now, l, conn);
                }
                // Else BackToListen: a RST took the request away (RFC
                // 9293 3.10.7.4, second check), quietly.
            }
        }
    }

    /// The SYN-ACK timer of the half-open connection `req` fired (RFC
    /// 6298 5.4-5.6 and its backoff; Linux tcp_rtx_synack, and
    /// inet_csk_reqsk_queue_drop after `synack_retries`).
    pub(super) fn request_timeout(&mut self, cx: &mut Cx, now: Instant, remote: SocketAddrV4, req: &Request) {
        let Some(mut conn) = self.resume(cx.config, cx.sockets, req.listener, remote, &req.half) else {
            return;
        };
        let out = conn.on_timer(now);
        if out.transition == Transition::Closed {
            if out.timed_out {
                cx.stats.tcp_timeouts += 1;
            }
            tracing::debug!(%remote, "tcp half-open connection timed out");
            return;
        }
        self.keep_half_open(cx, now, req.listener, conn);
    }

    /// RFC 4987 3.6: answer `syn` with a SYN-ACK whose ISN (and TSval)
    /// say all the handshake needs, and keep nothing.
    fn send_cookie(
        &mut self,
        cx: &mut Cx,
        now: Instant,
        l: SocketHandle,
        remote: SocketAddrV4,
        syn: &TcpRepr,
    ) {
        let mut syn = *syn;
        let o = &mut syn.options;
        if !(cx.config.tcp.timestamps && o.timestamps.is_some()) {
            // Nowhere to keep them: offer neither (Linux tcp_clear_options).
            o.timestamps = None;
            o.window_scale = None;
            o.sack_permitted = false;
        }
        let index = cookie_mss_index(o.mss.unwrap_or(COOKIE_MSS[0]));
        let wscale = o.window_scale.filter(|_| cx.config.tcp.window_scaling);
        let sack = o.sack_permitted && cx.config.tcp.sack;
        let key = CookieKey {
            secret: self.secret,
            local: SocketAddrV4::new(cx.config.ipv4.addr, syn.dst_port),
            remote,
        };
        let iss = key.encode(SeqNumber(syn.seq), cookie_counter(now), index);
        let Some(mut conn) = self.listener_connection(cx.config, cx.sockets, now, l, remote, &syn, iss)
        else {
            return;
        };
        let Some((mut synack, _, _)) = conn.poll_segment(now) else {
            return;
        };
        if let Some((tsval, tsecr)) = synack.options.timestamps {
            synack.options.timestamps = Some((cookie_tsval(tsval, wscale, sack), tsecr));
        }
        cx.stats.tcp_syncookies_sent += 1;
        tracing::trace!(%remote, "tcp SYN cookie sent");
        self.queue_rst(cx, *remote.ip(), synack);
    }

    /// An ACK for listener `l`: if it carries a good cookie, make the
    /// connection it completes (ESTABLISHED, on the accept queue) and
    /// give it the segment.
    fn cookie_ack(
        &mut self,
        cx: &mut Cx,
        now: Instant,
        l: SocketHandle,
        remote: SocketAddrV4,
        repr: &TcpRepr,
        data: &[u8],
    ) -> CookieVerdict {
        let off = cx.config.tcp.syn_cookies == SynCookies::Never || repr.flags.syn();
        if off || !cx.listener(l).is_some_and(|li| li.cookies_recent(now)) {
            return CookieVerdict::NotChecked;
        }
        let key = CookieKey {
            secret: self.secret,
            local: SocketAddrV4::new(cx.config.ipv4.addr, repr.dst_port),
            remote,
        };
        let irs = SeqNumber(repr.seq) - 1;
        let iss = SeqNumber(repr.ack) - 1;
        let Some(index) = key.decode(irs, iss, cookie_counter(now)) else {
            return CookieVerdict::Failed;
        };
        let (wscale, sack, timestamps) = match repr.options.timestamps {
            Some((tsval, tsecr)) if cx.config.tcp.timestamps => match cookie_ts_options(tsecr) {
                Some((wscale, sack)) => (wscale, sack, Some((tsval, 0))),
                None => return CookieVerdict::Failed,
            },
            // No timestamps: the SYN-ACK offered no scaling and no SACK.
            _ => (None, false, None),
        };
        cx.stats.tcp_syncookies_recv += 1;
        if cx.listener(l).is_some_and(|li| li.accept_queue_full()) {
            // Linux tcp_v4_syn_recv_sock: dropped, no RST; the peer's
            // data or retransmission tries again.
            cx.stats.tcp_accept_queue_full += 1;
            return CookieVerdict::Taken;
        }
        // The handshake as the cookie remembers it.
        let half = HalfOpen {
            iss,
            irs,
            window: repr.window,
            mss: COOKIE_MSS[index],
            wscale,
            sack,
            ts_recent: timestamps.map(|(tsval, _)| tsval),
            born: now,
            // The time the SYN-ACK went is unknown: no RTT sample (Linux
            // takes none for a cookie either).
            timed: false,
            retries: 0,
            rto_at: None,
            defer_acked: false,
            last_invalid_ack: None,
            segs_in: 0,
            segs_out: 0,
            retransmits: 0,
        };
        tracing::debug!(%remote, "tcp SYN cookie accepted");
        self.handshake_input(cx, now, l, remote, &half, repr, data);
        CookieVerdict::Taken
    }
}

/// What [`TcpTable::cookie_ack`] made of an ACK to a listener.
enum CookieVerdict {
    /// The listener sent no cookies lately: the ACK is a stray.
    NotChecked,
    /// Not a cookie of ours, or a stale one.
    Failed,
    /// A connection was made of it (or it was dropped for want of room).
    Taken,
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    fn key() -> CookieKey {
        CookieKey {
            secret: 0x1234_5678_9abc_def0,
            local: SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 2), 8080),
            remote: SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 1), 40000),
        }
    }

    #[test]
    fn cookie_round_trips_every_mss_index() {
        let k = key();
        for counter in [0u32, 1, 255, 256, 0xffff_ffff] {
            for (index, &mss) in COOKIE_MSS.iter().enumerate() {
                let peer = SeqNumber(0xdead_beef_u32.wrapping_add(counter));
                let isn = k.encode(peer, counter, index);
                assert_eq!(
                    k.decode(peer, isn, counter),
                    Some(index),
                    "mss {mss} counter {counter}"
                );
                assert_eq!(cookie_mss_index(mss), index);
            }
        }
    }

    #[test]
    fn cookie_mss_rounds_down() {
        assert_eq!(cookie_mss_index(0), 0);
        assert_eq!(cookie_mss_index(535), 0);
        assert_eq!(cookie_mss_index(1299), 0);
        assert_eq!(cookie_mss_index(1400), 1);
        assert_eq!(cookie_mss_index(1459), 2);
        assert_eq!(cookie_mss_index(9000), 3);
    }

    #[test]
    fn cookie_ages_out_after_two_ticks() {
        let k = key();
        let peer = SeqNumber(7);
        let isn = k.encode(peer, 100, 3);
        assert_eq!(k.decode(peer, isn, 100), Some(3));
        assert_eq!(k.decode(peer, isn, 101), Some(3));
        assert_eq!(k.decode(peer, isn, 102), None);
        assert_eq!(k.decode(peer, isn, 99), None, "from the future");
        assert_eq!(k.decode(peer, isn, 100 + 256), None);
        // The counter runs on 64 s ticks.
        assert_eq!(cookie_counter(Instant::from_secs(63)), 0);
        assert_eq!(cookie_counter(Instant::from_secs(64)), 1);
    }

    #[test]
    fn cookie_with_any_bit_flipped_fails() {
        let k = key();
        let peer = SeqNumber(0x0102_0304);
        for index in 0..COOKIE_MSS.len() {
            let isn = k.encode(peer, 5, index);
            for bit in 0..32 {
                let bad = SeqNumber(isn.0 ^ (1 << bit));
                assert_eq!(k.decode(peer, bad, 5), None, "bit {bit}");
                assert_eq!(k.decode(peer, bad, 6), None, "bit {bit}");
            }
            // Another peer ISN, port or secret: not this cookie.
            assert_eq!(k.decode(SeqNumber(peer.0 + 1), isn, 5), None);
            let mut other = k;
            other.remote.set_port(40001);
            assert_eq!(other.decode(peer, isn, 5), None);
            other = k;
            other.secret ^= 1;
            assert_eq!(other.decode(peer, isn, 5), None);
        }
    }

    #[test]
    fn cookie_timestamp_carries_wscale_and_sack() {
        for tsval in [0u32, 1, 63, 64, 0x1234_5678, u32::MAX] {
            for wscale in (0..=14).map(Some).chain([None]) {
                for sack in [false, true] {
                    let ts = cookie_tsval(tsval, wscale, sack);
                    assert_eq!(
                        cookie_ts_options(ts),
                        Some((wscale, sack)),
                        "{tsval} {wscale:?} {sack}"
                    );
                    // Never ahead of our clock (by less than one step).
                    assert!(tsval.wrapping_sub(ts) < 64, "{tsval} {ts}");
                }
            }
        }
        // A shift above 14 is sent as 14.
        assert_eq!(
            cookie_ts_options(cookie_tsval(1000, Some(15), false)),
            Some((Some(14), false))
        );
        // ECN, which we never offer, is refused.
        assert_eq!(cookie_ts_options(TS_OPT_ECN | 3), None);
        assert_eq!(cookie_ts_options(TS_OPT_ECN | TS_NO_WSCALE), None);
    }
}
