//! `--threads N`: the output does not depend on N. Every bundled capture,
//! every peer capture and generated many-connection captures give the same
//! records and the same summary with 1, 2 and 4 workers, in JSON and in
//! verbose JSON (every frame and message, in order). The one summary field
//! allowed to differ is `memory.peak_bytes`: each worker's table has its
//! own share of the budget, and the peak reported with N workers is the
//! sum of their peaks (docs/json.md).

mod common;
mod hostile_gen;

use std::path::{Path, PathBuf};

use common::{Scratch, capture, peak_zeroed, root, wstap};
use wstap::capture::file::FileSource;
use wstap::capture::{Next, PacketSource};

/// stdout of `wstap -r FILE ARGS --threads N`, the summary's peak removed.
fn output(file: &Path, args: &[&str], n: usize) -> String {
    let f = file.to_str().unwrap();
    let t = n.to_string();
    let mut a = vec!["-r", f, "--threads", &t];
    a.extend_from_slice(args);
    let out = wstap(&a);
    assert!(
        out.status.success() || out.status.code() == Some(1),
        "wstap {a:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    peak_zeroed(&out.stdout)
}

fn assert_same_for_every_n(file: &Path, args: &[&str]) {
    let one = output(file, args, 1);
    for n in [2, 4] {
        let other = output(file, args, n);
        if other != one {
            let (a, b): (Vec<&str>, Vec<&str>) = (one.lines().collect(), other.lines().collect());
            let i = a.iter().zip(&b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
            panic!(
                "{} {args:?}: --threads {n} differs from --threads 1 at line {} ({} against {} lines)\n1: {}\n{n}: {}",
                file.display(),
                i + 1,
                a.len(),
                b.len(),
                a.get(i).unwrap_or(&""),
                b.get(i).unwrap_or(&"")
            );
        }
    }
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut v: Vec<PathBuf> = rd
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() || matches!(p.extension().and_then(|x| x.to_str()), Some("pcap" | "pcapng")))
        .collect();
    v.sort();
    v.into_iter().flat_map(|p| if p.is_dir() { files_in(&p) } else { vec![p] }).collect()
}

#[test]
fn every_bundled_capture_gives_the_same_output_with_1_2_and_4_threads() {
    let files = files_in(&root().join("captures"));
    assert!(files.len() >= 50, "captures/ holds the recorded captures");
    for f in &files {
        let keys = f.with_extension("keys");
        let mut args = vec!["--json"];
        if keys.exists() {
            args.extend_from_slice(&["--keylog", keys.to_str().unwrap()]);
        }
        assert_same_for_every_n(f, &args);
        args.push("-v");
        assert_same_for_every_n(f, &args);
    }
}

#[test]
fn every_peer_capture_gives_the_same_output_with_1_2_and_4_threads() {
    let mut files = files_in(&root().join("tests/data/peers"));
    // The wider corpus on the development machine, when it is there.
    files.extend(files_in(Path::new("/work/shared/peers")));
    assert!(files.len() >= 20);
    for f in &files {
        assert_same_for_every_n(f, &["--json", "-v"]);
    }
}

/// A capture built from a recorded template: `copies` copies, each with
/// its own IPv4 addresses, one starting every `spacing_us`, merged in time
/// order (the benchmark's generator, small). Many connections open at
/// once, so that every worker has many, expiry sweeps close connections
/// on several workers in the same instant, and timestamps repeat.
fn multiplied(template: &str, copies: u32, spacing_us: i64, out: &Path) {
    multiplied_parts(template, &[(copies, spacing_us, 0, usize::MAX)], out)
}

/// `multiplied` in parts: `(copies, spacing, start, packets kept of each
/// copy)`, each part's copies with addresses of their own.
fn multiplied_parts(template: &str, parts: &[(u32, i64, i64, usize)], out: &Path) {
    let path = capture(template);
    let mut src = FileSource::open(path.to_str().unwrap(), None).unwrap();
    let mut tpl: Vec<(i64, Vec<u8>)> = Vec::new();
    while let Next::Packet(pk) = src.next_packet().unwrap() {
        tpl.push((pk.ts.0, pk.data.to_vec()));
    }
    let t0 = tpl[0].0;
    let mut w = Vec::new();
    for v in [0xa1b2c3d4u32, 0x0004_0002, 0, 0, 262144, 1] {
        w.extend_from_slice(&v.to_le_bytes());
    }
    let mut heap = std::collections::BinaryHeap::new();
    // Copy k: (start, spacing, packets kept).
    let mut copy = Vec::new();
    for &(copies, spacing, start, keep) in parts {
        for j in 0..copies {
            let k = copy.len() as u32;
            copy.push((start + j as i64 * spacing, keep.min(tpl.len())));
            heap.push(std::cmp::Reverse((start + j as i64 * spacing, k, 0usize)));
        }
    }
    while let Some(std::cmp::Reverse((t, k, i))) = heap.pop() {
        let mut buf = tpl[i].1.clone();
        common::readdress_v4(&mut buf, [10u8, 1 + (k >> 16) as u8, (k >> 8) as u8, k as u8]);
        // Times rounded to the millisecond: equal timestamps across copies.
        let ts = 1_800_000_000_000_000 + (t / 1000) * 1000;
        w.extend_from_slice(&((ts / 1_000_000) as u32).to_le_bytes());
        w.extend_from_slice(&((ts % 1_000_000) as u32).to_le_bytes());
        w.extend_from_slice(&(buf.len() as u32).to_le_bytes());
        w.extend_from_slice(&(buf.len() as u32).to_le_bytes());
        w.extend_from_slice(&buf);
        let (start, keep) = copy[k as usize];
        if i + 1 < keep {
            heap.push(std::cmp::Reverse((start + tpl[i + 1].0 - t0, k, i + 1)));
        }
    }
    std::fs::write(out, w).unwrap();
}

#[test]
fn generated_benchmark_shapes_give_the_same_output_with_1_2_and_4_threads() {
    let dir = Scratch::new("threads");
    // Both benchmark shapes, ~100 copies at once; the short-session
    // shape; the idle and mass-close captures (closes judged from many
    // sessions, expiry sweeps) repeated.
    for (template, copies, spacing) in [
        ("nginx-bench", 40, 20_000),
        ("nginx-bench-uncompressed", 30, 20_000),
        ("nginx-healthy", 300, 30_000),
        ("nginx-mass-close", 40, 500_000),
        ("nginx-idle-60", 20, 3_000_000),
    ] {
        let f = dir.join(format!("{template}.x{copies}.pcap"));
        multiplied(template, copies, spacing, &f);
        assert_same_for_every_n(&f, &["--json"]);
    }
    // 3,000 SYNs never answered over 80 s, three real sessions among them:
    // unanswered connections end by the 30 s timeout in the same expiry
    // sweeps on every worker.
    let f = dir.join("syns.pcap");
    hostile_gen::flood(&f, 3000, 80.0, 3);
    assert_same_for_every_n(&f, &["--json", "-v"]);
    // Sessions cut mid-way, all at the same instants (copies on top of
    // each other, on every worker): once at the end of the capture (every
    // one ends at the same time), once by the 2 h idle timeout (ended in
    // the same expiry sweep, at the same time), with a later copy to move
    // packet time past it.
    let f = dir.join("cut.pcap");
    multiplied_parts("nginx-bench", &[(24, 0, 0, 1200)], &f);
    assert_same_for_every_n(&f, &["--json", "-v"]);
    let f = dir.join("idle.pcap");
    multiplied_parts("nginx-bench", &[(24, 0, 0, 1200), (1, 0, 3 * 3600 * 1_000_000, usize::MAX)], &f);
    assert_same_for_every_n(&f, &["--json", "-v"]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_bad_thread_count_is_one_line_and_exit_2() {
    for n in ["0", "65", "x"] {
        let out = wstap(&["-r", capture("nginx-healthy").to_str().unwrap(), "--threads", n]);
        assert_eq!(out.status.code(), Some(2), "--threads {n}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--threads"), "{err}");
        assert!(out.stdout.is_empty());
    }
}

/// A capture file replayed as live capture delivers it: the packets, an
/// idle tick every 200 ms of packet time where the link is quiet, and a
/// lull (nothing more queued) at each tick and every 64 packets.
struct AsLive {
    file: FileSource,
    /// The packet read ahead while ticks are due before it.
    ahead: Option<(wstap::time::Ts, Vec<u8>, u32)>,
    last: Option<wstap::time::Ts>,
    /// The packet handed out.
    cur: Vec<u8>,
    lull: bool,
    n: u64,
}

impl PacketSource for AsLive {
    fn linktype(&self) -> wstap::decode::LinkType {
        self.file.linktype()
    }
    fn next_packet(&mut self) -> wstap::error::Result<Next<'_>> {
        if self.ahead.is_none() {
            match self.file.next_packet()? {
                Next::Packet(p) => self.ahead = Some((p.ts, p.data.to_vec(), p.orig_len)),
                other => {
                    return Ok(match other {
                        Next::End => Next::End,
                        _ => panic!("the capture reads whole"),
                    });
                }
            }
        }
        let (ts, _, _) = self.ahead.as_ref().unwrap();
        if let Some(last) = self.last
            && ts.0 - last.0 > 200_000
        {
            let t = wstap::time::Ts(last.0 + 200_000);
            self.last = Some(t);
            self.lull = true;
            return Ok(Next::Idle(t));
        }
        let (ts, data, orig_len) = self.ahead.take().unwrap();
        self.last = Some(ts);
        self.n += 1;
        self.lull = self.n.is_multiple_of(64);
        self.cur = data;
        Ok(Next::Packet(wstap::capture::RawPacket { ts, data: &self.cur, orig_len }))
    }
    fn lull(&self) -> bool {
        self.lull
    }
}

/// Live capture with workers: the records (and the idle warnings made
/// from the open sessions' activity at each tick) are the same as with one
/// thread, for captures whose sessions sit idle while open.
#[test]
fn live_capture_gives_the_same_records_and_idle_warnings_with_2_threads() {
    let mut warned = 0;
    for name in ["nginx-idle-short", "haproxy-idle", "haproxy-h2-idle"] {
        let file = capture(name);
        let keys = file.with_extension("keys");
        let run = |n: usize| -> Vec<String> {
            let args = wstap::cli::Args {
                interface: Some("lo".into()),
                timeouts: vec![2.0],
                keylog: if keys.exists() { vec![keys.to_str().unwrap().into()] } else { vec![] },
                user: Some("root".into()),
                ..Default::default()
            };
            let mut p = wstap::app::build_pipeline(&args).unwrap();
            p.threads = n;
            // Live, a key log is followed by a thread of its own: wait for
            // it to have been read, as a live capture's keys come first.
            for _ in 0..500 {
                if !keys.exists() || p.keys().stats().secrets > 0 {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            let f = FileSource::open(file.to_str().unwrap(), None).unwrap();
            let mut src = AsLive { file: f, ahead: None, last: None, cur: Vec::new(), lull: false, n: 0 };
            let mut sink = wstap::sink::Collect::default();
            p.run(&mut src, &mut sink).unwrap();
            sink.0
                .iter()
                .map(|r| {
                    let mut v = serde_json::to_value(r).unwrap();
                    if v["type"] == "summary" {
                        v["memory"]["peak_bytes"] = 0.into();
                        v["memory"]["max_connections"] = 0.into();
                    }
                    v.to_string()
                })
                .collect()
        };
        let one = run(1);
        let two = run(2);
        if let Some(i) = (0..one.len().max(two.len())).find(|&i| one.get(i) != two.get(i)) {
            panic!(
                "{name}: --threads 2 differs from one thread, live, at record {i} ({} against {} records)\n1: {}\n2: {}",
                one.len(),
                two.len(),
                one.get(i).map_or("", |s| s),
                two.get(i).map_or("", |s| s)
            );
        }
        warned += one.iter().filter(|r| r.contains("\"kind\":\"idle-timeout-imminent\"")).count();
    }
    assert!(warned >= 3, "open sessions idle past 80% of 2 s are warned about ({warned})");
}
