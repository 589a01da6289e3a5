//! `tapir demo`: the kernel's own tools talking to tapir, in a namespace
//! made for the occasion and removed afterwards.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;
use tapir_apps::services;
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
}

impl Steps {
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
        .run_in(|| TapDevice::open(&TapOptions::new(TAP_NAME).kernel_ipv4(KERNEL_IP, 24)))
        .and_then(|r| r)
        .map_err(|e| format!("creating the TAP device: {e}"))?;
    let kernel_mac = Some(EthernetAddress(tap.kernel_mac()));
    println!("[setup] network namespace {} (removed at the end)", ns.name());
    println!(
        "        kernel: {TAP_NAME} = {KERNEL_IP}/24   <-- TAP -->   tapir = {TAPIR_IP}/24, mac {TAPIR_MAC}"
    );

    let config = Config::new(TAPIR_MAC, Ipv4Cidr::new(TAPIR_IP, 24).expect("valid prefix"));
    let iface = Interface::new(config).map_err(|e| e.to_string())?;
    let opts = DriverOptions {
        pcap: args.pcap.clone(),
        ..Default::default()
    };
    let driver =
        Driver::spawn(iface, Box::new(tap), opts).map_err(|e| format!("starting the driver: {e}"))?;
    let stack = driver.stack();
    let echo = services::udp_echo(&stack, 7).map_err(|e| format!("starting UDP echo: {e}"))?;
    println!("        tapir serves UDP echo on port 7\n");

    let mut steps = Steps { passed: 0, failed: 0 };
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

    let served = echo.stop().unwrap_or(0);
    let iface = driver.shutdown();
    let s = iface.stats();
    println!("\n5. What tapir counted ({served} datagrams echoed):");
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
    println!("{} of {} steps passed", steps.passed, steps.passed + steps.failed);
    if steps.failed == 0 {
        Ok(())
    } else {
        Err(format!("{} demo step(s) failed", steps.failed))
    }
}
