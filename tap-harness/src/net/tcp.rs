//! Async TCP: [`TcpListener`], [`TcpStream`] and the stream's halves, as
//! in `tokio::net` and `tokio::net::tcp`. See [the module doc](super).

use std::io;
use std::net::{SocketAddr, SocketAddrV4, ToSocketAddrs};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tapir_stack::{
    Interface, SocketError, SocketHandle, TcpAcceptError, TcpConnStats, TcpOption, TcpRecvError,
    TcpSendError, TcpState,
};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf, Ready};

use super::Waiter;
use crate::driver::{Side, StackHandle};
use crate::sockerr::{closed, socket_error, v4};
use crate::tcp::{annotate, broken_pipe, outcome, tcp_error, Outcome, DEFAULT_BACKLOG};

// ---------------------------------------------------------------------------
// Listener

/// A TCP socket listening for connections, as `tokio::net::TcpListener`.
/// Closed on drop; connections it queued that nobody accepted are reset.
pub struct TcpListener {
    stack: StackHandle,
    handle: SocketHandle,
    /// The waker slot of [`poll_accept`](Self::poll_accept).
    token: u64,
}

impl TcpListener {
    /// Listen on `addr` (port 0 picks an ephemeral port; the address must
    /// be the stack's own or unspecified) with a backlog of
    /// [`DEFAULT_BACKLOG`]. `async` only to match tokio: it never waits.
    pub async fn bind(stack: &StackHandle, addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        Self::bind_with_backlog(stack, addr, DEFAULT_BACKLOG)
    }

    /// Listen with the backlog of `listen(2)` (clamped by the stack to
    /// `TcpConfig::max_backlog`).
    pub fn bind_with_backlog(
        stack: &StackHandle,
        addr: impl ToSocketAddrs,
        backlog: usize,
    ) -> io::Result<TcpListener> {
        crate::tcp::each_addr(addr, "bind to", |a| {
            let handle = stack
                .try_with(|i| i.tcp_listen(a, backlog))?
                .map_err(|e| tcp_error(e, &format!("bind {a}")))?;
            Ok(TcpListener {
                stack: stack.clone(),
                handle,
                token: stack.token(),
            })
        })
    }

    /// Accept a connection. Cancel safe: a connection is taken from the
    /// accept queue only when this returns it.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let w = Waiter::new(&self.stack, self.handle, Side::Read);
        let r = w.wait(|i| self.try_accept_in(i)).await?;
        self.finish_accept(r)
    }

    /// Poll for a connection; only the last task to call this is woken.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        self.stack
            .poll_io(cx, self.handle, Side::Read, self.token, |i| self.try_accept_in(i))
            .map(|r| r.and_then(|r| self.finish_accept(r)))
    }

    #[allow(clippy::type_complexity)]
    fn try_accept_in(
        &self,
        i: &mut Interface,
    ) -> Option<Result<(SocketHandle, Option<SocketAddrV4>), TcpAcceptError>> {
        match i.tcp_accept(self.handle) {
            Err(TcpAcceptError::WouldBlock) => None,
            Ok(h) => Some(Ok((h, i.tcp_peer_addr(h)))),
            Err(e) => Some(Err(e)),
        }
    }

    fn finish_accept(
        &self,
        r: Result<(SocketHandle, Option<SocketAddrV4>), TcpAcceptError>,
    ) -> io::Result<(TcpStream, SocketAddr)> {
        let (h, peer) = r.map_err(|e| tcp_error(e, "accept"))?;
        let stream = TcpStream::from_handle(&self.stack, h);
        let peer =
            peer.ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "accepted socket is gone"))?;
        Ok((stream, SocketAddr::V4(peer)))
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stack
            .try_with(|i| i.tcp_local_addr(self.handle))?
            .map(SocketAddr::V4)
            .ok_or_else(closed)
    }

    /// Set an option that every accepted connection inherits (tapir's
    /// `setsockopt`; nodelay, buffer sizes...).
    pub fn set_option(&self, opt: TcpOption) -> io::Result<()> {
        let now = self.stack.now();
        self.stack
            .try_with(|i| i.tcp_set_option(now, self.handle, opt))?
            .map_err(|e| tcp_error(e, "set option"))
    }

    /// The stack's handle for this socket.
    pub fn handle(&self) -> SocketHandle {
        self.handle
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        let h = self.handle;
        self.stack.close_socket(h, |i| i.tcp_close(h));
    }
}

