//! The `streams` target's input: a script of TCP segments on up to four
//! connections, built into valid Ethernet/IP/TCP frames, so that what the
//! fuzzer varies is the stream (order, overlap, gaps, flags, payload), not
//! checksums and header lengths that the decoder would refuse.
//!
//! ```text
//! header  [opts u8][client ISN u32 LE][server ISN u32 LE]
//!   opts  bit 0     IPv6
//!         bits 1-2  verbosity (0, 1, 2, 1)
//!         bits 3-4  front port: 80, 8080, 443, 3000
//!         bit 5     client ISNs a few bytes below 2^32 (wraparound)
//!         bit 6     server ISNs likewise
//!         bit 7     the operator's hints: `--front PORT --upstream
//!                   10.0.0.3:3000 --timeout 60 --proxy nginx`
//! step    [ctl u8][flags u8][dt u8][fields the modes ask for][payload]
//!   ctl   bit 0     direction: 0 client->server, 1 server->client
//!         bits 1-2  sequence: 0 next byte (SYN: the ISN), 1 next + i16,
//!                   2 ISN + 1 + u32, 3 same as the last segment (resend)
//!         bits 3-4  ack: 0 the peer's highest byte, 1 that + i16,
//!                   2 any u32, 3 the peer's ISN + 1 (nothing acked)
//!         bits 5-6  capture cut: 0 none; 1 last u8 bytes cut, `missing`
//!                   says so; 2 cut u8 bytes, `missing` = u32 (a lying
//!                   orig_len); 3 nothing cut, `missing` = u16
//!         bit 7     payload: 0 [u16 LE len][bytes]; 1 a slice of a canned
//!                   snippet [u8 index][u16 start][u16 len] (len 0xffff:
//!                   to its end)
//!   flags bits 0-5  TCP flags FIN SYN RST PSH ACK URG, as on the wire
//!         bits 6-7  connection 0-3
//!   dt    microseconds since the previous step: dt^3, 253: 31 s,
//!         254: 61 s, 255: 7201 s (beyond the idle timeout)
//! ```
//!
//! Connections: 0 and 2 are clients of the proxy's front port; 1 and 3 go
//! from the proxy to the backend 10.0.0.3:3000, so correlation sees hops.

use etherparse::{PacketBuilder, TcpHeader};
use wstap::decode::LinkType;
use wstap::time::Ts;

use crate::{Output, Reader, canned};

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;
pub const URG: u8 = 0x20;

pub const FRONT_PORTS: [u16; 4] = [80, 8080, 443, 3000];
const BACKEND_PORT: u16 = 3000;
/// IPv4 caps a packet at 65535 bytes with its headers.
const MAX_PAYLOAD: usize = 65_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seq {
    Next,
    Delta(i16),
    Abs(u32),
    Again,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    Peer,
    Delta(i16),
    Raw(u32),
    Nothing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    None,
    Snap(u8),
    Lie(u8, u32),
    Claim(u16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload<'a> {
    Raw(&'a [u8]),
    Canned { index: u8, start: u16, len: u16 },
}

impl Payload<'_> {
    /// A whole canned snippet.
    pub fn canned(index: u8) -> Payload<'static> {
        Payload::Canned { index, start: 0, len: u16::MAX }
    }
    pub fn none() -> Payload<'static> {
        Payload::Raw(&[])
    }
    fn bytes(&self) -> &[u8] {
        let p: &[u8] = match *self {
            Payload::Raw(b) => b,
            Payload::Canned { index, start, len } => {
                let all = canned::all();
                let s = &all[index as usize % all.len()];
                let a = (start as usize).min(s.len());
                let b = if len == u16::MAX { s.len() } else { (a + len as usize).min(s.len()) };
                &s[a..b]
            }
        };
        &p[..p.len().min(MAX_PAYLOAD)]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step<'a> {
    pub conn: u8,
    pub to_client: bool,
    pub seq: Seq,
    pub ack: Ack,
    pub cut: Cut,
    /// TCP flags (low six bits).
    pub flags: u8,
    pub dt: u8,
    pub payload: Payload<'a>,
}

