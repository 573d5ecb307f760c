//! Hostile capture generators: what an attacker would feed a sensor.
//! Shared by the tests (tests/hostile*.rs) and the benchmark
//! (examples/hostilegen.rs). Everything is written straight to a file as it
//! is generated (a million SYNs never sit in memory), deterministically
//! (a fixed xorshift seed).
//!
//! | generator | what it is |
//! |---|---|
//! | [`flood`] | N SYNs from random sources to the proxy port, with real WebSocket sessions (both hops) interleaved |
//! | [`hogs`] | N connections, each holding a partial 60 KB request head and out-of-order data ahead of a hole, all open at once |
//! | [`pipeline`] | one connection with N pipelined requests never answered |
//! | [`escapes`] | terminal escapes in every wire string wstap prints |
//! | [`secrets`] | credentials in every form redaction must catch |
//! | [`damage_caplen`], [`damage_pcapng`] | a session, then a record (or block) that cannot be read, then more |
//! | [`fragments`] | a handshake whose request travels in IPv4 and IPv6 fragments, plus a fragment flood |
//! | [`oddities`] | a retransmission with other bytes, a 64-bit frame length with its top bit set, 600 header lines |
//! | [`as_tls`] | any of these with its client hops made TLS 1.3 (examples/tlsgen.rs), and its key log |
//! | [`h2_escapes_secrets`] | an HTTP/2 (h2c) connection whose streams carry escapes and secrets in pseudo-headers, header values and close reasons |
//! | [`tls_h2_flood`], [`reset_websockets`], [`socketio_sessions`] | TLS/HTTP/2 floods, reset WebSockets, Socket.IO sessions (bounds and linear time) |
#![allow(dead_code)]

#[path = "../../examples/tlsgen.rs"]
#[allow(dead_code)]
pub mod tlsgen;

use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::path::Path;

pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;
pub const FIN: u8 = 0x01;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;

/// A pcap (Ethernet, microseconds) written as packets come.
pub struct Pcap {
    w: BufWriter<std::fs::File>,
    /// Packet time, microseconds since the epoch.
    pub t_us: u64,
    pub packets: u64,
}

impl Pcap {
    pub fn create(path: &Path) -> Pcap {
        let f = std::fs::File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut w = BufWriter::with_capacity(1 << 20, f);
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&[0; 8]);
        h.extend_from_slice(&262144u32.to_le_bytes());
        h.extend_from_slice(&1u32.to_le_bytes());
        w.write_all(&h).unwrap();
        Pcap { w, t_us: 1_700_000_000_000_000, packets: 0 }
    }

    /// A raw record (any caplen / orig_len: damage is written this way).
    pub fn record(&mut self, caplen: u32, orig_len: u32, data: &[u8]) {
        let t = self.t_us;
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&((t / 1_000_000) as u32).to_le_bytes());
        h[4..8].copy_from_slice(&((t % 1_000_000) as u32).to_le_bytes());
        h[8..12].copy_from_slice(&caplen.to_le_bytes());
        h[12..16].copy_from_slice(&orig_len.to_le_bytes());
        self.w.write_all(&h).unwrap();
        self.w.write_all(data).unwrap();
        self.packets += 1;
    }

    pub fn frame(&mut self, frame: &[u8]) {
        self.record(frame.len() as u32, frame.len() as u32, frame);
    }

    pub fn raw_bytes(&mut self, b: &[u8]) {
        self.w.write_all(b).unwrap();
    }

    pub fn advance_us(&mut self, us: u64) {
        self.t_us += us;
    }

    pub fn finish(mut self) {
        self.w.flush().unwrap();
    }
}

/// xorshift64: deterministic, fast, good enough to scatter addresses.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn csum(data: &[u8], mut sum: u32) -> u16 {
    let mut c = data.chunks_exact(2);
    for w in &mut c {
        sum += u16::from_be_bytes([w[0], w[1]]) as u32;
    }
    if let [b] = c.remainder() {
        sum += (*b as u32) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A TCP header (20 bytes) with its checksum over the pseudo-header.
#[allow(clippy::too_many_arguments)]
fn tcp_header(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, seq: u32, ack: u32, fl: u8, payload: &[u8]) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = fl;
    t[14..16].copy_from_slice(&65535u16.to_be_bytes());
    let len = (20 + payload.len()) as u32;
    let mut sum: u32 = 6 + len;
    let mut add = |b: &[u8]| {
        for w in b.chunks(2) {
            sum += u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]) as u32;
        }
    };
    match (src, dst) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            add(&a.octets());
            add(&b.octets());
        }
        (a, b) => {
            add(&ip16(a));
            add(&ip16(b));
        }
    }
    let mut body = t.clone();
    body.extend_from_slice(payload);
    let c = csum(&body, sum);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    t
}

fn ip16(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

/// An IPv4 header; `frag`: (more fragments, offset in 8-byte units).
fn ipv4_header(src: [u8; 4], dst: [u8; 4], id: u16, frag: (bool, u16), proto: u8, payload_len: usize) -> Vec<u8> {
    let mut h = vec![0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&((20 + payload_len) as u16).to_be_bytes());
    h[4..6].copy_from_slice(&id.to_be_bytes());
    let f = (if frag.0 { 0x2000 } else { 0 }) | (frag.1 & 0x1fff);
    h[6..8].copy_from_slice(&f.to_be_bytes());
    h[8] = 64;
    h[9] = proto;
    h[12..16].copy_from_slice(&src);
    h[16..20].copy_from_slice(&dst);
    let c = csum(&h, 0);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

fn ethernet(ethertype: u16, ip: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + ip.len());
    f.extend_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(ip);
    f
}

/// One TCP segment as an Ethernet frame.
pub fn tcp_frame(src: (IpAddr, u16), dst: (IpAddr, u16), seq: u32, ack: u32, fl: u8, payload: &[u8]) -> Vec<u8> {
    let tcp = tcp_header(src.0, dst.0, src.1, dst.1, seq, ack, fl, payload);
    let mut seg = tcp;
    seg.extend_from_slice(payload);
    match (src.0, dst.0) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mut ip = ipv4_header(a.octets(), b.octets(), 1, (false, 0), 6, seg.len());
            ip.extend_from_slice(&seg);
            ethernet(0x0800, &ip)
        }
        (a, b) => {
            let mut ip = ipv6_header(ip16(a), ip16(b), 6, seg.len());
            ip.extend_from_slice(&seg);
            ethernet(0x86dd, &ip)
        }
    }
}