impl std::fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpListener")
            .field("handle", &self.handle)
            .field("local", &self.local_addr().ok())
            .finish()
    }
}

// ---------------------------------------------------------------------------
// The connection every stream face shares

/// One connection, shared by a [`TcpStream`] and its owned halves; closed
/// when the last of them is dropped.
struct Conn {
    stack: StackHandle,
    handle: SocketHandle,
    /// Waker slots of the `poll_*` methods, one per side: as in tokio, only
    /// the last task to poll a side is woken.
    read_token: u64,
    write_token: u64,
    /// The connection's failure was reported to the application once.
    error_reported: AtomicBool,
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Graceful unless data is left unread (then RST, as Linux).
        let h = self.handle;
        self.stack.close_socket(h, |i| i.tcp_close(h));
    }
}

/// Whether a read would not block: data, end of stream, or a failure.
fn read_ready(i: &Interface, h: SocketHandle) -> bool {
    i.tcp_can_recv(h) || i.tcp_state(h).is_none()
}

/// Whether a write would not block: room in the send buffer, or an error.
fn write_ready(i: &mut Interface, h: SocketHandle) -> bool {
    match i.tcp_send(h, &[]) {
        Err(TcpSendError::WouldBlock) => false,
        Ok(_) => i.tcp_send_capacity(h) > 0,
        Err(_) => true,
    }
}

/// What `ready` reports: tokio's `Ready` bits for the interest asked.
fn readiness(i: &mut Interface, h: SocketHandle, interest: Interest) -> Ready {
    let mut r = Ready::EMPTY;
    if interest.is_readable() && read_ready(i, h) {
        r |= Ready::READABLE;
        if i.tcp_recv_queue(h) == 0 {
            r |= Ready::READ_CLOSED;
        }
    }
    if interest.is_writable() && write_ready(i, h) {
        r |= Ready::WRITABLE;
        if i.tcp_send(h, &[]).is_err() {
            r |= Ready::WRITE_CLOSED;
        }
    }
    r
}

impl Conn {
    fn new(stack: &StackHandle, handle: SocketHandle) -> Conn {
        Conn {
            stack: stack.clone(),
            handle,
            read_token: stack.token(),
            write_token: stack.token(),
            error_reported: AtomicBool::new(false),
        }
    }

    /// Report a failure the first time; afterwards the caller sees `after`.
    fn failed<T>(&self, e: SocketError, after: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        if self.error_reported.swap(true, Ordering::SeqCst) {
            after()
        } else {
            Err(socket_error(e))
        }
    }

    fn read_result(&self, r: Outcome<usize>) -> io::Result<usize> {
        match r {
            Outcome::Done(n) => Ok(n),
            Outcome::Failed(e) => self.failed(e, || Ok(0)),
            Outcome::Err(e) => Err(e),
        }
    }

    fn write_result(&self, r: Outcome<usize>) -> io::Result<usize> {
        match r {
            Outcome::Done(n) => Ok(n),
            Outcome::Failed(e) => self.failed(e, || Err(broken_pipe())),
            Outcome::Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(broken_pipe()),
            Outcome::Err(e) => Err(e),
        }
    }

    fn peek_result(&self, r: Outcome<usize>) -> io::Result<usize> {
        match r {
            Outcome::Done(n) => Ok(n),
            // Peeking does not consume the error; the next read reports it.
            Outcome::Failed(e) if !self.error_reported.load(Ordering::SeqCst) => Err(socket_error(e)),
            Outcome::Failed(_) => Ok(0),
            Outcome::Err(e) => Err(e),
        }
    }

    fn recv(&self, i: &mut Interface, buf: &mut [u8]) -> Option<Outcome<usize>> {
        outcome(i.tcp_recv(self.handle, buf), "read")
    }

    fn send(&self, i: &mut Interface, buf: &[u8]) -> Option<Outcome<usize>> {
        outcome(i.tcp_send(self.handle, buf), "write")
    }

