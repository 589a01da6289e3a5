//! `>` lines: waiting for the stack's segment(s) of the connection under
//! test, and rendering packets in script space.

use super::*;

/// Renders a segment in script space as packetdrill writes it.
pub(super) fn render(
    flags: TcpFlags,
    seq: u32,
    len: usize,
    ack: Option<u32>,
    win: u16,
    urg: u16,
    opts: &str,
) -> String {
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
    /// Whether a frame could belong to the socket under test.
    pub(super) fn is_sut_flow(&self, f: &Sent) -> bool {
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
    pub(super) fn describe_sent(&self, f: &Sent) -> String {
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

    pub(super) fn outbound(
        &mut self,
        ev: &Event,
        spec: &PacketSpec,
        window: Option<(Us, Us)>,
    ) -> Result<(), Failure> {
        let Some(si) = self.sut else {
            return Err(fail(
                ev.line,
                "no socket under test for this outbound packet (no socket(), connect() or inbound packet before it)",
            ));
        };
        let other_flow = self.other_flow(si, spec);
        if !other_flow {
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
            return Err(self.not_sent(ev));
        }
        if !other_flow {
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

    /// The failure of a `>` line whose packet never came, saying what the
    /// stack sent next, if anything.
    fn not_sent(&mut self, ev: &Event) -> Failure {
        let waited = self.now;
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
        fail(
            ev.line,
            format!(
                "expected outbound packet was not sent (waited until {} s){}\n  script: {}",
                secs(waited),
                next.unwrap_or_else(|| "; the stack sent nothing more".into()),
                ev.text
            ),
        )
    }

    /// The next outbound frame of the socket under test, waiting until
    /// `give_up` for one.
    pub(super) fn next_frame(
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

    /// A `>` line naming ports other than those of the socket under test
    /// (say a SYN-ACK to another peer port): matched by its ports, and it
    /// neither teaches nor uses the socket's sequence spaces.
    pub(super) fn other_flow(&self, si: usize, spec: &PacketSpec) -> bool {
        let s = &self.socks[si];
        spec.ports.is_some_and(|(src, dst)| {
            s.local_port.is_some_and(|p| p != src) || s.remote_port.is_some_and(|p| p != dst)
        })
    }

    /// Checks a frame's addresses and ports against the socket under test,
    /// learning the local port and ISN of an active open from its SYN.
    pub(super) fn flow_check(&mut self, si: usize, spec: &PacketSpec, f: &Sent) -> Result<(), String> {
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
}
