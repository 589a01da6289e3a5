//! tapir's async sockets (`tapir_harness::net`) against the real Linux
//! kernel, and the proof that they port from `tokio::net`: hyper serving
//! over tapir's `TcpListener`, fetched by the kernel's curl, and one echo
//! program compiled against both APIs.
//!
//! Each test makes its own network namespace with a TAP in it: the kernel
//! is 10.77.0.1/24, tapir 10.77.0.2/24. Nothing leaves the namespace: the
//! kernel-side tokio sockets are made on a thread inside it. Without
//! CAP_NET_ADMIN the tests print `SKIPPED: ...` and pass; with
//! `TAPIR_REQUIRE_KERNEL=1` they fail instead.

use std::io;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tapir_harness::{
    require_kernel, Driver, DriverHandle, DriverOptions, NetNs, StackHandle, TapDevice, TapOptions,
};
use tapir_stack::wire::{EthernetAddress, Ipv4Cidr};
use tapir_stack::{Config, Interface};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

const KERNEL: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const TAPIR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const LIMIT: Duration = Duration::from_secs(20);

/// A namespace with tapir on a TAP in it.
struct Rig {
    driver: Option<DriverHandle>,
    ns: NetNs,
}

impl Rig {
    fn new(tag: &str) -> Rig {
        let ns = NetNs::create(tag).expect("create netns");
        let tap = ns
            .run_in(|| TapDevice::open(&TapOptions::new("tap0").kernel_ipv4(KERNEL, 24)))
            .expect("enter netns")
            .unwrap_or_else(|e| panic!("netns {}: open TAP: {e}", ns.name()));
        let mut config = Config::new(
            EthernetAddress::local_from_seed(7),
            Ipv4Cidr::new(TAPIR, 24).expect("prefix"),
        );
        if let Some(mtu) = tapir_harness::Device::mtu(&tap) {
            config.mtu = mtu;
        }
        let iface = Interface::new(config).expect("valid config");
        let driver = Driver::spawn(iface, Box::new(tap), DriverOptions::default()).expect("spawn driver");
        Rig {
            driver: Some(driver),
            ns,
        }
    }

    fn stack(&self) -> StackHandle {
        self.driver.as_ref().expect("driver running").stack()
    }

    /// Run a shell command in the namespace; returns stdout, panics on
    /// failure.
    fn sh(&self, script: &str, secs: u64) -> String {
        let o = self
            .ns
            .exec_timeout(&["sh", "-c", script], Duration::from_secs(secs))
            .unwrap_or_else(|e| panic!("netns {}: {script}: {e}", self.ns.name()));
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "netns {}: `{script}` failed ({}):\n{out}\n{}",
            self.ns.name(),
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        out
    }

