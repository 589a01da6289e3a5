//! The HTTP/1.1 server: an accept task, and one task per connection
//! (capped) that reads requests and answers them in order, on the
//! services' [`Executor`] (tokio's multi-thread runtime by default, or
//! `--workers N`), so a few threads serve any number of connections. The
//! slowloris bound and the idle keep-alive timeout are timers on the head
//! reads; every body read and response write is bounded by
//! [`ServerConfig::io_timeout`].
//!
//! Resources:
//! - `/bytes/N`: N bytes of the deterministic content ([`super::pattern_fill`]),
//!   streamed; `?chunked` sends it with the chunked coding instead of a
//!   Content-Length.
//! - `/echo`: POST; the request body comes back as it arrives (Content-Length
//!   in, Content-Length out; chunked in, chunked out with the trailers).
//!   Streaming both ways means the client must read while it sends.
//! - `/stats`: JSON from the closure in [`ServerConfig::stats`].
//! - anything else: a file under [`ServerConfig::root`], or a short index
//!   page at `/` when there is no root.
//!
//! Connections persist (RFC 9112 9.3) unless the client says
//! `Connection: close` or speaks HTTP/1.0 without `keep-alive`; pipelined
//! requests are read one after the other from the connection's buffer, so
//! their responses go out in order.
//!
//! Connections come from an [`Accept`]: tapir's async listener
//! ([`async_tapir_acceptor`], what `tapir up --http` uses), a std listener
//! as tokio streams ([`std_acceptor`]), or tapir's blocking listener
//! ([`tapir_acceptor`], tried with a short backoff: that API has no
//! readiness a task can wait on).

use super::date::http_date;
use super::message::{Body, Framing, HeadError, Input, RequestHead, Version};
use super::{pattern_fill, Limits, Status};
use crate::services::{ExecMode, Executor, Spawner};
use std::fs::File;
use std::future::Future;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;
use tracing::{debug, warn};

/// What produces the `/stats` document.
pub type StatsFn = Arc<dyn Fn() -> String + Send + Sync>;

/// Server settings; [`ServerConfig::default`] has the documented limits.
#[derive(Clone)]
pub struct ServerConfig {
    /// Directory served for paths that are not generated endpoints.
    pub root: Option<PathBuf>,
    pub limits: Limits,
    /// Connections served at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Largest request body accepted anywhere but `/echo` (which streams
    /// and takes any size); larger is 413.
    pub max_body: u64,
    /// Largest N for `/bytes/N`.
    pub max_generated: u64,
    /// Time a client has to send a whole request head once it started one
    /// (and a new connection to start its first): the slowloris bound.
    pub header_timeout: Duration,
    /// Time a persistent connection may sit idle between requests.
    pub idle_timeout: Duration,
    /// Bound on each read of a body and each write of a response.
    pub io_timeout: Duration,
    pub stats: Option<StatsFn>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            root: None,
            limits: Limits::default(),
            max_connections: 512,
            max_body: 64 << 20,
            max_generated: 16 << 30,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(15),
            io_timeout: Duration::from_secs(30),
            stats: None,
        }
    }
}

struct Shared {
    stop: watch::Sender<bool>,
    active: AtomicUsize,
    connections: AtomicU64,
    requests: AtomicU64,
    rejected: AtomicU64,
}

impl Shared {
    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }
}

/// Where connections come from: a listener of some kind, accepted from
/// the server's accept task.
pub trait Accept: Send + 'static {
    type Conn: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The next connection and its peer's address (for logs). An error
    /// other than the ones [`HttpServer`] retries ends the accept loop.
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Conn, String)>> + Send;
}

/// A running server; [`HttpServer::stop`] or drop stops accepting.
pub struct HttpServer {
    pub name: String,
    shared: Arc<Shared>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// The executor's acceptor runtime, to wait for the accept task.
    rt: tokio::runtime::Handle,
    /// The executor, when the server has one of its own.
    exec: Option<Executor>,
}

impl HttpServer {
    /// Serve connections from `accept` on an executor of its own (the
    /// default runtime, [`ExecMode::default`]).
    pub fn spawn<A: Accept>(
        name: impl Into<String>,
        config: ServerConfig,
        accept: A,
    ) -> io::Result<HttpServer> {
        let exec = Executor::new(ExecMode::default())?;
        let mut server = HttpServer::spawn_on(&exec, name, config, accept)?;
        server.exec = Some(exec);
        Ok(server)
    }

