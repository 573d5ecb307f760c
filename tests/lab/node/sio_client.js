#!/usr/bin/env node
// Socket.IO client for the wstap capture lab: the official JavaScript
// client (socket.io-client, the one browsers use) running in node. It starts
// with HTTP long-polling (handshake GET, a pending long-poll GET, POSTs) and
// probes the websocket transport on a connection of its own, then upgrades.
// Prints what it saw as JSON lines (same events as sio_client.py).
//
//   node sio_client.js http://127.0.0.1:18226 [--path /rt/] [--messages 3]
//        [--wait 2] [--group L]
"use strict";
const { io } = require("socket.io-client");

const T0 = Date.now() / 1000;
const argv = process.argv.slice(2);
const opt = { path: "/socket.io/", messages: 3, wait: 2, group: null };
const url = argv.shift();
while (argv.length) {
  const k = argv.shift();
  const v = argv.shift();
  if (k === "--path") opt.path = v;
  else if (k === "--messages") opt.messages = parseInt(v, 10);
  else if (k === "--wait") opt.wait = parseFloat(v);
  else if (k === "--group") opt.group = v;
  else { console.error(`unknown option ${k}`); process.exit(2); }
}

function log(event, kw = {}) {
  const now = Date.now() / 1000;
  const rec = { t: Math.round(now * 1e6) / 1e6, rel: Math.round((now - T0) * 1e3) / 1e3, event };
  if (opt.group) rec.group = opt.group;
  Object.assign(rec, kw);
  process.stdout.write(JSON.stringify(rec) + "\n");
}

const sleep = (s) => new Promise((r) => setTimeout(r, s * 1000));

async function main() {
  log("start", { url, path: opt.path, transports: ["polling", "websocket"], messages: opt.messages, client: "socket.io-client" });
  const t = Date.now();
  const socket = io(url, { path: opt.path, transports: ["polling", "websocket"], reconnection: false, forceNew: true, timeout: 10000 });
  socket.io.engine.on("upgrade", (tr) => log("upgraded", { transport: tr.name }));
  socket.on("disconnect", (reason) => log("disconnected", { reason }));
  const ok = await new Promise((resolve) => {
    socket.on("connect", () => resolve(true));
    socket.on("connect_error", (e) => { log("connect_failed", { error: String(e && e.message) }); resolve(false); });
  });
  if (!ok) { log("summary", { connected: false, final_transport: null }); socket.close(); return; }
  log("connected", { sid: socket.id, transport: socket.io.engine.transport.name, elapsed: (Date.now() - t) / 1000 });
  await sleep(opt.wait);
  log("transport", { transport: socket.io.engine.transport.name, after_s: opt.wait });
  let replies = 0;
  for (let k = 0; k < opt.messages; k++) {
    try {
      const r = await socket.timeout(10000).emitWithAck("echo", { n: k });
      replies++;
      log("echo", { n: k, reply: r, transport: socket.io.engine.transport.name });
    } catch (e) {
      log("echo_failed", { n: k, error: String(e && e.message) });
    }
    await sleep(0.3);
  }
  const final = socket.io.engine.transport.name;
  log("final_transport", { transport: final });
  socket.close();
  log("summary", { connected: true, final_transport: final, echoes: replies });
}

main().catch((e) => { log("error", { error: String(e) }); process.exit(1); });
