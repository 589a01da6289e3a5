//! Services tapir hosts: UDP echo, the TCP echo (RFC 862), discard
//! (RFC 863) and character generator (RFC 864), and an iperf3 server
//! ([`crate::iperf3`]).
//!
//! The UDP and TCP services are tasks over the async sockets
//! ([`tapir_harness::net`]), run by an [`Executor`]: a small fixed number of
//! threads serves any number of connections. A TCP service is an accept
//! task that takes connections as fast as they are queued and hands each to
//! a connection task; an idle connection is a parked task holding its
//! socket and no buffer (reads and writes go through one scratch buffer per
//! thread, a connection keeps only what it could not yet send). Stopping a
//! service wakes its tasks at once: there is no polling.
//!
//! Two ways to run them, as `tapir up` offers:
//! - [`ExecMode::Runtime`]: connections run on tokio's multi-thread
//!   runtime, work-stealing between its threads (the default);
//! - [`ExecMode::Workers`]: N worker threads, each with a current-thread
//!   runtime that owns the connections handed to it (round robin), as
//!   nginx-style "one event loop per worker" servers;
//! - [`ExecMode::Inline`]: one thread for everything, the stack's driver
//!   included (`tapir up --inline`).
//!
//! In both, the accept loops (and UDP echo) run on one acceptor thread of
//! their own. Accepting on the connections' own runtime let the accept
//! queue (4 096) overflow while 20 000 connections arrived at ~5 000/s
//! (apps/tests/scale.rs); on its own thread it keeps up.
//!
//! The HTTP server ([`crate::http::server`]) runs on the same executor,
//! and so does the iperf3 server: its control connection and data streams
//! are tasks on the acceptor runtime (one test at a time, as iperf3's own).

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tapir_harness::net::{TcpListener, TcpStream, UdpSocket};
use tapir_harness::StackHandle;
use tokio::io::Interest;
use tokio::sync::{mpsc, watch};

/// The listen backlog of the TCP services: Linux's somaxconn, so a burst of
/// connections waits in the queue instead of being dropped while the accept
/// task catches up.
pub const SERVICE_BACKLOG: usize = 4096;

/// How long [`Service::stop`] waits for connection tasks to finish.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A boxed connection task.
type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// How the services' tasks are run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecMode {
    /// tokio's multi-thread runtime with this many threads.
    Runtime { threads: usize },
    /// One acceptor thread and this many workers, each a current-thread
    /// runtime owning its connections.
    Workers(usize),
    /// Everything on the acceptor thread: accept loops, connections and,
    /// spawned there with [`Executor::spawn_service`], the stack's driver
    /// task ([`tapir_harness::Driver::task`]). Run to completion: a frame
    /// is read, handled, served and answered by one thread, with no
    /// wakeup crossing threads.
    Inline,
}

impl Default for ExecMode {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        ExecMode::Runtime {
            threads: cores.clamp(2, 4),
        }
    }
}

/// Runs the services' tasks; see the module doc. Dropping it stops the
/// threads (after the services, which hold a handle).
pub struct Executor {
    /// The acceptor: accept loops and UDP services run here, on a thread of
    /// their own, so taking connections never waits behind serving them.
    main: tokio::runtime::Runtime,
    /// Default mode: the multi-thread runtime connections run on.
    pool: Option<tokio::runtime::Runtime>,
    /// Workers mode: the workers' queues of new connections.
    workers: Vec<mpsc::UnboundedSender<Task>>,
    worker_threads: Vec<JoinHandle<()>>,
    pub mode: ExecMode,
}

