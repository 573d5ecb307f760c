//! Packet sources. The engine is the same for files and live interfaces:
//! both hand out `(timestamp, link type, bytes, original length)`.

pub mod cut;
pub mod dump;
pub mod file;
pub mod live;
pub mod pcapng;
pub mod privs;

use crate::decode::LinkType;
use crate::time::Ts;

/// Where packets come from, checked (config.rs builds it).
#[derive(Debug, Clone)]
pub enum Input {
    /// `-r FILE`.
    File(file::FileInput),
    /// `-i IFACE`.
    Live(live::LiveConfig),
}

/// One captured frame, borrowed from the source's buffer.
#[derive(Debug, Clone, Copy)]
pub struct RawPacket<'a> {
    pub ts: Ts,
    pub data: &'a [u8],
    /// Length on the wire; more than `data.len()` when the snap length cut it.
    pub orig_len: u32,
}

impl RawPacket<'_> {
    pub fn missing(&self) -> u32 {
        self.orig_len.saturating_sub(self.data.len() as u32)
    }
}

pub enum Next<'a> {
    Packet(RawPacket<'a>),
    /// Live capture: nothing arrived within the read timeout; the clock
    /// reads `Ts` (live time is packet time's own clock, so it may advance
    /// the pipeline's notion of now for idle sessions).
    Idle(Ts),
    /// End of input.
    End,
    /// The file ends inside a packet record: everything before was read.
    Truncated(String),
    /// The file is damaged here (a record or block that cannot be read, a
    /// read error): everything before was read, nothing after can be.
    Damaged(String),
}

pub trait PacketSource {
    fn linktype(&self) -> LinkType;
    fn next_packet(&mut self) -> crate::error::Result<Next<'_>>;
    /// Where TLS secrets embedded in the input go (pcapng Decryption
    /// Secrets Blocks); other sources have none.
    fn set_keys(&mut self, _keys: crate::proto::tls::Keys) {}
    /// Capture statistics (received and dropped packets), for live sources.
    fn stats(&mut self) -> Option<crate::record::Capture> {
        None
    }
    /// The machine that captured (the summary's `host`): live sources
    /// name this one; files record no host name.
    fn host(&self) -> Option<String> {
        None
    }
    /// What the input says of the system that made it (the summary's
    /// `system`): pcapng section and interface options, a live capture's
    /// own system.
    fn system(&self) -> Option<crate::record::CaptureSystem> {
        None
    }
    /// Whether nothing is ready to be read now (live capture: the queued
    /// packets were all taken; the next call waits for more). Flow-sharded
    /// analysis hands its batch to the workers then rather than wait.
    fn lull(&self) -> bool {
        false
    }
}

/// This machine's host name (`gethostname`), for a live capture.
pub fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at
    // most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).into_owned();
    (!name.is_empty()).then_some(name)
}

/// This system as a live capture describes it: `uname` (machine, then
/// system name and release) and the interface captured on.
pub fn this_system(iface: &str) -> crate::record::CaptureSystem {
    // SAFETY: `uname` fills a zeroed struct of the right type.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::uname(&mut u) } == 0;
    let field = |f: &[libc::c_char]| -> Option<String> {
        let bytes: Vec<u8> = f.iter().take_while(|c| **c != 0).map(|c| *c as u8).collect();
        (!bytes.is_empty()).then(|| String::from_utf8_lossy(&bytes).into_owned())
    };
    crate::record::CaptureSystem {
        hardware: if ok { field(&u.machine) } else { None },
        os: if ok {
            match (field(&u.sysname), field(&u.release)) {
                (Some(s), Some(r)) => Some(format!("{s} {r}")),
                (s, _) => s,
            }
        } else {
            None
        },
        application: Some(format!("wstap {}", env!("CARGO_PKG_VERSION"))),
        interfaces: vec![iface.to_string()],
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_live_capture_names_this_machine_and_its_interface() {
        let want = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(super::host_name().as_deref(), Some(want.trim()));
        let s = super::this_system("lo");
        assert_eq!(s.interfaces, ["lo"]);
        assert!(s.os.as_deref().is_some_and(|o| o.starts_with("Linux ")), "{:?}", s.os);
        assert_eq!(s.application, Some(format!("wstap {}", env!("CARGO_PKG_VERSION"))));
        assert!(s.hardware.is_some());
    }
}
