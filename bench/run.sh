#!/usr/bin/env bash
# Speed and memory of wstap beside tcpdump and tshark, in one run, on large
# two-hop captures built at run time from real recorded ones.
#
#   bash bench/run.sh [SIZE_MB] [CONCURRENT_CONNS]     (default 1000 MB, 3000)
#   TSHARK_FULL=1 bash bench/run.sh                    tshark on the large files too
#   RUNS=5 bash bench/run.sh                           rounds (default 3): every command
#                                                      once per round, in turns; medians
#   SHAPES=nginx-bench bash bench/run.sh               one template only
#   SHAPES= bash bench/run.sh                          hostile captures only
#   HOSTILE=0 bash bench/run.sh                        plaintext shapes only
#   WSTAP_BEFORE=/path/to/old/wstap bash bench/run.sh  an older build too
#   THREADS="1 2 4" bash bench/run.sh                   --threads rows (default "1 2")
#   PGO=0 bash bench/run.sh                            the plain release build rather
#                                                      than the profile-guided one
#                                                      the package ships (scripts/pgo.sh)
#
# Hostile captures (tests/hostile_gen, examples/hostilegen), the issue's
# sizes: a million SYNs in 4 s with three real WebSocket sessions through
# the proxy; 5,000 connections each holding a 60 KB partial request head and
# 2 x 210 KB of data ahead of a hole (2.4 GB); 200,000 pipelined requests
# on one connection, never answered; 80,000 of 8 KB. wstap runs with its
# default memory budget and with --memcap 64M.
#
# Each large capture multiplies a template from captures/ (real nginx, real
# websockets backend and clients): each copy gets its own addresses and
# Sec-WebSocket-Keys and is shifted in time so that about CONCURRENT_CONNS
# connections are open at once. Two templates, two shapes of traffic:
#   nginx-bench               small compressed messages, ~100-byte packets
#                             (the hardest case: most packets per byte)
#   nginx-bench-uncompressed  200-byte messages, ~230-byte packets (the shape
#                             of the reference capture in the engine issue)
#   nginx-healthy             many short sessions: 3 WebSocket sessions of
#                             0.3 s and 10 plain requests per 3 s copy (about
#                             75,000 sessions per GB): what a capture's length
#                             would make memory grow with if closed sessions
#                             were kept
# A second file a tenth of the size shows whether memory stays flat as the
# input grows. Reports ratios: the machine is shared and noisy, absolute
# times are not the point.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-1000}
CONC=${2:-3000}
RUNS=${RUNS:-3}
THREADS=${THREADS:-1 2}
OUT=${BENCH_DIR:-/tmp/wstap-bench}
mkdir -p "$OUT"

bash scripts/deps.sh build
for p in tcpdump tshark time; do
  command -v "$p" >/dev/null 2>&1 || [ -x /usr/bin/$p ] || {
    echo "bench: installing $p" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null
  }
done

cargo build --release --quiet --example benchgen --example hostilegen
# wstap as the package ships it (PGO=0: the plain release build).
source bench/lib.sh
WSTAP=$(wstap_bin)
echo "bench: wstap is $WSTAP" >&2
GEN=$PWD/target/release/examples/benchgen
HGEN=$PWD/target/release/examples/hostilegen
HOSTILE=${HOSTILE:-1}
if [ "$HOSTILE" != 0 ]; then
  # hostilegen KIND OUT ARGS...
  for spec in "flood flood 1000000 4 3" "hogs hogs 5000 60000 210000" "pipeline pipeline 200000 100" \
              "pipeline8k pipeline 80000 8192"; do
    set -- $spec
    name=$1; kind=$2; shift 2
    if ! { [ -s "$OUT/$name.pcap" ] && [ "$(cat "$OUT/$name.args" 2>/dev/null)" = "$kind $*" ]; }; then
      "$HGEN" "$kind" "$OUT/$name.pcap" "$@" >/dev/null 2>&1
      echo "$kind $*" > "$OUT/$name.args"
    fi
  done
fi

small=$((SIZE / 10))
SHAPES=${SHAPES-nginx-bench nginx-bench-uncompressed nginx-healthy}
for shape in $SHAPES; do
  [ -s "$OUT/$shape.big.pcap" ] && [ "$(cat "$OUT/$shape.args" 2>/dev/null)" = "$SIZE $CONC" ] || {
    "$GEN" "captures/$shape.pcap" "$OUT/$shape.big.pcap" "$SIZE" "$CONC"
    "$GEN" "captures/$shape.pcap" "$OUT/$shape.small.pcap" "$small" "$CONC"
    echo "$SIZE $CONC" > "$OUT/$shape.args"
  }
