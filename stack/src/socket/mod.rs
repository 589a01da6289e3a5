//! Sockets, the slab that owns them, and the queue of their events.
//!
//! A [`SocketHandle`] names a slot and its generation, so a handle kept
//! after `close` can never reach the socket that later reuses the slot.
//! Nothing here knows about the interface: protocol code that needs to
//! reach a socket or signal an event gets the [`SocketSet`].

pub(crate) mod tcp;
pub(crate) mod udp;

use crate::wire::UnreachableCode;
use core::fmt;
use core::net::{Ipv4Addr, SocketAddrV4};
use std::collections::VecDeque;

/// Event kinds, as bits of a socket's `queued_events`.
pub(crate) const EV_READABLE: u8 = 1;
pub(crate) const EV_WRITABLE: u8 = 2;
pub(crate) const EV_ERROR: u8 = 4;
pub(crate) const EV_CONNECTED: u8 = 8;
pub(crate) const EV_CLOSED: u8 = 16;

/// Names one socket of an [`Interface`](crate::Interface).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct SocketHandle {
    index: u32,
    generation: u32,
}

impl fmt::Display for SocketHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}.{}", self.index, self.generation)
    }
}

/// An error reported to a socket by the network: an ICMP message that quotes
/// a datagram the socket sent (RFC 1122 3.2.2.1, 4.1.3.3).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SocketError {
    /// Destination unreachable, reported by `reporter` for a datagram to `dst`.
    Unreachable {
        reporter: Ipv4Addr,
        dst: SocketAddrV4,
        code: UnreachableCode,
        /// RFC 1191: the next-hop MTU of a "fragmentation needed" message, if given.
        next_hop_mtu: Option<u16>,
    },
    /// Time exceeded in transit (code 0) or in reassembly (code 1).
    TimeExceeded {
        reporter: Ipv4Addr,
        dst: SocketAddrV4,
        code: u8,
    },
    /// Parameter problem at byte `pointer` of the datagram.
    ParameterProblem {
        reporter: Ipv4Addr,
        dst: SocketAddrV4,
        pointer: u8,
    },
    /// TCP: the peer answered our SYN with a RST (ECONNREFUSED).
    ConnectionRefused,
    /// TCP: the peer reset an established connection (ECONNRESET).
    ConnectionReset,
    /// TCP: retransmissions, keepalives or the user timeout ran out (ETIMEDOUT).
    TimedOut,
}

impl fmt::Display for SocketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocketError::Unreachable {
                reporter,
                dst,
                code,
                next_hop_mtu,
            } => {
                write!(f, "{dst}: {code} (reported by {reporter})")?;
                if let Some(mtu) = next_hop_mtu {
                    write!(f, ", next-hop MTU {mtu}")?;
                }
                Ok(())
            }
            SocketError::TimeExceeded { reporter, dst, code } => {
                let what = if *code == 1 {
                    "fragment reassembly time exceeded"
                } else {
                    "TTL exceeded in transit"
                };
                write!(f, "{dst}: {what} (reported by {reporter})")
            }
            SocketError::ParameterProblem {
                reporter,
                dst,
                pointer,
            } => {
                write!(
                    f,
                    "{dst}: parameter problem at byte {pointer} (reported by {reporter})"
                )
            }
            SocketError::ConnectionRefused => f.write_str("connection refused"),
            SocketError::ConnectionReset => f.write_str("connection reset by peer"),
            SocketError::TimedOut => f.write_str("connection timed out"),
        }
    }
}

impl std::error::Error for SocketError {}

pub(crate) enum Socket {
    Udp(udp::UdpSocket),
    Tcp(tcp::TcpSocket),
}

