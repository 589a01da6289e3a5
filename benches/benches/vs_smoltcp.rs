//! tapir against smoltcp on identical work, in the same run (DESIGN.md,
//! "Benchmarks"). Results and how to read them: BENCHMARKS.md.
//!
//! Both stacks sit at 10.77.0.2/24 with the same MAC, get the same
//! pre-built frames from the peer 10.77.0.1, and write every frame they
//! send into one reusable buffer that only counts it. Nothing in the
//! measured loop allocates on the harness side; what a stack allocates is
//! part of its cost. Before the first measurement every stack is built and
//! runs one batch whose output is recorded and checked: every datagram must
//! be answered (or delivered), so a benchmark cannot silently measure a
//! no-op.
//!
//! - `udp_echo_64B`, `udp_echo_1024B`: a batch of 64 UDP datagrams to port
//!   7; the application takes each from the socket and sends it back.
//! - `icmp_echo`: a batch of 64 echo requests with 56 data bytes, which both
//!   stacks answer themselves.
//! - `reassembly`: one 20000-byte UDP datagram in 14 fragments, received
//!   by the application.

use criterion::{Criterion, Throughput};
use std::collections::VecDeque;
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use smoltcp::iface::{Config as SmolConfig, Interface as SmolIface, SocketHandle as SmolHandle, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::udp;
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{EthernetAddress as SmolMac, HardwareAddress, IpAddress, IpCidr};

use tapir_stack::testing::{self, PEER_IP, PEER_MAC, TAPIR_IP, TAPIR_MAC};
use tapir_stack::wire::{EtherType, Protocol};
use tapir_stack::{Instant, Interface, SocketHandle};

const BATCH: usize = 64;
const ECHO_PORT: u16 = 7;
const PEER_PORT: u16 = 40000;
const PING_DATA: usize = 56;
const BIG_DATAGRAM: usize = 20000;
/// Ethernet + IPv4 header bytes before the IP payload.
const L3: usize = 14;
const L4: usize = L3 + 20;

// ----- frames -----

fn payload(len: usize, seed: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + seed) as u8).collect()
}

/// `BATCH` UDP datagrams from the peer to port 7, each with distinct data.
fn udp_batch(len: usize) -> Vec<Vec<u8>> {
    (0..BATCH)
        .map(|i| testing::udp_from_peer(PEER_PORT, ECHO_PORT, &payload(len, i)))
        .collect()
}

/// `BATCH` echo requests from the peer with distinct sequence numbers.
fn icmp_batch() -> Vec<Vec<u8>> {
    (0..BATCH)
        .map(|i| {
            let msg = testing::icmp_echo_request(0x7a7a, i as u16, &payload(PING_DATA, i));
            testing::ipv4_from_peer(Protocol::Icmp, &msg)
        })
        .collect()
}

/// A `BIG_DATAGRAM`-byte UDP datagram to port 7 cut into fragments of 1480
/// bytes of IP payload (the most a 1500-byte MTU carries): 14 frames.
fn fragments() -> Vec<Vec<u8>> {
    let udp = testing::udp_datagram(
        SocketAddrV4::new(PEER_IP, PEER_PORT),
        SocketAddrV4::new(TAPIR_IP, ECHO_PORT),
        &payload(BIG_DATAGRAM, 3),
    );
    let chunks: Vec<&[u8]> = udp.chunks(1480).collect();
    let frames: Vec<Vec<u8>> = chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| {
            let more = i + 1 < chunks.len();
            let ip = testing::ipv4_packet(PEER_IP, TAPIR_IP, Protocol::Udp, 0x4242, more, i * 1480, chunk);
            testing::ethernet(TAPIR_MAC, PEER_MAC, EtherType::Ipv4, &ip)
        })
        .collect();
    assert_eq!(frames.len(), 14);
    frames
}

// ----- what the stacks send -----

/// Where both stacks put their output: counted, and kept only while checking.
#[derive(Default)]
struct Sink {
    frames: usize,
    record: Option<Vec<Vec<u8>>>,
}

impl Sink {
    fn push(&mut self, frame: &[u8]) {
        self.frames += 1;
        black_box(frame);
        if let Some(r) = &mut self.record {
            r.push(frame.to_vec());
        }
    }

    fn recording() -> Sink {
        Sink {
            frames: 0,
            record: Some(Vec::new()),
        }
    }
}

