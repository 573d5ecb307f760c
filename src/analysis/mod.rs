//! The analysis stage, after the connection layer: events go to
//! correlation ([`crate::correlate`]), which raises facts
//! ([`crate::facts`]); each fact goes to every detector
//! ([`crate::detect`]); the records correlation made and the findings the
//! detectors made wait here in packet-time order ([`order`]) for the sinks.
//!
//! Correlation knows nothing of findings and detectors nothing of
//! correlation's state: this stage is the only place that knows both.

pub mod order;

use std::collections::BTreeMap;

use crate::correlate::{Config, Correlator, SessionRow};
use crate::detect::Detectors;
use crate::event::Event;
use crate::facts::{Fact, FactSink};
use crate::record::{Finding, FindingKind, Record, Severity};
use crate::time::Ts;

/// What the findings written so far add up to.
#[derive(Debug, Default, Clone)]
pub struct FindingStats {
    pub by_kind: BTreeMap<FindingKind, u64>,
    pub errors: u64,
    pub warnings: u64,
}

impl FindingStats {
    /// The worst severity among the findings written, if any.
    pub fn worst(&self) -> Option<Severity> {
        if self.errors > 0 {
            Some(Severity::Error)
        } else if self.warnings > 0 {
            Some(Severity::Warning)
        } else if !self.by_kind.is_empty() {
            Some(Severity::Info)
        } else {
            None
        }
    }
}

/// Policy: the detectors, and the records and findings on their way out.
struct Policy {
    detectors: Detectors,
    /// Findings about the facts raised since correlation last settled.
    pending: Vec<Finding>,
    out: order::Reorder,
    /// The last fault id given (findings about one fault share one).
    next_fault: u64,
    stats: FindingStats,
}

impl FactSink for Policy {
    fn record(&mut self, r: Record) {
        self.out.push(r);
    }

    fn fact(&mut self, f: Fact<'_>) {
        self.detectors.on_fact(&f, &mut self.pending);
    }

    /// Numbers the faults in output order and counts the findings.
    fn settle(&mut self) {
        for mut f in self.pending.drain(..) {
            if f.primary || self.next_fault == 0 {
                self.next_fault += 1;
            }
            f.fault = self.next_fault;
            *self.stats.by_kind.entry(f.kind).or_default() += 1;
            match f.severity {
                Severity::Error => self.stats.errors += 1,
                Severity::Warning => self.stats.warnings += 1,
                Severity::Info => {}
            }
            self.out.push(Record::Finding(f));
        }
    }
}

pub struct Analysis {
    pub correlation: Correlator,
    policy: Policy,
    /// `--timeout`: idle timeouts the user expects, seconds.
    timeouts: Vec<f64>,
    /// Live capture: detectors get the open sessions on each tick.
    live: bool,
    last_tick: Option<Ts>,
    /// Held bytes at which records are released before the next tick.
    release_at: usize,
}

impl Analysis {
    pub fn new(cfg: Config, detectors: Detectors) -> Analysis {
        let (timeouts, live) = (cfg.timeouts.clone(), cfg.live);
        Analysis {
            correlation: Correlator::new(cfg),
            policy: Policy {
                detectors,
                pending: Vec::new(),
                out: order::Reorder::default(),
                next_fault: 0,
                stats: FindingStats::default(),
            },
            timeouts,
            live,
            last_tick: None,
            release_at: order::RELEASE_EVERY_BYTES,
        }
    }

    /// One event from the connection layer.
    #[inline]
    pub fn event(&mut self, ev: Event) {
        let ts = ev.ts;
        self.correlation.event(ev, &mut self.policy);
        if self.policy.out.bytes() >= self.release_at {
            self.release_early(ts);
        }
    }

    /// Between two ticks, records piled up ([`order::RELEASE_EVERY_BYTES`]
    /// more since the last release): what no pending decision can precede
    /// any more is released now rather than at the next tick.
    #[cold]
    #[inline(never)]
    fn release_early(&mut self, now: Ts) {
        self.policy.settle();
        let w = self.watermark(now);
        self.policy.out.release(w);
        self.release_at = self.policy.out.bytes() + order::RELEASE_EVERY_BYTES;
    }

