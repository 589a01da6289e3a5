//! iperf3's TCP test protocol, so that `tapir tput --iperf3` talks to the
//! real `iperf3` in both roles (a kernel `iperf3 -c` against tapir, tapir
//! against a kernel `iperf3 -s`).
//!
//! The protocol (iperf3 3.x, `iperf_api.c`, `iperf_client_api.c`,
//! `iperf_server_api.c`) runs a control connection beside the data
//! streams:
//!
//! ```text
//! client                                   server
//!   cookie (36 chars + NUL) --------------->
//!   <--------------------------------- PARAM_EXCHANGE (9)
//!   u32 length + JSON parameters ---------->
//!   <--------------------------------- CREATE_STREAMS (10)
//!   per stream: connect, send the cookie -->   (first the streams the
//!   <--------------------------------- TEST_START (1)   server receives on)
//!   <--------------------------------- TEST_RUNNING (2)
//!   ... data on the streams for --time or --bytes ...
//!   TEST_END (4) -------------------------->
//!   <--------------------------------- EXCHANGE_RESULTS (13)
//!   u32 length + JSON results ------------->
//!   <--------------------------------- u32 length + JSON results
//!   <--------------------------------- DISPLAY_RESULTS (14)
//!   IPERF_DONE (16) ----------------------->
//! ```
//!
//! A state is one signed byte. A server that refuses a test sends
//! SERVER_ERROR (-2) followed by iperf3's error number and errno, each a
//! big-endian `i32`; a busy server sends ACCESS_DENIED (-1).
//!
//! Stream ids follow iperf3's `iperf_add_stream`: 1 for the first stream,
//! then 3, 4, 5, ... (the second stream is 3, not 2). Both ends number the
//! streams in connection order, and the results are matched by id, so
//! tapir must number them the same way.
//!
//! Only TCP tests are supported (UDP and SCTP are refused with iperf3's
//! "not implemented" error); `--omit` seconds are waited out but counted.
//!
//! The protocol runs on async sockets: the control connection and each
//! data stream are tasks of the caller's tokio runtime, so a test costs no
//! threads and the streams stop the moment the test ends (no polling).
//! The code is generic over [`Stream`] and [`Acceptor`], implemented for
//! tapir's sockets ([`tapir_harness::net`]) and for `tokio::net`'s, so the
//! same code can run over the kernel's TCP.

use serde_json::{json, Value};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const TEST_START: i8 = 1;
const TEST_RUNNING: i8 = 2;
const TEST_END: i8 = 4;
const PARAM_EXCHANGE: i8 = 9;
const CREATE_STREAMS: i8 = 10;
const CLIENT_TERMINATE: i8 = 12;
const EXCHANGE_RESULTS: i8 = 13;
const DISPLAY_RESULTS: i8 = 14;
const IPERF_DONE: i8 = 16;
const SERVER_TERMINATE: i8 = 11;
const ACCESS_DENIED: i8 = -1;
const SERVER_ERROR: i8 = -2;

/// iperf3's `IEUNIMP`: "not implemented yet".
const IE_UNIMPLEMENTED: i32 = 13;

/// iperf3's cookie: 36 characters from this alphabet, then a NUL.
const COOKIE_LEN: usize = 37;
const COOKIE_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";

/// The largest JSON message accepted (parameters or results): iperf3's
/// own are a few hundred bytes per stream.
const MAX_JSON: usize = 1 << 20;
/// Streams per test, as iperf3's `MAX_STREAMS` (128).
pub const MAX_STREAMS: usize = 128;
/// The largest block size, as iperf3's `MAX_BLOCKSIZE` (1 MiB).
const MAX_BLOCK: usize = 1 << 20;

/// How long a control-connection step may take before the test is given
/// up (the peer vanished).
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a server waits for each data stream the client said it would
/// open, so that a client that never connects its streams cannot hold the
/// server.
pub const STREAM_ACCEPT_TIMEOUT: Duration = STEP_TIMEOUT;

/// What the protocol needs of a connection; implemented for tapir's async
/// stream and for `tokio::net::TcpStream`.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Segments retransmitted on this connection, if the stack tells.
    fn retransmits(&self) -> Option<u64>;
    /// The congestion control the connection runs, if the stack tells
    /// (iperf3's `congestion_used`).
    fn congestion(&self) -> Option<&'static str>;
}

