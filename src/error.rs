//! One error type: a variant per kind of failure, each with its one-line
//! message. `main` prints it as `wstap: {err}` and exits with status 2;
//! a closed standard output (`wstap ... | head`) is recognised by its
//! [`io::ErrorKind`] ([`Error::is_broken_pipe`]) and is not a failure.
//!
//! A truncated capture is not an error at all (its end is
//! [`crate::pipeline::InputEnd::Truncated`], a warning); a damaged one is
//! [`Error::Damaged`], after everything before the damage was analysed.

use std::fmt;
use std::io;

#[derive(Debug)]
pub enum Error {
    /// An option, or a combination of options, that cannot be honoured
    /// (`-C needs -w FILE`, `invalid --timeout -1: ...`).
    Usage(String),
    /// A capture that cannot be read as one: missing, unreadable, not
    /// pcap or pcapng, an unsupported link type. `name` is the path or
    /// "standard input".
    Input { name: String, reason: String },
    /// A capture damaged part-way: everything before the damage was
    /// analysed and summarised, what follows could not be read.
    Damaged { name: String, reason: String },
    /// A BPF filter expression libpcap refuses.
    Filter { expr: String, reason: String },
    /// A live capture device that cannot be opened or read.
    Device { iface: String, reason: String },
    /// Privileges: set-ID refused, no account to drop to, `-Z` failing.
    Privileges(String),
    /// A `--keylog` file that cannot be read.
    KeyLog(String),
    /// The `-w` file: refused (a link, another user's file) or not created.
    File { name: String, reason: String },
    /// Writing the `-w` file failed.
    Write { name: String, source: io::Error },
    /// Standard output, standard input or the terminal failed.
    Io(io::Error),
    /// Anything else, as a message (a thread that could not start, the
    /// dashboard's own failures).
    Other(String),
}

impl Error {
    /// An error that is only its message ([`Error::Other`]).
    pub fn new(msg: impl Into<String>) -> Error {
        Error::Other(msg.into())
    }

    /// An error that is only its message ([`Error::Other`]).
    pub fn msg(msg: impl Into<String>) -> Error {
        Error::Other(msg.into())
    }

    /// A bad option value or combination.
    pub fn usage(msg: impl Into<String>) -> Error {
        Error::Usage(msg.into())
    }

    /// The reader of the output went away (`wstap ... | head`): not a
    /// failure, the run ends quietly with status 0.
    pub fn is_broken_pipe(&self) -> bool {
        match self {
            Error::Io(e) | Error::Write { source: e, .. } => e.kind() == io::ErrorKind::BrokenPipe,
            _ => false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) | Error::Privileges(m) | Error::KeyLog(m) | Error::Other(m) => f.write_str(m),
            Error::Input { name, reason } | Error::File { name, reason } => write!(f, "{name}: {reason}"),
            Error::Device { iface, reason } => write!(f, "{iface}: {reason}"),
            Error::Damaged { name, reason } => write!(f, "{name}: {reason}; analysed everything before the damage"),
            Error::Filter { expr, reason } => write!(f, "bad filter expression '{expr}': {reason}"),
            Error::Write { name, source } => write!(f, "{name}: {}", without_os_error(source)),
            Error::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) | Error::Write { source: e, .. } => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}

/// An I/O error's message without the "(os error N)" suffix.
fn without_os_error(e: &io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_pipe_is_told_by_its_kind_not_its_text() {
        let pipe = io::Error::from(io::ErrorKind::BrokenPipe);
        assert!(Error::from(pipe).is_broken_pipe());
        let w = Error::Write { name: "x.pcap".into(), source: io::Error::from(io::ErrorKind::BrokenPipe) };
        assert!(w.is_broken_pipe());
        // A message that merely mentions a broken pipe is not one.
        assert!(!Error::new("Broken pipe").is_broken_pipe());
        assert!(!Error::from(io::Error::other("Broken pipe")).is_broken_pipe());
    }

    #[test]
    fn each_kind_is_one_line() {
        let all = [
            Error::usage("-C needs -w FILE"),
            Error::Input { name: "x.pcap".into(), reason: "No such file or directory".into() },
            Error::Damaged { name: "standard input".into(), reason: "pcapng: damaged block".into() },
            Error::Filter { expr: "tcp port".into(), reason: "syntax error".into() },
            Error::Device { iface: "eth9".into(), reason: "No such device exists".into() },
            Error::Write { name: "out.pcap".into(), source: io::Error::from_raw_os_error(libc::EACCES) },
        ];
        let lines: Vec<String> = all.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            lines,
            [
                "-C needs -w FILE",
                "x.pcap: No such file or directory",
                "standard input: pcapng: damaged block; analysed everything before the damage",
                "bad filter expression 'tcp port': syntax error",
                "eth9: No such device exists",
                "out.pcap: Permission denied",
            ]
        );
        assert!(lines.iter().all(|l| !l.contains('\n')));
    }
}
