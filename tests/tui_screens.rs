//! Whole dashboard screens, snapshot-tested (insta with ratatui's
//! `TestBackend`, as bandwhich does): each view of a bundled capture,
//! the finding and session details, after keys and mouse events. The
//! snapshots (tests/snapshots/) are what a user sees, character for
//! character; a change to any screen shows as a diff to review. Beside
//! them, assertions of what the features must do: the session detail,
//! reverse sort, the mouse, tab labels, the boundary worded as the text
//! output words it, exports, the live summary.

mod common;

use std::sync::mpsc;

use clap::Parser;
use crossterm::event::{KeyCode, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use wstap::cli::Args;
use wstap::tui::app::{Action, App, Mode, View, key};
use wstap::tui::feed::{self, Control, FeedOptions, UiMsg};
use wstap::tui::ui;

fn capture(name: &str) -> String {
    format!("{}/captures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The worker loop over a capture, synchronously, into an App.
fn app_from(name: &str) -> App {
    app_with(name, &[])
}

fn app_with(name: &str, extra: &[&str]) -> App {
    common::pin_utc();
    let path = capture(name);
    let mut argv = vec!["wstap", "-r", &path, "--tui"];
    argv.extend_from_slice(extra);
    let args = Args::parse_from(argv);
    let mut p = wstap::app::build_pipeline(&args).unwrap();
    let input = wstap::config::Config::from_args(&args).unwrap().input;
    let (mut src, source) = feed::open_source(&input, None).unwrap();
    let (_ctl_tx, ctl_rx) = mpsc::channel();
    let mut app = App::new(source);
    app.capture_file = Some(path);
    feed::run(&mut p, src.as_mut(), &FeedOptions::default(), &ctl_rx, &mut |m| {
        app.on_msg(m);
        true
    });
    app
}

fn screen(app: &App, w: u16, h: u16) -> String {
    common::pin_utc();
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| ui::draw(f, app)).unwrap();
    let buf = t.backend().buffer().clone();
    let a = buf.area;
    (0..a.height)
        .map(|y| (0..a.width).map(|x| buf[(x, y)].symbol()).collect::<String>().trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn press(app: &mut App, code: KeyCode) -> Action {
    app.on_key(key(code))
}

fn mouse(app: &mut App, kind: MouseEventKind, column: u16, row: u16) -> Action {
    app.on_mouse(MouseEvent { kind, column, row, modifiers: KeyModifiers::NONE })
}

/// Where `needle` is on a rendered screen (column, row).
fn find(s: &str, needle: &str) -> Option<(u16, u16)> {
    s.lines().enumerate().find_map(|(y, l)| l.find(needle).map(|b| (l[..b].chars().count() as u16, y as u16)))
}

#[test]
fn every_view_of_an_idle_timeout_capture() {
    let mut app = app_from("nginx-idle-60.pcap");
    insta::assert_snapshot!("idle60_overview", screen(&app, 100, 28));
    press(&mut app, KeyCode::Char('2'));
    insta::assert_snapshot!("idle60_findings", screen(&app, 100, 28));
    press(&mut app, KeyCode::Enter);
    insta::assert_snapshot!("idle60_finding_detail", screen(&app, 100, 34));
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Char('3'));
    insta::assert_snapshot!("idle60_sessions", screen(&app, 100, 28));
    press(&mut app, KeyCode::Enter);
    insta::assert_snapshot!("idle60_session_detail", screen(&app, 100, 40));
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Char('4'));
    insta::assert_snapshot!("idle60_latency", screen(&app, 100, 28));
    press(&mut app, KeyCode::Char('?'));
    insta::assert_snapshot!("idle60_help", screen(&app, 100, 28));
}

#[test]
fn screens_of_a_stripped_upgrade_and_a_healthy_capture() {
    let mut app = app_from("nginx-wrong-location.pcap");
    press(&mut app, KeyCode::Char('2'));
    press(&mut app, KeyCode::Enter);
    insta::assert_snapshot!("wrong_location_finding_detail", screen(&app, 100, 40));
    let mut app = app_from("nginx-healthy.pcap");
    press(&mut app, KeyCode::Char('3'));
    press(&mut app, KeyCode::Enter);
    insta::assert_snapshot!("healthy_session_detail", screen(&app, 80, 36));
}

/// The dashboard names the idle boundary in the words the text output's
/// finding uses ("a 60 s boundary"), not the 59.9 s it learned.
#[test]
fn the_boundary_is_worded_as_the_text_output_words_it() {
    let mut app = app_from("nginx-idle-60.pcap");
    let text = String::from_utf8(
        std::process::Command::new(env!("CARGO_BIN_EXE_wstap"))
            .args(["-r", &capture("nginx-idle-60.pcap")])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(text.contains("at a 60 s boundary"), "{text}");
    assert!(screen(&app, 100, 28).contains("60 s boundary (known)"));
    press(&mut app, KeyCode::Char('3'));
    let s = screen(&app, 100, 28);
    assert!(s.contains("· 60 s boundary (known)"), "{s}");
    let title = s.lines().nth(1).unwrap();
    assert!(!title.contains("59.9") && !title.contains("timeout"), "{title}");
}

/// Enter on a session: both hops, the timeline, the close and the finding
/// it belongs to.
#[test]
fn session_detail_has_both_hops_the_timeline_the_close_and_its_finding() {
    let mut app = app_from("nginx-idle-60.pcap");
    press(&mut app, KeyCode::Char('3'));
    // The first row (longest idle) is a session nginx cut.
    let id = app.selected_session().unwrap().id;
    assert_eq!(press(&mut app, KeyCode::Enter), Action::Redraw);
    assert_eq!((app.view, app.mode, app.detail_session), (View::Sessions, Mode::Detail, Some(id)));
    let s = screen(&app, 100, 44);
    for want in [
        &format!("Session #{id} /ws"),
        "Client hop",
        "Upstream hop",
        "->127.0.0.1:18088",
        "->127.0.0.1:13008",
        "handshake    101 in",
        "community id 1:",
        "Timeline",
        "GET /ws on the client hop",
        "101 on the upstream hop",
        "upgraded: frames from here",
        "last frame on the client hop",
        "FIN by its",
        "session ended",
        "Close",
        "fin by proxy after",
        "60 s boundary (known)",
        "Findings (1)",
        "idle-timeout-close",
    ] {
        assert!(s.contains(want), "{want:?} not in:\n{s}");
    }
    // The timeline is in time order.
    let at = |n: &str| find(&s, n).unwrap_or_else(|| panic!("{n}")).1;
    assert!(at("GET /ws on the client hop") < at("upgraded: frames from here"));
    assert!(at("last frame on the client hop") < at("session ended"));
    // Esc goes back to the list, on the same session.
    press(&mut app, KeyCode::Esc);
    assert_eq!((app.mode, app.selected_session().map(|s| s.id)), (Mode::Browse, Some(id)));
    // A session that closed cleanly has no finding.
    let mut app = app_from("nginx-healthy.pcap");
    press(&mut app, KeyCode::Char('3'));
    press(&mut app, KeyCode::Enter);
    let s = screen(&app, 100, 44);
    assert!(s.contains("close 1000 \"bye\" by client") && s.contains("Findings (0)"), "{s}");
    assert!(s.contains("close frames 1000 both ways"), "{s}");
}

/// With `-v` the timeline has the frames themselves, on both hops, in
/// time order with the rest; without it, it says how to get them.
/// The session detail names what joins it to nginx's access log, as the
/// text output does: the client address and port, the request ids, whole
/// (the line wraps rather than cutting an id).
#[test]
fn session_detail_names_the_remote_address_and_request_ids() {
    let mut app = app_from("nginx-request-id.pcap");
    press(&mut app, KeyCode::Char('3'));
    press(&mut app, KeyCode::Enter);
    let id = app.detail_session.unwrap();
    let s = screen(&app, 80, 40);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wstap"))
        .args(["-r", &capture("nginx-request-id.pcap")])
        .env("TZ", "UTC")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text.lines().find(|l| l.contains(&format!("session #{id} "))).unwrap();
    let (_, ids) = line.rsplit_once(" | ").unwrap();
    let flat: String = s.lines().map(str::trim_end).collect::<Vec<_>>().join(" ");
    let remote = line.split(' ').nth(4).unwrap().split("->").next().unwrap();
    assert!(flat.contains(&format!("remote {remote}, {ids}")), "{remote}, {ids} not in:\n{s}");
    assert!(s.contains("Client hop") && s.contains("Timeline"), "{s}");
}

#[test]
fn with_v_the_timeline_has_every_frame() {
    let mut app = app_with("nginx-healthy.pcap", &["-v"]);
    press(&mut app, KeyCode::Char('3'));
    press(&mut app, KeyCode::Enter);
    let s = screen(&app, 100, 60);
    let frames: Vec<&str> =
        s.lines().filter(|l| l.contains(" to server on the ") || l.contains(" to client on the ")).collect();
    // 5 frames each way on each hop (the session record says so).
    assert_eq!(frames.len(), 20, "{s}");
    assert!(s.contains("text 11B to server on the client hop"), "{s}");
    assert!(s.contains("close 5B to server on the upstream hop, code 1000 \"bye\""), "{s}");
    assert!(!s.contains("run the dashboard with -v"));
    let at = |n: &str| s.lines().position(|l| l.contains(n)).unwrap_or_else(|| panic!("{n}"));
    assert!(at("upgraded: frames from here") < at("text 11B to server on the client hop"));
    assert!(at("close 5B to server on the client hop") < at("session ended"));
    insta::assert_snapshot!("healthy_session_detail_v", s);
    let mut app = app_from("nginx-healthy.pcap");
    press(&mut app, KeyCode::Char('3'));
    press(&mut app, KeyCode::Enter);
    assert!(screen(&app, 100, 60).contains("(frames one by one: run the dashboard with -v)"));
}

/// `r` reverses the sessions' sort and the findings' order; the header's
/// arrow and the title say so.
#[test]
fn r_reverses_the_sort() {
    let mut app = app_from("nginx-idle-60.pcap");
    press(&mut app, KeyCode::Char('3'));
    let ids = |app: &App| (0..app.shown_sessions()).map(|i| app.shown_session(i).unwrap().id).collect::<Vec<_>>();
    let before = ids(&app);
    assert!(screen(&app, 100, 28).contains("Idle▼"));
    press(&mut app, KeyCode::Char('r'));
    let mut rev = ids(&app);
    rev.reverse();
    assert_eq!(rev, before, "the same rows, the other way round");
    let s = screen(&app, 100, 28);
    assert!(s.contains("Idle▲") && s.contains("sort idle reversed"), "{s}");
    let mut app = app_from("nginx-mass-close.pcap");
    press(&mut app, KeyCode::Char('2'));
    let first = app.selected_group().map(|g| g.last_ts);
    assert!(screen(&app, 100, 28).contains("newest last"));
    press(&mut app, KeyCode::Char('r'));
    assert!(screen(&app, 100, 28).contains("newest first"));
    app.finding_sel = 0;
    let last = app.groups.iter().map(|g| g.last_ts).fold(f64::MIN, f64::max);
    assert_eq!(app.selected_group().map(|g| g.last_ts), Some(last), "newest first after r (was {first:?})");
}

/// The mouse: a click on a tab opens it, on a row selects it, on the
/// selected row opens its detail; the wheel moves the selection.
#[test]
fn mouse_selects_scrolls_and_opens() {
    let mut app = app_from("nginx-idle-60.pcap");
    let s = screen(&app, 100, 28);
    let (x, y) = find(&s, "Sessions (0 open)").unwrap();
    assert_eq!(mouse(&mut app, MouseEventKind::Down(MouseButton::Left), x + 2, y), Action::Redraw);
    assert_eq!(app.view, View::Sessions);
    let s = screen(&app, 100, 28);
    let third = s.lines().filter(|l| l.contains("/ws")).nth(2).unwrap().to_string();
    let (_, row) = find(&s, &third[..30]).unwrap();
    mouse(&mut app, MouseEventKind::Down(MouseButton::Left), 5, row);
    assert_eq!(app.session_sel, 2, "the clicked row is selected");
    assert_eq!(app.mode, Mode::Browse);
    mouse(&mut app, MouseEventKind::ScrollUp, 5, row);
    assert_eq!(app.session_sel, 0, "the wheel moves the selection (bounded)");
    mouse(&mut app, MouseEventKind::ScrollDown, 5, row);
    assert_eq!(app.session_sel, 3);
    let _ = screen(&app, 100, 28);
    let (_, row) = find(&screen(&app, 100, 28), &third[..30]).unwrap();
    mouse(&mut app, MouseEventKind::Down(MouseButton::Left), 5, row + 1);
    assert_eq!(app.mode, Mode::Detail, "a click on the selected row opens it");
    // A click outside any row does nothing.
    let mut app = app_from("nginx-idle-60.pcap");
    let _ = screen(&app, 100, 28);
    assert_eq!(mouse(&mut app, MouseEventKind::Down(MouseButton::Left), 50, 20), Action::None);
}

/// Tabs: the hotkey, the name, then what it counts in parentheses.
#[test]
fn tab_labels_separate_the_hotkey_from_the_count() {
    let app = app_from("nginx-idle-60.pcap");
    let s = screen(&app, 100, 28);
    let top = s.lines().next().unwrap();
    assert!(top.contains(" 1 Overview  2 Findings (3)  3 Sessions (0 open)  4 Latency "), "{top}");
}

/// `e` writes the selected session (its handshake, its record, its
/// finding) or finding as JSON Lines; `w` a pcap of its connections that
/// wstap reads back as the same session.
#[test]
fn export_a_session_and_a_finding() {
    let dir = common::Scratch::new("export-session");
    let mut app = app_from("nginx-idle-60.pcap");
    app.export_dir = dir.to_path_buf();
    press(&mut app, KeyCode::Char('3'));
    let sel = app.selected_session().unwrap().clone();
    press(&mut app, KeyCode::Char('e'));
    let msg = app.message.clone().unwrap();
    assert!(msg.starts_with("wrote ") && msg.contains("(3 records)"), "{msg}");
    assert!(screen(&app, 100, 28).contains("wrote "), "the status bar says where");
    let json = std::fs::read_to_string(dir.join(format!("wstap-session-{}.jsonl", sel.id))).unwrap();
    let recs: Vec<serde_json::Value> = json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let types: Vec<&str> = recs.iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["handshake", "session", "finding"]);
    assert_eq!(recs[1]["id"], sel.id);
    assert_eq!(recs[2]["kind"], "idle-timeout-close");
    assert_eq!(recs[2]["detail"]["session"], sel.id);
    // Again: a new file, never the old one replaced.
    press(&mut app, KeyCode::Char('e'));
    assert!(dir.join(format!("wstap-session-{}-2.jsonl", sel.id)).exists());

    press(&mut app, KeyCode::Char('w'));
    let msg = app.message.clone().unwrap();
    assert!(msg.contains("packets of 2 connections"), "{msg}");
    let pcap = dir.join(format!("wstap-session-{}.pcap", sel.id));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wstap"))
        .args(["-r", pcap.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    let rs: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let sessions: Vec<&serde_json::Value> = rs.iter().filter(|r| r["type"] == "session").collect();
    assert_eq!(sessions.len(), 1, "just that session's connections");
    assert_eq!(sessions[0]["client_flow"], recs[1]["client_flow"]);
    assert_eq!(sessions[0]["upstream_flow"], recs[1]["upstream_flow"]);
    assert_eq!(rs.iter().filter(|r| r["kind"] == "idle-timeout-close").count(), 1, "and its finding again");

    // A finding, from the Findings list.
    let dir = common::Scratch::new("export-finding");
    let mut app = app_from("nginx-wrong-location.pcap");
    app.export_dir = dir.to_path_buf();
    press(&mut app, KeyCode::Char('2'));
    press(&mut app, KeyCode::Char('e'));
    let f = app.selected_group().unwrap().latest().unwrap().clone();
    let path = dir.join(format!("wstap-finding-{}-{}.jsonl", f.fault, f.kind.name()));
    let json = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}; {:?}", path.display(), app.message));
    assert!(json.lines().any(|l| l.contains("\"type\":\"finding\"") && l.contains(f.kind.name())));
    assert!(json.lines().next().unwrap().contains("\"type\":\"handshake\""), "its handshake first");
    // Live (no capture file): a pcap cannot be made, and it says why.
    app.capture_file = None;
    press(&mut app, KeyCode::Char('w'));
    assert!(app.message.as_deref().unwrap().contains("or live the -w file"), "{:?}", app.message);
}

/// Live: on `q` the worker ends every connection and sends the final
/// summary, which the dashboard leaves on screen.
#[test]
fn quitting_a_live_dashboard_leaves_the_final_summary() {
    common::pin_utc();
    let path = capture("nginx-idle-60.pcap");
    let args = Args::parse_from(["wstap", "-r", &path, "--tui"]);
    let input = wstap::config::Config::from_args(&args).unwrap().input;
    for finish_on_quit in [true, false] {
        let mut p = wstap::app::build_pipeline(&args).unwrap();
        let (mut src, source) = feed::open_source(&input, None).unwrap();
        let (ctl_tx, ctl_rx) = mpsc::channel();
        ctl_tx.send(Control::Quit).unwrap();
        let mut app = App::new(source);
        let mut done = false;
        let opts = FeedOptions { finish_on_quit, ..FeedOptions::default() };
        feed::run(&mut p, src.as_mut(), &opts, &ctl_rx, &mut |m| {
            done |= matches!(m, UiMsg::Done(_));
            app.on_msg(m);
            true
        });
        assert_eq!(done, finish_on_quit);
        if finish_on_quit {
            let s = &app.snap.summary;
            assert!(s.packets > 0 && s.packets < 132, "stopped part-way: {} packets", s.packets);
            let text = wstap::tui::final_summary(&app);
            assert!(text.starts_with("wstap: live capture on nginx-idle-60.pcap stopped\n"), "{text}");
            assert!(text.contains(&format!("{} packets", s.packets)), "{text}");
            assert!(text.contains("WebSocket handshake"), "{text}");
        }
    }
}

/// The detail of an HTTP/2 stream's session (RFC 8441) and of one behind
/// a TLS front without keys: what each hop is, said plainly.
#[test]
fn session_detail_of_an_h2_stream_and_of_an_encrypted_client_hop() {
    let keys = capture("haproxy-h2.keys");
    let mut app = app_with("haproxy-h2.pcap", &["--keylog", &keys]);
    press(&mut app, KeyCode::Char('3'));
    press(&mut app, KeyCode::Enter);
    let s = screen(&app, 100, 44);
    for want in ["HTTP/2 stream", "handshake    200 in", "handshake    101 in", "TLS 1.3 decrypted", "x-request-id "] {
        assert!(s.contains(want), "{want:?} not in:\n{s}");
    }
    let mut app = app_from("nginx-tls-busy.pcap");
    press(&mut app, KeyCode::Char('3'));
    press(&mut app, KeyCode::Enter);
    let s = screen(&app, 100, 44);
    for want in
        ["encrypted, not read", "TLS 1.2 not decrypted", "handshake    101 in", "encrypted request on the client hop"]
    {
        assert!(s.contains(want), "{want:?} not in:\n{s}");
    }
}

/// Live, `w` reads the `-w` file while it is being written: a last packet
/// cut half-way ends the read there (it is still being written), where
/// a capture file cut the same way is an error.
#[test]
fn a_pcap_export_from_a_growing_file_stops_at_its_last_whole_packet() {
    let dir = common::Scratch::new("export-growing");
    let src = std::fs::read(capture("nginx-healthy.pcap")).unwrap();
    let cut = dir.join("being-written.pcap");
    std::fs::write(&cut, &src[..src.len() - 20]).unwrap();
    let app = app_from("nginx-healthy.pcap");
    let flows: Vec<_> = app.shown_session(0).map(|s| s.flows.clone()).unwrap();
    let whole =
        wstap::tui::export::write_pcap(&capture("nginx-healthy.pcap"), &flows, &dir.join("a.pcap"), false).unwrap();
    let cut = cut.to_str().unwrap();
    let growing = wstap::tui::export::write_pcap(cut, &flows, &dir.join("b.pcap"), true).unwrap();
    assert!(growing > 0 && growing <= whole, "{growing} of {whole}");
    assert!(wstap::tui::export::write_pcap(cut, &flows, &dir.join("c.pcap"), false).is_err());
}
