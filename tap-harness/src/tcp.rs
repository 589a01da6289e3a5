//! Blocking TCP sockets over a running tapir stack, shaped like
//! [`std::net::TcpListener`] and [`std::net::TcpStream`] so that code
//! written for the kernel's sockets ports by changing an import.
//!
//! Each call locks the stack, does one socket operation and wakes the
//! driver. A call that must wait for the network (a read on an empty
//! receive buffer, a write into a full send buffer, an accept with nothing
//! queued, a connect in progress) parks its thread without holding the
//! lock until the driver reports a change on that socket (see
//! [`crate::driver`]), then re-checks, bounded by the socket's timeouts. Backpressure comes from TCP's
//! own buffers: a write takes what fits in the send buffer and blocks while
//! it is full, so nothing is ever buffered without bound.
//!
//! As with std on Linux:
//! - a read or write that times out fails with [`io::ErrorKind::WouldBlock`]
//!   (`SO_RCVTIMEO` / `SO_SNDTIMEO` give `EAGAIN`); a connect that times out
//!   fails with [`io::ErrorKind::TimedOut`];
//! - a read returns `Ok(0)` at end of stream, and after `shutdown(Read)`;
//! - clones made with `try_clone` share one socket and its options
//!   (timeouts, non-blocking mode), like `dup(2)`; the socket is closed when
//!   the last clone is dropped;
//! - closing with unread received data resets the connection (RFC 2525
//!   2.17); otherwise the close is graceful: a FIN follows the queued data
//!   and the stack frees the connection when the exchange is done;
//! - a connection failure (reset, timeout) is reported once, as
//!   `ConnectionReset` / `TimedOut`, by whichever call sees it first (read,
//!   write or [`TcpStream::take_error`]); afterwards reads return `Ok(0)`
//!   and writes fail with `BrokenPipe`, as `SO_ERROR` is consumed on Linux.
//!
//! tapir speaks IPv4 only: IPv6 addresses are refused with
//! [`io::ErrorKind::Unsupported`].
//!
//! An echo server, as it would be written for std::net:
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use tapir_harness::{StackHandle, TcpListener};
//!
//! # fn serve(stack: &StackHandle) -> std::io::Result<()> {
//! let listener = TcpListener::bind(stack, "0.0.0.0:7")?;
//! for stream in listener.incoming() {
//!     let mut stream = stream?;
//!     std::thread::spawn(move || {
//!         let mut buf = [0u8; 4096];
//!         while let Ok(n) = stream.read(&mut buf) {
//!             if n == 0 || stream.write_all(&buf[..n]).is_err() {
//!                 break;
//!             }
//!         }
//!     });
//! }
//! # Ok(()) }
//! ```

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, SocketAddrV4, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tapir_stack::{
    Interface, SocketError, SocketHandle, TcpAcceptError, TcpBindError, TcpConnStats, TcpConnectError,
    TcpListenError, TcpOption, TcpOptionError, TcpRecvError, TcpSendError, TcpShutdownError, TcpSocketError,
    TcpState,
};

use crate::driver::{Side, StackHandle};
use crate::sockerr::{check_timeout, closed, socket_error, v4};

/// The backlog [`TcpListener::bind`] asks for.
pub const DEFAULT_BACKLOG: usize = 128;

// ---------------------------------------------------------------------------
// Listener

/// A TCP socket listening for connections. Closed when the last clone is
/// dropped; connections it queued that nobody accepted are reset.
pub struct TcpListener {
    inner: Arc<ListenerInner>,
}

struct ListenerInner {
    stack: StackHandle,
    handle: SocketHandle,
    nonblocking: AtomicBool,
}

impl Drop for ListenerInner {
    fn drop(&mut self) {
        // After the driver shut down there is no stack to close it in.
        let h = self.handle;
        self.stack.close_socket(h, |i| i.tcp_close(h));
    }
}

impl TcpListener {
    /// Listen on `addr` (port 0 picks an ephemeral port; the address must
    /// be the stack's own or unspecified) with a backlog of
    /// [`DEFAULT_BACKLOG`]. Pass a [`DriverHandle`](crate::driver::DriverHandle)
    /// or a [`StackHandle`].
    pub fn bind(stack: &StackHandle, addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        Self::bind_with_backlog(stack, addr, DEFAULT_BACKLOG)
    }

