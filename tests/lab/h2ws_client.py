#!/usr/bin/env python3
"""wstap lab: a scripted RFC 8441 client (WebSockets over HTTP/2).

One TLS connection (ALPN h2, keys written to --keylog), several extended
CONNECT streams on it (`:protocol websocket`), WebSocket frames in their
DATA (the `h2` package for HTTP/2, `wsproto`'s frame protocol for the
frames). What it saw goes to stdout as JSON lines (the capture's client
log), in the same vocabulary as client.py:

  {"event": "settings", "enable_connect_protocol": true/false}
  {"event": "handshake", "status": 200, "ok": true, "session": N, "stream": S, "path": P}
  {"event": "messages", "sent": n, "echoed": n, ...}
  {"event": "closed", "code": 1000 | 1006, "reset": "CANCEL" | null, ...}

  h2ws_client.py https://127.0.0.1:PORT --path /ws --path /ws --messages 3 --close
  --idle S       : after the messages, stay silent S seconds (idle cut)
  --force        : open the streams even if the server did not offer RFC 8441
  --origin O     : the Origin header every stream sends (default https://localhost:PORT)
"""

import argparse
import json
import select
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.errors
import h2.exceptions
import h2.events
import h2.settings
from wsproto.frame_protocol import CloseReason, FrameProtocol, Opcode


def log(event, **kw):
    kw = {"t": round(time.time(), 3), "event": event, **kw}
    print(json.dumps(kw), flush=True)


