//! The driver as a task of the application's runtime (`Driver::task`):
//! two stacks over an in-memory link, their drivers and the sockets' tasks
//! all on one current-thread runtime, so nothing can make progress unless
//! the task driver waits for and reacts to the right things: the device's
//! descriptor, the sockets' kicks, and the stack's deadlines.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use tapir_harness::net::{TcpListener, TcpStream, UdpSocket};
use tapir_harness::{Driver, DriverHandle, DriverOptions, DriverTask, MemoryDevice};
use tapir_stack::wire::{EthernetAddress, Ipv4Cidr};
use tapir_stack::{Config, Interface};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;
use tokio::time::timeout;

const A: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const LIMIT: Duration = Duration::from_secs(20);

fn stack(ip: Ipv4Addr, seed: u64) -> Interface {
    let cidr = Ipv4Cidr::new(ip, 24).expect("prefix");
    let mut config = Config::new(EthernetAddress::local_from_seed(seed), cidr);
    config.seed = seed;
    Interface::new(config).expect("valid config")
}

fn task(ip: Ipv4Addr, seed: u64, dev: MemoryDevice) -> (DriverHandle, DriverTask) {
    Driver::task(stack(ip, seed), Box::new(dev), DriverOptions::default()).expect("driver task")
}

/// Two stacks whose drivers are tasks of the current runtime.
fn pair() -> (DriverHandle, DriverHandle, [JoinHandle<std::io::Result<()>>; 2]) {
    let (da, db) = MemoryDevice::pair().expect("memory pair");
    let (a, ta) = task(A, 1, da.with_name("a"));
    let (b, tb) = task(B, 2, db.with_name("b"));
    (a, b, [tokio::spawn(ta.run()), tokio::spawn(tb.run())])
}

/// A task on `b` that echoes, byte by byte, the first connection to port 7.
async fn echo_bytes(b: &DriverHandle) {
    let listener = TcpListener::bind(b, (B, 7)).await.unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut byte = [0u8; 1];
        while s.read_exact(&mut byte).await.is_ok() {
            s.write_all(&byte).await.unwrap();
        }
    });
}

fn pattern(offset: usize, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = ((offset + i) % 251) as u8;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_bulk_transfer_on_one_thread_is_byte_exact() {
    let (a, b, drivers) = pair();
    const LEN: usize = 8 << 20;
    let listener = TcpListener::bind(&b, (B, 5001)).await.unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let (mut got, mut buf, mut want) = (0usize, vec![0u8; 65_536], vec![0u8; 65_536]);
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            pattern(got, &mut want[..n]);
            assert!(buf[..n] == want[..n], "bytes differ in [{got}, {})", got + n);
            got += n;
        }
        got
    });
    let transfer = async {
        let mut c = TcpStream::connect(&a, (B, 5001)).await.unwrap();
        let mut buf = vec![0u8; 100_000];
        let mut sent = 0;
        while sent < LEN {
            let n = buf.len().min(LEN - sent);
            pattern(sent, &mut buf[..n]);
            c.write_all(&buf[..n]).await.unwrap();
            sent += n;
        }
        c.shutdown().await.unwrap();
        server.await.unwrap()
    };
    let got = timeout(LIMIT, transfer).await.expect("transfer finished in time");
    assert_eq!(got, LEN);
    // Both drivers did the work, and nothing woke anyone else's thread:
    // there is only this one.
    assert!(a.driver_stats().tx_frames > 5_000 && b.driver_stats().rx_frames > 5_000);
    drop((a, b));
    for d in drivers {
        timeout(LIMIT, d)
            .await
            .expect("driver task returned")
            .unwrap()
            .unwrap();
    }
}

/// A thousand one-byte round trips: each needs the kick from a socket call
/// to reach the driver task, and the driver's event to reach the socket's
/// task; one lost wakeup stalls the loop until the timeout.
#[tokio::test(flavor = "current_thread")]
async fn ping_pong_loses_no_wakeup() {
    let (a, b, _drivers) = pair();
    echo_bytes(&b).await;
    let rounds = async {
        let mut c = TcpStream::connect(&a, (B, 7)).await.unwrap();
        c.set_nodelay(true).unwrap();
        for i in 0..1000u32 {
            let byte = [(i % 256) as u8];
            c.write_all(&byte).await.unwrap();
            let mut back = [0u8; 1];
            c.read_exact(&mut back).await.unwrap();
            assert_eq!(back, byte);
        }
    };
    timeout(LIMIT, rounds).await.expect("1000 round trips in time");
}