    fn peek(&self, i: &mut Interface, buf: &mut [u8]) -> Option<Outcome<usize>> {
        let h = self.handle;
        if !i.tcp_can_recv(h) {
            return None;
        }
        Some(match i.tcp_peek(h, buf) {
            // End of stream or a failed connection: a one-byte read of the
            // empty buffer says which, consuming nothing.
            Ok(0) => match i.tcp_recv(h, &mut [0u8; 1]) {
                Err(TcpRecvError::Failed(e)) => Outcome::Failed(e),
                _ => Outcome::Done(0),
            },
            Ok(n) => Outcome::Done(n),
            Err(e) => Outcome::Err(tcp_error(e, "peek")),
        })
    }

    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let dst = buf.initialize_unfilled();
        let r = self
            .stack
            .poll_io(cx, self.handle, Side::Read, self.read_token, |i| {
                self.recv(i, dst)
            });
        match r {
            Poll::Ready(Ok(o)) => {
                let n = self.read_result(o)?;
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        self.stack
            .poll_io(cx, self.handle, Side::Write, self.write_token, |i| {
                self.send(i, buf)
            })
            .map(|r| r.and_then(|o| self.write_result(o)))
    }

    fn poll_peek(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<usize>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(0));
        }
        let dst = buf.initialize_unfilled();
        let r = self
            .stack
            .poll_io(cx, self.handle, Side::Read, self.read_token, |i| {
                self.peek(i, dst)
            });
        match r {
            Poll::Ready(Ok(o)) => {
                let n = self.peek_result(o)?;
                buf.advance(n);
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// The write side's FIN, after the queued data. Idempotent.
    fn shutdown_write(&self) -> io::Result<()> {
        let h = self.handle;
        let r = self.stack.try_with(|i| i.tcp_shutdown(h))?;
        // A task waiting to write must now see the closed send side.
        self.stack.wake_socket(h);
        r.map_err(|e| tcp_error(e, "shutdown"))
    }

    async fn peek_async(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let w = Waiter::new(&self.stack, self.handle, Side::Read);
        let o = w.wait(|i| self.peek(i, buf)).await?;
        self.peek_result(o)
    }

    async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        let h = self.handle;
        let check = |i: &mut Interface| Some(readiness(i, h, interest)).filter(|r| !r.is_empty());
        // Connect, close and errors wake both sides; data only the read
        // side and room only the write side: wait on those asked for.
        let on_read = interest
            .is_readable()
            .then(|| Waiter::new(&self.stack, h, Side::Read));
        let on_write = interest
            .is_writable()
            .then(|| Waiter::new(&self.stack, h, Side::Write));
        std::future::poll_fn(|cx| {
            for w in on_read.iter().chain(on_write.iter()) {
                if let Poll::Ready(r) = w.poll(cx, check) {
                    return Poll::Ready(r);
                }
            }
            if on_read.is_none() && on_write.is_none() {
                return Poll::Ready(Ok(Ready::EMPTY));
            }
            Poll::Pending
        })
        .await
    }

    async fn readable(&self) -> io::Result<()> {
        let h = self.handle;
        let w = Waiter::new(&self.stack, h, Side::Read);
        w.wait(|i| read_ready(i, h).then_some(())).await
    }

    async fn writable(&self) -> io::Result<()> {
        let h = self.handle;
        let w = Waiter::new(&self.stack, h, Side::Write);
        w.wait(|i| write_ready(i, h).then_some(())).await
    }

    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let h = self.handle;
        self.stack.poll_io(cx, h, Side::Read, self.read_token, |i| {
            read_ready(i, h).then_some(())
        })
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let h = self.handle;
        self.stack.poll_io(cx, h, Side::Write, self.write_token, |i| {
            write_ready(i, h).then_some(())
        })
    }

    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match self
            .stack
            .poll_slot(crate::driver::Slot::Socket(self.handle, Side::Read), None, |i| {
                self.recv(i, buf)
            })? {
            Some(o) => self.read_result(o),
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match self
            .stack
            .poll_slot(crate::driver::Slot::Socket(self.handle, Side::Write), None, |i| {
                self.send(i, buf)
            })? {
            Some(o) => self.write_result(o),
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn peer_addr(&self) -> io::Result<SocketAddr> {
        let h = self.handle;
        self.stack
            .try_with(|i| i.tcp_peer_addr(h))?
            .map(SocketAddr::V4)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "not connected"))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        let h = self.handle;
        self.stack
            .try_with(|i| i.tcp_local_addr(h))?
            .map(SocketAddr::V4)
            .ok_or_else(closed)
    }
}

