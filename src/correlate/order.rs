//! Output in packet-time order.
//!
//! Each record carries a time stamp (a handshake: its request's first byte;
//! a session: its end; a finding: the time of what it is about; `-v` lines:
//! their packet). Records are produced when their facts are complete, which
//! can be later than their stamp (a handshake waits for its answer, a close
//! is judged once the closes around it are known). They are held here and
//! written in stamp order once nothing stamped earlier can still come: the
//! *watermark* is the earliest stamp still pending (requests waiting for an
//! answer, sessions closing, findings a detector has not decided), never
//! more than [`MAX_HOLD_S`] behind packet time.

use std::collections::BTreeMap;

use crate::record::Record;
use crate::time::Ts;

/// No record is held longer than this (packet time). Decisions are taken
/// within `detect::DECIDE_WITHIN_S`; only an answer that takes longer (an
/// upgrade left waiting for minutes, a connection that expired silently)
/// is written out of order, when it comes.
pub const MAX_HOLD_S: f64 = 90.0;
/// Records held at most; past it the oldest are written (memory bound).
pub const MAX_HELD: usize = 50_000;

/// The time a record is ordered by, in microseconds.
pub fn stamp_us(r: &Record) -> i64 {
    let s = match r {
        Record::Handshake(h) => h.ts,
        Record::Session(s) => s.end,
        Record::Finding(f) => f.ts,
        Record::Http(m) => m.ts,
        Record::Frame(f) => f.ts,
        Record::Summary(_) => return i64::MAX,
    };
    (s * 1e6).round() as i64
}

#[derive(Default)]
pub struct Reorder {
    held: BTreeMap<(i64, u64), Record>,
    seq: u64,
    ready: Vec<Record>,
    /// Records written before an earlier-stamped one could come (held too
    /// long or over the count bound).
    pub forced: u64,
}

impl Reorder {
    /// A record whose facts are complete. Records with the same stamp keep
    /// the order they were produced in (a handshake before its findings).
    pub fn push(&mut self, r: Record) {
        let k = (stamp_us(&r), self.seq);
        self.seq += 1;
        self.held.insert(k, r);
        while self.held.len() > MAX_HELD {
            if let Some((_, r)) = self.held.pop_first() {
                self.forced += 1;
                self.ready.push(r);
            }
        }
    }

    /// Releases every record stamped at or before `watermark`.
    pub fn release(&mut self, watermark: Ts) {
        let w = watermark.0;
        while let Some(e) = self.held.first_entry() {
            if e.key().0 > w {
                break;
            }
            self.ready.push(e.remove());
        }
    }

    pub fn release_all(&mut self) {
        let held = std::mem::take(&mut self.held);
        self.ready.extend(held.into_values());
    }

    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    pub fn drain(&mut self) -> std::vec::Drain<'_, Record> {
        self.ready.drain(..)
    }

    pub fn held(&self) -> usize {
        self.held.len()
    }
}
