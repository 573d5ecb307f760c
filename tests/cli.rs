//! The command line as a user meets it: errors are one line and exit 2,
//! bad input is counted not fatal, truncated files yield what they hold,
//! filters, stdin, -c, --fail-on, broken pipes.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;

fn one_line_error(out: &std::process::Output) -> String {
    assert_eq!(out.status.code(), Some(2), "exit status 2");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("wstap: "), "{err:?}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn missing_file() {
    let err = one_line_error(&wstap(&["-r", "/no/such/capture.pcap"]));
    assert!(err.contains("/no/such/capture.pcap: No such file or directory"), "{err}");
}

#[test]
fn not_a_capture() {
    let scratch = Scratch::new("cli");
    let p = root().join("Cargo.toml");
    let err = one_line_error(&wstap(&["-r", p.to_str().unwrap()]));
    assert!(err.contains("not a pcap or pcapng capture"), "{err}");
    let empty = scratch.join("empty.pcap");
    std::fs::write(&empty, b"").unwrap();
    one_line_error(&wstap(&["-r", empty.to_str().unwrap()]));
    let dir = std::env::temp_dir();
    let err = one_line_error(&wstap(&["-r", dir.to_str().unwrap()]));
    assert!(err.contains("is a directory"), "{err}");
}

#[test]
fn bad_filter_and_bad_arguments() {
    let c = capture("nginx-healthy");
    let err = one_line_error(&wstap(&["-r", c.to_str().unwrap(), "tcp", "port", "banana"]));
    assert!(err.contains("bad filter expression 'tcp port banana'"), "{err}");
    let err = one_line_error(&wstap(&["-r", c.to_str().unwrap(), "--upstream", "nope"]));
    assert!(err.contains("invalid --upstream"), "{err}");
    let err = one_line_error(&wstap(&[]));
    assert!(err.contains("no input"), "{err}");
    // clap's own usage errors also exit 2
    assert_eq!(wstap(&["--no-such-flag"]).status.code(), Some(2));
}

#[test]
fn bpf_filter_selects_one_hop() {
    let c = capture("nginx-healthy");
    let rs = records_of(&c, &["tcp", "port", "18081"]);
    let hs = of_type(&rs, "handshake");
    assert_eq!(hs.len(), 3);
    assert!(hs.iter().all(|h| h["upstream"].is_null() && h["client"]["status"] == 101));
}

#[test]
fn stdin_and_count() {
    let c = capture("nginx-healthy");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wstap"))
        .args(["-r", "-", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&std::fs::read(&c).unwrap()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let rs = parse_lines(&out.stdout);
    assert_eq!(of_type(&rs, "handshake").len(), 3);
    let rs = records_of(&c, &["-c", "10"]);
    assert_eq!(summary(&rs)["packets"], 10);
}

#[test]
fn truncated_capture_yields_everything_up_to_the_cut() {
    let scratch = Scratch::new("cli");
    let c = capture("nginx-healthy");
    let bytes = std::fs::read(&c).unwrap();
    let whole = records_of(&c, &[]);
    let total = summary(&whole)["packets"].as_u64().unwrap();
    // Cut in the middle of a packet record, well after the first handshake.
    let cut = scratch.join("cut.pcap");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3 + 7]).unwrap();
    let out = wstap(&["-r", cut.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("truncated") && err.contains("analysed everything up to the cut"), "{err}");
    let rs = parse_lines(&out.stdout);
    let s = summary(&rs);
    assert_eq!(s["truncated"], true);
    let n = s["packets"].as_u64().unwrap();
    assert!(n > 0 && n < total, "{n} of {total}");
    assert!(!of_type(&rs, "handshake").is_empty(), "handshakes before the cut are reported");
    // Cut inside the file header: not a capture at all.
    std::fs::write(&cut, &bytes[..10]).unwrap();
    one_line_error(&wstap(&["-r", cut.to_str().unwrap()]));
}

/// Writes a pcap (Ethernet) holding `packets`.
fn write_pcap(path: &std::path::Path, packets: &[Vec<u8>]) {
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&0i32.to_le_bytes());
    f.extend_from_slice(&0u32.to_le_bytes());
    f.extend_from_slice(&65535u32.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes());
    for (i, p) in packets.iter().enumerate() {
        f.extend_from_slice(&(1_700_000_000u32 + i as u32).to_le_bytes());
        f.extend_from_slice(&0u32.to_le_bytes());
        f.extend_from_slice(&(p.len() as u32).to_le_bytes());
        f.extend_from_slice(&(p.len() as u32).to_le_bytes());
        f.extend_from_slice(p);
    }
    std::fs::write(path, f).unwrap();
}

