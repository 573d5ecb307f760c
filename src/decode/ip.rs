//! IPv4/IPv6 (with extension headers) and TCP, through etherparse's lax
//! slicers so that packets cut by a snap length still yield what was kept.

use etherparse::{IpNumber, LaxIpSlice, TcpSlice};

use super::{Segment, Skip, tunnel};
use crate::flow::key::Endpoint;
use crate::flow::seq::Seq;

/// Tunnels are decapsulated at most this deep (GTP-U inside GTP-U ...).
const MAX_TUNNEL_DEPTH: u8 = 2;

/// The common case (complete unfragmented IPv4/TCP) inlined into the
/// caller, so that the segment is built where it is used rather than
/// copied out of a returned value (a `memcpy` per packet).
#[inline(always)]
pub fn decode_ip(data: &[u8], missing: u32, depth: u8) -> Result<Segment<'_>, Skip> {
    match ipv4_tcp_fast(data) {
        Some(seg) => Ok(seg),
        None => decode_ip_general(data, missing, depth),
    }
}

#[inline(never)]
fn decode_ip_general(data: &[u8], missing: u32, depth: u8) -> Result<Segment<'_>, Skip> {
    let (ip, ext_err) = LaxIpSlice::from_slice(data).map_err(|_| Skip::IpMalformed)?;
    if ext_err.is_some() {
        return Err(Skip::IpMalformed);
    }
    let payload = ip.payload();
    if payload.fragmented {
        return Err(Skip::IpFragment);
    }
    // Bytes the capture cut off belong to this IP payload only if the IP
    // header says the payload is longer than what was captured, and only
    // as many as it says: `missing` comes from a record's orig_len, a free
    // 32-bit field that also counts link-layer trailers.
    let missing = if payload.incomplete { missing.min(cut_off(&ip, data.len())) } else { 0 };
    match payload.ip_number {
        IpNumber::TCP => {}
        IpNumber::UDP if depth < MAX_TUNNEL_DEPTH => {
            return match tunnel::udp_inner_ip(payload.payload)? {
                Some(inner) => decode_ip(inner, missing, depth + 1),
                None => Err(Skip::NotTcp),
            };
        }
        _ => return Err(Skip::NotTcp),
    }
    let tcp = TcpSlice::from_slice(payload.payload).map_err(|_| Skip::TcpMalformed)?;
    let src = Endpoint::new(ip.source_addr(), tcp.source_port());
    let dst = Endpoint::new(ip.destination_addr(), tcp.destination_port());
    let hdr = tcp.header_slice();
    Ok(Segment {
        src,
        dst,
        seq: Seq::new(tcp.sequence_number()),
        ack: Seq::new(tcp.acknowledgment_number()),
        // Byte 13 of the TCP header holds CWR..FIN; we keep the low six.
        flags: hdr[13] & 0x3f,
        window: tcp.window_size(),
        payload: tcp.payload(),
        missing,
    })
}

/// The common case decoded by hand: a complete, unfragmented IPv4 packet
/// carrying a complete TCP header. `None` sends everything else (IPv6,
/// options the slicers check, cut or damaged packets, fragments, tunnels)
/// to the general path, which gives the same result for these packets (a
/// test checks it on every bundled capture).
#[inline(always)]
fn ipv4_tcp_fast(data: &[u8]) -> Option<Segment<'_>> {
    let &[vihl, _, l0, l1, _, _, f0, f1, _, proto, ..] = data else { return None };
    let ihl = usize::from(vihl & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([l0, l1]));
    let frag = u16::from_be_bytes([f0, f1]) & 0x3fff;
    if vihl >> 4 != 4 || ihl < 20 || proto != 6 || frag != 0 || total > data.len() || total < ihl + 20 {
        return None;
    }
    let tcp = &data[ihl..total];
    let off = usize::from(tcp[12] >> 4) * 4;
    if off < 20 || off > tcp.len() {
        return None;
    }
    let be16 = |i: usize| u16::from_be_bytes([tcp[i], tcp[i + 1]]);
    let be32 = |i: usize| u32::from_be_bytes([tcp[i], tcp[i + 1], tcp[i + 2], tcp[i + 3]]);
    let ip4 = |i: usize| std::net::IpAddr::from([data[i], data[i + 1], data[i + 2], data[i + 3]]);
    Some(Segment {
        src: Endpoint::new(ip4(12), be16(0)),
        dst: Endpoint::new(ip4(16), be16(2)),
        seq: Seq::new(be32(4)),
        ack: Seq::new(be32(8)),
        flags: tcp[13] & 0x3f,
        window: be16(14),
        payload: &tcp[off..],
        missing: 0,
    })
}

