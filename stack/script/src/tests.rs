//! Parser tests on scripts from packetdrill's and gVisor's corpora, and
//! runner tests against the toy TCP in `mock.rs`.

use core::time::Duration;

use super::mock::MockHost;
use super::*;

fn events(text: &str) -> Vec<Event> {
    match parse(text) {
        Ok(s) => s.events,
        Err(e) => panic!("parse error: {e}"),
    }
}

fn packet(e: &Event) -> &PacketSpec {
    match &e.kind {
        EventKind::Packet(p) => p,
        other => panic!("line {}: not a packet: {other:?}", e.line),
    }
}

fn syscall(e: &Event) -> &SyscallSpec {
    match &e.kind {
        EventKind::Syscall(s) => s,
        other => panic!("line {}: not a syscall: {other:?}", e.line),
    }
}

fn err(text: &str) -> ParseError {
    parse(text).expect_err("should not parse")
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

// gVisor test/packetdrill/accept_ack_drop.pkt
const ACCEPT_ACK_DROP: &str = "// Test that the accept works if the final ACK is dropped and an ack with data
// follows the dropped ack.

0  socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, ..., ...) = 0

// Set backlog to 1 so that we can easily test.
+0 listen(3, 1) = 0

// Establish a connection without timestamps.
+0.0 < S 0:0(0) win 32792 <mss 1460,sackOK,nop,nop,nop,wscale 7>
+0.0 > S. 0:0(0) ack 1    <...>

+0.0 < . 1:5(4) ack 1 win 257
+0.0 > . 1:1(0) ack 5 <...>

// This should cause connection to transition to connected state.
+0.000 accept(3, ..., ...) = 4
+0.000 fcntl(4, F_SETFL, O_RDWR|O_NONBLOCK) = 0

// Now read the data and we should get 4 bytes.
+0.000 read(4,..., 4) = 4
+0.000 close(4) = 0

+0.0 > F. 1:1(0) ack 5 <...>
+0.0 < F. 5:5(0) ack 2 win 257
+0.01 > . 2:2(0) ack 6 <...>";

// packetdrill gtests/net/packetdrill/tests/packet-timeout.pkt
const PACKET_TIMEOUT: &str = "// Test that a packet that never arrives causes a timeout

// Set up config and our tweaks.
`../../common/defaults.sh
 ../../tcp/common/set_sysctls.py  /proc/sys/net/ipv4/tcp_syn_retries=1`

   +0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0...30 connect(3, ..., ...) = -1 ETIMEDOUT (Connection Timed Out)

   +0 > S 0:0(0) <mss 1460, sackOK, TS val 100 ecr 0, nop,wscale 8>
   +1 > S 0:0(0) <mss 1460, sackOK, TS val 1100 ecr 0, nop,wscale 8>
   // Failure: error handling packet: Timed out waiting for packet
   +2 > S 0:0(0) <mss 1460, sackOK, TS val 3100 ecr 0, nop,wscale 8>

`/tmp/sysctl_restore_${PPID}.sh`
";

// From packetdrill gtests/net/tcp/fastopen/client/poll.pkt
const FASTOPEN_POLL: &str = "`../../common/defaults.sh`
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
   +0 sendto(3, ..., 0, MSG_FASTOPEN, ..., ...) = -1 EINPROGRESS (Operation is now in progress)
   +0 > S 0:0(0) <mss 1460,nop,nop,sackOK,nop,wscale 8,FO,nop,nop>
   +0...0.010 poll([{fd=3,
                     events=POLLIN|POLLOUT|POLLERR,
                     revents=POLLOUT}], 1, 100) = 1
 +.01 < S. 123:123(0) ack 1 win 5840 <mss 1040,nop,nop,sackOK,nop,wscale 6,FO abcd1234,nop,nop>
   +0 > . 1:1(0) ack 1
   +0 %{ assert (tcpi_options & TCPI_OPT_SYN_DATA) == 0, tcpi_options }%
 +.01 close(3) = 0
