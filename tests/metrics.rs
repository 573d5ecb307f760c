//! The Prometheus endpoint and the JSON file as an operator meets them:
//! what a scrape says equals wstap's own summary; the endpoint serves
//! while a capture runs and a scraper that never reads stalls nothing;
//! bad addresses, ports in use and unwritable files are one line and exit
//! 2 before any packet is read; a logrotate rename + SIGHUP loses no line.
//! (tests/metrics/run.sh does the same against a real Prometheus server.)

mod common;
mod hostile_gen;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use common::*;
use serde_json::Value;
use wstap::capture::{Input, PacketSource};
use wstap::sink::metrics::{MetricsSink, Shared};
use wstap::sink::{Collect, Sink, Tee};

/// Series of an exposition: `name{labels}` -> value.
fn parse(exposition: &str) -> BTreeMap<String, f64> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {l}"));
            (k.to_string(), v.parse::<f64>().unwrap_or_else(|_| panic!("not a value: {l}")))
        })
        .collect()
}

/// The sum of a family's series whose labels contain every `want` pair.
fn sum(m: &BTreeMap<String, f64>, name: &str, want: &[(&str, &str)]) -> f64 {
    m.iter()
        .filter(|(k, _)| {
            let (n, labels) = k.split_once('{').unwrap_or((k.as_str(), ""));
            n == name && want.iter().all(|(l, v)| labels.contains(&format!("{l}=\"{v}\"")))
        })
        .map(|(_, v)| v)
        .sum()
}

/// Runs a capture in process through the metrics sink and the records'
/// collector; returns the exposition and the summary as JSON.
fn scrape_after(path: &std::path::Path) -> (String, Value) {
    scrape_with(path, &[])
}

fn scrape_with(path: &std::path::Path, extra: &[&str]) -> (String, Value) {
    let p = path.to_str().unwrap().to_string();
    let mut argv = vec!["wstap".to_string(), "-r".into(), p.clone(), "-Z".into(), "root".into()];
    argv.extend(extra.iter().map(|a| a.to_string()));
    let keys = path.with_extension("keys");
    if keys.exists() {
        argv.extend(["--keylog".to_string(), keys.to_str().unwrap().to_string()]);
    }
    let args = wstap::cli::Args::parse_from(argv);
    let cfg = wstap::config::Config::from_args(&args).unwrap();
    let mut pipeline = wstap::app::pipeline(&cfg.analysis).unwrap();
    let Input::File(f) = &cfg.input else { panic!("a file") };
    let mut src = f.open().unwrap();
    src.set_keys(pipeline.keys().clone());
    let shared = Arc::new(Shared::default());
    let mut tee = Tee(vec![Box::new(Collect::default()), Box::new(MetricsSink::new(shared.clone()))]);
    let _ = pipeline.run(&mut src, &mut tee).unwrap();
    tee.flush().unwrap();
    let summary = serde_json::to_value(wstap::record::Record::Summary(pipeline.summary())).unwrap();
    (shared.current().exposition(false), summary)
}

