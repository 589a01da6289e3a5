//! Buffer autotuning: on a path whose bandwidth-delay product exceeds the
//! initial 256 KiB buffers, the receiver's buffer (and the window it
//! offers) and the sender's buffer grow, so the transfer is not capped at
//! buffer / RTT; SO_RCVBUF and SO_SNDBUF fix the sizes, as in Linux.

use std::net::{Ipv4Addr, SocketAddrV4};
use tapir_stack::testing::sim::{host_ip, ms, Impairments, Sim};
use tapir_stack::TcpOption;

const LEN: usize = 32 << 20;
const INITIAL: usize = 256 * 1024;

/// Host 2 sends LEN bytes to host 3 over a clean 10 ms link (20 ms round
/// trip); with `fixed`, both set SO_SNDBUF / SO_RCVBUF to the initial
/// size. Returns the virtual milliseconds taken and the final buffer sizes
/// (send, receive).
fn transfer(fixed: bool) -> (u64, usize, usize) {
    let mut sim = Sim::new(4);
    let a = sim.add_host(2);
    let b = sim.add_host(3);
    sim.connect(a, b, Impairments::clean().delay(ms(10)));
    let now = sim.now();
    let l = sim
        .iface(b)
        .tcp_listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 5001), 4)
        .unwrap();
    if fixed {
        sim.iface(b)
            .tcp_set_option(now, l, TcpOption::RecvBuffer(INITIAL))
            .unwrap();
    }
    let c = sim
        .iface(a)
        .tcp_connect(now, SocketAddrV4::new(host_ip(3), 5001))
        .unwrap();
    if fixed {
        sim.iface(a)
            .tcp_set_option(now, c, TcpOption::SendBuffer(INITIAL))
            .unwrap();
    }
    let start = sim.now();
    let (mut sent, mut got, mut s) = (0, 0, None);
    let chunk = vec![1u8; 65536];
    let mut buf = vec![0u8; 65536];
    sim.run_until(
        |sim| {
            while sent < LEN {
                match sim.iface(a).tcp_send(c, &chunk[..(LEN - sent).min(chunk.len())]) {
                    Ok(n) if n > 0 => sent += n,
                    _ => break,
                }
            }
            s = s.or_else(|| sim.iface(b).tcp_accept(l).ok());
            if let Some(s) = s {
                while let Ok(n) = sim.iface(b).tcp_recv(s, &mut buf) {
                    if n == 0 {
                        break;
                    }
                    got += n;
                }
            }
            got == LEN
        },
        10_000_000,
    )
    .expect("transfer completes");
    let ms = (sim.now() - start).as_millis() as u64;
    let size = |sim: &mut Sim, node, h, probe| match sim.iface(node).tcp_get_option(h, probe) {
        Some(TcpOption::SendBuffer(n)) | Some(TcpOption::RecvBuffer(n)) => n,
        other => panic!("{other:?}"),
    };
    let snd = size(&mut sim, a, c, TcpOption::SendBuffer(0));
    let rcv = size(&mut sim, b, s.unwrap(), TcpOption::RecvBuffer(0));
    (ms, snd, rcv)
}

#[test]
fn buffers_grow_with_the_path_unless_fixed() {
    let (fixed_ms, snd, rcv) = transfer(true);
    assert_eq!((snd, rcv), (INITIAL, INITIAL), "SO_SNDBUF/SO_RCVBUF were changed");
    // 256 KiB per 20 ms round trip is about 105 Mbit/s: 32 MiB takes 2.6 s.
    assert!(fixed_ms >= 2_500, "fixed buffers took only {fixed_ms} ms");
    let (tuned_ms, snd, rcv) = transfer(false);
    eprintln!("32 MiB over 20 ms RTT: {fixed_ms} ms with fixed 256 KiB buffers, {tuned_ms} ms autotuned (send {snd}, receive {rcv})");
    assert!(
        snd > INITIAL && rcv > INITIAL,
        "send {snd}, receive {rcv}: nothing grew"
    );
    assert!(
        tuned_ms * 3 < fixed_ms,
        "autotuned {tuned_ms} ms against {fixed_ms} ms"
    );
}
