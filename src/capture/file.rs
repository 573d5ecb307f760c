//! Capture files (pcap, pcapng, or `-` for stdin) through libpcap, with an
//! optional BPF filter compiled by libpcap, as tcpdump does.
//!
//! Classic pcap files are then read by [`FastPcap`]: libpcap validates the
//! file and compiles the filter, but reading records through it costs two
//! locked `fread`s per packet, a fifth of the whole analysis. The format is
//! a 16-byte header per record; reading it from a large buffer and handing
//! out slices of it is what libpcap would do without the stdio layer.
//! pcapng is read by wstap's own reader ([`super::pcapng`]: libpcap skips
//! the Decryption Secrets Blocks that carry TLS keys); standard input by
//! whichever of the two readers its first bytes call for.

use std::fs::File;
use std::io::Read;

use pcap::{BpfProgram, Capture, Offline};

use super::{Next, PacketSource, RawPacket};
use crate::decode::LinkType;
use crate::error::{Error, Result};
use crate::time::Ts;

/// `-r FILE` (`-r -`: standard input), checked (config.rs).
#[derive(Debug, Clone)]
pub struct FileInput {
    pub path: String,
    /// The BPF filter (the trailing expression), compiled once the file is
    /// open and its link type known.
    pub filter: Option<String>,
    /// `-c COUNT`.
    pub count: Option<u64>,
    /// Who parses the packets once the file is open (`-Z`).
    pub plan: super::privs::Plan,
}

impl FileInput {
    /// Opens the file (with the privileges the process has: the caller
    /// drops them with [`FileInput::plan`] once it is open, so that it is
    /// parsed by the unprivileged user, as a live capture is).
    pub fn open(&self) -> Result<FileSource> {
        let mut src = FileSource::open(&self.path, self.filter.as_deref())?;
        if let Some(n) = self.count {
            src.set_limit(n);
        }
        Ok(src)
    }

    /// The file's name in messages.
    pub fn name(&self) -> &str {
        if self.path == "-" { STDIN } else { &self.path }
    }
}

pub struct FileSource {
    reader: Reader,
    linktype: LinkType,
    /// `-c COUNT`: packets left to read.
    left: Option<u64>,
}

/// An explicit tag: a one-byte compare per packet picks the reader (a niche
/// in the readers' fields would take several).
#[repr(u8)]
enum Reader {
    Libpcap(Capture<Offline>),
    Fast(FastPcap),
    Pcapng(Box<super::pcapng::PcapngReader>),
}

impl FileSource {
    pub fn open(path: &str, filter: Option<&str>) -> Result<FileSource> {
        if path == "-" {
            return FileSource::open_stream(Box::new(std::io::stdin()), filter);
        }
        if path != "-" {
            match std::fs::metadata(path) {
                Err(e) => return Err(bad_input(path, io_reason(&e))),
                Ok(m) if m.is_dir() => return Err(bad_input(path, "is a directory".into())),
                Ok(_) => {}
            }
        }
        let mut head = Vec::new();
        File::open(path).and_then(|f| f.take(4).read_to_end(&mut head)).map_err(|e| bad_input(path, io_reason(&e)))?;
        if super::pcapng::is_pcapng(&head) {
            let file = File::open(path).map_err(|e| bad_input(path, io_reason(&e)))?;
            let r = super::pcapng::PcapngReader::open(Vec::new(), Box::new(file)).map_err(|e| bad_input(path, e))?;
            return FileSource::from_pcapng(r, filter, path);
        }
        let mut cap = Capture::from_file(path).map_err(|e| bad_input(path, open_reason(&e)))?;
        let bad_filter = |f: &str, e: &pcap::Error| filter_error(f, e);
        let linktype = LinkType(cap.get_datalink().0);
        if !linktype.is_supported() {
            return Err(bad_input(
                path,
                format!(
                    "link type {} ({}) is not supported",
                    linktype.0,
                    cap.get_datalink().get_name().unwrap_or_else(|_| "unknown".into())
                ),
            ));
        }
        let fast = if path == "-" { None } else { FastPcap::open(path)? };
        let reader = match fast {
            Some(mut fast) => {
                if let Some(f) = filter {
                    fast.filter = Some(cap.compile(f, true).map_err(|e| bad_filter(f, &e))?);
                }
                Reader::Fast(fast)
            }
            None => {
                if let Some(f) = filter {
                    cap.filter(f, true).map_err(|e| bad_filter(f, &e))?;
                }
                Reader::Libpcap(cap)
            }
        };
        Ok(FileSource { reader, linktype, left: None })
    }
}

