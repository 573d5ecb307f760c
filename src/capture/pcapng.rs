//! pcapng read by wstap itself, from a file or a stream (standard input):
//! libpcap skips Decryption Secrets Blocks, and those carry the TLS keys
//! `editcap --inject-secrets tls,KEYS` embeds. Blocks read: Section Header
//! (either byte order, several sections), Interface Description (link
//! type, snap length, `if_tsresol`), Enhanced and Simple Packet, the
//! obsolete Packet Block, and Decryption Secrets (TLS key log type); the
//! rest is skipped by length.
//!
//! A file cut inside its last block (a capture still being written, a
//! copy that stopped) ends the input as truncated: a warning, exit 0. A
//! block that cannot be read in the middle of the input (a length no block
//! can have, a trailer not matching, a packet block that contradicts
//! itself, a read error) is damage: everything before it is analysed, open
//! sessions are ended and the summary (`"damaged": true`) is written, then
//! one error line names the input and the run exits 2, as for classic pcap
//! (docs/json.md).

use std::io::Read;

use super::{Next, RawPacket};
use crate::decode::LinkType;
use crate::proto::tls::Keys;
use crate::time::Ts;

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 1;
const PB: u32 = 2;
const SPB: u32 = 3;
const EPB: u32 = 6;
const DSB: u32 = 0x0000_000A;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
/// Decryption Secrets Block type: TLS key log (NSS format).
const SECRETS_TLS: u32 = 0x544c_534b;
/// Blocks larger than this are damage, not data.
const MAX_BLOCK: usize = 16 << 20;

#[derive(Debug, Clone, Copy)]
struct Iface {
    snaplen: u32,
    /// Timestamp units per second.
    units: u64,
}

pub struct PcapngReader {
    input: Box<dyn Read + Send>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    /// Bytes consumed before `buf[start]` (offsets in messages).
    offset: u64,
    swapped: bool,
    ifaces: Vec<Iface>,
    linktype: LinkType,
    linktype_known: bool,
    /// A simple packet block has no time: it takes the previous packet's.
    last_ts: Ts,
    keys: Option<Keys>,
    /// DSB payloads read before keys were attached.
    pending_secrets: Vec<Vec<u8>>,
    pub filter: Option<pcap::BpfProgram>,
    /// What the first section says of the system that wrote it (the
    /// summary's `system`): its hardware, OS and application options and
    /// its interfaces' names.
    system: crate::record::CaptureSystem,
    sections: u32,
}

/// Longest option string kept for the summary (a hostile file cannot make
/// it large), and how many interface names.
const MAX_OPTION_TEXT: usize = 256;
const MAX_IFACE_NAMES: usize = 64;

/// Why a block could not be read.
enum Bad {
    /// The input ended inside it: a truncated file.
    Cut(String),
    /// It cannot be a block: damage, with more of the input after it.
    Damaged(String),
}

impl Bad {
    fn text(self) -> String {
        match self {
            Bad::Cut(s) | Bad::Damaged(s) => s,
        }
    }
}

/// An option's UTF-8 text (trailing NULs dropped), bounded; `None` when
/// empty.
fn option_text(v: &[u8]) -> Option<String> {
    let v = &v[..v.iter().position(|b| *b == 0).unwrap_or(v.len())];
    let mut t = String::from_utf8_lossy(v).into_owned();
    if t.len() > MAX_OPTION_TEXT {
        let mut end = MAX_OPTION_TEXT;
        while !t.is_char_boundary(end) {
            end -= 1;
        }
        t.truncate(end);
    }
    (!t.is_empty()).then_some(t)
}

/// True when `head` (the first 4 bytes of an input) opens a pcapng file.
pub fn is_pcapng(head: &[u8]) -> bool {
    head.len() >= 4 && u32::from_le_bytes([head[0], head[1], head[2], head[3]]) == SHB
}

