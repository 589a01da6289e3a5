//! One TCP connection: RFC 9293's transmission control block and the
//! segment-arrival rules of its section 3.10.7, with RFC 5961's defences,
//! RFC 7323's options, RFC 6298's timer and RFC 5681's congestion control.
//!
//! The connection never touches a frame. Input is a parsed segment
//! ([`Connection::process`]); output is the next segment to send
//! ([`Connection::poll_segment`]), whose payload the caller copies out of
//! the send buffer. Timers are deadlines the connection reports
//! ([`Connection::deadline`]) and the caller honours
//! ([`Connection::on_timer`]).

use super::cc::{CongestionControl, Reno};
use super::rtt::RttEstimator;
use super::seq::SeqNumber;
use super::{TcpConnStats, TcpOption, TcpState};
use crate::config::TcpConfig;
use crate::socket::SocketError;
use crate::storage::{Assembler, RingBuffer};
use crate::time::{Duration, Instant};
use crate::wire::{SackBlocks, TcpFlags, TcpOptions, TcpRepr};
use core::net::SocketAddrV4;

/// RFC 9293 3.7.1: the MSS to assume when the peer sends none.
const DEFAULT_MSS: usize = 536;
/// RFC 7323 2.3: the largest shift either side may use.
const MAX_WSCALE: u8 = 14;
/// RFC 7323 5.5: a timestamp older than 24 days is no basis for PAWS.
const PAWS_IDLE: Duration = Duration::from_secs(24 * 24 * 3600);
/// Persist-timer backoff ceiling (Linux: TCP_RTO_MAX for probes too, we
/// keep 60 s, the RFC 6298 floor for a maximum).
const PERSIST_MAX: Duration = Duration::from_secs(60);
/// Bytes of TCP and IPv4 headers without options.
const HEADERS: usize = 40;

#[derive(Debug, Clone, Copy)]
struct Timestamps {
    /// TS.Recent (RFC 7323 4.3): the peer's latest in-order TSval.
    recent: u32,
    recent_at: Instant,
    /// Added to our clock (ms) so TSvals don't leak uptime (RFC 7323 5.4).
    offset: u32,
}

/// Keepalive settings and progress (RFC 1122 4.2.3.6).
#[derive(Debug, Clone, Copy)]
struct Keepalive {
    enabled: bool,
    idle: Duration,
    interval: Duration,
    count: u32,
    probes_sent: u32,
}

/// What the connection wants its owner to do after an input or a timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    /// Nothing the owner must act on.
    None,
    /// SYN-RECEIVED -> ESTABLISHED: a passive open completed.
    Established,
    /// SYN-SENT -> ESTABLISHED: connect succeeded.
    Connected,
    /// A RST sent a passive SYN-RECEIVED back to LISTEN (RFC 9293
    /// 3.10.7.4): the owner forgets this embryonic connection quietly.
    BackToListen,
    /// The connection entered TIME-WAIT.
    TimeWait,
    /// The connection is gone (error recorded in `error`, if any).
    Closed,
}

/// A challenge ACK the connection owes the peer (RFC 5961), and whether
/// its own limit lets it go; the owner applies the interface's budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Challenge {
    Send,
    Suppressed,
}

pub(crate) struct Connection {
    pub state: TcpState,
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
    cfg: TcpConfig,
    /// Whether we opened actively (RFC 9293 3.10.7.4: a RST in SYN-RECEIVED
    /// returns a passive open to LISTEN, but closes an active one).
    active: bool,

    // RFC 9293 3.3.1 send sequence variables.
    iss: SeqNumber,
    snd_una: SeqNumber,
    snd_nxt: SeqNumber,
    /// The highest sequence number sent; snd_nxt falls back below it after
    /// a retransmission timeout (go-back-N).
    snd_max: SeqNumber,
    snd_wnd: usize,
    max_snd_wnd: usize,
    snd_wl1: SeqNumber,
    snd_wl2: SeqNumber,
    /// The peer's window shift (RFC 7323 2.3), 0 if not negotiated.
    snd_wscale: u8,

    // RFC 9293 3.3.1 receive sequence variables.
    irs: SeqNumber,
    rcv_nxt: SeqNumber,
    /// The right edge of the window we last advertised; it never moves left
    /// (RFC 9293 3.8.6.2.2 / RFC 7323 2.4).
    rcv_adv: SeqNumber,
    rcv_wscale: u8,
    /// RCV.NXT as of the last ACK we sent (RFC 7323's Last.ACK.sent).
    last_ack_sent: SeqNumber,

    /// Unacknowledged and unsent data; its first byte is at snd_una (after
    /// the SYN is acknowledged).
    tx: RingBuffer,
    /// In-order data the application has not read; out-of-order data sits
    /// in its free space, tracked by `ooo`.
    rx: RingBuffer,
    ooo: Assembler,
    /// Where the peer's FIN is, once seen (it may arrive before a hole fills).
    rx_fin: Option<SeqNumber>,

    /// The peer's MSS (or the default), clamped by TCP_MAXSEG.
    peer_mss: usize,
    /// The MSS we advertise: MTU minus 40, or TCP_MAXSEG.
    our_mss: usize,
    mtu: usize,
    user_mss: Option<usize>,
    ts: Option<Timestamps>,
    sack_ok: bool,
    /// The segment we just sent carried window scale, SACK-permitted and
    /// timestamps offers (kept so SYN retransmissions offer the same).
    offered: TcpOptions,

    nodelay: bool,
    /// TCP_CORK: partial segments wait.
    cork: bool,
    /// SYN retransmissions before an active open fails (TCP_SYNCNT).
    syn_retries: u32,
    /// End of the last sub-MSS segment sent (Minshall's Nagle: only an
    /// unacknowledged *small* segment holds back the next small one).
    snd_sml: SeqNumber,
    /// The application shut down writing: send FIN after the data.
    fin_queued: bool,
    /// Our FIN's sequence number once sent.
    fin_seq: Option<SeqNumber>,

    /// Send an ACK at the next opportunity.
    ack_now: bool,
    delack_at: Option<Instant>,
    /// Data arrived that our next segment will acknowledge (Linux's
    /// ICSK_ACK_SCHED): sending that segment uses up a quick ACK.
    ack_scheduled: bool,
    /// Quick ACKs left: data is acknowledged at once while this is non-zero
    /// and we are not in ping-pong mode (Linux icsk_ack.quick).
    quick_acks: u32,
    /// Interactive mode: we answered the peer's data within the
    /// delayed-ACK time, so our ACKs wait to ride on the replies (Linux
    /// pingpong; left when the delayed-ACK timer fires).
    pingpong: bool,
    /// When data last arrived (Linux lrcvtime); `None` before the first.
    last_data_at: Option<Instant>,
    /// Our estimate of the peer's segment size (Linux icsk_ack.rcv_mss):
    /// more than this much unacknowledged data calls for an ACK at once.
    rcv_mss: usize,

    rtt: RttEstimator,
    /// Karn: the one segment being timed, when timestamps are off.
    rtt_probe: Option<(SeqNumber, Instant)>,
    cc: Box<dyn CongestionControl>,
    dup_acks: u32,
    /// In fast recovery until this is acknowledged (RFC 6582's "recover").
    recovery: Option<SeqNumber>,
    retransmit_una: bool,

    rto_at: Option<Instant>,
    /// Retransmissions of the same data without progress.
    retries: u32,
    persist_at: Option<Instant>,
    persist_backoff: u32,
    /// Zero-window probes in a row without an answer (Linux
    /// icsk_probes_out, reset by every ACK that is not old).
    probes_out: u32,
    /// When the first probe of this closed-window episode went (Linux
    /// icsk_probes_tstamp, reset when the window opens): TCP_USER_TIMEOUT
    /// counts from here.
    probes_since: Option<Instant>,
    /// The application closed its handle (Linux SOCK_DEAD).
    orphan: bool,
    keepalive: Keepalive,
    keepalive_at: Option<Instant>,
    last_recv: Instant,
    user_timeout: Option<Duration>,
    /// When the oldest unacknowledged data was first sent (user timeout).
    unacked_since: Option<Instant>,
    time_wait_at: Option<Instant>,
    /// Orphaned in FIN-WAIT-2: give up on the peer's FIN at this time.
    fin_wait2_at: Option<Instant>,
    /// TCP_LINGER2: this connection's FIN-WAIT-2 bound, if set.
    linger2: Option<Duration>,
    /// TCP_DEFER_ACCEPT, in SYN-ACK timeouts (Linux rskq_defer_accept).
    defer_accept: u32,
    /// The peer completed the handshake without data while we deferred
    /// (Linux inet_rsk(req)->acked).
    defer_acked: bool,
    send_keepalive: bool,
    send_probe: bool,

    /// A RST this connection must send (bad ACK in SYN-RECEIVED etc.).
    rst_out: Option<TcpRepr>,
    /// RFC 5961: a challenge ACK owed to the peer.
    challenge: Option<Challenge>,
    /// When we last answered an unacceptable segment (invalid_ratelimit).
    last_invalid_ack: Option<Instant>,
    pub error: Option<SocketError>,
    stats: TcpConnStats,
    ts_offset: u32,
}

/// Identity of a new connection.
pub(crate) struct Endpoints {
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
    pub iss: SeqNumber,
    pub ts_offset: u32,
    pub mtu: usize,
}

fn wscale_for(buffer: usize) -> u8 {
    let mut shift = 0u8;
    while shift < MAX_WSCALE && (buffer >> shift) > 65535 {
        shift += 1;
    }
    shift
}

