//! `tapir up --impair`: the kernel's curl fetches a few megabytes from
//! tapir's HTTP server through an emulated lossy link between tapir and its
//! TAP, byte-exact; with `--trace DIR`, the connection's timeline lands in
//! DIR and shows the retransmissions.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use tapir_harness::netns::check_status;
use tapir_harness::{require_kernel, NetNs};

#[test]
fn curl_fetches_3_mb_exactly_through_tapir_up_impair() {
    require_kernel!("curl");
    let ns = NetNs::create("impup").unwrap();
    let dir = std::env::temp_dir().join(format!("tapir-impup-trace-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut up = ns
        .command(env!("CARGO_BIN_EXE_tapir"))
        .args([
            "up",
            "--tap",
            "tap0",
            "--addr",
            "10.77.0.2/24",
            "--host-addr",
            "10.77.0.1/24",
            "--http",
            "8080",
            "--impair",
            "delay=2ms,loss=3%,reorder=2%,dup=1%,seed=9",
            "--impair-in",
            "delay=2ms,loss=3%,seed=10",
            "--trace",
            dir.to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(up.stderr.take().unwrap()).lines();
    loop {
        let line = stderr.next().expect("tapir up exited").unwrap();
        if line.starts_with("tapir up on") {
            break;
        }
    }
    let len = 3_000_000;
    let fetched = ns.exec_timeout(
        &[
            "curl",
            "-sS",
            "--max-time",
            "150",
            &format!("http://10.77.0.2:8080/bytes/{len}"),
        ],
        Duration::from_secs(160),
    );
    // SAFETY: kill(2) of the child we spawned, by its PID.
    unsafe { libc::kill(up.id() as libc::pid_t, libc::SIGTERM) };
    let status = up.wait().unwrap();
    let stats = std::io::read_to_string(up.stdout.take().unwrap()).unwrap();
    eprintln!("{stats}");
    let rest: Vec<String> = stderr.map_while(Result::ok).collect();
    let fetched = check_status(fetched.unwrap()).unwrap();
    assert!(status.success(), "tapir up: {status}\n{}", rest.join("\n"));
    assert_eq!(fetched.stdout.len(), len, "{stats}");
    assert!(
        fetched.stdout == tapir_apps::http::pattern(len),
        "the bytes differ from /bytes/{len}'s"
    );
    // The loss was real, both ways.
    let report: Vec<&String> = rest.iter().filter(|l| l.starts_with("impair ")).collect();
    assert_eq!(report.len(), 2, "{rest:?}");
    for line in report {
        let lost: u64 = line
            .split_whitespace()
            .skip_while(|w| *w != "lost")
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no loss count in {line}"));
        assert!(lost > 10, "{line}");
    }
    // The timeline: one connection (curl's), its whole response sent
    // and acknowledged, retransmissions on the way.
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        files[0].to_str().unwrap().contains("10.77.0.2:8080-10.77.0.1:"),
        "{files:?}"
    );
    let rows = tapir_apps::trace::read_csv(BufReader::new(std::fs::File::open(&files[0]).unwrap())).unwrap();
    let (first, last) = (rows.first().unwrap(), rows.last().unwrap());
    let acked = last.snd_una.wrapping_sub(first.snd_una) as usize;
    assert!(acked > len, "{acked} bytes acknowledged in the timeline");
    assert!(
        last.retransmits > 0,
        "3 % loss and no retransmission in the timeline"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