fn ipv6_header(src: [u8; 16], dst: [u8; 16], next: u8, payload_len: usize) -> Vec<u8> {
    let mut h = vec![0u8; 40];
    h[0] = 0x60;
    h[4..6].copy_from_slice(&(payload_len as u16).to_be_bytes());
    h[6] = next;
    h[7] = 64;
    h[8..24].copy_from_slice(&src);
    h[24..40].copy_from_slice(&dst);
    h
}

pub fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::from([a, b, c, d])
}

/// One side of a TCP connection being written.
#[derive(Clone, Copy)]
pub struct Side {
    pub addr: (IpAddr, u16),
    pub seq: u32,
}

/// A TCP connection: client and server sides.
#[derive(Clone, Copy)]
pub struct Conn {
    pub c: Side,
    pub s: Side,
}

impl Conn {
    pub fn new(client: (IpAddr, u16), server: (IpAddr, u16), isn: u32) -> Conn {
        Conn { c: Side { addr: client, seq: isn }, s: Side { addr: server, seq: isn.wrapping_mul(7).wrapping_add(1) } }
    }

    /// SYN, SYN-ACK, ACK.
    pub fn handshake(&mut self, p: &mut Pcap) {
        p.frame(&tcp_frame(self.c.addr, self.s.addr, self.c.seq, 0, SYN, b""));
        self.c.seq = self.c.seq.wrapping_add(1);
        p.advance_us(50);
        p.frame(&tcp_frame(self.s.addr, self.c.addr, self.s.seq, self.c.seq, SYN | ACK, b""));
        self.s.seq = self.s.seq.wrapping_add(1);
        p.advance_us(50);
        p.frame(&tcp_frame(self.c.addr, self.s.addr, self.c.seq, self.s.seq, ACK, b""));
    }

    /// Client to server data (in order, in segments of 1400 bytes).
    pub fn send_c(&mut self, p: &mut Pcap, data: &[u8]) {
        for chunk in data.chunks(1400) {
            p.advance_us(20);
            p.frame(&tcp_frame(self.c.addr, self.s.addr, self.c.seq, self.s.seq, ACK | PSH, chunk));
            self.c.seq = self.c.seq.wrapping_add(chunk.len() as u32);
        }
    }

    /// Server to client data.
    pub fn send_s(&mut self, p: &mut Pcap, data: &[u8]) {
        for chunk in data.chunks(1400) {
            p.advance_us(20);
            p.frame(&tcp_frame(self.s.addr, self.c.addr, self.s.seq, self.c.seq, ACK | PSH, chunk));
            self.s.seq = self.s.seq.wrapping_add(chunk.len() as u32);
        }
    }

    /// FIN both ways.
    pub fn close(&mut self, p: &mut Pcap) {
        p.advance_us(20);
        p.frame(&tcp_frame(self.c.addr, self.s.addr, self.c.seq, self.s.seq, FIN | ACK, b""));
        self.c.seq = self.c.seq.wrapping_add(1);
        p.advance_us(20);
        p.frame(&tcp_frame(self.s.addr, self.c.addr, self.s.seq, self.c.seq, FIN | ACK, b""));
        self.s.seq = self.s.seq.wrapping_add(1);
        p.advance_us(20);
        p.frame(&tcp_frame(self.c.addr, self.s.addr, self.c.seq, self.s.seq, ACK, b""));
    }
}

/// A WebSocket frame, final (client frames masked): the crate's encoder.
pub fn ws_frame(op: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    wstap::proto::ws::encode(true, 0, op, mask, payload)
}

pub fn close_frame(code: u16, reason: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut body = code.to_be_bytes().to_vec();
    body.extend_from_slice(reason);
    ws_frame(0x8, &body, mask)
}

/// Sec-WebSocket-Accept for a key (RFC 6455 4.2.2), for realistic 101s.
pub fn accept_for(key: &str) -> String {
    use base64::Engine;
    use sha1::Digest;
    let mut h = sha1::Sha1::new();
    h.update(key.as_bytes());
    h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

pub const PROXY: [u8; 4] = [10, 0, 0, 1];
pub const BACKEND: [u8; 4] = [10, 0, 0, 2];

/// A real WebSocket session through a proxy: client hop (client ->
/// proxy:80) and upstream hop (proxy -> backend:3000), upgrade, a few
/// messages each way, a clean close. `extra_headers` are added to both
/// requests; `close_reason` is the client's close frame reason.
pub fn websocket_session(p: &mut Pcap, n: u32, extra_headers: &str, path: &str, close_reason: &[u8]) {
    let client = (v4(192, 168, (n >> 8) as u8, n as u8), 40000 + (n % 20000) as u16);
    let mut a = Conn::new(client, (IpAddr::from(PROXY), 80), 1000 + n);
    let mut b = Conn::new((IpAddr::from(PROXY), 50000 + (n % 10000) as u16), (IpAddr::from(BACKEND), 3000), 9000 + n);
    let key = format!("dGhlIHNhbXBsZSBub25j{:04}", n % 10000);
    let key = &key[..22];
    let key = format!("{key}==");
    let req = |host: &str, xff: bool| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{}{extra_headers}\r\n",
            if xff { format!("X-Forwarded-For: {}\r\n", client.0) } else { String::new() }
        )
    };
    let resp = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        accept_for(&key)
    );
    a.handshake(p);
    a.send_c(p, req("app.example", false).as_bytes());
    b.handshake(p);
    b.send_c(p, req("backend:3000", true).as_bytes());
    b.send_s(p, resp.as_bytes());
    a.send_s(p, resp.as_bytes());
    for i in 0..3u8 {
        let msg = [b'm', b'0' + i];
        a.send_c(p, &ws_frame(0x1, &msg, Some([1, 2, 3, i])));
        b.send_c(p, &ws_frame(0x1, &msg, Some([4, 5, 6, i])));
        b.send_s(p, &ws_frame(0x1, &msg, None));
        a.send_s(p, &ws_frame(0x1, &msg, None));
    }
    a.send_c(p, &close_frame(1000, close_reason, Some([9, 9, 9, 9])));
    b.send_c(p, &close_frame(1000, close_reason, Some([8, 8, 8, 8])));
    b.send_s(p, &close_frame(1000, close_reason, None));
    a.send_s(p, &close_frame(1000, close_reason, None));
    b.close(p);
    a.close(p);
}