    /// [`bind`](Self::bind) with the backlog of `listen(2)`: the most
    /// connections that may wait for `accept` (and, separately, the most
    /// half-open ones). The stack clamps it to `TcpConfig::max_backlog`.
    pub fn bind_with_backlog(
        stack: &StackHandle,
        addr: impl ToSocketAddrs,
        backlog: usize,
    ) -> io::Result<TcpListener> {
        each_addr(addr, "bind to", |a| {
            let handle = stack
                .try_with(|i| i.tcp_listen(a, backlog))?
                .map_err(|e| tcp_error(e, &format!("bind {a}")))?;
            Ok(TcpListener {
                inner: Arc::new(ListenerInner {
                    stack: stack.clone(),
                    handle,
                    nonblocking: AtomicBool::new(false),
                }),
            })
        })
    }

    /// Wait for a connection and return it with the peer's address. In
    /// non-blocking mode, fails with `WouldBlock` when none is queued.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        self.accept_inner(None)
    }

    /// Like [`accept`](Self::accept), giving up after `timeout` with
    /// `WouldBlock` (what `SO_RCVTIMEO` does to `accept(2)` on Linux; std
    /// has no call for it). Lets a server loop notice a stop flag.
    pub fn accept_timeout(&self, timeout: Duration) -> io::Result<(TcpStream, SocketAddr)> {
        check_timeout(Some(timeout))?;
        self.accept_inner(Some(timeout))
    }

    fn accept_inner(&self, timeout: Option<Duration>) -> io::Result<(TcpStream, SocketAddr)> {
        let l = &*self.inner;
        let accept = |i: &mut Interface| match i.tcp_accept(l.handle) {
            Err(TcpAcceptError::WouldBlock) => None,
            Ok(h) => Some(Ok((h, i.tcp_peer_addr(h)))),
            Err(e) => Some(Err(e)),
        };
        let r = if l.nonblocking.load(Ordering::Relaxed) {
            l.stack
                .try_with(accept)?
                .unwrap_or(Err(TcpAcceptError::WouldBlock))
        } else {
            l.stack
                .wait_io(l.handle, Side::Read, timeout, io::ErrorKind::WouldBlock, accept)?
        };
        let (h, peer) = r.map_err(|e| tcp_error(e, "accept"))?;
        let stream = TcpStream::from_handle(&l.stack, h);
        let peer =
            peer.ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "accepted socket is gone"))?;
        Ok((stream, SocketAddr::V4(peer)))
    }

    /// An endless iterator over accepted connections, as std's.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        let l = &*self.inner;
        l.stack
            .try_with(|i| i.tcp_local_addr(l.handle))?
            .map(SocketAddr::V4)
            .ok_or_else(closed)
    }

    /// In non-blocking mode `accept` fails with `WouldBlock` instead of
    /// waiting. Shared with clones.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.inner.nonblocking.store(nonblocking, Ordering::Relaxed);
        Ok(())
    }

    /// Another handle to the same listener.
    pub fn try_clone(&self) -> io::Result<TcpListener> {
        Ok(TcpListener {
            inner: self.inner.clone(),
        })
    }

    /// Listener errors are reported by `accept`; there is never one pending.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        Ok(None)
    }

    /// Set an option that every accepted connection inherits (nodelay, say).
    pub fn set_option(&self, opt: TcpOption) -> io::Result<()> {
        let l = &*self.inner;
        let now = l.stack.now();
        l.stack
            .try_with(|i| i.tcp_set_option(now, l.handle, opt))?
            .map_err(|e| tcp_error(e, "set option"))
    }

    /// The stack's handle for this socket, for use with [`StackHandle::with`].
    pub fn handle(&self) -> SocketHandle {
        self.inner.handle
    }
}

impl std::fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpListener")
            .field("handle", &self.inner.handle)
            .field("local", &self.local_addr().ok())
            .finish()
    }
}

/// The iterator of [`TcpListener::incoming`]; never returns `None`.
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;
    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

