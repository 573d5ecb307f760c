//! Sinks: where records go. Text for people, JSON Lines for programs, the
//! dashboard for operators. All receive the same records.

pub mod json;
pub mod text;

use crate::record::Record;

pub trait Sink {
    fn record(&mut self, r: &Record) -> std::io::Result<()>;
    fn flush(&mut self) -> std::io::Result<()>;
}

/// Collects records in memory (tests, the dashboard's offline mode).
#[derive(Default)]
pub struct Collect(pub Vec<Record>);

impl Sink for Collect {
    fn record(&mut self, r: &Record) -> std::io::Result<()> {
        self.0.push(r.clone());
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
