//! `-w FILE`: the raw packets, written by the capture thread *before* they are
//! queued for analysis, so the file is complete even when analysis lags.
//!
//! Rotation follows tcpdump (`tcpdump.c`, `dump_packet_and_trunc` and
//! `MakeFilename`), so that operators keep their habits:
//! - `-C SIZE`: before writing a packet, if the file already holds more than
//!   SIZE million bytes, start the next one. Files are `FILE`, `FILE1`,
//!   `FILE2`, ...; with `-W COUNT` they are `FILE0` .. `FILE{COUNT-1}` (zero
//!   padded to the width of COUNT-1) and the numbers are reused in a ring.
//! - `-G SECS`: FILE is a strftime(3) template expanded in local time; the
//!   first packet SECS or more after the current file was opened starts the
//!   next one. With `-W COUNT` (and no `-C`) the capture stops when COUNT
//!   files have been written, as tcpdump exits there.
//! - Both: each `-G` period restarts the `-C` numbering.

use std::ffi::CString;
use std::fs::File;
use std::io::{BufWriter, Write};

use crate::error::{Error, Result};

/// The pcap file header: magic, versions, thiszone, sigfigs, snaplen, linktype.
const FILE_HEADER: u64 = 24;
/// The per-packet record header: ts_sec, ts_usec, caplen, len.
const RECORD_HEADER: u64 = 16;

/// What `-w`, `-C`, `-G` and `-W` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// `-w FILE` (a strftime template with `-G`).
    pub template: String,
    /// `-C`: in bytes (the flag is in millions of bytes).
    pub size_limit: Option<u64>,
    /// `-G`: seconds.
    pub interval: Option<u64>,
    /// `-W`.
    pub count: Option<u32>,
    /// `-U`: each packet is flushed to the file as it is written.
    pub packet_buffered: bool,
}

impl Rotation {
    pub fn new(
        template: &str,
        size_millions: Option<u64>,
        interval: Option<u64>,
        count: Option<u32>,
    ) -> Result<Rotation> {
        if template == "-" && (size_millions.is_some() || interval.is_some()) {
            return Err(Error::usage("-w -: standard output cannot be rotated (-C, -G need -w FILE)"));
        }
        if template.is_empty() {
            return Err(Error::usage("-w: empty file name"));
        }
        if size_millions == Some(0) {
            return Err(Error::usage("-C 0: the file size must be at least 1 (million bytes)"));
        }
        if interval == Some(0) {
            return Err(Error::usage("-G 0: the rotation interval must be at least 1 second"));
        }
        if count == Some(0) {
            return Err(Error::usage("-W 0: the file count must be at least 1"));
        }
        if count.is_some() && size_millions.is_none() && interval.is_none() {
            return Err(Error::usage("-W needs -C or -G"));
        }
        let size_limit = match size_millions {
            Some(n) => {
                Some(n.checked_mul(1_000_000).ok_or_else(|| Error::usage(format!("-C {n}: file size is too large")))?)
            }
            None => None,
        };
        Ok(Rotation { template: template.to_string(), size_limit, interval, count, packet_buffered: false })
    }
}

/// What to do before writing the next packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Keep,
    /// Close the current file and open this one.
    Rotate(String),
    /// `-G` with `-W`: the file limit is reached; stop capturing.
    Stop,
}

/// The naming and ring logic, apart from any file, so it can be tested.
#[derive(Debug)]
pub struct Rotator {
    rot: Rotation,
    /// tcpdump's `Cflag_count`: the number of the current `-C` file.
    c_count: u32,
    /// tcpdump's `Gflag_count`: `-G` rotations so far.
    g_count: u32,
    /// When the current `-G` file was opened (Unix seconds).
    g_time: i64,
    /// Digits of the `-C` number with `-W` (tcpdump's `WflagChars`).
    width: usize,
}

impl Rotator {
    pub fn new(rot: Rotation, now: i64) -> Rotator {
        let width = match rot.count {
            Some(w) => digits(w.saturating_sub(1)),
            None => 0,
        };
        Rotator { rot, c_count: 0, g_count: 0, g_time: now, width }
    }

    /// The first file's name.
    pub fn first_name(&self) -> String {
        self.name(0, if self.rot.size_limit.is_some() { self.width } else { 0 })
    }

    /// Whether rotation is on at all (else the one file grows forever).
    pub fn rotates(&self) -> bool {
        self.rot.size_limit.is_some() || self.rot.interval.is_some()
    }