    /// Run `fut` on a current-thread tokio runtime on a thread inside the
    /// namespace, so that tokio's kernel sockets belong to it.
    fn in_ns<T: Send>(&self, fut: impl std::future::Future<Output = T> + Send) -> T {
        self.ns
            .run_in(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime")
                    .block_on(fut)
            })
            .expect("enter netns")
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let stats = self.driver.take().map(|d| d.shutdown().stats().to_string());
        if std::thread::panicking() {
            eprintln!("kernel test failed in netns {}", self.ns.name());
            if let Some(s) = stats {
                eprintln!("tapir counters:\n{s}");
            }
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

// ---------------------------------------------------------------------------
// hyper

mod web {
    use http_body_util::{BodyExt, Full};
    use hyper::body::{Bytes, Incoming};
    use hyper::{Request, Response};

    pub async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
        if req.uri().path() == "/echo" {
            let body = req.into_body().collect().await?.to_bytes();
            return Ok(Response::new(Full::new(body)));
        }
        let text = format!("hello from tapir: {} {}\n", req.method(), req.uri().path());
        Ok(Response::new(Full::new(Bytes::from(text))))
    }
}

/// hyper 1.x, through hyper-util's `TokioIo`, serves HTTP/1.1 over tapir's
/// async `TcpListener`; the kernel's curl fetches from it, twice on one
/// keep-alive connection, and POSTs a megabyte that comes back intact.
#[test]
fn hyper_serves_curl_over_tapir() {
    require_kernel!("curl", "sh", "sha256sum");
    let rig = Rig::new("net-hyper");
    let rt = runtime();
    let stack = rig.stack();
    let accepted = Arc::new(AtomicUsize::new(0));
    let server = {
        let accepted = accepted.clone();
        rt.spawn(async move {
            let listener = tapir_harness::net::TcpListener::bind(&stack, "0.0.0.0:8080").await?;
            loop {
                let (stream, _) = listener.accept().await?;
                accepted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(
                            hyper_util::rt::TokioIo::new(stream),
                            hyper::service::service_fn(web::handle),
                        )
                        .await;
                });
            }
            #[allow(unreachable_code)]
            io::Result::Ok(())
        })
    };

    let out = rig.sh(
        "curl -sS --max-time 20 http://10.77.0.2:8080/a http://10.77.0.2:8080/b",
        30,
    );
    assert_eq!(out, "hello from tapir: GET /a\nhello from tapir: GET /b\n");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "curl kept its one connection alive"
    );

    let sums = rig.sh(
        "f=$(mktemp) && head -c 1000000 /dev/urandom > $f && sha256sum < $f && \
         curl -sS --max-time 20 --data-binary @$f http://10.77.0.2:8080/echo | sha256sum; rm -f $f",
        30,
    );
    let lines: Vec<&str> = sums.lines().collect();
    assert_eq!(lines.len(), 2, "{sums}");
    assert_eq!(lines[0], lines[1], "the echoed body differs");
    server.abort();
}

// ---------------------------------------------------------------------------
// One tokio::net program, two stacks

mod on_tokio {
    use tokio::net::{TcpListener, TcpStream};

    pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
        TcpListener::bind(addr).await
    }

    pub async fn connect(addr: &str) -> std::io::Result<TcpStream> {
        TcpStream::connect(addr).await
    }

    include!("programs/echo.rs");
}

mod on_tapir {
    use tapir_harness::net::{TcpListener, TcpStream};
    use tapir_harness::StackHandle;

    pub async fn bind(stack: &StackHandle, addr: &str) -> std::io::Result<TcpListener> {
        TcpListener::bind(stack, addr).await
    }

    pub async fn connect(stack: &StackHandle, addr: &str) -> std::io::Result<TcpStream> {
        TcpStream::connect(stack, addr).await
    }

    include!("programs/echo.rs");
}

fn message(len: usize) -> Vec<u8> {
    (0..len).map(|k| (k * 7 % 253) as u8).collect()
}

