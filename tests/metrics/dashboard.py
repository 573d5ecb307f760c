"""tests/metrics/run.sh: every query of the Grafana dashboard
(contrib/grafana/wstap.json) runs on the real Prometheus that scraped
wstap, and the ones that must have data do.

    dashboard.py PROM_URL DASHBOARD_JSON"""
import json
import sys
import urllib.parse
import urllib.request

prom, path = sys.argv[1:]
with open(path) as f:
    dash = json.load(f)
fails = []
n = with_data = 0
for panel in dash["panels"]:
    for t in panel["targets"]:
        q = t["expr"].replace('"$instance"', '".*"').replace("$__rate_interval", "1m")
        url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": q})
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                body = json.load(r)
        except Exception as e:  # a 400 is a query Prometheus refuses
            fails.append(f"{panel['title']}: {q}: {e}")
            continue
        n += 1
        if body.get("status") != "success":
            fails.append(f"{panel['title']}: {q}: {body}")
        elif body["data"]["result"]:
            with_data += 1
print(f"  {n} dashboard queries accepted by prometheus, {with_data} with data")
if with_data < n // 2:
    fails.append(f"only {with_data} of {n} queries have data")
for f in fails:
    print("FAIL:", f)
sys.exit(1 if fails else 0)
