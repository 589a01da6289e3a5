//! A small HTTP/1.1 server and client: RFC 9110 semantics over RFC 9112
//! message syntax, written for tapir's blocking sockets but generic over the
//! transport, so the same code runs over `std::net` (which is how the tests
//! without a kernel namespace exercise it).
//!
//! - [`server`]: persistent connections, pipelining, Content-Length and
//!   chunked bodies both ways, a static directory, the generated test
//!   endpoints `/bytes/N`, `/echo` and `/stats`, limits and timeouts.
//! - [`client`]: one request at a time over a connection; bodies delimited
//!   by Content-Length, chunked coding or the end of the connection.
//! - [`Transport`]: what either needs from a byte stream besides
//!   `Read + Write`.
//!
//! The message parsing lives in `message` and is shared: request heads for
//! the server, response heads for the client, and the chunked decoder for
//! both.

pub mod client;
mod date;
mod message;
pub mod server;
pub mod stats;

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

pub use client::{Client, ResponseHead, Url};
pub use message::{Header, Limits, Status};
pub use server::{HttpServer, ServerConfig};

/// A connected byte stream the server and client can run over: `Read +
/// Write` plus the few socket controls HTTP needs. Implemented for
/// [`std::net::TcpStream`] and tapir's own `TcpStream`.
pub trait Transport: Read + Write + Send + 'static {
    /// Bound every following read; `None` blocks without limit. A read that
    /// runs out of time fails with `WouldBlock` or `TimedOut`.
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
    /// Bound every following write.
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
    /// Send a FIN: no more data from this side; reads still work.
    fn shutdown_write(&self) -> io::Result<()>;
    /// The peer's address, for logs.
    fn peer(&self) -> String;
}

impl Transport for std::net::TcpStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        std::net::TcpStream::set_read_timeout(self, timeout)
    }
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        std::net::TcpStream::set_write_timeout(self, timeout)
    }
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
    fn peer(&self) -> String {
        self.peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| "?".into())
    }
}

impl Transport for tapir_harness::TcpStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        tapir_harness::TcpStream::set_read_timeout(self, timeout)
    }
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        tapir_harness::TcpStream::set_write_timeout(self, timeout)
    }
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
    fn peer(&self) -> String {
        self.peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| "?".into())
    }
}

/// Serve HTTP on a tapir stack, on `port` of every address, with `/stats`
/// showing the stack's counters and connections: what `tapir up --http`
/// runs.
pub fn serve_on_stack(
    stack: &tapir_harness::StackHandle,
    port: u16,
    root: Option<PathBuf>,
) -> io::Result<HttpServer> {
    let listener = tapir_harness::TcpListener::bind(stack, ("0.0.0.0", port))?;
    let config = ServerConfig {
        root,
        stats: Some(stats::stack_stats(stack.clone())),
        ..ServerConfig::default()
    };
    HttpServer::spawn(format!("http:{port}"), config, server::tapir_acceptor(listener))
}

/// Whether an I/O error is a read or write timeout (std reports
/// `WouldBlock` for an expired `SO_RCVTIMEO`, tapir `TimedOut`).
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// The period of the deterministic content: a prime, so it lines up with
/// no buffer or segment size and an offset error shows as a mismatch.
const PATTERN_PERIOD: usize = 65_521;

fn pattern_table() -> &'static [u8] {
    static TABLE: OnceLock<Vec<u8>> = OnceLock::new();
    TABLE.get_or_init(|| {
        // xorshift64*: fixed seed, so every build serves the same bytes.
        let mut x: u64 = 0x7a91_2f00_5eed_cafe;
        (0..PATTERN_PERIOD)
            .map(|_| {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
            })
            .collect()
    })
}

/// Fill `buf` with the deterministic content that starts at `offset`: the
/// bytes `/bytes/N` serves and `tapir tput` sends.
pub fn pattern_fill(offset: u64, buf: &mut [u8]) {
    let table = pattern_table();
    let mut pos = (offset % PATTERN_PERIOD as u64) as usize;
    let mut filled = 0;
    while filled < buf.len() {
        let n = (PATTERN_PERIOD - pos).min(buf.len() - filled);
        buf[filled..filled + n].copy_from_slice(&table[pos..pos + n]);
        filled += n;
        pos = 0;
    }
}

/// The first `len` bytes of the deterministic content.
pub fn pattern(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    pattern_fill(0, &mut v);
    v
}

/// A `Read` of `len` bytes of the deterministic content, from `offset`.
pub struct PatternReader {
    offset: u64,
    end: u64,
}

impl PatternReader {
    pub fn new(len: u64) -> PatternReader {
        PatternReader { offset: 0, end: len }
    }
}

impl Read for PatternReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (self.end - self.offset).min(buf.len() as u64) as usize;
        pattern_fill(self.offset, &mut buf[..n]);
        self.offset += n as u64;
        Ok(n)
    }
}
