//! The `tapir` binary as a user runs it.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tapir_harness::{require_kernel, NetNs};

const TAPIR: &str = env!("CARGO_BIN_EXE_tapir");

/// `tapir up` in a namespace: the kernel pings it and uses its UDP echo;
/// SIGTERM makes it print its counters and exit 0.
#[test]
fn up_serves_ping_and_udp_echo_then_exits_cleanly_on_sigterm() {
    require_kernel!("ping", "python3");
    let ns = NetNs::create("cli-up").unwrap();
    let mut child = ns
        .command(TAPIR)
        .args([
            "up",
            "--tap",
            "tcli0",
            "--addr",
            "10.77.0.2/24",
            "--host-addr",
            "10.77.0.1/24",
        ])
        .args(["--udp-echo", "7"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the TAP to exist and carry the kernel's address.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let o = ns.exec(&["ip", "-4", "addr", "show", "dev", "tcli0"]).unwrap();
        if String::from_utf8_lossy(&o.stdout).contains("10.77.0.1/24") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "tapir up did not configure the TAP in {}",
            ns.name()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let ping = ns
        .exec(&["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.77.0.2"])
        .unwrap();
    let ping_out = String::from_utf8_lossy(&ping.stdout).to_string();
    let udp = ns
        .exec(&[
            "python3",
            "-c",
            "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3); \
             s.sendto(b'through the binary', ('10.77.0.2', 7)); print(s.recvfrom(100)[0].decode())",
        ])
        .unwrap();
    // SIGTERM to the process we started (ip netns exec execs tapir in place).
    let common::Stopped {
        status,
        stdout,
        stderr,
    } = common::stop_up(&mut child);

    assert!(
        ping.status.success() && ping_out.contains(" 0% packet loss"),
        "ping failed:\n{ping_out}"
    );
    assert_eq!(
        String::from_utf8_lossy(&udp.stdout).trim(),
        "through the binary",
        "{udp:?}"
    );
    assert!(status.success(), "exit {status:?}; stderr:\n{stderr}");
    assert!(
        stderr.contains("udp-echo:7: 1 requests served"),
        "stderr:\n{stderr}"
    );
    // The counters printed on exit account for what happened.
    let counter = |name: &str| -> u64 {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().parse().unwrap()))
            .unwrap_or_else(|| panic!("no {name} in:\n{stdout}"))
    };
    assert_eq!(counter("icmp_echo_replies_tx "), 3);
    assert_eq!(counter("udp_tx "), 1);
}

/// A shell starts background jobs (`tapir up ... &`) with SIGINT ignored;
/// `kill -INT` must still stop tapir, with its counters printed. Linux
/// queues a blocked signal even when its disposition is "ignore"
/// (kernel/signal.c sig_ignored), so sigwait sees it either way; tapir
/// resets both dispositions anyway (a signal is not "ignored" while tapir
/// waits for it), and that is what /proc shows.
#[test]
fn up_stops_on_sigint_even_when_started_with_sigint_ignored() {
    use std::os::unix::process::CommandExt;
    require_kernel!("python3");
    let ns = NetNs::create("cli-sigint").unwrap();
    let mut cmd = ns.command(TAPIR);
    cmd.args([
        "up",
        "--tap",
        "tsig0",
        "--addr",
        "10.77.0.2/24",
        "--host-addr",
        "10.77.0.1/24",
        "--udp-echo",
        "7",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    // SAFETY: only an async-signal-safe call between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::signal::signal(
                nix::sys::signal::Signal::SIGINT,
                nix::sys::signal::SigHandler::SigIgn,
            )
            .map(drop)
            .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd.spawn().unwrap();
    common::wait_for_tap(&ns, &mut child, "tsig0", "10.77.0.1/24");
    let udp = ns
        .exec(&[
            "python3",
            "-c",
            "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3); \
             s.sendto(b'x', ('10.77.0.2', 7)); print(s.recvfrom(100)[0].decode())",
        ])
        .unwrap();
    // `ip netns exec` execs tapir in place: the child's PID is tapir's.
    let status_file = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let ignored = status_file
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    let mask = |sig: i32| 1u64 << (sig - 1);
    let dispositions_reset = ignored & (mask(libc::SIGINT) | mask(libc::SIGTERM)) == 0;
    let common::Stopped {
        status,
        stdout,
        stderr,
    } = common::stop_up_with(&mut child, nix::sys::signal::Signal::SIGINT);
    assert!(
        dispositions_reset,
        "tapir still ignores SIGINT/SIGTERM (SigIgn {ignored:#x})"
    );
    assert!(status.success(), "exit {status:?}; stderr:\n{stderr}");
    assert!(stderr.contains("SIGINT, shutting down"), "stderr:\n{stderr}");
    assert!(udp.status.success(), "{udp:?}");
    assert!(stdout.contains("udp_tx "), "no counters:\n{stdout}");
}

/// Without CAP_NET_ADMIN the demo says what is missing and fails.
#[test]
fn demo_without_privileges_explains_and_fails() {
    if !tapir_harness::netns::have_program("setpriv") || unsafe { libc::geteuid() } != 0 {
        // Running unprivileged already: the plain run is the test.
        if unsafe { libc::geteuid() } != 0 {
            let o = Command::new(TAPIR).arg("demo").output().unwrap();
            assert!(!o.status.success());
            assert!(String::from_utf8_lossy(&o.stderr).contains("CAP_NET_ADMIN"));
            return;
        }
        panic!("setpriv (util-linux) is needed to drop privileges for this test");
    }
    let o = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(TAPIR)
        .arg("demo")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "demo succeeded without privileges?\n{stderr}"
    );
    assert!(stderr.contains("CAP_NET_ADMIN"), "{stderr}");
}

