//! Services tapir hosts, each on its own thread over the blocking sockets:
//! UDP echo, the TCP echo (RFC 862), discard (RFC 863) and character
//! generator (RFC 864), and an iperf3 server ([`crate::iperf3`]).
//!
//! A TCP service is an accept loop on one thread and a thread per
//! connection, at most [`MAX_TCP_CONNECTIONS`] at once; beyond that, new
//! connections wait in the listener's backlog. Every thread wakes at least
//! every [`STOP_CHECK`] (read, write and accept timeouts) to look at the
//! service's stop flag, so stopping takes about that long.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tapir_harness::{StackHandle, TcpListener, TcpStream, UdpSocket};

/// How often a service looks at its stop flag while idle.
pub const STOP_CHECK: Duration = Duration::from_millis(100);

/// Connections a TCP service handles at once.
pub const MAX_TCP_CONNECTIONS: usize = 1024;

/// Stack size of a TCP service's per-connection threads: they hold their
/// buffers on the heap, so a small stack lets many run at once.
const WORKER_STACK: usize = 256 * 1024;

/// A running service; stops and joins on [`Service::stop`] or drop.
pub struct Service {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<u64>>>,
    pub name: String,
    unit: &'static str,
}

impl Service {
    /// What [`stop`](Self::stop) counts: "requests" (datagrams, HTTP
    /// requests), "connections" or "tests" (iperf3).
    pub fn unit(&self) -> &'static str {
        self.unit
    }

    /// Stop the service and return how many requests (or connections, see
    /// [`unit`](Self::unit)) it served.
    pub fn stop(mut self) -> io::Result<u64> {
        self.stop.store(true, Ordering::SeqCst);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(io::Error::other(format!("{} panicked", self.name))),
            None => Ok(0),
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// RFC 862 echo over UDP: every datagram goes back to its sender unchanged.
pub fn udp_echo(stack: &StackHandle, port: u16) -> io::Result<Service> {
    let mut socket = UdpSocket::bind(stack, ("0.0.0.0", port))?;
    socket.set_read_timeout(Some(STOP_CHECK))?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let name = format!("udp-echo:{port}");
    let thread = std::thread::Builder::new().name(name.clone()).spawn(move || {
        // The largest UDP payload an IPv4 datagram can carry.
        let mut buf = vec![0u8; 65_507];
        let mut served = 0u64;
        while !flag.load(Ordering::SeqCst) {
            match socket.recv_from(&mut buf) {
                Ok((n, from)) => {
                    socket.send_to(&buf[..n], from)?;
                    served += 1;
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                // An ICMP error for an earlier reply (the client went away)
                // concerns that client only.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(e),
            }
        }
        Ok(served)
    })?;
    Ok(Service {
        stop,
        thread: Some(thread),
        name,
        unit: "requests",
    })
}

/// An iperf3 server (TCP tests, one at a time, as iperf3's own): the
/// kernel's `iperf3 -c` measures throughput to and from tapir. Counts the
/// tests run. A test in progress runs to its end before a stop takes
/// effect.
pub fn iperf3_server(stack: &StackHandle, port: u16) -> io::Result<Service> {
    let listener = TcpListener::bind(stack, ("0.0.0.0", port))?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let name = format!("iperf3:{port}");
    let thread = std::thread::Builder::new().name(name.clone()).spawn(move || {
        let mut tests = 0u64;
        while !flag.load(Ordering::SeqCst) {
            let (ctrl, peer) = match listener.accept_timeout(STOP_CHECK) {
                Ok(c) => c,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::NotConnected) => {
                    continue
                }
                Err(e) => return Err(e),
            };
            let mut accept = || {
                listener
                    .accept_timeout(crate::iperf3::STREAM_ACCEPT_TIMEOUT)
                    .map(|(s, _)| s)
            };
            match crate::iperf3::serve(ctrl, &mut accept) {
                Ok(report) => {
                    tests += 1;
                    tracing::info!(%peer, "iperf3 test done: {}", report.summary().trim_end());
                }
                Err(e) => tracing::warn!(%peer, error = %e, "iperf3 test failed"),
            }
        }
        Ok(tests)
    })?;
    Ok(Service {
        stop,
        thread: Some(thread),
        name,
        unit: "tests",
    })
}

/// A connection handler: serves one connection until it ends, the client
/// goes away or `stop` is set.
type Handler = fn(&TcpStream, &AtomicBool) -> io::Result<()>;

/// RFC 862 echo over TCP: every byte received goes back, until the client
/// closes its side; then the connection is closed.
pub fn tcp_echo(stack: &StackHandle, port: u16) -> io::Result<Service> {
    tcp_service(stack, port, format!("tcp-echo:{port}"), echo_connection)
}

/// RFC 863 discard over TCP: everything received is thrown away.
pub fn tcp_discard(stack: &StackHandle, port: u16) -> io::Result<Service> {
    tcp_service(stack, port, format!("discard:{port}"), discard_connection)
}

/// RFC 864 character generator over TCP: the rotating 72-character lines
/// until the client closes; what the client sends is thrown away.
pub fn tcp_chargen(stack: &StackHandle, port: u16) -> io::Result<Service> {
    tcp_service(stack, port, format!("chargen:{port}"), chargen_connection)
}

/// Listen on `port` and serve each connection on its own thread with
/// `handler`. Counts connections.
fn tcp_service(stack: &StackHandle, port: u16, name: String, handler: Handler) -> io::Result<Service> {
    let listener = TcpListener::bind(stack, ("0.0.0.0", port))?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread_name = name.clone();
    let thread = std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || accept_loop(&listener, &thread_name, &flag, handler))?;
    Ok(Service {
        stop,
        thread: Some(thread),
        name,
        unit: "connections",
    })
}

