//! Per-direction TCP stream reassembly for a passive observer.
//!
//! In-order data is delivered straight from the packet buffer (no copy);
//! only segments that arrive ahead of a hole are copied and held. Held data
//! is bounded per direction ([`MAX_HELD_BYTES`], [`MAX_HELD_SEGMENTS`]):
//! when a bound is hit the hole is declared lost, a gap is delivered and the
//! stream resumes at the first held segment (counted in `limit_hits`).
//!
//! Invariant: every held segment starts strictly after `next`, and `held`
//! is sorted by its distance from `next`.
//!
//! The assembler knows nothing of HTTP: it hands out [`Chunk`]s.

use super::seq::Seq;

/// Bytes held out of order per direction before a hole is given up on.
pub const MAX_HELD_BYTES: usize = 256 * 1024;
/// Out-of-order segments held per direction (as smoltcp's contig limit).
pub const MAX_HELD_SEGMENTS: usize = 64;

/// What the assembler hands to the stream consumer, in stream order.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk<'a> {
    Data(&'a [u8]),
    /// `n` bytes of the stream were never seen (capture loss, snap length).
    Gap(u32),
    /// The sender's FIN, after all its data.
    Fin,
}

/// How a segment related to the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegKind {
    /// Carried new bytes (delivered now).
    New,
    /// Ahead of a hole; held.
    OutOfOrder,
    /// Only bytes already delivered: a retransmission.
    Retransmit,
    /// TCP keep-alive probe: zero or one byte at `next - 1` (RFC 9293
    /// 3.8.4). Not activity: it must not reset any idle timer.
    KeepAlive,
    /// No payload (pure ACK, or a FIN alone).
    Empty,
}

/// Reassembly counters, summed over directions into the summary.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyStats {
    pub gaps: u64,
    pub gap_bytes: u64,
    pub retransmits: u64,
    pub keepalives: u64,
    pub out_of_order: u64,
    pub limit_hits: u64,
    /// Retransmitted bytes that differ from what was first seen for the
    /// same sequence numbers (Zeek's `rexmit_inconsistency`: an injection
    /// or an evasion attempt, or a broken stack). The first copy is kept,
    /// as the receiving host keeps it.
    pub rexmit_inconsistent: u64,
}

impl ReassemblyStats {
    pub fn add(&mut self, o: &AsmStats) {
        self.gaps += o.gaps as u64;
        self.gap_bytes += o.gap_bytes;
        self.retransmits += o.retransmits as u64;
        self.keepalives += o.keepalives as u64;
        self.out_of_order += o.out_of_order as u64;
        self.limit_hits += o.limit_hits as u64;
        self.rexmit_inconsistent += o.rexmit_inconsistent as u64;
    }
}

/// The same counters for one direction of one connection, in the
/// connection's own (small) state; they saturate rather than wrap.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AsmStats {
    pub gaps: u32,
    pub retransmits: u32,
    pub keepalives: u32,
    pub out_of_order: u32,
    pub limit_hits: u32,
    pub rexmit_inconsistent: u32,
    pub gap_bytes: u64,
}

fn inc(c: &mut u32) {
    *c = c.saturating_add(1);
}

/// The last segment delivered in order, to compare a retransmission with.
#[derive(Debug, Default, Clone, Copy)]
struct Recent {
    seq: Seq,
    len: u32,
    hash: u32,
}

