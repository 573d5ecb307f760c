//! Pairing a forwarded request with the client request it came from.
//!
//! No configuration: the upstream request must start after the client
//! request and before the client's response, on a connection to a
//! different server endpoint, with the same method. Within that window,
//! evidence is scored: the Sec-WebSocket-Key (proxies forward it end to
//! end, but HTTP/2 and HTTP/3 bridges mint a new one, so it is never the
//! only evidence), X-Forwarded-For naming the client, the request target,
//! and headers a proxy passes through unchanged.

use std::net::IpAddr;

use super::txn::Txn;
use crate::proto::Request;
use crate::record::PairedBy;

/// Evidence below this is not enough to pair: the same path from the same
/// host, at least, or a key or X-Forwarded-For.
pub const MIN_SCORE: i32 = 30;
/// A forwarded request starts within this long of the client's.
pub const MAX_DELAY_S: f64 = 300.0;

/// Scores `child` as the forwarded copy of `parent`. None: impossible.
/// `parent_is_backend`: requests to the parent's server were only ever seen
/// as forwarded ones (it is an upstream, not a proxy), so only strong
/// evidence may make it a link in a chain.
pub fn score(parent: &Txn, child: &Txn, parent_is_backend: bool) -> Option<(i32, PairedBy)> {
    if parent.req.is_extended_connect() {
        return super::h2pair::score(parent, child, parent_is_backend);
    }
    if !in_window(parent, child) || !parent.req.method.eq_ignore_ascii_case(&child.req.method) {
        return None;
    }
    let (p, c) = (&parent.req, &child.req);
    // A proxy does not turn a plain request into a WebSocket upgrade.
    if c.is_websocket_attempt() && !p.is_websocket_attempt() {
        return None;
    }
    let mut e = Evidence::default();
    let mut by = PairedBy::Headers;
    match (p.headers.get("sec-websocket-key"), c.headers.get("sec-websocket-key")) {
        (Some(a), Some(b)) if a == b => {
            e.strong(100);
            by = PairedBy::Key;
        }
        // HTTP/1 proxies forward the key unchanged; only WebSocket-
        // terminating proxies mint a new one, so a different key needs
        // strong other evidence.
        (Some(_), Some(_)) => e.s -= 40,
        _ => {}
    }
    e.client_and_host(parent, child, parent_is_backend)?;
    e.target(p, c, true);
    e.passed_through(p, c);
    if let (Some(a), Some(b)) = (p.headers.get("host"), c.headers.get("host"))
        && a == b
    {
        e.s += 5;
    }
    e.verdict(by, PairedBy::Key)
}

/// What every pair needs (HTTP/1.1 and HTTP/2 alike): another
/// connection, to another server endpoint, started after the parent and
/// within [`MAX_DELAY_S`] of it.
pub fn in_window(parent: &Txn, child: &Txn) -> bool {
    parent.conn != child.conn
        && child.req_ts >= parent.req_ts
        && child.req_ts.since(parent.req_ts) <= MAX_DELAY_S
        && parent.flow.dst != child.flow.dst
}

/// The evidence that a request is the forward of another, scored by the
/// rules HTTP/1.1 pairs and HTTP/2 stream pairs (h2pair.rs) share.
#[derive(Default)]
pub struct Evidence {
    /// The score so far.
    pub s: i32,
    /// Something strong was seen (a key, a request id, X-Forwarded-For
    /// naming the client): the proxy may connect out from another host.
    strong: bool,
}

impl Evidence {
    /// Strong evidence, worth `points`.
    pub fn strong(&mut self, points: i32) {
        self.s += points;
        self.strong = true;
    }

