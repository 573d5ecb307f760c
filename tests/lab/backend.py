#!/usr/bin/env python3
"""WebSocket echo backend for the wstap capture lab.

A real asyncio WebSocket server built on the ``websockets`` library, with a
few failure modes selected by flags. One JSON line per event on stdout.

Modes (--mode):
  echo   (default) WebSocket echo on any path. Non-upgrade requests on
         /api/..., /plain..., /chunked, /health are answered as plain HTTP by
         ``process_request`` (websockets closes the TCP connection after every
         non-101 response, so upstream keep-alive is never offered:
         responses carry ``Connection: close``). Any other non-upgrade request
         goes to websockets' own handshake checks, which answer
         426 (no Connection: upgrade / bad Upgrade), 505 (HTTP/1.0),
         405 (not GET), 403 (Origin not allowed), 400 (other).
  hang   accept TCP, read the request, never answer (connection stays open
         until the peer closes it or --hang-max seconds pass).
  close  accept TCP, read the request head, close without answering.
  slow   accept TCP, read the request head, answer 200 with a small HTML
         page after --delay seconds, then close (a maintenance/error-page
         service that is slow to answer).

Examples:
  backend.py --port 13001
  backend.py --host ::1 --port 13001
  backend.py --port 13001 --origin-allow http://good.example
  backend.py --port 13001 --ping-interval 5
  backend.py --port 13001 --mode hang
"""

import argparse
import asyncio
import json
import signal
import sys
import time

from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Response

T0 = time.time()


def log(event, **kw):
    rec = {"t": round(time.time(), 6), "rel": round(time.time() - T0, 3), "event": event}
    rec.update(kw)
    sys.stdout.write(json.dumps(rec, sort_keys=False) + "\n")
    sys.stdout.flush()


def peer_of(conn):
    try:
        p = conn.remote_address
        return f"{p[0]}:{p[1]}" if p else None
    except Exception:  # pragma: no cover
        return None


def http_date():
    import email.utils

    return email.utils.formatdate(usegmt=True)


