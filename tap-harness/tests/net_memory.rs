//! The async sockets (`tapir_harness::net`) over an in-memory link: two
//! tapir stacks, each with its own driver thread, and a tokio runtime for
//! the tasks. No kernel needed.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use tapir_harness::net::{TcpListener, TcpStream, UdpSocket};
use tapir_harness::{Driver, DriverHandle, DriverOptions, MemoryDevice, StackHandle};
use tapir_stack::wire::{EthernetAddress, Ipv4Cidr};
use tapir_stack::{Config, Interface, TcpState};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::time::timeout;

const A: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const LIMIT: Duration = Duration::from_secs(10);

fn stack(ip: Ipv4Addr, seed: u64) -> Interface {
    let cidr = Ipv4Cidr::new(ip, 24).expect("prefix");
    let mut config = Config::new(EthernetAddress::local_from_seed(seed), cidr);
    config.seed = seed;
    Interface::new(config).expect("valid config")
}

fn pair() -> (DriverHandle, DriverHandle) {
    let (da, db) = MemoryDevice::pair().expect("memory pair");
    let a =
        Driver::spawn(stack(A, 1), Box::new(da.with_name("a")), DriverOptions::default()).expect("driver a");
    let b =
        Driver::spawn(stack(B, 2), Box::new(db.with_name("b")), DriverOptions::default()).expect("driver b");
    (a, b)
}

/// A connected pair: (client on `a`, server on `b`).
async fn connected(a: &StackHandle, b: &StackHandle, port: u16) -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind(b, (B, port)).await.unwrap();
    let (client, accepted) = tokio::join!(TcpStream::connect(a, (B, port)), listener.accept());
    (client.unwrap(), accepted.unwrap().0)
}

/// Live sockets of a stack, to check that nothing leaked.
fn sockets(s: &StackHandle) -> usize {
    s.with(|i| i.tcp_connection_count())
}

/// Wait (bounded) until `f` holds on the stack.
fn eventually(stack: &StackHandle, what: &str, mut f: impl FnMut(&mut Interface) -> bool) {
    stack
        .wait_until(Some(LIMIT), |i| f(i).then_some(()))
        .unwrap_or_else(|| panic!("not within {LIMIT:?}: {what}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_with_addresses_and_options() {
    let (a, b) = pair();
    let (mut client, mut server) = connected(&a, &b, 7000).await;
    assert_eq!(server.peer_addr().unwrap(), client.local_addr().unwrap());
    assert_eq!(
        client.peer_addr().unwrap(),
        SocketAddr::V4(SocketAddrV4::new(B, 7000))
    );
    assert!(!client.nodelay().unwrap());
    client.set_nodelay(true).unwrap();
    assert!(client.nodelay().unwrap());
    assert_eq!(client.state().unwrap(), TcpState::Established);

    client.write_all(b"hello tapir").await.unwrap();
    let mut buf = [0u8; 11];
    server.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"hello tapir");
    server.write_all(b"hi").await.unwrap();
    client.readable().await.unwrap();
    let mut buf = [0u8; 8];
    let mut n = 0;
    while n < 2 {
        match client.try_read(&mut buf[n..]) {
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => client.readable().await.unwrap(),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(&buf[..2], b"hi");
    // Nothing more: try_read says WouldBlock, and ready() reports writable only.
    assert_eq!(
        client.try_read(&mut buf).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );
    let r = client
        .ready(Interest::READABLE | Interest::WRITABLE)
        .await
        .unwrap();
    assert!(r.is_writable() && !r.is_readable(), "{r:?}");
    client.writable().await.unwrap();
    assert_eq!(client.try_write(b"x").unwrap(), 1);
    let mut one = [0u8; 1];
    assert_eq!(server.peek(&mut one).await.unwrap(), 1);
    server.read_exact(&mut one).await.unwrap();
    assert_eq!(&one, b"x");
}

/// Dropped futures leave the stack as it was: an accept that never
/// completed takes nothing, a read that never completed loses nothing, and
/// a connect dropped half-way frees its connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_futures_leave_the_stack_consistent() {
    let (a, b) = pair();
    let listener = TcpListener::bind(&b, (B, 7001)).await.unwrap();
    // accept: times out with nothing queued, then a connection is still
    // accepted whole by the next call.
    assert!(timeout(Duration::from_millis(50), listener.accept())
        .await
        .is_err());
    let mut client = TcpStream::connect(&a, (B, 7001)).await.unwrap();
    let (mut server, _) = timeout(LIMIT, listener.accept()).await.unwrap().unwrap();

    // read: a dropped read took nothing.
    let mut buf = [0u8; 16];
    assert!(timeout(Duration::from_millis(50), server.read(&mut buf))
        .await
        .is_err());
    client.write_all(b"after").await.unwrap();
    let mut got = [0u8; 5];
    timeout(LIMIT, server.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got, b"after");

    // connect to a silent host: dropping the future aborts the attempt.
    let before = sockets(&a);
    let silent = SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 99), 9);
    let task = tokio::spawn({
        let a = a.stack();
        async move { TcpStream::connect(&a, silent).await }
    });
    eventually(&a, "connect in progress", |i| {
        i.tcp_connection_count() == before + 1
    });
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert_eq!(sockets(&a), before, "the half-open connection was freed");
    assert!(
        timeout(Duration::from_millis(100), TcpStream::connect(&a, silent))
            .await
            .is_err()
    );
    assert_eq!(sockets(&a), before, "the half-open connection was freed");
    // The listener works on.
    let (c2, s2) = tokio::join!(TcpStream::connect(&a, (B, 7001)), listener.accept());
    c2.unwrap();
    s2.unwrap();
}

