//! A whole interface fed a sequence of structured actions: raw frames,
//! crafted UDP and TCP with valid checksums toward a UDP socket and a TCP
//! listener, time advances, and application calls on accepted connections.
//! After every action the harness drains the stack and checks its
//! invariants (see `tapir_fuzz::Harness::settle`).
#![no_main]

use arbitrary::Arbitrary;
use core::net::SocketAddrV4;
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use tapir_fuzz::{config, sent_tcp, tcp_frame_from_peer, Harness};
use tapir_stack::testing::{self, PEER_IP, TAPIR_IP};
use tapir_stack::{Duration, SocketHandle, TcpState};

const UDP_PORT: u16 = 7;
const TCP_PORT: u16 = 80;
/// Peer ports the crafted segments come from: few, so segments meet the
/// connections earlier ones opened.
const PEER_PORTS: u16 = 4;

#[derive(Arbitrary, Debug)]
enum Port {
    Listener,
    Udp,
    Any(u16),
}

impl Port {
    fn get(&self) -> u16 {
        match self {
            Port::Listener => TCP_PORT,
            Port::Udp => UDP_PORT,
            Port::Any(p) => *p,
        }
    }
}

/// A sequence or acknowledgment number: relative to what the last segment
/// tapir sent on this connection implies, so the fuzzer lands in the window.
#[derive(Arbitrary, Debug)]
enum Seq {
    Next(i16),
    Absolute(u32),
}

#[derive(Arbitrary, Debug)]
enum Action {
    Frame(Vec<u8>),
    CraftedUdp {
        src_port: u16,
        dst_port: Port,
        payload: Vec<u8>,
    },
    CraftedTcp {
        peer: u8,
        dst_port: Port,
        flags: u8,
        seq: Seq,
        ack: Seq,
        window: u16,
        options: Vec<u8>,
        payload: Vec<u8>,
    },
    /// A well-formed SYN with Linux's options, to open connections cheaply.
    Syn {
        peer: u8,
        isn: u32,
    },
    AdvanceTime(u16),
    AppSend {
        conn: u8,
        len: u16,
    },
    AppRecv {
        conn: u8,
        max: u16,
    },
    AppShutdown {
        conn: u8,
    },
    AppClose {
        conn: u8,
    },
    UdpRecv,
    UdpSend {
        port: u16,
        len: u16,
    },
}

/// What tapir last told a peer port: its next sequence number and what it
/// acknowledged (the peer's next sequence number).
#[derive(Default, Clone, Copy)]
struct Peer {
    snd_nxt: u32,
    rcv_nxt: u32,
}

fn track(peers: &mut HashMap<u16, Peer>, frames: &[Vec<u8>]) {
    for (repr, len) in sent_tcp(frames) {
        let p = peers.entry(repr.dst_port).or_default();
        p.snd_nxt = repr.seq.wrapping_add(repr.segment_len(len) as u32);
        if repr.flags.ack() {
            p.rcv_nxt = repr.ack;
        }
    }
}