/// `syns` SYNs from random sources to the proxy's port 80 over
/// `seconds` of packet time (a million in 4 s is the issue's flood), with
/// `sessions` real WebSocket sessions interleaved at even intervals (the
/// first after the flood has been going for a while).
pub fn flood(path: &Path, syns: u64, seconds: f64, sessions: u32) -> u64 {
    let mut p = Pcap::create(path);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let step_us = ((seconds * 1e6) / syns.max(1) as f64).max(0.0);
    let every = syns / (sessions as u64 + 1);
    let proxy = (IpAddr::from(PROXY), 80);
    let mut acc = 0.0f64;
    let mut done = 0;
    for i in 0..syns {
        let r = rng.next();
        let src = (
            v4(100 + (r % 100) as u8, (r >> 8) as u8, (r >> 16) as u8, (r >> 24) as u8),
            1024 + (r >> 32) as u16 % 60000,
        );
        p.frame(&tcp_frame(src, proxy, (r >> 13) as u32, 0, SYN, b""));
        acc += step_us;
        if acc >= 1.0 {
            p.advance_us(acc as u64);
            acc -= acc.floor();
        }
        if every > 0 && (i + 1) % every == 0 && done < sessions {
            websocket_session(&mut p, done, "", "/ws", b"bye");
            done += 1;
        }
    }
    while done < sessions {
        websocket_session(&mut p, done, "", "/ws", b"bye");
        done += 1;
    }
    let n = p.packets;
    p.finish();
    n
}

/// `conns` connections open at once, each holding a partial request head
/// of `head` bytes (never completed) and `ooo` bytes of out-of-order data
/// in each direction ahead of a one-byte hole, in segments of 4 KB.
pub fn hogs(path: &Path, conns: u32, head: usize, ooo: usize) -> u64 {
    let mut p = Pcap::create(path);
    let mut cs: Vec<Conn> = (0..conns)
        .map(|i| {
            Conn::new(
                (v4(172, 16 + (i >> 16) as u8, (i >> 8) as u8, i as u8), 20000 + (i % 40000) as u16),
                (IpAddr::from(PROXY), 80),
                i.wrapping_mul(2654435761),
            )
        })
        .collect();
    for c in &mut cs {
        c.handshake(&mut p);
    }
    // Partial heads, a chunk of every connection at a time.
    let mut hd = b"GET /ws HTTP/1.1\r\nHost: x\r\nX-Filler: ".to_vec();
    hd.resize(head, b'a');
    for chunk in hd.chunks(1400) {
        for c in &mut cs {
            c.send_c(&mut p, chunk);
        }
    }
    // Out-of-order data behind a hole, both directions.
    let seg = vec![b'z'; 4096];
    let n = ooo.div_ceil(seg.len());
    for k in 0..n {
        for c in &mut cs {
            let off = 1 + (k * seg.len()) as u32;
            p.advance_us(5);
            p.frame(&tcp_frame(c.c.addr, c.s.addr, c.c.seq.wrapping_add(off), c.s.seq, ACK, &seg));
            p.frame(&tcp_frame(c.s.addr, c.c.addr, c.s.seq.wrapping_add(off), c.c.seq, ACK, &seg));
        }
    }
    let n = p.packets;
    p.finish();
    n
}

/// One connection with `n` pipelined requests of about `size` bytes, never
/// answered; then a real WebSocket session on another connection.
pub fn pipeline(path: &Path, n: u64, size: usize) -> u64 {
    let mut p = Pcap::create(path);
    let mut c = Conn::new((v4(172, 31, 0, 1), 33333), (IpAddr::from(PROXY), 80), 77);
    c.handshake(&mut p);
    let mut batch = Vec::new();
    for i in 0..n {
        let mut r = format!("GET /item/{i} HTTP/1.1\r\nHost: x\r\nX-Pad: ").into_bytes();
        let pad = size.saturating_sub(r.len() + 4);
        r.resize(r.len() + pad, b'p');
        r.extend_from_slice(b"\r\n\r\n");
        batch.extend_from_slice(&r);
        if batch.len() >= 64 * 1024 {
            c.send_c(&mut p, &batch);
            batch.clear();
        }
    }
    c.send_c(&mut p, &batch);
    websocket_session(&mut p, 1, "", "/ws", b"bye");
    let n = p.packets;
    p.finish();
    n
}

/// Terminal escapes in every string wstap prints: paths, header values,
/// reason phrases, close reasons, SNI.
pub const ESCAPES: &[&str] =
    &["\x1b]0;pwned\x07", "\x1b[2J", "\x07", "\x00", "\u{9b}31m", "\x1b[31mred", "\u{202e}", "\x08\x08\x08\r"];

pub fn escapes(path: &Path) -> u64 {
    let mut p = Pcap::create(path);
    for (i, e) in ESCAPES.iter().enumerate() {
        // A close reason carries the escape; header values and paths too
        // when HTTP allows it (C1 and bidi characters are UTF-8 bytes
        // above 0x7f, which HTTP parsers take; C0 bytes they refuse).
        let hdr = if e.chars().any(|c| c.is_ascii_control()) {
            String::new()
        } else {
            format!("X-Note: a{e}\r\nUser-Agent: ua{e}\r\n")
        };
        websocket_session(
            &mut p,
            i as u32,
            &hdr,
            &format!("/ws/{}", if e.is_ascii() { "x" } else { e }),
            format!("bye{e}").as_bytes(),
        );
    }
    // A rejected handshake whose reason phrase carries C1 controls.
    let mut c = Conn::new((v4(192, 168, 9, 9), 41000), (IpAddr::from(PROXY), 80), 5);
    c.handshake(&mut p);
    c.send_c(
        &mut p,
        b"GET /denied\xc2\x9b HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    c.send_s(&mut p, "HTTP/1.1 403 Go away\u{9b}2J\u{202e}\r\nContent-Length: 0\r\n\r\n".as_bytes());
    c.close(&mut p);
    // TLS with an SNI full of escapes.
    let mut t = Conn::new((v4(192, 168, 9, 10), 41001), (IpAddr::from(PROXY), 443), 6);
    t.handshake(&mut p);
    t.send_c(&mut p, &client_hello(b"evil\x1b]0;title\x07.example"));
    t.close(&mut p);
    let n = p.packets;
    p.finish();
    n
}

/// A minimal TLS 1.2 ClientHello carrying `sni`.
pub fn client_hello(sni: &[u8]) -> Vec<u8> {
    let mut ext = Vec::new();
    let mut name = vec![0u8];
    name.extend_from_slice(&(sni.len() as u16).to_be_bytes());
    name.extend_from_slice(sni);
    let mut list = (name.len() as u16).to_be_bytes().to_vec();
    list.extend_from_slice(&name);
    ext.extend_from_slice(&0u16.to_be_bytes());
    ext.extend_from_slice(&(list.len() as u16).to_be_bytes());
    ext.extend_from_slice(&list);
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[7u8; 32]);
    body.push(0);
    body.extend_from_slice(&[0, 2, 0x13, 0x01]);
    body.extend_from_slice(&[1, 0]);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![1u8];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 0x03, 0x01];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

