//! The flow table: owns live connections, keyed by 4-tuple, and expires them
//! by packet time. Memory is bounded by live connections (and `max_flows`),
//! never by capture size.

use std::collections::VecDeque;

use super::assembler::ReassemblyStats;
use super::conn::{Conn, TcpState};
use super::key::{Endpoint, FxHashMap};
use crate::decode::{Segment, flags};
use crate::event::{EndReason, Event};
use crate::time::Ts;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Live connections at most; packets of new ones beyond are counted
    /// (`flow_limit`) and dropped.
    pub max_flows: usize,
    /// An established connection with no packet for this long is ended.
    /// Long, because idle WebSocket sessions are what wstap watches.
    pub idle_timeout_s: f64,
    /// A SYN with no answer for this long is "unanswered".
    pub syn_timeout_s: f64,
    /// A closed connection stays this long to absorb late packets.
    pub linger_s: f64,
    /// Report every WebSocket frame (`-v`).
    pub verbose: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_flows: 500_000, idle_timeout_s: 7200.0, syn_timeout_s: 30.0, linger_s: 5.0, verbose: false }
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct FlowStats {
    /// Connections seen (each reuse of a 4-tuple counts).
    pub flows: u64,
    pub live_max: u64,
    pub flow_limit_drops: u64,
    /// RST or stray ACK for a connection never seen: not tracked.
    pub strays: u64,
    pub reassembly: ReassemblyStats,
    /// TLS connections, decrypted or not and why (ended connections).
    pub tls: crate::proto::tls::TlsStats,
    /// HTTP/2 connections (ended connections).
    pub h2: crate::proto::h2::H2Stats,
}

type Key = (Endpoint, Endpoint);

/// Connections live inline in the map's buckets: the lookup that finds a
/// connection also brings its first cache lines in (one miss, not two).
pub struct FlowTable {
    map: FxHashMap<Key, Conn>,
    /// Closed connections waiting out their linger time, in close order.
    closing: VecDeque<(Ts, Key, u64)>,
    next_id: u64,
    next_sweep: Option<Ts>,
    /// Nothing to expire before this packet time.
    next_due: Ts,
    limits: Limits,
    pub stats: FlowStats,
    /// Session keys for TLS connections (key logs, pcapng secrets).
    keys: crate::proto::tls::Keys,
    /// Connections holding records for keys (live key log), bounded by the
    /// flow table; looked at when the key store changes.
    waiting_keys: Vec<(Key, u64)>,
    keys_generation: u64,
}

const SWEEP_EVERY_S: f64 = 10.0;

impl FlowTable {
    pub fn new(limits: Limits) -> FlowTable {
        FlowTable {
            map: FxHashMap::default(),
            closing: VecDeque::new(),
            next_id: 1,
            next_sweep: None,
            next_due: Ts(i64::MIN),
            limits,
            stats: FlowStats::default(),
            keys: Default::default(),
            waiting_keys: Vec::new(),
            keys_generation: 0,
        }
    }

    /// The session keys TLS connections are decrypted with.
    pub fn keys(&self) -> &crate::proto::tls::Keys {
        &self.keys
    }

    pub fn live(&self) -> usize {
        self.map.len()
    }

    /// A live connection by flow and id (the id guards against a reused
    /// 4-tuple).
    pub fn get(&self, flow: crate::flow::FlowKey, id: u64) -> Option<&Conn> {
        self.map.get(&flow.canonical()).filter(|c| c.id == id)
    }

    pub fn packet(&mut self, ts: Ts, seg: &Segment<'_>, out: &mut Vec<Event>) {
        self.expire(ts, out);
        let key = canonical(seg);
        // The common case, one lookup: a packet of a known connection.
        if let Some(conn) = self.map.get_mut(&key) {
            if !conn.is_reused_by(seg) {
                let was_closed = conn.is_closed();
                conn.segment(ts, seg, out);
                if conn.holds_for_keys() && !self.waiting_keys.iter().any(|w| w.0 == key) {
                    self.waiting_keys.push((key, conn.id));
                }
                if !was_closed && conn.is_closed() {
                    self.closing.push_back((ts, key, conn.id));
                    self.next_due = self.next_due.min(ts.add_secs(self.limits.linger_s));
                }
                return;
            }
            // A new connection on the same 4-tuple.
            conn.close(ts, EndReason::Closed, out);
            self.remove(&key);
        } else if seg.has(flags::RST) || (seg.payload.is_empty() && !seg.has(flags::SYN) && !seg.has(flags::FIN)) {
            self.stats.strays += 1;
            return;
        }
        if !self.create(ts, seg, key) {
            return;
        }
        let Some(conn) = self.map.get_mut(&key) else { return };
        conn.segment(ts, seg, out);
        if conn.is_closed() {
            self.closing.push_back((ts, key, conn.id));
            self.next_due = self.next_due.min(ts.add_secs(self.limits.linger_s));
        }
    }

