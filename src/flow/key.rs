//! Endpoints and flow keys. A flow is printed initiator first, as
//! `SRC:PORT->DST:PORT`, with IPv6 addresses in brackets (`[::1]:8080`).

use std::fmt;
use std::hash::Hasher;
use std::net::IpAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
}

/// One word per IPv4 endpoint (the flow table hashes two per packet).
impl std::hash::Hash for Endpoint {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self.ip {
            IpAddr::V4(a) => state.write_u64((a.to_bits() as u64) << 16 | self.port as u64),
            IpAddr::V6(a) => {
                let b = a.to_bits();
                state.write_u64((b >> 64) as u64);
                state.write_u64(b as u64 ^ (1 << 63));
                state.write_u16(self.port);
            }
        }
    }
}

impl Endpoint {
    pub fn new(ip: IpAddr, port: u16) -> Endpoint {
        Endpoint { ip, port }
    }
}

/// Appends the decimal form of `v` (records print many addresses; the
/// formatting machinery costs more than the analysis around it).
fn push_dec(buf: &mut [u8], at: &mut usize, v: u32) {
    let mut tmp = [0u8; 10];
    let mut n = 0;
    let mut v = v;
    loop {
        tmp[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for i in (0..n).rev() {
        buf[*at] = tmp[i];
        *at += 1;
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip {
            IpAddr::V4(a) => {
                let mut buf = [0u8; 21];
                let mut at = 0;
                push_v4(&mut buf, &mut at, a, self.port);
                f.write_str(std::str::from_utf8(&buf[..at]).unwrap_or(""))
            }
            IpAddr::V6(a) => write!(f, "[{}]:{}", a, self.port),
        }
    }
}

/// Appends "A.B.C.D:PORT" (at most 21 bytes).
fn push_v4(buf: &mut [u8], at: &mut usize, a: std::net::Ipv4Addr, port: u16) {
    for (i, o) in a.octets().iter().enumerate() {
        if i > 0 {
            buf[*at] = b'.';
            *at += 1;
        }
        push_dec(buf, at, *o as u32);
    }
    buf[*at] = b':';
    *at += 1;
    push_dec(buf, at, port as u32);
}

/// A TCP connection as seen on the wire: `src` is the initiator (the side
/// that sent the SYN, or the HTTP client when the capture started
/// mid-connection), `dst` the responder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub src: Endpoint,
    pub dst: Endpoint,
}

impl FlowKey {
    pub fn reversed(self) -> FlowKey {
        FlowKey { src: self.dst, dst: self.src }
    }

    /// Direction-free key for the flow table.
    pub fn canonical(self) -> (Endpoint, Endpoint) {
        if self.src <= self.dst { (self.src, self.dst) } else { (self.dst, self.src) }
    }
}

impl fmt::Display for FlowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.src.ip, self.dst.ip) {
            // One write for the common case: flows are formatted for
            // every record.
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let mut buf = [0u8; 44];
                let mut at = 0;
                push_v4(&mut buf, &mut at, a, self.src.port);
                buf[at..at + 2].copy_from_slice(b"->");
                at += 2;
                push_v4(&mut buf, &mut at, b, self.dst.port);
                f.write_str(std::str::from_utf8(&buf[..at]).unwrap_or(""))
            }
            _ => write!(f, "{}->{}", self.src, self.dst),
        }
    }
}

/// The Community ID flow hash, version 1 (the spec Zeek, Suricata, Arkime
/// and Wireshark share: github.com/corelight/community-id-spec): SHA-1 over
/// the seed, the two addresses and ports ordered so both directions give
/// the same hash, the protocol (TCP, 6) and a pad byte; base64, prefixed
/// `1:`. wstap uses seed 0, the default of every implementation.
pub fn community_id(flow: FlowKey, seed: u16) -> String {
    use base64::Engine;
    use sha1::{Digest, Sha1};
    let (a, b) = (flow.src, flow.dst);
    // The smaller endpoint first: address bytes, then port (the spec
    // compares the addresses, and the ports when the addresses are equal).
    let bytes = |e: Endpoint| -> ([u8; 16], usize) {
        let mut out = [0u8; 16];
        match e.ip {
            IpAddr::V4(x) => {
                out[..4].copy_from_slice(&x.octets());
                (out, 4)
            }
            IpAddr::V6(x) => {
                out.copy_from_slice(&x.octets());
                (out, 16)
            }
        }
    };
    let ((ab, an), (bb, bn)) = (bytes(a), bytes(b));
    let a_first = (&ab[..an], a.port) <= (&bb[..bn], b.port);
    let (first, second) = if a_first { (a, b) } else { (b, a) };
    let ((fb, fnn), (sb, sn)) = (bytes(first), bytes(second));
    // The hashed bytes in one buffer, one digest, the base64 on the stack:
    // every record writes one or two of these.
    let mut msg = [0u8; 2 + 16 + 16 + 2 + 4];
    let mut n = 0;
    for part in [
        &seed.to_be_bytes()[..],
        &fb[..fnn],
        &sb[..sn],
        &[6u8, 0u8],
        &first.port.to_be_bytes(),
        &second.port.to_be_bytes(),
    ] {
        msg[n..n + part.len()].copy_from_slice(part);
        n += part.len();
    }
    let digest = Sha1::digest(&msg[..n]);
    let mut out = [0u8; 2 + 28];
    out[..2].copy_from_slice(b"1:");
    let len = base64::engine::general_purpose::STANDARD.encode_slice(digest, &mut out[2..]).unwrap_or(0);
    String::from_utf8_lossy(&out[..2 + len]).into_owned()
}