impl<'a> Step<'a> {
    /// A client->server (or back) segment on connection 0: in order,
    /// acking everything, 1 ms after the previous one.
    pub fn new(to_client: bool, flags: u8, payload: Payload<'a>) -> Step<'a> {
        Step { conn: 0, to_client, seq: Seq::Next, ack: Ack::Peer, cut: Cut::None, flags, dt: 10, payload }
    }
    pub fn on(mut self, conn: u8) -> Self {
        self.conn = conn;
        self
    }
    pub fn seq(mut self, seq: Seq) -> Self {
        self.seq = seq;
        self
    }
    pub fn ack(mut self, ack: Ack) -> Self {
        self.ack = ack;
        self
    }
    pub fn cut(mut self, cut: Cut) -> Self {
        self.cut = cut;
        self
    }
    pub fn dt(mut self, dt: u8) -> Self {
        self.dt = dt;
        self
    }

    pub fn read(r: &mut Reader<'a>) -> Step<'a> {
        let ctl = r.u8();
        let flags = r.u8();
        let dt = r.u8();
        let seq = match (ctl >> 1) & 3 {
            0 => Seq::Next,
            1 => Seq::Delta(r.u16() as i16),
            2 => Seq::Abs(r.u32()),
            _ => Seq::Again,
        };
        let ack = match (ctl >> 3) & 3 {
            0 => Ack::Peer,
            1 => Ack::Delta(r.u16() as i16),
            2 => Ack::Raw(r.u32()),
            _ => Ack::Nothing,
        };
        let cut = match (ctl >> 5) & 3 {
            0 => Cut::None,
            1 => Cut::Snap(r.u8()),
            2 => Cut::Lie(r.u8(), r.u32()),
            _ => Cut::Claim(r.u16()),
        };
        let payload = if ctl & 0x80 != 0 {
            Payload::Canned { index: r.u8(), start: r.u16(), len: r.u16() }
        } else {
            let n = r.u16() as usize;
            Payload::Raw(r.bytes(n))
        };
        Step { conn: flags >> 6, to_client: ctl & 1 != 0, seq, ack, cut, flags: flags & 0x3f, dt, payload }
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        let (s, sf): (u8, Vec<u8>) = match self.seq {
            Seq::Next => (0, vec![]),
            Seq::Delta(d) => (1, d.to_le_bytes().to_vec()),
            Seq::Abs(o) => (2, o.to_le_bytes().to_vec()),
            Seq::Again => (3, vec![]),
        };
        let (a, af): (u8, Vec<u8>) = match self.ack {
            Ack::Peer => (0, vec![]),
            Ack::Delta(d) => (1, d.to_le_bytes().to_vec()),
            Ack::Raw(v) => (2, v.to_le_bytes().to_vec()),
            Ack::Nothing => (3, vec![]),
        };
        let (c, cf): (u8, Vec<u8>) = match self.cut {
            Cut::None => (0, vec![]),
            Cut::Snap(k) => (1, vec![k]),
            Cut::Lie(k, m) => (2, [&[k][..], &m.to_le_bytes()].concat()),
            Cut::Claim(m) => (3, m.to_le_bytes().to_vec()),
        };
        let canned = matches!(self.payload, Payload::Canned { .. });
        out.push(self.to_client as u8 | s << 1 | a << 3 | c << 5 | (canned as u8) << 7);
        out.push(self.flags & 0x3f | (self.conn & 3) << 6);
        out.push(self.dt);
        out.extend(sf);
        out.extend(af);
        out.extend(cf);
        match self.payload {
            Payload::Raw(b) => {
                let b = &b[..b.len().min(u16::MAX as usize)];
                out.extend_from_slice(&(b.len() as u16).to_le_bytes());
                out.extend_from_slice(b);
            }
            Payload::Canned { index, start, len } => {
                out.push(index);
                out.extend_from_slice(&start.to_le_bytes());
                out.extend_from_slice(&len.to_le_bytes());
            }
        }
    }
}

/// Encodes a whole input (the seeding example).
pub fn encode(opts: u8, client_isn: u32, server_isn: u32, steps: &[Step<'_>]) -> Vec<u8> {
    let mut out = vec![opts];
    out.extend_from_slice(&client_isn.to_le_bytes());
    out.extend_from_slice(&server_isn.to_le_bytes());
    for s in steps {
        s.write(&mut out);
    }
    out
}

fn dt_us(b: u8) -> i64 {
    match b {
        255 => 7_201_000_000,
        254 => 61_000_000,
        253 => 31_000_000,
        b => (b as i64).pow(3),
    }
}

/// Sequence state of one direction of one connection.
#[derive(Clone, Copy)]
struct Side {
    isn: u32,
    /// One past the highest sequence number sent.
    next: u32,
    /// Where the last segment started.
    last: u32,
}

impl Side {
    fn new(isn: u32) -> Side {
        Side { isn, next: isn.wrapping_add(1), last: isn.wrapping_add(1) }
    }
}

/// (client, server) addresses and ports of connection `i`.
fn endpoints(i: u8, front: u16) -> ([u8; 4], u16, [u8; 4], u16) {
    match i & 3 {
        0 => ([10, 0, 0, 1], 50_000, [10, 0, 0, 2], front),
        1 => ([10, 0, 0, 2], 40_000, [10, 0, 0, 3], BACKEND_PORT),
        2 => ([10, 0, 0, 4], 50_001, [10, 0, 0, 2], front),
        _ => ([10, 0, 0, 2], 40_001, [10, 0, 0, 3], BACKEND_PORT),
    }
}

/// fd00::a.b.c.d: unique-local, so nothing takes it for mapped IPv4.
fn v6(a: [u8; 4]) -> [u8; 16] {
    let mut o = [0u8; 16];
    o[0] = 0xfd;
    o[12..].copy_from_slice(&a);
    o
}

fn frame(ipv6: bool, src: ([u8; 4], u16), dst: ([u8; 4], u16), tcp: TcpHeader, payload: &[u8]) -> Option<Vec<u8>> {
    let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, src.0[3]], [2, 0, 0, 0, 0, dst.0[3]]);
    let mut out = Vec::with_capacity(payload.len() + 80);
    let r = if ipv6 {
        eth.ipv6(v6(src.0), v6(dst.0), 64).tcp_header(tcp).write(&mut out, payload)
    } else {
        eth.ipv4(src.0, dst.0, 64).tcp_header(tcp).write(&mut out, payload)
    };
    r.ok().map(|_| out)
}

pub fn run(data: &[u8]) {
    run_printing(data, false)
}

/// As [`run`], printing every record as a JSON line when `print`.
pub fn run_printing(data: &[u8], print: bool) {
    let mut r = Reader::new(data);
    let opts = r.u8();
    let mut cisn = r.u32();
    let mut sisn = r.u32();
    if opts & 0x20 != 0 {
        cisn = u32::MAX - (cisn & 0xff);
    }
    if opts & 0x40 != 0 {
        sisn = u32::MAX - (sisn & 0xff);
    }
    let ipv6 = opts & 1 != 0;
    let verbose = [0, 1, 2, 1][((opts >> 1) & 3) as usize];
    let front = FRONT_PORTS[((opts >> 3) & 3) as usize];
    let mut args = wstap::cli::Args { read: Some("-".into()), verbose, ..Default::default() };
    if opts & 0x80 != 0 {
        args.front = vec![front];
        args.upstream = vec![format!("10.0.0.3:{BACKEND_PORT}")];
        args.timeouts = vec![60.0];
        args.proxy = wstap::detect::proxy::Proxy::named("nginx");
    }
    let mut p = wstap::app::build_pipeline(&args).expect("the target's arguments are valid");
    let mut out = Output::new(verbose, print);
    // Each connection's ISNs differ, so a reused 4-tuple is not confused.
    let mut sides: Vec<[Side; 2]> = (0..4u32)
        .map(|i| {
            let k = i.wrapping_mul(0x0100_0000);
            [Side::new(cisn.wrapping_add(k)), Side::new(sisn.wrapping_add(k))]
        })
        .collect();
    let mut ts: i64 = 1_700_000_000_000_000;
    while !r.is_empty() {
        let step = Step::read(&mut r);
        ts = ts.saturating_add(dt_us(step.dt));
        let d = step.to_client as usize;
        let (me, peer) = (sides[step.conn as usize][d], sides[step.conn as usize][1 - d]);
        let syn = step.flags & SYN != 0;
        let fin = step.flags & FIN != 0;
        let seq = match step.seq {
            Seq::Next if syn => me.isn,
            Seq::Next => me.next,
            Seq::Delta(x) => me.next.wrapping_add(x as i32 as u32),
            Seq::Abs(o) => me.isn.wrapping_add(1).wrapping_add(o),
            Seq::Again => me.last,
        };
        let ack = match step.ack {
            Ack::Peer => peer.next,
            Ack::Delta(x) => peer.next.wrapping_add(x as i32 as u32),
            Ack::Raw(v) => v,
            Ack::Nothing => peer.isn.wrapping_add(1),
        };
        let payload = step.payload.bytes();
        let (ca, cp, sa, sp) = endpoints(step.conn, front);
        let (src, dst) = if d == 0 { ((ca, cp), (sa, sp)) } else { ((sa, sp), (ca, cp)) };
        let mut tcp = TcpHeader::new(src.1, dst.1, seq, 65_535);
        tcp.fin = fin;
        tcp.syn = syn;
        tcp.rst = step.flags & RST != 0;
        tcp.psh = step.flags & PSH != 0;
        tcp.ack = step.flags & ACK != 0;
        tcp.urg = step.flags & URG != 0;
        tcp.acknowledgment_number = ack;
        let Some(mut f) = frame(ipv6, src, dst, tcp, payload) else { continue };
        let missing = match step.cut {
            Cut::None => 0,
            Cut::Snap(k) => {
                let k = (k as usize).min(payload.len());
                f.truncate(f.len() - k);
                k as u32
            }
            Cut::Lie(k, m) => {
                let k = (k as usize).min(payload.len());
                f.truncate(f.len() - k);
                m
            }
            Cut::Claim(m) => m as u32,
        };
        p.packet(LinkType::ETHERNET, Ts(ts), &f, missing);
        let side = &mut sides[step.conn as usize][d];
        side.last = seq;
        let end = seq.wrapping_add(syn as u32).wrapping_add(payload.len() as u32).wrapping_add(fin as u32);
        if (end.wrapping_sub(side.next) as i32) > 0 {
            side.next = end;
        }
        out.drain(&mut p);
    }
    out.finish(&mut p);
}
