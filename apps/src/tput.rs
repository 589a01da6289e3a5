//! `tapir tput`: an iperf-like throughput tool on its own tapir stack.
//!
//! Plain bytes, no handshake of its own, so the peer can be `nc`, a python
//! socket or another tapir:
//! - client `--connect A.B.C.D:PORT`: sends the deterministic content
//!   ([`crate::http::pattern_fill`]) for `--bytes N` or `--time S` (10 s by
//!   default), shuts down its write side and waits for the peer to close;
//!   with `--receive` it reads until the peer closes (or the limit).
//! - server `--listen PORT`: per connection, reads until the client closes;
//!   with `--send`, writes until the client closes (or the limit).
//!
//! A progress line every `--interval` seconds, then a summary with the
//! rate, the bytes, and the connection's retransmits, smoothed RTT and
//! congestion window from the stack; `--sha256` adds the digest of all the
//! bytes that went by, to check against the peer's.
//!
//! With `--iperf3` it speaks iperf3's TCP test protocol instead
//! ([`crate::iperf3`]): `tapir tput --listen 5201 --iperf3` serves a kernel
//! `iperf3 -c`, and `tapir tput --connect HOST:5201 --iperf3` runs a test
//! against `iperf3 -s` (`--receive` is iperf3's `-R`, `--parallel` its
//! `-P`, `--bidir` its `--bidir`).
//!
//! The transfer loops ([`send`], [`receive`]) are generic over `Read` /
//! `Write`, so they run over `std::net` too.

use crate::http::{is_timeout, pattern_fill};
use crate::net::{bring_up_with, DriverMode, NetArgs};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};
use tapir_harness::{net, StackHandle, TcpListener, TcpStream};
use tapir_stack::{SocketHandle, TcpConnStats};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

#[derive(clap::Args, Debug)]
pub struct TputArgs {
    /// Client: connect to a server at A.B.C.D:PORT.
    #[arg(
        long,
        value_name = "A.B.C.D:PORT",
        required_unless_present = "listen",
        conflicts_with = "listen"
    )]
    pub connect: Option<SocketAddrV4>,
    /// Server: listen on this port.
    #[arg(long, value_name = "PORT")]
    pub listen: Option<u16>,
    /// Stop after this many bytes (K, M, G suffixes: powers of 1024).
    #[arg(long, value_name = "N", value_parser = parse_size, conflicts_with = "time")]
    pub bytes: Option<u64>,
    /// Stop after this many seconds [default for a sending client: 10].
    #[arg(long, value_name = "SECS")]
    pub time: Option<f64>,
    /// Client: read from the server instead of sending to it.
    #[arg(long, conflicts_with = "listen")]
    pub receive: bool,
    /// Server: send to each client instead of reading from it.
    #[arg(long, requires = "listen")]
    pub send: bool,
    /// Server: serve one client, then exit.
    #[arg(long, requires = "listen")]
    pub once: bool,
    /// Bytes per read or write call.
    #[arg(long, value_name = "N", value_parser = parse_size, default_value = "128K")]
    pub len: u64,
    /// Seconds between progress lines (0: none).
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub interval: f64,
    /// Turn Nagle's algorithm off.
    #[arg(long)]
    pub nodelay: bool,
    /// Print the SHA-256 of every byte sent or received.
    #[arg(long)]
    pub sha256: bool,
    /// Speak iperf3's protocol: serve `iperf3 -c`, or test against `iperf3 -s`.
    #[arg(long)]
    pub iperf3: bool,
    /// iperf3 client: streams per direction (iperf3 -P).
    #[arg(long, value_name = "N", default_value_t = 1, requires = "iperf3", conflicts_with = "listen",
          value_parser = clap::value_parser!(u16).range(1..=crate::iperf3::MAX_STREAMS as i64))]
    pub parallel: u16,
    /// iperf3 client: both directions at once (iperf3 --bidir).
    #[arg(long, requires = "iperf3", conflicts_with_all = ["listen", "receive"])]
    pub bidir: bool,
    /// Give up connecting after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub connect_timeout: f64,
    /// Record the connection's timeline (cwnd, ssthresh, bytes in flight,
    /// sequence sent and acknowledged, RTT, retransmissions, recovery) to
    /// this CSV; `tapir plot FILE.csv -o FILE.svg` draws it. A server
    /// records each client in turn to the same file name.
    #[arg(long, value_name = "FILE.csv", conflicts_with = "iperf3")]
    pub trace: Option<std::path::PathBuf>,
    /// Where the stack's driver runs: `task` runs it on the thread of the
    /// transfer (run to completion: a frame is read, handled, given to the
    /// transfer and answered by one thread); `thread` gives it a thread of
    /// its own, with the transfer on blocking sockets, as before.
    #[arg(long, value_enum, value_name = "WHERE", default_value_t = DriverMode::Task)]
    pub driver: DriverMode,
    #[command(flatten)]
    pub net: NetArgs,
}

