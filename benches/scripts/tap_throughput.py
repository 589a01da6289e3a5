#!/usr/bin/env python3
"""Whole-system TCP throughput: the kernel's iperf3 against tapir over a TAP
device, next to the kernel against itself over a veth pair, in the same run.

    cargo build --release -p tapir
    sudo python3 benches/scripts/tap_throughput.py [--secs 5] [--rounds 3]

Needs root (namespaces), iproute2 and iperf3. Everything runs in network
namespaces this script creates (tapir-bench-tap, tapir-bench-k1,
tapir-bench-k2) with the 10.77.x.x test addresses, and is removed by name at
the end; the only processes it stops are the ones it started.

Both setups are one iperf3 TCP stream, `-t SECS`, each direction, repeated
`--rounds` times alternating between the setups; the table shows medians
and the ratio tapir / kernel (above 1: tapir faster). The kernel's peer is
itself over veth, the fastest virtual link it has, so the ratio is a bound
on what a userspace stack behind a TAP can reach, not a like-for-like
protocol comparison: tapir pays for the TAP's read/write system calls and a
copy each way, which the kernel over veth does not.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TAPIR = os.path.join(ROOT, "target", "release", "tapir")
NS_TAP, NS_K1, NS_K2 = "tapir-bench-tap", "tapir-bench-k1", "tapir-bench-k2"


def run(*cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, capture_output=True, text=True, **kw)


def ns(name, *cmd, **kw):
    return run("ip", "netns", "exec", name, *cmd, **kw)


def cleanup():
    for name in (NS_TAP, NS_K1, NS_K2):
        run("ip", "netns", "del", name, check=False)


def iperf3(namespace, host, secs, reverse):
    cmd = ["iperf3", "-c", host, "-t", str(secs), "--json"]
    if reverse:
        cmd.append("-R")
    out = ns(namespace, *cmd, check=False, timeout=secs + 60)
    v = json.loads(out.stdout)
    if "error" in v:
        raise RuntimeError(f"iperf3 {' '.join(cmd)}: {v['error']}")
    return v["end"]["sum_received"]["bits_per_second"] / 1e9


def wait_listening(namespace, host):
    """Until something accepts on host:5201 (a short iperf3 would run a
    test, so probe with bash's /dev/tcp)."""
    deadline = time.time() + 20
    while time.time() < deadline:
        r = ns(namespace, "bash", "-c", f"exec 3<>/dev/tcp/{host}/5201", check=False, timeout=5)
        if r.returncode == 0:
            time.sleep(0.3)
            return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on {host}:5201")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--secs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces and a TAP device)")
    if not os.path.exists(TAPIR):
        sys.exit(f"{TAPIR} is missing: run `cargo build --release -p tapir` first")
    cleanup()
    procs = []
    try:
        # The kernel against itself: two namespaces joined by a veth pair.
        run("ip", "netns", "add", NS_K1)
        run("ip", "netns", "add", NS_K2)
        run("ip", "link", "add", "tbk1", "netns", NS_K1, "type", "veth", "peer", "name", "tbk2", "netns", NS_K2)
        ns(NS_K1, "ip", "addr", "add", "10.77.9.1/24", "dev", "tbk1")
        ns(NS_K2, "ip", "addr", "add", "10.77.9.2/24", "dev", "tbk2")
        for n, dev in ((NS_K1, "tbk1"), (NS_K2, "tbk2")):
            ns(n, "ip", "link", "set", dev, "up")
            ns(n, "ip", "link", "set", "lo", "up")
        procs.append(subprocess.Popen(["ip", "netns", "exec", NS_K2, "iperf3", "-s"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        # The kernel against tapir on a TAP.
        run("ip", "netns", "add", NS_TAP)
        procs.append(subprocess.Popen(
            ["ip", "netns", "exec", NS_TAP, TAPIR, "tput", "--listen", "5201", "--iperf3",
             "--tap", "tbt0", "--addr", "10.77.8.2/24", "--host-addr", "10.77.8.1/24"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_listening(NS_K1, "10.77.9.2")
        wait_listening(NS_TAP, "10.77.8.2")

        results = {}
        for _ in range(args.rounds):
            for reverse in (False, True):
                d = "from tapir / the peer" if reverse else "to tapir / the peer"
                results.setdefault((d, "tapir"), []).append(iperf3(NS_TAP, "10.77.8.2", args.secs, reverse))
                results.setdefault((d, "kernel"), []).append(iperf3(NS_K1, "10.77.9.2", args.secs, reverse))
        commit = run("git", "-C", ROOT, "rev-parse", "--short", "HEAD", check=False).stdout.strip()
        print(f"tapir {commit}, iperf3 one TCP stream, {args.secs} s x {args.rounds} rounds, medians (Gbit/s)")
        print("| direction (kernel iperf3 client) | tapir over TAP | kernel over veth | tapir / kernel |")
        print("|---|---|---|---|")
        for d in ("to tapir / the peer", "from tapir / the peer"):
            t = statistics.median(results[(d, "tapir")])
            k = statistics.median(results[(d, "kernel")])
            print(f"| {d} | {t:.2f} | {k:.2f} | {t / k:.2f} |")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
        cleanup()


if __name__ == "__main__":
    main()
