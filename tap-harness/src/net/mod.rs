//! Async sockets over a running tapir stack, shaped like [`tokio::net`] so
//! that code written for tokio ports by changing an import and passing the
//! stack handle:
//!
//! ```text
//! tokio::net::TcpListener::bind("0.0.0.0:80").await?
//! tapir_harness::net::TcpListener::bind(&stack, "0.0.0.0:80").await?
//!
//! tokio::net::TcpStream::connect(addr).await?
//! tapir_harness::net::TcpStream::connect(&stack, addr).await?
//! ```
//!
//! Everything else keeps tokio's names, signatures and semantics:
//! [`TcpStream`] implements [`tokio::io::AsyncRead`] and
//! [`tokio::io::AsyncWrite`] (so `AsyncReadExt`, `copy`, `BufReader`,
//! hyper-util's `TokioIo` and friends work as they are), `poll_shutdown`
//! sends a FIN, and there are `readable`/`writable`/`ready`,
//! `try_read`/`try_write`, `peek`, borrowed [`split`](TcpStream::split)
//! and owned [`into_split`](TcpStream::into_split) halves,
//! `peer_addr`/`local_addr`/`set_nodelay`. [`UdpSocket`] has
//! `send_to`/`recv_from`/`connect`/`send`/`recv` and their `try_`/`poll_`
//! forms.
//!
//! # How waiting works
//!
//! A socket operation locks the stack, tries the operation and, if it
//! would block, registers the task's waker on that one socket before
//! releasing the lock; the driver wakes it when the stack reports an event
//! for that socket (see [`crate::driver`]). The futures need no particular
//! executor: the driver thread does the waking, so they run on tokio's
//! runtimes (current-thread or multi-thread) or any other. Timeouts are the
//! runtime's business: wrap a call in `tokio::time::timeout`.
//!
//! # Cancellation
//!
//! As in tokio, dropping a future never loses data and leaves the stack
//! consistent: an operation takes effect in the stack only in the poll
//! that returns `Ready`, and a dropped future removes its waker.
//! - `accept`, `read`/`recv`/`recv_from`, `readable`/`writable`/`ready`,
//!   `peek`, and `write`/`send`/`send_to` (a datagram is queued whole or
//!   not at all) are cancel safe.
//! - `connect`: dropping it before it completes aborts the half-open
//!   connection (the stack frees it; the peer, if it answered, gets a RST).
//! - `write_all`/`read_exact` (tokio's helpers) are not, as in tokio: the
//!   part already written stays written.
//!
//! Errors follow the blocking sockets ([`crate::tcp`]): a connection's
//! failure is reported once (`ConnectionReset`, `TimedOut`...), after which
//! reads see end of stream and writes `BrokenPipe`. tapir speaks IPv4
//! only.
//!
//! An echo server, as written for tokio:
//!
//! ```no_run
//! use tapir_harness::net::TcpListener;
//! use tapir_harness::StackHandle;
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # async fn serve(stack: &StackHandle) -> std::io::Result<()> {
//! let listener = TcpListener::bind(stack, "0.0.0.0:7").await?;
//! loop {
//!     let (mut stream, _peer) = listener.accept().await?;
//!     tokio::spawn(async move {
//!         let mut buf = [0u8; 4096];
//!         loop {
//!             match stream.read(&mut buf).await {
//!                 Ok(0) | Err(_) => break,
//!                 Ok(n) => {
//!                     if stream.write_all(&buf[..n]).await.is_err() {
//!                         break;
//!                     }
//!                 }
//!             }
//!         }
//!     });
//! }
//! # }
//! ```

pub mod tcp;
mod udp;

pub use tcp::{TcpListener, TcpStream};
pub use udp::UdpSocket;

use std::io;
use std::task::{Context, Poll};

use tapir_stack::{Interface, SocketHandle};

use crate::driver::{Side, Slot, StackHandle};

/// One registration for a future that may be dropped before it completes:
/// it owns a token, and removes it from the registry on drop.
struct Waiter<'a> {
    stack: &'a StackHandle,
    slot: Slot,
    token: u64,
}

impl<'a> Waiter<'a> {
    fn new(stack: &'a StackHandle, handle: SocketHandle, side: Side) -> Self {
        Waiter {
            stack,
            slot: Slot::Socket(handle, side),
            token: stack.token(),
        }
    }

    fn poll<R>(
        &self,
        cx: &mut Context<'_>,
        f: impl FnOnce(&mut Interface) -> Option<R>,
    ) -> Poll<io::Result<R>> {
        match self.stack.poll_slot(self.slot, Some((self.token, cx.waker())), f) {
            Ok(Some(r)) => Poll::Ready(Ok(r)),
            Ok(None) => Poll::Pending,
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// Wait until `f` returns `Some`.
    async fn wait<R>(&self, mut f: impl FnMut(&mut Interface) -> Option<R>) -> io::Result<R> {
        std::future::poll_fn(|cx| self.poll(cx, &mut f)).await
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.stack.deregister(self.slot, self.token);
    }
}
