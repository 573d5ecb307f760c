//! The table's bookkeeping for the memory budget, apart from the map so
//! that a connection found by one lookup can update it: each connection's
//! eviction class and charges, the queues eviction takes from, the
//! connections holding buffers or waiting for TLS keys.

use std::collections::VecDeque;

use super::Key;
use crate::budget::{Budget, Class};
use crate::flow::conn::Conn;
use crate::proto::ProtoEvent;
use crate::time::Ts;

/// The table's bookkeeping, apart from the map so that a connection found
/// by one lookup can update it.
pub(super) struct Books {
    /// Closed connections waiting out their linger time, in close order.
    pub(super) closing: VecDeque<(Ts, Key, u64)>,
    /// Per class, connections in the order they entered it.
    pub(super) queues: [VecDeque<(Key, u64)>; 3],
    /// Live (not closed) connections per class.
    pub(super) counts: [usize; 3],
    /// Connections holding buffers, in the order they started to: small
    /// holders (a pending request, a short hole) and big ones (at least
    /// [`BIG_HOLDER`] bytes), given up first.
    pub(super) holders: [VecDeque<(Key, u64)>; 2],
    pub(super) holding: usize,
    /// Queues with too many stale entries, compacted after the packet.
    pub(super) compact: [bool; 3],
    pub(super) compact_holders: bool,
    pub(super) compact_waiting: bool,
    /// Something to compact (one flag to look at per packet).
    pub(super) maintenance: bool,
    /// What the analyzers produce while a connection is processed.
    pub(super) scratch: Vec<ProtoEvent>,
    /// Connections holding TLS records for their keys, looked at when the
    /// key store changes (live key log, pcapng secrets). A connection is
    /// listed once (its `waiting_keys` flag); entries of connections gone
    /// are dropped when they outnumber the live ones.
    pub(super) waiting_keys: Vec<(Key, u64)>,
    pub(super) waiting_count: usize,
    pub(super) next_due: Ts,
    pub(super) linger_s: f64,
    pub(super) budget: Budget,
}

/// A connection holding this much is a big holder: its buffers are given
/// up before any small holder's (a long-poll's pending request must not
/// pay for a connection hoarding megabytes).
pub(super) const BIG_HOLDER: u32 = 16 * 1024;

impl Books {
    /// Brings a connection's class, queues and charges up to date after
    /// it was processed: a few compares of fields of the connection itself
    /// when nothing changed (the common case). `touched`: the packet could
    /// have changed what the connection buffers (it carried data or a
    /// SYN, FIN or RST, or the connection holds buffers an ACK may free).
    #[inline(always)]
    pub(super) fn settle(&mut self, c: &mut Conn, key: Key, ts: Ts, touched: bool) {
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

    pub(super) fn enqueue(&mut self, class: Class, key: Key, id: u64) {
        let q = &mut self.queues[class as usize];
        q.push_back((key, id));
        if q.len() > 2 * self.counts[class as usize] + 1024 {
            self.compact[class as usize] = true;
            self.maintenance = true;
        }
    }

    /// Takes back a connection's charges as it leaves the table.
    pub(super) fn release(&mut self, c: &Conn) {
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
