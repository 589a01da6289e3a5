#!/usr/bin/env python3
"""Goodput over impaired links: tapir against the Linux kernel through the
same link emulator, over a grid of loss, delay, reordering, burst loss and
rate limits.

    cargo build --release -p tapir
    sudo python3 benches/scripts/loss_grid.py [--secs 5] [--seeds 1] [--quick]

For each cell of the grid and each seed, in one go:

  (a) kernel -> kernel through `tapir impair --between` (an AF_PACKET bridge
      applying the impairment), with CUBIC named explicitly, and with BBR
      when the kernel has it, as the model-based reference;
  (b) tapir -> kernel: `tapir tput --iperf3` sending to the kernel's
      `iperf3 -s`, the same impairment applied between tapir's stack and
      its TAP (`--impair`);
  (c) kernel -> tapir: the kernel's `iperf3 -c -C cubic` sending to `tapir
      tput --listen --iperf3`, the same impairment.

The emulator is one model (stack/src/impair.rs) in all three places, seeded
per run, applied in both directions. Each run lasts `--secs`; the table
shows goodput (what the receiver got) in Mbit/s, the sender's
retransmissions, and the ratios tapir / Linux-CUBIC, medians over the seeds.

Needs root, iproute2, ethtool and iperf3. Namespaces are created and removed
by name (tapir-grid-*), addresses are the 10.77.x.x test ones, and the only
processes stopped are the ones started here.
"""

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# TAPIR_BIN: another build to compare (default: this tree's release build).
TAPIR = os.environ.get("TAPIR_BIN") or os.path.join(ROOT, "target", "release", "tapir")
P = "tapir-grid"
NS = {n: f"{P}-{n}" for n in ("a", "b", "br", "t")}
# Kernel pair through the bridge: a (client, 10.77.6.1) -- br -- b (server, 10.77.6.2).
# tapir on a TAP in t: the kernel side is 10.77.7.1, tapir 10.77.7.2.
K_CLIENT, K_SERVER = "10.77.6.1", "10.77.6.2"
TAP_KERNEL, TAP_TAPIR = "10.77.7.1", "10.77.7.2"


def grid(quick):
    losses = ["0", "0.1%", "1%", "5%"]
    delays = ["1ms", "10ms", "50ms"]
    cells = [(f"loss {l or 0}, delay {d}", f"loss={l},delay={d}") for l in losses for d in delays]
    cells.append(("10% reordering, delay 10ms", "reorder=10%,delay=10ms"))
    cells.append(("burst loss (GE 1%/30%), delay 10ms", "burst=ge:p=1%:r=30%,delay=10ms"))
    if quick:
        cells = [c for c in cells if "delay 10ms" in c[0] or "burst" in c[0]]
    out = []
    for name, spec in cells:
        out.append((name, spec))
        out.append((name + ", 100 Mbit/s", spec + ",rate=100mbit,queue=100"))
    return out


def run(*cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, capture_output=True, text=True, **kw)


def ns(name, *cmd, **kw):
    return run("ip", "netns", "exec", NS[name], *cmd, **kw)


def spawn(name, *cmd):
    return subprocess.Popen(["ip", "netns", "exec", NS[name], *cmd],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop(p, timeout=10):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return p.stdout.read() if p.stdout else ""


def cleanup():
    for n in NS.values():
        run("ip", "netns", "del", n, check=False)


def setup():
    for n in NS.values():
        run("ip", "netns", "add", n)
        run("ip", "-n", n, "link", "set", "lo", "up")
    run("ip", "-n", NS["br"], "link", "add", "a1", "type", "veth", "peer", "name", "a0", "netns", NS["a"])
    run("ip", "-n", NS["br"], "link", "add", "b1", "type", "veth", "peer", "name", "b0", "netns", NS["b"])
    run("ip", "-n", NS["a"], "addr", "add", f"{K_CLIENT}/24", "dev", "a0")
    run("ip", "-n", NS["b"], "addr", "add", f"{K_SERVER}/24", "dev", "b0")
    for n, dev in (("a", "a0"), ("b", "b0"), ("br", "a1"), ("br", "b1")):
        run("ip", "-n", NS[n], "link", "set", dev, "up")
    # The bridge forwards whole frames: no segmentation offloads.
    for n, dev in (("a", "a0"), ("b", "b0")):
        ns(n, "ethtool", "-K", dev, "tx", "off", "tso", "off", "gso", "off")


def wait_listening(name, port=5201):
    """Until a socket listens on `port` in the namespace (asked of `ss`: a
    probe connection would use up a one-off server's test)."""
    deadline = time.time() + 20
    while time.time() < deadline:
        if f":{port} " in ns(name, "ss", "-ltnH", check=False).stdout:
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} in {NS[name]}")


def iperf_client(name, host, secs, cc):
    out = ns(name, "iperf3", "-c", host, "-t", str(secs), "-C", cc, "--json",
             check=False, timeout=secs + 90).stdout
    v = json.loads(out)
    if "error" in v:
        raise RuntimeError(v["error"])
    end = v["end"]
    return end["sum_received"]["bits_per_second"] / 1e6, end["sum_sent"].get("retransmits", 0)


def kernel_to_kernel(spec, seed, secs, cc):
    bridge = spawn("br", TAPIR, "impair", "--between", "a1", "b1", f"{spec},seed={seed}")
    server = spawn("b", "iperf3", "-s", "-1")
    try:
        wait_listening("b")
        time.sleep(0.5)  # the bridge opens its sockets
        return iperf_client("a", K_SERVER, secs, cc)
    finally:
        stop(server)
        stop(bridge)


