//! Sinks: where records go. Text for people, JSON Lines for programs, the
//! dashboard for operators; all receive the same records, in time order,
//! redacted. Strings are made here and only here: a record's `Serialize`
//! is its JSON, its `Display` types (text/) its text.
//!
//! One sink per file, each behind [`Sink`]. The sinks a run writes to are
//! [`SINKS`], in order: each builder looks at the [`Options`] and says
//! whether its sink is wanted. A new sink (a metrics endpoint) is one new
//! file, its `mod` line, and one line in [`SINKS`] (and the option that
//! asks for it).

pub mod collect;
pub mod dashboard;
pub mod json;
pub mod json_file;
pub mod metrics;
pub mod text;

use crate::record::Record;
pub use collect::Collect;

pub trait Sink: Send {
    /// The run begins: the input is open and privileges are dropped (a
    /// sink that starts a thread starts it here, so that the thread holds
    /// no privilege).
    fn begin(&mut self) {}
    fn record(&mut self, r: &Record) -> std::io::Result<()>;
    fn flush(&mut self) -> std::io::Result<()>;
    /// Whether this sink wants the engine's runtime numbers now (asked
    /// once per tick of packet time; the metrics endpoint, at most a few
    /// times a second of wall time).
    fn wants_runtime(&self) -> bool {
        false
    }
    /// The engine's runtime numbers (crate::runtime), when wanted, and at
    /// the end of the input.
    fn runtime(&mut self, _snapshot: &crate::runtime::RuntimeSnapshot) {}
    /// The dashboard with workers (shard.rs): how often, in wall time, it
    /// wants the engine's state ([`Sink::view`]); `None` for every other
    /// sink. (With one thread the dashboard's feed asks the pipeline
    /// itself: tui/feed.rs.)
    fn view_every(&self) -> Option<std::time::Duration> {
        None
    }
    /// The engine's state for the dashboard, after the records before it,
    /// made after a batch the reader ended when a view was due (about
    /// every [`Sink::view_every`]), of the state at its last step.
    fn view(&mut self, _view: Box<crate::tui::feed::Snapshot>) {}
}

/// What the sinks of a run are built from (the command line's share).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--json`: JSON Lines on standard output instead of text.
    pub json: bool,
    /// Text output: verbosity, quiet, colours, line buffering.
    pub text: TextOptions,
    /// Flush after every record (`-l`, or live capture).
    pub line_buffered: bool,
    /// `-w -`: the packets take standard output; records go to standard error.
    pub to_stderr: bool,
    /// `-e`: the connections' link-level headers, filled by the pipeline.
    pub links: Option<crate::decode::linkaddr::SharedLinks>,
    /// `--metrics ADDR`: the endpoint, already listening.
    pub metrics: Option<metrics::Endpoint>,
    /// `--json-file PATH`: the file, already open.
    pub json_file: Option<json_file::JsonFile>,
}

pub use text::{Heads, TextOptions};

impl Options {
    /// Standard output (standard error with `-w -`), buffered.
    pub fn stdout(&self) -> std::io::BufWriter<Box<dyn std::io::Write + Send>> {
        let w: Box<dyn std::io::Write + Send> =
            if self.to_stderr { Box::new(std::io::stderr()) } else { Box::new(std::io::stdout()) };
        std::io::BufWriter::with_capacity(64 * 1024, w)
    }
}

/// `--color auto`, as anstream decides it: colour when the records'
/// stream is a terminal that supports it, unless NO_COLOR is set or
/// CLICOLOR=0; CLICOLOR_FORCE forces it; TERM=dumb turns it off, also
/// where anstream would colour anyway because `CI` is set (a CI log is
/// not a terminal that asked for no colour; a dumb terminal is).
pub fn color_auto(to_stderr: bool) -> bool {
    let choice = if to_stderr {
        anstream::AutoStream::choice(&std::io::stderr())
    } else {
        anstream::AutoStream::choice(&std::io::stdout())
    };
    let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
    choice != anstream::ColorChoice::Never && (!dumb || anstyle_query::clicolor_force())
}

/// A sink's builder: the sink, when the options ask for it.
pub type Build = fn(&Options) -> Option<Box<dyn Sink>>;

/// Every sink a run may write to on standard output, in order.
pub const SINKS: &[Build] = &[text::build, json::build];

/// A builder of a sink that writes elsewhere than standard output, and
/// so also runs beside the dashboard (on its worker thread).
pub type BuildBeside = fn(&Options) -> Option<Box<dyn Sink + Send>>;

/// The sinks beside standard output: the metrics endpoint, the JSON file.
pub const BESIDE: &[BuildBeside] = &[metrics::build, json_file::build];

/// The sinks the options ask for, as one.
pub fn standard(o: &Options) -> Box<dyn Sink> {
    let mut all: Vec<Box<dyn Sink>> = SINKS.iter().filter_map(|build| build(o)).collect();
    all.extend(beside(o).into_iter().map(|s| s as Box<dyn Sink>));
    if all.len() == 1 { all.pop().expect("one sink") } else { Box::new(Tee(all)) }
}

/// The sinks beside standard output the options ask for.
pub fn beside(o: &Options) -> Vec<Box<dyn Sink + Send>> {
    BESIDE.iter().filter_map(|build| build(o)).collect()
}

/// Several sinks fed the same records, in order.
pub struct Tee(pub Vec<Box<dyn Sink>>);

impl Sink for Tee {
    fn begin(&mut self) {
        for s in &mut self.0 {
            s.begin();
        }
    }
    fn record(&mut self, r: &Record) -> std::io::Result<()> {
        self.0.iter_mut().try_for_each(|s| s.record(r))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.iter_mut().try_for_each(|s| s.flush())
    }
    fn wants_runtime(&self) -> bool {
        self.0.iter().any(|s| s.wants_runtime())
    }
    fn runtime(&mut self, snapshot: &crate::runtime::RuntimeSnapshot) {
        for s in &mut self.0 {
            s.runtime(snapshot);
        }
    }
}