    fn name(&self, cnt: u32, width: usize) -> String {
        let base = if self.rot.interval.is_some() {
            strftime_local(&self.rot.template, self.g_time)
        } else {
            self.rot.template.clone()
        };
        make_filename(&base, cnt, width)
    }

    /// Called before each packet is written: `now` is the wall clock (Unix
    /// seconds) and `size` the bytes already in the current file.
    pub fn before_packet(&mut self, now: i64, size: u64) -> Step {
        if let Some(g) = self.rot.interval
            && now - self.g_time >= g as i64
        {
            self.g_time = now;
            self.g_count += 1;
            if self.rot.size_limit.is_none() && self.rot.count.is_some_and(|w| self.g_count >= w) {
                return Step::Stop;
            }
            self.c_count = 0;
            let width = if self.rot.size_limit.is_some() { self.width } else { 0 };
            return Step::Rotate(self.name(0, width));
        }
        if let Some(limit) = self.rot.size_limit
            && size > limit
        {
            self.c_count += 1;
            if self.rot.count.is_some_and(|w| self.c_count >= w) {
                self.c_count = 0;
            }
            return Step::Rotate(self.name(self.c_count, self.width));
        }
        Step::Keep
    }
}

/// Decimal digits of `x` (0 for 0), tcpdump's `getWflagChars(x + 1)`.
fn digits(mut x: u32) -> usize {
    let mut c = 0;
    while x > 0 {
        c += 1;
        x /= 10;
    }
    c
}

/// tcpdump's `MakeFilename`: no suffix for the first file without `-W`,
/// else the number, zero padded to `width`.
pub fn make_filename(base: &str, cnt: u32, width: usize) -> String {
    if cnt == 0 && width == 0 { base.to_string() } else { format!("{base}{cnt:0width$}") }
}