/// Each secret here must appear in no output unless --no-redact.
pub const SECRETS: &[&str] = &[
    "SEKRETACCESSKEY1",
    "SEKRETSESSION2",
    "SEKRETENCODED3",
    "SEKRETSEMICOLON4",
    "SEKRETUSERPW5",
    "dXNlcjpTRUtSRVRQUk9UTzY=",
    "SEKRETCLOSE7",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJTRUtSRVRKV1Q4In0.c2lnbmF0dXJlOA",
    "SEKRETBEARER9",
    "SEKRETPASS10",
    "SEKRETCOOKIE11",
];

pub fn secrets(path: &Path) -> u64 {
    let mut p = Pcap::create(path);
    let headers = "X-Access-Key: SEKRETACCESSKEY1\r\nX-Session-Id: SEKRETSESSION2\r\n\
                   Sec-WebSocket-Protocol: chat, Authorization, dXNlcjpTRUtSRVRQUk9UTzY=\r\n\
                   Cookie: sid=SEKRETCOOKIE11\r\nAuthorization: Bearer SEKRETBEARER9\r\n";
    websocket_session(
        &mut p,
        1,
        headers,
        "/ws;auth=SEKRETSEMICOLON4?tok%65n=SEKRETENCODED3&room=1",
        b"token=SEKRETCLOSE7 expired",
    );
    websocket_session(
        &mut p,
        2,
        "",
        "http://bob:SEKRETUSERPW5@app.example/ws?x=1",
        b"invalid jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJTRUtSRVRKV1Q4In0.c2lnbmF0dXJlOA",
    );
    websocket_session(&mut p, 3, "", "/ws", b"bad password: SEKRETPASS10");
    let n = p.packets;
    p.finish();
    n
}

/// A session still open, then a record claiming `caplen` bytes (damage),
/// then more packets that are never reached.
pub fn damage_caplen(path: &Path, caplen: u32) -> u64 {
    let mut p = Pcap::create(path);
    websocket_session(&mut p, 1, "", "/ok", b"bye");
    // A second session left open: upgrade, then the damage.
    let mut a = Conn::new((v4(192, 168, 7, 7), 45000), (IpAddr::from(PROXY), 80), 1);
    a.handshake(&mut p);
    a.send_c(&mut p, b"GET /open HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    a.send_s(&mut p, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");
    a.send_c(&mut p, &ws_frame(0x1, b"hi", Some([1, 2, 3, 4])));
    p.record(caplen, caplen, &[0xee; 64]);
    websocket_session(&mut p, 2, "", "/never", b"bye");
    let n = p.packets;
    p.finish();
    n
}

/// pcapng: a section, an interface, packets of a session, then a block
/// whose length field says 2 GB, then more.
pub fn damage_pcapng(path: &Path) {
    let tmp = path.with_extension("tmp.pcap");
    damage_caplen(&tmp, 64);
    to_pcapng(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
}

/// A capture of two WebSocket sessions, nothing hostile in it.
pub fn websocket_capture(path: &Path) {
    let mut p = Pcap::create(path);
    websocket_session(&mut p, 1, "", "/a", b"bye");
    websocket_session(&mut p, 2, "", "/b", b"bye");
    p.finish();
}

/// The classic pcap `src` as pcapng: a section, an interface, one enhanced
/// packet block per record; a record of 64 0xee bytes becomes a block
/// whose length field says 2 GB (the damage).
pub fn to_pcapng(src: &Path, path: &Path) {
    let data = std::fs::read(src).unwrap();
    let mut out = Vec::new();
    let block = |ty: u32, body: &[u8], out: &mut Vec<u8>| {
        let pad = (4 - body.len() % 4) % 4;
        let len = (12 + body.len() + pad) as u32;
        out.extend_from_slice(&ty.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(body);
        out.extend(std::iter::repeat_n(0u8, pad));
        out.extend_from_slice(&len.to_le_bytes());
    };
    let mut shb = 0x1a2b3c4du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&u64::MAX.to_le_bytes());
    block(0x0a0d0d0a, &shb, &mut out);
    let mut idb = 1u16.to_le_bytes().to_vec();
    idb.extend_from_slice(&0u16.to_le_bytes());
    idb.extend_from_slice(&262144u32.to_le_bytes());
    block(1, &idb, &mut out);
    // Re-frame the classic records as enhanced packet blocks, up to the
    // damaged one (caplen 64 of 0xee bytes, which we replace).
    let mut at = 24;
    while at + 16 <= data.len() {
        let w = |i: usize| u32::from_le_bytes(data[i..i + 4].try_into().unwrap());
        let (sec, usec, cap, orig) = (w(at), w(at + 4), w(at + 8) as usize, w(at + 12));
        let pkt = &data[at + 16..at + 16 + cap];
        at += 16 + cap;
        if pkt.iter().all(|b| *b == 0xee) {
            // The damage: a block claiming 2 GB.
            out.extend_from_slice(&6u32.to_le_bytes());
            out.extend_from_slice(&0x8000_0000u32.to_le_bytes());
            out.extend_from_slice(&[0xee; 64]);
            continue;
        }
        let ts = sec as u64 * 1_000_000 + usec as u64;
        let mut epb = 0u32.to_le_bytes().to_vec();
        epb.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(ts as u32).to_le_bytes());
        epb.extend_from_slice(&(cap as u32).to_le_bytes());
        epb.extend_from_slice(&orig.to_le_bytes());
        epb.extend_from_slice(pkt);
        block(6, &epb, &mut out);
    }
    std::fs::write(path, out).unwrap();
}

