//! Dashboard tests: build an `App` offline (from a bundled capture through
//! the real worker loop, or from hand-made records), drive it with keys,
//! render it into ratatui's `TestBackend`, and assert on what is on
//! screen: text and colours. No sleeps; no threads but the workers of
//! `--threads`.

mod common;

use std::sync::mpsc;

use clap::Parser;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::Color;
use serde_json::json;

use wstap::cli::Args;
use wstap::correlate::SessionRow;
use wstap::flow::{Endpoint, FlowKey};
use wstap::record::{Dirs, Record, Summary};
use wstap::record::{Finding, FindingKind, Severity};
use wstap::time::Ts;
use wstap::tui::app::{Action, App, Mode, SortBy, View, key};
use wstap::tui::feed::{self, FeedOptions, Snapshot, Source, SourceKind, UiMsg};
use wstap::tui::ui;

// ---- Helpers ----

fn capture(name: &str) -> String {
    format!("{}/captures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Runs the worker loop over a capture, synchronously, into an App.
fn app_from_capture(name: &str, opts: FeedOptions) -> App {
    app_from_capture_with(name, opts, &[]).0
}

/// [`app_from_capture`] with more options (`--threads 2`: the worker loop
/// starts its own workers); also the number of updates sent.
fn app_from_capture_with(name: &str, opts: FeedOptions, more: &[&str]) -> (App, usize) {
    let (app, updates, _) = app_from_file(&capture(name), opts, more);
    (app, updates)
}

/// [`app_from_capture_with`] on any file; also how the worker said the
/// input ended (`Done`).
fn app_from_file(path: &str, opts: FeedOptions, more: &[&str]) -> (App, usize, Result<Option<String>, String>) {
    common::pin_utc();
    let argv: Vec<&str> = ["wstap", "-r", path, "--tui"].into_iter().chain(more.iter().copied()).collect();
    let args = Args::parse_from(argv);
    let mut p = wstap::app::build_pipeline(&args).unwrap();
    let input = wstap::config::Config::from_args(&args).unwrap().input;
    let (mut src, source) = feed::open_source(&input, None).unwrap();
    let (_ctl_tx, ctl_rx) = mpsc::channel();
    let mut app = App::new(source);
    let (mut done, mut updates) = (None, 0);
    feed::run(&mut p, src.as_mut(), &opts, &ctl_rx, &mut |m| {
        if let UiMsg::Done(r) = &m {
            done = Some(r.clone());
        }
        updates += matches!(m, UiMsg::Update(_)) as usize;
        app.on_msg(m);
        true
    });
    let done = done.expect("the worker reports the end of the capture");
    (app, updates, done)
}

fn test_app() -> App {
    common::pin_utc();
    App::new(Source { label: "test.pcap".into(), kind: SourceKind::File })
}

fn render(app: &App, w: u16, h: u16) -> Buffer {
    common::pin_utc();
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| ui::draw(f, app)).unwrap();
    t.backend().buffer().clone()
}

fn lines(buf: &Buffer) -> Vec<String> {
    let a = buf.area;
    (0..a.height).map(|y| (0..a.width).map(|x| buf[(x, y)].symbol()).collect::<String>()).collect()
}

fn text(buf: &Buffer) -> String {
    lines(buf).join("\n")
}

/// Where `needle` starts on screen (column, row).
fn find(buf: &Buffer, needle: &str) -> Option<(u16, u16)> {
    lines(buf)
        .iter()
        .enumerate()
        .find_map(|(y, l)| l.find(needle).map(|byte| (l[..byte].chars().count() as u16, y as u16)))
}

fn fg_at(buf: &Buffer, needle: &str) -> Color {
    let (x, y) = find(buf, needle).unwrap_or_else(|| panic!("{needle:?} not on screen:\n{}", text(buf)));
    buf[(x, y)].fg
}

fn assert_on_screen(buf: &Buffer, needles: &[&str]) {
    let t = text(buf);
    for n in needles {
        assert!(t.contains(n), "{n:?} not on screen:\n{t}");
    }
}

fn press(app: &mut App, code: KeyCode) -> Action {
    app.on_key(key(code))
}

fn type_str(app: &mut App, s: &str) {
    for c in s.chars() {
        press(app, KeyCode::Char(c));
    }
}

fn fk(s: &str) -> FlowKey {
    let (a, b) = s.split_once("->").unwrap();
    let ep = |x: &str| {
        let sa: std::net::SocketAddr = x.parse().unwrap();
        Endpoint::new(sa.ip(), sa.port())
    };
    FlowKey { src: ep(a), dst: ep(b) }
}

fn finding(
    kind: FindingKind,
    sev: Severity,
    ts: f64,
    path: &str,
    flows: &[&str],
    detail: serde_json::Value,
) -> Finding {
    Finding {
        ty: "finding",
        kind,
        severity: sev,
        ts,
        flows: flows.iter().map(|s| fk(s)).collect(),
        path: Some(path.into()),
        message: format!("{kind} on {path}"),
        fix: Some(format!("Fix for {kind}: add proxy_set_header Upgrade $http_upgrade;")),
        detail,
        fault: 0,
        primary: true,
        also: Vec::new(),
    }
}

const CLIENT: &str = "198.51.100.7:51000->10.0.0.1:80";
const UPSTREAM: &str = "10.0.0.1:40000->10.0.0.2:3000";

fn stripped_detail() -> serde_json::Value {
    json!({
        "hops": {
            "client": {
                "flow": CLIENT,
                "request": [["Host", "app.example"], ["Upgrade", "websocket"], ["Connection", "Upgrade"],
                            ["Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="]],
                "response": [["Server", "nginx/1.22.1"], ["Content-Type", "text/html"]],
                "status": 400
            },
            "upstream": {
                "flow": UPSTREAM,
                "request": [["Host", "app.example"], ["Connection", "close"],
                            ["Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="]],
                "response": [["Content-Type", "text/plain"]],
                "status": 400
            }
        },
        "diff": [
            {"header": "Upgrade", "client": "websocket", "upstream": null, "change": "missing"},
            {"header": "Connection", "client": "Upgrade", "upstream": "close", "change": "mangled"}
        ],
        "client_saw": "400 Bad Request"
    })
}

fn findings_app() -> App {
    let mut app = test_app();
    let mut records = Vec::new();
    for i in 0..3 {
        let f = finding(
            FindingKind::UpgradeStripped,
            Severity::Error,
            100.0 + i as f64,
            "/ws",
            &[CLIENT, UPSTREAM],
            stripped_detail(),
        );
        records.push(Record::Finding(f));
    }
    records.push(Record::Finding(finding(
        FindingKind::IdleTimeoutClose,
        Severity::Warning,
        150.0,
        "/live",
        &["198.51.100.9:52000->10.0.0.1:80", "10.0.0.1:40002->10.0.0.2:3000"],
        json!({"boundary_s": 60.0, "idle_s": 60.02}),
    )));
    records.push(Record::Finding(finding(
        FindingKind::HeartbeatRace,
        Severity::Info,
        120.0,
        "/feed",
        &[CLIENT],
        json!(null),
    )));
    let mut summary = Summary::default();
    summary.findings.insert(FindingKind::UpgradeStripped, 3);
    summary.findings.insert(FindingKind::IdleTimeoutClose, 1);
    summary.findings.insert(FindingKind::HeartbeatRace, 1);
    app.ingest(records, Snapshot { summary, clock: Some(200.0), ..Snapshot::default() });
    app
}

/// `n` open sessions, idle `i % 70` seconds each, at clock 10_000.
fn many_sessions(n: u64) -> Snapshot {
    let now = 10_000.0;
    let sessions = (0..n)
        .map(|i| SessionRow {
            id: i + 1,
            handshake: i + 1,
            path: if i % 2 == 0 { "/ws".into() } else { "/socket.io/".into() },
            client_flow: Some(fk(&format!(
                "10.{}.{}.{}:{}->192.0.2.1:443",
                i / 65536,
                (i / 256) % 256,
                i % 256,
                20000 + i % 40000
            ))),
            client_stream: None,
            upstream_flow: Some(fk(&format!("192.0.2.1:{}->192.0.2.50:8080", 30000 + i % 30000))),
            start: Ts::from_secs_f64(now - 100.0 - (i % 500) as f64),
            last_activity: Ts::from_secs_f64(now - (i % 70) as f64),
            frames: Dirs { to_server: i % 100, to_client: 2 * (i % 100) },
            bytes: Dirs { to_server: 1000 * (i % 100), to_client: 50 },
        })
        .collect();
    let summary = Summary { sessions: 0, ..Summary::default() };
    Snapshot { summary, sessions, idle_boundary: None, clock: Some(now), ..Snapshot::default() }
}

// ---- Views from bundled captures ----

#[test]
fn overview_shows_counters_from_a_healthy_capture() {
    let app = app_from_capture("nginx-healthy.pcap", FeedOptions::default());
    let s = &app.snap.summary;
    assert_eq!(s.handshakes.upgraded, 3, "manifest: three sessions upgraded");
    let buf = render(&app, 80, 24);
    assert_on_screen(
        &buf,
        &[
            "1 Overview",
            "analysed",
            &format!("Packets     {}", s.packets),
            "Upgraded    3",
            "Success     100.0%",
            "Ended       3",
            "Idle cut    60 s boundary (default)",
            "Upgrade success rate",
            "latest 100%",
            "Drops       none (file)",
        ],
    );
    assert_eq!(fg_at(&buf, "100.0%"), Color::Green);
}

#[test]
fn sessions_view_lists_the_closed_sessions_of_a_capture() {
    let mut app = app_from_capture("nginx-healthy.pcap", FeedOptions::default());
    press(&mut app, KeyCode::Char('3'));
    assert_eq!(app.view, View::Sessions);
    let buf = render(&app, 80, 24);
    assert_on_screen(&buf, &["Sessions: 0 open · 3 closed", "Client", "Idle▼", "/ws", "1000 client", "127.0.0.1:"]);
    // The footer shows the selected session in full.
    assert_on_screen(
        &buf,
        &["client 127.0.0.1:", "->127.0.0.1:18081", "upstream 127.0.0.1:", "close 1000", "by client"],
    );
    let rows = lines(&buf).iter().filter(|l| l.contains("/ws") && l.contains("1000 client")).count();
    assert_eq!(rows, 3);
}

#[test]
fn latency_view_has_percentiles_and_a_histogram() {
    let mut app = app_from_capture("nginx-healthy.pcap", FeedOptions::default());
    press(&mut app, KeyCode::Char('4'));
    let buf = render(&app, 80, 24);
    assert_on_screen(&buf, &["p50", "p90", "p99", "p99.9", "max", "client handshake   3", "upstream handshake 3"]);
    assert_on_screen(&buf, &["proxy overhead     3", "Histogram: client handshake", "ms–"]);
    // Relay delays are sampled by the engine (some frames, not all): the
    // row shows percentiles when there are samples, dashes otherwise.
    let relay_row = lines(&buf).into_iter().find(|l| l.contains("frame relay")).unwrap();
    let sampled = !app.latency.get(wstap::tui::app::Metric::Relay).is_empty();
    assert_eq!(relay_row.contains("µs") || relay_row.contains("ms"), sampled, "{relay_row}");
    // Overhead = client - upstream, so its median is below the client's.
    let l = &app.latency;
    use wstap::tui::app::Metric::*;
    assert!(l.get(Overhead).histogram().value_at_quantile(0.5) < l.get(Client).histogram().value_at_quantile(0.5));
    // ↓ picks the next series' histogram.
    press(&mut app, KeyCode::Down);
    assert_on_screen(&render(&app, 80, 24), &["Histogram: upstream handshake"]);
}

#[test]
fn replay_gives_the_same_analysis_as_full_speed() {
    let full = app_from_capture("nginx-mass-close.pcap", FeedOptions::default());
    // 3.6 s of capture at 1000x: about 4 ms of pacing.
    let opts = FeedOptions { replay: Some(1000.0), ..FeedOptions::default() };
    let replayed = app_from_capture("nginx-mass-close.pcap", opts);
    let (a, b) = (&full.snap.summary, &replayed.snap.summary);
    assert_eq!(a.packets, b.packets);
    assert_eq!(a.handshakes.upgraded, b.handshakes.upgraded);
    assert_eq!(a.sessions, b.sessions);
    assert_eq!(full.shown_sessions(), replayed.shown_sessions());
    assert_eq!(a.findings, b.findings);
}

#[test]
fn two_workers_show_the_same_dashboard_as_one_thread() {
    // Every bundled capture: each view, the summary and the records kept
    // are the same with two workers as with one thread. With workers the
    // correlator makes the views (here as often as it can: every 512
    // packets, so several updates before the last one in the captures
    // that have more than that).
    let mut names: Vec<String> = std::fs::read_dir(capture(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".pcap") || n.ends_with(".pcapng"))
        .collect();
    names.sort();
    assert!(names.len() >= 20, "{names:?}");
    let mut several = 0;
    for name in &names {
        let (mut one, _) = app_from_capture_with(name, FeedOptions::default(), &["--threads", "1"]);
        let often = FeedOptions { update_every: std::time::Duration::ZERO, ..FeedOptions::default() };
        let (mut two, updates) = app_from_capture_with(name, often, &["--threads", "2"]);
        several += (updates > 2) as usize;
        // The one number allowed to differ (as in tests/threads.rs): with
        // workers the memory peak is the sum of their tables' peaks.
        assert!(two.snap.summary.memory.peak_bytes > 0);
        two.snap.summary.memory.peak_bytes = one.snap.summary.memory.peak_bytes;
        assert_eq!(
            serde_json::to_value(&one.snap.summary).unwrap(),
            serde_json::to_value(&two.snap.summary).unwrap(),
            "{name}: summary"
        );
        assert_eq!(
            serde_json::to_string(&one.handshakes).unwrap(),
            serde_json::to_string(&two.handshakes).unwrap(),
            "{name}: handshakes"
        );
        assert_eq!(one.shown_sessions(), two.shown_sessions(), "{name}: sessions");
        // (The cursor follows its row through the updates, and the runs
        // had different updates: both start at the top.)
        (one.session_sel, two.session_sel, one.finding_sel, two.finding_sel) = (0, 0, 0, 0);
        for v in ['1', '2', '3', '4'] {
            press(&mut one, KeyCode::Char(v));
            press(&mut two, KeyCode::Char(v));
            assert_eq!(text(&render(&one, 120, 40)), text(&render(&two, 120, 40)), "{name}: view {v}");
        }
    }
    assert!(several >= 2, "views before the end in {several} captures");
}

#[test]
fn views_with_workers_come_by_wall_time_not_by_packet_time() {
    // nginx-bench.pcap: 2,482 packets in 1.6 s of packet time (two ticks).
    // Asked for a view as often as possible, the workers' dashboard gets
    // one at least every 512 packets, as one thread gets one whenever its
    // wall-time interval has passed: the screen follows the reading, not
    // the seconds of packet time it covers.
    common::pin_utc();
    let path = capture("nginx-bench.pcap");
    let argv = ["wstap", "-r", path.as_str(), "--tui", "--threads", "2"];
    let args = Args::parse_from(argv);
    let mut p = wstap::app::build_pipeline(&args).unwrap();
    let input = wstap::config::Config::from_args(&args).unwrap().input;
    let (mut src, _) = feed::open_source(&input, None).unwrap();
    let (_ctl_tx, ctl_rx) = mpsc::channel();
    let often = FeedOptions { update_every: std::time::Duration::ZERO, ..FeedOptions::default() };
    let mut seen = Vec::new();
    feed::run(&mut p, src.as_mut(), &often, &ctl_rx, &mut |m| {
        if let UiMsg::Update(u) = &m {
            seen.push(u.snapshot.summary.packets);
        }
        true
    });
    let total = *seen.last().unwrap();
    assert_eq!(total, 2482);
    // Before the end: at least one view per 512 packets, each later than
    // the one before.
    let before: Vec<u64> = seen.iter().copied().filter(|&n| n < total).collect();
    assert!(before.len() >= 4, "{seen:?}");
    assert!(before.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    assert!(before.windows(2).all(|w| w[1] - w[0] <= 512), "{seen:?}");
}

#[test]
fn a_capture_cut_inside_a_packet_ends_the_same_with_two_workers() {
    // The file ends inside a packet record: both say so in `Done`, and
    // show what came before, the summary marked truncated.
    let whole = std::fs::read(capture("nginx-healthy.pcap")).unwrap();
    let dir = common::Scratch::new("tui-cut");
    let cut = dir.join("cut.pcap");
    std::fs::write(&cut, &whole[..whole.len() * 2 / 3]).unwrap();
    let cut = cut.to_str().unwrap();
    let (one, _, end1) = app_from_file(cut, FeedOptions::default(), &["--threads", "1"]);
    let (two, _, end2) = app_from_file(cut, FeedOptions::default(), &["--threads", "2"]);
    let msg = end1.expect("a cut file is not an error").expect("a cut file says so");
    assert!(msg.contains("truncated dump file"), "{msg}");
    assert_eq!(end2, Ok(Some(msg)));
    assert!(one.snap.summary.truncated && two.snap.summary.truncated);
    assert!(one.snap.summary.packets > 0);
    assert_eq!(one.snap.summary.packets, two.snap.summary.packets);
    assert!(one.snap.summary.handshakes.total > 0);
    assert_eq!(
        serde_json::to_value(&one.snap.summary.handshakes).unwrap(),
        serde_json::to_value(&two.snap.summary.handshakes).unwrap()
    );
    assert_eq!(one.shown_sessions(), two.shown_sessions());
}

#[test]
fn relay_samples_accumulate_across_snapshots_and_pauses() {
    let mut app = test_app();
    let snap = |ms: &[f64]| Snapshot { relay_ms: ms.to_vec(), ..Snapshot::default() };
    app.ingest(Vec::new(), snap(&[0.1, 0.2]));
    press(&mut app, KeyCode::Char('p'));
    // Samples are deltas: none may be lost while the view is paused.
    app.ingest(Vec::new(), snap(&[0.3]));
    app.ingest(Vec::new(), snap(&[1.5, 2.5]));
    assert_eq!(app.latency.get(wstap::tui::app::Metric::Relay).len(), 2);
    press(&mut app, KeyCode::Char('p'));
    assert_eq!(app.latency.get(wstap::tui::app::Metric::Relay).len(), 5);
    press(&mut app, KeyCode::Char('4'));
    for _ in 0..3 {
        press(&mut app, KeyCode::Down);
    }
    let buf = render(&app, 80, 24);
    assert_on_screen(&buf, &["frame relay        5", "Histogram: frame relay", "100µs–200µs", "1ms–2ms", "2ms–5ms"]);
}

fn handshake(id: u64, ts: f64, outcome: wstap::record::Outcome, client_ms: f64, upstream_ms: f64) -> Record {
    Record::Handshake(wstap::record::Handshake {
        ty: "handshake",
        id,
        chain: id,
        hop_index: 0,
        ts,
        path: "/ws".into(),
        client: None,
        upstream: None,
        outcome,
        latency_ms: wstap::record::Latency { client: Some(client_ms), upstream: Some(upstream_ms) },
        paired_by: Some(wstap::record::PairedBy::Key),
        pair_confidence: None,
        join: Default::default(),
    })
}

#[test]
fn success_rate_over_time_and_latency_from_handshake_records() {
    use wstap::record::Outcome::*;
    let mut app = test_app();
    let records = vec![
        handshake(1, 100.1, Upgraded, 4.0, 3.0),
        handshake(2, 100.7, Rejected, 2.0, 2.5),
        handshake(3, 102.2, Upgraded, 12.0, 2.0),
        handshake(4, 102.9, Upgraded, 6.0, 5.0),
    ];
    app.ingest(records, Snapshot { clock: Some(105.5), ..Snapshot::default() });
    // Seconds 100..=105: 50%, nothing, 100%, then quiet until now.
    assert_eq!(app.success_bucket(60), 1);
    assert_eq!(app.success_series(1, 60), vec![Some(50), None, Some(100), None, None, None]);
    assert_eq!(app.success_series(2, 60), vec![Some(50), Some(100), None]);
    assert_eq!(app.success_series(1, 2), vec![None, None], "the last n buckets");
    let buf = render(&app, 80, 24);
    assert_on_screen(&buf, &["Upgrade success rate, % per 1.0s · latest 100%"]);
    // Overhead is client minus upstream, never below zero.
    use wstap::tui::app::Metric;
    let l = &app.latency;
    assert_eq!(l.get(Metric::Client).len(), 4);
    assert_eq!(l.get(Metric::Overhead).len(), 4);
    assert_eq!(l.get(Metric::Overhead).histogram().min(), 1, "2.0 - 2.5 ms clamps to 0 (1 µs, the histogram's floor)");
    assert!((9_990..=10_010).contains(&l.get(Metric::Overhead).histogram().max()), "12 - 2 ms");
    press(&mut app, KeyCode::Char('4'));
    assert_on_screen(&render(&app, 80, 24), &["client handshake   4", "12.0ms", "proxy overhead     4"]);
}

// ---- Findings ----

#[test]
fn findings_are_grouped_with_counts_and_severity_colours() {
    let mut app = findings_app();
    press(&mut app, KeyCode::Char('2'));
    let buf = render(&app, 80, 24);
    assert_on_screen(
        &buf,
        &["Findings: 5 in 3 groups", "upgrade-stripped ×3", "idle-timeout-close ×1", "heartbeat-race ×1"],
    );
    assert_on_screen(&buf, &["10.0.0.1:80 -> 10.0.0.2:3000", "upgrade-stripped on /ws"]);
    assert_eq!(fg_at(&buf, "ERROR"), Color::Red);
    assert_eq!(fg_at(&buf, "WARN"), Color::Yellow);
    assert_eq!(fg_at(&buf, "INFO"), Color::Blue);
    // Newest last: heartbeat (ts 120) before idle-timeout (ts 150) and
    // after upgrade-stripped (last at 102).
    let row = |s: &str| find(&buf, s).unwrap().1;
    assert!(row("upgrade-stripped ×3") < row("heartbeat-race") && row("heartbeat-race") < row("idle-timeout-close"));
    // The overview lists kinds by severity.
    press(&mut app, KeyCode::Char('1'));
    let buf = render(&app, 80, 24);
    assert_on_screen(&buf, &["Findings by kind", "3  upgrade-stripped", "1  idle-timeout"]);
    assert!(find(&buf, "upgrade-stripped").unwrap().1 < find(&buf, "idle-timeout-close").unwrap().1);
}

#[test]
fn finding_detail_shows_both_hops_the_stripped_header_and_the_fix() {
    let mut app = findings_app();
    press(&mut app, KeyCode::Char('2'));
    assert_eq!(app.selected_group().unwrap().kind, FindingKind::UpgradeStripped);
    assert_eq!(press(&mut app, KeyCode::Enter), Action::Redraw);
    assert_eq!(app.mode, Mode::Detail);
    for (w, h) in [(80, 24), (160, 48)] {
        let buf = render(&app, w, h);
        assert_on_screen(
            &buf,
            &[
                "upgrade-stripped",
                "×3",
                "What the client saw: 400 Bad Request",
                "Client hop",
                "Upstream hop",
                "198.51.100.7:51000->10.0.0.1:80",
                "10.0.0.1:40000->10.0.0.2:3000",
                "- Upgrade: websocket",
                "✗ Upgrade: (stripped",
                "~ Connection: Upgrade",
                "~ Connection: close",
                "Response: 400",
                "Server: nginx/1.22.1",
                "Fix for upgrade-stripped",
            ],
        );
        assert_eq!(fg_at(&buf, "- Upgrade: websocket"), Color::Red);
        assert_eq!(fg_at(&buf, "✗ Upgrade"), Color::Red);
        assert_eq!(fg_at(&buf, "~ Connection: close"), Color::Yellow);
        // Side by side, row for row: the stripped header's hole is on the
        // same row as the client's header.
        let (cx, cy) = find(&buf, "- Upgrade: websocket").unwrap();
        let (ux, uy) = find(&buf, "✗ Upgrade").unwrap();
        assert!(cx < w / 2 && ux >= w / 2, "columns at {cx} and {ux}");
        assert_eq!(cy, uy);
        assert_eq!(find(&buf, "~ Connection: Upgrade").unwrap().1, find(&buf, "~ Connection: close").unwrap().1);
        assert!(cy > find(&buf, "What the client saw").unwrap().1);
    }
    // Older occurrences, then back.
    press(&mut app, KeyCode::Left);
    assert_on_screen(&render(&app, 80, 24), &["occurrence 2 of the last 3"]);
    assert_eq!(press(&mut app, KeyCode::Esc), Action::Redraw);
    assert_eq!(app.mode, Mode::Browse);
    assert_on_screen(&render(&app, 80, 24), &["Findings: 5 in 3 groups"]);
}

#[test]
fn finding_detail_without_hops_shows_its_fields() {
    let mut app = findings_app();
    press(&mut app, KeyCode::Char('2'));
    press(&mut app, KeyCode::End);
    assert_eq!(app.selected_group().unwrap().kind, FindingKind::IdleTimeoutClose);
    press(&mut app, KeyCode::Enter);
    let buf = render(&app, 80, 24);
    assert_on_screen(
        &buf,
        &["idle-timeout", "boundary_s: 60.0", "idle_s: 60.02", "Flows", "198.51.100.9:52000->10.0.0.1:80"],
    );
    assert!(!text(&buf).contains("What the client saw"));
    // A null detail renders too.
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Up);
    press(&mut app, KeyCode::Enter);
    assert_on_screen(&render(&app, 80, 24), &["heartbeat-race", "Fix for heartbeat-race"]);
}

#[test]
fn odd_finding_details_render_without_panicking() {
    let details = [
        json!({"hops": {"client": "not an object", "upstream": 5}, "diff": "nope", "client_saw": 3}),
        json!({"hops": [1, 2, {"role": "client"}], "diff": [{"header": 1}, {"change": "missing"}]}),
        json!({"hops": {"client": {"flow": CLIENT, "request": [["Upgrade"], [], "x"], "response": null}}}),
        json!({"hops": {"upstream": {"encrypted": true, "sni": "app.example", "flow": UPSTREAM}}}),
        json!("a bare string"),
        json!([1, 2, 3]),
        json!({"nested": {"deep": {"deeper": [1, {"x": null}]}}, "closed_at": 1_700_000_000.5}),
    ];
    let mut app = test_app();
    let records = details
        .iter()
        .enumerate()
        .map(|(i, d)| {
            Record::Finding(finding(
                FindingKind::AbnormalClose,
                Severity::Warning,
                i as f64,
                &format!("/p{i}"),
                &[CLIENT],
                d.clone(),
            ))
        })
        .collect();
    app.ingest(records, Snapshot::default());
    press(&mut app, KeyCode::Char('2'));
    assert_eq!(app.group_order.len(), details.len());
    for i in 0..details.len() {
        press(&mut app, KeyCode::Enter);
        for (w, h) in [(40, 12), (80, 24), (200, 60)] {
            let buf = render(&app, w, h);
            assert!(text(&buf).contains("abnormal-close"), "detail {i} at {w}x{h}:\n{}", text(&buf));
        }
        press(&mut app, KeyCode::Esc);
        press(&mut app, KeyCode::Down);
    }
    // The encrypted hop says so; the time field reads as a time of day.
    press(&mut app, KeyCode::Home);
    for _ in 0..3 {
        press(&mut app, KeyCode::Down);
    }
    press(&mut app, KeyCode::Enter);
    assert_on_screen(&render(&app, 120, 40), &["TLS: encrypted, SNI app.example", "(no client hop in this capture)"]);
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::End);
    press(&mut app, KeyCode::Enter);
    assert_on_screen(&render(&app, 120, 40), &["closed_at: 22:13:20.500"]);
}

