//! Several kernel rings (`--fanout N`) into one stream in time order.
//!
//! The kernel spreads packets over the rings by flow hash, so each ring is
//! in time order and holds whole connections, but a proxy's two hops are
//! two connections, often in two rings, and hop correlation needs the
//! client's request before the request the proxy forwarded. Each ring's
//! batches say how far in time it has delivered (its mark: the last
//! packet's time, or, from a quiet ring, a time the kernel can no longer
//! stamp an unseen packet with); a packet is released once every other ring
//! has either a later packet waiting or a mark at or past it. Equal times
//! go in ring order. With one ring this is the ring's own order.

use std::collections::VecDeque;

use super::queue::{Batch, DONE, Meta};
use crate::time::Ts;

pub(super) struct Merge {
    rings: Vec<Ring>,
    /// The ring whose head was handed out last (its index moves on at the
    /// next call: the packet is borrowed until then).
    handed: Option<usize>,
}

#[derive(Default)]
struct Ring {
    /// Batches with packets, oldest first; `idx` the next packet of the
    /// first.
    batches: VecDeque<Batch>,
    idx: usize,
    /// Every packet up to this time has been delivered.
    mark: Ts,
}

impl Ring {
    /// The next packet, `skip` packets on (0 or 1).
    fn head(&self, skip: usize) -> Option<Meta> {
        let f = self.batches.front()?;
        let i = self.idx + skip;
        if i < f.pkts.len() { Some(f.pkts[i]) } else { self.batches.get(1).map(|n| n.pkts[i - f.pkts.len()]) }
    }
}

impl Merge {
    pub(super) fn new(rings: usize) -> Merge {
        Merge { rings: (0..rings.max(1)).map(|_| Ring::default()).collect(), handed: None }
    }

    /// A batch from ring `b.ring`: its packets queued, its mark taken.
    /// Returns it when it holds no packet (only a mark), for reuse.
    pub(super) fn push(&mut self, b: Batch) -> Option<Batch> {
        let Some(r) = self.rings.get_mut(b.ring as usize) else { return Some(b) };
        r.mark = r.mark.max(b.mark);
        if b.pkts.is_empty() {
            return Some(b);
        }
        r.batches.push_back(b);
        None
    }

    /// Every ring has ended: nothing is waited for any more.
    pub(super) fn all_done(&mut self) {
        for r in &mut self.rings {
            r.mark = DONE;
        }
    }

    /// Moves past the packet handed out last; the batches it emptied go to
    /// `release`.
    pub(super) fn advance(&mut self, mut release: impl FnMut(Batch)) {
        let Some(i) = self.handed.take() else { return };
        let r = &mut self.rings[i];
        r.idx += 1;
        if r.batches.front().is_some_and(|b| r.idx >= b.pkts.len()) {
            r.idx = 0;
            if let Some(b) = r.batches.pop_front() {
                release(b);
            }
        }
    }

    /// The ring whose head packet goes next, if it may go now: the oldest
    /// head (the lowest ring on a tie), when no other ring may still
    /// deliver an older packet; `force`: without waiting for quiet rings.
    pub(super) fn ready(&self, force: bool) -> Option<usize> {
        self.pick(force, false)
    }

    /// Whether a packet after the one handed out last may go now, without
    /// another batch (the live reader's "nothing more queued").
    pub(super) fn more_ready(&self) -> bool {
        self.pick(false, true).is_some()
    }

    fn pick(&self, force: bool, past_handed: bool) -> Option<usize> {
        let skip = |i: usize| usize::from(past_handed && self.handed == Some(i));
        let mut best: Option<(Ts, usize)> = None;
        for (i, r) in self.rings.iter().enumerate() {
            if let Some(m) = r.head(skip(i))
                && best.is_none_or(|b| m.ts < b.0)
            {
                best = Some((m.ts, i));
            }
        }
        let (ts, i) = best?;
        let waits = |(j, r): (usize, &Ring)| r.head(skip(j)).is_none() && r.mark < ts;
        (force || !self.rings.iter().enumerate().any(waits)).then_some(i)
    }

    /// Hands out the head of ring `i` (from [`Merge::ready`]): its batch
    /// and where the packet is in it.
    pub(super) fn take(&mut self, i: usize) -> (&Batch, Meta) {
        self.handed = Some(i);
        let r = &self.rings[i];
        let b = r.batches.front().expect("a ready ring has a batch");
        (b, b.pkts[r.idx])
    }

    /// Packets queued and not handed out yet.
    pub(super) fn holds_packets(&self) -> bool {
        self.rings.iter().any(|r| r.head(0).is_some())
    }

