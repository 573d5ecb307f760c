#!/usr/bin/env bash
# (Re)record the wstap reference captures: real proxies (nginx, haproxy,
# apache2, caddy, lighttpd) in front of real WebSocket backends/clients, all on loopback, so one
# pcap holds both TCP hops (client->proxy and proxy->upstream).
#
#   bash captures/record.sh              # every scenario (~5 min idle machine, see README)
#   bash captures/record.sh NAME...      # only these (e.g. nginx-healthy)
#   bash captures/record.sh --list       # list scenario names
#
# Outputs, per scenario: captures/NAME.pcap, captures/NAME.client.jsonl (what
# the client saw, JSON lines), and its entry in captures/manifest.json.
# Needs root (tcpdump on lo). Every server is started by this script with its
# own config/prefix under a temp dir and stopped by pid; the system's own
# nginx/apache/haproxy services are never touched. Every wait is bounded.
# LAB_KEEP=1 keeps the temp dirs (proxy configs and logs, backend logs).

set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CAP=$ROOT/captures
LAB=$ROOT/tests/lab
NGX=$LAB/nginx
HAP=$LAB/haproxy
APA=$LAB/apache

ALL=(
    nginx-healthy nginx-default nginx-upgrade-only nginx-upgrade-mangled
    nginx-http10 nginx-hardcoded-connection nginx-wrong-location
    nginx-idle-60 nginx-idle-short nginx-heartbeat-race
    nginx-backend-down nginx-backend-hang nginx-backend-close
    nginx-origin-403 nginx-bad-accept nginx-no-proxy-location nginx-mass-close
    nginx-tls-front nginx-ipv6 nginx-any nginx-any-sll2
    nginx-socketio-ok nginx-socketio-stuck
    haproxy-healthy haproxy-idle haproxy-stripped
    apache-healthy apache-stripped
    chain-haproxy-nginx nginx-pipelined-plain nginx-bench
    nginx-backend-crash nginx-bench-uncompressed
    caddy-healthy caddy-stripped
    nginx-timeout-race nginx-http10-upstream-only nginx-tls-busy
    nginx-socketio-prefix caddy-reload lighttpd-healthy lighttpd-stripped
    direct-bad-accept
    nginx-tls13 nginx-tls12 nginx-tls-stripped nginx-tls-idle haproxy-tls haproxy-tls-idle haproxy-tls-stripped
    haproxy-h2 haproxy-h2-stripped haproxy-h2-false-success haproxy-h2-idle haproxy-h2-no8441 haproxy-h2c
    nginx-request-id
)

