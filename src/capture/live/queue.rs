//! The queue between the capture thread and the analysis side: packets
//! are copied out of the kernel ring into batches (one allocation for
//! many), handed over when a batch is full or has waited [`HANDOFF`], and
//! bounded in bytes. The capture thread never waits for room: when the
//! queue is full the pending batch grows up to its cap, then packets are
//! counted as dropped (`dropped_queue`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use super::Shared;
use crate::time::Ts;

/// A batch is handed over at the latest this long after its first packet:
/// the analysis thread wakes at most ~100 times a second on a steady trickle
/// instead of once per batch of the kernel's, and output lags the wire by
/// at most this plus [`DELIVERY_MS`].
const HANDOFF: Duration = Duration::from_millis(10);
/// A batch is handed over when it holds this much...
const BATCH_PKTS: usize = 256;
const BATCH_BYTES: usize = 256 << 10;
/// ...and, while the queue is full, grows up to this before packets are
/// dropped.
const PENDING_MAX_PKTS: usize = 16_384;
const PENDING_MAX_BYTES: usize = 4 << 20;

#[derive(Debug, Clone, Copy)]
pub(super) struct Meta {
    pub(super) ts: Ts,
    pub(super) start: u32,
    pub(super) len: u32,
    pub(super) orig_len: u32,
}

/// Packets copied out of the kernel ring, one allocation for many.
#[derive(Default)]
pub(super) struct Batch {
    pub(super) data: Vec<u8>,
    pub(super) pkts: Vec<Meta>,
    /// What this batch counts for in `queued_bytes`.
    pub(super) accounted: usize,
    /// The ring it comes from (`--fanout`; 0 without).
    pub(super) ring: u16,
    /// The ring has delivered every packet up to this time: the last
    /// packet's, or, from a quiet ring, a time the kernel can no longer
    /// stamp a packet that has not been seen ([`Feeder::heartbeat`]);
    /// [`DONE`] at the ring's end. A batch with no packet only says this.
    pub(super) mark: Ts,
}

/// A ring's last word: it will deliver nothing more.
pub(super) const DONE: Ts = Ts(i64::MAX);

impl Batch {
    fn with_capacity() -> Batch {
        Batch { data: Vec::with_capacity(BATCH_BYTES), pkts: Vec::with_capacity(BATCH_PKTS), ..Batch::default() }
    }
    fn bytes(&self) -> usize {
        self.data.len() + self.pkts.len() * std::mem::size_of::<Meta>()
    }
    /// Leaving its ring: which one, and (at least) how far it goes.
    fn seal(&mut self, ring: u16) {
        self.ring = ring;
        self.mark = self.mark.max(self.pkts.last().map_or(Ts(0), |m| m.ts));
    }

    pub(super) fn clear(&mut self) {
        self.data.clear();
        self.pkts.clear();
        self.accounted = 0;
        self.mark = Ts(0);
    }
}

/// The capture thread's end of the queue.
pub(super) struct Feeder {
    pub(super) tx: SyncSender<Batch>,
    /// Emptied batches coming back, to reuse their buffers.
    pub(super) recycled: Receiver<Batch>,
    pub(super) pending: Batch,
    /// When the first packet of `pending` arrived.
    pub(super) since: Option<Instant>,
    pub(super) spare: Option<Batch>,
    pub(super) shared: Arc<Shared>,
    pub(super) budget: usize,
    /// The analysis side is gone.
    pub(super) closed: bool,
    /// The ring this feeder's packets come from.
    pub(super) ring: u16,
}

impl Feeder {
    pub(super) fn new(tx: SyncSender<Batch>, recycled: Receiver<Batch>, shared: Arc<Shared>, budget: usize) -> Feeder {
        Feeder {
            tx,
            recycled,
            pending: Batch::with_capacity(),
            since: None,
            spare: None,
            shared,
            budget,
            closed: false,
            ring: 0,
        }
    }

