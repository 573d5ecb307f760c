//! Hop correlation: pairs each client request with the request the proxy
//! forwarded upstream, decides each exchange's outcome once it is known,
//! and follows upgraded connections until their sessions end.
//!
//! Emission rule: an exchange is reported when its client-side request has
//! finished (final response, or its connection ended). By then every
//! forwarded copy exists, because a proxy forwards before it answers.

pub mod h2pair;
pub mod index;
pub mod metrics;
pub mod order;
pub mod pair;
pub mod roles;
pub mod session;
pub mod txn;

use std::collections::{BTreeMap, VecDeque};

use crate::detect::Detectors;
use crate::event::{ConnId, ConnSummary, EndReason, Event, EventKind};
use crate::flow::FlowKey;
use crate::flow::key::FxHashMap;
use crate::proto::{Dir, Request, Response};
use crate::record::Finding;
use crate::record::{self, Confidence, Handshake, Hop, Latency, Outcome, PairedBy, Record};
use crate::redact::Redactor;
use crate::time::{Ts, round_us, round3};

pub use crate::proto::activity::WsActivity;
pub use roles::Roles;
pub use session::{Role, WsStats};
pub use txn::{HopEnd, TlsFront, Txn, TxnId};

/// A failed connection attempt (no request ever crossed it).
#[derive(Debug, Clone)]
pub struct Attempt {
    pub conn: ConnId,
    pub flow: FlowKey,
    pub ts: Ts,
    /// Refused (RST to the SYN) or unanswered (still waiting, or gave up).
    pub refused: bool,
}

/// A client request and what became of it, for detectors.
pub struct Exchange<'a> {
    /// Handshake record id when this is an upgrade attempt.
    pub handshake: Option<u64>,
    pub chain: u64,
    pub ts: Ts,
    pub path: &'a str,
    pub outcome: Outcome,
    pub client: Option<&'a Txn>,
    pub upstream: Option<&'a Txn>,
    /// The client hop was TLS: only its flow is known.
    pub tls_front: Option<&'a TlsFront>,
    /// Connections the proxy tried to open while the client waited and
    /// that failed (refused or unanswered).
    pub attempts: &'a [Attempt],
    /// The client hop's server is known to be a proxy (it forwarded other
    /// requests in this capture, or `--front` says so).
    pub front_known: bool,
}

impl Exchange<'_> {
    pub fn is_websocket(&self) -> bool {
        self.handshake.is_some()
    }
    /// The hop whose response the client saw.
    pub fn front(&self) -> Option<&Txn> {
        self.client.or(self.upstream)
    }
}

/// A finished session, for detectors.
pub struct SessionView<'a> {
    pub record: &'a record::Session,
    pub client: Option<&'a WsActivity>,
    pub upstream: Option<&'a WsActivity>,
}

/// A session still open, for live views (dashboard, early warnings).
#[derive(Debug, Clone)]
pub struct OpenSession {
    pub id: u64,
    pub path: String,
    pub client: Option<ConnId>,
    pub upstream: Option<ConnId>,
    pub start: Ts,
}

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
}

#[derive(Debug)]
struct PendingSession {
    id: u64,
    chain: u64,
    hop_index: u32,
    handshake: u64,
    path: String,
    hops: Vec<(Role, ConnId)>,
    start: Ts,
    /// First FIN or RST on one of its hops: its record (stamped with its
    /// end) cannot be stamped earlier.
    closing_since: Option<Ts>,
}

