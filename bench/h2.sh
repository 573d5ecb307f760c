#!/usr/bin/env bash
# HTTP/2 speed (docs/h2.md, "Speed"): wstap on WebSockets over HTTP/2
# (RFC 8441) beside tshark, the conformance peer of the h2 side, in one run:
# ratios, never a timed test.
#
#   bash bench/h2.sh [SIZE_MB] [CONCURRENT_CONNS]      (default 50 MB, 3000)
#   RUNS=5 bash bench/h2.sh                            repetitions (median kept)
#   PGO=0 bash bench/h2.sh                             the plain release build, not the
#                                                      profile-guided one the package ships
#
# The inputs are built at run time from the bundled real captures by
# bench/run.sh's generator (examples/benchgen.rs: each copy of the template
# gets addresses of its own and its upstream Sec-WebSocket-Keys replaced,
# shifted in time so that ~CONCURRENT_CONNS connections are open at once):
#  - h2c: captures/haproxy-h2c.pcap (cleartext HTTP/2 with prior knowledge,
#    extended CONNECT streams, each its own HTTP/1.1 upgrade upstream);
#  - h2 over TLS: captures/haproxy-h2.pcap with its key log (chromium and
#    the scripted client; the copies keep their TLS bytes, so the one key
#    log decrypts every copy: the key log is looked up by client random).
# tshark reads the h2c front port as HTTP/2 (-d) and the TLS one with the
# same key log; both dissect every frame and header block (-Y http2).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-50}
CONC=${2:-3000}
RUNS=${RUNS:-3}
OUT=${BENCH_DIR:-/tmp/wstap-bench}
H2C_FRONT=18606 # the templates' front ports (benchgen keeps ports)
TLS_FRONT=18601
mkdir -p "$OUT"

source bench/lib.sh
bash scripts/deps.sh build
need tshark time
cargo build --release --quiet --example benchgen
WSTAP=$(wstap_bin)
echo "bench: wstap is $WSTAP" >&2
GEN=$PWD/target/release/examples/benchgen

h2c=$OUT/h2c.pcap
h2tls=$OUT/h2-tls.pcap
keys=$PWD/captures/haproxy-h2.keys
if [ "$(cat "$OUT/h2.args" 2>/dev/null)" != "$SIZE $CONC" ] || [ ! -s "$h2c" ] || [ ! -s "$h2tls" ]; then
  "$GEN" captures/haproxy-h2c.pcap "$h2c" "$SIZE" "$CONC"
  "$GEN" captures/haproxy-h2.pcap "$h2tls" "$SIZE" "$CONC"
  echo "$SIZE $CONC" >"$OUT/h2.args"
fi

# What each input holds, from wstap's own summary (so the row is known to
# have analysed what it was timed on).
cat >"$OUT/h2-holds.py" <<'PY'
import json, sys
s = json.load(sys.stdin)
h, t = s.get("h2") or {}, s.get("tls") or {}
tls = f", TLS {t['decrypted']}/{t['connections']} decrypted" if t else ""
print(f"{s['packets']} packets, {h.get('connections', 0)} HTTP/2 connections{tls}, "
      f"{h.get('websocket_streams', 0)} WebSocket streams ({h.get('websocket_accepted', 0)} accepted), "
      f"{s['handshakes']['upgraded']} upgrades, {s['sessions']} sessions")
PY
holds() { # FILE [ARGS...]
  "$WSTAP" -r "$@" --json | tail -1 | python3 "$OUT/h2-holds.py"
}

{
  echo "## HTTP/2 (RFC 8441), $(date -u +%Y-%m-%d), $(nproc) cores, runs: $RUNS (median)"
  echo
  echo "### h2c (prior knowledge), $(mb "$h2c") MB: $(holds "$h2c")"
  echo
  {
    echo "wstap|$WSTAP -r $h2c -q"
    echo "tshark -Y http2|tshark -r $h2c -d tcp.port==$H2C_FRONT,http2 -Y http2"
  } | table "$h2c"
  echo
  echo "### h2 over TLS 1.3 with the key log, $(mb "$h2tls") MB: $(holds "$h2tls" --keylog "$keys")"
  echo
  {
    echo "wstap --keylog|$WSTAP -r $h2tls -q --keylog $keys"
    echo "tshark -o tls.keylog_file -Y http2|tshark -r $h2tls -o tls.keylog_file:$keys -d tcp.port==$TLS_FRONT,tls -Y http2"
  } | table "$h2tls"
} | tee "$OUT/h2-results.md"
echo "bench: results in $OUT/h2-results.md" >&2
