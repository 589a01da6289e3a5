//! Offloads between two interfaces on a virtual clock: `a` leaves
//! checksums (and with TSO, segmentation) to its "device", which the test
//! plays: it completes checksums and cuts super-segments in software as
//! Linux's TAP would, or hands them whole to `b` with the metadata a TAP
//! reader gets.

use super::*;
use crate::offload::{complete_checksum, TxChecksum};
use crate::testing::{config, PEER_IP, PEER_MAC};
use crate::time::Duration;
use crate::wire::{ipv4, Ipv4Cidr, Ipv4Repr, TcpRepr};
use core::net::SocketAddrV4;

/// How the test's device carries `a`'s frames to `b`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Carry {
    /// Complete checksums and cut super-segments into MSS-sized frames
    /// (what reaches a peer on a wire); `b` verifies everything.
    Software,
    /// Hand each frame over as it is, with the metadata (what a TAP reader
    /// with IFF_VNET_HDR sees from a local sender).
    Meta,
}

struct Pair {
    a: Interface,
    b: Interface,
    now: Instant,
    carry: Carry,
    /// The largest frame `b` was handed, and the super-segments.
    largest_ab: usize,
    supers: u64,
}

impl Pair {
    fn new(offload: Offload, carry: Carry) -> Pair {
        let mut a = Interface::new(config()).unwrap();
        a.set_offload(offload);
        let mut cb = Config::new(PEER_MAC, Ipv4Cidr::new(PEER_IP, 24).unwrap());
        cb.seed = 99;
        let b = Interface::new(cb).unwrap();
        Pair {
            a,
            b,
            now: Instant::from_secs(1),
            carry,
            largest_ab: 0,
            supers: 0,
        }
    }

    fn deliver_ab(&mut self, frame: &mut [u8], tx: Transmit) {
        if tx.gso_size != 0 {
            self.supers += 1;
            // One IPv4 header covering the whole super-segment.
            let total = u16::from_be_bytes([frame[16], frame[17]]) as usize;
            assert_eq!(total + 14, frame.len());
            assert!(
                tx.checksum != TxChecksum::Full,
                "a super-segment's checksum is the device's"
            );
        }
        match self.carry {
            Carry::Meta => {
                let meta = RxMeta {
                    checksum: match tx.checksum {
                        TxChecksum::Full => RxChecksum::None,
                        TxChecksum::Partial { start, offset } => RxChecksum::Partial { start, offset },
                    },
                    gso: if tx.gso_size != 0 {
                        GsoType::TcpV4
                    } else {
                        GsoType::None
                    },
                    gso_size: tx.gso_size,
                };
                self.largest_ab = self.largest_ab.max(frame.len());
                self.b.handle_frame_meta(self.now, frame, meta);
            }
            Carry::Software => {
                for mut piece in segment(frame, tx) {
                    if let TxChecksum::Partial { start, offset } = tx.checksum {
                        assert!(complete_checksum(&mut piece, start.into(), offset.into()));
                    }
                    self.largest_ab = self.largest_ab.max(piece.len());
                    self.b.handle_frame(self.now, &piece);
                }
            }
        }
    }

