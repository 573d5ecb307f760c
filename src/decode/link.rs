//! Link layers: Ethernet (802.1Q / QinQ tags), Linux cooked capture v1 and
//! v2 (what `-i any` writes), BSD loopback/NULL, raw IP.

use super::Skip;

/// A pcap LINKTYPE_ value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkType(pub i32);

impl LinkType {
    pub const NULL: LinkType = LinkType(0);
    pub const ETHERNET: LinkType = LinkType(1);
    pub const RAW_12: LinkType = LinkType(12);
    pub const RAW_14: LinkType = LinkType(14);
    pub const RAW: LinkType = LinkType(101);
    pub const LOOP: LinkType = LinkType(108);
    pub const LINUX_SLL: LinkType = LinkType(113);
    pub const IPV4: LinkType = LinkType(228);
    pub const IPV6: LinkType = LinkType(229);
    pub const LINUX_SLL2: LinkType = LinkType(276);

    pub fn is_supported(self) -> bool {
        matches!(self.0, 0 | 1 | 12 | 14 | 101 | 108 | 113 | 228 | 229 | 276)
    }

    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "NULL",
            1 => "EN10MB",
            12 | 14 | 101 => "RAW",
            108 => "LOOP",
            113 => "LINUX_SLL",
            228 => "IPV4",
            229 => "IPV6",
            276 => "LINUX_SLL2",
            _ => "unsupported",
        }
    }
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;

#[inline]
fn be16(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([d[at], d[at + 1]])
}

/// Strips VLAN tags after an EtherType field and returns the IP packet.
fn after_ethertype(mut ethertype: u16, mut rest: &[u8]) -> Result<&[u8], Skip> {
    // Bounded: at most a handful of stacked tags are legitimate.
    for _ in 0..8 {
        match ethertype {
            ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => return Ok(rest),
            ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD => {
                if rest.len() < 4 {
                    return Err(Skip::LinkTruncated);
                }
                ethertype = be16(rest, 2);
                rest = &rest[4..];
            }
            _ => return Err(Skip::NotIp),
        }
    }
    Err(Skip::LinkTruncated)
}

/// Returns the network-layer bytes of a frame.
pub fn link_payload(linktype: LinkType, data: &[u8]) -> Result<&[u8], Skip> {
    match linktype.0 {
        1 => {
            if data.len() < 14 {
                return Err(Skip::LinkTruncated);
            }
            after_ethertype(be16(data, 12), &data[14..])
        }
        113 => {
            // Linux cooked v1: packet type(2) ARPHRD(2) addr len(2) addr(8) protocol(2)
            if data.len() < 16 {
                return Err(Skip::LinkTruncated);
            }
            after_ethertype(be16(data, 14), &data[16..])
        }
        276 => {
            // Linux cooked v2: protocol(2) reserved(2) ifindex(4) ARPHRD(2)
            // packet type(1) addr len(1) addr(8)
            if data.len() < 20 {
                return Err(Skip::LinkTruncated);
            }
            after_ethertype(be16(data, 0), &data[20..])
        }
        0 | 108 => {
            // 4-byte address family, host (NULL) or network (LOOP) byte
            // order; values differ per OS, so look at the IP version.
            if data.len() < 5 {
                return Err(Skip::LinkTruncated);
            }
            raw_ip(&data[4..])
        }
        12 | 14 | 101 | 228 | 229 => raw_ip(data),
        _ => Err(Skip::LinkUnsupported),
    }
}

fn raw_ip(data: &[u8]) -> Result<&[u8], Skip> {
    match data.first().map(|b| b >> 4) {
        Some(4) | Some(6) => Ok(data),
        Some(_) => Err(Skip::NotIp),
        None => Err(Skip::LinkTruncated),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ethernet_with_qinq() {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x88, 0xa8, 0, 1, 0x81, 0x00, 0, 2, 0x08, 0x00]);
        f.extend_from_slice(&[0x45, 0, 0, 20]);
        assert_eq!(link_payload(LinkType::ETHERNET, &f).unwrap(), &[0x45, 0, 0, 20]);
    }

    #[test]
    fn truncated_and_foreign_frames_are_skips() {
        assert_eq!(link_payload(LinkType::ETHERNET, &[0; 13]), Err(Skip::LinkTruncated));
        let mut arp = vec![0u8; 12];
        arp.extend_from_slice(&[0x08, 0x06, 1, 2]);
        assert_eq!(link_payload(LinkType::ETHERNET, &arp), Err(Skip::NotIp));
        let mut vlan_cut = vec![0u8; 12];
        vlan_cut.extend_from_slice(&[0x81, 0x00, 0]);
        assert_eq!(link_payload(LinkType::ETHERNET, &vlan_cut), Err(Skip::LinkTruncated));
        assert_eq!(link_payload(LinkType(147), &[0; 40]), Err(Skip::LinkUnsupported));
    }

    #[test]
    fn cooked_v1_v2_and_null() {
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[0x86, 0xdd, 0x60]);
        assert_eq!(link_payload(LinkType::LINUX_SLL, &sll).unwrap(), &[0x60]);
        let mut sll2 = vec![0x08, 0x00];
        sll2.extend_from_slice(&[0; 18]);
        sll2.push(0x45);
        assert_eq!(link_payload(LinkType::LINUX_SLL2, &sll2).unwrap(), &[0x45]);
        assert_eq!(link_payload(LinkType::NULL, &[2, 0, 0, 0, 0x45]).unwrap(), &[0x45]);
        assert_eq!(link_payload(LinkType::RAW, &[0x12]), Err(Skip::NotIp));
    }
}
