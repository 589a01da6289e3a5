//! The driver and the blocking sockets over an in-memory link: two tapir
//! stacks, each with its own driver thread, talking UDP. No kernel needed.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use tapir_harness::{Device, Driver, DriverHandle, DriverOptions, MemoryDevice, UdpSocket};
use tapir_stack::wire::{EthernetAddress, Ipv4Cidr};
use tapir_stack::{Config, Interface};

const A: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

fn stack(ip: Ipv4Addr, seed: u64) -> Interface {
    let cidr = Ipv4Cidr::new(ip, 24).expect("prefix");
    let mut config = Config::new(EthernetAddress::local_from_seed(seed), cidr);
    config.seed = seed;
    Interface::new(config).expect("valid config")
}

fn pair(opts_a: DriverOptions) -> (DriverHandle, DriverHandle) {
    let (da, db) = MemoryDevice::pair().expect("memory pair");
    let a = Driver::spawn(stack(A, 1), Box::new(da.with_name("a")), opts_a).expect("driver a");
    let b =
        Driver::spawn(stack(B, 2), Box::new(db.with_name("b")), DriverOptions::default()).expect("driver b");
    (a, b)
}

#[test]
fn udp_echo_between_two_stacks() {
    let (a, b) = pair(DriverOptions::default());
    let echo = UdpSocket::bind(&b, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    let mut client = UdpSocket::bind(&a, "0.0.0.0:0").unwrap();
    client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let local = client.local_addr().unwrap();
    assert_eq!(local.ip(), std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    assert_ne!(local.port(), 0);

    let server = std::thread::spawn(move || {
        let mut buf = vec![0u8; 70_000];
        let mut served = 0;
        let mut sock = echo;
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        loop {
            let (n, from) = match sock.recv_from(&mut buf) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return served,
                Err(e) => panic!("echo recv: {e}"),
            };
            if &buf[..n] == b"quit" {
                return served;
            }
            sock.send_to(&buf[..n], from).unwrap();
            served += 1;
        }
    });

    let mut buf = vec![0u8; 70_000];
    let sizes = [0usize, 1, 100, 1472, 1473, 3000, 20_000, 65_507];
    for (i, &size) in sizes.iter().enumerate() {
        let msg: Vec<u8> = (0..size).map(|j| (i * 31 + j * 7) as u8).collect();
        assert_eq!(client.send_to(&msg, (B, 7)).unwrap(), size);
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!(from, SocketAddr::V4(SocketAddrV4::new(B, 7)));
        assert_eq!(n, size, "echo of {size} bytes");
        assert!(buf[..n] == msg[..], "echo of {size} bytes differs");
    }
    client.send_to(b"quit", (B, 7)).unwrap();
    assert_eq!(server.join().unwrap(), sizes.len());

    // Fragmented both ways: the large datagrams went out in pieces.
    let sa = a.stats();
    assert!(sa.ipv4_frags_tx > 0 && sa.frag_reassembled > 0, "{sa}");
    assert_eq!(sa.total_drops(), 0, "{sa}");
    assert_eq!(
        a.with(|i| i.neighbor(B)),
        Some(EthernetAddress::local_from_seed(2))
    );

    let ia = a.shutdown();
    assert!(ia.stats().udp_rx >= sizes.len() as u64);
    drop(b);
}

#[test]
fn recv_timeout_and_truncation() {
    let (a, b) = pair(DriverOptions::default());
    let mut rx = UdpSocket::bind(&b, (B, 9000)).unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut buf = [0u8; 4];
    let t = std::time::Instant::now();
    let err = rx.recv_from(&mut buf).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
    assert!(t.elapsed() >= Duration::from_millis(50));
    assert!(rx.set_read_timeout(Some(Duration::ZERO)).is_err());

    let tx = UdpSocket::bind(&a, (A, 0)).unwrap();
    tx.send_to(b"0123456789", (B, 9000)).unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (n, from) = rx.recv_from(&mut buf).unwrap();
    assert_eq!((n, &buf[..]), (4, &b"0123"[..]));
    assert_eq!(from, tx.local_addr().unwrap());

    // Non-blocking receive on an empty queue.
    rx.set_nonblocking(true).unwrap();
    assert_eq!(
        rx.recv_from(&mut buf).unwrap_err().kind(),
        io::ErrorKind::WouldBlock
    );

    // Binding the same port twice fails like std.
    let err = UdpSocket::bind(&b, (B, 9000)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    // So does an address that is not ours; and IPv6.
    let err = UdpSocket::bind(&b, (A, 9001)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrNotAvailable);
    assert_eq!(
        UdpSocket::bind(&b, "[::1]:5").unwrap_err().kind(),
        io::ErrorKind::Unsupported
    );
    // Dropping a socket frees its port.
    drop(rx);
    UdpSocket::bind(&b, (B, 9000)).unwrap();
}

#[test]
fn port_unreachable_is_reported() {
    let (a, _b) = pair(DriverOptions::default());
    let tx = UdpSocket::bind(&a, (A, 0)).unwrap();
    tx.send_to(b"anyone?", (B, 9)).unwrap();
    let err = a
        .wait_until(Some(Duration::from_secs(5)), |i| i.udp_take_error(tx.handle()))
        .expect("an ICMP port unreachable within 5 s");
    assert!(err.to_string().contains("10.77.0.2:9"), "{err}");
}

#[test]
fn pcap_records_both_directions() {
    let path = std::env::temp_dir().join(format!("tapir-memory-{}.pcap", std::process::id()));
    let (a, b) = pair(DriverOptions::with_pcap(&path));
    let mut rx = UdpSocket::bind(&b, (B, 9000)).unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let tx = UdpSocket::bind(&a, (A, 4000)).unwrap();
    tx.send_to(b"hello", (B, 9000)).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(rx.recv_from(&mut buf).unwrap().0, 5);
    drop((tx, rx));
    let stats = a.shutdown().stats().clone();
    drop(b);

    let file = std::fs::File::open(&path).unwrap();
    let mut r = pcap_file::pcap::PcapReader::new(file).unwrap();
    let mut frames = 0u64;
    while let Some(p) = r.next_packet() {
        p.unwrap();
        frames += 1;
    }
    // ARP request, ARP reply, the datagram: all seen by a's driver.
    assert_eq!(frames, stats.rx_frames + stats.tx_frames);
    assert!(frames >= 3, "{frames} frames");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn driver_survives_idle_and_shuts_down_promptly() {
    let (a, b) = pair(DriverOptions::default());
    let steps = a.steps();
    std::thread::sleep(Duration::from_millis(30));
    // Idle: no busy loop (a handful of wakeups at most).
    assert!(a.steps() - steps < 10, "{} steps while idle", a.steps() - steps);
    assert!(a.is_running());
    let t = std::time::Instant::now();
    let iface = a.shutdown();
    assert!(t.elapsed() < Duration::from_millis(500));
    assert_eq!(iface.stats().rx_frames, 0);
    drop(b);
}

/// Refuses every third send once (alternating `WouldBlock` and `ENOBUFS`),
/// and fails every receive once `fail` is set.
struct Flaky {
    inner: MemoryDevice,
    sends: u64,
    refused_last: bool,
    fail: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Device for Flaky {
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(libc::EBADFD));
        }
        self.inner.recv(buf)
    }
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        self.sends += 1;
        // Every third attempt is refused, unless it is the retry of a
        // refused frame; refusals alternate between the two kinds.
        let (third, even) = (self.sends % 3, self.sends & 1);
        if third == 0 && !self.refused_last {
            self.refused_last = true;
            return Err(if even == 0 {
                io::ErrorKind::WouldBlock.into()
            } else {
                io::Error::from_raw_os_error(libc::ENOBUFS)
            });
        }
        self.refused_last = false;
        self.inner.send(frame)
    }
    fn as_raw_fd(&self) -> Option<std::os::fd::RawFd> {
        self.inner.as_raw_fd()
    }
    fn name(&self) -> &str {
        "flaky"
    }
}

