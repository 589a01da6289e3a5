//! Values of the symbolic constants scripts use, as on Linux x86-64
//! (packetdrill's `symbols_linux.c`), and evaluation of argument
//! expressions to integers.

use super::host::Errno;
use super::parser::Expr;

pub const O_RDWR: i64 = 2;
/// ioctl requests for queue sizes (Linux asm-generic/ioctls.h, sockios.h).
pub const SIOCINQ: i64 = 0x541B;
pub const SIOCOUTQ: i64 = 0x5411;
pub const SIOCOUTQNSD: i64 = 0x894B;
pub const O_NONBLOCK: i64 = 0x800;
pub const F_GETFD: i64 = 1;
pub const F_SETFD: i64 = 2;
pub const F_GETFL: i64 = 3;
pub const F_SETFL: i64 = 4;
pub const AF_UNSPEC: i64 = 0;
pub const AF_INET: i64 = 2;
pub const SOCK_STREAM: i64 = 1;
pub const SOCK_NONBLOCK: i64 = 0x800;
pub const SOCK_CLOEXEC: i64 = 0x80000;
pub const IPPROTO_TCP: i64 = 6;
pub const SOL_SOCKET: i64 = 1;
pub const MSG_DONTWAIT: i64 = 0x40;
pub const MSG_NOSIGNAL: i64 = 0x4000;
pub const POLLIN: i64 = 0x1;
pub const POLLOUT: i64 = 0x4;
pub const POLLERR: i64 = 0x8;
pub const POLLHUP: i64 = 0x10;
pub const POLLNVAL: i64 = 0x20;
pub const POLLRDNORM: i64 = 0x40;
pub const POLLWRNORM: i64 = 0x100;
pub const POLLRDHUP: i64 = 0x2000;
pub const SO_ERROR: i64 = 4;

const SYMBOLS: &[(&str, i64)] = &[
    ("NULL", 0),
    ("AF_UNSPEC", AF_UNSPEC),
    ("AF_INET", AF_INET),
    ("AF_INET6", 10),
    ("PF_INET", 2),
    ("PF_INET6", 10),
    ("SOCK_STREAM", SOCK_STREAM),
    ("SOCK_DGRAM", 2),
    ("SOCK_RAW", 3),
    ("SOCK_NONBLOCK", SOCK_NONBLOCK),
    ("SOCK_CLOEXEC", SOCK_CLOEXEC),
    ("IPPROTO_IP", 0),
    ("IPPROTO_ICMP", 1),
    ("IPPROTO_TCP", IPPROTO_TCP),
    ("IPPROTO_UDP", 17),
    ("IPPROTO_IPV6", 41),
    ("SOL_IP", 0),
    ("IP_TOS", 1),
    ("IP_TTL", 2),
    ("IP_MTU_DISCOVER", 10),
    ("IP_PMTUDISC_DONT", 0),
    ("IP_PMTUDISC_WANT", 1),
    ("IP_PMTUDISC_DO", 2),
    ("IP_PMTUDISC_PROBE", 3),
    ("SOL_SOCKET", SOL_SOCKET),
    ("SOL_TCP", 6),
    ("SO_DEBUG", 1),
    ("SO_REUSEADDR", 2),
    ("SO_TYPE", 3),
    ("SO_ERROR", SO_ERROR),
    ("SO_DONTROUTE", 5),
    ("SO_BROADCAST", 6),
    ("SO_SNDBUF", 7),
    ("SO_RCVBUF", 8),
    ("SO_KEEPALIVE", 9),
    ("SO_OOBINLINE", 10),
    ("SO_LINGER", 13),
    ("SO_REUSEPORT", 15),
    ("SO_RCVLOWAT", 18),
    ("SO_SNDLOWAT", 19),
    ("SO_RCVTIMEO", 20),
    ("SO_SNDTIMEO", 21),
    ("SO_MAX_PACING_RATE", 47),
    ("SO_ZEROCOPY", 60),
    ("TCP_NODELAY", 1),
    ("TCP_MAXSEG", 2),
    ("TCP_CORK", 3),
    ("TCP_KEEPIDLE", 4),
    ("TCP_KEEPINTVL", 5),
    ("TCP_KEEPCNT", 6),
    ("TCP_SYNCNT", 7),
    ("TCP_LINGER2", 8),
    ("TCP_DEFER_ACCEPT", 9),
    ("TCP_WINDOW_CLAMP", 10),
    ("TCP_INFO", 11),
    ("TCP_QUICKACK", 12),
    ("TCP_CONGESTION", 13),
    ("TCP_MD5SIG", 14),
    ("TCP_THIN_LINEAR_TIMEOUTS", 16),
    ("TCP_USER_TIMEOUT", 18),
    ("TCP_FASTOPEN", 23),
    ("TCP_TIMESTAMP", 24),
    ("TCP_NOTSENT_LOWAT", 25),
    ("TCP_FASTOPEN_CONNECT", 30),
    ("SIOCINQ", SIOCINQ),
    ("FIONREAD", SIOCINQ),
    ("SIOCOUTQ", SIOCOUTQ),
    ("TIOCOUTQ", SIOCOUTQ),
    ("SIOCOUTQNSD", SIOCOUTQNSD),
    ("F_DUPFD", 0),
    ("F_GETFD", F_GETFD),
    ("F_SETFD", F_SETFD),
    ("F_GETFL", F_GETFL),
    ("F_SETFL", F_SETFL),
    ("FD_CLOEXEC", 1),
    ("O_RDONLY", 0),
    ("O_WRONLY", 1),
    ("O_RDWR", O_RDWR),
    ("O_NONBLOCK", O_NONBLOCK),
    ("O_NDELAY", O_NONBLOCK),
    ("SHUT_RD", 0),
    ("SHUT_WR", 1),
    ("SHUT_RDWR", 2),
    ("MSG_OOB", 0x1),
    ("MSG_PEEK", 0x2),
    ("MSG_DONTROUTE", 0x4),
    ("MSG_TRUNC", 0x20),
    ("MSG_DONTWAIT", MSG_DONTWAIT),
    ("MSG_EOR", 0x80),
    ("MSG_WAITALL", 0x100),
    ("MSG_ERRQUEUE", 0x2000),
    ("MSG_NOSIGNAL", MSG_NOSIGNAL),
    ("MSG_MORE", 0x8000),
    ("MSG_ZEROCOPY", 0x4000000),
    ("MSG_FASTOPEN", 0x20000000),
    ("POLLIN", POLLIN),
    ("POLLPRI", 0x2),
    ("POLLOUT", POLLOUT),
    ("POLLERR", POLLERR),
    ("POLLHUP", POLLHUP),
    ("POLLNVAL", POLLNVAL),
    ("POLLRDNORM", POLLRDNORM),
    ("POLLRDBAND", 0x80),
    ("POLLWRNORM", POLLWRNORM),
    ("POLLWRBAND", 0x200),
    ("POLLMSG", 0x400),
    ("POLLRDHUP", POLLRDHUP),
    ("FIONREAD", 0x541B),
    ("SIOCINQ", 0x541B),
    ("SIOCOUTQ", 0x5411),
];

