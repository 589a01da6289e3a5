//! Parses scripts in packetdrill's syntax (its `parser.y`) into a
//! [`Script`]: options, then timed events, each a packet, a system call,
//! or a shell command or Python snippet (kept, to be reported as skipped).
//!
//! Constructs this runner cannot execute (UDP/ICMP packets, encapsulation
//! prefixes, fuzzing blocks, system calls it does not know) still parse, as
//! [`EventKind::Unsupported`] events that fail when the runner reaches them.

use core::fmt;
use core::time::Duration;

use super::frame::{TcpFlags, TcpOption};
use super::lexer::{tokenize, Tok, Token};

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

/// Parses a whole script.
pub fn parse(text: &str) -> Result<Script, ParseError> {
    let toks = tokenize(text)?;
    let mut p = Parser { toks, pos: 0, text };
    p.script()
}

struct Parser<'a> {
    toks: Vec<Token>,
    pos: usize,
    text: &'a str,
}

fn parse_time(tok: &Token) -> Result<Duration, ParseError> {
    let bad = |m: &str| ParseError {
        line: tok.line,
        col: tok.col,
        message: m.into(),
    };
    match &tok.tok {
        Tok::Int(v) if *v < 0 => Err(bad("negative time")),
        Tok::Int(v) => Ok(Duration::from_secs(*v as u64)),
        Tok::Float(s) if s.starts_with('-') => Err(bad("negative time")),
        Tok::Float(s) => {
            let (int, frac) = s.split_once('.').expect("a float has a point");
            let secs: u64 = if int.is_empty() {
                0
            } else {
                int.parse().map_err(|_| bad("time out of range"))?
            };
            // Exactly, to the microsecond (packetdrill truncates the same way).
            let mut micros = 0u64;
            for i in 0..6 {
                micros = micros * 10 + frac.as_bytes().get(i).map_or(0, |b| u64::from(b - b'0'));
            }
            Ok(Duration::from_secs(secs) + Duration::from_micros(micros))
        }
        other => Err(bad(&format!("expected a time, found '{}'", other.text()))),
    }
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos].tok
    }

    fn peek_at(&self, n: usize) -> &Tok {
        &self.toks[(self.pos + n).min(self.toks.len() - 1)].tok
    }

    fn tok(&self) -> &Token {
        &self.toks[self.pos]
    }

    fn bump(&mut self) -> Token {
        let t = self.toks[self.pos].clone();
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn err_here(&self, message: impl Into<String>) -> ParseError {
        let t = self.tok();
        ParseError {
            line: t.line,
            col: t.col,
            message: message.into(),
        }
    }

    fn err_at(&self, t: &Token, message: impl Into<String>) -> ParseError {
        ParseError {
            line: t.line,
            col: t.col,
            message: message.into(),
        }
    }

    fn is_char(&self, c: char) -> bool {
        *self.peek() == Tok::Char(c)
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Tok::Word(s) if s == w)
    }

    fn expect_char(&mut self, c: char) -> Result<Token, ParseError> {
        if self.is_char(c) {
            Ok(self.bump())
        } else {
            Err(self.err_here(format!("expected '{c}', found '{}'", self.peek().text())))
        }
    }

    fn expect_word(&mut self, w: &str) -> Result<(), ParseError> {
        if self.is_word(w) {
            self.bump();
            Ok(())
        } else {
            Err(self.err_here(format!("expected '{w}', found '{}'", self.peek().text())))
        }
    }

    fn int(&mut self, what: &str) -> Result<(i64, Token), ParseError> {
        let t = self.bump();
        match t.tok {
            Tok::Int(v) | Tok::Hex(v) => Ok((v, t)),
            ref other => Err(self.err_at(
                &t,
                format!("expected {what} (an integer), found '{}'", other.text()),
            )),
        }
    }

    fn ranged<T: TryFrom<i64>>(&mut self, what: &str) -> Result<T, ParseError> {
        let (v, t) = self.int(what)?;
        T::try_from(v).map_err(|_| self.err_at(&t, format!("{what} out of range: {v}")))
    }

    fn script(&mut self) -> Result<Script, ParseError> {
        let mut options = Vec::new();
        while let Tok::OptionName(name) = self.peek().clone() {
            let line = self.bump().line;
            let value = if self.is_char('=') {
                self.bump();
                let v = self.bump();
                let mut value = match &v.tok {
                    Tok::Str(s) => s.clone(),
                    Tok::Eof => return Err(self.err_at(&v, format!("missing value for --{name}"))),
                    other => other.text(),
                };
                // --define=NAME=value
                if self.is_char('=') && matches!(v.tok, Tok::Word(_)) {
                    self.bump();
                    value = format!("{value}={}", self.bump().tok.text());
                }
                Some(value)
            } else {
                None
            };
            options.push(ScriptOption { line, name, value });
        }
        let mut events = Vec::new();
        while *self.peek() != Tok::Eof {
            events.push(self.event()?);
        }
        Ok(Script { options, events })
    }

    fn text_from(&self, start: usize) -> String {
        let end = self.toks[self.pos.saturating_sub(1)].end.max(start);
        self.text[start..end].to_string()
    }

    fn event(&mut self) -> Result<Event, ParseError> {
        let first = self.tok().clone();
        // Untimed commands: an init command before the events, a cleanup
        // command after them.
        if let Tok::BackQuoted(cmd) | Tok::Code(cmd) = &first.tok {
            let kind = match first.tok {
                Tok::BackQuoted(_) => Skipped::Shell(cmd.clone()),
                _ => Skipped::Code(cmd.clone()),
            };
            self.bump();
            return Ok(Event {
                line: first.line,
                time: TimeSpec::Untimed,
                kind: EventKind::Skipped(kind),
                text: self.text_from(first.start),
            });
        }
        let time = self.time()?;
        let kind = match self.peek().clone() {
            Tok::Char('<') | Tok::Char('>') => self.packet(&first)?,
            Tok::BackQuoted(c) => {
                self.bump();
                EventKind::Skipped(Skipped::Shell(c))
            }
            Tok::Code(c) => {
                self.bump();
                EventKind::Skipped(Skipped::Code(c))
            }
            Tok::Word(_) | Tok::Ellipsis => self.syscall()?,
            other => {
                return Err(self.err_here(format!(
                    "expected a packet ('<' or '>'), a system call, a `command` or %{{ code }}% after \
                     the time, found '{}'",
                    other.text()
                )))
            }
        };
        let outbound = matches!(&kind, EventKind::Packet(p) if p.direction == Direction::Outbound);
        match time {
            TimeSpec::Any if !outbound => {
                return Err(self.err_at(&first, "event time <star> can only be used with outbound packets"))
            }
            TimeSpec::AbsoluteRange(..) | TimeSpec::RelativeRange(..) if !outbound => {
                return Err(self.err_at(&first, "event time range can only be used with outbound packets"))
            }
            TimeSpec::AbsoluteRange(a, b) | TimeSpec::RelativeRange(a, b) if b < a => {
                return Err(self.err_at(&first, "time range is backwards"))
            }
            _ => {}
        }
        Ok(Event {
            line: first.line,
            time,
            kind,
            text: self.text_from(first.start),
        })
    }

    fn time(&mut self) -> Result<TimeSpec, ParseError> {
        if self.is_char('*') {
            self.bump();
            return Ok(TimeSpec::Any);
        }
        if self.is_char('+') {
            self.bump();
            let start = parse_time(&self.bump())?;
            if self.is_char('~') {
                self.bump();
                self.expect_char('+')?;
                let end = parse_time(&self.bump())?;
                return Ok(TimeSpec::RelativeRange(start, end));
            }
            return Ok(TimeSpec::Relative(start));
        }
        match self.peek() {
            Tok::Int(_) | Tok::Float(_) => {}
            other => {
                return Err(self.err_here(format!(
                    "expected an event time (like 0, +0.1 or *), found '{}'",
                    other.text()
                )))
            }
        }
        let start = parse_time(&self.bump())?;
        if self.is_char('~') {
            self.bump();
            let end = parse_time(&self.bump())?;
            return Ok(TimeSpec::AbsoluteRange(start, end));
        }
        Ok(TimeSpec::Absolute(start))
    }

    /// Skips the rest of an event this runner does not support: up to the
    /// first token on a later line that can start an event.
    fn skip_event(&mut self, line: usize) {
        loop {
            let t = self.tok();
            let starts_event = matches!(
                t.tok,
                Tok::Char('+')
                    | Tok::Char('*')
                    | Tok::Int(_)
                    | Tok::Float(_)
                    | Tok::BackQuoted(_)
                    | Tok::Code(_)
            );
            if t.tok == Tok::Eof || (t.line > line && starts_event) {
                return;
            }
            self.bump();
        }
    }

    fn packet(&mut self, first: &Token) -> Result<EventKind, ParseError> {
        let dir_tok = self.bump();
        let direction = if dir_tok.tok == Tok::Char('<') {
            Direction::Inbound
        } else {
            Direction::Outbound
        };
        if let Tok::Word(w) = self.peek() {
            let what = match w.as_str() {
                "ipv4" | "ipv6" => Some("encapsulated (ipv4/ipv6 ... > ... :) packets"),
                "gre" | "GREv0" => Some("GRE packets"),
                "mpls" => Some("MPLS packets"),
                _ => None,
            };
            if let Some(what) = what {
                self.skip_event(first.line);
                return Ok(EventKind::Unsupported(what.to_string()));
            }
        }
        let ip = self.ip_info()?;
        let mut ports = None;
        if matches!(self.peek(), Tok::Int(_)) && *self.peek_at(1) == Tok::Char('>') {
            let src = self.ranged::<u16>("source port")?;
            self.bump();
            let dst = self.ranged::<u16>("destination port")?;
            ports = Some((src, dst));
        }
        if self.is_word("udp") || self.is_word("icmp") {
            let what = if self.is_word("udp") {
                "UDP packets"
            } else {
                "ICMP packets"
            };
            self.skip_event(first.line);
            return Ok(EventKind::Unsupported(what.into()));
        }
        let flags_tok = self.tok().clone();
        let flags_text = self.flags_text()?;
        let (flags, ace) = parse_flags(&flags_text).map_err(|m| self.err_at(&flags_tok, m))?;

        // start:end(len)
        let seq_tok = self.tok().clone();
        let start = self.ranged::<u32>("TCP start sequence number")?;
        self.expect_char(':')?;
        let end = self.ranged::<u32>("TCP end sequence number")?;
        self.expect_char('(')?;
        let len = self.ranged::<u16>("TCP payload size")?;
        self.expect_char(')')?;
        if u64::from(end) != u64::from(start) + u64::from(len) {
            return Err(self.err_at(&seq_tok, "inconsistent TCP sequence numbers and payload size"));
        }
        let mut ack = None;
        if self.is_word("ack") {
            self.bump();
            ack = Some(self.ranged::<u32>("TCP ack sequence number")?);
        }
        let mut window = None;
        if self.is_word("win") {
            self.bump();
            window = Some(self.ranged::<u16>("TCP window value")?);
        }
        let mut urg_ptr = 0;
        if self.is_word("urg") {
            self.bump();
            urg_ptr = self.ranged::<u16>("urg_ptr value")?;
        }
        let mut options = Some(Vec::new());
        if self.is_char('<') {
            let open = self.bump();
            if *self.peek() == Tok::Ellipsis {
                self.bump();
                self.expect_char('>')?;
                if direction == Direction::Inbound {
                    return Err(self.err_at(
                        &open,
                        "<...> for TCP options can only be used with outbound packets",
                    ));
                }
                options = None;
            } else {
                let list = match self.tcp_options()? {
                    Ok(list) => list,
                    Err(what) => {
                        self.skip_event(first.line);
                        return Ok(EventKind::Unsupported(what));
                    }
                };
                let len: usize = list.iter().map(TcpOption::wire_len).sum();
                if !len.is_multiple_of(4) {
                    return Err(self.err_at(
                        &open,
                        format!(
                            "TCP options are not padded correctly to ensure TCP header is a multiple \
                             of 4 bytes: {} excess bytes",
                            len % 4
                        ),
                    ));
                }
                if len > 40 {
                    return Err(self.err_at(&open, "TCP option list too long"));
                }
                options = Some(list);
            }
        }
        if self.is_char('{') {
            self.skip_event(first.line);
            return Ok(EventKind::Unsupported("fuzzing blocks ({mut ...})".into()));
        }
        if direction == Direction::Inbound && window.is_none() {
            return Err(self.err_at(&dir_tok, "window must be specified for inbound packets"));
        }
        if direction == Direction::Inbound && ip.ect01 {
            return Err(self.err_at(&dir_tok, "[ect01] can only be used with outbound packets"));
        }
        Ok(EventKind::Packet(PacketSpec {
            direction,
            ip,
            ports,
            flags,
            ace,
            seq: start,
            len,
            ack,
            window,
            urg_ptr,
            options,
        }))
    }

    fn ip_info(&mut self) -> Result<IpInfo, ParseError> {
        let close = match self.peek() {
            Tok::Char('[') => ']',
            Tok::Char('(') => ')',
            _ => return Ok(IpInfo::default()),
        };
        self.bump();
        let mut info = IpInfo::default();
        loop {
            let t = self.bump();
            match &t.tok {
                Tok::Word(w) => match w.as_str() {
                    "noecn" => info.ecn = Some(Ecn::NotEct),
                    "ect0" => info.ecn = Some(Ecn::Ect0),
                    "ect1" => info.ecn = Some(Ecn::Ect1),
                    "ce" => info.ecn = Some(Ecn::Ce),
                    "ect01" => info.ect01 = true,
                    "tos" => info.tos = Some(self.ranged::<u8>("tos")?),
                    "ttl" => info.ttl = Some(self.ranged::<u8>("ttl")?),
                    "flowlabel" => info.flow_label = Some(self.ranged::<u32>("flowlabel")?),
                    _ => return Err(self.err_at(&t, format!("unknown IP info '{w}'"))),
                },
                other => return Err(self.err_at(&t, format!("expected IP info, found '{}'", other.text()))),
            }
            if self.is_char(',') {
                self.bump();
                continue;
            }
            self.expect_char(close)?;
            return Ok(info);
        }
    }

    /// The flags as one string: `S.`, `P.`, `.`, `FP.`, `-` (none), or with
    /// an AccECN ACE digit (`S.5` lexes as `S` and the float `.5`).
    fn flags_text(&mut self) -> Result<String, ParseError> {
        let t = self.bump();
        match &t.tok {
            Tok::Word(w) => {
                let mut s = w.clone();
                match self.peek().clone() {
                    Tok::Char('.') => {
                        self.bump();
                        s.push('.');
                    }
                    Tok::Float(f) if f.starts_with('.') && !matches!(self.peek_at(1), Tok::Char(':')) => {
                        self.bump();
                        s.push_str(&f);
                    }
                    _ => {}
                }
                Ok(s)
            }
            Tok::Char('.') => Ok(".".into()),
            Tok::Char('-') => Ok(String::new()),
            Tok::Float(f) if f.starts_with('.') => Ok(f.clone()),
            other => Err(self.err_at(&t, format!("expected TCP flags, found '{}'", other.text()))),
        }
    }

    /// The option list up to `>`; `Ok(Err(what))` for an option the runner
    /// does not model.
    fn tcp_options(&mut self) -> Result<Result<Vec<TcpOption>, String>, ParseError> {
        let mut out = Vec::new();
        loop {
            let t = self.bump();
            let Tok::Word(w) = &t.tok else {
                return Err(self.err_at(&t, format!("expected a TCP option, found '{}'", t.tok.text())));
            };
            let opt = match w.as_str() {
                "nop" => TcpOption::Nop,
                "eol" => TcpOption::Eol,
                "mss" => TcpOption::Mss(self.ranged("mss value")?),
                "wscale" => TcpOption::WindowScale(self.ranged("window scale shift count")?),
                "sackOK" => TcpOption::SackPermitted,
                "sack" => {
                    let mut blocks = Vec::new();
                    while matches!(self.peek(), Tok::Int(_)) {
                        let l = self.ranged::<u32>("TCP SACK left sequence number")?;
                        self.expect_char(':')?;
                        let r = self.ranged::<u32>("TCP SACK right sequence number")?;
                        blocks.push((l, r));
                    }
                    if blocks.is_empty() {
                        return Err(self.err_here("expected SACK blocks (left:right) after 'sack'"));
                    }
                    TcpOption::Sack(blocks)
                }
                "TS" => {
                    self.expect_word("val")?;
                    let val = self.ranged::<u32>("ts val")?;
                    self.expect_word("ecr")?;
                    let ecr = self.ranged::<u32>("ecr val")?;
                    TcpOption::Timestamp { val, ecr }
                }
                "FO" | "FOEXP" | "md5" => {
                    let blob = match self.peek() {
                        Tok::Word(_) | Tok::Int(_) => {
                            let b = self.bump();
                            self.text[b.start..b.end].to_string()
                        }
                        _ => String::new(),
                    };
                    let bytes = parse_hex_blob(&blob).map_err(|m| self.err_at(&t, m))?;
                    match w.as_str() {
                        "FO" => TcpOption::FastOpen(bytes),
                        "FOEXP" => TcpOption::FastOpenExp(bytes),
                        _ => TcpOption::Md5(bytes),
                    }
                }
                // Newer packetdrill options this runner does not model.
                "ECN" | "mptcp" | "exp" => return Ok(Err(format!("TCP option '{w}'"))),
                _ => return Err(self.err_at(&t, format!("unknown TCP option '{w}'"))),
            };
            out.push(opt);
            if self.is_char(',') {
                self.bump();
                continue;
            }
            self.expect_char('>')?;
            return Ok(Ok(out));
        }
    }

    fn syscall(&mut self) -> Result<EventKind, ParseError> {
        let mut end = None;
        if *self.peek() == Tok::Ellipsis {
            self.bump();
            end = Some(parse_time(&self.bump())?);
        }
        let name_tok = self.bump();
        let Tok::Word(name) = name_tok.tok.clone() else {
            return Err(self.err_at(&name_tok, "expected a system call name"));
        };
        self.expect_char('(')?;
        let mut args = Vec::new();
        if !self.is_char(')') {
            args = self.expr_list(')')?;
        }
        self.expect_char(')')?;
        self.expect_char('=')?;
        let result = self.expr()?;
        let mut errno = None;
        if let Tok::Word(w) = self.peek() {
            errno = Some(w.clone());
            self.bump();
        }
        let mut note = None;
        if self.is_char('(') {
            note = Some(self.note()?);
        }
        if !SUPPORTED_SYSCALLS.contains(&name.as_str()) {
            return Ok(EventKind::Unsupported(format!("system call {name}()")));
        }
        Ok(EventKind::Syscall(SyscallSpec {
            name,
            args,
            result,
            errno,
            note,
            end,
        }))
    }

    /// `(Operation now in progress)`: words up to the matching ')'.
    fn note(&mut self) -> Result<String, ParseError> {
        let open = self.expect_char('(')?;
        let mut depth = 1;
        let mut words = Vec::new();
        loop {
            let t = self.bump();
            match t.tok {
                Tok::Eof => return Err(self.err_at(&open, "unterminated note: missing ')'")),
                Tok::Char('(') => depth += 1,
                Tok::Char(')') => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(words.join(" "));
                    }
                }
                _ => {}
            }
            words.push(self.text[t.start..t.end].to_string());
        }
    }

    fn expr_list(&mut self, close: char) -> Result<Vec<Expr>, ParseError> {
        let mut out = vec![self.expr()?];
        while self.is_char(',') {
            self.bump();
            out.push(self.expr()?);
        }
        if !self.is_char(close) {
            return Err(self.err_here(format!(
                "expected ',' or '{close}', found '{}'",
                self.peek().text()
            )));
        }
        Ok(out)
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        let mut e = self.primary()?;
        while self.is_char('|') {
            self.bump();
            let rhs = self.primary()?;
            e = Expr::Or(Box::new(e), Box::new(rhs));
        }
        Ok(e)
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let t = self.bump();
        let e = match t.tok {
            Tok::Ellipsis => Expr::Ellipsis,
            Tok::Int(v) | Tok::Hex(v) => Expr::Int(v),
            Tok::Str(s) => {
                let mut s = s;
                while let Tok::Str(more) = self.peek().clone() {
                    self.bump();
                    s.push_str(&more);
                }
                if *self.peek() == Tok::Ellipsis {
                    self.bump();
                }
                Expr::Str(s)
            }
            Tok::Word(w) => {
                if self.is_char('(') {
                    self.bump();
                    let args = if self.is_char(')') {
                        Vec::new()
                    } else {
                        self.expr_list(')')?
                    };
                    self.expect_char(')')?;
                    Expr::Call(w, args)
                } else {
                    Expr::Word(w)
                }
            }
            Tok::Char('[') => {
                let items = if self.is_char(']') {
                    Vec::new()
                } else {
                    self.expr_list(']')?
                };
                self.expect_char(']')?;
                Expr::List(items)
            }
            Tok::Char('{') => {
                let items = if self.is_char('}') {
                    Vec::new()
                } else {
                    self.expr_list('}')?
                };
                self.expect_char('}')?;
                Expr::Braces(items)
            }
            ref other => {
                return Err(self.err_at(&t, format!("expected an expression, found '{}'", other.text())))
            }
        };
        if self.is_char('=') && matches!(e, Expr::Word(_) | Expr::Call(..)) {
            self.bump();
            let rhs = self.expr()?;
            return Ok(Expr::Assign(Box::new(e), Box::new(rhs)));
        }
        Ok(e)
    }
}

