#!/usr/bin/env bash
# Speed and memory of wstap beside tcpdump and tshark, in one run, on large
# two-hop captures built at run time from real recorded ones.
#
#   bash bench/run.sh [SIZE_MB] [CONCURRENT_CONNS]     (default 1000 MB, 3000)
#   TSHARK_FULL=1 bash bench/run.sh                    tshark on the large files too
#   RUNS=5 bash bench/run.sh                           repetitions (median kept)
#   SHAPES=nginx-bench bash bench/run.sh               one template only
#
# Each large capture multiplies a template from captures/ (real nginx, real
# websockets backend and clients): each copy gets its own addresses and
# Sec-WebSocket-Keys and is shifted in time so that about CONCURRENT_CONNS
# connections are open at once. Two templates, two shapes of traffic:
#   nginx-bench               small compressed messages, ~100-byte packets
#                             (the hardest case: most packets per byte)
#   nginx-bench-uncompressed  200-byte messages, ~230-byte packets (the shape
#                             of the reference capture in the engine issue)
# A second file a tenth of the size shows whether memory stays flat as the
# input grows. Reports ratios: the machine is shared and noisy, absolute
# times are not the point.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-1000}
CONC=${2:-3000}
RUNS=${RUNS:-3}
OUT=${BENCH_DIR:-/tmp/wstap-bench}
mkdir -p "$OUT"

bash scripts/deps.sh build
for p in tcpdump tshark time; do
  command -v "$p" >/dev/null 2>&1 || [ -x /usr/bin/$p ] || {
    echo "bench: installing $p" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null
  }
done

cargo build --release --quiet --bin wstap --example benchgen
WSTAP=$PWD/target/release/wstap
GEN=$PWD/target/release/examples/benchgen

small=$((SIZE / 10))
SHAPES=${SHAPES:-nginx-bench nginx-bench-uncompressed}
for shape in $SHAPES; do
  [ -s "$OUT/$shape.big.pcap" ] && [ "$(cat "$OUT/$shape.args" 2>/dev/null)" = "$SIZE $CONC" ] || {
    "$GEN" "captures/$shape.pcap" "$OUT/$shape.big.pcap" "$SIZE" "$CONC"
    "$GEN" "captures/$shape.pcap" "$OUT/$shape.small.pcap" "$small" "$CONC"
    echo "$SIZE $CONC" > "$OUT/$shape.args"
  }
done

# measure NAME FILE CMD... -> "seconds maxrss_kb" (median of RUNS by time)
measure() {
  local name=$1 file=$2; shift 2
  local i line
  : > "$OUT/$name.runs"
  for i in $(seq "$RUNS"); do
    sync
    /usr/bin/time -f "%e %M" -o "$OUT/$name.time" "$@" > /dev/null 2> "$OUT/$name.err" || {
      echo "bench: $name failed: $(tail -1 "$OUT/$name.err")" >&2
      return 1
    }
    cat "$OUT/$name.time" >> "$OUT/$name.runs"
  done
  sort -n "$OUT/$name.runs" | sed -n "$(( (RUNS + 1) / 2 ))p"
}

packets() { tcpdump -r "$1" -w /dev/null 2>&1 | grep -o '[0-9]* packets' | head -1 | cut -d' ' -f1 || true; }

report() {
  local label=$1 file=$2
  local mb pk
  mb=$(du -m "$file" | cut -f1)
  pk=$(capinfos -c -M "$file" 2>/dev/null | awk -F: '/Number of packets/ {gsub(/ /,"",$2); print $2}')
  echo
  echo "### $label: $(basename "$file"), ${mb} MB, ${pk:-?} packets, ~$CONC connections open at once"
  echo
  echo "| tool | command | time (s) | vs tcpdump | MB/s | packets/s | peak RSS (MB) |"
  echo "|---|---|---:|---:|---:|---:|---:|"
  local base=""
  while IFS='|' read -r name cmd; do
    read -r t rss < <(measure "$name" "$file" bash -c "$cmd")
    [ -z "$base" ] && base=$t
    awk -v n="$name" -v c="$cmd" -v t="$t" -v b="$base" -v mb="$mb" -v pk="${pk:-0}" -v rss="$rss" 'BEGIN {
      printf "| %s | `%s` | %.2f | %.2fx | %.0f | %.0f | %.1f |\n", n, c, t, t / b, mb / t, pk / t, rss / 1024 }'
  done
}

{
  echo "## wstap benchmark, $(date -u +%Y-%m-%d), $(nproc) cores, runs: $RUNS (median)"
  for shape in $SHAPES; do
    for f in big small; do
      file=$OUT/$shape.$f.pcap
      label=$([ $f = big ] && echo "$shape, large" || echo "$shape, a tenth of it")
      tshark_cmd="tshark -r $file -Y websocket"
      if [ $f = big ] && [ -z "${TSHARK_FULL:-}" ]; then tshark_cmd=""; fi
      {
        echo "tcpdump|tcpdump -r $file -w /dev/null"
        echo "read floor (wstap's reader + a BPF filter matching nothing)|$WSTAP -r $file -q udp"
        echo "wstap (full analysis, summary)|$WSTAP -r $file -q"
        echo "wstap --json|$WSTAP -r $file --json"
        if [ -n "$tshark_cmd" ]; then echo "tshark -Y websocket|$tshark_cmd"; fi
      } | report "$label" "$file"
    done
  done
} | tee "$OUT/results.md"
echo
echo "bench: results in $OUT/results.md" >&2
