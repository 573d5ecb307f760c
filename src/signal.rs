//! Signals, one module for the two ways a run reacts to them. The handlers
//! are signal-hook's (SA_RESTART, so a write blocked on a slow terminal or
//! pipe resumes rather than fails); what they do is store to an atomic, or
//! `_exit`, both async-signal-safe.
//!
//! - A capture run on the command line ([`install_stop`]): the first
//!   SIGINT or SIGTERM asks for a clean stop (the capture thread sees
//!   [`stop_requested`] within its poll timeout, the `-w` file is closed,
//!   open sessions and the summary are flushed); a second one exits at
//!   once with status 128 + the signal, as an impatient operator expects.
//! - The dashboard ([`install_dashboard`]): SIGINT, SIGTERM and SIGHUP
//!   (the ssh session or the tmux pane is gone) end it cleanly, the
//!   terminal restored; its main loop asks [`take`] at least every 100 ms.
//!   (In raw mode Ctrl-C arrives as a key; SIGINT can still come from
//!   `kill`. SIGWINCH is crossterm's: it becomes a resize event.)

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, OnceLock};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::flag;

/// A stop was asked for (capture run).
static STOP: LazyLock<Arc<AtomicBool>> = LazyLock::new(Arc::default);
/// The signal that asked for the stop, or that the dashboard has not
/// taken yet (0: none).
static LAST: LazyLock<Arc<AtomicUsize>> = LazyLock::new(Arc::default);

/// SIGHUP asked for the output files to be opened again (`--json-file`).
static REOPEN: LazyLock<Arc<AtomicBool>> = LazyLock::new(Arc::default);

/// SIGHUP for `--json-file`: open the file anew (logrotate). Without it
/// SIGHUP keeps its default action, as for tcpdump.
pub fn install_reopen() -> io::Result<()> {
    static DONE: OnceLock<io::Result<()>> = OnceLock::new();
    let r = DONE.get_or_init(|| flag::register(SIGHUP, REOPEN.clone()).map(|_| ()));
    r.as_ref().map(|_| ()).map_err(|e| io::Error::new(e.kind(), e.to_string()))
}

/// A reopen was asked for since the last call (and is now taken).
pub fn take_reopen() -> bool {
    REOPEN.load(Ordering::Relaxed) && REOPEN.swap(false, Ordering::SeqCst)
}

/// A reopen is waiting to be taken.
pub fn reopen_pending() -> bool {
    REOPEN.load(Ordering::Relaxed)
}

/// SIGINT and SIGTERM for a capture run: the first asks for a clean stop,
/// a second exits at once. Installing twice installs once.
pub fn install_stop() -> io::Result<()> {
    static DONE: OnceLock<io::Result<()>> = OnceLock::new();
    let r = DONE.get_or_init(|| {
        for sig in [SIGINT, SIGTERM] {
            // The exit goes first: it looks at the flag before this
            // signal sets it, so it fires on the second signal only.
            flag::register_conditional_shutdown(sig, 128 + sig, STOP.clone())?;
            flag::register_usize(sig, LAST.clone(), sig as usize)?;
            flag::register(sig, STOP.clone())?;
        }
        Ok(())
    });
    r.as_ref().map(|_| ()).map_err(|e| io::Error::new(e.kind(), e.to_string()))
}

/// A stop was asked for by a signal (capture run).
pub fn stop_requested() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// The signal that asked for the stop (0 when none).
pub fn which() -> i32 {
    LAST.load(Ordering::Relaxed) as i32
}

/// SIGINT, SIGTERM and SIGHUP for the dashboard: each ends it cleanly.
pub fn install_dashboard() -> io::Result<()> {
    static DONE: OnceLock<io::Result<()>> = OnceLock::new();
    let r = DONE.get_or_init(|| {
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            flag::register_usize(sig, LAST.clone(), sig as usize)?;
        }
        Ok(())
    });
    r.as_ref().map(|_| ()).map_err(|e| io::Error::new(e.kind(), e.to_string()))
}

/// The signal received since the last call, if any (the dashboard).
pub fn take() -> Option<i32> {
    match LAST.swap(0, Ordering::SeqCst) {
        0 => None,
        s => Some(s as i32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Delivers a real SIGTERM to this process and sees the flag set, the
    /// process still alive. (One test only: the flag is process-wide, and
    /// a second signal would end the test run.)
    #[test]
    fn first_signal_sets_the_flag_and_does_not_kill() {
        install_stop().unwrap();
        install_stop().unwrap();
        assert!(!stop_requested());
        // SAFETY: raise(3) to ourselves; the handlers above are installed.
        unsafe { libc::raise(libc::SIGTERM) };
        assert!(stop_requested());
        assert_eq!(which(), libc::SIGTERM);
    }
}
