//! Segments that arrive together (one batch, one poll) are acknowledged
//! as if they had arrived one by one, as Linux does from its input path:
//! every out-of-order segment draws its own duplicate ACK (RFC 5681 4.2),
//! and in-order data an ACK for at least every second full-sized segment
//! (RFC 9293 3.8.6.3). The simulated link here has no rate limit, so a
//! whole window arrives in one step: exactly the batch a TAP driver reads.

use std::cell::Cell;
use std::rc::Rc;
use tapir_stack::testing::sim::{ms, Impairments, Sim};
use tapir_stack::wire::{EthernetFrame, Ipv4Packet, TcpRepr};

const LEN: usize = 200_000;

/// The TCP header of a frame, if it carries TCP.
fn tcp(frame: &[u8]) -> Option<(TcpRepr, usize)> {
    let eth = EthernetFrame::parse(frame).ok()?;
    let ip = Ipv4Packet::parse(eth.payload).ok()?;
    let (repr, payload) = TcpRepr::parse(ip.payload, ip.repr.src, ip.repr.dst, true).ok()?;
    Some((repr, payload.len()))
}

#[test]
fn a_batch_behind_a_hole_draws_one_duplicate_ack_per_segment_and_a_fast_retransmit() {
    let mut sim = Sim::new(3);
    let a = sim.add_host(2);
    let b = sim.add_host(3);
    let link = sim.connect(a, b, Impairments::clean().delay(ms(10)));
    sim.capture(link);
    // Drop the 20th data segment from a to b, once; remember when.
    let mut data_segments = 0;
    let dropped: Rc<Cell<Option<(u32, u64)>>> = Rc::default();
    let d = dropped.clone();
    sim.set_filter(link, move |f| {
        if f.from != a {
            return true;
        }
        match tcp(f.frame) {
            Some((r, len)) if len > 0 => {
                data_segments += 1;
                if data_segments == 20 {
                    d.set(Some((r.seq, f.now.total_millis())));
                }
                data_segments != 20
            }
            _ => true,
        }
    });
    let data = vec![7u8; LEN];
    let (got, _, _) = sim
        .stream(a, b, 5001, &data, 16384, |_, _| {})
        .expect("transfer completes");
    assert_eq!(got.len(), LEN);
    // The hole was repaired by fast retransmit one round trip (20 ms)
    // after the loss, not by the RTO (at least 200 ms).
    let (seq, lost_at) = dropped.get().expect("a segment was dropped");
    let resent_at = sim
        .captured(link)
        .iter()
        .filter(|f| f.from == a)
        .find(|f| tcp(&f.frame).is_some_and(|(r, len)| r.seq == seq && len > 0))
        .map(|f| f.at.total_millis())
        .expect("the lost segment was sent again");
    assert!(
        resent_at - lost_at < 100,
        "lost at {lost_at} ms, resent at {resent_at} ms: it waited for the RTO"
    );
    // b's duplicate ACKs: ACKs without data for the same ACK number, with
    // SACK blocks (the out-of-order data).
    let acks: Vec<TcpRepr> = sim
        .captured(link)
        .iter()
        .filter(|f| f.from == b)
        .filter_map(|f| tcp(&f.frame))
        .filter(|(r, len)| *len == 0 && r.flags.ack())
        .map(|(r, _)| r)
        .collect();
    let dups = acks
        .windows(2)
        .filter(|w| w[0].ack == w[1].ack && !w[1].options.sack_blocks.is_empty())
        .count();
    assert!(
        dups >= 3,
        "only {dups} duplicate ACKs for the batch behind the hole"
    );
}
