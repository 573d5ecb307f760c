//! Seeds the fuzz corpora (run from `fuzz/`: `cargo run --release --example seed`).
//!
//! - `corpus/pipeline/`: the repository's real captures (`captures/*.pcap`,
//!   `tests/data/peers/**/*.pcap*`) in the `pipeline` target's format, read
//!   with wstap's own capture reader. Long captures become several seeds of
//!   consecutive packets, each at most `WINDOW` bytes, so inputs stay small
//!   enough for libFuzzer to mutate quickly.
//! - `corpus/streams/`: scripted connections in the `streams` format: real
//!   upgrade requests, 101s and frames, through a proxy chain, reordered,
//!   cut, wrapped, refused, tunnelled, idle.

use std::path::{Path, PathBuf};

use wstap::capture::file::FileSource;
use wstap::capture::{Next, PacketSource};
use wstap_fuzz::canned::idx;
use wstap_fuzz::pipeline::Encoder;
use wstap_fuzz::streams::{self, ACK, Ack, Cut, FIN, PSH, Payload, RST, SYN, Seq, Step};

const WINDOW: usize = 12 * 1024;
const MAX_WINDOWS: usize = 4;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let n = seed_pipeline(&root, &out.join("pipeline"));
    let m = seed_streams(&out.join("streams"));
    let t = seed_tls(&out.join("tls"));
    println!("wrote {n} pipeline seeds, {m} streams seeds and {t} tls seeds under {}", out.display());
}

fn captures(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut walk = vec![root.join("captures"), root.join("tests/data/peers")];
    while let Some(dir) = walk.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk.push(p);
            } else if p.extension().and_then(|x| x.to_str()).is_some_and(|x| x.starts_with("pcap")) {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

fn seed_pipeline(root: &Path, dir: &Path) -> usize {
    std::fs::create_dir_all(dir).unwrap();
    let mut written = 0;
    for path in captures(root) {
        let name = path.strip_prefix(root).unwrap().to_string_lossy().replace('/', "_");
        let mut src = match FileSource::open(path.to_str().unwrap(), None) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("skip {name}: {e}");
                continue;
            }
        };
        let Some(mut enc) = Encoder::new(src.linktype()) else {
            eprintln!("skip {name}: link type {:?} has no slot", src.linktype());
            continue;
        };
        let mut windows = 0;
        loop {
            let done = match src.next_packet() {
                Ok(Next::Packet(p)) => {
                    let missing = p.missing();
                    enc.packet(p.ts, p.data, missing);
                    false
                }
                _ => true,
            };
            if (done && enc.buf.len() > 2) || enc.buf.len() >= WINDOW {
                std::fs::write(dir.join(format!("{name}.{windows}")), &enc.buf).unwrap();
                written += 1;
                windows += 1;
                enc = Encoder::new(src.linktype()).unwrap();
            }
            if done || windows == MAX_WINDOWS {
                break;
            }
        }
    }
    written
}

