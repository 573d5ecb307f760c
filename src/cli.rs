//! Command line, tcpdump conventions: `wstap -r FILE [EXPRESSION...]`,
//! `wstap -i IFACE [EXPRESSION...]`.

use clap::{Parser, ValueEnum};

#[derive(Parser, Debug, Clone, Default)]
#[command(
    name = "wstap",
    version,
    about = "Diagnose WebSockets through reverse proxies from packets: pairs each client handshake with the one the proxy forwarded and says which hop lost what.",
    after_help = "The trailing EXPRESSION is a BPF filter compiled by libpcap, as in tcpdump.\nExamples:\n  wstap -r capture.pcap\n  wstap -r capture.pcap --json 'tcp port 80 or tcp port 3000'\n  wstap -i any -w proxy.pcap 'tcp port 80 or tcp port 3000'\n  wstap -r capture.pcap --tui"
)]
pub struct Args {
    /// Read packets from FILE (pcap or pcapng; '-' reads standard input).
    #[arg(short = 'r', value_name = "FILE", conflicts_with = "interface")]
    pub read: Option<String>,

    /// Capture live on IFACE ('any' sees both hops of a proxy at once).
    #[arg(short = 'i', value_name = "IFACE")]
    pub interface: Option<String>,

    /// List the interfaces that can be captured on, and exit.
    #[arg(short = 'D')]
    pub list_interfaces: bool,

    /// Snap length: bytes kept per packet (live capture).
    #[arg(short = 's', value_name = "SNAPLEN", default_value_t = 262144)]
    pub snaplen: i32,

    /// Stop after COUNT packets.
    #[arg(short = 'c', value_name = "COUNT")]
    pub count: Option<u64>,

    /// Kernel capture buffer size in KiB (live capture).
    #[arg(short = 'B', value_name = "KiB")]
    pub buffer_kib: Option<i32>,

    /// Stop after SECS seconds of capture (live capture).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,

    /// Also write the raw packets to FILE (pcap), as tcpdump -w.
    #[arg(short = 'w', value_name = "FILE")]
    pub write: Option<String>,

    /// With -w: start a new file when the current one exceeds SIZE million bytes.
    #[arg(short = 'C', value_name = "SIZE")]
    pub file_size: Option<u64>,

    /// With -w: start a new file every SECS seconds (FILE may hold strftime % fields).
    #[arg(short = 'G', value_name = "SECS")]
    pub rotate_seconds: Option<u64>,

    /// With -C/-G: keep at most COUNT files, reusing names in a ring.
    #[arg(short = 'W', value_name = "COUNT")]
    pub file_count: Option<u32>,

    /// Deliver each packet as it arrives (libpcap immediate mode). Off by
    /// default: the kernel's block ring hands packets over within 10 ms at a
    /// tenth of the CPU and without drops at rates where immediate mode
    /// drops (docs/live.md).
    #[arg(long)]
    pub immediate_mode: bool,

    /// Parse packets as USER once the capture device (or file) is open. Default when run as root: wstap, or nobody; -Z root keeps root.
    #[arg(short = 'Z', value_name = "USER")]
    pub user: Option<String>,

    /// Verbose: also a line per HTTP message and WebSocket frame (-vv: every header).
    #[arg(short = 'v', action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Do not convert addresses or ports to names (wstap never resolves names; accepted as in tcpdump).
    #[arg(short = 'n')]
    pub numeric: bool,

    /// Quiet: print the summary only (and findings).
    #[arg(short = 'q')]
    pub quiet: bool,

    /// JSON Lines on standard output, one record per line (see docs/json.md).
    #[arg(long)]
    pub json: bool,

    /// Flush output after every line.
    #[arg(short = 'l')]
    pub line_buffered: bool,

    /// Terminal dashboard (with -r: analyse, then browse; with -i: live).
    #[arg(long, conflicts_with = "json")]
    pub tui: bool,

    /// With -r: replay the capture on its own timeline at this speed (1 = real time).
    #[arg(long, value_name = "SPEED")]
    pub replay: Option<f64>,

    /// The proxy's client-facing port: connections to it are the client hop (repeatable).
    #[arg(long = "front", value_name = "PORT")]
    pub front: Vec<u16>,

    /// An upstream (backend) address: IP, PORT, IP:PORT or [IPv6]:PORT (repeatable).
    #[arg(long = "upstream", value_name = "ADDR")]
    pub upstream: Vec<String>,

    /// The proxy in front, when it cannot be recognised from its headers.
    #[arg(long, value_enum, value_name = "NAME")]
    pub proxy: Option<crate::detect::proxy::Proxy>,

    /// An idle timeout you expect somewhere on the path, in seconds (repeatable).
    #[arg(long = "timeout", value_name = "SECS")]
    pub timeouts: Vec<f64>,

    /// Exit with status 1 when a finding of this severity or worse exists.
    #[arg(long, value_enum, value_name = "LEVEL")]
    pub fail_on: Option<FailOn>,

    /// When to colour text output.
    #[arg(long, value_enum, default_value_t = ColorWhen::Auto, value_name = "WHEN")]
    pub color: ColorWhen,

    /// TLS session keys (NSS key log format: SSLKEYLOGFILE, Node's keylog,
    /// haproxy's log-format fetches) to decrypt TLS hops; live capture
    /// follows the file as it grows (repeatable; see docs/tls.md).
    #[arg(long = "keylog", value_name = "FILE")]
    pub keylog: Vec<String>,

    /// Show Cookie, Authorization and query-string tokens as captured.
    #[arg(long)]
    pub no_redact: bool,

    /// Memory budget for all connection state (e.g. 256M, 2G; a bare number is MiB). Default 384M.
    #[arg(long, value_name = "SIZE")]
    pub memcap: Option<String>,

    /// Serve Prometheus metrics at http://ADDR/metrics while running (IP:PORT, [IPv6]:PORT, or :PORT for loopback; see docs/metrics.md).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,

    /// Also write JSON Lines to FILE (appended; opened anew on SIGHUP, for logrotate).
    #[arg(long, value_name = "FILE")]
    pub json_file: Option<String>,

    /// Print the man page or a shell completion script (made from these options) and exit.
    #[arg(long, value_enum, value_name = "WHAT")]
    pub generate: Option<crate::generate::Generate>,

    /// BPF filter expression.
    #[arg(value_name = "EXPRESSION", trailing_var_arg = true, allow_hyphen_values = true)]
    pub expression: Vec<String>,
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
    pub fn filter(&self) -> Option<String> {
        let f = self.expression.join(" ");
        if f.trim().is_empty() { None } else { Some(f) }
    }
}
