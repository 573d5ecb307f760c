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
    let root = env!("CARGO_MANIFEST_DIR");
    let path = format!("{root}/captures/{name}.pcap");
    let kl = format!("{root}/captures/{name}.keys");
    let args = Args::parse_from(["wstap", "-r", &path, "--tui", "--keylog", &kl]);
    let mut p = wstap::app::build_pipeline(&args).unwrap();
    let input = wstap::config::Config::from_args(&args).unwrap().input;
    let (mut src, source) = feed::open_source(&input, None).unwrap();
    src.set_keys(p.keys().clone());
    let (_tx, rx) = mpsc::channel();
    let mut app = App::new(source);
    feed::run(&mut p, src.as_mut(), &FeedOptions::default(), &rx, &mut |m: UiMsg| {
        app.on_msg(m);
        true
    });
    app
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
