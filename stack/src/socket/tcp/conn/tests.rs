//! The connection driven directly: segments in, segments out, no frames
//! and no interface. Each test names the rule it checks.

use super::*;
use core::net::Ipv4Addr;

const ISS: u32 = 1_000;
const IRS: u32 = 5_000;

fn endpoints(iss: u32) -> Endpoints {
    Endpoints {
        local: SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 2), 8080),
        remote: SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 1), 40000),
        iss: SeqNumber(iss),
        ts_offset: 0,
        mtu: 1500,
    }
}

/// A segment from the peer (remote port 40000 to local 8080), without options.
fn seg(flags: TcpFlags, seq: u32, ack: u32, window: u16) -> TcpRepr {
    TcpRepr {
        src_port: 40000,
        dst_port: 8080,
        seq,
        ack,
        flags,
        window,
        urgent: 0,
        options: TcpOptions::default(),
    }
}

fn flags(list: &[TcpFlags]) -> TcpFlags {
    TcpFlags(list.iter().fold(0, |a, f| a | f.0))
}

fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

/// A passive open that has sent its SYN-ACK.
fn syn_received(cfg: &TcpConfig) -> Connection {
    let syn = seg(TcpFlags::SYN, IRS, 0, 65535);
    let mut c = Connection::accept_syn(at(0), cfg, endpoints(ISS), &syn);
    let (synack, _, _) = c.poll_segment(at(0)).expect("SYN-ACK");
    assert_eq!(synack.flags, flags(&[TcpFlags::SYN, TcpFlags::ACK]));
    c
}

/// RFC 9293 3.10.7.4 fifth check, SYN-RECEIVED: SND.UNA < SEG.ACK =<
/// SND.NXT, where SND.NXT is the next sequence number never sent. The
/// peer's retransmitted SYN schedules a SYN-ACK resend; its ACK of our first
/// SYN-ACK, arriving in the same batch (before we poll), is still
/// acceptable and completes the handshake. A RST there would carry exactly
/// the peer's RCV.NXT and reset its established connection.
#[test]
fn ack_after_retransmitted_syn_in_same_batch_completes_handshake() {
    let cfg = TcpConfig::default();
    let mut c = syn_received(&cfg);
    let syn = seg(TcpFlags::SYN, IRS, 0, 65535);
    assert_eq!(c.process(at(500), &syn, &[]), Transition::None);
    let ack = seg(TcpFlags::ACK, IRS + 1, ISS + 1, 65535);
    assert_eq!(c.process(at(500), &ack, &[]), Transition::Established);
    assert!(c.take_rst().is_none(), "the acceptable ACK drew a RST");
    assert_eq!(c.state, TcpState::Established);
    // The SYN-ACK resend is moot; data goes at ISS + 1.
    c.send(b"hello");
    let (repr, offset, len) = c.poll_segment(at(500)).expect("data");
    assert_eq!((repr.seq, offset, len), (ISS + 1, 0, 5));
    assert!(!repr.flags.syn());
}

/// RFC 9293 3.10.7.3, SYN-SENT: the ACK is unacceptable only if SEG.ACK =<
/// ISS or SEG.ACK > SND.NXT. A retransmission timeout that fired just
/// before the SYN-ACK arrived (the resend not yet polled) must not make
/// the SYN-ACK unacceptable.
#[test]
fn synack_after_syn_timeout_in_same_batch_connects() {
    let cfg = TcpConfig::default();
    let mut c = Connection::connect(at(0), &cfg, endpoints(ISS));
    let (syn, _, _) = c.poll_segment(at(0)).expect("SYN");
    assert_eq!(syn.flags, TcpFlags::SYN);
    let rto = c.deadline().expect("SYN timer");
    assert_eq!(c.on_timer(rto), Transition::None);
    let synack = seg(flags(&[TcpFlags::SYN, TcpFlags::ACK]), IRS, ISS + 1, 65535);
    assert_eq!(c.process(rto, &synack, &[]), Transition::Connected);
    assert!(c.take_rst().is_none(), "the acceptable SYN-ACK drew a RST");
    let (repr, _, len) = c.poll_segment(rto).expect("ACK");
    assert!(!repr.flags.syn(), "the SYN was resent after the SYN-ACK");
    assert_eq!((repr.seq, repr.ack, len), (ISS + 1, IRS + 1, 0));
}

/// RFC 9293 3.8.6.1: our FIN is flow-controlled like data. A FIN sent into
/// an open window, then found outside it when the peer shrinks the window
/// to zero, is not resent by the retransmission timer (whose retries lead
/// to giving up); the timer's expiry hands over to zero-window probing.
#[test]
fn fin_retransmission_into_zero_window_becomes_a_probe() {
    let cfg = TcpConfig::default();
    let mut c = syn_received(&cfg);
    let ack = seg(TcpFlags::ACK, IRS + 1, ISS + 1, 65535);
    assert_eq!(c.process(at(100), &ack, &[]), Transition::Established);
    c.shutdown_write();
    let (fin, _, _) = c.poll_segment(at(100)).expect("FIN");
    assert!(fin.flags.fin());
    assert_eq!(fin.seq, ISS + 1);
    // The peer closes its window without acknowledging the FIN.
    let zero = seg(TcpFlags::ACK, IRS + 1, ISS + 1, 0);
    assert_eq!(c.process(at(150), &zero, &[]), Transition::None);
    let rto = c.deadline().expect("FIN timer");
    assert_eq!(c.on_timer(rto), Transition::None);
    let (probe, _, len) = c.poll_segment(rto).expect("a zero-window probe");
    assert!(!probe.flags.fin(), "the FIN was resent into a zero window");
    assert_eq!((probe.seq, len), (ISS, 0));
}