    /// Live key log: when new keys came, connections holding records for
    /// theirs read them now rather than at their next packet.
    #[cold]
    fn keys_arrived(&mut self, ts: Ts, out: &mut Vec<Event>) {
        let g = self.keys.generation();
        if g == self.keys_generation {
            return;
        }
        self.keys_generation = g;
        let waiting = std::mem::take(&mut self.waiting_keys);
        for (key, id) in waiting {
            if let Some(c) = self.map.get_mut(&key).filter(|c| c.id == id) {
                c.keys_changed(ts, out);
                if c.holds_for_keys() {
                    self.waiting_keys.push((key, id));
                }
            }
        }
    }

    fn create(&mut self, ts: Ts, seg: &Segment<'_>, key: Key) -> bool {
        if self.map.len() >= self.limits.max_flows {
            self.stats.flow_limit_drops += 1;
            return false;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.stats.flows += 1;
        self.map.insert(key, Conn::new(id, ts, seg, self.limits.verbose, &self.keys));
        self.stats.live_max = self.stats.live_max.max(self.map.len() as u64);
        true
    }

    fn remove(&mut self, key: &Key) {
        if let Some(c) = self.map.remove(key) {
            self.stats.reassembly.add(&c.reassembly_stats());
            if let Some(t) = c.tls_stats() {
                self.stats.tls.add(&t);
            }
            if let Some(h) = c.h2_stats() {
                self.stats.h2.add(&h);
            }
        }
    }

    /// Expires connections by packet time: lingering closed ones, idle ones
    /// and unanswered SYNs.
    #[inline]
    pub fn expire(&mut self, now: Ts, out: &mut Vec<Event>) {
        if !self.waiting_keys.is_empty() {
            self.keys_arrived(now, out);
        }
        if now < self.next_due {
            return;
        }
        self.expire_due(now, out);
        let linger_end = self.closing.front().map(|c| c.0.add_secs(self.limits.linger_s));
        self.next_due = match (linger_end, self.next_sweep) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(now),
        };
    }

    fn expire_due(&mut self, now: Ts, out: &mut Vec<Event>) {
        while let Some(&(t, key, id)) = self.closing.front() {
            if now.0 - t.0 < (self.limits.linger_s * 1e6) as i64 {
                break;
            }
            self.closing.pop_front();
            if self.map.get(&key).is_some_and(|c| c.id == id) {
                self.remove(&key);
            }
        }
        let due = *self.next_sweep.get_or_insert(now.add_secs(SWEEP_EVERY_S));
        if now < due {
            return;
        }
        self.next_sweep = Some(now.add_secs(SWEEP_EVERY_S));
        let (syn_t, idle_t) = (self.limits.syn_timeout_s, self.limits.idle_timeout_s);
        let mut ended: Vec<(u64, Key)> = self
            .map
            .iter()
            .filter(|(_, c)| {
                let quiet = now.since(c.last_ts);
                !c.is_closed() && ((c.state == TcpState::SynSent && quiet >= syn_t) || quiet >= idle_t)
            })
            .map(|(k, c)| (c.id, *k))
            .collect();
        ended.sort_unstable();
        for (_, key) in ended {
            if let Some(c) = self.map.get_mut(&key) {
                let quiet = now.since(c.last_ts);
                let (reason, after) = if c.state == TcpState::SynSent && quiet >= self.limits.syn_timeout_s {
                    (EndReason::Unanswered, self.limits.syn_timeout_s)
                } else {
                    (EndReason::Idle, self.limits.idle_timeout_s)
                };
                let at = c.last_ts.add_secs(after);
                c.close(at.min(now), reason, out);
            }
            self.remove(&key);
        }
    }

    /// End of input: every live connection ends, in creation order.
    pub fn finish(&mut self, now: Ts, out: &mut Vec<Event>) {
        let mut live: Vec<(u64, Key)> = self.map.iter().map(|(k, c)| (c.id, *k)).collect();
        live.sort_unstable();
        for (_, key) in live {
            if let Some(c) = self.map.get_mut(&key) {
                c.close(now, EndReason::EndOfCapture, out);
            }
            self.remove(&key);
        }
        self.closing.clear();
    }
}

