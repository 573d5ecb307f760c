//! From parsed arguments to a finished run: the arguments are checked into
//! a [`Config`] (config.rs, the ripgrep `LowArgs -> HiArgs` step), then the
//! source, the engine and the sink are built from its parts and run. This
//! is the last place `cli::Args` is seen.

use std::io::Write;

use crate::capture::Input;
use crate::capture::cut;
use crate::cli::{Args, FailOn};
use crate::config::{Analysis, Command, Config, Output};
use crate::correlate::Roles;
use crate::detect::Detectors;
use crate::error::{Error, Result};
use crate::flow::Limits;
use crate::pipeline::{InputEnd, Pipeline};
use crate::sink::{Sink, TextOptions};

/// Builds the analysis pipeline the arguments describe (tests and fuzz
/// targets build one from arguments without an input).
pub fn build_pipeline(args: &Args) -> Result<Pipeline> {
    pipeline(&Analysis::from_args(args)?)
}

/// The engine for a checked configuration, its key logs read.
pub fn pipeline(cfg: &Analysis) -> Result<Pipeline> {
    let correlate = crate::correlate::Config {
        verbose: cfg.verbose,
        redact: cfg.redact,
        roles: Roles::new(cfg.fronts.clone(), cfg.upstreams.clone()),
        timeouts: cfg.timeouts.clone(),
        live: cfg.live,
    };
    let limits = Limits { verbose: cfg.verbose, memcap: cfg.memcap, ..Limits::default() };
    let mut p = Pipeline::new(correlate, detectors(cfg), limits);
    p.threads = cfg.threads;
    p.cpus = cfg.cpus.clone();
    load_keys(cfg, p.keys())?;
    Ok(p)
}

/// `--keylog`: read now (capture files), or followed as it grows (live).
fn load_keys(cfg: &Analysis, keys: &crate::proto::tls::Keys) -> Result<()> {
    for path in &cfg.keylogs {
        if cfg.live {
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            keys.watch(path, stop).map_err(Error::KeyLog)?;
        } else {
            keys.load_file(path).map_err(Error::KeyLog)?;
        }
    }
    if !cfg.live && !cfg.keylogs.is_empty() {
        let st = keys.stats();
        if st.secrets == 0 {
            eprintln!(
                "wstap: warning: --keylog: no usable secret in {} ({} lines, {} not understood); TLS hops stay encrypted",
                cfg.keylogs.join(", "),
                st.lines,
                st.malformed
            );
        }
    }
    Ok(())
}

/// The detectors a run uses.
pub fn detectors(cfg: &Analysis) -> Detectors {
    crate::detect::standard(crate::detect::Config {
        redact: cfg.redact,
        proxy: cfg.proxy,
        timeouts: cfg.timeouts.clone(),
        live: cfg.live,
    })
}

/// The sinks the output configuration asks for (text or JSON on standard
/// output; the metrics endpoint and the JSON file beside it, opened by
/// [`open_beside`]).
pub fn stdout_sink(cfg: &Output, beside: &Beside) -> Box<dyn Sink> {
    crate::sink::standard(&sink_options(cfg, beside))
}

fn sink_options(cfg: &Output, beside: &Beside) -> crate::sink::Options {
    let line_buffered = cfg.line_buffered;
    crate::sink::Options {
        json: cfg.json,
        text: TextOptions {
            verbose: cfg.verbose,
            quiet: cfg.quiet,
            line_buffered,
            color: cfg.color,
            time: cfg.time,
            heads: cfg.heads,
        },
        line_buffered,
        to_stderr: cfg.to_stderr,
        links: None,
        metrics: beside.metrics.clone(),
        json_file: beside.json_file.clone(),
    }
}

/// What runs beside standard output, opened before the capture starts so
/// that a port in use or a file that cannot be written is one line and
/// exit 2: the metrics endpoint (`--metrics`), the JSON file
/// (`--json-file`, with SIGHUP to reopen it).
#[derive(Debug, Default)]
pub struct Beside {
    pub metrics: Option<crate::sink::metrics::Endpoint>,
    pub json_file: Option<crate::sink::json_file::JsonFile>,
}

pub fn open_beside(cfg: &Output) -> Result<Beside> {
    let json_file = match &cfg.json_file {
        Some(path) => {
            let f = crate::sink::json_file::JsonFile::open(path)?;
            crate::signal::install_reopen()
                .map_err(|e| Error::new(format!("cannot install the SIGHUP handler: {e}")))?;
            Some(f)
        }
        None => None,
    };
    let metrics = match cfg.metrics {
        Some(addr) => {
            let e = crate::sink::metrics::serve(addr)?;
            eprintln!("wstap: metrics at http://{}/metrics", e.addr);
            Some(e)
        }
        None => None,
    };
    Ok(Beside { metrics, json_file })
}