impl Connection {
    fn new(now: Instant, cfg: &TcpConfig, ep: Endpoints, active: bool) -> Self {
        let our_mss = ep.mtu.saturating_sub(HEADERS).max(64);
        let initial = cfg.initial_window as usize * our_mss.min(DEFAULT_MSS.max(our_mss));
        Connection {
            state: TcpState::Closed,
            local: ep.local,
            remote: ep.remote,
            active,
            iss: ep.iss,
            snd_una: ep.iss,
            snd_nxt: ep.iss,
            snd_max: ep.iss,
            snd_wnd: 0,
            max_snd_wnd: 0,
            snd_wl1: SeqNumber(0),
            snd_wl2: ep.iss,
            snd_wscale: 0,
            irs: SeqNumber(0),
            rcv_nxt: SeqNumber(0),
            rcv_adv: SeqNumber(0),
            last_ack_sent: SeqNumber(0),
            rcv_wscale: if cfg.window_scaling {
                wscale_for(cfg.recv_buffer_max.max(cfg.recv_buffer))
            } else {
                0
            },
            tx: RingBuffer::new(cfg.send_buffer),
            rx: RingBuffer::new(cfg.recv_buffer),
            ooo: Assembler::new(cfg.max_ooo_ranges),
            rx_fin: None,
            peer_mss: DEFAULT_MSS,
            our_mss,
            mtu: ep.mtu,
            user_mss: None,
            ts: None,
            sack_ok: false,
            offered: TcpOptions::default(),
            nodelay: false,
            cork: false,
            syn_retries: cfg.syn_retries,
            snd_sml: ep.iss,
            fin_queued: false,
            fin_seq: None,
            ack_now: false,
            delack_at: None,
            ack_scheduled: false,
            quick_acks: 0,
            pingpong: false,
            last_data_at: None,
            // Linux tcp_initialize_rcv_mss: a guess no larger than the
            // default MSS until segments show what the peer sends.
            rcv_mss: our_mss.clamp(88, DEFAULT_MSS),
            rtt: RttEstimator::new(cfg.rto_initial, cfg.rto_min, cfg.rto_max),
            rtt_probe: None,
            cc: Box::new(Reno::new(initial)),
            dup_acks: 0,
            recovery: None,
            retransmit_una: false,
            rto_at: None,
            retries: 0,
            persist_at: None,
            persist_backoff: 0,
            probes_out: 0,
            probes_since: None,
            orphan: false,
            keepalive: Keepalive {
                enabled: false,
                idle: cfg.keepalive_idle,
                interval: cfg.keepalive_interval,
                count: cfg.keepalive_count,
                probes_sent: 0,
            },
            keepalive_at: None,
            last_recv: now,
            user_timeout: None,
            unacked_since: None,
            time_wait_at: None,
            fin_wait2_at: None,
            linger2: None,
            defer_accept: 0,
            defer_acked: false,
            send_keepalive: false,
            send_probe: false,
            rst_out: None,
            challenge: None,
            last_invalid_ack: None,
            error: None,
            stats: TcpConnStats::default(),
            cfg: cfg.clone(),
            ts_offset: ep.ts_offset,
        }
    }

    // ---------- opening ----------

    /// An active open (RFC 9293 3.10.1): SYN-SENT, with the SYN to send.
    pub fn connect(now: Instant, cfg: &TcpConfig, ep: Endpoints) -> Self {
        let mut c = Connection::new(now, cfg, ep, true);
        c.offered = TcpOptions {
            mss: Some(c.our_mss as u16),
            window_scale: cfg.window_scaling.then_some(c.rcv_wscale),
            sack_permitted: cfg.sack,
            timestamps: cfg.timestamps.then_some((0, 0)),
            sack_blocks: SackBlocks::default(),
        };
        c.set_state(TcpState::SynSent);
        c
    }

    /// A SYN arrived for a listener (RFC 9293 3.10.7.2): SYN-RECEIVED, with
    /// the SYN-ACK to send. Options are answered only where the SYN offered
    /// them (RFC 7323 2.2, 3.2; RFC 2018 2).
    pub fn accept_syn(now: Instant, cfg: &TcpConfig, ep: Endpoints, syn: &TcpRepr) -> Self {
        let mut c = Connection::new(now, cfg, ep, false);
        c.learn_syn_options(now, syn);
        c.offered = TcpOptions {
            mss: Some(c.our_mss as u16),
            window_scale: (cfg.window_scaling && syn.options.window_scale.is_some()).then_some(c.rcv_wscale),
            sack_permitted: cfg.sack && syn.options.sack_permitted,
            timestamps: c.ts.map(|_| (0, 0)),
            sack_blocks: SackBlocks::default(),
        };
        if c.offered.window_scale.is_none() {
            c.rcv_wscale = 0;
        }
        c.irs = SeqNumber(syn.seq);
        c.rcv_nxt = c.irs + 1;
        c.last_ack_sent = c.rcv_nxt;
        c.rcv_adv = c.rcv_nxt;
        // RFC 7323 2.2: the window in a SYN is never scaled.
        c.update_window(usize::from(syn.window), SeqNumber(syn.seq), c.iss);
        c.set_state(TcpState::SynReceived);
        c
    }

    /// Adopt what the peer's SYN says about MSS, scaling, SACK, timestamps.
    fn learn_syn_options(&mut self, now: Instant, syn: &TcpRepr) {
        let o = &syn.options;
        if let Some(mss) = o.mss {
            self.peer_mss = usize::from(mss).max(64);
        }
        // RFC 7323 2.2: scaling is on only if both sides sent the option.
        match (o.window_scale, self.cfg.window_scaling) {
            (Some(shift), true) => {
                // RFC 7323 2.3: a shift above 14 is used as 14 (and logged).
                if shift > MAX_WSCALE {
                    tracing::debug!(shift, "peer window scale above 14, using 14");
                }
                self.snd_wscale = shift.min(MAX_WSCALE);
            }
            _ => {
                self.snd_wscale = 0;
                self.rcv_wscale = 0;
            }
        }
        self.sack_ok = self.cfg.sack && o.sack_permitted;
        self.ts = match (o.timestamps, self.cfg.timestamps) {
            (Some((tsval, _)), true) => Some(Timestamps {
                recent: tsval,
                recent_at: now,
                offset: self.ts_offset,
            }),
            _ => None,
        };
    }

    fn set_state(&mut self, new: TcpState) {
        if self.state != new {
            tracing::debug!(local = %self.local, remote = %self.remote, old = %self.state, %new, "tcp state");
            self.state = new;
        }
        if new == TcpState::Closed {
            // A closed connection has nothing left to time; a stale timer
            // firing later must not overwrite why it closed.
            self.rto_at = None;
            self.persist_at = None;
            self.delack_at = None;
            self.keepalive_at = None;
            self.time_wait_at = None;
            self.fin_wait2_at = None;
            self.unacked_since = None;
        }
    }

    /// The application has closed its handle. In FIN-WAIT-2 only the peer
    /// can finish the connection, so bound the wait (Linux tcp_fin_timeout).
    pub fn orphaned(&mut self, now: Instant) {
        self.orphan = true;
        if self.state == TcpState::FinWait2 && self.fin_wait2_at.is_none() {
            self.fin_wait2_at = Some(now + self.linger2.unwrap_or(self.cfg.fin_wait2_timeout));
        }
    }

    // ---------- getters ----------

    /// Effective send MSS: what the peer accepts, what our link carries, and
    /// TCP_MAXSEG, whichever is least (RFC 9293 3.7.1, RFC 1122 4.2.2.6).
    pub fn mss(&self) -> usize {
        let mut mss = self.peer_mss.min(self.mtu.saturating_sub(HEADERS));
        if let Some(user) = self.user_mss {
            mss = mss.min(user);
        }
        mss.max(64)
    }

    /// The payload a full segment carries: the MSS less the timestamp
    /// option (what Linux reports as TCP_MAXSEG once connected). The SMSS
    /// congestion control counts in (Linux mss_cache).
    pub fn payload_mss(&self) -> usize {
        self.mss().saturating_sub(self.option_overhead(0)).max(1)
    }

    /// Bytes of TCP options on a non-SYN segment (timestamps), which the
    /// MSS must leave room for (RFC 6691).
    fn option_overhead(&self, sack_blocks: usize) -> usize {
        let ts = if self.ts.is_some() { 12 } else { 0 };
        let sack = if sack_blocks > 0 { 4 + 8 * sack_blocks } else { 0 };
        ts + sack
    }

    fn in_flight(&self) -> usize {
        self.snd_max.distance(self.snd_una)
    }

    /// Unsent data: queued beyond snd_nxt.
    fn unsent(&self) -> usize {
        let sent = self.data_sent_offset();
        self.tx.len().saturating_sub(sent)
    }

    /// Offset into `tx` of snd_nxt.
    fn data_sent_offset(&self) -> usize {
        self.data_offset(self.snd_nxt)
    }

    /// Offset into `tx` of `seq`: the SYN and our FIN occupy no buffer
    /// byte (a sequence number before the data is offset 0).
    fn data_offset(&self, seq: SeqNumber) -> usize {
        let seq = if self.fin_seq.is_some_and(|f| seq > f) {
            seq - 1
        } else {
            seq
        };
        seq.distance(self.data_base())
    }

    pub fn can_recv(&self) -> bool {
        !self.rx.is_empty() || self.peer_closed()
    }

    /// The peer's FIN has been received in order: reads return EOF once
    /// the buffer is drained.
    pub fn peer_closed(&self) -> bool {
        self.rx_fin.is_some_and(|f| self.rcv_nxt > f)
    }

    pub fn send_capacity(&self) -> usize {
        self.tx.window()
    }

    pub fn may_send(&self) -> bool {
        matches!(self.state, TcpState::Established | TcpState::CloseWait) && !self.fin_queued
    }

    pub fn stats(&self) -> TcpConnStats {
        let mut s = self.stats.clone();
        s.state = Some(self.state);
        s.snd_una = self.snd_una.0;
        s.snd_nxt = self.snd_nxt.0;
        s.snd_wnd = self.snd_wnd;
        s.rcv_nxt = self.rcv_nxt.0;
        s.rcv_wnd = self.rcv_adv.distance(self.rcv_nxt);
        s.mss = self.payload_mss();
        s.srtt = self.rtt.srtt();
        s.rttvar = self.rtt.rttvar();
        s.rto = self.rtt.rto();
        s.cwnd = self.cc.window();
        s.ssthresh = self.cc.ssthresh();
        s.bytes_in_flight = self.in_flight();
        s.ooo_bytes = self.ooo.total_bytes();
        s.congestion_control = self.cc.name();
        s
    }

    // ---------- application calls ----------

    /// Queue data; returns how much fit.
    pub fn send(&mut self, data: &[u8]) -> usize {
        self.tx.enqueue_slice(data)
    }

    /// "Fill in place": the free part of the send buffer, contiguous.
    pub fn send_buffer(&mut self, max: usize) -> &mut [u8] {
        self.tx.get_unallocated(max)
    }

    pub fn commit_send(&mut self, n: usize) {
        self.tx.enqueue_unallocated(n);
    }

    /// Read in-order data. A window update is sent if reading opened the
    /// window enough (RFC 9293 3.8.6.2.2).
    pub fn recv(&mut self, buf: &mut [u8]) -> usize {
        let n = self.rx.dequeue_slice(buf);
        if n > 0 {
            self.after_read();
        }
        n
    }