";

// gVisor test/packetdrill/linux/tcp_user_timeout.pkt (tail)
const USER_TIMEOUT_TAIL: &str = "0 close(4) = 0
+0 > F. 101:101(0) ack 1 <...>
+.3~+.400 > F. 101:101(0) ack 1 <...>
+1.2~+1.300 > F. 101:101(0) ack 1 <...>
+.1 < . 1:2(1) ack 102 win 32792
+0 > R 102:102(0) win 0
";

#[test]
fn parses_gvisor_accept_ack_drop() {
    let ev = events(ACCEPT_ACK_DROP);
    assert_eq!(ev.len(), 14);
    assert_eq!(ev[0].line, 4);
    assert_eq!(ev[0].time, TimeSpec::Absolute(Duration::ZERO));
    let s = syscall(&ev[0]);
    assert_eq!(s.name, "socket");
    assert_eq!(
        s.args,
        vec![
            Expr::Ellipsis,
            Expr::Word("SOCK_STREAM".into()),
            Expr::Word("IPPROTO_TCP".into())
        ]
    );
    assert_eq!(s.result, Expr::Int(3));
    let syn = packet(&ev[3]);
    assert_eq!(syn.direction, Direction::Inbound);
    assert!(syn.flags.syn && !syn.flags.ack);
    assert_eq!((syn.seq, syn.len, syn.window), (0, 0, Some(32792)));
    assert_eq!(
        syn.options.as_deref(),
        Some(
            &[
                TcpOption::Mss(1460),
                TcpOption::SackPermitted,
                TcpOption::Nop,
                TcpOption::Nop,
                TcpOption::Nop,
                TcpOption::WindowScale(7)
            ][..]
        )
    );
    let synack = packet(&ev[4]);
    assert_eq!(synack.flags.script(), "S.");
    assert_eq!((synack.ack, synack.options.clone()), (Some(1), None));
    assert_eq!(ev[4].text, "+0.0 > S. 0:0(0) ack 1    <...>");
    let data = packet(&ev[5]);
    assert_eq!((data.seq, data.len), (1, 4));
    let fcntl = syscall(&ev[8]);
    assert_eq!(
        fcntl.args[2],
        Expr::Or(
            Box::new(Expr::Word("O_RDWR".into())),
            Box::new(Expr::Word("O_NONBLOCK".into()))
        )
    );
    assert_eq!(ev[13].time, TimeSpec::Relative(ms(10)));
}

#[test]
fn parses_commands_end_times_and_spaced_options() {
    let ev = events(PACKET_TIMEOUT);
    assert_eq!(ev.len(), 7);
    assert_eq!(ev[0].time, TimeSpec::Untimed);
    assert!(matches!(&ev[0].kind, EventKind::Skipped(Skipped::Shell(c)) if c.contains("tcp_syn_retries=1")));
    assert_eq!(ev[0].line, 4);
    let connect = syscall(&ev[2]);
    assert_eq!(connect.end, Some(Duration::from_secs(30)));
    assert_eq!(connect.result, Expr::Int(-1));
    assert_eq!(connect.errno.as_deref(), Some("ETIMEDOUT"));
    assert_eq!(connect.note.as_deref(), Some("Connection Timed Out"));
    let syn = packet(&ev[4]);
    assert_eq!(
        syn.options.as_ref().unwrap()[2],
        TcpOption::Timestamp { val: 1100, ecr: 0 }
    );
    assert_eq!(ev[4].time, TimeSpec::Relative(Duration::from_secs(1)));
    assert_eq!(ev[6].time, TimeSpec::Untimed);
    assert_eq!(ev[6].line, 15);
}

