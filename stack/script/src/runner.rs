//! Runs a parsed script against a [`ScriptHost`] on a virtual clock.
//!
//! The semantics follow packetdrill (`run.c`, `run_packet.c`,
//! `run_system_call.c`, `socket.h`); where this runner differs it says so.
//!
//! * Time. Script time 0 is `RunnerConfig::start`. Before an event at time
//!   t the runner advances the clock through every host deadline before t,
//!   calling `handle_timeout` and collecting the frames the stack sends,
//!   each stamped with the time it was sent. A relative time (`+0.1`) counts
//!   from the moment the previous event finished (an outbound packet: when
//!   it was sent; a syscall: when it started), except that an inbound
//!   packet after an inbound packet counts from that packet's script time.
//!   Outbound packets must be sent within the tolerance of their time:
//!   `max(tolerance, tolerance_percent * (t - previous event's time))`.
//! * Sequence numbers (packetdrill's `socket.h`), tcpdump style: in a SYN
//!   segment they are absolute, in others relative to the sender's ISN. The
//!   peer's ISN is the script's seq in the first inbound packet of a
//!   passive connection (or of the SYN-ACK in an active one), so inbound seqs
//!   go on the wire as written for SYNs and as `seq + remote ISN` otherwise.
//!   The stack's ISN is learned from its SYN (active open) or SYN-ACK
//!   (passive); outbound seqs and inbound acks and SACK blocks are mapped
//!   through `live ISN - script ISN` (SYN) or `live ISN` (others).
//! * Timestamps: inbound TS val goes out as written, so outbound TS ecr is
//!   compared with the script's literal value. Outbound TS val is compared
//!   only if `ts_val_tick` is set; each outbound script val is recorded with
//!   the live val it matched, and inbound TS ecr values are rewritten to
//!   the recorded live val (or, unlike packetdrill's default, interpolated
//!   from the first recorded pair).
//! * Blocking calls. A syscall with an end time (`+0...0.1 read(...)`) runs
//!   in the background like packetdrill's syscall thread and must return at
//!   its end time. A call without one that would block on a blocking fd
//!   (the host returns `EAGAIN`/`EINPROGRESS` while the script expects
//!   something else) also continues in the background, retried whenever
//!   frames arrive or time moves, and must return before the next syscall
//!   line starts (packetdrill would block its only thread there).
//! * Connections. As in packetdrill one socket is "under test": the last
//!   one created, connected, or (passive side) the connection that the
//!   first inbound packet to a listener opens, on peer port
//!   `remote_port`, `remote_port + 1`, ... for each new one.
//! * Differences from packetdrill, all configurable: an outbound packet
//!   sent when no `>` line can expect it fails the script at once
//!   (`strict_unexpected`); packets of other connections fail rather than
//!   being ignored (`ignore_other_flows`); outbound TS ecr, TCP checksums and
//!   payload bytes are checked. The ack field of a segment without ACK is
//!   compared only when the script writes `ack N`.

use core::fmt;
use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;
use std::collections::{BTreeMap, HashMap, VecDeque};

use super::frame::{
    decode_frame, encode_arp, encode_tcp_frame, options_script, ArpPacket, Frame, Ipv4Meta, TcpFlags,
    TcpOption, TcpSegment,
};
use super::host::{Errno, Fd, QueueIoctl, Readiness, ScriptHost, Shutdown, SockOpt};
use super::parser::{Direction, Event, EventKind, Expr, PacketSpec, Script, Skipped, SyscallSpec, TimeSpec};
use super::symbols::{self, eval};
use tapir_stack::Instant;

/// Script time in microseconds (0 = `RunnerConfig::start`).
type Us = i64;

/// How the runner maps the script onto the stack; the defaults are
/// packetdrill's where it has one.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// The `Instant` of script time 0.
    pub start: Instant,
    /// packetdrill `--tolerance_usecs` (4 ms).
    pub tolerance: Duration,
    /// packetdrill `--tolerance_percent` (12.5): tolerance grows with the
    /// time since the previous event.
    pub tolerance_percent: f64,
    /// The scripted peer.
    pub peer_ip: Ipv4Addr,
    pub peer_mac: [u8; 6],
    /// The peer's port for connections it opens; each new one takes the
    /// next port up.
    pub remote_port: u16,
    /// The port `bind(fd, ..., ...)` binds (packetdrill `--bind_port`).
    pub bind_port: u16,
    /// The peer port `connect(fd, ..., ...)` connects to
    /// (packetdrill `--connect_port`).
    pub connect_port: u16,
    /// Check outbound TS val against the script, with this much time per
    /// tick (packetdrill `--tcp_ts_tick_usecs`; off by default).
    pub ts_val_tick: Option<Duration>,
    /// Check outbound TS ecr against the script (packetdrill does not).
    pub check_ts_ecr: bool,
    /// Check outbound TCP checksums (packetdrill checks only IP's).
    pub check_tcp_checksum: bool,
    /// Check that outbound payload is the zeros the runner writes.
    pub check_payload: bool,
    /// Let one `>` line with N bytes match consecutive segments that add up
    /// to N (TSO/GSO; packetdrill does unless `--strict_segments`).
    pub aggregate_segments: bool,
    /// How long a blocking call without an end time may block, and how long
    /// a `*` outbound packet may take.
    pub max_block: Duration,
    /// After the last event, wait this long and fail on any outbound packet
    /// (packetdrill does not check; off by default).
    pub end_grace: Option<Duration>,
    /// Fail as soon as a packet is sent that no `>` line can expect (sent
    /// before the current line's time by more than the tolerance). When off,
    /// such a packet fails the next `>` line instead, as in packetdrill.
    pub strict_unexpected: bool,
    /// Drop outbound packets of connections other than the one under test
    /// (packetdrill's behaviour) instead of failing on them.
    pub ignore_other_flows: bool,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            start: Instant::from_secs(1),
            tolerance: Duration::from_micros(4000),
            tolerance_percent: 12.5,
            peer_ip: Ipv4Addr::new(10, 77, 0, 1),
            peer_mac: [0x02, 0x00, 0x00, 0x77, 0x00, 0x01],
            remote_port: 48123,
            bind_port: 8080,
            connect_port: 8080,
            ts_val_tick: None,
            check_ts_ecr: true,
            check_tcp_checksum: true,
            check_payload: true,
            aggregate_segments: true,
            max_block: Duration::from_secs(10),
            end_grace: None,
            strict_unexpected: true,
            ignore_other_flows: false,
        }
    }
}

/// Why a script failed: the line and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// The result of running a script.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// No failure. Skipped lines do not make a script fail; see
    /// [`Outcome::assert_passed`].
    pub passed: bool,
    pub failure: Option<Failure>,
    /// Shell commands and `%{ }%` snippets, never run: (line, text).
    pub skipped: Vec<(usize, String)>,
    /// Things the runner ignored or noticed: unsupported script options,
    /// IPv6 flow labels, non-TCP frames, unmatched packets at the end.
    pub warnings: Vec<(usize, String)>,
    /// What happened, in order: every packet in and out (in script space)
    /// and every syscall with its result.
    pub trace: Vec<String>,
}

impl Outcome {
    /// Panics with the report unless the script passed and skipped nothing.
    #[track_caller]
    pub fn assert_passed(&self) {
        if !self.passed || !self.skipped.is_empty() {
            panic!("packetdrill script did not pass:\n{self}");
        }
    }

