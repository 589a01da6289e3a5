//! One TCP connection: RFC 9293's transmission control block and the
//! segment-arrival rules of its section 3.10.7, with RFC 5961's defences,
//! RFC 7323's options, RFC 6298's timer and RFC 5681's congestion control.
//!
//! The connection never touches a frame. Input is a parsed segment
//! ([`Connection::process`]) or a timer ([`Connection::on_timer`]), and
//! each returns one [`Outcome`]: the transition, a RST to send, a
//! challenge ACK wanted, whether it became readable or writable, the
//! error. Output is the next segment to send
//! ([`Connection::poll_segment`]), whose payload the caller copies out of
//! the send buffer; [`Connection::schedule`] says when the next timer is
//! due and whether there may be output.
//!
//! The control block is split by concern, each in its file:
//!
//! - `send`: the send sequence space and buffer (RFC 9293 3.3.1);
//! - `recv`: the receive sequence space, buffer and assembler;
//! - `ack_policy`: delayed, quick and ping-pong ACKs;
//! - `timers`: the timer table and what each timer does;
//! - `input`: segment arrival, one function per step of RFC 9293
//!   3.10.7.4 (`check_sequence`, `check_rst`, `check_syn`, `check_ack`),
//!   then `acked` (the fifth step's send side) and `text` (the seventh
//!   and eighth: `process_text`, `process_fin`);
//! - `output`: what goes next, in order of precedence (fast retransmit,
//!   what SACK-based recovery's NextSeg picks, data within the usable
//!   window after Nagle/SWS/cork, the FIN, a persist probe, a keepalive,
//!   an ACK);
//! - `rack_tlp`: the connection's side of RACK-TLP (RFC 8985);
//! - `user`: the user calls and socket options.
//!
//! Loss recovery's state (the SACK scoreboard, the recovery episode) is
//! in `socket/tcp/recovery/`; `acked` and `output` drive it.
//!
//! TIME-WAIT is not here: on entering it the connection hands its 4-tuple
//! to the table's compact entry (`time_wait.rs`), which has the rules.

mod ack_policy;
mod acked;
mod half_open;
mod input;
mod output;
mod rack_tlp;
mod recv;
mod send;
mod spurious;
#[cfg(test)]
mod step_tests;
#[cfg(test)]
mod tests;
mod text;
mod timers;
mod user;

use super::cc::CongestionControl;
use super::pacing::{self, Pacer};
use super::recovery::{Frto, Rack, Recovery, Scoreboard, Undo};
use super::rtt::RttEstimator;
use super::seq::SeqNumber;
use super::{PmtuDiscover, TcpConnStats, TcpOption, TcpState};
use crate::config::TcpConfig;
use crate::socket::SocketError;
use crate::time::{Duration, Instant};
use crate::wire::ipv4::IpTx;
use crate::wire::{SackBlocks, TcpFlags, TcpOptions, TcpRepr};
use ack_policy::AckPolicy;
use acked::CwndUsage;
use core::net::SocketAddrV4;
pub(crate) use half_open::HalfOpen;
use recv::RecvSpace;
use send::SendSpace;
use timers::{Timer, TimerTable};

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
/// The smallest receive buffer SO_RCVBUF sets (Linux has a floor too,
/// SOCK_MIN_RCVBUF, counted with its per-buffer overhead): one segment of
/// the default MSS every host must accept (RFC 9293 3.7.1), so that the
/// window can always open to a whole segment.
const MIN_RECV_BUFFER: usize = DEFAULT_MSS;

