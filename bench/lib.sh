# Shared by the side-by-side benchmarks (bench/run.sh, tls.sh, h2.sh,
# live.sh): sourced after OUT and RUNS are set (live.sh: for wstap_bin
# only). Ratios in one run, never a timed test.

# wstap_bin -> the path of the wstap to measure: the profile-guided build
# the package ships (scripts/pgo.sh; rebuilt only when its inputs changed),
# or with PGO=0 the plain release build. Run from the repository's root.
wstap_bin() {
  if [ "${PGO:-1}" != 0 ]; then
    echo "$PWD/$(bash scripts/pgo.sh | tail -n 1)"
  else
    cargo build --release --quiet --bin wstap >&2
    echo "$PWD/target/release/wstap"
  fi
}

# need TOOL...: installs (Debian) the tools that are missing
need() {
  local p
  for p in "$@"; do
    command -v "$p" >/dev/null 2>&1 || [ -x "/usr/bin/$p" ] || {
      echo "bench: installing $p" >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null
    }
  done
}

# measure CMD... -> "seconds maxrss_kb" (median of RUNS by time)
measure() {
  local i
  : >"$OUT/m.runs"
  for i in $(seq "$RUNS"); do
    /usr/bin/time -f "%e %M" -o "$OUT/m.time" "$@" >/dev/null 2>"$OUT/m.err" || {
      echo "bench: failed: $* : $(tail -1 "$OUT/m.err")" >&2
      return 1
    }
    cat "$OUT/m.time" >>"$OUT/m.runs"
  done
  sort -n "$OUT/m.runs" | sed -n "$(((RUNS + 1) / 2))p"
}

mb() { du -m "$1" | cut -f1; }

# table FILE, then lines "label|command" on stdin: one markdown row each,
# the first row the base of the ratios; each "label|seconds" is also
# appended to $TIMES when set.
table() {
  local file=$1 base=""
  echo "| tool | command | time (s) | vs first row | MB/s | peak RSS (MB) |"
  echo "|---|---|---:|---:|---:|---:|"
  while IFS='|' read -r name cmd; do
    read -r t rss < <(measure bash -c "$cmd")
    if [ -n "${TIMES:-}" ]; then echo "$name|$t" >>"$TIMES"; fi
    [ -z "$base" ] && base=$t
    awk -v n="$name" -v c="$cmd" -v t="$t" -v b="$base" -v mb="$(mb "$file")" -v rss="$rss" 'BEGIN {
      printf "| %s | `%s` | %.2f | %.2fx | %.0f | %.1f |\n", n, c, t, t / b, mb / t, rss / 1024 }'
  done
}