    /// Panics with the report unless the script passed; skipped lines are
    /// allowed (scripts from Linux's corpus set sysctls in shell lines).
    #[track_caller]
    pub fn assert_passed_allowing_skips(&self) {
        if !self.passed {
            panic!("packetdrill script failed:\n{self}");
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.failure {
            Some(fail) => writeln!(f, "FAILED at {fail}")?,
            None => writeln!(f, "passed")?,
        }
        for (line, text) in &self.skipped {
            writeln!(f, "skipped line {line}: {text}")?;
        }
        for (line, text) in &self.warnings {
            writeln!(f, "warning, line {line}: {text}")?;
        }
        if !self.trace.is_empty() {
            writeln!(f, "trace:")?;
            for t in &self.trace {
                writeln!(f, "  {t}")?;
            }
        }
        Ok(())
    }
}

/// Runs `script` against `host`.
pub fn run_script<H: ScriptHost>(script: &Script, host: H, config: RunnerConfig) -> Outcome {
    let mut r = Runner::new(host, config);
    let result = r.run(script);
    Outcome {
        passed: result.is_ok(),
        failure: result.err(),
        skipped: r.skipped,
        warnings: r.warnings,
        trace: r.trace,
    }
}

/// packetdrill's socket states, for the mapping of the socket under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SockState {
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
struct Sock {
    state: SockState,
    fd: Option<Fd>,
    bound_port: Option<u16>,
    local_port: Option<u16>,
    remote_port: Option<u16>,
    script_local_isn: u32,
    live_local_isn: Option<u32>,
    remote_isn: Option<u32>,
    /// Outbound TS val: script value -> live value.
    ts_map: HashMap<u32, u32>,
    /// The first (script, live) TS val pair seen.
    first_ts: Option<(u32, u32)>,
}

impl Sock {
    fn new(state: SockState) -> Self {
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
    fn local_offset(&self, syn: bool) -> u32 {
        match self.live_local_isn {
            None => 0,
            Some(live) if syn => live.wrapping_sub(self.script_local_isn),
            Some(live) => live,
        }
    }

    /// Offset from script to live for the peer's sequence space.
    fn remote_offset(&self, syn: bool) -> u32 {
        if syn {
            0
        } else {
            self.remote_isn.unwrap_or(0)
        }
    }
}

struct FdEntry<Hd> {
    handle: Hd,
    nonblocking: bool,
    sock: usize,
}

/// A TCP frame the stack sent.
#[derive(Debug, Clone)]
struct Sent {
    at: Us,
    ip: Ipv4Meta,
    ip_header_len: usize,
    ip_ok: bool,
    tcp_ok: bool,
    seg: TcpSegment,
}

/// What a syscall returned, in script terms.
#[derive(Debug, Clone, Copy)]
enum Val<Hd> {
    Int(i64),
    Handle(Hd),
}

#[derive(Debug, Clone)]
struct PollFd<Hd> {
    fd: Fd,
    handle: Option<Hd>,
    events: i64,
    expected_revents: i64,
    revents: i64,
}

/// A socket operation that may have to wait.
#[derive(Debug, Clone)]
enum Op<Hd> {
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
struct Expect {
    result: i64,
    errno: Option<Errno>,
}

struct Pending<Hd> {
    line: usize,
    name: String,
    op: Op<Hd>,
    expect: Expect,
    /// `...` end time and its tolerance.
    end: Option<(Us, Us)>,
    give_up: Us,
}

struct Runner<H: ScriptHost> {
    host: H,
    cfg: RunnerConfig,
    now: Us,
    queue: VecDeque<Sent>,
    fds: BTreeMap<Fd, FdEntry<H::Handle>>,
    socks: Vec<Sock>,
    sut: Option<usize>,
    next_remote_port: u16,
    pending: Option<Pending<H::Handle>>,
    ident: u16,
    last_event_time: Option<Us>,
    last_inbound: bool,
    last_absolute: Option<Us>,
    first_event_done: bool,
    warned_flow_label: bool,
    skipped: Vec<(usize, String)>,
    warnings: Vec<(usize, String)>,
    trace: Vec<String>,
    buf: Vec<u8>,
}

fn secs(us: Us) -> String {
    let sign = if us < 0 { "-" } else { "" };
    let a = us.unsigned_abs();
    format!("{sign}{}.{:06}", a / 1_000_000, a % 1_000_000)
}

fn micros(d: Duration) -> Us {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 4)
}

fn fail(line: usize, message: impl Into<String>) -> Failure {
    Failure {
        line,
        message: message.into(),
    }
}

fn is_inbound(ev: &Event) -> bool {
    matches!(&ev.kind, EventKind::Packet(p) if p.direction == Direction::Inbound)
}

fn is_outbound(ev: &Event) -> bool {
    matches!(&ev.kind, EventKind::Packet(p) if p.direction == Direction::Outbound)
}

/// Renders a segment in script space as packetdrill writes it.
fn render(flags: TcpFlags, seq: u32, len: usize, ack: Option<u32>, win: u16, urg: u16, opts: &str) -> String {
    let mut s = format!(
        "{} {}:{}({})",
        flags.script(),
        seq,
        seq.wrapping_add(len as u32),
        len
    );
    if let Some(a) = ack {
        s.push_str(&format!(" ack {a}"));
    }
    s.push_str(&format!(" win {win}"));
    if urg != 0 {
        s.push_str(&format!(" urg {urg}"));
    }
    if !opts.is_empty() {
        s.push(' ');
        s.push_str(opts);
    }
    s
}

impl<H: ScriptHost> Runner<H> {
    fn new(host: H, cfg: RunnerConfig) -> Self {
        Runner {
            host,
            next_remote_port: cfg.remote_port,
            cfg,
            now: 0,
            queue: VecDeque::new(),
            fds: BTreeMap::new(),
            socks: Vec::new(),
            sut: None,
            pending: None,
            ident: 1,
            last_event_time: None,
            last_inbound: false,
            last_absolute: None,
            first_event_done: false,
            warned_flow_label: false,
            skipped: Vec::new(),
            warnings: Vec::new(),
            trace: Vec::new(),
            buf: vec![0; 65536],
        }
    }

    fn instant(&self, t: Us) -> Instant {
        Instant::from_micros((self.cfg.start.total_micros() as i64 + t).max(0) as u64)
    }

    fn script_time(&self, i: Instant) -> Us {
        i.total_micros() as i64 - self.cfg.start.total_micros() as i64
    }

    fn now_instant(&self) -> Instant {
        self.instant(self.now)
    }

    /// packetdrill's tolerance for something expected at `expected`.
    fn tolerance(&self, expected: Us) -> Us {
        let fixed = micros(self.cfg.tolerance);
        let dynamic = match self.last_event_time {
            Some(last) if expected > last => {
                ((expected - last) as f64 * self.cfg.tolerance_percent / 100.0) as Us
            }
            _ => 0,
        };
        fixed.max(dynamic)
    }

    fn apply_options(&mut self, script: &Script) -> Result<(), Failure> {
        for o in &script.options {
            let num = |o: &super::parser::ScriptOption| -> Result<i64, Failure> {
                o.value
                    .as_deref()
                    .and_then(|v| v.parse::<f64>().ok())
                    .map(|v| v as i64)
                    .ok_or_else(|| fail(o.line, format!("--{} needs a numeric value", o.name)))
            };
            match o.name.as_str() {
                "tolerance_usecs" => self.cfg.tolerance = Duration::from_micros(num(o)?.max(0) as u64),
                "tolerance_percent" => {
                    self.cfg.tolerance_percent =
                        o.value.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0.0)
                }
                "bind_port" => self.cfg.bind_port = num(o)? as u16,
                "connect_port" => self.cfg.connect_port = num(o)? as u16,
                "tcp_ts_tick_usecs" => {
                    let v = num(o)?;
                    self.cfg.ts_val_tick = (v > 0).then(|| Duration::from_micros(v as u64));
                }
                "strict_segments" => self.cfg.aggregate_segments = false,
                _ => self
                    .warnings
                    .push((o.line, format!("script option --{} ignored", o.name))),
            }
        }
        Ok(())
    }

    fn run(&mut self, script: &Script) -> Result<(), Failure> {
        self.apply_options(script)?;
        self.hello();
        self.pump()?;
        for (i, ev) in script.events.iter().enumerate() {
            self.event(script, i, ev)?;
        }
        self.finish_script(script)
    }

    /// The peer announces itself: an ARP request for the stack's address,
    /// whose reply `drain` swallows.
    fn hello(&mut self) {
        let arp = ArpPacket {
            op: 1,
            sender_mac: self.cfg.peer_mac,
            sender_ip: self.cfg.peer_ip,
            target_mac: [0; 6],
            target_ip: self.host.local_ip(),
        };
        let frame = encode_arp([0xff; 6], self.cfg.peer_mac, &arp);
        let now = self.now_instant();
        self.host.handle_frame(now, &frame);
    }

    fn finish_script(&mut self, script: &Script) -> Result<(), Failure> {
        if let Some(give_up) = self.pending.as_ref().map(|p| p.give_up) {
            self.advance(give_up + 1, false)?;
            if let Some(p) = &self.pending {
                return Err(fail(
                    p.line,
                    format!(
                        "blocking {}() had not returned by {} s, after the last event",
                        p.name,
                        secs(self.now)
                    ),
                ));
            }
        }
        let last_line = script.events.last().map_or(0, |e| e.line);
        if let Some(grace) = self.cfg.end_grace {
            let t = self.now + micros(grace);
            self.advance(t, false)?;
            if let Some(f) = self.queue.front() {
                let f = f.clone();
                return Err(fail(
                    last_line,
                    format!(
                        "unexpected outbound packet after the last event: {}",
                        self.describe_sent(&f)
                    ),
                ));
            }
        }
        while let Some(f) = self.queue.pop_front() {
            let d = self.describe_sent(&f);
            self.warnings
                .push((last_line, format!("outbound packet not matched by any line: {d}")));
        }
        Ok(())
    }

    fn event(&mut self, script: &Script, idx: usize, ev: &Event) -> Result<(), Failure> {
        if ev.time == TimeSpec::Untimed {
            self.record_skipped(ev);
            return Ok(());
        }
        let inbound = is_inbound(ev);
        let base = match self.last_event_time {
            Some(last) if self.last_inbound && inbound => last,
            _ => self.now,
        };
        let window = match ev.time {
            TimeSpec::Absolute(t) => Some((micros(t), micros(t))),
            TimeSpec::Relative(d) => Some((base + micros(d), base + micros(d))),
            TimeSpec::AbsoluteRange(a, b) => Some((micros(a), micros(b))),
            TimeSpec::RelativeRange(a, b) => Some((base + micros(a), base + micros(b))),
            TimeSpec::Any | TimeSpec::Untimed => None,
        };
        if let Some((lo, _)) = window {
            if !self.first_event_done && lo != 0 {
                return Err(fail(ev.line, "first event should be at time 0"));
            }
            if matches!(ev.time, TimeSpec::Absolute(_) | TimeSpec::AbsoluteRange(..)) {
                if let Some(last) = self.last_absolute.filter(|&last| lo < last) {
                    return Err(fail(
                        ev.line,
                        format!(
                            "time goes backward in script from {} s to {} s",
                            secs(last),
                            secs(lo)
                        ),
                    ));
                }
                self.last_absolute = Some(lo);
            }
        }
        self.first_event_done = true;
        match &ev.kind {
            EventKind::Packet(p) if p.direction == Direction::Outbound => self.outbound(ev, p, window)?,
            kind => {
                let t = window.expect("only outbound packets may be untimed").0;
                self.wait_until(script, idx, ev, t)?;
                match kind {
                    EventKind::Packet(p) => self.inbound(ev, p)?,
                    EventKind::Syscall(s) => self.syscall(ev, s, base)?,
                    EventKind::Skipped(_) => self.record_skipped(ev),
                    EventKind::Unsupported(reason) => {
                        return Err(fail(
                            ev.line,
                            format!("unsupported by the tapir runner: {reason}: {}", ev.text),
                        ))
                    }
                }
            }
        }
        self.last_event_time = Some(window.map_or(self.now, |w| w.0));
        self.last_inbound = inbound;
        Ok(())
    }

