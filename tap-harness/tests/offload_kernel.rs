//! TAP offloads against the real kernel: a TAP opened with `IFF_VNET_HDR`
//! and `TUNSETOFFLOAD`, so the kernel hands tapir GSO super-segments with
//! partial checksums and takes tapir's TSO super-segments.
//!
//! Each test makes its own network namespace with a TAP in it; the kernel
//! side is 10.77.0.1/24 and tapir 10.77.0.2/24. Kernel peers are python
//! scripts run in the namespace. Nothing leaves the namespace. Without
//! CAP_NET_ADMIN the tests print `SKIPPED: ...` and pass; with
//! `TAPIR_REQUIRE_KERNEL=1` they fail instead.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddrV4};
use std::process::Child;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tapir_harness::{
    require_kernel, Device, Driver, DriverHandle, DriverOptions, NetNs, PacketDevice, StackHandle, TapDevice,
    TapOptions, TcpListener, TcpStream, UdpSocket,
};
use tapir_stack::wire::{EthernetAddress, Ipv4Cidr};
use tapir_stack::{Config, Interface};

const TAP: &str = "tap0";
const KERNEL: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const TAPIR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

/// Bytes each way in the bulk test (a few seconds each in the opt-level=1
/// test build on 2 cores).
const BULK_BYTES: usize = 200 << 20;

struct Rig {
    driver: Option<DriverHandle>,
    ns: NetNs,
    /// Where the kernel's end is when it is not `ns` (see `bridged`).
    peer: Option<NetNs>,
}

impl Rig {
    fn new(tag: &str, offload: bool) -> Rig {
        let ns = NetNs::create(tag).expect("create netns");
        let opts = TapOptions::new(TAP).kernel_ipv4(KERNEL, 24).offload(offload);
        Self::start(ns, None, &opts)
    }

    /// The kernel's end in a second namespace, behind a bridge, with
    /// everything a real link would do done in software: in `ns`, tap0 and
    /// one end of a veth pair are ports of bridge br0, and that veth end
    /// has checksum offload, TSO and GSO off, so the kernel cuts tapir's
    /// super-segments and completes their checksums before they leave it;
    /// the other end (10.77.0.1) is in the peer namespace, with receive
    /// checksum offload off, so the peer verifies every checksum.
    fn bridged(tag: &str) -> Rig {
        let ns = NetNs::create(tag).expect("create netns");
        let peer = NetNs::create(&format!("{tag}p")).expect("create peer netns");
        let opts = TapOptions::new(TAP).offload(true);
        let tap = ns
            .run_in(|| TapDevice::open(&opts))
            .expect("enter netns")
            .unwrap_or_else(|e| panic!("netns {}: open TAP: {e}", ns.name()));
        let run = |ns: &NetNs, cmd: &[&str]| {
            let o = ns.exec_timeout(cmd, Duration::from_secs(10)).expect("run");
            assert!(
                o.status.success(),
                "netns {}: {cmd:?}: {}",
                ns.name(),
                String::from_utf8_lossy(&o.stderr)
            );
        };
        for cmd in [
            &["ip", "link", "add", "br0", "type", "bridge"][..],
            &["ip", "link", "set", TAP, "master", "br0"],
            &[
                "ip", "link", "add", "vbr", "type", "veth", "peer", "name", "vpeer",
            ],
            &["ip", "link", "set", "vbr", "master", "br0"],
            &[
                "ethtool", "-K", "vbr", "tx", "off", "tso", "off", "gso", "off", "sg", "off",
            ],
            &["ip", "link", "set", "vbr", "up"],
            &["ip", "link", "set", "br0", "up"],
            &["ip", "link", "set", "vpeer", "netns", peer.name()],
        ] {
            run(&ns, cmd);
        }
        for cmd in [
            &["ip", "addr", "add", "10.77.0.1/24", "dev", "vpeer"][..],
            &["ethtool", "-K", "vpeer", "rx", "off"],
            &["ip", "link", "set", "vpeer", "up"],
            &["ip", "link", "set", "lo", "up"],
        ] {
            run(&peer, cmd);
        }
        Self::finish_start(ns, Some(peer), tap, true)
    }