/// The upgrade request of a session sent in IPv4 fragments (and, on a
/// second session, IPv6 fragments, out of order), then a flood of
/// fragments that never complete.
pub fn fragments(path: &Path, flood: u32) -> u64 {
    let mut p = Pcap::create(path);
    for (n, v6) in [(1u32, false), (2, true)] {
        let (client, proxy) = if v6 {
            ("2001:db8::7".parse::<IpAddr>().unwrap(), "2001:db8::1".parse::<IpAddr>().unwrap())
        } else {
            (v4(192, 168, 5, n as u8), IpAddr::from(PROXY))
        };
        let mut c = Conn::new((client, 46000 + n as u16), (proxy, 80), 100 * n);
        c.handshake(&mut p);
        let req = format!(
            "GET /frag{n} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-Pad: {}\r\n\r\n",
            "q".repeat(600)
        );
        let tcp = {
            let mut t =
                tcp_header(c.c.addr.0, c.s.addr.0, c.c.addr.1, c.s.addr.1, c.c.seq, c.s.seq, ACK | PSH, req.as_bytes());
            t.extend_from_slice(req.as_bytes());
            t
        };
        c.c.seq = c.c.seq.wrapping_add(req.len() as u32);
        let parts: Vec<&[u8]> = tcp.chunks(256).collect();
        let mut frames = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let more = i + 1 < parts.len();
            let off = (i * 256 / 8) as u16;
            frames.push(if v6 {
                let mut fh = vec![6u8, 0];
                fh.extend_from_slice(&((off << 3) | more as u16).to_be_bytes());
                fh.extend_from_slice(&(0x1234_0000 + n).to_be_bytes());
                let mut ip = ipv6_header(ip16(client), ip16(proxy), 44, 8 + part.len());
                ip.extend_from_slice(&fh);
                ip.extend_from_slice(part);
                ethernet(0x86dd, &ip)
            } else {
                let IpAddr::V4(a) = client else { unreachable!() };
                let mut ip = ipv4_header(a.octets(), PROXY, 4242, (more, off), 6, part.len());
                ip.extend_from_slice(part);
                ethernet(0x0800, &ip)
            });
        }
        if v6 {
            frames.reverse();
        }
        for f in frames {
            p.advance_us(10);
            p.frame(&f);
        }
        c.send_s(
            &mut p,
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                accept_for("dGhlIHNhbXBsZSBub25jZQ==")
            )
            .as_bytes(),
        );
        c.send_c(&mut p, &close_frame(1000, b"bye", Some([1, 1, 1, 1])));
        c.send_s(&mut p, &close_frame(1000, b"bye", None));
        c.close(&mut p);
    }
    // First fragments of datagrams that never complete (a fragment flood).
    let mut rng = Rng(42);
    for i in 0..flood {
        let r = rng.next();
        let mut ip =
            ipv4_header([100, (r >> 8) as u8, (r >> 16) as u8, (r >> 24) as u8], PROXY, i as u16, (true, 0), 6, 1400);
        ip.extend_from_slice(&[0x55; 1400]);
        p.advance_us(2);
        p.frame(&ethernet(0x0800, &ip));
    }
    let n = p.packets;
    p.finish();
    n
}

