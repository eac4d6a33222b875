#!/usr/bin/env bash
# Runs every fuzz target (or those named) for RUNS executions each (default 10 million, at most
# MAX_SECONDS per target), then minimizes its corpus in place. Needs a nightly toolchain and
# cargo-fuzz (`cargo install cargo-fuzz`). Crashes land in fuzz/artifacts/<target>/; copy one to
# fuzz/regressions/<target>/ once fixed, and the test suite replays it from then on.
set -euo pipefail
cd "$(dirname "$0")"
runs="${RUNS:-10000000}"
max_seconds="${MAX_SECONDS:-1800}"
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)
cargo +nightly fuzz build -O -s none
failed=()
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "artifacts/$target"
  log="artifacts/$target/run.log"
  echo "==> $target: $runs runs, at most ${max_seconds}s"
  cargo +nightly fuzz run -O -s none "$target" "corpus/$target" -- \
    -runs="$runs" -max_total_time="$max_seconds" -max_len=4096 -print_final_stats=1 \
    >"$log" 2>&1 || { grep -A12 -m1 "panicked\|ERROR" "$log"; echo "FAILED: $target"; failed+=("$target"); continue; }
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb|Done" "$log" | tr '\n' ' '
  echo
  # Keep only the inputs that add coverage.
  cargo +nightly fuzz cmin -O -s none "$target" "corpus/$target" >/dev/null 2>&1 || true
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "failed: ${failed[*]} (inputs in fuzz/artifacts/)"
  exit 1
fi