    fn start(ns: NetNs, peer: Option<NetNs>, opts: &TapOptions) -> Rig {
        let tap = ns
            .run_in(|| TapDevice::open(opts))
            .expect("enter netns")
            .unwrap_or_else(|e| panic!("netns {}: open TAP: {e}", ns.name()));
        Self::finish_start(ns, peer, tap, opts.offload)
    }

    fn finish_start(ns: NetNs, peer: Option<NetNs>, tap: TapDevice, offload: bool) -> Rig {
        Self::drive(
            ns,
            peer,
            Box::new(tap),
            EthernetAddress::local_from_seed(7),
            offload,
        )
    }

    /// tapir on an AF_PACKET socket (with PACKET_VNET_HDR if `offload`) on
    /// one end of a veth pair whose other end is the kernel's 10.77.0.1.
    fn packet(tag: &str, offload: bool) -> Rig {
        let ns = NetNs::create(tag).expect("create netns");
        ns.veth_pair("veth-k", "veth-t", Some((KERNEL, 24)))
            .unwrap_or_else(|e| panic!("netns {}: veth: {e}", ns.name()));
        let dev = ns
            .run_in(|| PacketDevice::open_with("veth-t", offload))
            .expect("enter netns")
            .unwrap_or_else(|e| panic!("netns {}: AF_PACKET: {e}", ns.name()));
        let mac = EthernetAddress(dev.mac().expect("veth-t MAC"));
        Self::drive(ns, None, Box::new(dev), mac, offload)
    }

    fn drive(
        ns: NetNs,
        peer: Option<NetNs>,
        dev: Box<dyn Device + Send>,
        mac: EthernetAddress,
        offload: bool,
    ) -> Rig {
        assert_eq!(
            dev.offload().tx_checksum,
            offload,
            "netns {}: the kernel refused the offloads",
            ns.name()
        );
        let mut config = Config::new(mac, Ipv4Cidr::new(TAPIR, 24).expect("prefix"));
        config.mtu = dev.mtu().unwrap_or(1500);
        let iface = Interface::new(config).expect("valid config");
        let driver = Driver::spawn(iface, dev, DriverOptions::default()).expect("spawn driver");
        Rig {
            driver: Some(driver),
            ns,
            peer,
        }
    }

    /// The namespace the kernel's end of the link is in.
    fn kernel_ns(&self) -> &NetNs {
        self.peer.as_ref().unwrap_or(&self.ns)
    }

    fn stack(&self) -> StackHandle {
        self.driver.as_ref().expect("driver running").stack()
    }

    fn stats(&self) -> tapir_stack::Stats {
        self.driver.as_ref().expect("driver running").stats()
    }

    /// Start a python script that prints `ready` once it listens; returns
    /// the child and a channel of its later stdout lines.
    fn python(&self, script: &str, args: &[&str]) -> (Child, mpsc::Receiver<String>) {
        let mut cmd = vec!["python3", "-c", script];
        cmd.extend_from_slice(args);
        self.kernel_ns()
            .spawn_ready(&cmd, "ready", Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("python did not start: {e}"))
    }

    /// The kernel's TCP and UDP error counters in the namespace
    /// (/proc/net/snmp): InErrs, InCsumErrors of Tcp, InErrors and
    /// InCsumErrors of Udp.
    fn kernel_errors(&self) -> Vec<(String, u64)> {
        let o = self
            .kernel_ns()
            .exec_timeout(&["cat", "/proc/net/snmp"], Duration::from_secs(5))
            .expect("read /proc/net/snmp");
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let lines: Vec<&str> = text.lines().collect();
        let mut out = Vec::new();
        for pair in lines.chunks(2) {
            let [names, values] = pair else { continue };
            let proto = names.split(':').next().unwrap_or("");
            if proto != "Tcp" && proto != "Udp" {
                continue;
            }
            for (n, v) in names.split_whitespace().zip(values.split_whitespace()).skip(1) {
                if n.contains("Err") {
                    out.push((format!("{proto}.{n}"), v.parse().unwrap_or(u64::MAX)));
                }
            }
        }
        assert!(!out.is_empty(), "no counters in /proc/net/snmp:\n{text}");
        out
    }