/// Each input frame must have been answered by one frame to the peer that
/// carries the same data: UDP back to the sender's port, or an echo reply
/// (ICMP type 0) with the same identifier, sequence and data.
fn check_echoes(who: &str, input: &[Vec<u8>], sink: &Sink) {
    let out = sink.record.as_ref().expect("recording");
    assert_eq!(out.len(), input.len(), "{who}: wrong number of replies");
    for (i, (req, rep)) in input.iter().zip(out).enumerate() {
        assert_eq!(rep.len(), req.len(), "{who}: reply {i} has the wrong length");
        assert_eq!(&rep[..6], &PEER_MAC.0, "{who}: reply {i} not to the peer's MAC");
        assert_eq!(&rep[12..14], &[0x08, 0x00], "{who}: reply {i} is not IPv4");
        assert_eq!(
            rep[L3 + 9],
            req[L3 + 9],
            "{who}: reply {i} has the wrong protocol"
        );
        assert_eq!(
            &rep[L3 + 12..L3 + 16],
            &TAPIR_IP.octets(),
            "{who}: reply {i} source"
        );
        assert_eq!(
            &rep[L3 + 16..L3 + 20],
            &PEER_IP.octets(),
            "{who}: reply {i} destination"
        );
        match req[L3 + 9] {
            17 => {
                assert_eq!(
                    &rep[L4..L4 + 2],
                    &req[L4 + 2..L4 + 4],
                    "{who}: reply {i} source port"
                );
                assert_eq!(
                    &rep[L4 + 2..L4 + 4],
                    &req[L4..L4 + 2],
                    "{who}: reply {i} dest port"
                );
                assert_eq!(&rep[L4 + 8..], &req[L4 + 8..], "{who}: reply {i} data");
            }
            1 => {
                assert_eq!(rep[L4], 0, "{who}: reply {i} is not an echo reply");
                assert_eq!(&rep[L4 + 4..], &req[L4 + 4..], "{who}: reply {i} id, seq or data");
            }
            p => panic!("unexpected protocol {p}"),
        }
    }
}

// ----- tapir -----

struct Tapir {
    iface: Interface,
    udp: SocketHandle,
    buf: Vec<u8>,
    out: Vec<u8>,
}

const NOW: Instant = Instant::from_secs(1);

impl Tapir {
    fn new() -> Tapir {
        let mut iface = Interface::new(testing::config()).expect("valid config");
        let udp = iface
            .udp_bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, ECHO_PORT))
            .expect("bind");
        testing::introduce_peer(&mut iface, NOW);
        let out = vec![0; iface.max_frame_len()];
        Tapir {
            iface,
            udp,
            buf: vec![0; 65536],
            out,
        }
    }

    fn transmit(&mut self, sink: &mut Sink) {
        while let Some(n) = self.iface.poll_transmit(NOW, &mut self.out) {
            sink.push(&self.out[..n]);
        }
    }

    /// Frames in, the application echoes every datagram, frames out.
    fn udp_echo(&mut self, frames: &[Vec<u8>], sink: &mut Sink) {
        for f in frames {
            self.iface.handle_frame(NOW, f);
        }
        while let Ok((n, from)) = self.iface.udp_recv_from(self.udp, &mut self.buf) {
            self.iface
                .udp_send_to(self.udp, &self.buf[..n], from)
                .expect("send");
        }
        self.transmit(sink);
    }

    fn icmp_echo(&mut self, frames: &[Vec<u8>], sink: &mut Sink) {
        for f in frames {
            self.iface.handle_frame(NOW, f);
        }
        self.transmit(sink);
    }

    /// Fragments in; returns the length of the datagram the application got.
    fn reassemble(&mut self, frames: &[Vec<u8>], sink: &mut Sink) -> usize {
        for f in frames {
            self.iface.handle_frame(NOW, f);
        }
        let (n, _) = self
            .iface
            .udp_recv_from(self.udp, &mut self.buf)
            .expect("reassembled");
        self.transmit(sink);
        n
    }
}

// ----- smoltcp -----

/// A device whose receive side is a queue of borrowed frames and whose
/// transmit side is one reusable buffer feeding a [`Sink`].
struct BenchDevice<'f> {
    rx: VecDeque<&'f [u8]>,
    tx_buf: Vec<u8>,
    sink: Sink,
}

struct BenchRx<'f>(&'f [u8]);

struct BenchTx<'a> {
    buf: &'a mut Vec<u8>,
    sink: &'a mut Sink,
}

impl phy::RxToken for BenchRx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

impl phy::TxToken for BenchTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        let r = f(&mut self.buf[..len]);
        self.sink.push(&self.buf[..len]);
        r
    }
}

impl<'f> Device for BenchDevice<'f> {
    type RxToken<'a>
        = BenchRx<'f>
    where
        Self: 'a;
    type TxToken<'a>
        = BenchTx<'a>
    where
        Self: 'a;