impl Stream for tapir_harness::net::TcpStream {
    fn retransmits(&self) -> Option<u64> {
        self.stats().ok().map(|s| s.retransmits)
    }
    fn congestion(&self) -> Option<&'static str> {
        self.stats().ok().map(|s| s.congestion_control)
    }
}

impl Stream for tokio::net::TcpStream {
    fn retransmits(&self) -> Option<u64> {
        None
    }
    fn congestion(&self) -> Option<&'static str> {
        None
    }
}

/// Where a server takes its connections from: the control connection and
/// then the test's data streams.
pub trait Acceptor: Sync {
    type Stream: Stream;
    fn accept_stream(&self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;
}

impl Acceptor for tapir_harness::net::TcpListener {
    type Stream = tapir_harness::net::TcpStream;
    fn accept_stream(&self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send {
        self.accept()
    }
}

impl Acceptor for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;
    fn accept_stream(&self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send {
        self.accept()
    }
}

/// `f`, or a TimedOut error after `limit`: the peer went silent.
async fn within<T>(limit: Duration, what: &str, f: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    match tokio::time::timeout(limit, f).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("iperf3: no {what} within {limit:?}"),
        )),
    }
}

/// A test as the client's parameters describe it.
#[derive(Clone, Debug, PartialEq)]
pub struct TestParams {
    /// Streams per direction.
    pub parallel: usize,
    /// The server sends (iperf3 `-R`).
    pub reverse: bool,
    /// Both directions at once (iperf3 `--bidir`).
    pub bidirectional: bool,
    /// Seconds, when the test is timed (0: ended by bytes).
    pub time: f64,
    /// Bytes, when the test is ended by a byte count (iperf3 `-n`; `-k`
    /// blocks are turned into bytes).
    pub bytes: u64,
    /// Bytes per read or write.
    pub len: usize,
    /// Seconds at the start iperf3 leaves out of its figures.
    pub omit: f64,
}

impl Default for TestParams {
    fn default() -> Self {
        TestParams {
            parallel: 1,
            reverse: false,
            bidirectional: false,
            time: 10.0,
            bytes: 0,
            len: 128 * 1024,
            omit: 0.0,
        }
    }
}

impl TestParams {
    fn to_json(&self) -> Value {
        let mut v = json!({
            "tcp": true,
            "omit": self.omit,
            "time": self.time,
            "num": self.bytes,
            "blockcount": 0,
            "parallel": self.parallel,
            "len": self.len,
            "pacing_timer": 1000,
            "client_version": "3.12",
        });
        if self.reverse {
            v["reverse"] = json!(true);
        }
        if self.bidirectional {
            v["bidirectional"] = json!(true);
        }
        v
    }

    /// The parameters of a test tapir can run, or the reason it can't.
    fn from_json(v: &Value) -> Result<TestParams, String> {
        for proto in ["udp", "sctp"] {
            if v.get(proto).and_then(Value::as_bool).unwrap_or(false) {
                return Err(format!("{proto} tests are not supported (TCP only)"));
            }
        }
        let num = |k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(0.0);
        let flag = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
        let parallel = num("parallel").max(1.0);
        if parallel > MAX_STREAMS as f64 {
            return Err(format!("{parallel} streams is more than {MAX_STREAMS}"));
        }
        let len = match num("len") {
            l if l <= 0.0 => 128.0 * 1024.0,
            l if l > MAX_BLOCK as f64 => return Err(format!("block size {l} is over {MAX_BLOCK}")),
            l => l,
        } as usize;
        let blocks = num("blockcount").max(0.0) as u64;
        let bytes = (num("num").max(0.0) as u64).max(blocks.saturating_mul(len as u64));
        let p = TestParams {
            parallel: parallel as usize,
            reverse: flag("reverse"),
            bidirectional: flag("bidirectional"),
            time: num("time").max(0.0),
            bytes,
            len,
            omit: num("omit").max(0.0),
        };
        if p.reverse && p.bidirectional {
            return Err("a test cannot be both reverse and bidirectional".into());
        }
        Ok(p)
    }

    /// Which streams the client sends on, in connection order: the
    /// server's receiving streams are connected first.
    fn client_sends(&self) -> Vec<bool> {
        let n = self.parallel;
        if self.bidirectional {
            (0..2 * n).map(|i| i < n).collect()
        } else {
            vec![!self.reverse; n]
        }
    }

