//! Reporting a finished exchange: the client request (or the lone
//! forwarded one), what became of it on each hop in view, the handshake
//! record of an upgrade attempt, and the session its upgraded hops open.

use super::session::Opening;
use super::{Attempt, Correlator, Txn, TxnId, h2pair, join, record};
use crate::facts::{Exchange, Fact, FactSink, TlsFront};
use crate::record::{Confidence, Handshake, Hop, HopEnd, Latency, Outcome, PairedBy, Record, Role};
use crate::redact::Redactor;
use crate::time::{Ts, round_us, round3};

impl Correlator {
    /// Reports the exchange whose client-side request is `cid`.
    pub(super) fn emit(&mut self, cid: TxnId, out: &mut dyn FactSink) {
        let Some(c) = self.txns.get(&cid) else { return };
        let up = c.to.and_then(|u| self.txns.get(&u));
        // A lone request is placed on the side the evidence says.
        let lone_upstream = up.is_none() && c.from.is_none() && self.roles.lone_is_upstream(c);
        let (client, upstream) = if lone_upstream { (None, Some(c)) } else { (Some(c), up) };
        let front = client.or(upstream).expect("one hop");
        let outcome = outcome_of(front);
        let websocket =
            client.is_some_and(|t| t.is_websocket_attempt()) || upstream.is_some_and(|t| t.is_websocket_attempt());
        let path = front.req.path().to_string();
        let chain = front.chain;
        let ts = front.req_ts;
        let tls_front = if lone_upstream { c.tls_front.as_ref() } else { None };
        let attempts = self.attempts_during(ts, front.finished_at().unwrap_or(ts));

        let handshake_id = websocket.then(|| {
            let id = self.next_handshake;
            self.next_handshake += 1;
            id
        });
        let mut join = None;
        if let Some(id) = handshake_id {
            let rec = handshake_record(id, front, client, upstream, tls_front, outcome, &path, self.redact);
            join = Some(rec.join.clone());
            self.stats.handshakes.total += 1;
            match outcome {
                Outcome::Upgraded => self.stats.handshakes.upgraded += 1,
                Outcome::Rejected => self.stats.handshakes.rejected += 1,
                Outcome::Failed => self.stats.handshakes.failed += 1,
                Outcome::Incomplete => self.stats.handshakes.incomplete += 1,
            }
            self.stats.metrics.handshake(&rec);
            out.record(Record::Handshake(rec));
        }
        self.stats.exchanges += 1;
        let x = Exchange {
            handshake: handshake_id,
            chain,
            ts,
            path: &path,
            outcome,
            client: client.map(|t| &t.hop),
            upstream: upstream.map(|t| &t.hop),
            tls_front,
            attempts: &attempts,
            front_known: client.is_some_and(|t| self.roles.known_front(t.flow.dst)),
        };
        out.fact(Fact::Exchange(&x));

        // The hops that switched protocols (the session, if WebSocket).
        let upgraded = |role: Role, t: Option<&Txn>| t.filter(|t| t.upgraded()).map(|t| (role, t.conn));
        let opening = Opening {
            handshake: handshake_id,
            chain,
            hop_index: front.hop_index,
            path,
            hops: [upgraded(Role::Client, client), upgraded(Role::Upstream, upstream)],
            tls_front: tls_front.filter(|_| upstream.is_some_and(|u| u.upgraded())).map(|tf| tf.conn),
            join: join.unwrap_or_default(),
        };
        let up_id = upstream.map(|u| u.id);
        let client_id = client.map(|c| c.id);
        self.open_session(opening, out);

        // Bookkeeping: each request is reported once as a client and once
        // as an upstream hop at most; drop it when it has been both.
        if let Some(id) = client_id {
            if let Some(t) = self.txns.get_mut(&id) {
                t.emitted_as_client = true;
            }
        } else if let Some(t) = self.txns.get_mut(&cid) {
            t.emitted_as_client = true;
        }
        if let Some(id) = up_id
            && let Some(t) = self.txns.get_mut(&id)
            && id != cid
        {
            t.emitted_as_upstream = true;
        }
        for id in [Some(cid), up_id].into_iter().flatten() {
            self.drop_if_reported(id);
        }
        out.settle();
    }