/// The smaller oddities: a retransmission with other bytes (a session's
/// 101 injected then corrected), a frame with a 64-bit length whose top
/// bit is set, a request with 600 header lines (nginx takes it).
pub fn oddities(path: &Path) -> u64 {
    let mut p = Pcap::create(path);
    // Retransmission with different content, in the client's request.
    let mut c = Conn::new((v4(192, 168, 6, 1), 47000), (IpAddr::from(PROXY), 80), 11);
    c.handshake(&mut p);
    let req = b"GET /rexmit HTTP/1.1\r\nHost: x\r\n\r\n";
    let seq = c.c.seq;
    c.send_c(&mut p, req);
    p.frame(&tcp_frame(c.c.addr, c.s.addr, seq, c.s.seq, ACK | PSH, b"GET /evilxx HTTP/1.1\r\nHost: x\r\n\r\n"));
    c.send_s(&mut p, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    c.close(&mut p);
    // A 64-bit length with the top bit set, after an upgrade.
    let mut w = Conn::new((v4(192, 168, 6, 2), 47001), (IpAddr::from(PROXY), 80), 12);
    w.handshake(&mut p);
    w.send_c(&mut p, b"GET /badlen HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    w.send_s(&mut p, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");
    let mut bad = vec![0x82, 127];
    bad.extend_from_slice(&(1u64 << 63 | 10).to_be_bytes());
    bad.extend_from_slice(&[0; 10]);
    w.send_s(&mut p, &bad);
    w.close(&mut p);
    // 600 header lines.
    let mut h = Conn::new((v4(192, 168, 6, 3), 47002), (IpAddr::from(PROXY), 80), 13);
    h.handshake(&mut p);
    let mut r = b"GET /many HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n".to_vec();
    for i in 0..600 {
        r.extend_from_slice(format!("X-H{i}: v{i}\r\n").as_bytes());
    }
    r.extend_from_slice(b"\r\n");
    h.send_c(&mut p, &r);
    h.send_s(&mut p, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");
    h.send_c(&mut p, &close_frame(1000, b"done", Some([3, 3, 3, 3])));
    h.send_s(&mut p, &close_frame(1000, b"done", None));
    h.close(&mut p);
    let n = p.packets;
    p.finish();
    n
}

/// TLS and HTTP/2 floods: `tls` connections whose ClientHello keys never
/// come, each sending records, then `h2` HTTP/2 connections in clear
/// opening many streams with big header blocks (some RFC 8441 WebSockets),
/// then two real WebSocket sessions.
pub fn tls_h2_flood(path: &Path, tls: u32, h2: u32) -> u64 {
    let mut p = Pcap::create(path);
    let mut t = Traffic::new(0x7151);
    for (opens, kind, per) in [(tls, 10u8, 3u32), (h2, 11, 40)] {
        for _ in 0..opens {
            let r = t.rng.next();
            t.step(kind, r);
            let i = t.last;
            for _ in 0..per {
                let r = t.rng.next();
                t.step_on(i, r);
            }
            for f in std::mem::take(&mut t.frames) {
                p.frame(&f);
            }
        }
    }
    websocket_session(&mut p, 1, "", "/after1", b"bye");
    websocket_session(&mut p, 2, "", "/after2", b"bye");
    let n = p.packets;
    p.finish();
    n
}

/// Random hostile traffic, step by step (the memory property test and
/// the `budget` fuzz target): SYN floods, connections holding partial
/// heads and data ahead of holes, pipelining, upgrades and frames,
/// fragment floods, resets.
pub struct Traffic {
    pub rng: Rng,
    conns: Vec<Conn>,
    /// Per connection: 0 plain HTTP, 1 upgraded to WebSocket, 2 TLS (its
    /// records held for keys that never come), 3 HTTP/2 in clear.
    state: Vec<u8>,
    /// HTTP/2: the next client stream id.
    next_stream: Vec<u32>,
    /// The connection opened last.
    pub last: usize,
    /// Frames made by the steps so far, to be taken by the caller.
    pub frames: Vec<Vec<u8>>,
}

impl Traffic {
    pub fn new(seed: u64) -> Traffic {
        Traffic {
            rng: Rng(seed | 1),
            conns: Vec::new(),
            state: Vec::new(),
            next_stream: Vec::new(),
            last: 0,
            frames: Vec::new(),
        }
    }

    fn conn(&mut self) -> Option<usize> {
        (!self.conns.is_empty()).then(|| (self.rng.next() % self.conns.len() as u64) as usize)
    }

    fn c2s(&mut self, i: usize, data: &[u8]) {
        let c = &mut self.conns[i];
        self.frames.push(tcp_frame(c.c.addr, c.s.addr, c.c.seq, c.s.seq, ACK | PSH, data));
        c.c.seq = c.c.seq.wrapping_add(data.len() as u32);
    }

    fn s2c(&mut self, i: usize, data: &[u8]) {
        let c = &mut self.conns[i];
        self.frames.push(tcp_frame(c.s.addr, c.c.addr, c.s.seq, c.c.seq, ACK | PSH, data));
        c.s.seq = c.s.seq.wrapping_add(data.len() as u32);
    }

    /// One step of a kind drawn from `weights` (flood, open, head, hole,
    /// pipeline, respond, upgrade, frames, fragment, reset, TLS open,
    /// HTTP/2 open, TLS record or HTTP/2 stream); weights not given are 0.
    pub fn step_weighted(&mut self, weights: &[u64]) {
        let total: u64 = weights.iter().sum();
        let mut pick = self.rng.below(total);
        let mut kind = 0;
        while pick >= weights[kind] {
            pick -= weights[kind];
            kind += 1;
        }
        let r = self.rng.next();
        self.step(kind as u8, r);
    }

    /// Opens a connection (SYN, SYN-ACK) in state `state`.
    fn open(&mut self, r: u64, state: u8) -> usize {
        let proxy = (IpAddr::from(PROXY), if state == 2 { 443 } else { 80 });
        let src = (v4(172, 16 + (r % 16) as u8, (r >> 8) as u8, (r >> 16) as u8), 1024 + (r >> 24) as u16 % 60000);
        let mut c = Conn::new(src, proxy, r as u32);
        self.frames.push(tcp_frame(c.c.addr, c.s.addr, c.c.seq, 0, SYN, b""));
        c.c.seq = c.c.seq.wrapping_add(1);
        self.frames.push(tcp_frame(c.s.addr, c.c.addr, c.s.seq, c.c.seq, SYN | ACK, b""));
        c.s.seq = c.s.seq.wrapping_add(1);
        self.last = if self.conns.len() < 4000 {
            self.conns.push(c);
            self.state.push(state);
            self.next_stream.push(1);
            self.conns.len() - 1
        } else {
            let i = (r >> 32) as usize % self.conns.len();
            self.conns[i] = c;
            self.state[i] = state;
            self.next_stream[i] = 1;
            i
        };
        self.last
    }

    /// A TLS record on TLS connection `i`, or a new stream with a big
    /// header block on HTTP/2 connection `i`; nothing on others.
    pub fn step_on(&mut self, i: usize, r: u64) {
        if i >= self.conns.len() {
            return;
        }
        match self.state[i] {
            2 => {
                for ch in wstap::proto::tls::build::record(23, &[0xcd; 16000]).chunks(1400) {
                    self.c2s(i, ch);
                }
            }
            3 => {
                // A new stream with a big header block (HEADERS and
                // CONTINUATION), sometimes an extended CONNECT the
                // server accepts; streams are never ended.
                let id = self.next_stream[i];
                self.next_stream[i] = id.wrapping_add(2);
                let ws = r & 1 == 0;
                let block = h2::request_block(ws, r, 2000 + (r >> 8) as usize % 30_000);
                for f in h2::headers_frames(id, &block) {
                    self.c2s(i, &f);
                }
                if ws && r & 2 == 0 {
                    self.s2c(i, &h2::frame(1, 4, id, &[0x88]));
                    self.c2s(i, &h2::frame(0, 0, id, &ws_frame(0x1, &[b'x'; 64], Some([1, 2, 3, 4]))));
                }
            }
            _ => {}
        }
    }

    /// One step of kind `kind % 13`, its details drawn from `r`.
    pub fn step(&mut self, kind: u8, r: u64) {
        let proxy = (IpAddr::from(PROXY), 80);
        match kind % 13 {
            10 => {
                // A TLS connection whose keys never come (a flood of
                // ClientHellos under a followed key log): its records are
                // held for them.
                let i = self.open(r, 2);
                let random = [(r >> 8) as u8; 32];
                self.c2s(i, &wstap::proto::tls::build::client_hello(&random, "flood.example", &["http/1.1"]));
                self.s2c(i, &wstap::proto::tls::build::server_hello(&[9; 32], 0x0304, 0x1301, None));
                self.c2s(i, &wstap::proto::tls::build::record(23, &[0xab; 1200]));
            }
            11 => {
                // HTTP/2 in clear: the preface, both SETTINGS (the server
                // offers RFC 8441 and a large HPACK table).
                let i = self.open(r, 3);
                let mut c = h2::PREFACE.to_vec();
                c.extend(h2::frame(4, 0, 0, &[]));
                self.c2s(i, &c);
                let mut set = Vec::new();
                for (id, v) in [(1u16, 65536u32), (8, 1)] {
                    set.extend_from_slice(&id.to_be_bytes());
                    set.extend_from_slice(&v.to_be_bytes());
                }
                self.s2c(i, &h2::frame(4, 0, 0, &set));
            }
            12 => {
                if let Some(i) = self.conn() {
                    self.step_on(i, r);
                }
            }
            0 => {
                let src = (
                    v4(100 + (r % 50) as u8, (r >> 8) as u8, (r >> 16) as u8, (r >> 24) as u8),
                    1024 + (r >> 40) as u16 % 60000,
                );
                self.frames.push(tcp_frame(src, proxy, r as u32, 0, SYN, b""));
            }
            1 => {
                self.open(r, 0);
            }
            2 => {
                if let Some(i) = self.conn() {
                    let mut h = b"GET /hog HTTP/1.1\r\nX-Fill: ".to_vec();
                    h.resize(1400, b'h');
                    if self.state[i] == 0 {
                        self.c2s(i, &h);
                    }
                }
            }
            3 => {
                if let Some(i) = self.conn() {
                    let c = self.conns[i];
                    let off = 1 + 1400 * (r % 200) as u32;
                    let dir = r & 1 << 20 != 0;
                    let (a, b, seq, ack) = if dir {
                        (c.c.addr, c.s.addr, c.c.seq.wrapping_add(off), c.s.seq)
                    } else {
                        (c.s.addr, c.c.addr, c.s.seq.wrapping_add(off), c.c.seq)
                    };
                    self.frames.push(tcp_frame(a, b, seq, ack, ACK, &[b'o'; 1400]));
                }
            }
            4 => {
                if let Some(i) = self.conn() {
                    let mut reqs = Vec::new();
                    for k in 0..20 {
                        reqs.extend_from_slice(
                            format!(
                                "GET /p/{k}?q={r} HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
                                "p".repeat((r % 300) as usize)
                            )
                            .as_bytes(),
                        );
                    }
                    if self.state[i] == 0 {
                        for ch in reqs.chunks(1400) {
                            self.c2s(i, ch);
                        }
                    }
                }
            }
            5 => {
                if let Some(i) = self.conn()
                    && self.state[i] == 0
                {
                    self.s2c(i, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                }
            }
            6 => {
                if let Some(i) = self.conn()
                    && self.state[i] == 0
                {
                    let key = "dGhlIHNhbXBsZSBub25jZQ==";
                    self.c2s(i, format!("GET /ws/{r} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").as_bytes());
                    self.s2c(i, format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n", accept_for(key)).as_bytes());
                    self.state[i] = 1;
                }
            }
            7 => {
                if let Some(i) = self.conn()
                    && self.state[i] == 1
                {
                    self.c2s(i, &ws_frame(0x1, &[b'x'; 64], Some([1, 2, 3, 4])));
                    self.s2c(i, &ws_frame(0x2, &[b'y'; 200], None));
                }
            }
            8 => {
                let mut ip = vec![
                    0x45,
                    0,
                    0x05,
                    0x8c,
                    (r >> 8) as u8,
                    r as u8,
                    0x20,
                    0,
                    64,
                    6,
                    0,
                    0,
                    100,
                    (r >> 16) as u8,
                    (r >> 24) as u8,
                    1,
                ];
                ip.extend_from_slice(&PROXY);
                ip.extend_from_slice(&[0x5a; 1400]);
                let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
                f.extend_from_slice(&ip);
                self.frames.push(f);
            }
            _ => {
                if let Some(i) = self.conn() {
                    let c = self.conns.swap_remove(i);
                    self.state.swap_remove(i);
                    self.next_stream.swap_remove(i);
                    self.frames.push(tcp_frame(c.c.addr, c.s.addr, c.c.seq, c.s.seq, RST | ACK, b""));
                }
            }
        }
    }
}

/// HTTP/2 frames and header blocks for the generators.
pub mod h2 {
    pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    pub fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        f.push(ty);
        f.push(flags);
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// An HPACK integer with an `n`-bit prefix, `first` holding the bits
    /// above it.
    fn int(out: &mut Vec<u8>, first: u8, n: u8, mut v: usize) {
        let max = (1usize << n) - 1;
        if v < max {
            out.push(first | v as u8);
            return;
        }
        out.push(first | max as u8);
        v -= max;
        while v >= 128 {
            out.push((v % 128) as u8 | 0x80);
            v /= 128;
        }
        out.push(v as u8);
    }

    pub fn string(out: &mut Vec<u8>, s: &[u8]) {
        int(out, 0, 7, s.len());
        out.extend_from_slice(s);
    }

    /// A request's header block: GET (or an RFC 8441 extended CONNECT),
    /// fields added to the dynamic table, and a literal of about `big`
    /// bytes.
    pub fn request_block(ws: bool, r: u64, big: usize) -> Vec<u8> {
        let mut b = Vec::new();
        if ws {
            int(&mut b, 0, 4, 2); // :method, literal value
            string(&mut b, b"CONNECT");
            b.push(0);
            string(&mut b, b":protocol");
            string(&mut b, b"websocket");
        } else {
            b.push(0x82); // :method GET
        }
        b.push(0x87); // :scheme https
        int(&mut b, 0, 4, 4); // :path, literal value
        string(&mut b, format!("/h2/{r}").as_bytes());
        int(&mut b, 0x40, 6, 1); // :authority, indexed
        string(&mut b, b"h2.example");
        // Fill the dynamic table.
        b.push(0x40);
        string(&mut b, format!("x-fill-{}", r % 97).as_bytes());
        string(&mut b, &vec![b'f'; 900]);
        b.push(0);
        string(&mut b, b"x-big");
        string(&mut b, &vec![b'b'; big]);
        b
    }

    /// HEADERS then CONTINUATION frames of at most 16 KiB carrying `block`.
    pub fn headers_frames(stream: u32, block: &[u8]) -> Vec<Vec<u8>> {
        let chunks: Vec<&[u8]> = block.chunks(16_384).collect();
        let n = chunks.len();
        chunks
            .into_iter()
            .enumerate()
            .map(|(k, c)| {
                let end = if k + 1 == n { 4 } else { 0 };
                frame(if k == 0 { 1 } else { 9 }, end, stream, c)
            })
            .collect()
    }
}

/// `n` WebSocket sessions through the proxy (both hops) that each end
/// with a reset, one every `gap_us`, with a varied idle time before it (so
/// no boundary explains them and each waits for its judgement).
pub fn reset_websockets(path: &Path, n: u32, gap_us: u64) -> u64 {
    let mut p = Pcap::create(path);
    for k in 0..n {
        let client = (v4(10, 1 + (k >> 16) as u8, (k >> 8) as u8, k as u8), 20000 + (k % 40000) as u16);
        let mut a = Conn::new(client, (IpAddr::from(PROXY), 80), 1000 + k);
        let mut b =
            Conn::new((IpAddr::from(PROXY), 10000 + (k % 50000) as u16), (IpAddr::from(BACKEND), 3000), 9000 + k);
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let req = format!(
            "GET /reset/{} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n",
            k % 50
        );
        let resp = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            accept_for(key)
        );
        a.handshake(&mut p);
        a.send_c(&mut p, req.as_bytes());
        b.handshake(&mut p);
        b.send_c(&mut p, req.as_bytes());
        b.send_s(&mut p, resp.as_bytes());
        a.send_s(&mut p, resp.as_bytes());
        a.send_c(&mut p, &ws_frame(0x1, b"hi", Some([1, 2, 3, 4])));
        b.send_c(&mut p, &ws_frame(0x1, b"hi", Some([5, 6, 7, 8])));
        p.advance_us(gap_us + (k as u64 * 7919) % 5000);
        p.frame(&tcp_frame(b.s.addr, b.c.addr, b.s.seq, b.c.seq, RST | ACK, b""));
        p.frame(&tcp_frame(a.s.addr, a.c.addr, a.s.seq, a.c.seq, RST | ACK, b""));
    }
    let n = p.packets;
    p.finish();
    n
}

/// `n` Engine.IO sessions that poll twice each and never upgrade, one
/// every `gap_us`, each on its own connection.
pub fn socketio_sessions(path: &Path, n: u32, gap_us: u64) -> u64 {
    let mut p = Pcap::create(path);
    for k in 0..n {
        let client = (v4(10, 2 + (k >> 16) as u8, (k >> 8) as u8, k as u8), 20000 + (k % 40000) as u16);
        let mut a = Conn::new(client, (IpAddr::from(PROXY), 80), 7 + k);
        a.handshake(&mut p);
        for (i, t) in ["a", "b"].iter().enumerate() {
            let req =
                format!("GET /socket.io/?EIO=4&transport=polling&t={t}{i}&sid=S{k:019} HTTP/1.1\r\nHost: x\r\n\r\n");
            a.send_c(&mut p, req.as_bytes());
            a.send_s(&mut p, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        }
        a.close(&mut p);
        p.advance_us(gap_us);
    }
    let n = p.packets;
    p.finish();
    n
}

/// The capture `plain` with every connection to the proxy's port 80 made
/// TLS 1.3 (`sni` in its ClientHello): written to `path`, its key log to
/// `keys`.
pub fn as_tls(plain: &Path, sni: &str, path: &Path, keys: &Path) -> u64 {
    let input = std::fs::read(plain).unwrap();
    let mut out = BufWriter::new(std::fs::File::create(path).unwrap());
    let mut k = BufWriter::new(std::fs::File::create(keys).unwrap());
    let n = tlsgen::convert(&input, 80, sni, &mut out, &mut k);
    out.flush().unwrap();
    k.flush().unwrap();
    n
}

/// An HTTP/2 connection in clear (prior knowledge) to the proxy: an RFC
/// 8441 WebSocket stream and a GET stream whose pseudo-headers, header
/// values, response headers and close reason carry terminal escapes and
/// secrets (ESCAPES, SECRETS).
pub fn h2_escapes_secrets(path: &Path) -> u64 {
    let mut p = Pcap::create(path);
    let mut a = Conn::new((v4(192, 168, 20, 1), 43000), (IpAddr::from(PROXY), 80), 77);
    a.handshake(&mut p);
    let mut pre = h2::PREFACE.to_vec();
    pre.extend(h2::frame(4, 0, 0, &[]));
    a.send_c(&mut p, &pre);
    a.send_s(&mut p, &h2::frame(4, 0, 0, &[0, 8, 0, 0, 0, 1]));
    let lit = |b: &mut Vec<u8>, n: &[u8], v: &[u8]| {
        b.push(0);
        h2::string(b, n);
        h2::string(b, v);
    };
    // Stream 1: an extended CONNECT with escapes and secrets.
    let mut b = Vec::new();
    lit(&mut b, b":method", b"CONNECT");
    lit(&mut b, b":protocol", b"websocket");
    lit(&mut b, b"x-proto-note", b"websocket\x1b[2J");
    lit(&mut b, b":scheme", b"https");
    lit(&mut b, b":path", "/h2ws\u{9b}31m?token=SEKRETENCODED3&room=1".as_bytes());
    lit(&mut b, b":authority", b"app.example");
    lit(&mut b, b"x-note", b"a\x1b]0;pwned\x07");
    lit(&mut b, b"user-agent", "ua\u{202e}".as_bytes());
    lit(&mut b, b"x-access-key", b"SEKRETACCESSKEY1");
    lit(&mut b, b"authorization", b"Bearer SEKRETBEARER9");
    lit(&mut b, b"cookie", b"sid=SEKRETCOOKIE11");
    lit(&mut b, b"sec-websocket-protocol", b"chat, Authorization, dXNlcjpTRUtSRVRQUk9UTzY=");
    for f in h2::headers_frames(1, &b) {
        a.send_c(&mut p, &f);
    }
    let mut r = vec![0x88];
    lit(&mut r, b"x-srv", b"\x1b[31mred");
    lit(&mut r, b"set-cookie", b"sid=SEKRETSESSION2");
    a.send_s(&mut p, &h2::frame(1, 4, 1, &r));
    a.send_c(&mut p, &h2::frame(0, 0, 1, &ws_frame(0x1, b"hi", Some([1, 2, 3, 4]))));
    a.send_c(
        &mut p,
        &h2::frame(0, 0, 1, &close_frame(1000, b"bye\x1b]0;pwned\x07 token=SEKRETCLOSE7", Some([5, 6, 7, 8]))),
    );
    a.send_s(&mut p, &h2::frame(0, 0, 1, &close_frame(1000, b"bye\x1b[2J", None)));
    a.send_c(&mut p, &h2::frame(0, 1, 1, &[]));
    a.send_s(&mut p, &h2::frame(0, 1, 1, &[]));
    // Stream 3: a GET with secrets in its target and a JWT.
    let mut b = vec![0x82, 0x87];
    lit(&mut b, b":path", b"/api;auth=SEKRETSEMICOLON4?x=1");
    lit(&mut b, b":authority", b"app.example");
    lit(&mut b, b"x-session-id", b"SEKRETSESSION2");
    lit(&mut b, b"x-token", b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJTRUtSRVRKV1Q4In0.c2lnbmF0dXJlOA");
    lit(&mut b, b"x-password", b"SEKRETPASS10");
    for f in h2::headers_frames(3, &b) {
        a.send_c(&mut p, &f);
    }
    a.send_s(&mut p, &h2::frame(1, 5, 3, &[0x88]));
    a.close(&mut p);
    let n = p.packets;
    p.finish();
    n
}
