//! Issue 11's kernel test: 50 MB each way between a kernel TCP socket and
//! tapir through the link emulator at 5 % loss with reordering and
//! duplication, sha256 equal on both ends.
//!
//! The namespace holds a TAP: the kernel at 10.77.0.1, tapir at 10.77.0.2
//! behind an [`ImpairedDevice`] (what `tapir up --impair` runs), which
//! impairs both directions, so the kernel's segments and tapir's are lost,
//! held back and doubled alike. The kernel peer is a python script in the
//! namespace. Without CAP_NET_ADMIN the tests print `SKIPPED: ...` and
//! pass; with `TAPIR_REQUIRE_KERNEL=1` they fail instead. Every wait is
//! bounded; a failure prints tapir's counters and the emulator's.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddrV4};
use std::process::Child;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tapir_harness::{
    require_kernel, Driver, DriverHandle, DriverOptions, ImpairedDevice, NetNs, TapDevice, TapOptions,
    TcpListener, TcpStream,
};
use tapir_stack::impair::{LinkStats, Spec};
use tapir_stack::wire::{EthernetAddress, Ipv4Cidr};
use tapir_stack::{Config, Interface};

const KERNEL: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const TAPIR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

/// Bytes each way.
const BYTES: usize = 50 << 20;

/// Both directions, each with its own seed: 1 ms each way keeps the
/// bandwidth-delay product (and so the time for 50 MB) small.
const LINK: &str = "delay=1ms,loss=5%,reorder=3%,dup=2%";

/// A transfer that takes longer than this fails. Measured in the
/// opt-level=1 test build on this 2-core machine: kernel -> tapir about
/// 3 s; tapir -> kernel 91-95 s, of which about 58 s are some 230
/// silences of 150 ms or more: tapir waiting for its retransmission timer
/// (200 ms at least, on a 3 ms path), mostly after a lost retransmission,
/// which RACK-TLP would detect within a round trip.
const TRANSFER_LIMIT: Duration = Duration::from_secs(240);

/// tapir on an impaired TAP in its own namespace.
struct Rig {
    driver: Option<DriverHandle>,
    ns: NetNs,
    stats: Arc<Mutex<(LinkStats, LinkStats)>>,
}

impl Rig {
    fn new(tag: &str, seed: u64) -> Rig {
        let ns = NetNs::create(tag).expect("create netns");
        let tap = ns
            .run_in(|| TapDevice::open(&TapOptions::new("tap0").kernel_ipv4(KERNEL, 24)))
            .expect("enter netns")
            .unwrap_or_else(|e| panic!("netns {}: open TAP: {e}", ns.name()));
        let mut config = Config::new(
            EthernetAddress::local_from_seed(seed),
            Ipv4Cidr::new(TAPIR, 24).expect("prefix"),
        );
        if let Some(mtu) = tapir_harness::Device::mtu(&tap) {
            config.mtu = mtu;
        }
        let spec = |s: u64| -> Spec { format!("{LINK},seed={s}").parse().expect("valid spec") };
        let dev = ImpairedDevice::new(tap, &spec(seed), &spec(seed + 1)).expect("emulator");
        let stats = dev.stats_handle();
        let iface = Interface::new(config).expect("valid config");
        // TAPIR_IMPAIR_PCAP=DIR records what tapir sent and received (after
        // the emulator) in DIR/<tag>.pcap.
        let opts = DriverOptions {
            pcap: std::env::var_os("TAPIR_IMPAIR_PCAP")
                .map(|d| std::path::Path::new(&d).join(format!("{tag}.pcap"))),
            ..Default::default()
        };
        let driver = Driver::spawn(iface, Box::new(dev), opts).expect("spawn driver");
        Rig {
            driver: Some(driver),
            ns,
            stats,
        }
    }

    fn driver(&self) -> &DriverHandle {
        self.driver.as_ref().expect("driver running")
    }

    /// What the emulator did: (towards tapir, from tapir).
    fn link(&self) -> String {
        let (rx, tx) = self.stats.lock().unwrap().clone();
        format!("emulator towards tapir: {rx}\nemulator from tapir: {tx}")
    }

    /// Start a python script that prints `ready` once it listens (or at
    /// once, for a client); returns the child and its later stdout lines.
    fn python(&self, script: &str, args: &[&str], wait_ready: bool) -> (Child, mpsc::Receiver<String>) {
        let mut cmd = vec!["python3", "-c", script];
        cmd.extend_from_slice(args);
        let mut child = self.ns.spawn(&cmd).expect("spawn python");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        if wait_ready {
            let ready = rx.recv_timeout(Duration::from_secs(10));
            if ready.as_deref() != Ok("ready") {
                let err = stop(child);
                panic!("python did not start: {ready:?}\n{err}");
            }
        }
        (child, rx)
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
            eprintln!("{}", self.link());
        }
    }
}

/// Kill a child we started (by its handle), reap it, return its stderr.
fn stop(mut child: Child) -> String {
    let _ = child.kill();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let _ = child.wait();
    err
}

/// Wait (bounded) for a child to exit on its own; kill it past that.
fn finish(mut child: Child, within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(s)) if s.success() => return Ok(()),
            Ok(Some(s)) => return Err(format!("python exited with {s}: {}", stop(child))),
            _ => thread::sleep(Duration::from_millis(20)),
        }
    }
    Err(format!("python still running, killed: {}", stop(child)))
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The kernel connects to tapir and sends `sys.argv[1]` bytes of seeded
/// random data; prints "<bytes> <sha256>" of what it sent.
const KERNEL_SENDER: &str = r#"
import hashlib, random, socket, sys
n = int(sys.argv[1])
data = random.Random(11).randbytes(n)
c = socket.create_connection(("10.77.0.2", 5001), timeout=240)
c.sendall(data)
c.shutdown(socket.SHUT_WR)
c.recv(1)
print(n, hashlib.sha256(data).hexdigest(), flush=True)
"#;

