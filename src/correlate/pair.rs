//! Pairing a forwarded request with the client request it came from.
//!
//! No configuration: the upstream request must start after the client
//! request and before the client's response, on a connection to a
//! different server endpoint, with the same method. Within that window,
//! evidence is scored: the Sec-WebSocket-Key (proxies forward it end to
//! end, but HTTP/2 and HTTP/3 bridges mint a new one, so it is never the
//! only evidence), X-Forwarded-For naming the client, the request target,
//! and headers a proxy passes through unchanged.

use super::txn::Txn;
use crate::proto::Request;

/// Evidence below this is not enough to pair.
pub const MIN_SCORE: i32 = 20;
/// A forwarded request starts within this long of the client's.
pub const MAX_DELAY_S: f64 = 300.0;

/// Scores `child` as the forwarded copy of `parent`. None: impossible.
pub fn score(parent: &Txn, child: &Txn) -> Option<(i32, &'static str)> {
    if parent.conn == child.conn
        || child.req_ts < parent.req_ts
        || child.req_ts.since(parent.req_ts) > MAX_DELAY_S
        || parent.flow.dst == child.flow.dst
        || !parent.req.method.eq_ignore_ascii_case(&child.req.method)
    {
        return None;
    }
    let (p, c) = (&parent.req, &child.req);
    let mut s = 0;
    let mut by = "headers";
    match (p.headers.get("sec-websocket-key"), c.headers.get("sec-websocket-key")) {
        (Some(a), Some(b)) if a == b => {
            s += 100;
            by = "key";
        }
        (Some(_), Some(_)) => s -= 20,
        _ => {}
    }
    if forwarded_for_names(c, &parent.flow.src.ip.to_string()) {
        s += 40;
    }
    if p.target == c.target {
        s += 30;
    } else if p.path() == c.path() {
        s += 25;
    } else if p.path().ends_with(c.path()) || c.path().ends_with(p.path()) {
        s += 10;
    }
    for (name, same, differ) in [
        ("user-agent", 10, -10),
        ("origin", 10, -5),
        ("cookie", 5, -5),
        ("sec-websocket-version", 5, 0),
        ("sec-websocket-protocol", 5, -5),
        ("sec-websocket-extensions", 3, 0),
        ("host", 5, 0),
        ("accept-language", 3, -3),
    ] {
        match (p.headers.get(name), c.headers.get(name)) {
            (Some(a), Some(b)) if a == b => s += same,
            (Some(_), Some(_)) => s += differ,
            _ => {}
        }
    }
    // The proxy connects out from the host the client connected to.
    if child.flow.src.ip == parent.flow.dst.ip {
        s += 10;
    }
    if s < MIN_SCORE {
        return None;
    }
    if by != "key" && s < 40 {
        by = "timing";
    }
    Some((s, by))
}

/// X-Forwarded-For, X-Real-IP or Forwarded names this client address.
pub fn forwarded_for_names(r: &Request, ip: &str) -> bool {
    let xff = r.headers.tokens("x-forwarded-for").any(|t| t == ip);
    let real = r.headers.get("x-real-ip").is_some_and(|v| v.trim() == ip);
    let fwd = r
        .headers
        .tokens("forwarded")
        .flat_map(|t| t.split(';'))
        .any(|kv| kv.trim().strip_prefix("for=").is_some_and(|v| v.trim_matches(['"', '[', ']']) == ip));
    xff || real || fwd
}

/// Headers only a proxy adds: a request that has them came through one.
pub fn has_proxy_headers(r: &Request) -> bool {
    ["x-forwarded-for", "x-real-ip", "forwarded", "via", "x-forwarded-proto", "x-forwarded-host"]
        .iter()
        .any(|h| r.headers.has(h))
}
