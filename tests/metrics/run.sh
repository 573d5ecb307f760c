#!/usr/bin/env bash
# Prometheus test (issue 12), real processes only: a real Prometheus server
# (Debian's package) scrapes `wstap -i lo --metrics` every second while real
# clients go through a real nginx to the lab's WebSocket backend: healthy
# upgrades, a location that strips the upgrade, sessions cut by a short
# proxy_read_timeout. Then Prometheus's HTTP API must hold the same counters
# as wstap's own JSON summary, and the stripped-upgrade alert must fire
# (contrib/prometheus/wstap-rules.yml). The endpoint passes `promtool check
# metrics`, the rules their unit tests, and every query of the Grafana
# dashboard (contrib/grafana/wstap.json) runs on that Prometheus.
#
#   bash tests/metrics/run.sh          (as root; WSTAP=path/to/wstap to skip the build)
#
# Ports: LIVE_FRONT_PORT+1 (nginx), LIVE_BACK_PORT+1 (backend),
# LIVE_FRONT_PORT+2 (wstap's endpoint), LIVE_FRONT_PORT+3 (Prometheus), all
# on loopback. Every process is stopped by pid; every wait is bounded; the
# run takes about 25 s (budget 120 s).

set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BASE_FRONT=${LIVE_FRONT_PORT:-18481}
BASE_BACK=${LIVE_BACK_PORT:-13481}
FRONT=$((BASE_FRONT + 1))
BACK=$((BASE_BACK + 1))
MPORT=$((BASE_FRONT + 2))
PPORT=$((BASE_FRONT + 3))
FILTER="tcp port $FRONT or tcp port $BACK"
PY=${LAB_PY:-python3}
export PYTHONDONTWRITEBYTECODE=1

