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

use std::time::Duration;

pub use crate::capture::Input;
use crate::capture::dump::Rotation;
pub use crate::capture::file::FileInput;
use crate::capture::live::{self, LiveConfig};
use crate::capture::privs;
use crate::cli::{Args, ColorWhen, FailOn, Precision, TimeFormat, WriteOnly};
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
    /// `-i IFACE -L`: the link-layer types IFACE offers.
    ListLinktypes(String),
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
    /// `-r FILE -w OUT`: the packets read, written out (a live capture's
    /// `-w` is in its [`LiveConfig`], written by the capture thread).
    pub write: Option<WritePackets>,
}

/// `-w` with `-r`: which packets are written where.
#[derive(Debug, Clone)]
pub struct WritePackets {
    /// The file (`-` standard output) and its rotation (`-C -G -W -U`).
    pub rotation: Rotation,
    /// `--write-only`: only the packets of these connections (read in a
    /// second pass, once the analysis has said which).
    pub only: Option<WriteOnly>,
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
    /// `--threads`: flow-sharded workers (capture files and live capture;
    /// the dashboard uses one thread).
    pub threads: usize,
    /// `--cpus`: the CPUs the process runs on, one per worker in turn.
    pub cpus: Option<crate::cpus::Cpus>,
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
    /// `-t` family / `--time-format`: how text lines show time.
    pub time: TimeFormat,
    /// `-w -`: packets go to standard output, records to standard error.
    pub to_stderr: bool,
    /// `-A` / `-X`: the handshakes' HTTP heads.
    pub heads: Option<crate::sink::Heads>,
    /// `-e`: the link-level header under each handshake.
    pub link: bool,
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
            only(args, &["generate"], "--generate prints its text and exits")?;
            return Ok(Command::Generate(what));
        }
        if args.list_interfaces {
            only(args, &["list_interfaces"], "-D lists the interfaces and exits")?;
            return Ok(Command::ListInterfaces);
        }
        if args.replay.is_some() && args.read.is_none() {
            return Err(Error::usage("--replay needs -r FILE"));
        }
        let no_input = || {
            Error::usage(if args.tui {
                "--tui needs an input: -r FILE or -i IFACE (-i any sees both hops of a proxy)"
            } else {
                "no input: use -r FILE (or -r - for standard input) or -i IFACE (-i any sees both hops of a proxy); see --help"
            })
        };
        if args.interface.is_none() && args.read.is_none() {
            return Err(no_input());
        }
        check_applies(args)?;
        if let (true, Some(iface)) = (args.list_linktypes, &args.interface) {
            only(args, &["list_linktypes", "interface"], "-L lists the link types of -i IFACE and exits")?;
            return Ok(Command::ListLinktypes(iface.clone()));
        }
        let filter = filter(args)?;
        let analysis = Analysis::from_args(args)?;
        let mut output = Output::from_args(args)?;
        output.metrics = args.metrics.as_deref().map(metrics_addr).transpose()?;
        match args.json_file.as_deref() {
            Some("") => return Err(Error::usage("--json-file: empty file name")),
            Some("-") => return Err(Error::usage("--json-file -: use --json for JSON Lines on standard output")),
            _ => {}
        }
        let plan = privs::plan(args.user.as_deref())?;
        let input = match (&args.interface, &args.read) {
            (Some(iface), _) => Input::Live(live_config(args, iface, filter, plan)?),
            (None, Some(path)) => Input::File(FileInput { path: path.clone(), filter, count: args.count, plan }),
            (None, None) => return Err(no_input()),
        };
        let dashboard = if args.tui {
            let replay = match args.replay {
                Some(s) if !(s.is_finite() && s > 0.0) => {
                    return Err(Error::usage(format!(
                        "invalid --replay {s}: expected a speed factor > 0 (1 = real time)"
                    )));
                }
                r => r,
            };
            Some(Dashboard { replay, fail_on: args.fail_on })
        } else {
            None
        };
        let write = match (&input, &args.write) {
            (Input::File(f), Some(w)) => {
                if same_file(&f.path, w) {
                    return Err(Error::usage(format!(
                        "-w {w} is the file -r reads: writing it would destroy it; write to another file"
                    )));
                }
                if args.write_only.is_some() && f.path == "-" {
                    return Err(Error::usage(
                        "--write-only reads the capture twice: give -r a file, not standard input",
                    ));
                }
                Some(WritePackets { rotation: rotation(args, w)?, only: args.write_only })
            }
            _ => None,
        };
        Ok(Command::Analyse(Box::new(Config { input, analysis, output, dashboard, write })))
    }
}

