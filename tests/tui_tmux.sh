#!/usr/bin/env bash
# End-to-end test of `wstap --tui` in a real terminal: tmux runs the
# dashboard on bundled captures; the test sends keys, captures the pane and
# checks what is on screen, that resizing works, that a replay unfolds and
# can be paused, that the terminal is back in cooked mode after q and after
# SIGTERM, and that wstap exits when its terminal goes away.
#
# Uses its own tmux server (-L wstap-test-PID) and kills only its own
# session. Every wait has a deadline; the whole run takes about 25 s and is
# cut at 90 s. Fails with "tui_tmux: FAIL: ..." and the pane's content.
#
#   WSTAP=target/release/wstap bash tests/tui_tmux.sh   (default: cargo build)
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
  echo "tui_tmux: FAIL: $*" >&2
  if [ -n "${SOCK:-}" ] && T has-session -t "$SESSION" 2>/dev/null; then
    echo "--- pane:" >&2
    T capture-pane -p -t "$SESSION" >&2 || true
    echo "---" >&2
  fi
  exit 1
}

command -v tmux >/dev/null || fail "tmux is not installed"
if [ -z "${WSTAP:-}" ]; then
  cargo build --quiet || fail "cargo build failed"
  WSTAP="${CARGO_TARGET_DIR:-target}/debug/wstap"
fi
[ -x "$WSTAP" ] || fail "no wstap binary at $WSTAP"
WSTAP=$(cd "$(dirname "$WSTAP")" && pwd)/$(basename "$WSTAP")

