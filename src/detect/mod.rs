//! Detectors turn correlated facts into findings. They see exchanges (a
//! client request paired with what the proxy forwarded), finished sessions
//! and the passage of packet time; they never see bytes.
//!
//! Finding `kind`s are stable identifiers of the JSON contract.

use crate::facts::{Exchange, Fact, H2Conn, SessionEnd, SessionRow};
pub use crate::record::{Finding, FindingKind, Severity};
use crate::time::Ts;

/// A detector: a family of finding kinds. `Send`, so a pipeline can run on
/// a worker thread (the dashboard).
pub trait Detector: Send {
    /// A client request and what became of it, once its outcome is known.
    fn on_exchange(&mut self, _x: &Exchange<'_>, _out: &mut Vec<Finding>) {}
    /// An upgraded session ended (or the capture did).
    fn on_session(&mut self, _s: &SessionEnd<'_>, _out: &mut Vec<Finding>) {}
    /// Packet time advanced (called at most once per second of capture
    /// time). `open` lists open sessions in live capture, else is empty.
    fn on_tick(&mut self, _now: Ts, _open: &[SessionRow], _out: &mut Vec<Finding>) {}
    /// An HTTP/2 connection's facts changed (SETTINGS, GOAWAY) or it ended.
    fn on_h2(&mut self, _c: &H2Conn, _out: &mut Vec<Finding>) {}
    /// An idle timeout this detector learned from the capture, if any.
    fn learned_boundary(&self) -> Option<f64> {
        None
    }
    /// End of input: report what needs the whole capture.
    fn finish(&mut self, _now: Ts, _out: &mut Vec<Finding>) {}
    /// The earliest time stamp a finding this detector has not decided yet
    /// may carry (output is written in time order: records stamped later
    /// wait for it). Every pending decision is taken within
    /// [`DECIDE_WITHIN_S`] of its stamp.
    fn pending_since(&self) -> Option<Ts> {
        None
    }
    /// What this detector's bounds gave up: (closes judged before their
    /// time, Socket.IO sessions forgotten).
    fn bounded(&self) -> (u64, u64) {
        (0, 0)
    }
}

/// A finding waits at most this long (packet time) after the time it is
/// stamped with before it is decided and written.
pub const DECIDE_WITHIN_S: f64 = 60.0;

/// Every detector, in a fixed order.
#[derive(Default)]
pub struct Detectors {
    list: Vec<Box<dyn Detector>>,
}

impl Detectors {
    pub fn new(list: Vec<Box<dyn Detector>>) -> Detectors {
        Detectors { list }
    }
    pub fn on_exchange(&mut self, x: &Exchange<'_>, out: &mut Vec<Finding>) {
        for d in &mut self.list {
            d.on_exchange(x, out);
        }
    }
    pub fn on_session(&mut self, s: &SessionEnd<'_>, out: &mut Vec<Finding>) {
        for d in &mut self.list {
            d.on_session(s, out);
        }
    }
    pub fn on_tick(&mut self, now: Ts, open: &[SessionRow], out: &mut Vec<Finding>) {
        for d in &mut self.list {
            d.on_tick(now, open, out);
        }
    }
    pub fn on_h2(&mut self, c: &H2Conn, out: &mut Vec<Finding>) {
        for d in &mut self.list {
            d.on_h2(c, out);
        }
    }
    /// A fact correlation completed, to every detector.
    pub fn on_fact(&mut self, f: &Fact<'_>, out: &mut Vec<Finding>) {
        match f {
            Fact::Exchange(x) => self.on_exchange(x, out),
            Fact::SessionEnded(s) => self.on_session(s, out),
            Fact::H2Connection(c) => self.on_h2(c, out),
        }
    }
    pub fn learned_boundary(&self) -> Option<f64> {
        self.list.iter().find_map(|d| d.learned_boundary())
    }
    pub fn finish(&mut self, now: Ts, out: &mut Vec<Finding>) {
        for d in &mut self.list {
            d.finish(now, out);
        }
    }
    pub fn pending_since(&self) -> Option<Ts> {
        self.list.iter().filter_map(|d| d.pending_since()).min()
    }
    pub fn bounded(&self) -> (u64, u64) {
        self.list.iter().map(|d| d.bounded()).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    }
}

pub mod diagnosis;
pub mod evidence;
pub mod h2;
pub mod handshake;
pub mod lifecycle;
pub mod plain;
pub mod protocol;
pub mod proxy;
