//! Two tapir stacks on the simulated link (`tapir_stack::testing::sim`),
//! one connection between them. The fuzzer sets each direction's loss,
//! reordering, duplication, corruption, delay and jitter, drops frames by
//! a bit pattern, advances virtual time, and makes the application calls
//! (send, recv, shutdown, socket options) on both ends. Invariants:
//!
//! - what each application receives is a prefix of what the other side's
//!   application handed to `tcp_send` (byte-exact);
//! - once the link is healed, everything sent arrives (and a shutdown is
//!   seen as end of stream) within a bounded virtual time, without the
//!   simulator going idle or livelocking first.
//!
//! The impaired phase lasts at most [`IMPAIRED_TIME`] of virtual time, so
//! no retransmission limit can legitimately abort the connection; ARP
//! (see also [`Filter`]), SYN and SYN-ACK retries keep going until answered. A connection
//! that failed with "host unreachable" anyway would be excused from
//! completing (it still had to deliver a correct prefix).
#![no_main]

use arbitrary::Arbitrary;
use core::net::{Ipv4Addr, SocketAddrV4};
use libfuzzer_sys::fuzz_target;
use std::cell::Cell;
use std::rc::Rc;
use tapir_stack::testing::sim::{host_ip, ms, Impairments, NodeId, Sim};
use tapir_stack::wire::UnreachableCode;
use tapir_stack::{Duration, Interface, SocketError, SocketHandle, TcpOption, TcpState};

const PORT: u16 = 5001;
const IMPAIRED_TIME: Duration = Duration::from_secs(30);
/// How long the healed link may take to finish: several `rto_max` (10 s
/// here) for backed-off timers, plus the transfer itself.
const HEAL_TIME: Duration = Duration::from_secs(120);

