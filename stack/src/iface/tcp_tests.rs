//! TCP between two interfaces wired back to back on a virtual clock.

use super::*;
use crate::config::SynCookies;
use crate::socket::tcp::{PmtuDiscover, TcpOption, TcpState};
use crate::testing::{config, PEER_IP, PEER_MAC};
use crate::time::Duration;
use crate::wire::{Ipv4Cidr, Protocol, TcpFlags, TcpOptions, TcpRepr};
use core::net::SocketAddrV4;

/// Decides, by frame number and bytes, whether to drop an a->b frame.
type DropFilter = Box<dyn FnMut(u64, &[u8]) -> bool>;

/// Two stacks: `a` = tapir's usual test address, `b` = the peer's.
struct Pair {
    a: Interface,
    b: Interface,
    now: Instant,
    /// Frames a->b and b->a delivered.
    frames: (u64, u64),
    /// Drop the a->b frames this returns true for.
    drop_ab: DropFilter,
}

impl Pair {
    fn new() -> Self {
        Pair::with_b(|_| {})
    }

    /// A pair whose `b` has its configuration changed by `tune`.
    fn with_b(tune: impl FnOnce(&mut Config)) -> Self {
        let a = Interface::new(config()).unwrap();
        let mut cb = Config::new(PEER_MAC, Ipv4Cidr::new(PEER_IP, 24).unwrap());
        cb.seed = 99;
        tune(&mut cb);
        let b = Interface::new(cb).unwrap();
        Pair {
            a,
            b,
            now: Instant::from_secs(1),
            frames: (0, 0),
            drop_ab: Box::new(|_, _| false),
        }
    }

    /// Exchange frames until both are quiet, then advance to the next timer
    /// (at most `until`). Returns false when nothing is left to do.
    fn step(&mut self, until: Instant) -> bool {
        let mut buf = vec![0u8; 1600];
        let mut moved = true;
        let mut any = false;
        let mut rounds = 0;
        while moved {
            moved = false;
            rounds += 1;
            assert!(rounds < 100_000, "frames ping-pong forever at {}", self.now);
            while let Some(n) = self.a.poll_transmit(self.now, &mut buf) {
                self.frames.0 += 1;
                if !(self.drop_ab)(self.frames.0, &buf[..n]) {
                    self.b.handle_frame(self.now, &buf[..n]);
                }
                moved = true;
            }
            while let Some(n) = self.b.poll_transmit(self.now, &mut buf) {
                self.frames.1 += 1;
                self.a.handle_frame(self.now, &buf[..n]);
                moved = true;
            }
            any |= moved;
        }
        if any {
            // The applications read and write before time moves on, as
            // they would beside a real driver: a receiver acknowledges
            // unread data when it is read (Linux tcp_cleanup_rbuf).
            return true;
        }
        let next = [self.a.poll_timeout(), self.b.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        match next {
            Some(t) if t <= until => {
                self.now = self.now.max(t);
                self.a.handle_timeout(self.now);
                self.b.handle_timeout(self.now);
                true
            }
            _ => any,
        }
    }

    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Pair) -> bool) {
        let until = self.now + limit;
        for _ in 0..1_000_000 {
            if done(self) {
                return;
            }
            if !self.step(until) {
                if done(self) {
                    return;
                }
                panic!("stalled at {} before the condition held", self.now);
            }
        }
        panic!("step limit");
    }
}

fn addr(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}

