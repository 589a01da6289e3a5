//! tapir against the Linux kernel's TCP under unusual kernel settings.
//!
//! Each test makes its own network namespace, sets per-namespace TCP
//! sysctls there before any traffic (timestamps, SACK or window scaling
//! off, ECN requested, tiny socket buffers, MTU probing) or gives the TAP a
//! small MTU, and runs tapir's HTTP server on the TAP against the kernel's
//! curl: a GET of a few MB checked by sha256 against the `/bytes` pattern
//! and a POST of 1 MB of noise to `/echo` checked the same way. tapir also
//! opens a connection itself, to a python echo server on the kernel side,
//! so that both the SYN-ACK tapir sends and the one it receives are
//! covered, and reads its own connection state there.
//!
//! The driver records a pcap, which tshark decodes, and the test asserts on
//! what was negotiated and sent: options in the SYN and SYN-ACK, ECN bits,
//! segment and frame sizes, that tapir sends no new data beyond the
//! window the kernel offered and drops no in-order data inside the window
//! it offered itself. Assertions are on content and state, never on
//! timing.
//! `TAPIR_KEEP_CAPTURE=1` keeps the captures of passing tests too.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use tapir_apps::http::server::tapir_acceptor;
use tapir_apps::http::{pattern, HttpServer, ServerConfig};
use tapir_apps::tput::Sha256;
use tapir_harness::netns::{output_with_timeout, stdout_lines};
use tapir_harness::{
    require_kernel, Device, Driver, DriverHandle, DriverOptions, NetNs, TapDevice, TapOptions, TcpStream,
};
use tapir_stack::wire::{EthernetAddress, Ipv4Cidr};
use tapir_stack::{Config, Interface, Stats, TcpConnStats, TcpState};

