//! Terminal dashboard (`wstap --tui`, issue #5), in the spirit of htop,
//! k9s and termshark.
//!
//! Threads and ownership (bottom's pattern): the worker (feed.rs) owns the
//! pipeline and the packet source; the input thread (input.rs) reads keys
//! and resizes; both send [`feed::UiMsg`] on one channel. The main thread
//! alone owns the [`app::App`] state and the terminal: it applies messages,
//! maps keys to actions, and redraws at most 10 times a second, only when
//! something changed. Rendering (ui.rs, views/) reads `&App`.
//!
//! The terminal is restored on every way out: a guard on return, a panic
//! hook before the panic message, and SIGINT/SIGTERM/SIGHUP turned into a
//! clean exit (the main loop looks at the signal flag at least every
//! 100 ms, whatever the other threads are doing).

pub mod app;
pub mod export;
pub mod feed;
pub mod input;
pub mod keys;
pub mod rows;
pub mod ui;
pub mod views;

use std::io::{IsTerminal, Stdout};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use crossterm::event::Event;
use crossterm::terminal::{EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

use self::app::{Action, App};
use self::feed::{Control, FeedOptions, SourceKind, UiMsg};
use crate::capture::Input;
use crate::config::Dashboard;
use crate::error::{Error, Result};
use crate::pipeline::Pipeline;

/// Minimum time between two frames.
pub const FRAME: Duration = Duration::from_millis(100);

/// Set by the panic hook: a thread panicked, leave now.
static PANICKED: AtomicBool = AtomicBool::new(false);

pub fn run(input: &Input, cfg: &Dashboard, p: Pipeline, beside: Vec<Box<dyn crate::sink::Sink + Send>>) -> Result<i32> {
    // Open the source first: a missing file or a bad filter prints as
    // usual, before the terminal is taken over.
    let (mut src, source) = feed::open_source(input, cfg.replay)?;
    src.set_keys(p.keys().clone());
    if let Input::File(file) = input {
        // The file is open: parse it with no privilege (live capture has
        // dropped them once its device was open; capture/privs.rs).
        crate::capture::privs::apply(&file.plan)?;
    }
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(Error::new("--tui needs a terminal (use --json or the text output in pipes)"));
    }
    let live = source.kind == SourceKind::Live;
    // The file a pcap export reads again: the capture file (not standard
    // input), or live the `-w` file being written (one file, not a ring).
    let capture_file = match input {
        Input::File(file) if file.path != "-" => Some(file.path.clone()),
        Input::Live(cfg) => {
            cfg.write.as_ref().filter(|w| w.size_limit.is_none() && w.interval.is_none()).map(|w| w.template.clone())
        }
        _ => None,
    };
    let opts = FeedOptions {
        replay: match source.kind {
            SourceKind::Replay(s) => Some(s),
            _ => None,
        },
        finish_on_quit: live,
        ..FeedOptions::default()
    };
    let replaying = opts.replay.is_some();
    // A live source closes its -w file when the worker drops it: give it
    // time to, on the way out.
    let worker_grace = Duration::from_millis(if source.kind == SourceKind::Live { 3000 } else { 300 });

    crate::signal::install_dashboard()?;
    install_panic_hook();
    let guard = TerminalGuard::enter()?;
    let mut terminal = Terminal::new(CrosstermBackend::new(std::io::stdout()))?;
    terminal.clear()?;

    let (tx, rx) = std::sync::mpsc::channel();
    let (worker, ctl) = feed::spawn(p, src, opts, tx.clone(), beside)?;
    let stop = Arc::new(AtomicBool::new(false));
    let input = input::spawn(tx, stop.clone()).map_err(|e| Error::new(format!("cannot read the terminal: {e}")))?;

    let mut app = App::new(source);
    app.capture_file = capture_file;
    let outcome = event_loop(&mut terminal, &mut app, &rx, &ctl, replaying);

    // Leave: ask both threads to stop and give them a moment, then give
    // the terminal back. A thread still running (the input thread stuck on
    // a hung-up terminal) ends with the process.
    stop.store(true, Ordering::SeqCst);
    let _ = ctl.send(Control::Quit);
    let t0 = Instant::now();
    // Live: the worker ends every connection and sends the final summary,
    // which stays on the screen after the dashboard (below).
    if live && app.feed == app::FeedState::Running {
        while let Ok(msg) = rx.recv_timeout(worker_grace.saturating_sub(t0.elapsed())) {
            if matches!(msg, UiMsg::Done(_)) {
                break;
            }
            app.on_msg(msg);
        }
    }
    drop(rx);
    let waiting = || {
        let t = t0.elapsed();
        (!input.is_finished() && t < Duration::from_millis(300)) || (!worker.is_finished() && t < worker_grace)
    };
    while waiting() {
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(terminal);
    drop(guard);
    if live && outcome.is_ok() {
        print!("{}", final_summary(&app));
    }
    // `--fail-on` holds for the dashboard too: quitting normally exits 1
    // when findings at or above the level were shown.
    outcome.map(|status| if status == 0 { fail_on_status(cfg, &app) } else { status })
}

/// What a live dashboard leaves on the screen after `q`: the interface,
/// then the summary as the text output ends with it.
pub fn final_summary(app: &App) -> String {
    let mut s = format!("wstap: live capture on {} stopped\n", app.source.label);
    s += &crate::sink::text::SummaryText(&app.snap.summary).to_string();
    s
}

fn fail_on_status(cfg: &Dashboard, app: &App) -> i32 {
    crate::record::exit_status(crate::app::fail_level(cfg.fail_on), app.kind_severity.values().max().copied())
}

/// Applies messages and keys until quit; returns the exit status.
fn event_loop(
    terminal: &mut Terminal<CrosstermBackend<Stdout>>,
    app: &mut App,
    rx: &Receiver<UiMsg>,
    ctl: &Sender<Control>,
    replaying: bool,
) -> Result<i32> {
    let mut dirty = true;
    let mut last_draw: Option<Instant> = None;
    loop {
        if PANICKED.load(Ordering::SeqCst) {
            return Err(Error::new("internal error (panic) in the dashboard; see the message above"));
        }
        if let Some(sig) = crate::signal::take() {
            return Ok(128 + sig);
        }
        let since = last_draw.map_or(FRAME, |t| t.elapsed());
        if dirty && since >= FRAME {
            terminal.draw(|f| ui::draw(f, app))?;
            last_draw = Some(Instant::now());
            dirty = false;
        }
        // Sleep until a message comes, or until the next frame is allowed
        // when one is waiting to be drawn.
        let timeout = if dirty { FRAME.saturating_sub(since) } else { input::SIGNAL_CHECK };
        let first = match rx.recv_timeout(timeout) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return Ok(0),
        };
        // Take what is queued too (bounded, so input is never starved).
        for msg in std::iter::once(first).chain(rx.try_iter().take(256)) {
            match msg {
                UiMsg::Input(Event::Key(k)) => match app.on_key(k) {
                    Action::None => {}
                    Action::Redraw => dirty = true,
                    Action::Quit => return Ok(0),
                    Action::Pause(paused) => {
                        if replaying {
                            let _ = ctl.send(Control::Pause(paused));
                        }
                        dirty = true;
                    }
                },
                UiMsg::Input(Event::Mouse(m)) => match app.on_mouse(m) {
                    Action::None => {}
                    Action::Quit => return Ok(0),
                    _ => dirty = true,
                },
                UiMsg::Input(Event::Resize(..)) => {
                    terminal.autoresize()?;
                    dirty = true;
                }
                UiMsg::Input(_) => {}
                UiMsg::InputError(e) => return Err(Error::new(format!("cannot read the terminal: {e}"))),
                other => dirty |= app.on_msg(other),
            }
        }
    }
}

/// Raw mode and the alternate screen while alive; restored on drop.
struct TerminalGuard;

impl TerminalGuard {
    fn enter() -> Result<TerminalGuard> {
        // The guard exists before the first change, so a failure half-way
        // still restores.
        let guard = TerminalGuard;
        enable_raw_mode()?;
        crossterm::execute!(
            std::io::stdout(),
            EnterAlternateScreen,
            crossterm::event::EnableMouseCapture,
            crossterm::cursor::Hide
        )?;
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Leaves the alternate screen, shows the cursor, ends raw mode. Safe to
/// call more than once.
pub fn restore_terminal() {
    let _ = crossterm::execute!(
        std::io::stdout(),
        crossterm::event::DisableMouseCapture,
        LeaveAlternateScreen,
        crossterm::cursor::Show
    );
    let _ = disable_raw_mode();
}

/// Restores the terminal before the panic message prints, so it is
/// readable and the shell works; then tells the main loop to leave.
fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        PANICKED.store(true, Ordering::SeqCst);
        previous(info);
    }));
}