    /// Peek without consuming.
    pub fn peek(&self, buf: &mut [u8]) -> usize {
        self.rx.read_allocated(0, buf)
    }

    /// Contiguous readable bytes, for "consume in place".
    pub fn recv_slice(&self, max: usize) -> &[u8] {
        self.rx.get_allocated(0, max)
    }

    pub fn consume(&mut self, n: usize) -> usize {
        let n = self.rx.dequeue_allocated(n);
        if n > 0 {
            self.after_read();
        }
        n
    }

    pub fn recv_queued(&self) -> usize {
        self.rx.len()
    }

    fn after_read(&mut self) {
        if (self.state.is_synchronized() || self.state == TcpState::SynReceived) && !self.peer_closed() {
            // RFC 9293 3.8.6.2.2 says by how much the window may open; a
            // read is worth an ACK of its own only when that at least
            // doubles the window (Linux, tcp_cleanup_rbuf): a sender with
            // half its window or more left is not waiting for it, and the
            // next ACK carries the larger window anyway.
            let (wnd, grows) = self.window_to_advertise();
            let current = self.rcv_adv.distance(self.rcv_nxt);
            if grows && wnd >= 2 * current {
                self.ack_now = true;
            }
        }
    }

    /// Half-close (shutdown(SHUT_WR)): FIN after the queued data.
    pub fn shutdown_write(&mut self) {
        match self.state {
            TcpState::SynSent => {
                self.set_state(TcpState::Closed);
            }
            TcpState::SynReceived | TcpState::Established => {
                self.fin_queued = true;
                if self.state == TcpState::Established {
                    self.set_state(TcpState::FinWait1);
                }
            }
            TcpState::CloseWait => {
                self.fin_queued = true;
                self.set_state(TcpState::LastAck);
            }
            _ => {}
        }
    }

    /// Abort: RFC 9293 3.10.5 ABORT. Returns the RST to send, if the peer
    /// knows of this connection.
    pub fn abort(&mut self, now: Instant) -> Option<TcpRepr> {
        let rst = match self.state {
            TcpState::SynReceived
            | TcpState::Established
            | TcpState::FinWait1
            | TcpState::FinWait2
            | TcpState::CloseWait => Some(self.active_rst(now)),
            _ => None,
        };
        self.set_state(TcpState::Closed);
        rst
    }

    /// Data arrived after the application closed its socket: nobody will
    /// read it, so reset (RFC 1122 4.2.2.13, RFC 2525 2.17; Linux resets
    /// in FIN-WAIT-1/2 after close, tcp_rcv_state_process). Returns the RST.
    pub fn reset_unreadable(&mut self, now: Instant) -> TcpRepr {
        let rst = self.active_rst(now);
        self.error = Some(SocketError::ConnectionReset);
        self.set_state(TcpState::Closed);
        rst
    }

    /// The RST we send when we give up on a connection ourselves: RFC 9293
    /// 3.10.5's <SEQ=SND.NXT><CTL=RST>, with the ACK bit, RCV.NXT and our
    /// timestamp as Linux's tcp_send_active_reset sends it (so a peer in
    /// any state, SYN-SENT included, finds it acceptable).
    fn active_rst(&self, now: Instant) -> TcpRepr {
        // RFC 5961 3.2: the peer takes a RST only at exactly its RCV.NXT,
        // and drops one outside its window; see acceptable_seq.
        let mut rst = self.rst_repr(self.acceptable_seq(), Some(self.rcv_nxt));
        if let Some(ts) = self.ts {
            rst.options.timestamps = Some((self.ts_now(now, ts.offset), ts.recent));
        }
        rst
    }

    pub fn set_option(&mut self, now: Instant, opt: TcpOption) {
        match opt {
            TcpOption::NoDelay(on) => self.nodelay = on,
            TcpOption::KeepAlive(on) => {
                self.keepalive.enabled = on;
                self.keepalive.probes_sent = 0;
                self.keepalive_at = on.then(|| now + self.keepalive.idle);
            }
            TcpOption::KeepIdle(d) => {
                self.keepalive.idle = d;
                if self.keepalive.enabled {
                    self.keepalive_at = Some(self.last_recv + d);
                }
            }
            TcpOption::KeepInterval(d) => self.keepalive.interval = d,
            TcpOption::KeepCount(n) => self.keepalive.count = n.max(1),
            TcpOption::UserTimeout(d) => self.user_timeout = (!d.is_zero()).then_some(d),
            TcpOption::RecvBuffer(n) => {
                // Never below what the buffer holds, out-of-order data
                // included: it is in our SACK blocks, and once the hole
                // fills RCV.NXT moves past it and our ACK tells the sender
                // it was delivered (RFC 9293 3.10.7.4 seventh step), so it
                // must still be there. Linux does not drop queued data when
                // sk_rcvbuf is lowered either.
                let ooo_end = self.ooo.ranges().last().map_or(0, |(_, end)| end);
                let _ = self.rx.resize(n.max(self.rx.len() + ooo_end));
                // Before our SYN (or SYN-ACK) goes, the window scale we offer
                // follows the buffer: RFC 7323 2.2 picks the shift from the
                // largest window we may offer, and Linux clamps it by a
                // locked SO_RCVBUF (tcp_select_initial_window).
                if self.nothing_sent() && self.offered.window_scale.is_some() {
                    self.rcv_wscale = wscale_for(self.rx.capacity());
                    self.offered.window_scale = Some(self.rcv_wscale);
                }
            }
            TcpOption::SendBuffer(n) => {
                let _ = self.tx.resize(n.max(self.tx.len()));
            }
            TcpOption::QuickAck(on) => {
                // Linux __tcp_sock_set_quickack.
                self.pingpong = !on;
                if on && self.delack_at.is_some() {
                    self.ack_now = true;
                }
            }
            TcpOption::Linger2(d) => self.linger2 = d,
            TcpOption::Cork(on) => self.cork = on,
            TcpOption::SynCount(n) => self.syn_retries = u32::from(n.clamp(1, 127)),
            TcpOption::DeferAccept(d) => {
                self.defer_accept = secs_to_retrans(d, self.cfg.rto_initial, self.cfg.rto_max);
            }
            TcpOption::MaxSegment(n) => {
                self.user_mss = Some(usize::from(n).max(64));
                // The MSS we advertise is clamped too while our SYN or
                // SYN-ACK has not gone (a listener's option reaches its
                // connections here; Linux: tcp_mss_clamp on advmss).
                if self.state == TcpState::Closed || self.state == TcpState::SynSent || self.nothing_sent() {
                    self.our_mss = self.our_mss.min(usize::from(n).max(64));
                    self.offered.mss = Some(self.our_mss as u16);
                }
            }
        }
    }

    /// Neither SYN nor SYN-ACK has been sent yet: what we offer in it may
    /// still change.
    fn nothing_sent(&self) -> bool {
        matches!(
            self.state,
            TcpState::Closed | TcpState::SynSent | TcpState::SynReceived
        ) && self.snd_max == self.iss
    }

    pub fn nodelay(&self) -> bool {
        self.nodelay
    }

    pub fn pingpong(&self) -> bool {
        self.pingpong
    }

    pub fn cork(&self) -> bool {
        self.cork
    }

    pub fn syn_retries(&self) -> u32 {
        self.syn_retries
    }

    pub fn linger2(&self) -> Option<Duration> {
        self.linger2
    }

    pub fn defer_accept(&self) -> Duration {
        retrans_to_secs(self.defer_accept, self.cfg.rto_initial, self.cfg.rto_max)
    }

    pub fn keepalive_enabled(&self) -> bool {
        self.keepalive.enabled
    }

    pub fn rx_capacity(&self) -> usize {
        self.rx.capacity()
    }

    pub fn tx_capacity(&self) -> usize {
        self.tx.capacity()
    }

    // ---------- receive window ----------

    /// The window to advertise now, and whether it moves the right edge by
    /// enough to be worth an update. RFC 9293 3.8.6.2.2 (receiver-side SWS
    /// avoidance): open the window only in steps of min(buffer/2, MSS), and
    /// never move the right edge left (RFC 1122 4.2.2.16), except by less
    /// than the window scale's granularity where keeping it would promise
    /// more than the buffer holds (RFC 7323 2.4).
    fn window_to_advertise(&self) -> (usize, bool) {
        let free = self.rx.window();
        let current = self.rcv_adv.distance(self.rcv_nxt);
        let step = (self.rx.capacity() / 2).min(self.our_mss).max(1);
        let max = 65535usize << self.rcv_wscale;
        let wnd = if free >= current + step || (free > current && free == self.rx.capacity()) {
            free.min(max)
        } else {
            current.min(max)
        };
        // The scaled field rounds down; round the granted window down with
        // it. What was already promised is kept by rounding it up, but only
        // if the buffer holds that much: RFC 7323 2.4 lets the edge retract
        // by less than the granularity rather than advertise beyond the
        // buffer, and its rule 1 has us honour every window we advertised,
        // which a promise beyond the buffer cannot be (the data would be
        // dropped in window). Rounding up regardless let the edge creep
        // right by up to a granule with every ACK while the application
        // did not read, and the window never closed: the buffer full, we
        // still offered a granule, and dropped what came into it.
        let granularity = 1usize << self.rcv_wscale;
        let kept = current.div_ceil(granularity) * granularity;
        let kept = if kept <= free {
            kept
        } else {
            current / granularity * granularity
        };
        let wnd = (wnd / granularity * granularity).max(kept).min(max);
        (wnd, wnd > current && wnd - current >= step)
    }

    // ---------- segment arrival (RFC 9293 3.10.7) ----------

    /// Process one segment for this connection. `now` is the arrival time.
    pub fn process(&mut self, now: Instant, seg: &TcpRepr, payload: &[u8]) -> Transition {
        self.stats.segs_in += 1;
        match self.state {
            TcpState::Closed | TcpState::Listen => Transition::None,
            TcpState::SynSent => self.process_syn_sent(now, seg, payload),
            _ => self.process_synchronized(now, seg, payload),
        }
    }