#[test]
fn malformed_packets_are_counted_and_skipped() {
    let scratch = Scratch::new("cli");
    let mut pkts = Vec::new();
    let mut x = 0x9e3779b97f4a7c15u64;
    for n in 0..300usize {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = n % 90;
        let mut p: Vec<u8> = (0..len).map(|i| (x >> (i % 56)) as u8).collect();
        if n % 3 == 0 && p.len() > 14 {
            p[12] = 0x08; // claims IPv4
            p[13] = 0x00;
            p[14] = 0x45;
        }
        pkts.push(p);
    }
    let p = scratch.join("garbage.pcap");
    write_pcap(&p, &pkts);
    let rs = records_of(&p, &[]);
    let s = summary(&rs);
    assert_eq!(s["packets"], 300);
    let errors: u64 = s["decode_errors"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert!(errors > 50, "{s}");
}

#[test]
fn fail_on_sets_the_exit_status() {
    let bad = capture("nginx-default");
    let good = capture("nginx-healthy");
    let rejected = capture("nginx-origin-403");
    let code =
        |c: &std::path::Path, lvl: &str| wstap(&["-r", c.to_str().unwrap(), "-q", "--fail-on", lvl]).status.code();
    assert_eq!(code(&bad, "error"), Some(1));
    assert_eq!(code(&good, "error"), Some(0));
    assert_eq!(code(&good, "warning"), Some(0));
    assert_eq!(code(&rejected, "error"), Some(0), "a backend's 403 is a warning");
    assert_eq!(code(&rejected, "warning"), Some(1));
}

#[test]
fn quiet_prints_the_summary_only() {
    let out = wstap(&["-r", capture("nginx-default").to_str().unwrap(), "-q"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("handshake #"), "{text}");
    assert!(text.contains("2 WebSocket handshakes: 0 upgraded, 2 rejected"), "{text}");
    assert!(text.contains("upgrade-stripped"), "grouped findings are part of the summary: {text}");
}

#[test]
fn verbose_prints_messages_and_frames() {
    let out = wstap(&["-r", capture("nginx-healthy").to_str().unwrap(), "-v"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("HTTP GET /ws HTTP/1.1"), "{text}");
    assert!(text.contains("HTTP HTTP/1.1 101 Switching Protocols"), "{text}");
    assert!(text.contains(": WS text compressed len 11"), "{text}");
    assert!(text.contains(": WS close len 5 code 1000 \"bye\""), "{text}");
}

#[test]
fn broken_pipe_is_not_an_error() {
    broken_pipe_with(&[]);
}

/// With workers, the records are written by a thread of their own: a
/// reader that goes away still ends the run cleanly, and an output that
/// cannot be written (a full disk) is the same one line and exit status
/// as with one thread, not a thread's failure.
#[test]
fn with_workers_a_broken_pipe_or_a_full_disk_ends_as_with_one_thread() {
    broken_pipe_with(&["--threads", "2"]);
    let c = capture("nginx-healthy");
    let mut said = Vec::new();
    for t in ["1", "2"] {
        let out = Command::new(env!("CARGO_BIN_EXE_wstap"))
            .args(["-r", c.to_str().unwrap(), "--json", "-Z", "root", "--threads", t])
            .stdout(std::fs::File::create("/dev/full").unwrap())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "--threads {t}");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(err.lines().count(), 1, "--threads {t}: {err}");
        assert!(err.contains("No space left on device"), "--threads {t}: {err}");
        said.push(err);
    }
    assert_eq!(said[0], said[1]);
}

fn broken_pipe_with(extra: &[&str]) {
    let c = root().join("tests/data/peers/zeek/websocket_wstunnel-ssh.pcap");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wstap"))
        .args(["-r", c.to_str().unwrap(), "-vv", "-l"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    use std::io::Read;
    child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Classic pcap files are read by wstap's own record reader; standard input
/// (and pcapng) by libpcap. Both must give the same output, byte for byte.
#[test]
fn own_pcap_reader_agrees_with_libpcap() {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(root().join("captures"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .collect();
    for dir in ["zeek", "suricata", "arkime", "ndpi"] {
        files.extend(std::fs::read_dir(root().join("tests/data/peers").join(dir)).unwrap().map(|e| e.unwrap().path()));
    }
    files.retain(|p| p.extension().is_some_and(|x| x == "pcap"));
    assert!(files.len() > 40);
    for f in files {
        let direct = wstap(&["-r", f.to_str().unwrap(), "--json", "-vv"]);
        let mut child = Command::new(env!("CARGO_BIN_EXE_wstap"))
            .args(["-r", "-", "--json", "-vv"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let bytes = std::fs::read(&f).unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(&bytes));
        let piped = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(direct.status.success() && piped.status.success(), "{}", f.display());
        assert!(direct.stdout == piped.stdout, "{}: own reader and libpcap differ", f.display());
    }
    // With a filter, both paths select the same packets.
    let c = capture("nginx-healthy");
    let a = records_of(&c, &["tcp", "port", "18081"]);
    assert_eq!(summary(&a)["handshakes"]["total"], 3);
}
