#!/usr/bin/env python3
"""Cross-check the captures against manifest.json and the client logs (tshark).

  python3 captures/verify.py [NAME...]       # exit status 1 if any check fails

For every capture it decodes all proxy/upstream ports as HTTP and checks that
  * the client-facing hop carries one upgrade request per WebSocket session in
    the client log, answered with the status the client reported (101 for the
    bad-accept case, where the client itself rejected the 101),
  * the plain HTTP statuses the client reported appear on the client hop,
  * every upstream in the manifest was contacted (SYN seen) unless the
    scenario never proxies that request, and
  * WebSocket close frames / the absence of them match the client's close codes.
TLS front hops cannot be decoded; for them only the upstream hop is checked.
"""

import collections
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def tshark(pcap, ports, fields, yfilter):
    cmd = ["tshark", "-r", pcap]
    for p in ports:
        cmd += ["-d", f"tcp.port=={p},http"]
    cmd += ["-Y", yfilter, "-T", "fields", "-E", "separator=\t"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
    return [line.split("\t") for line in out.splitlines() if line.strip()]


def port_of(addr):
    return int(addr.rsplit(":", 1)[1])


def check(entry):
    name = entry["name"]
    pcap = os.path.join(HERE, entry["file"])
    problems, notes = [], []
    if not os.path.exists(pcap):
        return [f"missing {entry['file']}"], notes
    fronts = [port_of(a) for a in entry["front"]]
    ups = [port_of(a) for a in entry["upstreams"]]
    ports = fronts + ups
    tls = "tls" in name
    saw = entry["client_saw"]
    syn = tshark(pcap, [], ["tcp.dstport"], "tcp.flags.syn==1 && tcp.flags.ack==0")
    syn_ports = collections.Counter(int(r[0]) for r in syn if r and r[0])
    # The hop nearest the client in the capture: the proxy's front, or the
    # server itself when there is no proxy (direct) or the capture holds the
    # upstream hop only (a filter on the backend port).
    front = next((p for p in fronts if syn_ports[p]), ups[0])
    upstream_only = bool(fronts) and front not in fronts
    if upstream_only:
        notes.append(f"capture holds the upstream hop only (port {front}); the proxy relayed its statuses")

    rows = tshark(pcap, ports,
                  ["tcp.stream", "tcp.srcport", "tcp.dstport", "http.request.method",
                   "http.request.uri", "http.upgrade", "http.response.code", "http.request.version"],
                  "http.request || http.response")
    # requests / responses on the client-facing hop, in order per TCP stream
    req_by_stream = collections.defaultdict(list)
    client_resp = []
    for stream, sp, dp, method, uri, upg, code, ver in [(r + [""] * 8)[:8] for r in rows]:
        sp, dp = int(sp), int(dp)
        # several pipelined messages in one segment: tshark joins fields with ","
        if dp == front and method:
            for m, u in zip(method.split(","), uri.split(",")):
                # upstream hop only: the forwarded upgrade may have lost its
                # Upgrade header; every request there is a WebSocket attempt
                # when the client made no plain ones
                ws_attempt = bool(upg) or (upstream_only and not any(x["kind"] == "http" for x in saw))
                req_by_stream[stream].append((m, u, ws_attempt))
        if sp == front and code:
            for c in code.split(","):
                req = req_by_stream[stream].pop(0) if req_by_stream[stream] else (None, None, False)
                client_resp.append((req, int(c)))

    ws_saw = [s for s in saw if s["kind"] == "ws"]
    http_saw = [s for s in saw if s["kind"] == "http"]
    sio_saw = [s for s in saw if s["kind"] == "socketio"]

    if not tls:
        want = collections.Counter(
            (101 if s.get("exception") == "InvalidHeaderValue" else s.get("status")) for s in ws_saw)
        got = collections.Counter(code for (m, u, upg), code in client_resp if upg and "EIO=" not in (u or ""))
        if want != got:
            problems.append(f"ws handshake statuses: client log {dict(want)} vs capture {dict(got)}")
        want_h = collections.Counter((s["request"], s["status"]) for s in http_saw)
        got_h = collections.Counter((f"{m} {u}", code) for (m, u, upg), code in client_resp
                                    if not upg and m is not None and "EIO=" not in (u or ""))
        if want_h != got_h:
            missing = want_h - got_h
            piped = {s["request"] for s in http_saw if s.get("pipelined")}
            head_piped = any(r.startswith("HEAD ") for r in piped)
            if not (got_h - want_h) and head_piped and all(r in piped for r, _ in missing):
                # tshark's HTTP dissector takes the bytes after a pipelined HEAD
                # response (Content-Length, no body) as its body
                notes.append(f"tshark did not parse {sorted(r for r, _ in missing)} "
                             "(it follows a HEAD response in the same segment)")
            else:
                problems.append(f"http statuses: client log {dict(want_h)} vs capture {dict(got_h)}")
        for s in sio_saw:
            n101 = sum(1 for (m, u, upg), code in client_resp if upg and code == 101)
            if (s.get("final_transport") == "websocket") != (n101 > 0):
                problems.append(f"socket.io final transport {s.get('final_transport')} but {n101} x 101 on the client hop")
    else:
        notes.append("front is TLS: client hop not decoded")

    # upstream hops: a SYN towards every upstream (and every further proxy hop)
    for p in ports[1:] if not upstream_only else []:
        if syn_ports[p] == 0:
            problems.append(f"no connection to {p} in the capture")
    if syn_ports[front] == 0:
        problems.append(f"no connection to the front port {front}")

    # close frames on the client hop vs client close codes
    if not tls and not sio_saw:
        closes = tshark(pcap, ports, ["tcp.srcport", "tcp.dstport"], "websocket.opcode == 8")
        to_client = sum(1 for sp, dp in closes if int(sp) == front)
        want_close = sum(1 for s in ws_saw if s.get("close_frame_received"))
        if to_client != want_close:
            problems.append(f"close frames to the client: capture {to_client}, client log {want_close}")
    return problems, notes


def main():
    manifest = json.load(open(os.path.join(HERE, "manifest.json")))
    names = sys.argv[1:]
    bad = 0
    for e in manifest:
        if names and e["name"] not in names:
            continue
        problems, notes = check(e)
        status = "OK  " if not problems else "FAIL"
        bad += bool(problems)
        extra = ("; " + "; ".join(notes)) if notes else ""
        print(f"{status} {e['name']}{extra}")
        for p in problems:
            print(f"     - {p}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
