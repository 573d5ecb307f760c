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
    limits: Limits,
    pub stats: FlowStats,
}

const SWEEP_EVERY_S: f64 = 10.0;

impl FlowTable {
    pub fn new(limits: Limits) -> FlowTable {
        FlowTable {
            map: FxHashMap::default(),
            closing: VecDeque::new(),
            next_id: 1,
            next_sweep: None,
            limits,
            stats: FlowStats::default(),
        }
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
        let reused = match self.map.get_mut(&key) {
            Some(conn) => {
                if conn.is_reused_by(seg) {
                    conn.close(ts, EndReason::Closed, out);
                    true
                } else {
                    false
                }
            }
            None => {
                if seg.has(flags::RST) || (seg.payload.is_empty() && !seg.has(flags::SYN) && !seg.has(flags::FIN)) {
                    self.stats.strays += 1;
                    return;
                }
                if !self.create(ts, seg, key) {
                    return;
                }
                false
            }
        };
        if reused {
            self.remove(&key);
            if !self.create(ts, seg, key) {
                return;
            }
        }
        let Some(conn) = self.map.get_mut(&key) else { return };
        let was_closed = conn.is_closed();
        conn.segment(ts, seg, out);
        if !was_closed && conn.is_closed() {
            self.closing.push_back((ts, key, conn.id));
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
        self.map.insert(key, Conn::new(id, ts, seg, self.limits.verbose));
        self.stats.live_max = self.stats.live_max.max(self.map.len() as u64);
        true
    }

    fn remove(&mut self, key: &Key) {
        if let Some(c) = self.map.remove(key) {
            self.stats.reassembly.add(&c.reassembly_stats());
        }
    }

    /// Expires connections by packet time: lingering closed ones, idle ones
    /// and unanswered SYNs.
    pub fn expire(&mut self, now: Ts, out: &mut Vec<Event>) {
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
