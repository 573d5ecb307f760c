//! From parsed arguments to a finished run: the `LowArgs -> HiArgs` step
//! (validate, open, compile) and the main loop.

use std::io::{IsTerminal, Write};

use crate::capture::file::FileSource;
use crate::cli::Args;
use crate::correlate::{Config, Roles, roles::UpstreamSpec};
use crate::detect::Detectors;
use crate::error::{Error, Result};
use crate::flow::Limits;
use crate::pipeline::Pipeline;
use crate::redact::Redactor;
use crate::sink::Sink;
use crate::sink::json::JsonSink;
use crate::sink::text::{TextOptions, TextSink};

/// Exit status: 0 fine, 1 findings at or above `--fail-on`, 2 error.
pub fn run(args: Args) -> Result<i32> {
    let upstreams =
        args.upstream.iter().map(|s| UpstreamSpec::parse(s).map_err(Error::new)).collect::<Result<Vec<_>>>()?;
    let cfg = Config {
        verbose: args.verbose > 0,
        redact: Redactor { enabled: !args.no_redact },
        roles: Roles::new(args.front.clone(), upstreams),
    };
    let Some(path) = args.read.as_deref() else {
        return Err(Error::new("no input: use -r FILE (or -r - for standard input); see --help"));
    };
    let filter = args.filter();
    let mut src = FileSource::open(path, filter.as_deref())?;
    let mut pipeline = Pipeline::new(cfg, Detectors::default(), Limits::default());
    let stdout = std::io::stdout();
    let color = stdout.is_terminal();
    let out = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    let mut sink: Box<dyn Sink> = if args.json {
        Box::new(JsonSink::new(out, args.line_buffered))
    } else {
        Box::new(TextSink::new(
            out,
            TextOptions { verbose: args.verbose, quiet: args.quiet, line_buffered: args.line_buffered, color },
        ))
    };
    let truncated = pipeline.run(&mut src, sink.as_mut())?;
    drop(sink);
    if let Some(msg) = truncated {
        let _ = std::io::stdout().flush();
        eprintln!("wstap: warning: {path}: {msg}; analysed everything up to the cut");
    }
    Ok(0)
}
