//! The standard detector set: one struct so that what one family of
//! findings learned (the proxy in front, handshakes already diagnosed,
//! timeout boundaries) informs the others. The rules live in
//! `handshake.rs`, `plain.rs` and `lifecycle.rs`.

use serde_json::{Value, json};

use super::lifecycle::Lifecycle;
use super::plain::SocketIo;
use super::proxy::{self, FixContext, Proxy};
use super::{Detector, Finding, FindingKind, Severity};
use crate::facts::{Exchange, H2Conn, HopRequest, SessionEnd, SessionRow};
use crate::flow::key::{FxHashMap, FxHashSet};
use crate::flow::{Endpoint, FlowKey};
use crate::redact::Redactor;
use crate::time::{Ts, round_us};

#[derive(Debug, Clone, Default)]
pub struct DiagnosisConfig {
    pub redact: Option<Redactor>,
    /// `--proxy`: the proxy in front, when it cannot be recognised.
    pub proxy: Option<Proxy>,
    /// `--timeout`: idle timeouts the user expects, seconds.
    pub timeouts: Vec<f64>,
    /// Live capture: warn about open sessions nearing a timeout.
    pub live: bool,
}

/// Fronts remembered (recognised proxy, intact paths) at most: bounded
/// memory whatever the capture holds.
pub(super) const MAX_REMEMBERED: usize = 1024;

pub struct Diagnosis {
    pub(super) redact: Redactor,
    proxy_override: Option<Proxy>,
    /// Proxy recognised per client-facing address (or upstream source IP),
    /// with what recognised it.
    proxies: FxHashMap<Endpoint, proxy::Recognised>,
    /// Paths whose upgrade headers survived, per front, to tell a
    /// location-block mistake from a global one.
    pub(super) intact_paths: FxHashMap<Endpoint, FxHashSet<String>>,
    /// Handshakes with an error already reported: their sessions' ends are
    /// consequences, not new findings.
    pub(super) bad_handshakes: FxHashSet<u64>,
    pub(super) socketio: SocketIo,
    pub(super) life: Lifecycle,
    /// Offline: upgrade-stripped findings wait for the end of the capture
    /// to know every path that kept its headers.
    pub(super) hold_stripped: bool,
    pub(super) held: Vec<(Vec<Finding>, Endpoint)>,
    /// HTTP/2 fronts without RFC 8441 (h2.rs).
    pub(super) h2: super::h2::H2Memory,
}

impl Diagnosis {
    pub fn new(cfg: DiagnosisConfig) -> Diagnosis {
        Diagnosis {
            redact: cfg.redact.unwrap_or(Redactor { enabled: true }),
            proxy_override: cfg.proxy,
            proxies: FxHashMap::default(),
            intact_paths: FxHashMap::default(),
            bad_handshakes: FxHashSet::default(),
            socketio: SocketIo::default(),
            life: Lifecycle::new(cfg.timeouts, cfg.live),
            hold_stripped: !cfg.live,
            held: Vec::new(),
            h2: Default::default(),
        }
    }

    /// The proxy this exchange went through, and the evidence that a proxy
    /// is there at all and what named it. A proxy is named only when one is
    /// shown to exist: two hops paired, a TLS client hop paired with the
    /// forwarded request, a request carrying what proxies add (Via,
    /// X-Forwarded-For, ...), an upgrade over HTTP/1.0, or a response whose
    /// own `Server`/`Via` names a proxy product. Recognised once per front.
    pub(super) fn proxy_for(&mut self, x: &Exchange<'_>) -> (Proxy, Vec<String>) {
        let mut evidence = existence(x);
        if let Some(p) = self.proxy_override {
            evidence.insert(0, format!("--proxy {}", p.name()));
            return (p, evidence);
        }
        // A lone hop whose request was itself forwarded: the proxy in front
        // of it is named by what it added; the response's Server is the
        // backend's.
        let lone_forwarded = match (x.client, x.upstream) {
            (Some(c), None) => forwarded_hop(c).then_some(c),
            (None, Some(u)) => Some(u),
            _ => None,
        };
        let key = match (x.client, x.upstream) {
            (Some(c), _) if lone_forwarded.is_none() => c.flow.dst,
            (Some(c), _) => Endpoint::new(c.flow.src.ip, 0),
            (None, Some(u)) => Endpoint::new(u.flow.src.ip, 0),
            _ => return (Proxy::Unknown, evidence),
        };
        if let Some((p, why)) = self.proxies.get(&key) {
            push_unique(&mut evidence, why);
            return (*p, evidence);
        }
        let found = match lone_forwarded {
            Some(t) => proxy::forwarded_signature(&t.req),
            None => proxy::recognise(
                x.client.map(|c| &*c.req),
                x.client.and_then(|c| c.resp.as_deref()),
                x.upstream.map(|u| &*u.req),
            ),
        };
        match found {
            Some((p, why)) => {
                if self.proxies.len() >= MAX_REMEMBERED {
                    self.proxies.clear();
                }
                push_unique(&mut evidence, &why);
                self.proxies.insert(key, (p, why));
                (p, evidence)
            }
            None => (Proxy::Unknown, evidence),
        }
    }

