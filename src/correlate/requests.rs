//! Requests as they arrive: paired with the request they were forwarded
//! from (the evidence in pair.rs, the candidates in index.rs), or with the
//! TLS connection they likely came in on; ended by their response or their
//! connection; reported (exchange.rs) once the client-side one finished.

use super::{ConnInfo, Correlator, TLS_PAIR_WINDOW_S, Txn, TxnId, h2pair, pair, record};
use crate::event::ConnId;
use crate::facts::{FactSink, HopRequest, TlsFront};
use crate::proto::{Request, Response};
use crate::record::{Confidence, HopEnd, PairedBy, Record};
use crate::time::{Ts, round_us};

/// TLS connections a lone upstream request looks at for its client hop,
/// the most recent first (a flood of ClientHellos must not make every
/// request scan them all).
const MAX_TLS_LOOKED_AT: usize = 1024;
/// How long a lone request waits for the keys of its TLS client hop.
const DEFER_S: f64 = 2.0;
const MAX_DEFERRED: usize = 1000;

impl Correlator {
    pub(super) fn on_request(&mut self, conn: ConnId, ts: Ts, req: Box<Request>, out: &mut dyn FactSink) {
        self.stats.http_requests += 1;
        let Some(c) = self.conns.get_mut(&conn) else { return };
        let flow = c.flow;
        let nth = c.requests;
        c.requests += 1;
        if self.verbose {
            out.record(Record::Http(record::HttpMessage {
                ty: "http",
                ts: round_us(ts.secs()),
                flow,
                dir: record::MessageDir::Request,
                method: Some(req.method.clone()),
                target: Some(self.redact.target(&req.target)),
                version: req.version,
                status: None,
                reason: None,
                headers: req.headers.iter().map(|(n, v)| (n.to_string(), self.redact.header(n, v))).collect(),
                stream_id: h2pair::stream_of(conn),
            }));
        }
        let id = self.next_txn;
        self.next_txn += 1;
        let mut t = Txn::new(HopRequest {
            tls: c.tls_info.clone().filter(|i| i.decrypted),
            ..HopRequest::new(id, conn, flow, req, ts)
        });
        t.nth_on_conn = nth;
        self.h2_request(conn, &t.req);
        match self.find_parent(&t) {
            Some((pid, by)) => {
                if let Some(p) = self.txns.get(&pid).filter(|p| p.req.is_extended_connect()) {
                    t.pair_confidence = Some(self.h2_confidence(p, &t, by));
                }
                let p = self.txns.get_mut(&pid).expect("candidate exists");
                let prev = p.to.replace(id);
                if prev.is_some() {
                    p.retried += 1;
                }
                let (pflow, pchain, phop) = (p.flow, p.chain, p.hop_index);
                // The failed earlier forward will not be reported as a hop.
                if let Some(prev) = prev {
                    if let Some(x) = self.txns.get_mut(&prev) {
                        x.emitted_as_upstream = true;
                    }
                    self.drop_if_reported(prev);
                }
                t.from = Some(pid);
                t.chain = pchain;
                t.hop_index = phop + 1;
                t.paired_by = Some(by);
                self.roles.learn(pflow.dst, t.flow.dst);
            }
            None => {
                t.chain = self.next_chain;
                self.next_chain += 1;
                if t.tls.is_some() {
                    self.adopt_deferred(&mut t);
                } else if self.roles.may_be_upstream(&t) {
                    t.tls_front = self.find_tls_front(&t);
                    // One to one: that application-data turn is spent.
                    if let Some(tf) = &t.tls_front
                        && tf.turn.is_some()
                        && let Some(c) = self.conns.get_mut(&tf.conn)
                    {
                        c.turn = None;
                    }
                }
            }
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.waiting.push_back(id);
        }
        self.arrivals.push_back((id, ts));
        self.open.insert(&t);
        self.txns.insert(id, t);
        if self.arrivals.len() > 2 * self.txns.len() + 1024 {
            // Answered requests behind an unanswered one: drop them (the
            // queue stays within twice the requests held, O(1) amortised).
            let txns = &self.txns;
            self.arrivals.retain(|(id, _)| txns.get(id).is_some_and(|t| !t.done));
        }
    }

