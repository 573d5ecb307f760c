//! Command line, tcpdump conventions: `wstap -r FILE [EXPRESSION...]`.

use clap::Parser;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "wstap",
    version,
    about = "Diagnose WebSockets through reverse proxies from packets: pairs each client handshake with the one the proxy forwarded and says which hop lost what.",
    after_help = "The trailing EXPRESSION is a BPF filter compiled by libpcap, as in tcpdump.\nExamples:\n  wstap -r capture.pcap\n  wstap -r capture.pcap --json 'tcp port 80 or tcp port 3000'\n  wstap -r - -q < capture.pcapng"
)]
pub struct Args {
    /// Read packets from FILE (pcap or pcapng; '-' reads standard input).
    #[arg(short = 'r', value_name = "FILE")]
    pub read: Option<String>,

    /// Verbose: also a line per HTTP message and WebSocket frame (-vv: every header).
    #[arg(short = 'v', action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Do not convert addresses or ports to names (wstap never resolves names; accepted as in tcpdump).
    #[arg(short = 'n')]
    pub numeric: bool,

    /// Quiet: print the summary only.
    #[arg(short = 'q')]
    pub quiet: bool,

    /// JSON Lines on standard output, one record per line (see docs/json.md).
    #[arg(long)]
    pub json: bool,

    /// Flush output after every line.
    #[arg(short = 'l')]
    pub line_buffered: bool,

    /// The proxy's client-facing port: connections to it are the client hop (repeatable).
    #[arg(long = "front", value_name = "PORT")]
    pub front: Vec<u16>,

    /// An upstream (backend) address: IP, PORT, IP:PORT or [IPv6]:PORT (repeatable).
    #[arg(long = "upstream", value_name = "ADDR")]
    pub upstream: Vec<String>,

    /// Show Cookie, Authorization and query-string tokens as captured.
    #[arg(long)]
    pub no_redact: bool,

    /// BPF filter expression.
    #[arg(value_name = "EXPRESSION", trailing_var_arg = true, allow_hyphen_values = true)]
    pub expression: Vec<String>,
}

impl Args {
    pub fn filter(&self) -> Option<String> {
        let f = self.expression.join(" ");
        if f.trim().is_empty() { None } else { Some(f) }
    }
}