#[test]
fn filter_narrows_findings_by_kind_path_or_address() {
    let mut app = findings_app();
    press(&mut app, KeyCode::Char('2'));
    press(&mut app, KeyCode::Char('/'));
    assert_eq!(app.mode, Mode::Filter);
    type_str(&mut app, "idle");
    let buf = render(&app, 80, 24);
    assert_on_screen(&buf, &["/idle", "idle-timeout-close ×1"]);
    assert!(!text(&buf).contains("upgrade-stripped ×3"));
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.mode, Mode::Browse);
    assert_on_screen(&render(&app, 80, 24), &["filter: idle"]);
    // By address: only groups with a flow on that client.
    press(&mut app, KeyCode::Esc);
    assert!(app.filter.is_empty());
    press(&mut app, KeyCode::Char('/'));
    type_str(&mut app, "198.51.100.7");
    assert_eq!(app.group_order.len(), 2);
    // Backspace edits; Esc cancels and clears.
    press(&mut app, KeyCode::Backspace);
    assert_eq!(app.filter, "198.51.100.");
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.group_order.len(), 3);
    // q is text while typing a filter, not quit.
    press(&mut app, KeyCode::Char('/'));
    assert_eq!(press(&mut app, KeyCode::Char('q')), Action::Redraw);
}

