//! Packet decoding: link layer -> IP -> TCP, zero-copy. A packet that cannot
//! be decoded yields a [`Skip`] cause, which the pipeline counts; nothing in
//! here panics or allocates.

pub mod frag;
pub mod ip;
pub mod link;
pub mod linkaddr;
pub mod tunnel;

use crate::flow::key::Endpoint;
use crate::flow::seq::Seq;

pub use ip::decode_ip;
pub use link::{LinkType, link_payload};

/// A decoded TCP segment, borrowing the packet's bytes.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    pub src: Endpoint,
    pub dst: Endpoint,
    pub seq: Seq,
    pub ack: Seq,
    pub flags: u8,
    pub window: u16,
    /// Captured payload.
    pub payload: &'a [u8],
    /// Payload bytes the sender sent but the capture cut off (snaplen).
    pub missing: u32,
}

pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

impl Segment<'_> {
    #[inline]
    pub fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }
    /// Sequence space the segment occupies beyond SYN/FIN: payload length
    /// including bytes missing from the capture.
    #[inline]
    pub fn len(&self) -> u32 {
        self.payload.len() as u32 + self.missing
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a packet was not handed to TCP reassembly. Each cause is a counter in
/// the summary (`decode_errors` for malformed input, `skipped` otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Skip {
    /// Link header shorter than its type requires.
    LinkTruncated,
    /// Link type this build does not decode.
    LinkUnsupported,
    /// Not IPv4/IPv6 (ARP, LLDP, ...).
    NotIp,
    /// IP header malformed or truncated.
    IpMalformed,
    /// IP fragment that could not be reassembled (given up: see the
    /// summary's `defrag`). Fragments are reassembled first.
    IpFragment,
    /// IP, but not TCP (UDP, ICMP, ...).
    NotTcp,
    /// TCP header malformed or truncated.
    TcpMalformed,
    /// A tunnel header (GTP-U) that could not be decoded.
    TunnelMalformed,
}

impl Skip {
    pub const ALL: [Skip; 8] = [
        Skip::LinkTruncated,
        Skip::LinkUnsupported,
        Skip::NotIp,
        Skip::IpMalformed,
        Skip::IpFragment,
        Skip::NotTcp,
        Skip::TcpMalformed,
        Skip::TunnelMalformed,
    ];

    /// Stable identifier used in the summary record.
    pub fn name(self) -> &'static str {
        match self {
            Skip::LinkTruncated => "link-truncated",
            Skip::LinkUnsupported => "link-unsupported",
            Skip::NotIp => "not-ip",
            Skip::IpMalformed => "ip-malformed",
            Skip::IpFragment => "ip-fragment",
            Skip::NotTcp => "not-tcp",
            Skip::TcpMalformed => "tcp-malformed",
            Skip::TunnelMalformed => "tunnel-malformed",
        }
    }

    /// Malformed input (as opposed to traffic wstap simply does not analyse).
    pub fn is_error(self) -> bool {
        matches!(self, Skip::LinkTruncated | Skip::IpMalformed | Skip::TcpMalformed | Skip::TunnelMalformed)
    }
}

/// Decodes one captured frame down to its TCP segment.
/// `missing` is how many bytes of the frame the capture did not keep
/// (`orig_len - caplen`).
#[inline(always)]
pub fn decode(linktype: LinkType, data: &[u8], missing: u32) -> Result<Segment<'_>, Skip> {
    let ip = link_payload(linktype, data)?;
    decode_ip(ip, missing, 0)
}
