#!/usr/bin/env bash
# Installs what building and testing wstap need on Debian, skipping what is
# already there: libpcap-dev to build, and gcc and make for the jemalloc
# allocator (tikv-jemalloc-sys builds it from source); nginx, tcpdump, tmux and Python's
# websockets for the live-capture and dashboard tests; tshark, the
# conformance peer of the TLS decryption tests (tests/tls.rs); curl and
# openssl for the live TLS test (tests/live/tls.sh); prometheus (and its
# promtool) for the metrics test and the alert rules (tests/metrics/run.sh).
#   bash scripts/deps.sh          build + test dependencies
#   bash scripts/deps.sh build    only what building needs
set -euo pipefail

want=(libpcap-dev pkg-config gcc make)
if [ "${1:-test}" != build ]; then
  want+=(nginx-light tcpdump tmux procps libcap2-bin tshark curl openssl time prometheus)
fi

missing=()
for p in "${want[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
# Any nginx flavour will do for the tests.
if printf '%s\n' "${missing[@]}" | grep -qx nginx-light && command -v nginx >/dev/null 2>&1; then
  missing=("${missing[@]/nginx-light}")
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))

if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "deps: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "${1:-test}" != build ]; then
  if ! python3 -c 'import websockets' 2>/dev/null; then
    echo "deps: installing Python websockets" >&2
    python3 -m pip install -q websockets 2>/dev/null || python3 -m pip install -q --break-system-packages websockets
  fi
fi
