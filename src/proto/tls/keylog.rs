//! Session keys: the NSS key log format (what SSLKEYLOGFILE, Node's
//! `keylog` event, OpenSSL's keylog callback, Go's KeyLogWriter and
//! haproxy's log-format fetches write), from a file, a file that grows
//! (live capture), or a pcapng Decryption Secrets Block.
//!
//! One line per secret: `LABEL <client_random hex> <secret hex>`. Comment
//! lines (`#`) and blank lines are skipped; anything else that does not
//! parse is counted as malformed (its content is never printed: it may
//! hold a key). Secrets are kept per client random, bounded.

use std::collections::VecDeque;
use std::io::{Read, Seek, SeekFrom};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::flow::key::FxHashMap;
use crate::time::Ts;

/// The secrets logged for one connection (one client random).
#[derive(Default, Clone, PartialEq, Eq)]
pub struct Secrets {
    /// TLS 1.2 master secret (`CLIENT_RANDOM`).
    pub master: Option<Vec<u8>>,
    pub client_hs: Option<Vec<u8>>,
    pub server_hs: Option<Vec<u8>>,
    pub client_ap: Option<Vec<u8>>,
    pub server_ap: Option<Vec<u8>>,
}

impl std::fmt::Debug for Secrets {
    // Says which secrets are there, never what they are.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Secrets {{ master: {}, client_hs: {}, server_hs: {}, client_ap: {}, server_ap: {} }}",
            self.master.is_some(),
            self.client_hs.is_some(),
            self.server_hs.is_some(),
            self.client_ap.is_some(),
            self.server_ap.is_some()
        )
    }
}

/// What reading key logs found (summary `tls.keylog`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KeyLogStats {
    /// Non-empty, non-comment lines read.
    pub lines: u64,
    /// Secrets stored.
    pub secrets: u64,
    /// Lines that are not `LABEL HEX HEX` with a 32-byte client random.
    pub malformed: u64,
    /// Well-formed lines with a label wstap does not use (0-RTT, exporter
    /// secrets, RSA pre-master secrets).
    pub ignored: u64,
    /// Connections forgotten to stay within the bound.
    pub evicted: u64,
    /// pcapng Decryption Secrets Blocks read.
    pub dsb: u64,
    /// Key log files given (`--keylog`).
    pub files: u64,
    /// Times a watched key log could not be read (live).
    pub read_errors: u64,
}

/// Client randoms remembered at most (about 250 bytes each): a browser's
/// key log of weeks fits; beyond, the oldest are forgotten (counted).
pub const MAX_CONNECTIONS: usize = 200_000;

#[derive(Default)]
pub struct KeyStore {
    map: FxHashMap<[u8; 32], Secrets>,
    order: VecDeque<[u8; 32]>,
    pub stats: KeyLogStats,
    /// A partial last line (a writer caught mid-line).
    pending: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    ClientRandom,
    ClientHs,
    ServerHs,
    ClientAp,
    ServerAp,
    Ignored,
}

fn label(s: &str) -> Option<Label> {
    Some(match s {
        "CLIENT_RANDOM" => Label::ClientRandom,
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET" => Label::ClientHs,
        "SERVER_HANDSHAKE_TRAFFIC_SECRET" => Label::ServerHs,
        "CLIENT_TRAFFIC_SECRET_0" => Label::ClientAp,
        "SERVER_TRAFFIC_SECRET_0" => Label::ServerAp,
        "CLIENT_EARLY_TRAFFIC_SECRET" | "EARLY_EXPORTER_SECRET" | "EXPORTER_SECRET" | "RSA" | "PMS_CLIENT_RANDOM" => {
            Label::Ignored
        }
        // OpenSSL logs the secrets after each KeyUpdate too; wstap derives them.
        l if l.starts_with("CLIENT_TRAFFIC_SECRET_") || l.starts_with("SERVER_TRAFFIC_SECRET_") => Label::Ignored,
        _ => return None,
    })
}

fn hex(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if b.is_empty() || !b.len().is_multiple_of(2) {
        return None;
    }
    let v = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    b.chunks(2).map(|p| Some(v(p[0])? << 4 | v(p[1])?)).collect()
}