/// Half-close: the client's poll_shutdown sends a FIN, the server reads
/// end of stream and can still answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close_with_poll_shutdown() {
    let (a, b) = pair();
    let (mut client, mut server) = connected(&a, &b, 7002).await;
    client.write_all(b"request").await.unwrap();
    client.shutdown().await.unwrap();
    let mut req = Vec::new();
    timeout(LIMIT, server.read_to_end(&mut req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(req, b"request");
    server.write_all(b"response").await.unwrap();
    drop(server);
    let mut resp = Vec::new();
    timeout(LIMIT, client.read_to_end(&mut resp))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp, b"response");
    // Writing after shutdown is a broken pipe.
    assert_eq!(
        client.write(b"x").await.unwrap_err().kind(),
        std::io::ErrorKind::BrokenPipe
    );
}

/// A reset is reported once, to a waiting reader, then reads see end of
/// stream and writes a broken pipe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_wakes_a_waiting_reader() {
    let (a, b) = pair();
    let (mut client, server) = connected(&a, &b, 7003).await;
    client.write_all(b"unread").await.unwrap();
    server.readable().await.unwrap();
    let reader = tokio::spawn(async move {
        let mut buf = [0u8; 8];
        let e = client.read(&mut buf).await.unwrap_err();
        (client, e)
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Closing with unread data resets the connection (RFC 2525 2.17).
    drop(server);
    let (mut client, e) = timeout(LIMIT, reader).await.unwrap().unwrap();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);
    assert_eq!(client.read(&mut [0u8; 8]).await.unwrap(), 0);
    assert_eq!(
        client.write(b"x").await.unwrap_err().kind(),
        std::io::ErrorKind::BrokenPipe
    );
}

/// A fast writer to a reader that does not read: writes stop (pending)
/// once the send buffer and the peer's window are full, then finish when
/// the reader drains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_stays_within_the_buffers() {
    let (a, b) = pair();
    let (mut client, mut server) = connected(&a, &b, 7006).await;
    let chunk = vec![0x5au8; 16 * 1024];
    let mut written = 0usize;
    // Write until a write stays pending for 200 ms.
    while let Ok(n) = timeout(Duration::from_millis(200), client.write(&chunk)).await {
        written += n.unwrap();
        assert!(written < 64 << 20, "64 MB accepted with nobody reading");
    }
    let (sndbuf, rcvbuf) = a.with(|i| (i.config().tcp.send_buffer, i.config().tcp.recv_buffer));
    // The socket's send buffer as autotuning has sized it (2 x cwnd, at
    // most send_buffer_max): what was written is within it and the
    // reader's window, never beyond.
    let cur = a.with(
        |i| match i.tcp_get_option(client.handle(), tapir_stack::TcpOption::SendBuffer(0)) {
            Some(tapir_stack::TcpOption::SendBuffer(n)) => n,
            other => panic!("{other:?}"),
        },
    );
    assert!(
        written <= cur + rcvbuf + 64 * 1024,
        "wrote {written} bytes; buffers are {cur} (autotuned from {sndbuf}) + {rcvbuf}"
    );
    assert!(written >= sndbuf, "the send buffer filled: {written}");
    assert!(cur <= a.with(|i| i.config().tcp.send_buffer_max));
    assert!(a.with(|i| i.tcp_send_queue(client.handle())) <= cur);
    assert_eq!(
        client.try_write(&chunk).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );

    // A writer pending on the full buffer finishes once the reader reads.
    let writer = tokio::spawn(async move {
        client.write_all(&vec![0xa5u8; 1 << 20]).await.unwrap();
        client.shutdown().await.unwrap();
        client
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!writer.is_finished(), "the writer must wait while nobody reads");
    let mut all = Vec::new();
    timeout(LIMIT, server.read_to_end(&mut all))
        .await
        .unwrap()
        .unwrap();
    timeout(LIMIT, writer).await.unwrap().unwrap();
    assert_eq!(all.len(), written + (1 << 20));
    assert!(all[..written].iter().all(|&x| x == 0x5a));
    assert!(all[written..].iter().all(|&x| x == 0xa5));
}

