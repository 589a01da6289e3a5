//! One connection, established by a crafted handshake from a peer at
//! 10.77.0.1:40000, then a fuzzed sequence of segments (sequence and
//! acknowledgment numbers relative to the live values, arbitrary flags,
//! options and payload), time advances and application calls.
#![no_main]

use arbitrary::Arbitrary;
use core::net::SocketAddrV4;
use libfuzzer_sys::fuzz_target;
use tapir_fuzz::{config, sent_tcp, tcp_frame_from_peer, Harness};
use tapir_stack::testing::{self, TAPIR_IP};
use tapir_stack::{Duration, SocketHandle, TcpOption, TcpState};

const PEER_PORT: u16 = 40000;
const PORT: u16 = 80;
/// Frames one segment or application call may make the stack send: a
/// window's worth of small segments and a few control segments.
const MAX_FRAMES_PER_STEP: usize = 2048;

#[derive(Arbitrary, Debug)]
struct Setup {
    isn: u32,
    mss: u16,
    wscale: Option<u8>,
    sack_permitted: bool,
    timestamps: bool,
}

#[derive(Arbitrary, Debug)]
enum AckBase {
    /// Relative to the oldest unacknowledged byte.
    Una,
    /// Relative to the next byte tapir will send.
    Nxt,
}

#[derive(Arbitrary, Debug)]
enum Options {
    /// What the setup negotiated: timestamps if agreed, SACK blocks relative
    /// to snd_una.
    Structured {
        ts_step: Option<u16>,
        echo: bool,
        sack: Vec<(i16, u16)>,
    },
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Step {
    Segment {
        flags: u8,
        seq: i16,
        ack_base: AckBase,
        ack: i16,
        window: u16,
        urgent: u16,
        options: Options,
        len: u16,
    },
    Advance(u16),
    Read(u16),
    Write(u16),
    Shutdown,
    Close,
    Abort,
    NoDelay(bool),
    QuickAck(bool),
    Cork(bool),
}

#[derive(Arbitrary, Debug)]
struct Input {
    setup: Setup,
    steps: Vec<Step>,
}

/// The peer's view of the connection.
struct Peer {
    /// Next sequence number the peer sends (tapir's rcv_nxt).
    snd_nxt: u32,
    /// Tapir's snd_una and snd_nxt as last known.
    una: u32,
    nxt: u32,
    ts_val: u32,
    /// The last TSval tapir sent.
    ts_recent: u32,
    timestamps: bool,
}

impl Peer {
    fn observe(&mut self, h: &Harness, frames: &[Vec<u8>]) {
        for (repr, len) in sent_tcp(frames) {
            self.nxt = repr.seq.wrapping_add(repr.segment_len(len) as u32);
            if let Some((val, _)) = repr.options.timestamps {
                self.ts_recent = val;
            }
        }
        // The stack's own numbers win while the connection exists.
        for (local, remote, stats) in h.iface.tcp_connections() {
            if local.port() == PORT && remote.port() == PEER_PORT {
                self.snd_nxt = stats.rcv_nxt;
                self.una = stats.snd_una;
                self.nxt = stats.snd_nxt;
            }
        }
    }