say() { printf '\n== %s\n' "$*"; }
die() { printf 'FAIL: %s\n' "$*" >&2; [ -n "${R:-}" ] && tail -5 "$R"/*.err "$R"/prometheus.log 2>/dev/null >&2; exit 1; }
ok() { printf '  ok: %s\n' "$*"; }

[ "$(id -u)" = 0 ] || die "run as root: live capture needs it"

missing=()
command -v nginx >/dev/null || missing+=(nginx-light)
command -v prometheus >/dev/null || missing+=(prometheus)
command -v promtool >/dev/null || missing+=(prometheus)
command -v curl >/dev/null || missing+=(curl)
command -v ss >/dev/null || missing+=(iproute2)
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    timeout 300 apt-get update -qq && timeout 600 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
fi
"$PY" -c 'import websockets.asyncio.client' 2>/dev/null || die "python websockets missing (scripts/deps.sh)"

if [ -z "${WSTAP:-}" ]; then
    say "building wstap"
    (cd "$ROOT" && cargo build -q) || die "cargo build failed"
    WSTAP=${CARGO_TARGET_DIR:-$ROOT/target}/debug/wstap
fi
[ -x "$WSTAP" ] || die "no wstap binary at $WSTAP"
T_START=$SECONDS

say "the rules: promtool check rules, promtool test rules"
(cd "$ROOT/contrib/prometheus" && promtool check rules wstap-rules.yml >/dev/null && promtool test rules wstap-rules.test.yml >/dev/null) \
    || die "contrib/prometheus/wstap-rules.yml: $(cd "$ROOT/contrib/prometheus" && promtool test rules wstap-rules.test.yml 2>&1 | tail -20)"
ok "rules checked, unit tests pass"

# shellcheck source=../lab/lab.sh
source "$ROOT/tests/lab/lab.sh"
lab_init
R=$LAB_RUN
chmod 1777 "$R"

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
has_kind() { grep -q "\"kind\":\"$2\"" "$1"; }
prom_q() { curl -fsS --max-time 5 "http://127.0.0.1:$PPORT/api/v1/query" --data-urlencode "query=$1"; }
scraped_up() { prom_q 'up{job="wstap"} == 1' 2>/dev/null | grep -q '"value"'; }
client() { lab_client "$R/clients.jsonl" 20 "$@" || die "client $* failed: $(tail -3 "$R/clients.jsonl.stderr")"; }

say "backend (:$BACK), nginx (:$FRONT), wstap -i lo --metrics 127.0.0.1:$MPORT, prometheus (:$PPORT)"
for p in "$FRONT" "$BACK" "$MPORT" "$PPORT"; do lab_wait_free "$p" 5 || die "port $p is busy"; done
lab_backend "$BACK" --mode echo || die "backend did not start"
lab_nginx metrics "$HERE/nginx-metrics.conf" "$FRONT" LISTEN=127.0.0.1:$FRONT UPSTREAM=127.0.0.1:$BACK \
    || die "nginx did not start"

"$WSTAP" -i lo --json --timeout 2 --metrics "127.0.0.1:$MPORT" "$FILTER" >"$R/wstap.out" 2>"$R/wstap.err" &
WPID=$!
LAB_PIDS+=("$WPID")
wait_for 10 grep -q "listening on" "$R/wstap.err" || die "wstap did not start: $(cat "$R/wstap.err")"
grep -q "metrics at http://127.0.0.1:$MPORT/metrics" "$R/wstap.err" || die "no metrics line: $(cat "$R/wstap.err")"

mkdir -p "$R/prom"
cat >"$R/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $ROOT/contrib/prometheus/wstap-rules.yml
scrape_configs:
  - job_name: wstap
    static_configs:
      - targets: ['127.0.0.1:$MPORT']
YML
promtool check config "$R/prometheus.yml" >/dev/null || die "prometheus.yml: $(promtool check config "$R/prometheus.yml" 2>&1)"
lab_bg "$R/prometheus.log" prometheus --config.file="$R/prometheus.yml" --storage.tsdb.path="$R/prom" \
    --web.listen-address="127.0.0.1:$PPORT" --storage.tsdb.retention.time=1h
PROM_PID=$LAB_LAST_PID
prom_ready() { curl -fsS --max-time 2 -o /dev/null "http://127.0.0.1:$PPORT/-/ready" 2>/dev/null; }
wait_for 30 prom_ready || die "prometheus not ready"
wait_for 20 scraped_up || die "prometheus never scraped wstap: $(prom_q 'up' 2>&1)"
ok "prometheus $(prometheus --version 2>&1 | head -1 | awk '{print $3}') scrapes wstap"

curl -fsS --max-time 5 "http://127.0.0.1:$MPORT/metrics" >"$R/scrape.txt" || die "scrape failed"
promtool check metrics <"$R/scrape.txt" >"$R/lint.txt" 2>&1 || die "promtool check metrics: $(cat "$R/lint.txt")"
ok "the endpoint passes promtool check metrics ($(grep -vc '^#' "$R/scrape.txt") series)"

say "traffic: 3 healthy sessions, 2 stripped upgrades, 2 sessions cut by proxy_read_timeout 2s, 1 kept by pings"
client ws "ws://127.0.0.1:$FRONT/ws" --count 3 --messages 3 --close --group healthy
"$PY" -u "$LAB_DIR/client.py" ws "ws://127.0.0.1:$FRONT/broken" --count 2 --group broken \
    >>"$R/clients.jsonl" 2>>"$R/clients.jsonl.stderr"
# On /short, one session pings every second (the path's heartbeat, known
# to wstap, so the cuts are judged without waiting for it) while two stay
# silent past nginx's 2 s.
lab_client_bg "$R/clients.jsonl" 20 ws "ws://127.0.0.1:$FRONT/short" --count 1 --idle 4 --ping-interval 1 --close --group alive
ALIVE=$LAB_LAST_PID
client ws "ws://127.0.0.1:$FRONT/short" --count 2 --messages 1 --idle 4 --ping-interval none --group short
wait "$ALIVE" || die "the heartbeat client failed: $(tail -3 "$R/clients.jsonl.stderr")"
wait_for 20 at_least "$R/wstap.out" handshake 8 || die "handshakes not out: $(cat "$R/wstap.out")"
wait_for 20 has_kind "$R/wstap.out" upgrade-stripped || die "no upgrade-stripped finding: $(cat "$R/wstap.out")"
wait_for 20 has_kind "$R/wstap.out" idle-timeout-close || die "no idle-timeout-close finding: $(cat "$R/wstap.out")"
ok "wstap reported the handshakes, the stripped upgrade and the idle cuts"

# Prometheus has what the endpoint shows now (two more scrapes), and the
# stripped-upgrade alert fires (evaluated every second).
firing() { curl -fsS --max-time 5 "http://127.0.0.1:$PPORT/api/v1/alerts" | grep -q '"alertname":"WstapUpgradeStripped".*"state":"firing"\|"state":"firing".*"alertname":"WstapUpgradeStripped"'; }
wait_for 20 firing || die "WstapUpgradeStripped not firing: $(curl -sS "http://127.0.0.1:$PPORT/api/v1/alerts")"
sleep 3

say "stop wstap (SIGINT) and compare its summary with what Prometheus stored"
kill -INT "$WPID"
wait_for 10 eval '! kill -0 $WPID 2>/dev/null' || die "wstap did not stop"
wait "$WPID"; rc=$?
[ "$rc" = 0 ] || die "wstap exited $rc"
"$PY" "$HERE/check.py" "http://127.0.0.1:$PPORT" "$R/wstap.out" upgrade-stripped idle-timeout-close \
    || die "prometheus and the summary differ"
ok "counters equal the summary; WstapUpgradeStripped firing"
"$PY" "$HERE/dashboard.py" "http://127.0.0.1:$PPORT" "$ROOT/contrib/grafana/wstap.json" \
    || die "the Grafana dashboard's queries"
ok "every query of contrib/grafana/wstap.json runs on prometheus"
lab_stop "$PROM_PID" TERM 10

say "2. as contrib/systemd/wstap.service runs it: root bounded to NET_RAW NET_ADMIN SETUID SETGID, -Z, log directory root:GROUP 0770; a logrotate rename + create + HUP; two flow-sharded workers behind two kernel rings (--fanout 2)"
# The unit's account is wstap; here nobody/nogroup (no account is created
# on the test machine).
L=$R/log
mkdir -p "$L" && chown root:nogroup "$L" && chmod 0770 "$L"
M2=$((BASE_FRONT + 4))
lab_wait_free "$M2" 5 || die "port $M2 is busy"
# --cpus: every CPU this test may use, a worker pinned on each in turn
# (docs/live.md "CPUs"), under the unit's bounded capabilities.
CPUS=$(awk '/^Cpus_allowed_list:/ { print $2 }' /proc/self/status)
setpriv --bounding-set -all,+net_raw,+net_admin,+setuid,+setgid -- \
    "$WSTAP" -i lo -q --threads 2 --fanout 2 --cpus "$CPUS" --metrics "127.0.0.1:$M2" --json-file "$L/findings.jsonl" -Z nobody "$FILTER" \
    >"$R/svc.out" 2>"$R/svc.err" &
SPID=$!
LAB_PIDS+=("$SPID")
wait_for 10 grep -q "listening on" "$R/svc.err" || die "the service did not start: $(cat "$R/svc.err")"
grep -q '^Uid:[[:space:]]*65534' "/proc/$SPID/status" || die "not running as nobody: $(grep Uid "/proc/$SPID/status")"
grep -q '^CapEff:[[:space:]]*0000000000000000' "/proc/$SPID/status" || die "capabilities left: $(grep Cap "/proc/$SPID/status")"
client ws "ws://127.0.0.1:$FRONT/ws" --count 2 --messages 2 --close --group svc1
wait_for 10 at_least "$L/findings.jsonl" session 2 || die "no sessions in the JSON file: $(cat "$L/findings.jsonl")"
mv "$L/findings.jsonl" "$L/findings.jsonl.1"
install -m 0660 -o root -g nogroup /dev/null "$L/findings.jsonl"
kill -HUP "$SPID"
client ws "ws://127.0.0.1:$FRONT/ws" --count 3 --messages 2 --close --group svc2
wait_for 10 at_least "$L/findings.jsonl" session 3 || die "no sessions after the rotation: $(cat "$L/findings.jsonl")"
scrape2() { curl -fsS --max-time 5 "http://127.0.0.1:$M2/metrics" | grep -q '^wstap_handshakes_total{outcome="upgraded",role="client"} 5$'; }
wait_for 10 scrape2 || die "the endpoint does not show 5 upgrades: $(curl -sS "http://127.0.0.1:$M2/metrics" | grep handshakes_total)"
# The engine's runtime numbers (packets, connections), which the workers'
# correlator offers at each tick, move while it runs.
runtime2() {
    curl -fsS --max-time 5 "http://127.0.0.1:$M2/metrics" | awk '
        /^wstap_packets_total / { p = $2 } /^wstap_connections_total / { c = $2 }
        END { exit !(p >= 50 && c >= 10) }'
}
wait_for 10 runtime2 || die "runtime numbers did not move with --threads 2: $(curl -sS "http://127.0.0.1:$M2/metrics" | grep -E '^wstap_(packets|connections)_total')"
# adds_up FAMILY LABEL TOTAL: the endpoint has two series FAMILY{LABEL="0"}
# and {LABEL="1"}, and no third, adding up to TOTAL (at least 50).
adds_up() {
    curl -fsS --max-time 5 "http://127.0.0.1:$M2/metrics" | awk -v f="$1" -v l="$2" -v t="$3" '
        index($1, f "{" l "=\"") == 1 { sum += $2; n++ }
        $1 == t { total = $2 }
        END { exit !(n == 2 && sum >= 50 && sum == total) }'
}
# Each ring's packets add up to what the kernel counted (both published
# with the kernel counters, once a second).
wait_for 10 adds_up wstap_capture_ring_packets_total ring wstap_capture_received_total \
    || die "ring series: $(curl -sS "http://127.0.0.1:$M2/metrics" | grep -E '^wstap_capture_(ring_packets|received)_total')"
# Each analysis worker's share adds up to the TCP segments read (the same
# tick's numbers).
wait_for 10 adds_up wstap_worker_packets_total worker wstap_tcp_packets_total \
    || die "worker series: $(curl -sS "http://127.0.0.1:$M2/metrics" | grep -E '^wstap_(worker_packets|tcp_packets)_total')"
# Each worker's open connections add up to the flow table's (every
# class), while a session is held open through the proxy (its two hops).
lab_client_bg "$R/hold.jsonl" 20 ws "ws://127.0.0.1:$FRONT/ws" --count 1 --idle 3 --ping-interval none --close --group hold
HOLD=$LAB_LAST_PID
open_adds_up() {
    curl -fsS --max-time 5 "http://127.0.0.1:$M2/metrics" | awk '
        index($1, "wstap_worker_connections{worker=\"") == 1 { w += $2; n++ }
        index($1, "wstap_flow_table_connections{class=\"") == 1 { t += $2 }
        END { exit !(n == 2 && w >= 2 && w == t) }'
}
wait_for 10 open_adds_up \
    || die "open connections per worker: $(curl -sS "http://127.0.0.1:$M2/metrics" | grep -E '^wstap_(worker|flow_table)_connections')"
wait "$HOLD" || die "the held session's client failed: $(tail -3 "$R/hold.jsonl.stderr")"
wait_for 10 at_least "$L/findings.jsonl" session 4 || die "the held session is not out: $(cat "$L/findings.jsonl")"
# Every thread (the endpoint's included, started once privileges were
# dropped) runs as nobody with no capability and no_new_privs.
tasks=0
for st in /proc/"$SPID"/task/*/status; do
    tasks=$((tasks + 1))
    grep -q '^Uid:[[:space:]]*65534' "$st" && grep -q '^CapPrm:[[:space:]]*0000000000000000' "$st" \
        && grep -q '^CapEff:[[:space:]]*0000000000000000' "$st" && grep -q '^NoNewPrivs:[[:space:]]*1' "$st" \
        || die "thread $(grep '^Name' "$st") keeps privileges: $(grep -E '^(Uid|Cap|NoNew)' "$st" | tr '\n' ' ')"
    # A worker runs on one CPU of the list, every other thread on the list.
    on=$(awk '/^Cpus_allowed_list:/ { print $2 }' "$st")
    if grep -q '^Name:[[:space:]]*wstap-worker-' "$st"; then
        case "$on" in *[,-]*) die "$(grep '^Name' "$st") not pinned: $on" ;; esac
    else
        [ "$on" = "$CPUS" ] || die "$(grep '^Name' "$st") runs on $on, outside --cpus $CPUS"
    fi