fn seed_streams(dir: &Path) -> usize {
    std::fs::create_dir_all(dir).unwrap();
    let c = |i| Payload::canned(i);
    let none = Payload::none;
    let cs = |f, p| Step::new(false, f, p);
    let sc = |f, p| Step::new(true, f, p);
    let handshake = |conn: u8| vec![cs(SYN, none()).on(conn), sc(SYN | ACK, none()).on(conn), cs(ACK, none()).on(conn)];
    let close =
        |conn: u8| vec![cs(FIN | ACK, none()).on(conn), sc(FIN | ACK, none()).on(conn), cs(ACK, none()).on(conn)];
    let mut seeds: Vec<(&str, u8, u32, u32, Vec<Step<'static>>)> = Vec::new();

    // One healthy WebSocket connection, end to end.
    let mut s = handshake(0);
    s.extend([
        cs(ACK | PSH, c(idx::UPGRADE)),
        sc(ACK | PSH, c(idx::OK101)),
        cs(ACK | PSH, c(idx::CLIENT_FRAMES)),
        sc(ACK | PSH, c(idx::SERVER_FRAMES)),
    ]);
    s.extend(close(0));
    seeds.push(("healthy", 0, 1000, 9000, s));

    // Through a proxy: client hop (0) and upstream hop (1), both upgraded.
    let mut s = handshake(0);
    s.push(cs(ACK | PSH, c(idx::UPGRADE)));
    s.extend(handshake(1));
    s.extend([
        cs(ACK | PSH, c(idx::PROXIED_UPGRADE)).on(1),
        sc(ACK | PSH, c(idx::UPSTREAM_101)).on(1),
        sc(ACK | PSH, c(idx::OK101)),
        cs(ACK | PSH, c(idx::CLIENT_FRAMES)),
        cs(ACK | PSH, c(idx::CLIENT_FRAMES)).on(1),
        sc(ACK | PSH, c(idx::SERVER_FRAMES)).on(1),
        sc(ACK | PSH, c(idx::SERVER_FRAMES)),
    ]);
    s.extend(close(1));
    s.extend(close(0));
    seeds.push(("proxy-chain", 0x82, 77, 5000, s.clone()));
    seeds.push(("proxy-chain-v6", 0x01 | 0x08, 77, 5000, s));

    // The upgrade cut in three, sent out of order, one piece resent
    // overlapping; frames after a hole the peer acknowledges past.
    let piece = |start: u16, len: u16| Payload::Canned { index: idx::UPGRADE, start, len };
    let mut s = handshake(0);
    s.extend([
        cs(ACK, piece(100, 200)).seq(Seq::Abs(100)),
        cs(ACK, piece(40, 100)).seq(Seq::Abs(40)),
        cs(ACK, piece(0, 50)).seq(Seq::Abs(0)),
        cs(ACK, piece(40, 100)).seq(Seq::Abs(40)),
        sc(ACK | PSH, c(idx::OK101)),
        sc(ACK, Payload::Canned { index: idx::SERVER_FRAMES, start: 20, len: 100 }).seq(Seq::Delta(20)),
        cs(ACK, none()).ack(Ack::Delta(200)),
        sc(ACK | PSH, c(idx::SERVER_FRAMES)).seq(Seq::Again),
        cs(RST | ACK, none()),
    ]);
    seeds.push(("reordered", 0x02, 4242, 31337, s));

    // Sequence numbers wrapping past 2^32 and a capture snap length.
    let mut s = handshake(0);
    s.extend([
        cs(ACK | PSH, c(idx::UPGRADE)),
        sc(ACK | PSH, c(idx::OK101)),
        sc(ACK | PSH, c(idx::SERVER_FRAMES)).cut(Cut::Snap(30)),
        cs(ACK | PSH, c(idx::CLIENT_FRAMES)),
        sc(ACK | PSH, c(idx::BAD_FRAMES)),
    ]);
    s.extend(close(0));
    seeds.push(("wraparound-snaplen", 0x60, 3, 7, s));

    // Upgrade refused, the connection goes on as keep-alive HTTP, then RST.
    let mut s = handshake(0);
    s.extend([
        cs(ACK | PSH, c(idx::UPGRADE)),
        sc(ACK | PSH, c(idx::FORBIDDEN)),
        cs(ACK | PSH, c(idx::GET)),
        sc(ACK | PSH, c(idx::CHUNKED200)),
        cs(ACK | PSH, c(idx::POST_CHUNKED)),
        sc(ACK | PSH, c(idx::OK200)),
        cs(ACK | PSH, c(idx::HEAD)),
        sc(ACK | PSH, c(idx::NOT_MODIFIED)),
        sc(RST, none()),
    ]);
    seeds.push(("refused-keepalive", 0x04, 1, 2, s));

    // Picked up mid-connection: no SYN, server frames first.
    let s = vec![
        sc(ACK | PSH, c(idx::SERVER_FRAMES)),
        cs(ACK | PSH, c(idx::CLIENT_FRAMES)),
        cs(ACK | PSH, c(idx::SOCKETIO_UPGRADE)).on(2),
        sc(ACK | PSH, c(idx::BAD_ACCEPT_101)).on(2),
    ];
    seeds.push(("midstream", 0x00, 10, 20, s));

    // CONNECT, h2c, TLS and HTTP/1.0 on four connections.
    let mut s = Vec::new();
    for conn in 0..4 {
        s.extend(handshake(conn));
    }
    s.extend([
        cs(ACK | PSH, c(idx::CONNECT)),
        sc(ACK | PSH, c(idx::CONNECT_OK)),
        cs(ACK | PSH, c(idx::TLS_HELLO)),
        cs(ACK | PSH, c(idx::H2C)).on(1),
        sc(ACK | PSH, c(idx::CONTINUE_H2C_101)).on(1),
        cs(ACK | PSH, c(idx::TLS_HELLO)).on(2),
        cs(ACK | PSH, c(idx::GET10)).on(3),
        sc(ACK | PSH | FIN, c(idx::OK10_UNTIL_CLOSE)).on(3),
        sc(ACK | PSH, c(idx::BAD_GATEWAY)).on(2),
    ]);
    seeds.push(("tunnels", 0x10, 5, 6, s));

    // An idle session: pings a minute apart, then silence past the timeout.
    let ping = encode_ws_ping();
    let mut s = handshake(0);
    s.extend([cs(ACK | PSH, c(idx::UPGRADE)), sc(ACK | PSH, c(idx::OK101))]);
    for _ in 0..4 {
        s.push(cs(ACK | PSH, Payload::Raw(ping)).dt(254));
    }
    s.push(sc(ACK, none()).dt(255));
    s.push(cs(ACK, none()).dt(253));
    seeds.push(("idle", 0x02, 600, 700, s));

    for (name, opts, ci, si, steps) in &seeds {
        std::fs::write(dir.join(name), streams::encode(*opts, *ci, *si, steps)).unwrap();
    }
    seeds.len()
}

fn encode_ws_ping() -> &'static [u8] {
    let v = wstap::proto::ws::encode(true, 0, wstap::proto::ws::opcode::PING, Some([1, 2, 3, 4]), b"keepalive");
    Box::leak(v.into_boxed_slice())
}