#[test]
fn up_rejects_giving_the_kernel_tapirs_address() {
    let o = Command::new(TAPIR)
        .args([
            "up",
            "--tap",
            "tnever0",
            "--addr",
            "10.77.0.2/24",
            "--host-addr",
            "10.77.0.2/24",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("must differ"),
        "{o:?}"
    );
}

/// An iperf3 test's connections could land on different shards: refused
/// before any device is opened.
#[test]
fn up_rejects_queues_with_iperf3() {
    let o = Command::new(TAPIR)
        .args([
            "up",
            "--tap",
            "tnever1",
            "--addr",
            "10.77.0.2/24",
            "--queues",
            "2",
            "--iperf3",
            "5201",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--queues with --iperf3"),
        "{o:?}"
    );
}

/// `tapir script` runs scripts from anywhere: pass, fail with the line and
/// reason, skipped lines named, non-zero exit if any failed.
#[test]
fn script_command_reports_pass_fail_and_skips() {
    let dir = std::env::temp_dir().join(format!("tapir-cli-script-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.pkt");
    std::fs::write(
        &good,
        // A shell line that is not a sysctl (a qdisc here) is skipped.
        "0 < S 0:0(0) win 65535 <mss 1460>\n+0 > R. 0:0(0) ack 1 win 0\n+0 `tc qdisc replace dev tun0 root pfifo limit 0`\n",
    )
    .unwrap();
    let bad = dir.join("bad.pkt");
    std::fs::write(
        &bad,
        "0 < S 0:0(0) win 65535 <mss 1460>\n+0 > R. 0:0(0) ack 2 win 0\n",
    )
    .unwrap();

    let o = Command::new(TAPIR).arg("script").arg(&good).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("PASS") && out.contains("skipped line 3"), "{out}");

    let o = Command::new(TAPIR)
        .arg("script")
        .arg(&good)
        .arg(&bad)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains("FAIL") && out.contains("line 2") && out.contains("ack"),
        "{out}"
    );
    assert!(out.contains("1 passed, 1 failed"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `tapir script` keeps packetdrill's leniency after the last line (a reply
/// nothing expects passes); `--end-check` fails it, as the suite does.
#[test]
fn script_end_check_fails_a_reply_to_the_last_line() {
    let dir = std::env::temp_dir().join(format!("tapir-cli-end-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The SYN to a closed port draws a RST that no line expects.
    let script = dir.join("unexpected_rst.pkt");
    std::fs::write(&script, "0 < S 0:0(0) win 65535 <mss 1460>\n").unwrap();

    let o = Command::new(TAPIR).arg("script").arg(&script).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");

    let o = Command::new(TAPIR)
        .args(["script", "--end-check"])
        .arg(&script)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains("line 1") && out.contains("unexpected outbound packet after the last event"),
        "{out}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
