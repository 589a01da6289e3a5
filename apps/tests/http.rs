//! The HTTP/1.1 server and client.
//!
//! Part 1 runs the server over `std::net` on 127.0.0.1 (ephemeral ports, no
//! privileges): parsing, every status code, pipelining, bodies, limits,
//! timeouts and path safety. Part 2 (the `kernel_` tests) runs it on tapir
//! in a network namespace against curl and python.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tapir_apps::http::client::{fetch, Client, Url};
use tapir_apps::http::server::std_acceptor;
use tapir_apps::http::{pattern, HttpServer, ServerConfig};

struct Server {
    server: Option<HttpServer>,
    addr: SocketAddr,
}

impl Server {
    fn start(config: ServerConfig) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = HttpServer::spawn("http-test", config, std_acceptor(listener).unwrap()).unwrap();
        Server {
            server: Some(server),
            addr,
        }
    }

    fn default() -> Server {
        Server::start(ServerConfig::default())
    }

    fn stream(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
        s
    }

    fn client(&self) -> Client<TcpStream> {
        Client::new(self.stream())
    }

    fn host(&self) -> String {
        self.addr.to_string()
    }

    fn http(&self) -> &HttpServer {
        self.server.as_ref().unwrap()
    }

    /// Send raw bytes on a fresh connection; the response (status and body).
    fn raw(&self, bytes: &[u8]) -> (u16, Vec<u8>, tapir_apps::http::ResponseHead) {
        let mut c = self.client();
        c.get_mut().write_all(bytes).unwrap();
        let method = if bytes.starts_with(b"HEAD") { "HEAD" } else { "GET" };
        let (head, body) = c.response_vec(method).unwrap();
        (head.status, body, head)
    }

    fn status(&self, bytes: &[u8]) -> u16 {
        self.raw(bytes).0
    }
}

/// Everything the peer sends until it closes.
fn read_all(s: &mut TcpStream) -> Vec<u8> {
    let mut v = Vec::new();
    s.read_to_end(&mut v).unwrap();
    v
}

fn get(c: &mut Client<TcpStream>, host: &str, target: &str) -> (u16, Vec<u8>) {
    c.send("GET", target, host, &[], &[]).unwrap();
    let (h, body) = c.response_vec("GET").unwrap();
    (h.status, body)
}