/// A fingerprint of a segment's bytes: its length (kept beside it) and
/// its first and last eight bytes, two loads, so that the per-packet cost
/// does not grow with the payload. An injected segment differs from the
/// original there (a different response line, a different frame header);
/// a change confined to the bytes in between goes unseen.
#[inline]
fn fingerprint(d: &[u8]) -> u32 {
    let word = |w: Option<&[u8]>| w.and_then(|w| <[u8; 8]>::try_from(w).ok()).map_or(0, u64::from_le_bytes);
    let n = d.len();
    let (head, tail) = if n >= 8 {
        (word(d.get(..8)), word(d.get(n - 8..)))
    } else {
        (d.iter().fold(0u64, |a, &b| a << 8 | b as u64), 0)
    };
    let h = (head ^ tail.rotate_left(29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (h ^ (h >> 32)) as u32
}

#[derive(Debug)]
struct Held {
    seq: Seq,
    data: Vec<u8>,
    missing: u32,
}

impl Held {
    fn len(&self) -> u32 {
        self.data.len() as u32 + self.missing
    }
}

#[derive(Debug, Default)]
pub struct Assembler {
    /// Next stream byte expected; unknown until the first SYN or data.
    next: Option<Seq>,
    held: Vec<Held>,
    held_bytes: u32,
    fin_delivered: bool,
    fin: Option<Seq>,
    recent: Recent,
    pub stats: AsmStats,
}

impl Assembler {
    pub fn new() -> Assembler {
        Assembler::default()
    }

    /// A SYN fixes the initial sequence number: data starts at `isn + 1`.
    pub fn syn(&mut self, isn: Seq) {
        if self.next.is_none() {
            self.next = Some(isn + 1);
        }
    }

    pub fn next_seq(&self) -> Option<Seq> {
        self.next
    }

    pub fn has_held(&self) -> bool {
        !self.held.is_empty()
    }

    /// Memory held for segments ahead of a hole.
    #[inline]
    pub fn held_memory(&self) -> usize {
        if self.held.capacity() == 0 {
            return 0;
        }
        self.held_bytes as usize + self.held.capacity() * std::mem::size_of::<Held>() + self.held.len() * 16
    }

    /// Memory pressure: every hole is declared lost now, and what was held
    /// behind it delivered (as when a per-flow bound is hit). Returns the
    /// bytes freed.
    pub fn shed(&mut self, out: &mut impl FnMut(Chunk<'_>)) -> usize {
        let freed = self.held_memory();
        if freed == 0 {
            return 0;
        }
        while let Some(first) = self.held.first().map(|h| h.seq) {
            self.gap_to(first, out);
            self.drain(out);
        }
        self.held = Vec::new();
        self.maybe_fin(out);
        freed
    }

    pub fn fin_delivered(&self) -> bool {
        self.fin_delivered
    }

    /// Processes one segment's payload (and FIN flag).
    pub fn segment(
        &mut self,
        seq: Seq,
        payload: &[u8],
        missing: u32,
        fin: bool,
        out: &mut impl FnMut(Chunk<'_>),
    ) -> SegKind {
        let len = payload.len() as u32 + missing;
        let next = *self.next.get_or_insert(seq);
        if fin && self.fin.is_none() {
            self.fin = Some(seq + len);
        }
        let d = seq - next;
        let kind = if len == 0 {
            if d == -1 && !fin {
                inc(&mut self.stats.keepalives);
                SegKind::KeepAlive
            } else {
                SegKind::Empty
            }
        } else if d + len as i64 <= 0 {
            if d == -1 && len == 1 {
                inc(&mut self.stats.keepalives);
                SegKind::KeepAlive
            } else {
                inc(&mut self.stats.retransmits);
                // Same bytes again? Only the last segment is remembered
                // (a hash of it): a sender retransmits what is unacked,
                // the most recent segments first.
                let r = self.recent;
                if missing == 0 && r.len != 0 && r.seq == seq && r.len == len && r.hash != fingerprint(payload) {
                    inc(&mut self.stats.rexmit_inconsistent);
                }
                SegKind::Retransmit
            }
        } else if d <= 0 {
            // New data, possibly overlapping what was delivered: trim.
            self.recent = if d == 0 && missing == 0 && self.held.is_empty() {
                Recent { seq, len, hash: fingerprint(payload) }
            } else {
                Recent::default()
            };
            self.deliver(trim(payload, missing, (-d) as u32), out);
            self.drain(out);
            SegKind::New
        } else {
            inc(&mut self.stats.out_of_order);
            self.hold(seq, payload, missing, out);
            SegKind::OutOfOrder
        };
        self.maybe_fin(out);
        kind
    }

    /// The peer acknowledged `ack`. If bytes below it are missing while
    /// later bytes are held, those bytes were received by the peer but not
    /// by the capture: they will never come, so the hole becomes a gap now.
    pub fn peer_acked(&mut self, ack: Seq, out: &mut impl FnMut(Chunk<'_>)) {
        let Some(next) = self.next else { return };
        if self.held.is_empty() || ack - next <= 0 {
            return;
        }
        let first = self.held[0].seq;
        let to = if ack - first < 0 { ack } else { first };
        self.gap_to(to, out);
        self.drain(out);
        self.maybe_fin(out);
    }

    /// End of the connection (RST, expiry, end of capture): deliver what
    /// is held, with gaps for the holes, then the FIN if one was seen.
    pub fn flush(&mut self, out: &mut impl FnMut(Chunk<'_>)) {
        while let Some(first) = self.held.first().map(|h| h.seq) {
            self.gap_to(first, out);
            self.drain(out);
        }
        if let (Some(f), Some(next)) = (self.fin, self.next)
            && !self.fin_delivered
            && f - next > 0
        {
            self.gap_to(f, out);
        }
        self.maybe_fin(out);
    }

    fn deliver(&mut self, (data, missing): (&[u8], u32), out: &mut impl FnMut(Chunk<'_>)) {
        if !data.is_empty() {
            out(Chunk::Data(data));
        }
        if missing > 0 {
            inc(&mut self.stats.gaps);
            self.stats.gap_bytes += missing as u64;
            out(Chunk::Gap(missing));
        }
        let n = data.len() as u32 + missing;
        self.next = Some(self.next.unwrap_or_default() + n);
    }

    fn gap_to(&mut self, to: Seq, out: &mut impl FnMut(Chunk<'_>)) {
        let next = self.next.unwrap_or(to);
        let n = to - next;
        if n > 0 {
            inc(&mut self.stats.gaps);
            self.stats.gap_bytes += n as u64;
            out(Chunk::Gap(n as u32));
            self.next = Some(to);
        }
    }

    /// Delivers held segments that became contiguous.
    fn drain(&mut self, out: &mut impl FnMut(Chunk<'_>)) {
        while let Some(h) = self.held.first() {
            let next = self.next.unwrap_or(h.seq);
            let d = h.seq - next;
            if d > 0 {
                break;
            }
            let h = self.held.remove(0);
            self.held_bytes -= h.data.len() as u32;
            if d + h.len() as i64 > 0 {
                self.deliver(trim(&h.data, h.missing, (-d) as u32), out);
            }
        }
    }

    fn hold(&mut self, seq: Seq, payload: &[u8], missing: u32, out: &mut impl FnMut(Chunk<'_>)) {
        // Make room: give up on the oldest hole until the segment fits.
        while !self.held.is_empty()
            && (self.held_bytes as usize + payload.len() > MAX_HELD_BYTES || self.held.len() >= MAX_HELD_SEGMENTS)
        {
            inc(&mut self.stats.limit_hits);
            let first = self.held[0].seq;
            self.gap_to(first, out);
            self.drain(out);
        }
        let next = self.next.unwrap_or(seq);
        if seq - next <= 0 {
            // The flush above caught up with this segment.
            let d = seq - next;
            if d + (payload.len() as u32 + missing) as i64 > 0 {
                self.deliver(trim(payload, missing, (-d) as u32), out);
                self.drain(out);
            }
            return;
        }
        if payload.len() > MAX_HELD_BYTES {
            inc(&mut self.stats.limit_hits);
            self.gap_to(seq, out);
            self.deliver((payload, missing), out);
            self.drain(out);
            return;
        }
        let d = seq - next;
        let at = self.held.partition_point(|h| h.seq - next < d);
        // A retransmitted out-of-order segment at the same place: keep the
        // first copy of every byte (what the receiver kept), the longer
        // of the two for the rest.
        if let Some(h) = self.held.get(at)
            && h.seq == seq
        {
            let common = h.data.len().min(payload.len());
            if h.data[..common] != payload[..common] {
                inc(&mut self.stats.rexmit_inconsistent);
            }
            if h.len() >= payload.len() as u32 + missing {
                return;
            }
            let mut data = payload.to_vec();
            data[..common].copy_from_slice(&h.data[..common]);
            self.held_bytes = self.held_bytes - h.data.len() as u32 + data.len() as u32;
            self.held[at] = Held { seq, data, missing };
            return;
        }
        let mut data = payload.to_vec();
        let mut differs = false;
        // Overlaps with the held segments around this one: their bytes were
        // first, they are kept.
        if at > 0 {
            let p = &self.held[at - 1];
            let off = seq - p.seq;
            if off > 0 && (off as usize) < p.data.len() {
                let common = (p.data.len() - off as usize).min(data.len());
                let theirs = &p.data[off as usize..off as usize + common];
                differs |= theirs != &data[..common];
                data[..common].copy_from_slice(theirs);
            }
        }
        if let Some(n) = self.held.get(at) {
            let off = n.seq - seq;
            if off > 0 && (off as usize) < data.len() {
                let common = (data.len() - off as usize).min(n.data.len());
                let theirs = &n.data[..common];
                differs |= theirs != &data[off as usize..off as usize + common];
                data[off as usize..off as usize + common].copy_from_slice(theirs);
            }
        }
        if differs {
            inc(&mut self.stats.rexmit_inconsistent);
        }
        self.held_bytes += data.len() as u32;
        self.held.insert(at, Held { seq, data, missing });
    }

    fn maybe_fin(&mut self, out: &mut impl FnMut(Chunk<'_>)) {
        if self.fin_delivered {
            return;
        }
        if let (Some(f), Some(next)) = (self.fin, self.next)
            && f - next <= 0
            && self.held.is_empty()
        {
            self.fin_delivered = true;
            out(Chunk::Fin);
        }
    }
}

/// Drops the first `n` sequence bytes of a (payload, missing) pair.
fn trim(payload: &[u8], missing: u32, n: u32) -> (&[u8], u32) {
    let n = n as usize;
    if n <= payload.len() {
        (&payload[n..], missing)
    } else {
        let rest = (n - payload.len()) as u32;
        (&[], missing.saturating_sub(rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a consumer saw: data bytes, with gaps as `_` runs, FIN as `|`.
    #[derive(Default)]
    struct Stream(Vec<u8>);

    impl Stream {
        fn push(&mut self, c: Chunk<'_>) {
            match c {
                Chunk::Data(d) => self.0.extend_from_slice(d),
                Chunk::Gap(n) => self.0.extend(std::iter::repeat_n(b'_', n as usize)),
                Chunk::Fin => self.0.push(b'|'),
            }
        }
        fn s(&self) -> String {
            String::from_utf8_lossy(&self.0).into_owned()
        }
    }

    fn run(isn: u32, segs: &[(u32, &str, bool)]) -> (String, Assembler) {
        let mut a = Assembler::new();
        a.syn(Seq::new(isn));
        let mut s = Stream::default();
        for &(off, data, fin) in segs {
            a.segment(Seq::new(isn) + 1 + off, data.as_bytes(), 0, fin, &mut |c| s.push(c));
        }
        (s.s(), a)
    }

    #[test]
    fn in_order() {
        let (s, _) = run(100, &[(0, "GET ", false), (4, "/ HTTP", false), (10, "", true)]);
        assert_eq!(s, "GET / HTTP|");
    }

    #[test]
    fn out_of_order_is_reordered() {
        let (s, a) = run(100, &[(4, "5678", false), (8, "9", true), (0, "1234", false)]);
        assert_eq!(s, "123456789|");
        assert_eq!(a.stats.out_of_order, 2);
        assert!(!a.has_held());
    }

    #[test]
    fn retransmission_and_overlap() {
        let (s, a) = run(7, &[(0, "abcd", false), (0, "abcd", false), (2, "cdefg", false), (1, "bcdefgh", false)]);
        assert_eq!(s, "abcdefgh");
        assert_eq!(a.stats.retransmits, 1);
    }

    #[test]
    fn overlapping_held_segments() {
        let (s, _) = run(0, &[(6, "ghij", false), (3, "defgh", false), (0, "abc", false)]);
        assert_eq!(s, "abcdefghij");
    }

    #[test]
    fn sequence_wraparound() {
        let isn = u32::MAX - 5;
        let (s, a) = run(isn, &[(0, "0123", false), (8, "89", false), (4, "4567", false), (10, "", true)]);
        assert_eq!(s, "0123456789|");
        assert_eq!(a.next_seq(), Some(Seq::new(isn) + 11));
    }

    #[test]
    fn keepalive_probe_is_not_data() {
        let mut a = Assembler::new();
        a.syn(Seq::new(0));
        let mut s = Stream::default();
        assert_eq!(a.segment(Seq::new(1), b"hello", 0, false, &mut |c| s.push(c)), SegKind::New);
        // Linux probe: no data, seq = next - 1.
        assert_eq!(a.segment(Seq::new(5), b"", 0, false, &mut |c| s.push(c)), SegKind::KeepAlive);
        // Windows probe: one garbage byte at next - 1.
        assert_eq!(a.segment(Seq::new(5), b"\0", 0, false, &mut |c| s.push(c)), SegKind::KeepAlive);
        assert_eq!(a.stats.keepalives, 2);
        assert_eq!(s.s(), "hello");
    }

    #[test]
    fn zero_window_probe_byte_is_delivered_once() {
        let (s, _) = run(0, &[(0, "ab", false), (2, "c", false), (2, "cdef", false)]);
        assert_eq!(s, "abcdef");
    }

    #[test]
    fn midstream_start_without_syn() {
        let mut a = Assembler::new();
        let mut s = Stream::default();
        a.segment(Seq::new(5000), b"xyz", 0, false, &mut |c| s.push(c));
        a.segment(Seq::new(5003), b"!", 0, true, &mut |c| s.push(c));
        assert_eq!(s.s(), "xyz!|");
    }

    #[test]
    fn fin_waits_for_missing_data_then_flush_reports_gap() {
        let (s, mut a) = run(0, &[(0, "ab", false), (4, "ef", true)]);
        assert_eq!(s, "ab");
        let mut s2 = Stream::default();
        a.flush(&mut |c| s2.push(c));
        assert_eq!(s2.s(), "__ef|");
        assert_eq!(a.stats.gaps, 1);
        assert_eq!(a.stats.gap_bytes, 2);
    }

    #[test]
    fn peer_ack_beyond_hole_declares_gap() {
        let (s, mut a) = run(0, &[(0, "ab", false), (4, "ef", false)]);
        assert_eq!(s, "ab");
        let mut s2 = Stream::default();
        a.peer_acked(Seq::new(7), &mut |c| s2.push(c));
        assert_eq!(s2.s(), "__ef");
        // An ACK below the hole changes nothing.
        let (_, mut b) = run(0, &[(0, "ab", false), (4, "ef", false)]);
        let mut s3 = Stream::default();
        b.peer_acked(Seq::new(3), &mut |c| s3.push(c));
        assert_eq!(s3.s(), "");
        // An ACK inside the hole: the acked part is lost, the rest may come.
        b.peer_acked(Seq::new(4), &mut |c| s3.push(c));
        assert_eq!(s3.s(), "_");
        assert!(b.has_held());
    }

    #[test]
    fn snaplen_missing_bytes_become_gap() {
        let mut a = Assembler::new();
        a.syn(Seq::new(0));
        let mut s = Stream::default();
        a.segment(Seq::new(1), b"abc", 3, false, &mut |c| s.push(c));
        a.segment(Seq::new(7), b"g", 0, false, &mut |c| s.push(c));
        assert_eq!(s.s(), "abc___g");
    }

    #[test]
    fn held_bytes_are_bounded() {
        let mut a = Assembler::new();
        a.syn(Seq::new(0));
        let mut s = Stream::default();
        let big = vec![b'x'; 1000];
        // Never fill the hole at offset 0; keep sending data after it.
        for i in 0..(MAX_HELD_SEGMENTS as u32 + 10) {
            a.segment(Seq::new(2 + i * 1000), &big, 0, false, &mut |c| s.push(c));
        }
        assert!(a.stats.limit_hits > 0);
        assert!(a.held.len() <= MAX_HELD_SEGMENTS);
        assert!(a.held_bytes as usize <= MAX_HELD_BYTES);
        assert!(s.0.starts_with(b"_x"));
    }

    #[test]
    fn retransmission_with_other_bytes_is_counted_and_the_first_kept() {
        // In order, then the same segment with other bytes.
        let (s, a) = run(0, &[(0, "GET /a", false), (0, "GET /b", false), (0, "GET /a", false)]);
        assert_eq!(s, "GET /a");
        assert_eq!(a.stats.rexmit_inconsistent, 1);
        assert_eq!(a.stats.retransmits, 2);
        // Out of order: the held copy is compared, the first one delivered.
        let (s, a) = run(0, &[(4, "efgh", false), (4, "XXXX", false), (2, "cdEF", false), (0, "ab", false)]);
        assert_eq!(s, "abcdefgh");
        assert_eq!(a.stats.rexmit_inconsistent, 2);
        // Ordinary retransmissions and overlaps are not inconsistent.
        let (_, a) = run(7, &[(0, "abcd", false), (0, "abcd", false), (2, "cdefg", false), (1, "bcdefgh", false)]);
        assert_eq!(a.stats.rexmit_inconsistent, 0);
    }

    #[test]
    fn shedding_turns_holes_into_gaps_and_frees_the_memory() {
        let (s, mut a) = run(0, &[(0, "ab", false), (4, "ef", false), (8, "ij", true)]);
        assert_eq!(s, "ab");
        assert!(a.held_memory() > 0);
        let mut s2 = Stream::default();
        assert!(a.shed(&mut |c| s2.push(c)) > 0);
        assert_eq!(s2.s(), "__ef__ij|");
        assert_eq!(a.held_memory(), 0);
    }

    /// Model check: random segmentation, order, duplication and overlap of
    /// a byte stream always reassembles to the stream itself.
    #[test]
    fn randomized_against_model() {
        let stream: Vec<u8> = (0..3000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut rand = |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        for round in 0..200 {
            let isn = (rand(u32::MAX as u64) as u32).wrapping_sub(if round % 2 == 0 { 1000 } else { 0 });
            let mut segs = Vec::new();
            let mut at = 0usize;
            while at < stream.len() {
                let n = 1 + rand(200) as usize;
                let end = (at + n).min(stream.len());
                segs.push((at, end));
                if rand(4) == 0 {
                    // overlapping retransmission
                    let s = at.saturating_sub(rand(50) as usize);
                    segs.push((s, end));
                }
                at = end;
            }
            // Shuffle locally (bounded displacement, like real reordering).
            for i in 0..segs.len() {
                let j = (i + rand(8) as usize).min(segs.len() - 1);
                segs.swap(i, j);
            }
            let mut a = Assembler::new();
            a.syn(Seq::new(isn));
            let mut s = Stream::default();
            for &(b, e) in &segs {
                a.segment(Seq::new(isn) + 1 + b as u32, &stream[b..e], 0, false, &mut |c| s.push(c));
            }
            a.flush(&mut |c| s.push(c));
            assert_eq!(s.0, stream, "round {round}");
        }
    }
}
