//! Builds a TLS capture for the benchmark from a plaintext two-hop one:
//! every connection to the front port becomes TLS 1.3 (AES-128-GCM): a
//! ClientHello and a ServerHello flight are inserted, each TCP payload of
//! the client hop is sealed as TLS records with per-connection secrets, and
//! sequence/ack numbers are shifted by the bytes TLS adds. The upstream hop
//! stays plaintext, as behind a TLS-terminating proxy. Writes the key log
//! (what a client's SSLKEYLOGFILE would hold) next to it. Encryption is the
//! RustCrypto crates' (through wstap's `RecordKey::seal`).
//!
//!   cargo run --release --example tlsgen -- IN.pcap FRONT_PORT OUT.pcap OUT.keys

use std::collections::HashMap;
use std::io::{BufWriter, Read, Write};

use wstap::proto::tls::build;
use wstap::proto::tls::crypto::{RecordKey, suite};

type Key = ([u8; 4], u16, [u8; 4], u16);

struct Dir {
    /// Bytes TLS added so far in this direction.
    extra: u32,
    /// (original sequence number at the end of a segment, extra after it),
    /// to shift the peer's acks.
    ends: Vec<(u32, u32)>,
}

struct Conn {
    /// [to server, to client]
    dirs: [Dir; 2],
    keys: [RecordKey; 2],
    random: [u8; 32],
    handshook: bool,
}

fn secret(n: u64, which: u8) -> [u8; 32] {
    let mut s = [which; 32];
    s[..8].copy_from_slice(&n.to_be_bytes());
    s
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn ip_checksum(h: &[u8]) -> u16 {
    let mut sum = 0u32;
    for (i, c) in h.chunks(2).enumerate() {
        if i == 5 {
            continue;
        }
        sum += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[allow(dead_code)]
fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() != 4 {
        eprintln!("usage: tlsgen IN.pcap FRONT_PORT OUT.pcap OUT.keys");
        std::process::exit(2);
    }
    let front: u16 = a[1].parse().expect("a port");
    let mut input = Vec::new();
    std::fs::File::open(&a[0]).and_then(|mut f| f.read_to_end(&mut input)).expect("readable pcap");
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&a[2]).expect("writable"));
    let mut keylog = BufWriter::new(std::fs::File::create(&a[3]).expect("writable"));
    let next = convert(&input, front, "bench.example", &mut out, &mut keylog);
    out.flush().unwrap();
    keylog.flush().unwrap();
    eprintln!("tlsgen: {next} connections to port {front} made TLS 1.3");
}

