#!/usr/bin/env python3
"""One stack shard per TAP queue: `tapir up --queues 2` against `--queues 1`
(with the driver on a thread of its own, as by default, and `--inline`),
several connections at once, in the same run.

    cargo build --release -p tapir -p tapir-benches --bins
    sudo python3 benches/scripts/tap_queues.py [--secs 5] [--rounds 3] [--conns 4]

Needs root (namespaces) and iproute2. Each setup runs in a namespace this
script creates (tapir-qb-1, tapir-qb-1i, tapir-qb-2; the kernel at 10.77.0.1/24, tapir at
10.77.0.2/24 on a TAP with offloads, as `tapir up` opens it by default),
removed by name at the end; the only processes it stops are the ones it
started, by PID.

tapir serves discard (port 9: tapir receives) and chargen (port 19: tapir
sends); `--conns` copies of the kernel-side client
(benches/src/bin/tcp_client.rs) run at once for `--secs`, and their Gbit/s
are added up. Rounds alternate the setups; the table shows medians, the
scaling factors queues 2 / queues 1 (and / queues 1 inline: the same
run-to-completion driver on one queue), and the load average before and
after.
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
CLIENT = os.path.join(ROOT, "target", "release", "tcp_client")
# key: (namespace, extra arguments of `tapir up`)
SETUPS = {
    "1": ("tapir-qb-1", ["--queues", "1"]),
    "1i": ("tapir-qb-1i", ["--queues", "1", "--inline"]),
    "2": ("tapir-qb-2", ["--queues", "2"]),
}


def run(*cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, capture_output=True, text=True, **kw)


def cleanup():
    for name, _ in SETUPS.values():
        run("ip", "netns", "del", name, check=False)


def start(queues):
    name, extra = SETUPS[queues]
    run("ip", "netns", "add", name)
    run("ip", "-n", name, "link", "set", "lo", "up")
    p = subprocess.Popen(
        ["ip", "netns", "exec", name, TAPIR, "up", "--tap", "tqb0", "--addr", "10.77.0.2/24",
         "--host-addr", "10.77.0.1/24", *extra, "--discard", "9", "--chargen", "19"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 20
    while time.time() < deadline:
        if "10.77.0.1/24" in run("ip", "-n", name, "-4", "addr", "show", "dev", "tqb0", check=False).stdout:
            return p
        if p.poll() is not None:
            raise RuntimeError(f"tapir up --queues {queues} exited: {p.stderr.read()}")
        time.sleep(0.05)
    raise RuntimeError(f"tapir up --queues {queues} did not come up")


def load(queues, port, flag, secs, conns):
    """Gbit/s of `conns` clients at once against one setup."""
    name = SETUPS[queues][0]
    ps = [subprocess.Popen(["ip", "netns", "exec", name, CLIENT, f"10.77.0.2:{port}", flag, "--secs", str(secs)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(conns)]
    total = 0.0
    for p in ps:
        out, err = p.communicate(timeout=secs + 60)
        if p.returncode != 0:
            raise RuntimeError(f"tcp_client: {err}")
        total += json.loads(out.strip().splitlines()[-1])["gbits"]
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--secs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--conns", type=int, default=4)
    args = ap.parse_args()
    for path in (TAPIR, CLIENT):
        if not os.path.exists(path):
            sys.exit(f"{path} is missing: cargo build --release -p tapir -p tapir-benches --bins")
    commit = run("git", "-C", ROOT, "rev-parse", "--short", "HEAD", check=False).stdout.strip()
    load_before = os.getloadavg()
    cleanup()
    procs = []
    results = {(q, d): [] for q in SETUPS for d in ("recv", "send")}
    try:
        for q in SETUPS:
            procs.append(start(q))
        for _ in range(args.rounds):
            for q in SETUPS:
                results[(q, "recv")].append(load(q, 9, "--send", args.secs, args.conns))
                results[(q, "send")].append(load(q, 19, "--recv", args.secs, args.conns))
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
        cleanup()
    load_after = os.getloadavg()
    print(f"tapir {commit}; TAP with offloads, {args.conns} connections at once, {args.secs} s x "
          f"{args.rounds} rounds, medians (Gbit/s, all connections); load average "
          f"{' '.join(f'{x:.2f}' for x in load_before)} before, "
          f"{' '.join(f'{x:.2f}' for x in load_after)} after")
    print("| direction | --queues 1 | --queues 1 --inline | --queues 2 | 2 / 1 | 2 / 1 inline | all runs (1; 1 inline; 2) |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for d, label in (("recv", "tapir receives (discard)"), ("send", "tapir sends (chargen)")):
        one, inl, two = (statistics.median(results[(q, d)]) for q in ("1", "1i", "2"))
        runs = "; ".join(" ".join(f"{x:.2f}" for x in results[(q, d)]) for q in SETUPS)
        print(f"| {label} | {one:.2f} | {inl:.2f} | {two:.2f} | {two / one:.2f} | {two / inl:.2f} | {runs} |")


if __name__ == "__main__":
    main()
