//! Detectors turn correlated facts into findings. They see exchanges (a
//! client request paired with what the proxy forwarded), finished sessions
//! and the passage of packet time; they never see bytes.
//!
//! Finding `kind`s are stable identifiers of the JSON contract.

use serde::Serialize;

use crate::correlate::{Exchange, SessionRow, SessionView};
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
    /// Findings about one fault share this id (assigned by the analyzer in
    /// output order). One fault may be filed under several kinds (an
    /// HTTP/1.0 forward that also lost the upgrade headers is both
    /// `upgrade-stripped` and `upstream-http10`): the lead finding comes
    /// first and names the others in `also`; each other one has
    /// `primary: false`. Text output prints the lead only.
    pub fault: u64,
    pub primary: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<&'static str>,
}

impl Finding {
    /// Files `related` under the same fault as `self` (the lead).
    pub fn tie(&mut self, related: &mut Finding) {
        related.primary = false;
        if !self.also.contains(&related.kind) {
            self.also.push(related.kind);
        }
    }
}

/// A detector: a family of finding kinds. `Send`, so a pipeline can run on
/// a worker thread (the dashboard).
pub trait Detector: Send {
    /// A client request and what became of it, once its outcome is known.
    fn on_exchange(&mut self, _x: &Exchange<'_>, _out: &mut Vec<Finding>) {}
    /// An upgraded session ended (or the capture did).
    fn on_session(&mut self, _s: &SessionView<'_>, _out: &mut Vec<Finding>) {}
    /// Packet time advanced (called at most once per second of capture
    /// time). `open` lists open sessions in live capture, else is empty.
    fn on_tick(&mut self, _now: Ts, _open: &[SessionRow], _out: &mut Vec<Finding>) {}
    /// An HTTP/2 connection's facts changed (SETTINGS, GOAWAY) or it ended.
    fn on_h2(&mut self, _c: &crate::correlate::h2pair::H2ConnView, _now: Ts, _out: &mut Vec<Finding>) {}
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
    pub fn on_session(&mut self, s: &SessionView<'_>, out: &mut Vec<Finding>) {
        for d in &mut self.list {
            d.on_session(s, out);
        }
    }
    pub fn on_tick(&mut self, now: Ts, open: &[SessionRow], out: &mut Vec<Finding>) {
        for d in &mut self.list {
            d.on_tick(now, open, out);
        }
    }
    pub fn on_h2(&mut self, c: &crate::correlate::h2pair::H2ConnView, now: Ts, out: &mut Vec<Finding>) {
        for d in &mut self.list {
            d.on_h2(c, now, out);
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

/// Every finding kind wstap reports (the stable identifiers of the JSON
/// contract, documented in docs/findings.md).
pub const KINDS: &[&str] = &[
    "upgrade-stripped",
    "upgrade-headers-missing",
    "upstream-http10",
    "handshake-rejected",
    "upstream-premature-close",
    "upstream-connect-failed",
    "upstream-timeout",
    "upgrade-failed",
    "bad-accept",
    "connection-upgrade-on-plain",
    "idle-timeout-close",
    "abnormal-close",
    "socketio-no-upgrade",
    "forwarded-proto-missing",
    "mass-close",
    "heartbeat-race",
    "idle-timeout-imminent",
    "proxy-protocol-violation",
    "false-upgrade-success",
    "h2-websocket-not-offered",
];