// ---- Sessions at scale ----

#[test]
fn ten_thousand_sessions_render_at_80x24_and_200x60() {
    let mut app = test_app();
    app.ingest(Vec::new(), many_sessions(10_000));
    press(&mut app, KeyCode::Char('3'));
    assert_eq!(app.shown_sessions(), 10_000);
    assert_eq!(app.sort, SortBy::Idle);

    let buf = render(&app, 80, 24);
    assert_on_screen(
        &buf,
        &["Sessions: 10000 open · 0 closed · sort idle · 60 s boundary (default)", "3 Sessions (10000 open)"],
    );
    assert_on_screen(&buf, &["row 1/10000"]);
    // Longest idle first: 69 s, past 90% of 60 s, in red.
    let first = app.shown_session(0).unwrap();
    assert_eq!(first.idle(app.now()), Some(69.0));
    assert_eq!(fg_at(&buf, "1m09s"), Color::Red);
    // Only the rows that fit are drawn (24 rows minus frame, header, footer).
    let drawn = lines(&buf).iter().filter(|l| l.contains("->") || l.contains("/ws ") || l.contains("/socket")).count();
    assert!(drawn <= 20, "{drawn} rows drawn");

    // To the end: amber and plain idle times show there.
    press(&mut app, KeyCode::End);
    let buf = render(&app, 80, 24);
    assert_on_screen(&buf, &["row 10000/10000"]);
    let last = app.shown_session(app.shown_sessions() - 1).unwrap();
    assert_eq!(last.idle(app.now()), Some(0.0));
    assert_eq!(app.session_offset.get(), 10_000 - (24 - 2 - 2 - 2 - 1));

    // Wide: full flows in their own columns.
    press(&mut app, KeyCode::Home);
    let buf = render(&app, 200, 60);
    assert_on_screen(&buf, &["Client flow", "Upstream flow", "->192.0.2.1:443", "->192.0.2.50:8080", "Frames↑/↓"]);
    assert_on_screen(&buf, &["row 1/10000"]);
    let rows = lines(&buf).iter().filter(|l| l.contains("->192.0.2.50:8080")).count();
    assert!((50..=56).contains(&rows), "{rows} rows drawn at 200x60");
}

