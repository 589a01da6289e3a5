//! `tapir up` serving TCP echo, discard and chargen (and UDP echo and an
//! iperf3 server) in a namespace, checked by python clients and the
//! kernel's iperf3; SIGTERM makes it report what it served and exit 0.

mod common;

use std::process::Stdio;
use std::time::Duration;
use tapir_harness::{require_kernel, NetNs};

const TAPIR: &str = env!("CARGO_BIN_EXE_tapir");

/// Echo: 256 KB round trip, then EOF after our FIN. Discard: 1 MB taken,
/// nothing sent back, EOF after our FIN. Chargen: the RFC 864 pattern
/// (checked over 200 KB) until we close; and with a FIN from us the
/// server closes too. UDP echo on the same port number as TCP echo.
const CLIENT: &str = r#"
import socket, sys
host = sys.argv[1]

def read_to_eof(s, limit=1 << 30):
    got = bytearray()
    while len(got) <= limit:
        c = s.recv(65536)
        if not c:
            return bytes(got)
        got += c
    raise SystemExit(f"more than {limit} bytes without EOF")

s = socket.create_connection((host, 7), timeout=10)
msg = bytes(range(256)) * 1024
s.sendall(msg)
s.shutdown(socket.SHUT_WR)
got = read_to_eof(s)
s.close()
assert got == msg, f"echo: {len(got)} bytes back"
print("tcp echo ok", flush=True)

s = socket.create_connection((host, 9), timeout=10)
s.sendall(b"discard me " * 100000)
s.shutdown(socket.SHUT_WR)
got = read_to_eof(s)
s.close()
assert got == b"", f"discard sent {len(got)} bytes"
print("discard ok", flush=True)

cycle = b"".join(bytes(32 + (k + j) % 95 for j in range(72)) + b"\r\n" for k in range(95))
s = socket.create_connection((host, 19), timeout=10)
got = bytearray()
while len(got) < 200000:
    c = s.recv(65536)
    assert c, "chargen ended early"
    got += c
want = (cycle * (len(got) // len(cycle) + 1))[: len(got)]
assert bytes(got) == want, "chargen pattern differs"
s.close()
s = socket.create_connection((host, 19), timeout=10)
s.sendall(b"ignored")
s.shutdown(socket.SHUT_WR)
got = read_to_eof(s, limit=64 << 20)
assert got == (cycle * (len(got) // len(cycle) + 1))[: len(got)], "chargen pattern differs"
s.close()
print("chargen ok", flush=True)

u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(3)
u.sendto(b"udp too", (host, 7))
assert u.recvfrom(100)[0] == b"udp too"
print("udp echo ok", flush=True)
"#;

#[test]
fn up_serves_tcp_echo_discard_and_chargen() {
    require_kernel!("python3", "iperf3");
    serve_and_check("cli-tcp", &[]);
}

/// The same with `--inline`: the driver, the accept loops and every
/// connection on one thread (run to completion).
#[test]
fn up_inline_serves_tcp_echo_discard_and_chargen() {
    require_kernel!("python3", "iperf3");
    serve_and_check("cli-tcp-in", &["--inline"]);
}

fn serve_and_check(ns_name: &str, extra: &[&str]) {
    let ns = NetNs::create(ns_name).unwrap();
    let mut child = ns
        .command(TAPIR)
        .args([
            "up",
            "--tap",
            "tsvc0",
            "--addr",
            "10.77.30.2/24",
            "--host-addr",
            "10.77.30.1/24",
        ])
        .args([
            "--tcp-echo",
            "7",
            "--discard",
            "9",
            "--chargen",
            "19",
            "--udp-echo",
            "7",
            "--iperf3",
            "5201",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    common::wait_for_tap(&ns, &mut child, "tsvc0", "10.77.30.1/24");
    // Which threads run the stack: a driver thread and a runtime's
    // workers, or (inline) none but the acceptor.
    let threads: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", child.id()))
        .map(|d| {
            d.filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .map(|n| n.trim().to_string())
                .collect()
        })
        .unwrap_or_default();
    let inline = extra.contains(&"--inline");
    let has = |name: &str| threads.iter().any(|t| t == name);
    assert_eq!(
        (has("tapir-driver"), has("tapir-rt")),
        (!inline, !inline),
        "threads of tapir up {extra:?}: {threads:?}"
    );
    assert!(has("tapir-acceptor"), "threads: {threads:?}");
    let client = ns.exec_timeout(&["python3", "-c", CLIENT, "10.77.30.2"], Duration::from_secs(60));
    let iperf = ns.exec_timeout(
        &["iperf3", "-c", "10.77.30.2", "-t", "1", "--json"],
        Duration::from_secs(30),
    );
    let common::Stopped {
        status,
        stdout,
        stderr,
    } = common::stop_up(&mut child);

    let client = client.unwrap_or_else(|e| panic!("python client: {e}\ntapir stderr:\n{stderr}"));
    let out = String::from_utf8_lossy(&client.stdout);
    assert!(
        client.status.success(),
        "python client failed:\n{out}\n{}\ntapir stderr:\n{stderr}",
        String::from_utf8_lossy(&client.stderr)
    );
    for line in ["tcp echo ok", "discard ok", "chargen ok", "udp echo ok"] {
        assert!(out.contains(line), "{line}:\n{out}");
    }
    let iperf = iperf.unwrap_or_else(|e| panic!("iperf3: {e}\ntapir stderr:\n{stderr}"));
    let iperf_out = String::from_utf8_lossy(&iperf.stdout);
    assert!(
        iperf.status.success() && !iperf_out.contains("\"error\"") && iperf_out.contains("sum_received"),
        "iperf3 failed:\n{iperf_out}\ntapir stderr:\n{stderr}"
    );
    assert!(status.success(), "exit {status:?}; stderr:\n{stderr}");
    // The banner names every service; shutdown reports what each served.
    let banner = stderr
        .lines()
        .find(|l| l.starts_with("tapir up on"))
        .unwrap_or("");
    for name in [
        "udp-echo:7",
        "tcp-echo:7",
        "discard:9",
        "chargen:19",
        "iperf3:5201",
    ] {
        assert!(banner.contains(name), "banner: {banner}");
    }
    for line in [
        "tcp-echo:7: 1 connections served",
        "discard:9: 1 connections served",
        "chargen:19: 2 connections served",
        "udp-echo:7: 1 requests served",
        "iperf3:5201: 1 tests served",
    ] {
        assert!(stderr.contains(line), "{line}:\n{stderr}");
    }
    let counter = |name: &str| -> u64 {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().parse().unwrap()))
            .unwrap_or(0)
    };
    // Four python connections, and iperf3's control and data connections.
    assert_eq!(counter("tcp_passive_opens "), 6, "{stdout}");
    // Only the first chargen client resets (it closes with data unread).
    assert!(counter("tcp_resets_rx ") <= 1, "{stdout}");
}
