//! Shared code of wstap's fuzz targets: the two input formats (decoders
//! the targets use, encoders the seeding example uses), canned protocol
//! snippets, and the output path every input is driven through.

pub mod budget;
pub mod canned;
pub mod h2;
pub mod pipeline;
pub mod streams;
pub mod tls;

/// The hostile traffic generators of the integration tests.
#[path = "../../tests/hostile_gen/mod.rs"]
pub mod hostile_gen;

/// The counting allocator and allowance of tests/hostile_memory.rs.
#[path = "../../tests/heap_check/mod.rs"]
pub mod heap_check;

use wstap::pipeline::Pipeline;
use wstap::record::Record;
use wstap::sink::text::{TextOptions, TextSink};
use wstap::sink::{Collect, Sink};

/// Reads fuzz input; never fails: past the end it yields zeros and empty
/// slices, so every byte string is a valid input.
pub struct Reader<'a> {
    d: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(d: &'a [u8]) -> Reader<'a> {
        Reader { d }
    }
    pub fn is_empty(&self) -> bool {
        self.d.is_empty()
    }
    pub fn u8(&mut self) -> u8 {
        let b = self.d.first().copied().unwrap_or(0);
        self.d = self.d.get(1..).unwrap_or(&[]);
        b
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    /// Up to `n` bytes (fewer at the end of the input).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.d.split_at(n.min(self.d.len()));
        self.d = b;
        a
    }
}

/// The output path: records are drained into a [`Collect`] sink as the
/// tests do, then each one is serialised to JSON (and parsed back, to prove
/// the line is valid JSON) and rendered by the text sink.
pub struct Output {
    collect: Collect,
    text: TextSink<std::io::Sink>,
    json: Vec<u8>,
    /// Print each JSON line (the `show` example).
    print: bool,
}

impl Output {
    pub fn new(verbose: u8, print: bool) -> Output {
        // The most verbose also prints the handshakes' heads (-X): every
        // path a wire byte takes to a terminal.
        let heads = (verbose == 2).then_some(wstap::sink::text::Heads::Hex);
        let o = TextOptions {
            verbose,
            quiet: false,
            line_buffered: false,
            color: verbose == 2,
            time: wstap::cli::TimeFormat::default(),
            heads,
        };
        Output { collect: Collect::default(), text: TextSink::new(std::io::sink(), o), json: Vec::new(), print }
    }

    pub fn drain(&mut self, p: &mut Pipeline) {
        p.drain_to(&mut self.collect).expect("Collect never fails");
        for r in std::mem::take(&mut self.collect.0) {
            self.record(&r);
        }
    }

    fn record(&mut self, r: &Record) {
        self.json.clear();
        serde_json::to_writer(&mut self.json, r).expect("every record serialises to JSON");
        serde_json::from_slice::<serde_json::Value>(&self.json).expect("a record line is valid JSON");
        self.text.record(r).expect("text to a sink never fails");
        if self.print {
            println!("{}", String::from_utf8_lossy(&self.json));
        }
    }

    /// End of input: the pipeline's `finish`, its last records, the summary.
    pub fn finish(&mut self, p: &mut Pipeline) {
        let summary = p.finish();
        self.drain(p);
        self.record(&Record::Summary(summary));
        self.text.flush().expect("text to a sink never fails");
    }
}