    /// RFC 9293 3.10.7.3, SYN-SENT.
    fn process_syn_sent(&mut self, now: Instant, seg: &TcpRepr, payload: &[u8]) -> Transition {
        let ack = SeqNumber(seg.ack);
        // First: check the ACK bit. RFC 9293's SND.NXT is the next new
        // sequence number, our snd_max: a SYN timeout rewinds snd_nxt to
        // resend the SYN, and a SYN-ACK arriving before that resend goes
        // is still acceptable (Linux compares with tp->snd_nxt, which a
        // retransmission does not rewind).
        if seg.flags.ack() && (ack <= self.iss || ack > self.snd_max) {
            if !seg.flags.rst() {
                self.rst_out = Some(self.rst_repr(ack, None));
            }
            return Transition::None;
        }
        let acceptable = seg.flags.ack(); // snd_una = iss < ack <= snd_nxt, checked above
                                          // Second: the RST bit. RFC 5961 3.2 keeps 9293's rule here: only a
                                          // RST acknowledging our SYN resets the connection.
        if seg.flags.rst() {
            if acceptable {
                self.error = Some(SocketError::ConnectionRefused);
                self.set_state(TcpState::Closed);
                return Transition::Closed;
            }
            return Transition::None;
        }
        // Fourth: the SYN bit.
        if !seg.flags.syn() {
            return Transition::None;
        }
        self.learn_syn_options(now, seg);
        self.irs = SeqNumber(seg.seq);
        self.rcv_nxt = self.irs + 1;
        self.last_ack_sent = self.rcv_nxt;
        self.rcv_adv = self.rcv_nxt;
        if acceptable {
            self.snd_una = ack;
            self.on_syn_acked(now, seg);
            // RFC 7323 2.2: a SYN's window is never scaled.
            self.snd_wl1 = SeqNumber(seg.seq);
            self.snd_wl2 = ack;
            self.snd_wnd = usize::from(seg.window);
            self.max_snd_wnd = self.snd_wnd;
            self.set_state(TcpState::Established);
            self.ack_now = true;
            // "If there are other controls or text in the segment, continue
            // processing at the sixth step under Section 3.10.7.4": the
            // text (seventh step) and the FIN (eighth) are taken, not
            // dropped for the peer to send again.
            if !payload.is_empty() || seg.flags.fin() {
                self.receive_data(now, self.rcv_nxt, payload, seg.flags.fin());
                if self.rx_fin.is_some_and(|f| f == self.rcv_nxt) {
                    self.rcv_nxt += 1;
                    self.set_state(TcpState::CloseWait);
                }
            }
            Transition::Connected
        } else {
            // Simultaneous open (RFC 9293 3.5 figure 7): answer with SYN-ACK.
            self.update_window(usize::from(seg.window), SeqNumber(seg.seq), self.iss);
            self.offered.window_scale = self
                .offered
                .window_scale
                .filter(|_| seg.options.window_scale.is_some());
            self.offered.sack_permitted &= seg.options.sack_permitted;
            self.offered.timestamps = self.offered.timestamps.filter(|_| self.ts.is_some());
            self.snd_nxt = self.iss; // resend our SYN, now with ACK
            self.set_state(TcpState::SynReceived);
            Transition::None
        }
    }

    /// Our SYN was acknowledged: measure it and stop its timer.
    fn on_syn_acked(&mut self, now: Instant, seg: &TcpRepr) {
        // RTT: the echoed timestamp says which transmission of the SYN was
        // acknowledged, so it gives a sample even after a resend (RFC 7323
        // 4.1; Linux tcp_ack_update_rtt); without timestamps only an
        // unrepeated SYN is timed (Karn, RFC 6298 3).
        let probe = self.rtt_probe.take();
        let sample = match (self.ts, seg.options.timestamps) {
            (Some(ts), Some((_, tsecr))) if tsecr != 0 => Some(Duration::from_millis(u64::from(
                self.ts_now(now, ts.offset).wrapping_sub(tsecr),
            ))),
            _ => probe
                .filter(|&(seq, _)| seq == self.iss && self.retries == 0)
                .map(|(_, sent)| now - sent),
        };
        if let Some(rtt) = sample.filter(|&r| r < Duration::from_secs(60)) {
            self.rtt.sample(rtt, self.snd_una, self.snd_max);
        }
        self.retries = 0;
        self.rtt.reset_backoff();
        self.rto_at = None;
        // A SYN resend scheduled (snd_nxt rewound) but not yet sent is moot.
        self.snd_nxt = self.snd_nxt.max(self.snd_una);
        self.last_recv = now;
        if self.keepalive.enabled {
            self.keepalive_at = Some(now + self.keepalive.idle);
        }
    }

    /// RFC 9293 3.10.7.4: SYN-RECEIVED and every synchronized state.
    fn process_synchronized(&mut self, now: Instant, seg: &TcpRepr, payload: &[u8]) -> Transition {
        let seq = SeqNumber(seg.seq);
        let seg_len = payload.len() + usize::from(seg.flags.syn()) + usize::from(seg.flags.fin());

        // A retransmitted SYN in passive SYN-RECEIVED: our SYN-ACK was lost.
        // Linux answers with the SYN-ACK again rather than a challenge ACK.
        if self.state == TcpState::SynReceived && seg.flags.syn() && !seg.flags.ack() && seq == self.irs {
            self.snd_nxt = self.iss;
            return Transition::None;
        }

        // RFC 9293 3.5 figure 7 (simultaneous open): in an active
        // SYN-RECEIVED the peer's SYN-ACK (SEG.SEQ = IRS, SEG.ACK = SND.NXT)
        // completes the handshake. The acceptability test would reject it
        // (it lies before RCV.NXT) and the SYN check would challenge it; like
        // Linux (tcp_validate_incoming), it is taken as the handshake's ACK,
        // and draws no ACK of its own (figure 7 has none).
        let simultaneous_synack = self.state == TcpState::SynReceived
            && self.active
            && seg.flags.syn()
            && seg.flags.ack()
            && !seg.flags.rst()
            && !seg.flags.fin()
            && payload.is_empty()
            && seq == self.irs
            && SeqNumber(seg.ack) == self.snd_max;

        // TIME-WAIT sees only retransmissions of the peer's FIN; handled
        // compactly by the owner. A connection still held here answers like
        // the RFC asks: ACK a FIN, restart the 2 MSL timer.
        // RFC 7323 5.3: PAWS, before the sequence check. Its ACK is one to
        // an unacceptable segment like any other, so rate-limited (RFC
        // 5961 7; Linux tcp_validate_incoming via tcp_oow_rate_limited).
        if let (Some(ts), Some((tsval, _))) = (self.ts, seg.options.timestamps) {
            if !seg.flags.rst() && ts_before(tsval, ts.recent) && now - ts.recent_at < PAWS_IDLE {
                if self.invalid_ack_allowed(now, seg, seg_len) {
                    self.ack_now = true;
                }
                return Transition::None;
            }
        }

        // First: the sequence number (the acceptability test).
        let wnd = self.rcv_adv.distance(self.rcv_nxt);
        let acceptable = if simultaneous_synack {
            true
        } else if seg_len == 0 {
            if wnd == 0 {
                seq == self.rcv_nxt
            } else {
                self.rcv_nxt <= seq && seq < self.rcv_nxt + wnd
            }
        } else if wnd == 0 {
            // RFC 9293: "If the RCV.WND is zero, no segments will be
            // acceptable, but special allowance should be made to accept
            // valid ACKs, URGs, and RSTs". We also accept a segment starting
            // exactly at RCV.NXT so its ACK and FIN are processed (its data
            // is dropped below for lack of room), as Linux does.
            seq == self.rcv_nxt
        } else {
            let last = seq + (seg_len - 1);
            (self.rcv_nxt <= seq && seq < self.rcv_nxt + wnd)
                || (self.rcv_nxt <= last && last < self.rcv_nxt + wnd)
        };
        if !acceptable {
            if !seg.flags.rst() {
                // RFC 9293: send <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>.
                self.ack_now = self.invalid_ack_allowed(now, seg, seg_len);
                if self.state == TcpState::TimeWait && seg.flags.fin() {
                    // A retransmitted FIN (it lies before RCV.NXT): our ACK
                    // of it was lost, so wait 2 MSL from now (RFC 9293
                    // 3.10.7.4 TIME-WAIT, as the compact stand-in does).
                    self.time_wait_at = Some(now + self.cfg.time_wait);
                }
            }
            return Transition::None;
        }

        // Second: the RST bit, with RFC 5961 3.2's exact-match rule.
        if seg.flags.rst() && self.state == TcpState::TimeWait {
            // RFC 1337 (TIME-WAIT assassination): ignore RSTs in TIME-WAIT.
            // Linux's default (tcp_rfc1337 = 0) accepts them; we do not.
            return Transition::None;
        }
        if seg.flags.rst() {
            if seq != self.rcv_nxt {
                // In window but not exact: challenge ACK (rate-limited).
                self.challenge_ack(now);
                return Transition::None;
            }
            return self.on_reset();
        }

        // Fourth: the SYN bit (RFC 5961 4.2): in any synchronized state
        // (and SYN-RECEIVED), a SYN gets a challenge ACK and is dropped.
        if seg.flags.syn() && !simultaneous_synack {
            self.challenge_ack(now);
            return Transition::None;
        }

        // Fifth: the ACK field.
        if !seg.flags.ack() {
            return Transition::None;
        }
        let mut transition = Transition::None;
        let ack = SeqNumber(seg.ack);
        if self.state == TcpState::SynReceived {
            // RFC 9293 3.10.7.4: SND.UNA < SEG.ACK =< SND.NXT, SND.NXT
            // being the next new sequence number (snd_max): a retransmitted
            // SYN from the peer rewinds snd_nxt to resend our SYN-ACK, and
            // the peer's ACK of the first SYN-ACK may arrive before that
            // resend goes. Judged against snd_nxt it would draw a RST at
            // exactly the peer's RCV.NXT, resetting its established side.
            if self.snd_una < ack && ack <= self.snd_max {
                if !self.active && seg_len == 0 && self.retries < self.defer_accept {
                    // TCP_DEFER_ACCEPT: a bare ACK does not complete the
                    // connection; wait for the first data (Linux
                    // tcp_check_req drops it and marks the request acked).
                    self.defer_acked = true;
                    return Transition::None;
                }
                self.snd_una = ack;
                self.on_syn_acked(now, seg);
                // RFC 7323 2.2: the window of a SYN (here a simultaneous
                // open's SYN-ACK) is never scaled.
                let shift = if seg.flags.syn() { 0 } else { self.snd_wscale };
                self.snd_wnd = usize::from(seg.window) << shift;
                self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
                self.snd_wl1 = seq;
                self.snd_wl2 = ack;
                self.set_state(TcpState::Established);
                transition = if self.active {
                    Transition::Connected
                } else {
                    Transition::Established
                };
                if self.fin_queued {
                    self.set_state(TcpState::FinWait1);
                }
            } else {
                // RFC 9293: <SEQ=SEG.ACK><CTL=RST>.
                self.rst_out = Some(self.rst_repr(ack, None));
                return Transition::None;
            }
        } else {
            // RFC 5961 5.2: acceptable if SND.UNA - MAX.SND.WND <= SEG.ACK <= SND.NXT.
            if ack > self.snd_max || ack < self.snd_una - self.max_snd_wnd.max(1) {
                // RFC 9293: ACK for something not yet sent: ACK and drop;
                // RFC 5961 5.2: an ACK too old to be acceptable, the same,
                // as a challenge ACK (rate-limited, as Linux).
                self.challenge_ack(now);
                return Transition::None;
            }
            self.process_ack(now, seg, ack, payload.len());
        }

        // Timestamps (RFC 7323 4.3): TS.Recent takes SEG.TSval only if
        // SEG.SEQ <= Last.ACK.sent, so an ACK covering several segments
        // (a delayed ACK) echoes the earliest of them and the peer's RTT
        // sample includes our delay (Linux: tcp_replace_ts_recent vs rcv_wup).
        if let (Some(ts), Some((tsval, _))) = (self.ts.as_mut(), seg.options.timestamps) {
            if seq <= self.last_ack_sent && !ts_before(tsval, ts.recent) {
                ts.recent = tsval;
                ts.recent_at = now;
            }
        }
        self.last_recv = now;
        if self.keepalive.enabled {
            self.keepalive.probes_sent = 0;
            self.keepalive_at = Some(now + self.keepalive.idle);
        }

        // Our FIN acknowledged?
        let fin_acked = self.fin_seq.is_some_and(|f| self.snd_una > f);
        match self.state {
            TcpState::FinWait1 if fin_acked => self.set_state(TcpState::FinWait2),
            TcpState::Closing if fin_acked => {
                self.enter_time_wait(now);
                return Transition::TimeWait;
            }
            TcpState::LastAck if fin_acked => {
                self.set_state(TcpState::Closed);
                return Transition::Closed;
            }
            TcpState::TimeWait => {
                // Only a retransmitted FIN can arrive: ACK it, restart 2 MSL.
                if seg.flags.fin() {
                    self.ack_now = true;
                    self.time_wait_at = Some(now + self.cfg.time_wait);
                }
                return Transition::None;
            }
            _ => {}
        }

        // Seventh: the segment text.
        if !payload.is_empty() || seg.flags.fin() {
            match self.state {
                TcpState::Established | TcpState::FinWait1 | TcpState::FinWait2 | TcpState::SynReceived => {
                    self.receive_data(now, seq, payload, seg.flags.fin());
                }
                // CLOSE-WAIT, CLOSING, LAST-ACK: the peer already sent its
                // FIN; data now is a retransmission. ACK it.
                _ => self.ack_now = true,
            }
        }

        // Eighth: the FIN, once everything before it has arrived.
        if self.rx_fin.is_some_and(|f| f == self.rcv_nxt) {
            self.rcv_nxt += 1;
            self.ack_now = true;
            match self.state {
                TcpState::SynReceived | TcpState::Established => self.set_state(TcpState::CloseWait),
                TcpState::FinWait1 => {
                    if self.fin_seq.is_some_and(|f| self.snd_una > f) {
                        self.enter_time_wait(now);
                        return Transition::TimeWait;
                    }
                    self.set_state(TcpState::Closing);
                }
                TcpState::FinWait2 => {
                    self.enter_time_wait(now);
                    return Transition::TimeWait;
                }
                _ => {}
            }
        }
        transition
    }

