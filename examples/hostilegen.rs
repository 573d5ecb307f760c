//! Writes a hostile capture (tests/hostile_gen/mod.rs), for the benchmark
//! and for trying wstap by hand:
//!
//!   cargo run --release --example hostilegen -- flood OUT.pcap [SYNS] [SECONDS] [SESSIONS]
//!   cargo run --release --example hostilegen -- hogs OUT.pcap [CONNS] [HEAD_BYTES] [OOO_BYTES]
//!   cargo run --release --example hostilegen -- pipeline OUT.pcap [REQUESTS] [REQUEST_BYTES]
//!   cargo run --release --example hostilegen -- escapes|secrets|oddities|damage|damage-pcapng OUT
//!   cargo run --release --example hostilegen -- fragments OUT.pcap [FLOOD]

#[path = "../tests/hostile_gen/mod.rs"]
mod hostile_gen;

use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(kind), Some(out)) = (args.first(), args.get(1)) else {
        eprintln!("usage: hostilegen KIND OUT [ARGS...] (see the source)");
        std::process::exit(2);
    };
    let n = |i: usize, d: u64| args.get(i).map(|s| s.parse::<u64>().expect("a number")).unwrap_or(d);
    let f = |i: usize, d: f64| args.get(i).map(|s| s.parse::<f64>().expect("a number")).unwrap_or(d);
    let out = Path::new(out);
    let packets = match kind.as_str() {
        "flood" => hostile_gen::flood(out, n(2, 1_000_000), f(3, 4.0), n(4, 3) as u32),
        "hogs" => hostile_gen::hogs(out, n(2, 5000) as u32, n(3, 60_000) as usize, n(4, 210_000) as usize),
        "pipeline" => hostile_gen::pipeline(out, n(2, 200_000), n(3, 100) as usize),
        "escapes" => hostile_gen::escapes(out),
        "secrets" => hostile_gen::secrets(out),
        "oddities" => hostile_gen::oddities(out),
        "fragments" => hostile_gen::fragments(out, n(2, 10_000) as u32),
        "damage" => hostile_gen::damage_caplen(out, 100 << 20),
        "tls-h2" => hostile_gen::tls_h2_flood(out, n(2, 3000) as u32, n(3, 2000) as u32),
        "resets" => hostile_gen::reset_websockets(out, n(2, 20_000) as u32, n(3, 2000)),
        "socketio" => hostile_gen::socketio_sessions(out, n(2, 20_000) as u32, n(3, 200)),
        "h2-escapes-secrets" => hostile_gen::h2_escapes_secrets(out),
        "damage-pcapng" => {
            hostile_gen::damage_pcapng(out);
            0
        }
        other => {
            eprintln!("hostilegen: unknown kind {other}");
            std::process::exit(2);
        }
    };
    eprintln!("hostilegen: {} packets in {}", packets, out.display());
}