// ---------------------------------------------------------------------------
// Stream

/// A TCP connection. `Read` and `Write` are implemented for `TcpStream`
/// and for `&TcpStream`, so one thread may read while another writes
/// (through a `try_clone` or a shared reference).
pub struct TcpStream {
    inner: Arc<StreamInner>,
}

struct StreamInner {
    stack: StackHandle,
    handle: SocketHandle,
    opts: Mutex<Options>,
    nonblocking: AtomicBool,
    /// `shutdown(Read)`: reads return end of stream from now on.
    read_shut: AtomicBool,
    /// The connection's failure was reported to the application once.
    error_reported: AtomicBool,
}

#[derive(Clone, Copy, Default)]
struct Options {
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

impl Drop for StreamInner {
    fn drop(&mut self) {
        // Graceful unless data is left unread (then RST, as Linux). After
        // the driver shut down there is nothing to close.
        let h = self.handle;
        self.stack.close_socket(h, |i| i.tcp_close(h));
    }
}

/// What a socket call (blocking here, or async in `net`) concluded,
/// computed under the stack lock.
pub(crate) enum Outcome<T> {
    Done(T),
    /// The connection failed with this error; maybe not yet reported.
    Failed(SocketError),
    Err(io::Error),
}

/// What a socket call makes of a stack error: wait (`None`), or an
/// outcome (`what` names the call in the message).
pub(crate) fn outcome<T, E: StackError>(r: Result<T, E>, what: &str) -> Option<Outcome<T>> {
    match r {
        Ok(t) => Some(Outcome::Done(t)),
        Err(e) => match e.io_kind() {
            Ok(io::ErrorKind::WouldBlock) => None,
            Err(failed) => Some(Outcome::Failed(failed)),
            Ok(_) => Some(Outcome::Err(tcp_error(e, what))),
        },
    }
}

impl TcpStream {
    fn from_handle(stack: &StackHandle, handle: SocketHandle) -> TcpStream {
        TcpStream {
            inner: Arc::new(StreamInner {
                stack: stack.clone(),
                handle,
                opts: Mutex::new(Options::default()),
                nonblocking: AtomicBool::new(false),
                read_shut: AtomicBool::new(false),
                error_reported: AtomicBool::new(false),
            }),
        }
    }

    /// Open a connection to `addr`, trying each address it resolves to in
    /// turn. Waits for the handshake as long as the stack keeps
    /// retransmitting its SYN (`TcpConfig::syn_retries`).
    pub fn connect(stack: &StackHandle, addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        each_addr(addr, "connect to", |a| Self::connect_v4(stack, a, None))
    }

    /// Open a connection to one address, giving up after `timeout` with
    /// `TimedOut` (a zero timeout is refused, as std does).
    pub fn connect_timeout(
        stack: &StackHandle,
        addr: &SocketAddr,
        timeout: Duration,
    ) -> io::Result<TcpStream> {
        check_timeout(Some(timeout))?;
        Self::connect_v4(stack, v4(*addr)?, Some(timeout))
    }

    fn connect_v4(stack: &StackHandle, a: SocketAddrV4, timeout: Option<Duration>) -> io::Result<TcpStream> {
        let now = stack.now();
        let h = stack
            .try_with(|i| i.tcp_connect(now, a))?
            .map_err(|e| tcp_error(e, &format!("connect to {a}")))?;
        let r = stack.wait_io(h, Side::Write, timeout, io::ErrorKind::TimedOut, |i| {
            match i.tcp_state(h) {
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
            }
        });
        match r {
            Ok(Ok(())) => Ok(TcpStream::from_handle(stack, h)),
            Ok(Err(e)) | Err(e) => {
                // Nothing to say goodbye to: free the half-open connection
                // (no stream owns the handle yet, so nothing closes it twice).
                let _ = stack.try_with(|i| i.tcp_abort(h));
                Err(annotate(e, &format!("connect to {a}")))
            }
        }
    }

