//! tapir against the real Linux kernel.
//!
//! Each test makes its own network namespace, creates a TAP (or a veth
//! pair) inside it, runs tapir at 10.77.0.2/24 over it with the kernel side
//! at 10.77.0.1/24, and drives kernel peers (ping, python sockets) inside
//! the namespace. Nothing leaves the namespace. Without CAP_NET_ADMIN the
//! tests print `SKIPPED: ...` and pass; with `TAPIR_REQUIRE_KERNEL=1` they
//! fail instead. Every wait is bounded; a failing test prints the
//! namespace it used and tapir's counters.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use tapir_harness::netns::check_status;
use tapir_harness::{
    require_kernel, Device, Driver, DriverHandle, DriverOptions, NetNs, PacketDevice, TapDevice, TapOptions,
    UdpSocket,
};
use tapir_stack::wire::{EthernetAddress, Ipv4Cidr};
use tapir_stack::{Config, Interface};

const KERNEL: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const TAPIR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const TAP: &str = "tap0";

/// A namespace with tapir running in it. On a failing test, says which
/// namespace it was and what tapir counted.
struct Rig {
    driver: Option<DriverHandle>,
    /// The kernel side's MAC (the TAP's, or the veth's kernel end).
    kernel_mac: [u8; 6],
    ns: NetNs,
}

impl Rig {
    /// tapir on a TAP named `tap0` whose kernel side is 10.77.0.1/24.
    fn tap(tag: &str, opts: DriverOptions) -> Rig {
        let ns = NetNs::create(tag).expect("create netns");
        let tap = ns
            .run_in(|| TapDevice::open(&TapOptions::new(TAP).kernel_ipv4(KERNEL, 24)))
            .expect("enter netns")
            .unwrap_or_else(|e| panic!("netns {}: open TAP: {e}", ns.name()));
        let kernel_mac = tap.kernel_mac();
        let iface = stack(EthernetAddress::local_from_seed(0x7a9), tap.mtu());
        let driver = Driver::spawn(iface, Box::new(tap), opts).expect("spawn driver");
        Rig {
            driver: Some(driver),
            kernel_mac,
            ns,
        }
    }

    /// Start a python program in the namespace and wait until it prints
    /// "ready"; its further lines arrive on the receiver.
    fn python_listener(&self, program: &str) -> (std::process::Child, mpsc::Receiver<String>) {
        self.ns
            .spawn_ready(&["python3", "-c", program], "ready", Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("listener did not start: {e}"))
    }

    fn driver(&self) -> &DriverHandle {
        self.driver.as_ref().expect("driver running")
    }

    /// Run a command in the namespace, bounded by `secs`.
    fn exec(&self, cmd: &[&str], secs: u64) -> Output {
        self.ns
            .exec_timeout(cmd, Duration::from_secs(secs))
            .unwrap_or_else(|e| panic!("netns {}: {cmd:?}: {e}", self.ns.name()))
    }

    /// Run a command that must succeed; returns its stdout.
    fn exec_ok(&self, cmd: &[&str], secs: u64) -> String {
        let o = self.exec(cmd, secs);
        let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "netns {}: {cmd:?} failed ({}):\n{stdout}\n{}",
            self.ns.name(),
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        stdout
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let stats = self.driver.take().map(|d| d.shutdown().stats().to_string());
        if std::thread::panicking() {
            eprintln!("kernel test failed in netns {}", self.ns.name());
            if let Some(s) = stats {
                eprintln!("tapir counters:\n{s}");
            }
        }
    }
}

