//! The flow table: owns live connections, keyed by 4-tuple, and expires them
//! by packet time. Memory is bounded by the budget ([`crate::budget`]):
//! the number of connections, their state and their buffers each have a
//! share, and when one is full the least valuable state goes first, every
//! time counted.
//!
//! Eviction order, cheapest loss first: connections already closed (they
//! only linger for late packets), then connections seen in one direction
//! only (unanswered SYNs, oldest first: a SYN flood displaces only itself),
//! then established connections, then upgraded WebSockets, both least
//! recently active first (a queue per class in which a connection that had
//! data since it was last looked at gets a second chance, the "clock"
//! approximation of LRU). Buffers are given up by their oldest big holders
//! first, then the oldest small ones. Every step is O(1) amortised: queues are appended when a
//! connection enters a class, stale entries are skipped when met and
//! compacted away when they outnumber live ones.

use std::collections::VecDeque;

use super::assembler::ReassemblyStats;
use super::conn::{Conn, TcpState};
use super::key::{Endpoint, FxHashMap};
use crate::budget::{self, Budget, Class};
use crate::decode::{Segment, flags};
use crate::event::{EndReason, Event};
use crate::proto::ProtoEvent;
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

type Key = (Endpoint, Endpoint);

/// The table's bookkeeping, apart from the map so that a connection found
/// by one lookup can update it.
struct Books {
    /// Closed connections waiting out their linger time, in close order.
    closing: VecDeque<(Ts, Key, u64)>,
    /// Per class, connections in the order they entered it.
    queues: [VecDeque<(Key, u64)>; 3],
    /// Live (not closed) connections per class.
    counts: [usize; 3],
    /// Connections holding buffers, in the order they started to: small
    /// holders (a pending request, a short hole) and big ones (at least
    /// [`BIG_HOLDER`] bytes), given up first.
    holders: [VecDeque<(Key, u64)>; 2],
    holding: usize,
    /// Queues with too many stale entries, compacted after the packet.
    compact: [bool; 3],
    compact_holders: bool,
    compact_waiting: bool,
    /// Something to compact (one flag to look at per packet).
    maintenance: bool,
    /// What the analyzers produce while a connection is processed.
    scratch: Vec<ProtoEvent>,
    /// Connections holding TLS records for their keys, looked at when the
    /// key store changes (live key log, pcapng secrets). A connection is
    /// listed once (its `waiting_keys` flag); entries of connections gone
    /// are dropped when they outnumber the live ones.
    waiting_keys: Vec<(Key, u64)>,
    waiting_count: usize,
    next_due: Ts,
    linger_s: f64,
    budget: Budget,
}

/// Connections live inline in the map's buckets: the lookup that finds a
/// connection also brings its first cache lines in (one miss, not two).
pub struct FlowTable {
    map: FxHashMap<Key, Conn>,
    books: Books,
    next_id: u64,
    next_sweep: Option<Ts>,
    limits: Limits,
    /// Connections the table may hold (budget and limits).
    max_flows: usize,
    /// The table's capacity when last measured.
    capacity: usize,
    pub stats: FlowStats,
    /// Session keys for TLS connections (key logs, pcapng secrets).
    keys: crate::proto::tls::Keys,
    keys_generation: u64,
}

const SWEEP_EVERY_S: f64 = 10.0;

/// A connection holding this much is a big holder: its buffers are given
/// up before any small holder's (a long-poll's pending request must not
/// pay for a connection hoarding megabytes).
const BIG_HOLDER: u32 = 16 * 1024;

