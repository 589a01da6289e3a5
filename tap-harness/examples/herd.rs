//! Measures the thundering herd: N threads blocked reading idle
//! connections while one other connection does R round trips. Prints how
//! often the idle threads were woken (from the kernel's count of their
//! voluntary context switches) per frame the driver received.
//!
//! `cargo run --release -p tapir-harness --example herd -- [N] [R]`

use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::thread;
use std::time::Duration;

use tapir_harness::{Driver, DriverOptions, MemoryDevice, TcpListener, TcpStream};
use tapir_stack::wire::{EthernetAddress, Ipv4Cidr};
use tapir_stack::{Config, Interface};

fn stack(ip: Ipv4Addr, seed: u64) -> Interface {
    let cidr = Ipv4Cidr::new(ip, 24).expect("prefix");
    let mut config = Config::new(EthernetAddress::local_from_seed(seed), cidr);
    config.seed = seed;
    Interface::new(config).expect("valid config")
}

fn switches(tid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/status"))
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("switches")
}

fn main() {
    let mut args = std::env::args().skip(1);
    let idle: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let (b_ip, a_ip) = (Ipv4Addr::new(10, 77, 0, 2), Ipv4Addr::new(10, 77, 0, 1));
    let (da, db) = MemoryDevice::pair().expect("pair");
    let a = Driver::spawn(stack(a_ip, 1), Box::new(da), DriverOptions::default()).expect("a");
    let b = Driver::spawn(stack(b_ip, 2), Box::new(db), DriverOptions::default()).expect("b");
    let listener = TcpListener::bind(&b, "0.0.0.0:9000").expect("bind");
    let (tx, rx) = std::sync::mpsc::channel();
    let mut clients = Vec::new();
    for _ in 0..idle {
        clients.push(TcpStream::connect(&a, (b_ip, 9000)).expect("connect"));
        let (s, _) = listener.accept().expect("accept");
        let tx = tx.clone();
        thread::spawn(move || {
            tx.send(unsafe { libc::gettid() }).expect("tid");
            let _ = (&s).read(&mut [0u8; 8]);
        });
    }
    let tids: Vec<i32> = rx.iter().take(idle).collect();
    let busy = TcpStream::connect(&a, (b_ip, 9000)).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    thread::sleep(Duration::from_millis(500));
    let before: u64 = tids.iter().map(|&t| switches(t)).sum();
    let (frames0, steps0) = (b.driver_stats().rx_frames, b.steps());
    let mut buf = [0u8; 4];
    let started = std::time::Instant::now();
    for k in 0..rounds as u32 {
        (&busy).write_all(&k.to_be_bytes()).expect("write");
        (&server).read_exact(&mut buf).expect("read");
        (&server).write_all(&buf).expect("write");
        (&busy).read_exact(&mut buf).expect("read");
    }
    let per_round = started.elapsed() / rounds.max(1) as u32;
    let woken = tids.iter().map(|&t| switches(t)).sum::<u64>() - before;
    let frames = b.driver_stats().rx_frames - frames0;
    let steps = b.steps() - steps0;
    println!(
        "{idle} idle readers, {rounds} round trips: {frames} frames in {steps} driver steps; \
         idle threads woken {woken} times = {:.2} per frame; \
         {per_round:?} per round trip",
        woken as f64 / frames.max(1) as f64
    );
    std::process::exit(0);
}
