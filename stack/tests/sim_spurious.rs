//! Spurious retransmissions between two tapir stacks on a simulated link
//! that reorders but never loses: every fast retransmission the
//! reordering sets off is unnecessary. The receiver reports the
//! duplicates (D-SACK, RFC 2883) and echoes the originals' timestamps, and
//! the sender must find the retransmissions spurious and undo its
//! reductions (RFC 3708, RFC 3522), in the stack's counters, while the
//! stream stays byte-exact.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;
use tapir_stack::testing::sim::{for_each_seed, host_ip, ms, Impairments, Sim};
use tapir_stack::TcpConnStats;

const PORT: u16 = 5001;
const LEN: usize = 2_000_000;

fn byte(offset: usize) -> u8 {
    (offset as u32).wrapping_mul(2_654_435_761).rotate_left(7) as u8
}

/// The counters of the sending stack after `LEN` bytes went through a
/// reordering link: (D-SACKs received, undos by D-SACK, by timestamps,
/// fast recoveries, virtual time taken).
fn run(seed: u64, timestamps: bool) -> Result<(u64, u64, u64, u64, Duration), String> {
    // Reordered frames are held back 5 ms on a 10 ms path: several
    // segments overtake each, enough for three duplicate ACKs.
    let imp = Impairments::clean()
        .delay(ms(10))
        .reorder(0.01)
        .reorder_delay(ms(5));
    let (st, stats, t) = transfer(seed, timestamps, imp, false)?;
    Ok((st[0], st[1], st[2], stats.fast_recoveries, t))
}

/// `LEN` bytes from host 2 to host 3 over `imp`; with `spike`, the ACKs
/// sent between 100 and 150 ms take 700 ms more. Returns the sender's
/// stack counters (D-SACKs received, undos by D-SACK, timestamps and
/// F-RTO), its connection's stats, and the time taken.
fn transfer(
    seed: u64,
    timestamps: bool,
    imp: Impairments,
    spike: bool,
) -> Result<([u64; 4], TcpConnStats, Duration), String> {
    let mut sim = Sim::new(seed);
    // With the spike, no tail loss probe (RFC 8985 7): its segment of new
    // data, sent at 2 * SRTT, draws an ACK that overtakes the held ones,
    // and the timeout this test is about never happens.
    let a = sim.add_host_with(2, |c| {
        c.tcp.timestamps = timestamps;
        c.tcp.tlp = !spike;
    });
    let b = sim.add_host_with(3, |c| {
        c.tcp.timestamps = timestamps;
        c.tcp.tlp = !spike;
    });
    let link = sim.connect(a, b, imp.clone());
    let start = sim.now();
    let l = sim
        .iface(b)
        .tcp_listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT), 4)
        .map_err(|e| e.to_string())?;
    let now = sim.now();
    let c = sim
        .iface(a)
        .tcp_connect(now, SocketAddrV4::new(host_ip(3), PORT))
        .map_err(|e| e.to_string())?;
    let mut server = None;
    let (mut sent, mut received) = (0usize, 0usize);
    let mut err = None;
    sim.run_until(
        |sim| {
            if server.is_none() {
                server = sim.iface(b).tcp_accept(l).ok();
            }
            if spike {
                let t = sim.now() - start;
                let late = imp.clone().delay(ms(710));
                if t >= ms(100) && t < ms(150) {
                    sim.set_impairments_towards(link, a, late);
                } else {
                    sim.set_impairments_towards(link, a, imp.clone());
                }
            }
            let mut chunk = [0u8; 16384];
            while sent < LEN {
                let n = chunk.len().min(LEN - sent);
                for (i, x) in chunk[..n].iter_mut().enumerate() {
                    *x = byte(sent + i);
                }
                match sim.iface(a).tcp_send(c, &chunk[..n]) {
                    Ok(k) => sent += k,
                    Err(_) => break,
                }
            }
            if let Some(s) = server {
                let mut buf = [0u8; 16384];
                while let Ok(n @ 1..) = sim.iface(b).tcp_recv(s, &mut buf) {
                    if buf[..n].iter().enumerate().any(|(i, &x)| x != byte(received + i)) {
                        err = Some(format!("wrong byte near {received}"));
                        return true;
                    }
                    received += n;
                }
            }
            received >= LEN
        },
        5_000_000,
    )
    .map_err(|e| e.to_string())?;
    if let Some(e) = err {
        return Err(e);
    }
    if received != LEN {
        return Err(format!("received {received} of {LEN}"));
    }
    let elapsed = sim.now() - start;
    let stats = sim.iface(a).tcp_stats(c).unwrap_or_default();
    let st = sim.iface(a).stats();
    let counts = [
        st.tcp_dsack_recv,
        st.tcp_dsack_undo,
        st.tcp_ts_undo,
        st.tcp_frto_spurious,
    ];
    Ok((counts, stats, elapsed))
}

