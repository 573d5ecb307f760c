#!/usr/bin/env python3
"""Socket.IO client for the wstap capture lab: python-socketio AsyncClient
(aiohttp underneath) with transports polling+websocket, i.e. it starts with
HTTP long-polling and tries to upgrade to a WebSocket. Prints what it saw as
JSON lines: connect, the transport in use after each step, echo replies,
and the transport it ended on.

  sio_client.py http://127.0.0.1:18080 [--messages 3] [--wait 2] [--group L]
                [--path rt]     # Socket.IO mounted under /rt/ instead of /socket.io/
"""

import argparse
import asyncio
import json
import sys
import time

import socketio

T0 = time.time()
GROUP = None


def log(event, **kw):
    rec = {"t": round(time.time(), 6), "rel": round(time.time() - T0, 3), "event": event}
    if GROUP:
        rec["group"] = GROUP
    rec.update(kw)
    sys.stdout.write(json.dumps(rec) + "\n")
    sys.stdout.flush()


async def run(args):
    sio = socketio.AsyncClient(reconnection=False)
    log("start", url=args.url, path=args.path, transports=["polling", "websocket"], messages=args.messages)

    @sio.event
    async def disconnect(*a):
        log("disconnected", reason=str(a[0]) if a else None)

    t = time.time()
    try:
        await sio.connect(args.url, transports=["polling", "websocket"], wait_timeout=10,
                          socketio_path=args.path)
    except Exception as exc:
        log("connect_failed", exception=type(exc).__name__, error=str(exc))
        log("summary", connected=False, final_transport=None)
        return
    log("connected", sid=sio.sid, transport=sio.transport(), elapsed=round(time.time() - t, 3))
    await asyncio.sleep(args.wait)
    log("transport", transport=sio.transport(), after_s=args.wait)
    replies = 0
    for k in range(args.messages):
        try:
            r = await sio.call("echo", {"n": k}, timeout=10)
            replies += 1
            log("echo", n=k, reply=r, transport=sio.transport())
        except Exception as exc:
            log("echo_failed", n=k, exception=type(exc).__name__)
        await asyncio.sleep(0.3)
    final = sio.transport()
    log("final_transport", transport=final)
    await sio.disconnect()
    log("summary", connected=True, final_transport=final, echoes=replies)


def main():
    global GROUP
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url")
    ap.add_argument("--messages", type=int, default=3)
    ap.add_argument("--wait", type=float, default=2.0, help="seconds to let the upgrade happen")
    ap.add_argument("--group")
    ap.add_argument("--path", default="socket.io", help="the server's Socket.IO path (socketio_path)")
    args = ap.parse_args()
    GROUP = args.group
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
