//! The flow table: owns live connections, keyed by 4-tuple, and expires them
//! by packet time. Memory is bounded by the budget ([`crate::budget`]):
//! the number of connections, their state and their buffers each have a
//! share, and when one is full the least valuable state goes first, every
//! time counted.
//!
//! One file per idea: this one finds connections and expires them;
//! [`books`] keeps the bookkeeping the budget needs (classes, queues,
//! charges) beside the map; [`evict`] decides what gives way when a share
//! is full.

mod books;
mod evict;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use self::books::Books;
use super::assembler::ReassemblyStats;
use super::conn::{Conn, TcpState};
use super::key::Endpoint;
use crate::budget::{self, Budget};
use crate::decode::{Segment, flags};
use crate::event::{EndReason, Event};
use crate::time::Ts;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Live connections at most, besides what the memory budget allows
    /// (the smaller wins). New ones beyond take the place of others, as
    /// the budget's do.
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
    /// The memory budget for all flow state, in bytes (`--memcap`).
    pub memcap: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_flows: usize::MAX,
            idle_timeout_s: 7200.0,
            syn_timeout_s: 30.0,
            linger_s: 5.0,
            verbose: false,
            memcap: budget::DEFAULT_MEMCAP,
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct FlowStats {
    /// TCP segments the table took.
    pub packets: u64,
    /// Connections seen (each reuse of a 4-tuple counts).
    pub flows: u64,
    pub live_max: u64,
    /// RST or stray ACK for a connection never seen: not tracked.
    pub strays: u64,
    pub reassembly: ReassemblyStats,
    /// TLS connections, decrypted or not and why (ended connections).
    pub tls: crate::proto::tls::TlsStats,
    /// HTTP/2 connections (ended connections).
    pub h2: crate::proto::h2::H2Stats,
}

impl FlowStats {
    /// Adds another table's counters (flow-sharded workers' sums).
    pub fn add(&mut self, t: &FlowStats) {
        self.packets += t.packets;
        self.flows += t.flows;
        self.live_max += t.live_max;
        self.strays += t.strays;
        let (r, q) = (&mut self.reassembly, &t.reassembly);
        r.gaps += q.gaps;
        r.gap_bytes += q.gap_bytes;
        r.retransmits += q.retransmits;
        r.keepalives += q.keepalives;
        r.out_of_order += q.out_of_order;
        r.limit_hits += q.limit_hits;
        r.rexmit_inconsistent += q.rexmit_inconsistent;
        self.tls.add(&t.tls);
        self.h2.add(&t.h2);
    }
}

type Key = (Endpoint, Endpoint);

/// A table's numbers at one instant ([`FlowTable::counts`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct TableCounts {
    pub stats: FlowStats,
    pub mem: crate::budget::MemStats,
    /// Bytes charged: the table, per-connection state, buffers; the peak.
    pub table: u64,
    pub state: u64,
    pub buffers: u64,
    pub peak: u64,
    /// Live connections per class ([`FlowTable::class_counts`]).
    pub classes: [usize; 3],
    pub max_flows: usize,
}

/// A live connection's (or HTTP/2 stream's) WebSocket activity, copied:
/// ((canonical 4-tuple, connection id), activity).
pub type Activity = ((Key, u64), crate::proto::activity::WsActivity);

/// The flow table's map: its hash is keyed with a random seed
/// ([`super::key::KeyedHash`]); the end of input sorts its connections by
/// id, so the output does not depend on the seed.
pub type FlowMap<V> = super::key::KeyedMap<Key, V>;

/// Connections live inline in the map's buckets: the lookup that finds a
/// connection also brings its first cache lines in (one miss, not two).
pub struct FlowTable {
    map: FlowMap<Conn>,
    books: Books,
    next_id: u64,
    next_sweep: Option<Ts>,
    /// When set (flow-sharded workers), `(connection id, index in out)`
    /// before each connection expiry or the end closes: the correlator
    /// merges workers' closes in id order, as one table closes them.
    pub marks: Option<Vec<(u64, usize)>>,
    limits: Limits,
    /// Connections the table may hold (budget and limits).
    max_flows: usize,
    /// The table's capacity when last measured.
    capacity: usize,
    pub stats: FlowStats,
    /// Flow-sharded workers: each worker's table as last taken in
    /// ([`Self::mirror`], [`Self::absorb`]); empty for a table that
    /// follows packets itself.
    parts: Vec<TableCounts>,
    /// Session keys for TLS connections (key logs, pcapng secrets).
    keys: crate::proto::tls::Keys,
    keys_generation: u64,
}