#[test]
fn request_parsing_edge_cases() {
    let s = Server::default();
    // Blank lines before the request line, bare LF line endings, odd
    // spacing around field values, header names in any case.
    assert_eq!(
        s.status(b"\r\n\r\nGET /bytes/3 HTTP/1.1\r\nhOsT:   x  \r\n\r\n"),
        200
    );
    let (status, body, _) = s.raw(b"GET /bytes/5 HTTP/1.1\nHost: x\n\n");
    assert_eq!((status, body), (200, pattern(5)));
    // absolute-form (RFC 9112 3.2.2) must be accepted.
    let (status, body, _) = s.raw(b"GET http://anything:1234/bytes/4 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!((status, body), (200, pattern(4)));
    // HTTP/1.x minor versions above 1 are spoken as 1.1.
    assert_eq!(s.status(b"GET /bytes/1 HTTP/1.9\r\nHost: x\r\n\r\n"), 200);
    // HTTP/1.0: no Host needed, and the connection closes after.
    let mut c = s.stream();
    c.write_all(b"GET /bytes/7 HTTP/1.0\r\n\r\n").unwrap();
    let all = String::from_utf8_lossy(&read_all(&mut c)).into_owned();
    assert!(
        all.starts_with("HTTP/1.1 200 OK\r\n") && all.contains("Connection: close"),
        "{all}"
    );
    // HTTP/1.0 with keep-alive stays open and says so.
    let mut c = s.client();
    for _ in 0..2 {
        c.get_mut()
            .write_all(b"GET /bytes/2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap();
        let (h, body) = c.response_vec("GET").unwrap();
        assert_eq!((h.status, body.len()), (200, 2));
        assert_eq!(h.header("connection"), Some("keep-alive"));
    }
    // A length unknown in advance goes chunked to 1.1, close-delimited to 1.0.
    let (_, body, h) = s.raw(b"GET /bytes/70000?chunked HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        (h.header("transfer-encoding"), body),
        (Some("chunked"), pattern(70_000))
    );
    let mut c = s.stream();
    c.write_all(b"GET /bytes/70000?chunked HTTP/1.0\r\n\r\n").unwrap();
    let all = read_all(&mut c);
    let split = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(!String::from_utf8_lossy(&all[..split]).contains("chunked"));
    assert_eq!(&all[split..], &pattern(70_000)[..]);
    // Repeated identical Content-Length is one length.
    let (status, body, _) =
        s.raw(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\nabc");
    assert_eq!((status, body), (200, b"abc".to_vec()));
}

#[test]
fn every_error_status() {
    let s = Server::start(ServerConfig {
        max_body: 1000,
        ..ServerConfig::default()
    });
    let cases: &[(&[u8], u16)] = &[
        (b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n\r\n", 400), // no Host in 1.1
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400), // two Hosts
        (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400), // space before colon
        (b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400), // obs-fold
        (b"GET / HTTP/1.1\r\nHost: x\r\nbroken\r\n\r\n", 400), // no colon
        (b"GET / HTTP/1.1\r\nHost: x\x01y\r\n\r\n", 400), // control char
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", 400),
        (
            b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            400,
        ),
        (
            b"POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        (
            b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            400,
        ),
        (b"GET / HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\n\r\n", 417),
        (b"GET /nothing-here HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        (b"GET /bytes/abc HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        (b"GET /bytes/99999999999999 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        (b"DELETE /bytes/1 HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        (
            b"POST /bytes/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
            405,
        ),
        (b"POST /echo HTTP/1.1\r\nHost: x\r\n\r\n", 411),
        (
            b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n",
            413,
        ),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        (b"GET / HTTP/0.9\r\nHost: x\r\n\r\n", 505),
        (b"GET / HTTP/1\r\nHost: x\r\n\r\n", 400),
        (b"BREW / HTTP/1.1\r\nHost: x\r\n\r\n", 501),
        (
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            501,
        ),
        (
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
            501,
        ),
    ];
    for (request, want) in cases {
        let (status, _, head) = s.raw(request);
        assert_eq!(status, *want, "{}", String::from_utf8_lossy(request));
        if status == 405 {
            let allow = head.header("allow").unwrap();
            assert!(allow == "GET, HEAD" || allow == "POST", "{allow}");
        }
        // Errors in the message itself close the connection; errors about
        // the resource (404, 405, a bad N in /bytes/N) do not.
        let about_resource = [404, 405].contains(&status) || request.starts_with(b"GET /bytes/");
        if status >= 400 && !about_resource {
            assert!(
                head.closes(),
                "{status} should close: {}",
                String::from_utf8_lossy(request)
            );
        }
    }
    // 414: a request line over 8 KiB.
    let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000));
    assert_eq!(s.status(long.as_bytes()), 414);
    // 431: one field over 8 KiB; more than 100 fields; a head over 64 KiB.
    let big = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "b".repeat(9000));
    assert_eq!(s.status(big.as_bytes()), 431);
    let many = format!("GET / HTTP/1.1\r\nHost: x\r\n{}\r\n", "X-A: 1\r\n".repeat(101));
    assert_eq!(s.status(many.as_bytes()), 431);
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: x\r\n{}\r\n",
        format!("X-A: {}\r\n", "c".repeat(8000)).repeat(9)
    );
    assert_eq!(s.status(huge.as_bytes()), 431);
    // 413 for a chunked body that outgrows the limit as it arrives.
    let mut chunked = b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..3 {
        chunked.extend_from_slice(b"1f4\r\n");
        chunked.extend_from_slice(&[b'z'; 500]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(s.status(&chunked), 413);
    // A body within the limit on a resource that takes none is read and
    // dropped, and the connection carries on.
    let mut c = s.client();
    c.send("POST", "/missing", &s.host(), &[], b"0123456789").unwrap();
    assert_eq!(c.response_vec("POST").unwrap().0.status, 404);
    assert_eq!(get(&mut c, &s.host(), "/bytes/3"), (200, pattern(3)));
}

#[test]
fn busy_server_answers_503() {
    let s = Server::start(ServerConfig {
        max_connections: 1,
        ..ServerConfig::default()
    });
    let mut first = s.client();
    assert_eq!(get(&mut first, &s.host(), "/bytes/1").0, 200);
    let (status, _, head) = s.raw(b"GET /bytes/1 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 503);
    assert_eq!(head.header("retry-after"), Some("1"));
    assert_eq!(s.http().rejected(), 1);
    // The first connection is still served; once it goes, so are others.
    assert_eq!(get(&mut first, &s.host(), "/bytes/2").0, 200);
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.http().active() > 0 {
        assert!(Instant::now() < deadline, "connection thread did not end");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(s.status(b"GET /bytes/1 HTTP/1.1\r\nHost: x\r\n\r\n"), 200);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let s = Server::default();
    let mut c = s.client();
    // Three requests in one write, the middle one with a body.
    c.get_mut()
        .write_all(
            b"GET /bytes/10 HTTP/1.1\r\nHost: x\r\n\r\n\
              POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
              HEAD /bytes/30 HTTP/1.1\r\nHost: x\r\n\r\n\
              GET /bytes/20?chunked HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .unwrap();
    let (h, body) = c.response_vec("GET").unwrap();
    assert_eq!((h.status, body), (200, pattern(10)));
    let (h, body) = c.response_vec("POST").unwrap();
    assert_eq!((h.status, body), (200, b"hello".to_vec()));
    let (h, body) = c.response_vec("HEAD").unwrap();
    assert_eq!(
        (h.status, h.header("content-length"), body.len()),
        (200, Some("30"), 0)
    );
    let (h, body) = c.response_vec("GET").unwrap();
    assert_eq!((h.status, body), (200, pattern(20)));
    assert_eq!(s.http().connections(), 1);
}

#[test]
fn chunked_upload_with_trailers_round_trips() {
    let s = Server::default();
    let mut c = s.client();
    c.send_head(
        "POST",
        "/echo",
        &s.host(),
        &[("Transfer-Encoding", "chunked"), ("Content-Type", "text/plain")],
    )
    .unwrap();
    c.get_mut()
        .write_all(
            b"5;name=value\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Checksum: 42\r\nX-Other: yes\r\n\r\n",
        )
        .unwrap();
    let mut body = Vec::new();
    let (h, info) = c.response("POST", &mut body).unwrap();
    assert_eq!(h.status, 200);
    assert_eq!(h.header("transfer-encoding"), Some("chunked"));
    assert_eq!(h.header("content-type"), Some("text/plain"));
    assert_eq!(body, b"hello world");
    let trailers: Vec<(String, String)> = info.trailers.into_iter().map(|t| (t.name, t.value)).collect();
    assert_eq!(
        trailers,
        [
            ("X-Checksum".into(), "42".into()),
            ("X-Other".into(), "yes".into())
        ]
    );
    // The connection is still good after the trailer section.
    assert_eq!(get(&mut c, &s.host(), "/bytes/9"), (200, pattern(9)));
}

#[test]
fn expect_100_continue() {
    let s = Server::default();
    let mut c = s.stream();
    c.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        .unwrap();
    let mut interim = [0u8; 25];
    c.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    c.write_all(b"ping").unwrap();
    let mut client = Client::new(c);
    let (h, body) = client.response_vec("POST").unwrap();
    assert_eq!((h.status, body), (200, b"ping".to_vec()));
}

#[test]
fn keep_alive_serves_100_requests_on_one_connection() {
    let s = Server::default();
    let mut c = s.client();
    for i in 0..100 {
        assert_eq!(get(&mut c, &s.host(), &format!("/bytes/{i}")), (200, pattern(i)));
    }
    assert_eq!(s.http().connections(), 1);
    assert_eq!(s.http().requests(), 100);
    // Connection: close is honoured.
    c.send("GET", "/bytes/1", &s.host(), &[("Connection", "close")], &[])
        .unwrap();
    let (h, _) = c.response_vec("GET").unwrap();
    assert!(h.closes());
    let mut rest = Vec::new();
    assert_eq!(c.get_mut().read_to_end(&mut rest).unwrap(), 0);
}

#[test]
fn head_has_no_body() {
    let s = Server::default();
    let mut c = s.client();
    for target in ["/bytes/100000", "/", "/nothing"] {
        c.send("HEAD", target, &s.host(), &[], &[]).unwrap();
        let (h, body) = c.response_vec("HEAD").unwrap();
        assert!(body.is_empty());
        assert!(h.header("content-length").is_some());
    }
    // Had any body been sent, this would read it as the next response.
    assert_eq!(get(&mut c, &s.host(), "/bytes/4"), (200, pattern(4)));
}

#[test]
fn generated_bytes_are_exact() {
    let s = Server::default();
    let mut c = s.client();
    for n in [0usize, 1, 1000, 65_521, 65_536, 1_000_003] {
        let (status, body) = get(&mut c, &s.host(), &format!("/bytes/{n}"));
        assert_eq!(status, 200);
        assert_eq!(body.len(), n);
        assert!(body == pattern(n), "content of /bytes/{n}");
        let (_, chunked) = get(&mut c, &s.host(), &format!("/bytes/{n}?chunked"));
        assert!(chunked == pattern(n), "content of /bytes/{n}?chunked");
    }
    // The one-shot client too.
    let url = Url::parse(&format!("http://{}/bytes/12345", s.addr)).unwrap();
    let mut out = Vec::new();
    let (h, len) = fetch(s.stream(), "GET", &url, &mut out).unwrap();
    assert_eq!((h.status, len, out), (200, 12_345, pattern(12_345)));
}

#[test]
fn echo_round_trips_10_mb() {
    let s = Server::default();
    let n = 10 << 20;
    let data: Vec<u8> = (0..n)
        .map(|i: usize| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for chunked in [false, true] {
        let mut c = s.client();
        let mut writer = c.get_ref().try_clone().unwrap();
        let to_send = data.clone();
        let host = s.host();
        // The echo streams: read while we write.
        let sender = std::thread::spawn(move || {
            if chunked {
                let head =
                    format!("POST /echo HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n");
                writer.write_all(head.as_bytes()).unwrap();
                for piece in to_send.chunks(100_000) {
                    writer
                        .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                        .unwrap();
                    writer.write_all(piece).unwrap();
                    writer.write_all(b"\r\n").unwrap();
                }
                writer.write_all(b"0\r\n\r\n").unwrap();
            } else {
                let head = format!(
                    "POST /echo HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\n\r\n",
                    to_send.len()
                );
                writer.write_all(head.as_bytes()).unwrap();
                writer.write_all(&to_send).unwrap();
            }
        });
        let (h, body) = c.response_vec("POST").unwrap();
        sender.join().unwrap();
        assert_eq!(h.status, 200);
        assert_eq!(body.len(), data.len(), "chunked: {chunked}");
        assert!(body == data, "echo differs (chunked: {chunked})");
    }
}

/// A root with files, a directory with an index, a symlink out and a
/// secret beside the root.
fn make_root(tag: &str) -> (PathBuf, PathBuf) {
    let base = std::env::temp_dir().join(format!("tapir-http-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let root = base.join("root");
    std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
    std::fs::write(base.join("secret.txt"), "SECRET").unwrap();
    std::fs::write(root.join("hello.txt"), "hello from the root\n").unwrap();
    std::fs::write(root.join("page.html"), "<p>hi</p>").unwrap();
    std::fs::write(root.join("sub/index.html"), "<h1>sub index</h1>").unwrap();
    std::fs::write(root.join("sub/deeper/data.bin"), pattern(3000)).unwrap();
    std::fs::write(root.join("with space.txt"), "spaced").unwrap();
    std::os::unix::fs::symlink(base.join("secret.txt"), root.join("escape.txt")).unwrap();
    std::os::unix::fs::symlink(&base, root.join("escape-dir")).unwrap();
    std::os::unix::fs::symlink(root.join("hello.txt"), root.join("inside-link.txt")).unwrap();
    (base, root)
}

#[test]
fn static_files_and_path_safety() {
    let (base, root) = make_root("static");
    let s = Server::start(ServerConfig {
        root: Some(root.clone()),
        ..ServerConfig::default()
    });
    let mut c = s.client();
    let host = s.host();
    let mut check = |target: &str| -> (u16, Vec<u8>, tapir_apps::http::ResponseHead) {
        c.send("GET", target, &host, &[], &[]).unwrap();
        let (h, body) = c.response_vec("GET").unwrap();
        (h.status, body, h)
    };
    let (status, body, h) = check("/hello.txt");
    assert_eq!((status, body.as_slice()), (200, &b"hello from the root\n"[..]));
    assert_eq!(h.header("content-type"), Some("text/plain; charset=utf-8"));
    assert!(h.header("last-modified").is_some_and(|d| d.ends_with(" GMT")));
    assert_eq!(
        check("/page.html").2.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(check("/sub/deeper/data.bin").1, pattern(3000));
    assert_eq!(check("/with%20space.txt").1, b"spaced");
    assert_eq!(check("/sub/").1, b"<h1>sub index</h1>");
    let (status, _, h) = check("/sub");
    assert_eq!((status, h.header("location")), (301, Some("/sub/")));
    assert_eq!(check("/inside-link.txt").0, 200);
    assert_eq!(check("/nope.txt").0, 404);
    assert_eq!(check("/").0, 404, "a root without index.html");
    // Traversal in every spelling; none may show the secret.
    for (target, want) in [
        ("/../secret.txt", 403),
        ("/sub/../../secret.txt", 403),
        ("/%2e%2e/secret.txt", 403),
        ("/%2E%2E%2Fsecret.txt", 403),
        ("/..%2fsecret.txt", 403),
        ("/sub/..%5c..%5csecret.txt", 404),
        ("http://x/../secret.txt", 403),
        ("//etc/passwd", 404),
        ("/escape.txt", 403),
        ("/escape-dir/secret.txt", 403),
        ("/escape-dir/", 403),
        ("/%00", 400),
        ("/%zz", 400),
    ] {
        let (status, body, _) = check(target);
        assert_eq!(status, want, "{target}");
        assert!(
            !String::from_utf8_lossy(&body).contains("SECRET"),
            "{target} leaked"
        );
    }
    // A raw request with a target that is not a path.
    assert_eq!(s.status(b"GET secret.txt HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    assert_eq!(
        s.status(b"POST /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"),
        405
    );
    drop(s);
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn root_must_exist() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let r = HttpServer::spawn(
        "bad-root",
        ServerConfig {
            root: Some(Path::new("/nonexistent/tapir").to_path_buf()),
            ..ServerConfig::default()
        },
        std_acceptor(listener).unwrap(),
    );
    assert!(r.is_err());
}

#[test]
fn slowloris_is_cut_off_while_others_are_served() {
    let s = Server::start(ServerConfig {
        header_timeout: Duration::from_secs(4),
        ..ServerConfig::default()
    });
    let addr = s.addr;
    let started = Instant::now();
    // The slow client: one byte of a head every 100 ms, forever.
    let slow = std::thread::spawn(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let head = b"GET /bytes/1 HTTP/1.1\r\nHost: x\r\nX-Slow: "
            .iter()
            .chain(std::iter::repeat(&b'z'));
        let mut got = Vec::new();
        for &b in head {
            if c.write_all(&[b]).is_err() {
                break;
            }
            let mut buf = [0u8; 512];
            match c.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
            if started.elapsed() > Duration::from_secs(15) {
                break;
            }
        }
        (started.elapsed(), String::from_utf8_lossy(&got).into_owned())
    });
    // Meanwhile others are served at once.
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..5 {
        let t = Instant::now();
        let mut c = s.client();
        assert_eq!(get(&mut c, &s.host(), "/bytes/1000").0, 200);
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "a fast client waited {:?}",
            t.elapsed()
        );
    }
    let (elapsed, got) = slow.join().unwrap();
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    assert!(
        elapsed >= Duration::from_millis(3900) && elapsed < Duration::from_secs(10),
        "cut off after {elapsed:?}"
    );
}

#[test]
fn idle_connections_are_closed() {
    let s = Server::start(ServerConfig {
        idle_timeout: Duration::from_millis(300),
        header_timeout: Duration::from_millis(500),
        ..ServerConfig::default()
    });
    // After a request, idle beyond the keep-alive timeout: closed quietly.
    let mut c = s.client();
    assert_eq!(get(&mut c, &s.host(), "/bytes/1").0, 200);
    let t = Instant::now();
    assert!(read_all(c.get_mut()).is_empty());
    assert!(t.elapsed() < Duration::from_secs(3));
    // A connection that never sends anything is closed after the header
    // timeout, also without a response.
    let mut quiet = s.stream();
    let t = Instant::now();
    assert!(read_all(&mut quiet).is_empty());
    assert!(t.elapsed() >= Duration::from_millis(400) && t.elapsed() < Duration::from_secs(3));
}

#[test]
fn stats_endpoint_serves_the_closure() {
    let s = Server::start(ServerConfig {
        stats: Some(std::sync::Arc::new(|| "{\"counters\": {\"x\": 1}}".to_string())),
        ..ServerConfig::default()
    });
    let (status, body, h) = s.raw(b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        (status, h.header("content-type")),
        (200, Some("application/json"))
    );
    assert_eq!(body, b"{\"counters\": {\"x\": 1}}");
    let (status, body, _) = s.raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("/stats"));
    // Without a closure there is no /stats.
    let plain = Server::default();
    assert_eq!(plain.status(b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n"), 404);
}

#[test]
fn a_client_that_stops_reading_is_dropped() {
    let s = Server::start(ServerConfig {
        io_timeout: Duration::from_millis(500),
        ..ServerConfig::default()
    });
    let c = s.stream();
    (&c).write_all(b"GET /bytes/1000000000 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // Never read: the server's writes time out and it lets go.
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.http().active() > 0 || s.http().requests() == 0 {
        assert!(Instant::now() < deadline, "server still stuck writing");
        std::thread::sleep(Duration::from_millis(20));
    }
    c.shutdown(Shutdown::Both).unwrap();
}

// ---------------------------------------------------------------------------
// Part 2: tapir serving HTTP to the kernel's curl and python, and tapir's
// client tools against kernel servers, each test in its own namespace.

mod kernel {
    use super::*;
    use std::net::Ipv4Addr;
    use std::process::{Child, Output, Stdio};
    use std::sync::mpsc;
    use tapir_apps::http::server::tapir_acceptor;
    use tapir_apps::http::stats::stack_stats;
    use tapir_apps::tput::Sha256;
    use tapir_harness::netns::output_with_timeout;
    use tapir_harness::{
        require_kernel, Device, Driver, DriverHandle, DriverOptions, NetNs, TapDevice, TapOptions,
    };
    use tapir_stack::wire::{EthernetAddress, Ipv4Cidr};
    use tapir_stack::{Config, Interface};

    const KERNEL: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
    const TAPIR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
    const TAPIR_BIN: &str = env!("CARGO_BIN_EXE_tapir");
    const BASE: &str = "http://10.77.0.2:8080";

    /// tapir in a namespace, serving HTTP on 8080 with `config`.
    struct Rig {
        server: Option<HttpServer>,
        driver: Option<DriverHandle>,
        ns: NetNs,
    }

    impl Rig {
        fn new(tag: &str, mut config: ServerConfig) -> Rig {
            let ns = NetNs::create(tag).expect("create netns");
            let tap = ns
                .run_in(|| TapDevice::open(&TapOptions::new("tap0").kernel_ipv4(KERNEL, 24)))
                .expect("enter netns")
                .unwrap_or_else(|e| panic!("netns {}: open TAP: {e}", ns.name()));
            let mut cfg = Config::new(
                EthernetAddress([0x02, 0, 10, 77, 0, 2]),
                Ipv4Cidr::new(TAPIR, 24).expect("prefix"),
            );
            if let Some(mtu) = tap.mtu() {
                cfg.mtu = mtu;
            }
            let iface = Interface::new(cfg).expect("config");
            let driver = Driver::spawn(iface, Box::new(tap), DriverOptions::default()).expect("driver");
            let stack = driver.stack();
            config.stats = Some(stack_stats(stack.clone()));
            let listener = tapir_harness::TcpListener::bind(&stack, ("0.0.0.0", 8080)).expect("listen");
            let server = HttpServer::spawn("http", config, tapir_acceptor(listener)).expect("server");
            Rig {
                server: Some(server),
                driver: Some(driver),
                ns,
            }
        }

        fn http(&self) -> &HttpServer {
            self.server.as_ref().unwrap()
        }

        fn exec(&self, cmd: &[&str], secs: u64) -> Output {
            self.ns
                .exec_timeout(cmd, Duration::from_secs(secs))
                .unwrap_or_else(|e| panic!("netns {}: {cmd:?}: {e}", self.ns.name()))
        }

        /// Run a shell command that must succeed; its stdout.
        fn sh(&self, script: &str, secs: u64) -> String {
            let o = self.exec(&["sh", "-c", script], secs);
            assert!(
                o.status.success(),
                "netns {}: {script} failed ({}):\n{}\n{}",
                self.ns.name(),
                o.status,
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            String::from_utf8_lossy(&o.stdout).into_owned()
        }
    }

    impl Drop for Rig {
        fn drop(&mut self) {
            if let Some(s) = self.server.take() {
                s.stop_within(Duration::from_millis(500));
            }
            let stats = self.driver.take().map(|d| d.shutdown().stats().to_string());
            if std::thread::panicking() {
                eprintln!("kernel test failed in netns {}", self.ns.name());
                if let Some(s) = stats {
                    eprintln!("tapir counters:\n{s}");
                }
            }
        }
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tapir-http-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Deterministic pseudo-random bytes (not the /bytes pattern).
    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn first_word(s: &str) -> &str {
        s.split_whitespace().next().unwrap_or_default()
    }

    /// curl: small and large GETs with sha256, HEAD, POST to /echo with a
    /// Content-Length and chunked, 100 requests on one connection.
    #[test]
    fn kernel_curl_against_tapir_http() {
        require_kernel!("curl", "sha256sum");
        let rig = Rig::new("http-curl", ServerConfig::default());
        let curl = "curl -sS --max-time 60";

        for n in [0usize, 1000, 52_428_800] {
            let out = rig.sh(&format!("{curl} {BASE}/bytes/{n} | sha256sum"), 90);
            assert_eq!(first_word(&out), Sha256::hex(&pattern(n)), "GET /bytes/{n}");
        }
        let out = rig.sh(&format!("{curl} '{BASE}/bytes/3000000?chunked' | sha256sum"), 60);
        assert_eq!(first_word(&out), Sha256::hex(&pattern(3_000_000)), "chunked GET");

        let head = rig.sh(&format!("{curl} -I {BASE}/bytes/123456"), 30);
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert!(
            head.to_ascii_lowercase().contains("content-length: 123456"),
            "{head}"
        );

        let dir = temp_dir("curl");
        let upload = dir.join("upload.bin");
        let data = noise(10 << 20, 7);
        std::fs::write(&upload, &data).unwrap();
        let want = Sha256::hex(&data);
        let file = upload.display();
        let out = rig.sh(
            &format!("{curl} --data-binary @{file} {BASE}/echo | sha256sum"),
            60,
        );
        assert_eq!(first_word(&out), want, "POST 10 MB to /echo");
        let out = rig.sh(
            &format!("{curl} -H 'Transfer-Encoding: chunked' --data-binary @{file} {BASE}/echo | sha256sum"),
            60,
        );
        assert_eq!(first_word(&out), want, "chunked POST 10 MB to /echo");

        let before = rig.http().connections();
        let mut cmd: Vec<String> = ["curl", "-sS", "--max-time", "60", "-w", "%{num_connects}\\n"]
            .map(String::from)
            .to_vec();
        for i in 0..100 {
            cmd.extend(["-o".into(), "/dev/null".into(), format!("{BASE}/bytes/{i}")]);
        }
        let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        let o = rig.exec(&args, 60);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let connects: u64 = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| l.trim().parse::<u64>().unwrap())
            .sum();
        assert_eq!(connects, 1, "100 URLs over one connection");
        assert_eq!(rig.http().connections() - before, 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    const PYTHON_CLIENTS: &str = r#"
import http.client, socket, threading, time
HOST, PORT = "10.77.0.2", 8080

def read_response(f):
    line = f.readline()
    status = int(line.split()[1])
    headers = {}
    while True:
        l = f.readline()
        if l in (b"\r\n", b"\n", b""):
            break
        k, v = l.decode().split(":", 1)
        headers[k.strip().lower()] = v.strip()
    body = b""
    if "content-length" in headers:
        body = f.read(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        while True:
            size = int(f.readline().split(b";")[0], 16)
            if size == 0:
                while f.readline() not in (b"\r\n", b""):
                    pass
                break
            body += f.read(size)
            f.readline()
    return status, headers, body

# http.client: keep-alive, a POST round trip.
c = http.client.HTTPConnection(HOST, PORT, timeout=10)
for i in range(20):
    c.request("GET", f"/bytes/{i * 100}")
    r = c.getresponse()
    b = r.read()
    assert r.status == 200 and len(b) == i * 100, (r.status, len(b))
c.request("POST", "/echo", body=b"x" * 100000, headers={"Content-Type": "application/x-test"})
r = c.getresponse()
assert r.read() == b"x" * 100000 and r.getheader("content-type") == "application/x-test"
c.close()
print("http.client ok", flush=True)

# Pipelining: three requests in one send, answers in order.
s = socket.create_connection((HOST, PORT), timeout=10)
f = s.makefile("rb")
s.sendall(b"GET /bytes/10 HTTP/1.1\r\nHost: t\r\n\r\n"
          b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
          b"GET /bytes/3000?chunked HTTP/1.1\r\nHost: t\r\n\r\n")
rs = [read_response(f) for _ in range(3)]
assert [r[0] for r in rs] == [200, 200, 200], rs
assert len(rs[0][2]) == 10 and rs[1][2] == b"hello" and len(rs[2][2]) == 3000
s.close()
print("pipelining ok", flush=True)

# Malformed requests get the right status.
CASES = [
    (b"GET / HTTP/1.1\r\n\r\n", 400),
    (b"GET  / HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost : t\r\n\r\n", 400),
    (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505),
    (b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n", 404),
    (b"PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", 405),
    (b"POST /echo HTTP/1.1\r\nHost: t\r\n\r\n", 411),
    (b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 999999999999\r\n\r\n", 413),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\nHost: t\r\n" + b"X-A: 1\r\n" * 101 + b"\r\n", 431),
    (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
]
for raw, want in CASES:
    s = socket.create_connection((HOST, PORT), timeout=10)
    s.sendall(raw)
    status = read_response(s.makefile("rb"))[0]
    assert status == want, (raw[:60], status, want)
    s.close()
print(f"{len(CASES)} malformed requests ok", flush=True)

# Slowloris: a head dribbled a field at a time is cut off, and others are
# served promptly meanwhile.
slow = socket.create_connection((HOST, PORT), timeout=30)
start = time.time()
slow.sendall(b"GET /bytes/1 HTTP/1.1\r\nHost: t\r\n")
done = threading.Event()
def dribble():
    try:
        while not done.is_set() and time.time() - start < 20:
            slow.sendall(b"X-a: b\r\n")
            time.sleep(0.2)
    except OSError:
        pass
threading.Thread(target=dribble, daemon=True).start()
for i in range(5):
    t0 = time.time()
    c = http.client.HTTPConnection(HOST, PORT, timeout=5)
    c.request("GET", "/bytes/1000")
    r = c.getresponse()
    r.read()
    c.close()
    assert r.status == 200 and time.time() - t0 < 2, time.time() - t0
    time.sleep(0.2)
data = b""
while True:
    try:
        d = slow.recv(4096)
    except ConnectionResetError:
        break
    if not d:
        break
    data += d
done.set()
elapsed = time.time() - start
assert data.startswith(b"HTTP/1.1 408"), data[:100]
assert 3.9 < elapsed < 12, elapsed
print(f"slowloris cut off after {elapsed:.1f} s", flush=True)
"#;

    /// python: http.client, pipelining, malformed requests, slowloris.
    #[test]
    fn kernel_python_clients_against_tapir_http() {
        require_kernel!("python3");
        let rig = Rig::new(
            "http-py",
            ServerConfig {
                header_timeout: Duration::from_secs(4),
                ..ServerConfig::default()
            },
        );
        let o = rig.exec(&["python3", "-c", PYTHON_CLIENTS], 60);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "python failed:\n{out}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(out.contains("slowloris cut off"), "{out}");
    }

    /// `tapir up --http --http-root` as a user runs it: files and /stats to
    /// curl, and a clean exit on SIGTERM.
    #[test]
    fn kernel_tapir_up_serves_http_root_and_stats() {
        require_kernel!("curl", "python3");
        let dir = temp_dir("up-root");
        let page = noise(200_000, 3);
        std::fs::write(dir.join("index.html"), "<h1>tapir</h1>").unwrap();
        std::fs::write(dir.join("blob.bin"), &page).unwrap();
        let ns = NetNs::create("http-up").unwrap();
        let mut child = ns
            .command(TAPIR_BIN)
            .args([
                "up",
                "--tap",
                "thttp0",
                "--addr",
                "10.77.0.2/24",
                "--host-addr",
                "10.77.0.1/24",
            ])
            .args(["--http", "8080", "--http-root"])
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let run = || -> Result<(String, String), String> {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let o = ns.exec(&["ip", "-4", "addr", "show", "dev", "thttp0"]).unwrap();
                if String::from_utf8_lossy(&o.stdout).contains("10.77.0.1/24") {
                    break;
                }
                if Instant::now() > deadline {
                    return Err("tapir up did not configure the TAP".into());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let sh = |s: &str| {
                let o = ns
                    .exec_timeout(&["sh", "-c", s], Duration::from_secs(30))
                    .map_err(|e| e.to_string())?;
                if !o.status.success() {
                    return Err(format!("{s}: {}", String::from_utf8_lossy(&o.stderr)));
                }
                Ok(String::from_utf8_lossy(&o.stdout).into_owned())
            };
            let index = sh(&format!("curl -sS --max-time 20 {BASE}/"))?;
            let blob = sh(&format!("curl -sS --max-time 20 {BASE}/blob.bin | sha256sum"))?;
            let stats = sh(&format!(
                "curl -sS --max-time 20 {BASE}/stats | python3 -c \
                 'import json,sys; d=json.load(sys.stdin); \
                  print(d[\"counters\"][\"tcp_passive_opens\"], len(d[\"tcp_connections\"]))'"
            ))?;
            Ok((index + &blob, stats))
        };
        let result = run();
        let common::Stopped { status, stderr, .. } = common::stop_up(&mut child);
        let (pages, stats) = result.unwrap_or_else(|e| panic!("{e}\nstderr:\n{stderr}"));
        assert!(pages.starts_with("<h1>tapir</h1>"), "{pages}");
        assert!(pages.contains(&Sha256::hex(&page)), "{pages}");
        // Three connections so far; the one asking for /stats is listed.
        let mut it = stats.split_whitespace().map(|v| v.parse::<u64>().unwrap());
        assert_eq!(it.next(), Some(3), "{stats}");
        assert!(it.next().unwrap() >= 1, "{stats}");
        assert!(status.success(), "exit {status:?}; stderr:\n{stderr}");
        assert!(stderr.contains("http:8080: 3 requests served"), "{stderr}");
        drop(ns);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Start a python server in the namespace that prints "ready" once
    /// listening; its stdout lines.
    fn python_server(ns: &NetNs, script: &str) -> (Child, mpsc::Receiver<String>) {
        ns.spawn_ready(&["python3", "-u", "-c", script], "ready", Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("python server did not start: {e}"))
    }

    fn tapir_bin(ns: &NetNs, args: &[&str], secs: u64) -> Output {
        let mut cmd = ns.command(TAPIR_BIN);
        cmd.args(args).args([
            "--tap",
            "tcli0",
            "--addr",
            "10.77.0.2/24",
            "--host-addr",
            "10.77.0.1/24",
        ]);
        output_with_timeout(&mut cmd, Duration::from_secs(secs))
            .unwrap_or_else(|e| panic!("tapir {args:?}: {e}"))
    }

    /// `tapir get` from python's http.server: a file, a 404 (exit 0) and a
    /// refused connection (exit non-zero).
    #[test]
    fn kernel_tapir_get_from_python_http_server() {
        require_kernel!("python3");
        let dir = temp_dir("get");
        let data = noise(5 << 20, 11);
        std::fs::write(dir.join("f.bin"), &data).unwrap();
        let ns = NetNs::create("http-get").unwrap();
        let server = format!(
            "import functools, http.server\n\
             h = functools.partial(http.server.SimpleHTTPRequestHandler, directory={:?})\n\
             s = http.server.ThreadingHTTPServer(('0.0.0.0', 8081), h)\n\
             print('ready', flush=True)\n\
             s.serve_forever()\n",
            dir.display().to_string()
        );
        let (mut python, _lines) = python_server(&ns, &server);
        let out_file = dir.join("got.bin");
        let out_arg = out_file.display().to_string();
        let got = tapir_bin(&ns, &["get", "http://10.77.0.1:8081/f.bin", "-o", &out_arg], 60);
        let missing = tapir_bin(&ns, &["get", "http://10.77.0.1:8081/missing"], 30);
        let refused = tapir_bin(&ns, &["get", "http://10.77.0.1:9/"], 30);
        let _ = python.kill();
        let _ = python.wait();

        let stderr = String::from_utf8_lossy(&got.stderr);
        assert!(got.status.success(), "{stderr}");
        assert!(stderr.contains("200 OK"), "{stderr}");
        let body = std::fs::read(&out_file).unwrap();
        assert_eq!(body.len(), data.len());
        assert!(body == data, "tapir get wrote different bytes");

        let stderr = String::from_utf8_lossy(&missing.stderr);
        assert!(
            missing.status.success(),
            "an HTTP 404 is still a response: {stderr}"
        );
        assert!(stderr.contains(" 404 "), "{stderr}");

        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success(), "refused must fail: {stderr}");
        assert!(stderr.to_lowercase().contains("refused"), "{stderr}");
        drop(ns);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    const SINK: &str = r#"
import hashlib, socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5001))
s.listen(1)
s.settimeout(60)
print("ready", flush=True)
c, _ = s.accept()
c.settimeout(60)
h, n = hashlib.sha256(), 0
while True:
    d = c.recv(1 << 20)
    if not d:
        break
    h.update(d)
    n += len(d)
c.close()
print(n, h.hexdigest(), flush=True)
"#;

    const SOURCE: &str = r#"
import hashlib, random, socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5002))
s.listen(1)
s.settimeout(60)
print("ready", flush=True)
c, _ = s.accept()
c.settimeout(60)
rng = random.Random(5)
h, n = hashlib.sha256(), 0
for i in range(100):
    block = rng.randbytes(1 << 20)
    c.sendall(block)
    h.update(block)
    n += len(block)
c.close()
print(n, h.hexdigest(), flush=True)
"#;

    fn tput_summary(o: &Output) -> (u64, String) {
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "tput failed:\n{out}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let bytes = out
            .lines()
            .find_map(|l| {
                l.strip_prefix("tput: sent ")
                    .or_else(|| l.strip_prefix("tput: received "))
            })
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no summary in:\n{out}"));
        let sha = out
            .lines()
            .find_map(|l| l.strip_prefix("sha256: "))
            .unwrap_or_else(|| panic!("no sha256 in:\n{out}"));
        assert!(out.contains("Gbit/s") && out.contains("retransmits"), "{out}");
        (bytes, sha.to_string())
    }

    /// `tapir tput` sends 100 MB to a python sink and receives 100 MB from
    /// a python source; sha256 equal on both ends.
    #[test]
    fn kernel_tapir_tput_both_directions_with_python() {
        require_kernel!("python3");
        let ns = NetNs::create("http-tput").unwrap();
        let (mut sink, sink_lines) = python_server(&ns, SINK);
        let (mut source, source_lines) = python_server(&ns, SOURCE);
        let sent = tapir_bin(
            &ns,
            &[
                "tput",
                "--connect",
                "10.77.0.1:5001",
                "--bytes",
                "100M",
                "--sha256",
            ],
            120,
        );
        let received = tapir_bin(
            &ns,
            &["tput", "--connect", "10.77.0.1:5002", "--receive", "--sha256"],
            120,
        );
        let sink_says = sink_lines.recv_timeout(Duration::from_secs(10));
        let source_says = source_lines.recv_timeout(Duration::from_secs(10));
        for p in [&mut sink, &mut source] {
            let _ = p.kill();
            let _ = p.wait();
        }
        let (n, sha) = tput_summary(&sent);
        assert_eq!(n, 100 << 20);
        assert_eq!(sha, Sha256::hex(&pattern(100 << 20)));
        assert_eq!(sink_says.expect("sink result"), format!("{n} {sha}"));
        let (n, sha) = tput_summary(&received);
        assert_eq!(source_says.expect("source result"), format!("{n} {sha}"));
        assert_eq!(n, 100 << 20);
    }

    /// Wait until the TAP `dev` exists in `ns` with the kernel's address.
    fn wait_for_tap(ns: &NetNs, dev: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let o = ns.exec(&["ip", "-4", "addr", "show", "dev", dev]).unwrap();
            if String::from_utf8_lossy(&o.stdout).contains("10.77.0.1/24") {
                return;
            }
            assert!(Instant::now() < deadline, "no TAP {dev} in {}", ns.name());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    const CLIENT_SENDS: &str = r#"
import hashlib, random, socket, sys
c = socket.create_connection(("10.77.0.2", 5003), timeout=30)
rng = random.Random(9)
h, n = hashlib.sha256(), 0
for i in range(20):
    block = rng.randbytes(1 << 20)
    c.sendall(block)
    h.update(block)
    n += len(block)
c.shutdown(socket.SHUT_WR)
c.recv(1)
print(n, h.hexdigest(), flush=True)
"#;

    const CLIENT_READS: &str = r#"
import hashlib, socket
c = socket.create_connection(("10.77.0.2", 5003), timeout=30)
h, n = hashlib.sha256(), 0
while True:
    d = c.recv(1 << 20)
    if not d:
        break
    h.update(d)
    n += len(d)
print(n, h.hexdigest(), flush=True)
"#;

    /// `tapir tput --listen` as the server, receiving from and sending to a
    /// python client (20 MB each way).
    #[test]
    fn kernel_tapir_tput_server_with_python_clients() {
        require_kernel!("python3");
        let ns = NetNs::create("http-tputd").unwrap();
        for (extra, client) in [
            (&[][..], CLIENT_SENDS),
            (&["--send", "--bytes", "20M"][..], CLIENT_READS),
        ] {
            let mut cmd = ns.command(TAPIR_BIN);
            cmd.args(["tput", "--listen", "5003", "--once", "--sha256"])
                .args(extra)
                .args([
                    "--tap",
                    "tsrv0",
                    "--addr",
                    "10.77.0.2/24",
                    "--host-addr",
                    "10.77.0.1/24",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut server = cmd.spawn().unwrap();
            wait_for_tap(&ns, "tsrv0");
            let py = ns.exec_timeout(&["python3", "-c", client], Duration::from_secs(60));
            let deadline = Instant::now() + Duration::from_secs(20);
            while server.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = server.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let out = server.wait_with_output().unwrap();
            let py = py.unwrap();
            let python_says = String::from_utf8_lossy(&py.stdout).trim().to_string();
            assert!(
                py.status.success(),
                "python: {}",
                String::from_utf8_lossy(&py.stderr)
            );
            let (n, sha) = tput_summary(&out);
            assert_eq!(n, 20 << 20, "{extra:?}");
            assert_eq!(python_says, format!("{n} {sha}"), "{extra:?}");
        }
    }
}

/// The tput transfer loops over std::net: the bytes and digests match.
#[test]
fn tput_loops_over_std_sockets() {
    use tapir_apps::tput::{receive, send, Limit, Sha256};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let sink = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        receive(&mut s, Limit::default(), 65_536, true, None, &mut |_, _| {}).unwrap()
    });
    let mut s = TcpStream::connect(addr).unwrap();
    let mut ticks = 0;
    let limit = Limit {
        bytes: Some(30_000_001),
        time: None,
    };
    let sent = send(
        &mut s,
        limit,
        100_000,
        true,
        Some(Duration::from_millis(1)),
        &mut |_, _| ticks += 1,
    )
    .unwrap();
    drop(s);
    let got = sink.join().unwrap();
    assert_eq!((sent.bytes, got.bytes), (30_000_001, 30_000_001));
    assert_eq!(sent.sha256, got.sha256);
    assert_eq!(sent.sha256.unwrap(), Sha256::hex(&pattern(30_000_001)));
    assert!(ticks > 0);
}

/// The echo answers each piece as it arrives (a client may wait for it
/// before sending more), and a response is never held back waiting for a
/// request that is not coming (a stray CRLF after a request).
#[test]
fn responses_are_not_held_back() {
    let s = Server::default();
    let mut c = s.stream();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    let mut seen = Vec::new();
    for word in ["first", "second", "third"] {
        c.write_all(format!("{:x}\r\n{word}\r\n", word.len()).as_bytes())
            .unwrap();
        while !String::from_utf8_lossy(&seen).contains(word) {
            let mut buf = [0u8; 4096];
            let n = c.read(&mut buf).expect("echo of a piece within 5 s");
            assert!(n > 0);
            seen.extend_from_slice(&buf[..n]);
        }
    }
    c.write_all(b"0\r\n\r\n").unwrap();

    let mut c = s.stream();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"GET /bytes/3 HTTP/1.1\r\nHost: x\r\n\r\n\r\n")
        .unwrap();
    let mut client = Client::new(c);
    let (h, body) = client.response_vec("GET").expect("answered without waiting");
    assert_eq!((h.status, body), (200, pattern(3)));
}
