//! `tapir demo`: the kernel's own tools talking to tapir, in a namespace
//! made for the occasion and removed afterwards.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tapir_apps::get::get_over;
use tapir_apps::http::{self, Url};
use tapir_apps::services;
use tapir_apps::tput::Sha256;
use tapir_harness::netns::have_program;
use tapir_harness::{kernel_tests_allowed, Driver, DriverOptions, NetNs, TapDevice, TapOptions};
use tapir_stack::wire::{EthernetAddress, Ipv4Cidr};
use tapir_stack::{Config, Interface};

const KERNEL_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const TAPIR_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const TAPIR_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 10, 77, 0, 2]);
const TAP_NAME: &str = "tapir0";

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Also record every frame tapir sent and received to this pcap file.
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// Seed for everything the stack randomises, for a reproducible run
    /// [default: fresh from the operating system's random source].
    #[arg(long)]
    seed: Option<u64>,
    /// Open the TAP without checksum offload and TSO/GSO (IFF_VNET_HDR,
    /// TUNSETOFFLOAD), which are used by default when the kernel has them.
    #[arg(long)]
    no_offload: bool,
}

const UDP_CLIENT: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
for i in range(3):
    msg = f"hello tapir #{i}".encode()
    s.sendto(msg, ("10.77.0.2", 7))
    data, peer = s.recvfrom(65535)
    assert data == msg, (data, msg)
    print(f"   sent {msg!r} -> got {data!r} back from {peer[0]}:{peer[1]}")
big = bytes((i * 7 + 3) % 256 for i in range(20000))
s.sendto(big, ("10.77.0.2", 7))
data, _ = s.recvfrom(65535)
assert data == big, len(data)
print(f"   sent a 20000-byte datagram (14 IP fragments each way) -> got {len(data)} identical bytes back")
"#;

struct Steps {
    passed: usize,
    failed: usize,
    skipped: usize,
}

impl Steps {
    fn skip(&mut self, why: &str) {
        self.skipped += 1;
        println!("   SKIPPED: {why}");
    }

    fn report(&mut self, ok: bool, detail: &str) {
        if ok {
            self.passed += 1;
            println!("   ok");
        } else {
            self.failed += 1;
            println!("   FAILED: {detail}");
        }
    }
}

fn indent(text: &str, keep: impl Fn(&str) -> bool) -> String {
    text.lines()
        .filter(|l| keep(l))
        .map(|l| format!("   | {l}\n"))
        .collect()
}