/// With timestamps (the default) the ACK that ends each recovery echoes
/// the original's TSval (Eifel); without, the D-SACK of the
/// retransmission comes a round trip later.
#[test]
fn reordering_recoveries_are_undone() {
    for_each_seed([1, 2, 3, 4], |seed| {
        let timestamps = seed % 2 == 1;
        let (dsacks, dsack_undo, ts_undo, recoveries, _) = run(seed, timestamps)?;
        if recoveries == 0 {
            return Err("no recovery: the link reorders too little to test anything".into());
        }
        // Without timestamps the D-SACKs of the retransmissions are the
        // only evidence (with them, the echo may undo a recovery before
        // anything was resent, and no D-SACK comes).
        if !timestamps && dsacks == 0 {
            return Err(format!(
                "{recoveries} recoveries, no D-SACK received ({dsack_undo} undone by D-SACK, {ts_undo} by timestamps)"
            ));
        }
        // Every recovery here is spurious; the timestamps or the D-SACKs
        // undo each (one whose retransmission was reordered too may stay).
        let undone = if timestamps { ts_undo } else { dsack_undo };
        if undone * 2 < recoveries {
            return Err(format!(
                "{recoveries} recoveries, {undone} undone ({dsack_undo} by D-SACK, {ts_undo} by timestamps)"
            ));
        }
        Ok(())
    });
}

/// A delay spike on the ACK path (700 ms, three times the RTO) makes the
/// retransmission timer fire although nothing was lost. What arrives
/// after the timeout shows it spurious: here the D-SACK of the
/// retransmission on the ACK of everything (Linux tcp_try_undo_loss by
/// undo_retrans; F-RTO and the timestamp echo have their scripts), and
/// the reduction is undone, with timestamps or without.
#[test]
fn delay_spike_timeout_is_undone() {
    for_each_seed([1, 2], |seed| {
        let timestamps = seed % 2 == 0;
        let (st, stats, _) = transfer(seed, timestamps, Impairments::clean().delay(ms(10)), true)?;
        let [_, dsack_undo, ts_undo, frto] = st;
        if stats.retransmits == 0 {
            return Err("no timeout: the spike did not hold the ACKs long enough".into());
        }
        if dsack_undo + ts_undo + frto == 0 {
            return Err(format!(
                "{} retransmissions, nothing undone; cwnd {} ssthresh {}",
                stats.retransmits, stats.cwnd, stats.ssthresh
            ));
        }
        eprintln!(
            "seed {seed} ts {timestamps}: {st:?}, {} retransmits",
            stats.retransmits
        );
        Ok(())
    });
}

/// A tenth of the segments held back 11 ms on a 10 ms path, as the loss
/// grid's reordering cell. The first held-back segments are resent at
/// once (no reordering seen, DupThresh SACKed: RACK's window is zero),
/// but the first original that fills its hole proves reordering (its
/// echoed timestamp is older than the retransmission's), and from then on
/// RACK waits min_RTT / 4 per D-SACK round: a handful of recoveries, not
/// one per held-back segment. Without that evidence RACK never saw the
/// reordering (every held-back segment had been resent before it
/// arrived) and recovered over and over.
#[test]
fn ten_percent_reordering_is_learned_from_the_first_delayed_original() {
    for seed in [1, 2, 3] {
        let imp = Impairments::clean()
            .delay(ms(10))
            .reorder(0.1)
            .reorder_delay(ms(11));
        let (_, stats, _) = transfer(seed, true, imp, false).unwrap();
        assert!(
            stats.fast_recoveries <= 10 && stats.retransmits <= 20,
            "seed {seed}: {} recoveries, {} retransmits",
            stats.fast_recoveries,
            stats.retransmits
        );
    }
}
