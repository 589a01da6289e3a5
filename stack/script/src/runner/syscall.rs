//! System call lines: arguments, the host call, the script's expectations.
//! Calls that never block complete here; the others become an [`Op`] that
//! `ops.rs` attempts, now or (blocking) whenever the stack changes.

use super::*;
use crate::host::CONGESTION_ALGORITHMS;

/// A system call line being run.
pub(super) struct Call<'a> {
    pub(super) line: usize,
    pub(super) name: &'a str,
    pub(super) args: &'a [Expr],
    pub(super) expect: Expect,
    /// `...` end time and its tolerance.
    pub(super) end: Option<(Us, Us)>,
    /// When the call started.
    pub(super) start: Us,
}

impl Call<'_> {
    fn nargs(&self, n: usize) -> Result<(), Failure> {
        if self.args.len() == n {
            Ok(())
        } else {
            Err(fail(
                self.line,
                format!("{}() expected {n} args but got {}", self.name, self.args.len()),
            ))
        }
    }

    fn eval(&self, e: &Expr) -> Result<i64, Failure> {
        eval(e).map_err(|m| fail(self.line, m))
    }

    fn unsupported(&self, what: String) -> Failure {
        fail(self.line, format!("unsupported by the tapir runner: {what}"))
    }
}

impl<H: ScriptHost> Runner<H> {
    pub(super) fn fd(&self, line: usize, e: &Expr) -> Result<(Fd, &FdEntry<H::Handle>), Failure> {
        let fd = eval(e).map_err(|m| fail(line, m))? as Fd;
        match self.fds.get(&fd) {
            Some(entry) => Ok((fd, entry)),
            None => Err(fail(line, format!("unable to find fd with script fd {fd}"))),
        }
    }

    pub(super) fn register_fd(
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

    pub(super) fn expect(&self, ev: &Event, spec: &SyscallSpec) -> Result<Expect, Failure> {
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

    pub(super) fn syscall(&mut self, ev: &Event, spec: &SyscallSpec, base: Us) -> Result<(), Failure> {
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
        let call = self.call(ev, spec, base)?;
        let (op, blocking) = match call.name {
            "socket" => return self.sys_socket(&call),
            "bind" => return self.sys_bind(&call),
            "listen" => return self.sys_listen(&call),
            "accept" => self.accept_op(&call)?,
            "connect" => self.connect_op(&call)?,
            "read" | "recv" | "recvfrom" | "readv" | "write" | "send" | "sendto" | "writev" => {
                self.io_op(&call)?
            }
            "close" => return self.sys_close(&call),
            "shutdown" => return self.sys_shutdown(&call),
            "setsockopt" | "getsockopt" => return self.sockopt(&call),
            "fcntl" => return self.sys_fcntl(&call),
            "ioctl" => return self.sys_ioctl(&call),
            "poll" => (self.poll_op(&call)?, true),
            other => return Err(call.unsupported(format!("system call {other}()"))),
        };
        self.start_op(&call, op, blocking)
    }

    /// The call's expectations and end time; traces its start.
    fn call<'a>(&mut self, ev: &Event, spec: &'a SyscallSpec, base: Us) -> Result<Call<'a>, Failure> {
        let expect = self.expect(ev, spec)?;
        let start = self.now;
        self.trace
            .push(format!("{} line {}: {}", secs(start), ev.line, ev.text.trim()));
        let end = spec.end.map(|e| {
            let e = match ev.time {
                TimeSpec::Relative(_) => base + micros(e),
                _ => micros(e),
            };
            let dynamic = ((e - start).max(0) as f64 * self.cfg.tolerance_percent / 100.0) as Us;
            (e, micros(self.cfg.tolerance).max(dynamic))
        });
        Ok(Call {
            line: ev.line,
            name: spec.name.as_str(),
            args: &spec.args,
            expect,
            end,
            start,
        })
    }

    /// Completes a call that returned an integer (or failed).
    fn done(&mut self, call: &Call, r: Result<i64, Errno>) -> Result<(), Failure> {
        self.complete_int(call.name, call.line, call.expect, call.end, r)
    }

