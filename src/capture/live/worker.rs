//! The capture thread: owns the libpcap handle, takes what the kernel ring
//! holds (`pcap_dispatch`), writes each packet to the `-w` file, then
//! queues it; sleeps in poll(2) when the ring is empty; stops on `-c`,
//! `--duration`, a signal or a stop request, after draining the ring.

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pcap::{Active, Capture};

use super::queue::Feeder;
use super::{EndReason, Shared};
use crate::capture::dump::Dumper;
use crate::capture::file::pcap_msg;
use crate::error::Error;
use crate::signal;
use crate::time::Ts;

/// How long the capture thread sleeps in poll(2) when the ring is empty:
/// bounds the reaction time to a stop request.
const POLL_MS: i32 = 100;
/// Capture statistics are read this often (and at the end).
const STATS_EVERY: Duration = Duration::from_secs(1);

/// pcap_stats counters are 32 bits and wrap on a long capture: accumulate
/// the deltas into 64 bits.
#[derive(Default)]
pub(super) struct StatsAcc {
    pub(super) last: (u32, u32, u32),
    pub(super) total: (u64, u64, u64),
}

impl StatsAcc {
    pub(super) fn update(&mut self, s: (u32, u32, u32)) -> (u64, u64, u64) {
        self.total.0 += s.0.wrapping_sub(self.last.0) as u64;
        self.total.1 += s.1.wrapping_sub(self.last.1) as u64;
        self.total.2 += s.2.wrapping_sub(self.last.2) as u64;
        self.last = s;
        self.total
    }
}

pub(super) struct Worker {
    pub(super) cap: Capture<Active>,
    pub(super) dumper: Option<Dumper>,
    pub(super) feeder: Feeder,
    pub(super) shared: Arc<Shared>,
    pub(super) count: Option<u64>,
    pub(super) deadline: Option<Instant>,
    pub(super) stats: StatsAcc,
    pub(super) iface: String,
}

impl Worker {
    pub(super) fn run(mut self) {
        let end = self.capture_loop();
        // The file first: complete on disk even if the analysis side is
        // stuck and the last batch has to wait for it.
        if let Some(mut d) = self.dumper.take()
            && let Err(e) = d.close()
        {
            self.fail(e);
        }
        self.feeder.finish();
        self.publish_stats();
        let end = if self.shared.error.lock().map(|e| e.is_some()).unwrap_or(false) { EndReason::Error } else { end };
        if let Ok(mut slot) = self.shared.end.lock() {
            *slot = Some(end);
        }
        // Dropping the feeder closes the queue: the analysis side sees End
        // once it has taken what is queued.
    }

    fn fail(&self, e: Error) {
        if let Ok(mut slot) = self.shared.error.lock() {
            slot.get_or_insert(e);
        }
    }

    fn publish_stats(&mut self) {
        if let Ok(s) = self.cap.stats() {
            let (recv, drop, ifdrop) = self.stats.update((s.received, s.dropped, s.if_dropped));
            self.shared.received.store(recv, Ordering::Relaxed);
            self.shared.dropped_kernel.store(drop, Ordering::Relaxed);
            self.shared.dropped_interface.store(ifdrop, Ordering::Relaxed);
        }
    }

