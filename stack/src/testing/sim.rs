//! A deterministic network simulator: any number of sans-IO stacks on
//! seeded, impaired links, all on one virtual clock.
//!
//! # Design
//!
//! - **Time jumps.** Nothing sleeps. [`Sim::step`] jumps the clock straight
//!   to the earliest thing that can happen (a frame in flight arriving, or a
//!   node's [`poll_timeout`](Node::poll_timeout) deadline), then does
//!   everything due at that instant: it delivers the frames that arrive
//!   (`handle_frame`), runs the timers that expired (`handle_timeout`), and
//!   drains every node's `poll_transmit` onto its link. An hour of simulated
//!   retransmission timeouts costs a few hundred steps.
//! - **Seeded impairments.** Each direction of a link has its own
//!   [`Impairments`] (loss, delay, jitter, reordering, duplication,
//!   corruption, rate limit with a tail-drop queue, MTU) and its own PRNG,
//!   derived from the simulation's one seed and the link's position. The
//!   same seed and the same calls give the same run, frame for frame; a
//!   link's random choices do not shift when another link is added or
//!   busier. [`Sim::trace_hash`] summarises every delivery (time, node,
//!   bytes) so a test can assert that two runs were identical, and
//!   [`for_each_seed`] names the seed that failed so it replays exactly.
//! - **Bounded runs.** [`Sim::run_until`] takes a step limit and fails with
//!   [`SimError::StepLimit`] instead of spinning; every run fails with
//!   [`SimError::Livelock`] when the clock stops moving (a timer that never
//!   clears), and `run_until` with [`SimError::Idle`] when nothing is left
//!   to happen. A hang is a test failure with the simulated time in the
//!   message, never a stuck CI job.
//! - **Nodes are the real thing.** A node is anything that implements the
//!   four sans-IO calls of [`Node`]: tapir's [`Interface`] as it is, or
//!   smoltcp through [`SmoltcpPeer`](super::smoltcp_peer::SmoltcpPeer). The
//!   simulator owns the nodes; tests reach them between steps with
//!   [`Sim::iface`] or [`Sim::node_mut`] to make socket calls.
//!
//! As in neqo's `test-fixture/src/sim`, impairments compose and read like a
//! network diagram:
//!
//! ```
//! use tapir_stack::testing::sim::{ms, Impairments, Sim};
//!
//! let mut sim = Sim::new(7);
//! let a = sim.add_host(2);
//! let b = sim.add_host(3);
//! sim.connect(a, b, Impairments::clean().loss(0.01).delay(ms(10)).jitter(ms(2)));
//! let sa = sim.iface(a).udp_bind("0.0.0.0:5000".parse().unwrap()).unwrap();
//! let sb = sim.iface(b).udp_bind("0.0.0.0:6000".parse().unwrap()).unwrap();
//! sim.iface(a).udp_send_to(sa, b"hello", "10.77.0.3:6000".parse().unwrap()).unwrap();
//! // ARP, then the datagram (unless the 1 % loss takes it: a real test
//! // retries or picks a seed).
//! let mut buf = [0u8; 64];
//! let got = sim.run_until(|sim| sim.iface(b).udp_recv_from(sb, &mut buf).is_ok(), 1000);
//! assert!(got.is_ok());
//! ```
//!
//! Links come in two kinds. A point-to-point link ([`Sim::connect`]) is a
//! cable: whatever one end sends reaches the other, whatever its MAC. A
//! switch ([`Sim::add_switch`], [`Sim::attach`]) is a learning Ethernet
//! switch: it learns source MACs per port, forwards unicast to the port that
//! has the destination, and floods broadcasts and unknown destinations to
//! every other port. Impairments apply per egress port (towards a node), as
//! on a real switch's output queue.

use crate::config::Config;
use crate::time::{Duration, Instant};
use crate::wire::{EthernetAddress, Ipv4Cidr};
use crate::Interface;
use core::cmp::Ordering;
use core::fmt;
use core::net::Ipv4Addr;
use std::any::Any;
use std::collections::{BinaryHeap, HashMap};

use crate::impair::{mix, Channel, ETH_HEADER};
pub use crate::impair::{GilbertElliott, Impairments, LinkStats, Rng};

/// `n` milliseconds.
pub const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `n` microseconds.
pub const fn us(n: u64) -> Duration {
    Duration::from_micros(n)
}

/// Large enough for any frame: an IP datagram can be at most 65535 bytes.
const SCRATCH_LEN: usize = 65535 + ETH_HEADER;

/// `poll_transmit` calls per node per drain before we call it a runaway.
const MAX_FRAMES_PER_DRAIN: usize = 1_000_000;

/// Steps [`Sim::run_for`] allows before failing.
pub const DEFAULT_STEP_LIMIT: u64 = 10_000_000;

/// Steps at one instant before a run calls it a livelock: a zero-delay
/// exchange takes a handful, a node whose timer never clears takes forever.
pub const MAX_STEPS_PER_INSTANT: u64 = 100_000;

// ---------------------------------------------------------------------------
// Nodes

/// A sans-IO network stack with one Ethernet port, as the simulator drives it.
///
/// The contract is the driver loop of [`Interface`]: frames in through
/// `handle_frame`, expired timers through `handle_timeout`, frames out
/// through `poll_transmit` until it returns `None`, and `poll_timeout`
/// saying when the next timer is due. `now` never goes backwards.
pub trait Node: 'static {
    /// One frame arrived from the link.
    fn handle_frame(&mut self, now: Instant, frame: &[u8]);
    /// The deadline from `poll_timeout` has passed.
    fn handle_timeout(&mut self, now: Instant);
    /// Write the next frame to send into `buf` (at least 65549 bytes) and
    /// return its length, or `None` if there is nothing to send.
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize>;
    /// When `handle_timeout` should next be called. `&mut` because some
    /// stacks (smoltcp) compute it with their mutable state.
    fn poll_timeout(&mut self) -> Option<Instant>;
}

impl Node for Interface {
    fn handle_frame(&mut self, now: Instant, frame: &[u8]) {
        Interface::handle_frame(self, now, frame)
    }