fn stack(mac: EthernetAddress, mtu: Option<usize>) -> Interface {
    let mut config = Config::new(mac, Ipv4Cidr::new(TAPIR, 24).expect("prefix"));
    if let Some(mtu) = mtu {
        config.mtu = mtu;
    }
    Interface::new(config).expect("valid config")
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in mac.iter_mut() {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// `ip -j link show` prints `"address":"aa:bb:..."`; find it without a
/// JSON parser.
fn mac_from_ip_json(json: &str) -> Option<[u8; 6]> {
    let rest = &json[json.find("\"address\":\"")? + 11..];
    parse_mac(&rest[..rest.find('"')?])
}

fn assert_ping_clean(out: &str, count: usize) {
    assert!(
        out.contains(&format!(
            "{count} packets transmitted, {count} received, 0% packet loss"
        )),
        "ping lost packets:\n{out}"
    );
}

#[test]
fn ping_small_and_fragmented() {
    require_kernel!("ping");
    let rig = Rig::tap("ping", DriverOptions::default());
    let out = rig.exec_ok(
        &["ping", "-n", "-c", "5", "-i", "0.2", "-W", "2", "10.77.0.2"],
        20,
    );
    assert_ping_clean(&out, 5);

    // 3000 bytes of payload: a 3028-byte datagram, fragmented at MTU 1500
    // on the way in (the kernel) and on the way out (tapir).
    let out = rig.exec_ok(
        &[
            "ping",
            "-n",
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "2",
            "-s",
            "3000",
            "10.77.0.2",
        ],
        20,
    );
    assert_ping_clean(&out, 3);
    assert_eq!(
        out.matches("3008 bytes from 10.77.0.2").count(),
        3,
        "full-size replies:\n{out}"
    );

    let s = rig.driver().stats();
    assert!(s.icmp_echo_replies_tx >= 8, "{s}");
    assert!(s.frag_reassembled >= 3 && s.ipv4_frags_tx >= 6, "{s}");
}

/// The client the UDP echo test runs in the namespace: 1000 datagrams of
/// deterministic pseudo-random sizes (0..=1472, one frame each), then 3000
/// and 20000 bytes (fragmented both ways), one at a time, each echo
/// checked byte for byte. No retries: a clean link loses nothing.
const ECHO_CLIENT: &str = r#"
import random, socket, sys
rng = random.Random(0x7a91)
sizes = [rng.randrange(0, 1473) for _ in range(1000)] + [3000, 20000]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2.0)
peer = ("10.77.0.2", 7)
for i, n in enumerate(sizes):
    msg = rng.randbytes(n)
    s.sendto(msg, peer)
    try:
        data, addr = s.recvfrom(65535)
    except socket.timeout:
        print(f"datagram {i} ({n} bytes): no echo within 2 s")
        sys.exit(1)
    if addr != peer or data != msg:
        print(f"datagram {i} ({n} bytes): bad echo of {len(data)} bytes from {addr}")
        sys.exit(1)
print(f"echoed {len(sizes)} datagrams")
"#;

#[test]
fn udp_echo_with_python_client() {
    require_kernel!("python3");
    let rig = Rig::tap("udpecho", DriverOptions::default());
    let mut sock = UdpSocket::bind(rig.driver(), SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_535];
            let mut echoed = 0u64;
            while !stop.load(Ordering::Relaxed) {
                match sock.recv_from(&mut buf) {
                    Ok((n, from)) => {
                        sock.send_to(&buf[..n], from).expect("echo send");
                        echoed += 1;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("echo recv: {e}"),
                }
            }
            echoed
        })
    };
    let out = rig.exec(&["python3", "-c", ECHO_CLIENT], 60);
    stop.store(true, Ordering::Relaxed);
    let echoed = server.join().expect("echo thread");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python client failed: {stdout}\n{}\n(tapir echoed {echoed})",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("echoed 1002 datagrams"), "{stdout}");
    assert_eq!(echoed, 1002);
    let s = rig.driver().stats();
    assert!(s.frag_reassembled >= 2 && s.ipv4_frags_tx >= 2, "{s}");
    assert_eq!(s.udp_queue_full + s.udp_bad_checksum, 0, "{s}");
}

/// A python listener on the kernel side that says "ready" once bound, then
/// prints the first datagram it gets and who sent it.
const LISTENER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.77.0.1", 5555))
s.settimeout(5.0)
print("ready", flush=True)
data, addr = s.recvfrom(65535)
print(f"got {data.decode()} from {addr[0]}:{addr[1]}", flush=True)
"#;

