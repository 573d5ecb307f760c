//! Hop correlation: pairs each client request with the request the proxy
//! forwarded upstream, decides each exchange's outcome once it is known,
//! and follows upgraded connections until their sessions end. What it
//! establishes it raises as facts ([`crate::facts`]); it knows nothing of
//! findings.
//!
//! Emission rule: an exchange is reported when its client-side request has
//! finished (final response, or its connection ended). By then every
//! forwarded copy exists, because a proxy forwards before it answers.
//!
//! The files, by idea: this one follows connections (the connection-level
//! events, failed attempts, TLS turns); requests.rs pairs requests as they
//! arrive and ends them; exchange.rs reports a finished exchange (its
//! handshake record and fact); session.rs follows upgraded connections and
//! sessions; h2pair.rs the HTTP/2 side; pair.rs, index.rs and roles.rs the
//! evidence, candidates and roles pairing uses; metrics.rs the aggregates.

pub mod exchange;
pub mod h2pair;
pub mod index;
pub mod join;
pub mod metrics;
pub mod pair;
mod requests;
pub mod roles;
pub mod session;
pub mod txn;

use std::collections::{BTreeMap, VecDeque};

use crate::event::{ConnId, ConnSummary, EndReason, Event, EventKind};
use crate::facts::FactSink;
pub use crate::facts::{Attempt, Exchange, SessionRow, TlsFront, TxnId};
use crate::flow::FlowKey;
use crate::flow::key::FxHashMap;
use crate::proto::Dir;
use crate::record::{self, HopEnd, Record};
use crate::redact::Redactor;
use crate::time::{Ts, round_us};

pub use crate::proto::activity::WsActivity;
pub use roles::Roles;
pub use session::WsStats;
pub use txn::Txn;

#[derive(Debug)]
struct ConnInfo {
    flow: FlowKey,
    established: bool,
    tls: Option<(Ts, Option<String>)>,
    /// What the TLS handshake negotiated, once known (decrypted or not).
    tls_info: Option<Box<crate::proto::tls::TlsInfo>>,
    /// TLS: the client's application data since the server last spoke
    /// (its request, as far as can be told), not yet paired with a
    /// forwarded request; and whether any turn was ever seen.
    turn: Option<Ts>,
    turns_seen: bool,
    /// TLS: paired with an upgrade that succeeded (no more requests).
    tls_upgraded: bool,
    /// Requests awaiting a final response, oldest first.
    waiting: VecDeque<TxnId>,
    requests: u32,
    /// FINs seen, by direction; a RST sets both. Both: the connection
    /// ended on the wire (its `Close` may wait behind TLS records held for
    /// keys: flow/conn `close_waits_for_keys`): no longer a TLS front.
    fin: [bool; 2],
}

/// What correlation counted (the summary's share of it).
#[derive(Default, Clone)]
pub struct Stats {
    pub http_requests: u64,
    pub handshakes: record::Handshakes,
    pub sessions: u64,
    pub anomalies: BTreeMap<&'static str, u64>,
    pub exchanges: u64,
    pub metrics: metrics::Metrics,
    /// Frames, payload bytes and messages of the sessions ended so far, by
    /// direction (to the server, to the client), as their records say.
    pub relayed_ended: Relayed,
}

/// WebSocket traffic of sessions, counted on the hop nearest the client
/// that can be read (as a session record counts it).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Relayed {
    pub frames: [u64; 2],
    pub bytes: [u64; 2],
    pub messages: [u64; 2],
}

impl Relayed {
    pub fn add(&mut self, o: &Relayed) {
        for d in 0..2 {
            self.frames[d] += o.frames[d];
            self.bytes[d] += o.bytes[d];
            self.messages[d] += o.messages[d];
        }
    }
}

pub struct Config {
    /// Emit per-message and per-frame records (`-v`).
    pub verbose: bool,
    pub redact: Redactor,
    pub roles: Roles,
    /// Idle timeouts the user expects (`--timeout`), seconds.
    pub timeouts: Vec<f64>,
    /// Live capture: detectors may warn about sessions still open.
    pub live: bool,
}

