//! Why a TCP call failed.

use crate::socket::SocketError;
use core::fmt;

/// Why a TCP call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpError {
    /// Not an open TCP socket (or the wrong kind for the call).
    BadHandle,
    /// Nothing to do now; an event follows when there is (EAGAIN).
    WouldBlock,
    /// The port (or 4-tuple) is taken (EADDRINUSE).
    AddrInUse,
    /// The address is not ours (EADDRNOTAVAIL).
    AddrNotAvailable,
    /// No ephemeral port is free for this destination.
    NoFreePort,
    /// Off-link and no gateway (ENETUNREACH).
    NoRoute,
    /// Destination address or port unusable (EINVAL).
    InvalidAddress,
    /// The socket is listening, connecting or connected already (EISCONN / EINVAL).
    AlreadyConnected,
    /// Not connected (ENOTCONN).
    NotConnected,
    /// Writing after shutdown or close (EPIPE).
    Closed,
    /// The configured socket limit is reached.
    TooManySockets,
    /// The connection failed: refused, reset, timed out or unreachable.
    Failed(SocketError),
}

impl fmt::Display for TcpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TcpError::BadHandle => f.write_str("not an open TCP socket of that kind"),
            TcpError::WouldBlock => f.write_str("operation would block"),
            TcpError::AddrInUse => f.write_str("address in use"),
            TcpError::AddrNotAvailable => f.write_str("address not available on this interface"),
            TcpError::NoFreePort => f.write_str("no free ephemeral port"),
            TcpError::NoRoute => f.write_str("no route to host"),
            TcpError::InvalidAddress => f.write_str("invalid address"),
            TcpError::AlreadyConnected => f.write_str("socket already listening or connected"),
            TcpError::NotConnected => f.write_str("not connected"),
            TcpError::Closed => f.write_str("socket closed for writing"),
            TcpError::TooManySockets => f.write_str("socket limit reached"),
            TcpError::Failed(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for TcpError {}