const SWEEP_EVERY_S: f64 = 10.0;
/// A TLS connection that ended on the wire while its records wait for keys
/// from a live key log waits this long (packet time) at least, and until
/// the next sweep at most, before it ends without them: as long as the
/// correlator waits for a TLS client hop (correlate/requests.rs `DEFER_S`).
const KEY_WAIT_S: f64 = 2.0;

impl FlowTable {
    pub fn new(limits: Limits) -> FlowTable {
        let budget = Budget::new(limits.memcap);
        let max_flows = budget.max_flows.min(limits.max_flows).max(1);
        FlowTable {
            map: FlowMap::default(),
            books: Books {
                closing: VecDeque::new(),
                queues: Default::default(),
                counts: [0; 3],
                holders: Default::default(),
                holding: 0,
                compact: [false; 3],
                compact_holders: false,
                compact_waiting: false,
                maintenance: false,
                scratch: Vec::new(),
                waiting_keys: Vec::new(),
                waiting_count: 0,
                next_due: Ts(i64::MIN),
                linger_s: limits.linger_s,
                budget,
            },
            next_id: 1,
            next_sweep: None,
            marks: None,
            limits,
            max_flows,
            capacity: 0,
            stats: FlowStats::default(),
            parts: Vec::new(),
            keys: Default::default(),
            keys_generation: 0,
        }
    }

    /// The session keys TLS connections are decrypted with.
    pub fn keys(&self) -> &crate::proto::tls::Keys {
        &self.keys
    }

    /// Shares another table's key store (flow-sharded workers).
    pub fn share_keys(&mut self, keys: crate::proto::tls::Keys) {
        self.keys = keys;
    }

    /// The id the next connection gets: the number of the packet that
    /// creates it (a packet creates one connection at most), so that ids
    /// are the same however the connections are spread over workers, and
    /// still grow in creation order.
    #[inline(always)]
    pub fn number_next(&mut self, packet_no: u64) {
        self.next_id = packet_no;
    }

    pub fn live(&self) -> usize {
        self.map.len()
    }

    /// The memory budget: limits, what is charged, what was given up.
    pub fn budget(&self) -> &Budget {
        &self.books.budget
    }

    /// Charges (or, negative, releases) buffers held outside the table (IP
    /// fragments), against the same budget.
    pub fn charge_buffers(&mut self, delta: i64) {
        let b = &mut self.books.budget;
        b.buffers = b.buffers.saturating_add_signed(delta);
        b.note_peak();
    }

    /// Live connections per class: (seen one way only, established, upgraded).
    pub fn class_counts(&self) -> [usize; 3] {
        self.books.counts
    }

    /// Takes in what flow-sharded workers' tables counted, for the
    /// summary (this table followed no packet itself): counters summed,
    /// connections held at most summed, and the peak charged the sum of
    /// each worker's own peak (reached at different times: an upper bound
    /// of the whole's).
    pub fn absorb(&mut self, workers: &[FlowTable]) {
        self.max_flows = 0;
        self.books.budget.peak = 0;
        self.parts = workers.iter().map(FlowTable::counts).collect();
        for o in workers {
            self.stats.add(&o.stats);
            self.max_flows += o.max_flows;
            let (b, c) = (&mut self.books.budget, &o.books.budget);
            b.peak += c.peak;
            b.stats.add(&c.stats);
        }
    }

    /// Copies of the WebSocket activity of every live connection (and
    /// HTTP/2 stream) that has some, keyed as [`Self::get`] finds them
    /// (HTTP/2 streams by `h2::stream_conn`): flow-sharded live capture
    /// hands them to the correlator at each tick, for the open sessions'
    /// rows.
    pub fn activities(&self, out: &mut Vec<Activity>) {
        for (k, c) in &self.map {
            if let Some(a) = c.activity() {
                out.push(((*k, c.id), a.clone()));
            }
            for (stream, a) in c.stream_activities() {
                out.push(((*k, crate::proto::h2::stream_conn(c.id, stream)), a.clone()));
            }
        }
    }

    /// What this table counts and holds now (a flow-sharded worker's part
    /// of the runtime numbers; [`Self::mirror`] sums them).
    pub fn counts(&self) -> TableCounts {
        let b = &self.books.budget;
        TableCounts {
            stats: self.stats,
            mem: b.stats,
            table: b.table,
            state: b.state,
            buffers: b.buffers,
            peak: b.peak,
            classes: self.books.counts,
            max_flows: self.max_flows,
        }
    }

