//! Hostile captures, generated at run time (tests/hostile_gen), against
//! the real binary, with the bounds an operator would check: real
//! handshakes still found during a SYN flood, every eviction reported,
//! peak RSS (wstap's own, as GNU time reports it) under the memory
//! budget plus the program's own size, no control byte from the wire on
//! any output, no secret on any output, damage mid-file keeping what was
//! read.
//!
//! Sizes are scaled for CI (a debug build runs them); `HOSTILE_FULL=1`
//! runs the issue's sizes (a million SYNs), which scripts/test.sh does with
//! the release build (`WSTAP=target/release/wstap`).

mod common;
mod hostile_gen;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::Scratch;
use serde_json::Value;

fn wstap_bin() -> PathBuf {
    std::env::var_os("WSTAP").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_wstap")))
}

fn full() -> bool {
    std::env::var_os("HOSTILE_FULL").is_some()
}

struct Run {
    stdout: String,
    stderr: String,
    code: i32,
    /// Peak resident set of wstap itself, KiB.
    maxrss_kb: u64,
    /// CPU time (user + system) wstap used, seconds.
    cpu_s: f64,
}

/// Runs wstap with stdout to a file, and asks the kernel for its peak RSS.
fn run(args: &[&str]) -> Run {
    run_with_stdin(args, None)
}

/// `run`, with standard input read from `input` (`-r -`).
///
/// wstap runs under GNU time, which reports the peak RSS and CPU time of
/// its own child. Taking wait4's rusage of a child this test spawns
/// directly would not do: the kernel folds the memory image the child had
/// before exec (this test process's, which holds generated captures) into
/// the child's ru_maxrss.
fn run_with_stdin(args: &[&str], input: Option<&Path>) -> Run {
    let scratch = Scratch::new("hostile");
    let out_path = scratch.join(format!("out-{}", rand_tag()));
    let err_path = out_path.with_extension("err");
    let usage_path = out_path.with_extension("usage");
    let status = Command::new("/usr/bin/time")
        .args(["-f", "%M %U %S", "-o", usage_path.to_str().unwrap()])
        .arg(wstap_bin())
        .args(args)
        .stdin(match input {
            Some(p) => Stdio::from(std::fs::File::open(p).unwrap()),
            None => Stdio::null(),
        })
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .status()
        .expect("run /usr/bin/time (Debian package time; scripts/deps.sh installs it)");
    let usage = std::fs::read_to_string(&usage_path).unwrap();
    // GNU time prefixes "Command exited with non-zero status N" on its own line.
    let last = usage.lines().last().unwrap_or("");
    let f: Vec<&str> = last.split_whitespace().collect();
    assert_eq!(f.len(), 3, "GNU time output: {usage:?}");
    let r = Run {
        stdout: String::from_utf8_lossy(&std::fs::read(&out_path).unwrap()).into_owned(),
        stderr: std::fs::read_to_string(&err_path).unwrap(),
        code: status.code().unwrap_or(-1),
        maxrss_kb: f[0].parse().unwrap(),
        cpu_s: f[1].parse::<f64>().unwrap() + f[2].parse::<f64>().unwrap(),
    };
    for p in [&out_path, &err_path, &usage_path] {
        let _ = std::fs::remove_file(p);
    }
    r
}

fn rand_tag() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn lines(s: &str) -> Vec<Value> {
    s.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
}

fn summary(rs: &[Value]) -> &Value {
    let s = rs.last().expect("output");
    assert_eq!(s["type"], "summary", "the summary is the last line");
    s
}

/// The program's own footprint: the same binary on a small real capture.
fn baseline_kb() -> u64 {
    let cap = concat!(env!("CARGO_MANIFEST_DIR"), "/captures/nginx-healthy.pcap");
    run(&["-r", cap, "--json"]).maxrss_kb
}

/// Peak RSS must stay under the budget plus the program's own size plus
/// allocator slack (jemalloc keeps freed memory a moment, in its arenas and
/// threads' caches: src/main.rs).
fn assert_rss_within(r: &Run, memcap_mb: u64, what: &str) {
    let base = baseline_kb();
    let limit = memcap_mb * 1024 + base + 8 * 1024;
    assert!(
        r.maxrss_kb <= limit,
        "{what}: peak RSS {} KiB over budget {memcap_mb} MiB + program {base} KiB + 8 MiB",
        r.maxrss_kb
    );
    eprintln!("{what}: peak RSS {} KiB (budget {} KiB, program {base} KiB)", r.maxrss_kb, memcap_mb * 1024);
}