/// Bytes of the IP packet beyond the `captured` ones, by its header.
fn cut_off(ip: &LaxIpSlice<'_>, captured: usize) -> u32 {
    let declared = match ip {
        LaxIpSlice::Ipv4(v4) => v4.header().total_len() as usize,
        LaxIpSlice::Ipv6(v6) => 40 + v6.header().payload_length() as usize,
    };
    declared.saturating_sub(captured) as u32
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::decode::flags;

    /// Builds an IPv4/TCP packet for tests.
    pub fn ipv4_tcp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, seq: u32, fl: u8, payload: &[u8]) -> Vec<u8> {
        let mut tcp = etherparse::TcpHeader::new(sport, dport, seq, 65535);
        tcp.syn = fl & flags::SYN != 0;
        tcp.ack = fl & flags::ACK != 0;
        tcp.fin = fl & flags::FIN != 0;
        tcp.rst = fl & flags::RST != 0;
        tcp.psh = fl & flags::PSH != 0;
        let b = etherparse::PacketBuilder::ipv4(src, dst, 64).tcp_header(tcp);
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    #[test]
    fn decodes_tcp_over_ipv4() {
        let p = ipv4_tcp([10, 0, 0, 1], 5000, [10, 0, 0, 2], 80, 7, flags::ACK | flags::PSH, b"GET /");
        let s = decode_ip(&p, 0, 0).unwrap();
        assert_eq!(s.src.to_string(), "10.0.0.1:5000");
        assert_eq!(s.dst.to_string(), "10.0.0.2:80");
        assert_eq!(s.seq, Seq::new(7));
        assert_eq!(s.payload, b"GET /");
        assert!(s.has(flags::ACK) && s.has(flags::PSH) && !s.has(flags::SYN));
        assert_eq!(s.missing, 0);
    }

    #[test]
    fn snaplen_cut_reports_missing_bytes() {
        let p = ipv4_tcp([10, 0, 0, 1], 5000, [10, 0, 0, 2], 80, 7, flags::ACK, b"0123456789");
        let cut = &p[..p.len() - 4];
        let s = decode_ip(cut, 4, 0).unwrap();
        assert_eq!(s.payload, b"012345");
        assert_eq!(s.missing, 4);
        assert_eq!(s.len(), 10);
    }

    /// Fuzz crash (pipeline target): an Ethernet frame cut inside its
    /// IPv4 packet, fed with `missing = u32::MAX` (a lying orig_len),
    /// overflowed `Segment::len` (payload + missing).
    #[test]
    fn missing_is_bounded_by_the_ip_header() {
        let frame = [
            0x01, 0x02, 0x9c, 0x61, 0x67, 0x74, 0xde, 0xd8, 0x32, 0xec, 0x40, 0xaa, 0x08, 0x00, 0x45, 0x00, 0x01, 0x53,
            0x00, 0x01, 0x00, 0x00, 0x40, 0x06, 0x64, 0x18, 0x13, 0x35, 0x00, 0x00, 0xac, 0x10, 0x83, 0x5d, 0x65, 0x28,
            0x00, 0x50, 0x00, 0x00, 0x00, 0x0b, 0x00, 0x00, 0x00, 0x65, 0x50, 0x18, 0x20, 0x00, 0x00, 0x13, 0x35, 0x00,
            0x00,
        ];
        let s = crate::decode::decode(crate::decode::LinkType::ETHERNET, &frame, u32::MAX).unwrap();
        // The IPv4 total length is 339; 41 bytes of it were captured.
        assert_eq!(s.payload.len(), 1);
        assert_eq!(s.missing, 339 - 41);
        assert_eq!(s.len(), 299);
        // An orig_len that counts a link-layer trailer (FCS) adds nothing.
        let p = ipv4_tcp([10, 0, 0, 1], 5000, [10, 0, 0, 2], 80, 7, flags::ACK, b"0123456789");
        let s = decode_ip(&p[..p.len() - 4], 4 + 4, 0).unwrap();
        assert_eq!(s.missing, 4);
    }

    /// The hand-written IPv4/TCP path and etherparse's agree on every
    /// packet of every bundled capture it takes, and on those packets
    /// damaged byte by byte in their headers.
    #[test]
    fn fast_path_agrees_with_the_general_one() {
        use crate::capture::{Next, PacketSource, file::FileSource};
        let same = |a: &Segment<'_>, b: &Segment<'_>| {
            (a.src, a.dst, a.seq, a.ack, a.flags, a.window, a.payload, a.missing)
                == (b.src, b.dst, b.seq, b.ack, b.flags, b.window, b.payload, b.missing)
        };
        let (mut fast, mut mutated) = (0, 0);
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/captures");
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("pcap") {
                continue;
            }
            let mut src = FileSource::open(path.to_str().unwrap(), None).unwrap();
            let lt = src.linktype();
            while let Ok(Next::Packet(p)) = src.next_packet() {
                let Ok(ip) = crate::decode::link::link_payload(lt, p.data) else { continue };
                let Some(f) = ipv4_tcp_fast(ip) else { continue };
                fast += 1;
                let g = decode_ip_general(ip, 0, 0).unwrap();
                assert!(same(&f, &g), "{}: {f:?} != {g:?}", path.display());
                if fast % 31 != 0 {
                    continue;
                }
                // Damage each header byte in turn: either path may refuse
                // it, but when the fast one takes it, both agree.
                let hdr = (usize::from(ip[0] & 0x0f) * 4 + 20).min(ip.len());
                for i in 0..hdr {
                    for v in [0u8, 0xff, ip[i] ^ 0x40, ip[i].wrapping_add(1)] {
                        let mut m = ip.to_vec();
                        m[i] = v;
                        if let Some(f) = ipv4_tcp_fast(&m) {
                            mutated += 1;
                            let g = decode_ip_general(&m, 0, 0).unwrap_or_else(|e| panic!("{m:x?}: {e:?}"));
                            assert!(same(&f, &g), "{m:x?}: {f:?} != {g:?}");
                        }
                    }
                }
            }
        }
        assert!(fast > 2_000 && mutated > 5_000, "only {fast} packets, {mutated} mutations on the fast path");
    }

    #[test]
    fn garbage_is_a_skip_not_a_panic() {
        assert_eq!(decode_ip(&[0x45, 0, 0], 0, 0).unwrap_err(), Skip::IpMalformed);
        let p = ipv4_tcp([1, 1, 1, 1], 1, [2, 2, 2, 2], 2, 0, 0, b"");
        // Cut inside the TCP header.
        assert_eq!(decode_ip(&p[..30], 0, 0).unwrap_err(), Skip::TcpMalformed);
        // Every prefix of a valid packet decodes or is skipped.
        for n in 0..p.len() {
            let _ = decode_ip(&p[..n], 0, 0);
        }
    }

    #[test]
    fn fragments_are_skipped() {
        let mut p = ipv4_tcp([1, 1, 1, 1], 1, [2, 2, 2, 2], 2, 0, 0, b"x");
        p[6] = 0x20; // more fragments
        assert_eq!(decode_ip(&p, 0, 0).unwrap_err(), Skip::IpFragment);
    }
}