/// strftime(3) of `secs` in local time (the TZ environment applies).
pub fn strftime_local(template: &str, secs: i64) -> String {
    let Ok(fmt) = CString::new(template) else {
        return template.to_string();
    };
    // SAFETY: localtime_r and strftime write only into the buffers passed;
    // `tm` is plain data, zeroed before use; strftime's result length is
    // bounded by the buffer size given.
    unsafe {
        let t: libc::time_t = secs as libc::time_t;
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return template.to_string();
        }
        let mut buf = vec![0u8; template.len() * 8 + 256];
        let n = libc::strftime(buf.as_mut_ptr() as *mut libc::c_char, buf.len(), fmt.as_ptr(), &tm);
        if n == 0 && !template.is_empty() {
            // Either an empty expansion or one too long: keep the template.
            return template.to_string();
        }
        buf.truncate(n);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

/// The open `-w` file and its rotation. Lives in the capture thread.
///
/// The pcap format is written here rather than through libpcap's dumper:
/// the dumper needs the capture handle to open each rotated file while that
/// handle is busy in `pcap_dispatch`, and `pcap_dump` drops write errors
/// (a full disk) silently. The format is 24 + 16 bytes of headers.
pub struct Dumper {
    rotator: Rotator,
    out: Option<BufWriter<Box<dyn Write + Send>>>,
    /// Name of the current file.
    current: String,
    /// Bytes in the current file (pcap header included), for `-C`.
    size: u64,
    linktype: u32,
    snaplen: u32,
    /// Packets written since the last flush.
    unflushed: u64,
    /// Files opened so far.
    pub files: u64,
}

impl Dumper {
    /// Opens the first file (after privileges were dropped: as the user
    /// that parses the packets).
    pub fn open(rot: Rotation, linktype: u32, snaplen: u32, now: i64) -> Result<Dumper> {
        let rotator = Rotator::new(rot, now);
        let name = rotator.first_name();
        let out = create(&name, linktype, snaplen)?;
        Ok(Dumper {
            rotator,
            out: Some(out),
            current: name,
            size: FILE_HEADER,
            linktype,
            snaplen,
            unflushed: 0,
            files: 1,
        })
    }

    /// Name of the file being written.
    pub fn current(&self) -> &str {
        &self.current
    }

    /// Writes one packet, rotating first if due (`now`: wall clock, Unix
    /// seconds). `Ok(false)`: the `-G`/`-W` file limit is reached and the
    /// packet was not written; the capture stops, as tcpdump exits there.
    pub fn write(&mut self, now: i64, ts: (i64, i64), data: &[u8], orig_len: u32) -> Result<bool> {
        if self.rotator.rotates() {
            match self.rotator.before_packet(now, self.size) {
                Step::Keep => {}
                Step::Stop => {
                    self.close()?;
                    return Ok(false);
                }
                Step::Rotate(name) => {
                    self.close()?;
                    self.out = Some(create(&name, self.linktype, self.snaplen)?);
                    self.current = name;
                    self.size = FILE_HEADER;
                    self.files += 1;
                }
            }
        }
        let Some(out) = &mut self.out else { return Ok(true) };
        let mut rec = [0u8; RECORD_HEADER as usize];
        rec[0..4].copy_from_slice(&(ts.0 as u32).to_ne_bytes());
        rec[4..8].copy_from_slice(&(ts.1 as u32).to_ne_bytes());
        rec[8..12].copy_from_slice(&(data.len() as u32).to_ne_bytes());
        rec[12..16].copy_from_slice(&orig_len.to_ne_bytes());
        let name = &self.current;
        let io = |e: std::io::Error| Error::Write { name: name.clone(), source: e };
        out.write_all(&rec).map_err(io)?;
        out.write_all(data).map_err(io)?;
        self.size += RECORD_HEADER + data.len() as u64;
        self.unflushed += 1;
        if self.rotator.rot.packet_buffered {
            self.flush()?;
        }
        Ok(true)
    }

    /// Pushes buffered packets to the file (done whenever the capture goes
    /// quiet, so the file trails the wire by little).
    pub fn flush(&mut self) -> Result<()> {
        if self.unflushed == 0 {
            return Ok(());
        }
        self.unflushed = 0;
        match &mut self.out {
            Some(out) => out.flush().map_err(|e| Error::Write { name: self.current.clone(), source: e }),
            None => Ok(()),
        }
    }

    /// Flushes and closes the current file.
    pub fn close(&mut self) -> Result<()> {
        let r = self.flush();
        self.out = None;
        r
    }
}

impl Drop for Dumper {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// Opens FILE for writing without trusting what is already there (a
/// directory like /tmp is shared with other users, who may plant a name
/// before wstap writes it):
/// - a symbolic link is never followed (O_NOFOLLOW): a link planted to
///   /etc/shadow makes the open fail, it does not truncate its target;
/// - an existing regular file is truncated only if it belongs to the user
///   wstap runs as and has no other hard link (a hard link planted to
///   someone else's file is refused before anything is written);
/// - devices and pipes (`/dev/null`, a FIFO read by another program) are
///   written as they are;
/// - a new file is created with mode 0644 (less the umask).
pub fn open_safely(name: &str) -> Result<File> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let fail = |e: std::io::Error| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            file_error(name, "is a symbolic link: refusing to follow it (-w never follows links)".into())
        } else if e.kind() == std::io::ErrorKind::PermissionDenied {
            let euid = nix::unistd::geteuid();
            file_error(
                name,
                format!(
                    "Permission denied (-w files are written as uid {euid}, the user wstap parses packets as; \
                     pick a directory it can write, or -Z root)"
                ),
            )
        } else {
            Error::Write { name: name.to_string(), source: e }
        }
    };
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(name)
        .map_err(fail)?;
    let md = f.metadata().map_err(fail)?;
    if md.file_type().is_file() {
        let euid = nix::unistd::geteuid().as_raw();
        if md.uid() != euid {
            return Err(file_error(
                name,
                format!(
                    "exists and belongs to uid {}, not to uid {euid} that writes it: refusing to overwrite it",
                    md.uid()
                ),
            ));
        }
        if md.nlink() > 1 {
            return Err(file_error(
                name,
                format!("has {} hard links: refusing to overwrite a file linked elsewhere", md.nlink()),
            ));
        }
        f.set_len(0).map_err(fail)?;
    }
    Ok(f)
}

/// Creates FILE (`-`: standard output) and writes the pcap file header
/// (native byte order and microsecond timestamps, as libpcap writes it).
fn create(name: &str, linktype: u32, snaplen: u32) -> Result<BufWriter<Box<dyn Write + Send>>> {
    let f: Box<dyn Write + Send> = if name == "-" { Box::new(std::io::stdout()) } else { Box::new(open_safely(name)?) };
    let mut out = BufWriter::with_capacity(1 << 20, f);
    let mut h = [0u8; FILE_HEADER as usize];
    h[0..4].copy_from_slice(&0xa1b2_c3d4u32.to_ne_bytes());
    h[4..6].copy_from_slice(&2u16.to_ne_bytes());
    h[6..8].copy_from_slice(&4u16.to_ne_bytes());
    // thiszone and sigfigs stay 0.
    h[16..20].copy_from_slice(&snaplen.to_ne_bytes());
    h[20..24].copy_from_slice(&linktype.to_ne_bytes());
    out.write_all(&h).map_err(|e| Error::Write { name: name.to_string(), source: e })?;
    Ok(out)
}

