#!/usr/bin/env bash
# Print the HTTP / WebSocket summary of a capture with tshark, decoding every
# port listed for it in captures/manifest.json as HTTP.
#   bash tests/lab/show.sh NAME [extra tshark args]
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
name=$1; shift
ports=$(python3 - "$ROOT/captures/manifest.json" "$name" <<'PY'
import json, sys
for e in json.load(open(sys.argv[1])):
    if e["name"] == sys.argv[2]:
        print(" ".join(a.rsplit(":", 1)[1] for a in e["front"] + e["upstreams"]))
PY
)
dec=()
for p in $ports; do dec+=(-d "tcp.port==$p,http"); done
tshark -r "$ROOT/captures/$name.pcap" "${dec[@]}" -Y 'http || websocket || tcp.flags.reset==1 || tcp.flags.fin==1 || tls.handshake.type' \
    -T fields -e frame.number -e frame.time_relative -e tcp.srcport -e tcp.dstport -e _ws.col.Info "$@" 2>/dev/null
