//! Why a TCP call failed: one enum per call, each with only the failures
//! that call can have (the errno a BSD socket would give is noted).

use crate::socket::SocketError;
use core::fmt;

/// An error enum with a Display text per variant; a variant that wraps
/// another error names its binding (`Failed(e: SocketError)`) and shows
/// it after the text (or alone, for an empty text).
macro_rules! error_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident $(($b:ident: $t:ty))? => $text:expr,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vm])* $v $(($t))?,)*
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $($name::$v $(($b))? => error_enum!(@text f, $text $(, $b)?),)*
                }
            }
        }

        impl std::error::Error for $name {}
    };
    (@text $f:ident, $text:expr, $b:ident) => {
        if $text.is_empty() {
            write!($f, "{}", $b)
        } else {
            write!($f, "{}: {}", $text, $b)
        }
    };
    (@text $f:ident, $text:expr) => {
        $f.write_str($text)
    };
}

error_enum! {
    /// `tcp_socket` failed.
    TcpSocketError {
        /// The configured socket limit is reached (ENOBUFS).
        TooManySockets => "socket limit reached",
    }
}

error_enum! {
    /// `tcp_bind` failed.
    TcpBindError {
        /// Not a TCP socket (EBADF).
        BadHandle => "not an open TCP socket",
        /// The address is not ours (EADDRNOTAVAIL).
        AddrNotAvailable => "address not available on this interface",
        /// No ephemeral port is free (EADDRNOTAVAIL).
        NoFreePort => "no free ephemeral port",
        /// The port is taken (EADDRINUSE).
        AddrInUse => "address in use",
        /// The socket is bound already (EINVAL).
        AlreadyBound => "socket already bound",
        /// The socket is listening or connected (EINVAL).
        AlreadyConnected => "socket already listening or connected",
    }
}

error_enum! {
    /// `tcp_listen_socket` or `tcp_listen` failed.
    TcpListenError {
        /// Not a TCP socket (EBADF).
        BadHandle => "not an open TCP socket",
        /// `listen` before `bind` (EINVAL here; Linux binds an ephemeral port).
        NotBound => "socket not bound",
        /// The socket is connected (EINVAL).
        AlreadyConnected => "socket already connected",
        /// `tcp_listen`'s bind failed.
        Bind(e: TcpBindError) => "bind",
        /// The configured socket limit is reached (ENOBUFS).
        TooManySockets => "socket limit reached",
    }
}

error_enum! {
    /// `tcp_accept` failed.
    TcpAcceptError {
        /// Not a listening TCP socket (EINVAL).
        BadHandle => "not a listening TCP socket",
        /// No connection is waiting (EAGAIN); an event follows when one is.
        WouldBlock => "no connection to accept",
    }
}

error_enum! {
    /// `tcp_connect` or `tcp_connect_socket` failed.
    TcpConnectError {
        /// Not a TCP socket (EBADF).
        BadHandle => "not an open TCP socket",
        /// Destination address or port unusable (EINVAL).
        InvalidAddress => "invalid address",
        /// Off-link and no gateway (ENETUNREACH).
        NoRoute => "no route to host",
        /// The 4-tuple is taken (EADDRINUSE).
        AddrInUse => "address in use",
        /// No ephemeral port is free for this destination (EADDRNOTAVAIL).
        NoFreePort => "no free ephemeral port",
        /// A connect is under way (EALREADY); `Event::Connected` or an
        /// error follows.
        InProgress => "connection in progress",
        /// The socket is listening or connected already (EISCONN).
        AlreadyConnected => "socket already listening or connected",
        /// The configured socket limit is reached (ENOBUFS).
        TooManySockets => "socket limit reached",
    }
}

error_enum! {
    /// `tcp_send` or `tcp_send_with` failed.
    TcpSendError {
        /// Not a TCP connection (EBADF).
        BadHandle => "not an open TCP connection",
        /// No room in the send buffer, or the handshake is not done
        /// (EAGAIN); `Event::Writable` follows.
        WouldBlock => "operation would block",
        /// Never connected (ENOTCONN).
        NotConnected => "not connected",
        /// Writing after shutdown or close (EPIPE).
        Closed => "socket closed for writing",
        /// The connection failed: refused, reset, timed out or unreachable.
        Failed(e: SocketError) => "",
    }
}

error_enum! {
    /// `tcp_recv`, `tcp_peek` or `tcp_recv_with` failed.
    TcpRecvError {
        /// Not a TCP connection (EBADF).
        BadHandle => "not an open TCP connection",
        /// Nothing to read yet (EAGAIN); `Event::Readable` follows.
        WouldBlock => "operation would block",
        /// The connection failed: refused, reset, timed out or unreachable.
        Failed(e: SocketError) => "",
    }
}

error_enum! {
    /// `tcp_shutdown` failed.
    TcpShutdownError {
        /// Not connected (ENOTCONN).
        NotConnected => "not connected",
    }
}

error_enum! {
    /// `tcp_set_option` failed.
    TcpOptionError {
        /// Not a TCP socket (EBADF).
        BadHandle => "not an open TCP socket",
        /// The value is outside the option's range (EINVAL), e.g. a
        /// keepalive time of zero.
        InvalidValue => "option value out of range",
    }
}

impl From<TcpSocketError> for TcpListenError {
    fn from(_: TcpSocketError) -> Self {
        TcpListenError::TooManySockets
    }
}

impl From<TcpBindError> for TcpListenError {
    fn from(e: TcpBindError) -> Self {
        TcpListenError::Bind(e)
    }
}

impl From<TcpSocketError> for TcpConnectError {
    fn from(_: TcpSocketError) -> Self {
        TcpConnectError::TooManySockets
    }
}