/// `corpus/tls/`: whole TLS connections in the `tls` format, per suite:
/// handshake, an upgrade and its 101, frames, a KeyUpdate; keys present,
/// late, wrong, absent; TLS 1.2 with ChangeCipherSpec.
fn seed_tls(dir: &Path) -> usize {
    use wstap_fuzz::tls::step;
    std::fs::create_dir_all(dir).unwrap();
    let req = b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let resp = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    let fin = wstap::proto::tls::build::message(20, &[0; 48]);
    let mut n = 0;
    for suite in 0u8..8 {
        for flags in [0x08u8, 0x10, 0x28, 0x00, 0x48] {
            let mut v = vec![suite | flags];
            step(&mut v, 3 << 1, b"localhost");
            step(&mut v, (4 << 1) | 1, b"");
            if suite >= 3 {
                step(&mut v, (5 << 1) | 1, b"");
                step(&mut v, (2 << 1) | 1, &fin[..16]);
                step(&mut v, 5 << 1, b"");
                step(&mut v, 2 << 1, &fin[..16]);
            } else {
                let mut ee = wstap::proto::tls::build::encrypted_extensions(Some("http/1.1"));
                ee.extend_from_slice(&fin);
                step(&mut v, (2 << 1) | 1, &ee);
                step(&mut v, 2 << 1, &fin);
            }
            if flags & 0x10 != 0 {
                step(&mut v, 1 << 1, req);
                step(&mut v, 8 << 1, b"");
            } else {
                step(&mut v, 1 << 1, req);
            }
            step(&mut v, (1 << 1) | 1, resp);
            step(&mut v, 1 << 1, &[0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2]);
            step(&mut v, 9 << 1, b"");
            step(&mut v, 1 << 1, &[0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xe8 ^ 2]);
            step(&mut v, 7 << 1, b"");
            std::fs::write(dir.join(format!("tls-{suite}-{flags:02x}")), v).unwrap();
            n += 1;
        }
    }
    n
}