#[test]
fn handshake_transfer_and_close() {
    let mut p = Pair::new();
    let l = p.b.tcp_listen(addr(PEER_IP, 80), 8).unwrap();
    let c = p.a.tcp_connect(p.now, addr(PEER_IP, 80)).unwrap();
    assert_eq!(p.a.tcp_state(c), Some(TcpState::SynSent));
    p.run_until(Duration::from_secs(5), |p| p.b.tcp_can_accept(l));
    let s = p.b.tcp_accept(l).unwrap();
    assert_eq!(p.a.tcp_state(c), Some(TcpState::Established));
    assert_eq!(p.b.tcp_state(s), Some(TcpState::Established));

    // 1 MB each way, through 256 KiB buffers.
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let (mut sent_a, mut sent_b) = (0, 0);
    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
    let mut buf = vec![0u8; 65536];
    p.run_until(Duration::from_secs(60), |p| {
        if sent_a < data.len() {
            sent_a += p.a.tcp_send(c, &data[sent_a..]).unwrap_or(0);
        }
        if sent_b < data.len() {
            sent_b += p.b.tcp_send(s, &data[sent_b..]).unwrap_or(0);
        }
        while let Ok(n) = p.b.tcp_recv(s, &mut buf) {
            if n == 0 {
                break;
            }
            got_b.extend_from_slice(&buf[..n]);
        }
        while let Ok(n) = p.a.tcp_recv(c, &mut buf) {
            if n == 0 {
                break;
            }
            got_a.extend_from_slice(&buf[..n]);
        }
        got_a.len() == data.len() && got_b.len() == data.len()
    });
    assert!(got_a == data && got_b == data);
    let st = p.a.tcp_stats(c).unwrap();
    assert_eq!(st.retransmits, 0, "{st}");

    // a closes first: FIN-WAIT-1/2, then TIME-WAIT; b sees EOF, closes: LAST-ACK.
    p.a.tcp_close(c);
    p.run_until(Duration::from_secs(5), |p| {
        p.b.tcp_state(s) == Some(TcpState::CloseWait)
    });
    assert_eq!(p.b.tcp_recv(s, &mut buf), Ok(0), "EOF after the peer's FIN");
    p.b.tcp_close(s);
    p.run_until(Duration::from_secs(5), |p| p.b.tcp_state(s).is_none());
    assert_eq!(p.a.tcp_time_wait_count(), 1, "a holds TIME-WAIT compactly");
    p.run_until(Duration::from_secs(61), |p| p.a.tcp_time_wait_count() == 0);
    assert_eq!(p.a.socket_count(), 0);
    assert_eq!(p.b.socket_count(), 1, "only the listener is left");
}

#[test]
fn connect_to_closed_port_is_refused() {
    let mut p = Pair::new();
    let c = p.a.tcp_connect(p.now, addr(PEER_IP, 81)).unwrap();
    p.run_until(Duration::from_secs(5), |p| {
        p.a.tcp_state(c) == Some(TcpState::Closed)
    });
    assert_eq!(p.a.tcp_take_error(c), Some(SocketError::ConnectionRefused));
    assert_eq!(p.b.stats().tcp_no_socket, 1);
    assert_eq!(p.b.stats().tcp_rst_tx, 1);
}

