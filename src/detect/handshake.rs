//! Upgrade handshakes: what each hop carried and answered, and which hop
//! is to blame. The backend's own refusal of a complete request is never
//! blamed on the proxy.

use serde_json::{Value, json};

use super::diagnosis::{Diagnosis, about, flows};
use super::evidence::{self, complete_upgrade, expected_accept, upgrade_headers};
use super::proxy::Proxy;
use super::{Finding, FindingKind, Severity};
use crate::facts::{Exchange, HopRequest};
use crate::flow::{Endpoint, FlowKey};
use crate::proto::Version;
use crate::record::HopEnd;
use crate::time::Ts;

/// What the backend did, in words.
fn backend_did(u: &HopRequest) -> String {
    match (&u.resp, u.end) {
        (Some(r), _) => format!("the backend answered {} {}", r.status, r.reason).trim_end().to_string(),
        (None, Some((_, HopEnd::ServerClosed))) => "the backend closed the connection without answering".into(),
        (None, Some((_, HopEnd::ServerReset))) => "the backend reset the connection without answering".into(),
        (None, _) => "the backend did not answer".into(),
    }
}

fn status_word(t: &HopRequest) -> String {
    match &t.resp {
        Some(r) => r.status.to_string(),
        None => evidence::saw(t),
    }
}

impl Diagnosis {
    fn detail(&self, x: &Exchange<'_>) -> Value {
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
        if let Some(c) = x.client
            && let Some(t) = &c.tls
        {
            d["hops"]["client"]["tls"] = json!(crate::record::TlsHop::of(Some(t), None));
        }
        if let Some(tf) = x.tls_front {
            d["hops"]["client"] = json!({"flow": tf.flow, "encrypted": true, "sni": tf.sni,
                "tls": crate::record::TlsHop::of(tf.tls.as_deref(), tf.sni.as_deref())});
        }
        d
    }

    pub(super) fn websocket(&mut self, x: &Exchange<'_>, proxy: Proxy, evidence: &[String], out: &mut Vec<Finding>) {
        let before = out.len();
        match (x.client, x.upstream) {
            (Some(c), Some(u)) => self.both_hops(x, c, u, proxy, out),
            (Some(c), None) => self.client_only(x, c, proxy, out),
            (None, Some(u)) => self.upstream_only(x, u, proxy, out),
            (None, None) => {}
        }
        self.bad_accept(x, proxy, out);
        self.h2_fallback(x, proxy, out);
        if out[before..].iter().any(|f| f.severity == Severity::Error)
            && let Some(h) = x.handshake
        {
            self.bad_handshakes.insert(h);
        }
        let mut fs: Vec<Finding> = out.drain(before..).collect();
        one_fault(&mut fs);
        self.h2_exchange(x, proxy, &mut fs);
        for f in &mut fs {
            super::diagnosis::set_evidence(f, evidence);
        }
        // An upgrade-stripped fault waits (offline, bounded) for the other
        // paths through the same front, to tell a location mistake apart.
        let stripped = fs.iter().position(|f| {
            f.primary && (f.kind == FindingKind::UpgradeStripped || f.also.contains(&FindingKind::UpgradeStripped))
        });
        match (stripped, x.client) {
            (Some(i), Some(c)) => {
                let n = 1 + fs[i + 1..].iter().take_while(|f| !f.primary).count();
                let group: Vec<Finding> = fs.drain(i..i + n).collect();
                out.append(&mut fs);
                self.stripped(group, c.flow.dst, out);
            }
            _ => out.append(&mut fs),
        }
    }