/// Where an option applies. An option given where it cannot apply is an
/// error (one line), never silently ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    /// A live capture (`-i`).
    Live,
    /// A `-w` file.
    Write,
    /// `-r FILE -w FILE`.
    ReadWrite,
    /// Text lines (not `--json`, not the dashboard).
    Text,
    /// Lines on standard output (text or JSON, not the dashboard).
    Lines,
    /// The dashboard on a file (`--tui -r`).
    Replay,
}

/// The options that apply only to some runs (clap id, as typed, where).
/// Every other option applies to every run.
const APPLIES: &[(&str, &str, Needs)] = &[
    ("snaplen", "-s", Needs::Live),
    ("buffer_kib", "-B", Needs::Live),
    ("duration", "--duration", Needs::Live),
    ("direction", "-Q", Needs::Live),
    ("linktype", "-y", Needs::Live),
    ("immediate_mode", "--immediate-mode", Needs::Live),
    ("fanout", "--fanout", Needs::Live),
    ("list_linktypes", "-L", Needs::Live),
    ("file_size", "-C", Needs::Write),
    ("rotate_seconds", "-G", Needs::Write),
    ("file_count", "-W", Needs::Write),
    ("packet_buffered", "-U", Needs::Write),
    ("write_only", "--write-only", Needs::ReadWrite),
    ("time_stamps", "-t", Needs::Text),
    ("time_format", "--time-format", Needs::Text),
    ("color", "--color", Needs::Text),
    ("ascii", "-A", Needs::Text),
    ("hex", "-X", Needs::Text),
    ("link_header", "-e", Needs::Text),
    ("line_buffered", "-l", Needs::Lines),
    ("quiet", "-q", Needs::Lines),
    ("verbose", "-v", Needs::Lines),
    ("replay", "--replay", Needs::Replay),
];

/// `--generate`, `-D` and `-L` do one thing and exit: any option beside
/// `ids` would be ignored, so it is refused (tcpdump's no-ops `-n` and `-p`
/// aside, accepted everywhere).
fn only(args: &Args, ids: &[&str], what: &str) -> Result<()> {
    let noop = ["numeric", "no_promiscuous"];
    let Some(other) = args.given.iter().find(|g| !ids.contains(&g.as_str()) && !noop.contains(&g.as_str())) else {
        return Ok(());
    };
    let flag = typed_flag(other).unwrap_or_else(|| "a filter expression".to_string());
    Err(Error::usage(format!("{what}: {flag} would be ignored; give it alone")))
}

/// How option `id` (a field name) is typed: its short form, else its long
/// one; `None` for the filter expression (no flag) or an unknown id.
fn typed_flag(id: &str) -> Option<String> {
    use clap::CommandFactory;
    let cmd = Args::command();
    let arg = cmd.get_arguments().find(|a| a.get_id() == id)?;
    match (arg.get_short(), arg.get_long()) {
        (Some(c), _) => Some(format!("-{c}")),
        (None, Some(l)) => Some(format!("--{l}")),
        (None, None) => None,
    }
}

/// Checks that every option the line gave applies to the run it asks for.
fn check_applies(args: &Args) -> Result<()> {
    let live = args.interface.is_some();
    let tui = args.tui;
    for (id, flag, needs) in APPLIES {
        if !args.gave(id) {
            continue;
        }
        let t_flag = format!("-{}", "t".repeat(args.time_stamps.max(1) as usize));
        let flag = if *id == "time_stamps" { t_flag.as_str() } else { flag };
        let why = match needs {
            Needs::Live if !live => {
                if *id == "list_linktypes" {
                    "-L lists the link types of an interface: it needs -i IFACE".to_string()
                } else {
                    format!("{flag} applies to live capture (-i IFACE), not to -r FILE")
                }
            }
            Needs::Write if args.write.is_none() => format!("{flag} needs -w FILE"),
            Needs::ReadWrite if live => format!(
                "{flag} applies to -r FILE -w OUT (a second reading picks the packets); a live capture's -w writes every packet"
            ),
            Needs::ReadWrite if args.write.is_none() => format!("{flag} needs -w FILE (and -r FILE)"),
            Needs::Text | Needs::Lines if tui => {
                format!("{flag} applies to output lines, not to the dashboard (--tui)")
            }
            Needs::Text if args.json => {
                let times = matches!(*id, "time_stamps" | "time_format");
                let why = if times { " (JSON times are seconds since 1970, UTC)" } else { "" };
                format!("{flag} applies to text output, not to --json{why}")
            }
            Needs::Replay if !tui => "--replay needs --tui: it replays the capture on the dashboard \
                 (text and JSON are written as fast as the file is read)"
                .to_string(),
            _ => continue,
        };
        return Err(Error::usage(why));
    }
    if args.write.is_some() && tui && !live {
        return Err(Error::usage(
            "-w with -r FILE writes packets from a text or JSON run, not from the dashboard (--tui)",
        ));
    }
    if args.write.as_deref() == Some("-") && tui {
        return Err(Error::usage("-w -: standard output is the dashboard's terminal; write to a file"));
    }
    Ok(())
}

