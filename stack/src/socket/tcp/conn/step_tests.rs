//! The arrival steps of RFC 9293 3.10.7.4 and the output decisions, one
//! at a time, on a connection driven directly: a segment or a timer in,
//! the `Outcome` and the next segment out. No frames, no interface.

use super::*;
use core::net::Ipv4Addr;

const ISS: u32 = 1_000;
const IRS: u32 = 5_000;
const WIN: u16 = 65535;

fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn seg(flags: u8, seq: u32, ack: u32, window: u16) -> TcpRepr {
    TcpRepr {
        src_port: 40000,
        dst_port: 8080,
        seq,
        ack,
        flags: TcpFlags(flags),
        window,
        urgent: 0,
        options: TcpOptions::default(),
    }
}

const ACK: u8 = TcpFlags::ACK.0;
const SYN: u8 = TcpFlags::SYN.0;
const FIN: u8 = TcpFlags::FIN.0;
const RST: u8 = TcpFlags::RST.0;
const PSH: u8 = TcpFlags::PSH.0;

/// An ESTABLISHED connection (a passive open, no options: MSS 536), with
/// the peer's RCV.NXT at ISS + 1 and ours at IRS + 1.
fn established() -> Connection {
    let cfg = TcpConfig::default();
    let ep = Endpoints {
        local: SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 2), 8080),
        remote: SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 1), 40000),
        iss: SeqNumber(ISS),
        ts_offset: 0,
        mtu: 1500,
    };
    let mut c = Connection::accept_syn(at(0), &cfg, ep, &seg(SYN, IRS, 0, WIN));
    c.poll_segment(at(0)).expect("SYN-ACK");
    let out = c.process(at(10), &seg(ACK, IRS + 1, ISS + 1, WIN), &[]);
    assert_eq!(out.transition, Transition::Established);
    c
}

/// The next segment's header, if any.
fn next(c: &mut Connection, now: Instant) -> Option<(TcpRepr, usize)> {
    c.poll_segment(now).map(|(r, _, len)| (r, len))
}

// ----- input, one step at a time -----

/// First step: an unacceptable segment draws <SEQ=SND.NXT><ACK=RCV.NXT>
/// and is dropped, at most once per `invalid_ratelimit` when it carries no
/// data (RFC 5961 7).
#[test]
fn check_sequence_acks_an_unacceptable_segment_within_the_limit() {
    let mut c = established();
    let old = seg(ACK, IRS - 100, ISS + 1, WIN);
    let out = c.process(at(100), &old, &[]);
    assert_eq!(out.transition, Transition::None);
    let (ack, len) = next(&mut c, at(100)).expect("an ACK");
    assert_eq!(
        (ack.seq, ack.ack, ack.flags, len),
        (ISS + 1, IRS + 1, TcpFlags::ACK, 0)
    );
    c.process(at(200), &old, &[]);
    assert!(next(&mut c, at(200)).is_none(), "a second one within 500 ms");
    c.process(at(700), &old, &[]);
    assert!(next(&mut c, at(700)).is_some(), "and again after 500 ms");
}

/// Second step (RFC 5961 3.2): a RST exactly at RCV.NXT resets; one
/// elsewhere in the window draws a challenge ACK and changes nothing.
#[test]
fn check_rst_resets_only_at_rcv_nxt() {
    let mut c = established();
    let out = c.process(at(100), &seg(RST, IRS + 10, 0, 0), &[]);
    assert_eq!(out.challenge, Some(Challenge::Send));
    assert_eq!(
        (out.transition, c.state),
        (Transition::None, TcpState::Established)
    );

    let out = c.process(at(200), &seg(RST, IRS + 1, 0, 0), &[]);
    assert_eq!(out.transition, Transition::Closed);
    assert_eq!(out.error, Some(SocketError::ConnectionReset));
    assert!(!out.writable, "nothing more can be sent");
    assert_eq!(c.state, TcpState::Closed);
}

/// Fourth step (RFC 5961 4.2): a SYN on a synchronized connection is
/// answered with a challenge ACK, whatever its sequence number.
#[test]
fn check_syn_challenges() {
    let mut c = established();
    let out = c.process(at(100), &seg(SYN, IRS + 1, 0, WIN), &[]);
    assert_eq!(out.challenge, Some(Challenge::Send));
    assert_eq!(c.state, TcpState::Established);
    c.grant_challenge();
    let (ack, _) = next(&mut c, at(100)).expect("the challenge ACK");
    assert_eq!((ack.seq, ack.ack), (ISS + 1, IRS + 1));
}