#[test]
fn every_bundled_capture_scrapes_as_its_summary_says() {
    let mut n = 0;
    let mut most = 0;
    for entry in std::fs::read_dir(root().join("captures")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("pcap") {
            continue;
        }
        let (text, s) = scrape_after(&path);
        let m = parse(&text);
        let name = path.display();
        for outcome in ["upgraded", "rejected", "failed", "incomplete"] {
            assert_eq!(
                sum(&m, "wstap_handshakes_total", &[("outcome", outcome)]),
                s["handshakes"][outcome].as_f64().unwrap(),
                "{name}: handshakes {outcome}"
            );
            assert_eq!(
                sum(&m, "wstap_path_handshakes_total", &[("outcome", outcome)]),
                s["handshakes"][outcome].as_f64().unwrap(),
                "{name}: by path, {outcome}"
            );
        }
        for kind in wstap::record::FindingKind::ALL {
            let want = s["findings"][kind.name()].as_f64().unwrap_or(0.0);
            assert_eq!(sum(&m, "wstap_findings_total", &[("kind", kind.name())]), want, "{name}: {kind:?}");
            assert_eq!(sum(&m, "wstap_findings_by_severity_total", &[("kind", kind.name())]), want, "{name}: {kind:?}");
        }
        assert_eq!(sum(&m, "wstap_sessions_closed_total", &[]), s["sessions"].as_f64().unwrap(), "{name}: sessions");
        assert_eq!(sum(&m, "wstap_packets_total", &[]), s["packets"].as_f64().unwrap(), "{name}");
        assert_eq!(sum(&m, "wstap_connections_total", &[]), s["flows"].as_f64().unwrap(), "{name}");
        assert_eq!(sum(&m, "wstap_http_requests_total", &[]), s["http_requests"].as_f64().unwrap(), "{name}");
        assert_eq!(sum(&m, "wstap_sessions_open", &[]), 0.0, "{name}: all ended at the end");
        // One thread: worker 0 took every TCP segment.
        assert_eq!(sum(&m, "wstap_worker_packets_total", &[("worker", "0")]), s["tcp_packets"].as_f64().unwrap());
        assert_eq!(sum(&m, "wstap_worker_packets_total", &[]), s["tcp_packets"].as_f64().unwrap(), "{name}");
        // Cumulative buckets end at the count.
        for hop in ["client", "upstream"] {
            assert_eq!(
                sum(&m, "wstap_handshake_latency_seconds_bucket", &[("hop", hop), ("le", "+Inf")]),
                sum(&m, "wstap_handshake_latency_seconds_count", &[("hop", hop)]),
            );
        }
        most = most.max(wstap::sink::metrics::series(&text));
        n += 1;
    }
    assert!(n >= 40, "captures found: {n}");
    // docs/metrics.md: the series a host exposes with the labels seen in
    // the bundled captures (the bound with every label set is stated there).
    assert!(most < 600, "{most} series");
}

#[test]
fn each_worker_shows_its_share_of_the_load() {
    // Two workers: one series each, their segments adding up to the TCP
    // segments read, and each with a share (nginx-mass-close's sessions
    // spread over both by the flow hash); one thread: worker 0 alone.
    let path = root().join("captures/nginx-mass-close.pcap");
    let (text, s) = scrape_with(&path, &["--threads", "2"]);
    let m = parse(&text);
    let tcp = s["tcp_packets"].as_f64().unwrap();
    let (w0, w1) = (
        sum(&m, "wstap_worker_packets_total", &[("worker", "0")]),
        sum(&m, "wstap_worker_packets_total", &[("worker", "1")]),
    );
    assert_eq!(w0 + w1, tcp, "{text}");
    assert!(w0 > 0.0 && w1 > 0.0, "both workers had connections: {w0} {w1}");
    assert_eq!(m.keys().filter(|k| k.starts_with("wstap_worker_packets_total{")).count(), 2);
    assert_eq!(m.keys().filter(|k| k.starts_with("wstap_worker_connections{")).count(), 2);
    assert_eq!(sum(&m, "wstap_worker_connections", &[]), 0.0, "all ended at the end");
    let (text, _) = scrape_with(&path, &["--threads", "1"]);
    let m = parse(&text);
    assert_eq!(m.keys().filter(|k| k.starts_with("wstap_worker_packets_total{")).count(), 1);
    assert_eq!(sum(&m, "wstap_worker_packets_total", &[("worker", "0")]), tcp);
}

#[test]
fn idle_cuts_land_in_the_bucket_of_their_timeout() {
    let (text, _) = scrape_after(&capture("nginx-idle-60"));
    let m = parse(&text);
    let le = |b: &str| sum(&m, "wstap_session_idle_before_close_seconds_bucket", &[("le", b)]);
    assert!(le("61") - le("59") >= 1.0, "a 60 s cut falls between 59 and 61:\n{text}");
    assert_eq!(le("56") - le("54"), 0.0);
}

/// A running wstap reading a capture from a pipe, with `--metrics :0`.
struct Running {
    child: Child,
    addr: String,
}