    /// Serve connections from `accept` on `exec`: the accept loop on its
    /// acceptor thread, each connection a task of its runtime or workers.
    pub fn spawn_on<A: Accept>(
        exec: &Executor,
        name: impl Into<String>,
        mut config: ServerConfig,
        mut accept: A,
    ) -> io::Result<HttpServer> {
        if let Some(root) = &config.root {
            let canonical = root
                .canonicalize()
                .map_err(|e| io::Error::new(e.kind(), format!("http root {}: {e}", root.display())))?;
            if !canonical.is_dir() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("http root {} is not a directory", root.display()),
                ));
            }
            config.root = Some(canonical);
        }
        let name = name.into();
        let shared = Arc::new(Shared {
            stop: watch::channel(false).0,
            active: AtomicUsize::new(0),
            connections: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        });
        let config = Arc::new(config);
        let spawner = exec.handle();
        let sh = shared.clone();
        let task = exec.spawn_service(async move {
            let mut stop = sh.stop.subscribe();
            loop {
                let accepted = tokio::select! {
                    r = accept.accept() => r,
                    _ = stop.wait_for(|s| *s) => return,
                };
                match accepted {
                    Ok((io, peer)) => dispatch(io, peer, &config, &sh, &spawner),
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::NotConnected
                                | io::ErrorKind::ConnectionAborted
                                | io::ErrorKind::Interrupted
                        ) => {}
                    Err(e) => {
                        // Out of fds, a connection reset before accept:
                        // nothing to do but try again shortly.
                        warn!("http accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        });
        Ok(HttpServer {
            name,
            shared,
            task: Some(task),
            rt: exec.acceptor_handle(),
            exec: None,
        })
    }

    /// Requests answered so far (error responses included).
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Connections accepted so far (rejected ones included).
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Connections answered 503 because the server was full.
    pub fn rejected(&self) -> u64 {
        self.shared.rejected.load(Ordering::SeqCst)
    }

    /// Connections being served now.
    pub fn active(&self) -> usize {
        self.shared.active.load(Ordering::SeqCst)
    }

    fn stop_accepting(&mut self) {
        self.shared.stop.send_replace(true);
        if let Some(t) = self.task.take() {
            let _ = self.rt.block_on(t);
        }
    }

    /// Stop accepting, give open connections up to `grace` to finish (an
    /// idle one closes at once, one in a request after its response), and
    /// return how many requests were answered.
    pub fn stop_within(mut self, grace: Duration) -> u64 {
        self.stop_accepting();
        let deadline = Instant::now() + grace;
        while self.active() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.requests()
    }

    pub fn stop(self) -> u64 {
        self.stop_within(Duration::from_secs(2))
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop_accepting();
        // An executor of our own goes with us, cancelling what is left.
        self.exec.take();
    }
}

/// Sleeps between tries of a socket that cannot tell us when it is ready:
/// 1 ms, doubling to 8 ms while nothing happens.
#[derive(Default)]
struct Backoff {
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(1);
    const MAX: Duration = Duration::from_millis(8);

    fn reset(&mut self) {
        self.sleep = None;
        self.next = Duration::ZERO;
    }

    /// Ready when it is time to try again.
    fn poll_wait(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let sleep = self.sleep.get_or_insert_with(|| {
            self.next = (self.next * 2).clamp(Self::FIRST, Self::MAX);
            Box::pin(tokio::time::sleep(self.next))
        });
        ready!(sleep.as_mut().poll(cx));
        self.sleep = None;
        Poll::Ready(())
    }
}

/// Connections from a std listener, as tokio streams.
pub struct StdAcceptor {
    std: Option<std::net::TcpListener>,
    listener: Option<tokio::net::TcpListener>,
}

impl Accept for StdAcceptor {
    type Conn = tokio::net::TcpStream;
    async fn accept(&mut self) -> io::Result<(tokio::net::TcpStream, String)> {
        if let Some(std) = self.std.take() {
            // Registered with the runtime the accept task runs on.
            self.listener = Some(tokio::net::TcpListener::from_std(std)?);
        }
        let listener = self.listener.as_ref().expect("converted above");
        let (s, peer) = listener.accept().await?;
        Ok((s, peer.to_string()))
    }
}

/// An acceptor for [`HttpServer::spawn`] over a std listener.
pub fn std_acceptor(listener: std::net::TcpListener) -> io::Result<StdAcceptor> {
    listener.set_nonblocking(true)?;
    Ok(StdAcceptor {
        std: Some(listener),
        listener: None,
    })
}

/// Connections from tapir's async listener.
pub struct TapirAcceptor(tapir_harness::net::TcpListener);

impl Accept for TapirAcceptor {
    type Conn = tapir_harness::net::TcpStream;
    async fn accept(&mut self) -> io::Result<(tapir_harness::net::TcpStream, String)> {
        let (s, peer) = self.0.accept().await?;
        Ok((s, peer.to_string()))
    }
}

/// An acceptor over tapir's async listener: what `tapir up --http` serves.
pub fn async_tapir_acceptor(listener: tapir_harness::net::TcpListener) -> TapirAcceptor {
    TapirAcceptor(listener)
}

/// Connections from tapir's blocking listener. That API has no readiness
/// to wait on from a task (and no way to turn it into the async one), so
/// the listener and its streams are tried non-blocking with a short
/// backoff ([`Backoff`]); [`async_tapir_acceptor`] has no such cost.
pub struct BlockingTapirAcceptor {
    listener: tapir_harness::TcpListener,
    backoff: Backoff,
}

impl Accept for BlockingTapirAcceptor {
    type Conn = PolledTapirStream;
    async fn accept(&mut self) -> io::Result<(PolledTapirStream, String)> {
        std::future::poll_fn(|cx| loop {
            match self.listener.accept() {
                Ok((s, peer)) => {
                    self.backoff.reset();
                    s.set_nonblocking(true)?;
                    return Poll::Ready(Ok((
                        PolledTapirStream {
                            s,
                            read: Backoff::default(),
                            write: Backoff::default(),
                        },
                        peer.to_string(),
                    )));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => ready!(self.backoff.poll_wait(cx)),
                Err(e) => return Poll::Ready(Err(e)),
            }
        })
        .await
    }
}

/// An acceptor for [`HttpServer::spawn`] over a blocking tapir listener;
/// see [`BlockingTapirAcceptor`].
pub fn tapir_acceptor(listener: tapir_harness::TcpListener) -> BlockingTapirAcceptor {
    let _ = listener.set_nonblocking(true);
    BlockingTapirAcceptor {
        listener,
        backoff: Backoff::default(),
    }
}

/// A blocking tapir stream in non-blocking mode, retried with a backoff.
pub struct PolledTapirStream {
    s: tapir_harness::TcpStream,
    read: Backoff,
    write: Backoff,
}

impl AsyncRead for PolledTapirStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match (&this.s).read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    this.read.reset();
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => ready!(this.read.poll_wait(cx)),
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for PolledTapirStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        use std::io::Write;
        let this = self.get_mut();
        loop {
            match (&this.s).write(data) {
                Ok(n) => {
                    this.write.reset();
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => ready!(this.write.poll_wait(cx)),
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.s.shutdown(std::net::Shutdown::Write))
    }
}

/// Decrements the active count however the connection task ends.
struct ActiveGuard(Arc<Shared>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

fn dispatch<S>(io: S, peer: String, config: &Arc<ServerConfig>, shared: &Arc<Shared>, spawner: &Spawner)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    shared.connections.fetch_add(1, Ordering::SeqCst);
    if shared.active.fetch_add(1, Ordering::SeqCst) >= config.max_connections {
        shared.active.fetch_sub(1, Ordering::SeqCst);
        shared.rejected.fetch_add(1, Ordering::SeqCst);
        // Not on the accept task: a slow client must not hold it.
        tokio::spawn(reject_busy(io));
        return;
    }
    let guard = ActiveGuard(shared.clone());
    let config = config.clone();
    let shared = shared.clone();
    spawner.spawn(Box::pin(async move {
        let _guard = guard;
        match serve_connection(io, &peer, &config, &shared).await {
            Ok(n) => debug!(%peer, requests = n, "http connection done"),
            Err(e) => debug!(%peer, "http connection ended: {e}"),
        }
    }));
}

/// A timeout as an I/O error.
fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "timed out")
}

/// `f`, failing with `TimedOut` after `t`.
async fn bounded<T>(t: Duration, f: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    tokio::time::timeout(t, f)
        .await
        .unwrap_or_else(|_| Err(timed_out()))
}

/// The server is full: say so without reading anything, and close, within
/// short bounds.
async fn reject_busy<S: AsyncRead + AsyncWrite + Unpin>(mut io: S) {
    let body = "503 Service Unavailable: too many connections\n";
    let msg = format!(
        "HTTP/1.1 503 Service Unavailable\r\nDate: {}\r\nServer: tapir\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{body}",
        http_date(std::time::SystemTime::now()),
        body.len()
    );
    let short = Duration::from_millis(500);
    let _ = bounded(short, io.write_all(msg.as_bytes())).await;
    let _ = bounded(short, io.shutdown()).await;
    // Take in a request that already arrived, so that closing does not
    // reset the connection (and destroy the 503) for unread data.
    let _ = bounded(Duration::from_millis(20), io.read(&mut [0u8; 16 * 1024])).await;
}

/// Responses are assembled here and written in few large writes.
const OUT_BUFFER: usize = 64 * 1024;

struct Conn<S> {
    input: Input<S>,
    out: Vec<u8>,
    /// Bound on each write (and each body read).
    io_timeout: Duration,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    async fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if self.out.len() + data.len() > OUT_BUFFER {
            self.flush().await?;
        }
        if data.len() >= OUT_BUFFER {
            bounded(self.io_timeout, self.input.get_mut().write_all(data)).await
        } else {
            self.out.extend_from_slice(data);
            Ok(())
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            bounded(self.io_timeout, self.input.get_mut().write_all(&self.out)).await?;
            self.out.clear();
        }
        bounded(self.io_timeout, self.input.get_mut().flush()).await
    }

    /// Read body bytes, bounded by the I/O timeout.
    async fn body_read(&mut self, body: &mut Body, buf: &mut [u8], limits: &Limits) -> io::Result<usize> {
        bounded(self.io_timeout, body.read_async(&mut self.input, buf, limits)).await
    }

    /// RFC 9112 9.6: close in stages, so that a response is not destroyed
    /// by a reset for request bytes we never read: send our FIN, read and
    /// discard until the client's FIN (bounded), then close.
    async fn lingering_close(mut self) {
        let _ = self.flush().await;
        let io = self.input.get_mut();
        let _ = bounded(Duration::from_millis(500), io.shutdown()).await;
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut scratch = vec![0u8; 16 * 1024];
        let mut drained = 0usize;
        while drained < (4 << 20) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let wait = (deadline - now).min(Duration::from_millis(500));
            match bounded(wait, io.read(&mut scratch)).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    }
}

/// How the response body is delimited.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Out {
    Length(u64),
    Chunked,
    Close,
}

