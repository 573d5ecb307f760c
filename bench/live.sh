#!/usr/bin/env bash
# Live capture benchmark (docs/live.md): packets/s that `wstap -i lo` takes
# in and analyses with no kernel drop, beside `tcpdump -i lo -w FILE` in the
# same run, on the same packets.
#
#   bash bench/live.sh            (as root; the profile-guided build, PGO=0 the
#                                 plain one, WSTAP=path another binary)
#   STEPS="20000 50000 max" SECS=5 bash bench/live.sh      (max: tcpreplay --topspeed)
#   TCPDUMP_ARGS="--immediate-mode -B 32768" bash bench/live.sh   (tcpdump in wstap's ring mode)
#   THREADS="1 2" bash bench/live.sh     one wstap per --threads value, all
#                                        beside tcpdump on the same packets
#   THREADS="1 2:2" bash bench/live.sh   N:F = --threads N --fanout F (F kernel
#                                        rings; without -w, which --fanout refuses)
#   BENCH_FRONT_PORT=... BENCH_BACK_PORT=... (default 18581, 13581)
#
# 1. Records real WebSocket traffic through the lab's nginx and backend
#    (tests/live/load.py: C connections, small messages, both hops).
# 2. Multiplies it (examples/benchgen, as bench/run.sh does: every copy its
#    own addresses and Sec-WebSocket-Keys, about 3000 connections open at
#    once) into REPLAY_MB of whole two-hop connections, and rewrites its MAC
#    addresses (tcprewrite) so the kernel's IP stack ignores the replayed
#    packets (PACKET_OTHERHOST: no RSTs, no forwarding) while packet sockets
#    still see them. (tcpreplay's --unique-ip, used before, rewrote both
#    directions of a connection to different address pairs: after its
#    first loop no handshake was answered and no WebSocket frame parsed.)
# 3. For each rate in STEPS: starts wstap and tcpdump together, replays the
#    file onto lo for SECS seconds at that rate (tcpreplay --pps, or
#    --topspeed), stops both by SIGINT and reads what each captured,
#    dropped, and how much CPU it used, and what each wstap diagnosed.
#
# Python cannot generate more than a few thousand WebSocket messages per
# second here, which is why the load is replayed: tcpreplay sends each packet
# with one system call. Both tools see the same packets.

set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
STEPS=${STEPS:-"10000 50000 100000 200000 max"}
SECS=${SECS:-5}
FRONT=${BENCH_FRONT_PORT:-18581}
BACK=${BENCH_BACK_PORT:-13581}
THREADS=${THREADS:-1}
FILTER="tcp port $FRONT or tcp port $BACK"
PY=${LAB_PY:-python3}
export PYTHONDONTWRITEBYTECODE=1   # no __pycache__ in the tree
OUT=${OUT:-$ROOT/bench/out}
TCPDUMP_ARGS=${TCPDUMP_ARGS:-}