pub struct Correlator {
    verbose: bool,
    redact: Redactor,
    roles: Roles,
    conns: FxHashMap<ConnId, ConnInfo>,
    /// Open TLS connections (candidate client hops of lone requests).
    /// In connection order (ids grow as connections are seen), so that a
    /// lone request looks at the latest ones only, however many are open.
    tls_conns: std::collections::BTreeSet<ConnId>,
    txns: FxHashMap<TxnId, Txn>,
    /// Requests without a final response: candidates for pairing.
    open: index::OpenIndex,
    ws: FxHashMap<ConnId, WsStats>,
    sessions: FxHashMap<u64, session::PendingSession>,
    conn_sessions: FxHashMap<ConnId, Vec<u64>>,
    /// Failed connection attempts of the last minutes, and SYNs in flight.
    attempts: VecDeque<Attempt>,
    syn_pending: FxHashMap<ConnId, (FlowKey, Ts)>,
    /// The latest SYNs, for the attempts an exchange looks at: a SYN flood
    /// must not make every exchange scan every half-open connection.
    recent_syns: VecDeque<(ConnId, FlowKey, Ts)>,
    /// Closed upgraded connections not (yet) part of a session.
    orphans: VecDeque<(Ts, ConnId)>,
    next_txn: TxnId,
    next_chain: u64,
    next_handshake: u64,
    next_session: u64,
    pub stats: Stats,
    relay_samples: Vec<f64>,
    /// Relay samples waiting for their copy on the other hop.
    relay_pending: FxHashMap<(ConnId, u8, u64), (ConnId, Ts)>,
    /// Requests in arrival order (the oldest one still waiting holds the
    /// output back: its handshake record will be stamped with its time).
    arrivals: VecDeque<(TxnId, Ts)>,
    /// Lone requests whose likely TLS client hop waits for its keys (live
    /// key log): reported once that hop is read, fails, or after DEFER_S.
    deferred: VecDeque<(Ts, TxnId)>,
    /// HTTP/2 connections' facts (h2pair.rs).
    h2: h2pair::H2State,
}

const ATTEMPT_MEMORY_S: f64 = 120.0;
/// Failed attempts and SYNs in flight remembered, at most (a SYN flood
/// would otherwise fill them, and every exchange looks at them).
const MAX_ATTEMPTS: usize = 1024;
const MAX_RECENT_SYNS: usize = 1024;
/// A proxy forwards a request within this long of reading it from a TLS
/// client (connecting upstream included).
pub const TLS_PAIR_WINDOW_S: f64 = 10.0;

impl Correlator {
    pub fn new(cfg: Config) -> Correlator {
        Correlator {
            verbose: cfg.verbose,
            redact: cfg.redact,
            roles: cfg.roles,
            conns: FxHashMap::default(),
            tls_conns: Default::default(),
            txns: FxHashMap::default(),
            open: index::OpenIndex::default(),
            ws: FxHashMap::default(),
            sessions: FxHashMap::default(),
            conn_sessions: FxHashMap::default(),
            attempts: VecDeque::new(),
            syn_pending: FxHashMap::default(),
            recent_syns: VecDeque::new(),
            orphans: VecDeque::new(),
            next_txn: 1,
            next_chain: 1,
            next_handshake: 1,
            next_session: 1,
            stats: Stats::default(),
            relay_samples: Vec::new(),
            relay_pending: FxHashMap::default(),
            arrivals: VecDeque::new(),
            deferred: VecDeque::new(),
            h2: Default::default(),
        }
    }

    /// HTTP/2 connection views forgotten for their bound.
    pub fn h2_forgotten(&self) -> u64 {
        self.h2.evicted
    }