/// `123`, `64K`, `100M`, `2G` (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let (digits, mult) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1u64 << 10),
        Some('m' | 'M') => (&s[..s.len() - 1], 1 << 20),
        Some('g' | 'G') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("{s:?} is not a size (e.g. 1000, 64K, 100M, 2G)"))
}

/// When a transfer stops on its own.
#[derive(Clone, Copy, Debug, Default)]
pub struct Limit {
    pub bytes: Option<u64>,
    pub time: Option<Duration>,
}

impl Limit {
    fn reached(&self, bytes: u64, elapsed: Duration) -> bool {
        self.bytes.is_some_and(|b| bytes >= b) || self.time.is_some_and(|t| elapsed >= t)
    }
}

/// What a transfer did.
#[derive(Clone, Debug)]
pub struct Transfer {
    pub bytes: u64,
    pub elapsed: Duration,
    /// Hex SHA-256 of the bytes, if asked for.
    pub sha256: Option<String>,
}

impl Transfer {
    pub fn gbits(&self) -> f64 {
        self.bytes as f64 * 8.0 / self.elapsed.as_secs_f64().max(1e-9) / 1e9
    }
}

/// Calls `report(bytes, elapsed)` at most once per interval.
struct Ticker<'a> {
    start: Instant,
    interval: Option<Duration>,
    next: Duration,
    report: &'a mut dyn FnMut(u64, Duration),
}

impl Ticker<'_> {
    fn new(interval: Option<Duration>, report: &mut dyn FnMut(u64, Duration)) -> Ticker<'_> {
        let interval = interval.filter(|i| !i.is_zero());
        Ticker {
            start: Instant::now(),
            interval,
            next: interval.unwrap_or_default(),
            report,
        }
    }

    fn tick(&mut self, bytes: u64) {
        if let Some(i) = self.interval {
            let elapsed = self.start.elapsed();
            if elapsed >= self.next {
                (self.report)(bytes, elapsed);
                // Skip the ticks a long stall missed.
                let missed = (elapsed - self.next).as_nanos() / i.as_nanos();
                self.next += i * u32::try_from(missed + 1).unwrap_or(u32::MAX);
            }
        }
    }
}

/// The bookkeeping of one transfer, shared by the blocking and the async
/// loops: how much to move next, the count, the digest, the progress.
struct Pump<'a> {
    limit: Limit,
    ticker: Ticker<'a>,
    hash: Option<Sha256>,
    buf: Vec<u8>,
    done: u64,
    bar: Option<indicatif::ProgressBar>,
}

/// What a transfer loop does with an I/O error.
enum OnError {
    /// A timeout or an interrupted call: go round again (and report).
    Retry,
    /// The peer went away (a reset or broken pipe ends a transfer the peer
    /// stopped, and is not an error).
    End,
    Fail,
}

