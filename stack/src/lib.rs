//! tapir's protocol core: Ethernet, ARP, IPv4, ICMP and UDP (TCP follows),
//! as a deterministic state machine.
//!
//! This crate contains no networking code and reads no clock. Frames and
//! the current time go in through [`Interface::handle_frame`] and
//! [`Interface::handle_timeout`]; frames, deadlines and socket events come
//! out through [`Interface::poll_transmit`], [`Interface::poll_timeout`] and
//! [`Interface::poll_event`]. Given the same inputs and the seed in
//! [`Config`], it does the same thing every time, which is what lets us
//! script it, simulate it and fuzz it. The runtime that connects it to a TAP
//! device lives in the `tapir-harness` crate.
//!
//! Layout, bottom up: [`wire`] parses and emits headers; `storage` holds
//! bounded socket buffers; `iface` demultiplexes frames, resolves neighbors,
//! reassembles fragments and queues output; `socket` holds the per-socket
//! state. Read [`Interface`] first.

pub mod config;
mod hash;
mod iface;
pub mod impair;
pub mod offload;
mod socket;
pub mod stats;
pub mod storage;
pub mod time;
pub mod wire;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use config::{
    ArpConfig, Config, ConfigError, IcmpConfig, ReassemblyConfig, SynCookies, TcpConfig, UdpConfig,
};
pub use iface::{Event, Interface, NeighborInfo};
pub use offload::{GsoType, Offload, RxChecksum, RxMeta, Transmit, TxChecksum};
pub use socket::tcp::{
    CongestionAlgorithm, ConnTrace, PmtuDiscover, TcpAcceptError, TcpBindError, TcpConnStats,
    TcpConnectError, TcpListenError, TcpOption, TcpOptionError, TcpRecvError, TcpSendError, TcpShutdownError,
    TcpSocketError, TcpState, TraceSample, UnknownAlgorithm, DEFAULT_TRACE_CAPACITY,
};
pub use socket::udp::{UdpBindError, UdpRecvError, UdpSendError};
pub use socket::{SocketError, SocketHandle};
pub use stats::Stats;
pub use time::{Duration, Instant};
