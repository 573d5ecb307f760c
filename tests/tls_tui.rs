//! The dashboard on decrypted TLS captures: the overview counts decrypted
//! TLS connections, and a finding's detail says each hop's TLS state.

use std::sync::mpsc;

use clap::Parser;
use crossterm::event::KeyCode;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use wstap::cli::Args;
use wstap::tui::app::{App, Mode, key};
use wstap::tui::feed::{self, FeedOptions, UiMsg};
use wstap::tui::ui;

fn app_with_keys(name: &str, keys: bool) -> App {
    let root = env!("CARGO_MANIFEST_DIR");
    let path = format!("{root}/captures/{name}.pcap");
    let kl = format!("{root}/captures/{name}.keys");
    let mut argv = vec!["wstap", "-r", &path, "--tui"];
    if keys {
        argv.extend(["--keylog", &kl]);
    }
    let args = Args::parse_from(argv);
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
fn overview_counts_decrypted_tls_connections() {
    let s = screen(&app_with_keys("nginx-tls13", true), 100, 30);
    assert!(s.contains("TLS 8/8 decrypted"), "{s}");
    let s = screen(&app_with_keys("nginx-tls13", false), 100, 30);
    assert!(s.contains("TLS 0/8 decrypted (no-key)"), "{s}");
}

#[test]
fn finding_detail_says_the_client_hop_was_decrypted() {
    let mut app = app_with_keys("nginx-tls-stripped", true);
    app.on_key(key(KeyCode::Char('2')));
    assert_eq!(app.selected_group().unwrap().kind.name(), "upgrade-stripped");
    app.on_key(key(KeyCode::Enter));
    assert_eq!(app.mode, Mode::Detail);
    let s = screen(&app, 200, 50);
    assert!(s.contains("TLS 1.3 TLS_AES_256_GCM_SHA384, SNI localhost, decrypted"), "{s}");
    assert!(s.contains("~ Connection: close"), "the mangled header on the upstream hop:\n{s}");
}