SOCK="wstap-test-$$"
SESSION="tui"
TMP=$(mktemp -d)
# wstap writes -w files as the unprivileged user it parses packets as.
chmod 1777 "$TMP"
T() { tmux -L "$SOCK" -f /dev/null "$@"; }
HTTPD=""
cleanup() {
  [ -z "$HTTPD" ] || kill "$HTTPD" 2>/dev/null || true
  T kill-session -t "$SESSION" 2>/dev/null || true
  # The server exits with its last session; remove its socket if it stays.
  local sock="${TMUX_TMPDIR:-/tmp}/tmux-$(id -u)/$SOCK" i
  for i in 1 2 3 4 5 6 7 8 9 10; do
    T list-sessions >/dev/null 2>&1 || break
    sleep 0.1
  done
  if [ -S "$sock" ] && ! T list-sessions >/dev/null 2>&1; then rm -f "$sock"; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

# A watchdog: the whole test is bounded even if tmux itself hangs.
(sleep 90 && echo "tui_tmux: FAIL: took longer than 90 s" >&2 && kill -TERM $$) 2>/dev/null &
WATCHDOG=$!
stop_watchdog() {
  pkill -P "$WATCHDOG" 2>/dev/null || true
  kill "$WATCHDOG" 2>/dev/null || true
}
trap 'stop_watchdog; cleanup' EXIT
trap 'exit 1' TERM INT

# The pane runs wstap, then records its exit status and the terminal mode.
cat >"$TMP/run.sh" <<EOF
echo \$\$ >"$TMP/shpid"
"$WSTAP" "\$@"
echo \$? >"$TMP/status"
stty -a >"$TMP/stty" 2>&1
echo WSTAP-EXITED
sleep 120
EOF

# start W H ARGS...: a fresh session running wstap ARGS in a W x H pane.
start() {
  local w=$1 h=$2
  shift 2
  T kill-session -t "$SESSION" 2>/dev/null || true
  rm -f "$TMP/status" "$TMP/stty"
  T new-session -d -s "$SESSION" -x "$w" -y "$h" "sh $TMP/run.sh $*" || fail "tmux new-session failed"
}

pane() { T capture-pane -p -t "$SESSION"; }

# wait_for TEXT [SECONDS]: until the pane shows TEXT.
wait_for() {
  local deadline=$((SECONDS + ${2:-10}))
  until pane | grep -qF -- "$1"; do
    [ "$SECONDS" -lt "$deadline" ] || fail "timed out waiting for '$1'"
    sleep 0.1
  done
}

# wait_gone TEXT [SECONDS]: until the pane no longer shows TEXT.
wait_gone() {
  local deadline=$((SECONDS + ${2:-10}))
  while pane | grep -qF -- "$1"; do
    [ "$SECONDS" -lt "$deadline" ] || fail "'$1' still on screen"
    sleep 0.1
  done
}

keys() { T send-keys -t "$SESSION" "$@"; }

# wait_colour N [SECONDS]: until an idle time ("12.3s") is drawn in colour
# N of the 256-colour palette (tmux reports it as ESC[38;5;Nm).
wait_colour() {
  local deadline=$((SECONDS + ${2:-10}))
  until T capture-pane -p -e -t "$SESSION" | grep -qE $'\e'"\\[38;5;$1m[0-9.]+s"; do
    [ "$SECONDS" -lt "$deadline" ] || fail "timed out waiting for an idle time in colour $1"
    sleep 0.1
  done
}

# expect_exit STATUS: wstap ended with STATUS and left the terminal sane.
expect_exit() {
  wait_for WSTAP-EXITED 10
  local status
  status=$(cat "$TMP/status")
  [ "$status" = "$1" ] || fail "exit status $status, expected $1"
  grep -qE '(^| )icanon( |$)' "$TMP/stty" || fail "terminal left in raw mode (no icanon): $(cat "$TMP/stty")"
  grep -qE '(^| )echo( |$)' "$TMP/stty" || fail "terminal left without echo"
  pane | grep -qF "1 Overview" && fail "the dashboard is still on screen: alternate screen not left"
  return 0
}

echo "tui_tmux: errors print before the terminal is taken over"
out=$("$WSTAP" -r captures/no-such-file.pcap --tui 2>&1 </dev/null) && fail "a missing file should fail"
echo "$out" | grep -qF "no-such-file.pcap" || fail "unexpected error: $out"

echo "tui_tmux: browse an analysed capture at 80x24"
start 80 24 -r captures/nginx-wrong-location.pcap --tui
wait_for "analysed"
wait_for "Handshakes"
wait_for "upgrade-stripped"
keys 2
wait_for "Enter for detail"
wait_for "upgrade-stripped ×1"
keys Enter
wait_for "What the client saw"
wait_for "Client hop"
wait_for "Upstream hop"
wait_for "Fix"
keys Escape
wait_for "Enter for detail"
keys 3
wait_for "row 1/1"
wait_for "sort idle"
keys s
wait_for "sort age"
keys 4
wait_for "p50"
wait_for "client handshake"
keys '?'
wait_for "Keys (Esc closes)"
keys Escape
wait_gone "Keys (Esc closes)"
keys Tab
wait_for "Traffic"
keys / w s Enter
wait_for "filter: ws"
keys Escape
wait_gone "filter: ws"

echo "tui_tmux: resize"
T resize-window -t "$SESSION" -x 120 -y 40
wait_for " wstap "
wait_for "nginx-wrong-location.pcap · analysed"
[ "$(pane | wc -l)" -ge 40 ] || fail "the pane did not grow to 40 rows"
T resize-window -t "$SESSION" -x 80 -y 24
wait_gone " wstap "
wait_for "Traffic"
keys q
expect_exit 0

echo "tui_tmux: two workers (--threads 2): the same findings, q quits"
start 80 24 -r captures/nginx-wrong-location.pcap --tui --threads 2
wait_for "analysed"
wait_for "upgrade-stripped"
keys 2
wait_for "upgrade-stripped ×1"
keys q
expect_exit 0

echo "tui_tmux: replay at 5x: idle sessions turn amber, then red, then close; pause; SIGTERM"
# nginx-idle-60: four sessions go quiet; nginx closes three at its 60 s
# proxy_read_timeout. At 5x the whole capture takes 14 s.
start 100 30 -r captures/nginx-idle-60.pcap --tui --replay 5
wait_for "replay ×5"
wait_for "3 Sessions (4 open)" 5
keys 3
wait_for "4 open"
# The idle column in colour (capture-pane -e): amber (colour 3) from 45 s,
# red (colour 1) from 54 s of the 60 s boundary.
wait_colour 3 12
wait_colour 1 5
keys p
wait_for "PAUSED"
keys p
wait_gone "PAUSED"
wait_for "replayed" 10
wait_for "4 closed"
wait_for "fin proxy"
keys 1
wait_for "idle-timeout-close"
pid=$(pgrep -P "$(cat "$TMP/shpid")" | head -1)
[ -n "$pid" ] || fail "cannot find the wstap process"
kill -TERM "$pid"
expect_exit 143

echo "tui_tmux: --fail-on holds for the dashboard: q exits 1 after errors were shown, 0 without"
start 80 24 -r captures/nginx-wrong-location.pcap --tui --fail-on error
wait_for "analysed"
wait_for "upgrade-stripped"
keys q
expect_exit 1
start 80 24 -r captures/nginx-healthy.pcap --tui --fail-on error
wait_for "analysed"
keys q
expect_exit 0

echo "tui_tmux: the terminal goes away (SIGHUP): wstap exits"
start 80 24 -r captures/nginx-healthy.pcap --tui
wait_for "analysed"
pid=$(pgrep -P "$(cat "$TMP/shpid")" | head -1)
[ -n "$pid" ] || fail "cannot find the wstap process"
T kill-session -t "$SESSION"
deadline=$((SECONDS + 5))
while kill -0 "$pid" 2>/dev/null; do
  [ "$SECONDS" -lt "$deadline" ] || { kill -KILL "$pid"; fail "wstap still running 5 s after its terminal went away"; }
  sleep 0.1
done

echo "tui_tmux: live on lo (root only), with -w, on one thread and with two workers"
if [ "$(id -u)" = 0 ] && command -v python3 >/dev/null; then
  # A throwaway HTTP server on a port the kernel picks.
  python3 -u -m http.server 0 --bind 127.0.0.1 >"$TMP/httpd.log" 2>&1 &
  HTTPD=$!
  port=""
  for _ in $(seq 50); do
    port=$(sed -n 's/.* port \([0-9][0-9]*\).*/\1/p' "$TMP/httpd.log" | head -1)
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || fail "the test HTTP server did not start: $(cat "$TMP/httpd.log")"
  for threads in 1 2; do
    start 100 30 -i lo --tui --threads $threads -w "$TMP/live.pcap" "'tcp port $port'"
    wait_for "lo · live"
    wait_for "Drops       kernel 0"
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      (exec 3<>"/dev/tcp/127.0.0.1/$port" && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && cat <&3 >/dev/null) 2>/dev/null && break
      sleep 0.2
    done
    wait_for "HTTP reqs   1"
    keys q
    expect_exit 0
    # The run's summary stays on the terminal after the dashboard.
    wait_for "wstap: live capture on lo stopped" 5
    wait_for "1 HTTP request" 5
    "$WSTAP" -r "$TMP/live.pcap" -q | grep -q "1 HTTP request" || fail "the -w file does not hold the request: $("$WSTAP" -r "$TMP/live.pcap" -q 2>&1 | head -3)"
  done
  kill "$HTTPD" 2>/dev/null || true
  HTTPD=""
else
  echo "tui_tmux: (skipped: needs root and python3)"
fi

echo "tui_tmux: ok"
