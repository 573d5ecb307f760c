//! Command line, tcpdump conventions: `wstap -r FILE [EXPRESSION...]`,
//! `wstap -i IFACE [EXPRESSION...]`.
//!
//! As tcpdump's getopt (GNU, permuting), options go anywhere on the line:
//! `wstap -r f.pcap 'tcp port 80' --json` and `wstap -r f.pcap tcp port 80
//! -c 10` are the same run. Every word that starts with `-` (other than `-`
//! itself, standard input for `-r`) is an option, so an unknown one is
//! reported as an unknown option, with clap's hint of a similar one, never
//! as a bad filter. After `--` every word belongs to the filter, as in
//! tcpdump: a BPF expression never needs a word that starts with `-`
//! except a negative number, which quoting (`'len > -1'`) or `--` passes.
//!
//! This file checks syntax only. Where each option applies (a file, a live
//! capture, the dashboard...) and which combinations make sense is
//! checked in config.rs, from [`Args::given`]: the options the line gave.
//! An option is a plain field here; a new one is one field, plus its line
//! in config.rs's table of where options apply.

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, ValueEnum};

#[derive(Parser, Debug, Clone, Default)]
#[command(
    name = "wstap",
    version,
    about = "Diagnose WebSockets through reverse proxies from packets: pairs each client handshake with the one the proxy forwarded and says which hop lost what.",
    after_help = AFTER_HELP,
    max_term_width = 100,
    // As tcpdump: a flag may be repeated (`-nn`, `-qq`), a repeated
    // option's last value wins; -v and -t count.
    args_override_self = true
)]
pub struct Args {
    // ---- input
    /// Read packets from FILE (pcap or pcapng; '-' reads standard input).
    #[arg(short = 'r', value_name = "FILE", conflicts_with = "interface", help_heading = "Input")]
    pub read: Option<String>,

    /// Capture live on IFACE ('any' sees both hops of a proxy at once).
    #[arg(short = 'i', value_name = "IFACE", help_heading = "Input")]
    pub interface: Option<String>,

    /// List the interfaces that can be captured on, and exit.
    #[arg(short = 'D', help_heading = "Input")]
    pub list_interfaces: bool,

    /// List the link-layer types IFACE offers (-i IFACE), and exit.
    #[arg(short = 'L', help_heading = "Input")]
    pub list_linktypes: bool,

    /// Read the filter EXPRESSION from FILE ('#' starts a comment), instead of the command line.
    #[arg(short = 'F', value_name = "FILE", help_heading = "Input")]
    pub filter_file: Option<String>,

    /// Stop after COUNT packets.
    #[arg(short = 'c', value_name = "COUNT", help_heading = "Input")]
    pub count: Option<u64>,

    // ---- live capture
    /// Snap length: bytes kept per packet (live capture; 0 = 262144).
    #[arg(short = 's', value_name = "SNAPLEN", default_value_t = 262144, help_heading = "Live capture")]
    pub snaplen: i32,

    /// Kernel capture buffer size in KiB (live capture; default 32768).
    #[arg(short = 'B', value_name = "KiB", help_heading = "Live capture")]
    pub buffer_kib: Option<i32>,

    /// Stop after SECS seconds of capture (live capture).
    #[arg(long, value_name = "SECS", help_heading = "Live capture")]
    pub duration: Option<f64>,

    /// Capture only packets received (in), sent (out) or both (inout, the default) by the host (live capture).
    /// On a proxy host both hops need both directions: in or out shows half of every connection.
    #[arg(short = 'Q', value_enum, value_name = "DIRECTION", help_heading = "Live capture")]
    pub direction: Option<Direction>,

    /// Capture with link-layer TYPE (a name -L lists, e.g. EN10MB, LINUX_SLL2).
    #[arg(short = 'y', value_name = "TYPE", help_heading = "Live capture")]
    pub linktype: Option<String>,

    /// Accepted as in tcpdump: wstap never puts an interface into promiscuous mode, with or without -p.
    #[arg(short = 'p', help_heading = "Live capture")]
    pub no_promiscuous: bool,

    /// Deliver each packet as it arrives (libpcap immediate mode). Off by
    /// default: the kernel's block ring hands packets over within 10 ms at a
    /// tenth of the CPU and without drops at rates where immediate mode
    /// drops (docs/live.md).
    #[arg(long, help_heading = "Live capture")]
    pub immediate_mode: bool,

