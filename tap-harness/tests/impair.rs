//! The link emulator on real devices: [`ImpairedDevice`] under the driver
//! (in memory: does the driver wake for the emulator's deadlines?), and
//! [`Bridge`] between two kernels in namespaces (does TCP come through 5 %
//! loss, reordering and duplication byte-exact?).

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::Command;
use std::time::{Duration, Instant};

use tapir_harness::netns::check_status;
use tapir_harness::{
    require_kernel, Bridge, Driver, DriverOptions, ImpairedDevice, MemoryDevice, NetNs, UdpSocket,
};
use tapir_stack::impair::Spec;
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

fn spec(s: &str) -> Spec {
    s.parse().expect("valid spec")
}

/// A burst of frames, each due at its own microsecond, sets the
/// emulator's timer a few times, not once a frame: setting a timerfd
/// reprograms the clock, and per frame it took most of a sender's CPU.
#[test]
fn a_burst_sets_the_timer_a_few_times_not_once_a_frame() {
    use tapir_harness::Device;
    let (da, mut db) = MemoryDevice::pair_with_capacity(4096).expect("memory pair");
    let mut dev = ImpairedDevice::new(da, &spec(""), &spec("delay=5ms")).unwrap();
    let frame = [0x5au8; 200];
    const N: usize = 2000;
    let start = Instant::now();
    for _ in 0..N {
        dev.send(&frame).unwrap();
    }
    let mut buf = [0u8; 2048];
    let mut got = 0;
    while got < N && start.elapsed() < Duration::from_secs(10) {
        // The driver's part: look at the device when it may have work.
        let _ = dev.recv(&mut buf);
        while db.recv(&mut buf).is_ok() {
            got += 1;
        }
        std::thread::sleep(Duration::from_micros(50));
    }
    assert_eq!(got, N, "frames through the emulator");
    let sent_in = start.elapsed();
    // One arm per 100 us granule of the time the frames took, at most,
    // and a few more; once a frame would be N.
    let bound = sent_in.as_micros() as u64 / 100 + 10;
    assert!(
        dev.timer_arms() <= bound.min(N as u64 / 4),
        "{} timer arms for {N} frames in {sent_in:?}",
        dev.timer_arms()
    );
}

/// A's frames out are delayed 40 ms. The driver sleeps up to 5 s when the
/// stack has nothing to do, so an echo that comes back in well under that
/// proves the device's descriptor woke it when the delayed frame was due.
#[test]
fn the_driver_wakes_for_delayed_frames() {
    let (da, db) = MemoryDevice::pair().expect("memory pair");
    let dev = ImpairedDevice::new(da.with_name("a"), &spec(""), &spec("delay=40ms")).unwrap();
    let stats = dev.stats_handle();
    let slow = DriverOptions {
        max_sleep: Duration::from_secs(5),
        ..Default::default()
    };
    let a = Driver::spawn(stack(A, 1), Box::new(dev), slow.clone()).unwrap();
    let b = Driver::spawn(stack(B, 2), Box::new(db.with_name("b")), slow).unwrap();
    let mut echo = UdpSocket::bind(&b, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    echo.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut client = UdpSocket::bind(&a, "0.0.0.0:0").unwrap();
    client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 64];
    // The first exchange resolves ARP (its request and reply delayed too).
    for round in 0..3 {
        let start = Instant::now();
        client.send_to(b"ping", SocketAddrV4::new(B, 7)).unwrap();
        let (n, from) = echo.recv_from(&mut buf).unwrap();
        echo.send_to(&buf[..n], from).unwrap();
        let (n, _) = client.recv_from(&mut buf).unwrap();
        let rtt = start.elapsed();
        assert_eq!(&buf[..n], b"ping");
        assert!(rtt >= Duration::from_millis(40), "round {round}: {rtt:?}");
        assert!(
            rtt < Duration::from_millis(2000),
            "round {round}: {rtt:?}: the driver overslept"
        );
    }
    let (rx, tx) = stats.lock().unwrap().clone();
    assert!(tx.delivered >= 4 && tx.is_balanced(), "{tx:?}");
    assert_eq!(rx.delivered, rx.sent, "{rx:?}");
}

/// Loss on the way out loses datagrams in the proportion asked for.
#[test]
fn loss_through_the_device_wrapper() {
    let (da, db) = MemoryDevice::pair_with_capacity(4096).expect("memory pair");
    let dev = ImpairedDevice::new(da.with_name("a"), &spec(""), &spec("loss=20%,seed=3")).unwrap();
    let stats = dev.stats_handle();
    let a = Driver::spawn(stack(A, 1), Box::new(dev), DriverOptions::default()).unwrap();
    let b = Driver::spawn(stack(B, 2), Box::new(db.with_name("b")), DriverOptions::default()).unwrap();
    let mut sink = UdpSocket::bind(&b, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 9)).unwrap();
    sink.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let client = UdpSocket::bind(&a, "0.0.0.0:0").unwrap();
    // ARP first: retry until one datagram gets through.
    let mut buf = [0u8; 64];
    loop {
        client.send_to(b"hello", SocketAddrV4::new(B, 9)).unwrap();
        if sink.recv_from(&mut buf).is_ok() {
            break;
        }
    }
    let mut got = 0u32;
    for i in 0..1000u32 {
        client.send_to(&i.to_be_bytes(), SocketAddrV4::new(B, 9)).unwrap();
        if i % 50 == 49 {
            while sink.recv_from(&mut buf).is_ok() {
                got += 1;
            }
        }
    }
    while sink.recv_from(&mut buf).is_ok() {
        got += 1;
    }
    let (_, tx) = stats.lock().unwrap().clone();
    assert!(tx.is_balanced(), "{tx:?}");
    // 1000 at 20 %: 800 expected, sd 12.6.
    assert!((750..=850).contains(&got), "{got} of 1000 arrived; {tx:?}");
    assert!(tx.lost >= 150, "{tx:?}");
}

