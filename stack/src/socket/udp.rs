//! UDP sockets (RFC 768, RFC 1122 4.1).

use super::SocketError;
use crate::storage::PacketQueue;
use core::fmt;
use core::net::SocketAddrV4;

/// A bound UDP socket: its address and its queue of received datagrams.
/// Sent datagrams go straight to the interface's transmit queue.
pub(crate) struct UdpSocket {
    pub local: SocketAddrV4,
    pub rx: PacketQueue<SocketAddrV4>,
    /// The last ICMP error for a datagram we sent (like SO_ERROR).
    pub error: Option<SocketError>,
    /// A send was refused for lack of queue space; say Writable when there is.
    pub blocked: bool,
    /// Event kinds queued for this socket, so each is queued at most once.
    pub queued_events: u8,
    /// IP_TOS: the TOS byte of every datagram it sends.
    pub tos: u8,
}

impl UdpSocket {
    pub fn new(local: SocketAddrV4, rx_datagrams: usize, rx_bytes: usize) -> Self {
        UdpSocket {
            local,
            rx: PacketQueue::new(rx_datagrams, rx_bytes),
            error: None,
            blocked: false,
            queued_events: 0,
            tos: 0,
        }
    }
}

/// Why `udp_bind` failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpBindError {
    /// Another socket has the port.
    AddrInUse,
    /// The address is not ours (nor unspecified).
    AddrNotAvailable,
    /// No ephemeral port is free.
    NoFreePort,
    /// The configured socket limit is reached.
    TooManySockets,
}

/// Why `udp_send_to` failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpSendError {
    /// The handle names no open UDP socket.
    BadHandle,
    /// More than 65507 bytes: it cannot fit one IPv4 datagram.
    TooLarge,
    /// Destination address or port 0.
    InvalidDestination,
    /// Off-link and no gateway.
    NoRoute,
    /// The transmit queue is full; an [`Event::Writable`](crate::Event) follows when it drains.
    WouldBlock,
}

/// Why `udp_recv_from` returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpRecvError {
    BadHandle,
    /// No datagram is queued; an [`Event::Readable`](crate::Event) follows when one arrives.
    WouldBlock,
}

impl fmt::Display for UdpBindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UdpBindError::AddrInUse => "address in use",
            UdpBindError::AddrNotAvailable => "address not available on this interface",
            UdpBindError::NoFreePort => "no free ephemeral port",
            UdpBindError::TooManySockets => "socket limit reached",
        })
    }
}

impl fmt::Display for UdpSendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UdpSendError::BadHandle => "not an open UDP socket",
            UdpSendError::TooLarge => "datagram larger than 65507 bytes",
            UdpSendError::InvalidDestination => "destination address or port is zero",
            UdpSendError::NoRoute => "no route to host",
            UdpSendError::WouldBlock => "transmit queue full",
        })
    }
}

impl fmt::Display for UdpRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UdpRecvError::BadHandle => "not an open UDP socket",
            UdpRecvError::WouldBlock => "no datagram queued",
        })
    }
}

impl std::error::Error for UdpBindError {}
impl std::error::Error for UdpSendError {}
impl std::error::Error for UdpRecvError {}
