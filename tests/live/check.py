#!/usr/bin/env python3
"""Assertions on wstap --json output for tests/live/run.sh.

  check.py live OUT.jsonl --healthy-path /ws --healthy N --broken-path /broken --broken M
      handshake records: N upgraded on the healthy path (client and upstream
      both 101, paired), M rejected on the broken one; N session records on
      the healthy path; finding lines (if any) carry kind and severity; a
      summary with capture.received > 0 and no packet dropped anywhere.
  check.py same LIVE.jsonl READBACK.jsonl
      the -w file read back with -r gives the same handshake outcomes,
      sessions and packet count.
  check.py summary OUT.jsonl [--packets N] [--no-drops] [--all-analysed]
  check.py rings OUT.jsonl --rings N
      --fanout N: the summary counts the packets of each ring, they add up
      to what the kernel received, and all were analysed.
  check.py identical ONE.jsonl TWO.jsonl
      two captures of the same traffic (one thread and --threads 2): the
      same records in the same order, and the same summary but for what
      may differ (the memory peak is a sum of the workers' peaks; the
      capture counters of two processes; times, which two capture
      sockets stamp microseconds apart, are compared as numbers only).
"""

import argparse
import collections
import json
import sys


def load(path):
    recs = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                recs.append(json.loads(line))
            except json.JSONDecodeError as e:
                fail(f"{path}:{n}: not JSON ({e}): {line[:120]}")
    return recs