#[test]
fn arp_resolves_the_kernel() {
    require_kernel!("python3");
    let rig = Rig::tap("arp", DriverOptions::default());
    let (mut child, rx) = rig.python_listener(LISTENER);

    assert_eq!(
        rig.driver().with(|i| i.neighbor(KERNEL)),
        None,
        "nothing resolved yet"
    );
    let sock = UdpSocket::bind(rig.driver(), (TAPIR, 4321)).unwrap();
    sock.send_to(b"hello-from-tapir", (KERNEL, 5555)).unwrap();
    let got = rx.recv_timeout(Duration::from_secs(5));
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(got.as_deref(), Ok("got hello-from-tapir from 10.77.0.2:4321"));

    let resolved = rig
        .driver()
        .with(|i| i.neighbor(KERNEL))
        .expect("kernel's MAC resolved");
    assert_eq!(resolved.0, rig.kernel_mac, "neighbor entry vs TAP MAC");
    let json = rig.exec_ok(&["ip", "-j", "link", "show", TAP], 10);
    assert_eq!(
        mac_from_ip_json(&json),
        Some(resolved.0),
        "neighbor entry vs `ip link`: {json}"
    );
    let s = rig.driver().stats();
    assert!(s.arp_requests_tx >= 1 && s.arp_replies_rx >= 1, "{s}");
}

/// A python listener that reports the TOS byte (IP_RECVTOS) of each of
/// the two datagrams it gets, and their lengths.
const TOS_LISTENER: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
s.bind(("10.77.0.1", 5556))
s.settimeout(5.0)
print("ready", flush=True)
for _ in range(2):
    data, cmsgs, _, _ = s.recvmsg(65535, socket.CMSG_SPACE(1))
    tos = [c[2][0] for c in cmsgs if c[0] == socket.IPPROTO_IP and c[1] == socket.IP_TOS]
    print(f"len {len(data)} tos {tos}", flush=True)
"#;

/// IP_TOS on a tapir UDP socket marks what the kernel receives, a
/// fragmented datagram too (the kernel reports the first fragment's TOS),
/// with the ECN field the application chose.
#[test]
fn udp_ip_tos_reaches_the_kernel() {
    require_kernel!("python3");
    let rig = Rig::tap("udptos", DriverOptions::default());
    let (mut child, rx) = rig.python_listener(TOS_LISTENER);
    let sock = UdpSocket::bind(rig.driver(), (TAPIR, 4322)).unwrap();
    sock.set_tos(0xb9).unwrap();
    assert_eq!(sock.tos().unwrap(), 0xb9);
    sock.send_to(b"marked", (KERNEL, 5556)).unwrap();
    sock.send_to(&[1; 3000], (KERNEL, 5556)).unwrap();
    let got: Vec<_> = (0..2).map(|_| rx.recv_timeout(Duration::from_secs(5))).collect();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        got,
        [
            Ok("len 6 tos [185]".to_string()),
            Ok("len 3000 tos [185]".to_string())
        ]
    );
    assert!(
        rig.driver().stats().ipv4_frags_tx >= 2,
        "the second was fragmented"
    );
}

#[test]
fn ping_over_af_packet_veth() {
    require_kernel!("ping");
    let ns = NetNs::create("veth").expect("create netns");
    ns.veth_pair("veth-k", "veth-t", Some((KERNEL, 24)))
        .unwrap_or_else(|e| panic!("netns {}: veth: {e}", ns.name()));
    let dev = ns
        .run_in(|| PacketDevice::open("veth-t"))
        .expect("enter netns")
        .unwrap_or_else(|e| panic!("netns {}: AF_PACKET: {e}", ns.name()));
    // tapir takes veth-t's MAC, like a host owning a NIC.
    let mac = EthernetAddress(dev.mac().expect("veth-t MAC"));
    assert_eq!(dev.mtu(), Some(1500));
    let iface = stack(mac, dev.mtu());
    let driver = Driver::spawn(iface, Box::new(dev), DriverOptions::default()).expect("spawn");
    let kernel_json = ns
        .exec(&["ip", "-j", "link", "show", "veth-k"])
        .and_then(check_status)
        .expect("ip link");
    let kernel_mac = mac_from_ip_json(&String::from_utf8_lossy(&kernel_json.stdout)).expect("veth-k MAC");
    let rig = Rig {
        driver: Some(driver),
        kernel_mac,
        ns,
    };

    let out = rig.exec_ok(
        &["ping", "-n", "-c", "5", "-i", "0.2", "-W", "2", "10.77.0.2"],
        20,
    );
    assert_ping_clean(&out, 5);
    let s = rig.driver().stats();
    assert!(s.icmp_echo_replies_tx >= 5, "{s}");
    // Our own transmissions must not come back to us.
    assert_eq!(s.eth_own_source, 0, "{s}");
    assert_eq!(
        rig.driver().with(|i| i.neighbor(KERNEL)).map(|m| m.0),
        Some(rig.kernel_mac)
    );
}

