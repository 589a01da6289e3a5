//! The ARP neighbor cache (RFC 826, with the states of RFC 1122 2.3.2.1 and
//! Linux's NUD machine in simplified form).
//!
//! An entry is one of:
//! - `Incomplete`: we broadcast requests every `retry_interval`, holding the
//!   packets that wait for the answer; after `max_requests` unanswered
//!   requests the packets are dropped and the entry forgotten (RFC 1122
//!   2.3.2.2 asks that at least one packet be queued, and that the flood of
//!   requests be limited to one per second).
//! - `Reachable`: confirmed within `reachable_time`.
//! - `Probe`: the confirmation is older than `reachable_time`. We keep
//!   sending to the known address while unicasting requests to re-confirm
//!   it (RFC 1122 2.3.2.1 "unicast poll"); if none is answered the entry is
//!   removed and the next packet resolves afresh.

use super::egress::OutDatagram;
use crate::config::ArpConfig;
use crate::hash::{Keyed, KeyedMap};
use crate::stats::Stats;
use crate::time::Instant;
use crate::wire::{ArpOperation, ArpRepr, EthernetAddress};
use core::net::Ipv4Addr;
use std::collections::VecDeque;

/// An ARP packet waiting for the device.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ArpOut {
    pub dst_mac: EthernetAddress,
    pub repr: ArpRepr,
}

/// ARP packets we generate are few (one per resolution attempt or request
/// for us); this bounds the burst a flood of requests can cause.
pub(crate) const ARP_QUEUE_LEN: usize = 64;

enum State {
    Incomplete {
        requests: u32,
        next_retry: Instant,
        pending: VecDeque<OutDatagram>,
    },
    Reachable {
        mac: EthernetAddress,
        confirmed: Instant,
    },
    Probe {
        mac: EthernetAddress,
        probes: u32,
        next_retry: Instant,
    },
}

struct Entry {
    state: State,
    /// When the entry last changed; the eviction order.
    updated: Instant,
}

/// What `resolve` did with a datagram.
pub(crate) enum Resolution {
    /// The neighbor is known: send now.
    Ready(EthernetAddress, OutDatagram),
    /// Held until the neighbor answers.
    Queued,
    /// No room to hold it; the caller drops it.
    Dropped(OutDatagram),
}

/// A neighbor as seen from outside, for diagnostics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborInfo {
    pub ip: Ipv4Addr,
    /// `None` while resolving.
    pub mac: Option<EthernetAddress>,
    /// Confirmed within the reachable time.
    pub reachable: bool,
    /// Packets waiting for resolution.
    pub pending: usize,
}

pub(crate) struct NeighborCache {
    config: ArpConfig,
    our_mac: EthernetAddress,
    our_ip: Ipv4Addr,
    entries: KeyedMap<Ipv4Addr, Entry>,
    pending_total: usize,
}

impl NeighborCache {
    pub fn new(config: ArpConfig, our_mac: EthernetAddress, our_ip: Ipv4Addr, hasher: Keyed) -> Self {
        NeighborCache {
            config,
            our_mac,
            our_ip,
            entries: KeyedMap::with_hasher(hasher),
            pending_total: 0,
        }
    }

    fn request(&self, ip: Ipv4Addr, dst_mac: EthernetAddress) -> ArpOut {
        ArpOut {
            dst_mac,
            repr: ArpRepr {
                operation: ArpOperation::Request,
                sender_mac: self.our_mac,
                sender_ip: self.our_ip,
                target_mac: EthernetAddress::ZERO,
                target_ip: ip,
            },
        }
    }

    fn push_arp(queue: &mut VecDeque<ArpOut>, out: ArpOut, stats: &mut Stats) {
        if queue.len() < ARP_QUEUE_LEN {
            queue.push_back(out);
            stats.arp_requests_tx += 1;
        } else {
            stats.tx_queue_full += 1;
        }
    }

