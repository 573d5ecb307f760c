#!/usr/bin/env python3
"""WebSocket load for the live tests and bench/live.sh: C connections through
the proxy, each sending messages of random (incompressible) bytes and
waiting for every echo. Compression is off, so the bytes on the wire are the
bytes asked for.

  load.py ws://127.0.0.1:18481/ws --conns 4 --messages 1000 --size 64 [--rate R] [--duration S]

--rate R paces the sum of all connections to about R messages/s (0: as fast
as the echo allows); --duration S stops every connection after S seconds.
Prints one JSON line: messages sent and echoed, seconds, handshakes.
"""

import argparse
import asyncio
import json
import os
import sys
import time


async def one(i, a, stats, t_end):
    from websockets.asyncio.client import connect

    payload = os.urandom(a.size)
    gap = a.conns / a.rate if a.rate > 0 else 0.0
    async with connect(a.url, compression=None, max_size=None, open_timeout=10, close_timeout=5) as ws:
        stats["handshakes"] += 1
        next_t = time.monotonic() + (gap * i / a.conns if gap else 0)
        for _ in range(a.messages):
            if time.monotonic() >= t_end:
                break
            if gap:
                delay = next_t - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                next_t += gap
            await ws.send(payload)
            stats["sent"] += 1
            await ws.recv()
            stats["echoed"] += 1


async def main(a):
    stats = {"handshakes": 0, "sent": 0, "echoed": 0}
    t0 = time.monotonic()
    t_end = t0 + a.duration if a.duration > 0 else float("inf")
    results = await asyncio.gather(*(one(i, a, stats, t_end) for i in range(a.conns)), return_exceptions=True)
    errors = [repr(r) for r in results if isinstance(r, BaseException)]
    stats["seconds"] = round(time.monotonic() - t0, 3)
    stats["errors"] = errors
    print(json.dumps(stats), flush=True)
    return 1 if errors else 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--conns", type=int, default=1)
    ap.add_argument("--messages", type=int, default=100)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--rate", type=float, default=0.0)
    ap.add_argument("--duration", type=float, default=0.0)
    sys.exit(asyncio.run(main(ap.parse_args())))
