//! Facts: what correlation establishes and hands on, the contract between
//! correlation (src/correlate/) and policy (the detectors, src/detect/), as
//! Zeek's `events.bif` is between its analyzers and its policy scripts.
//!
//! Correlation pairs hops and follows sessions; when a fact is complete it
//! raises it through a [`FactSink`], with the records it made (a handshake,
//! a session, `-v` lines). It knows nothing of findings. The pipeline's
//! analysis stage (src/analysis.rs) is the sink: it hands each fact to every
//! detector and writes the records, then the findings, in time order.
//!
//! Everything here is typed: flows are [`FlowKey`]s, roles and closes are
//! enums (src/record.rs), requests are parsed heads. No fact carries a string
//! made to be read back.

use crate::event::ConnId;
use crate::flow::FlowKey;
use crate::proto::activity::WsActivity;
use crate::proto::h2::Settings;
use crate::proto::{Dir, Request, Response};
use crate::record::{Confidence, Dirs, HopEnd, Outcome, PairedBy, Record, Session};
use crate::time::Ts;

/// A request's id, unique within a run (from 1).
pub type TxnId = u64;

/// A request on one hop, and what answered it: its response, or how its
/// connection ended.
#[derive(Debug, Clone)]
pub struct HopRequest {
    pub id: TxnId,
    pub conn: ConnId,
    pub flow: FlowKey,
    pub req: Box<Request>,
    pub req_ts: Ts,
    /// 1xx statuses before the final response.
    pub interim: Vec<u16>,
    pub resp: Option<Box<Response>>,
    pub resp_ts: Option<Ts>,
    pub end: Option<(Ts, HopEnd)>,
    /// The client side (initiator) closed its half while the request waited
    /// for its answer: a proxy giving up on its upstream, or a client giving
    /// up on the proxy.
    pub client_fin: Option<Ts>,
    /// The request this one was forwarded from (the previous hop), when
    /// that hop is in the capture.
    pub from: Option<TxnId>,
    /// What paired it with `from`.
    pub paired_by: Option<PairedBy>,
    /// The request was decrypted from a TLS connection (its handshake facts).
    pub tls: Option<Box<crate::proto::tls::TlsInfo>>,
    /// What it carries of an upgrade, worked out once when first asked.
    pub upgrade: std::cell::OnceCell<UpgradeHeaders>,
}

impl HopRequest {
    /// A request just read: nothing known yet of its answer, its end or
    /// the hop it came from.
    pub fn new(id: TxnId, conn: ConnId, flow: FlowKey, req: Box<Request>, req_ts: Ts) -> HopRequest {
        HopRequest {
            id,
            conn,
            flow,
            req,
            req_ts,
            interim: Vec::new(),
            resp: None,
            resp_ts: None,
            end: None,
            client_fin: None,
            from: None,
            paired_by: None,
            tls: None,
            upgrade: Default::default(),
        }
    }

    pub fn is_websocket_attempt(&self) -> bool {
        self.req.is_websocket_attempt()
    }

    /// What it carries of an upgrade (worked out once).
    pub fn upgrade(&self) -> &UpgradeHeaders {
        self.upgrade.get_or_init(|| upgrade_headers(&self.req))
    }

    /// A complete RFC 6455 upgrade request: what a backend needs to say 101.
    pub fn complete_upgrade(&self) -> bool {
        self.upgrade().intact()
            && self.req.version == crate::proto::Version::Http11
            && self.req.headers.has("sec-websocket-key")
            && self.req.headers.has("sec-websocket-version")
    }

    /// The HTTP/2 stream the request came on, if it did.
    pub fn stream(&self) -> Option<u32> {
        crate::proto::h2::split_stream_conn(self.conn).map(|x| x.1)
    }

    pub fn status(&self) -> Option<u16> {
        self.resp.as_ref().map(|r| r.status)
    }

    /// The upgrade succeeded: 101, or a 2xx to an HTTP/2 extended CONNECT
    /// (RFC 8441).
    pub fn upgraded(&self) -> bool {
        match self.status() {
            Some(101) => true,
            Some(s) => (200..300).contains(&s) && self.req.is_extended_connect(),
            None => false,
        }
    }

    /// How the exchange ended without a response, as far as known now: its
    /// end, or the client's half-close while the server still had not
    /// answered.
    pub fn how_ended(&self) -> Option<HopEnd> {
        if self.resp.is_some() {
            return None;
        }
        self.end.map(|e| e.1).or(self.client_fin.map(|_| HopEnd::ClientClosed))
    }

