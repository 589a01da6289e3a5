//! The link emulator on real devices: [`ImpairedDevice`] between tapir's
//! stack and its device, and [`Bridge`] between two interfaces.
//!
//! Both run the sans-IO model of [`tapir_stack::impair`] (the one the
//! in-memory simulator uses) on the monotonic clock, one [`Emulator`] per
//! direction, each seeded on its own.
//!
//! The [`ImpairedDevice`] needs no help from the driver: its descriptor is
//! an epoll set holding the wrapped device's descriptor and a timerfd armed
//! for the emulator's next deadline, so the driver's poll(2) wakes when a
//! delayed frame is due just as when a frame arrives. Frames are released
//! from inside `recv` and `send`, which the driver calls at every step.
//!
//! The [`Bridge`] is one thread per direction: `recvmmsg(2)` a batch from
//! one interface's `AF_PACKET` socket, and, with no impairment, hand the
//! same buffers to `sendmmsg(2)` on the other (no copy, no allocation);
//! with impairments, through the emulator, whose buffers are recycled.
//! `AF_PACKET` sees frames as the kernel has them. With no impairment in
//! either direction the bridge asks for `PACKET_VNET_HDR`, so a GSO frame
//! (up to 64 KiB, checksum left to offload) crosses whole with its virtio
//! header, as between a VM and its host: the peers keep their offloads.
//! With impairments the emulator must see wire frames: the interfaces'
//! peers must not use TSO/GSO or transmit checksum offload (`ethtool -K IF
//! tx off tso off gso off`); frames larger than the MTU are counted as
//! oversized and dropped.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant as StdInstant;

use tapir_stack::impair::{Emulator, Impairments, LinkStats, Spec, ETH_HEADER};
use tapir_stack::Instant;

use crate::device::{Device, PacketDevice};

/// A seed for a direction whose spec names none: fixed, so runs repeat.
const DEFAULT_SEED: u64 = 0x1a9e_5eed;

/// Frames read from the wrapped device per call, at most, before the
/// emulator is asked for one: bounds the time one `recv` takes.
const RX_DRAIN: usize = 256;

/// Frames per `recvmmsg`/`sendmmsg` in the bridge.
const BRIDGE_BATCH: usize = 64;

/// `struct virtio_net_hdr`, ahead of each frame with `PACKET_VNET_HDR`.
const VNET_HDR_LEN: usize = 10;

/// A bridge buffer: room for a 64 KiB GSO frame and its virtio header, so
/// one is seen whole rather than cut short.
const BRIDGE_BUF: usize = 65_535 + ETH_HEADER + VNET_HDR_LEN;

fn emulator(spec: &Spec, salt: u64) -> Emulator {
    Emulator::new(spec.imp.clone(), spec.seed.unwrap_or(DEFAULT_SEED) ^ salt)
}

/// Microseconds since `epoch`, as the stack's `Instant`.
fn since(epoch: StdInstant) -> Instant {
    Instant::from_micros(u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX))
}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// The emulator's timer is set at most this often. Setting a timerfd
/// reprograms the clock, which on a virtual machine costs tens of
/// microseconds: armed for every frame's own deadline it took most of the
/// stack's CPU at 25 000 frames a second. Frames due within a granule
/// leave together, at most this late (a twentieth of a 2 ms round trip).
const TIMER_GRANULE: std::time::Duration = std::time::Duration::from_micros(100);

/// A timerfd on `CLOCK_MONOTONIC`, non-blocking.
fn timerfd() -> io::Result<OwnedFd> {
    // SAFETY: plain timerfd_create; the result is checked.
    let fd =
        cvt(unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) })?;
    // SAFETY: fd is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Arm `timer` to fire once after `after` (at least 1 ns: zero disarms).
