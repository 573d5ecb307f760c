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
}
