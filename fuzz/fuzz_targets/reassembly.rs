//! IPv4 fragment reassembly through a whole interface: honest fragments of
//! a few UDP datagrams in any order, size, overlap and repetition, mixed
//! with conflicting rewrites of them (teardrop), foreign fragments with
//! arbitrary fields, and time. Invariants, besides the harness's:
//!
//! - the bytes held by reassembly stay within the configured budget, and
//!   the datagrams in progress within their limit;
//! - a datagram the UDP socket receives is exactly the one that was
//!   fragmented (unless the input also sent conflicting bytes for it);
//! - after the attack, once the reassembly timeout has passed, a cleanly
//!   fragmented datagram is delivered exactly.
#![no_main]

use arbitrary::Arbitrary;
use core::net::{Ipv4Addr, SocketAddrV4};
use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;
use tapir_fuzz::{config, Harness};
use tapir_stack::testing::{self, PEER_IP, PEER_MAC, TAPIR_IP, TAPIR_MAC};
use tapir_stack::wire::{EtherType, Protocol};
use tapir_stack::Duration;

const PORT: u16 = 7;
/// Honest datagrams per input.
const DATAGRAMS: u8 = 4;
/// A second peer on the link whose fragments carry arbitrary fields. Its
/// source address keeps them out of the honest datagrams' reassemblies.
const STRANGER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 3);

/// Datagram `d`, generation `generation`: a UDP datagram to port 7 whose
/// payload names itself, then a position-dependent pattern.
fn datagram(d: u8, generation: u8, len: u16) -> Vec<u8> {
    let len = 3 + usize::from(len) % 4000;
    let payload: Vec<u8> = (0..len)
        .map(|i| match i {
            0 => d,
            1 => generation,
            2 => (len % 251) as u8,
            _ => {
                (i as u32)
                    .wrapping_mul(2_654_435_761)
                    .rotate_left(u32::from(d) + 3) as u8
                    ^ generation
            }
        })
        .collect();
    testing::udp_datagram(
        SocketAddrV4::new(PEER_IP, 1000 + u16::from(d)),
        SocketAddrV4::new(TAPIR_IP, PORT),
        &payload,
    )
}

fn ident(d: u8, generation: u8) -> u16 {
    u16::from(d % DATAGRAMS) << 8 | u16::from(generation)
}

fn frame(src: Ipv4Addr, protocol: Protocol, ident: u16, more: bool, offset: usize, bytes: &[u8]) -> Vec<u8> {
    testing::ethernet(
        TAPIR_MAC,
        PEER_MAC,
        EtherType::Ipv4,
        &testing::ipv4_packet(src, TAPIR_IP, protocol, ident, more, offset, bytes),
    )
}

/// The honest fragment of `dgram` starting at `start` (a multiple of 8) and
/// about `len` long; all but the last fragment are a multiple of 8 long
/// (RFC 791 3.2).
fn piece(dgram: &[u8], start: usize, len: usize) -> Option<(usize, &[u8], bool)> {
    let start = (start % dgram.len()) / 8 * 8;
    let mut end = (start + len.max(1)).min(dgram.len());
    if end < dgram.len() {
        end = start + (end - start) / 8 * 8;
    }
    (end > start).then(|| (start, &dgram[start..end], end < dgram.len()))
}

#[derive(Arbitrary, Debug)]
enum Action {
    /// An honest fragment of datagram `d` (offset in 8-byte units).
    Fragment {
        d: u8,
        offset: u16,
        len: u16,
    },
    /// Datagram `d` cut into fragments of `size` units of 8 bytes, sent
    /// forwards or backwards, with one of them left out if `skip` says so.
    Whole {
        d: u8,
        size: u8,
        reverse: bool,
        skip: Option<u8>,
    },
    /// An honest fragment with its bytes XORed with `mask`: overlapping
    /// data that conflicts with what the reassembler may hold.
    Conflict {
        d: u8,
        offset: u16,
        len: u16,
        mask: u8,
    },
    /// A fragment from the stranger with any fields.
    Stranger {
        protocol: u8,
        ident: u16,
        more: bool,
        offset: u16,
        bytes: Vec<u8>,
    },
    /// Start datagram `d` afresh under a new identification.
    NextGeneration {
        d: u8,
    },
    Advance {
        ms: u16,
    },
    Recv,
}

struct Check {
    lens: [u16; DATAGRAMS as usize],
    generation: [u8; DATAGRAMS as usize],
    /// (d, generation) that were sent conflicting bytes: whatever is
    /// delivered for them is not checked.
    tainted: HashSet<(u8, u8)>,
    delivered: usize,
}

impl Check {
    fn dgram(&self, d: u8) -> Vec<u8> {
        let d = d % DATAGRAMS;
        datagram(d, self.generation[usize::from(d)], self.lens[usize::from(d)])
    }