    fn receive(&mut self, _: SmolInstant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let frame = self.rx.pop_front()?;
        Some((
            BenchRx(frame),
            BenchTx {
                buf: &mut self.tx_buf,
                sink: &mut self.sink,
            },
        ))
    }

    fn transmit(&mut self, _: SmolInstant) -> Option<Self::TxToken<'_>> {
        Some(BenchTx {
            buf: &mut self.tx_buf,
            sink: &mut self.sink,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514; // an IP MTU of 1500, as tapir's
        caps
    }
}

struct Smol<'f> {
    iface: SmolIface,
    dev: BenchDevice<'f>,
    sockets: SocketSet<'static>,
    udp: SmolHandle,
    buf: Vec<u8>,
}

const SMOL_NOW: SmolInstant = SmolInstant::from_micros_const(1_000_000);

impl<'f> Smol<'f> {
    fn new() -> Smol<'f> {
        let mut dev = BenchDevice {
            rx: VecDeque::with_capacity(BATCH),
            tx_buf: vec![0; 1514],
            sink: Sink::default(),
        };
        let config = SmolConfig::new(HardwareAddress::Ethernet(SmolMac(TAPIR_MAC.0)));
        let mut iface = SmolIface::new(config, &mut dev, SMOL_NOW);
        iface.update_ip_addrs(|a| a.push(IpCidr::new(IpAddress::Ipv4(TAPIR_IP), 24)).expect("room"));
        // Room for a batch of 1024-byte datagrams, or one 20000-byte one,
        // each way (tapir's default socket queue is larger still).
        let buffer = || udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 2 * BATCH], vec![0; 1 << 17]);
        let mut socket = udp::Socket::new(buffer(), buffer());
        socket.bind(ECHO_PORT).expect("bind");
        let mut sockets = SocketSet::new(vec![]);
        let udp = sockets.add(socket);
        let mut s = Smol {
            iface,
            dev,
            sockets,
            udp,
            buf: vec![0; 65536],
        };
        // Teach it the peer's MAC the way tapir learns it.
        let arp: &'static [u8] = testing::arp_request_from_peer(TAPIR_IP).leak();
        s.dev.rx.push_back(arp);
        s.poll();
        assert_eq!(s.dev.sink.frames, 1, "smoltcp: expected exactly the ARP reply");
        s.dev.sink = Sink::default();
        s
    }

    fn poll(&mut self) {
        self.iface.poll(SMOL_NOW, &mut self.dev, &mut self.sockets);
    }

    fn feed(&mut self, frames: &'f [Vec<u8>]) {
        self.dev.rx.extend(frames.iter().map(Vec::as_slice));
    }

    fn udp_echo(&mut self, frames: &'f [Vec<u8>]) {
        self.feed(frames);
        self.poll();
        let socket = self.sockets.get_mut::<udp::Socket>(self.udp);
        while let Ok((n, meta)) = socket.recv_slice(&mut self.buf) {
            socket.send_slice(&self.buf[..n], meta.endpoint).expect("send");
        }
        self.poll();
    }

    fn icmp_echo(&mut self, frames: &'f [Vec<u8>]) {
        self.feed(frames);
        self.poll();
    }

    fn reassemble(&mut self, frames: &'f [Vec<u8>]) -> usize {
        self.feed(frames);
        self.poll();
        let socket = self.sockets.get_mut::<udp::Socket>(self.udp);
        let (n, _) = socket.recv_slice(&mut self.buf).expect("reassembled");
        self.poll();
        n
    }

    fn take_sink(&mut self) -> Sink {
        std::mem::take(&mut self.dev.sink)
    }
}

// ----- benchmarks -----

/// Every stack and frame set the benchmarks use, built, primed and checked
/// before the first measurement. Doing it all up front keeps the memory
/// layout of the stacks independent of which benchmarks ran before (and of
/// the large buffers criterion's analysis allocates and frees between
/// them, which move glibc's mmap threshold): with stacks built lazily, one
/// stack's reassembly time changed 4x between otherwise identical runs.
struct Fixture {
    name: &'static str,
    frames: &'static [Vec<u8>],
    tapir: Tapir,
    smol: Smol<'static>,
}

fn leak(frames: Vec<Vec<u8>>) -> &'static [Vec<u8>] {
    Vec::leak(frames)
}

