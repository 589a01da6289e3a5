//! In-memory bulk TCP: tapir ↔ tapir against smoltcp ↔ smoltcp on the same
//! in-memory link, in the same run (issue 13, "In process"). Results and
//! how to read them: BENCHMARKS.md, "In-memory bulk transfer".
//!
//! Each stack has two interfaces (10.77.0.2 and 10.77.0.3) joined by a
//! lossless link with no delay: two queues of frames whose buffers are
//! recycled, so the link allocates nothing once warm and costs both stacks
//! the same (one copy of each frame into a queued buffer). One connection
//! is set up before measuring; an iteration moves `CHUNK_TOTAL` bytes
//! through it: the sending application writes 16 KiB at a time while the
//! socket takes them, both interfaces run until neither has a frame to
//! send, the receiving application reads everything there is, and
//! virtual time moves 100 µs. Before the first measurement each stack's
//! transfer is checked byte for byte.
//!
//! With `TAPIR_BENCH_CPU=1` criterion measures the process's CPU time
//! instead of wall time: on a shared machine a run that is preempted then
//! counts only the time it ran, which makes the ratio far steadier.

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, Throughput};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;
use std::time::Duration as StdDuration;

use smoltcp::iface::{Config as SmolConfig, Interface as SmolIface, SocketHandle as SmolHandle, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{EthernetAddress as SmolMac, HardwareAddress, IpAddress, IpCidr};

use tapir_stack::testing::sim::{host_config, host_ip, host_mac};
use tapir_stack::{Duration, Instant, Interface, SocketHandle, TcpOption};

/// Bytes moved per iteration.
const CHUNK_TOTAL: usize = 4 << 20;
const WRITE: usize = 16 * 1024;
const PORT: u16 = 5001;
/// Both stacks' socket buffers (tapir's initial size; smoltcp's fixed).
const BUFFER: usize = 256 * 1024;
const FRAME: usize = 1514;
const STEP_US: u64 = 100;

fn pattern(offset: usize, out: &mut [u8]) {
    for (i, b) in out.iter_mut().enumerate() {
        *b = ((offset + i) % 251) as u8;
    }
}

// ----- the link -----

/// One direction: frames in flight, and spare buffers to reuse.
#[derive(Default)]
struct Wire {
    queue: VecDeque<Vec<u8>>,
    spare: Vec<Vec<u8>>,
}

impl Wire {
    fn buffer(&mut self) -> Vec<u8> {
        let mut b = self.spare.pop().unwrap_or_default();
        b.resize(FRAME, 0);
        b
    }

    fn recycle(&mut self, b: Vec<u8>) {
        self.spare.push(b);
    }
}

// ----- tapir -----

struct TapirPair {
    ifaces: [Interface; 2],
    wires: [Wire; 2], // wires[i]: frames towards ifaces[i]
    now: Instant,
    tx: SocketHandle,
    rx: SocketHandle,
}

impl TapirPair {
    fn new() -> TapirPair {
        let mut a = Interface::new(host_config(2, 1)).expect("config");
        let b = Interface::new(host_config(3, 1)).expect("config");
        let now = Instant::from_secs(1);
        let tx = a
            .tcp_connect(now, SocketAddrV4::new(host_ip(3), PORT))
            .expect("connect");
        // The same fixed buffers as smoltcp's (SO_SNDBUF/SO_RCVBUF): with
        // autotuning on a link with no delay and no loss they grow to 4 MiB
        // and the data no longer stays in the cache, which measures the
        // memory system rather than the stack.
        a.tcp_set_option(now, tx, TcpOption::SendBuffer(BUFFER))
            .expect("SO_SNDBUF");
        let mut p = TapirPair {
            ifaces: [a, b],
            wires: Default::default(),
            now,
            tx,
            rx: tx, // until accepted
        };
        let l = p.ifaces[1]
            .tcp_listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT), 4)
            .expect("listen");
        p.ifaces[1]
            .tcp_set_option(now, l, TcpOption::RecvBuffer(BUFFER))
            .expect("SO_RCVBUF");
        for _ in 0..100 {
            p.step();
            if let Ok(h) = p.ifaces[1].tcp_accept(l) {
                p.rx = h;
                return p;
            }
        }
        panic!("tapir: no connection");
    }

    fn step(&mut self) {
        loop {
            let mut moved = false;
            for from in 0..2 {
                let to = 1 - from;
                self.drain(from);
                while let Some(b) = self.wires[to].queue.pop_front() {
                    self.ifaces[to].handle_frame(self.now, &b);
                    self.wires[to].recycle(b);
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
        self.now += Duration::from_micros(STEP_US);
        for i in &mut self.ifaces {
            i.handle_timeout(self.now);
        }
    }

    /// Moves `len` bytes; with `check`, the data is a pattern verified on
    /// arrival. Returns the bytes received.
    fn transfer(&mut self, len: usize, chunk: &mut [u8], buf: &mut [u8], check: bool) -> usize {
        let (mut sent, mut got) = (0, 0);
        while got < len {
            while sent < len {
                let n = (len - sent).min(chunk.len());
                if check {
                    pattern(sent, &mut chunk[..n]);
                }
                match self.ifaces[0].tcp_send(self.tx, &chunk[..n]) {
                    Ok(k) if k > 0 => sent += k,
                    _ => break,
                }
            }
            self.step();
            while let Ok(n) = self.ifaces[1].tcp_recv(self.rx, buf) {
                if n == 0 {
                    break;
                }
                if check {
                    let mut want = vec![0; n];
                    pattern(got, &mut want);
                    assert_eq!(&buf[..n], &want[..], "tapir: bytes {got}.. differ");
                }
                got += n;
            }
        }
        got
    }
}

// ----- smoltcp -----

struct SmolDevice {
    rx: Rc<RefCell<Wire>>,
    tx: Rc<RefCell<Wire>>,
}

struct SmolRx {
    frame: Vec<u8>,
    wire: Rc<RefCell<Wire>>,
}

struct SmolTx {
    wire: Rc<RefCell<Wire>>,
}

impl phy::RxToken for SmolRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let r = f(&self.frame);
        self.wire.borrow_mut().recycle(self.frame);
        r
    }
}

