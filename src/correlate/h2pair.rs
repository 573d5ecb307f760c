//! HTTP/2 client hops: each stream is followed as a connection of its own
//! (its id from [`crate::proto::h2::stream_conn`]), so a WebSocket session
//! is per stream. An RFC 8441 extended CONNECT (`:protocol websocket`) is
//! forwarded by the proxy as an HTTP/1.1 `GET` upgrade with a
//! Sec-WebSocket-Key the proxy made up, so keys cannot pair the two hops:
//! request ids the proxy passes or adds (X-Request-ID, traceparent, ...),
//! X-Forwarded-For, the path, the headers it passes through, and timing
//! and order do. Pairing stays one to one (a request forwarded once) and
//! says how sure it is.
//!
//! Connection-level facts (SETTINGS, GOAWAY) are kept per connection,
//! bounded, and raised as [`H2Conn`] facts.

use super::pair::{Evidence, in_window};
use super::txn::Txn;
use super::{Correlator, WsActivity};
use crate::event::ConnId;
pub use crate::facts::H2Conn;
use crate::facts::{Fact, FactSink};
use crate::flow::FlowKey;
use crate::proto::h2::{self, ConnFact};
use crate::proto::{Dir, Request};
use crate::record::{Confidence, PairedBy};
use crate::time::Ts;

/// Headers that carry a request id end to end (or that a proxy adds to
/// both the forwarded request and its answer to the client).
pub const REQUEST_IDS: &[&str] =
    &["x-request-id", "traceparent", "x-correlation-id", "x-amzn-trace-id", "request-id", "x-b3-traceid"];

/// HTTP/2 connections remembered at once (their SETTINGS, for detectors).
const MAX_CONNS: usize = 4096;

#[derive(Debug, Default)]
pub struct H2State {
    conns: crate::flow::key::FxHashMap<ConnId, H2Conn>,
    /// Each open stream's TCP connection (from its `H2Stream` event: a
    /// stream's id holds only the low 32 bits of its connection's).
    parents: crate::flow::key::FxHashMap<ConnId, ConnId>,
    /// Connections in the order their view was made (entries of views
    /// gone are skipped, and dropped when they outnumber the live ones).
    order: std::collections::VecDeque<ConnId>,
    /// Connections forgotten for the bound.
    pub evicted: u64,
}

impl Correlator {
    /// A stream's id was opened (its `Open` came first): it inherits its
    /// connection's TLS facts.
    pub(super) fn h2_stream(&mut self, conn: ConnId, parent: ConnId, ts: Ts) {
        let tls = self.conns.get(&parent).and_then(|c| c.tls_info.clone());
        if let Some(c) = self.conns.get_mut(&conn) {
            c.tls_info = tls;
            c.established = true;
        }
        self.h2.parents.insert(conn, parent);
        let view = self.h2_view(parent, ts);
        if let Some(v) = view {
            v.streams += 1;
        }
    }

    fn h2_view(&mut self, conn: ConnId, ts: Ts) -> Option<&mut H2Conn> {
        let flow = self.conns.get(&conn)?.flow;
        let st = &mut self.h2;
        if !st.conns.contains_key(&conn) {
            if st.conns.len() >= MAX_CONNS {
                // Forget the oldest (views of closed connections are gone
                // already): O(1) amortised, no scan of the views.
                while let Some(old) = st.order.pop_front() {
                    if st.conns.remove(&old).is_some() {
                        st.evicted += 1;
                        break;
                    }
                }
            }
            st.order.push_back(conn);
            if st.order.len() > 2 * st.conns.len() + 1024 {
                let conns = &st.conns;
                st.order.retain(|c| conns.contains_key(c) || *c == conn);
            }
        }
        Some(self.h2.conns.entry(conn).or_insert_with(|| H2Conn {
            conn,
            flow,
            opened: ts,
            client: None,
            server: None,
            streams: 0,
            websocket_streams: 0,
            goaway: None,
            closed: None,
        }))
    }

    /// SETTINGS or GOAWAY on an HTTP/2 connection.
    pub(super) fn h2_fact(&mut self, conn: ConnId, ts: Ts, fact: ConnFact, out: &mut dyn FactSink) {
        let Some(v) = self.h2_view(conn, ts) else { return };
        match fact {
            ConnFact::Settings { dir: Dir::ToServer, settings } => v.client = Some(settings),
            ConnFact::Settings { dir: Dir::ToClient, settings } => v.server = Some(settings),
            ConnFact::GoAway { dir, last_stream, code } => v.goaway = Some((dir, last_stream, code)),
        }
        out.fact(Fact::H2Connection(v));
        out.settle();
    }

    /// An extended CONNECT request arrived on a stream.
    pub(super) fn h2_request(&mut self, conn: ConnId, req: &Request) {
        if !req.is_extended_connect() {
            return;
        }
        if let Some(parent) = self.h2.parents.get(&conn)
            && let Some(v) = self.h2.conns.get_mut(parent)
        {
            v.websocket_streams += 1;
        }
    }