fn echo_fixture(name: &'static str, frames: Vec<Vec<u8>>, udp: bool) -> Fixture {
    let frames = leak(frames);
    let mut tapir = Tapir::new();
    let mut check = Sink::recording();
    if udp {
        tapir.udp_echo(frames, &mut check);
    } else {
        tapir.icmp_echo(frames, &mut check);
    }
    check_echoes("tapir", frames, &check);
    let mut smol = Smol::new();
    smol.dev.sink = Sink::recording();
    if udp {
        smol.udp_echo(frames);
    } else {
        smol.icmp_echo(frames);
    }
    check_echoes("smoltcp", frames, &smol.take_sink());
    Fixture {
        name,
        frames,
        tapir,
        smol,
    }
}

fn reassembly_fixture() -> Fixture {
    let frames = leak(fragments());
    let data = payload(BIG_DATAGRAM, 3);
    let mut tapir = Tapir::new();
    assert_eq!(
        tapir.reassemble(frames, &mut Sink::default()),
        BIG_DATAGRAM,
        "tapir"
    );
    assert_eq!(&tapir.buf[..BIG_DATAGRAM], &data[..], "tapir: reassembled data");
    let mut smol = Smol::new();
    assert_eq!(smol.reassemble(frames), BIG_DATAGRAM, "smoltcp");
    assert_eq!(&smol.buf[..BIG_DATAGRAM], &data[..], "smoltcp: reassembled data");
    Fixture {
        name: "reassembly",
        frames,
        tapir,
        smol,
    }
}

fn bench_echo(c: &mut Criterion, fx: &mut Fixture, udp: bool) {
    let frames = fx.frames;
    let mut group = c.benchmark_group(fx.name);
    group.throughput(Throughput::Elements(BATCH as u64));
    let (t, s) = (&mut fx.tapir, &mut fx.smol);
    let mut sink = Sink::default();
    if udp {
        group.bench_function("tapir", |b| b.iter(|| t.udp_echo(frames, &mut sink)));
        group.bench_function("smoltcp", |b| b.iter(|| s.udp_echo(frames)));
        assert_eq!(t.iface.stats().udp_rx, t.iface.stats().udp_tx);
    } else {
        group.bench_function("tapir", |b| b.iter(|| t.icmp_echo(frames, &mut sink)));
        group.bench_function("smoltcp", |b| b.iter(|| s.icmp_echo(frames)));
    }
    // Every batch was answered in full (when the benchmark was not filtered out).
    assert_eq!(sink.frames % BATCH, 0, "tapir");
    assert_eq!(s.take_sink().frames % BATCH, 0, "smoltcp");
    group.finish();
}

fn bench_reassembly(c: &mut Criterion, fx: &mut Fixture) {
    let frames = fx.frames;
    let mut group = c.benchmark_group(fx.name);
    group.throughput(Throughput::Bytes(BIG_DATAGRAM as u64));
    let (t, s) = (&mut fx.tapir, &mut fx.smol);
    let mut sink = Sink::default();
    group.bench_function("tapir", |b| {
        b.iter(|| assert_eq!(t.reassemble(frames, &mut sink), BIG_DATAGRAM))
    });
    group.bench_function("smoltcp", |b| {
        b.iter(|| assert_eq!(s.reassemble(frames), BIG_DATAGRAM))
    });
    assert_eq!(sink.frames, 0, "tapir: sent something while reassembling");
    assert_eq!(t.iface.reassemblies_in_progress(), 0);
    assert_eq!(
        s.take_sink().frames,
        0,
        "smoltcp: sent something while reassembling"
    );
    group.finish();
}

/// A 1460-byte TCP segment from PEER to TAPIR, with its checksum.
const SEG_PAYLOAD: usize = 1460;

fn tcp_segment() -> Vec<u8> {
    let repr = tapir_stack::wire::TcpRepr {
        src_port: 40000,
        dst_port: 5001,
        seq: 0x1234_5678,
        ack: 0x9abc_def0,
        flags: tapir_stack::wire::TcpFlags(0x18), // PSH, ACK
        window: 65535,
        ..Default::default()
    };
    let mut seg = vec![0u8; 20 + SEG_PAYLOAD];
    for (i, b) in seg[20..].iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    assert_eq!(repr.emit(&mut seg, PEER_IP, TAPIR_IP, SEG_PAYLOAD), seg.len());
    seg
}