    /// Queues one packet without ever blocking: when the queue is full and
    /// the pending batch is at its cap, the packet is counted as dropped.
    pub(super) fn push(&mut self, ts: Ts, data: &[u8], orig_len: u32) {
        let p = &self.pending;
        if (p.pkts.len() >= PENDING_MAX_PKTS || p.data.len() + data.len() > PENDING_MAX_BYTES) && !self.hand_over() {
            self.shared.dropped_queue.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.pending.pkts.is_empty() {
            self.since = Some(Instant::now());
        }
        let start = self.pending.data.len() as u32;
        self.pending.data.extend_from_slice(data);
        self.pending.pkts.push(Meta { ts, start, len: data.len() as u32, orig_len });
        if self.pending.pkts.len() >= BATCH_PKTS || self.pending.data.len() >= BATCH_BYTES {
            self.hand_over();
        }
    }

    /// How long the pending batch may still wait (zero: hand it over now;
    /// None: nothing pending).
    pub(super) fn due_in(&self, now: Instant) -> Option<Duration> {
        self.since.map(|t| HANDOFF.saturating_sub(now.duration_since(t)))
    }

    /// Hands the pending batch over if it has waited long enough.
    pub(super) fn hand_over_if_due(&mut self, now: Instant) {
        if self.due_in(now).is_some_and(|d| d.is_zero()) {
            self.hand_over();
        }
    }

    /// Tries to queue the pending batch; false when the queue is full (or
    /// gone), the batch then stays pending.
    pub(super) fn hand_over(&mut self) -> bool {
        if self.pending.pkts.is_empty() {
            return true;
        }
        if self.closed {
            return false;
        }
        let bytes = self.pending.bytes();
        let q = &self.shared.queued_bytes;
        // An empty queue always takes the batch, however large it grew.
        let queued = q.load(Ordering::Acquire);
        if queued > 0 && queued + bytes > self.budget {
            return false;
        }
        let fresh = self.spare.take().or_else(|| self.recycled.try_recv().ok()).unwrap_or_else(Batch::with_capacity);
        let mut b = std::mem::replace(&mut self.pending, fresh);
        b.accounted = bytes;
        b.seal(self.ring);
        q.fetch_add(bytes, Ordering::AcqRel);
        match self.tx.try_send(b) {
            Ok(()) => {
                self.since = None;
                true
            }
            Err(e) => {
                let b = match e {
                    TrySendError::Full(b) => b,
                    TrySendError::Disconnected(b) => {
                        self.closed = true;
                        b
                    }
                };
                q.fetch_sub(bytes, Ordering::AcqRel);
                self.spare = Some(std::mem::replace(&mut self.pending, b));
                false
            }
        }
    }

    /// The ring is empty now: every packet it will still deliver is stamped
    /// after `mark`. With several rings, the analysis side releases the
    /// others' packets up to there (the pending batch goes now, with the
    /// mark; else a batch with none). Best effort: a full queue skips it.
    pub(super) fn heartbeat(&mut self, mark: Ts) {
        if self.closed {
            return;
        }
        if !self.pending.pkts.is_empty() {
            self.pending.mark = self.pending.mark.max(mark);
            self.hand_over();
            return;
        }
        match self.tx.try_send(Batch { ring: self.ring, mark, ..Batch::default() }) {
            Ok(()) | Err(TrySendError::Full(_)) => {}
            Err(TrySendError::Disconnected(_)) => self.closed = true,
        }
    }

    /// End of capture: the last batch may wait for room (nothing more can be
    /// lost from the kernel now), unless the analysis side is gone; then the
    /// ring's last word ([`DONE`]).
    pub(super) fn finish(&mut self) {
        if self.closed {
            return;
        }
        if !self.pending.pkts.is_empty() {
            let mut b = std::mem::take(&mut self.pending);
            b.accounted = b.bytes();
            b.seal(self.ring);
            self.shared.queued_bytes.fetch_add(b.accounted, Ordering::AcqRel);
            if self.tx.send(b).is_err() {
                self.closed = true;
                return;
            }
        }
        if self.tx.send(Batch { ring: self.ring, mark: DONE, ..Batch::default() }).is_err() {
            self.closed = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn feeder(budget: usize, slots: usize) -> (Feeder, Receiver<Batch>, Arc<Shared>) {
        let shared = Arc::new(Shared::default());
        let (tx, rx) = mpsc::sync_channel(slots);
        let (_recycle, recycled) = mpsc::sync_channel(4);
        let f = Feeder::new(tx, recycled, shared.clone(), budget);
        (f, rx, shared)
    }

    #[test]
    fn full_queue_counts_drops_instead_of_blocking() {
        let (mut f, rx, shared) = feeder(usize::MAX, 1);
        let pkt = [0u8; 1000];
        // One batch fills the single slot; the pending batch then grows to
        // its cap; everything after that is counted, never waited for.
        let n = 1 + BATCH_PKTS + PENDING_MAX_PKTS + 500;
        for i in 0..n {
            f.push(Ts(i as i64), &pkt, 1000);
        }
        let dropped = shared.dropped_queue.load(Ordering::Relaxed) as usize;
        assert!(dropped > 0);
        let queued: usize = rx.try_iter().map(|b| b.pkts.len()).sum();
        assert_eq!(queued + f.pending.pkts.len() + dropped, n, "every packet is queued, pending or counted");
    }

    #[test]
    fn byte_budget_bounds_the_queue_and_frees_as_analysis_takes() {
        let (mut f, rx, shared) = feeder(3 * BATCH_BYTES, 1024);
        let pkt = vec![7u8; BATCH_BYTES / 4];
        for i in 0..64 {
            f.push(Ts(i), &pkt, pkt.len() as u32);
        }
        let q = shared.queued_bytes.load(Ordering::Relaxed);
        assert!(q <= 3 * BATCH_BYTES, "{q}");
        assert_eq!(shared.dropped_queue.load(Ordering::Relaxed), 0, "the pending batch absorbs the rest");
        assert!(!f.pending.pkts.is_empty());
        // The analysis side takes everything and releases the bytes: the
        // pending batch (larger than the budget by now) goes through.
        let mut got: Vec<Batch> = rx.try_iter().collect();
        for b in &got {
            shared.queued_bytes.fetch_sub(b.accounted, Ordering::AcqRel);
        }
        assert!(f.hand_over());
        assert!(f.pending.pkts.is_empty());
        got.extend(rx.try_iter());
        let ts: Vec<i64> = got.iter().flat_map(|b| b.pkts.iter().map(|m| m.ts.0)).collect();
        assert_eq!(ts, (0..64).collect::<Vec<_>>(), "nothing lost, order kept");
    }

    #[test]
    fn a_quiet_ring_says_how_far_it_has_delivered_and_ends_with_done() {
        let (mut f, rx, _shared) = feeder(usize::MAX, 64);
        f.ring = 3;
        // Nothing pending: a batch with only the mark.
        f.heartbeat(Ts(100));
        let b = rx.try_recv().unwrap();
        assert_eq!((b.ring, b.mark, b.pkts.len()), (3, Ts(100), 0));
        // Something pending: it goes now, marked past its last packet.
        f.push(Ts(150), b"x", 1);
        f.heartbeat(Ts(180));
        let b = rx.try_recv().unwrap();
        assert_eq!((b.ring, b.mark, b.pkts.len()), (3, Ts(180), 1));
        // A batch handed over for its size is marked at its last packet.
        for i in 0..BATCH_PKTS {
            f.push(Ts(200 + i as i64), b"y", 1);
        }
        let b = rx.try_recv().unwrap();
        assert_eq!((b.mark, b.pkts.len()), (Ts(200 + BATCH_PKTS as i64 - 1), BATCH_PKTS));
        // The end: what is pending, then the ring's last word.
        f.push(Ts(900), b"z", 1);
        f.finish();
        let last = rx.try_recv().unwrap();
        assert_eq!((last.mark, last.pkts.len()), (Ts(900), 1));
        let done = rx.try_recv().unwrap();
        assert_eq!((done.ring, done.mark, done.pkts.len()), (3, DONE, 0));
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn closed_queue_is_noticed() {
        let (mut f, rx, _shared) = feeder(usize::MAX, 1);
        drop(rx);
        for i in 0..(BATCH_PKTS * 2) {
            f.push(Ts(i as i64), b"x", 1);
        }
        assert!(f.closed);
    }
}