/// What we know about the request we answer.
struct Reply {
    version: Version,
    head_only: bool,
    keep_alive: bool,
}

impl Reply {
    /// The body framing for a body of `len` (None: unknown in advance).
    fn framing(&self, len: Option<u64>) -> Out {
        match len {
            Some(n) => Out::Length(n),
            // RFC 9112 6.1: no chunked coding to an HTTP/1.0 client; the
            // end of the connection delimits the body instead.
            None if self.version >= Version(1, 1) => Out::Chunked,
            None => Out::Close,
        }
    }

    /// The response head. Always `HTTP/1.1` (RFC 9110 6.2: a server sends
    /// its own highest version).
    fn head(&mut self, status: Status, headers: &[(&str, &str)], out: Out) -> Vec<u8> {
        if out == Out::Close {
            self.keep_alive = false;
        }
        let mut h = format!(
            "HTTP/1.1 {}\r\nDate: {}\r\nServer: tapir\r\n",
            status,
            http_date(std::time::SystemTime::now())
        );
        for (name, value) in headers {
            h.push_str(&format!("{name}: {value}\r\n"));
        }
        match out {
            Out::Length(n) => h.push_str(&format!("Content-Length: {n}\r\n")),
            Out::Chunked => h.push_str("Transfer-Encoding: chunked\r\n"),
            Out::Close => {}
        }
        if !self.keep_alive {
            h.push_str("Connection: close\r\n");
        } else if self.version < Version(1, 1) {
            h.push_str("Connection: keep-alive\r\n");
        }
        h.push_str("\r\n");
        h.into_bytes()
    }
}

