//! The runtime: one thread that owns the stack and the device, and the
//! per-socket readiness through which application threads and tasks wait.
//!
//! The stack is a sans-IO state machine; something has to feed it frames
//! and time and carry its output to the device. That is the driver thread:
//!
//! ```text
//! loop {
//!     poll(2) on [device fd, wake eventfd], timeout = stack's next deadline
//!     lock
//!         read up to `rx_batch` frames -> handle_frame (each)
//!         handle_timeout(now)
//!         poll_transmit until empty    -> device (each)
//!         drain poll_event: take the wakers of that one socket and side
//!     unlock
//!     wake the wakers taken
//! }
//! ```
//!
//! The stack lives in `Mutex<Inner>` shared with application threads,
//! which mutate it through [`StackHandle::with`] (for example to queue a
//! datagram) and then write an eventfd so the driver wakes to transmit.
//! The lock is never held while the driver sleeps in poll(2), nor while
//! anyone waits, and only the driver thread reads the clock: the stack's
//! `Instant` is microseconds since the driver started.
//!
//! # Readiness: who is woken, and why no wakeup is lost
//!
//! Beside the stack, under the same lock, a registry maps each socket
//! handle to two lists of [`Waker`]s, one per side: *read* (data, end of
//! stream, a connection to accept, a datagram) and *write* (room in the
//! send buffer or transmit queue, a connect that completed). Every waiter,
//! a blocked thread or an async task, goes through the same three steps
//! under one acquisition of the lock:
//!
//! 1. ask the socket itself (`tcp_recv`, `tcp_accept`, ...): the truth;
//! 2. if it would block and the driver is still running, register its
//!    waker on that socket's side, keyed by a token (registering again
//!    with the same token replaces the waker, so a task polled many times
//!    holds one entry);
//! 3. release the lock and wait (park the thread, or return `Pending`).
//!
//! The stack changes a socket only under the lock, and reports each change
//! as an [`Event`](tapir_stack::Event) that the driver drains in the same
//! step, still under the lock: `Readable` wakes the read side, `Writable`
//! the write side, `Connected`, `Closed` and `Error` both. So a change
//! either happened before step 1 (and the waiter sees it) or after step 2
//! (and the driver finds the waker): no wakeup is lost, and nothing else
//! is woken. Wakers are taken off the list when woken; a waiter that still
//! has to wait registers again. A waiter that gives up (a timeout, a
//! dropped future) removes its token.
//!
//! Blocked threads wait on a per-thread parker whose `Waker` unparks them,
//! so the blocking sockets ([`crate::tcp`], [`crate::udp`]) and the async
//! ones ([`crate::net`]) share one mechanism. Application calls that
//! change what another waiter of the same socket would see (`shutdown`
//! from another thread) wake that socket's waiters themselves. When the
//! driver stops, every registered waker is woken, and waiters then see the
//! driver's error. [`StackHandle::wait_until`] is the one broadcast left:
//! its predicate may look at anything, so it is re-run after every step;
//! it is for tests and diagnostics, not for sockets.
//!
//! The driver wakes wakers only after releasing the lock, so a woken
//! thread does not immediately block on it. [`DriverStats::wakeups`]
//! counts them.
//!
//! Nothing here depends on the driver being a thread: the step is a
//! function of the stack, the device and the registry, so it can later run
//! as a task on the application's runtime.
//!
//! # Batching and the device
//!
//! Reading a whole batch before transmitting is deliberate: a burst of
//! in-order segments is handled before the stack is asked what to send, so
//! it can answer the burst with one acknowledgement (RFC 5681 4.2 allows
//! delaying ACKs; ACK frequency dominates throughput over a TAP).
//!
//! Offloads: the stack learns what the device does for it
//! ([`Device::offload`]) when the driver starts; frames go in with the
//! device's metadata (`recv_meta` -> `handle_frame_meta`) and out with the
//! stack's (`poll_transmit_meta` -> `send_meta`), so a TAP with
//! `IFF_VNET_HDR` carries 64 KiB TCP super-segments both ways.
//!
//! A frame the device cannot take now (`WouldBlock`, `ENOBUFS`) is kept and
//! retried, in order, before anything else is transmitted: when the
//! device accepts writes again (POLLOUT) or, for `ENOBUFS`, which poll
//! cannot signal, after a short pause. Any other device error stops the
//! driver; the error is kept and reported to every waiting thread.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant as StdInstant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use tapir_stack::{Event, Instant, Interface, SocketHandle, Stats, Transmit};

use crate::device::Device;
use crate::pcap::PcapWriter;

/// Frames handed to the stack per driver step, at most, by default.
pub const DEFAULT_RX_BATCH: usize = 64;
/// Frames transmitted per driver step, at most, by default.
pub const DEFAULT_TX_BATCH: usize = 256;

/// The largest frame the driver reads from a device: a 64 KiB IP datagram
/// plus an Ethernet header, so an offloaded (GRO) frame is never cut short.
const RX_BUF_LEN: usize = 65_535 + 14;