const KERNEL: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const TAPIR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const TAPIR_MAC: [u8; 6] = [0x02, 0, 10, 77, 0, 2];
/// tapir's HTTP server.
const HTTP_PORT: u16 = 8080;
/// The kernel-side echo server tapir connects to.
const ECHO_PORT: u16 = 9000;
const BASE: &str = "http://10.77.0.2:8080";
const GET_BYTES: usize = 3_000_000;
const POST_BYTES: usize = 1 << 20;
const ECHO_BYTES: usize = 1 << 20;
/// The slow reader's GET (tiny-buffer scenario): python stops reading
/// for 0.4 s a few times, so the kernel's 4 KiB receive buffer fills and
/// its window closes, or opens by less than a segment; tapir's sender must
/// wait, then carry on from the kernel's window update or its own persist
/// (override) timer, which fires within such a pause.
const SLOW_BYTES: usize = 300_000;
const SLOW_READER: &str = r#"
import hashlib, socket, sys, time
n = int(sys.argv[1])
s = socket.create_connection(("10.77.0.2", 8080), timeout=30)
s.sendall(b"GET /bytes/%d HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % n)
data = b""
for _ in range(3):
    time.sleep(0.4)
    want = len(data) + 50000
    while len(data) < want:
        d = s.recv(65536)
        if not d:
            break
        data += d
while True:
    d = s.recv(65536)
    if not d:
        break
    data += d
head, _, body = data.partition(b"\r\n\r\n")
assert head.startswith(b"HTTP/1.1 200"), head[:100]
assert len(body) == n, (len(body), n)
print(hashlib.sha256(body).hexdigest())
"#;

// TCP option kinds (RFC 9293 3.2, RFC 7323, RFC 2018).
const OPT_MSS: u8 = 2;
const OPT_WSCALE: u8 = 3;
const OPT_SACK_PERM: u8 = 4;
const OPT_SACK: u8 = 5;
const OPT_TIMESTAMP: u8 = 8;

// TCP flag bits as tshark prints them in tcp.flags.
const FIN: u16 = 0x01;
const SYN: u16 = 0x02;
const ACK: u16 = 0x10;
const ECE: u16 = 0x40;
const CWR: u16 = 0x80;

/// The kernel side of the active-open check: echo one connection until
/// EOF, then close.
const ECHO_SERVER: &str = r#"
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.77.0.1", 9000))
s.listen(1)
s.settimeout(30)
print("ready", flush=True)
c, _ = s.accept()
c.settimeout(30)
n = 0
while True:
    d = c.recv(65536)
    if not d:
        break
    c.sendall(d)
    n += len(d)
c.close()
print(n, flush=True)
"#;

/// One kernel-settings scenario: sysctls for the namespace, the TAP's MTU
/// if not the default, and whether to add a slow reader.
struct Scenario {
    tag: &'static str,
    sysctls: &'static [(&'static str, &'static str)],
    mtu: Option<u16>,
    slow_reader: bool,
}

impl Scenario {
    fn new(tag: &'static str, sysctls: &'static [(&'static str, &'static str)]) -> Scenario {
        Scenario {
            tag,
            sysctls,
            mtu: None,
            slow_reader: false,
        }
    }
}

/// What a scenario leaves to check.
struct Outcome {
    cap: Capture,
    /// tapir's counters at the end.
    stats: Stats,
    /// tapir's own view of the connection it opened, read after the echo
    /// came back and before it closed.
    active: TcpConnStats,
}

/// tapir in a namespace configured by a [`Scenario`], serving HTTP on 8080
/// and capturing every frame.
struct Rig {
    server: Option<HttpServer>,
    driver: Option<DriverHandle>,
    dir: PathBuf,
    pcap: PathBuf,
    mtu: usize,
    // Last, so the namespace goes after the driver and server are gone.
    ns: NetNs,
}

impl Rig {
    fn new(sc: &Scenario) -> Rig {
        let ns = NetNs::create(sc.tag).expect("create netns");
        for (key, value) in sc.sysctls {
            let o = exec(&ns, &["sysctl", "-q", "-w", &format!("{key}={value}")], 10);
            assert!(
                o.status.success(),
                "netns {}: sysctl {key}={value}: {}",
                ns.name(),
                String::from_utf8_lossy(&o.stderr)
            );
            // Read it back: the setting must really be per-namespace and
            // in force before the first SYN.
            let o = exec(&ns, &["sysctl", "-n", key], 10);
            let got = String::from_utf8_lossy(&o.stdout);
            assert_eq!(
                got.split_whitespace().collect::<Vec<_>>(),
                value.split_whitespace().collect::<Vec<_>>(),
                "netns {}: {key} reads back as {got:?}",
                ns.name()
            );
        }
        let mut opts = TapOptions::new("tap0").kernel_ipv4(KERNEL, 24);
        if let Some(mtu) = sc.mtu {
            opts = opts.mtu(mtu);
        }
        let tap = ns
            .run_in(|| TapDevice::open(&opts))
            .expect("enter netns")
            .unwrap_or_else(|e| panic!("netns {}: open TAP: {e}", ns.name()));
        let mtu = tap.mtu().expect("a TAP knows its MTU");
        if let Some(want) = sc.mtu {
            assert_eq!(mtu, usize::from(want), "TAP MTU");
        }
        let mut cfg = Config::new(
            EthernetAddress(TAPIR_MAC),
            Ipv4Cidr::new(TAPIR, 24).expect("prefix"),
        );
        // tapir's IP MTU is the link's: both ends of the TAP agree.
        cfg.mtu = mtu;
        let iface = Interface::new(cfg).expect("config");
        let dir = std::env::temp_dir().join(format!("tapir-ks-{}-{}", sc.tag, std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let pcap = dir.join("tapir.pcap");
        let driver = Driver::spawn(iface, Box::new(tap), DriverOptions::with_pcap(&pcap)).expect("driver");
        let stack = driver.stack();
        let listener = tapir_harness::TcpListener::bind(&stack, ("0.0.0.0", HTTP_PORT)).expect("listen");
        let server =
            HttpServer::spawn("http", ServerConfig::default(), tapir_acceptor(listener)).expect("server");
        Rig {
            server: Some(server),
            driver: Some(driver),
            dir,
            pcap,
            mtu,
            ns,
        }
    }

    /// Run a shell command in the namespace that must succeed; its stdout.
    fn sh(&self, script: &str, secs: u64) -> String {
        let o = exec(&self.ns, &["sh", "-c", script], secs);
        assert!(
            o.status.success(),
            "netns {}: {script} failed ({}):\n{}\n{}",
            self.ns.name(),
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// curl GET of `/bytes/n`, checked against the pattern.
    fn get(&self, n: usize) {
        let out = self.sh(
            &format!("curl -sS --max-time 40 {BASE}/bytes/{n} | sha256sum"),
            45,
        );
        assert_eq!(
            first_word(&out),
            Sha256::hex(&pattern(n)),
            "GET /bytes/{n} in netns {}",
            self.ns.name()
        );
    }

    /// A GET of SLOW_BYTES by a reader that pauses.
    fn slow_get(&self) {
        let o = exec(
            &self.ns,
            &["python3", "-c", SLOW_READER, &SLOW_BYTES.to_string()],
            40,
        );
        assert!(
            o.status.success(),
            "slow reader: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(
            first_word(&String::from_utf8_lossy(&o.stdout)),
            Sha256::hex(&pattern(SLOW_BYTES)),
            "slow GET /bytes/{SLOW_BYTES}"
        );
    }

    /// curl POST of noise to `/echo`, checked by sha256.
    fn post(&self) {
        let data = noise(POST_BYTES, 0x7a91_5eed);
        let upload = self.dir.join("upload.bin");
        std::fs::write(&upload, &data).unwrap();
        let out = self.sh(
            &format!(
                "curl -sS --max-time 40 --data-binary @{} {BASE}/echo | sha256sum",
                upload.display()
            ),
            45,
        );
        assert_eq!(
            first_word(&out),
            Sha256::hex(&data),
            "POST {POST_BYTES} B to /echo in netns {}",
            self.ns.name()
        );
    }

    /// tapir connects to a python echo server on the kernel side, writes
    /// ECHO_BYTES of noise while reading the echo on another thread, and
    /// checks it byte for byte. Its connection state, read once all bytes
    /// are back, is the result.
    fn echo_from_tapir(&self) -> TcpConnStats {
        let mut child = self
            .ns
            .spawn(&["python3", "-c", ECHO_SERVER])
            .expect("spawn python3");
        let lines = stdout_lines(&mut child);
        let reaped = Reaper(Some(child));
        match lines.recv_timeout(Duration::from_secs(20)) {
            Ok(l) if l == "ready" => {}
            other => panic!("echo server did not start: {other:?}"),
        }
        let stack = self.driver.as_ref().expect("driver").stack();
        let stream = TcpStream::connect(&stack, (KERNEL, ECHO_PORT)).expect("tapir connects to the kernel");
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        stream.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
        let data = noise(ECHO_BYTES, 0x51de_cafe);
        let writer = {
            let mut w = stream.try_clone().unwrap();
            let data = data.clone();
            std::thread::spawn(move || -> std::io::Result<()> {
                w.write_all(&data)?;
                w.shutdown(Shutdown::Write)
            })
        };
        let mut got = vec![0u8; ECHO_BYTES];
        (&stream)
            .read_exact(&mut got)
            .unwrap_or_else(|e| panic!("reading the echo: {e}; tapir's connection: {:?}", stream.stats()));
        writer.join().unwrap().expect("write to the echo server");
        assert!(got == data, "the echo differs from what tapir sent");
        let stats = stream.stats().expect("connection state");
        let mut rest = Vec::new();
        (&stream).read_to_end(&mut rest).expect("read to EOF");
        assert!(rest.is_empty(), "{} bytes after the echo", rest.len());
        drop(stream);
        let line = lines.recv_timeout(Duration::from_secs(20));
        assert_eq!(
            line.as_deref(),
            Ok(ECHO_BYTES.to_string().as_str()),
            "echo server's count"
        );
        drop(reaped);
        stats
    }

    /// A counter of the kernel's side of the TAP.
    fn tap_counter(&self, name: &str) -> u64 {
        let o = exec(
            &self.ns,
            &["cat", &format!("/sys/class/net/tap0/statistics/{name}")],
            10,
        );
        String::from_utf8_lossy(&o.stdout).trim().parse().unwrap_or(0)
    }

    /// Stop the server and the driver (completing the pcap), decode the
    /// capture and check what every scenario must hold.
    fn finish(mut self, active: TcpConnStats) -> Outcome {
        if let Some(s) = self.server.take() {
            s.stop_within(Duration::from_millis(500));
        }
        let tx_dropped = self.tap_counter("tx_dropped");
        let stats = self.driver.take().expect("driver").shutdown().stats().clone();
        let cap = Capture::read(&self.pcap);
        eprintln!(
            "netns {}: kernel dropped {tx_dropped} frames at the TAP queue; tapir's connection: {active}",
            self.ns.name()
        );
        cap.check_common(self.mtu);
        check_active_state(&cap, &active, self.mtu);
        // Passed: the capture is not needed any more, unless asked for.
        if std::env::var_os("TAPIR_KEEP_CAPTURE").is_some() {
            eprintln!("capture kept at {}", self.pcap.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        Outcome { cap, stats, active }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop_within(Duration::from_millis(500));
        }
        let stats = self.driver.take().map(|d| d.shutdown().stats().to_string());
        if std::thread::panicking() {
            eprintln!(
                "kernel test failed in netns {}; capture kept at {}",
                self.ns.name(),
                self.pcap.display()
            );
            if let Some(s) = stats {
                eprintln!("tapir counters:\n{s}");
            }
        }
    }
}

/// Kills and reaps a child on drop (a no-op once it has exited).
struct Reaper(Option<Child>);

impl Drop for Reaper {
    fn drop(&mut self) {
        let Some(mut c) = self.0.take() else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

fn exec(ns: &NetNs, cmd: &[&str], secs: u64) -> Output {
    ns.exec_timeout(cmd, Duration::from_secs(secs))
        .unwrap_or_else(|e| panic!("netns {}: {cmd:?}: {e}", ns.name()))
}

fn first_word(s: &str) -> &str {
    s.split_whitespace().next().unwrap_or_default()
}

/// Deterministic pseudo-random bytes (not the /bytes pattern).
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The capture, as tshark decodes it.

/// One TCP segment from the capture.
#[derive(Debug, Clone)]
struct Segment {
    frame: u64,
    from_tapir: bool,
    /// The IP ECN field (RFC 3168 5).
    ecn: u8,
    frame_len: usize,
    flags: u16,
    seq: u32,
    ack: u32,
    len: u32,
    hdr_len: u32,
    /// The window field as sent, unscaled.
    win: u32,
    options: Vec<u8>,
    mss: Option<u32>,
    wscale: Option<u8>,
}

impl Segment {
    fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }

    fn has_option(&self, kind: u8) -> bool {
        self.options.contains(&kind)
    }
}

/// A connection's segments in capture order: the order tapir saw and sent
/// them (frames in are recorded before the stack handles them, frames out
/// as they leave).
#[derive(Debug)]
struct Conn {
    tapir_port: u16,
    kernel_port: u16,
    segments: Vec<Segment>,
}

impl Conn {
    fn name(&self) -> String {
        format!("tapir :{} <-> kernel :{}", self.tapir_port, self.kernel_port)
    }

    /// Whether tapir opened it (sent the SYN).
    fn active(&self) -> bool {
        self.tapir_port != HTTP_PORT
    }

    /// The first SYN (without ACK).
    fn syn(&self) -> &Segment {
        self.segments
            .iter()
            .find(|s| s.has(SYN) && !s.has(ACK))
            .unwrap_or_else(|| panic!("{}: no SYN captured", self.name()))
    }

    /// The first SYN-ACK.
    fn syn_ack(&self) -> &Segment {
        self.segments
            .iter()
            .find(|s| s.has(SYN) && s.has(ACK))
            .unwrap_or_else(|| panic!("{}: no SYN-ACK captured", self.name()))
    }

    /// The kernel's half of the handshake: its SYN or its SYN-ACK.
    fn kernel_hs(&self) -> &Segment {
        if self.active() {
            self.syn_ack()
        } else {
            self.syn()
        }
    }

    /// tapir's half of the handshake.
    fn tapir_hs(&self) -> &Segment {
        if self.active() {
            self.syn()
        } else {
            self.syn_ack()
        }
    }

    /// Whether both SYNs carried option `kind`.
    fn negotiated(&self, kind: u8) -> bool {
        self.syn().has_option(kind) && self.syn_ack().has_option(kind)
    }

    fn by_tapir(&self) -> impl Iterator<Item = &Segment> {
        self.segments.iter().filter(|s| s.from_tapir)
    }

    fn by_kernel(&self) -> impl Iterator<Item = &Segment> {
        self.segments.iter().filter(|s| !s.from_tapir)
    }

    /// Payload bytes tapir sent (retransmissions included).
    fn tapir_payload(&self) -> u64 {
        self.by_tapir().map(|s| u64::from(s.len)).sum()
    }

    /// Payload bytes the kernel sent.
    fn kernel_payload(&self) -> u64 {
        self.by_kernel().map(|s| u64::from(s.len)).sum()
    }

    /// The shift the kernel's windows are scaled by (RFC 7323 2.2: only
    /// if both SYNs carried the option; never in a SYN).
    fn kernel_shift(&self) -> u8 {
        if self.negotiated(OPT_WSCALE) {
            self.kernel_hs().wscale.expect("WS option has a shift")
        } else {
            0
        }
    }

    /// The kernel's windows as byte counts, after its SYN.
    fn kernel_windows(&self) -> impl Iterator<Item = u64> + '_ {
        let shift = self.kernel_shift();
        self.by_kernel()
            .filter(|s| !s.has(SYN) && s.has(ACK))
            .map(move |s| u64::from(s.win) << shift)
    }

    /// The windows tapir advertised, unscaled as on the wire.
    fn tapir_raw_windows(&self) -> impl Iterator<Item = u32> + '_ {
        self.by_tapir().filter(|s| !s.has(SYN)).map(|s| s.win)
    }

    /// Checks for any connection, whatever the settings.
    fn check(&self, mtu: usize) {
        let name = self.name();
        let (syn, syn_ack) = (self.syn(), self.syn_ack());
        assert_eq!(syn.from_tapir, self.active(), "{name}: who sent the SYN");
        assert_eq!(syn_ack.from_tapir, !self.active(), "{name}: who sent the SYN-ACK");

        // RFC 7323 3.2, RFC 2018 2, RFC 7323 2.2: a SYN-ACK offers nothing
        // the SYN did not.
        for kind in [OPT_TIMESTAMP, OPT_SACK_PERM, OPT_WSCALE] {
            if syn_ack.has_option(kind) {
                assert!(
                    syn.has_option(kind),
                    "{name}: SYN-ACK (frame {}) carries option {kind} the SYN did not offer",
                    syn_ack.frame
                );
            }
        }
        // RFC 9293 3.7.1: MSS options describe the link both ends share.
        let link_mss = (mtu - 40) as u32;
        assert_eq!(syn.mss, Some(link_mss), "{name}: SYN MSS");
        assert_eq!(syn_ack.mss, Some(link_mss), "{name}: SYN-ACK MSS");
        // RFC 3168 6.1.1: tapir does not do ECN, so it never sends a SYN or
        // SYN-ACK with ECE or CWR, whatever the SYN asked for, nor marks
        // ECT on what it sends.
        for s in self.by_tapir() {
            assert!(
                !s.has(ECE) && !s.has(CWR),
                "{name}: tapir frame {} has ECE/CWR (flags {:#x})",
                s.frame,
                s.flags
            );
            assert_eq!(s.ecn, 0, "{name}: tapir frame {} has IP ECN bits", s.frame);
        }

        // Options that were not negotiated do not appear later (RFC 7323
        // 3.2: TS in every segment if both SYNs had it, else none; RFC 2018
        // 3: SACK blocks only after SACK-permitted).
        let ts = self.negotiated(OPT_TIMESTAMP);
        let sack = self.negotiated(OPT_SACK_PERM);
        for s in self.segments.iter().filter(|s| !s.has(SYN)) {
            let who = if s.from_tapir { "tapir" } else { "kernel" };
            // An RST from the kernel may lack TS (RFC 7323 3.2 allows it).
            if s.flags & 0x04 == 0 {
                assert_eq!(
                    s.has_option(OPT_TIMESTAMP),
                    ts,
                    "{name}: {who} frame {} timestamp option vs negotiated {ts}",
                    s.frame
                );
            }
            if !sack {
                assert!(
                    !s.has_option(OPT_SACK),
                    "{name}: {who} frame {} has SACK blocks without SACK-permitted",
                    s.frame
                );
            }
        }

        // Sizes: frames fit the link, and tapir's segments fit the MSS the
        // kernel announced (RFC 9293 3.7.1: Eff.snd.MSS = SendMSS + 20 -
        // TCP header with options).
        let kernel_mss = self.kernel_hs().mss.expect("checked above");
        for s in &self.segments {
            assert!(
                s.frame_len <= mtu + 14,
                "{name}: frame {} is {} bytes on a link of MTU {mtu}",
                s.frame,
                s.frame_len
            );
        }
        for s in self.by_tapir() {
            assert!(
                s.len + s.hdr_len <= kernel_mss + 20,
                "{name}: tapir frame {} carries {} payload + {} header > MSS {kernel_mss} + 20",
                s.frame,
                s.len,
                s.hdr_len
            );
        }

        // RFC 9293 3.8.6: tapir sends no new data beyond the right edge of
        // the kernel's window, SND.UNA + SND.WND, as the RFC has the sender
        // keep it: SND.WND is taken only from segments that pass the
        // SND.WL1/SND.WL2 test of 3.10.7.4, so a reordered old segment
        // does not move it. Retransmissions of what was sent before a
        // window shrank may go beyond (3.8.6: MAY-7).
        let shift = self.kernel_shift();
        let mut una: Option<u32> = None;
        let (mut wnd, mut wl1, mut wl2) = (0u64, 0u32, 0u32);
        let mut sent_end: Option<u32> = None;
        let (mut probes, mut edge_acks) = (0, 0);
        for s in &self.segments {
            if !s.from_tapir {
                if s.has(SYN) {
                    // RFC 7323 2.2: a SYN's window is never scaled.
                    wnd = u64::from(s.win);
                    wl1 = s.seq;
                    if s.has(ACK) {
                        una = Some(s.ack);
                        wl2 = s.ack;
                    }
                    continue;
                }
                if !s.has(ACK) {
                    continue;
                }
                let win = u64::from(s.win) << shift;
                let Some(u) = una.as_mut() else {
                    // The ACK of tapir's SYN-ACK (RFC 9293 3.10.7.4,
                    // SYN-RECEIVED).
                    (una, wnd, wl1, wl2) = (Some(s.ack), win, s.seq, s.ack);
                    continue;
                };
                if seq_lt(*u, s.ack) {
                    *u = s.ack;
                }
                if !seq_lt(s.ack, *u) && (seq_lt(wl1, s.seq) || (wl1 == s.seq && !seq_lt(s.ack, wl2))) {
                    (wnd, wl1, wl2) = (win, s.seq, s.ack);
                }
                continue;
            }
            let Some(u) = una else {
                continue;
            };
            if s.len == 0 {
                // tapir's zero-window probe: no data, SEQ = SND.UNA - 1.
                if s.seq == u.wrapping_sub(1) && !s.has(SYN) {
                    probes += 1;
                } else if sent_end.is_some_and(|e| seq_lt(s.seq, e)) && !s.has(SYN) && !s.has(FIN) {
                    // An ACK below SND.NXT: at the edge of a shrunk window.
                    edge_acks += 1;
                }
                continue;
            }
            let end = s.seq.wrapping_add(s.len);
            if sent_end.is_some_and(|e| !seq_lt(e, end)) {
                continue;
            }
            sent_end = Some(end);
            let edge = u.wrapping_add(wnd as u32);
            assert!(
                !seq_lt(edge, end),
                "{name}: tapir frame {} sends {}..{} beyond the kernel's window edge {} ({} bytes over)",
                s.frame,
                s.seq,
                end,
                edge,
                end.wrapping_sub(edge)
            );
        }
        // RFC 7323 2.4 (1): tapir honours, as in window, any segment that
        // was inside the window of any ACK it sent; RFC 9293 3.10.7.4 puts
        // in-window in-order data in the buffer. So tapir acknowledges all
        // the in-order data the kernel sent inside the largest right edge
        // it had advertised (out-of-order data tapir may drop, so it is
        // not counted), before the kernel has to send any of it again.
        let tapir_shift = if self.negotiated(OPT_WSCALE) {
            self.tapir_hs().wscale.expect("WS option has a shift")
        } else {
            0
        };
        let irs = self.kernel_hs().seq.wrapping_add(1);
        let rel = |x: u32| i64::from(x.wrapping_sub(irs) as i32);
        let (mut promised, mut in_order) = (0i64, 0i64);
        // An ACK may lag the data: RFC 5681 4.2 lets a single segment
        // wait, and data the application has not read yet is acknowledged
        // when it reads or when the delayed-ACK timer fires (as Linux's
        // __tcp_ack_snd_check). But the data must be acknowledged before
        // the kernel retransmits any of it: a retransmission below an ACK
        // we owed means the data was dropped.
        let mut owed: Option<(i64, u64)> = None;
        let segs = &self.segments;
        let mut i = 0;
        while i < segs.len() {
            if !segs[i].from_tapir {
                let s = &segs[i];
                if s.len > 0 {
                    let (a, b) = (rel(s.seq), rel(s.seq) + i64::from(s.len));
                    if let Some((want, frame)) = owed {
                        assert!(
                            a >= want,
                            "{name}: the kernel resent {a}.. (frame {}) after tapir frame {frame} left \
                             in-order bytes up to {want} unacknowledged: in-window data dropped",
                            s.frame
                        );
                    }
                    if a <= in_order && in_order < b {
                        in_order = in_order.max(b.min(promised));
                    }
                }
                i += 1;
                continue;
            }
            // A run of tapir frames goes out after one batch of input: an
            // ACK owed by one segment of the batch is sent before the next
            // is processed, so the run's first ACKs may cover only part of
            // the batch; its highest is what it acknowledged.
            let mut best: Option<(i64, u64)> = None;
            while i < segs.len() && segs[i].from_tapir {
                let s = &segs[i];
                i += 1;
                if !s.has(ACK) {
                    continue;
                }
                let ack = rel(s.ack);
                if best.is_none_or(|(b, _)| ack > b) {
                    best = Some((ack, s.frame));
                }
                let win = if s.has(SYN) { s.win } else { s.win << tapir_shift };
                promised = promised.max(ack + i64::from(win));
            }
            if let Some((ack, frame)) = best {
                if owed.is_some_and(|(want, _)| ack >= want) {
                    owed = None;
                }
                if ack < in_order && owed.is_none() {
                    owed = Some((in_order, frame));
                }
            }
        }
        let windows = || self.kernel_windows();
        eprintln!(
            "{name}: {} segments ({} from tapir), payload tapir {} B kernel {} B, \
             SYN {:?} SYN-ACK {:?}, kernel windows {}..={} ({} zero), tapir raw windows {}..={}, \
             {probes} zero-window probes, {edge_acks} ACKs at a shrunk window's edge",
            self.segments.len(),
            self.by_tapir().count(),
            self.tapir_payload(),
            self.kernel_payload(),
            syn.options,
            syn_ack.options,
            windows().min().unwrap_or(0),
            windows().max().unwrap_or(0),
            windows().filter(|&w| w == 0).count(),
            self.tapir_raw_windows().min().unwrap_or(0),
            self.tapir_raw_windows().max().unwrap_or(0),
        );
    }
}

fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

#[derive(Debug)]
struct Capture {
    conns: Vec<Conn>,
}

impl Capture {
    /// Decode the TCP segments of `pcap` with tshark.
    fn read(pcap: &Path) -> Capture {
        let fields = [
            "frame.number",
            "eth.src",
            "ip.dsfield.ecn",
            "frame.len",
            "tcp.srcport",
            "tcp.dstport",
            "tcp.flags",
            "tcp.seq_raw",
            "tcp.ack_raw",
            "tcp.len",
            "tcp.hdr_len",
            "tcp.window_size_value",
            "tcp.option_kind",
            "tcp.options.mss_val",
            "tcp.options.wscale.shift",
        ];
        let mut cmd = Command::new("tshark");
        cmd.args(["-n", "-r"])
            .arg(pcap)
            .args(["-o", "tcp.desegment_tcp_streams:FALSE"])
            .args(["-o", "tcp.analyze_sequence_numbers:FALSE"])
            .args(["-Y", "tcp", "-T", "fields", "-E", "separator=|"]);
        for f in fields {
            cmd.args(["-e", f]);
        }
        let o = output_with_timeout(&mut cmd, Duration::from_secs(60)).expect("run tshark");
        assert!(
            o.status.success(),
            "tshark on {}: {}",
            pcap.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        let tapir_mac = TAPIR_MAC.map(|b| format!("{b:02x}")).join(":");
        let mut conns: Vec<Conn> = Vec::new();
        let mut index: HashMap<(u16, u16), usize> = HashMap::new();
        for line in String::from_utf8_lossy(&o.stdout).lines() {
            let f: Vec<&str> = line.split('|').collect();
            assert_eq!(f.len(), fields.len(), "tshark line {line:?}");
            let num = |i: usize| -> u64 {
                let v = f[i];
                let r = match v.strip_prefix("0x") {
                    Some(hex) => u64::from_str_radix(hex, 16),
                    None => v.parse(),
                };
                r.unwrap_or_else(|_| panic!("tshark field {} = {v:?} in {line:?}", fields[i]))
            };
            let opt = |i: usize| (!f[i].is_empty()).then(|| num(i));
            let from_tapir = f[1].eq_ignore_ascii_case(&tapir_mac);
            let (src, dst) = (num(4) as u16, num(5) as u16);
            let (tapir_port, kernel_port) = if from_tapir { (src, dst) } else { (dst, src) };
            let seg = Segment {
                frame: num(0),
                from_tapir,
                ecn: opt(2).unwrap_or(0) as u8,
                frame_len: num(3) as usize,
                flags: num(6) as u16,
                seq: num(7) as u32,
                ack: num(8) as u32,
                len: num(9) as u32,
                hdr_len: num(10) as u32,
                win: num(11) as u32,
                options: f[12]
                    .split(',')
                    .filter(|k| !k.is_empty())
                    .map(|k| {
                        k.parse()
                            .unwrap_or_else(|_| panic!("option kind {k:?} in {line:?}"))
                    })
                    .collect(),
                mss: opt(13).map(|v| v as u32),
                wscale: opt(14).map(|v| v as u8),
            };
            let i = *index.entry((tapir_port, kernel_port)).or_insert_with(|| {
                conns.push(Conn {
                    tapir_port,
                    kernel_port,
                    segments: Vec::new(),
                });
                conns.len() - 1
            });
            conns[i].segments.push(seg);
        }
        Capture { conns }
    }

    /// The GET, the POST (and the slow GET, if any) to tapir, and tapir's
    /// connection to the echo server, each carrying its bytes.
    fn check_common(&self, mtu: usize) {
        let passive = self.passive().count();
        assert!(
            (2..=3).contains(&passive) && self.conns.len() == passive + 1,
            "connections: {:?}",
            self.conns.iter().map(Conn::name).collect::<Vec<_>>()
        );
        for c in &self.conns {
            c.check(mtu);
        }
        assert!(self.get().tapir_payload() >= GET_BYTES as u64);
        assert!(self.post().kernel_payload() >= POST_BYTES as u64);
        assert!(self.post().tapir_payload() >= POST_BYTES as u64);
        assert!(self.active().tapir_payload() >= ECHO_BYTES as u64);
        assert!(self.active().kernel_payload() >= ECHO_BYTES as u64);
    }

    /// Connections the kernel opened to tapir's HTTP server, in order.
    fn passive(&self) -> impl Iterator<Item = &Conn> {
        self.conns.iter().filter(|c| !c.active())
    }

    fn get(&self) -> &Conn {
        self.passive().next().expect("the GET")
    }

    fn post(&self) -> &Conn {
        self.passive().nth(1).expect("the POST")
    }

    fn slow_get(&self) -> &Conn {
        self.passive().nth(2).expect("the slow GET")
    }

    fn active(&self) -> &Conn {
        self.conns
            .iter()
            .find(|c| c.active())
            .expect("tapir's own connection")
    }

    /// Connections where the kernel sent at least `n` bytes to tapir.
    fn uploads(&self, n: usize) -> impl Iterator<Item = &Conn> {
        self.conns.iter().filter(move |c| c.kernel_payload() >= n as u64)
    }

    fn all(&self) -> impl Iterator<Item = &Conn> {
        self.conns.iter()
    }
}

/// tapir's own state for the connection it opened agrees with what the
/// capture shows was negotiated.
fn check_active_state(cap: &Capture, st: &TcpConnStats, mtu: usize) {
    let c = cap.active();
    // tapir shut down its side first; the kernel's FIN may have come by
    // the time the state was read.
    assert!(
        matches!(
            st.state,
            Some(TcpState::FinWait1 | TcpState::FinWait2 | TcpState::TimeWait)
        ),
        "tapir's state after its shutdown: {:?}",
        st.state
    );
    // The payload of a full segment: the MSS less the options every
    // segment carries (TS: 10 bytes padded to 12).
    let options = if c.negotiated(OPT_TIMESTAMP) { 12 } else { 0 };
    assert_eq!(st.mss, mtu - 40 - options, "tapir's MSS for {}", c.name());
    assert!(
        c.by_tapir().any(|s| s.len as usize == st.mss),
        "{}: no full {}-byte segment from tapir",
        c.name(),
        st.mss
    );
    if !c.negotiated(OPT_WSCALE) {
        assert!(st.snd_wnd <= 65_535, "unscaled send window {}", st.snd_wnd);
    }
    assert_eq!(st.bytes_received, ECHO_BYTES as u64);
}

/// Set up `sc`, run the traffic, check the capture.
fn run(sc: &Scenario) -> Outcome {
    let rig = Rig::new(sc);
    rig.get(GET_BYTES);
    rig.post();
    if sc.slow_reader {
        rig.slow_get();
    }
    let active = rig.echo_from_tapir();
    rig.finish(active)
}

// ---------------------------------------------------------------------------
// The scenarios.

/// Defaults plus MTU probing, no metrics save and no slow start after idle
/// on the kernel. The control for the option checks of the others (every
/// option offered and answered both ways); the kernel's MTU probes
/// (tcp_base_mss first, larger probes later) must arrive intact.
#[test]
fn kernel_defaults_with_mtu_probing() {
    require_kernel!("curl", "sha256sum", "tshark", "python3");
    let out = run(&Scenario::new(
        "ks-probe",
        &[
            ("net.ipv4.tcp_mtu_probing", "2"),
            ("net.ipv4.tcp_no_metrics_save", "1"),
            ("net.ipv4.tcp_slow_start_after_idle", "0"),
        ],
    ));
    for c in out.cap.all() {
        for kind in [OPT_MSS, OPT_TIMESTAMP, OPT_SACK_PERM, OPT_WSCALE] {
            assert!(c.negotiated(kind), "{}: option {kind} not negotiated", c.name());
        }
    }
    // The probing took: curl's upload starts at tcp_base_mss (1024) and,
    // with tapir acknowledging the larger probes, grows past it. (The
    // kernel's passive side, the echo server, was seen to start at the
    // full MSS on this kernel, so only the connection curl opened counts.)
    {
        let c = out.cap.post();
        let sizes: Vec<u32> = c.by_kernel().map(|s| s.len).filter(|&l| l > 0).collect();
        // Linux sends no probe below a congestion window of 11 segments
        // (tcp_mtu_probe), so the first full segment is a plain one.
        let first = sizes.iter().copied().find(|&l| l > 500).unwrap_or(0);
        let max = sizes.iter().max().copied().unwrap_or(0);
        assert!(first <= 1024, "{}: first full segment {first} bytes", c.name());
        assert!(max > 1024, "{}: the kernel never grew past 1024 bytes", c.name());
    }
}

/// An option the kernel was told not to use: absent from the kernel's SYN
/// or SYN-ACK, not negotiated, and (checked for every connection) never
/// used. tapir still offers it in its own SYN.
fn check_option_off(cap: &Capture, kind: u8) {
    for c in cap.all() {
        let k = c.kernel_hs();
        assert!(
            !k.has_option(kind),
            "{}: kernel still sends option {kind}: {:?}",
            c.name(),
            k.options
        );
        assert!(!c.negotiated(kind), "{}", c.name());
        if c.active() {
            assert!(
                c.syn().has_option(kind),
                "{}: tapir's SYN does not offer {kind}",
                c.name()
            );
        }
    }
}

/// net.ipv4.tcp_timestamps=0: tapir answers without TS and sends none
/// after (RFC 7323 3.2); its MSS is then the full 1460.
#[test]
fn kernel_timestamps_off() {
    require_kernel!("curl", "sha256sum", "tshark", "python3");
    let out = run(&Scenario::new("ks-ts", &[("net.ipv4.tcp_timestamps", "0")]));
    check_option_off(&out.cap, OPT_TIMESTAMP);
    for c in out.cap.all() {
        assert!(
            c.negotiated(OPT_SACK_PERM) && c.negotiated(OPT_WSCALE),
            "{}",
            c.name()
        );
    }
    assert_eq!(out.active.mss, 1460);
}

/// net.ipv4.tcp_sack=0: no SACK-permitted answered and no SACK blocks from
/// tapir, ever (RFC 2018 2, 3).
#[test]
fn kernel_sack_off() {
    require_kernel!("curl", "sha256sum", "tshark", "python3");
    let out = run(&Scenario::new("ks-sack", &[("net.ipv4.tcp_sack", "0")]));
    check_option_off(&out.cap, OPT_SACK_PERM);
    for c in out.cap.all() {
        assert!(
            c.negotiated(OPT_TIMESTAMP) && c.negotiated(OPT_WSCALE),
            "{}",
            c.name()
        );
    }
}

/// net.ipv4.tcp_window_scaling=0: no WS either way (RFC 7323 2.2);
/// windows are plain 16-bit byte counts, so tapir's sender must not scale
/// the kernel's (checked for every connection: never beyond its edge), and
/// with a 256 KiB buffer mostly free while the kernel uploads tapir offers
/// the largest unscaled window, not rcv_wnd >> shift.
#[test]
fn kernel_window_scaling_off() {
    require_kernel!("curl", "sha256sum", "tshark", "python3");
    let out = run(&Scenario::new("ks-ws", &[("net.ipv4.tcp_window_scaling", "0")]));
    check_option_off(&out.cap, OPT_WSCALE);
    check_unscaled(&out.cap);
    for c in out.cap.all() {
        assert!(
            c.negotiated(OPT_TIMESTAMP) && c.negotiated(OPT_SACK_PERM),
            "{}",
            c.name()
        );
    }
}

fn check_unscaled(cap: &Capture) {
    for c in cap.uploads(POST_BYTES) {
        let max = c.tapir_raw_windows().max().unwrap_or(0);
        assert!(
            max > 60_000,
            "{}: tapir's largest unscaled window was {max}",
            c.name()
        );
    }
}

/// Timestamps, SACK and window scaling all off: SYNs with only an MSS.
#[test]
fn kernel_ts_sack_wscale_all_off() {
    require_kernel!("curl", "sha256sum", "tshark", "python3");
    let out = run(&Scenario::new(
        "ks-bare",
        &[
            ("net.ipv4.tcp_timestamps", "0"),
            ("net.ipv4.tcp_sack", "0"),
            ("net.ipv4.tcp_window_scaling", "0"),
        ],
    ));
    for kind in [OPT_TIMESTAMP, OPT_SACK_PERM, OPT_WSCALE] {
        check_option_off(&out.cap, kind);
    }
    let kinds = |o: &[u8]| o.iter().copied().filter(|&k| k > 1).collect::<Vec<u8>>();
    for c in out.cap.all() {
        assert_eq!(kinds(&c.kernel_hs().options), [OPT_MSS], "{}", c.name());
        if !c.active() {
            assert_eq!(
                kinds(&c.tapir_hs().options),
                [OPT_MSS],
                "{}: tapir's SYN-ACK",
                c.name()
            );
        }
        // No options after the handshake: a full segment is MSS bytes.
        assert!(
            c.by_tapir().filter(|s| !s.has(SYN)).all(|s| s.hdr_len == 20),
            "{}",
            c.name()
        );
    }
    check_unscaled(&out.cap);
    assert_eq!(out.active.mss, 1460);
}

/// net.ipv4.tcp_ecn=1: the kernel's SYN is ECN-setup (ECE|CWR). tapir does
/// not do ECN, so it answers with a plain SYN-ACK (RFC 3168 6.1.1); the
/// kernel then marks nothing ECT and sets no ECE/CWR, and the connection
/// works. tapir's own SYN is not ECN-setup, and the kernel's SYN-ACK to it
/// is plain too.
#[test]
fn kernel_ecn_requested() {
    require_kernel!("curl", "sha256sum", "tshark", "python3");
    let out = run(&Scenario::new("ks-ecn", &[("net.ipv4.tcp_ecn", "1")]));
    for c in out.cap.all() {
        let syn = c.syn();
        if c.active() {
            assert!(
                !syn.has(ECE) && !syn.has(CWR),
                "tapir's SYN flags {:#x}",
                syn.flags
            );
        } else {
            assert!(
                syn.has(ECE) && syn.has(CWR),
                "kernel SYN is not ECN-setup: flags {:#x}",
                syn.flags
            );
        }
        let syn_ack = c.syn_ack();
        assert!(
            !syn_ack.has(ECE) && !syn_ack.has(CWR),
            "{}: SYN-ACK flags {:#x}",
            c.name(),
            syn_ack.flags
        );
        for s in c.by_kernel() {
            assert_eq!(s.ecn, 0, "{}: kernel frame {} marked ECT", c.name(), s.frame);
            if !s.has(SYN) {
                assert!(
                    !s.has(ECE) && !s.has(CWR),
                    "{}: kernel frame {} flags {:#x}",
                    c.name(),
                    s.frame,
                    s.flags
                );
            }
        }
    }
}

/// tcp_rmem and tcp_wmem of 4096: the kernel offers tapir's sender tiny
/// windows, and with a reader slower than the link (curl --limit-rate)
/// zero windows, exercising tapir's persist timer and window-update
/// handling. tapir never overruns a window (checked for every connection)
/// and every byte arrives intact.
#[test]
fn kernel_tiny_buffers() {
    require_kernel!("curl", "sha256sum", "tshark", "python3");
    let out = run(&Scenario {
        slow_reader: true,
        ..Scenario::new(
            "ks-tiny",
            &[
                ("net.ipv4.tcp_rmem", "4096 4096 4096"),
                ("net.ipv4.tcp_wmem", "4096 4096 4096"),
            ],
        )
    });
    // The setting took: the kernel never offered more than its buffer.
    for c in out.cap.all() {
        let max = c.kernel_windows().max().unwrap_or(0);
        assert!(max <= 4096, "{}: kernel offered a {max}-byte window", c.name());
    }
    let zero = out.cap.slow_get().kernel_windows().filter(|&w| w == 0).count();
    assert!(zero > 0, "the slow reader's window never closed");
    eprintln!(
        "tiny buffers: {zero} zero windows to the slow reader; tapir: {} TCP segments out, {} timeouts",
        out.stats.tcp_tx, out.stats.tcp_timeouts
    );
}

/// The TAP at MTU 576 on both ends: MSS 536 each way, every frame within
/// the link (checked for every connection) and full-sized segments used.
#[test]
fn kernel_small_mtu() {
    require_kernel!("curl", "sha256sum", "tshark", "python3");
    let out = run(&Scenario {
        mtu: Some(576),
        ..Scenario::new("ks-mtu", &[])
    });
    for c in out.cap.all() {
        assert_eq!(c.syn().mss, Some(536));
        assert_eq!(c.syn_ack().mss, Some(536));
        let full = if c.negotiated(OPT_TIMESTAMP) { 524 } else { 536 };
        assert!(
            c.by_tapir().any(|s| s.len == full),
            "{}: tapir sent no {full}-byte segment",
            c.name()
        );
    }
    assert_eq!(out.active.mss, 524);
}
