//! `%{ }%` snippets: the small part of Python that packetdrill's scripts
//! write in them, evaluated against the socket's TCP_INFO.
//!
//! packetdrill runs each snippet in Python after the script, with the
//! `tcpi_*` values getsockopt(TCP_INFO) gave at the snippet's time and the
//! `TCP_CA_*` states defined; names a snippet assigns persist into later
//! snippets. This runner evaluates each snippet at its time instead, which
//! gives the same result (snippets can only read those values). Supported:
//! statements separated by newlines or `;`, `assert EXPR[, MSG]`,
//! `print(...)` (ignored), `NAME = EXPR`, `NAME += EXPR`, `NAME -= EXPR`,
//! integers (decimal, hex), strings, `%` formatting with `%d`/`%s`,
//! `and`/`or`/`not`, comparisons (chained), `+ - * // / %`, tuples in
//! parentheses, `#` comments. Anything else fails the script with a
//! message naming it, rather than being guessed at.

use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    Int(i64),
    Str(String),
    Bool(bool),
    Tuple(Vec<Value>),
    None,
}

impl Value {
    fn truthy(&self) -> bool {
        match self {
            Value::Int(v) => *v != 0,
            Value::Str(s) => !s.is_empty(),
            Value::Bool(b) => *b,
            Value::Tuple(t) => !t.is_empty(),
            Value::None => false,
        }
    }

    fn show(&self) -> String {
        match self {
            Value::Int(v) => v.to_string(),
            Value::Str(s) => s.clone(),
            Value::Bool(b) => if *b { "True" } else { "False" }.into(),
            Value::Tuple(t) => format!("({})", t.iter().map(Value::show).collect::<Vec<_>>().join(", ")),
            Value::None => "None".into(),
        }
    }

    fn int(&self) -> Result<i64, String> {
        match self {
            Value::Int(v) => Ok(*v),
            Value::Bool(b) => Ok(i64::from(*b)),
            v => Err(format!("expected a number, found {}", v.show())),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Int(i64),
    Str(String),
    Name(String),
    Op(&'static str),
    End,
}

const OPS: &[&str] = &[
    "//", "==", "!=", "<=", ">=", "+=", "-=", "<", ">", "+", "-", "*", "/", "%", "(", ")", ",", "=", ";",
    "\n",
];

fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let b = src.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        if c == b'#' {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b' ' || c == b'\t' || c == b'\r' || (c == b'\\' && b.get(i + 1) == Some(&b'\n')) {
            i += if c == b'\\' { 2 } else { 1 };
        } else if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            let t = &src[start..i].replace('_', "");
            let v = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                i64::from_str_radix(h, 16)
            } else {
                t.parse()
            };
            out.push(Tok::Int(v.map_err(|_| format!("bad number '{t}'"))?));
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(Tok::Name(src[start..i].to_string()));
        } else if c == b'\'' || c == b'"' {
            let start = i + 1;
            i += 1;
            while i < b.len() && b[i] != c {
                if b[i] == b'\\' || b[i] == b'\n' {
                    return Err("escapes and multi-line strings are not supported".into());
                }
                i += 1;
            }
            if i >= b.len() {
                return Err("unterminated string".into());
            }
            out.push(Tok::Str(src[start..i].to_string()));
            i += 1;
        } else if let Some(op) = OPS.iter().find(|op| src[i..].starts_with(**op)) {
            out.push(Tok::Op(op));
            i += op.len();
        } else {
            return Err(format!(
                "unsupported character '{}'",
                &src[i..].chars().next().unwrap_or(' ')
            ));
        }
    }
    out.push(Tok::End);
    Ok(out)
}

/// The names snippets share: the script's own assignments, then this
/// snippet's `tcpi_*` values and the `TCP_CA_*` constants.
pub(super) struct Env {
    vars: HashMap<String, Value>,
}

