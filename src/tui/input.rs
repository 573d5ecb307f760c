//! Input: a thread that reads terminal events and forwards them. The
//! signals (SIGINT, SIGTERM, SIGHUP) that must end the dashboard cleanly
//! rather than leave the terminal in raw mode are src/signal.rs's.
//!
//! The main loop, not the input thread, looks at the signal flag: when the
//! terminal hangs up (SIGHUP: the ssh session or the tmux pane is gone),
//! crossterm's reader can spin inside `poll` on the dead tty and never
//! return, so the input thread cannot be relied on to notice anything.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::thread::JoinHandle;
use std::time::Duration;

use crossterm::event;

use super::feed::UiMsg;

/// How often the input thread looks at the stop flag.
const POLL: Duration = Duration::from_millis(50);

/// The longest the main loop sleeps without looking at the signal flag.
pub const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// Starts the thread that forwards terminal events until `stop` is set or
/// the channel closes.
pub fn spawn(tx: Sender<UiMsg>, stop: Arc<AtomicBool>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name("wstap-input".into()).spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            let msg = match event::poll(POLL) {
                Ok(false) => continue,
                Ok(true) => match event::read() {
                    Ok(ev) => UiMsg::Input(ev),
                    Err(e) => UiMsg::InputError(e.to_string()),
                },
                Err(e) => UiMsg::InputError(e.to_string()),
            };
            let failed = matches!(msg, UiMsg::InputError(_));
            if tx.send(msg).is_err() || failed {
                return;
            }
        }
    })
}