#[derive(Debug, Clone, Copy)]
struct Timestamps {
    /// TS.Recent (RFC 7323 4.3): the peer's latest in-order TSval.
    recent: u32,
    recent_at: Instant,
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

/// Segments the connection owes the peer, beside its data: one set, so
/// that what `poll_segment` sends and what `wants_to_send` reports cannot
/// disagree about a forgotten flag.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Owed(u8);

impl Owed {
    /// An ACK at the next opportunity.
    const ACK: Owed = Owed(1);
    /// Fast retransmit of the first unacknowledged segment (RFC 5681 3.2,
    /// RFC 6675 5 step 4.3), or NewReno's after a partial ACK (RFC 6582
    /// 3.2 step 5).
    const FAST_RETRANSMIT: Owed = Owed(2);
    /// A zero-window probe, or the SWS override (RFC 9293 3.8.6.1).
    const PROBE: Owed = Owed(4);
    /// A keepalive (RFC 1122 4.2.3.6).
    const KEEPALIVE: Owed = Owed(8);
    /// A tail loss probe (RFC 8985 7.3).
    const TLP: Owed = Owed(16);

    pub(super) fn contains(self, o: Owed) -> bool {
        self.0 & o.0 != 0
    }
    pub(super) fn insert(&mut self, o: Owed) {
        self.0 |= o.0;
    }
    pub(super) fn remove(&mut self, o: Owed) {
        self.0 &= !o.0;
    }
    pub(super) fn set(&mut self, o: Owed, on: bool) {
        if on {
            self.insert(o)
        } else {
            self.remove(o)
        }
    }
    pub(super) fn take(&mut self, o: Owed) -> bool {
        let had = self.contains(o);
        self.remove(o);
        had
    }
    /// Owes a segment of its own.
    pub(super) fn wants_segment(self) -> bool {
        self.0 != 0
    }
}

/// Everything the owner must act on after an input or a timer, in one
/// value: the connection is not asked afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub transition: Transition,
    /// A RST to send now (a bad ACK in SYN-SENT or SYN-RECEIVED, an
    /// unanswered keepalive).
    pub rst: Option<TcpRepr>,
    /// RFC 5961: the connection owes a challenge ACK, and whether its own
    /// limit lets it go; the owner applies the interface's budget and
    /// calls [`Connection::grant_challenge`].
    pub challenge: Option<Challenge>,
    /// `recv` would return data or end of stream.
    pub readable: bool,
    /// `send` would take data.
    pub writable: bool,
    /// The error that ends or troubles the connection (SO_ERROR).
    pub error: Option<SocketError>,
    /// The connection gave up on the peer (counted as a timeout whatever
    /// `error` reports).
    pub timed_out: bool,
    /// The segment failed one of RFC 9293 3.10.7's checks and was
    /// discarded (perhaps after an ACK or a RST), for the stack's counters.
    pub dropped: Option<Discard>,
}

/// Why a connection discarded a segment (each a counter in `Stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Discard {
    /// PAWS (RFC 7323 5): an old timestamp.
    Paws,
    /// Outside the receive window (RFC 9293 3.10.7.4, first check).
    OutOfWindow,
    /// A RST in the window but not at RCV.NXT (RFC 5961 3.2), or in
    /// SYN-SENT one not acknowledging our SYN.
    RstNotExact,
    /// A SYN on a synchronized connection (RFC 5961 4.2).
    Syn,
    /// No ACK bit (RFC 9293 3.10.7.4, fifth check).
    NoAck,
    /// An ACK of data never sent, or too old (RFC 5961 5.2); in SYN-SENT
    /// and SYN-RECEIVED, one not for our SYN.
    BadAck,
}

/// A challenge ACK the connection owes the peer (RFC 5961), and whether
/// its own limit lets it go; the owner applies the interface's budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Challenge {
    Send,
    Suppressed,
}

/// When the owner must next call `on_timer`, and whether the connection
/// may have a segment to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Schedule {
    pub deadline: Option<Instant>,
    pub wants_to_send: bool,
}

/// A change of state the owner must act on.
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

pub(crate) struct Connection {
    pub state: TcpState,
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
    cfg: TcpConfig,
    /// Whether we opened actively (RFC 9293 3.10.7.4: a RST in SYN-RECEIVED
    /// returns a passive open to LISTEN, but closes an active one).
    active: bool,