    fn options(&mut self, opts: Options) -> Vec<u8> {
        let (ts_step, echo, sack) = match opts {
            Options::Raw(raw) => return raw,
            Options::Structured { ts_step, echo, sack } => (ts_step, echo, sack),
        };
        let mut o = Vec::new();
        if self.timestamps {
            if let Some(step) = ts_step {
                self.ts_val = self.ts_val.wrapping_add(u32::from(step));
            }
            let ecr = if echo { self.ts_recent } else { 0 };
            o.extend_from_slice(&[1, 1, 8, 10]);
            o.extend_from_slice(&self.ts_val.to_be_bytes());
            o.extend_from_slice(&ecr.to_be_bytes());
        }
        let room = (40 - o.len() - 4) / 8;
        let blocks: Vec<_> = sack.into_iter().take(room.min(4)).collect();
        if !blocks.is_empty() {
            o.extend_from_slice(&[1, 1, 5, 2 + 8 * blocks.len() as u8]);
            for (off, len) in blocks {
                let left = self.una.wrapping_add(off as i32 as u32);
                o.extend_from_slice(&left.to_be_bytes());
                o.extend_from_slice(&left.wrapping_add(u32::from(len)).to_be_bytes());
            }
        }
        o
    }
}

fn syn_options(s: &Setup) -> Vec<u8> {
    let mss = 536 + s.mss % 1000;
    let mut o = vec![2, 4];
    o.extend_from_slice(&mss.to_be_bytes());
    if s.sack_permitted {
        o.extend_from_slice(&[1, 1, 4, 2]);
    }
    if s.timestamps {
        o.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0]);
    }
    if let Some(w) = s.wscale {
        o.extend_from_slice(&[1, 3, 3, w % 15]);
    }
    o
}

fuzz_target!(|input: Input| {
    let Input { setup, steps } = input;
    let mut h = Harness::new(config());
    let listener = h
        .iface
        .tcp_listen(SocketAddrV4::new(TAPIR_IP, PORT), 8)
        .expect("listen");
    h.feed(&testing::arp_request_from_peer(TAPIR_IP));

    // RFC 9293 3.5: the three-way handshake.
    let sent = h.feed(&tcp_frame_from_peer(
        PEER_PORT,
        PORT,
        setup.isn,
        0,
        0x02,
        64240,
        0,
        &syn_options(&setup),
        &[],
    ));
    let syn_ack = sent_tcp(&sent)
        .into_iter()
        .map(|(r, _)| r)
        .find(|r| r.flags.syn() && r.flags.ack())
        .expect("no SYN-ACK");
    assert_eq!(syn_ack.ack, setup.isn.wrapping_add(1));
    let timestamps = syn_ack.options.timestamps.is_some();
    assert!(
        !timestamps || setup.timestamps,
        "timestamps without the peer offering them"
    );
    let mut peer = Peer {
        snd_nxt: setup.isn.wrapping_add(1),
        una: syn_ack.seq.wrapping_add(1),
        nxt: syn_ack.seq.wrapping_add(1),
        ts_val: 1,
        ts_recent: syn_ack.options.timestamps.map(|t| t.0).unwrap_or(0),
        timestamps,
    };
    let opts = peer.options(Options::Structured {
        ts_step: Some(1),
        echo: true,
        sack: Vec::new(),
    });
    let sent = h.feed(&tcp_frame_from_peer(
        PEER_PORT,
        PORT,
        peer.snd_nxt,
        peer.nxt,
        0x10,
        502,
        0,
        &opts,
        &[],
    ));
    peer.observe(&h, &sent);
    let conn = h.iface.tcp_accept(listener).expect("handshake did not complete");
    assert_eq!(h.iface.tcp_state(conn), Some(TcpState::Established));
    let mut conn = Some(conn);
    let mut buf = vec![0u8; 65536];

    for step in steps.into_iter().take(512) {
        let (sent, bounded) = match step {
            Step::Segment {
                flags,
                seq,
                ack_base,
                ack,
                window,
                urgent,
                options,
                len,
            } => {
                let seq = peer.snd_nxt.wrapping_add(seq as i32 as u32);
                let base = match ack_base {
                    AckBase::Una => peer.una,
                    AckBase::Nxt => peer.nxt,
                };
                let ack = base.wrapping_add(ack as i32 as u32);
                let opts = peer.options(options);
                let payload: Vec<u8> = (0..len.min(1400)).map(|i| i as u8).collect();
                let f =
                    tcp_frame_from_peer(PEER_PORT, PORT, seq, ack, flags, window, urgent, &opts, &payload);
                (h.feed(&f), true)
            }
            Step::Advance(ms) => (h.advance(Duration::from_millis(u64::from(ms))), false),
            Step::Read(max) => {
                if let Some(c) = conn {
                    let max = usize::from(max);
                    if let Ok(n) = h.iface.tcp_recv(c, &mut buf[..max]) {
                        assert!(n <= max);
                    }
                }
                (h.settle(), true)
            }
            Step::Write(len) => {
                if let Some(c) = conn {
                    let data: Vec<u8> = (0..len).map(|i| (i >> 3) as u8).collect();
                    if let Ok(n) = h.iface.tcp_send(c, &data) {
                        assert!(n <= data.len());
                    }
                }
                (h.settle(), true)
            }
            Step::Shutdown => {
                if let Some(c) = conn {
                    let _ = h.iface.tcp_shutdown(c);
                }
                (h.settle(), true)
            }
            Step::Close => {
                if let Some(c) = conn.take() {
                    h.iface.tcp_close(c);
                }
                (h.settle(), true)
            }
            Step::Abort => {
                if let Some(c) = conn.take() {
                    h.iface.tcp_abort(c);
                }
                (h.settle(), true)
            }
            Step::NoDelay(on) => {
                if let Some(c) = conn {
                    let _ = h.iface.tcp_set_option(h.now, c, TcpOption::NoDelay(on));
                }
                (h.settle(), true)
            }
            Step::QuickAck(on) => {
                if let Some(c) = conn {
                    let _ = h.iface.tcp_set_option(h.now, c, TcpOption::QuickAck(on));
                }
                (h.settle(), true)
            }
            Step::Cork(on) => {
                if let Some(c) = conn {
                    let _ = h.iface.tcp_set_option(h.now, c, TcpOption::Cork(on));
                }
                (h.settle(), true)
            }
        };
        assert!(
            !bounded || sent.len() <= MAX_FRAMES_PER_STEP,
            "one step sent {} frames",
            sent.len()
        );
        peer.observe(&h, &sent);
        check(&h, conn);
    }
});