/// The BPF filter: the command line's words, or `-F FILE` (`#` starts a
/// comment, as tcpdump reads it), not both.
fn filter(args: &Args) -> Result<Option<String>> {
    let Some(path) = &args.filter_file else { return Ok(args.filter()) };
    if args.filter().is_some() {
        return Err(Error::usage(format!(
            "-F {path} and a filter on the command line ('{}'): give one",
            args.filter().unwrap_or_default()
        )));
    }
    let text =
        std::fs::read(path).map_err(|e| Error::usage(format!("-F {path}: {}", crate::capture::file::io_reason(&e))))?;
    let text = String::from_utf8_lossy(&text);
    let words: Vec<&str> =
        text.lines().map(|l| l.split('#').next().unwrap_or("")).flat_map(str::split_whitespace).collect();
    Ok(if words.is_empty() { None } else { Some(words.join(" ")) })
}

/// Whether two paths name one existing file (`-r f -w f`).
fn same_file(a: &str, b: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino() && x.is_file(),
        _ => false,
    }
}

/// `-w FILE` with `-C -G -W -U`.
fn rotation(args: &Args, w: &str) -> Result<Rotation> {
    let mut r = Rotation::new(w, args.file_size, args.rotate_seconds, args.file_count)?;
    r.packet_buffered = args.packet_buffered;
    Ok(r)
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
        let cpus = match &args.cpus {
            Some(text) => {
                let cpus = crate::cpus::parse(text).map_err(Error::Usage)?;
                crate::cpus::check(&cpus, &crate::cpus::allowed()).map_err(Error::Usage)?;
                Some(cpus)
            }
            None => None,
        };
        let threads = match args.threads {
            Some(n) if !(1..=crate::shard::MAX_THREADS).contains(&n) => {
                return Err(Error::usage(format!(
                    "invalid --threads {n}: expected 1 to {}",
                    crate::shard::MAX_THREADS
                )));
            }
            Some(n) if n > 1 && args.replay.is_some() => {
                return Err(Error::usage(format!(
                    "--threads {n}: --replay analyses at the capture's own pace, on one thread"
                )));
            }
            Some(n) if n > 1 && args.link_header => {
                return Err(Error::usage(format!(
                    "--threads {n}: -e reads each connection's first link header on one thread"
                )));
            }
            Some(n) => n,
            None if args.link_header || args.replay.is_some() => 1,
            // Live with --cpus: the CPUs given to wstap, a worker each (as
            // Suricata runs a worker per CPU of its worker-cpu-set); else one.
            None if args.interface.is_some() => {
                cpus.as_ref().map_or(1, |c| crate::shard::default_threads(Some(c.len())))
            }
            None => crate::shard::default_threads_for(args.read.as_deref(), cpus.as_ref().map(Vec::len)),
        };
        Ok(Analysis {
            // -A and -X print the HTTP messages' heads: they need them made.
            verbose: args.verbose > 0 || args.ascii || args.hex,
            redact: Redactor { enabled: !args.no_redact },
            fronts: args.front.clone(),
            upstreams,
            proxy: args.proxy,
            timeouts: args.timeouts.clone(),
            live: args.interface.is_some(),
            memcap,
            keylogs: args.keylog.clone(),
            threads,
            cpus,
        })
    }
}