fn start(extra: &[&str]) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wstap"))
        .args(["-r", "-", "--json", "-l", "--metrics", ":0"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("wstap: metrics at http://")
        .and_then(|s| s.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("no address: {line:?}"))
        .to_string();
    Running { child, addr }
}

/// GET /metrics with a deadline; the body.
fn get(addr: &str, accept: Option<&str>) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let accept = accept.map(|a| format!("Accept: {a}\r\n")).unwrap_or_default();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\n{accept}Connection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out
}

fn body(resp: &str) -> &str {
    resp.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("")
}

#[test]
fn serves_while_running_and_a_scraper_that_never_reads_stalls_nothing() {
    let pcap = std::fs::read(capture("nginx-idle-60")).unwrap();
    let mut w = start(&[]);
    let mut stdin = w.child.stdin.take().unwrap();
    stdin.write_all(&pcap).unwrap();
    stdin.flush().unwrap();

    // Scrapers that never read: one sends nothing, one pipelines many
    // requests and reads none of the answers.
    let _silent = TcpStream::connect(&w.addr).unwrap();
    let mut greedy = TcpStream::connect(&w.addr).unwrap();
    for _ in 0..2000 {
        if greedy.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").is_err() {
            break;
        }
    }

    // An honest scrape still answers, and sees the handshakes.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = parse(body(&get(&w.addr, None)));
        if sum(&m, "wstap_handshakes_total", &[("outcome", "upgraded")]) == 4.0 {
            assert!(sum(&m, "wstap_sessions_open", &[]) >= 1.0);
            break;
        }
        assert!(Instant::now() < deadline, "the handshakes never showed: {m:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // OpenMetrics when asked.
    let om = get(&w.addr, Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"));
    assert!(om.contains("application/openmetrics-text; version=1.0.0"), "{om}");
    assert!(om.trim_end().ends_with("# EOF"));
    let text = get(&w.addr, Some("text/plain;version=0.0.4"));
    assert!(text.contains("text/plain; version=0.0.4") && !text.contains("# EOF"));

    // The end of input ends the run at once, the stalled scrapers still there.
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = w.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "wstap did not finish with a stalled scraper connected");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
    let mut out = Vec::new();
    w.child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    let rs = parse_lines(&out);
    assert_eq!(summary(&rs)["handshakes"]["upgraded"], 4);
}

fn one_line_exit_2(args: &[&str]) -> String {
    let out = wstap(args);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("wstap: ") && !err.contains("panicked"), "{err}");
    assert!(out.stdout.is_empty(), "nothing analysed before the error: {out:?}");
    err
}

#[test]
fn bad_address_port_in_use_and_unwritable_file_are_one_line_before_capture() {
    let cap = capture("nginx-healthy");
    let cap = cap.to_str().unwrap();
    let err = one_line_exit_2(&["-r", cap, "--metrics", "localhost"]);
    assert!(err.contains("--metrics localhost: expected IP:PORT"), "{err}");
    let err = one_line_exit_2(&["-r", cap, "--metrics", "10.255.255.1:18849"]);
    assert!(err.contains("--metrics 10.255.255.1:18849: cannot listen:"), "{err}");
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = one_line_exit_2(&["-r", cap, "--metrics", &format!(":{port}")]);
    assert!(err.contains("cannot listen") && err.contains("in use"), "{err}");
    let err = one_line_exit_2(&["-r", cap, "--json-file", "/no/such/dir/wstap.jsonl"]);
    assert!(err.contains("/no/such/dir/wstap.jsonl: cannot write JSON Lines there (--json-file)"), "{err}");
    // A link is refused, as for -w.
    let d = Scratch::new("metrics");
    let link = d.join("link.jsonl");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink("/tmp/elsewhere", &link).unwrap();
    one_line_exit_2(&["-r", cap, "--json-file", link.to_str().unwrap()]);
}