    /// A RST passed RFC 5961's exact-sequence test (RFC 9293 3.10.7.4,
    /// second check).
    fn on_reset(&mut self) -> Transition {
        let state = self.state;
        self.set_state(TcpState::Closed);
        match state {
            TcpState::SynReceived if !self.active => Transition::BackToListen,
            TcpState::SynReceived => {
                self.error = Some(SocketError::ConnectionRefused);
                Transition::Closed
            }
            TcpState::Established | TcpState::FinWait1 | TcpState::FinWait2 | TcpState::CloseWait => {
                self.error = Some(SocketError::ConnectionReset);
                Transition::Closed
            }
            _ => Transition::Closed,
        }
    }

    /// RFC 5961 (3.2, 4.2, 5.2): answer with a challenge ACK, within this
    /// connection's limit here and the interface's budget in the owner.
    /// The limit applies whatever the segment carries (Linux
    /// tcp_send_challenge_ack uses __tcp_oow_rate_limited, without the
    /// exemption for data): else an off-path attacker's in-window RST or
    /// too-old ACK with a byte of payload is answered every time, and its
    /// answers can be counted (CVE-2016-5696).
    fn challenge_ack(&mut self, now: Instant) {
        self.challenge = Some(if self.oow_ack_allowed(now) {
            Challenge::Send
        } else {
            Challenge::Suppressed
        });
    }

    /// Whether an unacceptable segment may be answered with an ACK now
    /// (TcpConfig::invalid_ratelimit; Linux tcp_oow_rate_limited). A
    /// segment with data (and no SYN) always may: it cannot be one side
    /// of an ACK loop, and its ACK may be what the peer needs to recover
    /// from a lost one (RFC 9293 3.10.7.4 answers every unacceptable
    /// segment; the limit is the throttling RFC 5961 7 recommends).
    fn invalid_ack_allowed(&mut self, now: Instant, seg: &TcpRepr, seg_len: usize) -> bool {
        (seg_len > 0 && !seg.flags.syn()) || self.oow_ack_allowed(now)
    }

    /// This connection's limit on ACKs to unacceptable segments, one per
    /// `invalid_ratelimit` (Linux __tcp_oow_rate_limited).
    fn oow_ack_allowed(&mut self, now: Instant) -> bool {
        let limit = self.cfg.invalid_ratelimit;
        if limit.is_zero() {
            return true;
        }
        if self.last_invalid_ack.is_some_and(|t| now < t + limit) {
            self.stats.acks_rate_limited += 1;
            return false;
        }
        self.last_invalid_ack = Some(now);
        true
    }

    fn enter_time_wait(&mut self, now: Instant) {
        self.set_state(TcpState::TimeWait);
        self.time_wait_at = Some(now + self.cfg.time_wait);
        self.rto_at = None;
        self.persist_at = None;
        self.keepalive_at = None;
        self.delack_at = None;
    }

    /// RFC 9293 3.10.7.4 fifth check for synchronized states: new data
    /// acknowledged, duplicate ACKs (RFC 5681 3.2), window updates.
    fn process_ack(&mut self, now: Instant, seg: &TcpRepr, ack: SeqNumber, payload_len: usize) {
        let seq = SeqNumber(seg.seq);
        let window = usize::from(seg.window) << self.snd_wscale;
        if ack >= self.snd_una {
            // The peer is there: a probe was answered, whatever the window
            // (RFC 1122 4.2.2.17; Linux tcp_ack clears icsk_probes_out).
            self.probes_out = 0;
        }
        if ack > self.snd_una {
            // RFC 7661 (and Linux's tcp_is_cwnd_limited): grow the window
            // only if the sender was using it; an application-limited
            // sender would otherwise inflate cwnd without bound on a clean
            // path, and burst when it finally has data.
            let cwnd_limited = self.in_flight() * 2 >= self.cc.window();
            let mut acked = ack.distance(self.snd_una);
            // The FIN occupies a sequence number but no buffer byte.
            if self.fin_seq.is_some_and(|f| ack > f) {
                acked -= 1;
            }
            let acked = self.tx.dequeue_allocated(acked);
            self.stats.bytes_acked += acked as u64;
            self.snd_una = ack;
            if self.snd_nxt < self.snd_una {
                self.snd_nxt = self.snd_una;
            }
            // RTT: timestamps where we have them (RFC 7323 4), else Karn's
            // timed segment (RFC 6298 3).
            let sample = match (self.ts, seg.options.timestamps) {
                (Some(ts), Some((_, tsecr))) if tsecr != 0 => {
                    let ours = self.ts_now(now, ts.offset);
                    Some(Duration::from_millis(u64::from(ours.wrapping_sub(tsecr))))
                }
                _ => match self.rtt_probe {
                    Some((probe, sent)) if ack > probe => {
                        self.rtt_probe = None;
                        Some(now - sent)
                    }
                    _ => None,
                },
            };
            if let Some(rtt) = sample {
                if rtt < Duration::from_secs(60) {
                    self.rtt.sample(rtt, self.snd_una, self.snd_max);
                }
            }
            self.retries = 0;
            // No rtt.reset_backoff() here: without a valid sample (the ACK
            // covers a retransmission) the backed-off RTO stays until one
            // arrives (Karn, RFC 6298 5.7; Linux tcp_ack_update_rtt).
            // Progress: the persist timer starts over too (Linux shares
            // icsk_backoff between RTO and probes).
            self.persist_backoff = 0;
            let mss = self.payload_mss();
            match self.recovery {
                Some(recover) if ack >= recover => {
                    self.recovery = None;
                    self.cc.on_recovery_end();
                }
                Some(_) => {
                    // A partial ACK: without NewReno (a later issue), Reno
                    // leaves recovery here too, then retransmits on the timer.
                    self.recovery = None;
                    self.cc.on_recovery_end();
                }
                None if cwnd_limited => self.cc.on_ack(acked, mss, false),
                None => {}
            }
            self.dup_acks = 0;
            // RFC 6298 5.2/5.3: stop the timer when all is acked, else restart.
            self.rto_at = (self.in_flight() > 0).then(|| now + self.rtt.rto());
            self.unacked_since = (self.in_flight() > 0).then_some(now);
            if self.rtt_probe.is_some_and(|(p, _)| p < self.snd_una) {
                self.rtt_probe = None;
            }
        } else if ack == self.snd_una
            && self.in_flight() > 0
            && payload_len == 0
            && !seg.flags.syn()
            && !seg.flags.fin()
            && window == self.snd_wnd
        {
            // RFC 5681 2: a duplicate ACK needs outstanding data, no data
            // of its own, no SYN/FIN, and an unchanged window.
            self.dup_acks += 1;
            self.stats.dup_acks_in += 1;
            let mss = self.payload_mss();
            if self.dup_acks == 3 && self.recovery.is_none() {
                // RFC 5681 3.2 step 2-4: fast retransmit, enter recovery.
                // Step 2: data sent by limited transmit (beyond cwnd) MUST
                // NOT count in the FlightSize that sets ssthresh.
                let flight = self.in_flight().min(self.cc.window().max(mss));
                self.cc.on_fast_retransmit(flight, mss);
                self.recovery = Some(self.snd_max);
                self.retransmit_una = true;
                self.rtt_probe = None;
            } else if self.dup_acks > 3 && self.recovery.is_some() {
                self.cc.on_dup_ack_in_recovery(mss);
            }
        }
        // RFC 9293: update the send window if the segment is newer.
        if self.snd_wl1 < seq || (self.snd_wl1 == seq && self.snd_wl2 <= ack) {
            self.update_window(window, seq, ack);
        }
    }