fn parse_flags(s: &str) -> Result<(TcpFlags, bool), String> {
    let mut f = TcpFlags::default();
    let mut ace = None;
    let mut ecn_letter = false;
    for c in s.chars() {
        match c {
            '.' => f.ack = true,
            'F' => f.fin = true,
            'S' => f.syn = true,
            'R' => f.rst = true,
            'P' => f.psh = true,
            'U' => f.urg = true,
            'E' | 'W' | 'A' => {
                if ace.is_some() {
                    return Err(format!("Conflicting TCP flag: '{c}'"));
                }
                ecn_letter = true;
                match c {
                    'E' => f.ece = true,
                    'W' => f.cwr = true,
                    _ => f.ae = true,
                }
            }
            '0'..='7' => {
                if ecn_letter || ace.is_some() {
                    return Err(format!("Conflicting TCP flag: '{c}'"));
                }
                ace = Some(c as u8 - b'0');
            }
            _ => return Err(format!("Invalid TCP flag: '{c}'")),
        }
    }
    if let Some(a) = ace {
        f.ece = a & 1 != 0;
        f.cwr = a & 2 != 0;
        f.ae = a & 4 != 0;
    }
    Ok((f, ace.is_some()))
}

fn parse_hex_blob(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err(format!("hex string '{s}' has an odd number of digits"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| format!("'{s}' is not a valid hex string")))
        .collect()
}