    /// When the exchange finished (response head or end), if it has.
    pub fn finished_at(&self) -> Option<Ts> {
        self.resp_ts.or(self.end.map(|e| e.0))
    }

    /// Latency from the request's first byte to the response's first byte.
    pub fn latency_ms(&self) -> Option<f64> {
        self.resp_ts.map(|t| t.millis_since(self.req_ts))
    }

    /// Failed to get any response (the connection closed or reset).
    pub fn failed(&self) -> bool {
        self.resp.is_none() && self.end.is_some_and(|(_, e)| !matches!(e, HopEnd::Conn(r) if r.is_unfinished()))
    }
}

/// What an upgrade request lacks (RFC 6455 4.1; RFC 8441's `:protocol` on
/// HTTP/2): `missing` names headers (or the `upgrade` token of Connection)
/// that are absent, `mangled` those present with the wrong value.
#[derive(Debug, Clone, Default)]
pub struct UpgradeHeaders {
    pub missing: Vec<&'static str>,
    pub mangled: Vec<(String, String)>,
}

pub fn upgrade_headers(r: &Request) -> UpgradeHeaders {
    let mut missing = Vec::new();
    let mut mangled = Vec::new();
    // HTTP/2 has no Upgrade or Connection: RFC 8441's `:protocol
    // websocket` on a CONNECT is the whole of the upgrade request.
    if r.is_h2() {
        if !r.is_extended_connect() {
            missing.push(":protocol");
        }
        return UpgradeHeaders { missing, mangled };
    }
    // Values are only copied out when something is wrong (the usual case
    // allocates nothing).
    if !r.headers.has_token("upgrade", "websocket") {
        match r.headers.joined("upgrade") {
            None => missing.push("Upgrade"),
            Some(v) => mangled.push(("Upgrade".to_string(), v)),
        }
    }
    if !r.headers.has_token("connection", "upgrade") {
        match r.headers.joined("connection") {
            None => missing.push("Connection"),
            Some(v) => mangled.push(("Connection".to_string(), v)),
        }
    }
    UpgradeHeaders { missing, mangled }
}

impl UpgradeHeaders {
    pub fn intact(&self) -> bool {
        self.missing.is_empty() && self.mangled.is_empty()
    }

    /// "without Upgrade and with Connection: close"
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            parts.push(format!("without {}", self.missing.join(" and ")));
        }
        for (n, v) in &self.mangled {
            parts.push(format!("with {n}: {v}"));
        }
        parts.join(" and ")
    }
}

/// A TLS connection that probably carried the request a proxy forwarded
/// (only the upstream hop is readable).
#[derive(Debug, Clone)]
pub struct TlsFront {
    pub conn: ConnId,
    pub flow: FlowKey,
    pub sni: Option<String>,
    /// Its handshake facts and why it was not decrypted, when known.
    pub tls: Option<Box<crate::proto::tls::TlsInfo>>,
    /// When the client began sending the application data this request was
    /// paired with (None: paired by its ClientHello only).
    pub turn: Option<Ts>,
    /// How sure the pairing is.
    pub confidence: Confidence,
    /// Connections that could have been the client hop.
    pub candidates: u32,
}

/// A failed connection attempt (no request ever crossed it).
#[derive(Debug, Clone)]
pub struct Attempt {
    pub conn: ConnId,
    pub flow: FlowKey,
    pub ts: Ts,
    /// Refused (RST to the SYN) or unanswered (still waiting, or gave up).
    pub refused: bool,
}

/// A client request and what became of it on each hop in view: raised once
/// its client-side request has finished (final response, or its connection
/// ended), when every forwarded copy exists.
pub struct Exchange<'a> {
    /// The handshake record's id when this is an upgrade attempt.
    pub handshake: Option<u64>,
    pub chain: u64,
    pub ts: Ts,
    pub path: &'a str,
    pub outcome: Outcome,
    pub client: Option<&'a HopRequest>,
    pub upstream: Option<&'a HopRequest>,
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
    pub fn front(&self) -> Option<&HopRequest> {
        self.client.or(self.upstream)
    }
}

/// A WebSocket session that ended (or that the capture's end ended): its
/// summary, and the activity of the hops whose frames could be read.
pub struct SessionEnd<'a> {
    pub session: &'a Session,
    pub client: Option<&'a WsActivity>,
    pub upstream: Option<&'a WsActivity>,
}

