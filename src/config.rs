//! Checked configuration: the command line as the engine needs it.
//!
//! `cli::Args` is what the user typed (clap only checked its syntax);
//! [`Command::from_args`] turns it into values that are valid by
//! construction (ripgrep's low and high arguments): sizes parsed, ranges
//! checked, combinations checked (`-C needs -w FILE`), the account to parse
//! packets as looked up, the output's colour decided. Each layer then gets
//! only the part it needs: the capture its [`Input`], the engine its
//! [`Analysis`], the sinks their [`Output`], the dashboard its
//! [`Dashboard`]. Nothing past `app.rs` sees `Args`.
//!
//! Opening things is left to the layers that own them, in the order the
//! privileges demand (capture/privs.rs): the device or file is opened with
//! the privileges the process has, then they are dropped, then the `-w`
//! file is created as the unprivileged user. A BPF filter is compiled
//! against the link type of what is opened, so it is checked there too.
//! Checking never consumes input: a `Config` for `-r -` does not read
//! standard input (the fuzz targets and tests build pipelines from
//! arguments without any input).

use std::io::IsTerminal;
use std::time::Duration;

pub use crate::capture::Input;
use crate::capture::dump::Rotation;
pub use crate::capture::file::FileInput;
use crate::capture::live::{self, LiveConfig};
use crate::capture::privs;
use crate::cli::{Args, ColorWhen, FailOn};
use crate::correlate::roles::UpstreamSpec;
use crate::error::{Error, Result};
use crate::generate::Generate;
use crate::redact::Redactor;

/// What a run does.
#[derive(Debug)]
pub enum Command {
    /// `--generate WHAT`: the man page or a completion script.
    Generate(Generate),
    /// `-D`: the interfaces that can be captured on.
    ListInterfaces,
    /// Analyse packets from a file or an interface.
    Analyse(Box<Config>),
}

/// A checked analysis run.
#[derive(Debug)]
pub struct Config {
    pub input: Input,
    pub analysis: Analysis,
    pub output: Output,
    /// `--tui`: the dashboard instead of lines on standard output.
    pub dashboard: Option<Dashboard>,
}

/// What the engine (flow table, parsers, correlation, detectors) needs.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// `-v`: per-message and per-frame records.
    pub verbose: bool,
    /// `--no-redact` turns it off.
    pub redact: Redactor,
    /// `--front`: the proxy's client-facing ports.
    pub fronts: Vec<u16>,
    /// `--upstream`: backend addresses.
    pub upstreams: Vec<UpstreamSpec>,
    /// `--proxy`: the proxy in front, when its headers do not say.
    pub proxy: Option<crate::detect::proxy::Proxy>,
    /// `--timeout`: idle timeouts expected on the path, seconds (> 0).
    pub timeouts: Vec<f64>,
    /// Live capture: key logs are followed, detectors warn early.
    pub live: bool,
    /// `--memcap`: the memory budget, bytes.
    pub memcap: u64,
    /// `--keylog` files.
    pub keylogs: Vec<String>,
}

/// Lines on standard output.
#[derive(Debug, Clone)]
pub struct Output {
    /// `--json`: JSON Lines; else text.
    pub json: bool,
    /// `-v` (1) and `-vv` (2).
    pub verbose: u8,
    /// `-q`.
    pub quiet: bool,
    /// `-l`, or live capture: flush after every line.
    pub line_buffered: bool,
    /// `--color`, decided: `auto` is colour on a terminal without NO_COLOR.
    pub color: bool,
    /// `--fail-on`.
    pub fail_on: Option<FailOn>,
    /// `--metrics ADDR`: where to serve Prometheus metrics.
    pub metrics: Option<std::net::SocketAddr>,
    /// `--json-file PATH`: JSON Lines to a file too.
    pub json_file: Option<String>,
}

