//! Issue 11's simulation grid: over a thousand seeded one-way transfers in
//! virtual time, across a grid of impaired links, tapir to tapir in both
//! directions (the client sends, or the server sends) and a subset against
//! smoltcp. Every run must
//!
//! - deliver the stream byte-exact;
//! - finish within a bound of virtual time derived from the cell and from
//!   what the link did (no hang: a run past it fails with its cell and
//!   seed; see [`time_bound`]);
//! - retransmit no more than [`K_RETX`] segments per event, plus
//!   [`C_RETX`], where an event is a frame the link lost, tail-dropped or
//!   corrupted (either direction) or a data frame it delivered behind at
//!   least DupThresh later ones (see [`K_RETX`] for why).
//!
//! A run whose link was down for the connection (every handshake attempt
//! lost, or more timeouts' worth in a row than the sender retries) is
//! counted apart as "down"; only Gilbert-Elliott cells can do that.
//!
//! Failures are collected, the per-cell summary is printed (run with
//! `--nocapture` to see it when all pass): runs, failures, link-down runs,
//! mean virtual seconds, the largest share of the time bound used,
//! retransmissions, damaged frames towards the receiver and towards the
//! sender, data frames reordered past DupThresh, and the worst run's
//! retransmissions against what it was allowed. Then the test fails naming
//! every failing cell and seed. One run replays alone with
//! `TAPIR_GRID_CELL=<cell name> TAPIR_SIM_SEED=<seed>` (either may be given
//! alone); `TAPIR_GRID_PCAP=FILE` then writes its frames as a pcap.
//! `grid_large_transfers` (ignored) runs the grid with transfers of up to
//! 4 MiB.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;
use std::time::Duration;
use tapir_stack::testing::sim::{
    host_ip, host_mac, ms, us, GilbertElliott, Impairments, LinkId, NodeId, Sim, SEED_ENV,
};
use tapir_stack::testing::smoltcp_peer::SmoltcpPeer;
use tapir_stack::wire::Ipv4Cidr;
use tapir_stack::{Interface, SocketHandle, TcpState};

const PORT: u16 = 5001;

/// Seeds per cell and direction, tapir to tapir.
const TAPIR_SEEDS: u64 = 20;
/// Seeds per cell and direction against smoltcp.
const SMOLTCP_SEEDS: u64 = 6;

/// Retransmitted segments allowed per segment the link damaged.
///
/// Each damaged data segment (lost, tail-dropped, corrupted) is repaired
/// by one retransmission: RFC 6675 5 retransmits each segment deemed lost
/// once per recovery (NextSeg rule 1 moves HighRxt past it), and a
/// retransmission the link damages again is itself counted. Spurious
/// retransmissions have causes the link also applied, each worth at most
/// one segment: a data segment overtaken by DupThresh (3) later ones looks
/// lost (RFC 5681 3.2, RFC 6675 IsLost) and is sent again; a lost or
/// corrupted ACK can leave the tail unacknowledged until the RTO resends
/// its first segment (RFC 6298 5.4). What exceeds one per event is the
/// RTO's go-back-N (RFC 5681 3.1, RFC 6675 5.1): after a timeout the
/// sender resends from SND.UNA segments the receiver may already hold but
/// whose SACK blocks were lost or discarded (RFC 2018 8), at most one
/// more for each that the slow start after the timeout overlaps. Hence 2.
const K_RETX: u64 = 2;
/// Retransmissions allowed on top: the SYN's (RFC 6298 5.7; the lost SYN
/// or SYN-ACK is counted among the events too), a spare for one timeout's
/// worth of go-back-N at the tail, and for reordering by fewer than
/// DupThresh frames that still looks like loss because the receiver's
/// ACKs, with three SACK blocks beside timestamps (RFC 2018 3), left out
/// the block that held the late segment.
const C_RETX: u64 = 8;

/// The byte at `offset` of a stream: position-dependent, so a lost,
/// duplicated or misplaced byte is caught.
fn byte(offset: usize, salt: u8) -> u8 {
    (offset as u32).wrapping_mul(2_654_435_761).rotate_left(7) as u8 ^ salt
}

