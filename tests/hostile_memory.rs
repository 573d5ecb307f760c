//! Property test of the memory bound, on the heap itself: random hostile
//! traffic (SYN floods, connections holding partial heads and data ahead
//! of holes, pipelining, upgrades and frames, fragment floods, resets, in
//! changing mixes) goes through the whole engine with a small budget, and
//! after every packet a counting allocator (this test binary's global
//! allocator) checks that the bytes actually allocated stay under the
//! budget plus a fixed allowance for the engine's bounded caches; and the
//! budget's own account never exceeds it. At the end every charge is
//! released. Deterministic (fixed seeds); also a cargo-fuzz target
//! (fuzz/fuzz_targets/budget.rs) drives the same check from fuzzer input.

mod heap_check;
mod hostile_gen;

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use heap_check::{ALLOWANCE, Counting};

use hostile_gen::*;
use wstap::cli::Args;
use wstap::decode::LinkType;
use wstap::time::Ts;

static LIVE: AtomicUsize = AtomicUsize::new(0);

#[global_allocator]
static A: Counting = Counting(&LIVE);

#[test]
fn the_heap_stays_under_the_budget_whatever_the_traffic() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let memcap_mb: u64 = std::env::var("MEMCAP_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(4);
    // flood, open, head, ooo, pipeline, respond, upgrade, frames, fragments, reset,
    // TLS open, h2 open, TLS record / h2 stream
    let mixes: [(&str, &[u64]); 7] = [
        ("syn flood", &[90, 3, 1, 1, 1, 1, 1, 1, 0, 1]),
        ("held heads and holes", &[2, 10, 40, 40, 1, 1, 2, 2, 0, 2]),
        ("pipelining", &[2, 10, 2, 2, 60, 5, 2, 2, 0, 5]),
        ("upgrades and fragments", &[10, 20, 5, 5, 5, 5, 20, 20, 30, 5]),
        // ClientHellos whose keys never come, under a followed key log:
        // every connection holds records for them.
        ("tls held records", &[5, 2, 1, 1, 1, 1, 1, 1, 0, 3, 40, 0, 50]),
        // HTTP/2: many streams per connection, big header blocks, large
        // HPACK tables, RFC 8441 WebSockets.
        ("h2 streams", &[5, 2, 1, 1, 1, 1, 1, 1, 0, 3, 0, 10, 80]),
        ("everything", &[20, 15, 10, 10, 10, 10, 10, 10, 10, 5, 10, 5, 20]),
    ];
    for (round, (name, weights)) in mixes.iter().enumerate() {
        let args = Args { memcap: Some(format!("{memcap_mb}M")), ..Args::default() };
        let mut p = wstap::app::build_pipeline(&args).unwrap();
        // A followed key log (live): records wait for keys.
        p.keys().set_growing(true);
        let limit = p.flows.budget().limit;
        let mut sink = Discard::default();
        let base = LIVE.load(Ordering::Relaxed);
        let mut peak = 0;
        let mut outside = 0i64;
        let mut m = Traffic::new(0x5eed + round as u64);
        let mut t_us = 0i64;
        let steps: usize = std::env::var("STEPS").ok().and_then(|v| v.parse().ok()).unwrap_or(40_000);
        for _ in 0..steps {
            m.step_weighted(weights);
            for f in std::mem::take(&mut m.frames) {
                t_us += 10;
                p.packet(LinkType::ETHERNET, Ts(1_700_000_000_000_000 + t_us), &f, 0);
                p.drain_to(&mut sink).unwrap();
                let b = p.flows.budget();
                assert!(b.total() <= limit + (2 << 20), "{name}: accounted {} over {limit}", b.total());
                let live = LIVE.load(Ordering::Relaxed).saturating_sub(base);
                peak = peak.max(live);
                let o = live as i64 - b.total() as i64;
                if o > outside {
                    outside = o;
                    if std::env::var_os("DEBUG_MEM").is_some() {
                        eprintln!(
                            "{name}: outside {o} live {live} acct {:?} analyzer {:?} flows {} defrag {} {}",
                            (b.table, b.state, b.buffers),
                            p.analysis.correlation.live_state(),
                            p.flows.live(),
                            p.defrag.in_flight(),
                            p.defrag.held
                        );
                    }
                }
                assert!(
                    live <= limit as usize + ALLOWANCE,
                    "{name}: {live} bytes allocated, over the budget {limit} + {ALLOWANCE} (accounted {:?})",
                    (b.table, b.state, b.buffers)
                );
            }
        }
        let st = p.flows.budget().stats;
        eprintln!(
            "{name}: peak heap {:.1} MiB of {memcap_mb} MiB, at most {:.1} MiB not charged; {st:?}",
            peak as f64 / (1 << 20) as f64,
            outside as f64 / (1 << 20) as f64
        );
        let sum = p.finish();
        p.drain_to(&mut sink).unwrap();
        // The traffic was what the mix says it is.
        if *name == "tls held records" {
            let t = sum.tls.as_ref().expect("TLS connections");
            eprintln!("{name}: {t:?}");
            assert!(t.connections > 1000 && t.held_dropped > 1 << 20, "{t:?}");
            assert!(st.shed_bytes > 1 << 20, "held records were given up under pressure: {st:?}");
        }
        if *name == "h2 streams" {
            let h = sum.h2.as_ref().expect("HTTP/2 connections");
            eprintln!("{name}: {h:?}");
            assert!(h.connections > 500 && h.streams > 1000 && h.websocket_accepted > 100, "{h:?}");
            assert!(st.evicted.established > 1000, "h2 connections were evicted under pressure: {st:?}");
        }
        let b = p.flows.budget();
        assert_eq!((b.state, b.buffers), (0, 0), "{name}: every charge released at the end");
        assert_eq!(p.analysis.correlation.live_state(), (0, 0, 0, 0));
        assert!(sink.records > 0);
        drop(p);
        let left = LIVE.load(Ordering::Relaxed) as i64 - base as i64;
        assert!(left < 64 * 1024, "{name}: {left} bytes still allocated after the pipeline was dropped");
    }
}