/// A classic pcap split at the first packet `secs` after the first.
fn split_pcap(data: &[u8], secs: u32) -> (Vec<u8>, Vec<u8>) {
    let le = data[0] == 0xd4;
    let u32_at = |i: usize| {
        let b = [data[i], data[i + 1], data[i + 2], data[i + 3]];
        if le { u32::from_le_bytes(b) } else { u32::from_be_bytes(b) }
    };
    let mut i = 24;
    let first = u32_at(i);
    while i + 16 <= data.len() {
        if u32_at(i) >= first + secs {
            return (data[..i].to_vec(), data[i..].to_vec());
        }
        i += 16 + u32_at(i + 8) as usize;
    }
    (data.to_vec(), Vec::new())
}

#[test]
fn a_logrotate_rename_and_sighup_lose_no_line() {
    let d = Scratch::new("rotate");
    // As under logrotate: the directory is writable by the user packets
    // are parsed as (wstap drops root for it; the new file is its).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
    let file = d.join("wstap.jsonl");
    let rotated = d.join("wstap.jsonl.1");
    let pcap = std::fs::read(capture("nginx-idle-60")).unwrap();
    let (first, rest) = split_pcap(&pcap, 30);
    assert!(!rest.is_empty());

    let mut child = Command::new(env!("CARGO_BIN_EXE_wstap"))
        .args(["-r", "-", "--json", "-l", "--json-file", file.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&first).unwrap();
    stdin.flush().unwrap();
    // Wait for lines in the file (the handshakes), then rotate.
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&file).map(|s| s.lines().count()).unwrap_or(0) < 2 {
        assert!(Instant::now() < deadline, "no line before the rotation");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::rename(&file, &rotated).unwrap();
    // SAFETY: kill(2) on the child we started.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGHUP) }, 0);
    std::thread::sleep(Duration::from_millis(200));
    stdin.write_all(&rest).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");

    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    let before = std::fs::read_to_string(&rotated).unwrap();
    let after = std::fs::read_to_string(&file).unwrap();
    assert!(before.lines().count() >= 2 && after.lines().count() >= 2, "{before}\n---\n{after}");
    assert!(after.lines().last().unwrap().contains("\"type\":\"summary\""));
    // Together they are exactly what standard output got: none lost, none
    // split, none twice.
    assert_eq!(format!("{before}{after}"), String::from_utf8(out.stdout).unwrap());
}

/// Beside the dashboard (`--tui --metrics --json-file`): the dashboard's
/// worker feeds the endpoint and the file the same records, and the
/// summary at the end.
#[test]
fn beside_the_dashboard_the_endpoint_and_the_file_get_every_record() {
    use wstap::tui::feed::{self, FeedOptions, UiMsg};
    let name = capture("nginx-mass-close");
    let args = wstap::cli::Args::parse_from(["wstap", "-r", name.to_str().unwrap(), "-Z", "root", "--tui"]);
    let cfg = wstap::config::Config::from_args(&args).unwrap();
    let mut p = wstap::app::pipeline(&cfg.analysis).unwrap();
    let (mut src, _) = feed::open_source(&cfg.input, None).unwrap();
    let shared = Arc::new(Shared::default());
    let d = Scratch::new("tui-beside");
    let path = d.join("tui.jsonl");
    let _ = std::fs::remove_file(&path);
    let file = wstap::sink::json_file::open_file(&path).unwrap();
    let out = wstap::sink::dashboard::DashboardSink::with_beside(vec![
        Box::new(MetricsSink::new(shared.clone())),
        Box::new(wstap::sink::json_file::JsonFileSink::new(path.clone(), file, false)),
    ]);
    let (_tx, ctl_rx) = std::sync::mpsc::channel();
    let mut summary = None;
    feed::run_into(
        &mut p,
        src.as_mut(),
        &FeedOptions::default(),
        &ctl_rx,
        &mut |m| {
            if let UiMsg::Update(u) = m {
                summary = Some(u.snapshot.summary.clone());
            }
            true
        },
        out,
    );
    let s = serde_json::to_value(wstap::record::Record::Summary(summary.expect("an update"))).unwrap();
    let m = parse(&shared.current().exposition(false));
    assert_eq!(
        sum(&m, "wstap_handshakes_total", &[("outcome", "upgraded")]),
        s["handshakes"]["upgraded"].as_f64().unwrap()
    );
    assert_eq!(
        sum(&m, "wstap_findings_total", &[("kind", "mass-close")]),
        s["findings"]["mass-close"].as_f64().unwrap()
    );
    assert!(s["findings"]["mass-close"].as_f64().unwrap() >= 1.0);
    // The file holds what `--json` writes for the same capture.
    let want = wstap(&["-r", name.to_str().unwrap(), "--json"]);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), String::from_utf8(want.stdout).unwrap());
}