    /// How long the test may run before a side gives up waiting.
    fn deadline(&self) -> Duration {
        if self.time > 0.0 && self.bytes == 0 {
            Duration::from_secs_f64(self.time + self.omit) + STEP_TIMEOUT
        } else {
            // Ended by a byte count: no clock to go by, only a bound.
            Duration::from_secs(3600)
        }
    }
}

/// iperf3's stream numbering: 1, then 3, 4, 5, ...
fn stream_id(index: usize) -> u64 {
    if index == 0 {
        1
    } else {
        index as u64 + 2
    }
}

/// One data stream's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamResult {
    pub id: u64,
    /// This end sent on the stream (else it received).
    pub sender: bool,
    pub bytes: u64,
    pub seconds: f64,
    /// Retransmitted segments, when this end sent and its stack tells.
    pub retransmits: Option<u64>,
}

/// A finished test: this end's streams and what the peer reported for the
/// same streams.
#[derive(Clone, Debug)]
pub struct Report {
    pub params: TestParams,
    pub local: Vec<StreamResult>,
    pub peer: Vec<StreamResult>,
}

impl Report {
    fn total(list: &[StreamResult], sender: bool) -> u64 {
        list.iter().filter(|s| s.sender == sender).map(|s| s.bytes).sum()
    }

    /// Lines in the spirit of iperf3's summary: per direction, what the
    /// sender wrote and what the receiver read.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let secs = self.local.iter().map(|s| s.seconds).fold(0.0, f64::max).max(1e-9);
        for (what, sender_list, receiver_list) in [
            ("tapir -> peer", &self.local, &self.peer),
            ("peer -> tapir", &self.peer, &self.local),
        ] {
            let sent = Self::total(sender_list, true);
            let got = Self::total(receiver_list, false);
            if sender_list.iter().all(|s| !s.sender) {
                continue;
            }
            let retrans: Option<u64> = sender_list
                .iter()
                .filter(|s| s.sender)
                .map(|s| s.retransmits)
                .sum();
            out.push_str(&format!(
                "iperf3: {what}: sent {sent} bytes, received {got} bytes, {:.3} Gbit/s{}\n",
                got as f64 * 8.0 / secs / 1e9,
                retrans.map(|r| format!(", {r} retransmits")).unwrap_or_default()
            ));
        }
        out
    }
}

fn proto(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

async fn write_state(ctrl: &mut (impl AsyncWrite + Unpin), state: i8) -> io::Result<()> {
    within(
        STEP_TIMEOUT,
        "room to write",
        ctrl.write_all(&state.to_be_bytes()),
    )
    .await
}

/// The next state byte, waiting at most `limit`.
async fn read_state_within(ctrl: &mut (impl AsyncRead + Unpin), limit: Duration) -> io::Result<i8> {
    let mut b = [0u8; 1];
    within(limit, "state from the peer", ctrl.read_exact(&mut b)).await?;
    Ok(i8::from_be_bytes(b))
}

async fn read_state(ctrl: &mut (impl AsyncRead + Unpin)) -> io::Result<i8> {
    read_state_within(ctrl, STEP_TIMEOUT).await
}

async fn write_json(ctrl: &mut (impl AsyncWrite + Unpin), v: &Value) -> io::Result<()> {
    let text = v.to_string();
    let len = u32::try_from(text.len()).map_err(|_| proto("JSON too long"))?;
    let mut msg = len.to_be_bytes().to_vec();
    msg.extend_from_slice(text.as_bytes());
    within(STEP_TIMEOUT, "room to write", ctrl.write_all(&msg)).await
}

async fn read_json(ctrl: &mut (impl AsyncRead + Unpin)) -> io::Result<Value> {
    let mut len = [0u8; 4];
    within(STEP_TIMEOUT, "JSON from the peer", ctrl.read_exact(&mut len)).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_JSON {
        return Err(proto(format!(
            "a {len}-byte JSON message is over the {MAX_JSON}-byte limit"
        )));
    }
    let mut buf = vec![0u8; len];
    within(STEP_TIMEOUT, "JSON from the peer", ctrl.read_exact(&mut buf)).await?;
    serde_json::from_slice(&buf).map_err(|e| proto(format!("bad JSON from the peer: {e}")))
}

/// A fresh cookie from `seed` (any varying value: it only has to differ
/// between concurrent tests).
fn make_cookie(mut seed: u64) -> [u8; COOKIE_LEN] {
    let mut c = [0u8; COOKIE_LEN];
    for b in &mut c[..COOKIE_LEN - 1] {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        *b = COOKIE_ALPHABET[(seed % COOKIE_ALPHABET.len() as u64) as usize];
    }
    c
}

/// Process CPU time (user, system), for the results' `cpu_util_*` fields.
fn cpu_times() -> (f64, f64) {
    // SAFETY: getrusage writes the struct we pass and nothing else.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return (0.0, 0.0);
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(ru.ru_utime), secs(ru.ru_stime))
}