/// The reply to a request we could not make sense of: close after it.
fn closing_reply() -> Reply {
    Reply {
        version: Version(1, 1),
        head_only: false,
        keep_alive: false,
    }
}

/// Serve requests on one connection until it closes; the number answered.
async fn serve_connection<S>(io: S, peer: &str, config: &ServerConfig, shared: &Shared) -> io::Result<u64>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut conn = Conn {
        input: Input::new(io),
        out: Vec::with_capacity(OUT_BUFFER),
        io_timeout: config.io_timeout,
    };
    let mut stop = shared.stop.subscribe();
    let mut answered = 0u64;
    loop {
        // The first request must start within the header timeout; later
        // ones within the idle timeout. Once a head has started, it must be
        // complete within the header timeout of its first byte, however
        // slowly it trickles in. Both are timers on the reads.
        let idle_deadline = Instant::now()
            + if answered == 0 {
                config.header_timeout
            } else {
                config.idle_timeout
            };
        let mut head_started: Option<Instant> = None;
        let header_timeout = config.header_timeout;
        let mut deadline = move |partial: bool| {
            if partial {
                *head_started.get_or_insert_with(Instant::now) + header_timeout
            } else {
                idle_deadline
            }
        };
        let read = tokio::select! {
            r = conn.input.read_head_async(&config.limits, &mut deadline) => Some(r),
            // A stop closes a connection that is between requests.
            _ = stop.wait_for(|s| *s) => None,
        };
        let head_len = match read {
            None => break,
            Some(Ok(n)) => n,
            Some(Err(HeadError::Closed)) | Some(Err(HeadError::Timeout { partial: false })) => break,
            Some(Err(HeadError::Timeout { partial: true })) => {
                debug!(%peer, "request head timed out");
                shared.requests.fetch_add(1, Ordering::SeqCst);
                let _ = simple(
                    &mut conn,
                    &mut closing_reply(),
                    Status::REQUEST_TIMEOUT,
                    &[],
                    "request head not received in time",
                )
                .await;
                conn.lingering_close().await;
                return Ok(answered + 1);
            }
            Some(Err(HeadError::Bad(status, why))) => {
                shared.requests.fetch_add(1, Ordering::SeqCst);
                let _ = simple(&mut conn, &mut closing_reply(), status, &[], why).await;
                conn.lingering_close().await;
                return Ok(answered + 1);
            }
            Some(Err(HeadError::Io(e))) => return Err(e),
        };
        let parsed = RequestHead::parse(&conn.input.buffered()[..head_len], &config.limits);
        conn.input.consume(head_len);
        answered += 1;
        shared.requests.fetch_add(1, Ordering::SeqCst);
        let keep_alive = match parsed {
            Ok(head) => {
                debug!(%peer, method = %head.method, target = %head.target, "request");
                serve_request(&mut conn, head, config).await?
            }
            Err(e) => {
                let (status, why) = match e {
                    HeadError::Bad(s, why) => (s, why),
                    _ => (Status::BAD_REQUEST, "bad request"),
                };
                simple(&mut conn, &mut closing_reply(), status, &[], why).await?;
                false
            }
        };
        // Pipelined requests already here get their answers in the same
        // write as this one; otherwise the answer goes out before we wait.
        if !keep_alive || !conn.input.has_complete_head() {
            conn.flush().await?;
        }
        if !keep_alive || shared.stopping() {
            conn.lingering_close().await;
            return Ok(answered);
        }
    }
    let _ = conn.flush().await;
    let _ = bounded(Duration::from_millis(500), conn.input.get_mut().shutdown()).await;
    Ok(answered)
}

