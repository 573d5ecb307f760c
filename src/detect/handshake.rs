//! Upgrade handshakes through the proxy, hop by hop: what each hop carried
//! and answered, and which hop is to blame. The backend's own refusal of a
//! complete request is never blamed on the proxy.
//!
//! Kinds: `upgrade-stripped` and `upgrade-headers-missing` (the upgrade
//! headers lost on the way), `upstream-http10` (forwarded over HTTP/1.0,
//! filed under the lost headers when both happened: one fault),
//! `upgrade-failed` (the proxy answered the client itself, or turned the
//! backend's 101 into something else; a warning when its own answer
//! refused access: 401, 403, 407), `handshake-rejected` (the backend
//! refused a complete request), `upstream-timeout` and
//! `upstream-premature-close` (the backend never answered: who closed
//! first decides), `upstream-connect-failed` (no backend to connect to).

use serde_json::{Value, json};

use super::evidence;
use super::{Config, Context, Detector, Finding, FindingKind, Severity, about};
use crate::facts::{Exchange, Fact, HopRequest};
use crate::flow::FlowKey;
use crate::proto::Version;
use crate::record::HopEnd;
use crate::time::Ts;

pub struct Handshake;

impl Detector for Handshake {
    fn new(_: &Config) -> Handshake {
        Handshake
    }

    fn kinds(&self) -> &'static [FindingKind] {
        &[
            FindingKind::UpgradeStripped,
            FindingKind::UpgradeHeadersMissing,
            FindingKind::UpstreamHttp10,
            FindingKind::UpgradeFailed,
            FindingKind::HandshakeRejected,
            FindingKind::UpstreamTimeout,
            FindingKind::UpstreamPrematureClose,
            FindingKind::UpstreamConnectFailed,
        ]
    }

    fn on_fact(&mut self, fact: &Fact<'_>, cx: &mut Context, out: &mut Vec<Finding>) {
        let Fact::Exchange(x) = fact else { return };
        if !x.is_websocket() {
            return;
        }
        let before = out.len();
        match (x.client, x.upstream) {
            (Some(c), Some(u)) => both_hops(x, c, u, cx, out),
            (Some(c), None) => client_only(x, c, cx, out),
            (None, Some(u)) => upstream_only(x, u, cx, out),
            (None, None) => {}
        }
        let mut fs: Vec<Finding> = out.drain(before..).collect();
        one_fault(&mut fs);
        out.append(&mut fs);
    }
}

fn flows(ts: &[Option<&HopRequest>]) -> Vec<FlowKey> {
    ts.iter().flatten().map(|t| t.flow).collect()
}

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

/// What an exchange finding quotes (evidence.rs).
fn detail(x: &Exchange<'_>, cx: &Context) -> Value {
    evidence::exchange(x, cx.redact)
}

fn both_hops(x: &Exchange<'_>, c: &HopRequest, u: &HopRequest, cx: &Context, out: &mut Vec<Finding>) {
    let fl = flows(&[Some(c), Some(u)]);
    let ch = c.upgrade();
    let uh = u.upgrade();
    let pname = cx.here().name();
    let up = u.flow.dst;
    let http10 = u.req.version == Version::Http10 && c.req.version != Version::Http10;
    if ch.intact() {
        if !uh.intact() {
            let msg = format!(
                "{pname} forwarded {} {} to {up}{} {}; {}; the client got {}",
                u.req.method,
                x.path,
                if http10 { " over HTTP/1.0" } else { "" },
                uh.describe(),
                backend_did(u),
                status_word(c)
            );
            let mut d = detail(x, cx);
            d["missing"] = json!(uh.missing);
            d["mangled"] = json!(uh.mangled.iter().map(|(n, v)| json!({"header": n, "value": v})).collect::<Vec<_>>());
            d["backend_status"] = json!(u.status());
            out.push(about(x, cx, FindingKind::UpgradeStripped, Severity::Error, fl.clone(), msg, d));
        }
    } else if c.from.is_none() {
        headers_missing(x, c, cx, out);
    }
    if http10 {
        let msg = format!(
            "{pname} forwarded the WebSocket upgrade for {} to {up} over HTTP/1.0 (Upgrade needs HTTP/1.1); {}; the client got {}",
            x.path,
            backend_did(u),
            status_word(c)
        );
        let mut d = detail(x, cx);
        d["backend_status"] = json!(u.status());
        out.push(about(x, cx, FindingKind::UpstreamHttp10, Severity::Error, fl.clone(), msg, d));
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
                out.push(about(x, cx, FindingKind::UpgradeFailed, Severity::Error, fl, msg, detail(x, cx)));
            }
        }
        (Some(s), _) => {
            if u.complete_upgrade() {
                let msg = format!(
                    "the backend at {up} refused the upgrade for {} with {} (the request reached it intact through {pname}: not a proxy problem); the client got {}",
                    x.path,
                    evidence::saw(u),
                    status_word(c)
                );
                let mut d = detail(x, cx);
                d["status"] = json!(s);
                d["origin"] = json!(cx.redact.opt_header("origin", u.req.headers.get("origin")));
                out.push(about(x, cx, FindingKind::HandshakeRejected, Severity::Warning, fl, msg, d));
            }
        }
        (None, _) => no_answer(x, c, u, cx, fl, out),
    }
}