    /// X-Forwarded-For naming the parent's client, and the proxy
    /// connecting out from the host the client connected to. Without
    /// strong evidence (same key or request id, X-Forwarded-For naming the
    /// client) the latter is required: otherwise an unrelated later request
    /// with the same path would pass for a forward; and a parent that is
    /// only ever a backend needs strong evidence to be a link in a chain.
    /// None: impossible.
    pub fn client_and_host(&mut self, parent: &Txn, child: &Txn, parent_is_backend: bool) -> Option<()> {
        let c = &child.req;
        if forwarded_for_names(c, parent.flow.src.ip) {
            self.strong(40);
        } else if c.headers.has("x-forwarded-for") && !c.headers.has("x-real-ip") {
            // It names someone else as the client.
            self.s -= 20;
        }
        if child.flow.src.ip == parent.flow.dst.ip {
            self.s += 10;
        } else if !self.strong {
            return None;
        }
        (self.strong || !parent_is_backend).then_some(())
    }

    /// The request target: the same, the same path, one path a suffix of
    /// the other (a prefix stripped), or (`by_query`) the same long query.
    pub fn target(&mut self, p: &Request, c: &Request, by_query: bool) {
        self.s += if p.target == c.target {
            30
        } else if p.path() == c.path() {
            25
        } else if p.path().ends_with(c.path()) || c.path().ends_with(p.path()) {
            10
        } else if by_query && query(&p.target).is_some_and(|q| q.len() >= 8 && Some(q) == query(&c.target)) {
            // The path was rewritten but the query kept, as a location that
            // maps a public prefix to the app's (`location /rt/ { proxy_pass
            // http://app/socket.io/; }`): a long query (an Engine.IO sid and
            // cache-busting token) is as telling as the same target.
            30
        } else {
            -20
        };
    }

    /// Headers a proxy passes through unchanged: the same value adds,
    /// another value costs.
    pub fn passed_through(&mut self, p: &Request, c: &Request) {
        const EVIDENCE: [(&str, i32, i32); 7] = [
            ("user-agent", 10, -10),
            ("origin", 10, -5),
            ("cookie", 5, -5),
            ("sec-websocket-version", 5, 0),
            ("sec-websocket-protocol", 5, -5),
            ("sec-websocket-extensions", 3, 0),
            ("accept-language", 3, -3),
        ];
        let names = EVIDENCE.map(|e| e.0);
        let (ps, cs) = (p.headers.get_each(&names), c.headers.get_each(&names));
        for ((a, b), (_, same, differ)) in ps.into_iter().zip(cs).zip(EVIDENCE) {
            match (a, b) {
                (Some(a), Some(b)) if a == b => self.s += same,
                (Some(_), Some(_)) => self.s += differ,
                _ => {}
            }
        }
    }

    /// Enough to pair, and by what: `by` (what paired it so far) unless it
    /// was not the `decisive` kind and the score is weak (timing).
    pub fn verdict(self, by: PairedBy, decisive: PairedBy) -> Option<(i32, PairedBy)> {
        if self.s < MIN_SCORE {
            return None;
        }
        Some((self.s, if by != decisive && self.s < 40 { PairedBy::Timing } else { by }))
    }
}

/// The query string of a request target, if any.
fn query(target: &str) -> Option<&str> {
    target.split_once('?').map(|(_, q)| q).filter(|q| !q.is_empty())
}

/// Client addresses a request's X-Forwarded-For, X-Real-IP and Forwarded
/// headers name.
pub fn forwarded_ips(r: &Request) -> impl Iterator<Item = IpAddr> + '_ {
    let xff = r.headers.tokens("x-forwarded-for").chain(r.headers.tokens("x-real-ip"));
    let fwd = r
        .headers
        .tokens("forwarded")
        .flat_map(|t| t.split(';'))
        .filter_map(|kv| kv.trim().strip_prefix("for=").or_else(|| kv.trim().strip_prefix("For=")))
        .map(|v| {
            let v = v.trim_matches('"');
            // "[2001:db8::1]:4711" or "192.0.2.60:4711"
            match v.strip_prefix('[') {
                Some(rest) => rest.split(']').next().unwrap_or(rest),
                None => v.split(':').next().unwrap_or(v),
            }
        });
    xff.chain(fwd).filter_map(|t| t.trim().parse::<IpAddr>().ok())
}

/// X-Forwarded-For, X-Real-IP or Forwarded names this client address.
pub fn forwarded_for_names(r: &Request, ip: IpAddr) -> bool {
    forwarded_ips(r).any(|x| x == ip)
}