    fn both_hops(&mut self, x: &Exchange<'_>, c: &HopRequest, u: &HopRequest, proxy: Proxy, out: &mut Vec<Finding>) {
        let fl = flows(&[Some(c), Some(u)]);
        let ch = upgrade_headers(&c.req);
        let uh = upgrade_headers(&u.req);
        let front = c.flow.dst;
        let pname = proxy.name();
        let up = u.flow.dst;
        let http10 = u.req.version == Version::Http10 && c.req.version != Version::Http10;
        if ch.intact() {
            if uh.intact() {
                if self.intact_paths.len() >= super::diagnosis::MAX_REMEMBERED
                    && !self.intact_paths.contains_key(&front)
                {
                    self.intact_paths.clear();
                }
                let paths = self.intact_paths.entry(front).or_default();
                if !paths.contains(x.path) {
                    paths.insert(x.path.to_string());
                }
            } else {
                let msg = format!(
                    "{pname} forwarded {} {} to {up}{} {}; {}; the client got {}",
                    u.req.method,
                    x.path,
                    if http10 { " over HTTP/1.0" } else { "" },
                    uh.describe(),
                    backend_did(u),
                    status_word(c)
                );
                let mut d = self.detail(x);
                d["missing"] = json!(uh.missing);
                d["mangled"] =
                    json!(uh.mangled.iter().map(|(n, v)| json!({"header": n, "value": v})).collect::<Vec<_>>());
                d["backend_status"] = json!(u.status());
                out.push(about(x, proxy, FindingKind::UpgradeStripped, Severity::Error, fl.clone(), msg, d));
            }
        } else if c.from.is_none() {
            self.headers_missing(x, c, proxy, out);
        }
        if http10 {
            let msg = format!(
                "{pname} forwarded the WebSocket upgrade for {} to {up} over HTTP/1.0 (Upgrade needs HTTP/1.1); {}; the client got {}",
                x.path,
                backend_did(u),
                status_word(c)
            );
            let mut d = self.detail(x);
            d["backend_status"] = json!(u.status());
            out.push(about(x, proxy, FindingKind::UpstreamHttp10, Severity::Error, fl.clone(), msg, d));
        }
        // What happened upstream, and what the client got for it.
        match (u.status(), u.end) {
            (Some(101), _) => {
                if c.status().is_some() && !c.upgraded() {
                    let msg = format!(
                        "the backend at {up} accepted the upgrade for {} (101) but {pname} answered the client {}",
                        x.path,
                        status_word(c)
                    );
                    out.push(about(x, proxy, FindingKind::UpgradeFailed, Severity::Error, fl, msg, self.detail(x)));
                }
            }
            (Some(s), _) => {
                if complete_upgrade(&u.req) {
                    let msg = format!(
                        "the backend at {up} refused the upgrade for {} with {} (the request reached it intact through {pname}: not a proxy problem); the client got {}",
                        x.path,
                        evidence::saw(u),
                        status_word(c)
                    );
                    let mut d = self.detail(x);
                    d["status"] = json!(s);
                    d["origin"] = json!(self.redact.opt_header("origin", u.req.headers.get("origin")));
                    out.push(about(x, proxy, FindingKind::HandshakeRejected, Severity::Warning, fl, msg, d));
                }
            }
            (None, _) => self.no_answer(x, c, u, proxy, fl, out),
        }
        self.forwarded_proto(x, Some(c), u, proxy, out);
    }

