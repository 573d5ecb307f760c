//! Capture files (pcap, pcapng, or `-` for stdin) through libpcap, with an
//! optional BPF filter compiled by libpcap, as tcpdump does.

use pcap::{Capture, Offline};

use super::{Next, PacketSource, RawPacket, is_truncation};
use crate::decode::LinkType;
use crate::error::{Error, Result};
use crate::time::Ts;

pub struct FileSource {
    cap: Capture<Offline>,
    linktype: LinkType,
    /// `-c COUNT`: packets left to read.
    left: Option<u64>,
}

impl FileSource {
    pub fn open(path: &str, filter: Option<&str>) -> Result<FileSource> {
        if path != "-" {
            match std::fs::metadata(path) {
                Err(e) => return Err(Error::new(format!("{path}: {}", io_reason(&e)))),
                Ok(m) if m.is_dir() => return Err(Error::new(format!("{path}: is a directory"))),
                Ok(_) => {}
            }
        }
        let mut cap = Capture::from_file(path).map_err(|e| Error::new(format!("{path}: {}", open_reason(&e))))?;
        if let Some(f) = filter {
            cap.filter(f, true).map_err(|e| Error::new(format!("bad filter expression '{f}': {}", pcap_msg(&e))))?;
        }
        let linktype = LinkType(cap.get_datalink().0);
        if !linktype.is_supported() {
            return Err(Error::new(format!(
                "{path}: link type {} ({}) is not supported",
                linktype.0,
                cap.get_datalink().get_name().unwrap_or_else(|_| "unknown".into())
            )));
        }
        Ok(FileSource { cap, linktype, left: None })
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

    fn next_packet(&mut self) -> Result<Next<'_>> {
        if let Some(n) = &mut self.left {
            if *n == 0 {
                return Ok(Next::End);
            }
            *n -= 1;
        }
        match self.cap.next_packet() {
            Ok(p) => Ok(Next::Packet(RawPacket {
                ts: Ts::from_timeval(p.header.ts.tv_sec, p.header.ts.tv_usec),
                data: p.data,
                orig_len: p.header.len,
            })),
            Err(pcap::Error::NoMorePackets) => Ok(Next::End),
            Err(e) => {
                let msg = pcap_msg(&e);
                if is_truncation(&msg) { Ok(Next::Truncated(msg)) } else { Err(Error::new(msg)) }
            }
        }
    }
}

fn io_reason(e: &std::io::Error) -> String {
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
