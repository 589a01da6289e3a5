#!/bin/bash
# The kernel sending to tapir through tapir's own link emulator with 10 %
# reordering and 10 ms delay: iperf3's goodput and retransmissions, and
# tapir's out-of-order counters from `tapir up`'s exit report (the
# segments it had to drop, which the kernel then retransmitted). Give two
# builds to compare them, alternating, RUNS times each.
#
# usage (root): benches/reorder_receive.sh TAPIR_BINARY [TAPIR_BINARY ...]
#   RUNS=3 SECS=8 SPEC=reorder=10%,delay=10ms,seed=1 by default
set -eu
RUNS=${RUNS:-3}
SECS=${SECS:-8}
SPEC=${SPEC:-reorder=10%,delay=10ms,seed=1}
NS=tapir-reorder-$$
OUT=$(mktemp -d)
cleanup() {
    [ -n "${PID:-}" ] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$OUT"
}
trap cleanup EXIT
one() { # binary
    ip netns add "$NS"
    ip -n "$NS" link set lo up
    ip netns exec "$NS" "$1" up --tap tr0 --addr 10.77.8.2/24 --host-addr 10.77.8.1/24 \
        --impair "$SPEC" --iperf3 5201 >"$OUT/tapir" 2>&1 &
    PID=$!
    for _ in $(seq 100); do
        ip -n "$NS" addr show tr0 2>/dev/null | grep -q 10.77.8.1/24 && break
        sleep 0.1
    done
    sleep 0.5
    ip netns exec "$NS" iperf3 -c 10.77.8.2 -t "$SECS" -C cubic --json >"$OUT/iperf" 2>&1 || true
    kill -INT "$PID"
    wait "$PID" || true
    PID=
    ip netns del "$NS"
    python3 - "$OUT/iperf" "$OUT/tapir" <<'EOF'
import json, re, sys
v = json.load(open(sys.argv[1]))
e = v["end"]
text = open(sys.argv[2]).read()
def c(name):
    m = re.search(rf"^{name}\s+(\d+)", text, re.M)
    return int(m.group(1)) if m else 0
print(f"{e['sum_received']['bits_per_second'] / 1e6:7.1f} Mbit/s, kernel retransmissions "
      f"{e['sum_sent'].get('retransmits', 0):4}, tcp_ooo_ranges_full {c('tcp_ooo_ranges_full')}, "
      f"tcp_ooo_budget_full {c('tcp_ooo_budget_full')}")
EOF
}
echo "kernel -> tapir, $SPEC, $SECS s, load $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq "$RUNS"); do
    for bin in "$@"; do
        echo "run $i $(basename "$bin"): $(one "$(realpath "$bin")")"
    done
done
echo "load after $(cut -d' ' -f1-3 /proc/loadavg)"
