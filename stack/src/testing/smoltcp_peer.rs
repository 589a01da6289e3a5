//! smoltcp as a simulator node: an independent TCP/IP implementation to
//! test tapir against.
//!
//! Two stacks written by the same people can agree on a misreading of an
//! RFC; a stack written by others will not. [`SmoltcpPeer`] wraps smoltcp's
//! `Interface` and `SocketSet` around a device made of two queues (frames
//! from the simulator, frames for it) and implements [`Node`], so it plugs
//! into a [`Sim`] like a tapir host. Tests add smoltcp sockets through
//! [`SmoltcpPeer::sockets_mut`] (or the small helpers below) and call them
//! between steps.
//!
//! smoltcp is itself sans-IO and reads no clock, so it stays as
//! deterministic as tapir: our [`Instant`] and smoltcp's are both
//! microseconds since the simulation's epoch, converted one to one.
//!
//! ```
//! use tapir_stack::testing::sim::{host_ip, Impairments, Sim};
//! use tapir_stack::testing::smoltcp_peer::smoltcp::wire::IpAddress;
//!
//! let mut sim = Sim::new(1);
//! let tapir = sim.add_host(2);
//! let peer = sim.add_smoltcp(3);
//! sim.connect(tapir, peer, Impairments::clean());
//! let rx = sim.iface(tapir).udp_bind("0.0.0.0:7".parse().unwrap()).unwrap();
//! let tx = sim.smoltcp(peer).add_udp_socket(5000);
//! sim.smoltcp(peer).udp_socket(tx).send_slice(b"hi", (IpAddress::from(host_ip(2)), 7)).unwrap();
//! let mut buf = [0u8; 16];
//! sim.run_until(|sim| sim.iface(tapir).udp_recv_from(rx, &mut buf).is_ok(), 100).unwrap();
//! assert_eq!(&buf[..2], b"hi");
//! ```

use super::sim::{host_ip, host_mac, Node, NodeId, Sim};
use crate::time::Instant;
use crate::wire::{EthernetAddress, Ipv4Cidr};
use std::collections::VecDeque;

pub use smoltcp;
use smoltcp::iface::{Config, Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::{icmp, tcp, udp};
use smoltcp::wire::{HardwareAddress, IpCidr, IpListenEndpoint};

/// Our clock reading as smoltcp's (both count microseconds from the same epoch).
pub fn to_smoltcp(t: Instant) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros(i64::try_from(t.total_micros()).unwrap_or(i64::MAX))
}

/// smoltcp's clock reading as ours; times before the epoch become the epoch.
pub fn from_smoltcp(t: smoltcp::time::Instant) -> Instant {
    Instant::from_micros(u64::try_from(t.total_micros()).unwrap_or(0))
}

/// The device smoltcp sees: frames the simulator delivered, waiting to be
/// read, and frames smoltcp wrote, waiting for the simulator.
#[derive(Debug, Default)]
pub struct QueueDevice {
    rx: VecDeque<Vec<u8>>,
    tx: VecDeque<Vec<u8>>,
    /// IP MTU.
    mtu: usize,
}

#[doc(hidden)]
pub struct RxToken(Vec<u8>);

#[doc(hidden)]
pub struct TxToken<'a>(&'a mut VecDeque<Vec<u8>>);

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0; len];
        let r = f(&mut frame);
        self.0.push_back(frame);
        r
    }
}

impl Device for QueueDevice {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _now: smoltcp::time::Instant) -> Option<(RxToken, TxToken<'_>)> {
        let frame = self.rx.pop_front()?;
        Some((RxToken(frame), TxToken(&mut self.tx)))
    }

    fn transmit(&mut self, _now: smoltcp::time::Instant) -> Option<TxToken<'_>> {
        // The simulator drains the queue at every step, so it never fills.
        Some(TxToken(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        // smoltcp counts the Ethernet header in the MTU.
        caps.max_transmission_unit = self.mtu + 14;
        // Checksums computed and verified in software (the default).
        caps
    }
}

/// A smoltcp host as a simulator node. See the module docs.
pub struct SmoltcpPeer {
    iface: Interface,
    sockets: SocketSet<'static>,
    device: QueueDevice,
    now: Instant,
}

impl SmoltcpPeer {
    /// A smoltcp host with this MAC and address, an IP MTU of 1500, and
    /// `seed` for everything smoltcp randomises (IP IDs, ports, ISNs).
    pub fn new(mac: EthernetAddress, cidr: Ipv4Cidr, seed: u64) -> Self {
        Self::with_mtu(mac, cidr, seed, 1500)
    }

    /// [`new`](Self::new) with another IP MTU.
    pub fn with_mtu(mac: EthernetAddress, cidr: Ipv4Cidr, seed: u64, mtu: usize) -> Self {
        let mut device = QueueDevice {
            mtu,
            ..QueueDevice::default()
        };
        let hw = HardwareAddress::Ethernet(smoltcp::wire::EthernetAddress(mac.0));
        let mut config = Config::new(hw);
        config.random_seed = seed;
        let mut iface = Interface::new(config, &mut device, to_smoltcp(Instant::ZERO));
        iface.update_ip_addrs(|addrs| {
            addrs
                .push(IpCidr::new(cidr.addr.into(), cidr.prefix_len))
                .expect("room for one address");
        });
        SmoltcpPeer {
            iface,
            sockets: SocketSet::new(Vec::new()),
            device,
            now: Instant::ZERO,
        }
    }

