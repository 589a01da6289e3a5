#!/bin/bash
# Where the CPU goes while the kernel sends to tapir over a TAP with
# offloads, and while the kernel sends to itself over veth (BENCHMARKS.md,
# "Offloads, receiving: the kernel's sender is the bottleneck").
#
#   cargo build --release -p tapir
#   sudo benches/scripts/profile_offload_receive.sh [TAPIR TPUT FLAGS, e.g. --busy-poll 50]
#
# Needs root, iproute2, iperf3 and perf. Each setup runs in namespaces this
# script creates (tapir-prof-off; tapir-prof-k1 and -k2 joined by a veth
# pair), with the kernel at 10.77.0.1 and the receiver at 10.77.0.2, removed
# by name at the end; it stops only the processes it started. A 10 s
# `iperf3 -c` each; `perf record -e cpu-clock -a -g` for 4 s in the middle.
# The recordings go to $OUT (default /tmp/tapir-prof-offload), with a
# summary per setup: the throughput and the share of all samples per
# process.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TAPIR=${TAPIR:-$ROOT/target/release/tapir}
OUT=${OUT:-/tmp/tapir-prof-offload}
NS=tapir-prof-off K1=tapir-prof-k1 K2=tapir-prof-k2
mkdir -p "$OUT"
PIDS=()

cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for n in $NS $K1 $K2; do ip netns del $n 2>/dev/null || true; done
}
trap cleanup EXIT
cleanup

wait_listening() { # namespace
    for _ in $(seq 100); do
        ip netns exec "$1" bash -c "exec 3<>/dev/tcp/10.77.0.2/5201" 2>/dev/null && return
        sleep 0.2
    done
    echo "nothing listens on 10.77.0.2:5201 in $1" >&2
    exit 1
}

profile() { # name, client namespace
    ip netns exec "$2" iperf3 -c 10.77.0.2 -t 10 --json >"$OUT/$1.json" &
    local client=$!
    sleep 3
    perf record -q -e cpu-clock -a -g -o "$OUT/$1.data" -- sleep 4 2>/dev/null
    wait $client
    python3 -c "import json,sys; print('$1: %.2f Gbit/s' % (json.load(open(sys.argv[1]))['end']['sum_received']['bits_per_second'] / 1e9))" "$OUT/$1.json"
    perf report -i "$OUT/$1.data" --sort pid --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -4
}

# The kernel sends to tapir over a TAP (offloads on, as by default).
ip netns add $NS
ip netns exec $NS ip link set lo up
ip netns exec $NS "$TAPIR" tput --listen 5201 --iperf3 --tap tbp0 \
    --addr 10.77.0.2/24 --host-addr 10.77.0.1/24 "$@" >/dev/null 2>&1 &
PIDS+=($!)
wait_listening $NS
profile tapir $NS

# The kernel sends to itself over veth.
ip netns add $K1
ip netns add $K2
ip link add tbp1 netns $K1 type veth peer name tbp2 netns $K2
ip netns exec $K1 ip addr add 10.77.0.1/24 dev tbp1
ip netns exec $K2 ip addr add 10.77.0.2/24 dev tbp2
for pair in "$K1 tbp1" "$K2 tbp2"; do
    set -- $pair
    ip netns exec "$1" ip link set "$2" up
    ip netns exec "$1" ip link set lo up
done
ip netns exec $K2 iperf3 -s >/dev/null 2>&1 &
PIDS+=($!)
wait_listening $K1
profile kernel $K1
echo "recordings in $OUT (perf report -i $OUT/tapir.data --sort pid,sym)"