/// Transfer size for a seed: 16 KiB to 16 KiB + `max_extra`, not a
/// multiple of any segment size.
fn transfer_len(seed: u64, max_extra: usize) -> usize {
    16 * 1024 + (seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as usize % max_extra + (seed % 1447) as usize
}

/// Transfers of up to about half a megabyte: the whole grid takes about
/// 15 s of CPU in the opt-level=1 test build.
const MAX_EXTRA: usize = 512 << 10;

/// The ignored large variant's: up to 4 MiB (run it with --release).
const MAX_EXTRA_LARGE: usize = 4 << 20;

// ---------------------------------------------------------------------------
// The grid

#[derive(Clone)]
struct Cell {
    name: String,
    imp: Impairments,
    /// The IP MTU of host 2 (the client) and host 3 (the server); the link
    /// carries `imp.mtu`. MSS negotiation must keep every segment within
    /// the smaller.
    mtu: (usize, usize),
}

fn cell(name: impl Into<String>, imp: Impairments) -> Cell {
    let mtu = imp.mtu;
    Cell {
        name: name.into(),
        imp,
        mtu: (mtu, mtu),
    }
}

/// `delay` one way with a tenth of it as jitter.
fn path(delay_ms: u64) -> Impairments {
    Impairments::clean()
        .delay(ms(delay_ms))
        .jitter(us(delay_ms * 100))
}

fn pct(p: f64) -> String {
    format!("{}%", p * 100.0)
}

/// Random loss × delay (with jitter).
fn loss_grid() -> Vec<Cell> {
    let mut cells = Vec::new();
    for loss in [0.0, 0.001, 0.01, 0.05] {
        for delay in [1, 10, 50] {
            cells.push(cell(
                format!("loss {} delay {delay}ms", pct(loss)),
                path(delay).loss(loss),
            ));
        }
    }
    cells
}

/// Bursts, reordering, duplication, corruption, a rate limit, small MTUs,
/// and all of them at once.
fn other_grid() -> Vec<Cell> {
    let mut mixed_mtu = cell("mtu 1280 link, server 1500", path(10).loss(0.01).mtu(1280));
    mixed_mtu.mtu = (1280, 1500);
    vec![
        // About 3 % loss in bursts of 3.3 frames.
        cell(
            "ge p=1% r=30% delay 10ms",
            path(10).burst(GilbertElliott::new(0.01, 0.3)),
        ),
        // About 1 % loss in bursts of 2 frames, long path.
        cell(
            "ge p=0.5% r=50% delay 50ms",
            path(50).burst(GilbertElliott::new(0.005, 0.5)),
        ),
        cell("reorder 2% delay 10ms", path(10).reorder(0.02)),
        cell("reorder 10% delay 1ms", path(1).reorder(0.1)),
        cell("dup 5% delay 10ms", path(10).duplicate(0.05)),
        cell("dup 20% loss 1% delay 1ms", path(1).duplicate(0.2).loss(0.01)),
        cell("corrupt 1% delay 10ms", path(10).corrupt(0.01)),
        cell("corrupt 5% delay 1ms", path(1).corrupt(0.05)),
        // 10 Mbit/s, 20 frames of queue: the sender's own bursts overflow it.
        cell(
            "rate 10mbit queue 20 delay 10ms",
            path(10).rate(10_000_000).queue_limit(20 * 1514),
        ),
        cell(
            "rate 2mbit queue 8 loss 0.1% delay 50ms",
            path(50).rate(2_000_000).queue_limit(8 * 1514).loss(0.001),
        ),
        cell("mtu 576 loss 1% delay 10ms", path(10).loss(0.01).mtu(576)),
        cell("mtu 296 loss 1% delay 1ms", path(1).loss(0.01).mtu(296)),
        mixed_mtu,
        cell(
            "everything",
            path(10)
                .jitter(ms(2))
                .loss(0.01)
                .burst(GilbertElliott::new(0.002, 0.4))
                .reorder(0.02)
                .duplicate(0.01)
                .corrupt(0.005)
                .rate(20_000_000)
                .queue_limit(30 * 1414)
                .mtu(1400),
        ),
    ]
}

/// Where [`other_grid`] is cut in two tests (they run in parallel).
const OTHER_SPLIT: usize = 8;

/// The subset run against smoltcp.
fn smoltcp_grid() -> Vec<Cell> {
    let all: Vec<Cell> = loss_grid().into_iter().chain(other_grid()).collect();
    let pick = |name: &str| {
        all.iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no cell {name}"))
            .clone()
    };
    vec![
        pick("loss 0% delay 10ms"),
        pick("loss 1% delay 10ms"),
        pick("loss 5% delay 1ms"),
        pick("ge p=1% r=30% delay 10ms"),
        pick("reorder 2% delay 10ms"),
        pick("dup 20% loss 1% delay 1ms"),
        pick("rate 10mbit queue 20 delay 10ms"),
        pick("mtu 576 loss 1% delay 10ms"),
        pick("everything"),
    ]
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Peer {
    Tapir,
    Smoltcp,
}

/// Who sends: the client (host 2, always tapir) or the server (host 3).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dir {
    ClientSends,
    ServerSends,
}

impl Dir {
    fn label(self, peer: Peer) -> &'static str {
        match (peer, self) {
            (Peer::Tapir, Dir::ClientSends) => "client->server",
            (Peer::Tapir, Dir::ServerSends) => "server->client",
            (Peer::Smoltcp, Dir::ClientSends) => "tapir->smoltcp",
            (Peer::Smoltcp, Dir::ServerSends) => "smoltcp->tapir",
        }
    }
}

// ---------------------------------------------------------------------------
// Watching the wire

/// What the sender's data frames did on the link, from a filter (every
/// frame offered, in order, before the link's choices) and a capture
/// (every frame delivered, in order).
#[derive(Default)]
struct Wire {
    /// IP identification of each data frame offered by the sender.
    offered: Vec<u16>,
    /// Every frame offered, in order: towards the receiver?, a hash of its
    /// bytes (to find which never arrived intact), and when.
    all: Vec<(bool, u64, tapir_stack::Instant)>,
    /// Data frames that started below the highest sequence sent before:
    /// retransmissions as seen on the wire.
    retransmitted: u64,
    snd_max: Option<u32>,
}

struct Tcp {
    ident: u16,
    seq: u32,
    payload: usize,
}