#[derive(Default, Clone)]
pub struct AnalyzerStats {
    pub http_requests: u64,
    pub handshakes: record::Handshakes,
    pub sessions: u64,
    pub anomalies: BTreeMap<&'static str, u64>,
    pub findings: BTreeMap<record::FindingKind, u64>,
    pub exchanges: u64,
    pub errors: u64,
    pub warnings: u64,
    pub metrics: metrics::Metrics,
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

/// An open WebSocket session, for live views (the dashboard).
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: u64,
    pub path: String,
    pub client_flow: Option<FlowKey>,
    /// The client hop is this HTTP/2 stream of `client_flow` (a session
    /// per stream).
    pub client_stream: Option<u32>,
    pub upstream_flow: Option<FlowKey>,
    pub start: Ts,
    /// Last frame in either direction on any hop.
    pub last_activity: Ts,
    pub frames: record::Dirs,
    pub bytes: record::Dirs,
}

pub struct Analyzer {
    verbose: bool,
    redact: Redactor,
    roles: Roles,
    timeouts: Vec<f64>,
    live: bool,
    conns: FxHashMap<ConnId, ConnInfo>,
    /// Open TLS connections (candidate client hops of lone requests).
    /// In connection order (ids grow as connections are seen), so that a
    /// lone request looks at the latest ones only, however many are open.
    tls_conns: std::collections::BTreeSet<ConnId>,
    txns: FxHashMap<TxnId, Txn>,
    /// Requests without a final response: candidates for pairing.
    open: index::OpenIndex,
    ws: FxHashMap<ConnId, WsStats>,
    sessions: FxHashMap<u64, PendingSession>,
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
    detectors: Detectors,
    findings: Vec<Finding>,
    pub stats: AnalyzerStats,
    relay_samples: Vec<f64>,
    /// Relay samples waiting for their copy on the other hop.
    relay_pending: FxHashMap<(ConnId, u8, u64), (ConnId, Ts)>,
    out: order::Reorder,
    /// Requests in arrival order (the oldest one still waiting holds the
    /// output back: its handshake record will be stamped with its time).
    arrivals: VecDeque<(TxnId, Ts)>,
    next_fault: u64,
    last_tick: Option<Ts>,
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
/// TLS connections a lone upstream request looks at for its client hop,
/// the most recent first (a flood of ClientHellos must not make every
/// request scan them all).
const MAX_TLS_LOOKED_AT: usize = 1024;
/// Closed upgraded connections waiting to be part of a session, at most.
const MAX_ORPHANS: usize = 1024;
/// How long a lone request waits for the keys of its TLS client hop.
const DEFER_S: f64 = 2.0;
const MAX_DEFERRED: usize = 1000;
/// A proxy forwards a request within this long of reading it from a TLS
/// client (connecting upstream included).
pub const TLS_PAIR_WINDOW_S: f64 = 10.0;
/// Relay samples waiting for their other hop, at most.
const MAX_RELAY_PENDING: usize = 10_000;

impl Analyzer {
    pub fn new(cfg: Config, detectors: Detectors) -> Analyzer {
        Analyzer {
            verbose: cfg.verbose,
            redact: cfg.redact,
            roles: cfg.roles,
            timeouts: cfg.timeouts,
            live: cfg.live,
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
            detectors,
            findings: Vec::new(),
            stats: AnalyzerStats::default(),
            relay_samples: Vec::new(),
            relay_pending: FxHashMap::default(),
            out: order::Reorder::default(),
            arrivals: VecDeque::new(),
            next_fault: 0,
            last_tick: None,
            deferred: VecDeque::new(),
            h2: Default::default(),
        }
    }

    pub fn has_output(&self) -> bool {
        self.out.has_ready()
    }

    /// Records ready to be written, in time order (drained by the pipeline
    /// into sinks).
    pub fn drain(&mut self) -> std::vec::Drain<'_, Record> {
        self.out.drain()
    }

    /// Records written out of time order so far (held past the bound).
    pub fn forced_out_of_order(&self) -> u64 {
        self.out.forced
    }

    /// Of those, written early to keep the output buffer within its share
    /// of the memory budget.
    pub fn written_early_for_memory(&self) -> u64 {
        self.out.forced_memory
    }

