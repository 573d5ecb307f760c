//! The dashboard on the HTTP/2 captures: the overview counts h2
//! connections, streams and WebSocket streams; the sessions view lists each
//! stream as a session of its own.

use std::sync::mpsc;

use clap::Parser;
use crossterm::event::KeyCode;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use wstap::cli::Args;
use wstap::tui::app::{App, key};
use wstap::tui::feed::{self, FeedOptions, UiMsg};
use wstap::tui::ui;

fn app_with_keys(name: &str) -> App {
    app_numbered(name, 0, FeedOptions::default()).0
}

/// The dashboard on a capture whose packets are numbered from `first`
/// on (a sensor that has run that long: connection ids are packet
/// numbers); also the open sessions of every update, as text.
fn app_numbered(name: &str, first: u64, opts: FeedOptions) -> (App, Vec<String>) {
    let root = env!("CARGO_MANIFEST_DIR");
    let path = format!("{root}/captures/{name}.pcap");
    let kl = format!("{root}/captures/{name}.keys");
    let args = Args::parse_from(["wstap", "-r", &path, "--tui", "--keylog", &kl]);
    let mut p = wstap::app::build_pipeline(&args).unwrap();
    p.stats.packets = first;
    let input = wstap::config::Config::from_args(&args).unwrap().input;
    let (mut src, source) = feed::open_source(&input, None).unwrap();
    src.set_keys(p.keys().clone());
    let (_tx, rx) = mpsc::channel();
    let mut app = App::new(source);
    let mut open = Vec::new();
    feed::run(&mut p, src.as_mut(), &opts, &rx, &mut |m: UiMsg| {
        if let UiMsg::Update(u) = &m {
            open.push(format!("{:?}", u.snapshot.sessions));
        }
        app.on_msg(m);
        true
    });
    (app, open)
}

#[test]
fn streams_are_followed_the_same_after_four_billion_packets() {
    // A sensor left running numbers its connections past 2^32 within a
    // day on a busy link: a stream's connection must still be found (the
    // open stream sessions' activity is read from it, update by update).
    let every = FeedOptions { update_every: std::time::Duration::ZERO, ..FeedOptions::default() };
    let (one, open1) = app_numbered("haproxy-h2-idle", 0, every.clone());
    let (two, open2) = app_numbered("haproxy-h2-idle", (1 << 32) + 7, every);
    let h2 = |app: &App| screen(app, 120, 30).lines().find(|l| l.contains("HTTP/2")).map(str::to_string);
    assert!(h2(&one).unwrap().contains("1 conn  3 streams  3 WebSocket"), "{:?}", h2(&one));
    assert_eq!(h2(&one), h2(&two));
    assert!(open1.iter().any(|rows| rows.contains("client_stream: Some(")), "open streams shown along the way");
    assert_eq!(open1.len(), open2.len());
    if let Some(i) = (0..open1.len()).find(|&i| open1[i] != open2[i]) {
        panic!("update {i} of {}: the open sessions differ:\n{}\n{}", open1.len(), open1[i], open2[i]);
    }
}

fn screen(app: &App, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| ui::draw(f, app)).unwrap();
    let b = t.backend().buffer().clone();
    (0..h).map(|y| (0..w).map(|x| b[(x, y)].symbol()).collect::<String>()).collect::<Vec<_>>().join("\n")
}

#[test]
fn overview_counts_h2_connections_streams_and_websocket_streams() {
    let s = screen(&app_with_keys("haproxy-h2-idle"), 120, 30);
    assert!(s.contains("HTTP/2      1 conn  3 streams  3 WebSocket"), "{s}");
    assert!(s.contains("Time "), "every traffic line still fits:\n{s}");
}

#[test]
fn sessions_view_lists_each_stream_as_a_session() {
    let mut app = app_with_keys("haproxy-h2-idle");
    app.on_key(key(KeyCode::Char('3')));
    let s = screen(&app, 200, 30);
    for id in ["#1", "#3", "#5"] {
        assert!(s.contains(&format!(":18604 {id}")), "stream {id} as a session:\n{s}");
    }
}