fn check(h: &Harness, conn: Option<SocketHandle>) {
    let tcp = &h.iface.config().tcp;
    if let Some(c) = conn {
        if let Some(state) = h.iface.tcp_state(c) {
            assert!(
                !matches!(
                    state,
                    TcpState::Listen | TcpState::SynSent | TcpState::SynReceived
                ),
                "established connection went back to {state}"
            );
        }
        // The buffers grow with autotuning: the bound is the socket's
        // current size, itself within the configured maximum.
        let size = |probe| match h.iface.tcp_get_option(c, probe) {
            Some(TcpOption::RecvBuffer(n)) | Some(TcpOption::SendBuffer(n)) => n,
            _ => 0,
        };
        let (rcap, scap) = (size(TcpOption::RecvBuffer(0)), size(TcpOption::SendBuffer(0)));
        if h.iface.tcp_state(c).is_some() {
            assert!(
                rcap <= tcp.recv_buffer_max.max(tcp.recv_buffer),
                "receive buffer {rcap} beyond the maximum"
            );
            assert!(
                scap <= tcp.send_buffer_max.max(tcp.send_buffer),
                "send buffer {scap} beyond the maximum"
            );
            assert!(
                h.iface.tcp_recv_queue(c) <= rcap,
                "receive queue beyond the buffer"
            );
            assert!(h.iface.tcp_send_queue(c) <= scap, "send queue beyond the buffer");
        }
    }
    let (rmax, smax) = (
        tcp.recv_buffer_max.max(tcp.recv_buffer),
        tcp.send_buffer_max.max(tcp.send_buffer),
    );
    for (_, _, s) in h.iface.tcp_connections() {
        assert!(
            s.ooo_bytes <= rmax,
            "out-of-order bytes {} beyond the buffer",
            s.ooo_bytes
        );
        let flight = s.snd_nxt.wrapping_sub(s.snd_una);
        assert!(
            flight as usize <= smax + 2,
            "snd_nxt {} is not within the send buffer of snd_una {}",
            s.snd_nxt,
            s.snd_una
        );
    }
    assert!(
        h.iface.tcp_connection_count() <= 1,
        "connections appeared from nowhere"
    );
}
