//! Requests awaiting their response, indexed the ways a forwarded request
//! can point at its client-side original: by Sec-WebSocket-Key, by the
//! address it arrived at (the proxy connects out from there), and by its
//! client's address (X-Forwarded-For names it). Finding a parent looks at
//! these candidates only, so pairing costs the same with ten or ten
//! thousand requests in flight.
//!
//! Every operation is O(1) (plus the candidates it returns): each bucket
//! is a doubly linked list threaded through the index's nodes, in arrival
//! order, so a request leaves its buckets without searching them, and the
//! most recent candidates are read from the tail. Requests to the same
//! server endpoint as the request being paired are never its parent
//! (pairing needs another endpoint), so the address buckets are split per
//! endpoint and that one is skipped: a client pipelining thousands of
//! requests into one proxy port does not make each of them look at the
//! others.

use std::net::IpAddr;

use super::txn::{Txn, TxnId};
use crate::flow::key::{Endpoint, FxHashMap};

/// Candidates looked at per request, at most (per index).
const MAX_PER_BUCKET: usize = 1024;
/// Server endpoints looked at per address, at most.
const MAX_ENDPOINTS: usize = 64;

/// No request (ids start at 1).
const NIL: TxnId = 0;

#[derive(Debug, Clone, Copy, Default)]
struct Link {
    prev: TxnId,
    next: TxnId,
}

/// A request's place in its three buckets (key, server endpoint, client).
#[derive(Debug, Default)]
struct Node {
    links: [Link; 3],
}

#[derive(Debug, Clone, Copy, Default)]
struct List {
    head: TxnId,
    tail: TxnId,
    len: usize,
}

const KEY: usize = 0;
const DST: usize = 1;
const SRC: usize = 2;

#[derive(Default)]
pub struct OpenIndex {
    nodes: FxHashMap<TxnId, Node>,
    /// The sender chooses these keys: hashed with a random seed.
    by_key: crate::flow::key::KeyedMap<String, List>,
    by_dst: FxHashMap<Endpoint, List>,
    /// Server endpoints with open requests, per address.
    dst_of_ip: FxHashMap<IpAddr, Vec<Endpoint>>,
    by_src_ip: FxHashMap<IpAddr, List>,
}

impl OpenIndex {
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    fn push(nodes: &mut FxHashMap<TxnId, Node>, list: &mut List, which: usize, id: TxnId) {
        let tail = list.tail;
        if let Some(n) = nodes.get_mut(&id) {
            n.links[which] = Link { prev: tail, next: NIL };
        }
        if tail == NIL {
            list.head = id;
        } else if let Some(t) = nodes.get_mut(&tail) {
            t.links[which].next = id;
        }
        list.tail = id;
        list.len += 1;
    }

    /// Unlinks `id`; true when the list became empty.
    fn unlink(nodes: &mut FxHashMap<TxnId, Node>, list: &mut List, which: usize, id: TxnId) -> bool {
        let Some(Link { prev, next }) = nodes.get(&id).map(|n| n.links[which]) else { return false };
        if prev == NIL {
            list.head = next;
        } else if let Some(p) = nodes.get_mut(&prev) {
            p.links[which].next = next;
        }
        if next == NIL {
            list.tail = prev;
        } else if let Some(n) = nodes.get_mut(&next) {
            n.links[which].prev = prev;
        }
        list.len = list.len.saturating_sub(1);
        list.len == 0
    }

    /// Up to `max` ids from the tail (most recent first).
    fn recent(&self, list: &List, which: usize, max: usize, out: &mut Vec<TxnId>) {
        let mut at = list.tail;
        let mut n = 0;
        while at != NIL && n < max {
            out.push(at);
            n += 1;
            at = self.nodes.get(&at).map_or(NIL, |x| x.links[which].prev);
        }
    }

    pub fn insert(&mut self, t: &Txn) {
        if t.id == NIL || self.nodes.contains_key(&t.id) {
            return;
        }
        self.nodes.insert(t.id, Node::default());
        if let Some(k) = t.req.headers.get("sec-websocket-key") {
            let list = self.by_key.entry(k.to_string()).or_default();
            Self::push(&mut self.nodes, list, KEY, t.id);
        }
        let dst = t.flow.dst;
        let list = self.by_dst.entry(dst).or_default();
        if list.len == 0 {
            self.dst_of_ip.entry(dst.ip).or_default().push(dst);
        }
        Self::push(&mut self.nodes, list, DST, t.id);
        let list = self.by_src_ip.entry(t.flow.src.ip).or_default();
        Self::push(&mut self.nodes, list, SRC, t.id);
    }

    pub fn remove(&mut self, t: &Txn) {
        if !self.nodes.contains_key(&t.id) {
            return;
        }
        if let Some(k) = t.req.headers.get("sec-websocket-key")
            && let Some(list) = self.by_key.get_mut(k)
            && Self::unlink(&mut self.nodes, list, KEY, t.id)
        {
            self.by_key.remove(k);
        }
        let dst = t.flow.dst;
        if let Some(list) = self.by_dst.get_mut(&dst)
            && Self::unlink(&mut self.nodes, list, DST, t.id)
        {
            self.by_dst.remove(&dst);
            if let Some(v) = self.dst_of_ip.get_mut(&dst.ip) {
                // Few endpoints per address (a proxy's listening ports).
                v.retain(|e| *e != dst);
                if v.is_empty() {
                    self.dst_of_ip.remove(&dst.ip);
                }
            }
        }
        let src = t.flow.src.ip;
        if let Some(list) = self.by_src_ip.get_mut(&src)
            && Self::unlink(&mut self.nodes, list, SRC, t.id)
        {
            self.by_src_ip.remove(&src);
        }
        self.nodes.remove(&t.id);
    }

