#!/usr/bin/env python3
"""Lab client: real WebSocket sessions (``websockets`` asyncio client) or plain
HTTP keep-alive requests. Prints what the client SAW as JSON lines on stdout
(ground truth for the captures).

WebSocket mode:
  client.py ws ws://127.0.0.1:18080/ws [--count K] [--stagger S]
            [--messages N] [--msg-gap S] [--size B] [--pings N]
            [--ping-interval S|none] [--ping-jitter S] [--idle S] [--close | --end close|abort]
            [--origin O] [--insecure] [--header 'Name: value'] [--group LABEL]

  Each session: open handshake -> N text messages (each echoed back) ->
  N explicit pings (--pings) -> stay idle --idle seconds (sending a ping every
  --ping-interval seconds on a fixed schedule counted from the open, like a
  setInterval heartbeat started in onopen; --ping-jitter adds timer jitter) -> end: --close sends a Close 1000 and waits
  for the reply; otherwise the TCP connection is aborted (default --end abort).
  If the peer closes/drops first, the session ends there.

  Events: "handshake" (status 101, or status/exception of a failure),
  "message" summary, "ping", "closed" (code as seen by the client: 1006 when
  the TCP connection dropped without a Close frame), "summary".

HTTP mode (one TCP connection, several keep-alive requests):
  client.py http http://127.0.0.1:18080 --req GET:/api/a --req HEAD:/api/b
            [--pipeline] [--conns C]

  Without --pipeline the requests are sent one after the other with
  http.client (keep-alive). With --pipeline all requests are written in one
  send() and the responses are parsed in order (Content-Length, chunked, HEAD).
"""

import argparse
import asyncio
import json
import random
import socket
import ssl
import sys
import time
import urllib.parse

T0 = time.time()
GROUP = None



def server_of(headers):
    """The Server header(s), joined: a proxy may add its own beside the
    backend's (Caddy sends both), and websockets' .get() refuses repeats."""
    vals = headers.get_all("Server")
    return ", ".join(vals) if vals else None