    /// The backend never answered the forwarded request. Who closed the
    /// upstream connection first decides whose doing it was, never the
    /// timing of the client's response: the backend closing first is a
    /// premature close; the proxy closing first (its timeout) is an
    /// upstream timeout, unless the client had given up before it.
    fn no_answer(
        &mut self,
        x: &Exchange<'_>,
        c: &HopRequest,
        u: &HopRequest,
        proxy: Proxy,
        fl: Vec<FlowKey>,
        out: &mut Vec<Finding>,
    ) {
        let up = u.flow.dst;
        let pname = proxy.name();
        let proxy_closed = u.client_fin.filter(|pf| u.end.is_none_or(|(t, _)| *pf <= t));
        let backend_closed = match u.end {
            Some((t, HopEnd::ServerClosed | HopEnd::ServerReset)) => Some(t),
            _ => None,
        };
        // The client left first: its FIN or RST on the client hop came
        // before the proxy closed upstream.
        let client_left = |t: Ts| {
            c.client_fin.is_some_and(|cf| cf <= t) || matches!(c.end, Some((ct, HopEnd::ClientReset)) if ct <= t)
        };
        if let Some(pf) = proxy_closed {
            if client_left(pf) {
                return;
            }
            let waited = pf.since(u.req_ts);
            let msg = format!(
                "the backend at {up} accepted the connection but never answered {} {}; {pname} gave up after {waited:.1} s and closed the upstream connection first (its FIN), then the client got {}",
                u.req.method,
                x.path,
                status_word(c)
            );
            let mut d = self.detail(x);
            d["waited_s"] = json!((waited * 1000.0).round() / 1000.0);
            d["first_closed"] = json!("proxy");
            out.push(about(x, proxy, FindingKind::UpstreamTimeout, Severity::Error, fl, msg, d));
        } else if let Some(bt) = backend_closed {
            let msg = format!(
                "the backend at {up} {} before sending any response to {} {}; the client got {}",
                if matches!(u.end, Some((_, HopEnd::ServerReset))) {
                    "reset the connection"
                } else {
                    "closed the connection"
                },
                u.req.method,
                x.path,
                status_word(c)
            );
            let mut d = self.detail(x);
            d["first_closed"] = json!("backend");
            d["waited_s"] = json!((bt.since(u.req_ts) * 1000.0).round() / 1000.0);
            out.push(about(x, proxy, FindingKind::UpstreamPrematureClose, Severity::Error, fl, msg, d));
        } else {
            let gave_up = c.failed() || c.status().is_some_and(|s| s >= 500 || s == 408);
            if gave_up {
                let waited = c.finished_at().map(|t| t.since(u.req_ts)).unwrap_or(0.0);
                let msg = format!(
                    "the backend at {up} accepted the connection but never answered {} {}; {pname} gave up after {waited:.1} s and the client got {}",
                    u.req.method,
                    x.path,
                    status_word(c)
                );
                let mut d = self.detail(x);
                d["waited_s"] = json!((waited * 1000.0).round() / 1000.0);
                out.push(about(x, proxy, FindingKind::UpstreamTimeout, Severity::Error, fl, msg, d));
            }
        }
    }

    /// Reports an upgrade-stripped fault (the lead finding and the ones
    /// tied to it), noting the paths through the same proxy that keep
    /// their headers (a location-block mistake). Offline, held up to
    /// [`HINT_WAIT_S`] so that paths seen a little later count too.
    fn stripped(&mut self, mut group: Vec<Finding>, front: Endpoint, out: &mut Vec<Finding>) {
        if self.hold_stripped {
            self.held.push((group, front));
        } else {
            group[0] = self.annotate_stripped(group[0].clone(), front);
            out.append(&mut group);
        }
    }

    /// Held upgrade-stripped faults whose wait is over (all at the end).
    pub(super) fn release_stripped(&mut self, now: Ts, all: bool, out: &mut Vec<Finding>) {
        let held = std::mem::take(&mut self.held);
        for (mut group, front) in held {
            if all || now.since(Ts::from_secs_f64(group[0].ts)) >= HINT_WAIT_S {
                group[0] = self.annotate_stripped(group[0].clone(), front);
                out.append(&mut group);
            } else {
                self.held.push((group, front));
            }
        }
    }

    pub(super) fn annotate_stripped(&self, mut f: Finding, front: Endpoint) -> Finding {
        let path = f.path.clone().unwrap_or_default();
        let mut others: Vec<String> = self
            .intact_paths
            .get(&front)
            .map(|s| s.iter().filter(|p| **p != path).cloned().collect())
            .unwrap_or_default();
        others.sort();
        if !others.is_empty() {
            f.message += &format!(
                " (upgrades to {} through the same proxy keep their headers: {path} falls into a location/route without them)",
                others.join(", ")
            );
        }
        f.detail["paths_with_headers_intact"] = json!(others);
        f
    }

