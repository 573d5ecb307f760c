#!/usr/bin/env python3
"""Socket.IO echo server for the wstap capture lab: python-socketio
(AsyncServer) on aiohttp. Serves /socket.io/ (Engine.IO v4: long-polling and
websocket transports) plus GET /health. One JSON line per event on stdout.

  sio_server.py --port 13020 [--host ::1] [--ping-interval 5]
"""

import argparse
import json
import sys
import time

import socketio
from aiohttp import web

T0 = time.time()


def log(event, **kw):
    rec = {"t": round(time.time(), 6), "rel": round(time.time() - T0, 3), "event": event}
    rec.update(kw)
    sys.stdout.write(json.dumps(rec) + "\n")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--ping-interval", type=float, default=5,
                    help="Engine.IO ping interval (also bounds a long-poll)")
    ap.add_argument("--ping-timeout", type=float, default=2)
    args = ap.parse_args()

    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        cors_allowed_origins="*",
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
    )
    app = web.Application()

    @web.middleware
    async def access_log(request, handler):
        resp = await handler(request)
        log("http", method=request.method, path=request.path_qs[:120],
            version=f"{request.version.major}.{request.version.minor}",
            upgrade=request.headers.get("Upgrade"), connection=request.headers.get("Connection"),
            status=getattr(resp, "status", None))
        return resp

    app.middlewares.append(access_log)

    async def health(request):
        return web.json_response({"ok": True})

    app.router.add_get("/health", health)
    sio.attach(app)

    @sio.event
    async def connect(sid, environ, auth=None):
        log("connect", sid=sid, transport=sio.transport(sid))

    @sio.event
    async def echo(sid, data):
        log("echo", sid=sid, transport=sio.transport(sid), data=data)
        return data

    @sio.event
    async def disconnect(sid, *a):
        log("disconnect", sid=sid, reason=str(a[0]) if a else None)

    log("listening", host=args.host, port=args.port)
    web.run_app(app, host=args.host, port=args.port, print=None, handle_signals=True,
                shutdown_timeout=1)
    log("exit")


if __name__ == "__main__":
    main()