/// Tuning and diagnostics for [`Driver::spawn`].
#[derive(Debug, Clone)]
pub struct DriverOptions {
    /// Record every frame in and out into this pcap file.
    pub pcap: Option<PathBuf>,
    /// Frames read per step before the stack is asked to transmit. Bounds
    /// how long the lock is held and how long transmission waits.
    pub rx_batch: usize,
    /// Frames sent per step; the rest wait for the next step (which comes
    /// at once). Bounds how long the lock is held during bulk sends.
    pub tx_batch: usize,
    /// Longest sleep when the stack has no deadline; the loop wakes this
    /// often anyway (to notice shutdown even if a wake is lost).
    pub max_sleep: Duration,
    /// Poll interval for devices without a descriptor.
    pub idle_poll: Duration,
    /// Pause before retrying a frame refused with `ENOBUFS`.
    pub enobufs_retry: Duration,
    /// Busy polling (Linux's SO_BUSY_POLL, for the device): for this long
    /// after the last frame read or written, the loop polls the device
    /// again at once instead of sleeping until it is readable. A kernel
    /// sender then finds the driver running and no longer pays for waking
    /// it on every frame; the cost is a core spinning while traffic flows.
    /// `None` (the default): sleep whenever there is nothing to do.
    pub busy_poll: Option<Duration>,
    /// Name of the driver thread.
    pub thread_name: String,
}

impl Default for DriverOptions {
    fn default() -> Self {
        DriverOptions {
            pcap: None,
            rx_batch: DEFAULT_RX_BATCH,
            tx_batch: DEFAULT_TX_BATCH,
            max_sleep: Duration::from_secs(1),
            idle_poll: Duration::from_millis(1),
            enobufs_retry: Duration::from_millis(1),
            busy_poll: None,
            thread_name: "tapir-driver".into(),
        }
    }
}

impl DriverOptions {
    /// Default options, capturing to `path`.
    pub fn with_pcap(path: impl Into<PathBuf>) -> Self {
        DriverOptions {
            pcap: Some(path.into()),
            ..Default::default()
        }
    }
}

/// What stopped a driver, kept so every waiter can be told.
#[derive(Debug, Clone)]
struct DriverError {
    kind: io::ErrorKind,
    message: String,
}

impl DriverError {
    fn to_io(&self) -> io::Error {
        io::Error::new(self.kind, format!("tapir driver stopped: {}", self.message))
    }
}

/// The driver's own counters: what happened between the stack and the
/// device (the stack's [`Stats`] count what it sent and received).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DriverStats {
    /// Driver steps completed.
    pub steps: u64,
    /// Frames read from the device and handed to the stack.
    pub rx_frames: u64,
    /// Frames the device accepted.
    pub tx_frames: u64,
    /// Times the device refused a frame for now (`WouldBlock`, `ENOBUFS`);
    /// the frame was kept and retried.
    pub tx_deferred: u64,
    /// Frames dropped because the link was down (`EIO` from a TAP that is
    /// down, `ENETDOWN`), as a NIC without carrier would.
    pub tx_link_down: u64,
    /// Receive errors that said the link went down; reading went on.
    pub rx_link_down: u64,
    /// Wakers the driver woke: each is one blocked thread or task told
    /// that its socket changed (or, for `wait_until`, that a step ran).
    pub wakeups: u64,
}

/// State shared by the driver thread and application threads.
struct Inner {
    /// `None` only after [`DriverHandle::shutdown`] took it back.
    iface: Option<Interface>,
    /// The stack time of the latest driver step.
    now: Instant,
    /// The driver's counters; `steps` lets tests wait for "one more step".
    counters: DriverStats,
    /// Set when the driver thread has left its loop, with the reason if it
    /// was an error.
    stopped: bool,
    error: Option<DriverError>,
    /// Who waits for which socket; see the module doc.
    waiters: Registry,
}

impl Inner {
    /// The error a waiter gets when the driver is gone.
    fn stopped_error(&self) -> io::Error {
        match &self.error {
            Some(e) => e.to_io(),
            None => io::Error::new(io::ErrorKind::NotConnected, "tapir driver shut down"),
        }
    }
}

/// The side of a socket a waiter waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// Data, end of stream, a failure, a connection to accept, a datagram.
    Read,
    /// Room to send, a completed connect, a failure.
    Write,
}

/// Where a waiter registers.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Slot {
    /// One side of one socket: woken by that socket's events only.
    Socket(SocketHandle, Side),
    /// Woken after every driver step (`wait_until`).
    Step,
}

/// Wakers keyed by the waiter's token. Usually one or two entries.
#[derive(Default)]
struct Waiters(Vec<(u64, Waker)>);

impl Waiters {
    fn register(&mut self, token: u64, waker: &Waker) {
        match self.0.iter_mut().find(|(t, _)| *t == token) {
            Some((_, w)) => w.clone_from(waker),
            None => self.0.push((token, waker.clone())),
        }
    }

    fn remove(&mut self, token: u64) {
        self.0.retain(|(t, _)| *t != token);
    }

    fn take_into(&mut self, out: &mut Vec<Waker>) {
        out.extend(self.0.drain(..).map(|(_, w)| w));
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Default)]
struct SocketWaiters {
    read: Waiters,
    write: Waiters,
}

impl SocketWaiters {
    fn side(&mut self, side: Side) -> &mut Waiters {
        match side {
            Side::Read => &mut self.read,
            Side::Write => &mut self.write,
        }
    }
}

/// The readiness registry: an entry only for sockets someone waits on.
#[derive(Default)]
struct Registry {
    sockets: HashMap<SocketHandle, SocketWaiters>,
    step: Waiters,
}

impl Registry {
    fn register(&mut self, slot: Slot, token: u64, waker: &Waker) {
        match slot {
            Slot::Socket(h, side) => self
                .sockets
                .entry(h)
                .or_default()
                .side(side)
                .register(token, waker),
            Slot::Step => self.step.register(token, waker),
        }
    }

    fn remove(&mut self, slot: Slot, token: u64) {
        match slot {
            Slot::Socket(h, side) => {
                if let Some(w) = self.sockets.get_mut(&h) {
                    w.side(side).remove(token);
                    if w.read.is_empty() && w.write.is_empty() {
                        self.sockets.remove(&h);
                    }
                }
            }
            Slot::Step => self.step.remove(token),
        }
    }

