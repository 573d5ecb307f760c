//! JSON Lines: one record per line, the contract in docs/json.md.
//!
//! Strings are written so that the output is safe on a terminal too
//! (`wstap --json` is often read there): besides JSON's own escapes for
//! C0 controls, DEL, C1 controls and bidirectional overrides
//! ([`crate::escape::is_unsafe`]) are written as `\u` escapes. The JSON
//! value is the same; only its spelling differs.

use std::io::Write;

use super::{Options, Sink};

mod ser;
use crate::escape::Piece;
use crate::record::Record;

/// The JSON Lines sink, on standard output (`--json`).
pub fn build(o: &Options) -> Option<Box<dyn Sink>> {
    o.json.then(|| Box::new(JsonSink::new(o.stdout(), o.line_buffered)) as Box<dyn Sink>)
}

pub struct JsonSink<W: Write> {
    w: W,
    /// The line being written (reused).
    line: Vec<u8>,
    /// Flush after every line (`-l`, or live capture to a pipe).
    line_buffered: bool,
}

impl<W: Write> JsonSink<W> {
    pub fn new(w: W, line_buffered: bool) -> JsonSink<W> {
        JsonSink { w, line: Vec::with_capacity(4096), line_buffered }
    }
}

/// serde_json's compact formatter, with terminal-unsafe characters
/// escaped as `\uXXXX`.
struct TerminalSafe;

impl serde_json::ser::Formatter for TerminalSafe {
    fn write_string_fragment<W: ?Sized + Write>(&mut self, w: &mut W, fragment: &str) -> std::io::Result<()> {
        if !crate::escape::needs(fragment) {
            return w.write_all(fragment.as_bytes());
        }
        for p in crate::escape::pieces(fragment) {
            match p {
                Piece::Safe(t) => w.write_all(t.as_bytes())?,
                Piece::Unsafe(c) => write!(w, "\\u{:04x}", c as u32)?,
            }
        }
        Ok(())
    }
}

/// One record as a JSON line body (no newline), terminal-safe.
pub fn to_writer<W: Write>(w: &mut W, r: &Record) -> serde_json::Result<()> {
    let mut line = Vec::with_capacity(2048);
    append(&mut line, r)?;
    w.write_all(&line).map_err(serde_json::Error::io)
}

/// One record as a JSON line body appended to `line`: [`ser`]'s fast
/// writer, or serde_json's where that one leaves the record to it (the
/// same bytes either way).
pub fn append(line: &mut Vec<u8>, r: &Record) -> serde_json::Result<()> {
    let start = line.len();
    if ser::append(line, r).is_ok() {
        return Ok(());
    }
    line.truncate(start);
    reference(line, r)
}

/// One record as serde_json writes it with [`TerminalSafe`]: what
/// [`append`] writes, the slow way (tests compare the two).
#[doc(hidden)]
pub fn reference<W: Write>(w: &mut W, r: &Record) -> serde_json::Result<()> {
    use serde::Serialize;
    let mut ser = serde_json::Serializer::with_formatter(w, TerminalSafe);
    r.serialize(&mut ser)
}

impl<W: Write + Send> Sink for JsonSink<W> {
    fn record(&mut self, r: &Record) -> std::io::Result<()> {
        self.line.clear();
        append(&mut self.line, r)?;
        self.line.push(b'\n');
        self.w.write_all(&self.line)?;
        if self.line_buffered {
            self.w.flush()?;
        }
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_characters_are_escaped_and_the_value_is_unchanged() {
        let f = crate::escape::close_line(None, "x\x1b[2J\u{9b}\u{202e}\x7fé\"");
        let mut out = Vec::new();
        to_writer(&mut out, &Record::Frame(f)).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains(r#""close_reason":"x\u001b[2J\u009b\u202e\u007fé\"""#), "{s}");
        assert!(!s.chars().any(crate::escape::is_unsafe));
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["close_reason"], "x\x1b[2J\u{9b}\u{202e}\x7fé\"");
    }
}
