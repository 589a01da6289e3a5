//! tapir's runtime: everything that connects the sans-IO `tapir-stack` to
//! real links, real time and real applications.
//!
//! - [`device`]: where frames come from and go to: a Linux TAP
//!   ([`TapDevice`]), an `AF_PACKET` socket on an existing interface
//!   ([`PacketDevice`]), or an in-memory link for tests ([`MemoryDevice`]).
//! - [`driver`]: the one thread that owns the stack and the device, the
//!   handles application threads use to reach the stack, and the
//!   per-socket readiness through which threads and tasks wait.
//! - [`net`]: async, tokio-compatible `TcpListener`, `TcpStream` and
//!   `UdpSocket` (the `tokio::net` API, given the stack handle).
//! - [`tcp`]: blocking, std::net-shaped [`TcpListener`] and [`TcpStream`].
//! - [`udp`]: a blocking, std::net-shaped [`UdpSocket`].
//! - [`impair`]: the link emulator on real devices: a device wrapper
//!   ([`ImpairedDevice`]) and a bridge between two interfaces ([`Bridge`]).
//! - [`pcap`]: capture of every frame in and out.
//! - [`netns`]: network namespaces for tests and demos, and the check that
//!   decides whether kernel tests run here.
//!
//! A minimal program:
//!
//! ```no_run
//! use tapir_harness::{Driver, DriverOptions, TapDevice, TapOptions, UdpSocket};
//! use tapir_stack::wire::{EthernetAddress, Ipv4Cidr};
//! use tapir_stack::{Config, Interface};
//! use std::net::Ipv4Addr;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tap = TapDevice::open(&TapOptions::new("tapir0").kernel_ipv4(Ipv4Addr::new(10, 77, 0, 1), 24))?;
//! let cidr = Ipv4Cidr::new(Ipv4Addr::new(10, 77, 0, 2), 24).expect("valid prefix");
//! let iface = Interface::new(Config::new(EthernetAddress::local_from_seed(1), cidr))?;
//! let driver = Driver::spawn(iface, Box::new(tap), DriverOptions::default())?;
//! let sock = UdpSocket::bind(&driver, "0.0.0.0:7")?;
//! let mut buf = [0u8; 2048];
//! let (n, from) = sock.recv_from(&mut buf)?;
//! sock.send_to(&buf[..n], from)?;
//! # Ok(()) }
//! ```

pub mod device;
pub mod driver;
pub mod impair;
pub mod net;
pub mod netns;
pub mod pcap;
pub mod random;
mod sockerr;
pub mod tcp;
pub mod udp;

pub use device::{Device, MemoryDevice, PacketDevice, TapDevice, TapOptions};
pub use driver::{Driver, DriverHandle, DriverOptions, DriverStats, DriverTask, StackHandle, WaitError};
pub use impair::{Bridge, BridgeStats, ImpairedDevice};
pub use netns::{kernel_tests_allowed, NetNs};
pub use pcap::PcapWriter;
pub use random::{os_random_u64, randomize_config};
pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;