#[test]
fn parses_poll_fastopen_and_code() {
    let ev = events(FASTOPEN_POLL);
    let sendto = syscall(&ev[3]);
    assert_eq!(sendto.args.len(), 6);
    assert_eq!(sendto.note.as_deref(), Some("Operation is now in progress"));
    let syn = packet(&ev[4]);
    assert_eq!(syn.options.as_ref().unwrap()[6], TcpOption::FastOpen(vec![]));
    let poll = syscall(&ev[5]);
    assert_eq!(poll.end, Some(ms(10)));
    assert_eq!(ev[5].line, 6);
    let Expr::List(fds) = &poll.args[0] else {
        panic!("not a list")
    };
    let Expr::Braces(fields) = &fds[0] else {
        panic!("not a struct")
    };
    assert_eq!(fields.len(), 3);
    assert!(
        matches!(&fields[2], Expr::Assign(k, v) if **k == Expr::Word("revents".into())
        && **v == Expr::Word("POLLOUT".into()))
    );
    let synack = packet(&ev[6]);
    assert_eq!(synack.seq, 123);
    assert_eq!(
        synack.options.as_ref().unwrap()[6],
        TcpOption::FastOpen(vec![0xab, 0xcd, 0x12, 0x34])
    );
    assert!(matches!(&ev[8].kind, EventKind::Skipped(Skipped::Code(c)) if c.starts_with("assert")));
    assert_eq!(ev[8].time, TimeSpec::Relative(Duration::ZERO));
}

#[test]
fn parses_time_ranges_and_flagless_ack_fields() {
    let ev = events(USER_TIMEOUT_TAIL);
    assert_eq!(ev[2].time, TimeSpec::RelativeRange(ms(300), ms(400)));
    assert_eq!(ev[3].time, TimeSpec::RelativeRange(ms(1200), ms(1300)));
    let rst = packet(&ev[5]);
    assert_eq!(
        (rst.flags.script(), rst.ack, rst.window),
        ("R".into(), None, Some(0))
    );
    let ev = events("0.1~0.2 > . 1:1(0) ack 1\n* > R. 1:1(0) ack 1 win 0\n0.300 < . 1:1(0) ack 1 win 9");
    assert_eq!(ev[0].time, TimeSpec::AbsoluteRange(ms(100), ms(200)));
    assert_eq!(ev[1].time, TimeSpec::Any);
    assert_eq!(ev[2].time, TimeSpec::Absolute(ms(300)));
}

#[test]
fn parses_options_lines_and_ip_prefixes() {
    let s = parse(
        "--tolerance_usecs=10000\n--strict_segments\n--define=PROTO=IPPROTO_TCP\n\
         0 < [ect0] S 0:0(0) win 100\n\
         +0 > (tos 0x10) S. 0:0(0) ack 1\n\
         +0 > [ttl 64] . 1:1(0) ack 1\n\
         +0 > [ect01] FP. 1:11(10) ack 1 urg 5\n\
         +0 < 1234 > 8080 - 1:1(0) win 7\n\
         +0 < [ce, flowlabel 0x1] . 1:1(0) ack 1 win 5 <sack 1:2 3:4,nop,nop>\n\
         +0 > SEW 0:0(0) <md5 0102,eol,eol,eol,eol>",
    )
    .unwrap();
    assert_eq!(s.options.len(), 3);
    assert_eq!(s.options[0].value.as_deref(), Some("10000"));
    assert_eq!(
        s.options[1],
        ScriptOption {
            line: 2,
            name: "strict_segments".into(),
            value: None
        }
    );
    assert_eq!(s.options[2].value.as_deref(), Some("PROTO=IPPROTO_TCP"));
    let ev = &s.events;
    assert_eq!(packet(&ev[0]).ip.ecn, Some(Ecn::Ect0));
    assert_eq!(packet(&ev[1]).ip.tos, Some(0x10));
    assert_eq!(packet(&ev[2]).ip.ttl, Some(64));
    let fp = packet(&ev[3]);
    assert!(fp.ip.ect01 && fp.flags.fin && fp.flags.psh && fp.flags.ack && fp.urg_ptr == 5);
    let ports = packet(&ev[4]);
    assert_eq!(
        (ports.ports, ports.flags),
        (Some((1234, 8080)), TcpFlags::default())
    );
    let sack = packet(&ev[5]);
    assert_eq!((sack.ip.ecn, sack.ip.flow_label), (Some(Ecn::Ce), Some(1)));
    assert_eq!(
        sack.options.as_ref().unwrap()[0],
        TcpOption::Sack(vec![(1, 2), (3, 4)])
    );
    let sew = packet(&ev[6]);
    assert!(sew.flags.syn && sew.flags.ece && sew.flags.cwr && !sew.flags.ack);
    assert_eq!(sew.options.as_ref().unwrap()[0], TcpOption::Md5(vec![1, 2]));
}

