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
/// With several rings, a quiet ring says how far it has delivered this
/// often, so that the others' packets are not held longer than that...
const HEARTBEAT: Duration = Duration::from_millis(20);
/// ...and that packets stamped this long before it looked are all out (the
/// block timeout, 10 ms, and time to be scheduled).
const MARGIN_US: i64 = 50_000;

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
    /// Rings in the fanout group (1: no fanout).
    pub(super) rings: usize,
    /// What this ring's counters have added to the shared ones.
    pub(super) published: (u64, u64, u64),
    /// Packets taken from this ring.
    pub(super) taken: u64,
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
        // The first ring to end says why; the others end with it.
        if let Ok(mut slot) = self.shared.end.lock() {
            slot.get_or_insert(end);
        }
        self.shared.stop.store(true, Ordering::SeqCst);
        // The file first: complete on disk even if the analysis side is
        // stuck and the last batch has to wait for it.
        if let Some(mut d) = self.dumper.take()
            && let Err(e) = d.close()
        {
            self.fail(e);
        }
        self.feeder.finish();
        self.publish_stats();
        if self.shared.error.lock().map(|e| e.is_some()).unwrap_or(false)
            && let Ok(mut slot) = self.shared.end.lock()
        {
            *slot = Some(EndReason::Error);
        }
        // Dropping the feeder closes the queue: the analysis side sees End
        // once it has taken what is queued.
    }

    fn fail(&self, e: Error) {
        if let Ok(mut slot) = self.shared.error.lock() {
            slot.get_or_insert(e);
        }
    }

    /// This ring's kernel counters, added to the shared ones (the sum over
    /// rings).
    fn publish_stats(&mut self) {
        if let Ok(s) = self.cap.stats() {
            let (recv, drop, ifdrop) = self.stats.update((s.received, s.dropped, s.if_dropped));
            let (r0, d0, i0) = std::mem::replace(&mut self.published, (recv, drop, ifdrop));
            self.shared.received.fetch_add(recv - r0, Ordering::Relaxed);
            self.shared.dropped_kernel.fetch_add(drop - d0, Ordering::Relaxed);
            self.shared.dropped_interface.fetch_add(ifdrop - i0, Ordering::Relaxed);
        }
        if let Ok(mut rings) = self.shared.rings.lock()
            && let Some(n) = rings.get_mut(self.feeder.ring as usize)
        {
            *n = self.taken;
        }
    }

    /// `-c` reached, over every ring.
    fn counted_out(&self) -> bool {
        self.count.is_some_and(|c| self.shared.captured.load(Ordering::Relaxed) >= c)
    }

    fn capture_loop(&mut self) -> EndReason {
        let fd = self.cap.as_raw_fd();
        let mut last_stats = Instant::now();
        let mut last_heartbeat = Instant::now();
        loop {
            let now = Instant::now();
            if self.counted_out() {
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
                self.drain();
                return end;
            }
            if now.duration_since(last_stats) >= STATS_EVERY {
                self.publish_stats();
                last_stats = now;
            }
            match self.dispatch_once() {
                Err(end) => return end,
                Ok(n) => {
                    let now = Instant::now();
                    self.feeder.hand_over_if_due(now);
                    if n == 0 && self.rings > 1 && now.duration_since(last_heartbeat) >= HEARTBEAT {
                        self.feeder.heartbeat(Ts(wall_us() - MARGIN_US));
                        last_heartbeat = now;
                    }
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
                        if self.rings > 1 {
                            timeout = timeout.min(HEARTBEAT);
                        }
                        poll_in(fd, timeout.as_millis().max(1) as i32);
                    }
                }
            }
        }
    }

    /// On a stop, what the kernel already holds is still taken: a few
    /// passes over the ring, bounded in case traffic keeps coming.
    fn drain(&mut self) {
        for _ in 0..16 {
            if self.feeder.closed || self.counted_out() {
                break;
            }
            match self.dispatch_once() {
                Ok(0) | Err(_) => break,
                Ok(_) => self.feeder.hand_over(),
            };
        }
    }

    /// One `pcap_dispatch`: every packet the ring holds (up to `-c`) is
    /// written to the `-w` file and queued. `Ok(n)`: packets taken;
    /// `Err(end)`: the capture must end.
    fn dispatch_once(&mut self) -> std::result::Result<usize, EndReason> {
        let count = self.count;
        let captured = &self.shared.captured;
        let want = count.map(|c| c.saturating_sub(captured.load(Ordering::Relaxed)).min(i32::MAX as u64) as usize);
        let wall = wall_secs();
        let mut failed: Option<Error> = None;
        let mut file_limit = false;
        let before = self.taken;
        let (dumper, feeder, taken) = (&mut self.dumper, &mut self.feeder, &mut self.taken);
        // `-c` over every ring: with a count, each packet claims its number
        // (and gives it back if it is not taken after all); without one,
        // the packets taken are added once per dispatch, not per packet.
        let unclaim = || {
            if count.is_some() {
                captured.fetch_sub(1, Ordering::Relaxed);
            }
        };
        let r = self.cap.dispatch(want, |pkt| {
            if failed.is_some() || file_limit {
                return;
            }
            if let Some(c) = count
                && captured.fetch_add(1, Ordering::Relaxed) >= c
            {
                captured.fetch_sub(1, Ordering::Relaxed);
                return;
            }
            let h = pkt.header;
            if let Some(d) = dumper.as_mut() {
                match d.write(wall, timeval(&h.ts), pkt.data, h.len) {
                    Ok(true) => {}
                    Ok(false) => {
                        unclaim();
                        file_limit = true;
                        return;
                    }
                    Err(e) => {
                        unclaim();
                        failed = Some(e);
                        return;
                    }
                }
            }
            *taken += 1;
            let (sec, usec) = timeval(&h.ts);
            feeder.push(Ts::from_timeval(sec, usec), pkt.data, h.len);
        });
        if count.is_none() {
            captured.fetch_add(self.taken - before, Ordering::Relaxed);
        }
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

/// The wall clock in microseconds (the kernel stamps packets with it).
pub(super) fn wall_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
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