    fn record_skipped(&mut self, ev: &Event) {
        let what = match &ev.kind {
            EventKind::Skipped(Skipped::Shell(_)) => "shell command",
            _ => "code",
        };
        self.trace
            .push(format!("{} skipped {what} (line {})", secs(self.now), ev.line));
        self.skipped.push((ev.line, ev.text.clone()));
    }

    /// Moves time to `t` for an event that happens at `t` (inbound packet,
    /// syscall), failing if time is already past it.
    fn wait_until(&mut self, script: &Script, idx: usize, ev: &Event, t: Us) -> Result<(), Failure> {
        let tol = self.tolerance(t);
        if self.now > t + tol {
            return Err(fail(
                ev.line,
                format!(
                    "timing error: expected this event at {} s but the script was already at {} s; \
                     tolerance {} s",
                    secs(t),
                    secs(self.now),
                    secs(tol)
                ),
            ));
        }
        self.advance(t, false)?;
        if self.cfg.ignore_other_flows {
            let (mine, others): (VecDeque<Sent>, VecDeque<Sent>) = std::mem::take(&mut self.queue)
                .into_iter()
                .partition(|f| self.is_sut_flow(f));
            self.queue = mine;
            for f in others {
                let d = self.describe_sent(&f);
                self.warnings
                    .push((ev.line, format!("dropped {d}: not the connection under test")));
            }
        }
        if !self.cfg.strict_unexpected {
            return Ok(());
        }
        let next_out = script.events[idx + 1..].iter().find(|e| is_outbound(e));
        if next_out.is_some_and(|e| e.time == TimeSpec::Any) {
            return Ok(());
        }
        if let Some(f) = self.queue.front().filter(|f| f.at < t - tol).cloned() {
            return Err(fail(
                ev.line,
                format!(
                    "unexpected outbound packet: {}; it was sent before this line's time {} s and no \
                     earlier '>' line expects it",
                    self.describe_sent(&f),
                    secs(t)
                ),
            ));
        }
        Ok(())
    }