// ---------------------------------------------------------------------------
// Stream

/// A TCP connection, as `tokio::net::TcpStream`. Closed on drop (with a RST
/// if received data was left unread, as Linux).
pub struct TcpStream {
    conn: Arc<Conn>,
}

/// Frees a connection whose `connect` future was dropped before it
/// completed.
struct Connecting<'a> {
    stack: &'a StackHandle,
    handle: Option<SocketHandle>,
}

impl Drop for Connecting<'_> {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            self.stack.close_socket(h, |i| i.tcp_abort(h));
        }
    }
}

impl TcpStream {
    fn from_handle(stack: &StackHandle, handle: SocketHandle) -> TcpStream {
        TcpStream {
            conn: Arc::new(Conn::new(stack, handle)),
        }
    }

    /// Open a connection to `addr`, trying each address it resolves to in
    /// turn. Waits as long as the stack retransmits its SYN
    /// (`TcpConfig::syn_retries`); wrap it in `tokio::time::timeout` for
    /// less. Dropping the future aborts the attempt.
    pub async fn connect(stack: &StackHandle, addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
        let mut last = None;
        for a in addrs {
            match v4(a) {
                Ok(a) => match Self::connect_v4(stack, a).await {
                    Ok(s) => return Ok(s),
                    Err(e) => last = Some(e),
                },
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no addresses to connect to")))
    }

    async fn connect_v4(stack: &StackHandle, a: SocketAddrV4) -> io::Result<TcpStream> {
        let now = stack.now();
        let h = stack
            .try_with(|i| i.tcp_connect(now, a))?
            .map_err(|e| tcp_error(e, &format!("connect to {a}")))?;
        let mut guard = Connecting {
            stack,
            handle: Some(h),
        };
        let w = Waiter::new(stack, h, Side::Write);
        let r = w
            .wait(|i| match i.tcp_state(h) {
                Some(TcpState::SynSent | TcpState::SynReceived) => None,
                Some(TcpState::Closed) => Some(Err(match i.tcp_take_error(h) {
                    Some(e) => socket_error(e),
                    None => io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "connection closed while opening",
                    ),
                })),
                Some(_) => Some(Ok(())),
                None => Some(Err(closed())),
            })
            .await;
        drop(w);
        match r {
            Ok(Ok(())) => {
                guard.handle = None;
                Ok(TcpStream::from_handle(stack, h))
            }
            // The guard frees the half-open connection.
            Ok(Err(e)) | Err(e) => Err(annotate(e, &format!("connect to {a}"))),
        }
    }

    /// The local address of the connection.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.conn.local_addr()
    }

