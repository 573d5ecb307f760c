//! WebSockets across the protocol change at a proxy: an HTTP/2 client hop
//! (RFC 8441 extended CONNECT, success = 2xx) forwarded as an HTTP/1.1
//! upgrade (success = 101).
//!
//! - `false-upgrade-success`: the client's stream was answered 2xx (which
//!   RFC 8441 reads as success: the browser fires `onopen`) while the
//!   backend did not switch protocols (it answered a plain 200, its body
//!   relayed as DATA): the browser then gets bytes that are not WebSocket
//!   frames and the stream ends (1006, no message ever). Decided from both
//!   hops, or from the client hop alone when its 2xx carries a body
//!   (Content-Length / Content-Type: a plain response passed off as an
//!   accepted tunnel).
//! - `h2-websocket-not-offered`: an HTTP/2 front whose SETTINGS lack
//!   ENABLE_CONNECT_PROTOCOL, and a client of it that wanted a WebSocket:
//!   it opened one over a separate HTTP/1.1 connection to the same front
//!   while its HTTP/2 connection was open (the browser's fallback), or it
//!   sent an extended CONNECT anyway and was refused.
//!
//! The other findings about such an exchange (the upgrade stripped, the
//! backend's refusal relayed as `:status 426`, idle cuts of one stream)
//! are the usual ones: the h2 hop's `:protocol websocket` is its upgrade
//! request, and a stream's RST_STREAM its reset.

use std::collections::VecDeque;
use std::net::IpAddr;

use serde_json::{Value, json};

use super::diagnosis::{Diagnosis, about, finding};
use super::evidence::{self, COMPARED, change};
use super::proxy::Proxy;
use super::{Finding, FindingKind, Severity};
use crate::facts::{Exchange, H2Conn, HopRequest};
use crate::flow::{Endpoint, FlowKey};
use crate::proto::Request;
use crate::record::{CloseHow, Role, Side};
use crate::redact::Redactor;
use crate::time::Ts;

/// HTTP/2 connections without RFC 8441 remembered at once.
const MAX_FRONTS: usize = 1024;

/// What the HTTP/2 detector remembers: connections whose server did not
/// offer RFC 8441, to match a client's fallback to HTTP/1.1 against.
#[derive(Debug, Default)]
pub struct H2Memory {
    not_offered: VecDeque<NotOffered>,
}

#[derive(Debug, Clone)]
struct NotOffered {
    flow: FlowKey,
    since: Ts,
    until: Option<Ts>,
    reported: bool,
    /// The client sent an extended CONNECT on it anyway.
    tried: u32,
}

impl NotOffered {
    fn client(&self) -> IpAddr {
        self.flow.src.ip
    }
    fn front(&self) -> Endpoint {
        self.flow.dst
    }
}

/// The differences between an HTTP/2 client request and the HTTP/1.1
/// request the proxy made of it: `:protocol` against Upgrade/Connection,
/// `:authority` against Host, then the headers compared for any hop.
pub fn diff(c: &Request, u: &Request, r: Redactor) -> Vec<Value> {
    let mut out = vec![
        json!({"header": "HTTP version", "client": c.version.as_str(), "upstream": u.version.as_str(), "change": "translated"}),
    ];
    let proto = c.headers.get(":protocol");
    let up = u.headers.joined("upgrade");
    let conn = u.headers.joined("connection");
    let ws = up.as_deref().is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("websocket")));
    let has_upgrade = conn.as_deref().is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade")));
    let upgrade_change = match (proto.is_some(), ws) {
        (true, true) => "translated",
        (true, false) if up.is_none() => "missing",
        (true, false) => "mangled",
        (false, true) => "added",
        (false, false) => "",
    };
    if !upgrade_change.is_empty() {
        out.push(json!({"header": "Upgrade", "client": proto.map(|p| format!(":protocol {p}")), "upstream": up, "change": upgrade_change}));
    }
    let conn_change = match (proto.is_some(), has_upgrade) {
        (true, true) => "translated",
        (true, false) if conn.is_none() => "missing",
        (true, false) => "mangled",
        (false, true) => "added",
        (false, false) => "",
    };
    if !conn_change.is_empty() {
        out.push(json!({"header": "Connection", "client": proto.map(|_| "(CONNECT)"), "upstream": conn, "change": conn_change}));
    }
    if let Some(k) = u.headers.get("sec-websocket-key") {
        out.push(json!({"header": "Sec-WebSocket-Key", "client": null, "upstream": r.header("sec-websocket-key", k), "change": "made up by the proxy"}));
    }
    let auth = c.headers.get(":authority");
    let host = u.headers.get("host");
    if auth.is_some() || host.is_some() {
        let ch = match (auth, host) {
            (Some(a), Some(h)) if a.eq_ignore_ascii_case(h) => "translated",
            (Some(_), Some(_)) => "changed",
            (Some(_), None) => "missing",
            _ => "added",
        };
        out.push(json!({"header": "Host", "client": auth.map(|a| format!(":authority {a}")), "upstream": host, "change": ch}));
    }
    for name in COMPARED.iter().filter(|n| !matches!(**n, "Upgrade" | "Connection" | "Host" | "Sec-WebSocket-Key")) {
        let a = c.headers.joined(name);
        let b = u.headers.joined(name);
        if let Some(ch) = change(name, a.as_deref(), b.as_deref()) {
            out.push(json!({
                "header": name,
                "client": a.map(|v| r.header(name, &v)),
                "upstream": b.map(|v| r.header(name, &v)),
                "change": ch,
            }));
        }
    }
    out
}