def fail(msg):
    print(f"check.py: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def ok(msg):
    print(f"  ok: {msg}")


def by_type(recs, ty):
    return [r for r in recs if r.get("type") == ty]


def the_summary(recs, path):
    s = by_type(recs, "summary")
    if len(s) != 1:
        fail(f"{path}: expected one summary record, got {len(s)}")
    if recs[-1].get("type") != "summary":
        fail(f"{path}: the summary is not the last record")
    return s[0]


def check_findings(recs):
    for f in by_type(recs, "finding"):
        if not isinstance(f.get("kind"), str) or f.get("severity") not in ("info", "warning", "error"):
            fail(f"finding without kind/severity: {f}")
    ok(f"{len(by_type(recs, 'finding'))} finding line(s), each with kind and severity")


def check_no_drops(s, path):
    cap = s.get("capture")
    if not cap:
        fail(f"{path}: summary has no capture statistics")
    for k in ("received", "dropped_kernel", "dropped_interface", "dropped_queue"):
        if not isinstance(cap.get(k), int):
            fail(f"{path}: summary.capture.{k} is {cap.get(k)!r}")
    if cap["received"] <= 0:
        fail(f"{path}: capture.received = {cap['received']}")
    if cap["dropped_kernel"] or cap["dropped_queue"] or cap["dropped_interface"]:
        fail(f"{path}: packets dropped: {cap}")
    ok(f"capture: {cap['received']} received, nothing dropped (kernel, interface, queue)")


def cmd_live(a):
    recs = load(a.out)
    hs = by_type(recs, "handshake")
    good = [h for h in hs if h["path"].startswith(a.healthy_path)]
    bad = [h for h in hs if h["path"].startswith(a.broken_path)]
    if len(good) != a.healthy:
        fail(f"{len(good)} handshakes on {a.healthy_path}, expected {a.healthy}: {[h['outcome'] for h in good]}")
    for h in good:
        c, u = h.get("client") or {}, h.get("upstream") or {}
        if h["outcome"] != "upgraded" or c.get("status") != 101 or u.get("status") != 101:
            fail(f"healthy handshake not upgraded on both hops: {json.dumps(h)[:400]}")
        if not h.get("paired_by"):
            fail(f"healthy handshake not paired with the forwarded one: {json.dumps(h)[:400]}")
    ok(f"{len(good)} handshakes on {a.healthy_path}: upgraded, 101 on the client and upstream hops, paired")
    if len(bad) != a.broken:
        fail(f"{len(bad)} handshakes on {a.broken_path}, expected {a.broken}")
    for h in bad:
        c = h.get("client") or {}
        if h["outcome"] != "rejected" or c.get("status") in (None, 101):
            fail(f"broken handshake not rejected: {json.dumps(h)[:400]}")
    statuses = sorted({(h.get('client') or {}).get('status') for h in bad})
    ok(f"{len(bad)} handshakes on {a.broken_path}: rejected (client got {statuses})")
    sessions = [s for s in by_type(recs, "session") if s["path"].startswith(a.healthy_path)]
    if len(sessions) != a.healthy:
        fail(f"{len(sessions)} sessions on {a.healthy_path}, expected {a.healthy}")
    ids = {h["id"] for h in good}
    for s in sessions:
        if s["handshake"] not in ids or s.get("open"):
            fail(f"session not tied to a healthy handshake, or still open: {json.dumps(s)[:300]}")
        if s["messages"]["to_server"] < 1 or s["messages"]["to_client"] < 1:
            fail(f"session without messages both ways: {json.dumps(s)[:300]}")
    ok(f"{len(sessions)} session records, closed, messages both ways")
    check_findings(recs)
    # The diagnosis, live: the broken location (proxy_pass only) loses the
    # upgrade headers and forwards over HTTP/1.0, once per handshake; the
    # healthy location gets no error at all.
    errs = sorted((f["kind"], f.get("path")) for f in by_type(recs, "finding") if f["severity"] == "error")
    want = sorted([("upgrade-stripped", a.broken_path)] * a.broken + [("upstream-http10", a.broken_path)] * a.broken)
    if errs != want:
        fail(f"error findings {errs}, expected {want}")
    for f in by_type(recs, "finding"):
        if f["kind"] == "upgrade-stripped" and "proxy_set_header Upgrade $http_upgrade" not in (f.get("fix") or ""):
            fail(f"upgrade-stripped without the nginx fix: {json.dumps(f)[:300]}")
    ok(f"findings: {len(errs)} errors, exactly upgrade-stripped and upstream-http10 on {a.broken_path}, with nginx's fix")
    s = the_summary(recs, a.out)
    check_no_drops(s, a.out)
    if s["handshakes"]["upgraded"] != a.healthy or s["handshakes"]["rejected"] != a.broken:
        fail(f"summary handshakes {s['handshakes']}")
    ok(f"summary: {s['packets']} packets, handshakes {s['handshakes']}")
    # What joins a live run to the proxy's logs: the machine that captured,
    # the interface, and each handshake's client address as nginx logs it.
    import socket
    if s.get("host") != socket.gethostname():
        fail(f"summary host {s.get('host')!r}, this machine is {socket.gethostname()!r}")
    sysinfo = s.get("system") or {}
    if sysinfo.get("interfaces") != ["lo"] or not str(sysinfo.get("application", "")).startswith("wstap "):
        fail(f"summary system {sysinfo}")
    if not s.get("schema"):
        fail("summary without schema")
    for h in good:
        c = h["client"]
        if (h.get("remote_addr"), h.get("remote_port")) != (c["orig_h"], c["orig_p"]) or not c.get("community_id"):
            fail(f"handshake remote_addr/port or community_id: {json.dumps(h)[:400]}")
    ok(f"summary host {s['host']}, system {sysinfo.get('os')} on {sysinfo.get('interfaces')}; remote address:port and Community ID on every handshake")


def outcomes(recs):
    return collections.Counter((h["path"], h["outcome"], (h.get("client") or {}).get("status"))
                               for h in by_type(recs, "handshake"))


def cmd_same(a):
    live, back = load(a.live), load(a.readback)
    if outcomes(live) != outcomes(back):
        fail(f"handshake outcomes differ:\n live: {outcomes(live)}\n -r:   {outcomes(back)}")
    ok(f"-r on the written file: same handshake outcomes {dict(outcomes(back))}")
    ls, bs = len(by_type(live, "session")), len(by_type(back, "session"))
    if ls != bs:
        fail(f"sessions: live {ls}, -r {bs}")
    sl, sb = the_summary(live, a.live), the_summary(back, a.readback)
    if sl["packets"] != sb["packets"]:
        fail(f"packets: live analysed {sl['packets']}, file holds {sb['packets']}")
    ok(f"same sessions ({bs}) and packets ({sb['packets']})")
    fl = sorted(f["kind"] for f in by_type(live, "finding"))
    fb = sorted(f["kind"] for f in by_type(back, "finding"))
    if fl != fb:
        fail(f"findings differ: live {fl}, -r {fb}")
    ok(f"same findings ({len(fb)})")


def cmd_rings(a):
    recs = load(a.out)
    s = the_summary(recs, a.out)
    check_no_drops(s, a.out)
    cap = s["capture"]
    rings = cap.get("rings")
    if not isinstance(rings, list) or len(rings) != a.rings or not all(isinstance(n, int) for n in rings):
        fail(f"summary.capture.rings = {rings!r}, expected {a.rings} counts")
    # Every packet the kernel counted was taken from one ring and analysed.
    if sum(rings) != cap["received"] or s["packets"] != cap["received"]:
        fail(f"rings {rings} sum to {sum(rings)}; received {cap['received']}, analysed {s['packets']}")
    ok(f"{a.rings} rings took {' + '.join(map(str, rings))} = {cap['received']} packets, all analysed")


def cmd_summary(a):
    recs = load(a.out)
    check_findings(recs)
    s = the_summary(recs, a.out)
    if a.packets is not None and s["packets"] != a.packets:
        fail(f"summary.packets = {s['packets']}, expected {a.packets}")
    if a.no_drops:
        check_no_drops(s, a.out)
    if a.all_analysed:
        cap = s["capture"]
        if s["packets"] != cap["received"]:
            fail(f"analysed {s['packets']} of {cap['received']} received")
        ok(f"all {s['packets']} received packets analysed")
    ok(f"summary: {s['packets']} packets, capture {s.get('capture')}")


def cmd_identical(a):
    one, two = load(a.one), load(a.two)
    s1, s2 = the_summary(one, a.one), the_summary(two, a.two)
    check_no_drops(s1, a.one)
    check_no_drops(s2, a.two)
    # Two capture sockets stamp the same packet microseconds apart: times,
    # and the latencies made from them, are compared as "a number".
    def shape(x):
        if isinstance(x, float):
            return "<float>"
        if isinstance(x, dict):
            return {k: shape(v) for k, v in x.items()}
        if isinstance(x, list):
            return [shape(v) for v in x]
        return x
    one, two = shape(one), shape(two)
    s1, s2 = the_summary(one, a.one), the_summary(two, a.two)
    r1 = [json.dumps(r, sort_keys=True) for r in one if r["type"] != "summary"]
    r2 = [json.dumps(r, sort_keys=True) for r in two if r["type"] != "summary"]
    if r1 != r2:
        for i, (x, y) in enumerate(zip(r1, r2)):
            if x != y:
                fail(f"record {i} differs:\n {a.one}: {x[:500]}\n {a.two}: {y[:500]}")
        fail(f"{len(r1)} records against {len(r2)}")
    for s in (s1, s2):
        s["memory"].pop("peak_bytes")
        s["memory"].pop("max_connections")
        for k in ("capture", "first_ts", "last_ts", "elapsed_s"):
            s.pop(k, None)
    if s1 != s2:
        diff = {k: (s1.get(k), s2.get(k)) for k in set(s1) | set(s2) if s1.get(k) != s2.get(k)}
        fail(f"summaries differ: {json.dumps(diff)[:800]}")
    ok(f"the same {len(r1)} records, in the same order, and the same summary")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("live")
    p.add_argument("out")
    p.add_argument("--healthy-path", required=True)
    p.add_argument("--healthy", type=int, required=True)
    p.add_argument("--broken-path", required=True)
    p.add_argument("--broken", type=int, required=True)
    p = sub.add_parser("same")
    p.add_argument("live")
    p.add_argument("readback")
    p = sub.add_parser("identical")
    p.add_argument("one")
    p.add_argument("two")
    p = sub.add_parser("rings")
    p.add_argument("out")
    p.add_argument("--rings", type=int, required=True)
    p = sub.add_parser("summary")
    p.add_argument("out")
    p.add_argument("--packets", type=int)
    p.add_argument("--no-drops", action="store_true")
    p.add_argument("--all-analysed", action="store_true")
    a = ap.parse_args()
    {"live": cmd_live, "same": cmd_same, "summary": cmd_summary, "identical": cmd_identical, "rings": cmd_rings}[a.cmd](a)


if __name__ == "__main__":
    main()
