//! `tapir up --queues 2`: a multi-queue TAP with one stack shard per
//! queue. The kernel hashes each connection to a queue; every shard
//! listens on every port, so each connection is served, whole, by the
//! shard its queue feeds, and both shards take a share.

mod common;

use std::process::Stdio;
use std::time::Duration;
use tapir_harness::{require_kernel, NetNs};

const TAPIR: &str = env!("CARGO_BIN_EXE_tapir");
const CONNECTIONS: usize = 24;

/// 24 echo connections at once, 100 KB each, checked byte for byte; a UDP
/// echo.
const CLIENT: &str = r#"
import socket, sys, threading
host, n = sys.argv[1], int(sys.argv[2])
errors = []
def one(i):
    try:
        s = socket.create_connection((host, 7), timeout=20)
        msg = bytes((i * 7 + k) % 256 for k in range(100000))
        s.sendall(msg)
        s.shutdown(socket.SHUT_WR)
        got = bytearray()
        while True:
            c = s.recv(65536)
            if not c:
                break
            got += c
        s.close()
        if bytes(got) != msg:
            errors.append(f"connection {i}: {len(got)} bytes back, differing")
    except Exception as e:
        errors.append(f"connection {i}: {e}")
ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
[t.start() for t in ts]
[t.join() for t in ts]
assert not errors, errors
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(3)
u.sendto(b"udp too", (host, 7))
assert u.recvfrom(100)[0] == b"udp too"
print("all ok", flush=True)
"#;

#[test]
fn two_queues_share_the_connections_and_serve_each_whole() {
    require_kernel!("python3");
    let ns = NetNs::create("cli-mq").unwrap();
    let mut child = ns
        .command(TAPIR)
        .args([
            "up",
            "--tap",
            "tmq0",
            "--addr",
            "10.77.31.2/24",
            "--host-addr",
            "10.77.31.1/24",
        ])
        .args(["--queues", "2", "--tcp-echo", "7", "--udp-echo", "7"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    common::wait_for_tap(&ns, &mut child, "tmq0", "10.77.31.1/24");
    let n = CONNECTIONS.to_string();
    let client = ns.exec_timeout(
        &["python3", "-c", CLIENT, "10.77.31.2", &n],
        Duration::from_secs(60),
    );
    let common::Stopped {
        status,
        stdout,
        stderr,
    } = common::stop_up(&mut child);
    let client = client.unwrap_or_else(|e| panic!("python client: {e}\ntapir stderr:\n{stderr}"));
    assert!(
        client.status.success() && String::from_utf8_lossy(&client.stdout).contains("all ok"),
        "python client failed:\n{}\n{}\ntapir stderr:\n{stderr}",
        String::from_utf8_lossy(&client.stdout),
        String::from_utf8_lossy(&client.stderr)
    );
    assert!(status.success(), "exit {status:?}; stderr:\n{stderr}");
    assert!(stderr.contains("2 queues, one stack each"), "banner:\n{stderr}");

    // The closing counters come per queue; each shard accepted some of the
    // connections (all 24 on one queue: a chance of 2 in 2^24), and
    // together all of them.
    let sections: Vec<&str> = stdout.split("# queue ").skip(1).collect();
    assert_eq!(sections.len(), 2, "{stdout}");
    let opens: Vec<u64> = sections
        .iter()
        .map(|s| {
            s.lines()
                .find_map(|l| {
                    l.strip_prefix("tcp_passive_opens")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0)
        })
        .collect();
    assert!(
        opens.iter().all(|&o| o > 0),
        "passive opens per queue {opens:?}\n{stdout}"
    );
    assert_eq!(opens.iter().sum::<u64>(), CONNECTIONS as u64, "{stdout}");
    // Nothing reset: no shard saw a segment of a connection it did not hold.
    for s in &sections {
        let rst = s
            .lines()
            .find_map(|l| {
                l.strip_prefix("tcp_rst_tx")
                    .map(|v| v.trim().parse::<u64>().unwrap())
            })
            .unwrap_or(0);
        assert_eq!(rst, 0, "a shard sent resets:\n{stdout}");
    }
}