/// A 2xx that carries a body: a plain response, not an accepted tunnel.
fn plain_body(t: &HopRequest) -> Option<(Option<String>, Option<u64>)> {
    let r = t.resp.as_deref()?;
    let ctype = r.headers.get("content-type").map(str::to_string);
    let len = r.headers.content_length();
    (ctype.is_some() || len.is_some_and(|l| l > 0)).then_some((ctype, len))
}

/// The client hop is an HTTP/2 extended CONNECT answered 2xx.
fn accepted_h2(t: &HopRequest) -> bool {
    t.req.is_extended_connect() && t.upgraded()
}

impl Diagnosis {
    /// Findings only an HTTP/2 client hop can have; `fs` are the findings
    /// already made for this exchange (the usual ones), tied to the
    /// false success when it explains them.
    pub(super) fn h2_exchange(&mut self, x: &Exchange<'_>, proxy: Proxy, fs: &mut Vec<Finding>) {
        let Some(c) = x.client.filter(|c| c.req.is_h2()) else { return };
        if c.req.is_extended_connect() && !c.upgraded() {
            self.h2_refused_connect(x, c);
        }
        if !accepted_h2(c) {
            return;
        }
        let body = plain_body(c);
        let pname = proxy.name();
        let stream = c.stream().unwrap_or(0);
        let status = c.status().unwrap_or(0);
        let (msg, mut d) = match x.upstream {
            Some(u) if !u.upgraded() => {
                let what = match u.status() {
                    Some(s) => format!(
                        "the backend at {} answered {} {}",
                        u.flow.dst,
                        s,
                        evidence::saw(u).trim_start_matches(&s.to_string()).trim()
                    ),
                    None => format!("the backend at {} never switched protocols ({})", u.flow.dst, evidence::saw(u)),
                };
                let stripped = !evidence::upgrade_headers(&u.req).intact();
                (
                    format!(
                        "false WebSocket success on {}: {pname} forwarded the HTTP/2 extended CONNECT (stream {stream}) as GET {}{}; {what}, not 101, yet {pname} relayed :status {status} to the client, which RFC 8441 reads as success: the browser fired onopen, then got the plain response body as DATA instead of WebSocket frames and the stream ended (1006, no message ever)",
                        x.path,
                        u.req.path(),
                        if stripped {
                            format!(" {}", evidence::upgrade_headers(&u.req).describe())
                        } else {
                            String::new()
                        },
                    ),
                    json!({"backend_status": u.status(), "upgrade_stripped": stripped}),
                )
            }
            None if body.is_some() => (
                format!(
                    "false WebSocket success on {}: the HTTP/2 extended CONNECT (stream {stream}) was answered :status {status} with a body ({}), a plain HTTP response passed off as an accepted WebSocket: the browser fired onopen, then got that body as DATA instead of WebSocket frames (1006, no message ever); the backend did not switch protocols (its hop is not in this capture)",
                    x.path,
                    describe_body(&body)
                ),
                json!({"backend_status": null}),
            ),
            _ => return,
        };
        let mut dd = self.h2_detail(x);
        if let (Value::Object(a), Value::Object(b)) = (&mut dd, &mut d) {
            a.append(b);
        }
        d = dd;
        d["stream_id"] = json!(stream);
        d["client_status"] = json!(status);
        if let Some((ctype, len)) = &body {
            d["client_body"] = json!({"content_type": ctype, "content_length": len});
        }
        let mut fl = vec![c.flow];
        if let Some(u) = x.upstream {
            fl.push(u.flow);
        }
        let mut lead = about(x, proxy, FindingKind::FalseUpgradeSuccess, Severity::Error, fl, msg, d);
        // The usual findings explain it (the upgrade stripped, the backend
        // refusing): one fault, the false success first.
        for f in fs.iter_mut().filter(|f| f.primary && f.kind != FindingKind::ForwardedProtoMissing) {
            lead.tie(f);
        }
        if let Some(h) = x.handshake {
            self.bad_handshakes.insert(h);
        }
        fs.insert(0, lead);
    }

