//! Input: a thread that reads terminal events and forwards them, and the
//! signals (SIGINT, SIGTERM, SIGHUP) that must end the dashboard cleanly
//! rather than leave the terminal in raw mode.
//!
//! The main loop, not the input thread, looks at the signal flag: when the
//! terminal hangs up (SIGHUP: the ssh session or the tmux pane is gone),
//! crossterm's reader can spin inside `poll` on the dead tty and never
//! return, so the input thread cannot be relied on to notice anything.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::mpsc::Sender;
use std::thread::JoinHandle;
use std::time::Duration;

use crossterm::event;

use super::feed::UiMsg;

/// The last signal received, 0 when none.
static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    SIGNAL.store(sig, Ordering::SeqCst);
}

/// Routes SIGINT, SIGTERM and SIGHUP to a flag the input thread checks.
/// (In raw mode Ctrl-C arrives as a key; SIGINT can still come from
/// `kill`.) SIGWINCH is crossterm's: it becomes a resize event.
pub fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: `sigaction` with a zeroed struct, an empty mask and a
        // handler that only stores to an atomic.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = libc::SA_RESTART;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// The signal received since the last call, if any (the main loop asks
/// at least every `SIGNAL_CHECK`).
pub fn take_signal() -> Option<i32> {
    match SIGNAL.swap(0, Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

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