/// Owned halves in two tasks: one writes, one reads, both at once; the
/// write half's drop is the FIN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owned_halves_in_two_tasks() {
    let (a, b) = pair();
    let (client, server) = connected(&a, &b, 7004).await;
    const TOTAL: usize = 2_000_000;
    // The server echoes through its own halves.
    let echo_task = tokio::spawn(async move {
        let (mut r, mut w) = server.into_split();
        tokio::io::copy(&mut r, &mut w).await.unwrap()
    });
    let (mut r, mut w) = client.into_split();
    let writer = tokio::spawn(async move {
        let chunk: Vec<u8> = (0..65_536u32).map(|k| (k % 251) as u8).collect();
        let mut sent = 0;
        while sent < TOTAL {
            let n = (TOTAL - sent).min(chunk.len());
            w.write_all(&chunk[..n]).await.unwrap();
            sent += n;
        }
        w // dropped by the caller: FIN
    });
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 50_000];
        let mut got = 0usize;
        loop {
            let n = r.read(&mut buf).await.unwrap();
            if n == 0 {
                return (got, r);
            }
            for (k, &byte) in buf[..n].iter().enumerate() {
                assert_eq!(byte, (((got + k) % 65_536) % 251) as u8, "byte {}", got + k);
            }
            got += n;
        }
    });
    let w = timeout(Duration::from_secs(60), writer).await.unwrap().unwrap();
    drop(w);
    let (got, r) = timeout(Duration::from_secs(60), reader).await.unwrap().unwrap();
    assert_eq!(got, TOTAL);
    assert_eq!(timeout(LIMIT, echo_task).await.unwrap().unwrap(), TOTAL as u64);
    // reunite refuses halves of different streams; r alone still works.
    drop(r);
}

/// Borrowed halves: read and write the same stream concurrently from one
/// task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn borrowed_halves() {
    let (a, b) = pair();
    let (mut client, mut server) = connected(&a, &b, 7005).await;
    let client_side = async {
        client.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        client.read_exact(&mut buf).await.unwrap();
        buf
    };
    let (mut r, mut w) = server.split();
    let server_side = async {
        let mut buf = [0u8; 4];
        r.read_exact(&mut buf).await.unwrap();
        w.write_all(&buf).await.unwrap();
    };
    let (got, ()) = timeout(LIMIT, async { tokio::join!(client_side, server_side) })
        .await
        .unwrap();
    assert_eq!(&got, b"ping");
}

/// UDP: send_to/recv_from, connect/send/recv filtering by peer, try_ forms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_round_trips() {
    let (a, b) = pair();
    let server = UdpSocket::bind(&b, (B, 5300)).await.unwrap();
    let client = UdpSocket::bind(&a, (A, 0)).await.unwrap();
    let other = UdpSocket::bind(&a, (A, 0)).await.unwrap();
    assert_eq!(
        server.try_recv_from(&mut [0u8; 4]).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );
    // A dropped recv takes nothing.
    assert!(
        timeout(Duration::from_millis(30), server.recv_from(&mut [0u8; 64]))
            .await
            .is_err()
    );
    client.send_to(b"one", (B, 5300)).await.unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = timeout(LIMIT, server.recv_from(&mut buf)).await.unwrap().unwrap();
    assert_eq!(&buf[..n], b"one");
    assert_eq!(from, client.local_addr().unwrap());
    // Connected: recv only takes the peer's datagrams.
    server.connect(client.local_addr().unwrap()).await.unwrap();
    other.send_to(b"noise", (B, 5300)).await.unwrap();
    client.send_to(b"two", (B, 5300)).await.unwrap();
    let n = timeout(LIMIT, server.recv(&mut buf)).await.unwrap().unwrap();
    assert_eq!(&buf[..n], b"two");
    server.send(b"three").await.unwrap();
    client.readable().await.unwrap();
    let (n, _) = client.try_recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"three");
}

