//! Runner tests against the toy TCP in `mock.rs`.

use super::*;

const HANDSHAKE: &str = "
0   socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0  setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0  bind(3, ..., ...) = 0
+0  listen(3, 1) = 0
+0  < S 0:0(0) win 32792 <mss 1000,nop,wscale 7>
+0  > S. 0:0(0) ack 1 <mss 1460>
+.1 < . 1:1(0) ack 1 win 257
+0  accept(3, ..., ...) = 4
";

fn run(text: &str) -> Outcome {
    run_str(text, MockHost::new())
}

fn run_cfg(text: &str, cfg: RunnerConfig) -> Outcome {
    run_str_with(text, MockHost::new(), cfg)
}

fn failure(o: &Outcome) -> &Failure {
    o.failure
        .as_ref()
        .unwrap_or_else(|| panic!("expected a failure:\n{o}"))
}

#[test]
fn passive_open_data_and_close_pass() {
    let script = format!(
        "{HANDSHAKE}
+0  < P. 1:11(10) ack 1 win 257
+0  > . 1:1(0) ack 11
+0  read(4, ..., 100) = 10
+0  write(4, ..., 100) = 100
+0  > P. 1:101(100) ack 11
+.1 < . 11:11(0) ack 101 win 257
+0  close(4) = 0
+0  > F. 101:101(0) ack 11
+.1 < F. 11:11(0) ack 102 win 257
+0  > . 102:102(0) ack 12
"
    );
    let o = run(&script);
    o.assert_passed();
    assert!(o.warnings.is_empty(), "{o}");
    assert!(
        o.trace
            .iter()
            .any(|t| t.contains("matched S. 0:0(0) ack 1 win 65535 <mss 1460>")),
        "{o}"
    );
}

#[test]
fn mismatched_ack_fails_naming_the_line() {
    let script = HANDSHAKE.replace("> S. 0:0(0) ack 1", "> S. 0:0(0) ack 2");
    let o = run(&script);
    let f = failure(&o);
    assert_eq!(f.line, 7);
    assert!(f.message.contains("ack: expected 2 vs actual 1"), "{f}");
    assert!(
        f.message.contains("script: +0  > S. 0:0(0) ack 2 <mss 1460>"),
        "{f}"
    );
    assert!(
        f.message
            .contains("actual: 0.000000 > S. 0:0(0) ack 1 win 65535 <mss 1460>"),
        "{f}"
    );
}

#[test]
fn a_stack_bug_is_reported_at_the_expected_packet() {
    let mut host = MockHost::new();
    host.bad_synack_ack = true;
    let o = run_str(HANDSHAKE, host);
    let f = failure(&o);
    assert_eq!(f.line, 7);
    assert!(f.message.contains("ack: expected 1 vs actual 2"), "{f}");
}

#[test]
fn flags_options_and_window_are_checked() {
    let o = run(&HANDSHAKE.replace(
        "> S. 0:0(0) ack 1 <mss 1460>",
        "> S 0:0(0) ack 1 win 100 <mss 1400>",
    ));
    let f = failure(&o);
    assert!(f.message.contains("flags: expected S vs actual S."), "{f}");
    assert!(f.message.contains("window: expected 100 vs actual 65535"), "{f}");
    assert!(
        f.message
            .contains("TCP option: expected mss 1400 vs actual mss 1460"),
        "{f}"
    );
    let o = run(&HANDSHAKE.replace("<mss 1460>", "<mss 1460,nop,nop,sackOK>"));
    assert!(failure(&o).message.contains("TCP options: expected"), "{o}");
}