    /// Run `op` until it does not ask to wait, blocking (within `timeout`)
    /// or not according to the socket's mode.
    fn blocking<T>(
        &self,
        side: Side,
        timeout: Option<Duration>,
        mut op: impl FnMut(&mut Interface, SocketHandle) -> Option<Outcome<T>>,
    ) -> io::Result<Outcome<T>> {
        let s = &*self.inner;
        let h = s.handle;
        let mut f = |i: &mut Interface| op(i, h);
        if s.nonblocking.load(Ordering::Relaxed) {
            Ok(s.stack
                .try_with(&mut f)?
                .unwrap_or(Outcome::Err(io::ErrorKind::WouldBlock.into())))
        } else {
            s.stack.wait_io(h, side, timeout, io::ErrorKind::WouldBlock, f)
        }
    }

    fn opts(&self) -> Options {
        *self.inner.opts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Report a connection failure the first time; afterwards the caller
    /// sees `after` (end of stream for reads, a broken pipe for writes).
    fn failed<T>(&self, e: SocketError, after: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        if self.inner.error_reported.swap(true, Ordering::SeqCst) {
            after()
        } else {
            Err(socket_error(e))
        }
    }

    fn read_impl(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let s = &*self.inner;
        if s.read_shut.load(Ordering::SeqCst) {
            return Ok(0);
        }
        let read_shut = &s.read_shut;
        let r = self.blocking(Side::Read, self.opts().read_timeout, |i, h| {
            // shutdown(Read) from another thread ends a waiting read.
            if read_shut.load(Ordering::SeqCst) {
                return Some(Outcome::Done(0));
            }
            outcome(i.tcp_recv(h, buf), "read")
        })?;
        match r {
            Outcome::Done(n) => Ok(n),
            Outcome::Failed(e) => self.failed(e, || Ok(0)),
            Outcome::Err(e) => Err(e),
        }
    }

    fn write_impl(&self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let r = self.blocking(Side::Write, self.opts().write_timeout, |i, h| {
            match i.tcp_send(h, buf) {
                Err(TcpSendError::Closed) => Some(Outcome::Err(broken_pipe())),
                r => outcome(r, "write"),
            }
        })?;
        match r {
            Outcome::Done(n) => Ok(n),
            Outcome::Failed(e) => self.failed(e, || Err(broken_pipe())),
            Outcome::Err(e) => Err(e),
        }
    }

    /// Copy received data into `buf` without consuming it; waits like
    /// `read`.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.inner.read_shut.load(Ordering::SeqCst) {
            return Ok(0);
        }
        let r = self.blocking(Side::Read, self.opts().read_timeout, |i, h| {
            if !i.tcp_can_recv(h) {
                return None;
            }
            Some(match i.tcp_peek(h, buf) {
                Ok(0) => {
                    // End of stream or a failed connection: a one-byte
                    // read of the empty buffer says which, consuming
                    // nothing (the stack keeps the error until taken).
                    match i.tcp_recv(h, &mut [0u8; 1]) {
                        Err(TcpRecvError::Failed(e)) => Outcome::Failed(e),
                        _ => Outcome::Done(0),
                    }
                }
                Ok(n) => Outcome::Done(n),
                Err(e) => Outcome::Err(tcp_error(e, "peek")),
            })
        })?;
        match r {
            Outcome::Done(n) => Ok(n),
            // Peeking does not consume the error; the next read reports it.
            Outcome::Failed(e) if !self.inner.error_reported.load(Ordering::SeqCst) => Err(socket_error(e)),
            Outcome::Failed(_) => Ok(0),
            Outcome::Err(e) => Err(e),
        }
    }