/// The IP identification, sequence number and payload length of a TCP
/// frame, if it is one and its headers hold together.
fn parse_tcp(frame: &[u8]) -> Option<Tcp> {
    let ip = frame.get(14..)?;
    if frame.get(12..14)? != [0x08, 0x00] || ip.len() < 20 || ip[9] != 6 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let tcp = ip.get(ihl..total.min(ip.len()))?;
    if tcp.len() < 20 {
        return None;
    }
    let doff = usize::from(tcp[12] >> 4) * 4;
    Some(Tcp {
        ident: u16::from_be_bytes([ip[4], ip[5]]),
        seq: u32::from_be_bytes(tcp[4..8].try_into().ok()?),
        payload: tcp.len().checked_sub(doff)?,
    })
}

/// Retransmissions of a segment before the connection is given up
/// (tapir's default, Linux's tcp_retries2).
const MAX_RETRANSMITS: u32 = 15;

/// The handshake's tries in the grid (`syn_retries` + 1 = `synack_retries` + 1).
const SYN_TRIES: u32 = 11;

/// The smallest RTO: tapir's and Linux's (RFC 6298 2.4 suggests 1 s).
const TIMEOUT_GAP: Duration = Duration::from_millis(200);

fn frame_hash(frame: &[u8]) -> u64 {
    frame.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Timeouts in a row the link forced, for each direction (towards the
/// receiver, towards the sender): the longest run of frames of which no
/// copy arrived intact, each sent at least [`TIMEOUT_GAP`] after the one
/// before it in its direction (a frame sent by a timeout; frames sent
/// back to back, as a burst into a full queue, count once).
fn longest_loss_runs(wire: &Wire, sim: &Sim, link: LinkId, sender: NodeId) -> (u32, u32) {
    let mut arrived: std::collections::HashMap<(bool, u64), u32> = std::collections::HashMap::new();
    for f in sim.captured(link) {
        *arrived
            .entry((f.from == sender, frame_hash(&f.frame)))
            .or_default() += 1;
    }
    let mut run = [0u32; 2];
    let mut longest = [0u32; 2];
    let mut last: [Option<tapir_stack::Instant>; 2] = [None; 2];
    for &(towards_receiver, hash, at) in &wire.all {
        let d = usize::from(!towards_receiver);
        let alone = last[d].is_none_or(|t| at - t >= TIMEOUT_GAP);
        last[d] = Some(at);
        // Identical frames (ARP requests, say) share a key: each arrival
        // accounts for one of them.
        match arrived.get_mut(&(towards_receiver, hash)) {
            Some(n) if *n > 0 => {
                *n -= 1;
                run[d] = 0;
            }
            _ if alone => {
                run[d] += 1;
                longest[d] = longest[d].max(run[d]);
            }
            _ => {}
        }
    }
    (longest[0], longest[1])
}

/// Delivered data frames that arrived after at least DupThresh (3) data
/// frames offered later: reordering a DupThresh sender may take for loss.
fn reordered_past_dupthresh(offered: &[u16], delivered: impl Iterator<Item = u16>) -> u64 {
    // IP IDs count up by one per frame from a random start and do not
    // wrap within a transfer of this size.
    let index: std::collections::HashMap<u16, usize> =
        offered.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    // Fenwick tree over offer positions: how many delivered so far lie above.
    let n = offered.len();
    let mut tree = vec![0u32; n + 1];
    let mut seen = vec![false; n];
    let (mut total, mut late) = (0u32, 0u64);
    for id in delivered {
        let Some(&i) = index.get(&id) else { continue };
        if std::mem::replace(&mut seen[i], true) {
            continue; // a duplicate copy
        }
        let mut below = 0;
        let mut k = i + 1;
        while k > 0 {
            below += tree[k];
            k &= k - 1;
        }
        if total - below >= 3 {
            late += 1;
        }
        let mut k = i + 1;
        while k <= n {
            tree[k] += 1;
            k += k & k.wrapping_neg();
        }
        total += 1;
    }
    late
}

// ---------------------------------------------------------------------------
// One run

/// What one run measured.
#[derive(Default, Clone)]
struct Outcome {
    /// The link was down for the connection: it lost all 11 SYNs or
    /// SYN-ACKs in a row and connect failed, or it lost more than 15
    /// timeouts' worth in a row (data or their ACKs) and the sender gave
    /// up, as it should (Linux's tcp_syn_retries, tcp_retries2). Possible
    /// only on the Gilbert-Elliott cells, whose chain steps per frame and
    /// so stays bad for a sender that sends one frame per timeout.
    /// Counted apart ("down"), not as a delivery.
    link_down: bool,
    elapsed: Duration,
    bound: Duration,
    /// The sending stack's count (tapir's stats), or the wire's for smoltcp.
    retransmits: u64,
    /// Data frames the link lost, tail-dropped, dropped for size or
    /// corrupted, towards the receiver.
    data_damaged: u64,
    /// The same for frames towards the sender (ACKs, mostly).
    ack_damaged: u64,
    /// Data frames overtaken by at least three later ones.
    reordered: u64,
    /// Whether the retransmission bound is ours to assert (tapir sends).
    tapir_sends: bool,
}

impl Outcome {
    fn events(&self) -> u64 {
        self.data_damaged + self.ack_damaged + self.reordered
    }

    fn retx_allowed(&self) -> u64 {
        K_RETX * self.events() + C_RETX
    }
}

/// A generous bound on a transfer's virtual time: a stop-and-wait sender
/// (one segment per worst-case round trip), plus serialization at the
/// rate limit, plus 10 s for the handshake and the odd timeout, plus the
/// exponential backoff (RFC 6298 5.5) that `lost_in_a_row` consecutive
/// losses can force, each doubling `rto` (the larger of the initial RTO,
/// 1 s by RFC 6298 2.1, and the most the sender's estimator gave during
/// the run, SRTT + 4 RTTVAR by RFC 6298 2.3: ACKs lost in a row inflate
/// the samples, as in Linux, whose tcp_ack_update_rtt also times an ACK
/// of retransmitted data by its echoed timestamp) plus
/// a round trip, up to the 120 s maximum. Any working TCP is far faster;
/// a stuck one passes it.
///
/// The backoff term matters for Gilbert-Elliott cells: the chain steps
/// per frame, so a sender that backs off (and so sends one frame per
/// timeout) stays in the bad state for as many frames, however long.
///
/// smoltcp as the sender (`crude`) gets a timeout per segment instead of
/// a round trip: it has neither fast retransmit nor congestion control by
/// default, so it recovers from every loss by a timeout and a go-back-N
/// burst, which a rate limiter's queue drops again. That it finishes at
/// all is what is checked of it here.
fn time_bound(cell: &Cell, len: usize, lost_in_a_row: u32, rto: Duration, crude: bool) -> Duration {
    let imp = &cell.imp;
    let mss = cell.mtu.0.min(cell.mtu.1).min(imp.mtu) - 40;
    let segments = len.div_ceil(mss) as u32 + 10;
    let mut rtt = (imp.delay + imp.jitter) * 2 + imp.delay + imp.jitter + ms(1);
    if let Some(bps) = imp.rate_bps {
        let queue = Duration::from_secs_f64(imp.queue_limit as f64 * 8.0 / bps as f64);
        rtt += queue * 2;
    }
    let backoff: Duration = (0..lost_in_a_row.min(32))
        .map(|i| (rto.max(Duration::from_secs(1)) * 2u32.pow(i.min(7))).min(Duration::from_secs(120)) + rtt)
        .sum();
    let per_segment = if crude { rtt + Duration::from_secs(1) } else { rtt };
    Duration::from_secs(10) + per_segment * segments + backoff
}

/// Read what a tapir socket has and check it against the stream.
fn pull(iface: &mut Interface, h: SocketHandle, received: &mut usize, len: usize) -> Result<(), String> {
    let mut buf = [0u8; 16384];
    loop {
        match iface.tcp_recv(h, &mut buf) {
            Ok(0) | Err(_) => return Ok(()),
            Ok(n) => check(&buf[..n], received, len)?,
        }
    }
}

fn check(data: &[u8], received: &mut usize, len: usize) -> Result<(), String> {
    for (i, &b) in data.iter().enumerate() {
        if b != byte(*received + i, SALT) {
            return Err(format!("byte {} is wrong", *received + i));
        }
    }
    *received += data.len();
    if *received > len {
        return Err(format!("received {received} bytes of {len}"));
    }
    Ok(())
}

const SALT: u8 = 0x5a;

/// Queue as much of the stream as a tapir socket takes.
fn push(iface: &mut Interface, h: SocketHandle, sent: &mut usize, len: usize) {
    let mut chunk = [0u8; 16384];
    while *sent < len {
        let n = chunk.len().min(len - *sent);
        for (i, b) in chunk[..n].iter_mut().enumerate() {
            *b = byte(*sent + i, SALT);
        }
        match iface.tcp_send(h, &chunk[..n]) {
            Ok(k) if k > 0 => *sent += k,
            _ => break,
        }
    }
}

/// The server's end: a tapir listener (until accepted) or a smoltcp socket.
enum ServerEnd {
    Listening(SocketHandle),
    Tapir(SocketHandle),
    Smoltcp(tapir_stack::testing::smoltcp_peer::smoltcp::iface::SocketHandle),
}

fn run(cell: &Cell, peer: Peer, dir: Dir, seed: u64, max_extra: usize) -> Result<Outcome, String> {
    let len = match peer {
        Peer::Tapir => transfer_len(seed, max_extra),
        // smoltcp's go-back-N after every timeout makes its runs costly.
        Peer::Smoltcp => transfer_len(seed, max_extra) / 2,
    };
    let crude = peer == Peer::Smoltcp && dir == Dir::ServerSends;
    let mut bound = time_bound(cell, len, 0, Duration::ZERO, crude);
    let mut sim = Sim::new(seed);
    // What is tested here is TCP, not ARP: the hosts resolve each other
    // over a clean link first, and keep the answer for the whole run. ARP
    // has no checksum, so a corrupted reply would poison the cache (and
    // Linux's as well), and a Gilbert-Elliott chain, stepping per frame,
    // stays bad on an idle link for more requests than ARP makes.
    //
    // The handshake gets 10 tries instead of Linux's 6 (127 s): on the
    // Gilbert-Elliott cells a lone SYN that finds the chain bad is lost
    // again with the chain's 70 % chance to stay bad, and seven in a row
    // (connect then fails, correctly) happen about once in a thousand runs.
    let host = |mtu: usize| {
        move |c: &mut tapir_stack::Config| {
            c.mtu = mtu;
            c.arp.reachable_time = Duration::from_secs(3600);
            c.tcp.syn_retries = SYN_TRIES - 1;
            c.tcp.synack_retries = SYN_TRIES - 1;
        }
    };
    let client = sim.add_host_with(2, host(cell.mtu.0));
    let server = match peer {
        Peer::Tapir => sim.add_host_with(3, host(cell.mtu.1)),
        Peer::Smoltcp => {
            let cidr = Ipv4Cidr::new(host_ip(3), 24).expect("valid prefix");
            let node = SmoltcpPeer::with_mtu(host_mac(3), cidr, seed ^ 0x5eed, cell.mtu.1);
            sim.add_node("smoltcp 10.77.0.3", node)
        }
    };
    let link = sim.connect(client, server, Impairments::clean());
    resolve_neighbors(&mut sim, client, server, peer)?;
    sim.set_impairments(link, cell.imp.clone());
    let (sender, receiver) = match dir {
        Dir::ClientSends => (client, server),
        Dir::ServerSends => (server, client),
    };
    let wire = watch(&mut sim, link, sender);

    let mut server_end = match peer {
        Peer::Tapir => ServerEnd::Listening(
            sim.iface(server)
                .tcp_listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT), 4)
                .map_err(|e| e.to_string())?,
        ),
        Peer::Smoltcp => ServerEnd::Smoltcp(sim.smoltcp(server).add_tcp_listener(PORT, 64 * 1024)),
    };
    let now = sim.now();
    let c = sim
        .iface(client)
        .tcp_connect(now, SocketAddrV4::new(host_ip(3), PORT))
        .map_err(|e| e.to_string())?;
    let start = sim.now();
    let (mut sent, mut received) = (0usize, 0usize);
    let mut err: Option<String> = None;
    let mut late = false;
    // The largest SRTT + 4 RTTVAR the sender's estimator gave, looked at
    // every few steps (a timeout's length).
    let mut max_rto = Duration::ZERO;
    let mut steps = 0u32;
    let mut connected = false;
    let result = sim.run_until(
        |sim| {
            steps = steps.wrapping_add(1);
            if !connected {
                connected = sim
                    .iface(client)
                    .tcp_stats(c)
                    .is_some_and(|s| s.state == Some(TcpState::Established));
            }
            if steps.is_multiple_of(16) {
                max_rto = max_rto.max(sender_rto(sim, sender, c, &server_end, dir));
            }
            if sim.now() - start > bound {
                // Past the bound without losses in a row: see whether the
                // link's losses so far allow more.
                let (d, a) = longest_loss_runs(&wire.borrow(), sim, link, sender);
                let rto = max_rto.max(sender_rto(sim, sender, c, &server_end, dir));
                bound = time_bound(cell, len, d + a, rto, crude);
                if sim.now() - start > bound {
                    late = true;
                    return true;
                }
            }
            if let ServerEnd::Listening(l) = server_end {
                if let Ok(s) = sim.iface(server).tcp_accept(l) {
                    server_end = ServerEnd::Tapir(s);
                }
            }
            let step = (|| -> Result<bool, String> {
                match (&server_end, dir) {
                    (ServerEnd::Listening(_), _) => Ok(false),
                    (ServerEnd::Tapir(s), Dir::ClientSends) => {
                        push(sim.iface(client), c, &mut sent, len);
                        pull(sim.iface(server), *s, &mut received, len)?;
                        Ok(received == len && sim.iface(client).tcp_send_queue(c) == 0)
                    }
                    (ServerEnd::Tapir(s), Dir::ServerSends) => {
                        push(sim.iface(server), *s, &mut sent, len);
                        pull(sim.iface(client), c, &mut received, len)?;
                        Ok(received == len && sim.iface(server).tcp_send_queue(*s) == 0)
                    }
                    (ServerEnd::Smoltcp(h), Dir::ClientSends) => {
                        push(sim.iface(client), c, &mut sent, len);
                        let peer = sim.smoltcp(server);
                        let sock = peer.tcp_socket(*h);
                        let mut buf = [0u8; 8192];
                        while sock.can_recv() {
                            match sock.recv_slice(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => check(&buf[..n], &mut received, len)?,
                            }
                        }
                        // smoltcp is polled only on frames and timers; let
                        // it send the window update its reads opened.
                        peer.poll();
                        Ok(received == len && sim.iface(client).tcp_send_queue(c) == 0)
                    }
                    (ServerEnd::Smoltcp(h), Dir::ServerSends) => {
                        pull(sim.iface(client), c, &mut received, len)?;
                        let peer = sim.smoltcp(server);
                        let sock = peer.tcp_socket(*h);
                        while sent < len && sock.can_send() {
                            let chunk: Vec<u8> =
                                (sent..len.min(sent + 8192)).map(|i| byte(i, SALT)).collect();
                            match sock.send_slice(&chunk) {
                                Ok(n) if n > 0 => sent += n,
                                _ => break,
                            }
                        }
                        peer.poll();
                        let acked = sock_acked(sim.smoltcp(server).tcp_socket(*h));
                        Ok(received == len && acked)
                    }
                }
            })();
            match step {
                Ok(done) => done,
                Err(e) => {
                    err = Some(e);
                    true
                }
            }
        },
        20_000_000,
    );
    let elapsed = sim.now() - start;
    if let Ok(path) = std::env::var("TAPIR_GRID_PCAP") {
        // The run's frames, for tshark -r (replay one run to use it).
        let _ = std::fs::write(&path, sim.pcap(link));
    }
    let (lost_run_data, lost_run_ack) = longest_loss_runs(&wire.borrow(), &sim, link, sender);
    let rto = max_rto.max(sender_rto(&mut sim, sender, c, &server_end, dir));
    let bound = bound.max(time_bound(cell, len, lost_run_data + lost_run_ack, rto, crude));
    let stats = |sim: &mut Sim| -> String {
        let cs = sim
            .iface(client)
            .tcp_stats(c)
            .map(|s| s.to_string())
            .unwrap_or_default();
        let ss = match server_end {
            ServerEnd::Tapir(s) => sim
                .iface(server)
                .tcp_stats(s)
                .map(|s| s.to_string())
                .unwrap_or_default(),
            _ => "-".into(),
        };
        format!(
            "\n  client: {cs}\n  server: {ss}\n  link: {}\n  longest loss runs: {lost_run_data} towards the receiver, {lost_run_ack} towards the sender",
            sim.link_stats(link)
        )
    };
    // The sender gave up after its retries (RFC 9293 3.8.3's R2, Linux's
    // tcp_retries2): the link lost that many timeouts' worth in a row.
    let gave_up = connected
        && match (dir, &server_end) {
            (Dir::ClientSends, _) | (_, ServerEnd::Smoltcp(_)) => sim.iface(client).tcp_stats(c),
            (Dir::ServerSends, ServerEnd::Tapir(s)) => sim.iface(server).tcp_stats(*s),
            (_, ServerEnd::Listening(_)) => None,
        }
        .is_none_or(|s| s.state.is_none_or(|st| st == TcpState::Closed));
    let link_down = (!connected && lost_run_data.max(lost_run_ack) >= SYN_TRIES)
        || (gave_up && lost_run_data + lost_run_ack > MAX_RETRANSMITS);
    if (result.is_err() || late) && link_down {
        return Ok(Outcome {
            link_down: true,
            elapsed,
            bound,
            ..Outcome::default()
        });
    }
    if let Err(e) = result {
        return Err(format!("{e} ({received}/{len} bytes){}", stats(&mut sim)));
    }
    if late {
        return Err(format!(
            "not done within {bound:?} of virtual time ({received}/{len} bytes){}",
            stats(&mut sim)
        ));
    }
    if let Some(e) = err {
        return Err(format!("{e}{}", stats(&mut sim)));
    }
    let tapir_sends = peer == Peer::Tapir || dir == Dir::ClientSends;
    let retransmits = if tapir_sends {
        let h = match (dir, &server_end) {
            (Dir::ServerSends, ServerEnd::Tapir(s)) => *s,
            _ => c,
        };
        sim.iface(sender)
            .tcp_stats(h)
            .ok_or("the sender's connection is gone")?
            .retransmits
    } else {
        wire.borrow().retransmitted
    };
    let towards_receiver = sim.stats_towards(link, receiver).clone();
    let towards_sender = sim.stats_towards(link, sender).clone();
    let damaged = |s: &tapir_stack::impair::LinkStats| {
        s.lost + s.dropped_queue + s.dropped_mtu + s.dropped_limit + s.corrupted
    };
    let delivered = sim
        .captured(link)
        .iter()
        .filter(|f| f.from == sender)
        .filter_map(|f| parse_tcp(&f.frame))
        .filter(|t| t.payload > 0)
        .map(|t| t.ident);
    let reordered = reordered_past_dupthresh(&wire.borrow().offered, delivered);
    let outcome = Outcome {
        link_down: false,
        elapsed,
        bound,
        retransmits,
        data_damaged: damaged(&towards_receiver),
        ack_damaged: damaged(&towards_sender),
        reordered,
        tapir_sends,
    };
    if tapir_sends && outcome.retransmits > outcome.retx_allowed() {
        return Err(format!(
            "{} retransmissions for {} damaged data frames, {} damaged the other way, {} reordered \
             past DupThresh (at most {K_RETX} x {} + {C_RETX} = {} allowed){}",
            outcome.retransmits,
            outcome.data_damaged,
            outcome.ack_damaged,
            outcome.reordered,
            outcome.events(),
            outcome.retx_allowed(),
            stats(&mut sim)
        ));
    }
    // Both close; both ends finish cleanly however the link behaves.
    sim.iface(client).tcp_close(c);
    match server_end {
        ServerEnd::Tapir(s) => sim.iface(server).tcp_close(s),
        ServerEnd::Smoltcp(h) => sim.smoltcp(server).tcp_socket(h).close(),
        ServerEnd::Listening(_) => unreachable!("the run finished"),
    }
    // Longer than an orphaned FIN-WAIT-2 waits for the peer's FIN (60 s,
    // Linux tcp_fin_timeout): smoltcp's FIN may be late or never come.
    sim.run_for(Duration::from_secs(120))
        .map_err(|e| format!("closing: {e}"))?;
    let left = sim.iface(client).tcp_connection_count()
        + match peer {
            Peer::Tapir => sim.iface(server).tcp_connection_count(),
            Peer::Smoltcp => 0,
        };
    if left != 0 {
        return Err(format!(
            "{left} connections left 120 s after closing{}",
            stats(&mut sim)
        ));
    }
    Ok(outcome)
}

