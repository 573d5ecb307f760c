#!/usr/bin/env bash
# Decryption speed (docs/benchmark.md, "TLS"): wstap on a TLS capture with
# and without its key log, beside tshark -o tls.keylog_file, and the same
# traffic in plaintext, in one run.
#
#   bash bench/tls.sh [SIZE_MB] [CONCURRENT_CONNS]      (default 200 MB, 3000)
#   RUNS=5 bash bench/tls.sh                            repetitions (median kept)
#   PGO=0 bash bench/tls.sh                             the plain release build, not the
#                                                      profile-guided one the package ships
#   WSTAP_BASE=/path/to/main/wstap bash bench/tls.sh    also time another build on the plaintext
#
# The TLS capture is built at run time: bench/run.sh's generator multiplies
# the real nginx-bench-uncompressed capture (both hops, ~3000 connections
# open at once), then examples/tlsgen.rs makes every client hop TLS 1.3
# (AES-128-GCM, per-connection secrets, the key log written beside it)
# while the upstream hop stays plaintext, as behind a TLS-terminating proxy.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-200}
CONC=${2:-3000}
RUNS=${RUNS:-3}
OUT=${BENCH_DIR:-/tmp/wstap-bench}
FRONT=18132 # the template's front port (benchgen keeps ports)
mkdir -p "$OUT"

source bench/lib.sh
bash scripts/deps.sh build
need tshark time
cargo build --release --quiet --example benchgen --example tlsgen
WSTAP=$(wstap_bin)
echo "bench: wstap is $WSTAP" >&2
GEN=$PWD/target/release/examples/benchgen
TLSGEN=$PWD/target/release/examples/tlsgen

plain=$OUT/tls-plain.pcap
tls=$OUT/tls.pcap
keys=$OUT/tls.keys
small=$OUT/tls-small.pcap
smallkeys=$OUT/tls-small.keys
if [ "$(cat "$OUT/tls.args" 2>/dev/null)" != "$SIZE $CONC" ] || [ ! -s "$tls" ]; then
  "$GEN" captures/nginx-bench-uncompressed.pcap "$plain" "$SIZE" "$CONC"
  "$TLSGEN" "$plain" "$FRONT" "$tls" "$keys"
  "$GEN" captures/nginx-bench-uncompressed.pcap "$OUT/tls-small-plain.pcap" "$((SIZE / 10))" "$CONC"
  "$TLSGEN" "$OUT/tls-small-plain.pcap" "$FRONT" "$small" "$smallkeys"
  echo "$SIZE $CONC" >"$OUT/tls.args"
fi

TIMES=$OUT/tls.times

: >"$OUT/tls.times"
{
  echo "## TLS decryption, $(date -u +%Y-%m-%d), $(nproc) cores, runs: $RUNS (median)"
  echo
  echo "Plaintext: $(mb "$plain") MB; TLS: $(mb "$tls") MB (client hops TLS 1.3 AES-128-GCM, $(grep -c CLIENT_TRAFFIC_SECRET_0 "$keys") connections)."
  echo
  {
    echo "wstap, plaintext capture|$WSTAP -r $plain -q --threads 1"
    if [ -n "${WSTAP_BASE:-}" ]; then echo "wstap of WSTAP_BASE, plaintext capture|$WSTAP_BASE -r $plain -q --threads 1"; fi
    echo "wstap, TLS capture, no keys|$WSTAP -r $tls -q --threads 1"
    echo "wstap, TLS capture, --keylog|$WSTAP -r $tls -q --threads 1 --keylog $keys"
  } | table "$tls"
  # Decryption's own rate: the ciphertext of the client hop over the time
  # the keys added, on one core (the rows above run one thread; a file this
  # size gets every core by default, as in the table beside tshark).
  "$WSTAP" -r "$tls" --json --keylog "$keys" | tail -1 >"$OUT/tls.summary.json"
  python3 - "$OUT/tls.summary.json" "$OUT/tls.times" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["tls"]
t = dict(l.strip().split("|") for l in open(sys.argv[2]) if "|" in l)
cipher = s["bytes"] + 22 * s["records"]  # TLS 1.3 AES-GCM: header, type, tag per record
extra = float(t["wstap, TLS capture, --keylog"]) - float(t["wstap, plaintext capture"])
print()
print(f"Decrypted: {s['decrypted']}/{s['connections']} connections, {s['records']} records, "
      f"{s['bytes'] / 1e6:.1f} MB of application data ({cipher / 1e6:.1f} MB of records), "
      f"{s['auth_failures']} authentication failures.")
if extra > 0:
    print(f"TLS work (record layer, key schedule, AEAD) over the same analysis in plaintext: {extra:.2f} s "
          f"for {cipher / 1e6:.1f} MB of records: {cipher / 1e6 / extra:.0f} MB/s on one core "
          f"({extra / s['records'] * 1e6:.2f} us per record).")
PY
  echo
  echo "### beside tshark, the same TLS capture"
  echo
  {
    echo "wstap, TLS capture, --keylog, one thread|$WSTAP -r $tls -q --threads 1 --keylog $keys"
    echo "wstap, TLS capture, --keylog, default threads ($(nproc) cores)|$WSTAP -r $tls -q --keylog $keys"
    echo "tshark -o tls.keylog_file, HTTP|tshark -r $tls -o tls.keylog_file:$keys -d tcp.port==$FRONT,tls -d tls.port==$FRONT,http -Y http.request"
  } | table "$tls"
} | tee "$OUT/tls-results.md"
echo "bench: results in $OUT/tls-results.md" >&2
