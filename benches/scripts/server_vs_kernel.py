#!/usr/bin/env python3
"""Servers against servers: tapir's HTTP server and TCP echo over a TAP
device, next to nginx and a C echo server on the kernel's TCP over a veth
pair, measured in the same run by the same kernel clients.

    cargo build --release -p tapir
    sudo python3 benches/scripts/server_vs_kernel.py [--secs 5] [--rounds 3]

Needs root (namespaces), iproute2, gcc, wrk and nginx (Debian: `apt-get
install wrk nginx-light`). Everything runs in network namespaces this script
creates (tapir-bench-srv, tapir-bench-c1, tapir-bench-c2) with 10.77.x.x
test addresses, removed by name at the end; the only processes it stops are
the ones it started.

What is measured, each `--rounds` times, alternating tapir and the kernel
within a round, medians reported with the ratio tapir / kernel:

- keep-alive requests/s: `wrk -t1 -c10 -dSECS` on GET /bytes/100 (tapir's
  generated 100-byte body; nginx serves a 100-byte file, one worker);
- short-connection requests/s: the same with `Connection: close`, so each
  request is a new connection (handshake, request, close);
- 1-byte ping-pong: a C client with TCP_NODELAY sends one byte and waits
  for it back, 10 000 times, against tapir's echo and a C echo server on
  the kernel; p50 and p99 of the round trip.

The kernel's side is the kernel over veth, the fastest virtual link it has;
tapir pays for the TAP's system calls and a copy each way that the kernel
over veth does not, so these ratios bound what a userspace stack behind a
TAP can reach. The load average is printed before and after: on a shared
machine the ratios mean more than the absolute figures.
"""

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TAPIR = os.path.join(ROOT, "target", "release", "tapir")
NS_TAP, NS_C1, NS_C2 = "tapir-bench-srv", "tapir-bench-c1", "tapir-bench-c2"
TAPIR_IP, TAP_HOST_IP = "10.77.8.2", "10.77.8.1"
KERNEL_IP, KCLIENT_IP = "10.77.9.2", "10.77.9.1"

PINGPONG_C = r"""
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int cmp(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

static long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: pingpong HOST PORT N\n"); return 2; }
    int n = atoi(argv[3]);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(atoi(argv[2]));
    inet_pton(AF_INET, argv[1], &a.sin_addr);
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) { perror("connect"); return 1; }
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    long *rtt = malloc(sizeof(long) * n);
    char c = 'x';
    /* A warm-up of 100 round trips, not counted. */
    for (int i = -100; i < n; i++) {
        long t0 = now_ns();
        if (write(s, &c, 1) != 1) { perror("write"); return 1; }
        if (read(s, &c, 1) != 1) { perror("read"); return 1; }
        if (i >= 0) rtt[i] = now_ns() - t0;
    }
    qsort(rtt, n, sizeof(long), cmp);
    printf("%ld %ld\n", rtt[n / 2], rtt[(long)n * 99 / 100]);
    close(s);
    return 0;
}
"""