/// The data streams of a running test, each a task of the runtime.
struct Streams<S: Stream> {
    stop: watch::Sender<bool>,
    workers: Vec<Worker<S>>,
    start: Instant,
}

struct Worker<S> {
    id: u64,
    sender: bool,
    bytes: Arc<AtomicU64>,
    handle: JoinHandle<S>,
}

impl<S: Stream> Streams<S> {
    /// Start moving data: `sends[i]` says whether this end sends on
    /// `streams[i]`. Senders share `budget` bytes when the test is ended
    /// by a byte count. Runs on the caller's tokio runtime.
    fn start(streams: Vec<S>, sends: &[bool], params: &TestParams) -> Streams<S> {
        let stop = watch::channel(false).0;
        let budget = Arc::new(AtomicU64::new(if params.bytes > 0 {
            params.bytes
        } else {
            u64::MAX
        }));
        let start = Instant::now();
        let mut workers = Vec::new();
        for (i, (mut stream, &sender)) in streams.into_iter().zip(sends).enumerate() {
            let bytes = Arc::new(AtomicU64::new(0));
            let (stop_rx, bytes2, budget2, len) =
                (stop.subscribe(), bytes.clone(), budget.clone(), params.len);
            let handle = tokio::spawn(async move {
                if sender {
                    send_until_stopped(&mut stream, len, stop_rx, &bytes2, &budget2).await;
                } else {
                    receive_until_stopped(&mut stream, len, stop_rx, &bytes2).await;
                }
                stream
            });
            workers.push(Worker {
                id: stream_id(i),
                sender,
                bytes,
                handle,
            });
        }
        Streams { stop, workers, start }
    }

    /// Bytes moved so far by this end's senders and receivers.
    fn moved(&self) -> (u64, u64) {
        let (mut sent, mut got) = (0, 0);
        for w in &self.workers {
            let b = w.bytes.load(Ordering::Relaxed);
            if w.sender {
                sent += b;
            } else {
                got += b;
            }
        }
        (sent, got)
    }

    fn all_finished(&self) -> bool {
        self.workers.iter().all(|w| w.handle.is_finished())
    }

    /// Stop every stream task; the results, the streams to close once the
    /// results are exchanged, and the test's length.
    async fn stop(self) -> (Vec<StreamResult>, Vec<S>, f64) {
        self.stop.send_replace(true);
        let elapsed = self.start.elapsed().as_secs_f64();
        let mut results = Vec::new();
        let mut streams = Vec::new();
        for w in self.workers {
            let Ok(s) = w.handle.await else {
                continue;
            };
            results.push(StreamResult {
                id: w.id,
                sender: w.sender,
                bytes: w.bytes.load(Ordering::SeqCst),
                seconds: elapsed,
                retransmits: if w.sender { s.retransmits() } else { None },
            });
            streams.push(s);
        }
        (results, streams, elapsed)
    }
}

/// Keep the stream's send buffer full until told to stop, the byte budget
/// is spent, or the peer goes away. A write interrupted by the stop has
/// written nothing (AsyncWrite's poll_write is all or nothing per call),
/// so the byte count stays exact.
async fn send_until_stopped<S: Stream>(
    s: &mut S,
    len: usize,
    mut stop: watch::Receiver<bool>,
    bytes: &AtomicU64,
    budget: &AtomicU64,
) {
    // iperf3 sends random bytes; any content will do, but not all zeros
    // (which a compressing path would flatter).
    let mut block = vec![0u8; len.max(1)];
    crate::http::pattern_fill(0, &mut block);
    loop {
        // Take up to a block from the budget; an unlimited test's budget
        // is u64::MAX and never runs out in practice.
        let want = budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| {
                (b > 0).then(|| b - b.min(block.len() as u64))
            })
            .map(|before| before.min(block.len() as u64) as usize)
            .unwrap_or(0);
        if want == 0 {
            return;
        }
        let mut off = 0;
        while off < want {
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => return,
                r = s.write(&block[off..want]) => match r {
                    Ok(0) => return,
                    Ok(n) => {
                        off += n;
                        bytes.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return,
                },
            }
        }
    }
}

