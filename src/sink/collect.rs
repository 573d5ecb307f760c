//! Records kept in memory (tests, embedding wstap).

use super::Sink;
use crate::record::Record;

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