impl Socket {
    pub fn as_udp(&self) -> Option<&udp::UdpSocket> {
        match self {
            Socket::Udp(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_udp_mut(&mut self) -> Option<&mut udp::UdpSocket> {
        match self {
            Socket::Udp(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_tcp(&self) -> Option<&tcp::TcpSocket> {
        match self {
            Socket::Tcp(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_tcp_mut(&mut self) -> Option<&mut tcp::TcpSocket> {
        match self {
            Socket::Tcp(s) => Some(s),
            _ => None,
        }
    }

    /// Event kinds queued for this socket, so each is queued at most once.
    pub fn queued_events(&mut self) -> &mut u8 {
        match self {
            Socket::Udp(s) => &mut s.queued_events,
            Socket::Tcp(s) => &mut s.queued_events,
        }
    }
}

struct Slot {
    generation: u32,
    socket: Option<Socket>,
}

/// The socket slab: O(1) insert, lookup and remove, bounded in size, and
/// the events queued for its sockets (at most one of each kind per socket).
pub(crate) struct SocketSet {
    slots: Vec<Slot>,
    free: Vec<u32>,
    len: usize,
    capacity: usize,
    events: VecDeque<(SocketHandle, u8)>,
}

impl SocketSet {
    pub fn new(capacity: usize) -> Self {
        SocketSet {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
            capacity,
            events: VecDeque::new(),
        }
    }

    /// Queue an event of `kind` (an `EV_*` bit) for `handle`, unless one
    /// is queued already.
    pub fn push_event(&mut self, handle: SocketHandle, kind: u8) {
        if let Some(s) = self.get_mut(handle) {
            let queued = s.queued_events();
            if *queued & kind == 0 {
                *queued |= kind;
                self.events.push_back((handle, kind));
            }
        }
    }

    /// The oldest queued event of a socket still open, its bit cleared.
    pub fn pop_event(&mut self) -> Option<(SocketHandle, u8)> {
        while let Some((handle, kind)) = self.events.pop_front() {
            if let Some(s) = self.get_mut(handle) {
                *s.queued_events() &= !kind;
                return Some((handle, kind));
            }
        }
        None
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// `None` when the configured number of sockets is reached.
    pub fn insert(&mut self, socket: Socket) -> Option<SocketHandle> {
        if self.len >= self.capacity {
            return None;
        }
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    socket: None,
                });
                u32::try_from(self.slots.len() - 1).ok()?
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.socket = Some(socket);
        self.len += 1;
        Some(SocketHandle {
            index,
            generation: slot.generation,
        })
    }

    pub fn get(&self, h: SocketHandle) -> Option<&Socket> {
        let slot = self.slots.get(h.index as usize)?;
        (slot.generation == h.generation)
            .then_some(slot.socket.as_ref())
            .flatten()
    }

    pub fn get_mut(&mut self, h: SocketHandle) -> Option<&mut Socket> {
        let slot = self.slots.get_mut(h.index as usize)?;
        (slot.generation == h.generation)
            .then_some(slot.socket.as_mut())
            .flatten()
    }

    pub fn remove(&mut self, h: SocketHandle) -> Option<Socket> {
        let slot = self.slots.get_mut(h.index as usize)?;
        if slot.generation != h.generation {
            return None;
        }
        let socket = slot.socket.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(h.index);
        self.len -= 1;
        Some(socket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp() -> Socket {
        Socket::Udp(udp::UdpSocket::new(
            SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7),
            4,
            100,
        ))
    }

    #[test]
    fn stale_handles_do_not_reach_new_sockets() {
        let mut set = SocketSet::new(2);
        let a = set.insert(udp()).unwrap();
        let b = set.insert(udp()).unwrap();
        assert!(set.insert(udp()).is_none(), "capacity is a hard bound");
        assert!(set.remove(a).is_some());
        let c = set.insert(udp()).unwrap();
        assert_ne!(a, c);
        assert!(set.get(a).is_none());
        assert!(set.get(c).is_some());
        assert!(set.get(b).is_some());
        assert!(set.remove(a).is_none());
        assert_eq!(set.len(), 2);
    }
}