impl Books {
    /// Brings a connection's class, queues and charges up to date after
    /// it was processed: a few compares of fields of the connection itself
    /// when nothing changed (the common case). `touched`: the packet could
    /// have changed what the connection buffers (it carried data or a
    /// SYN, FIN or RST, or the connection holds buffers an ACK may free).
    #[inline(always)]
    fn settle(&mut self, c: &mut Conn, key: Key, ts: Ts, touched: bool) {
        // An upgraded connection only changes by closing; an established
        // one by upgrading or a new parser; a one-way one by an answer.
        let stable = c.counted
            && !c.is_closed()
            && match c.class {
                Class::Upgraded => true,
                Class::Established => !c.is_websocket() && c.state_cost() == c.charged_state as u64,
                Class::Unconfirmed => false,
            };
        if !stable {
            self.settle_state(c, key, ts);
        }
        if touched {
            if !c.waiting_keys && c.holds_for_keys() {
                self.note_waiting(c, key);
            }
            let buf = c.buffered().min(u32::MAX as u64) as u32;
            if buf != c.charged_buffers {
                self.settle_buffers(c, key, buf);
            }
        }
    }

    /// The connection changed class or kind (or closed).
    #[cold]
    fn settle_state(&mut self, c: &mut Conn, key: Key, ts: Ts) {
        if c.is_closed() {
            if c.counted {
                c.counted = false;
                self.counts[c.class as usize] -= 1;
                self.closing.push_back((ts, key, c.id));
                self.next_due = self.next_due.min(ts.add_secs(self.linger_s));
            }
        } else {
            let class = c.current_class();
            if class != c.class || !c.counted {
                if c.counted {
                    self.counts[c.class as usize] -= 1;
                }
                c.class = class;
                c.counted = true;
                self.counts[class as usize] += 1;
                self.enqueue(class, key, c.id);
            }
        }
        let st = c.state_cost() as u32;
        if st != c.charged_state {
            self.budget.state = self.budget.state + st as u64 - c.charged_state as u64;
            c.charged_state = st;
            self.budget.note_peak();
        }
    }

    /// What the connection buffers changed.
    fn settle_buffers(&mut self, c: &mut Conn, key: Key, buf: u32) {
        self.budget.buffers = self.budget.buffers + buf as u64 - c.charged_buffers as u64;
        c.charged_buffers = buf;
        let tier = if buf >= BIG_HOLDER { 2 } else { u8::from(buf > 0) };
        if tier > c.holding && !c.is_closed() {
            if c.holding == 0 {
                self.holding += 1;
            }
            c.holding = tier;
            self.holders[tier as usize - 1].push_back((key, c.id));
            if self.holders[0].len() + self.holders[1].len() > 4 * self.holding + 1024 {
                self.compact_holders = true;
                self.maintenance = true;
            }
        }
        self.budget.note_peak();
    }

    /// The connection holds TLS records until its keys arrive.
    #[cold]
    fn note_waiting(&mut self, c: &mut Conn, key: Key) {
        c.waiting_keys = true;
        self.waiting_keys.push((key, c.id));
        self.waiting_count += 1;
        if self.waiting_keys.len() > 2 * self.waiting_count + 1024 {
            self.compact_waiting = true;
            self.maintenance = true;
        }
    }

    fn enqueue(&mut self, class: Class, key: Key, id: u64) {
        let q = &mut self.queues[class as usize];
        q.push_back((key, id));
        if q.len() > 2 * self.counts[class as usize] + 1024 {
            self.compact[class as usize] = true;
            self.maintenance = true;
        }
    }

    /// Takes back a connection's charges as it leaves the table.
    fn release(&mut self, c: &Conn) {
        if c.counted {
            self.counts[c.class as usize] -= 1;
        }
        if c.holding > 0 {
            self.holding -= 1;
        }
        if c.waiting_keys {
            self.waiting_count -= 1;
        }
        self.budget.state -= c.charged_state as u64;
        self.budget.buffers -= c.charged_buffers as u64;
    }
}