impl Executor {
    pub fn new(mode: ExecMode) -> io::Result<Executor> {
        let mut workers = Vec::new();
        let mut worker_threads = Vec::new();
        let mut pool = None;
        match mode {
            ExecMode::Runtime { threads } => {
                pool = Some(
                    tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(threads.max(1))
                        .thread_name("tapir-rt")
                        .enable_all()
                        .build()?,
                );
            }
            // Connections go to the acceptor runtime (Spawner::spawn).
            ExecMode::Inline => {}
            ExecMode::Workers(n) => {
                for k in 0..n.max(1) {
                    let (tx, mut rx) = mpsc::unbounded_channel::<Task>();
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    let t = std::thread::Builder::new()
                        .name(format!("tapir-worker-{k}"))
                        .spawn(move || {
                            rt.block_on(async move {
                                while let Some(task) = rx.recv().await {
                                    tokio::spawn(task);
                                }
                            });
                            // The queue closed: the executor is going away;
                            // dropping the runtime cancels what remains.
                        })?;
                    workers.push(tx);
                    worker_threads.push(t);
                }
            }
        }
        // A multi-thread runtime of one thread, so it runs without anyone
        // blocking on it.
        let main = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("tapir-acceptor")
            .enable_all()
            .build()?;
        Ok(Executor {
            main,
            pool,
            workers,
            worker_threads,
            mode,
        })
    }

    /// Run a service's own task (accept loop, UDP socket) on the acceptor
    /// thread; with [`ExecMode::Inline`], also the stack's driver task.
    pub fn spawn_service(
        &self,
        task: impl Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        self.main.spawn(task)
    }

    /// The acceptor runtime, to wait on its tasks from outside.
    pub(crate) fn acceptor_handle(&self) -> tokio::runtime::Handle {
        self.main.handle().clone()
    }

