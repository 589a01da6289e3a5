//! A whole interface fed a sequence of actions: raw frames; structurally
//! generated frames with valid checksums (`tapir_fuzz::gen`: Ethernet, ARP,
//! IPv4 with options, ICMP quoting live connections, UDP, TCP with options
//! and numbers relative to live connections); crafted TCP; time advances;
//! and application calls (listen, connect, send, recv, shutdown, close,
//! abort, setsockopt). After every action the harness drains the stack and
//! checks its invariants (`tapir_fuzz::Harness::settle`: counters, bounds,
//! frames), then every connection the application holds (`check_conn`).
#![no_main]

use arbitrary::Arbitrary;
use core::net::SocketAddrV4;
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use tapir_fuzz::{config, gen, sent_tcp, tcp_frame_from_peer, Harness};
use tapir_stack::testing::{self, PEER_IP, TAPIR_IP};
use tapir_stack::{Duration, SocketHandle, TcpOption, TcpState};

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
enum Opt {
    NoDelay(bool),
    KeepAlive(bool),
    KeepIdle(u16),
    KeepInterval(u16),
    KeepCount(u8),
    UserTimeout(u16),
    RecvBuffer(u16),
    SendBuffer(u16),
    MaxSegment(u16),
    QuickAck(bool),
    Linger2(Option<u16>),
}

