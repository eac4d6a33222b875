#!/usr/bin/env bash
# Instructions per request, counted by valgrind: the same on a quiet machine and a busy one.
#
#   bash benches/instructions.sh [SCENARIO...]     (default: preset-hit fs-10k fs-304)
#
# Each scenario of the `allocs` binary runs in process for 200 and then 1,200 requests under
# `valgrind --tool=lackey`; the difference over 1,000 requests, less the bare handler's, is what
# one request of the scenario costs beyond the bare handler's. Needs valgrind (Debian package
# `valgrind`).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v valgrind >/dev/null; then
  echo "error: valgrind is not installed (Debian: apt-get install valgrind)" >&2
  exit 1
fi
cargo build --release -q -p tower-edge-benches --bin allocs
bin=target/release/allocs

# Guest instructions of one run of `allocs --only $1 --requests $2`.
count() {
  valgrind --tool=lackey --basic-counts=yes "$bin" --only "$1" --requests "$2" 2>&1 >/dev/null |
    sed -n 's/.*guest instrs: *//p' | head -1 | tr -d ','
}

per_request() {
  local small large
  small=$(count "$1" 200)
  large=$(count "$1" 1200)
  echo $(((large - small) / 1000))
}

bare=$(per_request bare)
echo "bare handler: $bare instructions per request"
for scenario in "${@:-preset-hit fs-10k fs-304}"; do
  for name in $scenario; do
    # `--only NAME` runs the bare handler too: its share is taken off.
    both=$(per_request "$name")
    echo "$name: $((both - bare)) instructions per request ($((both - 2 * bare)) over the bare handler)"
  done
done