/// The value of a symbol, including errno names (`ECONNREFUSED` is 111).
pub fn symbol(name: &str) -> Option<i64> {
    SYMBOLS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, v)| v)
        .or_else(|| Errno::from_name(name).map(Errno::code))
}

/// Evaluates an expression to an integer: literals, symbols, `a|b`,
/// `htons(n)` (ports stay in host order) and `inet_addr("a.b.c.d")`.
pub fn eval(e: &Expr) -> Result<i64, String> {
    match e {
        Expr::Int(v) => Ok(*v),
        Expr::Word(w) => symbol(w).ok_or_else(|| format!("unknown symbol '{w}'")),
        Expr::Or(a, b) => Ok(eval(a)? | eval(b)?),
        Expr::Call(f, args) if (f == "htons" || f == "htonl") && args.len() == 1 => eval(&args[0]),
        Expr::Call(f, args) if f == "inet_addr" && args.len() == 1 => match &args[0] {
            Expr::Str(s) => s
                .parse::<core::net::Ipv4Addr>()
                .map(|a| i64::from(u32::from(a)))
                .map_err(|_| format!("bad IPv4 address \"{s}\"")),
            _ => Err("inet_addr() takes a string".into()),
        },
        other => Err(format!(
            "expected an integer expression, found {}",
            describe(other)
        )),
    }
}

/// A short description of an expression for error messages.
pub fn describe(e: &Expr) -> String {
    match e {
        Expr::Ellipsis => "...".into(),
        Expr::Int(v) => v.to_string(),
        Expr::Word(w) => w.clone(),
        Expr::Str(s) => format!("\"{s}\""),
        Expr::List(_) => "a [list]".into(),
        Expr::Braces(_) => "a {struct}".into(),
        Expr::Or(..) => "a|b".into(),
        Expr::Assign(..) => "name=value".into(),
        Expr::Call(f, _) => format!("{f}(...)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluates() {
        let or = Expr::Or(
            Box::new(Expr::Word("O_RDWR".into())),
            Box::new(Expr::Word("O_NONBLOCK".into())),
        );
        assert_eq!(eval(&or), Ok(0x802));
        assert_eq!(eval(&Expr::Word("EWOULDBLOCK".into())), Ok(11));
        assert_eq!(eval(&Expr::Call("htons".into(), vec![Expr::Int(8080)])), Ok(8080));
        assert_eq!(
            eval(&Expr::Call(
                "inet_addr".into(),
                vec![Expr::Str("192.0.2.1".into())]
            )),
            Ok(0xc000_0201)
        );
        assert!(eval(&Expr::Word("NO_SUCH".into())).is_err());
        assert!(eval(&Expr::Ellipsis).is_err());
    }
}