/// The stack's own deadlines run with no traffic to wake the task: a SYN
/// to a peer that never answers is sent again after the initial RTO (1 s,
/// RFC 6298 2.1).
#[tokio::test(flavor = "current_thread")]
async fn deadlines_fire_without_traffic() {
    let (da, mut silent) = MemoryDevice::pair().expect("memory pair");
    // No periodic wakeup to hide a missed deadline behind.
    let opts = DriverOptions {
        max_sleep: Duration::from_secs(60),
        ..Default::default()
    };
    let (a, ta) = Driver::task(stack(A, 1), Box::new(da), opts).expect("driver task");
    let driver = tokio::spawn(ta.run());
    // The far end only answers ARP, by hand, from a thread of its own, and
    // counts the SYNs it sees.
    let far = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let mut syns = 0;
        let end = std::time::Instant::now() + Duration::from_millis(2500);
        while std::time::Instant::now() < end {
            let Ok(n) = silent.recv_timeout(&mut buf, Duration::from_millis(100)) else {
                continue;
            };
            let frame = &buf[..n];
            match frame.get(12..14) {
                Some([0x08, 0x06]) => {
                    // ARP request for B: reply from B's MAC.
                    let mut reply = frame.to_vec();
                    let mac = EthernetAddress::local_from_seed(2).0;
                    reply[0..6].copy_from_slice(&frame[6..12]);
                    reply[6..12].copy_from_slice(&mac);
                    reply[20..22].copy_from_slice(&[0, 2]);
                    reply[22..28].copy_from_slice(&mac);
                    reply[28..32].copy_from_slice(&B.octets());
                    reply[32..38].copy_from_slice(&frame[22..28]);
                    reply[38..42].copy_from_slice(&frame[28..32]);
                    use tapir_harness::Device;
                    silent.send(&reply).unwrap();
                }
                // IPv4, TCP, flags SYN only.
                Some([0x08, 0x00]) if frame.get(23) == Some(&6) && frame.get(47) == Some(&0x02) => syns += 1,
                _ => {}
            }
        }
        syns
    });
    let connect = timeout(Duration::from_millis(2300), TcpStream::connect(&a, (B, 80))).await;
    assert!(
        connect.is_err(),
        "nobody answered, so the connect is still waiting"
    );
    let syns = tokio::task::spawn_blocking(move || far.join().unwrap())
        .await
        .unwrap();
    assert!(
        syns >= 2,
        "the SYN was sent {syns} times in 2.5 s; the RTO timer did not fire"
    );
    drop(a);
    timeout(LIMIT, driver)
        .await
        .expect("driver task returned")
        .unwrap()
        .unwrap();
}

/// Blocking sockets from another thread work with a task driver: the
/// kick reaches the task from outside the runtime, and events wake the
/// parked thread.
#[tokio::test(flavor = "current_thread")]
async fn blocking_sockets_from_another_thread() {
    let (a, b, _drivers) = pair();
    let server = UdpSocket::bind(&b, (B, 9000)).await.unwrap();
    let stack = a.stack();
    let client = std::thread::spawn(move || {
        let mut s = tapir_harness::UdpSocket::bind(&stack, "0.0.0.0:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 64];
        let mut replies = 0;
        for i in 0..50u8 {
            s.send_to(&[i; 20], SocketAddrV4::new(B, 9000)).unwrap();
            let (n, _) = s.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], &[i; 20]);
            replies += 1;
        }
        replies
    });
    let echo = async {
        let mut buf = [0u8; 64];
        for _ in 0..50 {
            let (n, from) = server.recv_from(&mut buf).await.unwrap();
            server.send_to(&buf[..n], from).await.unwrap();
        }
    };
    timeout(LIMIT, echo).await.expect("50 echoes in time");
    let replies = tokio::task::spawn_blocking(move || client.join().unwrap())
        .await
        .unwrap();
    assert_eq!(replies, 50);
}

/// Dropping the handle ends the task, and a future still waiting on the
/// stack fails instead of hanging.
#[tokio::test(flavor = "current_thread")]
async fn dropping_the_handle_ends_the_task_and_fails_waiters() {
    let (a, b, [ta, _tb]) = pair();
    let listener = TcpListener::bind(&a, (A, 81)).await.unwrap();
    let waiting = tokio::spawn(async move { listener.accept().await.map(|_| ()) });
    tokio::task::yield_now().await;
    drop(a);
    timeout(LIMIT, ta)
        .await
        .expect("driver task returned")
        .unwrap()
        .unwrap();
    let r = timeout(LIMIT, waiting)
        .await
        .expect("the accept returned")
        .unwrap();
    assert!(r.is_err(), "accept on a stopped stack must fail");
    drop(b);
}

/// Busy polling (`DriverOptions::busy_poll`): after traffic, the task polls
/// the device again at once for the spell instead of waiting for it, and
/// sleeps again once the spell has passed without a frame. The stack
/// without it takes a handful of steps in the same time (timers only).
#[tokio::test(flavor = "current_thread")]
async fn busy_polling_spins_for_its_spell_then_sleeps() {
    const SPELL: Duration = Duration::from_millis(300);
    let (da, db) = MemoryDevice::pair().expect("memory pair");
    let opts = DriverOptions {
        busy_poll: Some(SPELL),
        ..Default::default()
    };
    let (a, ta) = Driver::task(stack(A, 1), Box::new(da.with_name("a")), opts).expect("driver task");
    let (b, tb) = task(B, 2, db.with_name("b"));
    let _drivers = [tokio::spawn(ta.run()), tokio::spawn(tb.run())];
    echo_bytes(&b).await;
    let mut c = timeout(LIMIT, TcpStream::connect(&a, (B, 7)))
        .await
        .expect("connected in time")
        .unwrap();
    c.write_all(&[7]).await.unwrap();
    let mut back = [0u8; 1];
    timeout(LIMIT, c.read_exact(&mut back))
        .await
        .expect("echo in time")
        .unwrap();

    // Within the spell: a steps without frames to read; b sleeps.
    let (a0, b0) = (a.steps(), b.steps());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (spun, slept) = (a.steps() - a0, b.steps() - b0);
    assert!(spun > 200, "busy polling took only {spun} steps in 100 ms");
    assert!(slept < 20, "without busy polling {slept} steps in 100 ms");

    // Past the spell (the delayed ACK went long ago): a sleeps too.
    tokio::time::sleep(SPELL + Duration::from_millis(100)).await;
    let a1 = a.steps();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let idle = a.steps() - a1;
    assert!(idle < 20, "{idle} steps in 100 ms after the spell");
}