    /// Open requests carrying the same Sec-WebSocket-Key as `child`: when
    /// one of them pairs, no other candidate can score higher.
    pub fn same_key(&self, child: &Txn) -> Vec<TxnId> {
        let mut out = Vec::new();
        if let Some(list) = child.req.headers.get("sec-websocket-key").and_then(|k| self.by_key.get(k)) {
            self.recent(list, KEY, MAX_PER_BUCKET, &mut out);
        }
        out
    }

    /// Open requests `child` could have been forwarded from: to another
    /// endpoint of the address it leaves from, or from the client its
    /// X-Forwarded-For names.
    pub fn candidates(&self, child: &Txn) -> Vec<TxnId> {
        let mut out: Vec<TxnId> = self.same_key(child);
        if let Some(eps) = self.dst_of_ip.get(&child.flow.src.ip) {
            let mut left = MAX_PER_BUCKET;
            for ep in eps.iter().rev().take(MAX_ENDPOINTS) {
                if *ep == child.flow.dst || left == 0 {
                    continue;
                }
                if let Some(list) = self.by_dst.get(ep) {
                    let before = out.len();
                    self.recent(list, DST, left, &mut out);
                    left -= out.len() - before;
                }
            }
        }
        for ip in super::pair::forwarded_ips(&child.req) {
            if let Some(list) = self.by_src_ip.get(&ip) {
                self.recent(list, SRC, MAX_PER_BUCKET, &mut out);
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Every open request, oldest first, removing them.
    pub fn drain(&mut self) -> Vec<TxnId> {
        let mut v: Vec<TxnId> = self.nodes.keys().copied().collect();
        v.sort_unstable();
        *self = OpenIndex::default();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::FlowKey;
    use crate::proto::{Headers, Request, Version};
    use crate::time::Ts;

    fn txn(id: TxnId, src: ([u8; 4], u16), dst: ([u8; 4], u16), key: Option<&str>) -> Txn {
        let mut headers = Headers::default();
        if let Some(k) = key {
            headers.push("Sec-WebSocket-Key", k);
        }
        let req = Request { method: "GET".into(), target: "/".into(), version: Version::Http11, headers, head_len: 0 };
        let flow =
            FlowKey { src: Endpoint::new(IpAddr::from(src.0), src.1), dst: Endpoint::new(IpAddr::from(dst.0), dst.1) };
        Txn::new(crate::facts::HopRequest::new(id, id, flow, Box::new(req), Ts(0)))
    }

    #[test]
    fn buckets_follow_inserts_and_removals_in_any_order() {
        let mut ix = OpenIndex::default();
        let proxy = [10, 0, 0, 1];
        let ts: Vec<Txn> = (1..=6)
            .map(|i| txn(i, ([10, 0, 0, 9], 1000 + i as u16), (proxy, 80), Some(&format!("k{}", i % 2))))
            .collect();
        for t in &ts {
            ix.insert(t);
        }
        let fwd = txn(100, (proxy, 5000), ([10, 0, 0, 2], 3000), Some("k1"));
        assert_eq!(ix.same_key(&fwd), vec![5, 3, 1], "most recent first");
        assert_eq!(ix.candidates(&fwd), vec![1, 2, 3, 4, 5, 6]);
        ix.remove(&ts[2]);
        ix.remove(&ts[0]);
        ix.remove(&ts[4]);
        assert!(ix.same_key(&fwd).is_empty());
        assert_eq!(ix.candidates(&fwd), vec![2, 4, 6]);
        // A request to the proxy's own port never looks at the others.
        let pipelined = txn(200, ([10, 0, 0, 9], 1001), (proxy, 80), None);
        assert!(ix.candidates(&pipelined).is_empty());
        for t in &ts {
            ix.remove(t);
        }
        assert!(ix.is_empty());
        assert!(ix.by_key.is_empty() && ix.by_dst.is_empty() && ix.dst_of_ip.is_empty() && ix.by_src_ip.is_empty());
    }

    /// Removing requests oldest first (how responses arrive) with 200,000
    /// open in one bucket (each removal searched its bucket before: that
    /// was quadratic). The bench measures the time; this checks the
    /// buckets stay right at that size.
    #[test]
    fn many_open_requests_in_one_bucket() {
        let mut ix = OpenIndex::default();
        let n = 200_000u64;
        let ts: Vec<Txn> =
            (1..=n).map(|i| txn(i, ([10, 0, 0, 9], (i % 60000) as u16), ([10, 0, 0, 1], 80), None)).collect();
        for t in &ts {
            ix.insert(t);
        }
        assert_eq!(ix.len(), n as usize);
        let fwd = txn(n + 1, ([10, 0, 0, 1], 5000), ([10, 0, 0, 2], 3000), None);
        assert_eq!(ix.candidates(&fwd).len(), MAX_PER_BUCKET);
        for t in &ts[..n as usize - 3] {
            ix.remove(t);
        }
        assert_eq!(ix.candidates(&fwd), vec![n - 2, n - 1, n]);
        for t in &ts {
            ix.remove(t);
        }
        assert!(ix.is_empty() && ix.by_dst.is_empty());
    }
}