    fn handle_timeout(&mut self, now: Instant) {
        Interface::handle_timeout(self, now)
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        Interface::poll_transmit(self, now, buf)
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        Interface::poll_timeout(self)
    }
}

/// Lets the simulator hand a node back as its concrete type.
trait AnyNode: Node {
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Node> AnyNode for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Names a node of a [`Sim`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(usize);

impl NodeId {
    /// The node's position in the order it was added (from 0).
    pub fn index(self) -> usize {
        self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node{}", self.0)
    }
}

/// Names a link (a point-to-point link or a switch) of a [`Sim`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(usize);

impl fmt::Display for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "link{}", self.0)
    }
}

// ---------------------------------------------------------------------------
// Hosts on 10.77.0.0/24

/// The MAC of simulated host `n`: 02:00:00:77:00:n (locally administered).
pub fn host_mac(n: u8) -> EthernetAddress {
    EthernetAddress([0x02, 0x00, 0x00, 0x77, 0x00, n])
}

/// The address of simulated host `n`: 10.77.0.n.
pub fn host_ip(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 0, n)
}

/// A tapir configuration for host `n` (10.77.0.n/24, [`host_mac`]`(n)`),
/// with its seed mixed from `seed` and `n` so hosts differ from each other
/// and from run to run.
pub fn host_config(n: u8, seed: u64) -> Config {
    assert!((1..=254).contains(&n), "host number {n} is not a host on a /24");
    let mut config = Config::new(host_mac(n), Ipv4Cidr::new(host_ip(n), 24).expect("valid prefix"));
    config.seed = mix(seed, u64::from(n));
    config
}

// ---------------------------------------------------------------------------
// Links

/// One frame a link delivered, as recorded by [`Sim::capture`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    pub at: Instant,
    pub from: NodeId,
    pub to: NodeId,
    pub frame: Vec<u8>,
}

/// A frame about to enter one direction of a link, as a filter sees it.
#[derive(Debug)]
pub struct FrameInfo<'a> {
    pub now: Instant,
    pub from: NodeId,
    pub to: NodeId,
    pub frame: &'a [u8],
}

type Filter = Box<dyn FnMut(&FrameInfo<'_>) -> bool>;

struct Port {
    node: NodeId,
    /// Frames from the link towards `node`.
    egress: Channel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkKind {
    PointToPoint,
    Switch,
}

struct Link {
    kind: LinkKind,
    ports: Vec<Port>,
    /// A switch's forwarding database: which port a MAC was last seen on.
    fdb: HashMap<EthernetAddress, usize>,
    capture: Option<Vec<Captured>>,
    filter: Option<Filter>,
}

impl Link {
    /// The ports a frame entering at `ingress` goes out of.
    fn egress_ports(&mut self, ingress: usize, frame: &[u8], out: &mut Vec<usize>) {
        out.clear();
        match self.kind {
            LinkKind::PointToPoint => out.extend((0..self.ports.len()).filter(|&p| p != ingress)),
            LinkKind::Switch => {
                let mac = |at: usize| {
                    frame
                        .get(at..at + 6)
                        .map(|b| EthernetAddress(b.try_into().unwrap()))
                };
                let (Some(dst), Some(src)) = (mac(0), mac(6)) else {
                    out.extend((0..self.ports.len()).filter(|&p| p != ingress));
                    return;
                };
                if src.is_unicast() {
                    self.fdb.insert(src, ingress);
                }
                match self.fdb.get(&dst) {
                    // A frame for a MAC on the port it came from stays there.
                    Some(&port) if dst.is_unicast() => out.extend((port != ingress).then_some(port)),
                    _ => out.extend((0..self.ports.len()).filter(|&p| p != ingress)),
                }
            }
        }
    }
}

/// A frame on the wire.
struct InFlight {
    at: Instant,
    /// Tie-break for equal times: the order the frames were put on the wire.
    seq: u64,
    link: usize,
    port: usize,
    from: NodeId,
    frame: Vec<u8>,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for InFlight {}

impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for InFlight {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

// ---------------------------------------------------------------------------
// The simulator

/// Why a run stopped before its condition held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimError {
    /// The step limit ran out (a hang, a livelock, or a limit too small).
    StepLimit { steps: u64, now: Instant },
    /// Nothing is in flight and no node has a timer: nothing will ever
    /// happen again, and the condition does not hold.
    Idle { now: Instant },
    /// [`MAX_STEPS_PER_INSTANT`] steps without the clock moving: a node
    /// keeps asking for a timeout it does not clear, or nodes answer each
    /// other forever over zero-delay links. `nodes` names those whose
    /// deadline is due.
    Livelock { now: Instant, nodes: Vec<String> },
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::StepLimit { steps, now } => {
                write!(f, "gave up after {steps} steps at simulated time {now}")
            }
            SimError::Idle { now } => write!(
                f,
                "the network went idle at simulated time {now} (nothing in flight, no timers) \
                 before the condition held"
            ),
            SimError::Livelock { now, nodes } => write!(
                f,
                "{MAX_STEPS_PER_INSTANT} steps at simulated time {now} without the clock moving \
                 (timers due: {nodes:?})"
            ),
        }
    }
}

impl std::error::Error for SimError {}

struct NodeSlot {
    name: String,
    node: Box<dyn AnyNode>,
    /// The link and port the node is plugged into.
    port: Option<(usize, usize)>,
}

/// The simulated network. See the module docs.
pub struct Sim {
    seed: u64,
    now: Instant,
    nodes: Vec<NodeSlot>,
    links: Vec<Link>,
    in_flight: BinaryHeap<InFlight>,
    seq: u64,
    trace: u64,
    deliveries: u64,
    steps: u64,
    /// Steps taken at the current `now`.
    instant_steps: u64,
    unplugged_frames: u64,
    scratch: Vec<u8>,
}

impl fmt::Debug for Sim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim")
            .field("seed", &self.seed)
            .field("now", &self.now)
            .field("nodes", &self.nodes.iter().map(|n| &n.name).collect::<Vec<_>>())
            .field("links", &self.links.len())
            .field("in_flight", &self.in_flight.len())
            .field("steps", &self.steps)
            .finish()
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(FNV_PRIME);
    }
    h
}

