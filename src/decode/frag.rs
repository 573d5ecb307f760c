//! IPv4 and IPv6 fragment reassembly, bounded, with the receiving host's
//! rules (as Zeek and Suricata reassemble before their TCP layers).
//!
//! A proxy host runs Linux, so what its TCP stack accepted is what Linux
//! reassembles: fragments expire 30 s after the first one arrived
//! (`ipfrag_time`); an exact duplicate is ignored; any other overlap makes
//! the whole datagram void (Linux since 4.19 for IPv4, RFC 5722 for IPv6),
//! so overlap games cannot show wstap bytes the host did not see. A
//! datagram larger than 65,535 bytes, or in more than [`MAX_FRAGMENTS`]
//! pieces, is given up too.
//!
//! Memory: every held byte is charged to the memory budget's buffers
//! (the caller passes the deltas on); beyond `cap` bytes held, or
//! [`MAX_DATAGRAMS`] datagrams in flight, the oldest datagram is dropped.
//! Every outcome is counted ([`DefragStats`], the summary's `defrag`).
//! Each operation is O(1) amortised (plus the datagram's own pieces).

use std::collections::VecDeque;
use std::net::IpAddr;

use serde::Serialize;

use crate::flow::key::FxHashMap;
use crate::time::Ts;

/// Linux's `ipfrag_time`.
pub const TIMEOUT_S: f64 = 30.0;
/// Pieces per datagram, at most (a 64 KB datagram in 576-byte links
/// takes 113; minimal 8-byte pieces are an attack).
pub const MAX_FRAGMENTS: usize = 256;
/// Datagrams being reassembled at once, at most.
pub const MAX_DATAGRAMS: usize = 8192;
const MAX_DATAGRAM: usize = 65_535;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DefragStats {
    /// Fragments seen.
    pub fragments: u64,
    /// Datagrams completed and analysed.
    pub reassembled: u64,
    /// Datagrams given up: not complete within 30 s (or at the end of the
    /// input); with overlapping pieces; larger than 65,535 bytes or in
    /// more than 256 pieces; dropped for room (memory budget, at most
    /// 8192 in flight) or because a piece was cut by the snap length.
    pub incomplete: u64,
    pub overlaps: u64,
    pub too_big: u64,
    pub dropped: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
    proto: u8,
}

#[derive(Debug)]
struct Datagram {
    serial: u64,
    /// The unfragmentable part (IPv4 header of the first piece; IPv6
    /// header and extension headers before the fragment header), once the
    /// piece at offset 0 came; `next_at`: where its "next header" byte is.
    header: Option<(Vec<u8>, usize)>,
    /// Pieces (offset, bytes), sorted by offset, not overlapping.
    pieces: Vec<(usize, Vec<u8>)>,
    /// End of the datagram's data, once the last piece (MF=0) came.
    end: Option<usize>,
    have: usize,
    v6: bool,
    /// IPv6: the protocol after the fragment header.
    next: u8,
    frames: u64,
}

impl Datagram {
    fn memory(&self) -> usize {
        self.have + self.header.as_ref().map_or(0, |h| h.0.len()) + self.pieces.capacity() * 32 + 128
    }
}

/// What a fragment led to.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Held, the datagram is not complete yet.
    Held,
    /// The datagram is complete: the whole IP packet, unfragmented.
    Complete(Vec<u8>),
    /// The fragment could not be used (malformed, cut by the snap length,
    /// or its datagram was just given up); `frames` fragments were lost
    /// with it.
    Lost { frames: u64 },
}

#[derive(Default)]
pub struct Defrag {
    map: FxHashMap<Key, Datagram>,
    /// Datagrams in the order their first piece came (expiry, eviction).
    order: VecDeque<(Ts, Key, u64)>,
    next_gen: u64,
    /// Bytes held (what is charged to the budget).
    pub held: usize,
    lost_frames: u64,
    pub stats: DefragStats,
}

/// A fragment's place: key, offset, more fragments, payload range in the
/// packet, and the unfragmentable header (when offset is 0).
struct Piece<'a> {
    key: Key,
    offset: usize,
    more: bool,
    data: &'a [u8],
    header: Option<(Vec<u8>, usize)>,
    v6: bool,
    next: u8,
}