fn arm(timer: &OwnedFd, after: std::time::Duration) -> io::Result<()> {
    let after = after.max(std::time::Duration::from_nanos(1));
    // SAFETY: itimerspec is plain old data.
    let mut spec: libc::itimerspec = unsafe { mem::zeroed() };
    spec.it_value.tv_sec = after.as_secs().min(i32::MAX as u64) as libc::time_t;
    spec.it_value.tv_nsec = libc::c_long::from(after.subsec_nanos() as i32);
    // SAFETY: spec is valid; the old value is not wanted.
    cvt(unsafe { libc::timerfd_settime(timer.as_raw_fd(), 0, &spec, std::ptr::null_mut()) })?;
    Ok(())
}

fn epoll_set(epoll: &OwnedFd, op: libc::c_int, fd: RawFd, events: u32) -> io::Result<()> {
    let mut ev = libc::epoll_event {
        events,
        u64: fd as u64,
    };
    // SAFETY: ev is a valid epoll_event.
    cvt(unsafe { libc::epoll_ctl(epoll.as_raw_fd(), op, fd, &mut ev) })?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Between the stack and its device

/// A [`Device`] that passes the wrapped device's frames through an emulated
/// link: `tx` for frames the stack sends, `rx` for frames it receives.
pub struct ImpairedDevice<D> {
    inner: D,
    rx: Emulator,
    tx: Emulator,
    epoch: StdInstant,
    epoll: OwnedFd,
    timer: OwnedFd,
    /// When `timer` is set to fire, if it is.
    armed: Option<Instant>,
    /// Times the timer was set.
    timer_arms: u64,
    /// A frame the wrapped device refused for now; sent first next time.
    blocked: Option<Vec<u8>>,
    /// The wrapped device's descriptor is in the epoll set for writing too.
    want_out: bool,
    /// Frames dropped because the wrapped device failed to take them.
    tx_errors: u64,
    scratch: Vec<u8>,
    stats: Arc<Mutex<(LinkStats, LinkStats)>>,
}

impl<D: Device> ImpairedDevice<D> {
    /// Wrap `inner`: frames it receives pass through `rx`, frames sent to
    /// it through `tx`.
    pub fn new(inner: D, rx: &Spec, tx: &Spec) -> io::Result<Self> {
        // SAFETY: plain epoll_create1; the result is checked.
        let epoll = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: a fresh descriptor we own.
        let epoll = unsafe { OwnedFd::from_raw_fd(epoll) };
        let timer = timerfd()?;
        epoll_set(
            &epoll,
            libc::EPOLL_CTL_ADD,
            timer.as_raw_fd(),
            libc::EPOLLIN as u32,
        )?;
        if let Some(fd) = inner.as_raw_fd() {
            epoll_set(&epoll, libc::EPOLL_CTL_ADD, fd, libc::EPOLLIN as u32)?;
        }
        tracing::info!(device = inner.name(), %rx, %tx, "link emulator on the device");
        let mut dev = ImpairedDevice {
            inner,
            rx: emulator(rx, 1),
            tx: emulator(tx, 2),
            epoch: StdInstant::now(),
            epoll,
            timer,
            armed: None,
            timer_arms: 0,
            blocked: None,
            want_out: false,
            tx_errors: 0,
            scratch: vec![0; 65_535 + ETH_HEADER],
            stats: Arc::default(),
        };
        if dev.inner.as_raw_fd().is_none() {
            // Nothing to wait on: look at the device every millisecond.
            arm(&dev.timer, std::time::Duration::from_millis(1))?;
            dev.armed = Some(since(dev.epoch) + std::time::Duration::from_millis(1));
        }
        Ok(dev)
    }

    /// How many times the emulator's timer was set: a system call each,
    /// which [`TIMER_GRANULE`] bounds.
    pub fn timer_arms(&self) -> u64 {
        self.timer_arms
    }

    /// The counters of both directions, (rx, tx), updated as frames move;
    /// readable from another thread while the driver owns the device.
    pub fn stats_handle(&self) -> Arc<Mutex<(LinkStats, LinkStats)>> {
        self.stats.clone()
    }

    fn publish(&self) {
        let mut s = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
        s.0.clone_from(self.rx.stats());
        s.1.clone_from(self.tx.stats());
    }

    /// Send what is due to the wrapped device, stopping at a refusal.
    fn flush_tx(&mut self, now: Instant) {
        loop {
            let frame = match self.blocked.take() {
                Some(f) => f,
                None => match self.tx.poll_frame(now) {
                    Some(f) => f,
                    None => break,
                },
            };
            match self.inner.send(&frame) {
                Ok(()) => self.tx.recycle(frame),
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock || e.raw_os_error() == Some(libc::ENOBUFS) =>
                {
                    self.blocked = Some(frame);
                    break;
                }
                Err(e) => {
                    // A link that is down loses frames, as the driver's own
                    // path does; anything else also ends this frame only.
                    tracing::debug!(device = self.inner.name(), error = %e, "emulated link: send failed");
                    self.tx_errors += 1;
                    self.tx.recycle(frame);
                }
            }
        }
        let want_out = self.blocked.is_some();
        if want_out != self.want_out {
            if let Some(fd) = self.inner.as_raw_fd() {
                let mut events = libc::EPOLLIN as u32;
                if want_out {
                    events |= libc::EPOLLOUT as u32;
                }
                if epoll_set(&self.epoll, libc::EPOLL_CTL_MOD, fd, events).is_ok() {
                    self.want_out = want_out;
                }
            }
        }
    }

    /// Arm the timer for the next deadline of either direction, unless it
    /// is armed for that or earlier already: with a fixed delay, the next
    /// deadline is the oldest frame's through a whole burst, and setting a
    /// timerfd costs a system call that reprograms the clock (on a virtual
    /// machine, 67 % of the stack's CPU time at 25 000 frames a second).
    /// A timer that fires early only makes the driver look once more.
    fn rearm(&mut self, now: Instant) {
        if self.armed.is_some_and(|at| at <= now) {
            // Reading clears a past expiry, so poll stops reporting it.
            let mut ticks = [0u8; 8];
            // SAFETY: ticks is 8 bytes, as a timerfd read needs.
            let _ = unsafe { libc::read(self.timer.as_raw_fd(), ticks.as_mut_ptr().cast(), 8) };
            self.armed = None;
        }
        let mut next = match (self.rx.poll_timeout(), self.tx.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if self.inner.as_raw_fd().is_none() {
            let poll = now + std::time::Duration::from_millis(1);
            next = Some(next.map_or(poll, |n| n.min(poll)));
        }
        // At most one timer per TIMER_GRANULE: frames then leave up to that
        // much after their time, in batches.
        let next = next.map(|at| at.max(now + TIMER_GRANULE));
        if let Some(at) = next.filter(|&at| self.armed.is_none_or(|armed| at < armed)) {
            match arm(&self.timer, at.saturating_duration_since(now)) {
                Ok(()) => {
                    self.armed = Some(at);
                    self.timer_arms += 1;
                }
                Err(e) => tracing::warn!(error = %e, "emulated link: arming the timer failed"),
            }
        }
    }
}

impl<D: Device> Device for ImpairedDevice<D> {
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let now = since(self.epoch);
        self.flush_tx(now);
        let mut error = None;
        for _ in 0..RX_DRAIN {
            match self.inner.recv(&mut self.scratch) {
                Ok(n) => self.rx.offer(now, &self.scratch[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        while let Some(frame) = self.rx.poll_frame(now) {
            let n = frame.len();
            let fits = n <= buf.len();
            if fits {
                buf[..n].copy_from_slice(&frame);
            }
            self.rx.recycle(frame);
            if fits {
                self.publish();
                return Ok(n);
            }
        }
        self.rearm(now);
        self.publish();
        match error {
            Some(e) => Err(e),
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        let now = since(self.epoch);
        self.tx.offer(now, frame);
        self.flush_tx(now);
        self.rearm(now);
        Ok(())
    }

    fn as_raw_fd(&self) -> Option<RawFd> {
        Some(self.epoll.as_raw_fd())
    }

    fn mtu(&self) -> Option<usize> {
        self.inner.mtu()
    }

    fn name(&self) -> &str {
        self.inner.name()
    }
}

// ---------------------------------------------------------------------------
// Between two interfaces

/// What one direction of a [`Bridge`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BridgeStats {
    /// The emulated link's counters.
    pub link: LinkStats,
    /// Bytes forwarded.
    pub bytes: u64,
    /// Frames larger than the receive buffer (GSO frames: turn offloads
    /// off on the peers) or than the out interface takes; dropped.
    pub oversized: u64,
    /// Frames the out interface refused (its queue full); dropped.
    pub send_dropped: u64,
}

/// Forwards every frame between two interfaces through an emulated link,
/// until stopped. See the module docs.
pub struct Bridge {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<io::Result<BridgeStats>>>,
}

impl Bridge {
    /// Open `AF_PACKET` sockets on `a` and `b` (in the calling thread's
    /// namespace) and forward `a → b` through `a_to_b` and `b → a` through
    /// `b_to_a`.
    pub fn start(a: &str, b: &str, a_to_b: &Spec, b_to_a: &Spec) -> io::Result<Bridge> {
        let da = Arc::new(PacketDevice::open(a)?);
        let db = Arc::new(PacketDevice::open(b)?);
        for d in [&da, &db] {
            // Room for bursts while the other thread has the core; as root
            // past rmem_max. Best effort.
            let size: libc::c_int = 8 << 20;
            for opt in [libc::SO_RCVBUFFORCE, libc::SO_SNDBUFFORCE] {
                // SAFETY: size is a c_int, as the option takes.
                unsafe {
                    libc::setsockopt(
                        d.as_raw_fd().unwrap_or(-1),
                        libc::SOL_SOCKET,
                        opt,
                        (&size as *const libc::c_int).cast(),
                        mem::size_of::<libc::c_int>() as libc::socklen_t,
                    )
                };
            }
        }
        // Both directions untouched: pass GSO frames through whole.
        let vnet = a_to_b.imp.is_transparent() && b_to_a.imp.is_transparent();
        if vnet {
            for d in [&da, &db] {
                let one: libc::c_int = 1;
                // SAFETY: one is a c_int, as the option takes.
                let rc = unsafe {
                    libc::setsockopt(
                        d.as_raw_fd().unwrap_or(-1),
                        libc::SOL_PACKET,
                        libc::PACKET_VNET_HDR,
                        (&one as *const libc::c_int).cast(),
                        mem::size_of::<libc::c_int>() as libc::socklen_t,
                    )
                };
                cvt(rc)
                    .map_err(|e| io::Error::new(e.kind(), format!("PACKET_VNET_HDR on {}: {e}", d.name())))?;
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (from, to, spec, salt) in [(&da, &db, a_to_b, 1), (&db, &da, b_to_a, 2)] {
            let (from, to, stop) = (from.clone(), to.clone(), stop.clone());
            let em = emulator(spec, salt);
            let name = format!("impair-{}>{}", from.name(), to.name());
            tracing::info!(direction = %name, %spec, "bridge direction");
            threads.push(
                std::thread::Builder::new()
                    .name(name)
                    .spawn(move || Direction::new(&from, &to, em, vnet).run(&stop))?,
            );
        }
        Ok(Bridge { stop, threads })
    }

    /// Stop forwarding; the counters of (a → b, b → a).
    pub fn stop(mut self) -> io::Result<(BridgeStats, BridgeStats)> {
        self.stop.store(true, Ordering::SeqCst);
        let mut out = Vec::new();
        for t in self.threads.drain(..) {
            out.push(
                t.join()
                    .map_err(|_| io::Error::other("bridge thread panicked"))??,
            );
        }
        let b = out.pop().unwrap_or_default();
        let a = out.pop().unwrap_or_default();
        Ok((a, b))
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One direction of a bridge: its buffers, allocated once.
struct Direction<'a> {
    from: &'a PacketDevice,
    to: &'a PacketDevice,
    em: Emulator,
    transparent: bool,
    /// Frames carry a virtio header (only when transparent).
    vnet: bool,
    bufs: Vec<Vec<u8>>,
    iovs: Vec<libc::iovec>,
    addrs: Vec<libc::sockaddr_ll>,
    msgs: Vec<libc::mmsghdr>,
    /// Frames ready to send: (buffer index or emulator frame).
    out: Vec<Vec<u8>>,
    out_iovs: Vec<libc::iovec>,
    out_msgs: Vec<libc::mmsghdr>,
    epoch: StdInstant,
    stats: BridgeStats,
}

impl<'a> Direction<'a> {
    fn new(from: &'a PacketDevice, to: &'a PacketDevice, em: Emulator, vnet: bool) -> Self {
        let transparent = em.impairments().is_transparent();
        Direction {
            from,
            to,
            transparent,
            vnet,
            em,
            bufs: (0..BRIDGE_BATCH).map(|_| vec![0u8; BRIDGE_BUF]).collect(),
            // SAFETY (all three): plain old data, filled in before use.
            iovs: vec![unsafe { mem::zeroed() }; BRIDGE_BATCH],
            addrs: vec![unsafe { mem::zeroed() }; BRIDGE_BATCH],
            msgs: vec![unsafe { mem::zeroed() }; BRIDGE_BATCH],
            out: Vec::with_capacity(BRIDGE_BATCH),
            out_iovs: vec![unsafe { mem::zeroed() }; BRIDGE_BATCH],
            out_msgs: vec![unsafe { mem::zeroed() }; BRIDGE_BATCH],
            epoch: StdInstant::now(),
            stats: BridgeStats::default(),
        }
    }

    fn fd(d: &PacketDevice) -> RawFd {
        d.as_raw_fd().unwrap_or(-1)
    }

    fn run(mut self, stop: &AtomicBool) -> io::Result<BridgeStats> {
        let max_frame = self.to.mtu().unwrap_or(1500) + ETH_HEADER;
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            let now = since(self.epoch);
            // Sleep until a frame comes, the emulator has one due, or it is
            // time to look at `stop`.
            let mut timeout_ms = 100;
            if let Some(at) = self.em.poll_timeout() {
                let d = at.saturating_duration_since(now);
                timeout_ms = timeout_ms.min(d.as_micros().div_ceil(1000) as i32);
            }
            // A full batch last time: more is likely waiting, skip the poll.
            if timeout_ms > 0 && n < BRIDGE_BATCH {
                let mut pfd = libc::pollfd {
                    fd: Self::fd(self.from),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                let rc = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
                if rc < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                    return Err(io::Error::last_os_error());
                }
            }
            n = self.receive()?;
            let now = since(self.epoch);
            if self.transparent {
                self.forward_in_place(n, max_frame);
            } else {
                for i in 0..n {
                    let len = self.msgs[i].msg_len as usize;
                    if len == u32::MAX as usize {
                        continue;
                    }
                    if len > BRIDGE_BUF {
                        self.stats.oversized += 1;
                        continue;
                    }
                    self.em.offer(now, &self.bufs[i][..len]);
                }
                self.release(now, max_frame);
            }
        }
        if !self.transparent {
            self.stats.link = self.em.stats().clone();
        }
        Ok(self.stats)
    }

    /// One `recvmmsg` of up to a batch, without waiting.
    fn receive(&mut self) -> io::Result<usize> {
        for i in 0..BRIDGE_BATCH {
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: BRIDGE_BUF,
            };
            let hdr = &mut self.msgs[i].msg_hdr;
            hdr.msg_iov = &mut self.iovs[i];
            hdr.msg_iovlen = 1;
            hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_ll).cast();
            hdr.msg_namelen = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            hdr.msg_control = std::ptr::null_mut();
            hdr.msg_controllen = 0;
            hdr.msg_flags = 0;
        }
        // SAFETY: every message points at live buffers of the lengths given.
        let rc = unsafe {
            libc::recvmmsg(
                Self::fd(self.from),
                self.msgs.as_mut_ptr(),
                BRIDGE_BATCH as libc::c_uint,
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                // The interface went down: wait for it to come back.
                _ if matches!(e.raw_os_error(), Some(libc::ENETDOWN)) => Ok(0),
                _ => Err(io::Error::new(
                    e.kind(),
                    format!("recvmmsg on {}: {e}", self.from.name()),
                )),
            };
        }
        let n = rc as usize;
        // Frames this socket sent itself come back on older kernels.
        for i in 0..n {
            if self.addrs[i].sll_pkttype == libc::PACKET_OUTGOING {
                self.msgs[i].msg_len = u32::MAX;
            }
        }
        Ok(n)
    }

    /// No impairment: send the received buffers as they are.
    fn forward_in_place(&mut self, n: usize, max_frame: usize) {
        let mut k = 0;
        for i in 0..n {
            let len = self.msgs[i].msg_len as usize;
            if len == u32::MAX as usize {
                continue;
            }
            let fits = if self.vnet {
                (VNET_HDR_LEN..=BRIDGE_BUF).contains(&len)
            } else {
                len <= max_frame
            };
            if !fits {
                self.stats.oversized += 1;
                continue;
            }
            self.out_iovs[k] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: len,
            };
            self.stats.link.sent += 1;
            k += 1;
        }
        let dropped = self.stats.send_dropped;
        self.send_batch(k);
        // The emulator never sees these frames: count them here.
        self.stats.link.delivered += k as u64 - (self.stats.send_dropped - dropped);
        self.stats.link.dropped_queue = self.stats.send_dropped;
    }

    /// Impaired: send everything the emulator has due.
    fn release(&mut self, now: Instant, max_frame: usize) {
        loop {
            self.out.clear();
            while self.out.len() < BRIDGE_BATCH {
                let Some(f) = self.em.poll_frame(now) else {
                    break;
                };
                if f.len() > max_frame {
                    self.stats.oversized += 1;
                    self.em.recycle(f);
                    continue;
                }
                self.out.push(f);
            }
            if self.out.is_empty() {
                return;
            }
            let k = self.out.len();
            for (iov, f) in self.out_iovs.iter_mut().zip(&mut self.out) {
                *iov = libc::iovec {
                    iov_base: f.as_mut_ptr().cast(),
                    iov_len: f.len(),
                };
            }
            self.send_batch(k);
            for f in self.out.drain(..) {
                self.em.recycle(f);
            }
        }
    }

    /// `sendmmsg` the first `k` of `out_iovs`, retrying briefly while the
    /// interface is busy, then dropping the rest as a full queue would.
    fn send_batch(&mut self, k: usize) {
        let mut done = 0;
        let mut retries = 0;
        while done < k {
            for i in done..k {
                let hdr = &mut self.out_msgs[i].msg_hdr;
                // SAFETY: msghdr is plain old data.
                *hdr = unsafe { mem::zeroed() };
                hdr.msg_iov = &mut self.out_iovs[i];
                hdr.msg_iovlen = 1;
            }
            // SAFETY: messages done..k point at live buffers.
            let rc = unsafe {
                libc::sendmmsg(
                    Self::fd(self.to),
                    self.out_msgs[done..].as_mut_ptr(),
                    (k - done) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if rc > 0 {
                let header = if self.vnet { VNET_HDR_LEN as u64 } else { 0 };
                for m in &self.out_msgs[done..done + rc as usize] {
                    self.stats.bytes += u64::from(m.msg_len).saturating_sub(header);
                }
                done += rc as usize;
                continue;
            }
            let e = io::Error::last_os_error();
            retries += 1;
            let busy = matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::ENOBUFS | libc::EINTR));
            if !busy || retries > 100 {
                if e.raw_os_error() == Some(libc::EMSGSIZE) {
                    self.stats.oversized += 1;
                    done += 1;
                    continue;
                }
                tracing::debug!(to = self.to.name(), error = %e, dropped = k - done, "bridge send failed");
                self.stats.send_dropped += (k - done) as u64;
                return;
            }
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
    }
}

/// The clean impairments, for callers that want one direction untouched.
pub fn clean() -> Spec {
    Spec {
        imp: Impairments::clean(),
        seed: None,
    }
}