impl Sim {
    /// An empty network at time zero. Every random choice it makes derives
    /// from `seed`.
    pub fn new(seed: u64) -> Self {
        Sim {
            seed,
            now: Instant::ZERO,
            nodes: Vec::new(),
            links: Vec::new(),
            in_flight: BinaryHeap::new(),
            seq: 0,
            trace: FNV_OFFSET,
            deliveries: 0,
            steps: 0,
            instant_steps: 0,
            unplugged_frames: 0,
            scratch: vec![0; SCRATCH_LEN],
        }
    }

    // ----- building the network -----

    /// Add a node; it is not plugged into anything yet.
    pub fn add_node(&mut self, name: impl Into<String>, node: impl Node) -> NodeId {
        self.nodes.push(NodeSlot {
            name: name.into(),
            node: Box::new(node),
            port: None,
        });
        NodeId(self.nodes.len() - 1)
    }

    /// Add a tapir host `n` (10.77.0.n/24) configured by [`host_config`]
    /// with a seed derived from the simulation's.
    pub fn add_host(&mut self, n: u8) -> NodeId {
        self.add_host_with(n, |_| {})
    }

    /// [`add_host`](Self::add_host), with a chance to adjust the
    /// configuration first.
    pub fn add_host_with(&mut self, n: u8, adjust: impl FnOnce(&mut Config)) -> NodeId {
        let mut config = host_config(n, self.seed);
        adjust(&mut config);
        let iface = Interface::new(config).expect("host configuration is valid");
        self.add_node(host_ip(n).to_string(), iface)
    }

    /// Connect two nodes with a point-to-point link, `imp` in both directions.
    pub fn connect(&mut self, a: NodeId, b: NodeId, imp: Impairments) -> LinkId {
        self.connect_asymmetric(a, b, imp.clone(), imp)
    }

    /// Connect two nodes with a point-to-point link, different impairments
    /// in each direction.
    pub fn connect_asymmetric(
        &mut self,
        a: NodeId,
        b: NodeId,
        a_to_b: Impairments,
        b_to_a: Impairments,
    ) -> LinkId {
        assert_ne!(a, b, "a link needs two different nodes");
        let link = self.new_link(LinkKind::PointToPoint);
        // Frames towards b are a_to_b; towards a, b_to_a.
        self.plug(link, b, a_to_b);
        self.plug(link, a, b_to_a);
        link
    }

    /// Add an Ethernet switch with no ports yet.
    pub fn add_switch(&mut self) -> LinkId {
        self.new_link(LinkKind::Switch)
    }

    /// Plug `node` into the switch; frames from the switch to the node get
    /// `imp`.
    pub fn attach(&mut self, switch: LinkId, node: NodeId, imp: Impairments) {
        assert_eq!(
            self.links[switch.0].kind,
            LinkKind::Switch,
            "{switch} is a point-to-point link, not a switch"
        );
        self.plug(switch, node, imp);
    }

    fn new_link(&mut self, kind: LinkKind) -> LinkId {
        self.links.push(Link {
            kind,
            ports: Vec::new(),
            fdb: HashMap::new(),
            capture: None,
            filter: None,
        });
        LinkId(self.links.len() - 1)
    }

    fn plug(&mut self, link: LinkId, node: NodeId, imp: Impairments) {
        let slot = &mut self.nodes[node.0];
        assert!(
            slot.port.is_none(),
            "{} ({node}) is already plugged into a link",
            slot.name
        );
        let ports = &mut self.links[link.0].ports;
        let seed = mix(mix(self.seed, link.0 as u64), ports.len() as u64);
        ports.push(Port {
            node,
            egress: Channel::new(imp, seed),
        });
        slot.port = Some((link.0, ports.len() - 1));
    }

    fn port_of(&self, link: LinkId, towards: NodeId) -> usize {
        self.links[link.0]
            .ports
            .iter()
            .position(|p| p.node == towards)
            .unwrap_or_else(|| panic!("{towards} is not on {link}"))
    }

    /// Change the impairments of every direction of a link, from now on.
    /// Frames already in flight keep their fate.
    pub fn set_impairments(&mut self, link: LinkId, imp: Impairments) {
        for port in &mut self.links[link.0].ports {
            port.egress.set_impairments(imp.clone());
        }
    }

    /// Change the impairments of frames towards one node.
    pub fn set_impairments_towards(&mut self, link: LinkId, towards: NodeId, imp: Impairments) {
        let port = self.port_of(link, towards);
        self.links[link.0].ports[port].egress.set_impairments(imp);
    }