#[test]
fn parses_syscall_argument_shapes() {
    let ev = events(
        "0 bind(3, {sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr(\"192.0.2.1\")}, 16) = 0\n\
         +0 setsockopt(3, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, 8) = 0\n\
         +0 writev(4, [{..., 10}, {..., 20}], 2) = 30\n\
         +0 getsockopt(3, SOL_SOCKET, SO_ERROR, [ECONNREFUSED], [4]) = 0\n\
         +0 write(4, \"abc\" \"def\"..., 6) = 6\n\
         +0 accept(3, ..., ...) = -1 EWOULDBLOCK (operation would block)\n\
         +0 fcntl(3, F_GETFL) = 0x802\n\
         +0 epoll_wait(5, {events=EPOLLIN, fd=4}, 1, 0) = 1\n\
         +0 sendmsg(4, {msg_name(...)=..., msg_iov(1)=[{..., 10}], msg_flags=0}, 0) = 10\n\
         +0 close(4) = 0 (a note without errno)",
    );
    let Expr::Braces(f) = &syscall(&ev[0]).args[1] else {
        panic!()
    };
    assert_eq!(
        f[1],
        Expr::Assign(
            Box::new(Expr::Word("sin_port".into())),
            Box::new(Expr::Call("htons".into(), vec![Expr::Int(8080)]))
        )
    );
    assert!(matches!(&syscall(&ev[2]).args[1], Expr::List(v) if v.len() == 2));
    assert_eq!(syscall(&ev[3]).args[4], Expr::List(vec![Expr::Int(4)]));
    assert_eq!(syscall(&ev[4]).args[1], Expr::Str("abcdef".into()));
    assert_eq!(syscall(&ev[5]).errno.as_deref(), Some("EWOULDBLOCK"));
    assert_eq!(syscall(&ev[6]).result, Expr::Int(0x802));
    assert!(matches!(&ev[7].kind, EventKind::Unsupported(r) if r.contains("epoll_wait")));
    assert!(matches!(&ev[8].kind, EventKind::Unsupported(r) if r.contains("sendmsg")));
    assert_eq!(syscall(&ev[9]).note.as_deref(), Some("a note without errno"));
}

#[test]
fn parses_unsupported_packets_as_items() {
    let ev = events(
        "0 > udp (10)\n\
         +0 < icmp unreachable frag_needed mtu 1200 [1:1461(1460)]\n\
         +0 < ipv4 192.168.0.1 > 192.168.0.2: gre: . 1:1(0) ack 1 win 10\n\
         +0 < . 1:1(0) ack 1 win 10 {mut tcp mss}\n\
         +0 close(3) = 0",
    );
    assert_eq!(ev.len(), 5);
    for (e, what) in ev.iter().zip(["UDP", "ICMP", "encapsulated", "fuzzing"]) {
        assert!(
            matches!(&e.kind, EventKind::Unsupported(r) if r.contains(what)),
            "{e:?}"
        );
    }
    assert_eq!(syscall(&ev[4]).name, "close");
}

// packetdrill gtests/net/tcp/accecn/reflector/tcp_accecn_synack_ce.pkt (head)
const ACCECN_SYNACK_CE: &str = "// Test SYNACK CE & received_ce update

