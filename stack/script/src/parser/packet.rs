//! Packet lines: `< S 0:0(0) win 65535 <mss 1460>` and its parts.

use super::*;

impl Parser<'_> {
    pub(super) fn packet(&mut self, first: &Token) -> Result<EventKind, ParseError> {
        let dir_tok = self.bump();
        let direction = if dir_tok.tok == Tok::Char('<') {
            Direction::Inbound
        } else {
            Direction::Outbound
        };
        if let Some(what) = self.unsupported_packet(first)? {
            return Ok(EventKind::Unsupported(what));
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
        let (seq, len) = self.seq_range()?;
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
        let options = match self.option_block(direction)? {
            Ok(options) => options,
            Err(what) => {
                self.skip_event(first.line);
                return Ok(EventKind::Unsupported(what));
            }
        };
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
            seq,
            len,
            ack,
            window,
            urg_ptr,
            options,
        }))
    }

    /// Encapsulated, GRE and MPLS packets: what they are (the line is
    /// skipped), or `None`.
    fn unsupported_packet(&mut self, first: &Token) -> Result<Option<String>, ParseError> {
        let Tok::Word(w) = self.peek() else {
            return Ok(None);
        };
        let what = match w.as_str() {
            "ipv4" | "ipv6" => "encapsulated (ipv4/ipv6 ... > ... :) packets",
            "gre" | "GREv0" => "GRE packets",
            "mpls" => "MPLS packets",
            _ => return Ok(None),
        };
        self.skip_event(first.line);
        Ok(Some(what.to_string()))
    }

    /// `start:end(len)`: the start and the length, which must agree with
    /// the end.
    fn seq_range(&mut self) -> Result<(u32, u16), ParseError> {
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
        Ok((start, len))
    }

    /// The `<...>` option list: none written is an empty list, `<...>`
    /// (outbound only) is `None`, "any options". `Err(what)` for options
    /// the runner does not support.
    fn option_block(
        &mut self,
        direction: Direction,
    ) -> Result<Result<Option<Vec<TcpOption>>, String>, ParseError> {
        if !self.is_char('<') {
            return Ok(Ok(Some(Vec::new())));
        }
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
            return Ok(Ok(None));
        }
        let list = match self.tcp_options()? {
            Ok(list) => list,
            Err(what) => return Ok(Err(what)),
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
        Ok(Ok(Some(list)))
    }

    pub(super) fn ip_info(&mut self) -> Result<IpInfo, ParseError> {
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
    pub(super) fn flags_text(&mut self) -> Result<String, ParseError> {
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
    pub(super) fn tcp_options(&mut self) -> Result<Result<Vec<TcpOption>, String>, ParseError> {
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