    fn recv_all(&mut self, h: &mut Harness, udp: tapir_stack::SocketHandle) {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = h.iface.udp_recv_from(udp, &mut buf) {
            assert!(n <= buf.len());
            if *from.ip() != PEER_IP || !(1000..1000 + u16::from(DATAGRAMS)).contains(&from.port()) {
                continue;
            }
            let d = (from.port() - 1000) as u8;
            assert!(n >= 3, "a {n}-byte datagram from an honest sender");
            let generation = buf[1];
            if self.tainted.contains(&(d, generation)) {
                continue;
            }
            let want = datagram(d, generation, self.lens[usize::from(d)]);
            assert_eq!(
                buf[..n],
                want[8..],
                "datagram {d} generation {generation} reassembled wrong"
            );
            self.delivered += 1;
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    lens: [u16; DATAGRAMS as usize],
    actions: Vec<Action>,
}

fuzz_target!(|input: Input| {
    let mut cfg = config();
    // Small limits, so the fuzzer meets them.
    cfg.reassembly.budget_bytes = 12 * 1024;
    cfg.reassembly.max_datagrams = 4;
    cfg.reassembly.max_fragments = 16;
    cfg.reassembly.timeout = Duration::from_secs(5);
    let (budget, max_datagrams, timeout) = (
        cfg.reassembly.budget_bytes,
        cfg.reassembly.max_datagrams,
        cfg.reassembly.timeout,
    );
    let mut h = Harness::new(cfg);
    let udp = h
        .iface
        .udp_bind(SocketAddrV4::new(TAPIR_IP, PORT))
        .expect("bind UDP");
    h.feed(&testing::arp_request_from_peer(TAPIR_IP));
    let mut c = Check {
        lens: input.lens,
        generation: [0; DATAGRAMS as usize],
        tainted: HashSet::new(),
        delivered: 0,
    };

    for action in input.actions.into_iter().take(256) {
        match action {
            Action::Fragment { d, offset, len } => {
                let dgram = c.dgram(d);
                let g = c.generation[usize::from(d % DATAGRAMS)];
                if let Some((start, bytes, more)) = piece(&dgram, usize::from(offset) * 8, usize::from(len)) {
                    h.feed(&frame(PEER_IP, Protocol::Udp, ident(d, g), more, start, bytes));
                }
            }
            Action::Whole {
                d,
                size,
                reverse,
                skip,
            } => {
                let dgram = c.dgram(d);
                let g = c.generation[usize::from(d % DATAGRAMS)];
                let size = (usize::from(size) % 200 + 1) * 8;
                let mut frames: Vec<Vec<u8>> = dgram
                    .chunks(size)
                    .enumerate()
                    .map(|(i, chunk)| {
                        let more = (i + 1) * size < dgram.len();
                        frame(PEER_IP, Protocol::Udp, ident(d, g), more, i * size, chunk)
                    })
                    .collect();
                if reverse {
                    frames.reverse();
                }
                if let Some(s) = skip {
                    frames.remove(usize::from(s) % frames.len());
                }
                for f in frames {
                    h.feed(&f);
                    check_bounds(&h, budget, max_datagrams);
                }
            }
            Action::Conflict { d, offset, len, mask } => {
                let dgram = c.dgram(d);
                let g = c.generation[usize::from(d % DATAGRAMS)];
                if let Some((start, bytes, more)) = piece(&dgram, usize::from(offset) * 8, usize::from(len)) {
                    let bytes: Vec<u8> = bytes.iter().map(|b| b ^ mask).collect();
                    c.tainted.insert((d % DATAGRAMS, g));
                    h.feed(&frame(PEER_IP, Protocol::Udp, ident(d, g), more, start, &bytes));
                }
            }
            Action::Stranger {
                protocol,
                ident,
                more,
                offset,
                bytes,
            } => {
                let offset = usize::from(offset) * 8 % 65536;
                let bytes = &bytes[..bytes.len().min(1480)];
                h.feed(&frame(
                    STRANGER,
                    Protocol::from(protocol),
                    ident,
                    more,
                    offset,
                    bytes,
                ));
            }
            Action::NextGeneration { d } => {
                let g = &mut c.generation[usize::from(d % DATAGRAMS)];
                *g = g.wrapping_add(1);
            }
            Action::Advance { ms } => {
                h.advance(Duration::from_millis(u64::from(ms) * 4));
            }
            Action::Recv => c.recv_all(&mut h, udp),
        }
        check_bounds(&h, budget, max_datagrams);
    }
    c.recv_all(&mut h, udp);

    // Heal: once every stale reassembly has timed out, a cleanly
    // fragmented datagram under a new identification gets through.
    h.advance(timeout + Duration::from_secs(1));
    check_bounds(&h, budget, max_datagrams);
    assert_eq!(h.iface.reassembly_bytes(), 0, "fragments held past the timeout");
    let d = 0;
    c.generation[0] = c.generation[0].wrapping_add(1);
    c.tainted.remove(&(d, c.generation[0]));
    let dgram = c.dgram(d);
    let before = c.delivered;
    for (i, chunk) in dgram.chunks(512).enumerate() {
        let more = (i + 1) * 512 < dgram.len();
        h.feed(&frame(
            PEER_IP,
            Protocol::Udp,
            ident(d, c.generation[0]),
            more,
            i * 512,
            chunk,
        ));
    }
    c.recv_all(&mut h, udp);
    assert_eq!(
        c.delivered,
        before + 1,
        "a clean datagram was not delivered after the attack"
    );
});

fn check_bounds(h: &Harness, budget: usize, max_datagrams: usize) {
    let held = h.iface.reassembly_bytes();
    assert!(held <= budget, "reassembly holds {held} bytes > budget {budget}");
    let n = h.iface.reassemblies_in_progress();
    assert!(n <= max_datagrams, "{n} reassemblies > limit {max_datagrams}");
}