/// A short text response.
async fn simple<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
    reply: &mut Reply,
    status: Status,
    headers: &[(&str, &str)],
    detail: &str,
) -> io::Result<()> {
    let body = format!("{status}: {detail}\n");
    let mut all = vec![("Content-Type", "text/plain; charset=utf-8")];
    all.extend_from_slice(headers);
    let head = reply.head(status, &all, Out::Length(body.len() as u64));
    conn.write(&head).await?;
    if !reply.head_only {
        conn.write(body.as_bytes()).await?;
    }
    Ok(())
}

/// What a request target names.
enum Resource {
    Index,
    Bytes {
        len: u64,
        chunked: bool,
    },
    Echo,
    Stats,
    File(PathBuf),
    /// A directory named without its trailing slash.
    Redirect(String),
    Missing(Status, &'static str),
}

impl Resource {
    fn allow(&self) -> &'static str {
        match self {
            Resource::Echo => "POST",
            _ => "GET, HEAD",
        }
    }
}

const KNOWN_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// Serve one request whose head has been read; whether the connection
/// stays open for another.
async fn serve_request<S: AsyncRead + AsyncWrite + Unpin + Send>(
    conn: &mut Conn<S>,
    head: RequestHead,
    config: &ServerConfig,
) -> io::Result<bool> {
    let v11 = head.version >= Version(1, 1);
    let connection: Vec<String> = head.list("connection").map(str::to_ascii_lowercase).collect();
    let mut reply = Reply {
        version: head.version,
        head_only: head.method == "HEAD",
        keep_alive: if v11 {
            !connection.iter().any(|t| t == "close")
        } else {
            connection.iter().any(|t| t == "keep-alive")
        },
    };
    macro_rules! fail {
        ($status:expr, $why:expr) => {{
            reply.keep_alive = false;
            simple(conn, &mut reply, $status, &[], $why).await?;
            return Ok(false);
        }};
    }

    // RFC 9112 3.2: exactly one Host in HTTP/1.1, at most one in 1.0.
    let hosts = head.values("host").count();
    if hosts > 1 || (v11 && hosts == 0) {
        fail!(
            Status::BAD_REQUEST,
            "an HTTP/1.1 request needs exactly one Host field"
        );
    }

    // RFC 9112 6.1 and 6.3: how long the body is.
    let codings: Vec<&str> = head.list("transfer-encoding").collect();
    let lengths: Vec<&str> = head.values("content-length").collect();
    let framing = if !codings.is_empty() {
        if !v11 {
            // RFC 9112 6.1: Transfer-Encoding in 1.0 is faulty framing.
            fail!(Status::BAD_REQUEST, "Transfer-Encoding in an HTTP/1.0 request");
        }
        if codings.iter().any(|c| !c.eq_ignore_ascii_case("chunked")) {
            fail!(Status::NOT_IMPLEMENTED, "unknown transfer coding");
        }
        if codings.len() > 1 {
            fail!(Status::BAD_REQUEST, "chunked applied more than once");
        }
        if !lengths.is_empty() {
            // RFC 9112 6.1: Transfer-Encoding overrides Content-Length,
            // and the connection must close after the response.
            reply.keep_alive = false;
        }
        Some(Framing::Chunked)
    } else if !lengths.is_empty() {
        match parse_content_length(&lengths) {
            Some(n) => Some(Framing::Length(n)),
            None => fail!(Status::BAD_REQUEST, "bad Content-Length"),
        }
    } else {
        None
    };

    // RFC 9110 10.1.1: 100-continue is the only expectation; a 1.0 client
    // cannot have meant it.
    let mut expects_continue = false;
    for e in head.list("expect") {
        if e.eq_ignore_ascii_case("100-continue") {
            expects_continue = v11;
        } else {
            fail!(Status::EXPECTATION_FAILED, "unknown expectation");
        }
    }

    if !KNOWN_METHODS.contains(&head.method.as_str()) {
        // RFC 9110 9.1: a method we do not recognise at all.
        fail!(Status::NOT_IMPLEMENTED, "unknown method");
    }
    let resource = resolve(&head.target, config);
    let method_ok = match &resource {
        Resource::Echo => head.method == "POST",
        Resource::Missing(..) => true,
        _ => head.method == "GET" || head.method == "HEAD",
    };
    if head.method == "POST" && framing.is_none() {
        // RFC 9110 15.5.12: we want to know how long a POST body is.
        fail!(Status::LENGTH_REQUIRED, "POST needs Content-Length or chunked");
    }

    if matches!(resource, Resource::Echo) && method_ok {
        let framing = framing.expect("a POST has framing");
        return echo(conn, &head, &mut reply, framing, expects_continue, config).await;
    }

    // Any body on other requests is read and dropped, up to the limit.
    match framing {
        None | Some(Framing::Length(0)) => {}
        Some(Framing::Length(n)) if n > config.max_body => {
            fail!(Status::CONTENT_TOO_LARGE, "request body too large");
        }
        Some(framing) if expects_continue => {
            // RFC 9110 10.1.1: answer without reading the body, then close.
            let _ = framing;
            reply.keep_alive = false;
        }
        Some(framing) => match discard_body(conn, framing, config).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::FileTooLarge => {
                fail!(Status::CONTENT_TOO_LARGE, "request body too large")
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidData => fail!(Status::BAD_REQUEST, "malformed body"),
            Err(e) => return Err(e),
        },
    }

    if !method_ok {
        let allow = resource.allow();
        simple(
            conn,
            &mut reply,
            Status::METHOD_NOT_ALLOWED,
            &[("Allow", allow)],
            "method not allowed here",
        )
        .await?;
        return Ok(reply.keep_alive);
    }
    match resource {
        Resource::Missing(status, why) => simple(conn, &mut reply, status, &[], why).await?,
        Resource::Redirect(location) => {
            simple(
                conn,
                &mut reply,
                Status::MOVED_PERMANENTLY,
                &[("Location", &location)],
                "moved",
            )
            .await?
        }
        Resource::Index => {
            let page = index_page(config);
            let head = reply.head(
                Status::OK,
                &[("Content-Type", "text/html; charset=utf-8")],
                Out::Length(page.len() as u64),
            );
            conn.write(&head).await?;
            if !reply.head_only {
                conn.write(page.as_bytes()).await?;
            }
        }
        Resource::Stats => {
            let json = config.stats.as_ref().map(|f| f()).unwrap_or_default();
            let head = reply.head(
                Status::OK,
                &[
                    ("Content-Type", "application/json"),
                    ("Cache-Control", "no-store"),
                ],
                Out::Length(json.len() as u64),
            );
            conn.write(&head).await?;
            if !reply.head_only {
                conn.write(json.as_bytes()).await?;
            }
        }
        Resource::Bytes { len, chunked } => {
            let out = if chunked {
                reply.framing(None)
            } else {
                Out::Length(len)
            };
            let head = reply.head(Status::OK, &[("Content-Type", "application/octet-stream")], out);
            conn.write(&head).await?;
            if !reply.head_only {
                send_body(conn, out, len, |offset, buf| {
                    pattern_fill(offset, buf);
                    Ok(buf.len())
                })
                .await?;
            }
        }
        Resource::File(path) => return send_file(conn, &mut reply, &path).await,
        Resource::Echo => unreachable!("served above"),
    }
    Ok(reply.keep_alive)
}

