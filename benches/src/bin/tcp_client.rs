//! The kernel-side client of `benches/scripts/tap_vs_smoltcp.py`: one TCP
//! stream over `std::net` (the Linux kernel's TCP), the same binary against
//! tapir and against smoltcp.
//!
//! ```text
//! tcp_client ADDR:PORT --send|--recv --secs S [--len 131072]
//! ```
//!
//! Connects (retrying for up to 10 s while the server refuses: smoltcp's
//! one socket answers a SYN with a reset until it listens again after the
//! previous client), then for S seconds either writes zeros in `--len`
//! byte calls (`--send`) or reads in `--len` byte calls (`--recv`), and
//! prints one JSON line: `{"bytes":..,"secs":..,"gbits":..}`, with `secs`
//! the time from the connection's establishment to the end of the last
//! call.
//!
//! `--send` counts the bytes the kernel accepted in S seconds: up to a send
//! buffer's worth (a few MB at most, under 1 % of a 5 s run at Gbit/s
//! rates) may not have reached the server yet. To bound that, it then
//! shuts its write side down and waits (10 s at most) for the server to
//! close, which both servers do once they have read everything, and adds
//! `drain_secs` (that wait, or null) to the line; `gbits` does not include
//! it. `--recv` counts the bytes read in S seconds, then closes (a reset to
//! the server, which still has data queued).

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: tcp_client ADDR:PORT --send|--recv --secs S [--len 131072]";

struct Args {
    addr: SocketAddr,
    send: bool,
    secs: f64,
    len: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut addr = None;
    let mut send = None;
    let mut secs = None;
    let mut len = 131_072;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => return Err(USAGE.to_string()),
            "--send" => send = Some(true),
            "--recv" => send = Some(false),
            "--secs" | "--len" => {
                let v = it.next().ok_or_else(|| format!("{a} needs a value\n{USAGE}"))?;
                if a == "--secs" {
                    secs = Some(
                        v.parse::<f64>()
                            .ok()
                            .filter(|s| *s > 0.0)
                            .ok_or_else(|| format!("--secs {v}: a positive number"))?,
                    );
                } else {
                    len = v
                        .parse::<usize>()
                        .ok()
                        .filter(|l| *l > 0)
                        .ok_or_else(|| format!("--len {v}: a positive integer"))?;
                }
            }
            _ if addr.is_none() && !a.starts_with('-') => {
                addr = Some(a.parse::<SocketAddr>().map_err(|e| format!("{a}: {e}"))?)
            }
            _ => return Err(format!("unexpected argument {a}\n{USAGE}")),
        }
    }
    Ok(Args {
        addr: addr.ok_or(USAGE)?,
        send: send.ok_or(USAGE)?,
        secs: secs.ok_or(USAGE)?,
        len,
    })
}

fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            r => return r,
        }
    }
}

fn run(args: &Args) -> std::io::Result<(u64, f64, Option<f64>)> {
    let mut stream = connect(args.addr)?;
    let limit = Duration::from_secs_f64(args.secs);
    let mut buf = vec![0u8; args.len];
    let mut bytes: u64 = 0;
    let start = Instant::now();
    if args.send {
        while start.elapsed() < limit {
            bytes += stream.write(&buf)? as u64;
        }
        let secs = start.elapsed().as_secs_f64();
        // Wait for the server's close: everything it was sent is read.
        stream.shutdown(Shutdown::Write)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let end = Instant::now();
        let drained = loop {
            match stream.read(&mut buf) {
                Ok(0) => break Some(end.elapsed().as_secs_f64()),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break None,
            }
        };
        Ok((bytes, secs, drained))
    } else {
        // Wake at least every 100 ms to check the clock should data stop.
        stream.set_read_timeout(Some(Duration::from_millis(100)))?;
        while start.elapsed() < limit {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => bytes += n as u64,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        Ok((bytes, start.elapsed().as_secs_f64(), None))
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok((bytes, secs, drained)) => {
            let drain = match drained {
                Some(d) => format!(",\"drain_secs\":{d:.6}"),
                None if args.send => ",\"drain_secs\":null".to_string(),
                None => String::new(),
            };
            println!(
                "{{\"bytes\":{bytes},\"secs\":{secs:.6},\"gbits\":{:.6}{drain}}}",
                bytes as f64 * 8.0 / secs / 1e9
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tcp_client {}: {e}", args.addr);
            ExitCode::FAILURE
        }
    }
}