def tapir_args(spec, seed):
    return ["--tap", "tg0", "--addr", f"{TAP_TAPIR}/24", "--host-addr", f"{TAP_KERNEL}/24",
            "--impair", f"{spec},seed={seed}"]


def tap_up():
    """Until tapir's TAP has its kernel-side address."""
    deadline = time.time() + 20
    while TAP_KERNEL not in ns("t", "ip", "-4", "addr", check=False).stdout:
        if time.time() > deadline:
            raise RuntimeError("tapir's TAP did not come up")
        time.sleep(0.05)
    time.sleep(0.3)


def tapir_to_kernel(spec, seed, secs):
    # The server listens on any address, so it is ready before the TAP is;
    # its JSON gives what it received (goodput) like the kernel's runs.
    server = spawn("t", "iperf3", "-s", "-1", "--json")
    tapir = None
    try:
        wait_listening("t")
        tapir = spawn("t", TAPIR, "tput", "--connect", f"{TAP_KERNEL}:5201", "--iperf3",
                      "--time", str(secs), "--connect-timeout", "20", *tapir_args(spec, seed))
        tapir.wait(timeout=secs + 120)
        out = tapir.stdout.read()
        m = re.search(r"tapir -> peer: sent \d+ bytes, received \d+ bytes, [0-9.]+ Gbit/s(?:, (\d+) retransmits)?", out)
        if not m:
            raise RuntimeError(f"tapir tput said: {out[-2000:]}")
        server.wait(timeout=30)
        v = json.loads(server.stdout.read())
        return v["end"]["sum_received"]["bits_per_second"] / 1e6, int(m.group(1) or 0)
    finally:
        if tapir:
            stop(tapir)
        stop(server)


def kernel_to_tapir(spec, seed, secs):
    # No probe connection: an --once server would take it for its test.
    tapir = spawn("t", TAPIR, "tput", "--listen", "5201", "--iperf3", "--once", *tapir_args(spec, seed))
    try:
        tap_up()
        return iperf_client("t", TAP_TAPIR, secs, "cubic")
    finally:
        stop(tapir)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--secs", type=int, default=5)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--first-seed", type=int, default=1, help="seeds are FIRST_SEED .. FIRST_SEED + SEEDS - 1")
    ap.add_argument("--quick", action="store_true", help="only the 10 ms cells and burst loss")
    ap.add_argument("--only", default="",
                    help="only cells whose name contains this (alternatives separated by |)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root")
    if not os.path.exists(TAPIR):
        sys.exit(f"{TAPIR} is missing: cargo build --release -p tapir")
    avail = run("sysctl", "-n", "net.ipv4.tcp_available_congestion_control", check=False).stdout
    have_bbr = "bbr" in avail.split()
    cleanup()
    load0 = os.getloadavg()
    rows = []
    try:
        setup()
        only = args.only.split("|")
        for name, spec in [c for c in grid(args.quick) if any(o in c[0] for o in only)]:
            res = {k: [] for k in ("kc", "kb", "tk", "kt")}
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                # Alternate the systems within the cell.
                res["kc"].append(kernel_to_kernel(spec, seed, args.secs, "cubic"))
                res["tk"].append(tapir_to_kernel(spec, seed, args.secs))
                res["kt"].append(kernel_to_tapir(spec, seed, args.secs))
                if have_bbr:
                    res["kb"].append(kernel_to_kernel(spec, seed, args.secs, "bbr"))
            med = {k: (statistics.median(x for x, _ in v), statistics.median(r for _, r in v)) if v else (0, 0)
                   for k, v in res.items()}
            rows.append((name, med))
            kc = med["kc"][0] or 1e-9
            print(f"{name}: kernel CUBIC {med['kc'][0]:.1f} ({med['kc'][1]} rtx), "
                  f"tapir->kernel {med['tk'][0]:.1f} ({med['tk'][1]} rtx) = {med['tk'][0] / kc:.2f}x, "
                  f"kernel->tapir {med['kt'][0]:.1f} = {med['kt'][0] / kc:.2f}x", file=sys.stderr, flush=True)
    finally:
        cleanup()
    load1 = os.getloadavg()
    commit = run("git", "-C", ROOT, "rev-parse", "--short", "HEAD", check=False).stdout.strip()
    built = f" ({TAPIR})" if os.environ.get("TAPIR_BIN") else ""
    print(f"tapir {commit}{built}; {args.secs} s per run, {args.seeds} seed(s), medians; "
          f"load average {load0[0]:.1f} before, {load1[0]:.1f} after")
    print("| link | kernel CUBIC -> kernel | kernel BBR -> kernel | tapir -> kernel | ratio | kernel -> tapir | ratio |")
    print("|---|---|---|---|---|---|---|")
    for name, m in rows:
        kc = m["kc"][0] or 1e-9
        bbr = f"{m['kb'][0]:.1f} ({m['kb'][1]:.0f})" if have_bbr else "-"
        print(f"| {name} | {m['kc'][0]:.1f} ({m['kc'][1]:.0f}) | {bbr} | {m['tk'][0]:.1f} ({m['tk'][1]:.0f}) | "
              f"{m['tk'][0] / kc:.2f} | {m['kt'][0]:.1f} ({m['kt'][1]:.0f}) | {m['kt'][0] / kc:.2f} |")
    print("Goodput in Mbit/s (sender's retransmissions in brackets); ratio = tapir / kernel CUBIC.")


if __name__ == "__main__":
    main()