    fn h2_detail(&self, x: &Exchange<'_>) -> Value {
        let r = self.redact;
        let mut d = json!({
            "handshake": x.handshake,
            "hops": {
                "client": x.client.map(|c| evidence::hop(c, r)),
                "upstream": x.upstream.map(|u| evidence::hop(u, r)),
            },
            "client_saw": x.client.map(evidence::saw),
        });
        if let (Some(c), Some(u)) = (x.client, x.upstream) {
            d["diff"] = Value::Array(evidence::diff(&c.req, &u.req, r));
        }
        d
    }

    /// An extended CONNECT the front refused: if it never offered RFC 8441
    /// on that connection, the client wanted what it was not offered.
    fn h2_refused_connect(&mut self, x: &Exchange<'_>, c: &HopRequest) {
        let Some(n) = self.h2.not_offered.iter_mut().find(|n| n.flow == c.flow) else { return };
        n.tried += 1;
        let _ = x;
    }

    /// An HTTP/2 connection's facts: remember those whose server does not
    /// offer RFC 8441.
    pub(super) fn h2_conn(&mut self, v: &H2Conn, out: &mut Vec<Finding>) {
        if v.offers_websocket() == Some(false) {
            match self.h2.not_offered.iter_mut().find(|n| n.flow == v.flow) {
                Some(n) => n.until = v.closed,
                None => {
                    if self.h2.not_offered.len() >= MAX_FRONTS {
                        self.h2.not_offered.pop_front();
                    }
                    self.h2.not_offered.push_back(NotOffered {
                        flow: v.flow,
                        since: v.opened,
                        until: v.closed,
                        reported: false,
                        tried: 0,
                    });
                }
            }
        }
        // A connection that ended with extended CONNECTs refused on it.
        if v.closed.is_some()
            && let Some(i) = self.h2.not_offered.iter().position(|n| n.flow == v.flow)
        {
            let n = self.h2.not_offered[i].clone();
            if n.tried > 0 && !n.reported {
                self.h2.not_offered[i].reported = true;
                let proxy = self.known_proxy_at(n.front()).unwrap_or(Proxy::Unknown);
                let msg = format!(
                    "the HTTP/2 front at {} does not offer WebSockets over HTTP/2 (its SETTINGS lack ENABLE_CONNECT_PROTOCOL, RFC 8441), yet the client {} sent {} extended CONNECT request(s) on that connection and was refused: its WebSocket never opened",
                    n.front(),
                    n.client(),
                    n.tried
                );
                let d = json!({"h2_flow": n.flow, "enable_connect_protocol": false, "extended_connects_refused": n.tried, "fallback": null});
                out.push(finding(
                    FindingKind::H2WebsocketNotOffered,
                    Severity::Error,
                    n.since,
                    vec![n.flow],
                    None,
                    msg,
                    proxy,
                    None,
                    d,
                ));
            }
        }
    }

