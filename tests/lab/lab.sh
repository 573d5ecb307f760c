# shellcheck shell=bash
# wstap capture lab: helper functions, meant to be *sourced*:
#
#   source tests/lab/lab.sh
#   lab_init                      # creates $LAB_RUN (temp dir), sets an EXIT trap
#   lab_backend 13001 --mode echo # -> pid in $LAB_LAST_PID, log in $LAB_RUN/
#   lab_nginx nginx/healthy.conf LISTEN=127.0.0.1:18081 UPSTREAM=127.0.0.1:13001
#   lab_tcpdump_start out.pcap lo 'tcp port 18081 or tcp port 13001'
#   python3 tests/lab/client.py ws ws://127.0.0.1:18081/ws --close
#   lab_tcpdump_stop
#   lab_cleanup                   # stops every process started here, by pid
#
# Every process started through these helpers is recorded in LAB_PIDS and is
# stopped by pid only (never by name). Every wait is bounded.

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB_PY=${LAB_PY:-python3}
LAB_PIDS=()
LAB_RUN=${LAB_RUN:-}
LAB_LAST_PID=
LAB_TCPDUMP_PID=

lab_log() { printf '[lab %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

lab_init() {
    if [ -z "$LAB_RUN" ]; then
        LAB_RUN=$(mktemp -d /tmp/wstap-lab.XXXXXX)
        LAB_RUN_OWNED=1
    fi
    chmod 755 "$LAB_RUN"
    trap lab_cleanup EXIT
    trap 'lab_cleanup; exit 130' INT TERM
}

# lab_render TEMPLATE OUT KEY=VALUE... : replace every @KEY@ by VALUE
lab_render() {
    local tmpl=$1 out=$2; shift 2
    local args=() kv k v
    for kv in "$@"; do
        k=${kv%%=*}; v=${kv#*=}
        v=${v//\\/\\\\}; v=${v//|/\\|}; v=${v//&/\\&}; v=${v//$'\n'/\\n}
        args+=(-e "s|@${k}@|${v}|g")
    done
    sed "${args[@]}" "$tmpl" > "$out"
    if grep -q '@[A-Z_]*@' "$out"; then
        lab_log "WARNING: unrendered placeholder in $out: $(grep -o '@[A-Z_]*@' "$out" | sort -u | tr '\n' ' ')"
    fi
}

# lab_wait_listen PORT [TIMEOUT_S] : wait until something LISTENs on tcp PORT
# (checked with ss, so no probe connection pollutes logs or captures)
lab_wait_listen() {
    local port=$1 timeout=${2:-10} i
    for ((i = 0; i < timeout * 10; i++)); do
        if ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then return 0; fi
        sleep 0.1
    done
    lab_log "ERROR: nothing listening on port $port after ${timeout}s"
    return 1
}

# lab_wait_free PORT [TIMEOUT_S] : wait until nothing listens on tcp PORT
lab_wait_free() {
    local port=$1 timeout=${2:-10} i
    for ((i = 0; i < timeout * 10; i++)); do
        if ! ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then return 0; fi
        sleep 0.1
    done
    lab_log "ERROR: port $port still in use after ${timeout}s"
    return 1
}

# lab_bg LOGFILE CMD... : start CMD in the background, stdout+stderr to LOGFILE
lab_bg() {
    local logf=$1; shift
    "$@" >"$logf" 2>&1 &
    LAB_LAST_PID=$!
    LAB_PIDS+=("$LAB_LAST_PID")
}

# lab_stop PID [SIGNAL] [TIMEOUT_S] : signal one of *our* processes, wait for it
# (bounded), SIGKILL if it does not go away.
lab_stop() {
    local pid=$1 sig=${2:-TERM} timeout=${3:-5} i
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    kill -s "$sig" "$pid" 2>/dev/null
    for ((i = 0; i < timeout * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        lab_log "pid $pid ignored SIG$sig for ${timeout}s, sending KILL"
        kill -s KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    return 0
}

# lab_stop_all : stop every process started through lab_bg (reverse order)
lab_stop_all() {
    local i pid
    for ((i = ${#LAB_PIDS[@]} - 1; i >= 0; i--)); do
        pid=${LAB_PIDS[$i]}
        [ "$pid" = "$LAB_TCPDUMP_PID" ] && lab_stop "$pid" INT 5 || lab_stop "$pid" TERM 5
    done
    LAB_PIDS=()
    LAB_TCPDUMP_PID=
}

lab_cleanup() {
    lab_stop_all
    if [ -n "${LAB_RUN_OWNED:-}" ] && [ -n "$LAB_RUN" ] && [ -z "${LAB_KEEP:-}" ]; then
        rm -rf "$LAB_RUN"
    fi
}

# ---------------------------------------------------------------- backends

# lab_backend PORT [ARGS...] : tests/lab/backend.py on 127.0.0.1 (use --host ::1
# in ARGS for IPv6). Waits until it listens.
lab_backend() {
    local port=$1; shift
    lab_bg "$LAB_RUN/backend-$port.log" "$LAB_PY" -u "$LAB_DIR/backend.py" --port "$port" "$@"
    lab_wait_listen "$port" 10
}

lab_badaccept() {
    local port=$1; shift
    lab_bg "$LAB_RUN/badaccept-$port.log" "$LAB_PY" -u "$LAB_DIR/badaccept.py" --port "$port" "$@"
    lab_wait_listen "$port" 10
}

lab_sio_server() {
    local port=$1; shift
    lab_bg "$LAB_RUN/sio-$port.log" "$LAB_PY" -u "$LAB_DIR/sio_server.py" --port "$port" "$@"
    lab_wait_listen "$port" 15
}

# ---------------------------------------------------------------- proxies

# lab_nginx NAME SERVER_TEMPLATE PORT_TO_WAIT [KEY=VALUE...]
#   Renders nginx/main.conf.tmpl (+ MAIN_EXTRA=...) and SERVER_TEMPLATE into
#   $LAB_RUN/nginx-NAME/ and starts "nginx -p DIR -c DIR/nginx.conf" in the
#   foreground (daemon off). Pid in $LAB_LAST_PID, prefix dir in $LAB_NGINX_DIR.
lab_nginx() {
    local name=$1 tmpl=$2 port=$3; shift 3
    local dir=$LAB_RUN/nginx-$name main_extra="" kv
    mkdir -p "$dir/tmp" "$dir/logs"
    for kv in "$@"; do
        case $kv in MAIN_EXTRA=*) main_extra=${kv#MAIN_EXTRA=} ;; esac
    done
    lab_render "$LAB_DIR/nginx/main.conf.tmpl" "$dir/nginx.conf" RUN="$dir" MAIN_EXTRA="$main_extra"
    lab_render "$tmpl" "$dir/server.conf" RUN="$dir" "$@"
    nginx -t -q -p "$dir" -c "$dir/nginx.conf" || { lab_log "nginx -t failed for $tmpl"; return 1; }
    lab_bg "$dir/stderr.log" nginx -p "$dir" -c "$dir/nginx.conf"
    LAB_NGINX_DIR=$dir
    lab_wait_listen "$port" 10
}

# lab_haproxy NAME TEMPLATE PORT_TO_WAIT [KEY=VALUE...] : haproxy -db -f CFG
lab_haproxy() {
    local name=$1 tmpl=$2 port=$3; shift 3
    local dir=$LAB_RUN/haproxy-$name
    mkdir -p "$dir"
    lab_render "$tmpl" "$dir/haproxy.cfg" RUN="$dir" "$@"
    haproxy -c -q -f "$dir/haproxy.cfg" || { lab_log "haproxy -c failed for $tmpl"; return 1; }
    lab_bg "$dir/stderr.log" haproxy -db -f "$dir/haproxy.cfg"
    lab_wait_listen "$port" 10
}

# lab_apache NAME TEMPLATE PORT_TO_WAIT [KEY=VALUE...] : apache2 -f CONF -DFOREGROUND
#   with its own ServerRoot / PidFile / Mutex / DefaultRuntimeDir under $LAB_RUN.
lab_apache() {
    local name=$1 tmpl=$2 port=$3; shift 3
    local dir=$LAB_RUN/apache-$name user=www-data group=www-data
    mkdir -p "$dir/logs"
    if [ "$(id -u)" != 0 ]; then user=$(id -un); group=$(id -gn); fi
    lab_render "$tmpl" "$dir/apache2.conf" RUN="$dir" RUN_USER="$user" RUN_GROUP="$group" "$@"
    apache2 -t -f "$dir/apache2.conf" >"$dir/configtest.log" 2>&1 \
        || { lab_log "apache2 -t failed for $tmpl: $(cat "$dir/configtest.log")"; return 1; }
    lab_bg "$dir/stderr.log" apache2 -f "$dir/apache2.conf" -DFOREGROUND
    lab_wait_listen "$port" 10
}

# lab_caddy NAME TEMPLATE PORT_TO_WAIT [KEY=VALUE...] : caddy run with its own
#   Caddyfile, data and config dirs under $LAB_RUN (no admin endpoint, no
#   automatic HTTPS, nothing written outside the run dir).
lab_caddy() {
    local name=$1 tmpl=$2 port=$3; shift 3
    local dir=$LAB_RUN/caddy-$name
    mkdir -p "$dir/data" "$dir/config"
    lab_render "$tmpl" "$dir/Caddyfile" RUN="$dir" "$@"
    HOME=$dir XDG_DATA_HOME=$dir/data XDG_CONFIG_HOME=$dir/config \
        caddy validate --config "$dir/Caddyfile" --adapter caddyfile >"$dir/validate.log" 2>&1 \
        || { lab_log "caddy validate failed for $tmpl: $(tail -1 "$dir/validate.log")"; return 1; }
    HOME=$dir XDG_DATA_HOME=$dir/data XDG_CONFIG_HOME=$dir/config \
        lab_bg "$dir/stderr.log" caddy run --config "$dir/Caddyfile" --adapter caddyfile
    lab_wait_listen "$port" 10
}

# lab_lighttpd NAME TEMPLATE PORT_TO_WAIT [KEY=VALUE...] : lighttpd -D -f CONF
#   with its document root, pid, error log and upload dir under $LAB_RUN.
#   Pid in $LAB_LAST_PID.
lab_lighttpd() {
    local name=$1 tmpl=$2 port=$3; shift 3
    local dir=$LAB_RUN/lighttpd-$name
    mkdir -p "$dir/www" "$dir/tmp"
    lab_render "$tmpl" "$dir/lighttpd.conf" RUN="$dir" "$@"
    lighttpd -tt -f "$dir/lighttpd.conf" >"$dir/configtest.log" 2>&1 \
        || { lab_log "lighttpd -tt failed for $tmpl: $(cat "$dir/configtest.log")"; return 1; }
    lab_bg "$dir/stderr.log" lighttpd -D -f "$dir/lighttpd.conf"
    lab_wait_listen "$port" 10
}

# ---------------------------------------------------------------- capture

# lab_tcpdump_start PCAP IFACE FILTER [EXTRA_TCPDUMP_ARGS...]
#   Starts tcpdump -U -s 0 and waits (bounded) until it reports "listening".
lab_tcpdump_start() {
    local pcap=$1 iface=$2 filter=$3; shift 3
    local errf=$LAB_RUN/tcpdump-$(basename "$pcap").log i
    rm -f "$pcap"
    tcpdump -i "$iface" -s 0 -B 65536 -U --immediate-mode -n "$@" -w "$pcap" "$filter" >"$errf" 2>&1 &
    LAB_TCPDUMP_PID=$!
    LAB_PIDS+=("$LAB_TCPDUMP_PID")
    for ((i = 0; i < 100; i++)); do
        grep -q "listening on" "$errf" 2>/dev/null && break
        kill -0 "$LAB_TCPDUMP_PID" 2>/dev/null || break
        sleep 0.1
    done
    if ! grep -q "listening on" "$errf" 2>/dev/null; then
        lab_log "ERROR: tcpdump did not start: $(cat "$errf")"
        return 1
    fi
    sleep 0.3
}

# lab_tcpdump_stop : SIGINT by pid, wait (bounded) so the pcap is complete.
# Sets LAB_TCPDUMP_DROPS to tcpdump's "dropped by kernel" count (returns 3 if >0).
LAB_TCPDUMP_DROPS=0
lab_tcpdump_stop() {
    [ -n "$LAB_TCPDUMP_PID" ] || return 0
    sleep 1     # let the last FIN/ACKs through
    lab_stop "$LAB_TCPDUMP_PID" INT 10
    local p pids=() errf stats
    for p in "${LAB_PIDS[@]}"; do [ "$p" = "$LAB_TCPDUMP_PID" ] || pids+=("$p"); done
    LAB_PIDS=("${pids[@]}")
    LAB_TCPDUMP_PID=
    LAB_TCPDUMP_DROPS=0
    for errf in "$LAB_RUN"/tcpdump-*.log; do
        [ -f "$errf" ] || continue
        stats=$(grep -E "captured|dropped by kernel" "$errf" | tr '\n' ' ')
        lab_log "tcpdump: $stats"
        LAB_TCPDUMP_DROPS=$(grep -oE '^[0-9]+ packets? dropped by kernel' "$errf" | grep -oE '^[0-9]+' || echo 0)
        rm -f "$errf"
    done
    [ "${LAB_TCPDUMP_DROPS:-0}" = 0 ] || return 3
}

# ---------------------------------------------------------------- clients

# lab_client OUTFILE TIMEOUT_S ARGS... : run tests/lab/client.py (bounded)
lab_client() {
    local out=$1 t=$2; shift 2
    timeout -s INT "$t" "$LAB_PY" -u "$LAB_DIR/client.py" "$@" >>"$out" 2>>"$out.stderr"
}

# lab_client_bg OUTFILE TIMEOUT_S ARGS... : same, in the background; pid in $LAB_LAST_PID
lab_client_bg() {
    local out=$1 t=$2; shift 2
    timeout -s INT "$t" "$LAB_PY" -u "$LAB_DIR/client.py" "$@" >>"$out" 2>>"$out.stderr" &
    LAB_LAST_PID=$!
}

lab_sio_client() {
    local out=$1 t=$2; shift 2
    timeout -s INT "$t" "$LAB_PY" -u "$LAB_DIR/sio_client.py" "$@" >>"$out" 2>>"$out.stderr"
}

lab_sio_client_bg() {
    local out=$1 t=$2; shift 2
    timeout -s INT "$t" "$LAB_PY" -u "$LAB_DIR/sio_client.py" "$@" >>"$out" 2>>"$out.stderr" &
    LAB_LAST_PID=$!
}

# lab_merge_jsonl OUT IN... : merge JSON-lines files ordered by their "t" field
lab_merge_jsonl() {
    local out=$1; shift
    "$LAB_PY" - "$out" "$@" <<'PY'
import json, sys
out, ins = sys.argv[1], sys.argv[2:]
recs = []
for f in ins:
    try:
        for line in open(f):
            line = line.strip()
            if line:
                recs.append(json.loads(line))
    except FileNotFoundError:
        pass
recs.sort(key=lambda r: r.get("t", 0))
with open(out, "w") as fh:
    for r in recs:
        fh.write(json.dumps(r) + "\n")
PY
}