#[test]
fn idle_time_turns_amber_then_red_near_the_boundary() {
    let mut app = test_app();
    let mut snap = many_sessions(70);
    snap.idle_boundary = Some(40.0);
    app.ingest(Vec::new(), snap);
    press(&mut app, KeyCode::Char('3'));
    let buf = render(&app, 120, 80);
    assert_on_screen(&buf, &["40.0 s boundary (learned)"]);
    // 40 s boundary: amber from 30 s, red from 36 s.
    assert_eq!(fg_at(&buf, "29.0s"), Color::Reset);
    assert_eq!(fg_at(&buf, "30.0s"), Color::Yellow);
    assert_eq!(fg_at(&buf, "35.0s"), Color::Yellow);
    assert_eq!(fg_at(&buf, "36.0s"), Color::Red);
    assert_eq!((app.idle_amber, app.idle_red), (6, 34));
}

#[test]
fn sort_cycles_and_filter_narrows_sessions() {
    let mut app = test_app();
    app.ingest(Vec::new(), many_sessions(1000));
    press(&mut app, KeyCode::Char('3'));
    press(&mut app, KeyCode::Char('s'));
    assert_eq!(app.sort, SortBy::Age);
    assert_on_screen(&render(&app, 100, 30), &["Age▼", "sort age"]);
    let ages: Vec<f64> = app.shown_range(0..app.shown_sessions()).map(|s| s.age(app.now())).collect();
    assert!(ages.windows(2).all(|w| w[0] >= w[1]));
    press(&mut app, KeyCode::Char('s'));
    assert_eq!(app.sort, SortBy::Path);
    assert_on_screen(&render(&app, 100, 30), &["Path▲"]);
    assert_eq!(app.shown_session(0).unwrap().path, "/socket.io/");
    for _ in 0..4 {
        press(&mut app, KeyCode::Char('s'));
    }
    assert_eq!(app.sort, SortBy::Idle);

    press(&mut app, KeyCode::Char('/'));
    type_str(&mut app, "socket.io");
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.shown_sessions(), 500);
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Char('/'));
    type_str(&mut app, "10.0.3.7:");
    assert_eq!(app.shown_sessions(), 1);
    assert_on_screen(&render(&app, 100, 30), &["10.0.3.7:", "row 1/1"]);
}