fn parse(ip: &[u8]) -> Option<Piece<'_>> {
    match ip.first()? >> 4 {
        4 => {
            let ihl = (ip[0] & 0x0f) as usize * 4;
            if ip.len() < 20 || ihl < 20 {
                return None;
            }
            let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
            if total < ihl || total > ip.len() {
                return None;
            }
            let ff = u16::from_be_bytes([ip[6], ip[7]]);
            let offset = (ff & 0x1fff) as usize * 8;
            if ff & 0x3fff == 0 {
                return None; // not a fragment
            }
            let src = IpAddr::from([ip[12], ip[13], ip[14], ip[15]]);
            let dst = IpAddr::from([ip[16], ip[17], ip[18], ip[19]]);
            let key = Key { src, dst, id: u16::from_be_bytes([ip[4], ip[5]]) as u32, proto: ip[9] };
            let header = (offset == 0).then(|| (ip[..ihl].to_vec(), 9));
            Some(Piece { key, offset, more: ff & 0x2000 != 0, data: &ip[ihl..total], header, v6: false, next: ip[9] })
        }
        6 => {
            if ip.len() < 40 {
                return None;
            }
            let end = 40 + u16::from_be_bytes([ip[4], ip[5]]) as usize;
            if end > ip.len() {
                return None;
            }
            let mut next = ip[6];
            let mut next_at = 6;
            let mut at = 40;
            // Extension headers before the fragment header (bounded).
            for _ in 0..8 {
                match next {
                    0 | 43 | 60 => {
                        let len = (*ip.get(at + 1)? as usize + 1) * 8;
                        next_at = at;
                        next = *ip.get(at)?;
                        at += len;
                    }
                    _ => break,
                }
            }
            if next != 44 || at + 8 > end {
                return None;
            }
            let f = &ip[at..at + 8];
            let v = u16::from_be_bytes([f[2], f[3]]);
            let key = Key {
                src: IpAddr::from(<[u8; 16]>::try_from(&ip[8..24]).ok()?),
                dst: IpAddr::from(<[u8; 16]>::try_from(&ip[24..40]).ok()?),
                id: u32::from_be_bytes([f[4], f[5], f[6], f[7]]),
                proto: f[0],
            };
            let offset = (v >> 3) as usize * 8;
            let header = (offset == 0).then(|| (ip[..at].to_vec(), next_at));
            Some(Piece { key, offset, more: v & 1 != 0, data: &ip[at + 8..end], header, v6: true, next: f[0] })
        }
        _ => None,
    }
}

impl Defrag {
    /// Datagrams being reassembled.
    pub fn in_flight(&self) -> usize {
        self.map.len()
    }