    /// Decide frame by frame what enters the link (netstack3's
    /// `step_with`): `keep` sees each frame before the impairments and
    /// returns false to drop it (counted in `dropped_filter`).
    pub fn set_filter(&mut self, link: LinkId, keep: impl FnMut(&FrameInfo<'_>) -> bool + 'static) {
        self.links[link.0].filter = Some(Box::new(keep));
    }

    pub fn clear_filter(&mut self, link: LinkId) {
        self.links[link.0].filter = None;
    }

    /// Record every frame the link delivers from now on.
    pub fn capture(&mut self, link: LinkId) {
        self.links[link.0].capture.get_or_insert_with(Vec::new);
    }

    /// The frames recorded since [`capture`](Self::capture), in delivery order.
    pub fn captured(&self, link: LinkId) -> &[Captured] {
        self.links[link.0].capture.as_deref().unwrap_or(&[])
    }

    /// The recorded frames as a pcap file (Ethernet, microsecond
    /// timestamps), for Wireshark or tcpdump -r.
    pub fn pcap(&self, link: LinkId) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&4u16.to_le_bytes());
        out.extend_from_slice(&0i32.to_le_bytes()); // thiszone
        out.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
        out.extend_from_slice(&(SCRATCH_LEN as u32).to_le_bytes()); // snaplen
        out.extend_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
        for c in self.captured(link) {
            let micros = c.at.total_micros();
            out.extend_from_slice(&((micros / 1_000_000) as u32).to_le_bytes());
            out.extend_from_slice(&((micros % 1_000_000) as u32).to_le_bytes());
            out.extend_from_slice(&(c.frame.len() as u32).to_le_bytes());
            out.extend_from_slice(&(c.frame.len() as u32).to_le_bytes());
            out.extend_from_slice(&c.frame);
        }
        out
    }

    // ----- reaching the nodes -----

    /// The node as its concrete type. Panics if it is another type.
    pub fn node<T: Node>(&self, id: NodeId) -> &T {
        let slot = &self.nodes[id.0];
        slot.node
            .as_any()
            .downcast_ref()
            .unwrap_or_else(|| panic!("{} ({id}) is not a {}", slot.name, std::any::type_name::<T>()))
    }

    /// The node as its concrete type, to make socket calls. Panics if it is
    /// another type. Sends made here go out at the next step.
    pub fn node_mut<T: Node>(&mut self, id: NodeId) -> &mut T {
        let slot = &mut self.nodes[id.0];
        let name = &slot.name;
        match slot.node.as_any_mut().downcast_mut() {
            Some(node) => node,
            None => panic!("{name} ({id}) is not a {}", std::any::type_name::<T>()),
        }
    }

    /// The tapir interface of a node added with [`add_host`](Self::add_host)
    /// or as an `Interface`.
    pub fn iface(&mut self, id: NodeId) -> &mut Interface {
        self.node_mut(id)
    }

    pub fn node_name(&self, id: NodeId) -> &str {
        &self.nodes[id.0].name
    }

    // ----- observing -----

    pub fn now(&self) -> Instant {
        self.now
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Frames delivered so far, on all links.
    pub fn deliveries(&self) -> u64 {
        self.deliveries
    }

    /// Frames sent by nodes not plugged into any link (and so lost).
    pub fn unplugged_frames(&self) -> u64 {
        self.unplugged_frames
    }

    /// A hash of every delivery so far: its time, the receiving node and the
    /// frame's bytes. Two runs with equal hashes saw the same network.
    pub fn trace_hash(&self) -> u64 {
        self.trace
    }

    /// The counters of frames towards `towards` on `link`.
    pub fn stats_towards(&self, link: LinkId, towards: NodeId) -> &LinkStats {
        self.links[link.0].ports[self.port_of(link, towards)]
            .egress
            .stats()
    }

    /// The counters of all directions of `link` together.
    pub fn link_stats(&self, link: LinkId) -> LinkStats {
        let mut sum = LinkStats::default();
        for port in &self.links[link.0].ports {
            sum.add(port.egress.stats());
        }
        sum
    }

    // ----- running -----

    /// When the next thing happens: a frame arrives or a timer expires.
    /// `None` when the network is idle.
    pub fn next_event(&mut self) -> Option<Instant> {
        let frames = self.in_flight.peek().map(|f| f.at);
        let timers = self.nodes.iter_mut().filter_map(|n| n.node.poll_timeout()).min();
        match (frames, timers) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Put every frame the nodes have queued (for instance by socket calls
    /// made since the last step) on the wire, at the current time.
    /// [`step`](Self::step) does this first, so calling it is rarely needed.
    pub fn transmit(&mut self) {
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut ports = Vec::new();
        for i in 0..self.nodes.len() {
            let mut frames = 0;
            loop {
                let slot = &mut self.nodes[i];
                let _span = tracing::trace_span!("node", name = %slot.name).entered();
                let Some(len) = slot.node.poll_transmit(self.now, &mut scratch) else {
                    break;
                };
                frames += 1;
                assert!(
                    frames <= MAX_FRAMES_PER_DRAIN,
                    "{}: poll_transmit never ran dry at {}",
                    slot.name,
                    self.now
                );
                self.put_on_wire(NodeId(i), &scratch[..len], &mut ports);
            }
        }
        self.scratch = scratch;
    }

    fn put_on_wire(&mut self, from: NodeId, frame: &[u8], ports: &mut Vec<usize>) {
        let Some((link_index, ingress)) = self.nodes[from.0].port else {
            self.unplugged_frames += 1;
            return;
        };
        let link = &mut self.links[link_index];
        link.egress_ports(ingress, frame, ports);
        for &port in ports.iter() {
            let to = link.ports[port].node;
            let channel = &mut link.ports[port].egress;
            if let Some(keep) = &mut link.filter {
                let info = FrameInfo {
                    now: self.now,
                    from,
                    to,
                    frame,
                };
                if !keep(&info) {
                    let stats = channel.stats_mut();
                    stats.sent += 1;
                    stats.dropped_filter += 1;
                    continue;
                }
            }
            let fate = channel.offer(self.now, frame.len());
            for copy in fate.copies() {
                let mut frame = frame.to_vec();
                copy.apply(&mut frame);
                let at = copy.at;
                self.seq += 1;
                self.in_flight.push(InFlight {
                    at,
                    seq: self.seq,
                    link: link_index,
                    port,
                    from,
                    frame,
                });
            }
        }
    }

    /// Advance to the next event and process everything due then: deliver
    /// the frames that arrive, run the timers that expired, and put what
    /// the nodes send on the wire. Returns false, having done nothing, when
    /// the network is idle.
    pub fn step(&mut self) -> bool {
        self.transmit();
        let Some(next) = self.next_event() else {
            return false;
        };
        if next > self.now {
            self.now = next;
            self.instant_steps = 0;
        }
        self.steps += 1;
        self.instant_steps += 1;
        while self.in_flight.peek().is_some_and(|f| f.at <= self.now) {
            let f = self.in_flight.pop().expect("peeked");
            self.deliver(f);
        }
        for slot in &mut self.nodes {
            if slot.node.poll_timeout().is_some_and(|t| t <= self.now) {
                let _span = tracing::trace_span!("node", name = %slot.name).entered();
                slot.node.handle_timeout(self.now);
            }
        }
        self.transmit();
        true
    }

    fn deliver(&mut self, f: InFlight) {
        let link = &mut self.links[f.link];
        let port = &mut link.ports[f.port];
        port.egress.delivered();
        let to = port.node;
        self.deliveries += 1;
        let mut h = fnv(self.trace, &self.now.total_micros().to_le_bytes());
        h = fnv(h, &(to.0 as u64).to_le_bytes());
        h = fnv(h, &(f.frame.len() as u64).to_le_bytes());
        self.trace = fnv(h, &f.frame);
        let slot = &mut self.nodes[to.0];
        let _span = tracing::trace_span!("node", name = %slot.name).entered();
        slot.node.handle_frame(self.now, &f.frame);
        if let Some(capture) = &mut link.capture {
            capture.push(Captured {
                at: self.now,
                from: f.from,
                to,
                frame: f.frame,
            });
        }
    }

    /// A one-way TCP transfer, as a test's application would run it: host
    /// `b` listens on `port`, `a` connects and writes all of `data` as the
    /// send buffer takes it, and `b` reads `read_len` bytes at a time until
    /// it has as much. `watch` sees the simulation at every look, with
    /// `b`'s connection once accepted (to sample its state). At most
    /// 5 000 000 steps. Returns what `b` read and the two connections,
    /// (sender, receiver).
    pub fn stream(
        &mut self,
        a: NodeId,
        b: NodeId,
        port: u16,
        data: &[u8],
        read_len: usize,
        mut watch: impl FnMut(&mut Sim, Option<crate::SocketHandle>),
    ) -> Result<(Vec<u8>, crate::SocketHandle, crate::SocketHandle), SimError> {
        let any = core::net::SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port);
        let l = self.iface(b).tcp_listen(any, 4).expect("listen");
        let to = core::net::SocketAddrV4::new(self.iface(b).ipv4_addr(), port);
        let now = self.now();
        let c = self.iface(a).tcp_connect(now, to).expect("connect");
        let (mut sent, mut got, mut s) = (0, Vec::new(), None);
        let mut buf = vec![0u8; read_len.max(1)];
        self.run_until(
            |sim| {
                if sent < data.len() {
                    if let Ok(k) = sim.iface(a).tcp_send(c, &data[sent..]) {
                        sent += k;
                    }
                }
                s = s.or_else(|| sim.iface(b).tcp_accept(l).ok());
                watch(sim, s);
                if let Some(s) = s {
                    while let Ok(k) = sim.iface(b).tcp_recv(s, &mut buf) {
                        if k == 0 {
                            break;
                        }
                        got.extend_from_slice(&buf[..k]);
                    }
                }
                got.len() >= data.len()
            },
            5_000_000,
        )?;
        Ok((got, c, s.expect("accepted: data arrived")))
    }

    /// Step until `done` holds (it is checked before every step, and may
    /// itself make socket calls, such as echoing what arrived). Fails after
    /// `max_steps` steps, or when the network is idle and `done` still does
    /// not hold.
    pub fn run_until(
        &mut self,
        mut done: impl FnMut(&mut Sim) -> bool,
        max_steps: u64,
    ) -> Result<(), SimError> {
        let mut idle = false;
        for _ in 0..max_steps {
            if done(self) {
                return Ok(());
            }
            if self.step() {
                idle = false;
                self.check_livelock()?;
            } else if idle {
                // Idle twice with a look at `done` between: it queued nothing.
                return Err(SimError::Idle { now: self.now });
            } else {
                idle = true;
            }
        }
        if done(self) {
            return Ok(());
        }
        Err(SimError::StepLimit {
            steps: max_steps,
            now: self.now,
        })
    }

    fn check_livelock(&mut self) -> Result<(), SimError> {
        if self.instant_steps <= MAX_STEPS_PER_INSTANT {
            return Ok(());
        }
        let now = self.now;
        let nodes = self
            .nodes
            .iter_mut()
            .filter_map(|n| {
                n.node
                    .poll_timeout()
                    .is_some_and(|t| t <= now)
                    .then(|| n.name.clone())
            })
            .collect();
        Err(SimError::Livelock { now, nodes })
    }

    /// Run everything that happens in the next `duration`, then set the
    /// clock to its end. Fails after [`DEFAULT_STEP_LIMIT`] steps.
    pub fn run_for(&mut self, duration: Duration) -> Result<(), SimError> {
        self.run_for_with(duration, |_| {})
    }

    /// [`run_for`](Self::run_for), calling `app` before every step and once
    /// at the end: the place for an application loop that reads its
    /// sockets and answers, like an echo server.
    pub fn run_for_with(
        &mut self,
        duration: Duration,
        mut app: impl FnMut(&mut Sim),
    ) -> Result<(), SimError> {
        let end = self.now + duration;
        let mut steps = 0;
        loop {
            app(self);
            self.transmit();
            match self.next_event() {
                Some(t) if t <= end => {}
                _ => break,
            }
            if steps == DEFAULT_STEP_LIMIT {
                return Err(SimError::StepLimit { steps, now: self.now });
            }
            self.step();
            self.check_livelock()?;
            steps += 1;
        }
        self.now = self.now.max(end);
        Ok(())
    }

    /// Step until nothing is in flight and no timer is set. Fails after
    /// `max_steps` steps.
    pub fn run_until_idle(&mut self, max_steps: u64) -> Result<(), SimError> {
        for _ in 0..max_steps {
            if !self.step() {
                return Ok(());
            }
            self.check_livelock()?;
        }
        Err(SimError::StepLimit {
            steps: max_steps,
            now: self.now,
        })
    }
}

// ---------------------------------------------------------------------------
// Seeds

/// The environment variable that makes [`for_each_seed`] run only the seed
/// it names, to replay a failure.
pub const SEED_ENV: &str = "TAPIR_SIM_SEED";

/// Run `test` once per seed. When a seed fails, by returning an error or by
/// panicking, panic with "seed N failed: ..." so the failure can be
/// replayed: setting `TAPIR_SIM_SEED=N` runs only that seed.
pub fn for_each_seed<E: fmt::Display>(
    seeds: impl IntoIterator<Item = u64>,
    test: impl FnMut(u64) -> Result<(), E>,
) {
    match std::env::var(SEED_ENV) {
        Ok(s) => {
            let seed = s
                .trim()
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("{SEED_ENV}={s:?} is not a seed"));
            run_seeds([seed], test)
        }
        Err(_) => run_seeds(seeds, test),
    }
}