    /// The earliest stamp a record correlation has not made yet may carry,
    /// as of `now`: the oldest request still waiting for its answer (its
    /// handshake record is stamped with its arrival), the first FIN or RST
    /// of a session still closing. Nothing older than `floor` holds back.
    pub fn pending_since(&mut self, now: Ts, floor: Ts) -> Ts {
        while let Some(&(id, t)) = self.arrivals.front() {
            // Older than the hold bound: it holds nothing back any more.
            if t >= floor && self.txns.get(&id).is_some_and(|t| !t.done) {
                break;
            }
            self.arrivals.pop_front();
        }
        let mut w = now;
        if let Some(&(_, t)) = self.arrivals.front() {
            w = w.min(t);
        }
        if let Some(t) = self.sessions.values().filter_map(|s| s.closing_since).min() {
            w = w.min(t);
        }
        w
    }

    /// State held now: (connections, requests, upgraded connections,
    /// sessions). Bounded by live connections; all zero after `finish`.
    pub fn live_state(&self) -> (usize, usize, usize, usize) {
        (self.conns.len(), self.txns.len(), self.ws.len(), self.sessions.len())
    }

    /// Frame relay delays through the proxy (ms) measured since the last call.
    pub fn take_relay_samples(&mut self) -> Vec<f64> {
        std::mem::take(&mut self.relay_samples)
    }