    fn step(&mut self, until: Instant) -> bool {
        let mut buf = vec![0u8; self.a.max_frame_len()];
        let mut bbuf = vec![0u8; 1600];
        let mut any = false;
        loop {
            let mut moved = false;
            while let Some(tx) = self.a.poll_transmit_meta(self.now, &mut buf) {
                let mut frame = buf[..tx.len].to_vec();
                self.deliver_ab(&mut frame, tx);
                moved = true;
            }
            while let Some(n) = self.b.poll_transmit(self.now, &mut bbuf) {
                self.a.handle_frame(self.now, &bbuf[..n]);
                moved = true;
            }
            if !moved {
                break;
            }
            any = true;
        }
        if any {
            // The applications read and write before time moves on, as
            // they would beside a real driver: a receiver acknowledges
            // unread data when it is read (Linux tcp_cleanup_rbuf).
            return true;
        }
        let next = [self.a.poll_timeout(), self.b.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        match next {
            Some(t) if t <= until => {
                self.now = self.now.max(t);
                self.a.handle_timeout(self.now);
                self.b.handle_timeout(self.now);
                true
            }
            _ => any,
        }
    }

    /// Connect a -> b, send `data` from a, read it at b; returns what b read.
    fn transfer(&mut self, data: &[u8]) -> Vec<u8> {
        let l = self.b.tcp_listen(SocketAddrV4::new(PEER_IP, 80), 8).unwrap();
        let c = self
            .a
            .tcp_connect(self.now, SocketAddrV4::new(PEER_IP, 80))
            .unwrap();
        let until = self.now + Duration::from_secs(60);
        let mut s = None;
        let (mut sent, mut got) = (0, Vec::new());
        let mut buf = vec![0u8; 65536];
        for _ in 0..1_000_000 {
            if s.is_none() && self.b.tcp_can_accept(l) {
                s = Some(self.b.tcp_accept(l).unwrap());
            }
            if sent < data.len() {
                sent += self.a.tcp_send(c, &data[sent..]).unwrap_or(0);
            }
            if let Some(s) = s {
                while let Ok(n) = self.b.tcp_recv(s, &mut buf) {
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
            }
            if got.len() == data.len() {
                let stats = self.a.tcp_stats(c).unwrap();
                assert_eq!(stats.retransmits, 0, "a clean link needs no retransmission");
                return got;
            }
            assert!(
                self.step(until),
                "stalled at {} with {} of {} bytes",
                self.now,
                got.len(),
                data.len()
            );
        }
        panic!("step limit");
    }
}

/// Cut a frame as Linux's GSO does (tcp_gso_segment, inet_gso_segment):
/// the same headers on every piece, sequence numbers advanced, IP length,
/// identification and header checksum per piece, FIN and PSH on the last
/// only, and the partial checksum's pseudo-header length per piece.
fn segment(frame: &[u8], tx: Transmit) -> Vec<Vec<u8>> {
    if tx.gso_size == 0 {
        return vec![frame.to_vec()];
    }
    let hdr = usize::from(tx.header_len);
    let ip = 14;
    let tcp = ip + ipv4::HEADER_LEN;
    let payload = &frame[hdr..];
    let chunks: Vec<&[u8]> = payload.chunks(usize::from(tx.gso_size)).collect();
    let seq0 = u32::from_be_bytes(frame[tcp + 4..tcp + 8].try_into().unwrap());
    let id0 = u16::from_be_bytes([frame[ip + 4], frame[ip + 5]]);
    let src = Ipv4Addr::from(<[u8; 4]>::try_from(&frame[ip + 12..ip + 16]).unwrap());
    let dst = Ipv4Addr::from(<[u8; 4]>::try_from(&frame[ip + 16..ip + 20]).unwrap());
    let mut out = Vec::new();
    let mut off = 0u32;
    for (i, chunk) in chunks.iter().enumerate() {
        let mut f = frame[..hdr].to_vec();
        f.extend_from_slice(chunk);
        let total = (f.len() - ip) as u16;
        f[ip + 2..ip + 4].copy_from_slice(&total.to_be_bytes());
        f[ip + 4..ip + 6].copy_from_slice(&id0.wrapping_add(i as u16).to_be_bytes());
        f[ip + 10..ip + 12].copy_from_slice(&[0, 0]);
        let c = crate::wire::finish16(crate::wire::sum16(0, &f[ip..tcp]));
        f[ip + 10..ip + 12].copy_from_slice(&c.to_be_bytes());
        f[tcp + 4..tcp + 8].copy_from_slice(&seq0.wrapping_add(off).to_be_bytes());
        if i + 1 != chunks.len() {
            f[tcp + 13] &= !(0x01 | 0x08); // FIN, PSH
        }
        let seg_len = f.len() - tcp;
        let pseudo = crate::wire::pseudo_header_sum(src, dst, 6, seg_len);
        f[tcp + 16..tcp + 18].copy_from_slice(&(!crate::wire::finish16(pseudo)).to_be_bytes());
        off += chunk.len() as u32;
        out.push(f);
    }
    out
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len as u32).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn partial_checksums_complete_to_valid_ones() {
    let offload = Offload {
        tso_max: 0,
        tx_checksum: true,
    };
    let mut p = Pair::new(offload, Carry::Software);
    let data = pattern(200_000);
    assert_eq!(p.transfer(&data), data);
    assert!(p.a.stats().tx_csum_partial > 100);
    assert_eq!(p.a.stats().tx_gso_frames, 0);
    // b verified every one of them.
    assert_eq!(p.b.stats().tcp_bad_checksum, 0);
    assert_eq!(p.b.stats().total_drops(), 0);

    // UDP too, when the datagram goes whole.
    let ua =
        p.a.udp_bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 5000))
            .unwrap();
    let ub =
        p.b.udp_bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 6000))
            .unwrap();
    let before = p.a.stats().tx_csum_partial;
    p.a.udp_send_to(ua, b"offloaded", SocketAddrV4::new(PEER_IP, 6000))
        .unwrap();
    p.step(p.now);
    assert_eq!(p.a.stats().tx_csum_partial, before + 1);
    let mut buf = [0u8; 64];
    let (n, _) = p.b.udp_recv_from(ub, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"offloaded");
    assert_eq!(p.b.stats().udp_bad_checksum, 0);
}