    fn client_only(&mut self, x: &Exchange<'_>, c: &HopRequest, proxy: Proxy, out: &mut Vec<Finding>) {
        let fl = flows(&[Some(c)]);
        if !upgrade_headers(&c.req).intact() && c.from.is_none() {
            self.headers_missing(x, c, proxy, out);
        }
        self.lone_http10(x, c, proxy, out);
        if c.upgraded() || !(c.resp.is_some() || c.failed()) {
            return;
        }
        if !x.attempts.is_empty() {
            let refused = x.attempts.iter().filter(|a| a.refused).count();
            let targets: Vec<String> = x.attempts.iter().map(|a| a.flow.dst.to_string()).collect();
            let msg = format!(
                "{} could not connect to the backend at {} ({}); the client got {} for {}",
                proxy.name(),
                dedup(&targets).join(", "),
                if refused > 0 { "connection refused" } else { "no answer to the SYN" },
                status_word(c),
                x.path
            );
            let mut d = self.detail(x);
            d["attempts"] =
                json!(x.attempts.iter().map(|a| json!({"flow": a.flow, "refused": a.refused})).collect::<Vec<_>>());
            let mut fl = fl;
            fl.extend(x.attempts.iter().map(|a| a.flow));
            out.push(about(x, proxy, FindingKind::UpstreamConnectFailed, Severity::Error, fl, msg, d));
            return;
        }
        let proxied = x.front_known || proxy != Proxy::Unknown;
        if proxied {
            let msg = format!(
                "{} answered {} {} itself with {} and forwarded nothing upstream (no location/route proxies this path)",
                proxy.name(),
                c.req.method,
                x.path,
                status_word(c)
            );
            out.push(about(x, proxy, FindingKind::UpgradeFailed, Severity::Error, fl, msg, self.detail(x)));
        } else if let Some(s) = c.status().filter(|_| complete_upgrade(&c.req)) {
            let msg = format!(
                "the server at {} refused the upgrade for {} with {} (only this hop is visible; the request was complete)",
                c.flow.dst,
                x.path,
                evidence::saw(c)
            );
            let mut d = self.detail(x);
            d["status"] = json!(s);
            out.push(about(x, proxy, FindingKind::HandshakeRejected, Severity::Warning, fl, msg, d));
        }
    }

    fn upstream_only(&mut self, x: &Exchange<'_>, u: &HopRequest, proxy: Proxy, out: &mut Vec<Finding>) {
        let fl = flows(&[Some(u)]);
        if !upgrade_headers(&u.req).intact() {
            self.headers_missing(x, u, proxy, out);
        }
        self.lone_http10(x, u, proxy, out);
        match (u.status(), u.end) {
            (Some(s), _) if s != 101 && complete_upgrade(&u.req) => {
                let msg = format!(
                    "the backend at {} refused the upgrade for {} with {}",
                    u.flow.dst,
                    x.path,
                    evidence::saw(u)
                );
                let mut d = self.detail(x);
                d["status"] = json!(s);
                out.push(about(x, proxy, FindingKind::HandshakeRejected, Severity::Warning, fl, msg, d));
            }
            (None, _) if u.client_fin.is_some_and(|pf| u.end.is_none_or(|(t, _)| pf <= t)) => {
                let waited = u.client_fin.map_or(0.0, |pf| pf.since(u.req_ts));
                let msg = format!(
                    "the backend at {} accepted the connection but never answered {} {}; {} gave up after {waited:.1} s and closed the connection first",
                    u.flow.dst,
                    u.req.method,
                    x.path,
                    proxy.name()
                );
                let mut d = self.detail(x);
                d["waited_s"] = json!((waited * 1000.0).round() / 1000.0);
                d["first_closed"] = json!("proxy");
                out.push(about(x, proxy, FindingKind::UpstreamTimeout, Severity::Error, fl, msg, d));
            }
            (None, Some((_, HopEnd::ServerClosed | HopEnd::ServerReset))) => {
                let msg = format!(
                    "the backend at {} closed the connection before answering {} {}",
                    u.flow.dst, u.req.method, x.path
                );
                let mut d = self.detail(x);
                d["first_closed"] = json!("backend");
                out.push(about(x, proxy, FindingKind::UpstreamPrematureClose, Severity::Error, fl, msg, d));
            }
            _ => {}
        }
        self.forwarded_proto(x, None, u, proxy, out);
    }