    /// Take the wakers of `h`'s sides that `read`/`write` select.
    fn take(&mut self, h: SocketHandle, read: bool, write: bool, out: &mut Vec<Waker>) {
        let Some(w) = self.sockets.get_mut(&h) else {
            return;
        };
        if read {
            w.read.take_into(out);
        }
        if write {
            w.write.take_into(out);
        }
        if w.read.is_empty() && w.write.is_empty() {
            self.sockets.remove(&h);
        }
    }

    fn take_all(&mut self, out: &mut Vec<Waker>) {
        for (_, mut w) in self.sockets.drain() {
            w.read.take_into(out);
            w.write.take_into(out);
        }
        self.step.take_into(out);
    }
}

/// What a blocked thread waits on: a flag and a condition variable, woken
/// through a [`Waker`] like a task.
struct Parker {
    woken: Mutex<bool>,
    cv: Condvar,
}

impl Wake for Parker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        *self.woken.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.cv.notify_one();
    }
}

impl Parker {
    /// Forget a wake left over from an earlier wait.
    fn reset(&self) {
        *self.woken.lock().unwrap_or_else(PoisonError::into_inner) = false;
    }

    /// Sleep until woken or until `deadline`.
    fn park(&self, deadline: Option<StdInstant>) {
        let mut woken = self.woken.lock().unwrap_or_else(PoisonError::into_inner);
        while !*woken {
            woken = match deadline {
                None => self.cv.wait(woken).unwrap_or_else(PoisonError::into_inner),
                Some(d) => {
                    let left = d.saturating_duration_since(StdInstant::now());
                    if left.is_zero() {
                        return;
                    }
                    self.cv
                        .wait_timeout(woken, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
        *woken = false;
    }
}

thread_local! {
    /// Each thread's parker and the waker that unparks it.
    static PARKER: (Arc<Parker>, Waker) = {
        let p = Arc::new(Parker { woken: Mutex::new(false), cv: Condvar::new() });
        let w = Waker::from(p.clone());
        (p, w)
    };
}

/// How application code tells the driver to look at the stack again.
enum Kick {
    /// The driver thread polls this with the device.
    EventFd(EventFd),
    /// The driver task ([`DriverTask`]) awaits this with the device: a
    /// task on the same thread is woken without a system call.
    Task(tokio::sync::Notify),
}

pub(crate) struct Shared {
    inner: Mutex<Inner>,
    /// Written by application code to wake the driver.
    kick: Kick,
    stop: AtomicBool,
    /// Source of waiter tokens.
    next_token: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the stack as it was between
        // calls (the stack never panics half-way by its own rules), so keep
        // going rather than poisoning every later caller.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wake_driver(&self) {
        match &self.kick {
            Kick::EventFd(fd) => {
                if let Err(e) = fd.write(1) {
                    // EAGAIN means the counter is saturated: the driver is woken anyway.
                    if e != Errno::EAGAIN {
                        tracing::warn!(error = %e, "waking the driver failed");
                    }
                }
            }
            // Keeps one permit when the task is not waiting yet, so a kick
            // between its step and its wait is not lost.
            Kick::Task(n) => n.notify_one(),
        }
    }
}

/// How a blocking wait on the stack ended without a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitError {
    TimedOut,
    /// The driver stopped (device error or shutdown).
    Stopped,
}

impl std::fmt::Display for WaitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WaitError::TimedOut => "timed out waiting for the stack",
            WaitError::Stopped => "the tapir driver stopped",
        })
    }
}

impl std::error::Error for WaitError {}

/// Why a blocking wait returned without a result.
enum Blocked {
    TimedOut,
    /// The driver stopped, with the error to report.
    Stopped(io::Error),
}

/// A cheap, cloneable reference to a running stack, for application
/// threads and sockets. The [`DriverHandle`] that owns the thread derefs
/// to one.
#[derive(Clone)]
pub struct StackHandle {
    shared: Arc<Shared>,
}

