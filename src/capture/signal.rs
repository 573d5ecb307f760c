//! SIGINT and SIGTERM during a live capture: the first asks for a clean stop
//! (the capture thread sees the flag within its poll timeout, the writer is
//! closed, open sessions and the summary are flushed); a second one exits at
//! once, as an impatient operator expects.
//!
//! The handler only touches an atomic and, the second time, calls `_exit`,
//! both async-signal-safe.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);
static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    if REQUESTED.swap(true, Ordering::SeqCst) {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(128 + sig) };
    }
    SIGNAL.store(sig, Ordering::SeqCst);
}

/// Installs the handlers for SIGINT and SIGTERM (SA_RESTART, so blocked
/// writes to a slow terminal or pipe resume rather than fail).
pub fn install() -> std::io::Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: sigaction with a zeroed struct, an empty mask and a handler
        // of the right signature.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// A stop was asked for by a signal.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}

/// The signal that asked for the stop (0 when none).
pub fn which() -> i32 {
    SIGNAL.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Delivers a real SIGTERM to this process and sees the flag set, the
    /// process still alive. (One test only: the flag is process-wide.)
    #[test]
    fn first_signal_sets_the_flag_and_does_not_kill() {
        install().unwrap();
        assert!(!requested());
        // SAFETY: raise(3) to ourselves; the handler above is installed.
        unsafe { libc::raise(libc::SIGTERM) };
        assert!(requested());
        assert_eq!(which(), libc::SIGTERM);
    }
}
