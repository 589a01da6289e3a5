//! A blocking UDP socket over a running tapir stack, shaped like
//! [`std::net::UdpSocket`] so that code written for the kernel's sockets
//! ports by changing an import.
//!
//! Each call locks the stack, does one socket operation and wakes the
//! driver; calls that must wait for the network (a receive on an empty
//! queue, a send into a full transmit queue) park the thread until the
//! driver reports a change on this socket, bounded by the socket's
//! timeouts. As with std on Linux, a
//! timed-out call fails with [`io::ErrorKind::WouldBlock`].
//!
//! tapir speaks IPv4 only: IPv6 addresses are refused with
//! [`io::ErrorKind::Unsupported`].

use std::io;
use std::net::{SocketAddr, SocketAddrV4, ToSocketAddrs};
use std::time::Duration;

use tapir_stack::{SocketHandle, UdpBindError, UdpRecvError, UdpSendError};

use crate::driver::{Side, StackHandle};
use crate::sockerr::{check_timeout, closed, socket_error, v4};

/// A UDP socket on a tapir stack. Closed on drop.
pub struct UdpSocket {
    stack: StackHandle,
    handle: SocketHandle,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    nonblocking: bool,
    /// The default peer set by [`connect`](Self::connect).
    peer: std::sync::Mutex<Option<SocketAddrV4>>,
}

impl UdpSocket {
    /// Bind to `addr` (port 0 picks an ephemeral port; the address must be
    /// the stack's own or unspecified). Pass a [`DriverHandle`](crate::driver::DriverHandle)
    /// or a [`StackHandle`].
    pub fn bind(stack: &StackHandle, addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        let mut last = None;
        for addr in addr.to_socket_addrs()? {
            let a = match v4(addr) {
                Ok(a) => a,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            match stack.try_with(|i| i.udp_bind(a))? {
                Ok(handle) => {
                    return Ok(UdpSocket {
                        stack: stack.clone(),
                        handle,
                        read_timeout: None,
                        write_timeout: None,
                        nonblocking: false,
                        peer: std::sync::Mutex::new(None),
                    })
                }
                Err(e) => last = Some(bind_error(e, a)),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no addresses to bind to")))
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stack
            .try_with(|i| i.udp_local_addr(self.handle))?
            .map(SocketAddr::V4)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "socket is closed"))
    }

    /// IP_TOS of the datagrams this socket sends (as socket2's `set_tos`):
    /// the low byte, ECN field included.
    pub fn set_tos(&self, tos: u32) -> io::Result<()> {
        if self.stack.try_with(|i| i.udp_set_tos(self.handle, tos as u8))? {
            Ok(())
        } else {
            Err(io::Error::new(io::ErrorKind::NotConnected, "socket is closed"))
        }
    }

    /// The socket's IP_TOS.
    pub fn tos(&self) -> io::Result<u32> {
        self.stack
            .try_with(|i| i.udp_tos(self.handle))?
            .map(u32::from)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "socket is closed"))
    }

    /// Send one datagram to `addr`; waits (up to the write timeout) while
    /// the stack's transmit queue is full. Returns the bytes sent, always
    /// all of `buf`.
    pub fn send_to(&self, buf: &[u8], addr: impl ToSocketAddrs) -> io::Result<usize> {
        let to = first_v4(addr)?;
        let send = |i: &mut tapir_stack::Interface| match i.udp_send_to(self.handle, buf, to) {
            Err(UdpSendError::WouldBlock) => None,
            other => Some(other),
        };
        let result = if self.nonblocking {
            self.stack
                .try_with(send)?
                .unwrap_or(Err(UdpSendError::WouldBlock))
        } else {
            self.stack.wait_io(
                self.handle,
                Side::Write,
                self.write_timeout,
                io::ErrorKind::WouldBlock,
                send,
            )?
        };
        result.map(|()| buf.len()).map_err(|e| send_error(e, to))
    }

    /// Receive one datagram; waits (up to the read timeout) for one to
    /// arrive. Returns the bytes copied into `buf` and the sender; the rest
    /// of a datagram longer than `buf` is discarded, as with std.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let cap = buf.len();
        let mut recv = |i: &mut tapir_stack::Interface| match i.udp_recv_from(self.handle, buf) {
            Err(UdpRecvError::WouldBlock) => None,
            other => Some(other),
        };
        let result = if self.nonblocking {
            self.stack
                .try_with(&mut recv)?
                .unwrap_or(Err(UdpRecvError::WouldBlock))
        } else {
            self.stack.wait_io(
                self.handle,
                Side::Read,
                self.read_timeout,
                io::ErrorKind::WouldBlock,
                recv,
            )?
        };
        match result {
            // The stack reports the datagram's full length; std reports
            // what was copied.
            Ok((len, from)) => Ok((len.min(cap), SocketAddr::V4(from))),
            Err(UdpRecvError::WouldBlock) => Err(io::ErrorKind::WouldBlock.into()),
            Err(UdpRecvError::BadHandle) => Err(closed()),
        }
    }

    /// Set the default peer (as `connect(2)` on a UDP socket): [`send`](Self::send)
    /// goes there, and [`recv`](Self::recv) takes only its datagrams,
    /// discarding others, as the kernel does for a connected socket.
    pub fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        let to = first_v4(addr)?;
        *self.peer.lock().unwrap_or_else(|e| e.into_inner()) = Some(to);
        Ok(())
    }

    /// The peer set by [`connect`](Self::connect).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.connected_peer().map(SocketAddr::V4)
    }

    fn connected_peer(&self) -> io::Result<SocketAddrV4> {
        self.peer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "UDP socket is not connected"))
    }

    /// Send one datagram to the connected peer.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        let to = self.connected_peer()?;
        self.send_to(buf, to)
    }

    /// Receive one datagram from the connected peer; datagrams from anyone
    /// else are discarded.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let peer = self.connected_peer()?;
        let cap = buf.len();
        // Discarding another sender's datagram changes nothing the driver
        // must act on, so returning None after it cannot make the two wake
        // each other.
        let recv = |i: &mut tapir_stack::Interface| loop {
            match i.udp_recv_from(self.handle, buf) {
                Ok((len, from)) if from == peer => return Some(Ok(len.min(cap))),
                Ok(_) => continue,
                Err(UdpRecvError::WouldBlock) => return None,
                Err(UdpRecvError::BadHandle) => return Some(Err(closed())),
            }
        };
        if self.nonblocking {
            self.stack
                .try_with(recv)?
                .unwrap_or_else(|| Err(io::ErrorKind::WouldBlock.into()))
        } else {
            self.stack.wait_io(
                self.handle,
                Side::Read,
                self.read_timeout,
                io::ErrorKind::WouldBlock,
                recv,
            )?
        }
    }

    /// Like [`recv_from`](Self::recv_from) but also returns the datagram's
    /// full length, which exceeds the copied length when it was truncated.
    pub fn recv_from_full(&self, buf: &mut [u8]) -> io::Result<(usize, usize, SocketAddr)> {
        let cap = buf.len();
        let recv = |i: &mut tapir_stack::Interface| match i.udp_recv_from(self.handle, buf) {
            Err(UdpRecvError::WouldBlock) => None,
            other => Some(other),
        };
        match self.stack.wait_io(
            self.handle,
            Side::Read,
            self.read_timeout,
            io::ErrorKind::WouldBlock,
            recv,
        )? {
            Ok((len, from)) => Ok((len.min(cap), len, SocketAddr::V4(from))),
            Err(_) => Err(closed()),
        }
    }

    /// Timeout for [`recv_from`](Self::recv_from); `None` blocks forever.
    /// A zero duration is refused, as std does.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.read_timeout = check_timeout(timeout)?;
        Ok(())
    }

    /// Timeout for [`send_to`](Self::send_to) waiting on a full queue.
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.write_timeout = check_timeout(timeout)?;
        Ok(())
    }

    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.read_timeout)
    }

    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.write_timeout)
    }

    /// In non-blocking mode calls that would wait fail with `WouldBlock`.
    pub fn set_nonblocking(&mut self, nonblocking: bool) -> io::Result<()> {
        self.nonblocking = nonblocking;
        Ok(())
    }

    /// Take the latest error the network reported for this socket (an ICMP
    /// unreachable, say), like `SO_ERROR`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        Ok(self
            .stack
            .try_with(|i| i.udp_take_error(self.handle))?
            .map(socket_error))
    }

    /// The stack's handle for this socket, for use with
    /// [`StackHandle::with`].
    pub fn handle(&self) -> SocketHandle {
        self.handle
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        // After shutdown there is no stack to close it in, and nothing to do.
        let h = self.handle;
        self.stack.close_socket(h, |i| i.udp_close(h));
    }
}