class Session:
    def __init__(self, n, stream, path):
        self.n = n
        self.stream = stream
        self.path = path
        self.proto = FrameProtocol(client=True, extensions=[])
        self.status = None
        self.open = False
        self.sent = 0
        self.echoed = 0
        self.done = False
        self.close_code = None
        self.sent_close = False
        self.next_chat = 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--path", action="append", default=[])
    ap.add_argument("--messages", type=int, default=3)
    ap.add_argument("--idle", type=float, default=0.0)
    ap.add_argument("--close", action="store_true")
    ap.add_argument("--chatty", type=int, default=0,
                    help="during --idle, the first N sessions send a message every 2 s")
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--keylog")
    ap.add_argument("--ca")
    ap.add_argument("--servername", default="localhost")
    ap.add_argument("--group", default="h2")
    ap.add_argument("--stagger", type=float, default=0.05)
    ap.add_argument("--h2c", action="store_true", help="cleartext HTTP/2 with prior knowledge (no TLS)")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--origin", help="the origin header of every stream (default https://localhost:PORT)")
    a = ap.parse_args()
    hostport = a.url.split("://", 1)[1].rstrip("/")
    host, port = hostport.rsplit(":", 1)
    paths = a.path or ["/ws"]

    raw = socket.create_connection((host, int(port)), timeout=5)
    if a.h2c:
        sock = raw
    else:
        ctx = ssl.create_default_context(cafile=a.ca) if a.ca else ssl.create_default_context()
        if a.keylog:
            ctx.keylog_filename = a.keylog
        ctx.set_alpn_protocols(["h2"])
        sock = ctx.wrap_socket(raw, server_hostname=a.servername)
        alpn = sock.selected_alpn_protocol()
        if alpn != "h2":
            log("error", group=a.group, what="alpn", alpn=alpn)
            return 1
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    sessions = {}
    deadline = time.time() + a.timeout
    offered = None
    pending = list(enumerate(paths))
    next_open = 0.0
    idle_until = None
    sock.setblocking(False)

    def send_ws(s, data):
        if data[:1] == b"\x88":
            s.sent_close = True
        try:
            conn.send_data(s.stream, data)
        except h2.exceptions.StreamClosedError:
            pass  # the proxy ended the stream first

    def finish(s, code, reset=None):
        if s.done:
            return
        s.done = True
        log("messages", group=a.group, sent=s.sent, echoed=s.echoed, session=s.n, stream=s.stream)
        log("closed", group=a.group, code=code, reset=reset, session=s.n, stream=s.stream, path=s.path)

    while time.time() < deadline:
        now = time.time()
        if offered is not None and pending and now >= next_open:
            n, path = pending.pop(0)
            if not offered and not a.force:
                log("handshake", group=a.group, ok=False, status=None, session=n, path=path,
                    error="server does not offer RFC 8441 (no SETTINGS_ENABLE_CONNECT_PROTOCOL)")
                continue
            sid = conn.get_next_available_stream_id()
            headers = [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http" if a.h2c else "https"),
                       (":path", path), (":authority", f"localhost:{port}"),
                       ("sec-websocket-version", "13"), ("origin", a.origin or f"https://localhost:{port}"),
                       ("user-agent", "wstap-lab-h2ws")]
            try:
                conn.send_headers(sid, headers)
            except Exception as e:  # the h2 package refuses :protocol when not offered
                log("handshake", group=a.group, ok=False, status=None, session=n, path=path, error=str(e))
                continue
            sessions[sid] = Session(n, sid, path)
            next_open = now + a.stagger
        # Chatty sessions keep talking while the others are idle.
        if idle_until is not None and now < idle_until:
            for s in sessions.values():
                if s.n < a.chatty and s.open and not s.done and now >= s.next_chat:
                    send_ws(s, s.proto.send_data(f"chat {s.n}.{s.sent}", fin=True))
                    s.sent += 1
                    s.next_chat = now + 2.0
        # Idle sessions: once silent long enough, close them (if still open).
        if idle_until is not None and now >= idle_until:
            idle_until = None
            for s in sessions.values():
                if s.open and not s.done and a.close:
                    send_ws(s, s.proto.close(1000, "bye"))
        out = conn.data_to_send()
        if out:
            sock.setblocking(True)
            sock.sendall(out)
            sock.setblocking(False)
        if offered is not None and not pending and all(s.done for s in sessions.values()):
            break
        r, _, _ = select.select([sock], [], [], 0.05)
        if not r:
            continue
        try:
            data = sock.recv(65536)
        except (ssl.SSLWantReadError, BlockingIOError):
            continue
        except (ConnectionError, OSError):
            data = b""
        if not data:
            for s in sessions.values():
                finish(s, 1006)
            break
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.RemoteSettingsChanged) and offered is None:
                offered = bool(conn.remote_settings.get(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL, 0))
                log("settings", group=a.group, enable_connect_protocol=offered)
            elif isinstance(ev, h2.events.ResponseReceived):
                s = sessions.get(ev.stream_id)
                if not s:
                    continue
                status = int(dict(ev.headers).get(":status", "0"))
                s.status = status
                s.open = 200 <= status < 300
                log("handshake", group=a.group, status=status, ok=s.open, session=s.n, stream=s.stream, path=s.path)
                if s.open:
                    for i in range(a.messages):
                        send_ws(s, s.proto.send_data(f"hello over h2 {s.n}.{i}", fin=True))
                        s.sent += 1
                    if a.messages == 0 and a.close and a.idle <= 0:
                        send_ws(s, s.proto.close(1000, "bye"))
            elif isinstance(ev, h2.events.DataReceived):
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                s = sessions.get(ev.stream_id)
                if not s or not s.open:
                    continue
                s.proto.receive_bytes(ev.data)
                try:
                    for f in s.proto.received_frames():
                        if f.opcode in (Opcode.TEXT, Opcode.BINARY) and f.message_finished:
                            s.echoed += 1
                            if s.echoed == s.sent and idle_until is None:
                                if a.idle > 0:
                                    idle_until = time.time() + a.idle
                                    for o in sessions.values():
                                        o.next_chat = time.time() + 2.0
                                elif a.close:
                                    send_ws(s, s.proto.close(1000, "bye"))
                        elif f.opcode == Opcode.CLOSE:
                            code = f.payload[0] if f.payload else 1005
                            s.close_code = int(code)
                            if not s.sent_close:
                                send_ws(s, s.proto.close(1000, "bye"))
                                s.sent_close = True
                            conn.end_stream(s.stream)
                            finish(s, s.close_code)
                except Exception as e:  # not WebSocket frames: what a browser would fail on
                    log("error", group=a.group, session=s.n, stream=s.stream, what=f"bad frame: {e}"[:120])
                    conn.reset_stream(s.stream, 1)  # PROTOCOL_ERROR
                    finish(s, 1006)
            elif isinstance(ev, h2.events.StreamEnded):
                s = sessions.get(ev.stream_id)
                if s and not s.done:
                    if s.close_code is None:
                        finish(s, 1006 if s.open else None)
                    try:
                        conn.end_stream(ev.stream_id)
                    except Exception:
                        pass
            elif isinstance(ev, h2.events.StreamReset):
                s = sessions.get(ev.stream_id)
                if s and s.done:
                    try:
                        name = h2.errors.ErrorCodes(ev.error_code).name
                    except ValueError:
                        name = str(ev.error_code)
                    log("reset", group=a.group, session=s.n, stream=s.stream, code=name)
                elif s:
                    try:
                        name = h2.errors.ErrorCodes(ev.error_code).name
                    except ValueError:
                        name = str(ev.error_code)
                    finish(s, 1006, reset=name)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                for s in sessions.values():
                    finish(s, 1006)
    for s in sessions.values():
        finish(s, 1006)
    try:
        conn.close_connection()
        sock.setblocking(True)
        sock.sendall(conn.data_to_send())
        sock.close()
    except Exception:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
