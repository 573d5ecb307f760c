//! The analysis side of a live capture: a [`PacketSource`] that hands out
//! the queued packets, `Next::Idle(now)` when nothing arrived for a while,
//! and `Next::End` once the capture thread has finished and the queue is
//! drained.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::device::{OpenInfo, open_device};
use super::queue::{Batch, Feeder};
use super::worker::{StatsAcc, Worker};
use super::{EndReason, LiveConfig, Shared, Stopper};
use crate::capture::{Next, PacketSource, RawPacket};
use crate::decode::LinkType;
use crate::error::{Error, Result};
use crate::record;
use crate::time::Ts;

/// How long the analysis side waits for packets before an idle tick.
const IDLE_TICK: Duration = Duration::from_millis(200);

/// A running live capture, as a [`PacketSource`]. Dropping it stops the
/// capture thread and closes the `-w` file.
pub struct LiveCapture {
    pub info: OpenInfo,
    rx: Option<Receiver<Batch>>,
    recycle: SyncSender<Batch>,
    cur: Batch,
    idx: usize,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// Print a line on stderr when packets start being dropped (the CLI;
    /// the dashboard shows the counters instead).
    pub warn_on_drops: bool,
    warned: (u64, Option<Instant>),
    /// The interface captured on (the summary's `system`).
    iface: String,
}

impl LiveCapture {
    /// Opens the device and starts the capture thread.
    pub fn start(cfg: LiveConfig) -> Result<LiveCapture> {
        let (cap, dumper, info) = open_device(&cfg)?;
        let shared = Arc::new(Shared::default());
        let (tx, rx) = mpsc::sync_channel(4096);
        let (recycle, recycled) = mpsc::sync_channel(64);
        let feeder = Feeder::new(tx, recycled, shared.clone(), cfg.queue_bytes);
        let worker = Worker {
            cap,
            dumper,
            feeder,
            shared: shared.clone(),
            count: cfg.count,
            deadline: cfg.duration.map(|d| Instant::now() + d),
            stats: StatsAcc::default(),
            iface: cfg.iface.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("wstap-capture".into())
            .spawn(move || worker.run())
            .map_err(|e| Error::new(format!("cannot start the capture thread: {e}")))?;
        Ok(LiveCapture {
            info,
            rx: Some(rx),
            recycle,
            cur: Batch::default(),
            idx: 0,
            shared,
            thread: Some(thread),
            warn_on_drops: false,
            warned: (0, None),
            iface: cfg.iface.clone(),
        })
    }

    /// A handle that stops the capture from another thread.
    pub fn stopper(&self) -> Stopper {
        Stopper(self.shared.clone())
    }

    /// Asks the capture thread to stop (what it captured is still delivered).
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }

    /// Packets taken from the kernel so far.
    pub fn captured(&self) -> u64 {
        self.shared.captured.load(Ordering::Relaxed)
    }

    /// Why the capture ended (None while it runs).
    pub fn end_reason(&self) -> Option<EndReason> {
        self.shared.end.lock().ok().and_then(|e| *e)
    }

    /// Waits for the capture thread (after a stop) and returns its error, if
    /// the capture ended on one (interface gone, `-w` write failed).
    pub fn finish(&mut self) -> Option<Error> {
        self.rx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.shared.error.lock().ok().and_then(|mut e| e.take())
    }

    /// The queue drop count if drops happened (for the final warning).
    pub(super) fn warned_queue_drops(&self) -> Option<u64> {
        let n = self.shared.dropped_queue.load(Ordering::Relaxed);
        (n > 0 && self.warn_on_drops).then_some(n)
    }

    /// Hands the current batch back to the capture thread for reuse.
    fn release(&mut self) {
        if self.cur.accounted > 0 {
            self.shared.queued_bytes.fetch_sub(self.cur.accounted, Ordering::AcqRel);
        }
        let mut b = std::mem::take(&mut self.cur);
        if b.data.capacity() > 0 {
            b.clear();
            let _ = self.recycle.try_send(b);
        }
        self.idx = 0;
    }

    /// While the CLI runs: one stderr line, at most every 10 s, when packets
    /// are being dropped anywhere.
    fn maybe_warn(&mut self) {
        let q = self.shared.dropped_queue.load(Ordering::Relaxed);
        let k = self.shared.dropped_kernel.load(Ordering::Relaxed);
        let total = q + k;
        if total <= self.warned.0 || self.warned.1.is_some_and(|t| t.elapsed() < Duration::from_secs(10)) {
            return;
        }
        self.warned = (total, Some(Instant::now()));
        eprintln!(
            "wstap: warning: packets dropped so far: {k} by the kernel, {q} before analysis (analysis or output too slow)"
        );
    }
}

// The dashboard drives a pipeline from a LiveCapture in its own thread.
const _: fn() = || {
    fn send<T: Send>() {}
    send::<LiveCapture>();
};

impl PacketSource for LiveCapture {
    fn linktype(&self) -> LinkType {
        self.info.linktype
    }

    fn next_packet(&mut self) -> Result<Next<'_>> {
        while self.idx >= self.cur.pkts.len() {
            self.release();
            let Some(rx) = &self.rx else { return Ok(Next::End) };
            match rx.recv_timeout(IDLE_TICK) {
                Ok(b) => {
                    self.cur = b;
                    if self.warn_on_drops {
                        self.maybe_warn();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    if self.warn_on_drops {
                        self.maybe_warn();
                    }
                    return Ok(Next::Idle(wall_now()));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // The capture thread is done and everything queued was
                    // taken: wait for it so the final statistics are there.
                    self.rx = None;
                    if let Some(t) = self.thread.take() {
                        let _ = t.join();
                    }
                    return Ok(Next::End);
                }
            }
        }
        let m = self.cur.pkts[self.idx];
        self.idx += 1;
        let (s, e) = (m.start as usize, m.start as usize + m.len as usize);
        Ok(Next::Packet(RawPacket { ts: m.ts, data: &self.cur.data[s..e], orig_len: m.orig_len }))
    }

    fn stats(&mut self) -> Option<record::Capture> {
        let s = &self.shared;
        Some(record::Capture {
            received: Some(s.received.load(Ordering::Relaxed)),
            dropped_kernel: Some(s.dropped_kernel.load(Ordering::Relaxed)),
            dropped_interface: Some(s.dropped_interface.load(Ordering::Relaxed)),
            dropped_queue: Some(s.dropped_queue.load(Ordering::Relaxed)),
        })
    }

    fn host(&self) -> Option<String> {
        crate::capture::host_name()
    }

    fn lull(&self) -> bool {
        self.idx >= self.cur.pkts.len()
    }

    fn system(&self) -> Option<record::CaptureSystem> {
        Some(crate::capture::this_system(&self.iface))
    }
}

impl Drop for LiveCapture {
    fn drop(&mut self) {
        self.stop();
        // Closing the queue first: a capture thread waiting to hand over its
        // last batch gives up instead of waiting for us.
        self.rx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn wall_now() -> Ts {
    Ts(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0))
}