    /// Every batch still held (the capture is being dropped).
    pub(super) fn drain(&mut self, mut release: impl FnMut(Batch)) {
        self.handed = None;
        for r in &mut self.rings {
            r.idx = 0;
            for b in r.batches.drain(..) {
                release(b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(ring: u16, times: &[i64]) -> Batch {
        let mut b = Batch { ring, ..Batch::default() };
        for &t in times {
            let start = b.data.len() as u32;
            b.data.push(ring as u8);
            b.pkts.push(Meta { ts: Ts(t), start, len: 1, orig_len: 1 });
        }
        b.mark = Ts(*times.last().unwrap_or(&0));
        b
    }

    fn mark(ring: u16, t: i64) -> Batch {
        Batch { ring, mark: Ts(t), ..Batch::default() }
    }

    /// Everything releasable now, as (ring, time).
    fn take_ready(m: &mut Merge, force: bool) -> Vec<(u16, i64)> {
        let mut out = Vec::new();
        loop {
            m.advance(drop);
            let Some(i) = m.ready(force) else { break };
            let (b, meta) = m.take(i);
            out.push((b.data[meta.start as usize] as u16, meta.ts.0));
        }
        out
    }

    #[test]
    fn two_rings_come_out_in_time_order() {
        let mut m = Merge::new(2);
        m.push(batch(0, &[1, 4, 6]));
        m.push(batch(1, &[2, 3, 6, 9]));
        // Ring 0's last packet is at 6: ring 1's 9 waits for ring 0 to say
        // more; equal times go in ring order.
        assert_eq!(take_ready(&mut m, false), vec![(0, 1), (1, 2), (1, 3), (0, 4), (0, 6), (1, 6)]);
        m.push(mark(0, 9));
        assert_eq!(take_ready(&mut m, false), vec![(1, 9)]);
    }

    #[test]
    fn a_quiet_ring_holds_packets_until_its_mark_passes_them() {
        let mut m = Merge::new(3);
        m.push(batch(1, &[10, 20, 30]));
        // Rings 0 and 2 have said nothing: nothing may go.
        assert_eq!(take_ready(&mut m, false), vec![]);
        m.push(mark(0, 25));
        assert_eq!(take_ready(&mut m, false), vec![]);
        m.push(mark(2, 15));
        assert_eq!(take_ready(&mut m, false), vec![(1, 10)]);
        // A late packet of ring 2 (after its mark) still goes first.
        m.push(batch(2, &[18]));
        m.push(mark(2, 40));
        assert_eq!(take_ready(&mut m, false), vec![(2, 18), (1, 20)]);
        // Ring 0's mark holds 30 back until it moves, or the caller forces.
        assert_eq!(take_ready(&mut m, true), vec![(1, 30)]);
        assert!(!m.holds_packets());
    }

    #[test]
    fn an_ended_ring_never_holds_the_others() {
        let mut m = Merge::new(2);
        m.push(batch(0, &[5, 7]));
        m.push(mark(1, DONE.0));
        assert_eq!(take_ready(&mut m, false), vec![(0, 5), (0, 7)]);
        let mut m = Merge::new(2);
        m.push(batch(1, &[5]));
        m.all_done();
        assert_eq!(take_ready(&mut m, false), vec![(1, 5)]);
    }

    #[test]
    fn more_ready_looks_past_the_packet_handed_out() {
        let mut m = Merge::new(2);
        m.push(batch(0, &[1]));
        m.push(batch(0, &[2]));
        m.push(mark(1, 5));
        let i = m.ready(false).unwrap();
        m.take(i);
        assert!(m.more_ready(), "the next batch's packet");
        m.advance(drop);
        m.take(m.ready(false).unwrap());
        assert!(!m.more_ready(), "nothing after it");
    }

    #[test]
    fn one_ring_is_its_own_order() {
        let mut m = Merge::new(1);
        // Timestamps a ring may deliver out of order stay as delivered.
        m.push(batch(0, &[3, 1, 2]));
        m.push(batch(0, &[2]));
        assert_eq!(take_ready(&mut m, false), vec![(0, 3), (0, 1), (0, 2), (0, 2)]);
    }

    #[test]
    fn emptied_batches_are_released_once_and_a_mark_only_batch_comes_back() {
        let mut m = Merge::new(2);
        assert!(m.push(mark(1, 100)).is_some());
        assert!(m.push(batch(0, &[1, 2])).is_none());
        assert!(m.push(batch(0, &[3])).is_none());
        let mut released = 0;
        for _ in 0..3 {
            m.advance(|_| released += 1);
            let i = m.ready(false).unwrap();
            m.take(i);
        }
        m.advance(|_| released += 1);
        assert_eq!(released, 2);
        assert_eq!(m.ready(false), None);
    }
}