    /// Attempts `op` once; if it would block, it continues in the background.
    fn start_op(&mut self, call: &Call, mut op: Op<H::Handle>, blocking: bool) -> Result<(), Failure> {
        if let Some(r) = self.try_op(&mut op, blocking) {
            return self.complete(call.name, call.line, call.expect, call.end, r, Some(&op));
        }
        let give_up = match (call.end, &op) {
            (Some((e, tol)), _) => e + tol,
            (
                None,
                Op::Poll {
                    timeout_at: Some(t), ..
                },
            ) => *t,
            (None, _) => call.start + micros(self.cfg.max_block),
        };
        self.pending = Some(Pending {
            line: call.line,
            name: call.name.to_string(),
            op,
            expect: call.expect,
            end: call.end,
            give_up,
        });
        Ok(())
    }

    fn sys_socket(&mut self, call: &Call) -> Result<(), Failure> {
        call.nargs(3)?;
        let args = call.args;
        let domain = match &args[0] {
            Expr::Ellipsis => symbols::AF_INET,
            e => call.eval(e)?,
        };
        let ty = call.eval(&args[1])?;
        let proto = call.eval(&args[2])?;
        if domain != symbols::AF_INET {
            return Err(call.unsupported(format!("socket domain {domain} (only AF_INET)")));
        }
        if ty & 0xf != symbols::SOCK_STREAM
            || ty & !(0xf | symbols::SOCK_NONBLOCK | symbols::SOCK_CLOEXEC) != 0
        {
            return Err(call.unsupported(format!("socket type {ty:#x} (only SOCK_STREAM)")));
        }
        if proto != 0 && proto != symbols::IPPROTO_TCP {
            return Err(call.unsupported(format!("socket protocol {proto} (only IPPROTO_TCP)")));
        }
        let now = self.now_instant();
        let r = self.host.socket(now);
        if let Ok(h) = r {
            if call.expect.result >= 0 {
                self.socks.push(Sock::new(SockState::New));
                let si = self.socks.len() - 1;
                let nonblocking = ty & symbols::SOCK_NONBLOCK != 0;
                self.register_fd(call.line, call.expect.result, h, si, nonblocking)?;
                self.sut = Some(si);
            }
        }
        self.complete(
            call.name,
            call.line,
            call.expect,
            call.end,
            r.map(Val::Handle),
            None,
        )
    }

    fn sys_bind(&mut self, call: &Call) -> Result<(), Failure> {
        call.nargs(3)?;
        let (_, e) = self.fd(call.line, &call.args[0])?;
        let (h, si) = (e.handle, e.sock);
        let port = match &call.args[1] {
            Expr::Ellipsis => self.cfg.bind_port,
            e => sockaddr_port(e).map_err(|m| call.unsupported(format!("bind address: {m}")))?,
        };
        let now = self.now_instant();
        let r = self.host.bind(now, h, port);
        if r.is_ok() {
            self.socks[si].bound_port = Some(port);
        }
        self.done(call, r.map(|()| 0))
    }

    fn sys_listen(&mut self, call: &Call) -> Result<(), Failure> {
        call.nargs(2)?;
        let (_, e) = self.fd(call.line, &call.args[0])?;
        let (h, si) = (e.handle, e.sock);
        let backlog = call.eval(&call.args[1])?;
        let now = self.now_instant();
        let r = self.host.listen(now, h, backlog.clamp(0, u32::MAX as i64) as u32);
        if r.is_ok() {
            self.socks[si].state = SockState::Listening;
        }
        self.done(call, r.map(|()| 0))
    }

    fn accept_op(&mut self, call: &Call) -> Result<(Op<H::Handle>, bool), Failure> {
        call.nargs(3)?;
        let (_, e) = self.fd(call.line, &call.args[0])?;
        let wants_eagain = call.expect.result == -1 && call.expect.errno == Some(Errno::EAGAIN);
        let blocking = !(e.nonblocking || wants_eagain);
        Ok((Op::Accept { listener: e.handle }, blocking))
    }

    fn connect_op(&mut self, call: &Call) -> Result<(Op<H::Handle>, bool), Failure> {
        call.nargs(3)?;
        let (_, e) = self.fd(call.line, &call.args[0])?;
        let (h, si, nb) = (e.handle, e.sock, e.nonblocking);
        let port = match &call.args[1] {
            Expr::Ellipsis => self.cfg.connect_port,
            e => sockaddr_port(e).map_err(|m| call.unsupported(format!("connect address: {m}")))?,
        };
        let s = &mut self.socks[si];
        if s.state == SockState::New {
            s.state = SockState::ActiveConnecting;
            s.remote_port = Some(port);
            s.local_port = None;
            self.sut = Some(si);
        }
        let expect = call.expect;
        let would_block = matches!(expect.errno, Some(Errno::EINPROGRESS | Errno::EALREADY));
        let blocking = !(nb || expect.result == -1 && would_block);
        let remote = SocketAddrV4::new(self.cfg.peer_ip, port);
        Ok((
            Op::Connect {
                h,
                remote,
                retry: false,
            },
            blocking,
        ))
    }