    /// A request just decrypted from a TLS connection whose keys came late:
    /// the proxy's forward of it was seen first and waits, deferred. They
    /// are one exchange.
    pub(super) fn adopt_deferred(&mut self, t: &mut Txn) {
        let Some(pos) = self.deferred.iter().position(|(_, u)| {
            self.txns.get(u).is_some_and(|u| {
                u.tls_front.as_ref().is_some_and(|f| f.conn == t.conn) && u.req_ts >= t.req_ts && u.from.is_none()
            })
        }) else {
            return;
        };
        let Some((_, uid)) = self.deferred.remove(pos) else { return };
        let Some(u) = self.txns.get_mut(&uid) else { return };
        let same_key = u.req.headers.get("sec-websocket-key").is_some()
            && u.req.headers.get("sec-websocket-key") == t.req.headers.get("sec-websocket-key");
        u.from = Some(t.id);
        u.chain = t.chain;
        u.hop_index = t.hop_index + 1;
        u.tls_front = None;
        u.paired_by = Some(if same_key { PairedBy::Key } else { PairedBy::Headers });
        t.to = Some(uid);
        let ufront = u.flow.dst;
        self.roles.learn(t.flow.dst, ufront);
    }

    /// Reports deferred lone requests (those whose TLS front matches, or
    /// whose wait is over at `now`), as without keys.
    pub(super) fn release_deferred(&mut self, front: impl Fn(ConnId) -> bool, now: Option<Ts>, out: &mut dyn FactSink) {
        let mut due = Vec::new();
        self.deferred.retain(|&(deadline, tid)| {
            let conn = self.txns.get(&tid).and_then(|t| t.tls_front.as_ref()).map(|f| f.conn);
            let go = conn.is_none_or(&front) || now.is_some_and(|n| n >= deadline);
            if go {
                due.push(tid);
            }
            !go
        });
        for tid in due {
            self.emit(tid, out);
            self.drop_if_reported(tid);
        }
    }

    /// The best open request `t` could be a forwarded copy of.
    fn find_parent(&self, t: &Txn) -> Option<(TxnId, PairedBy)> {
        if self.roles.is_front(t.flow.dst) {
            return None;
        }
        // Same key first: a key match outscores any other evidence, so the
        // wider search is needed only when none pairs.
        self.best_parent(t, self.open.same_key(t)).or_else(|| self.best_parent(t, self.open.candidates(t)))
    }

    fn best_parent(&self, t: &Txn, candidates: Vec<TxnId>) -> Option<(TxnId, PairedBy)> {
        let mut best: Option<(i32, Ts, TxnId, PairedBy)> = None;
        for pid in candidates {
            let Some(p) = self.txns.get(&pid) else { continue };
            if p.done || self.roles.is_upstream(p.flow.dst) {
                continue;
            }
            // One forward per request, unless the earlier forward failed
            // and this is the proxy's retry (proxy_next_upstream).
            if let Some(prev) = p.to.and_then(|x| self.txns.get(&x))
                && !(prev.done && prev.resp.is_none())
            {
                continue;
            }
            let backend = self.roles.learned_backend(p.flow.dst);
            if let Some((s, by)) = pair::score(p, t, backend) {
                let better = match best {
                    None => true,
                    Some((bs, bts, ..)) => s > bs || (s == bs && p.req_ts < bts),
                };
                if better {
                    best = Some((s, p.req_ts, pid, by));
                }
            }
        }
        best.map(|(_, _, id, by)| (id, by))
    }

    /// The TLS connection into this host that is the client hop of an
    /// upstream request seen alone. Candidates are open TLS connections on
    /// the address the request leaves from (or named by X-Forwarded-For),
    /// their ClientHello before it. A proxy forwards a request right after
    /// reading it, so the pair is the connection whose client sent
    /// application data (a TLS record) not yet paired with an earlier
    /// forwarded request and not yet answered, within
    /// [`TLS_PAIR_WINDOW_S`]; the oldest such turn first (proxies forward
    /// in order), one request per turn. Confidence: `high` when one
    /// connection had such a turn, `medium` when several did, `low` when
    /// no turn could be read and the most recent ClientHello is all there
    /// is (a connection not followed from its start).
    fn find_tls_front(&self, t: &Txn) -> Option<TlsFront> {
        let cands: Vec<(bool, ConnId, &ConnInfo, Ts, Option<String>)> = self
            .tls_conns
            .iter()
            .rev()
            .take(MAX_TLS_LOOKED_AT)
            .filter_map(|id| {
                let c = self.conns.get(id)?;
                let (hello, sni) = c.tls.as_ref()?;
                if *hello > t.req_ts || *id == t.conn || c.tls_upgraded || c.fin == [true; 2] {
                    return None;
                }
                let named = pair::forwarded_for_names(&t.req, c.flow.src.ip);
                let local = c.flow.dst.ip == t.flow.src.ip;
                (named || local).then_some((named, *id, c, *hello, sni.clone()))
            })
            .collect();
        let turns: Vec<&(bool, ConnId, &ConnInfo, Ts, Option<String>)> = cands
            .iter()
            .filter(|x| x.2.turn.is_some_and(|tt| tt <= t.req_ts && t.req_ts.since(tt) <= TLS_PAIR_WINDOW_S))
            .collect();
        if let Some(best) = turns.iter().min_by_key(|x| (!x.0, x.2.turn, x.1)) {
            let turn = best.2.turn.expect("filtered");
            return Some(TlsFront {
                conn: best.1,
                flow: best.2.flow,
                sni: best.4.clone(),
                tls: best.2.tls_info.clone(),
                turn: Some(turn),
                confidence: if turns.len() == 1 { Confidence::High } else { Confidence::Medium },
                candidates: turns.len() as u32,
            });
        }
        // No readable turn: the most recent ClientHello on a connection
        // whose turns could not be followed.
        cands.iter().filter(|x| !x.2.turns_seen).max_by_key(|x| (x.0, x.3, x.1)).map(|x| TlsFront {
            conn: x.1,
            flow: x.2.flow,
            sni: x.4.clone(),
            tls: x.2.tls_info.clone(),
            turn: None,
            confidence: Confidence::Low,
            candidates: cands.len() as u32,
        })
    }