impl SessionEnd<'_> {
    /// When its close began: the first closing action (close frame, FIN,
    /// RST) on a hop whose activity is known, else its end.
    pub fn close_ts(&self) -> Ts {
        [self.client, self.upstream]
            .into_iter()
            .flatten()
            .filter_map(|w| w.first_close.map(|c| c.0))
            .min()
            .unwrap_or(Ts::from_secs_f64(self.session.end))
    }
}

/// What is known of an HTTP/2 connection: raised when its SETTINGS or
/// GOAWAY change, and once more when it ends.
#[derive(Debug, Clone)]
pub struct H2Conn {
    pub conn: ConnId,
    pub flow: FlowKey,
    /// When its client's first SETTINGS and the server's were seen.
    pub opened: Ts,
    pub client: Option<Settings>,
    pub server: Option<Settings>,
    /// Streams opened, and extended CONNECT streams among them.
    pub streams: u32,
    pub websocket_streams: u32,
    /// GOAWAY (sender's direction, last stream, code), the latest.
    pub goaway: Option<(Dir, u32, u32)>,
    /// The connection ended (the view is the last one).
    pub closed: Option<Ts>,
}

impl H2Conn {
    /// The server offered RFC 8441 (SETTINGS_ENABLE_CONNECT_PROTOCOL = 1).
    pub fn offers_websocket(&self) -> Option<bool> {
        self.server.map(|s| s.enable_connect_protocol == Some(1))
    }
}

/// A WebSocket session still open, with its activity so far (live views:
/// the dashboard, warnings about sessions near a timeout).
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: u64,
    /// The handshake record that opened it.
    pub handshake: u64,
    pub path: String,
    pub client_flow: Option<FlowKey>,
    /// The client hop is this HTTP/2 stream of `client_flow` (a session
    /// per stream).
    pub client_stream: Option<u32>,
    pub upstream_flow: Option<FlowKey>,
    pub start: Ts,
    /// Last frame in either direction on any hop.
    pub last_activity: Ts,
    pub frames: Dirs,
    pub bytes: Dirs,
}

/// A complete fact, as detectors receive it.
#[derive(Clone, Copy)]
pub enum Fact<'a> {
    /// A client request and what became of it.
    Exchange(&'a Exchange<'a>),
    /// An upgraded session ended.
    SessionEnded(&'a SessionEnd<'a>),
    /// An HTTP/2 connection's SETTINGS or GOAWAY changed, or it ended.
    H2Connection(&'a H2Conn),
}

/// Where correlation hands what it completes. Records come in the order
/// they were made; a fact's records (a handshake before its exchange, a
/// session with its end) come with it. Findings about the facts raised are
/// written after those records, once correlation says the facts are
/// settled.
pub trait FactSink {
    /// A record correlation made: a handshake, a session, a `-v` line.
    fn record(&mut self, r: Record);
    /// A complete fact.
    fn fact(&mut self, f: Fact<'_>);
    /// The facts raised since the last call, and their records, are all
    /// there: what was found about them can be written.
    fn settle(&mut self);
}

/// What an exchange fact said, kept by [`Collect`].
#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeSeen {
    pub handshake: Option<u64>,
    pub client: Option<FlowKey>,
    pub upstream: Option<FlowKey>,
    pub outcome: Outcome,
    pub tls_front: Option<FlowKey>,
}

/// Keeps records and what the facts said (correlation alone: tests, tools).
#[derive(Default)]
pub struct Collect {
    pub records: Vec<Record>,
    pub exchanges: Vec<ExchangeSeen>,
    /// Sessions ended, with who closed (the session summary).
    pub sessions: Vec<Session>,
    /// HTTP/2 connections: their flow, whether the server offered RFC
    /// 8441, and whether it was their end.
    pub h2: Vec<(FlowKey, Option<bool>, bool)>,
    /// `settle` calls.
    pub settled: u64,
}

impl FactSink for Collect {
    fn record(&mut self, r: Record) {
        self.records.push(r);
    }
    fn fact(&mut self, f: Fact<'_>) {
        match f {
            Fact::Exchange(x) => self.exchanges.push(ExchangeSeen {
                handshake: x.handshake,
                client: x.client.map(|c| c.flow),
                upstream: x.upstream.map(|u| u.flow),
                outcome: x.outcome,
                tls_front: x.tls_front.map(|t| t.flow),
            }),
            Fact::SessionEnded(s) => self.sessions.push(s.session.clone()),
            Fact::H2Connection(c) => self.h2.push((c.flow, c.offers_websocket(), c.closed.is_some())),
        }
    }
    fn settle(&mut self) {
        self.settled += 1;
    }
}