    /// The address of the peer.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.conn.peer_addr()
    }

    /// Take the connection's pending error, like `SO_ERROR`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        let h = self.conn.handle;
        let e = self.conn.stack.try_with(|i| i.tcp_take_error(h))?;
        Ok(e.map(|e| {
            self.conn.error_reported.store(true, Ordering::SeqCst);
            socket_error(e)
        }))
    }

    /// Wait for any of the readiness in `interest`, as tokio's `ready`.
    /// Readiness is a hint: the following `try_*` may still say
    /// `WouldBlock` if another task got there first.
    pub async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        self.conn.ready(interest).await
    }

    /// Wait until a read would not block (data, end of stream or an error).
    pub async fn readable(&self) -> io::Result<()> {
        self.conn.readable().await
    }

    /// Wait until a write would not block (room to send, or an error).
    pub async fn writable(&self) -> io::Result<()> {
        self.conn.writable().await
    }

    /// Poll for read readiness; only the last task to poll is woken.
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.conn.poll_read_ready(cx)
    }

    /// Poll for write readiness; only the last task to poll is woken.
    pub fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.conn.poll_write_ready(cx)
    }

    /// Read what is there without waiting: `WouldBlock` if nothing is.
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.conn.try_read(buf)
    }

    /// Write what fits without waiting: `WouldBlock` if nothing does.
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.conn.try_write(buf)
    }

    /// Receive data without consuming it; waits like a read.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.conn.peek_async(buf).await
    }

    /// Poll form of [`peek`](Self::peek).
    pub fn poll_peek(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<usize>> {
        self.conn.poll_peek(cx, buf)
    }

    /// Turn Nagle's algorithm off (`true`) or on (RFC 896; TCP_NODELAY).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.set_option(TcpOption::NoDelay(nodelay))
    }

    pub fn nodelay(&self) -> io::Result<bool> {
        match self.option(TcpOption::NoDelay(false))? {
            TcpOption::NoDelay(on) => Ok(on),
            _ => Ok(false),
        }
    }

    /// Set any per-connection option: tapir's `setsockopt`.
    pub fn set_option(&self, opt: TcpOption) -> io::Result<()> {
        let h = self.conn.handle;
        let now = self.conn.stack.now();
        self.conn
            .stack
            .try_with(|i| i.tcp_set_option(now, h, opt))?
            .map_err(|e| tcp_error(e, "set option"))
    }

    /// Read an option back (the variant's value is ignored).
    pub fn option(&self, opt: TcpOption) -> io::Result<TcpOption> {
        let h = self.conn.handle;
        self.conn
            .stack
            .try_with(|i| i.tcp_get_option(h, opt))?
            .ok_or_else(closed)
    }

    /// Record the connection's timeline from now on (see
    /// [`tapir_stack::TraceSample`]), keeping at most `capacity` samples
    /// between drains; `None` stops recording.
    pub fn set_trace(&self, capacity: Option<usize>) -> io::Result<()> {
        let h = self.conn.handle;
        self.conn
            .stack
            .try_with(|i| i.tcp_trace(h, capacity))?
            .map_err(|e| tcp_error(e, "trace"))
    }

    /// Move the samples recorded so far into `out`; how many were lost
    /// because the trace was full.
    pub fn drain_trace(&self, out: &mut Vec<tapir_stack::TraceSample>) -> io::Result<u64> {
        let h = self.conn.handle;
        self.conn.stack.try_with(|i| i.tcp_drain_trace(h, out))
    }

    /// The connection's state and counters (the `ss -ti` line).
    pub fn stats(&self) -> io::Result<TcpConnStats> {
        let h = self.conn.handle;
        self.conn.stack.try_with(|i| i.tcp_stats(h))?.ok_or_else(closed)
    }

    /// The connection's RFC 9293 state.
    pub fn state(&self) -> io::Result<TcpState> {
        let h = self.conn.handle;
        self.conn.stack.try_with(|i| i.tcp_state(h))?.ok_or_else(closed)
    }

    /// The stack's handle for this socket.
    pub fn handle(&self) -> SocketHandle {
        self.conn.handle
    }

    /// Borrowed halves, usable concurrently (in `select!`, `join!`, or
    /// scoped tasks); free, with no reference counting, as in tokio.
    pub fn split(&mut self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        (ReadHalf(&*self), WriteHalf(&*self))
    }

    /// Owned halves for two tasks. The connection closes when both are
    /// dropped; dropping the write half shuts the write side down (a FIN),
    /// as in tokio.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        (
            OwnedReadHalf {
                conn: self.conn.clone(),
            },
            OwnedWriteHalf {
                conn: self.conn,
                shutdown_on_drop: true,
            },
        )
    }
}

impl AsyncRead for TcpStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.conn.poll_read(cx, buf)
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.conn.poll_write(cx, buf)
    }

    /// Data is handed to TCP at once; there is nothing to flush.
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Shut the write side down: a FIN follows the queued data.
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.conn.shutdown_write())
    }
}

impl std::fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpStream")
            .field("handle", &self.conn.handle)
            .field("local", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .finish()
    }
}

// ---------------------------------------------------------------------------
// Halves

/// The read half of [`TcpStream::split`].
#[derive(Debug)]
pub struct ReadHalf<'a>(&'a TcpStream);

