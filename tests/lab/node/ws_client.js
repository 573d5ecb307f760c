#!/usr/bin/env node
// wstap lab: a real `ws` client over TLS that logs its session keys from the
// https.Agent 'keylog' event (NSS key log format), and prints what it saw as
// JSON lines on stdout (ground truth for the captures, like client.py).
//
//   node ws_client.js wss://127.0.0.1:18401/ws --keylog FILE [--count K]
//        [--messages N] [--pings N] [--idle S] [--ping-interval S] [--close]
//        [--max-tls 1.2|1.3] [--ciphers LIST] [--ca FILE] [--servername SNI]
//        [--group LABEL]
'use strict';
const fs = require('fs');
const https = require('https');
const WebSocket = require('ws');

const args = process.argv.slice(2);
const url = args.shift();
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const flag = (name) => args.includes(name);
const count = Number(opt('--count', '1'));
const messages = Number(opt('--messages', '3'));
const pings = Number(opt('--pings', '0'));
const idle = Number(opt('--idle', '0'));
const pingInterval = Number(opt('--ping-interval', '0'));
const keylog = opt('--keylog');
const group = opt('--group');
const maxTls = opt('--max-tls');
const ciphers = opt('--ciphers');
const ca = opt('--ca');
const servername = opt('--servername');

function log(event, extra) {
  const rec = { t: Date.now() / 1000, event };
  if (group) rec.group = group;
  Object.assign(rec, extra || {});
  process.stdout.write(JSON.stringify(rec) + '\n');
}

const agentOpts = { keepAlive: false };
if (maxTls) agentOpts.maxVersion = maxTls === '1.2' ? 'TLSv1.2' : 'TLSv1.3';
if (ciphers) agentOpts.ciphers = ciphers;
if (ca) agentOpts.ca = fs.readFileSync(ca);
if (servername) agentOpts.servername = servername;
const agent = new https.Agent(agentOpts);
// The key log: one line per secret, as the connection derives it.
agent.on('keylog', (line) => {
  if (keylog) fs.appendFileSync(keylog, line);
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function session(n) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { agent, perMessageDeflate: false, headers: { 'User-Agent': 'wstap-lab-node' } });
    let timer = null;
    ws.on('upgrade', (res) => log('handshake', { status: res.statusCode, ok: res.statusCode === 101, server: res.headers.server || null, session: n }));
    ws.on('unexpected-response', (req, res) => {
      log('handshake', { status: res.statusCode, session: n });
      res.resume();
      ws.terminate();
    });
    ws.on('error', (e) => log('error', { message: String(e.message || e), session: n }));
    ws.on('close', (code, reason) => {
      if (timer) clearInterval(timer);
      log('closed', { code, reason: reason.toString(), session: n });
      resolve();
    });
    let echoed = 0;
    ws.on('message', () => {
      echoed += 1;
    });
    ws.on('open', async () => {
      for (let i = 0; i < messages; i++) {
        ws.send(`hello ${n}.${i}`);
        await sleep(20);
      }
      for (let i = 0; i < pings; i++) {
        ws.ping();
        await sleep(20);
      }
      await sleep(100);
      log('messages', { sent: messages, echoed, session: n });
      if (pingInterval > 0) timer = setInterval(() => ws.readyState === 1 && ws.ping(), pingInterval * 1000);
      if (idle > 0) await sleep(idle * 1000);
      if (ws.readyState === 1) {
        if (flag('--close')) ws.close(1000, 'bye');
        else ws.terminate();
      }
    });
  });
}

(async () => {
  const all = [];
  for (let i = 0; i < count; i++) {
    all.push(session(i));
    await sleep(50);
  }
  await Promise.all(all);
  log('summary', { sessions: count });
})();