`../../common/defaults.sh
sysctl -q net.ipv4.tcp_ecn=3
sysctl -q net.ipv4.tcp_ecn_option=2
`

    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 4
+.002 ... 0.052 connect(4, ..., ...) = 0

+.002 > [noecn] SEWA 0:0(0) <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 8>
+0.05 < [ce] SW. 0:0(0) ack 1 win 32767 <mss 1460,ECN e0b 1 ceb 0 e1b 1,nop,nop,nop,sackOK,nop,wscale 8>
+.002 > [ect0] WA. 1:1(0) ack 1 <ECN e1b 1 ceb 0 e0b 1,nop>

+0.01 write(4, ..., 100) = 100
+.002 > [ect0] P.6 1:101(100) ack 1
+.002 > [ect0] .6  101:101(0) ack 101
";

#[test]
fn parses_accecn_flags_and_reports_its_option_unsupported() {
    let ev = events(ACCECN_SYNACK_CE);
    assert_eq!(ev.len(), 9);
    assert_eq!(syscall(&ev[2]).end, Some(ms(52)));
    let syn = packet(&ev[3]);
    assert_eq!(syn.ip.ecn, Some(Ecn::NotEct));
    assert!(syn.flags.syn && syn.flags.ece && syn.flags.cwr && syn.flags.ae && !syn.ace);
    assert!(matches!(&ev[4].kind, EventKind::Unsupported(r) if r.contains("'ECN'")));
    assert!(matches!(&ev[5].kind, EventKind::Unsupported(_)));
    assert_eq!(syscall(&ev[6]).name, "write");
    assert_eq!(ev[7].line, 16);
    let p6 = packet(&ev[7]);
    assert!(p6.ace && p6.flags.psh && p6.flags.ack && p6.flags.cwr && p6.flags.ae && !p6.flags.ece);
    let ace6 = packet(&ev[8]);
    assert_eq!((ace6.flags.script(), ace6.seq), ("WA.".to_string(), 101));
}

#[test]
fn parse_errors_name_line_and_column() {
    let e = err("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 < S 0:0(0) <mss 1460>\n");
    assert_eq!((e.line, e.col), (2, 4));
    assert!(e.message.contains("window must be specified"), "{e}");
    let e = err("0 < S 0:0(0) win 1 <...>");
    assert!(e.message.contains("<...>"), "{e}");
    let e = err("0 > . 1:5(3) ack 1");
    assert_eq!(
        (e.line, e.col, e.message.as_str()),
        (1, 7, "inconsistent TCP sequence numbers and payload size")
    );
    let e = err("0 > SX 0:0(0)");
    assert!(e.message.contains("Invalid TCP flag: 'X'"), "{e}");
    let e = err("0 > S 0:0(0) <mss 1460,sackOK>");
    assert!(e.message.contains("not padded"), "{e}");
    let e = err("\n\n  * close(3) = 0");
    assert_eq!((e.line, e.col), (3, 3));
    assert!(e.message.contains("outbound packets"), "{e}");
    let e = err("0 > . 1:1(0) <mss 1460,bogus 3>");
    assert!(e.message.contains("unknown TCP option 'bogus'"), "{e}");
    let e = err("+.3~+.2 > . 1:1(0)");
    assert!(e.message.contains("backwards"), "{e}");
    let e = err("0 close(3) = 0\n-1 close(4) = 0");
    assert_eq!(e.line, 2);
    let e = err("0 close(3 = 0");
    assert!(e.message.contains("expected ',' or ')'"), "{e}");
    let e = err("0 close(3) = 0\n/* never closed");
    assert_eq!((e.line, e.col), (2, 1));
    let e = err("0 read(3, ..., 10) = 10 EAGAIN (unclosed");
    assert!(e.message.contains("unterminated note"), "{e}");
    assert_eq!(e.to_string(), "1:32: unterminated note: missing ')'");
}

// ----------------------------------------------------------------- runner

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