impl<'a> Pump<'a> {
    fn new(
        limit: Limit,
        chunk: usize,
        sha256: bool,
        interval: Option<Duration>,
        report: &'a mut dyn FnMut(u64, Duration),
    ) -> Pump<'a> {
        Pump {
            limit,
            ticker: Ticker::new(interval, report),
            hash: sha256.then(Sha256::new),
            buf: vec![0u8; chunk.max(1)],
            done: 0,
            bar: None,
        }
    }

    /// How many bytes the next call moves; `None` once the limit is reached.
    fn next_len(&self) -> Option<usize> {
        if self.limit.reached(self.done, self.ticker.start.elapsed()) {
            return None;
        }
        let room = self.buf.len() as u64;
        Some(self.limit.bytes.map_or(room, |b| (b - self.done).min(room)) as usize)
    }

    /// The next piece of the deterministic content to send: the content
    /// is a function of the offset, so a partial write leaves the rest to
    /// the next round.
    fn next_to_send(&mut self) -> Option<&[u8]> {
        let n = self.next_len()?;
        pattern_fill(self.done, &mut self.buf[..n]);
        Some(&self.buf[..n])
    }

    /// `n` bytes of the buffer went through.
    fn moved(&mut self, n: usize) {
        if let Some(h) = &mut self.hash {
            h.update(&self.buf[..n]);
        }
        if let Some(bar) = &self.bar {
            bar.inc(n as u64);
        }
        self.done += n as u64;
        self.ticker.tick(self.done);
    }

    fn on_error(&mut self, e: &io::Error, sending: bool) -> OnError {
        if is_timeout(e) || e.kind() == io::ErrorKind::Interrupted {
            self.ticker.tick(self.done);
            return OnError::Retry;
        }
        if sending
            && matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            )
        {
            return OnError::End;
        }
        OnError::Fail
    }

    fn finish(self) -> Transfer {
        Transfer {
            bytes: self.done,
            elapsed: self.ticker.start.elapsed(),
            sha256: self.hash.map(|h| hex(&h.finish())),
        }
    }
}

/// Write the deterministic content until `limit` (or the peer goes away:
/// a reset or broken pipe ends a transfer the peer stopped, and is not an
/// error). `chunk` bytes per write.
pub fn send<W: Write>(
    w: &mut W,
    limit: Limit,
    chunk: usize,
    sha256: bool,
    interval: Option<Duration>,
    report: &mut dyn FnMut(u64, Duration),
) -> io::Result<Transfer> {
    sync_send(w, Pump::new(limit, chunk, sha256, interval, report))
}

fn sync_send<W: Write>(w: &mut W, mut p: Pump<'_>) -> io::Result<Transfer> {
    while let Some(data) = p.next_to_send() {
        match w.write(data) {
            Ok(0) => break,
            Ok(k) => p.moved(k),
            Err(e) => match p.on_error(&e, true) {
                OnError::Retry => {}
                OnError::End => break,
                OnError::Fail => return Err(e),
            },
        }
    }
    w.flush()?;
    Ok(p.finish())
}

/// Read until the peer closes or `limit`. Read timeouts only wake the loop
/// (to report progress and check the time limit).
pub fn receive<R: Read>(
    r: &mut R,
    limit: Limit,
    chunk: usize,
    sha256: bool,
    interval: Option<Duration>,
    report: &mut dyn FnMut(u64, Duration),
) -> io::Result<Transfer> {
    sync_receive(r, Pump::new(limit, chunk, sha256, interval, report))
}

fn sync_receive<R: Read>(r: &mut R, mut p: Pump<'_>) -> io::Result<Transfer> {
    while let Some(n) = p.next_len() {
        match r.read(&mut p.buf[..n]) {
            Ok(0) => break,
            Ok(k) => p.moved(k),
            Err(e) => match p.on_error(&e, false) {
                OnError::Retry => {}
                OnError::End | OnError::Fail => return Err(e),
            },
        }
    }
    Ok(p.finish())
}

/// [`send`] on an async stream; a write that waits longer than `wake`
/// returns to the loop (to report and check the time limit), as a blocking
/// write timeout would.
async fn send_async<W: AsyncWrite + Unpin>(
    w: &mut W,
    mut p: Pump<'_>,
    wake: Duration,
) -> io::Result<Transfer> {
    while let Some(data) = p.next_to_send() {
        match tokio::time::timeout(wake, w.write(data)).await {
            Err(_) => p.ticker.tick(p.done),
            Ok(Ok(0)) => break,
            Ok(Ok(k)) => p.moved(k),
            Ok(Err(e)) => match p.on_error(&e, true) {
                OnError::Retry => {}
                OnError::End => break,
                OnError::Fail => return Err(e),
            },
        }
    }
    w.flush().await?;
    Ok(p.finish())
}