    /// The proxy recognised at a client-facing address, if any.
    pub(super) fn known_proxy_at(&self, front: Endpoint) -> Option<Proxy> {
        self.proxy_override.or_else(|| self.proxies.get(&front).map(|x| x.0))
    }

    /// Evidence for a finding decided later (sessions, Socket.IO): two hops
    /// in its flows, and what named the proxy at its front.
    pub(super) fn fill_evidence(&self, f: &mut Finding) {
        if f.detail.get("proxy_evidence").is_some() {
            return;
        }
        let mut ev = Vec::new();
        if let Some(p) = self.proxy_override {
            ev.push(format!("--proxy {}", p.name()));
        }
        let front = f.flows.first().map(|fl| fl.dst);
        let two_hops = f.flows.len() >= 2 && f.flows.iter().any(|fl| Some(fl.dst) != front);
        if two_hops {
            ev.push("two hops of one session paired".to_string());
        }
        if let Some((_, why)) = front.and_then(|e| self.proxies.get(&e)) {
            push_unique(&mut ev, why);
        }
        f.detail["proxy_evidence"] = json!(ev);
    }
}

fn push_unique(v: &mut Vec<String>, s: &str) {
    if !v.iter().any(|x| x == s) {
        v.push(s.to_string());
    }
}

/// The request on this hop was forwarded by a proxy: it carries what
/// proxies add, or is an upgrade over HTTP/1.0 (no WebSocket client sends
/// one).
fn forwarded_hop(t: &HopRequest) -> bool {
    super::evidence::has_proxy_headers(&t.req)
        || (t.req.version == crate::proto::Version::Http10 && t.req.headers.has("sec-websocket-key"))
}

/// What shows that a proxy is on this exchange's path at all.
fn existence(x: &Exchange<'_>) -> Vec<String> {
    let mut v = Vec::new();
    match (x.client, x.upstream) {
        (Some(_), Some(u)) => v.push(format!(
            "two hops paired ({})",
            match u.paired_by {
                Some(crate::record::PairedBy::Key) => "same Sec-WebSocket-Key",
                Some(crate::record::PairedBy::Headers) => "target, headers and timing",
                _ => "timing",
            }
        )),
        (None, Some(_)) if x.tls_front.is_some() => {
            v.push("a TLS client connection paired with the forwarded request".to_string())
        }
        (None, Some(_)) => v.push("--upstream names this hop's server".to_string()),
        _ => {}
    }
    for t in [x.client, x.upstream].into_iter().flatten() {
        let h = &t.req.headers;
        if x.upstream.is_some() && x.client.is_some_and(|c| c.id == t.id) {
            continue; // the client's own request says nothing of a proxy
        }
        for name in ["Via", "X-Forwarded-For", "X-Real-IP", "Forwarded"] {
            if h.has(name) {
                v.push(format!("{name} on the request to {}", t.flow.dst));
                break;
            }
        }
        if t.req.version == crate::proto::Version::Http10 && h.has("sec-websocket-key") {
            v.push(format!("an upgrade request forwarded over HTTP/1.0 to {}", t.flow.dst));
        }
    }
    if x.front_known && x.upstream.is_none() {
        v.push("its server forwarded other requests in this capture".to_string());
    }
    v
}