fn run_seeds<E: fmt::Display>(
    seeds: impl IntoIterator<Item = u64>,
    mut test: impl FnMut(u64) -> Result<(), E>,
) {
    for seed in seeds {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| test(seed)));
        let why = match outcome {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e.to_string(),
            Err(payload) => match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
                (Some(s), _) => format!("panicked: {s}"),
                (_, Some(s)) => format!("panicked: {s}"),
                _ => "panicked".to_string(),
            },
        };
        panic!("seed {seed} failed: {why}\n(replay it alone with {SEED_ENV}={seed})");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A node that sends scripted frames at scripted times and records what
    /// it receives.
    #[derive(Default)]
    struct Script {
        to_send: VecDeque<(Instant, Vec<u8>)>,
        received: Vec<(Instant, Vec<u8>)>,
        timeouts: u32,
    }

    impl Script {
        fn sending(frames: impl IntoIterator<Item = (Instant, Vec<u8>)>) -> Self {
            Script {
                to_send: frames.into_iter().collect(),
                ..Script::default()
            }
        }
    }

    impl Node for Script {
        fn handle_frame(&mut self, now: Instant, frame: &[u8]) {
            self.received.push((now, frame.to_vec()));
        }
        fn handle_timeout(&mut self, _now: Instant) {
            self.timeouts += 1;
        }
        fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
            if self.to_send.front()?.0 > now {
                return None;
            }
            let (_, f) = self.to_send.pop_front()?;
            buf[..f.len()].copy_from_slice(&f);
            Some(f.len())
        }
        fn poll_timeout(&mut self) -> Option<Instant> {
            self.to_send.front().map(|(t, _)| *t)
        }
    }

    /// A frame from host 1 to host 2, `len` bytes long, whose payload is
    /// `tag` and then bytes that differ from every other tag's.
    fn frame(tag: u32, len: usize) -> Vec<u8> {
        let mut rng = Rng::new(u64::from(tag));
        let mut f: Vec<u8> = (0..len.max(18)).map(|_| rng.next_u64() as u8).collect();
        f[..6].copy_from_slice(&host_mac(2).0);
        f[6..12].copy_from_slice(&host_mac(1).0);
        f[12..14].copy_from_slice(&[0x88, 0xb5]); // local experimental EtherType
        f[14..18].copy_from_slice(&tag.to_be_bytes());
        f
    }

    fn tag(f: &[u8]) -> u32 {
        u32::from_be_bytes(f[14..18].try_into().unwrap())
    }

    /// `n` frames, one every `gap`, from time zero.
    fn burst(n: u32, gap: Duration, len: usize) -> Vec<(Instant, Vec<u8>)> {
        (0..n).map(|i| (Instant::ZERO + gap * i, frame(i, len))).collect()
    }

    fn pair(seed: u64, frames: Vec<(Instant, Vec<u8>)>, imp: Impairments) -> (Sim, NodeId, NodeId, LinkId) {
        let mut sim = Sim::new(seed);
        let a = sim.add_node("a", Script::sending(frames));
        let b = sim.add_node("b", Script::default());
        let link = sim.connect_asymmetric(a, b, imp, Impairments::clean());
        (sim, a, b, link)
    }

    #[test]
    fn clean_link_delivers_everything_in_order_at_once() {
        let (mut sim, _, b, link) = pair(1, burst(100, ms(1), 100), Impairments::clean());
        sim.run_until_idle(10_000).unwrap();
        let got = &sim.node::<Script>(b).received;
        assert_eq!(got.len(), 100);
        for (i, (at, f)) in got.iter().enumerate() {
            assert_eq!(tag(f), i as u32);
            assert_eq!(*at, Instant::ZERO + ms(1) * i as u32);
        }
        let s = sim.stats_towards(link, b);
        assert_eq!((s.sent, s.delivered, s.in_flight), (100, 100, 0));
        assert!(s.is_balanced());
    }

    #[test]
    fn loss_takes_about_the_configured_fraction() {
        let (mut sim, _, b, link) = pair(42, burst(10_000, us(10), 60), Impairments::clean().loss(0.1));
        sim.run_until_idle(100_000).unwrap();
        let s = sim.stats_towards(link, b).clone();
        // Deterministic for this seed; 1000 expected, the binomial sd is 30.
        assert_eq!(s.lost, 1000, "{s:?}");
        assert_eq!(s.sent, 10_000);
        assert_eq!(s.delivered, 10_000 - s.lost);
        assert_eq!(sim.node::<Script>(b).received.len() as u64, s.delivered);
        assert!(s.is_balanced());
    }

    #[test]
    fn delay_and_jitter_bound_the_arrival_time() {
        let frames = burst(2000, us(100), 60);
        let sent: Vec<Instant> = frames.iter().map(|(t, _)| *t).collect();
        let (mut sim, _, b, _) = pair(7, frames, Impairments::clean().delay(ms(5)).jitter(ms(2)));
        sim.run_until_idle(100_000).unwrap();
        let got = &sim.node::<Script>(b).received;
        assert_eq!(got.len(), 2000);
        let (mut lo, mut hi) = (Duration::MAX, Duration::ZERO);
        let mut overtaken = 0;
        for (i, (at, f)) in got.iter().enumerate() {
            let d = *at - sent[tag(f) as usize];
            assert!(d >= ms(5) && d <= ms(7), "frame {} took {d:?}", tag(f));
            lo = lo.min(d);
            hi = hi.max(d);
            overtaken += usize::from(tag(f) as usize != i);
        }
        // The whole range is used, and 2 ms of jitter on 0.1 ms spacing reorders.
        assert!(lo < ms(5) + us(50) && hi > ms(7) - us(50), "{lo:?}..{hi:?}");
        assert!(overtaken > 0);
    }

    #[test]
    fn reorder_holds_frames_back_so_others_overtake() {
        let imp = Impairments::clean()
            .delay(ms(1))
            .reorder(0.2)
            .reorder_delay(ms(3));
        let (mut sim, _, b, link) = pair(3, burst(1000, ms(1), 60), imp);
        sim.run_until_idle(100_000).unwrap();
        let s = sim.stats_towards(link, b).clone();
        assert_eq!(s.reordered, 209, "{s:?}");
        let tags: Vec<u32> = sim
            .node::<Script>(b)
            .received
            .iter()
            .map(|(_, f)| tag(f))
            .collect();
        let late = tags.windows(2).filter(|w| w[0] > w[1]).count() as u64;
        assert!(
            late > 0 && late <= s.reordered,
            "{late} descents for {} held back",
            s.reordered
        );
        assert_eq!(tags.len(), 1000);
    }

    #[test]
    fn duplication_and_corruption_are_counted_and_visible() {
        let imp = Impairments::clean().duplicate(0.05).corrupt(0.05);
        let frames = burst(2000, us(10), 100);
        let originals: Vec<Vec<u8>> = frames.iter().map(|(_, f)| f.clone()).collect();
        let (mut sim, _, b, link) = pair(11, frames, imp);
        sim.run_until_idle(100_000).unwrap();
        let s = sim.stats_towards(link, b).clone();
        assert_eq!((s.duplicated, s.corrupted), (112, 94), "{s:?}");
        assert_eq!(s.delivered, 2000 + s.duplicated);
        assert!(s.is_balanced());
        // Each corrupted copy differs from its original in exactly one byte.
        let mut differing = 0;
        for (_, f) in &sim.node::<Script>(b).received {
            let best = originals
                .iter()
                .map(|o| o.iter().zip(f).filter(|(x, y)| x != y).count())
                .min()
                .unwrap();
            assert!(best <= 1);
            differing += best as u64;
        }
        assert_eq!(differing, s.corrupted);
    }

    #[test]
    fn rate_limit_serializes_and_tail_drops() {
        // 1 Mbit/s: a 1250-byte frame takes 10 ms on the wire. 20 sent at
        // once into a 5-frame queue: 5 pass, 15 are dropped.
        let frames = (0..20).map(|i| (Instant::ZERO, frame(i, 1250))).collect();
        let imp = Impairments::clean()
            .rate(1_000_000)
            .queue_limit(5 * 1250)
            .delay(ms(1));
        let (mut sim, _, b, link) = pair(5, frames, imp);
        sim.run_until_idle(10_000).unwrap();
        let got = &sim.node::<Script>(b).received;
        let times: Vec<Instant> = got.iter().map(|(t, _)| *t).collect();
        let expected: Vec<Instant> = (1..=5).map(|i| Instant::ZERO + ms(10) * i + ms(1)).collect();
        assert_eq!(times, expected);
        let s = sim.stats_towards(link, b);
        assert_eq!((s.sent, s.delivered, s.dropped_queue), (20, 5, 15));

        // Spaced at the line rate, nothing is dropped and nothing waits.
        let frames = burst(50, ms(10), 1250);
        let imp = Impairments::clean().rate(1_000_000).queue_limit(1250);
        let (mut sim, _, b, link) = pair(5, frames, imp);
        sim.run_until_idle(10_000).unwrap();
        assert_eq!(sim.stats_towards(link, b).dropped_queue, 0);
        let got = &sim.node::<Script>(b).received;
        assert_eq!(got.last().unwrap().0, Instant::ZERO + ms(500));
    }

    #[test]
    fn a_textual_spec_with_burst_loss_drives_a_link() {
        let spec: crate::impair::Spec = "burst=ge:p=2%:r=25%,delay=1ms".parse().unwrap();
        let (mut sim, _, b, link) = pair(21, burst(20_000, us(20), 60), spec.imp);
        sim.run_until_idle(1_000_000).unwrap();
        let s = sim.stats_towards(link, b).clone();
        assert!(s.is_balanced());
        let mut delivered = vec![false; 20_000];
        for (at, f) in &sim.node::<Script>(b).received {
            delivered[tag(f) as usize] = true;
            assert!(*at >= Instant::ZERO + ms(1));
        }
        // 2 / 27 of the frames, lost in runs of 4 on average.
        let (mut runs, mut run) = (Vec::new(), 0u32);
        for d in delivered {
            if d && run > 0 {
                runs.push(run);
            }
            run = if d { 0 } else { run + 1 };
        }
        let mean = f64::from(runs.iter().sum::<u32>()) / runs.len() as f64;
        assert!((3.0..5.0).contains(&mean), "mean burst {mean}");
        let rate = s.lost as f64 / 20_000.0;
        assert!((rate - 2.0 / 27.0).abs() < 0.02, "loss {rate}");
    }

    #[test]
    fn frames_over_the_mtu_are_dropped() {
        let frames = vec![
            (Instant::ZERO, frame(0, 1514)),
            (Instant::ZERO, frame(1, 1515)),
            (Instant::ZERO, frame(2, 60)),
        ];
        let (mut sim, _, b, link) = pair(0, frames, Impairments::clean());
        sim.run_until_idle(100).unwrap();
        let tags: Vec<u32> = sim
            .node::<Script>(b)
            .received
            .iter()
            .map(|(_, f)| tag(f))
            .collect();
        assert_eq!(tags, [0, 2]);
        assert_eq!(sim.stats_towards(link, b).dropped_mtu, 1);
    }

    #[test]
    fn filter_drops_chosen_frames() {
        let (mut sim, _, b, link) = pair(0, burst(10, ms(1), 60), Impairments::clean());
        sim.set_filter(link, |info| ![0, 3, 6, 9].contains(&tag(info.frame)));
        sim.run_until_idle(100).unwrap();
        let tags: Vec<u32> = sim
            .node::<Script>(b)
            .received
            .iter()
            .map(|(_, f)| tag(f))
            .collect();
        assert_eq!(tags, [1, 2, 4, 5, 7, 8]);
        let s = sim.stats_towards(link, b);
        assert_eq!((s.sent, s.dropped_filter), (10, 4));
        assert!(s.is_balanced());
    }

    fn lossy_run(seed: u64) -> (u64, Vec<(Instant, Vec<u8>)>) {
        let imp = Impairments::clean()
            .loss(0.1)
            .delay(ms(2))
            .jitter(ms(1))
            .duplicate(0.05)
            .corrupt(0.05)
            .reorder(0.05);
        let (mut sim, _, b, _) = pair(seed, burst(500, us(300), 80), imp);
        sim.run_until_idle(100_000).unwrap();
        (sim.trace_hash(), sim.node::<Script>(b).received.clone())
    }

    #[test]
    fn same_seed_same_run_other_seed_other_run() {
        let (h1, r1) = lossy_run(99);
        let (h2, r2) = lossy_run(99);
        assert_eq!(h1, h2);
        assert_eq!(r1, r2);
        let (h3, r3) = lossy_run(100);
        assert_ne!(h1, h3);
        assert_ne!(r1, r3);
    }

    #[test]
    fn switch_learns_and_floods() {
        let mut sim = Sim::new(0);
        let bcast = {
            let mut f = frame(7, 60);
            f[..6].copy_from_slice(&[0xff; 6]);
            f
        };
        // Host 1 broadcasts, then sends to host 2 (unknown yet: flooded),
        // then host 2 answers (host 1 is known: only to it), then host 1
        // sends to host 2 again (known now: only to it).
        let mut from2 = frame(3, 60);
        from2[..6].copy_from_slice(&host_mac(1).0);
        from2[6..12].copy_from_slice(&host_mac(2).0);
        let n1 = sim.add_node(
            "1",
            Script::sending([
                (Instant::ZERO, bcast),
                (Instant::ZERO, frame(1, 60)),
                (Instant::from_millis(2), frame(4, 60)),
            ]),
        );
        let n2 = sim.add_node("2", Script::sending([(Instant::from_millis(1), from2)]));
        let n3 = sim.add_node("3", Script::default());
        let sw = sim.add_switch();
        for n in [n1, n2, n3] {
            sim.attach(sw, n, Impairments::clean());
        }
        sim.capture(sw);
        sim.run_until_idle(100).unwrap();
        let tags = |sim: &Sim, n| {
            sim.node::<Script>(n)
                .received
                .iter()
                .map(|(_, f)| tag(f))
                .collect::<Vec<_>>()
        };
        assert_eq!(tags(&sim, n1), [3]);
        assert_eq!(tags(&sim, n2), [7, 1, 4]);
        assert_eq!(tags(&sim, n3), [7, 1]);
        assert_eq!(sim.captured(sw).len(), 6);
        let pcap = sim.pcap(sw);
        assert_eq!(pcap.len(), 24 + 6 * (16 + 60));
        assert!(sim.link_stats(sw).is_balanced());
    }

    #[test]
    fn timers_fire_at_their_deadline() {
        let mut sim = Sim::new(0);
        let a = sim.add_node("a", Script::sending([(Instant::from_secs(3600), frame(0, 60))]));
        let b = sim.add_node("b", Script::default());
        sim.connect(a, b, Impairments::clean());
        sim.run_until(|sim| !sim.node::<Script>(b).received.is_empty(), 10)
            .unwrap();
        assert_eq!(sim.now(), Instant::from_secs(3600));
        assert!(sim.steps() <= 2, "an hour of nothing took {} steps", sim.steps());
        assert_eq!(sim.node::<Script>(a).timeouts, 1);
    }

    #[test]
    fn runs_fail_rather_than_hang() {
        let mut sim = Sim::new(0);
        let a = sim.add_node("a", Script::sending(burst(3, ms(1), 60)));
        let b = sim.add_node("b", Script::default());
        sim.connect(a, b, Impairments::clean());
        let err = sim.run_until(|_| false, 100).unwrap_err();
        assert_eq!(
            err,
            SimError::Idle {
                now: Instant::from_millis(2)
            }
        );
        let mut sim = Sim::new(0);
        let a = sim.add_node("a", Script::sending(burst(1000, ms(1), 60)));
        let b = sim.add_node("b", Script::default());
        sim.connect(a, b, Impairments::clean());
        let err = sim.run_until(|_| false, 10).unwrap_err();
        assert!(matches!(err, SimError::StepLimit { steps: 10, .. }), "{err}");
        let before = sim.now();
        sim.run_for(ms(100)).unwrap();
        assert_eq!(sim.now(), before + ms(100));
        assert_eq!(
            sim.node::<Script>(b).received.len() as u64,
            before.total_millis() + 101
        );
    }

    /// A node whose timer never clears.
    struct Stuck;

    impl Node for Stuck {
        fn handle_frame(&mut self, _: Instant, _: &[u8]) {}
        fn handle_timeout(&mut self, _: Instant) {}
        fn poll_transmit(&mut self, _: Instant, _: &mut [u8]) -> Option<usize> {
            None
        }
        fn poll_timeout(&mut self) -> Option<Instant> {
            Some(Instant::from_millis(5))
        }
    }

    #[test]
    fn a_timer_that_never_clears_is_a_livelock() {
        let mut sim = Sim::new(0);
        sim.add_node("stuck", Stuck);
        let err = sim.run_for(ms(10)).unwrap_err();
        assert_eq!(
            err,
            SimError::Livelock {
                now: Instant::from_millis(5),
                nodes: vec!["stuck".into()]
            }
        );
        assert!(err.to_string().contains("without the clock moving"), "{err}");
    }

    #[test]
    fn for_each_seed_names_the_failing_seed() {
        let mut seen = Vec::new();
        run_seeds(0..5, |seed| {
            seen.push(seed);
            Ok::<(), String>(())
        });
        assert_eq!(seen, [0, 1, 2, 3, 4]);
        let err = std::panic::catch_unwind(|| {
            run_seeds(10..20, |seed| if seed == 13 { Err("boom") } else { Ok(()) })
        })
        .unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(msg.starts_with("seed 13 failed: boom"), "{msg}");
        let err = std::panic::catch_unwind(|| {
            run_seeds(0..3, |seed| {
                assert_ne!(seed, 2, "two is right out");
                Ok::<(), String>(())
            })
        })
        .unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(msg.starts_with("seed 2 failed: panicked: assertion"), "{msg}");
    }

    #[test]
    fn rng_is_reproducible_and_uniform_enough() {
        let mut a = Rng::new(1);
        let mut b = Rng::new(1);
        assert!((0..100).all(|_| a.next_u64() == b.next_u64()));
        let mut buckets = [0u32; 10];
        for _ in 0..10_000 {
            buckets[a.below(10) as usize] += 1;
        }
        assert!(buckets.iter().all(|&n| (800..1200).contains(&n)), "{buckets:?}");
    }
}
