//! The dashboard's feed: the records the dashboard shows (handshakes,
//! sessions, findings, and with `-v` frames for the session detail's
//! timeline; not the per-message lines),
//! made terminal-safe once here, kept until the worker sends them on
//! (tui/feed.rs). The sinks that run beside the dashboard (the metrics
//! endpoint, the JSON file: [`super::BESIDE`]) are fed every record from
//! here, on the worker's thread.

use super::Sink;
use crate::record::Record;

#[derive(Default)]
pub struct DashboardSink {
    kept: Vec<Record>,
    beside: Vec<Box<dyn Sink + Send>>,
}

impl DashboardSink {
    /// The dashboard's feed, with the sinks beside it.
    pub fn with_beside(beside: Vec<Box<dyn Sink + Send>>) -> DashboardSink {
        DashboardSink { kept: Vec::new(), beside }
    }

    /// The records kept since the last call.
    pub fn take(&mut self) -> Vec<Record> {
        std::mem::take(&mut self.kept)
    }

    /// A record for the sinks beside the dashboard only (the summary at
    /// the end, which the dashboard takes from its snapshot).
    pub fn beside_only(&mut self, r: &Record) -> std::io::Result<()> {
        self.beside.iter_mut().try_for_each(|s| s.record(r))
    }
}

impl Sink for DashboardSink {
    fn begin(&mut self) {
        for s in &mut self.beside {
            s.begin();
        }
    }
    fn record(&mut self, r: &Record) -> std::io::Result<()> {
        for s in &mut self.beside {
            s.record(r)?;
        }
        if matches!(r, Record::Handshake(_) | Record::Session(_) | Record::Finding(_) | Record::Frame(_)) {
            // Wire text made terminal-safe once, here (src/escape.rs).
            self.kept.push(crate::escape::record(r).into_owned());
        }
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.beside.iter_mut().try_for_each(|s| s.flush())
    }
    fn wants_runtime(&self) -> bool {
        self.beside.iter().any(|s| s.wants_runtime())
    }
    fn runtime(&mut self, snapshot: &crate::runtime::RuntimeSnapshot) {
        for s in &mut self.beside {
            s.runtime(snapshot);
        }
    }
}