#[test]
fn tso_super_segments_cut_on_the_wire_carry_the_stream() {
    let offload = Offload {
        tso_max: 65535,
        tx_checksum: true,
    };
    let mut p = Pair::new(offload, Carry::Software);
    assert_eq!(p.a.max_frame_len(), 65535 + 14);
    let data = pattern(2_000_000);
    assert_eq!(p.transfer(&data), data);
    let s = p.a.stats();
    assert!(s.tx_gso_frames > 10, "{s}");
    assert!(s.tx_gso_segments > 2 * s.tx_gso_frames, "{s}");
    // What b saw on the "wire" never exceeded the MTU, and is what it
    // sees from a sender without TSO (one segment a window probe's
    // overshoot drops, on both).
    assert!(p.largest_ab <= 1514, "largest frame {}", p.largest_ab);
    assert_eq!(p.b.stats().tcp_bad_checksum, 0);
    let mut plain = Pair::new(Offload::default(), Carry::Software);
    assert_eq!(plain.transfer(&data), data);
    assert_eq!(
        p.b.stats().total_drops(),
        plain.b.stats().total_drops(),
        "{}",
        p.b.stats()
    );
    assert_eq!(p.b.stats().rx_frames, plain.b.stats().rx_frames);
}

#[test]
fn gso_super_segments_are_received_whole() {
    let offload = Offload {
        tso_max: 65535,
        tx_checksum: true,
    };
    let mut p = Pair::new(offload, Carry::Meta);
    let data = pattern(2_000_000);
    assert_eq!(p.transfer(&data), data);
    assert!(p.supers > 10);
    assert_eq!(p.b.stats().rx_gso_frames, p.supers);
    assert!(p.b.stats().rx_csum_partial > p.supers);
    assert!(p.largest_ab > 30_000, "largest frame {}", p.largest_ab);
    assert!(p.largest_ab <= 65535 + 14);
    assert_eq!(p.b.stats().total_drops(), 0);
}

#[test]
fn without_offload_nothing_is_left_to_the_device() {
    let mut p = Pair::new(Offload::default(), Carry::Software);
    assert_eq!(p.a.max_frame_len(), 1514);
    let data = pattern(300_000);
    assert_eq!(p.transfer(&data), data);
    let s = p.a.stats();
    assert_eq!((s.tx_csum_partial, s.tx_gso_frames), (0, 0));
    // TSO without checksum offload stays off.
    p.a.set_offload(Offload {
        tso_max: 65535,
        tx_checksum: false,
    });
    assert_eq!(p.a.offload().tso_max, 0);
}

/// A frame from the peer whose TCP checksum field holds garbage.
fn bad_checksum_syn() -> Vec<u8> {
    let repr = TcpRepr {
        src_port: 40000,
        dst_port: 80,
        seq: 1,
        ack: 0,
        flags: crate::wire::TcpFlags::SYN,
        window: 1000,
        urgent: 0,
        options: Default::default(),
    };
    let ours = config().ipv4.addr;
    let mut seg = vec![0u8; repr.header_len()];
    repr.emit(&mut seg, PEER_IP, ours, 0);
    seg[16] ^= 0x5a;
    let ip = Ipv4Repr {
        src: PEER_IP,
        dst: ours,
        protocol: crate::wire::Protocol::Tcp,
        ttl: 64,
        tos: 0,
        ident: 1,
        dont_fragment: true,
        more_fragments: false,
        frag_offset: 0,
        payload_len: seg.len(),
    };
    let mut frame = vec![0u8; 14 + 20 + seg.len()];
    ethernet::emit_header(&mut frame, config().mac, PEER_MAC, EtherType::Ipv4);
    ip.emit(&mut frame[14..]);
    frame[34..].copy_from_slice(&seg);
    frame
}

#[test]
fn a_checksum_the_device_vouches_for_is_not_verified() {
    let mut a = Interface::new(config()).unwrap();
    a.tcp_listen(SocketAddrV4::new(config().ipv4.addr, 80), 8)
        .unwrap();
    let frame = bad_checksum_syn();
    let now = Instant::from_secs(1);
    a.handle_frame(now, &frame);
    assert_eq!(a.stats().tcp_bad_checksum, 1);
    a.handle_frame_meta(
        now,
        &frame,
        RxMeta {
            checksum: RxChecksum::Partial {
                start: 34,
                offset: 16,
            },
            ..RxMeta::default()
        },
    );
    assert_eq!(a.stats().tcp_bad_checksum, 1);
    assert_eq!(a.stats().rx_csum_partial, 1);
    assert_eq!(a.stats().tcp_rx, 1);
    a.handle_frame_meta(
        now + Duration::from_millis(1),
        &frame,
        RxMeta {
            checksum: RxChecksum::Verified,
            ..RxMeta::default()
        },
    );
    assert_eq!(a.stats().rx_csum_verified, 1);
    assert_eq!(a.stats().tcp_bad_checksum, 1);
    // A super-segment of a kind we do not take is dropped and counted.
    a.handle_frame_meta(
        now,
        &frame,
        RxMeta {
            gso: GsoType::Other(5),
            gso_size: 1000,
            ..RxMeta::default()
        },
    );
    assert_eq!(a.stats().rx_gso_unsupported, 1);
    assert_eq!(a.stats().rx_frames, 4);
}