#[test]
fn selection_follows_the_session_across_updates() {
    let mut app = test_app();
    app.ingest(Vec::new(), many_sessions(100));
    press(&mut app, KeyCode::Char('3'));
    for _ in 0..5 {
        press(&mut app, KeyCode::Char('j'));
    }
    let id = app.selected_session().unwrap().id;
    // A later snapshot: clocks moved, the order may change; the cursor stays.
    let mut later = many_sessions(100);
    later.clock = Some(10_003.0);
    app.ingest(Vec::new(), later);
    assert_eq!(app.selected_session().unwrap().id, id);
}

#[test]
fn fewer_sessions_in_a_later_snapshot_keep_the_cursor_valid() {
    // Regression: the cursor pointed past the end of the new rows.
    let mut app = test_app();
    app.ingest(Vec::new(), many_sessions(100));
    press(&mut app, KeyCode::Char('3'));
    press(&mut app, KeyCode::End);
    assert_eq!(app.session_sel, 99);
    app.ingest(Vec::new(), many_sessions(10));
    assert_eq!(app.shown_sessions(), 10);
    assert!(app.selected_session().is_some());
    assert_on_screen(&render(&app, 80, 24), &["Sessions: 10 open"]);
    app.ingest(Vec::new(), Snapshot::default());
    assert!(app.selected_session().is_none());
    assert_on_screen(&render(&app, 80, 24), &["No WebSocket sessions yet."]);
}