/// `--metrics ADDR`: `IP:PORT`, `[IPv6]:PORT`, `localhost:PORT`, or
/// `:PORT`, which is loopback (never every interface unless asked).
pub fn metrics_addr(s: &str) -> Result<std::net::SocketAddr> {
    use std::net::{Ipv4Addr, SocketAddr};
    let bad = || {
        Error::usage(format!("--metrics {s}: expected IP:PORT, [IPv6]:PORT or :PORT (loopback), e.g. 127.0.0.1:9477"))
    };
    let t = s.trim();
    let port = |p: &str| p.parse::<u16>().map_err(|_| bad());
    if let Some(p) = t.strip_prefix(':') {
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port(p)?)));
    }
    if let Some(p) = t.strip_prefix("localhost:") {
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port(p)?)));
    }
    t.parse::<SocketAddr>().map_err(|_| bad())
}

/// The terminal dashboard.
#[derive(Debug, Clone)]
pub struct Dashboard {
    /// `--replay SPEED` (> 0) with `-r`.
    pub replay: Option<f64>,
    /// `--fail-on`, for the exit status when the dashboard is left.
    pub fail_on: Option<FailOn>,
}

impl Command {
    /// Checks the arguments. The checks run in the order a run meets them,
    /// so that of two mistakes the one reported is the one a run would
    /// have stopped at.
    pub fn from_args(args: &Args) -> Result<Command> {
        if let Some(what) = args.generate {
            return Ok(Command::Generate(what));
        }
        if args.list_interfaces {
            return Ok(Command::ListInterfaces);
        }
        if args.replay.is_some() && args.read.is_none() {
            return Err(Error::usage("--replay needs -r FILE"));
        }
        let analysis = Analysis::from_args(args)?;
        let mut output = Output::from_args(args);
        output.metrics = args.metrics.as_deref().map(metrics_addr).transpose()?;
        match args.json_file.as_deref() {
            Some("") => return Err(Error::usage("--json-file: empty file name")),
            Some("-") => return Err(Error::usage("--json-file -: use --json for JSON Lines on standard output")),
            _ => {}
        }
        let (input, dashboard) = if args.tui {
            let plan = privs::plan(args.user.as_deref())?;
            let replay = match args.replay {
                Some(s) if !(s.is_finite() && s > 0.0) => {
                    return Err(Error::usage(format!(
                        "invalid --replay {s}: expected a speed factor > 0 (1 = real time)"
                    )));
                }
                r => r,
            };
            let input = match (&args.interface, &args.read) {
                (Some(iface), _) => Input::Live(live_config(args, iface)?),
                (None, Some(path)) => {
                    Input::File(FileInput { path: path.clone(), filter: args.filter(), count: args.count, plan })
                }
                (None, None) => return Err(Error::usage("--tui needs an input: -r FILE or -i IFACE")),
            };
            (input, Some(Dashboard { replay, fail_on: args.fail_on }))
        } else {
            let input = match (&args.interface, &args.read) {
                (Some(iface), _) => Input::Live(live_config(args, iface)?),
                (None, Some(path)) => Input::File(FileInput {
                    path: path.clone(),
                    filter: args.filter(),
                    count: args.count,
                    plan: privs::plan(args.user.as_deref())?,
                }),
                (None, None) => {
                    return Err(Error::usage(
                        "no input: use -r FILE (or -r - for standard input) or -i IFACE; see --help",
                    ));
                }
            };
            (input, None)
        };
        Ok(Command::Analyse(Box::new(Config { input, analysis, output, dashboard })))
    }
}

impl Config {
    /// The checked configuration of an analysis run (an error for
    /// `--generate` and `-D`, which analyse nothing).
    pub fn from_args(args: &Args) -> Result<Config> {
        match Command::from_args(args)? {
            Command::Analyse(c) => Ok(*c),
            _ => Err(Error::usage("--generate and -D analyse nothing")),
        }
    }
}