impl Output {
    fn from_args(args: &Args) -> Result<Output> {
        let to_stderr = args.write.as_deref() == Some("-");
        let color = match args.color {
            ColorWhen::Always => true,
            ColorWhen::Never => false,
            ColorWhen::Auto => crate::sink::color_auto(to_stderr),
        };
        if args.time_stamp_precision == Some(Precision::Nano) {
            return Err(Error::usage(
                "--time-stamp-precision nano: wstap keeps packet times in microseconds; use micro",
            ));
        }
        let time = match (args.time_format, args.time_stamps) {
            (Some(f), 0) => f,
            (Some(_), _) => return Err(Error::usage("-t and --time-format both say how times are shown: give one")),
            (None, 0) => TimeFormat::Time,
            (None, 1) => TimeFormat::None,
            (None, 2) => TimeFormat::Epoch,
            (None, 3) => TimeFormat::Delta,
            (None, 4) => TimeFormat::Date,
            (None, 5) => TimeFormat::SinceFirst,
            (None, n) => return Err(Error::usage(format!("-{}: at most -ttttt", "t".repeat(n as usize)))),
        };
        Ok(Output {
            json: args.json,
            verbose: args.verbose,
            quiet: args.quiet,
            // Live output is read as it happens.
            line_buffered: args.line_buffered || args.interface.is_some(),
            color,
            fail_on: args.fail_on,
            time,
            to_stderr,
            heads: match (args.ascii, args.hex) {
                (_, true) => Some(crate::sink::Heads::Hex),
                (true, false) => Some(crate::sink::Heads::Ascii),
                (false, false) => None,
            },
            metrics: None,
            json_file: args.json_file.clone(),
            link: args.link_header,
        })
    }
}