fn flaky_pair() -> (
    DriverHandle,
    DriverHandle,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let (da, db) = MemoryDevice::pair().expect("memory pair");
    let fail = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flaky = Flaky {
        inner: da,
        sends: 0,
        refused_last: false,
        fail: fail.clone(),
    };
    let a = Driver::spawn(stack(A, 1), Box::new(flaky), DriverOptions::default()).expect("driver a");
    let b = Driver::spawn(stack(B, 2), Box::new(db), DriverOptions::default()).expect("driver b");
    (a, b, fail)
}

#[test]
fn refused_frames_are_retried_in_order() {
    let (a, b, _) = flaky_pair();
    let mut rx = UdpSocket::bind(&b, (B, 9000)).unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let tx = UdpSocket::bind(&a, (A, 0)).unwrap();
    // Resolve b first: while ARP is pending the stack holds only
    // `arp.pending_per_neighbor` (64) datagrams.
    tx.send_to(b"hi", (B, 9000)).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(rx.recv_from(&mut buf).unwrap().0, 2);
    for i in 0u32..300 {
        tx.send_to(&i.to_be_bytes(), (B, 9000)).unwrap();
    }
    for i in 0u32..300 {
        let (n, _) = rx
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("datagram {i}: {e}"));
        assert_eq!(&buf[..n], &i.to_be_bytes(), "datagram {i} out of order or lost");
    }
    let d = a.driver_stats();
    assert!(d.tx_deferred >= 50, "{d:?}");
    assert_eq!(d.tx_link_down, 0);
    assert_eq!(d.tx_frames, a.stats().tx_frames, "{d:?}");
}