done

median() { sort -g | sed -n "$(( (RUNS + 1) / 2 ))p"; }

# rounds KEY < "name|command" lines -> "name|command|seconds|maxrss_kb|ratio"
# lines. The commands run in turns, once each per round, RUNS rounds: this
# machine's speed drifts from one minute to the next (a shared host), and
# within a round every command meets the same machine. Seconds and peak
# RSS are each command's medians; the ratio is the median over rounds of
# its time against the first command's (tcpdump) in the same round.
rounds() {
  local key=$1 names=() cmds=() i r n c t rss ratio
  while IFS='|' read -r n c; do
    names+=("$n")
    cmds+=("$c")
  done
  for i in "${!names[@]}"; do : > "$OUT/$key.$i.runs"; done
  for r in $(seq "$RUNS"); do
    for i in "${!names[@]}"; do
      sync
      /usr/bin/time -f "%e %M" -o "$OUT/$key.time" bash -c "${cmds[$i]}" > /dev/null 2> "$OUT/$key.err" || {
        echo "bench: ${names[$i]} failed: $(tail -1 "$OUT/$key.err")" >&2
        return 1
      }
      cat "$OUT/$key.time" >> "$OUT/$key.$i.runs"
    done
  done
  for i in "${!names[@]}"; do
    t=$(awk '{ print $1 }' "$OUT/$key.$i.runs" | median)
    rss=$(awk '{ print $2 }' "$OUT/$key.$i.runs" | median)
    ratio=$(paste -d' ' "$OUT/$key.$i.runs" "$OUT/$key.0.runs" | awk '{ print ($3 > 0) ? $1 / $3 : 0 }' | median)
    echo "${names[$i]}|${cmds[$i]}|$t|$rss|$ratio"
  done
}

packets() { tcpdump -r "$1" -w /dev/null 2>&1 | grep -o '[0-9]* packets' | head -1 | cut -d' ' -f1 || true; }

report() {
  local label=$1 file=$2 key=$3
  local mb pk
  mb=$(du -m "$file" | cut -f1)
  pk=$(capinfos -c -M "$file" 2>/dev/null | awk -F: '/Number of packets/ {gsub(/ /,"",$2); print $2}')
  echo
  echo "### $label: $(basename "$file"), ${mb} MB, ${pk:-?} packets, ~$CONC connections open at once"
  echo
  echo "| tool | command | time (s) | vs tcpdump | MB/s | packets/s | peak RSS (MB) |"
  echo "|---|---|---:|---:|---:|---:|---:|"
  local plain="" metrics="" i=0
  while IFS='|' read -r name cmd t rss ratio; do
    case $name in
      "wstap (full analysis, summary), 1 thread") plain=$i ;;
      "wstap --metrics"*) metrics=$i ;;
    esac
    i=$((i + 1))
    awk -v n="$name" -v c="$cmd" -v t="$t" -v r="$ratio" -v mb="$mb" -v pk="${pk:-0}" -v rss="$rss" 'BEGIN {
      printf "| %s | `%s` | %.2f | %.2fx | %.0f | %.0f | %.1f |\n", n, c, t, r, mb / t, pk / t, rss / 1024 }'
  done < <(rounds "$key")
  if [ -n "$plain" ] && [ -n "$metrics" ]; then
    echo
    # Each round's run with the endpoint against the same round's without
    # it (median). /usr/bin/time has 0.01 s steps: under half a second, one
    # step is 2% or more, so the difference says nothing.
    local p m
    p=$(awk '{ print $1 }' "$OUT/$key.$plain.runs" | median)
    m=$(paste -d' ' "$OUT/$key.$metrics.runs" "$OUT/$key.$plain.runs" | awk '{ print ($3 > 0) ? $1 / $3 : 0 }' | median)
    awk -v p="$p" -v m="$m" 'BEGIN {
      if (p < 0.5) { printf "--metrics on: %.2f s against %.2f s (too short to compare; see the 1 GB file)\n", m * p, p; exit }
      printf "--metrics on: %+.1f%% time beside the same run without it, round by round (issue 12: at most 3%%)\n", (m - 1) * 100 }'
  fi
}