impl KeyStore {
    /// Reads key log text (whole lines; a trailing partial line waits for
    /// the rest in the next call).
    pub fn add_text(&mut self, text: &[u8]) {
        let mut buf = std::mem::take(&mut self.pending);
        buf.extend_from_slice(text);
        let mut start = 0;
        while let Some(nl) = buf[start..].iter().position(|&c| c == b'\n') {
            self.add_line(&buf[start..start + nl]);
            start += nl + 1;
        }
        // Bounded: a "line" longer than any real one is damage.
        if buf.len() - start > 4096 {
            self.stats.malformed += 1;
            start = buf.len();
        }
        self.pending = buf[start..].to_vec();
    }

    /// The end of a key log: a last line without a newline counts too.
    pub fn end_of_text(&mut self) {
        let rest = std::mem::take(&mut self.pending);
        if !rest.is_empty() {
            self.add_line(&rest);
        }
    }

    fn add_line(&mut self, line: &[u8]) {
        let Ok(line) = std::str::from_utf8(line) else {
            self.stats.lines += 1;
            self.stats.malformed += 1;
            return;
        };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return;
        }
        self.stats.lines += 1;
        let mut f = line.split_ascii_whitespace();
        let (Some(l), Some(cr), Some(sec), None) = (f.next(), f.next(), f.next(), f.next()) else {
            self.stats.malformed += 1;
            return;
        };
        let Some(l) = label(l) else {
            self.stats.malformed += 1;
            return;
        };
        // haproxy's log-format writes "-" for a secret the connection has
        // not (TLS 1.2 has no traffic secrets).
        if l == Label::Ignored || sec == "-" {
            self.stats.ignored += 1;
            return;
        }
        let (Some(cr), Some(sec)) = (hex(cr), hex(sec)) else {
            self.stats.malformed += 1;
            return;
        };
        let Ok(cr) = <[u8; 32]>::try_from(cr.as_slice()) else {
            self.stats.malformed += 1;
            return;
        };
        let ok_len = match l {
            Label::ClientRandom => sec.len() == 48,
            _ => sec.len() == 32 || sec.len() == 48,
        };
        if !ok_len {
            self.stats.malformed += 1;
            return;
        }
        self.insert(cr, l, sec);
    }

    fn insert(&mut self, cr: [u8; 32], l: Label, sec: Vec<u8>) {
        if !self.map.contains_key(&cr) {
            if self.map.len() >= MAX_CONNECTIONS
                && let Some(old) = self.order.pop_front()
            {
                self.map.remove(&old);
                self.stats.evicted += 1;
            }
            self.order.push_back(cr);
        }
        let e = self.map.entry(cr).or_default();
        let slot = match l {
            Label::ClientRandom => &mut e.master,
            Label::ClientHs => &mut e.client_hs,
            Label::ServerHs => &mut e.server_hs,
            Label::ClientAp => &mut e.client_ap,
            Label::ServerAp => &mut e.server_ap,
            Label::Ignored => return,
        };
        if slot.is_none() {
            self.stats.secrets += 1;
        }
        *slot = Some(sec);
    }

    pub fn get(&self, client_random: &[u8; 32]) -> Option<&Secrets> {
        self.map.get(client_random)
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The key store shared by the connections of one run (and, live, the
/// thread that watches the key log). Cheap to clone.
#[derive(Clone, Default)]
pub struct Keys(Arc<Shared>);

#[derive(Default)]
struct Shared {
    store: Mutex<KeyStore>,
    /// Bumped when secrets are added: a connection waiting for its keys
    /// looks again only when this moved.
    generation: AtomicU64,
    /// More keys may come while packets are read (a watched key log):
    /// connections without keys hold their records (bounded) meanwhile.
    growing: AtomicBool,
    /// The watched key logs, which the analysis may also read at once
    /// ([`Keys::catch_up`]), and the packet time (µs) it last did.
    followed: Mutex<Vec<(String, Arc<Mutex<Follow>>)>>,
    caught_up_at: AtomicI64,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys {{ generation: {} }}", self.generation())
    }
}

impl Keys {
    pub fn generation(&self) -> u64 {
        self.0.generation.load(Ordering::Acquire)
    }

    pub fn growing(&self) -> bool {
        self.0.growing.load(Ordering::Relaxed)
    }

    pub fn set_growing(&self, g: bool) {
        self.0.growing.store(g, Ordering::Relaxed);
    }

    fn with<T>(&self, f: impl FnOnce(&mut KeyStore) -> T) -> T {
        f(&mut lock(&self.0.store))
    }

    /// Adds key log text (a file's content, a DSB's payload).
    pub fn add_text(&self, text: &[u8]) {
        self.with(|s| {
            let before = s.stats.secrets;
            s.add_text(text);
            s.end_of_text();
            if s.stats.secrets != before {
                self.0.generation.fetch_add(1, Ordering::AcqRel);
            }
        });
    }

    /// A pcapng Decryption Secrets Block of type TLS key log.
    pub fn add_dsb(&self, text: &[u8]) {
        self.with(|s| s.stats.dsb += 1);
        self.add_text(text);
    }

    pub fn lookup(&self, client_random: &[u8; 32]) -> Option<Secrets> {
        self.with(|s| s.get(client_random).cloned())
    }

    pub fn stats(&self) -> KeyLogStats {
        self.with(|s| s.stats)
    }

    pub fn is_empty(&self) -> bool {
        self.with(|s| s.is_empty())
    }

    /// Reads a whole key log file (`--keylog` with a capture file). The
    /// only fatal errors are the ones that make the option meaningless:
    /// missing, a directory, unreadable.
    pub fn load_file(&self, path: &str) -> Result<(), String> {
        let meta = std::fs::metadata(path).map_err(|e| format!("--keylog {path}: {}", io_reason(&e)))?;
        if meta.is_dir() {
            return Err(format!("--keylog {path}: is a directory, not a key log file"));
        }
        let mut text = Vec::new();
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_end(&mut text))
            .map_err(|e| format!("--keylog {path}: {}", io_reason(&e)))?;
        self.with(|s| s.stats.files += 1);
        self.add_text(&text);
        Ok(())
    }

    /// Live capture: a thread reads the key log as it grows (every 5 ms;
    /// from the start again if it was truncated or replaced), so reading
    /// it never holds up packets. A key log that exists now is opened now,
    /// before live capture drops its privileges (docs/live.md), and
    /// followed by that descriptor: one only root can read still works. A
    /// file replaced later is reopened by its name, as the user wstap runs
    /// as by then; if that fails the old descriptor is kept (counted in
    /// `read_errors`). A file that does not exist yet is opened when it
    /// appears, by that user too.
    pub fn watch(&self, path: &str, stop: Arc<AtomicBool>) -> Result<std::thread::JoinHandle<()>, String> {
        if std::fs::metadata(path).is_ok_and(|m| m.is_dir()) {
            return Err(format!("--keylog {path}: is a directory, not a key log file"));
        }
        let mut follow = Follow::default();
        match std::fs::File::open(path) {
            Ok(f) => follow.open(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("--keylog {path}: {}", io_reason(&e))),
        }
        self.with(|s| s.stats.files += 1);
        self.set_growing(true);
        let follow = Arc::new(Mutex::new(follow));
        lock(&self.0.followed).push((path.to_string(), follow.clone()));
        let keys = self.clone();
        let path = path.to_string();
        let err = format!("--keylog {path}: cannot start its reader");
        std::thread::Builder::new()
            .name("wstap-keylog".into())
            .spawn(move || {
                let mut dropped = false;
                while !stop.load(Ordering::Relaxed) {
                    // Started before live capture drops its privileges:
                    // this thread drops its own once that has happened.
                    dropped = dropped || crate::capture::privs::follow_drop();
                    keys.poll(&path, &mut lock(&follow));
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            })
            .map_err(|e| format!("{err}: {e}"))
    }

    /// A record came whose keys are not known: reads what the watched key
    /// logs gained since their thread last looked, at once (at most once a
    /// millisecond of packet time, whoever asks: connections that will
    /// never have keys cost no system call each). True when secrets came.
    pub fn catch_up(&self, now: Ts) -> bool {
        let last = self.0.caught_up_at.load(Ordering::Relaxed);
        if now.0 < last.saturating_add(1_000)
            || self.0.caught_up_at.compare_exchange(last, now.0, Ordering::AcqRel, Ordering::Relaxed).is_err()
        {
            return false;
        }
        self.read_now()
    }

    /// Reads what the watched key logs gained, now, unthrottled: a
    /// connection closing with records still held for keys (a last look
    /// before its parsers hear of the close). True when secrets came.
    pub fn read_now(&self) -> bool {
        let before = self.generation();
        let followed: Vec<(String, Arc<Mutex<Follow>>)> = lock(&self.0.followed).clone();
        for (path, follow) in &followed {
            self.poll(path, &mut lock(follow));
        }
        self.generation() != before
    }

    /// Reads what was appended to the followed key log since last time.
    pub fn poll(&self, path: &str, f: &mut Follow) {
        use std::os::unix::fs::MetadataExt;
        // Replaced (or created) under its name: follow the new file, if
        // this user may open it.
        if let Ok(meta) = std::fs::metadata(path)
            && !meta.is_dir()
            && f.ino != Some(meta.ino())
            && f.failed_ino != Some(meta.ino())
        {
            match std::fs::File::open(path) {
                Ok(file) => {
                    f.open(file);
                    self.with(|s| s.pending.clear());
                }
                Err(_) => {
                    f.failed_ino = Some(meta.ino());
                    self.with(|s| s.stats.read_errors += 1);
                }
            }
        }
        let Some(file) = &mut f.file else { return };
        let Ok(meta) = file.metadata() else { return };
        if meta.len() < f.pos {
            // Truncated: from the start again.
            f.pos = 0;
            self.with(|s| s.pending.clear());
        }
        if meta.len() == f.pos {
            return;
        }
        let mut buf = Vec::new();
        let read = file.seek(SeekFrom::Start(f.pos)).and_then(|_| file.take(1 << 20).read_to_end(&mut buf));
        match read {
            Ok(n) => {
                f.pos += n as u64;
                self.with(|s| {
                    let before = s.stats.secrets;
                    s.add_text(&buf);
                    if s.stats.secrets != before {
                        self.0.generation.fetch_add(1, Ordering::AcqRel);
                    }
                });
            }
            Err(_) => self.with(|s| s.stats.read_errors += 1),
        }
    }
}

/// A key log followed by its open descriptor.
#[derive(Debug, Default)]
pub struct Follow {
    file: Option<std::fs::File>,
    pos: u64,
    /// The inode of the open file, and of a replacement that could not be
    /// opened (not tried again).
    ino: Option<u64>,
    failed_ino: Option<u64>,
}

impl Follow {
    fn open(&mut self, file: std::fs::File) {
        use std::os::unix::fs::MetadataExt;
        self.ino = file.metadata().ok().map(|m| m.ino());
        self.file = Some(file);
        self.pos = 0;
        self.failed_ino = None;
    }
}

/// A lock, also when a thread panicked holding it (what it guards stays
/// usable: a key store, a file position).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "No such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "Permission denied".into(),
        std::io::ErrorKind::IsADirectory => "is a directory, not a key log file".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CR: &str = "cb34ecb1e78163ba1c38c6dacb196a6dffa21a8d9912ec18a2ef6283024dece7";

    #[test]
    fn parses_every_label_and_counts_the_rest() {
        let k = Keys::default();
        let sec32 = "11".repeat(32);
        let sec48 = "22".repeat(48);
        let text = format!(
            "# a comment\n\nCLIENT_RANDOM {CR} {sec48}\nCLIENT_HANDSHAKE_TRAFFIC_SECRET {CR} {sec32}\n\
             SERVER_HANDSHAKE_TRAFFIC_SECRET {CR} {sec32}\r\nCLIENT_TRAFFIC_SECRET_0 {CR} {sec48}\n\
             SERVER_TRAFFIC_SECRET_0 {CR} {sec32}\nEXPORTER_SECRET {CR} {sec32}\n\
             CLIENT_RANDOM {CR}\nCLIENT_RANDOM zz {sec48}\nCLIENT_RANDOM {CR} {sec32}\nNOT_A_LABEL {CR} {sec32}\n\
             CLIENT_RANDOM abcd {sec48}\n\u{1}\u{2} garbage\n"
        );
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(b"\xff\xfe not utf-8");
        k.add_text(&bytes);
        let st = k.stats();
        assert_eq!(st.secrets, 5);
        assert_eq!(st.ignored, 1);
        assert_eq!(st.malformed, 7, "{st:?}");
        let cr: [u8; 32] = hex(CR).unwrap().try_into().unwrap();
        let s = k.lookup(&cr).unwrap();
        assert_eq!(s.master.as_deref(), Some(&[0x22; 48][..]));
        assert_eq!(s.server_ap.as_deref(), Some(&[0x11; 32][..]));
        // Debug output never shows a secret.
        assert!(!format!("{s:?}").contains("22"));
    }

    #[test]
    fn lines_split_across_reads_are_joined() {
        let mut s = KeyStore::default();
        let line = format!("CLIENT_RANDOM {CR} {}\n", "33".repeat(48));
        let (a, b) = line.split_at(40);
        s.add_text(a.as_bytes());
        assert_eq!(s.stats.secrets, 0);
        s.add_text(b.as_bytes());
        assert_eq!(s.stats.secrets, 1);
        assert_eq!(s.stats.malformed, 0);
    }

    #[test]
    fn bounded() {
        let mut s = KeyStore::default();
        for i in 0..(MAX_CONNECTIONS + 10) {
            let mut cr = [0u8; 32];
            cr[..8].copy_from_slice(&(i as u64).to_be_bytes());
            s.insert(cr, Label::ClientRandom, vec![0; 48]);
        }
        assert_eq!(s.map.len(), MAX_CONNECTIONS);
        assert_eq!(s.stats.evicted, 10);
    }

    #[test]
    fn a_directory_is_refused_in_one_line() {
        let k = Keys::default();
        let e = k.load_file("/").unwrap_err();
        assert!(e.contains("is a directory"), "{e}");
        let e = k.load_file("/nonexistent/keys.log").unwrap_err();
        assert!(e.contains("No such file"), "{e}");
    }

    #[test]
    fn a_growing_file_is_followed() {
        let dir = std::env::temp_dir().join(format!("wstap-keylog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("k.log");
        let ps = p.to_str().unwrap();
        std::fs::write(&p, format!("CLIENT_RANDOM {CR} {}\nCLIENT_RAN", "44".repeat(48))).unwrap();
        let k = Keys::default();
        let mut fol = Follow::default();
        k.poll(ps, &mut fol);
        assert_eq!(k.stats().secrets, 1);
        let g = k.generation();
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        std::io::Write::write_all(&mut f, format!("DOM {} {}\n", "01".repeat(32), "55".repeat(48)).as_bytes()).unwrap();
        k.poll(ps, &mut fol);
        assert_eq!(k.stats().secrets, 2);
        assert_eq!(k.stats().malformed, 0);
        assert!(k.generation() > g);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A key written before its records are analysed is found when they
    /// are, whether or not the key log's thread has looked since; asking
    /// again within a millisecond of packet time reads nothing.
    #[test]
    fn a_record_without_keys_reads_the_watched_log_at_once() {
        let dir = std::env::temp_dir().join(format!("wstap-keylog-now-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("k.log");
        std::fs::write(&p, "").unwrap();
        let k = Keys::default();
        let stop = Arc::new(AtomicBool::new(false));
        let t = k.watch(p.to_str().unwrap(), stop.clone()).unwrap();
        let cr: [u8; 32] = std::array::from_fn(|i| u8::from_str_radix(&CR[2 * i..2 * i + 2], 16).unwrap());
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        std::io::Write::write_all(&mut f, format!("CLIENT_RANDOM {CR} {}\n", "44".repeat(48)).as_bytes()).unwrap();
        // The thread may have read it already (then nothing is new here);
        // either way the key is known once catch_up returns.
        k.catch_up(Ts(1_000_000));
        assert!(k.lookup(&cr).is_some_and(|s| s.master.is_some()));
        let other = "01".repeat(32);
        std::io::Write::write_all(&mut f, format!("CLIENT_RANDOM {other} {}\n", "55".repeat(48)).as_bytes()).unwrap();
        stop.store(true, Ordering::Relaxed);
        t.join().unwrap();
        // Within the same millisecond: not read; a millisecond later: read.
        let before = k.stats().secrets;
        assert!(!k.catch_up(Ts(1_000_500)));
        assert_eq!(k.stats().secrets, before);
        assert!(k.catch_up(Ts(1_001_000)) || k.stats().secrets == 2);
        assert_eq!(k.stats().secrets, 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_key_log_opened_before_is_followed_by_its_descriptor_when_its_name_can_no_longer_be_opened() {
        let dir = std::env::temp_dir().join(format!("wstap-keylog-fd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("k.log");
        std::fs::write(&p, format!("CLIENT_RANDOM {CR} {}\n", "44".repeat(48))).unwrap();
        let k = Keys::default();
        let mut fol = Follow::default();
        fol.open(std::fs::File::open(&p).unwrap());
        // The name goes away (as it does for a process that lost the right
        // to look it up): what is appended to the open file is still read.
        let moved = dir.join("moved.log");
        std::fs::rename(&p, &moved).unwrap();
        k.poll(p.to_str().unwrap(), &mut fol);
        assert_eq!(k.stats().secrets, 1);
        let mut f = std::fs::OpenOptions::new().append(true).open(&moved).unwrap();
        std::io::Write::write_all(
            &mut f,
            format!("CLIENT_RANDOM {} {}\n", "01".repeat(32), "55".repeat(48)).as_bytes(),
        )
        .unwrap();
        k.poll(p.to_str().unwrap(), &mut fol);
        assert_eq!(k.stats().secrets, 2);
        assert_eq!(k.stats().read_errors, 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