fn count_lines(tool_out: &Output) -> usize {
    String::from_utf8_lossy(&tool_out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

#[test]
fn pcap_capture_opens_in_tshark() {
    require_kernel!("ping");
    let reader = ["tshark", "tcpdump"]
        .into_iter()
        .find(|p| tapir_harness::netns::have_program(p));
    let Some(reader) = reader else {
        if tapir_harness::netns::kernel_required() {
            panic!("pcap test needs tshark or tcpdump and TAPIR_REQUIRE_KERNEL=1");
        }
        tapir_harness::netns::skip_notice(
            "pcap_capture_opens_in_tshark: neither tshark nor tcpdump installed",
        );
        return;
    };
    let path: PathBuf = std::env::temp_dir().join(format!("tapir-kernel-{}.pcap", std::process::id()));
    let mut rig = Rig::tap("pcap", DriverOptions::with_pcap(&path));
    let out = rig.exec_ok(
        &["ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", "10.77.0.2"],
        20,
    );
    assert_ping_clean(&out, 3);
    // Shut down to complete the file; keep the counters.
    let stats = rig.driver.take().expect("driver").shutdown().stats().clone();

    let file = path.to_str().expect("utf-8 temp path");
    let run = |args: &[&str]| {
        tapir_harness::netns::output_with_timeout(
            std::process::Command::new(reader).args(args),
            Duration::from_secs(30),
        )
        .and_then(check_status)
        .unwrap_or_else(|e| panic!("{reader} {args:?}: {e}"))
    };
    let (all, icmp, arp) = if reader == "tshark" {
        (
            run(&["-n", "-r", file]),
            run(&["-n", "-r", file, "-Y", "icmp"]),
            run(&["-n", "-r", file, "-Y", "arp"]),
        )
    } else {
        (
            run(&["-n", "-r", file]),
            run(&["-n", "-r", file, "icmp"]),
            run(&["-n", "-r", file, "arp"]),
        )
    };
    let (all, icmp, arp) = (count_lines(&all), count_lines(&icmp), count_lines(&arp));
    assert_eq!(icmp, 6, "3 echo requests + 3 replies");
    assert!(arp >= 2, "the kernel's ARP request and tapir's reply: {arp}");
    assert_eq!(
        all as u64,
        stats.rx_frames + stats.tx_frames,
        "every frame in and out is in the file"
    );
    assert!(all >= 8);
    std::fs::remove_file(&path).expect("remove pcap");
}

/// `NetNs::spawn_ready`: the first line must be the one asked for; the
/// later ones come through the channel; anything else first is an error
/// that says what the program printed and its stderr.
#[test]
fn spawn_ready_waits_for_the_first_line() {
    require_kernel!("sh");
    let ns = tapir_harness::NetNs::create("ready").expect("create netns");
    let (mut child, lines) = ns
        .spawn_ready(
            &["sh", "-c", "echo ready; echo next"],
            "ready",
            Duration::from_secs(10),
        )
        .expect("ready");
    assert_eq!(lines.recv_timeout(Duration::from_secs(10)).as_deref(), Ok("next"));
    child.wait().expect("wait");
    let err = ns
        .spawn_ready(
            &["sh", "-c", "echo nope; echo why >&2"],
            "ready",
            Duration::from_secs(10),
        )
        .expect_err("not ready");
    let msg = err.to_string();
    assert!(msg.contains("nope") && msg.contains("why"), "{msg}");
}