/// The backend never answered the forwarded request. Who closed the
/// upstream connection first decides whose doing it was, never the
/// timing of the client's response: the backend closing first is a
/// premature close; the proxy closing first (its timeout) is an
/// upstream timeout, unless the client had given up before it.
fn no_answer(x: &Exchange<'_>, c: &HopRequest, u: &HopRequest, cx: &Context, fl: Vec<FlowKey>, out: &mut Vec<Finding>) {
    let up = u.flow.dst;
    let pname = cx.here().name();
    let proxy_closed = u.client_fin.filter(|pf| u.end.is_none_or(|(t, _)| *pf <= t));
    let backend_closed = match u.end {
        Some((t, HopEnd::ServerClosed | HopEnd::ServerReset)) => Some(t),
        _ => None,
    };
    // The client left first: its FIN or RST on the client hop came
    // before the proxy closed upstream.
    let client_left =
        |t: Ts| c.client_fin.is_some_and(|cf| cf <= t) || matches!(c.end, Some((ct, HopEnd::ClientReset)) if ct <= t);
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
        let mut d = detail(x, cx);
        d["waited_s"] = json!((waited * 1000.0).round() / 1000.0);
        d["first_closed"] = json!("proxy");
        out.push(about(x, cx, FindingKind::UpstreamTimeout, Severity::Error, fl, msg, d));
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
        let mut d = detail(x, cx);
        d["first_closed"] = json!("backend");
        d["waited_s"] = json!((bt.since(u.req_ts) * 1000.0).round() / 1000.0);
        out.push(about(x, cx, FindingKind::UpstreamPrematureClose, Severity::Error, fl, msg, d));
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
            let mut d = detail(x, cx);
            d["waited_s"] = json!((waited * 1000.0).round() / 1000.0);
            out.push(about(x, cx, FindingKind::UpstreamTimeout, Severity::Error, fl, msg, d));
        }
    }
}

fn client_only(x: &Exchange<'_>, c: &HopRequest, cx: &Context, out: &mut Vec<Finding>) {
    let fl = flows(&[Some(c)]);
    if !c.upgrade().intact() && c.from.is_none() {
        headers_missing(x, c, cx, out);
    }
    lone_http10(x, c, cx, out);
    if c.upgraded() || !(c.resp.is_some() || c.failed()) {
        return;
    }
    if !x.attempts.is_empty() {
        let refused = x.attempts.iter().filter(|a| a.refused).count();
        let targets: Vec<String> = x.attempts.iter().map(|a| a.flow.dst.to_string()).collect();
        let msg = format!(
            "{} could not connect to the backend at {} ({}); the client got {} for {}",
            cx.here().name(),
            dedup(&targets).join(", "),
            if refused > 0 { "connection refused" } else { "no answer to the SYN" },
            status_word(c),
            x.path
        );
        let mut d = detail(x, cx);
        d["attempts"] =
            json!(x.attempts.iter().map(|a| json!({"flow": a.flow, "refused": a.refused})).collect::<Vec<_>>());
        let mut fl = fl;
        fl.extend(x.attempts.iter().map(|a| a.flow));
        out.push(about(x, cx, FindingKind::UpstreamConnectFailed, Severity::Error, fl, msg, d));
        return;
    }
    let proxied = x.front_known || cx.here().is_known();
    let refused = c.status().filter(|s| matches!(s, 401 | 403 | 407));
    if let (true, Some(s)) = (proxied, refused) {
        // An access rule of the proxy's own (deny, allow-list, auth):
        // policy, as a backend's refusal is, but the proxy's to change.
        let msg = format!(
            "{} refused {} {} itself with {} and forwarded nothing upstream: one of its own access rules (deny, allow-list, authentication), not the backend",
            cx.here().name(),
            c.req.method,
            x.path,
            evidence::saw(c)
        );
        let mut d = detail(x, cx);
        d["status"] = json!(s);
        d["origin"] = json!(cx.redact.opt_header("origin", c.req.headers.get("origin")));
        out.push(about(x, cx, FindingKind::UpgradeFailed, Severity::Warning, fl, msg, d));
    } else if proxied {
        let msg = format!(
            "{} answered {} {} itself with {} and forwarded nothing upstream (no location/route proxies this path)",
            cx.here().name(),
            c.req.method,
            x.path,
            status_word(c)
        );
        out.push(about(x, cx, FindingKind::UpgradeFailed, Severity::Error, fl, msg, detail(x, cx)));
    } else if let Some(s) = c.status().filter(|_| c.complete_upgrade()) {
        let msg = format!(
            "the server at {} refused the upgrade for {} with {} (only this hop is visible; the request was complete)",
            c.flow.dst,
            x.path,
            evidence::saw(c)
        );
        let mut d = detail(x, cx);
        d["status"] = json!(s);
        out.push(about(x, cx, FindingKind::HandshakeRejected, Severity::Warning, fl, msg, d));
    }
}