#[test]
fn a_syn_flood_does_not_blind_it_and_every_eviction_is_reported() {
    let scratch = Scratch::new("hostile");
    let (syns, memcap) = if full() { (1_000_000, 384) } else { (200_000, 16) };
    let f = scratch.join("flood.pcap");
    hostile_gen::flood(&f, syns, 4.0 * syns as f64 / 1e6, 3);
    let memcap_arg = format!("{memcap}M");
    let r = run(&["-r", f.to_str().unwrap(), "--json", "--memcap", &memcap_arg]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rs = lines(&r.stdout);
    let s = summary(&rs);
    // The three real sessions, through the proxy, are all there.
    assert_eq!(s["handshakes"]["upgraded"], 3, "{s}");
    assert_eq!(rs.iter().filter(|x| x["type"] == "session").count(), 3);
    for h in rs.iter().filter(|x| x["type"] == "handshake") {
        assert!(h["client"].is_object() && h["upstream"].is_object(), "both hops paired: {h}");
    }
    // The flood was evicted, oldest SYN first, and said so; nothing
    // established or upgraded was.
    let m = &s["memory"];
    assert!(m["evicted"]["half_open"].as_u64().unwrap() >= syns - m["max_connections"].as_u64().unwrap(), "{m}");
    assert_eq!(m["evicted"]["established"], 0);
    assert_eq!(m["evicted"]["upgraded"], 0);
    assert_eq!(m["dropped_connections"], 0);
    assert!(m["peak_bytes"].as_u64().unwrap() <= memcap << 20);
    assert_rss_within(&r, memcap, "SYN flood");
    // The text summary says it too.
    let t = run(&["-r", f.to_str().unwrap(), "-q", "--memcap", &memcap_arg]);
    assert!(t.stdout.contains("was full:") && t.stdout.contains("half-open"), "{}", t.stdout);
}

#[test]
fn memory_hogs_stay_under_the_budget() {
    let scratch = Scratch::new("hostile");
    // Connections that each hold a partial 60 KB request head and data
    // ahead of a hole in both directions, all open at once.
    // Full size here is a fifth of the issue's (5,000 x 480 KB, 2.4 GB:
    // the benchmark runs that one).
    let (conns, ooo, memcap) = if full() { (1000, 210_000, 64) } else { (400, 100_000, 16) };
    let f = scratch.join("hogs.pcap");
    hostile_gen::hogs(&f, conns, 60_000, ooo);
    let memcap_arg = format!("{memcap}M");
    let r = run(&["-r", f.to_str().unwrap(), "--json", "--memcap", &memcap_arg]);
    let _ = std::fs::remove_file(&f);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rs = lines(&r.stdout);
    let s = summary(&rs);
    let m = &s["memory"];
    assert!(m["shed_connections"].as_u64().unwrap() > 0, "{m}");
    assert!(m["shed_bytes"].as_u64().unwrap() > (memcap << 20) / 2, "{m}");
    assert!(m["peak_bytes"].as_u64().unwrap() <= memcap << 20, "{m}");
    assert!(s["http_anomalies"]["http-head-shed"].as_u64().unwrap() > 0);
    assert_eq!(s["flows"], conns);
    assert_rss_within(&r, memcap, "memory hogs");
}

#[test]
fn pipelined_requests_are_bounded_and_the_session_after_them_is_found() {
    let scratch = Scratch::new("hostile");
    let n = 200_000u64;
    let f = scratch.join("pipeline.pcap");
    hostile_gen::pipeline(&f, n, 100);
    let r = run(&["-r", f.to_str().unwrap(), "--json", "--memcap", "8M"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rs = lines(&r.stdout);
    let s = summary(&rs);
    let limit = 128;
    assert_eq!(s["http_anomalies"]["http-pipeline-limit"], n - limit);
    assert_eq!(s["handshakes"]["upgraded"], 1);
    assert_rss_within(&r, 8, "pipelining");
}

/// Every byte of `out` is printable text: newlines, and no other control
/// character (C0, DEL, C1) or bidirectional override, except the SGR colour
/// sequences the text sink itself writes (`ESC [ digits ; m`).
fn assert_terminal_safe(out: &str, what: &str) {
    let mut chars = out.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\n' {
            continue;
        }
        if c == '\x1b' {
            let rest = &out[i + 1..];
            let sgr = rest.strip_prefix('[').and_then(|r| {
                let end = r.find(|x: char| !(x.is_ascii_digit() || x == ';'))?;
                (r.as_bytes()[end] == b'm').then_some(end + 2)
            });
            let Some(n) = sgr else { panic!("{what}: raw ESC at {i}: {:?}", &out[i..(i + 20).min(out.len())]) };
            for _ in 0..n {
                chars.next();
            }
            continue;
        }
        assert!(!wstap::escape::is_unsafe(c), "{what}: raw {c:?} at byte {i}");
    }
}

/// The hostile inputs of a kind, as wstap would be asked to read them:
/// plaintext through the proxy, the same with its client hops TLS 1.3 and
/// decrypted with their key log, and (given) an HTTP/2 connection.
fn variants(scratch: &Path, name: &str, plain: fn(&Path) -> u64, sni: &str) -> Vec<(String, Vec<String>)> {
    let f = scratch.join(format!("{name}.pcap"));
    plain(&f);
    let t = scratch.join(format!("{name}-tls.pcap"));
    let k = scratch.join(format!("{name}-tls.keys"));
    assert!(hostile_gen::as_tls(&f, sni, &t, &k) > 0);
    let h = scratch.join(format!("{name}-h2.pcap"));
    hostile_gen::h2_escapes_secrets(&h);
    let s = |p: &Path| p.to_str().unwrap().to_string();
    vec![
        ("plaintext".into(), vec!["-r".into(), s(&f)]),
        ("TLS decrypted".into(), vec!["-r".into(), s(&t), "--keylog".into(), s(&k)]),
        ("HTTP/2".into(), vec!["-r".into(), s(&h)]),
    ]
}

#[test]
fn no_control_byte_from_the_wire_reaches_a_terminal() {
    let scratch = Scratch::new("hostile");
    for (what, input) in variants(&scratch, "escapes", hostile_gen::escapes, "evil\x1b]0;title\x07.example") {
        let input: Vec<&str> = input.iter().map(String::as_str).collect();
        let modes: [&[&str]; 6] =
            [&[], &["-v"], &["-vv"], &["--json"], &["--json", "-vv"], &["-vv", "--color", "always"]];
        for extra in modes {
            let mut args = input.clone();
            args.extend_from_slice(extra);
            let r = run(&args);
            assert_eq!(r.code, 0, "{what} {extra:?}: {}", r.stderr);
            assert_terminal_safe(&r.stdout, &format!("{what} {extra:?}"));
            assert_terminal_safe(&r.stderr, &format!("{what} {extra:?} stderr"));
            assert!(!r.stdout.is_empty());
        }
        // What was sent is still shown, escaped: the operator sees the attempt.
        let mut args = input.clone();
        args.push("-vv");
        let t = run(&args).stdout;
        assert!(t.contains("\\x1b]0;pwned\\x07"), "{what}: {t}");
        assert!(t.contains("\\x1b[2J"), "{what}");
        assert!(t.contains("\\u009b") || t.contains("\\xc2\\x9b"), "{what}");
        assert!(t.contains("\\u202e"), "{what}");
        let mut args = input.clone();
        args.push("--json");
        let j = run(&args).stdout;
        assert!(j.contains("\\u001b]0;pwned\\u0007") || j.contains("\\\\x1b]0;pwned"), "{what}: {j}");
        for (i, l) in j.lines().enumerate() {
            serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{what}: line {i} is not JSON: {e}"));
        }
        if what == "TLS decrypted" {
            let s = summary(&lines(&j)).clone();
            assert!(s["tls"]["decrypted"].as_u64().unwrap() >= 8, "the hops were decrypted: {}", s["tls"]);
            // The SNI of every decrypted hop carried ESC and BEL.
            // (the ClientHello parser makes it printable, the sinks escape it)
            assert!(j.contains("evil\\\\x1b]0;title\\\\x07.example"), "{j}");
            assert!(t.contains("evil\\x1b]0;title\\x07.example"), "{t}");
        }
        if what == "HTTP/2" {
            assert!(t.contains("stream 1") && t.contains("x-note: a\\x1b]0;pwned\\x07"), "{t}");
        }
    }
}

#[test]
fn no_secret_reaches_any_output() {
    let scratch = Scratch::new("hostile");
    for (what, input) in variants(&scratch, "secrets", hostile_gen::secrets, "app.example") {
        let input: Vec<&str> = input.iter().map(String::as_str).collect();
        let modes: [&[&str]; 5] = [&[], &["-vv"], &["--json"], &["--json", "-vv"], &["-q"]];
        for extra in modes {
            let mut args = input.clone();
            args.extend_from_slice(extra);
            let r = run(&args);
            assert_eq!(r.code, 0, "{what} {extra:?}: {}", r.stderr);
            for s in hostile_gen::SECRETS {
                assert!(!r.stdout.contains(s), "{what} {extra:?} leaked {s}:\n{}", r.stdout);
            }
        }
        let mut args = input.clone();
        args.push("-vv");
        let v = run(&args).stdout;
        if what == "HTTP/2" {
            for shown in ["x-access-key: REDACTED", "x-session-id: REDACTED", "token=REDACTED", ";auth=REDACTED"] {
                assert!(v.contains(shown), "{what}: {shown} in\n{v}");
            }
            assert!(v.contains("sec-websocket-protocol: chat, Authorization, REDACTED"), "{v}");
        } else {
            // Redacted, not dropped: the names and structure are there.
            for shown in [
                "X-Access-Key: REDACTED",
                "X-Session-Id: REDACTED",
                "tok%65n=REDACTED",
                ";auth=REDACTED",
                "REDACTED@app.example",
            ] {
                assert!(v.contains(shown), "{what}: {shown} in\n{v}");
            }
            assert!(v.contains("Sec-WebSocket-Protocol: chat, Authorization, REDACTED"), "{what}: {v}");
            assert!(v.contains("token=REDACTED expired"), "{what}: {v}");
        }
        // --no-redact shows every one of them (the HTTP/2 input has all but
        // the URL userinfo, which HTTP/2 has no place for).
        args.push("--no-redact");
        let all = run(&args).stdout;
        for s in hostile_gen::SECRETS.iter().filter(|s| what != "HTTP/2" || **s != "SEKRETUSERPW5") {
            assert!(all.contains(s), "{what}: --no-redact hides {s}");
        }
    }
}

fn assert_damage_kept(file: &Path) {
    let p = file.to_str().unwrap();
    // From the file, then the same bytes from standard input.
    for (stdin, name) in [(None, p), (Some(file), "standard input")] {
        let r = run_with_stdin(&["-r", if stdin.is_some() { "-" } else { p }, "--json"], stdin);
        assert_eq!(r.code, 2, "{name}: damage mid-file fails the run, after the summary");
        let rs = lines(&r.stdout);
        let s = summary(&rs);
        assert_eq!(s["damaged"], true);
        assert_eq!(s["truncated"], false);
        // What came before the damage: the closed session and the one still
        // open when the damage came, ended.
        let sessions: Vec<&Value> = rs.iter().filter(|x| x["type"] == "session").collect();
        assert_eq!(sessions.len(), 2, "{name}: {}", r.stdout);
        assert!(sessions.iter().any(|x| x["path"] == "/open" && x["open"] == true));
        assert!(!r.stdout.contains("/never"), "nothing after the damage");
        assert_eq!(rs.last().unwrap()["type"], "summary", "the summary is the last line");
        let err: Vec<&str> = r.stderr.lines().collect();
        assert_eq!(err.len(), 1, "{name}: one line: {}", r.stderr);
        assert!(
            err[0].starts_with(&format!("wstap: {name}: ")) && err[0].contains("analysed everything before the damage"),
            "{}",
            err[0]
        );
    }
    // Text mode: the summary says so.
    let t = run(&["-r", p]);
    assert_eq!(t.code, 2);
    assert!(t.stdout.contains("capture file is damaged"), "{}", t.stdout);
}

/// A file cut inside its last record or block is a truncation: warning,
/// exit 0, the summary says `truncated`.
fn assert_cut_is_truncation(file: &Path, cut: usize) {
    let data = std::fs::read(file).unwrap();
    let f = file.with_extension("cut");
    std::fs::write(&f, &data[..data.len() - cut]).unwrap();
    let p = f.to_str().unwrap();
    let r = run(&["-r", p, "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let s = summary(&lines(&r.stdout)).clone();
    assert_eq!((s["truncated"].clone(), s["damaged"].clone()), (Value::Bool(true), Value::Bool(false)));
    assert!(r.stderr.starts_with(&format!("wstap: warning: {p}: ")), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1);
}

#[test]
fn damage_mid_file_keeps_what_was_read_and_the_summary() {
    let scratch = Scratch::new("hostile");
    let f = scratch.join("damage.pcap");
    hostile_gen::damage_caplen(&f, 100 << 20);
    assert_damage_kept(&f);
    let g = scratch.join("damage.pcapng");
    hostile_gen::damage_pcapng(&g);
    assert_damage_kept(&g);
    // Cut at the end instead: today's truncation, in both formats.
    let ok = scratch.join("whole.pcap");
    hostile_gen::websocket_capture(&ok);
    assert_cut_is_truncation(&ok, 7);
    let okng = scratch.join("whole.pcapng");
    hostile_gen::to_pcapng(&ok, &okng);
    assert_cut_is_truncation(&okng, 7);
}

#[test]
fn fragmented_handshakes_are_reassembled_and_a_fragment_flood_is_bounded() {
    let scratch = Scratch::new("hostile");
    let f = scratch.join("fragments.pcap");
    let flood = if full() { 200_000 } else { 30_000 };
    hostile_gen::fragments(&f, flood);
    let r = run(&["-r", f.to_str().unwrap(), "--json", "--memcap", "8M"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rs = lines(&r.stdout);
    let s = summary(&rs);
    assert_eq!(s["handshakes"]["upgraded"], 2, "IPv4 and IPv6 fragmented requests: {s}");
    let paths: Vec<&str> = rs.iter().filter(|x| x["type"] == "handshake").filter_map(|x| x["path"].as_str()).collect();
    assert_eq!(paths, ["/frag1", "/frag2"]);
    let d = &s["defrag"];
    assert_eq!(d["reassembled"], 2);
    assert!(d["fragments"].as_u64().unwrap() >= flood as u64 + 4);
    assert_eq!(s["skipped"]["ip-fragment"], flood as u64, "every fragment of the flood counted as lost");
    assert_rss_within(&r, 8, "fragment flood");
}

#[test]
fn oddities_are_flagged() {
    let scratch = Scratch::new("hostile");
    let f = scratch.join("oddities.pcap");
    hostile_gen::oddities(&f);
    let r = run(&["-r", f.to_str().unwrap(), "--json", "-v"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rs = lines(&r.stdout);
    let s = summary(&rs);
    // A retransmission with other bytes: counted; the first copy kept.
    assert_eq!(s["reassembly"]["rexmit_inconsistent"], 1);
    assert!(r.stdout.contains("/rexmit") && !r.stdout.contains("/evilxx"));
    // A 64-bit frame length with its top bit set.
    assert_eq!(s["http_anomalies"]["ws-desync"], 1);
    // 600 header lines: taken, as nginx takes them.
    let many = rs.iter().find(|x| x["type"] == "handshake" && x["path"] == "/many").expect("the 600-header handshake");
    assert_eq!(many["outcome"], "upgraded");
    assert!(s["http_anomalies"].get("http-too-many-headers").is_none());
    // Session bytes are what was seen: the frame claiming 2^63 bytes
    // counts none of them.
    let badlen = rs.iter().find(|x| x["type"] == "session" && x["path"] == "/badlen").unwrap();
    assert!(badlen["bytes"]["to_client"].as_u64().unwrap() < 100, "{badlen}");
    let t = run(&["-r", f.to_str().unwrap(), "-q"]).stdout;
    assert!(t.contains("1 retransmission with different bytes"), "{t}");
}

#[test]
fn the_dashboard_shows_what_the_budget_gave_up() {
    let scratch = Scratch::new("hostile");
    use clap::Parser;
    use ratatui::{Terminal, backend::TestBackend};
    use wstap::tui::{app::App, feed, ui};
    let f = scratch.join("flood-tui.pcap");
    hostile_gen::flood(&f, 30_000, 0.5, 1);
    let args = wstap::cli::Args::parse_from(["wstap", "-r", f.to_str().unwrap(), "--tui", "--memcap", "2M"]);
    let mut p = wstap::app::build_pipeline(&args).unwrap();
    let input = wstap::config::Config::from_args(&args).unwrap().input;
    let (mut src, source) = feed::open_source(&input, None).unwrap();
    let (_ctl, ctl_rx) = std::sync::mpsc::channel();
    let mut app = App::new(source);
    feed::run(&mut p, src.as_mut(), &feed::FeedOptions::default(), &ctl_rx, &mut |m| {
        app.on_msg(m);
        true
    });
    let evicted = app.snap.summary.memory.evicted.half_open;
    assert!(evicted > 20_000, "{evicted}");
    let mut t = Terminal::new(TestBackend::new(100, 30)).unwrap();
    t.draw(|fr| ui::draw(fr, &app)).unwrap();
    let buf = t.backend().buffer();
    let screen: String = (0..buf.area.height)
        .map(|y| (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect::<String>() + "\n")
        .collect();
    assert!(screen.contains("Drops       evicted 29."), "the Overview shows the evictions:\n{screen}");
}

#[test]
fn tls_and_h2_floods_stay_under_the_budget() {
    let scratch = Scratch::new("hostile");
    // TLS connections whose keys never come (read from a file, their
    // records are not held: all keys are known before the first packet;
    // the held-records path is the memory property test's, under a
    // followed key log), then HTTP/2 connections with 40 streams each and
    // header blocks up to 32 KB; two real sessions after them.
    let (tls, h2, memcap) = if full() { (3000, 2000, 16) } else { (1500, 600, 8) };
    let f = scratch.join("tls-h2.pcap");
    hostile_gen::tls_h2_flood(&f, tls, h2);
    let memcap_arg = format!("{memcap}M");
    let r = run(&["-r", f.to_str().unwrap(), "--json", "--memcap", &memcap_arg]);
    let _ = std::fs::remove_file(&f);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rs = lines(&r.stdout);
    let s = summary(&rs);
    assert_eq!(s["tls"]["connections"], tls as u64, "{}", s["tls"]);
    assert!(s["h2"]["streams"].as_u64().unwrap() >= h2 as u64 * 30, "{}", s["h2"]);
    assert!(s["h2"]["websocket_accepted"].as_u64().unwrap() > 0, "{}", s["h2"]);
    let m = &s["memory"];
    assert!(m["peak_bytes"].as_u64().unwrap() <= memcap << 20, "{m}");
    assert!(m["evicted"]["established"].as_u64().unwrap() > 0, "the budget was full: {m}");
    // The real sessions after the floods are found.
    let paths: Vec<&str> = rs.iter().filter(|x| x["type"] == "session").filter_map(|x| x["path"].as_str()).collect();
    assert!(paths.contains(&"/after1") && paths.contains(&"/after2"), "{paths:?}");
    assert_rss_within(&r, memcap, "TLS and HTTP/2 floods");
}

/// Runs `make(path, n)` captures of two sizes through wstap; returns
/// (CPU time ratio, peak RSS in KiB of the small run, of the large run, the
/// large run), both with two workers. CPU time, not wall time: a busy machine stretches the wall
/// clock of both runs unevenly, but not the work done.
fn scaling(name: &str, small: u32, make: fn(&Path, u32)) -> (f64, u64, u64, Run) {
    let scratch = Scratch::new("hostile");
    let files: Vec<_> = [small, small * 4]
        .iter()
        .map(|&n| {
            let f = scratch.join(format!("{name}-{n}.pcap"));
            make(&f, n);
            f
        })
        .collect();
    // The same number of threads at both sizes (the default depends on the
    // file's size): two workers, whose memory must stay flat too.
    let measure = |f: &Path| {
        let r = run(&["-r", f.to_str().unwrap(), "--json", "--memcap", "64M", "--threads", "2"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        r
    };
    let (mut s, mut l) = (measure(&files[0]), measure(&files[1]));
    let (mut s_rss, mut l_rss) = (s.maxrss_kb, l.maxrss_kb);
    // A linear cost takes about 4x, a quadratic one 16x. On a loaded
    // machine (this file's other tests run beside it) one run can take
    // twice its CPU time; near the bound, both sizes are measured once
    // more and each keeps its faster run: noise only ever slows a run.
    // Peak RSS with two workers varies by several MB from run to run
    // (which thread's malloc arena frees what, as threads are scheduled:
    // 88 to 102 MB seen for the 80,000-reset file): near its bound,
    // each size keeps its lower peak of two runs (a leak shows in both).
    if l.cpu_s / s.cpu_s.max(0.01) >= SCALING_RECHECK || l_rss >= s_rss + RSS_RECHECK_KB {
        let (s2, l2) = (measure(&files[0]), measure(&files[1]));
        (s_rss, l_rss) = (s_rss.min(s2.maxrss_kb), l_rss.min(l2.maxrss_kb));
        if s2.cpu_s < s.cpu_s {
            s = s2;
        }
        if l2.cpu_s < l.cpu_s {
            l = l2;
        }
    }
    for f in &files {
        let _ = std::fs::remove_file(f);
    }
    let ratio = l.cpu_s / s.cpu_s.max(0.01);
    eprintln!(
        "{name}: {small} -> {} in {:.2} s -> {:.2} s of CPU ({ratio:.1}x), peak RSS {} -> {} KiB",
        small * 4,
        s.cpu_s,
        l.cpu_s,
        s_rss,
        l_rss
    );
    (ratio, s_rss, l_rss, l)
}

/// [`scaling`] measures again at this ratio (the tests' bound is 7).
const SCALING_RECHECK: f64 = 6.0;
/// ... or when the larger run's peak RSS is this much above the smaller's
/// (the tests' bound is 16 MB).
const RSS_RECHECK_KB: u64 = 10 * 1024;

#[test]
fn detectors_stay_flat_and_linear_on_reset_websockets_and_socketio_floods() {
    // Socket.IO sessions: more than the 10,000 followed at once at both
    // sizes (under it, memory grows with them up to that bound).
    let small = 12_000;
    let (ratio, s, l, big) = scaling("socketio", small, |p, n| {
        hostile_gen::socketio_sessions(p, n, 2_000);
    });
    assert!(ratio < 7.0, "4x the Socket.IO sessions took {ratio:.1}x the time (linear is 4x)");
    assert!(l < s + 16 * 1024, "memory grows: {s} -> {l} KiB");
    {
        let l = big;
        let sum = summary(&lines(&l.stdout)).clone();
        assert!(sum["memory"]["socketio_sessions_forgotten"].as_u64().unwrap() > 0, "{}", sum["memory"]);
        assert!(sum["findings"]["socketio-no-upgrade"].as_u64().unwrap() > 0, "{}", sum["findings"]);
    }
    // Reset WebSockets, none explained by a boundary, spaced so that both
    // sizes outlast the 60 s judgement window (the smaller by a few
    // seconds: 8,000 x 8 ms = 64 s; HOSTILE_FULL 20,000 x 4 ms = 80 s): the
    // verdicts waiting at once are then the same at both sizes (7,500;
    // 15,000), and memory must not grow with the capture. (At 2 ms the
    // smaller run ended inside the window, its whole 8,000 waiting against
    // the larger's 30,000, and the difference sat at the 16 MB allowance.)
    let small = if full() { 20_000 } else { 8_000 };
    let (ratio, s, l, big) = scaling("resets", small, |p, n| {
        hostile_gen::reset_websockets(p, n, if full() { 4_000 } else { 8_000 });
    });
    assert!(ratio < 7.0, "4x the resets took {ratio:.1}x the time (linear is 4x)");
    assert!(l < s + 16 * 1024, "memory grows with the resets: {s} -> {l} KiB");
    let l = big;
    let rs = lines(&l.stdout);
    let sum = summary(&rs);
    assert_eq!(
        sum["handshakes"]["upgraded"],
        small as u64 * 4,
        "every session, both hops paired: {}",
        sum["handshakes"]
    );
    assert!(sum["memory"]["closes_judged_early"].as_u64().unwrap() > 0, "{}", sum["memory"]);
    let judged: u64 = ["abnormal-close", "mass-close", "idle-timeout-close", "upstream-reset"]
        .iter()
        .filter_map(|k| sum["findings"][k].as_u64())
        .sum();
    assert!(judged > 0, "the closes are judged: {}", sum["findings"]);
}

/// The allocator's options (src/main.rs) are what keeps the peaks above
/// within their slack: jemalloc reads them from a symbol whose name depends
/// on the crate's build (its `_rjem_` prefix), and a wrong name would be
/// ignored without a word. jemalloc prints the options in force on request.
#[test]
fn the_allocators_options_are_in_force() {
    let cap = concat!(env!("CARGO_MANIFEST_DIR"), "/captures/nginx-healthy.pcap");
    let out = Command::new(wstap_bin())
        .args(["-r", cap, "--json"])
        .env("_RJEM_MALLOC_CONF", "stats_print:true")
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    let stats = String::from_utf8_lossy(&out.stderr);
    for opt in ["opt.dirty_decay_ms: 500 ", "opt.oversize_threshold: 131072", "opt.tcache_max: 8192"] {
        assert!(stats.lines().any(|l| l.trim_start().starts_with(opt)), "{opt} not in force:\n{stats}");
    }
}