/// The echo program of `programs/echo.rs`, unchanged, runs on tokio's
/// kernel sockets and on tapir's, in every pairing: kernel to kernel,
/// kernel client to tapir server, tapir client to kernel server.
#[test]
fn the_same_tokio_program_runs_on_both_stacks() {
    require_kernel!();
    let rig = Rig::new("net-port");
    let rt = runtime();
    let stack = rig.stack();
    let msg = message(300_000);

    // Kernel to kernel, both on tokio::net inside the namespace.
    let (served, back) = rig.in_ns(async {
        let listener = on_tokio::bind("10.77.0.1:7100").await.unwrap();
        let server = tokio::spawn(on_tokio::serve(listener));
        let back = on_tokio::ask(on_tokio::connect("10.77.0.1:7100").await.unwrap(), msg.clone())
            .await
            .unwrap();
        (server.await.unwrap().unwrap(), back)
    });
    assert_eq!(served, msg.len() as u64);
    assert!(back == msg, "kernel to kernel");

    // The program's server on tapir, its client on the kernel.
    let listener = rt.block_on(on_tapir::bind(&stack, "0.0.0.0:7101")).unwrap();
    let server = rt.spawn(on_tapir::serve(listener));
    let back = rig.in_ns(async {
        let s = on_tokio::connect("10.77.0.2:7101").await.unwrap();
        timeout(LIMIT, on_tokio::ask(s, msg.clone()))
            .await
            .unwrap()
            .unwrap()
    });
    assert!(back == msg, "kernel client, tapir server");
    assert_eq!(
        rt.block_on(async { timeout(LIMIT, server).await })
            .unwrap()
            .unwrap()
            .unwrap(),
        msg.len() as u64
    );

    // The program's client on tapir, its server on the kernel.
    std::thread::scope(|s| {
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let kernel = s.spawn(|| {
            rig.in_ns(async move {
                let listener = on_tokio::bind("10.77.0.1:7102").await.unwrap();
                ready_tx.send(()).unwrap();
                timeout(LIMIT, on_tokio::serve(listener)).await.unwrap().unwrap()
            })
        });
        ready.recv_timeout(LIMIT).expect("kernel server ready");
        let back = rt
            .block_on(async {
                let s = on_tapir::connect(&stack, "10.77.0.1:7102").await?;
                timeout(LIMIT, on_tapir::ask(s, msg.clone())).await?
            })
            .unwrap();
        assert!(back == msg, "tapir client, kernel server");
        assert_eq!(kernel.join().unwrap(), msg.len() as u64);
    });
}

/// With a real peer: a tokio timeout around a read that the peer never
/// answers leaves the connection usable; the peer's half-close is end of
/// stream while tapir can still answer; a reset from the peer reaches a
/// pending read.
#[test]
fn timeouts_half_close_and_reset_with_a_kernel_peer() {
    require_kernel!("python3");
    let rig = Rig::new("net-peer");
    let rt = runtime();
    let stack = rig.stack();
    let listener = rt
        .block_on(tapir_harness::net::TcpListener::bind(&stack, "0.0.0.0:7200"))
        .unwrap();

    // The peer: waits 300 ms, sends "ping", half-closes, reads the answer
    // to end of stream; then a second connection sends "x" and resets.
    const PEER: &str = r#"
import socket, struct, sys, time
s = socket.create_connection(("10.77.0.2", 7200))
time.sleep(0.3)
s.sendall(b"ping")
s.shutdown(socket.SHUT_WR)
data = b""
while True:
    d = s.recv(100)
    if not d:
        break
    data += d
print(data.decode())
s.close()
r = socket.create_connection(("10.77.0.2", 7200))
r.sendall(b"x")
time.sleep(0.2)
r.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
r.close()
"#;
    let peer = {
        let ns_name = rig.ns.name().to_string();
        std::thread::spawn(move || {
            std::process::Command::new("ip")
                .args(["netns", "exec", &ns_name, "python3", "-c", PEER])
                .output()
                .expect("python")
        })
    };

    rt.block_on(async {
        let (mut s, _) = timeout(LIMIT, listener.accept()).await.unwrap().unwrap();
        let mut buf = [0u8; 16];
        // Nothing for 300 ms: a 50 ms timeout fires and takes nothing.
        assert!(timeout(Duration::from_millis(50), s.read(&mut buf))
            .await
            .is_err());
        let mut got = Vec::new();
        timeout(LIMIT, s.read_to_end(&mut got)).await.unwrap().unwrap();
        assert_eq!(got, b"ping");
        s.write_all(b"pong").await.unwrap();
        s.shutdown().await.unwrap();

        let (mut r, _) = timeout(LIMIT, listener.accept()).await.unwrap().unwrap();
        let mut one = [0u8; 1];
        r.read_exact(&mut one).await.unwrap();
        let e = timeout(LIMIT, r.read(&mut buf)).await.unwrap().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
    });
    let out = peer.join().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "pong");
}