done
[ "$tasks" -ge 7 ] || die "expected two capture threads, the reader, two workers, the correlator and the endpoint, found $tasks"
kill -INT "$SPID"
wait_for 10 eval '! kill -0 $SPID 2>/dev/null' || die "the service did not stop"
wait "$SPID"; rc=$?
[ "$rc" = 0 ] || die "the service exited $rc: $(cat "$R/svc.err")"
[ "$(count_lines "$L/findings.jsonl.1" handshake)" = 2 ] || die "rotated file: $(cat "$L/findings.jsonl.1")"
[ "$(count_lines "$L/findings.jsonl" handshake)" = 4 ] || die "new file: $(cat "$L/findings.jsonl")"
tail -1 "$L/findings.jsonl" | grep -q '"type":"summary".*"handshakes":{"total":6,"upgraded":6' \
    || die "the summary is not last in the new file: $(tail -1 "$L/findings.jsonl")"
ok "ran as nobody, every thread ($tasks, two capture rings among them) without capability and with no_new_privs, on --cpus $CPUS (each worker pinned to one); both rings and both workers counted on the endpoint, the workers' open connections adding up to the table's; 2 + 4 handshakes split across the rotation, none lost; summary in the new file"

elapsed=$((SECONDS - T_START))
[ "$elapsed" -lt 120 ] || die "took ${elapsed}s (budget 120 s)"
printf '\nPASS tests/metrics/run.sh (%ss)\n' "$elapsed"