/// Per-socket readiness for tasks: a task pending on an idle connection is
/// not polled again while another connection carries traffic, and is
/// polled once more when its own data arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_read_is_not_woken_by_another_sockets_traffic() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let (a, b) = pair();
    let (mut idle_client, mut idle_server) = connected(&a, &b, 7010).await;
    let (mut busy_client, mut busy_server) = connected(&a, &b, 7011).await;
    let polls = Arc::new(AtomicUsize::new(0));
    let idle = tokio::spawn({
        let polls = polls.clone();
        async move {
            let mut buf = [0u8; 8];
            let read = idle_server.read(&mut buf);
            tokio::pin!(read);
            std::future::poll_fn(|cx| {
                polls.fetch_add(1, Ordering::SeqCst);
                read.as_mut().poll(cx)
            })
            .await
        }
    });
    while polls.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let steps = b.steps();
    let mut buf = [0u8; 4];
    for k in 0..200u32 {
        busy_client.write_all(&k.to_be_bytes()).await.unwrap();
        busy_server.read_exact(&mut buf).await.unwrap();
        busy_server.write_all(&buf).await.unwrap();
        busy_client.read_exact(&mut buf).await.unwrap();
        assert_eq!(u32::from_be_bytes(buf), k);
    }
    assert!(b.steps() - steps >= 200);
    assert_eq!(polls.load(Ordering::SeqCst), 1, "the idle read was woken");
    idle_client.write_all(b"x").await.unwrap();
    assert_eq!(timeout(LIMIT, idle).await.unwrap().unwrap().unwrap(), 1);
    assert_eq!(polls.load(Ordering::SeqCst), 2);
}

/// Stopping the driver wakes pending futures with an error instead of
/// leaving them pending forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driver_shutdown_fails_pending_futures() {
    let (a, b) = pair();
    let (_client, mut server) = connected(&a, &b, 7020).await;
    let listener = TcpListener::bind(&b, (B, 7021)).await.unwrap();
    let read = tokio::spawn(async move {
        let mut buf = [0u8; 8];
        server.read(&mut buf).await
    });
    let accept = tokio::spawn(async move { listener.accept().await.map(|_| ()) });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!read.is_finished() && !accept.is_finished());
    tokio::task::spawn_blocking(move || drop(b.shutdown()))
        .await
        .unwrap();
    let e = timeout(LIMIT, read).await.unwrap().unwrap().unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotConnected, "{e}");
    assert!(timeout(LIMIT, accept).await.unwrap().unwrap().is_err());
}

/// Many concurrent connections on two worker threads: an echo server task
/// per connection, each client sending and reading back at once. A lost
/// wakeup would leave one of them pending past the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_echo_connections() {
    const CONNS: usize = 100;
    const LEN: usize = 20_000;
    let (a, b) = pair();
    let listener = TcpListener::bind(&b, (B, 7030)).await.unwrap();
    let server = tokio::spawn(async move {
        for _ in 0..CONNS {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                tokio::io::copy(&mut r, &mut w).await.unwrap();
                w.shutdown().await.unwrap();
            });
        }
    });
    let mut clients = Vec::new();
    for k in 0..CONNS {
        let a = a.stack();
        clients.push(tokio::spawn(async move {
            let s = TcpStream::connect(&a, (B, 7030)).await.unwrap();
            let (mut r, mut w) = s.into_split();
            let msg: Vec<u8> = (0..LEN).map(|i| (i * 31 + k) as u8).collect();
            let expect = msg.clone();
            let writer = tokio::spawn(async move {
                w.write_all(&msg).await.unwrap();
                w.shutdown().await.unwrap();
            });
            let mut back = Vec::new();
            r.read_to_end(&mut back).await.unwrap();
            writer.await.unwrap();
            assert!(back == expect, "connection {k} echoed wrong bytes");
        }));
    }
    for c in clients {
        timeout(Duration::from_secs(60), c)
            .await
            .expect("a connection hung")
            .unwrap();
    }
    timeout(LIMIT, server).await.unwrap().unwrap();
}