    /// An upgrade request seen on one hop only, over HTTP/1.0: no WebSocket
    /// client speaks HTTP/1.0, so a proxy in front forwarded it that way
    /// (nginx's default proxy_http_version). The request line says it all.
    fn lone_http10(&mut self, x: &Exchange<'_>, t: &HopRequest, proxy: Proxy, out: &mut Vec<Finding>) {
        let ws = t.req.headers.has("sec-websocket-key") || t.req.headers.has("sec-websocket-version");
        if t.req.version != Version::Http10 || !ws {
            return;
        }
        let msg = format!(
            "the WebSocket upgrade for {} reached {} over HTTP/1.0 (Upgrade needs HTTP/1.1; no WebSocket client sends HTTP/1.0, so {} forwarded it that way); {}",
            x.path,
            t.flow.dst,
            if proxy == Proxy::Unknown { "a proxy in front".to_string() } else { proxy.name().to_string() },
            backend_did(t)
        );
        let mut d = self.detail(x);
        d["backend_status"] = json!(t.status());
        out.push(about(x, proxy, FindingKind::UpstreamHttp10, Severity::Error, flows(&[Some(t)]), msg, d));
    }

    /// A request with a WebSocket key but without the upgrade headers,
    /// whose previous hop is not visible: a hop in front dropped them.
    fn headers_missing(&mut self, x: &Exchange<'_>, t: &HopRequest, proxy: Proxy, out: &mut Vec<Finding>) {
        if !t.req.headers.has("sec-websocket-key") && !t.req.headers.has("sec-websocket-version") {
            return;
        }
        let h = upgrade_headers(&t.req);
        let front = if x.tls_front.is_some() {
            "the TLS-terminating proxy in front (its client side is encrypted)"
        } else {
            "a hop in front of this capture (CDN, load balancer, or TLS terminator)"
        };
        let msg = format!(
            "{} {} reached {}{} with a Sec-WebSocket-Key but {}: {front} dropped them; {}",
            t.req.method,
            x.path,
            t.flow.dst,
            if t.req.version == Version::Http10 { " over HTTP/1.0" } else { "" },
            h.describe(),
            match &t.resp {
                Some(_) => format!("the server answered {}", evidence::saw(t)),
                None => evidence::saw(t),
            }
        );
        let mut d = self.detail(x);
        d["missing"] = json!(h.missing);
        d["mangled"] = json!(h.mangled.iter().map(|(n, v)| json!({"header": n, "value": v})).collect::<Vec<_>>());
        out.push(about(x, proxy, FindingKind::UpgradeHeadersMissing, Severity::Error, flows(&[Some(t)]), msg, d));
    }

    /// The client hop was TLS (or said so) but the forwarded request does
    /// not tell the backend.
    fn forwarded_proto(
        &mut self,
        x: &Exchange<'_>,
        c: Option<&HopRequest>,
        u: &HopRequest,
        proxy: Proxy,
        out: &mut Vec<Finding>,
    ) {
        let told = |t: &HopRequest| {
            t.req.headers.has("x-forwarded-proto")
                || t.req.headers.tokens("forwarded").any(|v| v.to_ascii_lowercase().contains("proto="))
        };
        // The client hop was TLS: undecrypted (inferred), or decrypted.
        let tls = x.tls_front.is_some() || c.is_some_and(|c| c.tls.is_some());
        let relayed = c.is_some_and(told) && c.is_none_or(|c| c.tls.is_none());
        if (tls || relayed) && !told(u) {
            let why = if tls { "the client hop is TLS (wss)" } else { "the client request carried X-Forwarded-Proto" };
            let msg = format!(
                "{why} but {} forwarded {} {} to {} without X-Forwarded-Proto: the backend believes the client used plain ws:// (Origin checks, redirects and cookies can break)",
                proxy.name(),
                u.req.method,
                x.path,
                u.flow.dst
            );
            let mut fl = flows(&[c, Some(u)]);
            if let Some(tf) = x.tls_front {
                fl.insert(0, tf.flow);
            }
            out.push(about(x, proxy, FindingKind::ForwardedProtoMissing, Severity::Warning, fl, msg, self.detail(x)));
        }
    }

