//! The dashboard's feed: the records the dashboard shows (handshakes,
//! sessions, findings, and with `-v` frames for the session detail's
//! timeline; not the per-message lines),
//! made terminal-safe once here, kept until the worker sends them on
//! (tui/feed.rs).

use super::Sink;
use crate::record::Record;

#[derive(Default)]
pub struct DashboardSink(Vec<Record>);

impl DashboardSink {
    /// The records kept since the last call.
    pub fn take(&mut self) -> Vec<Record> {
        std::mem::take(&mut self.0)
    }
}

impl Sink for DashboardSink {
    fn record(&mut self, r: &Record) -> std::io::Result<()> {
        if matches!(r, Record::Handshake(_) | Record::Session(_) | Record::Finding(_) | Record::Frame(_)) {
            // Wire text made terminal-safe once, here (src/escape.rs).
            self.0.push(crate::escape::record(r).into_owned());
        }
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