/// `-i IFACE` and the options of live capture, checked.
fn live_config(args: &Args, iface: &str, filter: Option<String>, plan: privs::Plan) -> Result<LiveConfig> {
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
        Some(w) => Some(rotation(args, w)?),
        None => None,
    };
    let rings = match args.fanout {
        None => 1,
        Some(n) if !(1..=live::MAX_RINGS).contains(&n) => {
            return Err(Error::usage(format!("--fanout {n}: expected 1 to {} rings", live::MAX_RINGS)));
        }
        Some(n) if n > 1 && write.is_some() => {
            return Err(Error::usage(format!(
                "--fanout {n} with -w: the rings are merged for analysis, not into one file; capture to a file with one ring"
            )));
        }
        Some(n) => n,
    };
    Ok(LiveConfig {
        iface: iface.to_string(),
        filter,
        snaplen,
        count: args.count,
        buffer_bytes,
        duration,
        write,
        plan,
        queue_bytes: live::QUEUE_BYTES,
        immediate: args.immediate_mode,
        direction: args.direction,
        linktype: args.linktype.clone(),
        rings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(a: &Args) -> Result<LiveConfig> {
        live_config(a, "lo", None, privs::Plan::Keep { root: false })
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
        a.write = Some("x.pcap".into());
        assert!(live(&a).is_ok());
        a.duration = Some(-1.0);
        assert!(live(&a).is_err());
        a.duration = Some(0.5);
        a.count = Some(0);
        assert!(live(&a).is_err());
        let keep = privs::Plan::Keep { root: false };
        assert_eq!(live_config(&Args::default(), "", None, keep).unwrap_err().to_string(), "-i: empty interface name");
    }

    #[test]
    fn fanout_is_a_number_of_rings_for_live_capture_without_a_file() {
        let ok = |argv: &[&str]| match check(argv) {
            Ok(Command::Analyse(c)) => match c.input {
                Input::Live(l) => l.rings,
                _ => panic!("not live"),
            },
            _ => panic!("refused: {argv:?}"),
        };
        assert_eq!(ok(&["-i", "lo", "-Z", "root"]), 1);
        assert_eq!(ok(&["-i", "lo", "-Z", "root", "--fanout", "4"]), 4);
        assert_eq!(ok(&["-i", "lo", "-Z", "root", "--fanout", "1", "-w", "x.pcap"]), 1);
        assert_eq!(err(&["-i", "lo", "--fanout", "0"]), "--fanout 0: expected 1 to 16 rings");
        assert_eq!(err(&["-i", "lo", "--fanout", "17"]), "--fanout 17: expected 1 to 16 rings");
        assert_eq!(
            err(&["-i", "lo", "--fanout", "2", "-w", "x.pcap"]),
            "--fanout 2 with -w: the rings are merged for analysis, not into one file; capture to a file with one ring"
        );
        assert_eq!(
            err(&["-r", "x.pcap", "--fanout", "2"]),
            "--fanout applies to live capture (-i IFACE), not to -r FILE"
        );
    }

    fn check(argv: &[&str]) -> Result<Command> {
        Command::from_args(&Args::try_parse_line(std::iter::once("wstap").chain(argv.iter().copied())).unwrap())
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
        // The dashboard takes --threads (not with --replay: one thread, by default too).
        let Command::Analyse(c) = check(&["-i", "lo", "-Z", "root", "--tui", "--threads", "2"]).unwrap() else {
            panic!()
        };
        assert_eq!(c.analysis.threads, 2);
        let Command::Analyse(c) = check(&["-r", "x", "--tui", "--replay", "2"]).unwrap() else { panic!() };
        assert_eq!(c.analysis.threads, 1);
        // --cpus: kept as a list; the CPUs this process may use only.
        let first = crate::cpus::allowed()[0];
        let list = first.to_string();
        let Command::Analyse(c) = check(&["-i", "lo", "-Z", "root", "--threads", "2", "--cpus", &list]).unwrap() else {
            panic!()
        };
        assert_eq!((c.analysis.threads, c.analysis.cpus), (2, Some(vec![first])));
        // Live, the default is a worker per listed CPU (one without --cpus).
        let here = crate::cpus::format(&crate::cpus::allowed());
        let Command::Analyse(c) = check(&["-i", "lo", "-Z", "root", "--cpus", &here]).unwrap() else { panic!() };
        assert_eq!(c.analysis.threads, crate::cpus::allowed().len().min(crate::shard::MAX_DEFAULT_THREADS));
        let Command::Analyse(c) = check(&["-i", "lo", "-Z", "root"]).unwrap() else { panic!() };
        assert_eq!(c.analysis.threads, 1);
        assert!(err(&["-r", "x", "--cpus", "2-1"]).starts_with("invalid --cpus '2-1'"));
        // The default --threads for a big file counts the listed CPUs.
        assert_eq!(crate::shard::default_threads(Some(3)), 3);
        assert_eq!(crate::shard::default_threads(Some(40)), crate::shard::MAX_DEFAULT_THREADS);
        // Live output is line-buffered.
        let Command::Analyse(c) = check(&["-i", "lo", "-Z", "root"]).unwrap() else { panic!() };
        assert!(c.output.line_buffered);
        assert!(matches!(check(&["--generate", "man"]).unwrap(), Command::Generate(_)));
        assert!(matches!(check(&["-D", "-n"]).unwrap(), Command::ListInterfaces));
        assert!(matches!(check(&["-i", "eth0", "-L"]).unwrap(), Command::ListLinktypes(_)));
        // They do one thing: another option would be ignored, so it is refused.
        assert_eq!(
            err(&["--generate", "man", "--timeout", "0"]),
            "--generate prints its text and exits: --timeout would be ignored; give it alone"
        );
        assert_eq!(
            err(&["-D", "--memcap", "x"]),
            "-D lists the interfaces and exits: --memcap would be ignored; give it alone"
        );
        assert_eq!(
            err(&["-D", "-r", "f.pcap"]),
            "-D lists the interfaces and exits: -r would be ignored; give it alone"
        );
        assert_eq!(
            err(&["-i", "eth0", "-L", "--json"]),
            "-L lists the link types of -i IFACE and exits: --json would be ignored; give it alone"
        );
        assert!(err(&["-D", "tcp", "port", "80"]).contains("a filter expression would be ignored"));
    }

    #[test]
    fn every_option_the_table_names_exists() {
        for (id, flag, _) in APPLIES {
            assert_eq!(typed_flag(id).unwrap_or_else(|| panic!("no option {id}")), *flag, "{id}");
        }
    }

    #[test]
    fn mistakes_are_one_line_each() {
        assert_eq!(err(&["-i", "lo", "--replay", "2"]), "--replay needs -r FILE");
        assert_eq!(err(&["-r", "x", "--timeout", "0"]), "invalid --timeout 0: expected seconds > 0");
        assert!(err(&["-r", "x", "--memcap", "lots"]).starts_with("--memcap lots"), "{}", err(&["--memcap", "lots"]));
        assert_eq!(
            err(&["-q"]),
            "no input: use -r FILE (or -r - for standard input) or -i IFACE (-i any sees both hops of a proxy); see --help"
        );
        assert_eq!(
            err(&["--tui", "-Z", "root"]),
            "--tui needs an input: -r FILE or -i IFACE (-i any sees both hops of a proxy)"
        );
        assert_eq!(
            err(&["-r", "x", "--tui", "--replay", "2", "--threads", "4"]),
            "--threads 4: --replay analyses at the capture's own pace, on one thread"
        );
        assert!(err(&["-r", "x", "--threads", "65"]).starts_with("invalid --threads 65"));
        assert!(err(&["-r", "x", "-e", "--threads", "2"]).starts_with("--threads 2: -e reads"));
        assert_eq!(err(&["-r", "x", "-e", "--json"]), "-e applies to text output, not to --json");
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
