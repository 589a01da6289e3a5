//! `tapir get URL`: an HTTP/1.1 client on its own tapir stack, tapir as
//! the active opener. The body goes to stdout (or `-o FILE`), the status
//! line and a one-line summary to stderr. Like curl without `-f`: any HTTP
//! response, 404 included, exits 0; a failure to connect or a broken
//! response exits non-zero. It follows no redirects.

use crate::http::client::{fetch, ResponseHead, Url};
use crate::net::{bring_up, NetArgs};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tapir_harness::{StackHandle, TcpStream};

#[derive(clap::Args, Debug)]
pub struct GetArgs {
    /// The URL: http://A.B.C.D:PORT/PATH, an IPv4 address (tapir has no resolver); PORT defaults to 80.
    pub url: String,
    /// Write the body to FILE instead of stdout.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Send HEAD instead of GET.
    #[arg(short = 'I', long)]
    pub head: bool,
    /// Give up connecting after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub connect_timeout: f64,
    /// Give up when the server sends nothing for this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub timeout: f64,
    #[command(flatten)]
    pub net: NetArgs,
}

/// What a fetch got.
pub struct Got {
    pub head: ResponseHead,
    pub body_len: u64,
    pub elapsed: Duration,
}

/// The address of an `http://A.B.C.D[:PORT]/` URL.
pub fn url_addr(url: &Url) -> Result<SocketAddrV4, String> {
    let ip: Ipv4Addr = url
        .host
        .parse()
        .map_err(|_| format!("{}: give an IPv4 address (tapir has no name resolver)", url.host))?;
    Ok(SocketAddrV4::new(ip, url.port))
}

/// Fetch `url` over a running stack: connect, one request with
/// `Connection: close`, the body into `out`; then wait (briefly) for the
/// connection to finish closing, so the server sees a clean close.
pub fn get_over(
    stack: &StackHandle,
    url: &Url,
    method: &str,
    out: &mut dyn Write,
    connect_timeout: Duration,
    timeout: Duration,
) -> io::Result<Got> {
    let addr = url_addr(url).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let started = Instant::now();
    let stream = TcpStream::connect_timeout(stack, &SocketAddr::V4(addr), connect_timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let (head, body_len) = fetch(&stream, method, url, out)?;
    let elapsed = started.elapsed();
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(2);
    while stack.with(|i| i.tcp_connection_count()) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(Got {
        head,
        body_len,
        elapsed,
    })
}

pub fn run(args: GetArgs) -> Result<(), String> {
    let url = Url::parse(&args.url)?;
    url_addr(&url)?;
    let secs = |s: f64, what: &str| {
        Duration::try_from_secs_f64(s)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or(format!("--{what} must be a positive number of seconds"))
    };
    let connect_timeout = secs(args.connect_timeout, "connect-timeout")?;
    let timeout = secs(args.timeout, "timeout")?;
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(BufWriter::new(
            File::create(path).map_err(|e| format!("{}: {e}", path.display()))?,
        )),
        None => Box::new(BufWriter::new(io::stdout().lock())),
    };
    let running = bring_up(&args.net).map_err(|e| format!("bringing the stack up: {e}"))?;
    let stack = running.driver.stack();
    let method = if args.head { "HEAD" } else { "GET" };
    let bar = crate::progress::bar("tapir get");
    let mut counted = crate::progress::Counted {
        inner: &mut out,
        bar: bar.clone(),
    };
    let result = get_over(&stack, &url, method, &mut counted, connect_timeout, timeout);
    bar.finish_and_clear();
    let flushed = out.flush();
    let driver_error = running.driver.error();
    running.driver.shutdown();
    let got = result.map_err(|e| format!("{url}: {e}"))?;
    flushed.map_err(|e| format!("writing the body: {e}"))?;
    if let Some(e) = driver_error {
        return Err(format!("the stack stopped: {e}"));
    }
    eprintln!("{}", got.head.status_line());
    if args.head {
        for h in &got.head.headers {
            eprintln!("{}: {}", h.name, h.value);
        }
    }
    let secs = got.elapsed.as_secs_f64();
    eprintln!(
        "tapir get: {} bytes in {:.3} s ({:.1} Mbit/s)",
        got.body_len,
        secs,
        got.body_len as f64 * 8.0 / secs.max(1e-9) / 1e6
    );
    Ok(())
}