    /// RFC 6455 4.2.2 on every hop that got a 101.
    fn bad_accept(&mut self, x: &Exchange<'_>, proxy: Proxy, out: &mut Vec<Finding>) {
        let wrong = |t: &HopRequest| -> Option<(String, Option<String>)> {
            if !t.upgraded() {
                return None;
            }
            let key = t.req.headers.get("sec-websocket-key")?;
            let want = expected_accept(key);
            let got = t.resp.as_ref().and_then(|r| r.headers.get("sec-websocket-accept")).map(str::to_string);
            (got.as_deref() != Some(want.as_str())).then_some((want, got))
        };
        let bad_up = x.upstream.and_then(|u| wrong(u).map(|w| (u, w)));
        let bad_client = x.client.and_then(|c| wrong(c).map(|w| (c, w)));
        let (t, (want, got), msg) = match (bad_up, bad_client) {
            (Some((u, w)), _) => {
                let m = format!(
                    "the server at {} answered the upgrade for {} with a wrong Sec-WebSocket-Accept ({}, expected {}){}; the client rejects the handshake",
                    u.flow.dst,
                    x.path,
                    w.1.as_deref().unwrap_or("none"),
                    w.0,
                    if x.client.is_some() { " and the proxy relayed it" } else { "" }
                );
                (u, w, m)
            }
            (None, Some((c, w))) => {
                let m = if x.upstream.is_some() {
                    format!(
                        "the backend's Sec-WebSocket-Accept was right but the client received a wrong one ({}, expected {}): the proxy rewrote the key or the accept",
                        w.1.as_deref().unwrap_or("none"),
                        w.0
                    )
                } else {
                    format!(
                        "the server at {} answered the upgrade for {} with a wrong Sec-WebSocket-Accept ({}, expected {}); the client rejects the handshake",
                        c.flow.dst,
                        x.path,
                        w.1.as_deref().unwrap_or("none"),
                        w.0
                    )
                };
                (c, w, m)
            }
            (None, None) => return,
        };
        let mut d = self.detail(x);
        d["expected"] = json!(want);
        d["received"] = json!(got);
        d["hop"] = json!(t.flow);
        out.push(about(x, proxy, FindingKind::BadAccept, Severity::Error, flows(&[x.client, x.upstream]), msg, d));
    }
}

/// Offline, an upgrade-stripped fault waits this long (packet time) for
/// other paths through the same front before it is written.
pub const HINT_WAIT_S: f64 = 10.0;

/// One fault, one finding: an upgrade forwarded over HTTP/1.0 that also
/// lost its upgrade headers is one mistake (nginx's bare `proxy_pass`),
/// filed as `upgrade-stripped` (or `upgrade-headers-missing` on one hop)
/// with `upstream-http10` tied to it. The lead comes first.
pub(super) fn one_fault(fs: &mut Vec<Finding>) {
    let Some(h) = fs.iter().position(|f| f.kind == FindingKind::UpstreamHttp10) else { return };
    let Some(l) =
        fs.iter().position(|f| f.kind == FindingKind::UpgradeStripped || f.kind == FindingKind::UpgradeHeadersMissing)
    else {
        return;
    };
    let mut related = fs.remove(h);
    let l = if h < l { l - 1 } else { l };
    fs[l].tie(&mut related);
    // The lead's fix must cover the related kind's too.
    if let (Some(lf), Some(rf)) = (&fs[l].fix, &related.fix)
        && !lf.contains("1.1")
    {
        fs[l].fix = Some(format!("{lf}\nand {rf}"));
    }
    fs.insert(l + 1, related);
}

fn dedup(v: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in v {
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    out
}