    fn update_window(&mut self, window: usize, seq: SeqNumber, ack: SeqNumber) {
        let was_zero = self.snd_wnd == 0;
        self.snd_wnd = window;
        self.max_snd_wnd = self.max_snd_wnd.max(window);
        self.snd_wl1 = seq;
        self.snd_wl2 = ack;
        if window > 0 && was_zero {
            self.persist_at = None;
            self.persist_backoff = 0;
            self.probes_since = None;
        }
    }

    /// Place segment text in the receive buffer (RFC 9293 3.10.7.4 seventh
    /// check), trimming what lies outside the window.
    fn receive_data(&mut self, now: Instant, seq: SeqNumber, payload: &[u8], fin: bool) {
        // Trim the part already received.
        let (mut seq, mut data) = (seq, payload);
        if seq < self.rcv_nxt {
            let dup = self.rcv_nxt.distance(seq).min(data.len());
            data = &data[dup..];
            seq += dup;
        }
        if fin {
            let fin_at = seq + data.len();
            if self.rx_fin.is_none() {
                self.rx_fin = Some(fin_at);
            }
        }
        if data.is_empty() {
            if !fin {
                // A pure duplicate: the peer retransmitted, perhaps because
                // our ACKs are lost or late; say where we are, and ACK the
                // next data at once too (Linux tcp_enter_quickack_mode).
                self.ack_now = true;
                self.enter_quickack_mode();
            }
            return;
        }
        let offset = seq.distance(self.rcv_nxt);
        let room = self.rx.window();
        if offset >= room {
            self.ack_now = true;
            self.enter_quickack_mode();
            return;
        }
        let data = &data[..data.len().min(room - offset)];
        self.on_data_received(now, payload.len());
        if offset == 0 {
            let had_holes = !self.ooo.is_empty();
            let n = self.rx.enqueue_slice(data);
            self.ooo.advance(n);
            let more = self.ooo.remove_front();
            self.rx.enqueue_unallocated(more);
            self.rcv_nxt += n + more;
            self.stats.bytes_received += (n + more) as u64;
            if had_holes {
                // RFC 5681 4.2: ACK at once when a segment fills a hole.
                self.ack_now = true;
            } else if self.rcv_nxt.distance(self.last_ack_sent) > self.rcv_mss {
                // RFC 5681 4.2: ACK at least every second full-sized
                // segment. As Linux (__tcp_ack_snd_check), more than one
                // segment's worth of unacknowledged data is the test, so a
                // coalesced (GRO) segment or a full one after a small one
                // counts too.
                self.ack_now = true;
            } else if self.quick_acks > 0 && !self.pingpong {
                self.ack_now = true;
            }
            if !self.ack_now && self.delack_at.is_none() {
                self.delack_at = Some(now + self.cfg.delayed_ack);
            }
        } else {
            // Out of order: keep it if the assembler has room, and send a
            // duplicate ACK at once (RFC 5681 4.2), with SACK blocks.
            let written = self.rx.write_unallocated(offset, data);
            if self.ooo.add(offset, written).is_err() {
                tracing::debug!(remote = %self.remote, "too many out-of-order ranges; segment dropped");
            }
            self.ack_now = true;
        }
        if self.rx_fin.is_some_and(|f| f == self.rcv_nxt) {
            self.ack_now = true;
        }
    }

    /// Bookkeeping for every segment that brought data (Linux
    /// tcp_event_data_recv and tcp_measure_rcv_mss).
    fn on_data_received(&mut self, now: Instant, len: usize) {
        self.ack_scheduled = true;
        if len >= self.rcv_mss {
            self.rcv_mss = len.min(self.our_mss);
        }
        match self.last_data_at {
            // The first data of the connection: the sender is in slow start
            // and every ACK we delay holds it back.
            None => self.incr_quickack(),
            // Silent for longer than an RTO: the sender restarts from a
            // small window (RFC 5681 4.1), so ACK quickly again.
            Some(t) if now - t > self.rtt.rto() => self.incr_quickack(),
            Some(_) => {}
        }
        self.last_data_at = Some(now);
    }

    /// Linux tcp_incr_quickack: enough quick ACKs to cover half the window
    /// in segments, at most `quickack_max`.
    fn incr_quickack(&mut self) {
        let window = self.rcv_adv.distance(self.last_ack_sent);
        let mut quick = (window / (2 * self.rcv_mss)) as u32;
        if quick == 0 {
            quick = 2;
        }
        self.quick_acks = self.quick_acks.max(quick.min(self.cfg.quickack_max));
    }

    /// Linux tcp_enter_quickack_mode.
    fn enter_quickack_mode(&mut self) {
        self.incr_quickack();
        self.pingpong = false;
    }

    // ---------- timers ----------