/// Flush what is ready, then read and throw away a request body, up to
/// `max_body` (more is `FileTooLarge`).
async fn discard_body<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
    framing: Framing,
    config: &ServerConfig,
) -> io::Result<u64> {
    conn.flush().await?;
    let mut body = Body::new(framing);
    let mut scratch = vec![0u8; 16 * 1024];
    let mut n = 0u64;
    loop {
        let got = conn.body_read(&mut body, &mut scratch, &config.limits).await?;
        if got == 0 {
            return Ok(n);
        }
        n += got as u64;
        if n > config.max_body {
            return Err(io::Error::new(io::ErrorKind::FileTooLarge, "body too large"));
        }
    }
}

/// RFC 9110 8.6 and RFC 9112 6.3: one decimal length; repeated identical
/// values (in one field or several) are the same length.
fn parse_content_length(values: &[&str]) -> Option<u64> {
    let mut length = None;
    for v in values.iter().flat_map(|v| v.split(',')) {
        let v = v.trim_matches([' ', '\t']);
        if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: u64 = v.parse().ok()?;
        if length.is_some_and(|l| l != n) {
            return None;
        }
        length = Some(n);
    }
    length
}

/// Write `len` body bytes produced by `fill(offset, buf)` in the framing
/// `out`.
async fn send_body<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
    out: Out,
    len: u64,
    mut fill: impl FnMut(u64, &mut [u8]) -> io::Result<usize>,
) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut sent = 0u64;
    while sent < len {
        let want = (len - sent).min(buf.len() as u64) as usize;
        let n = fill(sent, &mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "body source ended early",
            ));
        }
        if out == Out::Chunked {
            conn.write(format!("{n:x}\r\n").as_bytes()).await?;
            conn.write(&buf[..n]).await?;
            conn.write(b"\r\n").await?;
        } else {
            conn.write(&buf[..n]).await?;
        }
        sent += n as u64;
    }
    if out == Out::Chunked {
        conn.write(b"0\r\n\r\n").await?;
    }
    Ok(())
}