    /// RFC 9293 3.3.1 send sequence space and the send buffer.
    snd: SendSpace,
    /// RFC 9293 3.3.1 receive sequence space, receive buffer, assembler.
    rcv: RecvSpace,
    /// When to acknowledge (RFC 5681 4.2, RFC 9293 3.8.6.3, Linux modes).
    ack: AckPolicy,
    /// What the handshake settled (RFC 9293 3.7.1, RFC 7323, RFC 2018).
    opt: Negotiated,
    /// Every timer's deadline; the connection's deadline is their minimum.
    timers: TimerTable,

    nodelay: bool,
    /// TCP_CORK: partial segments wait.
    cork: bool,
    /// When data may leave (`TcpConfig::pacing`).
    pacer: Pacer,
    /// IP_TOS and IP_MTU_DISCOVER: what the IPv4 headers of our segments
    /// carry.
    ip_tos: u8,
    pmtu_discover: PmtuDiscover,
    /// SO_SNDBUF / SO_RCVBUF set the buffer: autotuning leaves it alone.
    snd_buf_locked: bool,
    rcv_buf_locked: bool,
    /// Receive autotuning: bytes the application has read, the count at
    /// the start of the current measurement, when that began, and our
    /// estimate of the round trip as a receiver (from the timestamps the
    /// peer echoes, Linux tcp_rcv_rtt_measure_ts), in milliseconds.
    app_read: u64,
    app_read_at_edge: u64,
    rcv_space_at: Option<Instant>,
    rcv_rtt_ms: Option<u32>,
    /// SYN retransmissions before an active open fails (TCP_SYNCNT).
    syn_retries: u32,

    rtt: RttEstimator,
    /// Karn: the one segment being timed, when timestamps are off.
    rtt_probe: Option<(SeqNumber, Instant)>,
    cc: Box<dyn CongestionControl>,
    dup_acks: u32,
    /// In fast recovery (RFC 6675 5, RFC 6582 3.2).
    recovery: Option<Recovery>,
    /// RFC 6582 "recover", RFC 6675 5.1: after a recovery or a timeout,
    /// no new recovery starts until SND.UNA reaches this.
    recover: Option<SeqNumber>,
    /// What the peer SACKed of our data (RFC 2018, RFC 6675 4).
    sb: Scoreboard,
    /// RACK-TLP's state (RFC 8985): the record of each segment in
    /// flight, RACK's, the probe's episode, their counters. Boxed on
    /// first use, so that a half-open or non-SACK connection does not
    /// carry it.
    rack: Option<Box<Rack>>,
    /// The last reduction, to undo if it proves spurious (RFC 3708,
    /// RFC 3522), and F-RTO after a timeout (RFC 5682).
    undo: Undo,
    frto: Frto,

    /// Retransmissions of the same data without progress.
    retries: u32,
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
    last_recv: Instant,
    user_timeout: Option<Duration>,
    /// When the oldest unacknowledged data was first sent (user timeout).
    unacked_since: Option<Instant>,
    /// When data last went out, for the restart after idle (RFC 5681
    /// 4.1; Linux lsndtime).
    last_data_sent: Option<Instant>,
    /// How much of cwnd the current window of data used (RFC 7661).
    usage: CwndUsage,
    /// TCP_LINGER2: this connection's FIN-WAIT-2 bound, if set.
    linger2: Option<Duration>,
    /// TCP_DEFER_ACCEPT, in SYN-ACK timeouts (Linux rskq_defer_accept).
    defer_accept: u32,
    /// The peer completed the handshake without data while we deferred
    /// (Linux inet_rsk(req)->acked).
    defer_acked: bool,

    /// Segments owed to the peer, whatever the window says.
    owed: Owed,
    /// A RST this connection must send (bad ACK in SYN-RECEIVED etc.).
    rst_out: Option<TcpRepr>,
    /// Why the segment being processed was discarded, if it was.
    discard: Option<Discard>,
    /// RFC 5961: a challenge ACK owed to the peer.
    challenge: Option<Challenge>,
    /// When we last answered an unacceptable segment (invalid_ratelimit).
    last_invalid_ack: Option<Instant>,
    pub error: Option<SocketError>,
    /// Retransmissions, keepalives or the user timeout ran out; `error`
    /// may then name an earlier soft error instead of ETIMEDOUT.
    timed_out: bool,
    stats: TcpConnStats,
    /// Out-of-order bytes the stack-wide budget still allows (set by the
    /// table before each segment).
    ooo_room: usize,
}

