//! smoltcp's TAP benchmark server: the peer tapir is compared with in
//! `benches/scripts/tap_vs_smoltcp.py` (plain TAP, the same kernel-side
//! client for both).
//!
//! ```text
//! smoltcp_tap --tap tap0 --port 5201 --mode sink|source [--rx-buf BYTES] [--tx-buf BYTES]
//! ```
//!
//! Modelled on smoltcp 0.14's own `examples/benchmark.rs`: smoltcp's own
//! TAP device (`phy::TunTapInterface`, no virtio-net header, one frame per
//! `read`/`write` system call and a fresh `Vec` per frame each way), one TCP
//! socket, and the example's loop: `iface.poll`, then the socket's work,
//! then `phy::wait(fd, iface.poll_delay(..))` (a `select` on the TAP until
//! it is readable or the next deadline). `Interface::poll` reads the device
//! until it is empty (one frame per `receive` call, in a loop), then
//! transmits until the sockets have nothing more to send.
//!
//! It attaches to an existing TAP by name (the script creates it, gives
//! the kernel side 10.77.0.1/24 and brings it up), with 10.77.0.2/24 and
//! MAC 02:00:0a:4d:00:02 (tapir's default MAC for that address). It listens
//! on `--port` and serves one client after another until killed: per
//! connection, `--mode sink` reads everything until the client closes, then
//! closes; `--mode source` sends a constant pattern until the client closes
//! (or resets). Like tapir's `tput`, the application copies the data: out
//! of the socket into a 128 KiB buffer (`recv_slice`), or from a 128 KiB
//! pattern into the socket (`send_slice`).
//!
//! Socket buffers: smoltcp's are fixed (no autotuning), so they are sized
//! for the path, 1 MiB each way by default (`--rx-buf`, `--tx-buf`). With
//! a receive buffer above 64 KiB smoltcp offers window scaling (shift 5 for
//! 1 MiB), so the kernel may have up to 1 MiB in flight to it. The socket
//! keeps smoltcp's defaults otherwise: Nagle on, no timestamps, a 10 ms
//! delayed ACK that turns immediate once more than one full segment is
//! unacknowledged, and no congestion control (the crate is built without
//! `socket-tcp-reno`/`socket-tcp-cubic`, as for smoltcp's example), so it
//! sends as much as the peer's window and its buffer allow. ACKs go out in
//! `poll`'s egress half, after the device was drained: one per batch of
//! frames read, not one per two segments.
//!
//! A line per connection on stderr: the bytes moved and the rate.

use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::phy::{wait as phy_wait, Medium, TunTapInterface};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, IpAddress, IpCidr};
use std::hash::{BuildHasher, RandomState};
use std::os::unix::io::AsRawFd;
use std::process::ExitCode;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Sink,
    Source,
}

struct Args {
    tap: String,
    port: u16,
    mode: Mode,
    rx_buf: usize,
    tx_buf: usize,
}

const USAGE: &str =
    "usage: smoltcp_tap --tap NAME --port PORT --mode sink|source [--rx-buf BYTES] [--tx-buf BYTES]";

fn parse_args() -> Result<Args, String> {
    let mut tap = None;
    let mut port = None;
    let mut mode = None;
    let mut rx_buf = 1 << 20;
    let mut tx_buf = 1 << 20;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.to_string());
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--tap" => tap = Some(value),
            "--port" => port = Some(value.parse::<u16>().map_err(|e| bad(&e))?),
            "--mode" => {
                mode = Some(match value.as_str() {
                    "sink" => Mode::Sink,
                    "source" => Mode::Source,
                    _ => return Err(bad(&"sink or source")),
                })
            }
            "--rx-buf" => rx_buf = value.parse::<usize>().map_err(|e| bad(&e))?,
            "--tx-buf" => tx_buf = value.parse::<usize>().map_err(|e| bad(&e))?,
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    Ok(Args {
        tap: tap.ok_or(USAGE)?,
        port: port.ok_or(USAGE)?,
        mode: mode.ok_or(USAGE)?,
        rx_buf,
        tx_buf,
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut device = match TunTapInterface::new(&args.tap, Medium::Ethernet) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("smoltcp_tap: attaching to {}: {e}", args.tap);
            return ExitCode::FAILURE;
        }
    };
    let fd = device.as_raw_fd();

    let mut config = Config::new(EthernetAddress([0x02, 0x00, 0x0a, 0x4d, 0x00, 0x02]).into());
    config.random_seed = RandomState::new().hash_one(std::process::id());
    let mut iface = Interface::new(config, &mut device, Instant::now());
    iface.update_ip_addrs(|addrs| {
        addrs
            .push(IpCidr::new(IpAddress::v4(10, 77, 0, 2), 24))
            .expect("one address fits");
    });

    let socket = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; args.rx_buf]),
        tcp::SocketBuffer::new(vec![0; args.tx_buf]),
    );
    let mut sockets = SocketSet::new(vec![]);
    let handle = sockets.add(socket);

    let mut app_buf = vec![0u8; 128 * 1024];
    if args.mode == Mode::Source {
        for (i, b) in app_buf.iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
    }
    eprintln!(
        "smoltcp_tap: {} on 10.77.0.2:{} ({}), rx buffer {} B, tx buffer {} B, MTU {}",
        if args.mode == Mode::Sink { "sink" } else { "source" },
        args.port,
        args.tap,
        args.rx_buf,
        args.tx_buf,
        smoltcp::phy::Device::capabilities(&device).max_transmission_unit,
    );

    // Per connection: bytes moved and when it was established.
    let mut moved: u64 = 0;
    let mut started: Option<std::time::Instant> = None;
    loop {
        let timestamp = Instant::now();
        iface.poll(timestamp, &mut device, &mut sockets);

        let socket = sockets.get_mut::<tcp::Socket>(handle);
        if !socket.is_open() {
            if let Some(t) = started.take() {
                let secs = t.elapsed().as_secs_f64();
                eprintln!(
                    "smoltcp_tap: {} {moved} bytes in {secs:.3} s, {:.3} Gbit/s",
                    if args.mode == Mode::Sink {
                        "received"
                    } else {
                        "sent"
                    },
                    moved as f64 * 8.0 / secs / 1e9
                );
            }
            moved = 0;
            socket.listen(args.port).expect("listen on a closed socket");
        }
        if started.is_none() && socket.is_active() && socket.state() != tcp::State::Listen {
            started = Some(std::time::Instant::now());
        }

        match args.mode {
            Mode::Sink => {
                while socket.can_recv() {
                    match socket.recv_slice(&mut app_buf) {
                        Ok(n) => moved += n as u64,
                        Err(_) => break,
                    }
                }
                // The client's FIN and everything before it has been read.
                if !socket.may_recv() && socket.may_send() {
                    socket.close();
                }
            }
            Mode::Source => {
                if !socket.may_recv() && socket.may_send() {
                    // The client closed its side: stop, and close ours.
                    socket.close();
                } else {
                    while socket.can_send() {
                        match socket.send_slice(&app_buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => moved += n as u64,
                        }
                    }
                }
            }
        }

        phy_wait(fd, iface.poll_delay(timestamp, &sockets)).expect("select on the TAP");
    }
}