/// Host 2 sends a datagram to host 3 over the (still clean) link; both
/// learn the other's MAC from the ARP exchange it starts (RFC 826).
fn resolve_neighbors(sim: &mut Sim, client: NodeId, server: NodeId, peer: Peer) -> Result<(), String> {
    let u = sim
        .iface(client)
        .udp_bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 9))
        .map_err(|e| e.to_string())?;
    sim.iface(client)
        .udp_send_to(u, b"hello", SocketAddrV4::new(host_ip(3), 9))
        .map_err(|e| e.to_string())?;
    sim.run_until(
        |sim| {
            sim.iface(client).neighbor(host_ip(3)).is_some()
                && (peer == Peer::Smoltcp || sim.iface(server).neighbor(host_ip(2)).is_some())
        },
        1000,
    )
    .map_err(|e| format!("resolving neighbors: {e}"))?;
    sim.iface(client).udp_close(u);
    Ok(())
}

/// SRTT + 4 RTTVAR of a tapir sender (RFC 6298 2.3), zero for smoltcp.
fn sender_rto(sim: &mut Sim, sender: NodeId, client: SocketHandle, server: &ServerEnd, dir: Dir) -> Duration {
    let h = match (dir, server) {
        (Dir::ClientSends, _) => client,
        (Dir::ServerSends, ServerEnd::Tapir(s)) => *s,
        _ => return Duration::ZERO,
    };
    sim.iface(sender)
        .tcp_stats(h)
        .and_then(|s| Some(s.srtt? + s.rttvar * 4))
        .unwrap_or(Duration::ZERO)
}