def plain_response(status, reason, body, ctype="application/json", chunked=False, head=False):
    headers = Headers()
    headers["Date"] = http_date()
    headers["Content-Type"] = ctype
    if chunked:
        headers["Transfer-Encoding"] = "chunked"
        # split the body into 3 chunks, encode them by hand
        n = max(1, len(body) // 3)
        parts = [body[i : i + n] for i in range(0, len(body), n)]
        wire = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    else:
        headers["Content-Length"] = str(len(body))
        wire = body
    # websockets always closes the TCP connection after a non-101 response.
    headers["Connection"] = "close"
    return Response(status, reason, headers, b"" if head else wire)


PLAIN_PREFIXES = ("/api", "/plain", "/chunked", "/health")


def make_process_request(args):
    def process_request(connection, request):
        path = request.path
        hdrs = request.headers
        upgrade = hdrs.get("Upgrade")
        conn_hdr = ", ".join(hdrs.get_all("Connection"))
        log(
            "request",
            peer=peer_of(connection),
            method=getattr(request, "method", "GET"),
            path=path,
            protocol=getattr(request, "protocol", "HTTP/1.1"),
            upgrade=upgrade,
            connection=conn_hdr or None,
            origin=hdrs.get("Origin"),
            x_forwarded_for=hdrs.get("X-Forwarded-For"),
            x_forwarded_proto=hdrs.get("X-Forwarded-Proto"),
        )
        is_upgrade = upgrade is not None and "upgrade" in conn_hdr.lower()
        if is_upgrade:
            return None  # let websockets do the handshake (and its checks)
        if path.startswith(PLAIN_PREFIXES):
            method = getattr(request, "method", "GET")
            head = method == "HEAD"
            if path.startswith("/chunked"):
                body = json.dumps({"path": path, "chunked": True, "pad": "x" * 60}).encode()
                resp = plain_response(200, "OK", body, chunked=True, head=head)
            else:
                body = json.dumps({"path": path, "ok": True}).encode()
                resp = plain_response(200, "OK", body, head=head)
            log("http_response", peer=peer_of(connection), path=path, method=method, status=resp.status_code)
            return resp
        return None  # websockets will reject with 426/505/... (logged below)

    return process_request


def make_handler(args):
    async def handler(ws):
        peer = peer_of(ws)
        path = ws.request.path if ws.request else None
        log("open", peer=peer, path=path)
        n = 0
        try:
            async for msg in ws:
                n += 1
                await ws.send(msg)
        except ConnectionClosed:
            pass
        rcvd = ws.close_code
        log(
            "closed",
            peer=peer,
            path=path,
            messages=n,
            code=rcvd if rcvd is not None else 1006,
            reason=ws.close_reason or "",
        )

    return handler


async def run_ws(args):
    kw = {}
    if args.origin_allow:
        kw["origins"] = args.origin_allow

    def process_response(connection, request, response):
        if response is not None and response.status_code != 101 and connection.protocol.accept_called:
            log("rejected", peer=peer_of(connection), path=request.path, status=response.status_code,
                reason=response.reason_phrase)
        return None

    async with serve(
        make_handler(args),
        args.host,
        args.port,
        process_request=make_process_request(args),
        process_response=process_response,
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
        close_timeout=2,
        server_header="wstap-lab-backend",
        **kw,
    ) as server:
        log("listening", host=args.host, port=args.port, mode="echo",
            origin_allow=args.origin_allow, ping_interval=args.ping_interval)
        await stop_event().wait()
        server.close()


async def run_raw(args):
    async def on_conn(reader, writer):
        p = writer.get_extra_info("peername")
        peer = f"{p[0]}:{p[1]}" if p else None
        log("accept", peer=peer, mode=args.mode)
        head = b""
        try:
            while b"\r\n\r\n" not in head and len(head) < 65536:
                chunk = await asyncio.wait_for(reader.read(4096), timeout=30)
                if not chunk:
                    break
                head += chunk
        except asyncio.TimeoutError:
            pass
        first = head.split(b"\r\n", 1)[0].decode("latin-1", "replace")
        log("request", peer=peer, request_line=first, bytes=len(head))
        if args.mode == "close":
            writer.close()
            log("closed_without_answer", peer=peer)
            return
        if args.mode == "slow":
            await asyncio.sleep(args.delay)
            body = b"<html><body><h1>The service is busy, try again later</h1></body></html>\n"
            writer.write(
                b"HTTP/1.1 200 OK\r\nServer: wstap-lab-errorpage\r\nContent-Type: text/html\r\n"
                + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
                + body
            )
            await writer.drain()
            writer.close()
            log("answered_slowly", peer=peer, delay=args.delay)
            return
        # hang: never answer; wait for EOF from the peer (bounded)
        try:
            while True:
                chunk = await asyncio.wait_for(reader.read(4096), timeout=args.hang_max)
                if not chunk:
                    break
        except asyncio.TimeoutError:
            pass
        except ConnectionError:
            pass
        log("peer_gone", peer=peer)
        writer.close()

    server = await asyncio.start_server(on_conn, args.host, args.port, reuse_address=True)
    log("listening", host=args.host, port=args.port, mode=args.mode)
    async with server:
        await stop_event().wait()


_STOP = None


def stop_event():
    global _STOP
    if _STOP is None:
        _STOP = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, _STOP.set)
    return _STOP


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mode", choices=["echo", "hang", "close", "slow"], default="echo")
    ap.add_argument("--origin-allow", action="append", default=None, metavar="ORIGIN",
                    help="allowed Origin (repeatable); others get 403")
    ap.add_argument("--ping-interval", type=float, default=None,
                    help="server-side keepalive pings every N s (default: off)")
    ap.add_argument("--ping-timeout", type=float, default=None)
    ap.add_argument("--delay", type=float, default=0.5, help="slow mode: seconds before answering")
    ap.add_argument("--hang-max", type=float, default=120.0,
                    help="hang mode: give up on a silent connection after N s")
    args = ap.parse_args()
    if args.mode == "echo":
        asyncio.run(run_ws(args))
    else:
        asyncio.run(run_raw(args))
    log("exit")


if __name__ == "__main__":
    main()