    /// Host `n` of the simulator's 10.77.0.0/24 (see
    /// [`host_config`](super::sim::host_config)).
    pub fn host(n: u8, seed: u64) -> Self {
        let cidr = Ipv4Cidr::new(host_ip(n), 24).expect("valid prefix");
        Self::new(host_mac(n), cidr, seed)
    }

    pub fn iface_mut(&mut self) -> &mut Interface {
        &mut self.iface
    }

    pub fn sockets_mut(&mut self) -> &mut SocketSet<'static> {
        &mut self.sockets
    }

    /// The latest time the simulator gave this node.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Let smoltcp process what it received and queue what it has to send.
    /// The simulator calls this; a test rarely needs to.
    pub fn poll(&mut self) -> PollResult {
        self.iface
            .poll(to_smoltcp(self.now), &mut self.device, &mut self.sockets)
    }

    /// Add a UDP socket bound to `port`, with room for 64 datagrams and
    /// 256 KiB each way.
    pub fn add_udp_socket(&mut self, port: u16) -> SocketHandle {
        let buffer = || udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 64], vec![0; 256 * 1024]);
        let mut socket = udp::Socket::new(buffer(), buffer());
        socket
            .bind(IpListenEndpoint::from(port))
            .expect("a nonzero port binds");
        self.sockets.add(socket)
    }

    pub fn udp_socket(&mut self, handle: SocketHandle) -> &mut udp::Socket<'static> {
        self.sockets.get_mut(handle)
    }

    /// Add an ICMP socket for echo replies with identifier `ident`, with
    /// room for 64 messages and 64 KiB each way.
    pub fn add_icmp_socket(&mut self, ident: u16) -> SocketHandle {
        let buffer = || icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 64], vec![0; 64 * 1024]);
        let mut socket = icmp::Socket::new(buffer(), buffer());
        socket
            .bind(icmp::Endpoint::Ident(ident))
            .expect("an identifier binds");
        self.sockets.add(socket)
    }

    /// Add a TCP socket with `buffer` bytes each way, listening on `port`.
    pub fn add_tcp_listener(&mut self, port: u16, buffer: usize) -> SocketHandle {
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; buffer]),
            tcp::SocketBuffer::new(vec![0; buffer]),
        );
        socket.listen(port).expect("a nonzero port listens");
        self.sockets.add(socket)
    }

    /// Add a TCP socket with `buffer` bytes each way, connecting from
    /// `local_port` to `remote`.
    pub fn add_tcp_client(
        &mut self,
        remote: core::net::SocketAddrV4,
        local_port: u16,
        buffer: usize,
    ) -> SocketHandle {
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; buffer]),
            tcp::SocketBuffer::new(vec![0; buffer]),
        );
        let remote = (smoltcp::wire::IpAddress::Ipv4(*remote.ip()), remote.port());
        socket
            .connect(self.iface.context(), remote, local_port)
            .expect("connect starts");
        self.sockets.add(socket)
    }

    pub fn tcp_socket(&mut self, handle: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut(handle)
    }

    pub fn icmp_socket(&mut self, handle: SocketHandle) -> &mut icmp::Socket<'static> {
        self.sockets.get_mut(handle)
    }
}

impl Node for SmoltcpPeer {
    fn handle_frame(&mut self, now: Instant, frame: &[u8]) {
        self.now = now;
        self.device.rx.push_back(frame.to_vec());
        self.poll();
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        self.poll();
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        self.now = now;
        if self.device.tx.is_empty() {
            // Sockets may have been written to since the last poll.
            self.poll();
        }
        let frame = self.device.tx.pop_front()?;
        assert!(
            frame.len() <= buf.len(),
            "smoltcp wrote a {}-byte frame",
            frame.len()
        );
        buf[..frame.len()].copy_from_slice(&frame);
        Some(frame.len())
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        self.iface
            .poll_at(to_smoltcp(self.now), &self.sockets)
            .map(from_smoltcp)
    }
}

impl Sim {
    /// Add a smoltcp host `n` (10.77.0.n/24) with a seed derived from the
    /// simulation's.
    pub fn add_smoltcp(&mut self, n: u8) -> NodeId {
        let seed = self.seed() ^ 0x5eed_0000_0000_0000 ^ u64::from(n);
        self.add_node(format!("smoltcp {}", host_ip(n)), SmoltcpPeer::host(n, seed))
    }

    /// The smoltcp peer of a node added with [`add_smoltcp`](Self::add_smoltcp).
    pub fn smoltcp(&mut self, id: NodeId) -> &mut SmoltcpPeer {
        self.node_mut(id)
    }
}
