//! Requests awaiting their response, indexed the ways a forwarded request
//! can point at its client-side original: by Sec-WebSocket-Key, by the
//! address it arrived at (the proxy connects out from there), and by its
//! client's address (X-Forwarded-For names it). Finding a parent looks at
//! these candidates only, so pairing costs the same with ten or ten
//! thousand requests in flight.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::txn::{Txn, TxnId};
use crate::flow::key::FxHashMap;

/// Candidates looked at per request, at most (per index).
const MAX_PER_BUCKET: usize = 1024;

#[derive(Default)]
pub struct OpenIndex {
    all: BTreeSet<TxnId>,
    by_key: FxHashMap<String, Vec<TxnId>>,
    by_dst_ip: FxHashMap<IpAddr, Vec<TxnId>>,
    by_src_ip: FxHashMap<IpAddr, Vec<TxnId>>,
}

fn add<K: std::hash::Hash + Eq>(m: &mut FxHashMap<K, Vec<TxnId>>, k: K, id: TxnId) {
    m.entry(k).or_default().push(id);
}

fn del<K: std::hash::Hash + Eq + std::borrow::Borrow<Q>, Q: std::hash::Hash + Eq + ?Sized>(
    m: &mut FxHashMap<K, Vec<TxnId>>,
    k: &Q,
    id: TxnId,
) {
    if let Some(v) = m.get_mut(k) {
        if let Some(i) = v.iter().rposition(|&x| x == id) {
            v.swap_remove(i);
        }
        if v.is_empty() {
            m.remove(k);
        }
    }
}

impl OpenIndex {
    pub fn len(&self) -> usize {
        self.all.len()
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    pub fn insert(&mut self, t: &Txn) {
        self.all.insert(t.id);
        if let Some(k) = t.req.headers.get("sec-websocket-key") {
            add(&mut self.by_key, k.to_string(), t.id);
        }
        add(&mut self.by_dst_ip, t.flow.dst.ip, t.id);
        add(&mut self.by_src_ip, t.flow.src.ip, t.id);
    }

    pub fn remove(&mut self, t: &Txn) {
        if !self.all.remove(&t.id) {
            return;
        }
        if let Some(k) = t.req.headers.get("sec-websocket-key") {
            del(&mut self.by_key, k, t.id);
        }
        del(&mut self.by_dst_ip, &t.flow.dst.ip, t.id);
        del(&mut self.by_src_ip, &t.flow.src.ip, t.id);
    }

    /// Open requests carrying the same Sec-WebSocket-Key as `child`: when
    /// one of them pairs, no other candidate can score higher.
    pub fn same_key(&self, child: &Txn) -> Vec<TxnId> {
        let key = child.req.headers.get("sec-websocket-key");
        key.and_then(|k| self.by_key.get(k))
            .map(|v| v.iter().rev().take(MAX_PER_BUCKET).copied().collect())
            .unwrap_or_default()
    }

    /// Open requests `child` could have been forwarded from.
    pub fn candidates(&self, child: &Txn) -> Vec<TxnId> {
        let mut out: Vec<TxnId> = self.same_key(child);
        let mut take = |v: Option<&Vec<TxnId>>| {
            if let Some(v) = v {
                out.extend(v.iter().rev().take(MAX_PER_BUCKET));
            }
        };
        take(self.by_dst_ip.get(&child.flow.src.ip));
        for ip in super::pair::forwarded_ips(&child.req) {
            take(self.by_src_ip.get(&ip));
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Every open request, oldest first, removing them.
    pub fn drain(&mut self) -> Vec<TxnId> {
        let v: Vec<TxnId> = std::mem::take(&mut self.all).into_iter().collect();
        self.by_key.clear();
        self.by_dst_ip.clear();
        self.by_src_ip.clear();
        v
    }
}