def log(event, **kw):
    now = time.time()
    rec = {"t": round(now, 6), "rel": round(now - T0, 3), "event": event}
    if GROUP:
        rec["group"] = GROUP
    rec.update(kw)
    sys.stdout.write(json.dumps(rec) + "\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------
# WebSocket mode
# --------------------------------------------------------------------------


async def ws_session(i, args, results):
    from websockets.asyncio.client import connect
    from websockets.exceptions import (
        ConnectionClosed,
        InvalidHandshake,
        InvalidStatus,
    )

    await asyncio.sleep(i * args.stagger)
    res = {"session": i, "status": None, "close_code": None}
    results.append(res)
    kw = {}
    if args.origin:
        kw["origin"] = args.origin
    if args.header:
        kw["additional_headers"] = [tuple(x.split(":", 1)) for x in args.header]
        kw["additional_headers"] = [(a.strip(), b.strip()) for a, b in kw["additional_headers"]]
    if args.url.startswith("wss:"):
        ctx = ssl.create_default_context()
        if args.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        kw["ssl"] = ctx
    if args.no_compression:
        kw["compression"] = None
    t_start = time.time()
    try:
        ws = await connect(
            args.url,
            ping_interval=None,  # heartbeats are driven by hand below
            open_timeout=args.open_timeout,
            close_timeout=3,
            user_agent_header="wstap-lab-client",
            **kw,
        )
    except InvalidStatus as exc:
        r = exc.response
        body = (r.body or b"")[:200].decode("utf-8", "replace")
        res["status"] = r.status_code
        log("handshake", session=i, ok=False, status=r.status_code, reason=r.reason_phrase,
            exception="InvalidStatus", server=server_of(r.headers), body=body,
            elapsed=round(time.time() - t_start, 3))
        return
    except InvalidHandshake as exc:
        res["status"] = "error"
        res["exception"] = type(exc).__name__
        log("handshake", session=i, ok=False, status=None, exception=type(exc).__name__,
            error=str(exc), elapsed=round(time.time() - t_start, 3))
        return
    except (OSError, asyncio.TimeoutError, EOFError) as exc:
        res["status"] = "error"
        res["exception"] = type(exc).__name__
        log("handshake", session=i, ok=False, status=None, exception=type(exc).__name__,
            error=str(exc), elapsed=round(time.time() - t_start, 3))
        return

    t_open = time.time()
    res["status"] = 101
    local = ws.local_address
    log("handshake", session=i, ok=True, status=101, local=f"{local[0]}:{local[1]}",
        server=server_of(ws.response.headers), elapsed=round(t_open - t_start, 3))

    def closed_event(by):
        code = ws.close_code
        rcvd = ws.protocol.close_rcvd
        res["close_code"] = code
        log("closed", session=i, code=code, reason=ws.close_reason or "",
            close_frame_received=rcvd is not None, by=by,
            open_for=round(time.time() - t_open, 3))

    try:
        rtts = []
        for k in range(args.messages):
            if k and args.msg_gap:
                await asyncio.sleep(args.msg_gap)
            payload = f"s{i} m{k} " + "x" * max(0, args.size - 8)
            t = time.time()
            await ws.send(payload)
            echo = await asyncio.wait_for(ws.recv(), timeout=10)
            rtts.append(round((time.time() - t) * 1000, 2))
            if echo != payload:
                log("echo_mismatch", session=i, k=k)
        if args.messages:
            log("messages", session=i, sent=args.messages, echoed=len(rtts), rtt_ms=rtts)
        for k in range(args.pings):
            t = time.time()
            waiter = await ws.ping(f"p{k}".encode())
            await asyncio.wait_for(waiter, timeout=10)
            log("ping", session=i, n=k, pong=True, rtt_ms=round((time.time() - t) * 1000, 2))

        # idle phase, with an optional fixed-schedule heartbeat
        deadline = time.time() + args.idle
        n_ping = 0
        # fixed-rate schedule anchored at the open, like a browser app doing
        # setInterval(ping, N) in onopen (optionally with timer jitter)
        anchor = t_open
        next_ping = anchor + args.ping_interval if args.ping_interval else None
        jitter = (lambda: random.uniform(-args.ping_jitter, args.ping_jitter)) if args.ping_jitter else (lambda: 0.0)
        fire_at = next_ping + jitter() if next_ping is not None else None
        while True:
            now = time.time()
            if now >= deadline:
                break
            wake = deadline if fire_at is None else min(deadline, fire_at)
            closed = False
            try:
                await asyncio.wait_for(asyncio.shield(ws.wait_closed()), timeout=max(0.0, wake - now))
                closed = True
            except asyncio.TimeoutError:
                pass
            if closed:
                closed_event("remote")
                return
            if fire_at is not None and time.time() >= fire_at:
                t = time.time()
                waiter = await ws.ping(f"hb{n_ping}".encode())
                try:
                    await asyncio.wait_for(asyncio.shield(waiter), timeout=args.ping_interval)
                    log("ping", session=i, n=n_ping, heartbeat=True, pong=True,
                        rtt_ms=round((time.time() - t) * 1000, 2),
                        sent_after_anchor_s=round(t - anchor, 4))
                except asyncio.TimeoutError:
                    log("ping", session=i, n=n_ping, heartbeat=True, pong=False,
                        sent_after_anchor_s=round(t - anchor, 4))
                n_ping += 1
                next_ping += args.ping_interval
                while next_ping <= time.time():
                    next_ping += args.ping_interval
                fire_at = next_ping + jitter()
    except ConnectionClosed:
        closed_event("remote")
        return
    except asyncio.TimeoutError:
        log("timeout", session=i, phase="messages")

    if args.end == "close":
        await ws.close(1000, "bye")
        closed_event("client")
    else:
        ws.transport.abort()
        res["close_code"] = "abort"
        log("aborted", session=i, open_for=round(time.time() - t_open, 3))


async def ws_main(args):
    log("start", mode="ws", url=args.url, count=args.count, messages=args.messages,
        ping_interval=args.ping_interval, idle=args.idle, end=args.end, origin=args.origin)
    results = []
    await asyncio.gather(*(ws_session(i, args, results) for i in range(args.count)))
    results.sort(key=lambda r: r["session"])
    log("summary", sessions=len(results),
        statuses=[r["status"] for r in results],
        close_codes=[r["close_code"] for r in results])


# --------------------------------------------------------------------------
# HTTP mode
# --------------------------------------------------------------------------


def parse_reqs(reqs):
    out = []
    for r in reqs:
        m, _, p = r.partition(":")
        out.append((m.upper(), p or "/"))
    return out


def http_sequential(u, reqs, ci):
    import http.client

    cls = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
    kw = {}
    if u.scheme == "https":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        kw["context"] = ctx
    conn = cls(u.hostname, u.port, timeout=10, **kw)
    statuses = []
    for method, path in reqs:
        t = time.time()
        try:
            conn.request(method, path, headers={"User-Agent": "wstap-lab-client"})
            local = conn.sock.getsockname() if conn.sock else None
            r = conn.getresponse()
            body = r.read()
        except Exception as exc:  # connection dropped etc.
            log("http", conn=ci, method=method, path=path, ok=False, exception=type(exc).__name__,
                error=str(exc))
            statuses.append(type(exc).__name__)
            conn.close()
            conn = cls(u.hostname, u.port, timeout=10, **kw)
            continue
        log("http", conn=ci, method=method, path=path, status=r.status, version=r.version,
            connection=r.getheader("Connection"), transfer_encoding=r.getheader("Transfer-Encoding"),
            content_length=r.getheader("Content-Length"), body_len=len(body),
            local=f"{local[0]}:{local[1]}" if local else None,
            elapsed=round(time.time() - t, 3))
        statuses.append(r.status)
    conn.close()
    return statuses


def read_response(f, method):
    line = f.readline()
    if not line:
        raise EOFError("connection closed before status line")
    version, status, *_ = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    headers = {}
    while True:
        h = f.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        k, _, v = h.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    status = int(status)
    body = b""
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        pass
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int(f.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while f.readline() not in (b"\r\n", b"\n", b""):
                    pass
                break
            body += f.read(size)
            f.readline()
    elif "content-length" in headers:
        body = f.read(int(headers["content-length"]))
    else:
        body = f.read()
    return version, status, headers, body


def http_pipelined(u, reqs, ci):
    host = u.hostname
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect((host, u.port))
    hosthdr = f"[{host}]:{u.port}" if fam == socket.AF_INET6 else f"{host}:{u.port}"
    wire = b"".join(
        f"{m} {p} HTTP/1.1\r\nHost: {hosthdr}\r\nUser-Agent: wstap-lab-client\r\n\r\n".encode()
        for m, p in reqs
    )
    local = s.getsockname()
    t = time.time()
    s.sendall(wire)
    log("http_pipeline_sent", conn=ci, requests=len(reqs), bytes=len(wire), local=f"{local[0]}:{local[1]}")
    f = s.makefile("rb")
    statuses = []
    for m, p in reqs:
        try:
            version, status, headers, body = read_response(f, m)
        except Exception as exc:
            log("http", conn=ci, method=m, path=p, ok=False, exception=type(exc).__name__, error=str(exc))
            statuses.append(type(exc).__name__)
            break
        log("http", conn=ci, method=m, path=p, status=status, version=version, pipelined=True,
            connection=headers.get("connection"), transfer_encoding=headers.get("transfer-encoding"),
            content_length=headers.get("content-length"), body_len=len(body),
            elapsed=round(time.time() - t, 3))
        statuses.append(status)
    s.close()
    return statuses


def http_main(args):
    u = urllib.parse.urlsplit(args.url)
    reqs = parse_reqs(args.req or ["GET:/api/one", "GET:/api/two"])
    log("start", mode="http", url=args.url, requests=[f"{m} {p}" for m, p in reqs],
        pipeline=args.pipeline, conns=args.conns)
    allst = []
    for ci in range(args.conns):
        if args.pipeline:
            allst.append(http_pipelined(u, reqs, ci))
        else:
            allst.append(http_sequential(u, reqs, ci))
    log("summary", statuses=allst)


def main():
    global GROUP
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    w = sub.add_parser("ws")
    w.add_argument("url")
    w.add_argument("--count", type=int, default=1, help="parallel sessions")
    w.add_argument("--stagger", type=float, default=0.05, help="delay between session starts (s)")
    w.add_argument("--messages", type=int, default=3)
    w.add_argument("--msg-gap", type=float, default=0.1, help="pause between messages (s)")
    w.add_argument("--size", type=int, default=16, help="text payload size (bytes)")
    w.add_argument("--pings", type=int, default=0, help="explicit pings after the messages")
    w.add_argument("--ping-interval", default="none", help="heartbeat ping period in s, or none")
    w.add_argument("--ping-jitter", type=float, default=0.0,
                   help="each heartbeat fires at its slot +/- a uniform random offset of up to S s")
    w.add_argument("--idle", type=float, default=0.0, help="idle seconds after the messages")
    w.add_argument("--close", action="store_true", help="end with a clean Close 1000 (= --end close)")
    w.add_argument("--end", choices=["close", "abort"], default="abort")
    w.add_argument("--no-compression", action="store_true",
                   help="do not offer permessage-deflate (offered by default, like browsers)")
    w.add_argument("--origin")
    w.add_argument("--header", action="append")
    w.add_argument("--insecure", action="store_true", help="wss: do not verify the certificate")
    w.add_argument("--open-timeout", type=float, default=10.0)
    w.add_argument("--group")
    h = sub.add_parser("http")
    h.add_argument("url")
    h.add_argument("--req", action="append", help="METHOD:/path (repeatable)")
    h.add_argument("--pipeline", action="store_true")
    h.add_argument("--conns", type=int, default=1)
    h.add_argument("--group")
    args = ap.parse_args()
    GROUP = args.group
    if args.mode == "ws":
        args.ping_interval = None if args.ping_interval in ("none", "0", "") else float(args.ping_interval)
        if args.close:
            args.end = "close"
        asyncio.run(ws_main(args))
    else:
        http_main(args)


if __name__ == "__main__":
    main()