    /// Shut down the read side (reads return end of stream from now on),
    /// the write side (a FIN follows the queued data; writes fail with
    /// `BrokenPipe`), or both. Shutting down the write side twice is fine.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let s = &*self.inner;
        if matches!(how, Shutdown::Read | Shutdown::Both) {
            s.read_shut.store(true, Ordering::SeqCst);
        }
        let r = s.stack.try_with(|i| match how {
            Shutdown::Read => Ok(()),
            Shutdown::Write | Shutdown::Both => i.tcp_shutdown(s.handle),
        })?;
        // A thread blocked on this socket must now see end of stream or a
        // closed send side; no network event would tell it.
        s.stack.wake_socket(s.handle);
        r.map_err(|e| tcp_error(e, "shutdown"))
    }

    /// The address of the peer.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        let s = &*self.inner;
        s.stack
            .try_with(|i| i.tcp_peer_addr(s.handle))?
            .map(SocketAddr::V4)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "not connected"))
    }

    /// The local address of the connection.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        let s = &*self.inner;
        s.stack
            .try_with(|i| i.tcp_local_addr(s.handle))?
            .map(SocketAddr::V4)
            .ok_or_else(closed)
    }

    /// Another handle to the same connection, sharing its options. The
    /// connection is closed when the last handle is dropped.
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        Ok(TcpStream {
            inner: self.inner.clone(),
        })
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

    /// Set any per-connection option (keepalive, buffer sizes, user
    /// timeout...): the `setsockopt` of tapir.
    pub fn set_option(&self, opt: TcpOption) -> io::Result<()> {
        let s = &*self.inner;
        let now = s.stack.now();
        s.stack
            .try_with(|i| i.tcp_set_option(now, s.handle, opt))?
            .map_err(|e| tcp_error(e, "set option"))
    }

    /// Read an option back (the variant's value is ignored).
    pub fn option(&self, opt: TcpOption) -> io::Result<TcpOption> {
        let s = &*self.inner;
        s.stack
            .try_with(|i| i.tcp_get_option(s.handle, opt))?
            .ok_or_else(closed)
    }

    /// Timeout for reads; `None` blocks forever. A zero duration is
    /// refused, as std does. Shared with clones.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        let t = check_timeout(timeout)?;
        self.inner
            .opts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .read_timeout = t;
        Ok(())
    }

    /// Timeout for writes waiting on a full send buffer.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        let t = check_timeout(timeout)?;
        self.inner
            .opts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write_timeout = t;
        Ok(())
    }

    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.opts().read_timeout)
    }

    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.opts().write_timeout)
    }

    /// In non-blocking mode, calls that would wait fail with `WouldBlock`.
    /// Shared with clones.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.inner.nonblocking.store(nonblocking, Ordering::Relaxed);
        Ok(())
    }

    /// Take the connection's pending error, like `SO_ERROR`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        let s = &*self.inner;
        let e = s.stack.try_with(|i| i.tcp_take_error(s.handle))?;
        Ok(e.map(|e| {
            s.error_reported.store(true, Ordering::SeqCst);
            socket_error(e)
        }))
    }

    /// The connection's state and counters (the `ss -ti` line).
    /// Record the connection's timeline from now on (see
    /// [`tapir_stack::TraceSample`]), keeping at most `capacity` samples
    /// between drains; `None` stops recording.
    pub fn set_trace(&self, capacity: Option<usize>) -> io::Result<()> {
        let s = &*self.inner;
        s.stack
            .try_with(|i| i.tcp_trace(s.handle, capacity))?
            .map_err(|e| tcp_error(e, "trace"))
    }

    /// Move the samples recorded so far into `out`; how many were lost
    /// because the trace was full.
    pub fn drain_trace(&self, out: &mut Vec<tapir_stack::TraceSample>) -> io::Result<u64> {
        let s = &*self.inner;
        s.stack.try_with(|i| i.tcp_drain_trace(s.handle, out))
    }

    pub fn stats(&self) -> io::Result<TcpConnStats> {
        let s = &*self.inner;
        s.stack.try_with(|i| i.tcp_stats(s.handle))?.ok_or_else(closed)
    }

    /// The connection's RFC 9293 state.
    pub fn state(&self) -> io::Result<TcpState> {
        let s = &*self.inner;
        s.stack.try_with(|i| i.tcp_state(s.handle))?.ok_or_else(closed)
    }

    /// The stack's handle for this socket, for use with [`StackHandle::with`].
    pub fn handle(&self) -> SocketHandle {
        self.inner.handle
    }
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_impl(buf)
    }
}

impl Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_impl(buf)
    }
}

impl Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_impl(buf)
    }
    /// Data is handed to TCP at once; there is nothing to flush.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_impl(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl std::fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpStream")
            .field("handle", &self.inner.handle)
            .field("local", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .finish()
    }
}

