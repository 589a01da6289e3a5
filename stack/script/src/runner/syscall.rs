//! System call lines: arguments, the host call, the script's expectations.

use super::*;

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
        let line = ev.line;
        let expect = self.expect(ev, spec)?;
        let start = self.now;
        self.trace
            .push(format!("{} line {}: {}", secs(start), line, ev.text.trim()));
        let end = spec.end.map(|e| {
            let e = match ev.time {
                TimeSpec::Relative(_) => base + micros(e),
                _ => micros(e),
            };
            let dynamic = ((e - start).max(0) as f64 * self.cfg.tolerance_percent / 100.0) as Us;
            (e, micros(self.cfg.tolerance).max(dynamic))
        });
        let args = &spec.args;
        let nargs = |n: usize| -> Result<(), Failure> {
            if args.len() == n {
                Ok(())
            } else {
                Err(fail(
                    line,
                    format!("{}() expected {n} args but got {}", spec.name, args.len()),
                ))
            }
        };
        let unsupported = |what: String| fail(line, format!("unsupported by the tapir runner: {what}"));
        let now = self.now_instant();
        let name = spec.name.as_str();
        let op = match name {
            "socket" => {
                nargs(3)?;
                let domain = match &args[0] {
                    Expr::Ellipsis => symbols::AF_INET,
                    e => eval(e).map_err(|m| fail(line, m))?,
                };
                let ty = eval(&args[1]).map_err(|m| fail(line, m))?;
                let proto = eval(&args[2]).map_err(|m| fail(line, m))?;
                if domain != symbols::AF_INET {
                    return Err(unsupported(format!("socket domain {domain} (only AF_INET)")));
                }
                if ty & 0xf != symbols::SOCK_STREAM
                    || ty & !(0xf | symbols::SOCK_NONBLOCK | symbols::SOCK_CLOEXEC) != 0
                {
                    return Err(unsupported(format!("socket type {ty:#x} (only SOCK_STREAM)")));
                }
                if proto != 0 && proto != symbols::IPPROTO_TCP {
                    return Err(unsupported(format!("socket protocol {proto} (only IPPROTO_TCP)")));
                }
                let r = self.host.socket(now);
                if let Ok(h) = r {
                    if expect.result >= 0 {
                        self.socks.push(Sock::new(SockState::New));
                        let si = self.socks.len() - 1;
                        self.register_fd(line, expect.result, h, si, ty & symbols::SOCK_NONBLOCK != 0)?;
                        self.sut = Some(si);
                    }
                }
                return self.complete(name, line, expect, end, r.map(Val::Handle), None);
            }
            "bind" => {
                nargs(3)?;
                let (_, e) = self.fd(line, &args[0])?;
                let (h, si) = (e.handle, e.sock);
                let port = match &args[1] {
                    Expr::Ellipsis => self.cfg.bind_port,
                    e => sockaddr_port(e).map_err(|m| unsupported(format!("bind address: {m}")))?,
                };
                let r = self.host.bind(now, h, port);
                if r.is_ok() {
                    self.socks[si].bound_port = Some(port);
                }
                return self.complete_int(name, line, expect, end, r.map(|()| 0));
            }
            "listen" => {
                nargs(2)?;
                let (_, e) = self.fd(line, &args[0])?;
                let (h, si) = (e.handle, e.sock);
                let backlog = eval(&args[1]).map_err(|m| fail(line, m))?;
                let r = self.host.listen(now, h, backlog.clamp(0, u32::MAX as i64) as u32);
                if r.is_ok() {
                    self.socks[si].state = SockState::Listening;
                }
                return self.complete_int(name, line, expect, end, r.map(|()| 0));
            }
            "accept" => {
                nargs(3)?;
                let (_, e) = self.fd(line, &args[0])?;
                let wants_eagain = expect.result == -1 && expect.errno == Some(Errno::EAGAIN);
                let blocking = !(e.nonblocking || wants_eagain);
                (Op::Accept { listener: e.handle }, blocking)
            }
            "connect" => {
                nargs(3)?;
                let (_, e) = self.fd(line, &args[0])?;
                let (h, si, nb) = (e.handle, e.sock, e.nonblocking);
                let port = match &args[1] {
                    Expr::Ellipsis => self.cfg.connect_port,
                    e => sockaddr_port(e).map_err(|m| unsupported(format!("connect address: {m}")))?,
                };
                let s = &mut self.socks[si];
                if s.state == SockState::New {
                    s.state = SockState::ActiveConnecting;
                    s.remote_port = Some(port);
                    s.local_port = None;
                    self.sut = Some(si);
                }
                let would_block = matches!(expect.errno, Some(Errno::EINPROGRESS | Errno::EALREADY));
                let blocking = !(nb || expect.result == -1 && would_block);
                (
                    Op::Connect {
                        h,
                        remote: SocketAddrV4::new(self.cfg.peer_ip, port),
                        retry: false,
                    },
                    blocking,
                )
            }
            "read" | "recv" | "recvfrom" | "readv" | "write" | "send" | "sendto" | "writev" => {
                let reading = matches!(name, "read" | "recv" | "recvfrom" | "readv");
                let (n, flags_at) = match name {
                    "read" | "write" | "readv" | "writev" => (3, None),
                    "recv" | "send" => (4, Some(3)),
                    _ => (6, Some(3)),
                };
                nargs(n)?;
                let (_, e) = self.fd(line, &args[0])?;
                let (h, nb) = (e.handle, e.nonblocking);
                let len = if name == "readv" || name == "writev" {
                    let cnt = eval(&args[2]).map_err(|m| fail(line, m))?;
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
                    match &args[1] {
                        Expr::Ellipsis => {}
                        other => {
                            return Err(unsupported(format!(
                                "buffer {} (only ...)",
                                symbols::describe(other)
                            )))
                        }
                    }
                    eval(&args[2]).map_err(|m| fail(line, m))?
                };
                let len = usize::try_from(len).map_err(|_| fail(line, format!("bad length {len}")))?;
                let mut dontwait = false;
                if let Some(i) = flags_at {
                    let flags = eval(&args[i]).map_err(|m| fail(line, m))?;
                    let known = symbols::MSG_DONTWAIT | symbols::MSG_NOSIGNAL;
                    if flags & !known != 0 {
                        return Err(unsupported(format!("{name}() flags {flags:#x}")));
                    }
                    dontwait = flags & symbols::MSG_DONTWAIT != 0;
                }
                let with_address = args.len() == 6
                    && (!matches!(args[4], Expr::Ellipsis) || !matches!(args[5], Expr::Ellipsis));
                if (name == "sendto" || name == "recvfrom") && with_address {
                    return Err(unsupported(format!("{name}() with an address")));
                }
                let wants_eagain = expect.result == -1 && expect.errno == Some(Errno::EAGAIN);
                let blocking = !(nb || dontwait || wants_eagain);
                let op = if reading {
                    Op::Read { h, len }
                } else {
                    Op::Write { h, len, done: 0 }
                };
                (op, blocking)
            }
            "close" => {
                nargs(1)?;
                let (fd, e) = self.fd(line, &args[0])?;
                let (h, si) = (e.handle, e.sock);
                let r = self.host.close(now, h);
                if r.is_ok() {
                    self.fds.remove(&fd);
                    if self.socks[si].fd == Some(fd) {
                        self.socks[si].fd = None;
                    }
                }
                return self.complete_int(name, line, expect, end, r.map(|()| 0));
            }
            "shutdown" => {
                nargs(2)?;
                let (_, e) = self.fd(line, &args[0])?;
                let h = e.handle;
                let how = match eval(&args[1]).map_err(|m| fail(line, m))? {
                    0 => Shutdown::Read,
                    1 => Shutdown::Write,
                    2 => Shutdown::Both,
                    other => return Err(fail(line, format!("bad shutdown how {other}"))),
                };
                let r = self.host.shutdown(now, h, how);
                return self.complete_int(name, line, expect, end, r.map(|()| 0));
            }
            "setsockopt" | "getsockopt" => {
                nargs(5)?;
                let (_, e) = self.fd(line, &args[0])?;
                let h = e.handle;
                let level = eval(&args[1]).map_err(|m| fail(line, m))?;
                let optname = eval(&args[2]).map_err(|m| fail(line, m))?;
                return self.sockopt(ev, spec, expect, end, h, level, optname);
            }
            "fcntl" => {
                if args.len() != 2 && args.len() != 3 {
                    return Err(fail(
                        line,
                        format!("fcntl expected 2-3 args but got {}", args.len()),
                    ));
                }
                let (fd, _) = self.fd(line, &args[0])?;
                let cmd = eval(&args[1]).map_err(|m| fail(line, m))?;
                let arg = match args.get(2) {
                    Some(a) => Some(eval(a).map_err(|m| fail(line, m))?),
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
                    _ => return Err(unsupported(format!("fcntl command {cmd}"))),
                };
                return self.complete_int(name, line, expect, end, r);
            }
            "ioctl" => {
                nargs(3)?;
                let (_, e) = self.fd(line, &args[0])?;
                let h = e.handle;
                let request = eval(&args[1]).map_err(|m| fail(line, m))?;
                let q = match request {
                    symbols::SIOCINQ => QueueIoctl::InQ,
                    symbols::SIOCOUTQ => QueueIoctl::OutQ,
                    symbols::SIOCOUTQNSD => QueueIoctl::OutQNotSent,
                    _ => return Err(unsupported(format!("ioctl request {request:#x}"))),
                };
                let now = self.now_instant();
                let r = self.host.queue_size(now, h, q);
                self.complete_int(name, line, expect, end, r.map(|_| 0))?;
                return match r {
                    Ok(v) => check_value(line, &format!("ioctl {q:?}"), &args[2], v),
                    Err(_) => Ok(()),
                };
            }
            "poll" => {
                nargs(3)?;
                let nfds = eval(&args[1]).map_err(|m| fail(line, m))?;
                let timeout = eval(&args[2]).map_err(|m| fail(line, m))?;
                let Expr::List(items) = &args[0] else {
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
                let timeout_at = (timeout >= 0).then(|| start + timeout * 1000);
                (Op::Poll { fds, timeout_at }, true)
            }
            other => return Err(unsupported(format!("system call {other}()"))),
        };
        let (mut op, blocking) = op;
        match self.try_op(&mut op, blocking) {
            Some(r) => self.complete(name, line, expect, end, r, Some(&op)),
            None => {
                let give_up = match (end, &op) {
                    (Some((e, tol)), _) => e + tol,
                    (
                        None,
                        Op::Poll {
                            timeout_at: Some(t), ..
                        },
                    ) => *t,
                    (None, _) => start + micros(self.cfg.max_block),
                };
                self.pending = Some(Pending {
                    line,
                    name: name.to_string(),
                    op,
                    expect,
                    end,
                    give_up,
                });
                Ok(())
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn sockopt(
        &mut self,
        ev: &Event,
        spec: &SyscallSpec,
        expect: Expect,
        end: Option<(Us, Us)>,
        h: H::Handle,
        level: i64,
        optname: i64,
    ) -> Result<(), Failure> {
        let line = ev.line;
        let now = self.now_instant();
        let name = spec.name.as_str();
        let value = &spec.args[3];
        if name == "getsockopt" && level == symbols::SOL_SOCKET && optname == symbols::SO_ERROR {
            let err = self.host.take_error(now, h).map_or(0, Errno::code);
            self.complete_int(name, line, expect, end, Ok(0))?;
            return check_value(line, "getsockopt SO_ERROR", value, err);
        }
        let Some(opt) = sockopt_for(level, optname) else {
            return Err(fail(
                line,
                format!("unsupported by the tapir runner: socket option level {level} name {optname}"),
            ));
        };
        if name == "setsockopt" {
            let v = match value {
                Expr::Braces(_) => linger_value(value).map_err(|m| fail(line, m))?,
                Expr::List(items) if items.len() == 1 => eval(&items[0]).map_err(|m| fail(line, m))?,
                Expr::Int(v) => *v,
                other => {
                    return Err(fail(
                        line,
                        format!("unsupported setsockopt value {}", symbols::describe(other)),
                    ))
                }
            };
            let r = self.host.setsockopt(now, h, opt, v);
            return self.complete_int(name, line, expect, end, r.map(|()| 0));
        }
        let r = self.host.getsockopt(now, h, opt);
        self.complete_int(name, line, expect, end, r.map(|_| 0))?;
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