/// The kernel listens; prints "<bytes> <sha256>" of what tapir sent.
const KERNEL_RECEIVER: &str = r#"
import hashlib, socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.77.0.1", 5002))
s.listen(1)
s.settimeout(30)
print("ready", flush=True)
c, _ = s.accept()
c.settimeout(240)
h, n = hashlib.sha256(), 0
while True:
    d = c.recv(1 << 16)
    if not d:
        break
    h.update(d)
    n += len(d)
c.close()
print(n, h.hexdigest(), flush=True)
"#;

#[test]
fn kernel_sends_50_mb_to_tapir_through_5_percent_loss_reordering_and_duplication() {
    require_kernel!("python3");
    let rig = Rig::new("imp50in", 21);
    let listener = TcpListener::bind(&rig.driver().stack(), SocketAddrV4::new(TAPIR, 5001)).expect("listen");
    let start = Instant::now();
    let (child, lines) = rig.python(KERNEL_SENDER, &[&BYTES.to_string()], false);
    let (s, _) = listener
        .accept_timeout(Duration::from_secs(30))
        .expect("the kernel connects");
    s.set_read_timeout(Some(TRANSFER_LIMIT)).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0usize;
    loop {
        match (&s).read(&mut buf) {
            Ok(0) => break,
            Ok(k) => {
                h.update(&buf[..k]);
                n += k;
            }
            Err(e) => panic!("reading after {n} bytes in {:?}: {e}", start.elapsed()),
        }
        assert!(
            start.elapsed() < TRANSFER_LIMIT,
            "{n} bytes in {TRANSFER_LIMIT:?}"
        );
    }
    let elapsed = start.elapsed();
    // One byte back tells the sender everything arrived; then both close.
    (&s).write_all(b"k").expect("answer");
    let stats = s.stats().expect("stats");
    s.shutdown(Shutdown::Write).ok();
    let sent = lines
        .recv_timeout(Duration::from_secs(30))
        .expect("the sender's hash");
    finish(child, Duration::from_secs(10)).expect("sender exits");
    let got = format!("{n} {}", hex(&h.finalize()));
    eprintln!(
        "kernel -> tapir: {} MiB in {elapsed:.1?} ({:.1} Mbit/s)\n  tapir: {stats}\n{}",
        BYTES >> 20,
        BYTES as f64 * 8.0 / elapsed.as_secs_f64() / 1e6,
        rig.link()
    );
    assert_eq!(got, sent, "tapir received other bytes than the kernel sent");
    assert!(sent.starts_with(&format!("{BYTES} ")), "{sent}");
    assert_impaired(&rig);
}

#[test]
fn tapir_sends_50_mb_to_the_kernel_through_5_percent_loss_reordering_and_duplication() {
    require_kernel!("python3");
    let rig = Rig::new("imp50out", 31);
    let (child, lines) = rig.python(KERNEL_RECEIVER, &[], true);
    let start = Instant::now();
    let s = TcpStream::connect_timeout(
        &rig.driver().stack(),
        &SocketAddrV4::new(KERNEL, 5002).into(),
        Duration::from_secs(30),
    )
    .expect("connect to the kernel");
    s.set_write_timeout(Some(TRANSFER_LIMIT)).unwrap();
    // xorshift bytes, so the data is not one repeated block.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut buf = vec![0u8; 64 * 1024];
    let mut h = Sha256::new();
    let mut sent = 0usize;
    while sent < BYTES {
        for w in buf.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
        let n = buf.len().min(BYTES - sent);
        h.update(&buf[..n]);
        (&s).write_all(&buf[..n])
            .unwrap_or_else(|e| panic!("sending after {sent} bytes in {:?}: {e}", start.elapsed()));
        sent += n;
    }
    s.shutdown(Shutdown::Write).expect("shutdown");
    let got = lines
        .recv_timeout(TRANSFER_LIMIT.saturating_sub(start.elapsed()))
        .unwrap_or_else(|e| panic!("no hash from the kernel within {TRANSFER_LIMIT:?}: {e}"));
    let elapsed = start.elapsed();
    let stats = s.stats().expect("stats");
    finish(child, Duration::from_secs(10)).expect("receiver exits");
    let want = format!("{BYTES} {}", hex(&h.finalize()));
    eprintln!(
        "tapir -> kernel: {} MiB in {elapsed:.1?} ({:.1} Mbit/s)\n  tapir: {stats}\n{}",
        BYTES >> 20,
        BYTES as f64 * 8.0 / elapsed.as_secs_f64() / 1e6,
        rig.link()
    );
    assert_eq!(got, want, "the kernel received other bytes than tapir sent");
    assert_impaired(&rig);
}

/// The emulator did impair, both ways: every kind of event happened.
fn assert_impaired(rig: &Rig) {
    let (rx, tx) = rig.stats.lock().unwrap().clone();
    for (name, s) in [("towards tapir", &rx), ("from tapir", &tx)] {
        assert!(
            s.lost > 100 && s.reordered > 50 && s.duplicated > 20 && s.is_balanced(),
            "{name}: {s}"
        );
    }
}
