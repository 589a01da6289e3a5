#!/usr/bin/env python3
"""Print the tapir vs smoltcp table from the last `cargo bench -p tapir-benches`.

Reads criterion's estimates under $CARGO_TARGET_DIR/criterion (default
./target/criterion, run from the workspace root) and prints, per benchmark,
the median time per batch of each stack and smoltcp_time / tapir_time
(above 1: tapir is faster).
"""

import json
import os
import sys

GROUPS = ["udp_echo_64B", "udp_echo_1024B", "icmp_echo", "reassembly"]
STACKS = ["tapir", "smoltcp"]


def median_us(base, group, stack):
    path = os.path.join(base, group, stack, "new", "estimates.json")
    with open(path) as f:
        return json.load(f)["median"]["point_estimate"] / 1000.0


def main():
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    base = os.path.join(target, "criterion")
    print("| benchmark | tapir (µs) | smoltcp (µs) | smoltcp / tapir |")
    print("|---|---:|---:|---:|")
    for group in GROUPS:
        try:
            t, s = (median_us(base, group, stack) for stack in STACKS)
        except FileNotFoundError as e:
            sys.exit(f"missing {e.filename}: run `cargo bench -p tapir-benches` first")
        print(f"| {group} | {t:.2f} | {s:.2f} | {s / t:.2f} |")


if __name__ == "__main__":
    main()
