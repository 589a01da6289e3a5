//! Parser tests on scripts from packetdrill's and gVisor's corpora.

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