async fn receive_until_stopped<S: Stream>(
    s: &mut S,
    len: usize,
    mut stop: watch::Receiver<bool>,
    bytes: &AtomicU64,
) {
    let mut buf = vec![0u8; len.max(1)];
    loop {
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            r = s.read(&mut buf) => match r {
                Ok(0) => return,
                Ok(n) => {
                    bytes.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            },
        }
    }
}

/// This end's results in iperf3's form.
fn results_json(results: &[StreamResult], cpu: (f64, f64), elapsed: f64, congestion: Option<&str>) -> Value {
    let (user, system) = cpu;
    let pct = |t: f64| 100.0 * t / elapsed.max(1e-9);
    let sender = results.iter().any(|r| r.sender);
    let streams: Vec<Value> = results
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "bytes": r.bytes,
                // -1 (as iperf3 sends it) where this end did not send.
                "retransmits": match (r.sender, r.retransmits) {
                    (true, Some(n)) => json!(n),
                    _ => json!(-1),
                },
                "jitter": 0,
                "errors": 0,
                "packets": 0,
                "start_time": 0,
                "end_time": r.seconds,
            })
        })
        .collect();
    let mut v = json!({
        "cpu_util_total": pct(user + system),
        "cpu_util_user": pct(user),
        "cpu_util_system": pct(system),
        "sender_has_retransmits": if sender { 1 } else { -1 },
        "streams": streams,
    });
    if let Some(cc) = congestion {
        v["congestion_used"] = json!(cc);
    }
    v
}

/// The peer's results for the streams, checked against ours by id.
fn parse_results(v: &Value, ours: &[StreamResult]) -> io::Result<Vec<StreamResult>> {
    let streams = v
        .get("streams")
        .and_then(Value::as_array)
        .ok_or_else(|| proto("results without streams"))?;
    let mut out = Vec::new();
    for s in streams {
        let id = s
            .get("id")
            .and_then(Value::as_u64)
            .ok_or_else(|| proto("stream without id"))?;
        let mine = ours
            .iter()
            .find(|r| r.id == id)
            .ok_or_else(|| proto(format!("results for unknown stream {id}")))?;
        let retrans = s.get("retransmits").and_then(Value::as_i64).filter(|&r| r >= 0);
        out.push(StreamResult {
            id,
            sender: !mine.sender,
            bytes: s.get("bytes").and_then(Value::as_u64).unwrap_or(0),
            seconds: s.get("end_time").and_then(Value::as_f64).unwrap_or(0.0),
            retransmits: retrans.map(|r| r as u64),
        });
    }
    Ok(out)
}

/// The congestion control the test's streams ran, as the stack says.
fn congestion_of<S: Stream>(streams: &[S]) -> Option<&'static str> {
    streams.iter().find_map(Stream::congestion)
}