// ---- Keys, pause, help, sizes ----

#[test]
fn keys_switch_views_and_open_help() {
    let mut app = test_app();
    assert_eq!(app.view, View::Overview);
    for expected in [View::Findings, View::Sessions, View::Latency, View::Overview] {
        press(&mut app, KeyCode::Tab);
        assert_eq!(app.view, expected);
    }
    press(&mut app, KeyCode::BackTab);
    assert_eq!(app.view, View::Latency);
    press(&mut app, KeyCode::Char('2'));
    assert_eq!(app.view, View::Findings);
    assert_on_screen(&render(&app, 80, 24), &["No findings so far."]);

    press(&mut app, KeyCode::Char('?'));
    assert!(app.help);
    let buf = render(&app, 80, 24);
    assert_on_screen(
        &buf,
        &["Keys (Esc closes)", "quit", "filter by path, address or kind", "sort column of the sessions table"],
    );
    // Keys other than Esc, ? and q do nothing under help.
    assert_eq!(press(&mut app, KeyCode::Char('3')), Action::None);
    assert_eq!(press(&mut app, KeyCode::Esc), Action::Redraw);
    assert!(!app.help);
    assert_eq!(press(&mut app, KeyCode::Char('q')), Action::Quit);
    assert_eq!(app.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)), Action::Quit);
}