    /// Takes one fragment (`ip`: the IP packet; `missing`: bytes the
    /// capture cut). `cap`: bytes that may be held at most.
    pub fn push(&mut self, now: Ts, ip: &[u8], missing: u32, cap: usize) -> Outcome {
        self.stats.fragments += 1;
        self.expire(now);
        let Some(p) = parse(ip) else { return Outcome::Lost { frames: 1 } };
        if missing > 0 {
            // Bytes of this piece are missing: the datagram cannot be whole.
            return self.give_up(&p.key, Give::Dropped, 1);
        }
        if p.offset + p.data.len() > MAX_DATAGRAM {
            return self.give_up(&p.key, Give::TooBig, 1);
        }
        if !self.map.contains_key(&p.key) {
            while self.map.len() >= MAX_DATAGRAMS || (self.held + p.data.len() > cap && !self.map.is_empty()) {
                if !self.drop_oldest() {
                    break;
                }
            }
            let serial = self.next_gen;
            self.next_gen += 1;
            self.order.push_back((now, p.key.clone(), serial));
            self.map.insert(
                p.key.clone(),
                Datagram {
                    serial,
                    header: None,
                    pieces: Vec::new(),
                    end: None,
                    have: 0,
                    v6: p.v6,
                    next: p.next,
                    frames: 0,
                },
            );
            self.held += self.map.get(&p.key).map_or(0, Datagram::memory);
        }
        let Some(d) = self.map.get_mut(&p.key) else { return Outcome::Lost { frames: 1 } };
        let before = d.memory();
        d.frames += 1;
        let (start, stop) = (p.offset, p.offset + p.data.len());
        // Where it goes, and whether it overlaps a neighbour.
        let at = d.pieces.partition_point(|(o, _)| *o < start);
        if let Some((o, b)) = d.pieces.get(at)
            && *o == start
            && b.len() == p.data.len()
        {
            // An exact duplicate (same place and length): ignored.
            d.frames -= 1;
            return Outcome::Held;
        }
        let overlaps_prev = at > 0 && d.pieces[at - 1].0 + d.pieces[at - 1].1.len() > start;
        let overlaps_next = d.pieces.get(at).is_some_and(|(o, _)| *o < stop);
        let bad_end = match (p.more, d.end) {
            (false, Some(e)) => e != stop,
            (false, None) => d.pieces.last().is_some_and(|(o, b)| o + b.len() > stop),
            (true, Some(e)) => stop > e,
            (true, None) => false,
        };
        if overlaps_prev || overlaps_next || bad_end || (p.more && p.data.len() % 8 != 0) {
            return self.give_up(&p.key, Give::Overlap, 0);
        }
        if d.pieces.len() >= MAX_FRAGMENTS {
            return self.give_up(&p.key, Give::TooBig, 0);
        }
        d.pieces.insert(at, (start, p.data.to_vec()));
        d.have += p.data.len();
        if !p.more {
            d.end = Some(stop);
        }
        if p.header.is_some() {
            d.header = p.header;
            d.next = p.next;
        }
        let after = d.memory();
        self.held = self.held + after - before;
        if d.end.is_some_and(|e| e == d.have) && d.header.is_some() {
            return self.complete(&p.key);
        }
        Outcome::Held
    }

    fn complete(&mut self, key: &Key) -> Outcome {
        let Some(d) = self.map.remove(key) else { return Outcome::Lost { frames: 0 } };
        self.held -= d.memory();
        self.stats.reassembled += 1;
        let Some((mut hdr, next_at)) = d.header else { return Outcome::Lost { frames: d.frames } };
        let data_len = d.have;
        if d.v6 {
            hdr[next_at] = d.next;
            let payload = (hdr.len() - 40 + data_len) as u16;
            hdr[4..6].copy_from_slice(&payload.to_be_bytes());
        } else {
            let total = (hdr.len() + data_len).min(u16::MAX as usize) as u16;
            hdr[2..4].copy_from_slice(&total.to_be_bytes());
            hdr[6] = 0;
            hdr[7] = 0;
        }
        let mut out = hdr;
        out.reserve(data_len);
        for (_, b) in &d.pieces {
            out.extend_from_slice(b);
        }
        Outcome::Complete(out)
    }

    fn give_up(&mut self, key: &Key, why: Give, extra: u64) -> Outcome {
        let frames = match self.map.remove(key) {
            Some(d) => {
                self.held -= d.memory();
                d.frames
            }
            None => 0,
        } + extra;
        match why {
            Give::Overlap => self.stats.overlaps += 1,
            Give::TooBig => self.stats.too_big += 1,
            Give::Dropped => self.stats.dropped += 1,
        }
        Outcome::Lost { frames }
    }

    /// The oldest datagram in flight is given up (no room). False: none.
    fn drop_oldest(&mut self) -> bool {
        while let Some((_, key, serial)) = self.order.pop_front() {
            if self.map.get(&key).is_some_and(|d| d.serial == serial) {
                let d = self.map.remove(&key).expect("present");
                self.held -= d.memory();
                self.stats.dropped += 1;
                self.lost_frames += d.frames;
                return true;
            }
        }
        false
    }