    /// Spread the capture over N kernel rings, one capture thread each, by flow hash (PACKET_FANOUT, as
    /// Suricata's af-packet cluster_flow), for a link one ring cannot carry; packets are merged back in time
    /// order before analysis. Linux only; not with -w (docs/live.md).
    #[arg(long, value_name = "N", help_heading = "Live capture")]
    pub fanout: Option<usize>,

    /// Parse packets as USER once the capture device (or file) is open. Default when run as root: wstap, or nobody; -Z root keeps root.
    #[arg(short = 'Z', value_name = "USER", help_heading = "Input")]
    pub user: Option<String>,

    // ---- writing packets
    /// Write the packets to FILE (pcap), as tcpdump -w: live, every packet captured; with -r, every packet read
    /// (or those --write-only selects). '-' writes them to standard output (the records then go to standard error).
    #[arg(short = 'w', value_name = "FILE", help_heading = "Writing packets")]
    pub write: Option<String>,

    /// With -r and -w: write only the packets of these connections, both hops of each: websocket (every upgrade
    /// attempt), failing (upgrades that did not succeed), findings (every connection a finding names).
    #[arg(long, value_enum, value_name = "CONNS", help_heading = "Writing packets")]
    pub write_only: Option<WriteOnly>,

    /// With -w: start a new file when the current one exceeds SIZE million bytes.
    #[arg(short = 'C', value_name = "SIZE", help_heading = "Writing packets")]
    pub file_size: Option<u64>,

    /// With -w: start a new file every SECS seconds (FILE may hold strftime % fields; with -r, packet time).
    #[arg(short = 'G', value_name = "SECS", help_heading = "Writing packets")]
    pub rotate_seconds: Option<u64>,

    /// With -C/-G: keep at most COUNT files, reusing names in a ring.
    #[arg(short = 'W', value_name = "COUNT", help_heading = "Writing packets")]
    pub file_count: Option<u32>,

    /// With -w: write each packet out as it is captured or read (packet-buffered), not a buffer at a time.
    #[arg(short = 'U', help_heading = "Writing packets")]
    pub packet_buffered: bool,

    // ---- output
    /// Verbose: also a line per HTTP message and WebSocket frame (-vv: every header).
    #[arg(short = 'v', action = clap::ArgAction::Count, help_heading = "Output")]
    pub verbose: u8,

    /// Quiet: print the summary only (and findings).
    #[arg(short = 'q', help_heading = "Output")]
    pub quiet: bool,

    /// JSON Lines on standard output, one record per line (see docs/json.md).
    #[arg(long, help_heading = "Output")]
    pub json: bool,

    /// Do not convert addresses or ports to names (wstap never resolves names; accepted as in tcpdump).
    #[arg(short = 'n', help_heading = "Output")]
    pub numeric: bool,

    /// Flush output after every line.
    #[arg(short = 'l', help_heading = "Output")]
    pub line_buffered: bool,

    /// Text times: -t none, -tt seconds since 1970, -ttt delta from the previous line, -tttt date and time,
    /// -ttttt delta from the first line. Default: time of day in local time (HH:MM:SS.ffffff), as tcpdump.
    #[arg(short = 't', action = clap::ArgAction::Count, help_heading = "Output")]
    pub time_stamps: u8,

    /// Text times as FORMAT: time, none, epoch, delta, date, since-first (the -t family), or iso: ISO 8601 with
    /// the zone (2026-11-21T17:38:00.916382+01:00), to join proxy logs. Local time; TZ=UTC for UTC.
    #[arg(long, value_enum, value_name = "FORMAT", help_heading = "Output")]
    pub time_format: Option<TimeFormat>,

    /// Time stamp precision: micro (wstap keeps microseconds: nano is refused rather than made up).
    #[arg(long, value_enum, value_name = "PRECISION", help_heading = "Output")]
    pub time_stamp_precision: Option<Precision>,

    /// Print the head of each WebSocket handshake's HTTP messages on every hop, as text: the request or
    /// status line and every header (secrets redacted, terminal-unsafe bytes escaped).
    #[arg(short = 'A', help_heading = "Output")]
    pub ascii: bool,

