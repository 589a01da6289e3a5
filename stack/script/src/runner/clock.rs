//! Virtual time: running the stack's timers, collecting what it sends,
//! retrying a blocked call.

use super::*;

impl<H: ScriptHost> Runner<H> {
    /// Advances the clock towards `target` (exclusive for host deadlines),
    /// running timers, collecting frames and retrying a pending call.
    /// With `stop_on_frame`, returns as soon as a frame is queued.
    pub(super) fn advance(&mut self, target: Us, stop_on_frame: bool) -> Result<(), Failure> {
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

    pub(super) fn pending_deadline(&self) -> Option<Us> {
        let p = self.pending.as_ref()?;
        match &p.op {
            Op::Poll {
                timeout_at: Some(t), ..
            } => Some((*t).min(p.give_up)),
            _ => Some(p.give_up),
        }
    }

    /// Collects what the stack sends now and retries a pending call.
    pub(super) fn pump(&mut self) -> Result<(), Failure> {
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
    pub(super) fn drain(&mut self) -> Result<(), Failure> {
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
}
