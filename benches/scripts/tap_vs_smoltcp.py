#!/usr/bin/env python3
"""Plain TAP, tapir against smoltcp: the same kernel-side client, one TCP
stream each direction, against `tapir tput` and against smoltcp's TAP
benchmark server, in the same run.

    cargo build --release -p tapir
    cargo build --release -p tapir-benches --bins
    sudo python3 benches/scripts/tap_vs_smoltcp.py [--secs 5] [--rounds 5] [--tapir-extra="ARGS"]

Write `--tapir-extra="--flag ..."` with the `=` (argparse would take a
separate value starting with `--` for a flag of its own).

Needs root (namespaces) and iproute2. Each stack runs in a network
namespace this script creates (tapir-svs-tapir, tapir-svs-smol), behind a
plain TAP `tap0` (no IFF_VNET_HDR: one frame per read or write, no
offloads) with the kernel at 10.77.0.1/24 and the stack at 10.77.0.2/24;
the namespaces are removed by name at the end, and the only processes it
stops are the ones it started, by PID.

- tapir: `tapir tput --tap tap0 --addr 10.77.0.2/24 --host-addr
  10.77.0.1/24 --no-offload --listen 5201 [--send]` (it creates the TAP
  itself), plus whatever `--tapir-extra` says.
- smoltcp: `ip tuntap add dev tap0 mode tap`, then `smoltcp_tap --tap tap0
  --port 5201 --mode sink|source` (benches/src/bin/smoltcp_tap.rs: smoltcp
  0.14's own TunTapInterface and poll loop, after its examples/benchmark.rs;
  fixed 1 MiB socket buffers each way, or `--smol-buf`).
- client: `tcp_client 10.77.0.2:5201 --send|--recv --secs S` in the
  namespace (benches/src/bin/tcp_client.rs, the kernel's TCP over
  std::net); "tapir receives" is the client sending, "tapir sends" the
  client receiving.

Each direction starts one server per namespace, waits until it accepts,
then runs the client `--rounds` times alternating tapir / smoltcp, and
stops the servers. The table shows medians (Gbit/s), the ratio tapir /
smoltcp of the medians, the goal of issue 13, every run, and the load
average before and after.
"""

import argparse
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TAPIR = os.path.join(ROOT, "target", "release", "tapir")
SMOL = os.path.join(ROOT, "target", "release", "smoltcp_tap")
CLIENT = os.path.join(ROOT, "target", "release", "tcp_client")
NS_TAPIR, NS_SMOL = "tapir-svs-tapir", "tapir-svs-smol"
HOST, STACK, PORT = "10.77.0.1/24", "10.77.0.2", 5201
# (key, label, the client's flag, issue 13's goal for tapir / smoltcp)
DIRECTIONS = [
    ("send", "tapir sends (client --recv)", "--recv", 2.0),
    ("recv", "tapir receives (client --send)", "--send", 1.5),
]


def run(*cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, capture_output=True, text=True, **kw)


def ns(name, *cmd, **kw):
    return run("ip", "netns", "exec", name, *cmd, **kw)


def cleanup():
    for name in (NS_TAPIR, NS_SMOL):
        run("ip", "netns", "del", name, check=False)


def load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def wait_listening(namespace, proc, log):
    """Until something accepts on 10.77.0.2:5201 (probe with bash's
    /dev/tcp: connect and close at once)."""
    deadline = time.time() + 20
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server in {namespace} exited ({proc.returncode}): {tail(log)}")
        r = ns(namespace, "bash", "-c", f"exec 3<>/dev/tcp/{STACK}/{PORT}", check=False, timeout=5)
        if r.returncode == 0:
            time.sleep(0.3)
            return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on {STACK}:{PORT} in {namespace}: {tail(log)}")


def tail(log):
    log.flush()
    with open(log.name, errors="replace") as f:
        return " | ".join(f.read().strip().splitlines()[-5:])


def client(namespace, flag, secs):
    cmd = [CLIENT, f"{STACK}:{PORT}", flag, "--secs", str(secs)]
    out = ns(namespace, *cmd, check=False, timeout=secs + 60)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} in {namespace}: {out.stderr.strip()}")
    return json.loads(out.stdout)["gbits"]


