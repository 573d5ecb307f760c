#!/usr/bin/env bash
# The release binary built with profile-guided optimisation (PGO), as the
# Debian package ships it and bench/run.sh measures it: an instrumented
# build analyses every bundled capture (real traffic through each proxy:
# JSON, text with -vv, and two workers), llvm-profdata merges what it
# counted, and the release build lays its code out by that profile. The
# output is the same as the plain release build's; the time is about a
# tenth less (docs/benchmark.md "Profile-guided build").
#   bash scripts/pgo.sh      -> target/pgo/release/wstap (its path, last line)
# It needs llvm-profdata of rustc's own LLVM version (Debian's llvm-N,
# installed here when apt has it). Without one it builds the plain release
# binary instead and says so on stderr: target/release/wstap.
# A build whose inputs have not changed since (sources, manifests, the
# training captures, this script, rustc, RUSTFLAGS) is not made again.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh build >&2
major=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
profdata=""
find_profdata() {
  if command -v "llvm-profdata-$major" >/dev/null 2>&1; then
    profdata=$(command -v "llvm-profdata-$major")
  elif command -v llvm-profdata >/dev/null 2>&1 && llvm-profdata --version 2>/dev/null | grep -q "LLVM version $major\."; then
    profdata=$(command -v llvm-profdata)
  fi
}
find_profdata
if [ -z "$profdata" ] && command -v apt-get >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  apt-cache show "llvm-$major" >/dev/null 2>&1 || $sudo apt-get update -qq >/dev/null 2>&1 || true
  if apt-cache show "llvm-$major" >/dev/null 2>&1; then
    echo "pgo: installing llvm-$major (llvm-profdata for rustc's LLVM $major)" >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "llvm-$major" >/dev/null || true
    find_profdata
  fi
fi
if [ -z "$profdata" ]; then
  echo "pgo: no llvm-profdata for LLVM $major (rustc's): building without a profile" >&2
  cargo build --release --quiet --bin wstap >&2
  echo target/release/wstap
  exit 0
fi

# What the build depends on, by content (a clone has fresh mtimes).
fingerprint() {
  { find src captures examples -type f -print0 2>/dev/null | LC_ALL=C sort -z | xargs -0 sha256sum
    sha256sum Cargo.toml Cargo.lock scripts/pgo.sh
    rustc -vV
    echo "RUSTFLAGS=${RUSTFLAGS:-} $profdata"
  } | sha256sum | cut -d' ' -f1
}
stamp=target/pgo/release/wstap.inputs
fp=$(fingerprint)
if [ -x target/pgo/release/wstap ] && [ "$(cat "$stamp" 2>/dev/null)" = "$fp" ]; then
  echo "pgo: target/pgo/release/wstap is up to date (same sources, captures and toolchain)" >&2
  echo target/pgo/release/wstap
  exit 0
fi

gen=$PWD/target/pgo-gen
rm -rf "$gen/profiles"
mkdir -p "$gen/profiles"
RUSTFLAGS="-Cprofile-generate=$gen/profiles" cargo build --release --quiet --bin wstap --target-dir "$gen" >&2
# Root parses as nobody unless told (-Z): the profile is written by the
# process at its exit, into a directory of root's.
as=(); [ "$(id -u)" -eq 0 ] && as=(-Z root)
runs=0
for f in captures/*.pcap captures/*.pcapng; do
  [ -f "$f" ] || continue
  for mode in "--json" "-vv" "--json --threads 2"; do
    # shellcheck disable=SC2086
    LLVM_PROFILE_FILE="$gen/profiles/wstap-%p.profraw" "$gen/release/wstap" -r "$f" $mode "${as[@]}" >/dev/null 2>&1 || true
    runs=$((runs + 1))
  done
done
"$profdata" merge -o "$gen/wstap.profdata" "$gen"/profiles/*.profraw
echo "pgo: profile of $runs runs over the bundled captures ($(du -h "$gen/wstap.profdata" | cut -f1))" >&2
RUSTFLAGS="-Cprofile-use=$gen/wstap.profdata" cargo build --release --quiet --bin wstap --target-dir target/pgo >&2
echo "$fp" > "$stamp"
echo target/pgo/release/wstap