/// A path scan: 500 WebSocket handshakes, each to a path of its own (some
/// malformed), answered 404. The scrape keeps 20 path labels and counts the
/// rest as `other`; the series stay within the stated bound.
#[test]
fn a_path_scan_does_not_blow_up_the_scrape() {
    let mut b = PcapBuilder::default();
    for i in 0..500u32 {
        let client = ([10, 1, (i >> 8) as u8, i as u8], 40000 + (i % 20000) as u16);
        let (mut c, mut s) = b.connect(client, ([10, 0, 0, 1], 8080));
        let path = if i % 7 == 0 { format!("/scan/{i}/\"\x1b[2J") } else { format!("/scan/{i}?q={i}") };
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        b.send(&mut c, &s, req.as_bytes());
        b.send(&mut s, &c, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        b.fin(&mut c, &s);
        b.fin(&mut s, &c);
        b.advance_ms(20);
    }
    let d = Scratch::new("scan");
    let path = d.join("scan.pcap");
    b.write(&path);
    let (text, s) = scrape_after(&path);
    let m = parse(&text);
    // Raw quotes and ESC make a request line httparse refuses (counted as
    // malformed); the 428 others are handshakes.
    let rejected = s["handshakes"]["rejected"].as_f64().unwrap();
    assert_eq!(rejected, 428.0);
    assert_eq!(sum(&m, "wstap_handshakes_total", &[("outcome", "rejected")]), rejected);
    assert_eq!(sum(&m, "wstap_path_handshakes_total", &[("path", "other"), ("outcome", "rejected")]), rejected - 20.0);
    let paths: std::collections::BTreeSet<&str> = m
        .keys()
        .filter(|k| k.starts_with("wstap_path_handshakes_total{"))
        .filter_map(|k| k.split("path=\"").nth(1)?.split("\",outcome").next())
        .collect();
    assert_eq!(paths.len(), 21, "{paths:?}");
    assert!(!text.contains('\x1b'));
    assert!(wstap::sink::metrics::series(&text) < 857);
}

/// A SYN flood (50,000 SYNs from random sources, three real sessions
/// through the proxy) under a small budget: the scrape has the series it
/// always has, the evictions the summary reports, the three upgrades.
#[test]
fn a_syn_flood_moves_counters_not_series() {
    let d = Scratch::new("flood");
    let f = d.join("flood.pcap");
    hostile_gen::flood(&f, 50_000, 0.2, 3);
    let (text, s) = scrape_with(&f, &["--memcap", "4M"]);
    let m = parse(&text);
    let ev = &s["memory"]["evicted"];
    assert!(ev["half_open"].as_f64().unwrap() > 10_000.0, "{ev}");
    for class in ["half_open", "established", "upgraded"] {
        assert_eq!(sum(&m, "wstap_connections_evicted_total", &[("class", class)]), ev[class].as_f64().unwrap());
    }
    assert_eq!(sum(&m, "wstap_handshakes_total", &[("outcome", "upgraded")]), 3.0);
    assert_eq!(sum(&m, "wstap_connections_total", &[]), s["flows"].as_f64().unwrap());
    // A fresh endpoint's 296, the last packet's time, worker 0's two
    // series, the path the three sessions used (4 outcomes), and the
    // findings seen by severity.
    let detail = m.keys().filter(|k| k.starts_with("wstap_findings_by_severity_total")).count();
    assert_eq!(wstap::sink::metrics::series(&text), 296 + 1 + 2 + 4 + detail, "{text}");
}

/// Records and the runtime numbers of every tick.
#[derive(Default)]
struct Watch {
    records: Vec<wstap::record::Record>,
    relayed: Vec<wstap::correlate::Relayed>,
    open: Vec<u64>,
}

impl Sink for Watch {
    fn record(&mut self, r: &wstap::record::Record) -> std::io::Result<()> {
        self.records.push(r.clone());
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
    fn wants_runtime(&self) -> bool {
        true
    }
    fn runtime(&mut self, s: &wstap::runtime::RuntimeSnapshot) {
        self.relayed.push(s.relayed);
        self.open.push(s.sessions_open);
    }
}

/// Frames, bytes and messages relayed never go down from one tick to the
/// next (a session's count moves from open to ended at once), and end equal
/// to the session records' sums, on every bundled capture; open sessions
/// count as they go.
#[test]
fn relayed_traffic_grows_tick_by_tick_and_ends_as_the_sessions_say() {
    relayed_traffic_grows(1);
}

/// With flow-sharded workers the correlator offers the runtime numbers at
/// the same ticks, and they are the same numbers, as with one thread.
#[test]
fn with_workers_the_runtime_numbers_are_one_threads_tick_by_tick() {
    let one = relayed_traffic_grows(1);
    let two = relayed_traffic_grows(2);
    assert_eq!(one.len(), two.len());
    let mut ticks = 0;
    for ((name, a), (_, b)) in one.iter().zip(&two) {
        assert_eq!(a.0.len(), b.0.len(), "{name}: ticks offered");
        assert_eq!(a, b, "{name}: open sessions and relayed traffic, tick by tick");
        ticks += a.0.len();
    }
    assert!(ticks > 2 * one.len(), "{ticks} ticks over {} captures", one.len());
}

/// Per capture (by file name), the open sessions and relayed traffic at
/// each tick the sinks were offered.
type Ticks = Vec<(String, (Vec<u64>, Vec<wstap::correlate::Relayed>))>;

fn relayed_traffic_grows(threads: usize) -> Ticks {
    let mut seen = Ticks::new();
    let mut entries: Vec<_> = std::fs::read_dir(root().join("captures")).unwrap().map(|e| e.unwrap()).collect();
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("pcap") {
            continue;
        }
        let mut argv =
            vec!["wstap".to_string(), "-r".into(), path.to_str().unwrap().into(), "-Z".into(), "root".into()];
        argv.extend(["--threads".to_string(), threads.to_string()]);
        let keys = path.with_extension("keys");
        if keys.exists() {
            argv.extend(["--keylog".to_string(), keys.to_str().unwrap().to_string()]);
        }
        let cfg = wstap::config::Config::from_args(&wstap::cli::Args::parse_from(argv)).unwrap();
        let mut p = wstap::app::pipeline(&cfg.analysis).unwrap();
        let Input::File(f) = &cfg.input else { panic!() };
        let mut src = f.open().unwrap();
        src.set_keys(p.keys().clone());
        let mut w = Watch::default();
        p.run(&mut src, &mut w).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        for pair in w.relayed.windows(2) {
            for d in 0..2 {
                assert!(pair[1].frames[d] >= pair[0].frames[d], "{name}: frames went down: {pair:?}");
                assert!(pair[1].bytes[d] >= pair[0].bytes[d], "{name}: bytes went down: {pair:?}");
                assert!(pair[1].messages[d] >= pair[0].messages[d], "{name}: messages went down");
            }
        }
        let mut want = wstap::correlate::Relayed::default();
        for r in &w.records {
            if let wstap::record::Record::Session(s) = r {
                want.add(&wstap::correlate::Relayed {
                    frames: [s.frames.to_server, s.frames.to_client],
                    bytes: [s.bytes.to_server, s.bytes.to_client],
                    messages: [s.messages.to_server, s.messages.to_client],
                });
            }
        }
        assert_eq!(*w.relayed.last().unwrap(), want, "{name}");
        if path.ends_with("nginx-idle-60.pcap") {
            // Four sessions open, silent for 60 s: their first frames
            // are counted while they are open.
            let i = w.open.iter().position(|n| *n == 4).expect("a tick with the four sessions open");
            assert!(w.relayed[i].frames[0] >= 4, "{:?}", w.relayed[i]);
        }
        seen.push((name, (w.open, w.relayed)));
    }
    seen
}