/// A sink that only counts (records are formatted by the real sinks in
/// the other tests).
#[derive(Default)]
struct Discard {
    records: u64,
}

impl wstap::sink::Sink for Discard {
    fn record(&mut self, _: &wstap::record::Record) -> std::io::Result<()> {
        self.records += 1;
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The budget's per-connection charges cover what connections really cost
/// on the heap (measured here with the counting allocator), for
/// connections left half-open, plain HTTP ones, and upgraded WebSockets.
#[test]
fn charges_cover_what_connections_cost() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for kind in ["half-open", "http", "websocket", "tls", "h2"] {
        let args = Args { memcap: Some("1G".into()), ..Args::default() };
        let mut p = wstap::app::build_pipeline(&args).unwrap();
        p.keys().set_growing(true);
        let mut sink = Discard::default();
        let n = 5_000u32;
        let base = LIVE.load(Ordering::Relaxed);
        let mut t = 0i64;
        let mut feed = |p: &mut wstap::pipeline::Pipeline, f: Vec<u8>| {
            t += 10;
            p.packet(LinkType::ETHERNET, Ts(1_700_000_000_000_000 + t), &f, 0);
            p.drain_to(&mut sink).unwrap();
        };
        for i in 0..n {
            let src = (v4(172, 16, (i >> 8) as u8, i as u8), 1024 + (i % 60000) as u16);
            let mut c = Conn::new(src, (IpAddr::from(PROXY), 80), i);
            feed(&mut p, tcp_frame(c.c.addr, c.s.addr, c.c.seq, 0, SYN, b""));
            if kind == "half-open" {
                continue;
            }
            c.c.seq += 1;
            feed(&mut p, tcp_frame(c.s.addr, c.c.addr, c.s.seq, c.c.seq, SYN | ACK, b""));
            c.s.seq += 1;
            if kind == "tls" || kind == "h2" {
                // TLS: records held for keys that have not come; HTTP/2:
                // four streams, one of them an accepted RFC 8441 WebSocket.
                let mut cs = Vec::new();
                let mut sc = Vec::new();
                if kind == "tls" {
                    cs.push(wstap::proto::tls::build::client_hello(&[i as u8; 32], "x.example", &["http/1.1"]));
                    sc.push(wstap::proto::tls::build::server_hello(&[9; 32], 0x0304, 0x1301, None));
                    cs.push(wstap::proto::tls::build::record(23, &[0xab; 600]));
                } else {
                    let mut pre = h2::PREFACE.to_vec();
                    pre.extend(h2::frame(4, 0, 0, &[]));
                    cs.push(pre);
                    sc.push(h2::frame(4, 0, 0, &[0, 8, 0, 0, 0, 1]));
                    for (k, id) in [1u32, 3, 5, 7].into_iter().enumerate() {
                        for f in h2::headers_frames(id, &h2::request_block(k == 0, i as u64, 200)) {
                            cs.push(f);
                        }
                    }
                    sc.push(h2::frame(1, 4, 1, &[0x88]));
                }
                for (d, f) in cs.into_iter().map(|f| (true, f)).chain(sc.into_iter().map(|f| (false, f))) {
                    if d {
                        feed(&mut p, tcp_frame(c.c.addr, c.s.addr, c.c.seq, c.s.seq, ACK | PSH, &f));
                        c.c.seq += f.len() as u32;
                    } else {
                        feed(&mut p, tcp_frame(c.s.addr, c.c.addr, c.s.seq, c.c.seq, ACK | PSH, &f));
                        c.s.seq += f.len() as u32;
                    }
                }
                continue;
            }
            let key = "dGhlIHNhbXBsZSBub25jZQ==";
            let (req, resp) = if kind == "websocket" {
                (
                    format!(
                        "GET /ws/{i} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                    ),
                    format!(
                        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                        accept_for(key)
                    ),
                )
            } else {
                (
                    format!("GET /p/{i} HTTP/1.1\r\nHost: x\r\n\r\n"),
                    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_string(),
                )
            };
            feed(&mut p, tcp_frame(c.c.addr, c.s.addr, c.c.seq, c.s.seq, ACK | PSH, req.as_bytes()));
            c.c.seq += req.len() as u32;
            feed(&mut p, tcp_frame(c.s.addr, c.c.addr, c.s.seq, c.c.seq, ACK | PSH, resp.as_bytes()));
        }
        let live = (LIVE.load(Ordering::Relaxed) - base) as u64;
        let charged = p.flows.budget().total();
        eprintln!("{kind}: {} bytes per connection on the heap, {} charged", live / n as u64, charged / n as u64);
        assert!(charged >= live, "{kind}: {live} bytes allocated for {n} connections, only {charged} charged");
    }
}

/// The counting allocator is global: one test at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
