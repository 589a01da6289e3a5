#!/usr/bin/env bash
# Regenerates the checked-in seed corpora in fuzz/seeds/ (README.md, "Seed
# corpus"):
# - script and wire: written by `cargo run --example seeds` from the
#   segment scripts and from frames the simulator carried;
# - iface, reassembly, tcp_pair, tcp_established: their inputs are `Arbitrary` action lists,
#   which cannot be written from frames, so they are grown from a short,
#   fixed-seed fuzzing run (iface starting from the wire frames) and
#   minimised with libFuzzer's -merge=1 (keeps the inputs that add coverage).
# Takes a few minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1

cargo run --quiet --release --example seeds
cargo fuzz build --sanitizer none

grow() {
  local target=$1 runs=$2
  shift 2
  local tmp
  tmp=$(mktemp -d)
  mkdir "$tmp/new"
  cargo fuzz run --sanitizer none "$target" "$tmp/new" "$@" -- \
    -runs="$runs" -seed=1 -max_len=1024 -print_final_stats=0 >"$tmp/log" 2>&1 ||
    { tail -40 "$tmp/log"; exit 1; }
  rm -rf "seeds/$target"
  mkdir -p "seeds/$target"
  cargo fuzz run --sanitizer none "$target" "seeds/$target" "$tmp/new" -- -merge=1 >"$tmp/log" 2>&1 ||
    { tail -40 "$tmp/log"; exit 1; }
  rm -rf "$tmp"
  echo "seeds/$target: $(ls "seeds/$target" | wc -l) inputs, $(du -sb "seeds/$target" | cut -f1) bytes"
}

grow iface 20000 seeds/wire
grow reassembly 30000
grow tcp_pair 20000
grow tcp_established 20000