    /// A connection ended: a TCP connection's HTTP/2 view is final; a
    /// stream's connection is forgotten.
    pub(super) fn h2_closed(&mut self, conn: ConnId, ts: Ts, out: &mut dyn FactSink) {
        if h2::split_stream_conn(conn).is_some() {
            self.h2.parents.remove(&conn);
        }
        if let Some(mut v) = self.h2.conns.remove(&conn) {
            v.closed = Some(ts);
            out.fact(Fact::H2Connection(&v));
            out.settle();
        }
    }

    /// How sure the pairing of `child` with the HTTP/2 stream `parent` is:
    /// `high` when a request id matched, or when no other open extended
    /// CONNECT on that path could have been forwarded as it; `medium` when
    /// several could (order decided); `low` on timing alone.
    pub(super) fn h2_confidence(&self, parent: &Txn, child: &Txn, by: PairedBy) -> Confidence {
        if by == PairedBy::RequestId {
            return Confidence::High;
        }
        let rivals = self
            .open
            .candidates(child)
            .into_iter()
            .filter(|&id| id != parent.id)
            .filter_map(|id| self.txns.get(&id))
            .filter(|p| !p.done && p.to.is_none() && p.req.is_extended_connect())
            .filter(|p| score(p, child, false).is_some())
            .count();
        match (rivals, by) {
            (0, PairedBy::Headers) => Confidence::High,
            (0, _) | (_, PairedBy::Headers) => Confidence::Medium,
            _ => Confidence::Low,
        }
    }

    /// The live activity of a session hop: an HTTP/2 stream's is kept by
    /// its TCP connection.
    pub(crate) fn live_activity(flows: &crate::flow::FlowTable, flow: FlowKey, conn: ConnId) -> Option<&WsActivity> {
        match h2::split_stream_conn(conn) {
            Some((tcp, stream)) => flows.get_low(flow, tcp)?.stream_activity(stream),
            None => flows.get(flow, conn)?.activity(),
        }
    }
}

/// A paired HTTP/2 stream whose answer carries a request id (a proxy that
/// adds X-Request-ID to the forwarded request and echoes it to the
/// client): the same id on the forwarded request confirms the pair
/// (`request-id`, high); another id contradicts it (low).
pub fn confirm(c: &Txn, u: &Txn) -> Option<(PairedBy, Confidence)> {
    if !c.req.is_h2() {
        return None;
    }
    let resp = c.resp.as_deref()?;
    for name in REQUEST_IDS {
        if let (Some(a), Some(b)) = (resp.headers.get(name), u.req.headers.get(name)) {
            return Some(if a.trim() == b.trim() {
                (PairedBy::RequestId, Confidence::High)
            } else {
                (u.paired_by.unwrap_or(PairedBy::Timing), Confidence::Low)
            });
        }
    }
    None
}

/// The HTTP/2 stream of a connection id, when it is one.
pub fn stream_of(conn: ConnId) -> Option<u32> {
    h2::split_stream_conn(conn).map(|x| x.1)
}

/// The value of the first request-id header both requests carry.
fn shared_id<'a>(p: &'a Request, c: &'a Request) -> Option<(&'static str, bool)> {
    for name in REQUEST_IDS {
        if let (Some(a), Some(b)) = (p.headers.get(name), c.headers.get(name)) {
            return Some((name, a.trim() == b.trim()));
        }
    }
    None
}

/// Scores `child` (an HTTP/1.1 request) as the forward of the extended
/// CONNECT `parent`. None: impossible. The same rules as HTTP/1.1 pairs
/// (pair.rs) where they apply; what differs: the method (CONNECT becomes
/// GET), the key (made up by the proxy), the authority (`:authority`
/// becomes Host), and request ids, which weigh as much as a key.
pub fn score(parent: &Txn, child: &Txn, parent_is_backend: bool) -> Option<(i32, PairedBy)> {
    if !in_window(parent, child) || !child.req.method.eq_ignore_ascii_case("GET") || child.req.is_h2() {
        return None;
    }
    let (p, c) = (&parent.req, &child.req);
    let mut e = Evidence::default();
    let mut by = PairedBy::Headers;
    match shared_id(p, c) {
        Some((_, true)) => {
            e.strong(100);
            by = PairedBy::RequestId;
        }
        // The same id header with another value: not this request's.
        Some((_, false)) => return None,
        None => {}
    }
    e.client_and_host(parent, child, parent_is_backend)?;
    e.target(p, c, false);
    if let (Some(a), Some(h)) = (p.headers.get(":authority"), c.headers.get("host"))
        && a.eq_ignore_ascii_case(h)
    {
        e.s += 5;
    }
    e.passed_through(p, c);
    e.verdict(by, PairedBy::RequestId)
}