/// POST /echo: stream the body back as it arrives.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
    head: &RequestHead,
    reply: &mut Reply,
    framing: Framing,
    expects_continue: bool,
    config: &ServerConfig,
) -> io::Result<bool> {
    let out = match framing {
        Framing::Length(n) => Out::Length(n),
        _ => reply.framing(None),
    };
    if expects_continue {
        conn.write(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
    }
    let content_type = head
        .values("content-type")
        .next()
        .unwrap_or("application/octet-stream")
        .to_string();
    let response = reply.head(Status::OK, &[("Content-Type", &content_type)], out);
    conn.write(&response).await?;
    conn.flush().await?;
    let mut body = Body::new(framing);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // An error here comes after our 200: all we can do is close, which
        // the client sees as a truncated body.
        let n = conn.body_read(&mut body, &mut buf, &config.limits).await?;
        if n == 0 {
            break;
        }
        if out == Out::Chunked {
            conn.write(format!("{n:x}\r\n").as_bytes()).await?;
            conn.write(&buf[..n]).await?;
            conn.write(b"\r\n").await?;
        } else {
            conn.write(&buf[..n]).await?;
        }
        // Echo as it arrives: a client may wait for its bytes before
        // sending more.
        conn.flush().await?;
    }
    if out == Out::Chunked {
        // The request's trailers come back as the response's.
        let mut end = b"0\r\n".to_vec();
        for t in &body.trailers {
            end.extend_from_slice(format!("{}: {}\r\n", t.name, t.value).as_bytes());
        }
        end.extend_from_slice(b"\r\n");
        conn.write(&end).await?;
    }
    Ok(reply.keep_alive)
}

/// Map a request target to a resource.
fn resolve(target: &str, config: &ServerConfig) -> Resource {
    // RFC 9112 3.2.2: absolute-form must be accepted; we serve any host.
    let target = match target.strip_prefix("http://") {
        Some(rest) => match rest.find('/') {
            Some(i) => &rest[i..],
            None => "/",
        },
        None => target,
    };
    if !target.starts_with('/') {
        return Resource::Missing(Status::BAD_REQUEST, "request target must be a path");
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    if path == "/echo" {
        return Resource::Echo;
    }
    if path == "/stats" && config.stats.is_some() {
        return Resource::Stats;
    }
    if let Some(n) = path.strip_prefix("/bytes/") {
        if n.is_empty() || n.len() > 20 || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Resource::Missing(Status::NOT_FOUND, "/bytes/N takes a decimal N");
        }
        return match n.parse::<u64>() {
            Ok(len) if len <= config.max_generated => Resource::Bytes {
                len,
                chunked: query.is_some_and(|q| q.split('&').any(|p| p == "chunked" || p == "chunked=1")),
            },
            _ => Resource::Missing(Status::BAD_REQUEST, "N is larger than this server generates"),
        };
    }
    match &config.root {
        Some(root) => resolve_file(root, path),
        None if path == "/" => Resource::Index,
        None => Resource::Missing(Status::NOT_FOUND, "no such resource"),
    }
}