impl phy::TxToken for SmolTx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut w = self.wire.borrow_mut();
        let mut b = w.buffer();
        b.resize(len, 0);
        let r = f(&mut b);
        w.queue.push_back(b);
        r
    }
}

impl Device for SmolDevice {
    type RxToken<'a> = SmolRx;
    type TxToken<'a> = SmolTx;

    fn receive(&mut self, _: SmolInstant) -> Option<(SmolRx, SmolTx)> {
        let frame = self.rx.borrow_mut().queue.pop_front()?;
        Some((
            SmolRx {
                frame,
                wire: self.rx.clone(),
            },
            SmolTx {
                wire: self.tx.clone(),
            },
        ))
    }

    fn transmit(&mut self, _: SmolInstant) -> Option<SmolTx> {
        Some(SmolTx {
            wire: self.tx.clone(),
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = FRAME; // an IP MTU of 1500, as tapir's
        caps
    }
}

struct SmolHost {
    iface: SmolIface,
    dev: SmolDevice,
    sockets: SocketSet<'static>,
    tcp: SmolHandle,
}

impl SmolHost {
    fn new(n: u8, rx: Rc<RefCell<Wire>>, tx: Rc<RefCell<Wire>>, now: SmolInstant) -> SmolHost {
        let mut dev = SmolDevice { rx, tx };
        let mut config = SmolConfig::new(HardwareAddress::Ethernet(SmolMac(host_mac(n).0)));
        config.random_seed = u64::from(n);
        let mut iface = SmolIface::new(config, &mut dev, now);
        iface.update_ip_addrs(|a| {
            a.push(IpCidr::new(IpAddress::Ipv4(host_ip(n)), 24))
                .expect("room")
        });
        let socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; BUFFER]),
            tcp::SocketBuffer::new(vec![0; BUFFER]),
        );
        let mut sockets = SocketSet::new(vec![]);
        let tcp = sockets.add(socket);
        SmolHost {
            iface,
            dev,
            sockets,
            tcp,
        }
    }

    fn poll(&mut self, now: SmolInstant) {
        self.iface.poll(now, &mut self.dev, &mut self.sockets);
    }

    fn socket(&mut self) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(self.tcp)
    }
}

struct SmolPair {
    hosts: [SmolHost; 2],
    wires: [Rc<RefCell<Wire>>; 2],
    now: SmolInstant,
}

impl SmolPair {
    fn new() -> SmolPair {
        let now = SmolInstant::from_secs(1);
        let wires: [Rc<RefCell<Wire>>; 2] = Default::default();
        let a = SmolHost::new(2, wires[0].clone(), wires[1].clone(), now);
        let b = SmolHost::new(3, wires[1].clone(), wires[0].clone(), now);
        let mut p = SmolPair {
            hosts: [a, b],
            wires,
            now,
        };
        p.hosts[1].socket().listen(PORT).expect("listen");
        let cx = p.hosts[0].iface.context();
        let remote = (IpAddress::Ipv4(host_ip(3)), PORT);
        p.hosts[0]
            .sockets
            .get_mut::<tcp::Socket>(p.hosts[0].tcp)
            .connect(cx, remote, 40000)
            .expect("connect");
        for _ in 0..100 {
            p.step();
            if p.hosts[0].socket().may_send() && p.hosts[1].socket().may_recv() {
                return p;
            }
        }
        panic!("smoltcp: no connection");
    }