fn ip(args: &[&str]) {
    check_status(Command::new("ip").args(args).output().unwrap()).unwrap();
}

/// Two kernel namespaces joined through a third that runs the bridge.
struct TwoKernels {
    a: NetNs,
    b: NetNs,
    br: NetNs,
}

impl TwoKernels {
    /// `offloads`: leave TSO, GSO and checksum offload on at the kernels.
    fn new(offloads: bool) -> TwoKernels {
        let (a, b, br) = (
            NetNs::create("impa").unwrap(),
            NetNs::create("impb").unwrap(),
            NetNs::create("impbr").unwrap(),
        );
        ip(&[
            "-n",
            br.name(),
            "link",
            "add",
            "a1",
            "type",
            "veth",
            "peer",
            "name",
            "a0",
            "netns",
            a.name(),
        ]);
        ip(&[
            "-n",
            br.name(),
            "link",
            "add",
            "b1",
            "type",
            "veth",
            "peer",
            "name",
            "b0",
            "netns",
            b.name(),
        ]);
        for (ns, dev, addr) in [(&a, "a0", "10.77.0.1/24"), (&b, "b0", "10.77.0.2/24")] {
            ip(&["-n", ns.name(), "addr", "add", addr, "dev", dev]);
            ip(&["-n", ns.name(), "link", "set", dev, "up"]);
            if !offloads {
                // An impairing bridge must see wire frames.
                let off = ["ethtool", "-K", dev, "tx", "off", "tso", "off", "gso", "off"];
                check_status(ns.exec(&off).unwrap()).unwrap();
            }
        }
        for dev in ["a1", "b1"] {
            ip(&["-n", br.name(), "link", "set", dev, "up"]);
        }
        TwoKernels { a, b, br }
    }
}

const SERVER: &str = r#"
import socket, hashlib
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.77.0.2", 5001))
s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
h, n = hashlib.sha256(), 0
while True:
    d = c.recv(1 << 16)
    if not d:
        break
    h.update(d)
    n += len(d)
print(n, h.hexdigest(), flush=True)
"#;

const CLIENT: &str = r#"
import socket, hashlib, random, sys
data = random.Random(11).randbytes(int(sys.argv[1]) << 20)
c = socket.create_connection(("10.77.0.2", 5001), timeout=60)
c.sendall(data)
c.shutdown(socket.SHUT_WR)
c.recv(1)
print(len(data), hashlib.sha256(data).hexdigest(), flush=True)
"#;

/// Send `mb` MiB from namespace a to b; assert they arrive byte-exact.
fn transfer(net: &TwoKernels, mb: u32) {
    let mut server = net.b.spawn(&["python3", "-c", SERVER]).unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let start = Instant::now();
    let client = net.a.exec_timeout(
        &["python3", "-c", CLIENT, &mb.to_string()],
        Duration::from_secs(180),
    );
    let client = check_status(client.unwrap()).unwrap();
    let sent = String::from_utf8_lossy(&client.stdout).trim().to_string();
    let received = lines.next().unwrap().unwrap();
    eprintln!("{mb} MiB in {:?}", start.elapsed());
    let _ = server.wait();
    assert_eq!(received, sent, "the bytes differ");
    assert!(sent.starts_with(&format!("{} ", mb << 20)), "{sent}");
}

/// With no impairment the bridge passes GSO frames whole (virtio headers),
/// so the kernels keep their offloads.
#[test]
fn a_clean_bridge_passes_offloaded_frames_exactly() {
    require_kernel!("python3");
    let net = TwoKernels::new(true);
    let clean = spec("");
    let bridge = net
        .br
        .run_in(|| Bridge::start("a1", "b1", &clean, &clean))
        .unwrap()
        .unwrap();
    transfer(&net, 20);
    let (ab, ba) = bridge.stop().unwrap();
    assert_eq!((ab.oversized, ba.oversized, ab.send_dropped), (0, 0, 0), "{ab:?}");
    // Fewer frames than 1500-byte ones would take: they went through whole.
    assert!(ab.link.delivered < (20 << 20) / 1500, "{ab:?}");
    assert!(ab.bytes >= 20 << 20, "{ab:?}");
}

#[test]
fn two_kernels_move_10_mb_exactly_through_5_percent_loss_reordering_and_duplication() {
    require_kernel!("python3", "ethtool");
    let net = TwoKernels::new(false);
    let imp = spec("delay=1ms,loss=5%,reorder=3%,dup=2%,seed=5");
    let bridge = net
        .br
        .run_in(|| Bridge::start("a1", "b1", &imp, &imp))
        .unwrap()
        .unwrap();
    transfer(&net, 10);
    let (ab, ba) = bridge.stop().unwrap();
    eprintln!("a->b: {} {ab:?}\nb->a: {} {ba:?}", ab.link, ba.link);
    // The bridge did impair: every kind of event happened on the data path.
    assert!(
        ab.link.lost > 100 && ab.link.reordered > 50 && ab.link.duplicated > 20,
        "{ab:?}"
    );
    assert!(ba.link.lost > 0, "{ba:?}");
    assert!(ab.link.is_balanced() && ba.link.is_balanced());
    assert_eq!((ab.oversized, ba.oversized), (0, 0), "offloads were not off");
}