#[test]
fn lost_segments_are_retransmitted() {
    let mut p = Pair::new();
    let l = p.b.tcp_listen(addr(PEER_IP, 80), 8).unwrap();
    let c = p.a.tcp_connect(p.now, addr(PEER_IP, 80)).unwrap();
    p.run_until(Duration::from_secs(5), |p| p.b.tcp_can_accept(l));
    let s = p.b.tcp_accept(l).unwrap();
    // Drop every 7th frame from a to b.
    p.drop_ab = Box::new(|n, _| n % 7 == 0);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let mut sent = 0;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    p.run_until(Duration::from_secs(120), |p| {
        if sent < data.len() {
            sent += p.a.tcp_send(c, &data[sent..]).unwrap_or(0);
        }
        while let Ok(n) = p.b.tcp_recv(s, &mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got.len() == data.len()
    });
    assert!(got == data);
    let st = p.a.tcp_stats(c).unwrap();
    assert!(st.retransmits > 0, "{st}");
}

#[test]
fn syn_retransmits_then_times_out() {
    let mut p = Pair::new();
    p.drop_ab = Box::new(|_, f| f.len() > 42); // everything but ARP
    let c = p.a.tcp_connect(p.now, addr(PEER_IP, 80)).unwrap();
    p.run_until(Duration::from_secs(600), |p| {
        p.a.tcp_state(c) == Some(TcpState::Closed)
    });
    assert_eq!(p.a.tcp_take_error(c), Some(SocketError::TimedOut));
    // 1 + 6 retries, backing off 1, 2, 4, ... 64 s: 127 s in all.
    assert_eq!(p.a.stats().tcp_tx, 7);
    assert_eq!(p.now, Instant::from_secs(1 + 127));
}

#[test]
fn icmp_port_unreachable_aborts_a_connect() {
    let mut p = Pair::new();
    // b has no TCP listener and its RSTs are lost; an ICMP error arrives.
    p.drop_ab = Box::new(|_, _| false);
    let c = p.a.tcp_connect(p.now, addr(PEER_IP, 9)).unwrap();
    let mut buf = vec![0u8; 1600];
    // Resolve ARP and take the SYN tapir sends.
    let mut syn = None;
    for _ in 0..4 {
        while let Some(n) = p.a.poll_transmit(p.now, &mut buf) {
            if n > 42 {
                syn = Some(buf[14..n].to_vec());
            } else {
                p.b.handle_frame(p.now, &buf[..n]);
            }
        }
        while let Some(n) = p.b.poll_transmit(p.now, &mut buf) {
            p.a.handle_frame(p.now, &buf[..n]);
        }
    }
    let syn = syn.expect("a SYN was sent");
    let mut icmp = vec![0u8; 8 + 28];
    crate::wire::icmpv4::emit(
        &mut icmp,
        crate::wire::icmpv4::TYPE_DEST_UNREACHABLE,
        3,
        [0; 4],
        &syn[..28],
    );
    let frame = crate::testing::ipv4_from_peer(crate::wire::Protocol::Icmp, &icmp);
    p.a.handle_frame(p.now, &frame);
    assert_eq!(p.a.tcp_state(c), Some(TcpState::Closed));
    assert!(matches!(
        p.a.tcp_take_error(c),
        Some(SocketError::Unreachable {
            code: crate::wire::UnreachableCode::Port,
            ..
        })
    ));
}

/// An established connection from `p.a` to port 80 of `p.b`, and its handle.
fn established_to_port_80(p: &mut Pair) -> SocketHandle {
    let l = p.b.tcp_listen(addr(PEER_IP, 80), 8).unwrap();
    let c = p.a.tcp_connect(p.now, addr(PEER_IP, 80)).unwrap();
    p.run_until(Duration::from_secs(5), |p| p.b.tcp_can_accept(l));
    c
}

/// An ICMP error from the peer (type, code, rest of header) quoting the
/// first 8 bytes of a segment of `c` with sequence number `seq`.
fn icmp_about(p: &Pair, c: SocketHandle, msg_type: u8, code: u8, rest: [u8; 4], seq: u32) -> Vec<u8> {
    let mut q = vec![0u8; 28];
    let repr = crate::wire::Ipv4Repr {
        src: crate::testing::TAPIR_IP,
        dst: PEER_IP,
        protocol: crate::wire::Protocol::Tcp,
        ttl: 64,
        tos: 0,
        ident: 1,
        dont_fragment: true,
        more_fragments: false,
        frag_offset: 0,
        payload_len: 8,
    };
    repr.emit(&mut q);
    let local = p.a.tcp_local_addr(c).unwrap();
    q[20..22].copy_from_slice(&local.port().to_be_bytes());
    q[22..24].copy_from_slice(&80u16.to_be_bytes());
    q[24..28].copy_from_slice(&seq.to_be_bytes());
    let mut icmp = vec![0u8; 8 + 28];
    crate::wire::icmpv4::emit(&mut icmp, msg_type, code, rest, &q);
    crate::testing::ipv4_from_peer(crate::wire::Protocol::Icmp, &icmp)
}

/// "Fragmentation needed" (RFC 1191) with the given next-hop MTU.
fn frag_needed(p: &Pair, c: SocketHandle, seq: u32, mtu: u16) -> Vec<u8> {
    let [hi, lo] = mtu.to_be_bytes();
    icmp_about(
        p,
        c,
        crate::wire::icmpv4::TYPE_DEST_UNREACHABLE,
        4,
        [0, 0, hi, lo],
        seq,
    )
}

#[test]
fn fragmentation_needed_without_mtu_does_not_abort_a_connect() {
    // An old router's frag-needed carries no MTU (RFC 1191 5). It is about
    // the path, not the peer: Linux's tcp_v4_err never aborts on it.
    let mut p = Pair::new();
    let c = p.a.tcp_connect(p.now, addr(PEER_IP, 9)).unwrap();
    let mut buf = vec![0u8; 1600];
    let mut syn = None;
    for _ in 0..4 {
        while let Some(n) = p.a.poll_transmit(p.now, &mut buf) {
            if n > 42 {
                syn = Some(buf[14..n].to_vec());
            } else {
                p.b.handle_frame(p.now, &buf[..n]);
            }
        }
        while let Some(n) = p.b.poll_transmit(p.now, &mut buf) {
            p.a.handle_frame(p.now, &buf[..n]);
        }
    }
    let syn = syn.expect("a SYN was sent");
    let mut icmp = vec![0u8; 8 + 28];
    crate::wire::icmpv4::emit(
        &mut icmp,
        crate::wire::icmpv4::TYPE_DEST_UNREACHABLE,
        4,
        [0; 4],
        &syn[..28],
    );
    let frame = crate::testing::ipv4_from_peer(crate::wire::Protocol::Icmp, &icmp);
    p.a.handle_frame(p.now, &frame);
    assert_eq!(p.a.tcp_state(c), Some(TcpState::SynSent));
}

#[test]
fn fragmentation_needed_lowers_the_mss() {
    let mut p = Pair::new();
    let c = established_to_port_80(&mut p);
    // With timestamps on, a full segment carries 1460 - 12 bytes (as Linux's mss_cache).
    assert_eq!(p.a.tcp_stats(c).unwrap().mss, 1448);
    // A router says the path MTU is 1200 (RFC 1191), quoting a segment of
    // ours: its sequence number must be one in flight (RFC 5927 4.1).
    let una = p.a.tcp_stats(c).unwrap().snd_una;
    let frame = frag_needed(&p, c, una, 1200);
    p.a.handle_frame(p.now, &frame);
    assert_eq!(p.a.tcp_stats(c).unwrap().mss, 1148);
    assert_eq!(
        p.a.tcp_state(c),
        Some(TcpState::Established),
        "frag-needed is not fatal"
    );
}

#[test]
fn forged_fragmentation_needed_out_of_window_is_ignored() {
    let mut p = Pair::new();
    let c = established_to_port_80(&mut p);
    let una = p.a.tcp_stats(c).unwrap().snd_una;
    // A blind attacker does not know SND.UNA: quotes just outside
    // [SND.UNA, SND.NXT] on either side, and far away, are all rejected.
    for seq in [
        una.wrapping_sub(1),
        una.wrapping_add(1),
        una.wrapping_add(0x4000_0000),
    ] {
        let frame = frag_needed(&p, c, seq, 1200);
        p.a.handle_frame(p.now, &frame);
    }
    assert_eq!(p.a.tcp_stats(c).unwrap().mss, 1448);
    assert_eq!(p.a.stats().icmp_errors_out_of_window, 3);
    assert_eq!(p.a.stats().icmp_errors_delivered, 0);
}

#[test]
fn fragmentation_needed_is_clamped_at_the_minimum_path_mtu() {
    let mut p = Pair::new();
    let c = established_to_port_80(&mut p);
    let una = p.a.tcp_stats(c).unwrap().snd_una;
    // MTU 68 would leave 28 bytes of TCP payload; Linux clamps the path MTU
    // at min_pmtu (552), so the MSS is 552 - 40, less 12 of timestamps.
    let frame = frag_needed(&p, c, una, 68);
    p.a.handle_frame(p.now, &frame);
    assert_eq!(p.a.tcp_stats(c).unwrap().mss, 500);
    assert_eq!(p.a.tcp_state(c), Some(TcpState::Established));
}

#[test]
fn icmp_errors_on_an_established_connection_are_soft() {
    // RFC 1122 4.2.3.9 (soft errors: net/host unreachable, time exceeded,
    // parameter problem) and RFC 5927 5.2 (hard ones too, in synchronized
    // states), as Linux's tcp_v4_err: the connection goes on and the error
    // is kept for SO_ERROR.
    use crate::wire::icmpv4::{TYPE_DEST_UNREACHABLE, TYPE_PARAMETER_PROBLEM, TYPE_TIME_EXCEEDED};
    for (msg_type, code) in [
        (TYPE_DEST_UNREACHABLE, 1), // host
        (TYPE_DEST_UNREACHABLE, 3), // port
        (TYPE_TIME_EXCEEDED, 0),
        (TYPE_PARAMETER_PROBLEM, 0),
    ] {
        let mut p = Pair::new();
        let c = established_to_port_80(&mut p);
        let una = p.a.tcp_stats(c).unwrap().snd_una;
        let frame = icmp_about(&p, c, msg_type, code, [0; 4], una);
        p.a.handle_frame(p.now, &frame);
        assert_eq!(
            p.a.tcp_state(c),
            Some(TcpState::Established),
            "type {msg_type} code {code}"
        );
        assert!(
            p.a.tcp_take_error(c).is_some(),
            "type {msg_type} code {code}: the soft error is reported"
        );
        assert_eq!(p.a.tcp_send(c, b"still here"), Ok(10));
    }
}

#[test]
fn orphaned_fin_wait_2_is_bounded() {
    let mut p = Pair::new();
    let l = p.b.tcp_listen(addr(PEER_IP, 80), 8).unwrap();
    let c = p.a.tcp_connect(p.now, addr(PEER_IP, 80)).unwrap();
    p.run_until(Duration::from_secs(5), |p| p.b.tcp_can_accept(l));
    let _s = p.b.tcp_accept(l).unwrap();
    // a closes; b never does: a sits in FIN-WAIT-2, orphaned.
    p.a.tcp_close(c);
    p.run_until(Duration::from_secs(5), |p| {
        p.a.tcp_connection_count() == 1 && p.a.poll_timeout().is_some()
    });
    p.run_until(Duration::from_secs(70), |p| p.a.tcp_connection_count() == 0);
    assert!(
        p.now < Instant::from_secs(1 + 65),
        "freed by the FIN-WAIT-2 timeout, at {}",
        p.now
    );
}

#[test]
fn backlog_overflow_drops_syns() {
    // b listens with backlog 1, without SYN cookies; a opens three
    // connections at once.
    let mut p = Pair::with_b(|c| c.tcp.syn_cookies = SynCookies::Never);
    let l = p.b.tcp_listen(addr(PEER_IP, 80), 1).unwrap();
    let c1 = p.a.tcp_connect(p.now, addr(PEER_IP, 80)).unwrap();
    let c2 = p.a.tcp_connect(p.now, addr(PEER_IP, 80)).unwrap();
    let c3 = p.a.tcp_connect(p.now, addr(PEER_IP, 80)).unwrap();
    p.run_until(Duration::from_millis(500), |p| p.b.tcp_can_accept(l));
    // One got in; the others' SYNs found the queues full and were dropped
    // silently (no RST), so they are still trying.
    let established: Vec<_> = [c1, c2, c3]
        .into_iter()
        .filter(|&c| p.a.tcp_state(c) == Some(TcpState::Established))
        .collect();
    assert_eq!(established.len(), 1);
    assert!([c1, c2, c3]
        .iter()
        .all(|&c| matches!(p.a.tcp_state(c), Some(TcpState::Established | TcpState::SynSent))));
    assert!(p.b.stats().tcp_listen_overflow >= 2);
    assert_eq!(p.b.stats().tcp_rst_tx, 0);

    // While nobody accepts, the retransmitted SYNs (1 s) are dropped too.
    let until = p.now + Duration::from_secs(2);
    while p.step(until) {}
    assert_eq!(
        [c1, c2, c3]
            .iter()
            .filter(|&&c| p.a.tcp_state(c) == Some(TcpState::Established))
            .count(),
        1
    );

    // Each accept makes room for one more; all three end up connected.
    let mut accepted = vec![p.b.tcp_accept(l).unwrap()];
    p.run_until(Duration::from_secs(30), |p| {
        if let Ok(s) = p.b.tcp_accept(l) {
            accepted.push(s);
        }
        accepted.len() == 3
    });
    assert_eq!(accepted.len(), 3);
    for c in [c1, c2, c3] {
        assert_eq!(p.a.tcp_state(c), Some(TcpState::Established));
    }
}

#[test]
fn syn_cookies_carry_connections_past_a_full_syn_queue() {
    // b listens with backlog 2 and its default (cookies when the SYN
    // queue is full); a opens four connections at once: two are kept in
    // the SYN queue, two are answered with cookies. The accept queue
    // then holds two; the cookie connections' ACKs find it full and are
    // dropped (as Linux), and their first data makes them later.
    let mut p = Pair::new();
    let l = p.b.tcp_listen(addr(PEER_IP, 80), 2).unwrap();
    let cs: Vec<_> = (0..4)
        .map(|_| p.a.tcp_connect(p.now, addr(PEER_IP, 80)).unwrap())
        .collect();
    p.run_until(Duration::from_secs(1), |p| {
        cs.iter()
            .all(|&c| p.a.tcp_state(c) == Some(TcpState::Established))
    });
    let st = p.b.stats();
    assert_eq!(st.tcp_syncookies_sent, 2, "{st}");
    assert_eq!(st.tcp_syncookies_failed, 0, "{st}");
    assert_eq!(st.tcp_listen_overflow, 0, "{st}");
    // Each side says something, so every connection is made and served.
    for &c in &cs {
        p.a.tcp_send(c, b"hello").unwrap();
    }
    let mut served = 0;
    let mut buf = [0u8; 16];
    p.run_until(Duration::from_secs(30), |p| {
        while let Ok(s) = p.b.tcp_accept(l) {
            p.b.tcp_send(s, b"hi").unwrap();
            served += 1;
        }
        served == 4
    });
    assert_eq!(served, 4);
    p.run_until(Duration::from_secs(5), |p| {
        cs.iter().all(|&c| p.a.tcp_recv_queue(c) == 2)
    });
    for &c in &cs {
        assert_eq!(p.a.tcp_recv(c, &mut buf), Ok(2));
    }
    let st = p.b.stats();
    // Each cookie is validated twice: by its ACK, dropped while the
    // accept queue is full, and by its first data (Linux counts
    // SyncookiesRecv for both too, in cookie_v4_check).
    assert_eq!(st.tcp_syncookies_recv, 4, "{st}");
    assert_eq!(st.tcp_accept_queue_full, 2, "{st}");
    assert_eq!(st.tcp_passive_opens, 4, "{st}");
    assert_eq!(st.tcp_rst_tx, 0, "{st}");
}

#[test]
fn syn_cookies_always_keep_no_syn_received_entries() {
    let mut p = Pair::with_b(|c| c.tcp.syn_cookies = SynCookies::Always);
    let l = p.b.tcp_listen(addr(PEER_IP, 80), 8).unwrap();
    let c = p.a.tcp_connect(p.now, addr(PEER_IP, 80)).unwrap();
    // The SYN-ACK is a cookie although the SYN queue is empty, and the
    // connection is made of the ACK.
    p.run_until(Duration::from_secs(1), |p| p.b.tcp_can_accept(l));
    let s = p.b.tcp_accept(l).unwrap();
    p.a.tcp_send(c, b"hello").unwrap();
    let mut buf = [0u8; 16];
    p.run_until(Duration::from_secs(1), |p| p.b.tcp_recv_queue(s) == 5);
    assert_eq!(p.b.tcp_recv(s, &mut buf), Ok(5));
    assert_eq!(p.b.stats().tcp_syncookies_sent, 1);
    assert_eq!(p.b.stats().tcp_syncookies_recv, 1);
    assert_eq!(p.b.stats().tcp_passive_opens, 1);
}

#[test]
fn application_limited_sender_does_not_inflate_cwnd() {
    let mut p = Pair::new();
    let l = p.b.tcp_listen(addr(PEER_IP, 80), 8).unwrap();
    let c = p.a.tcp_connect(p.now, addr(PEER_IP, 80)).unwrap();
    p.run_until(Duration::from_secs(5), |p| p.b.tcp_can_accept(l));
    let s = p.b.tcp_accept(l).unwrap();
    let initial = p.a.tcp_stats(c).unwrap().cwnd;
    let mut buf = [0u8; 1024];
    // 200 small request-sized writes, each acknowledged before the next:
    // the window is never the limit, so it must not grow (RFC 7661).
    for _ in 0..200 {
        p.a.tcp_send(c, &[7u8; 100]).unwrap();
        p.run_until(Duration::from_secs(5), |p| p.a.tcp_send_queue(c) == 0);
        while p.b.tcp_recv(s, &mut buf).unwrap_or(0) > 0 {}
    }
    assert_eq!(p.a.tcp_stats(c).unwrap().cwnd, initial);
}

#[test]
fn connect_to_unresolvable_neighbor_fails_with_host_unreachable() {
    let mut p = Pair::new();
    // Nobody has 10.77.0.9: ARP gives up after 3 requests, 1 s apart.
    let c =
        p.a.tcp_connect(p.now, addr(Ipv4Addr::new(10, 77, 0, 9), 80))
            .unwrap();
    p.run_until(Duration::from_secs(10), |p| {
        p.a.tcp_state(c) == Some(TcpState::Closed)
    });
    assert!(p.now <= Instant::from_secs(1 + 3), "failed at {}", p.now);
    assert!(matches!(
        p.a.tcp_take_error(c),
        Some(SocketError::Unreachable {
            code: crate::wire::UnreachableCode::Host,
            ..
        })
    ));
}

/// CVE-2016-5696: an interface-wide budget of challenge ACKs that is the
/// same every second lets an off-path attacker count, with challenge ACKs
/// of its own connection, how many another connection drew, and so find
/// its sequence numbers. As Linux (tcp_send_challenge_ack), the budget is
/// drawn afresh each second, uniformly from [limit/2, 3*limit/2), from
/// the interface's seeded generator.
#[test]
fn challenge_ack_budget_is_randomised_each_second() {
    let mut p = Pair::new();
    // The per-connection limit off, so that one connection meets the
    // interface's budget.
    p.a.config.tcp.challenge_ack_limit = 10;
    p.a.config.tcp.invalid_ratelimit = Duration::ZERO;
    let l = p.b.tcp_listen(addr(PEER_IP, 80), 8).unwrap();
    let c = p.a.tcp_connect(p.now, addr(PEER_IP, 80)).unwrap();
    p.run_until(Duration::from_secs(5), |p| p.b.tcp_can_accept(l));
    let local = p.a.tcp_local_addr(c).unwrap();
    let mut buf = vec![0u8; 1600];
    let mut budgets = Vec::new();
    for second in 0..20u64 {
        let now = Instant::from_secs(10 + second);
        let before = p.a.stats.tcp_challenge_acks;
        let rcv_nxt = p.a.tcp_stats(c).unwrap().rcv_nxt;
        for i in 0..40u32 {
            // In the window, not at RCV.NXT: RFC 5961 3.2's challenge.
            let rst = TcpRepr {
                src_port: 80,
                dst_port: local.port(),
                seq: rcv_nxt.wrapping_add(100 + i),
                ack: 0,
                flags: TcpFlags::RST,
                window: 0,
                urgent: 0,
                options: TcpOptions::default(),
            };
            let mut seg = vec![0u8; rst.header_len()];
            rst.emit(&mut seg, PEER_IP, crate::testing::TAPIR_IP, 0);
            p.a.handle_frame(now, &crate::testing::ipv4_from_peer(Protocol::Tcp, &seg));
            while p.a.poll_transmit(now, &mut buf).is_some() {}
        }
        budgets.push(p.a.stats.tcp_challenge_acks - before);
    }
    assert!(budgets.iter().all(|&n| (5..15).contains(&n)), "{budgets:?}");
    let first = budgets[0];
    assert!(
        budgets.iter().any(|&n| n != first),
        "the same budget every second is observable: {budgets:?}"
    );
}

/// Issue 13, "one copy out": once the next hop is resolved, a segment goes
/// from the send ring straight into the caller's frame, with no pooled
/// buffer in between; only the SYN, which waited for ARP, was queued.
#[test]
fn segments_to_a_resolved_neighbor_skip_the_transmit_queue() {
    let mut p = Pair::new();
    let l = p.b.tcp_listen(addr(PEER_IP, 80), 8).unwrap();
    let c = p.a.tcp_connect(p.now, addr(PEER_IP, 80)).unwrap();
    p.run_until(Duration::from_secs(5), |p| p.b.tcp_can_accept(l));
    let s = p.b.tcp_accept(l).unwrap();
    assert_eq!(p.a.pool.taken, 1, "the SYN waited for ARP in a pooled buffer");
    let (a_taken, b_taken) = (p.a.pool.taken, p.b.pool.taken);
    let (a_frames, a_segments) = (p.a.stats().tx_frames, p.a.stats().tcp_tx);

    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 253) as u8).collect();
    let (mut sent, mut got) = (0, Vec::new());
    let mut buf = vec![0u8; 65536];
    p.run_until(Duration::from_secs(30), |p| {
        if sent < data.len() {
            sent += p.a.tcp_send(c, &data[sent..]).unwrap_or(0);
        }
        while let Ok(n) = p.b.tcp_recv(s, &mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got.len() == data.len()
    });
    assert!(got == data, "the data arrives intact");
    assert_eq!(p.a.pool.taken, a_taken, "a's data segments were not queued");
    assert_eq!(p.b.pool.taken, b_taken, "b's ACKs were not queued");
    let segments = p.a.stats().tcp_tx - a_segments;
    assert!(segments >= 300_000 / 1460, "{segments} segments");
    assert_eq!(
        p.a.stats().tx_frames - a_frames,
        segments,
        "one frame per segment"
    );
    assert_eq!(p.a.tx_queue_len(), 0);
}