    /// As -A, in hex and ASCII (tcpdump -X's layout), the head as wstap parsed it.
    #[arg(short = 'X', help_heading = "Output")]
    pub hex: bool,

    /// Print the link-level header (MAC addresses; with -i any, the direction and interface) of the packet
    /// that opened each hop's connection, under its handshake line (as tcpdump -e). Analyses on one thread.
    #[arg(short = 'e', help_heading = "Output")]
    pub link_header: bool,

    /// When to colour text output (auto: a terminal, unless NO_COLOR is set or TERM=dumb; CLICOLOR_FORCE forces it).
    #[arg(long, value_enum, default_value_t = ColorWhen::Auto, value_name = "WHEN", help_heading = "Output")]
    pub color: ColorWhen,

    /// Exit with status 1 when a finding of this severity or worse exists.
    #[arg(long, value_enum, value_name = "LEVEL", help_heading = "Output")]
    pub fail_on: Option<FailOn>,

    // ---- dashboard
    /// Terminal dashboard (with -r: analyse, then browse; with -i: live).
    #[arg(long, conflicts_with = "json", help_heading = "Dashboard")]
    pub tui: bool,

    /// With -r and --tui: replay the capture on its own timeline at this speed (1 = real time).
    #[arg(long, value_name = "SPEED", help_heading = "Dashboard")]
    pub replay: Option<f64>,

    // ---- analysis
    /// The proxy's client-facing port: connections to it are the client hop (repeatable).
    #[arg(long = "front", value_name = "PORT", help_heading = "Analysis")]
    pub front: Vec<u16>,

    /// An upstream (backend) address: IP, PORT, IP:PORT or [IPv6]:PORT (repeatable).
    #[arg(long = "upstream", value_name = "ADDR", help_heading = "Analysis")]
    pub upstream: Vec<String>,

    /// The proxy in front, when it cannot be recognised from its headers.
    #[arg(long, value_enum, value_name = "NAME", help_heading = "Analysis")]
    pub proxy: Option<crate::detect::proxy::Proxy>,

    /// An idle timeout you expect somewhere on the path, in seconds (repeatable).
    #[arg(long = "timeout", value_name = "SECS", help_heading = "Analysis")]
    pub timeouts: Vec<f64>,

    /// TLS session keys (NSS key log format: SSLKEYLOGFILE, Node's keylog,
    /// haproxy's log-format fetches) to decrypt TLS hops; live capture
    /// follows the file as it grows (repeatable; see docs/tls.md).
    #[arg(long = "keylog", value_name = "FILE", help_heading = "Analysis")]
    pub keylog: Vec<String>,

    /// Show Cookie, Authorization and query-string tokens as captured.
    #[arg(long, help_heading = "Analysis")]
    pub no_redact: bool,

    /// Memory budget for all connection state (e.g. 256M, 2G; a bare number is MiB). Default 384M.
    #[arg(long, value_name = "SIZE", help_heading = "Analysis")]
    pub memcap: Option<String>,

    /// Threads for the per-packet work: connections are spread over N
    /// workers, correlation stays on one; the output does not depend on N.
    /// Default: the available cores (at most 8) for files of 64 MiB or
    /// more, else 1 (one thread); live capture (-i) uses one unless asked
    /// (with --cpus, one per listed CPU), and --replay one only. The
    /// dashboard (--tui) takes it too.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// Run on these CPUs only (a list such as 2-5,8, as taskset -c takes):
    /// every thread stays on the list and each analysis worker is pinned
    /// to one CPU of it, in order. Keeps wstap off the proxy's own cores.
    /// With it, the default --threads (large files, and live capture)
    /// counts the listed CPUs.
    #[arg(long, value_name = "LIST")]
    pub cpus: Option<String>,

    /// Serve Prometheus metrics at http://ADDR/metrics while running (IP:PORT, [IPv6]:PORT, or :PORT for loopback; see docs/metrics.md).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,

    /// Also write JSON Lines to FILE (appended; opened anew on SIGHUP, for logrotate).
    #[arg(long, value_name = "FILE")]
    pub json_file: Option<String>,

    /// Print the man page or a shell completion script (made from these options) and exit.
    #[arg(long, value_enum, value_name = "WHAT")]
    pub generate: Option<crate::generate::Generate>,