fn accept_loop(
    listener: &TcpListener,
    name: &str,
    stop: &Arc<AtomicBool>,
    handler: Handler,
) -> io::Result<u64> {
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    let mut served = 0u64;
    let result = loop {
        if stop.load(Ordering::SeqCst) {
            break Ok(served);
        }
        // Finished workers need no join: dropping the handle frees them.
        workers.retain(|w| !w.is_finished());
        if workers.len() >= MAX_TCP_CONNECTIONS {
            // Full: new connections wait in the backlog meanwhile.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        let (stream, peer) = match listener.accept_timeout(STOP_CHECK) {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            // The connection went away before we took it.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => continue,
            Err(e) => break Err(e),
        };
        served += 1;
        let flag = stop.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("{name} {peer}"))
            .stack_size(WORKER_STACK)
            .spawn(move || {
                if let Err(e) = handler(&stream, &flag) {
                    match e.kind() {
                        // The client went away: its business.
                        io::ErrorKind::ConnectionReset
                        | io::ErrorKind::BrokenPipe
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted => {
                            tracing::debug!(%peer, error = %e, "connection ended")
                        }
                        _ => tracing::warn!(%peer, error = %e, "connection failed"),
                    }
                }
            });
        match spawned {
            Ok(w) => workers.push(w),
            // Out of threads: this connection is dropped (closed), the
            // service goes on.
            Err(e) => tracing::warn!(%peer, error = %e, "no thread for a connection; closed it"),
        }
    };
    // Workers look at the stop flag at least every STOP_CHECK.
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        let _ = w.join();
    }
    result
}

/// Read into `buf`, waking every [`STOP_CHECK`] to look at `stop`.
/// `Ok(None)` when stopped.
fn read_or_stop(mut s: &TcpStream, buf: &mut [u8], stop: &AtomicBool) -> io::Result<Option<usize>> {
    loop {
        match s.read(buf) {
            Ok(n) => return Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if stop.load(Ordering::SeqCst) {
                    return Ok(None);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Write all of `data` (blocking while the send buffer is full), waking
/// every [`STOP_CHECK`] to look at `stop`. `Ok(false)` when stopped.
fn write_all_or_stop(mut s: &TcpStream, mut data: &[u8], stop: &AtomicBool) -> io::Result<bool> {
    while !data.is_empty() {
        match s.write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if stop.load(Ordering::SeqCst) {
                    return Ok(false);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn echo_connection(s: &TcpStream, stop: &AtomicBool) -> io::Result<()> {
    s.set_read_timeout(Some(STOP_CHECK))?;
    s.set_write_timeout(Some(STOP_CHECK))?;
    let mut buf = vec![0u8; 32 * 1024];
    while let Some(n) = read_or_stop(s, &mut buf, stop)? {
        if n == 0 || !write_all_or_stop(s, &buf[..n], stop)? {
            break;
        }
    }
    // Dropping the stream closes it: a FIN after the echoed data.
    Ok(())
}

fn discard_connection(s: &TcpStream, stop: &AtomicBool) -> io::Result<()> {
    s.set_read_timeout(Some(STOP_CHECK))?;
    let mut buf = vec![0u8; 32 * 1024];
    while let Some(n) = read_or_stop(s, &mut buf, stop)? {
        if n == 0 {
            break;
        }
    }
    Ok(())
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

fn chargen_connection(mut s: &TcpStream, stop: &AtomicBool) -> io::Result<()> {
    s.set_write_timeout(Some(STOP_CHECK))?;
    let cycle = chargen_cycle();
    // Several cycles in a row, so every write offers a large slice
    // starting anywhere in the pattern.
    let buf = cycle.repeat(10);
    let mut pos = 0usize;
    let mut scratch = vec![0u8; 16 * 1024];
    while !stop.load(Ordering::SeqCst) {
        // Throw away what the client sends; its FIN ends the service.
        s.set_nonblocking(true)?;
        let drained = loop {
            match s.read(&mut scratch) {
                Ok(0) => break Ok(true),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(false),
                Err(e) => break Err(e),
            }
        };
        s.set_nonblocking(false)?;
        if drained? {
            break;
        }
        match s.write(&buf[pos..]) {
            Ok(n) => pos = (pos + n) % cycle.len(),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
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