    fn capture_loop(&mut self) -> EndReason {
        let fd = self.cap.as_raw_fd();
        let mut captured: u64 = 0;
        let mut last_stats = Instant::now();
        loop {
            let now = Instant::now();
            if self.count.is_some_and(|c| captured >= c) {
                return EndReason::Count;
            }
            let stop = if self.shared.stop.load(Ordering::Relaxed) || self.feeder.closed {
                Some(EndReason::Stopped)
            } else if signal::stop_requested() {
                Some(EndReason::Signal)
            } else if self.deadline.is_some_and(|d| now >= d) {
                Some(EndReason::Duration)
            } else {
                None
            };
            if let Some(end) = stop {
                self.drain(&mut captured);
                return end;
            }
            if now.duration_since(last_stats) >= STATS_EVERY {
                self.publish_stats();
                last_stats = now;
            }
            match self.dispatch_once(&mut captured) {
                Err(end) => return end,
                Ok(n) => {
                    let now = Instant::now();
                    self.feeder.hand_over_if_due(now);
                    if n == 0 {
                        // The ring is empty: a good moment to push the file
                        // out, then sleep until packets, the hand-over or
                        // the poll timeout.
                        if let Some(d) = &mut self.dumper
                            && let Err(e) = d.flush()
                        {
                            self.fail(e);
                            return EndReason::Error;
                        }
                        let mut timeout = Duration::from_millis(POLL_MS as u64);
                        if let Some(d) = self.deadline {
                            timeout = timeout.min(d.saturating_duration_since(now));
                        }
                        if let Some(d) = self.feeder.due_in(now) {
                            timeout = timeout.min(d);
                        }
                        poll_in(fd, timeout.as_millis().max(1) as i32);
                    }
                }
            }
        }
    }

    /// On a stop, what the kernel already holds is still taken: a few
    /// passes over the ring, bounded in case traffic keeps coming.
    fn drain(&mut self, captured: &mut u64) {
        for _ in 0..16 {
            if self.feeder.closed || self.count.is_some_and(|c| *captured >= c) {
                break;
            }
            match self.dispatch_once(captured) {
                Ok(0) | Err(_) => break,
                Ok(_) => self.feeder.hand_over(),
            };
        }
    }

    /// One `pcap_dispatch`: every packet the ring holds (up to `-c`) is
    /// written to the `-w` file and queued. `Ok(n)`: packets taken;
    /// `Err(end)`: the capture must end.
    fn dispatch_once(&mut self, captured: &mut u64) -> std::result::Result<usize, EndReason> {
        let want = self.count.map(|c| (c - *captured).min(i32::MAX as u64) as usize);
        let wall = wall_secs();
        let mut failed: Option<Error> = None;
        let mut file_limit = false;
        let mut n_taken: u64 = 0;
        let (dumper, feeder) = (&mut self.dumper, &mut self.feeder);
        let r = self.cap.dispatch(want, |pkt| {
            if failed.is_some() || file_limit {
                return;
            }
            let h = pkt.header;
            if let Some(d) = dumper.as_mut() {
                match d.write(wall, timeval(&h.ts), pkt.data, h.len) {
                    Ok(true) => {}
                    Ok(false) => {
                        file_limit = true;
                        return;
                    }
                    Err(e) => {
                        failed = Some(e);
                        return;
                    }
                }
            }
            n_taken += 1;
            let (sec, usec) = timeval(&h.ts);
            feeder.push(Ts::from_timeval(sec, usec), pkt.data, h.len);
        });
        *captured += n_taken;
        self.shared.captured.store(*captured, Ordering::Relaxed);
        if let Some(e) = failed {
            self.fail(e);
            return Err(EndReason::Error);
        }
        if file_limit {
            return Err(EndReason::FileLimit);
        }
        match r {
            Ok(n) => Ok(n),
            Err(e) => {
                self.fail(Error::Device { iface: self.iface.clone(), reason: pcap_msg(&e) });
                Err(EndReason::Error)
            }
        }
    }
}

/// Waits until `fd` is readable or `ms` pass (EINTR from a signal just
/// returns early, which is what a stop wants).
fn poll_in(fd: i32, ms: i32) {
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut p, 1, ms) };
}

/// (seconds, microseconds): `time_t` and `suseconds_t` are not 64 bits on
/// every target.
#[allow(clippy::unnecessary_cast)]
fn timeval(tv: &libc::timeval) -> (i64, i64) {
    (tv.tv_sec as i64, tv.tv_usec as i64)
}

pub(super) fn wall_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcap_counters_wrap_into_64_bits() {
        let mut s = StatsAcc::default();
        assert_eq!(s.update((u32::MAX - 1, 0, 0)).0, (u32::MAX - 1) as u64);
        assert_eq!(s.update((3, 1, 0)), (u32::MAX as u64 + 4, 1, 0));
    }
}