    pub(crate) fn handle(&self) -> Spawner {
        let pool = match self.mode {
            ExecMode::Runtime { .. } => self.pool.as_ref().map(|p| p.handle().clone()),
            ExecMode::Workers(_) => None,
            ExecMode::Inline => Some(self.main.handle().clone()),
        };
        Spawner {
            pool,
            workers: Arc::new(self.workers.clone()),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Run a future to completion on the executor (from outside it).
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.main.block_on(f)
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        self.workers.clear();
        for t in self.worker_threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Hands connection tasks out: to the runtime, or round robin to the
/// workers.
#[derive(Clone)]
pub(crate) struct Spawner {
    pool: Option<tokio::runtime::Handle>,
    workers: Arc<Vec<mpsc::UnboundedSender<Task>>>,
    next: Arc<AtomicUsize>,
}

impl Spawner {
    pub(crate) fn spawn(&self, task: Task) {
        if let Some(pool) = &self.pool {
            pool.spawn(task);
            return;
        }
        if self.workers.is_empty() {
            return;
        }
        let k = self.next.fetch_add(1, Ordering::Relaxed) % self.workers.len();
        // A worker that is gone (shutting down) drops the connection.
        let _ = self.workers[k].send(task);
    }
}

/// What a service shares with its tasks.
struct Shared {
    stop: watch::Sender<bool>,
    served: AtomicU64,
    /// Connection tasks running.
    active: AtomicUsize,
}

/// Counts a connection task as active while it lives.
struct Active(Arc<Shared>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Resolves once `stop` says so.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

enum Runner {
    Task(tokio::task::JoinHandle<()>),
}

/// A running service; stops (and waits for its tasks) on [`Service::stop`]
/// or drop.
pub struct Service {
    shared: Arc<Shared>,
    runner: Option<Runner>,
    /// The executor's runtime, to wait for the service task.
    rt: Option<tokio::runtime::Handle>,
    error: Arc<std::sync::Mutex<Option<io::Error>>>,
    pub name: String,
    unit: &'static str,
}

impl Service {
    /// What [`stop`](Self::stop) counts: "requests" (datagrams, HTTP
    /// requests), "connections" or "tests" (iperf3).
    pub fn unit(&self) -> &'static str {
        self.unit
    }

    /// Requests, connections or tests (see [`unit`](Self::unit)) served
    /// so far.
    pub fn served(&self) -> u64 {
        self.shared.served.load(Ordering::SeqCst)
    }

    /// Connection tasks running now.
    pub fn active(&self) -> usize {
        self.shared.active.load(Ordering::SeqCst)
    }

    /// Stop the service and return how many requests (or connections, see
    /// [`unit`](Self::unit)) it served.
    pub fn stop(mut self) -> io::Result<u64> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> io::Result<u64> {
        self.shared.stop.send_replace(true);
        match self.runner.take() {
            Some(Runner::Task(t)) => {
                // Called from outside the runtime (main thread).
                if let Some(rt) = &self.rt {
                    let _ = rt.block_on(t);
                }
            }
            None => return Ok(0),
        }
        // Connection tasks see the stop at once; give them a moment to
        // drop their sockets.
        let deadline = Instant::now() + STOP_GRACE;
        while self.shared.active.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        match self.error.lock().map(|mut e| e.take()) {
            Ok(Some(e)) => Err(e),
            _ => Ok(self.shared.served.load(Ordering::SeqCst)),
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

fn new_shared() -> Arc<Shared> {
    Arc::new(Shared {
        stop: watch::channel(false).0,
        served: AtomicU64::new(0),
        active: AtomicUsize::new(0),
    })
}

/// RFC 862 echo over UDP: every datagram goes back to its sender unchanged.
pub fn udp_echo(exec: &Executor, stack: &StackHandle, port: u16) -> io::Result<Service> {
    let socket = exec.block_on(UdpSocket::bind(stack, ("0.0.0.0", port)))?;
    let shared = new_shared();
    let error = Arc::new(std::sync::Mutex::new(None));
    let (sh, err) = (shared.clone(), error.clone());
    let stop = shared.stop.subscribe();
    let task = exec.spawn_service(async move {
        // The largest UDP payload an IPv4 datagram can carry.
        let mut buf = vec![0u8; 65_507];
        let serve = async {
            loop {
                match socket.recv_from(&mut buf).await {
                    Ok((n, from)) => {
                        socket.send_to(&buf[..n], from).await?;
                        sh.served.fetch_add(1, Ordering::SeqCst);
                    }
                    // An ICMP error for an earlier reply (the client went
                    // away) concerns that client only.
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                    Err(e) => return Err::<(), io::Error>(e),
                }
            }
        };
        tokio::select! {
            r = serve => if let Err(e) = r { *err.lock().unwrap() = Some(e) },
            _ = stopped(stop) => {}
        }
    });
    Ok(Service {
        shared,
        runner: Some(Runner::Task(task)),
        rt: Some(exec.main.handle().clone()),
        error,
        name: format!("udp-echo:{port}"),
        unit: "requests",
    })
}

/// An iperf3 server (TCP tests, one at a time, as iperf3's own): the
/// kernel's `iperf3 -c` measures throughput to and from tapir. Counts the
/// tests run. A stop ends a test in progress (its sockets are dropped).
pub fn iperf3_server(exec: &Executor, stack: &StackHandle, port: u16) -> io::Result<Service> {
    let listener = exec.block_on(TcpListener::bind(stack, ("0.0.0.0", port)))?;
    let shared = new_shared();
    let error = Arc::new(std::sync::Mutex::new(None));
    let (sh, err) = (shared.clone(), error.clone());
    let task = exec.spawn_service(async move {
        let stop = sh.stop.subscribe();
        let tests = async {
            loop {
                let (ctrl, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => continue,
                    Err(e) => return Err::<(), io::Error>(e),
                };
                let _ = ctrl.set_nodelay(true);
                match crate::iperf3::serve(ctrl, &listener).await {
                    Ok(report) => {
                        sh.served.fetch_add(1, Ordering::SeqCst);
                        tracing::info!(%peer, "iperf3 test done: {}", report.summary().trim_end());
                    }
                    Err(e) => tracing::warn!(%peer, error = %e, "iperf3 test failed"),
                }
            }
        };
        tokio::select! {
            r = tests => if let Err(e) = r { *err.lock().unwrap() = Some(e) },
            _ = stopped(stop) => {}
        }
    });
    Ok(Service {
        shared,
        runner: Some(Runner::Task(task)),
        rt: Some(exec.main.handle().clone()),
        error,
        name: format!("iperf3:{port}"),
        unit: "tests",
    })
}

/// Which TCP service a connection task runs.
#[derive(Clone, Copy)]
enum Kind {
    Echo,
    Discard,
    Chargen,
}

/// RFC 862 echo over TCP: every byte received goes back, until the client
/// closes its side; then the connection is closed.
pub fn tcp_echo(exec: &Executor, stack: &StackHandle, port: u16) -> io::Result<Service> {
    tcp_service(exec, stack, port, format!("tcp-echo:{port}"), Kind::Echo)
}

/// RFC 863 discard over TCP: everything received is thrown away.
pub fn tcp_discard(exec: &Executor, stack: &StackHandle, port: u16) -> io::Result<Service> {
    tcp_service(exec, stack, port, format!("discard:{port}"), Kind::Discard)
}

/// RFC 864 character generator over TCP: the rotating 72-character lines
/// until the client closes; what the client sends is thrown away.
pub fn tcp_chargen(exec: &Executor, stack: &StackHandle, port: u16) -> io::Result<Service> {
    tcp_service(exec, stack, port, format!("chargen:{port}"), Kind::Chargen)
}

/// Listen on `port` and serve each connection in its own task. Counts
/// connections.
fn tcp_service(
    exec: &Executor,
    stack: &StackHandle,
    port: u16,
    name: String,
    kind: Kind,
) -> io::Result<Service> {
    let listener = TcpListener::bind_with_backlog(stack, ("0.0.0.0", port), SERVICE_BACKLOG)?;
    let shared = new_shared();
    let error = Arc::new(std::sync::Mutex::new(None));
    let spawner = exec.handle();
    let (sh, err) = (shared.clone(), error.clone());
    let task = exec.spawn_service(async move {
        let stop = sh.stop.subscribe();
        let accept_loop = async {
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(c) => c,
                    // The connection went away before we took it.
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => continue,
                    Err(e) => return Err::<(), io::Error>(e),
                };
                sh.served.fetch_add(1, Ordering::SeqCst);
                sh.active.fetch_add(1, Ordering::SeqCst);
                let guard = Active(sh.clone());
                let stop = sh.stop.subscribe();
                spawner.spawn(Box::pin(async move {
                    let _guard = guard;
                    let result = tokio::select! {
                        r = serve_connection(stream, kind) => r,
                        // Dropping the stream closes it.
                        _ = stopped(stop) => Ok(()),
                    };
                    if let Err(e) = result {
                        match e.kind() {
                            // The client went away: its business.
                            io::ErrorKind::ConnectionReset
                            | io::ErrorKind::BrokenPipe
                            | io::ErrorKind::TimedOut => {
                                tracing::debug!(%peer, error = %e, "connection ended")
                            }
                            _ => tracing::warn!(%peer, error = %e, "connection failed"),
                        }
                    }
                }));
            }
        };
        tokio::select! {
            r = accept_loop => if let Err(e) = r { *err.lock().unwrap() = Some(e) },
            _ = stopped(stop) => {}
        }
    });
    Ok(Service {
        shared,
        runner: Some(Runner::Task(task)),
        rt: Some(exec.main.handle().clone()),
        error,
        name,
        unit: "connections",
    })
}

async fn serve_connection(s: TcpStream, kind: Kind) -> io::Result<()> {
    match kind {
        Kind::Echo => echo_connection(&s).await,
        Kind::Discard => discard_connection(&s).await,
        Kind::Chargen => chargen_connection(&s).await,
    }
}

/// Size of the per-thread scratch buffer connections read into.
const SCRATCH: usize = 64 * 1024;

thread_local! {
    static SCRATCH_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; SCRATCH]);
}

/// What a burst of reads found.
enum Drained {
    /// Nothing more to read now.
    WouldBlock,
    /// The peer closed its side.
    Eof,
}

/// Read everything available into the thread's scratch buffer, handing
/// each read to `f` (which returns false to stop reading for now).
fn drain(s: &TcpStream, mut f: impl FnMut(&[u8]) -> io::Result<bool>) -> io::Result<Drained> {
    SCRATCH_BUF.with(|buf| {
        let mut buf = buf.borrow_mut();
        loop {
            match s.try_read(&mut buf) {
                Ok(0) => return Ok(Drained::Eof),
                Ok(n) => {
                    if !f(&buf[..n])? {
                        return Ok(Drained::WouldBlock);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Drained::WouldBlock),
                Err(e) => return Err(e),
            }
        }
    })
}

/// Echo: read what is there and write it straight back; what the send
/// buffer cannot take waits in `pending` (the only per-connection buffer,
/// allocated while needed), and nothing more is read until it is sent.
async fn echo_connection(s: &TcpStream) -> io::Result<()> {
    let mut pending: Vec<u8> = Vec::new();
    loop {
        while !pending.is_empty() {
            s.writable().await?;
            match s.try_write(&pending) {
                Ok(n) => {
                    pending.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        pending = Vec::new();
        s.readable().await?;
        let drained = drain(s, |data| {
            let n = match s.try_write(data) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(e) => return Err(e),
            };
            if n < data.len() {
                pending.extend_from_slice(&data[n..]);
                return Ok(false);
            }
            Ok(true)
        })?;
        if let Drained::Eof = drained {
            // Send what is left, then close (FIN after the echoed data).
            while !pending.is_empty() {
                s.writable().await?;
                match s.try_write(&pending) {
                    Ok(n) => {
                        pending.drain(..n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
            return Ok(());
        }
    }
}

async fn discard_connection(s: &TcpStream) -> io::Result<()> {
    loop {
        s.readable().await?;
        if let Drained::Eof = drain(s, |_| Ok(true))? {
            return Ok(());
        }
    }
}

/// Characters per chargen line, without the CRLF (RFC 864).
pub const CHARGEN_LINE: usize = 72;

/// One full cycle of the RFC 864 pattern: 95 lines, line `k` being the 72
/// printable ASCII characters starting at the `k`-th (of the 95 from space
/// to `~`), each followed by CRLF. After the 95th line the first repeats.
pub fn chargen_cycle() -> Vec<u8> {
    let mut out = Vec::with_capacity(95 * (CHARGEN_LINE + 2));
    for k in 0..95u8 {
        out.extend((0..CHARGEN_LINE as u8).map(|j| b' ' + (k + j) % 95));
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Several chargen cycles in a row, so every write offers a large slice
/// starting anywhere in the pattern.
fn chargen_buffer() -> &'static [u8] {
    static BUF: OnceLock<Vec<u8>> = OnceLock::new();
    BUF.get_or_init(|| chargen_cycle().repeat(10))
}

async fn chargen_connection(s: &TcpStream) -> io::Result<()> {
    let cycle_len = 95 * (CHARGEN_LINE + 2);
    let buf = chargen_buffer();
    let mut pos = 0usize;
    loop {
        let ready = s.ready(Interest::READABLE | Interest::WRITABLE).await?;
        if ready.is_readable() || ready.is_read_closed() {
            // Throw away what the client sends; its FIN ends the service.
            if let Drained::Eof = drain(s, |_| Ok(true))? {
                return Ok(());
            }
        }
        if ready.is_writable() {
            match s.try_write(&buf[pos..]) {
                Ok(n) => pos = (pos + n) % cycle_len,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As BSD inetd's chargen: the ring of the 95 printable characters
    /// (space first), 72 per line, each line one further along.
    #[test]
    fn chargen_cycle_is_rfc_864() {
        let c = chargen_cycle();
        assert_eq!(c.len(), 95 * 74);
        let lines: Vec<&[u8]> = c.chunks(74).collect();
        let printable: Vec<u8> = (b' '..=b'~').collect();
        assert_eq!(printable.len(), 95);
        assert_eq!(lines[0], [&printable[..72], b"\r\n"].concat());
        assert_eq!(lines[1], [&printable[1..73], b"\r\n"].concat());
        // The last line wraps round the ring.
        assert_eq!(lines[94], [&printable[94..], &printable[..71], b"\r\n"].concat());
    }
}
