//! The dashboard's times are the text output's: local time of the TZ
//! environment's zone, as tcpdump's. A process of its own (one test), so
//! it can set a zone other than the UTC every other dashboard test pins.

use std::process::Command;
use std::sync::mpsc;

use clap::Parser;
use crossterm::event::KeyCode;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use wstap::cli::Args;
use wstap::tui::app::{App, key};
use wstap::tui::feed::{self, FeedOptions};
use wstap::tui::ui;

/// India's zone as a POSIX TZ string (no tzdata needed): UTC+05:30, no
/// daylight saving, a half-hour offset that no UTC time can pass for.
const ZONE: &str = "IST-5:30";

fn screen(app: &App) -> String {
    let mut t = Terminal::new(TestBackend::new(120, 44)).unwrap();
    t.draw(|f| ui::draw(f, app)).unwrap();
    let buf = t.backend().buffer().clone();
    (0..buf.area.height)
        .map(|y| (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The text output's time of the line that starts with `what` (after its
/// stamp), cut to milliseconds as the dashboard shows it.
fn text_time(lines: &str, what: &str) -> String {
    let line = lines
        .lines()
        .find(|l| l.split_once(' ').is_some_and(|(_, rest)| rest.starts_with(what)))
        .unwrap_or_else(|| panic!("no {what:?} line in:\n{lines}"));
    line[..12].to_string()
}

#[test]
fn dashboard_times_are_the_text_lines_local_times() {
    // SAFETY: the only test of this process; set before any time is formatted.
    unsafe { std::env::set_var("TZ", ZONE) };
    unsafe extern "C" {
        fn tzset();
    }
    // SAFETY: tzset re-reads TZ; no other thread exists that reads it.
    unsafe { tzset() };

    let path = format!("{}/captures/nginx-idle-60.pcap", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO_BIN_EXE_wstap")).args(["-r", &path]).env("TZ", ZONE).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let utc = Command::new(env!("CARGO_BIN_EXE_wstap")).args(["-r", &path]).env("TZ", "UTC").output().unwrap();
    let utc = String::from_utf8(utc.stdout).unwrap();
    let handshake = text_time(&text, "handshake #4 ");
    assert_ne!(handshake, text_time(&utc, "handshake #4 "), "the zone moves the text time");
    let finding = text_time(&text, "ERROR idle-timeout-close");

    let args = Args::parse_from(["wstap", "-r", &path, "--tui"]);
    let mut p = wstap::app::build_pipeline(&args).unwrap();
    let input = wstap::config::Config::from_args(&args).unwrap().input;
    let (mut src, source) = feed::open_source(&input, None).unwrap();
    let (_ctl, ctl_rx) = mpsc::channel();
    let mut app = App::new(source);
    feed::run(&mut p, src.as_mut(), &FeedOptions::default(), &ctl_rx, &mut |m| {
        app.on_msg(m);
        true
    });

    // The findings list: the first occurrence's time (the text's line) is
    // shown once the group opens on it.
    app.on_key(key(KeyCode::Char('2')));
    app.on_key(key(KeyCode::Enter));
    for _ in 0..3 {
        app.on_key(key(KeyCode::Left));
    }
    let s = screen(&app);
    assert!(s.contains(&format!("at {finding}")), "{finding} not on:\n{s}");

    // A session's timeline: its request on the client hop at the text
    // line's time of its handshake.
    app.on_key(key(KeyCode::Esc));
    app.on_key(key(KeyCode::Char('3')));
    let want = format!("{handshake}      +0ms GET /ws on the client hop");
    let mut seen = Vec::new();
    for _ in 0..4 {
        app.on_key(key(KeyCode::Enter));
        let s = screen(&app);
        if s.contains(&want) {
            return;
        }
        seen.push(s);
        app.on_key(key(KeyCode::Esc));
        app.on_key(key(KeyCode::Down));
    }
    panic!("{want:?} in no session's detail:\n{}", seen.join("\n"));
}