/// Serve one iperf3 test: `ctrl` is a connection just accepted from
/// `listener`, which yields the test's data streams (each within
/// [`STREAM_ACCEPT_TIMEOUT`]).
pub async fn serve<A: Acceptor>(mut ctrl: A::Stream, listener: &A) -> io::Result<Report> {
    let mut cookie = [0u8; COOKIE_LEN];
    within(STEP_TIMEOUT, "cookie", ctrl.read_exact(&mut cookie)).await?;
    write_state(&mut ctrl, PARAM_EXCHANGE).await?;
    let params = match TestParams::from_json(&read_json(&mut ctrl).await?) {
        Ok(p) => p,
        Err(why) => {
            // iperf3's client prints its own text for the error number.
            let mut msg = vec![SERVER_ERROR as u8];
            msg.extend_from_slice(&IE_UNIMPLEMENTED.to_be_bytes());
            msg.extend_from_slice(&0i32.to_be_bytes());
            let _ = within(STEP_TIMEOUT, "room to write", ctrl.write_all(&msg)).await;
            return Err(proto(why));
        }
    };
    write_state(&mut ctrl, CREATE_STREAMS).await?;
    // The server's role is the client's, reversed.
    let sends: Vec<bool> = params.client_sends().iter().map(|c| !c).collect();
    let mut streams = Vec::new();
    while streams.len() < sends.len() {
        let (mut s, _) = within(STREAM_ACCEPT_TIMEOUT, "data stream", listener.accept_stream()).await?;
        let mut c = [0u8; COOKIE_LEN];
        let read = within(STEP_TIMEOUT, "stream cookie", s.read_exact(&mut c)).await;
        if read.is_ok() && c == cookie {
            streams.push(s);
        } else {
            // Not one of this test's streams: turned away, as iperf3 does.
            let _ = write_state(&mut s, ACCESS_DENIED).await;
        }
    }
    let cpu0 = cpu_times();
    write_state(&mut ctrl, TEST_START).await?;
    write_state(&mut ctrl, TEST_RUNNING).await?;
    let running = Streams::start(streams, &sends, &params);
    // The client ends the test; bound the wait in case it vanished.
    let state = read_state_within(&mut ctrl, params.deadline()).await;
    let (results, streams, elapsed) = running.stop().await;
    let cpu1 = cpu_times();
    match state? {
        TEST_END => {}
        CLIENT_TERMINATE => return Err(proto("the client terminated the test")),
        s => {
            return Err(proto(format!(
                "unexpected state {s} from the client during the test"
            )))
        }
    }
    let congestion = congestion_of(&streams);
    // iperf3's server closes the data streams as the test ends.
    drop(streams);
    write_state(&mut ctrl, EXCHANGE_RESULTS).await?;
    let peer = parse_results(&read_json(&mut ctrl).await?, &results)?;
    let cpu = (cpu1.0 - cpu0.0, cpu1.1 - cpu0.1);
    write_json(&mut ctrl, &results_json(&results, cpu, elapsed, congestion)).await?;
    write_state(&mut ctrl, DISPLAY_RESULTS).await?;
    // IPERF_DONE, or the client just closes.
    let _ = read_state(&mut ctrl).await;
    Ok(Report {
        params,
        local: results,
        peer,
    })
}

