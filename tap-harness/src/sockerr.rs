//! What the blocking sockets share: IPv4-only addresses, timeouts, and the
//! `io::ErrorKind` a std::net user expects for each network error.

use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::time::Duration;
use tapir_stack::SocketError;

pub(crate) fn v4(addr: SocketAddr) -> io::Result<SocketAddrV4> {
    match addr {
        SocketAddr::V4(a) => Ok(a),
        SocketAddr::V6(a) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("{a}: tapir speaks IPv4 only"),
        )),
    }
}

pub(crate) fn check_timeout(t: Option<Duration>) -> io::Result<Option<Duration>> {
    match t {
        Some(d) if d.is_zero() => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cannot set a 0 duration timeout",
        )),
        other => Ok(other),
    }
}

pub(crate) fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "socket is closed")
}

pub(crate) fn socket_error(e: SocketError) -> io::Error {
    use tapir_stack::wire::UnreachableCode;
    let kind = match e {
        SocketError::Unreachable { code, .. } => match code {
            UnreachableCode::Port | UnreachableCode::Protocol => io::ErrorKind::ConnectionRefused,
            UnreachableCode::Net => io::ErrorKind::NetworkUnreachable,
            UnreachableCode::Host => io::ErrorKind::HostUnreachable,
            _ => io::ErrorKind::HostUnreachable,
        },
        SocketError::TimeExceeded { .. } => io::ErrorKind::HostUnreachable,
        SocketError::ParameterProblem { .. } => io::ErrorKind::InvalidData,
        SocketError::ConnectionRefused => io::ErrorKind::ConnectionRefused,
        SocketError::ConnectionReset => io::ErrorKind::ConnectionReset,
        SocketError::TimedOut => io::ErrorKind::TimedOut,
    };
    io::Error::new(kind, e)
}
