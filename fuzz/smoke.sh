#!/usr/bin/env bash
# The CI fuzz smoke (README.md, "CI smoke"): build every target, replay the
# checked-in regressions, then run each target from its seed corpus for a
# fixed number of executions with a fixed seed. Any crash, timeout or
# invariant failure fails the script. A few minutes on 2 cores, most of it
# the build. Run from anywhere; needs cargo-fuzz (installed if absent).
set -euo pipefail
cd "$(dirname "$0")"

CARGO_FUZZ_VERSION=0.12.0
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi
# libFuzzer needs nightly features; the stable toolchain allows them so.
export RUSTC_BOOTSTRAP=1
# No sanitizer: tapir-stack has no unsafe code but one checked AVX2 call,
# and ASan would double the build time and halve the speed.
fuzz=(cargo fuzz run --sanitizer none)

cargo fuzz build --sanitizer none

# target:executions. About 20-30 s each on one core (~2.5 min in all).
targets=(wire:1000000 script:100000 iface:200000 tcp_established:200000 reassembly:60000 tcp_pair:100000)
for entry in "${targets[@]}"; do
  target=${entry%%:*}
  runs=${entry##*:}
  for f in regressions/"$target"-*; do
    [ -e "$f" ] || continue
    echo "== $target: replay $f"
    "${fuzz[@]}" "$target" "$f" -- -runs=1 >/dev/null 2>&1 || {
      "${fuzz[@]}" "$target" "$f" -- -runs=1 2>&1 | tail -40
      echo "regression $f fails" >&2
      exit 1
    }
  done
  echo "== $target: $runs executions"
  work=$(mktemp -d)
  start=$SECONDS
  # New inputs go to the scratch directory, never into seeds/.
  if ! "${fuzz[@]}" "$target" "$work" "seeds/$target" -- \
    -runs="$runs" -seed=1 -max_len=4096 -timeout=10 -rss_limit_mb=1024 \
    -artifact_prefix="$work/" >"$work/log" 2>&1; then
    tail -60 "$work/log"
    echo "fuzz target $target failed; reproducer: $(ls "$work"/crash-* "$work"/timeout-* "$work"/oom-* 2>/dev/null)" >&2
    exit 1
  fi
  grep -E "^#[0-9]+[[:space:]]+DONE" "$work/log" || true
  echo "   $((SECONDS - start)) s"
  rm -rf "$work"
done
echo "fuzz smoke: all targets passed"