    /// One event from the connection layer; what it completes goes to `out`.
    pub fn event(&mut self, ev: Event, out: &mut dyn FactSink) {
        let Event { conn, ts, kind } = ev;
        match kind {
            EventKind::Open { flow, syn } => {
                self.conns.insert(
                    conn,
                    ConnInfo {
                        flow,
                        established: false,
                        tls: None,
                        tls_info: None,
                        turn: None,
                        turns_seen: false,
                        tls_upgraded: false,
                        waiting: VecDeque::new(),
                        requests: 0,
                        fin: [false; 2],
                    },
                );
                if syn {
                    self.syn_pending.insert(conn, (flow, ts));
                    if self.recent_syns.len() >= MAX_RECENT_SYNS {
                        self.recent_syns.pop_front();
                    }
                    debug_assert!(self.recent_syns.back().is_none_or(|s| s.2 <= ts), "SYNs in time order");
                    self.recent_syns.push_back((conn, flow, ts));
                }
            }
            EventKind::Established => {
                self.syn_pending.remove(&conn);
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.established = true;
                }
            }
            EventKind::Request(req) => self.on_request(conn, ts, req, out),
            EventKind::Response(resp) => self.on_response(conn, ts, resp, out),
            EventKind::Upgraded { websocket } => {
                if websocket && let Some(c) = self.conns.get(&conn) {
                    self.ws.insert(conn, WsStats::new(conn, c.flow, ts));
                }
            }
            EventKind::Frame { dir, frame } => {
                if self.verbose
                    && let Some(c) = self.conns.get(&conn)
                {
                    out.record(Record::Frame(record::FrameLine {
                        ty: "frame",
                        ts: round_us(ts.secs()),
                        flow: dir_flow(c.flow, dir),
                        dir,
                        opcode: frame.opcode,
                        fin: frame.fin,
                        rsv1: frame.compressed(),
                        masked: frame.masked,
                        len: frame.len,
                        close_code: frame.close.as_ref().and_then(|c| c.code),
                        close_reason: frame.close.as_ref().map(|c| c.reason.clone()).filter(|r| !r.is_empty()),
                        stream_id: h2pair::stream_of(conn),
                    }));
                }
            }
            EventKind::RelaySample { dir, ordinal } => {
                if let Some(peer) = self.ws.get(&conn).and_then(|w| w.peer) {
                    self.relay(conn, peer, ts, dir, ordinal);
                }
            }
            EventKind::Tls { sni } => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.tls = Some((ts, sni));
                    self.tls_conns.insert(conn);
                }
            }
            EventKind::TlsInfo(info) => {
                let failed = info.reason.is_some();
                if let Some(c) = self.conns.get_mut(&conn) {
                    // A decrypted connection's requests are read like
                    // plaintext ones: it is no candidate for inference.
                    if info.decrypted {
                        self.tls_conns.remove(&conn);
                    }
                    c.tls_info = Some(info);
                }
                if failed {
                    self.release_deferred(|tf| tf == conn, None, out);
                }
            }
            EventKind::TlsTurn { dir } => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.turns_seen = true;
                    c.turn = if dir == Dir::ToServer { Some(ts) } else { None };
                }
            }
            EventKind::Anomaly { what, .. } => *self.stats.anomalies.entry(what).or_default() += 1,
            EventKind::Fin { dir } => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.fin[dir.index()] = true;
                }
                self.session_closing(conn, ts);
                if dir == Dir::ToClient {
                    self.end_waiting(conn, ts, HopEnd::ServerClosed, out);
                } else {
                    self.client_closed(conn, ts);
                }
            }
            EventKind::Rst { dir } => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.fin = [true; 2];
                }
                self.session_closing(conn, ts);
                let end = if dir == Dir::ToClient { HopEnd::ServerReset } else { HopEnd::ClientReset };
                self.end_waiting(conn, ts, end, out);
            }
            EventKind::H2Stream { parent, .. } => self.h2_stream(conn, parent, ts),
            EventKind::H2(fact) => self.h2_fact(conn, ts, fact, out),
            EventKind::Close(summary) => self.on_close(conn, ts, summary, out),
        }
    }

    fn on_close(&mut self, conn: ConnId, ts: Ts, summary: Box<ConnSummary>, out: &mut dyn FactSink) {
        self.syn_pending.remove(&conn);
        self.h2_closed(conn, ts, out);
        let reason = summary.end;
        if matches!(reason, EndReason::Refused | EndReason::Unanswered) {
            if self.attempts.len() >= MAX_ATTEMPTS {
                self.attempts.pop_front();
            }
            self.attempts.push_back(Attempt {
                conn,
                flow: summary.flow,
                ts: summary.first_ts,
                refused: reason == EndReason::Refused,
            });
        }
        self.end_waiting(conn, ts, HopEnd::Conn(reason), out);
        if !self.deferred.is_empty() {
            self.release_deferred(|tf| tf == conn, None, out);
        }
        self.conns.remove(&conn);
        self.tls_conns.remove(&conn);
        self.upgraded_closed(conn, ts, summary, out);
    }

    /// Packet time passed `now` (once per second of it): deferred requests
    /// whose wait is over are reported; old attempts, orphans and relay
    /// samples are forgotten.
    pub fn tick(&mut self, now: Ts, out: &mut dyn FactSink) {
        if !self.deferred.is_empty() {
            self.release_deferred(|_| false, Some(now), out);
        }
        while self.attempts.front().is_some_and(|a| now.since(a.ts) > ATTEMPT_MEMORY_S) {
            self.attempts.pop_front();
        }
        while let Some(&(t, conn)) = self.orphans.front() {
            if now.since(t) <= ATTEMPT_MEMORY_S {
                break;
            }
            self.orphans.pop_front();
            if !self.conn_sessions.contains_key(&conn) {
                self.ws.remove(&conn);
            }
        }
        // A relay sample whose copy did not come within seconds never will.
        self.relay_pending.retain(|_, (_, t)| now.since(*t) < 10.0);
    }

    /// End of input (after the flow table's final `Close` events): every
    /// request still open and every session is reported.
    pub fn finish(&mut self, now: Ts, out: &mut dyn FactSink) {
        // Requests still open were already ended by their connection's
        // Close; anything left is reported now.
        self.release_deferred(|_| true, None, out);
        let left = self.open.drain();
        for tid in left {
            if let Some(t) = self.txns.get_mut(&tid) {
                t.end.get_or_insert((now, HopEnd::Conn(EndReason::EndOfCapture)));
            }
            self.finish_txn(tid, out);
        }
        let mut ids: Vec<u64> = self.sessions.keys().copied().collect();
        ids.sort_unstable();
        for sid in ids {
            self.try_end_session(sid, true, out);
        }
        // Upgraded connections that never became part of a session.
        for (_, conn) in std::mem::take(&mut self.orphans) {
            if !self.conn_sessions.contains_key(&conn) {
                self.ws.remove(&conn);
            }
        }
    }
}

fn dir_flow(flow: FlowKey, dir: Dir) -> FlowKey {
    match dir {
        Dir::ToServer => flow,
        Dir::ToClient => flow.reversed(),
    }
}

#[cfg(test)]
mod tests;