impl StackHandle {
    /// Run `f` on the stack under the lock, then wake the driver so that
    /// whatever `f` queued is transmitted.
    ///
    /// After [`DriverHandle::shutdown`] there is no stack; `f` is then not
    /// run and the result is an error.
    pub fn try_with<R>(&self, f: impl FnOnce(&mut Interface) -> R) -> io::Result<R> {
        let r = {
            let mut g = self.shared.lock();
            match g.iface.as_mut() {
                Some(iface) => f(iface),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotConnected,
                        "tapir driver shut down",
                    ))
                }
            }
        };
        self.shared.wake_driver();
        Ok(r)
    }

    /// Like [`try_with`](Self::try_with) for callers who hold the
    /// [`DriverHandle`] and so know the stack is there.
    ///
    /// # Panics
    /// After [`DriverHandle::shutdown`].
    pub fn with<R>(&self, f: impl FnOnce(&mut Interface) -> R) -> R {
        match self.try_with(f) {
            Ok(r) => r,
            Err(e) => panic!("StackHandle::with: {e}"),
        }
    }

    /// Block until `f` returns `Some`, re-running it (under the lock) after
    /// every driver step, or until `timeout` passes (`None` waits forever).
    /// Returns `None` on timeout or when the driver stops.
    ///
    /// This is a broadcast (every step wakes every such waiter), for tests
    /// and diagnostics; the sockets wait on their own readiness instead.
    pub fn wait_until<R>(
        &self,
        timeout: Option<Duration>,
        f: impl FnMut(&mut Interface) -> Option<R>,
    ) -> Option<R> {
        self.wait(timeout, f).ok()
    }

    /// [`wait_until`](Self::wait_until) saying why it gave up.
    ///
    /// When `f` returns `Some` it may have changed the stack (taken a
    /// datagram, queued one), so the driver is woken; when it returns
    /// `None` it must not have, or the driver and the waiter would wake
    /// each other forever.
    pub fn wait<R>(
        &self,
        timeout: Option<Duration>,
        f: impl FnMut(&mut Interface) -> Option<R>,
    ) -> Result<R, WaitError> {
        self.block_on(Slot::Step, timeout, f).map_err(|e| match e {
            Blocked::TimedOut => WaitError::TimedOut,
            Blocked::Stopped(_) => WaitError::Stopped,
        })
    }

    /// Block the calling thread until `f` returns `Some`, re-running it
    /// whenever the socket's `side` changes, or until `timeout` passes
    /// (then the error is `timeout_kind`) or the driver stops (its error):
    /// the shape blocking sockets need. `f` follows the rule of
    /// [`wait`](Self::wait).
    pub(crate) fn wait_io<R>(
        &self,
        handle: SocketHandle,
        side: Side,
        timeout: Option<Duration>,
        timeout_kind: io::ErrorKind,
        f: impl FnMut(&mut Interface) -> Option<R>,
    ) -> io::Result<R> {
        self.block_on(Slot::Socket(handle, side), timeout, f)
            .map_err(|e| match e {
                Blocked::TimedOut => io::Error::from(timeout_kind),
                Blocked::Stopped(e) => e,
            })
    }

    fn block_on<R>(
        &self,
        slot: Slot,
        timeout: Option<Duration>,
        mut f: impl FnMut(&mut Interface) -> Option<R>,
    ) -> Result<R, Blocked> {
        let deadline = timeout.map(|t| StdInstant::now() + t);
        let token = self.token();
        PARKER.with(|(parker, waker)| {
            parker.reset();
            loop {
                if let Some(r) = self
                    .poll_slot(slot, Some((token, waker)), &mut f)
                    .map_err(Blocked::Stopped)?
                {
                    return Ok(r);
                }
                if deadline.is_some_and(|d| StdInstant::now() >= d) {
                    self.deregister(slot, token);
                    return Err(Blocked::TimedOut);
                }
                parker.park(deadline);
            }
        })
    }

    /// One look at a socket for a waiter, under the lock: run `f`; if it
    /// returns `Some`, remove the waiter's registration, wake the driver
    /// and return the result; if not, register `waker` under `token` for
    /// `slot` and return `None` (the module doc says why no wakeup can be
    /// lost). Without a waker it is a plain non-blocking try. Fails with
    /// the driver's error once the driver has stopped.
    pub(crate) fn poll_slot<R>(
        &self,
        slot: Slot,
        waker: Option<(u64, &Waker)>,
        f: impl FnOnce(&mut Interface) -> Option<R>,
    ) -> io::Result<Option<R>> {
        let mut g = self.shared.lock();
        let inner = &mut *g;
        let Some(iface) = inner.iface.as_mut() else {
            return Err(inner.stopped_error());
        };
        if let Some(r) = f(iface) {
            if let Some((token, _)) = waker {
                inner.waiters.remove(slot, token);
            }
            drop(g);
            self.shared.wake_driver();
            return Ok(Some(r));
        }
        if inner.stopped {
            return Err(inner.stopped_error());
        }
        if let Some((token, waker)) = waker {
            inner.waiters.register(slot, token, waker);
        }
        Ok(None)
    }

    /// [`poll_slot`](Self::poll_slot) for a task: `Pending` (with `cx`'s
    /// waker registered under `token`) while `f` returns `None`.
    pub(crate) fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        handle: SocketHandle,
        side: Side,
        token: u64,
        f: impl FnOnce(&mut Interface) -> Option<R>,
    ) -> Poll<io::Result<R>> {
        match self.poll_slot(Slot::Socket(handle, side), Some((token, cx.waker())), f) {
            Ok(Some(r)) => Poll::Ready(Ok(r)),
            Ok(None) => Poll::Pending,
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// A fresh waiter token.
    pub(crate) fn token(&self) -> u64 {
        self.shared.next_token.fetch_add(1, Ordering::Relaxed)
    }

    /// Remove a waiter that gave up (a timeout, a dropped future).
    pub(crate) fn deregister(&self, slot: Slot, token: u64) {
        self.shared.lock().waiters.remove(slot, token);
    }

    /// Wake the waiters of one socket: for application calls that change
    /// what another waiter of the same socket sees (`shutdown`).
    pub(crate) fn wake_socket(&self, handle: SocketHandle) {
        let mut wakers = Vec::new();
        self.shared.lock().waiters.take(handle, true, true, &mut wakers);
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Run `f` (the socket's close) and forget the socket's waiters, if
    /// the stack is still there.
    pub(crate) fn close_socket(&self, handle: SocketHandle, f: impl FnOnce(&mut Interface)) {
        let mut wakers = Vec::new();
        {
            let mut g = self.shared.lock();
            g.waiters.take(handle, true, true, &mut wakers);
            let Some(iface) = g.iface.as_mut() else {
                return;
            };
            f(iface);
        }
        self.shared.wake_driver();
        wakers.into_iter().for_each(Waker::wake);
    }

    /// A copy of the stack's counters (zero after shutdown).
    pub fn stats(&self) -> Stats {
        self.shared
            .lock()
            .iface
            .as_ref()
            .map(|i| i.stats().clone())
            .unwrap_or_default()
    }

    /// The stack time of the driver's latest step.
    pub fn now(&self) -> Instant {
        self.shared.lock().now
    }

    /// Driver steps so far.
    pub fn steps(&self) -> u64 {
        self.shared.lock().counters.steps
    }

    /// The driver's own counters.
    pub fn driver_stats(&self) -> DriverStats {
        self.shared.lock().counters.clone()
    }

    /// Whether the driver thread is still running.
    pub fn is_running(&self) -> bool {
        !self.shared.lock().stopped
    }

    /// The error that stopped the driver, if one did.
    pub fn error(&self) -> Option<io::Error> {
        self.shared.lock().error.as_ref().map(DriverError::to_io)
    }
}

/// Owns the driver thread. Derefs to a [`StackHandle`]; dropping it stops
/// the thread (use [`shutdown`](Self::shutdown) to get the stack back).
pub struct DriverHandle {
    stack: StackHandle,
    thread: Option<JoinHandle<()>>,
}

impl std::ops::Deref for DriverHandle {
    type Target = StackHandle;
    fn deref(&self) -> &StackHandle {
        &self.stack
    }
}

impl DriverHandle {
    /// A handle for other threads and sockets.
    pub fn stack(&self) -> StackHandle {
        self.stack.clone()
    }

    /// Stop the driver thread, wait for it, and return the stack (to print
    /// its counters, say). Sockets still open then fail with
    /// `NotConnected`. A pcap file is complete once this returns.
    pub fn shutdown(mut self) -> Interface {
        self.stop_and_join();
        let mut g = self.stack.shared.lock();
        match g.iface.take() {
            Some(iface) => iface,
            // Only shutdown takes it, and shutdown consumes the one handle.
            None => unreachable!("the stack is taken only by shutdown"),
        }
    }

    fn stop_and_join(&mut self) {
        self.stack.shared.stop.store(true, Ordering::SeqCst);
        self.stack.shared.wake_driver();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the tapir driver thread panicked");
                let mut g = self.stack.shared.lock();
                g.stopped = true;
                g.error.get_or_insert(DriverError {
                    kind: io::ErrorKind::Other,
                    message: "driver thread panicked".into(),
                });
            }
        }
    }
}

impl Drop for DriverHandle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Starts drivers: as a thread of their own ([`spawn`](Self::spawn)), or
/// as a task of the application's runtime ([`task`](Self::task)).
pub struct Driver;

impl Driver {
    /// Start a thread that runs `iface` over `device` until the handle is
    /// shut down or dropped, or the device fails. The stack is told what
    /// the device offloads ([`Device::offload`], given to
    /// [`Interface::set_offload`]), replacing what it was told before.
    pub fn spawn(
        iface: Interface,
        device: Box<dyn Device + Send>,
        opts: DriverOptions,
    ) -> io::Result<DriverHandle> {
        let wake = EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)?;
        let mut lp = Loop::new(iface, device, opts, Kick::EventFd(wake))?;
        let shared = lp.shared.clone();
        let thread = std::thread::Builder::new()
            .name(lp.opts.thread_name.clone())
            .spawn(move || {
                let result = lp.run();
                lp.finish(result);
            })?;
        Ok(DriverHandle {
            stack: StackHandle { shared },
            thread: Some(thread),
        })
    }

    /// Run to completion: the driver as a task of the application's tokio
    /// runtime instead of a thread. Spawn [`DriverTask::run`] on the
    /// runtime that runs the sockets' tasks; on a current-thread runtime a
    /// frame is then read, handled, given to the task waiting for it and
    /// answered by one thread, with no cross-thread wakeup and no lock
    /// contention (the issue of the blocking driver: each handoff between
    /// the driver thread and an application thread costs two context
    /// switches).
    ///
    /// The device's descriptor is watched with tokio's [`AsyncFd`] and
    /// the stack's deadlines with its timer, so the future must be polled
    /// inside a runtime with I/O and time enabled. The handle works as for
    /// [`spawn`](Self::spawn): async sockets on any runtime, blocking
    /// sockets from *other* threads (a blocking call on the driver's own
    /// thread would wait for a step that thread can no longer run). Dropping
    /// or shutting down the handle makes the task return; a pcap file is
    /// complete once the task has returned.
    ///
    /// [`AsyncFd`]: tokio::io::unix::AsyncFd
    pub fn task(
        iface: Interface,
        device: Box<dyn Device + Send>,
        opts: DriverOptions,
    ) -> io::Result<(DriverHandle, DriverTask)> {
        let lp = Loop::new(iface, device, opts, Kick::Task(tokio::sync::Notify::new()))?;
        let handle = DriverHandle {
            stack: StackHandle {
                shared: lp.shared.clone(),
            },
            thread: None,
        };
        Ok((handle, DriverTask { lp }))
    }
}

