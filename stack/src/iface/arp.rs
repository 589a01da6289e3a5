//! ARP input (RFC 826, RFC 5227) and what happens when resolution fails.

use super::neighbor::{self, ArpOut};
use super::Interface;
use crate::socket::SocketError;
use crate::time::Instant;
use crate::wire::{arp, ArpOperation, ArpRepr, Protocol, UnreachableCode};
use core::net::SocketAddrV4;

impl Interface {
    pub(super) fn arp_input(&mut self, now: Instant, payload: &[u8]) {
        let repr = match ArpRepr::parse(payload) {
            Ok(r) => r,
            Err(arp::ArpError::Truncated) => {
                self.stats.arp_truncated += 1;
                return;
            }
            Err(arp::ArpError::Unsupported) => {
                self.stats.arp_unsupported += 1;
                return;
            }
        };
        let our_ip = self.config.ipv4.addr;
        let sip = repr.sender_ip;
        if !repr.sender_mac.is_unicast()
            || sip.is_broadcast()
            || sip.is_multicast()
            || Some(sip) == self.config.ipv4.broadcast()
        {
            self.stats.arp_bad_sender += 1;
            return;
        }
        if sip == our_ip {
            // Someone else uses our address (RFC 5227 2.4). We keep ours and
            // learn nothing from them.
            self.stats.arp_conflict += 1;
            tracing::debug!(mac = %repr.sender_mac, "ARP conflict for our address");
            return;
        }
        let for_us = repr.target_ip == our_ip;
        if sip.is_unspecified() {
            // RFC 5227 probe: answer it if it asks for our address, so the
            // prober knows the address is taken; learn nothing.
            if for_us && repr.operation == ArpOperation::Request {
                self.stats.arp_requests_rx += 1;
                self.queue_arp_reply(&repr);
            } else {
                self.stats.arp_ignored += 1;
            }
            return;
        }
        // RFC 826: update an existing entry for the sender whatever the
        // packet is; create one only when the packet is a request for us.
        let had_entry = self.neighbors.contains(sip);
        let create = for_us && repr.operation == ArpOperation::Request;
        let ready = self
            .neighbors
            .learn(now, sip, repr.sender_mac, create, &mut self.stats);
        for d in ready {
            self.ready.push(repr.sender_mac, d);
        }
        match repr.operation {
            ArpOperation::Request if for_us => {
                self.stats.arp_requests_rx += 1;
                self.queue_arp_reply(&repr);
            }
            _ if repr.is_gratuitous() => self.stats.arp_gratuitous_rx += 1,
            ArpOperation::Reply if had_entry => self.stats.arp_replies_rx += 1,
            _ => self.stats.arp_ignored += 1,
        }
    }

    pub(super) fn queue_arp_reply(&mut self, request: &ArpRepr) {
        if self.arp_out.len() >= neighbor::ARP_QUEUE_LEN {
            self.stats.tx_queue_full += 1;
            return;
        }
        self.arp_out.push_back(ArpOut {
            dst_mac: request.sender_mac,
            repr: ArpRepr {
                operation: ArpOperation::Reply,
                sender_mac: self.config.mac,
                sender_ip: self.config.ipv4.addr,
                target_mac: request.sender_mac,
                target_ip: request.sender_ip,
            },
        });
        self.stats.arp_replies_tx += 1;
    }

    /// Retry or give up pending resolutions; what was waiting for a neighbor
    /// that never answered is dropped.
    pub(super) fn neighbor_handle_timeout(&mut self, now: Instant) {
        let mut failed = Vec::new();
        self.neighbors
            .handle_timeout(now, &mut self.arp_out, &mut self.stats, |d| failed.push(d));
        for d in failed {
            // Linux turns a failed neighbour resolution into a local ICMP
            // host unreachable, which ends a connect in progress with
            // EHOSTUNREACH (tcp_v4_err); established connections treat it
            // as soft and keep retransmitting.
            if d.protocol == Protocol::Tcp && d.payload.len() >= 4 {
                let local_port = u16::from_be_bytes([d.payload[0], d.payload[1]]);
                let remote = SocketAddrV4::new(d.dst, u16::from_be_bytes([d.payload[2], d.payload[3]]));
                let err = SocketError::Unreachable {
                    reporter: self.config.ipv4.addr,
                    dst: remote,
                    code: UnreachableCode::Host,
                    next_hop_mtu: None,
                };
                // Locally made, so there is no quoted sequence number to check.
                self.tcp_icmp_error(local_port, remote, None, err);
            }
            self.release(d);
        }
    }
}