#[test]
fn active_open_nonblocking_and_blocking() {
    run("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
+0 fcntl(3, F_GETFL) = 0x802
+0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)
+0 > S 0:0(0) <mss 1460>
+0 connect(3, ..., ...) = -1 EALREADY (Operation already in progress)
+.1 < S. 0:0(0) ack 1 win 5792 <mss 1460>
+0 > . 1:1(0) ack 1
+0 connect(3, ..., ...) = -1 EISCONN (Transport endpoint is already connected)
+0 write(3, ..., 10) = 10
+0 > P. 1:11(10) ack 1
")
    .assert_passed();
    // packetdrill's blocking-connect.pkt, with this mock's SYN options.
    run("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
  +.1...0.200 connect(3, ..., ...) = 0
   +0 > S 0:0(0) <mss 1460>
  +.1 < S. 5000:5000(0) ack 1 win 5792 <mss 1460,nop,wscale 2,nop,nop,sackOK>
   +0 > . 1:1(0) ack 1
")
    .assert_passed();
    // The same, returning too late for its end time.
    let o = run("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
  +.1...0.150 connect(3, ..., ...) = 0
   +0 > S 0:0(0) <mss 1460>
  +.1 < S. 0:0(0) ack 1 win 5792 <mss 1460>
");
    let f = failure(&o);
    assert_eq!(f.line, 2);
    assert!(f.message.contains("still blocked at 0.156250"), "{f}");
}

#[test]
fn blocking_accept_with_end_time() {
    // packetdrill's blocking-accept.pkt, with this mock's SYN-ACK options.
    run("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
   +0 bind(3, ..., ...) = 0
   +0 listen(3, 1) = 0
   +0...0.200 accept(3, ..., ...) = 4

  +.1 < S 0:0(0) win 32792 <mss 1000,nop,wscale 7>
   +0 > S. 0:0(0) ack 1 <mss 1460>
  +.1 < . 1:1(0) ack 1 win 257

  +.1 write(4, ..., 200) = 200
   +0 > P. 1:201(200) ack 1

  +.1 < P. 1:11(10) ack 1 win 257
   +0 > . 201:201(0) ack 11
   +0 read(4, ..., 10) = 10
")
    .assert_passed();
}

#[test]
fn blocking_reads_with_relative_end_times() {
    // packetdrill's blocking-read-2.pkt, with this mock's SYN-ACK options.
    run("// Test for blocking read.
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
   +0 bind(3, ..., ...) = 0
   +0 listen(3, 1) = 0

  +.1 < S 0:0(0) win 32792 <mss 1000,nop,wscale 7>
   +0 > S. 0:0(0) ack 1 <mss 1460>
  +.1 < . 1:1(0) ack 1 win 257
   +0 accept(3, ..., ...) = 4

   +0...0.100 read(4, ..., 2000) = 2000
  +.1 < P. 1:2001(2000) ack 1 win 257
   +0 > . 1:1(0) ack 2001

  +.1...0.200 read(4, ..., 2000) = 2000
  +.1 < P. 2001:4001(2000) ack 1 win 257
   +0 > . 1:1(0) ack 4001

  +.1 < P. 4001:6001(2000) ack 1 win 257
   +0 > . 1:1(0) ack 6001
   +0...0.000 read(4, ..., 1000) = 1000
   +0...0.000 read(4, ..., 1000) = 1000
")
    .assert_passed();
}

#[test]
fn implicit_blocking_read_must_return_before_the_next_call() {
    run(&format!(
        "{HANDSHAKE}+0 read(4, ..., 1000) = 10
+.2 < P. 1:11(10) ack 1 win 257
+0 > . 1:1(0) ack 11
+0 write(4, ..., 1) = 1
+0 > P. 1:2(1) ack 11
"
    ))
    .assert_passed();
    let o = run(&format!(
        "{HANDSHAKE}+0 read(4, ..., 1000) = 10
+.2 write(4, ..., 1) = 1
"
    ));
    let f = failure(&o);
    assert_eq!(f.line, 10);
    assert!(
        f.message
            .contains("blocking read() had not returned when the system call on line 11"),
        "{f}"
    );
    // Non-blocking, the same read fails at once.
    let o = run(&format!(
        "{HANDSHAKE}+0 fcntl(4, F_SETFL, O_RDWR|O_NONBLOCK) = 0
+0 read(4, ..., 1000) = -1 EAGAIN (Resource temporarily unavailable)
+0 read(4, ..., 1000) = 10
"
    ));
    let f = failure(&o);
    assert_eq!(f.line, 12);
    assert_eq!(f.message, "expected result 10 but got -1 with errno EAGAIN");
}

#[test]
fn segments_aggregate_like_tso_unless_strict() {
    let script = format!(
        "{HANDSHAKE}+0 write(4, ..., 3000) = 3000
+0 > P. 1:3001(3000) ack 1
"
    );
    run(&script).assert_passed();
    let o = run(&format!("--strict_segments\n{script}"));
    let f = failure(&o);
    assert!(f.message.contains("flags: expected P. vs actual ."), "{f}");
    assert!(
        f.message
            .contains("payload: expected 3000 bytes vs actual 1460 bytes"),
        "{f}"
    );
    run(&format!(
        "--strict_segments\n{HANDSHAKE}+0 write(4, ..., 3000) = 3000
+0 > . 1:1461(1460) ack 1
+0 > . 1461:2921(1460) ack 1
+0 > P. 2921:3001(80) ack 1
"
    ))
    .assert_passed();
}

#[test]
fn retransmission_timing_is_checked() {
    let script = "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 32792 <mss 1000>
+0 > S. 0:0(0) ack 1 <mss 1460>
+1 > S. 0:0(0) ack 1 <mss 1460>
+2 > S. 0:0(0) ack 1 <mss 1460>
";
    run(script).assert_passed();
    run(&script.replace("+2 >", "+1.9~+2.1 >")).assert_passed();
    let o = run(&script.replace("+1 >", "+0.5 >"));
    let f = failure(&o);
    assert_eq!(f.line, 6);
    assert!(
        f.message.contains("was not sent (waited until 0.562501 s)"),
        "{f}"
    );
    assert!(
        f.message
            .contains("the stack's next packet came at 1.000000 s: 1.000000 > S. 0:0(0) ack 1"),
        "{f}"
    );
    let o = run(&script.replace("+1 >", "+0.5~+0.8 >").replace("+2 >", "+2.5 >"));
    let f = failure(&o);
    assert_eq!(f.line, 6);
    assert!(f.message.contains("waited until 0.862501 s"), "{f}");
    // With the 12.5 % slack of packetdrill, 1.1 s is close enough to 1 s.
    run(&script.replace("+1 >", "+1.1 >").replace("+2 >", "+1.9 >")).assert_passed();
    let cfg = RunnerConfig {
        tolerance_percent: 0.0,
        ..RunnerConfig::default()
    };
    assert_eq!(failure(&run_cfg(&script.replace("+1 >", "+1.1 >"), cfg)).line, 6);
}

#[test]
fn unexpected_outbound_packets_are_reported() {
    // The data is acknowledged at once, but the script forgot the ACK.
    let script = format!(
        "{HANDSHAKE}+0 < P. 1:11(10) ack 1 win 257
+.1 read(4, ..., 100) = 10
"
    );
    let o = run(&script);
    let f = failure(&o);
    assert_eq!(f.line, 11);
    assert!(
        f.message
            .contains("unexpected outbound packet: 0.100000 > . 1:1(0) ack 11 win 65535"),
        "{f}"
    );
    // Without early detection the script passes and the packet is a warning.
    let lax = RunnerConfig {
        strict_unexpected: false,
        ..RunnerConfig::default()
    };
    let o = run_cfg(&script, lax.clone());
    o.assert_passed();
    assert!(
        o.warnings
            .iter()
            .any(|(_, w)| w.contains("not matched by any line")),
        "{o}"
    );
    // With an end grace period it fails.
    let o = run_cfg(
        &script,
        RunnerConfig {
            end_grace: Some(ms(100)),
            ..lax
        },
    );
    assert!(
        failure(&o)
            .message
            .contains("unexpected outbound packet after the last event"),
        "{o}"
    );
    // An expected packet that never comes.
    let o = run(&format!("{HANDSHAKE}+0 > . 1:1(0) ack 1\n"));
    let f = failure(&o);
    assert_eq!(f.line, 10);
    assert!(f.message.contains("expected outbound packet was not sent"), "{f}");
}

#[test]
fn the_runner_answers_the_stacks_arp() {
    let mut host = MockHost::new();
    host.learn_from_request = false;
    let o = run_str(HANDSHAKE, host);
    o.assert_passed();
}

#[test]
fn timestamps_are_mapped() {
    let script = "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 32792 <mss 1000,nop,nop,TS val 100 ecr 0>
+0 > S. 0:0(0) ack 1 <mss 1460,nop,nop,TS val 500 ecr 100>
+.1 < . 1:1(0) ack 1 win 257 <nop,nop,TS val 200 ecr 500>
+0 accept(3, ..., ...) = 4
+0 write(4, ..., 10) = 10
+0 > P. 1:11(10) ack 1 <nop,nop,TS val 600 ecr 200>
+.1 < . 1:1(0) ack 11 win 257 <nop,nop,TS val 300 ecr 600>
";
    let mut host = MockHost::new();
    run_str(script, &mut host).assert_passed();
    // The stack's TS val is its clock in ms + 7 (script time 0 is 1 s):
    // script 500 is live 1007 and script 600 live 1107.
    assert_eq!(host.ecrs_seen, vec![1007, 1107]);
    // With a TS val tick, 600 is 100 ms after 500, as it should be.
    let tick = RunnerConfig {
        ts_val_tick: Some(ms(1)),
        ..RunnerConfig::default()
    };
    run_cfg(script, tick.clone()).assert_passed();
    let o = run_cfg(&script.replace("TS val 600", "TS val 650"), tick);
    assert!(
        failure(&o).message.contains("TS val: expected 650 vs actual 600"),
        "{o}"
    );
    // Outbound TS ecr is the peer's val as written.
    let o = run(&script.replace("TS val 500 ecr 100", "TS val 500 ecr 99"));
    assert!(
        failure(&o).message.contains("TS ecr: expected 99 vs actual 100"),
        "{o}"
    );
    // An inbound ecr needs an outbound val to map from.
    let o = run(&script.replace("<mss 1460,nop,nop,TS val 500 ecr 100>", "<...>"));
    let f = failure(&o);
    assert_eq!(f.line, 6);
    assert!(
        f.message
            .contains("unable to infer live TS ecr for script TS ecr 500"),
        "{f}"
    );
}

#[test]
fn skipped_and_unsupported_lines_are_reported() {
    let o = run(&format!(
        "`sysctl -q net.ipv4.tcp_timestamps=0`\n{HANDSHAKE}+0 %{{ print(1) }}%\n"
    ));
    assert!(o.passed, "{o}");
    assert_eq!(o.skipped.len(), 2);
    assert_eq!(
        o.skipped[0],
        (1, "`sysctl -q net.ipv4.tcp_timestamps=0`".to_string())
    );
    assert_eq!(o.skipped[1].0, 11);
    let strict = std::panic::catch_unwind(|| o.assert_passed());
    assert!(strict.is_err());
    o.assert_passed_allowing_skips();

    let o = run(&format!("{HANDSHAKE}+0 epoll_create(1) = 5\n"));
    let f = failure(&o);
    assert_eq!(f.line, 10);
    assert!(
        f.message
            .contains("unsupported by the tapir runner: system call epoll_create()"),
        "{f}"
    );
    let o = run(&format!("{HANDSHAKE}+0 recv(4, ..., 10, MSG_PEEK) = 10\n"));
    assert!(failure(&o).message.contains("recv() flags 0x2"), "{o}");
    let o = run("0 socket(..., SOCK_DGRAM, IPPROTO_UDP) = 3\n");
    assert!(failure(&o).message.contains("only SOCK_STREAM"), "{o}");
}

#[test]
fn parse_errors_and_bad_scripts_fail_with_lines() {
    let o = run("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 > S 0:0(0) <mss 1460,sackOK>\n");
    let f = failure(&o);
    assert_eq!(f.line, 2);
    assert!(
        f.message
            .starts_with("parse error at column 15: TCP options are not padded"),
        "{f}"
    );
    let o = run("0.5 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n");
    assert_eq!(failure(&o).message, "first event should be at time 0");
    let o = run("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n0.2 close(3) = 0\n0.1 close(3) = 0\n");
    assert!(failure(&o).message.contains("time goes backward"), "{o}");
    let o = run("0 close(3) = 0\n");
    assert_eq!(failure(&o).message, "unable to find fd with script fd 3");
    let dir = std::env::temp_dir().join(format!("tapir-pd-{}.pkt", std::process::id()));
    std::fs::write(&dir, HANDSHAKE.replace("ack 1 <mss", "ack 3 <mss")).unwrap();
    let o = run_file(&dir, MockHost::new);
    std::fs::remove_file(&dir).unwrap();
    let f = failure(&o);
    assert!(
        f.message
            .starts_with(&format!("{}:7: outbound packet mismatch", dir.display())),
        "{f}"
    );
}

#[test]
fn socket_options_errors_and_poll() {
    run(&format!(
        "{HANDSHAKE}+0 setsockopt(4, IPPROTO_TCP, TCP_NODELAY, [1], 4) = 0
+0 getsockopt(4, IPPROTO_TCP, TCP_NODELAY, [1], [4]) = 0
+0 setsockopt(4, IPPROTO_TCP, TCP_KEEPIDLE, [5], 4) = -1 ENOPROTOOPT (Protocol not available)
+0 setsockopt(4, SOL_SOCKET, SO_LINGER, {{onoff=1, linger=0}}, 8) = -1 ENOPROTOOPT (Protocol not available)
+0 poll([{{fd=4, events=POLLIN|POLLOUT, revents=POLLOUT}}], 1, 0) = 1
+0...0.1 poll([{{fd=4, events=POLLIN, revents=POLLIN}}], 1, 1000) = 1
+.1 < P. 1:11(10) ack 1 win 257
+0 > . 1:1(0) ack 11
+0...0.05 poll([{{fd=3, events=POLLIN}}], 1, 50) = 0
"
    ))
    .assert_passed();
    let o = run(&format!(
        "{HANDSHAKE}+0 getsockopt(4, IPPROTO_TCP, TCP_NODELAY, [1], [4]) = 0\n"
    ));
    assert!(failure(&o).message.contains("expected 1 actual 0"), "{o}");
    // A refused connect, seen through SO_ERROR and the next write.
    run("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
+0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)
+0 > S 0:0(0) <mss 1460>
+0 < R. 0:0(0) ack 1 win 0
+0 getsockopt(3, SOL_SOCKET, SO_ERROR, [ECONNREFUSED], [4]) = 0
+0 getsockopt(3, SOL_SOCKET, SO_ERROR, [0], [4]) = 0
")
    .assert_passed();
}

#[test]
fn gvisor_reset_for_stray_ack_passes_verbatim() {
    // gVisor test/packetdrill/reset_for_ack_when_no_syn_cookies_in_use.pkt
    run(
        "// Test that a listening socket generates a RST when it receives an
// ACK and syn cookies are not in use.

0  socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, ..., ...) = 0

+0 listen(3, 1) = 0
+0.1 < . 1:1(0) ack 1 win 32792
+0 > R 1:1(0) ack 0 win 0",
    )
    .assert_passed();
}

#[test]
fn packets_of_another_connection_fail_unless_ignored() {
    // A second SYN from a new peer port, while the first connection is the
    // one under test: the mock answers it, the script does not expect it.
    let script = format!(
        "{HANDSHAKE}+0 < 48999 > 8080 S 0:0(0) win 100 <mss 1000>
+0 write(4, ..., 10) = 10
+0 > P. 1:11(10) ack 1
"
    );
    let o = run(&script);
    let f = failure(&o);
    assert_eq!(f.line, 12);
    assert!(
        f.message
            .contains("not for the connection under test (ports 8080 > 48999"),
        "{f}"
    );
    let o = run_cfg(
        &script,
        RunnerConfig {
            ignore_other_flows: true,
            ..RunnerConfig::default()
        },
    );
    o.assert_passed();
    assert!(
        o.warnings
            .iter()
            .any(|(l, w)| *l == 11 && w.contains("dropped 0.100000 > S.")),
        "{o}"
    );
}

// A port with no listener: the mock resets the stray ACK; then the peer
// sends a RST, which must draw nothing.
const RST_FOR_RST: &str = "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+.1 < 9000 > 9090 . 1:1(0) ack 1 win 32792
+0 > 9090 > 9000 R 1:1(0) win 0
+.1 < 9000 > 9090 R 1:1(0) win 0
";

#[test]
fn the_end_check_fails_a_packet_sent_after_the_last_line() {
    let misbehaving = || {
        let mut host = MockHost::new();
        host.rst_for_rst = true;
        host
    };
    // packetdrill's leniency (the default): the RST that answers the last
    // line's RST goes unnoticed, at most a warning.
    let o = run_str(RST_FOR_RST, misbehaving());
    o.assert_passed();
    assert!(
        o.warnings
            .iter()
            .any(|(_, w)| w.contains("not matched by any line: 0.200000 > R.")),
        "{o}"
    );
    // The suite's end check fails the script at its last line.
    let o = run_str_with(RST_FOR_RST, misbehaving(), RunnerConfig::suite());
    let f = failure(&o);
    assert_eq!(f.line, 6);
    assert!(
        f.message
            .contains("unexpected outbound packet after the last event: 0.200000 > R. 0:0(0) ack 2 win 0"),
        "{f}"
    );
    // A stack that keeps quiet passes it.
    run_str_with(RST_FOR_RST, MockHost::new(), RunnerConfig::suite()).assert_passed();
}

#[test]
fn the_end_check_ends_with_its_grace_period() {
    // The SYN-ACK is never acknowledged, so the mock retransmits it after
    // its RTO: caught inside a longer grace, not after the suite's 100 ms.
    let script = "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 32792 <mss 1000>
+0 > S. 0:0(0) ack 1 <mss 1460>
";
    let rto = |ms: u64| {
        let mut host = MockHost::new();
        host.synack_rto = Duration::from_millis(ms);
        host
    };
    run_str_with(script, rto(101), RunnerConfig::suite()).assert_passed();
    let o = run_str_with(script, rto(99), RunnerConfig::suite());
    assert!(
        failure(&o)
            .message
            .contains("unexpected outbound packet after the last event: 0.099000 > S. 0:0(0) ack 1"),
        "{o}"
    );
}
