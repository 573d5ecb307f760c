#!/usr/bin/env bash
# Live TLS decryption (issue 13), real processes only: nginx as a TLS front
# (a lab CA made here) before the lab's WebSocket backend; `wstap -i lo
# --keylog FILE` started before the key log exists; real clients (python
# websockets, curl) write their keys to it (SSLKEYLOGFILE) while wstap
# captures, so every key reaches wstap after wstap started, some after the
# packets they decrypt. Checks the decrypted hops, their pairing and the
# summary's TLS counts.
#
#   bash tests/live/tls.sh            (as root; WSTAP=path/to/wstap to skip the build)
#   LIVE_TLS_FRONT_PORT / LIVE_TLS_BACK_PORT (default 18480 / 13480)
#
# Every process started here is stopped by pid (trap EXIT); every wait is
# bounded; the run takes about 10 seconds.

set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
FRONT=${LIVE_TLS_FRONT_PORT:-18480}
BACK=${LIVE_TLS_BACK_PORT:-13480}
FILTER="tcp port $FRONT or tcp port $BACK"
PY=${LAB_PY:-python3}
export PYTHONDONTWRITEBYTECODE=1

say() { printf '\n== %s\n' "$*"; }
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
ok() { printf '  ok: %s\n' "$*"; }

[ "$(id -u)" = 0 ] || die "run as root: live capture needs it"
for c in nginx openssl curl; do command -v $c >/dev/null || die "$c is needed (scripts/deps.sh installs it)"; done
"$PY" -c 'import websockets.asyncio.client' 2>/dev/null || die "python websockets is needed"

if [ -z "${WSTAP:-}" ]; then
    (cd "$ROOT" && cargo build -q) || die "cargo build failed"
    WSTAP=${CARGO_TARGET_DIR:-$ROOT/target}/debug/wstap
fi
[ -x "$WSTAP" ] || die "no wstap binary at $WSTAP"

# shellcheck source=../lab/lab.sh
source "$ROOT/tests/lab/lab.sh"
lab_init
R=$LAB_RUN
D=$R/nginx-tls
mkdir -p "$D"

say "a lab CA, nginx TLS front :$FRONT, backend :$BACK"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=wstap live CA" \
    -keyout "$D/ca.key" -out "$D/ca.pem" >/dev/null 2>&1 &&
    openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout "$D/server.key" -out "$D/server.csr" >/dev/null 2>&1 &&
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$D/ext" &&
    openssl x509 -req -in "$D/server.csr" -CA "$D/ca.pem" -CAkey "$D/ca.key" -CAcreateserial -days 2 \
        -extfile "$D/ext" -out "$D/server.pem" >/dev/null 2>&1 || die "openssl could not make the lab CA"
lab_wait_free "$FRONT" 5 && lab_wait_free "$BACK" 5 || die "ports $FRONT/$BACK are busy"
lab_backend "$BACK" --mode echo || die "backend did not start"
lab_nginx tls "$ROOT/tests/lab/nginx/tls.conf" "$FRONT" LISTEN=127.0.0.1:$FRONT UPSTREAM=127.0.0.1:$BACK \
    PROTOCOLS="TLSv1.2 TLSv1.3" CIPHERS="" EXTRA="" \
    UPGRADE_LINES='proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection $connection_upgrade;' \
    || die "nginx did not start"

KEYS=$R/keys.log   # does not exist yet: wstap waits for it
# wstap parses packets without root (docs/live.md, "Privileges"): a key
# log that does not exist yet is opened when it appears, as that user, so
# its directory must let that user in. A key log that exists when wstap
# starts is opened before the drop: one only root can read works (curl
# writes its keys to such a one below).
chmod 1777 "$R"
mkdir -m 700 "$R/private"
ROOTKEYS=$R/private/keys.log
install -m 600 /dev/null "$ROOTKEYS"
say "wstap -i lo --keylog (not there yet) --keylog (root-only) --json '$FILTER'"
"$WSTAP" -i lo --keylog "$KEYS" --keylog "$ROOTKEYS" --json "$FILTER" >"$R/live.out" 2>"$R/live.err" &
WPID=$!
LAB_PIDS+=("$WPID")
for ((i = 0; i < 100; i++)); do
    grep -q "listening on" "$R/live.err" 2>/dev/null && break
    kill -0 "$WPID" 2>/dev/null || die "wstap exited: $(cat "$R/live.err")"
    sleep 0.1
