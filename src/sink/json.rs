//! JSON Lines: one record per line, the contract in docs/json.md.

use std::io::Write;

use super::Sink;
use crate::record::Record;

pub struct JsonSink<W: Write> {
    w: W,
    /// Flush after every line (`-l`, or live capture to a pipe).
    line_buffered: bool,
}

impl<W: Write> JsonSink<W> {
    pub fn new(w: W, line_buffered: bool) -> JsonSink<W> {
        JsonSink { w, line_buffered }
    }
}

impl<W: Write> Sink for JsonSink<W> {
    fn record(&mut self, r: &Record) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.w, r)?;
        self.w.write_all(b"\n")?;
        if self.line_buffered {
            self.w.flush()?;
        }
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}