/// Exit status: 0 fine, 1 findings at or above `--fail-on`, 2 error.
pub fn run(args: Args) -> Result<i32> {
    crate::capture::privs::refuse_setid()?;
    let cfg = match Command::from_args(&args)? {
        Command::Generate(what) => {
            crate::generate::write(what, &mut std::io::stdout().lock())?;
            return Ok(0);
        }
        Command::ListInterfaces => return crate::capture::live::list_interfaces(),
        Command::ListLinktypes(iface) => return crate::capture::live::list_linktypes(&iface),
        Command::Analyse(cfg) => cfg,
    };
    drop(args);
    analyse(*cfg)
}

/// Runs a checked analysis: the dashboard, a live capture or a file.
fn analyse(cfg: Config) -> Result<i32> {
    // `--cpus`: before any other thread starts (they inherit the set).
    if let Some(cpus) = &cfg.analysis.cpus {
        crate::cpus::confine(cpus).map_err(Error::Usage)?;
    }
    let beside = open_beside(&cfg.output)?;
    let mut pipeline = pipeline(&cfg.analysis)?;
    // `-e`: the pipeline notes each connection's first link header, the
    // text sink prints it (decode/linkaddr.rs).
    let links = cfg.output.link.then(crate::decode::linkaddr::LinkTable::shared);
    pipeline.links = links.clone();
    let stdout_sink = |cfg: &Output, beside: &Beside| {
        let mut o = sink_options(cfg, beside);
        o.links = links.clone();
        crate::sink::standard(&o)
    };
    if let Some(dash) = &cfg.dashboard {
        let options = sink_options(&cfg.output, &beside);
        return crate::tui::run(&cfg.input, dash, pipeline, crate::sink::beside(&options));
    }
    let file = match &cfg.input {
        Input::Live(live) => {
            let mut sink = stdout_sink(&cfg.output, &beside);
            crate::capture::live::run(live, &mut pipeline, sink.as_mut())?;
            return Ok(exit_status(&cfg.output, &pipeline));
        }
        Input::File(file) => file,
    };
    let mut src = file.open()?;
    // `--write-only`: the file is read a second time; it is opened now,
    // with the privileges that opened the first.
    let mut again = match &cfg.write {
        Some(w) if w.only.is_some() => Some(file.open()?),
        _ => None,
    };
    crate::capture::PacketSource::set_keys(&mut src, pipeline.keys().clone());
    // The file is open: parse it with no privilege (as live capture does).
    crate::capture::privs::apply(&file.plan)?;
    // `-w` is created as the user that parses (capture/privs.rs).
    let dumper = match &cfg.write {
        Some(w) => {
            let lt = crate::capture::PacketSource::linktype(&src).0 as u32;
            Some(cut::Out::open(w.rotation.clone(), lt)?)
        }
        None => None,
    };
    let mut sink = stdout_sink(&cfg.output, &beside);
    let ending = match (dumper, cfg.write.as_ref().and_then(|w| w.only), again.as_mut()) {
        (Some(mut out), Some(only), Some(again)) => {
            let mut choose = cut::Choose::new(sink.as_mut(), only);
            let ending = pipeline.run(&mut src, &mut choose)?;
            let chosen = std::mem::take(&mut choose.chosen);
            if choose.dropped > 0 {
                eprintln!(
                    "wstap: warning: --write-only: more than {} connections chosen; the packets of the others were not written",
                    cut::MAX_CHOSEN
                );
            }
            cut::write_chosen(again, &mut out, &chosen)?;
            ending
        }
        (Some(out), _, _) => {
            let mut through = cut::WriteThrough::new(&mut src, out);
            let ending = pipeline.run(&mut through, sink.as_mut())?;
            through.out.close()?;
            ending
        }
        _ => pipeline.run(&mut src, sink.as_mut())?,
    };
    drop(sink);
    match ending {
        InputEnd::Complete => {}
        InputEnd::Truncated(msg) => {
            let _ = std::io::stdout().flush();
            eprintln!("wstap: warning: {}: {msg}; analysed everything up to the cut", file.name());
        }
        // Like a truncated file, everything before the damage is analysed
        // and summarised; unlike it, the file may hold more after it that
        // could not be read, so the run fails (exit 2) after the summary.
        InputEnd::Damaged(msg) => {
            let _ = std::io::stdout().flush();
            return Err(Error::Damaged { name: file.name().to_string(), reason: msg });
        }
    }
    Ok(exit_status(&cfg.output, &pipeline))
}

/// `--fail-on`: 1 when findings at or above the level exist.
pub fn exit_status(cfg: &Output, p: &Pipeline) -> i32 {
    crate::record::exit_status(fail_level(cfg.fail_on), p.analysis.findings().worst())
}

/// The severity `--fail-on` names.
pub fn fail_level(fail_on: Option<FailOn>) -> Option<crate::record::Severity> {
    fail_on.map(|f| match f {
        FailOn::Error => crate::record::Severity::Error,
        FailOn::Warning => crate::record::Severity::Warning,
    })
}