#[test]
fn device_error_stops_the_driver_and_wakes_waiters() {
    let (a, _b, fail) = flaky_pair();
    let mut rx = UdpSocket::bind(&a, (A, 9000)).unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let waiter = std::thread::spawn(move || {
        let mut buf = [0u8; 8];
        let t = std::time::Instant::now();
        (rx.recv_from(&mut buf).map(|_| ()), t.elapsed(), rx)
    });
    std::thread::sleep(Duration::from_millis(50));
    fail.store(true, std::sync::atomic::Ordering::SeqCst);
    // Wake the driver so it reads (and fails).
    a.with(|_| ());
    let (result, waited, rx) = waiter.join().unwrap();
    let err = result.unwrap_err();
    assert!(err.to_string().contains("driver stopped"), "{err}");
    assert!(
        waited < Duration::from_secs(5),
        "the waiter was woken, not timed out"
    );
    assert!(!a.is_running());
    assert!(a.error().is_some());
    drop(rx);
    // The stack is still there for its counters.
    let _ = a.shutdown();
}

/// `connect` sets the default peer: `send` goes there and `recv` takes only
/// that peer's datagrams, as with a connected kernel socket.
#[test]
fn connected_udp_socket_filters_by_peer() {
    let (a, b) = pair(DriverOptions::default());
    let server = UdpSocket::bind(&b, "0.0.0.0:7000").unwrap();
    let mut wanted = UdpSocket::bind(&a, "0.0.0.0:6001").unwrap();
    let other = UdpSocket::bind(&a, "0.0.0.0:6002").unwrap();
    let mut client = UdpSocket::bind(&b, "0.0.0.0:6000").unwrap();
    client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    wanted.set_read_timeout(Some(Duration::from_secs(5))).unwrap();

    assert_eq!(client.send(b"x").unwrap_err().kind(), io::ErrorKind::NotConnected);
    client.connect(SocketAddrV4::new(A, 6001)).unwrap();
    assert_eq!(
        client.peer_addr().unwrap(),
        SocketAddr::V4(SocketAddrV4::new(A, 6001))
    );
    // A datagram from someone else arrives first; recv skips it.
    other.send_to(b"noise", SocketAddrV4::new(B, 6000)).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    wanted.send_to(b"signal", SocketAddrV4::new(B, 6000)).unwrap();
    let mut buf = [0u8; 64];
    let n = client.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"signal");
    client.send(b"reply").unwrap();
    let (n, from) = wanted.recv_from(&mut buf).unwrap();
    assert_eq!(
        (&buf[..n], from),
        (&b"reply"[..], SocketAddr::V4(SocketAddrV4::new(B, 6000)))
    );
    drop(server);
}

/// The driver thread busy-polls (`DriverOptions::busy_poll`) for its spell
/// after traffic and sleeps again after it; the driver without it steps a
/// handful of times in the same while.
#[test]
fn driver_thread_busy_polls_for_its_spell_then_sleeps() {
    const SPELL: Duration = Duration::from_millis(300);
    let (a, b) = pair(DriverOptions {
        busy_poll: Some(SPELL),
        ..Default::default()
    });
    let mut rx = UdpSocket::bind(&b, SocketAddrV4::new(B, 9)).unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let tx = UdpSocket::bind(&a, "0.0.0.0:0").unwrap();
    tx.send_to(b"wake", SocketAddrV4::new(B, 9)).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(rx.recv_from(&mut buf).unwrap().0, 4);

    let (a0, b0) = (a.steps(), b.steps());
    std::thread::sleep(Duration::from_millis(100));
    let (spun, slept) = (a.steps() - a0, b.steps() - b0);
    assert!(spun > 200, "busy polling took only {spun} steps in 100 ms");
    assert!(slept < 20, "without busy polling {slept} steps in 100 ms");

    std::thread::sleep(SPELL + Duration::from_millis(100));
    let a1 = a.steps();
    std::thread::sleep(Duration::from_millis(100));
    let idle = a.steps() - a1;
    assert!(idle < 20, "{idle} steps in 100 ms after the spell");
}