/// Percent-decoding (RFC 3986 2.1); None for a malformed escape.
fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let v = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// A path under `root` (canonical). Traversal is refused on the decoded
/// segments (`..` in any spelling is 403), and the canonical result must
/// still be inside the root (a symlink pointing out is 403).
fn resolve_file(root: &Path, path: &str) -> Resource {
    let Some(decoded) = percent_decode(path) else {
        return Resource::Missing(Status::BAD_REQUEST, "malformed percent-encoding");
    };
    if decoded.contains(&0) {
        return Resource::Missing(Status::BAD_REQUEST, "NUL in path");
    }
    let mut candidate = root.to_path_buf();
    for segment in decoded.split(|&b| b == b'/') {
        match segment {
            b"" | b"." => {}
            b".." => return Resource::Missing(Status::FORBIDDEN, "no way up from the root"),
            s => candidate.push(std::ffi::OsStr::from_bytes(s)),
        }
    }
    let Ok(canonical) = candidate.canonicalize() else {
        return Resource::Missing(Status::NOT_FOUND, "no such file");
    };
    if !canonical.starts_with(root) {
        return Resource::Missing(Status::FORBIDDEN, "outside the served directory");
    }
    if canonical.is_dir() {
        if !path.ends_with('/') {
            return Resource::Redirect(format!("{path}/"));
        }
        let index = canonical.join("index.html");
        return match index.canonicalize() {
            Ok(i) if i.starts_with(root) && i.is_file() => Resource::File(i),
            Ok(_) => Resource::Missing(Status::FORBIDDEN, "outside the served directory"),
            Err(_) => Resource::Missing(Status::NOT_FOUND, "directory without index.html"),
        };
    }
    if canonical.is_file() {
        Resource::File(canonical)
    } else {
        Resource::Missing(Status::FORBIDDEN, "not a regular file")
    }
}

fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "txt" | "md" | "rs" => "text/plain; charset=utf-8",
        "css" => "text/css",
        "js" | "mjs" => "text/javascript",
        "json" => "application/json",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "pdf" => "application/pdf",
        "pcap" => "application/vnd.tcpdump.pcap",
        _ => "application/octet-stream",
    }
}

async fn send_file<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
    reply: &mut Reply,
    path: &Path,
) -> io::Result<bool> {
    // The path is canonical: a symlink swapped in since is not followed.
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .and_then(|f| f.metadata().map(|m| (f, m)));
    let (mut file, meta): (File, _) = match opened {
        Ok(fm) => fm,
        Err(_) => {
            simple(conn, reply, Status::NOT_FOUND, &[], "cannot open").await?;
            return Ok(reply.keep_alive);
        }
    };
    let len = meta.len();
    let modified = meta.modified().map(http_date).unwrap_or_default();
    let head = reply.head(
        Status::OK,
        &[("Content-Type", content_type(path)), ("Last-Modified", &modified)],
        Out::Length(len),
    );
    conn.write(&head).await?;
    if !reply.head_only {
        // A file that shrinks under us cannot meet its Content-Length: the
        // error closes the connection, which the client sees as truncation.
        send_body(conn, Out::Length(len), len, |_, buf| file.read(buf)).await?;
    }
    Ok(reply.keep_alive)
}

fn index_page(config: &ServerConfig) -> String {
    let stats = if config.stats.is_some() {
        "<li><a href=\"/stats\">/stats</a>: the stack's counters and connections as JSON</li>\n"
    } else {
        ""
    };
    format!(
        "<!doctype html>\n<html><head><title>tapir</title></head><body>\n\
         <h1>tapir</h1>\n<p>An HTTP/1.1 server on a userspace TCP/IP stack.</p>\n<ul>\n\
         <li><a href=\"/bytes/1000\">/bytes/N</a>: N bytes of deterministic content \
         (<code>?chunked</code> for the chunked coding)</li>\n\
         <li>POST /echo: the request body, streamed back</li>\n{stats}</ul>\n</body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_values() {
        assert_eq!(parse_content_length(&["12"]), Some(12));
        assert_eq!(parse_content_length(&["12, 12", "12"]), Some(12));
        assert_eq!(parse_content_length(&["12", "13"]), None);
        assert_eq!(parse_content_length(&["+12"]), None);
        assert_eq!(parse_content_length(&["-1"]), None);
        assert_eq!(parse_content_length(&[""]), None);
        assert_eq!(parse_content_length(&["99999999999999999999"]), None);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("/a%20b").unwrap(), b"/a b");
        assert_eq!(percent_decode("/%2e%2E/").unwrap(), b"/../");
        assert!(percent_decode("/%zz").is_none());
        assert!(percent_decode("/%2").is_none());
    }
}