/// Has a smoltcp socket had everything it sent acknowledged?
fn sock_acked(sock: &mut tapir_stack::testing::smoltcp_peer::smoltcp::socket::tcp::Socket<'static>) -> bool {
    sock.send_queue() == 0
}

/// Record the sender's data frames as they are offered to the link, and
/// every frame the link delivers.
fn watch(sim: &mut Sim, link: LinkId, sender: NodeId) -> Rc<RefCell<Wire>> {
    let wire = Rc::new(RefCell::new(Wire::default()));
    let w = Rc::clone(&wire);
    sim.set_filter(link, move |f| {
        w.borrow_mut()
            .all
            .push((f.from == sender, frame_hash(f.frame), f.now));
        if f.from == sender {
            if let Some(t) = parse_tcp(f.frame).filter(|t| t.payload > 0) {
                let mut w = w.borrow_mut();
                w.offered.push(t.ident);
                let end = t.seq.wrapping_add(t.payload as u32);
                match w.snd_max {
                    Some(max) if (t.seq.wrapping_sub(max) as i32) < 0 => w.retransmitted += 1,
                    _ => {}
                }
                if w.snd_max.is_none_or(|max| (end.wrapping_sub(max) as i32) > 0) {
                    w.snd_max = Some(end);
                }
            }
        }
        true
    });
    sim.capture(link);
    wire
}

