#!/usr/bin/env python3
"""Raw-socket backend that answers every WebSocket handshake with
``101 Switching Protocols`` and a WRONG ``Sec-WebSocket-Accept``.

The accept value is the correct one computed for a different key
(the key with its first character changed), so it is well-formed base64 of
20 bytes but does not match. After the 101 it keeps the connection open and
reads until the peer closes (bounded by --max-wait), then closes.
One JSON line per event on stdout.

  badaccept.py --port 13015 [--host ::1] [--lower-case]

--lower-case answers with lower-case header names and no Server header, as
many WebSocket servers do (HTTP/2-era libraries, embedded servers).
"""

import argparse
import base64
import hashlib
import json
import socket
import sys
import threading
import time

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
T0 = time.time()


def log(event, **kw):
    rec = {"t": round(time.time(), 6), "rel": round(time.time() - T0, 3), "event": event}
    rec.update(kw)
    sys.stdout.write(json.dumps(rec) + "\n")
    sys.stdout.flush()


def accept_for(key):
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def handle(conn, addr, max_wait, lower=False):
    peer = f"{addr[0]}:{addr[1]}"
    conn.settimeout(10)
    data = b""
    try:
        while b"\r\n\r\n" not in data and len(data) < 65536:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    lines = head.split("\r\n")
    key = None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "sec-websocket-key":
            key = value.strip()
    log("request", peer=peer, request_line=lines[0] if lines else "", key=key)
    if key is None:
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        conn.close()
        log("no_key_400", peer=peer)
        return
    wrong_key = ("A" if key[0] != "A" else "B") + key[1:]
    good, bad = accept_for(key), accept_for(wrong_key)
    resp = (
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {bad}\r\n"
        "\r\n"
    )
    if lower:
        resp = (
            "HTTP/1.1 101 Switching Protocols\r\n"
            "upgrade: websocket\r\n"
            "connection: upgrade\r\n"
            f"sec-websocket-accept: {bad}\r\n"
            "\r\n"
        )
    conn.sendall(resp.encode())
    log("sent_101", peer=peer, accept_sent=bad, accept_correct=good)
    conn.settimeout(max_wait)
    try:
        while True:
            chunk = conn.recv(4096)
            if not chunk:
                break
            log("after_101_bytes", peer=peer, n=len(chunk))
    except OSError:
        pass
    conn.close()
    log("closed", peer=peer)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--max-wait", type=float, default=15.0)
    ap.add_argument("--lower-case", action="store_true",
                    help="lower-case header names, no Server header")
    args = ap.parse_args()
    fam = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    srv = socket.socket(fam, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((args.host, args.port))
    srv.listen(16)
    log("listening", host=args.host, port=args.port)
    try:
        while True:
            conn, addr = srv.accept()
            threading.Thread(target=handle, args=(conn, addr, args.max_wait, args.lower_case), daemon=True).start()
    except KeyboardInterrupt:
        pass
    finally:
        srv.close()
        log("exit")


if __name__ == "__main__":
    main()