    /// The link address for `ip` if it is known (reachable, or stale and
    /// being re-confirmed), for a frame to be written now; `None` if it is
    /// still resolving or unknown, and nothing changes then (the caller
    /// goes through [`Self::resolve`], which holds the datagram). A stale
    /// entry starts its unicast poll here, as in `resolve`.
    pub fn resolved(
        &mut self,
        now: Instant,
        ip: Ipv4Addr,
        arp_out: &mut VecDeque<ArpOut>,
        stats: &mut Stats,
    ) -> Option<EthernetAddress> {
        let reachable_time = self.config.reachable_time;
        let retry = self.config.retry_interval;
        let entry = self.entries.get_mut(&ip)?;
        match entry.state {
            State::Reachable { mac, confirmed } => {
                if now >= confirmed + reachable_time {
                    // Stale: keep using it, but ask the neighbor to confirm.
                    entry.state = State::Probe {
                        mac,
                        probes: 1,
                        next_retry: now + retry,
                    };
                    entry.updated = now;
                    let out = self.request(ip, mac);
                    Self::push_arp(arp_out, out, stats);
                }
                Some(mac)
            }
            State::Probe { mac, .. } => Some(mac),
            State::Incomplete { .. } => None,
        }
    }

    /// Find the link address for `ip`, starting resolution if needed.
    pub fn resolve(
        &mut self,
        now: Instant,
        ip: Ipv4Addr,
        dgram: OutDatagram,
        arp_out: &mut VecDeque<ArpOut>,
        stats: &mut Stats,
    ) -> Resolution {
        if let Some(mac) = self.resolved(now, ip, arp_out, stats) {
            return Resolution::Ready(mac, dgram);
        }
        let retry = self.config.retry_interval;
        match self.entries.get_mut(&ip) {
            // Answered by `resolved` above.
            Some(Entry {
                state: State::Reachable { mac, .. } | State::Probe { mac, .. },
                ..
            }) => Resolution::Ready(*mac, dgram),
            Some(Entry {
                state: State::Incomplete { pending, .. },
                ..
            }) => {
                if pending.len() >= self.config.pending_per_neighbor
                    || self.pending_total >= self.config.pending_total
                {
                    stats.arp_pending_full += 1;
                    return Resolution::Dropped(dgram);
                }
                pending.push_back(dgram);
                self.pending_total += 1;
                Resolution::Queued
            }
            None => {
                if self.pending_total >= self.config.pending_total || !self.make_room(stats) {
                    stats.arp_pending_full += 1;
                    return Resolution::Dropped(dgram);
                }
                let mut pending = VecDeque::new();
                pending.push_back(dgram);
                self.pending_total += 1;
                self.entries.insert(
                    ip,
                    Entry {
                        state: State::Incomplete {
                            requests: 1,
                            next_retry: now + retry,
                            pending,
                        },
                        updated: now,
                    },
                );
                let out = self.request(ip, EthernetAddress::BROADCAST);
                Self::push_arp(arp_out, out, stats);
                tracing::debug!(%ip, "resolving");
                Resolution::Queued
            }
        }
    }

    /// Ensure there is room for one more entry by evicting the least
    /// recently updated resolved entry. Entries still resolving are never
    /// evicted: their packets would be lost for someone else's.
    fn make_room(&mut self, stats: &mut Stats) -> bool {
        if self.entries.len() < self.config.cache_capacity {
            return true;
        }
        let victim = self
            .entries
            .iter()
            .filter(|(_, e)| !matches!(e.state, State::Incomplete { .. }))
            .min_by_key(|(_, e)| e.updated)
            .map(|(ip, _)| *ip);
        match victim {
            Some(ip) => {
                self.entries.remove(&ip);
                stats.arp_cache_evictions += 1;
                true
            }
            None => false,
        }
    }

