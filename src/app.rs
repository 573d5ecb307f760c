//! From parsed arguments to a finished run: validate and build (the
//! ripgrep `LowArgs -> HiArgs` step), pick the source and the sink, run.

use std::io::{IsTerminal, Write};

use crate::capture::file::FileSource;
use crate::cli::{Args, ColorWhen, FailOn};
use crate::correlate::{Config, Roles, roles::UpstreamSpec};
use crate::detect::Detectors;
use crate::error::{Error, Result};
use crate::flow::Limits;
use crate::pipeline::{InputEnd, Pipeline};
use crate::redact::Redactor;
use crate::sink::{Sink, TextOptions};

/// Builds the analysis pipeline the arguments describe.
pub fn build_pipeline(args: &Args) -> Result<Pipeline> {
    let upstreams =
        args.upstream.iter().map(|s| UpstreamSpec::parse(s).map_err(Error::new)).collect::<Result<Vec<_>>>()?;
    for t in &args.timeouts {
        if !(t.is_finite() && *t > 0.0) {
            return Err(Error::new(format!("invalid --timeout {t}: expected seconds > 0")));
        }
    }
    let cfg = Config {
        verbose: args.verbose > 0,
        redact: Redactor { enabled: !args.no_redact },
        roles: Roles::new(args.front.clone(), upstreams),
        timeouts: args.timeouts.clone(),
        live: args.interface.is_some(),
    };
    let memcap = match &args.memcap {
        Some(m) => crate::budget::parse_size(m).map_err(Error::new)?,
        None => crate::budget::DEFAULT_MEMCAP,
    };
    let p = Pipeline::new(cfg, detectors(args), Limits { verbose: args.verbose > 0, memcap, ..Limits::default() });
    load_keys(args, p.keys())?;
    Ok(p)
}

/// `--keylog`: read now (capture files), or followed as it grows (live).
fn load_keys(args: &Args, keys: &crate::proto::tls::Keys) -> Result<()> {
    for path in &args.keylog {
        if args.interface.is_some() {
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            keys.watch(path, stop).map_err(Error::new)?;
        } else {
            keys.load_file(path).map_err(Error::new)?;
        }
    }
    if args.interface.is_none() && !args.keylog.is_empty() {
        let st = keys.stats();
        if st.secrets == 0 {
            eprintln!(
                "wstap: warning: --keylog: no usable secret in {} ({} lines, {} not understood); TLS hops stay encrypted",
                args.keylog.join(", "),
                st.lines,
                st.malformed
            );
        }
    }
    Ok(())
}

/// The detectors a run uses.
pub fn detectors(args: &Args) -> Detectors {
    crate::detect::standard(crate::detect::Config {
        redact: Redactor { enabled: !args.no_redact },
        proxy: args.proxy,
        timeouts: args.timeouts.clone(),
        live: args.interface.is_some(),
    })
}

/// The sinks the arguments ask for (text or JSON on standard output).
pub fn stdout_sink(args: &Args, line_buffered: bool) -> Box<dyn Sink> {
    let color = match args.color {
        ColorWhen::Always => true,
        ColorWhen::Never => false,
        ColorWhen::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    crate::sink::standard(&crate::sink::Options {
        json: args.json,
        text: TextOptions { verbose: args.verbose, quiet: args.quiet, line_buffered, color },
        line_buffered,
    })
}

/// Exit status: 0 fine, 1 findings at or above `--fail-on`, 2 error.
pub fn run(args: Args) -> Result<i32> {
    crate::capture::privs::refuse_setid()?;
    if let Some(what) = args.generate {
        crate::generate::write(what, &mut std::io::stdout().lock())?;
        return Ok(0);
    }
    if args.list_interfaces {
        return crate::capture::live::list_interfaces();
    }
    if args.replay.is_some() && args.read.is_none() {
        return Err(Error::new("--replay needs -r FILE"));
    }
    let mut pipeline = build_pipeline(&args)?;
    if args.tui {
        return crate::tui::run(&args, pipeline);
    }
    if let Some(iface) = args.interface.clone() {
        let mut sink = stdout_sink(&args, true);
        crate::capture::live::run(&args, &iface, &mut pipeline, sink.as_mut())?;
        return Ok(exit_status(&args, &pipeline));
    }
    let Some(path) = args.read.as_deref() else {
        return Err(Error::new("no input: use -r FILE (or -r - for standard input) or -i IFACE; see --help"));
    };
    let filter = args.filter();
    let plan = crate::capture::privs::plan(args.user.as_deref())?;
    let mut src = FileSource::open(path, filter.as_deref())?;
    crate::capture::PacketSource::set_keys(&mut src, pipeline.keys().clone());
    // The file is open: parse it with no privilege (as live capture does).
    crate::capture::privs::apply(&plan)?;
    if let Some(n) = args.count {
        src.set_limit(n);
    }
    let mut sink = stdout_sink(&args, args.line_buffered);
    let ending = pipeline.run(&mut src, sink.as_mut()).map_err(|e| Error::new(e.to_string()))?;
    drop(sink);
    let path = if path == "-" { "standard input" } else { path };
    match ending {
        InputEnd::Complete => {}
        InputEnd::Truncated(msg) => {
            let _ = std::io::stdout().flush();
            eprintln!("wstap: warning: {path}: {msg}; analysed everything up to the cut");
        }
        // Like a truncated file, everything before the damage is analysed
        // and summarised; unlike it, the file may hold more after it that
        // could not be read, so the run fails (exit 2) after the summary.
        InputEnd::Damaged(msg) => {
            let _ = std::io::stdout().flush();
            return Err(Error::new(format!("{path}: {msg}; analysed everything before the damage")));
        }
    }
    Ok(exit_status(&args, &pipeline))
}

/// `--fail-on`: 1 when findings at or above the level exist.
pub fn exit_status(args: &Args, p: &Pipeline) -> i32 {
    crate::record::exit_status(fail_level(args), p.analysis.findings().worst())
}

/// The severity `--fail-on` names.
pub fn fail_level(args: &Args) -> Option<crate::record::Severity> {
    args.fail_on.map(|f| match f {
        FailOn::Error => crate::record::Severity::Error,
        FailOn::Warning => crate::record::Severity::Warning,
    })
}