/// What the handshake settled, and what we offered in it.
#[derive(Debug, Clone)]
struct Negotiated {
    /// The peer's MSS (or the default), clamped by TCP_MAXSEG.
    peer_mss: usize,
    /// The MSS we advertise: MTU minus 40, or TCP_MAXSEG.
    our_mss: usize,
    mtu: usize,
    user_mss: Option<usize>,
    ts: Option<Timestamps>,
    /// Added to our clock (ms) so TSvals don't leak uptime (RFC 7323 5.4).
    ts_offset: u32,
    sack_ok: bool,
    /// The segment we just sent carried window scale, SACK-permitted and
    /// timestamps offers (kept so SYN retransmissions offer the same).
    offered: TcpOptions,
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
    pub(super) fn new(now: Instant, cfg: &TcpConfig, ep: Endpoints, active: bool) -> Self {
        let our_mss = ep.mtu.saturating_sub(HEADERS).max(64);
        let initial = cfg.initial_window as usize * our_mss.min(DEFAULT_MSS.max(our_mss));
        let rcv_wscale = if cfg.window_scaling {
            wscale_for(cfg.recv_buffer_max.max(cfg.recv_buffer))
        } else {
            0
        };
        Connection {
            state: TcpState::Closed,
            local: ep.local,
            remote: ep.remote,
            active,
            snd: SendSpace::new(ep.iss, cfg.send_buffer),
            rcv: RecvSpace::new(rcv_wscale, cfg.recv_buffer, cfg.max_ooo_ranges),
            ack: AckPolicy::new(our_mss),
            opt: Negotiated {
                peer_mss: DEFAULT_MSS,
                our_mss,
                mtu: ep.mtu,
                user_mss: None,
                ts: None,
                ts_offset: ep.ts_offset,
                sack_ok: false,
                offered: TcpOptions::default(),
            },
            timers: TimerTable::default(),
            nodelay: false,
            cork: false,
            pacer: Pacer::default(),
            ip_tos: 0,
            pmtu_discover: PmtuDiscover::default(),
            snd_buf_locked: false,
            rcv_buf_locked: false,
            app_read: 0,
            app_read_at_edge: 0,
            rcv_space_at: None,
            rcv_rtt_ms: None,
            syn_retries: cfg.syn_retries,
            rtt: RttEstimator::new(cfg.rto_initial, cfg.rto_min, cfg.rto_max),
            rtt_probe: None,
            cc: cfg.congestion_control.controller(initial, cfg.hystart),
            dup_acks: 0,
            recovery: None,
            recover: None,
            sb: Scoreboard::default(),
            rack: None,
            undo: Undo::default(),
            frto: Frto::default(),
            retries: 0,
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
            last_recv: now,
            user_timeout: None,
            unacked_since: None,
            last_data_sent: None,
            usage: CwndUsage::default(),
            linger2: None,
            defer_accept: 0,
            defer_acked: false,
            owed: Owed::default(),
            rst_out: None,
            discard: None,
            challenge: None,
            last_invalid_ack: None,
            error: None,
            timed_out: false,
            stats: TcpConnStats::default(),
            ooo_room: usize::MAX,
            cfg: cfg.clone(),
        }
    }

    // ---------- opening ----------