impl std::fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpSocket")
            .field("handle", &self.handle)
            .field("local", &self.local_addr().ok())
            .finish()
    }
}

pub(crate) fn first_v4(addr: impl ToSocketAddrs) -> io::Result<SocketAddrV4> {
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        match v4(a) {
            Ok(a) => return Ok(a),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no addresses to send data to")))
}

pub(crate) fn bind_error(e: UdpBindError, a: SocketAddrV4) -> io::Error {
    let kind = match e {
        UdpBindError::AddrInUse => io::ErrorKind::AddrInUse,
        UdpBindError::AddrNotAvailable => io::ErrorKind::AddrNotAvailable,
        UdpBindError::NoFreePort => io::ErrorKind::AddrInUse,
        UdpBindError::TooManySockets => io::ErrorKind::OutOfMemory,
    };
    io::Error::new(kind, format!("bind {a}: {e}"))
}

pub(crate) fn send_error(e: UdpSendError, to: SocketAddrV4) -> io::Error {
    let kind = match e {
        UdpSendError::BadHandle => io::ErrorKind::NotConnected,
        UdpSendError::TooLarge => io::ErrorKind::InvalidInput,
        UdpSendError::InvalidDestination => io::ErrorKind::InvalidInput,
        UdpSendError::NoRoute => io::ErrorKind::HostUnreachable,
        UdpSendError::WouldBlock => io::ErrorKind::WouldBlock,
    };
    io::Error::new(kind, format!("send to {to}: {e}"))
}