/// Fifth step: an ACK of something never sent is answered and dropped
/// (RFC 9293, as a challenge per RFC 5961 5.2); an acceptable one frees
/// the acknowledged bytes and makes room to write.
#[test]
fn check_ack_rejects_unsent_and_takes_acceptable() {
    let mut c = established();
    c.send(&[7; 100]);
    let (data, len) = next(&mut c, at(100)).expect("data");
    assert_eq!((data.seq, len), (ISS + 1, 100));

    let out = c.process(at(150), &seg(ACK, IRS + 1, ISS + 500, WIN), &[]);
    assert_eq!(out.challenge, Some(Challenge::Send));
    assert_eq!(c.send_queue_len(), 100, "nothing taken off the queue");

    let out = c.process(at(200), &seg(ACK, IRS + 1, ISS + 101, WIN), &[]);
    assert_eq!(out.challenge, None);
    assert!(out.writable);
    assert_eq!(c.send_queue_len(), 0);
    assert_eq!(c.stats().snd_una, ISS + 101);
}

/// Seventh step: in-order text becomes readable; text beyond a hole is
/// kept and acknowledged at once (RFC 5681 4.2) with RCV.NXT unchanged.
#[test]
fn process_text_in_order_and_out_of_order() {
    let mut c = established();
    let out = c.process(at(100), &seg(ACK | PSH, IRS + 101, ISS + 1, WIN), &[1; 50]);
    assert!(!out.readable, "out of order: nothing to read yet");
    let (dup, _) = next(&mut c, at(100)).expect("an immediate duplicate ACK");
    assert_eq!(dup.ack, IRS + 1);

    let out = c.process(at(110), &seg(ACK | PSH, IRS + 1, ISS + 1, WIN), &[2; 100]);
    assert!(out.readable);
    let (ack, _) = next(&mut c, at(110)).expect("the hole filled: ACK at once");
    assert_eq!(ack.ack, IRS + 151);
    let mut buf = [0u8; 200];
    assert_eq!(c.recv(&mut buf), 150);
    assert_eq!((buf[0], buf[100], buf[149]), (2, 1, 1));
}

/// Eighth step: the FIN, in order, moves ESTABLISHED to CLOSE-WAIT, is
/// acknowledged, and reads as end of stream.
#[test]
fn process_fin_closes_the_receive_side() {
    let mut c = established();
    let out = c.process(at(100), &seg(ACK | FIN, IRS + 1, ISS + 1, WIN), &[]);
    assert!(out.readable);
    assert_eq!(c.state, TcpState::CloseWait);
    assert!(c.peer_closed());
    let (ack, _) = next(&mut c, at(100)).expect("the FIN's ACK");
    assert_eq!(ack.ack, IRS + 2);
}

/// Eighth step in FIN-WAIT-2: the peer's FIN completes the close, and
/// the owner is told to hand the 4-tuple to TIME-WAIT.
#[test]
fn process_fin_in_fin_wait_2_enters_time_wait() {
    let mut c = established();
    c.shutdown_write();
    let (fin, _) = next(&mut c, at(100)).expect("our FIN");
    assert!(fin.flags.fin());
    c.process(at(150), &seg(ACK, IRS + 1, ISS + 2, WIN), &[]);
    assert_eq!(c.state, TcpState::FinWait2);
    let out = c.process(at(200), &seg(ACK | FIN, IRS + 1, ISS + 2, WIN), &[]);
    assert_eq!(out.transition, Transition::TimeWait);
    let (info, owes_ack) = c.hand_over_time_wait();
    assert!(owes_ack, "the FIN's ACK is the entry's to send");
    assert_eq!((info.snd_nxt.0, info.rcv_nxt.0), (ISS + 2, IRS + 2));
    assert!(
        next(&mut c, at(200)).is_none(),
        "the connection itself sends nothing more"
    );
}

// ----- output decisions -----

/// Nagle (RFC 896, Minshall's variant): a small segment waits while an
/// earlier small one is unacknowledged, unless TCP_NODELAY.
#[test]
fn nagle_holds_a_second_small_segment() {
    let mut c = established();
    c.send(&[1; 10]);
    assert_eq!(next(&mut c, at(100)).map(|(_, l)| l), Some(10));
    c.send(&[2; 10]);
    assert!(next(&mut c, at(100)).is_none(), "held behind the first");
    c.set_option(at(100), TcpOption::NoDelay(true));
    assert_eq!(next(&mut c, at(100)).map(|(_, l)| l), Some(10));
}

/// RFC 9293 3.8.6.1: data waiting for a zero window arms the persist
/// timer, whose expiry sends a probe with an old sequence number.
#[test]
fn zero_window_is_probed_by_the_persist_timer() {
    let mut c = established();
    c.process(at(50), &seg(ACK, IRS + 1, ISS + 1, 0), &[]);
    c.send(&[1; 100]);
    assert!(next(&mut c, at(100)).is_none(), "the window is closed");
    let deadline = c.schedule().deadline.expect("the persist timer");
    let out = c.on_timer(deadline);
    assert_eq!(out.transition, Transition::None);
    let (probe, len) = next(&mut c, deadline).expect("a probe");
    assert_eq!((probe.seq, len), (ISS, 0));
}