    /// BPF filter, compiled by libpcap as in tcpdump (words may go before, between or after options).
    #[arg(value_name = "EXPRESSION")]
    pub expression: Vec<String>,

    /// The options the command line gave (clap ids, in the order typed);
    /// empty when `Args` is built in code. config.rs checks each applies.
    #[arg(skip)]
    pub given: Vec<String>,
}

const AFTER_HELP: &str = "\
Options go anywhere on the line, as in tcpdump; the EXPRESSION words are a BPF filter compiled by libpcap.
An option that does not apply to the run (-B with -r, --replay without --tui) is an error, never ignored.

Examples:
  wstap -r capture.pcap
  wstap -r capture.pcap 'tcp port 80 or tcp port 3000' --json
  wstap -i any 'tcp port 443 or tcp port 3000'           # both hops of a proxy: its front and upstream ports
  wstap -i any -w proxy.pcap -C 100 -W 10 'tcp port 80 or tcp port 3000'
  wstap -r big.pcap -w failing.pcap --write-only failing  # a pcap of just the failing handshakes, both hops
  wstap -r capture.pcap -tttt                              # dated times, to join proxy logs
  wstap -r capture.pcap --tui";

/// `-Q`: which direction of traffic a live capture takes.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    In,
    Out,
    Inout,
}

/// `--write-only`: whose packets `-r -w` writes.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOnly {
    /// Every connection that carried a WebSocket upgrade attempt, both hops.
    Websocket,
    /// The upgrade attempts that did not succeed (rejected or failed), both hops.
    Failing,
    /// Every connection a finding names.
    Findings,
}

/// `--time-format`, and what the `-t` family stands for.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeFormat {
    /// Time of day, local time: 17:38:00.916382 (the default, as tcpdump).
    #[default]
    Time,
    /// No time (-t).
    None,
    /// Seconds since 1970: 1795282680.916382 (-tt).
    Epoch,
    /// Since the previous line: 00:00:00.000020 (-ttt).
    Delta,
    /// Date and time of day, local time: 2026-11-21 17:38:00.916382 (-tttt).
    Date,
    /// Since the first line (-ttttt).
    SinceFirst,
    /// ISO 8601 with the zone's offset, local time: 2026-11-21T17:38:00.916382+00:00.
    Iso,
}

/// `--time-stamp-precision`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Micro,
    Nano,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOn {
    Error,
    Warning,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorWhen {
    #[default]
    Auto,
    Always,
    Never,
}

impl Args {
    /// The filter the command line's words make (`-F` is read by config.rs).
    pub fn filter(&self) -> Option<String> {
        let f = self.expression.join(" ");
        if f.trim().is_empty() { None } else { Some(f) }
    }

    /// Parses a command line (`argv[0]` first), noting which options it gave.
    pub fn try_parse_line<I, T>(argv: I) -> Result<Args, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let m = Args::command().try_get_matches_from(argv)?;
        let mut a = Args::from_arg_matches(&m)?;
        a.given = given(&m);
        Ok(a)
    }

    /// The process's command line: `--help` and `--version` are printed and
    /// exit 0; a mistake is one line on standard error and exit 2.
    pub fn parse_line() -> Args {
        match Args::try_parse_line(std::env::args_os()) {
            Ok(a) => a,
            Err(e) if !e.use_stderr() => e.exit(),
            Err(e) => {
                eprintln!("wstap: {}", one_line(&e));
                std::process::exit(2);
            }
        }
    }

    /// Whether the command line gave option `id` (a field name).
    pub fn gave(&self, id: &str) -> bool {
        self.given.iter().any(|g| g == id)
    }
}

/// The ids of the arguments typed on the line, in the order typed.
fn given(m: &ArgMatches) -> Vec<String> {
    let cmd = Args::command();
    let mut v: Vec<(usize, String)> = m
        .ids()
        // Arguments only: the derive's group (named after the struct) is not one.
        .filter(|id| cmd.get_arguments().any(|a| a.get_id() == *id))
        .filter(|id| m.value_source(id.as_str()) == Some(ValueSource::CommandLine))
        .map(|id| (m.index_of(id.as_str()).unwrap_or(usize::MAX), id.to_string()))
        .collect();
    v.sort();
    v.into_iter().map(|(_, id)| id).collect()
}