/// [`receive`] on an async stream, as [`send_async`].
async fn receive_async<R: AsyncRead + Unpin>(
    r: &mut R,
    mut p: Pump<'_>,
    wake: Duration,
) -> io::Result<Transfer> {
    while let Some(n) = p.next_len() {
        match tokio::time::timeout(wake, r.read(&mut p.buf[..n])).await {
            Err(_) => p.ticker.tick(p.done),
            Ok(Ok(0)) => break,
            Ok(Ok(k)) => p.moved(k),
            Ok(Err(e)) => match p.on_error(&e, false) {
                OnError::Retry => {}
                OnError::End | OnError::Fail => return Err(e),
            },
        }
    }
    Ok(p.finish())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 (the `sha2` crate), for checking transfers against a peer's
/// `hashlib.sha256` or `sha256sum`.
#[derive(Default)]
pub struct Sha256(sha2::Sha256);

impl Sha256 {
    pub fn new() -> Sha256 {
        Sha256::default()
    }

    pub fn update(&mut self, data: &[u8]) {
        sha2::Digest::update(&mut self.0, data);
    }

    pub fn finish(self) -> [u8; 32] {
        sha2::Digest::finalize(self.0).into()
    }

    /// The hex digest of `data`.
    pub fn hex(data: &[u8]) -> String {
        let mut h = Sha256::new();
        h.update(data);
        hex(&h.finish())
    }
}

fn mbytes(n: u64) -> f64 {
    n as f64 / 1e6
}

/// The connection's counters as the summary shows them.
fn conn_summary(s: &TcpConnStats) -> String {
    format!(
        "retransmits {}; srtt {}; cwnd {} B; mss {}; out-of-order drops {} (ranges) {} (budget); \
         recoveries {}, undone {} (D-SACK {}, timestamps {}, F-RTO {}); D-SACKs received {}",
        s.retransmits,
        s.srtt
            .map(|d| format!("{:.3} ms", d.as_secs_f64() * 1e3))
            .unwrap_or_else(|| "-".into()),
        s.cwnd,
        s.mss,
        s.ooo_range_drops,
        s.ooo_budget_drops,
        s.fast_recoveries,
        s.dsack_undo + s.ts_undo + s.frto_spurious,
        s.dsack_undo,
        s.ts_undo,
        s.frto_spurious,
        s.dsack_recv
    )
}

/// How a connection's transfer runs: with the blocking socket on a
/// driver thread, or as a task beside the driver task (`--driver task`).
enum Io<'a> {
    Blocking(&'a TcpStream),
    Task(&'a tokio::runtime::Runtime, &'a mut net::TcpStream),
}

/// One transfer on a connected stream, in the direction asked, with
/// progress and a summary on stdout.
fn run_transfer(
    stack: &StackHandle,
    io: Io<'_>,
    sending: bool,
    limit: Limit,
    args: &TputArgs,
) -> Result<(), String> {
    let interval = Duration::try_from_secs_f64(args.interval)
        .ok()
        .filter(|d| !d.is_zero());
    // Reads and writes wake at least once an interval, to report and check
    // the clock.
    let wake = interval.unwrap_or(Duration::from_secs(1));
    let (handle, peer, local) = match &io {
        Io::Blocking(s) => (s.handle(), s.peer_addr(), s.local_addr()),
        Io::Task(_, s) => (s.handle(), s.peer_addr(), s.local_addr()),
    };
    let peer = peer.map(|a| a.to_string()).unwrap_or_default();
    let local = local.map(|a| a.to_string()).unwrap_or_default();
    let stats = || stack.try_with(|i| i.tcp_stats(handle)).ok().flatten();
    println!(
        "tput: {} {local} {} {peer}",
        if sending { "sending" } else { "receiving" },
        if sending { "->" } else { "<-" }
    );
    let mut last = (0u64, Duration::ZERO, 0u64);
    let mut report = |bytes: u64, elapsed: Duration| {
        let retrans = stats().map(|s| s.retransmits).unwrap_or(0);
        let (b0, t0, r0) = last;
        let secs = (elapsed - t0).as_secs_f64().max(1e-9);
        println!(
            "[{:6.2}-{:6.2} s] {:10.2} MB {:8.3} Gbit/s  retransmits {}",
            t0.as_secs_f64(),
            elapsed.as_secs_f64(),
            mbytes(bytes - b0),
            (bytes - b0) as f64 * 8.0 / secs / 1e9,
            retrans - r0
        );
        last = (bytes, elapsed, retrans);
    };
    let recorder = match &args.trace {
        Some(path) => Some(TraceRecorder::start(stack, handle, path)?),
        None => None,
    };
    let chunk = usize::try_from(args.len).unwrap_or(usize::MAX).min(16 << 20);
    let bar = crate::progress::bar(if sending { "tput: sent" } else { "tput: received" });
    let mut pump = Pump::new(limit, chunk, args.sha256, interval, &mut report);
    pump.bar = Some(bar.clone());
    // After sending: our FIN after the data, then the peer's close says it
    // has all of it (a process exit now could otherwise cut the tail
    // short). Bounded: 30 s, or 1 GiB of whatever the peer sends back.
    let mut scratch = vec![0u8; 64 * 1024];
    let mut waited = 0usize;
    let result = match io {
        Io::Blocking(stream) => {
            stream.set_read_timeout(Some(wake)).map_err(|e| e.to_string())?;
            let mut s = stream;
            let r = if sending {
                sync_send(&mut s, pump)
            } else {
                sync_receive(&mut s, pump)
            };
            if sending && r.is_ok() {
                let _ = stream.shutdown(Shutdown::Write);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                while let Ok(n @ 1..) = s.read(&mut scratch) {
                    waited += n;
                    if waited > 1 << 30 {
                        break;
                    }
                }
            }
            r
        }
        Io::Task(rt, stream) => rt.block_on(async {
            let r = if sending {
                send_async(stream, pump, wake).await
            } else {
                receive_async(stream, pump, wake).await
            };
            if sending && r.is_ok() {
                let _ = stream.shutdown().await;
                let drain = async {
                    while let Ok(n @ 1..) = stream.read(&mut scratch).await {
                        waited += n;
                        if waited > 1 << 30 {
                            break;
                        }
                    }
                };
                let _ = tokio::time::timeout(Duration::from_secs(30), drain).await;
            }
            r
        }),
    };
    bar.finish_and_clear();
    let transfer = result.map_err(|e| format!("transfer with {peer}: {e}"))?;
    println!(
        "tput: {} {} bytes ({:.2} MB) in {:.3} s = {:.3} Gbit/s; {}",
        if sending { "sent" } else { "received" },
        transfer.bytes,
        mbytes(transfer.bytes),
        transfer.elapsed.as_secs_f64(),
        transfer.gbits(),
        stats()
            .as_ref()
            .map(conn_summary)
            .unwrap_or_else(|| "no connection stats".into())
    );
    if let Some(h) = &transfer.sha256 {
        println!("sha256: {h}");
    }
    if let (Some(r), Some(path)) = (recorder, &args.trace) {
        let (rows, dropped) = r.finish()?;
        println!(
            "tput: timeline of {rows} samples in {}{}",
            path.display(),
            if dropped > 0 {
                format!(" ({dropped} lost: drained too slowly)")
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

/// Drains a traced connection's timeline into a CSV file from a thread of
/// its own, every few milliseconds, so the stack's bounded trace queue
/// never fills.
struct TraceRecorder {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Result<(u64, u64), String>>,
}

impl TraceRecorder {
    fn start(stack: &StackHandle, h: SocketHandle, path: &std::path::Path) -> Result<TraceRecorder, String> {
        use std::sync::atomic::{AtomicBool, Ordering};
        let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut csv =
            crate::trace::CsvWriter::new(std::io::BufWriter::new(file)).map_err(|e| e.to_string())?;
        stack
            .try_with(|i| i.tcp_trace(h, Some(tapir_stack::DEFAULT_TRACE_CAPACITY)))
            .map_err(|e| format!("trace: {e}"))?
            .map_err(|e| format!("trace: {e}"))?;
        let stack = stack.clone();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("tput-trace".into())
            .spawn(move || {
                let mut samples = Vec::new();
                let mut dropped = 0;
                loop {
                    let last = flag.load(Ordering::SeqCst);
                    samples.clear();
                    // A connection already gone has nothing more to give.
                    dropped += stack
                        .try_with(|i| i.tcp_drain_trace(h, &mut samples))
                        .unwrap_or(0);
                    for s in &samples {
                        csv.write(s).map_err(|e| e.to_string())?;
                    }
                    if last {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = stack.try_with(|i| i.tcp_trace(h, None));
                let rows = csv.rows;
                csv.into_inner().flush().map_err(|e| e.to_string())?;
                Ok((rows, dropped))
            })
            .map_err(|e| e.to_string())?;
        Ok(TraceRecorder { stop, thread })
    }

    /// Drain what is left and close the file: (rows written, samples lost).
    fn finish(self) -> Result<(u64, u64), String> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread
            .join()
            .map_err(|_| "the trace thread panicked".to_string())?
    }
}

/// `--iperf3`: one test against an iperf3 server, or serve iperf3 clients.
fn run_iperf3(
    rt: &tokio::runtime::Runtime,
    stack: &StackHandle,
    args: &TputArgs,
    limit: Limit,
) -> Result<(), String> {
    use crate::iperf3;
    let chunk = usize::try_from(args.len).unwrap_or(usize::MAX).min(1 << 20);
    if let Some(addr) = args.connect {
        let timeout = Duration::try_from_secs_f64(args.connect_timeout)
            .map_err(|_| "--connect-timeout must be a positive number of seconds".to_string())?;
        let params = iperf3::TestParams {
            parallel: usize::from(args.parallel),
            reverse: args.receive,
            bidirectional: args.bidir,
            time: limit.time.map_or(0.0, |t| t.as_secs_f64()),
            bytes: limit.bytes.unwrap_or(0),
            len: chunk,
            omit: 0.0,
        };
        let connect = || async move {
            let s = tokio::time::timeout(timeout, net::TcpStream::connect(stack, SocketAddr::V4(addr)))
                .await
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
            s.set_nodelay(args.nodelay)?;
            Ok(s)
        };
        println!("tput: iperf3 test against {addr}: {params:?}");
        let mut progress = |sent: u64, got: u64, t: Duration| {
            println!(
                "[{:6.2} s] sent {:10.2} MB, received {:10.2} MB",
                t.as_secs_f64(),
                mbytes(sent),
                mbytes(got)
            );
        };
        let seed = args
            .net
            .seed
            .unwrap_or_else(|| tapir_harness::os_random_u64().unwrap_or(0))
            ^ u64::from(std::process::id());
        let report = rt
            .block_on(iperf3::run_client(connect, &params, seed, &mut progress))
            .map_err(|e| format!("iperf3 test against {addr}: {e}"))?;
        print!("{}", report.summary());
        return Ok(());
    }
    let port = args.listen.ok_or("--iperf3 needs --connect or --listen")?;
    let listener = rt
        .block_on(net::TcpListener::bind(stack, ("0.0.0.0", port)))
        .map_err(|e| format!("listen on {port}: {e}"))?;
    if args.nodelay {
        // Accepted streams inherit it (Linux: options set on the listener).
        listener
            .set_option(tapir_stack::TcpOption::NoDelay(true))
            .map_err(|e| e.to_string())?;
    }
    println!("tput: serving iperf3 on {}:{port}", args.net.addr.addr);
    loop {
        let (ctrl, peer) = rt
            .block_on(listener.accept())
            .map_err(|e| format!("accept: {e}"))?;
        ctrl.set_nodelay(true).map_err(|e| e.to_string())?;
        println!("tput: iperf3 test from {peer}");
        let r = rt.block_on(iperf3::serve(ctrl, &listener));
        match &r {
            Ok(report) => print!("{}", report.summary()),
            Err(e) => eprintln!("tput: iperf3 test from {peer}: {e}"),
        }
        if args.once {
            return r.map(drop).map_err(|e| format!("iperf3 test from {peer}: {e}"));
        }
    }
}

pub fn run(args: TputArgs) -> Result<(), String> {
    let time = match args.time {
        Some(t) => Some(
            Duration::try_from_secs_f64(t)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or("--time must be a positive number of seconds")?,
        ),
        // A sending client needs an end; everyone else stops at the close.
        None if args.bytes.is_none() && args.connect.is_some() && !args.receive => {
            Some(Duration::from_secs(10))
        }
        None => None,
    };
    let limit = Limit {
        bytes: args.bytes,
        time,
    };
    let connect_timeout = Duration::try_from_secs_f64(args.connect_timeout)
        .map_err(|_| "--connect-timeout must be a positive number of seconds".to_string())?;
    let (running, task) =
        bring_up_with(&args.net, args.driver).map_err(|e| format!("bringing the stack up: {e}"))?;
    // With the driver as a task, everything runs on this thread, the
    // driver included (only while the runtime runs: inside `block_on`).
    // With a driver thread, iperf3's control connection and streams are
    // tasks of two threads, so a bidirectional test's senders and
    // receivers run side by side.
    let rt = match task {
        Some(_) => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        None => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tput-iperf3")
            .enable_all()
            .build(),
    }
    .map_err(|e| format!("starting the runtime: {e}"))?;
    let driver_task = task.map(|t| rt.spawn(t.run()));
    let stack = running.driver.stack();
    let result = if args.iperf3 {
        run_iperf3(&rt, &stack, &args, limit)
    } else if driver_task.is_some() {
        serve_or_connect_tasks(&rt, &stack, &args, limit, connect_timeout)
    } else {
        serve_or_connect_blocking(&stack, &args, limit, connect_timeout)
    };
    // Let the last close finish before the stack goes.
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(2);
        while stack.with(|i| i.tcp_connection_count()) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let driver_error = running.driver.error();
    running.driver.shutdown();
    if let Some(t) = driver_task {
        // It returns at its next step, completing the capture.
        let _ = rt.block_on(t);
    }
    result?;
    match driver_error {
        Some(e) => Err(format!("the stack stopped: {e}")),
        None => Ok(()),
    }
}

/// The plain transfer with blocking sockets (`--driver thread`).
fn serve_or_connect_blocking(
    stack: &StackHandle,
    args: &TputArgs,
    limit: Limit,
    connect_timeout: Duration,
) -> Result<(), String> {
    if let Some(addr) = args.connect {
        let stream = TcpStream::connect_timeout(stack, &SocketAddr::V4(addr), connect_timeout)
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        stream.set_nodelay(args.nodelay).map_err(|e| e.to_string())?;
        return run_transfer(stack, Io::Blocking(&stream), !args.receive, limit, args);
    }
    let Some(port) = args.listen else {
        return Ok(());
    };
    let listener =
        TcpListener::bind(stack, ("0.0.0.0", port)).map_err(|e| format!("listen on {port}: {e}"))?;
    println!("tput: listening on {}:{port}", args.net.addr.addr);
    loop {
        let (stream, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
        stream.set_nodelay(args.nodelay).map_err(|e| e.to_string())?;
        let r = run_transfer(stack, Io::Blocking(&stream), args.send, limit, args);
        drop(stream);
        if args.once {
            return r;
        }
        if let Err(e) = r {
            eprintln!("tput: {e}");
        }
    }
}

/// The plain transfer as a task beside the driver task (`--driver task`).
fn serve_or_connect_tasks(
    rt: &tokio::runtime::Runtime,
    stack: &StackHandle,
    args: &TputArgs,
    limit: Limit,
    connect_timeout: Duration,
) -> Result<(), String> {
    if let Some(addr) = args.connect {
        let mut stream = rt
            // The timer is made inside the runtime (it needs its context).
            .block_on(async {
                tokio::time::timeout(
                    connect_timeout,
                    net::TcpStream::connect(stack, SocketAddr::V4(addr)),
                )
                .await
            })
            .map_err(|_| format!("connect to {addr}: timed out"))?
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        stream.set_nodelay(args.nodelay).map_err(|e| e.to_string())?;
        return run_transfer(stack, Io::Task(rt, &mut stream), !args.receive, limit, args);
    }
    let Some(port) = args.listen else {
        return Ok(());
    };
    let listener = rt
        .block_on(net::TcpListener::bind(stack, ("0.0.0.0", port)))
        .map_err(|e| format!("listen on {port}: {e}"))?;
    println!("tput: listening on {}:{port}", args.net.addr.addr);
    loop {
        let (mut stream, _) = rt
            .block_on(listener.accept())
            .map_err(|e| format!("accept: {e}"))?;
        stream.set_nodelay(args.nodelay).map_err(|e| e.to_string())?;
        let r = run_transfer(stack, Io::Task(rt, &mut stream), args.send, limit, args);
        drop(stream);
        if args.once {
            return r;
        }
        if let Err(e) = r {
            eprintln!("tput: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_vectors() {
        assert_eq!(
            Sha256::hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            Sha256::hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            Sha256::hex(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
        // Fed in odd pieces, the same digest.
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 31 % 251) as u8).collect();
        let mut h = Sha256::new();
        for piece in data.chunks(37) {
            h.update(piece);
        }
        assert_eq!(hex(&h.finish()), Sha256::hex(&data));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("100M"), Ok(100 << 20));
        assert_eq!(parse_size("64k"), Ok(65_536));
        assert_eq!(parse_size("7"), Ok(7));
        assert!(parse_size("x").is_err());
    }
}
