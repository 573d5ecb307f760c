//! `-e`: the link-level header of a connection's first packet, as tcpdump
//! prints it (Ethernet MAC addresses; for Linux cooked captures, what
//! `-i any` writes, the packet's direction, interface and address).
//!
//! Only the first packet of each connection is looked at (its SYN, or the
//! first one seen of a connection already open when capture began), and
//! only when `-e` asks: the packet path pays one untaken branch without it.
//! The table is bounded ([`MAX_CONNECTIONS`]; the oldest entry goes first)
//! and shared between the pipeline that fills it and the text sink that
//! prints it, on one thread (`-e` runs the analysis on one thread).

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex};

use super::LinkType;
use crate::flow::FlowKey;
use rustc_hash::FxHashMap;

/// Connections whose link header is remembered at most.
pub const MAX_CONNECTIONS: usize = 65_536;

/// The link-level header of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkHeader {
    /// Ethernet: source and destination MAC, the ethertype after any VLAN
    /// tags, and the first two tags (type, tag control: priority and id).
    Ethernet { src: [u8; 6], dst: [u8; 6], ethertype: u16, vlans: [(u16, u16); 2], tags: u8 },
    /// Linux cooked capture (v1 has no interface index): the packet type
    /// (host, broadcast, multicast, other host, outgoing), the interface
    /// index (v2), the link-layer address of the sender.
    Cooked { pkttype: u16, ifindex: Option<u32>, addr: [u8; 8], addr_len: u8, protocol: u16 },
    /// A link without addresses (raw IP, BSD loopback).
    None,
}

fn be16(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([d[at], d[at + 1]])
}

impl LinkHeader {
    /// Parses the link header of a frame; `None` when it is cut short.
    pub fn parse(linktype: LinkType, d: &[u8]) -> Option<LinkHeader> {
        match linktype.0 {
            1 => {
                if d.len() < 14 {
                    return None;
                }
                let mut dst = [0; 6];
                let mut src = [0; 6];
                dst.copy_from_slice(&d[0..6]);
                src.copy_from_slice(&d[6..12]);
                let mut ethertype = be16(d, 12);
                let (mut vlans, mut tags) = ([(0, 0); 2], 0u8);
                let mut at = 14;
                while matches!(ethertype, 0x8100 | 0x88a8 | 0x9100)
                    && d.len() >= at + 4
                    && (tags as usize) < vlans.len()
                {
                    vlans[tags as usize] = (ethertype, be16(d, at));
                    tags += 1;
                    ethertype = be16(d, at + 2);
                    at += 4;
                }
                Some(LinkHeader::Ethernet { src, dst, ethertype, vlans, tags })
            }
            113 => {
                if d.len() < 16 {
                    return None;
                }
                let addr_len = be16(d, 4).min(8) as u8;
                let mut addr = [0; 8];
                addr.copy_from_slice(&d[6..14]);
                Some(LinkHeader::Cooked { pkttype: be16(d, 0), ifindex: None, addr, addr_len, protocol: be16(d, 14) })
            }
            276 => {
                if d.len() < 20 {
                    return None;
                }
                let mut addr = [0; 8];
                addr.copy_from_slice(&d[12..20]);
                Some(LinkHeader::Cooked {
                    pkttype: d[10] as u16,
                    ifindex: Some(u32::from_be_bytes([d[4], d[5], d[6], d[7]])),
                    addr,
                    addr_len: d[11].min(8),
                    protocol: be16(d, 0),
                })
            }
            _ => Some(LinkHeader::None),
        }
    }
}

struct Mac<'a>(&'a [u8]);

impl fmt::Display for Mac<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

fn ethertype_name(t: u16) -> &'static str {
    match t {
        0x0800 => "IPv4",
        0x86dd => "IPv6",
        0x8100 => "802.1Q",
        0x88a8 => "802.1Q-QinQ",
        0x9100 => "802.1Q-9100",
        _ => "Unknown",
    }
}

/// tcpdump -e's wording: `00:11:22:33:44:55 > 66:77:88:99:aa:bb, ethertype
/// IPv4 (0x0800)`; cooked: `In ifindex 2 00:11:22:33:44:55 ethertype IPv4
/// (0x0800)`.
impl fmt::Display for LinkHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LinkHeader::Ethernet { src, dst, ethertype, vlans, tags } => {
                write!(f, "{} > {}", Mac(&src), Mac(&dst))?;
                for (tpid, tci) in &vlans[..tags as usize] {
                    write!(
                        f,
                        ", ethertype {} (0x{tpid:04x}), vlan {}, p {}",
                        ethertype_name(*tpid),
                        tci & 0x0fff,
                        tci >> 13
                    )?;
                }
                write!(f, ", ethertype {} (0x{ethertype:04x})", ethertype_name(ethertype))
            }
            LinkHeader::Cooked { pkttype, ifindex, addr, addr_len, protocol } => {
                let dir = match pkttype {
                    0 => "In",
                    1 => "B",
                    2 => "M",
                    3 => "P",
                    4 => "Out",
                    _ => "?",
                };
                f.write_str(dir)?;
                if let Some(i) = ifindex {
                    write!(f, " ifindex {i}")?;
                }
                write!(
                    f,
                    " {} ethertype {} (0x{protocol:04x})",
                    Mac(&addr[..addr_len as usize]),
                    ethertype_name(protocol)
                )
            }
            LinkHeader::None => f.write_str("no link-level header"),
        }
    }
}