impl FlowTable {
    pub fn new(limits: Limits) -> FlowTable {
        let budget = Budget::new(limits.memcap);
        let max_flows = budget.max_flows.min(limits.max_flows).max(1);
        FlowTable {
            map: FxHashMap::default(),
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
            limits,
            max_flows,
            capacity: 0,
            stats: FlowStats::default(),
            keys: Default::default(),
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

    /// Connections the table holds at most.
    pub fn max_flows(&self) -> usize {
        self.max_flows
    }

    /// A live connection by flow and id (the id guards against a reused
    /// 4-tuple).
    pub fn get(&self, flow: crate::flow::FlowKey, id: u64) -> Option<&Conn> {
        self.map.get(&flow.canonical()).filter(|c| c.id == id)
    }

    #[inline(always)]
    pub fn packet(&mut self, ts: Ts, seg: &Segment<'_>, out: &mut Vec<Event>) {
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

    /// Makes room for one more connection (a new one is always seen in one
    /// direction only): lingering closed connections go first, then the
    /// oldest one-way connections; only when there is none of those (no SYN
    /// flood is going on), the least recently active established, then
    /// upgraded, connection. False: no room.
    fn admit(&mut self, ts: Ts, out: &mut Vec<Event>) -> bool {
        loop {
            let b = &self.books.budget;
            let table_full = self.map.len() >= self.max_flows;
            let one_way_full = self.books.counts[Class::Unconfirmed as usize] >= b.unconfirmed_cap();
            let state_full = b.state + budget::PER_CONN > b.state_cap();
            if !table_full && !one_way_full && !state_full {
                return true;
            }
            if (table_full || state_full) && self.drop_lingering() {
                continue;
            }
            if self.evict_one(Class::Unconfirmed, ts, out) {
                continue;
            }
            // No connection seen one way only is left (this is not a SYN
            // flood): the least recently active established connection
            // makes room, or, last, the least recently active upgraded one
            // (new handshakes must still be seen).
            if !one_way_full
                && (self.evict_one(Class::Established, ts, out) || self.evict_one(Class::Upgraded, ts, out))
            {
                continue;
            }
            return false;
        }
    }

    /// A share of the budget is over: buffers are given up by their oldest
    /// holders; state by evicting connections, cheapest first.
    fn relieve(&mut self, ts: Ts, out: &mut Vec<Event>) {
        let mut tries = self.books.holders[0].len() + self.books.holders[1].len() + 1;
        while self.books.budget.buffers > self.books.budget.buffer_cap() && tries > 0 {
            tries -= 1;
            if !self.shed_one(ts, out) {
                break;
            }
        }
        while self.books.budget.state > self.books.budget.state_cap() {
            if !(self.drop_lingering()
                || self.evict_one(Class::Unconfirmed, ts, out)
                || self.evict_one(Class::Established, ts, out)
                || self.evict_one(Class::Upgraded, ts, out))
            {
                break;
            }
        }
    }

    /// Removes the connection closed longest ago (it only lingers for late
    /// packets; nothing is lost).
    fn drop_lingering(&mut self) -> bool {
        while let Some((_, key, id)) = self.books.closing.pop_front() {
            if self.map.get(&key).is_some_and(|c| c.id == id) {
                self.remove(&key);
                return true;
            }
        }
        false
    }

    /// Evicts the next connection of `class`: the oldest one for one-way
    /// connections; for the others the least recently active (one that had
    /// data since it was last looked at goes to the back once).
    fn evict_one(&mut self, class: Class, ts: Ts, out: &mut Vec<Event>) -> bool {
        let mut budget = self.books.queues[class as usize].len() * 2 + 2;
        while budget > 0 {
            budget -= 1;
            let Some((key, id)) = self.books.queues[class as usize].pop_front() else { return false };
            let Some(c) = self.map.get_mut(&key) else { continue };
            if c.id != id || !c.counted || c.class != class {
                continue;
            }
            if class != Class::Unconfirmed && c.referenced {
                c.referenced = false;
                self.books.queues[class as usize].push_back((key, id));
                continue;
            }
            self.evict(key, ts, out);
            return true;
        }
        false
    }

    /// Stops following a connection: it ends (`Close`, reason `evicted`),
    /// its held data is delivered with gaps for the holes, and it leaves
    /// the table.
    fn evict(&mut self, key: Key, ts: Ts, out: &mut Vec<Event>) {
        let Some(c) = self.map.get_mut(&key) else { return };
        let class = c.class;
        c.close(ts, EndReason::Evicted, out, &mut self.books.scratch);
        let e = &mut self.books.budget.stats.evicted;
        match class {
            Class::Unconfirmed => e.half_open += 1,
            Class::Established => e.established += 1,
            Class::Upgraded => e.upgraded += 1,
        }
        self.remove(&key);
    }

    /// The oldest big holder of buffers gives them up (the oldest small
    /// one when no big one is left); one still holding more than
    /// [`budget::SHED_EVICT_BYTES`] (unanswered requests) is evicted, and so
    /// is a small holder that could give nothing up while the buffers are
    /// still over their share.
    fn shed_one(&mut self, ts: Ts, out: &mut Vec<Event>) -> bool {
        for tier in [2u8, 1] {
            while let Some((key, id)) = self.books.holders[tier as usize - 1].pop_front() {
                let Some(c) = self.map.get_mut(&key) else { continue };
                if c.id != id || c.holding != tier {
                    continue;
                }
                if tier == 2 && c.charged_buffers < BIG_HOLDER {
                    // Shrank since: a small holder now.
                    c.holding = u8::from(c.charged_buffers > 0);
                    if c.holding == 1 {
                        self.books.holders[0].push_back((key, id));
                    } else {
                        self.books.holding -= 1;
                    }
                    continue;
                }
                c.holding = 0;
                self.books.holding -= 1;
                let freed = c.shed(ts, out, &mut self.books.scratch);
                self.books.settle(c, key, ts, true);
                let left = c.charged_buffers as u64;
                if freed > 0 {
                    let s = &mut self.books.budget.stats;
                    s.shed_connections += 1;
                    s.shed_bytes += freed;
                }
                let over = self.books.budget.buffers > self.books.budget.buffer_cap();
                if left > budget::SHED_EVICT_BYTES || (left > 0 && over && freed == 0) {
                    self.evict(key, ts, out);
                }
                return true;
            }
        }
        false
    }

    /// Drops stale entries from queues that have more of them than live ones.
    #[cold]
    fn compact(&mut self) {
        self.books.maintenance = false;
        let map = &self.map;
        for class in [Class::Unconfirmed, Class::Established, Class::Upgraded] {
            if std::mem::take(&mut self.books.compact[class as usize]) {
                self.books.queues[class as usize]
                    .retain(|(k, id)| map.get(k).is_some_and(|c| c.id == *id && c.counted && c.class == class));
            }
        }
        if std::mem::take(&mut self.books.compact_waiting) {
            self.books.waiting_keys.retain(|(k, id)| map.get(k).is_some_and(|c| c.id == *id && c.waiting_keys));
        }
        if std::mem::take(&mut self.books.compact_holders) {
            for (i, q) in self.books.holders.iter_mut().enumerate() {
                q.retain(|(k, id)| map.get(k).is_some_and(|c| c.id == *id && c.holding == i as u8 + 1));
            }
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
                !c.is_closed() && ((c.state() == TcpState::SynSent && quiet >= syn_t) || quiet >= idle_t)
            })
            .map(|(k, c)| (c.id, *k))
            .collect();
        ended.sort_unstable();
        for (_, key) in ended {
            if let Some(c) = self.map.get_mut(&key) {
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
        for (_, key) in live {
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
    fn a_full_table_gives_the_oldest_unanswered_syn_up_for_a_new_one() {
        let mut t = FlowTable::new(Limits { max_flows: 2, ..Limits::default() });
        let ev = feed(
            &mut t,
            &[
                seg(C, S, 1, 0, F::SYN, b""),
                seg(S, C, 9, 2, F::SYN | F::ACK, b""),
                seg(([10, 0, 0, 3], 1), S, 1, 0, F::SYN, b""),
                seg(([10, 0, 0, 4], 1), S, 1, 0, F::SYN, b""),
            ],
        );
        assert_eq!(t.live(), 2);
        let e = t.budget().stats.evicted;
        assert_eq!((e.half_open, e.established, e.upgraded), (1, 0, 0));
        let ends: Vec<EndReason> = ev
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Close(s) => Some(s.end),
                _ => None,
            })
            .collect();
        assert_eq!(ends, [EndReason::Evicted]);
        // The established connection is still there; the newest SYN too.
        assert_eq!(t.class_counts(), [1, 1, 0]);
    }

    #[test]
    fn buffers_are_taken_from_big_holders_before_a_pending_request() {
        // 1 MiB budget: a quarter for buffers.
        let mut t = FlowTable::new(Limits { memcap: 1 << 20, ..Limits::default() });
        // An old keep-alive connection with one request awaiting its answer
        // (a long poll): a small holder.
        let lp = ([10, 0, 0, 5], 5000);
        let mut pkts = vec![
            seg(lp, S, 1, 0, F::SYN, b""),
            seg(S, lp, 9, 2, F::SYN | F::ACK, b""),
            seg(lp, S, 2, 10, F::ACK | F::PSH, b"GET /poll HTTP/1.1\r\nHost: x\r\n\r\n"),
        ];
        // Then hogs: data held ahead of a hole, 64 KB each.
        for i in 0..20u8 {
            let h = ([10, 1, 0, i], 6000);
            pkts.push(seg(h, S, 1, 0, F::SYN, b""));
            pkts.push(seg(S, h, 9, 2, F::SYN | F::ACK, b""));
            for k in 0..16u32 {
                pkts.push(seg(h, S, 100 + k * 4000, 10, F::ACK, &[b'x'; 4000]));
            }
        }
        let ev = feed(&mut t, &pkts);
        let b = t.budget();
        assert!(b.buffers <= b.buffer_cap(), "{} over {}", b.buffers, b.buffer_cap());
        assert!(b.stats.shed_connections > 0);
        // The long poll is still followed, its request still waiting.
        let lp_id = opens(&ev).iter().find(|o| o.1.starts_with("10.0.0.5")).unwrap().0;
        assert!(!ev.iter().any(|e| e.conn == lp_id && matches!(e.kind, EventKind::Close(_))));
        assert!(t.map.values().any(|c| c.id == lp_id && c.charged_buffers > 0));
    }

    #[test]
    fn established_connections_outlive_a_syn_flood() {
        let mut t = FlowTable::new(Limits { max_flows: 100, ..Limits::default() });
        let mut pkts = vec![seg(C, S, 1, 0, F::SYN, b""), seg(S, C, 9, 2, F::SYN | F::ACK, b"")];
        for i in 0..10_000u32 {
            pkts.push(seg(([11, (i >> 16) as u8, (i >> 8) as u8, i as u8], 1000), S, i, 0, F::SYN, b""));
        }
        // A real handshake in the middle of the flood is still seen.
        pkts.push(seg(([10, 9, 9, 9], 5555), S, 77, 0, F::SYN, b""));
        for i in 0..40u32 {
            pkts.push(seg(([12, 0, 0, i as u8], 1000), S, i, 0, F::SYN, b""));
        }
        pkts.push(seg(S, ([10, 9, 9, 9], 5555), 500, 78, F::SYN | F::ACK, b""));
        let ev = feed(&mut t, &pkts);
        assert!(t.live() <= 100);
        assert_eq!(t.budget().stats.evicted.established, 0);
        assert!(t.budget().stats.evicted.half_open >= 9_900);
        let established = ev.iter().filter(|e| matches!(e.kind, EventKind::Established)).count();
        assert_eq!(established, 2, "both real handshakes were seen");
        assert_eq!(t.class_counts()[1], 2);
    }
}