#[test]
fn pause_holds_updates_until_resumed() {
    let mut app = test_app();
    app.ingest(Vec::new(), many_sessions(10));
    assert_eq!(press(&mut app, KeyCode::Char('p')), Action::Pause(true));
    assert_on_screen(&render(&app, 80, 24), &["PAUSED"]);
    assert!(!app.on_msg(UiMsg::Update(Box::new(feed::Update { records: vec![], snapshot: many_sessions(20) }))));
    assert_eq!(app.open_session_count(), 10, "the view holds while paused");
    assert_eq!(press(&mut app, KeyCode::Char('p')), Action::Pause(false));
    assert_eq!(app.open_session_count(), 20, "resuming applies what was held");
    assert!(!text(&render(&app, 80, 24)).contains("PAUSED"));
}

#[test]
fn every_view_fits_80x24_and_scales_up() {
    let mut app = findings_app();
    app.ingest(Vec::new(), many_sessions(50));
    for v in ['1', '2', '3', '4'] {
        press(&mut app, KeyCode::Char(v));
        for (w, h) in [(80, 24), (120, 40), (240, 70)] {
            let buf = render(&app, w, h);
            let l = lines(&buf);
            assert!(l[0].contains("1 Overview") && l[0].contains("4 Latency"), "tabs at {w}x{h}: {}", l[0]);
            assert!(l[h as usize - 1].contains("q quit"), "status line at {w}x{h}");
        }
    }
    // Too small: a notice instead of a broken layout.
    assert_on_screen(&render(&app, 30, 8), &["too small"]);
}

