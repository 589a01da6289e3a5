//! A small HTTP/1.1 server and client: RFC 9110 semantics over RFC 9112
//! message syntax. The server is async, generic over any tokio stream (tapir's
//! async sockets, `tokio::net` for the tests without a kernel namespace);
//! the client is blocking, over any `Read + Write`.
//!
//! - [`server`]: persistent connections, pipelining, Content-Length and
//!   chunked bodies both ways, a static directory, the generated test
//!   endpoints `/bytes/N`, `/echo` and `/stats`, limits and timeouts.
//! - [`client`]: one request at a time over a connection; bodies delimited
//!   by Content-Length, chunked coding or the end of the connection.
//!
//! The message parsing lives in `message` and is shared: request heads for
//! the server, response heads for the client, and the chunked decoder for
//! both.

pub mod client;
mod date;
mod message;
pub mod server;
pub mod stats;

use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::OnceLock;

pub use client::{Client, ResponseHead, Url};
pub use message::{Header, Limits, Status};
pub use server::{HttpServer, ServerConfig};

/// Serve HTTP on a tapir stack, on `port` of every address, with `/stats`
/// showing the stack's counters and connections: what `tapir up --http`
/// runs, on the services' executor.
pub fn serve_on_stack(
    exec: &crate::services::Executor,
    stack: &tapir_harness::StackHandle,
    port: u16,
    root: Option<PathBuf>,
) -> io::Result<HttpServer> {
    let listener = tapir_harness::net::TcpListener::bind_with_backlog(
        stack,
        ("0.0.0.0", port),
        crate::services::SERVICE_BACKLOG,
    )?;
    let config = ServerConfig {
        root,
        stats: Some(stats::stack_stats(stack.clone())),
        ..ServerConfig::default()
    };
    HttpServer::spawn_on(
        exec,
        format!("http:{port}"),
        config,
        server::async_tapir_acceptor(listener),
    )
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