    /// Whether a tick is due at `now` (once per second of packet time):
    /// asked per packet, so it stays a compare.
    #[inline]
    pub fn tick_due(&self, now: Ts) -> bool {
        self.last_tick.is_none_or(|t| now.0 - t.0 >= 1_000_000)
    }

    /// Live capture: detectors want the open sessions on each tick.
    #[inline]
    pub fn wants_rows(&self) -> bool {
        self.live
    }

    /// Packet time passed `now`: correlation's timers, then the
    /// detectors'; records stamped before the watermark are released.
    /// `open` lists open sessions (live only). Once a second: kept out of
    /// the per-packet path.
    #[inline(never)]
    pub fn tick(&mut self, now: Ts, open: &[SessionRow]) {
        if !self.tick_due(now) {
            return;
        }
        self.last_tick = Some(now);
        self.correlation.tick(now, &mut self.policy);
        let p = &mut self.policy;
        p.detectors.on_tick(now, open, &mut p.pending);
        p.settle();
        let w = self.watermark(now);
        self.policy.out.release(w);
        self.release_at = self.policy.out.bytes() + order::RELEASE_EVERY_BYTES;
    }

    /// The earliest stamp a record not written yet may carry, as of `now`:
    /// what correlation and the detectors have not decided yet, never more
    /// than [`order::MAX_HOLD_S`] back.
    fn watermark(&mut self, now: Ts) -> Ts {
        let floor = now.add_secs(-order::MAX_HOLD_S);
        let mut w = self.correlation.pending_since(now, floor);
        if let Some(t) = self.policy.detectors.pending_since() {
            w = w.min(t);
        }
        w.max(floor)
    }

    /// End of input (after the flow table's final `Close` events).
    pub fn finish(&mut self, now: Ts) {
        self.correlation.finish(now, &mut self.policy);
        let p = &mut self.policy;
        p.detectors.finish(now, &mut p.pending);
        p.settle();
        p.out.release_all();
    }

    pub fn has_output(&self) -> bool {
        self.policy.out.has_ready()
    }

    /// Records ready to be written, in time order (drained by the pipeline
    /// into sinks).
    pub fn drain(&mut self) -> std::vec::Drain<'_, Box<Record>> {
        self.policy.out.drain()
    }

    /// Records written early to keep the output buffer within its share of
    /// the memory budget.
    pub fn written_early_for_memory(&self) -> u64 {
        self.policy.out.forced_memory
    }

    /// Bytes of records held for time order (charged to the budget).
    #[inline]
    pub fn held_bytes(&self) -> usize {
        self.policy.out.bytes()
    }

    /// The most the output buffer may hold, in bytes.
    pub fn set_output_cap(&mut self, bytes: usize) {
        self.policy.out.set_byte_cap(bytes);
    }

    /// What the detectors' bounds gave up.
    pub fn detectors_gave_up(&self) -> crate::detect::GaveUp {
        self.policy.detectors.gave_up()
    }

    /// The findings written so far.
    pub fn findings(&self) -> &FindingStats {
        &self.policy.stats
    }

    /// The smallest idle timeout the user stated (`--timeout`), if any.
    pub fn idle_boundary_stated(&self) -> Option<f64> {
        self.timeouts.iter().copied().reduce(f64::min)
    }

    /// The idle timeout learned from the capture, if any.
    pub fn learned_boundary(&self) -> Option<f64> {
        self.policy.detectors.learned_boundary()
    }

    /// The idle timeout sessions are expected to hit: the smallest one the
    /// user stated, else the one learned from the capture, if any.
    pub fn idle_boundary(&self) -> Option<f64> {
        self.timeouts.iter().copied().reduce(f64::min).or_else(|| self.policy.detectors.learned_boundary())
    }

    /// The same boundary as findings name it, with where it comes from (a
    /// learned one taken as the product default it matches).
    pub fn expected_boundary(&self) -> Option<(f64, crate::detect::boundary::Source)> {
        crate::detect::boundary::expected(&self.timeouts, self.policy.detectors.learned_boundary())
    }
}
