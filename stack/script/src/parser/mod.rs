//! Parses scripts in packetdrill's syntax (its `parser.y`) into a
//! [`Script`]: options, then timed events, each a packet, a system call,
//! or a shell command or Python snippet (kept, to be reported as skipped).
//!
//! Constructs this runner cannot execute (UDP/ICMP packets, encapsulation
//! prefixes, fuzzing blocks, system calls it does not know) still parse, as
//! [`EventKind::Unsupported`] events that fail when the runner reaches them.

mod ast;
mod packet;

pub use ast::*;
use core::time::Duration;

use super::frame::{TcpFlags, TcpOption};
use super::lexer::{tokenize, Tok, Token};

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