    fn assert_no_kernel_errors(&self) {
        let errs = self.kernel_errors();
        assert!(
            errs.iter().all(|(_, v)| *v == 0),
            "kernel counted errors: {errs:?}"
        );
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let stats = self.driver.take().map(|d| d.shutdown().stats().to_string());
        if thread::panicking() {
            eprintln!("kernel test failed in netns {}", self.ns.name());
            if let Some(s) = stats {
                eprintln!("tapir counters:\n{s}");
            }
        }
    }
}

/// Wait (up to 30 s) for a child we started to exit; past that, kill it
/// (by its handle). `None` if it had to be killed.
fn finish(mut child: Child) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// xorshift bytes, so the data is not one repeated block.
struct Bytes(u64);

impl Bytes {
    fn fill(&mut self, buf: &mut [u8]) {
        for w in buf.chunks_exact_mut(8) {
            let x = &mut self.0;
            *x ^= *x << 13;
            *x ^= *x >> 7;
            *x ^= *x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
    }
}

/// Accept one connection on port 6000, read to EOF, answer
/// "<bytes> <sha256>" and close.
const SHA_SINK: &str = r#"
import hashlib, socket, sys
l = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((sys.argv[1], 6000))
l.listen(1)
l.settimeout(60)
print("ready", flush=True)
c, _ = l.accept()
c.settimeout(60)
h = hashlib.sha256()
n = 0
while True:
    b = c.recv(1 << 20)
    if not b:
        break
    n += len(b)
    h.update(b)
c.sendall(f"{n} {h.hexdigest()}".encode())
c.close()
"#;

/// Connect to tapir at argv[1]:7000, send argv[2] random bytes, close,
/// print "<bytes> <sha256>".
const SHA_SOURCE: &str = r#"
import hashlib, os, socket, sys
print("ready", flush=True)
total = int(sys.argv[2])
c = socket.create_connection((sys.argv[1], 7000), timeout=60)
h = hashlib.sha256()
block = os.urandom(1 << 20)
n = 0
while n < total:
    b = block[: min(len(block), total - n)]
    c.sendall(b)
    h.update(b)
    n += len(b)
    block = block[1:] + block[:1]
c.shutdown(socket.SHUT_WR)
c.recv(1)
c.close()
print(f"{n} {h.hexdigest()}", flush=True)
"#;

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// tapir -> kernel: `bytes`, returns (what the kernel said, what we hashed).
fn send_to_kernel(rig: &Rig, bytes: usize) -> (String, String) {
    let (child, lines) = rig.python(SHA_SINK, &[&KERNEL.to_string()]);
    let s = TcpStream::connect_timeout(
        &rig.stack(),
        &SocketAddrV4::new(KERNEL, 6000).into(),
        Duration::from_secs(10),
    )
    .expect("connect to the kernel");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut gen = Bytes(0x2545_f491_4f6c_dd1d);
    let mut buf = vec![0u8; 256 * 1024];
    let mut h = Sha256::new();
    let mut sent = 0;
    while sent < bytes {
        gen.fill(&mut buf);
        let n = buf.len().min(bytes - sent);
        h.update(&buf[..n]);
        (&s).write_all(&buf[..n]).expect("send");
        sent += n;
    }
    s.shutdown(Shutdown::Write).unwrap();
    let mut answer = String::new();
    (&s).read_to_string(&mut answer).expect("the kernel's answer");
    drop(s);
    let status = finish(child);
    let printed: Vec<String> = lines.try_iter().collect();
    assert!(status.is_some_and(|s| s.success()), "{status:?} {printed:?}");
    (
        answer.trim().to_string(),
        format!("{bytes} {}", hex(&h.finalize())),
    )
}

/// kernel -> tapir: `bytes`, returns (what the kernel said, what we hashed).
fn receive_from_kernel(rig: &Rig, bytes: usize) -> (String, String) {
    let l = TcpListener::bind(&rig.stack(), SocketAddrV4::new(TAPIR, 7000)).expect("listen");
    let (child, lines) = rig.python(SHA_SOURCE, &[&TAPIR.to_string(), &bytes.to_string()]);
    let (s, _) = l.accept_timeout(Duration::from_secs(10)).expect("accept");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0;
    loop {
        let n = (&s).read(&mut buf).expect("receive");
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        got += n;
    }
    drop(s);
    let status = finish(child);
    let printed: Vec<String> = lines.try_iter().collect();
    assert!(status.is_some_and(|s| s.success()), "{status:?} {printed:?}");
    let said = printed.last().cloned().unwrap_or_default();
    (said, format!("{got} {}", hex(&h.finalize())))
}

#[test]
fn bulk_both_ways_with_offloads_keeps_the_bytes() {
    require_kernel!("python3");
    let rig = Rig::new("offbulk", true);

    let t = Instant::now();
    let (kernel, ours) = send_to_kernel(&rig, BULK_BYTES);
    let up = t.elapsed();
    assert_eq!(kernel, ours, "tapir -> kernel");
    let s = rig.stats();
    assert!(s.tx_gso_frames > 0, "no TSO super-segments sent:\n{s}");
    assert!(s.tx_gso_segments > 2 * s.tx_gso_frames, "{s}");

    let t = Instant::now();
    let (kernel, ours) = receive_from_kernel(&rig, BULK_BYTES);
    let down = t.elapsed();
    assert_eq!(kernel, ours, "kernel -> tapir");
    let s = rig.stats();
    assert!(s.rx_gso_frames > 0, "no GSO super-segments received:\n{s}");
    assert!(s.rx_csum_partial > 0, "{s}");
    assert_eq!(s.tcp_bad_checksum, 0, "{s}");
    assert_eq!(s.rx_gso_unsupported, 0, "{s}");
    rig.assert_no_kernel_errors();
    let mbit = |d: Duration| BULK_BYTES as f64 * 8.0 / d.as_secs_f64() / 1e6;
    eprintln!(
        "{} MB tapir -> kernel in {up:?} ({:.0} Mbit/s), kernel -> tapir in {down:?} ({:.0} Mbit/s); \
         tx_gso_frames {} ({} segments), rx_gso_frames {}",
        BULK_BYTES >> 20,
        mbit(up),
        mbit(down),
        s.tx_gso_frames,
        s.tx_gso_segments,
        s.rx_gso_frames
    );
}

/// Watch tap0 with an AF_PACKET socket that asks for the virtio-net header
/// (PACKET_VNET_HDR), as the kernel's stack receives tapir's frames, until
/// tapir's FIN to port 6000, 2 s of quiet or 25 s; print
/// "<frames> <gso frames> <largest segment on the wire> <largest plain frame> <data frames>"
/// where a GSO frame's segments are its headers plus gso_size.
const VNET_SNIFFER: &str = r#"
import socket, struct, sys, time
ETH_P_ALL = 3
PACKET_VNET_HDR = 15
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
s.setsockopt(263, PACKET_VNET_HDR, 1)
# SO_RCVBUFFORCE: SO_RCVBUF is capped at net.core.rmem_max.
s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)
s.bind(("tap0", 0))
s.settimeout(1)
tapir = socket.inet_aton(sys.argv[1])
print("ready", flush=True)
frames = gso = data = 0
seg_max = plain_max = 0
# The FIN may be among the frames a busy sniffer misses: stop after
# 2 s without one, well before the test stops waiting (30 s).
end = time.time() + 25
last = time.time()
buf = bytearray(256)
while time.time() < end and not (frames and time.time() - last > 2):
    try:
        n, addr = s.recvfrom_into(buf, 256, socket.MSG_TRUNC)
    except socket.timeout:
        continue
    if addr[2] != socket.PACKET_HOST:
        continue
    flags, gso_type, hdr_len, gso_size, cs, co = struct.unpack("=BBHHHH", bytes(buf[:10]))
    f = bytes(buf[10:])
    flen = n - 10
    if f[12:14] != b"\x08\x00" or f[14 + 9] != 6 or f[14 + 12:14 + 16] != tapir:
        continue
    ihl = (f[14] & 15) * 4
    tcp = 14 + ihl
    dport = struct.unpack("!H", f[tcp + 2:tcp + 4])[0]
    doff = (f[tcp + 12] >> 4) * 4
    if dport != 6000:
        continue
    frames += 1
    last = time.time()
    payload = flen - tcp - doff
    if payload > 0:
        data += 1
    if gso_type & 0x7f:
        gso += 1
        seg_max = max(seg_max, tcp + doff + gso_size)
    else:
        plain_max = max(plain_max, flen)
        seg_max = max(seg_max, flen)
    if f[tcp + 13] & 1:
        break