impl FileSource {
    /// Standard input: pcapng or classic pcap, by its first bytes.
    fn open_stream(mut input: Box<dyn Read + Send>, filter: Option<&str>) -> Result<FileSource> {
        let mut head = Vec::new();
        (&mut input).take(24).read_to_end(&mut head).map_err(|e| bad_input(STDIN, e.to_string()))?;
        if super::pcapng::is_pcapng(&head) {
            let r = super::pcapng::PcapngReader::open(head, input).map_err(|e| bad_input(STDIN, e))?;
            return FileSource::from_pcapng(r, filter, STDIN);
        }
        let Some(mut fast) = FastPcap::from_stream(&head, input) else {
            return Err(bad_input(
                STDIN,
                if head.len() < 24 {
                    "not a capture, or cut inside its file header".to_string()
                } else {
                    "not a pcap or pcapng capture (unknown file format)".to_string()
                },
            ));
        };
        let linktype = LinkType(fast.linktype as i32);
        check_linktype(linktype, "standard input")?;
        if let Some(f) = filter {
            fast.filter = Some(compile(linktype, f)?);
        }
        Ok(FileSource { reader: Reader::Fast(fast), linktype, left: None })
    }

    fn from_pcapng(mut r: super::pcapng::PcapngReader, filter: Option<&str>, name: &str) -> Result<FileSource> {
        let linktype = r.linktype();
        check_linktype(linktype, name)?;
        if let Some(f) = filter {
            r.filter = Some(compile(linktype, f)?);
        }
        Ok(FileSource { reader: Reader::Pcapng(Box::new(r)), linktype, left: None })
    }
}

fn check_linktype(linktype: LinkType, name: &str) -> Result<()> {
    if linktype.is_supported() {
        return Ok(());
    }
    let dl = pcap::Linktype(linktype.0);
    Err(bad_input(
        name,
        format!("link type {} ({}) is not supported", linktype.0, dl.get_name().unwrap_or_else(|_| "unknown".into())),
    ))
}

/// A BPF filter compiled by libpcap for `linktype` (no capture handle needed).
fn compile(linktype: LinkType, f: &str) -> Result<BpfProgram> {
    let bad = |e: &pcap::Error| filter_error(f, e);
    let dead = Capture::dead(pcap::Linktype(linktype.0)).map_err(|e| bad(&e))?;
    dead.compile(f, true).map_err(|e| bad(&e))
}

/// Reads classic pcap records (microsecond or nanosecond, either byte
/// order) from a large buffer.
pub struct FastPcap {
    file: Box<dyn Read + Send>,
    /// Link type from the file header.
    linktype: u32,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    /// File offset of `buf[0]`.
    offset: u64,
    read_error: Option<Error>,
    swapped: bool,
    nanos: bool,
    filter: Option<BpfProgram>,
}

const FAST_BUF: usize = 1 << 20;
/// Larger records are damage, not packets (libpcap's limit is 256 KiB for
/// most link types; allow more, never unbounded).
const MAX_RECORD: usize = 16 << 20;

impl FastPcap {
    /// A reader positioned after the file header, or None when the file is
    /// not classic pcap (pcapng, an unusual variant): libpcap reads those.
    fn open(path: &str) -> Result<Option<FastPcap>> {
        let mut file = File::open(path).map_err(|e| bad_input(path, e.to_string()))?;
        let mut hdr = [0u8; 24];
        if file.read_exact(&mut hdr).is_err() {
            return Ok(None);
        }
        Ok(FastPcap::from_stream(&hdr, Box::new(file)))
    }

    /// A reader after the 24-byte file header `hdr` (already read).
    fn from_stream(hdr: &[u8], file: Box<dyn Read + Send>) -> Option<FastPcap> {
        if hdr.len() < 24 {
            return None;
        }
        let (swapped, nanos) = match u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) {
            0xa1b2_c3d4 => (false, false),
            0xd4c3_b2a1 => (true, false),
            0xa1b2_3c4d => (false, true),
            0x4d3c_b2a1 => (true, true),
            _ => return None,
        };
        let lt = [hdr[20], hdr[21], hdr[22], hdr[23]];
        let linktype = (if swapped { u32::from_be_bytes(lt) } else { u32::from_le_bytes(lt) }) & 0x0fff_ffff;
        Some(FastPcap {
            file,
            linktype,
            buf: vec![0; FAST_BUF],
            start: 0,
            end: 0,
            eof: false,
            offset: 24,
            read_error: None,
            swapped,
            nanos,
            filter: None,
        })
    }

    /// A record header: seconds, fraction, captured and original length.
    #[inline]
    fn header_at(&self, at: usize) -> [u32; 4] {
        let h: &[u8; 16] = self.buf[at..at + 16].try_into().expect("16 bytes");
        let w = |i: usize| {
            let b = [h[i], h[i + 1], h[i + 2], h[i + 3]];
            if self.swapped { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) }
        };
        [w(0), w(4), w(8), w(12)]
    }

    /// Makes `n` bytes available at `start`; false when the file ends
    /// first, or a read fails (kept in `read_error`: damage, not an end).
    #[inline]
    fn fill_or_damage(&mut self, n: usize) -> bool {
        if self.end - self.start >= n {
            return true;
        }
        match self.refill(n) {
            Ok(more) => more,
            Err(e) => {
                self.read_error = Some(e);
                false
            }
        }
    }

    #[cold]
    fn refill(&mut self, n: usize) -> Result<bool> {
        while self.end - self.start < n {
            if self.eof {
                return Ok(false);
            }
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.offset += self.start as u64;
                self.start = 0;
            }
            if self.buf.len() < n {
                self.buf.resize(n.next_power_of_two(), 0);
            }
            match self.file.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::Io(e)),
            }
        }
        Ok(true)
    }

    #[inline]
    fn next(&mut self) -> Result<Next<'_>> {
        loop {
            if !self.fill_or_damage(16) {
                if let Some(e) = self.read_error.take() {
                    return Ok(Next::Damaged(format!("read error: {e}")));
                }
                let got = self.end - self.start;
                if got == 0 {
                    return Ok(Next::End);
                }
                return Ok(Next::Truncated(format!(
                    "truncated dump file; tried to read 16 header bytes, only got {got}"
                )));
            }
            let [sec, frac, caplen, orig_len] = self.header_at(self.start);
            let (sec, frac, caplen) = (sec as i64, frac as i64, caplen as usize);
            if caplen > MAX_RECORD {
                return Ok(Next::Damaged(format!(
                    "invalid packet capture length {caplen} at offset {} (larger than any packet): the file is damaged",
                    self.offset + self.start as u64
                )));
            }
            if !self.fill_or_damage(16 + caplen) {
                if let Some(e) = self.read_error.take() {
                    return Ok(Next::Damaged(format!("read error: {e}")));
                }
                let got = self.end - self.start - 16;
                return Ok(Next::Truncated(format!(
                    "truncated dump file; tried to read {caplen} captured bytes, only got {got}"
                )));
            }
            let data_at = self.start + 16;
            self.start = data_at + caplen;
            if let Some(f) = &self.filter
                && !f.filter(&self.buf[data_at..data_at + caplen])
            {
                continue;
            }
            let usec = if self.nanos { frac / 1000 } else { frac };
            return Ok(Next::Packet(RawPacket {
                ts: Ts::from_timeval(sec, usec),
                data: &self.buf[data_at..data_at + caplen],
                orig_len,
            }));
        }
    }
}