fn canonical(seg: &Segment<'_>) -> Key {
    if seg.src <= seg.dst { (seg.src, seg.dst) } else { (seg.dst, seg.src) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{decode_ip, flags as F};
    use crate::event::EventKind;

    fn seg(src: ([u8; 4], u16), dst: ([u8; 4], u16), seq: u32, ack: u32, fl: u8, payload: &[u8]) -> Vec<u8> {
        let mut tcp = etherparse::TcpHeader::new(src.1, dst.1, seq, 65535);
        tcp.syn = fl & F::SYN != 0;
        tcp.ack = fl & F::ACK != 0;
        tcp.fin = fl & F::FIN != 0;
        tcp.rst = fl & F::RST != 0;
        tcp.acknowledgment_number = ack;
        let mut out = Vec::new();
        etherparse::PacketBuilder::ipv4(src.0, dst.0, 64).tcp_header(tcp).write(&mut out, payload).unwrap();
        out
    }

    const C: ([u8; 4], u16) = ([10, 0, 0, 1], 40000);
    const S: ([u8; 4], u16) = ([10, 0, 0, 2], 80);

    fn feed(t: &mut FlowTable, pkts: &[Vec<u8>]) -> Vec<Event> {
        let mut out = Vec::new();
        for (i, p) in pkts.iter().enumerate() {
            let s = decode_ip(p, 0, 0).unwrap();
            t.packet(Ts(1_000_000 + i as i64 * 1000), &s, &mut out);
        }
        out
    }

    fn opens(ev: &[Event]) -> Vec<(u64, String)> {
        ev.iter()
            .filter_map(|e| match &e.kind {
                EventKind::Open { flow, .. } => Some((e.conn, flow.to_string())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_reused_four_tuple_is_a_new_connection() {
        let mut t = FlowTable::new(Limits::default());
        let ev = feed(
            &mut t,
            &[
                seg(C, S, 100, 0, F::SYN, b""),
                seg(S, C, 500, 101, F::SYN | F::ACK, b""),
                seg(C, S, 101, 501, F::ACK | F::FIN, b""),
                seg(S, C, 501, 102, F::ACK | F::FIN, b""),
                // Same ports again, new ISN.
                seg(C, S, 9000, 0, F::SYN, b""),
                seg(S, C, 7000, 9001, F::SYN | F::ACK, b""),
            ],
        );
        let o = opens(&ev);
        assert_eq!(o.len(), 2);
        assert_ne!(o[0].0, o[1].0);
        assert_eq!(t.stats.flows, 2);
        assert!(ev.iter().any(|e| e.conn == o[0].0 && matches!(e.kind, EventKind::Close(_))));
    }

    #[test]
    fn midstream_start_is_oriented_by_the_request() {
        // First packet seen is the server's data; then the client's request.
        let mut t = FlowTable::new(Limits::default());
        let ev = feed(
            &mut t,
            &[
                seg(C, S, 1000, 2000, F::ACK, b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n"),
                seg(S, C, 2000, 1029, F::ACK, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
            ],
        );
        assert_eq!(opens(&ev)[0].1, "10.0.0.1:40000->10.0.0.2:80");
        // Orientation from the response when the server speaks first.
        let mut t = FlowTable::new(Limits::default());
        let ev = feed(
            &mut t,
            &[seg(
                ([10, 0, 0, 2], 8080),
                ([10, 0, 0, 1], 9000),
                1,
                1,
                F::ACK,
                b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
            )],
        );
        assert_eq!(opens(&ev)[0].1, "10.0.0.1:9000->10.0.0.2:8080");
    }

    #[test]
    fn refused_and_stray_packets() {
        let mut t = FlowTable::new(Limits::default());
        let ev = feed(&mut t, &[seg(C, S, 100, 0, F::SYN, b""), seg(S, C, 0, 101, F::RST | F::ACK, b"")]);
        let end = ev.iter().find_map(|e| match &e.kind {
            EventKind::Close(s) => Some(s.end),
            _ => None,
        });
        assert_eq!(end, Some(EndReason::Refused));
        // A lone RST or pure ACK for an unknown connection creates nothing.
        let mut t = FlowTable::new(Limits::default());
        let ev = feed(&mut t, &[seg(S, C, 5, 5, F::RST, b""), seg(C, S, 5, 5, F::ACK, b"")]);
        assert!(ev.is_empty());
        assert_eq!(t.stats.strays, 2);
    }

    #[test]
    fn unanswered_syn_expires_by_packet_time() {
        let mut t = FlowTable::new(Limits::default());
        let mut out = Vec::new();
        let p = seg(C, S, 100, 0, F::SYN, b"");
        t.packet(Ts(0), &decode_ip(&p, 0, 0).unwrap(), &mut out);
        // Unrelated traffic 45 s later advances packet time.
        let q = seg(([10, 0, 0, 9], 1), ([10, 0, 0, 8], 2), 1, 0, F::SYN, b"");
        t.packet(Ts(45_000_000), &decode_ip(&q, 0, 0).unwrap(), &mut out);
        let end = out.iter().find_map(|e| match &e.kind {
            EventKind::Close(s) => Some(s.end),
            _ => None,
        });
        assert_eq!(end, Some(EndReason::Unanswered));
        assert_eq!(t.live(), 1);
    }

    #[test]
    fn flow_cap_is_counted() {
        let mut t = FlowTable::new(Limits { max_flows: 1, ..Limits::default() });
        feed(&mut t, &[seg(C, S, 1, 0, F::SYN, b""), seg(([10, 0, 0, 3], 1), S, 1, 0, F::SYN, b"")]);
        assert_eq!(t.live(), 1);
        assert_eq!(t.stats.flow_limit_drops, 1);
    }
}