    /// Failed connection attempts made while the client waited (from `ts`
    /// to `end`), and SYNs then still unanswered, in connection order.
    fn attempts_during(&self, ts: Ts, end: Ts) -> Vec<Attempt> {
        let mut attempts: Vec<Attempt> = self.attempts.iter().filter(|a| a.ts >= ts && a.ts <= end).cloned().collect();
        // The SYNs are in packet-time order (a pipeline's time never goes
        // back): only those from `ts` on are looked at, not all 1,024.
        let from = self.recent_syns.partition_point(|s| s.2 < ts);
        attempts.extend(
            self.recent_syns
                .range(from..)
                .take_while(|s| s.2 <= end)
                .filter(|(c, _, _)| self.syn_pending.contains_key(c))
                .map(|&(conn, flow, t)| Attempt { conn, flow, ts: t, refused: false }),
        );
        attempts.sort_by_key(|a| a.conn);
        attempts
    }
}

/// The handshake record of an upgrade attempt: each hop as it crossed, how
/// they were paired and how sure that is.
#[allow(clippy::too_many_arguments)]
fn handshake_record(
    id: u64,
    front: &Txn,
    client: Option<&Txn>,
    upstream: Option<&Txn>,
    tls_front: Option<&TlsFront>,
    outcome: Outcome,
    path: &str,
    redact: Redactor,
) -> Handshake {
    let hop = |t: &Txn| hop_record(t, redact);
    let h2_confirmed = client.zip(upstream).and_then(|(c, u)| h2pair::confirm(c, u));
    let mut client_hop = client.map(hop);
    if let Some(tf) = tls_front {
        client_hop = Some(Hop {
            encrypted: true,
            sni: tf.sni.clone(),
            tls: Some(record::TlsHop::of(tf.tls.as_deref(), tf.sni.as_deref())),
            request_ts: tf.turn.map(|t| round_us(t.secs())),
            ..Hop::new(tf.flow)
        });
    }
    let join = join::of(client.map(|t| &t.hop), upstream.map(|t| &t.hop), client_hop.as_ref().map(|h| h.flow), redact);
    Handshake {
        ty: "handshake",
        id,
        chain: front.chain,
        hop_index: front.hop_index,
        ts: round_us(front.req_ts.secs()),
        path: path.to_string(),
        client: client_hop,
        upstream: upstream.map(hop),
        outcome,
        latency_ms: Latency {
            client: client.and_then(|t| t.latency_ms()).map(round3),
            upstream: upstream.and_then(|t| t.latency_ms()).map(round3),
        },
        paired_by: if let Some((by, _)) = h2_confirmed {
            Some(by)
        } else if client.is_some() && upstream.is_some() {
            upstream.and_then(|u| u.paired_by)
        } else if tls_front.is_some() {
            Some(PairedBy::Timing)
        } else {
            None
        },
        pair_confidence: match (client, upstream, tls_front) {
            _ if h2_confirmed.is_some() => h2_confirmed.map(|x| x.1),
            (Some(_), Some(u), _) if u.pair_confidence.is_some() => u.pair_confidence,
            (Some(_), Some(u), _) => Some(match u.paired_by {
                Some(PairedBy::Key) => Confidence::High,
                Some(PairedBy::Headers) => Confidence::Medium,
                _ => Confidence::Low,
            }),
            (None, Some(_), Some(tf)) => Some(tf.confidence),
            _ => None,
        },
        join,
    }
}

fn outcome_of(t: &Txn) -> Outcome {
    match t.status() {
        Some(_) if t.upgraded() => Outcome::Upgraded,
        Some(_) => Outcome::Rejected,
        None if t.end.is_some_and(|(_, e)| matches!(e, HopEnd::Conn(r) if r.is_unfinished())) || t.end.is_none() => {
            Outcome::Incomplete
        }
        None => Outcome::Failed,
    }
}

fn hop_record(t: &Txn, r: Redactor) -> Hop {
    let h = &t.req.headers;
    let resp = t.resp.as_deref();
    Hop {
        flow: t.flow,
        method: Some(t.req.method.clone()),
        target: Some(r.target(&t.req.target)),
        version: Some(t.req.version),
        upgrade: h.joined("upgrade"),
        connection: h.joined("connection"),
        key: h.get("sec-websocket-key").map(str::to_string),
        status: resp.map(|x| x.status),
        reason: resp.map(|x| x.reason.clone()),
        accept: resp.and_then(|x| x.headers.get("sec-websocket-accept")).map(str::to_string),
        server: resp.and_then(|x| x.headers.get("server")).map(str::to_string),
        request_ts: Some(round_us(t.req_ts.secs())),
        response_ts: t.resp_ts.map(|x| round_us(x.secs())),
        end: t.how_ended(),
        encrypted: false,
        sni: t.tls.as_ref().and_then(|i| i.sni.clone()),
        tls: t.tls.as_deref().map(|i| record::TlsHop::of(Some(i), None)),
        stream_id: h2pair::stream_of(t.conn),
        protocol: t.req.headers.get(":protocol").map(str::to_string),
        request_ids: join::hop_ids(t, r),
    }
}