def stop(procs):
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    procs.clear()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--secs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tapir-extra", default="", help="flags appended to tapir's command line; write --tapir-extra=\"--flag ...\"")
    ap.add_argument("--smol-buf", type=int, default=1 << 20,
                    help="smoltcp's socket buffers, bytes each way [default: 1 MiB]")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces and a TAP device)")
    for path, build in ((TAPIR, "-p tapir"), (SMOL, "-p tapir-benches --bins"), (CLIENT, "-p tapir-benches --bins")):
        if not os.path.exists(path):
            sys.exit(f"{path} is missing: run `cargo build --release {build}` first")
    tapir_extra = shlex.split(args.tapir_extra)
    cleanup()
    procs = []
    logs = tempfile.TemporaryDirectory(prefix="tapir-svs-")
    try:
        for name in (NS_TAPIR, NS_SMOL):
            run("ip", "netns", "add", name)
            ns(name, "ip", "link", "set", "lo", "up")
        # smoltcp attaches to a TAP that exists; tapir makes its own.
        ns(NS_SMOL, "ip", "tuntap", "add", "dev", "tap0", "mode", "tap")
        ns(NS_SMOL, "ip", "addr", "add", HOST, "dev", "tap0")
        ns(NS_SMOL, "ip", "link", "set", "tap0", "up")

        load_before = load()
        results = {}
        for key, _, flag, _ in DIRECTIONS:
            source = key == "send"
            tlog = open(os.path.join(logs.name, f"tapir-{key}.log"), "w")
            slog = open(os.path.join(logs.name, f"smol-{key}.log"), "w")
            tp = subprocess.Popen(
                ["ip", "netns", "exec", NS_TAPIR, TAPIR, "tput", "--tap", "tap0", "--addr", f"{STACK}/24",
                 "--host-addr", HOST, "--no-offload", "--listen", str(PORT), "--interval", "0",
                 *(["--send"] if source else []), *tapir_extra],
                stdout=tlog, stderr=subprocess.STDOUT)
            procs.append(tp)
            sp = subprocess.Popen(
                ["ip", "netns", "exec", NS_SMOL, SMOL, "--tap", "tap0", "--port", str(PORT),
                 "--mode", "source" if source else "sink",
                 "--rx-buf", str(args.smol_buf), "--tx-buf", str(args.smol_buf)],
                stdout=slog, stderr=subprocess.STDOUT)
            procs.append(sp)
            wait_listening(NS_TAPIR, tp, tlog)
            wait_listening(NS_SMOL, sp, slog)
            for _ in range(args.rounds):
                results.setdefault((key, "tapir"), []).append(client(NS_TAPIR, flag, args.secs))
                results.setdefault((key, "smol"), []).append(client(NS_SMOL, flag, args.secs))
            stop(procs)
            tlog.close()
            slog.close()
        load_after = load()

        commit = run("git", "-C", ROOT, "rev-parse", "--short", "HEAD", check=False).stdout.strip()
        built = time.strftime("%Y-%m-%d %H:%M", time.gmtime(os.path.getmtime(TAPIR)))
        extra = f", tapir with `{args.tapir_extra}`" if args.tapir_extra else ""
        print(f"tapir {commit} (binary built {built} UTC){extra}; plain TAP (no IFF_VNET_HDR), kernel client tcp_client, one TCP stream, "
              f"{args.secs} s x {args.rounds} rounds, medians (Gbit/s); smoltcp 0.14 buffers "
              f"{args.smol_buf} B each way; load average {load_before} before, {load_after} after")
        print("| direction | tapir | smoltcp | tapir / smoltcp | goal | all runs tapir; smoltcp |")
        print("|---|---:|---:|---:|---|---|")
        for key, label, _, goal in DIRECTIONS:
            t, s = results[(key, "tapir")], results[(key, "smol")]
            mt, ms = statistics.median(t), statistics.median(s)
            ratio = mt / ms if ms > 0 else float("inf")
            verdict = "met" if ratio >= goal else "missed"
            runs = "; ".join(" ".join(f"{x:.2f}" for x in r) for r in (t, s))
            print(f"| {label} | {mt:.2f} | {ms:.2f} | {ratio:.2f} | >= {goal:.1f}x, {verdict} | {runs} |")
    finally:
        stop(procs)
        cleanup()
        logs.cleanup()


if __name__ == "__main__":
    main()
