//! Async UDP, as `tokio::net::UdpSocket`. See [the module doc](super).

use std::io;
use std::net::{SocketAddr, SocketAddrV4, ToSocketAddrs};
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};

use tapir_stack::{Interface, SocketHandle, UdpRecvError, UdpSendError};
use tokio::io::{Interest, ReadBuf, Ready};

use super::Waiter;
use crate::driver::{Side, Slot, StackHandle};
use crate::sockerr::{closed, socket_error, v4};
use crate::udp::{bind_error, first_v4, send_error};

/// A UDP socket on a tapir stack, as `tokio::net::UdpSocket`. Closed on
/// drop. All methods take `&self`, so it can be shared (in an `Arc`) by a
/// receiving and a sending task.
pub struct UdpSocket {
    stack: StackHandle,
    handle: SocketHandle,
    /// The default peer set by [`connect`](Self::connect).
    peer: Mutex<Option<SocketAddrV4>>,
    /// Waker slots of the `poll_*` methods, one per side.
    read_token: u64,
    write_token: u64,
}

type Received = Result<(usize, SocketAddrV4), UdpRecvError>;

impl UdpSocket {
    /// Bind to `addr` (port 0 picks an ephemeral port; the address must be
    /// the stack's own or unspecified). `async` only to match tokio.
    pub async fn bind(stack: &StackHandle, addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
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
                        peer: Mutex::new(None),
                        read_token: stack.token(),
                        write_token: stack.token(),
                    })
                }
                Err(e) => last = Some(bind_error(e, a)),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no addresses to bind to")))
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        let h = self.handle;
        self.stack
            .try_with(|i| i.udp_local_addr(h))?
            .map(SocketAddr::V4)
            .ok_or_else(closed)
    }

    /// IP_TOS of the datagrams this socket sends (as tokio's
    /// `UdpSocket::set_tos_v4`): the low byte, ECN field included.
    pub fn set_tos_v4(&self, tos: u32) -> io::Result<()> {
        let h = self.handle;
        if self.stack.try_with(|i| i.udp_set_tos(h, tos as u8))? {
            Ok(())
        } else {
            Err(closed())
        }
    }

    /// The socket's IP_TOS.
    pub fn tos_v4(&self) -> io::Result<u32> {
        let h = self.handle;
        self.stack
            .try_with(|i| i.udp_tos(h))?
            .map(u32::from)
            .ok_or_else(closed)
    }

    /// Set the default peer: [`send`](Self::send) goes there and
    /// [`recv`](Self::recv) takes only its datagrams, discarding others, as
    /// the kernel does for a connected socket.
    pub async fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        let to = first_v4(addr)?;
        *self.peer.lock().unwrap_or_else(PoisonError::into_inner) = Some(to);
        Ok(())
    }

    /// The peer set by [`connect`](Self::connect).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.connected_peer().map(SocketAddr::V4)
    }

    fn connected_peer(&self) -> io::Result<SocketAddrV4> {
        self.peer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "UDP socket is not connected"))
    }

    // ----- sending -----

    fn send_in(&self, i: &mut Interface, buf: &[u8], to: SocketAddrV4) -> Option<io::Result<usize>> {
        match i.udp_send_to(self.handle, buf, to) {
            Err(UdpSendError::WouldBlock) => None,
            Ok(()) => Some(Ok(buf.len())),
            Err(e) => Some(Err(send_error(e, to))),
        }
    }

    /// Send one datagram to `target`; waits while the stack's transmit
    /// queue is full. Cancel safe: the datagram is queued whole or not.
    pub async fn send_to(&self, buf: &[u8], target: impl ToSocketAddrs) -> io::Result<usize> {
        let to = first_v4(target)?;
        let w = Waiter::new(&self.stack, self.handle, Side::Write);
        w.wait(|i| self.send_in(i, buf, to)).await?
    }

    /// Send to the connected peer.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        let to = self.connected_peer()?;
        self.send_to(buf, to).await
    }

    /// Send without waiting: `WouldBlock` when the transmit queue is full.
    pub fn try_send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        let to = v4(target)?;
        self.stack
            .poll_slot(Slot::Socket(self.handle, Side::Write), None, |i| {
                self.send_in(i, buf, to)
            })?
            .unwrap_or_else(|| Err(io::ErrorKind::WouldBlock.into()))
    }

    /// [`try_send_to`](Self::try_send_to) the connected peer.
    pub fn try_send(&self, buf: &[u8]) -> io::Result<usize> {
        let to = self.connected_peer()?;
        self.try_send_to(buf, SocketAddr::V4(to))
    }

    /// Poll form of [`send_to`](Self::send_to); only the last task to poll
    /// the sending side is woken.
    pub fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        let to = match v4(target) {
            Ok(to) => to,
            Err(e) => return Poll::Ready(Err(e)),
        };
        self.stack
            .poll_io(cx, self.handle, Side::Write, self.write_token, |i| {
                self.send_in(i, buf, to)
            })
            .map(|r| r.and_then(|r| r))
    }

    /// Poll form of [`send`](Self::send).
    pub fn poll_send(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.connected_peer() {
            Ok(to) => self.poll_send_to(cx, buf, SocketAddr::V4(to)),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    // ----- receiving -----

    /// Take the next datagram, from anyone or (`only`) from one peer,
    /// discarding others' as a connected kernel socket never sees them.
    /// Discarding changes nothing the driver must act on, so returning
    /// `None` after it is within the waiting rule.
    fn recv_in(&self, i: &mut Interface, buf: &mut [u8], only: Option<SocketAddrV4>) -> Option<Received> {
        loop {
            match i.udp_recv_from(self.handle, buf) {
                Err(UdpRecvError::WouldBlock) => return None,
                Ok((_, from)) if only.is_some_and(|p| p != from) => continue,
                other => return Some(other),
            }
        }
    }

    fn received(cap: usize, r: Received) -> io::Result<(usize, SocketAddr)> {
        match r {
            // The stack reports the datagram's full length; tokio, what was
            // copied (the rest of a longer datagram is discarded).
            Ok((len, from)) => Ok((len.min(cap), SocketAddr::V4(from))),
            Err(UdpRecvError::WouldBlock) => Err(io::ErrorKind::WouldBlock.into()),
            Err(UdpRecvError::BadHandle) => Err(closed()),
        }
    }

    /// Receive one datagram and its sender. Cancel safe.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let cap = buf.len();
        let w = Waiter::new(&self.stack, self.handle, Side::Read);
        let r = w.wait(|i| self.recv_in(i, buf, None)).await?;
        Self::received(cap, r)
    }

    /// Receive one datagram from the connected peer. Cancel safe.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let peer = self.connected_peer()?;
        let cap = buf.len();
        let w = Waiter::new(&self.stack, self.handle, Side::Read);
        let r = w.wait(|i| self.recv_in(i, buf, Some(peer))).await?;
        Self::received(cap, r).map(|(n, _)| n)
    }

    /// Receive without waiting: `WouldBlock` when nothing is queued.
    pub fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let cap = buf.len();
        let r = self
            .stack
            .poll_slot(Slot::Socket(self.handle, Side::Read), None, |i| {
                self.recv_in(i, buf, None)
            })?
            .unwrap_or(Err(UdpRecvError::WouldBlock));
        Self::received(cap, r)
    }

    /// [`try_recv_from`](Self::try_recv_from) the connected peer.
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let peer = self.connected_peer()?;
        let cap = buf.len();
        let r = self
            .stack
            .poll_slot(Slot::Socket(self.handle, Side::Read), None, |i| {
                self.recv_in(i, buf, Some(peer))
            })?
            .unwrap_or(Err(UdpRecvError::WouldBlock));
        Self::received(cap, r).map(|(n, _)| n)
    }

    /// Poll form of [`recv_from`](Self::recv_from): fills `buf`, returns
    /// the sender. Only the last task to poll the receiving side is woken.
    pub fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<SocketAddr>> {
        self.poll_recv_inner(cx, buf, None)
    }

    /// Poll form of [`recv`](Self::recv).
    pub fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let peer = match self.connected_peer() {
            Ok(p) => p,
            Err(e) => return Poll::Ready(Err(e)),
        };
        self.poll_recv_inner(cx, buf, Some(peer)).map_ok(|_| ())
    }

    fn poll_recv_inner(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
        only: Option<SocketAddrV4>,
    ) -> Poll<io::Result<SocketAddr>> {
        let dst = buf.initialize_unfilled();
        let cap = dst.len();
        let r = self
            .stack
            .poll_io(cx, self.handle, Side::Read, self.read_token, |i| {
                self.recv_in(i, dst, only)
            });
        match r {
            Poll::Ready(Ok(r)) => {
                let (n, from) = Self::received(cap, r)?;
                buf.advance(n);
                Poll::Ready(Ok(from))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    // ----- readiness -----

    fn read_ready(&self, i: &mut Interface) -> bool {
        i.udp_peek_len(self.handle).is_some() || i.udp_local_addr(self.handle).is_none()
    }

    /// Wait until a datagram is queued.
    pub async fn readable(&self) -> io::Result<()> {
        let w = Waiter::new(&self.stack, self.handle, Side::Read);
        w.wait(|i| self.read_ready(i).then_some(())).await
    }

    /// Poll form of [`readable`](Self::readable), sharing the slot of
    /// [`poll_recv_from`](Self::poll_recv_from).
    pub fn poll_recv_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stack
            .poll_io(cx, self.handle, Side::Read, self.read_token, |i| {
                self.read_ready(i).then_some(())
            })
    }

    /// A UDP socket can always try to send: the stack's transmit queue says
    /// `WouldBlock` only when it is full, and a send that was refused is
    /// woken by the send itself. So this returns at once, as it nearly
    /// always does for a kernel socket.
    pub async fn writable(&self) -> io::Result<()> {
        self.stack
            .poll_slot(Slot::Socket(self.handle, Side::Write), None, |_| Some(()))?;
        Ok(())
    }

    /// [`writable`](Self::writable)'s poll form.
    pub fn poll_send_ready(&self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Wait for any readiness in `interest` (writable is always ready).
    pub async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        if interest.is_writable() {
            let mut r = Ready::WRITABLE;
            if interest.is_readable() && self.stack.try_with(|i| self.read_ready(i))? {
                r |= Ready::READABLE;
            }
            return Ok(r);
        }
        self.readable().await?;
        Ok(Ready::READABLE)
    }

    /// Take the latest error the network reported for this socket (an ICMP
    /// unreachable, say), like `SO_ERROR`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        let h = self.handle;
        Ok(self.stack.try_with(|i| i.udp_take_error(h))?.map(socket_error))
    }

    /// The stack's handle for this socket.
    pub fn handle(&self) -> SocketHandle {
        self.handle
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
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