fn byte(offset: usize, salt: u8) -> u8 {
    (offset as u32).wrapping_mul(2_654_435_761).rotate_left(7) as u8 ^ salt
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Side {
    Client,
    Server,
}

#[derive(Arbitrary, Debug)]
enum Opt {
    NoDelay(bool),
    QuickAck(bool),
    KeepAlive(bool),
    RecvBuffer(u16),
    SendBuffer(u16),
    MaxSegment(u16),
}

#[derive(Arbitrary, Debug)]
struct Link {
    /// Each in 1/256: loss and corruption up to 50 %, the rest up to 100 %.
    loss: u8,
    reorder: u8,
    duplicate: u8,
    corrupt: u8,
    delay_ms: u8,
    jitter_ms: u8,
}

impl Link {
    fn impairments(&self) -> Impairments {
        let p = |x: u8, max: f64| f64::from(x) / 256.0 * max;
        Impairments::clean()
            .loss(p(self.loss, 0.5))
            .reorder(p(self.reorder, 1.0))
            .duplicate(p(self.duplicate, 1.0))
            .corrupt(p(self.corrupt, 0.5))
            .delay(ms(u64::from(self.delay_ms)))
            .jitter(ms(u64::from(self.jitter_ms / 4)))
    }
}

#[derive(Arbitrary, Debug)]
enum Step {
    /// Impair the direction towards `towards`.
    Impair {
        towards: Side,
        link: Link,
    },
    /// Drop the k-th frame entering the link (either way) when bit `k % 32`
    /// of the pattern is set.
    DropPattern(u32),
    Run {
        ms: u16,
    },
    Send {
        side: Side,
        len: u16,
    },
    Recv {
        side: Side,
        max: u16,
    },
    Shutdown {
        side: Side,
    },
    SetOption {
        side: Side,
        opt: Opt,
    },
}

/// What the link's filter drops: frames by the fuzzer's bit pattern, and
/// ARP towards a node while that direction corrupts frames. ARP has no
/// checksum, and a corrupted reply would cache a wrong MAC that outlives
/// the healing by the reachable time and the probes (which is correct
/// behaviour, but not the transport's to recover from).
#[derive(Default)]
struct Filter {
    pattern: Cell<u32>,
    count: Cell<u32>,
    corrupt_towards: [Cell<bool>; 2],
}

#[derive(Arbitrary, Debug)]
struct Input {
    seed: u64,
    steps: Vec<Step>,
}

/// One end: what its application sent and received.
struct End {
    node: NodeId,
    handle: Option<SocketHandle>,
    sent: usize,
    received: usize,
    /// Salt of the bytes this end sends.
    salt: u8,
    shut: bool,
    eof: bool,
}

impl End {
    fn send(&mut self, iface: &mut Interface, len: usize) {
        let Some(h) = self.handle else { return };
        let data: Vec<u8> = (0..len).map(|i| byte(self.sent + i, self.salt)).collect();
        if let Ok(n) = iface.tcp_send(h, &data) {
            assert!(n <= len, "tcp_send took {n} of {len} bytes");
            self.sent += n;
        }
    }

    /// Read up to `max` bytes and check them against what `other` sent.
    fn recv(&mut self, iface: &mut Interface, max: usize, other_salt: u8, other_sent: usize) {
        let Some(h) = self.handle else { return };
        let mut buf = vec![0u8; max];
        if let Ok(n) = iface.tcp_recv(h, &mut buf) {
            if n == 0 && max > 0 {
                self.eof = true;
            }
            for (i, &b) in buf[..n].iter().enumerate() {
                assert_eq!(
                    b,
                    byte(self.received + i, other_salt),
                    "byte {} received is not the byte sent",
                    self.received + i
                );
            }
            self.received += n;
            assert!(
                self.received <= other_sent,
                "received {} bytes, the peer sent {other_sent}",
                self.received
            );
            assert!(!self.eof || n == 0, "data after end of stream");
        }
    }
}

struct Pair {
    client: End,
    server: End,
    listener: SocketHandle,
}

impl Pair {
    fn ends(&mut self, side: Side) -> (&mut End, &End) {
        match side {
            Side::Client => (&mut self.client, &self.server),
            Side::Server => (&mut self.server, &self.client),
        }
    }

    fn accept(&mut self, sim: &mut Sim) {
        if self.server.handle.is_none() {
            self.server.handle = sim.iface(self.server.node).tcp_accept(self.listener).ok();
        }
    }

    fn recv(&mut self, sim: &mut Sim, side: Side, max: usize) {
        let (me, other) = self.ends(side);
        let (salt, sent) = (other.salt, other.sent);
        let node = me.node;
        me.recv(sim.iface(node), max, salt, sent);
    }

    fn done(&self) -> bool {
        let one_way = |me: &End, other: &End| me.received == other.sent && (!other.shut || me.eof);
        self.server.handle.is_some()
            && one_way(&self.client, &self.server)
            && one_way(&self.server, &self.client)
    }
}

fuzz_target!(|input: Input| {
    let mut sim = Sim::new(input.seed);
    let adjust = |c: &mut tapir_stack::Config| {
        c.tcp.recv_buffer = 16 * 1024;
        c.tcp.send_buffer = 16 * 1024;
        c.tcp.rto_max = Duration::from_secs(10);
        // A failed ARP resolution aborts a connecting socket with
        // EHOSTUNREACH (as Linux): keep asking through the impaired phase.
        c.arp.max_requests = 1000;
        // Likewise the handshake: a server that gives up on its half-open
        // connection after the SYN-ACKs were lost leaves the client
        // ESTABLISHED alone (correct, and not a transport failure).
        c.tcp.syn_retries = 100;
        c.tcp.synack_retries = 100;
    };
    let a = sim.add_host_with(2, adjust);
    let b = sim.add_host_with(3, adjust);
    let link = sim.connect(a, b, Impairments::clean().delay(ms(1)));
    // To read a failure: TAPIR_FUZZ_PCAP=file.pcap makes a replay write
    // the frames the link delivered.
    let pcap = std::env::var_os("TAPIR_FUZZ_PCAP");
    if pcap.is_some() {
        sim.capture(link);
    }
    let listener = sim
        .iface(b)
        .tcp_listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT), 4)
        .expect("listen");
    let now = sim.now();
    let client = sim
        .iface(a)
        .tcp_connect(now, SocketAddrV4::new(host_ip(3), PORT))
        .expect("connect");
    let end = |node, handle, salt| End {
        node,
        handle,
        sent: 0,
        received: 0,
        salt,
        shut: false,
        eof: false,
    };
    let mut p = Pair {
        client: end(a, Some(client), 0x11),
        server: end(b, None, 0x22),
        listener,
    };
    let start = sim.now();
    let filter = Rc::new(Filter::default());
    let f = filter.clone();
    sim.set_filter(link, move |info| {
        let i = f.count.get();
        f.count.set(i.wrapping_add(1));
        let arp = info.frame.get(12..14) == Some(&[0x08, 0x06][..]);
        let corrupting = f.corrupt_towards[usize::from(info.to == b)].get();
        f.pattern.get() & (1 << (i % 32)) == 0 && !(arp && corrupting)
    });

    for step in input.steps.into_iter().take(64) {
        if sim.now() - start >= IMPAIRED_TIME {
            break;
        }
        match step {
            Step::Impair { towards, link: l } => {
                let node = match towards {
                    Side::Client => a,
                    Side::Server => b,
                };
                let imp = l.impairments();
                filter.corrupt_towards[usize::from(node == b)].set(imp.corrupt > 0.0);
                sim.set_impairments_towards(link, node, imp);
            }
            Step::DropPattern(pattern) => filter.pattern.set(pattern),
            Step::Run { ms: t } => {
                let t = ms(u64::from(t % 5000));
                if let Err(e) = sim.run_for_with(t, |sim| p.accept(sim)) {
                    panic!("simulator failed while impaired: {e}");
                }
            }
            Step::Send { side, len } => {
                let (me, _) = p.ends(side);
                let node = me.node;
                me.send(sim.iface(node), usize::from(len));
            }
            Step::Recv { side, max } => p.recv(&mut sim, side, usize::from(max)),
            Step::Shutdown { side } => {
                let (me, _) = p.ends(side);
                // Only on a connected socket: shutdown in SYN-SENT
                // abandons the connection (as Linux's inet_shutdown).
                let connected = me
                    .handle
                    .and_then(|h| sim.iface(me.node).tcp_state(h))
                    .is_some_and(|s| {
                        !matches!(s, TcpState::SynSent | TcpState::SynReceived | TcpState::Closed)
                    });
                if let Some(h) = me.handle.filter(|_| connected) {
                    if sim.iface(me.node).tcp_shutdown(h).is_ok() {
                        me.shut = true;
                    }
                }
            }
            Step::SetOption { side, opt } => {
                let (me, _) = p.ends(side);
                let opt = match opt {
                    Opt::NoDelay(v) => TcpOption::NoDelay(v),
                    Opt::QuickAck(v) => TcpOption::QuickAck(v),
                    Opt::KeepAlive(v) => TcpOption::KeepAlive(v),
                    Opt::RecvBuffer(n) => TcpOption::RecvBuffer(usize::from(n)),
                    Opt::SendBuffer(n) => TcpOption::SendBuffer(usize::from(n)),
                    Opt::MaxSegment(n) => TcpOption::MaxSegment(n),
                };
                if let Some(h) = me.handle {
                    let now = sim.now();
                    let _ = sim.iface(me.node).tcp_set_option(now, h, opt);
                }
            }
        }
        p.accept(&mut sim);
    }

    // Heal the link; the applications now read everything.
    sim.clear_filter(link);
    sim.set_impairments(link, Impairments::clean().delay(ms(1)));
    let healed = sim.now();
    let result = sim.run_until(
        |sim| {
            p.accept(sim);
            p.recv(sim, Side::Client, 65536);
            p.recv(sim, Side::Server, 65536);
            p.done() || sim.now() - healed > HEAL_TIME
        },
        2_000_000,
    );
    let state = |sim: &mut Sim, e: &End| {
        e.handle
            .and_then(|h| sim.iface(e.node).tcp_stats(h))
            .map(|s| s.to_string())
            .unwrap_or_default()
    };
    let error = |sim: &mut Sim, e: &End| e.handle.and_then(|h| sim.iface(e.node).tcp_take_error(h));
    let (client_err, server_err) = (error(&mut sim, &p.client), error(&mut sim, &p.server));
    let arp_failed = |err: &Option<SocketError>| {
        matches!(
            err,
            Some(SocketError::Unreachable {
                code: UnreachableCode::Host,
                ..
            })
        )
    };
    if arp_failed(&client_err) || arp_failed(&server_err) {
        return;
    }
    if let Some(path) = &pcap {
        let _ = std::fs::write(path, sim.pcap(link));
    }
    if result.is_err() || !p.done() {
        let (c, s) = (state(&mut sim, &p.client), state(&mut sim, &p.server));
        panic!(
            "transfer did not complete {:?} after healing ({result:?}): client sent {} received {} shut {} eof {}; \
             server accepted {} sent {} received {} shut {} eof {}\n  client: {c} error {client_err:?}\n  server: {s} error {server_err:?}",
            sim.now() - healed,
            p.client.sent,
            p.client.received,
            p.client.shut,
            p.client.eof,
            p.server.handle.is_some(),
            p.server.sent,
            p.server.received,
            p.server.shut,
            p.server.eof,
        );
    }
});
