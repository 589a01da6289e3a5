//! A connection's timeline, end to end: a seeded transfer over a lossy
//! link in the simulator (virtual time, so the run is the same every time)
//! is traced, written as CSV, read back and drawn. The CSV must agree with
//! the connection's own stats, and the SVG must hold the series the
//! timeline has, point for point.

use std::net::{Ipv4Addr, SocketAddrV4};
use tapir_apps::trace::{read_csv, CsvWriter, Row};
use tapir_stack::testing::sim::{host_ip, ms, Impairments, Sim};
use tapir_stack::{TcpConnStats, TraceSample, DEFAULT_TRACE_CAPACITY};

const LEN: usize = 1 << 20;

/// Host 2 sends LEN bytes to host 3 over 50 Mbit/s, 10 ms and 2 % loss; the sender's
/// timeline and its final stats.
fn traced_transfer(seed: u64) -> (Vec<TraceSample>, TcpConnStats) {
    let mut sim = Sim::new(seed);
    let a = sim.add_host(2);
    let b = sim.add_host(3);
    sim.connect(
        a,
        b,
        Impairments::clean().loss(0.02).delay(ms(10)).rate(50_000_000),
    );
    let l = sim
        .iface(b)
        .tcp_listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 5001), 4)
        .unwrap();
    let now = sim.now();
    let c = sim
        .iface(a)
        .tcp_connect(now, SocketAddrV4::new(host_ip(3), 5001))
        .unwrap();
    sim.iface(a).tcp_trace(c, Some(DEFAULT_TRACE_CAPACITY)).unwrap();
    let (mut sent, mut got) = (0, 0);
    let mut server = None;
    let mut samples = Vec::new();
    let chunk = vec![0x5a; 16384];
    let mut buf = vec![0; 16384];
    sim.run_until(
        |sim| {
            while sent < LEN {
                match sim.iface(a).tcp_send(c, &chunk[..(LEN - sent).min(chunk.len())]) {
                    Ok(n) if n > 0 => sent += n,
                    _ => break,
                }
            }
            if server.is_none() {
                server = sim.iface(b).tcp_accept(l).ok();
            }
            if let Some(s) = server {
                while let Ok(n) = sim.iface(b).tcp_recv(s, &mut buf) {
                    if n == 0 {
                        break;
                    }
                    got += n;
                }
            }
            // Drained as an application would, not only at the end.
            assert_eq!(
                sim.iface(a).tcp_drain_trace(c, &mut samples),
                0,
                "trace overflowed"
            );
            got == LEN && sim.iface(a).tcp_stats(c).is_some_and(|s| s.bytes_in_flight == 0)
        },
        5_000_000,
    )
    .expect("transfer completes");
    sim.iface(a).tcp_drain_trace(c, &mut samples);
    (samples, sim.iface(a).tcp_stats(c).unwrap())
}

fn csv_rows(samples: &[TraceSample]) -> Vec<Row> {
    let mut w = CsvWriter::new(Vec::new()).unwrap();
    for s in samples {
        w.write(s).unwrap();
    }
    read_csv(&w.into_inner()[..]).unwrap()
}

#[test]
fn the_timeline_agrees_with_the_connection_and_its_plot_holds_every_series() {
    let (samples, stats) = traced_transfer(7);
    let rows = csv_rows(&samples);
    assert!(rows.len() > 100, "only {} rows", rows.len());
    // The CSV agrees with the connection's own stats.
    let last = rows.last().unwrap();
    assert_eq!(last.snd_una, stats.snd_una);
    assert_eq!(last.snd_nxt, stats.snd_nxt);
    assert_eq!(last.retransmits, stats.retransmits);
    assert_eq!(last.cwnd, stats.cwnd as u64);
    assert_eq!(
        last.snd_una.wrapping_sub(rows[0].snd_una),
        LEN as u32 + 1,
        "SYN and the data acknowledged"
    );
    assert!(
        rows.windows(2).all(|w| w[0].time_s <= w[1].time_s),
        "time goes forward"
    );
    // 2 % loss on about 725 segments: the run is seeded, so this is a fact
    // about this run, and the plot must show it.
    let retransmissions = rows
        .windows(2)
        .filter(|w| w[1].retransmits > w[0].retransmits)
        .count();
    assert!(retransmissions > 0 && stats.retransmits > 0);
    assert!(rows.iter().any(|r| r.ssthresh.is_some()), "a loss sets ssthresh");

    let dir = std::env::temp_dir().join(format!("tapir-plot-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg_path = dir.join("timeline.svg");
    tapir_apps::plot::plot(&rows, "seed 7", &svg_path).unwrap();
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    // TAPIR_PLOT_KEEP=FILE.svg keeps the picture to look at.
    if let Some(keep) = std::env::var_os("TAPIR_PLOT_KEEP") {
        std::fs::copy(&svg_path, keep).unwrap();
    }
    std::fs::remove_dir_all(&dir).unwrap();
    for label in [
        "time-sequence",
        "snd_nxt (sent)",
        "snd_una (acknowledged)",
        "retransmission",
        "cwnd",
        "ssthresh",
        "bytes in flight",
        "srtt",
        "rto",
    ] {
        assert!(svg.contains(label), "the SVG has no {label:?}");
    }
    // Every row is a step of the cwnd line (blue, 2 px): the longest blue
    // polyline has two points per row but the first.
    let longest_blue = svg
        .lines()
        .filter(|l| {
            l.starts_with("<polyline") && l.contains("stroke=\"#0000FF\"") && l.contains("stroke-width=\"2\"")
        })
        .map(|l| {
            let points = l
                .split("points=\"")
                .nth(1)
                .unwrap_or("")
                .split('"')
                .next()
                .unwrap_or("");
            points.split_whitespace().count()
        })
        .max()
        .unwrap_or(0);
    assert_eq!(longest_blue, 2 * rows.len() - 1);
}

#[test]
fn the_same_seed_gives_the_same_timeline() {
    let (a, _) = traced_transfer(11);
    let (b, _) = traced_transfer(11);
    assert_eq!(a, b);
}
