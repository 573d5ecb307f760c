#!/usr/bin/env python3
"""Maintain captures/manifest.json (called by captures/record.sh).

  manifest.py update --manifest captures/manifest.json --capdir captures \
      --order "name1 name2 ..." --name NAME key=value ...

Keys: proxy, scenario, linktype, notes (strings); front, upstreams,
expected_kinds, optional_kinds (comma-separated lists).
"client_saw" is summarised from captures/NAME.client.jsonl, "file" and
"pcap_bytes" from captures/NAME.pcap.

  manifest.py refresh --manifest captures/manifest.json --capdir captures [NAME...]
      # recompute client_saw / pcap_bytes of existing entries from the files

  manifest.py summary captures/NAME.client.jsonl   # print the summary only
"""

import argparse
import json
import os
import sys

LIST_KEYS = {"front", "upstreams", "expected_kinds", "optional_kinds"}
FIELD_ORDER = [
    "name", "file", "proxy", "scenario", "front", "upstreams", "linktype",
    "client_saw", "expected_kinds", "optional_kinds", "notes", "client_log", "pcap_bytes",
]


def summarise(path):
    sessions = {}
    order = []
    out = []
    try:
        lines = [json.loads(x) for x in open(path) if x.strip()]
    except FileNotFoundError:
        return []
    for r in lines:
        ev = r.get("event")
        g = r.get("group")
        if ev == "start" and r.get("mode") == "ws":
            continue
        if ev in ("handshake", "closed", "aborted", "messages", "ping"):
            key = (g, r.get("session"))
            if key not in sessions:
                s = {"kind": "ws"}
                if g:
                    s["group"] = g
                s["session"] = r.get("session")
                sessions[key] = s
                order.append(key)
                out.append(s)
            s = sessions[key]
            if ev == "handshake":
                s["status"] = r.get("status")
                if not r.get("ok"):
                    s["exception"] = r.get("exception")
                    if r.get("error"):
                        s["error"] = r["error"][:160]
                s["handshake_s"] = r.get("elapsed")
            elif ev == "messages":
                s["echoed"] = f'{r.get("echoed")}/{r.get("sent")}'
            elif ev == "ping":
                k = "heartbeats_ok" if r.get("heartbeat") else "pings_ok"
                s[k] = s.get(k, 0) + (1 if r.get("pong") else 0)
            elif ev == "closed":
                s["close_code"] = r.get("code")
                s["close_frame_received"] = r.get("close_frame_received")
                s["closed_by"] = r.get("by")
                s["open_for_s"] = r.get("open_for")
            elif ev == "aborted":
                s["close_code"] = None
                s["closed_by"] = "client-abort"
                s["open_for_s"] = r.get("open_for")
        elif ev == "http":
            h = {"kind": "http"}
            if g:
                h["group"] = g
            h["conn"] = r.get("conn")
            h["request"] = f'{r.get("method")} {r.get("path")}'
            if r.get("pipelined"):
                h["pipelined"] = True
            if "status" in r:
                h["status"] = r["status"]
                if r.get("transfer_encoding"):
                    h["transfer_encoding"] = r["transfer_encoding"]
            else:
                h["status"] = None
                h["exception"] = r.get("exception")
            out.append(h)
        elif ev == "summary" and "final_transport" in r:
            out.append({"kind": "socketio", "connected": r.get("connected"),
                        "final_transport": r.get("final_transport"), "echoes": r.get("echoes")})
        elif ev == "connect_failed":
            out.append({"kind": "socketio", "connected": False, "exception": r.get("exception")})
    return out


def update(args):
    try:
        data = json.load(open(args.manifest))
    except (FileNotFoundError, json.JSONDecodeError):
        data = []
    entry = {"name": args.name, "file": f"{args.name}.pcap"}
    for kv in args.kv:
        k, _, v = kv.partition("=")
        if k in LIST_KEYS:
            entry[k] = [x.strip() for x in v.split(",") if x.strip()]
        else:
            entry[k] = v
    for k in LIST_KEYS:
        entry.setdefault(k, [])
    entry["client_log"] = f"{args.name}.client.jsonl"
    entry["client_saw"] = summarise(os.path.join(args.capdir, entry["client_log"]))
    try:
        entry["pcap_bytes"] = os.path.getsize(os.path.join(args.capdir, entry["file"]))
    except OSError:
        entry["pcap_bytes"] = None
    entry = {k: entry[k] for k in FIELD_ORDER if k in entry} | {
        k: v for k, v in entry.items() if k not in FIELD_ORDER}
    data = [e for e in data if e.get("name") != args.name] + [entry]
    order = args.order.split() if args.order else []
    rank = {n: i for i, n in enumerate(order)}
    data.sort(key=lambda e: rank.get(e["name"], len(rank)))
    with open(args.manifest + ".tmp", "w") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
    os.replace(args.manifest + ".tmp", args.manifest)


def refresh(args):
    data = json.load(open(args.manifest))
    for e in data:
        if args.names and e["name"] not in args.names:
            continue
        e["client_saw"] = summarise(os.path.join(args.capdir, e["client_log"]))
        try:
            e["pcap_bytes"] = os.path.getsize(os.path.join(args.capdir, e["file"]))
        except OSError:
            e["pcap_bytes"] = None
    with open(args.manifest + ".tmp", "w") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
    os.replace(args.manifest + ".tmp", args.manifest)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    u = sub.add_parser("update")
    u.add_argument("--manifest", required=True)
    u.add_argument("--capdir", required=True)
    u.add_argument("--name", required=True)
    u.add_argument("--order", default="")
    u.add_argument("kv", nargs="*")
    r = sub.add_parser("refresh")
    r.add_argument("--manifest", required=True)
    r.add_argument("--capdir", required=True)
    r.add_argument("names", nargs="*")
    s = sub.add_parser("summary")
    s.add_argument("jsonl")
    args = ap.parse_args()
    if args.cmd == "update":
        update(args)
    elif args.cmd == "refresh":
        refresh(args)
    else:
        for x in summarise(args.jsonl):
            print(json.dumps(x))


if __name__ == "__main__":
    sys.exit(main())
