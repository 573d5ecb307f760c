//! A live wstap started by a test: its stderr lines, its /proc entries.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A started wstap and its stderr lines.
pub struct Running {
    child: Child,
    pub err: mpsc::Receiver<String>,
    pub stderr: Vec<String>,
}

impl Running {
    pub fn start(mut cmd: Command) -> Running {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::null()).spawn().unwrap();
        let (tx, err) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Running { child, err, stderr: Vec::new() }
    }

    /// Waits (bounded) for the "listening on" line; false if wstap ended.
    pub fn listening(&mut self) -> bool {
        while let Ok(l) = self.err.recv_timeout(Duration::from_secs(10)) {
            let done = l.contains("listening on");
            self.stderr.push(l);
            if done {
                return true;
            }
        }
        false
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn status(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap()
    }

    /// SIGINT, then stdout and the exit code.
    pub fn stop(mut self) -> (String, i32, Vec<String>) {
        // SAFETY: kill on the pid of a child we started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let mut out = String::new();
        self.child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        let code = self.child.wait().unwrap().code().unwrap_or(-1);
        self.stderr.extend(self.err.try_iter());
        (out, code, self.stderr)
    }
}

pub fn field<'a>(status: &'a str, name: &str) -> &'a str {
    status.lines().find_map(|l| l.strip_prefix(name)).map(str::trim).unwrap_or_else(|| panic!("{name} in {status}"))
}