    /// The earliest deadline of this connection's timers.
    pub fn deadline(&self) -> Option<Instant> {
        [
            self.rto_at,
            self.persist_at,
            self.delack_at,
            self.keepalive_at,
            self.time_wait_at,
            self.fin_wait2_at,
            self.user_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn user_deadline(&self) -> Option<Instant> {
        Some(self.unacked_since? + self.user_timeout?)
    }

    /// Act on every timer that is due.
    pub fn on_timer(&mut self, now: Instant) -> Transition {
        if self.time_wait_at.is_some_and(|t| now >= t) {
            self.time_wait_at = None;
            self.set_state(TcpState::Closed);
            return Transition::Closed;
        }
        if self.fin_wait2_at.is_some_and(|t| now >= t) {
            tracing::debug!(remote = %self.remote, "orphaned FIN-WAIT-2 timed out");
            self.set_state(TcpState::Closed);
            return Transition::Closed;
        }
        if self.user_deadline().is_some_and(|t| now >= t) {
            return self.time_out(now, false);
        }
        if self.rto_at.is_some_and(|t| now >= t) {
            self.rto_at = None;
            let limit = match self.state {
                TcpState::SynSent => self.syn_retries,
                // Linux syn_ack_recalc: a deferred connection the peer has
                // ACKed lives out the whole deferral.
                TcpState::SynReceived if self.defer_acked => self.cfg.synack_retries.max(self.defer_accept),
                TcpState::SynReceived => self.cfg.synack_retries,
                _ => self.cfg.max_retransmits,
            };
            if self.retries >= limit {
                return self.time_out(now, false);
            }
            self.retries += 1;
            self.rtt.back_off();
            self.rtt_probe = None;
            // RFC 5681 3.1 / RFC 6298 5.4: retransmit the earliest segment,
            // go back to one segment of window.
            if self.state.is_synchronized() {
                let mss = self.payload_mss();
                self.cc.on_rto(self.in_flight(), mss);
            }
            self.recovery = None;
            self.dup_acks = 0;
            if self.state == TcpState::SynReceived && self.defer_acked && self.retries < self.defer_accept {
                // Deferring, and the peer has our SYN-ACK: keep the timer
                // (and its backoff) but resend only at the end of the
                // deferral, as a last chance (Linux syn_ack_recalc).
                self.rto_at = Some(now + self.rtt.rto());
                return Transition::None;
            }
            self.snd_nxt = if self.state == TcpState::SynSent || self.state == TcpState::SynReceived {
                self.iss
            } else {
                self.snd_una
            };
            tracing::debug!(remote = %self.remote, retries = self.retries, rto = ?self.rtt.rto(), "retransmission timeout");
        }
        if self.persist_at.is_some_and(|t| now >= t) {
            self.persist_at = None;
            // RFC 1122 4.2.2.17 keeps probing a zero window for as long as
            // the peer answers. One that stopped answering is given up on
            // after tcp_retries2 probes (fewer once the application has
            // closed), and a window closed for longer than TCP_USER_TIMEOUT
            // since the first probe ends the connection too: Linux
            // tcp_probe_timer (gVisor does the same). ETIMEDOUT, no RST.
            let since = *self.probes_since.get_or_insert(now);
            if self.user_timeout.is_some_and(|limit| now - since >= limit) {
                return self.time_out(now, false);
            }
            let max = if self.orphan {
                self.cfg.orphan_retries
            } else {
                self.cfg.max_retransmits
            };
            if self.probes_out >= max {
                return self.time_out(now, false);
            }
            self.probes_out += 1;
            self.send_probe = true;
            self.persist_backoff = (self.persist_backoff + 1).min(16);
        }
        if self.delack_at.is_some_and(|t| now >= t) {
            self.delack_at = None;
            self.ack_now = true;
            // The reply we waited to piggyback on did not come in time:
            // leave interactive mode (Linux tcp_delack_timer_handler).
            self.pingpong = false;
        }
        if self.keepalive_at.is_some_and(|t| now >= t) {
            if self.in_flight() > 0 || self.unsent() > 0 {
                // RFC 1122 4.2.3.6 probes an idle connection; with data
                // outstanding the retransmission timer watches the peer
                // (as Linux's tcp_keepalive_timer, which only re-arms).
                self.keepalive.probes_sent = 0;
                self.keepalive_at = Some(now + self.keepalive.idle);
            } else if self.keepalive.probes_sent >= self.keepalive.count {
                // Linux resets a connection whose keepalives went
                // unanswered (tcp_keepalive_timer).
                return self.time_out(now, true);
            } else {
                self.keepalive.probes_sent += 1;
                self.send_keepalive = true;
                self.keepalive_at = Some(now + self.keepalive.interval);
            }
        }
        Transition::None
    }

    /// Give up on the peer (ETIMEDOUT). `reset`: tell the peer with a RST,
    /// which Linux does for unanswered keepalives only; a connection whose
    /// retransmissions or user timeout ran out is dropped silently (RFC
    /// 9293 3.10.8 USER TIMEOUT, RFC 1122 4.2.3.5; Linux tcp_write_err).
    fn time_out(&mut self, now: Instant, reset: bool) -> Transition {
        tracing::debug!(remote = %self.remote, state = %self.state, "connection timed out");
        self.error = Some(SocketError::TimedOut);
        let synchronized = matches!(
            self.state,
            TcpState::Established | TcpState::CloseWait | TcpState::FinWait1 | TcpState::FinWait2
        );
        if reset && synchronized {
            self.rst_out = Some(self.active_rst(now));
        }
        self.set_state(TcpState::Closed);
        Transition::Closed
    }

    /// Whether an ICMP error quoting a segment with sequence number `seq`
    /// can be about this connection: only a segment in flight can draw one,
    /// SND.UNA <= SEG.SEQ <= SND.NXT (RFC 5927 4.1; Linux tcp_v4_err). The
    /// highest sequence number sent stands for SND.NXT, which retransmission
    /// rewinds.
    pub fn icmp_seq_acceptable(&self, seq: SeqNumber) -> bool {
        self.snd_una <= seq && seq <= self.snd_max
    }

    /// An ICMP error other than "fragmentation needed" arrived for this
    /// connection. Fatal while connecting (as Linux's tcp_v4_err); once
    /// synchronized, every one is soft, kept for SO_ERROR and nothing more
    /// (RFC 1122 4.2.3.9 for the soft codes, RFC 5927 5.2 for the rest).
    pub fn on_icmp_error(&mut self, err: SocketError) -> Transition {
        if self.state == TcpState::SynSent || self.state == TcpState::SynReceived && self.active {
            self.error = Some(err);
            self.set_state(TcpState::Closed);
            return Transition::Closed;
        }
        // In synchronized states errors are soft: remember, keep going.
        self.error = Some(err);
        Transition::None
    }

    /// Path MTU lowered (RFC 1191): clamp the MSS and resend what no longer fits.
    pub fn on_path_mtu(&mut self, mtu: usize) {
        if mtu >= 68 && mtu < self.mtu {
            self.mtu = mtu;
            if self.in_flight() > 0 {
                self.snd_nxt = self.snd_una;
            }
        }
    }

    // ---------- output ----------

    fn ts_now(&self, now: Instant, offset: u32) -> u32 {
        (now.total_millis() as u32).wrapping_add(offset)
    }

    fn rst_repr(&self, seq: SeqNumber, ack: Option<SeqNumber>) -> TcpRepr {
        let mut flags = TcpFlags::RST;
        if ack.is_some() {
            flags.insert(TcpFlags::ACK);
        }
        TcpRepr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq: seq.0,
            ack: ack.map(|a| a.0).unwrap_or(0),
            flags,
            window: 0,
            urgent: 0,
            options: TcpOptions::default(),
        }
    }

    /// A RST this connection must send, if any.
    pub fn take_rst(&mut self) -> Option<TcpRepr> {
        self.rst_out.take()
    }

    /// A challenge ACK owed (RFC 5961); if this connection's limit let it
    /// go, the owner applies the interface's budget and calls
    /// [`Self::request_ack`] if it may.
    pub fn take_challenge(&mut self) -> Option<Challenge> {
        self.challenge.take()
    }

    /// Send an ACK at the next opportunity.
    pub fn request_ack(&mut self) {
        self.ack_now = true;
    }

    /// The next segment to send, if any: header fields, plus the offset and
    /// length of its data in the send buffer (see [`Self::copy_data`]).
    pub fn poll_segment(&mut self, now: Instant) -> Option<(TcpRepr, usize, usize)> {
        match self.state {
            TcpState::Closed | TcpState::Listen => None,
            TcpState::SynSent | TcpState::SynReceived => self.poll_handshake(now),
            TcpState::TimeWait => self.ack_now.then(|| self.pure_ack(now)).map(|r| (r, 0, 0)),
            _ => self.poll_data(now),
        }
    }

    fn poll_handshake(&mut self, now: Instant) -> Option<(TcpRepr, usize, usize)> {
        if self.snd_nxt != self.iss {
            // SYN sent; in SYN-RECEIVED we may still owe an ACK.
            if self.state == TcpState::SynReceived && self.ack_now {
                return Some((self.pure_ack(now), 0, 0));
            }
            return None;
        }
        let mut options = self.offered;
        if let Some(ts) = self.ts_for_syn() {
            options.timestamps = Some((self.ts_now(now, self.ts_offset), ts));
        }
        let mut flags = TcpFlags::SYN;
        let mut ack = 0;
        if self.state == TcpState::SynReceived {
            flags.insert(TcpFlags::ACK);
            ack = self.rcv_nxt.0;
            self.last_ack_sent = self.rcv_nxt;
        }
        let repr = TcpRepr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq: self.iss.0,
            ack,
            flags,
            // RFC 7323 2.2: the window in a SYN is not scaled.
            window: self.rx.window().min(65535) as u16,
            urgent: 0,
            options,
        };
        if self.state == TcpState::SynReceived {
            self.rcv_adv = self.rcv_nxt + usize::from(repr.window);
        }
        // Karn (RFC 6298 3): time only the first transmission of our SYN.
        // A resend (timer, a retransmitted SYN from the peer, or the
        // SYN-ACK of a simultaneous open) makes the ACK ambiguous.
        if self.snd_max == self.iss {
            self.rtt_probe = Some((self.iss, now));
        } else {
            self.rtt_probe = None;
            self.stats.retransmits += 1;
        }
        self.snd_nxt = self.iss + 1;
        self.snd_max = self.snd_max.max(self.snd_nxt);
        self.rto_at = Some(now + self.rtt.rto());
        self.ack_now = false;
        self.delack_at = None;
        self.stats.segs_out += 1;
        Some((repr, 0, 0))
    }

    /// TSecr for a SYN: 0 on an active open, the peer's TSval on a SYN-ACK.
    fn ts_for_syn(&self) -> Option<u32> {
        self.offered.timestamps?;
        Some(match (self.state, self.ts) {
            (TcpState::SynReceived, Some(ts)) => ts.recent,
            _ => 0,
        })
    }