/// clap's error as one line: what is wrong, then its tips (a similar
/// option, `--` for a filter word that starts with `-`), then "see --help".
pub fn one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let mut parts: Vec<String> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with("Usage:") || line.starts_with("For more information") {
            continue;
        }
        let line = line.strip_prefix("error: ").unwrap_or(line);
        let line = line.strip_prefix("tip: ").unwrap_or(line);
        parts.push(line.to_string());
    }
    if parts.is_empty() {
        parts.push(e.kind().to_string());
    }
    format!("{}; see --help", parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Args, String> {
        Args::try_parse_line(std::iter::once("wstap").chain(line.split_whitespace())).map_err(|e| one_line(&e))
    }

    #[test]
    fn options_go_anywhere_on_the_line() {
        let a = parse("-r f.pcap tcp port 80 --json").unwrap();
        assert_eq!((a.read.as_deref(), a.filter().as_deref(), a.json), (Some("f.pcap"), Some("tcp port 80"), true));
        let a = parse("tcp -r f.pcap port -c 5 80 -n").unwrap();
        assert_eq!((a.filter().as_deref(), a.count, a.numeric), (Some("tcp port 80"), Some(5), true));
        assert_eq!(a.given, ["expression", "read", "count", "numeric"]);
        // BPF words that look like nothing clap knows stay words: `not`,
        // `and`, brackets, `-` alone is standard input for -r.
        let a = parse("-r - not tcp[13] & 2 = 0 and len > 60").unwrap();
        assert_eq!(a.read.as_deref(), Some("-"));
        assert_eq!(a.filter().as_deref(), Some("not tcp[13] & 2 = 0 and len > 60"));
        // After `--`, everything is the filter (tcpdump's getopt too).
        let a = parse("-r f -- len > -1").unwrap();
        assert_eq!(a.filter().as_deref(), Some("len > -1"));
    }

    #[test]
    fn unknown_options_are_unknown_options() {
        let e = parse("-r f.pcap -P").unwrap_err();
        assert!(e.starts_with("unexpected argument '-P' found"), "{e}");
        assert!(!e.contains("filter"), "{e}");
        let e = parse("-r f.pcap tcp --jsn").unwrap_err();
        assert!(e.contains("a similar argument exists: '--json'"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        // A negative number as a separate word is an option to tcpdump too
        // (`invalid option -- '1'`): the tip says how to pass it.
        let e = parse("-r f len > -1").unwrap_err();
        assert!(e.contains("'-1'") && e.contains("'-- -1'"), "{e}");
    }

    #[test]
    fn flags_repeat_as_in_tcpdump() {
        let a = parse("-nnvv -r f -c 3 -c 5 -tt -t").unwrap();
        assert!(a.numeric);
        assert_eq!((a.verbose, a.time_stamps, a.count, a.read.as_deref()), (2, 3, Some(5), Some("f")));
        // Repeatable options still gather every value.
        let a = parse("-r f --front 80 --keylog a tcp --front 81 --keylog b port 80").unwrap();
        assert_eq!((&a.front[..], &a.keylog[..]), (&[80, 81][..], &["a".to_string(), "b".to_string()][..]));
        assert_eq!(a.filter().as_deref(), Some("tcp port 80"));
        let a = parse("-nnr f -qq -ll").unwrap();
        assert!(a.quiet && a.line_buffered && a.numeric);
        assert_eq!(a.read.as_deref(), Some("f"));
    }

    #[test]
    fn tcpdump_short_options_parse() {
        let a = parse("-i any -p -U -Q in -y EN10MB -tttt -w x.pcap").unwrap();
        assert!(a.no_promiscuous && a.packet_buffered);
        assert_eq!((a.direction, a.linktype.as_deref(), a.time_stamps), (Some(Direction::In), Some("EN10MB"), 4));
        let a = parse("-r f -t -t -F filter.bpf").unwrap();
        assert_eq!((a.time_stamps, a.filter_file.as_deref()), (2, Some("filter.bpf")));
        let a = parse("-r f --time-format iso --time-stamp-precision micro").unwrap();
        assert_eq!((a.time_format, a.time_stamp_precision), (Some(TimeFormat::Iso), Some(Precision::Micro)));
    }
}