/// Converts the plaintext capture `input` (a little-endian microsecond
/// Ethernet pcap): every connection to port `front` becomes TLS 1.3 with
/// `sni` in its ClientHello; the capture goes to `out`, the key log to
/// `keylog`. Returns the connections made TLS (also used by the hostile
/// tests, through tests/hostile_gen).
pub fn convert(input: &[u8], front: u16, sni: &str, out: &mut impl Write, keylog: &mut impl Write) -> u64 {
    assert_eq!(&input[..4], &0xa1b2c3d4u32.to_le_bytes(), "a little-endian microsecond pcap");
    assert_eq!(u32::from_le_bytes(input[20..24].try_into().unwrap()), 1, "Ethernet");
    out.write_all(&input[..24]).unwrap();
    let s = suite(0x1301).unwrap();
    let mut conns: HashMap<Key, Conn> = HashMap::new();
    let mut next = 0u64;
    let mut at = 24;
    let write = |out: &mut dyn Write, hdr: &[u8], frame: &[u8]| {
        out.write_all(&hdr[..8]).unwrap();
        out.write_all(&(frame.len() as u32).to_le_bytes()).unwrap();
        out.write_all(&(frame.len() as u32).to_le_bytes()).unwrap();
        out.write_all(frame).unwrap();
    };
    while at + 16 <= input.len() {
        let hdr = input[at..at + 16].to_vec();
        let cap = u32::from_le_bytes(hdr[8..12].try_into().unwrap()) as usize;
        let frame = input[at + 16..at + 16 + cap].to_vec();
        at += 16 + cap;
        // Ethernet, IPv4, TCP only; anything else is copied as is.
        if frame.len() < 14 + 20 || frame[12..14] != [8, 0] || frame[23] != 6 {
            write(out, &hdr, &frame);
            continue;
        }
        let ihl = (frame[14] & 15) as usize * 4;
        let t = 14 + ihl;
        let doff = (frame[t + 12] >> 4) as usize * 4;
        let ip_len = u16::from_be_bytes([frame[16], frame[17]]) as usize;
        let end = (14 + ip_len).min(frame.len());
        let payload = &frame[t + doff..end];
        let src = ([frame[26], frame[27], frame[28], frame[29]], u16::from_be_bytes([frame[t], frame[t + 1]]));
        let dst = ([frame[30], frame[31], frame[32], frame[33]], u16::from_be_bytes([frame[t + 2], frame[t + 3]]));
        let (key, d) = if dst.1 == front {
            ((src.0, src.1, dst.0, dst.1), 0usize)
        } else if src.1 == front {
            ((dst.0, dst.1, src.0, src.1), 1usize)
        } else {
            write(out, &hdr, &frame);
            continue;
        };
        let syn = frame[t + 13] & 0x02 != 0;
        if syn && d == 0 {
            next += 1;
            let mut random = [0u8; 32];
            random[..8].copy_from_slice(&next.to_be_bytes());
            random[8..].copy_from_slice(&[0x5a; 24]);
            let keys = [RecordKey::tls13(s, &secret(next, 3)).unwrap(), RecordKey::tls13(s, &secret(next, 4)).unwrap()];
            writeln!(
                keylog,
                "CLIENT_HANDSHAKE_TRAFFIC_SECRET {r} {}\nSERVER_HANDSHAKE_TRAFFIC_SECRET {r} {}\nCLIENT_TRAFFIC_SECRET_0 {r} {}\nSERVER_TRAFFIC_SECRET_0 {r} {}",
                hex(&secret(next, 1)),
                hex(&secret(next, 2)),
                hex(&secret(next, 3)),
                hex(&secret(next, 4)),
                r = hex(&random)
            )
            .unwrap();
            let dir = || Dir { extra: 0, ends: Vec::new() };
            conns.insert(key, Conn { dirs: [dir(), dir()], keys, random, handshook: false });
        }
        let Some(c) = conns.get_mut(&key) else {
            write(out, &hdr, &frame);
            continue;
        };
        let seq = u32::from_be_bytes(frame[t + 4..t + 8].try_into().unwrap());
        let ack = u32::from_be_bytes(frame[t + 8..t + 12].try_into().unwrap());
        let has_ack = frame[t + 13] & 0x10 != 0;
        let n = u64::from_be_bytes(c.random[..8].try_into().unwrap());
        // One packet of direction `ed`: sequence `seq` and ack `ack` as
        // already shifted, carrying `body`.
        let build_pkt = |ed: usize, seq: u32, ack: u32, body: &[u8]| -> Vec<u8> {
            let mut f = frame[..t + doff].to_vec();
            if ed != d {
                f[26..30].copy_from_slice(&frame[30..34]);
                f[30..34].copy_from_slice(&frame[26..30]);
                f[t..t + 2].copy_from_slice(&frame[t + 2..t + 4]);
                f[t + 2..t + 4].copy_from_slice(&frame[t..t + 2]);
                f[t + 13] = 0x18; // PSH, ACK
            }
            f[t + 4..t + 8].copy_from_slice(&seq.to_be_bytes());
            f[t + 8..t + 12].copy_from_slice(&ack.to_be_bytes());
            f.extend_from_slice(body);
            let ip_total = (f.len() - 14) as u16;
            f[16..18].copy_from_slice(&ip_total.to_be_bytes());
            let ck = ip_checksum(&f[14..14 + ihl]);
            f[24..26].copy_from_slice(&ck.to_be_bytes());
            f
        };
        let peer_shift = |c: &Conn, x: u32| -> u32 {
            c.dirs[1 - d].ends.iter().rev().find(|(e, _)| (x.wrapping_sub(*e) as i32) >= 0).map_or(0, |(_, v)| *v)
        };
        if payload.is_empty() {
            let a2 = if has_ack { ack.wrapping_add(peer_shift(c, ack)) } else { ack };
            let f = build_pkt(d, seq.wrapping_add(c.dirs[d].extra), a2, &[]);
            write(out, &hdr, &f);
            continue;
        }
        let mut body = Vec::new();
        if d == 0 && !c.handshook {
            // The client's first data: its hello, the server's flight, then
            // the client's Finished with the data.
            c.handshook = true;
            let ch = build::client_hello(&c.random, sni, &["http/1.1"]);
            let f = build_pkt(0, seq.wrapping_add(c.dirs[0].extra), ack.wrapping_add(peer_shift(c, ack)), &ch);
            write(out, &hdr, &f);
            c.dirs[0].extra += ch.len() as u32;
            c.dirs[0].ends.push((seq, c.dirs[0].extra));
            let mut flight = build::server_hello(&[0x33; 32], 0x0304, 0x1301, None);
            let mut hs = build::encrypted_extensions(Some("http/1.1"));
            hs.extend(build::message(20, &[0; 32]));
            let mut s_hs = RecordKey::tls13(s, &secret(n, 2)).unwrap();
            flight.extend(s_hs.seal(22, &hs));
            // The server's next byte is what the client acks.
            let f = build_pkt(1, ack.wrapping_add(c.dirs[1].extra), seq.wrapping_add(c.dirs[0].extra), &flight);
            write(out, &hdr, &f);
            c.dirs[1].extra += flight.len() as u32;
            c.dirs[1].ends.push((ack, c.dirs[1].extra));
            let mut c_hs = RecordKey::tls13(s, &secret(n, 1)).unwrap();
            body.extend(c_hs.seal(22, &build::message(20, &[0; 32])));
        }
        for chunk in payload.chunks(16_000) {
            body.extend(c.keys[d].seal(23, chunk));
        }
        let a2 = if has_ack { ack.wrapping_add(peer_shift(c, ack)) } else { ack };
        let f = build_pkt(d, seq.wrapping_add(c.dirs[d].extra), a2, &body);
        write(out, &hdr, &f);
        let dd = &mut c.dirs[d];
        dd.extra = dd.extra.wrapping_add((body.len() - payload.len()) as u32);
        dd.ends.push((seq.wrapping_add(payload.len() as u32), dd.extra));
        if dd.ends.len() > 256 {
            dd.ends.drain(..128);
        }
    }
    next
}