impl PcapngReader {
    /// Reads up to the first Interface Description Block (so the link type
    /// is known); `head` holds bytes already read from `input`.
    pub fn open(head: Vec<u8>, input: Box<dyn Read + Send>) -> Result<PcapngReader, String> {
        let len = head.len();
        let mut buf = head;
        buf.resize(len.max(1 << 16), 0);
        let mut r = PcapngReader {
            input,
            buf,
            start: 0,
            end: len,
            eof: false,
            offset: 0,
            swapped: false,
            ifaces: Vec::new(),
            linktype: LinkType(1),
            linktype_known: false,
            last_ts: Ts(0),
            keys: None,
            pending_secrets: Vec::new(),
            filter: None,
            system: Default::default(),
            sections: 0,
        };
        // The link type comes from the first interface, before any packet.
        loop {
            match r.block().map_err(|e| format!("not a readable pcapng capture ({e})"))? {
                Some((ty, body)) if ty == IDB => {
                    r.interface(&body)?;
                    break;
                }
                Some((EPB | SPB | PB, _)) => return Err("pcapng: a packet before any interface".into()),
                Some((DSB, body)) => r.secrets(&body),
                Some((SHB, body)) => r.section(&body),
                Some(_) => {}
                None => return Err("pcapng capture without any interface".into()),
            }
        }
        Ok(r)
    }

    pub fn linktype(&self) -> LinkType {
        self.linktype
    }

    /// What the file says of the system that wrote it; `None` when it
    /// says nothing.
    pub fn system(&self) -> Option<crate::record::CaptureSystem> {
        let s = &self.system;
        let empty = s.hardware.is_none() && s.os.is_none() && s.application.is_none() && s.interfaces.is_empty();
        (!empty).then(|| s.clone())
    }

    /// Where embedded TLS secrets go (they are kept until then).
    pub fn set_keys(&mut self, keys: Keys) {
        for s in self.pending_secrets.drain(..) {
            keys.add_dsb(&s);
        }
        self.keys = Some(keys);
    }

    fn u32_at(&self, b: &[u8], at: usize) -> u32 {
        let x = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if self.swapped { u32::from_be_bytes(x) } else { u32::from_le_bytes(x) }
    }

    fn u16_at(&self, b: &[u8], at: usize) -> u16 {
        let x = [b[at], b[at + 1]];
        if self.swapped { u16::from_be_bytes(x) } else { u16::from_le_bytes(x) }
    }