/// The other maps use the rustc hasher (`rustc-hash`): deterministic (some
/// are walked in map order to break ties), and cheaper than SipHash. Most
/// are keyed by numbers wstap gives (connection and request ids); those
/// keyed by what the sender sends (endpoints, paths, Socket.IO sids) are
/// bounded in size. Version 2: version 1 (wstap's first choice, on
/// instruction counts) left the low bits of a flow key's hash, which place
/// an entry, with a few bits of entropy when only the addresses varied; the
/// flow table then filled with tombstones, and wall time on the benchmark's
/// small packets was 6% longer (short sessions 12%), though its tables were
/// smaller (docs/benchmark.md).
pub use rustc_hash::{FxHashMap, FxHashSet};

/// Maps whose keys the traffic's sender chooses (4-tuples, a request's
/// Sec-WebSocket-Key) hash with a random seed for each map, as Suricata
/// seeds its flow hash (`hash_rand`) and Zeek keys its hashes: with a hash
/// anyone can compute, keys built offline to collide would make every
/// lookup walk one chain of slots (docs/design.md, "TCP, for a passive
/// observer"). Nothing may be reported in such a map's order.
pub type KeyedHash = foldhash::fast::RandomState;
pub type KeyedMap<K, V> = std::collections::HashMap<K, V, KeyedHash>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_brackets_ipv6() {
        let k = FlowKey {
            src: Endpoint::new("::1".parse().unwrap(), 51000),
            dst: Endpoint::new("::1".parse().unwrap(), 8080),
        };
        assert_eq!(k.to_string(), "[::1]:51000->[::1]:8080");
        let k4 = FlowKey {
            src: Endpoint::new("10.0.0.1".parse().unwrap(), 1),
            dst: Endpoint::new("10.0.0.2".parse().unwrap(), 80),
        };
        assert_eq!(k4.to_string(), "10.0.0.1:1->10.0.0.2:80");
        let e = Endpoint::new("255.255.255.0".parse().unwrap(), 65535);
        assert_eq!(e.to_string(), "255.255.255.0:65535");
        assert_eq!(Endpoint::new("0.0.0.0".parse().unwrap(), 0).to_string(), "0.0.0.0:0");
        let widest = FlowKey {
            src: Endpoint::new("255.255.255.255".parse().unwrap(), 65535),
            dst: Endpoint::new("255.255.255.254".parse().unwrap(), 65534),
        };
        assert_eq!(widest.to_string(), "255.255.255.255:65535->255.255.255.254:65534");
        let mixed = FlowKey { src: k4.src, dst: k.dst };
        assert_eq!(mixed.to_string(), "10.0.0.1:1->[::1]:8080");
        assert_eq!(k4.canonical(), k4.reversed().canonical());
    }

    /// Values from the spec's reference implementation (PyPI
    /// `communityid` 1.5, `FlowTuple.make_tcp`, seed 0 and 1); the
    /// conformance test against it and tshark on whole captures is
    /// tests/community_id.rs.
    #[test]
    fn community_id_matches_the_reference_implementation() {
        let f = |s: &str, d: &str| {
            let ep = |x: &str| {
                let sa: std::net::SocketAddr = x.parse().unwrap();
                Endpoint::new(sa.ip(), sa.port())
            };
            FlowKey { src: ep(s), dst: ep(d) }
        };
        let k = f("127.0.0.1:36996", "127.0.0.1:13001");
        assert_eq!(community_id(k, 0), "1:ECZ8jYnj+1PEhO/etqJO4WzmHWQ=");
        assert_eq!(community_id(k.reversed(), 0), community_id(k, 0));
        let v6 = f("[2001:db8::1]:51000", "[2001:db8::2]:443");
        assert_eq!(community_id(v6, 0), "1:TZebe/ybIXr8J9lX26/lqPRYGuk=");
        assert_eq!(community_id(v6.reversed(), 0), community_id(v6, 0));
        assert_eq!(community_id(f("10.0.0.2:80", "10.0.0.1:51000"), 0), "1:i4wouHb5mVBQZt2gbtgoobJX5Ak=");
        assert_eq!(community_id(k, 1), "1:Kf6ZpZsVzMLIP4BXl70CyLkTduc=");
        assert_eq!(community_id(v6, 1), "1:lQBZvBahtIZWDlE8fq259XuJY9o=");
    }
}