done
grep -q "listening on" "$R/live.err" || die "wstap did not start: $(cat "$R/live.err")"
if [ "$(id -u)" = 0 ]; then
    for ((i = 0; i < 50; i++)); do
        user=$(ps -o user= -p "$WPID" | tr -d ' ')
        [ "$user" != root ] && break
        sleep 0.1
    done
    [ "$user" != root ] || die "wstap still runs as root while parsing"
    ok "wstap parses as $user, the root-only key log open before the drop"
    # The key log's reader thread starts before the drop; capabilities
    # and no_new_privs are per thread, so it must drop its own (privs.rs,
    # follow_drop): every thread, within its 5 ms poll.
    sleep 0.2
    for st in /proc/"$WPID"/task/*/status; do
        grep -q '^CapPrm:[[:space:]]*0000000000000000' "$st" && grep -q '^CapEff:[[:space:]]*0000000000000000' "$st" \
            && grep -q '^NoNewPrivs:[[:space:]]*1' "$st" \
            || die "thread $(grep '^Name' "$st") keeps privileges: $(grep -E '^(Uid|Cap|NoNew)' "$st" | tr '\n' ' ')"
    done
    grep -q 'wstap-keylog' /proc/"$WPID"/task/*/comm || die "no key log reader thread to check"
    ok "every thread, the key log's reader included, holds no capability and has no_new_privs"
fi

say "clients write their keys while wstap captures"
SSLKEYLOGFILE=$KEYS timeout 20 "$PY" -u "$LAB_DIR/client.py" ws "wss://127.0.0.1:$FRONT/ws" --insecure \
    --count 3 --messages 3 --close --group tls >"$R/clients.jsonl" 2>"$R/clients.err" ||
    die "client failed: $(tail -3 "$R/clients.err")"
SSLKEYLOGFILE=$ROOTKEYS timeout 20 curl -s -o /dev/null --cacert "$D/ca.pem" --resolve "localhost:$FRONT:127.0.0.1" \
    --tls-max 1.2 "https://localhost:$FRONT/api/one" || die "curl failed"
[ -s "$KEYS" ] || die "the clients wrote no key"
[ -s "$ROOTKEYS" ] || die "curl wrote no key"
ok "$(cat "$KEYS" "$ROOTKEYS" | grep -c .) key log lines written after wstap started"
sleep 1
kill -INT "$WPID"
for ((i = 0; i < 100; i++)); do kill -0 "$WPID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$WPID" 2>/dev/null && die "wstap did not stop on SIGINT"
wait "$WPID"
rc=$?
[ "$rc" = 0 ] || die "wstap exited $rc: $(cat "$R/live.err")"

say "checks"
"$PY" - "$R/live.out" "$FRONT" <<'PY' || die "checks failed (records in $R/live.out)"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
front = sys.argv[2]
hs = [r for r in recs if r["type"] == "handshake"]
assert len(hs) == 3, f"{len(hs)} handshakes, expected 3"
for h in hs:
    c = h["client"]
    assert c["flow"].endswith(":" + front), h
    assert c["tls"]["decrypted"] is True, h
    assert h["paired_by"] == "key", h
    assert c["status"] == 101 and h["upstream"]["status"] == 101, h
sessions = [r for r in recs if r["type"] == "session"]
assert len(sessions) == 3 and all(s["close"]["code"] == 1000 for s in sessions), sessions
s = recs[-1]
assert s["type"] == "summary"
t = s["tls"]
assert t["connections"] == 4 and t["decrypted"] == 4, t
assert t["keylog"]["files"] == 2 and t["keylog"]["secrets"] >= 13, t
assert t["keylog"].get("read_errors", 0) == 0, t
print(f"  ok: 3 wss handshakes decrypted live and paired by key; TLS {t['decrypted']}/{t['connections']} "
      f"decrypted ({t['late_keys']} from records held for late keys)")
PY
echo "live TLS: all checks passed"
