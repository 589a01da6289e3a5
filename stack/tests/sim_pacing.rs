//! Pacing (`TcpConfig::pacing`) through a bottleneck with a shallow
//! queue: 100 Mbit/s, 50 ms each way, 100 frames of queue (an eighth of
//! the path's 860-segment window). Without pacing, slow start answers each
//! ACK with a line-rate burst twice its size and the queue overflows long
//! before the path is full: the first loss sets ssthresh a fraction of the
//! path, and CUBIC then needs seconds to climb back. Paced at twice
//! cwnd / SRTT (Linux's tcp_pacing_ss_ratio), the same slow start fills
//! the path first, as the kernel's does in BENCHMARKS.md's "loss 0, delay
//! 50ms, 100 Mbit/s" cell.

use tapir_stack::testing::sim::{ms, Impairments, Sim};

const LEN: usize = 12_000_000;

/// The sender's ssthresh after its first loss (in segments), and the
/// virtual time the transfer took.
fn transfer(pacing: bool) -> (usize, std::time::Duration) {
    let mut sim = Sim::new(21);
    let a = sim.add_host_with(2, |c| c.tcp.pacing = pacing);
    let b = sim.add_host(3);
    let path = Impairments::clean()
        .delay(ms(50))
        .rate(100_000_000)
        .queue_limit(100 * 1514);
    sim.connect(a, b, path);
    let data: Vec<u8> = (0..LEN).map(|i| (i * 13 % 251) as u8).collect();
    let start = sim.now();
    let mut first_ssthresh = None;
    let (got, _, _) = sim
        .stream(a, b, 9, &data, 1 << 20, |sim, _| {
            if first_ssthresh.is_none() {
                if let Some((_, _, st)) = sim.iface(a).tcp_connections().next() {
                    if st.ssthresh < usize::MAX {
                        first_ssthresh = Some(st.ssthresh / st.mss);
                    }
                }
            }
        })
        .expect("transfer completes");
    assert!(got == data, "the stream arrived changed");
    (
        first_ssthresh.expect("slow start ended in a loss"),
        sim.now() - start,
    )
}

#[test]
fn paced_slow_start_fills_the_path_before_the_queue_overflows() {
    let (paced_ssthresh, paced_time) = transfer(true);
    let (burst_ssthresh, burst_time) = transfer(false);
    eprintln!(
        "paced: ssthresh {paced_ssthresh} after the first loss, {paced_time:?}; \
         unpaced: {burst_ssthresh}, {burst_time:?}"
    );
    // The path holds 863 segments and the queue 100: a first loss past the
    // path's size leaves ssthresh at 0.7 of it or more.
    assert!(paced_ssthresh >= 600, "paced: ssthresh {paced_ssthresh}");
    assert!(
        burst_ssthresh < 450,
        "unpaced: ssthresh {burst_ssthresh}: the test no longer shows the bursts"
    );
    assert!(
        paced_time < burst_time,
        "paced {paced_time:?}, unpaced {burst_time:?}"
    );
}