// ---------------------------------------------------------------------------
// Helpers

/// Try `f` on every IPv4 address `addr` resolves to; the first success
/// wins, else the last error (as std's `each_addr`).
pub(crate) fn each_addr<T>(
    addr: impl ToSocketAddrs,
    what: &str,
    mut f: impl FnMut(SocketAddrV4) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        match v4(a).and_then(&mut f) {
            Ok(t) => return Ok(t),
            Err(e) => last = Some(e),
        }
    }
    Err(last
        .unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("no addresses to {what}"))))
}

pub(crate) fn broken_pipe() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "connection closed for writing")
}

pub(crate) fn annotate(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// A stack error as a std::net user sees it.
pub(crate) trait StackError: core::fmt::Display {
    /// The `io::ErrorKind` a std::net user expects, or the failure of the
    /// connection (reported as the socket error).
    fn io_kind(&self) -> Result<io::ErrorKind, SocketError>;
}

macro_rules! stack_error {
    ($t:ty { $($p:pat => $k:expr,)* }) => {
        impl StackError for $t {
            fn io_kind(&self) -> Result<io::ErrorKind, SocketError> {
                use io::ErrorKind as K;
                Ok(match *self {
                    $($p => $k,)*
                })
            }
        }
    };
}

stack_error!(TcpSocketError { TcpSocketError::TooManySockets => K::OutOfMemory, });
stack_error!(TcpBindError {
    TcpBindError::BadHandle => K::NotConnected,
    TcpBindError::AddrInUse => K::AddrInUse,
    // Linux: EADDRNOTAVAIL when the ephemeral ports run out.
    TcpBindError::AddrNotAvailable | TcpBindError::NoFreePort => K::AddrNotAvailable,
    TcpBindError::AlreadyBound | TcpBindError::AlreadyConnected => K::InvalidInput,
});
stack_error!(TcpListenError {
    TcpListenError::BadHandle => K::NotConnected,
    TcpListenError::NotBound | TcpListenError::AlreadyConnected => K::InvalidInput,
    TcpListenError::Bind(e) => return e.io_kind(),
    TcpListenError::TooManySockets => K::OutOfMemory,
});
stack_error!(TcpAcceptError {
    TcpAcceptError::BadHandle => K::NotConnected,
    TcpAcceptError::WouldBlock => K::WouldBlock,
});
stack_error!(TcpConnectError {
    TcpConnectError::BadHandle => K::NotConnected,
    TcpConnectError::InvalidAddress | TcpConnectError::AlreadyConnected => K::InvalidInput,
    TcpConnectError::NoRoute => K::NetworkUnreachable,
    TcpConnectError::AddrInUse => K::AddrInUse,
    TcpConnectError::NoFreePort => K::AddrNotAvailable,
    TcpConnectError::InProgress => K::WouldBlock,
    TcpConnectError::TooManySockets => K::OutOfMemory,
});
stack_error!(TcpSendError {
    TcpSendError::BadHandle => K::NotConnected,
    TcpSendError::WouldBlock => K::WouldBlock,
    TcpSendError::NotConnected => K::NotConnected,
    TcpSendError::Closed => K::BrokenPipe,
    TcpSendError::Failed(e) => return Err(e),
});
stack_error!(TcpRecvError {
    TcpRecvError::BadHandle => K::NotConnected,
    TcpRecvError::WouldBlock => K::WouldBlock,
    TcpRecvError::Failed(e) => return Err(e),
});
stack_error!(TcpShutdownError { TcpShutdownError::NotConnected => K::NotConnected, });
stack_error!(TcpOptionError {
    TcpOptionError::BadHandle => K::NotConnected,
    TcpOptionError::InvalidValue => K::InvalidInput,
});

/// The `io::Error` a std::net user expects for a stack error.
pub(crate) fn tcp_error<E: StackError>(e: E, what: &str) -> io::Error {
    match e.io_kind() {
        Ok(kind) => io::Error::new(kind, format!("{what}: {e}")),
        Err(failed) => annotate(socket_error(failed), what),
    }
}
