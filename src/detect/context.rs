//! What detectors share: the proxy recognised on each path (and what showed
//! a proxy is there at all), handshakes already found faulty, idle timeouts
//! stated and learned, and the redaction policy. The runner
//! ([`super::Detectors`]) keeps one and hands it to every detector.

use serde_json::json;

use super::boundary::Boundaries;
use super::proxy::{self, Proxy, Recognised};
use super::{Config, Finding, Severity};
use crate::facts::{Exchange, HopRequest, SessionEnd};
use crate::flow::Endpoint;
use crate::flow::key::{FxHashMap, FxHashSet};
use crate::record::PairedBy;
use crate::redact::Redactor;

/// Fronts remembered (recognised proxy, intact paths) at most: bounded
/// memory whatever the capture holds.
pub const MAX_REMEMBERED: usize = 1024;

pub struct Context {
    /// Secrets masked in what findings quote.
    pub redact: Redactor,
    /// Live capture (not a file).
    pub live: bool,
    /// Idle timeouts stated (`--timeout`) and learned from the capture.
    pub boundaries: Boundaries,
    /// `--proxy`: the proxy in front, when it cannot be recognised.
    proxy_override: Option<Proxy>,
    /// Proxy recognised per client-facing address (or upstream source IP),
    /// with what recognised it.
    proxies: FxHashMap<Endpoint, Recognised>,
    /// Handshakes with an error already reported: their sessions' ends are
    /// consequences, not new findings.
    bad_handshakes: FxHashSet<u64>,
    /// The exchange being judged: the proxy on its path, and what showed
    /// that a proxy is there and what named it.
    here: (Proxy, Vec<String>),
}

impl Context {
    pub fn new(cfg: &Config) -> Context {
        Context {
            redact: cfg.redact,
            live: cfg.live,
            boundaries: Boundaries::new(cfg.timeouts.clone()),
            proxy_override: cfg.proxy,
            proxies: FxHashMap::default(),
            bad_handshakes: FxHashSet::default(),
            here: (Proxy::UNKNOWN, Vec::new()),
        }
    }

    /// The proxy on the path of the exchange being judged.
    pub fn here(&self) -> Proxy {
        self.here.0
    }

    /// Recognises the proxy an exchange went through, and gathers the
    /// evidence that a proxy is there at all and what named it. A proxy is
    /// named only when one is shown to exist: two hops paired, a TLS client
    /// hop paired with the forwarded request, a request carrying what
    /// proxies add (Via, X-Forwarded-For, ...), an upgrade over HTTP/1.0,
    /// or a response whose own `Server`/`Via` names a proxy product.
    /// Recognised once per front.
    pub fn recognise(&mut self, x: &Exchange<'_>) {
        let mut evidence = existence(x);
        if let Some(p) = self.proxy_override {
            evidence.insert(0, format!("--proxy {}", p.name()));
            self.here = (p, evidence);
            return;
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
            _ => {
                self.here = (Proxy::UNKNOWN, evidence);
                return;
            }
        };
        if let Some((p, why)) = self.proxies.get(&key) {
            push_unique(&mut evidence, why);
            self.here = (*p, evidence);
            return;
        }
        let found = match lone_forwarded {
            Some(t) => proxy::forwarded_signature(&t.req),
            None => proxy::recognise(
                x.client.map(|c| &*c.req),
                x.client.and_then(|c| c.resp.as_deref()),
                x.upstream.map(|u| &*u.req),
            ),
        };
        self.here = match found {
            Some((p, why)) => {
                if self.proxies.len() >= MAX_REMEMBERED {
                    self.proxies.clear();
                }
                push_unique(&mut evidence, &why);
                self.proxies.insert(key, (p, why));
                (p, evidence)
            }
            None => (Proxy::UNKNOWN, evidence),
        };
    }

    /// The proxy recognised at a client-facing address, if any.
    pub fn proxy_at(&self, front: Endpoint) -> Option<Proxy> {
        self.proxy_override.or_else(|| self.proxies.get(&front).map(|x| x.0))
    }

    /// The proxy in front of a session's client hop.
    pub fn session_proxy(&self, s: &SessionEnd<'_>) -> Proxy {
        s.session.client_flow.and_then(|f| self.proxy_at(f.dst)).or(self.proxy_override).unwrap_or(Proxy::UNKNOWN)
    }

    /// Whether the handshake a session followed had an error reported.
    pub fn bad_handshake(&self, handshake: u64) -> bool {
        self.bad_handshakes.contains(&handshake)
    }

    /// After a detector judged an exchange: what showed a proxy on its path
    /// goes into every finding about it (`detail.proxy_evidence`), and an
    /// error marks its handshake.
    pub(super) fn about_exchange(&mut self, x: &Exchange<'_>, found: &mut [Finding]) {
        for f in found.iter_mut() {
            if f.detail.get("proxy_evidence").is_none() {
                f.detail["proxy_evidence"] = json!(self.here.1);
            }
        }
        if let Some(h) = x.handshake
            && found.iter().any(|f| f.severity == Severity::Error)
        {
            self.bad_handshakes.insert(h);
        }
    }

    /// Evidence for findings decided apart from an exchange (sessions,
    /// Socket.IO, timers): two hops in their flows, and what named the
    /// proxy at their front.
    pub(super) fn fill_evidence(&self, found: &mut [Finding]) {
        for f in found {
            if f.detail.get("proxy_evidence").is_some() {
                continue;
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
                Some(PairedBy::Key) => "same Sec-WebSocket-Key",
                Some(PairedBy::Headers) => "target, headers and timing",
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