    /// Flow-sharded live capture: this table, which follows no packet
    /// itself, takes the workers' tables' numbers as they are now, so that
    /// what reads a table's numbers (its stats, budget, class counts,
    /// connections held at most) reads their sums: counters and levels
    /// summed, the peak the sum of each worker's own peak (an upper bound of
    /// the whole's, as in the summary). Its own connections: none.
    pub fn mirror(&mut self, parts: &[TableCounts]) {
        self.parts.clear();
        self.parts.extend_from_slice(parts);
        let mut s = FlowStats::default();
        let b = &mut self.books.budget;
        (b.table, b.state, b.buffers, b.peak) = (0, 0, 0, 0);
        b.stats = Default::default();
        self.books.counts = [0; 3];
        self.max_flows = 0;
        for p in parts {
            s.add(&p.stats);
            b.table += p.table;
            b.state += p.state;
            b.buffers += p.buffers;
            b.peak += p.peak;
            b.stats.add(&p.mem);
            for (c, n) in self.books.counts.iter_mut().zip(p.classes) {
                *c += n;
            }
            self.max_flows += p.max_flows;
        }
        self.stats = s;
    }

    /// Each analysis worker's table (flow-sharded workers, as last taken
    /// in), or this one's alone: worker 0.
    pub fn workers(&self) -> Vec<TableCounts> {
        if self.parts.is_empty() { vec![self.counts()] } else { self.parts.clone() }
    }

    /// Connections the table holds at most.
    pub fn max_flows(&self) -> usize {
        self.max_flows
    }

    /// A live connection by flow and id (the id guards against a reused
    /// 4-tuple).
    pub fn get(&self, flow: crate::flow::FlowKey, id: u64) -> Option<&Conn> {
        self.map.get(&flow.canonical()).filter(|c| c.id == id)
    }

    /// A live connection by flow and the low 32 bits of its id (what an
    /// HTTP/2 stream's id holds of its connection's: `h2::stream_conn`).
    pub fn get_low(&self, flow: crate::flow::FlowKey, low: u32) -> Option<&Conn> {
        self.map.get(&flow.canonical()).filter(|c| c.id as u32 == low)
    }

    #[inline(always)]
    pub fn packet(&mut self, ts: Ts, seg: &Segment<'_>, out: &mut Vec<Event>) {
        self.stats.packets += 1;
        self.expire(ts, out);
        let key = canonical(seg);
        // The common case, one lookup: a packet of a known connection.
        if let Some(conn) = self.map.get_mut(&key) {
            if !conn.is_reused_by(seg) {
                conn.segment(ts, seg, out, &mut self.books.scratch);
                let data = !seg.payload.is_empty();
                if data {
                    conn.referenced = true;
                }
                let touched =
                    data || seg.flags & (flags::SYN | flags::FIN | flags::RST) != 0 || conn.charged_buffers != 0;
                self.books.settle(conn, key, ts, touched);
                self.after_packet(ts, out);
                return;
            }
            // A new connection on the same 4-tuple.
            conn.close(ts, EndReason::Closed, out, &mut self.books.scratch);
            self.remove(&key);
        } else if seg.has(flags::RST) || (seg.payload.is_empty() && !seg.has(flags::SYN) && !seg.has(flags::FIN)) {
            self.stats.strays += 1;
            return;
        }
        self.new_connection(ts, seg, key, out);
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
        let waiting = std::mem::take(&mut self.books.waiting_keys);
        self.books.waiting_count = 0;
        for (key, id) in waiting {
            let Some(c) = self.map.get_mut(&key).filter(|c| c.id == id && c.waiting_keys) else { continue };
            c.keys_changed(ts, out, &mut self.books.scratch);
            if c.holds_for_keys() {
                self.books.waiting_keys.push((key, id));
                self.books.waiting_count += 1;
            } else {
                c.waiting_keys = false;
            }
            self.books.settle(c, key, ts, true);
        }
        self.after_packet(ts, out);
    }

