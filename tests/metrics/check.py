"""tests/metrics/run.sh: compares what a real Prometheus server stored from
wstap's endpoint with wstap's own JSON summary, and checks the alert.

    check.py PROM_URL SUMMARY_JSONL EXPECT_KINDS...

Exit 0 when the counters Prometheus holds equal the summary (handshakes by
outcome, findings by kind, sessions), the endpoint was scraped at least
twice, and WstapUpgradeStripped is firing."""
import json
import sys
import urllib.parse
import urllib.request

prom, out_path, *expect_kinds = sys.argv[1:]


def query(q):
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": q})
    with urllib.request.urlopen(url, timeout=5) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return body["data"]["result"]


def by(label, q):
    return {s["metric"].get(label, ""): float(s["value"][1]) for s in query(q)}


summary = None
with open(out_path) as f:
    for line in f:
        r = json.loads(line)
        if r.get("type") == "summary":
            summary = r
assert summary is not None, "no summary from wstap"

fails = []
scrapes = by("job", 'count_over_time(up{job="wstap"}[10m])').get("wstap", 0)
if scrapes < 2:
    fails.append(f"scraped {scrapes} times")
print(f"  prometheus scraped wstap {int(scrapes)} times")

# wstap has stopped: the next scrape failed and Prometheus marked its series
# stale, so the last values stored are read over a range.
hs = by("outcome", "sum by (outcome) (last_over_time(wstap_handshakes_total[5m]))")
for outcome in ("upgraded", "rejected", "failed", "incomplete"):
    want, got = summary["handshakes"][outcome], hs.get(outcome)
    print(f"  handshakes {outcome}: summary {want}, prometheus {got}")
    if got != want:
        fails.append(f"handshakes {outcome}: summary {want}, prometheus {got}")

kinds = by("kind", "sum by (kind) (last_over_time(wstap_findings_total[5m]))")
for kind, got in sorted(kinds.items()):
    want = summary["findings"].get(kind, 0)
    if got or want:
        print(f"  findings {kind}: summary {want}, prometheus {got}")
    if got != want:
        fails.append(f"findings {kind}: summary {want}, prometheus {got}")
for kind in summary["findings"]:
    if kind not in kinds:
        fails.append(f"findings {kind}: not in prometheus")
for kind in expect_kinds:
    if not kinds.get(kind):
        fails.append(f"expected a {kind} finding: {kinds}")

sessions = sum(by("how", "sum by (how) (last_over_time(wstap_sessions_closed_total[5m]))").values())
print(f"  sessions: summary {summary['sessions']}, prometheus {sessions}")
if sessions != summary["sessions"]:
    fails.append(f"sessions: summary {summary['sessions']}, prometheus {sessions}")

# The analysis workers' shares (one thread: worker 0) add up to the TCP
# segments read, as stored from the same scrapes.
workers = by("worker", "last_over_time(wstap_worker_packets_total[5m])")
tcp = sum(by("job", "last_over_time(wstap_tcp_packets_total[5m])").values())
print(f"  worker packets: {workers}, tcp packets {tcp}")
if not workers or sum(workers.values()) != tcp or tcp == 0:
    fails.append(f"worker packets {workers} do not add up to the {tcp} TCP packets")

with urllib.request.urlopen(f"{prom}/api/v1/alerts", timeout=5) as r:
    alerts = json.load(r)["data"]["alerts"]
firing = sorted(a["labels"]["alertname"] for a in alerts if a["state"] == "firing")
print(f"  alerts firing: {', '.join(firing) or 'none'}")
if "WstapUpgradeStripped" not in firing:
    fails.append(f"WstapUpgradeStripped is not firing: {alerts}")

for f in fails:
    print("FAIL:", f)
sys.exit(1 if fails else 0)