/// The `-w` file refused or not created.
fn file_error(name: &str, reason: String) -> Error {
    Error::File { name: name.to_string(), reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rot(c: Option<u64>, g: Option<u64>, w: Option<u32>) -> Rotation {
        Rotation::new("cap.pcap", c, g, w).unwrap()
    }

    #[test]
    fn names_like_tcpdump() {
        assert_eq!(make_filename("x.pcap", 0, 0), "x.pcap");
        assert_eq!(make_filename("x.pcap", 1, 0), "x.pcap1");
        assert_eq!(make_filename("x.pcap", 3, 2), "x.pcap03");
        assert_eq!(digits(0), 0);
        assert_eq!(digits(9), 1);
        assert_eq!(digits(10), 2);
        assert_eq!(digits(99), 2);
    }

    #[test]
    fn size_rotation_without_ring_counts_up() {
        let mut r = Rotator::new(rot(Some(1), None, None), 0);
        assert_eq!(r.first_name(), "cap.pcap");
        assert_eq!(r.before_packet(0, 1_000_000), Step::Keep, "at the limit: not over it yet");
        assert_eq!(r.before_packet(0, 1_000_001), Step::Rotate("cap.pcap1".into()));
        assert_eq!(r.before_packet(0, 24), Step::Keep);
        assert_eq!(r.before_packet(0, 2_000_000), Step::Rotate("cap.pcap2".into()));
    }

    #[test]
    fn size_rotation_with_ring_reuses_names() {
        let mut r = Rotator::new(rot(Some(1), None, Some(3)), 0);
        assert_eq!(r.first_name(), "cap.pcap0");
        let names: Vec<_> = (0..5)
            .map(|_| match r.before_packet(0, 5_000_000) {
                Step::Rotate(n) => n,
                s => panic!("{s:?}"),
            })
            .collect();
        assert_eq!(names, ["cap.pcap1", "cap.pcap2", "cap.pcap0", "cap.pcap1", "cap.pcap2"]);
    }

    #[test]
    fn ring_numbers_are_padded_to_the_width_of_count() {
        let mut r = Rotator::new(rot(Some(1), None, Some(12)), 0);
        assert_eq!(r.first_name(), "cap.pcap00");
        assert_eq!(r.before_packet(0, 2_000_000), Step::Rotate("cap.pcap01".into()));
        // -W 1: a ring of one file, always the same bare name.
        let mut r = Rotator::new(rot(Some(1), None, Some(1)), 0);
        assert_eq!(r.first_name(), "cap.pcap");
        assert_eq!(r.before_packet(0, 2_000_000), Step::Rotate("cap.pcap".into()));
    }

    #[test]
    fn time_rotation_uses_strftime_and_stops_after_count() {
        let r0 = Rotation::new("cap-%Y.pcap", None, Some(10), Some(3)).unwrap();
        let t = 1_700_000_000; // mid-November 2023 in every time zone
        let mut r = Rotator::new(r0, t);
        assert_eq!(r.first_name(), "cap-2023.pcap");
        assert_eq!(r.before_packet(t + 9, 1 << 40), Step::Keep, "no -C: size never rotates");
        assert_eq!(r.before_packet(t + 10, 0), Step::Rotate("cap-2023.pcap".into()));
        assert_eq!(r.before_packet(t + 15, 0), Step::Keep, "the period restarts at the rotation");
        assert_eq!(r.before_packet(t + 20, 0), Step::Rotate("cap-2023.pcap".into()));
        assert_eq!(r.before_packet(t + 30, 0), Step::Stop, "-W 3: three files written");
    }

    #[test]
    fn time_and_size_restart_numbering_each_period() {
        let r0 = Rotation::new("c", Some(1), Some(60), Some(2)).unwrap();
        let mut r = Rotator::new(r0, 0);
        assert_eq!(r.first_name(), "c0");
        assert_eq!(r.before_packet(1, 2_000_000), Step::Rotate("c1".into()));
        assert_eq!(r.before_packet(2, 2_000_000), Step::Rotate("c0".into()), "-W 2 with -C: a ring");
        assert_eq!(r.before_packet(3, 2_000_000), Step::Rotate("c1".into()));
        assert_eq!(r.before_packet(61, 2_000_000), Step::Rotate("c0".into()), "time first, numbering restarts");
        // With -C, -W is the ring, never a stop, however many periods pass.
        assert_eq!(r.before_packet(200, 0), Step::Rotate("c0".into()));
        assert_eq!(r.before_packet(300, 0), Step::Rotate("c0".into()));
    }

    #[test]
    fn strftime_expands_in_local_time() {
        assert_eq!(strftime_local("plain.pcap", 0), "plain.pcap");
        assert_eq!(strftime_local("%Y-%%", 1_700_000_000), "2023-%");
    }

    #[test]
    fn bad_rotation_arguments() {
        assert!(Rotation::new("-", None, None, None).is_ok(), "-w -: standard output");
        assert!(Rotation::new("-", Some(1), None, None).is_err());
        assert!(Rotation::new("x", Some(0), None, None).is_err());
        assert!(Rotation::new("x", None, Some(0), None).is_err());
        assert!(Rotation::new("x", Some(1), None, Some(0)).is_err());
        assert!(Rotation::new("x", None, None, Some(3)).is_err());
        assert_eq!(Rotation::new("x", Some(2), None, None).unwrap().size_limit, Some(2_000_000));
    }

    #[allow(clippy::unnecessary_cast)]
    fn timeval_secs(tv: &libc::timeval) -> i64 {
        tv.tv_sec as i64
    }

    #[test]
    fn written_file_reads_back_through_libpcap() {
        let dir = std::env::temp_dir().join(format!("wstap-dump-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let base = dir.join("t.pcap").to_string_lossy().into_owned();
        let mut d = Dumper::open(Rotation::new(&base, Some(1), None, Some(2)).unwrap(), 1, 262144, 0).unwrap();
        assert_eq!(d.current(), format!("{base}0"));
        let big = vec![0xabu8; 200_000];
        // Packets of 200 kB: file 0 gets five (rotation checks before a
        // packet whether the file is already *over* the limit), file 1 the
        // sixth.
        for i in 0..6 {
            assert!(d.write(0, (1_700_000_000 + i, 42), &big, 250_000).unwrap());
        }
        assert_eq!(d.current(), format!("{base}1"));
        assert_eq!(d.files, 2);
        d.close().unwrap();
        let mut cap = pcap::Capture::from_file(format!("{base}0")).unwrap();
        assert_eq!(cap.get_datalink(), pcap::Linktype(1));
        let mut n = 0;
        while let Ok(p) = cap.next_packet() {
            assert_eq!((p.header.caplen, p.header.len), (200_000, 250_000));
            assert_eq!(timeval_secs(&p.header.ts), 1_700_000_000 + n);
            assert_eq!(p.header.ts.tv_usec, 42);
            n += 1;
        }
        assert_eq!(n, 5);
        let mut cap = pcap::Capture::from_file(format!("{base}1")).unwrap();
        assert!(cap.next_packet().is_ok());
        assert!(cap.next_packet().is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn full_disk_is_reported_not_ignored() {
        let r = Rotation::new("/dev/full", None, None, None).unwrap();
        let mut d = Dumper::open(r, 1, 65535, 0).unwrap();
        d.write(0, (0, 0), &[0u8; 100], 100).unwrap();
        assert_eq!(d.flush().unwrap_err().to_string(), "/dev/full: No space left on device");
    }

    #[test]
    fn planted_links_are_never_followed_or_truncated() {
        use std::os::unix::fs::symlink;
        let dir = std::env::temp_dir().join(format!("wstap-plant-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        // A symbolic link to the victim.
        let link = dir.join("cap.pcap");
        symlink(&victim, &link).unwrap();
        let e = Dumper::open(Rotation::new(link.to_str().unwrap(), None, None, None).unwrap(), 1, 65535, 0)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("is a symbolic link: refusing to follow it"), "{e}");
        // A hard link to it.
        let hard = dir.join("hard.pcap");
        std::fs::hard_link(&victim, &hard).unwrap();
        let e = Dumper::open(Rotation::new(hard.to_str().unwrap(), None, None, None).unwrap(), 1, 65535, 0)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("hard links"), "{e}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious", "the target is untouched");
        // A file of our own is truncated and written.
        let own = dir.join("own.pcap");
        std::fs::write(&own, vec![1u8; 1000]).unwrap();
        let mut d = Dumper::open(Rotation::new(own.to_str().unwrap(), None, None, None).unwrap(), 1, 65535, 0).unwrap();
        d.close().unwrap();
        assert_eq!(std::fs::metadata(&own).unwrap().len(), 24);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unwritable_file_is_one_line() {
        let r = Rotation::new("/nonexistent-dir/x.pcap", None, None, None).unwrap();
        let e = Dumper::open(r, 1, 65535, 0).err().unwrap();
        assert_eq!(e.to_string(), "/nonexistent-dir/x.pcap: No such file or directory");
    }
}