// ---------------------------------------------------------------------------
// The grid's runs and summary

#[derive(Default)]
struct Row {
    runs: u64,
    failed: u64,
    link_down: u64,
    virtual_secs: f64,
    worst_of_bound: f64,
    retransmits: u64,
    data_damaged: u64,
    ack_damaged: u64,
    reordered: u64,
    /// The run with the largest retransmits / allowed, ours only.
    worst: Option<(f64, u64, u64, u64)>,
}

fn env_filter(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.is_empty())
}

/// Run every cell in both directions over `seeds` seeds; print the
/// summary; panic listing every failing run. Returns the runs made.
fn run_grid(title: &str, grid: u64, cells: &[Cell], peer: Peer, seeds: u64, max_extra: usize) -> u64 {
    let only_cell = env_filter("TAPIR_GRID_CELL");
    let only_seed = env_filter(SEED_ENV).map(|s| s.trim().parse::<u64>().expect("a seed"));
    let mut table = String::new();
    let mut failures = Vec::new();
    let mut total = 0;
    let mut worst_ratio = (0.0f64, String::new());
    for (ci, cell) in cells.iter().enumerate() {
        if only_cell.as_ref().is_some_and(|n| *n != cell.name) {
            continue;
        }
        for dir in [Dir::ClientSends, Dir::ServerSends] {
            let mut row = Row::default();
            for i in 0..seeds {
                // Seeds differ by grid, cell and direction so that no two
                // runs share a random stream.
                let seed = 1_000_000 * grid + 10_000 * ci as u64 + 1000 * dir as u64 + i;
                if only_seed.is_some_and(|s| s != seed) {
                    continue;
                }
                row.runs += 1;
                match run(cell, peer, dir, seed, max_extra) {
                    Ok(o) if o.link_down => row.link_down += 1,
                    Ok(o) => {
                        row.virtual_secs += o.elapsed.as_secs_f64();
                        row.worst_of_bound = row
                            .worst_of_bound
                            .max(o.elapsed.as_secs_f64() / o.bound.as_secs_f64());
                        row.retransmits += o.retransmits;
                        row.data_damaged += o.data_damaged;
                        row.ack_damaged += o.ack_damaged;
                        row.reordered += o.reordered;
                        if o.tapir_sends {
                            let ratio = o.retransmits as f64 / o.retx_allowed() as f64;
                            if row.worst.is_none_or(|w| ratio > w.0) {
                                row.worst = Some((ratio, seed, o.retransmits, o.events()));
                            }
                            if ratio > worst_ratio.0 {
                                worst_ratio = (
                                    ratio,
                                    format!(
                                        "{} {} seed {seed}: {} retransmits for {} events",
                                        cell.name,
                                        dir.label(peer),
                                        o.retransmits,
                                        o.events()
                                    ),
                                );
                            }
                        }
                    }
                    Err(e) => {
                        row.failed += 1;
                        failures.push(format!(
                            "cell \"{}\" {} seed {seed}: {e}\n  replay: TAPIR_GRID_CELL=\"{}\" {SEED_ENV}={seed}",
                            cell.name,
                            dir.label(peer),
                            cell.name
                        ));
                    }
                }
            }
            if row.runs == 0 {
                continue;
            }
            total += row.runs;
            let ok = (row.runs - row.failed - row.link_down).max(1) as f64;
            let worst = row
                .worst
                .map(|(r, s, x, e)| format!("{:.2} (seed {s}: {x}/{e})", r))
                .unwrap_or_else(|| "-".into());
            writeln!(
                table,
                "{:<40} {:<15} {:>4} {:>3} {:>4} {:>8.2} {:>6.2} {:>6} {:>6} {:>6} {:>6}  {}",
                cell.name,
                dir.label(peer),
                row.runs,
                row.failed,
                row.link_down,
                row.virtual_secs / ok,
                row.worst_of_bound,
                row.retransmits,
                row.data_damaged,
                row.ack_damaged,
                row.reordered,
                worst
            )
            .unwrap();
        }
    }
    println!(
        "{title}: {total} runs, retransmissions <= {K_RETX} x events + {C_RETX}\n\
         {:<40} {:<15} {:>4} {:>3} {:>4} {:>8} {:>6} {:>6} {:>6} {:>6} {:>6}  worst retx/allowed\n{table}\
         worst retransmits / allowed: {:.2} ({})",
        "cell",
        "direction",
        "runs",
        "bad",
        "down",
        "mean s",
        "/bound",
        "retx",
        "d-dmg",
        "a-dmg",
        "reord",
        worst_ratio.0,
        worst_ratio.1
    );
    assert!(
        failures.is_empty(),
        "{} of {total} runs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    total
}

#[test]
fn grid_tapir_to_tapir_random_loss_by_delay() {
    run_grid(
        "tapir <-> tapir, random loss x delay",
        1,
        &loss_grid(),
        Peer::Tapir,
        TAPIR_SEEDS,
        MAX_EXTRA,
    );
}

#[test]
fn grid_tapir_to_tapir_bursts_reordering_duplication_corruption() {
    run_grid(
        "tapir <-> tapir, bursts, reordering, duplication, corruption",
        2,
        &other_grid()[..OTHER_SPLIT],
        Peer::Tapir,
        TAPIR_SEEDS,
        MAX_EXTRA,
    );
}

#[test]
fn grid_tapir_to_tapir_rate_limit_small_mtu_everything() {
    run_grid(
        "tapir <-> tapir, rate limit, small MTU, everything at once",
        3,
        &other_grid()[OTHER_SPLIT..],
        Peer::Tapir,
        TAPIR_SEEDS,
        MAX_EXTRA,
    );
}

#[test]
fn grid_tapir_and_smoltcp() {
    run_grid(
        "tapir <-> smoltcp",
        4,
        &smoltcp_grid(),
        Peer::Smoltcp,
        SMOLTCP_SEEDS,
        MAX_EXTRA,
    );
}

/// The tapir-to-tapir grid with transfers of up to 4 MiB, where recovery
/// episodes happen mid-stream with large windows: 1040 runs, about 2
/// minutes of CPU with
/// `cargo test --release -p tapir-stack --test sim_grid -- --ignored`.
///
/// Not the smoltcp subset: smoltcp as the sender (no congestion control,
/// a 64 KiB window, go-back-N after each timeout) needs more than 1500 s
/// of virtual time for 2 MB through the 10 Mbit/s, 20-frame queue (seeds
/// 6061002 and 6061004 when this ran it), past its bound; that is
/// smoltcp's sender, not tapir, which received everything it was sent.
#[test]
#[ignore = "large: run with --release -- --ignored"]
fn grid_large_transfers() {
    let tapir: Vec<Cell> = loss_grid().into_iter().chain(other_grid()).collect();
    run_grid(
        "large: tapir <-> tapir",
        5,
        &tapir,
        Peer::Tapir,
        TAPIR_SEEDS,
        MAX_EXTRA_LARGE,
    );
}

/// The grid above makes at least the thousand runs issue 11 asks for.
#[test]
fn grid_has_a_thousand_runs() {
    let runs = 2
        * ((loss_grid().len() + other_grid().len()) as u64 * TAPIR_SEEDS
            + smoltcp_grid().len() as u64 * SMOLTCP_SEEDS);
    assert!(runs >= 1000, "{runs} runs");
}

/// The reordering measure counts what it should.
#[test]
fn reordering_past_dupthresh_is_counted() {
    let offered: Vec<u16> = (100..110).collect();
    // In order, with a duplicate: nothing.
    assert_eq!(
        reordered_past_dupthresh(&offered, [100, 101, 101, 102].into_iter()),
        0
    );
    // 100 overtaken by 101..=103: once; 104 overtaken by two only: not.
    assert_eq!(
        reordered_past_dupthresh(&offered, [101, 102, 103, 100, 105, 106, 104].into_iter()),
        1
    );
    // Unknown identifications (a corrupted header) are skipped.
    assert_eq!(reordered_past_dupthresh(&offered, [7, 8, 9, 100].into_iter()), 0);
}