#[test]
fn the_source_and_its_state_show_in_the_header() {
    let mut app = App::new(Source { label: "demo.pcap".into(), kind: SourceKind::Replay(2.0) });
    assert_on_screen(&render(&app, 120, 24), &["demo.pcap · replay ×2"]);
    app.on_msg(UiMsg::Done(Ok(None)));
    assert_on_screen(&render(&app, 120, 24), &["demo.pcap · replayed"]);
    app.on_msg(UiMsg::Done(Err("read error".into())));
    assert_on_screen(&render(&app, 120, 24), &["failed", "error: read error"]);
}

#[test]
#[ignore = "prints screens for eyeballing: cargo test --test tui dump -- --ignored --nocapture"]
fn dump_screens() {
    let mut app = findings_app();
    app.ingest(Vec::new(), many_sessions(30));
    for keys in
        [&[KeyCode::Char('2')][..], &[KeyCode::Enter], &[KeyCode::Esc, KeyCode::Char('3')], &[KeyCode::Char('?')]]
    {
        for k in keys {
            press(&mut app, *k);
        }
        println!("{}\n", text(&render(&app, 80, 24)));
    }
}

// ---- Command line ----

fn wstap_tui(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_wstap"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run wstap")
}

#[test]
fn tui_errors_print_before_the_terminal_is_taken() {
    let out = wstap_tui(&["-r", "captures/no-such.pcap", "--tui"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such.pcap: No such file or directory"));
    // Not a terminal (a pipe): refuse rather than draw into it.
    let out = wstap_tui(&["-r", &capture("nginx-healthy.pcap"), "--tui"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tui needs a terminal"), "{out:?}");
    assert!(out.stdout.is_empty(), "nothing drawn into the pipe");
    let out = wstap_tui(&["-r", &capture("nginx-healthy.pcap"), "--tui", "--replay", "0"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid --replay 0"), "{out:?}");
}

#[test]
#[ignore = "timing report, not an assertion: cargo test --release --test tui timing -- --ignored --nocapture"]
fn timing_with_ten_thousand_sessions() {
    let mut app = test_app();
    let snaps: Vec<Snapshot> = (0..10)
        .map(|i| {
            let mut s = many_sessions(10_000);
            s.clock = Some(10_000.0 + i as f64);
            s
        })
        .collect();
    let t = std::time::Instant::now();
    for s in snaps {
        app.ingest(Vec::new(), s);
    }
    println!("apply 10k-session snapshot: {:?} each", t.elapsed() / 10);
    let mut term = Terminal::new(TestBackend::new(200, 60)).unwrap();
    let t = std::time::Instant::now();
    for _ in 0..100 {
        term.draw(|f| ui::draw(f, &app)).unwrap();
    }
    println!("render overview 200x60: {:?} per frame", t.elapsed() / 100);
    press(&mut app, KeyCode::Char('3'));
    let mut term = Terminal::new(TestBackend::new(200, 60)).unwrap();
    let t = std::time::Instant::now();
    for _ in 0..100 {
        press(&mut app, KeyCode::Down);
        term.draw(|f| ui::draw(f, &app)).unwrap();
    }
    println!("render sessions view 200x60: {:?} per frame", t.elapsed() / 100);
}

/// Live: Enter on an open session shows what is known while it lives
/// (its flows, frames, idle time against the boundary), and the detail
/// follows that session as later snapshots reorder the rows.
#[test]
fn an_open_sessions_detail_shows_it_live() {
    let mut app = test_app();
    app.ingest(Vec::new(), many_sessions(5));
    press(&mut app, KeyCode::Char('3'));
    let id = app.selected_session().unwrap().id;
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.mode, Mode::Detail);
    let buf = render(&app, 100, 40);
    assert_on_screen(
        &buf,
        &[&format!("Session #{id} "), "open for", "Client hop", "Upstream hop", "->192.0.2.1:443", "open, idle"],
    );
    assert_on_screen(&buf, &["60 s boundary (default)", "Findings (0)", "last frame so far"]);
    // A later snapshot with the sessions in another order: still that one.
    let mut snap = many_sessions(5);
    snap.sessions.reverse();
    app.ingest(Vec::new(), snap);
    assert_eq!(app.detail_session, Some(id));
    assert_on_screen(&render(&app, 100, 40), &[&format!("Session #{id} ")]);
}