ECHO_C = r"""
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void *serve(void *arg) {
    int c = (int)(long)arg;
    int one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char buf[65536];
    ssize_t n;
    while ((n = read(c, buf, sizeof buf)) > 0) {
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(c, buf + off, n - off);
            if (w <= 0) { close(c); return NULL; }
            off += w;
        }
    }
    close(c);
    return NULL;
}

int main(int argc, char **argv) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(atoi(argv[1]));
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 128) != 0) return 1;
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0) continue;
        pthread_t t;
        pthread_create(&t, NULL, serve, (void *)(long)c);
        pthread_detach(t);
    }
}
"""

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir};
    proxy_temp_path {dir};
    fastcgi_temp_path {dir};
    uwsgi_temp_path {dir};
    scgi_temp_path {dir};
    keepalive_requests 1000000;
    server {{
        listen {ip}:80 backlog=4096;
        root {dir}/www;
        default_type application/octet-stream;
    }}
}}
"""


def run(*cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, capture_output=True, text=True, **kw)


def ns(name, *cmd, **kw):
    return run("ip", "netns", "exec", name, *cmd, **kw)


def cleanup():
    for name in (NS_TAP, NS_C1, NS_C2):
        run("ip", "netns", "del", name, check=False)


def wait_listening(namespace, host, port):
    deadline = time.time() + 30
    while time.time() < deadline:
        r = ns(namespace, "bash", "-c", f"exec 3<>/dev/tcp/{host}/{port}", check=False, timeout=5)
        if r.returncode == 0:
            time.sleep(0.3)
            return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on {host}:{port}")


def wrk(namespace, host, secs, close):
    cmd = ["wrk", "-t1", "-c10", f"-d{secs}s"]
    if close:
        cmd += ["-H", "Connection: close"]
    cmd.append(f"http://{host}/bytes/100")
    out = ns(namespace, *cmd, timeout=secs + 60).stdout
    m = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    if not m:
        raise RuntimeError(f"wrk said: {out}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    if errors:
        print(f"  note: {host} {'close' if close else 'keep-alive'}: {errors.group(0)}", file=sys.stderr)
    return float(m.group(1))


def pingpong(namespace, binary, host, n):
    out = ns(namespace, binary, host, "7", str(n), timeout=120).stdout.split()
    return int(out[0]) / 1000.0, int(out[1]) / 1000.0  # microseconds


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--secs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pings", type=int, default=10000)
    ap.add_argument("--tapir-args", default="", help="extra arguments for `tapir up` (e.g. '--workers 2')")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces and a TAP device)")
    if not os.path.exists(TAPIR):
        sys.exit(f"{TAPIR} is missing: run `cargo build --release -p tapir` first")
    for tool in ("wrk", "nginx", "gcc"):
        if run("which", tool, check=False).returncode != 0:
            sys.exit(f"{tool} is missing (apt-get install wrk nginx-light gcc)")
    cleanup()
    procs = []
    tmp = tempfile.mkdtemp(prefix="tapir-bench-")
    try:
        # The C clients and the kernel's echo server.
        for name, src, extra in (("pingpong", PINGPONG_C, []), ("echo", ECHO_C, ["-pthread"])):
            path = os.path.join(tmp, name + ".c")
            with open(path, "w") as f:
                f.write(src)
            run("gcc", "-O2", "-o", os.path.join(tmp, name), path, *extra)
        os.makedirs(os.path.join(tmp, "www", "bytes"))
        with open(os.path.join(tmp, "www", "bytes", "100"), "wb") as f:
            f.write(bytes(range(100)))
        with open(os.path.join(tmp, "nginx.conf"), "w") as f:
            f.write(NGINX_CONF.format(dir=tmp, ip=KERNEL_IP))

        # The kernel against itself: two namespaces joined by a veth pair.
        run("ip", "netns", "add", NS_C1)
        run("ip", "netns", "add", NS_C2)
        run("ip", "link", "add", "tbc1", "netns", NS_C1, "type", "veth", "peer", "name", "tbc2", "netns", NS_C2)
        ns(NS_C1, "ip", "addr", "add", f"{KCLIENT_IP}/24", "dev", "tbc1")
        ns(NS_C2, "ip", "addr", "add", f"{KERNEL_IP}/24", "dev", "tbc2")
        for n, dev in ((NS_C1, "tbc1"), (NS_C2, "tbc2")):
            ns(n, "ip", "link", "set", dev, "up")
            ns(n, "ip", "link", "set", "lo", "up")
        run("ip", "netns", "add", NS_TAP)
        for n in (NS_C1, NS_TAP):
            ns(n, "sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65535")
            ns(n, "sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1")
        procs.append(subprocess.Popen(["ip", "netns", "exec", NS_C2, "nginx", "-c", os.path.join(tmp, "nginx.conf")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen(["ip", "netns", "exec", NS_C2, os.path.join(tmp, "echo"), "7"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        # tapir on a TAP in its namespace; the kernel side of the TAP is the
        # client.
        procs.append(subprocess.Popen(
            ["ip", "netns", "exec", NS_TAP, TAPIR, "up", "--tap", "tbs0", "--addr", f"{TAPIR_IP}/24",
             "--host-addr", f"{TAP_HOST_IP}/24", "--http", "80", "--tcp-echo", "7"] + args.tapir_args.split(),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_listening(NS_C1, KERNEL_IP, 80)
        wait_listening(NS_C1, KERNEL_IP, 7)
        wait_listening(NS_TAP, TAPIR_IP, 80)
        wait_listening(NS_TAP, TAPIR_IP, 7)

        load0 = os.getloadavg()
        sides = {"tapir": (NS_TAP, TAPIR_IP), "kernel": (NS_C1, KERNEL_IP)}
        res = {}
        for r in range(args.rounds):
            # Alternate which side goes first, so a drift in the machine's
            # load falls on both.
            order = ["tapir", "kernel"] if r % 2 == 0 else ["kernel", "tapir"]
            for who in order:
                space, host = sides[who]
                res.setdefault(("keep-alive req/s", who), []).append(wrk(space, host, args.secs, False))
                res.setdefault(("short-connection req/s", who), []).append(wrk(space, host, args.secs, True))
                p50, p99 = pingpong(space, os.path.join(tmp, "pingpong"), host, args.pings)
                res.setdefault(("ping-pong p50 (us)", who), []).append(p50)
                res.setdefault(("ping-pong p99 (us)", who), []).append(p99)
        load1 = os.getloadavg()
        commit = run("git", "-C", ROOT, "rev-parse", "--short", "HEAD", check=False).stdout.strip()
        print(f"tapir {commit} (tapir up {args.tapir_args.strip()}), {args.rounds} rounds alternated, "
              f"wrk {args.secs} s, {args.pings} ping-pongs; medians; load average "
              f"{load0[0]:.1f} before, {load1[0]:.1f} after")
        print("| what | tapir over TAP | kernel over veth | tapir / kernel | all tapir | all kernel |")
        print("|---|---|---|---|---|---|")
        for what in ("keep-alive req/s", "short-connection req/s", "ping-pong p50 (us)", "ping-pong p99 (us)"):
            t = statistics.median(res[(what, "tapir")])
            k = statistics.median(res[(what, "kernel")])
            fmt = (lambda v: f"{v:.0f}") if "req/s" in what else (lambda v: f"{v:.1f}")
            print(f"| {what} | {fmt(t)} | {fmt(k)} | {t / k:.2f} | "
                  f"{', '.join(fmt(v) for v in res[(what, 'tapir')])} | "
                  f"{', '.join(fmt(v) for v in res[(what, 'kernel')])} |")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
        cleanup()
        run("rm", "-rf", tmp, check=False)


if __name__ == "__main__":
    main()