impl Opt {
    fn get(&self) -> TcpOption {
        let ms = |v: u16| Duration::from_millis(u64::from(v) * 10);
        match *self {
            Opt::NoDelay(v) => TcpOption::NoDelay(v),
            Opt::KeepAlive(v) => TcpOption::KeepAlive(v),
            Opt::KeepIdle(v) => TcpOption::KeepIdle(ms(v)),
            Opt::KeepInterval(v) => TcpOption::KeepInterval(ms(v)),
            Opt::KeepCount(v) => TcpOption::KeepCount(u32::from(v)),
            Opt::UserTimeout(v) => TcpOption::UserTimeout(ms(v)),
            Opt::RecvBuffer(v) => TcpOption::RecvBuffer(usize::from(v)),
            Opt::SendBuffer(v) => TcpOption::SendBuffer(usize::from(v)),
            Opt::MaxSegment(v) => TcpOption::MaxSegment(v),
            Opt::QuickAck(v) => TcpOption::QuickAck(v),
            Opt::Linger2(v) => TcpOption::Linger2(v.map(ms)),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Action {
    Frame(Vec<u8>),
    /// A structurally generated frame (valid checksums unless it says not).
    Structured(gen::Frame),
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
    AppAbort {
        conn: u8,
    },
    /// Listen on one more port (81-84).
    Listen {
        port: u8,
        backlog: u8,
    },
    /// Connect to one of the peer's four ports.
    Connect {
        peer: u8,
    },
    SetOption {
        conn: u8,
        opt: Opt,
    },
    ListenerOption {
        opt: Opt,
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

/// A connection the application holds.
struct Held {
    h: SocketHandle,
    /// It has reached ESTABLISHED (or later): it may never go back.
    synchronized: bool,
    /// The highest sequence number (plus SYN/FIN and data) seen in a
    /// segment it sent.
    snd_max: Option<u32>,
}

fuzz_target!(|actions: Vec<Action>| {
    let mut h = Harness::new(config());
    let udp = h
        .iface
        .udp_bind(SocketAddrV4::new(TAPIR_IP, UDP_PORT))
        .expect("bind UDP");
    let mut listeners = vec![h
        .iface
        .tcp_listen(SocketAddrV4::new(TAPIR_IP, TCP_PORT), 8)
        .expect("listen")];
    // The peer's MAC is known, so replies go out without waiting for ARP.
    h.feed(&testing::arp_request_from_peer(TAPIR_IP));
    let mut peers: HashMap<u16, Peer> = HashMap::new();
    let mut conns: Vec<Held> = Vec::new();
    let mut env = gen::Env::default();
    let mut buf = vec![0u8; 65536];

    for action in actions.into_iter().take(256) {
        let sent = match action {
            Action::Frame(bytes) => h.feed(&bytes),
            Action::Structured(frame) => {
                refresh_env(&h, &mut env, &listeners);
                let f = frame.build(&mut env);
                h.feed(&f)
            }
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
                if let Some(c) = pick(&conns, conn) {
                    let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
                    if let Ok(n) = h.iface.tcp_send(c, &data) {
                        assert!(n <= data.len(), "tcp_send took {n} of {len}");
                    }
                }
                h.settle()
            }
            Action::AppRecv { conn, max } => {
                if let Some(c) = pick(&conns, conn) {
                    let max = usize::from(max).min(buf.len());
                    if let Ok(n) = h.iface.tcp_recv(c, &mut buf[..max]) {
                        assert!(n <= max, "tcp_recv returned {n} > {max}");
                    }
                }
                h.settle()
            }
            Action::AppShutdown { conn } => {
                if let Some(c) = pick(&conns, conn) {
                    let _ = h.iface.tcp_shutdown(c);
                }
                h.settle()
            }
            Action::AppClose { conn } => {
                if !conns.is_empty() {
                    let i = usize::from(conn) % conns.len();
                    let c = conns.swap_remove(i);
                    h.iface.tcp_close(c.h);
                }
                h.settle()
            }
            Action::AppAbort { conn } => {
                if !conns.is_empty() {
                    let i = usize::from(conn) % conns.len();
                    let c = conns.swap_remove(i);
                    h.iface.tcp_abort(c.h);
                }
                h.settle()
            }
            Action::Listen { port, backlog } => {
                let port = 81 + u16::from(port % 4);
                if let Ok(l) = h
                    .iface
                    .tcp_listen(SocketAddrV4::new(TAPIR_IP, port), usize::from(backlog % 16))
                {
                    listeners.push(l);
                }
                h.settle()
            }
            Action::Connect { peer } => {
                let remote = SocketAddrV4::new(PEER_IP, 40000 + u16::from(peer) % PEER_PORTS);
                let now = h.now;
                if let Ok(c) = h.iface.tcp_connect(now, remote) {
                    conns.push(Held {
                        h: c,
                        synchronized: false,
                        snd_max: None,
                    });
                }
                h.settle()
            }
            Action::SetOption { conn, opt } => {
                if let Some(c) = pick(&conns, conn) {
                    let now = h.now;
                    let _ = h.iface.tcp_set_option(now, c, opt.get());
                }
                h.settle()
            }
            Action::ListenerOption { opt } => {
                let now = h.now;
                let _ = h.iface.tcp_set_option(now, listeners[0], opt.get());
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
        for &l in &listeners {
            while let Ok(c) = h.iface.tcp_accept(l) {
                // Its SYN-ACK went out before we held it, so start from
                // SND.UNA: the peer acknowledged it, so it was sent (a
                // zero-window probe, at SND.UNA - 1, must not set the
                // mark below it).
                let snd_max = h.iface.tcp_stats(c).map(|s| s.snd_una);
                conns.push(Held {
                    h: c,
                    synchronized: true,
                    snd_max,
                });
            }
        }
        track_snd_max(&h, &mut conns, &sent);
        for c in &mut conns {
            check_conn(&h, c);
        }
    }
});

/// What the structured builders may aim at: tapir's ports and the
/// sequence variables of every connection it has.
fn refresh_env(h: &Harness, env: &mut gen::Env, listeners: &[SocketHandle]) {
    env.local_ports.clear();
    env.local_ports.push(UDP_PORT);
    env.local_ports.extend(
        listeners
            .iter()
            .filter_map(|&l| h.iface.tcp_local_addr(l))
            .map(|a| a.port()),
    );
    env.conns.clear();
    for (local, remote, s) in h.iface.tcp_connections() {
        env.local_ports.push(local.port());
        env.conns.push(gen::ConnView {
            local_port: local.port(),
            remote_ip: *remote.ip(),
            remote_port: remote.port(),
            snd_una: s.snd_una,
            snd_nxt: s.snd_nxt,
            rcv_nxt: s.rcv_nxt,
        });
    }
}

/// Raise each held connection's `snd_max` by the segments it sent.
fn track_snd_max(h: &Harness, conns: &mut [Held], frames: &[Vec<u8>]) {
    let segs = sent_tcp(frames);
    for c in conns {
        let (Some(local), Some(remote)) = (h.iface.tcp_local_addr(c.h), h.iface.tcp_peer_addr(c.h)) else {
            continue;
        };
        for (repr, len) in &segs {
            if repr.src_port != local.port() || repr.dst_port != remote.port() {
                continue;
            }
            let end = repr.seq.wrapping_add(repr.segment_len(*len) as u32);
            c.snd_max = Some(match c.snd_max {
                Some(m) if (end.wrapping_sub(m) as i32) <= 0 => m,
                _ => end,
            });
        }
    }
}

fn pick(conns: &[Held], i: u8) -> Option<SocketHandle> {
    if conns.is_empty() {
        None
    } else {
        conns.get(usize::from(i) % conns.len()).map(|c| c.h)
    }
}

fn check_conn(h: &Harness, c: &mut Held) {
    let iface = &h.iface;
    let rcap = match iface.tcp_get_option(c.h, TcpOption::RecvBuffer(0)) {
        Some(TcpOption::RecvBuffer(n)) => n,
        _ => iface.config().tcp.recv_buffer,
    };
    let scap = match iface.tcp_get_option(c.h, TcpOption::SendBuffer(0)) {
        Some(TcpOption::SendBuffer(n)) => n,
        _ => iface.config().tcp.send_buffer,
    };
    let Some(stats) = iface.tcp_stats(c.h) else {
        return;
    };
    let rq = iface.tcp_recv_queue(c.h);
    assert!(
        rq + stats.ooo_bytes <= rcap,
        "receive queue {rq} + out-of-order {} beyond the buffer {rcap}",
        stats.ooo_bytes
    );
    let sq = iface.tcp_send_queue(c.h);
    assert!(sq <= scap, "send queue {sq} beyond the buffer {scap}");
    let Some(state) = stats.state else {
        return;
    };
    assert!(state != TcpState::Listen, "a connection in LISTEN");
    if c.synchronized {
        // A synchronized connection cannot go back (RFC 9293 3.3.2).
        assert!(
            !matches!(state, TcpState::SynSent | TcpState::SynReceived),
            "synchronized connection back in {state}"
        );
    }
    if !matches!(
        state,
        TcpState::SynSent | TcpState::SynReceived | TcpState::Closed
    ) {
        c.synchronized = true;
    }
    if state == TcpState::Closed {
        return;
    }
    // SND.UNA <= SND.NXT, at most a send buffer (plus SYN and FIN) apart.
    let flight = stats.snd_nxt.wrapping_sub(stats.snd_una);
    assert!(
        (flight as usize) <= scap.max(sq) + 2,
        "SND.NXT {} is {flight} past SND.UNA {} (send buffer {scap}) in {state}",
        stats.snd_nxt,
        stats.snd_una
    );
    // SND.NXT <= the highest sequence number sent, unless a frame was lost
    // on the way out (ARP pending, transmit queue full).
    let s = iface.stats();
    let lossless_egress =
        s.arp_requests_tx == 0 && s.arp_pending_full == 0 && s.tx_queue_full == 0 && s.tx_buf_too_small == 0;
    if let (true, Some(max)) = (lossless_egress, c.snd_max) {
        assert!(
            (max.wrapping_sub(stats.snd_nxt) as i32) >= 0,
            "SND.NXT {} beyond the highest sequence sent {max} in {state}",
            stats.snd_nxt
        );
    }
}
