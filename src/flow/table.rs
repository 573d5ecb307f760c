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

pub struct FlowTable {
    map: FxHashMap<Key, usize>,
    slots: Vec<Option<Conn>>,
    free: Vec<usize>,
    /// Closed connections waiting out their linger time, in close order.
    closing: VecDeque<(Ts, usize, u64)>,
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
            slots: Vec::new(),
            free: Vec::new(),
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
        let slot = *self.map.get(&flow.canonical())?;
        self.slots[slot].as_ref().filter(|c| c.id == id)
    }

    pub fn packet(&mut self, ts: Ts, seg: &Segment<'_>, out: &mut Vec<Event>) {
        self.expire(ts, out);
        let key = canonical(seg);
        let slot = match self.map.get(&key) {
            Some(&s) => {
                let conn = self.slots[s].as_mut().expect("mapped slot is live");
                if conn.is_reused_by(seg) {
                    conn.close(ts, EndReason::Closed, out);
                    self.remove(s);
                    match self.create(ts, seg, key) {
                        Some(s) => s,
                        None => return,
                    }
                } else {
                    s
                }
            }
            None => {
                if seg.has(flags::RST) || (seg.payload.is_empty() && !seg.has(flags::SYN) && !seg.has(flags::FIN)) {
                    self.stats.strays += 1;
                    return;
                }
                match self.create(ts, seg, key) {
                    Some(s) => s,
                    None => return,
                }
            }
        };
        let conn = self.slots[slot].as_mut().expect("live slot");
        let was_closed = conn.is_closed();
        conn.segment(ts, seg, out);
        if !was_closed && conn.is_closed() {
            self.closing.push_back((ts, slot, conn.id));
        }
    }

    fn create(&mut self, ts: Ts, seg: &Segment<'_>, key: Key) -> Option<usize> {
        if self.map.len() >= self.limits.max_flows {
            self.stats.flow_limit_drops += 1;
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.stats.flows += 1;
        let conn = Conn::new(id, ts, seg, self.limits.verbose);
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s] = Some(conn);
                s
            }
            None => {
                self.slots.push(Some(conn));
                self.slots.len() - 1
            }
        };
        self.map.insert(key, slot);
        self.stats.live_max = self.stats.live_max.max(self.map.len() as u64);
        Some(slot)
    }

    fn remove(&mut self, slot: usize) {
        if let Some(c) = self.slots[slot].take() {
            self.stats.reassembly.add(&c.reassembly_stats());
            self.map.remove(&(c.key.src.min(c.key.dst), c.key.src.max(c.key.dst)));
            self.free.push(slot);
        }
    }

    /// Expires connections by packet time: lingering closed ones, idle ones
    /// and unanswered SYNs.
    pub fn expire(&mut self, now: Ts, out: &mut Vec<Event>) {
        while let Some(&(t, slot, id)) = self.closing.front() {
            if now.0 - t.0 < (self.limits.linger_s * 1e6) as i64 {
                break;
            }
            self.closing.pop_front();
            if self.slots[slot].as_ref().is_some_and(|c| c.id == id) {
                self.remove(slot);
            }
        }
        let due = *self.next_sweep.get_or_insert(now.add_secs(SWEEP_EVERY_S));
        if now < due {
            return;
        }
        self.next_sweep = Some(now.add_secs(SWEEP_EVERY_S));
        for slot in 0..self.slots.len() {
            let Some(c) = self.slots[slot].as_mut() else { continue };
            if c.is_closed() {
                continue;
            }
            let quiet = now.since(c.last_ts);
            let reason = if c.state == TcpState::SynSent && quiet >= self.limits.syn_timeout_s {
                EndReason::Unanswered
            } else if quiet >= self.limits.idle_timeout_s {
                EndReason::Idle
            } else {
                continue;
            };
            let at = c.last_ts.add_secs(if reason == EndReason::Idle {
                self.limits.idle_timeout_s
            } else {
                self.limits.syn_timeout_s
            });
            c.close(at.min(now), reason, out);
            self.remove(slot);
        }
    }

    /// End of input: every live connection ends, in creation order.
    pub fn finish(&mut self, now: Ts, out: &mut Vec<Event>) {
        let mut live: Vec<usize> = (0..self.slots.len()).filter(|&s| self.slots[s].is_some()).collect();
        live.sort_by_key(|&s| self.slots[s].as_ref().map(|c| c.id));
        for s in live {
            if let Some(c) = self.slots[s].as_mut() {
                c.close(now, EndReason::EndOfCapture, out);
            }
            self.remove(s);
        }
        self.closing.clear();
    }
}

fn canonical(seg: &Segment<'_>) -> Key {
    if seg.src <= seg.dst { (seg.src, seg.dst) } else { (seg.dst, seg.src) }
}