impl FileSource {
    /// Stop after `n` packets (`-c`).
    pub fn set_limit(&mut self, n: u64) {
        self.left = Some(n);
    }
}

impl PacketSource for FileSource {
    fn linktype(&self) -> LinkType {
        self.linktype
    }

    fn system(&self) -> Option<crate::record::CaptureSystem> {
        match &self.reader {
            Reader::Pcapng(r) => r.system(),
            _ => None,
        }
    }

    fn set_keys(&mut self, keys: crate::proto::tls::Keys) {
        if let Reader::Pcapng(r) = &mut self.reader {
            r.set_keys(keys);
        }
    }

    fn next_packet(&mut self) -> Result<Next<'_>> {
        if let Some(n) = &mut self.left {
            if *n == 0 {
                return Ok(Next::End);
            }
            *n -= 1;
        }
        let cap = match &mut self.reader {
            Reader::Fast(f) => return f.next(),
            Reader::Pcapng(r) => return r.next_packet(),
            Reader::Libpcap(cap) => cap,
        };
        match cap.next_packet() {
            Ok(p) => Ok(Next::Packet(RawPacket {
                ts: Ts::from_timeval(p.header.ts.tv_sec, p.header.ts.tv_usec),
                data: p.data,
                orig_len: p.header.len,
            })),
            Err(pcap::Error::NoMorePackets) => Ok(Next::End),
            Err(e) => {
                // Past the file header every libpcap error is damage in
                // the middle of the file: what was read stands.
                let msg = pcap_msg(&e);
                if is_truncation(&msg) { Ok(Next::Truncated(msg)) } else { Ok(Next::Damaged(msg)) }
            }
        }
    }
}

/// The name standard input goes by in messages.
pub const STDIN: &str = "standard input";

/// A capture that cannot be read as one.
fn bad_input(name: &str, reason: String) -> Error {
    Error::Input { name: name.to_string(), reason }
}

/// A filter libpcap would not compile.
pub fn filter_error(expr: &str, e: &pcap::Error) -> Error {
    Error::Filter { expr: expr.to_string(), reason: pcap_msg(e) }
}

/// libpcap's message for a file cut inside a record. libpcap reports a
/// read failure only as text: this is the one place a message is read, for
/// the files libpcap reads itself (classic pcap and pcapng have their own
/// readers, which say `Next::Truncated` or `Next::Damaged` directly).
fn is_truncation(msg: &str) -> bool {
    msg.contains("truncated") || msg.contains("premature end") || msg.contains("short read")
}

pub fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "No such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "Permission denied".into(),
        _ => e.to_string(),
    }
}

fn open_reason(e: &pcap::Error) -> String {
    let m = pcap_msg(e);
    if m.contains("unknown file format") || m.contains("bad dump file format") {
        format!("not a pcap or pcapng capture ({m})")
    } else if m.contains("truncated") || m.contains("short") {
        format!("not a capture, or cut inside its file header ({m})")
    } else {
        m
    }
}

/// The message libpcap gave, without the crate's wrapping.
pub fn pcap_msg(e: &pcap::Error) -> String {
    match e {
        pcap::Error::PcapError(m) => m.trim().to_string(),
        other => other.to_string(),
    }
}