    /// What the detectors' bounds gave up: (closes judged before their
    /// time, Socket.IO sessions forgotten).
    pub fn detector_bounds(&self) -> (u64, u64) {
        self.detectors.bounded()
    }

    /// HTTP/2 connection views forgotten for their bound.
    pub fn h2_forgotten(&self) -> u64 {
        self.h2.evicted
    }

    /// Bytes of records held for time order (charged to the budget).
    #[inline]
    pub fn held_bytes(&self) -> usize {
        self.out.bytes()
    }

    /// The most the output buffer may hold, in bytes.
    pub fn set_output_cap(&mut self, bytes: usize) {
        self.out.set_byte_cap(bytes);
    }

    /// The earliest stamp a record not written yet may carry, as of `now`.
    fn watermark(&mut self, now: Ts) -> Ts {
        let floor = now.add_secs(-order::MAX_HOLD_S);
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
        if let Some(t) = self.detectors.pending_since() {
            w = w.min(t);
        }
        w.max(now.add_secs(-order::MAX_HOLD_S))
    }

    pub fn open_sessions(&self) -> impl Iterator<Item = OpenSession> + '_ {
        self.sessions.values().map(|s| OpenSession {
            id: s.id,
            path: s.path.clone(),
            client: s.hops.iter().find(|h| h.0 == Role::Client).map(|h| h.1),
            upstream: s.hops.iter().find(|h| h.0 == Role::Upstream).map(|h| h.1),
            start: s.start,
        })
    }

    pub fn ws_stats(&self, conn: ConnId) -> Option<&WsStats> {
        self.ws.get(&conn)
    }

    /// Open sessions with their activity (read from the connections in
    /// `flows`), in id order.
    pub fn session_rows(&self, flows: &crate::flow::FlowTable) -> Vec<SessionRow> {
        let mut rows: Vec<SessionRow> = self
            .sessions
            .values()
            .map(|s| {
                let hops: Vec<(Role, &WsStats, Option<&WsActivity>)> = s
                    .hops
                    .iter()
                    .filter_map(|(r, c)| {
                        let w = self.ws.get(c)?;
                        let act = w.activity().or_else(|| Self::live_activity(flows, w.flow, w.conn));
                        Some((*r, w, act))
                    })
                    .collect();
                let front = hops.first().and_then(|h| h.2);
                let flow = |role| hops.iter().find(|h| h.0 == role).map(|h| h.1.flow);
                SessionRow {
                    id: s.id,
                    path: s.path.clone(),
                    client_flow: flow(Role::Client),
                    client_stream: hops.iter().find(|h| h.0 == Role::Client).and_then(|h| h2pair::stream_of(h.1.conn)),
                    upstream_flow: flow(Role::Upstream),
                    start: s.start,
                    last_activity: hops.iter().filter_map(|h| h.2.map(|a| a.last_frame_any())).max().unwrap_or(s.start),
                    frames: front
                        .map(|w| record::Dirs { to_server: w.frames[0], to_client: w.frames[1] })
                        .unwrap_or_default(),
                    bytes: front
                        .map(|w| record::Dirs { to_server: w.bytes[0], to_client: w.bytes[1] })
                        .unwrap_or_default(),
                }
            })
            .collect();
        rows.sort_by_key(|r| r.id);
        rows
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

    /// Matches a frame with its copy on the session's other hop: a proxy
    /// relays frames in order and unchanged, so the oldest unmatched frame
    /// of the same direction and length on the other hop is the original.
    /// Frame relay delay: the same frame ordinal in the same direction on
    /// the session's two hops (a proxy relays frames in order).
    fn relay(&mut self, conn: ConnId, peer: ConnId, ts: Ts, dir: Dir, ordinal: u64) {
        let key = (conn.min(peer), dir.index() as u8, ordinal);
        match self.relay_pending.remove(&key) {
            Some((other, t0)) if other == peer => {
                let ms = ts.millis_since(t0).abs();
                self.stats.metrics.relay.record_ms(ms);
                if self.relay_samples.len() < 100_000 {
                    self.relay_samples.push(ms);
                }
            }
            _ => {
                if self.relay_pending.len() >= MAX_RELAY_PENDING {
                    self.relay_pending.clear();
                }
                self.relay_pending.insert(key, (conn, ts));
            }
        }
    }

    /// The idle timeout sessions are expected to hit: the smallest one the
    /// user stated, else the one learned from the capture, if any.
    pub fn idle_boundary(&self) -> Option<f64> {
        self.timeouts.iter().copied().reduce(f64::min).or_else(|| self.detectors.learned_boundary())
    }

    pub fn event(&mut self, ev: Event) {
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
                    },
                );
                if syn {
                    self.syn_pending.insert(conn, (flow, ts));
                    if self.recent_syns.len() >= MAX_RECENT_SYNS {
                        self.recent_syns.pop_front();
                    }
                    self.recent_syns.push_back((conn, flow, ts));
                }
            }
            EventKind::Established => {
                self.syn_pending.remove(&conn);
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.established = true;
                }
            }
            EventKind::Request(req) => self.on_request(conn, ts, req),
            EventKind::Response(resp) => self.on_response(conn, ts, resp),
            EventKind::Upgraded { websocket } => {
                if websocket && let Some(c) = self.conns.get(&conn) {
                    self.ws.insert(conn, WsStats::new(conn, c.flow, ts));
                }
            }
            EventKind::Frame { dir, frame } => {
                if self.verbose
                    && let Some(c) = self.conns.get(&conn)
                {
                    self.out.push(Record::Frame(record::FrameLine {
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
                    self.release_deferred(|tf| tf == conn, None);
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
                self.session_closing(conn, ts);
                if dir == Dir::ToClient {
                    self.end_waiting(conn, ts, HopEnd::ServerClosed);
                } else {
                    self.client_closed(conn, ts);
                }
            }
            EventKind::Rst { dir } => {
                self.session_closing(conn, ts);
                let end = if dir == Dir::ToClient { HopEnd::ServerReset } else { HopEnd::ClientReset };
                self.end_waiting(conn, ts, end);
            }
            EventKind::H2Stream { parent, .. } => self.h2_stream(conn, parent, ts),
            EventKind::H2(fact) => self.h2_fact(conn, ts, fact),
            EventKind::Close(summary) => self.on_close(conn, ts, summary),
        }
    }

    fn on_request(&mut self, conn: ConnId, ts: Ts, req: Box<Request>) {
        self.stats.http_requests += 1;
        let Some(c) = self.conns.get_mut(&conn) else { return };
        let flow = c.flow;
        let nth = c.requests;
        c.requests += 1;
        if self.verbose {
            self.out.push(Record::Http(record::HttpMessage {
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
        let mut t = Txn {
            id,
            conn,
            flow,
            chain: 0,
            hop_index: 0,
            nth_on_conn: nth,
            req,
            req_ts: ts,
            interim: Vec::new(),
            resp: None,
            resp_ts: None,
            end: None,
            client_fin: None,
            from: None,
            to: None,
            retried: 0,
            paired_by: None,
            tls_front: None,
            tls: c.tls_info.clone().filter(|i| i.decrypted),
            pair_confidence: None,
            done: false,
            emitted_as_client: false,
            emitted_as_upstream: false,
        };
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
    fn adopt_deferred(&mut self, t: &mut Txn) {
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
    fn release_deferred(&mut self, front: impl Fn(ConnId) -> bool, now: Option<Ts>) {
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
            self.emit(tid);
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
                if *hello > t.req_ts || *id == t.conn || c.tls_upgraded {
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

    fn on_response(&mut self, conn: ConnId, ts: Ts, resp: Box<Response>) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        if self.verbose {
            self.out.push(Record::Http(record::HttpMessage {
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
        self.finish_txn(tid);
    }

    /// The connection can no longer answer its waiting requests.
    fn end_waiting(&mut self, conn: ConnId, ts: Ts, end: HopEnd) {
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
            self.finish_txn(tid);
        }
    }

    fn on_close(&mut self, conn: ConnId, ts: Ts, summary: Box<ConnSummary>) {
        self.syn_pending.remove(&conn);
        self.h2_closed(conn, ts);
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
        self.end_waiting(conn, ts, HopEnd::Conn(reason));
        if !self.deferred.is_empty() {
            self.release_deferred(|tf| tf == conn, None);
        }
        self.conns.remove(&conn);
        self.tls_conns.remove(&conn);
        if let Some(w) = self.ws.get_mut(&conn) {
            let mut summary = summary;
            if w.encrypted && summary.ws.is_none() {
                // Only its TCP ends are known: its first FIN or RST.
                let mut a = WsActivity::new(w.upgraded_ts);
                if let Some((d, t)) = summary.first_close() {
                    a.closing(t, d, if summary.rst[d.index()] == Some(t) { "rst" } else { "fin" });
                }
                summary.ws = Some(Box::new(a));
            }
            w.summary = Some(summary);
            let ids = self.conn_sessions.get(&conn).cloned().unwrap_or_default();
            if ids.is_empty() {
                // Upgraded but in no session yet: its exchange may still be
                // reported (an upstream hop whose client waits); forgotten
                // after a while if it never is.
                if self.orphans.len() >= MAX_ORPHANS {
                    // Bounded: 101s without a request (or never paired)
                    // are cheap to send by the thousand.
                    if let Some((_, old)) = self.orphans.pop_front()
                        && !self.conn_sessions.contains_key(&old)
                    {
                        self.ws.remove(&old);
                    }
                }
                self.orphans.push_back((ts, conn));
            }
            for sid in ids {
                self.try_end_session(sid, false);
            }
        }
    }

    fn finish_txn(&mut self, tid: TxnId) {
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
                    self.release_deferred(|_| false, Some(Ts(i64::MAX)));
                }
                self.deferred.push_back((at, tid));
                return;
            }
            self.emit(tid);
        }
        self.drop_if_reported(tid);
    }

    /// Forgets a request once it is finished and reported in every role.
    fn drop_if_reported(&mut self, tid: TxnId) {
        if self.txns.get(&tid).is_some_and(|t| t.done && t.fully_emitted()) {
            self.txns.remove(&tid);
        }
    }

    /// Reports the exchange whose client-side request is `cid`.
    fn emit(&mut self, cid: TxnId) {
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

        // Failed connection attempts made while the client waited.
        let window_end = front.finished_at().unwrap_or(ts);
        let mut attempts: Vec<Attempt> =
            self.attempts.iter().filter(|a| a.ts >= ts && a.ts <= window_end).cloned().collect();
        attempts.extend(
            self.recent_syns
                .iter()
                .filter(|(c, _, t)| *t >= ts && *t <= window_end && self.syn_pending.contains_key(c))
                .map(|&(conn, flow, t)| Attempt { conn, flow, ts: t, refused: false }),
        );
        attempts.sort_by_key(|a| a.conn);

        let handshake_id = websocket.then(|| {
            let id = self.next_handshake;
            self.next_handshake += 1;
            id
        });
        if let Some(id) = handshake_id {
            let hop = |t: &Txn| hop_record(t, self.redact);
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
            let rec = Handshake {
                ty: "handshake",
                id,
                chain,
                hop_index: front.hop_index,
                ts: round_us(ts.secs()),
                path: path.clone(),
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
            };
            self.stats.handshakes.total += 1;
            match outcome {
                Outcome::Upgraded => self.stats.handshakes.upgraded += 1,
                Outcome::Rejected => self.stats.handshakes.rejected += 1,
                Outcome::Failed => self.stats.handshakes.failed += 1,
                Outcome::Incomplete => self.stats.handshakes.incomplete += 1,
            }
            self.stats.metrics.handshake(&rec);
            self.out.push(Record::Handshake(rec));
        }
        self.stats.exchanges += 1;
        let x = Exchange {
            handshake: handshake_id,
            chain,
            ts,
            path: &path,
            outcome,
            client,
            upstream,
            tls_front,
            attempts: &attempts,
            front_known: client.is_some_and(|t| self.roles.known_front(t.flow.dst)),
        };
        self.detectors.on_exchange(&x, &mut self.findings);

        // Sessions: the hops that switched to WebSocket.
        let mut hops = Vec::new();
        if let Some(t) = client
            && t.upgraded()
            && self.ws.contains_key(&t.conn)
        {
            hops.push((Role::Client, t.conn));
        }
        if let Some(t) = upstream
            && t.upgraded()
            && self.ws.contains_key(&t.conn)
        {
            hops.push((Role::Upstream, t.conn));
        }
        // A TLS client hop: followed at the TCP level as the session's
        // client hop (its frames cannot be read), and done with requests.
        let upgraded_at = hops.iter().filter_map(|(_, c)| self.ws.get(c).map(|w| w.upgraded_ts)).min();
        if let Some(tf) = tls_front
            && upstream.is_some_and(|u| u.upgraded())
            && let Some(at) = upgraded_at
            && let Some(c) = self.conns.get_mut(&tf.conn)
        {
            c.tls_upgraded = true;
            let mut w = WsStats::new(tf.conn, c.flow, at);
            w.encrypted = true;
            self.ws.insert(tf.conn, w);
            hops.insert(0, (Role::Client, tf.conn));
        }
        let up_id = upstream.map(|u| u.id);
        let client_id = client.map(|c| c.id);
        let start = hops.iter().filter_map(|(_, c)| self.ws.get(c).map(|w| w.upgraded_ts)).min();
        if let (Some(hid), Some(start)) = (handshake_id, start) {
            let sid = self.next_session;
            self.next_session += 1;
            for (_, conn) in &hops {
                self.conn_sessions.entry(*conn).or_default().push(sid);
            }
            if let [(_, a), (_, b)] = hops[..]
                && !self.ws.get(&a).is_some_and(|w| w.encrypted)
            {
                if let Some(w) = self.ws.get_mut(&a) {
                    w.peer = Some(b);
                }
                if let Some(w) = self.ws.get_mut(&b) {
                    w.peer = Some(a);
                }
            }
            self.sessions.insert(
                sid,
                PendingSession {
                    id: sid,
                    chain,
                    hop_index: front.hop_index,
                    handshake: hid,
                    path,
                    hops,
                    start,
                    closing_since: None,
                },
            );
            self.try_end_session(sid, false);
        }
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
        self.flush_findings();
    }

    fn try_end_session(&mut self, sid: u64, force: bool) {
        let Some(s) = self.sessions.get(&sid) else { return };
        let all_closed = s.hops.iter().all(|(_, c)| self.ws.get(c).is_none_or(|w| w.closed()));
        if !all_closed && !force {
            return;
        }
        let s = self.sessions.remove(&sid).expect("present");
        let empty = WsActivity::default();
        let hops: Vec<session::HopView<'_>> = s
            .hops
            .iter()
            .filter_map(|(r, c)| {
                let w = self.ws.get(c)?;
                Some(session::HopView {
                    role: *r,
                    flow: w.flow,
                    summary: w.summary.as_deref(),
                    act: w.activity().unwrap_or(&empty),
                    encrypted: w.encrypted,
                })
            })
            .collect();
        if hops.is_empty() {
            return;
        }
        let rec = session::build(s.id, s.chain, s.hop_index, s.handshake, &s.path, &hops);
        self.stats.sessions += 1;
        let view = SessionView {
            record: &rec,
            client: hops.iter().find(|h| h.role == Role::Client && !h.encrypted).map(|h| h.act),
            upstream: hops.iter().find(|h| h.role == Role::Upstream).map(|h| h.act),
        };
        self.detectors.on_session(&view, &mut self.findings);
        self.out.push(Record::Session(rec));
        for (_, conn) in &s.hops {
            let ids = self.conn_sessions.entry(*conn).or_default();
            ids.retain(|&x| x != sid);
            if ids.is_empty() {
                self.conn_sessions.remove(conn);
                if self.ws.get(conn).is_some_and(|w| w.closed()) || force {
                    self.ws.remove(conn);
                }
            }
        }
        self.flush_findings();
    }

    /// A hop of an open session began to close.
    fn session_closing(&mut self, conn: ConnId, ts: Ts) {
        if let Some(ids) = self.conn_sessions.get(&conn) {
            for sid in ids {
                if let Some(s) = self.sessions.get_mut(sid) {
                    s.closing_since.get_or_insert(ts);
                }
            }
        }
    }

    /// The initiator half-closed a connection with requests still waiting
    /// (a proxy giving up on its upstream): who closed first decides later.
    fn client_closed(&mut self, conn: ConnId, ts: Ts) {
        let Some(c) = self.conns.get(&conn) else { return };
        for tid in &c.waiting {
            if let Some(t) = self.txns.get_mut(tid) {
                t.client_fin.get_or_insert(ts);
            }
        }
    }

    fn flush_findings(&mut self) {
        for mut f in self.findings.drain(..) {
            if f.primary || self.next_fault == 0 {
                self.next_fault += 1;
            }
            f.fault = self.next_fault;
            *self.stats.findings.entry(f.kind).or_default() += 1;
            match f.severity {
                record::Severity::Error => self.stats.errors += 1,
                record::Severity::Warning => self.stats.warnings += 1,
                record::Severity::Info => {}
            }
            self.out.push(Record::Finding(f));
        }
    }

    /// Whether a tick is due at `now` (once per second of packet time).
    pub fn tick_due(&self, now: Ts) -> bool {
        self.last_tick.is_none_or(|t| now.0 - t.0 >= 1_000_000)
    }

    /// Live capture: detectors want the open sessions on each tick.
    pub fn wants_rows(&self) -> bool {
        self.live
    }

    /// Packet time passed `now`: detectors may report; old attempts and
    /// relay samples are forgotten. `open` lists open sessions (live only).
    pub fn tick(&mut self, now: Ts, open: &[SessionRow]) {
        if !self.tick_due(now) {
            return;
        }
        self.last_tick = Some(now);
        if !self.deferred.is_empty() {
            self.release_deferred(|_| false, Some(now));
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
        self.detectors.on_tick(now, open, &mut self.findings);
        self.flush_findings();
        let w = self.watermark(now);
        self.out.release(w);
    }

    /// End of input (after the flow table's final `Close` events).
    pub fn finish(&mut self, now: Ts) {
        // Requests still open were already ended by their connection's
        // Close; anything left is reported now.
        self.release_deferred(|_| true, None);
        let left = self.open.drain();
        for tid in left {
            if let Some(t) = self.txns.get_mut(&tid) {
                t.end.get_or_insert((now, HopEnd::Conn(EndReason::EndOfCapture)));
            }
            self.finish_txn(tid);
        }
        let mut ids: Vec<u64> = self.sessions.keys().copied().collect();
        ids.sort_unstable();
        for sid in ids {
            self.try_end_session(sid, true);
        }
        // Upgraded connections that never became part of a session.
        for (_, conn) in std::mem::take(&mut self.orphans) {
            if !self.conn_sessions.contains_key(&conn) {
                self.ws.remove(&conn);
            }
        }
        self.detectors.finish(now, &mut self.findings);
        self.flush_findings();
        self.out.release_all();
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