    /// An active open (RFC 9293 3.10.1): SYN-SENT, with the SYN to send.
    pub fn connect(now: Instant, cfg: &TcpConfig, ep: Endpoints) -> Self {
        let mut c = Connection::new(now, cfg, ep, true);
        c.opt.offered = TcpOptions {
            mss: Some(c.opt.our_mss as u16),
            window_scale: cfg.window_scaling.then_some(c.rcv.wscale),
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
        c.opt.offered = TcpOptions {
            mss: Some(c.opt.our_mss as u16),
            window_scale: (cfg.window_scaling && syn.options.window_scale.is_some()).then_some(c.rcv.wscale),
            sack_permitted: cfg.sack && syn.options.sack_permitted,
            timestamps: c.opt.ts.map(|_| (0, 0)),
            sack_blocks: SackBlocks::default(),
        };
        if c.opt.offered.window_scale.is_none() {
            c.rcv.wscale = 0;
        }
        c.rcv.on_syn(SeqNumber(syn.seq));
        // RFC 7323 2.2: the window in a SYN is never scaled.
        c.update_window(usize::from(syn.window), SeqNumber(syn.seq), c.snd.iss);
        c.set_state(TcpState::SynReceived);
        c
    }

    /// Adopt what the peer's SYN says about MSS, scaling, SACK, timestamps.
    pub(super) fn learn_syn_options(&mut self, now: Instant, syn: &TcpRepr) {
        let o = &syn.options;
        if let Some(mss) = o.mss {
            self.opt.peer_mss = usize::from(mss).max(64);
        }
        // RFC 7323 2.2: scaling is on only if both sides sent the option.
        match (o.window_scale, self.cfg.window_scaling) {
            (Some(shift), true) => {
                // RFC 7323 2.3: a shift above 14 is used as 14 (and logged).
                if shift > MAX_WSCALE {
                    tracing::debug!(shift, "peer window scale above 14, using 14");
                }
                self.snd.wscale = shift.min(MAX_WSCALE);
            }
            _ => {
                self.snd.wscale = 0;
                self.rcv.wscale = 0;
            }
        }
        self.opt.sack_ok = self.cfg.sack && o.sack_permitted;
        self.opt.ts = match (o.timestamps, self.cfg.timestamps) {
            (Some((tsval, _)), true) => Some(Timestamps {
                recent: tsval,
                recent_at: now,
            }),
            _ => None,
        };
        // RFC 6928: the initial window is ten segments of the MSS the
        // handshake settles on. Set it as soon as that MSS is known, so
        // that the window reported before the first send (TCP_INFO) is the
        // one used; poll_data sets it again while it is still initial.
        self.cc
            .set_initial_window(self.cfg.initial_window as usize * self.payload_mss());
    }

    pub(super) fn set_state(&mut self, new: TcpState) {
        if self.state != new {
            tracing::debug!(local = %self.local, remote = %self.remote, old = %self.state, %new, "tcp state");
            self.state = new;
        }
        if new == TcpState::Closed {
            // A closed connection has nothing left to time; a stale timer
            // firing later must not overwrite why it closed.
            self.timers.stop_all();
            self.unacked_since = None;
        }
    }

    /// The application has closed its handle. In FIN-WAIT-2 only the peer
    /// can finish the connection, so bound the wait (Linux tcp_fin_timeout).
    pub fn orphaned(&mut self, now: Instant) {
        self.orphan = true;
        if self.state == TcpState::FinWait2 && self.timers[Timer::FinWait2].is_none() {
            self.timers[Timer::FinWait2] = Some(now + self.linger2.unwrap_or(self.cfg.fin_wait2_timeout));
        }
    }

    // ---------- getters ----------

    /// The outcome of an event that changed nothing of the state.
    pub fn unchanged(&mut self) -> Outcome {
        self.outcome(Transition::None)
    }

    /// Gather what the owner must act on after `t`.
    fn outcome(&mut self, transition: Transition) -> Outcome {
        Outcome {
            transition,
            rst: self.rst_out.take(),
            challenge: self.challenge.take(),
            readable: self.can_recv(),
            writable: self.may_send() && self.send_capacity() > 0,
            error: self.error,
            timed_out: self.timed_out,
            dropped: self.discard.take(),
        }
    }

    /// Our TSval now (RFC 7323 4.1).
    fn tsval(&self, now: Instant) -> u32 {
        ts_now(now, self.opt.ts_offset)
    }

    /// Effective send MSS: what the peer accepts, what our link carries, and
    /// TCP_MAXSEG, whichever is least (RFC 9293 3.7.1, RFC 1122 4.2.2.6).
    pub fn mss(&self) -> usize {
        let mut mss = self.opt.peer_mss.min(self.opt.mtu.saturating_sub(HEADERS));
        if let Some(user) = self.opt.user_mss {
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
    pub(super) fn option_overhead(&self, sack_blocks: usize) -> usize {
        let ts = if self.opt.ts.is_some() { 12 } else { 0 };
        let sack = if sack_blocks > 0 { 4 + 8 * sack_blocks } else { 0 };
        ts + sack
    }

    /// The payload of each segment the device cuts a super-segment of
    /// `len` bytes into (TSO): what the MSS leaves beside this header's
    /// options, so each is a full-sized segment on the wire. 0 when the
    /// segment is not a super-segment.
    pub fn gso_size(&self, repr: &TcpRepr, len: usize) -> u16 {
        let options = repr.header_len().saturating_sub(TcpRepr::MIN_HEADER_LEN);
        let per = self.mss().saturating_sub(options).clamp(1, usize::from(u16::MAX));
        if len > per {
            per as u16
        } else {
            0
        }
    }

    /// Unsent data: queued beyond snd_nxt.
    pub(super) fn unsent(&self) -> usize {
        let sent = self.data_sent_offset();
        self.snd.buf.len().saturating_sub(sent)
    }

    /// Offset into `tx` of snd_nxt.
    pub(super) fn data_sent_offset(&self) -> usize {
        self.data_offset(self.snd.nxt)
    }

    /// Offset into `tx` of `seq`: the SYN and our FIN occupy no buffer
    /// byte (a sequence number before the data is offset 0).
    pub(super) fn data_offset(&self, seq: SeqNumber) -> usize {
        let seq = if self.snd.fin_seq.is_some_and(|f| seq > f) {
            seq - 1
        } else {
            seq
        };
        seq.distance(self.data_base())
    }

    pub fn can_recv(&self) -> bool {
        !self.rcv.buf.is_empty() || self.peer_closed()
    }

    /// The peer's FIN has been received in order: reads return EOF once
    /// the buffer is drained.
    pub fn peer_closed(&self) -> bool {
        self.rcv.fin_received()
    }

    pub fn send_capacity(&self) -> usize {
        self.snd.buf.window()
    }

    pub fn may_send(&self) -> bool {
        matches!(self.state, TcpState::Established | TcpState::CloseWait) && !self.snd.fin_queued
    }

    pub fn stats(&self) -> TcpConnStats {
        let mut s = self.stats.clone();
        s.state = Some(self.state);
        s.snd_una = self.snd.una.0;
        s.snd_nxt = self.snd.nxt.0;
        s.snd_wnd = self.snd.wnd;
        s.rcv_nxt = self.rcv.nxt.0;
        s.rcv_wnd = self.rcv.wnd();
        s.mss = self.payload_mss();
        s.srtt = self.rtt.srtt();
        s.rttvar = self.rtt.rttvar();
        s.rto = self.rtt.rto();
        s.cwnd = self.send_window();
        s.ssthresh = self.cc.ssthresh();
        s.bytes_in_flight = self.snd.in_flight();
        s.sacked_bytes = self.sb.sacked_bytes();
        s.lost_bytes = if self.rack_on() {
            self.rack().log.lost_bytes(&self.sb)
        } else {
            self.sb
                .lost_bytes(self.snd.una, self.snd.max, self.rxt_to(), self.payload_mss())
        };
        s.ooo_bytes = self.rcv.ooo.total_bytes();
        s.ooo_ranges = self.rcv.ooo.range_count();
        s.congestion_control = self.cc.name();
        s.recovery = match (self.recovery, self.recover) {
            (Some(_), _) => "recovery",
            // RFC 6675 5.1: retransmitting after a timeout, until what
            // was sent then is acknowledged (Linux TCP_CA_Loss).
            (None, Some(_)) => "loss",
            (None, None) => "open",
        };
        s
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

/// Our TSval (RFC 7323 4.1): a millisecond clock, offset per connection so
/// it does not reveal our uptime (RFC 7323 5.4).
pub(crate) fn ts_now(now: Instant, offset: u32) -> u32 {
    (now.total_millis() as u32).wrapping_add(offset)
}
