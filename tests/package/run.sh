#!/usr/bin/env bash
# The Debian package, as a user gets it: build it with scripts/package.sh,
# install it with dpkg, check that the binary, man page and completions are
# where Debian tools look for them, analyse a bundled capture with the
# installed binary, then remove the package (only if this script installed it).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=$PATH:/usr/sbin:/sbin
fail() { echo "FAIL tests/package/run.sh: $*" >&2; exit 1; }
ok() { echo "  ok: $*"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "tests/package/run.sh: skipped (installing a package needs root)"; exit 0
fi
if dpkg -s wstap >/dev/null 2>&1; then
  fail "a wstap package is already installed on this machine; not touching it"
fi

deb=$(bash scripts/package.sh | tail -n 1)
[ -f "$deb" ] || fail "no package built"
ok "built $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB)"
dpkg-deb -f "$deb" Depends | grep -q libpcap || fail "Depends lacks libpcap: $(dpkg-deb -f "$deb" Depends)"
ok "Depends: $(dpkg-deb -f "$deb" Depends)"

trap 'dpkg -r wstap >/dev/null 2>&1 || true' EXIT
dpkg -i "$deb" >/dev/null || fail "dpkg -i failed"
ok "installed"

[ "$(command -v wstap)" = /usr/bin/wstap ] || fail "wstap is not /usr/bin/wstap: $(command -v wstap)"
want="wstap $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)"
[ "$(/usr/bin/wstap --version)" = "$want" ] || fail "--version: $(/usr/bin/wstap --version), want $want"
ok "/usr/bin/wstap --version: $want"

out=$(/usr/bin/wstap -r captures/nginx-default.pcap --json)
echo "$out" | grep -q '"kind":"upstream-http10"' || fail "installed binary did not diagnose nginx-default.pcap"
echo "$out" | tail -n1 | grep -q '"type":"summary"' || fail "no summary line"
ok "installed binary diagnoses captures/nginx-default.pcap (upstream-http10)"

man=/usr/share/man/man1/wstap.1.gz
[ -f "$man" ] || fail "no man page at $man"
zcat "$man" | grep -q '^\.TH wstap 1' || fail "man page has no .TH header"
if command -v man >/dev/null 2>&1; then
  MANPAGER=cat man -P cat wstap 2>/dev/null | grep -q -- '--json' || fail "man wstap does not show --json"
  ok "man wstap renders (and documents --json)"
else
  ok "man page installed at $man (man-db not installed: not rendered)"
fi

bc=/usr/share/bash-completion/completions/wstap
[ -f "$bc" ] || fail "no bash completion at $bc"
bash -c "source $bc && complete -p wstap" | grep -q _wstap || fail "bash completion does not register for wstap"
words=$(bash -c "source $bc; COMP_WORDS=(wstap --js); COMP_CWORD=1; COMP_LINE='wstap --js'; COMP_POINT=\${#COMP_LINE}; _wstap wstap --js wstap; printf '%s\n' \"\${COMPREPLY[@]}\"")
echo "$words" | grep -qx -- --json || fail "bash completion of '--js' gave: $words"
ok "bash completion: 'wstap --js<TAB>' -> --json"
[ -f /usr/share/zsh/vendor-completions/_wstap ] || fail "no zsh completion"
[ -f /usr/share/fish/vendor_completions.d/wstap.fish ] || fail "no fish completion"
ok "zsh and fish completions installed"
[ -f /usr/share/doc/wstap/json.md ] || fail "docs not installed"
ok "docs in /usr/share/doc/wstap"

dpkg -r wstap >/dev/null || fail "dpkg -r failed"
trap - EXIT
[ ! -e /usr/bin/wstap ] || fail "/usr/bin/wstap left behind after dpkg -r"
ok "removed cleanly"
echo "PASS tests/package/run.sh"
