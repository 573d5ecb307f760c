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
use super::merge::Merge;
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
    /// Emptied batches back to their ring's capture thread.
    recycle: Vec<SyncSender<Batch>>,
    /// The rings' batches, merged in time order (one ring: as it comes).
    merge: Merge,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    /// Print a line on stderr when packets start being dropped (the CLI;
    /// the dashboard shows the counters instead).
    pub warn_on_drops: bool,
    warned: (u64, Option<Instant>),
    /// The interface captured on (the summary's `system`).
    iface: String,
}

impl LiveCapture {
    /// Opens the device and starts the capture thread (one per ring).
    pub fn start(cfg: LiveConfig) -> Result<LiveCapture> {
        let (caps, mut dumper, info) = open_device(&cfg)?;
        let rings = caps.len();
        let shared = Arc::new(Shared { rings: std::sync::Mutex::new(vec![0; rings]), ..Shared::default() });
        let (tx, rx) = mpsc::sync_channel(4096);
        let mut recycle = Vec::with_capacity(rings);
        let mut threads = Vec::with_capacity(rings);
        let deadline = cfg.duration.map(|d| Instant::now() + d);
        for (ring, cap) in caps.into_iter().enumerate() {
            let (back, recycled) = mpsc::sync_channel(64);
            let mut feeder = Feeder::new(tx.clone(), recycled, shared.clone(), cfg.queue_bytes);
            feeder.ring = ring as u16;
            let worker = Worker {
                cap,
                rings,
                published: (0, 0, 0),
                taken: 0,
                // The -w file is written by the one capture thread there
                // is (config.rs refuses -w with --fanout).
                dumper: dumper.take(),
                feeder,
                shared: shared.clone(),
                count: cfg.count,
                deadline,
                stats: StatsAcc::default(),
                iface: cfg.iface.clone(),
            };
            let name = if rings > 1 { format!("wstap-capture-{ring}") } else { "wstap-capture".into() };
            let thread = std::thread::Builder::new().name(name).spawn(move || worker.run()).map_err(|e| {
                shared.stop.store(true, Ordering::SeqCst);
                Error::new(format!("cannot start the capture thread: {e}"))
            })?;
            recycle.push(back);
            threads.push(thread);
        }
        Ok(LiveCapture {
            info,
            rx: Some(rx),
            recycle,
            merge: Merge::new(rings),
            shared,
            threads,
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
        self.join();
        self.shared.error.lock().ok().and_then(|mut e| e.take())
    }

    /// Waits for the capture threads.
    fn join(&mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    /// The queue drop count if drops happened (for the final warning).
    pub(super) fn warned_queue_drops(&self) -> Option<u64> {
        let n = self.shared.dropped_queue.load(Ordering::Relaxed);
        (n > 0 && self.warn_on_drops).then_some(n)
    }

    /// A batch the analysis is done with: its bytes leave the queue's
    /// count, its buffers go back to its ring's capture thread.
    fn release(shared: &Shared, recycle: &[SyncSender<Batch>], mut b: Batch) {
        if b.accounted > 0 {
            shared.queued_bytes.fetch_sub(b.accounted, Ordering::AcqRel);
        }
        if b.data.capacity() > 0
            && let Some(back) = recycle.get(b.ring as usize)
        {
            b.clear();
            let _ = back.try_send(b);
        }
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
        let (shared, recycle) = (&*self.shared, &self.recycle);
        self.merge.advance(|b| Self::release(shared, recycle, b));
        // Whether a quiet ring may hold the others' packets back: not once
        // the queue has been quiet for an idle tick.
        let mut force = false;
        // A quiet link still gets its idle tick when quiet rings keep
        // saying how far they are (every 20 ms with --fanout).
        let since = Instant::now();
        loop {
            if let Some(ring) = self.merge.ready(force) {
                let (b, m) = self.merge.take(ring);
                let (s, e) = (m.start as usize, m.start as usize + m.len as usize);
                return Ok(Next::Packet(RawPacket { ts: m.ts, data: &b.data[s..e], orig_len: m.orig_len }));
            }
            let Some(rx) = &self.rx else { return Ok(Next::End) };
            let waited = since.elapsed();
            if waited >= IDLE_TICK && !self.merge.holds_packets() {
                return Ok(Next::Idle(wall_now()));
            }
            match rx.recv_timeout(IDLE_TICK.saturating_sub(waited).max(Duration::from_millis(1))) {
                Ok(b) => {
                    if let Some(b) = self.merge.push(b) {
                        Self::release(&self.shared, &self.recycle, b);
                    }
                    if self.warn_on_drops {
                        self.maybe_warn();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    if self.warn_on_drops {
                        self.maybe_warn();
                    }
                    if self.merge.holds_packets() {
                        force = true;
                        continue;
                    }
                    return Ok(Next::Idle(wall_now()));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // Every capture thread is done and everything queued
                    // was taken: wait for them so the final statistics are
                    // there, then hand out what is held.
                    self.rx = None;
                    self.join();
                    self.merge.all_done();
                }
            }
        }
    }

    fn stats(&mut self) -> Option<record::Capture> {
        let s = &self.shared;
        Some(record::Capture {
            received: Some(s.received.load(Ordering::Relaxed)),
            dropped_kernel: Some(s.dropped_kernel.load(Ordering::Relaxed)),
            dropped_interface: Some(s.dropped_interface.load(Ordering::Relaxed)),
            dropped_queue: Some(s.dropped_queue.load(Ordering::Relaxed)),
            rings: (self.info.rings > 1).then(|| s.rings.lock().map(|r| r.clone()).unwrap_or_default()),
        })
    }

    fn host(&self) -> Option<String> {
        crate::capture::host_name()
    }

    fn lull(&self) -> bool {
        // (The packet handed out last still counts until the next call.)
        !self.merge.more_ready()
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
        self.join();
        let (shared, recycle) = (&*self.shared, &self.recycle);
        self.merge.drain(|b| Self::release(shared, recycle, b));
    }
}

fn wall_now() -> Ts {
    Ts(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0))
}
