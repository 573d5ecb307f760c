#!/usr/bin/env bash
# The whole test suite: what CI runs (.ci/run) and what the README's quick
# start runs. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings

echo "== unit and integration tests (captures, peers corpus, CLI, JSON contract)"
cargo test --quiet

echo "== the fuzz targets still build (their crate is outside the main build)"
(cd fuzz && cargo check --quiet --bins --examples)

echo "== release build for the end-to-end tests"
cargo build --release --quiet
export WSTAP="$PWD/target/release/wstap"

echo "== hostile captures at the issue's sizes (a million SYNs), release build"
HOSTILE_FULL=1 cargo test --quiet --test hostile

for t in tests/live/run.sh tests/live/tls.sh tests/metrics/run.sh tests/tui_tmux.sh tests/package/run.sh; do
  if [ -f "$t" ]; then
    echo "== $t"
    bash "$t"
  fi
done
echo "all tests passed"