print(f"{frames} {gso} {seg_max} {plain_max} {data}", flush=True)
"#;

#[test]
fn tso_segments_stay_within_the_mss_on_the_wire() {
    require_kernel!("python3");
    let rig = Rig::new("offwire", true);
    let (sniffer, lines) = rig.python(VNET_SNIFFER, &[&TAPIR.to_string()]);
    let (kernel, ours) = send_to_kernel(&rig, 20 << 20);
    assert_eq!(kernel, ours);
    let status = finish(sniffer);
    let printed: Vec<String> = lines.try_iter().collect();
    assert!(status.is_some_and(|s| s.success()), "{status:?} {printed:?}");
    let v: Vec<usize> = printed
        .last()
        .map(|l| l.split_whitespace().filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_default();
    let [frames, gso, seg_max, plain_max, data] = v[..] else {
        panic!("sniffer said {printed:?}");
    };
    let s = rig.stats();
    eprintln!(
        "sniffer: {frames} frames ({data} with data), {gso} GSO; largest wire segment {seg_max}, \
         largest plain frame {plain_max}; tapir tx_gso_frames {}",
        s.tx_gso_frames
    );
    assert!(s.tx_gso_frames > 0, "{s}");
    assert!(gso > 0, "the kernel saw no GSO frames: {printed:?}");
    // Every segment the kernel cuts (or would put on a wire) is within
    // the MTU: Ethernet header + 1500.
    assert!(seg_max <= 14 + 1500, "a segment of {seg_max} bytes");
    assert!(plain_max <= 14 + 1500, "a plain frame of {plain_max} bytes");
    rig.assert_no_kernel_errors();
}

/// Send argv[2] UDP datagrams of 1000 bytes to tapir at argv[1]:7001,
/// the i-th made of the byte i, paced so a loaded machine drops none.
const UDP_SOURCE: &str = r#"
import socket, sys, time
print("ready", flush=True)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(int(sys.argv[2])):
    s.sendto(bytes([i % 251]) * 1000, (sys.argv[1], 7001))
    time.sleep(0.002)
"#;

#[test]
fn kernel_frames_with_partial_checksums_are_accepted() {
    require_kernel!("python3");
    for offload in [true, false] {
        let rig = Rig::new("offcsum", offload);
        let mut u = UdpSocket::bind(&rig.stack(), SocketAddrV4::new(TAPIR, 7001)).expect("bind");
        u.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let (child, _) = rig.python(UDP_SOURCE, &[&TAPIR.to_string(), "50"]);
        let mut buf = [0u8; 2048];
        for _ in 0..50usize {
            let (n, _) = u.recv_from(&mut buf).expect("a datagram");
            assert_eq!(n, 1000);
            assert!(
                buf[..n].iter().all(|&b| b == buf[0]),
                "a datagram changed on the way"
            );
        }
        assert!(finish(child).is_some_and(|s| s.success()));
        let (kernel, ours) = receive_from_kernel(&rig, 1 << 20);
        assert_eq!(kernel, ours);
        let s = rig.stats();
        assert_eq!((s.udp_bad_checksum, s.tcp_bad_checksum), (0, 0), "{s}");
        if offload {
            // Every datagram and segment came with its checksum left to us.
            assert!(s.rx_csum_partial >= 50, "{s}");
        } else {
            assert_eq!(s.rx_csum_partial + s.rx_gso_frames, 0, "{s}");
        }
        rig.assert_no_kernel_errors();
    }
}

/// Watch argv[2] with a plain AF_PACKET socket (the wire as a receiving
/// host sees it) until tapir's FIN to port 6000, 2 s of quiet or 25 s; print
/// "<frames from tapir to port 6000> <largest> <with data>".
const WIRE_SNIFFER: &str = r#"
import socket, struct, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
# SO_RCVBUFFORCE: SO_RCVBUF is capped at net.core.rmem_max.
s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)
s.bind((sys.argv[2], 0))
s.settimeout(1)
tapir = socket.inet_aton(sys.argv[1])
print("ready", flush=True)
frames = data = largest = 0
# The FIN may be among the frames a busy sniffer misses: stop after
# 2 s without one, well before the test stops waiting (30 s).
end = time.time() + 25
last = time.time()
buf = bytearray(128)
while time.time() < end and not (frames and time.time() - last > 2):
    try:
        n, addr = s.recvfrom_into(buf, 128, socket.MSG_TRUNC)
    except socket.timeout:
        continue
    f = bytes(buf)
    if f[12:14] != b"\x08\x00" or f[14 + 9] != 6 or f[14 + 12:14 + 16] != tapir:
        continue
    tcp = 14 + (f[14] & 15) * 4
    if struct.unpack("!H", f[tcp + 2:tcp + 4])[0] != 6000:
        continue
    frames += 1
    last = time.time()
    largest = max(largest, n)
    if n > tcp + (f[tcp + 12] >> 4) * 4:
        data += 1
    if f[tcp + 13] & 1:
        break
