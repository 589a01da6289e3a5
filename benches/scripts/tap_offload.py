#!/usr/bin/env python3
"""TAP offloads: the kernel's iperf3 against tapir over a plain TAP and over
a TAP with IFF_VNET_HDR + TUNSETOFFLOAD (checksum offload, TSO/GSO), in the
same run.

    cargo build --release -p tapir
    sudo python3 benches/scripts/tap_offload.py [--secs 5] [--rounds 3] [--tapir-extra="ARGS"]

Needs root (namespaces), iproute2 and iperf3. Each setup runs in a network
namespace this script creates (tapir-offb-plain, tapir-offb-tso), with the
kernel at 10.77.0.1 and tapir at 10.77.0.2 on a TAP, and is removed by name
at the end; the only processes it stops are the ones it started.

One iperf3 TCP stream, `-t SECS`, each direction, repeated `--rounds` times
alternating between the setups; the table shows medians, the ratio
offload / plain, the kernel against itself over a veth pair (namespaces
tapir-offb-k1 and -k2, offloads on) for scale, and the load average before
and after. "tapir sends" is `iperf3 -R` (the kernel's client receives).
`--tapir-extra="--busy-poll 50"` (with the `=`) appends flags to both of
tapir's command lines.
"""

import argparse
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TAPIR = os.path.join(ROOT, "target", "release", "tapir")
SETUPS = {"plain": ("tapir-offb-plain", ["--no-offload"]), "offload": ("tapir-offb-tso", [])}
# The kernel against itself over a veth pair (offloads on, as by default):
# the client in K1 (10.77.0.1), iperf3 -s in K2 (10.77.0.2).
K1, K2 = "tapir-offb-k1", "tapir-offb-k2"


def run(*cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, capture_output=True, text=True, **kw)


def ns(name, *cmd, **kw):
    return run("ip", "netns", "exec", name, *cmd, **kw)


def cleanup():
    for name in [n for n, _ in SETUPS.values()] + [K1, K2]:
        run("ip", "netns", "del", name, check=False)


def iperf3(namespace, secs, reverse):
    cmd = ["iperf3", "-c", "10.77.0.2", "-t", str(secs), "--json"]
    if reverse:
        cmd.append("-R")
    out = ns(namespace, *cmd, check=False, timeout=secs + 60)
    v = json.loads(out.stdout)
    if "error" in v:
        raise RuntimeError(f"iperf3 {' '.join(cmd)}: {v['error']}")
    return v["end"]["sum_received"]["bits_per_second"] / 1e9


def wait_listening(namespace):
    deadline = time.time() + 20
    while time.time() < deadline:
        r = ns(namespace, "bash", "-c", "exec 3<>/dev/tcp/10.77.0.2/5201", check=False, timeout=5)
        if r.returncode == 0:
            time.sleep(0.3)
            return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on 10.77.0.2:5201 in {namespace}")


def load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--secs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tapir-extra", default="", help="flags appended to tapir's command lines; write --tapir-extra=\"--flag ...\"")
    args = ap.parse_args()
    tapir_extra = shlex.split(args.tapir_extra)
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces and a TAP device)")
    if not os.path.exists(TAPIR):
        sys.exit(f"{TAPIR} is missing: run `cargo build --release -p tapir` first")
    cleanup()
    procs = []
    try:
        for name, extra in SETUPS.values():
            run("ip", "netns", "add", name)
            ns(name, "ip", "link", "set", "lo", "up")
            procs.append(subprocess.Popen(
                ["ip", "netns", "exec", name, TAPIR, "tput", "--listen", "5201", "--iperf3",
                 "--tap", "tbo0", "--addr", "10.77.0.2/24", "--host-addr", "10.77.0.1/24", *extra,
                 *tapir_extra],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        run("ip", "netns", "add", K1)
        run("ip", "netns", "add", K2)
        run("ip", "link", "add", "tbo1", "netns", K1, "type", "veth", "peer", "name", "tbo2", "netns", K2)
        ns(K1, "ip", "addr", "add", "10.77.0.1/24", "dev", "tbo1")
        ns(K2, "ip", "addr", "add", "10.77.0.2/24", "dev", "tbo2")
        for n, dev in ((K1, "tbo1"), (K2, "tbo2")):
            ns(n, "ip", "link", "set", dev, "up")
            ns(n, "ip", "link", "set", "lo", "up")
        procs.append(subprocess.Popen(["ip", "netns", "exec", K2, "iperf3", "-s"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for name in [n for n, _ in SETUPS.values()] + [K1]:
            wait_listening(name)
        load_before = load()
        results = {}
        for _ in range(args.rounds):
            for reverse in (False, True):
                for setup, (name, _) in SETUPS.items():
                    results.setdefault((reverse, setup), []).append(iperf3(name, args.secs, reverse))
                results.setdefault((reverse, "kernel"), []).append(iperf3(K1, args.secs, reverse))
        load_after = load()
        commit = run("git", "-C", ROOT, "rev-parse", "--short", "HEAD", check=False).stdout.strip()
        extra = f" with `{args.tapir_extra}`" if args.tapir_extra else ""
        print(f"tapir {commit}{extra}, iperf3 one TCP stream, {args.secs} s x {args.rounds} rounds, "
              f"medians (Gbit/s); load average {load_before} before, {load_after} after")
        print("| direction | plain TAP | TAP with offloads | offload / plain | kernel<->kernel veth | offload / kernel | all runs plain; offload; kernel |")
        print("|---|---|---|---|---|---|---|")
        for reverse in (False, True):
            d = "tapir sends (iperf3 -R)" if reverse else "tapir receives"
            p, o, k = (results[(reverse, x)] for x in ("plain", "offload", "kernel"))
            runs = "; ".join(" ".join(f"{x:.2f}" for x in r) for r in (p, o, k))
            mp, mo, mk = (statistics.median(r) for r in (p, o, k))
            print(f"| {d} | {mp:.2f} | {mo:.2f} | {mo / mp:.2f} | {mk:.2f} | {mo / mk:.2f} | {runs} |")
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