/// The write half of [`TcpStream::split`]; `poll_shutdown` sends a FIN.
#[derive(Debug)]
pub struct WriteHalf<'a>(&'a TcpStream);

/// The owned read half of [`TcpStream::into_split`].
pub struct OwnedReadHalf {
    conn: Arc<Conn>,
}

/// The owned write half of [`TcpStream::into_split`]. Dropping it shuts
/// the write side down (a FIN), unless [`forget`](Self::forget) is used.
pub struct OwnedWriteHalf {
    conn: Arc<Conn>,
    shutdown_on_drop: bool,
}

/// The halves given to `reunite` came from different streams.
#[derive(Debug)]
pub struct ReuniteError(pub OwnedReadHalf, pub OwnedWriteHalf);

impl std::fmt::Display for ReuniteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("tried to reunite halves that are not from the same socket")
    }
}

impl std::error::Error for ReuniteError {}

fn reunite(read: OwnedReadHalf, mut write: OwnedWriteHalf) -> Result<TcpStream, ReuniteError> {
    if Arc::ptr_eq(&read.conn, &write.conn) {
        write.shutdown_on_drop = false;
        drop(write);
        Ok(TcpStream { conn: read.conn })
    } else {
        Err(ReuniteError(read, write))
    }
}

impl ReadHalf<'_> {
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.peer_addr()
    }
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
    pub async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        self.0.ready(interest).await
    }
    pub async fn readable(&self) -> io::Result<()> {
        self.0.readable().await
    }
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
    pub async fn peek(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.peek(buf).await
    }
    pub fn poll_peek(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<usize>> {
        self.0.poll_peek(cx, buf)
    }
}

impl WriteHalf<'_> {
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.peer_addr()
    }
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
    pub async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        self.0.ready(interest).await
    }
    pub async fn writable(&self) -> io::Result<()> {
        self.0.writable().await
    }
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }
}

impl AsyncRead for ReadHalf<'_> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.0.conn.poll_read(cx, buf)
    }
}

impl AsyncWrite for WriteHalf<'_> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.0.conn.poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.0.conn.shutdown_write())
    }
}

impl OwnedReadHalf {
    /// Put the stream back together; fails if `other` belongs to another.
    pub fn reunite(self, other: OwnedWriteHalf) -> Result<TcpStream, ReuniteError> {
        reunite(self, other)
    }
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.conn.peer_addr()
    }
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.conn.local_addr()
    }
    pub async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        self.conn.ready(interest).await
    }
    pub async fn readable(&self) -> io::Result<()> {
        self.conn.readable().await
    }
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.conn.try_read(buf)
    }
    pub async fn peek(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.conn.peek_async(buf).await
    }
    pub fn poll_peek(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<usize>> {
        self.conn.poll_peek(cx, buf)
    }
}

impl OwnedWriteHalf {
    /// Put the stream back together; fails if `other` belongs to another.
    pub fn reunite(self, other: OwnedReadHalf) -> Result<TcpStream, ReuniteError> {
        reunite(other, self)
    }
    /// Drop this half without shutting the write side down.
    pub fn forget(mut self) {
        self.shutdown_on_drop = false;
    }
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.conn.peer_addr()
    }
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.conn.local_addr()
    }
    pub async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        self.conn.ready(interest).await
    }
    pub async fn writable(&self) -> io::Result<()> {
        self.conn.writable().await
    }
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.conn.try_write(buf)
    }
}

impl Drop for OwnedWriteHalf {
    fn drop(&mut self) {
        if self.shutdown_on_drop {
            let _ = self.conn.shutdown_write();
        }
    }
}

impl AsyncRead for OwnedReadHalf {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.conn.poll_read(cx, buf)
    }
}

impl AsyncWrite for OwnedWriteHalf {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.conn.poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    /// Shut the write side down (a FIN); dropping the half does it too.
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = self.conn.shutdown_write();
        Poll::Ready(r)
    }
}

impl std::fmt::Debug for OwnedReadHalf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedReadHalf")
            .field("handle", &self.conn.handle)
            .finish()
    }
}

impl std::fmt::Debug for OwnedWriteHalf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedWriteHalf")
            .field("handle", &self.conn.handle)
            .finish()
    }
}