/// The wire-level pieces of the per-segment cost: the checksum, and a TCP
/// header parsed (checksum verified, or not) and emitted (payload copied
/// in and summed), for both stacks on the same 1460-byte segment.
fn bench_wire(c: &mut Criterion) {
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{TcpPacket, TcpRepr as SmolTcpRepr};
    let seg = tcp_segment();
    let (src, dst) = (IpAddress::Ipv4(PEER_IP), IpAddress::Ipv4(TAPIR_IP));
    let parse_tapir = |verify| {
        let (repr, payload) =
            tapir_stack::wire::TcpRepr::parse(&seg, PEER_IP, TAPIR_IP, verify).expect("tapir parses");
        assert_eq!((repr.src_port, payload.len()), (40000, SEG_PAYLOAD));
    };
    let packet = TcpPacket::new_checked(&seg[..]).expect("smoltcp: a TCP packet");
    let parse_smol = |caps: &ChecksumCapabilities| {
        let repr = SmolTcpRepr::parse(&packet, &src, &dst, caps).expect("smoltcp parses");
        assert_eq!((repr.src_port, repr.payload.len()), (40000, SEG_PAYLOAD));
    };
    // Both verify the checksum (and reject a corrupted one) before measuring.
    parse_tapir(true);
    parse_smol(&ChecksumCapabilities::default());
    let mut bad = seg.clone();
    bad[100] ^= 1;
    assert!(tapir_stack::wire::TcpRepr::parse(&bad, PEER_IP, TAPIR_IP, true).is_err());
    assert!(SmolTcpRepr::parse(
        &TcpPacket::new_checked(&bad[..]).unwrap(),
        &src,
        &dst,
        &ChecksumCapabilities::default()
    )
    .is_err());

    let mut g = c.benchmark_group("checksum_1460B");
    g.throughput(Throughput::Bytes(SEG_PAYLOAD as u64));
    g.bench_function("tapir", |b| {
        b.iter(|| testing::ones_complement_sum(black_box(&seg[20..])))
    });
    g.finish();

    for (name, verify) in [("tcp_parse_1460B", true), ("tcp_parse_1460B_unverified", false)] {
        let mut g = c.benchmark_group(name);
        g.bench_function("tapir", |b| b.iter(|| parse_tapir(black_box(verify))));
        let caps = if verify {
            ChecksumCapabilities::default()
        } else {
            ChecksumCapabilities::ignored()
        };
        g.bench_function("smoltcp", |b| b.iter(|| parse_smol(black_box(&caps))));
        g.finish();
    }

    // Emit: the payload copied in behind the header, the header written and
    // the checksum computed, into a buffer of the frame's size.
    let (tapir_repr, payload) = tapir_stack::wire::TcpRepr::parse(&seg, PEER_IP, TAPIR_IP, true).unwrap();
    let smol_repr = SmolTcpRepr::parse(&packet, &src, &dst, &ChecksumCapabilities::default()).unwrap();
    let mut out = vec![0u8; 1514];
    let mut g = c.benchmark_group("tcp_emit_1460B");
    g.bench_function("tapir", |b| {
        b.iter(|| {
            out[20..20 + SEG_PAYLOAD].copy_from_slice(payload);
            let n = black_box(&tapir_repr).emit(&mut out, PEER_IP, TAPIR_IP, SEG_PAYLOAD);
            assert_eq!(n, seg.len());
        })
    });
    g.bench_function("smoltcp", |b| {
        b.iter(|| {
            let mut p = TcpPacket::new_unchecked(&mut out[..seg.len()]);
            black_box(&smol_repr).emit(&mut p, &src, &dst, &ChecksumCapabilities::default());
        })
    });
    g.finish();
    // Both emitted the same bytes.
    let mut p = TcpPacket::new_unchecked(&mut out[..seg.len()]);
    smol_repr.emit(&mut p, &src, &dst, &ChecksumCapabilities::default());
    assert_eq!(&out[..seg.len()], &seg[..], "smoltcp's segment is the original");
    out[..seg.len()].fill(0);
    out[20..20 + SEG_PAYLOAD].copy_from_slice(payload);
    tapir_repr.emit(&mut out, PEER_IP, TAPIR_IP, SEG_PAYLOAD);
    assert_eq!(&out[..seg.len()], &seg[..], "tapir's segment is the original");
}

fn main() {
    let mut udp64 = echo_fixture("udp_echo_64B", udp_batch(64), true);
    let mut udp1024 = echo_fixture("udp_echo_1024B", udp_batch(1024), true);
    let mut icmp = echo_fixture("icmp_echo", icmp_batch(), false);
    let mut reasm = reassembly_fixture();

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    bench_echo(&mut c, &mut udp64, true);
    bench_echo(&mut c, &mut udp1024, true);
    bench_echo(&mut c, &mut icmp, false);
    bench_reassembly(&mut c, &mut reasm);
    bench_wire(&mut c);
    c.final_summary();
}