/// The TOS byte and DF of every TCP segment `p.a` sends from now on, as
/// the frames go.
fn record_ip_marks(p: &mut Pair) -> std::rc::Rc<std::cell::RefCell<Vec<(u8, bool)>>> {
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let log = seen.clone();
    p.drop_ab = Box::new(move |_, frame| {
        if let Ok(ip) = crate::wire::Ipv4Packet::parse(&frame[14..]) {
            if ip.repr.protocol == Protocol::Tcp {
                log.borrow_mut().push((ip.repr.tos, ip.repr.dont_fragment));
            }
        }
        false
    });
    seen
}

#[test]
fn ip_tos_marks_a_listeners_connections_from_the_syn_ack_on() {
    let mut p = Pair::new();
    let seen = record_ip_marks(&mut p);
    let l = p.a.tcp_socket().unwrap();
    p.a.tcp_bind(l, addr(crate::testing::TAPIR_IP, 80)).unwrap();
    // DSCP AF11 (0x28) with both ECN bits set: as Linux for a stream
    // socket, the ECN bits stay TCP's own (0 without ECN).
    p.a.tcp_set_option(p.now, l, TcpOption::Tos(0x2b)).unwrap();
    assert_eq!(
        p.a.tcp_get_option(l, TcpOption::Tos(0)),
        Some(TcpOption::Tos(0x28))
    );
    p.a.tcp_listen_socket(l, 8).unwrap();
    let c =
        p.b.tcp_connect(p.now, addr(crate::testing::TAPIR_IP, 80))
            .unwrap();
    p.run_until(Duration::from_secs(5), |p| p.a.tcp_can_accept(l));
    let s = p.a.tcp_accept(l).unwrap();
    assert_eq!(
        p.a.tcp_get_option(s, TcpOption::Tos(0)),
        Some(TcpOption::Tos(0x28))
    );
    p.a.tcp_send(s, &[7; 3000]).unwrap();
    p.run_until(Duration::from_secs(5), |p| p.b.tcp_recv_queue(c) == 3000);
    let marks = seen.borrow().clone();
    assert!(marks.len() >= 4, "SYN-ACK and data: {marks:?}");
    assert!(marks.iter().all(|&m| m == (0x28, true)), "{marks:?}");
    // Changed on a live connection, it marks what goes next.
    seen.borrow_mut().clear();
    p.a.tcp_set_option(p.now, s, TcpOption::Tos(0)).unwrap();
    p.a.tcp_send(s, &[7; 100]).unwrap();
    p.run_until(Duration::from_secs(5), |p| p.b.tcp_recv_queue(c) == 3100);
    let marks = seen.borrow().clone();
    assert!(
        !marks.is_empty() && marks.iter().all(|&m| m == (0, true)),
        "{marks:?}"
    );
}