    /// Datagrams not complete 30 s after their first piece are given up.
    pub fn expire(&mut self, now: Ts) {
        while let Some((t, key, serial)) = self.order.front() {
            let live = self.map.get(key).is_some_and(|d| d.serial == *serial);
            if live && now.since(*t) < TIMEOUT_S {
                break;
            }
            let (_, key, _) = self.order.pop_front().expect("front");
            if live {
                let d = self.map.remove(&key).expect("present");
                self.held -= d.memory();
                self.stats.incomplete += 1;
                self.lost_frames += d.frames;
            }
        }
        if self.order.len() > 2 * self.map.len() + 1024 {
            let map = &self.map;
            self.order.retain(|(_, k, g)| map.get(k).is_some_and(|d| d.serial == *g));
        }
    }

    /// Fragments lost with datagrams given up by expiry or lack of room
    /// since the last call (for the summary's `skipped`).
    pub fn take_lost_frames(&mut self) -> u64 {
        std::mem::take(&mut self.lost_frames)
    }

    /// End of input: what is still incomplete is lost.
    pub fn finish(&mut self) -> u64 {
        let frames: u64 = self.map.values().map(|d| d.frames).sum();
        self.stats.incomplete += self.map.len() as u64;
        self.map.clear();
        self.order.clear();
        self.held = 0;
        frames + self.take_lost_frames()
    }
}

enum Give {
    Overlap,
    TooBig,
    Dropped,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4_frag(id: u16, off: usize, more: bool, data: &[u8]) -> Vec<u8> {
        let mut h = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        h[2..4].copy_from_slice(&((20 + data.len()) as u16).to_be_bytes());
        h[4..6].copy_from_slice(&id.to_be_bytes());
        let f = (if more { 0x2000 } else { 0 }) | (off / 8) as u16;
        h[6..8].copy_from_slice(&f.to_be_bytes());
        h.extend_from_slice(data);
        h
    }

    const CAP: usize = 1 << 20;

    #[test]
    fn pieces_in_any_order_make_the_datagram() {
        let data: Vec<u8> = (0..100u8).collect();
        let mut d = Defrag::default();
        assert_eq!(d.push(Ts(0), &v4_frag(7, 48, true, &data[48..96]), 0, CAP), Outcome::Held);
        assert_eq!(d.push(Ts(1), &v4_frag(7, 96, false, &data[96..]), 0, CAP), Outcome::Held);
        assert!(d.held > 0);
        let Outcome::Complete(ip) = d.push(Ts(2), &v4_frag(7, 0, true, &data[..48]), 0, CAP) else { panic!() };
        assert_eq!(&ip[20..], &data[..]);
        assert_eq!(u16::from_be_bytes([ip[2], ip[3]]), 120);
        assert_eq!((ip[6], ip[7]), (0, 0));
        assert_eq!(d.held, 0);
        assert_eq!(d.stats.reassembled, 1);
    }

    #[test]
    fn overlaps_void_the_datagram_and_duplicates_are_ignored() {
        let mut d = Defrag::default();
        d.push(Ts(0), &v4_frag(1, 0, true, &[1; 16]), 0, CAP);
        assert_eq!(d.push(Ts(0), &v4_frag(1, 0, true, &[1; 16]), 0, CAP), Outcome::Held, "duplicate");
        assert!(matches!(d.push(Ts(0), &v4_frag(1, 8, false, &[2; 16]), 0, CAP), Outcome::Lost { frames: 2 }));
        assert_eq!(d.stats.overlaps, 1);
        assert_eq!(d.in_flight(), 0);
        assert_eq!(d.held, 0);
    }

    #[test]
    fn incomplete_datagrams_expire_and_memory_is_bounded() {
        let mut d = Defrag::default();
        d.push(Ts(0), &v4_frag(1, 0, true, &[1; 16]), 0, CAP);
        d.expire(Ts(31_000_000));
        assert_eq!((d.stats.incomplete, d.in_flight(), d.held), (1, 0, 0));
        assert_eq!(d.take_lost_frames(), 1);
        // A flood of first pieces never completed: bounded by the cap.
        let cap = 64 * 1024;
        for i in 0..10_000u16 {
            d.push(Ts(40_000_000), &v4_frag(i, 0, true, &[0; 1400]), 0, cap);
            assert!(d.held <= cap + 4096, "{}", d.held);
        }
        assert!(d.stats.dropped > 9_000);
    }
}