    fn fill(&mut self, n: usize) -> Result<bool, Bad> {
        while self.end - self.start < n {
            if self.eof {
                return Ok(false);
            }
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.offset += self.start as u64;
                self.end -= self.start;
                self.start = 0;
            }
            if self.buf.len() < n {
                self.buf.resize(n.next_power_of_two(), 0);
            }
            match self.input.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Bad::Damaged(format!("read error: {e}"))),
            }
        }
        Ok(true)
    }

    /// The next block as (type, body range in `buf`), None at the end.
    /// Errors describe damage.
    fn block_range(&mut self) -> Result<Option<(u32, usize, usize)>, Bad> {
        if !self.fill(8)? {
            return if self.end == self.start {
                Ok(None)
            } else {
                Err(Bad::Cut(format!("cut inside a block header at offset {}", self.offset + self.start as u64)))
            };
        }
        let at = self.offset + self.start as u64;
        let h = &self.buf[self.start..self.start + 8];
        let raw_ty = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        if raw_ty == SHB {
            // A new section: its byte order.
            if !self.fill(12)? {
                return Err(Bad::Cut(format!("cut inside a section header at offset {at}")));
            }
            let m = &self.buf[self.start + 8..self.start + 12];
            self.swapped = match u32::from_le_bytes([m[0], m[1], m[2], m[3]]) {
                BYTE_ORDER_MAGIC => false,
                x if x.swap_bytes() == BYTE_ORDER_MAGIC => true,
                _ => return Err(Bad::Damaged(format!("bad byte-order magic in the section header at offset {at}"))),
            };
            self.ifaces.clear();
        }
        let h = &self.buf[self.start..self.start + 8];
        let ty = self.u32_at(h, 0);
        let len = self.u32_at(h, 4) as usize;
        if !(12..=MAX_BLOCK).contains(&len) || !len.is_multiple_of(4) {
            return Err(Bad::Damaged(format!("damaged block at offset {at} (length {len})")));
        }
        if !self.fill(len)? {
            return Err(Bad::Cut(format!("cut inside a block at offset {at} ({len} bytes announced)")));
        }
        let b = &self.buf[self.start..self.start + len];
        if self.u32_at(b, len - 4) as usize != len {
            return Err(Bad::Damaged(format!("damaged block at offset {at} (trailing length differs)")));
        }
        let body = (self.start + 8, self.start + len - 4);
        self.start += len;
        Ok(Some((ty, body.0, body.1)))
    }

    fn block(&mut self) -> Result<Option<(u32, Vec<u8>)>, String> {
        Ok(self.block_range().map_err(Bad::text)?.map(|(ty, a, b)| (ty, self.buf[a..b].to_vec())))
    }

    /// The options of a block (code, value), from `at` in its body.
    fn options<'b>(&self, body: &'b [u8], mut at: usize) -> Vec<(u16, &'b [u8])> {
        let mut out = Vec::new();
        while at + 4 <= body.len() {
            let code = self.u16_at(body, at);
            let olen = self.u16_at(body, at + 2) as usize;
            if code == 0 || at + 4 + olen > body.len() {
                break;
            }
            out.push((code, &body[at + 4..at + 4 + olen]));
            at += 4 + olen.div_ceil(4) * 4;
        }
        out
    }

    /// A Section Header Block: the first one's `shb_hardware` (2),
    /// `shb_os` (3) and `shb_userappl` (4) describe the capturing system.
    fn section(&mut self, body: &[u8]) {
        self.sections += 1;
        if self.sections > 1 || body.len() < 16 {
            return;
        }
        for (code, v) in self.options(body, 16) {
            let slot = match code {
                2 => &mut self.system.hardware,
                3 => &mut self.system.os,
                4 => &mut self.system.application,
                _ => continue,
            };
            *slot = option_text(v);
        }
    }

    fn interface(&mut self, body: &[u8]) -> Result<(), String> {
        if body.len() < 8 {
            return Err("damaged interface description block".into());
        }
        let linktype = self.u16_at(body, 0);
        let snaplen = self.u32_at(body, 4);
        let mut units = 1_000_000u64;
        // Options: code, length, value padded to 4.
        let mut at = 8;
        while at + 4 <= body.len() {
            let code = self.u16_at(body, at);
            let olen = self.u16_at(body, at + 2) as usize;
            if code == 0 {
                break;
            }
            if code == 9 && olen >= 1 && at + 5 <= body.len() {
                let v = body[at + 4];
                let exp = (v & 0x7f) as u32;
                units = if v & 0x80 == 0 { 10u64.checked_pow(exp) } else { 2u64.checked_pow(exp) }.unwrap_or(1_000_000);
            }
            at += 4 + olen.div_ceil(4) * 4;
        }
        if self.linktype_known && self.linktype.0 != linktype as i32 {
            return Err(format!(
                "interfaces with different link types in one capture ({} then {linktype}) are not supported",
                self.linktype.0
            ));
        }
        if self.ifaces.len() >= 4096 {
            return Err("more than 4096 interfaces".into());
        }
        // `if_name` (2), for the summary: the first section's interfaces.
        if self.sections <= 1 && self.system.interfaces.len() < MAX_IFACE_NAMES && body.len() >= 8 {
            let name = self.options(body, 8).into_iter().find(|(c, _)| *c == 2).and_then(|(_, v)| option_text(v));
            self.system.interfaces.extend(name);
        }
        self.linktype = LinkType(linktype as i32);
        self.linktype_known = true;
        self.ifaces.push(Iface { snaplen, units });
        Ok(())
    }

    /// The BPF filter (if any) accepts the packet at `buf[at..at + len]`.
    fn keep(&self, at: usize, len: usize) -> bool {
        self.filter.as_ref().is_none_or(|f| f.filter(&self.buf[at..at + len]))
    }

    /// A Decryption Secrets Block: TLS key log text goes to the key store.
    fn secrets(&mut self, body: &[u8]) {
        if body.len() >= 8 && self.u32_at(body, 0) == SECRETS_TLS {
            let n = (self.u32_at(body, 4) as usize).min(body.len() - 8);
            let secrets = body[8..8 + n].to_vec();
            match &self.keys {
                Some(k) => k.add_dsb(&secrets),
                None => self.pending_secrets.push(secrets),
            }
        }
    }

    /// The next packet (secrets blocks are handed to the key store on the
    /// way). A cut last block ends the input as `Truncated`; damage before
    /// the end as `Damaged`.
    #[inline(never)]
    pub fn next_packet(&mut self) -> crate::error::Result<Next<'_>> {
        loop {
            let (ty, a, b) = match self.block_range() {
                Ok(Some(x)) => x,
                Ok(None) => return Ok(Next::End),
                Err(Bad::Cut(e)) => return Ok(Next::Truncated(format!("pcapng: {e}"))),
                Err(Bad::Damaged(e)) => return Ok(Next::Damaged(format!("pcapng: {e}"))),
            };
            match ty {
                EPB | PB => {
                    if b - a < 20 {
                        return Ok(Next::Damaged("pcapng: damaged packet block".into()));
                    }
                    let body = &self.buf[a..b];
                    let (iface, hi, lo, cap, orig) = if ty == EPB {
                        (
                            self.u32_at(body, 0) as usize,
                            self.u32_at(body, 4),
                            self.u32_at(body, 8),
                            self.u32_at(body, 12) as usize,
                            self.u32_at(body, 16),
                        )
                    } else {
                        (
                            self.u16_at(body, 0) as usize,
                            self.u32_at(body, 4),
                            self.u32_at(body, 8),
                            self.u32_at(body, 12) as usize,
                            self.u32_at(body, 16),
                        )
                    };
                    let Some(ifc) = self.ifaces.get(iface).copied() else {
                        return Ok(Next::Damaged(format!("pcapng: a packet of undeclared interface {iface}")));
                    };
                    if 20 + cap > b - a {
                        return Ok(Next::Damaged("pcapng: damaged packet block (captured length)".into()));
                    }
                    if !self.keep(a + 20, cap) {
                        continue;
                    }
                    let ticks = ((hi as u64) << 32) | lo as u64;
                    let us = (ticks as u128 * 1_000_000 / ifc.units.max(1) as u128).min(i64::MAX as u128) as i64;
                    let ts = Ts::from_timeval(us / 1_000_000, us % 1_000_000);
                    self.last_ts = ts;
                    return Ok(Next::Packet(RawPacket {
                        ts,
                        data: &self.buf[a + 20..a + 20 + cap],
                        orig_len: orig.max(cap as u32),
                    }));
                }
                SPB => {
                    if b - a < 4 {
                        return Ok(Next::Damaged("pcapng: damaged simple packet block".into()));
                    }
                    let Some(ifc) = self.ifaces.first().copied() else {
                        return Ok(Next::Damaged("pcapng: a packet before any interface".into()));
                    };
                    let orig = self.u32_at(&self.buf[a..b], 0);
                    let mut cap = (b - a - 4).min(orig as usize);
                    if ifc.snaplen > 0 {
                        cap = cap.min(ifc.snaplen as usize);
                    }
                    if !self.keep(a + 4, cap) {
                        continue;
                    }
                    // A simple packet has no time: it takes the last one's.
                    return Ok(Next::Packet(RawPacket {
                        ts: self.last_ts,
                        data: &self.buf[a + 4..a + 4 + cap],
                        orig_len: orig,
                    }));
                }
                IDB => {
                    let body = self.buf[a..b].to_vec();
                    if let Err(e) = self.interface(&body) {
                        return Ok(Next::Damaged(format!("pcapng: {e}")));
                    }
                }
                DSB => {
                    let body = self.buf[a..b].to_vec();
                    self.secrets(&body);
                }
                SHB => {
                    let body = self.buf[a..b].to_vec();
                    self.section(&body);
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(ty: u32, body: &[u8]) -> Vec<u8> {
        let len = (12 + body.len()) as u32;
        let mut b = ty.to_le_bytes().to_vec();
        b.extend(len.to_le_bytes());
        b.extend(body);
        b.extend(len.to_le_bytes());
        b
    }

    fn opt(code: u16, v: &[u8]) -> Vec<u8> {
        let mut o = code.to_le_bytes().to_vec();
        o.extend((v.len() as u16).to_le_bytes());
        o.extend(v);
        o.resize(o.len().div_ceil(4) * 4, 0);
        o
    }

    fn shb(opts: &[u8]) -> Vec<u8> {
        let mut b = BYTE_ORDER_MAGIC.to_le_bytes().to_vec();
        b.extend([1, 0, 0, 0]);
        b.extend(u64::MAX.to_le_bytes());
        b.extend(opts);
        block(SHB, &b)
    }

    fn idb(opts: &[u8]) -> Vec<u8> {
        let mut b = vec![1, 0, 0, 0];
        b.extend(65535u32.to_le_bytes());
        b.extend(opts);
        block(IDB, &b)
    }

    fn open(file: Vec<u8>) -> PcapngReader {
        PcapngReader::open(Vec::new(), Box::new(std::io::Cursor::new(file))).unwrap()
    }

    #[test]
    fn the_section_and_interfaces_say_what_system_wrote_the_file() {
        let mut f = shb(&[
            opt(2, b"x86_64"),
            opt(3, b"Linux 6.1.0-18-amd64"),
            opt(4, b"dumpcap (Wireshark) 4.0.17"),
            opt(0, b""),
        ]
        .concat());
        f.extend(idb(&[opt(2, b"any"), opt(0, b"")].concat()));
        f.extend(idb(&opt(3, b"no name, a description")));
        f.extend(idb(&opt(2, b"lo\0\0")));
        let s = open(f).system().expect("the file describes its system");
        assert_eq!(s.hardware.as_deref(), Some("x86_64"));
        assert_eq!(s.os.as_deref(), Some("Linux 6.1.0-18-amd64"));
        assert_eq!(s.application.as_deref(), Some("dumpcap (Wireshark) 4.0.17"));
        assert_eq!(s.interfaces, ["any"], "interfaces are read as packets need them; only the first now");
        let mut f = shb(&[]);
        f.extend(idb(&[]));
        assert_eq!(open(f).system(), None, "a file that says nothing gives no system");
    }

    #[test]
    fn option_text_is_bounded_and_a_bad_length_ends_the_options() {
        let long = vec![b'a'; 5000];
        let mut f = shb(&[opt(3, &long), opt(4, b"app")].concat());
        f.extend(idb(&[]));
        let s = open(f).system().unwrap();
        assert_eq!(s.os.map(|o| o.len()), Some(MAX_OPTION_TEXT));
        assert_eq!(s.application.as_deref(), Some("app"));
        // An option claiming more than its block holds is not read.
        let mut bad = opt(2, b"x86_64");
        bad[2] = 200;
        let mut f = shb(&bad);
        f.extend(idb(&[]));
        assert_eq!(open(f).system(), None);
    }
}