    pub(super) fn on_response(&mut self, conn: ConnId, ts: Ts, resp: Box<Response>, out: &mut dyn FactSink) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        if self.verbose {
            out.record(Record::Http(record::HttpMessage {
                ty: "http",
                ts: round_us(ts.secs()),
                flow: c.flow,
                dir: record::MessageDir::Response,
                method: None,
                target: None,
                version: resp.version,
                status: Some(resp.status),
                reason: Some(resp.reason.clone()),
                headers: resp.headers.iter().map(|(n, v)| (n.to_string(), self.redact.header(n, v))).collect(),
                stream_id: h2pair::stream_of(conn),
            }));
        }
        let interim = (100..200).contains(&resp.status) && resp.status != 101;
        let Some(&tid) = c.waiting.front() else { return };
        if !interim {
            c.waiting.pop_front();
        }
        let Some(t) = self.txns.get_mut(&tid) else { return };
        if interim {
            t.interim.push(resp.status);
            return;
        }
        t.resp = Some(resp);
        t.resp_ts = Some(ts);
        self.finish_txn(tid, out);
    }

    /// The connection can no longer answer its waiting requests.
    pub(super) fn end_waiting(&mut self, conn: ConnId, ts: Ts, end: HopEnd, out: &mut dyn FactSink) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        let waiting: Vec<TxnId> = c.waiting.drain(..).collect();
        for tid in waiting {
            if let Some(t) = self.txns.get_mut(&tid) {
                // Who closed first decides: a server closing after the
                // client side already did is answering the client's close.
                let end = match end {
                    HopEnd::ServerClosed | HopEnd::ServerReset if t.client_fin.is_some() => HopEnd::ClientClosed,
                    e => e,
                };
                t.end = Some((ts, end));
            }
            self.finish_txn(tid, out);
        }
    }

    /// The initiator half-closed a connection with requests still waiting
    /// (a proxy giving up on its upstream): who closed first decides later.
    pub(super) fn client_closed(&mut self, conn: ConnId, ts: Ts) {
        let Some(c) = self.conns.get(&conn) else { return };
        for tid in &c.waiting {
            if let Some(t) = self.txns.get_mut(tid) {
                t.client_fin.get_or_insert(ts);
            }
        }
    }

    pub(super) fn finish_txn(&mut self, tid: TxnId, out: &mut dyn FactSink) {
        let Some(t) = self.txns.get_mut(&tid) else { return };
        if t.done {
            return;
        }
        t.done = true;
        self.open.remove(t);
        let needs_client = t.needs_client_record();
        if needs_client {
            // Its TLS client hop holds records for keys still to come: wait.
            let waiting = t.from.is_none()
                && t.to.is_none()
                && t.tls_front.as_ref().is_some_and(|f| {
                    self.conns.get(&f.conn).and_then(|c| c.tls_info.as_ref()).is_some_and(|i| i.awaiting_keys())
                });
            if waiting {
                let at = t.finished_at().unwrap_or(t.req_ts).add_secs(DEFER_S);
                if self.deferred.len() >= MAX_DEFERRED {
                    self.release_deferred(|_| false, Some(Ts(i64::MAX)), out);
                }
                self.deferred.push_back((at, tid));
                return;
            }
            self.emit(tid, out);
        }
        self.drop_if_reported(tid);
    }

    /// Forgets a request once it is finished and reported in every role.
    pub(super) fn drop_if_reported(&mut self, tid: TxnId) {
        if self.txns.get(&tid).is_some_and(|t| t.done && t.fully_emitted()) {
            self.txns.remove(&tid);
        }
    }
}