fn upstream_only(x: &Exchange<'_>, u: &HopRequest, cx: &Context, out: &mut Vec<Finding>) {
    let fl = flows(&[Some(u)]);
    if !u.upgrade().intact() {
        headers_missing(x, u, cx, out);
    }
    lone_http10(x, u, cx, out);
    match (u.status(), u.end) {
        (Some(s), _) if s != 101 && u.complete_upgrade() => {
            let msg =
                format!("the backend at {} refused the upgrade for {} with {}", u.flow.dst, x.path, evidence::saw(u));
            let mut d = detail(x, cx);
            d["status"] = json!(s);
            out.push(about(x, cx, FindingKind::HandshakeRejected, Severity::Warning, fl, msg, d));
        }
        (None, _) if u.client_fin.is_some_and(|pf| u.end.is_none_or(|(t, _)| pf <= t)) => {
            let waited = u.client_fin.map_or(0.0, |pf| pf.since(u.req_ts));
            let msg = format!(
                "the backend at {} accepted the connection but never answered {} {}; {} gave up after {waited:.1} s and closed the connection first",
                u.flow.dst,
                u.req.method,
                x.path,
                cx.here().name()
            );
            let mut d = detail(x, cx);
            d["waited_s"] = json!((waited * 1000.0).round() / 1000.0);
            d["first_closed"] = json!("proxy");
            out.push(about(x, cx, FindingKind::UpstreamTimeout, Severity::Error, fl, msg, d));
        }
        (None, Some((_, HopEnd::ServerClosed | HopEnd::ServerReset))) => {
            let msg = format!(
                "the backend at {} closed the connection before answering {} {}",
                u.flow.dst, u.req.method, x.path
            );
            let mut d = detail(x, cx);
            d["first_closed"] = json!("backend");
            out.push(about(x, cx, FindingKind::UpstreamPrematureClose, Severity::Error, fl, msg, d));
        }
        _ => {}
    }
}

/// An upgrade request seen on one hop only, over HTTP/1.0: no WebSocket
/// client speaks HTTP/1.0, so a proxy in front forwarded it that way
/// (nginx's default proxy_http_version). The request line says it all.
fn lone_http10(x: &Exchange<'_>, t: &HopRequest, cx: &Context, out: &mut Vec<Finding>) {
    let ws = t.req.headers.has("sec-websocket-key") || t.req.headers.has("sec-websocket-version");
    if t.req.version != Version::Http10 || !ws {
        return;
    }
    let msg = format!(
        "the WebSocket upgrade for {} reached {} over HTTP/1.0 (Upgrade needs HTTP/1.1; no WebSocket client sends HTTP/1.0, so {} forwarded it that way); {}",
        x.path,
        t.flow.dst,
        if cx.here().is_known() { cx.here().name().to_string() } else { "a proxy in front".to_string() },
        backend_did(t)
    );
    let mut d = detail(x, cx);
    d["backend_status"] = json!(t.status());
    out.push(about(x, cx, FindingKind::UpstreamHttp10, Severity::Error, flows(&[Some(t)]), msg, d));
}