impl Analysis {
    /// The engine's part of the arguments, checked. (Tests and fuzz targets
    /// build pipelines from this alone, without an input.)
    pub fn from_args(args: &Args) -> Result<Analysis> {
        let upstreams =
            args.upstream.iter().map(|s| UpstreamSpec::parse(s).map_err(Error::Usage)).collect::<Result<Vec<_>>>()?;
        for t in &args.timeouts {
            if !(t.is_finite() && *t > 0.0) {
                return Err(Error::usage(format!("invalid --timeout {t}: expected seconds > 0")));
            }
        }
        let memcap = match &args.memcap {
            Some(m) => crate::budget::parse_size(m).map_err(Error::Usage)?,
            None => crate::budget::DEFAULT_MEMCAP,
        };
        Ok(Analysis {
            verbose: args.verbose > 0,
            redact: Redactor { enabled: !args.no_redact },
            fronts: args.front.clone(),
            upstreams,
            proxy: args.proxy,
            timeouts: args.timeouts.clone(),
            live: args.interface.is_some(),
            memcap,
            keylogs: args.keylog.clone(),
        })
    }
}

impl Output {
    fn from_args(args: &Args) -> Output {
        let color = match args.color {
            ColorWhen::Always => true,
            ColorWhen::Never => false,
            ColorWhen::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        };
        Output {
            json: args.json,
            verbose: args.verbose,
            quiet: args.quiet,
            // Live output is read as it happens.
            line_buffered: args.line_buffered || args.interface.is_some(),
            color,
            fail_on: args.fail_on,
            metrics: None,
            json_file: args.json_file.clone(),
        }
    }
}