    /// Header fields every synchronized segment carries.
    fn base_repr(&mut self, now: Instant, seq: SeqNumber, flags: u8) -> TcpRepr {
        let (wnd, _) = self.window_to_advertise();
        self.rcv_adv = self.rcv_adv.max(self.rcv_nxt + wnd);
        let mut options = TcpOptions::default();
        if let Some(ts) = self.ts {
            options.timestamps = Some((self.ts_now(now, ts.offset), ts.recent));
        }
        if self.sack_ok {
            // RFC 2018 4: the block with the most recent data first.
            let room = if self.ts.is_some() { 3 } else { 4 };
            for (start, end) in self.ooo.sack_ranges(room) {
                options
                    .sack_blocks
                    .push(((self.rcv_nxt + start).0, (self.rcv_nxt + end).0));
            }
        }
        self.ack_now = false;
        self.delack_at = None;
        if self.ack_scheduled {
            // Linux tcp_dec_quickack_mode: one quick ACK used.
            self.ack_scheduled = false;
            self.quick_acks = self.quick_acks.saturating_sub(1);
        }
        self.stats.segs_out += 1;
        TcpRepr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq: seq.0,
            ack: {
                self.last_ack_sent = self.rcv_nxt;
                self.rcv_nxt.0
            },
            flags: TcpFlags(flags | TcpFlags::ACK.0),
            window: (wnd >> self.rcv_wscale).min(65535) as u16,
            urgent: 0,
            options,
        }
    }

    fn pure_ack(&mut self, now: Instant) -> TcpRepr {
        let seq = self.acceptable_seq();
        self.base_repr(now, seq, 0)
    }

    /// The sequence number of a segment without data (an ACK, a RST).
    ///
    /// RFC 9293's SND.NXT is our snd_max: snd_nxt is rewound by a
    /// retransmission timeout, and an ACK with a sequence number the peer
    /// has already passed would fail its acceptability test and be
    /// dropped, ACK field and all.
    ///
    /// But a peer may shrink its window below data we already sent (RFC
    /// 9293 3.8.6: it SHOULD NOT; the sender must cope). SND.NXT is then
    /// beyond its window and fails the same test (RFC 9293 3.10.7.4: with
    /// RCV.WND = 0 only SEG.SEQ = RCV.NXT is acceptable), so the peer never
    /// sees our ACKs; if its application is blocked sending, it never reads
    /// and never opens the window again. As Linux (tcp_acceptable_seq),
    /// use the right edge of the window, SND.UNA + SND.WND, instead.
    fn acceptable_seq(&self) -> SeqNumber {
        let edge = self.snd_una + self.snd_wnd;
        // Before our SYN is acknowledged the window says nothing of it.
        if self.syn_unacked() || self.snd_max <= edge {
            self.snd_max
        } else {
            edge
        }
    }

    fn poll_data(&mut self, now: Instant) -> Option<(TcpRepr, usize, usize)> {
        // Congestion control counts in the payload of a full segment, the
        // size segments are cut to (RFC 5681 2: the SMSS excludes options;
        // Linux counts cwnd in segments of mss_cache). Counting in the MSS
        // with the options in made one SMSS of cwnd after a timeout a full
        // segment and a 12-byte runt.
        let mss = self.payload_mss();
        let sack_blocks = if self.sack_ok {
            // RFC 2018 3: three blocks fit beside timestamps, four without.
            self.ooo
                .sack_ranges(if self.ts.is_some() { 3 } else { 4 })
                .count()
        } else {
            0
        };
        let payload_max = self
            .mss()
            .saturating_sub(self.option_overhead(sack_blocks))
            .max(1);
        // RFC 6928: the initial window is ten segments of the MSS the
        // handshake settled on (the SMSS excludes options, RFC 5681 2).
        // Like Linux, which counts cwnd in segments, no 14600-byte cap.
        self.cc.set_initial_window(self.cfg.initial_window as usize * mss);

        // Fast retransmit: resend the first unacknowledged segment now.
        if self.retransmit_una {
            self.retransmit_una = false;
            let base = self.data_base();
            let len = self.tx.len().min(payload_max).min(self.in_flight());
            let fin = len == 0 && self.fin_seq.is_some();
            if len > 0 || fin {
                let una = self.snd_una;
                // PSH only where the original had it: on the segment that
                // ends the queued data (as Linux, whose retransmission keeps
                // the flags of the original segment).
                let push = len > 0 && len == self.tx.len();
                let flags = if fin { TcpFlags::FIN.0 } else { 0 } | if push { TcpFlags::PSH.0 } else { 0 };
                let repr = self.base_repr(now, una, flags);
                self.stats.retransmits += 1;
                self.rto_at = Some(now + self.rtt.rto());
                return Some((repr, una.distance(base), len));
            }
        }

        let offset = self.data_sent_offset();
        let unsent = self.unsent();
        let is_retransmit = self.snd_nxt < self.snd_max;
        // RFC 3042 / RFC 5681 3.2: limited transmit. Each of the first two
        // duplicate ACKs lets one segment of new data out beyond cwnd (if
        // the peer's window allows), keeping the ACK clock going so a small
        // window still collects the three duplicates fast retransmit needs.
        // cwnd itself is left alone.
        let limited = if self.recovery.is_none() && !is_retransmit {
            self.dup_acks.min(2) as usize * mss
        } else {
            0
        };
        let window_end = self.snd_una + self.snd_wnd.min(self.cc.window().max(mss) + limited);
        let usable = if window_end > self.snd_nxt {
            window_end.distance(self.snd_nxt)
        } else {
            0
        };
        let mut len = unsent.min(payload_max).min(usable);

        if len > 0 && !is_retransmit && len < payload_max {
            // RFC 9293 3.8.6.2.1 sender SWS avoidance and RFC 896 Nagle: a
            // partial segment goes only if it is all we have and Nagle
            // allows it, or it fills half the largest window the peer ever
            // offered. Nagle as Linux implements it (Minshall's variant,
            // draft-minshall-nagle): a small segment waits only while an
            // earlier small segment is unacknowledged, so the tail of a
            // large write is not delayed by the full segments before it.
            let all_queued = len == unsent;
            let small_outstanding = self.snd_sml > self.snd_una;
            // TCP_CORK holds every partial segment (Linux tcp_nagle_check)
            // until the FIN goes behind it.
            let nagle_ok = (self.nodelay || self.in_flight() == 0 || !small_outstanding)
                && (!self.cork || self.fin_queued);
            let big_enough = len >= self.max_snd_wnd / 2 && self.max_snd_wnd > 0;
            // RFC 1122 4.2.3.4 (4) / RFC 9293 3.8.6.2.1: the override
            // timeout (our persist timer, armed below while nothing is in
            // flight) sends what fits rather than wait for ever on a window
            // too small for a full segment (Linux: tcp_write_wakeup).
            let overdue = self.send_probe && self.in_flight() == 0;
            if !((all_queued && nagle_ok) || big_enough || overdue) {
                len = 0;
            }
        }

        // The FIN goes with (or after) the last data, when the window has
        // room for its sequence number: it is subject to flow control like
        // data (RFC 9293 3.8.6.1; Linux tcp_snd_wnd_test counts it). Into a
        // zero window the persist timer probes, below.
        let fin_pending = self.fin_queued && self.fin_seq.is_none_or(|f| self.snd_nxt <= f);
        let fin_now = fin_pending && len == unsent && (self.snd_nxt + len) < window_end;
        if len > 0 || fin_now {
            let mut flags = 0;
            // RFC 1122 4.2.2.2: PSH on the segment that empties the queue.
            // Like Linux, also on the last segment of a burst the congestion
            // window cuts short, with more data queued behind it (RFC 9293
            // 3.9.1.2 leaves PSH beyond the last queued byte to the sender).
            let cwnd_limited = self.cc.window().max(mss) <= self.snd_wnd;
            let burst_end = !is_retransmit
                && cwnd_limited
                && limited == 0
                && usable - len < (unsent - len).min(payload_max);
            if len > 0 && (len == unsent || burst_end) {
                flags |= TcpFlags::PSH.0;
            }
            if fin_now {
                flags |= TcpFlags::FIN.0;
            }
            let seq = self.snd_nxt;
            let repr = self.base_repr(now, seq, flags);
            if is_retransmit {
                self.stats.retransmits += 1;
            } else if self.rtt_probe.is_none() && self.ts.is_none() && len > 0 {
                self.rtt_probe = Some((seq, now));
            }
            if !is_retransmit && len > 0 && self.last_data_at.is_some_and(|t| now - t < self.cfg.delayed_ack)
            {
                // A reply within the delayed-ACK time of the peer's data:
                // the exchange is interactive, so let later ACKs wait for
                // our replies (Linux tcp_event_data_sent, pingpong).
                self.pingpong = true;
            }
            self.snd_nxt += len;
            if len < payload_max {
                self.snd_sml = self.snd_nxt;
            }
            if fin_now {
                self.fin_seq = Some(self.snd_nxt);
                self.snd_nxt += 1;
            }
            self.snd_max = self.snd_max.max(self.snd_nxt);
            if self.rto_at.is_none() {
                self.rto_at = Some(now + self.rtt.rto());
            }
            if self.unacked_since.is_none() {
                self.unacked_since = Some(now);
            }
            self.persist_at = None;
            self.send_probe = false;
            self.probes_out = 0;
            self.probes_since = None;
            return Some((repr, offset, len));
        }

        // Data waiting, nothing in flight, and nothing could go: the window
        // is zero, or too small to beat SWS avoidance. The persist timer
        // probes a zero window (RFC 9293 3.8.6.1) and sends into a small
        // one (above). Like Linux, the probe is a segment with an old
        // sequence number that elicits an ACK carrying the current window.
        // The same after a retransmission timeout that found the window
        // closed (data in flight, none of it may go, no timer left): the
        // expiry counts as the first probe's, so probe at once.
        let rtx_blocked = self.snd_nxt < self.snd_max && self.rto_at.is_none() && usable == 0;
        if rtx_blocked && self.persist_at.is_none() {
            self.send_probe = true;
        }
        if ((unsent > 0 || fin_pending) && self.in_flight() == 0) || rtx_blocked {
            if self.send_probe && usable == 0 {
                self.send_probe = false;
                self.stats.zero_window_probes += 1;
                let seq = self.snd_una - 1;
                let repr = self.base_repr(now, seq, 0);
                self.persist_at = Some(now + self.persist_interval(now));
                return Some((repr, 0, 0));
            }
            if self.persist_at.is_none() {
                self.persist_at = Some(now + self.persist_interval(now));
            }
        }

        if self.send_keepalive {
            self.send_keepalive = false;
            // RFC 1122 4.2.3.6: SEG.SEQ = SND.NXT-1, no data (as Linux).
            let seq = self.snd_max - 1;
            return Some((self.base_repr(now, seq, 0), 0, 0));
        }
        if self.ack_now {
            return Some((self.pure_ack(now), 0, 0));
        }
        None
    }

    fn persist_interval(&self, now: Instant) -> Duration {
        let factor = 1u32 << self.persist_backoff.min(16);
        let interval = self
            .rtt
            .rto()
            .saturating_mul(factor)
            .clamp(self.cfg.rto_min, PERSIST_MAX);
        // Expire no later than the user timeout, so probing gives up on
        // time (Linux tcp_clamp_probe0_to_user_timeout).
        match (self.probes_since, self.user_timeout) {
            (Some(since), Some(limit)) => interval.min((since + limit) - now),
            _ => interval,
        }
    }

    /// Sequence number of `tx`'s first byte.
    fn data_base(&self) -> SeqNumber {
        if self.syn_unacked() {
            self.iss + 1
        } else {
            self.snd_una
        }
    }

    /// Our SYN (or SYN-ACK) is not yet acknowledged, so it, not data, sits
    /// at SND.UNA = ISS. Asked of the state, not of SND.UNA == ISS: SND.UNA
    /// comes back to ISS after every 2^32 bytes (RFC 9293 3.4, sequence
    /// numbers are modulo 2^32), and the send buffer addressed from ISS + 1
    /// then would put every byte sent one place early.
    fn syn_unacked(&self) -> bool {
        matches!(self.state, TcpState::SynSent | TcpState::SynReceived)
    }

    /// Copy `len` bytes of the send buffer at `offset` into `out`.
    pub fn copy_data(&self, offset: usize, out: &mut [u8]) -> usize {
        self.tx.read_allocated(offset, out)
    }

    /// Has this connection anything to send right now?
    pub fn wants_to_send(&self) -> bool {
        self.rst_out.is_some()
            || self.ack_now
            || self.retransmit_una
            || self.send_probe
            || self.send_keepalive
            || (matches!(self.state, TcpState::SynSent | TcpState::SynReceived) && self.snd_nxt == self.iss)
            || self.unsent() > 0
            || (self.fin_queued && self.fin_seq.is_none())
            || (self.snd_nxt < self.snd_max)
    }

    /// Bytes of send buffer not yet acknowledged and not yet sent: zero
    /// once everything was delivered (for a graceful close).
    pub fn send_queue_len(&self) -> usize {
        self.tx.len()
    }

    /// Bytes written and never sent (Linux SIOCOUTQNSD: a retransmission
    /// timeout does not make sent data unsent).
    pub fn never_sent_len(&self) -> usize {
        self.tx.len().saturating_sub(self.data_offset(self.snd_max))
    }

    /// What a TIME-WAIT stand-in needs once this connection is freed.
    pub fn time_wait_info(&self) -> TimeWaitInfo {
        TimeWaitInfo {
            snd_nxt: self.snd_nxt,
            rcv_nxt: self.rcv_nxt,
            window: (self.rcv_adv.distance(self.rcv_nxt) >> self.rcv_wscale).min(65535) as u16,
            ts: self.ts.map(|t| (t.recent, t.offset)),
            expires: self.time_wait_at,
        }
    }
}

/// The little a TIME-WAIT entry keeps (see `iface::tcp`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TimeWaitInfo {
    pub snd_nxt: SeqNumber,
    pub rcv_nxt: SeqNumber,
    pub window: u16,
    /// TS.Recent and our timestamp offset.
    pub ts: Option<(u32, u32)>,
    pub expires: Option<Instant>,
}

/// Linux secs_to_retrans: the SYN-ACK timeouts (initial, doubling up to
/// the maximum) whose sum first reaches `d`.
pub(crate) fn secs_to_retrans(d: Duration, initial: Duration, max: Duration) -> u32 {
    if d.is_zero() {
        return 0;
    }
    let (mut timeout, mut period, mut n) = (initial, initial, 1u32);
    while d > period && n < 255 {
        n += 1;
        timeout = (timeout * 2).min(max);
        period += timeout;
    }
    n
}

/// Linux retrans_to_secs: the inverse, how long `n` timeouts last.
pub(crate) fn retrans_to_secs(n: u32, initial: Duration, max: Duration) -> Duration {
    let (mut timeout, mut period) = (initial, Duration::ZERO);
    for i in 0..n {
        if i > 0 {
            timeout = (timeout * 2).min(max);
        }
        period += timeout;
    }
    period
}

/// RFC 7323 5.3: TSval comparison modulo 2^32.
fn ts_before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

#[cfg(test)]
mod tests;