# ----------------------------------------------------------------------------
# dependencies (installed only when missing)
# ----------------------------------------------------------------------------
ensure_deps() {
    local pkgs=() created_policy=
    command -v nginx >/dev/null || pkgs+=(nginx-light)
    command -v haproxy >/dev/null || pkgs+=(haproxy)
    command -v apache2 >/dev/null || [ -x /usr/sbin/apache2 ] || pkgs+=(apache2)
    command -v tcpdump >/dev/null || pkgs+=(tcpdump)
    command -v openssl >/dev/null || pkgs+=(openssl)
    command -v caddy >/dev/null || pkgs+=(caddy)
    command -v lighttpd >/dev/null || [ -x /usr/sbin/lighttpd ] || pkgs+=(lighttpd)
    command -v ss >/dev/null || pkgs+=(iproute2)
    command -v timeout >/dev/null || pkgs+=(coreutils)
    if ((${#pkgs[@]})); then
        echo "record.sh: installing ${pkgs[*]}" >&2
        # keep the packages' own services from being started on install
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
            chmod 755 /usr/sbin/policy-rc.d
            created_policy=1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get update -q &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}"
        local rc=$?
        [ -n "$created_policy" ] && rm -f /usr/sbin/policy-rc.d
        [ $rc = 0 ] || { echo "record.sh: apt-get failed" >&2; exit 1; }
    fi
    export PATH=$PATH:/usr/sbin:/sbin
    LAB_PY=${LAB_PY:-python3}
    if ! "$LAB_PY" -c 'import websockets.asyncio.server, socketio, aiohttp' 2>/dev/null; then
        # Debian's python is "externally managed": use a private venv
        local venv=${WSTAP_LAB_VENV:-$HOME/.cache/wstap-lab-venv}
        if [ ! -x "$venv/bin/python" ]; then
            python3 -m venv "$venv" 2>/dev/null || {
                DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv && python3 -m venv "$venv"
            } || { echo "record.sh: cannot create venv $venv" >&2; exit 1; }
        fi
        "$venv/bin/python" -c 'import websockets.asyncio.server, socketio, aiohttp' 2>/dev/null ||
            "$venv/bin/pip" install -q 'websockets>=14' 'python-socketio>=5' 'aiohttp>=3' ||
            { echo "record.sh: pip install failed" >&2; exit 1; }
        LAB_PY=$venv/bin/python
    fi
    export LAB_PY
    # node clients (the JavaScript socket.io-client browsers use; the ws
    # client that writes its TLS keys), from npm, pinned by package-lock.json
    if [ ! -d "$LAB/node/node_modules/socket.io-client" ] || [ ! -d "$LAB/node/node_modules/ws" ]; then
        command -v npm >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nodejs npm ||
            { echo "record.sh: cannot install nodejs/npm" >&2; exit 1; }
        (cd "$LAB/node" && npm ci --no-audit --no-fund --silent) || { echo "record.sh: npm ci failed" >&2; exit 1; }
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "record.sh: warning: not root, tcpdump on lo will probably fail" >&2
    fi
}

# ----------------------------------------------------------------------------
# per-scenario helpers (used inside the scenario functions below)
# ----------------------------------------------------------------------------
TCPDUMP_USER=()
[ "$(id -u)" = 0 ] && TCPDUMP_USER=(-Z root)

# cap_start FILTER [IFACE] [EXTRA TCPDUMP ARGS...]
cap_start() {
    local filter=$1 iface=${2:-lo}
    shift; [ $# -gt 0 ] && shift
    echo "  tcpdump -i $iface -s 0 -B 65536 -U --immediate-mode $* -w captures/$NAME.pcap '$filter'"
    lab_tcpdump_start "$CAP/$NAME.pcap" "$iface" "$filter" "${TCPDUMP_USER[@]}" "$@"
}
cap_stop() { lab_tcpdump_stop; }

# client SECS ARGS... : tests/lab/client.py ARGS, bounded by SECS
client() {
    local t=$1; shift
    echo "  client.py $*"
    lab_client "$OUT" "$t" "$@"
}
client_bg() {
    local t=$1; shift
    echo "  client.py $* &"
    lab_client_bg "$OUT" "$t" "$@"
    CLIENT_PIDS+=("$LAB_LAST_PID")
}
wait_clients() {
    local p
    for p in "${CLIENT_PIDS[@]}"; do wait "$p"; done
    CLIENT_PIDS=()
}
sio_client() {
    local t=$1; shift
    echo "  sio_client.py $*"
    lab_sio_client "$OUT" "$t" "$@"
}
backend() { echo "  backend.py --port $*"; lab_backend "$@"; }
# node_sio_client_bg SECS ARGS... : tests/lab/node/sio_client.js in the background
node_sio_client_bg() {
    local t=$1; shift
    echo "  node sio_client.js $* &"
    timeout -s INT "$t" node "$LAB/node/sio_client.js" "$@" >>"$OUT" 2>>"$OUT.stderr" &
    CLIENT_PIDS+=("$!")
}
self_signed() { # DIR: cert.pem + key.pem for a TLS front
    mkdir -p "$1"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
        -keyout "$1/key.pem" -out "$1/cert.pem" >/dev/null 2>&1
}

# ----------------------------------------------------------------------------
# scenarios. Ports: proxy front 18080+N, backend 13000+N (N = scenario number)
# ----------------------------------------------------------------------------
sc_nginx_healthy() {
    local F=18081 B=13001
    backend $B
    lab_nginx healthy "$NGX/healthy.conf" $F LISTEN=127.0.0.1:$F UPSTREAM=127.0.0.1:$B || return 1
    cap_start "tcp port $F or tcp port $B"
    client 30 ws ws://127.0.0.1:$F/ws --count 3 --messages 3 --pings 1 --close --group ws
    client 30 http http://127.0.0.1:$F --req GET:/api/one --req GET:/api/two --group http
    cap_stop
    META=(proxy=nginx scenario="correct WebSocket config (HTTP/1.1, Upgrade, Connection via map, X-Forwarded-*); 3 sessions with messages+ping+close 1000, 2 keep-alive plain requests"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B expected_kinds= optional_kinds=
        notes="Baseline. Plain requests go upstream with 'Connection: close' (map default for empty Upgrade).")
}

# Request ids: nginx forwards its $request_id as X-Request-ID; the clients
# send a W3C traceparent. nginx's access log (NAME.access.log: client
# address:port, request id, traceparent, status, request line) is kept
# beside the capture: tests/joins.rs joins wstap's records to its lines.
sc_nginx_request_id() {
    local F=18951 B=13951
    backend $B
    lab_nginx request-id "$NGX/request-id.conf" $F LISTEN=127.0.0.1:$F UPSTREAM=127.0.0.1:$B || return 1
    cap_start "tcp port $F or tcp port $B"
    client 30 ws ws://127.0.0.1:$F/ws --count 3 --messages 2 --close --group ws \
        --header 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
    client 30 http http://127.0.0.1:$F --req GET:/api/one --group http
    cap_stop
    # nginx writes a WebSocket's line when its connection closes: wait for all 4.
    local i
    for i in $(seq 50); do
        [ "$(wc -l <"$LAB_NGINX_DIR/logs/join.log" 2>/dev/null || echo 0)" -ge 4 ] && break
        sleep 0.1
    done
    cp "$LAB_NGINX_DIR/logs/join.log" "$CAP/$NAME.access.log"
    META=(proxy=nginx scenario="healthy config plus proxy_set_header X-Request-ID \$request_id; clients send a traceparent; nginx's access log logs \$remote_addr:\$remote_port \$request_id \$http_traceparent (kept as $NAME.access.log)"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B expected_kinds= optional_kinds=
        notes="Every handshake's remote_addr:remote_port and request_ids.x-request-id are those of one access log line.")
}

sc_nginx_bench() {
    local F=18131 B=13051
    backend $B
    lab_nginx bench "$NGX/healthy.conf" $F LISTEN=127.0.0.1:$F UPSTREAM=127.0.0.1:$B || return 1
    cap_start "tcp port $F or tcp port $B"
    client_bg 60 ws ws://127.0.0.1:$F/ws --count 12 --stagger 0.05 --messages 40 --msg-gap 0.02 --size 180 --pings 2 --close --group ws
    client_bg 60 http http://127.0.0.1:$F --req GET:/api/one --req GET:/api/two --req GET:/api/three --conns 4 --group http
    wait_clients
    cap_stop
    META=(proxy=nginx scenario="benchmark template: healthy config, 12 staggered sessions of 40 echoed 180-byte messages + 2 pings + close 1000, and 4 keep-alive connections of plain requests"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B expected_kinds= optional_kinds=
        notes="Multiplied with remapped addresses by bench/run.sh to build the large benchmark capture.")
}

sc_nginx_bench_uncompressed() {
    local F=18132 B=13052
    backend $B
    lab_nginx bench-uncompressed "$NGX/healthy.conf" $F LISTEN=127.0.0.1:$F UPSTREAM=127.0.0.1:$B || return 1
    cap_start "tcp port $F or tcp port $B"
    client_bg 60 ws ws://127.0.0.1:$F/ws --count 12 --stagger 0.05 --messages 40 --msg-gap 0.02 --size 200 --no-compression --pings 2 --close --group ws
    client_bg 60 http http://127.0.0.1:$F --req GET:/api/one --req GET:/api/two --req GET:/api/three --conns 4 --group http
    wait_clients
    cap_stop
    META=(proxy=nginx scenario="benchmark template of the reference shape: as nginx-bench, 200-byte messages without permessage-deflate (average packet ~230 bytes, the shape of the issue's reference capture)"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B expected_kinds= optional_kinds=
        notes="Multiplied with remapped addresses by bench/run.sh (second shape).")
}

sc_caddy_healthy() {
    local F=18112 B=13032
    backend $B
    lab_caddy healthy "$LAB/caddy/healthy.Caddyfile" $F LISTEN=127.0.0.1:$F UPSTREAM=127.0.0.1:$B || return 1
    cap_start "tcp port $F or tcp port $B"
    client 30 ws ws://127.0.0.1:$F/ws --count 2 --messages 3 --pings 1 --close --group ws
    client 30 http http://127.0.0.1:$F --req GET:/api/one --req GET:/api/two --group http
    cap_stop
    META=(proxy=caddy scenario="caddy 2.6 reverse_proxy, default settings: WebSocket upgrades forwarded by caddy itself; 2 sessions with messages+ping+close 1000, 2 keep-alive plain requests"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B expected_kinds= optional_kinds=
        notes="caddy adds its own Server header beside the backend's on every response (two Server headers), and X-Forwarded-For/-Proto upstream; it forwards header names in Go's canonical case (Sec-Websocket-Key).")
}

sc_caddy_stripped() {
    local F=18113 B=13033
    backend $B
    lab_caddy stripped "$LAB/caddy/stripped.Caddyfile" $F LISTEN=127.0.0.1:$F UPSTREAM=127.0.0.1:$B || return 1
    cap_start "tcp port $F or tcp port $B"
    client 30 ws ws://127.0.0.1:$F/ws --count 2 --messages 3 --close --group ws
    client 30 ws ws://127.0.0.1:$F/other --count 1 --messages 3 --close --group other
    cap_stop
    META=(proxy=caddy scenario="caddy reverse_proxy with 'header_up -Upgrade' on /ws (a hardening snippet); /other proxied untouched"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B
        expected_kinds=upgrade-stripped optional_kinds=
        notes="/ws: caddy forwards Connection: Upgrade without Upgrade; the backend answers 426, relayed to the client. /other: 101, works.")
}

sc_nginx_default() {
    local F=18082 B=13002
    backend $B
    lab_nginx default "$NGX/default.conf" $F LISTEN=127.0.0.1:$F UPSTREAM=127.0.0.1:$B || return 1
    cap_start "tcp port $F or tcp port $B"
    client 30 ws ws://127.0.0.1:$F/ws --count 2 --messages 3 --close
    cap_stop
    META=(proxy=nginx scenario="proxy_pass only: HTTP/1.0 upstream, Upgrade/Connection dropped"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B
        expected_kinds=upstream-http10,upgrade-stripped optional_kinds=
        notes="Backend (websockets) answers the HTTP/1.0 request with 505 HTTP Version Not Supported; nginx relays it.")
}

sc_nginx_upgrade_only() {
    local F=18083 B=13003
    backend $B
    lab_nginx upgrade-only "$NGX/upgrade-only.conf" $F LISTEN=127.0.0.1:$F UPSTREAM=127.0.0.1:$B || return 1
    cap_start "tcp port $F or tcp port $B"
    client 30 ws ws://127.0.0.1:$F/ws --count 2 --messages 3 --close
    cap_stop
    META=(proxy=nginx scenario="HTTP/1.1 + Upgrade forwarded, no Connection header set (nginx sends Connection: close)"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B
        expected_kinds=upgrade-stripped optional_kinds=
        notes="Upstream sees 'Upgrade: websocket' + 'Connection: close'; backend answers 426.")
}

sc_nginx_upgrade_mangled() {
    local F=18084 B=13004
    backend $B
    lab_nginx upgrade-mangled "$NGX/upgrade-mangled.conf" $F LISTEN=127.0.0.1:$F UPSTREAM=127.0.0.1:$B || return 1
    cap_start "tcp port $F or tcp port $B"
    client 30 ws ws://127.0.0.1:$F/ws --count 2 --messages 3 --close
    cap_stop
    META=(proxy=nginx scenario="typo: proxy_set_header Upgrade \$connection_upgrade (sends 'Upgrade: upgrade')"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B
        expected_kinds=upgrade-stripped optional_kinds=
        notes="Upstream sees 'Upgrade: upgrade' + 'Connection: upgrade'; backend answers 426 (invalid Upgrade header).")
}

sc_nginx_http10() {
    local F=18085 B=13005
    backend $B
    lab_nginx http10 "$NGX/http10.conf" $F LISTEN=127.0.0.1:$F UPSTREAM=127.0.0.1:$B || return 1
    cap_start "tcp port $F or tcp port $B"
    client 30 ws ws://127.0.0.1:$F/ws --count 2 --messages 3 --close
    cap_stop
    META=(proxy=nginx scenario="Upgrade/Connection set but proxy_http_version 1.0"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B
        expected_kinds=upstream-http10 optional_kinds=
        notes="Upstream request line is HTTP/1.0 even though it carries Upgrade: websocket / Connection: upgrade; backend answers 505.")
}

sc_nginx_hardcoded_connection() {
    local F=18086 B=13006
    backend $B
    lab_nginx hardcoded "$NGX/hardcoded-connection.conf" $F LISTEN=127.0.0.1:$F UPSTREAM=127.0.0.1:$B || return 1
    cap_start "tcp port $F or tcp port $B"
    client 30 http http://127.0.0.1:$F --req GET:/api/one --req GET:/api/two --req GET:/api/three --req GET:/api/four --group http
    client 30 ws ws://127.0.0.1:$F/ws --count 1 --messages 3 --close --group ws
    cap_stop
    META=(proxy=nginx scenario="proxy_set_header Connection \"upgrade\" hard-coded on a location serving WebSocket and plain HTTP; 4 plain keep-alive requests + 1 WebSocket"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B
        expected_kinds=connection-upgrade-on-plain optional_kinds=
        notes="Each plain request reaches the upstream with 'Connection: upgrade' and no Upgrade header (HTTP/1.1). The backend still answers 200 (and closes); the WebSocket works.")
}

sc_nginx_wrong_location() {
    local F=18087 B=13007
    backend $B
    lab_nginx wrong-location "$NGX/wrong-location.conf" $F LISTEN=127.0.0.1:$F UPSTREAM=127.0.0.1:$B || return 1
    cap_start "tcp port $F or tcp port $B"
    client 30 ws ws://127.0.0.1:$F/app/ws --count 1 --messages 3 --close --group app-ws
    client 30 ws ws://127.0.0.1:$F/ws --count 1 --messages 3 --close --group ws
    cap_stop
    META=(proxy=nginx scenario="location /ws is correct, client uses /app/ws which falls into a plain 'location /'"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B
        expected_kinds=upstream-http10,upgrade-stripped optional_kinds=
        notes="/app/ws: upstream gets HTTP/1.0 without Upgrade -> 505 relayed. /ws (control session): 101, works.")
}

sc_nginx_idle_60() {
    local F=18088 B=13008
    backend $B
    lab_nginx idle-60 "$NGX/idle.conf" $F LISTEN=127.0.0.1:$F UPSTREAM=127.0.0.1:$B READ_TIMEOUT_LINE="" || return 1
    cap_start "tcp port $F or tcp port $B"
    CLIENT_PIDS=()
    client_bg 100 ws ws://127.0.0.1:$F/ws --count 3 --messages 1 --idle 90 --group idle
    client_bg 100 ws ws://127.0.0.1:$F/ws --count 1 --messages 1 --ping-interval 20 --idle 70 --close --group heartbeat
    wait_clients
    cap_stop
    META=(proxy=nginx scenario="default proxy_read_timeout (60s): 3 idle sessions, 1 session with 20s client pings closed cleanly at ~70s"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B
        expected_kinds=idle-timeout-close optional_kinds=
        notes="nginx closes both TCP connections of each idle session 60s after the last upstream read, without a Close frame (client sees 1006).")
}

sc_nginx_idle_short() {
    local F=18089 B=13009
    backend $B
    lab_nginx idle-short "$NGX/idle.conf" $F LISTEN=127.0.0.1:$F UPSTREAM=127.0.0.1:$B READ_TIMEOUT_LINE="proxy_read_timeout 5s;" || return 1
    cap_start "tcp port $F or tcp port $B"
    CLIENT_PIDS=()
    client_bg 40 ws ws://127.0.0.1:$F/ws --count 1 --messages 1 --idle 15 --group idle
    client_bg 40 ws ws://127.0.0.1:$F/ws --count 1 --messages 1 --ping-interval 2 --idle 12 --close --group heartbeat
    wait_clients
    cap_stop
    META=(proxy=nginx scenario="proxy_read_timeout 5s: 1 idle session, 1 session with 2s client pings that survives and closes cleanly"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B
        expected_kinds=idle-timeout-close optional_kinds=
        notes="Idle session cut ~5s after its last upstream read (1006 at the client).")
}

sc_nginx_heartbeat_race() {
    local F=18090 B=13010
    backend $B
    lab_nginx heartbeat-race "$NGX/idle.conf" $F LISTEN=127.0.0.1:$F UPSTREAM=127.0.0.1:$B READ_TIMEOUT_LINE="proxy_read_timeout 5s;" || return 1
    cap_start "tcp port $F or tcp port $B"
    client 40 ws ws://127.0.0.1:$F/ws --count 3 --stagger 0.3 --messages 1 --ping-interval 5 --ping-jitter 0.05 --idle 20 --close
    cap_stop
    META=(proxy=nginx scenario="proxy_read_timeout 5s and client pings every 5s (== timeout); 3 sessions for ~20s"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B
        expected_kinds=heartbeat-race optional_kinds=idle-timeout-close
        notes="The heartbeat period equals the proxy timeout, so whether a ping arrives before the timer fires is a matter of milliseconds.")
}

sc_nginx_backend_down() {
    local F=18091 B=13011
    lab_wait_free $B 5 || return 1
    lab_nginx backend-down "$NGX/backend-fail.conf" $F LISTEN=127.0.0.1:$F UPSTREAM=127.0.0.1:$B || return 1
    cap_start "tcp port $F or tcp port $B"
    client 30 ws ws://127.0.0.1:$F/ws --count 2 --messages 3 --close
    cap_stop
    META=(proxy=nginx scenario="upstream port has no listener (connection refused)"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B
        expected_kinds=upstream-connect-failed optional_kinds=
        notes="nginx's SYN to the upstream is answered by RST; client gets 502 Bad Gateway from nginx.")
}

sc_nginx_backend_hang() {
    local F=18092 B=13012
    backend $B --mode hang
    lab_nginx backend-hang "$NGX/backend-fail.conf" $F LISTEN=127.0.0.1:$F UPSTREAM=127.0.0.1:$B || return 1
    cap_start "tcp port $F or tcp port $B"
    client 30 ws ws://127.0.0.1:$F/ws --count 1 --messages 3 --close
    cap_stop
    META=(proxy=nginx scenario="backend accepts and reads but never answers; proxy_read_timeout 3s"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B
        expected_kinds=upstream-timeout optional_kinds=
        notes="Client gets 504 Gateway Time-out after ~3s; nginx then closes the upstream connection.")
}

sc_nginx_backend_close() {
    local F=18093 B=13013
    backend $B --mode close
    lab_nginx backend-close "$NGX/backend-fail.conf" $F LISTEN=127.0.0.1:$F UPSTREAM=127.0.0.1:$B || return 1
    cap_start "tcp port $F or tcp port $B"
    client 30 ws ws://127.0.0.1:$F/ws --count 1 --messages 3 --close
    cap_stop
    META=(proxy=nginx scenario="backend reads the request and closes without answering"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B
        expected_kinds=upstream-premature-close optional_kinds=
        notes="nginx: 'upstream prematurely closed connection while reading response header'; client gets 502.")
}

sc_nginx_backend_crash() {
    local F=18111 B=13031
    backend $B
    local bpid=$LAB_LAST_PID
    lab_nginx backend-crash "$NGX/healthy.conf" $F LISTEN=127.0.0.1:$F UPSTREAM=127.0.0.1:$B || return 1
    cap_start "tcp port $F or tcp port $B"
    CLIENT_PIDS=()
    client_bg 30 ws ws://127.0.0.1:$F/ws --count 1 --messages 3 --idle 20 --close
    sleep 2.5
    echo "  kill -KILL backend ($bpid), 2.5 s into the session"
    kill -KILL "$bpid" 2>/dev/null
    wait_clients
    cap_stop
    META=(proxy=nginx scenario="healthy proxy; one session, the backend process is killed (SIGKILL) 2.5 s in, mid-session"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B
        expected_kinds=abnormal-close optional_kinds=
        notes="The kernel closes the dead backend's socket (FIN); nginx closes the client connection without a Close frame. The client sees 1006 about 2 s after its last message, far from any timeout boundary.")
}

sc_nginx_origin_403() {
    local F=18094 B=13014
    backend $B --origin-allow http://good.example
    lab_nginx origin-403 "$NGX/healthy.conf" $F LISTEN=127.0.0.1:$F UPSTREAM=127.0.0.1:$B || return 1
    cap_start "tcp port $F or tcp port $B"
    client 30 ws ws://127.0.0.1:$F/ws --count 1 --messages 3 --close --origin http://evil.example --group bad-origin
    client 30 ws ws://127.0.0.1:$F/ws --count 1 --messages 3 --close --origin http://good.example --group good-origin
    cap_stop
    META=(proxy=nginx scenario="healthy proxy; backend only allows Origin http://good.example"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B
        expected_kinds=handshake-rejected optional_kinds=
        notes="Upstream request is a correct upgrade; the backend itself answers 403 for Origin http://evil.example. The good-origin session works (101, close 1000).")
}

sc_nginx_bad_accept() {
    local F=18095 B=13015
    echo "  badaccept.py --port $B"
    lab_badaccept $B
    lab_nginx bad-accept "$NGX/healthy.conf" $F LISTEN=127.0.0.1:$F UPSTREAM=127.0.0.1:$B || return 1
    cap_start "tcp port $F or tcp port $B"
    client 30 ws ws://127.0.0.1:$F/ws --count 1 --messages 3 --close
    cap_stop
    META=(proxy=nginx scenario="healthy proxy in front of a backend that answers 101 with a wrong Sec-WebSocket-Accept"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B
        expected_kinds=bad-accept optional_kinds=
        notes="nginx relays the 101 as is; the client rejects the handshake (InvalidHeaderValue Sec-WebSocket-Accept) and drops the TCP connection.")
}

sc_nginx_no_proxy_location() {
    local F=18096 B=13016
    backend $B
    lab_nginx no-proxy "$NGX/no-proxy-location.conf" $F LISTEN=127.0.0.1:$F UPSTREAM=127.0.0.1:$B || return 1
    cap_start "tcp port $F or tcp port $B"
    client 30 ws ws://127.0.0.1:$F/static/ws --count 1 --messages 3 --close --group static-ws
    client 30 ws ws://127.0.0.1:$F/ws --count 1 --messages 3 --close --group ws
    cap_stop
    META=(proxy=nginx scenario="the client's path (/static/ws) hits 'location /static { return 404; }' which never proxies"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B
        expected_kinds=upgrade-failed optional_kinds=
        notes="/static/ws: 404 from nginx itself, no upstream connection at all. /ws (control session): 101 and works, so the upstream hop is present in the capture.")
}

sc_nginx_mass_close() {
    local F=18097 B=13017
    backend $B
    lab_nginx mass-close "$NGX/healthy.conf" $F LISTEN=127.0.0.1:$F UPSTREAM=127.0.0.1:$B MAIN_EXTRA="worker_shutdown_timeout 1s;" || return 1
    local ngpid=$LAB_LAST_PID
    cap_start "tcp port $F or tcp port $B"
    CLIENT_PIDS=()
    client_bg 40 ws ws://127.0.0.1:$F/ws --count 4 --stagger 0.1 --messages 2 --idle 30
    sleep 3
    echo "  nginx -s quit   (worker_shutdown_timeout 1s)"
    nginx -p "$LAB_NGINX_DIR" -c "$LAB_NGINX_DIR/nginx.conf" -s quit 2>>"$LAB_NGINX_DIR/signal.log"
    local i; for ((i = 0; i < 100; i++)); do kill -0 "$ngpid" 2>/dev/null || break; sleep 0.1; done
    wait_clients
    cap_stop
    META=(proxy=nginx scenario="4 open sessions, then 'nginx -s quit' (graceful) with worker_shutdown_timeout 1s"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B
        expected_kinds=mass-close optional_kinds=
        notes="Graceful quit: nginx stops listening, waits worker_shutdown_timeout (1s), then closes all 4 upgraded connections on both hops at once, no Close frames (client sees 1006).")
}

sc_nginx_tls_front() {
    local F=18098 B=13018
    backend $B
    local d=$LAB_RUN/nginx-tls-front
    mkdir -p "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
        -keyout "$d/key.pem" -out "$d/cert.pem" >/dev/null 2>&1 || return 1
    lab_nginx tls-front "$NGX/tls-front.conf" $F LISTEN=127.0.0.1:$F UPSTREAM=127.0.0.1:$B || return 1
    cap_start "tcp port $F or tcp port $B"
    client 30 ws wss://127.0.0.1:$F/ws --insecure --count 2 --messages 3 --close --group ws
    client 30 http https://127.0.0.1:$F --req GET:/api/one --group http
    cap_stop
    META=(proxy=nginx scenario="TLS (self-signed) on the front, plain HTTP upstream, no X-Forwarded-Proto"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B
        expected_kinds=forwarded-proto-missing optional_kinds=
        notes="Client hop is TLS (unreadable without keys); only the upstream hop's HTTP is readable. Upstream requests carry X-Forwarded-For but no X-Forwarded-Proto. WebSockets work.")
}

sc_nginx_ipv6() {
    local F=18099 B=13019
    backend $B --host ::1
    lab_nginx ipv6 "$NGX/healthy.conf" $F "LISTEN=[::1]:$F" "UPSTREAM=[::1]:$B" || return 1
    cap_start "tcp port $F or tcp port $B"
    client 30 ws "ws://[::1]:$F/ws" --count 2 --messages 3 --pings 1 --close --group ws
    client 30 http "http://[::1]:$F" --req GET:/api/one --req GET:/api/two --group http
    cap_stop
    META=(proxy=nginx scenario="healthy config over IPv6 loopback"
        "front=[::1]:$F" "upstreams=[::1]:$B" expected_kinds= optional_kinds=
        notes="Same as nginx-healthy, all on ::1.")
}

any_healthy() { # $1 = tcpdump -y link type (LINUX_SLL or LINUX_SLL2)
    local F=$2 B=$3
    backend $B
    lab_nginx "$NAME" "$NGX/healthy.conf" $F LISTEN=127.0.0.1:$F UPSTREAM=127.0.0.1:$B || return 1
    cap_start "tcp port $F or tcp port $B" any -y "$1"
    client 30 ws ws://127.0.0.1:$F/ws --count 2 --messages 3 --pings 1 --close --group ws
    client 30 http http://127.0.0.1:$F --req GET:/api/one --req GET:/api/two --group http
    cap_stop
}

sc_nginx_any() {
    any_healthy LINUX_SLL 18100 13020 || return 1
    META=(proxy=nginx scenario="healthy config captured with tcpdump -i any -y LINUX_SLL (Linux cooked capture v1)"
        front=127.0.0.1:18100 upstreams=127.0.0.1:13020 linktype=LINUX_SLL expected_kinds= optional_kinds=
        notes="Link type LINUX_SLL (113). Note: tcpdump 4.99/libpcap 1.10 default to LINUX_SLL2 on -i any, so v1 has to be asked for with -y LINUX_SLL. Loopback packets appear once each (no In/Out duplicates).")
}

sc_nginx_any_sll2() {
    any_healthy LINUX_SLL2 18101 13021 || return 1
    META=(proxy=nginx scenario="healthy config captured with tcpdump -i any -y LINUX_SLL2"
        front=127.0.0.1:18101 upstreams=127.0.0.1:13021 linktype=LINUX_SLL2 expected_kinds= optional_kinds=
        notes="Link type LINUX_SLL2 (276), which is also what plain 'tcpdump -i any' produces with tcpdump 4.99/libpcap 1.10.")
}

socketio() { # $1 = ok|stuck
    local F=$2 B=$3 lines=""
    if [ "$1" = ok ]; then
        lines=$'proxy_http_version 1.1;\n        proxy_set_header Upgrade $http_upgrade;\n        proxy_set_header Connection $connection_upgrade;'
    fi
    echo "  sio_server.py --port $B"
    lab_sio_server $B
    lab_nginx "$NAME" "$NGX/socketio.conf" $F LISTEN=127.0.0.1:$F UPSTREAM=127.0.0.1:$B UPGRADE_LINES="$lines" || return 1
    cap_start "tcp port $F or tcp port $B"
    sio_client 40 http://127.0.0.1:$F --messages 3 --wait 2
    cap_stop
}

sc_nginx_socketio_ok() {
    socketio ok 18102 13022 || return 1
    META=(proxy=nginx scenario="python-socketio (aiohttp) behind nginx with the WebSocket headers"
        front=127.0.0.1:18102 upstreams=127.0.0.1:13022 expected_kinds= optional_kinds=
        notes="Engine.IO starts with long-polling and upgrades to websocket (101).")
}

sc_nginx_socketio_stuck() {
    socketio stuck 18103 13023 || return 1
    META=(proxy=nginx scenario="python-socketio (aiohttp) behind nginx with proxy_pass only (no upgrade headers, HTTP/1.0 upstream)"
        front=127.0.0.1:18103 upstreams=127.0.0.1:13023
        expected_kinds=socketio-no-upgrade,upgrade-stripped,upstream-http10 optional_kinds=
        notes="The websocket upgrade request of Engine.IO fails; the client silently stays on long-polling (everything still works, slower).")
}

sc_haproxy_healthy() {
    local F=18104 B=13024
    backend $B
    lab_haproxy healthy "$HAP/healthy.cfg" $F FRONT=127.0.0.1:$F UPSTREAM=127.0.0.1:$B || return 1
    cap_start "tcp port $F or tcp port $B"
    client 30 ws ws://127.0.0.1:$F/ws --count 2 --messages 3 --pings 1 --close --group ws
    client 30 http http://127.0.0.1:$F --req GET:/api/one --req GET:/api/two --group http
    cap_stop
    META=(proxy=haproxy scenario="haproxy 2.6 mode http, defaults (WebSocket works out of the box), option forwardfor"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B expected_kinds= optional_kinds=
        notes="haproxy forwards 'Connection: upgrade' + 'Upgrade: websocket' over HTTP/1.1.")
}

sc_haproxy_idle() {
    local F=18105 B=13025
    backend $B
    lab_haproxy idle "$HAP/idle.cfg" $F FRONT=127.0.0.1:$F UPSTREAM=127.0.0.1:$B || return 1
    cap_start "tcp port $F or tcp port $B"
    CLIENT_PIDS=()
    client_bg 40 ws ws://127.0.0.1:$F/ws --count 1 --messages 1 --idle 15 --group idle
    client_bg 40 ws ws://127.0.0.1:$F/ws --count 1 --messages 1 --ping-interval 2 --idle 12 --close --group heartbeat
    wait_clients
    cap_stop
    META=(proxy=haproxy scenario="timeout tunnel 5s: 1 idle session, 1 session with 2s client pings"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B
        expected_kinds=idle-timeout-close optional_kinds=
        notes="haproxy closes both sides of the idle tunnel after 5s without a Close frame; the heartbeat session survives and closes with 1000.")
}

sc_haproxy_stripped() {
    local F=18106 B=13026
    backend $B
    lab_haproxy stripped "$HAP/stripped.cfg" $F FRONT=127.0.0.1:$F UPSTREAM=127.0.0.1:$B STRIP_RULE="http-request del-header Upgrade" || return 1
    cap_start "tcp port $F or tcp port $B"
    client 30 ws ws://127.0.0.1:$F/ws --count 2 --messages 3 --close
    cap_stop
    META=(proxy=haproxy scenario="'http-request del-header Upgrade' in the frontend"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B
        expected_kinds=upgrade-stripped optional_kinds=
        notes="Upstream request keeps 'Connection: upgrade' but has no Upgrade header; backend answers 426.")
}

sc_apache_healthy() {
    local F=18107 B=13027
    backend $B
    lab_apache healthy "$APA/healthy.conf" $F FRONT=127.0.0.1:$F UPSTREAM=127.0.0.1:$B || return 1
    cap_start "tcp port $F or tcp port $B"
    client 30 ws ws://127.0.0.1:$F/ws --count 2 --messages 3 --pings 1 --close --group ws
    client 30 http http://127.0.0.1:$F --req GET:/api/one --req GET:/api/two --group http
    cap_stop
    META=(proxy=apache scenario="apache 2.4 mod_proxy + mod_proxy_http + mod_proxy_wstunnel, ProxyPass /ws ws://..."
        front=127.0.0.1:$F upstreams=127.0.0.1:$B expected_kinds= optional_kinds=
        notes="Apache adds X-Forwarded-For/-Host/-Server (no X-Forwarded-Proto) - the front is plain HTTP, so no forwarded-proto finding is expected.")
}

sc_apache_stripped() {
    local F=18108 B=13028
    backend $B
    lab_apache stripped "$APA/stripped.conf" $F FRONT=127.0.0.1:$F UPSTREAM=127.0.0.1:$B || return 1
    cap_start "tcp port $F or tcp port $B"
    client 30 ws ws://127.0.0.1:$F/ws --count 2 --messages 3 --close --group ws
    client 30 http http://127.0.0.1:$F --req GET:/api/one --group http
    cap_stop
    META=(proxy=apache scenario="mod_proxy_http only (no mod_proxy_wstunnel, no upgrade=websocket): ProxyPass / http://..."
        front=127.0.0.1:$F upstreams=127.0.0.1:$B
        expected_kinds=upgrade-stripped optional_kinds=
        notes="Upstream request is HTTP/1.1 with 'Connection: Keep-Alive' and no Upgrade; backend answers 426, relayed by Apache.")
}

sc_chain_haproxy_nginx() {
    local F=18109 M=18209 B=13029
    backend $B
    lab_nginx chain "$NGX/healthy.conf" $M LISTEN=127.0.0.1:$M UPSTREAM=127.0.0.1:$B || return 1
    lab_haproxy chain "$HAP/healthy.cfg" $F FRONT=127.0.0.1:$F UPSTREAM=127.0.0.1:$M || return 1
    cap_start "tcp port $F or tcp port $M or tcp port $B"
    client 30 ws ws://127.0.0.1:$F/ws --count 2 --messages 3 --pings 1 --close --group ws
    client 30 http http://127.0.0.1:$F --req GET:/api/one --req GET:/api/two --group http
    cap_stop
    META=(proxy=haproxy+nginx scenario="client -> haproxy (healthy) -> nginx (healthy) -> backend: three hops"
        front=127.0.0.1:$F,127.0.0.1:$M upstreams=127.0.0.1:$B expected_kinds= optional_kinds=
        notes="front[0] is haproxy (client-facing), front[1] is nginx (haproxy's upstream). X-Forwarded-For grows to '127.0.0.1, 127.0.0.1' at the backend.")
}

sc_nginx_pipelined_plain() {
    local F=18110 B=13030
    backend $B
    lab_nginx pipelined "$NGX/healthy.conf" $F LISTEN=127.0.0.1:$F UPSTREAM=127.0.0.1:$B || return 1
    cap_start "tcp port $F or tcp port $B"
    client 30 http http://127.0.0.1:$F --pipeline --req GET:/api/one --req GET:/chunked --req HEAD:/api/head --req GET:/api/last --group pipelined
    client 30 http http://127.0.0.1:$F --req GET:/api/a --req HEAD:/api/b --req GET:/chunked/c --group keepalive
    cap_stop
    META=(proxy=nginx scenario="plain HTTP only: one connection with 4 pipelined requests (incl. chunked response and HEAD), one keep-alive connection with 3 sequential requests"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B expected_kinds= optional_kinds=
        notes="No WebSocket. nginx opens one upstream connection per request (Connection: close upstream); responses to the client are keep-alive. The chunked response is passed through chunked.")
}

# ----------------------------------------------------------------------------
# precision scenarios (issue 10): ports 18221+ / 13221+
# ----------------------------------------------------------------------------
sc_nginx_timeout_race() {
    local F=18221 B=13221 E=13222
    backend $B --mode hang
    backend $E --mode slow --delay 0.4
    lab_nginx timeout-race "$NGX/timeout-race.conf" $F LISTEN=127.0.0.1:$F UPSTREAM=127.0.0.1:$B ERRPAGE=127.0.0.1:$E || return 1
    cap_start "tcp port $F or tcp port $B"
    client 30 ws ws://127.0.0.1:$F/ws --count 2 --stagger 0.5 --messages 1 --close
    cap_stop
    META=(proxy=nginx scenario="backend accepts the upgrade request and never answers; proxy_read_timeout 2s; error_page 504 rendered by a slow page service, so the backend's FIN lands before the 504"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B
        expected_kinds=upstream-timeout optional_kinds=
        notes="nginx closes the upstream connection first (its FIN at 2.0 s), the hanging backend answers with its FIN 1 ms later, and the client gets 504 ~0.4 s after that (the error page comes from 127.0.0.1:$E, not in the capture). Who closed first decides: nginx gave up, the backend did not close on its own.")
}

sc_nginx_http10_upstream_only() {
    local F=18223 B=13223
    backend $B
    lab_nginx http10-upstream-only "$NGX/default.conf" $F LISTEN=127.0.0.1:$F UPSTREAM=127.0.0.1:$B || return 1
    cap_start "tcp port $B"
    client 30 ws ws://127.0.0.1:$F/ws --count 2 --messages 3 --close
    cap_stop
    META=(proxy=nginx scenario="nginx-default's configuration (proxy_pass only) captured on the backend port only: the proxy->backend hop alone"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B
        expected_kinds=upgrade-headers-missing,upstream-http10 optional_kinds=
        notes="Filter 'tcp port $B': the client hop is not in the capture (as on the backend host). The forwarded request is 'GET /ws HTTP/1.0' with Sec-WebSocket-Key but without Upgrade, and 'Connection: close'; the backend answers 505.")
}

sc_nginx_tls_busy() {
    local F=18224 B=13224
    backend $B
    self_signed "$LAB_RUN/nginx-tls-busy" || return 1
    lab_nginx tls-busy "$NGX/tls-healthy.conf" $F LISTEN=127.0.0.1:$F UPSTREAM=127.0.0.1:$B || return 1
    cap_start "tcp port $F or tcp port $B"
    CLIENT_PIDS=()
    client_bg 40 ws wss://127.0.0.1:$F/ws --insecure --count 4 --stagger 0.15 --messages 3 --close --group ws
    client_bg 40 http https://127.0.0.1:$F --req GET:/api/one --req GET:/api/two --req GET:/api/three --conns 2 --group http
    wait_clients
    cap_stop
    META=(proxy=nginx scenario="TLS front (self-signed, complete WebSocket config with X-Forwarded-Proto); 4 staggered wss sessions and 2 keep-alive https connections of plain requests at the same time"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B expected_kinds= optional_kinds=
        notes="Only the upstream hop is readable. Each upstream request follows one client connection's application-data record: the pairing must be one to one (no client connection used twice, none left out).")
}

sc_nginx_socketio_prefix() {
    local F=18226 B=13226
    echo "  sio_server.py --port $B"
    lab_sio_server $B
    lab_nginx socketio-prefix "$NGX/socketio-prefix.conf" $F LISTEN=127.0.0.1:$F UPSTREAM=127.0.0.1:$B || return 1
    cap_start "tcp port $F or tcp port $B"
    CLIENT_PIDS=()
    node_sio_client_bg 40 http://127.0.0.1:$F --path /rt/ --messages 3 --wait 2 --group a
    sleep 0.5
    node_sio_client_bg 40 http://127.0.0.1:$F --path /rt/ --messages 3 --wait 2 --group b
    wait_clients
    cap_stop
    META=(proxy=nginx scenario="Socket.IO published under /rt/: location /rt/ { proxy_pass http://backend/socket.io/; + WebSocket headers }; 2 JavaScript socket.io-client sessions (polling, then the websocket probe on a connection of its own)"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B expected_kinds= optional_kinds=
        notes="The client hop says /rt/?EIO=4&transport=..., the upstream hop /socket.io/?EIO=4&transport=... (same query). Both clients upgrade to websocket (101 on both hops).")
}

sc_caddy_reload() {
    local F=18227 A=18228 B=13227
    backend $B
    lab_caddy reload "$LAB/caddy/reload.Caddyfile" $F LISTEN=127.0.0.1:$F UPSTREAM=127.0.0.1:$B ADMIN=127.0.0.1:$A || return 1
    local dir=$LAB_RUN/caddy-reload
    cap_start "tcp port $F or tcp port $B"
    CLIENT_PIDS=()
    client_bg 40 ws ws://127.0.0.1:$F/ws --count 3 --stagger 0.2 --messages 2 --idle 10 --close
    sleep 3
    echo "  caddy reload --force   (admin endpoint 127.0.0.1:$A)"
    HOME=$dir XDG_DATA_HOME=$dir/data XDG_CONFIG_HOME=$dir/config timeout 10 \
        caddy reload --config "$dir/Caddyfile" --adapter caddyfile --address 127.0.0.1:$A --force >>"$dir/reload.log" 2>&1 || return 1
    wait_clients
    cap_stop
    META=(proxy=caddy scenario="3 open sessions through caddy 2.6, then 'caddy reload --force' (config reload)"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B
        expected_kinds=proxy-protocol-violation,mass-close optional_kinds=
        notes="On reload caddy closes every upgraded connection itself: close 1001 (going away) to the client (masked correctly: none needed) and to the backend UNMASKED (RFC 6455 5.1: caddy is the client on that leg), and the backend answers 1002 'incorrect masking'. The clients see 1001 from the proxy; neither end started the close.")
}

lighttpd_proxy() { # $1 = healthy|stripped
    local F=$2 B=$3 line=""
    [ "$1" = healthy ] && line='proxy.header = ("upgrade" => "enable")'
    backend $B
    lab_lighttpd "$NAME" "$LAB/lighttpd/proxy.conf" $F PORT=$F UPSTREAM_HOST=127.0.0.1 UPSTREAM_PORT=$B UPGRADE_LINE="$line" || return 1
    cap_start "tcp port $F or tcp port $B"
    client 30 ws ws://127.0.0.1:$F/ws --count 2 --messages 3 --pings 1 --close --group ws
    client 30 http http://127.0.0.1:$F --req GET:/api/one --req GET:/api/two --group http
    cap_stop
}

sc_lighttpd_healthy() {
    lighttpd_proxy healthy 18229 13229 || return 1
    META=(proxy=lighttpd scenario="lighttpd 1.4 mod_proxy with proxy.header = (\"upgrade\" => \"enable\"); 2 sessions with messages+ping+close 1000, 2 keep-alive plain requests"
        front=127.0.0.1:18229 upstreams=127.0.0.1:13229 expected_kinds= optional_kinds=
        notes="lighttpd forwards the upgrade over HTTP/1.1 with 'Connection: close, upgrade' and adds X-Forwarded-For, X-Host, X-Forwarded-Host, X-Forwarded-Proto; it passes the backend's Server header through.")
}

sc_lighttpd_stripped() {
    lighttpd_proxy stripped 18230 13230 || return 1
    META=(proxy=lighttpd scenario="lighttpd 1.4 mod_proxy without proxy.header upgrade (the default)"
        front=127.0.0.1:18230 upstreams=127.0.0.1:13230
        expected_kinds=upgrade-stripped optional_kinds=
        notes="Without the upgrade option lighttpd forwards the request as a plain one (HTTP/1.1, no Upgrade, 'Connection: close'); the backend answers 426, relayed to the client.")
}

sc_direct_bad_accept() {
    local B=13231
    echo "  badaccept.py --port $B --lower-case"
    lab_badaccept $B --lower-case
    cap_start "tcp port $B"
    client 30 ws ws://127.0.0.1:$B/ws --count 1 --messages 3 --close
    cap_stop
    META=(proxy=none scenario="no proxy: the client connects straight to a server that answers 101 with a wrong Sec-WebSocket-Accept, lower-case header names and no Server header"
        front= upstreams=127.0.0.1:$B
        expected_kinds=bad-accept optional_kinds=
        notes="A direct client->server capture: no proxy may be named (lower-case header names without a Server header are how many servers answer, not a sign of haproxy).")
}

# ----------------------------------------------------------------------------
# TLS fronts with session keys (issue 13). Ports: fronts 18401-18420, backends
# 13401-13420. Each capture's key log is committed as captures/NAME.keys (test
# keys of a throwaway lab CA); a lab CA and a server certificate it signed are
# made per scenario. Clients: a Node `ws` client (keylog event), curl
# (SSLKEYLOGFILE), headless chromium (SSLKEYLOGFILE), openssl s_client
# (-keylogfile; it sends a TLS 1.3 KeyUpdate); or haproxy's own key log.
# ----------------------------------------------------------------------------
TLS_NODE=$LAB/node

tls_deps() {
    local pkgs=()
    command -v node >/dev/null || pkgs+=(nodejs npm)
    command -v curl >/dev/null || pkgs+=(curl)
    command -v chromium >/dev/null || pkgs+=(chromium)
    if ((${#pkgs[@]})); then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/dev/null ||
            { echo "record.sh: apt-get install ${pkgs[*]} failed" >&2; return 1; }
    fi
    if [ ! -d "$TLS_NODE/node_modules/ws" ]; then
        (cd "$TLS_NODE" && npm ci --no-audit --no-fund --silent) ||
            { echo "record.sh: npm ci (ws) failed" >&2; return 1; }
    fi
}

# tls_certs DIR: a lab CA (EC P-256) and a server certificate (RSA 2048, so
# both ECDHE-RSA and TLS 1.3 suites are possible) for localhost/127.0.0.1.
tls_certs() {
    local d=$1
    mkdir -p "$d/www"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3 \
        -subj "/CN=wstap lab CA" -keyout "$d/ca.key" -out "$d/ca.pem" >/dev/null 2>&1 &&
        openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout "$d/server.key" -out "$d/server.csr" >/dev/null 2>&1 &&
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$d/ext" &&
        openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 3 \
            -extfile "$d/ext" -out "$d/server.pem" >/dev/null 2>&1 &&
        cat "$d/server.pem" "$d/server.key" >"$d/server-full.pem" &&
        cp "$LAB/chromium/page.html" "$d/www/page.html"
}

# node_ws SECS URL ARGS...: the Node ws client; keys appended to $KEYS
node_ws() {
    local t=$1; shift
    echo "  node ws_client.js $*"
    NODE_PATH=$TLS_NODE/node_modules timeout -s INT "$t" node "$LAB/node/ws_client.js" "$@" \
        --keylog "$KEYS" --ca "$TLSDIR/ca.pem" --servername localhost >>"$OUT" 2>>"$OUT.stderr"
}
node_ws_bg() {
    local t=$1; shift
    echo "  node ws_client.js $* &"
    NODE_PATH=$TLS_NODE/node_modules timeout -s INT "$t" node "$LAB/node/ws_client.js" "$@" \
        --keylog "$KEYS" --ca "$TLSDIR/ca.pem" --servername localhost >>"$OUT" 2>>"$OUT.stderr" &
    CLIENT_PIDS+=("$!")
}

# curl_https BASE PATH... [-- CURL OPTIONS]: keep-alive requests on one
# connection, keys to $KEYS (SSLKEYLOGFILE); one "http" line per request.
curl_https() {
    local base=$1; shift
    local paths=() extra=() p urls=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do paths+=("$1"); shift; done
    [ "${1:-}" = -- ] && shift && extra=("$@")
    for p in "${paths[@]}"; do urls+=("$base$p" -o /dev/null); done
    echo "  SSLKEYLOGFILE=... curl ${extra[*]} $base ${paths[*]}"
    local codes
    local port=${base##*:}
    codes=$(SSLKEYLOGFILE=$KEYS timeout 20 curl -s --cacert "$TLSDIR/ca.pem" -A wstap-lab-curl \
        --resolve "localhost:$port:127.0.0.1" \
        -w '%{http_code}\n' "${extra[@]}" "${urls[@]}" 2>>"$OUT.stderr")
    local i=0 c
    for c in $codes; do
        [ $i -lt ${#paths[@]} ] || break
        printf '{"t": %s, "event": "http", "group": "curl", "conn": 0, "method": "GET", "path": "%s", "status": %s}\n' \
            "$(date +%s.%N)" "${paths[$i]}" "$c" >>"$OUT"
        i=$((i + 1))
    done
}

# chromium_page URL: headless chromium loads the lab page, which opens a wss
# session to the same origin; keys to $KEYS (SSLKEYLOGFILE), what the page
# saw (console "WSTAP {json}" lines) to the client log.
chromium_page() {
    local url=$1 prof=$LAB_RUN/chromium-profile i
    mkdir -p "$prof"
    echo "  SSLKEYLOGFILE=... chromium --headless $url"
    SSLKEYLOGFILE=$KEYS chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync --disable-extensions \
        --ignore-certificate-errors --host-resolver-rules="MAP localhost 127.0.0.1" \
        --user-data-dir="$prof" --enable-logging=stderr --v=0 \
        "$url" >/dev/null 2>"$LAB_RUN/chromium.log" &
    local pid=$!
    for ((i = 0; i < 150; i++)); do
        grep -q '"event\\":\\"closed\|"event":"closed' "$LAB_RUN/chromium.log" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    sleep 0.5
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    grep -o 'WSTAP {.*}' "$LAB_RUN/chromium.log" | sed 's/^WSTAP //; s/\\"/"/g' >>"$OUT"
}

# s_client_keyupdate HOST:PORT: openssl s_client (TLS 1.3) sends a request,
# a KeyUpdate asking the server to update too (the "K" command), and a
# second request on the same connection; keys to $KEYS (-keylogfile).
s_client_keyupdate() {
    echo "  openssl s_client -tls1_3 -keylogfile ... (request, K, request)"
    { printf 'GET /api/before-keyupdate HTTP/1.1\nHost: localhost\nUser-Agent: wstap-lab-openssl\n\n'; sleep 0.7
      printf 'K\n'; sleep 0.7
      printf 'GET /api/after-keyupdate HTTP/1.1\nHost: localhost\nUser-Agent: wstap-lab-openssl\nConnection: close\n\n'; sleep 1
    } | timeout 10 openssl s_client -connect "$1" -tls1_3 -crlf -keylogfile "$KEYS.s_client" \
        -CAfile "$TLSDIR/ca.pem" -servername localhost >"$LAB_RUN/s_client.out" 2>&1
    cat "$KEYS.s_client" >>"$KEYS" 2>/dev/null
    rm -f "$KEYS.s_client"
    local st
    for st in $(grep -o '^HTTP/1.1 [0-9]*' "$LAB_RUN/s_client.out" | awk '{print $2}'); do
        printf '{"t": %s, "event": "http", "group": "openssl", "conn": 0, "method": "GET", "path": "/api", "status": %s}\n' \
            "$(date +%s.%N)" "$st" >>"$OUT"
    done
}

TLS_UPGRADE_OK='proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;'

# nginx_tls F B PROTOCOLS CIPHERS UPGRADE_LINES EXTRA
nginx_tls() {
    tls_deps || return 1
    TLSDIR=$LAB_RUN/nginx-$NAME
    KEYS=$CAP/$NAME.keys
    rm -f "$KEYS"
    tls_certs "$TLSDIR" || return 1
    backend "$2"
    lab_nginx "$NAME" "$NGX/tls.conf" "$1" LISTEN=127.0.0.1:$1 UPSTREAM=127.0.0.1:$2 \
        PROTOCOLS="$3" CIPHERS="$4" UPGRADE_LINES="$5" EXTRA="$6" || return 1
}

sc_nginx_tls13() {
    local F=18401 B=13401
    nginx_tls $F $B TLSv1.3 "" "$TLS_UPGRADE_OK" "" || return 1
    cap_start "tcp port $F or tcp port $B"
    node_ws 30 wss://127.0.0.1:$F/ws --count 2 --messages 3 --pings 1 --close --group node
    curl_https https://localhost:$F /api/one /api/two
    chromium_page https://localhost:$F/page.html
    s_client_keyupdate 127.0.0.1:$F
    cap_stop
    META=(proxy=nginx scenario="nginx TLS 1.3 front (lab CA), plain upstream; keys from the clients: Node ws (2 sessions, keylog event), curl (2 keep-alive requests), headless chromium (page + 1 wss session), openssl s_client (request, KeyUpdate, request)"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B expected_kinds= optional_kinds= keylog=$NAME.keys
        notes="Decrypted with --keylog captures/$NAME.keys: both hops readable, paired by key. Without keys: encrypted client hops inferred from the upstream side.")
}

sc_nginx_tls12() {
    local F=18402 B=13402
    nginx_tls $F $B TLSv1.2 "ssl_ciphers ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305:AES128-GCM-SHA256; ssl_conf_command Options -ExtendedMasterSecret;" \
        "$TLS_UPGRADE_OK" "" || return 1
    cap_start "tcp port $F or tcp port $B"
    node_ws 30 wss://127.0.0.1:$F/ws --count 1 --messages 3 --pings 1 --close --max-tls 1.2 --ciphers ECDHE-RSA-CHACHA20-POLY1305 --group node-chacha
    node_ws 30 wss://127.0.0.1:$F/ws --count 1 --messages 3 --close --max-tls 1.2 --ciphers AES128-GCM-SHA256 --group node-rsa-kx
    curl_https https://localhost:$F /api/one /api/two -- --tls-max 1.2 --ciphers ECDHE-RSA-AES256-GCM-SHA384
    chromium_page https://localhost:$F/page.html
    cap_stop
    META=(proxy=nginx scenario="nginx TLS 1.2 front without extended master secret (ssl_conf_command Options -ExtendedMasterSecret): Node ws with ECDHE-RSA-CHACHA20-POLY1305 and with RSA key exchange (AES128-GCM-SHA256), curl with ECDHE-RSA-AES256-GCM-SHA384, headless chromium (its choice, ECDHE-RSA-AES128-GCM)"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B expected_kinds= optional_kinds= keylog=$NAME.keys
        notes="TLS 1.2 keys are CLIENT_RANDOM master secrets. The TLS 1.2 connections of haproxy-tls use the extended master secret (the default).")
}

sc_nginx_tls_stripped() {
    local F=18403 B=13403
    nginx_tls $F $B "TLSv1.2 TLSv1.3" "" 'proxy_set_header Upgrade $http_upgrade;' "" || return 1
    cap_start "tcp port $F or tcp port $B"
    node_ws 30 wss://127.0.0.1:$F/ws --count 2 --messages 3 --close --group node
    cap_stop
    META=(proxy=nginx scenario="nginx TLS 1.3 front that forwards Upgrade but not Connection (nginx sends Connection: close upstream); Node ws client"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B expected_kinds=upgrade-stripped optional_kinds= keylog=$NAME.keys
        notes="With the keys: upgrade-stripped on both hops (client 426). Without: upgrade-headers-missing inferred from the upstream hop.")
}

sc_nginx_tls_idle() {
    local F=18404 B=13404
    nginx_tls $F $B TLSv1.2 "" "$TLS_UPGRADE_OK" "proxy_read_timeout 5s;" || return 1
    cap_start "tcp port $F or tcp port $B"
    CLIENT_PIDS=()
    node_ws_bg 40 wss://127.0.0.1:$F/ws --count 1 --messages 1 --idle 12 --max-tls 1.2 --group idle
    node_ws_bg 40 wss://127.0.0.1:$F/ws --count 1 --messages 1 --ping-interval 2 --idle 9 --close --max-tls 1.2 --group heartbeat
    wait_clients
    cap_stop
    META=(proxy=nginx scenario="nginx TLS 1.2 front, proxy_read_timeout 5s: 1 idle Node ws session, 1 with 2 s client pings that closes cleanly"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B expected_kinds=idle-timeout-close optional_kinds= keylog=$NAME.keys
        notes="The idle session is cut 5 s after its last upstream read, without a Close frame (1006 at the client).")
}

# haproxy_tls F B TUNNEL_TIMEOUT STRIP_RULE
haproxy_tls() {
    tls_deps || return 1
    TLSDIR=$LAB_RUN/haproxy-$NAME
    KEYS=$LAB_RUN/client.keys
    rm -f "$CAP/$NAME.keys"
    tls_certs "$TLSDIR" || return 1
    backend "$2"
    lab_haproxy "$NAME" "$HAP/tls.cfg" "$1" FRONT=127.0.0.1:$1 UPSTREAM=127.0.0.1:$2 \
        TUNNEL_TIMEOUT="$3" STRIP_RULE="$4" || return 1
}

# haproxy_keys: the key log is haproxy's own (its log lines), not the clients'
haproxy_keys() {
    grep -E '^(CLIENT_RANDOM|CLIENT_HANDSHAKE_TRAFFIC_SECRET|SERVER_HANDSHAKE_TRAFFIC_SECRET|CLIENT_TRAFFIC_SECRET_0|SERVER_TRAFFIC_SECRET_0) ' \
        "$LAB_RUN/haproxy-$NAME/stderr.log" >"$CAP/$NAME.keys"
    echo "  key log: $(wc -l <"$CAP/$NAME.keys") lines from haproxy's log-format"
}

sc_haproxy_tls() {
    local F=18405 B=13405
    haproxy_tls $F $B 1h "" || return 1
    cap_start "tcp port $F or tcp port $B"
    node_ws 30 wss://127.0.0.1:$F/ws --count 2 --messages 3 --pings 1 --close --group node-tls13
    node_ws 30 wss://127.0.0.1:$F/ws --count 1 --messages 3 --close --max-tls 1.2 --group node-tls12
    curl_https https://localhost:$F /api/one /api/two
    curl_https https://localhost:$F /api/three -- --tls-max 1.2
    cap_stop
    haproxy_keys
    META=(proxy=haproxy scenario="haproxy 2.6 TLS front (TLS 1.2 and 1.3) as the key source: tune.ssl.keylog on and a log-format of ssl_fc_*_secret / ssl_fc_client_random / ssl_fc_session_key fetches; Node ws (TLS 1.3 and 1.2) and curl clients"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B expected_kinds= optional_kinds= keylog=$NAME.keys
        notes="captures/$NAME.keys is haproxy's own log output (no client logged keys). X-Forwarded-Proto set by http-request set-header.")
}

sc_haproxy_tls_idle() {
    local F=18406 B=13406
    haproxy_tls $F $B 5s "" || return 1
    cap_start "tcp port $F or tcp port $B"
    CLIENT_PIDS=()
    node_ws_bg 40 wss://127.0.0.1:$F/ws --count 1 --messages 1 --idle 12 --group idle
    node_ws_bg 40 wss://127.0.0.1:$F/ws --count 1 --messages 1 --ping-interval 2 --idle 9 --close --group heartbeat
    wait_clients
    cap_stop
    haproxy_keys
    META=(proxy=haproxy scenario="haproxy TLS front with timeout tunnel 5s and its own key log: 1 idle Node ws session, 1 with 2 s client pings"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B expected_kinds=idle-timeout-close optional_kinds= keylog=$NAME.keys
        notes="haproxy closes both sides of the idle tunnel after 5 s without a Close frame.")
}

sc_haproxy_tls_stripped() {
    local F=18407 B=13407
    haproxy_tls $F $B 1h "http-request del-header Upgrade" || return 1
    cap_start "tcp port $F or tcp port $B"
    node_ws 30 wss://127.0.0.1:$F/ws --count 2 --messages 3 --close --group node
    cap_stop
    haproxy_keys
    META=(proxy=haproxy scenario="haproxy TLS front with 'http-request del-header Upgrade' and its own key log; Node ws client"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B expected_kinds=upgrade-stripped optional_kinds= keylog=$NAME.keys
        notes="Upstream request keeps 'Connection: upgrade' without Upgrade; the backend answers 426, relayed over TLS.")
}

# ----------------------------------------------------------------------------
# WebSockets over HTTP/2 (RFC 8441): haproxy 2.6 with an h2 TLS front (ALPN
# h2,http/1.1), each extended CONNECT stream forwarded as its own HTTP/1.1
# upgrade. Clients: headless chromium (SSLKEYLOGFILE; it uses RFC 8441 when
# the front offers it) and tests/lab/h2ws_client.py (PyPI h2 + wsproto,
# several streams on one connection). The clients' key logs are kept.
# Ports: front 186NN, backend 136NN.
# ----------------------------------------------------------------------------
h2_deps() {
    tls_deps || return 1
    if ! "$LAB_PY" -c 'import h2.connection, wsproto.frame_protocol' 2>/dev/null; then
        "$(dirname "$LAB_PY")/pip" install -q 'h2>=4.1' 'wsproto>=1.2' ||
            { echo "record.sh: pip install h2 wsproto failed" >&2; return 1; }
    fi
}

# haproxy_h2 F B TUNNEL_TIMEOUT STRIP_RULE [GLOBAL_EXTRA] [FRONT_EXTRA]
haproxy_h2() {
    h2_deps || return 1
    TLSDIR=$LAB_RUN/haproxy-$NAME
    KEYS=$CAP/$NAME.keys
    rm -f "$KEYS"
    tls_certs "$TLSDIR" || return 1
    backend "$2"
    lab_haproxy "$NAME" "$HAP/h2.cfg" "$1" FRONT=127.0.0.1:$1 UPSTREAM=127.0.0.1:$2 \
        TUNNEL_TIMEOUT="$3" STRIP_RULE="$4" GLOBAL_EXTRA="${5:-}" FRONT_EXTRA="${6:-}" || return 1
}

# h2ws SECS URL ARGS...: the scripted RFC 8441 client; keys appended to $KEYS
h2ws() {
    local t=$1; shift
    echo "  h2ws_client.py $*"
    timeout -s INT "$t" "$LAB_PY" -u "$LAB/h2ws_client.py" "$@" --keylog "$KEYS" --ca "$TLSDIR/ca.pem" \
        >>"$OUT" 2>>"$OUT.stderr"
}

# The page chromium loads, served by haproxy itself.
H2_PAGE='http-request return status 200 content-type "text/html" file @DIR@/www/page.html if { path /page.html }'
# Request ids: haproxy adds X-Request-ID to each forwarded request and
# returns it to the client (the ids pair the two hops).
H2_REQID='unique-id-format %{+X}o%ci%cp%fp%Ts%rt%pid
    unique-id-header X-Request-ID
    http-response set-header X-Request-ID %[unique-id]'

h2_page() { echo "${H2_PAGE//@DIR@/$LAB_RUN/haproxy-$NAME}"; }

sc_haproxy_h2() {
    local F=18601 B=13601
    haproxy_h2 $F $B 1h "" "" "$(h2_page)
    $H2_REQID" || return 1
    cap_start "tcp port $F or tcp port $B"
    h2ws 30 https://127.0.0.1:$F --path /ws --path /ws --path /ws --messages 3 --close --group h2ws
    chromium_page "https://localhost:$F/page.html"
    cap_stop
    META=(proxy=haproxy scenario="haproxy 2.6 h2 TLS front (alpn h2,http/1.1, RFC 8441 offered by default), X-Request-ID added and echoed: 3 extended CONNECT streams on one connection from the scripted h2 client (3 echoed messages, close 1000 each), and headless chromium loading a page over h2 then opening wss on the same connection"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B expected_kinds= optional_kinds= keylog=$NAME.keys
        notes="Each stream is its own HTTP/1.1 upgrade upstream, with a Sec-WebSocket-Key haproxy made up; the same X-Request-ID is on the forwarded request and on the :status 200 the client got.")
}

sc_haproxy_h2_stripped() {
    local F=18602 B=13602
    haproxy_h2 $F $B 1h "http-request del-header Upgrade if { path_beg /stripped }" || return 1
    cap_start "tcp port $F or tcp port $B"
    h2ws 30 https://127.0.0.1:$F --path /ws --path /stripped/ws --path /stripped/ws --messages 2 --close --group h2ws
    cap_stop
    META=(proxy=haproxy scenario="haproxy h2 TLS front with 'http-request del-header Upgrade' on /stripped: the scripted h2 client opens /ws (works) and /stripped/ws twice on one connection"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B expected_kinds=upgrade-stripped optional_kinds= keylog=$NAME.keys
        notes="Upstream request keeps 'Connection: upgrade' without Upgrade (and without a key); the backend answers 426, relayed to the h2 client as :status 426.")
}

sc_haproxy_h2_false_success() {
    local F=18603 B=13603
    haproxy_h2 $F $B 1h "http-request del-header Upgrade if { path_beg /plain }" "" "$(h2_page)" || return 1
    cap_start "tcp port $F or tcp port $B"
    chromium_page "https://localhost:$F/page.html?path=/plain/ws"
    h2ws 30 https://127.0.0.1:$F --path /ws --path /plain/ws --messages 2 --close --group h2ws
    cap_stop
    META=(proxy=haproxy scenario="haproxy h2 TLS front with 'http-request del-header Upgrade' on /plain, where the backend has a plain HTTP handler: chromium opens wss://.../plain/ws over h2, the scripted client /ws and /plain/ws"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B expected_kinds=false-upgrade-success,upgrade-stripped optional_kinds= keylog=$NAME.keys
        notes="The backend answers the plain GET 200 with a JSON body; haproxy relays :status 200, which RFC 8441 reads as success: the browser fires onopen, the body arrives as DATA (not WebSocket frames) and the stream ends: 1006, no message ever.")
}

sc_haproxy_h2_idle() {
    local F=18604 B=13604
    haproxy_h2 $F $B 5s "" || return 1
    cap_start "tcp port $F or tcp port $B"
    h2ws 40 https://127.0.0.1:$F --path /ws --path /ws --path /ws --messages 1 --idle 9 --chatty 1 --close --group h2ws
    cap_stop
    META=(proxy=haproxy scenario="haproxy h2 TLS front with timeout tunnel 5s: 3 extended CONNECT streams on one connection; one sends a message every 2 s, two stay silent"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B expected_kinds=idle-timeout-close optional_kinds= keylog=$NAME.keys
        notes="After 5 s without data haproxy cuts each idle stream with RST_STREAM (CANCEL) and closes its upstream connection; the TLS connection and the chatty stream live on, and that stream closes with 1000 after 9 s.")
}

sc_haproxy_h2_no8441() {
    local F=18605 B=13605
    haproxy_h2 $F $B 1h "" "h2-workaround-bogus-websocket-clients" "$(h2_page)" || return 1
    cap_start "tcp port $F or tcp port $B"
    chromium_page "https://localhost:$F/page.html"
    h2ws 30 https://127.0.0.1:$F --path /ws --messages 2 --close --group h2ws
    cap_stop
    META=(proxy=haproxy scenario="haproxy h2 TLS front with h2-workaround-bogus-websocket-clients (RFC 8441 not offered): chromium loads the page over h2 and falls back to a separate HTTP/1.1 TLS connection for wss; the scripted h2 client gives up"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B expected_kinds=h2-websocket-not-offered optional_kinds= keylog=$NAME.keys
        notes="The server's SETTINGS lack ENABLE_CONNECT_PROTOCOL: the browser opens one more TCP+TLS connection (ALPN http/1.1) for the WebSocket; a strict RFC 8441 client cannot open one at all.")
}

# ---- haproxy-h2-refused (issue 16: a refused extended CONNECT) ----
ALL+=(haproxy-h2-refused)
# Two refusals on one h2 connection, each with its culprit: the backend
# refuses the Origin (403 on the HTTP/1.1 upgrade, relayed as :status 403)
# and haproxy itself denies /admin (its own 403, nothing forwarded); then a
# second connection with the allowed Origin works.
sc_haproxy_h2_refused() {
    local F=19010 B=14010
    h2_deps || return 1
    TLSDIR=$LAB_RUN/haproxy-$NAME
    KEYS=$CAP/$NAME.keys
    rm -f "$KEYS"
    tls_certs "$TLSDIR" || return 1
    backend $B --origin-allow https://good.example
    lab_haproxy "$NAME" "$HAP/h2.cfg" $F FRONT=127.0.0.1:$F UPSTREAM=127.0.0.1:$B TUNNEL_TIMEOUT=1h \
        STRIP_RULE="http-request deny deny_status 403 if { path_beg /admin }" GLOBAL_EXTRA="" FRONT_EXTRA="$H2_REQID" || return 1
    cap_start "tcp port $F or tcp port $B"
    h2ws 30 https://127.0.0.1:$F --origin https://evil.example --path /ws --path /admin/ws --messages 2 --close --group refused
    h2ws 30 https://127.0.0.1:$F --origin https://good.example --path /ws --messages 2 --close --group good
    cap_stop
    META=(proxy=haproxy scenario="haproxy h2 TLS front, backend allowing only Origin https://good.example, 'http-request deny deny_status 403' on /admin: the scripted h2 client with Origin https://evil.example opens /ws and /admin/ws on one connection, then one with Origin https://good.example opens /ws"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B expected_kinds=handshake-rejected,upgrade-failed optional_kinds= keylog=$NAME.keys
        notes="/ws with the bad Origin: haproxy forwards an intact HTTP/1.1 upgrade, the backend answers 403, relayed as :status 403 (the backend's refusal, not the proxy's). /admin/ws: haproxy answers :status 403 itself and forwards nothing. The good Origin gets :status 200, 2 echoes, close 1000.")
}
# ---- end haproxy-h2-refused ----

sc_haproxy_h2c() {
    local F=18606 B=13606
    h2_deps || return 1
    KEYS=/dev/null
    TLSDIR=$LAB_RUN
    backend $B
    lab_haproxy "$NAME" "$HAP/h2c.cfg" $F FRONT=127.0.0.1:$F UPSTREAM=127.0.0.1:$B \
        TUNNEL_TIMEOUT=1h STRIP_RULE="" GLOBAL_EXTRA="" FRONT_EXTRA="" || return 1
    cap_start "tcp port $F or tcp port $B"
    echo "  h2ws_client.py --h2c http://127.0.0.1:$F --path /ws --path /ws --messages 3 --close"
    timeout -s INT 30 "$LAB_PY" -u "$LAB/h2ws_client.py" --h2c http://127.0.0.1:$F --path /ws --path /ws \
        --messages 3 --close --group h2c >>"$OUT" 2>>"$OUT.stderr"
    cap_stop
    META=(proxy=haproxy scenario="haproxy h2 front in clear with prior knowledge (bind ... proto h2): the scripted client opens 2 extended CONNECT streams on one h2c connection, 3 echoes each, close 1000"
        front=127.0.0.1:$F upstreams=127.0.0.1:$B expected_kinds= optional_kinds=
        notes="No TLS: the connection starts with the HTTP/2 client preface; each stream is its own HTTP/1.1 upgrade upstream.")
}

# ----------------------------------------------------------------------------
# driver
# ----------------------------------------------------------------------------
run_one() {
    local name=$1 fn=sc_${1//-/_} attempt rc
    if ! declare -F "$fn" >/dev/null; then
        echo "record.sh: unknown scenario '$name' (see --list)" >&2
        return 2
    fi
    local t0=$SECONDS
    for attempt in 1 2; do
        if [ $attempt = 1 ]; then echo "== $name"; else echo "== $name (attempt $attempt)"; fi
        run_attempt "$name" "$fn"
        rc=$?
        [ $rc = 3 ] || break
        echo "   tcpdump dropped packets, recording $name again" >&2
    done
    echo "   $name: $((SECONDS - t0))s, $(stat -c %s "$CAP/$name.pcap" 2>/dev/null || echo 0) bytes"
    return $rc
}

# one attempt, in a subshell (own temp dir, own pid list, EXIT trap cleans up)
run_attempt() {
    local name=$1 fn=$2
    (
        NAME=$name
        META=()
        LAB_RUN=
        lab_init
        OUT=$LAB_RUN/client.jsonl
        : >"$OUT"
        rm -f "$CAP/$name.pcap" "$CAP/$name.client.jsonl"
        "$fn"
        rc=$?
        lab_tcpdump_stop
        if [ "${LAB_TCPDUMP_DROPS:-0}" != 0 ] && [ $rc = 0 ]; then rc=3; fi
        lab_stop_all
        lab_merge_jsonl "$CAP/$name.client.jsonl" "$OUT"
        if [ -s "$OUT.stderr" ]; then
            echo "  client stderr:" >&2
            sed 's/^/    /' "$OUT.stderr" | tail -20 >&2
        fi
        if [ $rc = 0 ] && [ ! -s "$CAP/$name.pcap" ]; then rc=1; fi
        if [ $rc != 0 ]; then
            echo "  FAILED (rc=$rc); temp dir kept: $LAB_RUN" >&2
            LAB_KEEP=1
            exit $rc
        fi
        "$LAB_PY" "$LAB/manifest.py" update --manifest "$CAP/manifest.json" --capdir "$CAP" \
            --name "$name" --order "${ALL[*]}" linktype=EN10MB "${META[@]}"
        [ -n "${LAB_KEEP:-}" ] && echo "  kept: $LAB_RUN"
        exit 0
    )
}

main() {
    if [ "${1:-}" = --list ]; then printf '%s\n' "${ALL[@]}"; return 0; fi
    source "$LAB/lab.sh"
    ensure_deps
    local names=("$@") failed=() n
    [ ${#names[@]} -gt 0 ] || names=("${ALL[@]}")
    local t0=$SECONDS
    for n in "${names[@]}"; do
        run_one "$n" || failed+=("$n")
    done
    echo "== done in $((SECONDS - t0))s; ${#names[@]} scenario(s), ${#failed[@]} failed ${failed[*]}"
    [ ${#failed[@]} = 0 ]
}

main "$@"