    /// Is there an entry for `ip`? (RFC 826's "merge flag").
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.entries.contains_key(&ip)
    }

    /// Record that `ip` is at `mac`. Creates an entry only if `create` (we
    /// were the target of the sender's request, RFC 826); otherwise only an
    /// existing entry is updated, as Linux does with arp_accept=0. Returns
    /// the packets that were waiting, in order.
    pub fn learn(
        &mut self,
        now: Instant,
        ip: Ipv4Addr,
        mac: EthernetAddress,
        create: bool,
        stats: &mut Stats,
    ) -> VecDeque<OutDatagram> {
        let reachable = State::Reachable { mac, confirmed: now };
        if let Some(entry) = self.entries.get_mut(&ip) {
            let old = core::mem::replace(&mut entry.state, reachable);
            entry.updated = now;
            if let State::Incomplete { pending, .. } = old {
                tracing::debug!(%ip, %mac, waiting = pending.len(), "resolved");
                self.pending_total -= pending.len();
                return pending;
            }
        } else if create && self.make_room(stats) {
            self.entries.insert(
                ip,
                Entry {
                    state: reachable,
                    updated: now,
                },
            );
        }
        VecDeque::new()
    }

    /// Retry or give up on resolutions and probes whose time has come.
    /// `failed` receives every packet dropped because its neighbor never
    /// answered.
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        arp_out: &mut VecDeque<ArpOut>,
        stats: &mut Stats,
        mut failed: impl FnMut(OutDatagram),
    ) {
        let max = self.config.max_requests;
        let retry = self.config.retry_interval;
        let mut to_send: Vec<ArpOut> = Vec::new();
        let mut dead: Vec<Ipv4Addr> = Vec::new();
        for (ip, entry) in self.entries.iter_mut() {
            match &mut entry.state {
                State::Incomplete {
                    requests, next_retry, ..
                } if now >= *next_retry => {
                    if *requests >= max {
                        dead.push(*ip);
                    } else {
                        *requests += 1;
                        *next_retry = now + retry;
                        to_send.push(ArpOut {
                            dst_mac: EthernetAddress::BROADCAST,
                            repr: ArpRepr {
                                operation: ArpOperation::Request,
                                sender_mac: self.our_mac,
                                sender_ip: self.our_ip,
                                target_mac: EthernetAddress::ZERO,
                                target_ip: *ip,
                            },
                        });
                    }
                }
                State::Probe {
                    mac,
                    probes,
                    next_retry,
                } if now >= *next_retry => {
                    if *probes >= max {
                        dead.push(*ip);
                    } else {
                        *probes += 1;
                        *next_retry = now + retry;
                        to_send.push(ArpOut {
                            dst_mac: *mac,
                            repr: ArpRepr {
                                operation: ArpOperation::Request,
                                sender_mac: self.our_mac,
                                sender_ip: self.our_ip,
                                target_mac: EthernetAddress::ZERO,
                                target_ip: *ip,
                            },
                        });
                    }
                }
                _ => {}
            }
        }
        for out in to_send {
            Self::push_arp(arp_out, out, stats);
        }
        for ip in dead {
            if let Some(Entry {
                state: State::Incomplete { pending, .. },
                ..
            }) = self.entries.remove(&ip)
            {
                tracing::debug!(%ip, dropped = pending.len(), "resolution failed");
                self.pending_total -= pending.len();
                for d in pending {
                    stats.arp_resolution_failed += 1;
                    failed(d);
                }
            } else {
                tracing::debug!(%ip, "neighbor stopped answering probes");
            }
        }
    }

    /// The next retry deadline. A scan of at most `cache_capacity` entries
    /// (256 by default): cheap next to a frame, and it avoids a second
    /// structure to keep in step. TCP's timers will not work this way.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.entries
            .values()
            .filter_map(|e| match e.state {
                State::Incomplete { next_retry, .. } | State::Probe { next_retry, .. } => Some(next_retry),
                State::Reachable { .. } => None,
            })
            .min()
    }

    pub fn lookup(&self, ip: Ipv4Addr) -> Option<EthernetAddress> {
        match self.entries.get(&ip)?.state {
            State::Reachable { mac, .. } | State::Probe { mac, .. } => Some(mac),
            State::Incomplete { .. } => None,
        }
    }

    pub fn iter(&self, now: Instant) -> impl Iterator<Item = NeighborInfo> + '_ {
        let reachable_time = self.config.reachable_time;
        self.entries.iter().map(move |(ip, e)| match &e.state {
            State::Incomplete { pending, .. } => NeighborInfo {
                ip: *ip,
                mac: None,
                reachable: false,
                pending: pending.len(),
            },
            State::Reachable { mac, confirmed } => NeighborInfo {
                ip: *ip,
                mac: Some(*mac),
                reachable: now < *confirmed + reachable_time,
                pending: 0,
            },
            State::Probe { mac, .. } => NeighborInfo {
                ip: *ip,
                mac: Some(*mac),
                reachable: false,
                pending: 0,
            },
        })
    }
}
