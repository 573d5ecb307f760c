//! Detectors turn correlated facts into findings. They see exchanges (a
//! client request paired with what the proxy forwarded), finished sessions
//! and the passage of packet time; they never see bytes.
//!
//! Finding `kind`s are stable identifiers of the JSON contract.

use serde::Serialize;

use crate::correlate::{Exchange, SessionView};
use crate::time::Ts;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    #[serde(rename = "type")]
    pub ty: &'static str,
    pub kind: &'static str,
    pub severity: Severity,
    pub ts: f64,
    pub flows: Vec<String>,
    pub path: Option<String>,
    pub message: String,
    pub fix: Option<String>,
    pub detail: serde_json::Value,
}

/// A detector: a family of finding kinds. `Send`, so a pipeline can run on
/// a worker thread (the dashboard).
pub trait Detector: Send {
    /// A client request and what became of it, once its outcome is known.
    fn on_exchange(&mut self, _x: &Exchange<'_>, _out: &mut Vec<Finding>) {}
    /// An upgraded session ended (or the capture did).
    fn on_session(&mut self, _s: &SessionView<'_>, _out: &mut Vec<Finding>) {}
    /// Packet time advanced (called at most once per second of capture time).
    fn on_tick(&mut self, _now: Ts, _out: &mut Vec<Finding>) {}
    /// End of input: report what needs the whole capture.
    fn finish(&mut self, _now: Ts, _out: &mut Vec<Finding>) {}
}

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
    pub fn on_session(&mut self, s: &SessionView<'_>, out: &mut Vec<Finding>) {
        for d in &mut self.list {
            d.on_session(s, out);
        }
    }
    pub fn on_tick(&mut self, now: Ts, out: &mut Vec<Finding>) {
        for d in &mut self.list {
            d.on_tick(now, out);
        }
    }
    pub fn finish(&mut self, now: Ts, out: &mut Vec<Finding>) {
        for d in &mut self.list {
            d.finish(now, out);
        }
    }
}