pub fn run(args: DemoArgs) -> Result<(), String> {
    let mut missing = Vec::new();
    if let Err(reason) = kernel_tests_allowed() {
        missing.push(reason);
    }
    for program in ["ping", "python3"] {
        if !have_program(program) {
            missing.push(format!("`{program}` is not installed"));
        }
    }
    if !missing.is_empty() {
        return Err(format!(
            "the demo needs root (CAP_NET_ADMIN) to create a network namespace and a TAP device; \
             cannot run here: {}",
            missing.join("; ")
        ));
    }

    println!("tapir demo: the Linux kernel talks to tapir, a userspace TCP/IP stack, over a TAP device.\n");
    let ns = NetNs::create("demo").map_err(|e| format!("creating a network namespace: {e}"))?;
    let tap = ns
        .run_in(|| {
            TapDevice::open(
                &TapOptions::new(TAP_NAME)
                    .kernel_ipv4(KERNEL_IP, 24)
                    .offload(!args.no_offload),
            )
        })
        .and_then(|r| r)
        .map_err(|e| format!("creating the TAP device: {e}"))?;
    let kernel_mac = Some(EthernetAddress(tap.kernel_mac()));
    println!("[setup] network namespace {} (removed at the end)", ns.name());
    println!(
        "        kernel: {TAP_NAME} = {KERNEL_IP}/24   <-- TAP -->   tapir = {TAPIR_IP}/24, mac {TAPIR_MAC}"
    );

    let mut config = Config::new(TAPIR_MAC, Ipv4Cidr::new(TAPIR_IP, 24).expect("valid prefix"));
    tapir_apps::net::seed_config(&mut config, args.seed).map_err(|e| format!("seeding the stack: {e}"))?;
    let iface = Interface::new(config).map_err(|e| e.to_string())?;
    let opts = DriverOptions {
        pcap: args.pcap.clone(),
        ..Default::default()
    };
    let driver =
        Driver::spawn(iface, Box::new(tap), opts).map_err(|e| format!("starting the driver: {e}"))?;
    let stack = driver.stack();
    let exec = services::Executor::new(services::ExecMode::Runtime { threads: 1 })
        .map_err(|e| format!("starting the runtime: {e}"))?;
    let echo = services::udp_echo(&exec, &stack, 7).map_err(|e| format!("starting UDP echo: {e}"))?;
    println!("        tapir serves UDP echo on port 7");

    let web = http::serve_on_stack(&exec, &stack, 80, None).map_err(|e| format!("starting HTTP: {e}"))?;
    println!("        tapir serves HTTP/1.1 on port 80 (/bytes/N, /echo, /stats)\n");

    let mut steps = Steps {
        passed: 0,
        failed: 0,
        skipped: 0,
    };
    let timeout = Duration::from_secs(20);

    println!(
        "1. The kernel pings tapir: it first asks by ARP who has {TAPIR_IP}; tapir answers, then echoes."
    );
    println!("   $ ping -c 3 -i 0.2 {TAPIR_IP}");
    match ns.exec_timeout(&["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.77.0.2"], timeout) {
        Ok(o) => {
            let out = String::from_utf8_lossy(&o.stdout);
            print!(
                "{}",
                indent(&out, |l| l.contains("bytes from") || l.contains("packet loss"))
            );
            steps.report(
                o.status.success() && out.contains(" 0% packet loss"),
                "ping lost packets",
            );
        }
        Err(e) => steps.report(false, &e.to_string()),
    }

    println!("\n2. A 3000-byte ping does not fit a 1500-byte MTU: the kernel fragments it, tapir");
    println!("   reassembles it and sends a 3000-byte reply back in fragments of its own.");
    println!("   $ ping -c 2 -s 3000 {TAPIR_IP}");
    match ns.exec_timeout(
        &[
            "ping",
            "-c",
            "2",
            "-i",
            "0.2",
            "-s",
            "3000",
            "-W",
            "2",
            "10.77.0.2",
        ],
        timeout,
    ) {
        Ok(o) => {
            let out = String::from_utf8_lossy(&o.stdout);
            print!(
                "{}",
                indent(&out, |l| l.contains("bytes from") || l.contains("packet loss"))
            );
            steps.report(
                o.status.success() && out.contains("3008 bytes from"),
                "no full-size reply",
            );
        }
        Err(e) => steps.report(false, &e.to_string()),
    }

    println!("\n3. A Python UDP client in the kernel's namespace uses tapir's echo service.");
    match ns.exec_timeout(&["python3", "-c", UDP_CLIENT], timeout) {
        Ok(o) => {
            print!("{}", String::from_utf8_lossy(&o.stdout));
            let err = String::from_utf8_lossy(&o.stderr);
            steps.report(o.status.success(), err.lines().last().unwrap_or("python failed"));
        }
        Err(e) => steps.report(false, &e.to_string()),
    }

    println!("\n4. tapir learned the kernel's MAC address through ARP:");
    let learned = stack.with(|i| i.neighbor(KERNEL_IP));
    match (learned, kernel_mac) {
        (Some(mac), Some(kernel)) => {
            println!(
                "   tapir's neighbor cache: {KERNEL_IP} is at {mac} (the kernel says {TAP_NAME} is {kernel})"
            );
            steps.report(mac == kernel, "tapir has a different MAC than the kernel's");
        }
        (learned, _) => steps.report(learned.is_some(), "no entry for the kernel"),
    }

    http_steps(&ns, &stack, &mut steps, timeout);
    iperf3_step(&ns, &exec, &stack, &mut steps);

    let served = echo.stop().unwrap_or(0);
    let requests = web.stop();
    let iface = driver.shutdown();
    let s = iface.stats();
    println!("\n9. What tapir counted ({served} datagrams echoed, {requests} HTTP requests answered):");
    println!(
        "   frames in {} / out {}; ARP requests answered {}; pings answered {}; \
         fragments in {} (reassembled into {} datagrams) / out {}; UDP in {} / out {}; dropped {}",
        s.rx_frames,
        s.tx_frames,
        s.arp_requests_rx,
        s.icmp_echo_replies_tx,
        s.frag_rx,
        s.frag_reassembled,
        s.ipv4_frags_tx,
        s.udp_rx,
        s.udp_tx,
        s.total_drops()
    );
    println!(
        "   TCP segments in {} / out {}; connections accepted {} / opened {}; resets sent {}",
        s.tcp_rx, s.tcp_tx, s.tcp_passive_opens, s.tcp_active_opens, s.tcp_rst_tx
    );
    if s.total_drops() > 0 {
        println!(
            "   (drops are normal here: the kernel sends IPv6 router solicitations tapir does not speak)"
        );
    }
    if let Some(p) = &args.pcap {
        println!(
            "   every frame is in {} (open it with wireshark or `tshark -r`)",
            p.display()
        );
    }
    drop(ns);
    println!("\n[cleanup] namespace and TAP removed");
    println!(
        "{} of {} steps passed{}",
        steps.passed,
        steps.passed + steps.failed,
        if steps.skipped > 0 {
            format!(", {} skipped", steps.skipped)
        } else {
            String::new()
        }
    );
    if steps.failed == 0 {
        Ok(())
    } else {
        Err(format!("{} demo step(s) failed", steps.failed))
    }
}