/// RFC 5681 3.2: the third duplicate ACK retransmits the first
/// unacknowledged segment at once.
#[test]
fn third_duplicate_ack_retransmits() {
    let mut c = established();
    c.set_option(at(0), TcpOption::NoDelay(true));
    c.send(&[1; 536 * 4]);
    for i in 0..4 {
        let (d, len) = next(&mut c, at(100)).expect("data");
        assert_eq!((d.seq, len), (ISS + 1 + 536 * i, 536));
    }
    for _ in 0..3 {
        c.process(at(150), &seg(ACK, IRS + 1, ISS + 1, WIN), &[]);
    }
    let (rtx, len) = next(&mut c, at(150)).expect("fast retransmit");
    assert_eq!((rtx.seq, len), (ISS + 1, 536));
    assert_eq!(c.stats().retransmits, 1);
}

/// RFC 1122 4.2.3.6: an idle connection with keepalive on sends a probe
/// at SND.NXT - 1 when the idle time is up.
#[test]
fn keepalive_probes_an_idle_connection() {
    let mut c = established();
    c.set_option(at(100), TcpOption::KeepIdle(Duration::from_secs(10)));
    c.set_option(at(100), TcpOption::KeepAlive(true));
    let deadline = c.schedule().deadline.expect("the keepalive timer");
    assert_eq!(deadline, at(100) + Duration::from_secs(10));
    c.on_timer(deadline);
    let (probe, len) = next(&mut c, deadline).expect("a keepalive");
    assert_eq!((probe.seq, probe.ack, len), (ISS, IRS + 1, 0));
}

/// RFC 1122 4.2.3.9: a soft ICMP error on an established connection is
/// kept; when retransmissions then run out, that error is what the user
/// sees, not ETIMEDOUT (Linux tcp_write_err: sk_err_soft ? : ETIMEDOUT).
#[test]
fn timeout_reports_the_soft_icmp_error() {
    let mut c = established();
    c.send(&[1; 100]);
    let (d, len) = next(&mut c, at(100)).expect("data");
    assert_eq!((d.seq, len), (ISS + 1, 100));
    let err = SocketError::Unreachable {
        reporter: Ipv4Addr::new(10, 77, 0, 254),
        dst: c.remote,
        code: crate::wire::UnreachableCode::Host,
        next_hop_mtu: None,
    };
    let out = c.on_icmp_error(err);
    assert_eq!(out.transition, Transition::None, "soft while established");
    let mut out = c.unchanged();
    for _ in 0..100 {
        let Some(now) = c.schedule().deadline else {
            break;
        };
        out = c.on_timer(now);
        if out.transition == Transition::Closed {
            break;
        }
        while next(&mut c, now).is_some() {}
    }
    assert_eq!(out.transition, Transition::Closed, "retransmissions ran out");
    assert_eq!(out.error, Some(err));
}

// ----- loss recovery -----

/// SACK-based recovery (RFC 6675) shows in the stats: what is SACKed and
/// lost, that recovery is on, and how often it began; PRR's window is the
/// cwnd reported meanwhile, and ssthresh's once it ends.
#[test]
fn sack_recovery_shows_in_stats() {
    let cfg = TcpConfig::default();
    let ep = Endpoints {
        local: SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 2), 8080),
        remote: SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 1), 40000),
        iss: SeqNumber(ISS),
        ts_offset: 0,
        mtu: 1500,
    };
    let mut syn = seg(SYN, IRS, 0, WIN);
    syn.options.sack_permitted = true;
    syn.options.mss = Some(1000);
    let mut c = Connection::accept_syn(at(0), &cfg, ep, &syn);
    c.poll_segment(at(0)).expect("SYN-ACK");
    c.process(at(10), &seg(ACK, IRS + 1, ISS + 1, WIN), &[]);
    assert_eq!(c.send(&[1; 10_000]), 10_000);
    while next(&mut c, at(10)).is_some() {}
    let base = ISS + 1;
    // The first segment is lost; the peer SACKs the next three, one ACK
    // each.
    for n in 2..=4 {
        let mut dup = seg(ACK, IRS + 1, base, WIN);
        dup.options.sack_blocks.push((base + 1000, base + n * 1000));
        c.process(at(20), &dup, &[]);
    }
    let s = c.stats();
    assert_eq!(s.recovery, "recovery");
    assert_eq!((s.sacked_bytes, s.lost_bytes, s.fast_recoveries), (3000, 1000, 1));
    let (rtx, len) = next(&mut c, at(20)).expect("the fast retransmit");
    assert_eq!((rtx.seq, len), (base, 1000));
    assert_eq!(c.stats().lost_bytes, 0, "retransmitted");
    // The full ACK ends it.
    c.process(at(30), &seg(ACK, IRS + 1, base + 10_000, WIN), &[]);
    let s = c.stats();
    assert_eq!(s.recovery, "open");
    assert_eq!((s.sacked_bytes, s.lost_bytes), (0, 0));
    assert_eq!(s.cwnd, s.ssthresh, "cwnd = ssthresh after recovery");
}