/// A driver made by [`Driver::task`], to be run by the application's
/// runtime.
pub struct DriverTask {
    lp: Loop,
}

impl DriverTask {
    /// Drive the stack until the handle is shut down or dropped, or the
    /// device fails (the error is also what waiting sockets then get).
    pub async fn run(mut self) -> io::Result<()> {
        let result = self.lp.run_async().await;
        let err = result
            .as_ref()
            .err()
            .map(|e| io::Error::new(e.kind(), e.to_string()));
        self.lp.finish(result);
        match err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The device's descriptor, as [`AsyncFd`](tokio::io::unix::AsyncFd)
/// wants it; the device owns it and outlives the registration.
struct DeviceFd(RawFd);

impl AsRawFd for DeviceFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// A frame the device refused for now, kept in `tx_buf[..tx.len]`.
#[derive(Clone, Copy)]
struct Held {
    tx: Transmit,
    /// `ENOBUFS`: poll cannot say when to retry, so pause instead.
    nobufs: bool,
}

/// The driver thread's private state.
struct Loop {
    shared: Arc<Shared>,
    device: Box<dyn Device + Send>,
    pcap: Option<PcapWriter>,
    epoch: StdInstant,
    rx_buf: Vec<u8>,
    tx_buf: Vec<u8>,
    held: Option<Held>,
    /// The transmit batch limit cut a step short: go again without sleeping.
    more_tx: bool,
    /// The receive batch limit cut a step short (the device may hold more
    /// frames): go again without sleeping.
    more_rx: bool,
    /// When a step last read or wrote a frame (for busy polling).
    last_traffic: StdInstant,
    /// The wakers a step takes, woken once the lock is released. Kept to
    /// reuse its allocation.
    to_wake: Vec<Waker>,
    opts: DriverOptions,
}

impl Loop {
    fn new(
        mut iface: Interface,
        device: Box<dyn Device + Send>,
        opts: DriverOptions,
        kick: Kick,
    ) -> io::Result<Loop> {
        iface.set_offload(device.offload());
        let pcap = opts.pcap.as_ref().map(PcapWriter::create).transpose()?;
        let tx_len = iface.max_frame_len();
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                iface: Some(iface),
                now: Instant::ZERO,
                counters: DriverStats::default(),
                stopped: false,
                error: None,
                waiters: Registry::default(),
            }),
            kick,
            stop: AtomicBool::new(false),
            next_token: AtomicU64::new(0),
        });
        Ok(Loop {
            shared,
            device,
            pcap,
            epoch: StdInstant::now(),
            rx_buf: vec![0; RX_BUF_LEN],
            tx_buf: vec![0; tx_len],
            held: None,
            more_tx: false,
            more_rx: false,
            last_traffic: StdInstant::now(),
            to_wake: Vec::new(),
            opts,
        })
    }

    /// After the loop: record why it ended, tell every waiter, and complete
    /// the capture.
    fn finish(&mut self, result: io::Result<()>) {
        let mut g = self.shared.lock();
        g.stopped = true;
        if let Err(e) = result {
            tracing::error!(device = self.device.name(), error = %e, "driver stopped");
            g.error = Some(DriverError {
                kind: e.kind(),
                message: e.to_string(),
            });
        }
        // Everyone waiting learns that the driver is gone.
        let mut wakers = Vec::new();
        g.waiters.take_all(&mut wakers);
        drop(g);
        wakers.into_iter().for_each(Waker::wake);
        if let Some(p) = self.pcap.take() {
            if let Err(e) = p.finish() {
                tracing::warn!(error = %e, "finishing the pcap failed");
            }
        }
    }

    fn stopping(&self) -> bool {
        self.shared.stop.load(Ordering::SeqCst)
    }

    /// [`run`](Self::run) as a task: the same steps, with the waits of
    /// [`sleep`](Self::sleep) made by tokio (the device's readiness, the
    /// kick, the stack's deadline). tokio's epoll is edge-triggered, so a
    /// readiness is cleared before the step that reads (or writes) until
    /// `WouldBlock`; a step cut short by its batch limit goes again after
    /// yielding to the application's tasks, without waiting.
    async fn run_async(&mut self) -> io::Result<()> {
        use tokio::io::unix::AsyncFd;
        use tokio::io::Interest;
        tracing::debug!(device = self.device.name(), "driver task running");
        let fd = match self.device.as_raw_fd() {
            // SAFETY: the device owns the descriptor and keeps it open and
            // the same until it is dropped, and it outlives this function,
            // which owns the registration.
            // Readable only: registered for writability too, every frame
            // the kernel frees after a write (the TAP's write space) would
            // run epoll's callback and wake the runtime.
            Some(fd) => Some(
                unsafe { AsyncFd::register_with_interest(DeviceFd(fd), Interest::READABLE) }
                    .map_err(io::Error::from)?,
            ),
            None => None,
        };
        let shared = self.shared.clone();
        let Kick::Task(kick) = &shared.kick else {
            unreachable!("a driver task is made with a task kick");
        };
        let sleep = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(sleep);
        self.step()?;
        while !self.stopping() {
            if self.more_rx || self.more_tx || self.busy_polling() {
                tokio::task::yield_now().await;
            } else {
                let timeout = self.sleep_for();
                sleep.as_mut().reset(tokio::time::Instant::now() + timeout);
                let writable = matches!(self.held, Some(Held { nobufs: false, .. }));
                tokio::select! {
                    biased;
                    () = kick.notified() => {}
                    r = device_readable(fd.as_ref()) => r?,
                    r = device_writable(fd.as_ref()), if writable => r?,
                    () = &mut sleep => {}
                }
            }
            if self.stopping() {
                break;
            }
            self.step()?;
        }
        tracing::debug!(device = self.device.name(), "driver task stopping");
        Ok(())
    }

    fn now(&self) -> Instant {
        Instant::from_micros(u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX))
    }

    fn run(&mut self) -> io::Result<()> {
        tracing::debug!(device = self.device.name(), "driver running");
        // A first step before sleeping: the application may have queued
        // work before the thread started.
        self.step()?;
        while !self.shared.stop.load(Ordering::SeqCst) {
            if !self.busy_polling() {
                self.sleep()?;
            }
            if self.shared.stop.load(Ordering::SeqCst) {
                break;
            }
            self.step()?;
        }
        tracing::debug!(device = self.device.name(), "driver stopping");
        Ok(())
    }

    /// Within the busy-polling spell after the last frame.
    fn busy_polling(&self) -> bool {
        self.opts
            .busy_poll
            .is_some_and(|spell| self.last_traffic.elapsed() < spell)
    }

    /// How long the driver may sleep.
    fn sleep_for(&self) -> Duration {
        if self.more_tx || self.more_rx {
            return Duration::ZERO;
        }
        let mut d = self.opts.max_sleep;
        if let Some(held) = self.held {
            if held.nobufs {
                d = d.min(self.opts.enobufs_retry);
            }
        }
        if self.device.as_raw_fd().is_none() {
            d = d.min(self.opts.idle_poll);
        }
        let g = self.shared.lock();
        if let Some(deadline) = g.iface.as_ref().and_then(|i| i.poll_timeout()) {
            d = d.min(deadline.saturating_duration_since(self.now()));
        }
        d
    }

    fn sleep(&mut self) -> io::Result<()> {
        let timeout = self.sleep_for();
        // Round up so we wake after the deadline, not just before it (which
        // would spin through zero-timeout polls until it passes).
        let ms = timeout.as_micros().div_ceil(1000);
        let timeout = PollTimeout::try_from(ms.min(i32::MAX as u128) as i32).unwrap_or(PollTimeout::MAX);
        let mut dev_events = PollFlags::POLLIN;
        if matches!(self.held, Some(Held { nobufs: false, .. })) {
            dev_events |= PollFlags::POLLOUT;
        }
        let dev_fd = self.device.as_raw_fd();
        // SAFETY: the device owns the descriptor and outlives this call.
        let dev_fd = dev_fd.map(|fd| unsafe { BorrowedFd::borrow_raw(fd) });
        let mut fds = Vec::with_capacity(2);
        let Kick::EventFd(kick) = &self.shared.kick else {
            unreachable!("a driver thread is made with an eventfd kick");
        };
        fds.push(PollFd::new(kick.as_fd(), PollFlags::POLLIN));
        if let Some(fd) = dev_fd {
            fds.push(PollFd::new(fd, dev_events));
        }
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(io::Error::new(io::Error::from(e).kind(), format!("poll: {e}"))),
        }
        if let Some(dev) = fds.get(1) {
            let bad = PollFlags::POLLERR | PollFlags::POLLHUP | PollFlags::POLLNVAL;
            if let Some(r) = dev.revents() {
                if r.contains(PollFlags::POLLNVAL) {
                    return Err(io::Error::other(format!(
                        "device {} descriptor closed",
                        self.device.name()
                    )));
                }
                if r.intersects(bad) {
                    tracing::debug!(device = self.device.name(), revents = ?r, "device poll error");
                }
            }
        }
        // Clear the wake-up; the step below looks at everything anyway.
        if let Kick::EventFd(fd) = &self.shared.kick {
            let _ = fd.read();
        }
        Ok(())
    }

    /// One round: receive a batch, run timers, transmit, wake waiters.
    fn step(&mut self) -> io::Result<()> {
        let mut g = self.shared.lock();
        let now = self.now();
        let inner = &mut *g;
        inner.now = now;
        let c = &mut inner.counters;
        let waiters = &mut inner.waiters;
        let Some(iface) = inner.iface.as_mut() else {
            return Ok(());
        };

        self.more_rx = true;
        let rx_before = c.rx_frames;
        for _ in 0..self.opts.rx_batch {
            match self.device.recv_meta(&mut self.rx_buf) {
                Ok((n, meta)) => {
                    let frame = &self.rx_buf[..n];
                    record(&mut self.pcap, frame);
                    iface.handle_frame_meta(now, frame, meta);
                    c.rx_frames += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.more_rx = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if link_down(&e) => {
                    tracing::debug!(device = self.device.name(), error = %e, "link down (receive)");
                    c.rx_link_down += 1;
                }
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("receiving from {}: {e}", self.device.name()),
                    ))
                }
            }
        }

        iface.handle_timeout(now);

        // The frame the device refused last time goes first, to keep order.
        self.more_tx = false;
        let mut sent = 0;
        if let Some(held) = self.held.take() {
            self.held = send(&mut *self.device, &mut self.tx_buf, held.tx, c)?;
            sent += 1;
        }
        while self.held.is_none() {
            if sent >= self.opts.tx_batch {
                self.more_tx = true;
                break;
            }
            let Some(tx) = iface.poll_transmit_meta(now, &mut self.tx_buf) else {
                break;
            };
            record(&mut self.pcap, &self.tx_buf[..tx.len]);
            self.held = send(&mut *self.device, &mut self.tx_buf, tx, c)?;
            sent += 1;
        }

        // Each event wakes the waiters of its own socket and side only.
        while let Some(ev) = iface.poll_event() {
            let (h, read, write) = match ev {
                Event::Readable(h) => (h, true, false),
                Event::Writable(h) => (h, false, true),
                Event::Connected(h) | Event::Closed(h) | Event::Error(h, _) => (h, true, true),
            };
            waiters.take(h, read, write, &mut self.to_wake);
        }
        waiters.step.take_into(&mut self.to_wake);

        if self.opts.busy_poll.is_some() && (sent > 0 || c.rx_frames != rx_before) {
            self.last_traffic = StdInstant::now();
        }
        c.steps += 1;
        c.wakeups += self.to_wake.len() as u64;
        drop(g);
        self.to_wake.drain(..).for_each(Waker::wake);
        Ok(())
    }
}