{
  echo "## wstap benchmark, $(date -u +%Y-%m-%d), $(nproc) cores, $RUNS rounds, the commands in turns (medians; ratios: median of each round's)"
  for shape in $SHAPES; do
    for f in big small; do
      file=$OUT/$shape.$f.pcap
      label=$([ $f = big ] && echo "$shape, large" || echo "$shape, a tenth of it")
      tshark_cmd="tshark -r $file -Y websocket"
      if [ $f = big ] && [ -z "${TSHARK_FULL:-}" ]; then tshark_cmd=""; fi
      {
        echo "tcpdump|tcpdump -r $file -w /dev/null"
        echo "read floor (wstap's reader + a BPF filter matching nothing)|$WSTAP -r $file -q udp"
        echo "wstap (full analysis, summary), 1 thread|$WSTAP -r $file -q --threads 1"
        echo "wstap --metrics (endpoint on, summary), 1 thread|$WSTAP -r $file -q --threads 1 --metrics 127.0.0.1:0"
        for n in $THREADS; do
          echo "wstap --json, $n thread$([ "$n" = 1 ] || echo s)|$WSTAP -r $file --json --threads $n"
        done
        if [ -n "$tshark_cmd" ]; then echo "tshark -Y websocket|$tshark_cmd"; fi
      } | report "$label" "$file" "$shape-$f"
    done
  done
  if [ "$HOSTILE" != 0 ]; then
    for h in flood hogs pipeline pipeline8k; do
      file=$OUT/$h.pcap
      case $h in
        flood) what="a million SYNs in 4 s from random sources, three real WebSocket sessions (both hops) among them" ;;
        hogs) what="5,000 connections each holding a 60 KB partial request head and 2 x 210 KB ahead of a hole" ;;
        pipeline) what="200,000 pipelined requests on one connection, never answered, then a WebSocket session" ;;
        pipeline8k) what="80,000 pipelined 8 KB requests on one connection, never answered" ;;
      esac
      mb=$(du -m "$file" | cut -f1)
      echo
      echo "### hostile: $h.pcap, ${mb} MB: $what"
      echo
      echo "| tool | command | time (s) | vs tcpdump | peak RSS (MB) | vs tcpdump | what wstap reported |"
      echo "|---|---|---:|---:|---:|---:|---|"
      base_rss=""
      {
        echo "tcpdump|tcpdump -r $file -w /dev/null"
        echo "wstap (default budget, 384M)|$WSTAP -r $file --json"
        echo "wstap --memcap 64M|$WSTAP -r $file --json --memcap 64M"
        if [ -n "${WSTAP_BEFORE:-}" ]; then echo "wstap before this work|$WSTAP_BEFORE -r $file --json"; fi
      } | rounds "$h" | while IFS='|' read -r name cmd t rss ratio; do
        [ -z "$base_rss" ] && base_rss=$rss
        said=""
        case $name in
          wstap*) said=$(bash -c "$cmd" 2>/dev/null | tail -1 | python3 -c '
import json, sys
try:
    s = json.load(sys.stdin)
except Exception:
    print("-"); sys.exit()
m = s.get("memory", {}); e = m.get("evicted", {})
out = ["%d handshakes upgraded" % s["handshakes"]["upgraded"]]
if e: out.append("evicted %d half-open / %d established / %d upgraded" % (e["half_open"], e["established"], e["upgraded"]))
if m.get("shed_connections"): out.append("buffers shed on %d connections (%.0f MB)" % (m["shed_connections"], m["shed_bytes"] / 1e6))
a = s.get("http_anomalies", {})
if a.get("http-pipeline-limit"): out.append("%d pipelined requests not reported" % a["http-pipeline-limit"])
if m: out.append("peak charged %.1f MB" % (m["peak_bytes"] / 1e6))
print("; ".join(out))') ;;
        esac
        awk -v n="$name" -v c="$cmd" -v t="$t" -v r="$ratio" -v rss="$rss" -v br="$base_rss" -v said="$said" 'BEGIN {
          ratio = (r > 0) ? sprintf("%.1fx", r) : "-"
          printf "| %s | `%s` | %.2f | %s | %.1f | %.1fx | %s |\n", n, c, t, ratio, rss / 1024, rss / br, said }'
      done
    done
  fi
} | tee "$OUT/results.md"
echo
echo "bench: results in $OUT/results.md" >&2