    /// A WebSocket upgrade over HTTP/1.1 into a front the same client has
    /// an HTTP/2 connection to, which did not offer RFC 8441: the client's
    /// fallback (a browser opens another TCP+TLS connection for it).
    pub(super) fn h2_fallback(&mut self, x: &Exchange<'_>, proxy: Proxy, out: &mut Vec<Finding>) {
        let Some(c) = x.client.filter(|c| !c.req.is_h2() && c.req.is_websocket_attempt()) else { return };
        let Some(i) = self.h2.not_offered.iter().position(|n| {
            !n.reported
                && n.client() == c.flow.src.ip
                && n.front() == c.flow.dst
                && n.since <= c.req_ts
                && n.until.is_none_or(|u| c.req_ts <= u)
        }) else {
            return;
        };
        self.h2.not_offered[i].reported = true;
        let n = self.h2.not_offered[i].clone();
        let alpn = c.tls.as_ref().and_then(|t| t.alpn.clone());
        let msg = format!(
            "the HTTP/2 front at {} does not offer WebSockets over HTTP/2 (its SETTINGS lack ENABLE_CONNECT_PROTOCOL, RFC 8441): the client {} had an HTTP/2 connection to it ({}) but opened another {}connection ({}) to upgrade {} over HTTP/1.1 (the browser's fallback: one more TCP{} handshake and connection per WebSocket)",
            n.front(),
            n.client(),
            n.flow.src,
            if c.tls.is_some() { "TLS " } else { "" },
            c.flow.src,
            x.path,
            if c.tls.is_some() { "+TLS" } else { "" }
        );
        let mut d = json!({
            "h2_flow": n.flow,
            "enable_connect_protocol": false,
            "fallback": {"flow": c.flow, "version": c.req.version.as_str(), "alpn": alpn, "status": c.status()},
        });
        d["handshake"] = json!(x.handshake);
        out.push(about(x, proxy, FindingKind::H2WebsocketNotOffered, Severity::Warning, vec![n.flow, c.flow], msg, d));
    }
}

fn describe_body(b: &Option<(Option<String>, Option<u64>)>) -> String {
    match b {
        Some((Some(t), Some(l))) => format!("Content-Type {t}, {l} bytes"),
        Some((Some(t), None)) => format!("Content-Type {t}"),
        Some((None, Some(l))) => format!("{l} bytes"),
        _ => "a body".into(),
    }
}

/// For an idle close of an HTTP/2 stream: what the connection did, in
/// words ("the proxy reset stream 3 (RST_STREAM CANCEL) and left the
/// HTTP/2 connection open"), from the session's client hop.
pub fn stream_close_note(s: &crate::record::Session) -> Option<String> {
    let c = s.hops.iter().find(|h| h.role == Role::Client)?;
    let id = c.stream_id?;
    Some(match (c.closed_with, c.reset) {
        (Some(CloseHow::Rst), Some(code)) => format!(
            "stream {id} was reset with RST_STREAM {code} by the {} while the HTTP/2 connection and its other streams stayed open",
            if c.closed_by == Some(Side::Responder) { "proxy" } else { "client" }
        ),
        (Some(CloseHow::Fin), _) => {
            format!("stream {id} was ended (END_STREAM) while the HTTP/2 connection stayed open")
        }
        _ => format!("on HTTP/2 stream {id}"),
    })
}

/// HAProxy bridging HTTP/2 WebSockets: the upgrade it forwards carries the
/// Sec-WebSocket-Key it made up, spelled `Sec-Websocket-Key` as its
/// HTTP/1 mux writes it, after header names all lower-cased (HTX).
pub fn recognise(client: Option<&Request>, forwarded: Option<&Request>) -> Option<super::proxy::Recognised> {
    let (c, q) = (client?, forwarded?);
    if !c.is_extended_connect() || c.headers.has("sec-websocket-key") {
        return None;
    }
    let made_up = q.headers.iter().any(|(n, _)| n == "Sec-Websocket-Key");
    let others_lower = q
        .headers
        .iter()
        .filter(|(n, _)| *n != "Sec-Websocket-Key")
        .all(|(n, _)| !n.bytes().any(|b| b.is_ascii_uppercase()));
    (made_up && others_lower).then(|| {
        (
            Proxy::Haproxy,
            "the forwarded upgrade's made-up key header spelled 'Sec-Websocket-Key' after lower-cased names (HAProxy's HTTP/2 to HTTP/1 bridge)".to_string(),
        )
    })
}
