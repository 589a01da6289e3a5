#!/bin/bash
# Throughput of `tapir impair --between` with no impairment, against the
# direct veth it stands in for: iperf3 between two namespaces, offloads off
# on both paths (the bridge needs whole frames; the direct path is measured
# the same way, and once with offloads on for reference).
#
# usage (root): benches/bridge_throughput.sh [TAPIR_BINARY] [SECONDS] [SPEC]
set -eu
BIN=$(realpath "${1:-target/release/tapir}")
T=${2:-5}
SPEC=${3:-}
P=tapir-bench-$$
cleanup() {
    [ -n "${BR:-}" ] && kill -TERM "$BR" 2>/dev/null && wait "$BR" 2>/dev/null
    for n in a b br d1 d2; do ip netns del $P-$n 2>/dev/null || true; done
}
trap cleanup EXIT
for n in a b br d1 d2; do ip netns add $P-$n; ip -n $P-$n link set lo up; done
offload() { ip netns exec $1 ethtool -K $2 tx "$3" tso "$3" gso "$3" >/dev/null; }
iperf() { # ns-client ns-server
    ip netns exec $2 iperf3 -s -1 -D -p 5201 -I /tmp/$P.pid >/dev/null
    sleep 0.3
    ip netns exec $1 iperf3 -c 10.77.0.2 -p 5201 -t "$T" -f m | awk '/receiver/ {print $7, $8}'
}
# direct veth
ip -n $P-d1 link add d0 type veth peer name d0 netns $P-d2
ip -n $P-d1 addr add 10.77.0.1/24 dev d0; ip -n $P-d2 addr add 10.77.0.2/24 dev d0
ip -n $P-d1 link set d0 up; ip -n $P-d2 link set d0 up
echo "direct veth, offloads on:   $(iperf $P-d1 $P-d2)"
offload $P-d1 d0 off; offload $P-d2 d0 off
echo "direct veth, offloads off:  $(iperf $P-d1 $P-d2)"
# through the bridge
ip -n $P-br link add a1 type veth peer name a0 netns $P-a
ip -n $P-br link add b1 type veth peer name b0 netns $P-b
ip -n $P-a addr add 10.77.0.1/24 dev a0; ip -n $P-b addr add 10.77.0.2/24 dev b0
for x in "a a0" "b b0" "br a1" "br b1"; do set -- $x; ip -n $P-$1 link set $2 up; done
bridge() { # offloads
    offload $P-a a0 $1; offload $P-b b0 $1
    ip netns exec $P-br "$BIN" impair --between a1 b1 "$SPEC" 2>/tmp/$P.bridge &
    BR=$!
    sleep 1
    echo "tapir impair bridge ${SPEC:-(no impairment)}, offloads $1: $(iperf $P-a $P-b)"
    kill -TERM $BR; wait $BR 2>/dev/null || true; BR=
    sed 's/^/  /' /tmp/$P.bridge
}
[ -z "$SPEC" ] && bridge on
bridge off
rm -f /tmp/$P.bridge /tmp/$P.pid
