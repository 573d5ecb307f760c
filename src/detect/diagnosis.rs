//! The standard detector set: one struct so that what one family of
//! findings learned (the proxy in front, handshakes already diagnosed,
//! timeout boundaries) informs the others. The rules live in
//! `handshake.rs`, `plain.rs` and `lifecycle.rs`.

use serde_json::Value;

use super::lifecycle::Lifecycle;
use super::plain::SocketIo;
use super::proxy::{self, FixContext, Proxy};
use super::{Detector, Finding, Severity};
use crate::correlate::{Exchange, SessionRow, SessionView, Txn};
use crate::flow::Endpoint;
use crate::flow::key::{FxHashMap, FxHashSet};
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
    /// Proxy recognised per client-facing address (or upstream source IP).
    proxies: FxHashMap<Endpoint, Proxy>,
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
    pub(super) held: Vec<(Finding, Endpoint)>,
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
        }
    }

    /// The proxy this exchange went through, recognised once per front.
    pub(super) fn proxy_for(&mut self, x: &Exchange<'_>) -> Proxy {
        if let Some(p) = self.proxy_override {
            return p;
        }
        let key = match (x.client, x.upstream) {
            (Some(c), _) => c.flow.dst,
            (None, Some(u)) => Endpoint::new(u.flow.src.ip, 0),
            _ => return Proxy::Unknown,
        };
        if let Some(p) = self.proxies.get(&key) {
            return *p;
        }
        let forwarded = if x.client.is_some() { x.upstream } else { None };
        match proxy::recognise(
            x.client.map(|c| &*c.req),
            x.client.and_then(|c| c.resp.as_deref()),
            forwarded.map(|u| &*u.req),
        ) {
            Some(p) => {
                if self.proxies.len() >= MAX_REMEMBERED {
                    self.proxies.clear();
                }
                self.proxies.insert(key, p);
                p
            }
            None => Proxy::Unknown,
        }
    }

    /// The proxy recognised at a client-facing address, if any.
    pub(super) fn known_proxy_at(&self, front: Endpoint) -> Option<Proxy> {
        self.proxy_override.or_else(|| self.proxies.get(&front).copied())
    }
}

/// Builds a finding; the fix is looked up for the proxy that is there.
#[allow(clippy::too_many_arguments)]
pub(super) fn finding(
    kind: &'static str,
    severity: Severity,
    ts: Ts,
    flows: Vec<String>,
    path: Option<&str>,
    message: String,
    proxy: Proxy,
    boundary_s: Option<f64>,
    detail: Value,
) -> Finding {
    let fix = proxy::fix(kind, proxy, &FixContext { path: path.unwrap_or("/"), boundary_s });
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

/// "127.0.0.1:80" or "[::1]:80" back into an endpoint.
fn parse_endpoint(s: &str) -> Option<Endpoint> {
    let sa: std::net::SocketAddr = s.parse().ok()?;
    Some(Endpoint::new(sa.ip(), sa.port()))
}

/// A finding about an exchange (its time and path), through `proxy`.
pub(super) fn about(
    x: &Exchange<'_>,
    proxy: Proxy,
    kind: &'static str,
    severity: Severity,
    flows: Vec<String>,
    message: String,
    detail: Value,
) -> Finding {
    finding(kind, severity, x.ts, flows, Some(x.path), message, proxy, None, detail)
}

pub(super) fn flows(ts: &[Option<&Txn>]) -> Vec<String> {
    ts.iter().flatten().map(|t| t.flow.to_string()).collect()
}

impl Detector for Diagnosis {
    fn on_exchange(&mut self, x: &Exchange<'_>, out: &mut Vec<Finding>) {
        let proxy = self.proxy_for(x);
        if x.is_websocket() {
            self.websocket(x, proxy, out);
        } else {
            self.plain(x, proxy, out);
        }
        self.socketio_exchange(x);
    }

    fn on_session(&mut self, s: &SessionView<'_>, _out: &mut Vec<Finding>) {
        let proxy = s
            .record
            .client_flow
            .as_deref()
            .and_then(|f| f.split_once("->"))
            .and_then(|(_, d)| parse_endpoint(d))
            .and_then(|e| self.known_proxy_at(e))
            .or(self.proxy_override)
            .unwrap_or(Proxy::Unknown);
        let bad = self.bad_handshakes.contains(&s.record.handshake);
        self.life.session_ended(s, proxy, bad);
    }

    fn on_tick(&mut self, now: Ts, open: &[SessionRow], out: &mut Vec<Finding>) {
        self.life.tick(now, open, out);
        self.socketio_tick(now, false, out);
    }

    fn learned_boundary(&self) -> Option<f64> {
        self.life.learned_boundary()
    }

    fn finish(&mut self, now: Ts, out: &mut Vec<Finding>) {
        for (f, front) in std::mem::take(&mut self.held) {
            out.push(self.annotate_stripped(f, front));
        }
        self.life.finish(now, out);
        self.socketio_tick(now, true, out);
    }
}
