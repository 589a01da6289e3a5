//! Services tapir hosts, each on its own thread over the blocking sockets.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tapir_harness::{StackHandle, UdpSocket};

/// How often a service looks at its stop flag while idle.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// A running service; stops and joins on [`Service::stop`] or drop.
pub struct Service {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<u64>>>,
    pub name: String,
}

impl Service {
    /// Stop the service and return how many requests it served.
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
    })
}