    /// read, recv, recvfrom, readv, write, send, sendto, writev.
    fn io_op(&mut self, call: &Call) -> Result<(Op<H::Handle>, bool), Failure> {
        let name = call.name;
        let reading = matches!(name, "read" | "recv" | "recvfrom" | "readv");
        let (n, flags_at) = match name {
            "read" | "write" | "readv" | "writev" => (3, None),
            "recv" | "send" => (4, Some(3)),
            _ => (6, Some(3)),
        };
        call.nargs(n)?;
        let args = call.args;
        let (_, e) = self.fd(call.line, &args[0])?;
        let (h, nb) = (e.handle, e.nonblocking);
        let len = io_len(call)?;
        let mut dontwait = false;
        if let Some(i) = flags_at {
            let flags = call.eval(&args[i])?;
            let known = symbols::MSG_DONTWAIT | symbols::MSG_NOSIGNAL;
            if flags & !known != 0 {
                return Err(call.unsupported(format!("{name}() flags {flags:#x}")));
            }
            dontwait = flags & symbols::MSG_DONTWAIT != 0;
        }
        let with_address =
            args.len() == 6 && (!matches!(args[4], Expr::Ellipsis) || !matches!(args[5], Expr::Ellipsis));
        if (name == "sendto" || name == "recvfrom") && with_address {
            return Err(call.unsupported(format!("{name}() with an address")));
        }
        let wants_eagain = call.expect.result == -1 && call.expect.errno == Some(Errno::EAGAIN);
        let blocking = !(nb || dontwait || wants_eagain);
        let op = if reading {
            Op::Read { h, len }
        } else {
            Op::Write { h, len, done: 0 }
        };
        Ok((op, blocking))
    }

    fn sys_close(&mut self, call: &Call) -> Result<(), Failure> {
        call.nargs(1)?;
        let (fd, e) = self.fd(call.line, &call.args[0])?;
        let (h, si) = (e.handle, e.sock);
        let now = self.now_instant();
        let r = self.host.close(now, h);
        if r.is_ok() {
            self.fds.remove(&fd);
            if self.socks[si].fd == Some(fd) {
                self.socks[si].fd = None;
            }
        }
        self.done(call, r.map(|()| 0))
    }

    fn sys_shutdown(&mut self, call: &Call) -> Result<(), Failure> {
        call.nargs(2)?;
        let (_, e) = self.fd(call.line, &call.args[0])?;
        let h = e.handle;
        let how = match call.eval(&call.args[1])? {
            0 => Shutdown::Read,
            1 => Shutdown::Write,
            2 => Shutdown::Both,
            other => return Err(fail(call.line, format!("bad shutdown how {other}"))),
        };
        let now = self.now_instant();
        let r = self.host.shutdown(now, h, how);
        self.done(call, r.map(|()| 0))
    }

    fn sys_fcntl(&mut self, call: &Call) -> Result<(), Failure> {
        let args = call.args;
        if args.len() != 2 && args.len() != 3 {
            return Err(fail(
                call.line,
                format!("fcntl expected 2-3 args but got {}", args.len()),
            ));
        }
        let (fd, _) = self.fd(call.line, &args[0])?;
        let cmd = call.eval(&args[1])?;
        let arg = match args.get(2) {
            Some(a) => Some(call.eval(a)?),
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
            _ => return Err(call.unsupported(format!("fcntl command {cmd}"))),
        };
        self.done(call, r)
    }

    fn sys_ioctl(&mut self, call: &Call) -> Result<(), Failure> {
        call.nargs(3)?;
        let (_, e) = self.fd(call.line, &call.args[0])?;
        let h = e.handle;
        let request = call.eval(&call.args[1])?;
        let q = match request {
            symbols::SIOCINQ => QueueIoctl::InQ,
            symbols::SIOCOUTQ => QueueIoctl::OutQ,
            symbols::SIOCOUTQNSD => QueueIoctl::OutQNotSent,
            _ => return Err(call.unsupported(format!("ioctl request {request:#x}"))),
        };
        let now = self.now_instant();
        let r = self.host.queue_size(now, h, q);
        self.done(call, r.map(|_| 0))?;
        match r {
            Ok(v) => check_value(call.line, &format!("ioctl {q:?}"), &call.args[2], v),
            Err(_) => Ok(()),
        }
    }