fuzz_target!(|actions: Vec<Action>| {
    let mut h = Harness::new(config());
    let udp = h
        .iface
        .udp_bind(SocketAddrV4::new(TAPIR_IP, UDP_PORT))
        .expect("bind UDP");
    let listener = h
        .iface
        .tcp_listen(SocketAddrV4::new(TAPIR_IP, TCP_PORT), 8)
        .expect("listen");
    // The peer's MAC is known, so replies go out without waiting for ARP.
    h.feed(&testing::arp_request_from_peer(TAPIR_IP));
    let mut peers: HashMap<u16, Peer> = HashMap::new();
    let mut conns: Vec<SocketHandle> = Vec::new();
    let mut buf = vec![0u8; 65536];

    for action in actions.into_iter().take(256) {
        let sent = match action {
            Action::Frame(bytes) => h.feed(&bytes),
            Action::CraftedUdp {
                src_port,
                dst_port,
                payload,
            } => {
                let payload = &payload[..payload.len().min(1472)];
                h.feed(&testing::udp_from_peer(src_port, dst_port.get(), payload))
            }
            Action::CraftedTcp {
                peer,
                dst_port,
                flags,
                seq,
                ack,
                window,
                options,
                payload,
            } => {
                let src_port = 40000 + u16::from(peer) % PEER_PORTS;
                let p = peers.get(&src_port).copied().unwrap_or_default();
                let seq = match seq {
                    Seq::Next(d) => p.rcv_nxt.wrapping_add(d as i32 as u32),
                    Seq::Absolute(s) => s,
                };
                let ack = match ack {
                    Seq::Next(d) => p.snd_nxt.wrapping_add(d as i32 as u32),
                    Seq::Absolute(a) => a,
                };
                h.feed(&tcp_frame_from_peer(
                    src_port,
                    dst_port.get(),
                    seq,
                    ack,
                    flags,
                    window,
                    0,
                    &options,
                    &payload,
                ))
            }
            Action::Syn { peer, isn } => {
                let src_port = 40000 + u16::from(peer) % PEER_PORTS;
                // mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7
                let opts = [2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7];
                peers.insert(
                    src_port,
                    Peer {
                        snd_nxt: 0,
                        rcv_nxt: isn.wrapping_add(1),
                    },
                );
                h.feed(&tcp_frame_from_peer(
                    src_port,
                    TCP_PORT,
                    isn,
                    0,
                    0x02,
                    64240,
                    0,
                    &opts,
                    &[],
                ))
            }
            Action::AdvanceTime(ms) => h.advance(Duration::from_millis(u64::from(ms))),
            Action::AppSend { conn, len } => {
                if let Some(&c) = pick(&conns, conn) {
                    let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
                    let _ = h.iface.tcp_send(c, &data);
                }
                h.settle()
            }
            Action::AppRecv { conn, max } => {
                if let Some(&c) = pick(&conns, conn) {
                    let max = usize::from(max).min(buf.len());
                    if let Ok(n) = h.iface.tcp_recv(c, &mut buf[..max]) {
                        assert!(n <= max, "tcp_recv returned {n} > {max}");
                    }
                }
                h.settle()
            }
            Action::AppShutdown { conn } => {
                if let Some(&c) = pick(&conns, conn) {
                    let _ = h.iface.tcp_shutdown(c);
                }
                h.settle()
            }
            Action::AppClose { conn } => {
                if !conns.is_empty() {
                    let i = usize::from(conn) % conns.len();
                    let c = conns.swap_remove(i);
                    h.iface.tcp_close(c);
                }
                h.settle()
            }
            Action::UdpRecv => {
                if let Ok((n, _)) = h.iface.udp_recv_from(udp, &mut buf) {
                    assert!(n <= 65535);
                }
                h.settle()
            }
            Action::UdpSend { port, len } => {
                let data = vec![0x55u8; usize::from(len).min(9000)];
                let _ = h.iface.udp_send_to(udp, &data, SocketAddrV4::new(PEER_IP, port));
                h.settle()
            }
        };
        track(&mut peers, &sent);
        while let Ok(c) = h.iface.tcp_accept(listener) {
            conns.push(c);
        }
        for &c in &conns {
            check_conn(&h, c);
        }
    }
});

fn pick(conns: &[SocketHandle], i: u8) -> Option<&SocketHandle> {
    if conns.is_empty() {
        None
    } else {
        conns.get(usize::from(i) % conns.len())
    }
}

fn check_conn(h: &Harness, c: SocketHandle) {
    let cfg = h.iface.config();
    assert!(
        h.iface.tcp_recv_queue(c) <= cfg.tcp.recv_buffer,
        "receive queue {} beyond the buffer",
        h.iface.tcp_recv_queue(c)
    );
    assert!(
        h.iface.tcp_send_queue(c) <= cfg.tcp.send_buffer,
        "send queue beyond the buffer"
    );
    if let Some(state) = h.iface.tcp_state(c) {
        // An accepted connection has been established; it cannot go back.
        assert!(
            !matches!(
                state,
                TcpState::Listen | TcpState::SynSent | TcpState::SynReceived
            ),
            "accepted connection in {state}"
        );
    }
}