/// The page the kernel's HTTP server hands to tapir's client.
const KERNEL_PAGE: &str = "Hello from the Linux kernel's TCP, served by python's http.server.\n";

/// Steps 5 to 7: curl against tapir's HTTP server, and tapir's HTTP client
/// against python's http.server in the namespace.
fn http_steps(ns: &NetNs, stack: &tapir_harness::StackHandle, steps: &mut Steps, timeout: Duration) {
    let curl = have_program("curl");
    println!("\n5. The kernel's curl fetches 100 000 generated bytes from tapir's HTTP server.");
    println!("   $ curl http://{TAPIR_IP}/bytes/100000 | sha256sum");
    if !curl {
        steps.skip("curl is not installed");
    } else {
        let want = Sha256::hex(&http::pattern(100_000));
        let meta = ns.exec_timeout(
            &[
                "curl",
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{size_download}",
                "http://10.77.0.2/bytes/100000",
            ],
            timeout,
        );
        let sha = ns.exec_timeout(
            &["sh", "-c", "curl -sS http://10.77.0.2/bytes/100000 | sha256sum"],
            timeout,
        );
        match (meta, sha) {
            (Ok(m), Ok(h)) => {
                let meta = String::from_utf8_lossy(&m.stdout).into_owned();
                let got = String::from_utf8_lossy(&h.stdout);
                let got = got.split_whitespace().next().unwrap_or_default();
                let mut parts = meta.split_whitespace();
                let (code, size) = (parts.next().unwrap_or("?"), parts.next().unwrap_or("?"));
                println!("   | HTTP {code}, {size} bytes, sha256 {got}");
                println!("   | expected    100000 bytes, sha256 {want}");
                steps.report(
                    m.status.success() && code == "200" && size == "100000" && got == want,
                    &format!(
                        "curl said {meta:?}; {}",
                        String::from_utf8_lossy(&m.stderr).trim()
                    ),
                );
            }
            (Err(e), _) | (_, Err(e)) => steps.report(false, &e.to_string()),
        }
    }

    println!("\n6. curl asks tapir for its counters and TCP connections as JSON.");
    println!("   $ curl http://{TAPIR_IP}/stats");
    if !curl {
        steps.skip("curl is not installed");
    } else {
        match ns.exec_timeout(&["curl", "-sS", "http://10.77.0.2/stats"], timeout) {
            Ok(o) => {
                let json = String::from_utf8_lossy(&o.stdout);
                let shown = indent(&json, |l| {
                    l.contains("\"tcp_passive_opens\"") || l.contains("\"tcp_rx\"") || l.contains("\"local\"")
                });
                // A connection's line is long: show its start.
                for line in shown.lines() {
                    let cut: String = line.chars().take(150).collect();
                    println!("{cut}{}", if cut.len() < line.len() { " ..." } else { "" });
                }
                steps.report(
                    o.status.success() && json.contains("\"tcp_connections\"") && json.contains("10.77.0.1:"),
                    "no connection from the kernel in /stats",
                );
            }
            Err(e) => steps.report(false, &e.to_string()),
        }
    }

    println!("\n7. tapir's HTTP client fetches a page from python's http.server on the kernel side.");
    println!("   $ python3 -m http.server 8000 --bind {KERNEL_IP}   (in the namespace)");
    println!("   tapir: GET http://{KERNEL_IP}:8000/hello.txt");
    let dir = std::env::temp_dir().join(format!("tapir-demo-{}", std::process::id()));
    let prepared =
        std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(dir.join("hello.txt"), KERNEL_PAGE));
    if let Err(e) = prepared {
        steps.report(false, &format!("preparing {}: {e}", dir.display()));
        return;
    }
    let dir_arg = dir.display().to_string();
    let server = ns.spawn(&[
        "python3",
        "-m",
        "http.server",
        "8000",
        "--bind",
        "10.77.0.1",
        "--directory",
        &dir_arg,
    ]);
    match server {
        Ok(mut child) => {
            let url = Url::parse("http://10.77.0.1:8000/hello.txt").expect("valid URL");
            // python needs a moment to listen: retry while it refuses.
            let deadline = Instant::now() + Duration::from_secs(10);
            let result = loop {
                let mut body = Vec::new();
                match get_over(stack, &url, "GET", &mut body, Duration::from_secs(5), timeout) {
                    Err(e)
                        if e.kind() == std::io::ErrorKind::ConnectionRefused && Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    r => break r.map(|got| (got, body)),
                }
            };
            let _ = child.kill();
            let _ = child.wait();
            match result {
                Ok((got, body)) => {
                    println!("   | {}, {} bytes:", got.head.status_line(), got.body_len);
                    print!("{}", indent(&String::from_utf8_lossy(&body), |_| true));
                    steps.report(
                        got.head.status == 200 && body == KERNEL_PAGE.as_bytes(),
                        "the page differs",
                    );
                }
                Err(e) => steps.report(false, &e.to_string()),
            }
        }
        Err(e) => steps.report(false, &format!("starting python's http.server: {e}")),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Step 8: the kernel's iperf3 measures TCP throughput to and from tapir,
/// which speaks iperf3's control protocol.
fn iperf3_step(ns: &NetNs, exec: &services::Executor, stack: &tapir_harness::StackHandle, steps: &mut Steps) {
    println!("\n8. The kernel's iperf3 measures TCP throughput to tapir, then from it (-R), 2 s each.");
    println!("   $ iperf3 -c {TAPIR_IP} -t 2     and     iperf3 -c {TAPIR_IP} -t 2 -R");
    if !have_program("iperf3") {
        steps.skip("iperf3 is not installed");
        return;
    }
    let server = match services::iperf3_server(exec, stack, 5201) {
        Ok(s) => s,
        Err(e) => return steps.report(false, &format!("listening on 5201: {e}")),
    };
    let mut ok = true;
    let mut why = String::new();
    for reverse in [false, true] {
        let mut cmd = vec!["iperf3", "-c", "10.77.0.2", "-t", "2"];
        if reverse {
            cmd.push("-R");
        }
        match ns.exec_timeout(&cmd, Duration::from_secs(30)) {
            Ok(o) => {
                let out = String::from_utf8_lossy(&o.stdout);
                print!(
                    "{}",
                    indent(&out, |l| l.ends_with("sender") || l.ends_with("receiver"))
                );
                if !o.status.success() {
                    ok = false;
                    why = format!("iperf3 failed: {}", String::from_utf8_lossy(&o.stderr).trim());
                }
            }
            Err(e) => {
                ok = false;
                why = e.to_string();
            }
        }
    }
    if ok {
        // The server counts a test once the client's last message is in,
        // a moment after the client exits.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while server.served() < 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        match server.stop() {
            Ok(2) => {}
            Ok(n) => {
                (ok, why) = (
                    false,
                    format!("tapir's iperf3 server completed {n} of 2 tests (see its log)"),
                )
            }
            Err(e) => (ok, why) = (false, format!("tapir's iperf3 server: {e}")),
        }
    }
    steps.report(ok, &why);
}