    fn poll_op(&mut self, call: &Call) -> Result<Op<H::Handle>, Failure> {
        call.nargs(3)?;
        let line = call.line;
        let nfds = call.eval(&call.args[1])?;
        let timeout = call.eval(&call.args[2])?;
        let Expr::List(items) = &call.args[0] else {
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
        let timeout_at = (timeout >= 0).then(|| call.start + timeout * 1000);
        Ok(Op::Poll { fds, timeout_at })
    }

    /// setsockopt and getsockopt (and SO_ERROR).
    fn sockopt(&mut self, call: &Call) -> Result<(), Failure> {
        call.nargs(5)?;
        let (line, name, args) = (call.line, call.name, call.args);
        let (_, e) = self.fd(line, &args[0])?;
        let h = e.handle;
        let level = call.eval(&args[1])?;
        let optname = call.eval(&args[2])?;
        let now = self.now_instant();
        let value = &args[3];
        if name == "getsockopt" && level == symbols::SOL_SOCKET && optname == symbols::SO_ERROR {
            let err = self.host.take_error(now, h).map_or(0, Errno::code);
            self.done(call, Ok(0))?;
            return check_value(line, "getsockopt SO_ERROR", value, err);
        }
        let Some(opt) = sockopt_for(level, optname) else {
            return Err(call.unsupported(format!("socket option level {level} name {optname}")));
        };
        if opt == SockOpt::Congestion {
            return self.congestion(call, value);
        }
        if name == "setsockopt" {
            let v = setsockopt_value(value).map_err(|m| fail(line, m))?;
            let r = self.host.setsockopt(now, h, opt, v);
            return self.done(call, r.map(|()| 0));
        }
        let r = self.host.getsockopt(now, h, opt);
        self.done(call, r.map(|_| 0))?;
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
}

impl<H: ScriptHost> Runner<H> {
    /// TCP_CONGESTION, whose value is a name: `"cubic"`.
    fn congestion(&mut self, call: &Call, value: &Expr) -> Result<(), Failure> {
        let (line, h) = (call.line, self.fd(call.line, &call.args[0])?.1.handle);
        let now = self.now_instant();
        let Expr::Str(want) = value else {
            return Err(fail(line, "TCP_CONGESTION takes a name (\"cubic\")".to_string()));
        };
        let index = |name: &str| CONGESTION_ALGORITHMS.iter().position(|&a| a == name);
        if call.name == "setsockopt" {
            let v = index(want).map_or(-1, |i| i as i64);
            let r = self.host.setsockopt(now, h, SockOpt::Congestion, v);
            return self.done(call, r.map(|()| 0));
        }
        let r = self.host.getsockopt(now, h, SockOpt::Congestion);
        self.done(call, r.map(|_| 0))?;
        match r {
            Ok(v) => {
                let actual = usize::try_from(v)
                    .ok()
                    .and_then(|i| CONGESTION_ALGORITHMS.get(i))
                    .copied()
                    .unwrap_or("?");
                if actual != want {
                    return Err(fail(
                        line,
                        format!("Bad getsockopt TCP_CONGESTION value: expected {want:?} actual {actual:?}"),
                    ));
                }
                Ok(())
            }
            Err(_) => Ok(()),
        }
    }
}

/// The byte count of a read or write: its length argument, or the sum of
/// its iovec's.
fn io_len(call: &Call) -> Result<usize, Failure> {
    let (line, args) = (call.line, call.args);
    let len = if call.name == "readv" || call.name == "writev" {
        let cnt = call.eval(&args[2])?;
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
        if !matches!(args[1], Expr::Ellipsis) {
            return Err(call.unsupported(format!("buffer {} (only ...)", symbols::describe(&args[1]))));
        }
        call.eval(&args[2])?
    };
    usize::try_from(len).map_err(|_| fail(line, format!("bad length {len}")))
}

/// A setsockopt value: `[N]`, `N` or a linger struct.
fn setsockopt_value(value: &Expr) -> Result<i64, String> {
    match value {
        Expr::Braces(_) => linger_value(value),
        Expr::List(items) if items.len() == 1 => eval(&items[0]),
        Expr::Int(v) => Ok(*v),
        other => Err(format!(
            "unsupported setsockopt value {}",
            symbols::describe(other)
        )),
    }
}
