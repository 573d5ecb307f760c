#!/usr/bin/env bash
# Live capture test (issue 4), real processes only: a real nginx and the lab's
# real WebSocket backend on loopback, `wstap -i lo` capturing both hops while
# real clients go through a healthy and a broken location, wstap stopped by a
# signal; then the records, the summary and the written pcap are checked.
#
#   bash tests/live/run.sh            (as root; WSTAP=path/to/wstap to skip the build)
#
# Installs what is missing (nginx-light, tcpdump, python websockets). Every
# process started here is recorded and stopped by pid (trap EXIT); every wait
# is bounded; the whole run stays under 2 minutes.

set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
T_START=$SECONDS
FRONT=${LIVE_FRONT_PORT:-18481}
BACK=${LIVE_BACK_PORT:-13481}
FILTER="tcp port $FRONT or tcp port $BACK"
PY=${LAB_PY:-python3}
export PYTHONDONTWRITEBYTECODE=1   # no __pycache__ in the tree

say() { printf '\n== %s\n' "$*"; }
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
ok() { printf '  ok: %s\n' "$*"; }

[ "$(id -u)" = 0 ] || die "run as root: live capture and -Z need it"

# ------------------------------------------------------------ prerequisites

missing=()
command -v nginx >/dev/null || missing+=(nginx-light)
command -v tcpdump >/dev/null || missing+=(tcpdump)
command -v ss >/dev/null || missing+=(iproute2)
command -v ps >/dev/null || missing+=(procps)
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    timeout 300 apt-get update -qq && timeout 300 apt-get install -y -qq "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
fi
if ! "$PY" -c 'import websockets.asyncio.client' 2>/dev/null; then
    say "installing python websockets"
    timeout 300 "$PY" -m pip install -q websockets 2>/dev/null \
        || timeout 300 "$PY" -m pip install -q --break-system-packages websockets \
        || die "pip install websockets failed"
fi

if [ -z "${WSTAP:-}" ]; then
    say "building wstap"
    (cd "$ROOT" && cargo build -q) || die "cargo build failed"
    WSTAP=${CARGO_TARGET_DIR:-$ROOT/target}/debug/wstap
fi
[ -x "$WSTAP" ] || die "no wstap binary at $WSTAP"
T_START=$SECONDS   # the 2-minute budget is for the test, not the build

# shellcheck source=../lab/lab.sh
source "$ROOT/tests/lab/lab.sh"
lab_init
R=$LAB_RUN
# wstap writes -w files as the unprivileged user it parses packets as
# (docs/live.md, "Privileges").
chmod 1777 "$R"
# The -Z and permission tests run wstap as nobody: a copy it can execute.
cp "$WSTAP" "$R/wstap" && chmod 755 "$R/wstap" && W=$R/wstap

# ------------------------------------------------------------ helpers

WPID=
# wstap_bg NAME ARGS... : wstap in the background, stdout to $R/NAME.out,
# stderr to $R/NAME.err; waits (bounded) for its "listening on" line.
wstap_bg() {
    local name=$1 i; shift
    "$W" "$@" >"$R/$name.out" 2>"$R/$name.err" &
    WPID=$!
    LAB_PIDS+=("$WPID")
    for ((i = 0; i < 100; i++)); do
        grep -q "listening on" "$R/$name.err" 2>/dev/null && return 0
        kill -0 "$WPID" 2>/dev/null || break
        sleep 0.1
    done
    die "wstap $* did not start: $(cat "$R/$name.err")"
}