/// `-i IFACE` and the options of live capture, checked.
fn live_config(args: &Args, iface: &str) -> Result<LiveConfig> {
    if iface.is_empty() {
        return Err(Error::usage("-i: empty interface name"));
    }
    let snaplen = match args.snaplen {
        0 => live::MAX_SNAPLEN,
        n if n < 0 => return Err(Error::usage(format!("-s {n}: invalid snap length"))),
        n => n,
    };
    if args.count == Some(0) {
        return Err(Error::usage("-c 0: invalid packet count"));
    }
    let buffer_bytes = match args.buffer_kib {
        None => Some(live::DEFAULT_BUFFER_BYTES),
        Some(k) if k <= 0 => return Err(Error::usage(format!("-B {k}: invalid buffer size"))),
        Some(k) => Some(k.checked_mul(1024).ok_or_else(|| Error::usage(format!("-B {k}: buffer size is too large")))?),
    };
    let duration = match args.duration {
        None => None,
        Some(s) if !(s.is_finite() && s > 0.0) => {
            return Err(Error::usage(format!("--duration {s}: expected seconds > 0")));
        }
        Some(s) => Some(Duration::from_secs_f64(s)),
    };
    let write = match &args.write {
        Some(w) => Some(Rotation::new(w, args.file_size, args.rotate_seconds, args.file_count)?),
        None => {
            for (set, flag) in [
                (args.file_size.is_some(), "-C"),
                (args.rotate_seconds.is_some(), "-G"),
                (args.file_count.is_some(), "-W"),
            ] {
                if set {
                    return Err(Error::usage(format!("{flag} needs -w FILE")));
                }
            }
            None
        }
    };
    let plan = privs::plan(args.user.as_deref())?;
    Ok(LiveConfig {
        iface: iface.to_string(),
        filter: args.filter(),
        snaplen,
        count: args.count,
        buffer_bytes,
        duration,
        write,
        plan,
        queue_bytes: live::QUEUE_BYTES,
        immediate: args.immediate_mode,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(a: &Args) -> Result<LiveConfig> {
        live_config(a, "lo")
    }

    #[test]
    fn live_capture_options() {
        let mut a = Args { snaplen: 0, ..Args::default() };
        assert_eq!(live(&a).unwrap().snaplen, live::MAX_SNAPLEN);
        a.snaplen = -1;
        assert!(live(&a).is_err());
        a.snaplen = 1500;
        a.buffer_kib = Some(4096);
        assert_eq!(live(&a).unwrap().buffer_bytes, Some(4 << 20));
        a.file_size = Some(10);
        assert_eq!(live(&a).unwrap_err().to_string(), "-C needs -w FILE");
        a.write = Some("x.pcap".into());
        assert!(live(&a).is_ok());
        a.duration = Some(-1.0);
        assert!(live(&a).is_err());
        a.duration = Some(0.5);
        a.count = Some(0);
        assert!(live(&a).is_err());
        assert_eq!(live_config(&Args::default(), "").unwrap_err().to_string(), "-i: empty interface name");
    }

    fn check(argv: &[&str]) -> Result<Command> {
        use clap::Parser;
        Command::from_args(&Args::parse_from(std::iter::once("wstap").chain(argv.iter().copied())))
    }

    fn err(argv: &[&str]) -> String {
        check(argv).unwrap_err().to_string()
    }

    #[test]
    fn each_run_gets_its_parts() {
        let Command::Analyse(c) = check(&["-r", "x.pcap", "-c", "5", "-Z", "root", "tcp", "port", "80"]).unwrap()
        else {
            panic!()
        };
        let Input::File(f) = &c.input else { panic!() };
        assert_eq!((f.path.as_str(), f.filter.as_deref(), f.count), ("x.pcap", Some("tcp port 80"), Some(5)));
        assert!(c.dashboard.is_none() && !c.output.line_buffered && !c.analysis.live);
        let Command::Analyse(c) = check(&["-i", "lo", "-Z", "root", "--tui"]).unwrap() else { panic!() };
        assert!(matches!(c.input, Input::Live(_)) && c.dashboard.is_some() && c.analysis.live);
        // Live output is line-buffered.
        let Command::Analyse(c) = check(&["-i", "lo", "-Z", "root"]).unwrap() else { panic!() };
        assert!(c.output.line_buffered);
        assert!(matches!(check(&["--generate", "man", "--timeout", "-1"]).unwrap(), Command::Generate(_)));
        assert!(matches!(check(&["-D", "--memcap", "x"]).unwrap(), Command::ListInterfaces));
    }

    #[test]
    fn mistakes_are_one_line_each() {
        assert_eq!(err(&["-i", "lo", "--replay", "2"]), "--replay needs -r FILE");
        assert_eq!(err(&["-r", "x", "--timeout", "0"]), "invalid --timeout 0: expected seconds > 0");
        assert!(err(&["-r", "x", "--memcap", "lots"]).starts_with("--memcap lots"), "{}", err(&["--memcap", "lots"]));
        assert_eq!(err(&["-q"]), "no input: use -r FILE (or -r - for standard input) or -i IFACE; see --help");
        assert_eq!(err(&["--tui", "-Z", "root"]), "--tui needs an input: -r FILE or -i IFACE");
        assert_eq!(
            err(&["--tui", "-r", "x", "-Z", "root", "--replay", "0"]),
            "invalid --replay 0: expected a speed factor > 0 (1 = real time)"
        );
        assert_eq!(err(&["-i", "lo", "-Z", "root", "-G", "5"]), "-G needs -w FILE");
        assert_eq!(err(&["-r", "x", "-Z", "no-such-user-here"]), "-Z no-such-user-here: no such user");
        assert_eq!(
            err(&["-r", "x", "--metrics", "9477"]),
            "--metrics 9477: expected IP:PORT, [IPv6]:PORT or :PORT (loopback), e.g. 127.0.0.1:9477"
        );
        assert!(err(&["-r", "x", "--metrics", ":99999"]).starts_with("--metrics :99999: expected"));
        assert!(err(&["-r", "x", "--metrics", "example.com:80"]).starts_with("--metrics example.com:80: expected"));
        assert_eq!(
            err(&["-r", "x", "--json-file", "-"]),
            "--json-file -: use --json for JSON Lines on standard output"
        );
    }

    #[test]
    fn metrics_address_defaults_to_loopback() {
        assert_eq!(metrics_addr(":9477").unwrap().to_string(), "127.0.0.1:9477");
        assert_eq!(metrics_addr("localhost:9477").unwrap().to_string(), "127.0.0.1:9477");
        assert_eq!(metrics_addr("0.0.0.0:9477").unwrap().to_string(), "0.0.0.0:9477");
        assert_eq!(metrics_addr("[::1]:9477").unwrap().to_string(), "[::1]:9477");
        let Command::Analyse(c) = check(&["-r", "x", "-Z", "root", "--metrics", ":0", "--json-file", "f"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(c.output.metrics.unwrap().to_string(), "127.0.0.1:0");
        assert_eq!(c.output.json_file.as_deref(), Some("f"));
    }
}