    /// The first packet of a connection not in the table.
    #[inline(never)]
    fn new_connection(&mut self, ts: Ts, seg: &Segment<'_>, key: Key, out: &mut Vec<Event>) {
        if !self.admit(ts, out) {
            self.books.budget.stats.dropped += 1;
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.stats.flows += 1;
        self.map.insert(key, Conn::new(id, ts, seg, self.limits.verbose, &self.keys, out));
        self.stats.live_max = self.stats.live_max.max(self.map.len() as u64);
        if self.map.capacity() != self.capacity {
            self.capacity = self.map.capacity();
            self.books.budget.table = self.books.budget.table.max(Budget::table_bytes(self.capacity));
        }
        let Some(conn) = self.map.get_mut(&key) else { return };
        conn.segment(ts, seg, out, &mut self.books.scratch);
        self.books.settle(conn, key, ts, true);
        self.books.budget.note_peak();
        self.after_packet(ts, out);
    }

    /// After a packet: give memory back if a share is over, and compact
    /// queues that hold more stale entries than live ones.
    #[inline(always)]
    fn after_packet(&mut self, ts: Ts, out: &mut Vec<Event>) {
        if self.books.budget.over() {
            self.relieve(ts, out);
        }
        if self.books.maintenance {
            self.compact();
        }
    }

    fn remove(&mut self, key: &Key) {
        if let Some(c) = self.map.remove(key) {
            c.add_reassembly_stats(&mut self.stats.reassembly);
            if let Some(t) = c.tls_stats() {
                self.stats.tls.add(&t);
            }
            if let Some(h) = c.h2_stats() {
                self.stats.h2.add(&h);
            }
            self.books.release(&c);
        }
    }

    /// Expires connections by packet time: lingering closed ones, idle ones
    /// and unanswered SYNs.
    #[inline]
    pub fn expire(&mut self, now: Ts, out: &mut Vec<Event>) {
        if !self.books.waiting_keys.is_empty() {
            self.keys_arrived(now, out);
        }
        if now < self.books.next_due {
            return;
        }
        self.expire_due(now, out);
        let linger_end = self.books.closing.front().map(|c| c.0.add_secs(self.limits.linger_s));
        self.books.next_due = match (linger_end, self.next_sweep) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(now),
        };
    }

    fn expire_due(&mut self, now: Ts, out: &mut Vec<Event>) {
        while let Some(&(t, key, id)) = self.books.closing.front() {
            if now.0 - t.0 < (self.limits.linger_s * 1e6) as i64 {
                break;
            }
            self.books.closing.pop_front();
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
                !c.is_closed()
                    && ((c.state() == TcpState::SynSent && quiet >= syn_t)
                        || quiet >= idle_t
                        || c.end_waiting_for_keys().is_some_and(|(t, _)| now.since(t) >= KEY_WAIT_S))
            })
            .map(|(k, c)| (c.id, *k))
            .collect();
        ended.sort_unstable();
        for (id, key) in ended {
            if let Some(m) = &mut self.marks {
                m.push((id, out.len()));
            }
            if let Some(c) = self.map.get_mut(&key) {
                // Ended on the wire (FINs or a RST), its records still
                // waiting for keys that did not come: it ends as it ended,
                // records unread.
                if let Some((at, reason)) = c.end_waiting_for_keys().filter(|(t, _)| now.since(*t) >= KEY_WAIT_S) {
                    c.close(at, reason, out, &mut self.books.scratch);
                    self.remove(&key);
                    continue;
                }
                let quiet = now.since(c.last_ts);
                let (reason, after) = if c.state() == TcpState::SynSent && quiet >= self.limits.syn_timeout_s {
                    (EndReason::Unanswered, self.limits.syn_timeout_s)
                } else {
                    (EndReason::Idle, self.limits.idle_timeout_s)
                };
                let at = c.last_ts.add_secs(after);
                c.close(at.min(now), reason, out, &mut self.books.scratch);
            }
            self.remove(&key);
        }
    }

    /// End of input: every live connection ends, in creation order.
    pub fn finish(&mut self, now: Ts, out: &mut Vec<Event>) {
        let mut live: Vec<(u64, Key)> = self.map.iter().map(|(k, c)| (c.id, *k)).collect();
        live.sort_unstable();
        for (id, key) in live {
            if let Some(m) = &mut self.marks {
                m.push((id, out.len()));
            }
            if let Some(c) = self.map.get_mut(&key) {
                c.close(now, EndReason::EndOfCapture, out, &mut self.books.scratch);
            }
            self.remove(&key);
        }
        self.books.closing.clear();
        for q in &mut self.books.queues {
            q.clear();
        }
        for q in &mut self.books.holders {
            q.clear();
        }
    }
}

fn canonical(seg: &Segment<'_>) -> Key {
    if seg.src <= seg.dst { (seg.src, seg.dst) } else { (seg.dst, seg.src) }
}