/// A SACK connection with 4000 bytes in flight in four 1000-byte
/// segments, sent at 10 ms; the handshake measured a 10 ms RTT.
fn sack_sender(cfg: &TcpConfig) -> Connection {
    let ep = Endpoints {
        local: SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 2), 8080),
        remote: SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 1), 40000),
        iss: SeqNumber(ISS),
        ts_offset: 0,
        mtu: 1500,
    };
    let mut syn = seg(SYN, IRS, 0, WIN);
    syn.options.sack_permitted = true;
    syn.options.mss = Some(1000);
    let mut c = Connection::accept_syn(at(0), cfg, ep, &syn);
    c.poll_segment(at(0)).expect("SYN-ACK");
    c.process(at(10), &seg(ACK, IRS + 1, ISS + 1, WIN), &[]);
    assert_eq!(c.send(&[1; 4000]), 4000);
    while next(&mut c, at(10)).is_some() {}
    c
}

/// RACK (RFC 8985 6.2) marks the first segment lost when the reorder
/// timer fires, a reordering window after the one SACK above it: it is
/// counted, recovery starts, and it goes again. With `TcpConfig::rack`
/// off, one duplicate ACK is not DupThresh: nothing until the RTO.
#[test]
fn rack_reorder_timer_marks_lost_and_knob_turns_it_off() {
    let base = ISS + 1;
    let mut dup = seg(ACK, IRS + 1, base, WIN);
    dup.options.sack_blocks.push((base + 1000, base + 2000));

    let mut c = sack_sender(&TcpConfig::default());
    c.process(at(20), &dup, &[]);
    // RACK.rtt 10 ms, reo_wnd min_RTT / 4 = 2.5 ms: due at 10 + 10 + 2.5.
    let due = Instant::from_micros(22_500);
    assert_eq!(c.schedule().deadline, Some(due));
    assert!(next(&mut c, at(20)).is_none(), "within the reordering window");
    c.on_timer(due);
    assert_eq!(c.rack_counts(), [1, 0, 0], "one segment marked lost");
    let s = c.stats();
    assert_eq!((s.recovery, s.lost_bytes), ("recovery", 1000));
    let (rtx, len) = next(&mut c, due).expect("the retransmission");
    assert_eq!((rtx.seq, len), (base, 1000));
    assert_eq!(c.stats().lost_bytes, 0);

    let cfg = TcpConfig {
        rack: false,
        ..TcpConfig::default()
    };
    let mut c = sack_sender(&cfg);
    c.process(at(20), &dup, &[]);
    let rto = c.schedule().deadline.expect("the RTO");
    assert!(rto > at(200), "no reorder timer, no probe: the RTO ({rto:?})");
    c.on_timer(due);
    assert!(next(&mut c, due).is_none());
    assert_eq!(c.stats().recovery, "open");
}

/// TLP (RFC 8985 7): with nothing ACKed, the PTO (2 * SRTT = 20 ms)
/// comes before the RTO; the probe resends the last segment, is counted,
/// and the RTO is armed afresh. When that expires too, the sender is in
/// RTO recovery ("loss") and probes no more.
#[test]
fn tlp_probe_then_rto_shows_in_stats() {
    let mut c = sack_sender(&TcpConfig::default());
    let pto = at(30);
    assert_eq!(c.schedule().deadline, Some(pto));
    c.on_timer(pto);
    assert_eq!(c.rack_counts(), [0, 1, 0], "one probe");
    let (probe, len) = next(&mut c, pto).expect("the probe");
    assert_eq!((probe.seq, len), (ISS + 1 + 3000, 1000));
    let rto = c.schedule().deadline.expect("the RTO");
    assert_eq!(rto, pto + c.stats().rto);
    c.on_timer(rto);
    let (rtx, _) = next(&mut c, rto).expect("the RTO's retransmission");
    assert_eq!(rtx.seq, ISS + 1);
    assert_eq!(c.stats().recovery, "loss");
    assert_eq!(c.rack_counts(), [0, 1, 0]);
}