print(f"{frames} {largest} {data}", flush=True)
"#;

#[test]
fn tso_segments_cut_by_the_kernel_reach_a_peer_intact() {
    require_kernel!("python3", "ethtool");
    let rig = Rig::bridged("offbr");
    let (sniffer, lines) = rig.python(WIRE_SNIFFER, &[&TAPIR.to_string(), "vpeer"]);
    let bytes = 50 << 20;
    let (kernel, ours) = send_to_kernel(&rig, bytes);
    assert_eq!(kernel, ours, "tapir -> kernel through the bridge");
    let status = finish(sniffer);
    let printed: Vec<String> = lines.try_iter().collect();
    assert!(status.is_some_and(|s| s.success()), "{status:?} {printed:?}");
    let v: Vec<usize> = printed
        .last()
        .map(|l| l.split_whitespace().filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_default();
    let [frames, largest, data] = v[..] else {
        panic!("sniffer said {printed:?}");
    };
    let s = rig.stats();
    eprintln!(
        "peer saw {frames} frames from tapir ({data} with data), the largest {largest} bytes; \
         tapir sent {} super-segments ({} segments)",
        s.tx_gso_frames, s.tx_gso_segments
    );
    assert!(s.tx_gso_frames > 0, "{s}");
    // The kernel cut them: more frames arrived than tapir wrote (the
    // sniffer may miss some under load), none beyond the MTU, and the
    // peer's verified checksums all held.
    assert!(
        data as u64 > 2 * s.tx_gso_frames,
        "{frames} frames, {data} with data"
    );
    assert!(largest <= 14 + 1500, "a {largest}-byte frame on the wire");
    rig.assert_no_kernel_errors();

    // And back: the peer's kernel sends, the bridge hands tapir GSO frames.
    let (kernel, ours) = receive_from_kernel(&rig, bytes);
    assert_eq!(kernel, ours, "kernel -> tapir through the bridge");
    let s = rig.stats();
    assert_eq!(s.tcp_bad_checksum, 0, "{s}");
    rig.assert_no_kernel_errors();
}

#[test]
fn af_packet_with_vnet_headers_carries_super_segments_both_ways() {
    require_kernel!("python3");
    let rig = Rig::packet("offpkt", true);
    let bytes = 50 << 20;
    let (kernel, ours) = send_to_kernel(&rig, bytes);
    assert_eq!(kernel, ours, "tapir -> kernel over AF_PACKET");
    let (kernel, ours) = receive_from_kernel(&rig, bytes);
    assert_eq!(kernel, ours, "kernel -> tapir over AF_PACKET");
    let s = rig.stats();
    eprintln!(
        "AF_PACKET: tx_gso_frames {}, rx_gso_frames {}, rx_csum_partial {}",
        s.tx_gso_frames, s.rx_gso_frames, s.rx_csum_partial
    );
    assert!(s.tx_gso_frames > 0, "{s}");
    assert!(s.rx_gso_frames > 0, "{s}");
    assert_eq!(s.tcp_bad_checksum, 0, "{s}");
    rig.assert_no_kernel_errors();
}