    fn step(&mut self) {
        loop {
            for h in &mut self.hosts {
                h.poll(self.now);
            }
            if self.wires.iter().all(|w| w.borrow().queue.is_empty()) {
                break;
            }
        }
        self.now += smoltcp::time::Duration::from_micros(STEP_US);
    }

    fn transfer(&mut self, len: usize, chunk: &mut [u8], buf: &mut [u8], check: bool) -> usize {
        let (mut sent, mut got) = (0, 0);
        while got < len {
            while sent < len {
                let n = (len - sent).min(chunk.len());
                if check {
                    pattern(sent, &mut chunk[..n]);
                }
                match self.hosts[0].socket().send_slice(&chunk[..n]) {
                    Ok(k) if k > 0 => sent += k,
                    _ => break,
                }
            }
            self.step();
            while let Ok(n) = self.hosts[1].socket().recv_slice(buf) {
                if n == 0 {
                    break;
                }
                if check {
                    let mut want = vec![0; n];
                    pattern(got, &mut want);
                    assert_eq!(&buf[..n], &want[..], "smoltcp: bytes {got}.. differ");
                }
                got += n;
            }
        }
        got
    }
}

// ----- one segment at a time -----

/// Virtual time between two single segments, so that the stacks' clocks
/// move; short enough that no neighbor entry goes stale within a run (an
/// ARP exchange would take the segment's place).
const SEGMENT_STEP_US: u64 = 1;

/// What one data segment cost: out of the sender, into the receiver.
struct SegmentTimes {
    egress: StdDuration,
    ingress: StdDuration,
}

impl TapirPair {
    /// One full segment through the connection. Timed: the sender's
    /// `poll_transmit` that writes it (egress), and the receiver's
    /// `handle_frame` with whatever it then owes sent (ingress). Untimed:
    /// the application's write and read, the ACKs going back, time.
    fn one_segment(&mut self, data: &[u8], buf: &mut [u8]) -> SegmentTimes {
        assert_eq!(self.ifaces[0].tcp_send(self.tx, data), Ok(data.len()));
        let mut frame = self.wires[1].buffer();
        let t = std::time::Instant::now();
        let n = self.ifaces[0].poll_transmit(self.now, &mut frame);
        let egress = t.elapsed();
        frame.truncate(n.expect("tapir: a data segment"));
        assert_eq!(frame.len(), 14 + 20 + 32 + data.len(), "tapir: one full segment");
        let t = std::time::Instant::now();
        self.ifaces[1].handle_frame(self.now, &frame);
        self.drain(1);
        let ingress = t.elapsed();
        self.wires[1].recycle(frame);
        let mut got = 0;
        while let Ok(n) = self.ifaces[1].tcp_recv(self.rx, buf) {
            if n == 0 {
                break;
            }
            got += n;
        }
        assert_eq!(got, data.len(), "tapir: the segment's data arrived");
        self.drain(1);
        while let Some(b) = self.wires[0].queue.pop_front() {
            self.ifaces[0].handle_frame(self.now, &b);
            self.wires[0].recycle(b);
        }
        self.now += Duration::from_micros(SEGMENT_STEP_US);
        for i in &mut self.ifaces {
            i.handle_timeout(self.now);
        }
        self.drain(1);
        SegmentTimes { egress, ingress }
    }

    /// Everything interface `from` has to send, onto the wire to the other.
    fn drain(&mut self, from: usize) {
        let to = 1 - from;
        loop {
            let mut b = self.wires[to].buffer();
            match self.ifaces[from].poll_transmit(self.now, &mut b) {
                Some(n) => {
                    b.truncate(n);
                    self.wires[to].queue.push_back(b);
                }
                None => {
                    self.wires[to].recycle(b);
                    return;
                }
            }
        }
    }
}