    /// Advances the clock towards `target` (exclusive for host deadlines),
    /// running timers, collecting frames and retrying a pending call.
    /// With `stop_on_frame`, returns as soon as a frame is queued.
    fn advance(&mut self, target: Us, stop_on_frame: bool) -> Result<(), Failure> {
        let mut stuck = 0u32;
        loop {
            self.pump()?;
            if stop_on_frame && !self.queue.is_empty() {
                return Ok(());
            }
            let timer = self
                .host
                .poll_timeout()
                .map(|d| self.script_time(d))
                .filter(|&d| d < target);
            let pend = self.pending_deadline().filter(|&d| d < target && d > self.now);
            let next = match (timer, pend) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(n) => n,
                    None => {
                        self.now = self.now.max(target);
                        self.pump()?;
                        return Ok(());
                    }
                },
            };
            if next <= self.now {
                stuck += 1;
                if stuck > 100_000 {
                    return Err(fail(
                        0,
                        format!(
                            "the stack's poll_timeout() stays at {} s after handle_timeout()",
                            secs(next)
                        ),
                    ));
                }
            } else {
                stuck = 0;
                self.now = next;
            }
            if timer == Some(next) {
                let now = self.now_instant();
                self.host.handle_timeout(now);
            }
        }
    }

    fn pending_deadline(&self) -> Option<Us> {
        let p = self.pending.as_ref()?;
        match &p.op {
            Op::Poll {
                timeout_at: Some(t), ..
            } => Some((*t).min(p.give_up)),
            _ => Some(p.give_up),
        }
    }

    /// Collects what the stack sends now and retries a pending call.
    fn pump(&mut self) -> Result<(), Failure> {
        self.drain()?;
        if let Some(mut p) = self.pending.take() {
            match self.try_op(&mut p.op, true) {
                Some(result) => {
                    self.complete(&p.name, p.line, p.expect, p.end, result, Some(&p.op))?;
                    self.drain()?;
                }
                None if self.now >= p.give_up => {
                    let why = match p.end {
                        Some((end, tol)) => format!(
                            "expected it to return at {} s (tolerance {} s)",
                            secs(end),
                            secs(tol)
                        ),
                        None => format!("gave up after {} s", secs(micros(self.cfg.max_block))),
                    };
                    return Err(fail(
                        p.line,
                        format!(
                            "blocking {}() still blocked at {} s; {why}",
                            p.name,
                            secs(self.now)
                        ),
                    ));
                }
                None => self.pending = Some(p),
            }
        }
        Ok(())
    }

    /// Reads every frame the stack has queued: answers its ARP requests for
    /// the peer, swallows ARP replies, queues TCP for matching.
    fn drain(&mut self) -> Result<(), Failure> {
        for _ in 0..1_000_000 {
            let now = self.now_instant();
            let Some(n) = self.host.poll_transmit(now, &mut self.buf) else {
                return Ok(());
            };
            let frame = decode_frame(&self.buf[..n.min(self.buf.len())]);
            match frame {
                Frame::Arp(a) if a.op == 1 && a.target_ip == self.cfg.peer_ip => {
                    let reply = ArpPacket {
                        op: 2,
                        sender_mac: self.cfg.peer_mac,
                        sender_ip: self.cfg.peer_ip,
                        target_mac: a.sender_mac,
                        target_ip: a.sender_ip,
                    };
                    let f = encode_arp(a.sender_mac, self.cfg.peer_mac, &reply);
                    self.host.handle_frame(now, &f);
                }
                Frame::Arp(_) => {}
                Frame::Tcp {
                    ip,
                    ip_header_len,
                    ip_checksum_ok,
                    tcp_checksum_ok,
                    seg,
                } => {
                    let sent = Sent {
                        at: self.now,
                        ip,
                        ip_header_len,
                        ip_ok: ip_checksum_ok,
                        tcp_ok: tcp_checksum_ok,
                        seg,
                    };
                    self.trace.push(format!("sent {}", self.describe_sent(&sent)));
                    self.queue.push_back(sent);
                }
                Frame::OtherIpv4 { src, dst, protocol } => self.warnings.push((
                    0,
                    format!(
                        "{} ignored an IPv4 protocol {protocol} packet {src} > {dst}",
                        secs(self.now)
                    ),
                )),
                Frame::Other { ethertype } => self.warnings.push((
                    0,
                    format!(
                        "{} ignored a frame with ethertype {ethertype:#06x}",
                        secs(self.now)
                    ),
                )),
                Frame::Malformed(why) => {
                    return Err(fail(
                        0,
                        format!("the stack sent a malformed frame at {}: {why}", secs(self.now)),
                    ))
                }
            }
        }
        Err(fail(0, "the stack keeps sending frames without end"))
    }

    /// Whether a frame could belong to the socket under test.
    fn is_sut_flow(&self, f: &Sent) -> bool {
        let Some(k) = self.sut.map(|i| &self.socks[i]) else {
            return false;
        };
        f.ip.src == self.host.local_ip()
            && f.ip.dst == self.cfg.peer_ip
            && k.local_port.is_none_or(|p| p == f.seg.src_port)
            && k.remote_port.is_none_or(|p| p == f.seg.dst_port)
    }

    /// A frame as script text, mapped through the socket under test when it
    /// belongs to it (without recording timestamps).
    fn describe_sent(&self, f: &Sent) -> String {
        let s = &f.seg;
        let sock = self.sut.map(|i| &self.socks[i]).filter(|k| {
            k.local_port.is_none_or(|p| p == s.src_port) && k.remote_port.is_none_or(|p| p == s.dst_port)
        });
        let (seq, ack, remote_off) = match sock {
            Some(k) if k.live_local_isn.is_some() => {
                let ro = k.remote_offset(s.flags.syn);
                (
                    s.seq.wrapping_sub(k.local_offset(s.flags.syn)),
                    s.ack.wrapping_sub(ro),
                    ro,
                )
            }
            _ => (s.seq, s.ack, 0),
        };
        let opts: Vec<TcpOption> = s
            .options
            .iter()
            .map(|o| match o {
                TcpOption::Sack(b) => TcpOption::Sack(
                    b.iter()
                        .map(|&(l, r)| (l.wrapping_sub(remote_off), r.wrapping_sub(remote_off)))
                        .collect(),
                ),
                o => o.clone(),
            })
            .collect();
        format!(
            "{} > {} {}",
            secs(f.at),
            render(
                s.flags,
                seq,
                s.payload.len(),
                s.flags.ack.then_some(ack),
                s.window,
                s.urgent,
                &options_script(&opts)
            ),
            format_args!("({}:{} > {}:{})", f.ip.src, s.src_port, f.ip.dst, s.dst_port)
        )
    }

    // ---------------------------------------------------------------- packets

    fn next_ephemeral(&mut self) -> u16 {
        let p = self.next_remote_port;
        self.next_remote_port = self.next_remote_port.wrapping_add(1);
        p
    }

    fn new_child(&mut self, local_port: u16, spec: &PacketSpec) -> usize {
        let mut s = Sock::new(SockState::PassivePacketReceived);
        s.local_port = Some(local_port);
        s.remote_port = Some(self.next_ephemeral());
        s.remote_isn = Some(spec.seq);
        self.socks.push(s);
        let i = self.socks.len() - 1;
        self.sut = Some(i);
        i
    }

    /// packetdrill's find_or_create_socket_for_script_packet, inbound side.
    fn sock_for_inbound(&mut self, ev: &Event, spec: &PacketSpec) -> Result<usize, Failure> {
        let Some(i) = self.sut else {
            return Ok(self.new_child(self.cfg.bind_port, spec));
        };
        if self.socks[i].state == SockState::Listening {
            let port = self.socks[i].bound_port.unwrap_or(self.cfg.bind_port);
            return Ok(self.new_child(port, spec));
        }
        let bind_port = self.cfg.bind_port;
        let eph = if self.socks[i].remote_port.is_none() {
            Some(self.next_ephemeral())
        } else {
            None
        };
        let s = &mut self.socks[i];
        if s.local_port.is_none() {
            if matches!(s.state, SockState::ActiveConnecting | SockState::ActiveSynSent) {
                return Err(fail(
                    ev.line,
                    "inbound packet for a connecting socket whose SYN has not been seen yet (its local \
                     port is unknown); expect the SYN with a '>' line first",
                ));
            }
            s.local_port = Some(s.bound_port.unwrap_or(bind_port));
        }
        if let Some(p) = eph {
            s.remote_port = Some(p);
        }
        Ok(i)
    }

    fn inbound(&mut self, ev: &Event, spec: &PacketSpec) -> Result<(), Failure> {
        let si = self.sock_for_inbound(ev, spec)?;
        let s = &mut self.socks[si];
        if s.state == SockState::PassiveSynackSent && spec.flags.ack {
            s.state = SockState::PassiveSynackAcked;
        } else if s.state == SockState::ActiveSynSent && spec.flags.syn && spec.flags.ack {
            s.state = SockState::ActiveSynAcked;
            s.remote_isn = Some(spec.seq);
        }
        let syn = spec.flags.syn;
        let seq = spec.seq.wrapping_add(s.remote_offset(syn));
        let local_off = s.local_offset(syn);
        let script_ack = spec.ack.unwrap_or(0);
        let ack = if spec.flags.ack {
            script_ack.wrapping_add(local_off)
        } else {
            script_ack
        };
        let mut options = Vec::new();
        for o in spec.options.as_deref().unwrap_or(&[]) {
            options.push(match o {
                TcpOption::Sack(blocks) => TcpOption::Sack(
                    blocks
                        .iter()
                        .map(|&(l, r)| (l.wrapping_add(local_off), r.wrapping_add(local_off)))
                        .collect(),
                ),
                TcpOption::Timestamp { val, ecr } if spec.flags.ack => {
                    let live = if let Some(&live) = s.ts_map.get(ecr) {
                        live
                    } else if let Some((first_script, first_live)) = s.first_ts {
                        ecr.wrapping_sub(first_script).wrapping_add(first_live)
                    } else {
                        return Err(fail(
                            ev.line,
                            format!(
                                "unable to infer live TS ecr for script TS ecr {ecr}; no matching or \
                                 preceding outbound TS val (give the stack's TS val in an earlier '>' line)"
                            ),
                        ));
                    };
                    TcpOption::Timestamp { val: *val, ecr: live }
                }
                o => o.clone(),
            });
        }
        let (src_port, dst_port) = match spec.ports {
            Some(p) => p,
            None => (
                s.remote_port.expect("set by sock_for_inbound"),
                s.local_port.expect("set by sock_for_inbound"),
            ),
        };
        let seg = TcpSegment {
            src_port,
            dst_port,
            seq,
            ack,
            flags: spec.flags,
            reserved: 0,
            window: spec.window.unwrap_or(0),
            urgent: spec.urg_ptr,
            options,
            options_len: 0,
            payload: vec![0; usize::from(spec.len)],
        };
        if spec.ip.flow_label.is_some() {
            self.warn_flow_label(ev.line);
        }
        let mut tos = spec.ip.tos.unwrap_or(0);
        if let Some(ecn) = spec.ip.ecn {
            tos = (tos & !3) | ecn.bits();
        }
        let ip = Ipv4Meta {
            src: self.cfg.peer_ip,
            dst: self.host.local_ip(),
            tos,
            ttl: spec.ip.ttl.unwrap_or(64),
            ident: self.ident,
        };
        self.ident = self.ident.wrapping_add(1);
        let frame = encode_tcp_frame(self.host.local_mac(), self.cfg.peer_mac, &ip, &seg);
        self.trace.push(format!(
            "{} line {}: injected {}",
            secs(self.now),
            ev.line,
            ev.text.trim()
        ));
        let now = self.now_instant();
        self.host.handle_frame(now, &frame);
        self.pump()
    }

    fn warn_flow_label(&mut self, line: usize) {
        if !self.warned_flow_label {
            self.warned_flow_label = true;
            self.warnings
                .push((line, "IPv6 flowlabel ignored: the runner speaks IPv4".into()));
        }
    }

    fn outbound(&mut self, ev: &Event, spec: &PacketSpec, window: Option<(Us, Us)>) -> Result<(), Failure> {
        let Some(si) = self.sut else {
            return Err(fail(
                ev.line,
                "no socket under test for this outbound packet (no socket(), connect() or inbound packet before it)",
            ));
        };
        {
            let s = &mut self.socks[si];
            if spec.flags.syn && !spec.flags.ack && s.state == SockState::ActiveConnecting {
                s.state = SockState::ActiveSynSent;
                s.script_local_isn = spec.seq;
            }
            if spec.flags.syn && spec.flags.ack && s.state == SockState::PassivePacketReceived {
                s.script_local_isn = spec.seq;
            }
        }
        let tol = match window {
            Some((lo, _)) => self.tolerance(lo),
            None => 0,
        };
        let give_up = match window {
            Some((_, hi)) => hi + tol,
            None => self.now + micros(self.cfg.max_block),
        };
        let want = usize::from(spec.len);
        let mut parts: Vec<Sent> = Vec::new();
        let mut total = 0;
        while parts.is_empty() || (self.cfg.aggregate_segments && total < want) {
            let Some(f) = self.next_frame(ev, si, spec, give_up)? else {
                break;
            };
            total += f.seg.payload.len();
            parts.push(f);
        }
        if parts.is_empty() {
            let waited = self.now;
            // The script fails here; say what the stack sent next, if anything.
            let horizon = self.now + micros(self.cfg.max_block);
            let next = match self.advance(horizon, true) {
                Ok(()) => self.queue.front().map(|f| {
                    format!(
                        "; the stack's next packet came at {} s: {}",
                        secs(f.at),
                        self.describe_sent(f)
                    )
                }),
                Err(_) => None,
            };
            return Err(fail(
                ev.line,
                format!(
                    "expected outbound packet was not sent (waited until {} s){}\n  script: {}",
                    secs(waited),
                    next.unwrap_or_else(|| "; the stack sent nothing more".into()),
                    ev.text
                ),
            ));
        }
        {
            let s = &mut self.socks[si];
            if s.state == SockState::PassivePacketReceived && spec.flags.syn && spec.flags.ack {
                s.state = SockState::PassiveSynackSent;
                s.live_local_isn = Some(parts[0].seg.seq);
            }
        }
        let (actual, problems) = self.verify(si, spec, &parts, window, tol);
        let at = parts[0].at;
        self.trace
            .push(format!("{} line {}: matched {}", secs(at), ev.line, actual));
        if problems.is_empty() {
            return Ok(());
        }
        let what = if parts.len() > 1 {
            format!(" ({} segments)", parts.len())
        } else {
            String::new()
        };
        Err(fail(
            ev.line,
            format!(
                "outbound packet mismatch: {}\n  script: {}\n  actual{what}: {} > {}",
                problems.join("; "),
                ev.text,
                secs(at),
                actual
            ),
        ))
    }

    /// The next outbound frame of the socket under test, waiting until
    /// `give_up` for one.
    fn next_frame(
        &mut self,
        ev: &Event,
        si: usize,
        spec: &PacketSpec,
        give_up: Us,
    ) -> Result<Option<Sent>, Failure> {
        loop {
            if let Some(f) = self.queue.pop_front() {
                match self.flow_check(si, spec, &f) {
                    Ok(()) => return Ok(Some(f)),
                    Err(why) if self.cfg.ignore_other_flows => {
                        self.warnings
                            .push((ev.line, format!("dropped {}: {why}", self.describe_sent(&f))));
                        continue;
                    }
                    Err(why) => {
                        return Err(fail(
                            ev.line,
                            format!(
                            "outbound packet is not for the connection under test ({why})\n  script: {}\n  \
                                 actual: {}",
                            ev.text,
                            self.describe_sent(&f)
                        ),
                        ))
                    }
                }
            }
            if self.now > give_up {
                return Ok(None);
            }
            self.advance(give_up + 1, true)?;
        }
    }

    /// Checks a frame's addresses and ports against the socket under test,
    /// learning the local port and ISN of an active open from its SYN.
    fn flow_check(&mut self, si: usize, spec: &PacketSpec, f: &Sent) -> Result<(), String> {
        let local_ip = self.host.local_ip();
        if f.ip.src != local_ip || f.ip.dst != self.cfg.peer_ip {
            return Err(format!(
                "addresses {} > {}, expected {} > {}",
                f.ip.src, f.ip.dst, local_ip, self.cfg.peer_ip
            ));
        }
        let s = &mut self.socks[si];
        let seg = &f.seg;
        if let Some((src, dst)) = spec.ports {
            return if (seg.src_port, seg.dst_port) == (src, dst) {
                Ok(())
            } else {
                Err(format!(
                    "ports {} > {}, expected {src} > {dst}",
                    seg.src_port, seg.dst_port
                ))
            };
        }
        if s.local_port.is_none()
            && s.state == SockState::ActiveSynSent
            && seg.flags.syn
            && !seg.flags.ack
            && Some(seg.dst_port) == s.remote_port
        {
            s.local_port = Some(seg.src_port);
            s.live_local_isn = Some(seg.seq);
            return Ok(());
        }
        match (s.local_port, s.remote_port) {
            (Some(l), Some(r)) if (seg.src_port, seg.dst_port) == (l, r) => Ok(()),
            (l, r) => Err(format!(
                "ports {} > {}, expected {} > {}",
                seg.src_port,
                seg.dst_port,
                l.map_or("?".into(), |p| p.to_string()),
                r.map_or("?".into(), |p| p.to_string())
            )),
        }
    }

    /// Compares the stack's segment(s) with the script's, in script space.
    /// Returns the actual packet as script text and what differs.
    fn verify(
        &mut self,
        si: usize,
        spec: &PacketSpec,
        parts: &[Sent],
        window: Option<(Us, Us)>,
        tol: Us,
    ) -> (String, Vec<String>) {
        let mut problems = Vec::new();
        let first = &parts[0];
        let mut seg = first.seg.clone();
        for pair in parts.windows(2) {
            let (a, b) = (&pair[0].seg, &pair[1].seg);
            if b.seq != a.seq.wrapping_add(a.payload.len() as u32) {
                problems.push(format!(
                    "segments do not follow each other: {} bytes at seq {} then seq {}",
                    a.payload.len(),
                    a.seq,
                    b.seq
                ));
            }
            seg.flags.fin |= b.flags.fin;
            seg.flags.psh |= b.flags.psh;
            seg.payload.extend_from_slice(&b.payload);
        }
        let check_ecr = self.cfg.check_ts_ecr;
        let tick = self.cfg.ts_val_tick.map(micros);
        let s = &mut self.socks[si];
        let syn = seg.flags.syn;
        let seq = seg.seq.wrapping_sub(s.local_offset(syn));
        let remote_off = s.remote_offset(syn);
        let ack = if seg.flags.ack {
            seg.ack.wrapping_sub(remote_off)
        } else {
            seg.ack
        };

        // Timestamps: remember script -> live, map live val to script space.
        let script_ts = spec.options.as_deref().and_then(|o| {
            o.iter().find_map(|o| match o {
                TcpOption::Timestamp { val, ecr } => Some((*val, *ecr)),
                _ => None,
            })
        });
        let live_ts = seg.options.iter().find_map(|o| match o {
            TcpOption::Timestamp { val, ecr } => Some((*val, *ecr)),
            _ => None,
        });
        let mut mapped_val = None;
        if let (Some((sv, _)), Some((lv, _))) = (script_ts, live_ts) {
            s.ts_map.insert(sv, lv);
            let (fs, fl) = *s.first_ts.get_or_insert((sv, lv));
            mapped_val = Some(fs.wrapping_add(lv.wrapping_sub(fl)));
        }
        let opts: Vec<TcpOption> = seg
            .options
            .iter()
            .map(|o| match o {
                TcpOption::Sack(b) => TcpOption::Sack(
                    b.iter()
                        .map(|&(l, r)| (l.wrapping_sub(remote_off), r.wrapping_sub(remote_off)))
                        .collect(),
                ),
                TcpOption::Timestamp { val, ecr } => TcpOption::Timestamp {
                    val: mapped_val.unwrap_or(*val),
                    ecr: *ecr,
                },
                o => o.clone(),
            })
            .collect();
        let actual = render(
            seg.flags,
            seq,
            seg.payload.len(),
            seg.flags.ack.then_some(ack),
            seg.window,
            seg.urgent,
            &options_script(&opts),
        );

        if seg.flags != spec.flags {
            problems.push(format!(
                "flags: expected {} vs actual {}",
                spec.flags.script(),
                seg.flags.script()
            ));
        }
        if seg.reserved != 0 {
            problems.push(format!("reserved TCP header bits set: {:#x}", seg.reserved));
        }
        if seq != spec.seq {
            problems.push(format!("seq: expected {} vs actual {}", spec.seq, seq));
        }
        if seg.payload.len() != usize::from(spec.len) {
            problems.push(format!(
                "payload: expected {} bytes vs actual {} bytes",
                spec.len,
                seg.payload.len()
            ));
        }
        if seg.flags.ack && spec.flags.ack {
            let want = spec.ack.unwrap_or(0);
            if ack != want {
                problems.push(format!("ack: expected {want} vs actual {ack}"));
            }
        } else if let Some(want) = spec.ack.filter(|_| !spec.flags.ack && !seg.flags.ack) {
            if seg.ack != want {
                problems.push(format!(
                    "ack field (ACK flag clear): expected {want} vs actual {}",
                    seg.ack
                ));
            }
        }
        if let Some(w) = spec.window {
            if seg.window != w {
                problems.push(format!("window: expected {w} vs actual {}", seg.window));
            }
        }
        if seg.urgent != spec.urg_ptr {
            problems.push(format!(
                "urgent pointer: expected {} vs actual {}",
                spec.urg_ptr, seg.urgent
            ));
        }
        if let Some(want) = &spec.options {
            if want.len() != opts.len() || want.iter().zip(&opts).any(|(a, b)| a.kind() != b.kind()) {
                problems.push(format!(
                    "TCP options: expected {} vs actual {}",
                    options_script(want),
                    options_script(&opts)
                ));
            } else {
                for (w, a) in want.iter().zip(&opts) {
                    match (w, a) {
                        (
                            TcpOption::Timestamp { val: wv, ecr: we },
                            TcpOption::Timestamp { val: av, ecr: ae },
                        ) => {
                            if let Some(tick) = tick {
                                let off = i64::from(av.wrapping_sub(*wv) as i32).abs();
                                if off * tick > tol.max(micros(self.cfg.tolerance)) {
                                    problems.push(format!("TS val: expected {wv} vs actual {av}"));
                                }
                            }
                            if check_ecr && we != ae {
                                problems.push(format!("TS ecr: expected {we} vs actual {ae}"));
                            }
                        }
                        (w, a) if w != a => problems.push(format!("TCP option: expected {w} vs actual {a}")),
                        _ => {}
                    }
                }
                let want_len = super::frame::encode_options(want).len();
                if seg.options_len != want_len {
                    problems.push(format!(
                        "TCP option area: expected {want_len} bytes vs actual {} bytes",
                        seg.options_len
                    ));
                }
            }
        }
        if self.cfg.check_payload && seg.payload.iter().any(|&b| b != 0) {
            problems.push("payload: not the zero bytes the runner wrote".into());
        }
        for p in parts {
            if p.ip_header_len != 20 {
                problems.push(format!("IPv4 header is {} bytes (IP options)", p.ip_header_len));
            }
            if !p.ip_ok {
                problems.push("bad outbound IP checksum".into());
            }
            if self.cfg.check_tcp_checksum && !p.tcp_ok {
                problems.push("bad outbound TCP checksum".into());
            }
        }
        let ecn = first.ip.tos & 3;
        if spec.ip.ect01 && ecn != 1 && ecn != 2 {
            problems.push(format!("ip_ecn: expected ECT(0) or ECT(1) vs actual {ecn:#x}"));
        }
        if let Some(e) = spec.ip.ecn {
            if ecn != e.bits() {
                problems.push(format!("ip_ecn: expected {:#x} vs actual {ecn:#x}", e.bits()));
            }
        }
        if let Some(t) = spec.ip.tos {
            if first.ip.tos != t {
                problems.push(format!("tos: expected {t:#x} vs actual {:#x}", first.ip.tos));
            }
        }
        if let Some(t) = spec.ip.ttl {
            if first.ip.ttl != t {
                problems.push(format!("ttl: expected {t} vs actual {}", first.ip.ttl));
            }
        }
        if spec.ip.flow_label.is_some() {
            self.warn_flow_label(0);
        }
        if let Some((lo, hi)) = window {
            if first.at < lo - tol || first.at > hi + tol {
                let when = if lo == hi {
                    format!("at {} s", secs(lo))
                } else {
                    format!("in time range {}~{} s", secs(lo), secs(hi))
                };
                problems.push(format!(
                    "timing error: expected outbound packet {when} but it was sent at {} s; tolerance {} s",
                    secs(first.at),
                    secs(tol)
                ));
            }
        }
        (actual, problems)
    }

    // --------------------------------------------------------------- syscalls

    fn fd(&self, line: usize, e: &Expr) -> Result<(Fd, &FdEntry<H::Handle>), Failure> {
        let fd = eval(e).map_err(|m| fail(line, m))? as Fd;
        match self.fds.get(&fd) {
            Some(entry) => Ok((fd, entry)),
            None => Err(fail(line, format!("unable to find fd with script fd {fd}"))),
        }
    }

    fn register_fd(
        &mut self,
        line: usize,
        fd: i64,
        handle: H::Handle,
        sock: usize,
        nb: bool,
    ) -> Result<(), Failure> {
        let fd = Fd::try_from(fd).map_err(|_| fail(line, format!("bad fd {fd}")))?;
        if self.fds.contains_key(&fd) {
            return Err(fail(line, format!("duplicate fd {fd} in script")));
        }
        self.fds.insert(
            fd,
            FdEntry {
                handle,
                nonblocking: nb,
                sock,
            },
        );
        self.socks[sock].fd = Some(fd);
        Ok(())
    }

    fn expect(&self, ev: &Event, spec: &SyscallSpec) -> Result<Expect, Failure> {
        let result = eval(&spec.result).map_err(|m| fail(ev.line, format!("result: {m}")))?;
        let errno = match &spec.errno {
            None => None,
            Some(name) => Some(
                Errno::from_name(name)
                    .ok_or_else(|| fail(ev.line, format!("errno {name} is not known to the runner")))?,
            ),
        };
        Ok(Expect { result, errno })
    }

    fn syscall(&mut self, ev: &Event, spec: &SyscallSpec, base: Us) -> Result<(), Failure> {
        if let Some(p) = &self.pending {
            return Err(fail(
                p.line,
                format!(
                    "blocking {}() had not returned when the system call on line {} started at {} s",
                    p.name,
                    ev.line,
                    secs(self.now)
                ),
            ));
        }
        let line = ev.line;
        let expect = self.expect(ev, spec)?;
        let start = self.now;
        self.trace
            .push(format!("{} line {}: {}", secs(start), line, ev.text.trim()));
        let end = spec.end.map(|e| {
            let e = match ev.time {
                TimeSpec::Relative(_) => base + micros(e),
                _ => micros(e),
            };
            let dynamic = ((e - start).max(0) as f64 * self.cfg.tolerance_percent / 100.0) as Us;
            (e, micros(self.cfg.tolerance).max(dynamic))
        });
        let args = &spec.args;
        let nargs = |n: usize| -> Result<(), Failure> {
            if args.len() == n {
                Ok(())
            } else {
                Err(fail(
                    line,
                    format!("{}() expected {n} args but got {}", spec.name, args.len()),
                ))
            }
        };
        let unsupported = |what: String| fail(line, format!("unsupported by the tapir runner: {what}"));
        let now = self.now_instant();
        let name = spec.name.as_str();
        let op = match name {
            "socket" => {
                nargs(3)?;
                let domain = match &args[0] {
                    Expr::Ellipsis => symbols::AF_INET,
                    e => eval(e).map_err(|m| fail(line, m))?,
                };
                let ty = eval(&args[1]).map_err(|m| fail(line, m))?;
                let proto = eval(&args[2]).map_err(|m| fail(line, m))?;
                if domain != symbols::AF_INET {
                    return Err(unsupported(format!("socket domain {domain} (only AF_INET)")));
                }
                if ty & 0xf != symbols::SOCK_STREAM
                    || ty & !(0xf | symbols::SOCK_NONBLOCK | symbols::SOCK_CLOEXEC) != 0
                {
                    return Err(unsupported(format!("socket type {ty:#x} (only SOCK_STREAM)")));
                }
                if proto != 0 && proto != symbols::IPPROTO_TCP {
                    return Err(unsupported(format!("socket protocol {proto} (only IPPROTO_TCP)")));
                }
                let r = self.host.socket(now);
                if let Ok(h) = r {
                    if expect.result >= 0 {
                        self.socks.push(Sock::new(SockState::New));
                        let si = self.socks.len() - 1;
                        self.register_fd(line, expect.result, h, si, ty & symbols::SOCK_NONBLOCK != 0)?;
                        self.sut = Some(si);
                    }
                }
                return self.complete(name, line, expect, end, r.map(Val::Handle), None);
            }
            "bind" => {
                nargs(3)?;
                let (_, e) = self.fd(line, &args[0])?;
                let (h, si) = (e.handle, e.sock);
                let port = match &args[1] {
                    Expr::Ellipsis => self.cfg.bind_port,
                    e => sockaddr_port(e).map_err(|m| unsupported(format!("bind address: {m}")))?,
                };
                let r = self.host.bind(now, h, port);
                if r.is_ok() {
                    self.socks[si].bound_port = Some(port);
                }
                return self.complete_int(name, line, expect, end, r.map(|()| 0));
            }
            "listen" => {
                nargs(2)?;
                let (_, e) = self.fd(line, &args[0])?;
                let (h, si) = (e.handle, e.sock);
                let backlog = eval(&args[1]).map_err(|m| fail(line, m))?;
                let r = self.host.listen(now, h, backlog.clamp(0, u32::MAX as i64) as u32);
                if r.is_ok() {
                    self.socks[si].state = SockState::Listening;
                }
                return self.complete_int(name, line, expect, end, r.map(|()| 0));
            }
            "accept" => {
                nargs(3)?;
                let (_, e) = self.fd(line, &args[0])?;
                let wants_eagain = expect.result == -1 && expect.errno == Some(Errno::EAGAIN);
                let blocking = !(e.nonblocking || wants_eagain);
                (Op::Accept { listener: e.handle }, blocking)
            }
            "connect" => {
                nargs(3)?;
                let (_, e) = self.fd(line, &args[0])?;
                let (h, si, nb) = (e.handle, e.sock, e.nonblocking);
                let port = match &args[1] {
                    Expr::Ellipsis => self.cfg.connect_port,
                    e => sockaddr_port(e).map_err(|m| unsupported(format!("connect address: {m}")))?,
                };
                let s = &mut self.socks[si];
                if s.state == SockState::New {
                    s.state = SockState::ActiveConnecting;
                    s.remote_port = Some(port);
                    s.local_port = None;
                    self.sut = Some(si);
                }
                let would_block = matches!(expect.errno, Some(Errno::EINPROGRESS | Errno::EALREADY));
                let blocking = !(nb || expect.result == -1 && would_block);
                (
                    Op::Connect {
                        h,
                        remote: SocketAddrV4::new(self.cfg.peer_ip, port),
                        retry: false,
                    },
                    blocking,
                )
            }
            "read" | "recv" | "recvfrom" | "readv" | "write" | "send" | "sendto" | "writev" => {
                let reading = matches!(name, "read" | "recv" | "recvfrom" | "readv");
                let (n, flags_at) = match name {
                    "read" | "write" | "readv" | "writev" => (3, None),
                    "recv" | "send" => (4, Some(3)),
                    _ => (6, Some(3)),
                };
                nargs(n)?;
                let (_, e) = self.fd(line, &args[0])?;
                let (h, nb) = (e.handle, e.nonblocking);
                let len = if name == "readv" || name == "writev" {
                    let cnt = eval(&args[2]).map_err(|m| fail(line, m))?;
                    let lens = iovec_lens(&args[1]).map_err(|m| fail(line, m))?;
                    if cnt != lens.len() as i64 {
                        return Err(fail(
                            line,
                            format!(
                                "iov_count {cnt} does not match {}-element iovec array",
                                lens.len()
                            ),
                        ));
                    }
                    lens.iter().sum::<i64>()
                } else {
                    match &args[1] {
                        Expr::Ellipsis => {}
                        other => {
                            return Err(unsupported(format!(
                                "buffer {} (only ...)",
                                symbols::describe(other)
                            )))
                        }
                    }
                    eval(&args[2]).map_err(|m| fail(line, m))?
                };
                let len = usize::try_from(len).map_err(|_| fail(line, format!("bad length {len}")))?;
                let mut dontwait = false;
                if let Some(i) = flags_at {
                    let flags = eval(&args[i]).map_err(|m| fail(line, m))?;
                    let known = symbols::MSG_DONTWAIT | symbols::MSG_NOSIGNAL;
                    if flags & !known != 0 {
                        return Err(unsupported(format!("{name}() flags {flags:#x}")));
                    }
                    dontwait = flags & symbols::MSG_DONTWAIT != 0;
                }
                let with_address = args.len() == 6
                    && (!matches!(args[4], Expr::Ellipsis) || !matches!(args[5], Expr::Ellipsis));
                if (name == "sendto" || name == "recvfrom") && with_address {
                    return Err(unsupported(format!("{name}() with an address")));
                }
                let wants_eagain = expect.result == -1 && expect.errno == Some(Errno::EAGAIN);
                let blocking = !(nb || dontwait || wants_eagain);
                let op = if reading {
                    Op::Read { h, len }
                } else {
                    Op::Write { h, len, done: 0 }
                };
                (op, blocking)
            }
            "close" => {
                nargs(1)?;
                let (fd, e) = self.fd(line, &args[0])?;
                let (h, si) = (e.handle, e.sock);
                let r = self.host.close(now, h);
                if r.is_ok() {
                    self.fds.remove(&fd);
                    if self.socks[si].fd == Some(fd) {
                        self.socks[si].fd = None;
                    }
                }
                return self.complete_int(name, line, expect, end, r.map(|()| 0));
            }
            "shutdown" => {
                nargs(2)?;
                let (_, e) = self.fd(line, &args[0])?;
                let h = e.handle;
                let how = match eval(&args[1]).map_err(|m| fail(line, m))? {
                    0 => Shutdown::Read,
                    1 => Shutdown::Write,
                    2 => Shutdown::Both,
                    other => return Err(fail(line, format!("bad shutdown how {other}"))),
                };
                let r = self.host.shutdown(now, h, how);
                return self.complete_int(name, line, expect, end, r.map(|()| 0));
            }
            "setsockopt" | "getsockopt" => {
                nargs(5)?;
                let (_, e) = self.fd(line, &args[0])?;
                let h = e.handle;
                let level = eval(&args[1]).map_err(|m| fail(line, m))?;
                let optname = eval(&args[2]).map_err(|m| fail(line, m))?;
                return self.sockopt(ev, spec, expect, end, h, level, optname);
            }
            "fcntl" => {
                if args.len() != 2 && args.len() != 3 {
                    return Err(fail(
                        line,
                        format!("fcntl expected 2-3 args but got {}", args.len()),
                    ));
                }
                let (fd, _) = self.fd(line, &args[0])?;
                let cmd = eval(&args[1]).map_err(|m| fail(line, m))?;
                let arg = match args.get(2) {
                    Some(a) => Some(eval(a).map_err(|m| fail(line, m))?),
                    None => None,
                };
                let entry = self.fds.get_mut(&fd).expect("looked up above");
                let r = match (cmd, arg) {
                    (symbols::F_GETFL, None) => {
                        Ok(symbols::O_RDWR | if entry.nonblocking { symbols::O_NONBLOCK } else { 0 })
                    }
                    (symbols::F_SETFL, Some(flags)) => {
                        entry.nonblocking = flags & symbols::O_NONBLOCK != 0;
                        Ok(0)
                    }
                    (symbols::F_GETFD, None) => Ok(0),
                    (symbols::F_SETFD, Some(_)) => Ok(0),
                    _ => return Err(unsupported(format!("fcntl command {cmd}"))),
                };
                return self.complete_int(name, line, expect, end, r);
            }
            "ioctl" => {
                nargs(3)?;
                let (_, e) = self.fd(line, &args[0])?;
                let h = e.handle;
                let request = eval(&args[1]).map_err(|m| fail(line, m))?;
                let q = match request {
                    symbols::SIOCINQ => QueueIoctl::InQ,
                    symbols::SIOCOUTQ => QueueIoctl::OutQ,
                    symbols::SIOCOUTQNSD => QueueIoctl::OutQNotSent,
                    _ => return Err(unsupported(format!("ioctl request {request:#x}"))),
                };
                let now = self.now_instant();
                let r = self.host.queue_size(now, h, q);
                self.complete_int(name, line, expect, end, r.map(|_| 0))?;
                return match r {
                    Ok(v) => check_value(line, &format!("ioctl {q:?}"), &args[2], v),
                    Err(_) => Ok(()),
                };
            }
            "poll" => {
                nargs(3)?;
                let nfds = eval(&args[1]).map_err(|m| fail(line, m))?;
                let timeout = eval(&args[2]).map_err(|m| fail(line, m))?;
                let Expr::List(items) = &args[0] else {
                    return Err(fail(
                        line,
                        "poll() takes a [list] of {fd=..., events=...} structs",
                    ));
                };
                if nfds != items.len() as i64 {
                    return Err(fail(
                        line,
                        format!("nfds {nfds} does not match {}-element pollfd array", items.len()),
                    ));
                }
                let mut fds = Vec::new();
                for item in items {
                    let (fd, events, expected_revents) = pollfd(item).map_err(|m| fail(line, m))?;
                    let handle = self.fds.get(&fd).map(|e| e.handle);
                    fds.push(PollFd {
                        fd,
                        handle,
                        events,
                        expected_revents,
                        revents: 0,
                    });
                }
                let timeout_at = (timeout >= 0).then(|| start + timeout * 1000);
                (Op::Poll { fds, timeout_at }, true)
            }
            other => return Err(unsupported(format!("system call {other}()"))),
        };
        let (mut op, blocking) = op;
        match self.try_op(&mut op, blocking) {
            Some(r) => self.complete(name, line, expect, end, r, Some(&op)),
            None => {
                let give_up = match (end, &op) {
                    (Some((e, tol)), _) => e + tol,
                    (
                        None,
                        Op::Poll {
                            timeout_at: Some(t), ..
                        },
                    ) => *t,
                    (None, _) => start + micros(self.cfg.max_block),
                };
                self.pending = Some(Pending {
                    line,
                    name: name.to_string(),
                    op,
                    expect,
                    end,
                    give_up,
                });
                Ok(())
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn sockopt(
        &mut self,
        ev: &Event,
        spec: &SyscallSpec,
        expect: Expect,
        end: Option<(Us, Us)>,
        h: H::Handle,
        level: i64,
        optname: i64,
    ) -> Result<(), Failure> {
        let line = ev.line;
        let now = self.now_instant();
        let name = spec.name.as_str();
        let value = &spec.args[3];
        if name == "getsockopt" && level == symbols::SOL_SOCKET && optname == symbols::SO_ERROR {
            let err = self.host.take_error(now, h).map_or(0, Errno::code);
            self.complete_int(name, line, expect, end, Ok(0))?;
            return check_value(line, "getsockopt SO_ERROR", value, err);
        }
        let Some(opt) = sockopt_for(level, optname) else {
            return Err(fail(
                line,
                format!("unsupported by the tapir runner: socket option level {level} name {optname}"),
            ));
        };
        if name == "setsockopt" {
            let v = match value {
                Expr::Braces(_) => linger_value(value).map_err(|m| fail(line, m))?,
                Expr::List(items) if items.len() == 1 => eval(&items[0]).map_err(|m| fail(line, m))?,
                Expr::Int(v) => *v,
                other => {
                    return Err(fail(
                        line,
                        format!("unsupported setsockopt value {}", symbols::describe(other)),
                    ))
                }
            };
            let r = self.host.setsockopt(now, h, opt, v);
            return self.complete_int(name, line, expect, end, r.map(|()| 0));
        }
        let r = self.host.getsockopt(now, h, opt);
        self.complete_int(name, line, expect, end, r.map(|_| 0))?;
        match r {
            Ok(v) if matches!(value, Expr::Braces(_)) => {
                let want = linger_value(value).map_err(|m| fail(line, m))?;
                if want != v {
                    return Err(fail(
                        line,
                        format!("Bad getsockopt optval: expected {want} actual {v}"),
                    ));
                }
                Ok(())
            }
            Ok(v) => check_value(line, &format!("getsockopt {opt:?}"), value, v),
            Err(_) => Ok(()),
        }
    }

    /// One attempt at `op`; `None` when it would block and `blocking`.
    fn try_op(&mut self, op: &mut Op<H::Handle>, blocking: bool) -> Option<Result<Val<H::Handle>, Errno>> {
        let now = self.now_instant();
        match op {
            Op::Accept { listener } => match self.host.accept(now, *listener) {
                Err(Errno::EAGAIN) if blocking => None,
                r => Some(r.map(Val::Handle)),
            },
            Op::Connect { h, remote, retry } => {
                let r = self.host.connect(now, *h, *remote);
                let first = !*retry;
                *retry = true;
                match r {
                    Err(Errno::EINPROGRESS | Errno::EALREADY) if blocking => None,
                    Err(Errno::EISCONN) if !first => Some(Ok(Val::Int(0))),
                    r => Some(r.map(|()| Val::Int(0))),
                }
            }
            Op::Read { h, len } => {
                let mut buf = vec![0; *len];
                match self.host.read(now, *h, &mut buf) {
                    Err(Errno::EAGAIN) if blocking => None,
                    r => Some(r.map(|n| Val::Int(n as i64))),
                }
            }
            Op::Write { h, len, done } => {
                let zeros = vec![0; *len - *done];
                loop {
                    if *done == *len {
                        return Some(Ok(Val::Int(*done as i64)));
                    }
                    match self.host.write(now, *h, &zeros[..*len - *done]) {
                        Ok(n) if n > 0 => {
                            *done += n.min(*len - *done);
                            if !blocking {
                                return Some(Ok(Val::Int(*done as i64)));
                            }
                        }
                        Ok(_) | Err(Errno::EAGAIN) if blocking => return None,
                        Ok(_) | Err(Errno::EAGAIN) if *done > 0 => return Some(Ok(Val::Int(*done as i64))),
                        Ok(n) => return Some(Ok(Val::Int(n as i64))),
                        Err(_) if *done > 0 => return Some(Ok(Val::Int(*done as i64))),
                        Err(e) => return Some(Err(e)),
                    }
                }
            }
            Op::Poll { fds, timeout_at } => {
                let mut ready = 0;
                for p in fds.iter_mut() {
                    p.revents = match p.handle {
                        None => symbols::POLLNVAL,
                        Some(h) => revents(self.host.readiness(now, h), p.events),
                    };
                    if p.revents != 0 {
                        ready += 1;
                    }
                }
                let timed_out = timeout_at.is_some_and(|t| self.now >= t);
                if ready > 0 || timed_out {
                    Some(Ok(Val::Int(ready)))
                } else {
                    None
                }
            }
        }
    }

    fn complete_int(
        &mut self,
        name: &str,
        line: usize,
        expect: Expect,
        end: Option<(Us, Us)>,
        r: Result<i64, Errno>,
    ) -> Result<(), Failure> {
        self.complete(name, line, expect, end, r.map(Val::Int), None)
    }

    /// Checks a call's result (and return time, for `...` calls) against
    /// the script.
    fn complete(
        &mut self,
        name: &str,
        line: usize,
        expect: Expect,
        end: Option<(Us, Us)>,
        r: Result<Val<H::Handle>, Errno>,
        op: Option<&Op<H::Handle>>,
    ) -> Result<(), Failure> {
        let shown = match &r {
            Ok(Val::Int(v)) => v.to_string(),
            Ok(Val::Handle(h)) => format!("{h:?} (new socket)"),
            Err(e) => format!("-1 {e}"),
        };
        self.trace.push(format!(
            "{} line {}: {name}() returned {shown}",
            secs(self.now),
            line
        ));
        if let Some((e, tol)) = end {
            if self.now < e - tol || self.now > e + tol {
                return Err(fail(
                    line,
                    format!(
                        "timing error: expected system call return at {} s but happened at {} s; tolerance {} s",
                        secs(e),
                        secs(self.now),
                        secs(tol)
                    ),
                ));
            }
        }
        match r {
            Ok(Val::Handle(h)) if name == "accept" => {
                if expect.result < 0 {
                    return Err(fail(
                        line,
                        format!(
                            "expected result {} {} but accept() returned a connection",
                            expect.result,
                            expect.errno.map_or(String::new(), |e| e.to_string())
                        ),
                    ));
                }
                let child = self.socks.iter().position(|s| {
                    s.fd.is_none()
                        && matches!(
                            s.state,
                            SockState::PassiveSynackSent | SockState::PassiveSynackAcked
                        )
                });
                let si = match child {
                    Some(i) => i,
                    None => {
                        self.socks.push(Sock::new(SockState::PassiveSynackAcked));
                        self.socks.len() - 1
                    }
                };
                self.register_fd(line, expect.result, h, si, false)
            }
            Ok(Val::Handle(_)) => {
                if expect.result < 0 {
                    return Err(fail(
                        line,
                        format!("expected result {} but {name}() succeeded", expect.result),
                    ));
                }
                Ok(())
            }
            Ok(Val::Int(v)) => {
                if v != expect.result {
                    return Err(fail(
                        line,
                        format!("expected result {} but got {v}", expect.result),
                    ));
                }
                if let Some(Op::Poll { fds, .. }) = op {
                    for p in fds {
                        if p.revents != p.expected_revents {
                            return Err(fail(
                                line,
                                format!(
                                    "poll() revents for fd {}: expected {} vs actual {}",
                                    p.fd,
                                    poll_bits(p.expected_revents),
                                    poll_bits(p.revents)
                                ),
                            ));
                        }
                    }
                }
                Ok(())
            }
            Err(e) => {
                if expect.result != -1 {
                    return Err(fail(
                        line,
                        format!("expected result {} but got -1 with errno {e}", expect.result),
                    ));
                }
                match expect.errno {
                    Some(want) if want != e => Err(fail(line, format!("expected errno {want} but got {e}"))),
                    _ => Ok(()),
                }
            }
        }
    }
}

/// revents as Linux computes them from the socket's state.
fn revents(r: Readiness, events: i64) -> i64 {
    let mut m = 0;
    if r.readable {
        m |= symbols::POLLIN | symbols::POLLRDNORM;
    }
    if r.writable {
        m |= symbols::POLLOUT | symbols::POLLWRNORM;
    }
    if r.read_hangup {
        m |= symbols::POLLIN | symbols::POLLRDNORM | symbols::POLLRDHUP;
    }
    if r.error {
        m |= symbols::POLLERR;
    }
    if r.hangup {
        m |= symbols::POLLHUP;
    }
    m & (events | symbols::POLLERR | symbols::POLLHUP)
}

fn poll_bits(v: i64) -> String {
    let names = [
        (symbols::POLLIN, "POLLIN"),
        (0x2, "POLLPRI"),
        (symbols::POLLOUT, "POLLOUT"),
        (symbols::POLLERR, "POLLERR"),
        (symbols::POLLHUP, "POLLHUP"),
        (symbols::POLLNVAL, "POLLNVAL"),
        (symbols::POLLRDNORM, "POLLRDNORM"),
        (symbols::POLLWRNORM, "POLLWRNORM"),
        (symbols::POLLRDHUP, "POLLRDHUP"),
    ];
    let parts: Vec<&str> = names
        .iter()
        .filter(|(b, _)| v & b != 0)
        .map(|&(_, n)| n)
        .collect();
    if parts.is_empty() {
        "0".into()
    } else {
        parts.join("|")
    }
}

/// `{sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr("...")}`:
/// the port. The address is ignored: the runner knows one peer.
fn sockaddr_port(e: &Expr) -> Result<u16, String> {
    let Expr::Braces(fields) = e else {
        return Err(format!(
            "expected ... or a sockaddr, found {}",
            symbols::describe(e)
        ));
    };
    let mut port = None;
    for f in fields {
        if let Expr::Assign(k, v) = f {
            match (&**k, &**v) {
                (Expr::Word(k), v) if k == "sin_port" => port = Some(eval(v)?),
                (Expr::Word(k), v) if k == "sa_family" || k == "sin_family" => {
                    let fam = eval(v)?;
                    if fam != symbols::AF_INET {
                        return Err(format!("address family {fam} (only AF_INET)"));
                    }
                }
                _ => {}
            }
        }
    }
    let port = port.ok_or("sockaddr without sin_port")?;
    u16::try_from(port).map_err(|_| format!("port {port} out of range"))
}

/// `[{..., 10}, {..., 20}]`: the iovec lengths.
fn iovec_lens(e: &Expr) -> Result<Vec<i64>, String> {
    let Expr::List(items) = e else {
        return Err("expected an iovec [list]".into());
    };
    items
        .iter()
        .map(|i| match i {
            Expr::Braces(f) if f.len() == 2 && f[0] == Expr::Ellipsis => eval(&f[1]),
            _ => Err("expected iovec entries like {..., 10}".into()),
        })
        .collect()
}

/// `{fd=3, events=POLLIN, revents=POLLOUT}`: (fd, events, revents).
fn pollfd(e: &Expr) -> Result<(Fd, i64, i64), String> {
    let Expr::Braces(fields) = e else {
        return Err("expected {fd=..., events=...}".into());
    };
    let (mut fd, mut events, mut rev) = (None, None, 0);
    for f in fields {
        let Expr::Assign(k, v) = f else {
            return Err("expected name=value in a pollfd".into());
        };
        match &**k {
            Expr::Word(k) if k == "fd" => fd = Some(eval(v)? as Fd),
            Expr::Word(k) if k == "events" => events = Some(eval(v)?),
            Expr::Word(k) if k == "revents" => rev = eval(v)?,
            _ => return Err("unknown pollfd field".into()),
        }
    }
    Ok((
        fd.ok_or("pollfd without fd")?,
        events.ok_or("pollfd without events")?,
        rev,
    ))
}

/// `{onoff=1, linger=0}` as a [`SockOpt::Linger`] value.
fn linger_value(e: &Expr) -> Result<i64, String> {
    let Expr::Braces(fields) = e else {
        return Err("expected {onoff=..., linger=...}".into());
    };
    let (mut onoff, mut secs) = (0, 0);
    for f in fields {
        match f {
            Expr::Assign(k, v) if **k == Expr::Word("onoff".into()) => onoff = eval(v)?,
            Expr::Assign(k, v) if **k == Expr::Word("linger".into()) => secs = eval(v)?,
            _ => return Err("expected {onoff=..., linger=...}".into()),
        }
    }
    Ok(if onoff == 0 { -1 } else { secs })
}

/// Compares `[N]` (or `[...]`) with a value a call returned.
fn check_value(line: usize, what: &str, want: &Expr, actual: i64) -> Result<(), Failure> {
    let want = match want {
        Expr::List(items) if items.len() == 1 => &items[0],
        other => other,
    };
    if *want == Expr::Ellipsis {
        return Ok(());
    }
    let w = eval(want).map_err(|m| fail(line, m))?;
    if w != actual {
        return Err(fail(
            line,
            format!("Bad {what} value: expected {w} actual {actual}"),
        ));
    }
    Ok(())
}

fn sockopt_for(level: i64, name: i64) -> Option<SockOpt> {
    Some(match (level, name) {
        (1, 2) => SockOpt::ReuseAddr,
        (1, 15) => SockOpt::ReusePort,
        (1, 9) => SockOpt::KeepAlive,
        (1, 7) => SockOpt::SndBuf,
        (1, 8) => SockOpt::RcvBuf,
        (1, 13) => SockOpt::Linger,
        (6, 1) => SockOpt::NoDelay,
        (6, 2) => SockOpt::MaxSeg,
        (6, 3) => SockOpt::Cork,
        (6, 4) => SockOpt::KeepIdle,
        (6, 5) => SockOpt::KeepIntvl,
        (6, 6) => SockOpt::KeepCnt,
        (6, 7) => SockOpt::SynCount,
        (6, 8) => SockOpt::Linger2,
        (6, 9) => SockOpt::DeferAccept,
        (6, 10) => SockOpt::WindowClamp,
        (6, 12) => SockOpt::QuickAck,
        (6, 18) => SockOpt::UserTimeout,
        (6, 25) => SockOpt::NotSentLowat,
        _ => return None,
    })
}
