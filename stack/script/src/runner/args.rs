//! Syscall arguments in script syntax (sockaddr, iovec, pollfd, linger)
//! and poll's revents.

use super::*;

/// revents as Linux computes them from the socket's state.
pub(super) fn revents(r: Readiness, events: i64) -> i64 {
    let mut m = 0;
    if r.readable {
        m |= symbols::POLLIN | symbols::POLLRDNORM;
    }
    if r.writable {
        m |= symbols::POLLOUT | symbols::POLLWRNORM;
    }
    if r.read_hangup {
        m |= symbols::POLLIN | symbols::POLLRDNORM | symbols::POLLRDHUP;
    }
    if r.error {
        m |= symbols::POLLERR;
    }
    if r.hangup {
        m |= symbols::POLLHUP;
    }
    m & (events | symbols::POLLERR | symbols::POLLHUP)
}

pub(super) fn poll_bits(v: i64) -> String {
    let names = [
        (symbols::POLLIN, "POLLIN"),
        (0x2, "POLLPRI"),
        (symbols::POLLOUT, "POLLOUT"),
        (symbols::POLLERR, "POLLERR"),
        (symbols::POLLHUP, "POLLHUP"),
        (symbols::POLLNVAL, "POLLNVAL"),
        (symbols::POLLRDNORM, "POLLRDNORM"),
        (symbols::POLLWRNORM, "POLLWRNORM"),
        (symbols::POLLRDHUP, "POLLRDHUP"),
    ];
    let parts: Vec<&str> = names
        .iter()
        .filter(|(b, _)| v & b != 0)
        .map(|&(_, n)| n)
        .collect();
    if parts.is_empty() {
        "0".into()
    } else {
        parts.join("|")
    }
}

/// `{sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr("...")}`:
/// the port. The address is ignored: the runner knows one peer.
pub(super) fn sockaddr_port(e: &Expr) -> Result<u16, String> {
    let Expr::Braces(fields) = e else {
        return Err(format!(
            "expected ... or a sockaddr, found {}",
            symbols::describe(e)
        ));
    };
    let mut port = None;
    for f in fields {
        if let Expr::Assign(k, v) = f {
            match (&**k, &**v) {
                (Expr::Word(k), v) if k == "sin_port" => port = Some(eval(v)?),
                (Expr::Word(k), v) if k == "sa_family" || k == "sin_family" => {
                    let fam = eval(v)?;
                    if fam != symbols::AF_INET {
                        return Err(format!("address family {fam} (only AF_INET)"));
                    }
                }
                _ => {}
            }
        }
    }
    let port = port.ok_or("sockaddr without sin_port")?;
    u16::try_from(port).map_err(|_| format!("port {port} out of range"))
}

/// `[{..., 10}, {..., 20}]`: the iovec lengths.
pub(super) fn iovec_lens(e: &Expr) -> Result<Vec<i64>, String> {
    let Expr::List(items) = e else {
        return Err("expected an iovec [list]".into());
    };
    items
        .iter()
        .map(|i| match i {
            Expr::Braces(f) if f.len() == 2 && f[0] == Expr::Ellipsis => eval(&f[1]),
            _ => Err("expected iovec entries like {..., 10}".into()),
        })
        .collect()
}

/// `{fd=3, events=POLLIN, revents=POLLOUT}`: (fd, events, revents).
pub(super) fn pollfd(e: &Expr) -> Result<(Fd, i64, i64), String> {
    let Expr::Braces(fields) = e else {
        return Err("expected {fd=..., events=...}".into());
    };
    let (mut fd, mut events, mut rev) = (None, None, 0);
    for f in fields {
        let Expr::Assign(k, v) = f else {
            return Err("expected name=value in a pollfd".into());
        };
        match &**k {
            Expr::Word(k) if k == "fd" => fd = Some(eval(v)? as Fd),
            Expr::Word(k) if k == "events" => events = Some(eval(v)?),
            Expr::Word(k) if k == "revents" => rev = eval(v)?,
            _ => return Err("unknown pollfd field".into()),
        }
    }
    Ok((
        fd.ok_or("pollfd without fd")?,
        events.ok_or("pollfd without events")?,
        rev,
    ))
}

/// `{onoff=1, linger=0}` as a [`SockOpt::Linger`] value.
pub(super) fn linger_value(e: &Expr) -> Result<i64, String> {
    let Expr::Braces(fields) = e else {
        return Err("expected {onoff=..., linger=...}".into());
    };
    let (mut onoff, mut secs) = (0, 0);
    for f in fields {
        match f {
            Expr::Assign(k, v) if **k == Expr::Word("onoff".into()) => onoff = eval(v)?,
            Expr::Assign(k, v) if **k == Expr::Word("linger".into()) => secs = eval(v)?,
            _ => return Err("expected {onoff=..., linger=...}".into()),
        }
    }
    Ok(if onoff == 0 { -1 } else { secs })
}

/// Compares `[N]` (or `[...]`) with a value a call returned.
pub(super) fn check_value(line: usize, what: &str, want: &Expr, actual: i64) -> Result<(), Failure> {
    let want = match want {
        Expr::List(items) if items.len() == 1 => &items[0],
        other => other,
    };
    if *want == Expr::Ellipsis {
        return Ok(());
    }
    let w = eval(want).map_err(|m| fail(line, m))?;
    if w != actual {
        return Err(fail(
            line,
            format!("Bad {what} value: expected {w} actual {actual}"),
        ));
    }
    Ok(())
}

pub(super) fn sockopt_for(level: i64, name: i64) -> Option<SockOpt> {
    Some(match (level, name) {
        (1, 2) => SockOpt::ReuseAddr,
        (1, 15) => SockOpt::ReusePort,
        (1, 9) => SockOpt::KeepAlive,
        (1, 7) => SockOpt::SndBuf,
        (1, 8) => SockOpt::RcvBuf,
        (1, 13) => SockOpt::Linger,
        (6, 1) => SockOpt::NoDelay,
        (6, 2) => SockOpt::MaxSeg,
        (6, 3) => SockOpt::Cork,
        (6, 4) => SockOpt::KeepIdle,
        (6, 5) => SockOpt::KeepIntvl,
        (6, 6) => SockOpt::KeepCnt,
        (6, 7) => SockOpt::SynCount,
        (6, 8) => SockOpt::Linger2,
        (6, 9) => SockOpt::DeferAccept,
        (6, 10) => SockOpt::WindowClamp,
        (6, 12) => SockOpt::QuickAck,
        (6, 18) => SockOpt::UserTimeout,
        (6, 25) => SockOpt::NotSentLowat,
        (6, 13) => SockOpt::Congestion,
        (0, 1) => SockOpt::IpTos,
        (0, 10) => SockOpt::IpMtuDiscover,
        _ => return None,
    })
}
