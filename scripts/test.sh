#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what it needs, then runs formatting, lints,
# every test (unit, integration, doc), the docs build, and a short load-bench smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# Toolchain components the checks need.
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    step "installing the $component component"
    rustup component add "$component"
  fi
done

# System packages, installed only when missing (apt-get needs root; CI runs as root).
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    step "installing ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
  fi
}
# pkg-config is what -sys crates use to find C libraries.
command -v pkg-config >/dev/null 2>&1 || apt_install pkg-config
# The Redis tests start their own redis-server on a free loopback port.
command -v redis-server >/dev/null 2>&1 || apt_install redis-server
redis-server --version
# The example server's live page is tested in a real headless browser.
command -v chromium >/dev/null 2>&1 || apt_install chromium
chromium --version 2>/dev/null | head -1
# The load bench's smoke run drives the hit scenarios over HTTP/2 (h2c) with h2load too.
command -v h2load >/dev/null 2>&1 || apt_install nghttp2-client

# Everything the tests make in the temporary directory (files, Redis Cluster directories, the
# example server's download) must be gone when they end: a directory of this run's own, checked
# at the end.
run_tmp="$(mktemp -d)"
export TMPDIR="$run_tmp"

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy (all targets, all features, warnings denied)"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "each feature of tower-edge builds alone"
cargo check -q -p tower-edge --no-default-features
for feature in etag last-modified axum cache compression-gzip compression-br compression-zstd compression-deflate range fs preset; do
  cargo check -q -p tower-edge --no-default-features --features "$feature"
done

cargo check -q -p tower-edge-store --no-default-features
for feature in moka memo macros single-flight redis metrics; do
  cargo check -q -p tower-edge-store --no-default-features --features "$feature"
done

step "tests (unit, integration, benches in test mode)"
cargo test --workspace --all-features --all-targets

step "doc tests"
cargo test --workspace --all-features --doc

step "docs build with broken links denied"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --all-features --no-deps -q

step "the example server builds on its own, from the manifest the README shows"
# The README's copy of the standalone manifest is the file's text.
standalone="examples/server/Cargo.standalone.toml"
diff <(awk '/^<!-- examples\/server\/Cargo.standalone.toml -->$/ { marker = 1; next }
            marker && /^```toml$/ { block = 1; next }
            block && /^```$/ { exit }
            block { print }' README.md) "$standalone"
# A copy outside the workspace, its tower-edge paths pointed at this checkout, with the
# workspace's lock file; checked in the workspace's target directory, so the registry crates
# compiled already are reused.
copy="$run_tmp/example-server"
cp -R examples/server "$copy"
rm "$copy/Cargo.standalone.toml"
sed "s|path = \"../tower-edge/|path = \"$PWD/|" "$standalone" > "$copy/Cargo.toml"
grep -q "path = \"$PWD/crates/tower-edge\"" "$copy/Cargo.toml"
cp Cargo.lock "$copy/Cargo.lock"
started=$SECONDS
# Not --locked: cargo drops the workspace's other packages from the copied lock file, which
# --locked refuses. --offline and the check below keep every version the lock file's.
# Every target and feature, so that a dependency the workspace's manifest has and the
# standalone one lacks (for the tests, say) fails here.
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}" \
  cargo check -q --offline --all-targets --all-features --manifest-path "$copy/Cargo.toml"
versions() { awk '/^name = / { name = $3 } /^version = / { print name, $3 }' "$1" | sort -u; }
drifted="$(comm -23 <(versions "$copy/Cargo.lock") <(versions Cargo.lock))"
if [ -n "$drifted" ]; then
  echo "the standalone example resolved versions the workspace's Cargo.lock does not list:"
  echo "$drifted"
  exit 1
fi
rm -rf "$copy"
echo "checked in $((SECONDS - started)) s"

step "soak: 60 s of mixed load on the example server, Redis killed and handlers failing"
cargo run -q -p tower-edge-tests --bin soak -- --duration 60

step "load bench smoke run (correctness of every scenario, not a measurement)"
cargo run -q -p tower-edge-benches --bin loadbench -- --smoke --h2load --chart "$run_tmp/loadbench.svg"
grep -q '</svg>' "$run_tmp/loadbench.svg"
rm "$run_tmp/loadbench.svg"

step "allocation count smoke run (every scenario answers right)"
cargo run -q -p tower-edge-benches --bin allocs -- --smoke

step "invalidation bench smoke run (every step works; not a measurement)"
cargo run -q -p tower-edge-benches --bin invalidation -- --smoke

step "nothing left in the temporary directory"
# Except one empty `.tmpXXXXXX` file per process that profiled: pprof (the example server's
# `profiling` feature) keeps its sample buffer in a named temporary file held by a static, which
# is never dropped. Nothing of this project makes such a file.
leftovers="$(find "$run_tmp" -mindepth 1 -maxdepth 1 ! \( -type f -empty -name '.tmp??????' \))"
if [ -n "$leftovers" ]; then
  echo "the tests left these behind in $run_tmp:"
  echo "$leftovers"
  exit 1
fi
rm -rf "$run_tmp"

step "all checks passed"