/// The link header of each connection's first packet, with the direction
/// that packet went.
#[derive(Default)]
pub struct LinkTable {
    by_key: FxHashMap<FlowKey, LinkHeader>,
    order: VecDeque<FlowKey>,
}

impl fmt::Debug for LinkTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LinkTable({} connections)", self.by_key.len())
    }
}

/// The table as the pipeline and the text sink share it.
pub type SharedLinks = Arc<Mutex<LinkTable>>;

impl LinkTable {
    pub fn shared() -> SharedLinks {
        Arc::new(Mutex::new(LinkTable::default()))
    }

    /// Remembers a packet's header if its connection has none yet, or if it
    /// opens the connection anew (a SYN: the 4-tuple reused).
    pub fn see(&mut self, key: FlowKey, syn_only: bool, h: LinkHeader) {
        let rev = key.reversed();
        if !syn_only && (self.by_key.contains_key(&key) || self.by_key.contains_key(&rev)) {
            return;
        }
        self.by_key.remove(&rev);
        if self.by_key.insert(key, h).is_none() {
            self.order.push_back(key);
            while self.by_key.len() > MAX_CONNECTIONS {
                match self.order.pop_front() {
                    Some(old) => {
                        self.by_key.remove(&old);
                    }
                    None => break,
                }
            }
            // Entries replaced or removed above leave stale keys in
            // `order`; keep it from outgrowing the table.
            if self.order.len() > 2 * MAX_CONNECTIONS {
                let live = &self.by_key;
                self.order.retain(|k| live.contains_key(k));
            }
        }
    }

    /// The header of the packet that opened `key` (either direction), and
    /// whether it went from `key.src` to `key.dst`.
    pub fn get(&self, key: FlowKey) -> Option<(LinkHeader, bool)> {
        if let Some(h) = self.by_key.get(&key) {
            return Some((*h, true));
        }
        self.by_key.get(&key.reversed()).map(|h| (*h, false))
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(a: u16, b: u16) -> FlowKey {
        let ep = |p| crate::flow::Endpoint::new("127.0.0.1".parse().unwrap(), p);
        FlowKey { src: ep(a), dst: ep(b) }
    }

    #[test]
    fn ethernet_as_tcpdump_prints_it() {
        let mut f =
            vec![0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x81, 0, 0x40, 0x2a, 0x08, 0];
        f.extend([0x45; 20]);
        let h = LinkHeader::parse(LinkType::ETHERNET, &f).unwrap();
        assert_eq!(
            h.to_string(),
            "00:11:22:33:44:55 > 66:77:88:99:aa:bb, ethertype 802.1Q (0x8100), vlan 42, p 2, ethertype IPv4 (0x0800)"
        );
        assert_eq!(LinkHeader::parse(LinkType::ETHERNET, &f[..13]), None);
    }

    #[test]
    fn cooked_v2_says_direction_and_interface() {
        let mut f = vec![0x08, 0, 0, 0, 0, 0, 0, 1, 0, 1, 4, 6, 0, 0, 0, 0, 0, 0, 0, 0];
        f.extend([0x45; 20]);
        let h = LinkHeader::parse(LinkType::LINUX_SLL2, &f).unwrap();
        assert_eq!(h.to_string(), "Out ifindex 1 00:00:00:00:00:00 ethertype IPv4 (0x0800)");
        assert_eq!(LinkHeader::parse(LinkType::RAW, &f).unwrap().to_string(), "no link-level header");
    }

    #[test]
    fn the_first_packet_is_kept_a_syn_replaces_it_and_the_table_is_bounded() {
        let mut t = LinkTable::default();
        let a = LinkHeader::Ethernet { src: [1; 6], dst: [2; 6], ethertype: 0x800, vlans: [(0, 0); 2], tags: 0 };
        let b = LinkHeader::Ethernet { src: [2; 6], dst: [1; 6], ethertype: 0x800, vlans: [(0, 0); 2], tags: 0 };
        t.see(key(1000, 80), true, a);
        t.see(key(80, 1000), false, b);
        assert_eq!(t.get(key(1000, 80)), Some((a, true)));
        assert_eq!(t.get(key(80, 1000)), Some((a, false)));
        t.see(key(1000, 80), true, b);
        assert_eq!(t.get(key(1000, 80)), Some((b, true)));
        for p in 0..(MAX_CONNECTIONS as u32 + 10) {
            t.see(key((p % 60000) as u16 + 1, (p / 60000) as u16 + 1), false, a);
        }
        assert!(t.len() <= MAX_CONNECTIONS);
        assert!(t.order.len() <= 2 * MAX_CONNECTIONS + 1);
    }
}
