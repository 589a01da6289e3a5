//! What a script parses into: options and timed events (packets,
//! system calls, skipped code).

use core::fmt;
use core::time::Duration;

use crate::frame::{TcpFlags, TcpOption};

/// A parse error at a line and column (both 1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.col, self.message)
    }
}

impl std::error::Error for ParseError {}

#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    /// `--name=value` lines at the top (packetdrill command-line options).
    pub options: Vec<ScriptOption>,
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptOption {
    pub line: usize,
    pub name: String,
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The line the event starts on (its time).
    pub line: usize,
    pub time: TimeSpec,
    pub kind: EventKind,
    /// The event's source text.
    pub text: String,
}

/// When an event happens, in script time (0 is the script's start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSpec {
    /// `0.100`
    Absolute(Duration),
    /// `+0.100`: after the previous event.
    Relative(Duration),
    /// `0.1~0.2` (outbound packets only)
    AbsoluteRange(Duration, Duration),
    /// `+0.1~+0.2` (outbound packets only)
    RelativeRange(Duration, Duration),
    /// `*` (outbound packets only)
    Any,
    /// A shell command before the first or after the last event.
    Untimed,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    Packet(PacketSpec),
    Syscall(SyscallSpec),
    /// A backtick shell command or `%{ }%` snippet; never run.
    Skipped(Skipped),
    /// Valid packetdrill this runner cannot execute; the reason says what.
    Unsupported(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skipped {
    Shell(String),
    Code(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `<`: the peer sends it to the stack.
    Inbound,
    /// `>`: the stack is expected to send it.
    Outbound,
}

/// The ECN codepoint in the IP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ecn {
    /// `noecn` (00)
    NotEct,
    /// `ect1` (01)
    Ect1,
    /// `ect0` (10)
    Ect0,
    /// `ce` (11)
    Ce,
}

impl Ecn {
    pub fn bits(self) -> u8 {
        match self {
            Ecn::NotEct => 0,
            Ecn::Ect1 => 1,
            Ecn::Ect0 => 2,
            Ecn::Ce => 3,
        }
    }
}

/// `[ect0]`, `(tos 0x10)`, `[ttl 64]`, `[flowlabel 0x1]` after `<`/`>`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IpInfo {
    pub ecn: Option<Ecn>,
    /// `[ect01]`: outbound ECN must be ECT(0) or ECT(1).
    pub ect01: bool,
    pub tos: Option<u8>,
    pub ttl: Option<u8>,
    /// IPv6 only; the runner reports and ignores it.
    pub flow_label: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketSpec {
    pub direction: Direction,
    pub ip: IpInfo,
    /// `8080 > 48123` written before the flags: explicit ports.
    pub ports: Option<(u16, u16)>,
    pub flags: TcpFlags,
    /// The flags were written with an AccECN ACE digit.
    pub ace: bool,
    /// `start:end(len)`: start and payload length.
    pub seq: u32,
    pub len: u16,
    /// `ack N`
    pub ack: Option<u32>,
    /// `win N`; required inbound, unchecked outbound when absent.
    pub window: Option<u16>,
    pub urg_ptr: u16,
    /// `None` for `<...>`: any options (outbound only).
    pub options: Option<Vec<TcpOption>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SyscallSpec {
    pub name: String,
    pub args: Vec<Expr>,
    pub result: Expr,
    /// `-1 EAGAIN (...)`: the errno name.
    pub errno: Option<String>,
    /// The parenthesized text after the result, if any.
    pub note: Option<String>,
    /// `...0.1`: the call blocks and returns at this (script) time; relative
    /// to the same base as a relative start time.
    pub end: Option<Duration>,
}

/// A system call argument or result, parsed generically.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `...`
    Ellipsis,
    Int(i64),
    /// A symbol: `SOCK_STREAM`, `O_NONBLOCK`, `AF_INET`.
    Word(String),
    Str(String),
    /// `[a, b]`
    List(Vec<Expr>),
    /// `{a, b}`: structs (`{sa_family=AF_INET, ...}`, `{fd=3, events=POLLIN}`,
    /// `{..., 10}`).
    Braces(Vec<Expr>),
    /// `a|b`
    Or(Box<Expr>, Box<Expr>),
    /// `name=value` (also `msg_name(...)=...`)
    Assign(Box<Expr>, Box<Expr>),
    /// `htons(8080)`, `inet_addr("192.0.2.1")`
    Call(String, Vec<Expr>),
}

/// System calls the runner executes; others parse as unsupported.
pub const SUPPORTED_SYSCALLS: &[&str] = &[
    "socket",
    "bind",
    "listen",
    "accept",
    "connect",
    "read",
    "readv",
    "recv",
    "recvfrom",
    "write",
    "writev",
    "send",
    "sendto",
    "close",
    "shutdown",
    "setsockopt",
    "getsockopt",
    "fcntl",
    "ioctl",
    "poll",
];