/// A request with a WebSocket key but without the upgrade headers,
/// whose previous hop is not visible: a hop in front dropped them.
fn headers_missing(x: &Exchange<'_>, t: &HopRequest, cx: &Context, out: &mut Vec<Finding>) {
    if !t.req.headers.has("sec-websocket-key") && !t.req.headers.has("sec-websocket-version") {
        return;
    }
    let h = t.upgrade();
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
    let mut d = detail(x, cx);
    d["missing"] = json!(h.missing);
    d["mangled"] = json!(h.mangled.iter().map(|(n, v)| json!({"header": n, "value": v})).collect::<Vec<_>>());
    out.push(about(x, cx, FindingKind::UpgradeHeadersMissing, Severity::Error, flows(&[Some(t)]), msg, d));
}

/// One fault, one finding: an upgrade forwarded over HTTP/1.0 that also
/// lost its upgrade headers is one mistake (nginx's bare `proxy_pass`),
/// filed as `upgrade-stripped` (or `upgrade-headers-missing` on one hop)
/// with `upstream-http10` tied to it. The lead comes first.
fn one_fault(fs: &mut Vec<Finding>) {
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

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{Config, Severity};
    use super::Handshake;
    use crate::proto::Version;
    use crate::record::{FindingKind, HopEnd};

    const CLIENT: &str = "198.51.100.7:51000->10.0.0.1:80";
    const UPSTREAM: &str = "10.0.0.1:40000->10.0.0.2:3000";

    /// nginx's bare `proxy_pass`: HTTP/1.0 without the upgrade headers. One
    /// fault, filed as upgrade-stripped with upstream-http10 tied to it,
    /// through the nginx its Server header names.
    #[test]
    fn a_stripped_upgrade_over_http10_is_one_fault() {
        let c = hop(1, CLIENT, request("GET", "/ws", Version::Http11, UPGRADE), 1.0)
            .answered(response(400, &[("Server", "nginx/1.22.1")]), 1.1);
        let u = hop(
            2,
            UPSTREAM,
            request("GET", "/ws", Version::Http10, &[("Host", "app.example"), ("Connection", "close")]),
            1.01,
        )
        .answered(response(400, &[]), 1.09)
        .forwarded();
        let mut d = One::new::<Handshake>(Config::default());
        let fs = d.exchange(&exchange(Some(1), Some(&c), Some(&u)));
        assert_eq!(kinds(&fs), ["upgrade-stripped", "upstream-http10"]);
        let (lead, tied) = (&fs[0], &fs[1]);
        assert!(lead.primary && !tied.primary);
        assert_eq!(lead.also, [FindingKind::UpstreamHttp10]);
        assert_eq!(lead.severity, Severity::Error);
        assert!(
            lead.message.starts_with("nginx forwarded GET /ws to 10.0.0.2:3000 over HTTP/1.0 without Upgrade"),
            "{}",
            lead.message
        );
        assert_eq!(lead.detail["proxy"], "nginx");
        assert_eq!(lead.detail["missing"], serde_json::json!(["Upgrade"]));
        assert!(lead.fix.as_deref().unwrap().contains("proxy_http_version 1.1"));
        assert_eq!(lead.flows, [flow(CLIENT), flow(UPSTREAM)]);
        assert!(!lead.detail["proxy_evidence"].as_array().unwrap().is_empty(), "two hops show a proxy");
    }

    /// Who closed the upstream connection first decides: the proxy's FIN
    /// first is its timeout, the backend's first a premature close.
    #[test]
    fn who_closed_first_decides_between_timeout_and_premature_close() {
        let c = hop(1, CLIENT, request("GET", "/ws", Version::Http11, UPGRADE), 1.0).answered(response(504, &[]), 61.0);
        let mut u = hop(2, UPSTREAM, request("GET", "/ws", Version::Http11, UPGRADE), 1.01).forwarded();
        u.client_fin = Some(t(61.0));
        let u = u.ended(HopEnd::ClientClosed, 61.001);
        let mut d = One::new::<Handshake>(Config::default());
        let fs = d.exchange(&exchange(Some(1), Some(&c), Some(&u)));
        assert_eq!(kinds(&fs), ["upstream-timeout"]);
        assert_eq!(fs[0].detail["first_closed"], "proxy");
        assert!(fs[0].message.contains("gave up after 60.0 s"), "{}", fs[0].message);

        let c = hop(3, CLIENT, request("GET", "/ws", Version::Http11, UPGRADE), 2.0).answered(response(502, &[]), 2.5);
        let u = hop(4, UPSTREAM, request("GET", "/ws", Version::Http11, UPGRADE), 2.01)
            .forwarded()
            .ended(HopEnd::ServerReset, 2.4);
        let fs = d.exchange(&exchange(Some(2), Some(&c), Some(&u)));
        assert_eq!(kinds(&fs), ["upstream-premature-close"]);
        assert!(fs[0].message.contains("reset the connection before sending any response"), "{}", fs[0].message);
    }

    /// The backend's own refusal of a complete request is not the proxy's.
    #[test]
    fn a_backend_refusing_an_intact_request_is_a_warning() {
        let c = hop(1, CLIENT, request("GET", "/ws", Version::Http11, UPGRADE), 1.0).answered(response(403, &[]), 1.1);
        let u = hop(2, UPSTREAM, request("GET", "/ws", Version::Http11, UPGRADE), 1.01)
            .forwarded()
            .answered(response(403, &[]), 1.09);
        let fs = One::new::<Handshake>(Config::default()).exchange(&exchange(Some(1), Some(&c), Some(&u)));
        assert_eq!(kinds(&fs), ["handshake-rejected"]);
        assert_eq!(fs[0].severity, Severity::Warning);
        assert!(fs[0].message.contains("not a proxy problem"));
    }

    /// A proxy that refused access itself (haproxy's `http-request deny`)
    /// is blamed for it, as policy: a warning with its own fix, not a
    /// missing route and not the backend.
    #[test]
    fn a_proxy_refusing_access_itself_is_its_policy_not_a_missing_route() {
        let c = hop(1, CLIENT, request("GET", "/admin/ws", Version::Http11, UPGRADE), 1.0)
            .answered(response(403, &[("Server", "haproxy")]), 1.001);
        let mut d = One::new::<Handshake>(Config::default());
        let fs = d.exchange(&exchange(Some(1), Some(&c), None));
        assert_eq!(kinds(&fs), ["upgrade-failed"]);
        assert_eq!(fs[0].severity, Severity::Warning);
        assert!(fs[0].message.starts_with("haproxy refused GET /admin/ws itself with 403"), "{}", fs[0].message);
        assert!(fs[0].message.contains("not the backend"), "{}", fs[0].message);
        assert_eq!(fs[0].detail["status"], 403);
        let fix = fs[0].fix.as_deref().unwrap();
        assert!(fix.contains("http-request deny") && !fix.contains("route the path"), "{fix}");

        // Any other answer of its own is still a path it does not proxy.
        let c = hop(2, CLIENT, request("GET", "/static/ws", Version::Http11, UPGRADE), 2.0)
            .answered(response(404, &[("Server", "nginx/1.22.1")]), 2.001);
        let fs = One::new::<Handshake>(Config::default()).exchange(&exchange(Some(2), Some(&c), None));
        assert_eq!(kinds(&fs), ["upgrade-failed"]);
        assert_eq!(fs[0].severity, Severity::Error);
        assert!(fs[0].message.contains("no location/route proxies this path"), "{}", fs[0].message);
        let fix = fs[0].fix.as_deref().unwrap();
        assert!(fix.contains("location /static/ws { proxy_pass"), "{fix}");
    }

    /// The proxy answered 502 and its connection attempts were refused.
    #[test]
    fn refused_connects_while_the_client_waited() {
        let c = hop(1, CLIENT, request("GET", "/ws", Version::Http11, UPGRADE), 1.0).answered(response(502, &[]), 1.2);
        let attempts = [refused("10.0.0.1:40001->10.0.0.2:3000", 1.05)];
        let mut x = exchange(Some(1), Some(&c), None);
        x.attempts = &attempts;
        let fs = One::new::<Handshake>(Config::default()).exchange(&x);
        assert_eq!(kinds(&fs), ["upstream-connect-failed"]);
        assert!(fs[0].message.contains("could not connect to the backend at 10.0.0.2:3000 (connection refused)"));
        assert_eq!(fs[0].flows.len(), 2);
    }

    /// Plain requests and healthy upgrades find nothing.
    #[test]
    fn healthy_and_plain_exchanges_find_nothing() {
        let c = hop(1, CLIENT, request("GET", "/ws", Version::Http11, UPGRADE), 1.0).answered(response(101, &[]), 1.1);
        let u = hop(2, UPSTREAM, request("GET", "/ws", Version::Http11, UPGRADE), 1.01)
            .forwarded()
            .answered(response(101, &[]), 1.09);
        let mut d = One::new::<Handshake>(Config::default());
        assert!(d.exchange(&exchange(Some(1), Some(&c), Some(&u))).is_empty());
        let p = hop(3, CLIENT, request("GET", "/", Version::Http11, &[]), 2.0).answered(response(200, &[]), 2.1);
        assert!(d.exchange(&exchange(None, Some(&p), None)).is_empty());
    }
}
