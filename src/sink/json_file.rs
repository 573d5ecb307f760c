//! JSON Lines to a file (`--json-file PATH`), the same lines as `--json`
//! (docs/json.md), for a log shipper (Vector, Fluent Bit, Promtail) to
//! follow, beside whatever standard output shows.
//!
//! Rotation as logrotate does it without `copytruncate`: the file is
//! renamed, then wstap gets SIGHUP and opens PATH anew. The check is made
//! between two records, never inside one: the lines written before the
//! signal are flushed to the renamed file, the next ones go to the new
//! file, and no line is split or lost. The file is opened before the
//! capture starts (a path that cannot be written is one line and exit 2),
//! with the privileges the process had then; a file opened again after a
//! rotation is created as the user packets are parsed as (`-Z`), so its
//! directory must be writable by that user (contrib/systemd/).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{Options, Sink};
use crate::record::Record;

/// The file, opened, waiting for its sink to be built.
#[derive(Debug, Clone)]
pub struct JsonFile {
    pub path: PathBuf,
    file: Arc<Mutex<Option<File>>>,
}

/// Opens (creates, appends to) `path`: not through a symbolic link, mode
/// 0640 when created.
pub fn open_file(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().append(true).create(true).mode(0o640).custom_flags(libc::O_NOFOLLOW).open(path)
}

impl JsonFile {
    /// Opens the file now, so that a path that cannot be written stops the
    /// run before the capture starts.
    pub fn open(path: &str) -> crate::error::Result<JsonFile> {
        let file = open_file(Path::new(path)).map_err(|e| crate::error::Error::File {
            name: path.to_string(),
            reason: format!("cannot write JSON Lines there (--json-file): {e}"),
        })?;
        Ok(JsonFile { path: PathBuf::from(path), file: Arc::new(Mutex::new(Some(file))) })
    }
}

/// The sink, when `--json-file` asked for it (built once: the file goes
/// to the first sink built).
pub fn build(o: &Options) -> Option<Box<dyn Sink + Send>> {
    let jf = o.json_file.as_ref()?;
    let file = jf.file.lock().ok()?.take()?;
    Some(Box::new(JsonFileSink::new(jf.path.clone(), file, o.line_buffered)))
}

pub struct JsonFileSink {
    path: PathBuf,
    w: BufWriter<File>,
    line_buffered: bool,
    /// A reopen failed: said once on standard error, lines go on to the
    /// file still open.
    warned: bool,
}

impl JsonFileSink {
    pub fn new(path: PathBuf, file: File, line_buffered: bool) -> JsonFileSink {
        JsonFileSink { path, w: BufWriter::with_capacity(64 * 1024, file), line_buffered, warned: false }
    }

    /// SIGHUP: everything so far to the old file, then the path opened anew.
    fn reopen(&mut self) -> std::io::Result<()> {
        self.w.flush()?;
        match open_file(&self.path) {
            Ok(f) => {
                self.w = BufWriter::with_capacity(64 * 1024, f);
                self.warned = false;
            }
            Err(e) if !self.warned => {
                self.warned = true;
                eprintln!(
                    "wstap: warning: {}: cannot reopen after SIGHUP: {e}; writing on to the file open",
                    self.path.display()
                );
            }
            Err(_) => {}
        }
        Ok(())
    }
}

impl Sink for JsonFileSink {
    fn record(&mut self, r: &Record) -> std::io::Result<()> {
        if crate::signal::take_reopen() {
            self.reopen()?;
        }
        super::json::to_writer(&mut self.w, r)?;
        self.w.write_all(b"\n")?;
        if self.line_buffered {
            self.w.flush()?;
        }
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if crate::signal::take_reopen() {
            self.reopen()?;
        }
        self.w.flush()
    }
    fn wants_runtime(&self) -> bool {
        crate::signal::reopen_pending()
    }
    fn runtime(&mut self, _: &crate::runtime::RuntimeSnapshot) {
        // A quiet link: a rotation is still obeyed within a tick.
        if crate::signal::take_reopen() {
            let _ = self.reopen();
        }
    }
}