/// Run an iperf3 test as the client: `connect` opens a connection to the
/// server (the control connection first, then one per stream).
/// `progress(sent, received, elapsed)` is called about once a second.
pub async fn run_client<S, F, C>(
    mut connect: C,
    params: &TestParams,
    seed: u64,
    progress: &mut dyn FnMut(u64, u64, Duration),
) -> io::Result<Report>
where
    S: Stream,
    F: Future<Output = io::Result<S>>,
    C: FnMut() -> F,
{
    let mut ctrl = connect().await?;
    let cookie = make_cookie(seed | 1);
    within(STEP_TIMEOUT, "room to write", ctrl.write_all(&cookie)).await?;
    let sends = params.client_sends();
    let mut pending: Vec<S> = Vec::new();
    // This end's results, the congestion control used, the test's length
    // and the CPU time it took.
    type Finished = (Vec<StreamResult>, Option<&'static str>, f64, (f64, f64));
    let mut finished: Option<Finished> = None;
    // The streams, closed once the results are exchanged.
    let mut done_streams: Vec<S> = Vec::new();
    loop {
        match read_state(&mut ctrl).await? {
            PARAM_EXCHANGE => write_json(&mut ctrl, &params.to_json()).await?,
            CREATE_STREAMS => {
                for _ in 0..sends.len() {
                    let mut s = connect().await?;
                    within(STEP_TIMEOUT, "room to write", s.write_all(&cookie)).await?;
                    pending.push(s);
                }
            }
            TEST_START => {}
            TEST_RUNNING => {
                let cpu0 = cpu_times();
                let streams = Streams::start(std::mem::take(&mut pending), &sends, params);
                run_until_done(&streams, params, &sends, progress).await;
                write_state(&mut ctrl, TEST_END).await?;
                let (results, streams, elapsed) = streams.stop().await;
                let cpu1 = cpu_times();
                let congestion = congestion_of(&streams);
                done_streams = streams;
                finished = Some((results, congestion, elapsed, (cpu1.0 - cpu0.0, cpu1.1 - cpu0.1)));
            }
            EXCHANGE_RESULTS => {
                let Some((results, congestion, elapsed, cpu)) = finished.take() else {
                    return Err(proto("results asked for before the test ran"));
                };
                write_json(&mut ctrl, &results_json(&results, cpu, elapsed, congestion)).await?;
                let peer = parse_results(&read_json(&mut ctrl).await?, &results)?;
                match read_state(&mut ctrl).await? {
                    DISPLAY_RESULTS => {}
                    s => return Err(proto(format!("expected DISPLAY_RESULTS, got state {s}"))),
                }
                write_state(&mut ctrl, IPERF_DONE).await?;
                drop(done_streams);
                return Ok(Report {
                    params: params.clone(),
                    local: results,
                    peer,
                });
            }
            ACCESS_DENIED => return Err(proto("the server is busy with another test")),
            SERVER_ERROR => {
                let mut e = [0u8; 8];
                within(STEP_TIMEOUT, "error number", ctrl.read_exact(&mut e)).await?;
                let ie = i32::from_be_bytes([e[0], e[1], e[2], e[3]]);
                let errno = i32::from_be_bytes([e[4], e[5], e[6], e[7]]);
                return Err(proto(format!(
                    "the server refused the test (iperf3 error {ie}, errno {errno})"
                )));
            }
            SERVER_TERMINATE => return Err(proto("the server terminated the test")),
            s => return Err(proto(format!("unexpected state {s} from the server"))),
        }
    }
}

/// The client's side of a running test: until the time or the bytes are
/// done, or every stream has ended (the server went away).
async fn run_until_done<S: Stream>(
    streams: &Streams<S>,
    params: &TestParams,
    sends: &[bool],
    progress: &mut dyn FnMut(u64, u64, Duration),
) {
    let limit = (params.bytes == 0).then(|| Duration::from_secs_f64(params.time + params.omit));
    let mut next_report = Duration::from_secs(1);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let elapsed = streams.start.elapsed();
        let (sent, got) = streams.moved();
        if elapsed >= next_report {
            progress(sent, got, elapsed);
            next_report += Duration::from_secs(1);
        }
        let done = match limit {
            Some(t) => elapsed >= t,
            // A byte count is the senders' budget; a receiving client
            // waits for all of it.
            None => {
                if sends.iter().any(|&s| s) {
                    sent >= params.bytes
                } else {
                    got >= params.bytes
                }
            }
        };
        if done || streams.all_finished() || elapsed > params.deadline() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_follow_iperf3() {
        let ids: Vec<u64> = (0..5).map(stream_id).collect();
        assert_eq!(ids, [1, 3, 4, 5, 6]);
    }

    #[test]
    fn parameters_round_trip_and_refusals() {
        let p = TestParams {
            parallel: 4,
            bidirectional: true,
            time: 2.0,
            ..TestParams::default()
        };
        assert_eq!(TestParams::from_json(&p.to_json()), Ok(p.clone()));
        assert_eq!(
            p.client_sends(),
            [true, true, true, true, false, false, false, false]
        );
        let mut udp = p.to_json();
        udp["udp"] = json!(true);
        assert!(TestParams::from_json(&udp).unwrap_err().contains("udp"));
        let mut many = p.to_json();
        many["parallel"] = json!(1000);
        assert!(TestParams::from_json(&many).is_err());
        // -k blocks become bytes.
        let k = json!({"tcp": true, "blockcount": 3, "len": 1000, "parallel": 1});
        assert_eq!(TestParams::from_json(&k).unwrap().bytes, 3000);
    }

    #[test]
    fn cookies_use_iperf3_alphabet() {
        let c = make_cookie(42);
        assert_eq!(c[COOKIE_LEN - 1], 0);
        assert!(c[..COOKIE_LEN - 1].iter().all(|b| COOKIE_ALPHABET.contains(b)));
        assert_ne!(make_cookie(42), make_cookie(43));
    }

    #[test]
    fn oversized_json_is_refused() {
        let mut msg = (MAX_JSON as u32 + 1).to_be_bytes().to_vec();
        msg.extend_from_slice(b"{}");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let e = rt.block_on(read_json(&mut &msg[..])).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}