# wstap_wait PID TIMEOUT_S : wait for wstap to exit on its own; its status in WRC.
WRC=
wstap_wait() {
    local pid=$1 t=$2 i
    for ((i = 0; i < t * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && die "wstap (pid $pid) still running after ${t}s"
    wait "$pid"
    WRC=$?
    local p pids=()
    for p in "${LAB_PIDS[@]}"; do [ "$p" = "$pid" ] || pids+=("$p"); done
    LAB_PIDS=("${pids[@]}")
}

# wstap_int PID [SIGNAL] : SIGINT (or SIGNAL) by pid, bounded wait, exit status must be 0.
wstap_int() {
    local sig=${2:-INT}
    kill -s "$sig" "$1" || die "kill -$sig $1"
    wstap_wait "$1" 10
    [ "$WRC" = 0 ] || die "wstap exited $WRC after SIG$sig"
}

# wait_for TIMEOUT_S CMD... : poll until CMD succeeds.
wait_for() {
    local t=$1 i; shift
    for ((i = 0; i < t * 10; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}

count_lines() { local n; n=$(grep -c "\"type\":\"$2\"" "$1" 2>/dev/null); echo "${n:-0}"; }
at_least() { [ "$(count_lines "$1" "$2")" -ge "$3" ]; }

client() { lab_client "$R/clients.jsonl" 20 "$@" || die "client $* failed: $(tail -3 "$R/clients.jsonl.stderr")"; }

# ------------------------------------------------------------ the lab

say "starting the backend (:$BACK) and nginx (:$FRONT)"
lab_wait_free "$FRONT" 5 && lab_wait_free "$BACK" 5 || die "ports $FRONT/$BACK are busy"
lab_backend "$BACK" --mode echo || die "backend did not start"
lab_nginx live "$HERE/nginx-live.conf" "$FRONT" LISTEN=127.0.0.1:$FRONT UPSTREAM=127.0.0.1:$BACK \
    || die "nginx did not start"
ok "nginx $(nginx -v 2>&1 | sed 's/.*\///'), websockets $("$PY" -c 'import websockets; print(websockets.__version__)')"

# ------------------------------------------------------------ 1. the main run

say "1. wstap -i lo --json -w live.pcap '$FILTER'; healthy and broken clients; SIGINT"
say "   (beside it, on the same traffic: wstap -i lo --threads 2, flow-sharded workers;"
say "    and wstap -i lo --fanout 2 --threads 2, two kernel rings merged in time order)"
wstap_bg live -i lo --json -w "$R/live.pcap" "$FILTER"
LIVE_PID=$WPID
wstap_bg live2 -i lo --threads 2 --json "$FILTER"
LIVE2_PID=$WPID
wstap_bg fanout -i lo --fanout 2 --threads 2 --json "$FILTER"
FANOUT_PID=$WPID
client ws "ws://127.0.0.1:$FRONT/ws" --count 3 --messages 3 --close --group healthy
"$PY" -u "$LAB_DIR/client.py" ws "ws://127.0.0.1:$FRONT/broken" --count 2 --group broken \
    >>"$R/clients.jsonl" 2>>"$R/clients.jsonl.stderr"
# Records stream while the capture runs: all five handshakes and the three
# sessions are out before the signal.
wait_for 10 at_least "$R/live.out" handshake 5 || die "handshake records not streamed: $(cat "$R/live.out")"
wait_for 10 at_least "$R/live.out" session 3 || die "session records not streamed: $(cat "$R/live.out")"
[ "$(count_lines "$R/live.out" summary)" = 0 ] || die "summary before the stop"
ok "5 handshake and 3 session records streamed while wstap was running"
wait_for 10 at_least "$R/live2.out" handshake 5 || die "--threads 2: handshakes not streamed: $(cat "$R/live2.out")"
wait_for 10 at_least "$R/live2.out" session 3 || die "--threads 2: sessions not streamed: $(cat "$R/live2.out")"
[ "$(count_lines "$R/live2.out" summary)" = 0 ] || die "--threads 2: summary before the stop"
ok "--threads 2: the same 5 handshake and 3 session records streamed while it was running"
wait_for 10 at_least "$R/fanout.out" session 3 || die "--fanout 2: sessions not streamed: $(cat "$R/fanout.out")"
sleep 0.5
wstap_int "$LIVE_PID"
wstap_int "$LIVE2_PID"
wstap_int "$FANOUT_PID"
ok "SIGINT: exit 0 (all three)"
"$PY" "$HERE/check.py" live "$R/live.out" --healthy-path /ws --healthy 3 --broken-path /broken --broken 2 \
    || die "live records"
[ "$(grep -c . "$R/live.err")" = 1 ] || die "stderr has more than the listening line: $(cat "$R/live.err")"
say "1a. --threads 2 on the same traffic: the same diagnosis and the same records as one thread"
"$PY" "$HERE/check.py" live "$R/live2.out" --healthy-path /ws --healthy 3 --broken-path /broken --broken 2 \
    || die "--threads 2: live records"
"$PY" "$HERE/check.py" identical "$R/live.out" "$R/live2.out" || die "--threads 2 differs from one thread"
[ "$(grep -c . "$R/live2.err")" = 1 ] || die "--threads 2: stderr has more than the listening line: $(cat "$R/live2.err")"

say "1b. --fanout 2: the same diagnosis from two kernel rings, every packet taken from one of them"
grep -q "2 rings (PACKET_FANOUT by flow)" "$R/fanout.err" || die "--fanout 2: listening line: $(cat "$R/fanout.err")"
"$PY" "$HERE/check.py" live "$R/fanout.out" --healthy-path /ws --healthy 3 --broken-path /broken --broken 2 \
    || die "--fanout 2: live records"
"$PY" "$HERE/check.py" same "$R/live.out" "$R/fanout.out" || die "--fanout 2 differs from one ring"
"$PY" "$HERE/check.py" rings "$R/fanout.out" --rings 2 || die "--fanout 2: ring counters"
[ "$(grep -c . "$R/fanout.err")" = 1 ] || die "--fanout 2: stderr has more than the listening line: $(cat "$R/fanout.err")"

say "1c. the written pcap: valid, and -r gives the same diagnosis"
tcpdump -r "$R/live.pcap" -nn >"$R/tcpdump-r.txt" 2>"$R/tcpdump-r.err" || die "tcpdump -r: $(cat "$R/tcpdump-r.err")"
ok "tcpdump reads it: $(wc -l <"$R/tcpdump-r.txt") packets"
"$W" -r "$R/live.pcap" --json >"$R/readback.out" 2>"$R/readback.err" || die "wstap -r: $(cat "$R/readback.err")"
"$PY" "$HERE/check.py" same "$R/live.out" "$R/readback.out" || die "-r differs from live"

say "1d. -i any (link type LINUX_SLL2), text output: both hops, one line per handshake and session"
wstap_bg any -i any -n -l "$FILTER"
ANY_PID=$WPID
grep -q "link-type LINUX_SLL2" "$R/any.err" || die "-i any: $(cat "$R/any.err")"
client ws "ws://127.0.0.1:$FRONT/ws" --count 2 --messages 2 --close --group any
wait_for 10 eval '[ "$(grep -c " session " "$R/any.out")" -ge 2 ]' || die "-i any: no session lines: $(cat "$R/any.out")"
wstap_int "$ANY_PID"
hs=$(grep -cE ' handshake #[0-9]+ GET /ws upgraded \| client .* 101 .* \| upstream .* 101' "$R/any.out")
[ "$hs" = 2 ] || die "-i any: $hs paired upgraded handshake lines: $(cat "$R/any.out")"
pk=$(grep -oE '^[0-9]+ packets \(' "$R/any.out" | grep -oE '^[0-9]+')
grep -q "capture: $pk received, 0 dropped by kernel, 0 dropped by interface, 0 dropped before analysis" "$R/any.out" \
    || die "-i any: summary: $(tail -4 "$R/any.out")"
ok "2 handshake lines, both hops 101; $(grep -o "capture: .*" "$R/any.out") (loopback packets counted once)"

say "1e. an idle session nearing a stated timeout is warned about while it is still open"
wstap_bg idle -i lo --json --timeout 3 "$FILTER"
IDLE_PID=$WPID
wstap_bg idle2 -i lo --threads 2 --json --timeout 3 "$FILTER"
IDLE2_PID=$WPID
client ws "ws://127.0.0.1:$FRONT/ws" --count 1 --messages 1 --idle 4.5 --close --group idle
wait_for 10 at_least "$R/idle.out" session 1 || die "idle: no session record: $(cat "$R/idle.out")"
wait_for 10 at_least "$R/idle2.out" session 1 || die "idle --threads 2: no session record: $(cat "$R/idle2.out")"
wstap_int "$IDLE_PID"
wstap_int "$IDLE2_PID"
for out in idle idle2; do
"$PY" - "$R/$out.out" <<'PY' || die "idle warning ($out)"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
order = [r["type"] + ":" + r.get("kind", "") for r in recs]
warn = [i for i, r in enumerate(recs) if r.get("kind") == "idle-timeout-imminent"]
sess = [i for i, r in enumerate(recs) if r["type"] == "session"]
assert len(warn) == 1, f"one warning expected: {order}"
w = recs[warn[0]]
assert w["severity"] == "warning" and w["detail"]["boundary_s"] == 3 and w["detail"]["boundary_source"] == "configured", w
assert 2.4 <= w["detail"]["idle_s"] <= 4.5, w
assert warn[0] < sess[0], f"the warning came after the session ended: {order}"
print(f"  ok: {sys.argv[1].rsplit('/', 1)[-1]}: idle-timeout-imminent after {w['detail']['idle_s']} s idle, before the session's end (closed cleanly at 4.5 s)")
PY
done

# ------------------------------------------------------------ 2. -c and --duration

say "2. -c 20 stops on its own (with --immediate-mode, tcpdump's per-packet delivery)"
wstap_bg count -i lo -c 20 --immediate-mode --json "$FILTER"
COUNT_PID=$WPID
client ws "ws://127.0.0.1:$FRONT/ws" --messages 10 --close --group count
wstap_wait "$COUNT_PID" 10
[ "$WRC" = 0 ] || die "-c: exit $WRC: $(cat "$R/count.err")"
"$PY" "$HERE/check.py" summary "$R/count.out" --packets 20 || die "-c 20"

say "2a. -c 20 --fanout 2: the count is over both rings"
wstap_bg count2 -i lo -c 20 --fanout 2 --json "$FILTER"
COUNT2_PID=$WPID
client ws "ws://127.0.0.1:$FRONT/ws" --messages 10 --close --group count2
wstap_wait "$COUNT2_PID" 10
[ "$WRC" = 0 ] || die "-c --fanout: exit $WRC: $(cat "$R/count2.err")"
"$PY" "$HERE/check.py" summary "$R/count2.out" --packets 20 || die "-c 20 --fanout 2"
"$PY" - "$R/count2.out" <<'PY' || die "-c 20 --fanout 2: ring counts"
import json, sys
s = [json.loads(l) for l in open(sys.argv[1])][-1]
rings = s["capture"]["rings"]
assert len(rings) == 2 and sum(rings) == 20, rings
print(f"  ok: rings took {rings[0]} + {rings[1]} = 20 packets")
PY

say "3. --duration 1.5 stops on its own, on a quiet link"
t0=$SECONDS
wstap_bg duration -i lo --duration 1.5 --json "$FILTER"
wstap_wait "$WPID" 8
[ "$WRC" = 0 ] || die "--duration: exit $WRC: $(cat "$R/duration.err")"
[ $((SECONDS - t0)) -ge 1 ] || die "--duration 1.5 ended too early"
"$PY" "$HERE/check.py" summary "$R/duration.out" --packets 0 || die "--duration"

# ------------------------------------------------------------ 3. errors and -D

say "4. -D, bad interface, bad filter, no permission"
"$W" -D >"$R/D.out" || die "-D exit $?"
grep -qE '^[0-9]+\.lo( |$)' "$R/D.out" || die "-D does not list lo: $(cat "$R/D.out")"
ok "-D lists lo: $(grep -E '^[0-9]+\.lo' "$R/D.out")"
one_line_error() { # EXPECTED_SUBSTRING CMD...
    local want=$1 rc; shift
    "$@" >"$R/e.out" 2>"$R/e.err"
    rc=$?
    [ "$rc" = 2 ] || die "$* exited $rc, expected 2"
    [ ! -s "$R/e.out" ] || die "$* wrote to stdout: $(cat "$R/e.out")"
    [ "$(wc -l <"$R/e.err")" = 1 ] || die "$*: expected one line on stderr: $(cat "$R/e.err")"
    grep -qF "$want" "$R/e.err" || die "$*: expected '$want' in: $(cat "$R/e.err")"
    ok "exit 2, one line: $(cat "$R/e.err")"
}
one_line_error "wstap: eth9: No such device exists" "$W" -i eth9
one_line_error "wstap: bad filter expression" "$W" -i lo 'tcp port'
one_line_error "wstap: -Z no-such-user-wstap: no such user" "$W" -i lo -Z no-such-user-wstap
if command -v setpriv >/dev/null; then
    one_line_error "wstap: lo: You don't have permission to capture on that device (run as root, or grant the capability: sudo setcap cap_net_raw,cap_net_admin=eip" \
        setpriv --reuid=nobody --regid=nogroup --clear-groups "$W" -i lo
else
    echo "  skip: no setpriv for the permission test"
fi

# ------------------------------------------------------------ 4. -Z

say "5. -Z nobody: root dropped once the device is open; the -w file written as nobody"
wstap_bg z -i lo -Z nobody --duration 3 --json -w "$R/z.pcap" "$FILTER"
Z_PID=$WPID
user=$(ps -o user= -p "$Z_PID" | tr -d ' ')
[ "$user" = nobody ] || die "-Z nobody: process runs as '$user'"
client ws "ws://127.0.0.1:$FRONT/ws" --messages 2 --close --group z
wstap_wait "$Z_PID" 8
[ "$WRC" = 0 ] || die "-Z: exit $WRC: $(cat "$R/z.err")"
[ "$(stat -c %U "$R/z.pcap")" = nobody ] || die "z.pcap owned by $(stat -c %U "$R/z.pcap")"
tcpdump -r "$R/z.pcap" -nn >/dev/null 2>&1 || die "z.pcap unreadable"
"$PY" "$HERE/check.py" summary "$R/z.out" --no-drops || die "-Z run"
ok "ran as nobody; z.pcap owned by nobody and valid"

# ------------------------------------------------------------ 5. rotation

say "6. -w rot.pcap -C 1 -W 3: a ring of three files"
wstap_bg rot -i lo --json -w "$R/rot.pcap" -C 1 -W 3 "$FILTER"
ROT_PID=$WPID
timeout 30 "$PY" "$HERE/load.py" "ws://127.0.0.1:$FRONT/ws" --messages 40 --size 100000 >"$R/rot.load" \
    || die "load.py: $(cat "$R/rot.load")"
sleep 0.5
wstap_int "$ROT_PID" TERM
ok "SIGTERM: exit 0"
files=$(cd "$R" && ls rot.pcap* | sort | tr '\n' ' ')
[ "$files" = "rot.pcap0 rot.pcap1 rot.pcap2 " ] || die "ring files: $files"
for f in rot.pcap0 rot.pcap1 rot.pcap2; do
    tcpdump -r "$R/$f" -nn >/dev/null 2>&1 || die "$f unreadable"
    sz=$(stat -c %s "$R/$f")
    [ "$sz" -le 1100000 ] || die "$f is $sz bytes, over -C 1 by more than a packet"
done
ok "files: $files(each valid, each <= 1 MB + one packet)"
"$PY" "$HERE/check.py" summary "$R/rot.out" --no-drops --all-analysed || die "rotation run"

say "7. -w 'g-%s.pcap' -G 1 -W 2: stops after two files, as tcpdump"
wstap_bg g -i lo --json -w "$R/g-%s.pcap" -G 1 -W 2 "$FILTER"
G_PID=$WPID
client ws "ws://127.0.0.1:$FRONT/ws" --messages 35 --msg-gap 0.1 --close --group g
wstap_wait "$G_PID" 10
[ "$WRC" = 0 ] || die "-G: exit $WRC: $(cat "$R/g.err")"
n=$(ls "$R"/g-*.pcap | wc -l)
[ "$n" = 2 ] || die "-G 1 -W 2: $n files: $(ls "$R"/g-*.pcap)"
for f in "$R"/g-*.pcap; do tcpdump -r "$f" -nn >/dev/null 2>&1 || die "$f unreadable"; done
"$PY" "$HERE/check.py" summary "$R/g.out" || die "-G run"
ok "two files, strftime names: $(cd "$R" && ls g-*.pcap | tr '\n' ' ')"

# ------------------------------------------------------------ 6. slow consumer

say "8. a stalled reader (pipe not read for 4 s, -v output) does not make the kernel drop"
mkfifo "$R/slow.fifo"
( exec 3<"$R/slow.fifo"; sleep 4; : >"$R/reader-awake"; cat <&3 >"$R/slow.out" ) &
READER=$!
"$W" -i lo -v --json "$FILTER" >"$R/slow.fifo" 2>"$R/slow.err" &
SLOW_PID=$!
LAB_PIDS+=("$SLOW_PID" "$READER")
wait_for 10 grep -q "listening on" "$R/slow.err" || die "wstap -v did not start: $(cat "$R/slow.err")"
client ws "ws://127.0.0.1:$FRONT/ws" --count 4 --messages 300 --msg-gap 0.002 --close --group slow
[ ! -e "$R/reader-awake" ] || die "the traffic outlasted the stall; the test proves nothing"
wait_for 15 at_least "$R/slow.out" session 4 || die "the stalled output never caught up: $(tail -c 300 "$R/slow.out")"
wstap_int "$SLOW_PID"
wait_for 5 eval '! kill -0 $READER 2>/dev/null' || die "reader still running"
wait "$READER" 2>/dev/null
lines=$(wc -l <"$R/slow.out")
bytes=$(wc -c <"$R/slow.out")
[ "$bytes" -gt 65536 ] || die "only $bytes bytes of -v output: the pipe never filled"
"$PY" "$HERE/check.py" summary "$R/slow.out" --no-drops --all-analysed || die "slow consumer"
ok "$lines lines ($bytes bytes) through a pipe that stalled 4 s: nothing dropped"

say "9. -w /dev/full: the write error ends the capture, after the summary, exit 2"
"$W" -i lo --json -w /dev/full "$FILTER" >"$R/full.out" 2>"$R/full.err" &
FULL_PID=$!
LAB_PIDS+=("$FULL_PID")
client ws "ws://127.0.0.1:$FRONT/ws" --messages 2 --close --group full
wstap_wait "$FULL_PID" 10
[ "$WRC" = 2 ] || die "-w /dev/full: exit $WRC: $(cat "$R/full.err")"
tail -1 "$R/full.err" | grep -qxF "wstap: /dev/full: No space left on device" || die "-w /dev/full: $(cat "$R/full.err")"
[ "$(count_lines "$R/full.out" summary)" = 1 ] || die "-w /dev/full: no summary"
ok "$(tail -1 "$R/full.err"); the summary was written first"

say "10. output stuck (pipe never read): the first SIGINT waits for it, a second one exits at once"
mkfifo "$R/stuck.fifo"
sleep 60 <"$R/stuck.fifo" &   # holds the read end open, never reads
HOLDER=$!
LAB_PIDS+=("$HOLDER")
"$W" -i lo -v --json "$FILTER" >"$R/stuck.fifo" 2>"$R/stuck.err" &
STUCK_PID=$!
LAB_PIDS+=("$STUCK_PID")
wait_for 10 grep -q "listening on" "$R/stuck.err" || die "wstap did not start: $(cat "$R/stuck.err")"
client ws "ws://127.0.0.1:$FRONT/ws" --count 2 --messages 300 --msg-gap 0 --close --group stuck
kill -INT "$STUCK_PID"
sleep 1
kill -0 "$STUCK_PID" 2>/dev/null || die "wstap exited although its output could not be written"
kill -INT "$STUCK_PID"
wstap_wait "$STUCK_PID" 3
[ "$WRC" = 130 ] || die "second SIGINT: exit $WRC, expected 130"
ok "first SIGINT: still flushing to the stuck pipe; second SIGINT: exit 130 at once"
kill "$HOLDER" 2>/dev/null; wait "$HOLDER" 2>/dev/null

# ------------------------------------------------------------ cleanup

say "cleanup"
ALL=("${LAB_PIDS[@]}")
lab_stop_all
for p in "${ALL[@]}"; do
    kill -0 "$p" 2>/dev/null && die "pid $p still running after cleanup"
done
ss -Hltn "sport = :$FRONT or sport = :$BACK" | grep -q . && die "something still listens on $FRONT/$BACK"
ok "every process started here is gone; ports free"
elapsed=$((SECONDS - T_START))
[ "$elapsed" -lt 120 ] || die "took ${elapsed}s (budget 120 s)"
printf '\nPASS tests/live/run.sh (%ss)\n' "$elapsed"
