//! Builds a large two-hop capture for the benchmark by multiplying a
//! recorded real capture: copy k of the template gets its own addresses
//! (every IPv4 address of the template is mapped to 10.x.y.z derived from
//! k, so 4-tuples never collide, and every Sec-WebSocket-Key/Accept is
//! replaced by one of its own) and is shifted in time, so that about
//! CONCURRENT_CONNS TCP connections are open at once. Copies are merged in
//! timestamp order.
//!
//!   cargo run --release --example benchgen -- TEMPLATE.pcap OUT.pcap SIZE_MB [CONCURRENT_CONNS]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{BufWriter, Write};

struct Pkt {
    t_us: i64,
    data: Vec<u8>,
    orig_len: u32,
    /// Offset of the IPv4 header.
    ip_off: Option<usize>,
    /// Sec-WebSocket-Key / -Accept values in the payload: (offset, original key).
    keys: Vec<(usize, String)>,
    accepts: Vec<(usize, String)>,
}

#[path = "../tests/wskeys/mod.rs"]
mod wskeys;
use wskeys::{accept, copy_key};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 4 {
        eprintln!("usage: benchgen TEMPLATE.pcap OUT.pcap SIZE_MB [CONCURRENT_CONNS]");
        std::process::exit(2);
    }
    let size = a[3].parse::<u64>().expect("SIZE_MB") * 1_000_000;
    let conns_wanted = a.get(4).map(|c| c.parse::<i64>().expect("CONCURRENT_CONNS")).unwrap_or(3000);
    let mut cap = pcap::Capture::from_file(&a[1]).expect("template");
    let linktype = cap.get_datalink().0;
    assert_eq!(linktype, 1, "template must be Ethernet");
    let mut tpl = Vec::new();
    let mut t0 = None;
    while let Ok(p) = cap.next_packet() {
        let t = p.header.ts.tv_sec * 1_000_000 + p.header.ts.tv_usec;
        let t0 = *t0.get_or_insert(t);
        let d = p.data.to_vec();
        let ip_off = (d.len() >= 34 && d[12] == 0x08 && d[13] == 0x00).then_some(14);
        let keys = wskeys::keys(&d);
        let accepts = wskeys::accepts(&d);
        tpl.push(Pkt { t_us: t - t0, data: d, orig_len: p.header.len, ip_off, keys, accepts });
    }
    let key_of_accept = wskeys::key_of_accept(tpl.iter().flat_map(|p| &p.keys).map(|(_, k)| k));
    let dur = tpl.last().map_or(1, |p| p.t_us).max(1);
    // Connections of the template (SYNs) and how many are open on average.
    let syns = tpl
        .iter()
        .filter(|p| p.ip_off.is_some_and(|o| p.data.len() > o + 33 && p.data[o + 33] & 0x12 == 0x02))
        .count()
        .max(1) as i64;
    let conc = (conns_wanted / syns).max(1);
    let tpl_bytes: u64 = tpl.iter().map(|p| 16 + p.data.len() as u64).sum();
    let copies = (size / tpl_bytes).max(1) as i64;
    let spacing = (dur / conc).max(1);
    eprintln!(
        "benchgen: {} packets ({syns} connections) x {copies} copies, one every {spacing} us (~{} copies, ~{} connections open at once)",
        tpl.len(),
        dur / spacing,
        dur / spacing * syns
    );

    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&a[2]).expect("output"));
    let mut hdr = Vec::new();
    hdr.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    hdr.extend_from_slice(&2u16.to_le_bytes());
    hdr.extend_from_slice(&4u16.to_le_bytes());
    hdr.extend_from_slice(&[0; 8]);
    hdr.extend_from_slice(&262144u32.to_le_bytes());
    hdr.extend_from_slice(&1u32.to_le_bytes());
    out.write_all(&hdr).unwrap();

    let base: i64 = 1_800_000_000 * 1_000_000;
    // Heap of (next time, copy, index into template).
    let mut heap: BinaryHeap<Reverse<(i64, i64, usize)>> = BinaryHeap::new();
    let mut next_copy = 0i64;
    let mut buf = Vec::with_capacity(2048);
    let mut written = 0u64;
    loop {
        // Start every copy whose first packet is due before the heap's head.
        let head = heap.peek().map(|r| r.0.0);
        if next_copy < copies && head.is_none_or(|h| next_copy * spacing <= h) {
            heap.push(Reverse((next_copy * spacing + tpl[0].t_us, next_copy, 0)));
            next_copy += 1;
            continue;
        }
        let Some(Reverse((t, k, i))) = heap.pop() else { break };
        let p = &tpl[i];
        buf.clear();
        buf.extend_from_slice(&p.data);
        for (at, key) in &p.keys {
            buf[*at..*at + 24].copy_from_slice(copy_key(key, k).as_bytes());
        }
        for (at, acc) in &p.accepts {
            if let Some(key) = key_of_accept.get(acc) {
                buf[*at..*at + 28].copy_from_slice(accept(&copy_key(key, k)).as_bytes());
            }
        }
        if let Some(off) = p.ip_off {
            let addr = [10u8, (k >> 16) as u8, (k >> 8) as u8, k as u8];
            for at in [off + 12, off + 16] {
                buf[at..at + 4].copy_from_slice(&addr);
            }
            // IPv4 header checksum.
            let ihl = ((buf[off] & 0xf) as usize) * 4;
            buf[off + 10] = 0;
            buf[off + 11] = 0;
            let mut sum = 0u32;
            for c in buf[off..off + ihl].chunks(2) {
                sum += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32;
            }
            while sum > 0xffff {
                sum = (sum & 0xffff) + (sum >> 16);
            }
            buf[off + 10..off + 12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        }
        let ts = base + t;
        out.write_all(&((ts / 1_000_000) as u32).to_le_bytes()).unwrap();
        out.write_all(&((ts % 1_000_000) as u32).to_le_bytes()).unwrap();
        out.write_all(&(buf.len() as u32).to_le_bytes()).unwrap();
        out.write_all(&p.orig_len.to_le_bytes()).unwrap();
        out.write_all(&buf).unwrap();
        written += 16 + buf.len() as u64;
        if i + 1 < tpl.len() {
            heap.push(Reverse((k * spacing + tpl[i + 1].t_us, k, i + 1)));
        }
    }
    out.flush().unwrap();
    eprintln!("benchgen: wrote {:.1} MB", written as f64 / 1e6);
}