/// Wait until the device has a frame to read, and clear that readiness
/// (the step that follows reads until `WouldBlock`). Without a
/// descriptor, never: the timer polls instead.
async fn device_readable(fd: Option<&tokio::io::unix::AsyncFd<DeviceFd>>) -> io::Result<()> {
    let Some(fd) = fd else {
        return std::future::pending().await;
    };
    fd.readable().await?.clear_ready();
    Ok(())
}

/// Wait until the device takes writes again, for a frame it refused. A
/// registration of its own, on a duplicate of the descriptor, made only
/// while a frame waits (rare: a TAP has no send buffer limit by default);
/// epoll reports a descriptor that is already writable when it is added,
/// so a wakeup between the refused write and this is not lost.
async fn device_writable(fd: Option<&tokio::io::unix::AsyncFd<DeviceFd>>) -> io::Result<()> {
    use tokio::io::unix::AsyncFd;
    let Some(fd) = fd else {
        return std::future::pending().await;
    };
    // SAFETY: the device's descriptor is open for the whole call (the
    // device outlives the driver's loop).
    let dup = nix::unistd::dup(unsafe { BorrowedFd::borrow_raw(fd.as_raw_fd()) })?;
    // SAFETY: the registration owns the duplicate, which stays open and
    // the same until it is dropped.
    let w = unsafe { AsyncFd::register_with_interest(dup, tokio::io::Interest::WRITABLE) }
        .map_err(io::Error::from)?;
    w.writable().await?.clear_ready();
    Ok(())
}

