//! What gives way when a share of the budget is full.
//!
//! Eviction order, cheapest loss first: connections already closed (they
//! only linger for late packets), then connections seen in one direction
//! only (unanswered SYNs, oldest first: a SYN flood displaces only itself),
//! then established connections, then upgraded WebSockets, both least
//! recently active first (a queue per class in which a connection that had
//! data since it was last looked at gets a second chance, the "clock"
//! approximation of LRU). Buffers are given up by their oldest big holders
//! first, then the oldest small ones. Every step is O(1) amortised: queues
//! are appended when a connection enters a class, stale entries are skipped
//! when met and compacted away when they outnumber live ones.

use super::books::BIG_HOLDER;
use super::{FlowTable, Key};
use crate::budget::{self, Class};
use crate::event::{EndReason, Event};
use crate::time::Ts;

impl FlowTable {
    /// Makes room for one more connection (a new one is always seen in one
    /// direction only): lingering closed connections go first, then the
    /// oldest one-way connections; only when there is none of those (no SYN
    /// flood is going on), the least recently active established, then
    /// upgraded, connection. False: no room.
    pub(super) fn admit(&mut self, ts: Ts, out: &mut Vec<Event>) -> bool {
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
    pub(super) fn relieve(&mut self, ts: Ts, out: &mut Vec<Event>) {
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
    pub(super) fn compact(&mut self) {
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
}
