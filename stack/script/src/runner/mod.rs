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
use super::host::{Errno, Fd, QueueIoctl, Readiness, ScriptHost, Shutdown, SockOpt, Sysctl};
use super::parser::{Direction, Event, EventKind, Expr, PacketSpec, Script, Skipped, SyscallSpec, TimeSpec};
use super::symbols::{self, eval};
use tapir_stack::Instant;

/// Script time in microseconds (0 = `RunnerConfig::start`).
type Us = i64;

mod args;
mod clock;
mod config;
mod inbound;
mod ops;
mod outbound;
mod outcome;
mod python;
mod shell;
mod state;
mod syscall;
mod verify;

use args::*;
pub use config::RunnerConfig;
use outbound::render;
pub use outcome::{Failure, Outcome};
use state::*;

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
    /// Names `%{ }%` snippets assigned, for the later ones.
    py: python::Env,
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
            py: python::Env::new(),
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
            return self.skipped_kind(ev);
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
                    EventKind::Skipped(_) => self.skipped_kind(ev)?,
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

    /// A shell line or a `%{ }%` snippet: run what the runner can of it
    /// (`shell.rs`, `python.rs`), report the rest as skipped.
    fn skipped_kind(&mut self, ev: &Event) -> Result<(), Failure> {
        match &ev.kind {
            EventKind::Skipped(Skipped::Shell(cmd)) => {
                self.shell(ev, cmd);
                Ok(())
            }
            EventKind::Skipped(Skipped::Code(src)) => self.code(ev, src),
            _ => {
                self.record_skipped(ev);
                Ok(())
            }
        }
    }

    /// A `%{ }%` snippet, against the socket under test's TCP_INFO now
    /// (packetdrill reads TCP_INFO at the snippet's time too). Skipped if
    /// the host reports no TCP_INFO.
    fn code(&mut self, ev: &Event, src: &str) -> Result<(), Failure> {
        let now = self.now_instant();
        let handle = self
            .sut
            .and_then(|si| self.fds.values().find(|e| e.sock == si).map(|e| e.handle));
        let info = match handle.map(|h| self.host.tcp_info(now, h)) {
            Some(Ok(info)) => info,
            Some(Err(Errno::ENOPROTOOPT)) => {
                self.record_skipped(ev);
                return Ok(());
            }
            Some(Err(e)) => return Err(fail(ev.line, format!("getsockopt(TCP_INFO) failed: {e}"))),
            None => Vec::new(),
        };
        match self.py.run(src, &info) {
            Ok(()) => {
                let shown: Vec<String> = info.iter().map(|(k, v)| format!("{k}={v}")).collect();
                self.trace.push(format!(
                    "{} line {}: python snippet held (tcpi: {})",
                    secs(self.now),
                    ev.line,
                    shown.join(" ")
                ));
                Ok(())
            }
            Err(m) => {
                let shown: Vec<String> = info.iter().map(|(k, v)| format!("tcpi_{k}={v}")).collect();
                Err(fail(
                    ev.line,
                    format!("python snippet: {m} (TCP_INFO: {})", shown.join(" ")),
                ))
            }
        }
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
}