/// Errors that mean "the link is down", not "the device is gone".
fn link_down(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EIO | libc::ENETDOWN))
}

/// Send the frame `tx` describes in `buf`. `Ok(Some(held))` when the
/// device refused it for now; the frame stays in the caller's buffer.
fn send(
    device: &mut (dyn Device + Send),
    buf: &mut [u8],
    mut tx: Transmit,
    c: &mut DriverStats,
) -> io::Result<Option<Held>> {
    let frame = &mut buf[..tx.len];
    loop {
        let nobufs = match device.send_meta(frame, &mut tx) {
            Ok(()) => {
                c.tx_frames += 1;
                return Ok(None);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => true,
            Err(e) if link_down(&e) => {
                tracing::debug!(device = device.name(), error = %e, "link down: frame dropped");
                c.tx_link_down += 1;
                return Ok(None);
            }
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("sending to {}: {e}", device.name()),
                ))
            }
        };
        c.tx_deferred += 1;
        return Ok(Some(Held { tx, nobufs }));
    }
}

/// Record a frame in the capture, if any. A capture that fails to write
/// (disk full) is closed with one warning rather than one per frame.
fn record(pcap: &mut Option<PcapWriter>, frame: &[u8]) {
    let Some(p) = pcap.as_mut() else {
        return;
    };
    if let Err(e) = p.write_frame(frame) {
        tracing::warn!(path = %p.path().display(), error = %e, "pcap write failed; capture stopped");
        *pcap = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counter() -> (Arc<Count>, Waker) {
        let c = Arc::new(Count(AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    }

    fn handle(iface: &mut Interface, port: u16) -> SocketHandle {
        iface
            .udp_bind(std::net::SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, port))
            .expect("bind")
    }

    fn iface() -> Interface {
        use tapir_stack::wire::{EthernetAddress, Ipv4Cidr};
        let cidr = Ipv4Cidr::new(std::net::Ipv4Addr::new(10, 77, 0, 2), 24).expect("prefix");
        Interface::new(tapir_stack::Config::new(
            EthernetAddress::local_from_seed(1),
            cidr,
        ))
        .expect("config")
    }

    #[test]
    fn registry_wakes_only_the_socket_and_side_concerned() {
        let mut i = iface();
        let (a, b) = (handle(&mut i, 1), handle(&mut i, 2));
        let mut r = Registry::default();
        let (ca, wa) = counter();
        let (cb, wb) = counter();
        let (cw, ww) = counter();
        r.register(Slot::Socket(a, Side::Read), 1, &wa);
        // The same token again replaces, it does not add.
        r.register(Slot::Socket(a, Side::Read), 1, &wa);
        r.register(Slot::Socket(b, Side::Read), 2, &wb);
        r.register(Slot::Socket(a, Side::Write), 3, &ww);
        let mut out = Vec::new();
        r.take(a, true, false, &mut out);
        assert_eq!(out.len(), 1);
        out.drain(..).for_each(Waker::wake);
        assert_eq!(ca.0.load(Ordering::SeqCst), 1);
        assert_eq!(cb.0.load(Ordering::SeqCst), 0);
        assert_eq!(cw.0.load(Ordering::SeqCst), 0);
        // Taken wakers are gone: a second event finds nobody.
        r.take(a, true, false, &mut out);
        assert!(out.is_empty());
        // A waiter that gave up is removed, and the socket's entry with it.
        r.remove(Slot::Socket(a, Side::Write), 3);
        r.remove(Slot::Socket(b, Side::Read), 2);
        assert!(r.sockets.is_empty());
        // take_all reaches every socket and the step waiters.
        r.register(Slot::Socket(b, Side::Write), 4, &wb);
        r.register(Slot::Step, 5, &wa);
        r.take_all(&mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn a_parker_woken_before_it_parks_does_not_sleep() {
        PARKER.with(|(p, w)| {
            p.reset();
            w.wake_by_ref();
            // Returns at once; a lost wake would hang here (bounded by the
            // deadline, which then fails the assertion below).
            let start = StdInstant::now();
            p.park(Some(start + Duration::from_secs(5)));
            assert!(start.elapsed() < Duration::from_secs(4));
        });
    }
}