impl Env {
    pub(super) fn new() -> Self {
        let mut vars = HashMap::new();
        // Linux's enum tcp_ca_state, which packetdrill defines for snippets.
        for (i, n) in [
            "TCP_CA_Open",
            "TCP_CA_Disorder",
            "TCP_CA_CWR",
            "TCP_CA_Recovery",
            "TCP_CA_Loss",
        ]
        .iter()
        .enumerate()
        {
            vars.insert(n.to_string(), Value::Int(i as i64));
        }
        vars.insert("True".into(), Value::Bool(true));
        vars.insert("False".into(), Value::Bool(false));
        vars.insert("None".into(), Value::None);
        Env { vars }
    }

    /// Runs one snippet with `info` as its `tcpi_*` values. `Err` says
    /// why the snippet failed (a false assertion, or what is unsupported).
    pub(super) fn run(&mut self, src: &str, info: &[(&'static str, i64)]) -> Result<(), String> {
        self.vars.retain(|k, _| !k.starts_with("tcpi_"));
        for (k, v) in info {
            self.vars.insert(format!("tcpi_{k}"), Value::Int(*v));
        }
        let toks = lex(src)?;
        let mut p = P {
            toks,
            pos: 0,
            env: self,
        };
        p.statements()
    }
}

struct P<'a> {
    toks: Vec<Tok>,
    pos: usize,
    env: &'a mut Env,
}

impl P<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos]
    }

    fn next(&mut self) -> Tok {
        let t = self.toks[self.pos].clone();
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn eat(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Tok::Op(o) if *o == op) {
            self.next();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, op: &str) -> Result<(), String> {
        if self.eat(op) {
            Ok(())
        } else {
            Err(format!("expected '{op}', found {:?}", self.peek()))
        }
    }

    fn statements(&mut self) -> Result<(), String> {
        loop {
            while self.eat("\n") || self.eat(";") {}
            if *self.peek() == Tok::End {
                return Ok(());
            }
            self.statement()?;
            if !(self.eat("\n") || self.eat(";") || *self.peek() == Tok::End) {
                return Err(format!("unexpected {:?} after a statement", self.peek()));
            }
        }
    }

    fn statement(&mut self) -> Result<(), String> {
        match self.peek().clone() {
            Tok::Name(n) if n == "assert" => {
                self.next();
                let cond = self.expr()?;
                // The message is evaluated only when the assertion fails,
                // as in Python.
                let has_msg = self.eat(",");
                if cond.truthy() {
                    if has_msg {
                        self.skip_expr()?;
                    }
                    return Ok(());
                }
                let msg = if has_msg {
                    self.expr()?.show()
                } else {
                    String::new()
                };
                Err(format!("AssertionError: {msg}"))
            }
            Tok::Name(n) if n == "print" => {
                self.next();
                self.expect("(")?;
                if !self.eat(")") {
                    loop {
                        self.expr()?;
                        if !self.eat(",") {
                            break;
                        }
                    }
                    self.expect(")")?;
                }
                Ok(())
            }
            Tok::Name(n) if matches!(self.toks.get(self.pos + 1), Some(Tok::Op("=" | "+=" | "-="))) => {
                self.next();
                let Tok::Op(op) = self.next() else { unreachable!() };
                let v = self.expr()?;
                let v = match op {
                    "=" => v,
                    _ => {
                        let old = self.env.vars.get(&n).ok_or(format!("NameError: {n}"))?.int()?;
                        let d = v.int()?;
                        Value::Int(if op == "+=" { old + d } else { old - d })
                    }
                };
                self.env.vars.insert(n, v);
                Ok(())
            }
            _ => self.expr().map(|_| ()),
        }
    }

    /// Skips an expression without evaluating it (an assert's message
    /// when the assertion holds).
    fn skip_expr(&mut self) -> Result<(), String> {
        let mut depth = 0usize;
        loop {
            match self.peek() {
                Tok::End => return Ok(()),
                Tok::Op("(") => depth += 1,
                Tok::Op(")") if depth == 0 => return Err("unbalanced ')'".into()),
                Tok::Op(")") => depth -= 1,
                Tok::Op("\n" | ";") if depth == 0 => return Ok(()),
                _ => {}
            }
            self.next();
        }
    }

    fn expr(&mut self) -> Result<Value, String> {
        let mut v = self.and()?;
        while matches!(self.peek(), Tok::Name(n) if n == "or") {
            self.next();
            let r = self.and()?;
            v = if v.truthy() { v } else { r };
        }
        Ok(v)
    }

    fn and(&mut self) -> Result<Value, String> {
        let mut v = self.not()?;
        while matches!(self.peek(), Tok::Name(n) if n == "and") {
            self.next();
            let r = self.not()?;
            v = if v.truthy() { r } else { v };
        }
        Ok(v)
    }

    fn not(&mut self) -> Result<Value, String> {
        if matches!(self.peek(), Tok::Name(n) if n == "not") {
            self.next();
            return Ok(Value::Bool(!self.not()?.truthy()));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Value, String> {
        let mut left = self.arith()?;
        let mut result = true;
        let mut any = false;
        while let Tok::Op(op @ ("==" | "!=" | "<" | "<=" | ">" | ">=")) = *self.peek() {
            self.next();
            let right = self.arith()?;
            let ok = match op {
                "==" => left == right,
                "!=" => left != right,
                _ => {
                    let (a, b) = (left.int()?, right.int()?);
                    match op {
                        "<" => a < b,
                        "<=" => a <= b,
                        ">" => a > b,
                        _ => a >= b,
                    }
                }
            };
            result &= ok;
            any = true;
            left = right;
        }
        Ok(if any { Value::Bool(result) } else { left })
    }

    fn arith(&mut self) -> Result<Value, String> {
        let mut v = self.term()?;
        while let Tok::Op(op @ ("+" | "-")) = *self.peek() {
            self.next();
            let r = self.term()?;
            v = match (op, &v, &r) {
                ("+", Value::Str(a), Value::Str(b)) => Value::Str(format!("{a}{b}")),
                ("+", _, _) => Value::Int(v.int()?.wrapping_add(r.int()?)),
                _ => Value::Int(v.int()?.wrapping_sub(r.int()?)),
            };
        }
        Ok(v)
    }

    fn term(&mut self) -> Result<Value, String> {
        let mut v = self.unary()?;
        while let Tok::Op(op @ ("*" | "/" | "//" | "%")) = *self.peek() {
            self.next();
            let r = self.unary()?;
            v = match (op, &v) {
                ("%", Value::Str(fmt)) => Value::Str(format_percent(fmt, &r)?),
                _ => {
                    let (a, b) = (v.int()?, r.int()?);
                    if b == 0 && op != "*" {
                        return Err("ZeroDivisionError".into());
                    }
                    Value::Int(match op {
                        "*" => a.wrapping_mul(b),
                        "%" => a.rem_euclid(b),
                        "//" => a.div_euclid(b),
                        // True division: only exact quotients are integers
                        // here.
                        _ if a % b == 0 => a / b,
                        _ => return Err("true division with a fraction is not supported".into()),
                    })
                }
            };
        }
        Ok(v)
    }

    fn unary(&mut self) -> Result<Value, String> {
        if self.eat("-") {
            return Ok(Value::Int(self.unary()?.int()?.wrapping_neg()));
        }
        if self.eat("+") {
            return self.unary();
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Value, String> {
        match self.next() {
            Tok::Int(v) => Ok(Value::Int(v)),
            Tok::Str(s) => Ok(Value::Str(s)),
            Tok::Op("(") => {
                let first = self.expr()?;
                if self.eat(")") {
                    return Ok(first);
                }
                let mut items = vec![first];
                while self.eat(",") {
                    if self.eat(")") {
                        return Ok(Value::Tuple(items));
                    }
                    items.push(self.expr()?);
                }
                self.expect(")")?;
                Ok(Value::Tuple(items))
            }
            Tok::Name(n) => {
                if matches!(self.peek(), Tok::Op("(")) {
                    return Err(format!("calling {n}() is not supported"));
                }
                self.env.vars.get(&n).cloned().ok_or_else(|| {
                    if n.starts_with("tcpi_") {
                        format!("NameError: {n}: this host's TCP_INFO does not report it")
                    } else {
                        format!("NameError: {n}")
                    }
                })
            }
            t => Err(format!("unexpected {t:?}")),
        }
    }
}

/// `'fmt' % args` with `%d`, `%s` and `%%`.
fn format_percent(fmt: &str, args: &Value) -> Result<String, String> {
    let args: Vec<Value> = match args {
        Value::Tuple(t) => t.clone(),
        v => vec![v.clone()],
    };
    let mut it = args.iter();
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('d' | 'i' | 's' | 'u') => {
                out.push_str(&it.next().ok_or("not enough format arguments")?.show())
            }
            other => return Err(format!("format %{} is not supported", other.unwrap_or(' '))),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(env: &mut Env, src: &str, info: &[(&'static str, i64)]) -> Result<(), String> {
        env.run(src, info)
    }

    #[test]
    fn asserts_on_tcp_info() {
        let mut env = Env::new();
        let info = [("snd_cwnd", 10), ("ca_state", 3)];
        run(&mut env, " assert tcpi_snd_cwnd == 10, tcpi_snd_cwnd ", &info).unwrap();
        run(
            &mut env,
            "assert tcpi_ca_state == TCP_CA_Recovery, tcpi_ca_state",
            &info,
        )
        .unwrap();
        let e = run(
            &mut env,
            "assert tcpi_snd_cwnd == 12, 'cwnd=%d' % tcpi_snd_cwnd",
            &info,
        )
        .unwrap_err();
        assert_eq!(e, "AssertionError: cwnd=10");
        let e = run(&mut env, "assert tcpi_snd_cwnd == 11, tcpi_snd_cwnd", &info).unwrap_err();
        assert_eq!(e, "AssertionError: 10");
        let e = run(&mut env, "assert tcpi_lost == 0", &info).unwrap_err();
        assert!(e.contains("tcpi_lost"), "{e}");
    }

    #[test]
    fn names_persist_across_snippets() {
        let mut env = Env::new();
        run(&mut env, " TCP_INFINITE_SSTHRESH = 0x7fffffff ", &[]).unwrap();
        run(
            &mut env,
            "print(tcpi_snd_cwnd); cwnd = 58; assert tcpi_snd_cwnd == cwnd, tcpi_snd_cwnd",
            &[("snd_cwnd", 58)],
        )
        .unwrap();
        run(
            &mut env,
            "cwnd += 1; assert tcpi_snd_cwnd == cwnd",
            &[("snd_cwnd", 59)],
        )
        .unwrap();
        run(
            &mut env,
            "\nassert tcpi_snd_ssthresh == TCP_INFINITE_SSTHRESH, tcpi_snd_ssthresh  # comment\n",
            &[("snd_ssthresh", 0x7fff_ffff)],
        )
        .unwrap();
        // tcpi_ values are the snippet's own, not an earlier one's.
        assert!(run(&mut env, "assert tcpi_snd_cwnd == 59", &[]).is_err());
    }

    #[test]
    fn message_with_tuple_format_and_unsupported_syntax() {
        let mut env = Env::new();
        let info = [("ca_state", 0), ("min_rtt", 1), ("rtt", 2)];
        let e = run(
            &mut env,
            "assert tcpi_ca_state == TCP_CA_Recovery, 'ca_state: %d min_rtt: %d rtt: %d' % (tcpi_ca_state, tcpi_min_rtt, tcpi_rtt)",
            &info,
        )
        .unwrap_err();
        assert_eq!(e, "AssertionError: ca_state: 0 min_rtt: 1 rtt: 2");
        assert!(run(&mut env, "import os", &[]).is_err());
        assert!(run(&mut env, "x = len(y)", &[]).is_err());
        assert!(run(&mut env, "assert 1 < 2 <= 2 and not 0", &[]).is_ok());
    }
}