impl SmolPair {
    /// As [`TapirPair::one_segment`]: egress is the sender's `poll` that
    /// sends the queued segment, ingress the receiver's `poll` that takes it
    /// in (and sends what it owes).
    fn one_segment(&mut self, data: &[u8], buf: &mut [u8]) -> SegmentTimes {
        assert!(self.wires.iter().all(|w| w.borrow().queue.is_empty()));
        assert_eq!(self.hosts[0].socket().send_slice(data), Ok(data.len()));
        let t = std::time::Instant::now();
        self.hosts[0].poll(self.now);
        let egress = t.elapsed();
        {
            let w = self.wires[1].borrow();
            assert_eq!(w.queue.len(), 1, "smoltcp: one segment");
            assert_eq!(
                w.queue[0].len(),
                14 + 20 + 20 + data.len(),
                "smoltcp: one full segment"
            );
        }
        let t = std::time::Instant::now();
        self.hosts[1].poll(self.now);
        let ingress = t.elapsed();
        let mut got = 0;
        while let Ok(n) = self.hosts[1].socket().recv_slice(buf) {
            if n == 0 {
                break;
            }
            got += n;
        }
        assert_eq!(got, data.len(), "smoltcp: the segment's data arrived");
        self.now += smoltcp::time::Duration::from_micros(SEGMENT_STEP_US);
        // The ACKs back, and nothing left on the wires.
        for _ in 0..4 {
            self.hosts[1].poll(self.now);
            self.hosts[0].poll(self.now);
        }
        assert!(self.wires.iter().all(|w| w.borrow().queue.is_empty()));
        SegmentTimes { egress, ingress }
    }
}

/// One data segment out of a stack and one into it, timed alone (wall
/// time: a process CPU clock costs a system call per reading). Each
/// stack's own full segment: 1448 bytes for tapir (timestamps on), 1460
/// for smoltcp (off).
fn bench_segment(c: &mut Criterion) {
    let mut buf = vec![0u8; WRITE];
    let tapir_data = vec![7u8; 1448];
    let smol_data = vec![7u8; 1460];
    let mut tapir = TapirPair::new();
    let mut smol = SmolPair::new();
    // Past the initial window and slow start's first rounds.
    for _ in 0..2000 {
        tapir.one_segment(&tapir_data, &mut buf);
        smol.one_segment(&smol_data, &mut buf);
    }
    for (name, pick) in [
        (
            "tcp_egress_one_segment",
            (|t: &SegmentTimes| t.egress) as fn(&SegmentTimes) -> StdDuration,
        ),
        ("tcp_ingress_one_segment", |t: &SegmentTimes| t.ingress),
    ] {
        let mut g = c.benchmark_group(name);
        g.bench_function("tapir", |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| pick(&tapir.one_segment(&tapir_data, &mut buf)))
                    .sum()
            })
        });
        g.bench_function("smoltcp", |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| pick(&smol.one_segment(&smol_data, &mut buf)))
                    .sum()
            })
        });
        g.finish();
    }
}

/// CPU time of this process (`CLOCK_PROCESS_CPUTIME_ID`), in nanoseconds.
struct CpuTime;

fn cpu_now() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(r, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Measurement for CpuTime {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        cpu_now()
    }
    fn end(&self, start: u64) -> u64 {
        cpu_now() - start
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        // The same unit (ns) as wall time.
        WallTime.formatter()
    }
}

fn bench<M: Measurement>(mut c: Criterion<M>) {
    let mut chunk = vec![0u8; WRITE];
    let mut buf = vec![0u8; WRITE];

    let mut tapir = TapirPair::new();
    assert_eq!(
        tapir.transfer(CHUNK_TOTAL, &mut chunk, &mut buf, true),
        CHUNK_TOTAL
    );
    let mut smol = SmolPair::new();
    assert_eq!(
        smol.transfer(CHUNK_TOTAL, &mut chunk, &mut buf, true),
        CHUNK_TOTAL
    );

    let mut g = c.benchmark_group("tcp_bulk_4MiB");
    g.throughput(Throughput::Bytes(CHUNK_TOTAL as u64));
    g.bench_function("tapir", |b| {
        b.iter(|| tapir.transfer(CHUNK_TOTAL, &mut chunk, &mut buf, false))
    });
    g.bench_function("smoltcp", |b| {
        b.iter(|| smol.transfer(CHUNK_TOTAL, &mut chunk, &mut buf, false))
    });
    g.finish();
    c.final_summary();
}

fn main() {
    let c = || {
        Criterion::default()
            .warm_up_time(StdDuration::from_secs(1))
            .measurement_time(StdDuration::from_secs(5))
            .sample_size(20)
    };
    if std::env::var_os("TAPIR_BENCH_CPU").is_some_and(|v| v == "1") {
        bench(c().with_measurement(CpuTime).configure_from_args());
    } else {
        bench(c().configure_from_args());
    }
    let mut c = c().configure_from_args();
    bench_segment(&mut c);
    c.final_summary();
}