#[test]
fn pmtudisc_dont_clears_df_and_leaves_the_mss_to_the_interface() {
    let mut p = Pair::new();
    let seen = record_ip_marks(&mut p);
    let l = p.b.tcp_listen(addr(PEER_IP, 80), 8).unwrap();
    let c = p.a.tcp_socket().unwrap();
    assert_eq!(
        p.a.tcp_get_option(c, TcpOption::PmtuDiscover(PmtuDiscover::Do)),
        Some(TcpOption::PmtuDiscover(PmtuDiscover::Want)),
        "Linux's default"
    );
    p.a.tcp_set_option(p.now, c, TcpOption::PmtuDiscover(PmtuDiscover::Dont))
        .unwrap();
    p.a.tcp_connect_socket(p.now, c, addr(PEER_IP, 80)).unwrap();
    p.run_until(Duration::from_secs(5), |p| p.b.tcp_can_accept(l));
    let s = p.b.tcp_accept(l).unwrap();
    p.a.tcp_send(c, &[1; 3000]).unwrap();
    p.run_until(Duration::from_secs(5), |p| p.b.tcp_recv_queue(s) == 3000);
    let marks = seen.borrow().clone();
    assert!(
        marks.len() >= 3 && marks.iter().all(|&m| m == (0, false)),
        "{marks:?}"
    );
    // Not following the path MTU: a router fragments instead (Linux
    // tcp_v4_mtu_reduced skips IP_PMTUDISC_DONT).
    let una = p.a.tcp_stats(c).unwrap().snd_una;
    p.a.handle_frame(p.now, &frag_needed(&p, c, una, 1200));
    assert_eq!(p.a.tcp_stats(c).unwrap().mss, 1448);
    // IP_PMTUDISC_DO: DF again, and the same message now lowers the MSS.
    seen.borrow_mut().clear();
    p.a.tcp_set_option(p.now, c, TcpOption::PmtuDiscover(PmtuDiscover::Do))
        .unwrap();
    p.a.tcp_send(c, &[1; 100]).unwrap();
    let una = p.a.tcp_stats(c).unwrap().snd_una;
    p.a.handle_frame(p.now, &frag_needed(&p, c, una, 1200));
    assert_eq!(p.a.tcp_stats(c).unwrap().mss, 1148);
    p.run_until(Duration::from_secs(5), |p| p.b.tcp_recv_queue(s) == 3100);
    let marks = seen.borrow().clone();
    assert!(
        !marks.is_empty() && marks.iter().all(|&m| m == (0, true)),
        "{marks:?}"
    );
}