/// Builds a finding; the fix is looked up for the proxy that is there.
#[allow(clippy::too_many_arguments)]
pub(super) fn finding(
    kind: FindingKind,
    severity: Severity,
    ts: Ts,
    flows: Vec<FlowKey>,
    path: Option<&str>,
    message: String,
    proxy: Proxy,
    boundary_s: Option<f64>,
    detail: Value,
) -> Finding {
    let fix = proxy::fix(kind.name(), proxy, &FixContext { path: path.unwrap_or("/"), boundary_s });
    let mut detail = detail;
    if let Value::Object(m) = &mut detail {
        m.insert("proxy".into(), Value::from(if proxy == Proxy::Unknown { None } else { Some(proxy.name()) }));
    }
    Finding {
        ty: "finding",
        kind,
        severity,
        ts: round_us(ts.secs()),
        flows,
        path: path.map(str::to_string),
        message,
        fix,
        detail,
        fault: 0,
        primary: true,
        also: Vec::new(),
    }
}

/// Records in a finding what showed a proxy is there and what named it
/// (`detail.proxy_evidence`, empty when no proxy is seen).
pub(super) fn set_evidence(f: &mut Finding, evidence: &[String]) {
    if f.detail.get("proxy_evidence").is_none() {
        f.detail["proxy_evidence"] = json!(evidence);
    }
}

/// A finding about an exchange (its time and path), through `proxy`.
pub(super) fn about(
    x: &Exchange<'_>,
    proxy: Proxy,
    kind: FindingKind,
    severity: Severity,
    flows: Vec<FlowKey>,
    message: String,
    detail: Value,
) -> Finding {
    finding(kind, severity, x.ts, flows, Some(x.path), message, proxy, None, detail)
}

pub(super) fn flows(ts: &[Option<&HopRequest>]) -> Vec<FlowKey> {
    ts.iter().flatten().map(|t| t.flow).collect()
}

impl Detector for Diagnosis {
    fn on_exchange(&mut self, x: &Exchange<'_>, out: &mut Vec<Finding>) {
        let (proxy, evidence) = self.proxy_for(x);
        let before = out.len();
        if x.is_websocket() {
            self.websocket(x, proxy, &evidence, out);
        } else {
            self.plain(x, proxy, out);
        }
        for f in &mut out[before..] {
            set_evidence(f, &evidence);
        }
        self.socketio_exchange(x);
    }

    fn on_session(&mut self, s: &SessionEnd<'_>, out: &mut Vec<Finding>) {
        let proxy = s
            .session
            .client_flow
            .and_then(|f| self.known_proxy_at(f.dst))
            .or(self.proxy_override)
            .unwrap_or(Proxy::Unknown);
        let bad = self.bad_handshakes.contains(&s.session.handshake);
        let before = out.len();
        self.life.session_ended(s, proxy, bad, out);
        for f in &mut out[before..] {
            self.fill_evidence(f);
        }
        if let Some(mut f) = super::protocol::violation(s, proxy) {
            self.fill_evidence(&mut f);
            out.push(f);
        }
    }

    fn on_tick(&mut self, now: Ts, open: &[SessionRow], out: &mut Vec<Finding>) {
        let before = out.len();
        self.release_stripped(now, false, out);
        self.life.tick(now, open, out);
        self.socketio_tick(now, false, out);
        for f in &mut out[before..] {
            self.fill_evidence(f);
        }
    }

    fn on_h2(&mut self, c: &H2Conn, out: &mut Vec<Finding>) {
        let before = out.len();
        self.h2_conn(c, out);
        for f in &mut out[before..] {
            self.fill_evidence(f);
        }
    }

    fn pending_since(&self) -> Option<Ts> {
        let held = self.held.iter().map(|(g, _)| Ts::from_secs_f64(g[0].ts)).min();
        [held, self.life.pending_since(), self.socketio_pending_since()].into_iter().flatten().min()
    }

    fn learned_boundary(&self) -> Option<f64> {
        self.life.learned_boundary()
    }

    fn bounded(&self) -> (u64, u64) {
        (self.life.judged_early, self.socketio.forgotten)
    }

    fn finish(&mut self, now: Ts, out: &mut Vec<Finding>) {
        let before = out.len();
        self.release_stripped(now, true, out);
        self.life.finish(now, out);
        self.socketio_tick(now, true, out);
        for f in &mut out[before..] {
            self.fill_evidence(f);
        }
    }
}