die() { printf 'bench/live.sh: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root"

for tool in nginx tcpdump tcpreplay tcprewrite; do
    if ! command -v $tool >/dev/null; then
        export DEBIAN_FRONTEND=noninteractive
        timeout 300 apt-get install -y -qq nginx-light tcpdump tcpreplay >/dev/null || die "apt-get install failed"
        break
    fi
done
"$PY" -c 'import websockets.asyncio.client' 2>/dev/null \
    || timeout 300 "$PY" -m pip install -q websockets 2>/dev/null \
    || timeout 300 "$PY" -m pip install -q --break-system-packages websockets || die "pip install websockets"

(cd "$ROOT" && cargo build -q --release --example benchgen) || die "cargo build --release --example benchgen failed"
GEN=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/benchgen
if [ -z "${WSTAP:-}" ]; then
    # The profile-guided build the package ships (PGO=0: the plain one).
    # shellcheck source=lib.sh
    WSTAP=$(cd "$ROOT" && source bench/lib.sh && wstap_bin) || die "building wstap failed"
fi
REPLAY_MB=${REPLAY_MB:-200}
[ -x "$WSTAP" ] || die "no wstap at $WSTAP"
mkdir -p "$OUT"

# shellcheck source=../tests/lab/lab.sh
source "$ROOT/tests/lab/lab.sh"
lab_init
R=$LAB_RUN
# wstap writes -w files as the unprivileged user it parses packets as
# (docs/live.md, "Privileges").
chmod 1777 "$R"

# ------------------------------------------------------------ 1. the traffic

echo "recording real traffic through nginx ..." >&2
lab_backend "$BACK" --mode echo >/dev/null || die "backend"
lab_nginx bench "$ROOT/tests/lab/nginx/healthy.conf" "$FRONT" LISTEN=127.0.0.1:$FRONT UPSTREAM=127.0.0.1:$BACK \
    || die "nginx"
lab_tcpdump_start "$R/src.pcap" lo "$FILTER" || die "tcpdump"
timeout 60 "$PY" "$ROOT/tests/live/load.py" "ws://127.0.0.1:$FRONT/ws" --conns 20 --messages 100 --size 32 \
    >"$R/load.json" || die "load.py: $(cat "$R/load.json")"
lab_tcpdump_stop
lab_stop_all   # nginx and the backend are not needed for the replay
SRC_PKTS=$(tcpdump -r "$R/src.pcap" -nn 2>/dev/null | wc -l)
echo "  $SRC_PKTS packets ($(cat "$R/load.json")); $REPLAY_MB MB of copies ..." >&2
"$GEN" "$R/src.pcap" "$R/copies.pcap" "$REPLAY_MB" >&2 || die "benchgen"
tcprewrite --infile="$R/copies.pcap" --outfile="$R/replay.pcap" \
    --enet-dmac=02:00:00:00:00:01 --enet-smac=02:00:00:00:00:02 || die "tcprewrite"
rm -f "$R/copies.pcap"
REPLAY_PKTS=$(tcpdump -r "$R/replay.pcap" -nn 2>/dev/null | wc -l)
echo "  replay file: $REPLAY_PKTS packets" >&2

# ------------------------------------------------------------ 2. the steps

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
TCK=$(getconf CLK_TCK)

stop_int() { # PID : SIGINT, bounded wait
    local pid=$1 i
    kill -INT "$pid" 2>/dev/null
    for ((i = 0; i < 150; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { kill -KILL "$pid"; echo "  pid $pid killed" >&2; }
    wait "$pid" 2>/dev/null
}

printf '| offered pps | sent | wstap --threads | wstap analysed | wstap kernel drops | wstap queue drops | wstap CPU µs/pkt | tcpdump captured | tcpdump kernel drops | tcpdump CPU µs/pkt | CPU ratio wstap/tcpdump | handshakes (paired) / sessions / findings |\n' >"$R/table.md"
printf '|---|---|---|---|---|---|---|---|---|---|---|---|\n' >>"$R/table.md"

for pps in $STEPS; do
    rm -f "$R"/w*.pcap "$R"/t.pcap
    WPS=()
    for n in $THREADS; do
        t=${n%%:*} f=${n#*:}
        if [ "$f" = "$n" ]; then
            "$WSTAP" -i lo --threads "$t" --json -w "$R/w$n.pcap" "$FILTER" >"$R/w$n.out" 2>"$R/w$n.err" &
        else
            "$WSTAP" -i lo --threads "$t" --fanout "$f" --json "$FILTER" >"$R/w$n.out" 2>"$R/w$n.err" &
        fi
        WPS+=($!)
    done
    # shellcheck disable=SC2086
    tcpdump -i lo $TCPDUMP_ARGS -w "$R/t.pcap" "$FILTER" 2>"$R/t.err" &
    TP=$!
    LAB_PIDS+=("${WPS[@]}" "$TP")
    for ((i = 0; i < 100; i++)); do
        ready=1
        for n in $THREADS; do grep -q "listening on" "$R/w$n.err" || ready=0; done
        [ $ready = 1 ] && grep -q "listening on" "$R/t.err" && break
        sleep 0.1
    done
    sleep 0.5
    if [ "$pps" = max ]; then
        rate=(--topspeed)
    else
        rate=(--pps="$pps")
        [ $((pps * SECS)) -le "$REPLAY_PKTS" ] || echo "  note: $REPLAY_PKTS packets last $((REPLAY_PKTS / pps)) s at $pps/s (REPLAY_MB)" >&2
    fi
    timeout $((SECS + 30)) tcpreplay -i lo "${rate[@]}" --duration="$SECS" -q \
        "$R/replay.pcap" >"$R/replay.out" 2>&1
    sleep 1
    WCPU=()
    for wp in "${WPS[@]}"; do WCPU+=("$(cpu_ticks "$wp")"); done
    tcpu=$(cpu_ticks "$TP")
    for wp in "${WPS[@]}"; do stop_int "$wp"; done
    stop_int "$TP"
    sent=$(grep -oE 'Actual: [0-9]+ packets' "$R/replay.out" | grep -oE '[0-9]+' | head -1)
    rated=$(grep -oE 'Rated: [0-9.]+ Bps, [0-9.]+ Mbps, [0-9.]+ pps' "$R/replay.out" | grep -oE '[0-9.]+ pps' | head -1)
    t_pk=$(grep -oE '^[0-9]+ packets captured' "$R/t.err" | grep -oE '^[0-9]+')
    t_kd=$(grep -oE '^[0-9]+ packets dropped by kernel' "$R/t.err" | grep -oE '^[0-9]+')
    t_us=$(awk -v c="$tcpu" -v t="$TCK" -v n="$t_pk" 'BEGIN { printf "%.2f", n ? c / t * 1e6 / n : 0 }')
    i=0
    for n in $THREADS; do
        # The diagnosis too: the same traffic gives the same counts with
        # any number of threads or rings (as long as nothing is dropped).
        read -r w_pk w_kd w_qd w_diag < <("$PY" -c '
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
s = recs[-1]; c = s.get("capture") or {}
hs = [r for r in recs if r["type"] == "handshake"]
paired = sum(1 for r in hs if r.get("paired_by"))
sess = sum(1 for r in recs if r["type"] == "session")
fi = sum(1 for r in recs if r["type"] == "finding")
print(s["packets"], c.get("dropped_kernel"), c.get("dropped_queue"), f"{len(hs)}({paired})/{sess}/{fi}")' "$R/w$n.out")
        w_us=$(awk -v c="${WCPU[$i]}" -v t="$TCK" -v n="$w_pk" 'BEGIN { printf "%.2f", n ? c / t * 1e6 / n : 0 }')
        ratio=$(awk -v a="$w_us" -v b="$t_us" 'BEGIN { printf "%.1fx", (b > 0 ? a / b : 0) }')
        label=$n
        [ "${n#*:}" != "$n" ] && label="${n%%:*}, --fanout ${n#*:} (no -w)"
        printf '| %s | %s (%s) | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
            "$pps" "$sent" "$rated" "$label" "$w_pk" "$w_kd" "$w_qd" "$w_us" "$t_pk" "$t_kd" "$t_us" "$ratio" "$w_diag" | tee -a "$R/table.md" >&2
        i=$((i + 1))
    done
    LAB_PIDS=()
done

{
    echo "# bench/live.sh $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo
    echo "host: $(nproc) CPU ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), kernel $(uname -r)"
    echo "wstap: $("$WSTAP" --version), $(tcpdump --version 2>&1 | head -1), $(tcpdump --version 2>&1 | grep -i libpcap | head -1)"
    echo "traffic: $SRC_PKTS packets of real WebSocket sessions (20 connections x 100 messages of 32 bytes through nginx, both hops), multiplied by examples/benchgen into $REPLAY_PKTS packets ($REPLAY_MB MB, each copy its own addresses and keys, ~3000 connections open at once); $SECS s per step"
    echo "wstap:   $WSTAP -i lo --threads N --json -w FILE '$FILTER' > out.jsonl (N in: $THREADS, all at once; N:F is --threads N --fanout F without -w)"
    echo "tcpdump: tcpdump -i lo $TCPDUMP_ARGS -w FILE '$FILTER'"
    echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    cat "$R/table.md"
} | tee "$OUT/live-$(date -u +%Y%m%d-%H%M%S).md"
