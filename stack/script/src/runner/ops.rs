//! Calls that may block: one attempt, and checking the result.

use super::*;

impl<H: ScriptHost> Runner<H> {
    /// One attempt at `op`; `None` when it would block and `blocking`.
    pub(super) fn try_op(
        &mut self,
        op: &mut Op<H::Handle>,
        blocking: bool,
    ) -> Option<Result<Val<H::Handle>, Errno>> {
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

    pub(super) fn complete_int(
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
    pub(super) fn complete(
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
            Ok(Val::Handle(h)) if name == "accept" => self.accepted(line, expect, h),
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
                match op {
                    Some(Op::Poll { fds, .. }) => check_revents(line, fds),
                    _ => Ok(()),
                }
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

    /// accept() returned a connection: the script's fd now names the
    /// child the handshake created (packetdrill's socket under test).
    fn accepted(&mut self, line: usize, expect: Expect, h: H::Handle) -> Result<(), Failure> {
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
}

/// Compares poll()'s revents with the script's, fd by fd.
fn check_revents<Hd>(line: usize, fds: &[PollFd<Hd>]) -> Result<(), Failure> {
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
    Ok(())
}
